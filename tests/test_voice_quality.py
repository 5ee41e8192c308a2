"""Voice quality (jitter, shimmer, HNR) against Praat via parselmouth on EmoDB."""

import importlib

import numpy as np
import pytest

from affectedge import ParameterError
from affectedge.io import read_wav
from affectedge.native_kernels import VoiceQuality, voice_quality

vq_module = importlib.import_module("affectedge.native_kernels.voice")

parselmouth = pytest.importorskip("parselmouth")
from parselmouth.praat import call  # noqa: E402

# Agreement with Praat across the clips (measured on the 11 clips below:
# jitter r=0.996, median rel. error 3.0 %; shimmer r=0.983, median rel. error
# 0.6 %, max abs 0.09 dB; HNR r=0.996, median abs 0.13 dB, max abs 0.46 dB).
JITTER_MIN_R = 0.95
SHIMMER_MIN_R = 0.95
HNR_MIN_R = 0.97
JITTER_MAX_MEDIAN_REL = 0.08
SHIMMER_MAX_MEDIAN_REL = 0.03
HNR_MAX_MEDIAN_ABS_DB = 0.4
HNR_MAX_ABS_DB = 1.0
PULSE_COUNT_MAX_REL = 0.05  # our pulse count vs Praat's, per clip
# The jitter/shimmer formulas themselves, given Praat's own pulses.
FORMULA_RTOL = 1e-6

STRIDE = 53  # every 53rd EmoDB file: 11 clips, all speakers/emotions mixed


@pytest.fixture(scope="module")
def praat_reference(shared_data):
    paths = sorted((shared_data / "speech" / "emodb" / "wav").glob("*.wav"))[::STRIDE]
    assert len(paths) >= 10
    refs = []
    for path in paths:
        snd = parselmouth.Sound(str(path))
        pp = call(snd, "To PointProcess (periodic, cc)", 75, 500)
        n = call(pp, "Get number of points")
        refs.append(
            dict(
                path=path,
                jitter=call(pp, "Get jitter (local)", 0, 0, 0.0001, 0.02, 1.3),
                shimmer=call([snd, pp], "Get shimmer (local_dB)", 0, 0, 0.0001, 0.02, 1.3, 1.6),
                hnr=call(call(snd, "To Harmonicity (cc)", 0.01, 75, 0.1, 1.0), "Get mean", 0, 0),
                pulses=np.array([call(pp, "Get time from index", i + 1) for i in range(n)]),
                samples=snd.values[0].copy(),
                sr=snd.sampling_frequency,
            )
        )
    return refs


def _pearson(a, b):
    return float(np.corrcoef(a, b)[0, 1])


def test_public_name_is_the_function():
    import affectedge.native_kernels as nk

    assert callable(nk.voice_quality) and nk.voice_quality is vq_module.voice_quality


def test_matches_praat_on_emodb(praat_reference):
    ours = []
    for ref in praat_reference:
        y, sr = read_wav(ref["path"])
        v = voice_quality(y, sr)
        assert v.status == "ok" and v.voiced_frames > 0
        assert abs(v.n_pulses - ref["pulses"].size) <= PULSE_COUNT_MAX_REL * ref["pulses"].size
        ours.append((v.jitter_local, v.shimmer_local_db, v.hnr_db))
    ours = np.array(ours)
    praat = np.array([(r["jitter"], r["shimmer"], r["hnr"]) for r in praat_reference])
    assert _pearson(ours[:, 0], praat[:, 0]) >= JITTER_MIN_R
    assert _pearson(ours[:, 1], praat[:, 1]) >= SHIMMER_MIN_R
    assert _pearson(ours[:, 2], praat[:, 2]) >= HNR_MIN_R
    rel = np.abs(ours - praat) / np.abs(praat)
    assert np.median(rel[:, 0]) <= JITTER_MAX_MEDIAN_REL
    assert np.median(rel[:, 1]) <= SHIMMER_MAX_MEDIAN_REL
    hnr_abs = np.abs(ours[:, 2] - praat[:, 2])
    assert np.median(hnr_abs) <= HNR_MAX_MEDIAN_ABS_DB
    assert hnr_abs.max() <= HNR_MAX_ABS_DB


def test_formulas_match_praat_given_praat_pulses(praat_reference):
    for ref in praat_reference:
        j = vq_module._jitter_local(ref["pulses"])
        s = vq_module._shimmer_local_db(ref["samples"], ref["sr"], ref["pulses"])
        assert j == pytest.approx(ref["jitter"], rel=FORMULA_RTOL)
        assert s == pytest.approx(ref["shimmer"], rel=FORMULA_RTOL)


