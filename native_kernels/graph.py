"""Graph kernels for EEG: electrode montages, adjacency, Laplacians, Chebyshev filters.

These are the graph-side pieces of DGCNN (Song et al., 2018) / HiSTN-style
models: a graph over the electrodes (from scalp distance, signal correlation
or band coherence), its normalized and scaled Laplacians, and the Chebyshev
graph convolution ``sum_k T_k(L~) x W_k``.

Coordinates
-----------
Electrode positions are unit vectors on an ideal spherical head, in the
head frame MNE also uses: **x points right** (towards T8), **y points to the
front** (towards the nasion) and **z points up** (towards Cz). They are
computed from the standard BESA/EEGLAB spherical angles of the 10-20/10-10
system (``theta``: angle from Cz, in degrees, negative on the left
hemisphere; ``phi``: azimuth in degrees, see :func:`_sph_to_cart`). The angle
table is embedded here; MNE is not needed at run time.

Every kernel has a public wrapper that validates its input, a private
``@njit`` kernel (used when :func:`affectedge.native_kernels._config.use_jit`
is True) and a plain NumPy twin that is slow but obviously right. float32
input gives float32 output and float64 gives float64 (montage positions are
always float64).
"""

import difflib
import math
import numbers
from types import MappingProxyType
from typing import NamedTuple

import numpy as np

from affectedge.errors import ParameterError

from . import _config
from ._config import njit, use_jit
from ._validate import (
    NAN_POLICIES,
    check_choice,
    check_positive_int,
    check_rate,
    check_real,
    float_dtype,
    prepare_signal,
)

__all__ = [
    "MONTAGES",
    "GraphFrames",
    "StreamingGraphFilter",
    "chebyshev_filter",
    "coherence_adjacency",
    "correlation_adjacency",
    "distance_adjacency",
    "montage_positions",
    "normalized_laplacian",
    "scaled_laplacian",
]

# ---------------------------------------------------------------------------
# Montages
# ---------------------------------------------------------------------------

# BESA / EEGLAB spherical angles (degrees) of the 10-20 / 10-10 positions on
# an ideal spherical head, as tabulated for the EasyCap M1 cap (the table
# EEGLAB and MNE ship as ``easycap-M1.txt``). theta: angle from the vertex
# (Cz), negative for the left hemisphere; phi: azimuth, see _sph_to_cart.
_SPHERICAL_1010 = {
    "Fp1": (-92, -72), "Fp2": (92, 72), "F3": (-60, -51), "F4": (60, 51),
    "C3": (-46, 0), "C4": (46, 0), "P3": (-60, 51), "P4": (60, -51),
    "O1": (-92, 72), "O2": (92, -72), "F7": (-92, -36), "F8": (92, 36),
    "T7": (-92, 0), "T8": (92, 0), "P7": (-92, 36), "P8": (92, -36),
    "Fz": (46, 90), "Cz": (0, 0), "Pz": (46, -90),
    "F1": (-50, -68), "F2": (50, 68), "FC1": (-32, -45), "FC2": (32, 45),
    "C1": (-23, 0), "C2": (23, 0), "CP1": (-32, 45), "CP2": (32, -45),
    "P1": (-50, 68), "P2": (50, -68), "AF3": (-74, -65), "AF4": (74, 65),
    "FC3": (-53, -33), "FC4": (53, 33), "CP3": (-52, 33), "CP4": (52, -33),
    "PO3": (-74, 65), "PO4": (74, -65), "F5": (-75, -41), "F6": (75, 41),
    "FC5": (-72, -21), "FC6": (72, 21), "C5": (-69, 0), "C6": (69, 0),
    "CP5": (-72, 21), "CP6": (72, -21), "P5": (-75, 41), "P6": (75, -41),
    "AF7": (-92, -54), "AF8": (92, 54), "FT7": (-92, -18), "FT8": (92, 18),
    "TP7": (-92, 18), "TP8": (92, -18), "PO7": (-92, 54), "PO8": (92, -54),
    "F9": (-115, -36), "F10": (115, 36), "FT9": (-115, -18), "FT10": (115, 18),
    "TP9": (-115, 18), "TP10": (115, -18), "P9": (-115, 36), "P10": (115, -36),
    "PO9": (-115, 54), "PO10": (115, -54), "O9": (-115, 72), "O10": (115, -72),
    "Fpz": (92, 90), "AFz": (69, 90), "FCz": (23, 90), "CPz": (23, -90),
    "POz": (69, -90), "Oz": (92, -90), "Iz": (115, -90),
}

# Old 10-20 names for the same sites.
_ALIASES = {"T3": "T7", "T4": "T8", "T5": "P7", "T6": "P8"}

_LOOKUP = {name.lower(): name for name in _SPHERICAL_1010}
_LOOKUP.update({alias.lower(): target for alias, target in _ALIASES.items()})

MONTAGES = MappingProxyType(
    {
        # DEAP (Koelstra et al., 2012) channel order of the preprocessed data.
        "deap32": (
            "Fp1", "AF3", "F3", "F7", "FC5", "FC1", "C3", "T7", "CP5", "CP1", "P3",
            "P7", "PO3", "O1", "Oz", "Pz", "Fp2", "AF4", "Fz", "F4", "F8", "FC6",
            "FC2", "Cz", "C4", "T8", "CP6", "CP2", "P4", "P8", "PO4", "O2",
        ),
        # Emotiv EPOC, in DREAMER's channel order.
        "emotiv_epoc14": (
            "AF3", "F7", "F3", "FC5", "T7", "P7", "O1", "O2", "P8", "T8", "FC6",
            "F4", "F8", "AF4",
        ),
        # Interaxon Muse (2016 / S), in the order the headband streams.
        "muse4": ("TP9", "AF7", "AF8", "TP10"),
        # OpenBCI Cyton default 8-channel placement.
        "cyton8": ("Fp1", "Fp2", "C3", "C4", "P7", "P8", "O1", "O2"),
        # OpenBCI Cyton + Daisy default 16-channel placement.
        "cyton_daisy16": (
            "Fp1", "Fp2", "C3", "C4", "P7", "P8", "O1", "O2", "F7", "F8", "F3",
            "F4", "T7", "T8", "P3", "P4",
        ),
    }
)
"""Montage name -> tuple of channel names, in the device's channel order."""


