"""Calibration and validation data for exported artifacts.

Two forms:

* a dataset folder, read through the model card's own feature pipeline
  (``affectedge.training.task_module(task).load_features``), so calibration
  sees exactly the features the model will see on the device;
* an ``.npz`` holding the model inputs, batch-first: key ``x`` for a
  single-input model (or the input's name; one key per input name for
  several inputs), and optional integer labels under ``y``;
* an ``.npy`` holding the (single) input array, batch-first, without labels.

Every problem is a :class:`ParameterError` naming the data, what was expected
and what came.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from affectedge.errors import ParameterError

__all__ = ["DataSet", "load_data"]


@dataclass(frozen=True)
class DataSet:
    """Model inputs as a list of examples (tuples of arrays with batch 1), plus labels."""

    examples: list
    labels: np.ndarray | None
    origin: str
    label_names: tuple = ()

    def __len__(self):
        return len(self.examples)


def load_data(path, source, *, purpose, limit=None, seed=0, need_labels=False) -> DataSet:
    """Read ``path`` (folder or .npz) as inputs of ``source``; ``purpose`` names it in messages."""
    path = Path(path)
    if not path.exists():
        raise ParameterError(f"{purpose} data {str(path)!r} does not exist; pass a dataset folder or an .npz file")
    if path.is_dir():
        arrays, labels, names = _from_folder(path, source, purpose, limit, seed)
    elif path.suffix in (".npz", ".npy"):
        arrays, labels = (_from_npz if path.suffix == ".npz" else _from_npy)(path, source, purpose)
        names = ()
        if limit is not None and arrays and len(arrays[0]) > limit:
            idx = np.sort(np.random.default_rng(seed).choice(len(arrays[0]), size=limit, replace=False))
            arrays = [a[idx] for a in arrays]
            labels = labels[idx] if labels is not None else None
    else:
        raise ParameterError(
            f"{purpose} data {str(path)!r} is neither a dataset folder nor an .npz/.npy file (suffix {path.suffix!r})"
        )
    n = len(arrays[0]) if arrays else 0
    if n == 0:
        raise ParameterError(f"{purpose} data {str(path)!r} holds 0 examples; it needs at least one")
    arrays = [_check_input(a, spec, purpose, path) for a, spec in _pair(arrays, source, purpose, path)]
    if labels is not None:
        labels = _check_labels(labels, n, purpose, path)
    if need_labels and labels is None:
        raise ParameterError(
            f"{purpose} data {str(path)!r} has no labels, but the task metric was asked for; "
            "add integer labels under key 'y' in the .npz (or use a labelled dataset folder)"
        )
    examples = [tuple(a[i : i + 1] for a in arrays) for i in range(n)]
    return DataSet(examples=examples, labels=labels, origin=str(path), label_names=tuple(names or ()))


def _from_folder(path, source, purpose, limit, seed):
    if source.card is None or source.task is None:
        raise ParameterError(
            f"{purpose} data {str(path)!r} is a folder, but source {source.ref!r} has no zoo model card, so there "
            "is no feature pipeline to read it with; pass an .npz of model inputs instead"
        )
    from affectedge.errors import AffectEdgeError
    from affectedge.training import task_module

    mod = task_module(source.task)
    loader = getattr(mod, "load_features", None)
    if loader is None:
        raise ParameterError(
            f"{purpose} data {str(path)!r} is a folder, but the {source.task!r} task module ({mod.__name__}) has no "
            "load_features() in this build, so it cannot be read with the card's pipeline; pass an .npz of inputs"
        )
    try:
        X, y, labels = loader(path, limit=limit, seed=seed)
    except AffectEdgeError:
        raise
    except Exception as exc:
        raise ParameterError(
            f"{purpose} data {str(path)!r} could not be read with the {source.task!r} feature pipeline "
            f"({type(exc).__name__}: {exc}); check the folder layout or pass an .npz of inputs"
        ) from exc
    X = np.asarray(X)
    return [X], (None if y is None else np.asarray(y)), tuple(labels or ())


def _short(text, limit=120):
    text = str(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _from_npy(path, source, purpose):
    try:
        a = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise ParameterError(f"{purpose} data {str(path)!r} cannot be read as .npy ({_short(exc)})") from None
    if not isinstance(a, np.ndarray):
        raise ParameterError(f"{purpose} data {str(path)!r} is not a single .npy array; use an .npz for several")
    if len(source.input_specs) > 1:
        raise ParameterError(f"{purpose} data {str(path)!r} holds one array but the model takes "
                             f"{len(source.input_specs)} inputs; pass an .npz with one key per input name")
    return [a], None


def _from_npz(path, source, purpose):
    try:
        z = np.load(path, allow_pickle=False)
        keys = list(z.files)
        data = {k: z[k] for k in keys}
    except Exception as exc:
        raise ParameterError(f"{purpose} data {str(path)!r} cannot be read as .npz ({_short(exc)})") from None
    names = [s.name for s in source.input_specs]
    if len(names) <= 1:
        key = "x" if "x" in data else (names[0] if names and names[0] in data else None)
        if key is None:
            raise ParameterError(
                f"{purpose} data {str(path)!r} has keys {_short(keys)}; expected the model inputs under 'x'"
                + (f" or {names[0]!r}" if names else "")
            )
        arrays = [data[key]]
    else:
        missing = [n for n in names if n not in data]
        if missing:
            raise ParameterError(
                f"{purpose} data {str(path)!r} has keys {keys}; the model takes inputs {names} and "
                f"{missing} are missing (one batch-first array per input name)"
            )
        arrays = [data[n] for n in names]
    labels = data.get("y")
    return arrays, labels


def _pair(arrays, source, purpose, path):
    if source.input_specs and len(arrays) != len(source.input_specs):
        raise ParameterError(
            f"{purpose} data {str(path)!r} gives {len(arrays)} input arrays but the model takes "
            f"{len(source.input_specs)} ({[s.name for s in source.input_specs]})"
        )
    specs = source.input_specs or [None] * len(arrays)
    return list(zip(arrays, specs))


def _check_input(a, spec, purpose, path):
    a = np.asarray(a)
    name = spec.name if spec is not None else "x"
    want_dtype = np.dtype(spec.dtype) if spec is not None else np.dtype(np.float32)
    if a.dtype != want_dtype:
        if np.issubdtype(want_dtype, np.floating) and np.issubdtype(a.dtype, np.floating):
            a = a.astype(want_dtype)
        else:
            raise ParameterError(
                f"{purpose} data {str(path)!r}: input {name!r} has dtype {a.dtype}, but the model takes "
                f"{want_dtype}; convert it (e.g. x.astype(np.{want_dtype}))"
            )
    if spec is not None:
        want = spec.example_shape
        got = tuple(a.shape[1:])
        ok = a.ndim == len(spec.shape) and all(w is None or w == g for w, g in zip(want, got))
        if not ok:
            shown = tuple("?" if w is None else w for w in want)
            raise ParameterError(
                f"{purpose} data {str(path)!r}: input {name!r} has shape {tuple(a.shape)}, i.e. examples shaped "
                f"{got}, but the model expects examples shaped {shown} (batch-first: (N, {', '.join(map(str, shown))}))"
            )
    elif a.ndim < 2:
        raise ParameterError(
            f"{purpose} data {str(path)!r}: input {name!r} has shape {tuple(a.shape)}; it must be batch-first "
            "(N, ...) with at least 2 axes"
        )
    if np.issubdtype(a.dtype, np.floating) and not np.all(np.isfinite(a)):
        bad = ~np.isfinite(a)
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        n_ex = int(np.count_nonzero(bad.reshape(len(a), -1).any(axis=1)))
        raise ParameterError(
            f"{purpose} data {str(path)!r}: input {name!r} {tuple(a.shape)} contains NaN or inf (first in example "
            f"{first[0]}) at index {list(first)}, {int(bad.sum())} value(s) in {n_ex} example(s); drop or repair "
            "those examples (e.g. x[np.isfinite(x).reshape(len(x), -1).all(1)])"
        )
    return np.ascontiguousarray(a)


def _check_labels(y, n, purpose, path):
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise ParameterError(
            f"{purpose} data {str(path)!r}: labels 'y' have shape {tuple(y.shape)}, expected ({n},) "
            "(one integer class index per example)"
        )
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0):
            y = y.astype(np.int64)
        else:
            raise ParameterError(
                f"{purpose} data {str(path)!r}: labels 'y' have dtype {y.dtype}, expected integer class indices"
            )
    if np.any(y < 0):
        raise ParameterError(f"{purpose} data {str(path)!r}: labels 'y' contain negative class indices")
    return y.astype(np.int64)
