"""eGeMAPS-style spectral LLDs: JIT/NumPy-twin parity, analytic checks, junk input."""

import numpy as np
import pytest

from affectedge import ParameterError
from affectedge.io import read_wav
from affectedge.native_kernels import _config
from affectedge.native_kernels.lld import SpectralLLDs, StreamingSpectralLLDs, spectral_llds

SR = 16000
# JIT vs twin: absolute tolerance relative to each LLD's largest magnitude
PARITY_RTOL = {np.float32: 1e-5, np.float64: 1e-11}
ALPHA_NOISE_TOL_DB = 0.5  # median over frames vs 10 log10(4000/950)
HAMMARBERG_TONE_MIN_DB = 20.0
FLUX_STATIONARY_MAX = 1e-6
STREAM_RTOL = {np.float32: 1e-5, np.float64: 1e-12}  # streamed vs whole-signal, relative to each LLD's scale


def _emodb(shared_data, n=4):
    paths = sorted((shared_data / "speech" / "emodb" / "wav").glob("*.wav"))[::120][:n]
    assert len(paths) >= 2
    return [read_wav(p) for p in paths]


@pytest.mark.skipif(not _config.JIT_ENABLED, reason="numba is unavailable or AFFECTEDGE_DISABLE_JIT is set")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_jit_matches_twin_on_emodb(shared_data, dtype):
    previous = _config.use_jit()
    try:
        for y, sr in _emodb(shared_data):
            y = y.astype(dtype)
            _config.set_jit(True)
            a = spectral_llds(y, sr)
            _config.set_jit(False)
            b = spectral_llds(y, sr)
            assert a.status == b.status == "ok"
            np.testing.assert_array_equal(a.silent, b.silent)
            for name in SpectralLLDs.NAMES:
                x, z = getattr(a, name), getattr(b, name)
                assert x.dtype == z.dtype == dtype
                assert np.isfinite(x).all()
                scale = max(float(np.abs(z).max()), 1e-12)
                np.testing.assert_allclose(x, z, rtol=0, atol=PARITY_RTOL[dtype] * scale, err_msg=name)
    finally:
        _config.STATE.jit = previous


def test_white_noise_alpha_ratio(rng, kernel_mode):
    y = rng.standard_normal(2 * SR) * 0.1
    f = spectral_llds(y, SR)
    assert f.n_frames == 1 + (y.size - 320) // 160  # 20 ms frames, 10 ms hop
    assert np.median(f.alpha_ratio) == pytest.approx(10 * np.log10(4000 / 950), abs=ALPHA_NOISE_TOL_DB)


