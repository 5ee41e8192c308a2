"""eGeMAPS v02: the 25 low-level descriptors and their 88 functionals.

A permissively licensed extractor of the extended Geneva Minimalistic
Acoustic Parameter Set (Eyben et al. 2016, IEEE Trans. Affective Computing
7(2)), written from the paper and the *settings* of openSMILE's published
``eGeMAPSv02`` configuration (frame sizes, ranges, smoothing, which
functionals on which frames). No openSMILE code is used; openSMILE's licence
forbids commercial use, this module's does not. ``bench/egemaps.py``
compares every feature with openSMILE 2.6.0 on the same clips and prints
the correlations; the names and order of :data:`FUNCTIONAL_NAMES` and
:data:`LLD_NAMES` are openSMILE's, so a model trained on one can be fed the
other after per-feature standardisation (the units of some LLDs differ by a
constant, see below).

Frames: a 10 ms grid; frame t covers samples ``[t * hop, t * hop + 60 ms)``,
the last one zero-padded at the end,
(the pitch, jitter, shimmer and HNR window), the spectral LLDs use its
first 20 ms (as openSMILE's left-aligned frames). The number of frames is
``1 + ceil((n - 60 ms) / hop)``, as openSMILE's.

Low-level descriptors (``egemaps_llds``):

* ``F0semitoneFrom27.5Hz``: ``12 log2(f0 / 27.5)`` on voiced frames, 0 on
  unvoiced ones. f0 from :func:`affectedge.native_kernels.pitch` (pYIN by
  default, 55-1000 Hz as eGeMAPS, 60 ms frames; openSMILE uses subharmonic
  summation -- the tracks agree on most voiced frames, voicing at stretch
  edges differs); frames whose RMS is below 0.001 are unvoiced (openSMILE's
  energy gate).
* ``jitterLocal``, ``shimmerLocaldB``: glottal periods are marked by a
  waveform cross-correlation walk: in each voiced stretch the first pulse is
  the largest |x| in one period, each next one the lag within 0.9-1.1
  periods that maximises the normalised cross-correlation of one-period
  windows (accepted at r >= 0.5, openSMILE's ``minCC``). Per frame, over
  the pulses inside its 60 ms: jitter = mean |T(i+1) - T(i)| / mean T,
  shimmer = mean |20 log10(A(i+1) / A(i))| with A the peak |x| of each
  period; 0 with fewer than 2 periods. (Praat-exact per-utterance jitter
  and shimmer are :func:`affectedge.native_kernels.voice_quality`.)
* ``HNRdBACF``: ``10 log10(r / (1 - r))``, r the normalised
  autocorrelation of the 60 ms frame at the f0 period (best of the three
  integer lags around it, parabolic peak), clipped to [0.01, 0.9999].
* ``logRelF0-H1-H2``, ``logRelF0-H1-A3``, ``F1..F3 frequency / bandwidth /
  amplitudeLogRelF0``: from :mod:`affectedge.native_kernels.formant`
  (LPC formants on 20 ms frames, harmonic levels on the 60 ms spectrum).
  By default the formants are Burg LPC poles (order 10, as Praat; within
  1.4 % of Praat's on EmoDB) and H1 is the harmonic at f0. openSMILE 2.x
  differs in two details: its formants are roots of a
  sign-flipped LPC polynomial (autocorrelation LPC at 11 kHz over 14 ms of
  the frame; bandwidths of 700-1300 Hz), and its "H1-H2" is the level
  difference of the 2nd and 3rd harmonics. ``opensmile_compat=True``
  reproduces openSMILE's numbers (formants within 1 Hz on 93-98 % of
  frames, harmonic levels within 1e-4 dB); the default keeps the paper's
  definitions, so these 20 functionals correlate weakly with openSMILE's.
* ``Loudness``, ``alphaRatio``, ``hammarbergIndex``, ``slope0-500``,
  ``slope500-1500``, ``spectralFlux``, ``mfcc1..4``: from
  :func:`affectedge.native_kernels.spectral_llds` (20 ms Hamming frames).

Every LLD is smoothed by a 3-frame moving average (``sma3``); the voiced-only
ones (``sma3nz``) average only their non-zero neighbours and stay 0 where
they are 0. The formant LLDs are voiced-only here (0 on unvoiced frames);
openSMILE's LLD output keeps formants on every frame and drops the unvoiced
ones only for its functionals, so frame-by-frame correlations of those 9
LLDs with openSMILE's are low by construction while the functionals agree.

Definitions that differ from openSMILE's (``bench/egemaps.py`` prints the
per-feature r): F0 (pYIN instead of subharmonic summation: voicing at the
edges of voiced stretches differs, hence the F0 slope, segment-length and
rate functionals), jitter and shimmer (our pulse walk vs openSMILE's
per-frame period search: weak agreement, r 0.2-0.7), HNR (r 0.78 on the
mean), spectral flux and loudness (a constant unit factor), the 500-1500 Hz
slope (another scale), and, unless ``opensmile_compat=True``, the formants
and harmonic levels (see below).

Functionals (``egemaps``), 88 in openSMILE's order:

* F0 (voiced frames only) and loudness (all frames): arithmetic mean,
  ``stddevNorm`` (standard deviation / mean, signed as openSMILE's), 20th, 50th, 80th
  percentiles (linear interpolation), the 20-80 range, and the mean and
  standard deviation of the rising and falling slopes between successive
  extrema (units per second), extrema kept when they differ from their
  neighbours by at least 10 % of the contour's range;
* mean and stddevNorm of flux and MFCC 1-4 (all frames), of jitter, shimmer,
  HNR, H1-H2, H1-A3 and the formant features (voiced frames), of alpha
  ratio, Hammarberg index, slopes, flux and MFCC 1-4 over voiced frames
  (``...V``), and the mean of alpha ratio, Hammarberg, slopes and flux over
  unvoiced frames (``...UV``);
* loudness peaks per second, voiced segments per second, mean and standard
  deviation of voiced and unvoiced segment lengths (s), and the equivalent
  sound level ``10 log10(mean of the frames' mean square)`` (dB).

Junk input gets a status, never NaN: all-silent input gives
``status="silent"`` and all functionals 0; input without a voiced frame
gives ``status="no_voiced_frames"``, the voiced-frame functionals 0 and the
others computed. float32 input gives float32 output, float64 float64 (the
pulse walk and functionals run in float64).
"""

