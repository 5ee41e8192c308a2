"""Formants (LPC) and harmonic levels per frame, for eGeMAPS.

Two per-frame kernels, each with a validating wrapper, a Numba kernel and a
NumPy twin (the wrappers switch with ``_config.use_jit()``, as every kernel
module here):

* :func:`formants`: F1..Fn frequency and bandwidth from the roots of an LPC
  polynomial (``method="burg"``, the default, Praat-like; or
  ``method="opensmile"``, openSMILE's eGeMAPS formant chain replicated);
  :class:`StreamingFormants` gives the same frames from a live stream.
* :func:`harmonic_levels`: H1-H2, H1-A3 and the formant amplitudes relative
  to H1 (openSMILE's ``cHarmonics`` peak picking on a 60 ms spectrum).

Frames (both functions): frame t covers samples ``[t * hop_length, t *
hop_length + frame_length)`` (no centering, openSMILE's left-aligned
framer); ``hop_length`` defaults to 10 ms. ``FormantTrack.times`` are frame
centres, ``(t * hop_length + frame_length / 2) / sr``.

Formants, ``method="burg"`` (default)
-------------------------------------
1. Pre-emphasis of the whole signal, ``y'[n] = y[n] - a y[n-1]`` (``y'[0] =
   y[0]``); ``pre_emphasis=None`` means ``a = exp(-2 pi 50 / sr)``, Praat's
   "pre-emphasis from 50 Hz" (0.9806 at 16 kHz).
2. 20 ms frames (openSMILE's formant frame), Hamming window ``0.54 - 0.46
   cos(2 pi i / (N - 1))``.
3. Band-limited resampling of each frame to about ``2 * max_formant`` (as
   openSMILE and Praat): the frame is zero-padded at the end to ``n_fft``
   (next power of two), transformed, the bins up to the new Nyquist frequency
   are kept and inverse-transformed with ``m = round(n_fft * 2 * max_formant
   / sr)`` points; the first ``round(frame_length * m / n_fft)`` samples are
   the analysed frame at ``fs = sr * m / n_fft`` Hz (exactly 11 000 Hz at
   16 kHz and max_formant 5500; 220 samples).
4. Burg's method (as Praat's ``To Formant (burg)``; Numerical Recipes'
   ``memcof``) of order ``order`` (default 10 = Praat's 2 x 5 formants in
   5500 Hz).
5. Roots of ``z^p - d_1 z^(p-1) - ... - d_p`` (Aberth-Ehrlich iteration to
   machine precision, the same in the kernel and the twin; a frame whose
   iteration does not converge in 100 steps falls back to ``np.roots``),
   roots outside the unit circle reflected inside (``1 / conj(z)``).
6. Each root with ``Im z >= 0`` and frequency ``f = |arg z| fs / (2 pi)`` in
   ``[50, max_formant - 50]`` Hz is a formant candidate with bandwidth ``-ln|z|
   fs / pi`` Hz; candidates sorted by frequency, the first ``n_formants``
   kept. No bandwidth limit by default (``max_bandwidth=None``; Praat and
   openSMILE keep wide poles too); with a limit, wider candidates are dropped.

Measured against Praat (parselmouth ``to_formant_burg(time_step=0.01,
max_number_of_formants=5, maximum_formant=5500, window_length=0.025,
pre_emphasis_from=50)``, 8 EmoDB clips, 8 speakers, voiced frames):
per-clip median relative difference at most 3.7 % (F1), 2.5 % (F2) and
2.3 % (F3) (means over clips 1.3, 1.2, 1.1 %), per-clip Pearson r of the
tracks 0.59-0.98 (F1) and 0.61-0.99 (F2); see tests/test_formants.py. A
pre-emphasis of 0.7 gives 18 % (F1, mean over clips), orders 11 / 12 give
3.6 % / 6.1 %, a 1000 Hz bandwidth limit lowers r (F3 0.82 -> 0.51): hence
the defaults. Where this differs from openSMILE: Burg instead of the
autocorrelation method, pre-emphasis, order 10 instead of 11, the whole
frame band-limited at the new Nyquist frequency, and the LPC poles
themselves (see ``method="opensmile"`` for what openSMILE computes).

Formants, ``method="opensmile"``
---------------------------------
openSMILE's GeMAPSv01b/eGeMAPSv02 chain (``cFramer`` 20 ms -> ``cWindower``
Hamming -> ``cTransformFFT`` -> ``cSpecResample targetFs=11000`` -> ``cLpc
method=acf p=11`` -> ``cFormantLpc minF=50 maxF=5450``), as it actually
computes (checked frame by frame against openSMILE 2.6.0's own output):

* no pre-emphasis (``pre_emphasis=None`` means 0 here);
* ``cTransformFFT`` zero-pads the 20 ms frame *centred* in ``n_fft``
  (96 zeros on each side of 320 samples at 16 kHz), and ``cSpecResample``
  evaluates the inverse DFT at ``Nout = round(frame_length * 2 *
  max_formant / sr)`` points from the *start* of that padded buffer, with
  ``min(n_fft, Nout) / 2`` bins (DC weighted like the other bins, i.e.
  relatively doubled). At 16 kHz the analysed 220 samples are 6 ms of
  zeros and the first 14 ms of the window, band-limited to 3437.5 Hz
  (bins 0..109 of 512), at 11 000 Hz;
* autocorrelation LPC (Levinson-Durbin), order 11, no further window;
* the roots are those of ``z^p - a_1 z^(p-1) - ... - a_p`` where ``1 + sum
  a_i z^-i`` is the prediction-error filter: ``cFormantLpc`` negates the
  coefficients, so these are *not* the LPC poles. Kept as openSMILE does;
* ``Im z >= 0`` and ``50 <= f <= max_formant - 50``, no bandwidth limit,
  sorted by frequency.

On EmoDB this reproduces openSMILE's ``formantFreqLpc`` / ``formantBandwidthLpc``
within 1 Hz on about 95 % of frames (openSMILE computes in float32). These
tracks are what eGeMAPS calls F1..F3; they differ from Praat's
(``method="burg"``), and their bandwidths are typically 700-1300 Hz.

Harmonic levels (:func:`harmonic_levels`)
------------------------------------------
openSMILE's ``cHarmonics`` on the magnitude spectrum of a 60 ms frame
(Gaussian window ``exp(-0.5 ((i - (N-1)/2) / (0.4 (N-1)/2))^2)``, openSMILE's
``winFunc=gauss, sigma=0.4``; zero-padded to ``n_fft``, ``|rfft|``): for each
of 100 harmonics ``h = 1..100`` the nearest bin to ``h f0`` is taken if it
is a local maximum, else the nearest local maximum within ``(h - 1/2) f0 ..
(h + 1/2) f0`` (right first); its magnitude and a parabolic interpolation
(frequency, magnitude) through the three bins; a harmonic landing on the
bin of the previous one is dropped. The amplitude of formant k (``A_k``) is
that of the harmonic with the largest bin magnitude whose interpolated
frequency lies in ``[0.8 F_k, 1.2 F_k]``. Levels are ``20 log10`` of
magnitudes (dB of amplitude):

* ``method="standard"`` (default; the GeMAPS paper's definitions): H1 is the
  harmonic at f0, H2 at 2 f0; ``h1_h2 = L(H1) - L(H2)``, ``h1_a3 = L(H1) -
  L(A3)``, ``formant_amplitude[:, k] = L(A_k) - L(H1)``, all from
  interpolated magnitudes. Unlike openSMILE, the parabola goes through the
  *log* magnitudes (exact for a Gaussian main lobe): on harmonic complexes
  with known amplitudes (f0 110-260 Hz) H1-H2 is within 0.1 dB and the
  formant amplitudes within 0.2 dB, where openSMILE's linear parabola and
  bin-magnitude reference are off by up to 0.5 and 0.9 dB.
* ``method="opensmile"``: openSMILE's numbers. Its harmonic index 0 is f0,
  so the ``H1-H2`` and ``H1-A3`` of the eGeMAPS configuration are in fact
  ``L(2 f0) - L(3 f0)`` and ``L(2 f0) - L(A3)``; ``FormantAmplitudeByMax
  HarmonicLogRelF0`` is ``L_interp(A_k) - L_bin(f0)`` (the f0 peak's *bin*
  magnitude, not interpolated, as reference). Verified against openSMILE
  2.6.0 on a harmonic complex with known amplitudes and on EmoDB.

The frame grid is openSMILE's: the 60 ms spectrum frame t and the 20 ms
formant frame t start at the same sample ``t * hop_length`` (their centres
differ by 20 ms), and openSMILE's f0 is that of the 60 ms frame t.

Masks instead of sentinels: openSMILE writes -201 (unvoiced or no reference
peak) or -200 (harmonic not found) and large sums of them; here such entries
are 0.0 and masked: ``valid`` (the frame is voiced, its f0 peak and both
harmonics of H1-H2 were found), ``formant_valid[:, k]`` (formant k given and
a harmonic found in its range), and ``h1_a3`` is valid where both are.

Junk input gets a status, never NaN. A formant frame is *silent* when the
mean square of its (pre-emphasized) samples is <= 1e-10 (-100 dBFS): no
formants, mask False; ``status="silent"`` when every frame is. Harmonic
levels: ``status`` is ``"silent"`` for an all-zero signal, ``"unvoiced"``
when no frame has ``f0 > 0``, else ``"ok"``.

Precision: float32 input gives float32 output, float64 float64. The
pre-emphasis runs in the input dtype; framing, FFTs, LPC and root solving run
in float64 on both paths (order-10 polynomial roots in float32 would be off
by Hz). The FFTs (NumPy) are shared by both paths; the kernel/twin split is
LPC + roots + selection, and the harmonic search.

Speed (JIT, after warm-up, 2-core development machine): 60 s of 16 kHz
audio take about 0.09 s for :func:`formants` (either method; 0.03 s of it the
NumPy FFTs) and at most 0.08 s for :func:`harmonic_levels` (every frame
voiced; the 1024-point FFTs dominate). The NumPy twins: 0.3 s / 0.02-0.1 s.
"""

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from affectedge.errors import ParameterError

