"""TFLite export through litert-torch, and the two TFLite runtimes that check it.

Conversion (:func:`to_tflite`) needs the ``export`` extra (torch 2.13.0 and
litert-torch; no TensorFlow):

``fp32``
    ``litert_torch.convert(module, example_inputs)``; float32 everywhere.
``fp16``
    the fp32 flatbuffer with its FULLY_CONNECTED / CONV_2D / DEPTHWISE_CONV_2D /
    TRANSPOSE_CONV / EMBEDDING_LOOKUP weights stored as float16, each followed
    by a DEQUANTIZE op (ai-edge-quantizer's ``float_casting`` algorithm, as a
    weight-only recipe: ``add_weight_only_config(num_bits=16,
    algorithm_key=FLOAT_CASTING)``). Inputs, outputs and activations stay
    float32; CPU interpreters expand the weights once at load time, GPU
    delegates may compute in half precision. About half the fp32 size.
``int8``
    full-integer static quantization by PT2E: litert-torch's
    ``PT2EQuantizer`` with ``get_symmetric_quantization_config(
    is_per_channel=True)`` (int8 per-channel symmetric weights, int8
    per-tensor affine activations with histogram observers), calibrated on
    the ``calibration`` examples, then converted with
    ``QuantConfig(pt2e_quantizer=...)``. The converter folds the edge
    quantize/dequantize into the interface, so **inputs and outputs are
    int8** with their scale and zero point in the tensors' quantization
    parameters; :func:`run_tflite` quantizes float inputs and dequantizes
    outputs with them, so callers pass and receive floats (an output fed
    by a float op may stay float32). Ops the PT2E quantizer does not
    annotate (LSTM/GRU internals, softmax, sigmoid) stay float between
    dequantize/quantize pairs; MUL and GRU I/O are deliberately left
    unannotated (see :func:`_pt2e_quantizer`: litert-torch computes quantized
    MUL wrongly or writes unloadable files). Every file must load and
    prepare in ai-edge-litert before it is written.

``dynamic-int8`` (extra; not in :data:`PRECISIONS`)
    dynamic-range quantization by PT2E (``is_dynamic=True``): int8
    per-channel weights, float activations quantized per call inside the
    FULLY_CONNECTED / CONV kernels; float inputs and outputs. Offered only
    for the runtimes in :data:`DYNAMIC_RANGE_RUNTIMES`, which were measured
    to compute it correctly (see :data:`DYNAMIC_RANGE_NOTE`).

Measured here (ai-edge-litert 2.3, tflite-runtime 2.14.0, x86-64; tests
in tests/test_tflite.py): fp32, fp16 and PT2E int8 give the same numbers
in both runtimes. tflite-runtime 2.14 computes dynamic-range models from
ai-edge-quantizer wrongly with no error (``dynamic_wi8_afp32``: 51-118 %
error relative to the output range on dense, conv, graph, GRU and LSTM
models, where ai-edge-litert is within 1 % of torch;
``dynamic_legacy_wi8_afp32``: up to 103 %), and int16x8 models
(``static_wi8_ai16``) differently from ai-edge-litert (58-143 % on graph,
GRU and LSTM models). The wrong numbers are the same with the XNNPACK
delegate, the builtin and the reference kernels: the 2.14 kernels, not a
delegate. PT2E dynamic-range files use FULLY_CONNECTED version 12, which
tflite-runtime 2.14 refuses to load (a clear error instead).

Runtimes (:func:`run_tflite`): ``ai-edge-litert`` (its Interpreter, in a fresh
process by default so that peak memory is the session's own) and
``tflite-runtime`` 2.14 (needs ``numpy<2``, so it lives in an isolated venv
found or created by :func:`ensure_tflite_runtime_env`; a stdlib + numpy
worker script runs there).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import warnings

import numpy as np

from affectedge.errors import ExportError, MissingExtraError, ModelError, ParameterError

from . import _tflite_worker as _worker
from ._runtime import RunResult, as_example, run_isolated

__all__ = [
    "DYNAMIC_RANGE_NOTE",
    "DYNAMIC_RANGE_RUNTIMES",
    "EXTRA_PRECISIONS",
    "INT8_INTERFACE_NOTE",
    "PRECISIONS",
    "RUNTIMES",
    "TFLITE_RUNTIME_PIN",
    "default_tflite_runtime_env",
    "describe_tflite",
    "ensure_tflite_runtime_env",
    "run_tflite",
    "tflite_runtimes",
    "to_tflite",
]

PRECISIONS = ("fp32", "fp16", "int8")
EXTRA_PRECISIONS = ("dynamic-int8",)
# Where dynamic-range TFLite is computed correctly (measured; see DYNAMIC_RANGE_NOTE).
DYNAMIC_RANGE_RUNTIMES = {"ai-edge-litert": True, "tflite-runtime": False}
RUNTIMES = _worker.RUNTIMES
TFLITE_RUNTIME_PIN = ("numpy<2", "tflite-runtime==2.14.0")
WORKER = pathlib.Path(__file__).with_name("_tflite_worker.py")
ENV_VAR = "AFFECTEDGE_TFLITE_RUNTIME_ENV"

DYNAMIC_RANGE_NOTE = (
    "dynamic-range (int8 weights, float activations) TFLite is checked correct only in ai-edge-litert: "
    "tflite-runtime 2.14 computes dynamic-range and int16x8 models from current quantizers wrongly with "
    "no error (measured 51-143 % relative error), and refuses PT2E dynamic-range files "
    "(FULLY_CONNECTED version 12)"
)

INT8_INTERFACE_NOTE = (
    "full-integer int8 (PT2E static, per-channel weights): inputs and outputs are int8 with the scale and "
    "zero point in the I/O tensors' quantization parameters (float in, float out via quantize/dequantize "
    "at the edges: run_tflite does it)"
)


# ------------------------------------------------------------------ helpers
def _import_export_stack():
    try:
        import torch
        import litert_torch
    except ImportError as exc:
        raise MissingExtraError(
            f"TFLite export needs torch 2.13.0 and litert-torch ({exc.name or exc} is missing); "
            "install them with: pip install 'affectedge[export]'"
        ) from exc
    return torch, litert_torch


@contextlib.contextmanager
def _quiet_litert(litert_torch):
    """Silence litert-torch's progress lines and Python warnings while converting."""
    cfg = litert_torch.config
    prev = os.environ.get("LITERT_TORCH_SHOW_PROGRESS")
    try:
        cfg.show_progress = False
    except Exception:  # pragma: no cover - older config objects
        pass
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        if prev is None:
            os.environ.pop("LITERT_TORCH_SHOW_PROGRESS", None)
        else:
            os.environ["LITERT_TORCH_SHOW_PROGRESS"] = prev