import math
from dataclasses import dataclass, field

import numpy as np

from affectedge.errors import ParameterError

from . import _config
from ._config import njit
from ._validate import check_choice, check_positive_int, check_rate, prepare_signal

__all__ = ["EGeMAPS", "FUNCTIONAL_NAMES", "LLD_NAMES", "egemaps", "egemaps_llds"]

LLD_NAMES = (
    "Loudness_sma3", "alphaRatio_sma3", "hammarbergIndex_sma3", "slope0-500_sma3", "slope500-1500_sma3",
    "spectralFlux_sma3", "mfcc1_sma3", "mfcc2_sma3", "mfcc3_sma3", "mfcc4_sma3", "F0semitoneFrom27.5Hz_sma3nz",
    "jitterLocal_sma3nz", "shimmerLocaldB_sma3nz", "HNRdBACF_sma3nz", "logRelF0-H1-H2_sma3nz",
    "logRelF0-H1-A3_sma3nz", "F1frequency_sma3nz", "F1bandwidth_sma3nz", "F1amplitudeLogRelF0_sma3nz",
    "F2frequency_sma3nz", "F2bandwidth_sma3nz", "F2amplitudeLogRelF0_sma3nz", "F3frequency_sma3nz",
    "F3bandwidth_sma3nz", "F3amplitudeLogRelF0_sma3nz",
)
_CONTOUR = ("amean", "stddevNorm", "percentile20.0", "percentile50.0", "percentile80.0", "pctlrange0-2",
            "meanRisingSlope", "stddevRisingSlope", "meanFallingSlope", "stddevFallingSlope")
