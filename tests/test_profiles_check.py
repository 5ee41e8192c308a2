"""``affectedge profiles check``: MAC/parameter counting, operator coverage, precision, budgets, CLI output.

Hand-made ONNX graphs (onnx.helper) and TFLite flatbuffers (the LiteRT schema's object API) give exact
expected counts; every zoo model is checked against every shipped profile.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from types import MappingProxyType, SimpleNamespace

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from affectedge import models  # noqa: E402
from affectedge.device_profiles import _check as C  # noqa: E402
from affectedge.errors import ModelError, ParameterError  # noqa: E402


# ------------------------------------------------------------------ profiles
def _stand_in(name="stand-in", runtimes=(("onnxruntime", "CPUExecutionProvider", None),), size_mb=50.0,
              ram_mb=1024.0, simd=("neon",), precision="fp32", threads=2, gmacs=9.3):
    """A Profile-like object (used where the shipped profiles are not available, and for odd budgets)."""
    rcs = tuple(SimpleNamespace(runtime=r, provider=p, delegate=d) for r, p, d in runtimes)
    return SimpleNamespace(
        name=name, arch="aarch64", cores=4, clock_ghz=1.5, memory_mb=4096, accelerators=(), simd=simd,
        runtimes=rcs, threads=threads,
        precision=MappingProxyType({"speech": precision, "face": precision, "eeg": precision}),
        budgets=SimpleNamespace(model_size_mb=size_mb, ram_mb=ram_mb,
                                latency_ms=MappingProxyType({"speech": 200.0, "face": 100.0, "eeg": 250.0})),
        sustained_gmacs=gmacs, sources=MappingProxyType({"sustained_gmacs": "test figure"}), source_file="")


def _real_profiles():
    try:
        from affectedge.device_profiles import list_profiles, load
    except ImportError:
        return []
    return [load(n) for n in list_profiles()]


PROFILES = _real_profiles() or [
    _stand_in("pi-like", (("litert", None, "xnnpack"), ("onnxruntime", "CPUExecutionProvider", None))),
    _stand_in("jetson-like", (("onnxruntime", "TensorrtExecutionProvider", None),
                              ("onnxruntime", "CUDAExecutionProvider", None),
                              ("onnxruntime", "CPUExecutionProvider", None)), precision="fp16"),
    _stand_in("android-like", (("litert", None, "gpu"), ("onnxruntime", "NnapiExecutionProvider", None),
                               ("onnxruntime", "CPUExecutionProvider", None))),
]
ZOO = [m for m in models.ZOO if (models.zoo_dir(m) / "card.json").is_file()]


def _profile(name, fallback):
    for p in PROFILES:
        if p.name == name:
            return p
    return fallback


# ------------------------------------------------------------------ hand-made models
def _init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def _save(tmp_path, graph, name="m.onnx", opset=17):
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    path = tmp_path / name
    onnx.save(m, str(path))
    return path


def _mac_model(tmp_path):
    """Gemm 1x64 @ 64x32 (2048 MACs), Conv 3->4 3x3 on 8x8 (6912), grouped 1D Conv (384),
    MatMul with a dynamic batch (210) and a GRU (480)."""
    f32 = TensorProto.FLOAT
    rng = np.random.default_rng(0)
    inits = [
        _init("W", rng.standard_normal((64, 32)).astype(np.float32)), _init("B", np.zeros(32, np.float32)),
        _init("K", rng.standard_normal((4, 3, 3, 3)).astype(np.float32)),
        _init("K1", rng.standard_normal((8, 2, 3)).astype(np.float32)),
        _init("M", rng.standard_normal((6, 7)).astype(np.float32)),
        _init("GW", rng.standard_normal((1, 15, 3)).astype(np.float32)),
        _init("GR", rng.standard_normal((1, 15, 5)).astype(np.float32)),
    ]
    nodes = [
        helper.make_node("Gemm", ["x", "W", "B"], ["y"]),
        helper.make_node("Conv", ["img", "K"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["seq", "K1"], ["c1"], group=2),
        helper.make_node("MatMul", ["t", "M"], ["mm"]),
        helper.make_node("GRU", ["g", "GW", "GR"], ["gy", "gh"], hidden_size=5),
    ]
    graph = helper.make_graph(
        nodes, "macs",
        [helper.make_tensor_value_info("x", f32, [1, 64]), helper.make_tensor_value_info("img", f32, [1, 3, 8, 8]),
         helper.make_tensor_value_info("seq", f32, [1, 4, 10]),
         helper.make_tensor_value_info("t", f32, ["batch", 5, 6]),
         helper.make_tensor_value_info("g", f32, [4, 1, 3])],
        [helper.make_tensor_value_info("y", f32, [1, 32]), helper.make_tensor_value_info("c", f32, [1, 4, 8, 8]),
         helper.make_tensor_value_info("c1", f32, [1, 8, 8]), helper.make_tensor_value_info("mm", f32, ["batch", 5, 7]),
         helper.make_tensor_value_info("gy", f32, [4, 1, 1, 5])],
        inits)
    return _save(tmp_path, graph)


def _gelu_conv1d_model(tmp_path):
    """Gemm -> Gelu (opset 20) and a 1D Conv: ops some documented lists lack."""
    f32 = TensorProto.FLOAT
    rng = np.random.default_rng(1)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "W"], ["h"]), helper.make_node("Gelu", ["h"], ["y"]),
         helper.make_node("Conv", ["s", "K"], ["c"])],
        "gelu",
        [helper.make_tensor_value_info("x", f32, [1, 8]), helper.make_tensor_value_info("s", f32, [1, 2, 16])],
        [helper.make_tensor_value_info("y", f32, [1, 4]), helper.make_tensor_value_info("c", f32, [1, 3, 12])],
        [_init("W", rng.standard_normal((8, 4)).astype(np.float32)),
         _init("K", rng.standard_normal((3, 2, 5)).astype(np.float32))])
    return _save(tmp_path, graph, "gelu.onnx", opset=20)


def _fp16_model(tmp_path):
    """float16 weights cast to float32 in the graph (the keep-io-types layout of fp16 conversion)."""
    f32 = TensorProto.FLOAT
    w = np.random.default_rng(2).standard_normal((16, 4)).astype(np.float16)
    graph = helper.make_graph(
        [helper.make_node("Cast", ["W16"], ["W"], to=TensorProto.FLOAT), helper.make_node("MatMul", ["x", "W"], ["y"])],
        "fp16", [helper.make_tensor_value_info("x", f32, ["batch", 16])],
        [helper.make_tensor_value_info("y", f32, ["batch", 4])], [_init("W16", w)])
    return _save(tmp_path, graph, "fp16.onnx")


def _int8_model(tmp_path):
    f32 = TensorProto.FLOAT
    graph = helper.make_graph(
        [helper.make_node("DequantizeLinear", ["Wq", "s", "z"], ["W"]), helper.make_node("MatMul", ["x", "W"], ["y"])],
        "int8", [helper.make_tensor_value_info("x", f32, [1, 16])], [helper.make_tensor_value_info("y", f32, [1, 4])],
        [_init("Wq", np.ones((16, 4), np.int8)), _init("s", np.array(0.1, np.float32)),
         _init("z", np.array(0, np.int8))])
    return _save(tmp_path, graph, "int8.onnx")


def _tflite(path, *, fp16=False, extra_op=None):
    """x(1, 64) -> FULLY_CONNECTED(W 32x64, b 32) [-> extra op], built with the LiteRT schema's object API."""
    S = pytest.importorskip("ai_edge_litert.schema_py_generated")
    flatbuffers = pytest.importorskip("flatbuffers")
    w = np.random.default_rng(0).standard_normal((32, 64)).astype(np.float32)
    bufs, tensors, codes, ops = [S.BufferT()], [], [], []

    def tensor(name, shape, ttype, arr=None):
        b = S.BufferT()
        if arr is not None:
            b.data = np.frombuffer(np.ascontiguousarray(arr).tobytes(), np.uint8)
        bufs.append(b)
        t = S.TensorT()
        t.name, t.shape, t.type, t.buffer = name.encode(), np.array(shape, np.int32), ttype, len(bufs) - 1
        tensors.append(t)
        return len(tensors) - 1

    def op(code, ins, outs, opt_type=0, opt=None):
        idx = next((i for i, c in enumerate(codes) if c.builtinCode == code), None)
        if idx is None:
            c = S.OperatorCodeT()
            c.builtinCode, c.deprecatedBuiltinCode, c.version = code, min(code, 127), 1
            codes.append(c)
            idx = len(codes) - 1
        o = S.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = idx, np.array(ins, np.int32), np.array(outs, np.int32)
        o.builtinOptionsType, o.builtinOptions = opt_type, opt
        ops.append(o)

    x = tensor("x", [1, 64], S.TensorType.FLOAT32)
    if fp16:
        w16 = tensor("w16", [32, 64], S.TensorType.FLOAT16, w.astype(np.float16))
        wt = tensor("w", [32, 64], S.TensorType.FLOAT32)
        op(S.BuiltinOperator.DEQUANTIZE, [w16], [wt])
    else:
        wt = tensor("w", [32, 64], S.TensorType.FLOAT32, w)
    b = tensor("b", [32], S.TensorType.FLOAT32, np.zeros(32, np.float32))
    out = tensor("h", [1, 32], S.TensorType.FLOAT32)
    op(S.BuiltinOperator.FULLY_CONNECTED, [x, wt, b], [out], S.BuiltinOptions.FullyConnectedOptions,
       S.FullyConnectedOptionsT())
    if extra_op == "CUMSUM":
        axis = tensor("axis", [], S.TensorType.INT32, np.array(1, np.int32))
        y = tensor("y", [1, 32], S.TensorType.FLOAT32)
        op(S.BuiltinOperator.CUMSUM, [out, axis], [y], S.BuiltinOptions.CumsumOptions, S.CumsumOptionsT())
        out = y
    sg = S.SubGraphT()
    sg.tensors, sg.operators, sg.name = tensors, ops, b"main"
    sg.inputs, sg.outputs = np.array([x], np.int32), np.array([out], np.int32)
    m = S.ModelT()
    m.version, m.subgraphs, m.buffers, m.operatorCodes = 3, [sg], bufs, codes
    builder = flatbuffers.Builder(1024)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))
    return path


