"""ONNX artifacts: fp32 export, pre-processing, fp16, and int8 (static QDQ or dynamic).

* fp32: ``torch.onnx.export(..., dynamo=True)`` from the source's
  ExportedProgram (weights stored inside the file), or the source ONNX file
  re-saved as one self-contained file.
* pre-processing: ``onnxruntime.quantization.shape_inference.quant_pre_process``
  (symbolic shape inference + graph optimisation) before quantization.
* fp16: ``onnxruntime.transformers.float16.convert_float_to_float16`` with
  fp32 inputs/outputs kept (``keep_io_types=True``); operators that
  onnxruntime's CPU provider cannot run in fp16 are kept in fp32 (found by
  loading the result, recorded in the artifact's notes).
* int8 static: ``quantize_static`` in QDQ format, per-channel int8 weights,
  int8 activations, ranges from the calibration data by MinMax, Entropy or
  Percentile; Softmax stays float (an 8-bit probability output flips the
  arg-max of near-tied classes).
* int8 dynamic: ``quantize_dynamic`` (int8 weights, activations quantized at
  run time) — chosen automatically for recurrent graphs (LSTM, GRU, RNN,
  Loop, Scan), whose static QDQ form onnxruntime does not quantize.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from affectedge.errors import ExportError

from ._options import CalibrationMethod, Int8Scheme

__all__ = ["Built", "export_fp32", "graph_ops", "is_recurrent", "preprocess", "to_fp16", "to_int8", "torch_to_onnx"]

RECURRENT_OPS = frozenset({"LSTM", "GRU", "RNN", "Loop", "Scan"})
# Softmax output quantized to 8 bits flips the arg-max of near-tied classes
# (measured: top-1 agreement 0.83 -> 1.00 on a small conv net by keeping it
# float); it costs nothing measurable to leave it in fp32.
KEEP_FLOAT_OPS = frozenset({"Softmax"})
# A MatMul/Gemm with a constant weight stays float when its int8 form (int8
# weights per output channel x int8 input, ranges from the calibration data)
# misses its fp32 output by more than this fraction of the output's spread on
# the calibration data. Typical layers are at 0.01-0.05; a layer fed by
# features of very different scales (e.g. a linear model on unstandardised
# statistics with the standardisation folded into the weights: tiny inputs x
# huge weights next to large inputs x small weights) is at ~1, because 8-bit
# weights per output channel round the small-weight rows to zero.
MAX_LAYER_INT8_ERR = 0.1


@dataclass
class Built:
    """An artifact as built, before its checks."""

    path: Path
    precision: str
    scheme: str = ""
    notes: list = field(default_factory=list)


def graph_ops(path_or_model) -> set:
    import onnx

    model = onnx.load(str(path_or_model)) if not hasattr(path_or_model, "graph") else path_or_model
    ops = set()

    def walk(g):
        for n in g.node:
            ops.add(n.op_type)
            for a in n.attribute:
                if a.g is not None and len(a.g.node):
                    walk(a.g)

    walk(model.graph)
    return ops


def is_recurrent(path_or_model) -> bool:
    return bool(graph_ops(path_or_model) & RECURRENT_OPS)


@contextlib.contextmanager
def _quiet():
    """Keep converter chatter (progress lines, emoji banners) off stdout."""
    buf = io.StringIO()
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "onnxscript", "root", "onnxruntime")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    import warnings

    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(buf):
            warnings.simplefilter("ignore")
            yield buf
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


_ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
_ATEN_RE = re.compile(r"(aten[.:]{1,2}[A-Za-z_0-9]+(?:\.[A-Za-z_0-9]+)?)")


def export_fp32(source, example, out_path) -> Built:
    """Write the fp32 ONNX artifact of ``source`` to ``out_path``."""
    import onnx

    out_path = Path(out_path)
    if not source.has_torch:
        from ._sources import load_onnx

        model = load_onnx(source.onnx_path)
        onnx.save(model, str(out_path), save_as_external_data=False)
        strip_metadata(out_path)
        return Built(out_path, "fp32", "source ONNX re-saved", [f"copied from {Path(source.onnx_path).name}"])
    import torch

    ep = source.exported_program(example)
    args = tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in example)
    torch_to_onnx(ep, args, what=repr(source.ref), f=str(out_path), external_data=False, optimize=True)
    for stale in out_path.parent.glob(out_path.name + ".data"):
        stale.unlink()
    strip_metadata(out_path)
    return Built(out_path, "fp32", "torch.onnx dynamo", [])


def torch_to_onnx(model, args, *, what, **kwargs):
    """``torch.onnx.export(model, args, dynamo=True, **kwargs)`` with the converter's chatter kept off stdout.

    Returns the ONNXProgram. A failure is an :class:`ExportError` about ``what``
    (e.g. the source reference) that names the operator(s) torch.onnx cannot
    translate, when the failure says which.
    """
    import torch

    try:
        with _quiet():
            return torch.onnx.export(model, args, dynamo=True, **kwargs)
    except Exception as exc:
        text = _ANSI_RE.sub("", f"{type(exc).__name__}: {exc}")
        found = set(_ATEN_RE.findall(text))
        ops = sorted(o for o in found if not any(p != o and p.startswith(o + ".") for p in found))
        if ops:
            raise ExportError(
                f"ONNX export of {what} failed: operator {', '.join(ops)} is not supported by torch.onnx "
                f"(dynamo exporter, torch {torch.__version__}), so it cannot run in onnxruntime. Replace the op in "
                "the model or register a custom translation (torch.onnx.export(custom_translation_table=...))"
            ) from exc
        raise ExportError(
            f"ONNX export of {what} failed in torch.onnx (torch {torch.__version__}): "
            f"{_first_line(_ANSI_RE.sub('', str(exc)))}"
        ) from exc


def strip_metadata(path):
    """Drop per-node stack traces / doc strings (the dynamo exporter's debug
    metadata) and intermediate value_info.

    They cost ~300 bytes per node and change nothing at run time; on small
    models they are a third of the file. Graph inputs/outputs keep their types.
    """
    import onnx

    model = onnx.load(str(path))

    def walk(g):
        for n in g.node:
            n.doc_string = ""
            del n.metadata_props[:]
            for a in n.attribute:
                if a.g is not None and len(a.g.node):
                    walk(a.g)

    walk(model.graph)
    model.graph.doc_string = ""
    del model.graph.value_info[:]
    onnx.save(model, str(path))


def preprocess(in_path, out_path) -> list:
    """quant_pre_process; on failure copy the input and return a note saying so."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        with _quiet():
            quant_pre_process(str(in_path), str(out_path), skip_symbolic_shape=False)
        return []
    except Exception as exc:
        shutil.copyfile(in_path, out_path)
        return [f"quant_pre_process failed ({_first_line(exc)}); quantized the un-preprocessed graph"]


