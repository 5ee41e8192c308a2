"""EEG kernels: Welch PSD, band power, differential entropy, streaming.

References are computed here with SciPy (a test-only dependency).
"""

import math
import warnings

import numpy as np
import pytest
import scipy.fft
import scipy.integrate
import scipy.signal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from affectedge.errors import ParameterError
from affectedge.native_kernels import eeg

FS = 128.0
HALF_LOG = 0.5 * math.log(2 * math.pi * math.e)


def rel_err(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def ref_band_power(x, fs, bands, *, nperseg=None, noverlap=None, window="hann", trapezoid=False, relative=False):
    """Independent reference: scipy Welch, bins lo <= f < hi, sum*df or scipy trapezoid."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # scipy's "nperseg > len" clipping note
        f, p = scipy.signal.welch(x, fs, nperseg=nperseg if nperseg else 256, noverlap=noverlap, window=window)
    df = f[1] - f[0]

    def integrate(lo, hi):
        m = (f >= lo) & (f < hi)
        if trapezoid:
            return scipy.integrate.trapezoid(p[..., m], f[m], axis=-1)
        return p[..., m].sum(axis=-1) * df

    items = list(bands.items()) if hasattr(bands, "items") else [(n, (lo, hi)) for n, lo, hi in bands]
    out = np.stack([integrate(lo, hi) for _, (lo, hi) in items], axis=-1)
    if relative:
        total = integrate(min(lo for _, (lo, _h) in items), max(hi for _, (_l, hi) in items))
        out = out / total[..., None]
    return out


def ref_de_gaussian(x, fs, bands):
    n = x.shape[-1]
    spec = scipy.fft.rfft(x, axis=-1)
    f = scipy.fft.rfftfreq(n, 1 / fs)
    out = []
    for lo, hi in bands.values():
        masked = np.where((f >= lo) & (f < hi), spec, 0)
        y = scipy.fft.irfft(masked, n=n, axis=-1)
        out.append(HALF_LOG + 0.5 * np.log(np.var(y, axis=-1)))
    return np.stack(out, axis=-1)


@pytest.fixture
def eeg64(rng):
    # 1/f-ish noise plus an alpha rhythm and a slow drift, 8 channels x 10 s
    n = 1280
    t = np.arange(n) / FS
    white = rng.standard_normal((8, n))
    pink = np.cumsum(white, axis=1) * 0.05 + white
    return pink + 2.0 * np.sin(2 * np.pi * 10.0 * t) + 0.3 * t


@pytest.fixture(scope="module")
def deap(request):
    shared = request.getfixturevalue("shared_data")
    path = shared / "eeg" / "deap_raw_trial" / "deap_trial_128hz.csv"
    if not path.is_file():
        pytest.skip(f"{path} missing")
    with open(path) as fh:
        names = [c for c in fh.readline().strip().split(",") if c]
    data = np.loadtxt(path, delimiter=",", skiprows=1, usecols=range(len(names)))
    return np.ascontiguousarray(data.T)


WELCH_CASES = [
    {},
    {"nperseg": 128},
    {"nperseg": 128, "noverlap": 100, "window": "hamming", "detrend": "linear"},
    {"nperseg": 101, "noverlap": 0, "window": "blackman", "scaling": "spectrum"},
    {"nperseg": 64, "window": "boxcar", "detrend": False},
    {"nperseg": 64, "window": "rectangular", "average": "median"},
    {"nperseg": 200, "noverlap": 150, "average": "median", "detrend": "linear"},
]


# ---------------------------------------------------------------- Welch


@pytest.mark.parametrize("kw", WELCH_CASES, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()) or "default")
def test_welch_matches_scipy_float64(kernel_mode, eeg64, kw):
    f, p = eeg.welch(eeg64, FS, **kw)
    kw_s = dict(kw)
    if kw_s.get("window") == "rectangular":
        kw_s["window"] = "boxcar"
    f_ref, p_ref = scipy.signal.welch(eeg64, FS, **kw_s)
    assert p.dtype == np.float64 and p.shape == p_ref.shape
    np.testing.assert_array_equal(f, f_ref)
    assert rel_err(p, p_ref) < 1e-9


@pytest.mark.parametrize("kw", WELCH_CASES[:4], ids=str)
def test_welch_float32(kernel_mode, eeg64, kw):
    x = eeg64.astype(np.float32)
    f, p = eeg.welch(x, FS, **kw)
    _, p_ref = scipy.signal.welch(eeg64, FS, **kw)
    assert p.dtype == np.float32 and f.dtype == np.float32
    assert rel_err(p, p_ref) < 1e-5


def test_welch_window_array_and_1d(kernel_mode, eeg64):
    win = np.kaiser(96, 5.0)
    f, p = eeg.welch(eeg64[3], FS, window=win, noverlap=40)
    f_ref, p_ref = scipy.signal.welch(eeg64[3], FS, window=win, noverlap=40)
    assert p.ndim == 1
    assert rel_err(p, p_ref) < 1e-9


def test_welch_default_nperseg_clips_like_scipy(kernel_mode, rng):
    x = rng.standard_normal((2, 200))
    f, p = eeg.welch(x, FS)
    with pytest.warns(UserWarning):
        f_ref, p_ref = scipy.signal.welch(x, FS)
    assert p.shape == p_ref.shape == (2, 101)
    assert rel_err(p, p_ref) < 1e-9


def test_welch_real_deap_trial(kernel_mode, deap):
    for kw in ({}, {"nperseg": 512, "noverlap": 384, "detrend": "linear"}):
        _, p = eeg.welch(deap, FS, **kw)
        _, p_ref = scipy.signal.welch(deap, FS, **kw)
        assert rel_err(p, p_ref) < 1e-9
        _, p32 = eeg.welch(deap.astype(np.float32), FS, **kw)
        assert rel_err(p32, p_ref) < 1e-5


# ---------------------------------------------------------------- band power / DE


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"relative": True},
        {"nperseg": 128, "noverlap": 96, "window": "hamming"},
        {"method": "trapezoid", "relative": True},
    ],
    ids=str,
)
def test_band_power_matches_reference(kernel_mode, eeg64, kw):
    bp = eeg.band_power(eeg64, FS, **kw)
    ref = ref_band_power(
        eeg64,
        FS,
        eeg.DEFAULT_BANDS,
        nperseg=kw.get("nperseg"),
        noverlap=kw.get("noverlap"),
        window=kw.get("window", "hann"),
        trapezoid=kw.get("method") == "trapezoid",
        relative=kw.get("relative", False),
    )
    assert bp.shape == (8, 5) and bp.dtype == np.float64
    assert rel_err(bp, ref) < 1e-9
    bp32 = eeg.band_power(eeg64.astype(np.float32), FS, **kw)
    assert bp32.dtype == np.float32 and rel_err(bp32, ref) < 1e-5


def test_relative_band_power_sums_to_one(kernel_mode, eeg64):
    rel = eeg.band_power(eeg64, FS, relative=True)
    np.testing.assert_allclose(rel.sum(axis=1), 1.0, rtol=1e-12)


def test_band_power_custom_bands_and_1d(kernel_mode, eeg64):
    bands = [("mu", 8, 12), ("low", 0, 3.5), ("high", 40, 64)]
    bp = eeg.band_power(eeg64[0], FS, bands=bands)
    ref = ref_band_power(eeg64[0], FS, bands)
    assert bp.shape == (3,)
    assert rel_err(bp, ref) < 1e-9


def test_de_psd_matches_reference(kernel_mode, eeg64, deap):
    for x in (eeg64, deap[:, :512]):
        de = eeg.differential_entropy(x, FS)
        ref = HALF_LOG + 0.5 * np.log(ref_band_power(x, FS, eeg.DEFAULT_BANDS))
        np.testing.assert_allclose(de, ref, rtol=1e-10, atol=1e-10)
    power, de2 = eeg.band_power(eeg64, FS, with_de=True, relative=True)
    np.testing.assert_allclose(de2, eeg.differential_entropy(eeg64, FS), rtol=1e-12)
    np.testing.assert_allclose(power, eeg.band_power(eeg64, FS, relative=True), rtol=1e-12)
    p_t, de_t = eeg.band_power(eeg64, FS, with_de=True, method="trapezoid")
    np.testing.assert_allclose(de_t, eeg.differential_entropy(eeg64, FS), rtol=1e-12)


def test_de_gaussian_matches_reference(kernel_mode, eeg64, deap):
    for x in (eeg64, deap[:, :512], eeg64[:, :511]):
        de = eeg.differential_entropy(x, FS, method="gaussian")
        np.testing.assert_allclose(de, ref_de_gaussian(x, FS, eeg.DEFAULT_BANDS), rtol=1e-9, atol=1e-9)
    de32 = eeg.differential_entropy(eeg64.astype(np.float32), FS, method="gaussian")
    assert de32.dtype == np.float32


def test_de_definitions_agree_on_white_noise(kernel_mode, rng):
    x = rng.standard_normal((4, 128 * 60))
    a = eeg.differential_entropy(x, FS, method="psd")
    b = eeg.differential_entropy(x, FS, method="gaussian")
    np.testing.assert_allclose(a, b, atol=0.05)


# ---------------------------------------------------------------- streaming

S_FS = 64.0
S_BANDS = {"theta": (4, 8), "alpha": (8, 13), "beta": (13, 30)}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cuts=st.lists(st.integers(min_value=0, max_value=420), max_size=8),
    relative=st.booleans(),
    de_method=st.sampled_from(["psd", "gaussian"]),
    hop_s=st.sampled_from([0.25, 0.5, 3.0]),
)
def test_streaming_equals_batch(kernel_mode, cuts, relative, de_method, hop_s):
    x = np.random.default_rng(7).standard_normal((3, 420))
    sb = eeg.StreamingBandPower(
        S_FS, 3, window_s=2.0, hop_s=hop_s, bands=S_BANDS, relative=relative,
        de_method=de_method, nperseg=64, dtype=np.float64,
    )  # fmt: skip
    bounds = [0, *sorted(cuts), x.shape[1]]
    rows = [sb.push(x[:, a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    got = np.concatenate(rows, axis=0)
    win, hop = 128, int(hop_s * S_FS)
    ends = list(range(win, x.shape[1] + 1, hop))
    assert got.shape == (len(ends), 3, 6)
    for i, e in enumerate(ends):
        sl = x[:, e - win : e]
        bp = eeg.band_power(sl, S_FS, bands=S_BANDS, relative=relative, nperseg=64)
        de = eeg.differential_entropy(sl, S_FS, bands=S_BANDS, method=de_method, nperseg=64)
        np.testing.assert_allclose(got[i, :, :3], bp, rtol=1e-10)
        np.testing.assert_allclose(got[i, :, 3:], de, rtol=1e-10, atol=1e-12)


def test_streaming_reset_names_and_dtype(kernel_mode, rng):
    sb = eeg.StreamingBandPower(FS, 2, window_s=4.0, hop_s=1.0)
    assert sb.feature_names[:2] == ["delta_power", "theta_power"] and sb.feature_names[-1] == "gamma_de"
    x = rng.standard_normal((2, 700))
    first = sb.push(x)
    assert first.shape == (2, 2, 10) and first.dtype == np.float32
    sb.reset()
    assert sb.push(x[:, :511]).shape[0] == 0
    again = sb.push(x[:, 511:700])
    np.testing.assert_array_equal(again, first)
    with pytest.raises(ParameterError, match="n_channels=2"):
        sb.push(x[:1])


# ---------------------------------------------------------------- bad input / NaN policy


def test_nan_raises_with_index_and_hint(kernel_mode, eeg64):
    x = eeg64.copy()
    x[2, 17] = np.nan
    x[5, 3] = np.nan
    for fn in (eeg.welch, eeg.band_power, eeg.differential_entropy):
        with pytest.raises(ParameterError, match=r"nan at \(channel, sample\) \(2, 17\).*nan_policy='zero'"):
            fn(x, FS)
    with pytest.raises(ParameterError, match=r"inf at index 4"):
        eeg.band_power(np.r_[np.zeros(4), np.inf, np.zeros(600)], FS)


def test_nan_policy_zero_and_interpolate(kernel_mode, eeg64):
    x = eeg64.copy()
    x[1, 100:103] = np.nan
    zeroed = eeg64.copy()
    zeroed[1, 100:103] = 0.0
    np.testing.assert_allclose(eeg.band_power(x, FS, nan_policy="zero"), eeg.band_power(zeroed, FS), rtol=1e-12)
    interp = eeg64.copy()
    interp[1, 100:103] = np.interp([100, 101, 102], [99, 103], eeg64[1, [99, 103]])
    np.testing.assert_allclose(
        eeg.differential_entropy(x, FS, nan_policy="interpolate"), eeg.differential_entropy(interp, FS), rtol=1e-12
    )
    assert np.isnan(x[1, 100])  # the caller's array is not modified


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda x: eeg.band_power(x[None], FS), r"3-dimensional.*\(channels, samples\)"),
        (lambda x: eeg.band_power(np.zeros((2, 600), dtype=np.int16), FS), r"dtype int16.*float32 or float64"),
        (lambda x: eeg.band_power(np.zeros((2, 0)), FS), r"empty"),
        (lambda x: eeg.band_power(np.zeros((0, 600)), FS), r"empty"),
        (lambda x: eeg.welch(x, FS, nperseg=2000), r"1280 samples, shorter than nperseg=2000"),
        (lambda x: eeg.band_power(x, FS, nperseg=2000), r"shorter than nperseg=2000"),
        (lambda x: eeg.band_power(x, 0), r"fs=0.* strictly positive"),
        (lambda x: eeg.band_power(x, -128.0), r"fs=-128.0"),
        (lambda x: eeg.band_power(x, 64.0), r"band 'gamma'.*Nyquist frequency 32 Hz"),
        (lambda x: eeg.band_power(x, FS, bands={"bad": (10, 8)}), r"band 'bad'.*lo must be < hi"),
        (lambda x: eeg.band_power(x, FS, bands={"bad": (8, 8)}), r"band 'bad'.*lo must be < hi"),
        (lambda x: eeg.band_power(x, FS, bands={"narrow": (10.1, 10.3)}), r"'narrow'.*increase nperseg"),
        (lambda x: eeg.differential_entropy(x[:, :20], FS, method="gaussian", bands={"a": (8, 9)}), r"longer signal"),
        (lambda x: eeg.welch(x, FS, noverlap=256), r"noverlap=256"),
        (lambda x: eeg.welch(x, FS, window="kaiser"), r"window='kaiser'"),
        (lambda x: eeg.welch(x, FS, scaling="psd"), r"scaling='psd'"),
        (lambda x: eeg.band_power(x, FS, method="simpson"), r"method='simpson'"),
        (lambda x: eeg.differential_entropy(x, FS, method="entropy"), r"method='entropy'"),
        (lambda x: eeg.band_power(x, FS, nan_policy="drop"), r"nan_policy='drop'"),
        (lambda x: eeg.StreamingBandPower(FS, 0), r"n_channels=0"),
        (lambda x: eeg.StreamingBandPower(FS, 2, window_s=0.1), r"'delta'.*increase nperseg"),
    ],
)
def test_bad_input_messages(kernel_mode, eeg64, call, match):
    with pytest.raises(ParameterError, match=match):
        call(eeg64)


def test_default_bands_immutable():
    assert list(eeg.DEFAULT_BANDS) == ["delta", "theta", "alpha", "beta", "gamma"]
    assert eeg.DEFAULT_BANDS["alpha"] == (8.0, 13.0)
    with pytest.raises(TypeError):
        eeg.DEFAULT_BANDS["alpha"] = (7, 12)