def _sph_to_cart(theta_deg, phi_deg):
    """BESA spherical angles (degrees) -> unit vector (x right, y front, z up).

    ``x = sin(theta) cos(phi)``, ``y = sin(theta) sin(phi)``,
    ``z = cos(theta)``. The sign of theta flips the hemisphere: Fp1
    (-92, -72) lands at x < 0 (left), y > 0 (front).
    """
    t = math.radians(theta_deg)
    p = math.radians(phi_deg)
    return (math.sin(t) * math.cos(p), math.sin(t) * math.sin(p), math.cos(t))


def _channel_position(name, index):
    if not isinstance(name, str):
        raise ParameterError(
            f"channel {index} is {name!r} ({type(name).__name__}), but channel names must be "
            "strings such as 'Fp1'"
        )
    key = _LOOKUP.get(name.strip().lower())
    if key is None:
        known = sorted(_SPHERICAL_1010) + sorted(_ALIASES)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ParameterError(
            f"channel {index} {name!r} is not a 10-20/10-10 electrode name this module knows.{hint} "
            f"Known names: {', '.join(sorted(_SPHERICAL_1010))} (and the aliases "
            f"{', '.join(sorted(_ALIASES))}). Rename the channel, or pass the positions of a "
            "custom layout straight to distance_adjacency"
        )
    return _sph_to_cart(*_SPHERICAL_1010[key])


def montage_positions(montage):
    """Unit-sphere electrode positions of a montage or a list of channel names.

    Parameters
    ----------
    montage : str or sequence of str
        A key of :data:`MONTAGES` (``"deap32"``, ``"emotiv_epoc14"``,
        ``"muse4"``, ``"cyton8"``, ``"cyton_daisy16"``) or channel names in
        10-20/10-10 notation (case-insensitive; T3/T4/T5/T6 are accepted as
        T7/T8/P7/P8).

    Returns
    -------
    positions : ndarray, shape (n_channels, 3), float64
        Unit vectors (radius 1, dimensionless) with x to the right, y to the
        front (nasion) and z up, in channel order.
    """
    if isinstance(montage, str):
        names = MONTAGES.get(montage)
        if names is None:
            names = MONTAGES.get(montage.strip().lower())
        if names is None:
            close = difflib.get_close_matches(montage.strip().lower(), list(MONTAGES), n=2, cutoff=0.4)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise ParameterError(
                f"montage={montage!r} is not a known montage.{hint} Known montages: "
                f"{', '.join(map(repr, MONTAGES))}; or pass a list of channel names such as "
                "['Fp1', 'Fp2', 'Cz']"
            )
    else:
        try:
            names = list(montage)
        except TypeError:
            raise ParameterError(
                f"montage={montage!r} must be a montage name ({', '.join(map(repr, MONTAGES))}) "
                "or a list of channel names"
            ) from None
        if not names:
            raise ParameterError(
                "montage is an empty list of channel names; pass at least one name such as 'Cz'"
            )
    return np.array([_channel_position(n, i) for i, n in enumerate(names)], dtype=np.float64)


# ---------------------------------------------------------------------------
# Shared validation
# ---------------------------------------------------------------------------


def _as_array(x, name, what):
    if isinstance(x, np.ndarray):
        return x
    try:
        return np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise ParameterError(f"{name} must be a NumPy array ({what}); could not convert it ({exc})") from exc


def _check_finite(x, name, remedy="clean it first (e.g. replace NaN with 0)"):
    bad = ~np.isfinite(x)
    if bad.any():
        first = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), x.shape))
        raise ParameterError(
            f"{name} contains {x[first]} at index {first} ({int(bad.sum())} non-finite value"
            f"{'s' if bad.sum() > 1 else ''} in all); {remedy}"
        )


def _check_float_array(x, name, ndims, what):
    """Array of a float dtype, the right ndim, non-empty, finite."""
    x = _as_array(x, name, what)
    if x.ndim not in ndims:
        want = " or ".join(f"{d}-dimensional" for d in ndims)
        raise ParameterError(f"{name} has shape {x.shape} ({x.ndim}-dimensional), but {what} must be {want}")
    dtype = float_dtype(x, name, audio=False)
    if x.size == 0:
        raise ParameterError(f"{name} is empty (shape {x.shape}); {what} needs at least one value per axis")
    _check_finite(x, name)
    return np.ascontiguousarray(x, dtype=dtype)


def _check_adjacency(adj, name="adj"):
    """Square, symmetric, non-negative, finite float adjacency matrix."""
    what = "an adjacency matrix (n_nodes, n_nodes)"
    adj = _check_float_array(adj, name, (2,), what)
    if adj.shape[0] != adj.shape[1]:
        raise ParameterError(
            f"{name} has shape {adj.shape}, but {what} must be square; pass one row and one "
            "column per node"
        )
    neg = adj < 0
    if neg.any():
        first = tuple(int(i) for i in np.unravel_index(int(np.argmax(neg)), adj.shape))
        raise ParameterError(
            f"{name} has a negative weight {adj[first]} at index {first}; edge weights must be >= 0. "
            "Use np.abs(adj) (e.g. |r| from correlation_adjacency(absolute=True)) or clip at 0"
        )
    scale = float(np.max(adj)) if adj.size else 0.0
    tol = 1000 * np.finfo(adj.dtype).eps * max(scale, 1.0)
    diff = np.abs(adj - adj.T)
    if np.max(diff) > tol:
        i, j = (int(v) for v in np.unravel_index(int(np.argmax(diff)), adj.shape))
        raise ParameterError(
            f"{name} is not symmetric: {name}[{i}, {j}]={adj[i, j]} but {name}[{j}, {i}]={adj[j, i]}; "
            f"an undirected graph is required. Symmetrize it first, e.g. ({name} + {name}.T) / 2"
        )
    return adj


