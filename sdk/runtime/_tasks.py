"""Streaming tasks: speech, face and EEG, each turning sensor packets into :class:`AffectResult` s.

Each task is a context manager with ``push(packet) -> list[AffectResult]``
(in ``RunningMode.STREAM`` the results go to the options' ``result_callback``
and ``push`` returns an empty list) and ``close()``. The model input a task
builds is the batch pipeline's input on the same samples:

* speech: a ring buffer holds the last ``window_ms``; every ``hop_ms`` the
  window's frame features are recomputed explicitly (the model's window
  statistics need the whole window: MFCC with librosa's centred framing and
  window-relative ``top_db``, utterance-level silence features) -- exactly
  ``SpeechFeatures`` on those samples; its cost is measured in
  ``bench/pipeline.py``.
* EEG: :class:`~affectedge.native_kernels.StreamingBandPower` (absolute and
  relative power, DE) gives each sliding window's features incrementally,
  equal to the batch pipelines on the same window.
* face: one MediaPipe VIDEO-mode call per processed frame (tracking between
  frames), then the blendshape/geometry features and the model.

Junk input never gets an emotion: each window first goes through
:mod:`affectedge.features.quality` and, when it is silent, clipped, out of
scale, DC-only, flat, railed, NaN or a dropout, the result carries that
status and no probabilities.
"""

import collections
import time

import numpy as np

from affectedge.errors import ParameterError

from ._options import EEGOptions, FaceOptions, ModelOptions, RunningMode, SpeechOptions
from ._results import AffectResult, entropy_confidence

__all__ = ["EEGTask", "FaceTask", "SpeechTask", "load_model", "output_roles"]

# Output names of the zoo models, by role (cards may override with extra["output_roles"]).
_ROLE_NAMES = {"probs": "class_probabilities", "probabilities": "class_probabilities",
               "quadrant": "class_probabilities", "va": "valence_arousal",
               "valence_arousal": "valence_arousal_probability"}


def output_roles(card):
    """{role: output name} declared by the card (``extra.output_roles``) or known for zoo names."""
    declared = (card.extra or {}).get("output_roles") if isinstance(card.extra, dict) else None
    if declared:
        return dict(declared)
    roles = {}
    for name in card.outputs:
        role = _ROLE_NAMES.get(name)
        if role and role not in roles:
            roles[role] = name
    return roles


def load_model(options):
    """A :class:`~affectedge.models.Model` from :class:`ModelOptions` (or a zoo id / path)."""
    from affectedge import models

    if not isinstance(options, ModelOptions):
        options = ModelOptions(options)
    if options.model_asset_buffer is not None:
        from affectedge.models import Model

        m = models.load(options.model, check_file=False, variant=options.variant)
        m.close()
        return Model(m.card, m.path, threads=options.threads, providers=options.providers,
                     backend=options.backend, model_asset_buffer=options.model_asset_buffer)
    return models.load(options.model, threads=options.threads, variant=options.variant,
                       check_file=options.check_file, providers=options.providers, backend=options.backend,
                       profile=options.profile)


def _by_role(model, outs):
    roles = output_roles(model.card)
    res = {}
    for role, name in roles.items():
        if name in outs:
            res[role] = np.asarray(outs[name])[0]
    if "class_probabilities" not in res:
        res["class_probabilities"] = np.asarray(outs[model.output_names[0]])[0]
    return res


def _predict(model, x):
    return _by_role(model, model.predict(x[None]))


class _Task:
    modality = ""

    def __init__(self, options):
        self.options = options
        self.latencies_ms = collections.deque(maxlen=4096)
        self.n_results = 0
        self.closed = False

    def warmup(self):
        """Prepare compiled code and sessions before the first packet (optional)."""

    def flush(self):
        """Results still pending at the end of a stream (none for most tasks)."""
        return self._deliver([])

    def _deliver(self, results):
        self.n_results += len(results)
        if self.options.running_mode is RunningMode.STREAM:
            for r in results:
                self.options.result_callback(r)
            return []
        return results

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.closed = True


def _frames(pipe, y, sr):
    try:
        return pipe.frames(y, sample_rate_hz=sr)
    except TypeError:
        return pipe.frames(y, sr=sr)


