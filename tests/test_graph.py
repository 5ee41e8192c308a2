"""Tests for native_kernels.graph: montages, adjacency, Laplacians, Chebyshev filters.

Every kernel test takes ``kernel_mode`` so it runs on the compiled kernels and
on the NumPy twins. References are independent: np.corrcoef,
scipy.signal.coherence, scipy.sparse.csgraph.laplacian, MNE's standard
montage, and a Chebyshev filter built from monomial matrix powers.
"""

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from affectedge.errors import ParameterError
from affectedge.native_kernels import graph
from affectedge.native_kernels.graph import (
    MONTAGES,
    StreamingGraphFilter,
    chebyshev_filter,
    coherence_adjacency,
    correlation_adjacency,
    distance_adjacency,
    montage_positions,
    normalized_laplacian,
    scaled_laplacian,
)

FS_DEAP = 128.0


@pytest.fixture(scope="session")
def deap_trial(shared_data):
    """(32, n_samples) float64 DEAP trial, channels in the deap32 order."""
    path = shared_data / "eeg" / "deap_raw_trial" / "deap_trial_128hz.csv"
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    with open(path, encoding="utf-8") as fh:
        header = [h.strip() for h in fh.readline().split(",") if h.strip()]
    data = np.loadtxt(path, delimiter=",", skiprows=1, usecols=range(len(header)))
    assert tuple(header) == MONTAGES["deap32"]
    return np.ascontiguousarray(data.T)


def _random_graph(rng, n, density=0.5, isolated=()):
    a = rng.random((n, n)) * (rng.random((n, n)) < density)
    a = np.triu(a, 1)
    a = a + a.T
    for i in isolated:
        a[i, :] = 0
        a[:, i] = 0
    return a


# ---------------------------------------------------------------------------
# Montages
# ---------------------------------------------------------------------------

EXPECTED_MONTAGES = {
    "deap32": 32,
    "emotiv_epoc14": 14,
    "muse4": 4,
    "cyton8": 8,
    "cyton_daisy16": 16,
}


def test_montage_table():
    for name, count in EXPECTED_MONTAGES.items():
        assert len(MONTAGES[name]) == count
        assert len(set(MONTAGES[name])) == count
    assert MONTAGES["emotiv_epoc14"][:3] == ("AF3", "F7", "F3")
    assert MONTAGES["muse4"] == ("TP9", "AF7", "AF8", "TP10")
    with pytest.raises(TypeError):
        MONTAGES["new"] = ("Cz",)


@pytest.mark.parametrize("name", sorted(EXPECTED_MONTAGES))
def test_montage_positions_unit_and_orientation(name):
    pos = montage_positions(name)
    assert pos.shape == (EXPECTED_MONTAGES[name], 3)
    assert pos.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(pos, axis=1), 1.0, rtol=1e-12)
    for ch, p in zip(MONTAGES[name], pos):
        digits = [c for c in ch if c.isdigit()]
        if digits:  # odd numbers left (x < 0), even right (x > 0)
            assert (p[0] < 0) == (int("".join(digits)) % 2 == 1), ch
        if ch.startswith(("Fp", "AF")):
            assert p[1] > 0.5, ch  # front
        if ch.startswith(("O", "PO")):
            assert p[1] < -0.5, ch  # back


def test_montage_axes():
    cz, t8, fpz, oz = montage_positions(["Cz", "T8", "Fpz", "Oz"])
    np.testing.assert_allclose(cz, [0, 0, 1], atol=1e-12)
    assert t8[0] > 0.99  # x right
    assert fpz[1] > 0.99  # y front
    assert oz[1] < -0.99


def test_montage_aliases_and_case():
    np.testing.assert_array_equal(montage_positions(["T3", "t4", "T5", "T6"]),
                                  montage_positions(["T7", "T8", "P7", "P8"]))
    np.testing.assert_array_equal(montage_positions(["FP1", " cz "]), montage_positions(["Fp1", "Cz"]))
    np.testing.assert_array_equal(montage_positions("DEAP32"), montage_positions("deap32"))


