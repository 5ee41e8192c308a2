"""``affectedge batch``: the runtime's pipelines over a recording archive, in-process or on Ray, resumable.

Outputs under ``out``::

    files/<relative path>.jsonl   one per input file, in the runtime's JSONL schema: a "session" header (input,
                                  modality, models with their sha256, options, key), the "result" and "event"
                                  records, and a "summary" line
    results.parquet               one row per window of every file that is done (pyarrow)
    summary.json                  files done / resumed / skipped / failed (with reasons), throughput, workers
    calibration/<speaker>.json    per-speaker speech calibrations (calibration="speaker")
    .state/                       per-file pass-one statistics (calibration="speaker"), reused by a rerun

Every file is written whole to a temporary name and renamed (``os.replace``),
so an interrupted job leaves only complete outputs. A file is done when its
output exists and its header's ``key`` equals the key this job computes: the
sha256 of the affectedge version, the modality's model files (their sha256),
the options that change a result, the file's calibration and the input's size
and mtime. A rerun skips what is done; a changed model, option or input
recomputes just the files it touches.

Execution. ``ray="none"``: one :class:`BatchWorker` in this process.
Otherwise Ray Core: ``workers`` actors (``num_cpus=cpus_per_worker`` each,
spread over the nodes), each a :class:`BatchWorker` holding its loaded models.
The driver keeps at most ``in_flight_per_worker`` files queued per actor
(bounded back-pressure) and writes every output itself, so a worker never
leaves a partial file. A worker process that dies is restarted by Ray
(``max_restarts=-1``) and its files are retried (``max_task_retries``); a file
that kills its worker more often than that is listed as failed. Inputs are
read by the workers from their paths: on a multi-machine cluster the archive
must be at the same path on every node (a shared file system), and so must
``out`` for nothing (only the driver writes it).
"""

import collections
import functools
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from affectedge.errors import MissingExtraError, ParameterError

from ._inputs import MODALITIES, discover

__all__ = ["BatchOptions", "run_batch", "OUTPUT_FORMAT"]

OUTPUT_FORMAT = 1  # bump when the per-file output changes shape: every earlier output is then recomputed
CALIBRATION_MODES = ("none", "online", "speaker")


@dataclass
class BatchOptions:
    """How to run a batch job (see the module docstring and ``affectedge batch --help``).

    ``calibration``: "none" (training-set statistics), "online" (each file
    calibrates on its own speech, as ``affectedge run`` does on one recording),
    "speaker" (two passes: each speaker's statistics over all their files,
    then every file classified with them; the default) or a calibration file
    from ``affectedge calibrate``. ``ray``: "local" (start Ray on this machine,
    bound to 127.0.0.1), "auto" (join the running cluster), an address
    ("HOST:PORT"), or "none" (in-process, one worker). ``workers``: actors
    (default: the CPUs Ray has, divided by ``cpus_per_worker``). ``threads``:
    intra-op threads per model (default: the profile's, at most
    ``cpus_per_worker``; 1 without a profile). ``on_file``: called on the
    driver with each file's outcome dict as it is written.
    """

    out: str
    modalities: tuple = MODALITIES
    profile: str = None
    calibration: str = "speaker"
    ray: str = "local"
    workers: int = None
    cpus_per_worker: float = 1.0
    threads: int = None
    in_flight_per_worker: int = 2
    files_per_task: int = 8
    max_task_retries: int = 2
    progress: bool = True
    on_file: object = None
    ray_init: dict = field(default_factory=dict)

    def __post_init__(self):
        if isinstance(self.modalities, str):
            self.modalities = tuple(m.strip() for m in self.modalities.split(",") if m.strip())
        self.modalities = tuple(self.modalities)
        bad = [m for m in self.modalities if m not in MODALITIES]
        if bad or not self.modalities:
            raise ParameterError(f"modalities {list(self.modalities)}: each must be one of {', '.join(MODALITIES)} "
                                 "(e.g. --modalities speech,face)")
        cal = str(self.calibration)
        if cal not in CALIBRATION_MODES and not Path(cal).is_file():
            raise ParameterError(f"calibration {cal!r} is none of {', '.join(CALIBRATION_MODES)} and not an existing "
                                 "file; pass a mode or a calibration file from 'affectedge calibrate'")
        if self.workers is not None and (isinstance(self.workers, bool) or int(self.workers) < 1):
            raise ParameterError(f"workers={self.workers!r} must be an integer >= 1")
        if self.ray == "none" and self.workers not in (None, 1):
            raise ParameterError(f"--ray none runs one worker in this process; --workers {self.workers} needs Ray "
                                 "(--ray local, auto or an address)")
        if float(self.cpus_per_worker) <= 0:
            raise ParameterError(f"cpus_per_worker={self.cpus_per_worker!r} must be > 0")
        if self.in_flight_per_worker < 1 or self.max_task_retries < 0 or self.files_per_task < 1:
            raise ParameterError("in_flight_per_worker and files_per_task must be >= 1, max_task_retries >= 0")


