"""Run an exported artifact in a runtime and measure it: outputs, latency, memory.

:class:`RunResult` is what every runtime runner returns (``run_onnx`` here,
``run_tflite`` in :mod:`._tflite`). ``inputs`` is a list of *examples*; each
example is one array or a tuple of arrays (one per model input), each with
the model's own leading batch axis of 1. ``outputs`` holds one array per model
output, concatenated over the examples along axis 0.

Peak memory is measured in a fresh process per run (``isolate=True``, the
default): ``peak_rss_mb`` is that process's peak resident set (interpreter,
numpy and runtime included), ``baseline_rss_mb`` its resident set just before
the session was created, so ``peak_rss_mb - baseline_rss_mb`` is what loading
and running the model cost.
"""

from __future__ import annotations

import os
import pickle
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from affectedge.errors import ExportError, ModelError

__all__ = ["RunResult", "as_example", "current_rss_mb", "peak_rss_mb", "run_onnx"]


@dataclass(frozen=True)
class RunResult:
    """Outputs and measurements of one artifact in one runtime.

    ``latency_ms`` holds one figure per single-example call (after warm-up).
    """

    outputs: list
    latency_ms: list
    peak_rss_mb: float
    runtime: str
    runtime_version: str
    threads: int
    baseline_rss_mb: float = 0.0
    providers: tuple = field(default=())

    @property
    def latency_median_ms(self) -> float:
        return float(statistics.median(self.latency_ms)) if self.latency_ms else float("nan")

    @property
    def latency_p95_ms(self) -> float:
        if not self.latency_ms:
            return float("nan")
        return float(np.percentile(np.asarray(self.latency_ms, dtype=np.float64), 95))

    @property
    def session_rss_mb(self) -> float:
        """Peak memory attributable to the session (peak minus pre-session baseline)."""
        return max(0.0, self.peak_rss_mb - self.baseline_rss_mb)


# ------------------------------------------------------------------ memory
def _status_kb(key):
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return float(line.split()[1])
    except OSError:
        return None
    return None


def current_rss_mb() -> float:
    """Resident set of this process now (MiB); 0.0 where it cannot be read."""
    kb = _status_kb("VmRSS")
    return kb / 1024.0 if kb is not None else 0.0


def peak_rss_mb() -> float:
    """Peak resident set of this process so far (MiB)."""
    kb = _status_kb("VmHWM")
    if kb is not None:
        return kb / 1024.0
    try:
        import resource

        r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return r / (1024.0 * 1024.0) if sys.platform == "darwin" else r / 1024.0
    except Exception:  # pragma: no cover - platforms without resource
        return 0.0


# ------------------------------------------------------------------ inputs
def as_example(example) -> tuple:
    """One example as a tuple of C-contiguous arrays."""
    if isinstance(example, np.ndarray):
        return (np.ascontiguousarray(example),)
    return tuple(np.ascontiguousarray(a) for a in example)


def _time_calls(call, examples, repeats, warmup=3):
    outs = [call(ex) for ex in examples]
    for i in range(min(warmup, len(examples) * warmup)):
        call(examples[i % len(examples)])
    lat = []
    for i in range(repeats):
        ex = examples[i % len(examples)]
        t0 = time.perf_counter()
        call(ex)
        lat.append((time.perf_counter() - t0) * 1e3)
    n_out = len(outs[0])
    outputs = [np.concatenate([np.asarray(o[k]) for o in outs], axis=0) for k in range(n_out)]
    return outputs, lat


