"""EEG spectral features: Welch PSD, band power, differential entropy.

Public API
----------
``welch(x, fs, ...)``
    Welch power spectral density, numerically compatible with
    :func:`scipy.signal.welch` (one-sided, ``nfft == nperseg``, no padding,
    no boundary extension) for the supported options.
``band_power(x, fs, ...)``
    Power per frequency band from the Welch PSD.
``differential_entropy(x, fs, ...)``
    Differential entropy (DE) per band, two definitions (``"psd"`` and
    ``"gaussian"``, see its docstring).
``StreamingBandPower``
    Sliding-window band power (+ DE) for live streams; equal to the batch
    functions on the same slices whatever the chunking.
``DEFAULT_BANDS``
    Read-only ordered mapping ``name -> (lo_hz, hi_hz)``: delta 1-4, theta
    4-8, alpha 8-13, beta 13-30, gamma 30-45 Hz.

Signals are ``(channels, samples)``; a 1-D ``(samples,)`` array is treated as
one channel and the channel axis is dropped from the result. float32 input
gives float32 output and float64 gives float64; the arithmetic is done in
float64 in both cases (the result is rounded once at the end).

Each computation has a compiled kernel (``@njit``; the FFT inside it needs
rocket-fft) and a NumPy twin used when the JIT is off or rocket-fft is
missing. Neither needs SciPy at run time.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from types import MappingProxyType

import numpy as np

from affectedge.errors import ParameterError

from . import _config
from ._config import njit, use_jit
from ._validate import NAN_POLICIES, check_choice, check_positive_int, check_rate, prepare_signal

__all__ = [
    "DEFAULT_BANDS",
    "StreamingBandPower",
    "band_power",
    "differential_entropy",
    "welch",
]

DEFAULT_BANDS = MappingProxyType(
    {
        "delta": (1.0, 4.0),
        "theta": (4.0, 8.0),
        "alpha": (8.0, 13.0),
        "beta": (13.0, 30.0),
        "gamma": (30.0, 45.0),
    }
)

_DEFAULT_NPERSEG = 256  # scipy.signal.welch's default (clipped to the signal length)
_WINDOWS = ("hann", "hamming", "blackman", "boxcar", "rectangular")
_DETRENDS = {"constant": 1, "linear": 2, False: 0}
_SCALINGS = ("density", "spectrum")
_AVERAGES = {"mean": 0, "median": 1}
_INTEGRATIONS = {"rectangle": 0, "trapezoid": 1}
_DE_METHODS = ("psd", "gaussian")
_CACHE_MAX = 64

# (kind, parameters...) -> precomputed window / bin indices
_CACHE: dict = {}


def _cache_put(key, value):
    if len(_CACHE) >= _CACHE_MAX:
        try:  # drop the oldest entry; tolerate another thread doing the same
            _CACHE.pop(next(iter(_CACHE)), None)
        except (StopIteration, RuntimeError):
            pass
    _CACHE[key] = value
    return value


# --------------------------------------------------------------------------
# Windows (periodic, like scipy.signal.get_window(..., fftbins=True))
# --------------------------------------------------------------------------


def _general_cosine_periodic(m, coeffs):
    """Same arithmetic as scipy.signal.windows.general_cosine(m, a, sym=False)."""
    if m <= 1:
        return np.ones(m)
    fac = np.linspace(-np.pi, np.pi, m + 1)
    w = np.zeros(m + 1)
    for k, a in enumerate(coeffs):
        w += a * np.cos(k * fac)
    return w[:-1]


def _make_window(window, nperseg):
    if window in ("boxcar", "rectangular"):
        return np.ones(nperseg)
    if window == "hann":
        return _general_cosine_periodic(nperseg, (0.5, 0.5))
    if window == "hamming":
        return _general_cosine_periodic(nperseg, (0.54, 0.46))
    if window == "blackman":
        return _general_cosine_periodic(nperseg, (0.42, 0.50, 0.08))
    raise AssertionError(window)  # unreachable: checked by the caller


def _resolve_window(window, nperseg, n):
    """Return (window array float64, nperseg)."""
    if isinstance(window, str):
        check_choice(window, "window", _WINDOWS)
        if nperseg is None:
            nperseg = min(_DEFAULT_NPERSEG, n)
        else:
            nperseg = check_positive_int(nperseg, "nperseg")
        key = ("win", window, nperseg)
        win = _CACHE.get(key)
        if win is None:
            win = _cache_put(key, _make_window(window, nperseg))
        return win, nperseg
    try:
        win = np.asarray(window, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ParameterError(
            f"window={window!r} must be one of {', '.join(map(repr, _WINDOWS))} or a 1-D array of "
            f"real weights; could not convert it ({exc})"
        ) from exc
    if win.ndim != 1 or win.size == 0:
        raise ParameterError(
            f"window array has shape {win.shape}, but a non-empty 1-D array of nperseg weights is "
            "required; pass e.g. np.hanning(nperseg) or a window name such as 'hann'"
        )
    if not np.all(np.isfinite(win)):
        raise ParameterError("window array contains NaN or inf; pass finite weights")
    if nperseg is None:
        nperseg = win.size
    else:
        nperseg = check_positive_int(nperseg, "nperseg")
        if nperseg != win.size:
            raise ParameterError(
                f"nperseg={nperseg} does not match the window array length {win.size}; "
                "leave nperseg=None or pass a window of nperseg samples"
            )
    return np.ascontiguousarray(win), nperseg


# --------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------


def _prepare(x, name, nan_policy, min_length, length_hint=""):
    """Return (float64 2-D C array, output dtype, was_1d)."""
    check_choice(nan_policy, "nan_policy", NAN_POLICIES)
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except Exception as exc:  # ragged lists and the like
            raise ParameterError(
                f"{name} must be a NumPy array of EEG (channels, samples); could not convert it ({exc})"
            ) from exc
    if x.ndim not in (1, 2):
        raise ParameterError(
            f"{name} is {x.ndim}-dimensional with shape {x.shape}, but EEG must be 2-dimensional "
            f"(channels, samples) or 1-dimensional (samples,) for one channel; reshape it, e.g. "
            f"{name}.reshape(-1, {name}.shape[-1]) to stack leading axes as channels"
        )
    if x.dtype.kind in "iub":
        raise ParameterError(
            f"{name} has dtype {x.dtype}, but float32 or float64 is required. Convert it first, "
            f"e.g. {name}.astype(np.float64) (scaled to volts or microvolts)"
        )
    if x.ndim == 2 and x.shape[0] == 0:
        raise ParameterError(f"{name} is empty (shape {x.shape}); at least one channel is required")
    was_1d = x.ndim == 1
    y = prepare_signal(
        x,
        name,
        ndim=x.ndim,
        min_length=min_length,
        nan_policy=nan_policy,
        what="EEG",
        length_hint=length_hint,
    )
    dtype = y.dtype
    if was_1d:
        y = y[None, :]
    if dtype != np.float64:
        y = y.astype(np.float64)
    return np.ascontiguousarray(y), dtype, was_1d


def _segment_params(n, nperseg, noverlap, name):
    if nperseg > n:
        raise ParameterError(
            f"{name} has {n} samples, shorter than nperseg={nperseg}; pass a longer signal or a "
            f"smaller nperseg (<= {n})"
        )
    if noverlap is None:
        noverlap = nperseg // 2
    else:
        if isinstance(noverlap, bool) or not isinstance(noverlap, numbers.Integral):
            raise ParameterError(f"noverlap={noverlap!r} must be an integer in [0, nperseg) = [0, {nperseg})")
        noverlap = int(noverlap)
        if not 0 <= noverlap < nperseg:
            raise ParameterError(
                f"noverlap={noverlap} must be >= 0 and smaller than nperseg={nperseg}; "
                f"e.g. noverlap={nperseg // 2} (50% overlap)"
            )
    return noverlap


def _normalize_bands(bands):
    """Return a hashable tuple of (name, lo, hi), checked for shape and order."""
    if bands is DEFAULT_BANDS:
        return _DEFAULT_BAND_TUPLE
    items = []
    try:
        if isinstance(bands, Mapping):
            for name, edges in bands.items():
                lo, hi = edges
                items.append((str(name), lo, hi))
        else:
            for entry in bands:
                name, lo, hi = entry
                items.append((str(name), lo, hi))
    except (TypeError, ValueError) as exc:
        raise ParameterError(
            f"bands={bands!r} must be a mapping name -> (lo_hz, hi_hz) or a sequence of "
            f"(name, lo_hz, hi_hz); e.g. {{'alpha': (8, 13)}} ({exc})"
        ) from exc
    if not items:
        raise ParameterError("bands is empty; pass at least one band, e.g. {'alpha': (8, 13)}")
    out = []
    for name, lo, hi in items:
        for edge, label in ((lo, "lower"), (hi, "upper")):
            if isinstance(edge, bool) or not isinstance(edge, numbers.Real) or not math.isfinite(edge):
                raise ParameterError(f"band {name!r} has {label} edge {edge!r}; edges must be finite numbers in Hz")
        lo, hi = float(lo), float(hi)
        if lo < 0:
            raise ParameterError(f"band {name!r} = ({lo}, {hi}) Hz has a negative lower edge; use lo >= 0 Hz")
        if not lo < hi:
            raise ParameterError(
                f"band {name!r} = ({lo}, {hi}) Hz is invalid: lo must be < hi; swap the edges or widen the band"
            )
        out.append((name, lo, hi))
    return tuple(out)


_DEFAULT_BAND_TUPLE = tuple((k, float(v[0]), float(v[1])) for k, v in DEFAULT_BANDS.items())


def _band_bins(bands, fs, nfft, min_bins, resolution_hint):
    """Bin index ranges [lo_idx, hi_idx) for the bins with lo <= f < hi.

    ``f`` is ``np.fft.rfftfreq(nfft, 1 / fs)``. Cached per (bands, fs, nfft).
    Returns (lo_idx, hi_idx, total_lo, total_hi, freqs).
    """
    key = ("bins", bands, fs, nfft, min_bins)
    hit = _CACHE.get(key)
    if hit is not None:
        return hit
    nyquist = fs / 2.0
    freqs = np.fft.rfftfreq(nfft, 1.0 / fs)
    lo_idx = np.empty(len(bands), dtype=np.int64)
    hi_idx = np.empty(len(bands), dtype=np.int64)
    for i, (name, lo, hi) in enumerate(bands):
        if hi > nyquist:
            raise ParameterError(
                f"band {name!r} = ({lo:g}, {hi:g}) Hz reaches above the Nyquist frequency "
                f"{nyquist:g} Hz (fs={fs:g} Hz); lower its upper edge to <= {nyquist:g} Hz or "
                "use a higher sampling rate"
            )
        a = int(np.searchsorted(freqs, lo, side="left"))
        b = int(np.searchsorted(freqs, hi, side="left"))
        if b - a < min_bins:
            raise ParameterError(
                f"band {name!r} = ({lo:g}, {hi:g}) Hz contains {b - a} frequency bin(s) at a "
                f"resolution of {fs / nfft:g} Hz, fewer than the {min_bins} required; "
                f"{resolution_hint}"
            )
        lo_idx[i], hi_idx[i] = a, b
    t_lo = int(np.searchsorted(freqs, min(b[1] for b in bands), side="left"))
    t_hi = int(np.searchsorted(freqs, max(b[2] for b in bands), side="left"))
    return _cache_put(key, (lo_idx, hi_idx, t_lo, t_hi, freqs))


def _median_bias(n):
    """scipy.signal's bias of the median of n chi^2(2)/2 variables."""
    ii_2 = 2 * np.arange(1.0, (n - 1) // 2 + 1)
    return 1 + np.sum(1.0 / (ii_2 + 1) - 1.0 / ii_2)


class _Plan:
    """Everything a Welch call needs besides the data (cached per call shape)."""

    __slots__ = ("win", "nperseg", "step", "detrend", "scale", "average", "bias", "freqs", "nseg")


def _welch_plan(n, fs, nperseg, noverlap, window, detrend, scaling, average, name):
    key = None
    if isinstance(window, str) and (detrend is False or isinstance(detrend, str)):
        key = ("plan", n, fs, nperseg, noverlap, window, detrend, scaling, average)
        plan = _CACHE.get(key)
        if plan is not None:
            return plan
    win, nperseg = _resolve_window(window, nperseg, n)
    noverlap = _segment_params(n, nperseg, noverlap, name)
    if isinstance(detrend, bool) and detrend:
        raise ParameterError("detrend=True is ambiguous; pass 'constant', 'linear' or False")
    if detrend not in _DETRENDS:
        raise ParameterError(f"detrend={detrend!r} is not supported; choose one of 'constant', 'linear', False")
    check_choice(scaling, "scaling", _SCALINGS)
    check_choice(average, "average", tuple(_AVERAGES))
    plan = _Plan()
    plan.win = win
    plan.nperseg = nperseg
    plan.step = nperseg - noverlap
    plan.detrend = _DETRENDS[detrend]
    if scaling == "density":
        plan.scale = 1.0 / (fs * float(np.sum(win * win)))
    else:
        plan.scale = 1.0 / float(np.sum(win)) ** 2
    plan.nseg = (n - nperseg) // plan.step + 1
    plan.average = _AVERAGES[average]
    plan.bias = float(_median_bias(plan.nseg)) if average == "median" else 1.0
    plan.freqs = np.fft.rfftfreq(nperseg, 1.0 / fs)
    if key is not None:
        _cache_put(key, plan)
    return plan


# --------------------------------------------------------------------------
# NumPy twins (obviously right, slow)
# --------------------------------------------------------------------------


def _welch_numpy(x, win, step, detrend, scale, average, bias):
    n = x.shape[1]
    nperseg = win.size
    nseg = (n - nperseg) // step + 1
    starts = np.arange(nseg) * step
    segs = np.stack([x[:, s : s + nperseg] for s in starts], axis=1)  # (rows, nseg, nperseg)
    if detrend == 1:
        segs = segs - segs.mean(axis=-1, keepdims=True)
    elif detrend == 2:
        t = np.arange(nperseg, dtype=np.float64)
        a = np.stack([t, np.ones(nperseg)], axis=1)
        flat = segs.reshape(-1, nperseg).T
        coef, *_ = np.linalg.lstsq(a, flat, rcond=None)
        segs = (flat - a @ coef).T.reshape(segs.shape)
    spec = np.fft.rfft(segs * win, axis=-1)
    p = (spec.real**2 + spec.imag**2) * scale
    if nperseg % 2:
        p[..., 1:] *= 2
    else:
        p[..., 1:-1] *= 2
    if average == 0:
        return p.mean(axis=1)
    return np.median(p, axis=1) / bias


# numpy >= 2.0 names it trapezoid; 1.24-1.26 (setup.py allows them; Debian bookworm ships 1.24) only trapz
_np_trapezoid = getattr(np, "trapezoid", None) or np.trapz


def _integrate_numpy(psd, lo_idx, hi_idx, df, trapezoid):
    out = np.empty((psd.shape[0], lo_idx.size))
    for b in range(lo_idx.size):
        sel = psd[:, lo_idx[b] : hi_idx[b]]
        if trapezoid:
            out[:, b] = _np_trapezoid(sel, dx=df, axis=-1)
        else:
            out[:, b] = sel.sum(axis=-1) * df
    return out


def _band_power_numpy(psd, lo_idx, hi_idx, t_lo, t_hi, df, trapezoid, relative):
    bp = _integrate_numpy(psd, lo_idx, hi_idx, df, trapezoid)
    if relative:
        total = _integrate_numpy(psd, np.array([t_lo]), np.array([t_hi]), df, trapezoid)
        with np.errstate(divide="ignore", invalid="ignore"):
            bp = bp / total
    return bp


def _de_gaussian_numpy(x, lo_idx, hi_idx):
    n = x.shape[1]
    spec = np.fft.rfft(x, axis=-1)
    out = np.empty((x.shape[0], lo_idx.size))
    for b in range(lo_idx.size):
        masked = np.zeros_like(spec)
        masked[:, lo_idx[b] : hi_idx[b]] = spec[:, lo_idx[b] : hi_idx[b]]
        y = np.fft.irfft(masked, n=n, axis=-1)
        out[:, b] = np.var(y, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 0.5 * np.log(2 * np.pi * np.e * out)


def _de_from_power_numpy(bp):
    with np.errstate(divide="ignore", invalid="ignore"):
        return 0.5 * np.log(2 * np.pi * np.e * bp)


# --------------------------------------------------------------------------
# Compiled kernels
# --------------------------------------------------------------------------


@njit
def _welch_kernel(x, win, step, detrend, scale, average, bias):
    rows, n = x.shape
    nperseg = win.shape[0]
    nseg = (n - nperseg) // step + 1
    nfreq = nperseg // 2 + 1
    segs = np.empty((rows * nseg, nperseg))
    tbar = 0.5 * (nperseg - 1)
    stt = nperseg * (nperseg * nperseg - 1.0) / 12.0
    # 1-D views keep the inner loops simple enough for LLVM to vectorise
    for r in range(rows):
        for s in range(nseg):
            xs = x[r, s * step : s * step + nperseg]
            out = segs[r * nseg + s]
            if detrend == 0:
                for k in range(nperseg):
                    out[k] = xs[k] * win[k]
                continue
            acc = 0.0
            for k in range(nperseg):
                acc += xs[k]
            mean = acc / nperseg
            if detrend == 1 or nperseg < 2:
                for k in range(nperseg):
                    out[k] = (xs[k] - mean) * win[k]
                continue
            acc = 0.0
            for k in range(nperseg):
                acc += (k - tbar) * xs[k]
            slope = acc / stt
            for k in range(nperseg):
                out[k] = (xs[k] - mean - slope * (k - tbar)) * win[k]
    spec = np.fft.rfft(segs)
    psd = np.zeros((rows, nfreq))
    last_single = nfreq - 1 if nperseg % 2 == 0 else nfreq  # Nyquist bin is not doubled
    if average == 0:
        for r in range(rows):
            p = psd[r]
            for s in range(nseg):
                c = spec[r * nseg + s]
                for f in range(nfreq):
                    p[f] += c[f].real * c[f].real + c[f].imag * c[f].imag
            inv = scale / nseg
            p[0] *= inv
            for f in range(1, last_single):
                p[f] *= 2.0 * inv
            for f in range(last_single, nfreq):
                p[f] *= inv
    else:
        tmp = np.empty(nseg)
        for r in range(rows):
            for f in range(nfreq):
                for s in range(nseg):
                    c = spec[r * nseg + s, f]
                    tmp[s] = c.real * c.real + c.imag * c.imag
                fac = 2.0 if (f > 0 and f < last_single) else 1.0
                psd[r, f] = np.median(tmp) * scale * fac / bias
    return psd


@njit
def _integrate_kernel(psd, lo_idx, hi_idx, df, trapezoid, out, col0):
    for r in range(psd.shape[0]):
        for b in range(lo_idx.shape[0]):
            a = lo_idx[b]
            e = hi_idx[b]
            p = psd[r, a:e]
            acc = 0.0
            for k in range(e - a):
                acc += p[k]
            if trapezoid:
                acc -= 0.5 * (p[0] + p[e - a - 1])
            out[r, col0 + b] = acc * df


@njit
def _features_kernel(
    x, win, step, detrend, scale, average, bias, lo_idx, hi_idx, t_lo, t_hi, df, trapezoid, relative, with_de
):
    """Fused Welch PSD -> band power (-> relative) (+ PSD-based DE).

    Returns (rows, n_bands) or (rows, 2 * n_bands) with DE after the powers.
    """
    psd = _welch_kernel(x, win, step, detrend, scale, average, bias)
    rows = psd.shape[0]
    nb = lo_idx.shape[0]
    out = np.empty((rows, 2 * nb if with_de else nb))
    _integrate_kernel(psd, lo_idx, hi_idx, df, trapezoid, out, 0)
    if with_de:
        half_log = 0.5 * np.log(2.0 * np.pi * np.e)
        for r in range(rows):
            for b in range(nb):
                out[r, nb + b] = half_log + 0.5 * np.log(out[r, b])
    if relative:
        tl = np.empty(1, dtype=np.int64)
        th = np.empty(1, dtype=np.int64)
        tl[0] = t_lo
        th[0] = t_hi
        total = np.empty((rows, 1))
        _integrate_kernel(psd, tl, th, df, trapezoid, total, 0)
        for r in range(rows):
            for b in range(nb):
                out[r, b] = out[r, b] / total[r, 0]
    return out


@njit
def _de_gaussian_kernel(x, lo_idx, hi_idx):
    """Brick-wall band-pass variance via Parseval (no inverse FFT needed)."""
    rows, n = x.shape
    spec = np.fft.rfft(x)
    nfreq = n // 2 + 1
    last_single = nfreq - 1 if n % 2 == 0 else nfreq
    nb = lo_idx.shape[0]
    out = np.empty((rows, nb))
    half_log = 0.5 * np.log(2.0 * np.pi * np.e)
    for r in range(rows):
        for b in range(nb):
            acc = 0.0
            mean = 0.0
            for k in range(lo_idx[b], hi_idx[b]):
                c = spec[r, k]
                if k == 0:
                    mean = c.real / n
                    acc += c.real * c.real
                elif k < last_single:
                    acc += 2.0 * (c.real * c.real + c.imag * c.imag)
                else:
                    acc += c.real * c.real
            var = acc / (n * n) - mean * mean
            if var < 0.0:
                var = 0.0
            out[r, b] = half_log + 0.5 * np.log(var)
    return out


def _jit_fft():
    return use_jit() and _config.HAVE_NUMBA_FFT


# --------------------------------------------------------------------------
# Shared core used by the public functions and the streaming class
# --------------------------------------------------------------------------


def _features(x, plan, lo_idx, hi_idx, t_lo, t_hi, trapezoid, relative, with_de):
    """(rows, n_bands) band power, or (rows, 2 n_bands) power then DE (psd)."""
    df = float(plan.freqs[1] - plan.freqs[0]) if plan.freqs.size > 1 else 0.0
    if _jit_fft():
        return _features_kernel(
            x, plan.win, plan.step, plan.detrend, plan.scale, plan.average, plan.bias,
            lo_idx, hi_idx, t_lo, t_hi, df, trapezoid, relative, with_de,
        )  # fmt: skip
    psd = _welch_numpy(x, plan.win, plan.step, plan.detrend, plan.scale, plan.average, plan.bias)
    absolute = _integrate_numpy(psd, lo_idx, hi_idx, df, trapezoid)
    out = _band_power_numpy(psd, lo_idx, hi_idx, t_lo, t_hi, df, trapezoid, relative)
    if with_de:
        out = np.concatenate([out, _de_from_power_numpy(absolute)], axis=1)
    return out


def _power_and_de(x, plan, lo_idx, hi_idx, t_lo, t_hi, trapezoid, relative, with_de):
    """Band power (rule ``trapezoid``) and, optionally, DE from the rectangle-rule power."""
    if not with_de or not trapezoid:
        return _features(x, plan, lo_idx, hi_idx, t_lo, t_hi, trapezoid, relative, with_de)
    power = _features(x, plan, lo_idx, hi_idx, t_lo, t_hi, trapezoid, relative, False)
    de = _features(x, plan, lo_idx, hi_idx, t_lo, t_hi, 0, False, True)[:, lo_idx.size :]
    return np.concatenate([power, de], axis=1)


def _de_gaussian(x, fs, bands):
    n = x.shape[1]
    lo_idx, hi_idx, _, _, _ = _band_bins(
        bands, fs, n, 1, "the signal is too short for that band: pass a longer signal (more samples)"
    )
    if _jit_fft():
        return _de_gaussian_kernel(x, lo_idx, hi_idx)
    return _de_gaussian_numpy(x, lo_idx, hi_idx)


def _finish(out, dtype, was_1d):
    if dtype != np.float64:
        out = out.astype(dtype)
    return out[0] if was_1d else out


def _band_setup(n, fs, bands, nperseg, noverlap, window, method, name):
    fs = check_rate(fs, "fs")
    check_choice(method, "method", tuple(_INTEGRATIONS))
    bands = _normalize_bands(bands)
    plan = _welch_plan(n, fs, nperseg, noverlap, window, "constant", "density", "mean", name)
    trapezoid = _INTEGRATIONS[method]
    lo_idx, hi_idx, t_lo, t_hi, _ = _band_bins(
        bands,
        fs,
        plan.nperseg,
        1 + trapezoid,
        f"the Welch window is too short for that band: increase nperseg (now {plan.nperseg}) "
        f"for a finer resolution (fs / nperseg Hz)",
    )
    return fs, bands, plan, trapezoid, lo_idx, hi_idx, t_lo, t_hi


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def welch(
    x,
    fs,
    *,
    nperseg: int | None = None,
    noverlap: int | None = None,
    window="hann",
    detrend="constant",
    scaling: str = "density",
    average: str = "mean",
    nan_policy: str = "raise",
):
    """Welch power spectral density, compatible with :func:`scipy.signal.welch`.

    Parameters
    ----------
    x : ndarray, (channels, samples) or (samples,)
        EEG, float32 or float64 (any unit; the PSD is in unit**2/Hz).
    fs : float
        Sampling rate in Hz.
    nperseg : int, optional
        Segment length in samples. Default: 256 clipped to the signal length
        (scipy's default), or the window array's length. An explicit
        ``nperseg`` longer than the signal is an error.
    noverlap : int, optional
        Samples shared by consecutive segments; default ``nperseg // 2``.
    window : str or 1-D array
        ``"hann"``, ``"hamming"``, ``"blackman"``, ``"boxcar"``/``"rectangular"``
        (periodic, as ``scipy.signal.get_window(..., fftbins=True)``) or an
        array of ``nperseg`` weights.
    detrend : {"constant", "linear", False}
        Per-segment mean removal, least-squares line removal, or none.
    scaling : {"density", "spectrum"}
        Power spectral density (unit**2/Hz) or power spectrum (unit**2).
    average : {"mean", "median"}
        Segment averaging; the median is bias-corrected like scipy's.
    nan_policy : {"raise", "zero", "interpolate"}
        What to do with NaN/inf samples: refuse them (the error names the
        first one), replace them with 0, or interpolate linearly between the
        nearest finite samples of the same channel (held constant at the ends).

    Returns
    -------
    freqs : ndarray, (nperseg // 2 + 1,)
        Frequencies in Hz (one-sided; ``nfft == nperseg``), same dtype as ``x``
        (scipy returns float64 here even for float32 input).
    psd : ndarray, (channels, nperseg // 2 + 1) or (nperseg // 2 + 1,)
        Same dtype as ``x``; the channel axis is dropped for 1-D input.
    """
    fs = check_rate(fs, "fs")
    y, dtype, was_1d = _prepare(x, "x", nan_policy, 1)
    plan = _welch_plan(y.shape[1], fs, nperseg, noverlap, window, detrend, scaling, average, "x")
    if _jit_fft():
        psd = _welch_kernel(y, plan.win, plan.step, plan.detrend, plan.scale, plan.average, plan.bias)
    else:
        psd = _welch_numpy(y, plan.win, plan.step, plan.detrend, plan.scale, plan.average, plan.bias)
    return plan.freqs.astype(dtype), _finish(psd, dtype, was_1d)


def band_power(
    x,
    fs,
    *,
    bands=DEFAULT_BANDS,
    relative: bool = False,
    nperseg: int | None = None,
    noverlap: int | None = None,
    window="hann",
    method: str = "rectangle",
    nan_policy: str = "raise",
    with_de: bool = False,
):
    """Power per frequency band from the Welch PSD.

    The PSD is :func:`welch` with ``detrend="constant"``, ``scaling="density"``,
    ``average="mean"`` and the given ``nperseg``/``noverlap``/``window``.
    For a band ``(lo, hi)`` in Hz the bins used are those with
    ``lo <= f < hi`` (``f = np.fft.rfftfreq(nperseg, 1 / fs)``), and

    * ``method="rectangle"`` (default): ``P = df * sum(psd[bins])`` with
      ``df = fs / nperseg`` Hz. Adjacent bands (like the defaults) split the
      bins without overlap, so their powers add up exactly.
    * ``method="trapezoid"``: ``P = scipy.integrate.trapezoid(psd[bins], dx=df)``
      (needs at least 2 bins per band).

    ``relative=True`` divides each band's power by the total power computed
    with the same rule over the bins with ``min(lo) <= f < max(hi)`` (the
    span of all the bands; with the default bands, 1-45 Hz, the relative
    powers of contiguous bands then sum to 1 with the rectangle rule).

    Parameters
    ----------
    x : ndarray, (channels, samples) or (samples,)
    fs : float
        Sampling rate in Hz.
    bands : mapping or sequence
        ``{name: (lo_hz, hi_hz)}`` or ``[(name, lo_hz, hi_hz), ...]``; each
        needs ``0 <= lo < hi <= fs / 2`` and at least one bin (two for the
        trapezoid rule) at the resolution ``fs / nperseg`` Hz.
    nperseg, noverlap, window, nan_policy
        As in :func:`welch`.
    with_de : bool
        Also return ``differential_entropy(x, fs, method="psd", ...)`` with the
        same options, computed from the same PSD in the same pass (cheaper than
        two calls). It always uses the rectangle rule and absolute power, as
        :func:`differential_entropy` does.

    Returns
    -------
    ndarray, (channels, n_bands) or (n_bands,) for 1-D input
        Band power in unit**2 (or a fraction with ``relative=True``), in the
        order of ``bands``, same dtype as ``x``. With ``with_de=True``, a
        tuple ``(power, de)`` of two such arrays.
    """
    y, dtype, was_1d = _prepare(x, "x", nan_policy, 1)
    setup = _band_setup(y.shape[1], fs, bands, nperseg, noverlap, window, method, "x")
    _, _, plan, trapezoid, lo_idx, hi_idx, t_lo, t_hi = setup
    if not with_de:
        out = _features(y, plan, lo_idx, hi_idx, t_lo, t_hi, trapezoid, bool(relative), False)
        return _finish(out, dtype, was_1d)
    nb = lo_idx.size
    both = _power_and_de(y, plan, lo_idx, hi_idx, t_lo, t_hi, trapezoid, bool(relative), True)
    power, de = both[:, :nb], both[:, nb:]
    return _finish(np.ascontiguousarray(power), dtype, was_1d), _finish(np.ascontiguousarray(de), dtype, was_1d)


def differential_entropy(
    x,
    fs,
    *,
    bands=DEFAULT_BANDS,
    method: str = "psd",
    nperseg: int | None = None,
    noverlap: int | None = None,
    window="hann",
    nan_policy: str = "raise",
):
    """Differential entropy (DE) per band, in nats.

    For a Gaussian signal of variance ``s2``, ``DE = 0.5 * log(2 pi e s2)``
    (Shi, Jiao & Lu 2013; Duan, Zhu & Lu 2013). The two methods differ in how
    the band's variance ``s2`` is estimated:

    * ``method="psd"`` (default): ``s2`` is the band power of
      :func:`band_power` with the same ``nperseg``/``noverlap``/``window``
      and the rectangle rule, i.e. ``df * sum(psd[lo <= f < hi])`` of the
      Welch PSD (the variance of the band-limited signal, by Parseval).
    * ``method="gaussian"``: each band is isolated with an ideal (brick-wall)
      FFT band-pass over the whole signal: ``X = rfft(x)``, bins outside
      ``lo <= f < hi`` (``f = rfftfreq(n, 1 / fs)``, ``n`` = all samples) are
      zeroed, ``y = irfft(X, n)``, and ``s2 = np.var(y)`` (population
      variance). No window and no detrending; ``nperseg``/``noverlap``/
      ``window`` are ignored. Each band needs at least one bin at ``fs / n``.

    A band with zero power gives ``-inf``.

    Parameters
    ----------
    x : ndarray, (channels, samples) or (samples,)
    fs : float
        Sampling rate in Hz.
    bands : mapping or sequence
        As in :func:`band_power`.

    Returns
    -------
    ndarray, (channels, n_bands) or (n_bands,) for 1-D input, same dtype as ``x``.
    """
    check_choice(method, "method", _DE_METHODS)
    y, dtype, was_1d = _prepare(x, "x", nan_policy, 1)
    if method == "gaussian":
        fs = check_rate(fs, "fs")
        return _finish(_de_gaussian(y, fs, _normalize_bands(bands)), dtype, was_1d)
    setup = _band_setup(y.shape[1], fs, bands, nperseg, noverlap, window, "rectangle", "x")
    _, _, plan, _, lo_idx, hi_idx, t_lo, t_hi = setup
    if _jit_fft():
        out = _features(y, plan, lo_idx, hi_idx, t_lo, t_hi, 0, False, True)[:, lo_idx.size :]
    else:
        psd = _welch_numpy(y, plan.win, plan.step, plan.detrend, plan.scale, plan.average, plan.bias)
        df = float(plan.freqs[1] - plan.freqs[0]) if plan.freqs.size > 1 else 0.0
        out = _de_from_power_numpy(_integrate_numpy(psd, lo_idx, hi_idx, df, 0))
    return _finish(np.ascontiguousarray(out), dtype, was_1d)


class StreamingBandPower:
    """Sliding-window band power (and DE) for a live multi-channel stream.

    Windows are ``win = round(window_s * fs)`` samples long and end at
    sample counts ``win, win + hop, win + 2 hop, ...`` since the start (or the
    last :meth:`reset`), with ``hop = round(hop_s * fs)``. For each complete
    window, the features equal the batch functions on that slice
    (``x[:, end - win:end]``), whatever the chunking of :meth:`push`:

    * columns ``0 .. n_bands-1``: ``band_power(slice, fs, bands=..., relative=...,
      nperseg=..., noverlap=..., window=..., method=...)``;
    * with ``with_de=True``, columns ``n_bands .. 2 n_bands-1``:
      ``differential_entropy(slice, fs, bands=..., method=de_method, ...)``
      (always from the absolute power, also when ``relative=True``).

    :attr:`feature_names` lists the columns (``"alpha_power"``, ``"alpha_de"``...).

    Parameters
    ----------
    fs : float
        Sampling rate in Hz.
    n_channels : int
        Channels per pushed chunk.
    window_s, hop_s : float
        Window length and hop in seconds (rounded to whole samples).
    nperseg : int, optional
        Welch segment length; default ``min(256, win)``.
    dtype : numpy float dtype
        Dtype of the returned features (float32 by default).

    Other options are those of :func:`band_power` / :func:`differential_entropy`
    (``de_method`` is the latter's ``method``). ``nan_policy`` is applied to
    each pushed chunk on its own, so ``"interpolate"`` does not look across
    chunk boundaries (a NaN at a chunk edge is held from its neighbour).
    Samples between windows (when ``hop > win``) are dropped unbuffered.
    """

    def __init__(
        self,
        fs,
        n_channels,
        *,
        window_s: float = 4.0,
        hop_s: float = 1.0,
        bands=DEFAULT_BANDS,
        relative: bool = False,
        with_de: bool = True,
        de_method: str = "psd",
        nperseg: int | None = None,
        noverlap: int | None = None,
        window="hann",
        method: str = "rectangle",
        nan_policy: str = "raise",
        dtype=np.float32,
    ):
        self.fs = check_rate(fs, "fs")
        self.n_channels = check_positive_int(n_channels, "n_channels")
        for value, label in ((window_s, "window_s"), (hop_s, "hop_s")):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
                raise ParameterError(f"{label}={value!r} must be a positive number of seconds")
        self.win = int(round(window_s * self.fs))
        self.hop = int(round(hop_s * self.fs))
        if self.win < 1 or self.hop < 1:
            raise ParameterError(
                f"window_s={window_s!r} and hop_s={hop_s!r} at fs={self.fs:g} Hz give a window of "
                f"{self.win} and a hop of {self.hop} samples; both must be at least 1 sample"
            )
        check_choice(de_method, "de_method", _DE_METHODS)
        check_choice(nan_policy, "nan_policy", NAN_POLICIES)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ParameterError(f"dtype={dtype!r} must be np.float32 or np.float64")
        self.relative = bool(relative)
        self.with_de = bool(with_de)
        self.de_method = de_method
        self.nan_policy = nan_policy
        setup = _band_setup(self.win, self.fs, bands, nperseg, noverlap, window, method, "window")
        _, self.bands, self._plan, self._trap, self._lo, self._hi, self._tlo, self._thi = setup
        if self.with_de and de_method == "gaussian":
            _band_bins(self.bands, self.fs, self.win, 1, "the streaming window is too short: increase window_s")
        self.reset()

    @property
    def n_bands(self) -> int:
        return len(self.bands)

    @property
    def feature_names(self) -> list:
        names = [f"{b[0]}_power" for b in self.bands]
        if self.with_de:
            names += [f"{b[0]}_de" for b in self.bands]
        return names

    def reset(self) -> None:
        """Forget buffered samples; the next window ends ``win`` samples from now."""
        self._buf = np.zeros((self.n_channels, 0))
        self._seen = 0  # samples pushed since reset
        self._next_end = self.win  # sample count at which the next window ends

    @property
    def samples_seen(self) -> int:
        return self._seen

    def push(self, chunk):
        """Append ``chunk`` (channels, n) and return features of the completed windows.

        Returns an array ``(n_windows, channels, n_features)`` (``n_windows``
        may be 0) in :attr:`dtype`; see :attr:`feature_names` for the columns.
        """
        if not isinstance(chunk, np.ndarray):
            chunk = np.asarray(chunk)
        if chunk.ndim != 2 or chunk.shape[0] != self.n_channels:
            raise ParameterError(
                f"chunk has shape {chunk.shape}, but (n_channels={self.n_channels}, samples) is required"
            )
        n_feat = self.n_bands * (2 if self.with_de else 1)
        if chunk.shape[1] == 0:
            return np.empty((0, self.n_channels, n_feat), dtype=self.dtype)
        y, _, _ = _prepare(chunk, "chunk", self.nan_policy, 1)
        buf_start = self._seen - self._buf.shape[1]  # absolute index of self._buf[:, 0]
        buf = np.concatenate([self._buf, y], axis=1) if self._buf.shape[1] else y
        self._seen += y.shape[1]
        ends = []
        while self._next_end <= self._seen:
            ends.append(self._next_end)
            self._next_end += self.hop
        if ends:
            n_w = len(ends)
            stack = np.empty((n_w, self.n_channels, self.win))
            for i, e in enumerate(ends):
                s = e - self.win - buf_start
                stack[i] = buf[:, s : s + self.win]
            rows = stack.reshape(n_w * self.n_channels, self.win)
            with_psd_de = self.with_de and self.de_method == "psd"
            feats = _power_and_de(
                rows, self._plan, self._lo, self._hi, self._tlo, self._thi, self._trap, self.relative, with_psd_de
            )
            if self.with_de and self.de_method == "gaussian":
                feats = np.concatenate([feats, _de_gaussian(rows, self.fs, self.bands)], axis=1)
            out = feats.reshape(n_w, self.n_channels, n_feat).astype(self.dtype, copy=False)
        else:
            out = np.empty((0, self.n_channels, n_feat), dtype=self.dtype)
        # keep only what the next window needs
        keep_from = min(self._next_end - self.win, self._seen)
        self._buf = np.ascontiguousarray(buf[:, keep_from - buf_start :])
        return out
