"""Classification metrics and evaluation reports (JSON + confusion-matrix PNG).

The plain metrics (confusion, UAR, WAR, macro-F1) live in :mod:`affectedge._metrics`, which the
exporters share without importing the training package; they are re-exported here.
"""

import json
from pathlib import Path

import numpy as np

from affectedge._metrics import confusion, macro_f1, uar, war

__all__ = ["classification_report", "save_report", "uar", "war"]


def classification_report(y_true, y_pred, labels):
    """UAR, WAR (accuracy), macro-F1, per-class recall and the confusion matrix."""
    n = len(labels)
    cm = confusion(y_true, y_pred, n)
    support = cm.sum(axis=1)
    recall = {labels[i]: (float(cm[i, i] / support[i]) if support[i] else None) for i in range(n)}
    return {
        "n": int(len(y_true)),
        "uar": uar(y_true, y_pred, n),
        "war": war(y_true, y_pred),
        "accuracy": war(y_true, y_pred),
        "macro_f1": macro_f1(y_true, y_pred, n),
        "per_class_recall": recall,
        "labels": list(labels),
        "confusion": cm.tolist(),
    }


def save_report(report, out, name="report", *, title=None, confusion_key="confusion"):
    """Write ``name``.json and, when the report has a confusion matrix, ``name``.png."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(report, indent=2, default=_default) + "\n")
    cm = _find(report, confusion_key)
    if cm is not None:
        labels = _find(report, "labels") or [str(i) for i in range(len(cm))]
        plot_confusion(np.asarray(cm), labels, out / f"{name}.png", title=title or name)
    return out / f"{name}.json"


def plot_confusion(cm, labels, path, *, title=""):
    from affectedge.report import style

    plt = style.pyplot("the confusion-matrix plot")
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape, float), where=rows > 0)
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * len(labels), 0.8 + 0.7 * len(labels)), dpi=style.DPI)
    ax.imshow(norm, cmap=style.CMAP["confusion"], vmin=0, vmax=1)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, f"{cm[i, j]}\n{norm[i, j]:.2f}", ha="center", va="center", fontsize=style.FONT["annotation"],
                    color="white" if norm[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=style.FONT["tick"])
    ax.set_yticks(range(len(labels)), labels, fontsize=style.FONT["tick"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=style.FONT["title"])
    style.save(fig, path)


def _find(d, key):
    if isinstance(d, dict):
        if key in d:
            return d[key]
        for v in d.values():
            r = _find(v, key)
            if r is not None:
                return r
    return None


def _default(o):
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    return str(o)