def _finite(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


# ------------------------------------------------------------------ MACs and parameters
def test_macs_and_parameters_of_a_hand_made_onnx_graph(tmp_path):
    a = C.analyze_onnx(_mac_model(tmp_path))
    assert a["macs_by_op"] == {"Gemm": 2048, "Conv": 6912 + 384, "MatMul": 210, "GRU": 480}
    assert a["macs"] == 2048 + 6912 + 384 + 210 + 480
    assert a["parameters"] == 64 * 32 + 32 + 4 * 27 + 8 * 6 + 42 + 45 + 75
    assert {s["name"]: s["shape"] for s in a["inputs"]}["t"] == [1, 5, 6]  # dynamic batch -> 1
    assert a["precision"] == "fp32" and not a["macs_unresolved"]


def test_gemm_alone_is_exactly_2048_macs_in_the_report(tmp_path):
    graph = helper.make_graph([helper.make_node("Gemm", ["x", "W"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32])],
                              [_init("W", np.ones((64, 32), np.float32))])
    r = C.check_model(_save(tmp_path, graph), _stand_in(), measure=False)
    assert r["macs"]["per_inference"] == 2048 and r["parameters"] == 2048
    assert r["memory"]["weights_mib"] == pytest.approx(2048 * 4 / 2**20)
    assert r["latency"]["target_estimate"]["ms"] == pytest.approx(2048 / 9.3e9 * 1e3)
    assert r["latency"]["host"] is None and r["memory"]["basis"] == "estimate"


def test_tflite_macs_parameters_and_precision(tmp_path):
    pytest.importorskip("ai_edge_litert")
    a = C.analyze_tflite(_tflite(tmp_path / "fc.tflite"))
    assert a["macs_by_op"] == {"FULLY_CONNECTED": 2048} and a["parameters"] == 2048 + 32
    assert a["precision"] == "fp32"
    h = C.analyze_tflite(_tflite(tmp_path / "fc16.tflite", fp16=True))
    assert h["precision"] == "fp16" and h["macs"] == 2048 and h["weight_bytes"] == 2048 * 2 + 32 * 4


def test_speech_input_shape_comes_from_the_card():
    if "speech-emotion" not in ZOO:
        pytest.skip("speech-emotion is not built")
    a = C.analyze_onnx(models.zoo_dir("speech-emotion") / "model.onnx", models.card("speech-emotion"))
    assert a["inputs"][0]["shape"] == [1, *models.card("speech-emotion").input["shape"][1:]] == [1, 251, 91]
    assert a["macs"] > 1_000_000 and not a["macs_unresolved"]


# ------------------------------------------------------------------ every zoo model x every profile
@pytest.mark.parametrize("model_id", ZOO)
def test_every_zoo_model_against_every_profile_gives_a_finite_report(model_id):
    for profile in PROFILES:
        r = C.check_model(model_id, profile, repeats=2)
        json.dumps(r, allow_nan=False)
        assert r["parameters"] > 0 and r["macs"]["per_inference"] > 0, profile.name
        for x in (r["file_size"]["mib"], r["memory"]["estimate_mib"], r["memory"]["basis_mib"],
                  r["latency"]["target_estimate"]["ms"], r["latency"]["host"]["median_ms"],
                  r["latency"]["host"]["p95_ms"]):
            assert _finite(x) and x > 0, (profile.name, x)
        assert r["verdict"]["exit_code"] in (0, 4)
        assert r["latency"]["target_estimate"]["label"] == "ESTIMATE"
        assert len(r["operator_coverage"]) == len(profile.runtimes)
        assert any(c["applies"] for c in r["operator_coverage"]) or r["verdict"]["warnings"]
        assert r["model"]["modality"] in ("speech", "face", "eeg")
        assert "MEASURED on this host" in r["latency"]["host"]["label"]


# ------------------------------------------------------------------ budgets and exit codes
def test_tiny_size_budget_exits_4_with_the_reason(tmp_path, capsys):
    model_id = ZOO[-1] if ZOO else None
    if model_id is None:
        pytest.skip("no zoo model built")
    args = argparse.Namespace(model=model_id, profile=_stand_in("tiny", size_mb=0.001), json=False, threads=1)
    assert C.check_cli(args) == 4
    out, err = capsys.readouterr()
    assert "OVER BUDGET (exit 4)" in out and "exceeds the model_size_mb budget of tiny" in out
    assert "over budget: file size" in err
    args.profile = _stand_in("roomy")
    assert C.check_cli(args) == 0


def test_user_profile_extending_a_shipped_one_with_tiny_budgets(tmp_path):
    if not _real_profiles() or not ZOO:
        pytest.skip("shipped profiles or zoo models not available")
    user = tmp_path / "tiny-pi.json"
    user.write_text(json.dumps({"name": "tiny-pi", "description": "a Pi 4 with a tiny RAM budget",
                                "extends": "raspberry-pi-4", "budgets": {"ram_mb": 0.001}}))
    r = C.check_model(ZOO[-1], str(user), repeats=1)
    assert r["verdict"]["exit_code"] == 4 and r["memory"]["ok"] is False
    assert any("ram_mb budget of tiny-pi" in f for f in r["verdict"]["failures"])


def test_latency_estimate_over_budget_is_a_warning_not_a_failure(tmp_path):
    p = _stand_in("slow", gmacs=1e-9)
    if not ZOO:
        pytest.skip("no zoo model built")
    r = C.check_model(ZOO[0], p, measure=False)
    assert r["latency"]["within_budget"] is False and r["verdict"]["exit_code"] == 0
    assert any("estimated target latency" in w for w in r["verdict"]["warnings"])


def test_bad_inputs_raise(tmp_path):
    with pytest.raises(ModelError, match="neither a zoo model id"):
        C.check_model(tmp_path / "missing.onnx", _stand_in())
    (tmp_path / "m.txt").write_text("x")
    with pytest.raises(ParameterError, match="must be an .onnx or .tflite"):
        C.check_model(tmp_path / "m.txt", _stand_in())
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError):
        C.check_model(tmp_path / "bad.onnx", _stand_in(), measure=False)
    with pytest.raises(ParameterError, match="threads"):
        C.check_model(_mac_model(tmp_path), _stand_in(), threads=0)