def _as_module(module, torch):
    if isinstance(module, torch.export.ExportedProgram):
        module = module.module()
    if not isinstance(module, torch.nn.Module):
        raise ParameterError(
            f"to_tflite needs a torch.nn.Module or torch.export.ExportedProgram; got {type(module).__name__}"
        )
    try:
        module.eval()
    except Exception:  # unlifted ExportedProgram modules refuse .eval() in some torch versions
        torch.nn.Module.train(module, False)
    return module


def _as_args(example, torch, what):
    ex = example if isinstance(example, (tuple, list)) else (example,)
    if not ex:
        raise ParameterError(f"{what} is empty; expected a tuple of arrays, one per model input")
    out = []
    for k, a in enumerate(ex):
        if isinstance(a, torch.Tensor):
            t = a.detach()
        else:
            arr = np.asarray(a)
            if arr.dtype == np.float64:
                arr = arr.astype(np.float32)
            if arr.dtype.kind not in "fiub":
                raise ParameterError(f"{what}[{k}] has dtype {arr.dtype}; expected a numeric array")
            t = torch.from_numpy(np.ascontiguousarray(arr))
        if t.dtype == torch.float64:
            t = t.float()
        out.append(t)
    return tuple(out)


def _check_calibration(calibration, args, torch):
    if calibration is None:
        raise ParameterError(
            "int8 TFLite export needs calibration data: a list of input tuples "
            "(numpy arrays with batch dim 1), shaped like the example inputs"
        )
    calibration = list(calibration)
    if not calibration:
        raise ParameterError("int8 TFLite export got an empty calibration set; give at least one example")
    want = [(tuple(a.shape), a.dtype) for a in args]
    out = []
    for i, ex in enumerate(calibration):
        t = _as_args(ex, torch, f"calibration[{i}]")
        got = [(tuple(a.shape), a.dtype) for a in t]
        if len(got) != len(want) or any(g[0] != w[0] for g, w in zip(got, want)):
            raise ParameterError(
                f"calibration example {i} has shapes {[g[0] for g in got]}; "
                f"expected {[w[0] for w in want]} (the example inputs' shapes)"
            )
        if any(g[1].is_floating_point != w[1].is_floating_point for g, w in zip(got, want)):
            raise ParameterError(
                f"calibration example {i} has dtypes {[str(g[1]) for g in got]}; "
                f"expected {[str(w[1]) for w in want]}"
            )
        out.append(tuple(x.to(w[1]) for x, w in zip(t, want)))
    return out