# MNE's standard_1020 positions come from a real (MNI) head, not a sphere, so
# they differ from the ideal-sphere angles. Tolerance: every channel within
# 12 degrees (largest seen: T7 11.5 deg, T8 10.9 deg; most are under 8), and
# the median under 6 degrees.
MNE_TOLERANCE_DEG = 12.0


def test_montage_positions_match_mne():
    mne = pytest.importorskip("mne")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "standard_1020 is deprecated" in recent MNE
        ref = mne.channels.make_standard_montage("standard_1020").get_positions()["ch_pos"]
    names = sorted({ch for chans in MONTAGES.values() for ch in chans})
    ours = montage_positions(names)
    theirs = np.array([ref[n] for n in names], dtype=np.float64)
    theirs /= np.linalg.norm(theirs, axis=1, keepdims=True)
    angles = np.degrees(np.arccos(np.clip(np.sum(ours * theirs, axis=1), -1, 1)))
    worst = int(np.argmax(angles))
    assert angles.max() < MNE_TOLERANCE_DEG, (names[worst], angles[worst])
    assert np.median(angles) < 6.0
    # and no swap: each MNE electrode's nearest ideal position is its own
    nearest = np.argmax(theirs @ ours.T, axis=1)
    np.testing.assert_array_equal(nearest, np.arange(len(names)))


def test_montage_errors():
    with pytest.raises(ParameterError, match=r"montage='deap23' is not a known montage.*'deap32'"):
        montage_positions("deap23")
    with pytest.raises(ParameterError, match=r"channel 1 'Fpp2' is not.*Did you mean 'Fp2'"):
        montage_positions(["Fp1", "Fpp2"])
    with pytest.raises(ParameterError, match="empty list"):
        montage_positions([])
    with pytest.raises(ParameterError, match="must be strings"):
        montage_positions(["Cz", 3])


# ---------------------------------------------------------------------------
# Distance adjacency
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_distance_adjacency(kernel_mode, dtype):
    pos = montage_positions("deap32").astype(dtype)
    adj = distance_adjacency(pos, threshold=0.0)
    assert adj.dtype == dtype
    p = pos.astype(np.float64)
    d = np.linalg.norm(p[:, None] - p[None], axis=-1)
    sigma = d[d > 0].mean()
    ref = np.exp(-(d**2) / (2 * sigma**2))
    np.fill_diagonal(ref, 0)
    tol = 1e-12 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(adj, ref, rtol=tol, atol=tol)
    np.testing.assert_array_equal(adj, adj.T)
    assert np.all(np.diag(adj) == 0)

    loops = distance_adjacency(pos, self_loops=True, sigma=0.5, threshold=0.3)
    assert np.all(np.diag(loops) == 1)
    off = loops[~np.eye(32, dtype=bool)]
    assert np.all((off == 0) | (off >= 0.3))
    assert np.any(off == 0)
    ref = np.exp(-(d**2) / (2 * 0.25))
    keep = ref >= 0.3
    np.testing.assert_allclose(loops[keep], ref[keep], rtol=tol)


def test_distance_adjacency_default_is_sparse_and_local():
    pos = montage_positions("deap32")
    adj = distance_adjacency(pos)
    names = MONTAGES["deap32"]
    fp1, fp2, o1 = names.index("Fp1"), names.index("Fp2"), names.index("O1")
    assert adj[fp1, fp2] > 0.7
    assert adj[fp1, o1] == 0
    assert 0.3 < np.mean(adj > 0) < 0.9


def test_distance_adjacency_errors(kernel_mode):
    with pytest.raises(ParameterError, match="all identical"):
        distance_adjacency(np.zeros((3, 3)))
    with pytest.raises(ParameterError, match=r"positions has shape \(3,\).*2-dimensional"):
        distance_adjacency(np.zeros(3))
    with pytest.raises(ParameterError, match="positions has dtype int64"):
        distance_adjacency(np.zeros((3, 3), dtype=np.int64))
    bad = montage_positions("cyton8")
    bad[2, 1] = np.nan
    with pytest.raises(ParameterError, match=r"positions contains nan at index \(2, 1\)"):
        distance_adjacency(bad)
    with pytest.raises(ParameterError, match="sigma=-1.0 must be > 0"):
        distance_adjacency(montage_positions("muse4"), sigma=-1.0)
    with pytest.raises(ParameterError, match="positions is empty"):
        distance_adjacency(np.zeros((0, 3)))


