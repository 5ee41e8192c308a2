"""Signal quality checks: is this audio / EEG worth running a model on?

A model given junk (digital silence, an unplugged electrode, int16 samples
passed as float) still returns a confident-looking answer. These checks run
before the model (``Model.predict_raw`` calls them on raw input) and say what
is wrong in one :class:`Quality` record; :class:`NoSignalError` is what the
runtime raises for junk.

NumPy only (plus :func:`affectedge.native_kernels.silence_features` for the
speech-activity measure).

Audio (:func:`audio_quality`, mono float samples in [-1, 1]), checks in order:

``nonfinite``
    any NaN / inf sample.
``out_of_scale``
    peak above :data:`OUT_OF_SCALE_PEAK` = 2.0 (6 dB over full scale: float
    inter-sample overs and resampler overshoot stay well below it), or an
    integer dtype; typically int16 values given as float (peak up to 32768):
    the detail says to divide by 32768 (2**31 for int32-scale values).
``dc_only``
    a constant offset: the standard deviation after removing the mean is below
    :data:`DC_AC_STD` = 1e-4 (-80 dBFS) while the mean is at least
    :data:`DC_MIN_OFFSET` = 1e-3 (-60 dBFS). (A constant closer to zero is
    digital silence: ``no_speech``.)
``no_speech``
    fewer than :data:`MIN_ACTIVE_S` = 0.25 s of 32 ms frames (16 ms hop) whose
    RMS, after removing the mean, is above :data:`ACTIVE_DBFS` = -55 dBFS (the
    silence kernel with an absolute threshold). Measured on all 535 EmoDB
    clips at 16 kHz: every clip has at least 1.17 s of such frames above
    -50 dBFS (median 2.38 s); attenuated by 30 dB, every clip still has at
    least 0.32 s above -55 dBFS (at -50 dBFS one clip fell to 0.21 s, hence
    -55 rather than -50); white noise at -60 dBFS RMS or lower has 0 s above
    -55 dBFS, so -70 dBFS noise and digital silence are ``no_speech``
    with a 5 dB margin. Speech 35-40 dB below EmoDB's level (peaks around
    -35 dBFS) starts to be refused: too quiet for the model anyway.
``clipped``
    more than :data:`CLIP_FRACTION` = 1 % of samples at ``|x| >=``
    :data:`CLIP_LEVEL` = 0.99, or a run at that level lasting at least
    :data:`CLIP_RUN_S` = 1 ms. EmoDB clips are peak-normalised (every one
    touches 0.99) but at most 0.028 % of their samples reach it, in runs of at
    most 4 samples (0.25 ms); EmoDB speech x 4 clipped to [-1, 1] has 2.2 % of
    samples and 18-sample (1.1 ms) runs at full scale, x 20 has 27 %.
``ok``
    none of the above.

EEG (:func:`eeg_quality`, ``(channels, samples)`` in microvolts), each channel
gets one status, by priority:

``nonfinite``
    a NaN / inf sample in the channel.
``railed_channels``
    ``|x| > rail_uv`` (default 1e5 uV: no scalp EEG is 0.1 V; ADC counts or
    volts-vs-microvolts mix-ups are), or at least ``rail_fraction`` (90 %) of
    the samples equal ``+-max|x|`` with ``max|x| >=`` :data:`RAIL_MIN_UV` =
    100 uV (an amplifier stuck at its ceiling, e.g. Muse's 999.5 uV).
    Real Muse recordings touch their 999.5 uV ceiling on at most 0.2 % of the
    samples.
``flat_channels``
    standard deviation below ``flat_uv`` (default 0.1 uV: measured live
    channels have at least 3.9 uV over 4 s windows in the Muse recordings and
    4.0 uV in the DEAP trial; the BrainFlow synthetic board's weakest channel
    has 10 uV).
``dropout``
    a run of identical consecutive samples (zeros or a held value) lasting at
    least ``dropout_s`` (default 0.25 s) in an otherwise live channel. The
    longest such run in the 25 Muse recordings is 0.18 s (45 samples at
    256 Hz, at the 999.5 uV ceiling); the DEAP trial and the synthetic board
    have none longer than 1 sample.

The overall status is the highest-priority channel status; ``bad_channels``
lists the channels with that status (names when ``channel_names`` is given,
else indices), and ``metrics["channel_status"]`` gives every channel's.

EEG artefacts (:class:`ArtefactDetector`, per session, Muse mental-state
model): ``artefact`` when a window's AF7/AF8 peak-to-peak is > 3 x (blink,
eye movement) or its TP9/TP10 30-45 Hz power (the largest over 1 s
segments) is > 10 x (jaw clench, muscle) the median of the session's
previous windows; the model's training leaves the same windows out.
"""