# ------------------------------------------------------------------ speech
class SpeechTask(_Task):
    """Speech emotion from :class:`~affectedge.sensors.AudioBlock` s (any rate: resampled here)."""

    modality = "speech"

    def __init__(self, options=None, *, model=None):
        super().__init__(options or SpeechOptions())
        o = self.options
        self.model = model if model is not None else load_model(o.model)
        self.pipe = self.model.pipeline
        if self.pipe.name != "speech-mfcc-silence":
            raise ParameterError(f"SpeechTask needs a speech-mfcc-silence model; {self.model.card.id!r} uses "
                                 f"{self.pipe.name!r}")
        self.sr = int(self.pipe.sr)
        self.win = int(round(o.window_ms * self.sr / 1000))
        self.hop = int(round(o.hop_ms * self.sr / 1000))
        self.min_win = int(round(o.min_window_ms * self.sr / 1000))
        self.hop_frames = max(1, self.hop // self.pipe.hop_length)
        from ._calibration import OnlineCalibration, load_calibration

        nfeat = self.pipe.n_frame_features
        if o.calibration is None:
            self.user_calibration = None
        elif isinstance(o.calibration, OnlineCalibration):
            self.user_calibration = o.calibration
        else:
            self.user_calibration = load_calibration(o.calibration, n_features=nfeat)
        self.calibration = OnlineCalibration(nfeat, frame_s=self.pipe.hop_length / self.sr,
                                             min_speech_s=o.online_min_speech_s, model=self.model.card.id,
                                             pipeline_spec=self.pipe.spec)
        self._buf = np.zeros(2 * self.win, dtype=np.float32)
        self._n = 0  # samples in _buf
        self._since = 0  # samples since the last window
        self._t0_ms = None  # clock time of _buf's first sample
        self._fresh = True
        self._resampler = None
        self._in_rate = None
        self.timing_ms = collections.defaultdict(list)

    # input -----------------------------------------------------------------
    def _to_rate(self, block):
        if block.sample_rate_hz == self.sr:
            return block.samples
        if self._resampler is None or self._in_rate != block.sample_rate_hz:
            import soxr

            self._resampler = soxr.ResampleStream(block.sample_rate_hz, self.sr, 1, dtype="float32")
            self._in_rate = block.sample_rate_hz
        return self._resampler.resample_chunk(np.asarray(block.samples, dtype=np.float32))

    def push(self, block):
        t_in = time.perf_counter()
        y = np.asarray(self._to_rate(block), dtype=np.float32)
        out = []
        if self._t0_ms is None or block.gap_before_s > 0:
            if self._t0_ms is not None and block.gap_before_s > 0:
                out.append(AffectResult(block.t_start_s * 1e3 - block.gap_before_s * 1e3, block.t_start_s * 1e3,
                                        "speech", status="gap", model=self.model.card.id,
                                        detail=f"{block.gap_before_s:.2f} s of audio lost"))
            self._n = 0
            self._since = 0
            self._t0_ms = block.t_start_s * 1e3
            self._fresh = True  # the next window's frames are all new to the calibration
        i = 0
        while i < y.shape[0]:
            take = min(self.hop - self._since, y.shape[0] - i)
            self._append(y[i:i + take])
            i += take
            self._since += take
            if self._since >= self.hop:
                self._since = 0
                if self._n >= self.min_win:
                    out.append(self._window(t_in))
        return self._deliver(out)

    def _append(self, y):
        if self._n + y.shape[0] > self._buf.shape[0]:
            keep = self.win - y.shape[0]
            drop = self._n - keep
            self._buf[:keep] = self._buf[drop:self._n]
            self._n = keep
            self._t0_ms += drop * 1e3 / self.sr
        self._buf[self._n:self._n + y.shape[0]] = y
        self._n += y.shape[0]

    def warmup(self):
        """Load compiled kernels and run the model once, so the first real window is not slowed."""
        rng = np.random.default_rng(0)
        # a voiced-like signal (harmonics of 150 Hz + noise): every kernel the speech features use runs on it,
        # the pitch, pulse, HNR and harmonic-level ones included (white noise alone leaves them uncompiled)
        t = np.arange(self.min_win) / self.sr
        y = sum(0.1 / k * np.sin(2 * np.pi * 150.0 * k * t) for k in range(1, 9))
        y = (y + 0.01 * rng.standard_normal(self.min_win)).astype(np.float32)
        self.pipe.window(_frames(self.pipe, y, self.sr), None)
        _predict(self.model, self.pipe.window(_frames(self.pipe, y, self.sr), None))
        from affectedge.features.quality import audio_quality

        audio_quality(y, self.sr)

    def flush(self):
        """At the end of a stream: one last window over the samples since the last hop (if any)."""
        out = []
        if self._since > 0 and self._n >= self.min_win:
            self._since = 0
            out.append(self._window(time.perf_counter()))
        return self._deliver(out)

    def current_window(self):
        n = min(self._n, self.win)
        return self._buf[self._n - n:self._n]

    # one window ------------------------------------------------------------------
    def _window(self, t_in):
        from affectedge.features.quality import audio_quality

        y = self.current_window()
        end_ms = self._t0_ms + self._n * 1e3 / self.sr
        start_ms = end_ms - y.shape[0] * 1e3 / self.sr
        t0 = time.perf_counter()
        q = audio_quality(y, self.sr)
        if not q.ok:
            return AffectResult(start_ms, end_ms, "speech", status=q.status, model=self.model.card.id,
                                calibrated=self._calibrated(), latency_ms=(time.perf_counter() - t_in) * 1e3,
                                detail=q.detail)
        frames = _frames(self.pipe, y, self.sr)
        t1 = time.perf_counter()
        if self.options.online_calibration and self.user_calibration is None:
            # each frame once: all of the first window after a (re)start, then the last hop's
            self.calibration.update(frames if self._fresh else frames[-self.hop_frames:])
        self._fresh = False
        r = self._classify(frames, start_ms, end_ms, t_in)
        self.timing_ms["features"].append((t1 - t0) * 1e3)
        self.timing_ms["total"].append((time.perf_counter() - t0) * 1e3)
        return r

    def _calibrated(self):
        return self.user_calibration is not None or (self.options.online_calibration and self.calibration.ready)

    def _normalizer(self):
        if self.user_calibration is not None:
            return self.user_calibration.normalizer()
        if self.options.online_calibration and self.calibration.ready:
            return self.calibration.normalizer()
        return None

    def _classify(self, frames, start_ms, end_ms, t_in):
        norm = self._normalizer()
        x = self.pipe.window(frames, norm)
        self.last_input = x
        res = _predict(self.model, x)
        p = np.asarray(res["class_probabilities"], dtype=np.float64)
        va = res.get("valence_arousal")
        lat = (time.perf_counter() - t_in) * 1e3
        self.latencies_ms.append(lat)
        return AffectResult(start_ms, end_ms, "speech", labels=tuple(self.model.labels), probs=tuple(p.tolist()),
                            valence=None if va is None else float(va[0]),
                            arousal=None if va is None else float(va[1]), confidence=entropy_confidence(p),
                            status="ok", calibrated=norm is not None, model=self.model.card.id, latency_ms=lat,
                            detail="" if norm is not None else "uncalibrated (training-set statistics)")

    def classify_clip(self, y, sample_rate_hz, *, start_ms=0.0):
        """One result for a whole clip (the model's central ``window_ms`` when longer)."""
        from affectedge.features.quality import audio_quality

        t_in = time.perf_counter()
        y = np.asarray(y, dtype=np.float32)
        if int(sample_rate_hz) != self.sr:
            import soxr

            y = soxr.resample(y, int(sample_rate_hz), self.sr, "HQ").astype(np.float32)
        end_ms = start_ms + y.shape[0] * 1e3 / self.sr
        q = audio_quality(y, self.sr)
        if not q.ok:
            return AffectResult(start_ms, end_ms, "speech", status=q.status, model=self.model.card.id,
                                detail=q.detail, calibrated=self._calibrated())
        return self._classify(_frames(self.pipe, y, self.sr), start_ms, end_ms, t_in)

    def close(self):
        super().close()


# -------------------------------------------------------------------- face
class FaceTask(_Task):
    """Facial expression from :class:`~affectedge.sensors.VideoFrame` s (MediaPipe VIDEO mode)."""

    modality = "face"

    def __init__(self, options=None, *, model=None):
        super().__init__(options or FaceOptions())
        self.model = model if model is not None else load_model(self.options.model)
        self.pipe = self.model.pipeline
        if self.pipe.name != "face-blendshapes":
            raise ParameterError(f"FaceTask needs a face-blendshapes model; {self.model.card.id!r} uses "
                                 f"{self.pipe.name!r}")
        self.pipe.close()
        self.pixel, self.w_pixels = self._pixel_model(self.options.pixel_model)
        self.independent = bool(self.options.independent_frames)
        self.pipe.mode = "image" if self.independent else "video"
        self._last_t = None
        self._last_ts_ms = -1
        self._recent = collections.deque(maxlen=1 if self.independent else self.options.smoothing_frames)
        self.skipped = 0
        self.frames_seen = 0
        self.timing_ms = collections.defaultdict(list)

    def _pixel_model(self, options):
        """(pixel model, its fusion weight) or (None, 0.0) for blendshapes only."""
        if options is None:
            return None, 0.0
        m = load_model(options)
        if m.pipeline.name != "face-pixels":
            raise ParameterError(f"FaceOptions.pixel_model must be a face-pixels model; {m.card.id!r} uses "
                                 f"{m.pipeline.name!r}. Pass pixel_model=None for blendshapes only")
        if tuple(m.labels) != tuple(self.model.labels):
            raise ParameterError(f"pixel model {m.card.id!r} has labels {list(m.labels)}, the blendshape model "
                                 f"{self.model.card.id!r} {list(self.model.labels)}; fusion needs the same labels. "
                                 "Pass pixel_model=None or a matching pair")
        w = float(((m.card.extra or {}).get("fusion") or {}).get("weight_pixels", 0.5))
        return m, w

    def _fused(self, image, r):
        """(probabilities, how they were made) for a frame: blendshapes, pixels and their fusion, or fallback.

        ``r`` None: no face; then a picture that is already a face crop is
        classified whole by the pixel model, anything else gives (None, why).
        """
        if r is None:
            if self.pixel is not None and self.pixel.pipeline.can_fall_back(image):
                x = self.pixel.pipeline.from_raw(image, None)
                return (np.asarray(_predict(self.pixel, x)["class_probabilities"], np.float64),
                        "no face found: the whole picture classified as a face crop (pixel model)")
            return None, "no face found in the frame"
        feats = self.pipe.from_raw(r.blendshapes, r.landmarks)
        self.last_input = feats
        p = np.asarray(_predict(self.model, feats)["class_probabilities"], dtype=np.float64)
        if self.pixel is None:
            return p, "blendshapes"
        x = self.pixel.pipeline.from_raw(image, r.landmarks)
        pp = np.asarray(_predict(self.pixel, x)["class_probabilities"], dtype=np.float64)
        return self.w_pixels * pp + (1 - self.w_pixels) * p, f"pixels x {self.w_pixels:g} + blendshapes"

    def push(self, frame):
        t_in = time.perf_counter()
        self.frames_seen += 1
        t_ms = frame.t_s * 1e3
        if self._last_t is not None and t_ms - self._last_t < 1e3 / self.options.max_fps - 1e-6:
            self.skipped += 1
            return self._deliver([])
        start_ms = self._last_t if self._last_t is not None else t_ms - 1e3 / self.options.max_fps
        self._last_t = t_ms
        return self._deliver([self._frame(frame.image, start_ms, t_ms, t_in)])

    def _frame(self, image, start_ms, end_ms, t_in):
        ts = max(int(end_ms), self._last_ts_ms + 1)
        self._last_ts_ms = ts
        t0 = time.perf_counter()
        ex = self.pipe.extractor()
        r = ex.extract(image) if self.independent else ex.extract(image, ts)
        t1 = time.perf_counter()
        p, how = self._fused(image, r)
        t2, t3 = t1, time.perf_counter()  # features and both models: one figure, under "model"
        if p is None:
            self._recent.clear()
            self.timing_ms["landmarks"].append((t1 - t0) * 1e3)
            return AffectResult(start_ms, end_ms, "face", status="no_face", model=self.model.card.id,
                                latency_ms=(time.perf_counter() - t_in) * 1e3, detail=how)
        self._recent.append(p)
        p = np.mean(self._recent, axis=0)
        from ._fusion import va_from_categories

        v, a = va_from_categories(self.model.labels, p)
        lat = (time.perf_counter() - t_in) * 1e3
        self.latencies_ms.append(lat)
        for k, dt in (("landmarks", t1 - t0), ("features", t2 - t1), ("model", t3 - t2)):
            self.timing_ms[k].append(dt * 1e3)
        return AffectResult(start_ms, end_ms, "face", labels=tuple(self.model.labels), probs=tuple(p.tolist()),
                            valence=v, arousal=a, confidence=entropy_confidence(p), status="ok", calibrated=False,
                            model=self.model.card.id, latency_ms=lat,
                            detail=("one picture" if self.independent else f"mean of the last {len(self._recent)} "
                                    "frame(s)") + f"; {how}; valence/arousal from categories")

    def classify_image(self, image):
        """One result for a still image (IMAGE mode)."""
        from affectedge.features.face import BlendshapeFeatures

        t_in = time.perf_counter()
        if self.independent:  # this task already runs MediaPipe in IMAGE mode: reuse its landmarker
            r = self.pipe.extractor().extract(image)
        else:
            with BlendshapeFeatures(**self.pipe.spec) as still:
                r = still.extractor().extract(image)
        p, how = self._fused(image, r)
        if p is None:
            return AffectResult(0.0, 0.0, "face", status="no_face", model=self.model.card.id,
                                detail="no face found in the image")
        from ._fusion import va_from_categories

        v, a = va_from_categories(self.model.labels, p)
        return AffectResult(0.0, 0.0, "face", labels=tuple(self.model.labels), probs=tuple(p.tolist()), valence=v,
                            arousal=a, confidence=entropy_confidence(p), model=self.model.card.id,
                            latency_ms=(time.perf_counter() - t_in) * 1e3, detail=how)

    def close(self):
        super().close()
        self.pipe.close()
        self.model.close() if hasattr(self.model, "close") else None
        if self.pixel is not None and hasattr(self.pixel, "close"):
            self.pixel.close()


# --------------------------------------------------------------------- EEG
MUSE = ("TP9", "AF7", "AF8", "TP10")


def choose_eeg_model(channel_names, options):
    """(ModelOptions, channel indices, mapped?) for a board's EEG channels (see EEGOptions)."""
    from affectedge.features.eeg import DEAP_CHANNELS

    names = [str(c) for c in channel_names]
    upper = [c.upper() for c in names]
    if options.model is not None:
        mo = options.model if isinstance(options.model, ModelOptions) else ModelOptions(options.model)
        from affectedge import models

        want = models.card(mo.model).input.get("spec", {}).get("channels") or []
        if want and all(w.upper() in upper for w in want):
            return mo, [upper.index(w.upper()) for w in want], False
        if want and options.map_channels and len(names) >= len(want):
            return mo, list(range(len(want))), True
        raise ParameterError(f"model {mo.model!r} needs EEG channels {want}; the board has {names}")
    if all(d.upper() in upper for d in DEAP_CHANNELS):
        return ModelOptions("eeg-valence-arousal"), [upper.index(d.upper()) for d in DEAP_CHANNELS], False
    if all(m in upper for m in MUSE):
        return ModelOptions("eeg-mental-state"), [upper.index(m) for m in MUSE], False
    if options.map_channels and len(names) >= 4:
        return ModelOptions("eeg-mental-state"), [0, 1, 2, 3], True
    raise ParameterError(f"no shipped EEG model fits channels {names}: the mental-state model needs "
                         f"{', '.join(MUSE)} and the valence/arousal model the 32 DEAP electrodes; pass "
                         "EEGOptions(map_channels=True) to run the mental-state model on the first 4 channels")


class EEGTask(_Task):
    """EEG mental state (Muse) or valence/arousal (DEAP) from :class:`~affectedge.sensors.EEGBlock` s."""

    modality = "eeg"

    def __init__(self, options=None, *, model=None):
        super().__init__(options or EEGOptions())
        self.model = model
        self._ready = False
        self._resampler = None
        self.timing_ms = collections.defaultdict(list)

    def _setup(self, block):
        o = self.options
        if self.model is None:
            mo, self.idx, self.mapped = choose_eeg_model(block.channel_names, o)
            if o.profile is not None and mo.profile is None:
                import dataclasses

                mo = dataclasses.replace(mo, profile=o.profile, threads=None)
            self.model = load_model(mo)
        else:
            self.idx, self.mapped = self._indices_for(block.channel_names)
        self.pipe = self.model.pipeline
        self.fs = float(self.pipe.fs)
        self.in_fs = float(block.sample_rate_hz)
        if abs(self.in_fs - self.fs) > 1e-6:
            import soxr

            # LQ: a proper low-pass filter with ~21 samples of delay; HQ would delay EEG by ~2.7 s at 250 -> 256 Hz
            self._resampler = soxr.ResampleStream(self.in_fs, self.fs, len(self.idx), dtype="float64", quality="LQ")
        self.win = int(round(self.pipe.window_s * self.fs))
        self.hop_s = o.hop_ms / 1e3
        from affectedge.native_kernels import StreamingBandPower

        common = dict(window_s=self.win / self.fs, hop_s=self.hop_s, bands=self.pipe.bands,
                      nperseg=self.pipe.nperseg, noverlap=self.pipe.noverlap, window=self.pipe.window,
                      nan_policy="zero")
        self._artefacts = None
        if self.pipe.name == "eeg-muse-bands":
            self._abs = StreamingBandPower(self.fs, len(self.idx), method=self.pipe.method, with_de=False, **common)
            self._rel = StreamingBandPower(self.fs, len(self.idx), method=self.pipe.method, relative=True,
                                           with_de=False, **common)
            if (self.model.card.extra or {}).get("artefacts") if isinstance(self.model.card.extra, dict) else None:
                from affectedge.features.quality import ArtefactDetector

                # the training's blink / muscle rejection, over this session's windows (see the card)
                self._artefacts = ArtefactDetector(self.pipe.channels, self.fs)
        else:
            self._abs = StreamingBandPower(self.fs, len(self.idx), with_de=True, de_method=self.pipe.de_method,
                                           **common)
            self._rel = None
        self._raw = np.zeros((len(self.idx), 0))
        self._t0_ms = block.t_start_s * 1e3
        self._seen = 0
        names = [block.channel_names[i] for i in self.idx]
        self._cal = None
        stats = (self.model.card.extra or {}).get("input_stats") if isinstance(self.model.card.extra, dict) else None
        if o.session_calibration and stats:
            from ._calibration import OnlineCalibration

            self._train_mean = np.asarray(stats["mean"], dtype=np.float64)
            self._train_std = np.asarray(stats["std"], dtype=np.float64)
            self._cal = OnlineCalibration(int(self._train_mean.size), frame_s=self.hop_s,
                                          min_speech_s=o.calibration_min_s, model=self.model.card.id)
        # load compiled kernels and run the model once, so that the first window is not slowed
        probe = np.random.default_rng(0).standard_normal((len(self.idx), self.win))
        self.model.predict(self.pipe(probe)[None])
        self.channel_note = (f"board channels {', '.join(names)} used as {', '.join(self.pipe.channels)} "
                             f"(mapped: not the model's montage)" if self.mapped else "")
        self._ready = True

    def _indices_for(self, channel_names):
        want = list(self.model.pipeline.channels)
        upper = [str(c).upper() for c in channel_names]
        if all(w.upper() in upper for w in want):
            return [upper.index(w.upper()) for w in want], False
        if self.options.map_channels and len(upper) >= len(want):
            return list(range(len(want))), True
        raise ParameterError(f"model {self.model.card.id!r} needs EEG channels {want}; the board has "
                             f"{list(channel_names)}")

    def push(self, block):
        t_in = time.perf_counter()
        out = []
        if not self._ready:
            self._setup(block)
            t_in = time.perf_counter()
        elif block.gap_before_s > 0:
            out.append(AffectResult(block.t_start_s * 1e3 - block.gap_before_s * 1e3, block.t_start_s * 1e3, "eeg",
                                    status="gap", model=self.model.card.id,
                                    detail=f"{block.gap_before_s:.2f} s of EEG lost; windows restart"))
            self._abs.reset()
            if self._rel is not None:
                self._rel.reset()
            self._raw = np.zeros((len(self.idx), 0))
            self._t0_ms = block.t_start_s * 1e3
            self._seen = 0
        x = np.asarray(block.data, dtype=np.float64)[self.idx]
        if self._resampler is not None:
            x = self._resampler.resample_chunk(np.ascontiguousarray(x.T)).T
        if x.shape[1] == 0:
            return self._deliver(out)
        t0 = time.perf_counter()
        a = self._abs.push(x)
        r = self._rel.push(x) if self._rel is not None else None
        self._raw = np.concatenate([self._raw, x], axis=1)[:, -self.win - x.shape[1]:]
        self._seen += x.shape[1]
        n_w = a.shape[0]
        for k in range(n_w):
            # window k of this push ends at sample: next_end - (n_w - k) * hop
            end = self._abs._next_end - (n_w - k) * self._abs.hop
            rel_end = end - (self._seen - self._raw.shape[1])
            raw = self._raw[:, rel_end - self.win:rel_end]
            out.append(self._result(a[k], None if r is None else r[k], raw, end, t_in, t0))
        return self._deliver(out)

    def features_from_stream(self, a, r):
        """Model input from the streamed band powers of one window (equal to the batch pipeline's)."""
        if self.pipe.name == "eeg-muse-bands":
            absolute = a.astype(np.float64)
            relative = np.nan_to_num(r.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
            de = 0.5 * np.log(2 * np.pi * np.e * np.maximum(absolute, self.pipe.log_floor))
            logp = np.log10(absolute + self.pipe.log_floor)
            return np.concatenate([logp, relative, de], axis=1).astype(np.float32)
        nb = len(self.pipe.bands)
        return np.ascontiguousarray(a[:, nb:2 * nb], dtype=np.float32)

    def _result(self, a, r, raw, end_sample, t_in, t0):
        from affectedge.features.quality import eeg_quality

        end_ms = self._t0_ms + end_sample * 1e3 / self.fs
        start_ms = end_ms - self.win * 1e3 / self.fs
        mid = self.model.card.id
        q = eeg_quality(raw, self.fs)
        if not q.ok:
            return AffectResult(start_ms, end_ms, "eeg", status=q.status, model=mid, detail=q.detail,
                                latency_ms=(time.perf_counter() - t_in) * 1e3)
        if self._artefacts is not None:
            qa = self._artefacts.check(raw)
            if not qa.ok:
                return AffectResult(start_ms, end_ms, "eeg", status=qa.status, model=mid, detail=qa.detail,
                                    latency_ms=(time.perf_counter() - t_in) * 1e3)
        x = self.features_from_stream(a, r)
        self.last_input = x
        if not np.all(np.isfinite(x)):
            return AffectResult(start_ms, end_ms, "eeg", status="nonfinite", model=mid,
                                detail="features are not finite")
        calibrated, note = False, self.channel_note
        if self._cal is not None:
            self._cal.update(x.reshape(1, -1))
            if self._cal.ready:
                mean, std = self._cal.mean_std()
                z = (x.reshape(-1) - mean) / std
                x = (z * self._train_std.reshape(-1) + self._train_mean.reshape(-1)).reshape(x.shape)
                x = x.astype(np.float32)
                calibrated = True
            else:
                note = "; ".join(n for n in (note, f"session calibration after {self._cal.min_speech_s:g} s "
                                             f"({self._cal.speech_s:.0f} s in): features not yet on the "
                                             "training scale") if n)
        res = _predict(self.model, x)
        p = np.asarray(res["class_probabilities"], dtype=np.float64)
        if not np.all(np.isfinite(p)):
            return AffectResult(start_ms, end_ms, "eeg", status="nonfinite", model=mid, detail="model gave NaN")
        v = a_ = None
        vap = res.get("valence_arousal_probability")
        if vap is not None:
            v, a_ = float(2 * vap[0] - 1), float(2 * vap[1] - 1)
        lat = (time.perf_counter() - t_in) * 1e3
        self.latencies_ms.append(lat)
        self.timing_ms["total"].append((time.perf_counter() - t0) * 1e3)
        return AffectResult(start_ms, end_ms, "eeg", labels=tuple(self.model.labels), probs=tuple(p.tolist()),
                            valence=v, arousal=a_, confidence=entropy_confidence(p), status="ok",
                            calibrated=calibrated, model=mid, latency_ms=lat, detail=note)

    def close(self):
        super().close()