# ---------------------------------------------------------------------------
# Correlation adjacency
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_correlation_matches_corrcoef_on_deap(kernel_mode, deap_trial, dtype):
    win = deap_trial[:, 1280:1280 + 4 * 128].astype(dtype)
    ref = np.corrcoef(win.astype(np.float64))
    np.fill_diagonal(ref, 0)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    signed = correlation_adjacency(win, absolute=False)
    assert signed.dtype == dtype
    np.testing.assert_allclose(signed, ref, atol=tol)
    assert np.any(signed < 0)
    adj = correlation_adjacency(win)
    np.testing.assert_allclose(adj, np.abs(ref), atol=tol)
    np.testing.assert_array_equal(adj, adj.T)
    assert np.all(np.diag(adj) == 0)
    thr = correlation_adjacency(win, threshold=0.5)
    np.testing.assert_array_equal(thr, np.where(adj < 0.5, 0, adj))


def test_correlation_flat_channel_and_nan(kernel_mode, rng):
    x = rng.standard_normal((4, 200))
    x[2] = 3.0  # flat (disconnected) electrode
    adj = correlation_adjacency(x)
    assert np.all(adj[2] == 0) and np.all(adj[:, 2] == 0)
    x[1, 17] = np.nan
    with pytest.raises(ParameterError, match=r"window contains nan at \(channel, sample\) \(1, 17\)"):
        correlation_adjacency(x)
    zeroed = x.copy()
    zeroed[1, 17] = 0
    np.testing.assert_allclose(correlation_adjacency(x, nan_policy="zero"), correlation_adjacency(zeroed))


# ---------------------------------------------------------------------------
# Coherence adjacency
# ---------------------------------------------------------------------------


def _scipy_coherence_adj(x, fs, band, nperseg, noverlap=None):
    from scipy.signal import coherence

    f, c = coherence(x[:, None, :], x[None, :, :], fs, nperseg=nperseg, noverlap=noverlap, axis=-1)
    sel = (f >= band[0]) & (f <= band[1])
    out = c[..., sel].mean(axis=-1)
    np.fill_diagonal(out, 0)
    return out


@pytest.mark.parametrize(
    ("band", "nperseg", "noverlap"),
    [((4.0, 45.0), 256, None), ((8.0, 13.0), 128, None), ((0.0, 64.0), 200, 50), ((30.0, 30.0), 256, 0)],
)
def test_coherence_matches_scipy_on_deap(kernel_mode, deap_trial, band, nperseg, noverlap):
    pytest.importorskip("scipy")
    win = deap_trial[:, :10 * 128]
    ours = coherence_adjacency(win, FS_DEAP, band=band, nperseg=nperseg, noverlap=noverlap)
    ref = _scipy_coherence_adj(win, FS_DEAP, band, nperseg, noverlap)
    np.testing.assert_allclose(ours, ref, atol=1e-10)
    np.testing.assert_array_equal(ours, ours.T)
    assert np.all(np.diag(ours) == 0)
    assert ours.min() >= 0 and ours.max() <= 1


def test_coherence_float32_and_defaults(kernel_mode, deap_trial):
    pytest.importorskip("scipy")
    win = deap_trial[:8, :6 * 128]
    ours = coherence_adjacency(win.astype(np.float32), FS_DEAP)
    assert ours.dtype == np.float32
    ref = _scipy_coherence_adj(win, FS_DEAP, (4.0, 45.0), 256)
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_coherence_of_shared_sinusoid(kernel_mode, rng):
    fs = 256.0
    t = np.arange(4096) / fs
    common = np.sin(2 * np.pi * 10 * t)
    x = np.stack([common + 0.1 * rng.standard_normal(t.size), 2 * common + 0.1 * rng.standard_normal(t.size),
                  rng.standard_normal(t.size)])
    adj = coherence_adjacency(x, fs, band=(9.0, 11.0), nperseg=256)
    assert adj[0, 1] > 0.9
    assert adj[0, 2] < 0.3