# ------------------------------------------------------------------ operator coverage
def test_op_coverage_flags_ops_missing_from_documented_lists(tmp_path):
    path = _gelu_conv1d_model(tmp_path)
    trt8 = _profile("jetson-nano", _stand_in("jetson-nano", (("onnxruntime", "TensorrtExecutionProvider", None),)))
    trt10 = _profile("jetson-orin-nano", _stand_in("jetson-orin-nano",
                                                   (("onnxruntime", "TensorrtExecutionProvider", None),)))
    nnapi = _stand_in("nnapi", (("onnxruntime", "NnapiExecutionProvider", None),
                                ("onnxruntime", "CPUExecutionProvider", None)))
    c8 = C.check_model(path, trt8, measure=False)["operator_coverage"][0]
    assert c8["list"]["name"] == "tensorrt-8.4" and c8["status"] == "partial"
    flagged = {f["op"]: f for f in c8["fallback_ops"]}
    assert flagged["Gelu"]["why"] == "not in the list" and "CUDA, then CPU" in flagged["Gelu"]["outcome"]
    assert "1D here" in flagged["Conv"]["why"]
    c10 = C.check_model(path, trt10, measure=False)["operator_coverage"][0]
    assert c10["list"]["name"] == "tensorrt-10.15" and "Gelu" not in {f["op"] for f in c10["fallback_ops"]}
    r = C.check_model(path, nnapi, repeats=2)
    cn, cpu = r["operator_coverage"]
    assert {f["op"] for f in cn["fallback_ops"]} == {"Gelu", "Conv"}
    assert cn["list"]["url"].startswith("https://github.com/microsoft/onnxruntime/")
    assert cpu["status"] == "complete" and "verified" in cpu["summary"]
    assert any("NnapiExecutionProvider" in w and "fall back" in w for w in r["verdict"]["warnings"])


