"""Silence features after Atmaja & Akagi, "The Effect of Silence Feature in
Dimensional Speech Emotion Recognition" (2020).

A frame is *silent* when its RMS is at or below ``threshold_factor`` times the
mean RMS of the utterance (the paper's rule, ``rms <= factor * mean(rms)``;
default factor 0.3, the paper's best for arousal). As an alternative,
``threshold_db`` sets an absolute level in dBFS (full scale = 1.0): a frame is
silent when ``20 log10(rms) <= threshold_db``.

Frame RMS is computed exactly as ``librosa.feature.rms`` (no window; with
``center=True`` the signal is padded with ``frame_length // 2`` zeros on each
side), with librosa's defaults frame_length=2048, hop_length=512 as in the
paper's code. Durations are in seconds: a run of ``k`` consecutive silent
frames lasts ``k * hop_length / sr``.

Outputs (:class:`SilenceFeatures`): silence ratio (share of silent frames),
number of silent segments (maximal runs of silent frames), mean and longest
silent-segment duration, and the per-frame mask.

Streaming (:class:`StreamingSilence`) cannot know the utterance's mean RMS in
advance, so it judges each frame against the *running* mean of the RMS of all
frames so far (this one included). Early frames are therefore judged against
a partial mean and the mask can differ from the batch mask there; once the
mean settles, the two agree. ``finalize()`` recomputes the features with the
final mean over all frames and equals the batch result exactly.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from affectedge.errors import ParameterError

from . import _config
from ._config import njit
from ._validate import check_positive_int, check_rate, check_real, prepare_signal

__all__ = ["SilenceFeatures", "StreamingSilence", "silence_features"]


@dataclass(frozen=True)
class SilenceFeatures:
    """Silence features of one utterance (or of a stream so far).

    ``mask`` and ``rms`` have one entry per frame; ``threshold`` is the RMS
    level that separated silent from voiced frames.
    """

    ratio: float
    n_segments: int
    mean_segment_s: float
    longest_segment_s: float
    threshold: float
    mask: np.ndarray = field(repr=False)
    rms: np.ndarray = field(repr=False)

    NAMES = ("silence_ratio", "silent_segments", "mean_silence_s", "longest_silence_s")

    def as_array(self, dtype=np.float32):
        """The four scalar features, in the order of ``SilenceFeatures.NAMES``."""
        return np.array([self.ratio, self.n_segments, self.mean_segment_s, self.longest_segment_s], dtype=dtype)


def _check_params(sr, frame_length, hop_length, threshold_factor, threshold_db):
    sr = check_rate(sr)
    frame_length = check_positive_int(frame_length, "frame_length")
    hop_length = check_positive_int(hop_length, "hop_length")
    if threshold_db is not None:
        threshold_db = check_real(threshold_db, "threshold_db", maximum=0.0)
    else:
        threshold_factor = check_real(threshold_factor, "threshold_factor", minimum=0.0, strict_min=True)
    return sr, frame_length, hop_length, threshold_factor, threshold_db


# ------------------------------ NumPy twins -------------------------------


def _twin_rms(y, frame_length, hop_length):
    frames = np.lib.stride_tricks.sliding_window_view(y, frame_length)[::hop_length]
    return np.sqrt(np.mean(np.abs(frames) ** 2, axis=-1))


def _twin_runs(mask):
    """(n_segments, longest run, total silent frames) of a boolean mask."""
    padded = np.concatenate(([0], mask.astype(np.int8), [0]))
    edges = np.diff(padded)
    starts = np.flatnonzero(edges == 1)
    stops = np.flatnonzero(edges == -1)
    lengths = stops - starts
    return len(lengths), int(lengths.max()) if len(lengths) else 0, int(lengths.sum())


# ------------------------------ Numba kernels -----------------------------


@njit(inline="always")
def _sumsq(x, start, n):
    acc = 0.0
    for i in range(n):
        v = x[start + i]
        acc += v * v
    return acc


@njit
def _rms_kernel(y, pad, frame_length, hop_length, n_frames, out):
    """RMS of frames of y, with ``pad`` implied zeros on each side."""
    n = y.shape[0]
    for t in range(n_frames):
        start = t * hop_length - pad
        lo = max(start, 0)
        hi = min(start + frame_length, n)
        acc = _sumsq(y, lo, hi - lo) if hi > lo else 0.0
        out[t] = math.sqrt(acc / frame_length)


@njit
def _mask_runs_kernel(rms, threshold, mask):
    """Fill mask (rms <= threshold); return (segments, longest, silent frames)."""
    segments = 0
    longest = 0
    total = 0
    run = 0
    for t in range(rms.shape[0]):
        silent = rms[t] <= threshold
        mask[t] = silent
        if silent:
            run += 1
            total += 1
            if run == 1:
                segments += 1
            if run > longest:
                longest = run
        else:
            run = 0
    return segments, longest, total


def _frame_count(n, frame_length, hop_length, center):
    padded = n + 2 * (frame_length // 2) if center else n
    return 0 if padded < frame_length else 1 + (padded - frame_length) // hop_length


def _features_from_rms(rms, threshold, hop_length, sr):
    n = rms.shape[0]
    if _config.use_jit():
        mask = np.empty(n, dtype=np.bool_)
        segments, longest, total = _mask_runs_kernel(rms, float(threshold), mask)
    else:
        mask = rms <= threshold
        segments, longest, total = _twin_runs(mask)
    hop_s = hop_length / sr
    return SilenceFeatures(
        ratio=total / n,
        n_segments=int(segments),
        mean_segment_s=(total / segments) * hop_s if segments else 0.0,
        longest_segment_s=longest * hop_s,
        threshold=float(threshold),
        mask=mask,
        rms=rms,
    )


def _threshold(rms, threshold_factor, threshold_db):
    if threshold_db is not None:
        return 10.0 ** (threshold_db / 20.0)
    return threshold_factor * float(np.mean(rms, dtype=np.float64))


def silence_features(
    y,
    *,
    sr,
    threshold_factor=0.3,
    threshold_db=None,
    frame_length=2048,
    hop_length=512,
    center=True,
    nan_policy="raise",
):
    """Silence features of one utterance.

    ``y``: mono float32/float64 audio at ``sr`` Hz. ``threshold_factor``:
    silent frames have RMS <= factor x mean RMS (ignored when
    ``threshold_db`` is given). Returns :class:`SilenceFeatures`.
    """
    sr, frame_length, hop_length, threshold_factor, threshold_db = _check_params(
        sr, frame_length, hop_length, threshold_factor, threshold_db
    )
    y = prepare_signal(
        y,
        "y",
        min_length=1 if center else frame_length,
        nan_policy=nan_policy,
        length_hint=f" (frame_length={frame_length})",
    )
    pad = frame_length // 2 if center else 0
    n_frames = _frame_count(y.shape[0], frame_length, hop_length, center)
    if _config.use_jit():
        rms = np.empty(n_frames, dtype=y.dtype)
        _rms_kernel(y, pad, frame_length, hop_length, n_frames, rms)
    else:
        rms = _twin_rms(np.pad(y, pad) if pad else y, frame_length, hop_length).astype(y.dtype)
    return _features_from_rms(rms, _threshold(rms, threshold_factor, threshold_db), hop_length, sr)


class StreamingSilence:
    """Silence features over a live stream (center=False framing).

    ``push(chunk)`` returns the silence mask of the frames the chunk
    completed, each judged against the running mean RMS (see the module
    docstring for how this differs from the batch rule). ``summary()`` gives
    :class:`SilenceFeatures` of the stream so far under the running rule;
    ``finalize()`` recomputes them with the final mean, equal to
    ``silence_features(all_samples, center=False)``.
    """

    def __init__(self, *, sr, threshold_factor=0.3, threshold_db=None, frame_length=2048, hop_length=512,
                 dtype=np.float32):
        (self.sr, self.frame_length, self.hop_length, self.threshold_factor,
         self.threshold_db) = _check_params(sr, frame_length, hop_length, threshold_factor, threshold_db)
        if np.dtype(dtype) not in (np.float32, np.float64):
            raise ParameterError(f"dtype={dtype!r} must be np.float32 or np.float64")
        self.dtype = np.dtype(dtype).type
        self.reset()

    def reset(self):
        self._buf = np.zeros(0, dtype=self.dtype)
        self._rms = []
        self._mask = []
        self._sum = 0.0

    def push(self, chunk):
        """Feed samples; returns the boolean mask of the newly completed frames."""
        chunk = np.asarray(chunk)
        if chunk.ndim != 1:
            raise ParameterError(f"chunk has shape {chunk.shape}; mono audio (1-dimensional) is required")
        if chunk.dtype not in (np.float32, np.float64):
            raise ParameterError(f"chunk has dtype {chunk.dtype}; float audio in [-1, 1] is required")
        if not np.isfinite(chunk).all():
            bad = int(np.argmax(~np.isfinite(chunk)))
            raise ParameterError(
                f"chunk contains {chunk[bad]} at index {bad}; nothing from this chunk was consumed. "
                "Clean the audio (e.g. np.nan_to_num) before pushing"
            )
        buf = np.concatenate((self._buf, chunk.astype(self.dtype, copy=False)))
        n_frames = _frame_count(buf.shape[0], self.frame_length, self.hop_length, False)
        if n_frames == 0:
            self._buf = buf
            return np.zeros(0, dtype=np.bool_)
        if _config.use_jit():
            rms = np.empty(n_frames, dtype=self.dtype)
            _rms_kernel(buf, 0, self.frame_length, self.hop_length, n_frames, rms)
        else:
            rms = _twin_rms(buf, self.frame_length, self.hop_length).astype(self.dtype)
        self._buf = buf[n_frames * self.hop_length :].copy()
        new_mask = np.empty(n_frames, dtype=np.bool_)
        for i, r in enumerate(rms):
            self._sum += float(r)
            self._rms.append(r)
            count = len(self._rms)
            if self.threshold_db is not None:
                thr = 10.0 ** (self.threshold_db / 20.0)
            else:
                thr = self.threshold_factor * (self._sum / count)
            new_mask[i] = r <= thr
        self._mask.extend(new_mask.tolist())
        return new_mask

    def _summary(self, mask, threshold):
        rms = np.asarray(self._rms, dtype=self.dtype)
        if rms.size == 0:
            raise ParameterError("no complete frame yet: push at least frame_length samples first")
        mask = np.asarray(mask, dtype=np.bool_)
        segments, longest, total = _twin_runs(mask)
        hop_s = self.hop_length / self.sr
        return SilenceFeatures(
            ratio=total / rms.size,
            n_segments=segments,
            mean_segment_s=(total / segments) * hop_s if segments else 0.0,
            longest_segment_s=longest * hop_s,
            threshold=float(threshold),
            mask=mask,
            rms=rms,
        )

    def summary(self):
        """Features so far under the running-mean rule."""
        count = max(len(self._rms), 1)
        thr = (10.0 ** (self.threshold_db / 20.0) if self.threshold_db is not None
               else self.threshold_factor * self._sum / count)
        return self._summary(self._mask, thr)

    def finalize(self):
        """Features with the final mean RMS: equal to the batch result."""
        rms = np.asarray(self._rms, dtype=self.dtype)
        if rms.size == 0:
            raise ParameterError("no complete frame yet: push at least frame_length samples first")
        thr = _threshold(rms, self.threshold_factor, self.threshold_db)
        return _features_from_rms(rms, thr, self.hop_length, self.sr)