_NOT_IMPL_RE = re.compile(r"Could not find an implementation for (\w+)\((\d+)\)")


def to_fp16(in_path, out_path, *, max_tries=8) -> Built:
    """fp16 weights and compute, fp32 inputs/outputs; ops without CPU fp16 kernels stay fp32."""
    import onnx
    import onnxruntime as ort
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    block = list(DEFAULT_OP_BLOCK_LIST)
    added = []
    base = onnx.load(str(in_path))
    for _ in range(max_tries):
        try:
            with _quiet():
                m16 = convert_float_to_float16(
                    onnx.ModelProto.FromString(base.SerializeToString()), keep_io_types=True, op_block_list=block
                )
        except Exception as exc:
            raise ExportError(f"fp16 conversion of {Path(in_path).name} failed: {_first_line(exc)}") from exc
        onnx.save(m16, str(out_path))
        try:
            opts = ort.SessionOptions()
            opts.log_severity_level = 3
            ort.InferenceSession(str(out_path), sess_options=opts, providers=["CPUExecutionProvider"])
            notes = [f"kept in fp32 (no onnxruntime CPU fp16 kernel): {', '.join(added)}"] if added else []
            strip_metadata(out_path)
            return Built(Path(out_path), "fp16", "float16 keep_io_types", notes)
        except Exception as exc:
            m = _NOT_IMPL_RE.search(str(exc))
            if not m or m.group(1) in block:
                raise ExportError(
                    f"onnxruntime {ort.__version__} cannot load the fp16 artifact {Path(out_path).name}: "
                    f"{_first_line(exc)}"
                ) from exc
            block.append(m.group(1))
            added.append(m.group(1))
    raise ExportError(f"fp16 conversion kept failing after blocking {added}; use fp32 or int8")


