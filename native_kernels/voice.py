"""Voice quality: local jitter, local shimmer (dB) and harmonics-to-noise ratio.

A re-implementation of Praat's voice measures (Boersma 1993; Praat's
``Sound: To Pitch``, ``Sound & Pitch: To PointProcess (cc)``,
``PointProcess: Get jitter (local)``, ``Get shimmer (local_dB)`` and
``Sound: To Harmonicity (cc)``), compiled with Numba. Defaults match Praat's
``To PointProcess (periodic, cc)... 75 500``, ``Get jitter (local)... 0 0
0.0001 0.02 1.3``, ``Get shimmer (local_dB)... 0 0 0.0001 0.02 1.3 1.6`` and
``To Harmonicity (cc)... 0.01 75 0.1 1.0`` + ``Get mean``.

Pipeline (:func:`voice_quality`):

1. **Pitch for period marking** -- Praat's ``To Pitch (ac)`` with its
   defaults: Hann-windowed autocorrelation over 3 periods of ``fmin``
   (40 ms at 75 Hz), divided by the window's autocorrelation, every
   ``0.75 / fmin`` s; up to 15 candidates per frame (local maxima with
   r > voicing_threshold / 2); Viterbi path with Praat's silence (0.03),
   voicing (0.45), octave (0.01), octave-jump (0.35) and voiced/unvoiced
   (0.14) costs.
2. **Glottal pulses** -- Praat's ``Sound & Pitch: To PointProcess (cc)``:
   per voiced stretch, the absolute extremum within one period of its
   middle, then period by period backwards and forwards, the position of
   the maximum normalized cross-correlation of a one-period window with the
   window 0.8..1.25 periods away (parabolic refinement; accepted at r > 0.3
   and peak > 1% of the global peak).
3. **Jitter (local)** -- mean |T(i+1) - T(i)| over pairs of consecutive
   periods that are both within [period_floor, period_ceiling] with ratio
   <= max_period_factor, divided by the mean period (periods admitted by
   Praat's ``PointProcess_isPeriod`` rule). Relative (0.01 = 1 %).
4. **Shimmer (local, dB)** -- amplitude per pulse = Hann-windowed RMS over
   0.2 of the adjoining periods (Praat's ``To AmplitudeTier (period)``),
   then mean |20 log10(A(i+1)/A(i))| over consecutive pulses whose interval
   is within the period floor/ceiling and whose amplitude ratio is <=
   max_amplitude_factor.
5. **HNR** -- Praat's ``To Harmonicity (cc)``: forward cross-correlation
   over ``periods_per_window / fmin`` windows every ``hnr_time_step`` s,
   the strongest lag peak r (reflected around 1 when above 1), a frame is
   voiced unless its local peak is below ``hnr_silence_threshold`` of the
   global one (Praat's unvoiced-candidate strength, zero path costs);
   HNR = 10 log10(r / (1 - r)) per voiced frame, the mean over voiced frames.

Where this differs from Praat (hence the tolerances in the tests):

* Lag peaks are refined by parabolic interpolation of r; Praat refines
  their strength with sin(x)/x interpolation (and, for ``cc`` accurate,
  Brent optimisation). r at the peak is therefore slightly lower here, most
  visibly for HNR at high f0 (few samples per period).
* Praat's pitch frames keep the 15 candidates with the largest
  octave-cost-corrected strength by a replace-the-weakest scan; here the 15
  largest are taken directly (identical unless a frame has > 15 peaks).
* Pulses, jitter and shimmer follow Praat's rules; small differences in the
  pitch track (voicing decisions at stretch edges) change which stretches
  and periods enter, so the figures agree closely but not exactly.

Computation is in float64 whatever the input; per-frame tracks (``f0``,
``hnr_frames``) are returned in the input's dtype (float32 stays float32).
Junk input gets a status, never a confident number or NaN: with no voiced
frame the result has ``voiced_frames=0``, ``status="no_voiced_frames"`` and
``jitter_local``/``shimmer_local_db``/``hnr_db`` set to None; too few periods
for jitter/shimmer give None for those and ``status="too_few_periods"``.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from affectedge.errors import ParameterError

from . import _config
from ._config import njit
from ._validate import check_positive_int, check_rate, check_real, prepare_signal

__all__ = ["VoiceQuality", "voice_quality"]

_MAX_CANDIDATES = 15
_UNVOICED_DB = -200.0  # Praat's Harmonicity value for unvoiced frames


@dataclass(frozen=True)
class VoiceQuality:
    """Voice-quality measures of one utterance.

    ``jitter_local`` is relative (0.01 = 1 %), ``shimmer_local_db`` and
    ``hnr_db`` are in dB; each is None when it cannot be measured (see
    ``status``). ``f0`` is the pitch track used for pulse marking (0 =
    unvoiced) at ``f0_times``; ``hnr_frames`` the per-frame HNR in dB at
    ``hnr_times`` (-200 for unvoiced frames, as Praat); ``pulses`` the glottal
    pulse times in seconds.
    """

    jitter_local: object
    shimmer_local_db: object
    hnr_db: object
    voiced_frames: int
    n_pulses: int
    status: str
    f0: np.ndarray = field(repr=False)
    f0_times: np.ndarray = field(repr=False)
    hnr_frames: np.ndarray = field(repr=False)
    hnr_times: np.ndarray = field(repr=False)
    pulses: np.ndarray = field(repr=False)

    NAMES = ("jitter_local", "shimmer_local_db", "hnr_db")

    @property
    def ok(self):
        return self.status == "ok"

    def as_array(self, dtype=np.float32, fill=0.0):
        """The three measures in ``NAMES`` order; unmeasurable ones as ``fill``."""
        vals = [self.jitter_local, self.shimmer_local_db, self.hnr_db]
        return np.array([fill if v is None else v for v in vals], dtype=dtype)


# --------------------------------------------------------------------------
# Framing (Praat's Sampled_shortTermAnalysis and Sound_into_PitchFrame)
# --------------------------------------------------------------------------


class _Frames:
    """Frame geometry of one Praat pitch analysis (0-based sample indices)."""

    def __init__(self, n, sr, fmin, periods_per_window, time_step, cc):
        dx = 1.0 / sr
        duration = n * dx
        self.dt_window = periods_per_window / fmin
        nsamp_window = int(math.floor(self.dt_window / dx))
        self.half = nsamp_window // 2 - 1
        self.nwin = 2 * self.half
        self.nsamp_period = int(math.floor(1.0 / fmin / dx))
        self.half_period = self.nsamp_period // 2 + 1
        self.maxlag = min(int(math.floor(self.nwin / periods_per_window)) + 2, self.nwin)
        span = (1.0 / fmin + self.dt_window) if cc else self.dt_window
        self.n_frames = int(math.floor((duration - span) / time_step)) + 1 if duration >= span else 0
        mid = 0.5 * duration  # x1 - dx/2 + duration/2 with x1 = dx/2
        self.t1 = mid - 0.5 * self.n_frames * time_step + 0.5 * time_step
        self.dt = time_step
        self.times = self.t1 + time_step * np.arange(self.n_frames)
        left = np.floor(self.times * sr - 0.5).astype(np.int64)  # xToLowIndex, 0-based
        right = left + 1
        self.win_start = right - self.half
        mean_lo = np.maximum(right - self.nsamp_period, 0)
        mean_hi = np.minimum(left + self.nsamp_period, n - 1)
        self.mean_lo, self.mean_hi = mean_lo, mean_hi
        if cc:
            start_t = self.times - 0.5 * span
            self.cc_start = np.maximum(np.floor(start_t * sr - 0.5).astype(np.int64), 0)
            self.cc_span = np.minimum(self.maxlag + self.nwin, n - self.cc_start)
        self.count = 2 * self.nsamp_period


def _local_means_and_peaks(x, fr, global_peak):
    """Per-frame local mean (+-1 longest period) and relative local peak."""
    csum = np.concatenate(([0.0], np.cumsum(x)))
    means = (csum[fr.mean_hi + 1] - csum[fr.mean_lo]) / fr.count
    lo = max(fr.half + 1 - fr.half_period - 1, 0)  # 0-based offsets inside the window
    hi = min(fr.half + fr.half_period, fr.nwin)  # exclusive
    idx = fr.win_start[:, None] + np.arange(lo, hi)[None, :]
    idx = np.clip(idx, 0, x.shape[0] - 1)
    peaks = np.abs(x[idx] - means[:, None]).max(axis=1) if idx.size else np.zeros(fr.n_frames)
    intensity = np.where(peaks > global_peak, 1.0, peaks / global_peak if global_peak > 0 else 0.0)
    return means, peaks, intensity


def _hann(nwin):
    i = np.arange(1, nwin + 1)
    return 0.5 - 0.5 * np.cos(i * 2.0 * np.pi / (nwin + 1))


def _window_autocorr(window, maxlag):
    full = np.correlate(window, window, "full")[window.size - 1 :]
    out = np.zeros(maxlag + 2)
    m = min(maxlag + 2, full.size)
    out[:m] = full[:m] / full[0]
    return out


# ------------------------------ NumPy twins -------------------------------


def _twin_ac(x, starts, nwin, window, win_r, maxlag, means):
    idx = starts[:, None] + np.arange(nwin)[None, :]
    frames = (x[idx] - means[:, None]) * window[None, :]
    nfft = 1 << int(math.ceil(math.log2(2 * nwin)))
    spec = np.fft.rfft(frames, nfft, axis=1)
    ac = np.fft.irfft(spec.real**2 + spec.imag**2, nfft, axis=1)[:, : maxlag + 2]
    r = np.zeros_like(ac)
    ok = ac[:, 0] > 0
    r[ok] = ac[ok] / (ac[ok, :1] * win_r[None, :])
    return r


def _twin_cc(x, starts, spans, nwin, maxlag, means):
    n_frames = starts.shape[0]
    r = np.zeros((n_frames, maxlag + 2))
    for f in range(n_frames):
        seg = x[starts[f] : starts[f] + spans[f]] - means[f]
        lmax = spans[f] - nwin
        a = seg[:nwin]
        sumx2 = float(np.dot(a, a))
        sq = seg * seg
        c = np.concatenate(([0.0], np.cumsum(sq)))
        lags = np.arange(0, lmax + 1)
        sumy2 = c[lags + nwin] - c[lags]
        prod = np.correlate(seg, a, "valid")[: lmax + 1]
        den = np.sqrt(sumx2 * sumy2)
        rr = np.where(den > 0, prod / np.where(den > 0, den, 1.0), 0.0)
        r[f, : lmax + 1] = rr
        r[f, 0] = 1.0
    return r


def _twin_viterbi(freq, strength, ceiling, vt, octave_cost, jump_cost, vu_cost, intensity, silence_threshold):
    n_frames, n_cand = freq.shape
    voiced = (freq > 0) & (freq < ceiling)
    valid = freq >= 0
    if silence_threshold <= 0:
        unv = np.zeros(n_frames)
    else:
        unv = 2.0 - intensity / (silence_threshold / (1.0 + vt))
    unv = vt + np.maximum(unv, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        vs = strength - octave_cost * np.log2(ceiling / np.where(voiced, freq, 1.0))
    delta = np.where(voiced, vs, unv[:, None])
    delta = np.where(valid, delta, -np.inf)
    psi = np.zeros((n_frames, n_cand), dtype=np.int64)
    safe = np.where(voiced, freq, 1.0)
    for t in range(1, n_frames):
        pv = voiced[t - 1][:, None]
        cv = voiced[t][None, :]
        jump = jump_cost * np.abs(np.log2(safe[t - 1][:, None] / safe[t][None, :]))
        cost = np.where(cv, np.where(pv, jump, vu_cost), np.where(pv, vu_cost, 0.0))
        total = delta[t - 1][:, None] - cost
        total = np.where(valid[t - 1][:, None], total, -np.inf)
        place = np.argmax(total, axis=0)
        psi[t] = place
        delta[t] = np.where(valid[t], delta[t] + total[place, np.arange(n_cand)], -np.inf)
    path = np.zeros(n_frames, dtype=np.int64)
    if n_frames:
        path[-1] = int(np.argmax(delta[-1]))
        for t in range(n_frames - 1, 0, -1):
            path[t - 1] = psi[t, path[t]]
    rows = np.arange(n_frames)
    f = freq[rows, path]
    s = strength[rows, path]
    return np.where(voiced[rows, path], f, 0.0), s


def _pitch_at_py(f0, t1, dt, t):
    """Praat's Pitch_getValueAtTime (linear): NaN if the nearest frame is unvoiced."""
    n = f0.shape[0]
    ireal = (t - t1) / dt
    ileft = math.floor(ireal)
    phase = ireal - ileft
    if phase < 0.5:
        inear, ifar = ileft, ileft + 1
    else:
        inear, ifar = ileft + 1, ileft
        phase = 1.0 - phase
    if inear < 0 or inear >= n:
        return math.nan
    fnear = f0[inear]
    if not fnear > 0:
        return math.nan
    if ifar < 0 or ifar >= n:
        return fnear
    ffar = f0[ifar]
    if not ffar > 0:
        return fnear
    return fnear + phase * (ffar - fnear)


