"""Run a .tflite file in one interpreter and measure it (standard library + numpy).

This file is imported by :mod:`affectedge.exporters._tflite` (runtime
``ai-edge-litert``) and also executed as a plain script by the python of the
isolated tflite-runtime environment, where affectedge itself is not installed
(tflite-runtime 2.14 needs ``numpy<2``). So it imports nothing from
affectedge and nothing beyond numpy and the interpreter package.

Script use::

    python _tflite_worker.py REQUEST.npz RESPONSE.npz

REQUEST.npz holds ``meta`` (a JSON string: path, runtime, threads, repeats,
n_examples, n_inputs) and arrays ``x_<example>_<input>``. RESPONSE.npz holds
``meta`` (JSON: ok, error kind/message, latency_ms, peak and baseline RSS,
runtime version, n_outputs) and arrays ``y_<output>`` (concatenated over the
examples).

Quantized interfaces: where a model input is integer-typed (int8/uint8/int16)
but the example is float, the worker quantizes it with the input tensor's own
scale and zero point; an integer-typed output with a scale is dequantized to
float32. Full-integer int8 artifacts from litert-torch have int8 inputs and
outputs, so callers always pass and get floats.
"""

from __future__ import annotations

import json
import re
import sys
import time

import numpy as np

RUNTIMES = ("ai-edge-litert", "tflite-runtime")