def test_tone_hammarberg_flux_and_slope(kernel_mode):
    t = np.arange(SR) / SR
    y = (0.5 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    f = spectral_llds(y, SR)
    assert f.alpha_ratio.dtype == np.float32
    assert (f.hammarberg > HAMMARBERG_TONE_MIN_DB).all()
    assert f.flux[0] == 0
    # 300 Hz: the 10 ms hop is exactly 3 periods, so every frame is the same
    assert np.max(f.flux[1:]) < FLUX_STATIONARY_MAX
    # a tone whose period divides the hop is exactly stationary frame to frame
    y2 = np.sin(2 * np.pi * 400 * t)  # 400 Hz: 40 samples per period, hop 160
    f2 = spectral_llds(y2, SR)
    assert np.max(f2.flux[1:]) < FLUX_STATIONARY_MAX
    # energy concentrated at 400 Hz: the 500-1500 Hz log spectrum falls away from it
    assert np.median(f2.slope_500_1500) < 0


def test_loudness_increases_with_gain(rng, kernel_mode):
    y = rng.standard_normal(SR // 2)
    levels = [np.median(spectral_llds(g * y, SR).loudness) for g in (0.01, 0.03, 0.1, 0.3, 1.0)]
    assert np.all(np.diff(levels) > 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_silence_gives_status_not_nan(dtype, kernel_mode):
    f = spectral_llds(np.zeros(SR // 2, dtype=dtype), SR)
    assert f.status == "silent"
    assert f.silent.all()
    arr = f.as_array()
    assert arr.dtype == dtype and np.isfinite(arr).all() and not arr.any()
    # partly silent: finite everywhere, silent frames zero
    y = np.concatenate([np.zeros(SR // 4), 0.1 * np.sin(2 * np.pi * 200 * np.arange(SR // 4) / SR)]).astype(dtype)
    g = spectral_llds(y, SR)
    assert g.status == "ok" and g.silent.any() and not g.silent.all()
    assert np.isfinite(g.as_array()).all()
    assert not g.alpha_ratio[g.silent].any()


def test_bad_input_raises():
    y = np.zeros(SR)
    with pytest.raises(ParameterError, match="sr"):
        spectral_llds(y, 8000)
    with pytest.raises(ParameterError, match="sr"):
        spectral_llds(y, -1)
    with pytest.raises(ParameterError, match="frame_length"):
        spectral_llds(y, SR, frame_length=0)
    with pytest.raises(ParameterError, match="frame_length"):
        spectral_llds(y, SR, frame_length=16)
    with pytest.raises(ParameterError, match="hop_length"):
        spectral_llds(y, SR, hop_length=0)
    with pytest.raises(ParameterError, match="y"):
        spectral_llds(np.zeros(100), SR)
    with pytest.raises(ParameterError, match="dtype"):
        spectral_llds(np.zeros(SR, dtype=np.int16), SR)
    with pytest.raises(ParameterError, match="nan_policy"):
        spectral_llds(np.full(SR, np.nan), SR)
    f = spectral_llds(np.r_[np.full(10, np.nan), np.zeros(SR)], SR, nan_policy="zero")
    assert np.isfinite(f.as_array()).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_streaming_equals_whole_signal(shared_data, rng, dtype, kernel_mode):
    y, sr = _emodb(shared_data, 2)[0]
    y = y.astype(dtype)
    whole = spectral_llds(y, sr)
    st = StreamingSpectralLLDs(sr=sr, dtype=dtype)
    parts, i = [], 0
    while i < y.size:
        n = int(rng.integers(1, 900))
        parts.append(st.push(y[i:i + n]))
        i += n
    assert st.frames_emitted == whole.n_frames == sum(p.n_frames for p in parts)
    for name in SpectralLLDs.NAMES:
        got = np.concatenate([getattr(p, name) for p in parts])
        ref = getattr(whole, name)
        assert got.dtype == dtype
        np.testing.assert_allclose(got, ref, rtol=0, atol=STREAM_RTOL[dtype] * max(float(np.abs(ref).max()), 1e-12),
                                   err_msg=name)
    np.testing.assert_allclose(np.concatenate([p.mfcc for p in parts]), whole.mfcc, rtol=0,
                               atol=STREAM_RTOL[dtype] * float(np.abs(whole.mfcc).max()))
    with pytest.raises(ParameterError, match="nothing"):
        st.push(np.array([0.0, np.nan], dtype=dtype))
    with pytest.raises(ParameterError, match="mono"):
        st.push(np.zeros((10, 2), dtype=dtype))
    assert st.push(np.zeros(0, dtype=dtype)).n_frames == 0


def test_mfcc_matches_htk_definition(rng, kernel_mode):
    """MFCC 1-4 recomputed from the HTK book's formulas (triangles in the mel domain, as HTK's filterbank)."""
    y = rng.standard_normal(SR // 2) * 0.1
    f = spectral_llds(y, SR)
    n_fft = 512
    win = np.hamming(320)
    fr = np.lib.stride_tricks.sliding_window_view(y, 320)[::160] * win
    P = np.abs(np.fft.rfft(fr, n=n_fft)) ** 2
    def to_mel(hz):
        return 2595 * np.log10(1 + np.asarray(hz) / 700)

    edges = np.linspace(to_mel(20), to_mel(8000), 28)
    m = to_mel(np.arange(n_fft // 2 + 1) * SR / n_fft)
    mel = np.array([np.clip(np.minimum((m - edges[j]) / (edges[j + 1] - edges[j]),
                                       (edges[j + 2] - m) / (edges[j + 2] - edges[j + 1])), 0, None)
                    for j in range(26)])
    logE = np.log(np.maximum(P @ mel.T, 1e-12))
    i, b = np.arange(1, 5)[:, None], np.arange(1, 27)[None, :]
    c = logE @ (np.sqrt(2 / 26) * np.cos(np.pi * i * (b - 0.5) / 26)).T
    c *= 1 + 11 * np.sin(np.pi * np.arange(1, 5) / 22)
    np.testing.assert_allclose(f.mfcc, c, rtol=0, atol=1e-6 * np.abs(c).max())