def _voiced_interval_after(f0, t1, dt, after, xmax):
    n = f0.shape[0]
    ileft = int(math.ceil((after - t1) / dt))
    if ileft >= n:
        return False, 0.0, 0.0
    if ileft < 0:
        ileft = 0
    while ileft < n and not f0[ileft] > 0:
        ileft += 1
    if ileft >= n:
        return False, 0.0, 0.0
    iright = ileft
    while iright < n and f0[iright] > 0:
        iright += 1
    iright -= 1
    tleft = t1 + ileft * dt - 0.5 * dt
    tright = t1 + iright * dt + 0.5 * dt
    if tleft >= xmax - 0.5 * dt:
        return False, 0.0, 0.0
    return True, max(tleft, 0.0), min(tright, xmax)


def _find_extremum_py(x, sr, tmin, tmax):
    n = x.shape[0]
    imin = max(int(math.floor(tmin * sr - 0.5)), 0)
    imax = min(int(math.ceil(tmax * sr - 0.5)), n - 1)
    if imax < imin:
        return 0.5 * (tmin + tmax)
    best = imin
    bestv = -1.0
    for i in range(imin, imax + 1):
        v = abs(x[i])
        if v > bestv:
            bestv = v
            best = i
    return (best + 0.5) / sr


@njit(cache=True)
def _refine_peak(best, r1b, r3b, ir, t1, ileft1, sr, peak):
    """Parabolic refinement of the best correlation peak (kernel and twin): (r, time of the peak, amplitude)."""
    if best > -1.0:
        d2r = 2.0 * best - r1b - r3b
        if d2r != 0.0:
            dr = 0.5 * (r3b - r1b)
            best += 0.5 * dr * dr / d2r
            ir += dr / d2r
        return best, t1 + (ir - ileft1) / sr, peak
    return -1.0, t1, 0.0


