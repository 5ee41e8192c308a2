"""The errors affectedge raises.

    AffectEdgeError                 base of everything below
    ├── ParameterError (ValueError) bad argument or input data
    ├── MissingExtraError (ImportError) an optional extra is not installed
    ├── ProfileError                device profile unknown or unusable
    ├── ExportError                 conversion / quantization failed or out of budget
    ├── SensorError                 microphone, camera or EEG board failed
    └── ModelError                  model file missing, corrupt or mismatched

Every message names the input, what was expected, what came, and what to do.
"""

__all__ = [
    "AffectEdgeError",
    "ExportError",
    "MissingExtraError",
    "ModelError",
    "ParameterError",
    "ProfileError",
    "SensorError",
]


class AffectEdgeError(Exception):
    """Base class of every error raised by affectedge."""


class ParameterError(AffectEdgeError, ValueError):
    """An argument or input array is not what the function needs."""


class MissingExtraError(AffectEdgeError, ImportError):
    """An optional dependency is missing; the message names the extra."""


class ProfileError(AffectEdgeError):
    """A device profile is unknown or cannot be used here."""


class ExportError(AffectEdgeError):
    """A model could not be exported, or an artifact failed its checks."""


class SensorError(AffectEdgeError):
    """A sensor source could not be opened or stopped delivering data."""


class ModelError(AffectEdgeError):
    """A model file is missing, corrupt, or does not match its card."""
