"""Warm-up (compile and cache every kernel) and JIT status."""

import sys
import time

import numpy as np

from . import _config

__all__ = ["jit_enabled", "warmup"]


def jit_enabled():
    """True when the compiled kernels are in use (numba importable and not disabled)."""
    return _config.use_jit()


def _tasks():
    from . import eeg, graph, silence, spectral

    def audio(dt):
        y = (np.random.default_rng(0).standard_normal(16000) * 0.1).astype(dt)
        m = spectral.mfcc(y, sr=16000, n_fft=512, hop_length=160, n_mels=40, n_mfcc=13)
        spectral.mel_spectrogram(y, sr=16000, n_fft=512, hop_length=160, n_mels=40)
        spectral.delta(m)
        s = spectral.StreamingMFCC(sr=16000, dtype=dt)
        s.push(y[:1000])
        s.push(y[1000:1160])

    def sil(dt):
        y = (np.random.default_rng(1).standard_normal(16000) * 0.1).astype(dt)
        silence.silence_features(y, sr=16000)
        silence.StreamingSilence(sr=16000, dtype=dt).push(y)

    def eeg_task(dt):
        x = np.random.default_rng(2).standard_normal((4, 512)).astype(dt)
        eeg.welch(x, 128.0)
        eeg.band_power(x, 128.0)
        eeg.differential_entropy(x, 128.0, method="psd")
        eeg.differential_entropy(x, 128.0, method="gaussian")
        eeg.StreamingBandPower(128.0, 4, window_s=2.0, hop_s=1.0, dtype=dt).push(x)

    def graph_task(dt):
        x = np.random.default_rng(3).standard_normal((4, 512)).astype(dt)
        adj = graph.correlation_adjacency(x)
        graph.coherence_adjacency(x, 128.0)
        graph.distance_adjacency(graph.montage_positions("muse4"))
        lap = graph.scaled_laplacian(adj)
        graph.normalized_laplacian(adj)
        w = np.ones((2, 3, 2), dtype=dt)
        graph.chebyshev_filter(np.ones((2, 4, 3), dtype=dt), lap, w)

    def pitch_task(dt):
        from . import f0 as pm
        y = (np.random.default_rng(4).standard_normal(4000) * 0.1).astype(dt)
        pm.pitch(y, 16000, method="pyin")
        pm.pitch(y, 16000, method="yin")
        pm.StreamingPitch(sr=16000, dtype=dt, lag=2).push(y)
        pm.StreamingPitch(sr=16000, dtype=dt, method="yin").push(y)

    def egemaps_task(dt):
        from . import formant, gemaps, lld

        t = np.arange(8000) / 16000
        y = (0.3 * np.sin(2 * np.pi * 140 * t) + 0.01 * np.random.default_rng(5).standard_normal(8000)).astype(dt)
        lld.StreamingSpectralLLDs(sr=16000, dtype=dt).push(y)
        formant.StreamingFormants(sr=16000, dtype=dt).push(y)
        for compat in (False, True):
            gemaps.egemaps(y, 16000, opensmile_compat=compat)
        gemaps.egemaps(y, 16000, pitch_method="yin")
        # the pulse and HNR kernels run in float64 whatever the input: compiled once above

    return [("mfcc", audio), ("silence", sil), ("eeg spectra", eeg_task), ("graph", graph_task),
            ("pitch", pitch_task), ("egemaps", egemaps_task)]


def warmup(*, progress=True, stream=None):
    """Compile every kernel for float32 and float64 (stored in the cache dir).

    Returns {task: seconds}. With ``progress``, draws a bar on ``stream``
    (stderr by default).
    """
    stream = stream or sys.stderr
    tasks = [(f"{name} {np.dtype(dt).name}", fn, dt) for name, fn in _tasks() for dt in (np.float32, np.float64)]
    times = {}
    for i, (label, fn, dt) in enumerate(tasks):
        t0 = time.perf_counter()
        fn(dt)
        times[label] = time.perf_counter() - t0
        if progress:
            done = i + 1
            bar = "#" * (30 * done // len(tasks))
            stream.write(f"\rwarming kernels [{bar:<30}] {done}/{len(tasks)} {label:<22}")
            stream.flush()
    if progress:
        stream.write("\n")
    return times
