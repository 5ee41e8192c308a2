"""TFLite export (litert-torch) and its two runtimes, on tiny real models.

Each model is trained for a few steps on a Gaussian-mixture task (so that
int8 top-1 agreement is meaningful), converted to fp32 / fp16 / int8 and run
in ai-edge-litert and in tflite-runtime 2.14 (isolated numpy<2 env, created
once and cached under ~/.cache/affectedge). Budgets: fp32 <= 1e-5 relative
to the output range, fp16 <= 1e-2, int8 top-1 agreement >= 0.95.

The wrong-number cases of tflite-runtime 2.14 (dynamic-range and int16x8
models from ai-edge-quantizer) are built here too and shown to be caught by
the comparison against torch.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_litert")

from affectedge.errors import ExportError, ModelError, ParameterError  # noqa: E402
from affectedge.exporters import _tflite as T  # noqa: E402

torch.set_num_threads(1)

BUDGET = {"fp32": 1e-5, "fp16": 1e-2}
INT8_TOP1 = 0.95
N_VAL = 48


# ------------------------------------------------------------------ models
class ConvNet(torch.nn.Module):
    """Small conv + dense classifier on a (1, 1, 16, 16) patch."""

    def __init__(self, k=4):
        super().__init__()
        self.c1 = torch.nn.Conv2d(1, 8, 3, padding=1)
        self.c2 = torch.nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.pool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc1 = torch.nn.Linear(16, 64)
        self.fc2 = torch.nn.Linear(64, k)

    def forward(self, x):
        h = torch.relu(self.c2(torch.relu(self.c1(x))))
        return self.fc2(torch.relu(self.fc1(torch.flatten(self.pool(h), 1))))


class GraphNet(torch.nn.Module):
    """Graph-style model: the node-axis multiply A @ X is a linear layer on the node axis."""

    def __init__(self, k=3, n=8, f=6):
        super().__init__()
        self.adj = torch.nn.Linear(n, n, bias=False)
        a = torch.rand(n, n) + torch.eye(n)
        with torch.no_grad():
            self.adj.weight.copy_(a / a.sum(1, keepdim=True))
        self.adj.weight.requires_grad_(False)
        self.w = torch.nn.Linear(f, 16)
        self.out = torch.nn.Linear(16 * n, k)

    def forward(self, x):  # x: (1, nodes, features)
        h = self.adj(x.transpose(1, 2)).transpose(1, 2)
        return self.out(torch.flatten(torch.relu(self.w(h)), 1))


class LSTMNet(torch.nn.Module):
    def __init__(self, k=4):
        super().__init__()
        self.rnn = torch.nn.LSTM(10, 16, batch_first=True)
        self.fc = torch.nn.Linear(16, k)

    def forward(self, x):
        o, _ = self.rnn(x)
        return self.fc(o[:, -1])


class GRUNet(LSTMNet):
    def __init__(self, k=4):
        super().__init__(k)
        self.rnn = torch.nn.GRU(10, 16, batch_first=True)


class TwoInputs(torch.nn.Module):
    """Two inputs of different shapes: checks the runtimes feed them in signature order."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(12, 8)
        self.b = torch.nn.Linear(5, 8)
        self.o = torch.nn.Linear(8, 3)

    def forward(self, x, y):
        return self.o(torch.relu(self.a(x) - 2.0 * self.b(y)))


SPECS = {
    "conv": (ConvNet, (1, 1, 16, 16), 4),
    "graph": (GraphNet, (1, 8, 6), 3),
    "lstm": (LSTMNet, (1, 12, 10), 4),
}


def _mixture(shape, k, n, seed):
    """Gaussian mixture: class prototypes plus noise (calibration-like data)."""
    protos = np.random.default_rng(1234 + int(np.prod(shape))).standard_normal((k,) + shape[1:])
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    x = protos[y] + 0.7 * rng.standard_normal((n,) + shape[1:])
    return x.astype(np.float32), y