_OP_PATTERNS = (
    (re.compile(r"Lowering not found: ([\w.]+)"), "has no TFLite lowering"),
    (re.compile(r"failed to legalize operation '([\w.]+)'"), "cannot be legalized to TFLite"),
    (re.compile(r"'(tfl\.[\w.]+)' op"), "is rejected by the TFLite converter"),
    (re.compile(r"No registered '?(\w+)'? OpKernel"), "has no kernel"),
)


def _conversion_error(exc, precision, stage):
    """Turn a converter exception into an ExportError naming the op and the converter."""
    text = str(exc)
    for pat, why in _OP_PATTERNS:
        m = pat.search(text)
        if m:
            op = m.group(1)
            where = ""
            tb = re.search(r"Original traceback:\s*\n(.*?)(?:\nUse tlparse|\Z)", text, re.S)
            if tb:
                lines = [ln.strip() for ln in tb.group(1).strip().splitlines() if ln.strip()]
                if lines:
                    where = " (at " + " | ".join(lines[-2:])[:300] + ")"
            return ExportError(
                f"unsupported op {op} for TFLite/litert-torch: it {why}{where}. "
                f"The {precision} TFLite export stopped at {stage}; rewrite that part of the model "
                "with supported ops, or export to ONNX only"
            )
    first = [ln for ln in text.strip().splitlines() if ln.strip()]
    first = first[0][:400] if first else type(exc).__name__
    return ExportError(
        f"TFLite/litert-torch conversion ({precision}) failed at {stage}: {type(exc).__name__}: {first}"
    )


def _atomic_write(out_path, data: bytes) -> pathlib.Path:
    out_path = pathlib.Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=out_path.name + ".", suffix=".part", dir=out_path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, out_path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return out_path


def _to_bytes(edge_model) -> bytes:
    for name in ("tflite_model", "to_bytes"):
        fn = getattr(edge_model, name, None)
        if callable(fn):
            return bytes(fn())
    with tempfile.TemporaryDirectory() as tmp:  # pragma: no cover - older litert-torch
        p = pathlib.Path(tmp) / "m.tflite"
        edge_model.export(str(p))
        return p.read_bytes()


# ------------------------------------------------------------------ export
def _convert_fp32(module, args, litert_torch):
    try:
        return _to_bytes(litert_torch.convert(module, args))
    except (ExportError, ParameterError):
        raise
    except Exception as exc:
        raise _conversion_error(exc, "fp32", "litert_torch.convert") from exc


def _fp16_from_fp32(fp32: bytes) -> bytes:
    try:
        from ai_edge_quantizer import algorithm_manager, qtyping, quantizer
    except ImportError as exc:
        raise MissingExtraError(
            "fp16 TFLite export needs ai-edge-quantizer (brought by litert-torch); "
            "install it with: pip install ai-edge-quantizer"
        ) from exc
    try:
        qt = quantizer.Quantizer(bytearray(fp32))
        for op in ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D_TRANSPOSE", "EMBEDDING_LOOKUP"):
            qt.add_weight_only_config(
                regex=".*",
                operation_name=getattr(qtyping.TFLOperationName, op),
                num_bits=16,
                granularity=qtyping.QuantGranularity.TENSORWISE,
                algorithm_key=algorithm_manager.AlgorithmName.FLOAT_CASTING,
            )
        return bytes(qt.quantize().quantized_model)
    except Exception as exc:
        raise ExportError(
            f"fp16 weight casting with ai-edge-quantizer failed: {type(exc).__name__}: {str(exc)[:400]}"
        ) from exc