def test_tflite_coverage_against_xnnpack_list_and_measured_delegation(tmp_path):
    pytest.importorskip("ai_edge_litert")
    pi = _stand_in("pi", (("litert", None, "xnnpack"), ("onnxruntime", "CPUExecutionProvider", None)))
    r = C.check_model(_tflite(tmp_path / "cum.tflite", extra_op="CUMSUM"), pi, repeats=2)
    x, ort = r["operator_coverage"]
    assert x["status"] == "partial" and [f["op"] for f in x["fallback_ops"]] == ["CUMSUM"]
    assert x["measured_here"]["whole_graph"] is False
    assert ort["applies"] is False and "needs a .onnx artifact" in ort["summary"]
    whole = C.check_model(_tflite(tmp_path / "fc.tflite"), pi, repeats=2)["operator_coverage"][0]
    assert whole["status"] == "complete" and whole["measured_here"]["whole_graph"] is True
    gpu = _stand_in("gpu", (("litert", None, "gpu"),))
    g = C.check_model(tmp_path / "cum.tflite", gpu, measure=False)["operator_coverage"][0]
    assert g["status"] == "complete" and "gpu_compatibility.cc" in g["list"]["url"]


def test_every_op_list_has_a_source_and_known_runtime():
    lists = C.op_lists()
    assert {"tensorrt-8.4", "tensorrt-10.15", "coreml-ep-mlprogram", "nnapi-ep", "litert-xnnpack",
            "litert-gpu", "litert-coreml-delegate"} <= set(lists)
    for name, d in lists.items():
        assert d["source"]["url"].startswith("https://"), name
        assert d["runtime"] in ("onnxruntime", "litert") and d["op_set"] in ("onnx", "tflite")
        assert d["supported"] and not (set(d["supported"]) & set(d.get("unsupported", ())))
        for op in d.get("conditions", {}):
            assert op in d["_supported"], (name, op)