def _trained(name):
    cls, shape, k = SPECS[name]
    torch.manual_seed(0)
    m = cls(k)
    x, y = _mixture(shape, k, 256, seed=1)
    opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=1e-2)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(60):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(m(xt), yt).backward()
        opt.step()
    return m.eval()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Every model x precision converted once: {(model, precision): (path, val, ref)}."""
    out = tmp_path_factory.mktemp("tflite")
    arts = {}
    for name, (_, shape, k) in SPECS.items():
        m = _trained(name)
        cal_x, _ = _mixture(shape, k, 64, seed=2)
        val_x, _ = _mixture(shape, k, N_VAL, seed=3)
        cal = [cal_x[i : i + 1] for i in range(len(cal_x))]
        val = [val_x[i : i + 1] for i in range(len(val_x))]
        with torch.no_grad():
            ref = m(torch.from_numpy(val_x)).numpy()
        for prec in T.PRECISIONS:
            p = T.to_tflite(m, (val[0],), out / f"{name}.{prec}.tflite", precision=prec,
                            calibration=cal if prec == "int8" else None)
            arts[(name, prec)] = (p, val, ref)
    return arts


@pytest.fixture(scope="session")
def tflite_runtime_env():
    """The isolated tflite-runtime 2.14 env, created once (cached under ~/.cache)."""
    try:
        py = T.ensure_tflite_runtime_env(create=True)
    except ExportError as exc:
        pytest.skip(f"tflite-runtime is UNAVAILABLE here (env could not be created): {exc}")
    assert py is not None and py.is_file()
    return py


def _errors(out, ref):
    rel = float(np.abs(out - ref).max() / np.abs(ref).max())
    top1 = float((out.argmax(1) == ref.argmax(1)).mean())
    return rel, top1


def _run(path, val, runtime, **kw):
    return T.run_tflite(path, val, runtime=runtime, threads=1, repeats=5, **kw)


# ------------------------------------------------------------ conversions
@pytest.mark.parametrize("runtime", T.RUNTIMES)
@pytest.mark.parametrize("prec", T.PRECISIONS)
@pytest.mark.parametrize("name", list(SPECS))
def test_artifact_matches_torch(built, name, prec, runtime, request):
    if runtime == "tflite-runtime":
        request.getfixturevalue("tflite_runtime_env")
    path, val, ref = built[(name, prec)]
    res = _run(path, val, runtime)
    assert res.runtime == runtime and res.threads == 1
    assert len(res.latency_ms) == 5 and all(t > 0 for t in res.latency_ms)
    assert res.peak_rss_mb >= res.baseline_rss_mb > 0
    out = res.outputs[0]
    assert out.shape == ref.shape and out.dtype == np.float32
    rel, top1 = _errors(out, ref)
    if prec in BUDGET:
        assert rel <= BUDGET[prec], f"{name} {prec} in {runtime}: relative error {rel:.2e}"
        assert top1 == 1.0
    else:
        assert top1 >= INT8_TOP1, f"{name} int8 in {runtime}: top-1 agreement {top1:.3f} (rel {rel:.3f})"
        assert rel <= 0.15, f"{name} int8 in {runtime}: relative error {rel:.3f}"


def test_runtimes_agree_on_int8(built, tflite_runtime_env):
    """PT2E full-integer int8 is computed the same by ai-edge-litert and tflite-runtime 2.14."""
    for name in SPECS:
        path, val, _ = built[(name, "int8")]
        a = _run(path, val, "ai-edge-litert", isolate=False).outputs[0]
        b = _run(path, val, "tflite-runtime").outputs[0]
        scale = T.describe_tflite(path)["outputs"][0]["quantization"][0]
        assert np.abs(a - b).max() <= 2 * scale + 1e-7, name  # at most a rounding step or two


def test_sizes_and_interfaces(built):
    d32 = T.describe_tflite(built[("conv", "fp32")][0])
    d16 = T.describe_tflite(built[("conv", "fp16")][0])
    d8 = T.describe_tflite(built[("conv", "int8")][0])
    assert d32["inputs"][0]["dtype"] == "float32" and d32["inputs"][0]["shape"] == [1, 1, 16, 16]
    # fp16: float16 weights expanded by DEQUANTIZE; float interface
    assert d16["ops"].get("DEQUANTIZE", 0) >= 3 and d16["inputs"][0]["dtype"] == "float32"
    assert d16["size_bytes"] < 0.75 * d32["size_bytes"]
    # int8: full-integer, int8 interface with scale/zero point
    assert d8["inputs"][0]["dtype"] == "int8" and d8["inputs"][0]["quantization"] is not None
    assert d8["outputs"][0]["dtype"] == "int8" and "DEQUANTIZE" not in d8["ops"]
    assert d8["size_bytes"] < 0.75 * d32["size_bytes"]


def test_multi_input_order(tmp_path, tflite_runtime_env):
    torch.manual_seed(0)
    m = TwoInputs().eval()
    rng = np.random.default_rng(0)
    ex = [(rng.standard_normal((1, 12)).astype(np.float32), rng.standard_normal((1, 5)).astype(np.float32))
          for _ in range(6)]
    with torch.no_grad():
        ref = np.concatenate([m(torch.from_numpy(a), torch.from_numpy(b)).numpy() for a, b in ex])
    p = T.to_tflite(m, ex[0], tmp_path / "two.tflite", precision="fp32")
    for rt in T.RUNTIMES:
        out = _run(p, ex, rt).outputs[0]
        assert _errors(out, ref)[0] <= 1e-5, rt
    with pytest.raises(ParameterError, match="takes 2 inputs"):
        _run(p, [ex[0][0]], "ai-edge-litert", isolate=False)
    with pytest.raises(ParameterError, match=r"expects shape \(1, 12\).*got \(1, 7\)"):
        _run(p, [(np.zeros((1, 7), np.float32), ex[0][1])], "ai-edge-litert", isolate=False)


def test_gru_int8_converts_and_runs(tmp_path):
    """litert-torch's GRU annotator crashes on nn.GRU without h0; ours leaves the GRU float."""
    torch.manual_seed(0)
    m = GRUNet().eval()
    x, _ = _mixture((1, 12, 10), 4, 16, seed=5)
    ex = [x[i : i + 1] for i in range(16)]
    p = T.to_tflite(m, (ex[0],), tmp_path / "gru.int8.tflite", precision="int8", calibration=ex)
    with torch.no_grad():
        ref = m(torch.from_numpy(x)).numpy()
    rel, top1 = _errors(_run(p, ex, "ai-edge-litert", isolate=False).outputs[0], ref)
    assert rel < 0.1 and top1 >= 0.9


