"""Training and evaluation (workstation code; needs ``affectedge[export]``).

One module per task, each with the same functions, so the CLI and
``make models`` treat them alike:

* ``train(data, out, *, layout=None, seed=0, quick=False, progress=True) -> Path``
  trains on all of ``data``, exports ONNX (fp32) and writes ``card.json`` /
  ``card.md`` into ``out``; returns the card path.
* ``evaluate_protocol(data, protocol, *, layout=None, seed=0, quick=False,
  progress=True, out=None) -> dict`` retrains per fold under ``protocol`` and
  returns the report (also written as JSON + PNG into ``out`` when given).
* ``evaluate_model(model, data, *, layout=None, progress=True, out=None) -> dict``
  scores a trained :class:`affectedge.models.Model` on a labelled corpus it has
  never seen (only the classes both share count; the report says which).
* ``PROTOCOLS``: protocol names; ``DEFAULT_DATA``: path of the default data
  folder relative to ``../shared/data``; ``MODEL_ID``: zoo id.

* ``load_features(data, *, layout=None, limit=None, seed=0) -> (X, y, labels)``
  model inputs (float32, batch-first, computed with the card's pipeline) and
  integer labels (None when the corpus has none) for calibration and
  validation of exported artifacts.
* each trained folder also holds ``model.pt2`` (``torch.export.save`` of the
  trained module's ExportedProgram) so exporters can convert it to TFLite.

``quick=True`` trains tiny versions (a few epochs, a subset) for tests.

:class:`TaskModule` types that contract (``task_module`` returns one); the
infrastructure the task modules share (seeding, class weights, ONNX export
and its check, cards, report lookup, shared-class scoring) is the internal
layer :mod:`affectedge.training._common`, and
:mod:`affectedge.training._calibration` serves the task modules' data to the
exporters (through :mod:`affectedge._registry`).
"""

import importlib

from ._common import TaskModule, task_module_gaps

__all__ = ["MODEL_TASKS", "TASKS", "TaskModule", "task_module"]

TASKS = {
    "speech": "affectedge.training.speech",
    "face": "affectedge.training.face",
    "face-pixels": "affectedge.training.face_pixels",
    "eeg": "affectedge.training.eeg_va",
    "mental-state": "affectedge.training.mental_state",
}


# zoo model id -> task
MODEL_TASKS = {
    "speech-emotion": "speech",
    "face-expression": "face",
    "face-expression-pixels": "face-pixels",
    "eeg-valence-arousal": "eeg",
    "eeg-mental-state": "mental-state",
}


def task_module(task) -> TaskModule:
    """The module of ``task`` (a key of :data:`TASKS`), checked against :class:`TaskModule`."""
    from affectedge.errors import ParameterError

    if task not in TASKS:
        raise ParameterError(f"task {task!r} is unknown; choose one of {', '.join(TASKS)}")
    mod = importlib.import_module(TASKS[task])
    if not isinstance(mod, TaskModule):
        raise TypeError(f"{mod.__name__} is not a training task module: it lacks {', '.join(task_module_gaps(mod))}")
    return mod