# ---------------------------------------------------------------------------
# Distance adjacency
# ---------------------------------------------------------------------------


@njit
def _distance_kernel(pos, sigma, threshold, self_loops):
    n, d = pos.shape
    out = np.zeros((n, n), dtype=np.float64)
    denom = 2.0 * sigma * sigma
    for i in range(n):
        if self_loops:
            out[i, i] = 1.0
        for j in range(i + 1, n):
            acc = 0.0
            for k in range(d):
                diff = np.float64(pos[i, k]) - np.float64(pos[j, k])
                acc += diff * diff
            w = math.exp(-acc / denom)
            if w < threshold:
                w = 0.0
            out[i, j] = w
            out[j, i] = w
    return out


def _distance_twin(pos, sigma, threshold, self_loops):
    p = pos.astype(np.float64)
    d2 = np.sum((p[:, None, :] - p[None, :, :]) ** 2, axis=-1)
    w = np.exp(-d2 / (2.0 * sigma * sigma))
    w[w < threshold] = 0.0
    np.fill_diagonal(w, 1.0 if self_loops else 0.0)
    return w


def _pairwise_distances(pos):
    p = pos.astype(np.float64)
    return np.sqrt(np.sum((p[:, None, :] - p[None, :, :]) ** 2, axis=-1))


def distance_adjacency(positions, *, sigma=None, threshold=0.5, self_loops=False):
    """Gaussian-kernel adjacency from electrode positions.

    ``A[i, j] = exp(-d_ij**2 / (2 sigma**2))`` with ``d_ij`` the Euclidean
    (chord) distance between electrodes i and j; weights below
    ``threshold`` are set to 0.

    Parameters
    ----------
    positions : ndarray, shape (n_nodes, n_dims), float32 or float64
        Electrode coordinates, e.g. from :func:`montage_positions` (unit
        sphere, so distances are in head radii).
    sigma : float, optional
        Kernel width in the units of ``positions``. Default: the **mean of
        the non-zero pairwise distances** (for ``deap32`` about 1.2 head
        radii), which keeps neighbours strongly and far pairs weakly linked.
    threshold : float
        Weights strictly below this value become 0 (sparsifies the graph).
        Default 0.1; 0 keeps a complete graph.
    self_loops : bool
        If True the diagonal is 1 (``exp(0)``), else 0.

    Returns
    -------
    adj : ndarray, shape (n_nodes, n_nodes), dtype of ``positions``
        Symmetric, non-negative, entries in [0, 1].
    """
    pos = _check_float_array(positions, "positions", (2,), "electrode positions (n_nodes, n_dims)")
    threshold = check_real(threshold, "threshold", minimum=0.0, maximum=1.0)
    sigma = check_real(sigma, "sigma", minimum=0.0, strict_min=True, allow_none=True)
    if sigma is None:
        dist = _pairwise_distances(pos)
        nonzero = dist[dist > 0]
        if nonzero.size == 0:
            raise ParameterError(
                f"sigma cannot default to the mean distance: the {pos.shape[0]} position(s) in positions "
                "are all identical (no non-zero distance). Pass distinct positions or sigma=<width>"
            )
        sigma = float(np.mean(nonzero))
    if use_jit():
        out = _distance_kernel(pos, sigma, threshold, bool(self_loops))
    else:
        out = _distance_twin(pos, sigma, threshold, bool(self_loops))
    return out.astype(pos.dtype, copy=False)


# ---------------------------------------------------------------------------
# Correlation adjacency
# ---------------------------------------------------------------------------


@njit
def _correlation_kernel(x, absolute, threshold):
    c, n = x.shape
    centred = np.empty((c, n), dtype=np.float64)
    norms = np.empty(c, dtype=np.float64)
    for i in range(c):
        mean = 0.0
        for t in range(n):
            mean += x[i, t]
        mean /= n
        ss = 0.0
        for t in range(n):
            v = np.float64(x[i, t]) - mean
            centred[i, t] = v
            ss += v * v
        norms[i] = math.sqrt(ss)
    out = np.zeros((c, c), dtype=np.float64)
    for i in range(c):
        for j in range(i + 1, c):
            den = norms[i] * norms[j]
            if den <= 0.0:
                continue
            acc = 0.0
            for t in range(n):
                acc += centred[i, t] * centred[j, t]
            r = acc / den
            if r > 1.0:
                r = 1.0
            elif r < -1.0:
                r = -1.0
            if absolute:
                r = abs(r)
            if abs(r) < threshold:
                r = 0.0
            out[i, j] = r
            out[j, i] = r
    return out


def _correlation_twin(x, absolute, threshold):
    xc = x.astype(np.float64)
    xc = xc - xc.mean(axis=1, keepdims=True)
    norms = np.sqrt(np.sum(xc * xc, axis=1))
    cov = xc @ xc.T
    den = np.outer(norms, norms)
    r = np.zeros_like(cov)
    ok = den > 0
    r[ok] = np.clip(cov[ok] / den[ok], -1.0, 1.0)
    if absolute:
        r = np.abs(r)
    r[np.abs(r) < threshold] = 0.0
    np.fill_diagonal(r, 0.0)
    return r