_MS = ("amean", "stddevNorm")
_VOICED_SET = ("jitterLocal", "shimmerLocaldB", "HNRdBACF", "logRelF0-H1-H2", "logRelF0-H1-A3", "F1frequency",
               "F1bandwidth", "F1amplitudeLogRelF0", "F2frequency", "F2bandwidth", "F2amplitudeLogRelF0",
               "F3frequency", "F3bandwidth", "F3amplitudeLogRelF0")
_SPEC_V = ("alphaRatioV", "hammarbergIndexV", "slopeV0-500", "slopeV500-1500", "spectralFluxV", "mfcc1V", "mfcc2V",
           "mfcc3V", "mfcc4V")
_SPEC_UV = ("alphaRatioUV", "hammarbergIndexUV", "slopeUV0-500", "slopeUV500-1500", "spectralFluxUV")
_TEMPORAL = ("loudnessPeaksPerSec", "VoicedSegmentsPerSec", "MeanVoicedSegmentLengthSec",
             "StddevVoicedSegmentLengthSec", "MeanUnvoicedSegmentLength", "StddevUnvoicedSegmentLength",
             "equivalentSoundLevel_dBp")
FUNCTIONAL_NAMES = tuple(
    [f"F0semitoneFrom27.5Hz_sma3nz_{f}" for f in _CONTOUR]
    + [f"loudness_sma3_{f}" for f in _CONTOUR]
    + [f"{n}_sma3_{f}" for n in ("spectralFlux", "mfcc1", "mfcc2", "mfcc3", "mfcc4") for f in _MS]
    + [f"{n}_sma3nz_{f}" for n in _VOICED_SET + _SPEC_V for f in _MS]
    + [f"{n}_sma3nz_amean" for n in _SPEC_UV]
    + list(_TEMPORAL)
)
assert len(FUNCTIONAL_NAMES) == 88 and len(LLD_NAMES) == 25

F0_MIN_HZ = 55.0
F0_MAX_HZ = 1000.0
RMS_GATE = 0.001  # frames below this RMS are unvoiced (openSMILE's energy gate)
MIN_CC = 0.5
SEARCH_REL = 0.1
HNR_R_RANGE = (0.01, 0.9999)
PEAK_REL_THRESH = 0.1
PITCH_METHODS = ("pyin", "yin")
COMPAT_NO_HARMONIC_DB = -200.0  # openSMILE's value for a formant amplitude it cannot measure
COMPAT_UNVOICED_DB = -201.0  # ... and for one on an unvoiced frame


@dataclass(frozen=True)
class EGeMAPS:
    """eGeMAPS v02 of one clip: ``functionals`` (88,) in :data:`FUNCTIONAL_NAMES` order,
    ``llds`` (n_frames, 25) in :data:`LLD_NAMES` order (smoothed), ``voiced`` (n_frames,) bool."""

    functionals: np.ndarray = field(repr=False)
    llds: np.ndarray = field(repr=False)
    voiced: np.ndarray = field(repr=False)
    sr: float
    hop_length: int
    status: str

    names = FUNCTIONAL_NAMES
    lld_names = LLD_NAMES

    @property
    def n_frames(self):
        return int(self.llds.shape[0])

    def as_dict(self):
        return {n: float(v) for n, v in zip(FUNCTIONAL_NAMES, self.functionals)}


# ------------------------------------------------------------ pulses (jitter, shimmer)


