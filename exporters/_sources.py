"""What the user hands in: a zoo id, ``package.module:factory`` + weights, a
``.pt2`` ExportedProgram, or an ``.onnx`` file — resolved into a :class:`Source`.

A source knows its input specification (names, shapes with ``None`` for a
variable axis, dtypes), the files it came from with their sha256, and how to
compute the reference outputs every artifact is compared against: the PyTorch
program when there is one, else the original ONNX file in onnxruntime.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from affectedge.errors import ExportError, ModelError, ParameterError

__all__ = ["InputSpec", "Source", "resolve_source"]

_FACTORY_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


@dataclass(frozen=True)
class InputSpec:
    name: str
    shape: tuple  # batch axis first; None for a variable axis
    dtype: str = "float32"

    @property
    def example_shape(self) -> tuple:
        """Shape of one example without the batch axis."""
        return tuple(self.shape[1:])


@dataclass
class Source:
    """A resolved model source (see the module docstring)."""

    kind: str  # "zoo" | "folder" | "factory" | "pt2" | "onnx"
    name: str
    ref: str
    card: object = None  # affectedge.models.ModelCard or None
    pt2_path: Path | None = None
    onnx_path: Path | None = None
    weights_path: Path | None = None
    factory: str | None = None
    input_specs: list = field(default_factory=list)  # InputSpec; empty until known (factory)
    output_names: list = field(default_factory=list)
    files_sha256: dict = field(default_factory=dict)
    _module: object = None

    # ------------------------------------------------------------ queries
    @property
    def task(self) -> str | None:
        """The card's task, as the data provider (:func:`affectedge.exporters._data.data_provider`) names it."""
        if self.card is None:
            return None
        from ._data import data_provider

        return data_provider().task(self.card)

    @property
    def has_torch(self) -> bool:
        return self.kind == "factory" or self.pt2_path is not None

    @property
    def metric_name(self) -> str:
        """The task metric on labelled validation data: the data provider's, accuracy without a card."""
        if self.card is None:
            return "accuracy"
        from ._data import data_provider

        return data_provider().metric(self.card)

    def describe(self) -> dict:
        return {
            "kind": self.kind,
            "ref": self.ref,
            "name": self.name,
            "card_id": self.card.id if self.card is not None else None,
            "task": self.task,
            "reference": "pytorch" if self.has_torch else "onnxruntime (source ONNX)",
            "inputs": [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype} for s in self.input_specs],
            "outputs": list(self.output_names),
            "files_sha256": dict(self.files_sha256),
        }

    # -------------------------------------------------------------- torch
    def torch_module(self):
        """The PyTorch module (eval mode) to export and to compute references with."""
        if self._module is not None:
            return self._module
        if not self.has_torch:
            raise ExportError(
                f"source {self.ref!r} is an ONNX file: it has no PyTorch program, so only ONNX targets can be built "
                "from it (TFLite conversion needs the PyTorch model: pass a zoo id with model.pt2, a .pt2 "
                "ExportedProgram, or package.module:factory with --weights)"
            )
        if self.pt2_path is not None:
            self._module = _load_pt2(self.pt2_path).module()
        else:
            self._module = _build_factory(self.factory, self.weights_path)
            self._module.eval()
        return self._module

    def exported_program(self, example):
        """An ExportedProgram for ``example`` (a tuple of arrays with batch 1)."""
        torch = _require_torch()
        if self.pt2_path is not None:
            return _load_pt2(self.pt2_path)
        mod = self.torch_module()
        try:
            return torch.export.export(mod, tuple(torch.from_numpy(np.asarray(a)) for a in example))
        except Exception as exc:
            raise ExportError(
                f"torch.export cannot capture {self.ref!r} ({type(exc).__name__}: {_first_line(exc)}); make the "
                "module exportable (no data-dependent control flow) or export it yourself to .pt2"
            ) from exc

    def reference_outputs(self, examples) -> list:
        """Outputs of the source model on every example, concatenated per output."""
        if self.has_torch:
            torch = _require_torch()
            mod = self.torch_module()
            outs = []
            with torch.no_grad():
                for ex in examples:
                    y = mod(*(torch.from_numpy(np.ascontiguousarray(a)) for a in ex))
                    if isinstance(y, dict):
                        y = list(y.values())
                    elif not isinstance(y, (tuple, list)):
                        y = [y]
                    outs.append([t.detach().cpu().numpy() for t in y])
            return [np.concatenate([o[k] for o in outs], axis=0) for k in range(len(outs[0]))]
        from ._runtime import run_onnx

        return run_onnx(self.onnx_path, examples, threads=1, repeats=1, isolate=False).outputs

    def set_specs_from_data(self, examples):
        """A factory source learns its input shapes from the data (batch axis first)."""
        if not self.input_specs:
            self.input_specs = [
                InputSpec(f"x{i}" if len(examples[0]) > 1 else "x", tuple(a.shape), str(a.dtype))
                for i, a in enumerate(examples[0])
            ]


# ------------------------------------------------------------------ resolve
def resolve_source(ref, *, weights=None) -> Source:
    """Turn the user's SOURCE argument into a :class:`Source`."""
    from affectedge.models import ZOO

    sref = str(ref)
    if sref in ZOO:
        return _zoo(sref)
    p = Path(sref)
    if p.suffix == ".onnx":
        return _onnx_source(p)
    if p.suffix == ".pt2":
        return _pt2_source(p)
    if p.is_dir() and (p / "card.json").is_file():
        return _folder(p)
    if _FACTORY_RE.match(sref) and not p.exists():
        return _factory_source(sref, weights)
    raise ParameterError(
        f"source {sref!r} is not a zoo id ({', '.join(ZOO)}), a .onnx or .pt2 file, a model folder with card.json, "
        "or package.module:factory; pass one of those"
    )


