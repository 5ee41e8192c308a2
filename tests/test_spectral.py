"""MFCC / mel spectrogram / delta: parity with librosa, streaming, bad input."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

librosa = pytest.importorskip("librosa")

from affectedge import ParameterError
from affectedge.io import read_wav
from affectedge.native_kernels import (
    StreamingMFCC,
    delta,
    mel_filterbank,
    mel_spectrogram,
    mfcc,
    power_to_db,
)

# Named tolerances (issue 2): MFCC vs librosa with the same parameters.
RTOL_F64 = 1e-6  # max |ours - librosa| / max |librosa|, per clip, float64
ATOL_F32 = 1e-3  # max |ours - librosa|, float32 (dB-scaled cepstra)
STREAM_TOL = 1e-6  # streaming vs batch (center=False), relative to max |batch|

SPEECH = dict(sr=16000, n_fft=512, hop_length=160, n_mels=40, n_mfcc=13)


def _rel(a, b):
    return float(np.max(np.abs(a.astype(np.float64) - b)) / np.max(np.abs(b)))


@pytest.fixture(scope="module")
def emodb_clips(shared_data):
    files = sorted((shared_data / "speech" / "emodb" / "wav").glob("*.wav"))
    assert len(files) == 535, f"expected the 535 EmoDB clips, found {len(files)}"
    return [(f.name, read_wav(f)) for f in files]


def test_read_wav_matches_librosa(shared_data):
    path = shared_data / "speech" / "emodb" / "wav" / "03a01Fa.wav"
    y, sr = read_wav(path)
    ref, ref_sr = librosa.load(path, sr=None)
    assert sr == ref_sr == 16000
    np.testing.assert_array_equal(y, ref)


def test_mfcc_parity_all_emodb_float64(emodb_clips, kernel_mode):
    worst = 0.0
    for name, (y, sr) in emodb_clips:
        y64 = y.astype(np.float64)
        ours = mfcc(y64, **SPEECH)
        ref = librosa.feature.mfcc(y=y64, **SPEECH)
        assert ours.dtype == np.float64 and ours.shape == ref.shape, name
        err = _rel(ours, ref)
        worst = max(worst, err)
        assert err <= RTOL_F64, f"{name}: relative error {err:.2e} > {RTOL_F64}"
    assert worst > 0 or kernel_mode == "numpy"  # a real comparison happened


def test_mfcc_parity_all_emodb_float32(emodb_clips, kernel_mode):
    for name, (y, sr) in emodb_clips:
        ours = mfcc(y, **SPEECH)
        ref = librosa.feature.mfcc(y=y, **SPEECH)
        assert ours.dtype == np.float32 and ours.shape == ref.shape, name
        err = float(np.max(np.abs(ours.astype(np.float64) - ref)))
        assert err <= ATOL_F32, f"{name}: absolute error {err:.2e} > {ATOL_F32}"


@pytest.mark.parametrize(
    "params",
    [
        dict(sr=22050),  # librosa defaults throughout
        dict(sr=16000, n_fft=400, hop_length=160, win_length=400, n_mels=26, n_mfcc=13, htk=True, fmin=20.0, fmax=7600.0),
        dict(sr=16000, n_fft=512, hop_length=128, win_length=320, window="hamming", n_mels=64, lifter=22, center=False),
        dict(sr=16000, n_fft=1024, hop_length=256, power=1.0, mel_norm=None, norm=None, top_db=None, pad_mode="reflect"),
        dict(sr=8000, n_fft=256, hop_length=80, n_mels=24, n_mfcc=24, window="blackman", top_db=40.0),
    ],
)
def test_mfcc_parameters_match_librosa(params, rng, kernel_mode):
    y = (rng.standard_normal(20000) * np.linspace(0.01, 1, 20000)).astype(np.float64)
    p = dict(params)
    top_db = p.pop("top_db", 80.0)
    ours = mfcc(y, top_db=top_db, **p)
    lib = dict(p)
    S = librosa.feature.melspectrogram(
        y=y,
        **{k: v for k, v in lib.items() if k not in ("n_mfcc", "lifter", "mel_norm", "norm")},
        norm=lib.get("mel_norm", "slaney"),
    )
    ref = librosa.feature.mfcc(
        S=librosa.power_to_db(S, top_db=top_db),
        n_mfcc=lib.get("n_mfcc", 20),
        lifter=lib.get("lifter", 0),
        norm=lib.get("norm", "ortho"),
    )
    assert _rel(ours, ref) <= RTOL_F64


def test_mel_spectrogram_and_filterbank_match_librosa(rng, kernel_mode):
    y = rng.standard_normal(16000)
    ours = mel_spectrogram(y, sr=16000, n_fft=512, hop_length=160, n_mels=40)
    ref = librosa.feature.melspectrogram(y=y, sr=16000, n_fft=512, hop_length=160, n_mels=40)
    assert _rel(ours, ref) <= 1e-10
    np.testing.assert_array_equal(
        mel_filterbank(sr=16000, n_fft=512, n_mels=40), librosa.filters.mel(sr=16000, n_fft=512, n_mels=40)
    )
    S = np.abs(rng.standard_normal((40, 50))) ** 2
    np.testing.assert_allclose(power_to_db(S), librosa.power_to_db(S), rtol=1e-12)


@pytest.mark.parametrize("width,order", [(9, 1), (9, 2), (5, 1), (3, 1), (7, 2)])
def test_delta_matches_librosa(width, order, rng, kernel_mode):
    data = rng.standard_normal((13, 60))
    np.testing.assert_allclose(
        delta(data, width=width, order=order), librosa.feature.delta(data, width=width, order=order), atol=1e-10
    )
    d32 = delta(data.astype(np.float32), width=width, order=order)
    assert d32.dtype == np.float32


def test_delta_along_other_axis(rng, kernel_mode):
    data = rng.standard_normal((60, 13))
    np.testing.assert_allclose(delta(data, axis=0), librosa.feature.delta(data, axis=0), atol=1e-10)


# --------------------------------- streaming ---------------------------------


@settings(max_examples=30, deadline=None)
@given(
    cuts=st.lists(st.integers(min_value=1, max_value=4000), min_size=0, max_size=12),
    n=st.integers(min_value=300, max_value=12000),
    seed=st.integers(0, 2**16),
)
def test_streaming_equals_batch_any_chunking(cuts, n, seed):
    y = (np.random.default_rng(seed).standard_normal(n) * 0.2).astype(np.float64)
    s = StreamingMFCC(sr=16000, dtype=np.float64)
    bounds = sorted({min(c, n) for c in np.cumsum(cuts)} | {0, n})
    outs = [s.push(y[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    got = np.concatenate(outs, axis=1)
    if n < 512:
        assert got.shape[1] == 0
        return
    ref = mfcc(y, center=False, top_db=None, **SPEECH)
    assert got.shape == ref.shape
    assert s.frames_emitted == ref.shape[1]
    assert _rel(got, ref) <= STREAM_TOL


def test_streaming_one_sample_at_a_time_and_minutes(kernel_mode, rng):
    y = (rng.standard_normal(2000) * 0.1).astype(np.float32)
    s = StreamingMFCC(sr=16000)
    got = np.concatenate([s.push(y[i : i + 1]) for i in range(y.size)], axis=1)
    ref = mfcc(y, center=False, top_db=None, **SPEECH)
    assert _rel(got, ref) <= 1e-5  # float32 path
    big = (rng.standard_normal(16000 * 120) * 0.1).astype(np.float64)  # two minutes in one chunk
    s64 = StreamingMFCC(sr=16000, dtype=np.float64)
    assert _rel(s64.push(big), mfcc(big, center=False, top_db=None, **SPEECH)) <= STREAM_TOL


def test_streaming_real_clip_and_times(shared_data, kernel_mode):
    y, sr = read_wav(shared_data / "speech" / "emodb" / "wav" / "03a01Wa.wav")
    s = StreamingMFCC(sr=sr, dtype=np.float64)
    y = y.astype(np.float64)
    got = np.concatenate([s.push(y[i : i + 160]) for i in range(0, y.size, 160)], axis=1)
    assert _rel(got, mfcc(y, center=False, top_db=None, **SPEECH)) <= STREAM_TOL
    assert s.start_time_s(100) == pytest.approx(1.0)


def test_streaming_bad_chunk_keeps_state(kernel_mode):
    s = StreamingMFCC(sr=16000)
    s.push(np.zeros(400, np.float32))
    bad = np.ones(300, np.float32)
    bad[17] = np.nan
    with pytest.raises(ParameterError, match=r"index 17 \(stream sample 417\).*nothing from this chunk"):
        s.push(bad)
    assert s.samples_seen == 400  # the bad chunk was not consumed
    with pytest.raises(ParameterError, match="mono audio"):
        s.push(np.zeros((160, 2), np.float32))
    with pytest.raises(ParameterError, match="dtype int16"):
        s.push(np.zeros(160, np.int16))
    zs = StreamingMFCC(sr=16000, nan_policy="zero")
    assert zs.push(bad).shape == (13, 0)


# --------------------------------- bad input ---------------------------------


def test_bad_input_messages(kernel_mode):
    y = np.zeros(16000, np.float32)
    nan = y.copy()
    nan[1234] = np.nan
    with pytest.raises(ParameterError, match=r"y contains nan at index 1234 .*nan_policy='zero'"):
        mfcc(nan, **SPEECH)
    inf = y.copy()
    inf[7] = np.inf
    with pytest.raises(ParameterError, match=r"y contains inf at index 7"):
        mfcc(inf, **SPEECH)
    with pytest.raises(ParameterError, match=r"2-dimensional \(multi-channel\).*mean\(axis=0\)"):
        mfcc(np.zeros((2, 16000), np.float32), **SPEECH)
    with pytest.raises(ParameterError, match=r"3-dimensional"):
        mfcc(np.zeros((2, 2, 16000), np.float32), **SPEECH)
    with pytest.raises(ParameterError, match=r"dtype int16.*astype\(np.float32\) / 32768"):
        mfcc(np.zeros(16000, np.int16), **SPEECH)
    with pytest.raises(ParameterError, match=r"dtype complex128"):
        mfcc(np.zeros(16000, np.complex128), **SPEECH)
    with pytest.raises(ParameterError, match=r"y is empty"):
        mfcc(np.zeros(0, np.float32), **SPEECH)
    with pytest.raises(ParameterError, match=r"100 samples, shorter than one frame \(512 samples\)"):
        mfcc(np.zeros(100, np.float32), **SPEECH)
    with pytest.raises(ParameterError, match=r"sr=0.0 must be strictly positive"):
        mfcc(y, **{**SPEECH, "sr": 0})
    with pytest.raises(ParameterError, match=r"sr=-16000.0 must be strictly positive"):
        mfcc(y, **{**SPEECH, "sr": -16000})
    with pytest.raises(ParameterError, match=r"fmax=9000 Hz is above the Nyquist frequency 8000 Hz"):
        mfcc(y, fmax=9000, **SPEECH)
    with pytest.raises(ParameterError, match=r"n_mfcc=50 must be <= n_mels=40"):
        mfcc(y, **{**SPEECH, "n_mfcc": 50})
    with pytest.raises(ParameterError, match=r"pad_mode='bogus' is not supported"):
        mfcc(y, pad_mode="bogus", **SPEECH)
    with pytest.raises(ParameterError, match=r"window='nope' is not a known window"):
        mfcc(y, window="nope", **SPEECH)
    with pytest.raises(ParameterError, match=r"hop_length=0 must be an integer >= 1"):
        mfcc(y, **{**SPEECH, "hop_length": 0})
    with pytest.raises(ParameterError, match=r"fewer than width=9"):
        delta(np.zeros((13, 5)))
    with pytest.raises(ParameterError, match=r"width=4 must be an odd integer"):
        delta(np.zeros((13, 50)), width=4)


def test_nan_policies(kernel_mode, rng):
    y = (rng.standard_normal(8000) * 0.1).astype(np.float64)
    holes = y.copy()
    holes[[100, 2000, 2001]] = np.nan
    zeroed = y.copy()
    zeroed[[100, 2000, 2001]] = 0.0
    np.testing.assert_allclose(mfcc(holes, nan_policy="zero", **SPEECH), mfcc(zeroed, **SPEECH))
    interp = y.copy()
    interp[100] = (y[99] + y[101]) / 2
    interp[2000] = y[1999] + (y[2002] - y[1999]) / 3
    interp[2001] = y[1999] + 2 * (y[2002] - y[1999]) / 3
    np.testing.assert_allclose(mfcc(holes, nan_policy="interpolate", **SPEECH), mfcc(interp, **SPEECH), atol=1e-9)
    assert np.isnan(holes[100])  # the caller's array is untouched
    with pytest.raises(ParameterError, match=r"nan_policy='omit' is not supported"):
        mfcc(holes, nan_policy="omit", **SPEECH)