_CALIB = {
    CalibrationMethod.MINMAX: "MinMax",
    CalibrationMethod.ENTROPY: "Entropy",
    CalibrationMethod.PERCENTILE: "Percentile",
}


def choose_scheme(pre_path, requested) -> tuple:
    rec = is_recurrent(pre_path)
    if requested == Int8Scheme.AUTO:
        scheme = Int8Scheme.DYNAMIC if rec else Int8Scheme.STATIC
        why = ("recurrent ops " + ", ".join(sorted(graph_ops(pre_path) & RECURRENT_OPS)) + " -> dynamic"
               if rec else "no recurrent ops -> static QDQ per-channel")
    else:
        scheme, why = requested, "requested"
    return scheme, why


def to_int8(pre_path, out_path, *, scheme, calibration=None, method=CalibrationMethod.MINMAX) -> Built:
    """Quantize the pre-processed fp32 graph to int8 with ``scheme`` (static or dynamic)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod as OrtCM
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    scheme_enum, why = choose_scheme(pre_path, scheme)
    notes = [f"int8 scheme: {why}"]
    try:
        if scheme_enum == Int8Scheme.DYNAMIC:
            keep = _keep_float(pre_path, calibration, per_channel=False, notes=notes)
            with _quiet():
                quantize_dynamic(str(pre_path), str(out_path), weight_type=QuantType.QInt8, per_channel=False,
                                 nodes_to_exclude=keep)
            label = "dynamic (int8 weights, runtime-quantized activations)"
        else:
            if not calibration:
                raise ExportError(
                    "static int8 needs calibration data; pass --calibration (a dataset folder or an .npz of inputs)"
                )
            names = [i.name for i in onnx.load(str(pre_path)).graph.input]
            init = {i.name for i in onnx.load(str(pre_path)).graph.initializer}
            names = [n for n in names if n not in init]
            reader = _Reader(names, calibration)
            from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

            op_types = sorted((set(QDQRegistry) | set(QLinearOpsRegistry)) - KEEP_FLOAT_OPS)
            keep = _keep_float(pre_path, calibration, per_channel=True, notes=notes)
            with _quiet():
                quantize_static(
                    str(pre_path), str(out_path), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    calibrate_method=getattr(OrtCM, _CALIB[method]), op_types_to_quantize=op_types,
                    nodes_to_exclude=keep,
                )
            label = (f"static QDQ per-channel, {method.value} calibration on {len(calibration)} examples; "
                     f"{', '.join(sorted(KEEP_FLOAT_OPS))} kept float")
    except ExportError:
        raise
    except Exception as exc:
        hint = ""
        if "scale issue" in str(exc):
            hint = (" (onnxruntime computed an invalid scale: an activation range is NaN/inf on the calibration "
                    "data; check that the fp32 model gives finite values on it)")
        raise ExportError(f"int8 quantization ({scheme_enum.value}) of {Path(pre_path).name} failed: "
                          f"{_first_line(exc)}{hint}") from exc
    strip_metadata(out_path)
    return Built(Path(out_path), "int8", label, notes)


def _weighted_layers(model):
    """(node, input name, weight as (K, N) float64) for MatMul/Gemm with a constant 2-D weight."""
    from onnx import helper, numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    out = []
    for n in model.graph.node:
        if n.op_type not in ("MatMul", "Gemm") or not n.name or len(n.input) < 2:
            continue
        x, w = n.input[0], n.input[1]
        if x in inits or w not in inits:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        if attrs.get("transA", 0):
            continue
        weight = numpy_helper.to_array(inits[w]).astype(np.float64)
        if weight.ndim != 2:
            continue
        out.append((n, x, weight.T if attrs.get("transB", 0) else weight))
    return out


def int8_sensitive_nodes(pre_path, names, examples, *, per_channel=True, limit=64, max_err=MAX_LAYER_INT8_ERR):
    """Names of MatMul/Gemm nodes whose int8 form is off by more than ``max_err`` on ``examples``.

    Each weighted layer is checked on its own: its fp32 input is collected on
    (up to ``limit``) calibration examples, then the layer is computed with
    the input fake-quantized to int8 over its calibrated min/max and the
    weight fake-quantized to symmetric int8 (per output channel when
    ``per_channel``), and compared with the fp32 layer output. Returns
    ``[(node name, relative error)]``, worst first; ``[]`` when nothing can be
    measured (the check is advisory: a failure here only means no node is kept
    float by it).
    """
    import onnx
    import onnxruntime as ort

    try:
        model = onnx.load(str(pre_path))
        layers = _weighted_layers(model)
        if not layers or not examples:
            return []
        have = {o.name for o in model.graph.output}
        for x in {x for _, x, _ in layers} - have:
            model.graph.output.append(onnx.helper.make_tensor_value_info(x, onnx.TensorProto.FLOAT, None))
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        sess = ort.InferenceSession(model.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"])
        wanted = sorted({x for _, x, _ in layers})
        got = {x: [] for x in wanted}
        for ex in list(examples)[:limit]:
            for x, v in zip(wanted, sess.run(wanted, dict(zip(names, ex)))):
                got[x].append(np.asarray(v, dtype=np.float64))
        bad = []
        for node, x, w in layers:
            xs = np.concatenate([v.reshape(-1, v.shape[-1]) for v in got[x]]) if got[x] else None
            if xs is None or xs.shape[-1] != w.shape[0] or not np.isfinite(xs).all():
                continue
            lo, hi = min(float(xs.min()), 0.0), max(float(xs.max()), 0.0)
            xs_q = xs if hi == lo else np.round((xs - lo) / ((hi - lo) / 255)) * ((hi - lo) / 255) + lo
            amax = np.abs(w).max(axis=0, keepdims=True) if per_channel else np.abs(w).max()
            step = np.where(amax > 0, amax / 127, 1.0)
            w_q = np.round(w / step) * step
            y = xs @ w
            spread = np.sqrt(np.mean((y - y.mean(axis=0)) ** 2))
            if not spread > 0:
                continue
            err = float(np.sqrt(np.mean((xs_q @ w_q - y) ** 2)) / spread)
            if err > max_err:
                bad.append((node.name, err))
        return sorted(bad, key=lambda t: -t[1])
    except Exception:
        return []


def _keep_float(pre_path, calibration, *, per_channel, notes):
    """Nodes to leave float (see ``int8_sensitive_nodes``); the choice goes in ``notes``."""
    if not calibration:
        return []
    import onnx

    model = onnx.load(str(pre_path))
    init = {i.name for i in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in init]
    bad = int8_sensitive_nodes(pre_path, names, calibration, per_channel=per_channel)
    if bad:
        notes.append(f"kept float ({len(bad)} layer(s) whose int8 output error exceeds {MAX_LAYER_INT8_ERR:g} of its "
                     "spread on the calibration data): "
                     + ", ".join(f"{n} ({e:.2f})" for n, e in bad))
    return [n for n, _ in bad]


def _Reader(names, examples):
    """An onnxruntime CalibrationDataReader over a list of examples."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._items = [dict(zip(names, ex)) for ex in examples]
            self._it = iter(self._items)

        def get_next(self):
            return next(self._it, None)

        def rewind(self):
            self._it = iter(self._items)

    return Reader()


def _first_line(exc):
    s = str(exc).strip().splitlines()
    return s[0][:300] if s else type(exc).__name__