def test_coherence_errors(kernel_mode, rng):
    x = rng.standard_normal((3, 300))
    with pytest.raises(ParameterError, match=r"band=\(10.1, 10.2\) Hz contains no frequency bin"):
        coherence_adjacency(x, 128.0, band=(10.1, 10.2), nperseg=128)
    with pytest.raises(ParameterError, match="nperseg=512 is longer than the window"):
        coherence_adjacency(x, 128.0, nperseg=512)
    with pytest.raises(ParameterError, match="low <= high"):
        coherence_adjacency(x, 128.0, band=(20.0, 10.0))
    with pytest.raises(ParameterError, match="must be a pair"):
        coherence_adjacency(x, 128.0, band=8.0)
    with pytest.raises(ParameterError, match="noverlap=128 must be an integer"):
        coherence_adjacency(x, 128.0, nperseg=128, noverlap=128)
    with pytest.raises(ParameterError, match="fs=0.0 must be strictly positive"):
        coherence_adjacency(x, 0.0)
    with pytest.raises(ParameterError, match="window has dtype int32"):
        coherence_adjacency(x.astype(np.int32), 128.0)
    with pytest.raises(ParameterError, match="window is empty"):
        coherence_adjacency(np.zeros((3, 0)), 128.0)


# ---------------------------------------------------------------------------
# Laplacians
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 5, 32])
def test_normalized_laplacian_matches_scipy(kernel_mode, rng, n):
    csgraph = pytest.importorskip("scipy.sparse.csgraph")
    for _ in range(5):
        adj = _random_graph(rng, n, density=0.6)
        ours = normalized_laplacian(adj)
        ref = csgraph.laplacian(adj, normed=True)
        isolated = adj.sum(axis=1) == 0
        ref[isolated, isolated] = 1.0  # our documented convention
        np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-12)
        eig = np.linalg.eigvalsh(ours)
        assert eig.min() >= -1e-10 and eig.max() <= 2 + 1e-10


def test_normalized_laplacian_isolated_nodes_and_dtype(kernel_mode, rng):
    adj = _random_graph(rng, 6, density=1.0, isolated=(0, 4))
    lap = normalized_laplacian(adj.astype(np.float32))
    assert lap.dtype == np.float32
    for i in (0, 4):
        expected = np.zeros(6)
        expected[i] = 1
        np.testing.assert_array_equal(lap[i], expected)
        np.testing.assert_array_equal(lap[:, i], expected)
    np.testing.assert_allclose(lap, normalized_laplacian(adj), atol=1e-6)


def test_normalized_laplacian_self_loops(kernel_mode, rng):
    adj = _random_graph(rng, 7) + np.eye(7)
    lap = normalized_laplacian(adj)
    d = adj.sum(axis=1)
    np.testing.assert_allclose(lap, np.eye(7) - adj / np.sqrt(np.outer(d, d)), atol=1e-12)
    eig = np.linalg.eigvalsh(lap)
    assert eig.min() >= -1e-10 and eig.max() <= 2 + 1e-10


def test_scaled_laplacian(kernel_mode, rng):
    adj = _random_graph(rng, 12, density=0.7)
    lap = normalized_laplacian(adj)
    lmax = np.linalg.eigvalsh(lap).max()
    scaled = scaled_laplacian(adj)
    np.testing.assert_allclose(scaled, 2 * lap / lmax - np.eye(12), atol=1e-12)
    eig = np.linalg.eigvalsh(scaled)
    assert eig.min() >= -1 - 1e-10
    assert abs(eig.max() - 1) < 1e-10
    bound = scaled_laplacian(adj, lambda_max=2.0)
    np.testing.assert_allclose(bound, lap - np.eye(12), atol=1e-12)
    assert scaled_laplacian(adj.astype(np.float32)).dtype == np.float32


