"""Fundamental frequency (F0): YIN and probabilistic YIN, librosa-compatible.

:func:`pitch` follows ``librosa.yin`` / ``librosa.pyin`` (librosa 0.10/0.11)
step by step, with the same parameters and defaults (except ``fmin=65``,
``fmax=400``, ``frame_length=1024``: speech at 16 kHz): the same framing
(``center=True`` pads ``frame_length // 2`` samples on each side with
``np.pad(mode=pad_mode)``; ``hop_length`` defaults to ``frame_length // 4``),
hence the same frame count; the cumulative mean normalized difference
function (CMNDF) computed from an FFT autocorrelation of each whole frame,
with librosa's exact arithmetic (its difference term omits the frame-tail
energy and zeroes the first cumulative energy term, as librosa does);
parabolic interpolation of troughs; for pYIN, the beta-distributed thresholds
(``n_thresholds``, ``beta_parameters``), the Boltzmann prior over troughs
(``boltzmann_parameter``), ``no_trough_prob``, pitch bins of ``resolution``
semitones (``n_bins_per_semitone = ceil(1 / resolution)``) from ``fmin``, the
local triangular transition of width ``round(max_transition_rate * 12 *
hop_length / sr) * n_bins_per_semitone + 1`` bins, the voiced/unvoiced
``switch_prob``, and Viterbi decoding from a uniform initial distribution.

What comes back (:class:`PitchResult`):

* ``method="pyin"``: as ``librosa.pyin``: ``f0`` in Hz on the pitch-bin grid
  (``fmin * 2 ** (k / (12 * n_bins_per_semitone))``), NaN where unvoiced
  (``fill_na``; ``fill_na=None`` keeps the decoded best guess),
  ``voiced_flag`` from the Viterbi path, ``voiced_prob`` the summed voiced
  observation probability.
* ``method="yin"``: ``f0`` as ``librosa.yin`` (every frame has a value, never
  NaN). librosa returns no voicing; here ``voiced_flag`` is True where a
  trough lies below ``trough_threshold`` (otherwise YIN falls back to the
  global minimum), and ``voiced_prob`` is ``clip(1 - cmndf(period), 0, 1)``.

Precision: float32 input is framed and autocorrelated in float32 and float64
in float64, and ``f0`` / ``voiced_prob`` keep the input's dtype. As in
librosa the CMNDF itself is float64 (librosa's division by the integer lag
promotes it), and the Viterbi runs in float64.

Speed: the Viterbi exploits the banded transition matrix. For each state only
the in-band predecessors are scanned; all out-of-band transitions carry the
same log weight ``log(tiny)``, so their best is the global maximum of the
previous column plus that constant. This gives the same path as librosa's
dense Viterbi, ties included (first index wins), at a fraction of the cost.
With rocket-fft the autocorrelations are batched FFTs inside the kernel;
without it a direct O(frame_length x max_period) loop is used.

Streaming (:class:`StreamingPitch`, ``center=False`` framing): frame ``i``
covers samples ``[i * hop, i * hop + frame_length)`` and its CMNDF is computed
as soon as its last sample arrives. YIN frames are final at once (latency:
0 frames after the frame is complete), equal to the batch result. pYIN uses
fixed-lag Viterbi decoding: when frame ``t`` arrives, the path is traced back
from the best state at ``t`` and frame ``t - lag`` is emitted (latency:
``lag`` frames, default 50 = 0.5 s at a 10 ms hop; on EmoDB speech at a
10 ms hop, lag 20 gives 93-100 % voicing agreement with batch per clip, lag
40 >= 98 %, lag 60 100 %). The forward pass is the batch one, so the only difference from ``pitch(..., center=False)`` is that an
emitted frame cannot be revised by evidence arriving more than ``lag`` frames
later (emitted frames are never revised). ``finalize()`` flushes the last
``lag`` frames from the final best state; with ``keep_history=True`` it
instead re-decodes the whole stream from the kept observation probabilities
and equals the batch result exactly (memory: 8 x (n_pitch_bins + 2) bytes per
frame, about 2.5 kB with the defaults).

Viterbi memory (batch): the kernel stores each frame's value column (8 x 2 x
n_pitch_bins bytes per frame, 19 MB for 60 s at hop 256) and derives the
back-pointers only along the decoded path, each with librosa's first-argmax
rule.

(The module is ``f0``, not ``pitch``, so that ``affectedge.native_kernels.pitch``
is always the function.)
"""

import math
import numbers
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from affectedge.errors import ParameterError

from . import _config
from ._config import njit
from ._validate import check_choice, check_positive_int, check_rate, check_real, finite_stream_chunk, prepare_signal

__all__ = ["PitchResult", "StreamingPitch", "pitch"]

METHODS = ("pyin", "yin")
PAD_MODES = ("constant", "edge", "reflect", "symmetric", "wrap")
_TINY = float(np.finfo(np.float64).tiny)  # librosa.util.tiny of float64 arrays
_LOG_TINY = math.log(_TINY)
_BLOCK = 64  # frames per batched FFT in the kernel


@dataclass(frozen=True)
class PitchResult:
    """Per-frame pitch track.

    ``f0`` (Hz; NaN on unvoiced pYIN frames unless ``fill_na`` says
    otherwise), ``voiced_flag`` (bool) and ``voiced_prob`` have one entry per
    frame. With ``center=True`` frame ``i`` is centred on sample
    ``i * hop_length``; with ``center=False`` it starts there.
    """

    f0: np.ndarray = field(repr=False)
    voiced_flag: np.ndarray = field(repr=False)
    voiced_prob: np.ndarray = field(repr=False)
    sr: float
    hop_length: int
    frame_length: int
    method: str
    center: bool

    @property
    def n_frames(self):
        return int(self.f0.shape[0])

    def times(self):
        """Time (s) of each frame's centre, as ``librosa.times_like`` for center=True."""
        offset = 0.0 if self.center else self.frame_length / 2
        return (np.arange(self.n_frames) * self.hop_length + offset) / self.sr


