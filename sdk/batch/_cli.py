"""``affectedge batch``: the command (hooked into the main CLI)."""

import json
import sys

__all__ = ["add_parsers", "dispatch"]


def add_parsers(sub):
    b = sub.add_parser("batch", help="run the runtime's pipelines over a folder or manifest of recordings "
                                     "(in-process or on Ray), resumable")
    b.add_argument("input", help="a folder of recordings, or a .csv manifest (path[,speaker][,modality])")
    b.add_argument("--out", required=True, help="output folder: files/*.jsonl, results.parquet, summary.json")
    b.add_argument("--modalities", default="speech,face,eeg", help="comma-separated: speech, face, eeg")
    b.add_argument("--profile", default=None, help="device profile NAME or 'auto': runtime, provider and artifacts")
    b.add_argument("--calibration", default="speaker",
                   help="speech calibration: speaker (two passes, per speaker; default), online (per file), none, "
                        "or a calibration file from 'affectedge calibrate'")
    b.add_argument("--ray", default="local",
                   help="local (start Ray here, on 127.0.0.1; default), auto (join the running cluster), "
                        "HOST:PORT (join that cluster) or none (in this process, --workers 1)")
    b.add_argument("--workers", type=int, default=None, help="worker actors (default: Ray's CPUs / --cpus-per-worker)")
    b.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs each worker reserves (default 1)")
    b.add_argument("--threads", type=int, default=None,
                   help="intra-op threads per model (default: the profile's, at most --cpus-per-worker; else 1)")
    b.add_argument("--quiet", action="store_true", help="no progress line")
    b.add_argument("--json", action="store_true", help="print the summary as JSON")


def dispatch(args):
    from ._job import BatchOptions, run_batch

    opts = BatchOptions(out=args.out, modalities=args.modalities, profile=args.profile, calibration=args.calibration,
                        ray=args.ray, workers=args.workers, cpus_per_worker=args.cpus_per_worker, threads=args.threads,
                        progress=not args.quiet)
    try:
        s = run_batch(args.input, opts)
    except KeyboardInterrupt:
        print(f"\ninterrupted: the files written so far in {args.out} are whole and kept; run the same command "
              "again to resume", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(s, indent=1))
    else:
        print_summary(s)
    return 1 if s.get("failed") else 0


def print_summary(s, out=sys.stdout):
    w = lambda line: print(line, file=out)  # noqa: E731
    t = s.get("throughput") or {}
    w(f"batch: {s['files']} files: {s['done']} done, {s['resumed']} already done, {len(s['failed'])} failed, "
      f"{len(s['skipped'])} skipped; {s.get('rows', 0)} windows -> {s['out']}")
    if t:
        w(f"  {s.get('executor')} with {s.get('workers')} worker(s): {t.get('files_per_s')} files/s, "
          f"{t.get('audio_s_per_s')} audio-s/s; start-up {s.get('startup_s')} s, total {s.get('wall_s')} s")
    for rel, why in list(s["failed"].items())[:20]:
        w(f"  failed: {rel}: {why}")
    if len(s["failed"]) > 20:
        w(f"  ... and {len(s['failed']) - 20} more (summary.json lists them all)")
