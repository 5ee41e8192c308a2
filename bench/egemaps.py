"""eGeMAPS benchmark and parity: affectedge.native_kernels.gemaps vs openSMILE 2.x eGeMAPSv02.

    .venv/bin/python bench/egemaps.py [--repeats N] [--clips N] [--json PATH]

* Speed: the 88 functionals of 60 s of 16 kHz speech (EmoDB clips
  concatenated, as bench/pitch.py), ours with pYIN and with YIN pitch vs
  ``opensmile.Smile(eGeMAPSv02, Functionals).process_signal``, one thread,
  medians of repeated timings; target openSMILE / ours >= 10x.
* Parity: on ``--clips`` EmoDB clips (every k-th file, all speakers), the
  Pearson r across clips of each of the 88 functionals, and the median over
  clips of the frame-by-frame r of each of the 25 LLDs (both smoothed, same
  frame grid). Features whose definitions differ from openSMILE's are
  listed in the module doc of affectedge.native_kernels.gemaps and
  flagged here with r < 0.8.

openSMILE is only the anchor of this benchmark (its licence forbids
commercial use); affectedge never imports it at run time.
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from _timing import median_s  # noqa: E402
from pitch import SR, load_audio  # noqa: E402

TARGET_RATIO = 10.0  # openSMILE / ours
WEAK_R = 0.8


def _emodb_dir():
    for c in (os.environ.get("AFFECTEDGE_DATA_DIR"), BENCH_DIR.parents[1] / "shared" / "data"):
        if c and (Path(c) / "speech" / "emodb" / "wav").is_dir():
            return Path(c) / "speech" / "emodb" / "wav"
    return None


def _r(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.size < 3 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def parity(n_clips, compat=False):
    """Per-feature correlations with openSMILE on ``n_clips`` EmoDB clips (``compat``: opensmile_compat=True)."""
    import opensmile

    from affectedge.io import read_wav
    from affectedge.native_kernels.gemaps import FUNCTIONAL_NAMES, LLD_NAMES, egemaps

    wav_dir = _emodb_dir()
    if wav_dir is None:
        return None
    files = sorted(wav_dir.glob("*.wav"))
    files = files[:: max(1, len(files) // n_clips)][:n_clips]
    fun = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                          feature_level=opensmile.FeatureLevel.Functionals)
    lld = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                          feature_level=opensmile.FeatureLevel.LowLevelDescriptors)
    if list(fun.feature_names) != list(FUNCTIONAL_NAMES) or list(lld.feature_names) != list(LLD_NAMES):
        raise SystemExit("openSMILE's eGeMAPSv02 names differ from ours: update FUNCTIONAL_NAMES / LLD_NAMES")
    ours, theirs, frame_r = [], [], {n: [] for n in LLD_NAMES}
    frames_equal = 0
    for f in files:
        y, sr = read_wav(f)
        e = egemaps(y, sr, opensmile_compat=compat)
        ours.append(e.functionals.astype(np.float64))
        theirs.append(fun.process_signal(y, sr).to_numpy()[0])
        L = lld.process_signal(y, sr).to_numpy()
        frames_equal += int(L.shape[0] == e.n_frames)
        n = min(L.shape[0], e.n_frames)
        for j, name in enumerate(LLD_NAMES):
            frame_r[name].append(_r(e.llds[:n, j], L[:n, j]))
    O, T = np.array(ours), np.array(theirs)
    return {
        "clips": len(files),
        "frame_counts_equal": frames_equal,
        "functional_r": {n: _r(O[:, j], T[:, j]) for j, n in enumerate(FUNCTIONAL_NAMES)},
        "functional_median_ours": {n: float(np.median(O[:, j])) for j, n in enumerate(FUNCTIONAL_NAMES)},
        "functional_median_opensmile": {n: float(np.median(T[:, j])) for j, n in enumerate(FUNCTIONAL_NAMES)},
        "lld_frame_r_median": {n: float(np.nanmedian(v)) if np.isfinite(v).any() else float("nan")
                               for n, v in frame_r.items()},
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--clips", type=int, default=60)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--opensmile-compat", action="store_true",
                    help="parity of egemaps(..., opensmile_compat=True) (openSMILE's formant and harmonic quirks)")
    args = ap.parse_args(argv)

    import opensmile

    from affectedge.native_kernels import jit_enabled, warmup
    from affectedge.native_kernels.gemaps import egemaps

    y, source = load_audio()
    print(f"input: {source}; JIT {'on' if jit_enabled() else 'off'}")
    warmup(progress=False)
    egemaps(y[: SR * 2], SR)
    egemaps(y[: SR * 2], SR, pitch_method="yin")
    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                            feature_level=opensmile.FeatureLevel.Functionals)
    res = {"input": source}
    with threadpool_limits(limits=1):
        res["ours_pyin_s"] = median_s(lambda: egemaps(y, SR), args.repeats)
        res["ours_yin_s"] = median_s(lambda: egemaps(y, SR, pitch_method="yin"), args.repeats)
        res["opensmile_s"] = median_s(lambda: smile.process_signal(y, SR), args.repeats)
    res["ratio_pyin"] = res["opensmile_s"] / res["ours_pyin_s"]
    res["ratio_yin"] = res["opensmile_s"] / res["ours_yin_s"]
    print(f"\n== eGeMAPSv02 functionals of 60 s, 16 kHz float32, one thread")
    print(f"  egemaps(pitch_method='pyin')  {res['ours_pyin_s'] * 1e3:9.1f} ms")
    print(f"  egemaps(pitch_method='yin')   {res['ours_yin_s'] * 1e3:9.1f} ms")
    print(f"  openSMILE eGeMAPSv02          {res['opensmile_s'] * 1e3:9.1f} ms")
    print(f"  openSMILE / ours (pyin)       {res['ratio_pyin']:9.2f} x   (target >= {TARGET_RATIO:g} x)")
    print(f"  openSMILE / ours (yin)        {res['ratio_yin']:9.2f} x")
    par = parity(args.clips, args.opensmile_compat)
    if par is not None:
        res["parity"] = par
        res["opensmile_compat"] = bool(args.opensmile_compat)
        print(f"\n== Parity with openSMILE on {par['clips']} EmoDB clips, opensmile_compat={args.opensmile_compat} "
              f"(frame counts equal on {par['frame_counts_equal']})")
        print("  LLD (median frame-by-frame r)")
        for n, r in par["lld_frame_r_median"].items():
            print(f"    {n:36s} {r:6.3f}{'  <' if not r >= WEAK_R else ''}")
        print("  functional (r across clips; medians ours / openSMILE)")
        for n, r in par["functional_r"].items():
            print(f"    {n:48s} {r:6.3f}  {par['functional_median_ours'][n]:10.4g} "
                  f"{par['functional_median_opensmile'][n]:10.4g}{'  <' if not r >= WEAK_R else ''}")
        fr = np.array(list(par["functional_r"].values()))
        print(f"  functionals with r >= 0.9: {int(np.sum(fr >= 0.9))}/88, >= {WEAK_R}: {int(np.sum(fr >= WEAK_R))}/88, "
              f"median r {np.nanmedian(fr):.3f}")
    ok = res["ratio_pyin"] >= TARGET_RATIO
    print(f"\n  [{'PASS' if ok else 'MISS'}] openSMILE / ours (pyin) >= {TARGET_RATIO:g}")
    res["targets"] = {"speed ratio (pyin)": ok}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
