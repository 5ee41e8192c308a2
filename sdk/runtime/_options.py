"""Typed options of the runtime: running mode, model loading, one dataclass per modality.

Fields carry their units in their names (``sample_rate_hz``, ``window_ms``,
``hop_ms``) and are checked in ``__post_init__``: a bad value raises
:class:`~affectedge.errors.ParameterError` naming the field, what it must be,
what came, and the remedy. No option takes a free-form dict.
"""

import enum
from dataclasses import dataclass, field
from pathlib import Path

from affectedge.errors import ParameterError

__all__ = ["Backend", "EEGOptions", "FaceOptions", "FusionOptions", "ModelOptions", "RunningMode",
           "SpeechOptions"]


class RunningMode(enum.Enum):
    """``CLIPS``: a task's ``process(...)`` returns its results. ``STREAM``: results go to ``result_callback``."""

    CLIPS = "clips"
    STREAM = "stream"


class Backend(enum.Enum):
    ONNXRUNTIME = "onnxruntime"
    LITERT = "litert"


def _positive(value, name, *, integer=False, allow_none=False, lo=0.0):
    if value is None and allow_none:
        return None
    ok_type = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_type) or not value > lo:
        kind = "an integer" if integer else "a number"
        raise ParameterError(f"{name}={value!r} must be {kind} > {lo:g}")
    return value


def _mode(value, name="running_mode"):
    if isinstance(value, RunningMode):
        return value
    try:
        return RunningMode(str(value).lower())
    except ValueError:
        raise ParameterError(f"{name}={value!r} must be RunningMode.CLIPS or RunningMode.STREAM") from None


def _check_stream(self, what):
    if self.running_mode is RunningMode.STREAM and self.result_callback is None:
        raise ParameterError(f"{what}: running_mode=STREAM needs a result_callback(result) to deliver results; "
                             "pass one, or use RunningMode.CLIPS to get results returned")
    if self.result_callback is not None and not callable(self.result_callback):
        raise ParameterError(f"{what}: result_callback={self.result_callback!r} is not callable")


@dataclass(frozen=True)
class ModelOptions:
    """Which model to load and how to run it.

    ``model``: a zoo id (``"speech-emotion"``), a model folder, or an ``.onnx`` /
    ``.tflite`` file next to its ``card.json``. ``model_asset_buffer``: the model
    bytes instead of a file (the card still comes from ``model``).
    ``backend``: onnxruntime (default for .onnx) or litert (.tflite);
    ``providers``: onnxruntime execution providers in order of preference
    (absent ones are skipped, CPU is always last); ``threads``: intra-op threads,
    1 by default (the zoo's models are small: a second thread costs more in
    hand-over than it saves, and leaves no core to capture; None = the
    runtime's default); ``variant``: a second network on the card; ``profile``:
    a device profile (name, Profile or "auto") that picks runtime, provider or
    delegate, threads and artifact (explicit ``threads`` still win).
    """

    model: object = None
    model_asset_buffer: bytes = None
    backend: object = None
    providers: tuple = ("CPUExecutionProvider",)
    threads: int = 1
    variant: str = None
    check_file: bool = True
    profile: object = None

    def __post_init__(self):
        if self.model is None:
            raise ParameterError("ModelOptions.model is required: a zoo id (e.g. 'speech-emotion'), a model folder "
                                 "or a .onnx/.tflite file next to its card.json")
        if not isinstance(self.model, (str, Path)):
            raise ParameterError(f"ModelOptions.model={self.model!r} must be a zoo id or a path")
        if self.model_asset_buffer is not None and not isinstance(self.model_asset_buffer, (bytes, bytearray)):
            raise ParameterError("ModelOptions.model_asset_buffer must be bytes (the model file's content)")
        if self.backend is not None and not isinstance(self.backend, Backend):
            try:
                object.__setattr__(self, "backend", Backend(str(self.backend).lower()))
            except ValueError:
                raise ParameterError(f"ModelOptions.backend={self.backend!r} must be one of "
                                     f"{[b.value for b in Backend]}") from None
        if isinstance(self.providers, str):
            object.__setattr__(self, "providers", (self.providers,))
        object.__setattr__(self, "providers", tuple(self.providers))
        _positive(self.threads, "ModelOptions.threads", integer=True, allow_none=True)


