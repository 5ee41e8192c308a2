"""Options of :func:`quantize` and :func:`export`: typed, checked on creation.

The CLI builds exactly these objects from its arguments and calls the library.
"""

from __future__ import annotations

import enum
import math
import numbers
from dataclasses import dataclass, field, replace
from pathlib import Path

from affectedge.errors import ParameterError

__all__ = [
    "Budgets",
    "CalibrationMethod",
    "ExportOptions",
    "Int8Scheme",
    "Precision",
    "QuantizeOptions",
    "Target",
]


class Target(str, enum.Enum):
    """Artifact format."""

    ONNX = "onnx"
    TFLITE = "tflite"


class Precision(str, enum.Enum):
    """Numeric precision of an artifact; ``AUTO`` builds all and picks per runtime."""

    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"
    AUTO = "auto"


class CalibrationMethod(str, enum.Enum):
    """How static int8 activation ranges are chosen from the calibration data."""

    MINMAX = "minmax"
    ENTROPY = "entropy"
    PERCENTILE = "percentile"


class Int8Scheme(str, enum.Enum):
    """ONNX int8 flavour. ``AUTO``: dynamic for recurrent graphs (LSTM/GRU/RNN,
    Loop/Scan), static QDQ per-channel otherwise."""

    AUTO = "auto"
    STATIC = "static"
    DYNAMIC = "dynamic"




def _enum_tuple(values, enum_cls, name):
    if isinstance(values, (str, enum_cls)):
        values = [values]
    if values is None:
        raise ParameterError(f"{name} must name at least one of {[e.value for e in enum_cls]}")
    out = []
    for v in values:
        try:
            e = v if isinstance(v, enum_cls) else enum_cls(str(v).strip().lower())
        except ValueError:
            raise ParameterError(
                f"{name}={v!r} is not supported; choose from {', '.join(e.value for e in enum_cls)}"
            ) from None
        if e not in out:
            out.append(e)
    if not out:
        raise ParameterError(f"{name} must name at least one of {', '.join(e.value for e in enum_cls)}")
    return tuple(out)


def _enum_one(value, enum_cls, name):
    return _enum_tuple([value], enum_cls, name)[0]


def _fraction(value, name, *, low=0.0, high=1.0):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ParameterError(f"{name}={value!r} must be a finite number")
    if not low <= float(value) <= high:
        raise ParameterError(f"{name}={value!r} must lie in [{low}, {high}]")
    return float(value)


def _opt_data(value, name):
    """A data option: a path, or a CalibrationData object (``get_next()``) kept as it is."""
    from ._data import is_reader

    return value if is_reader(value) else _opt_path(value, name)


def _opt_path(value, name):
    if value is None:
        return None
    if not isinstance(value, (str, Path)) or str(value) == "":
        raise ParameterError(f"{name}={value!r} must be a path")
    return Path(value)


