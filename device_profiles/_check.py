"""Checking a model against a device profile: ``affectedge profiles check MODEL --profile NAME [--json]``.

:func:`check_model` takes an ONNX file, a TFLite file or a zoo id and reports,
against the profile's budgets:

* **parameters** (weight elements of the initializers / constant tensors),
  **MACs per inference** counted from the graph (ONNX: after
  ``onnx.shape_inference`` with the batch set to 1 and other dynamic
  dimensions from the model card's input shape; MatMul, Gemm, Conv,
  ConvTranspose, GRU, LSTM, RNN and their integer/QLinear forms. TFLite:
  FULLY_CONNECTED, CONV_2D, DEPTHWISE_CONV_2D, TRANSPOSE_CONV, CONV_3D and
  BATCH_MATMUL from the flatbuffer's tensor shapes), the **file size** and the
  **runtime memory**: an estimate (weights + the largest set of activations
  alive at once, walking the graph in order) and, when measuring, the resident
  set growth of creating a session and running it once on this host. The RAM
  verdict uses the larger of the two;
* **operator coverage** for each runtime choice of the profile, in preference
  order: which ops the provider or delegate would hand back to the CPU (or the
  next provider), from the documented operator lists kept as data in
  ``device_profiles/ops/*.json`` with their sources (onnx-tensorrt's support
  matrix, onnxruntime's Core ML and NNAPI EP tables, the XNNPACK delegate
  README, LiteRT's GPU compatibility checker, the Core ML delegate's doc).
  For .tflite files the XNNPACK delegation is also observed here (LiteRT
  applies XNNPACK by default), and a whole-graph delegation overrides a
  list that lags the delegate;
* **precision fit**: the artifact's precision read from the graph (float16
  initializers -> fp16; QuantizeLinear/DequantizeLinear, integer ops or int8
  weights -> int8) against the profile's preferred precision and what the
  target runtime does with it (fp16 on a CPU without fp16 arithmetic, int8
  on a GPU delegate, ...);
* **latency**: measured on *this host* at the profile's thread count through
  the project's one session factory (median and p95 over ``repeats`` calls
  with random inputs), and for the *target* an ESTIMATE = MACs / the
  profile's sustained GMAC/s, whose source the report cites.

Verdicts: the file size and RAM budgets are hard (``exit_code`` 4 and the
reason in ``verdict.failures``); a latency estimate over the modality's budget,
ops falling back, a runtime the artifact cannot use and precision mismatches
are warnings (the estimate is not a measurement on the device, so it does not
fail the check).
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from affectedge._optional import require
from affectedge.errors import ModelError, ParameterError

__all__ = ["EXIT_OVER_BUDGET", "OPS_DIR", "analyze_onnx", "analyze_tflite", "check_cli", "check_model",
           "format_report", "op_lists"]

EXIT_OVER_BUDGET = 4
OPS_DIR = Path(__file__).resolve().parent / "ops"
MIB = float(1 << 20)

_ONNX_MAC_OPS = ("MatMul", "Gemm", "Conv", "ConvTranspose", "GRU", "LSTM", "RNN", "MatMulInteger", "ConvInteger",
                 "QLinearMatMul", "QLinearConv")
_TFL_MAC_OPS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "CONV_3D", "BATCH_MATMUL")
# ops with weights that the counters above do not model: their MACs are not included (the report says so)
_TFL_UNCOUNTED = ("LSTM", "UNIDIRECTIONAL_SEQUENCE_LSTM", "BIDIRECTIONAL_SEQUENCE_LSTM", "UNIDIRECTIONAL_SEQUENCE_RNN",
                  "BIDIRECTIONAL_SEQUENCE_RNN", "RNN", "SVDF", "CONV_3D_TRANSPOSE")
_ONNX_QUANT_OPS = ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul",
                   "MatMulInteger", "ConvInteger", "QLinearAdd", "QLinearMul", "QLinearAveragePool",
                   "QLinearSigmoid", "QLinearConcat", "QLinearGlobalAveragePool")
_POOL_LIKE = ("Conv", "ConvTranspose", "AveragePool", "MaxPool", "LpPool", "GlobalAveragePool", "GlobalMaxPool",
              "GlobalLpPool", "QLinearConv", "ConvInteger", "Resize", "InstanceNormalization")


# ============================================================================ op lists (data)
def op_lists():
    """Every documented operator list in ``device_profiles/ops/*.json`` (name -> data), validated."""
    out = {}
    for path in sorted(OPS_DIR.glob("*.json")):
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelError(f"operator list {path} is unreadable ({exc}); reinstall affectedge") from None
        for key in ("name", "runtime", "op_set", "supported", "source", "fallback"):
            if key not in d:
                raise ModelError(f"operator list {path} lacks key {key!r}; reinstall affectedge")
        if not d["source"].get("url"):
            raise ModelError(f"operator list {path} has no source url")
        d["_supported"] = frozenset(d["supported"])
        d["_unsupported"] = frozenset(d.get("unsupported", ()))
        out[d["name"]] = d
    return out


def _list_for(rc, profile_name, lists):
    """The documented list for a runtime choice (its provider/delegate), preferring one tied to the profile."""
    if rc.runtime == "onnxruntime":
        cands = [d for d in lists.values() if d["runtime"] == "onnxruntime" and d.get("provider") == rc.provider]
    elif rc.runtime == "litert":
        cands = [d for d in lists.values() if d["runtime"] == "litert" and d.get("delegate") == rc.delegate]
    else:
        cands = []
    for d in cands:
        if profile_name in d.get("profiles", ()):
            return d
    for d in cands:
        if d.get("default"):
            return d
    return cands[0] if cands else None


# ============================================================================ small helpers
def _prod(shape):
    out = 1
    for d in shape:
        out *= int(d)
    return out


def _known(shape):
    return shape is not None and all(isinstance(d, (int, np.integer)) and d >= 0 for d in shape)


def _current_rss_mib():
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _label(rc):
    return rc.runtime + (f" {rc.provider}" if rc.provider else "") + (f" + {rc.delegate}" if rc.delegate else "")


def _modality(card):
    if card is None:
        return None
    pipeline = str((card.input or {}).get("pipeline", ""))
    for m in ("speech", "face", "eeg"):
        if pipeline.startswith(m):
            return m
    return None


def _fmt_count(n):
    n = float(n)
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.3g} {unit}"
    return f"{n:.0f}"


def _clean(obj):
    """JSON-ready: numpy scalars to Python, non-finite floats to None, tuples to lists, paths to str."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


# ============================================================================ ONNX analysis
def _onnx():
    return require("onnx", "export", "counting an ONNX graph's parameters and MACs (shape inference)")


def _card_dims(card, rank, input_index=0):
    """Dims (None = unknown) the card gives for an input of ``rank``, aligned to the right."""
    if card is None:
        return [None] * rank
    shape = (card.input or {}).get("shape") if input_index == 0 else None
    if not isinstance(shape, (list, tuple)):
        return [None] * rank
    dims = [d if isinstance(d, int) and d > 0 else None for d in shape]
    if len(dims) > rank:
        dims = dims[len(dims) - rank:]
    return [None] * (rank - len(dims)) + dims


def analyze_onnx(path, card=None, input_shapes=None):
    """Parameters, MACs, activations, precision and op details of an ONNX file (see the module doc).

    ``input_shapes``: {input name: shape} overriding the batch-1 / card shapes.
    """
    onnx = _onnx()
    from onnx import helper, shape_inference

    path = Path(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and friends
        raise ModelError(f"{str(path)!r} is not a readable ONNX model ({type(exc).__name__}: {exc}); "
                         "re-export it or restore the original") from exc
    g = model.graph
    notes = []
    inits = {t.name: t for t in g.initializer}
    const_names = set(inits)
    const_tensors = dict(inits)
    for node in g.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            for a in node.attribute:
                if a.name == "value" and a.t is not None:
                    const_tensors[node.output[0]] = a.t
            const_names.update(node.output)

    # ---- concrete input shapes: batch -> 1, other dynamic dims from the card
    inputs = [i for i in g.input if i.name not in inits]
    overrides = dict(input_shapes or {})
    specs = []
    for idx, inp in enumerate(inputs):
        tt = inp.type.tensor_type
        if not tt.HasField("shape"):
            raise ParameterError(f"input {inp.name!r} of {str(path)!r} has no shape; cannot count MACs or build a "
                                 "random input for it")
        dims = list(tt.shape.dim)
        card_dims = _card_dims(card, len(dims), idx)
        if inp.name in overrides:
            shape = [int(d) for d in overrides[inp.name]]
            if len(shape) != len(dims):
                raise ParameterError(f"input_shapes[{inp.name!r}] has rank {len(shape)}; the model's input has "
                                     f"rank {len(dims)}")
        else:
            shape = []
            for j, d in enumerate(dims):
                if d.HasField("dim_value") and d.dim_value > 0:
                    shape.append(int(d.dim_value))
                elif j == 0:
                    shape.append(1)
                elif card_dims[j] is not None:
                    shape.append(int(card_dims[j]))
                else:
                    shape.append(1)
                    notes.append(f"dimension {j} ({d.dim_param or 'unnamed'}) of input {inp.name!r} is dynamic and "
                                 "no card gives it: assumed 1, so MACs and latency are for that size")
        for j, d in enumerate(dims):
            d.Clear()
            d.dim_value = shape[j]
        specs.append({"name": inp.name, "shape": shape,
                      "dtype": np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type)).name})

    try:
        inferred = shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception as exc:  # shape inference can fail on custom domains
        notes.append(f"onnx shape inference failed ({type(exc).__name__}: {str(exc)[:200]}); MACs from the shapes "
                     "stored in the file only")
        inferred = model
    ig = inferred.graph
    shapes, etypes = {}, {}
    for vi in list(ig.input) + list(ig.value_info) + list(ig.output):
        tt = vi.type.tensor_type
        etypes[vi.name] = tt.elem_type
        if tt.HasField("shape"):
            dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
            shapes[vi.name] = dims if all(d is not None for d in dims) else None
    for name, t in const_tensors.items():
        shapes[name] = list(t.dims)
        etypes[name] = t.data_type

    def shape(name):
        s = shapes.get(name)
        return s if _known(s) else None

    # tensors static inference left unknown (e.g. behind a GRU or a computed Reshape): take their shapes from
    # one onnxruntime run of the graph at the same input shapes, when onnxruntime is installed
    missing = sorted({t for n in ig.node if n.op_type != "Constant" for t in list(n.input) + list(n.output)
                      if t and t not in const_names and shape(t) is None})
    if missing:
        got = _runtime_shapes(model, specs, missing)
        for name, (shp, etype) in got.items():
            shapes[name], etypes[name] = list(shp), etype
        if got:
            notes.append(f"shapes of {len(got)} tensor(s) static shape inference left unknown were taken from one "
                         "onnxruntime run at the same input shapes")

    # ---- parameters: weight-like constants (float / int8 / uint8 / int4 ...), not int64/int32 shape constants
    weight_types = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16,
                    onnx.TensorProto.DOUBLE, onnx.TensorProto.INT8, onnx.TensorProto.UINT8}
    for extra in ("INT4", "UINT4", "FLOAT8E4M3FN", "FLOAT8E5M2"):
        if hasattr(onnx.TensorProto, extra):
            weight_types.add(getattr(onnx.TensorProto, extra))
    params = 0
    weight_bytes = 0
    const_bytes = 0
    type_elems = Counter()
    external = set()
    for name, t in const_tensors.items():
        n = _prod(t.dims)
        item = _itemsize(t.data_type)
        const_bytes += n * item
        if t.data_type in weight_types:
            params += n
            weight_bytes += n * item
            type_elems[helper.tensor_dtype_to_string(t.data_type).replace("TensorProto.", "")] += n
        if t.data_location == onnx.TensorProto.EXTERNAL:
            for e in t.external_data:
                if e.key == "location":
                    external.add(e.value)

    # ---- MACs
    macs_by_op = Counter()
    unresolved = []
    for node in ig.node:
        if node.op_type not in _ONNX_MAC_OPS or node.domain not in ("", "ai.onnx"):
            continue
        m = _onnx_node_macs(node, shape)
        if m is None:
            unresolved.append(f"{node.op_type} {node.name or node.output[0]!r}")
        else:
            macs_by_op[node.op_type] += m
    if unresolved:
        notes.append(f"{len(unresolved)} MAC node(s) have shapes shape inference could not resolve and are not "
                     f"counted: {', '.join(unresolved[:5])}")

    # ---- activations: the largest set of non-constant tensors alive at once, in node order
    peak_act, act_unknown = _liveness(
        [(list(n.input), list(n.output)) for n in ig.node if n.op_type != "Constant"],
        [s["name"] for s in specs], [o.name for o in ig.output], const_names,
        lambda name: (_prod(shape(name)) * _itemsize(etypes.get(name, 1))) if shape(name) is not None else None)
    if act_unknown:
        notes.append(f"{act_unknown} intermediate tensor(s) have unknown shapes and are left out of the activation "
                     "estimate")

    # ---- precision
    op_types = Counter(n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}:{n.op_type}" for n in g.node)
    quant_ops = sorted(op for op in op_types if op.split(":")[-1] in _ONNX_QUANT_OPS)
    low_bit = {k: v for k, v in type_elems.items() if k in ("INT8", "UINT8", "INT4", "UINT4")}
    fp16 = {k: v for k, v in type_elems.items() if k in ("FLOAT16", "BFLOAT16")}
    fp16_inputs = [s["name"] for s in specs if s["dtype"] == "float16"]
    if quant_ops or low_bit:
        precision = "int8"
        evidence = ", ".join(filter(None, [f"quantization ops {', '.join(quant_ops)}" if quant_ops else "",
                                           ", ".join(f"{v:,} {k.lower()} weight elements" for k, v in
                                                     low_bit.items())]))
    elif fp16 or fp16_inputs:
        precision = "fp16"
        evidence = ", ".join(filter(None, [", ".join(f"{v:,} {k.lower()} weight elements" for k, v in fp16.items()),
                                           f"float16 inputs {fp16_inputs}" if fp16_inputs else ""]))
    else:
        precision = "fp32"
        evidence = "no float16 or 8-bit tensors and no quantization ops in the graph"

    # ---- per-node details for operator coverage
    nodes = []
    for node in g.node:
        key = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}:{node.op_type}"
        if key == "Constant":
            continue
        in0 = shape(node.input[0]) if node.input and node.input[0] else None
        nodes.append({"op": key, "name": node.name or (node.output[0] if node.output else key),
                      "spatial_dims": (len(in0) - 2) if (in0 is not None and node.op_type in _POOL_LIKE) else None,
                      "const_inputs": [bool(i) and i in const_names for i in node.input],
                      "present_inputs": [bool(i) for i in node.input]})

    size = path.stat().st_size + sum((path.parent / e).stat().st_size for e in external
                                     if (path.parent / e).is_file())
    opsets = {(o.domain or "ai.onnx"): o.version for o in model.opset_import}
    return {
        "format": "onnx", "file_size_bytes": size, "inputs": specs, "parameters": params,
        "weight_bytes": weight_bytes, "constant_bytes": const_bytes,
        "macs": int(sum(macs_by_op.values())), "macs_by_op": dict(macs_by_op), "macs_unresolved": unresolved,
        "peak_activation_bytes": peak_act, "op_counts": dict(op_types), "nodes": nodes,
        "precision": precision, "precision_evidence": evidence, "notes": notes, "opsets": opsets,
    }


def _runtime_shapes(model, specs, names):
    """{name: (shape, onnx elem type)} of intermediate tensors from one onnxruntime CPU run (no graph rewrites)."""
    try:
        import onnxruntime as ort
        from onnx import helper
    except ImportError:
        return {}
    m = type(model)()
    m.CopyFrom(model)
    known = {o.name for o in m.graph.output}
    for n in names:
        if n not in known:
            m.graph.output.append(helper.ValueInfoProto(name=n))
    try:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        opts.log_severity_level = 3
        opts.intra_op_num_threads = 1
        sess = ort.InferenceSession(m.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"])
        want = [o.name for o in sess.get_outputs() if o.name in set(names)]
        vals = sess.run(want, dict(zip([s["name"] for s in specs], _random_inputs(specs))))
    except Exception:  # a graph onnxruntime cannot run this way: keep the static figures
        return {}
    out = {}
    for n, v in zip(want, vals):
        v = np.asarray(v)
        try:
            et = int(helper.np_dtype_to_tensor_dtype(v.dtype))
        except Exception:
            et = 1
        out[n] = (list(v.shape), et)
    return out


def _itemsize(onnx_type):
    onnx = _onnx()
    from onnx import helper

    try:
        return int(np.dtype(helper.tensor_dtype_to_np_dtype(onnx_type)).itemsize)
    except Exception:  # string / packed 4-bit types
        return 1 if onnx_type not in (getattr(onnx.TensorProto, "STRING", 8),) else 0


def _attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            from onnx import helper

            return helper.get_attribute_value(a)
    return default


def _onnx_node_macs(node, shape):
    """MACs of one ONNX node from its inferred shapes, or None when a shape is unknown."""
    op = node.op_type
    ins = list(node.input)
    out = shape(node.output[0]) if node.output else None
    if op in ("MatMul", "MatMulInteger", "QLinearMatMul"):
        a = shape(ins[0])
        if a is None or out is None:
            return None
        return _prod(out) * int(a[-1])
    if op == "Gemm":
        a = shape(ins[0])
        if a is None or out is None:
            return None
        k = a[0] if _attr(node, "transA", 0) else a[1]
        return _prod(out) * int(k)
    if op in ("Conv", "ConvInteger", "QLinearConv"):
        w = shape(ins[3] if op == "QLinearConv" else ins[1])
        if w is None or out is None:
            return None
        return _prod(out) * _prod(w[1:])
    if op == "ConvTranspose":
        x, w = shape(ins[0]), shape(ins[1])
        if x is None or w is None:
            return None
        return _prod(x) * _prod(w[1:])
    if op in ("GRU", "LSTM", "RNN"):
        x, w = shape(ins[0]), shape(ins[1])
        if x is None or w is None:
            return None
        gates = {"GRU": 3, "LSTM": 4, "RNN": 1}[op]
        hidden = int(_attr(node, "hidden_size", 0) or (w[1] // gates))
        layout = int(_attr(node, "layout", 0) or 0)
        seq, batch = (x[1], x[0]) if layout == 1 else (x[0], x[1])
        dirs, in_size = w[0], x[2]
        return int(seq) * int(batch) * int(dirs) * gates * hidden * (int(in_size) + hidden)
    return None


def _liveness(ops, inputs, outputs, const_names, nbytes):
    """Peak bytes of non-constant tensors alive at once, walking ``ops`` [(inputs, outputs)] in order."""
    last_use = {}
    for i, (ins, _) in enumerate(ops):
        for t in ins:
            if t:
                last_use[t] = i
    end = len(ops)
    for t in outputs:
        last_use[t] = end
    sizes, unknown = {}, 0

    def size(t):
        nonlocal unknown
        if t not in sizes:
            b = nbytes(t)
            if b is None:
                unknown += 1
                b = 0
            sizes[t] = b
        return sizes[t]

    live = {t for t in inputs if t not in const_names}
    cur = sum(size(t) for t in live)
    peak = cur
    for i, (ins, outs) in enumerate(ops):
        for t in outs:
            if t and t not in const_names and t not in live:
                live.add(t)
                cur += size(t)
        peak = max(peak, cur)
        for t in list(ins) + list(outs):
            if t in live and last_use.get(t, -1) <= i:
                live.discard(t)
                cur -= size(t)
    return int(peak), unknown


# ============================================================================ TFLite analysis
_TFL_ITEMSIZE = {"FLOAT32": 4, "FLOAT16": 2, "INT32": 4, "UINT8": 1, "INT64": 8, "STRING": 0, "BOOL": 1, "INT16": 2,
                 "COMPLEX64": 8, "INT8": 1, "FLOAT64": 8, "COMPLEX128": 16, "UINT64": 8, "RESOURCE": 0,
                 "VARIANT": 0, "UINT32": 4, "UINT16": 2, "INT4": 0.5, "BFLOAT16": 2}
_TFL_NP = {"FLOAT32": "float32", "FLOAT16": "float16", "INT32": "int32", "UINT8": "uint8", "INT64": "int64",
           "BOOL": "bool", "INT16": "int16", "INT8": "int8", "FLOAT64": "float64", "UINT32": "uint32",
           "UINT16": "uint16"}


def _schema():
    return require("ai_edge_litert.schema_py_generated", "tflite", "reading a TFLite flatbuffer")


def _enum_names(enum_cls):
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


def analyze_tflite(path):
    """Parameters, MACs, activations, precision and op details of a TFLite flatbuffer (see the module doc)."""
    S = _schema()
    path = Path(path)
    data = path.read_bytes()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelError(f"{str(path)!r} is not a TFLite flatbuffer (no TFL3 identifier); re-export it")
    try:
        model = S.ModelT.InitFromPackedBuf(bytearray(data), 0)
    except Exception as exc:
        raise ModelError(f"{str(path)!r} is a corrupt TFLite flatbuffer ({type(exc).__name__}: {exc})") from exc
    op_names = _enum_names(S.BuiltinOperator)
    type_names = _enum_names(S.TensorType)
    codes = []
    for oc in model.operatorCodes or []:
        code = max(int(oc.builtinCode or 0), int(oc.deprecatedBuiltinCode or 0))
        name = op_names.get(code, f"BUILTIN_{code}")
        if name == "CUSTOM":
            cc = oc.customCode.decode() if isinstance(oc.customCode, bytes) else str(oc.customCode)
            name = f"CUSTOM:{cc}"
        codes.append(name)
    buffers = model.buffers or []

    def is_const(t):
        if t.buffer is None or t.buffer <= 0 or t.buffer >= len(buffers):
            return False
        b = buffers[t.buffer]
        return (b.data is not None and len(b.data) > 0) or bool(b.size)

    notes = []
    params = weight_bytes = 0
    macs_by_op = Counter()
    uncounted = Counter()
    nodes = []
    op_counts = Counter()
    peak_act = 0
    act_unknown = 0
    quant_act = set()
    const_types = Counter()
    specs = []
    for si, sg in enumerate(model.subgraphs or []):
        tensors = sg.tensors or []
        tshape = [list(int(d) for d in t.shape) if t.shape is not None else [] for t in tensors]
        ttype = [type_names.get(int(t.type), str(t.type)) for t in tensors]
        const = [is_const(t) for t in tensors]
        bias_like = set()
        for op in sg.operators or []:
            name = codes[op.opcodeIndex]
            ins = [int(i) for i in (op.inputs if op.inputs is not None else [])]
            if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "CONV_3D") and len(ins) > 2 and ins[2] >= 0:
                bias_like.add(ins[2])
            if name == "TRANSPOSE_CONV" and len(ins) > 3 and ins[3] >= 0:
                bias_like.add(ins[3])
        for i, t in enumerate(tensors):
            if not const[i]:
                if ttype[i] in ("INT8", "UINT8", "INT16") and t.quantization is not None and \
                        t.quantization.scale is not None and len(t.quantization.scale):
                    quant_act.add(ttype[i])
                continue
            n = _prod(tshape[i])
            if ttype[i] in ("FLOAT32", "FLOAT16", "BFLOAT16", "FLOAT64", "INT8", "UINT8", "INT16", "INT4") or \
                    (i in bias_like and ttype[i] == "INT32"):
                params += n
                weight_bytes += int(n * _TFL_ITEMSIZE.get(ttype[i], 4))
                const_types[ttype[i]] += n
        ops = []
        for op in sg.operators or []:
            name = codes[op.opcodeIndex]
            op_counts[name] += 1
            ins = [int(i) for i in (op.inputs if op.inputs is not None else [])]
            outs = [int(i) for i in (op.outputs if op.outputs is not None else [])]
            ops.append(([str(i) for i in ins if i >= 0], [str(i) for i in outs]))
            m = _tfl_op_macs(name, op, ins, outs, tshape, S)
            if m is not None:
                macs_by_op[name] += m
            elif name in _TFL_UNCOUNTED:
                uncounted[name] += 1
            nodes.append({"op": name, "name": f"subgraph {si} op {len(nodes)}",
                          "input_types": [ttype[i] if i >= 0 else None for i in ins],
                          "const_inputs": [i >= 0 and const[i] for i in ins],
                          "present_inputs": [i >= 0 for i in ins]})
        if si == 0:
            names = [t.name.decode() if isinstance(t.name, bytes) else str(t.name) for t in tensors]
            specs = [{"name": names[i],
                      "shape": [max(1, d) for d in tshape[i]], "dtype": _TFL_NP.get(ttype[i], "float32"),
                      "index": int(i)} for i in (sg.inputs if sg.inputs is not None else [])]
        const_ids = {str(i) for i in range(len(tensors)) if const[i]}
        p, u = _liveness(ops, [str(i) for i in (sg.inputs if sg.inputs is not None else [])],
                         [str(i) for i in (sg.outputs if sg.outputs is not None else [])], const_ids,
                         lambda t: int(_prod(tshape[int(t)]) * _TFL_ITEMSIZE.get(ttype[int(t)], 4)))
        peak_act = max(peak_act, p)
        act_unknown += u
    if uncounted:
        notes.append("MACs of " + ", ".join(f"{v} {k}" for k, v in uncounted.items()) + " op(s) are not counted "
                     "(no formula here); the MAC total is a lower bound")
    if quant_act:
        precision = "int8"
        evidence = f"quantized {'/'.join(sorted(quant_act)).lower()} activations (full-integer model)"
        if "INT16" in quant_act:
            evidence += "; int16 activations (16x8 quantization)"
    elif const_types.get("INT8") or const_types.get("UINT8") or const_types.get("INT4"):
        precision = "int8"
        evidence = (f"{const_types.get('INT8', 0) + const_types.get('UINT8', 0) + const_types.get('INT4', 0):,} 8-bit "
                    "weight elements with float activations (dynamic-range / weight-only quantization)")
    elif const_types.get("FLOAT16"):
        precision = "fp16"
        evidence = f"{const_types['FLOAT16']:,} float16 weight elements (dequantized to float32 at load)"
    else:
        precision = "fp32"
        evidence = "float32 weights and activations"
    return {
        "format": "tflite", "file_size_bytes": len(data), "inputs": specs, "parameters": int(params),
        "weight_bytes": int(weight_bytes), "macs": int(sum(macs_by_op.values())), "macs_by_op": dict(macs_by_op),
        "macs_unresolved": [], "peak_activation_bytes": int(peak_act), "op_counts": dict(op_counts),
        "nodes": nodes, "precision": precision, "precision_evidence": evidence, "notes": notes,
    }


def _tfl_op_macs(name, op, ins, outs, tshape, S):
    if name not in _TFL_MAC_OPS or not outs:
        return None
    out = tshape[outs[0]]
    try:
        if name == "FULLY_CONNECTED":
            return _prod(out) * int(tshape[ins[1]][-1])
        if name == "CONV_2D":
            return _prod(out) * _prod(tshape[ins[1]][1:])
        if name == "DEPTHWISE_CONV_2D":
            w = tshape[ins[1]]
            return _prod(out) * int(w[1]) * int(w[2])
        if name == "CONV_3D":
            w = tshape[ins[1]]  # [kd, kh, kw, in, out]
            return _prod(out) * _prod(w[:4])
        if name == "TRANSPOSE_CONV":
            w, x = tshape[ins[1]], tshape[ins[2]]  # [out, kh, kw, in], input NHWC
            return _prod(x) * _prod(w[:3])
        if name == "BATCH_MATMUL":
            x = tshape[ins[0]]
            adj_x = bool(getattr(op.builtinOptions, "adjX", False)) if op.builtinOptions is not None else False
            return _prod(out) * int(x[-2] if adj_x else x[-1])
    except (IndexError, TypeError):
        return None
    return None


# ============================================================================ resolving the model
def _resolve_profile(profile):
    if profile is not None and hasattr(profile, "runtimes") and hasattr(profile, "budgets"):
        return profile
    from affectedge import device_profiles

    if profile is None:
        raise ParameterError("a profile is needed: a shipped name (see 'affectedge profiles list'), a profile "
                             ".json file, or 'auto'")
    if str(profile) == "auto":
        return device_profiles.detect().profile
    return device_profiles.load(profile)


def _artifact_for(folder, card_file, rc, precision):
    """The file a runtime choice would run: <stem>.<precision><suffix>, <stem>.fp32<suffix>, <stem><suffix>."""
    suffix = {"onnxruntime": ".onnx", "litert": ".tflite"}.get(rc.runtime)
    if suffix is None:
        return None
    stem = Path(card_file).stem
    cands = ([folder / f"{stem}.{precision}{suffix}"] if precision and precision != "fp32" else []) + \
        [folder / f"{stem}.fp32{suffix}", folder / f"{stem}{suffix}"]
    return next((p for p in cands if p.is_file()), None)


def _resolve_model(model, profile):
    """(artifact path, card or None, how it was chosen, zoo id or None)."""
    from affectedge import models

    ref = str(model)
    if ref in models.ZOO or (Path(ref).is_dir() and (Path(ref) / "card.json").is_file()):
        card = models.card(ref)
        folder = models.zoo_dir(ref) if ref in models.ZOO else Path(ref)
        modality = _modality(card)
        want = dict(profile.precision).get(modality, "fp32") if modality else "fp32"
        for rc in profile.runtimes:
            found = _artifact_for(folder, card.file, rc, want)
            if found is not None:
                return found, card, f"the file {_label(rc)} would run under this profile", (ref if ref in models.ZOO
                                                                                            else None)
        fallback = folder / card.file
        if not fallback.is_file():
            raise ModelError(f"model file {str(fallback)!r} named on the card of {ref!r} is missing; run 'make models'")
        return fallback, card, "the card's file (no runtime choice of this profile has an artifact for it)", \
            (ref if ref in models.ZOO else None)
    path = Path(ref).expanduser()
    if not path.exists():
        raise ModelError(f"{ref!r} is neither a zoo model id ({', '.join(models.ZOO)}) nor an existing .onnx / "
                         ".tflite file; check the path")
    if path.is_dir():
        raise ParameterError(f"{ref!r} is a folder without card.json; pass the .onnx / .tflite file itself")
    if path.suffix.lower() not in (".onnx", ".tflite"):
        raise ParameterError(f"{ref!r} must be an .onnx or .tflite file (got {path.suffix or 'no'} suffix) or a zoo id")
    card = None
    if (path.parent / "card.json").is_file():
        try:
            card = models.card(path)
        except ModelError:
            card = None
    if card is not None and isinstance(card.extra, dict):
        # a variant file (e.g. temporal.onnx) has its own input spec on the card
        for spec in card.extra.values():
            if isinstance(spec, dict) and spec.get("file") == path.name and isinstance(spec.get("input"), dict):
                from dataclasses import replace

                card = replace(card, input={**card.input, "shape": spec["input"].get("shape", card.input.get("shape"))},
                               parameters=spec.get("parameters", card.parameters))
    return path, card, "the file given", None


# ============================================================================ coverage
def _coverage(rc, art, profile, lists, measured):
    label = _label(rc)
    fmt = art["format"]
    base = {"runtime_choice": label, "runtime": rc.runtime, "provider": rc.provider, "delegate": rc.delegate}
    if rc.runtime == "coreml":
        return {**base, "applies": False, "status": "not applicable",
                "summary": "the native Core ML runtime runs an .mlpackage converted from the model; not checked "
                           "here (the onnxruntime Core ML EP and the LiteRT Core ML delegate entries are)"}
    need = "tflite" if rc.runtime == "litert" else "onnx"
    if need != fmt:
        return {**base, "applies": False, "status": "not applicable",
                "summary": f"needs a .{need} artifact; this check has a .{fmt} one"}
    n_nodes = len(art["nodes"])
    n_types = len(art["op_counts"])
    if (rc.runtime == "onnxruntime" and rc.provider == "CPUExecutionProvider") or \
            (rc.runtime == "litert" and rc.delegate is None):
        what = "onnxruntime's CPU provider" if rc.runtime == "onnxruntime" else "LiteRT's builtin CPU kernels"
        if measured.get("session_ok"):
            summary = (f"all {n_types} op types ({n_nodes} nodes) run: verified by loading and running the artifact "
                       f"with {measured['runtime']} on this host")
            status = "complete"
        else:
            summary = f"{what} implement the standard op set; not verified here (no session was run)"
            status = "assumed"
        return {**base, "applies": True, "status": status, "summary": summary, "fallback_ops": [], "list": None}
    lst = _list_for(rc, profile.name, lists)
    if lst is None:
        why = ("onnxruntime assigns any node without a CUDA kernel to the CPU provider"
               if rc.provider == "CUDAExecutionProvider" else "")
        return {**base, "applies": True, "status": "unchecked", "list": None, "fallback_ops": [],
                "summary": f"no documented operator list is kept for {label}; coverage not checked"
                           + (f" ({why})" if why else "")}
    fallback = Counter()
    reasons = {}
    notes = {}
    for node in art["nodes"]:
        op = node["op"]
        why = None
        if op not in lst["_supported"]:
            why = "listed as unsupported" if op in lst["_unsupported"] else "not in the list"
        else:
            cond = (lst.get("conditions") or {}).get(op)
            if cond:
                sd = cond.get("spatial_dims")
                if sd and node.get("spatial_dims") is not None and node["spatial_dims"] not in sd:
                    allowed = "/".join(f"{d}D" for d in sd)
                    why = f"{node['spatial_dims']}D here; the list allows {allowed} ({cond['text']})"
                for idx in cond.get("const_inputs", ()):
                    if why is None and idx < len(node["present_inputs"]) and node["present_inputs"][idx] and \
                            not node["const_inputs"][idx]:
                        why = f"input {idx} is computed at run time; {cond['text']}"
            if why is None and lst["op_set"] == "tflite" and rc.delegate == "coreml" and \
                    any(t in ("INT8", "UINT8", "INT16") for t in (node.get("input_types") or ()) if t):
                why = "integer tensors; the Core ML delegate takes fp32/fp16 models only"
            if why is None and op in (lst.get("notes") or {}):
                notes[op] = lst["notes"][op]
        if why is not None:
            fallback[op] += 1
            reasons.setdefault(op, why)
    fb = [{"op": op, "nodes": n, "why": reasons[op], "outcome": lst["fallback"]} for op, n in sorted(fallback.items())]
    n_fb = sum(fallback.values())
    status = "complete" if not n_fb else "partial"
    summary = (f"all {n_nodes} nodes are in the documented list" if not n_fb else
               f"{n_fb} of {n_nodes} nodes ({', '.join(sorted(fallback))}) fall back: {lst['fallback']}")
    out = {**base, "applies": True, "status": status, "summary": summary, "fallback_ops": fb,
           "restrictions_to_check": [{"op": k, "text": v} for k, v in sorted(notes.items())],
           "list": {"name": lst["name"], "title": lst.get("title", ""), "url": lst["source"]["url"],
                    "document": lst["source"].get("document", ""), "applies_to": lst.get("applies_to", ""),
                    "retrieved": lst["source"].get("retrieved", "")}}
    if fmt == "tflite" and rc.delegate == "xnnpack" and measured.get("xnnpack"):
        out["measured_here"] = measured["xnnpack"]
        if measured["xnnpack"].get("whole_graph") and fb:
            # the delegate here took ops its README does not list: the measurement wins over the lagging list
            out["status"] = "complete"
            out["unlisted_but_delegated"] = fb
            out["fallback_ops"] = []
            out["summary"] = (f"all {n_nodes} nodes delegated when run here, although {', '.join(sorted(fallback))} "
                              "are not in the documented list (it lags the delegate code)")
    return out


def _xnnpack_delegation(path, threads):
    """How LiteRT's default XNNPACK delegate partitioned the graph here (whole graph or not)."""
    interp_mod = require("ai_edge_litert.interpreter", "tflite", "running TFLite models")
    it = interp_mod.Interpreter(model_path=str(path), num_threads=int(threads) if threads else None)
    it.allocate_tensors()
    ops = it._get_ops_details()
    dele = [o for o in ops if o.get("op_name") == "DELEGATE"]
    n_orig = len(ops) - len(dele)
    outs = {int(d["index"]) for d in it.get_output_details()}
    ins = {int(d["index"]) for d in it.get_input_details()}
    whole = False
    if len(dele) == 1:
        produced = {int(t) for t in dele[0]["outputs"]}
        feeds = {int(t) for t in dele[0]["inputs"]}
        # a whole-graph partition produces every output and reads only graph inputs and constants
        produced_by_ops = set()
        for o in ops:
            if o.get("op_name") != "DELEGATE":
                produced_by_ops |= {int(t) for t in o["outputs"]}
        whole = outs <= produced and not (feeds & (produced_by_ops - ins))
    import ai_edge_litert

    ver = getattr(ai_edge_litert, "__version__", "?")
    if whole:
        text = f"ai-edge-litert {ver} here: XNNPACK took the whole graph ({n_orig} ops, 1 partition)"
    elif not dele:
        text = f"ai-edge-litert {ver} here: XNNPACK took no ops (all {n_orig} ran on the builtin kernels)"
    else:
        text = (f"ai-edge-litert {ver} here: XNNPACK made {len(dele)} partition(s); some of the {n_orig} ops stay on "
                "the builtin CPU kernels")
    return {"partitions": len(dele), "whole_graph": whole, "ops": n_orig, "summary": text}


# ============================================================================ precision fit
def _precision_fit(art, profile, modality, primary):
    p = art["precision"]
    want = dict(profile.precision).get(modality) if modality else None
    simd = {s.lower() for s in getattr(profile, "simd", ()) or ()}
    fp16_cpu = bool(simd & {"fp16", "asimdhp", "avx512fp16", "f16c-arith"})
    warnings, notes = [], []
    if want and want != p:
        warnings.append(f"the profile prefers {want} for {modality}; this artifact is {p}")
    where = primary["runtime_choice"] if primary else None
    rt, prov, dele = (primary["runtime"], primary.get("provider"), primary.get("delegate")) if primary else (None,) * 3
    cpu_only = (rt == "onnxruntime" and prov == "CPUExecutionProvider") or \
        (rt == "litert" and dele in (None, "xnnpack"))
    if p == "fp16":
        if cpu_only and not fp16_cpu:
            warnings.append(f"fp16 artifact on a CPU without fp16 arithmetic ({profile.name}: SIMD "
                            f"{', '.join(sorted(simd)) or 'none'}) via {where}: the weights are widened to fp32 "
                            "(XNNPACK) or run through Cast nodes and fp32 kernels (onnxruntime CPU): a smaller file, "
                            "no speed-up, possibly slower; use fp32 or int8 there")
        elif cpu_only:
            notes.append(f"fp16 on {where}: this CPU has fp16 arithmetic; XNNPACK runs fp16 only when the model's "
                         "reduced-precision metadata allows it, otherwise fp32")
    if p == "int8":
        if dele == "gpu":
            warnings.append("int8 artifact on the LiteRT GPU delegate: it accepts 8-bit models but computes in "
                            "floating point, so there is no int8 speed-up; an fp16 artifact suits the GPU better")
        elif dele == "coreml" or prov == "CoreMLExecutionProvider":
            warnings.append(f"int8 artifact on {where}: Core ML delegation takes floating-point models (fp32/fp16); "
                            "quantized ops fall back to the CPU")
        elif prov == "TensorrtExecutionProvider":
            notes.append("int8 on TensorRT: Q/DQ nodes need zero zero-points (onnx-tensorrt restriction)")
    if p == "fp32" and want == "fp16" and prov == "TensorrtExecutionProvider":
        notes.append("TensorRT can build an fp16 engine from an fp32 ONNX (trt_fp16_enable), which meets the "
                     "profile's fp16 preference without a separate artifact")
    return {"artifact": p, "evidence": art["precision_evidence"], "preferred": want, "target": where,
            "warnings": warnings, "notes": notes}


# ============================================================================ measurement
def _random_inputs(specs, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for s in specs:
        dt = np.dtype(s["dtype"])
        if dt.kind == "f":
            out.append(rng.standard_normal(s["shape"]).astype(dt))
        else:
            out.append(np.zeros(s["shape"], dtype=dt))
    return out


_MEASURED = {}


def _measure(path, art, threads, repeats):
    """Host latency and session memory of the artifact, measured in a fresh Python process (cached per file).

    A fresh process makes the memory figure mean one thing: the resident-set growth of creating the session
    and running it once, from a process that has imported the runtime (so the runtime's own process-wide
    set-up counts, as it would in an app), free of allocations left over from earlier sessions.
    """
    path = Path(path)
    st = path.stat()
    backend = "litert" if art["format"] == "tflite" else "onnxruntime"
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size, backend, int(threads), int(repeats))
    if key in _MEASURED:
        return dict(_MEASURED[key])
    job = {"path": str(path), "backend": backend, "threads": int(threads), "repeats": int(repeats),
           "inputs": [{"shape": s["shape"], "dtype": s["dtype"]} for s in art["inputs"]]}
    res = None
    try:
        proc = subprocess.run([sys.executable, "-c", "from affectedge.device_profiles._check import _worker_main; "
                               "_worker_main()"], input=json.dumps(job), capture_output=True, text=True,
                              timeout=600)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if lines:
            res = json.loads(lines[-1])
            res["process"] = "fresh process"
        elif proc.returncode != 0:
            err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            res = {"session_ok": False, "error": err[:300]}
    except (OSError, ValueError, subprocess.TimeoutExpired):
        res = None
    if res is None:  # no subprocess possible here: measure in this process (memory figure less clean)
        res = _run_measurement(job)
        res["process"] = "this process"
    _MEASURED[key] = dict(res)
    return res


def _run_measurement(job):
    from affectedge.runtime._session import create_session

    backend = job["backend"]
    if backend == "onnxruntime":
        mod = require("onnxruntime", "onnx", "running ONNX models")
    else:
        require("ai_edge_litert.interpreter", "tflite", "running TFLite models")
        import ai_edge_litert as mod
    version = getattr(mod, "__version__", "?")
    xs = _random_inputs(job["inputs"])
    before = _current_rss_mib()
    try:
        sess = create_session(job["path"], backend=backend, threads=job["threads"])
    except Exception as exc:
        return {"session_ok": False, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    try:
        outs = sess.run(xs)
        after = _current_rss_mib()
        for _ in range(2):
            sess.run(xs)
        lat = []
        for _ in range(job["repeats"]):
            t0 = time.perf_counter()
            sess.run(xs)
            lat.append((time.perf_counter() - t0) * 1e3)
        providers = list(sess.providers)
    except Exception as exc:
        return {"session_ok": False, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    finally:
        sess.close()
    finite = all(bool(np.all(np.isfinite(np.asarray(o, dtype=np.float64)))) for o in outs
                 if np.asarray(o).dtype.kind in "fc")
    runtime = f"onnxruntime {version} ({', '.join(providers)})" if backend == "onnxruntime" else \
        f"ai-edge-litert {version} (default XNNPACK delegate)"
    return {
        "session_ok": True, "runtime": runtime, "threads": job["threads"], "repeats": job["repeats"],
        "median_ms": float(np.median(lat)), "p95_ms": float(np.percentile(lat, 95)),
        "outputs_finite": bool(finite),
        "rss_delta_mib": (max(0.0, after - before) if (after is not None and before is not None) else None),
    }


def _worker_main():
    """Entry of the measuring subprocess: a job as JSON on stdin, one JSON line on stdout."""
    job = json.loads(sys.stdin.read())
    if job["backend"] == "onnxruntime":
        require("onnxruntime", "onnx", "running ONNX models")
    else:
        require("ai_edge_litert.interpreter", "tflite", "running TFLite models")
    import affectedge.runtime._session  # noqa: F401  (imported before the baseline)

    res = _run_measurement(job)
    sys.stdout.write(json.dumps(_clean(res)) + "\n")
    sys.stdout.flush()


def _host():
    return f"{platform.machine()} {platform.system()}, {os.cpu_count()} logical CPUs"


# ============================================================================ the check
def check_model(model, profile, *, threads=None, measure=True, repeats=20, input_shapes=None):
    """Check ``model`` (an .onnx / .tflite file or a zoo id) against ``profile``; returns the report dict.

    ``profile``: a Profile (or a Profile-like object), a shipped name, a profile file, or ``"auto"``.
    ``threads``: for the measured host latency (default: the profile's). ``measure=False`` skips the
    session (no host latency, no measured RSS). The report's ``verdict.exit_code`` is 0 within the hard
    budgets, :data:`EXIT_OVER_BUDGET` (4) when the file size or RAM budget is exceeded.
    """
    profile = _resolve_profile(profile)
    if threads is None:
        threads = int(profile.threads)
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ParameterError(f"threads={threads!r} must be an integer >= 1")
    if isinstance(repeats, bool) or not isinstance(repeats, (int, np.integer)) or repeats < 1:
        raise ParameterError(f"repeats={repeats!r} must be an integer >= 1")
    threads, repeats = int(threads), int(repeats)
    path, card, how, zoo_id = _resolve_model(model, profile)
    modality = _modality(card)
    art = analyze_tflite(path) if path.suffix.lower() == ".tflite" else analyze_onnx(path, card, input_shapes)
    lists = op_lists()

    measured = {}
    if measure:
        try:
            measured = _measure(path, art, threads, repeats)
        except ModelError:
            raise
        except Exception as exc:  # a runtime that cannot run the graph: report it, keep the static figures
            measured = {"session_ok": False, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
        if art["format"] == "tflite" and measured.get("session_ok"):
            if any(rc.runtime == "litert" and rc.delegate == "xnnpack" for rc in profile.runtimes):
                try:
                    measured["xnnpack"] = _xnnpack_delegation(path, threads)
                except Exception as exc:  # pragma: no cover - diagnostics only
                    measured["xnnpack"] = {"summary": f"delegation not inspected ({type(exc).__name__})"}

    coverage = [_coverage(rc, art, profile, lists, measured) for rc in profile.runtimes]
    primary = next((c for c in coverage if c["applies"]), None)
    precision = _precision_fit(art, profile, modality, primary)

    budgets = profile.budgets
    size_mib = art["file_size_bytes"] / MIB
    weights_mib = art["weight_bytes"] / MIB
    act_mib = art["peak_activation_bytes"] / MIB
    est_mib = weights_mib + act_mib
    meas_mib = measured.get("rss_delta_mib") if measured.get("session_ok") else None
    ram_basis = max(est_mib, meas_mib) if meas_mib is not None else est_mib
    macs = art["macs"]
    gmacs = float(profile.sustained_gmacs)
    est_ms = macs / (gmacs * 1e9) * 1e3 if gmacs > 0 else None
    lat_budget = dict(budgets.latency_ms).get(modality) if modality else None
    gmacs_src = dict(getattr(profile, "sources", {}) or {}).get("sustained_gmacs", "")

    failures, warnings = [], []
    size_ok = size_mib <= float(budgets.model_size_mb)
    if not size_ok:
        failures.append(f"file size {size_mib:.3g} MiB exceeds the model_size_mb budget of {profile.name} "
                        f"({float(budgets.model_size_mb):g} MiB)")
    ram_ok = ram_basis <= float(budgets.ram_mb)
    if not ram_ok:
        failures.append(f"runtime memory {ram_basis:.3g} MiB exceeds the ram_mb budget of {profile.name} "
                        f"({float(budgets.ram_mb):g} MiB)")
    lat_ok = None
    if lat_budget is not None and est_ms is not None:
        lat_ok = est_ms <= float(lat_budget)
        if not lat_ok:
            warnings.append(f"estimated target latency {est_ms:.3g} ms exceeds the {modality} latency budget "
                            f"({float(lat_budget):g} ms) of {profile.name} (an estimate, so a warning)")
    if primary is None:
        warnings.append(f"no runtime choice of {profile.name} can run a .{art['format']} artifact "
                        f"({', '.join(c['runtime_choice'] for c in coverage)}); export one it can run")
    for c in coverage:
        if c.get("status") == "partial":
            warnings.append(f"{c['runtime_choice']}: {c['summary']}")
    warnings += precision["warnings"]
    if measured.get("session_ok") and threads > (os.cpu_count() or threads):
        warnings.append(f"note: the host latency used {threads} threads on a host with {os.cpu_count()} logical "
                        "CPUs (oversubscribed), so it is noisier and slower than the thread count suggests")
    if measure and not measured.get("session_ok"):
        warnings.append(f"the artifact did not run on this host: {measured.get('error')}")
    elif measured.get("session_ok") and not measured.get("outputs_finite", True):
        warnings.append("the artifact produced non-finite outputs on random inputs here")
    warnings += [f"note: {n}" for n in art["notes"]]

    exit_code = EXIT_OVER_BUDGET if failures else 0
    report = {
        "model": {"ref": str(model), "zoo_id": zoo_id, "artifact": str(path), "chosen_as": how,
                  "format": art["format"], "card": card.id if card is not None else None, "modality": modality,
                  "inputs": [{k: v for k, v in s.items() if k != "index"} for s in art["inputs"]],
                  "op_counts": art["op_counts"], "opsets": art.get("opsets")},
        "profile": {"name": profile.name, "source_file": str(getattr(profile, "source_file", "") or ""),
                    "runtimes": [_label(rc) for rc in profile.runtimes], "threads": int(profile.threads),
                    "sustained_gmacs": gmacs, "budgets": {"model_size_mb": float(budgets.model_size_mb),
                                                          "ram_mb": float(budgets.ram_mb),
                                                          "latency_ms": dict(budgets.latency_ms)}},
        "parameters": art["parameters"],
        "parameters_method": ("weight elements of the graph's constants (float / 8-bit initializers and Constant "
                              "nodes, int32 biases; shape and index constants excluded), so fixed buffers such as "
                              "normalisation statistics count too"),
        "parameters_card": getattr(card, "parameters", None) if card is not None else None,
        "macs": {"per_inference": macs, "by_op": art["macs_by_op"], "unresolved": art["macs_unresolved"],
                 "method": ("counted from the graph after onnx.shape_inference (batch 1; other dynamic dims from "
                            "the card's input shape; shapes inference leaves unknown from one onnxruntime run)"
                            if art["format"] == "onnx" else
                            "counted from the TFLite flatbuffer's tensor shapes")},
        "file_size": {"bytes": art["file_size_bytes"], "mib": size_mib, "budget_mib": float(budgets.model_size_mb),
                      "ok": size_ok},
        "memory": {"weights_mib": weights_mib, "peak_activations_mib": act_mib, "estimate_mib": est_mib,
                   "estimate_method": "weights + the largest set of activations alive at once (graph order, "
                                      "batch 1); runtime library and arena overheads not included",
                   "measured_mib": meas_mib,
                   "measured_method": ("resident-set growth of creating the session and running it once, in a "
                                       f"{measured.get('process', 'fresh process')} on this host that had imported "
                                       f"the runtime ({measured.get('runtime')}); includes the runtime's own "
                                       "set-up") if meas_mib is not None else None,
                   "basis": "max(estimate, measured)" if meas_mib is not None else "estimate",
                   "basis_mib": ram_basis, "budget_mib": float(budgets.ram_mb), "ok": ram_ok},
        "operator_coverage": coverage,
        "precision": precision,
        "latency": {
            "host": ({"label": "MEASURED on this host, not on the target", "host": _host(),
                      "runtime": measured["runtime"], "threads": threads, "repeats": repeats,
                      "median_ms": measured["median_ms"], "p95_ms": measured["p95_ms"],
                      "inputs": "random normal, shapes as in model.inputs"}
                     if measured.get("session_ok") else None),
            "target_estimate": {
                "label": "ESTIMATE", "ms": est_ms, "macs": macs, "sustained_gmacs": gmacs,
                "method": (f"MACs per inference / the profile's sustained throughput: {macs:,} / ({gmacs:g} x 1e9 "
                           "MAC/s); ignores memory bandwidth, per-op overheads, non-MAC ops and delegate "
                           "partitioning, so small models usually run slower than this"),
                "source": gmacs_src},
            "budget_ms": float(lat_budget) if lat_budget is not None else None,
            "within_budget": lat_ok,
        },
        "verdict": {"ok": not failures, "exit_code": exit_code, "failures": failures, "warnings": warnings,
                    "hard_budgets": ["file size (model_size_mb)", "runtime memory (ram_mb)"],
                    "policy": "file size and RAM over budget -> exit 4; the latency estimate over budget, op "
                              "fallbacks and precision mismatches are warnings"},
        "sources": {"sustained_gmacs": gmacs_src,
                    "op_lists": sorted({c["list"]["url"] for c in coverage if c.get("list")})},
    }
    return _clean(report)


# ============================================================================ text report and CLI
def _mib(x):
    return "?" if x is None else (f"{x:.3g} MiB" if x >= 0.01 else f"{x * 1024:.3g} KiB")


def format_report(r):
    """The report as text for people (see :func:`check_model` for the fields)."""
    m, p, v = r["model"], r["profile"], r["verdict"]
    L = [f"{m['ref']} on {p['name']}"]
    shapes = "; ".join(f"{i['name']} {tuple(i['shape'])} {i['dtype']}" for i in m["inputs"])
    L.append(f"  artifact     {m['artifact']} ({m['format']}, {r['precision']['artifact']}) - {m['chosen_as']}")
    L.append(f"  inputs       {shapes}" + (f"   modality {m['modality']}" if m["modality"] else
                                            "   modality unknown (no card): latency budget not checked"))
    L.append("")
    fs, mem, mc = r["file_size"], r["memory"], r["macs"]
    L.append(f"  file size    {_mib(fs['mib'])}   budget {fs['budget_mib']:g} MiB   {'ok' if fs['ok'] else 'OVER'}")
    card_p = f" (the card states {r['parameters_card']:,})" if r.get("parameters_card") else ""
    L.append(f"  parameters   {r['parameters']:,} weight elements in the graph{card_p}")
    by = ", ".join(f"{k} {_fmt_count(n)}" for k, n in sorted(mc["by_op"].items(), key=lambda kv: -kv[1]))
    L.append(f"  MACs         {mc['per_inference']:,} per inference ({by or 'no MAC ops'})")
    meas = f"; measured +{_mib(mem['measured_mib'])} RSS here" if mem["measured_mib"] is not None else ""
    L.append(f"  memory       {_mib(mem['estimate_mib'])} estimated (weights {_mib(mem['weights_mib'])} + activations "
             f"{_mib(mem['peak_activations_mib'])}){meas}")
    L.append(f"               checked: {mem['basis']} = {_mib(mem['basis_mib'])}   budget {mem['budget_mib']:g} MiB   "
             f"{'ok' if mem['ok'] else 'OVER'}")
    L.append("")
    L.append("  operator coverage (the profile's runtime order):")
    for i, c in enumerate(r["operator_coverage"], 1):
        L.append(f"    {i}. {c['runtime_choice']}: {c['summary']}")
        for f in c.get("fallback_ops", []):
            L.append(f"         - {f['op']} x{f['nodes']}: {f['why']}")
        if c.get("measured_here"):
            L.append(f"         measured: {c['measured_here'].get('summary')}")
        if c.get("list"):
            L.append(f"         list: {c['list']['title']} [{c['list']['url']}]")
    pr = r["precision"]
    L.append("")
    L.append(f"  precision    artifact {pr['artifact']} ({pr['evidence']}); profile prefers "
             f"{pr['preferred'] or 'n/a'}" + (f"; target {pr['target']}" if pr["target"] else ""))
    for n in pr["notes"]:
        L.append(f"               note: {n}")
    lat = r["latency"]
    L.append("")
    h = lat["host"]
    if h:
        L.append(f"  latency      this host: median {h['median_ms']:.3g} ms, p95 {h['p95_ms']:.3g} ms over "
                 f"{h['repeats']} runs, {h['threads']} threads, {h['runtime']} [{h['label']}; {h['host']}]")
    else:
        L.append("  latency      this host: not measured")
    e = lat["target_estimate"]
    budget = f"   budget {lat['budget_ms']:g} ms   {'ok' if lat['within_budget'] else 'OVER (warning)'}" \
        if lat["budget_ms"] is not None else ""
    ms = "?" if e["ms"] is None else f"{e['ms']:.3g} ms"
    L.append(f"               target ESTIMATE: {ms}{budget}")
    L.append(f"               how: {e['method']}")
    if e["source"]:
        L.append(f"               throughput source: {e['source']}")
    L.append("")
    if v["failures"]:
        L.append(f"  verdict      OVER BUDGET (exit {v['exit_code']}):")
        L += [f"    - {f}" for f in v["failures"]]
    else:
        L.append(f"  verdict      within the hard budgets (exit 0){'; warnings:' if v['warnings'] else ''}")
    L += [f"    warning: {w}" for w in v["warnings"]]
    return "\n".join(L)


def check_cli(args):
    """``affectedge profiles check MODEL --profile NAME [--json] [--threads N]``; returns the exit code."""
    threads = getattr(args, "threads", None)
    report = check_model(args.model, args.profile, threads=threads)
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps(report, indent=2, allow_nan=False) + "\n")
    else:
        print(format_report(report))
    for f in report["verdict"]["failures"]:
        print(f"affectedge: over budget: {f}", file=sys.stderr)
    return report["verdict"]["exit_code"]
