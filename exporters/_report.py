"""The report of a quantize/export run: report.json, report.md, report.png.

report.json (schema 1) keys: ``schema``, ``command``, ``created_utc``,
``source`` (kind, ref, card id, task, inputs, outputs, ``files_sha256``),
``options``, ``tools`` (versions of affectedge, python, numpy, torch, onnx,
onnxscript, onnxruntime, litert-torch, ai-edge-litert, ai-edge-quantizer),
``runtimes`` ({name: available, version, why}), ``data`` (validation and
calibration origin, sizes, labels), ``reference_metric``, ``artifacts`` (one
entry per built file: target, precision, scheme, notes, size, sha256,
delivered, and its ``checks`` -- one per runtime with every figure of
:class:`Check`), ``ratios`` (size and latency of each artifact over the fp32
artifact of the same target, per runtime), ``chosen`` ({runtime: file},
``auto`` only), ``delivered``, ``refused``, ``unavailable_runtimes``,
``build_failures``, ``card`` (the artifact card.json points at) and
``notes``.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
from importlib import metadata
from pathlib import Path

import numpy as np

__all__ = ["build_report", "tool_versions", "write_report"]

SCHEMA = 1
_TOOLS = ("numpy", "torch", "onnx", "onnxscript", "onnxruntime", "litert-torch", "ai-edge-litert",
          "ai-edge-quantizer", "tflite-runtime")


def tool_versions() -> dict:
    from affectedge import __version__

    out = {"affectedge": __version__, "python": platform.python_version()}
    for t in _TOOLS:
        try:
            out[t] = metadata.version(t)
        except metadata.PackageNotFoundError:
            out[t] = None
    return out


def _opts_dict(opts):
    d = {}
    for k in opts.__dataclass_fields__:
        v = getattr(opts, k)
        if isinstance(v, tuple):
            v = [getattr(x, "value", x) for x in v]
        elif hasattr(v, "value"):
            v = v.value
        elif hasattr(v, "__dataclass_fields__"):
            v = {f: getattr(v, f) for f in v.__dataclass_fields__}
        elif isinstance(v, Path):
            v = str(v)
        d[k] = v
    d["resolved_threads"] = opts.resolved_threads
    return d


def _ratios(built, checks):
    """size and latency over the same target's fp32 artifact, per runtime."""
    out = {}
    by = {(c.artifact, c.runtime): c for c in checks}
    for b in built:
        base = next((x for x in built if x["target"] == b["target"] and x["precision"] == "fp32"), None)
        if base is None:
            continue
        r = {"size_vs_fp32": b["size_bytes"] / base["size_bytes"], "latency_vs_fp32": {}}
        for (art, rt), c in by.items():
            if art == b["file"] and (base["file"], rt) in by:
                r["latency_vs_fp32"][rt] = c.latency_median_ms / max(by[(base["file"], rt)].latency_median_ms, 1e-9)
        out[b["file"]] = r
    return out


def _int8_summary(built, ratios):
    """{target: {"size": ratio, "latency": {runtime: ratio}}} for each target with fp32 and int8."""
    out = {}
    for b in built:
        if b["precision"] == "int8" and b["file"] in ratios:
            r = ratios[b["file"]]
            out[b["target"]] = {"size": r["size_vs_fp32"], "latency": dict(r["latency_vs_fp32"])}
    return out


def build_report(*, opts, verb, src, val, calib, notes, reference_metric, metric_name, built, checks, chosen,
                 delivered, refused, runtimes, build_failures, threads, card_file) -> dict:
    return {
        "schema": SCHEMA,
        "command": verb,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "source": src.describe(),
        "options": _opts_dict(opts),
        "threads": threads,
        "tools": tool_versions(),
        "runtimes": runtimes,
        "unavailable_runtimes": {k: v.get("why") for k, v in runtimes.items() if not v.get("available")},
        "data": {
            "validation": {"origin": val.origin, "n": len(val), "labels": val.labels is not None},
            "calibration": None if calib is None else {"origin": calib.origin, "n": len(calib)},
        },
        "metric": metric_name,
        "reference_metric": reference_metric,
        "artifacts": built,
        "ratios": _ratios(built, checks),
        "int8_vs_fp32": _int8_summary(built, _ratios(built, checks)),
        "chosen": chosen,
        "delivered": sorted(delivered),
        "refused": list(refused),
        "build_failures": build_failures,
        "card": card_file,
        "notes": list(notes),
        "budgets": {f: getattr(opts.budgets, f) for f in opts.budgets.__dataclass_fields__},
    }


