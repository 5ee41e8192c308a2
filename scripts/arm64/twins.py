"""Speech kernels: compiled (Numba) vs NumPy twin on real EmoDB clips, no librosa.

tests/test_spectral.py and tests/test_silence.py compare against librosa and
skip as a whole when it is absent (as in the lean arm64 root). This runs the
same public kernels both ways on a few clips and compares the two paths:
mfcc / mel_spectrogram / delta / StreamingMFCC in float64 and float32,
silence_features, and the speech model's full feature pipeline.

    python twins.py WAV_DIR [--clips N]

Prints one line per check and a final "twins: P passed, F failed"; exits 1 on
a failure, 0 otherwise (and 0 with "skipped" when numba is unavailable).
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from affectedge.io import read_wav
from affectedge.native_kernels import StreamingMFCC, _config, delta, mel_spectrogram, mfcc, silence_features

SPEECH = dict(sr=16000, n_fft=512, hop_length=160, n_mels=40, n_mfcc=13)
# float64: relative to the clip's max |value|; float32: absolute on dB-scaled
# cepstra (the tolerances tests/test_spectral.py uses against librosa).
RTOL_F64 = 1e-6
ATOL_F32 = 1e-3


def both(fn):
    """fn() with the JIT, then with the NumPy twins."""
    prev = _config.set_jit(True)
    try:
        a = fn()
        _config.set_jit(False)
        b = fn()
    finally:
        _config.STATE.jit = prev
    return a, b


def rel(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def absd(a, b):
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


def stream(y):
    sm = StreamingMFCC(**SPEECH, dtype=y.dtype.type)
    parts = [sm.push(y[i:i + 1234]) for i in range(0, y.size, 1234)]
    return np.concatenate(parts, axis=1)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("wav_dir", type=Path)
    ap.add_argument("--clips", type=int, default=6)
    args = ap.parse_args(argv)
    if not _config.JIT_ENABLED:
        print(f"twins: skipped ({_config.JIT_DISABLED_REASON}); only the NumPy twins exist here")
        return 0
    files = sorted(args.wav_dir.glob("*.wav"))
    if not files:
        print(f"twins: no .wav files in {args.wav_dir}")
        return 1
    files = files[:: max(1, len(files) // args.clips)][: args.clips]
    t0 = time.perf_counter()
    from affectedge import models

    speech = models.load("speech-emotion")
    worst = {}
    failures = []

    def check(name, err, tol):
        worst[name] = max(worst.get(name, 0.0), err)
        if not err <= tol:
            failures.append(f"{name}: {err:.2e} > {tol:.0e}")

    for f in files:
        y32, sr = read_wav(f)
        y64 = y32.astype(np.float64)
        a, b = both(lambda: mfcc(y64, **SPEECH))
        check("mfcc f64 (rel)", rel(a, b), RTOL_F64)
        a, b = both(lambda: mfcc(y32, **SPEECH))
        check("mfcc f32 (abs dB)", absd(a, b), ATOL_F32)
        a, b = both(lambda: mel_spectrogram(y64, sr=16000, n_fft=512, hop_length=160, n_mels=40))
        check("mel f64 (rel)", rel(a, b), RTOL_F64)
        m = mfcc(y64, **SPEECH)
        a, b = both(lambda: delta(m, width=9))
        check("delta f64 (rel)", rel(a, b), RTOL_F64)
        a, b = both(lambda: stream(y64))
        check("StreamingMFCC f64 (rel)", rel(a, b), RTOL_F64)
        a, b = both(lambda: stream(y32))
        check("StreamingMFCC f32 (abs dB)", absd(a, b), ATOL_F32)
        a, b = both(lambda: silence_features(y64, sr=sr, threshold_factor=0.3))
        check("silence rms f64 (rel)", rel(a.rms, b.rms), RTOL_F64)
        check("silence mask (frames differing)", float(np.sum(a.mask != b.mask)), 0)
        a, b = both(lambda: speech.features_raw(y32, sample_rate_hz=sr))
        check("speech-emotion features (rel)", rel(a, b), 1e-4)
    for name, err in worst.items():
        print(f"  {name:34s} worst {err:.2e} over {len(files)} clips")
    for line in failures:
        print(f"  FAIL {line}")
    n = len(worst)
    bad = len({x.split(':')[0] for x in failures})
    print(f"twins: {n - bad} passed, {bad} failed ({len(files)} EmoDB clips, {time.perf_counter() - t0:.1f} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