def _zoo(model_id) -> Source:
    from affectedge.models import zoo_dir

    folder = zoo_dir(model_id)
    if not (folder / "card.json").is_file():
        raise ModelError(f"zoo model {model_id!r} is not built in this checkout ({folder} has no card.json); "
                         "run 'make models'")
    src = _folder(folder)
    src.kind, src.ref, src.name = "zoo", model_id, model_id
    return src


def _folder(folder) -> Source:
    from affectedge.models import ModelCard

    card = ModelCard.load(folder / "card.json")
    pt2 = folder / "model.pt2"
    onnx_file = folder / card.file
    if pt2.is_file():
        src = _pt2_source(pt2)
        if onnx_file.is_file():
            src.onnx_path = onnx_file
    elif onnx_file.is_file():
        src = _onnx_source(onnx_file)
    else:
        raise ModelError(f"model folder {str(folder)!r} has neither model.pt2 nor {card.file}; re-train or restore it")
    src.kind, src.ref, src.name, src.card = "folder", str(folder), card.id, card
    return src


def _onnx_source(path) -> Source:
    path = Path(path)
    model = load_onnx(path)
    init = {i.name for i in model.graph.initializer}
    specs = []
    for vi in model.graph.input:
        if vi.name in init:
            continue
        t = vi.type.tensor_type
        shape = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in t.shape.dim)
        specs.append(InputSpec(vi.name, shape, _onnx_dtype(t.elem_type)))
    return Source(kind="onnx", name=path.stem, ref=str(path), onnx_path=path, input_specs=specs,
                  output_names=[o.name for o in model.graph.output], files_sha256={path.name: _sha(path)})


def _pt2_source(path) -> Source:
    path = Path(path)
    ep = _load_pt2(path)
    specs = []
    from torch.export.graph_signature import InputKind

    user = [s.arg.name for s in ep.graph_signature.input_specs if s.kind == InputKind.USER_INPUT]
    nodes = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
    for name in user:
        val = nodes[name].meta.get("val")
        shape = tuple(int(d) if _is_static(d) else None for d in val.shape)
        specs.append(InputSpec(name, shape, str(val.dtype).replace("torch.", "")))
    outs = [s.arg.name for s in ep.graph_signature.output_specs]
    return Source(kind="pt2", name=path.stem, ref=str(path), pt2_path=path, input_specs=specs, output_names=outs,
                  files_sha256={path.name: _sha(path)})


def _factory_source(ref, weights) -> Source:
    if weights is None:
        raise ParameterError(
            f"source {ref!r} is a factory; pass its trained weights (a state_dict .pt) with --weights / weights="
        )
    weights = Path(weights)
    if not weights.is_file():
        raise ParameterError(f"weights file {str(weights)!r} does not exist")
    src = Source(kind="factory", name=ref.split(":")[1], ref=ref, factory=ref, weights_path=weights,
                 files_sha256={weights.name: _sha(weights)})
    src._module = _build_factory(ref, weights)
    src._module.eval()
    return src


# ----------------------------------------------------------------- loading
def load_onnx(path):
    """Load and check an ONNX file; a corrupt or truncated file gives ModelError."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"ONNX file {str(path)!r} does not exist")
    if path.stat().st_size == 0:
        raise ModelError(f"ONNX file {str(path)!r} is empty (0 bytes); re-export it")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:
        raise ModelError(
            f"{str(path)!r} is not a valid ONNX model (corrupt or truncated: {_first_line(exc)}); re-export it"
        ) from exc
    if len(model.graph.node) == 0:
        raise ModelError(f"{str(path)!r} holds an ONNX graph with no nodes (corrupt or truncated); re-export it")
    return model


def _load_pt2(path):
    torch = _require_torch()
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"ExportedProgram file {str(path)!r} does not exist")
    try:
        return torch.export.load(str(path))
    except Exception as exc:
        raise ModelError(
            f"{str(path)!r} is not a readable torch.export ExportedProgram (corrupt, truncated, or saved by an "
            f"incompatible torch; this is torch {torch.__version__}): {_first_line(exc)}"
        ) from exc


def _build_factory(ref, weights):
    torch = _require_torch()
    mod_name, fn_name = ref.split(":")
    try:
        module = importlib.import_module(mod_name)
    except ImportError as exc:
        raise ParameterError(f"cannot import {mod_name!r} for source {ref!r}: {exc}") from exc
    fn = getattr(module, fn_name, None)
    if fn is None or not callable(fn):
        raise ParameterError(f"{mod_name!r} has no callable {fn_name!r} (source {ref!r})")
    net = fn()
    if not isinstance(net, torch.nn.Module):
        raise ParameterError(f"{ref}() returned {type(net).__name__}, not a torch.nn.Module")
    if weights is not None:
        try:
            state = torch.load(str(weights), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ModelError(f"weights {str(weights)!r} cannot be read as a state_dict ({_first_line(exc)})") from exc
        if isinstance(state, torch.nn.Module):
            state = state.state_dict()
        try:
            net.load_state_dict(state)
        except Exception as exc:
            raise ModelError(f"weights {str(weights)!r} do not fit {ref}(): {_first_line(exc)}") from exc
    return net


def _require_torch():
    from affectedge._optional import require

    return require("torch", "export", "converting PyTorch models")


def _is_static(d):
    try:
        int(d)
        return True
    except Exception:
        return False


def _onnx_dtype(elem_type):
    import onnx

    try:
        return str(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except Exception:
        return "float32"


def _sha(path):
    from affectedge.models import sha256_file

    return sha256_file(path)


def _first_line(exc):
    s = str(exc).strip().splitlines()
    return s[0][:300] if s else type(exc).__name__