# ------------------------------------------------------------- onnxruntime
def onnx_providers(requested=None):
    """CPU always; CUDA / TensorRT when this onnxruntime build offers them."""
    import onnxruntime as ort

    avail = ort.get_available_providers()
    if requested:
        missing = [p for p in requested if p not in avail]
        if missing:
            raise ExportError(
                f"onnxruntime providers {missing} are not available here (available: {avail})"
            )
        return list(requested)
    chosen = [p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider") if p in avail]
    return chosen + ["CPUExecutionProvider"]


def _run_onnx_here(path, examples, threads, providers, repeats):
    import onnxruntime as ort

    from affectedge.runtime._session import create_session

    baseline = current_rss_mb()
    provs = onnx_providers(providers)
    try:
        # the runtime's own session factory: the check measures what the device will run
        sess = create_session(path, backend="onnxruntime", providers=provs, threads=int(threads)).impl
    except ModelError as exc:
        cause = exc.__cause__ or exc
        op = unsupported_op(str(cause))
        if op:
            raise ExportError(
                f"{Path(path).name}: operator {op} is not supported by runtime onnxruntime {ort.__version__} "
                f"(providers {provs}); choose another precision or replace the op. ({_first_line(cause)})"
            ) from exc
        raise ModelError(
            f"onnxruntime {ort.__version__} cannot load {str(path)!r}: {_first_line(cause)}. "
            "The file is corrupt, truncated or not an ONNX model; re-export it"
        ) from exc
    names = [i.name for i in sess.get_inputs()]
    for ex in examples[:1]:
        if len(ex) != len(names):
            raise ExportError(
                f"{Path(path).name} takes {len(names)} inputs ({names}) but examples carry {len(ex)} arrays"
            )

    def call(ex):
        return sess.run(None, dict(zip(names, ex)))

    try:
        outputs, lat = _time_calls(call, examples, repeats)
    except (ExportError, ModelError):
        raise
    except Exception as exc:
        raise ExportError(f"onnxruntime {ort.__version__} failed running {Path(path).name}: {_first_line(exc)}") from exc
    return RunResult(
        outputs=outputs,
        latency_ms=lat,
        peak_rss_mb=peak_rss_mb(),
        runtime="onnxruntime",
        runtime_version=ort.__version__,
        threads=int(threads),
        baseline_rss_mb=baseline,
        providers=tuple(sess.get_providers()),
    )


_UNSUPPORTED = (
    re.compile(r"Could not find an implementation for (\w+)\((\d+)\)"),
    re.compile(r"([\w.]+:\w+)\(-?\d+\) is not a registered function/op"),
    re.compile(r"No Op registered for (\w+) with domain_version of (\d+)"),
    re.compile(r"No opset import for domain '([\w.]+)'"),
)


def unsupported_op(message: str):
    """The op an onnxruntime load error complains about, or None."""
    for rx in _UNSUPPORTED:
        m = rx.search(message)
        if m:
            return m.group(1) + (f" (opset {m.group(2)})" if m.lastindex and m.lastindex > 1 else "")
    return None


def _first_line(exc):
    s = str(exc).strip().splitlines()
    return s[0][:400] if s else type(exc).__name__


def run_onnx(path, inputs, *, threads, providers=None, repeats=20, isolate=True) -> RunResult:
    """Run an ONNX file on every example and time ``repeats`` single calls.

    With ``isolate=True`` (default) the session lives in a fresh Python
    process, so ``peak_rss_mb`` is that session's own figure.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"ONNX file {str(path)!r} does not exist")
    examples = [as_example(e) for e in inputs]
    if not examples:
        raise ExportError("run_onnx needs at least one input example")
    if not isolate:
        return _run_onnx_here(path, examples, threads, providers, repeats)
    return run_isolated(
        "affectedge.exporters._runtime", "_run_onnx_here",
        dict(path=str(path), examples=examples, threads=threads, providers=providers, repeats=repeats),
    )


# ------------------------------------------------------------ isolation
def run_isolated(module, func, kwargs, *, python=None, timeout_s=600):
    """Call ``module.func(**kwargs)`` in a fresh interpreter; return its result.

    Arguments and result travel as pickles through a temp folder; an
    AffectEdgeError raised there is raised again here with its message.
    """
    with tempfile.TemporaryDirectory(prefix="affectedge-run-") as tmp:
        req = Path(tmp) / "req.pkl"
        resp = Path(tmp) / "resp.pkl"
        req.write_bytes(pickle.dumps((module, func, kwargs), protocol=4))
        env = dict(os.environ)
        try:
            proc = subprocess.run(
                [python or sys.executable, "-c", _CHILD, str(req), str(resp)],
                env=env, capture_output=True, text=True, timeout=timeout_s,
            )
        except subprocess.TimeoutExpired as exc:
            raise ExportError(f"the isolated runner for {func} timed out after {timeout_s} s") from exc
        if not resp.is_file():
            tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-5:]
            raise ExportError(
                f"the isolated runner for {func} exited with code {proc.returncode} and no result "
                f"(crashed or killed): {' | '.join(tail)}"
            )
        ok, payload = pickle.loads(resp.read_bytes())
    if ok:
        return payload
    kind, msg = payload
    import affectedge.errors as errors

    raise getattr(errors, kind, ExportError)(msg)


_CHILD = r"""
import importlib, pickle, sys, traceback
req, resp = sys.argv[1], sys.argv[2]
module, func, kwargs = pickle.load(open(req, "rb"))
try:
    from affectedge.errors import AffectEdgeError
    result = (True, getattr(importlib.import_module(module), func)(**kwargs))
except AffectEdgeError as exc:
    result = (False, (type(exc).__name__, str(exc)))
except Exception as exc:
    result = (False, ("ExportError", f"{type(exc).__name__}: {exc}"))
pickle.dump(result, open(resp, "wb"), protocol=4)
"""
