"""The live runtime: sensors -> streaming features -> calibrated models -> fusion -> time-spanned results.

Shaped like MediaPipe Tasks::

    from affectedge import runtime, sensors

    opts = runtime.SpeechOptions(running_mode=runtime.RunningMode.STREAM, result_callback=print)
    with runtime.SpeechTask(opts) as task, sensors.MicrophoneSource(target_rate_hz=16000) as mic:
        for block in mic:
            task.push(block)                 # results arrive through the callback

    # or everything at once, with fusion, events, status records and JSON Lines:
    rt = runtime.Runtime(audio=(sensors.AudioFileSource("a.wav", target_rate_hz=16000), runtime.SpeechTask()),
                         eeg=(sensors.BoardSource("synthetic"), runtime.EEGTask()), jsonl="results.jsonl")
    summary = rt.run()

Names load lazily (``import affectedge.runtime`` loads no model or sensor
library). The JSON Lines schema is in :mod:`affectedge.runtime._results`.
"""

import importlib

_EXPORTS = {
    "Backend": "_options",
    "EEGOptions": "_options",
    "FaceOptions": "_options",
    "FusionOptions": "_options",
    "ModelOptions": "_options",
    "RunningMode": "_options",
    "SpeechOptions": "_options",
    "Session": "_session",
    "create_session": "_session",
    "AffectResult": "_results",
    "EmotionEvent": "_results",
    "EventMerger": "_results",
    "JsonlWriter": "_results",
    "SCHEMA": "_results",
    "SCHEMA_VERSION": "_results",
    "Fusion": "_fusion",
    "TAXONOMY": "_fusion",
    "OnlineCalibration": "_calibration",
    "load_calibration": "_calibration",
    "EEGTask": "_tasks",
    "FaceTask": "_tasks",
    "SpeechTask": "_tasks",
    "load_model": "_tasks",
    "output_roles": "_tasks",
    "DropOldestQueue": "_runner",
    "Runtime": "_runner",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'affectedge.runtime' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
