"""Numba-JIT feature kernels for affect recognition on the device.

Every kernel has a public wrapper that validates its input, a private
``@njit(cache=True)`` kernel, a NumPy twin (used when numba is unavailable or
``AFFECTEDGE_DISABLE_JIT=1``; tests compare against it), and a streaming
class. float32 stays float32 and float64 stays float64.

Modules: ``spectral`` (mel spectrogram, MFCC, deltas), ``silence`` (silence
features after Atmaja & Akagi), ``f0`` (``pitch``: YIN / pYIN,
librosa-compatible), ``eeg`` (Welch PSD, band power, differential
entropy), ``graph`` (electrode montages, adjacency, Laplacians, Chebyshev
graph filtering), ``voice`` (``voice_quality``: Praat-style jitter,
shimmer, HNR), ``lld`` (``spectral_llds``: eGeMAPS-style alpha ratio,
Hammarberg index, spectral slopes, flux, loudness, MFCC 1-4), ``gemaps``
(``egemaps``: the eGeMAPS v02 LLDs and 88 functionals). Names load lazily on first access.
"""

import importlib

_EXPORTS = {
    # spectral
    "StreamingMFCC": "spectral",
    "delta": "spectral",
    "get_window": "spectral",
    "hz_to_mel": "spectral",
    "mel_filterbank": "spectral",
    "mel_frequencies": "spectral",
    "mel_spectrogram": "spectral",
    "mel_to_hz": "spectral",
    "mfcc": "spectral",
    "power_to_db": "spectral",
    # silence
    "SilenceFeatures": "silence",
    "StreamingSilence": "silence",
    "silence_features": "silence",
    # pitch
    "PitchResult": "f0",
    "StreamingPitch": "f0",
    "pitch": "f0",
    # eeg
    "DEFAULT_BANDS": "eeg",
    "StreamingBandPower": "eeg",
    "band_power": "eeg",
    "differential_entropy": "eeg",
    "welch": "eeg",
    # graph
    "GraphFrames": "graph",
    "MONTAGES": "graph",
    "StreamingGraphFilter": "graph",
    "chebyshev_filter": "graph",
    "coherence_adjacency": "graph",
    "correlation_adjacency": "graph",
    "distance_adjacency": "graph",
    "montage_positions": "graph",
    "normalized_laplacian": "graph",
    "scaled_laplacian": "graph",
    # voice quality
    "VoiceQuality": "voice",
    "voice_quality": "voice",
    # spectral LLDs (eGeMAPS)
    "SpectralLLDs": "lld",
    "StreamingSpectralLLDs": "lld",
    "spectral_llds": "lld",
    # eGeMAPS v02
    "EGeMAPS": "gemaps",
    "egemaps": "gemaps",
    "egemaps_llds": "gemaps",
    # formants and harmonic levels (eGeMAPS)
    "FormantTrack": "formant",
    "HarmonicLevels": "formant",
    "StreamingFormants": "formant",
    "formants": "formant",
    "harmonic_levels": "formant",
    # runtime
    "jit_enabled": "_runtime",
    "warmup": "_runtime",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'affectedge.native_kernels' has no attribute {name!r}")
    mod = importlib.import_module(f"{__name__}.{module}")
    # bind every export of that module at once (a submodule import never shadows an exported name)
    for other, where in _EXPORTS.items():
        if where == module:
            globals()[other] = getattr(mod, other)
    return globals()[name]


def __dir__():
    return __all__