# --------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------


def _next_fast_len(n):
    """Smallest 2^a 3^b 5^c >= n (scipy.fft.next_fast_len(n, real=True))."""
    best = 1 << (n - 1).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            q = p35
            while q < n:
                q *= 2
            best = min(best, q)
            p35 *= 3
        p5 *= 5
    return best


def _betainc(a, b, x):
    """Regularized incomplete beta I_x(a, b) (continued fraction, Lentz)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1.0) / (a + b + 2.0):
        return 1.0 - _betainc(b, a, 1.0 - x)
    lbeta = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    front = math.exp(lbeta + a * math.log(x) + b * math.log1p(-x)) / a
    tiny = 1e-300
    f, c, d = 1.0, 1.0, 0.0
    for i in range(400):
        m = i // 2
        if i == 0:
            num = 1.0
        elif i % 2 == 0:
            num = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        else:
            num = -((a + m) * (a + b + m) * x) / ((a + 2 * m) * (a + 2 * m + 1))
        d = 1.0 + num * d
        d = tiny if abs(d) < tiny else d
        d = 1.0 / d
        c = 1.0 + num / c
        c = tiny if abs(c) < tiny else c
        f *= c * d
        if abs(1.0 - c * d) < 1e-16:
            break
    return front * (f - 1.0)


def _beta_cdf(x, a, b):
    try:  # the same routine librosa uses, for bit-level parity
        from scipy.stats import beta as _beta

        return np.asarray(_beta.cdf(x, a, b), dtype=np.float64)
    except ImportError:
        return np.array([_betainc(a, b, float(v)) for v in x])


def _triangle(m):
    """scipy.signal.get_window('triangle', m, fftbins=False)."""
    n = np.arange(1, (m + 1) // 2 + 1)
    if m % 2 == 0:
        w = (2 * n - 1.0) / m
        return np.r_[w, w[::-1]]
    w = 2 * n / (m + 1.0)
    return np.r_[w, w[-2::-1]]


def _transition_local(n_states, width):
    """librosa.sequence.transition_local(n, width, window='triangle', wrap=False)."""
    trans = np.zeros((n_states, n_states), dtype=np.float64)
    win = _triangle(width)
    lpad = (n_states - width) // 2
    centred = np.zeros(n_states)
    centred[lpad : lpad + width] = win
    for i in range(n_states):
        row = np.roll(centred, n_states // 2 + i + 1)
        row[min(n_states, i + width // 2 + 1) :] = 0
        row[: max(0, i - width // 2)] = 0
        trans[i] = row
    trans /= trans.sum(axis=1, keepdims=True)
    return trans


class _Setup:
    """Everything derived from the parameters (cached)."""


def _check_params(sr, fmin, fmax, frame_length, hop_length, method, center, pad_mode, trough_threshold,
                  n_thresholds, beta_parameters, boltzmann_parameter, resolution, max_transition_rate,
                  switch_prob, no_trough_prob):
    sr = check_rate(sr)
    check_choice(method, "method", METHODS)
    frame_length = check_positive_int(frame_length, "frame_length", 4)
    hop_length = frame_length // 4 if hop_length is None else check_positive_int(hop_length, "hop_length")
    fmin = check_real(fmin, "fmin", minimum=0.0, strict_min=True)
    fmax = check_real(fmax, "fmax", minimum=0.0, strict_min=True)
    if fmin >= fmax:
        raise ParameterError(f"fmin={fmin:g} must be less than fmax={fmax:g} (Hz); swap them or widen the range")
    if fmax > sr / 2:
        raise ParameterError(
            f"fmax={fmax:g} Hz exceeds the Nyquist frequency sr/2 = {sr / 2:g} Hz; lower fmax or resample"
        )
    if sr / fmin >= frame_length - 1:
        raise ParameterError(
            f"frame_length={frame_length} is too short for fmin={fmin:g} Hz at sr={sr:g}: one period of fmin "
            f"({sr / fmin:.1f} samples) must fit in frame_length - 1. Use fmin >= {sr / (frame_length - 1):.3f} "
            f"or frame_length >= {int(math.ceil(sr / fmin) + 2)}"
        )
    if not isinstance(center, (bool, np.bool_)):
        raise ParameterError(f"center={center!r} must be True or False")
    check_choice(pad_mode, "pad_mode", PAD_MODES)
    trough_threshold = check_real(trough_threshold, "trough_threshold", minimum=0.0, strict_min=True)
    n_thresholds = check_positive_int(n_thresholds, "n_thresholds")
    try:
        a, b = (float(v) for v in beta_parameters)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"beta_parameters={beta_parameters!r} must be two positive numbers (a, b)") from exc
    if not (a > 0 and b > 0 and math.isfinite(a) and math.isfinite(b)):
        raise ParameterError(f"beta_parameters={beta_parameters!r} must be two positive finite numbers (a, b)")
    boltzmann_parameter = check_real(boltzmann_parameter, "boltzmann_parameter", minimum=0.0, strict_min=True)
    resolution = check_real(resolution, "resolution", minimum=0.0, strict_min=True, maximum=1.0)
    max_transition_rate = check_real(max_transition_rate, "max_transition_rate", minimum=0.0, strict_min=True)
    for name, p in (("switch_prob", switch_prob), ("no_trough_prob", no_trough_prob)):
        v = check_real(p, name)
        if not 0.0 < v < 1.0:
            raise ParameterError(f"{name}={p!r} must be a probability strictly between 0 and 1")
    return (sr, float(fmin), float(fmax), frame_length, hop_length, method, bool(center), pad_mode,
            trough_threshold, n_thresholds, (a, b), boltzmann_parameter, resolution, max_transition_rate,
            float(switch_prob), float(no_trough_prob))


@lru_cache(maxsize=16)
def _setup(sr, fmin, fmax, frame_length, hop_length, method, n_thresholds, beta_parameters, boltzmann_parameter,
           resolution, max_transition_rate, switch_prob, no_trough_prob):
    s = _Setup()
    s.min_p = int(np.floor(sr / fmax))
    s.max_p = min(int(np.ceil(sr / fmin)), frame_length - 1)
    s.n_lags = s.max_p - s.min_p + 1
    s.nfft = _next_fast_len(2 * frame_length - 1)
    if method != "pyin":
        return s
    s.thresholds = np.linspace(0, 1, n_thresholds + 1)
    s.beta_probs = np.diff(_beta_cdf(s.thresholds, *beta_parameters))
    s.beta_cum = np.array([np.sum(s.beta_probs[:k]) for k in range(n_thresholds + 1)])
    lam = boltzmann_parameter
    counts = np.arange(s.n_lags + 1, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        s.boltz_fact = (1 - np.exp(-lam)) / (1 - np.exp(-lam * counts))  # index: number of troughs
    s.boltz_fact[0] = 0.0
    s.boltz_exp = np.exp(-lam * np.arange(s.n_lags + 1, dtype=np.float64))  # index: trough rank
    s.nbps = int(np.ceil(1.0 / resolution))
    s.n_bins = int(np.floor(12 * s.nbps * np.log2(fmax / fmin))) + 1
    if s.n_bins < 2:
        raise ParameterError(f"fmin={fmin:g}..fmax={fmax:g} Hz spans fewer than 2 pitch bins; widen the range")
    max_semitones = round(max_transition_rate * 12 * hop_length / sr)
    width = max_semitones * s.nbps + 1
    if width > s.n_bins:
        raise ParameterError(
            f"max_transition_rate={max_transition_rate:g} gives a transition {width} bins wide, more than the "
            f"{s.n_bins} pitch bins between fmin and fmax; lower max_transition_rate or hop_length"
        )
    local = _transition_local(s.n_bins, width)
    p = 1 - switch_prob
    t_switch = np.array([[p, 1.0 - p], [1.0 - p, p]])
    log_trans = np.log(np.kron(t_switch, local) + _TINY)
    n = s.n_bins
    nz = np.nonzero(local)
    s.half = h = int(np.max(np.abs(nz[0] - nz[1])))
    lt = np.full((2 * n, 2, 2 * h + 1), _LOG_TINY)
    for k in range(2 * n):
        kb = k % n
        lo, hi = max(0, kb - h), min(n, kb + h + 1)
        o0 = lo - (kb - h)
        for blk in (0, 1):
            lt[k, blk, o0 : o0 + hi - lo] = log_trans[k, blk * n + lo : blk * n + hi]
    s.lt = lt
    s.ltmax = lt.reshape(2 * n, -1).max(axis=1)
    s.log_trans = log_trans  # dense, for the NumPy twin
    s.log_init = float(np.log(1.0 / (2 * n) + _TINY))
    s.freqs = fmin * 2 ** (np.arange(n) / (12 * s.nbps))
    return s


# --------------------------------------------------------------------------
# NumPy twins (librosa's algorithm, vectorised as librosa does)
# --------------------------------------------------------------------------


def _twin_cmndf(yp, frame_length, hop_length, s):
    frames = np.lib.stride_tricks.sliding_window_view(yp, frame_length)[::hop_length]
    spec = np.fft.rfft(frames, n=s.nfft, axis=-1)
    acf = np.fft.irfft(spec.real ** 2 + spec.imag ** 2, n=s.nfft, axis=-1)
    acf = acf[:, : min(s.max_p + 1, frame_length)].astype(yp.dtype, copy=False)
    sq = np.cumsum(np.square(frames[:, : s.max_p]), axis=-1)
    sq[:, 0] = 0
    d = np.empty((frames.shape[0], s.max_p + 1), dtype=yp.dtype)
    d[:, 0] = 0
    d[:, 1:] = 2 * (acf[:, 0:1] - acf[:, 1 : s.max_p + 1]) - sq
    cmean = np.cumsum(d[:, 1:], axis=-1) / np.arange(1, s.max_p + 1)
    cmndf = d[:, s.min_p :] / (cmean[:, s.min_p - 1 :] + _TINY)
    a = cmndf[:, 2:] + cmndf[:, :-2] - 2 * cmndf[:, 1:-1]
    b = (cmndf[:, 2:] - cmndf[:, :-2]) / 2
    shifts = np.zeros_like(cmndf)
    with np.errstate(divide="ignore", invalid="ignore"):
        shifts[:, 1:-1] = np.where(np.abs(b) >= np.abs(a), 0.0, -b / a)
    return cmndf, shifts


def _twin_troughs(cmndf):
    is_trough = np.zeros(cmndf.shape, dtype=bool)
    is_trough[:, 1:-1] = (cmndf[:, 1:-1] < cmndf[:, :-2]) & (cmndf[:, 1:-1] <= cmndf[:, 2:])
    is_trough[:, 0] = cmndf[:, 0] < cmndf[:, 1]
    is_trough[:, -1] = cmndf[:, -1] < cmndf[:, -2]
    return is_trough


def _twin_yin(cmndf, shifts, s, sr, trough_threshold):
    below = _twin_troughs(cmndf) & (cmndf < trough_threshold)
    voiced = below.any(axis=1)
    idx = np.where(voiced, np.argmax(below, axis=1), np.argmin(cmndf, axis=1))
    rows = np.arange(cmndf.shape[0])
    f0 = sr / (s.min_p + idx + shifts[rows, idx])
    prob = np.clip(1.0 - cmndf[rows, idx], 0.0, 1.0)
    return f0, voiced, prob


def _twin_observations(cmndf, shifts, s, sr, fmin, no_trough_prob):
    n_frames = cmndf.shape[0]
    n = s.n_bins
    thr = s.thresholds[1:]
    obs = np.zeros((n_frames, 2 * n))
    is_trough = _twin_troughs(cmndf)
    for t in range(n_frames):
        (idx,) = np.nonzero(is_trough[t])
        if idx.size == 0:
            continue
        heights = cmndf[t, idx]
        below = np.less.outer(heights, thr)
        rank = np.cumsum(below, axis=0) - 1
        count = np.count_nonzero(below, axis=0)
        prior = np.where(below, s.boltz_fact[count][None, :] * s.boltz_exp[np.maximum(rank, 0)], 0.0)
        probs = prior.dot(s.beta_probs)
        gm = int(np.argmin(heights))
        probs[gm] += no_trough_prob * s.beta_cum[np.count_nonzero(~below[gm])]
        keep = probs != 0
        idx, probs = idx[keep], probs[keep]
        f0 = sr / (s.min_p + idx + shifts[t, idx])
        bins = np.clip(np.round(12 * s.nbps * np.log2(f0 / fmin)), 0, n).astype(int)
        obs[t, bins] = probs  # duplicates: the last (longest period) wins, as in librosa
    vprob = np.clip(np.sum(obs[:, :n], axis=1), 0, 1)
    obs[:, n:] = ((1 - vprob) / n)[:, None]
    return obs, vprob


def _twin_viterbi(log_prob, log_trans, log_init):
    n_steps, n_states = log_prob.shape
    ptr = np.zeros((n_steps, n_states), dtype=np.uint16)
    value = log_prob[0] + log_init
    cols = np.arange(n_states)
    for t in range(1, n_steps):
        trans_out = value[None, :] + log_trans.T  # [j, k]
        ptr[t] = np.argmax(trans_out, axis=1)
        value = log_prob[t] + trans_out[cols, ptr[t]]
    states = np.zeros(n_steps, dtype=np.int64)
    states[-1] = int(np.argmax(value))
    for t in range(n_steps - 2, -1, -1):
        states[t] = ptr[t + 1, states[t + 1]]
    return states


# --------------------------------------------------------------------------
# Numba kernels
# --------------------------------------------------------------------------


@njit(fastmath=False)
def _cmndf_rows(frames_src, starts, nf, frame_length, acf, min_p, max_p, cmndf, shifts, row0, cq, d, cs):
    """CMNDF + parabolic shifts of ``nf`` frames whose ACF rows are in ``acf``.

    Arithmetic in the input dtype up to the difference function, float64
    after, in librosa's order (fastmath off so nothing is reassociated).
    """
    n_lags = max_p - min_p + 1
    for b in range(nf):
        st = starts[b]
        a = acf[b]
        cq[0] = frames_src[st] * frames_src[st]
        for i in range(1, max_p):
            v = frames_src[st + i]
            cq[i] = cq[i - 1] + v * v
        cq[0] = 0
        a0 = a[0]
        d[0] = 0
        for tau in range(1, max_p + 1):
            s = a0 - a[tau]
            d[tau] = (s + s) - cq[tau - 1]
        cs[1] = d[1]
        for tau in range(2, max_p + 1):
            cs[tau] = cs[tau - 1] + d[tau]
        out = cmndf[row0 + b]
        for tau in range(min_p, max_p + 1):
            out[tau - min_p] = np.float64(d[tau]) / (np.float64(cs[tau]) / tau + 2.2250738585072014e-308)
        sh = shifts[row0 + b]
        sh[0] = 0.0
        sh[n_lags - 1] = 0.0
        for i in range(1, n_lags - 1):
            aa = out[i + 1] + out[i - 1] - 2 * out[i]
            bb = (out[i + 1] - out[i - 1]) / 2
            sh[i] = 0.0 if abs(bb) >= abs(aa) else -bb / aa


@njit
def _cmndf_fft_kernel(yp, hop, frame_length, n_frames, min_p, max_p, nfft, cmndf, shifts):
    """Batched rfft/irfft autocorrelation (rocket-fft), then the CMNDF."""
    dt = yp.dtype
    bsz = min(_BLOCK, n_frames)
    buf = np.zeros((bsz, nfft), dtype=dt)
    acf = np.empty((bsz, max_p + 1), dtype=dt)
    starts = np.empty(bsz, dtype=np.int64)
    cq = np.empty(max_p, dtype=dt)
    d = np.empty(max_p + 1, dtype=dt)
    cs = np.empty(max_p + 1, dtype=dt)
    for f0 in range(0, n_frames, bsz):
        nb = min(bsz, n_frames - f0)
        for b in range(nb):
            st = (f0 + b) * hop
            starts[b] = st
            row = buf[b]
            for i in range(frame_length):
                row[i] = yp[st + i]
        spec = np.fft.rfft(buf[:nb])
        power = spec.real * spec.real + spec.imag * spec.imag
        r = np.fft.irfft(power, nfft)
        for b in range(nb):
            for i in range(max_p + 1):
                acf[b, i] = r[b, i]
        _cmndf_rows(yp, starts, nb, frame_length, acf, min_p, max_p, cmndf, shifts, f0, cq, d, cs)


@njit
def _cmndf_direct_kernel(yp, hop, frame_length, n_frames, min_p, max_p, cmndf, shifts):
    """Direct O(frame_length x max_period) autocorrelation (no rocket-fft)."""
    dt = yp.dtype
    acf = np.empty((1, max_p + 1), dtype=dt)
    starts = np.empty(1, dtype=np.int64)
    cq = np.empty(max_p, dtype=dt)
    d = np.empty(max_p + 1, dtype=dt)
    cs = np.empty(max_p + 1, dtype=dt)
    for t in range(n_frames):
        st = t * hop
        starts[0] = st
        for tau in range(max_p + 1):
            acc = 0.0
            for j in range(frame_length - tau):
                acc += np.float64(yp[st + j]) * yp[st + j + tau]
            acf[0, tau] = acc
        _cmndf_rows(yp, starts, 1, frame_length, acf, min_p, max_p, cmndf, shifts, t, cq, d, cs)


@njit(inline="always")
def _is_trough(x, i, n):
    if i == 0:
        return x[0] < x[1]
    if i == n - 1:
        return x[n - 1] < x[n - 2]
    return x[i] < x[i - 1] and x[i] <= x[i + 1]


@njit
def _yin_kernel(cmndf, shifts, min_p, sr, threshold, f0, voiced, prob):
    n_frames, n = cmndf.shape
    for t in range(n_frames):
        x = cmndf[t]
        idx = -1
        for i in range(n):
            if x[i] < threshold and _is_trough(x, i, n):
                idx = i
                break
        voiced[t] = idx >= 0
        if idx < 0:
            idx = 0
            for i in range(1, n):
                if x[i] < x[idx]:
                    idx = i
        f0[t] = sr / ((min_p + idx) + shifts[t, idx])
        p = 1.0 - x[idx]
        prob[t] = 0.0 if p < 0.0 else (1.0 if p > 1.0 else p)


@njit
def _obs_kernel(cmndf, shifts, thresholds, beta_probs, beta_cum, boltz_fact, boltz_exp, no_trough_prob, min_p,
                sr, fmin, n_bins, nbps, logv, logu, vprob):
    """pYIN observation log-probabilities: voiced bins (logv) and the shared unvoiced one (logu)."""
    n_frames, n = cmndf.shape
    n_thr = beta_probs.shape[0]
    tidx = np.empty(n, dtype=np.int64)
    heights = np.empty(n)
    probs = np.empty(n)
    obs = np.zeros(n_bins + 1)
    scale = 12 * nbps
    log_tiny = np.log(2.2250738585072014e-308)
    for t in range(n_frames):
        x = cmndf[t]
        m = 0
        for i in range(n):
            if _is_trough(x, i, n):
                tidx[m] = i
                heights[m] = x[i]
                probs[m] = 0.0
                m += 1
        for b in range(n_bins + 1):
            obs[b] = 0.0
        if m > 0:
            gm = 0
            for k in range(1, m):
                if heights[k] < heights[gm]:
                    gm = k
            for i in range(n_thr):
                th = thresholds[i + 1]
                count = 0
                for k in range(m):
                    if heights[k] < th:
                        count += 1
                if count == 0:
                    continue
                fact = boltz_fact[count]
                bp = beta_probs[i]
                rank = 0
                for k in range(m):
                    if heights[k] < th:
                        probs[k] += (fact * boltz_exp[rank]) * bp
                        rank += 1
            n_above = 0
            for i in range(n_thr):
                if not heights[gm] < thresholds[i + 1]:
                    n_above += 1
            probs[gm] += no_trough_prob * beta_cum[n_above]
            for k in range(m):
                if probs[k] != 0.0:
                    idx = tidx[k]
                    f = sr / ((min_p + idx) + shifts[t, idx])
                    bi = np.rint(scale * np.log2(f / fmin))
                    b = 0 if bi < 0 else (n_bins if bi > n_bins else int(bi))
                    obs[b] = probs[k]
        total = 0.0
        for b in range(n_bins):
            total += obs[b]
        vp = 0.0 if total < 0.0 else (1.0 if total > 1.0 else total)
        vprob[t] = vp
        logu[t] = np.log((1 - vp) / n_bins + 2.2250738585072014e-308)
        row = logv[t]
        for b in range(n_bins):
            row[b] = np.log(obs[b] + 2.2250738585072014e-308) if obs[b] != 0.0 else log_tiny


@njit(fastmath=True)
def _viterbi_max_step(v, lt, ltmax, h, n, best):
    """best[j] = max_k v[k] + log_trans[k, j] over all 2n predecessors (values only).

    Max and a single add are exact under any fastmath flag, and no term can
    be NaN or inf (all are logs of positive numbers), so this equals
    librosa's dense max. Out-of-band transitions all weigh log(tiny): their
    best is the global max + log(tiny). Sources that cannot beat a known
    lower bound of every target are skipped (exact: the bound is attained).
    """
    s2 = 2 * n
    m = v[0]
    for k in range(1, s2):
        m = max(m, v[k])
    far = m + np.log(2.2250738585072014e-308)
    lb = np.inf
    for j in range(n):  # each target's own-index predecessors bound its max from below
        lb = min(lb, max(v[j] + lt[j, 0, h], v[n + j] + lt[n + j, 0, h]))
        lb = min(lb, max(v[j] + lt[j, 1, h], v[n + j] + lt[n + j, 1, h]))
    for j in range(s2):
        best[j] = far
    for k in range(s2):
        vk = v[k]
        if vk + ltmax[k] < lb:
            continue
        kb = k - n if k >= n else k
        lo = max(0, kb - h)
        hi = min(n, kb + h + 1)
        r0 = lt[k, 0, lo - (kb - h):]
        r1 = lt[k, 1, lo - (kb - h):]
        b0 = best[lo:hi]
        b1 = best[n + lo : n + hi]
        for i in range(hi - lo):
            b0[i] = max(b0[i], vk + r0[i])
        for i in range(hi - lo):
            b1[i] = max(b1[i], vk + r1[i])


@njit
def _argmax(v):
    g = 0
    for k in range(1, v.shape[0]):
        if v[k] > v[g]:
            g = k
    return g


@njit
def _pred(vprev, g, lt, h, n, j):
    """librosa's back-pointer of state j: the first k maximising vprev[k] + log_trans[k, j]."""
    jb = j - n if j >= n else j
    blk = 1 if j >= n else 0
    lo = max(0, jb - h)
    hi = min(n, jb + h + 1)
    best = -np.inf
    arg = 0
    for sb in range(2):
        for kb in range(lo, hi):
            k = sb * n + kb
            c = vprev[k] + lt[k, blk, jb - kb + h]
            if c > best:
                best = c
                arg = k
    far = vprev[g] + np.log(2.2250738585072014e-308)  # g: first global argmax of vprev
    if far > best or (far == best and g < arg):
        arg = g
    return arg


