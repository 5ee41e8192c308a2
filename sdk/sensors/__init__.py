"""Sensor sources: audio files and microphones, cameras / video / image folders, EEG boards.

Every source shares the protocol of :class:`Source` (context manager,
``read(timeout_s)``, ``close()``, ``stats``) and stamps its packets
(:class:`AudioBlock`, :class:`VideoFrame`, :class:`EEGBlock`) on one
:class:`Clock`. Names load lazily: ``import affectedge.sensors`` imports no
PyAudio, OpenCV or BrainFlow.
"""

import importlib

_EXPORTS = {
    # shared
    "AudioBlock": "_base",
    "Clock": "_base",
    "EEGBlock": "_base",
    "EndOfStream": "_base",
    "Source": "_base",
    "SourceStats": "_base",
    "VideoFrame": "_base",
    # audio
    "AudioFileSource": "_audio",
    "MicrophoneSource": "_audio",
    "StreamResampler": "_audio",
    "list_audio_inputs": "_audio",
    "read_audio": "_audio",
    "resample": "_audio",
    # video
    "CameraSource": "_video",
    "ImageFolderSource": "_video",
    "VideoFileSource": "_video",
    "list_cameras": "_video",
    "open_video": "_video",
    # eeg
    "BoardSource": "_eeg",
    "EEGRecordingSource": "_eeg",
    "open_eeg": "_eeg",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'affectedge.sensors' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
