"""The report's figures: emotion timeline, valence/arousal, sensor health (times in s on the session clock)."""

import math

from . import style


def _s(ms):
    return None if ms is None else float(ms) / 1e3


def _xlim(ax, res):
    a, b = res.span_ms()
    ax.set_xlim(_s(a), _s(b) + 0.05 * max(_s(b - a), 1.0))


def timeline(res, path):
    """One row per modality: upper band the emotion events, lower band each result (ok: label colour, else hatched)."""
    from matplotlib.patches import Patch

    mods = res.modalities or ["(none)"]
    fig, ax = style.figure((style.FIGSIZE["wide"], 1.3 + style.FIGSIZE["timeline_row"] * len(mods)))
    labels, statuses = {}, {}
    gaps = {s.get("modality"): s.get("gaps") or [] for s in res.status}  # the last status per modality has them all
    for row, m in enumerate(mods):
        y = len(mods) - 1 - row
        for g in gaps.get(m, []):
            ax.broken_barh([(_s(g[0]), _s(g[1] - g[0]))], (y - 0.45, 0.9), facecolor=style.GAP_COLOR, alpha=0.55,
                           edgecolor="#d62728", hatch="xx", linewidth=0, zorder=3)
        prev_end, lift = -math.inf, 0
        for e in sorted((e for e in res.events if e.get("modality") == m), key=lambda e: e["start_ms"]):
            lift = 1 - lift if e["start_ms"] < prev_end else 0  # overlapping windows: alternate the text height
            prev_end = max(prev_end, e["end_ms"])
            c = style.label_color(e["label"])
            labels[e["label"]] = c
            w = _s(e["end_ms"] - e["start_ms"])
            ax.broken_barh([(_s(e["start_ms"]), w)], (y + 0.02, 0.4), facecolor=c, edgecolor="k", linewidth=0.5,
                           alpha=0.85)
            if w > 0.04 * max(_s(res.span_ms()[1]), 1.0):
                ax.text(_s(e["start_ms"]) + w / 2, y + 0.14 + 0.16 * lift, e["label"], ha="center", va="center",
                        fontsize=style.FONT["small"], clip_on=True)
        for r in (r for r in res.results if r.get("modality") == m):
            x, w = _s(r["start_ms"]), _s(r["end_ms"] - r["start_ms"])
            if r.get("status") == "ok" and r.get("label"):
                c = style.label_color(r["label"])
                labels[r["label"]] = c
                ax.broken_barh([(x, w)], (y - 0.42, 0.38), facecolor=c, alpha=0.35 + 0.6 * (r.get("confidence") or 0),
                               edgecolor="none")
            else:
                st = r.get("status") or "unknown"
                statuses[st] = style.status_hatch(st)
                ax.broken_barh([(x, w)], (y - 0.42, 0.38), facecolor=style.NOT_OK_COLOR, hatch=statuses[st],
                               edgecolor="#888888", linewidth=0)
    ax.set_yticks(range(len(mods)), [f"{m}\nevents / results" for m in reversed(mods)], fontsize=style.FONT["label"])
    ax.set_ylim(-0.6, len(mods) - 0.4)
    _xlim(ax, res)
    handles = [Patch(facecolor=c, edgecolor="k", linewidth=0.5, label=lab) for lab, c in sorted(labels.items())]
    handles += [Patch(facecolor=style.NOT_OK_COLOR, hatch=h, edgecolor="#888888", label=f"not ok: {st}")
                for st, h in sorted(statuses.items())]
    if any(gaps.values()):
        handles.append(Patch(facecolor=style.GAP_COLOR, alpha=0.55, edgecolor="#d62728", hatch="xx", linewidth=0,
                             label="sensor gap"))
    if handles:
        ax.legend(handles=handles, fontsize=style.FONT["legend"], loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  frameon=False)
    style.apply(ax, title="Which emotion appears when (upper band: events; lower band: results, opacity = "
                          "confidence)", xlabel="time (s, session clock)")
    ax.grid(axis="y", visible=False)
    return style.save(fig, path)


