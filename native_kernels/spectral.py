"""Mel spectrogram, MFCC and deltas: librosa-compatible, Numba-compiled.

Parameters and defaults follow librosa 0.10/0.11 (``librosa.feature.mfcc``,
``librosa.feature.melspectrogram``, ``librosa.filters.mel``,
``librosa.power_to_db``, ``librosa.feature.delta``), so a model trained on
librosa features can run on these kernels. Arrays keep librosa's orientation:
(n_mels or n_mfcc, n_frames).

Precision: float32 input is computed in float32 end to end (the FFT too);
float64 input in float64. The mel filterbank is built in float64 and rounded
to ``fb_dtype`` (float32 by default, as librosa does), so float64 results
match librosa's to ~1e-12 relative.

``StreamingMFCC`` accepts chunks of any size and emits the same frames as
``mfcc(..., center=False, top_db=None)`` on the concatenated signal. Streaming
cannot apply ``top_db``: it clips at 80 dB below the maximum of the *whole*
utterance, which is not known until the end.
"""

import math

import numpy as np

from affectedge.errors import ParameterError

from . import _config
from ._config import njit
from ._validate import (
    check_choice,
    check_positive_int,
    check_rate,
    check_real,
    mono_float_chunk,
    prepare_signal,
)

__all__ = [
    "StreamingMFCC",
    "delta",
    "get_window",
    "hz_to_mel",
    "mel_filterbank",
    "mel_frequencies",
    "mel_spectrogram",
    "mel_to_hz",
    "mfcc",
    "power_to_db",
]

PAD_MODES = ("constant", "edge", "reflect", "symmetric", "wrap")
_BLOCK = 64  # frames per FFT block in the batch kernel

# --------------------------------------------------------------------------
# Frequency scales and filters (NumPy; computed once per parameter set)
# --------------------------------------------------------------------------


