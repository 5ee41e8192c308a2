"""Pitch (YIN / pYIN): parity with librosa on real speech, JIT vs twin, streaming, bad input."""

import importlib

import numpy as np
import pytest

librosa = pytest.importorskip("librosa")

from affectedge import ParameterError
from affectedge.io import read_wav
from affectedge.native_kernels import StreamingPitch, _config, pitch

pitch_module = importlib.import_module("affectedge.native_kernels.f0")

# Named tolerances (issue 10).
VOICING_AGREEMENT_MIN = 0.98  # share of frames whose pYIN voicing equals librosa.pyin's
PYIN_MEDIAN_CENTS_MAX = 1.0  # median |cents| vs librosa.pyin on frames both call voiced
YIN_MEDIAN_CENTS_MAX = 1e-3  # median |cents| vs librosa.yin (float32 output rounding is ~3e-5 cents)
TWIN_RTOL = {np.float64: 1e-12, np.float32: 1e-5}  # JIT vs NumPy twin (float32: the two FFTs round differently)
STREAM_AGREEMENT_MIN = 0.98  # fixed-lag streaming pYIN vs batch (center=False): voicing
STREAM_MEDIAN_CENTS_MAX = 1.0  # ... and median |cents| on frames both call voiced

SPEECH = dict(sr=16000, fmin=65.0, fmax=400.0, frame_length=1024, hop_length=256)
CLIPS = ("03a01Fa.wav", "08b03Lc.wav", "12b03La.wav", "15b03Tc.wav")


def _cents(a, b):
    return 1200.0 * np.abs(np.log2(np.asarray(a, dtype=np.float64) / np.asarray(b, dtype=np.float64)))


@pytest.fixture(scope="module")
def clips(shared_data):
    wav = shared_data / "speech" / "emodb" / "wav"
    return [(name, read_wav(wav / name)[0]) for name in CLIPS]


@pytest.fixture(scope="module")
def librosa_pyin(clips):
    out = {}
    for name, y in clips:
        for dt in (np.float64, np.float32):
            out[name, dt] = librosa.pyin(y.astype(dt), **SPEECH)
    return out


