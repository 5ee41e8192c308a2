"""EEG band power + differential entropy: affectedge vs SciPy vs MNE.

Headline case: 32 channels x 4 s at 128 Hz (512 samples), Welch with
nperseg=256, noverlap=128, Hann window, constant detrend; five default bands
(1-45 Hz), rectangle-rule band power (bins lo <= f < hi) and PSD-based DE
``0.5 * log(2 pi e P)``. Input: the first 4 s of the real DEAP trial in
``shared/data/eeg/deap_raw_trial`` when present, otherwise seeded noise.

``run(repeats)`` returns one dict per contender: ``name``, ``us`` (median
microseconds per call), ``ms``, ``ratio_vs_scipy`` (SciPy time / this time;
> 1 means faster than SciPy), plus ``data`` and ``note``. Single-threaded
(threadpoolctl limits BLAS/OpenMP pools to 1). Prints nothing.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from _timing import median_s

FS = 128.0
N_SAMPLES = 512  # 4 s
NPERSEG = 256
NOVERLAP = 128
_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "eeg" / "deap_raw_trial" / "deap_trial_128hz.csv"


def _load():
    if _DATA.is_file():
        with open(_DATA) as fh:
            names = [c for c in fh.readline().strip().split(",") if c]
        data = np.loadtxt(_DATA, delimiter=",", skiprows=1, usecols=range(len(names)), max_rows=N_SAMPLES)
        return np.ascontiguousarray(data.T, dtype=np.float64), "DEAP raw trial (first 4 s, 32 ch)"
    rng = np.random.default_rng(0)
    return rng.standard_normal((32, N_SAMPLES)), "synthetic noise (32 ch x 512)"


def _median_us(fn, repeats, inner):
    return median_s(fn, repeats, inner) * 1e6


def run(repeats: int = 20) -> list[dict]:
    import scipy.signal
    from threadpoolctl import threadpool_limits

    from affectedge.native_kernels import _config, eeg

    x, label = _load()
    bands = tuple((k, float(v[0]), float(v[1])) for k, v in eeg.DEFAULT_BANDS.items())
    half_log = 0.5 * math.log(2 * math.pi * math.e)

    def scipy_path():
        f, p = scipy.signal.welch(x, FS, nperseg=NPERSEG, noverlap=NOVERLAP, window="hann")
        df = f[1] - f[0]
        bp = np.stack([p[:, (f >= lo) & (f < hi)].sum(axis=-1) * df for _, lo, hi in bands], axis=1)
        return bp, half_log + 0.5 * np.log(bp)

    def mne_path():
        import mne

        p, f = mne.time_frequency.psd_array_welch(
            x, FS, fmin=0.0, fmax=FS / 2, n_fft=NPERSEG, n_per_seg=NPERSEG, n_overlap=NOVERLAP,
            window="hann", verbose=False,
        )  # fmt: skip
        df = f[1] - f[0]
        bp = np.stack([p[:, (f >= lo) & (f < hi)].sum(axis=-1) * df for _, lo, hi in bands], axis=1)
        return bp, half_log + 0.5 * np.log(bp)

    def ours():
        # band power and DE from one PSD, one call (what the scipy path does too)
        return eeg.band_power(x, FS, nperseg=NPERSEG, noverlap=NOVERLAP, with_de=True)

    def ours_two_calls():
        bp = eeg.band_power(x, FS, nperseg=NPERSEG, noverlap=NOVERLAP)
        de = eeg.differential_entropy(x, FS, nperseg=NPERSEG, noverlap=NOVERLAP)
        return bp, de

    def ours_stream():
        # one 4-s window through the streaming class (fused power + DE, one kernel call)
        stream.reset()
        out = stream.push(x)[0]
        return out[:, : len(bands)], out[:, len(bands) :]

    stream = eeg.StreamingBandPower(FS, x.shape[0], window_s=4.0, hop_s=1.0, nperseg=NPERSEG, noverlap=NOVERLAP,
                                    dtype=np.float64)  # fmt: skip

    previous = _config.STATE.jit
    results = []
    try:
        with threadpool_limits(limits=1):
            inner = 20
            contenders = [("scipy welch + bands + DE", scipy_path, None)]
            try:
                import mne  # noqa: F401

                contenders.append(("mne psd_array_welch + bands + DE", mne_path, None))
            except ImportError:
                pass
            if _config.JIT_ENABLED:
                contenders.append(("affectedge band_power(with_de=True) (jit)", ours, True))
                contenders.append(("affectedge band_power + differential_entropy, 2 calls (jit)", ours_two_calls, True))
                contenders.append(("affectedge StreamingBandPower.push, 1 window (jit)", ours_stream, True))
            contenders.append(("affectedge band_power(with_de=True) (numpy twin)", ours, False))
            ref_bp, ref_de = scipy_path()
            for name, fn, jit in contenders:
                if jit is not None:
                    _config.STATE.jit = jit
                bp, de = fn()  # warm (JIT compile / cache load)
                diff = max(
                    float(np.max(np.abs(bp - ref_bp)) / np.max(np.abs(ref_bp))),
                    float(np.max(np.abs(de - ref_de)) / np.max(np.abs(ref_de))),
                )
                us = _median_us(fn, repeats, inner)
                results.append(
                    {"name": name, "us": us, "ms": us / 1e3, "data": label, "max_rel_diff_vs_scipy": diff}
                )
    finally:
        _config.STATE.jit = previous
    ref = results[0]["us"]
    for r in results:
        r["ratio_vs_scipy"] = ref / r["us"]
        r["note"] = (
            f"{x.shape[0]} ch x {x.shape[1]} samples @ {FS:g} Hz, nperseg={NPERSEG}, noverlap={NOVERLAP}, "
            "hann, 5 bands; ratio > 1 = faster than scipy"
        )
    return results