def hz_to_mel(frequencies, *, htk=False):
    """Hz to mels: Slaney's auditory toolbox scale (default) or HTK's."""
    f = np.asanyarray(frequencies, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    f_sp = 200.0 / 3
    mels = f / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    if f.ndim:
        log_t = f >= min_log_hz
        mels[log_t] = min_log_mel + np.log(f[log_t] / min_log_hz) / logstep
    elif f >= min_log_hz:
        mels = min_log_mel + np.log(f / min_log_hz) / logstep
    return mels


def mel_to_hz(mels, *, htk=False):
    """Mels to Hz, the inverse of :func:`hz_to_mel`."""
    m = np.asanyarray(mels, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp = 200.0 / 3
    freqs = f_sp * m
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    if m.ndim:
        log_t = m >= min_log_mel
        freqs[log_t] = min_log_hz * np.exp(logstep * (m[log_t] - min_log_mel))
    elif m >= min_log_mel:
        freqs = min_log_hz * np.exp(logstep * (m - min_log_mel))
    return freqs


def mel_frequencies(n_mels=128, *, fmin=0.0, fmax=11025.0, htk=False):
    """``n_mels`` frequencies (Hz) evenly spaced on the mel scale."""
    return mel_to_hz(np.linspace(hz_to_mel(fmin, htk=htk), hz_to_mel(fmax, htk=htk), n_mels), htk=htk)


def mel_filterbank(*, sr, n_fft, n_mels=128, fmin=0.0, fmax=None, htk=False, norm="slaney", dtype=np.float32):
    """Triangular mel filterbank, (n_mels, 1 + n_fft // 2), as librosa.filters.mel."""
    sr = check_rate(sr)
    n_fft = check_positive_int(n_fft, "n_fft", 2)
    n_mels = check_positive_int(n_mels, "n_mels")
    fmin, fmax = _check_fminmax(fmin, fmax, sr)
    if norm not in (None, "slaney") and not (isinstance(norm, (int, float)) and not isinstance(norm, bool)):
        raise ParameterError(f"norm={norm!r} is not supported; use 'slaney', None, or a p-norm order (e.g. 1, 2, np.inf)")
    fftfreqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    mel_f = mel_frequencies(n_mels + 2, fmin=fmin, fmax=fmax, htk=htk)
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    weights = np.zeros((n_mels, fftfreqs.size), dtype=dtype)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    if norm == "slaney":
        weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, np.newaxis]
    elif norm is not None:
        length = np.linalg.norm(weights.astype(np.float64), ord=norm, axis=-1, keepdims=True)
        length[length < np.finfo(dtype).tiny] = 1.0
        weights = (weights / length).astype(dtype)
    return weights


def _check_fminmax(fmin, fmax, sr):
    nyquist = sr / 2.0
    fmin = check_real(fmin, "fmin", minimum=0.0)
    if fmax is None:
        fmax = nyquist
    fmax = check_real(fmax, "fmax", minimum=0.0, strict_min=True)
    if fmax > nyquist:
        raise ParameterError(
            f"fmax={fmax:g} Hz is above the Nyquist frequency {nyquist:g} Hz of sr={sr:g}; "
            f"pass fmax <= {nyquist:g} (or None for Nyquist)"
        )
    if fmin >= fmax:
        raise ParameterError(f"fmin={fmin:g} Hz must be below fmax={fmax:g} Hz")
    return fmin, fmax


def _cosine_window(coefs, n):
    # Periodic (fftbins=True) generalized cosine window, as scipy.signal.get_window.
    fac = np.linspace(-np.pi, np.pi, n + 1)[:n]
    w = np.zeros(n)
    for k, a in enumerate(coefs):
        w += a * np.cos(k * fac)
    return w


_WINDOWS = {
    "hann": (0.5, 0.5),
    "hanning": (0.5, 0.5),
    "hamming": (0.54, 0.46),
    "blackman": (0.42, 0.50, 0.08),
}


def get_window(window, win_length, *, name="window"):
    """A periodic analysis window of ``win_length`` samples (float64).

    ``window`` is 'hann', 'hamming', 'blackman', 'boxcar'/'rectangular'/'ones',
    or a 1-D array of exactly ``win_length`` values. Other names go to
    ``scipy.signal.get_window`` when SciPy is installed.
    """
    win_length = check_positive_int(win_length, "win_length")
    if isinstance(window, str):
        key = window.lower()
        if key in _WINDOWS:
            return _cosine_window(_WINDOWS[key], win_length)
        if key in ("boxcar", "rectangular", "rect", "ones"):
            return np.ones(win_length)
        try:
            from scipy.signal import get_window as scipy_get_window
        except ImportError:
            raise ParameterError(
                f"{name}={window!r} is not built in; use 'hann', 'hamming', 'blackman' or 'boxcar', "
                "pass the window as an array, or install SciPy for other window names"
            ) from None
        try:
            return np.asarray(scipy_get_window(window, win_length, fftbins=True), dtype=np.float64)
        except ValueError as exc:
            raise ParameterError(f"{name}={window!r} is not a known window ({exc})") from exc
    w = np.asarray(window)
    if w.ndim != 1 or w.shape[0] != win_length or not np.issubdtype(w.dtype, np.floating):
        raise ParameterError(
            f"{name} given as an array must be 1-D float of length win_length={win_length}; "
            f"got dtype {w.dtype} and shape {w.shape}"
        )
    if not np.all(np.isfinite(w)):
        raise ParameterError(f"{name} contains NaN or inf values")
    return w.astype(np.float64)


def _padded_window(window, win_length, n_fft):
    w = get_window(window, win_length)
    if win_length > n_fft:
        raise ParameterError(f"win_length={win_length} must be <= n_fft={n_fft}")
    out = np.zeros(n_fft)
    lpad = (n_fft - win_length) // 2
    out[lpad : lpad + win_length] = w
    return out


def _dct_matrix(n_out, n_in, norm):
    """DCT-II as a matrix (n_out, n_in), as scipy.fft.dct(type=2, norm=norm)."""
    n = np.arange(n_in)
    k = np.arange(n_out)[:, None]
    basis = 2.0 * np.cos(np.pi * k * (2 * n + 1) / (2.0 * n_in))
    if norm == "ortho":
        basis[0] *= math.sqrt(1.0 / (4 * n_in))
        basis[1:] *= math.sqrt(1.0 / (2 * n_in))
    return basis


# --------------------------------------------------------------------------
# Parameter resolution shared by batch and streaming
# --------------------------------------------------------------------------


class _Spec:
    """Resolved, validated STFT + mel + cepstrum parameters, with constants cached."""

    def typed(self, dtype):
        """The constant arrays cast to ``dtype`` (cached)."""
        key = np.dtype(dtype).char
        hit = self._typed.get(key)
        if hit is None:
            names = ("win", "fb", "dct", "dct10", "dct_ref")
            hit = {n: np.ascontiguousarray(getattr(self, n), dtype=dtype) for n in names
                   if getattr(self, n) is not None}
            self._typed[key] = hit
        return hit

    __slots__ = ("_typed",

        "sr", "n_fft", "hop", "win_length", "window", "center", "pad_mode", "power",
        "n_mels", "fmin", "fmax", "htk", "mel_norm", "n_mfcc", "dct_norm", "lifter",
        "amin", "top_db", "ref_db", "fb", "fb_lo", "fb_hi", "win", "dct", "dct10", "dct_ref",
    )


_SPEC_CACHE = {}


def _resolve(sr, n_fft, hop_length, win_length, window, center, pad_mode, power, n_mels, fmin, fmax,
             htk, mel_norm, n_mfcc=None, dct_type=2, dct_norm="ortho", lifter=0.0, ref=1.0, amin=1e-10,
             top_db=80.0):
    key = None
    if isinstance(window, str):
        key = (sr, n_fft, hop_length, win_length, window, center, pad_mode, power, n_mels, fmin, fmax, htk,
               mel_norm, n_mfcc, dct_type, dct_norm, lifter, ref, amin, top_db)
        try:
            hit = _SPEC_CACHE.get(key)
        except TypeError:  # unhashable argument: validate below and report it
            key, hit = None, None
        if hit is not None:
            return hit
    s = _Spec()
    s._typed = {}
    s.dct10 = s.dct_ref = None
    s.sr = check_rate(sr)
    s.n_fft = check_positive_int(n_fft, "n_fft", 2)
    s.win_length = s.n_fft if win_length is None else check_positive_int(win_length, "win_length")
    s.hop = s.win_length // 4 if hop_length is None else check_positive_int(hop_length, "hop_length")
    s.window = window
    s.center = bool(center)
    s.pad_mode = check_choice(pad_mode, "pad_mode", PAD_MODES)
    s.power = check_real(power, "power", minimum=0.0, strict_min=True)
    s.n_mels = check_positive_int(n_mels, "n_mels")
    s.fmin, s.fmax = _check_fminmax(fmin, fmax, s.sr)
    s.htk = bool(htk)
    s.mel_norm = mel_norm
    s.win = _padded_window(window, s.win_length, s.n_fft)
    fb = mel_filterbank(sr=s.sr, n_fft=s.n_fft, n_mels=s.n_mels, fmin=s.fmin, fmax=s.fmax, htk=s.htk, norm=mel_norm)
    s.fb = fb.astype(np.float64)
    nz = fb > 0
    has = nz.any(axis=1)
    s.fb_lo = np.where(has, nz.argmax(axis=1), 0).astype(np.int64)
    s.fb_hi = np.where(has, fb.shape[1] - nz[:, ::-1].argmax(axis=1), 0).astype(np.int64)
    s.amin = check_real(amin, "amin", minimum=0.0, strict_min=True)
    ref = check_real(ref, "ref", minimum=0.0, strict_min=True)
    s.ref_db = 10.0 * math.log10(max(s.amin, abs(ref)))
    s.top_db = check_real(top_db, "top_db", minimum=0.0, allow_none=True)
    s.n_mfcc = n_mfcc
    s.dct_norm = dct_norm
    s.lifter = 0.0
    s.dct = None
    if n_mfcc is not None:
        s.n_mfcc = check_positive_int(n_mfcc, "n_mfcc")
        if dct_type != 2:
            raise ParameterError(f"dct_type={dct_type!r} is not supported; only the DCT-II (dct_type=2) is implemented")
        check_choice(dct_norm, "norm", ("ortho", None))
        if s.n_mfcc > s.n_mels:
            raise ParameterError(f"n_mfcc={s.n_mfcc} must be <= n_mels={s.n_mels}")
        s.lifter = check_real(lifter, "lifter", minimum=0.0)
        dct = _dct_matrix(s.n_mfcc, s.n_mels, dct_norm)
        if s.lifter > 0:
            dct *= (1.0 + (s.lifter / 2.0) * np.sin(np.pi * np.arange(1, 1 + s.n_mfcc) / s.lifter))[:, None]
        s.dct = dct
        s.dct10 = 10.0 * dct
        s.dct_ref = s.ref_db * dct.sum(axis=1)
    if key is not None:
        if len(_SPEC_CACHE) > 64:
            _SPEC_CACHE.clear()
        _SPEC_CACHE[key] = s
    return s


def _prepare_audio(y, s, nan_policy, center):
    y = prepare_signal(
        y,
        "y",
        ndim=1,
        min_length=s.n_fft,
        nan_policy=nan_policy,
        length_hint=f" (n_fft={s.n_fft} at sr={s.sr:g} Hz)",
    )
    if center:
        pad = s.n_fft // 2
        if s.pad_mode == "reflect" and y.shape[0] <= pad:
            raise ParameterError(f"y has {y.shape[0]} samples; pad_mode='reflect' needs more than n_fft // 2 = {pad}")
        y = np.pad(y, pad, mode=s.pad_mode)
    return y


def _n_frames(n, n_fft, hop):
    return 0 if n < n_fft else 1 + (n - n_fft) // hop


# --------------------------------------------------------------------------
# NumPy twins: slow, obviously right
# --------------------------------------------------------------------------


def _twin_mel_power(y, s):
    dt = y.dtype
    frames = np.lib.stride_tricks.sliding_window_view(y, s.n_fft)[:: s.hop]
    spec = np.fft.rfft(frames * s.win.astype(dt), axis=-1)
    mag = np.abs(spec) ** 2 if s.power == 2.0 else np.abs(spec) ** s.power
    return (s.fb.astype(dt) @ mag.T.astype(dt)).astype(dt)  # (n_mels, n_frames)


def _twin_to_db(mel, s, top_db):
    dt = mel.dtype.type
    log_spec = np.maximum(mel, dt(s.amin))
    np.log10(log_spec, out=log_spec)
    log_spec *= dt(10.0)
    log_spec -= dt(s.ref_db)
    if top_db is not None:
        np.maximum(log_spec, log_spec.max() - dt(top_db), out=log_spec)
    return log_spec


# --------------------------------------------------------------------------
# Numba kernels
# --------------------------------------------------------------------------


@njit(inline="always")
def _windowed_copy(dst, src, win, n):
    # 1-D views and a helper of its own let LLVM vectorise the copy.
    for i in range(n):
        dst[i] = src[i] * win[i]


@njit(inline="always")
def _axpy(acc, w, x, n):
    for i in range(n):
        acc[i] += w * x[i]


@njit
def _mel_kernel(y, pad, win, hop, n_fft, n_frames, fb, fb_lo, fb_hi, power, out):
    """Mel power of n_frames frames into out (n_mels, n_frames).

    ``y`` is the unpadded signal when ``pad`` > 0: frame t starts at sample
    t * hop - pad and samples outside y are zero (librosa's center=True with
    pad_mode='constant', without copying the signal). Frames are windowed
    and transformed in blocks; each block's power spectrum is stored
    transposed (bins, frames) so the sparse mel sums run over contiguous
    frames and land directly in librosa's (n_mels, n_frames) layout.
    """
    n_bins = n_fft // 2 + 1
    n_mels = fb.shape[0]
    n_y = y.shape[0]
    dt = y.dtype.type
    half_power = dt(power / 2.0)
    is_two = power == 2.0
    bsz = min(_BLOCK, n_frames)
    block = np.empty((bsz, n_fft), dtype=y.dtype)
    pw = np.empty((n_bins, bsz), dtype=y.dtype)
    acc = np.empty(bsz, dtype=y.dtype)
    fbd = fb
    windt = win
    t0 = 0
    while t0 < n_frames:
        nb = min(bsz, n_frames - t0)
        for b in range(nb):
            start = (t0 + b) * hop - pad
            if start >= 0 and start + n_fft <= n_y:
                _windowed_copy(block[b], y[start : start + n_fft], windt, n_fft)
            else:
                for i in range(n_fft):
                    j = start + i
                    block[b, i] = y[j] * windt[i] if 0 <= j < n_y else dt(0.0)
        spec = np.fft.rfft(block[:nb])
        for k in range(n_bins):
            for b in range(nb):
                c = spec[b, k]
                pw[k, b] = c.real * c.real + c.imag * c.imag
        if not is_two:
            for k in range(n_bins):
                for b in range(nb):
                    pw[k, b] = pw[k, b] ** half_power
        for m in range(n_mels):
            acc[:] = 0.0
            for k in range(fb_lo[m], fb_hi[m]):
                _axpy(acc, fbd[m, k], pw[k], nb)
            out[m, t0 : t0 + nb] = acc[:nb]
        t0 += nb


@njit
def _stream_kernel(y, n_frames, win, hop, n_fft, fb, fb_lo, fb_hi, power, amin, ref_db, dct, frame, pw, mel):
    """MFCC of the first n_frames frames of y (no padding, no top_db), fused.

    One frame at a time with caller-owned scratch (frame, pw, mel), so a
    10 ms push costs one 1-D FFT and no scratch allocation.
    """
    dt = y.dtype.type
    n_bins = n_fft // 2 + 1
    n_mels = fb.shape[0]
    n_out = dct.shape[0]
    half_power = dt(power / 2.0)
    is_two = power == 2.0
    a = dt(amin)
    r = dt(ref_db)
    ten = dt(10.0)
    out = np.empty((n_out, n_frames), dtype=y.dtype)
    for t in range(n_frames):
        start = t * hop
        _windowed_copy(frame, y[start : start + n_fft], win, n_fft)
        spec = np.fft.rfft(frame)
        for k in range(n_bins):
            c = spec[k]
            p = c.real * c.real + c.imag * c.imag
            pw[k] = p if is_two else p ** half_power
        for m in range(n_mels):
            acc = dt(0.0)
            for k in range(fb_lo[m], fb_hi[m]):
                acc += fb[m, k] * pw[k]
            mel[m] = ten * np.log10(max(acc, a)) - r
        for j in range(n_out):
            acc = dt(0.0)
            for m in range(n_mels):
                acc += dct[j, m] * mel[m]
            out[j, t] = acc
    return out


@njit
def _first_nonfinite(x):
    for i in range(x.shape[0]):
        if not np.isfinite(x[i]):
            return i
    return -1


def _jit_ok():
    return _config.use_jit() and _config.HAVE_NUMBA_FFT


def _mel_power(y, s, pad=0):
    """(n_mels, n_frames) mel power; ``pad`` zero samples are implied on each side."""
    if not _jit_ok():
        if pad:
            y = np.pad(y, pad)
        return _twin_mel_power(y, s)
    n = _n_frames(y.shape[0] + 2 * pad, s.n_fft, s.hop)
    out = np.empty((s.n_mels, n), dtype=y.dtype)
    c = s.typed(y.dtype)
    _mel_kernel(y, pad, c["win"], s.hop, s.n_fft, n, c["fb"], s.fb_lo, s.fb_hi, s.power, out)
    return out


def _mfcc_from_mel(mel, s, top_db):
    """(n_mfcc, n_frames) from mel power: dB, top_db clipping, DCT."""
    dt = mel.dtype.type
    if not _jit_ok():
        return (s.dct.astype(dt) @ _twin_to_db(mel, s, top_db)).astype(dt, copy=False)
    # Many frames: NumPy's SIMD log10 and BLAS beat scalar loops. The DCT is
    # linear, so dct @ (10 log10(S) - ref) = (10 dct) @ log10(S) - ref * rowsum,
    # and top_db clipping can be applied in the log10 domain.
    log_s = np.maximum(mel, dt(s.amin), out=mel)
    np.log10(log_s, out=log_s)
    if top_db is not None:
        np.maximum(log_s, log_s.max() - dt(top_db / 10.0), out=log_s)
    c = s.typed(mel.dtype)
    out = c["dct10"] @ log_s
    out -= c["dct_ref"][:, None]
    return out


def _prepare_and_mel(y, s, nan_policy):
    """Validate y and return its mel power, padding as s.center/pad_mode ask."""
    if s.center and s.pad_mode == "constant":
        y = prepare_signal(y, "y", ndim=1, min_length=s.n_fft, nan_policy=nan_policy,
                           length_hint=f" (n_fft={s.n_fft} at sr={s.sr:g} Hz)")
        return _mel_power(y, s, pad=s.n_fft // 2)
    return _mel_power(_prepare_audio(y, s, nan_policy, s.center), s)


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def mel_spectrogram(
    y,
    *,
    sr=22050,
    n_fft=2048,
    hop_length=512,
    win_length=None,
    window="hann",
    center=True,
    pad_mode="constant",
    power=2.0,
    n_mels=128,
    fmin=0.0,
    fmax=None,
    htk=False,
    norm="slaney",
    nan_policy="raise",
):
    """Mel-scaled spectrogram (n_mels, n_frames), as ``librosa.feature.melspectrogram``.

    ``y`` is mono audio, float32 or float64, at ``sr`` Hz. ``nan_policy``:
    'raise' (default) refuses NaN/inf samples naming the first index; 'zero'
    replaces them with 0; 'interpolate' interpolates linearly.
    """
    s = _resolve(sr, n_fft, hop_length, win_length, window, center, pad_mode, power, n_mels, fmin, fmax, htk, norm)
    return _prepare_and_mel(y, s, nan_policy)


def power_to_db(S, *, ref=1.0, amin=1e-10, top_db=80.0):
    """10 log10(S / ref), floored at ``amin`` and clipped at ``top_db`` below the peak.

    As ``librosa.power_to_db`` with a numeric ``ref``.
    """
    S = np.asarray(S)
    if np.iscomplexobj(S):
        raise ParameterError("S is complex; pass a power spectrogram, e.g. np.abs(D) ** 2")
    amin = check_real(amin, "amin", minimum=0.0, strict_min=True)
    ref = check_real(ref, "ref")
    top_db = check_real(top_db, "top_db", minimum=0.0, allow_none=True)
    dt = S.dtype if S.dtype in (np.float32, np.float64) else np.float64
    S = S.astype(dt, copy=False)
    log_spec = 10.0 * np.log10(np.maximum(dt.type(amin), S)) - dt.type(10.0 * np.log10(max(amin, abs(ref))))
    if top_db is not None:
        log_spec = np.maximum(log_spec, log_spec.max() - dt.type(top_db))
    return log_spec.astype(dt, copy=False)


def mfcc(
    y,
    *,
    sr=22050,
    n_mfcc=20,
    dct_type=2,
    norm="ortho",
    lifter=0.0,
    mel_norm="slaney",
    top_db=80.0,
    n_fft=2048,
    hop_length=512,
    win_length=None,
    window="hann",
    center=True,
    pad_mode="constant",
    power=2.0,
    n_mels=128,
    fmin=0.0,
    fmax=None,
    htk=False,
    nan_policy="raise",
):
    """Mel-frequency cepstral coefficients (n_mfcc, n_frames).

    Same parameters and defaults as ``librosa.feature.mfcc`` (which applies
    ``power_to_db`` with ref=1, amin=1e-10, top_db=80 before the DCT);
    ``top_db=None`` disables the clipping (as the streaming form must).
    """
    s = _resolve(sr, n_fft, hop_length, win_length, window, center, pad_mode, power, n_mels, fmin, fmax, htk,
                 mel_norm, n_mfcc, dct_type, norm, lifter, top_db=top_db)
    return _mfcc_from_mel(_prepare_and_mel(y, s, nan_policy), s, s.top_db)


# -------------------------------- deltas ----------------------------------


def _savgol_operators(width, order):
    """Interior weights (width,) and edge matrices (half, width) for the
    Savitzky-Golay derivative of ``order`` with polynomial order ``order``,
    mode 'interp' (as scipy.signal.savgol_filter, used by librosa)."""
    half = width // 2
    t = np.arange(-half, half + 1, dtype=np.float64)
    vander = t[:, None] ** np.arange(order + 1)[None, :]
    pinv = np.linalg.pinv(vander)  # (order+1, width): polynomial coefs from samples
    fact = math.factorial(order)
    interior = fact * pinv[order]
    # Edges: the same fit over the first/last window, derivative evaluated at
    # the edge positions s = i - half (left) and s = i + 1 (right).
    def deriv_at(s_pos):
        row = np.zeros(width)
        for p in range(order, order + 1):
            row += (math.factorial(p) / math.factorial(p - order)) * s_pos ** (p - order) * pinv[p]
        return row

    left = np.stack([deriv_at(i - half) for i in range(half)])
    right = np.stack([deriv_at(i + 1) for i in range(half)])
    return interior, left, right


@njit
def _delta_kernel(data, interior, left, right, out):
    n_rows, n = data.shape
    width = interior.shape[0]
    half = width // 2
    dt = data.dtype.type
    wi = interior.astype(data.dtype)
    wl = left.astype(data.dtype)
    wr = right.astype(data.dtype)
    for r in range(n_rows):
        for i in range(half, n - half):
            acc = dt(0.0)
            for j in range(width):
                acc += wi[j] * data[r, i - half + j]
            out[r, i] = acc
        for i in range(half):
            accl = dt(0.0)
            accr = dt(0.0)
            for j in range(width):
                accl += wl[i, j] * data[r, j]
                accr += wr[i, j] * data[r, n - width + j]
            out[r, i] = accl
            out[r, n - half + i] = accr


def _twin_delta(data, interior, left, right):
    width = interior.shape[0]
    half = width // 2
    n = data.shape[-1]
    windows = np.lib.stride_tricks.sliding_window_view(data, width, axis=-1)
    out = np.empty_like(data)
    out[..., half : n - half] = windows @ interior.astype(data.dtype)
    out[..., :half] = data[..., :width] @ left.T.astype(data.dtype)
    out[..., n - half :] = data[..., n - width :] @ right.T.astype(data.dtype)
    return out


def delta(data, *, width=9, order=1, axis=-1, mode="interp"):
    """Local derivative (delta) features, as ``librosa.feature.delta``.

    A Savitzky-Golay derivative of ``order`` over ``width`` frames along
    ``axis``; edges use mode 'interp' (a polynomial fitted to the first and
    last ``width`` frames), the librosa default and the only mode offered.
    """
    data = np.asarray(data)
    if data.dtype not in (np.float32, np.float64):
        raise ParameterError(f"data has dtype {data.dtype}; float32 or float64 features are required")
    check_choice(mode, "mode", ("interp",))
    width = check_positive_int(width, "width", 3)
    if width % 2 != 1:
        raise ParameterError(f"width={width} must be an odd integer >= 3")
    order = check_positive_int(order, "order", 1)
    if order >= width:
        raise ParameterError(f"order={order} must be below width={width}")
    if data.ndim == 0:
        raise ParameterError("data is a scalar; pass (n_features, n_frames) features")
    try:
        moved = np.moveaxis(data, axis, -1)
    except np.exceptions.AxisError as exc:
        raise ParameterError(f"axis={axis} is out of range for data with shape {data.shape}") from exc
    if moved.shape[-1] < width:
        raise ParameterError(
            f"data has {moved.shape[-1]} frames along axis {axis}, fewer than width={width}; "
            "pass a smaller odd width (>= 3) or more frames"
        )
    if not np.all(np.isfinite(moved)):
        raise ParameterError("data contains NaN or inf; compute deltas on finite features")
    interior, left, right = _savgol_operators(width, order)
    if not _config.use_jit():
        out = _twin_delta(moved, interior, left, right)
    else:
        flat = np.ascontiguousarray(moved.reshape(-1, moved.shape[-1]))
        out = np.empty_like(flat)
        _delta_kernel(flat, interior, left, right, out)
        out = out.reshape(moved.shape)
    return np.ascontiguousarray(np.moveaxis(out, -1, axis))


# ------------------------------- streaming --------------------------------


class StreamingMFCC:
    """MFCC frames from a stream of audio chunks of any size.

    ``push(chunk)`` returns the (n_mfcc, k) frames completed by the chunk (k
    may be 0). Concatenated, they equal ``mfcc(signal, center=False,
    top_db=None, ...)`` of everything pushed so far, whatever the chunking.
    ``frames_emitted`` counts frames; frame ``i`` starts at sample
    ``i * hop_length`` (``start_time_s(i)``).

    Parameters are those of :func:`mfcc` except ``center`` (always False: a
    stream has no future to pad with) and ``top_db`` (always None).
    """

    def __init__(
        self,
        *,
        sr=16000,
        n_mfcc=13,
        n_fft=512,
        hop_length=160,
        win_length=None,
        window="hann",
        n_mels=40,
        fmin=0.0,
        fmax=None,
        htk=False,
        mel_norm="slaney",
        norm="ortho",
        lifter=0.0,
        power=2.0,
        dtype=np.float32,
        nan_policy="raise",
    ):
        self._spec = _resolve(sr, n_fft, hop_length, win_length, window, False, "constant", power, n_mels, fmin,
                              fmax, htk, mel_norm, n_mfcc, 2, norm, lifter, top_db=None)
        if np.dtype(dtype) not in (np.float32, np.float64):
            raise ParameterError(f"dtype={dtype!r} must be np.float32 or np.float64")
        self.dtype = np.dtype(dtype).type
        check_choice(nan_policy, "nan_policy", ("raise", "zero"))
        self.nan_policy = nan_policy
        s = self._spec
        self._cap = s.n_fft + 64 * s.hop
        self._buf = np.zeros(self._cap, dtype=self.dtype)
        self._len = 0
        self.frames_emitted = 0
        self.samples_seen = 0
        self._consts = s.typed(self.dtype)
        self._jit = _jit_ok()
        self._frame = np.empty(s.n_fft, dtype=self.dtype)
        self._pw = np.empty(s.n_fft // 2 + 1, dtype=self.dtype)
        self._mel = np.empty(s.n_mels, dtype=self.dtype)

    @property
    def sample_rate_hz(self):
        return self._spec.sr

    @property
    def hop_length(self):
        return self._spec.hop

    def start_time_s(self, frame_index):
        """Start time (s) of frame ``frame_index`` from the first sample pushed."""
        return frame_index * self._spec.hop / self._spec.sr

    def reset(self):
        """Forget buffered samples and counters."""
        self._len = 0
        self.frames_emitted = 0
        self.samples_seen = 0

    def _check_chunk(self, chunk):
        chunk = mono_float_chunk(chunk, self.dtype)
        if self._jit:
            bad = _first_nonfinite(chunk)
        else:
            finite = np.isfinite(chunk)
            bad = -1 if finite.all() else int(np.argmax(~finite))
        if bad >= 0:
            if self.nan_policy == "raise":
                raise ParameterError(
                    f"chunk contains {chunk[bad]} at index {bad} (stream sample {self.samples_seen + bad}); "
                    "nothing from this chunk was consumed. Clean it, or create the stream with nan_policy='zero'"
                )
            chunk = np.where(np.isfinite(chunk), chunk, 0).astype(self.dtype)
        return chunk

    def push(self, chunk):
        """Feed samples; returns the newly completed frames, (n_mfcc, k)."""
        self._jit = _jit_ok()
        chunk = self._check_chunk(chunk)
        s = self._spec
        n_new = chunk.shape[0]
        total = self._len + n_new
        if total > self._cap:
            # Grow so that the chunk fits; keeps the copy count O(1) per sample.
            grown = np.zeros(max(total, 2 * self._cap), dtype=self.dtype)
            grown[: self._len] = self._buf[: self._len]
            self._buf = grown
            self._cap = grown.shape[0]
        self._buf[self._len : total] = chunk
        self._len = total
        self.samples_seen += n_new
        k = 0 if total < s.n_fft else 1 + (total - s.n_fft) // s.hop
        if k == 0:
            return np.empty((s.n_mfcc, 0), dtype=self.dtype)
        if self._jit:
            c = self._consts
            out = _stream_kernel(self._buf, k, c["win"], s.hop, s.n_fft, c["fb"], s.fb_lo, s.fb_hi, s.power,
                                 s.amin, s.ref_db, c["dct"], self._frame, self._pw, self._mel)
        else:
            out = _mfcc_from_mel(_mel_power(self._buf[: (k - 1) * s.hop + s.n_fft], s), s, None)
        used = k * s.hop
        rest = total - used
        self._buf[:rest] = self._buf[used:total]
        self._len = rest
        self.frames_emitted += k
        return out