class WorkerError(Exception):
    """An error with the affectedge error class name it maps to."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind


# ------------------------------------------------------------------ memory
def _status_mb(key):
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    if key == "VmHWM":
        try:
            import resource

            r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            return r / (1024.0 * 1024.0) if sys.platform == "darwin" else r / 1024.0
        except Exception:
            return 0.0
    return 0.0


# ------------------------------------------------------------- interpreter
def _interpreter_class(runtime):
    if runtime == "ai-edge-litert":
        from ai_edge_litert import interpreter as mod

        try:
            from importlib.metadata import version

            ver = version("ai-edge-litert")
        except Exception:
            ver = getattr(mod, "__version__", "unknown")
        return mod.Interpreter, ver
    if runtime == "tflite-runtime":
        import tflite_runtime
        from tflite_runtime import interpreter as mod

        return mod.Interpreter, getattr(tflite_runtime, "__version__", "unknown")
    raise WorkerError("ParameterError", f"runtime must be one of {RUNTIMES}, got {runtime!r}")


def _natural(name):
    m = re.search(r"(\d+)$", name)
    return (name[: m.start()] if m else name, int(m.group(1)) if m else -1)


def _first_line(exc):
    lines = [s for s in str(exc).strip().splitlines() if s.strip()]
    return " ".join(lines[:3])[:600] if lines else type(exc).__name__


def _io_details(interp):
    """Input and output details in signature order (args_0, args_1, ...)."""
    ins, outs = interp.get_input_details(), interp.get_output_details()
    try:
        sigs = interp._get_full_signature_list()  # {key: {"inputs": {name: idx}, "outputs": {...}}}
    except Exception:
        sigs = None
    if sigs and len(sigs) == 1:
        sig = next(iter(sigs.values()))
        by_index_in = {d["index"]: d for d in ins}
        by_index_out = {d["index"]: d for d in outs}
        try:
            ins = [by_index_in[i] for _, i in sorted(sig["inputs"].items(), key=lambda kv: _natural(kv[0]))]
            outs = [by_index_out[i] for _, i in sorted(sig["outputs"].items(), key=lambda kv: _natural(kv[0]))]
        except KeyError:
            ins, outs = interp.get_input_details(), interp.get_output_details()
    return ins, outs


def _quant(detail):
    q = detail.get("quantization_parameters") or {}
    scales = np.asarray(q.get("scales", []), dtype=np.float64)
    zps = np.asarray(q.get("zero_points", []), dtype=np.int64)
    if scales.size == 0:
        scale, zp = detail.get("quantization", (0.0, 0))
        if not scale:
            return None
        return float(scale), int(zp)
    if scales.size != 1:
        return None  # per-channel on an I/O tensor: not expected
    return float(scales[0]), int(zps[0])


def _prepare_input(x, detail, name):
    want = np.dtype(detail["dtype"])
    x = np.asarray(x)
    shape = tuple(int(s) for s in detail["shape"])
    if tuple(x.shape) != shape:
        sig = tuple(int(s) for s in detail.get("shape_signature", detail["shape"]))
        ok = len(sig) == x.ndim and all(s == -1 or s == d for s, d in zip(sig, x.shape))
        if not ok:
            raise WorkerError(
                "ParameterError",
                f"input {name!r} of the .tflite model expects shape {shape} {want.name}; "
                f"got {tuple(x.shape)} {x.dtype.name}",
            )
    if want.kind in "iu" and x.dtype.kind == "f":
        q = _quant(detail)
        if q is None:
            raise WorkerError(
                "ParameterError",
                f"input {name!r} is {want.name} without quantization parameters; pass {want.name} data",
            )
        scale, zp = q
        info = np.iinfo(want)
        x = np.clip(np.round(x.astype(np.float64) / scale) + zp, info.min, info.max).astype(want)
    elif want.kind == "f" and x.dtype != want:
        x = x.astype(want)
    elif want.kind in "iub" and x.dtype != want:
        x = x.astype(want)
    return np.ascontiguousarray(x)


def _finish_output(y, detail):
    y = np.array(y, copy=True)
    if y.dtype.kind in "iu":
        q = _quant(detail)
        if q is not None:
            scale, zp = q
            return ((y.astype(np.float32) - np.float32(zp)) * np.float32(scale)).astype(np.float32)
    return y


def run(path, examples, runtime, threads, repeats=20, warmup=3):
    """Run every example once (outputs), then time ``repeats`` single calls.

    ``examples``: list of tuples of arrays (one per model input). Returns a
    dict with outputs (one array per model output, concatenated over the
    examples), latency_ms, peak_rss_mb, baseline_rss_mb, runtime_version.
    Raises WorkerError(kind, message).
    """
    Interpreter, ver = _interpreter_class(runtime)
    baseline = _status_mb("VmRSS")
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise WorkerError("ModelError", f".tflite file {str(path)!r} cannot be read: {exc}")
    if len(head) < 8 or head[4:8] != b"TFL3":
        raise WorkerError(
            "ModelError",
            f"{str(path)!r} is not a TFLite flatbuffer (no 'TFL3' identifier at byte 4); "
            "the file is corrupt, truncated or of another format: re-export it",
        )
    try:
        interp = Interpreter(model_path=str(path), num_threads=int(threads))
        interp.allocate_tensors()
    except Exception as exc:
        msg = _first_line(exc)
        m = re.search(r"Didn't find op for builtin opcode '([A-Z0-9_]+)' version '(\d+)'", str(exc))
        if m:
            raise WorkerError(
                "ExportError",
                f"{runtime} {ver} does not support op {m.group(1)} (version {m.group(2)}) used by "
                f"{str(path)!r}: {msg}",
            )
        raise WorkerError(
            "ModelError",
            f"{runtime} {ver} cannot load {str(path)!r}: {msg}. The file is corrupt, truncated, "
            "or uses ops this runtime lacks; re-export it",
        )
    ins, outs = _io_details(interp)
    prepared = []
    for k, ex in enumerate(examples):
        if len(ex) != len(ins):
            raise WorkerError(
                "ParameterError",
                f"{str(path)!r} takes {len(ins)} inputs ({[d['name'] for d in ins]}) "
                f"but example {k} carries {len(ex)} arrays",
            )
        prepared.append([_prepare_input(x, d, d["name"]) for x, d in zip(ex, ins)])
    in_idx = [d["index"] for d in ins]
    out_idx = [d["index"] for d in outs]

    def call(xs):
        for i, x in zip(in_idx, xs):
            interp.set_tensor(i, x)
        interp.invoke()
        return [interp.get_tensor(i) for i in out_idx]

    try:
        results = [[_finish_output(y, d) for y, d in zip(call(xs), outs)] for xs in prepared]
        for i in range(min(warmup, max(1, len(prepared)) * warmup)):
            call(prepared[i % len(prepared)])
        lat = []
        for i in range(int(repeats)):
            xs = prepared[i % len(prepared)]
            t0 = time.perf_counter()
            call(xs)
            lat.append((time.perf_counter() - t0) * 1e3)
    except WorkerError:
        raise
    except Exception as exc:
        raise WorkerError("ExportError", f"{runtime} {ver} failed running {str(path)!r}: {_first_line(exc)}")
    outputs = [np.concatenate([r[k] for r in results], axis=0) for k in range(len(outs))]
    return dict(
        outputs=outputs,
        latency_ms=lat,
        peak_rss_mb=_status_mb("VmHWM"),
        baseline_rss_mb=baseline,
        runtime_version=str(ver),
        output_names=[d["name"] for d in outs],
    )


# ------------------------------------------------------------------ script
def main(argv):
    req_path, resp_path = argv[1], argv[2]
    meta_out = {"ok": False}
    arrays = {}
    try:
        with np.load(req_path, allow_pickle=False) as req:
            meta = json.loads(str(req["meta"]))
            examples = [
                tuple(req[f"x_{e}_{i}"] for i in range(int(meta["n_inputs"][e])))
                for e in range(int(meta["n_examples"]))
            ]
        res = run(meta["path"], examples, meta["runtime"], meta["threads"], meta["repeats"])
        for k, y in enumerate(res.pop("outputs")):
            arrays[f"y_{k}"] = y
        meta_out.update(res, ok=True, n_outputs=len(arrays))
    except WorkerError as exc:
        meta_out.update(kind=exc.kind, message=str(exc))
    except Exception as exc:  # report, never a bare traceback
        meta_out.update(kind="ExportError", message=f"{type(exc).__name__}: {_first_line(exc)}")
    np.savez(resp_path, meta=np.array(json.dumps(meta_out)), **arrays)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
