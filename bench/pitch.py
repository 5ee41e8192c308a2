"""Pitch benchmark: affectedge pYIN / YIN vs librosa, measured in the same run.

    .venv/bin/python bench/pitch.py [--repeats N] [--json PATH]

Same conventions as bench/kernels.py: one process, one thread, kernels
warmed before timing, medians of repeated timings (bench/_timing.py).

* Batch pYIN on 60 s of 16 kHz float32 speech (EmoDB clips concatenated,
  else seeded noise), fmin 65, fmax 400, frame 1024, hop 256 (librosa's
  default hop, frame_length // 4): librosa.pyin / ours >= 20x. The voicing
  agreement and median cents vs librosa are printed with it.
* Batch YIN, same input and parameters: librosa.yin / ours, for information.
* Streaming pitch per 10 ms hop (160-sample chunks, frame 1024, fixed-lag
  pYIN with lag 50): ours <= 50 us per hop; YIN for information.
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from _timing import median_s  # noqa: E402

SR = 16000
SECONDS = 60
PARAMS = dict(sr=SR, fmin=65.0, fmax=400.0, frame_length=1024, hop_length=256)
STREAM_HOP = 160  # 10 ms
STREAM_PUSHES = 1000
TARGET_PYIN_RATIO = 20.0  # librosa.pyin / ours
TARGET_STREAM_US = 50.0  # ours per 10 ms hop


def load_audio():
    """60 s of 16 kHz float32: EmoDB clips concatenated (sorted names), else seeded noise."""
    from affectedge.io import read_wav

    n = SR * SECONDS
    for c in (os.environ.get("AFFECTEDGE_DATA_DIR"), BENCH_DIR.parents[1] / "shared" / "data"):
        wav_dir = Path(c) / "speech" / "emodb" / "wav" if c else None
        if wav_dir is None or not wav_dir.is_dir():
            continue
        parts, total = [], 0
        for f in sorted(wav_dir.glob("*.wav")):
            y, sr = read_wav(f)
            if sr == SR:
                parts.append(y)
                total += y.shape[0]
            if total >= n:
                return np.concatenate(parts)[:n].astype(np.float32), f"EmoDB speech, {len(parts)} clips, {SECONDS} s"
    rng = np.random.default_rng(0)
    return (0.1 * rng.standard_normal(n)).astype(np.float32), f"seeded noise, {SECONDS} s (no EmoDB found)"


def stream_us(y, method):
    from affectedge.native_kernels import StreamingPitch

    s = StreamingPitch(sr=SR, fmin=65.0, fmax=400.0, frame_length=1024, hop_length=STREAM_HOP, method=method,
                       lag=50, dtype=np.float32)
    chunks = [y[i : i + STREAM_HOP] for i in range(0, y.shape[0] - STREAM_HOP + 1, STREAM_HOP)]
    warm = 1024 // STREAM_HOP + 55  # first frame complete and the lag filled: excluded
    for c in chunks[:warm]:
        s.push(c)
    timings = []
    todo = chunks[warm : warm + 5 * STREAM_PUSHES]
    for r in range(5):
        part = todo[r * STREAM_PUSHES : (r + 1) * STREAM_PUSHES]
        t0 = time.perf_counter()
        for c in part:
            s.push(c)
        timings.append((time.perf_counter() - t0) / len(part))
    return float(np.median(timings)) * 1e6


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    import librosa

    from affectedge.native_kernels import _config, jit_enabled, pitch, warmup

    y, source = load_audio()
    print(f"input: {source}; JIT {'on' if jit_enabled() else 'off'}; rocket-fft "
          f"{'yes' if _config.HAVE_NUMBA_FFT else 'no'}")
    warmup(progress=False)
    res = {}
    with threadpool_limits(limits=1):
        ours = pitch(y, **PARAMS)
        f0, vf, _ = librosa.pyin(y, **PARAMS)
        both = ours.voiced_flag & vf
        agree = float(np.mean(ours.voiced_flag == vf))
        cents = float(np.median(1200 * np.abs(np.log2(ours.f0[both].astype(np.float64) / f0[both]))))
        res["pyin_ours_s"] = median_s(lambda: pitch(y, **PARAMS), args.repeats)
        res["pyin_librosa_s"] = median_s(lambda: librosa.pyin(y, **PARAMS), max(1, args.repeats // 2))
        res["yin_ours_s"] = median_s(lambda: pitch(y, method="yin", **PARAMS), args.repeats)
        res["yin_librosa_s"] = median_s(lambda: librosa.yin(y, **PARAMS), args.repeats)
        res["stream_pyin_us"] = stream_us(y, "pyin")
        res["stream_yin_us"] = stream_us(y, "yin")
    res["pyin_ratio"] = res["pyin_librosa_s"] / res["pyin_ours_s"]
    res["yin_ratio"] = res["yin_librosa_s"] / res["yin_ours_s"]
    res["pyin_voicing_agreement"] = agree
    res["pyin_median_cents"] = cents
    print(f"\n== Batch pitch, {SECONDS} s, frame 1024, hop 256, fmin 65, fmax 400, float32")
    print(f"  pitch(method='pyin')   {res['pyin_ours_s'] * 1e3:9.2f} ms")
    print(f"  librosa.pyin           {res['pyin_librosa_s'] * 1e3:9.2f} ms   "
          f"(voicing agreement {agree:.2%}, median {cents:.3g} cents on frames both voiced)")
    print(f"  pitch(method='yin')    {res['yin_ours_s'] * 1e3:9.2f} ms")
    print(f"  librosa.yin            {res['yin_librosa_s'] * 1e3:9.2f} ms")
    print(f"  librosa.pyin / ours    {res['pyin_ratio']:9.1f} x   (target >= {TARGET_PYIN_RATIO:g} x)")
    print(f"  librosa.yin / ours     {res['yin_ratio']:9.1f} x   (information)")
    print(f"\n== Streaming pitch per 10 ms hop (160-sample pushes, frame 1024)")
    print(f"  StreamingPitch pyin    {res['stream_pyin_us']:9.2f} us  (fixed lag 50 frames; target <= "
          f"{TARGET_STREAM_US:g} us)")
    print(f"  StreamingPitch yin     {res['stream_yin_us']:9.2f} us")
    checks = [("pyin ratio", res["pyin_ratio"] >= TARGET_PYIN_RATIO),
              ("streaming pyin us", res["stream_pyin_us"] <= TARGET_STREAM_US)]
    for label, ok in checks:
        print(f"  [{'PASS' if ok else 'MISS'}] {label}")
    print(f"\n{sum(ok for _, ok in checks)}/{len(checks)} targets met")
    res["targets"] = {label: ok for label, ok in checks}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2))
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