ADJ_ERRORS = [
    (np.ones((3, 4)), r"adj has shape \(3, 4\).*must be square"),
    (np.ones(3), r"adj has shape \(3,\) \(1-dimensional\)"),
    (np.ones((2, 3, 3)), r"3-dimensional"),
    (np.array([[0.0, 1.0], [0.5, 0.0]]), r"not symmetric: adj\[0, 1\]=1.0 but adj\[1, 0\]=0.5"),
    (np.array([[0.0, -1.0], [-1.0, 0.0]]), r"negative weight -1.0 at index \(0, 1\)"),
    (np.array([[0.0, np.nan], [np.nan, 0.0]]), r"adj contains nan at index \(0, 1\)"),
    (np.ones((2, 2), dtype=np.int64), r"adj has dtype int64"),
    (np.zeros((0, 0)), r"adj is empty"),
]


@pytest.mark.parametrize(("adj", "match"), ADJ_ERRORS)
@pytest.mark.parametrize("func", [normalized_laplacian, scaled_laplacian])
def test_laplacian_errors(kernel_mode, func, adj, match):
    with pytest.raises(ParameterError, match=match):
        func(adj)


def test_scaled_laplacian_lambda_error():
    with pytest.raises(ParameterError, match="lambda_max=0.0 must be > 0"):
        scaled_laplacian(np.ones((2, 2)), lambda_max=0.0)


# ---------------------------------------------------------------------------
# Chebyshev filter
# ---------------------------------------------------------------------------


def _reference_chebyshev(x, lap, weights):
    """Independent reference: T_k from numpy.polynomial's Chebyshev -> monomial
    coefficients, evaluated with matrix powers, all in float64."""
    x = np.asarray(x, dtype=np.float64)
    lap = np.asarray(lap, dtype=np.float64)
    n = lap.shape[0]
    powers = [np.eye(n)]
    for _ in range(1, weights.shape[0]):
        powers.append(powers[-1] @ lap)
    out = 0.0
    for k in range(weights.shape[0]):
        coeffs = np.polynomial.chebyshev.cheb2poly([0] * k + [1])
        t_k = sum(c * powers[j] for j, c in enumerate(coeffs))
        out = out + np.matmul(t_k, x) @ weights[k].astype(np.float64)
    return out


@pytest.mark.parametrize("k_order", [1, 2, 3, 4])
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_chebyshev_matches_reference(kernel_mode, rng, k_order, batched, dtype):
    n, f_in, f_out = 9, 4, 3
    lap = scaled_laplacian(_random_graph(rng, n, density=0.6))
    shape = (5, n, f_in) if batched else (n, f_in)
    x = rng.standard_normal(shape)
    w = rng.standard_normal((k_order, f_in, f_out))
    out = chebyshev_filter(x.astype(dtype), lap.astype(dtype), w.astype(dtype))
    assert out.dtype == dtype
    assert out.shape == shape[:-1] + (f_out,)
    ref = _reference_chebyshev(x.astype(dtype), lap.astype(dtype), w.astype(dtype))
    if dtype == np.float64:
        np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-10)
    else:
        np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


def test_chebyshev_identity_and_linearity(kernel_mode, rng):
    lap = scaled_laplacian(distance_adjacency(montage_positions("cyton8")))
    x = rng.standard_normal((3, 8, 2))
    eye = np.eye(2)[None]
    np.testing.assert_allclose(chebyshev_filter(x, lap, eye), x, atol=1e-14)
    w = rng.standard_normal((3, 2, 5))
    np.testing.assert_allclose(chebyshev_filter(2 * x, lap, w), 2 * chebyshev_filter(x, lap, w), atol=1e-12)


def test_chebyshev_jit_equals_twin(rng):
    from affectedge.native_kernels import _config

    if not _config.JIT_ENABLED:
        pytest.skip("numba not available")
    lap = scaled_laplacian(_random_graph(rng, 32))
    x = rng.standard_normal((64, 32, 5))
    w = rng.standard_normal((3, 5, 16))
    prev = _config.set_jit(True)
    try:
        a = chebyshev_filter(x, lap, w)
        _config.set_jit(False)
        b = chebyshev_filter(x, lap, w)
    finally:
        _config.STATE.jit = prev
    np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-11)


