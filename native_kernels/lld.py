"""eGeMAPS-style spectral low-level descriptors (per frame).

After Eyben et al. (2016), "The Geneva Minimalistic Acoustic Parameter Set
(GeMAPS) for Voice Research and Affective Computing", and the frame settings
of openSMILE's eGeMAPSv02 configuration (its ``frame25`` level is 20 ms
Hamming frames with a 10 ms step). Definitions are ours, written from the
paper and checked against openSMILE 2.6.0's output on EmoDB (the figures
are in ``bench/egemaps.py``'s report); no openSMILE code is used.

Frames: ``frame_length`` samples (default 20 ms) with a Hamming window,
``hop_length`` samples apart (default 10 ms), no centering (frame t starts at
sample ``t * hop_length``, as openSMILE's framer). Each frame is zero-padded to
``n_fft`` = the next power of two >= frame_length and transformed; ``X[k]`` is
the magnitude and ``P[k] = X[k]^2`` the power of bin k at ``f_k = k * sr / n_fft``.

* ``alpha_ratio`` (dB): ``10 log10(sum P[1000 <= f <= 5000] / sum P[50 <= f < 1000])``:
  high band over low band, as openSMILE (negative for speech; white noise
  gives about ``10 log10(4000 / 950)`` = +6.2 dB).
* ``hammarberg`` (dB): ``10 log10(max P[0 <= f < 2000] / max P[2000 <= f <= 5000])``.
* ``slope_0_500``, ``slope_500_1500`` (dB/Hz): least-squares slope of
  ``10 log10(max(P, AMIN))`` against ``f_k`` (Hz) over the bins with
  ``0 <= f <= 500`` and ``500 <= f <= 1500`` (DC included). openSMILE's
  500-1500 Hz slope has another scale (r 0.95 with ours on EmoDB).
* ``flux``: ``sum_k (X_t[k] - X_{t-1}[k])^2`` over the bins ``0 <= f <= 5000``
  (unnormalised magnitude; 0 for the first frame of a signal or stream).
  openSMILE scales its magnitudes differently: the values correlate
  (r 0.93 frame by frame on EmoDB) but the unit differs by a constant.
* ``loudness``: ``sum_b (EL(f_b) E_b) ** LOUDNESS_EXPONENT`` (0.33, the
  intensity-loudness power law), ``E_b`` the power in 26 triangular mel
  bands (HTK mel, 20 Hz to min(8000, sr/2) Hz), ``EL`` the equal-loudness
  weighting of PLP (Hermansky 1990) at band centre ``f_b``:
  ``EL = (w^2 + 56.8e6) w^4 / ((w^2 + 6.3e6)^2 (w^2 + 0.38e9))``, ``w = 2 pi f``.
  The steps of openSMILE's auditory spectrum; the unit differs by a constant.
* ``mfcc`` (n_frames, 4): MFCC 1-4 as HTK computes them (eGeMAPS' ``mfcc1..4``):
  ``c_i = sqrt(2/26) sum_b ln(max(E_b, AMIN)) cos(pi i (b - 0.5) / 26)``
  on the same 26 mel bands, liftered by ``1 + 11 sin(pi i / 22)``.

Junk input gets a status, never NaN: a frame whose total power is <= ``AMIN``
is *silent* (mask ``silent``) and its ratio, slope and MFCC LLDs are 0; a
band with no energy is floored at ``AMIN``. With every frame silent,
``status`` is ``"silent"``; otherwise ``"ok"``. float32 input is computed and
returned in float32, float64 in float64. The FFT runs in NumPy on both
paths; the per-frame descriptors run in a Numba kernel or its NumPy twin.
:class:`StreamingSpectralLLDs` gives the same frames from a live stream.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from affectedge.errors import ParameterError

from . import _config
from ._config import njit
from ._validate import check_positive_int, check_rate, finite_stream_chunk, prepare_signal

__all__ = ["SpectralLLDs", "StreamingSpectralLLDs", "spectral_llds"]

AMIN = 1e-12  # power floor (and silence threshold on a frame's total power)
LOUDNESS_EXPONENT = 0.33
N_MEL_BANDS = 26
MEL_FMIN = 20.0
MEL_FMAX = 8000.0
N_MFCC = 4
CEP_LIFTER = 22.0
FLUX_FMAX = 5000.0
MIN_SR = 10000.0  # bands reach 5 kHz


@dataclass(frozen=True)
class SpectralLLDs:
    """Per-frame spectral LLDs (one entry per frame in each array; ``mfcc`` is (n_frames, 4))."""

    alpha_ratio: np.ndarray = field(repr=False)
    hammarberg: np.ndarray = field(repr=False)
    slope_0_500: np.ndarray = field(repr=False)
    slope_500_1500: np.ndarray = field(repr=False)
    flux: np.ndarray = field(repr=False)
    loudness: np.ndarray = field(repr=False)
    mfcc: np.ndarray = field(repr=False)
    silent: np.ndarray = field(repr=False)
    sr: float
    hop_length: int
    status: str

    NAMES = ("alpha_ratio", "hammarberg", "slope_0_500", "slope_500_1500", "flux", "loudness")

    @property
    def n_frames(self):
        return self.alpha_ratio.shape[0]

    def as_array(self):
        """(len(NAMES) + 4, n_frames): the LLDs of ``SpectralLLDs.NAMES``, then MFCC 1-4."""
        return np.concatenate([np.stack([getattr(self, n) for n in self.NAMES]), self.mfcc.T])


def _band(freqs, lo, hi, hi_inclusive, frame_length, sr):
    sel = (freqs >= lo) & ((freqs <= hi) if hi_inclusive else (freqs < hi))
    idx = np.flatnonzero(sel)
    if idx.size == 0:
        raise ParameterError(
            f"frame_length={frame_length} at sr={sr:g} Hz leaves no FFT bin in {lo:g}-{hi:g} Hz; "
            "pass a longer frame (eGeMAPS uses 20 ms, e.g. 320 samples at 16 kHz)"
        )
    return int(idx[0]), int(idx[-1]) + 1


def _slope_weights(freqs, lo, hi):
    """Weights c with slope = c . L over bins lo..hi-1 (least squares)."""
    x = freqs[lo:hi]
    xc = x - x.mean()
    return xc / np.sum(xc * xc)


def _mel(f):
    return 1127.0 * np.log1p(np.asarray(f, dtype=np.float64) / 700.0)


def _mel_filterbank(freqs, sr):
    """26 triangular HTK-mel bands (rows) and their centre frequencies (Hz)."""
    fmax = min(MEL_FMAX, sr / 2.0)
    edges = np.linspace(_mel(MEL_FMIN), _mel(fmax), N_MEL_BANDS + 2)
    z = _mel(freqs)
    fb = np.zeros((N_MEL_BANDS, freqs.size))
    for b in range(N_MEL_BANDS):
        lo, mid, hi = edges[b], edges[b + 1], edges[b + 2]
        fb[b] = np.maximum(0.0, np.minimum((z - lo) / (mid - lo), (hi - z) / (hi - mid)))
    centres = 700.0 * np.expm1(edges[1:-1] / 1127.0)
    return fb, centres


def _equal_loudness(f):
    w2 = (2.0 * np.pi * np.asarray(f, dtype=np.float64)) ** 2
    return (w2 + 56.8e6) * w2 * w2 / ((w2 + 6.3e6) ** 2 * (w2 + 0.38e9))


def _dct_htk():
    """(4, 26) HTK DCT-II rows for MFCC 1-4, liftered."""
    i = np.arange(1, N_MFCC + 1)[:, None]
    b = np.arange(1, N_MEL_BANDS + 1)[None, :]
    d = np.sqrt(2.0 / N_MEL_BANDS) * np.cos(np.pi * i * (b - 0.5) / N_MEL_BANDS)
    lift = 1.0 + CEP_LIFTER / 2.0 * np.sin(np.pi * np.arange(1, N_MFCC + 1) / CEP_LIFTER)
    return d * lift[:, None]


@dataclass(frozen=True)
class _Setup:
    sr: float
    frame_length: int
    hop_length: int
    n_fft: int
    bands: np.ndarray  # (7, 2) bin ranges: alpha lo, alpha hi, hamm lo, hamm hi, slope1, slope2, flux
    freqs: np.ndarray

    def tables(self, dt):
        """Per-dtype constant tables: slope weights, weighted mel bank, DCT, window."""
        key = np.dtype(dt).name
        cache = self.__dict__.setdefault("_tables", {})
        if key not in cache:
            w1 = _slope_weights(self.freqs, *self.bands[4]).astype(dt)
            w2 = _slope_weights(self.freqs, *self.bands[5]).astype(dt)
            fb, centres = _mel_filterbank(self.freqs, self.sr)
            el = _equal_loudness(centres).astype(dt)
            n = self.frame_length
            win = (0.54 - 0.46 * np.cos(2.0 * np.pi * np.arange(n) / (n - 1))).astype(dt)
            cache[key] = (w1, w2, fb.astype(dt), el, _dct_htk().astype(dt), win)
        return cache[key]


def _setup(sr, frame_length, hop_length):
    sr = check_rate(sr)
    if sr < MIN_SR:
        raise ParameterError(
            f"sr={sr:g} Hz is too low: alpha ratio and Hammarberg index need bands up to 5 kHz, "
            f"so sr >= {MIN_SR:g} Hz is required; resample the audio first (e.g. to 16000 Hz)"
        )
    if frame_length is None:
        frame_length = int(round(0.020 * sr))
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
            _band(freqs, 0.0, FLUX_FMAX, True, frame_length, sr),
        ],
        dtype=np.int64,
    )
    for name, (lo, hi) in zip(("0-500 Hz", "500-1500 Hz"), bands[4:6]):
        if hi - lo < 2:
            raise ParameterError(
                f"frame_length={frame_length} at sr={sr:g} Hz gives fewer than 2 FFT bins in {name}; "
                "the spectral slope needs a longer frame (e.g. 20 ms)"
            )
    return _Setup(sr, frame_length, hop_length, n_fft, bands, freqs)


# ------------------------------ NumPy twin --------------------------------


def _twin_llds(P, bands, w1, w2, fb, el, dct, amin, expo, prev, has_prev):
    """Returns (list of 6 LLD arrays, mfcc (n, 4), silent); updates ``prev`` (flux memory) in place."""
    dt = P.dtype.type
    total = P.sum(axis=1)
    silent = total <= amin
    (a0, a1), (b0, b1), (c0, c1), (d0, d1), (s0, s1), (u0, u1), (f0, f1) = bands

    def db_ratio(num, den):
        return dt(10.0) * np.log10(np.maximum(num, dt(amin)) / np.maximum(den, dt(amin)))

    alpha = db_ratio(P[:, b0:b1].sum(axis=1), P[:, a0:a1].sum(axis=1))
    hamm = db_ratio(P[:, c0:c1].max(axis=1), P[:, d0:d1].max(axis=1))
    L = dt(10.0) * np.log10(np.maximum(P, dt(amin)))
    sl1 = L[:, s0:s1] @ w1
    sl2 = L[:, u0:u1] @ w2
    mag = np.sqrt(P[:, f0:f1])
    flux = np.zeros(P.shape[0], dtype=P.dtype)
    if P.shape[0]:
        before = np.concatenate([prev[None, :], mag[:-1]])
        flux[:] = np.sum((mag - before) ** 2, axis=1)
        if not has_prev:
            flux[0] = 0
        prev[:] = mag[-1]
    E = P @ fb.T
    loud = np.sum((E * el) ** dt(expo), axis=1)
    mfcc = np.log(np.maximum(E, dt(amin))) @ dct.T
    out = [alpha, hamm, sl1, sl2]
    for a in out + [mfcc]:
        a[silent] = 0
    return [a.astype(dt, copy=False) for a in out + [flux, loud]], mfcc.astype(dt, copy=False), silent


# ------------------------------ Numba kernel ------------------------------


@njit
def _llds_kernel(P, bands, w1, w2, fb, el, dct, amin, expo, prev, has_prev, out, mfcc, silent):
    """out (6, n_frames): alpha, hammarberg, slope1, slope2, flux, loudness; mfcc (n_frames, 4)."""
    n_frames, n_bins = P.shape
    n_bands = fb.shape[0]
    dt = P.dtype.type
    am = dt(amin)
    ex = dt(expo)
    ten = dt(10.0)
    f0 = bands[6, 0]
    f1 = bands[6, 1]
    logE = np.empty(n_bands, dtype=P.dtype)
    for t in range(n_frames):
        p = P[t]
        total = dt(0.0)
        for k in range(n_bins):
            total += p[k]
        fl = dt(0.0)
        for k in range(f0, f1):
            m = math.sqrt(p[k])
            d = m - prev[k - f0]
            fl += d * d
            prev[k - f0] = m
        out[4, t] = fl if (t > 0 or has_prev) else dt(0.0)
        loud = dt(0.0)
        for b in range(n_bands):
            e = dt(0.0)
            for k in range(n_bins):
                e += fb[b, k] * p[k]
            loud += (el[b] * e) ** ex
            logE[b] = math.log(max(e, am))
        out[5, t] = loud
        is_silent = total <= am
        silent[t] = is_silent
        if is_silent:
            for j in range(4):
                out[j, t] = dt(0.0)
            for i in range(dct.shape[0]):
                mfcc[t, i] = dt(0.0)
            continue
        for i in range(dct.shape[0]):
            c = dt(0.0)
            for b in range(n_bands):
                c += dct[i, b] * logE[b]
            mfcc[t, i] = c
        lo = dt(0.0)
        for k in range(bands[0, 0], bands[0, 1]):
            lo += p[k]
        hi = dt(0.0)
        for k in range(bands[1, 0], bands[1, 1]):
            hi += p[k]
        out[0, t] = ten * math.log10(max(hi, am) / max(lo, am))
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


def _power_spectrum(y, win, hop_length, n_fft):
    dt = y.dtype.type
    frames = np.lib.stride_tricks.sliding_window_view(y, win.size)[::hop_length] * win
    spec = np.fft.rfft(frames, n=n_fft, axis=-1)
    return np.ascontiguousarray((spec.real * spec.real + spec.imag * spec.imag).astype(dt, copy=False))


def _compute(s, P, prev, has_prev):
    dt = P.dtype.type
    w1, w2, fb, el, dct, _ = s.tables(dt)
    if _config.use_jit():
        out = np.empty((6, P.shape[0]), dtype=dt)
        mfcc = np.empty((P.shape[0], N_MFCC), dtype=dt)
        silent = np.empty(P.shape[0], dtype=np.bool_)
        _llds_kernel(P, s.bands, w1, w2, fb, el, dct, AMIN, LOUDNESS_EXPONENT, prev, has_prev, out, mfcc, silent)
        arrays = list(out)
    else:
        arrays, mfcc, silent = _twin_llds(P, s.bands, w1, w2, fb, el, dct, AMIN, LOUDNESS_EXPONENT, prev, has_prev)
    return SpectralLLDs(*arrays, mfcc=mfcc, silent=silent, sr=s.sr, hop_length=s.hop_length,
                        status="silent" if silent.all() else "ok")


def spectral_llds(y, sr, frame_length=None, hop_length=None, *, nan_policy="raise"):
    """eGeMAPS-style spectral LLDs of mono audio ``y`` at ``sr`` Hz.

    ``frame_length``/``hop_length`` in samples (default 20 ms / 10 ms, the
    eGeMAPSv02 values). Returns :class:`SpectralLLDs`; see the module
    docstring for each definition.
    """
    s = _setup(sr, frame_length, hop_length)
    y = prepare_signal(
        y,
        "y",
        min_length=s.frame_length,
        nan_policy=nan_policy,
        length_hint=f" (frame_length={s.frame_length} at sr={s.sr:g} Hz)",
    )
    dt = y.dtype.type
    P = _power_spectrum(y, s.tables(dt)[5], s.hop_length, s.n_fft)
    prev = np.zeros(s.bands[6, 1] - s.bands[6, 0], dtype=dt)
    return _compute(s, P, prev, False)


class StreamingSpectralLLDs:
    """Spectral LLDs of a live stream, frame for frame those of :func:`spectral_llds`.

    ``push(chunk)`` returns a :class:`SpectralLLDs` of the frames completed by
    this chunk (possibly none). Concatenated, the pushes equal
    ``spectral_llds(all_samples)``: frame t starts at stream sample
    ``t * hop_length`` and the flux of the first frame of the stream is 0.
    The state is the last ``frame_length`` samples and one magnitude frame.
    A chunk with NaN/inf is refused whole (ParameterError), nothing consumed.
    """

    def __init__(self, *, sr=16000, frame_length=None, hop_length=None, dtype=np.float32):
        self._s = _setup(sr, frame_length, hop_length)
        if np.dtype(dtype) not in (np.float32, np.float64):
            raise ParameterError(f"dtype={dtype!r} must be np.float32 or np.float64")
        self.dtype = np.dtype(dtype).type
        self.sr, self.frame_length, self.hop_length = self._s.sr, self._s.frame_length, self._s.hop_length
        self.reset()

    def reset(self):
        """Forget all samples and frames."""
        self._buf = np.zeros(0, dtype=self.dtype)
        self._prev = np.zeros(self._s.bands[6, 1] - self._s.bands[6, 0], dtype=self.dtype)
        self.frames_emitted = 0
        self.samples_seen = 0

    def push(self, chunk):
        chunk = finite_stream_chunk(chunk, self.dtype, self.samples_seen)
        self.samples_seen += chunk.size
        buf = np.concatenate([self._buf, chunk])
        n = 0 if buf.size < self.frame_length else 1 + (buf.size - self.frame_length) // self.hop_length
        s = self._s
        if n == 0:
            self._buf = buf
            P = np.zeros((0, s.n_fft // 2 + 1), dtype=self.dtype)
        else:
            P = _power_spectrum(buf[: (n - 1) * self.hop_length + self.frame_length], s.tables(self.dtype)[5],
                                self.hop_length, s.n_fft)
            self._buf = buf[n * self.hop_length:]
        res = _compute(s, P, self._prev, self.frames_emitted > 0)
        self.frames_emitted += n
        return res
