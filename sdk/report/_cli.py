"""``affectedge report``: a self-contained HTML report from a results JSON Lines file."""

import sys


def add_parsers(sub):
    p = sub.add_parser("report", help="an HTML report (emotion timeline, valence/arousal, sensor health) from a "
                                      "results .jsonl written by `affectedge run --out`")
    p.add_argument("results", help="results .jsonl (a stopped or killed run's file works too)")
    p.add_argument("--out", default="report", help="output folder for report.html and its PNGs (default: ./report)")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")


def dispatch(args):
    from affectedge.report import write_report

    info = write_report(args.results, args.out, warn=lambda s: print(f"affectedge report: {s}", file=sys.stderr))
    if not args.quiet:
        n = ", ".join(f"{m} {c}" for m, c in info.counts["results"].items()) or "none"
        print(f"report -> {info.html} (results: {n}; {info.counts['events']} events; "
              f"{info.counts['status']} status records{'' if info.finished else '; run did not finish'})")
    return 0