def _twin_max_corr(x, sr, t1, window_length, tmin2, tmax2):
    """Praat's Sound_findMaximumCorrelation, vectorized over candidate shifts."""
    n = x.shape[0]
    half = 0.5 * window_length
    ileft1 = int(round((t1 - half) * sr - 0.5))
    iright1 = int(round((t1 + half) * sr - 0.5))
    lo2 = int(math.floor((tmin2 - half) * sr - 0.5))
    hi2 = int(math.ceil((tmax2 - half) * sr - 0.5))
    if hi2 < lo2:
        return -1.0, t1, 0.0
    w = iright1 - ileft1 + 1
    shifts = np.arange(lo2, hi2 + 1)
    i1 = ileft1 + np.arange(w)
    i2 = shifts[:, None] + np.arange(w)[None, :]
    ok = (i1[None, :] >= 0) & (i1[None, :] < n) & (i2 >= 0) & (i2 < n)
    a1 = np.where(ok, x[np.clip(i1, 0, n - 1)][None, :], 0.0)
    a2 = np.where(ok, x[np.clip(i2, 0, n - 1)], 0.0)
    norm1 = (a1 * a1).sum(axis=1)
    norm2 = (a2 * a2).sum(axis=1)
    prod = (a1 * a2).sum(axis=1)
    peaks = np.abs(a2).max(axis=1)
    den = np.sqrt(norm1 * norm2)
    r3s = np.where((prod != 0.0) & (den > 0), prod / np.where(den > 0, den, 1.0), 0.0)
    best, r1b, r3b, ir, peak = -1.0, 0.0, 0.0, 0, 0.0
    r1 = r2 = r3 = 0.0
    for k in range(shifts.shape[0]):
        r1, r2, r3 = r2, r3, float(r3s[k])
        if r2 > best and r2 >= r1 and r2 >= r3:
            r1b, best, r3b = r1, r2, r3
            ir = float(shifts[k] - 1)
            peak = float(peaks[k - 1]) if k >= 1 else 0.0
    return _refine_peak(best, r1b, r3b, ir, t1, ileft1, sr, peak)