from . import _config
from ._config import njit
from ._validate import check_choice, check_positive_int, check_rate, check_real, finite_stream_chunk, prepare_signal

__all__ = ["FormantTrack", "HarmonicLevels", "StreamingFormants", "formants", "harmonic_levels"]

METHODS = ("burg", "opensmile")
HARMONIC_METHODS = ("standard", "opensmile")
FORMANT_FRAME_S = 0.020  # openSMILE's formant frame (gemapsv01b_frame25: frameSize = 0.020)
HARMONIC_FRAME_S = 0.060  # openSMILE's cHarmonics spectrum (gemapsv01b_frame60, gauss sigma 0.4)
HOP_S = 0.010
SAFETY_MARGIN_HZ = 50.0  # formant range [50, max_formant - 50] (Praat's safety margin, openSMILE's minF/maxF)
PRE_EMPHASIS_FROM_HZ = 50.0  # Praat's default "pre-emphasis from"
BURG_ORDER = 10  # Praat: 2 x 5 formants in 5500 Hz
OPENSMILE_ORDER = 11  # cLpc p = 11
GAUSS_SIGMA = 0.4
N_HARMONICS = 100  # cHarmonics nHarmonics
FORMANT_RANGE_REL = (0.8, 1.2)  # cHarmonics: formant amplitude = max harmonic in [0.8 F, 1.2 F]
SILENCE_MS = 1e-10  # mean square at or below which a frame is silent (-100 dBFS)
ABERTH_TOL = 1e-12  # stop when every root moved by <= tol * max(1, max |z|)
ABERTH_MAXIT = 100
_MODE = {"burg": 0, "opensmile": 1}


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class FormantTrack:
    """Per-frame formants: ``frequency``, ``bandwidth`` (Hz) and ``valid`` are
    (n_frames, n_formants), 0.0 where invalid; ``silent`` and ``times`` (frame
    centres, s) are (n_frames,)."""

    frequency: np.ndarray = field(repr=False)
    bandwidth: np.ndarray = field(repr=False)
    valid: np.ndarray = field(repr=False)
    silent: np.ndarray = field(repr=False)
    times: np.ndarray = field(repr=False)
    sr: float
    hop_length: int
    frame_length: int
    method: str
    status: str

    @property
    def n_frames(self):
        return int(self.frequency.shape[0])

    @property
    def n_formants(self):
        return int(self.frequency.shape[1])


@dataclass(frozen=True)
class HarmonicLevels:
    """Per-frame harmonic levels (dB): ``h1_h2``, ``h1_a3``, ``valid`` are
    (n_frames,), ``formant_amplitude`` and ``formant_valid`` (n_frames, 3);
    0.0 where invalid. See the module docstring for the definitions."""

    h1_h2: np.ndarray = field(repr=False)
    h1_a3: np.ndarray = field(repr=False)
    formant_amplitude: np.ndarray = field(repr=False)
    valid: np.ndarray = field(repr=False)
    formant_valid: np.ndarray = field(repr=False)
    sr: float
    hop_length: int
    frame_length: int
    method: str
    status: str

    @property
    def n_frames(self):
        return int(self.h1_h2.shape[0])

    @property
    def h1_a3_valid(self):
        return self.valid & self.formant_valid[:, 2]


# --------------------------------------------------------------------------
# Formant parameters
# --------------------------------------------------------------------------


def _round_half_up(x):
    return int(math.floor(x + 0.5))


class _FormantSetup:
    """Everything derived from the formant parameters (cached)."""


