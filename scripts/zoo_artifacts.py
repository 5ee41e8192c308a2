"""Refresh a zoo model's checked precision artifacts after it was retrained.

    .venv/bin/python scripts/zoo_artifacts.py speech-emotion [--data DIR] [--report DIR]

Runs ``affectedge quantize MODEL --to onnx,tflite --precision fp32,fp16,int8``
(calibration and validation on the model's own corpus), then replaces the
zoo folder's ``model.<precision>.<onnx|tflite>`` files with the artifacts that
passed every budget and lists them on the card (``extra.artifacts``: sha256,
size, runtimes checked, top-1 agreement with fp32), as the loader expects.
Artifacts that missed a budget are removed from the zoo, not shipped.
"""

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_id")
    ap.add_argument("--data", default=None, help="calibration/validation corpus (default: the model's own)")
    ap.add_argument("--report", default=None, help="also keep the quantize report (report.json/.md/.png) in this folder")
    args = ap.parse_args(argv)

    from affectedge import exporters
    from affectedge.models import sha256_file

    zoo = REPO / "sdk" / "models" / "zoo" / args.model_id
    card_path = zoo / "card.json"
    card = json.loads(card_path.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        kw = {"calibration": args.data, "validation": args.data} if args.data else {}
        try:
            res = exporters.quantize(source=args.model_id, out=out, targets=("onnx", "tflite"),
                                     precisions=("fp32", "fp16", "int8"), **kw)
        except exporters.OutOfBudgetError as exc:  # ship what is within budget; the refused ones are listed
            if exc.result is None:
                raise
            res = exc.result
            print(f"{args.model_id}: {exc}", file=sys.stderr)
        if args.report:
            rep = Path(args.report)
            rep.mkdir(parents=True, exist_ok=True)
            for f in out.glob("report.*"):
                shutil.copyfile(f, rep / f.name)
        for old in zoo.glob("model.*.onnx"):
            old.unlink()
        for old in zoo.glob("model.*.tflite"):
            old.unlink()
        files = {}
        by_file = {}
        for c in res.checks:
            by_file.setdefault(c.artifact, []).append(c)
        for a in res.artifacts:
            name, precision = a["file"], a["precision"]
            target = "tflite" if name.endswith(".tflite") else "onnx"
            if name not in res.delivered or (target == "onnx" and precision == "fp32"):
                continue  # the fp32 ONNX is model.onnx itself
            dest = f"model.{precision}.{target}"
            shutil.copyfile(out / name, zoo / dest)
            checks = by_file.get(name, [])
            files[dest] = {"precision": precision, "sha256": sha256_file(zoo / dest),
                           "file_size_bytes": (zoo / dest).stat().st_size,
                           "checked_in": sorted({c.runtime for c in checks}),
                           "top1_agreement": min((c.top1_agreement for c in checks
                                                  if c.top1_agreement is not None), default=None)}
    card.setdefault("extra", {})["artifacts"] = {
        "made_by": f"affectedge quantize {args.model_id} --to onnx,tflite --precision fp32,fp16,int8 (only "
                   "artifacts within every budget are kept; see the exporters' report)",
        "files": files,
        "refused": list(res.refused),
    }
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    print(f"{args.model_id}: {', '.join(files) or 'no artifact'} shipped; refused: {res.refused or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
