"""affectedge: on-device affect recognition.

``import affectedge`` is cheap: it loads no optional dependency (torch,
mediapipe, brainflow, onnxruntime) and no Numba kernel; subpackages load on
first attribute access.
"""

import importlib

from ._version import __version__
from .errors import (
    AffectEdgeError,
    ExportError,
    MissingExtraError,
    ModelError,
    ParameterError,
    ProfileError,
    SensorError,
)

__all__ = sorted(
    [
        "AffectEdgeError",
        "ExportError",
        "MissingExtraError",
        "ModelError",
        "ParameterError",
        "ProfileError",
        "SensorError",
        "__version__",
        "device_profiles",
        "exporters",
        "native_kernels",
    ]
)

_SUBMODULES = {"native_kernels", "exporters", "device_profiles"}


def __getattr__(name):
    if name in _SUBMODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'affectedge' has no attribute {name!r}")


def __dir__():
    return __all__