# ------------------------------------------------------------------ precision
def test_fp16_artifact_is_detected_and_warned_about_on_a_cpu_only_pi(tmp_path):
    path = _fp16_model(tmp_path)
    a = C.analyze_onnx(path)
    assert a["precision"] == "fp16" and "float16" in a["precision_evidence"]
    pi4 = _stand_in("pi4-like", (("onnxruntime", "CPUExecutionProvider", None),), simd=("neon",))
    r = C.check_model(path, pi4, repeats=2)
    assert any("fp16 artifact on a CPU without fp16 arithmetic" in w for w in r["verdict"]["warnings"])
    pi5 = _stand_in("pi5-like", (("onnxruntime", "CPUExecutionProvider", None),), simd=("neon", "fp16"))
    r5 = C.check_model(path, pi5, measure=False)
    assert not any("without fp16 arithmetic" in w for w in r5["verdict"]["warnings"])


def test_int8_artifact_is_detected_and_warned_about_on_a_gpu_delegate(tmp_path):
    a = C.analyze_onnx(_int8_model(tmp_path))
    assert a["precision"] == "int8" and "DequantizeLinear" in a["precision_evidence"]
    fit = C._precision_fit({"precision": "int8", "precision_evidence": ""}, _stand_in(), "speech",
                           {"runtime_choice": "litert + gpu", "runtime": "litert", "provider": None,
                            "delegate": "gpu"})
    assert any("computes in floating point" in w for w in fit["warnings"])
    assert any("prefers fp32" in w for w in fit["warnings"])