def _twin_pulses(x, sr, f0, t1, dt):
    xmax = x.shape[0] / sr
    global_peak = float(np.abs(x).max())
    points = []
    t = 0.0
    added_right = -1e308
    while True:
        found, tleft, tright = _voiced_interval_after(f0, t1, dt, t, xmax)
        if not found:
            break
        tmid = 0.5 * (tleft + tright)
        f0mid = _pitch_at_py(f0, t1, dt, tmid)
        if math.isnan(f0mid):  # cannot happen for a voiced stretch; be safe
            t = tright
            continue
        tmax = _find_extremum_py(x, sr, tmid - 0.5 / f0mid, tmid + 0.5 / f0mid)
        points.append(tmax)
        tsave = tmax
        while True:
            f = _pitch_at_py(f0, t1, dt, tmax)
            if math.isnan(f):
                break
            corr, tmax, peak = _twin_max_corr(x, sr, tmax, 1.0 / f, tmax - 1.25 / f, tmax - 0.8 / f)
            if corr == -1.0:
                tmax -= 1.0 / f
            if tmax < tleft:
                if corr > 0.7 and peak > 0.023333 * global_peak and tmax - added_right > 0.8 / f:
                    points.append(tmax)
                break
            if corr > 0.3 and (peak == 0.0 or peak > 0.01 * global_peak):
                if tmax - added_right > 0.8 / f:
                    points.append(tmax)
        tmax = tsave
        while True:
            f = _pitch_at_py(f0, t1, dt, tmax)
            if math.isnan(f):
                break
            corr, tmax, peak = _twin_max_corr(x, sr, tmax, 1.0 / f, tmax + 0.8 / f, tmax + 1.25 / f)
            if corr == -1.0:
                tmax += 1.0 / f
            if tmax > tright:
                if corr > 0.7 and peak > 0.023333 * global_peak:
                    points.append(tmax)
                    added_right = tmax
                break
            if corr > 0.3 and (peak == 0.0 or peak > 0.01 * global_peak):
                points.append(tmax)
                added_right = tmax
        t = tright
    return _unique_sorted(np.asarray(points, dtype=np.float64))


def _unique_sorted(points):
    """A PointProcess keeps sorted, distinct times (addPoint ignores duplicates)."""
    if points.size == 0:
        return points
    return np.unique(points)


# ------------------------------ Numba kernels -----------------------------


@njit
def _ac_kernel(x, starts, nwin, window, win_r, maxlag, means, out):
    n_frames = starts.shape[0]
    buf = np.empty(nwin)
    for f in range(n_frames):
        s = starts[f]
        m = means[f]
        for i in range(nwin):
            buf[i] = (x[s + i] - m) * window[i]
        ac0 = 0.0
        for i in range(nwin):
            ac0 += buf[i] * buf[i]
        for lag in range(maxlag + 2):
            if ac0 <= 0.0:
                out[f, lag] = 0.0
                continue
            acc = 0.0
            for i in range(nwin - lag):
                acc += buf[i] * buf[i + lag]
            out[f, lag] = acc / (ac0 * win_r[lag])


@njit
def _cc_kernel(x, starts, spans, nwin, maxlag, means, out):
    n_frames = starts.shape[0]
    for f in range(n_frames):
        s = starts[f]
        m = means[f]
        lmax = spans[f] - nwin
        for lag in range(maxlag + 2):
            out[f, lag] = 0.0
        sumx2 = 0.0
        for i in range(nwin):
            v = x[s + i] - m
            sumx2 += v * v
        out[f, 0] = 1.0
        for lag in range(1, lmax + 1):
            sumy2 = 0.0
            prod = 0.0
            for j in range(nwin):
                a = x[s + j] - m
                b = x[s + lag + j] - m
                prod += a * b
                sumy2 += b * b
            den = math.sqrt(sumx2 * sumy2)
            out[f, lag] = prod / den if den > 0.0 else 0.0