def test_chebyshev_errors(kernel_mode, rng):
    lap = scaled_laplacian(_random_graph(rng, 4, density=1.0))
    x = rng.standard_normal((2, 4, 3))
    w = rng.standard_normal((2, 3, 5))
    with pytest.raises(ParameterError, match=r"weights has shape \(2, 4, 5\).*f_in=4.*3 features"):
        chebyshev_filter(x, lap, rng.standard_normal((2, 4, 5)))
    with pytest.raises(ParameterError, match=r"weights has shape \(3, 5\).*3-dimensional \(K, f_in, f_out\)"):
        chebyshev_filter(x, lap, w[0])
    with pytest.raises(ParameterError, match="K=0 Chebyshev terms, but K >= 1"):
        chebyshev_filter(x, lap, np.zeros((0, 3, 5)))
    with pytest.raises(ParameterError, match=r"laplacian_scaled has shape \(5, 5\).*x has 4 nodes"):
        chebyshev_filter(x, np.eye(5), w)
    with pytest.raises(ParameterError, match=r"x has shape \(4,\)"):
        chebyshev_filter(np.ones(4), lap, w)
    with pytest.raises(ParameterError, match="x has dtype int64"):
        chebyshev_filter(np.ones((4, 3), dtype=np.int64), lap, w)
    bad = x.copy()
    bad[1, 2, 0] = np.nan
    with pytest.raises(ParameterError, match=r"x contains nan at index \(1, 2, 0\)"):
        chebyshev_filter(bad, lap, w)
    with pytest.raises(ParameterError, match="x is empty"):
        chebyshev_filter(np.zeros((0, 4, 3)), lap, w)
    with pytest.raises(ParameterError, match=r"weights contains inf at index \(0, 0, 0\)"):
        chebyshev_filter(x, lap, np.full((2, 3, 5), np.inf))


# ---------------------------------------------------------------------------
# Streaming
# ---------------------------------------------------------------------------


def _batch_frames(x, fs, window, hop, **kw):
    starts = list(range(0, x.shape[1] - window + 1, hop))
    return starts, [x[:, s:s + window] for s in starts]


def _chunked(x, cuts):
    edges = [0] + sorted(set(int(c) for c in cuts if 0 < c < x.shape[1])) + [x.shape[1]]
    return [x[:, a:b] for a, b in zip(edges[:-1], edges[1:])]


def _run_stream(flt, chunks):
    out = [flt.push(c) for c in chunks]
    return (np.concatenate([o.adjacency for o in out]), np.concatenate([o.laplacian for o in out]),
            None if out[0].features is None else np.concatenate([o.features for o in out]),
            np.concatenate([o.start for o in out]))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.integers(1, 599), max_size=12), hop_s=st.sampled_from([0.25, 0.5, 1.5]))
def test_streaming_correlation_equals_batch(kernel_mode, deap_trial, cuts, hop_s):
    x = deap_trial[:8, :600]
    rng = np.random.default_rng(3)
    weights = rng.standard_normal((3, 128, 4))
    flt = StreamingGraphFilter(FS_DEAP, 8, window_s=1.0, hop_s=hop_s, weights=weights)
    adj, lap, feats, starts = _run_stream(flt, _chunked(x, cuts))
    ref_starts, wins = _batch_frames(x, FS_DEAP, 128, int(hop_s * 128))
    np.testing.assert_array_equal(starts, ref_starts)
    for i, w in enumerate(wins):
        a = correlation_adjacency(w)
        np.testing.assert_array_equal(adj[i], a)
        np.testing.assert_array_equal(lap[i], normalized_laplacian(a))
        np.testing.assert_allclose(feats[i], chebyshev_filter(w, scaled_laplacian(a), weights), rtol=1e-12,
                                   atol=1e-9)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.integers(1, 767), max_size=10))
def test_streaming_coherence_equals_batch(kernel_mode, deap_trial, cuts):
    x = deap_trial[:6, 256:1024].astype(np.float32)
    flt = StreamingGraphFilter(FS_DEAP, 6, window_s=2.0, hop_s=1.0, adjacency="coherence", band=(8.0, 30.0),
                               nperseg=64, K=2)
    adj, lap, feats, starts = _run_stream(flt, _chunked(x, cuts))
    ref_starts, wins = _batch_frames(x, FS_DEAP, 256, 128)
    np.testing.assert_array_equal(starts, ref_starts)
    assert adj.dtype == np.float32
    assert feats.shape == (len(wins), 6, 2 * 256)
    for i, w in enumerate(wins):
        a = coherence_adjacency(w, FS_DEAP, band=(8.0, 30.0), nperseg=64)
        np.testing.assert_array_equal(adj[i], a)
        # K without weights: the unmixed basis [T_0 x, T_1 x]
        lt = scaled_laplacian(a)
        np.testing.assert_array_equal(feats[i, :, :256], w)
        np.testing.assert_allclose(feats[i, :, 256:], lt @ w, rtol=1e-4, atol=1e-3)


