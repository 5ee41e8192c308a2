"""Session reports: one self-contained ``report.html`` (and its PNGs) from a results JSON Lines file.

    info = write_report("results.jsonl", "out_dir")   # or: affectedge report results.jsonl --out out_dir
    info.html, info.pngs, info.counts, info.notes

The report shows an emotion timeline per modality and fused (events and each
result, non-ok statuses hatched), valence/arousal over time, sensor health
(rate, drops, overflows, reconnects, latency, gaps) and a summary table.

Damaged input: the output of a stopped or killed run renders (no summary
record: "run did not finish"; a partial last line is ignored and reported).
A malformed line before the last one is a ParameterError naming the file and
line, since the runtime only ever writes whole lines. Needs ``affectedge[report]``
(matplotlib).
"""

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

from ._read import Results, read_results

__all__ = ["ReportInfo", "Results", "read_results", "write_report"]


@dataclass
class ReportInfo:
    html: Path
    pngs: dict
    counts: dict
    modalities: list = field(default_factory=list)  # the timeline's rows, top to bottom
    partial_line: int = None
    finished: bool = True
    notes: list = field(default_factory=list)


def _table(rows, head=None):
    e = html.escape
    out = ["<table>"] + ([("<tr>" + "".join(f"<th>{e(str(h))}</th>" for h in head) + "</tr>")] if head else [])
    out += ["<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>" for r in rows]
    return "\n".join(out + ["</table>"])


def _summary_rows(res):
    s, mods = res.summary, res.modalities
    counts = {m: sum(r.get("modality") == m for r in res.results) for m in mods}
    rows = []
    if s is None:
        a, b = res.span_ms()
        rows.append(("finished", "no: run did not finish: no summary record"))
        rows.append(("time covered", f"{(b - a) / 1e3:.1f} s (from the records)"))
    else:
        rows.append(("duration", f"{(s.get('duration_ms') or 0) / 1e3:.1f} s"))
        rows.append(("stopped by", s.get("stopped_by", "?")))
    rows.append(("results per modality", ", ".join(f"{m} {(s or {}).get('results', counts).get(m, counts.get(m, 0))}"
                                                   for m in mods) or "none"))
    share = (s or {}).get("label_share")
    if share is None:  # compute it from the ok results
        share = {}
        for m in mods:
            ok = [r["label"] for r in res.results
                  if r.get("modality") == m and r.get("status") == "ok" and r.get("label")]
            share[m] = {lab: round(ok.count(lab) / len(ok), 3) for lab in sorted(set(ok), key=ok.count, reverse=True)}
    for m, d in share.items():
        rows.append((f"label share: {m}", ", ".join(f"{k} {v:.0%}" for k, v in d.items()) or "no ok result"))
    not_ok = {}
    for r in res.results:
        if r.get("status") != "ok":
            not_ok[(r.get("modality"), r.get("status"))] = not_ok.get((r.get("modality"), r.get("status")), 0) + 1
    rows.append(("not-ok results", ", ".join(f"{m} {st} {n}" for (m, st), n in sorted(not_ok.items(), key=str))
                 or "none"))
    rows.append(("events", (s or {}).get("events", len(res.events))))
    if s is not None:
        rows.append(("dropped", ", ".join(f"{k} {v}" for k, v in (s.get("dropped") or {}).items()) or "none"))
        rows.append(("results dropped", s.get("results_dropped", 0)))
        rows.append(("errors", "; ".join(f"{k}: {v}" for k, v in (s.get("errors") or {}).items()) or "none"))
    errs = sorted({f"{st.get('modality')}: {st['error']}" for st in res.status if st.get("error")})
    if errs:
        rows.append(("sensor errors", "; ".join(errs)))
    return rows


def write_report(results, out, *, warn=None):
    """Write ``out``/report.html (PNGs embedded as data URIs) and the PNGs next to it; returns a ReportInfo.

    ``warn`` gets each note about the input (a partial last line, no summary).
    """
    from . import _plots, style

    style.pyplot("session reports")  # MissingExtraError naming affectedge[report] before any work
    res = read_results(results, warn=warn)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pngs = {"timeline": _plots.timeline(res, out / "timeline.png"),
            "valence_arousal": _plots.valence_arousal(res, out / "valence_arousal.png"),
            "health": _plots.health(res, out / "health.png")}
    e = html.escape
    sess = res.session or {}
    title = f"affectedge session report: {res.path.name}"
    parts = [f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{e(title)}</title><style>"
             "body{font-family:sans-serif;max-width:1100px;margin:1em auto;color:#222}"
             "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;"
             "text-align:left;font-size:90%}img{max-width:100%}.note{background:#fff3cd;padding:4px 8px}"
             "</style></head><body>", f"<h1>{e(title)}</h1>"]
    parts += [f"<p class='note'>{e(n)}</p>" for n in res.notes]
    parts.append(_table([("started (UTC)", sess.get("started_utc", "?")), ("affectedge", sess.get("affectedge", "?"))]
                        + [(f"source: {m}", v) for m, v in (sess.get("sources") or {}).items()]
                        + [(f"model: {m}", v) for m, v in (sess.get("models") or {}).items()]))
    parts += ["<h2>Summary</h2>", _table(_summary_rows(res))]
    rows = ", ".join(res.modalities)
    for key, head in (("timeline", f"Emotion timeline ({rows})"), ("valence_arousal", "Valence / arousal"),
                      ("health", "Sensor health")):
        data = base64.b64encode(pngs[key].read_bytes()).decode("ascii")
        parts += [f"<h2>{e(head)}</h2>", f"<img alt='{e(key)}: {e(rows)}' src='data:image/png;base64,{data}'>"]
    last = {st.get("modality"): st for st in res.status}  # a status record lists every gap so far
    gaps = [(m, a, b) for m, st in last.items() for a, b in (st.get("gaps") or [])]
    if gaps:
        parts.append(_table([(m, f"{a / 1e3:.2f}", f"{b / 1e3:.2f}", f"{b - a:.0f}") for m, a, b in gaps],
                            ("modality", "gap start (s)", "gap end (s)", "ms")))
    parts.append(f"<p><small>{res.n_lines} lines, {res.n_records} records, from {e(str(res.path))}</small></p>"
                 "</body></html>\n")
    path = out / "report.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    counts = {"results": {m: sum(r.get("modality") == m for r in res.results) for m in res.modalities},
              "events": len(res.events), "status": len(res.status), "records": res.n_records, "lines": res.n_lines}
    return ReportInfo(html=path, pngs=pngs, counts=counts, modalities=res.modalities, partial_line=res.partial_line,
                      finished=res.summary is not None, notes=list(res.notes))
