"""The live runtime: sources -> bounded queues -> tasks -> fusion, events, status -> callback / iterator / JSONL.

Threads: one reader per source (``source.read`` -> its bounded queue), one
worker per modality (queue -> task -> the results queue) and one delivery
thread (fusion every ``fusion.hop_ms``, event merging, status records, the
JSONL writer, the user's callback, the iterator queue). Every queue is
bounded and drops its *oldest* item when full, counting the drop, so a slow
consumer never stalls capture and memory stays bounded. ``stop()`` (also on
SIGINT/SIGTERM when ``handle_signals``) ends the run cleanly: readers stop,
sources close (the BrainFlow session is released, audio and camera closed),
queued work is finished, events are flushed, the summary is written and the
JSONL file holds only whole lines.
"""

import collections
import signal
import threading
import time
from datetime import datetime, timezone

import numpy as np

from affectedge._version import __version__

from ._fusion import Fusion
from ._options import FusionOptions
from ._results import EventMerger, JsonlWriter, record

__all__ = ["DropOldestQueue", "Runtime"]

_STOP = object()


class DropOldestQueue:
    """A bounded FIFO: ``put`` on a full queue drops the oldest item and counts it in ``dropped``."""

    def __init__(self, maxsize):
        self.maxsize = int(maxsize)
        self._d = collections.deque()
        self._cv = threading.Condition()
        self.dropped = 0
        self.high_water = 0

    def put(self, item, *, wait_while=None):
        """Append ``item``; a full queue drops its oldest, unless ``wait_while`` (a callable) is given: then
        the put waits for room while ``wait_while()`` is true (back-pressure for a file replayed as fast as
        it can be read, which must lose nothing)."""
        with self._cv:
            while wait_while is not None and len(self._d) >= self.maxsize and wait_while():
                self._cv.wait(0.05)
            if len(self._d) >= self.maxsize:
                self._d.popleft()
                self.dropped += 1
            self._d.append(item)
            self.high_water = max(self.high_water, len(self._d))
            self._cv.notify_all()

    def get(self, timeout=None):
        """The oldest item, or None after ``timeout`` seconds with nothing queued."""
        with self._cv:
            if not self._d:
                self._cv.wait(timeout)
            item = self._d.popleft() if self._d else None
            if item is not None:
                self._cv.notify_all()  # room for a waiting put
            return item

    def __len__(self):
        return len(self._d)


class _Lane:
    """One modality: its source, its task, its queue and its counters."""

    def __init__(self, modality, source, task, queue_size):
        self.modality = modality
        self.source = source
        self.task = task
        self.queue = DropOldestQueue(queue_size)
        self.finished = threading.Event()  # source ended (EndOfStream) or failed
        self.idle = threading.Event()
        self.error = ""
        self.processed = 0
        self.t_first = None
        self.t_last = None