def correlation_adjacency(window, *, absolute=True, threshold=0.0, nan_policy="raise"):
    """Pearson-correlation adjacency between channels of one window.

    Parameters
    ----------
    window : ndarray, shape (n_channels, n_samples), float32 or float64
        One EEG window (any unit, e.g. microvolts), at least 2 samples.
    absolute : bool
        If True (default) the weight is ``|r|`` (a valid, non-negative graph);
        if False the signed ``r`` is returned (not accepted by the Laplacian
        functions where negative).
    threshold : float in [0, 1]
        Entries with ``|r| < threshold`` become 0.
    nan_policy : {"raise", "zero", "interpolate"}
        What to do with NaN/inf samples (see ``_validate.prepare_signal``).

    Returns
    -------
    adj : ndarray, shape (n_channels, n_channels), dtype of ``window``
        Symmetric, zero diagonal. A channel with zero variance (a flat or
        disconnected electrode) has correlation 0 with every other channel.
    """
    x = prepare_signal(window, "window", ndim=2, min_length=2, nan_policy=nan_policy,
                       what="an EEG window (channels, samples)")
    threshold = check_real(threshold, "threshold", minimum=0.0, maximum=1.0)
    if use_jit():
        out = _correlation_kernel(x, bool(absolute), threshold)
    else:
        out = _correlation_twin(x, bool(absolute), threshold)
    return out.astype(x.dtype, copy=False)


# ---------------------------------------------------------------------------
# Coherence adjacency
# ---------------------------------------------------------------------------