@njit
def _viterbi_kernel(freq, strength, ceiling, vt, octave_cost, jump_cost, vu_cost, intensity, silence_threshold,
                    f0_out, s_out):
    n_frames, n_cand = freq.shape
    delta = np.empty((n_frames, n_cand))
    psi = np.zeros((n_frames, n_cand), dtype=np.int64)
    for t in range(n_frames):
        if silence_threshold <= 0:
            unv = 0.0
        else:
            unv = 2.0 - intensity[t] / (silence_threshold / (1.0 + vt))
        unv = vt + (unv if unv > 0 else 0.0)
        for c in range(n_cand):
            fq = freq[t, c]
            if fq < 0:
                delta[t, c] = -np.inf
            elif fq > 0 and fq < ceiling:
                delta[t, c] = strength[t, c] - octave_cost * math.log2(ceiling / fq)
            else:
                delta[t, c] = unv
    for t in range(1, n_frames):
        for c2 in range(n_cand):
            f2 = freq[t, c2]
            if f2 < 0:
                continue
            cur_v = f2 > 0 and f2 < ceiling
            best = -np.inf
            place = 0
            for c1 in range(n_cand):
                f1 = freq[t - 1, c1]
                if f1 < 0:
                    continue
                prev_v = f1 > 0 and f1 < ceiling
                if cur_v:
                    cost = jump_cost * abs(math.log2(f1 / f2)) if prev_v else vu_cost
                else:
                    cost = vu_cost if prev_v else 0.0
                val = delta[t - 1, c1] - cost
                if val > best:
                    best = val
                    place = c1
            delta[t, c2] += best
            psi[t, c2] = place
    if n_frames == 0:
        return
    cur = 0
    best = -np.inf
    for c in range(n_cand):
        if delta[n_frames - 1, c] > best:
            best = delta[n_frames - 1, c]
            cur = c
    for t in range(n_frames - 1, -1, -1):
        fq = freq[t, cur]
        f0_out[t] = fq if (fq > 0 and fq < ceiling) else 0.0
        s_out[t] = strength[t, cur]
        if t > 0:
            cur = psi[t, cur]


_pitch_at_nb = njit(inline="always")(_pitch_at_py)
_interval_nb = njit(_voiced_interval_after)
_extremum_nb = njit(_find_extremum_py)


@njit
def _max_corr_nb(x, sr, t1, window_length, tmin2, tmax2):
    n = x.shape[0]
    half = 0.5 * window_length
    ileft1 = int(np.round((t1 - half) * sr - 0.5))
    iright1 = int(np.round((t1 + half) * sr - 0.5))
    lo2 = int(math.floor((tmin2 - half) * sr - 0.5))
    hi2 = int(math.ceil((tmax2 - half) * sr - 0.5))
    best, r1b, r3b, ir, peak = -1.0, 0.0, 0.0, 0.0, 0.0
    r1 = 0.0
    r2 = 0.0
    r3 = 0.0
    prev_peak = 0.0
    for k, ileft2 in enumerate(range(lo2, hi2 + 1)):
        norm1 = 0.0
        norm2 = 0.0
        prod = 0.0
        lp = 0.0
        for d in range(iright1 - ileft1 + 1):
            i1 = ileft1 + d
            i2 = ileft2 + d
            if i1 < 0 or i1 >= n or i2 < 0 or i2 >= n:
                continue
            a1 = x[i1]
            a2 = x[i2]
            norm1 += a1 * a1
            norm2 += a2 * a2
            prod += a1 * a2
            if abs(a2) > lp:
                lp = abs(a2)
        den = math.sqrt(norm1 * norm2)
        r1 = r2
        r2 = r3
        r3 = prod / den if (prod != 0.0 and den > 0.0) else 0.0
        if r2 > best and r2 >= r1 and r2 >= r3:
            r1b = r1
            best = r2
            r3b = r3
            ir = float(ileft2 - 1)
            peak = prev_peak if k >= 1 else 0.0
        prev_peak = lp
    return _refine_peak(best, r1b, r3b, ir, t1, ileft1, sr, peak)


@njit
def _pulses_kernel(x, sr, f0, t1, dt):
    xmax = x.shape[0] / sr
    global_peak = 0.0
    for i in range(x.shape[0]):
        if abs(x[i]) > global_peak:
            global_peak = abs(x[i])
    points = np.empty(16)
    npts = 0
    t = 0.0
    added_right = -1e308
    while True:
        found, tleft, tright = _interval_nb(f0, t1, dt, t, xmax)
        if not found:
            break
        tmid = 0.5 * (tleft + tright)
        f0mid = _pitch_at_nb(f0, t1, dt, tmid)
        if math.isnan(f0mid):
            t = tright
            continue
        tmax = _extremum_nb(x, sr, tmid - 0.5 / f0mid, tmid + 0.5 / f0mid)
        tsave = tmax
        for direction in (-1, 1):
            if direction == -1:
                if npts == points.shape[0]:
                    points = np.concatenate((points, np.empty(points.shape[0])))
                points[npts] = tmax
                npts += 1
                tsave = tmax
            else:
                tmax = tsave
            while True:
                f = _pitch_at_nb(f0, t1, dt, tmax)
                if math.isnan(f):
                    break
                if direction == -1:
                    corr, tmax, peak = _max_corr_nb(x, sr, tmax, 1.0 / f, tmax - 1.25 / f, tmax - 0.8 / f)
                    if corr == -1.0:
                        tmax -= 1.0 / f
                    add = False
                    stop = tmax < tleft
                    if stop:
                        add = corr > 0.7 and peak > 0.023333 * global_peak and tmax - added_right > 0.8 / f
                    elif corr > 0.3 and (peak == 0.0 or peak > 0.01 * global_peak):
                        add = tmax - added_right > 0.8 / f
                else:
                    corr, tmax, peak = _max_corr_nb(x, sr, tmax, 1.0 / f, tmax + 0.8 / f, tmax + 1.25 / f)
                    if corr == -1.0:
                        tmax += 1.0 / f
                    stop = tmax > tright
                    if stop:
                        add = corr > 0.7 and peak > 0.023333 * global_peak
                    else:
                        add = corr > 0.3 and (peak == 0.0 or peak > 0.01 * global_peak)
                    if add:
                        added_right = tmax
                if add:
                    if npts == points.shape[0]:
                        points = np.concatenate((points, np.empty(points.shape[0])))
                    points[npts] = tmax
                    npts += 1
                if stop:
                    break
        t = tright
    return np.unique(points[:npts])