def test_jit_matches_numpy_twin(shared_data):
    from affectedge.native_kernels import _config

    if not _config.JIT_ENABLED:
        pytest.skip("numba is not available: only the NumPy twin runs")
    paths = sorted((shared_data / "speech" / "emodb" / "wav").glob("*.wav"))[::STRIDE][:3]
    previous = _config.STATE.jit
    try:
        for path in paths:
            y, sr = read_wav(path)
            _config.set_jit(True)
            a = voice_quality(y, sr)
            _config.set_jit(False)
            b = voice_quality(y, sr)
            np.testing.assert_array_equal(a.f0, b.f0)
            np.testing.assert_allclose(a.hnr_frames, b.hnr_frames, rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(a.pulses, b.pulses, rtol=0, atol=1e-9)
            assert a.jitter_local == pytest.approx(b.jitter_local, rel=1e-9)
            assert a.shimmer_local_db == pytest.approx(b.shimmer_local_db, rel=1e-9)
            assert a.hnr_db == pytest.approx(b.hnr_db, rel=1e-9, abs=1e-9)
    finally:
        _config.STATE.jit = previous


def test_dtypes_and_synthetic_voice(kernel_mode):
    sr = 16000
    t = np.arange(int(0.6 * sr)) / sr
    f0 = 150.0 * (1 + 0.02 * np.sin(2 * np.pi * 3 * t))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    clean = sum(np.sin(k * phase) / k for k in range(1, 8))
    noisy = clean + 0.3 * np.random.default_rng(7).standard_normal(t.size)
    for dtype in (np.float32, np.float64):
        v = voice_quality((0.3 * clean).astype(dtype), sr)
        assert isinstance(v, VoiceQuality) and v.ok
        assert v.f0.dtype == dtype and v.hnr_frames.dtype == dtype
        voiced = v.f0[v.f0 > 0]
        assert np.median(voiced) == pytest.approx(150, rel=0.05)
        assert v.jitter_local < 0.01 and v.shimmer_local_db < 0.3 and v.hnr_db > 20
        assert v.as_array(dtype).dtype == dtype
    n = voice_quality((0.3 * noisy).astype(np.float32), sr)
    assert n.hnr_db < v.hnr_db - 5


def test_silence_gives_status_not_nan(kernel_mode):
    for y in (np.zeros(16000, np.float32), np.full(16000, 0.1), 1e-3 * np.random.default_rng(1).standard_normal(16000)):
        v = voice_quality(y, 16000)
        if v.voiced_frames == 0:
            assert v.status == "no_voiced_frames"
            assert v.jitter_local is None and v.shimmer_local_db is None and v.hnr_db is None
        else:  # white noise may pass a frame or two as voiced: then no confident jitter
            assert v.status in ("too_few_periods", "ok")
        for arr in (v.f0, v.hnr_frames, v.pulses):
            assert np.isfinite(arr).all()
        assert np.isfinite(v.as_array()).all()
    assert voice_quality(np.zeros(16000, np.float32), 16000).voiced_frames == 0


def test_bad_input(kernel_mode):
    y = np.zeros(16000, np.float32)
    with pytest.raises(ParameterError, match="y is empty"):
        voice_quality(np.zeros(0, np.float32), 16000)
    bad = y.copy()
    bad[5] = np.nan
    with pytest.raises(ParameterError, match="index 5"):
        voice_quality(bad, 16000)
    with pytest.raises(ParameterError, match="shorter than one frame"):
        voice_quality(y[:300], 16000)
    with pytest.raises(ParameterError, match="fmin=500.0 must be below fmax=75.0"):
        voice_quality(y, 16000, fmin=500, fmax=75)
    with pytest.raises(ParameterError, match="fmin=100.0 must be below fmax=100.0"):
        voice_quality(y, 16000, fmin=100, fmax=100)
    with pytest.raises(ParameterError, match="Nyquist"):
        voice_quality(y, 16000, fmax=9000)
    with pytest.raises(ParameterError, match="sr=0.0 must be strictly positive"):
        voice_quality(y, 0)
    with pytest.raises(ParameterError, match="int16"):
        voice_quality(np.zeros(16000, np.int16), 16000)
    with pytest.raises(ParameterError, match="mono audio"):
        voice_quality(np.zeros((2, 16000), np.float32), 16000)