@njit
def _forward(logv, logu, lt, ltmax, h, log_init, first, v, best, V, G, t0, rows):
    """Forward pass over frames t0.. of logv/logu; V[t % rows] = value column, G = its first argmax."""
    n_steps, n = logv.shape
    for i in range(n_steps):
        if first and i == 0:
            for j in range(n):
                v[j] = logv[0, j] + log_init
                v[n + j] = logu[0] + log_init
        else:
            _viterbi_max_step(v, lt, ltmax, h, n, best)
            for j in range(n):
                v[j] = logv[i, j] + best[j]
                v[n + j] = logu[i] + best[n + j]
        r = (t0 + i) % rows
        V[r, :] = v
        G[r] = _argmax(v)


@njit
def _backtrack(V, G, lt, h, n, t_last, n_back, rows, out):
    """out[n_back] = best state at t_last; out[i - 1] = back-pointer of out[i], ``n_back`` steps."""
    s = G[t_last % rows]
    out[n_back] = s
    for i in range(n_back, 0, -1):
        r = (t_last - (n_back - i) - 1) % rows
        s = _pred(V[r], G[r], lt, h, n, s)
        out[i - 1] = s


@njit
def _stream_viterbi(logv, logu, lt, ltmax, h, log_init, first, v, best, V, G, t0, lag, states):
    """Forward pass over new frames t0.. with fixed-lag decisions; returns the number decided."""
    n_steps, n = logv.shape
    rows = V.shape[0]
    path = np.empty(lag + 1, dtype=np.int64)
    emitted = 0
    for i in range(n_steps):
        _forward(logv[i : i + 1], logu[i : i + 1], lt, ltmax, h, log_init, first and i == 0, v, best, V, G,
                 t0 + i, rows)
        t = t0 + i
        if t >= lag:
            _backtrack(V, G, lt, h, n, t, lag, rows, path)
            states[emitted] = path[0]
            emitted += 1
    return emitted


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def _cmndf(yp, frame_length, hop_length, n_frames, s):
    if _config.use_jit():
        cmndf = np.empty((n_frames, s.n_lags))
        shifts = np.empty((n_frames, s.n_lags))
        if _config.HAVE_NUMBA_FFT:
            _cmndf_fft_kernel(yp, hop_length, frame_length, n_frames, s.min_p, s.max_p, s.nfft, cmndf, shifts)
        else:
            _cmndf_direct_kernel(yp, hop_length, frame_length, n_frames, s.min_p, s.max_p, cmndf, shifts)
        return cmndf, shifts
    return _twin_cmndf(yp[: (n_frames - 1) * hop_length + frame_length], frame_length, hop_length, s)