def _pyin_agreement(ours, f0, vf):
    agree = float(np.mean(ours.voiced_flag == vf))
    both = ours.voiced_flag & vf
    med = float(np.median(_cents(ours.f0[both], f0[both]))) if both.any() else 0.0
    return agree, med


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_pyin_matches_librosa_on_emodb(clips, librosa_pyin, dtype, kernel_mode):
    for name, y in clips:
        ours = pitch(y.astype(dtype), **SPEECH)
        f0, vf, vp = librosa_pyin[name, dtype]
        assert ours.f0.dtype == dtype and ours.voiced_prob.dtype == dtype and ours.voiced_flag.dtype == bool
        assert ours.n_frames == f0.shape[0], name
        assert np.all(np.isnan(ours.f0[~ours.voiced_flag]))  # fill_na=np.nan, as librosa
        agree, med = _pyin_agreement(ours, f0, vf)
        assert agree >= VOICING_AGREEMENT_MIN, f"{name}: voicing agreement {agree:.3f}"
        assert med <= PYIN_MEDIAN_CENTS_MAX, f"{name}: median {med:.3g} cents"
        np.testing.assert_allclose(ours.voiced_prob, vp, atol=1e-6 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_yin_matches_librosa_on_emodb(clips, dtype, kernel_mode):
    for name, y in clips:
        yy = y.astype(dtype)
        ours = pitch(yy, method="yin", **SPEECH)
        ref = librosa.yin(yy, **SPEECH)
        assert ours.f0.dtype == dtype and ours.n_frames == ref.shape[0]
        assert np.median(_cents(ours.f0, ref)) <= YIN_MEDIAN_CENTS_MAX, name
        assert ours.voiced_flag.any() and not ours.voiced_flag.all()  # speech has both


@pytest.mark.parametrize(
    "params",
    [
        dict(center=False),
        dict(pad_mode="reflect", hop_length=160),
        dict(fmin=80.0, fmax=500.0, frame_length=800, hop_length=200, resolution=0.05),
        dict(switch_prob=0.05, no_trough_prob=0.05, boltzmann_parameter=3.0, beta_parameters=(1.5, 12),
             n_thresholds=50, max_transition_rate=20.0),
    ],
)
def test_pyin_parameters_match_librosa(clips, params, kernel_mode):
    name, y = clips[1]
    kw = {**SPEECH, **params}
    ours = pitch(y.astype(np.float64), **kw)
    f0, vf, _ = librosa.pyin(y.astype(np.float64), **kw)
    assert ours.n_frames == f0.shape[0]
    agree, med = _pyin_agreement(ours, f0, vf)
    assert agree >= VOICING_AGREEMENT_MIN and med <= PYIN_MEDIAN_CENTS_MAX, (agree, med)
    yin_kw = {k: v for k, v in kw.items() if k in ("sr", "fmin", "fmax", "frame_length", "hop_length", "center",
                                                   "pad_mode")}
    ref = librosa.yin(y.astype(np.float64), **yin_kw)
    assert np.median(_cents(pitch(y.astype(np.float64), method="yin", **yin_kw).f0, ref)) <= YIN_MEDIAN_CENTS_MAX


@pytest.mark.skipif(not _config.JIT_ENABLED, reason="numba is not available")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("method", ["pyin", "yin"])
def test_jit_equals_numpy_twin(clips, dtype, method):
    previous = _config.STATE.jit
    try:
        for name, y in clips[:3]:
            yy = y.astype(dtype)
            _config.set_jit(True)
            a = pitch(yy, method=method, **SPEECH)
            _config.set_jit(False)
            b = pitch(yy, method=method, **SPEECH)
            np.testing.assert_array_equal(a.voiced_flag, b.voiced_flag, err_msg=name)
            np.testing.assert_allclose(a.f0, b.f0, rtol=TWIN_RTOL[dtype], err_msg=name)  # NaNs in the same places
            np.testing.assert_allclose(a.voiced_prob, b.voiced_prob, rtol=TWIN_RTOL[dtype], atol=1e-7)
    finally:
        _config.STATE.jit = previous


@pytest.mark.skipif(not _config.JIT_ENABLED, reason="numba is not available")
def test_banded_viterbi_equals_dense(rng):
    """The banded Viterbi reproduces the dense one, also where out-of-band moves win (log(tiny) columns)."""
    s = pitch_module._setup(16000.0, 65.0, 400.0, 1024, 256, "pyin", 100, (2.0, 18.0), 2.0, 0.1, 35.92, 0.01, 0.01)
    n, T = s.n_bins, 120
    obs = np.zeros((T, 2 * n))
    for t in range(T):
        k = rng.integers(0, 4)
        bins = rng.integers(0, n, size=k)
        obs[t, bins] = rng.random(k) / max(k, 1)
        vp = 1.0 if t % 17 == 5 else min(obs[t, :n].sum(), 1.0)  # some frames: certainly voiced
        obs[t, n:] = (1 - vp) / n
    log_obs = np.log(obs + pitch_module._TINY)
    dense = pitch_module._twin_viterbi(log_obs, s.log_trans, s.log_init)
    banded = pitch_module._jit_viterbi(np.ascontiguousarray(log_obs[:, :n]), np.ascontiguousarray(log_obs[:, n]), s)
    np.testing.assert_array_equal(banded, dense)


def _push_all(stream, y, rng):
    pieces, i = [], 0
    while i < y.shape[0]:
        step = int(rng.integers(1, 700))
        pieces.append(stream.push(y[i : i + step]))
        i += step
    return pieces


def test_streaming_yin_equals_batch(clips, rng, kernel_mode):
    name, y = clips[0]
    stream = StreamingPitch(sr=16000, method="yin", frame_length=1024, hop_length=160, dtype=np.float32)
    assert stream.latency_frames == 0
    pieces = _push_all(stream, y, rng)
    batch = pitch(y, 16000, method="yin", frame_length=1024, hop_length=160, center=False)
    got = np.concatenate([p.f0 for p in pieces])
    np.testing.assert_array_equal(got, batch.f0)
    np.testing.assert_array_equal(stream.finalize().voiced_flag, batch.voiced_flag)


def test_streaming_pyin_fixed_lag_and_exact_finalize(clips, rng, kernel_mode):
    kw = dict(frame_length=1024, hop_length=160)
    agreements = []
    for name, y in clips[:2]:
        batch = pitch(y, 16000, center=False, **kw)
        stream = StreamingPitch(sr=16000, **kw)
        assert stream.latency_frames == 50
        pieces = _push_all(stream, y, rng)
        assert sum(p.n_frames for p in pieces) == batch.n_frames - 50  # the last `lag` frames wait for finalize
        full = stream.finalize()
        assert full.n_frames == batch.n_frames and full.f0.dtype == np.float32
        agree, med = _pyin_agreement(full, batch.f0, batch.voiced_flag)
        agreements.append(agree)
        assert agree >= STREAM_AGREEMENT_MIN and med <= STREAM_MEDIAN_CENTS_MAX, (name, agree, med)
        np.testing.assert_array_equal(full.voiced_prob, batch.voiced_prob)
        exact = StreamingPitch(sr=16000, keep_history=True, **kw)
        _push_all(exact, y, rng)
        final = exact.finalize()
        np.testing.assert_array_equal(final.voiced_flag, batch.voiced_flag)
        np.testing.assert_array_equal(final.f0, batch.f0)


def test_the_package_name_is_the_function():
    import affectedge.native_kernels as nk

    assert nk.pitch is pitch_module.pitch and callable(nk.pitch)


def test_bad_input(kernel_mode):
    y = np.zeros(16000, dtype=np.float32)
    cases = [
        (dict(y=np.zeros(0, dtype=np.float32)), "empty"),
        (dict(y=np.array([0.0, np.nan] * 2000, dtype=np.float32)), "nan"),
        (dict(fmin=400.0, fmax=200.0), "fmin"),
        (dict(fmin=100.0, fmax=100.0), "fmin"),
        (dict(fmax=9000.0), "Nyquist"),
        (dict(fmin=10.0), "frame_length"),
        (dict(y=(y * 32767).astype(np.int16)), "dtype"),
        (dict(y=np.zeros((2, 16000), dtype=np.float32)), "dimensional"),
        (dict(method="crepe"), "method"),
        (dict(pad_mode="mirror"), "pad_mode"),
        (dict(hop_length=0), "hop_length"),
        (dict(switch_prob=1.0), "switch_prob"),
        (dict(y=np.zeros(100, dtype=np.float32), center=False), "shorter"),
    ]
    for overrides, needle in cases:
        kw = {"y": y, "sr": 16000, **overrides}
        with pytest.raises(ParameterError, match=needle):
            pitch(**kw)
    with pytest.raises(ParameterError, match="fmin"):
        StreamingPitch(sr=16000, fmin=300.0, fmax=200.0)
    stream = StreamingPitch(sr=16000)
    with pytest.raises(ParameterError, match="chunk"):
        stream.push(np.array([np.nan], dtype=np.float32))
    with pytest.raises(ParameterError, match="dtype"):
        stream.push(np.zeros(10, dtype=np.int16))
    with pytest.raises(ParameterError, match="no complete frame"):
        stream.finalize()