def test_exported_program_source(tmp_path):
    m = _trained("graph")
    shape = SPECS["graph"][1]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    ep = torch.export.export(m, (torch.from_numpy(x),))
    p = T.to_tflite(ep, (x,), tmp_path / "ep.tflite", precision="fp32")
    with torch.no_grad():
        ref = m(torch.from_numpy(x)).numpy()
    assert _errors(_run(p, [x], "ai-edge-litert", isolate=False).outputs[0], ref)[0] <= 1e-5


class GatedQuad(torch.nn.Module):
    """Sigmoid gate (x * sigmoid(h)), softmax, and a product head like the EEG valence/arousal model.

    With litert-torch's own PT2E patterns, the quantized MULs here came out
    22 % wrong (both runtimes) or unloadable (SOFTMAX/LOGISTIC scale != 1/256).
    """

    def __init__(self):
        super().__init__()
        self.c = torch.nn.Conv1d(6, 16, 3, padding=1)
        self.g = torch.nn.Conv1d(16, 16, 1)
        self.fc = torch.nn.Linear(16, 2)
        self.sm = torch.nn.Linear(16, 4)

    def forward(self, x):  # (1, 6, 20)
        h = torch.relu(self.c(x))
        h = h * torch.sigmoid(self.g(h))
        z = h.mean(2)
        p = torch.sigmoid(self.fc(z))
        pv, pa = p[:, 0:1], p[:, 1:2]
        quad = torch.cat([pv * pa, pv * (1 - pa), (1 - pv) * pa, (1 - pv) * (1 - pa)], dim=1)
        return quad, 0.5 * torch.softmax(self.sm(z), dim=1) + 0.5 * quad