import collections
from dataclasses import dataclass, field

import numpy as np

from affectedge.errors import ParameterError

__all__ = [
    "ARTEFACT_STATUS",
    "ArtefactDetector",
    "EEG_STATUSES",
    "AUDIO_STATUSES",
    "NoSignalError",
    "Quality",
    "audio_quality",
    "eeg_artefact_measures",
    "eeg_quality",
]

AUDIO_STATUSES = ("ok", "nonfinite", "out_of_scale", "dc_only", "no_speech", "clipped")
EEG_STATUSES = ("ok", "nonfinite", "railed_channels", "flat_channels", "dropout")

# audio thresholds (see the module doc for the measurements behind them)
OUT_OF_SCALE_PEAK = 2.0
DC_AC_STD = 1e-4
DC_MIN_OFFSET = 1e-3
ACTIVE_DBFS = -55.0
MIN_ACTIVE_S = 0.25
FRAME_S = 0.032
HOP_S = 0.016
CLIP_LEVEL = 0.99
CLIP_FRACTION = 0.01
CLIP_RUN_S = 0.001

# EEG thresholds
FLAT_UV = 0.1
RAIL_UV = 1e5
RAIL_FRACTION = 0.9
RAIL_MIN_UV = 100.0
DROPOUT_S = 0.25


class NoSignalError(ParameterError):
    """The input holds no usable signal (silence, a flat or railed channel, no face, ...).

    ``status`` names what is wrong (a :class:`Quality` status such as
    ``"no_speech"`` or ``"flat_channels"``, or ``"no_face"``), ``detail``
    says it in words; ``quality`` is the :class:`Quality` record when a check
    produced one.
    """

    status = "no_signal"

    def __init__(self, message="", *, status=None, detail=None, quality=None):
        super().__init__(message)
        if status is not None:
            self.status = str(status)
        self.detail = str(detail) if detail is not None else str(message)
        self.quality = quality

    @classmethod
    def from_quality(cls, quality, what="input"):
        return cls(f"{what}: {quality.status}: {quality.detail}", status=quality.status, detail=quality.detail,
                   quality=quality)


@dataclass(frozen=True)
class Quality:
    """Result of a quality check: ``status`` ("ok" or what is wrong), ``detail`` in words, ``metrics``."""

    status: str
    detail: str
    metrics: dict = field(default_factory=dict)
    bad_channels: tuple = ()

    @property
    def ok(self):
        return self.status == "ok"

    def raise_for_status(self, what="input"):
        """Raise :class:`NoSignalError` unless the status is "ok"; returns self otherwise."""
        if not self.ok:
            raise NoSignalError.from_quality(self, what)
        return self


# ------------------------------------------------------------------ helpers

def _runs(mask):
    """(starts, lengths) of the runs of True in a 1-D bool array."""
    m = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    d = np.diff(m.astype(np.int8))
    starts = np.flatnonzero(d == 1)
    ends = np.flatnonzero(d == -1)
    return starts, ends - starts


def _longest_identical_run(ch):
    """(length, start) of the longest run of identical consecutive samples."""
    if ch.shape[0] < 2:
        return ch.shape[0], 0
    starts, lengths = _runs(ch[1:] == ch[:-1])
    if lengths.size == 0:
        return 1, 0
    i = int(np.argmax(lengths))
    return int(lengths[i]) + 1, int(starts[i])


