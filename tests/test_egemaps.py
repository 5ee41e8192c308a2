"""eGeMAPS v02 extractor: openSMILE's names and frame grid, parity on real speech, analytic checks, junk input."""

import numpy as np
import pytest

from affectedge import ParameterError
from affectedge.io import read_wav
from affectedge.native_kernels import _config
from affectedge.native_kernels.gemaps import (FUNCTIONAL_NAMES, LLD_NAMES, _frame_jitter_shimmer, _hnr_kernel,
                                               _pulses_kernel, _twin_hnr, _twin_pulses, egemaps, egemaps_llds)

SR = 16000
N_CLIPS = 12
# Pearson r across clips with openSMILE 2.6.0's eGeMAPSv02 functionals (measured on these clips, minus a margin):
# features whose definitions follow the paper closely enough to track openSMILE's.
PARITY_MIN_R = {
    "F0semitoneFrom27.5Hz_sma3nz_amean": 0.95,
    "F0semitoneFrom27.5Hz_sma3nz_percentile50.0": 0.95,
    "loudness_sma3_amean": 0.95,
    "loudness_sma3_percentile80.0": 0.95,
    "mfcc1_sma3_amean": 0.98,
    "mfcc2_sma3_amean": 0.98,
    "mfcc3_sma3_amean": 0.98,
    "mfcc4_sma3_amean": 0.98,
    "hammarbergIndexV_sma3nz_amean": 0.95,
    "alphaRatioV_sma3nz_amean": 0.95,
    "slopeV0-500_sma3nz_amean": 0.95,
    "HNRdBACF_sma3nz_amean": 0.7,
    "equivalentSoundLevel_dBp": 0.99,
    "loudnessPeaksPerSec": 0.85,
}
JITTER_TOL = 0.002  # absolute, on a pulse train with 2 % period alternation
SHIMMER_TOL_DB = 0.1
PARITY_TOL = {np.float32: 1e-4, np.float64: 1e-9}  # JIT vs NumPy twin, relative to each column's scale


def _clips(shared_data, n):
    paths = sorted((shared_data / "speech" / "emodb" / "wav").glob("*.wav"))
    assert len(paths) >= n
    return [read_wav(p) for p in paths[:: len(paths) // n][:n]]


def test_names_and_frame_grid_match_opensmile(shared_data):
    opensmile = pytest.importorskip("opensmile")
    fun = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                          feature_level=opensmile.FeatureLevel.Functionals)
    lld = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                          feature_level=opensmile.FeatureLevel.LowLevelDescriptors)
    assert list(fun.feature_names) == list(FUNCTIONAL_NAMES)
    assert list(lld.feature_names) == list(LLD_NAMES)
    for y, sr in _clips(shared_data, 3):
        assert egemaps_llds(y, sr).n_frames == lld.process_signal(y, sr).shape[0]


def test_functionals_track_opensmile(shared_data):
    opensmile = pytest.importorskip("opensmile")
    fun = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                          feature_level=opensmile.FeatureLevel.Functionals)
    ours, theirs = [], []
    for y, sr in _clips(shared_data, N_CLIPS):
        e = egemaps(y, sr)
        assert e.status == "ok" and e.functionals.shape == (88,) and np.isfinite(e.functionals).all()
        ours.append(e.functionals)
        theirs.append(fun.process_signal(y, sr).to_numpy()[0])
    O, T = np.array(ours, np.float64), np.array(theirs, np.float64)
    low = {}
    for name, need in PARITY_MIN_R.items():
        j = FUNCTIONAL_NAMES.index(name)
        r = np.corrcoef(O[:, j], T[:, j])[0, 1]
        if not r >= need:
            low[name] = round(float(r), 3)
    assert not low, f"functionals below their named r with openSMILE: {low}"


def _pulse_train(periods, amps, sr=SR):
    y = np.zeros(int(sum(periods)) + 2000)
    pos = 1000
    # a damped resonance per glottal pulse: one sharp peak per period
    t = np.arange(80)
    kernel = np.exp(-t / 12.0) * np.cos(2 * np.pi * 600 * t / sr)
    for p, a in zip(periods, amps):
        y[pos:pos + 80] += a * kernel
        pos += int(p)
    return y