@dataclass(frozen=True)
class SpeechOptions:
    """Speech emotion from audio blocks.

    Windows of ``window_ms`` (the model's 4 s) end every ``hop_ms``; the first
    result comes once ``min_window_ms`` of audio is in. ``calibration``: a
    saved per-user calibration (``affectedge calibrate``), used from the start;
    otherwise ``online_calibration`` gathers the user's speech frames and
    normalises with them once ``online_min_speech_s`` of speech is in (before
    that, the training-set statistics: results say ``calibrated: false``).
    """

    model: ModelOptions = field(default_factory=lambda: ModelOptions("speech-emotion"))
    window_ms: float = 4000.0
    hop_ms: float = 1000.0
    min_window_ms: float = 1000.0
    calibration: object = None
    online_calibration: bool = True
    online_min_speech_s: float = 10.0
    running_mode: RunningMode = RunningMode.CLIPS
    result_callback: object = None

    def __post_init__(self):
        for n in ("window_ms", "hop_ms", "min_window_ms", "online_min_speech_s"):
            _positive(getattr(self, n), f"SpeechOptions.{n}")
        if self.min_window_ms > self.window_ms:
            raise ParameterError(f"SpeechOptions.min_window_ms={self.min_window_ms} must not exceed "
                                 f"window_ms={self.window_ms}")
        object.__setattr__(self, "running_mode", _mode(self.running_mode))
        _check_stream(self, "SpeechOptions")


@dataclass(frozen=True)
class FaceOptions:
    """Facial expression from video frames.

    ``max_fps``: frames processed per second at most (others are skipped and
    counted); ``smoothing_frames``: per-frame probabilities averaged over the
    last N processed frames with a face. ``independent_frames``: the frames
    are separate pictures (an image folder), not one stream: MediaPipe runs
    in IMAGE mode (no tracking from one face to the next) and there is no
    smoothing; a camera or video uses VIDEO mode with tracking.
    ``pixel_model``: the CNN on the aligned face crop (``face-pixels``
    pipeline) fused with ``model`` at the probability level, with the weight
    on its card (``extra.fusion.weight_pixels``); it reuses the same MediaPipe
    run. ``None``: blendshapes only (the cheap path).
    """

    model: ModelOptions = field(default_factory=lambda: ModelOptions("face-expression"))
    pixel_model: ModelOptions = field(default_factory=lambda: ModelOptions("face-expression-pixels"))
    max_fps: float = 10.0
    smoothing_frames: int = 3
    independent_frames: bool = False
    running_mode: RunningMode = RunningMode.CLIPS
    result_callback: object = None

    def __post_init__(self):
        _positive(self.max_fps, "FaceOptions.max_fps")
        _positive(self.smoothing_frames, "FaceOptions.smoothing_frames", integer=True)
        if isinstance(self.pixel_model, str):
            object.__setattr__(self, "pixel_model", ModelOptions(self.pixel_model))
        object.__setattr__(self, "running_mode", _mode(self.running_mode))
        _check_stream(self, "FaceOptions")


@dataclass(frozen=True)
class EEGOptions:
    """EEG affect / mental state from EEG blocks.

    ``model``: None picks by the board's channels: the Muse mental-state
    model when TP9/AF7/AF8/TP10 are present (or, with ``map_channels``, on
    the first four EEG channels, flagged in every result), the DEAP
    valence/arousal model when the 32 DEAP electrodes are present.
    ``session_calibration``: for a model whose card carries its training
    inputs' statistics (``extra.input_stats``: the DEAP model, trained on
    precomputed features of another scale), the session's own running feature
    statistics are mapped onto them once ``calibration_min_s`` of windows are
    in (moment matching; results say ``calibrated``).
    """

    model: ModelOptions = None
    hop_ms: float = 1000.0
    map_channels: bool = True
    session_calibration: bool = True
    calibration_min_s: float = 30.0
    profile: object = None  # device profile for the automatically chosen model (see ModelOptions.profile)
    running_mode: RunningMode = RunningMode.CLIPS
    result_callback: object = None

    def __post_init__(self):
        _positive(self.hop_ms, "EEGOptions.hop_ms")
        _positive(self.calibration_min_s, "EEGOptions.calibration_min_s")
        object.__setattr__(self, "running_mode", _mode(self.running_mode))
        _check_stream(self, "EEGOptions")


@dataclass(frozen=True)
class FusionOptions:
    """Late fusion of the modalities (see :mod:`affectedge.runtime._fusion` for the rule).

    A modality's latest result counts with weight
    ``weight * confidence * exp(-age_ms / freshness_ms)`` and drops out when
    older than ``max_age_ms`` or when its status is not "ok".
    """

    speech_weight: float = 1.0
    face_weight: float = 1.0
    eeg_weight: float = 0.5
    freshness_ms: float = 3000.0
    max_age_ms: float = 5000.0
    hop_ms: float = 1000.0

    def __post_init__(self):
        for n in ("freshness_ms", "max_age_ms", "hop_ms"):
            _positive(getattr(self, n), f"FusionOptions.{n}")
        for n in ("speech_weight", "face_weight", "eeg_weight"):
            v = getattr(self, n)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise ParameterError(f"FusionOptions.{n}={v!r} must be a number >= 0")