def _observations(cmndf, shifts, s, sr, fmin, no_trough_prob):
    """(logv, logu, vprob) for the JIT path; (obs, vprob) for the twin."""
    n_frames = cmndf.shape[0]
    logv = np.empty((n_frames, s.n_bins))
    logu = np.empty(n_frames)
    vprob = np.empty(n_frames)
    _obs_kernel(cmndf, shifts, s.thresholds, s.beta_probs, s.beta_cum, s.boltz_fact, s.boltz_exp,
                no_trough_prob, s.min_p, sr, fmin, s.n_bins, s.nbps, logv, logu, vprob)
    return logv, logu, vprob


def _jit_viterbi(logv, logu, s):
    n_frames = logv.shape[0]
    n2 = 2 * s.n_bins
    v = np.empty(n2)
    best = np.empty(n2)
    V = np.empty((n_frames, n2))
    G = np.empty(n_frames, dtype=np.int64)
    _forward(logv, logu, s.lt, s.ltmax, s.half, s.log_init, True, v, best, V, G, 0, n_frames)
    states = np.empty(n_frames, dtype=np.int64)
    _backtrack(V, G, s.lt, s.half, s.n_bins, n_frames - 1, n_frames - 1, n_frames, states)
    return states


def _decode_pyin(cmndf, shifts, s, sr, fmin, no_trough_prob):
    """(states, vprob) of a whole utterance."""
    if _config.use_jit():
        logv, logu, vprob = _observations(cmndf, shifts, s, sr, fmin, no_trough_prob)
        return _jit_viterbi(logv, logu, s), vprob
    obs, vprob = _twin_observations(cmndf, shifts, s, sr, fmin, no_trough_prob)
    return _twin_viterbi(np.log(obs + _TINY), s.log_trans, s.log_init), vprob


