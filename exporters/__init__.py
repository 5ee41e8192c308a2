"""Model exporters and the quantization CLI: ONNX and TFLite in fp32, fp16 and int8,
every artifact checked numerically in every runtime it targets.

    >>> from affectedge import exporters
    >>> res = exporters.quantize(source="speech-emotion", out="dist/speech",
    ...                          targets=("onnx",), precisions=("auto",))
    >>> res.chosen        # {"onnxruntime": "speech-emotion.int8.onnx"}

Sources: a zoo id, ``package.module:factory`` plus ``weights`` (a state_dict),
a ``.pt2`` ExportedProgram, or an ``.onnx`` file (ONNX targets only).
Calibration and validation data: a dataset folder (read with the model
card's feature pipeline), an ``.npz`` / ``.npy`` of inputs, or any
:class:`CalibrationData` (``get_next()`` -> ``{input name: array}``, as
onnxruntime's ``CalibrationDataReader``; :class:`ArrayData` wraps arrays). The
output folder gets the delivered artifacts, ``report.json``, ``report.md``,
``report.png`` and, for models with a card, a ``card.json`` pointing at the
ONNX artifact the on-device runtime should load.

Importing this package is cheap: torch, onnx and onnxruntime load on first
use. Errors: :class:`affectedge.ParameterError` for bad input,
:class:`affectedge.ModelError` for missing/corrupt model files,
:class:`affectedge.ExportError` for conversion failures (naming op and
runtime), and :class:`OutOfBudgetError` (an ExportError) when an artifact
misses its budget. ``affectedge quantize`` / ``affectedge export`` exit codes:
0 ok, 1 bad input or failed conversion, 2 usage error, 3 out of budget.
"""

import importlib

__all__ = [
    "ArrayData",
    "Budgets",
    "CalibrationData",
    "CalibrationMethod",
    "Check",
    "ExportOptions",
    "Int8Scheme",
    "OutOfBudgetError",
    "Precision",
    "QuantizeOptions",
    "QuantizeResult",
    "RunResult",
    "Target",
    "export",
    "quantize",
    "run_onnx",
]

_WHERE = {
    "ArrayData": "_data",
    "CalibrationData": "_data",
    "Budgets": "_options",
    "CalibrationMethod": "_options",
    "ExportOptions": "_options",
    "Int8Scheme": "_options",
    "Precision": "_options",
    "QuantizeOptions": "_options",
    "Target": "_options",
    "Check": "_check",
    "OutOfBudgetError": "_check",
    "QuantizeResult": "_quantize",
    "export": "_quantize",
    "quantize": "_quantize",
    "RunResult": "_runtime",
    "run_onnx": "_runtime",
}


def __getattr__(name):
    mod = _WHERE.get(name)
    if mod is None:
        raise AttributeError(f"module 'affectedge.exporters' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{mod}"), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