def _list(names, limit=8):
    names = [str(n) for n in names]
    return ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _rate(value, name):
    from affectedge.native_kernels._validate import check_rate

    return check_rate(value, name)


# -------------------------------------------------------------------- audio

def audio_quality(y, sample_rate_hz):
    """Quality of one mono recording: "ok", "nonfinite", "out_of_scale", "dc_only", "no_speech" or "clipped".

    ``y``: 1-D samples (``(n, 1)`` / ``(1, n)`` accepted), float in [-1, 1].
    See the module doc for the thresholds.
    """
    sr = _rate(sample_rate_hz, "sample_rate_hz")
    a = np.asarray(y)
    if a.ndim == 2 and 1 in a.shape:
        a = a.reshape(-1)
    if a.ndim != 1:
        raise ParameterError(f"audio must be mono 1-D samples; got shape {a.shape} (average the channels first)")
    if a.size == 0:
        raise ParameterError("audio is empty (0 samples)")
    if a.dtype.kind not in "fiub":
        raise ParameterError(f"audio must be numeric samples; got dtype {a.dtype}")
    n = a.shape[0]
    metrics = {"duration_s": n / sr, "sample_rate_hz": sr}
    if a.dtype.kind in "iub":
        info = np.iinfo(a.dtype) if a.dtype.kind != "b" else None
        scale = 2 ** (a.dtype.itemsize * 8 - 1) if info is not None else 1
        return Quality("out_of_scale", f"audio has integer dtype {a.dtype}; convert to float in [-1, 1] "
                       f"(y.astype(np.float32) / {scale})", metrics)
    finite = np.isfinite(a)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        metrics.update(nonfinite_samples=int(bad.size), first_nonfinite=int(bad[0]))
        return Quality("nonfinite", f"{bad.size} NaN/inf sample(s), the first at index {bad[0]} "
                       f"({bad[0] / sr:.3f} s); clean or drop them", metrics)
    x = a.astype(np.float64, copy=False)
    peak = float(np.max(np.abs(x)))
    mean = float(np.mean(x))
    ac = x - mean
    ac_std = float(np.std(ac))
    metrics.update(peak=peak, dc_offset=mean, ac_std=ac_std,
                   ac_rms_dbfs=float(20 * np.log10(max(ac_std, 1e-12))))
    if peak > OUT_OF_SCALE_PEAK:
        integral = bool(np.all(x[: min(n, 4096)] == np.round(x[: min(n, 4096)])))
        if peak <= 32768.0 * 1.001:
            fix = "it looks like int16 samples stored as float: divide by 32768"
        elif peak <= 2.0 ** 31 * 1.001:
            fix = "it looks like int32 samples stored as float: divide by 2147483648"
        else:
            fix = "scale it into [-1, 1]"
        return Quality("out_of_scale", f"float audio peaks at {peak:.6g}, beyond [-1, 1] "
                       f"({'integer values; ' if integral else ''}{fix})", metrics)
    if ac_std < DC_AC_STD and abs(mean) >= DC_MIN_OFFSET:
        return Quality("dc_only", f"the audio is a constant offset ({mean:+.4g}, variation {ac_std:.2g}): "
                       "no sound reached the microphone; check the input device", metrics)
    from affectedge.native_kernels import silence_features

    frame = max(16, int(round(FRAME_S * sr)))
    hop = max(1, int(round(HOP_S * sr)))
    s = silence_features(ac, sr=sr, threshold_db=ACTIVE_DBFS, frame_length=frame, hop_length=hop)
    active_s = float(np.count_nonzero(~s.mask) * hop / sr)
    active_s = min(active_s, n / sr)  # centred frames overhang the ends by half a frame
    metrics["active_s"] = active_s
    if active_s < MIN_ACTIVE_S:
        level = ("digital silence" if ac_std == 0 else f"the level is {metrics['ac_rms_dbfs']:.0f} dBFS RMS")
        return Quality("no_speech", f"only {active_s:.2f} s of {n / sr:.2f} s is above {ACTIVE_DBFS:g} dBFS "
                       f"(needs {MIN_ACTIVE_S:g} s; {level}): silence or background noise; speak closer to the "
                       "microphone or raise its gain", metrics)
    hot = np.abs(x) >= CLIP_LEVEL
    frac = float(np.count_nonzero(hot)) / n
    _, lengths = _runs(hot)
    longest = int(lengths.max()) if lengths.size else 0
    metrics.update(clipped_fraction=frac, longest_clip_run_s=longest / sr)
    if frac > CLIP_FRACTION or longest >= max(2, int(round(CLIP_RUN_S * sr))):
        return Quality("clipped", f"{100 * frac:.1f} % of samples are at full scale (|x| >= {CLIP_LEVEL}), the "
                       f"longest run {1000 * longest / sr:.1f} ms: the recording is clipped; lower the input gain",
                       metrics)
    return Quality("ok", f"{active_s:.2f} s of sound in {n / sr:.2f} s, peak {peak:.3f}", metrics)