def write_report(report, folder):
    folder = Path(folder)
    (folder / "report.json").write_text(json.dumps(_finite(report), indent=2, default=_default, allow_nan=False)
                                        + "\n")
    (folder / "report.md").write_text(to_markdown(report))
    plot(report, folder / "report.png")


def _finite(o):
    """Strict JSON: non-finite floats become the strings "inf", "-inf", "nan"."""
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    if isinstance(o, (float, np.floating)) and not np.isfinite(o):
        return str(float(o))
    return o


def _default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    return str(o)


def _f(v, fmt):
    return "–" if v is None else format(v, fmt)


def to_markdown(report) -> str:
    src = report["source"]
    lines = [
        f"# {report['command']} report: {src.get('card_id') or src['name']}",
        "",
        f"Source `{src['ref']}` ({src['kind']}; reference: {src['reference']}); "
        f"validation: {report['data']['validation']['n']} examples from `{report['data']['validation']['origin']}`"
        + (f"; {report['metric']} of the source {report['reference_metric']:.3f}" if report.get("metric") else "")
        + f"; {report['threads']} thread(s).",
        "",
        "| artifact | runtime | size KiB | size ×fp32 | latency ms (p95) | latency ×fp32 | max rel err | top-1 agree "
        "| metric Δ | session MB | verdict |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    head = []
    if report.get("chosen"):
        head.append("**Chosen** (fastest within budget, ties → smallest): "
                    + "; ".join(f"{rt} → `{f}`" for rt, f in report["chosen"].items()))
    for target, r in report.get("int8_vs_fp32", {}).items():
        head.append(f"**int8 / fp32 ({target})**: size {r['size']:.2f}×; latency "
                    + ", ".join(f"{rt} {v:.2f}×" for rt, v in r["latency"].items()))
    if report["refused"]:
        head.append("**Refused** (out of budget, not written): " + "; ".join(report["refused"]))
    if report["unavailable_runtimes"]:
        head.append("**Not checked** (runtime unavailable): "
                    + "; ".join(f"{k}: {v}" for k, v in report["unavailable_runtimes"].items()))
    if head:
        lines[4:4] = [h + "  " for h in head] + [""]
    ratios = report.get("ratios", {})
    for a in report["artifacts"]:
        r = ratios.get(a["file"], {})
        if not a.get("checks"):
            lines.append(f"| {a['file']} | – | {a['size_bytes'] / 1024:.1f} | {_f(r.get('size_vs_fp32'), '.2f')} "
                         "| – | – | – | – | – | – | not checked |")
        for c in a.get("checks", []):
            chosen = report["chosen"].get(c["runtime"]) == a["file"]
            verdict = ("**chosen**" if chosen else ("delivered" if a.get("delivered") else "ok, not chosen")) \
                if c["ok"] else ("DEGRADED: " if a.get("delivered") else "REFUSED: ") + "; ".join(c["violations"])
            drop = None if c["metric"] is None else (c["metric"] - c["reference_metric"]) + 0.0
            lines.append(
                f"| {a['file']} | {c['runtime']} {c['runtime_version']} | {c['size_bytes'] / 1024:.1f} | "
                f"{_f(r.get('size_vs_fp32'), '.2f')} | {c['latency_median_ms']:.3f} ({c['latency_p95_ms']:.3f}) | "
                f"{_f(r.get('latency_vs_fp32', {}).get(c['runtime']), '.2f')} | {c['max_rel_err']:.2g} | "
                f"{_f(c['top1_agreement'], '.3f')} | {_f(drop, '+.3f')} | {c['session_rss_mb']:.1f} | {verdict} |"
            )
    lines.append("")
    for f in report.get("build_failures", []):
        lines.append(f"- build/run failure: {f.get('file')} {f.get('runtime', '')}: {f['error']}")
    b = report["budgets"]
    lines += [
        f"Budgets: fp32 rel err ≤ {b['fp32_max_rel_err']:g}; fp16 rel err ≤ {b['fp16_max_rel_err']:g}; "
        f"int8 top-1 ≥ {b['int8_min_top1']:g} and metric drop ≤ {b['int8_max_metric_drop']:g}. "
        "Session MB: peak resident memory of the checking process minus its size before the session was created "
        "(report.json also has the process peak, peak_rss_mb).",
        "",
    ]
    for a in report["artifacts"]:
        if a.get("notes") or a.get("scheme"):
            lines.append(f"- `{a['file']}`: {a.get('scheme', '')}" + (f"; {'; '.join(a['notes'])}" if a.get("notes")
                                                                        else ""))
    for n in report.get("notes", []):
        lines.append(f"- {n}")
    lines += ["", "Tools: " + ", ".join(f"{k} {v}" for k, v in report["tools"].items() if v), ""]
    return "\n".join(lines)


_MARKERS = {"onnxruntime": "o", "ai-edge-litert": "s", "tflite-runtime": "^"}


def plot(report, path):
    """Size vs median latency, one marker per runtime, colour by accuracy change."""
    try:
        from affectedge.report import style

        plt = style.pyplot("the quantization report plot")
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=style.FIGSIZE["plot"], dpi=style.DPI)
    pts = []
    for a in report["artifacts"]:
        for c in a.get("checks", []):
            # accuracy change: metric drop when labels were given, else 1 - top-1 agreement
            if c["metric_drop"] is not None:
                change = c["metric_drop"]
            elif c["top1_agreement"] is not None:
                change = 1.0 - c["top1_agreement"]
            else:
                change = c["max_rel_err"]
            pts.append((c["size_bytes"] / 1024, c["latency_median_ms"], max(change, 0.0), c, a))
    if pts:
        vmax = max(0.03, max(p[2] for p in pts if np.isfinite(p[2])) if any(np.isfinite(p[2]) for p in pts) else 0.03)
        for x, y, ch, c, a in pts:
            sc = ax.scatter([x], [y], c=[min(ch, vmax)], cmap=style.CMAP["change"], vmin=0, vmax=vmax, s=90,
                            marker=_MARKERS.get(c["runtime"], "D"), edgecolors="k" if c["ok"] else "red",
                            linewidths=0.8 if c["ok"] else 2.0)
            star = " ★" if report["chosen"].get(c["runtime"]) == a["file"] else ""
            ax.annotate(f"{a['target']} {a['precision']}" + ("" if c["ok"] else " ✗") + star, (x, y),
                        fontsize=style.FONT["annotation"],
                        xytext=(4, 4), textcoords="offset points")
        cb = fig.colorbar(sc, ax=ax)
        cb.set_label("accuracy change (metric drop, else 1 − top-1 agreement)")
        for rt, m in _MARKERS.items():
            if any(p[3]["runtime"] == rt for p in pts):
                ax.scatter([], [], marker=m, c=style.REFERENCE_COLOR, label=rt)
        ax.legend(fontsize=style.FONT["label"], loc="best")
    ax.margins(x=0.15, y=0.12)
    ax.set_xlabel("file size (KiB)")
    ax.set_ylabel(f"median latency per example (ms, {report['threads']} thread(s))")
    ax.set_title(f"{report['source'].get('card_id') or report['source']['name']}: size vs latency "
                 "(red edge/✗ = out of budget, ★ = chosen)", fontsize=style.FONT["title"])
    ax.grid(alpha=0.3)
    return style.save(fig, path)