def test_streaming_fixed_adjacency_reset_and_empty(kernel_mode, rng):
    adj = distance_adjacency(montage_positions("muse4"))
    flt = StreamingGraphFilter(256.0, 4, window_s=0.5, hop_s=0.25, adjacency=adj, K=3,
                               node_features=lambda w: w.var(axis=1, keepdims=True))
    x = rng.standard_normal((4, 1000))
    empty = flt.push(x[:, :0])
    assert empty.adjacency.shape == (0, 4, 4) and empty.start.shape == (0,)
    first = flt.push(x)
    assert len(first.start) == (1000 - 128) // 64 + 1
    np.testing.assert_array_equal(first.adjacency[0], adj)
    basis = graph._chebyshev_basis_weights(3, 1, np.float64)
    expected = chebyshev_filter(x[:, 64:192].var(axis=1, keepdims=True), scaled_laplacian(adj), basis)
    np.testing.assert_allclose(first.features[1], expected, rtol=1e-12)
    flt.reset()
    again = flt.push(x)
    np.testing.assert_array_equal(again.adjacency, first.adjacency)
    np.testing.assert_array_equal(again.start, first.start)


def test_streaming_errors(rng):
    with pytest.raises(ParameterError, match=r"chunk has shape \(3, 10\), but \(4, n_samples\)"):
        StreamingGraphFilter(128.0, 4, window_s=1.0, hop_s=0.5).push(rng.standard_normal((3, 10)))
    with pytest.raises(ParameterError, match="window_s=0.01 s at fs=128.0 Hz is 1 sample"):
        StreamingGraphFilter(128.0, 4, window_s=0.01, hop_s=0.5)
    with pytest.raises(ParameterError, match="adjacency='pli' is not supported"):
        StreamingGraphFilter(128.0, 4, window_s=1.0, hop_s=0.5, adjacency="pli")
    with pytest.raises(ParameterError, match=r"K=2 but weights has shape \(3, 128, 4\)"):
        StreamingGraphFilter(128.0, 4, window_s=1.0, hop_s=0.5, K=2, weights=np.ones((3, 128, 4)))
    with pytest.raises(ParameterError, match="K=0 must be an integer >= 1"):
        StreamingGraphFilter(128.0, 4, window_s=1.0, hop_s=0.5, K=0)
    with pytest.raises(ParameterError, match=r"adjacency has shape \(3, 3\), but n_channels=4"):
        StreamingGraphFilter(128.0, 4, window_s=1.0, hop_s=0.5, adjacency=np.ones((3, 3)))
    flt = StreamingGraphFilter(128.0, 2, window_s=1.0, hop_s=0.5)
    chunk = rng.standard_normal((2, 200))
    chunk[1, 150] = np.nan
    with pytest.raises(ParameterError, match="window contains nan"):
        flt.push(chunk)
    with pytest.raises(ParameterError, match="chunk has dtype int16"):
        StreamingGraphFilter(128.0, 2, window_s=1.0, hop_s=0.5).push(np.zeros((2, 5), dtype=np.int16))


def test_coherence_falls_back_without_numba_fft(kernel_mode, monkeypatch, rng):
    from affectedge.native_kernels import _config

    x = rng.standard_normal((4, 600))
    with_fft = coherence_adjacency(x, 100.0, band=(5.0, 20.0), nperseg=100)
    monkeypatch.setattr(_config, "HAVE_NUMBA_FFT", False)
    np.testing.assert_allclose(coherence_adjacency(x, 100.0, band=(5.0, 20.0), nperseg=100), with_fft, atol=1e-12)