# ------------------------------------------------------------------ output
def test_json_output_is_only_json_on_stdout():
    if not ZOO or not _real_profiles():
        pytest.skip("shipped profiles or zoo models not available")
    name = "raspberry-pi-4" if any(p.name == "raspberry-pi-4" for p in PROFILES) else PROFILES[0].name
    proc = subprocess.run([sys.executable, "-m", "affectedge", "profiles", "check", ZOO[-1], "--profile", name,
                           "--json", "--threads", "1"], capture_output=True, text=True, timeout=300)
    if proc.returncode == 2 and "invalid choice" in proc.stderr:
        pytest.skip("'profiles' is not registered in the CLI yet")
    assert proc.returncode in (0, 4), proc.stderr
    report = json.loads(proc.stdout)
    assert report["profile"]["name"] == name and report["model"]["zoo_id"] == ZOO[-1]
    assert report["sources"]["sustained_gmacs"]


def test_text_report_names_measured_and_estimated_latency(capsys):
    if not ZOO:
        pytest.skip("no zoo model built")
    args = argparse.Namespace(model=ZOO[0], profile=PROFILES[0], json=False, threads=None)
    assert C.check_cli(args) in (0, 4)
    out = capsys.readouterr().out
    assert "MEASURED on this host" in out and "target ESTIMATE" in out and "operator coverage" in out
    args.json = True
    C.check_cli(args)
    assert json.loads(capsys.readouterr().out)["model"]["ref"] == ZOO[0]
