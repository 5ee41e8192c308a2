"""Classification metrics (NumPy only), shared by :mod:`affectedge.training` and :mod:`affectedge.exporters`.

Here rather than in the training package so that the exporters can score
artifacts without importing it; :mod:`affectedge.training.metrics` re-exports
them next to its reports.
"""

import numpy as np

__all__ = ["confusion", "macro_f1", "uar", "war"]


def confusion(y_true, y_pred, n_classes):
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return cm


def uar(y_true, y_pred, n_classes=None):
    """Unweighted average recall (macro recall) over the classes present in y_true."""
    n = n_classes or int(max(np.max(y_true), np.max(y_pred)) + 1)
    cm = confusion(y_true, y_pred, n)
    support = cm.sum(axis=1)
    present = support > 0
    return float(np.mean(np.diag(cm)[present] / support[present]))


def war(y_true, y_pred):
    """Weighted average recall = accuracy."""
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


def macro_f1(y_true, y_pred, n_classes):
    cm = confusion(y_true, y_pred, n_classes)
    tp = np.diag(cm).astype(float)
    prec = np.divide(tp, cm.sum(axis=0), out=np.zeros_like(tp), where=cm.sum(axis=0) > 0)
    rec = np.divide(tp, cm.sum(axis=1), out=np.zeros_like(tp), where=cm.sum(axis=1) > 0)
    f1 = np.divide(2 * prec * rec, prec + rec, out=np.zeros_like(tp), where=(prec + rec) > 0)
    present = cm.sum(axis=1) > 0
    return float(np.mean(f1[present]))
