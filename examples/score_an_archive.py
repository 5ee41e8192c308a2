"""Score a whole archive of recordings with affectedge batch, then read the Parquet table.

    python examples/score_an_archive.py recordings/ --out results/          # local Ray, every CPU
    python examples/score_an_archive.py calls.csv --out results/ --ray HOST:6379
    python examples/score_an_archive.py --smoke                             # a few EmoDB clips and CK+ pictures

Runs ``affectedge.batch.run_batch`` (the same sources, models and schema as the
live runtime, one JSONL per file), prints the summary, then reads
``results.parquet`` with pyarrow and prints, per speaker (speech) and per
modality, how often each label was the answer. Junk (a blank picture, a
silent clip) shows as a status, never as a label. Run it again: the files
already done are skipped.
"""

import argparse
import collections
import os
import shutil
import sys
import tempfile
from pathlib import Path


def smoke_archive(root):
    data = Path(os.environ.get("AFFECTEDGE_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")
    wavs = sorted((data / "speech" / "emodb" / "wav").glob("*.wav"))
    for p in [w for w in wavs if w.name[:2] in ("03", "08")][::6][:10]:
        (root / "speech").mkdir(parents=True, exist_ok=True)
        shutil.copy(p, root / "speech" / p.name)
    (root / "face").mkdir()
    for p in sorted((data / "face" / "ckplus48").rglob("*.png"))[::100][:6]:
        shutil.copy(p, root / "face" / p.name)
    import numpy as np
    import soundfile as sf

    sf.write(root / "speech" / "silence.wav", np.zeros(32000, np.float32), 16000)  # junk: 2 s of silence
    blank = root / "face" / "blank.png"
    import cv2

    cv2.imwrite(str(blank), np.full((96, 96), 200, np.uint8))  # junk: no face


def report(out):
    import pyarrow.parquet as pq

    rows = pq.read_table(Path(out) / "results.parquet").to_pylist()
    shares = collections.defaultdict(collections.Counter)
    for r in rows:
        who = f"speech, speaker {r['speaker']}" if r["modality"] == "speech" else r["modality"]
        shares[who][r["label"] if r["status"] == "ok" else f"({r['status']})"] += 1
    for who, c in sorted(shares.items()):
        total = sum(c.values())
        print(f"  {who:<22} " + ", ".join(f"{k} {v / total:.0%}" for k, v in c.most_common()))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("input", nargs="?", help="a folder of recordings or a .csv manifest (path[,speaker])")
    ap.add_argument("--out", help="output folder")
    ap.add_argument("--ray", default="local", help="local, auto, HOST:PORT or none")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--smoke", action="store_true", help="a small archive from the shared data, in a temp dir")
    a = ap.parse_args()
    from affectedge import batch

    tmp = None
    if a.smoke:
        tmp = Path(tempfile.mkdtemp(prefix="affectedge-archive-"))
        smoke_archive(tmp / "archive")
        a.input, a.out, a.ray = str(tmp / "archive"), str(tmp / "out"), "none"
    elif not (a.input and a.out):
        ap.error("pass INPUT and --out (or --smoke)")
    try:
        s = batch.run_batch(a.input, batch.BatchOptions(out=a.out, ray=a.ray, workers=a.workers))
        print(f"{s['files']} files: {s['done']} done, {s['resumed']} already done, {len(s['failed'])} failed; "
              f"{s['throughput']['files_per_s']} files/s -> {s['out']}")
        for rel, why in s["failed"].items():
            print(f"  failed: {rel}: {why}")
        rows = report(a.out)
        if a.smoke:
            again = batch.run_batch(a.input, batch.BatchOptions(out=a.out, ray=a.ray, progress=False))
            statuses = {r["status"] for r in rows}
            if again["resumed"] != s["done"] or "no_face" not in statuses or "ok" not in statuses:
                sys.exit("smoke: FAILED (no resume, or junk without a status)")
            print(f"smoke: ok ({len(rows)} windows; the rerun skipped all {again['resumed']} files)")
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