# ---------------------------------------------------------------------- EEG

def eeg_quality(x, fs_hz, *, flat_uv=FLAT_UV, rail_uv=RAIL_UV, rail_fraction=RAIL_FRACTION, dropout_s=DROPOUT_S,
                channel_names=None):
    """Quality of an EEG window ``(channels, samples)`` in microvolts.

    Statuses: "ok", "nonfinite", "railed_channels", "flat_channels", "dropout"
    (see the module doc). ``bad_channels``: the channels with the reported
    status, as names when ``channel_names`` is given, else indices.
    """
    fs = _rate(fs_hz, "fs_hz")
    a = np.asarray(x)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ParameterError(f"EEG must be (channels, samples); got shape {np.shape(x)}")
    if a.dtype.kind not in "fiu":
        raise ParameterError(f"EEG must be numeric; got dtype {a.dtype}")
    c, n = a.shape
    if channel_names is not None:
        channel_names = tuple(str(s) for s in channel_names)
        if len(channel_names) != c:
            raise ParameterError(f"{len(channel_names)} channel names for {c} channels")
    label = (lambda i: channel_names[i]) if channel_names is not None else (lambda i: i)
    shown = (lambda i: channel_names[i]) if channel_names is not None else (lambda i: f"channel {i}")
    a = a.astype(np.float64, copy=False)
    dropout_n = max(2, int(round(float(dropout_s) * fs)))
    status = ["ok"] * c
    why = [""] * c
    std = np.full(c, np.nan)
    max_abs = np.full(c, np.nan)
    longest = np.zeros(c)
    for i in range(c):
        ch = a[i]
        fin = np.isfinite(ch)
        if not fin.all():
            bad = np.flatnonzero(~fin)
            status[i] = "nonfinite"
            why[i] = f"{bad.size} NaN/inf sample(s), first at sample {bad[0]}"
            continue
        std[i] = float(np.std(ch))
        m = float(np.max(np.abs(ch)))
        max_abs[i] = m
        run, start = _longest_identical_run(ch)
        longest[i] = run / fs
        at_rail = np.count_nonzero(np.abs(ch) == m) / n
        if m > rail_uv:
            status[i] = "railed_channels"
            why[i] = f"|x| reaches {m:.4g} uV > {rail_uv:g} uV (not microvolts, or the amplifier rails)"
        elif m >= RAIL_MIN_UV and at_rail >= rail_fraction:
            status[i] = "railed_channels"
            why[i] = f"{100 * at_rail:.0f} % of samples stuck at {m:.4g} uV"
        elif std[i] < flat_uv:
            status[i] = "flat_channels"
            why[i] = f"flat: std {std[i]:.3g} uV < {flat_uv:g} uV (electrode off or not connected)"
        elif run >= dropout_n:
            status[i] = "dropout"
            why[i] = (f"holds {ch[start]:.4g} uV for {run / fs:.2f} s from sample {start} (>= {dropout_s:g} s: "
                      "dropped samples or a loose contact)")
    metrics = {"channel_status": list(status),
               "std_uv": [None if not np.isfinite(v) else float(v) for v in std],
               "max_abs_uv": [None if not np.isfinite(v) else float(v) for v in max_abs],
               "longest_identical_run_s": [float(v) for v in longest],
               "duration_s": n / fs, "fs_hz": fs}
    bad = {st: [i for i in range(c) if status[i] == st] for st in EEG_STATUSES[1:]}
    bad = {k: v for k, v in bad.items() if v}
    if bad:
        metrics["bad_by_status"] = {k: [label(i) for i in v] for k, v in bad.items()}
        st, idx = next(iter(bad.items()))
        if len(idx) <= 3:
            detail = "; ".join(f"{shown(i)}: {why[i]}" for i in idx)
        else:
            detail = (f"{len(idx)} of {c} channels ({_list(shown(i) for i in idx)}), e.g. {shown(idx[0])}: "
                      f"{why[idx[0]]}")
        others = [f"{k.replace('_channels', '')}: {_list(shown(i) for i in v)}" for k, v in bad.items() if k != st]
        if others:
            detail += " (also " + "; ".join(others) + ")"
        return Quality(st, detail, metrics, tuple(label(i) for i in idx))
    return Quality("ok", f"{c} live channel(s), {n / fs:.2f} s, std {np.nanmin(std):.3g}-{np.nanmax(std):.3g} uV",
                   metrics)


