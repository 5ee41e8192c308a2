"""Calibration and validation data for exported artifacts.

The exporters read every example through one small interface,
:class:`CalibrationData` (after onnxruntime's ``CalibrationDataReader``):
``get_next()`` gives ``{input name: batch-first array}`` until it returns
``None``, and optional ``labels`` (integer class per example) and
``label_names`` come with it. Where the examples come from:

* a **dataset folder**, read through the model card's own feature pipeline
  by the :class:`DataProvider` in use, so calibration sees exactly the
  features the model will see on the device. The exporters do not know the
  training code: the provider (the training task modules'
  ``load_features`` and default corpora) is looked up in
  :mod:`affectedge._registry`, or set with :func:`set_data_provider`;
* an ``.npz`` holding the model inputs, batch-first: key ``x`` for a
  single-input model (or the input's name; one key per input name for
  several inputs), and optional integer labels under ``y``;
* an ``.npy`` holding the (single) input array, batch-first, without labels;
* any :class:`CalibrationData` object passed in place of a path
  (``rewind()`` is called first when it has one).

Every problem is a :class:`ParameterError` naming the data, what was expected
and what came.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from affectedge.errors import ParameterError

__all__ = ["ArrayData", "CalibrationData", "DataProvider", "DataSet", "data_provider", "is_reader", "load_data",
           "set_data_provider"]


@runtime_checkable
class CalibrationData(Protocol):
    """Model inputs, example by example (the shape of onnxruntime's ``CalibrationDataReader``).

    ``get_next()``: the next ``{input name: array}`` (batch axis first, usually
    batch 1), ``None`` when there are no more. Optional attributes:
    ``labels`` (``(n,)`` integer classes or None), ``label_names``, ``origin``
    (what the report calls the data), and a ``rewind()`` method.
    """

    def get_next(self) -> dict | None:
        ...


class ArrayData:
    """:class:`CalibrationData` over batch-first arrays, one example per ``get_next()``."""

    def __init__(self, inputs: dict, labels=None, label_names=(), origin="arrays"):
        self.inputs = {k: np.asarray(v) for k, v in inputs.items()}
        sizes = {len(v) for v in self.inputs.values()}
        if len(sizes) > 1:
            raise ParameterError(f"{origin}: the input arrays hold different numbers of examples "
                                 f"({ {k: len(v) for k, v in self.inputs.items()} })")
        self.n = sizes.pop() if sizes else 0
        self.labels = None if labels is None else np.asarray(labels)
        self.label_names = tuple(label_names or ())
        self.origin = origin
        self._i = 0

    def __len__(self):
        return self.n

    def get_next(self):
        if self._i >= self.n:
            return None
        i, self._i = self._i, self._i + 1
        return {k: v[i : i + 1] for k, v in self.inputs.items()}

    def rewind(self):
        self._i = 0

    def __iter__(self):
        self.rewind()
        return iter(self.get_next, None)


@runtime_checkable
class DataProvider(Protocol):
    """What the exporters need to know about a model card's task and data (implemented outside them).

    ``task(card)``: the task name (None when the card belongs to none);
    ``metric(card)``: the task metric (``"uar"`` or ``"accuracy"``) scored on
    labelled validation data; ``default_data(card)``: the card's default
    corpus folder when it is present here, else None;
    ``read_folder(card, path, limit=, seed=)``: the examples of a dataset
    folder through the card's feature pipeline, as :class:`CalibrationData`
    (at most ``limit``, a seeded subset).
    """

    def task(self, card) -> str | None:
        ...

    def metric(self, card) -> str:
        ...

    def default_data(self, card) -> Path | None:
        ...

    def read_folder(self, card, path, *, limit=None, seed=0) -> CalibrationData:
        ...


_PROVIDER = None


def set_data_provider(provider) -> DataProvider | None:
    """Use ``provider`` (a :class:`DataProvider`; None: the registry's again) and return the previous one."""
    global _PROVIDER
    if provider is not None and not isinstance(provider, DataProvider):
        raise ParameterError(f"{type(provider).__name__} is not a DataProvider "
                             "(it needs task, metric, default_data and read_folder)")
    previous, _PROVIDER = _PROVIDER, provider
    return previous


def data_provider() -> DataProvider:
    """The provider set with :func:`set_data_provider`, else the one :mod:`affectedge._registry` names."""
    if _PROVIDER is not None:
        return _PROVIDER
    from affectedge._registry import data_provider as registered

    return registered()


def is_reader(obj) -> bool:
    """True for a :class:`CalibrationData` object (as opposed to a path)."""
    return not isinstance(obj, (str, Path)) and callable(getattr(obj, "get_next", None))


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
    """Read ``path`` (folder, .npz/.npy or a CalibrationData) as inputs of ``source``; ``purpose`` names it."""
    if is_reader(path):
        reader, path = path, getattr(path, "origin", None) or type(path).__name__
    else:
        path = Path(path)
        if not path.exists():
            raise ParameterError(f"{purpose} data {str(path)!r} does not exist; pass a dataset folder or an .npz file")
        if path.is_dir():
            reader = _from_folder(path, source, purpose, limit, seed)
        elif path.suffix in (".npz", ".npy"):
            arrays, labels = (_from_npz if path.suffix == ".npz" else _from_npy)(path, source, purpose)
            names = [s.name for s in source.input_specs] if len(arrays) > 1 else ["x"]
            reader = ArrayData(dict(zip(names, arrays)), labels, origin=str(path))
        else:
            raise ParameterError(
                f"{purpose} data {str(path)!r} is neither a dataset folder nor an .npz/.npy file "
                f"(suffix {path.suffix!r})"
            )
    arrays, labels, label_names = _read(reader, source, purpose, path)
    if limit is not None and arrays and len(arrays[0]) > limit:
        idx = np.sort(np.random.default_rng(seed).choice(len(arrays[0]), size=limit, replace=False))
        arrays = [a[idx] for a in arrays]
        labels = labels[idx] if labels is not None else None
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
    return DataSet(examples=examples, labels=labels, origin=str(path), label_names=label_names)


def _read(reader, source, purpose, path):
    """(input arrays in the source's input order, labels or None, label names) of everything ``reader`` gives."""
    if callable(getattr(reader, "rewind", None)):
        reader.rewind()
    names = [s.name for s in source.input_specs]
    batches = []
    while (item := reader.get_next()) is not None:
        if not isinstance(item, dict) or not item:
            raise ParameterError(f"{purpose} data {str(path)!r}: get_next() gave {type(item).__name__}, expected a "
                                 "dict {input name: batch-first array} (or None at the end)")
        batches.append(item)
    if not batches:
        return [], None, ()
    keys = _input_keys(batches[0], names, purpose, path)
    try:
        arrays = [np.concatenate([np.asarray(b[k]) for b in batches]) for k in keys]
    except (KeyError, ValueError) as exc:
        raise ParameterError(f"{purpose} data {str(path)!r}: the examples do not stack into batch-first arrays of "
                             f"inputs {keys} ({type(exc).__name__}: {_short(exc)})") from None
    labels = getattr(reader, "labels", None)
    return arrays, (None if labels is None else np.asarray(labels)), tuple(getattr(reader, "label_names", ()) or ())


def _input_keys(item, names, purpose, path):
    """Which keys of the reader's dicts feed the model's inputs, in input order."""
    if len(names) <= 1:
        for key in ([names[0]] if names else []) + ["x"]:
            if key in item:
                return [key]
        if len(item) == 1:
            return list(item)
        raise ParameterError(f"{purpose} data {str(path)!r} gives inputs {sorted(item)}; the model takes one input"
                             + (f" ({names[0]!r})" if names else ""))
    missing = [n for n in names if n not in item]
    if missing:
        raise ParameterError(f"{purpose} data {str(path)!r} gives inputs {sorted(item)}; the model takes inputs "
                             f"{names} and {missing} are missing")
    return names


def _from_folder(path, source, purpose, limit, seed):
    if source.card is None or source.task is None:
        raise ParameterError(
            f"{purpose} data {str(path)!r} is a folder, but source {source.ref!r} has no zoo model card, so there "
            "is no feature pipeline to read it with; pass an .npz of model inputs instead"
        )
    from affectedge.errors import AffectEdgeError

    try:
        return data_provider().read_folder(source.card, path, limit=limit, seed=seed)
    except AffectEdgeError:
        raise
    except Exception as exc:
        raise ParameterError(
            f"{purpose} data {str(path)!r} could not be read with the {source.task!r} feature pipeline "
            f"({type(exc).__name__}: {exc}); check the folder layout or pass an .npz of inputs"
        ) from exc


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
