"""eGeMAPS-style spectral low-level descriptors (per frame).

After Eyben et al. (2016), "The Geneva Minimalistic Acoustic Parameter Set
(GeMAPS) for Voice Research and Affective Computing", and openSMILE's
eGeMAPSv02 configuration, as far as their definitions can be stated in a few
lines. Frames: ``frame_length`` samples (default 25 ms) with a Hamming window,
``hop_length`` samples apart (default 10 ms), no centering (frame t starts at
sample ``t * hop_length``, as openSMILE's framer). Each frame is zero-padded to
``n_fft`` = the next power of two >= frame_length and transformed; ``P[k]`` is
the power ``|X[k]|^2`` of bin k at frequency ``f_k = k * sr / n_fft``.

* ``alpha_ratio`` (dB): ``10 log10(sum P[50 <= f < 1000] / sum P[1000 <= f <= 5000])``.
  openSMILE sums the *magnitude* spectrum; here the power spectrum is
  summed (energy, as the paper words it), so values differ from openSMILE's.
  White noise gives about ``10 log10(950 / 4000)`` = -6.2 dB.
* ``hammarberg`` (dB): ``10 log10(max P[0 <= f < 2000] / max P[2000 <= f <= 5000])``
  (the same as openSMILE's 20 log10 of the magnitude maxima).
* ``slope_0_500``, ``slope_500_1500`` (dB/Hz): least-squares slope of
  ``10 log10(max(P, AMIN))`` against ``f_k`` (Hz) over the bins with
  ``0 <= f <= 500`` and ``500 <= f <= 1500`` (DC included). openSMILE's
  slope is fitted to its own log spectrum scaling; units and offsets may differ.
* ``flux``: ``sum_k (m_t[k] - m_{t-1}[k])^2`` with ``m_t = |X_t| / sum_k |X_t|``
  (L1-normalised magnitude spectrum over all bins 0..sr/2); 0 for the first
  frame, and a silent frame's normalised spectrum is all zeros. openSMILE
  normalises differently (configurable), so the scale may differ.
* ``loudness``: ``sum_b E_b ** LOUDNESS_EXPONENT`` (0.33), ``E_b`` the power
  in 26 triangular bands equally spaced on the Bark scale
  ``z(f) = 6 asinh(f / 600)`` between 20 Hz and min(8000, sr/2) Hz.
  openSMILE's auditory spectrum also applies an equal-loudness curve and
  its own filter shapes; this is an approximation of its loudness.

Junk input gets a status, never NaN: a frame whose total power is <= ``AMIN``
is *silent* (mask ``silent``) and all its ratio/slope LLDs are 0; a band with
no energy is floored at ``AMIN``. With every frame silent, ``status`` is
``"silent"``; otherwise ``"ok"``. float32 input is computed and returned in
float32, float64 in float64. The FFT runs in NumPy on both paths; the
per-frame descriptors run in a Numba kernel or its NumPy twin.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from affectedge.errors import ParameterError

from . import _config
from ._config import njit
from ._validate import check_positive_int, check_rate, prepare_signal

__all__ = ["SpectralLLDs", "spectral_llds"]

AMIN = 1e-12  # power floor (and silence threshold on a frame's total power)
LOUDNESS_EXPONENT = 0.33
N_LOUDNESS_BANDS = 26
LOUDNESS_FMIN = 20.0
LOUDNESS_FMAX = 8000.0
MIN_SR = 10000.0  # bands reach 5 kHz


@dataclass(frozen=True)
class SpectralLLDs:
    """Per-frame spectral LLDs (one entry per frame in each array)."""

    alpha_ratio: np.ndarray = field(repr=False)
    hammarberg: np.ndarray = field(repr=False)
    slope_0_500: np.ndarray = field(repr=False)
    slope_500_1500: np.ndarray = field(repr=False)
    flux: np.ndarray = field(repr=False)
    loudness: np.ndarray = field(repr=False)
    silent: np.ndarray = field(repr=False)
    sr: float
    hop_length: int
    status: str

    NAMES = ("alpha_ratio", "hammarberg", "slope_0_500", "slope_500_1500", "flux", "loudness")

    @property
    def n_frames(self):
        return self.alpha_ratio.shape[0]

    def as_array(self):
        """(len(NAMES), n_frames) in the order of ``SpectralLLDs.NAMES``."""
        return np.stack([getattr(self, n) for n in self.NAMES])


def _band(freqs, lo, hi, hi_inclusive, frame_length, sr):
    sel = (freqs >= lo) & ((freqs <= hi) if hi_inclusive else (freqs < hi))
    idx = np.flatnonzero(sel)
    if idx.size == 0:
        raise ParameterError(
            f"frame_length={frame_length} at sr={sr:g} Hz leaves no FFT bin in {lo:g}-{hi:g} Hz; "
            "pass a longer frame (eGeMAPS uses 25 ms, e.g. 400 samples at 16 kHz)"
        )
    return int(idx[0]), int(idx[-1]) + 1


def _slope_weights(freqs, lo, hi):
    """Weights c with slope = c . L over bins lo..hi-1 (least squares)."""
    x = freqs[lo:hi]
    xc = x - x.mean()
    return xc / np.sum(xc * xc)


def _bark(f):
    return 6.0 * np.arcsinh(np.asarray(f, dtype=np.float64) / 600.0)


def _bark_filterbank(freqs, sr):
    fmax = min(LOUDNESS_FMAX, sr / 2.0)
    edges = np.linspace(_bark(LOUDNESS_FMIN), _bark(fmax), N_LOUDNESS_BANDS + 2)
    z = _bark(freqs)
    fb = np.zeros((N_LOUDNESS_BANDS, freqs.size))
    for b in range(N_LOUDNESS_BANDS):
        lo, mid, hi = edges[b], edges[b + 1], edges[b + 2]
        fb[b] = np.maximum(0.0, np.minimum((z - lo) / (mid - lo), (hi - z) / (hi - mid)))
    return fb


def _setup(sr, frame_length, hop_length):
    sr = check_rate(sr)
    if sr < MIN_SR:
        raise ParameterError(
            f"sr={sr:g} Hz is too low: alpha ratio and Hammarberg index need bands up to 5 kHz, "
            f"so sr >= {MIN_SR:g} Hz is required; resample the audio first (e.g. to 16000 Hz)"
        )
    if frame_length is None:
        frame_length = int(round(0.025 * sr))
    if hop_length is None:
        hop_length = int(round(0.010 * sr))
    frame_length = check_positive_int(frame_length, "frame_length", 2)
    hop_length = check_positive_int(hop_length, "hop_length")
    n_fft = 1 << (frame_length - 1).bit_length()
    freqs = np.arange(n_fft // 2 + 1) * (sr / n_fft)
    bands = np.array(
        [
            _band(freqs, 50.0, 1000.0, False, frame_length, sr),
            _band(freqs, 1000.0, 5000.0, True, frame_length, sr),
            _band(freqs, 0.0, 2000.0, False, frame_length, sr),
            _band(freqs, 2000.0, 5000.0, True, frame_length, sr),
            _band(freqs, 0.0, 500.0, True, frame_length, sr),
            _band(freqs, 500.0, 1500.0, True, frame_length, sr),
        ],
        dtype=np.int64,
    )
    for name, (lo, hi) in zip(("0-500 Hz", "500-1500 Hz"), bands[4:]):
        if hi - lo < 2:
            raise ParameterError(
                f"frame_length={frame_length} at sr={sr:g} Hz gives fewer than 2 FFT bins in {name}; "
                "the spectral slope needs a longer frame (e.g. 25 ms)"
            )
    return sr, frame_length, hop_length, n_fft, freqs, bands


# ------------------------------ NumPy twin --------------------------------


def _twin_llds(P, bands, w1, w2, fb, amin, expo):
    dt = P.dtype.type
    total = P.sum(axis=1)
    silent = total <= amin
    (a0, a1), (b0, b1), (c0, c1), (d0, d1), (s0, s1), (u0, u1) = bands

    def db_ratio(num, den):
        return dt(10.0) * np.log10(np.maximum(num, dt(amin)) / np.maximum(den, dt(amin)))

    alpha = db_ratio(P[:, a0:a1].sum(axis=1), P[:, b0:b1].sum(axis=1))
    hamm = db_ratio(P[:, c0:c1].max(axis=1), P[:, d0:d1].max(axis=1))
    L = dt(10.0) * np.log10(np.maximum(P, dt(amin)))
    sl1 = L[:, s0:s1] @ w1
    sl2 = L[:, u0:u1] @ w2
    mag = np.sqrt(P)
    msum = mag.sum(axis=1, keepdims=True)
    norm = np.where(msum > 0, mag / np.where(msum > 0, msum, dt(1.0)), dt(0.0))
    flux = np.zeros(P.shape[0], dtype=P.dtype)
    if P.shape[0] > 1:
        flux[1:] = np.sum((norm[1:] - norm[:-1]) ** 2, axis=1)
    loud = np.sum((P @ fb.T) ** dt(expo), axis=1)
    out = [alpha, hamm, sl1, sl2]
    for a in out:
        a[silent] = 0
    return [a.astype(dt, copy=False) for a in out + [flux, loud]], silent


# ------------------------------ Numba kernel ------------------------------


@njit
def _llds_kernel(P, bands, w1, w2, fb, amin, expo, out, silent):
    """out (6, n_frames): alpha, hammarberg, slope1, slope2, flux, loudness."""
    n_frames, n_bins = P.shape
    dt = P.dtype.type
    am = dt(amin)
    ex = dt(expo)
    ten = dt(10.0)
    prev = np.zeros(n_bins, dtype=P.dtype)
    cur = np.zeros(n_bins, dtype=P.dtype)
    for t in range(n_frames):
        p = P[t]
        total = dt(0.0)
        msum = dt(0.0)
        for k in range(n_bins):
            total += p[k]
            cur[k] = math.sqrt(p[k])
            msum += cur[k]
        if msum > 0:
            inv = dt(1.0) / msum
            for k in range(n_bins):
                cur[k] *= inv
        else:
            for k in range(n_bins):
                cur[k] = dt(0.0)
        fl = dt(0.0)
        if t > 0:
            for k in range(n_bins):
                d = cur[k] - prev[k]
                fl += d * d
        out[4, t] = fl
        for k in range(n_bins):
            prev[k] = cur[k]
        loud = dt(0.0)
        for b in range(fb.shape[0]):
            e = dt(0.0)
            for k in range(n_bins):
                e += fb[b, k] * p[k]
            loud += e ** ex
        out[5, t] = loud
        is_silent = total <= am
        silent[t] = is_silent
        if is_silent:
            for j in range(4):
                out[j, t] = dt(0.0)
            continue
        lo = dt(0.0)
        for k in range(bands[0, 0], bands[0, 1]):
            lo += p[k]
        hi = dt(0.0)
        for k in range(bands[1, 0], bands[1, 1]):
            hi += p[k]
        out[0, t] = ten * math.log10(max(lo, am) / max(hi, am))
        mx1 = dt(0.0)
        for k in range(bands[2, 0], bands[2, 1]):
            mx1 = max(mx1, p[k])
        mx2 = dt(0.0)
        for k in range(bands[3, 0], bands[3, 1]):
            mx2 = max(mx2, p[k])
        out[1, t] = ten * math.log10(max(mx1, am) / max(mx2, am))
        s = dt(0.0)
        for i in range(bands[4, 1] - bands[4, 0]):
            s += w1[i] * ten * math.log10(max(p[bands[4, 0] + i], am))
        out[2, t] = s
        s = dt(0.0)
        for i in range(bands[5, 1] - bands[5, 0]):
            s += w2[i] * ten * math.log10(max(p[bands[5, 0] + i], am))
        out[3, t] = s


# ------------------------------ Public API --------------------------------


def _power_spectrum(y, frame_length, hop_length, n_fft):
    dt = y.dtype.type
    win = (0.54 - 0.46 * np.cos(2.0 * np.pi * np.arange(frame_length) / (frame_length - 1))).astype(dt)
    frames = np.lib.stride_tricks.sliding_window_view(y, frame_length)[::hop_length] * win
    spec = np.fft.rfft(frames, n=n_fft, axis=-1)
    return np.ascontiguousarray((spec.real * spec.real + spec.imag * spec.imag).astype(dt, copy=False))


def spectral_llds(y, sr, frame_length=None, hop_length=None, *, nan_policy="raise"):
    """eGeMAPS-style spectral LLDs of mono audio ``y`` at ``sr`` Hz.

    ``frame_length``/``hop_length`` in samples (default 25 ms / 10 ms, the
    eGeMAPS values). Returns :class:`SpectralLLDs`; see the module docstring
    for each definition.
    """
    sr, frame_length, hop_length, n_fft, freqs, bands = _setup(sr, frame_length, hop_length)
    y = prepare_signal(
        y,
        "y",
        min_length=frame_length,
        nan_policy=nan_policy,
        length_hint=f" (frame_length={frame_length} at sr={sr:g} Hz)",
    )
    dt = y.dtype.type
    P = _power_spectrum(y, frame_length, hop_length, n_fft)
    w1 = _slope_weights(freqs, *bands[4]).astype(dt)
    w2 = _slope_weights(freqs, *bands[5]).astype(dt)
    fb = _bark_filterbank(freqs, sr).astype(dt)
    if _config.use_jit():
        out = np.empty((6, P.shape[0]), dtype=dt)
        silent = np.empty(P.shape[0], dtype=np.bool_)
        _llds_kernel(P, bands, w1, w2, fb, AMIN, LOUDNESS_EXPONENT, out, silent)
        arrays = list(out)
    else:
        arrays, silent = _twin_llds(P, bands, w1, w2, fb, AMIN, LOUDNESS_EXPONENT)
    return SpectralLLDs(
        *arrays,
        silent=silent,
        sr=sr,
        hop_length=hop_length,
        status="silent" if silent.all() else "ok",
    )
