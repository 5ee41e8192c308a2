"""Exporter benchmark: size, latency and accuracy change per artifact and runtime.

    .venv/bin/python bench/exporters.py [--models ID,...] [--targets onnx,tflite]
                                        [--threads 1] [--repeats 100] [--json out.json]

For every zoo model present in this checkout (sdk/models/zoo/<id>/card.json),
runs ``affectedge.exporters.quantize`` in fp32, fp16 and int8 for each target
(TFLite only for models with model.pt2 and when a TFLite runtime is
available), on the model's own corpus (``load_features``; random inputs when
the corpus or loader is missing, which the table says), with
``allow_degraded`` so that out-of-budget artifacts are measured too. Prints
one row per artifact x runtime: size, size vs fp32, median/p95 latency and
latency vs fp32, max relative error, top-1 agreement, metric change, and the
budget verdict. Models that cannot be run are listed with the reason.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


def _rows(model_id, res):
    ratios = res.report["ratios"]
    for c in res.checks:
        r = ratios.get(c.artifact, {})
        yield {
            "model": model_id,
            "artifact": c.artifact,
            "runtime": f"{c.runtime} {c.runtime_version}",
            "size_kib": c.size_bytes / 1024,
            "size_x": r.get("size_vs_fp32"),
            "lat_ms": c.latency_median_ms,
            "p95_ms": c.latency_p95_ms,
            "lat_x": r.get("latency_vs_fp32", {}).get(c.runtime),
            "rel_err": c.max_rel_err,
            "top1": c.top1_agreement,
            "metric_delta": None if c.metric is None else c.metric - c.reference_metric,
            "ok": c.ok,
            "violations": list(c.violations),
        }


def _fmt(v, f):
    return "-" if v is None else format(v, f)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=None, help="comma-separated zoo ids (default: every one present)")
    ap.add_argument("--targets", default="onnx,tflite")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=100)
    ap.add_argument("--limit", type=int, default=200, help="validation / calibration examples")
    ap.add_argument("--json", default=None, help="write all rows here")
    args = ap.parse_args(argv)

    from affectedge import exporters, models
    from affectedge.errors import AffectEdgeError

    ids = args.models.split(",") if args.models else list(models.ZOO)
    targets = [t for t in args.targets.split(",") if t]
    rows, skipped = [], {}
    for mid in ids:
        folder = models.zoo_dir(mid)
        if not (folder / "card.json").is_file():
            skipped[mid] = "not built in this checkout"
            continue
        t = [x for x in targets if x != "tflite" or (folder / "model.pt2").is_file()]
        if "tflite" in targets and "tflite" not in t:
            skipped[mid + " (tflite)"] = "no model.pt2: TFLite needs the PyTorch program"
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            try:
                res = exporters.quantize(source=mid, out=Path(tmp) / "o", targets=t,
                                         precisions=("fp32", "fp16", "int8"), threads=args.threads,
                                         repeats=args.repeats, validation_limit=args.limit,
                                         calibration_limit=args.limit, allow_degraded=True, progress=False)
            except (AffectEdgeError, ImportError) as exc:
                skipped[mid] = f"{type(exc).__name__}: {exc}"
                continue
        rows += list(_rows(mid, res))
        notes = "; ".join(n[:140] + ("..." if len(n) > 140 else "") for n in res.report.get("notes", []))
        unavailable = res.report.get("unavailable_runtimes") or {}
        print(f"{mid}: {len(res.checks)} checks in {time.perf_counter() - t0:.1f} s"
              + (f" ({notes})" if notes else "")
              + ("".join(f"\n  NOT CHECKED in {k}: {v}" for k, v in unavailable.items())), file=sys.stderr)

    hdr = (f"{'model':<20} {'artifact':<34} {'runtime':<22} {'KiB':>7} {'×fp32':>6} {'ms':>8} {'p95':>8} "
           f"{'×fp32':>6} {'rel err':>8} {'top-1':>6} {'Δmetric':>8}  verdict")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        verdict = "ok" if r["ok"] else "OUT: " + "; ".join(r["violations"])
        print(f"{r['model']:<20} {r['artifact']:<34} {r['runtime']:<22} {r['size_kib']:>7.1f} "
              f"{_fmt(r['size_x'], '.2f'):>6} {r['lat_ms']:>8.4f} {r['p95_ms']:>8.4f} {_fmt(r['lat_x'], '.2f'):>6} "
              f"{r['rel_err']:>8.2g} {_fmt(r['top1'], '.3f'):>6} {_fmt(r['metric_delta'], '+.3f'):>8}  {verdict}")
    for k, v in skipped.items():
        print(f"skipped {k}: {v}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "skipped": skipped}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
