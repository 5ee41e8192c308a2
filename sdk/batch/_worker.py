"""One batch worker: the runtime's sources, tasks and models, loaded once, run over one file at a time.

The same class runs in-process (``ray="none"``) and as a Ray actor: it holds
the loaded models (one inference session per model, ``threads`` intra-op
threads) and turns one :class:`~affectedge.batch._inputs.Item` into the
runtime's JSONL records. Files are replayed as fast as they can be read
(never paced), through the same sources the live runtime uses
(:class:`~affectedge.sensors.AudioFileSource`, ``open_video``,
:class:`~affectedge.sensors.EEGRecordingSource`) and the same tasks, so a
batch result equals ``affectedge run`` on that file with the same options,
except that ``latency_ms`` is null (no live clock; throughput is in the job's
summary). A file that cannot be read gives ``{"error": reason}``; it never
raises, so one bad file never stops a worker.
"""

import collections
import json
import os
import resource
import time

import numpy as np

__all__ = ["BatchWorker"]


def _rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


class BatchWorker:
    """Models for ``config["modalities"]``, loaded at construction (see module docstring).

    ``config``: ``modalities`` (list), ``profile`` (name or None), ``threads``
    (intra-op threads per model), ``online_calibration`` (bool: speech
    calibrates on each file's own speech when no calibration is given).
    """

    def __init__(self, config):
        os.environ.setdefault("OMP_NUM_THREADS", str(config.get("threads", 1)))
        t0 = time.perf_counter()
        self.config = dict(config)
        self.modalities = tuple(config["modalities"])
        self.profile = None
        if config.get("profile"):
            from affectedge.runtime._backend import resolve_profile

            self.profile = resolve_profile(config["profile"])
        self._sha = {}
        self.speech_model = self.face_task = None
        self.eeg_models = {}
        if "speech" in self.modalities:
            from affectedge import runtime

            self.speech_model = runtime.load_model(self._mopt("speech-emotion"))
            runtime.SpeechTask(runtime.SpeechOptions(online_calibration=False), model=self.speech_model).warmup()
        if "face" in self.modalities:
            self.face_task = self._new_face_task(independent=True)
        if "eeg" in self.modalities:
            from affectedge import runtime

            for mid in ("eeg-mental-state", "eeg-valence-arousal"):
                self.eeg_models[mid] = runtime.load_model(self._mopt(mid))
        self.startup_s = time.perf_counter() - t0
        self.files = 0

    # models -------------------------------------------------------------------
    def _mopt(self, model_id):
        from affectedge import runtime

        return runtime.ModelOptions(model_id, profile=self.profile, threads=int(self.config.get("threads", 1)))

    def _new_face_task(self, *, independent):
        from affectedge import runtime

        return runtime.FaceTask(runtime.FaceOptions(self._mopt("face-expression"),
                                                    pixel_model=self._mopt("face-expression-pixels"),
                                                    independent_frames=independent))

    def _file_sha(self, path):
        path = str(path)
        if path not in self._sha:
            from affectedge.models import sha256_file

            self._sha[path] = sha256_file(path)
        return self._sha[path]

    def fingerprint(self):
        """{modality: {model id or file: sha256}}: what a result depends on besides the input and the options."""
        fp = {}
        if self.speech_model is not None:
            fp["speech"] = {self.speech_model.card.id: self._file_sha(self.speech_model.path)}
        if self.face_task is not None:
            t = self.face_task
            fp["face"] = {t.model.card.id: self._file_sha(t.model.path),
                          "face_landmarker.task": self._file_sha(t.pipe.model_path())}
            if t.pixel is not None:
                fp["face"][t.pixel.card.id] = self._file_sha(t.pixel.path)
        if self.eeg_models:
            fp["eeg"] = {mid: self._file_sha(m.path) for mid, m in self.eeg_models.items()}
        return fp

    def info(self):
        node = ""
        try:
            import ray

            if ray.is_initialized():
                node = ray.get_runtime_context().get_node_id()
        except ImportError:
            pass
        return {"pid": os.getpid(), "node": node, "host": os.uname().nodename, "startup_s": round(self.startup_s, 3),
                "peak_rss_mb": round(_rss_mb(), 1), "files": self.files}

    # one file -----------------------------------------------------------------
    def process(self, item, calibration=None, header=None):
        """``{"rel", "text", "media_s", "n_results", "error", "wall_s"}`` for one item (a dict or Item).

        ``text`` is the whole per-file JSONL (see :func:`file_text`); ``calibration``: a speech calibration
        (``OnlineCalibration.to_dict()``) or None; ``header``: the session header's fields from the driver
        (key, models, profile, calibration, calibration_note).
        """
        from ._inputs import Item

        it = item if isinstance(item, Item) else Item.from_dict(item)
        t0 = time.perf_counter()
        out = {"rel": it.rel, "text": "", "media_s": 0.0, "n_results": 0, "error": ""}
        try:
            fn = {"speech": self._speech, "face": self._face, "eeg": self._eeg}.get(it.modality)
            if fn is None or it.modality not in self.modalities:
                raise RuntimeError(f"this worker was started without the {it.modality} models")
            if not os.path.isfile(it.path):
                raise FileNotFoundError(f"{it.path!r} does not exist (moved or deleted since the job listed it)")
            results, out["media_s"], models, source = fn(it, calibration)
            out["n_results"] = len(results)
            out["text"] = file_text(it, _records(results), out["media_s"], models, source, header or {})
        except Exception as exc:  # a bad file is reported with its reason; the worker goes on
            out["error"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            out["text"] = ""
        out["wall_s"] = time.perf_counter() - t0
        self.files += 1
        return out

    def run_many(self, method, args_list):
        """``[getattr(self, method)(*args) for args in args_list]``: several files in one call (one round trip)."""
        if method not in ("process", "calibrate"):
            raise ValueError(f"run_many: unknown method {method!r}")
        fn = getattr(self, method)
        return [fn(*args) for args in args_list]

    def calibrate(self, item):
        """The speech frame statistics of one file (for per-speaker calibration): ``{"rel", "calibration", "error"}``."""
        from affectedge import runtime, sensors

        from ._inputs import Item

        it = item if isinstance(item, Item) else Item.from_dict(item)
        try:
            task = runtime.SpeechTask(runtime.SpeechOptions(online_calibration=True), model=self.speech_model)
            with sensors.AudioFileSource(it.path, target_rate_hz=16000) as src:
                for blk in src:
                    task.push(blk)
            task.flush()
            return {"rel": it.rel, "calibration": task.calibration.to_dict(), "error": ""}
        except Exception as exc:
            return {"rel": it.rel, "calibration": None, "error": f"{type(exc).__name__}: {exc}"}

    def _speech(self, it, calibration):
        from affectedge import runtime, sensors

        cal = None
        if calibration is not None:
            cal = runtime.OnlineCalibration.from_dict(calibration, source=f"the calibration for {it.rel!r}")
        opts = runtime.SpeechOptions(calibration=cal,
                                     online_calibration=cal is None and bool(self.config.get("online_calibration")))
        task = runtime.SpeechTask(opts, model=self.speech_model)
        results = []
        with sensors.AudioFileSource(it.path, target_rate_hz=16000) as src:
            name = src.name
            for blk in src:
                results += task.push(blk)
            media_s = src.stats.snapshot()["samples"] / 16000.0
        results += task.flush()
        if not results:
            results = [runtime.AffectResult(0.0, media_s * 1e3, "speech", status="too_short",
                                            model=self.speech_model.card.id,
                                            detail=f"{media_s:.2f} s of audio: shorter than one "
                                                   f"{opts.min_window_ms:g} ms window")]
        return results, media_s, [self.speech_model.card.id], name

    def _face(self, it, calibration):
        from affectedge import sensors

        if it.kind == "image":
            from affectedge.features.face import load_image

            r = self.face_task.classify_image(load_image(it.path))
            return [r], 0.0, self._face_ids(self.face_task), f"image:{os.path.basename(it.path)}"
        task = self._new_face_task(independent=False)  # VIDEO mode tracks between frames: a fresh landmarker
        try:
            results = []
            with sensors.open_video(it.path, realtime=False) as src:
                name = src.name
                last = 0.0
                for frame in src:
                    results += task.push(frame)
                    last = frame.t_s
            results += task.flush()
            return results, last, self._face_ids(task), name
        finally:
            task.close()

    @staticmethod
    def _face_ids(task):
        return [task.model.card.id] + ([task.pixel.card.id] if task.pixel is not None else [])

    def _eeg(self, it, calibration):
        from affectedge import runtime, sensors
        from affectedge.runtime._tasks import choose_eeg_model

        opts = runtime.EEGOptions(profile=self.profile)
        with sensors.EEGRecordingSource(it.path) as src:
            mo, _, _ = choose_eeg_model(src.channel_names, opts)
            model = self.eeg_models[mo.model]
            task = runtime.EEGTask(opts, model=model)
            results = []
            for blk in src:
                results += task.push(blk)
            results += task.flush()
            media_s = src.duration_s
            name = src.name
        if not results:
            results = [runtime.AffectResult(0.0, media_s * 1e3, "eeg", status="too_short", model=model.card.id,
                                            detail=f"{media_s:.2f} s of EEG: shorter than one "
                                                   f"{model.pipeline.window_s:g} s window")]
        return results, media_s, [model.card.id], name

    def close(self):
        if self.face_task is not None:
            self.face_task.close()
        for m in [self.speech_model, *self.eeg_models.values()]:
            if m is not None and hasattr(m, "close"):
                m.close()


def _records(results):
    """The runtime's result and event records for one file's results, in the runtime's order."""
    from affectedge.runtime import EventMerger

    merger = EventMerger()
    recs = []
    for r in results:
        d = r.to_dict()
        d["latency_ms"] = None  # offline: no live clock (the job's summary has the throughput)
        recs.append(d)
        recs += [ev.to_dict() for ev in merger.push(r)]
    recs += [ev.to_dict() for ev in merger.flush()]
    return recs


def file_text(it, recs, media_s, models, source, header):
    """The per-file JSONL: the session header, the records, and the file's summary line."""
    from affectedge.runtime._results import record

    fp = header.get("models") or {}
    head = record("session", input=it.rel, modality=it.modality, kind=it.kind, source=source,
                  speaker=it.speaker or None, speaker_from=it.speaker_from or None,
                  models={m: fp.get(m) for m in models}, calibration=header.get("calibration"),
                  calibration_note=header.get("calibration_note") or None, profile=header.get("profile"),
                  key=header.get("key"), batch=True)
    results = [r for r in recs if r["type"] == "result"]
    counts = collections.Counter(r["label"] for r in results if r["status"] == "ok")
    n_ok = sum(counts.values())
    summary = record("summary", duration_ms=round(float(media_s) * 1e3, 1), results={it.modality: len(results)},
                     label_share={it.modality: {k: round(v / n_ok, 3) for k, v in counts.most_common()}} if n_ok else {},
                     status=dict(collections.Counter(r["status"] for r in results)),
                     events=sum(r["type"] == "event" for r in recs), stopped_by="end")
    return "".join(json.dumps(r, allow_nan=False, separators=(",", ":")) + "\n" for r in [head, *recs, summary])