def _check_fill(fill_na):
    if fill_na is not None and (isinstance(fill_na, bool) or not isinstance(fill_na, numbers.Real)):
        raise ParameterError(f"fill_na={fill_na!r} must be None or a number (np.nan by default)")


def _pyin_result(states, vprob, s, fill_na, dtype):
    voiced = states < s.n_bins
    f0 = s.freqs[states % s.n_bins].astype(dtype)
    if fill_na is not None:
        f0[~voiced] = fill_na
    return f0, voiced, vprob.astype(dtype)


def pitch(
    y,
    sr,
    *,
    fmin=65.0,
    fmax=400.0,
    frame_length=1024,
    hop_length=None,
    method="pyin",
    center=True,
    pad_mode="constant",
    trough_threshold=0.1,
    n_thresholds=100,
    beta_parameters=(2, 18),
    boltzmann_parameter=2.0,
    resolution=0.1,
    max_transition_rate=35.92,
    switch_prob=0.01,
    no_trough_prob=0.01,
    fill_na=np.nan,
    nan_policy="raise",
):
    """F0 track of mono audio ``y`` at ``sr`` Hz, as ``librosa.pyin`` / ``librosa.yin``.

    ``method="pyin"`` (default) or ``"yin"``; the other parameters are
    librosa's (``trough_threshold`` is YIN's, ``n_thresholds`` to
    ``no_trough_prob`` and ``fill_na`` are pYIN's). Returns
    :class:`PitchResult`; see the module docstring for the exact semantics
    and what differs from librosa.
    """
    (sr, fmin, fmax, frame_length, hop_length, method, center, pad_mode, trough_threshold, n_thresholds,
     beta_parameters, boltzmann_parameter, resolution, max_transition_rate, switch_prob,
     no_trough_prob) = _check_params(sr, fmin, fmax, frame_length, hop_length, method, center, pad_mode,
                                     trough_threshold, n_thresholds, beta_parameters, boltzmann_parameter,
                                     resolution, max_transition_rate, switch_prob, no_trough_prob)
    _check_fill(fill_na)
    y = prepare_signal(y, "y", min_length=1 if center else frame_length, nan_policy=nan_policy,
                       length_hint=f" (frame_length={frame_length})")
    if center:
        y = np.pad(y, frame_length // 2, mode=pad_mode)
    if y.shape[0] < frame_length:
        raise ParameterError(
            f"y has {y.shape[0]} samples after padding, shorter than frame_length={frame_length}; "
            "pass a longer signal or a smaller frame_length"
        )
    s = _setup(sr, fmin, fmax, frame_length, hop_length, method, n_thresholds, beta_parameters,
               boltzmann_parameter, resolution, max_transition_rate, switch_prob, no_trough_prob)
    n_frames = 1 + (y.shape[0] - frame_length) // hop_length
    cmndf, shifts = _cmndf(y, frame_length, hop_length, n_frames, s)
    dt = y.dtype
    if method == "yin":
        if _config.use_jit():
            f0 = np.empty(n_frames)
            voiced = np.empty(n_frames, dtype=np.bool_)
            prob = np.empty(n_frames)
            _yin_kernel(cmndf, shifts, s.min_p, sr, trough_threshold, f0, voiced, prob)
        else:
            f0, voiced, prob = _twin_yin(cmndf, shifts, s, sr, trough_threshold)
        return PitchResult(f0.astype(dt), voiced, prob.astype(dt), sr, hop_length, frame_length, method, center)
    states, vprob = _decode_pyin(cmndf, shifts, s, sr, fmin, no_trough_prob)
    f0, voiced, vprob = _pyin_result(states, vprob, s, fill_na, dt)
    return PitchResult(f0, voiced, vprob, sr, hop_length, frame_length, method, center)


# --------------------------------------------------------------------------
# Streaming
# --------------------------------------------------------------------------


class StreamingPitch:
    """Pitch of a live stream (center=False framing; see the module docstring).

    ``push(chunk)`` returns a :class:`PitchResult` of the frames decided by
    this chunk (possibly none): YIN frames as soon as they are complete,
    pYIN frames ``lag`` frames later (fixed-lag Viterbi). ``frames_emitted``
    counts them. ``finalize()`` decides the frames still pending and returns
    the track of the whole stream; with ``keep_history=True`` the pYIN track
    is re-decoded over the whole stream and equals ``pitch(all_samples,
    center=False, ...)`` exactly (it keeps every frame's observation
    probabilities, 8 x (n_pitch_bins + 2) bytes per frame).
    """

    def __init__(self, *, sr=16000, fmin=65.0, fmax=400.0, frame_length=1024, hop_length=160, method="pyin",
                 lag=50, keep_history=False, trough_threshold=0.1, n_thresholds=100, beta_parameters=(2, 18),
                 boltzmann_parameter=2.0, resolution=0.1, max_transition_rate=35.92, switch_prob=0.01,
                 no_trough_prob=0.01, fill_na=np.nan, dtype=np.float32):
        params = _check_params(sr, fmin, fmax, frame_length, hop_length, method, False, "constant",
                               trough_threshold, n_thresholds, beta_parameters, boltzmann_parameter, resolution,
                               max_transition_rate, switch_prob, no_trough_prob)
        (self.sr, self.fmin, self.fmax, self.frame_length, self.hop_length, self.method, _, _,
         self.trough_threshold, n_thresholds, beta_parameters, boltzmann_parameter, resolution,
         max_transition_rate, switch_prob, self.no_trough_prob) = params
        self.lag = check_positive_int(lag, "lag", 0)
        self.keep_history = bool(keep_history)
        if np.dtype(dtype) not in (np.float32, np.float64):
            raise ParameterError(f"dtype={dtype!r} must be np.float32 or np.float64")
        self.dtype = np.dtype(dtype).type
        _check_fill(fill_na)
        self.fill_na = fill_na
        self._s = _setup(self.sr, self.fmin, self.fmax, self.frame_length, self.hop_length, self.method,
                         n_thresholds, beta_parameters, boltzmann_parameter, resolution, max_transition_rate,
                         switch_prob, self.no_trough_prob)
        self.reset()

    @property
    def latency_frames(self):
        """Frames between a frame's completion and its decision (0 for YIN, ``lag`` for pYIN)."""
        return 0 if self.method == "yin" else self.lag

    def start_time_s(self, frame_index):
        """Start time (s) of frame ``frame_index`` from the first sample pushed."""
        return frame_index * self.hop_length / self.sr

    def reset(self):
        """Forget all samples and frames."""
        s = self._s
        self._buf = np.zeros(0, dtype=self.dtype)
        self.frames_emitted = 0
        self.frames_seen = 0
        self.samples_seen = 0
        self._out = []  # emitted (f0, voiced, prob) pieces, for finalize()
        self._vpend = np.zeros(0)  # voiced_prob of frames seen but not yet emitted
        self._hist = []  # keep_history: (logv, logu, vprob) or (obs, vprob) of every chunk
        if self.method == "pyin":
            n2 = 2 * s.n_bins
            rows = self.lag + 1
            self._v = np.empty(n2)
            self._best = np.empty(n2)
            self._V = np.empty((rows, n2))  # JIT: value columns of the last lag + 1 frames
            self._G = np.zeros(rows, dtype=np.int64)
            self._ptr = np.zeros((rows, n2), dtype=np.int64)  # NumPy twin: back-pointers instead

    def _result(self, f0, voiced, prob):
        return PitchResult(f0, voiced, prob, self.sr, self.hop_length, self.frame_length, self.method, False)

    def _empty(self):
        e = np.zeros(0, dtype=self.dtype)
        return self._result(e, np.zeros(0, dtype=np.bool_), e.copy())

    def _check_chunk(self, chunk):
        return finite_stream_chunk(chunk, self.dtype, self.samples_seen)

    def push(self, chunk):
        """Feed samples; returns the :class:`PitchResult` of the newly decided frames."""
        chunk = self._check_chunk(chunk)
        buf = np.concatenate((self._buf, chunk)) if self._buf.shape[0] else chunk
        self.samples_seen += chunk.shape[0]
        W, hop, s = self.frame_length, self.hop_length, self._s
        k = 0 if buf.shape[0] < W else 1 + (buf.shape[0] - W) // hop
        if k == 0:
            self._buf = buf.copy()
            return self._empty()
        cmndf, shifts = _cmndf(buf, W, hop, k, s)
        self._buf = buf[k * hop :].copy()
        t0 = self.frames_seen
        self.frames_seen += k
        if self.method == "yin":
            if _config.use_jit():
                f0 = np.empty(k)
                voiced = np.empty(k, dtype=np.bool_)
                prob = np.empty(k)
                _yin_kernel(cmndf, shifts, s.min_p, self.sr, self.trough_threshold, f0, voiced, prob)
            else:
                f0, voiced, prob = _twin_yin(cmndf, shifts, s, self.sr, self.trough_threshold)
            out = (f0.astype(self.dtype), voiced, prob.astype(self.dtype))
            self._out.append(out)
            self.frames_emitted += k
            return self._result(*out)
        if _config.use_jit():
            logv, logu, vprob = _observations(cmndf, shifts, s, self.sr, self.fmin, self.no_trough_prob)
            states = np.empty(k, dtype=np.int64)
            done = _stream_viterbi(logv, logu, s.lt, s.ltmax, s.half, s.log_init, t0 == 0, self._v, self._best,
                                   self._V, self._G, t0, self.lag, states)
            states = states[:done]
            if self.keep_history:
                self._hist.append((logv, logu, vprob))
        else:
            obs, vprob = _twin_observations(cmndf, shifts, s, self.sr, self.fmin, self.no_trough_prob)
            states = self._twin_fixed_lag(np.log(obs + _TINY), t0)
            if self.keep_history:
                self._hist.append((obs, vprob))
        self._vpend = np.concatenate((self._vpend, vprob))
        return self._emit(states)

    def _twin_fixed_lag(self, log_obs, t0):
        """NumPy path: dense Viterbi step (librosa's) per frame, back-pointers kept for lag + 1 frames."""
        s = self._s
        rows = self.lag + 1
        cols = np.arange(log_obs.shape[1])
        out = []
        for i in range(log_obs.shape[0]):
            t = t0 + i
            if t == 0:
                self._v = log_obs[0] + s.log_init
            else:
                trans_out = self._v[None, :] + s.log_trans.T
                arg = np.argmax(trans_out, axis=1)
                self._v = log_obs[i] + trans_out[cols, arg]
                self._ptr[t % rows] = arg
            if t >= self.lag:
                st = int(np.argmax(self._v))
                for j in range(self.lag):
                    st = int(self._ptr[(t - j) % rows, st])
                out.append(st)
        return np.asarray(out, dtype=np.int64)

    def _emit(self, states):
        k = states.shape[0]
        f0, voiced, vp = _pyin_result(states, self._vpend[:k], self._s, self.fill_na, self.dtype)
        self._vpend = self._vpend[k:]
        self.frames_emitted += k
        out = (f0, voiced, vp)
        self._out.append(out)
        return self._result(*out)

    def finalize(self):
        """Decide the frames still pending and return the track of the whole stream."""
        if self.frames_seen == 0:
            raise ParameterError("no complete frame yet: push at least frame_length samples first")
        if self.method == "pyin" and self.keep_history:
            s = self._s
            if _config.use_jit() and len(self._hist[0]) == 3:
                logv, logu, vprob = (np.concatenate([h[i] for h in self._hist]) for i in range(3))
                states = _jit_viterbi(logv, logu, s)
            else:
                obs, vprob = (np.concatenate([h[i] for h in self._hist]) for i in range(2))
                states = _twin_viterbi(np.log(obs + _TINY), s.log_trans, s.log_init)
            return self._result(*_pyin_result(states, vprob, s, self.fill_na, self.dtype))
        if self.method == "pyin":
            T = self.frames_seen
            pending = T - self.frames_emitted
            if pending > 0:
                rows = self.lag + 1
                path = np.empty(pending, dtype=np.int64)
                if _config.use_jit():
                    _backtrack(self._V, self._G, self._s.lt, self._s.half, self._s.n_bins, T - 1, pending - 1,
                               rows, path)
                else:
                    st = int(np.argmax(self._v))
                    path[-1] = st
                    for i in range(pending - 1, 0, -1):
                        st = int(self._ptr[(T - 1 - (pending - 1 - i)) % rows, st])
                        path[i - 1] = st
                self._emit(path)
        f0, voiced, prob = (np.concatenate([o[i] for o in self._out]) for i in range(3))
        return self._result(f0, voiced, prob)
