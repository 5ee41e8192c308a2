"""The training task modules as the exporters' data provider (:class:`affectedge.exporters._data.DataProvider`).

A zoo model card belongs to the task of :data:`affectedge.training.MODEL_TASKS`;
a dataset folder becomes model inputs through that task module's
``load_features`` (the card's own feature pipeline), handed over as
:class:`affectedge.exporters._data.ArrayData`; the default corpus is the task
module's ``DEFAULT_DATA`` below the shared data folder
(``$AFFECTEDGE_DATA_DIR``, else ``../shared/data`` from the working directory,
else beside the repository). :mod:`affectedge._registry` registers it.
"""

import os
from pathlib import Path

__all__ = ["TaskData", "shared_data_dir"]


def shared_data_dir():
    """The folder holding the corpora, or None when there is none here."""
    env = os.environ.get("AFFECTEDGE_DATA_DIR")
    for c in (env, Path.cwd().parent / "shared" / "data", Path(__file__).resolve().parents[3] / "shared" / "data"):
        if c and Path(c).is_dir():
            return Path(c)
    return None


class TaskData:
    """DataProvider over :mod:`affectedge.training`'s task modules."""

    def task(self, card):
        from . import MODEL_TASKS

        return MODEL_TASKS.get(card.id)

    def metric(self, card):
        return "uar" if self.task(card) == "speech" else "accuracy"

    def default_data(self, card):
        task = self.task(card)
        if task is None:
            return None
        from . import task_module

        rel = task_module(task).DEFAULT_DATA
        base = shared_data_dir()
        if rel and base and (base / rel).exists():
            return base / rel
        return None

    def read_folder(self, card, path, *, limit=None, seed=0):
        from affectedge.exporters._data import ArrayData

        from . import task_module

        X, y, labels = task_module(self.task(card)).load_features(path, limit=limit, seed=seed)
        return ArrayData({"x": X}, labels=y, label_names=labels, origin=str(path))