def test_int8_gates_and_products(tmp_path, tflite_runtime_env):
    torch.manual_seed(0)
    m = GatedQuad().eval()
    x, _ = _mixture((1, 6, 20), 4, 48, seed=9)
    ex = [x[i : i + 1] for i in range(len(x))]
    with torch.no_grad():
        refs = [r.numpy() for r in m(torch.from_numpy(x))]
    p = T.to_tflite(m, (ex[0],), tmp_path / "gq.int8.tflite", precision="int8", calibration=ex[:32])
    for rt in T.RUNTIMES:
        outs = _run(p, ex, rt).outputs
        assert len(outs) == 2
        for k, (o, ref) in enumerate(zip(outs, refs)):
            rel, top1 = _errors(o, ref)
            assert rel <= 0.05 and top1 >= 0.9, f"output {k} in {rt}: rel {rel:.3f}, top-1 {top1:.2f}"


# ------------------------------------------- tflite-runtime wrong numbers
def _dense(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(40, 64), torch.nn.ReLU(), torch.nn.Linear(64, 5)).eval()


def _aeq(fp32_path, recipe_name, cal):
    from ai_edge_quantizer import quantizer, recipe

    qt = quantizer.Quantizer(bytearray(fp32_path.read_bytes()), getattr(recipe, recipe_name)())
    if qt.need_calibration:
        res = qt.calibrate({"serving_default": [{"args_0": c} for c in cal]})
        return bytes(qt.quantize(res).quantized_model)
    return bytes(qt.quantize().quantized_model)


@pytest.mark.parametrize("recipe_name", ["dynamic_wi8_afp32", "static_wi8_ai16"])
def test_tflite_runtime_wrong_numbers_are_caught(tmp_path, tflite_runtime_env, recipe_name, capfd):
    """tflite-runtime 2.14 computes these ai-edge-quantizer models wrongly, silently.

    ai-edge-litert runs the same file within 2 % of torch (dynamic range) or
    of its own int16 grid; tflite-runtime is off by tens of percent. The
    comparison against torch (what the exporter's checker does) catches it.
    """
    if recipe_name == "static_wi8_ai16":
        m = _trained("graph")
        shape, k = SPECS["graph"][1:]
    else:
        m = _dense()
        shape, k = (1, 40), 5
    x, _ = _mixture(shape, k, 32, seed=7)
    ex = [x[i : i + 1] for i in range(len(x))]
    with torch.no_grad():
        ref = m(torch.from_numpy(x)).numpy()
    fp32 = T.to_tflite(m, (ex[0],), tmp_path / "m.fp32.tflite", precision="fp32")
    q = tmp_path / f"m.{recipe_name}.tflite"
    q.write_bytes(_aeq(fp32, recipe_name, ex))
    good = _run(q, ex, "ai-edge-litert", isolate=False).outputs[0]
    bad = _run(q, ex, "tflite-runtime").outputs[0]  # loads and runs: no error at all
    rel_good, _ = _errors(good, ref)
    rel_bad, _ = _errors(bad, ref)
    if recipe_name == "dynamic_wi8_afp32":
        assert rel_good <= 2e-2
    assert rel_bad > 0.3, f"tflite-runtime 2.14 now computes {recipe_name} correctly ({rel_bad:.3f}); update the notes"
    # The two runtimes disagree on the same file by far more than int8/int16
    # rounding: measured 1.21 vs 0.24 and 1.43 vs 0.49 relative to torch.
    assert rel_bad > 2 * rel_good
    assert _errors(bad, good)[0] > 0.3
    # the exporter therefore never produces these, and documents why
    assert T.DYNAMIC_RANGE_RUNTIMES == {"ai-edge-litert": True, "tflite-runtime": False}