def _check_formant_params(sr, frame_length, hop_length, n_formants, order, max_formant, pre_emphasis, method,
                          max_bandwidth):
    sr = check_rate(sr)
    check_choice(method, "method", METHODS)
    max_formant = check_real(max_formant, "max_formant", minimum=2 * SAFETY_MARGIN_HZ, strict_min=True)
    if max_formant > sr / 2:
        raise ParameterError(
            f"max_formant={max_formant:g} Hz exceeds the Nyquist frequency sr/2 = {sr / 2:g} Hz; lower "
            f"max_formant (e.g. max_formant={sr / 2:g}) or pass audio sampled at >= {2 * max_formant:g} Hz"
        )
    if frame_length is None:
        frame_length = _round_half_up(FORMANT_FRAME_S * sr)
    if hop_length is None:
        hop_length = _round_half_up(HOP_S * sr)
    frame_length = check_positive_int(frame_length, "frame_length", 4)
    hop_length = check_positive_int(hop_length, "hop_length")
    if order is None:
        order = BURG_ORDER if method == "burg" else OPENSMILE_ORDER
    order = check_positive_int(order, "order", 2)
    if order > 64:
        raise ParameterError(f"order={order} is too high for formant LPC; use 8-14 (10 at 11 kHz is Praat's)")
    n_formants = check_positive_int(n_formants, "n_formants")
    if n_formants > order // 2:
        raise ParameterError(
            f"n_formants={n_formants} needs an LPC order of at least {2 * n_formants} (one complex pole pair "
            f"per formant), but order={order}; raise order or ask for fewer formants"
        )
    if pre_emphasis is None:
        pre_emphasis = math.exp(-2 * math.pi * PRE_EMPHASIS_FROM_HZ / sr) if method == "burg" else 0.0
    pre_emphasis = check_real(pre_emphasis, "pre_emphasis", minimum=0.0)
    if pre_emphasis >= 1.0:
        raise ParameterError(f"pre_emphasis={pre_emphasis!r} must be in [0, 1) (e.g. 0.97), or None for the default")
    max_bandwidth = check_real(max_bandwidth, "max_bandwidth", minimum=0.0, strict_min=True, allow_none=True)
    return (sr, frame_length, hop_length, n_formants, order, float(max_formant), float(pre_emphasis), method,
            max_bandwidth)


@lru_cache(maxsize=32)
def _formant_setup(sr, frame_length, hop_length, n_formants, order, max_formant, pre_emphasis, method,
                   max_bandwidth):
    s = _FormantSetup()
    s.sr, s.frame_length, s.hop_length, s.n_formants, s.order = sr, frame_length, hop_length, n_formants, order
    s.max_formant, s.pre_emphasis, s.method, s.mode = max_formant, pre_emphasis, method, _MODE[method]
    s.max_bandwidth = -1.0 if max_bandwidth is None else float(max_bandwidth)
    L = frame_length
    s.n_fft = 1 << (L - 1).bit_length()
    i = np.arange(L)
    s.window = 0.54 - 0.46 * np.cos(2.0 * np.pi * i / (L - 1))
    if method == "burg":
        s.m = min(s.n_fft, _round_half_up(s.n_fft * 2.0 * max_formant / sr))
        s.fs = sr * s.m / s.n_fft
        s.n_out = min(s.m, _round_half_up(L * s.m / s.n_fft))
        s.pad_left = 0
    else:
        # cSpecResample: Nout = round(Nin * ratio * frameSize / fftSize), nd = Nin * Nout / frameSize samples
        # per period, kMax = min(Nin, Nout) packed values (rounded down to even), DC + (kMax/2 - 1) bins.
        s.n_out = _round_half_up(L * 2.0 * max_formant / sr)
        s.fs = sr * s.n_out / L
        nd = s.n_fft * s.n_out / L
        k_max = min(s.n_fft, s.n_out)
        k_max -= k_max & 1
        s.n_bins = k_max // 2
        s.nd = int(round(nd)) if abs(nd - round(nd)) < 1e-9 and round(nd) >= 2 * s.n_bins else 0
        if not s.nd:  # a non-integer period: the inverse DFT as a matrix product
            k = np.arange(s.n_bins)[:, None]
            ph = 2.0 * np.pi * (k * np.arange(s.n_out)[None, :]) / nd
            s.cos_table = np.cos(ph) / (s.n_fft / 2)
            s.sin_table = np.sin(ph) / (s.n_fft / 2)
        s.pad_left = (s.n_fft - L) // 2
    s.fmin = SAFETY_MARGIN_HZ
    s.fmax = max_formant - SAFETY_MARGIN_HZ
    if s.n_out < 2 * order:
        raise ParameterError(
            f"frame_length={L} at sr={sr:g} Hz gives {s.n_out} samples at the {s.fs:g} Hz analysis rate, "
            f"fewer than 2 x order={order}; pass a longer frame (20 ms is openSMILE's) or a lower order"
        )
    return s


# --------------------------------------------------------------------------
# Framing and resampling (NumPy, shared by both paths)
# --------------------------------------------------------------------------


def _pre_emphasize(y, a, prev=None):
    """``y[n] - a y[n-1]`` in y's dtype; ``prev`` is the sample before ``y[0]`` (None: y[0] unchanged)."""
    if a == 0.0:
        return y
    dt = y.dtype.type
    out = y.copy()
    out[1:] = y[1:] - dt(a) * y[:-1]
    if prev is not None:
        out[0] = y[0] - dt(a) * dt(prev)
    return out