def _twin_pulses(x, f0, hop, centre, sr, min_cc, search_rel):
    """Period marks (sample positions), their peak amplitudes and a 'starts a new run' flag."""
    n_frames = f0.shape[0]
    pos, amp, new = [], [], []
    t = 0
    while t < n_frames:
        if f0[t] <= 0:
            t += 1
            continue
        t1 = t
        while t1 + 1 < n_frames and f0[t1 + 1] > 0:
            t1 += 1
        a = t * hop + centre - hop // 2
        b = min(t1 * hop + centre + hop // 2, x.shape[0])
        period = int(round(sr / f0[t]))
        if a + 2 * period < b:
            seg = np.abs(x[a:a + period])
            cur = a + int(np.argmax(seg))
            first = True
            while True:
                k = min(max((cur - centre) // hop, t), t1)
                period = int(round(sr / f0[k]))
                h = period // 2
                lo = cur + int(math.floor((1 - search_rel) * period))
                hi = cur + int(math.ceil((1 + search_rel) * period))
                if cur - h < 0 or hi + h > b or h < 1:
                    break
                ref = x[cur - h:cur + h]
                er = float(np.dot(ref, ref))
                best, best_r = -1, -2.0
                for p in range(lo, hi + 1):
                    w = x[p - h:p + h]
                    ew = float(np.dot(w, w))
                    r = float(np.dot(ref, w)) / math.sqrt(er * ew) if er > 0 and ew > 0 else 0.0
                    if r > best_r:
                        best, best_r = p, r
                pos.append(cur)
                amp.append(float(np.max(np.abs(ref))))
                new.append(first)
                first = False
                if best_r < min_cc:
                    # correlation lost: restart the walk one period on
                    seg = np.abs(x[hi:min(hi + period, b)])
                    if seg.size == 0:
                        break
                    cur = hi + int(np.argmax(seg))
                    first = True
                    continue
                cur = best
        t = t1 + 1
    return np.array(pos, np.int64), np.array(amp, np.float64), np.array(new, np.bool_)


@njit
def _pulses_kernel(x, f0, hop, centre, sr, min_cc, search_rel):
    n_frames = f0.shape[0]
    cap = x.shape[0] // 8 + 16
    pos = np.empty(cap, np.int64)
    amp = np.empty(cap, np.float64)
    new = np.empty(cap, np.bool_)
    m = 0
    t = 0
    while t < n_frames:
        if f0[t] <= 0:
            t += 1
            continue
        t1 = t
        while t1 + 1 < n_frames and f0[t1 + 1] > 0:
            t1 += 1
        a = t * hop + centre - hop // 2
        b = min(t1 * hop + centre + hop // 2, x.shape[0])
        period = int(round(sr / f0[t]))
        if a + 2 * period < b:
            cur = a
            best_v = -1.0
            for i in range(a, a + period):
                if abs(x[i]) > best_v:
                    best_v = abs(x[i])
                    cur = i
            first = True
            while m < cap:
                k = min(max((cur - centre) // hop, t), t1)
                period = int(round(sr / f0[k]))
                h = period // 2
                lo = cur + int(math.floor((1 - search_rel) * period))
                hi = cur + int(math.ceil((1 + search_rel) * period))
                if cur - h < 0 or hi + h > b or h < 1:
                    break
                er = 0.0
                pk = 0.0
                for i in range(cur - h, cur + h):
                    er += x[i] * x[i]
                    pk = max(pk, abs(x[i]))
                best = -1
                best_r = -2.0
                for p in range(lo, hi + 1):
                    ew = 0.0
                    c = 0.0
                    for i in range(-h, h):
                        w = x[p + i]
                        ew += w * w
                        c += x[cur + i] * w
                    r = c / math.sqrt(er * ew) if er > 0 and ew > 0 else 0.0
                    if r > best_r:
                        best = p
                        best_r = r
                pos[m] = cur
                amp[m] = pk
                new[m] = first
                m += 1
                first = False
                if best_r < min_cc:
                    e = min(hi + period, b)
                    if e <= hi:
                        break
                    best_v = -1.0
                    for i in range(hi, e):
                        if abs(x[i]) > best_v:
                            best_v = abs(x[i])
                            cur = i
                    first = True
                    continue
                cur = best
        t = t1 + 1
    return pos[:m], amp[:m], new[:m]


def _frame_jitter_shimmer(pos, amp, new, n_frames, hop, win):
    """Per-frame local jitter and shimmer (dB) over the periods inside each 60 ms frame."""
    jit = np.zeros(n_frames)
    shim = np.zeros(n_frames)
    if pos.size < 3:
        return jit, shim
    starts = np.arange(n_frames) * hop
    i0 = np.searchsorted(pos, starts)
    i1 = np.searchsorted(pos, starts + win)
    per = np.diff(pos).astype(np.float64)
    ok_per = ~new[1:]  # period i spans pulses i, i+1 of one run
    for t in range(n_frames):
        a, b = i0[t], i1[t]
        if b - a < 3:
            continue
        p = per[a:b - 1]
        ok = ok_per[a:b - 1]
        pair = ok[1:] & ok[:-1]
        if not pair.any():
            continue
        jit[t] = np.mean(np.abs(np.diff(p))[pair]) / np.mean(p[ok])
        A = amp[a:b]
        ratio = np.abs(20.0 * np.log10(np.maximum(A[1:], 1e-12) / np.maximum(A[:-1], 1e-12)))
        shim[t] = np.mean(ratio[ok])
    return jit, shim


# ------------------------------------------------------------ HNR


def _twin_hnr(x, f0, hop, win, sr, rmin, rmax):
    out = np.zeros(f0.shape[0])
    for t in range(f0.shape[0]):
        if f0[t] <= 0:
            continue
        s = t * hop
        seg = x[s:s + win]
        T = sr / f0[t]
        L0 = int(round(T))
        rs = []
        for lag in (L0 - 1, L0, L0 + 1):
            if lag < 1 or lag >= win - 1:
                rs.append(0.0)
                continue
            a, b = seg[:-lag], seg[lag:]
            den = math.sqrt(float(np.dot(a, a)) * float(np.dot(b, b)))
            rs.append(float(np.dot(a, b)) / den if den > 0 else 0.0)
        r = _parabolic_peak(rs[0], rs[1], rs[2])
        r = min(max(r, rmin), rmax)
        out[t] = 10.0 * math.log10(r / (1.0 - r))
    return out


@njit
def _parabolic_peak(a, b, c):
    d = a - 2.0 * b + c
    if d < 0.0:
        off = 0.5 * (a - c) / d
        if -1.0 < off < 1.0:
            return b - 0.25 * (a - c) * off
    return max(a, max(b, c))


@njit
def _hnr_kernel(x, f0, hop, win, sr, rmin, rmax):
    out = np.zeros(f0.shape[0])
    rs = np.zeros(3)
    for t in range(f0.shape[0]):
        if f0[t] <= 0:
            continue
        s = t * hop
        L0 = int(round(sr / f0[t]))
        for j in range(3):
            lag = L0 - 1 + j
            if lag < 1 or lag >= win - 1:
                rs[j] = 0.0
                continue
            c = 0.0
            ea = 0.0
            eb = 0.0
            for i in range(s, s + win - lag):
                u = x[i]
                v = x[i + lag]
                c += u * v
                ea += u * u
                eb += v * v
            den = math.sqrt(ea * eb)
            rs[j] = c / den if den > 0 else 0.0
        r = _parabolic_peak(rs[0], rs[1], rs[2])
        r = min(max(r, rmin), rmax)
        out[t] = 10.0 * math.log10(r / (1.0 - r))
    return out


# ------------------------------------------------------------ smoothing and functionals


def _sma3(v):
    """3-frame moving average (edges average the available neighbours)."""
    n = v.shape[0]
    if n < 2:
        return v.copy()
    s = np.empty_like(v)
    s[1:-1] = (v[:-2] + v[1:-1] + v[2:]) / 3.0
    s[0] = (v[0] + v[1]) / 2.0
    s[-1] = (v[-1] + v[-2]) / 2.0
    return s


def _sma3nz(v):
    """3-frame moving average over non-zero values only; zeros stay zero."""
    nz = (v != 0).astype(np.float64)
    pad = np.pad(v, 1)
    pn = np.pad(nz, 1)
    num = pad[:-2] + pad[1:-1] + pad[2:]
    den = pn[:-2] + pn[1:-1] + pn[2:]
    return np.where(nz > 0, num / np.maximum(den, 1.0), 0.0)


def _mean_stdnorm(v):
    if v.size == 0:
        return 0.0, 0.0
    m = float(v.mean())
    sd = float(v.std())
    return m, (sd / m if abs(m) > 1e-12 else 0.0)


def _extrema(v, rel):
    """Indices of alternating local maxima/minima that stand out by rel * range."""
    n = v.size
    if n < 3:
        return np.zeros(0, np.int64), np.zeros(0, np.bool_)
    thr = rel * float(v.max() - v.min())
    if thr <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.bool_)
    idx, is_max = [], []
    last_i, last_v = 0, v[0]
    direction = 0  # +1 rising, -1 falling
    for i in range(1, n):
        x = v[i]
        if direction >= 0:
            if x > last_v:
                last_i, last_v = i, x
                if direction == 0 and x - v[0] >= thr:
                    direction = 1
            elif last_v - x >= thr:
                if direction == 1 or direction == 0:
                    idx.append(last_i)
                    is_max.append(True)
                direction = -1
                last_i, last_v = i, x
        else:
            if x < last_v:
                last_i, last_v = i, x
            elif x - last_v >= thr:
                idx.append(last_i)
                is_max.append(False)
                direction = 1
                last_i, last_v = i, x
    return np.array(idx, np.int64), np.array(is_max, np.bool_)


def _slopes(v, frame_s):
    idx, is_max = _extrema(v, PEAK_REL_THRESH)
    rising, falling = [], []
    for a, b, ma in zip(idx[:-1], idx[1:], is_max[:-1]):
        s = (v[b] - v[a]) / ((b - a) * frame_s)
        (falling if ma else rising).append(s)
    out = []
    for s in (rising, falling):
        s = np.abs(np.array(s)) if s else np.zeros(0)
        out += [float(s.mean()), float(s.std())] if s.size else [0.0, 0.0]
    return out, int(is_max.sum())


def _contour(v, frame_s):
    if v.size == 0:
        return [0.0] * 10, 0
    m, sn = _mean_stdnorm(v)
    p20, p50, p80 = np.percentile(v, [20, 50, 80])
    sl, n_peaks = _slopes(v, frame_s)
    return [m, sn, float(p20), float(p50), float(p80), float(p80 - p20)] + sl, n_peaks


def _runs(mask):
    """Lengths (frames) of the runs of True in ``mask``."""
    if mask.size == 0:
        return np.zeros(0, np.int64)
    d = np.diff(np.r_[0, mask.astype(np.int8), 0])
    return np.flatnonzero(d == -1) - np.flatnonzero(d == 1)


# ------------------------------------------------------------ public API


def _frames_60(n, sr, hop):
    """60 ms window and frame count: frames start every hop while they start before the last full window
    ends (``1 + ceil((n - win) / hop)``, as openSMILE), the last one zero-padded."""
    win = int(round(0.060 * sr))
    return win, (0 if n < win else 1 + -(-(n - win) // hop))


def _raw_llds(y, sr, pitch_method, hop, compat):
    """Unsmoothed LLD matrix (n_frames, 25), voiced mask, frame energies; float64."""
    from .f0 import pitch
    from .formant import formants, harmonic_levels
    from .lld import spectral_llds

    win, n = _frames_60(y.shape[0], sr, hop)
    y = np.concatenate([y, np.zeros((n - 1) * hop + win - y.shape[0], y.dtype)])
    x = y.astype(np.float64)
    spec = spectral_llds(y, sr, hop_length=hop)
    pr = pitch(y, sr, fmin=F0_MIN_HZ, fmax=min(F0_MAX_HZ, sr / 4), frame_length=win, hop_length=hop,
               method=pitch_method, center=False, fill_na=0.0)
    f0 = np.nan_to_num(pr.f0[:n].astype(np.float64), nan=0.0)
    voiced = pr.voiced_flag[:n] & (f0 > 0)
    frames = np.lib.stride_tricks.sliding_window_view(x, win)[::hop][:n]
    rms = np.sqrt(np.mean(frames * frames, axis=1))
    voiced &= rms >= RMS_GATE
    f0 = np.where(voiced, f0, 0.0)
    if _config.use_jit():
        pos, amp, new = _pulses_kernel(x, f0, hop, win // 2, float(sr), MIN_CC, SEARCH_REL)
        hnr = _hnr_kernel(x, f0, hop, win, float(sr), *HNR_R_RANGE)
    else:
        pos, amp, new = _twin_pulses(x, f0, hop, win // 2, float(sr), MIN_CC, SEARCH_REL)
        hnr = _twin_hnr(x, f0, hop, win, float(sr), *HNR_R_RANGE)
    jit, shim = _frame_jitter_shimmer(pos, amp, new, n, hop, win)
    fr = formants(y, sr, hop_length=hop, method="opensmile" if compat else "burg")
    nf = min(n, fr.frequency.shape[0])
    ff = np.zeros((n, 3))
    fb = np.zeros((n, 3))
    ff[:nf] = fr.frequency[:nf, :3]
    fb[:nf] = fr.bandwidth[:nf, :3]
    hl = harmonic_levels(y, sr, f0, ff, frame_length=win, hop_length=hop,
                         method="opensmile" if compat else "standard")
    h12 = np.where(voiced, hl.h1_h2[:n], 0.0)
    h13 = np.where(voiced, hl.h1_a3[:n], 0.0)
    famp = hl.formant_amplitude[:n].astype(np.float64)
    if compat:
        # openSMILE writes sentinels (-200: no harmonic peak at the formant, -201: unvoiced frame) that its
        # non-zero functionals then average in, unvoiced frames included
        famp = np.where(hl.formant_valid[:n], famp, COMPAT_NO_HARMONIC_DB)
        famp = np.where(voiced[:, None], famp, COMPAT_UNVOICED_DB)
    else:
        famp = np.where(voiced[:, None], famp, 0.0)
    semitone = np.where(voiced, 12.0 * np.log2(np.maximum(f0, 1e-6) / 27.5), 0.0)
    E = np.stack([spec.loudness[:n], spec.alpha_ratio[:n], spec.hammarberg[:n], spec.slope_0_500[:n],
                  spec.slope_500_1500[:n], spec.flux[:n]], axis=1).astype(np.float64)
    E = np.concatenate([E, spec.mfcc[:n].astype(np.float64)], axis=1)
    ff = np.where(voiced[:, None], ff, 0.0)  # the functionals' formants are voiced-only (openSMILE's formantsNz)
    fb = np.where(voiced[:, None], fb, 0.0)
    F = np.stack([semitone, np.where(voiced, jit, 0.0), np.where(voiced, shim, 0.0), np.where(voiced, hnr, 0.0),
                  h12, h13,
                  ff[:, 0], fb[:, 0], famp[:, 0], ff[:, 1], fb[:, 1], famp[:, 1], ff[:, 2], fb[:, 2], famp[:, 2]],
                 axis=1)
    energy = np.mean(frames[:, :int(round(0.020 * sr))] ** 2, axis=1)
    return E, F, voiced, energy, hop


def _check(y, sr, pitch_method, nan_policy, hop_length):
    sr = check_rate(sr)
    if hop_length is None:
        hop_length = int(round(0.010 * sr))
    hop_length = check_positive_int(hop_length, "hop_length")
    if sr < 10000:
        raise ParameterError(f"sr={sr:g} Hz is too low for eGeMAPS (bands up to 5 kHz need sr >= 10000 Hz); "
                             "resample the audio first (e.g. to 16000 Hz)")
    check_choice(pitch_method, "pitch_method", PITCH_METHODS)
    win = int(round(0.060 * sr))
    y = prepare_signal(y, "y", min_length=win + int(round(0.020 * sr)), nan_policy=nan_policy,
                       length_hint=f" (eGeMAPS needs at least 80 ms: {win} samples of the 60 ms window plus 2 "
                                   f"frames at sr={sr:g} Hz)")
    return y, sr, hop_length


def egemaps_llds(y, sr, *, pitch_method="pyin", hop_length=None, opensmile_compat=False, nan_policy="raise"):
    """The 25 eGeMAPS v02 LLDs per frame (``hop_length`` samples apart, default 10 ms), smoothed as
    openSMILE's: returns an :class:`EGeMAPS` whose ``functionals`` are not computed (zeros); see
    :func:`egemaps` for all 88."""
    return _extract(y, sr, pitch_method, nan_policy, hop_length, opensmile_compat, functionals=False)


def egemaps(y, sr, *, pitch_method="pyin", hop_length=None, opensmile_compat=False, nan_policy="raise"):
    """eGeMAPS v02 of mono audio ``y`` at ``sr`` Hz: 88 functionals and the 25 LLDs (see the module doc).

    ``pitch_method``: ``"pyin"`` (default, the better voicing decisions) or
    ``"yin"`` (about 4x cheaper pitch). ``hop_length``: frame step in
    samples (default 10 ms, eGeMAPS'; other steps change the slope and
    segment functionals' resolution). ``opensmile_compat=True`` computes
    the formants and harmonic levels as openSMILE 2.x does, quirks included
    (see :mod:`affectedge.native_kernels.formant`); the default follows the
    paper's definitions (Burg LPC poles, H1 = the harmonic at f0).
    Returns :class:`EGeMAPS`.
    """
    return _extract(y, sr, pitch_method, nan_policy, hop_length, opensmile_compat, functionals=True)


def _extract(y, sr, pitch_method, nan_policy, hop_length, compat, functionals):
    y, sr, hop = _check(y, sr, pitch_method, nan_policy, hop_length)
    dt = y.dtype.type
    E, F, voiced, energy, hop = _raw_llds(y, sr, pitch_method, hop, bool(compat))
    n = E.shape[0]
    Es = np.stack([_sma3(E[:, j]) for j in range(E.shape[1])], axis=1)
    # LLD output: formant tracks for all frames are voiced-only here (0 on unvoiced frames)
    Fs = np.stack([_sma3nz(F[:, j]) for j in range(F.shape[1])], axis=1)
    llds = np.concatenate([Es, Fs], axis=1)
    silent = bool(np.all(energy <= 1e-20))
    status = "silent" if silent else ("no_voiced_frames" if not voiced.any() else "ok")
    out = np.zeros(88)
    if functionals and not silent:
        out = _functionals(E, Es, Fs, voiced, energy, hop / sr, n)
    llds = np.where(np.isfinite(llds), llds, 0.0)
    out = np.where(np.isfinite(out), out, 0.0)
    return EGeMAPS(out.astype(dt), llds.astype(dt), voiced, sr, hop, status)


def _functionals(E, Es, Fs, voiced, energy, frame_s, n):
    vals = []
    f0 = Fs[:, 0]
    c, _ = _contour(f0[f0 != 0], frame_s)
    vals += c
    c, n_peaks = _contour(Es[:, 0], frame_s)
    vals += c
    for j in (5, 6, 7, 8, 9):  # flux, mfcc1-4 over all frames
        vals += list(_mean_stdnorm(Es[:, j]))
    for j in range(1, 15):  # voiced set
        v = Fs[:, j]
        vals += list(_mean_stdnorm(v[v != 0]))
    for j in (1, 2, 3, 4, 5, 6, 7, 8, 9):  # spectral over voiced frames
        v = _sma3nz(np.where(voiced, E[:, j], 0.0))
        vals += list(_mean_stdnorm(v[v != 0]))
    for j in (1, 2, 3, 4, 5):  # spectral over unvoiced frames
        v = _sma3nz(np.where(~voiced, E[:, j], 0.0))
        nz = v[v != 0]
        vals.append(float(nz.mean()) if nz.size else 0.0)
    dur = n * frame_s
    vr = _runs(f0 != 0)
    ur = _runs(f0 == 0)
    vals += [n_peaks / dur, vr.size / dur,
             float(vr.mean() * frame_s) if vr.size else 0.0, float(vr.std() * frame_s) if vr.size else 0.0,
             float(ur.mean() * frame_s) if ur.size else 0.0, float(ur.std() * frame_s) if ur.size else 0.0,
             10.0 * math.log10(max(float(energy.mean()), 1e-20))]
    return np.array(vals, np.float64)