# --------------------------------------------------------------------------
# Shared (cheap, vectorized) steps
# --------------------------------------------------------------------------


def _candidates(r, sr, minlag, maxlag, vt, octave_cost, fmin, reflect=True):
    """Up to 15 lag peaks per frame -> (freq, strength), column 0 unvoiced, -1 unused."""
    n_frames = r.shape[0]
    i = np.arange(max(minlag, 2), maxlag)
    freq = np.full((n_frames, _MAX_CANDIDATES + 1), -1.0)
    strength = np.zeros_like(freq)
    freq[:, 0] = 0.0
    if i.size == 0 or n_frames == 0:
        return freq, strength
    rm, r0, rp = r[:, i - 1], r[:, i], r[:, i + 1]
    is_peak = (r0 > 0.5 * vt) & (r0 > rm) & (r0 >= rp)
    dr = 0.5 * (rp - rm)
    d2r = 2.0 * r0 - rm - rp
    safe = np.where(d2r != 0, d2r, 1.0)
    lag = i[None, :] + np.where(d2r != 0, dr / safe, 0.0)
    fq = sr / lag
    st = r0 + np.where(d2r != 0, 0.5 * dr * dr / safe, 0.0)
    if reflect:
        st = np.where(st > 1.0, 1.0 / np.where(st > 1.0, st, 1.0), st)
    with np.errstate(divide="ignore", invalid="ignore"):
        rank = np.where(is_peak, st - octave_cost * np.log2(fmin / np.where(is_peak, fq, fmin)), -np.inf)
    k = min(_MAX_CANDIDATES, i.size)
    order = np.argsort(-rank, axis=1, kind="stable")[:, :k]
    rows = np.arange(n_frames)[:, None]
    chosen = is_peak[rows, order]
    freq[:, 1 : k + 1] = np.where(chosen, fq[rows, order], -1.0)
    strength[:, 1 : k + 1] = np.where(chosen, st[rows, order], 0.0)
    return freq, strength


def _pitch_track(x, sr, fmin, fmax, *, periods, time_step, silence_threshold, vt, octave_cost, jump_cost,
                 vu_cost, cc, reflect=True):
    """Praat's Sound_to_Pitch_any (ac with Hann window, or forward cc)."""
    n = x.shape[0]
    xs = x - x.mean()
    global_peak = float(np.abs(xs).max())
    fr = _Frames(n, sr, fmin, periods, time_step, cc)
    minlag = max(2, int(math.floor(sr / fmax)))
    means, peaks, intensity = _local_means_and_peaks(xs, fr, global_peak)
    jit = _config.use_jit()
    if cc:
        if jit:
            r = np.empty((fr.n_frames, fr.maxlag + 2))
            _cc_kernel(xs, fr.cc_start, fr.cc_span, fr.nwin, fr.maxlag, means, r)
        else:
            r = _twin_cc(xs, fr.cc_start, fr.cc_span, fr.nwin, fr.maxlag, means)
    else:
        window = _hann(fr.nwin)
        win_r = _window_autocorr(window, fr.maxlag)
        if jit:
            r = np.empty((fr.n_frames, fr.maxlag + 2))
            _ac_kernel(xs, fr.win_start, fr.nwin, window, win_r, fr.maxlag, means, r)
        else:
            r = _twin_ac(xs, fr.win_start, fr.nwin, window, win_r, fr.maxlag, means)
    freq, strength = _candidates(r, sr, minlag, fr.maxlag, vt, octave_cost, fmin, reflect)
    freq[peaks == 0.0, 1:] = -1.0  # absolute silence is always voiceless
    args = (freq, strength, float(fmax), vt, octave_cost, jump_cost * 0.01 / time_step,
            vu_cost * 0.01 / time_step, intensity, silence_threshold)
    if jit:
        f0 = np.zeros(fr.n_frames)
        s = np.zeros(fr.n_frames)
        _viterbi_kernel(*args, f0, s)
    else:
        f0, s = _twin_viterbi(*args)
    return fr, f0, s