def test_jitter_and_shimmer_on_a_known_pulse_train():
    n = 300
    periods = np.where(np.arange(n) % 2 == 0, 100, 102)  # local jitter 2 / 101
    amps = np.where(np.arange(n) % 2 == 0, 0.5, 0.45)  # local shimmer 20 log10(0.5 / 0.45) dB
    y = _pulse_train(periods, amps)
    hop, win = 160, 960
    n_frames = 1 + (y.size - win) // hop
    f0 = np.full(n_frames, SR / 101.0)
    f0[: 1000 // hop + 1] = 0  # the leading silence
    f0[(1000 + int(periods.sum())) // hop - 6:] = 0
    for impl in (_twin_pulses, _pulses_kernel):
        pos, amp, new = impl(y, f0, hop, win // 2, float(SR), 0.5, 0.1)
        jit, shim = _frame_jitter_shimmer(pos, amp, new, n_frames, hop, win)
        inner = slice(15, n_frames - 20)
        assert np.median(jit[inner]) == pytest.approx(2 / 101, abs=JITTER_TOL)
        assert np.median(shim[inner]) == pytest.approx(20 * np.log10(0.5 / 0.45), abs=SHIMMER_TOL_DB)


def test_hnr_orders_clean_and_noisy_voice(rng):
    t = np.arange(SR) / SR
    clean = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 8))
    noisy = clean + rng.standard_normal(SR) * np.std(clean)  # 0 dB
    f0 = np.full(1 + (SR - 960) // 160, 150.0)
    for impl in (_twin_hnr, _hnr_kernel):
        h_clean = impl(clean, f0, 160, 960, float(SR), 0.01, 0.9999)
        h_noisy = impl(noisy, f0, 160, 960, float(SR), 0.01, 0.9999)
        assert np.median(h_clean) > 30
        assert -3 < np.median(h_noisy) < 3  # r = 0.5 at 0 dB SNR gives 0 dB HNR


@pytest.mark.skipif(not _config.JIT_ENABLED, reason="numba is unavailable or AFFECTEDGE_DISABLE_JIT is set")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_jit_matches_twin(shared_data, dtype):
    previous = _config.use_jit()
    try:
        for y, sr in _clips(shared_data, 2):
            y = y.astype(dtype)
            _config.set_jit(True)
            a = egemaps(y, sr)
            _config.set_jit(False)
            b = egemaps(y, sr)
            assert a.functionals.dtype == b.functionals.dtype == dtype
            assert a.llds.dtype == dtype
            scale = np.maximum(np.abs(b.llds).max(axis=0), 1e-12)
            np.testing.assert_allclose(a.llds / scale, b.llds / scale, rtol=0, atol=PARITY_TOL[dtype])
            fs = np.maximum(np.abs(b.functionals), 1e-6)
            np.testing.assert_allclose(a.functionals / fs, b.functionals / fs, rtol=0, atol=1e3 * PARITY_TOL[dtype])
    finally:
        _config.STATE.jit = previous


def test_junk_gives_status_not_nan(rng):
    s = egemaps(np.zeros(SR, np.float32), SR)
    assert s.status == "silent" and not s.functionals.any() and np.isfinite(s.llds).all()
    n = egemaps((1e-4 * rng.standard_normal(SR)).astype(np.float32), SR)  # below the voicing energy gate
    assert n.status == "no_voiced_frames"
    assert np.isfinite(n.functionals).all()
    assert n.functionals[FUNCTIONAL_NAMES.index("F0semitoneFrom27.5Hz_sma3nz_amean")] == 0
    assert n.functionals[FUNCTIONAL_NAMES.index("loudness_sma3_amean")] > 0


def test_bad_input_raises():
    with pytest.raises(ParameterError, match="sr"):
        egemaps(np.zeros(SR), 8000)
    with pytest.raises(ParameterError, match="80 ms"):
        egemaps(np.zeros(500), SR)
    with pytest.raises(ParameterError, match="pitch_method"):
        egemaps(np.zeros(SR), SR, pitch_method="shs")
    with pytest.raises(ParameterError, match="hop_length"):
        egemaps(np.zeros(SR), SR, hop_length=0)
    with pytest.raises(ParameterError, match="nan_policy|NaN"):
        egemaps(np.r_[np.nan, np.zeros(SR)], SR)
    with pytest.raises(ParameterError, match="dtype"):
        egemaps(np.zeros(SR, np.int16), SR)
