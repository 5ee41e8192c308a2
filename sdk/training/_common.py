"""The layer every training task module is built on.

:class:`TaskModule` is the protocol a task module provides (its constants and
its four functions, see :mod:`affectedge.training`; :func:`task_module_gaps`
names what a module lacks); the functions below are what the task modules
would otherwise each write again:

* progress and warnings on stderr (:func:`log`, :func:`warn`), a fold
  progress bar (:func:`progress_bar`), the protocol check
  (:func:`check_protocol`) and leave-one-group-out folds (:func:`loso`);
* reproducibility: :func:`torch_setup` (one thread, seed, optionally
  deterministic algorithms and one BLAS thread), :func:`count_parameters`,
  :func:`predict` (a no-grad float32 forward pass);
* data: :func:`balanced_class_weights`, :func:`sample_indices` (the seeded
  subset of ``load_features(limit=...)``);
* artifacts: :func:`export_onnx` (``torch.onnx.export(dynamo=True)`` through
  the exporters' converter, which names operators torch.onnx cannot
  translate), :func:`onnx_max_abs_diff` (onnxruntime against torch),
  :func:`constant_first_matmuls`, :func:`save_exported_program`
  (``model.pt2`` for the TFLite exporters) and :func:`save_card`;
* reports: :func:`find_report` / :func:`iter_reports` (the evaluation reports
  a card copies its figures from: ``reports/<task>`` in the working
  directory, then in the repository) and the shared-class scoring of
  ``evaluate_model`` (:func:`shared_classes`, :func:`shared_argmax`).

torch, onnx and onnxruntime load on first use.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from affectedge.errors import ParameterError

__all__ = [
    "TaskModule", "balanced_class_weights", "check_protocol", "constant_first_matmuls", "count_parameters",
    "export_onnx", "find_report", "iter_reports", "log", "loso", "onnx_max_abs_diff", "predict", "progress_bar",
    "sample_indices", "save_card", "save_exported_program", "shared_argmax", "shared_classes", "single_thread",
    "task_module_gaps", "torch_setup", "warn",
]

REPO = Path(__file__).resolve().parents[2]


@runtime_checkable
class TaskModule(Protocol):
    """What a training task module provides (the CLI, ``make models`` and the exporters rely on it).

    ``MODEL_ID``: the zoo id it trains; ``DEFAULT_DATA``: its corpus, relative
    to ``../shared/data``; ``PROTOCOLS``: the names ``evaluate_protocol``
    takes. The functions are described in :mod:`affectedge.training`.
    """

    MODEL_ID: str
    DEFAULT_DATA: str
    PROTOCOLS: tuple

    def train(self, data, out, *, layout=None, seed=0, quick=False, progress=True) -> Path:
        ...

    def evaluate_protocol(self, data, protocol, *, layout=None, seed=0, quick=False, progress=True,
                          out=None) -> dict:
        ...

    def evaluate_model(self, model, data, *, layout=None, progress=True, out=None) -> dict:
        ...

    def load_features(self, data, *, layout=None, limit=None, seed=0) -> tuple:
        ...


def task_module_gaps(mod):
    """Names of :class:`TaskModule` members that ``mod`` lacks (empty when it is a task module)."""
    names = list(TaskModule.__annotations__)
    names += [n for n, v in vars(TaskModule).items() if callable(v) and not n.startswith("_")]
    return [n for n in names if not hasattr(mod, n)]


# ------------------------------------------------------------------ messages
def log(progress, msg):
    """Progress goes to stderr, so that stdout carries only results (``evaluate --json``)."""
    if progress:
        print(msg, file=sys.stderr, flush=True)


def warn(msg):
    print(f"affectedge: warning: {msg}", file=sys.stderr, flush=True)


def progress_bar(items, progress, desc):
    """``items`` behind a tqdm bar when ``progress`` (and tqdm is installed), else as they are."""
    if not progress:
        return items
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return items
    return tqdm(items, desc=desc, leave=False)


def check_protocol(protocol, protocols, owner, *, wording="is not offered for"):
    """ParameterError unless ``protocol`` is one of ``protocols`` (``owner``: the task or model named)."""
    if protocol not in protocols:
        raise ParameterError(f"protocol {protocol!r} {wording} {owner}; choose one of {', '.join(protocols)}")


def loso(groups, order=None):
    """Leave-one-group-out folds: ``(group, test mask)`` for each group (sorted, or in ``order``)."""
    g = np.asarray(groups)
    for name in (sorted(set(groups)) if order is None else order):
        yield name, g == name


# --------------------------------------------------------------------- torch
def single_thread():
    """One BLAS/OpenMP thread: small problems on a shared machine run far faster than oversubscribed."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass


def torch_setup(seed=None, *, deterministic=False, blas=False):
    """torch on one thread, seeded when ``seed`` is given; returns the torch module.

    ``deterministic``: ``torch.use_deterministic_algorithms(True)``; ``blas``:
    also one BLAS/OpenMP thread for NumPy and scikit-learn (:func:`single_thread`).
    """
    import torch

    if blas:
        single_thread()
    torch.set_num_threads(1)
    if seed is not None:
        torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True)
    return torch


def count_parameters(model, *extra):
    """Trainable parameters of ``model`` plus the elements of ``extra`` tensors (e.g. fitted buffers)."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad) + sum(t.numel() for t in extra))


def predict(fn, x):
    """``fn(x)`` as NumPy, without gradients, ``x`` as a float32 tensor (``fn``: a module or a function)."""
    import torch

    with torch.no_grad():
        return fn(torch.as_tensor(x, dtype=torch.float32)).numpy()


# ---------------------------------------------------------------------- data
def balanced_class_weights(y, n_classes, *, absent=None, max_weight=None):
    """float32 weights ``n / (n_classes * count)`` per class (``count`` of absent classes taken as 1).

    ``absent``: the weight of classes missing from ``y`` (default: as if seen
    once); ``max_weight``: an upper clamp.
    """
    counts = np.bincount(np.asarray(y), minlength=n_classes).astype(np.float64)
    w = counts.sum() / (n_classes * np.maximum(counts, 1))
    if absent is not None:
        w = np.where(counts > 0, w, absent)
    w = w.astype(np.float32)
    return w if max_weight is None else np.minimum(w, np.float32(max_weight))


def sample_indices(n, limit, seed):
    """Sorted indices of a seeded subset of ``limit`` of ``n`` items; None when all are kept."""
    if limit is None or limit >= n:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


# ----------------------------------------------------------------- artifacts
def export_onnx(model, example, path, *, input_names, output_names, dynamic_shapes, **kwargs):
    """``torch.onnx.export(dynamo=True)`` of ``model`` (eval mode) on ``example``, saved to ``path``.

    Runs through :func:`affectedge.exporters._onnx.torch_to_onnx`, so a
    failure is an ExportError naming the operator torch.onnx cannot translate.
    Weights are stored inside the file. Returns ``path``.
    """
    import torch

    from affectedge.exporters._onnx import torch_to_onnx

    path = Path(path)
    model.eval()
    ex = torch.as_tensor(np.ascontiguousarray(example), dtype=torch.float32)
    prog = torch_to_onnx(model, (ex,), what=f"the trained {type(model).__name__}", input_names=list(input_names),
                         output_names=list(output_names), dynamic_shapes=dynamic_shapes, verbose=False, **kwargs)
    prog.save(str(path), external_data=False)
    return path


def onnx_max_abs_diff(model, path, x):
    """Max |onnxruntime - torch| per output name of the ONNX file at ``path`` on inputs ``x``."""
    import onnxruntime as ort
    import torch

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ref = model(torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32))
    if isinstance(ref, torch.Tensor):
        ref = (ref,)
    got = sess.run(None, {sess.get_inputs()[0].name: np.ascontiguousarray(x, dtype=np.float32)})
    return {o.name: float(np.max(np.abs(r.numpy() - g))) for o, r, g in zip(sess.get_outputs(), ref, got)}


def constant_first_matmuls(path):
    """Names of MatMul nodes whose first input is a constant (initializer / Constant node)."""
    import onnx

    m = onnx.load(str(path))
    consts = {i.name for i in m.graph.initializer}
    consts |= {o for n in m.graph.node if n.op_type == "Constant" for o in n.output}
    return [n.name or f"MatMul#{i}" for i, n in enumerate(m.graph.node)
            if n.op_type == "MatMul" and n.input and n.input[0] in consts]


def save_exported_program(model, example, folder, name="model.pt2"):
    """``torch.export.save`` the trained module (eval mode) as an ExportedProgram.

    The exporters convert it to TFLite (litert-torch needs the PyTorch
    program, not the ONNX file). A dynamic batch axis is kept when possible.
    """
    import torch

    model = model.eval()
    ex = torch.as_tensor(np.asarray(example, dtype=np.float32))
    if ex.shape[0] < 2:
        ex = torch.cat([ex, ex])
    try:
        batch = torch.export.Dim("batch", min=1, max=4096)
        prog = torch.export.export(model, (ex,), dynamic_shapes=({0: batch},))
    except Exception:  # some models specialise the batch size; keep a static one
        prog = torch.export.export(model, (ex[:1],))
    path = Path(folder) / name
    torch.export.save(prog, str(path))
    return path


def save_card(out, *, file="model.onnx", **fields):
    """Write ``card.json`` / ``card.md`` into ``out`` for the model file ``out/file``; returns the card path.

    ``fields``: the other :class:`affectedge.models.ModelCard` fields; the
    file's sha256 and size are filled in here.
    """
    from affectedge.models import ModelCard, sha256_file

    out = Path(out)
    onnx_path = out / file
    card = ModelCard(file=file, file_sha256=sha256_file(onnx_path), file_size_bytes=onnx_path.stat().st_size,
                     **fields)
    card.save(out)
    return out / "card.json"


# ------------------------------------------------------------------- reports
def _report_dirs(task_dir):
    return [Path.cwd() / "reports" / task_dir, REPO / "reports" / task_dir]


def find_report(task_dir, name="report.json", *, env=None, accept=None):
    """``(path, report)`` of the first full (non-quick) evaluation report found, else ``(None, None)``.

    Looked up in ``$env`` (a file) when set, then ``reports/<task_dir>/<name>``
    in the working directory, then in the repository; ``accept(report)``
    tells whether a parsed report is the one wanted.
    """
    value = os.environ.get(env) if env else None
    cands = [Path(value)] if value else []
    cands += [d / name for d in _report_dirs(task_dir)]
    for c in cands:
        if c.is_file():
            try:
                rep = json.loads(c.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if (accept is None or accept(rep)) and not rep.get("quick"):
                return c, rep
    return None, None


def iter_reports(task_dir, keep=None):
    """``(path, report)`` of every full (non-quick) ``*.json`` report below ``reports/<task_dir>``.

    The working directory's folder first, then the repository's, each file
    once; ``keep(path)`` selects files before they are read.
    """
    seen = set()
    for d in _report_dirs(task_dir):
        for p in sorted(d.rglob("*.json")) if d.is_dir() else []:
            if (keep is not None and not keep(p)) or p.resolve() in seen:
                continue
            seen.add(p.resolve())
            try:
                rep = json.loads(p.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if not rep.get("quick"):
                yield p, rep


def shared_classes(labels, others, error):
    """The classes of ``labels`` (in that order) that ``others`` has too; ParameterError(``error``) if none."""
    shared = [lab for lab in labels if lab in others]
    if not shared:
        raise ParameterError(error)
    return shared


def shared_argmax(probs, model_labels, shared):
    """Index into ``shared`` of the most probable shared class of each row of the model's ``probs``."""
    cols = [list(model_labels).index(lab) for lab in shared]
    return np.asarray(probs)[:, cols].argmax(1)