def _pt2e_quantizer(dynamic: bool):
    from litert_torch.quantize import pt2e_quantizer as pq

    class _Quantizer(pq.PT2EQuantizer):
        # Left out of litert-torch's static patterns (measured here, torch 2.13 / litert-torch 0.10):
        # * "gru_io_only" indexes the GRU's hidden-state input and fails (IndexError) on nn.GRU
        #   called without h0; the GRU then stays float, as an LSTM does.
        # * "mul": quantized MUL comes out of the converter wrong (a sigmoid-product head: 22 % of
        #   the output range off in both runtimes while PT2E's own torch simulation is 2 % off),
        #   and a MUL fed by sigmoid/softmax moves their fixed 1/256 output scale, so the file
        #   fails to load ("output->params.scale not near 1.f / 256"). MUL stays float.
        STATIC_OPS = [op for op in pq.PT2EQuantizer.STATIC_OPS if op not in ("gru_io_only", "mul")]

    return _Quantizer().set_global(pq.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=dynamic))


def _convert_int8(module, args, calibration, torch, litert_torch, *, dynamic=False):
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e import quantize_pt2e

    precision = "dynamic-int8" if dynamic else "int8"
    quantizer = _pt2e_quantizer(dynamic)
    try:
        gm = torch.export.export(module, args).module()
    except Exception as exc:
        raise _conversion_error(exc, precision, "torch.export.export") from exc
    try:
        gm = quantize_pt2e.prepare_pt2e(gm, quantizer)
        with torch.no_grad():
            for ex in calibration or (args,):
                gm(*ex)
        gm = quantize_pt2e.convert_pt2e(gm, fold_quantize=False)
        torch.nn.Module.train(gm, False)  # the graph was exported in eval mode; say so to litert-torch
    except Exception as exc:
        raise _conversion_error(exc, precision, "PT2E prepare/calibrate/convert") from exc
    try:
        edge = litert_torch.convert(gm, args, quant_config=QuantConfig(pt2e_quantizer=quantizer))
    except Exception as exc:
        raise _conversion_error(exc, precision, "litert_torch.convert") from exc
    return _to_bytes(edge)


def to_tflite(module, example_inputs: tuple, out_path, *, precision: str, calibration=None) -> pathlib.Path:
    """Convert a PyTorch module to a ``.tflite`` file at ``out_path``.

    ``module``: an ``nn.Module`` (put in eval mode) or an ExportedProgram.
    ``example_inputs``: a tuple with one array (numpy or torch) per model
    input, batch dim 1. ``precision``: ``"fp32"``, ``"fp16"`` or ``"int8"``
    (see the module docstring for what each means). ``calibration``: for
    int8, a list of examples (each an array or a tuple of arrays shaped like
    ``example_inputs``). The file is written atomically. Raises ExportError
    naming the unsupported op and "TFLite/litert-torch" when conversion
    fails; ParameterError for bad arguments; MissingExtraError without the
    ``export`` extra.
    """
    if precision not in PRECISIONS + EXTRA_PRECISIONS:
        raise ParameterError(f"precision must be one of {PRECISIONS + EXTRA_PRECISIONS}; got {precision!r}")
    torch, litert_torch = _import_export_stack()
    module = _as_module(module, torch)
    args = _as_args(example_inputs, torch, "example_inputs")
    cal = _check_calibration(calibration, args, torch) if precision == "int8" else None
    sink = io.StringIO()
    # litert-torch prints progress to stdout and ai-edge-quantizer tqdm bars to stderr
    with _quiet_litert(litert_torch), torch.no_grad(), contextlib.redirect_stdout(sink), \
            contextlib.redirect_stderr(sink):
        if precision == "int8":
            data = _convert_int8(module, args, cal, torch, litert_torch)
        elif precision == "dynamic-int8":
            data = _convert_int8(module, args, None, torch, litert_torch, dynamic=True)
        else:
            data = _convert_fp32(module, args, litert_torch)
            if precision == "fp16":
                data = _fp16_from_fp32(data)
    if data[4:8] != b"TFL3":
        raise ExportError(f"TFLite/litert-torch produced no valid flatbuffer for {precision} (missing 'TFL3')")
    _check_loads(data, precision)
    return _atomic_write(out_path, data)