# ------------------------------------------------------------------ outputs
def atomic_write(path, text):
    """Write ``text`` to ``path`` whole (:func:`affectedge.io.atomic_output`, flushed to the disk)."""
    from affectedge.io import atomic_output

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path, fsync=True) as fh:
        fh.write(text)


def _sha(obj):
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def output_path(out, rel):
    return Path(out) / "files" / (rel + ".jsonl")


def read_header(path):
    """The first record of a per-file output, or None (missing, empty, damaged)."""
    try:
        with open(path, "r", encoding="utf-8") as fh:
            return json.loads(fh.readline())
    except (OSError, ValueError):
        return None


# ------------------------------------------------------------- executors
class _InProcess:
    kind = "in-process"

    def __init__(self, config):
        from ._worker import BatchWorker

        self.worker = BatchWorker(config)
        self.n = 1
        self.address = ""

    def fingerprints(self):
        return [self.worker.fingerprint()]

    def infos(self):
        return [self.worker.info()]

    def map(self, method, jobs, on_result):
        fn = getattr(self.worker, method)
        for key, args in jobs:
            on_result(key, fn(*args))

    def close(self):
        self.worker.close()


def _import_ray(local=False):
    """Ray, imported; ``local``: in Ray's single-machine mode, where every server binds to 127.0.0.1 only.

    Ray turns a node address of 127.0.0.1 into the machine's external address
    unless its cluster mode is off (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``,
    read when ray is imported); the variable is set only around the import.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no network calls from a private archive's job
    key = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
    old = os.environ.get(key)
    if local and "ray" not in sys.modules:
        os.environ[key] = "0"
    try:
        import ray
    except ImportError as exc:
        raise MissingExtraError(f"'ray' is needed to run batch jobs on Ray but is not installed ({exc}). Install "
                                "it with: pip install 'affectedge[batch]'; or run in this process with "
                                "--ray none --workers 1") from exc
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old
    return ray


class _OnRay:
    kind = "ray"

    def __init__(self, config, options):
        ray = self.ray = _import_ray(local=options.ray == "local")
        self.started = False
        if not ray.is_initialized():
            kw = dict(include_dashboard=False, logging_level="ERROR", log_to_driver=False)
            if options.ray == "local":
                want = options.workers or os.cpu_count() or 1
                kw.update(num_cpus=int(max(want * float(options.cpus_per_worker), 1) + 0.999),
                          _node_ip_address="127.0.0.1")
            else:
                kw["address"] = "auto" if options.ray == "auto" else options.ray
            kw.update(options.ray_init or {})
            try:
                ray.init(**kw)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                where = "a local Ray" if options.ray == "local" else f"the Ray cluster at {options.ray!r}"
                raise ParameterError(f"could not start or join {where}: {exc}. Check the address (ray status), or "
                                     "use --ray local / --ray none") from None
            self.started = True
        self.address = ray.get_runtime_context().gcs_address
        cpus = float(ray.cluster_resources().get("CPU", 1))
        n = options.workers or max(1, int(cpus // float(options.cpus_per_worker)))
        if n * float(options.cpus_per_worker) > cpus + 1e-9:
            self.close()
            raise ParameterError(f"--workers {n} x {options.cpus_per_worker:g} CPU does not fit the {cpus:g} CPUs "
                                 "Ray has; pass fewer workers or a smaller --cpus-per-worker")
        from ._worker import BatchWorker

        actor = ray.remote(BatchWorker).options(num_cpus=float(options.cpus_per_worker), max_restarts=-1,
                                                 max_task_retries=int(options.max_task_retries),
                                                 scheduling_strategy="SPREAD")
        self.actors = [actor.remote(config) for _ in range(n)]
        self.n = n
        self.in_flight = int(options.in_flight_per_worker)
        self.retries = int(options.max_task_retries)
        self.files_per_task = int(options.files_per_task)

    def fingerprints(self):
        return self.ray.get([a.fingerprint.remote() for a in self.actors])

    def infos(self):
        return self.ray.get([a.info.remote() for a in self.actors])

    def map(self, method, jobs, on_result):
        """Results as they come, never more than ``in_flight`` tasks queued per actor (back-pressure).

        Files go in tasks of up to ``files_per_task`` (fewer round trips); a task whose worker died more than
        ``max_task_retries`` times is split and its files retried one by one, so that only the file that kills
        its worker is listed as failed.
        """
        ray = self.ray
        k = self.files_per_task
        jobs = list(jobs)
        todo = collections.deque(jobs[i:i + k] for i in range(0, len(jobs), k))
        pending = {}  # ObjectRef -> (chunk, actor index)
        load = [0] * self.n
        while todo or pending:
            while todo and min(load) < self.in_flight:
                i = load.index(min(load))
                chunk = todo.popleft()
                ref = self.actors[i].run_many.remote(method, [args for _, args in chunk])
                pending[ref] = (chunk, i)
                load[i] += 1
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                chunk, i = pending.pop(ref)
                load[i] -= 1
                try:
                    results = ray.get(ref)
                except ray.exceptions.RayActorError as exc:  # the worker died on it more than max_task_retries
                    if len(chunk) > 1:
                        todo.extendleft([c] for c in reversed(chunk))
                        continue
                    results = [{"error": f"the worker process died while processing it ({self.retries + 1} "
                                         f"tries): {str(exc).strip().splitlines()[0][:200]}"}]
                except ray.exceptions.RayError as exc:
                    results = [{"error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}"}] * len(chunk)
                for (key, _), res in zip(chunk, results):
                    on_result(key, res)

    def close(self):
        for a in getattr(self, "actors", []):
            try:
                self.ray.kill(a)
            except Exception:
                pass
        self.actors = []
        if self.started and self.ray.is_initialized():
            self.ray.shutdown()
            self.started = False


# ------------------------------------------------------------------ progress
class Progress:
    """Files and audio-hours done, rate, ETA and failures, on one line of stderr (rewritten on a terminal)."""

    def __init__(self, total, *, stream=sys.stderr, enabled=True, every_s=5.0):
        self.total = int(total)
        self.stream = stream
        self.enabled = enabled
        self.tty = enabled and hasattr(stream, "isatty") and stream.isatty()
        self.every_s = 0.2 if self.tty else every_s
        self.t0 = time.perf_counter()
        self.done = self.failed = 0
        self.audio_s = 0.0
        self._last = -1e9
        self.phase = ""

    def update(self, *, failed=False, audio_s=0.0):
        self.done += 1
        self.failed += bool(failed)
        self.audio_s += float(audio_s)
        self.show()

    def line(self):
        el = time.perf_counter() - self.t0
        rate = self.done / el if el > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        eta_txt = "--" if eta != eta else (f"{eta / 60:.0f} min" if eta >= 120 else f"{eta:.0f} s")
        filled = int(20 * self.done / max(self.total, 1))
        return (f"{self.phase}[{'#' * filled}{'.' * (20 - filled)}] {self.done}/{self.total} files | {self.audio_s / 3600:.2f} h audio | "
                f"{rate:.1f} files/s | ETA {eta_txt} | {self.failed} failed")

    def show(self, force=False):
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self._last < self.every_s and self.done < self.total:
            return
        self._last = now
        if self.tty:
            self.stream.write("\r" + self.line().ljust(100))
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def end(self):
        if self.enabled and self.tty:
            self.stream.write("\n")


# ---------------------------------------------------------------- calibration
def _merge_calibrations(dicts):
    """One speech calibration from per-file statistics (merged in the order given), or None if they hold none."""
    from affectedge.runtime import OnlineCalibration

    cals = [OnlineCalibration.from_dict(d) for d in dicts]
    cals = [c for c in cals if c.count]
    if not cals:
        return None
    return functools.reduce(lambda a, b: a.merge(b), cals[1:], cals[0])


def _speaker_pass(items, out, executor, fingerprint, progress, failed):
    """Pass one of calibration="speaker": {speaker: (calibration dict or None, note)}."""
    speech = [it for it in items if it.modality == "speech"]
    state = Path(out) / ".state" / "calibration"
    stats, keys, jobs = {}, {}, []
    sizes = {it.rel: it.size for it in speech}
    for it in speech:
        keys[it.rel] = key = _sha({"v": _version(), "format": OUTPUT_FORMAT, "models": fingerprint.get("speech"),
                    "input": [it.size, it.mtime_ns], "pass": "speaker-stats"})
        p = state / (it.rel + ".json")
        try:
            d = json.loads(p.read_text())
            if d.get("key") == key:
                stats[it.rel] = d["calibration"]
                continue
        except (OSError, ValueError, KeyError):
            pass
        jobs.append((it.rel, (it.to_dict(),)))

    def got(rel, res):
        if res.get("error") or res.get("calibration") is None:
            failed[rel] = f"pass one (speaker statistics): {res.get('error') or 'no result'}"
        else:
            atomic_write(state / (rel + ".json"), json.dumps({"key": keys[rel], "calibration": res["calibration"]}))
            stats[rel] = res["calibration"]
        progress.update(failed=bool(res.get("error")))

    jobs.sort(key=lambda j: (-sizes[j[0]], j[0]))  # largest first (see run_batch)
    if jobs:
        progress.phase = "pass 1/2 (speaker statistics): "
        progress.total, progress.done, progress.failed = len(jobs), 0, 0
        executor.map("calibrate", jobs, got)
        progress.end()
    by_speaker = collections.defaultdict(list)
    for it in speech:
        if it.rel in stats:
            by_speaker[it.speaker].append(stats[it.rel])
    cals = {}
    for spk in sorted({it.speaker for it in speech}):
        c = _merge_calibrations(by_speaker.get(spk, []))
        if c is None:
            cals[spk] = (None, f"speaker {spk!r}: no speech found in their files; uncalibrated")
        elif not c.ready:
            cals[spk] = (None, f"speaker {spk!r}: {c.speech_s:.1f} s of speech, less than the {c.min_speech_s:g} s a "
                               "calibration needs; uncalibrated")
        else:
            d = c.to_dict()
            d["speaker"] = spk
            atomic_write(Path(out) / "calibration" / (_safe(spk) + ".json"), json.dumps(d, indent=1))
            cals[spk] = (d, f"speaker {spk!r}: calibrated on {c.speech_s:.1f} s of speech")
    return cals


def _safe(name):
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name) or "_"


def _version():
    from affectedge._version import __version__

    return __version__


# ------------------------------------------------------------------ the job
def _file_key(it, fingerprint, options, cal):
    return _sha({"v": _version(), "format": OUTPUT_FORMAT, "modality": it.modality,
                 "models": fingerprint.get(it.modality), "profile": options.profile,
                 "calibration": (options.calibration if it.modality == "speech" else None),
                 "calibration_sha": _sha(cal) if cal is not None else None, "input": [it.size, it.mtime_ns]})


def _header(it, key, fingerprint, options, cal_note):
    """The per-file output's session-header fields that the driver knows (the worker adds source and models)."""
    return {"key": key, "models": fingerprint.get(it.modality, {}), "profile": options.profile,
            "calibration": options.calibration if it.modality == "speech" else None, "calibration_note": cal_note}