class Runtime:
    """Run sources through their tasks and deliver results (see module docstring).

    ``lanes`` are given as keyword pairs: ``audio=(source, task)``,
    ``video=(source, task)``, ``eeg=(source, task)``. ``on_result(record)`` is
    called with every JSONL record (dict) on the delivery thread;
    ``jsonl`` is a path, "-" for stdout, a file object, or None.
    """

    def __init__(self, *, audio=None, video=None, eeg=None, fusion=None, jsonl=None, on_result=None,
                 duration_s=None, queue_size=64, results_queue_size=256, status_every_s=5.0, clock=None,
                 handle_signals=False, live_view=None):
        from affectedge.sensors import Clock

        self.clock = clock or Clock()
        self.lanes = []
        for modality, pair in (("speech", audio), ("face", video), ("eeg", eeg)):
            if pair is not None:
                src, task = pair
                self.lanes.append(_Lane(modality, src, task, queue_size))
        self.fusion = Fusion(fusion or FusionOptions())
        self.fusion_options = fusion or FusionOptions()
        self.events = EventMerger()
        self.writer = JsonlWriter(jsonl) if jsonl is not None else None
        self.on_result = on_result
        self.duration_s = duration_s
        self.results_q = DropOldestQueue(results_queue_size)
        self.iter_q = None
        self.status_every_s = float(status_every_s)
        self.handle_signals = handle_signals
        self.live_view = live_view
        self._stop = threading.Event()
        self.stopped_by = None
        self.counts = collections.Counter()
        self.label_counts = collections.defaultdict(collections.Counter)
        self.records = 0
        self._threads = []
        self._delivery = None
        self.summary = None
        self.callback_errors = 0
        self._callback_msgs = set()
        self.delivery_error = ""

    # control ---------------------------------------------------------------
    def stop(self, reason="stop"):
        if self.stopped_by is None:
            self.stopped_by = reason
        self._stop.set()

    def _on_signal(self, signum, frame):
        self.stop("signal")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop("exit")
        self.close()

    # threads ---------------------------------------------------------------
    def _reader(self, lane):
        from affectedge.sensors import EndOfStream

        try:
            # a live sensor never waits (a full queue drops its oldest, counted); a file replayed faster than real
            # time waits for room instead, so that nothing of it is lost
            wait = None if getattr(lane.source, "realtime", True) else (lambda: not self._stop.is_set())
            while not self._stop.is_set():
                pkt = lane.source.read(timeout_s=0.2)
                if pkt is not None:
                    lane.queue.put(pkt, wait_while=wait)
        except EndOfStream:
            pass
        except Exception as exc:  # a failed sensor ends its lane; the others go on
            if not self._stop.is_set():
                lane.error = f"{type(exc).__name__}: {exc}"
        finally:
            lane.finished.set()

    @staticmethod
    def _warm(lane):
        if getattr(lane, "warmed", False):
            return
        lane.warmed = True
        try:
            lane.task.warmup()
        except Exception:  # a failed warm-up shows again, with context, on the first packet
            lane.error = ""

    def _worker(self, lane):
        self._warm(lane)
        while True:
            pkt = lane.queue.get(timeout=0.1)
            if pkt is None:
                if lane.finished.is_set() or self._stop.is_set():
                    if not len(lane.queue):
                        try:
                            for r in lane.task.flush():
                                self.results_q.put(r)
                        except Exception as exc:
                            lane.error = f"{type(exc).__name__}: {exc}"
                        break
                continue
            try:
                results = lane.task.push(pkt)
            except Exception as exc:
                lane.error = f"{type(exc).__name__}: {exc}"
                lane.finished.set()
                break
            lane.processed += 1
            now = time.perf_counter()
            lane.t_first = lane.t_first or now
            lane.t_last = now
            for r in results:
                self.results_q.put(r)
        lane.idle.set()

    def _call_user(self, fn, arg):
        """A user callback that raises is reported (once per kind of error) and never stops delivery."""
        try:
            fn(arg)
        except Exception as exc:
            self.callback_errors += 1
            msg = f"{type(exc).__name__}: {exc}"
            if msg not in self._callback_msgs:
                self._callback_msgs.add(msg)
                import sys
                import traceback

                print(f"affectedge: a result callback raised (delivery goes on): {msg}", file=sys.stderr)
                traceback.print_exc(limit=3, file=sys.stderr)

    def _emit(self, rec):
        self.records += 1
        if self.writer is not None:
            self.writer.write(rec)
        if self.on_result is not None:
            self._call_user(self.on_result, rec)
        if self.iter_q is not None:
            self.iter_q.put(rec)

    def _status(self, lane):
        st = lane.source.stats.snapshot()
        lat = list(lane.task.latencies_ms)
        dur = max(self.clock.now_s(), 1e-9)
        return record("status", modality=lane.modality, source=lane.source.name, t_ms=round(self.clock.now_s() * 1e3, 1),
                      rate_hz=round(st["delivered"] / dur, 2), samples=st["samples"],
                      dropped=st["dropped"] + lane.queue.dropped, queue_dropped=lane.queue.dropped,
                      overflows=st["overflows"], reconnects=st["reconnects"],
                      gaps=[[round(a * 1e3, 1), round(b * 1e3, 1)] for a, b in st["gaps"]],
                      gap_ms=round(st["gap_s"] * 1e3, 1),
                      latency_ms_p50=round(float(np.percentile(lat, 50)), 2) if lat else None,
                      latency_ms_p95=round(float(np.percentile(lat, 95)), 2) if lat else None,
                      results=lane.task.n_results, error=lane.error or st["last_error"])

    def _deliver_loop(self):
        hop_s = self.fusion_options.hop_ms / 1e3
        next_fuse = hop_s
        next_status = self.status_every_s
        last_end = 0.0
        while True:
            r = self.results_q.get(timeout=0.05)
            if r is not None:
                self.fusion.update(r)
                self.counts[r.modality] += 1
                if r.label is not None:
                    self.label_counts[r.modality][r.label] += 1
                self._emit(r.to_dict())
                if self.live_view is not None:
                    self._call_user(self.live_view, r)
                for ev in self.events.push(r):
                    self._emit(ev.to_dict())
                last_end = max(last_end, r.end_ms)
            # fusion runs on media time of the results (files) or the clock (live), whichever is later
            t_now = max(last_end / 1e3, self.clock.now_s() if self._live() else 0.0)
            while len(self.lanes) > 1 and t_now >= next_fuse and self.fusion.latest:
                fr = self.fusion.fuse(next_fuse * 1e3)
                self.counts["fused"] += 1
                if fr.label is not None:
                    self.label_counts["fused"][fr.label] += 1
                self._emit(fr.to_dict())
                if self.live_view is not None:
                    self._call_user(self.live_view, fr)
                for ev in self.events.push(fr):
                    self._emit(ev.to_dict())
                next_fuse += hop_s
            if self.clock.now_s() >= next_status:
                for lane in self.lanes:
                    self._emit(self._status(lane))
                next_status += self.status_every_s
            if r is None and all(l.idle.is_set() for l in self.lanes) and not len(self.results_q):
                break

    def _deliver_guarded(self):
        try:
            self._deliver_loop()
        except Exception as exc:  # a bug here must show in the summary, not end the run silently
            import traceback

            self.delivery_error = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
            self.stop("error")

    def _live(self):
        return any(getattr(l.source, "realtime", True) for l in self.lanes)

    # run -------------------------------------------------------------------
    def start(self):
        # compile / load every kernel before any source is read: loading holds the GIL for a second or more,
        # which would starve a live capture callback (a gap) if it ran beside the readers
        for lane in self.lanes:
            self._warm(lane)
        self._t_run0 = self.clock.now_s()  # duration_s counts from here, after the warm-up
        old = {}
        if self.handle_signals and threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                old[s] = signal.signal(s, self._on_signal)
        self._old_handlers = old
        self._emit(record("session", started_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                          affectedge=__version__, sources={l.modality: l.source.name for l in self.lanes},
                          models={l.modality: _model_id(l.task) for l in self.lanes}))
        for lane in self.lanes:
            for fn in (self._reader, self._worker):
                t = threading.Thread(target=fn, args=(lane,), name=f"affectedge-{lane.modality}-{fn.__name__[1:]}",
                                     daemon=True)
                t.start()
                self._threads.append(t)
        self._delivery = threading.Thread(target=self._deliver_guarded, name="affectedge-delivery", daemon=True)
        self._delivery.start()
        return self

    def wait(self):
        """Block until every source ended, ``duration_s`` passed, or :meth:`stop`; then finish and close."""
        try:
            while not self._stop.is_set():
                if all(l.finished.is_set() for l in self.lanes):
                    self.stopped_by = self.stopped_by or "end"
                    break
                if self.duration_s is not None and self.clock.now_s() - getattr(self, "_t_run0", 0.0) >= self.duration_s:
                    self.stop("duration")
                    break
                self._stop.wait(0.05)
        except KeyboardInterrupt:
            self.stop("signal")
        return self.finish()

    def run(self):
        """start() + wait(): returns the summary record."""
        self.start()
        return self.wait()

    def __iter__(self):
        """Records (dicts) as they come, from a bounded queue (a slow reader loses the oldest, counted)."""
        self.iter_q = DropOldestQueue(1024)
        self.start()
        waiter = threading.Thread(target=self.wait, daemon=True)
        waiter.start()
        while True:
            rec = self.iter_q.get(timeout=0.1)
            if rec is not None:
                yield rec
                if rec.get("type") == "summary":
                    return
            elif self.summary is not None and not len(self.iter_q):
                return

    def finish(self):
        if self.summary is not None:
            return self.summary
        self._stop.set()
        self.stopped_by = self.stopped_by or "stop"
        for t in self._threads:
            if t.name.endswith("-reader"):
                t.join(timeout=5)  # readers return within their 0.2 s read timeout
        for lane in self.lanes:
            lane.source.close()  # releases BrainFlow sessions, audio streams, cameras
            lane.finished.set()
        for t in self._threads:
            t.join(timeout=10)
        if self._delivery is not None:
            self._delivery.join(timeout=10)
        for ev in self.events.flush():
            self._emit(ev.to_dict())
        for lane in self.lanes:
            self._emit(self._status(lane))
        share = {m: {k: round(v / max(sum(c.values()), 1), 3) for k, v in c.most_common()}
                 for m, c in self.label_counts.items()}
        self.summary = record(
            "summary", duration_ms=round(self.clock.now_s() * 1e3, 1), results=dict(self.counts),
            label_share=share, events=len(self.events.closed),
            dropped={l.modality: l.queue.dropped + l.source.stats.dropped for l in self.lanes},
            results_dropped=self.results_q.dropped, stopped_by=self.stopped_by, callback_errors=self.callback_errors,
            errors={**{l.modality: l.error for l in self.lanes if l.error},
                    **({"delivery": self.delivery_error} if self.delivery_error else {})})
        self._emit(self.summary)
        self.close()
        return self.summary

    def close(self):
        for lane in self.lanes:
            lane.source.close()
            lane.task.close()
        if self.writer is not None:
            self.writer.close()
        for s, h in getattr(self, "_old_handlers", {}).items():
            signal.signal(s, h)
        self._old_handlers = {}


def _model_id(task):
    m = getattr(task, "model", None)
    return m.card.id if m is not None else "auto"