def _analysis_frames(ye, n_frames, s):
    """(n_frames, n_out) float64 frames at the analysis rate, and the silent mask."""
    L, hop = s.frame_length, s.hop_length
    raw = np.lib.stride_tricks.sliding_window_view(ye, L)[::hop][:n_frames].astype(np.float64)
    silent = np.einsum("ij,ij->i", raw, raw) <= SILENCE_MS * L
    fr = raw * s.window
    if s.mode == 0:
        if s.m == s.n_fft:
            return np.ascontiguousarray(fr[:, : s.n_out]), silent
        X = np.fft.rfft(fr, n=s.n_fft, axis=1)[:, : s.m // 2 + 1]
        x = np.fft.irfft(X, n=s.m, axis=1)[:, : s.n_out]
        return np.ascontiguousarray(x), silent
    pad = np.zeros((fr.shape[0], s.n_fft))
    pad[:, s.pad_left : s.pad_left + L] = fr
    X = np.fft.rfft(pad, axis=1)[:, : s.n_bins]
    # openSMILE: out[i] = (X_0 + sum_k Re(X_k e^(2 pi j k i / nd))) / (n_fft / 2), i < n_out
    if s.nd:  # = irfft with the DC bin doubled, scaled by nd / n_fft (row by row, as the streaming path)
        X[:, 0] *= 2.0
        x = np.fft.irfft(X, n=s.nd, axis=1)[:, : s.n_out] * (s.nd / s.n_fft)
    else:  # openSMILE's packed spectrum holds (Re, -Im) of NumPy's; out = Re . cos + (-Im) . sin
        x = X.real @ s.cos_table - X.imag @ s.sin_table
    return np.ascontiguousarray(x), silent


# --------------------------------------------------------------------------
# Numba kernels
# --------------------------------------------------------------------------


@njit
def _burg(x, order, coef, wk1, wk2, wkm):
    """Burg (memcof): coef[0] = 1, coef[1:] = -d with x[n] ~ sum d_i x[n-i]. Returns the usable degree."""
    n = x.shape[0]
    for j in range(n - 1):
        wk1[j] = x[j]
        wk2[j] = x[j + 1]
    coef[0] = 1.0
    for i in range(order):
        coef[i + 1] = 0.0
        wkm[i] = 0.0
    d = coef[1:]
    for k in range(1, order + 1):
        num = 0.0
        den = 0.0
        for j in range(n - k):
            num += wk1[j] * wk2[j]
            den += wk1[j] * wk1[j] + wk2[j] * wk2[j]
        if not den > 0.0:
            for i in range(k - 1, order):
                d[i] = 0.0
            break
        dk = 2.0 * num / den
        d[k - 1] = dk
        for i in range(k - 1):
            d[i] = wkm[i] - dk * wkm[k - 2 - i]
        if k == order:
            break
        for i in range(k):
            wkm[i] = d[i]
        a = wkm[k - 1]
        for j in range(n - k - 1):
            wk1[j] -= a * wk2[j]
            wk2[j] = wk2[j + 1] - a * wk1[j + 1]
    for i in range(order):
        d[i] = -d[i]
    return order


@njit
def _acf_lpc(x, order, coef, r, tmp):
    """openSMILE's autocorrelation + Levinson-Durbin; coef = [1, -a_1, ..., -a_p] (cFormantLpc's negation)."""
    n = x.shape[0]
    for lag in range(order + 1):
        acc = 0.0
        for j in range(n - lag):
            acc += x[j] * x[j + lag]
        r[lag] = acc
    coef[0] = 1.0
    for i in range(order):
        coef[i + 1] = 0.0
    a = coef[1:]
    e = r[0]
    if not e > 0.0:
        return 0
    for m in range(1, order + 1):
        acc = r[m]
        for i in range(1, m):
            acc += a[i - 1] * r[m - i]
        km = -acc / e
        for i in range(m - 1):
            tmp[i] = a[i] + km * a[m - 2 - i]
        for i in range(m - 1):
            a[i] = tmp[i]
        a[m - 1] = km
        e *= 1.0 - km * km
        if e == 0.0:
            break
    for i in range(order):
        a[i] = -a[i]
    return order


@njit
def _aberth(c, deg, z, corr):
    """Roots of sum c[i] z^(deg-i) (c[0] = 1) into z[:deg]; True when converged."""
    R = abs(c[deg]) ** (1.0 / deg)
    if not R > 0.0:
        R = 1.0
    for k in range(deg):
        ang = 2.0 * math.pi * k / deg + math.pi / (2.0 * deg)
        z[k] = complex(R * math.cos(ang), R * math.sin(ang))
    for _ in range(ABERTH_MAXIT):
        for k in range(deg):
            zk = z[k]
            p = complex(c[0], 0.0)
            dp = complex(0.0, 0.0)
            for i in range(1, deg + 1):
                dp = dp * zk + p
                p = p * zk + c[i]
            s = complex(0.0, 0.0)
            for j in range(deg):
                diff = zk - z[j]
                if diff.real != 0.0 or diff.imag != 0.0:
                    s += 1.0 / diff
            den = dp - p * s
            if den.real != 0.0 or den.imag != 0.0:
                corr[k] = p / den
            else:
                corr[k] = 0.0
        mc = 0.0
        mz = 1.0
        for k in range(deg):
            z[k] -= corr[k]
            mc = max(mc, abs(corr[k]))
            mz = max(mz, abs(z[k]))
        if mc <= ABERTH_TOL * mz:
            return True
    return False


@njit
def _formant_kernel(x, silent, mode, order, fs, fmin, fmax, max_bw, freq, bw, valid):
    n_frames, n = x.shape
    n_formants = freq.shape[1]
    coef = np.zeros(order + 1)
    wk1 = np.zeros(n)
    wk2 = np.zeros(n)
    wkm = np.zeros(order)
    r = np.zeros(order + 1)
    z = np.zeros(order, dtype=np.complex128)
    corr = np.zeros(order, dtype=np.complex128)
    cf = np.zeros(order)
    cb = np.zeros(order)
    two_pi = 2.0 * math.pi
    for t in range(n_frames):
        for k in range(n_formants):
            freq[t, k] = 0.0
            bw[t, k] = 0.0
            valid[t, k] = False
        if silent[t]:
            continue
        if mode == 0:
            deg = _burg(x[t], order, coef, wk1, wk2, wkm)
        else:
            deg = _acf_lpc(x[t], order, coef, r, wkm)
        while deg > 0 and coef[deg] == 0.0:
            deg -= 1
        if deg == 0:
            continue
        if not _aberth(coef, deg, z, corr):
            rr = np.roots(coef[: deg + 1].astype(np.complex128))
            for k in range(deg):
                z[k] = rr[k]
        nc = 0
        for k in range(deg):
            zk = z[k]
            mag = abs(zk)
            if mag > 1.0:
                zk = 1.0 / zk.conjugate()
                mag = abs(zk)
            if zk.imag < 0.0:
                continue
            f = abs(math.atan2(zk.imag, zk.real)) * fs / two_pi
            if f < fmin or f > fmax:
                continue
            b = -math.log(mag) * fs / math.pi if mag > 0.0 else math.inf
            if max_bw > 0.0 and b > max_bw:
                continue
            # insertion by frequency
            j = nc
            while j > 0 and cf[j - 1] > f:
                cf[j] = cf[j - 1]
                cb[j] = cb[j - 1]
                j -= 1
            cf[j] = f
            cb[j] = b
            nc += 1
        for k in range(min(nc, n_formants)):
            freq[t, k] = cf[k]
            bw[t, k] = cb[k]
            valid[t, k] = True


# --------------------------------------------------------------------------
# NumPy twins
# --------------------------------------------------------------------------


def _twin_burg(x, order):
    F, N = x.shape
    wk1 = x[:, :-1].copy()
    wk2 = x[:, 1:].copy()
    d = np.zeros((F, order))
    wkm = np.zeros((F, order))
    alive = np.ones(F, dtype=bool)
    for k in range(1, order + 1):
        n = N - k
        num = np.sum(wk1[:, :n] * wk2[:, :n], axis=1)
        den = np.sum(wk1[:, :n] * wk1[:, :n] + wk2[:, :n] * wk2[:, :n], axis=1)
        dead = ~(den > 0.0)
        alive &= ~dead
        dk = np.where(alive, 2.0 * num / np.where(alive, den, 1.0), 0.0)
        newd = d.copy()
        newd[:, k - 1] = dk
        for i in range(k - 1):
            newd[:, i] = wkm[:, i] - dk * wkm[:, k - 2 - i]
        d = np.where(alive[:, None], newd, d)
        if k == order:
            break
        wkm[:, :k] = d[:, :k]
        a = wkm[:, k - 1 : k]
        w1 = wk1[:, : n - 1] - a * wk2[:, : n - 1]
        w2 = wk2[:, 1:n] - a * wk1[:, 1:n]
        wk1[:, : n - 1] = w1
        wk2[:, : n - 1] = w2
    return np.concatenate([np.ones((F, 1)), -d], axis=1)


def _twin_acf_lpc(x, order):
    F, N = x.shape
    r = np.stack([np.einsum("ij,ij->i", x[:, : N - lag], x[:, lag:]) for lag in range(order + 1)], axis=1)
    a = np.zeros((F, order))
    e = r[:, 0].copy()
    alive = e > 0.0
    for m in range(1, order + 1):
        acc = r[:, m] + np.sum(a[:, : m - 1] * r[:, m - 1 : 0 : -1], axis=1) if m > 1 else r[:, m].copy()
        km = np.where(alive, -acc / np.where(alive, e, 1.0), 0.0)
        newa = a.copy()
        newa[:, : m - 1] = a[:, : m - 1] + km[:, None] * a[:, m - 2 :: -1][:, : m - 1] if m > 1 else a[:, :0]
        newa[:, m - 1] = km
        a = np.where(alive[:, None], newa, a)
        e = np.where(alive, e * (1.0 - km * km), e)
        alive &= e != 0.0
    coef = np.concatenate([np.ones((F, 1)), -a], axis=1)
    coef[~(r[:, 0] > 0.0), 1:] = 0.0
    return coef


def _twin_aberth(c):
    """Aberth-Ehrlich on each row of c (F, deg + 1), c[:, 0] = 1, c[:, deg] != 0: (roots (F, deg), converged)."""
    F, n1 = c.shape
    deg = n1 - 1
    R = np.abs(c[:, deg]) ** (1.0 / deg)
    R = np.where(R > 0.0, R, 1.0)
    ang = 2.0 * np.pi * np.arange(deg) / deg + np.pi / (2.0 * deg)
    z = (R[:, None] * np.cos(ang)[None, :]) + 1j * (R[:, None] * np.sin(ang)[None, :])
    active = np.ones(F, dtype=bool)
    for _ in range(ABERTH_MAXIT):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        zz = z[idx]
        cc = c[idx]
        p = np.broadcast_to(cc[:, :1], zz.shape).astype(np.complex128)
        dp = np.zeros_like(zz)
        for i in range(1, deg + 1):
            dp = dp * zz + p
            p = p * zz + cc[:, i : i + 1]
        diff = zz[:, :, None] - zz[:, None, :]
        nz = diff != 0
        inv = np.zeros_like(diff)
        inv[nz] = 1.0 / diff[nz]
        s = inv.sum(axis=2)
        den = dp - p * s
        ok = den != 0
        corr = np.zeros_like(zz)
        corr[ok] = p[ok] / den[ok]
        zz = zz - corr
        z[idx] = zz
        mc = np.abs(corr).max(axis=1)
        mz = np.maximum(1.0, np.abs(zz).max(axis=1))
        active[idx[mc <= ABERTH_TOL * mz]] = False
    return z, ~active


def _twin_select(z, fs, fmin, fmax, max_bw, n_formants):
    mag = np.abs(z)
    out = mag > 1.0
    z = np.where(out, 1.0 / np.where(out, np.conj(z), 1.0), z)
    mag = np.abs(z)
    f = np.abs(np.arctan2(z.imag, z.real)) * fs / (2.0 * np.pi)
    with np.errstate(divide="ignore"):
        b = np.where(mag > 0.0, -np.log(np.where(mag > 0.0, mag, 1.0)) * fs / np.pi, np.inf)
    keep = (z.imag >= 0.0) & (f >= fmin) & (f <= fmax)
    if max_bw > 0.0:
        keep &= b <= max_bw
    fk = np.where(keep, f, np.inf)
    order = np.argsort(fk, axis=1, kind="stable")[:, :n_formants]
    fsel = np.take_along_axis(fk, order, axis=1)
    bsel = np.take_along_axis(b, order, axis=1)
    valid = np.isfinite(fsel)
    if fsel.shape[1] < n_formants:
        padw = n_formants - fsel.shape[1]
        fsel = np.pad(fsel, ((0, 0), (0, padw)), constant_values=np.inf)
        bsel = np.pad(bsel, ((0, 0), (0, padw)))
        valid = np.pad(valid, ((0, 0), (0, padw)))
    return np.where(valid, fsel, 0.0), np.where(valid, bsel, 0.0), valid


def _twin_formants(x, silent, s):
    F = x.shape[0]
    freq = np.zeros((F, s.n_formants))
    bw = np.zeros((F, s.n_formants))
    valid = np.zeros((F, s.n_formants), dtype=bool)
    live = np.flatnonzero(~silent)
    if live.size == 0:
        return freq, bw, valid
    coef = _twin_burg(x[live], s.order) if s.mode == 0 else _twin_acf_lpc(x[live], s.order)
    nzc = coef != 0.0
    deg = s.order - np.argmax(nzc[:, ::-1], axis=1)  # last non-zero coefficient
    for d in np.unique(deg):
        if d == 0:
            continue
        rows = np.flatnonzero(deg == d)
        z, conv = _twin_aberth(coef[rows, : d + 1])
        for i in np.flatnonzero(~conv):
            z[i] = np.roots(coef[rows[i], : d + 1])
        fsel, bsel, vsel = _twin_select(z, s.fs, s.fmin, s.fmax, s.max_bandwidth, s.n_formants)
        freq[live[rows]] = fsel
        bw[live[rows]] = bsel
        valid[live[rows]] = vsel
    return freq, bw, valid


# --------------------------------------------------------------------------
# Public API: formants
# --------------------------------------------------------------------------


def _compute_formants(ye, n_frames, s, first_frame, dtype):
    x, silent = _analysis_frames(ye, n_frames, s)
    if _config.use_jit():
        freq = np.empty((n_frames, s.n_formants))
        bw = np.empty((n_frames, s.n_formants))
        valid = np.empty((n_frames, s.n_formants), dtype=np.bool_)
        if n_frames:
            _formant_kernel(x, silent, s.mode, s.order, s.fs, s.fmin, s.fmax, s.max_bandwidth, freq, bw, valid)
    else:
        freq, bw, valid = _twin_formants(x, silent, s)
    times = ((first_frame + np.arange(n_frames)) * s.hop_length + s.frame_length / 2.0) / s.sr
    status = "silent" if n_frames and silent.all() else "ok"
    return FormantTrack(freq.astype(dtype), bw.astype(dtype), valid, silent, times, s.sr, s.hop_length,
                        s.frame_length, s.method, status)


def formants(y, sr, frame_length=None, hop_length=None, *, n_formants=3, order=None, max_formant=5500.0,
             pre_emphasis=None, method="burg", max_bandwidth=None, nan_policy="raise"):
    """Formant frequencies and bandwidths of mono audio ``y`` at ``sr`` Hz, per frame.

    ``frame_length`` / ``hop_length`` in samples (default 20 ms / 10 ms);
    frame t starts at sample ``t * hop_length``. ``method="burg"`` (Praat-like
    Burg LPC, default) or ``"opensmile"`` (openSMILE's eGeMAPS formant chain,
    quirks included). ``order=None``: 10 (burg) / 11 (opensmile);
    ``pre_emphasis=None``: ``exp(-2 pi 50 / sr)`` (burg) / 0 (opensmile).
    Returns :class:`FormantTrack`; see the module docstring.
    """
    params = _check_formant_params(sr, frame_length, hop_length, n_formants, order, max_formant, pre_emphasis,
                                   method, max_bandwidth)
    s = _formant_setup(*params)
    y = prepare_signal(y, "y", min_length=s.frame_length, nan_policy=nan_policy,
                       length_hint=f" (frame_length={s.frame_length} at sr={s.sr:g} Hz)")
    n_frames = 1 + (y.shape[0] - s.frame_length) // s.hop_length
    ye = _pre_emphasize(y, s.pre_emphasis)
    return _compute_formants(ye, n_frames, s, 0, y.dtype.type)


class StreamingFormants:
    """Formants of a live stream, frame for frame those of :func:`formants`.

    ``process(chunk)`` (alias ``push``) returns a :class:`FormantTrack` of the
    frames completed by this chunk (possibly none; ``times`` count from the
    first sample of the stream). Concatenated, the results equal
    ``formants(all_samples, ...)``. The state is the last partial frame and
    one sample (for the pre-emphasis). A chunk with NaN/inf is refused whole
    (ParameterError), nothing consumed.
    """

    def __init__(self, sr=16000, frame_length=None, hop_length=None, *, n_formants=3, order=None,
                 max_formant=5500.0, pre_emphasis=None, method="burg", max_bandwidth=None, dtype=np.float32):
        params = _check_formant_params(sr, frame_length, hop_length, n_formants, order, max_formant,
                                       pre_emphasis, method, max_bandwidth)
        self._s = _formant_setup(*params)
        if np.dtype(dtype) not in (np.float32, np.float64):
            raise ParameterError(f"dtype={dtype!r} must be np.float32 or np.float64")
        self.dtype = np.dtype(dtype).type
        s = self._s
        self.sr, self.frame_length, self.hop_length, self.method = s.sr, s.frame_length, s.hop_length, s.method
        self.reset()

    def reset(self):
        """Forget all samples and frames."""
        self._buf = np.zeros(0, dtype=self.dtype)  # pre-emphasized samples not yet consumed
        self._last = None  # last raw sample seen (pre-emphasis state)
        self.frames_emitted = 0
        self.samples_seen = 0

    def process(self, chunk):
        """Feed samples; returns the :class:`FormantTrack` of the newly completed frames."""
        chunk = finite_stream_chunk(chunk, self.dtype, self.samples_seen)
        s = self._s
        if chunk.shape[0]:
            ce = _pre_emphasize(chunk, s.pre_emphasis, self._last)
            self._last = chunk[-1]
        else:
            ce = chunk
        self.samples_seen += chunk.shape[0]
        buf = np.concatenate((self._buf, ce)) if self._buf.shape[0] else ce
        L, hop = s.frame_length, s.hop_length
        n = 0 if buf.shape[0] < L else 1 + (buf.shape[0] - L) // hop
        if n == 0:
            self._buf = buf.copy()
            ye = np.zeros(L, dtype=self.dtype)
        else:
            ye = buf[: (n - 1) * hop + L]
            self._buf = buf[n * hop :].copy()
        res = _compute_formants(ye, n, s, self.frames_emitted, self.dtype)
        self.frames_emitted += n
        return res

    push = process


# --------------------------------------------------------------------------
# Harmonic levels
# --------------------------------------------------------------------------


@njit
def _nearest_bin(freq, df, n_bins):
    """cHarmonics::freqToBin on a linear axis: nearest bin (ties up), 0 when no bin lies above ``freq``."""
    s = int(math.floor(freq / df)) + 1
    if s < 1:
        s = 1
    while s < n_bins and s * df <= freq:
        s += 1
    while s > 1 and (s - 1) * df > freq:
        s -= 1
    if s >= n_bins:
        return 0
    if s * df - freq > freq - (s - 1) * df:
        return s - 1
    return s


@njit
def _is_peak(x, n):
    N = x.shape[0]
    if n >= N or n < 0:
        return False
    if n + 1 < N:
        if n > 0:
            return x[n] > x[n - 1] and x[n] > x[n + 1]
        return x[0] > x[1]
    if n > 0:
        return x[n] > x[n - 1]
    return False


@njit
def _quad_peak(x1, y1, x2, y2, x3, y3):
    """smileMath_quadFrom3pts: (peak x, peak y) of the parabola through three points."""
    den = x1 * x1 * x2 + x2 * x2 * x3 + x3 * x3 * x1 - x3 * x3 * x2 - x2 * x2 * x1 - x1 * x1 * x3
    if den != 0.0:
        a = (y1 * x2 + y2 * x3 + y3 * x1 - y3 * x2 - y2 * x1 - y1 * x3) / den
        b = (x1 * x1 * y2 + x2 * x2 * y3 + x3 * x3 * y1 - x3 * x3 * y2 - x2 * x2 * y1 - x1 * x1 * y3) / den
        c = (x1 * x1 * x2 * y3 + x2 * x2 * x3 * y1 + x3 * x3 * x1 * y2 - x3 * x3 * x2 * y1 - x2 * x2 * x1 * y3
             - x1 * x1 * x3 * y2) / den
        if a != 0.0:
            x = -b / (2.0 * a)
            return x, c - a * x * x
    if y1 > y2 and y1 > y3:
        return x1, y1
    if y2 > y1 and y2 > y3:
        return x2, y2
    if y3 > y1 and y3 > y2:
        return x3, y3
    return x1, y1


@njit
def _log_quad_peak(k, y1, y2, y3, df):
    """Parabola through the log magnitudes of bins k-1, k, k+1 (exact for a Gaussian main lobe)."""
    a = math.log(y1)
    b = math.log(y2)
    c = math.log(y3)
    den = a - 2.0 * b + c
    if den == 0.0:
        return k * df, y2
    d = 0.5 * (a - c) / den
    return (k + d) * df, math.exp(b - 0.25 * (a - c) * d)


@njit
def _harmonics_kernel(mag, f0, formant, df, opensmile, h12, h13, famp, valid, fvalid):
    n_frames, n_bins = mag.shape
    nh = N_HARMONICS
    hbin = np.zeros(nh, dtype=np.int64)
    hmag = np.zeros(nh)
    hmi = np.zeros(nh)
    hfi = np.zeros(nh)
    lo_rel, hi_rel = FORMANT_RANGE_REL
    for t in range(n_frames):
        x = mag[t]
        F0 = f0[t]
        h12[t] = 0.0
        h13[t] = 0.0
        valid[t] = False
        for k in range(3):
            famp[t, k] = 0.0
            fvalid[t, k] = False
        if not F0 > 0.0:
            continue
        first = _nearest_bin(0.5 * F0, df, n_bins)
        for i in range(nh):
            cand = _nearest_bin((i + 1) * F0, df, n_bins)
            peak = -1
            if _is_peak(x, cand):
                peak = cand
            else:
                lower = _nearest_bin((i + 0.5) * F0, df, n_bins)
                upper = _nearest_bin((i + 1.5) * F0, df, n_bins)
                cl = cand - 1
                cr = cand + 1
                while (cl >= lower or cr <= upper) and peak == -1:
                    if cr <= upper:
                        if _is_peak(x, cr):
                            peak = cr
                            break
                        cr += 1
                    if cl >= lower:
                        if _is_peak(x, cl):
                            peak = cl
                            break
                        cl -= 1
            if peak >= first and peak >= 1 and peak < n_bins - 1:
                hbin[i] = peak
                hmag[i] = x[peak]
                if opensmile or not (x[peak - 1] > 0.0 and x[peak + 1] > 0.0):
                    fi, mi = _quad_peak((peak - 1) * df, x[peak - 1], peak * df, x[peak], (peak + 1) * df,
                                        x[peak + 1])
                else:
                    fi, mi = _log_quad_peak(peak, x[peak - 1], x[peak], x[peak + 1], df)
                hfi[i] = fi
                hmi[i] = mi
            else:
                hbin[i] = cand
                hmag[i] = 0.0
                hfi[i] = 0.0
                hmi[i] = 0.0
        for i in range(1, nh):  # postProcessHarmonics: drop a harmonic on the previous one's bin
            if hbin[i] == hbin[i - 1]:
                hbin[i] = 0
                hmag[i] = 0.0
                hfi[i] = 0.0
                hmi[i] = 0.0
        ref = hmag[0] if opensmile else hmi[0]
        if not ref > 0.0:
            continue
        lref = math.log10(ref)
        ib = 2 if opensmile else 1
        la = 0.0  # standard: L(H1) = 0 by definition (ref = its interpolated magnitude)
        if opensmile:  # openSMILE's "H1" is its harmonic index 1, i.e. 2 f0
            la = 20.0 * (math.log10(hmi[1]) - lref) if hmi[1] > 0.0 else math.nan
        lb = 20.0 * (math.log10(hmi[ib]) - lref) if hmi[ib] > 0.0 else math.nan
        if not (math.isnan(la) or math.isnan(lb)):
            h12[t] = la - lb
            valid[t] = True
        for k in range(3):
            fk = formant[t, k]
            if not fk > 0.0:
                continue
            fl = lo_rel * fk
            fr = hi_rel * fk
            best = -1
            bm = 0.0
            for h in range(nh):
                if hfi[h] >= fl and hfi[h] <= fr and hmag[h] > bm:
                    best = h
                    bm = hmag[h]
            if best < 0:
                continue
            if best == 0:
                lv = 0.0
            elif hmi[best] > 0.0:
                lv = 20.0 * (math.log10(hmi[best]) - lref)
            else:
                continue
            famp[t, k] = lv
            fvalid[t, k] = True
        if valid[t] and fvalid[t, 2]:
            h13[t] = la - famp[t, 2]


def _twin_nearest_bin(freq, df, n_bins):
    s = np.floor(freq / df).astype(np.int64) + 1
    s = np.maximum(s, 1)
    s = np.where((s < n_bins) & (s * df <= freq), s + 1, s)
    s = np.where((s > 1) & ((s - 1) * df > freq), s - 1, s)
    near = np.where(s * df - freq > freq - (s - 1) * df, s - 1, s)
    return np.where(s >= n_bins, 0, near)


def _twin_quad_peak(x1, y1, x2, y2, x3, y3):
    den = x1 * x1 * x2 + x2 * x2 * x3 + x3 * x3 * x1 - x3 * x3 * x2 - x2 * x2 * x1 - x1 * x1 * x3
    ok = den != 0.0
    dd = np.where(ok, den, 1.0)
    a = (y1 * x2 + y2 * x3 + y3 * x1 - y3 * x2 - y2 * x1 - y1 * x3) / dd
    b = (x1 * x1 * y2 + x2 * x2 * y3 + x3 * x3 * y1 - x3 * x3 * y2 - x2 * x2 * y1 - x1 * x1 * y3) / dd
    c = (x1 * x1 * x2 * y3 + x2 * x2 * x3 * y1 + x3 * x3 * x1 * y2 - x3 * x3 * x2 * y1 - x2 * x2 * x1 * y3
         - x1 * x1 * x3 * y2) / dd
    ok &= a != 0.0
    aa = np.where(ok, a, 1.0)
    xp = -b / (2.0 * aa)
    yp = c - aa * xp * xp
    # fallback: peak picking among the three points
    p1 = (y1 > y2) & (y1 > y3)
    p2 = ~p1 & (y2 > y1) & (y2 > y3)
    p3 = ~p1 & ~p2 & (y3 > y1) & (y3 > y2)
    fx = np.where(p2, x2, np.where(p3, x3, x1))
    fy = np.where(p2, y2, np.where(p3, y3, y1))
    return np.where(ok, xp, fx), np.where(ok, yp, fy)


def _twin_harmonics(mag, f0, formant, df, opensmile):
    n_frames, n_bins = mag.shape
    nh = N_HARMONICS
    h12 = np.zeros(n_frames)
    h13 = np.zeros(n_frames)
    famp = np.zeros((n_frames, 3))
    valid = np.zeros(n_frames, dtype=bool)
    fvalid = np.zeros((n_frames, 3), dtype=bool)
    rows = np.flatnonzero(f0 > 0.0)
    if rows.size == 0:
        return h12, h13, famp, valid, fvalid
    x = mag[rows]
    F0 = f0[rows][:, None]
    R = rows.size
    # is-peak table (n_bins + 2 wide, False outside [0, n_bins))
    pk = np.zeros((R, n_bins + 2), dtype=bool)
    pk[:, 1] = x[:, 0] > x[:, 1]
    pk[:, 2:n_bins] = (x[:, 1:-1] > x[:, :-2]) & (x[:, 1:-1] > x[:, 2:])
    pk[:, n_bins] = x[:, -1] > x[:, -2]
    hn = np.arange(nh)[None, :]
    cand = _twin_nearest_bin((hn + 1) * F0, df, n_bins)
    lower = _twin_nearest_bin((hn + 0.5) * F0, df, n_bins)
    upper = _twin_nearest_bin((hn + 1.5) * F0, df, n_bins)
    first = _twin_nearest_bin(0.5 * F0, df, n_bins)
    ri = np.broadcast_to(np.arange(R)[:, None], cand.shape)

    def peak_at(r, b):
        inside = (b >= 0) & (b < n_bins)
        return inside & pk[r, np.clip(b, -1, n_bins) + 1]

    peak = np.where(peak_at(ri, cand), cand, -1)
    todo = np.flatnonzero((peak == -1).ravel())
    pr, pc, pl, pu = ri.ravel()[todo], cand.ravel()[todo], lower.ravel()[todo], upper.ravel()[todo]
    found = np.full(todo.size, -1)
    d = 1
    while todo.size:
        rgo = pc + d <= pu
        lgo = pc - d >= pl
        alive = rgo | lgo
        hit_r = rgo & peak_at(pr, pc + d)
        hit_l = ~hit_r & lgo & peak_at(pr, pc - d)
        found = np.where(hit_r, pc + d, np.where(hit_l, pc - d, found))
        done = hit_r | hit_l | ~alive
        flat = peak.ravel()
        flat[todo[done]] = found[done]
        peak = flat.reshape(peak.shape)
        keep = ~done
        todo, pr, pc, pl, pu, found = todo[keep], pr[keep], pc[keep], pl[keep], pu[keep], found[keep]
        d += 1
    ok = (peak >= first) & (peak >= 1) & (peak < n_bins - 1)
    pb = np.where(ok, peak, 1)
    ym = np.take_along_axis(x, pb - 1, axis=1)
    y0 = np.take_along_axis(x, pb, axis=1)
    yp = np.take_along_axis(x, pb + 1, axis=1)
    fi, mi = _twin_quad_peak((pb - 1) * df, ym, pb * df, y0, (pb + 1) * df, yp)
    if not opensmile:  # parabola through the log magnitudes where the neighbours are > 0
        lg = (ym > 0.0) & (yp > 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            a, b, c = (np.log(np.where(lg, v, 1.0)) for v in (ym, y0, yp))
            den = a - 2.0 * b + c
            dd = np.where(den != 0.0, 0.5 * (a - c) / np.where(den != 0.0, den, 1.0), 0.0)
            lfi = np.where(den != 0.0, (pb + dd) * df, pb * df)
            with np.errstate(over="ignore"):  # the den == 0 lanes are computed, then discarded
                lmi = np.where(den != 0.0, np.exp(b - 0.25 * (a - c) * dd), y0)
        fi = np.where(lg, lfi, fi)
        mi = np.where(lg, lmi, mi)
    hbin = np.where(ok, peak, cand)
    hmag = np.where(ok, y0, 0.0)
    hfi = np.where(ok, fi, 0.0)
    hmi = np.where(ok, mi, 0.0)
    for i in range(1, nh):
        dup = hbin[:, i] == hbin[:, i - 1]
        hbin[dup, i] = 0
        hmag[dup, i] = 0.0
        hfi[dup, i] = 0.0
        hmi[dup, i] = 0.0
    ref = hmag[:, 0] if opensmile else hmi[:, 0]
    has_ref = ref > 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        lref = np.log10(np.where(has_ref, ref, 1.0))
        L = np.where(hmi > 0.0, 20.0 * (np.log10(np.where(hmi > 0.0, hmi, 1.0)) - lref[:, None]), np.nan)
    ia = 1 if opensmile else 0
    la = L[:, ia] if ia else np.where(hmi[:, 0] > 0.0, 0.0, np.nan)
    lb = L[:, ia + 1]
    v = has_ref & np.isfinite(la) & np.isfinite(lb)
    h12[rows] = np.where(v, la - lb, 0.0)
    valid[rows] = v
    lo_rel, hi_rel = FORMANT_RANGE_REL
    Lz = L.copy()
    Lz[:, 0] = 0.0
    for k in range(3):
        fk = formant[rows, k][:, None]
        inr = (hfi >= lo_rel * fk) & (hfi <= hi_rel * fk) & (hmag > 0.0) & (fk > 0.0)
        best = np.argmax(np.where(inr, hmag, -1.0), axis=1)
        anyr = inr.any(axis=1)
        lv = np.take_along_axis(Lz, best[:, None], axis=1)[:, 0]
        fv = has_ref & anyr & np.isfinite(lv)
        famp[rows, k] = np.where(fv, lv, 0.0)
        fvalid[rows, k] = fv
    both = valid[rows] & fvalid[rows, 2]
    h13[rows] = np.where(both, np.where(both, la, 0.0) - famp[rows, 2], 0.0)
    return h12, h13, famp, valid, fvalid


def _track(a, name, n_frames=None, ncols=None, what="Hz"):
    """An f0 / formant track: float array, NaN = missing (-> 0), negatives and inf refused."""
    if isinstance(a, FormantTrack):
        a = a.frequency
    try:
        a = np.array(a, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"{name} must be a numeric array ({what}); could not convert it ({exc})") from exc
    if ncols is None:
        if a.ndim != 1:
            raise ParameterError(f"{name} has shape {a.shape}; a 1-dimensional per-frame track (n_frames,) is required")
    else:
        if a.ndim != 2 or a.shape[1] < ncols:
            raise ParameterError(
                f"{name} has shape {a.shape}; (n_frames, {ncols}) is required (F1..F{ncols} in Hz per frame, "
                "0 where invalid), e.g. formants(y, sr).frequency"
            )
        a = a[:, :ncols]
        if n_frames is not None and a.shape[0] != n_frames:
            raise ParameterError(
                f"{name} has {a.shape[0]} frames but f0 has {n_frames}; both must be on the same frame grid"
            )
    if np.isinf(a).any() or (a < 0).any():
        bad = np.argwhere(np.isinf(a) | (a < 0))[0]
        raise ParameterError(
            f"{name} holds {a[tuple(bad)]} at {tuple(int(i) for i in bad)}; values must be >= 0 {what} "
            "(0 or NaN = unvoiced / invalid)"
        )
    return np.nan_to_num(a, nan=0.0)


def _gauss_window(N, sigma=GAUSS_SIGMA):
    i = np.arange(N)
    tmp = (i - (N - 1) / 2.0) / (sigma * (N - 1) / 2.0)
    return np.exp(-0.5 * tmp * tmp)


def harmonic_levels(y, sr, f0, formant_frequency, frame_length=None, hop_length=None, *, method="standard",
                    nan_policy="raise"):
    """H1-H2, H1-A3 and formant amplitudes (dB) per frame (openSMILE's ``cHarmonics`` search).

    ``f0`` (n_frames,) Hz on the frame grid of ``formants`` (frame t starts at
    ``t * hop_length``; 0 or NaN = unvoiced); ``formant_frequency``
    (n_frames, >= 3) Hz (0 or NaN = invalid; a :class:`FormantTrack` is
    accepted too). ``frame_length`` (default 60 ms) is the spectrum window;
    frames running past the end of ``y`` are zero-padded. ``method``:
    ``"standard"`` (H1 = the harmonic at f0, the paper's definitions) or
    ``"opensmile"`` (openSMILE's numbers, its harmonic numbering included).
    Returns :class:`HarmonicLevels`; see the module docstring.
    """
    sr = check_rate(sr)
    check_choice(method, "method", HARMONIC_METHODS)
    if frame_length is None:
        frame_length = _round_half_up(HARMONIC_FRAME_S * sr)
    if hop_length is None:
        hop_length = _round_half_up(HOP_S * sr)
    frame_length = check_positive_int(frame_length, "frame_length", 4)
    hop_length = check_positive_int(hop_length, "hop_length")
    y = prepare_signal(y, "y", min_length=1, nan_policy=nan_policy)
    f0 = _track(f0, "f0")
    n_frames = f0.shape[0]
    if n_frames == 0:
        raise ParameterError("f0 is empty; pass one f0 value per frame (0 = unvoiced)")
    ff = _track(formant_frequency, "formant_frequency", n_frames, 3)
    if (n_frames - 1) * hop_length >= y.shape[0]:
        raise ParameterError(
            f"f0 has {n_frames} frames, but y ({y.shape[0]} samples) holds only "
            f"{1 + (y.shape[0] - 1) // hop_length} frame starts at hop_length={hop_length}; pass f0 on the "
            "frame grid of y (frame t starts at sample t * hop_length)"
        )
    if (f0 >= sr / 2).any():
        t = int(np.argmax(f0 >= sr / 2))
        raise ParameterError(f"f0[{t}]={f0[t]:g} Hz is not below the Nyquist frequency {sr / 2:g} Hz; pass f0 in Hz")
    dt = y.dtype.type
    need = (n_frames - 1) * hop_length + frame_length
    yy = y.astype(np.float64)
    if yy.shape[0] < need:
        yy = np.concatenate([yy, np.zeros(need - yy.shape[0])])
    frames = np.lib.stride_tricks.sliding_window_view(yy, frame_length)[::hop_length][:n_frames]
    n_fft = 1 << (frame_length - 1).bit_length()
    df = sr / n_fft
    voiced = np.flatnonzero(f0 > 0.0)
    mag = np.zeros((voiced.size, n_fft // 2 + 1))
    if voiced.size:
        mag = np.ascontiguousarray(np.abs(np.fft.rfft(frames[voiced] * _gauss_window(frame_length), n=n_fft, axis=1)))
    f0v = np.ascontiguousarray(f0[voiced])
    ffv = np.ascontiguousarray(ff[voiced])
    opensmile = method == "opensmile"
    if _config.use_jit():
        nv = voiced.size
        a12, a13 = np.empty(nv), np.empty(nv)
        aamp = np.empty((nv, 3))
        av = np.empty(nv, dtype=np.bool_)
        afv = np.empty((nv, 3), dtype=np.bool_)
        if nv:
            _harmonics_kernel(mag, f0v, ffv, df, opensmile, a12, a13, aamp, av, afv)
    else:
        a12, a13, aamp, av, afv = _twin_harmonics(mag, f0v, ffv, df, opensmile)
    h12 = np.zeros(n_frames)
    h13 = np.zeros(n_frames)
    famp = np.zeros((n_frames, 3))
    valid = np.zeros(n_frames, dtype=bool)
    fvalid = np.zeros((n_frames, 3), dtype=bool)
    h12[voiced], h13[voiced], famp[voiced], valid[voiced], fvalid[voiced] = a12, a13, aamp, av, afv
    if not np.any(y):
        status = "silent"
    elif voiced.size == 0:
        status = "unvoiced"
    else:
        status = "ok"
    return HarmonicLevels(h12.astype(dt), h13.astype(dt), famp.astype(dt), valid, fvalid, sr, hop_length,
                          frame_length, method, status)


# --------------------------------------------------------------------------