def _period_ok(t, i, pmin, pmax, factor):
    """Praat's PointProcess_isPeriod for the interval t[i]..t[i+1] (0-based)."""
    n = t.shape[0]
    if i < 0 or i + 1 >= n:
        return False
    if pmin == pmax:
        return True
    interval = t[i + 1] - t[i]
    if interval <= 0 or interval < pmin or interval > pmax:
        return False
    prev_f = interval / (t[i] - t[i - 1]) if i >= 1 else math.nan
    next_f = interval / (t[i + 2] - t[i + 1]) if i + 2 < n else math.nan
    if math.isnan(prev_f) and math.isnan(next_f):
        return True
    if prev_f < 1.0:
        prev_f = 1.0 / prev_f
    if next_f < 1.0:
        next_f = 1.0 / next_f
    return not (prev_f > factor and next_f > factor)


def _jitter_local(pulses, *, period_floor=1e-4, period_ceiling=0.02, max_period_factor=1.3):
    """Praat's PointProcess_getJitter_local over all pulses (None if < 2 periods)."""
    t = np.asarray(pulses, dtype=np.float64)
    n = t.shape[0]
    if n < 3:
        return None
    n_periods = n - 1
    total = 0.0
    for i in range(1, n - 1):
        p1, p2 = t[i] - t[i - 1], t[i + 1] - t[i]
        ratio = p1 / p2 if p1 > p2 else p2 / p1
        if period_floor == period_ceiling or (
            period_floor <= p1 <= period_ceiling and period_floor <= p2 <= period_ceiling
            and ratio <= max_period_factor
        ):
            total += abs(p1 - p2)
        else:
            n_periods -= 1
    if n_periods < 2:
        return None
    count, psum = 0, 0.0
    for i in range(n - 1):
        if _period_ok(t, i, period_floor, period_ceiling, max_period_factor):
            psum += t[i + 1] - t[i]
            count += 1
    if count == 0 or psum <= 0:
        return None
    return total / (n_periods - 1) / (psum / count)


def _hann_rms(x, sr, tmid, wl, wr):
    n = x.shape[0]
    imin = max(int(math.floor((tmid - wl) * sr - 0.5)) + 1, 0)  # Sampled_getWindowSamples
    imax = min(int(math.ceil((tmid + wr) * sr - 0.5)) - 1, n - 1)
    if imax - imin + 1 < 3:
        return math.nan
    ts = (np.arange(imin, imax + 1) + 0.5) / sr
    width = np.where(ts < tmid, wl, wr)
    w = 0.5 + 0.5 * np.cos(np.pi * (ts - tmid) / width)
    v = x[imin : imax + 1] * w
    return math.sqrt(float(np.dot(v, v)) / float(np.dot(w, w)))


def _shimmer_local_db(x, sr, pulses, *, period_floor=1e-4, period_ceiling=0.02, max_period_factor=1.3,
                     max_amplitude_factor=1.6):
    """Praat's PointProcess_Sound_getShimmer_local_dB (None if no usable pair)."""
    t = np.asarray(pulses, dtype=np.float64)
    n = t.shape[0]
    if n < 3:
        return None
    times, amps = [], []
    for i in range(1, n - 1):
        p1, p2 = t[i] - t[i - 1], t[i + 1] - t[i]
        ratio = p1 / p2 if p1 > p2 else p2 / p1
        if period_floor == period_ceiling or (
            period_floor <= p1 <= period_ceiling and period_floor <= p2 <= period_ceiling
            and ratio <= max_period_factor
        ):
            a = _hann_rms(x, sr, t[i], 0.2 * p1, 0.2 * p2)
            if a == a and a > 0:
                times.append(t[i])
                amps.append(a)
    total, count = 0.0, 0
    for k in range(1, len(amps)):
        period = times[k] - times[k - 1]
        if period_floor == period_ceiling or period_floor <= period <= period_ceiling:
            a, b = amps[k - 1], amps[k]
            factor = a / b if a > b else b / a
            if factor <= max_amplitude_factor:
                total += abs(math.log10(a / b))
                count += 1
    if count < 1:
        return None
    return 20.0 * total / count


def _hnr_from_strength(f0, s):
    r = np.asarray(s, dtype=np.float64)
    voiced = f0 > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        db = 10.0 * np.log10(r / (1.0 - r))
    db = np.where(r <= 1e-15, -150.0, np.where(r > 1.0 - 1e-15, 150.0, db))
    return np.where(voiced, db, _UNVOICED_DB)


# --------------------------------------------------------------------------
# Public wrapper
# --------------------------------------------------------------------------