@dataclass(frozen=True)
class Budgets:
    """What an artifact must achieve against the source model to be delivered.

    * ``fp32_max_rel_err``: fp32 artifacts (conversion only) — max |a-b| over
      the validation set divided by max |reference output|.
    * ``fp16_max_rel_err``: same figure for fp16 artifacts.
    * ``int8_min_top1``: fraction of validation examples whose arg-max agrees
      with the source model's.
    * ``int8_max_metric_drop``: task metric (UAR for speech, accuracy
      otherwise) of the source minus that of the artifact, in [0, 1] units
      (0.01 = one point); checked only when labels are given.
    * ``int8_max_rel_err``: int8 relative-error budget, used only for models
      whose outputs have no class axis (regressors), where top-1 is undefined.
    """

    fp32_max_rel_err: float = 1e-3
    fp16_max_rel_err: float = 1e-2
    int8_min_top1: float = 0.97
    int8_max_metric_drop: float = 0.01
    int8_max_rel_err: float = 0.1

    def __post_init__(self):
        for name in ("fp32_max_rel_err", "fp16_max_rel_err", "int8_max_rel_err"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not (v > 0 and math.isfinite(v)):
                raise ParameterError(f"{name}={v!r} must be a finite number > 0 (a relative error, e.g. 1e-2)")
            object.__setattr__(self, name, float(v))
        object.__setattr__(self, "int8_min_top1", _fraction(self.int8_min_top1, "int8_min_top1"))
        object.__setattr__(self, "int8_max_metric_drop", _fraction(self.int8_max_metric_drop, "int8_max_metric_drop"))


@dataclass(frozen=True)
class QuantizeOptions:
    """Everything :func:`affectedge.exporters.quantize` needs.

    ``source``: a zoo id, ``package.module:factory`` (with ``weights``), a
    ``.pt2`` ExportedProgram or an ``.onnx`` file (ONNX targets only).
    ``calibration`` / ``validation``: a dataset folder (read with the model
    card's feature pipeline), an ``.npz`` with ``x`` (or one array per input
    name) and optional labels ``y``, or a CalibrationData object
    (``get_next()`` -> ``{input name: array}``, optional ``labels``; see
    :mod:`affectedge.exporters._data`). ``threads``: inference threads for the
    checks (default: the profile's, else 1). ``profile``: a device profile
    name or file (:mod:`affectedge.device_profiles`), whose thread count the checks use. ``out``: output folder, written
    atomically. ``require_metric``: fail unless the validation data has
    labels (the task metric is then always checked). ``int8_scheme``: ONNX
    int8 flavour (auto: dynamic for recurrent graphs, static otherwise).
    """

    source: str | Path
    out: str | Path
    targets: tuple = (Target.ONNX,)
    precisions: tuple = (Precision.AUTO,)
    calibration: str | Path | None = None  # or a CalibrationData (see _data)
    validation: str | Path | None = None  # or a CalibrationData
    calibration_method: CalibrationMethod = CalibrationMethod.MINMAX
    int8_scheme: Int8Scheme = Int8Scheme.AUTO
    threads: int | None = None
    profile: str | None = None
    budgets: Budgets = field(default_factory=Budgets)
    allow_degraded: bool = False
    require_metric: bool = False
    weights: str | Path | None = None
    calibration_limit: int = 200
    validation_limit: int = 200
    repeats: int = 50
    seed: int = 0
    create_tflite_env: bool = False
    progress: bool = True

    def __post_init__(self):
        if self.source is None or str(self.source).strip() == "":
            raise ParameterError("source is empty; pass a zoo id, package.module:factory, a .pt2 or an .onnx file")
        object.__setattr__(self, "source", str(self.source) if not isinstance(self.source, Path) else self.source)
        if self.out is None or str(self.out).strip() == "":
            raise ParameterError("out is empty; pass the output folder (--out DIR)")
        object.__setattr__(self, "out", Path(self.out))
        object.__setattr__(self, "targets", _enum_tuple(self.targets, Target, "targets"))
        precisions = _enum_tuple(self.precisions, Precision, "precisions")
        if Precision.AUTO in precisions and len(precisions) > 1:
            raise ParameterError(
                f"precisions={[p.value for p in precisions]}: 'auto' builds fp32, fp16 and int8 and picks one per "
                "runtime; give either 'auto' alone or a list of fp32/fp16/int8"
            )
        object.__setattr__(self, "precisions", precisions)
        object.__setattr__(self, "calibration", _opt_data(self.calibration, "calibration"))
        object.__setattr__(self, "validation", _opt_data(self.validation, "validation"))
        object.__setattr__(self, "weights", _opt_path(self.weights, "weights"))
        object.__setattr__(self, "calibration_method",
                           _enum_one(self.calibration_method, CalibrationMethod, "calibration_method"))
        object.__setattr__(self, "int8_scheme", _enum_one(self.int8_scheme, Int8Scheme, "int8_scheme"))
        if self.profile is not None:
            from affectedge.device_profiles import load as load_profile
            from affectedge.errors import ProfileError

            try:
                prof = load_profile(self.profile)  # a shipped name or a profile file
            except ProfileError as exc:
                raise ParameterError(f"profile={self.profile!r}: {exc}") from None
            object.__setattr__(self, "_profile", prof)
        for name in ("threads",):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1):
                raise ParameterError(f"{name}={v!r} must be an integer >= 1")
        for name in ("calibration_limit", "validation_limit", "repeats"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise ParameterError(f"{name}={v!r} must be an integer >= 1")
        if not isinstance(self.budgets, Budgets):
            raise ParameterError(f"budgets must be a Budgets instance, got {type(self.budgets).__name__}")

    @property
    def resolved_threads(self) -> int:
        """``threads`` if given, else the profile's, else 1."""
        if self.threads is not None:
            return int(self.threads)
        if self.profile is not None:
            return int(self._profile.threads)  # the device profile's thread count (affectedge.device_profiles)
        return 1

    @property
    def build_precisions(self) -> tuple:
        """Concrete precisions to build (``auto`` expands to all three)."""
        if Precision.AUTO in self.precisions:
            return (Precision.FP32, Precision.FP16, Precision.INT8)
        return self.precisions

    @property
    def auto(self) -> bool:
        return Precision.AUTO in self.precisions

    def replace(self, **changes) -> QuantizeOptions:
        return replace(self, **changes)


@dataclass(frozen=True)
class ExportOptions:
    """Plain fp32 conversion plus its numerical check (``affectedge export``)."""

    source: str | Path
    out: str | Path
    targets: tuple = (Target.ONNX,)
    validation: str | Path | None = None
    threads: int | None = None
    profile: str | None = None
    budgets: Budgets = field(default_factory=Budgets)
    allow_degraded: bool = False
    weights: str | Path | None = None
    validation_limit: int = 200
    repeats: int = 50
    seed: int = 0
    create_tflite_env: bool = False
    progress: bool = True

    def __post_init__(self):
        # validation is shared with QuantizeOptions; keep the normalised copy
        q = self.to_quantize_options()
        for name in ("source", "out", "targets", "validation", "weights"):
            object.__setattr__(self, name, getattr(q, name))

    def to_quantize_options(self) -> QuantizeOptions:
        return QuantizeOptions(
            source=self.source, out=self.out, targets=self.targets, precisions=(Precision.FP32,),
            validation=self.validation, threads=self.threads, profile=self.profile, budgets=self.budgets,
            allow_degraded=self.allow_degraded, weights=self.weights, validation_limit=self.validation_limit,
            repeats=self.repeats, seed=self.seed, create_tflite_env=self.create_tflite_env, progress=self.progress,
        )
