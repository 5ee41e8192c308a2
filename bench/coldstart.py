"""Cold start: a fresh process to its first MFCC, with an empty and a warm kernel cache.

    .venv/bin/python bench/coldstart.py [--runs 3]

Each run is a new Python process (imports included) that computes the MFCC of
1 s of 16 kHz audio; the cache is a fresh temporary AFFECTEDGE_CACHE_DIR.
Target (issue 2): warm cache <= 1.0 s.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

CODE = (
    "import time; t0 = time.perf_counter()\n"
    "import numpy as np\n"
    "from affectedge.native_kernels import mfcc\n"
    "y = (np.random.default_rng(0).standard_normal(16000) * 0.1).astype(np.float32)\n"
    "mfcc(y, sr=16000, n_fft=512, hop_length=160, n_mels=40, n_mfcc=13)\n"
    "print(time.perf_counter() - t0)\n"
)


def first_mfcc_s(cache_dir):
    env = {**os.environ, "AFFECTEDGE_CACHE_DIR": cache_dir}
    out = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    empty, warm = [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as cache:
            empty.append(first_mfcc_s(cache))
            warm.append(first_mfcc_s(cache))
    e, w = statistics.median(empty), statistics.median(warm)
    print(f"fresh process to first MFCC, empty cache: {e:.2f} s (median of {args.runs})")
    print(f"fresh process to first MFCC, warm cache:  {w:.2f} s (median of {args.runs})  "
          f"[{'PASS' if w <= 1.0 else 'MISS'}] target <= 1.0 s")


if __name__ == "__main__":
    main()