def _check_loads(data: bytes, precision: str) -> None:
    """Refuse a file the interpreter cannot prepare (e.g. a quantized op's scale constraint)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        return
    try:
        interp = Interpreter(model_content=data, num_threads=1)
        interp.allocate_tensors()
    except Exception as exc:
        text = " ".join(str(exc).split())
        m = re.search(r"Node number \d+ \((\w+)\) failed to prepare", text)
        op = f"op {m.group(1)}" if m else "the model"
        raise ExportError(
            f"TFLite/litert-torch produced a file ({precision}) that ai-edge-litert cannot prepare: {op} "
            f"fails ({text[:300]}); the artifact is refused"
        ) from None


# --------------------------------------------------------------- describe
def describe_tflite(path) -> dict:
    """Ops and interface of a .tflite file (main env; uses ai-edge-litert's schema).

    Returns ``{"ops": {OPNAME: count}, "inputs": [...], "outputs": [...]}``
    where each I/O entry has name, shape, dtype and (scale, zero_point) or None.
    """
    path = pathlib.Path(path)
    data = _read_flatbuffer(path)
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError as exc:
        raise MissingExtraError("describe_tflite needs ai-edge-litert: pip install 'affectedge[tflite]'") from exc
    try:
        model = schema.Model.GetRootAs(data, 0)
        names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
        type_names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
        ops = {}
        g = model.Subgraphs(0)
        for i in range(g.OperatorsLength()):
            code = model.OperatorCodes(g.Operators(i).OpcodeIndex())
            b = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            name = names.get(b, str(b))
            if name == "CUSTOM":
                name = "CUSTOM:" + (code.CustomCode() or b"?").decode()
            ops[name] = ops.get(name, 0) + 1

        def tensor(idx):
            t = g.Tensors(idx)
            q = t.Quantization()
            qp = None
            if q is not None and q.ScaleLength() == 1:
                qp = (float(q.Scale(0)), int(q.ZeroPoint(0)) if q.ZeroPointLength() else 0)
            return dict(
                name=(t.Name() or b"").decode(),
                shape=[int(s) for s in t.ShapeAsNumpy()] if t.ShapeLength() else [],
                dtype=type_names.get(t.Type(), str(t.Type())).lower(),
                quantization=qp,
            )

        return dict(
            ops=ops,
            inputs=[tensor(g.Inputs(i)) for i in range(g.InputsLength())],
            outputs=[tensor(g.Outputs(i)) for i in range(g.OutputsLength())],
            size_bytes=len(data),
        )
    except Exception as exc:
        raise ModelError(f"{str(path)!r} could not be parsed as a TFLite flatbuffer: {exc}") from exc


def _read_flatbuffer(path) -> bytes:
    path = pathlib.Path(path)
    if not path.is_file():
        raise ModelError(f".tflite file {str(path)!r} does not exist")
    data = path.read_bytes()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelError(
            f"{str(path)!r} is not a TFLite flatbuffer (no 'TFL3' identifier at byte 4); "
            "the file is corrupt, truncated or of another format: re-export it"
        )
    return data


def _verify_structure(path, data: bytes) -> None:
    """Unpack every table of the flatbuffer so that a truncated file fails here.

    tflite-runtime 2.14 does not verify the flatbuffer and crashes
    (SIGSEGV) on a truncated file, so this runs before any runtime sees it.
    Needs ai-edge-litert's schema module; skipped without it (the worker then
    still reports a crash as a ModelError).
    """
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        return
    try:
        model = schema.ModelT.InitFromPackedBuf(data, 0)
        for b in model.buffers or []:
            off, size = int(getattr(b, "offset", 0) or 0), int(getattr(b, "size", 0) or 0)
            if off and off + size > len(data):
                raise ValueError(f"buffer at {off}+{size} runs past the end ({len(data)} bytes)")
        if not model.subgraphs:
            raise ValueError("no subgraph")
    except Exception as exc:
        raise ModelError(
            f"{str(path)!r} is a corrupt or truncated TFLite flatbuffer ({len(data)} bytes; "
            f"{type(exc).__name__}: {str(exc)[:200]}); re-export it"
        ) from None


# ---------------------------------------------------------------- runtimes
def default_tflite_runtime_env() -> pathlib.Path:
    """Where the isolated tflite-runtime venv lives (AFFECTEDGE_TFLITE_RUNTIME_ENV overrides)."""
    env = os.environ.get(ENV_VAR)
    if env:
        return pathlib.Path(env).expanduser()
    return pathlib.Path("~/.cache/affectedge/tflite-runtime-env").expanduser()


def _env_python(env: pathlib.Path) -> pathlib.Path:
    return env / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _probe_env(py: pathlib.Path, timeout=120):
    """(version, why) of tflite-runtime in the env at ``py``; version None when unusable."""
    if not py.is_file():
        return None, f"no python at {py}"
    try:
        proc = subprocess.run(
            [str(py), "-c", "import numpy, tflite_runtime, tflite_runtime.interpreter as i; "
             "print(tflite_runtime.__version__, numpy.__version__)"],
            capture_output=True, text=True, timeout=timeout,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"{py} did not run: {exc}"
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
        return None, f"{py} cannot import tflite_runtime: {tail[0]}"
    tfl, npv = proc.stdout.split()[:2]
    return tfl, f"isolated env {py.parent.parent} (tflite-runtime {tfl}, numpy {npv})"


def ensure_tflite_runtime_env(create: bool = False) -> pathlib.Path | None:
    """Python of the isolated tflite-runtime env; create it when asked.

    The env is ``$AFFECTEDGE_TFLITE_RUNTIME_ENV`` or
    ``~/.cache/affectedge/tflite-runtime-env``; creating it runs ``python -m
    venv`` and ``pip install "numpy<2" tflite-runtime==2.14.0``. Returns None
    when the env is absent or broken and ``create`` is False. Raises
    ExportError (with pip's last lines) when creation fails, e.g. offline or
    on a platform without a tflite-runtime wheel.
    """
    env = default_tflite_runtime_env()
    py = _env_python(env)
    ver, _ = _probe_env(py)
    if ver is not None:
        return py
    if not create:
        return None
    env.parent.mkdir(parents=True, exist_ok=True)
    tmp = env.with_name(env.name + f".creating-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    base = getattr(sys, "_base_executable", None) or sys.executable
    try:
        steps = (
            [base, "-m", "venv", str(tmp)],
            [str(_env_python(tmp)), "-m", "pip", "install", "--disable-pip-version-check", "-q",
             *TFLITE_RUNTIME_PIN],
        )
        for cmd in steps:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
            if proc.returncode != 0:
                tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-4:])
                raise ExportError(
                    f"could not create the tflite-runtime env at {env} ({' '.join(cmd[-3:])} exited "
                    f"{proc.returncode}): {tail}. tflite-runtime is unavailable; create the env by hand "
                    f"(python -m venv {env} && {env}/bin/pip install 'numpy<2' tflite-runtime==2.14.0) "
                    f"or point {ENV_VAR} at one"
                )
        ver, why = _probe_env(_env_python(tmp))
        if ver is None:
            raise ExportError(f"the new tflite-runtime env does not work: {why}")
        shutil.rmtree(env, ignore_errors=True)
        os.replace(tmp, env)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    # venv scripts hard-code the folder they were created in; the python link
    # itself is relocatable, which is all the worker needs.
    return _env_python(env)


def tflite_runtimes() -> dict:
    """Which TFLite runtimes can run here, with their versions and why."""
    out = {}
    try:
        from importlib.metadata import version

        import ai_edge_litert.interpreter  # noqa: F401

        out["ai-edge-litert"] = dict(available=True, version=version("ai-edge-litert"),
                                     why="imported in this environment")
    except Exception as exc:
        out["ai-edge-litert"] = dict(available=False, version=None,
                                     why=f"ai_edge_litert cannot be imported ({exc}); pip install ai-edge-litert")
    py = ensure_tflite_runtime_env(create=False)
    if py is None:
        env = default_tflite_runtime_env()
        _, why = _probe_env(_env_python(env))
        out["tflite-runtime"] = dict(
            available=False, version=None,
            why=(f"tflite-runtime 2.14 needs numpy<2 and lives in an isolated env; none usable at {env} "
                 f"({why}). Create it with ensure_tflite_runtime_env(create=True) or point {ENV_VAR} at one"),
        )
    else:
        ver, why = _probe_env(py)
        out["tflite-runtime"] = dict(available=True, version=ver, why=why)
    return out


def _run_litert_here(path, examples, threads, repeats):
    try:
        res = _worker.run(str(path), examples, "ai-edge-litert", threads, repeats)
    except _worker.WorkerError as exc:
        import affectedge.errors as errors

        raise getattr(errors, exc.kind, ExportError)(str(exc)) from None
    return RunResult(
        outputs=res["outputs"], latency_ms=res["latency_ms"], peak_rss_mb=res["peak_rss_mb"],
        runtime="ai-edge-litert", runtime_version=res["runtime_version"], threads=int(threads),
        baseline_rss_mb=res["baseline_rss_mb"],
    )


def _run_in_tflite_runtime_env(path, examples, threads, repeats, timeout_s=900):
    py = ensure_tflite_runtime_env(create=False)
    if py is None:
        raise ExportError(
            f"tflite-runtime is unavailable: no isolated env at {default_tflite_runtime_env()} "
            f"(it needs numpy<2). Create it with ensure_tflite_runtime_env(create=True) or point {ENV_VAR} at one"
        )
    with tempfile.TemporaryDirectory(prefix="affectedge-tflite-") as tmp:
        req, resp = pathlib.Path(tmp) / "req.npz", pathlib.Path(tmp) / "resp.npz"
        arrays = {}
        for e, ex in enumerate(examples):
            for i, a in enumerate(ex):
                arrays[f"x_{e}_{i}"] = a
        meta = dict(path=str(path), runtime="tflite-runtime", threads=int(threads), repeats=int(repeats),
                    n_examples=len(examples), n_inputs=[len(ex) for ex in examples])
        np.savez(req, meta=np.array(json.dumps(meta)), **arrays)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        try:
            proc = subprocess.run([str(py), str(WORKER), str(req), str(resp)], capture_output=True,
                                  text=True, timeout=timeout_s, env=env)
        except subprocess.TimeoutExpired as exc:
            raise ExportError(f"tflite-runtime worker timed out after {timeout_s} s on {path}") from exc
        if not resp.is_file():
            tail = " | ".join((proc.stderr or proc.stdout or "").strip().splitlines()[-5:])
            if proc.returncode < 0:
                raise ModelError(
                    f"tflite-runtime crashed (signal {-proc.returncode}) on {pathlib.Path(path).name}: the file is "
                    f"corrupt or truncated, or hits a tflite-runtime 2.14 bug; the artifact is refused. {tail}"
                )
            raise ExportError(
                f"the tflite-runtime worker exited with code {proc.returncode} and no result "
                f"(crashed or killed) on {pathlib.Path(path).name}: {tail}"
            )
        with np.load(resp, allow_pickle=False) as z:
            m = json.loads(str(z["meta"]))
            outputs = [z[f"y_{k}"] for k in range(int(m.get("n_outputs", 0)))]
    if not m["ok"]:
        import affectedge.errors as errors

        raise getattr(errors, m.get("kind", "ExportError"), ExportError)(m["message"])
    return RunResult(
        outputs=outputs, latency_ms=list(m["latency_ms"]), peak_rss_mb=float(m["peak_rss_mb"]),
        runtime="tflite-runtime", runtime_version=str(m["runtime_version"]), threads=int(threads),
        baseline_rss_mb=float(m["baseline_rss_mb"]),
    )


def run_tflite(path, inputs: list, *, runtime: str, threads: int, repeats: int = 20,
               isolate: bool = True) -> RunResult:
    """Run a .tflite file on every example, then time ``repeats`` single calls.

    ``inputs``: list of examples, each an array or a tuple of arrays (one per
    model input) with batch dim 1. Float inputs to an int8-interface model
    are quantized with the input's scale/zero point and int8 outputs
    dequantized, so ``outputs`` are float. ``runtime``: ``"ai-edge-litert"``
    (in a fresh python when ``isolate``, the default, so that peak memory is
    the session's own; ``isolate=False`` runs in this process) or
    ``"tflite-runtime"`` (always in the isolated env's python). Raises
    ModelError for a missing, corrupt or truncated file; ExportError when
    the runtime is unavailable, lacks an op, or fails while running.
    """
    if runtime not in RUNTIMES:
        raise ParameterError(f"runtime must be one of {RUNTIMES}; got {runtime!r}")
    path = pathlib.Path(path)
    # existence, identifier and structure: a clear error before any runtime loads it
    _verify_structure(path, _read_flatbuffer(path))
    examples = [as_example(e) for e in inputs]
    if not examples:
        raise ParameterError("run_tflite needs at least one input example")
    if int(threads) < 1:
        raise ParameterError(f"threads must be >= 1; got {threads}")
    if runtime == "tflite-runtime":
        return _run_in_tflite_runtime_env(path, examples, int(threads), int(repeats))
    if not isolate:
        return _run_litert_here(path, examples, int(threads), int(repeats))
    return run_isolated(
        "affectedge.exporters._tflite", "_run_litert_here",
        dict(path=str(path), examples=examples, threads=int(threads), repeats=int(repeats)),
    )