def test_dynamic_int8_only_where_correct(tmp_path, tflite_runtime_env):
    m = _dense()
    x, _ = _mixture((1, 40), 5, 16, seed=8)
    ex = [x[i : i + 1] for i in range(len(x))]
    with torch.no_grad():
        ref = m(torch.from_numpy(x)).numpy()
    p = T.to_tflite(m, (ex[0],), tmp_path / "m.dyn.tflite", precision="dynamic-int8")
    assert _errors(_run(p, ex, "ai-edge-litert", isolate=False).outputs[0], ref)[0] <= 2e-2
    with pytest.raises(ExportError, match=r"tflite-runtime 2\.14\.0 does not support op FULLY_CONNECTED"):
        _run(p, ex, "tflite-runtime")


# ----------------------------------------------------------------- errors
def test_unsupported_op_is_named(tmp_path):
    class Cum(torch.nn.Module):
        def forward(self, x):
            return torch.cumprod(x, 1)

    with pytest.raises(ExportError, match=r"unsupported op aten\.cumprod.*TFLite/litert-torch") as ei:
        T.to_tflite(Cum(), (np.ones((1, 4), np.float32),), tmp_path / "c.tflite", precision="fp32")
    assert "Traceback" not in str(ei.value)
    assert not list(tmp_path.iterdir()), "a failed export leaves no file"


@pytest.mark.parametrize("runtime", T.RUNTIMES)
def test_corrupt_and_truncated_files(built, tmp_path, runtime, request):
    if runtime == "tflite-runtime":
        request.getfixturevalue("tflite_runtime_env")
    path, val, _ = built[("conv", "fp32")]
    data = path.read_bytes()
    trunc = tmp_path / "trunc.tflite"
    trunc.write_bytes(data[: len(data) // 3])
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"\x00" * 4 + b"NOPE" + bytes(200))
    with pytest.raises(ModelError, match="corrupt or truncated"):
        _run(trunc, val[:1], runtime)
    with pytest.raises(ModelError, match="not a TFLite flatbuffer"):
        _run(junk, val[:1], runtime)
    with pytest.raises(ModelError, match="does not exist"):
        _run(tmp_path / "missing.tflite", val[:1], runtime)


def test_bad_arguments(built, tmp_path):
    m = _dense()
    x = np.zeros((1, 40), np.float32)
    with pytest.raises(ParameterError, match="precision must be one of"):
        T.to_tflite(m, (x,), tmp_path / "a.tflite", precision="int4")
    with pytest.raises(ParameterError, match="needs calibration data"):
        T.to_tflite(m, (x,), tmp_path / "a.tflite", precision="int8")
    with pytest.raises(ParameterError, match="empty calibration set"):
        T.to_tflite(m, (x,), tmp_path / "a.tflite", precision="int8", calibration=[])
    with pytest.raises(ParameterError, match=r"calibration example 1 has shapes \[\(1, 39\)\]; expected \[\(1, 40\)\]"):
        T.to_tflite(m, (x,), tmp_path / "a.tflite", precision="int8",
                    calibration=[x, np.zeros((1, 39), np.float32)])
    path, val, _ = built[("conv", "fp32")]
    with pytest.raises(ParameterError, match="runtime must be one of"):
        T.run_tflite(path, val, runtime="tensorflow", threads=1)
    with pytest.raises(ParameterError, match="at least one input example"):
        T.run_tflite(path, [], runtime="ai-edge-litert", threads=1)


def test_runtime_report_and_missing_env(monkeypatch, tmp_path, built):
    info = T.tflite_runtimes()
    assert set(info) == {"ai-edge-litert", "tflite-runtime"}
    assert info["ai-edge-litert"]["available"] and info["ai-edge-litert"]["version"]
    for v in info.values():
        assert set(v) == {"available", "version", "why"} and v["why"]
    monkeypatch.setenv("AFFECTEDGE_TFLITE_RUNTIME_ENV", str(tmp_path / "no-env"))
    assert T.ensure_tflite_runtime_env(create=False) is None
    missing = T.tflite_runtimes()["tflite-runtime"]
    assert missing["available"] is False and missing["version"] is None
    assert "numpy<2" in missing["why"] and "no-env" in missing["why"]
    path, val, _ = built[("conv", "fp32")]
    with pytest.raises(ExportError, match="tflite-runtime is unavailable"):
        _run(path, val[:1], "tflite-runtime")