_TABLE_COLUMNS = ("file", "speaker", "modality", "start_ms", "end_ms", "status", "label", "labels", "probs",
                  "valence", "arousal", "confidence", "calibrated", "model")


def _table(out, done_rels):
    """results.parquet: one row per result window of every done file, in file order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols = {c: [] for c in _TABLE_COLUMNS}
    for rel in sorted(done_rels):
        speaker = None
        with open(output_path(out, rel), encoding="utf-8") as fh:
            for line in fh:
                r = json.loads(line)
                if r["type"] == "session":
                    speaker = r.get("speaker")
                if r["type"] != "result":
                    continue
                cols["file"].append(rel)
                cols["speaker"].append(speaker)
                for c in _TABLE_COLUMNS[2:]:
                    cols[c].append(r.get(c))
    schema = pa.schema([("file", pa.string()), ("speaker", pa.string()), ("modality", pa.string()),
                        ("start_ms", pa.float64()), ("end_ms", pa.float64()), ("status", pa.string()),
                        ("label", pa.string()), ("labels", pa.list_(pa.string())), ("probs", pa.list_(pa.float32())),
                        ("valence", pa.float32()), ("arousal", pa.float32()), ("confidence", pa.float32()),
                        ("calibrated", pa.bool_()), ("model", pa.string())])
    table = pa.table(cols, schema=schema)
    from affectedge.io import atomic_output

    with atomic_output(Path(out) / "results.parquet", "wb") as fh:
        pq.write_table(table, fh)
    return table.num_rows


def run_batch(source, options):
    """Run ``options`` over a folder or manifest ``source``; returns the summary dict (also in summary.json)."""
    if not isinstance(options, BatchOptions):
        raise ParameterError("run_batch(source, options): options must be a BatchOptions")
    t_start = time.perf_counter()
    out = Path(options.out)
    root, items, skipped = discover(source, options.modalities)
    if out.exists() and not out.is_dir():
        raise ParameterError(f"--out {str(out)!r} is a file; pass a folder for the job's outputs")
    out.mkdir(parents=True, exist_ok=True)
    for tmp in out.rglob(".*.tmp"):  # left by a driver killed mid-write: never an output, never read
        tmp.unlink(missing_ok=True)
    present = [m for m in options.modalities if any(it.modality == m for it in items)]
    summary = {"format": "affectedge.batch", "version": OUTPUT_FORMAT, "input": str(Path(source).resolve()),
               "root": str(root), "out": str(out.resolve()), "modalities": present,
               "calibration": options.calibration, "profile": options.profile, "ray": options.ray}
    failed, done, resumed = {}, [], []
    progress = Progress(len(items), enabled=options.progress)
    if not items:
        summary.update(files=0, done=0, resumed=0, failed={}, skipped=dict(skipped), wall_s=0.0,
                       note="no input files of the selected modalities")
        atomic_write(out / "summary.json", json.dumps(summary, indent=1))
        return summary
    threads = options.threads
    if threads is None:
        threads = 1
        if options.profile:
            from affectedge.runtime._backend import resolve_profile

            threads = max(1, min(int(resolve_profile(options.profile).threads), int(options.cpus_per_worker)))
    config = {"modalities": present, "profile": options.profile, "threads": int(threads),
              "online_calibration": options.calibration == "online"}
    t0 = time.perf_counter()
    executor = _InProcess(config) if options.ray == "none" else _OnRay(config, options)
    try:
        fps = executor.fingerprints()
        startup_s = time.perf_counter() - t0
        if any(f != fps[0] for f in fps):
            raise ParameterError("the workers have different model files (their sha256 differ between nodes): "
                                 "install the same affectedge version and zoo on every node")
        fp = fps[0]
        # calibration of each speech file
        cal_of, note_of = {}, {}
        cal_mode = options.calibration
        if any(it.modality == "speech" for it in items):
            if cal_mode == "speaker":
                cals = _speaker_pass(items, out, executor, fp, progress, failed)
                for it in items:
                    if it.modality == "speech":
                        cal_of[it.rel], note_of[it.rel] = cals[it.speaker]
                summary["speakers"] = {s: n for s, (_, n) in cals.items()}
            elif cal_mode not in CALIBRATION_MODES:
                from affectedge.runtime import load_calibration

                d = load_calibration(cal_mode).to_dict()
                for it in items:
                    if it.modality == "speech":
                        cal_of[it.rel], note_of[it.rel] = d, f"calibration file {Path(cal_mode).name}"
        t_pass2 = time.perf_counter()
        keys, jobs = {}, []
        by_rel = {it.rel: it for it in items}
        for it in items:
            if it.rel in failed:
                continue
            keys[it.rel] = k = _file_key(it, fp, options, cal_of.get(it.rel))
            h = read_header(output_path(out, it.rel))
            if h is not None and h.get("key") == k:
                resumed.append(it.rel)
            else:
                jobs.append((it.rel, (it.to_dict(), cal_of.get(it.rel), _header(it, k, fp, options, note_of.get(it.rel)))))
        media = {"speech": 0.0, "eeg": 0.0, "face": 0.0}

        driver_s, worker_s = [0.0], [0.0]

        def got(rel, res):
            t_got = time.perf_counter()
            it = by_rel[rel]
            err = res.get("error")
            if err:
                failed[rel] = err
            else:
                atomic_write(output_path(out, rel), res["text"])
                done.append(rel)
                media[it.modality] += float(res.get("media_s", 0.0))
            progress.update(failed=bool(err), audio_s=res.get("media_s", 0.0) if it.modality == "speech" else 0.0)
            worker_s[0] += float(res.get("wall_s", 0.0))
            driver_s[0] += time.perf_counter() - t_got
            if options.on_file is not None:
                options.on_file({"file": rel, "modality": it.modality, "error": err or "",
                                 "done": len(done), "todo": len(jobs)})

        # largest files first (their size is a rough proxy for their cost): the tail of the job, where some
        # workers are idle, then holds only small files
        jobs.sort(key=lambda j: (-by_rel[j[0]].size, j[0]))
        progress.phase = "pass 2/2: " if cal_mode == "speaker" and "speech" in present else ""
        progress.total, progress.done, progress.failed = len(jobs), 0, 0
        progress.t0 = time.perf_counter()
        if jobs:
            executor.map("process", jobs, got)
            progress.end()
        wall_pass2 = time.perf_counter() - t_pass2
        workers = executor.infos()
        n_workers = executor.n
        address = executor.address
    finally:
        executor.close()
    rows = _table(out, resumed + done)
    wall = time.perf_counter() - t_start
    summary.update(
        files=len(items), done=len(done), resumed=len(resumed), failed=dict(sorted(failed.items())),
        skipped=dict(skipped), rows=rows, workers=n_workers, executor=executor.kind, ray_address=address,
        worker_info=workers, threads_per_model=int(threads),
        throughput={"files_per_s": round(len(done) / wall_pass2, 3) if wall_pass2 > 0 else None,
                    "audio_s_per_s": round(media["speech"] / wall_pass2, 3) if wall_pass2 > 0 else None,
                    "media_s": {k: round(v, 1) for k, v in media.items()}, "pass2_wall_s": round(wall_pass2, 3),
                    "driver_ms_per_file": round(driver_s[0] / max(len(done), 1) * 1e3, 3),
                    "worker_ms_per_file": round(worker_s[0] / max(len(jobs), 1) * 1e3, 3),
                    "worker_busy": round(worker_s[0] / (n_workers * wall_pass2), 3) if wall_pass2 > 0 else None},
        startup_s=round(startup_s, 3), wall_s=round(wall, 3))
    atomic_write(out / "summary.json", json.dumps(summary, indent=1))
    return summary