def valence_arousal(res, path):
    """Valence and arousal of each result at its window centre, one line per modality (a gap where not ok)."""
    fig, axes = style.figure((style.FIGSIZE["wide"], 4.6), 2, 1, sharex=True)
    any_va = False
    for ax, key in zip(axes, ("valence", "arousal")):
        for m in res.modalities:
            rs = sorted((r for r in res.results if r.get("modality") == m), key=lambda r: r["end_ms"])
            xs = [_s((r["start_ms"] + r["end_ms"]) / 2) for r in rs]
            ys = [math.nan if r.get(key) is None else r[key] for r in rs]
            if any(not math.isnan(v) for v in ys):
                any_va = True
                ax.plot(xs, ys, marker="o", ms=3, lw=1.4 if m == "fused" else 1.0, color=style.modality_color(m),
                        label=m)
        ax.axhline(0, color=style.REFERENCE_COLOR, lw=0.8, ls="--")
        ax.set_ylim(-1.05, 1.05)
        style.apply(ax, ylabel=key, legend=True)
    if not any_va:
        axes[0].text(0.5, 0.5, "no valence/arousal in these results", transform=axes[0].transAxes, ha="center",
                     fontsize=style.FONT["label"])
    _xlim(axes[1], res)
    style.apply(axes[0], title="Valence / arousal over time (window centre; gaps where a window had no answer)")
    style.apply(axes[1], xlabel="time (s, session clock)")
    return style.save(fig, path)


COUNTS = (("dropped", "-", "o"), ("overflows", "--", "s"), ("reconnects", ":", "^"))
LATENCIES = (("latency_ms_p50", "-", "o"), ("latency_ms_p95", "--", "v"))


def health(res, path):
    """Per modality from the status records: rate, cumulative drops/overflows/reconnects, latency, gap spans."""
    from matplotlib.lines import Line2D

    fig, axes = style.figure((style.FIGSIZE["wide"], 7.0), 4, 1, sharex=True)
    mods = [m for m in res.modalities if any(s.get("modality") == m for s in res.status)]
    for m in mods:
        ss = sorted((s for s in res.status if s.get("modality") == m), key=lambda s: s.get("t_ms") or 0)
        t = [_s(s.get("t_ms") or 0) for s in ss]
        c = style.modality_color(m)
        axes[0].plot(t, [s.get("rate_hz") for s in ss], marker="o", ms=3, color=c, label=m)
        for key, ls, mk in COUNTS:
            axes[1].step(t, [s.get(key) or 0 for s in ss], where="post", ls=ls, marker=mk, ms=3, color=c)
        for key, ls, mk in LATENCIES:
            v = [math.nan if s.get(key) is None else s[key] for s in ss]
            axes[2].plot(t, v, ls=ls, marker=mk, ms=3, color=c)
        gaps = ss[-1].get("gaps") or []  # each status record lists every gap so far
        y = len(mods) - 1 - mods.index(m)
        axes[3].broken_barh([(_s(a), _s(b - a)) for a, b in gaps], (y - 0.35, 0.7), facecolor=style.GAP_COLOR,
                            edgecolor="k", linewidth=0.5)
        axes[3].text(1.005, y, f"{len(gaps)} gap(s), {ss[-1].get('gap_ms') or 0:.0f} ms", va="center",
                     transform=axes[3].get_yaxis_transform(), fontsize=style.FONT["small"])
    if not mods:
        axes[0].text(0.5, 0.5, "no status records", transform=axes[0].transAxes, ha="center")
    style.apply(axes[0], title="Sensor health (from the status records)", ylabel="rate (packets/s)")
    axes[1].set_ylim(0, max(1.0, axes[1].get_ylim()[1]))
    style.apply(axes[1], ylabel="count (cumulative)")
    style.apply(axes[2], ylabel="latency (ms)")
    leg = dict(fontsize=style.FONT["legend"], loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    if mods:
        axes[0].legend(**leg)
        for ax, keys in ((axes[1], COUNTS), (axes[2], LATENCIES)):
            ax.legend(handles=[Line2D([], [], color="k", ls=ls, marker=mk, ms=3,
                                      label=k.replace("latency_ms_", "latency ")) for k, ls, mk in keys], **leg)
    axes[3].set_yticks(range(len(mods)), list(reversed(mods)), fontsize=style.FONT["label"])
    axes[3].set_ylim(-0.6, max(len(mods), 1) - 0.4)
    style.apply(axes[3], ylabel="gaps", xlabel="time (s, session clock)")
    _xlim(axes[3], res)
    return style.save(fig, path)