# ---------------------------------------------------------- EEG artefacts (Muse)

ARTEFACT_STATUS = "artefact"
ARTEFACT_PTP_RATIO = 3.0
ARTEFACT_HF_RATIO = 10.0
ARTEFACT_HF_BAND = (30.0, 45.0)
ARTEFACT_MIN_HISTORY = 8
ARTEFACT_HISTORY = 600


def eeg_artefact_measures(x, fs_hz, *, segment_s=1.0):
    """Per channel of ``x`` (channels, samples) in uV: (peak-to-peak uV, 30-45 Hz power in uV^2/Hz).

    The high-frequency power is the largest over ``segment_s`` Hann segments
    (half-overlapping), so that a short burst anywhere in the window counts
    fully (one taper over the whole window would hide a burst at its edge).
    """
    fs = _rate(fs_hz, "fs_hz")
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] < 8:
        raise ParameterError(f"EEG window must be (channels, samples) with at least 8 samples; got shape {a.shape}")
    ptp = np.ptp(a, axis=1)
    seg = max(8, min(a.shape[1], int(round(segment_s * fs))))
    starts = sorted(set(list(range(0, a.shape[1] - seg + 1, max(1, seg // 2))) + [a.shape[1] - seg]))
    f = np.fft.rfftfreq(seg, 1.0 / fs)
    band = (f >= ARTEFACT_HF_BAND[0]) & (f < min(ARTEFACT_HF_BAND[1], fs / 2))
    if not band.any():
        return ptp, np.zeros(a.shape[0])
    win = np.hanning(seg)
    segs = np.stack([a[:, s:s + seg] for s in starts], axis=1)  # (channels, n_segments, seg)
    segs = segs - segs.mean(axis=2, keepdims=True)
    spec = np.abs(np.fft.rfft(segs * win, axis=2)) ** 2 / (fs * np.sum(win ** 2))
    return ptp, spec[:, :, band].mean(axis=2).max(axis=1)


class ArtefactDetector:
    """Blink / muscle artefacts of one session, relative to the session's own running median.

    Each :meth:`check` of a ``(channels, samples)`` window (uV) measures the
    peak-to-peak amplitude of the ``blink_channels`` (Muse: AF7, AF8, above
    the eyes) and the 30-45 Hz power of the ``muscle_channels`` (Muse: TP9,
    TP10, over the jaw muscles), compares them with the median of the same
    measures over the session's previous windows (at most ``history``) and
    returns Quality ``"artefact"`` when a blink channel's peak-to-peak exceeds
    ``ptp_ratio`` (3) x its median or a muscle channel's high-frequency power
    exceeds ``hf_ratio`` (10) x its median; "ok" otherwise. The first
    ``min_history`` (8) windows of a session have no reference yet: they are
    "ok" unless :func:`eeg_quality` refuses them. Every window, artefact or
    not, joins the history (the median is robust to the few artefacts).

    Training (``affectedge.training.mental_state``) runs this same class over
    each recording in order, with the runtime's 1 s hop, so the windows
    rejected in training are the ones the runtime refuses. Measured on the
    Muse mental-state corpus: see ``reports/mental-state/report.json``
    ("artefacts").
    """

    def __init__(self, channel_names, fs_hz, *, blink_channels=("AF7", "AF8"), muscle_channels=("TP9", "TP10"),
                 ptp_ratio=ARTEFACT_PTP_RATIO, hf_ratio=ARTEFACT_HF_RATIO, min_history=ARTEFACT_MIN_HISTORY,
                 history=ARTEFACT_HISTORY):
        self.fs = _rate(fs_hz, "fs_hz")
        names = [str(c).upper() for c in channel_names]
        missing = [c for c in (*blink_channels, *muscle_channels) if c.upper() not in names]
        if missing:
            raise ParameterError(f"artefact detection needs channels {missing}; the window's channels are "
                                 f"{list(channel_names)} (pass blink_channels= / muscle_channels= that exist)")
        self.channel_names = tuple(str(c) for c in channel_names)
        self.blink = [names.index(c.upper()) for c in blink_channels]
        self.muscle = [names.index(c.upper()) for c in muscle_channels]
        if not (float(ptp_ratio) > 1 and float(hf_ratio) > 1):
            raise ParameterError(f"ptp_ratio={ptp_ratio!r} and hf_ratio={hf_ratio!r} must both be > 1")
        self.ptp_ratio, self.hf_ratio = float(ptp_ratio), float(hf_ratio)
        self.min_history = max(1, int(min_history))
        self._ptp = collections.deque(maxlen=int(history))
        self._hf = collections.deque(maxlen=int(history))

    def reset(self):
        self._ptp.clear()
        self._hf.clear()

    @property
    def n_history(self):
        return len(self._ptp)

    def check(self, x):
        a = np.asarray(x, dtype=np.float64)
        if a.ndim != 2 or a.shape[0] != len(self.channel_names):
            raise ParameterError(f"EEG window has shape {a.shape}; ({len(self.channel_names)}, samples) is needed "
                                 f"with channels {', '.join(self.channel_names)}")
        if not np.all(np.isfinite(a)):
            return Quality("nonfinite", "the window holds NaN/inf samples; artefacts not checked")
        ptp, hf = eeg_artefact_measures(a, self.fs)
        metrics = {"ptp_uv": ptp.tolist(), "hf_power": hf.tolist(), "history": self.n_history}
        status, why = "ok", []
        if self.n_history >= self.min_history:
            mp = np.median(np.asarray(self._ptp), axis=0)
            mh = np.median(np.asarray(self._hf), axis=0)
            metrics.update(median_ptp_uv=mp.tolist(), median_hf_power=mh.tolist())
            for i in self.blink:
                if ptp[i] > self.ptp_ratio * max(mp[i], 1e-9):
                    why.append(f"{self.channel_names[i]}: peak-to-peak {ptp[i]:.0f} uV is {ptp[i] / max(mp[i], 1e-9):.1f}"
                               f" x the session median {mp[i]:.0f} uV (blink or eye movement)")
            for i in self.muscle:
                if hf[i] > self.hf_ratio * max(mh[i], 1e-12):
                    why.append(f"{self.channel_names[i]}: {ARTEFACT_HF_BAND[0]:g}-{ARTEFACT_HF_BAND[1]:g} Hz power is "
                               f"{hf[i] / max(mh[i], 1e-12):.0f} x the session median (jaw clench or muscle)")
        self._ptp.append(ptp)
        self._hf.append(hf)
        if why:
            status = ARTEFACT_STATUS
            return Quality(status, "; ".join(why) + ": no prediction for this window (relax the face, keep still)",
                           metrics, tuple(self.channel_names[i] for i in self.blink + self.muscle
                                          if any(w.startswith(self.channel_names[i] + ":") for w in why)))
        return Quality("ok", f"no blink / muscle artefact ({self.n_history - 1} windows of session history)", metrics)
