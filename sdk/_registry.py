"""Implementations that a lower layer uses without importing the layer that provides them.

* :func:`data_provider`: the :class:`affectedge.exporters._data.DataProvider`
  of the exporters -- which task a zoo model card belongs to, its task
  metric, its default corpus and how a dataset folder becomes model inputs.
  The exporters depend only on that interface; the implementation is the
  training task modules' (:mod:`affectedge.training._calibration`), loaded
  here on first use. ``affectedge.exporters._data.set_data_provider``
  replaces it for a process (tests, another feature stack).
"""

__all__ = ["data_provider"]

_CACHE = {}


def data_provider():
    """The exporters' data provider: the training task modules (see the module docstring)."""
    if "data" not in _CACHE:
        from affectedge.training._calibration import TaskData

        _CACHE["data"] = TaskData()
    return _CACHE["data"]
