"""The one session factory: every model the runtime runs, and every artifact the exporters check.

``create_session(path_or_bytes, backend=None, providers=..., threads=None)``
returns a :class:`Session` with the same small surface for onnxruntime and
LiteRT: ``input_names``, ``input_shapes``, ``output_names``, ``run(inputs)``
(a list of arrays, one per output, in ``output_names`` order), ``providers``
(what actually runs), ``backend`` and ``close()``. Because the runtime and the
exporters' checks open models here, both measure the same configuration.
"""

import logging
from pathlib import Path

import numpy as np

from affectedge._optional import require
from affectedge.errors import ModelError, ParameterError

__all__ = ["Session", "create_session", "onnx_providers"]


def onnx_providers(requested=("CPUExecutionProvider",), *, strict=False):
    """The requested onnxruntime providers that this build offers, in order, CPU always last.

    With ``strict=True`` a requested provider that is absent raises ModelError
    instead of being skipped.
    """
    ort = require("onnxruntime", "onnx", "running ONNX models")
    avail = ort.get_available_providers()
    requested = tuple(requested or ())
    missing = [p for p in requested if p not in avail]
    if strict and missing:
        raise ModelError(f"onnxruntime providers {missing} are not available in this build (available: {avail}); "
                         "install the matching onnxruntime package or drop them")
    chosen = [p for p in requested if p in avail and p != "CPUExecutionProvider"]
    return chosen + ["CPUExecutionProvider"]


def _first_line(exc):
    return str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__


class Session:
    """A loaded model in one runtime (see module docstring)."""

    def __init__(self, backend, impl, input_names, input_shapes, output_names, providers, threads, run, close):
        self.backend = backend
        self.impl = impl
        self.input_names = list(input_names)
        self.input_shapes = list(input_shapes)
        self.output_names = list(output_names)
        self.providers = tuple(providers)
        self.threads = threads
        self._run = run
        self._close = close
        self.closed = False

    def run(self, inputs):
        """Run one call: ``inputs`` is one array or a list (one per model input)."""
        if self.closed:
            raise ModelError("this model session is closed; load the model again")
        if isinstance(inputs, np.ndarray):
            inputs = [inputs]
        if len(inputs) != len(self.input_names):
            raise ParameterError(f"the model takes {len(self.input_names)} inputs ({self.input_names}); "
                                 f"{len(inputs)} given")
        return self._run([np.ascontiguousarray(x) for x in inputs])

    def close(self):
        if not self.closed:
            self.closed = True
            self._close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"Session({self.backend}, providers={list(self.providers)}, outputs={self.output_names})"


def create_session(model, *, backend=None, providers=("CPUExecutionProvider",), threads=None, strict_providers=False):
    """Open ``model`` (a path or the file's bytes) with onnxruntime or LiteRT.

    ``backend`` is "onnxruntime" or "litert" (default: by the file suffix, or
    by the bytes' flatbuffer tag). ``threads``: intra-op threads (None = the
    runtime's default).
    """
    data = bytes(model) if isinstance(model, (bytes, bytearray)) else None
    path = None if data is not None else Path(model)
    if backend is not None and not isinstance(backend, str):
        backend = backend.value
    if backend is None:
        if data is not None:
            backend = "litert" if data[4:8] == b"TFL3" else "onnxruntime"
        else:
            backend = "litert" if path.suffix == ".tflite" else "onnxruntime"
    if path is not None and not path.is_file():
        raise ModelError(f"model file {str(path)!r} does not exist; check the path or run 'make models'")
    if backend == "onnxruntime":
        return _onnx(path, data, providers, threads, strict_providers)
    if backend == "litert":
        return _litert(path, data, threads)
    raise ParameterError(f"backend={backend!r} must be 'onnxruntime' or 'litert'")


_NHWC = "com.ms.internal.nhwc"
_log = logging.getLogger("affectedge.runtime")


def _onnx(path, data, providers, threads, strict):
    ort = require("onnxruntime", "onnx", "running ONNX models")
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    provs = onnx_providers(providers, strict=strict)
    what = str(path) if path is not None else f"<{len(data)} bytes>"
    src = data if data is not None else str(path)
    try:
        try:
            sess = ort.InferenceSession(src, sess_options=opts, providers=provs)
        except Exception as exc:  # onnxruntime raises its own exception types
            if _NHWC not in str(exc):
                raise
            # onnxruntime on aarch64 rewrites fp16 graphs to NHWC at the highest optimisation level and then
            # lacks some NHWC fp16 kernels (AveragePool: seen in make arm64-check with onnxruntime 1.32). One
            # level lower skips that layout rewrite; the graph is the same.
            _log.warning("onnxruntime %s: %s; loading %r again without the layout optimisation "
                         "(graph_optimization_level=ORT_ENABLE_EXTENDED)", ort.__version__, _first_line(exc), what)
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
            sess = ort.InferenceSession(src, sess_options=opts, providers=provs)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ModelError(f"onnxruntime {ort.__version__} cannot load {what!r}: {_first_line(exc)}. The file is "
                         "corrupt, truncated or not an ONNX model; re-export it or restore the original") from exc
    ins = sess.get_inputs()
    names = [o.name for o in sess.get_outputs()]

    def run(arrays):
        return sess.run(None, dict(zip([i.name for i in ins], arrays)))

    return Session("onnxruntime", sess, [i.name for i in ins], [tuple(i.shape) for i in ins], names,
                   sess.get_providers(), threads, run, lambda: None)


def _litert(path, data, threads):
    interp_mod = require("ai_edge_litert.interpreter", "tflite", "running TFLite models")
    what = str(path) if path is not None else f"<{len(data)} bytes>"
    try:
        kw = {"model_content": data} if data is not None else {"model_path": str(path)}
        interp = interp_mod.Interpreter(num_threads=int(threads) if threads else None, **kw)
        interp.allocate_tensors()
    except Exception as exc:
        raise ModelError(f"LiteRT cannot load {what!r}: {_first_line(exc)}. The file is corrupt, truncated or uses "
                         "ops this runtime lacks; re-export it") from exc
    ins = interp.get_input_details()
    outs = interp.get_output_details()

    def run(arrays):
        for d, x in zip(ins, arrays):
            if tuple(d["shape"]) != x.shape:
                interp.resize_tensor_input(d["index"], x.shape)
                interp.allocate_tensors()
            interp.set_tensor(d["index"], x.astype(d["dtype"], copy=False))
        interp.invoke()
        return [interp.get_tensor(d["index"]).copy() for d in outs]

    return Session("litert", interp, [d["name"] for d in ins], [tuple(int(v) for v in d["shape"]) for d in ins],
                   [d["name"] for d in outs], ("XNNPACK",), threads, run, lambda: None)
