"""Numerical checks of one artifact in one runtime, against the source model.

Figures (all over the validation inputs):

* ``max_abs_err``: max |artifact - source| over every output element;
* ``max_rel_err``: per output, max |artifact - source| / max |source|, then
  the worst output (scale-relative, so near-zero probabilities do not blow
  it up);
* ``top1_agreement``: fraction of examples whose arg-max equals the
  source's, on the first output when it is (batch, classes);
* ``metric`` / ``reference_metric`` / ``metric_drop``: the task metric (UAR
  for speech, accuracy otherwise) of the artifact and of the source on the
  labelled validation set, and source minus artifact;
* latency median and p95 (ms per single-example call) at ``threads``, file
  size, and the session's peak memory (measured in a fresh process).

Budgets (:class:`Budgets`): fp32 and fp16 on ``max_rel_err``; int8 on
``top1_agreement`` and ``metric_drop``, and every output other than the class
output on its relative error against ``int8_max_rel_err``. Non-finite outputs always fail.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from affectedge.errors import ExportError

__all__ = ["Check", "OutOfBudgetError", "compare", "run_check", "violations"]


class OutOfBudgetError(ExportError):
    """One or more artifacts missed their budget in a runtime; ``checks`` holds the failing ones and
    ``result`` (when set) the :class:`QuantizeResult` of what was delivered within budget."""

    def __init__(self, message, checks=()):
        super().__init__(message)
        self.checks = tuple(checks)
        self.result = None


@dataclass(frozen=True)
class Check:
    artifact: str
    target: str
    precision: str
    runtime: str
    runtime_version: str
    threads: int
    size_bytes: int
    max_abs_err: float
    max_rel_err: float
    top1_agreement: float | None
    metric_name: str | None
    metric: float | None
    reference_metric: float | None
    metric_drop: float | None
    latency_median_ms: float
    latency_p95_ms: float
    peak_rss_mb: float
    session_rss_mb: float
    n_examples: int
    violations: tuple = ()
    providers: tuple = field(default=())

    @property
    def ok(self) -> bool:
        return not self.violations

    def to_dict(self) -> dict:
        d = asdict(self)
        d["violations"] = list(self.violations)
        d["providers"] = list(self.providers)
        d["ok"] = self.ok
        return d


def compare(outputs, reference):
    """(max_abs_err, max_rel_err, top1_agreement or None, max_rel_err of the non-class outputs).

    The first output is the class output (the card's labels name its last
    axis) when it is (batch, classes) with more than one class; top-1 is
    computed on it alone. Further outputs (e.g. a valence/arousal regression
    head) are judged on their relative error.
    """
    if len(outputs) != len(reference):
        raise ExportError(f"artifact gives {len(outputs)} outputs, the source model {len(reference)}")
    max_abs, max_rel, top1, rel_other = 0.0, 0.0, None, 0.0
    for k, (got, ref) in enumerate(zip(outputs, reference)):
        got = np.asarray(got, dtype=np.float64)
        ref = np.asarray(ref, dtype=np.float64)
        if got.shape != ref.shape:
            raise ExportError(f"artifact output {k} is shaped {got.shape}, the source model's {ref.shape}")
        is_class = k == 0 and ref.ndim == 2 and ref.shape[-1] > 1
        if not np.all(np.isfinite(got)):
            return float("inf"), float("inf"), (0.0 if is_class else None), float("inf")
        err = float(np.max(np.abs(got - ref))) if got.size else 0.0
        scale = float(np.max(np.abs(ref))) if ref.size else 0.0
        rel = err / scale if scale > 0 else (0.0 if err == 0 else float("inf"))
        max_abs, max_rel = max(max_abs, err), max(max_rel, rel)
        if is_class:
            top1 = float(np.mean(np.argmax(got, axis=-1) == np.argmax(ref, axis=-1)))
        else:
            rel_other = max(rel_other, rel)
    return max_abs, max_rel, top1, rel_other


def task_metric(name, outputs, labels):
    """UAR or accuracy of the first class output against ``labels``."""
    from affectedge._metrics import uar, war

    out = np.asarray(outputs[0])
    if out.ndim == 2 and out.shape[-1] > 1 and len(out) == len(labels):
        pred = np.argmax(out, axis=-1)
        return uar(labels, pred, max(out.shape[-1], int(labels.max()) + 1)) if name == "uar" else war(labels, pred)
    return None


def violations(precision, *, max_rel_err, top1, metric_drop, budgets, rel_err_other=0.0) -> tuple:
    """Budget lines this artifact misses, each naming the figure and the limit."""
    out = []
    if not np.isfinite(max_rel_err):
        return ("outputs are not finite (NaN or inf)",)
    if precision == "fp32" and max_rel_err > budgets.fp32_max_rel_err:
        out.append(f"max_rel_err {max_rel_err:.3g} > fp32 budget {budgets.fp32_max_rel_err:g}")
    elif precision == "fp16" and max_rel_err > budgets.fp16_max_rel_err:
        out.append(f"max_rel_err {max_rel_err:.3g} > fp16 budget {budgets.fp16_max_rel_err:g}")
    elif precision == "int8":
        if top1 is not None and top1 < budgets.int8_min_top1:
            out.append(f"top1_agreement {top1:.3f} < int8 budget {budgets.int8_min_top1:g}")
        if top1 is None and max_rel_err > budgets.int8_max_rel_err:
            out.append(f"max_rel_err {max_rel_err:.3g} > int8 budget {budgets.int8_max_rel_err:g} (no class output)")
        elif top1 is not None and rel_err_other > budgets.int8_max_rel_err:
            out.append(f"max_rel_err of the non-class outputs {rel_err_other:.3g} > int8 budget "
                       f"{budgets.int8_max_rel_err:g}")
        if metric_drop is not None and metric_drop > budgets.int8_max_metric_drop + 1e-12:
            out.append(f"metric_drop {metric_drop:.4f} > int8 budget {budgets.int8_max_metric_drop:g}")
    return tuple(out)


def run_check(path, *, target, precision, runtime, data, reference, reference_metric, metric_name, budgets,
              threads, repeats, run) -> Check:
    """Run ``path`` with ``run(path, inputs, threads=, repeats=)`` and score it."""
    res = run(path, data.examples, threads=threads, repeats=repeats)
    max_abs, max_rel, top1, rel_other = compare(res.outputs, reference)
    metric = drop = None
    if data.labels is not None and metric_name:
        metric = task_metric(metric_name, res.outputs, data.labels)
        if metric is not None and reference_metric is not None:
            drop = float(reference_metric - metric)
    lat = np.asarray(res.latency_ms, dtype=np.float64)
    return Check(
        artifact=Path(path).name, target=target, precision=precision, runtime=runtime,
        runtime_version=str(res.runtime_version), threads=int(res.threads), size_bytes=Path(path).stat().st_size,
        max_abs_err=float(max_abs), max_rel_err=float(max_rel), top1_agreement=top1, metric_name=metric_name
        if metric is not None else None, metric=metric, reference_metric=reference_metric if metric is not None
        else None, metric_drop=drop,
        latency_median_ms=float(np.median(lat)) if lat.size else float("nan"),
        latency_p95_ms=float(np.percentile(lat, 95)) if lat.size else float("nan"),
        peak_rss_mb=float(res.peak_rss_mb), session_rss_mb=float(getattr(res, "session_rss_mb", 0.0) or 0.0),
        n_examples=len(data.examples),
        violations=violations(precision, max_rel_err=max_rel, top1=top1, metric_drop=drop, budgets=budgets,
                              rel_err_other=rel_other),
        providers=tuple(getattr(res, "providers", ()) or ()),
    )