def _hann(n):
    """Periodic Hann window (scipy.signal.get_window('hann', n))."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


@njit
def _coherence_kernel(x, win, step, lo_bin, hi_bin):
    c, n = x.shape
    nperseg = win.shape[0]
    nseg = (n - nperseg) // step + 1
    nb = hi_bin - lo_bin + 1
    spec = np.empty((c, nseg, nb), dtype=np.complex128)
    seg = np.empty(nperseg, dtype=np.float64)
    for ch in range(c):
        for s in range(nseg):
            start = s * step
            mean = 0.0
            for t in range(nperseg):
                mean += x[ch, start + t]
            mean /= nperseg
            for t in range(nperseg):
                seg[t] = (np.float64(x[ch, start + t]) - mean) * win[t]
            f = np.fft.rfft(seg)
            for b in range(nb):
                spec[ch, s, b] = f[lo_bin + b]
    pxx = np.zeros((c, nb), dtype=np.float64)
    for ch in range(c):
        for s in range(nseg):
            for b in range(nb):
                v = spec[ch, s, b]
                pxx[ch, b] += v.real * v.real + v.imag * v.imag
    out = np.zeros((c, c), dtype=np.float64)
    for i in range(c):
        for j in range(i + 1, c):
            acc = 0.0
            for b in range(nb):
                den = pxx[i, b] * pxx[j, b]
                if den <= 0.0:
                    continue
                re = 0.0
                im = 0.0
                for s in range(nseg):
                    a = spec[i, s, b]
                    z = spec[j, s, b]
                    # a * conj(z)
                    re += a.real * z.real + a.imag * z.imag
                    im += a.imag * z.real - a.real * z.imag
                acc += (re * re + im * im) / den
            v = acc / nb
            if v > 1.0:
                v = 1.0
            out[i, j] = v
            out[j, i] = v
    return out


def _coherence_twin(x, win, step, lo_bin, hi_bin):
    c, n = x.shape
    nperseg = win.shape[0]
    nseg = (n - nperseg) // step + 1
    segs = np.stack([x[:, s * step:s * step + nperseg].astype(np.float64) for s in range(nseg)], axis=1)
    segs = segs - segs.mean(axis=-1, keepdims=True)
    spec = np.fft.rfft(segs * win, axis=-1)[:, :, lo_bin:hi_bin + 1]  # (c, nseg, nb)
    cross = np.einsum("isb,jsb->ijb", spec, np.conj(spec))
    pxx = np.real(np.einsum("isb,isb->ib", spec, np.conj(spec)))
    den = pxx[:, None, :] * pxx[None, :, :]
    coh = np.zeros(den.shape)
    ok = den > 0
    coh[ok] = np.abs(cross[ok]) ** 2 / den[ok]
    out = np.minimum(coh.mean(axis=-1), 1.0)
    np.fill_diagonal(out, 0.0)
    return out


def _coherence_params(n_samples, fs, band, nperseg, noverlap):
    """Validated (nperseg, step, lo_bin, hi_bin)."""
    if nperseg is None:
        nperseg = min(256, n_samples)
    nperseg = check_positive_int(nperseg, "nperseg", minimum=2)
    if nperseg > n_samples:
        raise ParameterError(
            f"nperseg={nperseg} is longer than the window ({n_samples} samples); pass a longer "
            f"window or nperseg <= {n_samples}"
        )
    if noverlap is None:
        noverlap = nperseg // 2
    if isinstance(noverlap, bool) or not isinstance(noverlap, numbers.Integral) or not 0 <= noverlap < nperseg:
        raise ParameterError(
            f"noverlap={noverlap!r} must be an integer with 0 <= noverlap < nperseg={nperseg} "
            "(samples shared by consecutive segments; default nperseg // 2)"
        )
    try:
        lo, hi = band
    except (TypeError, ValueError):
        raise ParameterError(f"band={band!r} must be a pair (low_hz, high_hz), e.g. (8.0, 13.0)") from None
    lo = check_real(lo, "band[0]", minimum=0.0)
    hi = check_real(hi, "band[1]", minimum=0.0)
    if hi < lo:
        raise ParameterError(f"band={band!r} must have low <= high (Hz); swap the two values")
    df = fs / nperseg
    lo_bin = int(math.ceil(lo / df - 1e-9))
    hi_bin = min(int(math.floor(hi / df + 1e-9)), nperseg // 2)
    if hi_bin < lo_bin:
        raise ParameterError(
            f"band={band!r} Hz contains no frequency bin: with fs={fs} Hz and nperseg={nperseg} the bins "
            f"are {df:g} Hz apart up to {fs / 2:g} Hz. Widen the band or raise nperseg"
        )
    return nperseg, nperseg - int(noverlap), lo_bin, hi_bin


def coherence_adjacency(window, fs, *, band=(4.0, 45.0), nperseg=None, noverlap=None, nan_policy="raise"):
    """Band-averaged magnitude-squared coherence between channels.

    For each channel pair, ``C_xy(f) = |P_xy(f)|**2 / (P_xx(f) P_yy(f))``
    with Welch cross- and auto-spectra (periodic Hann window, per-segment
    mean removal), exactly as ``scipy.signal.coherence`` with its defaults;
    the adjacency is the mean of ``C_xy`` over the frequency bins with
    ``band[0] <= f <= band[1]``.

    Parameters
    ----------
    window : ndarray, shape (n_channels, n_samples), float32 or float64
    fs : float
        Sample rate in Hz.
    band : (float, float)
        Frequency band in Hz, both ends inclusive. Default (4, 45) Hz, the
        band DEAP's preprocessed data keeps.
    nperseg : int, optional
        Segment length in samples; default ``min(256, n_samples)`` as scipy.
    noverlap : int, optional
        Overlap in samples; default ``nperseg // 2``.
    nan_policy : {"raise", "zero", "interpolate"}

    Returns
    -------
    adj : ndarray, shape (n_channels, n_channels), dtype of ``window``
        Symmetric, zero diagonal, values in [0, 1]. Bins where a channel has
        zero power count as coherence 0 (scipy would give NaN). With a
        single segment coherence is identically 1; use several segments.
    """
    x = prepare_signal(window, "window", ndim=2, min_length=2, nan_policy=nan_policy,
                       what="an EEG window (channels, samples)")
    fs = check_rate(fs, "fs")
    nperseg, step, lo_bin, hi_bin = _coherence_params(x.shape[1], fs, band, nperseg, noverlap)
    win = _hann(nperseg)
    if use_jit() and _config.HAVE_NUMBA_FFT:
        out = _coherence_kernel(x, win, step, lo_bin, hi_bin)
    else:
        out = _coherence_twin(x, win, step, lo_bin, hi_bin)
    return out.astype(x.dtype, copy=False)


# ---------------------------------------------------------------------------
# Laplacians
# ---------------------------------------------------------------------------


@njit
def _normalized_laplacian_kernel(adj):
    n = adj.shape[0]
    inv_sqrt = np.zeros(n, dtype=np.float64)
    for i in range(n):
        deg = 0.0
        for j in range(n):
            deg += adj[i, j]
        if deg > 0.0:
            inv_sqrt[i] = 1.0 / math.sqrt(deg)
    out = np.empty((n, n), dtype=np.float64)
    for i in range(n):
        for j in range(n):
            v = -inv_sqrt[i] * np.float64(adj[i, j]) * inv_sqrt[j]
            if i == j:
                v += 1.0
            out[i, j] = v
    return out


def _normalized_laplacian_twin(adj):
    a = adj.astype(np.float64)
    deg = a.sum(axis=1)
    inv_sqrt = np.zeros_like(deg)
    inv_sqrt[deg > 0] = 1.0 / np.sqrt(deg[deg > 0])
    d = np.diag(inv_sqrt)
    return np.eye(a.shape[0]) - d @ a @ d


def _normalized_laplacian64(adj):
    if use_jit():
        return _normalized_laplacian_kernel(adj)
    return _normalized_laplacian_twin(adj)


def normalized_laplacian(adj):
    """Symmetric normalized graph Laplacian ``L = I - D^-1/2 A D^-1/2``.

    Parameters
    ----------
    adj : ndarray, shape (n, n), float32 or float64
        Symmetric, non-negative adjacency. Diagonal entries (self-loops)
        are kept and count in the degree ``D_ii = sum_j A_ij`` (the GCN
        "renormalization" convention; ``scipy.sparse.csgraph.laplacian``
        drops them instead).

    Returns
    -------
    L : ndarray, shape (n, n), dtype of ``adj``
        Eigenvalues lie in [0, 2]. **Isolated nodes** (degree 0) get a zero
        row and column in ``D^-1/2 A D^-1/2``, so ``L[i, i] = 1`` there
        (scipy's ``laplacian(normed=True)`` puts 0 on that diagonal entry
        instead; the two agree everywhere else).
    """
    adj = _check_adjacency(adj, "adj")
    return _normalized_laplacian64(adj).astype(adj.dtype, copy=False)


@njit
def _scale_kernel(lap, lambda_max):
    n = lap.shape[0]
    out = np.empty((n, n), dtype=np.float64)
    f = 2.0 / lambda_max
    for i in range(n):
        for j in range(n):
            out[i, j] = f * lap[i, j]
        out[i, i] -= 1.0
    return out


def _scale_twin(lap, lambda_max):
    return 2.0 * lap / lambda_max - np.eye(lap.shape[0])


def _scaled_laplacian64(adj, lambda_max):
    lap = _normalized_laplacian64(adj)
    if lambda_max is None:
        lambda_max = float(np.linalg.eigvalsh(lap)[-1])
    if use_jit():
        return _scale_kernel(lap, lambda_max)
    return _scale_twin(lap, lambda_max)


def scaled_laplacian(adj, *, lambda_max=None):
    """Chebyshev-ready Laplacian ``L~ = 2 L / lambda_max - I``.

    ``L`` is :func:`normalized_laplacian` of ``adj``; scaling maps its
    spectrum from [0, lambda_max] onto [-1, 1], where Chebyshev
    polynomials are bounded.

    Parameters
    ----------
    adj : ndarray, shape (n, n), float32 or float64
        Symmetric, non-negative adjacency (not a Laplacian).
    lambda_max : float, optional
        Largest eigenvalue of ``L``. Default None computes it exactly with
        ``numpy.linalg.eigvalsh`` (in float64). Pass ``2.0`` (the upper bound
        for any normalized Laplacian, the ChebNet/DGCNN shortcut) to skip the
        eigen-decomposition; the spectrum of ``L~`` then lies in
        [-1, lambda_max(L) - 1], inside [-1, 1] without reaching 1.

    Returns
    -------
    L_scaled : ndarray, shape (n, n), dtype of ``adj``
    """
    adj = _check_adjacency(adj, "adj")
    if lambda_max is not None:
        lambda_max = check_real(lambda_max, "lambda_max", minimum=0.0, strict_min=True)
    return _scaled_laplacian64(adj, lambda_max).astype(adj.dtype, copy=False)


# ---------------------------------------------------------------------------
# Chebyshev graph convolution
# ---------------------------------------------------------------------------


@njit
def _chebyshev_kernel(x, lap, weights):
    """x (batch, n, f_in), lap (n, n), weights (K, f_in, f_out), same dtype.

    The batch is folded into the columns of an (n, batch * f_in) matrix so
    that the graph multiply ``L~ @ T`` runs along long contiguous rows.
    """
    batch, n, f_in = x.shape
    k_order, _, f_out = weights.shape
    cols = batch * f_in
    out = np.zeros((batch, n, f_out), dtype=x.dtype)
    t_prev = np.empty((n, cols), dtype=x.dtype)
    t_cur = np.empty((n, cols), dtype=x.dtype)
    t_next = np.empty((n, cols), dtype=x.dtype)
    # k = 0: T_0 x = x, laid out node-major
    for b in range(batch):
        for i in range(n):
            for f in range(f_in):
                t_cur[i, b * f_in + f] = x[b, i, f]
    for k in range(k_order):
        if k >= 1:
            # t_next = L t_cur (k == 1) or 2 L t_cur - t_prev (k >= 2)
            scale = 1.0 if k == 1 else 2.0
            for i in range(n):
                row = t_next[i]
                if k == 1:
                    for m in range(cols):
                        row[m] = 0
                else:
                    prev = t_prev[i]
                    for m in range(cols):
                        row[m] = -prev[m]
                for j in range(n):
                    lij = scale * lap[i, j]
                    if lij != 0:
                        src = t_cur[j]
                        for m in range(cols):
                            row[m] += lij * src[m]
            t_prev, t_cur, t_next = t_cur, t_next, t_prev
        # out += T_k x @ W_k
        wk = weights[k]
        for b in range(batch):
            for i in range(n):
                acc = out[b, i]
                for f in range(f_in):
                    v = t_cur[i, b * f_in + f]
                    wrow = wk[f]
                    for o in range(f_out):
                        acc[o] += v * wrow[o]
    return out


def _chebyshev_twin(x, lap, weights):
    k_order = weights.shape[0]
    n = lap.shape[0]
    terms = [np.eye(n, dtype=lap.dtype)]
    if k_order > 1:
        terms.append(lap)
    for _ in range(2, k_order):
        terms.append(2 * lap @ terms[-1] - terms[-2])
    t = np.stack(terms)  # (K, n, n), dense T_k(L~)
    return np.einsum("kij,bjf,kfo->bio", t, x, weights, optimize=True)


def chebyshev_filter(x, laplacian_scaled, weights):
    """Chebyshev graph convolution ``sum_k T_k(L~) x W_k`` (DGCNN layer, no bias).

    ``T_0 = I``, ``T_1 = L~``, ``T_k = 2 L~ T_{k-1} - T_{k-2}``; the kernel
    applies the recursion to ``x`` directly (``T_k x``), never forming the
    ``T_k`` matrices.

    Note for exported models: there the graph multiply ``L~ x`` is written as
    a linear layer on the node axis (``x.transpose(...) @ L~.T``, then
    transposed back), because constant-first matmuls (``L~ @ x``) gave wrong
    int8 results in some runtimes. This NumPy/Numba kernel is plain loops and
    has no such issue; results are identical.

    Parameters
    ----------
    x : ndarray, shape (batch, n_nodes, f_in) or (n_nodes, f_in), float32/float64
        Node features.
    laplacian_scaled : ndarray, shape (n_nodes, n_nodes)
        Scaled Laplacian from :func:`scaled_laplacian` (spectrum in [-1, 1]).
        Symmetry is not required by the computation.
    weights : ndarray, shape (K, f_in, f_out), K >= 1
        One (f_in, f_out) matrix per Chebyshev order (K = number of terms,
        polynomial degree K - 1).

    Returns
    -------
    out : ndarray, shape (batch, n_nodes, f_out) or (n_nodes, f_out)
        In the dtype of ``x``; ``laplacian_scaled`` and ``weights`` are cast
        to it (compute in float64 by passing float64 ``x``).
    """
    what_x = "node features (batch, n_nodes, f_in) or (n_nodes, f_in)"
    x = _check_float_array(x, "x", (2, 3), what_x)
    dtype = x.dtype
    lap = _check_float_array(laplacian_scaled, "laplacian_scaled", (2,), "a scaled Laplacian (n_nodes, n_nodes)")
    w = _as_array(weights, "weights", "Chebyshev weights (K, f_in, f_out)")
    if w.ndim != 3:
        raise ParameterError(
            f"weights has shape {w.shape} ({w.ndim}-dimensional), but Chebyshev weights must be "
            "3-dimensional (K, f_in, f_out); for a single order use weights[None]"
        )
    if w.shape[0] < 1:
        raise ParameterError(
            f"weights has shape {w.shape}: K={w.shape[0]} Chebyshev terms, but K >= 1 is required "
            "(K=1 is a per-node linear layer)"
        )
    w = _check_float_array(w, "weights", (3,), "Chebyshev weights (K, f_in, f_out)")
    unbatched = x.ndim == 2
    xb = x[None] if unbatched else x
    n, f_in = xb.shape[1], xb.shape[2]
    if lap.shape != (n, n):
        raise ParameterError(
            f"laplacian_scaled has shape {lap.shape}, but x has {n} nodes (shape {x.shape}); "
            f"a square ({n}, {n}) Laplacian of the same graph is required"
        )
    if w.shape[1] != f_in:
        raise ParameterError(
            f"weights has shape {w.shape} (K, f_in, f_out) with f_in={w.shape[1]}, but x has "
            f"{f_in} features per node (shape {x.shape}); weights must be (K, {f_in}, f_out)"
        )
    lap = np.ascontiguousarray(lap, dtype=dtype)
    w = np.ascontiguousarray(w, dtype=dtype)
    if use_jit():
        out = _chebyshev_kernel(xb, lap, w)
    else:
        out = _chebyshev_twin(xb, lap, w).astype(dtype, copy=False)
    return out[0] if unbatched else out


# ---------------------------------------------------------------------------
# Streaming
# ---------------------------------------------------------------------------


class GraphFrames(NamedTuple):
    """What :meth:`StreamingGraphFilter.push` returns for m complete windows.

    adjacency : (m, n_channels, n_channels) adjacency of each window.
    laplacian : (m, n_channels, n_channels) normalized Laplacian of each.
    features : (m, n_channels, f) Chebyshev-filtered node features, or None
        when neither ``weights`` nor ``K`` was given. With m = 0, custom
        ``node_features`` and no ``weights``, f is 0 until a first window has
        shown the width.
    start : (m,) int64 index of each window's first sample in the stream.
    """

    adjacency: np.ndarray
    laplacian: np.ndarray
    features: "np.ndarray | None"
    start: np.ndarray


def _chebyshev_basis_weights(k_order, f_in, dtype):
    """Weights whose output is [T_0 x, T_1 x, ..., T_{K-1} x] along features."""
    w = np.zeros((k_order, f_in, k_order * f_in), dtype=dtype)
    for k in range(k_order):
        w[k, :, k * f_in:(k + 1) * f_in] = np.eye(f_in, dtype=dtype)
    return w


class StreamingGraphFilter:
    """Sliding-window EEG graphs (and optional Chebyshev features) from a stream.

    Samples arrive in chunks of any length; a ring buffer keeps the last
    window. Each complete window (``window_s`` seconds, every ``hop_s``
    seconds, the first one starting at sample 0) yields its adjacency, its
    normalized Laplacian and, optionally, Chebyshev-filtered node features.
    The output is identical to the batch functions applied to the same
    slices of the whole recording, whatever the chunking.

    Parameters
    ----------
    fs : float
        Sample rate in Hz.
    n_channels : int
    window_s, hop_s : float
        Window length and hop in seconds (rounded to whole samples, >= 2 and
        >= 1 samples). A hop longer than the window skips samples.
    adjacency : "correlation", "coherence" or ndarray (n_channels, n_channels)
        How the graph of each window is built; an array is a fixed graph
        (e.g. from :func:`distance_adjacency`).
    K : int, optional
        Number of Chebyshev terms. Without ``weights``, ``features`` holds
        the unmixed basis ``[T_0 x, ..., T_{K-1} x]`` concatenated along the
        feature axis (n_channels, K * f_in) -- what a model's first graph
        layer would mix. With ``weights`` it must equal ``weights.shape[0]``.
    weights : ndarray (K, f_in, f_out), optional
        Chebyshev weights; ``features`` is then ``chebyshev_filter`` of the
        node features with the window's scaled Laplacian.
    node_features : callable, optional
        ``f(window) -> (n_channels, f_in)`` node features of one window
        (e.g. differential entropy per band). Default: the raw window, so
        f_in is the window length in samples.
    lambda_max : float, optional
        Passed to :func:`scaled_laplacian` (default: exact eigenvalue).
    absolute, threshold : correlation options (see :func:`correlation_adjacency`);
        ``threshold`` also applies to coherence (entries below become 0).
        With ``absolute=False`` the returned adjacency is signed, and the
        Laplacians are computed from its absolute value.
    band, nperseg, noverlap : coherence options (see :func:`coherence_adjacency`).
    nan_policy : {"raise", "zero", "interpolate"}
        Applied to each window.

    The ring buffer takes the dtype of the first chunk (float32 or float64);
    later chunks are cast to it.
    """

    def __init__(
        self,
        fs,
        n_channels,
        *,
        window_s,
        hop_s,
        adjacency="correlation",
        K=None,
        weights=None,
        node_features=None,
        lambda_max=None,
        absolute=True,
        threshold=0.0,
        band=(4.0, 45.0),
        nperseg=None,
        noverlap=None,
        nan_policy="raise",
    ):
        self.fs = check_rate(fs, "fs")
        self.n_channels = check_positive_int(n_channels, "n_channels")
        window_s = check_real(window_s, "window_s", minimum=0.0, strict_min=True)
        hop_s = check_real(hop_s, "hop_s", minimum=0.0, strict_min=True)
        self.window = int(round(window_s * self.fs))
        self.hop = int(round(hop_s * self.fs))
        if self.window < 2:
            raise ParameterError(
                f"window_s={window_s} s at fs={self.fs} Hz is {self.window} sample(s); at least 2 are "
                "needed. Pass a longer window_s"
            )
        if self.hop < 1:
            raise ParameterError(
                f"hop_s={hop_s} s at fs={self.fs} Hz rounds to 0 samples; pass hop_s >= {1 / self.fs:g}"
            )
        self.nan_policy = check_choice(nan_policy, "nan_policy", NAN_POLICIES)
        self.absolute = bool(absolute)
        self.threshold = check_real(threshold, "threshold", minimum=0.0, maximum=1.0)
        self.lambda_max = check_real(lambda_max, "lambda_max", minimum=0.0, strict_min=True, allow_none=True)
        self.band = band
        self.noverlap = noverlap
        self._fixed = None
        if isinstance(adjacency, str):
            self.adjacency = check_choice(adjacency, "adjacency", ("correlation", "coherence"))
            if adjacency == "coherence":
                self.nperseg, _, _, _ = _coherence_params(self.window, self.fs, band, nperseg, noverlap)
            else:
                self.nperseg = nperseg
        else:
            fixed = _check_adjacency(adjacency, "adjacency")
            if fixed.shape[0] != self.n_channels:
                raise ParameterError(
                    f"adjacency has shape {fixed.shape}, but n_channels={self.n_channels}; pass a "
                    f"({self.n_channels}, {self.n_channels}) matrix"
                )
            self.adjacency = "fixed"
            self._fixed = fixed
            self.nperseg = nperseg
        if K is not None:
            K = check_positive_int(K, "K")
        if weights is not None:
            w = _check_float_array(weights, "weights", (3,), "Chebyshev weights (K, f_in, f_out)")
            if K is not None and K != w.shape[0]:
                raise ParameterError(
                    f"K={K} but weights has shape {w.shape}, i.e. {w.shape[0]} Chebyshev terms; "
                    "pass K=weights.shape[0] or leave K out"
                )
            K = w.shape[0]
            weights = w
        if node_features is not None and not callable(node_features):
            raise ParameterError(
                f"node_features={node_features!r} must be a callable window -> (n_channels, f_in) or None"
            )
        self.K = K
        self.weights = weights
        self.node_features = node_features
        self._ring = None
        self.reset()

    def reset(self):
        """Forget buffered samples; the next sample is index 0 again."""
        self._ring = None
        self._last_width = 0  # feature width seen last (custom node_features, no weights)
        self._pos = 0  # next write position in the ring
        self._total = 0  # samples pushed since reset
        self._next_end = self.window  # stream index one past the next window's end

    # -- ring buffer -------------------------------------------------------
    def _write(self, block):
        n = block.shape[1]
        w = self.window
        if n >= w:
            self._ring[:] = block[:, n - w:]
            self._pos = 0
            return
        first = min(n, w - self._pos)
        self._ring[:, self._pos:self._pos + first] = block[:, :first]
        if first < n:
            self._ring[:, :n - first] = block[:, first:]
        self._pos = (self._pos + n) % w

    def _current_window(self):
        if self._pos == 0:
            return self._ring.copy()
        return np.concatenate([self._ring[:, self._pos:], self._ring[:, :self._pos]], axis=1)

    # -- per window --------------------------------------------------------
    def _graph(self, win):
        if self.adjacency == "correlation":
            adj = correlation_adjacency(win, absolute=self.absolute, threshold=self.threshold,
                                        nan_policy=self.nan_policy)
        elif self.adjacency == "coherence":
            adj = coherence_adjacency(win, self.fs, band=self.band, nperseg=self.nperseg,
                                      noverlap=self.noverlap, nan_policy=self.nan_policy)
            if self.threshold > 0:
                adj[adj < self.threshold] = 0
        else:
            adj = self._fixed.astype(win.dtype, copy=True)
        return adj

    def _features(self, win, adj):
        if self.K is None:
            return None
        if self.node_features is None:
            feats = prepare_signal(win, "window", ndim=2, nan_policy=self.nan_policy,
                                   what="an EEG window (channels, samples)")
        else:
            feats = _check_float_array(self.node_features(win), "node_features(window)", (2,),
                                       "node features (n_channels, f_in)")
            if feats.shape[0] != self.n_channels:
                raise ParameterError(
                    f"node_features(window) returned shape {feats.shape}, but (n_channels={self.n_channels}, "
                    "f_in) is required"
                )
        lap = scaled_laplacian(np.abs(adj), lambda_max=self.lambda_max)
        weights = self.weights
        if weights is None:
            weights = _chebyshev_basis_weights(self.K, feats.shape[1], feats.dtype)
        return chebyshev_filter(feats.astype(win.dtype, copy=False), lap, weights)

    def _feature_width(self):
        """Features per node in ``GraphFrames.features`` (0 if not known yet)."""
        if self.weights is not None:
            return self.weights.shape[2]
        if self.node_features is None:
            return self.K * self.window
        return self._last_width

    def push(self, chunk):
        """Add samples; return the graphs of every window completed by them.

        Parameters
        ----------
        chunk : ndarray, shape (n_channels, n_samples), float32 or float64
            Any length, including 0.

        Returns
        -------
        GraphFrames
            With m >= 0 windows (arrays with a leading axis of length m).
        """
        chunk = _as_array(chunk, "chunk", "EEG samples (channels, samples)")
        if chunk.ndim != 2 or chunk.shape[0] != self.n_channels:
            raise ParameterError(
                f"chunk has shape {chunk.shape}, but ({self.n_channels}, n_samples) is required "
                "(channels first); transpose (samples, channels) data with chunk.T"
            )
        dtype = float_dtype(chunk, "chunk", audio=False)
        if self._ring is None:
            self._ring = np.zeros((self.n_channels, self.window), dtype=dtype)
        chunk = np.asarray(chunk, dtype=self._ring.dtype)
        adjs, laps, feats, starts = [], [], [], []
        i = 0
        n = chunk.shape[1]
        while i < n:
            take = min(n - i, self._next_end - self._total)
            self._write(chunk[:, i:i + take])
            i += take
            self._total += take
            if self._total == self._next_end:
                win = self._current_window()
                adj = self._graph(win)
                adjs.append(adj)
                laps.append(normalized_laplacian(np.abs(adj)))
                feats.append(self._features(win, adj))
                if feats[-1] is not None:
                    self._last_width = feats[-1].shape[1]
                starts.append(self._total - self.window)
                self._next_end += self.hop
        c = self.n_channels
        rd = self._ring.dtype
        if adjs:
            adjacency = np.stack(adjs)
            laplacian = np.stack(laps)
            features = None if self.K is None else np.stack(feats)
        else:
            adjacency = np.zeros((0, c, c), dtype=rd)
            laplacian = np.zeros((0, c, c), dtype=rd)
            features = None
            if self.K is not None:
                features = np.zeros((0, c, self._feature_width()), dtype=rd)
        return GraphFrames(adjacency, laplacian, features, np.asarray(starts, dtype=np.int64))