def voice_quality(
    y,
    sr,
    fmin=75.0,
    fmax=500.0,
    *,
    period_floor=1e-4,
    period_ceiling=0.02,
    max_period_factor=1.3,
    max_amplitude_factor=1.6,
    silence_threshold=0.03,
    voicing_threshold=0.45,
    octave_cost=0.01,
    octave_jump_cost=0.35,
    voiced_unvoiced_cost=0.14,
    hnr_time_step=0.01,
    hnr_silence_threshold=0.1,
    hnr_periods_per_window=1.0,
    nan_policy="raise",
):
    """Local jitter, local shimmer (dB) and HNR (dB) of one utterance, as Praat.

    ``y``: mono float32/float64 audio at ``sr`` Hz. ``fmin``/``fmax``: pitch
    range in Hz for period marking (Praat's 75/500); ``fmin`` is also the
    HNR analysis floor. Returns :class:`VoiceQuality`; see the module
    docstring for the algorithm and how it differs from Praat.
    """
    sr = check_rate(sr)
    fmin = check_real(fmin, "fmin", minimum=0.0, strict_min=True)
    fmax = check_real(fmax, "fmax", minimum=0.0, strict_min=True)
    if fmin >= fmax:
        raise ParameterError(
            f"fmin={fmin!r} must be below fmax={fmax!r} (the pitch range in Hz, e.g. fmin=75, fmax=500); "
            "swap or widen them"
        )
    if fmax > sr / 2:
        raise ParameterError(f"fmax={fmax!r} must be <= sr/2 = {sr / 2} (Nyquist); lower fmax or resample")
    if fmin * 3 > sr / 4:
        raise ParameterError(f"fmin={fmin!r} is too high for sr={sr}: a period must span at least 12 samples")
    period_floor = check_real(period_floor, "period_floor", minimum=0.0)
    period_ceiling = check_real(period_ceiling, "period_ceiling", minimum=period_floor)
    max_period_factor = check_real(max_period_factor, "max_period_factor", minimum=1.0)
    max_amplitude_factor = check_real(max_amplitude_factor, "max_amplitude_factor", minimum=1.0)
    silence_threshold = check_real(silence_threshold, "silence_threshold", minimum=0.0, maximum=1.0)
    voicing_threshold = check_real(voicing_threshold, "voicing_threshold", minimum=0.0, maximum=1.0)
    octave_cost = check_real(octave_cost, "octave_cost", minimum=0.0)
    octave_jump_cost = check_real(octave_jump_cost, "octave_jump_cost", minimum=0.0)
    voiced_unvoiced_cost = check_real(voiced_unvoiced_cost, "voiced_unvoiced_cost", minimum=0.0)
    hnr_time_step = check_real(hnr_time_step, "hnr_time_step", minimum=0.0, strict_min=True)
    hnr_silence_threshold = check_real(hnr_silence_threshold, "hnr_silence_threshold", minimum=0.0, maximum=1.0)
    hnr_periods_per_window = check_real(hnr_periods_per_window, "hnr_periods_per_window", minimum=0.5)
    # The pitch analysis needs 3 periods of fmin, the HNR one window + one period.
    need = max(3.0 / fmin, (1.0 + hnr_periods_per_window) / fmin) + 2.0 / sr
    min_length = int(math.ceil(need * sr))
    y = prepare_signal(
        y, "y", min_length=min_length, nan_policy=nan_policy,
        length_hint=f" (3 periods of fmin={fmin:g} Hz = {min_length} samples at sr={sr:g})",
    )
    dtype = y.dtype
    x = y.astype(np.float64)
    if not np.any(x != x[0]):  # constant (e.g. digital silence): nothing periodic to measure
        fr = _Frames(x.shape[0], sr, fmin, 3.0, 0.75 / fmin, False)
        hf = _Frames(x.shape[0], sr, fmin, hnr_periods_per_window, hnr_time_step, True)
        return VoiceQuality(None, None, None, 0, 0, "no_voiced_frames", np.zeros(fr.n_frames, dtype),
                            fr.times, np.full(hf.n_frames, _UNVOICED_DB, dtype), hf.times, np.zeros(0))
    fr, f0, _ = _pitch_track(
        x, sr, fmin, fmax, periods=3.0, time_step=0.75 / fmin, silence_threshold=silence_threshold,
        vt=voicing_threshold, octave_cost=octave_cost, jump_cost=octave_jump_cost,
        vu_cost=voiced_unvoiced_cost, cc=False,
    )
    hf, hf0, hs = _pitch_track(
        x, sr, fmin, sr / 2, periods=hnr_periods_per_window, time_step=hnr_time_step,
        silence_threshold=hnr_silence_threshold, vt=0.0, octave_cost=0.0, jump_cost=0.0, vu_cost=0.0, cc=True,
    )
    hnr_frames = _hnr_from_strength(hf0, hs)
    voiced_hnr = hnr_frames[hnr_frames != _UNVOICED_DB]
    hnr = float(voiced_hnr.mean()) if voiced_hnr.size else None
    voiced_frames = int(np.count_nonzero(f0 > 0))
    if voiced_frames:
        if _config.use_jit():
            pulses = _pulses_kernel(x, sr, f0, fr.t1, fr.dt)
        else:
            pulses = _twin_pulses(x, sr, f0, fr.t1, fr.dt)
    else:
        pulses = np.zeros(0)
    kw = dict(period_floor=period_floor, period_ceiling=period_ceiling, max_period_factor=max_period_factor)
    jit_v = _jitter_local(pulses, **kw)
    shim = _shimmer_local_db(x, sr, pulses, max_amplitude_factor=max_amplitude_factor, **kw)
    if voiced_frames == 0:
        status, hnr = "no_voiced_frames", None
    elif jit_v is None or shim is None:
        status = "too_few_periods"
    else:
        status = "ok"
    return VoiceQuality(
        jitter_local=jit_v,
        shimmer_local_db=shim,
        hnr_db=hnr,
        voiced_frames=voiced_frames,
        n_pulses=int(pulses.shape[0]),
        status=status,
        f0=f0.astype(dtype),
        f0_times=fr.times,
        hnr_frames=hnr_frames.astype(dtype),
        hnr_times=hf.times,
        pulses=pulses,
    )
