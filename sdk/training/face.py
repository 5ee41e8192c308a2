"""Facial expression (``face-expression``): MLP on MediaPipe blendshapes + geometry.

Data (``--data``):

* a **face root** holding several corpora, e.g. ``../shared/data/face`` with
  ``ckplus48/`` and ``fer2013_val/`` inside (layout ``multi``): ``train`` uses
  all of them (this is how the zoo model is built); ``subject-kfold``
  evaluates on the corpus with subject ids (CK+) and ``cv`` on the one without
  (FER2013), the other corpora joining every training fold;
* a **CK+** folder, ``<emotion>/S###_###_########.png`` (layout ``ckplus``;
  subject = ``S###``, sequence = ``S###_###``, frame = the last number);
* a **folder-per-label** corpus (layout ``folder``, alias ``fer2013``):
  ``<emotion>/<image>`` or ``<split>/<emotion>/<image>``.

Folder names map onto :data:`LABELS` (happy -> happiness, sad -> sadness,
angry -> anger, ...). Faces are turned into features with the
``face-blendshapes`` pipeline (cached on disk: MediaPipe runs once per image).

Models: a per-frame MLP (``model.onnx``; standardisation inside, softmax
output) and a temporal GRU over sequences of the same per-frame features
(``temporal.onnx``; input (batch, time, features)), described in the card's
``extra.temporal``.
"""

import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from affectedge.errors import ParameterError

from ._common import (balanced_class_weights, check_protocol, count_parameters, export_onnx, iter_reports,
                      onnx_max_abs_diff, predict, progress_bar, sample_indices, save_card, save_exported_program,
                      shared_argmax, shared_classes, torch_setup)

__all__ = ["DEFAULT_DATA", "LABELS", "MODEL_ID", "PROTOCOLS", "evaluate_model", "evaluate_protocol", "load_corpus",
           "load_features", "train"]

MODEL_ID = "face-expression"
DEFAULT_DATA = "face/ckplus48"
PROTOCOLS = ("subject-kfold", "cv")
LABELS = ("anger", "contempt", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")
_ALIASES = {
    "anger": "anger", "angry": "anger", "contempt": "contempt", "disgust": "disgust", "disgusted": "disgust",
    "fear": "fear", "fearful": "fear", "afraid": "fear", "happy": "happiness", "happiness": "happiness",
    "joy": "happiness", "neutral": "neutral", "calm": "neutral", "sad": "sadness", "sadness": "sadness",
    "surprise": "surprise", "surprised": "surprise",
}
_SPLITS = {"train", "training", "test", "testing", "val", "valid", "validation", "publictest", "privatetest", "dev"}
_IMG_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm"}
_CK_RE = re.compile(r"^(S\d+)_(\d+)_(\d+)$")

PIPELINE_SPEC = {"upscale": 192, "pad": 0.33, "geometry": True}
HIDDEN = (128, 64)
EPOCHS, QUICK_EPOCHS = 60, 30
DROPOUT, WEIGHT_DECAY, NOISE = 0.5, 1e-2, 0.2
ENSEMBLE = 1
TEMPORAL_HIDDEN = 64
LR_ANCHOR_REFERENCE = 0.861  # logistic regression on the 52 blendshapes, CK+, measured elsewhere

TERMS = {
    "ckplus48": ("CK+ (Extended Cohn-Kanade), 48x48 peak frames", "research only, no redistribution outside research"),
    "fer2013_val": ("FER2013 PublicTest split, 48x48", "research use (ICML 2013 challenge data)"),
}


@dataclass(frozen=True)
class Item:
    path: Path
    label: str
    corpus: str
    subject: str = None
    sequence: str = None
    frame: int = 0


# ---------------------------------------------------------------------- corpus
def _label_of(name):
    return _ALIASES.get(name.strip().lower())


def _images(folder):
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in _IMG_EXT)


def _emotion_dirs(folder):
    return [d for d in sorted(folder.iterdir()) if d.is_dir() and _label_of(d.name)]


def _detect(folder):
    if _emotion_dirs(folder):
        files = [p for d in _emotion_dirs(folder) for p in _images(d)]
        ck = sum(bool(_CK_RE.match(p.stem)) for p in files)
        return "ckplus" if files and ck >= 0.9 * len(files) else "folder"
    subs = [d for d in sorted(folder.iterdir()) if d.is_dir() and _emotion_dirs(d)]
    if subs and all(d.name.lower() in _SPLITS for d in subs):
        return "folder"
    if subs:
        return "multi"
    return None


def load_corpus(data, layout=None):
    """Items (path, label, corpus, subject, sequence, frame) of a face corpus and its layout name."""
    data = Path(data)
    if not data.is_dir():
        raise ParameterError(f"face data {str(data)!r} is not a folder; give a CK+ folder, a folder-per-label corpus "
                             "(<emotion>/<image>) or a folder holding several (e.g. ../shared/data/face)")
    layout = {"fer2013": "folder", "fer": "folder", "ck+": "ckplus"}.get(layout, layout) or _detect(data)
    if layout not in ("ckplus", "folder", "multi"):
        found = [d.name for d in sorted(data.iterdir()) if d.is_dir()][:8]
        raise ParameterError(
            f"no face corpus found in {str(data)!r} (subfolders: {found or 'none'}); expected emotion folders "
            f"({', '.join(sorted(set(_ALIASES)))}) holding images, optionally under split or corpus folders"
            if layout is None else f"layout {layout!r} is unknown; use ckplus, fer2013/folder or multi"
        )
    items = []
    if layout == "multi":
        for sub in sorted(data.iterdir()):
            if sub.is_dir() and _detect(sub):
                items += load_corpus(sub)[0]
    else:
        roots = [data] if _emotion_dirs(data) else [d for d in sorted(data.iterdir()) if d.is_dir()]
        for root in roots:
            for d in _emotion_dirs(root):
                for p in _images(d):
                    if layout == "ckplus":
                        m = _CK_RE.match(p.stem)
                        if not m:
                            raise ParameterError(f"{str(p)!r} does not follow the CK+ naming S###_###_########; "
                                                 "use --layout folder for other corpora")
                        items.append(Item(p, _label_of(d.name), data.name, m.group(1), f"{m.group(1)}_{m.group(2)}",
                                          int(m.group(3))))
                    else:
                        items.append(Item(p, _label_of(d.name), data.name))
    if not items:
        raise ParameterError(f"{str(data)!r} holds no images (png/jpg) in its emotion folders")
    return items, layout


def _features(items, progress, cache_dir=None):
    from affectedge.features.face import BlendshapeFeatures

    pipe = BlendshapeFeatures(**PIPELINE_SPEC)
    X, found = pipe.batch([it.path for it in items], progress=progress, cache_dir=cache_dir)
    return pipe, X, found


# ---------------------------------------------------------------------- models
def _mlp_class():
    torch = torch_setup()
    nn = torch.nn

    class FaceMLP(nn.Module):
        """Standardise -> MLP -> softmax. Input (batch, D) raw pipeline features."""

        def __init__(self, d, c, mean, std, mirror, hidden=HIDDEN, dropout=DROPOUT):
            super().__init__()
            self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
            self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))
            self.register_buffer("mirror", torch.as_tensor(mirror, dtype=torch.long))
            layers, k = [], d
            for h in hidden:
                layers += [nn.Linear(k, h), nn.GELU(), nn.Dropout(dropout)]
                k = h
            layers.append(nn.Linear(k, c))
            self.net = nn.Sequential(*layers)

        def logits(self, x):
            return self.net((x - self.mean) / self.std)

        def forward(self, x):
            # average with the mirrored face (left/right features swapped): test-time augmentation
            return 0.5 * (torch.softmax(self.logits(x), dim=-1) + torch.softmax(self.logits(x[:, self.mirror]), dim=-1))

    return FaceMLP


def _gru_class():
    torch = torch_setup()
    nn = torch.nn

    class FaceGRU(nn.Module):
        """Standardise each frame -> GRU -> last state -> softmax. Input (batch, time, D)."""

        def __init__(self, d, c, mean, std, hidden=TEMPORAL_HIDDEN, dropout=DROPOUT):
            super().__init__()
            self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
            self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))
            self.gru = nn.GRU(d, hidden, batch_first=True)
            self.drop = nn.Dropout(dropout)
            self.head = nn.Linear(hidden, c)

        def logits(self, x):
            out, _ = self.gru((x - self.mean) / self.std)
            return self.head(self.drop(out[:, -1]))

        def forward(self, x):
            return torch.softmax(self.logits(x), dim=-1)

    return FaceGRU


def _norm_stats(X):
    flat = X.reshape(-1, X.shape[-1])
    mean = flat.mean(0)
    std = flat.std(0)
    return mean.astype(np.float32), np.where(std > 1e-6, std, 1.0).astype(np.float32)


def _mirror_perm(names):
    """Feature order of the mirrored face: Left<->Right blendshapes, _r<->_l distances."""
    def swap(n):
        if "Left" in n:
            return n.replace("Left", "Right")
        if "Right" in n:
            return n.replace("Right", "Left")
        if n.endswith(("_r", "_l")):
            return n[:-1] + ("l" if n.endswith("_r") else "r")
        return n

    names = list(names)
    return np.array([names.index(swap(n)) for n in names])


def _with_mirror(X, y, perm):
    return np.concatenate([X, X[..., perm]]), np.concatenate([y, y])


def _fit(model, X, y, n_classes, *, epochs, seed, lr=3e-3, wd=WEIGHT_DECAY, batch=64, noise=NOISE):
    torch = torch_setup()
    g = torch.Generator().manual_seed(seed)
    w = torch.from_numpy(balanced_class_weights(y, n_classes, absent=0.0, max_weight=5.0))
    X = torch.as_tensor(X, dtype=torch.float32)
    y = torch.as_tensor(y, dtype=torch.long)
    loss_fn = torch.nn.CrossEntropyLoss(weight=w, label_smoothing=0.05)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)
    steps = epochs * max(1, -(-len(X) // batch))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    std = model.std
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(X), generator=g)
        for i in range(0, len(X), batch):
            idx = perm[i:i + batch]
            xb = X[idx]
            if noise:
                xb = xb + noise * std * torch.randn(xb.shape, generator=g)
            loss = loss_fn(model.logits(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    return model


def _train_mlp(X, y, n_classes, *, seed, quick, perm):
    torch_setup(seed)
    X, y = _with_mirror(X, y, perm)
    mean, std = _norm_stats(X)
    model = _mlp_class()(X.shape[1], n_classes, mean, std, perm)
    return _fit(model, X, y, n_classes, epochs=QUICK_EPOCHS if quick else EPOCHS, seed=seed)


def _train_gru(S, y, n_classes, *, seed, quick, perm):
    torch_setup(seed)
    S, y = _with_mirror(S, y, perm)
    mean, std = _norm_stats(S)
    model = _gru_class()(S.shape[2], n_classes, mean, std)
    return _fit(model, S, y, n_classes, epochs=QUICK_EPOCHS if quick else EPOCHS, seed=seed, batch=32)


def _lr_anchor(Xtr, ytr, Xte):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    clf.fit(Xtr[:, :52], ytr)
    return clf.predict(Xte[:, :52])


# ------------------------------------------------------------------- sequences
def _sequences(items, X, found, idx):
    """(S (n, T, D), seq ids, item index of each sequence's last frame) from items[idx] with sequence ids.

    Frames are ordered by frame number; frames without a face are dropped;
    shorter sequences are front-padded with their first frame (CK+48 sequences
    are 3 frames long).
    """
    groups = {}
    for i in idx:
        it = items[i]
        if it.sequence is not None and found[i]:
            groups.setdefault(it.sequence, []).append(i)
    if not groups:
        return np.zeros((0, 1, X.shape[1]), np.float32), [], []
    T = max(len(v) for v in groups.values())
    S, names, last = [], [], []
    for name in sorted(groups):
        fr = sorted(groups[name], key=lambda i: items[i].frame)
        fr = [fr[0]] * (T - len(fr)) + fr
        S.append(X[fr])
        names.append(name)
        last.append(fr[-1])
    return np.stack(S).astype(np.float32), names, last


# ------------------------------------------------------------------ evaluation
def _report(y_true, y_pred, labels):
    from .metrics import classification_report

    return classification_report(np.asarray(y_true, int), np.asarray(y_pred, int), list(labels))


def _subset_quick(items, seed):
    """A few hundred images: whole CK+ subjects / a stratified sample of the rest."""
    rng = np.random.default_rng(seed)
    subjects = sorted({it.subject for it in items if it.subject})
    keep_s = set(rng.permutation(subjects)[:36]) if subjects else set()
    out = [it for it in items if it.subject in keep_s]
    rest = [it for it in items if not it.subject]
    if rest:
        out += [rest[i] for i in sorted(rng.permutation(len(rest))[:300])]
    return out


def _items(data, layout, quick, seed):
    """Items and layout of ``data``; in a quick run a few hundred of them (:func:`_subset_quick`)."""
    items, layout = load_corpus(data, layout)
    return (_subset_quick(items, seed) if quick else items), layout


def _labelled_features(items, progress):
    """``(pipeline, X, found, labels, y)``: features, face-found mask, the labels present (LABELS order)."""
    pipe, X, found = _features(items, progress)
    labels = [lab for lab in LABELS if any(it.label == lab for it in items)]
    lab_idx = {lab: i for i, lab in enumerate(labels)}
    return pipe, X, found, labels, np.array([lab_idx[it.label] for it in items])


def evaluate_protocol(data, protocol, *, layout=None, seed=0, quick=False, progress=True, out=None):
    """Retrain per fold: ``subject-kfold`` (GroupKFold by CK+ subject, 10 folds) or ``cv`` (stratified 5-fold).

    In a face root (several corpora) the protocol evaluates the corpus it fits
    (subject ids for subject-kfold, none for cv) and the other corpora join
    every training fold. Also reports the logistic-regression anchor on the 52
    blendshapes, detector misses (and accuracy counting them as errors) and,
    for subject-kfold, the temporal GRU on whole CK+ sequences.
    """
    check_protocol(protocol, PROTOCOLS, "face")
    t0 = time.perf_counter()
    items, layout = _items(data, layout, quick, seed)
    is_eval = _evaluated(items, protocol, data)
    pipe, X, found, labels, y = _labelled_features(items, progress)
    ev = np.flatnonzero(is_eval)
    extra = np.flatnonzero(~is_eval & found)
    splits = _splits(protocol, items, ev, y, quick, seed)
    folds = _run_folds(protocol, splits, items, X, found, y, ev, extra, len(labels), _mirror_perm(pipe.names),
                       seed=seed, quick=quick, progress=progress)
    report = _protocol_report(protocol, data, layout, quick, seed, pipe, items, y, labels, ev, extra, found,
                              len(splits), folds)
    report["wall_s"] = round(time.perf_counter() - t0, 1)
    if out is not None:
        _save_protocol_report(report, out, protocol, labels)
    return report


def _evaluated(items, protocol, data):
    """Mask of the items the protocol scores: those with subject ids (subject-kfold) or without (cv)."""
    if protocol == "subject-kfold":
        is_eval = np.array([it.subject is not None for it in items])
        if not is_eval.any():
            raise ParameterError(f"subject-kfold needs subject ids (CK+ layout S###_...); {str(data)!r} has none. "
                                 "Use --protocol cv")
    else:
        is_eval = np.array([it.subject is None for it in items])
        if not is_eval.any():
            is_eval[:] = True
    return is_eval


def _splits(protocol, items, ev, y, quick, seed):
    """(train, test) positions into ``ev``: GroupKFold by subject, or a seeded StratifiedKFold."""
    from sklearn.model_selection import GroupKFold, StratifiedKFold

    if protocol == "subject-kfold":
        groups = np.array([items[i].subject for i in ev])
        k = min(3 if quick else 10, len(set(groups)))
        return list(GroupKFold(n_splits=k).split(ev, groups=groups))
    k = 3 if quick else 5
    return list(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(ev, y[ev]))


def _run_folds(protocol, splits, items, X, found, y, ev, extra, C, perm, *, seed, quick, progress):
    """Retrain the MLP (and, for subject-kfold, the GRU on sequences) and the LR anchor per fold."""
    res = {"pred": np.full(len(items), -1), "pred_lr": np.full(len(items), -1),
           "probs": np.zeros((len(items), C), np.float32), "seq_true": [], "seq_pred": [], "per_fold": []}
    for f, (tr, te) in enumerate(progress_bar(splits, progress, f"{protocol} folds")):
        tr_i = np.concatenate([ev[tr][found[ev[tr]]], extra])
        te_i = ev[te][found[ev[te]]]
        model = _train_mlp(X[tr_i], y[tr_i], C, seed=seed + f, quick=quick, perm=perm)
        res["probs"][te_i] = predict(model, X[te_i])
        res["pred"][te_i] = res["probs"][te_i].argmax(1)
        res["pred_lr"][te_i] = _lr_anchor(X[tr_i], y[tr_i], X[te_i])
        fold = {"fold": f, "n_train": int(len(tr_i)), "n_test": int(len(ev[te])), "missed": int((~found[ev[te]]).sum()),
                "accuracy": float(np.mean(res["pred"][te_i] == y[te_i])) if len(te_i) else None,
                "subjects_overlap": len({items[i].subject for i in tr_i if items[i].subject}
                                        & {items[i].subject for i in ev[te] if items[i].subject})}
        if protocol == "subject-kfold":
            S_tr, _, last_tr = _sequences(items, X, found, ev[tr])
            S_te, _, last_te = _sequences(items, X, found, ev[te])
            if len(S_tr) and len(S_te):
                gru = _train_gru(S_tr, y[last_tr], C, seed=seed + f, quick=quick, perm=perm)
                p = predict(gru, S_te).argmax(1)
                res["seq_true"] += list(y[last_te])
                res["seq_pred"] += list(p)
                fold["temporal_accuracy"] = float(np.mean(p == y[last_te]))
        res["per_fold"].append(fold)
    return res


def _protocol_report(protocol, data, layout, quick, seed, pipe, items, y, labels, ev, extra, found, n_folds, folds):
    pred, pred_lr = folds["pred"], folds["pred_lr"]
    ev_found = ev[found[ev]]
    ours = _report(y[ev_found], pred[ev_found], labels)
    anchor = _report(y[ev_found], pred_lr[ev_found], labels)
    n_missed = int((~found[ev]).sum())
    missed_by_class = {lab: int(sum(1 for i in ev if not found[i] and items[i].label == lab)) for lab in labels}
    report = {
        "task": "face", "model": MODEL_ID, "protocol": protocol, "data": str(data), "layout": layout,
        "evaluated_on": sorted({items[i].corpus for i in ev}),
        "extra_training_corpora": sorted({items[i].corpus for i in extra}),
        "folds": n_folds, "quick": bool(quick), "seed": seed,
        "features": {"pipeline": pipe.name, "spec": pipe.spec, "dim": len(pipe.names)},
        "n_images": int(len(ev)), "n_detected": int(len(ev_found)), "detector_missed": n_missed,
        "detector_missed_by_class": missed_by_class,
        "accuracy": ours["accuracy"], "macro_f1": ours["macro_f1"], "uar": ours["uar"],
        "accuracy_misses_as_errors": float(np.sum(pred[ev_found] == y[ev_found]) / max(1, len(ev))),
        "labels": labels, "confusion": ours["confusion"], "per_class_recall": ours["per_class_recall"],
        "anchor_logreg_52_blendshapes": {
            "accuracy": anchor["accuracy"], "macro_f1": anchor["macro_f1"], "uar": anchor["uar"],
            "accuracy_misses_as_errors": float(np.sum(pred_lr[ev_found] == y[ev_found]) / max(1, len(ev))),
            "reference_ckplus_accuracy_elsewhere": LR_ANCHOR_REFERENCE,
            "confusion_matrix": anchor["confusion"],
        },
        "per_fold": folds["per_fold"],
    }
    if folds["seq_true"]:
        report["temporal_gru_sequences"] = _temporal_report(folds, items, y, ev_found, labels)
    return report


def _temporal_report(folds, items, y, ev_found, labels):
    """The GRU on whole sequences, beside the per-frame MLP on the same sequences (mean of its probabilities)."""
    seqs = {}
    for i in ev_found:
        if items[i].sequence:
            seqs.setdefault(items[i].sequence, []).append(i)
    fr_true = [y[v[0]] for v in seqs.values()]
    fr_pred = [folds["probs"][v].mean(0).argmax() for v in seqs.values()]
    tr_rep = _report(folds["seq_true"], folds["seq_pred"], labels)
    return {
        "n_sequences": len(folds["seq_true"]), "frames_per_sequence": int(max(len(v) for v in seqs.values())),
        "accuracy": tr_rep["accuracy"], "macro_f1": tr_rep["macro_f1"], "uar": tr_rep["uar"],
        "per_frame_mlp_mean_probs_accuracy": float(np.mean(np.array(fr_pred) == np.array(fr_true))),
        "per_frame_mlp_mean_probs_macro_f1": _report(fr_true, fr_pred, labels)["macro_f1"],
        "confusion_matrix": tr_rep["confusion"],
    }


def _save_protocol_report(report, out, name, labels):
    """``<name>.json`` / ``.png``, the LR anchor's and (subject-kfold) the GRU's confusion matrices."""
    from .metrics import plot_confusion, save_report

    anchor = report["anchor_logreg_52_blendshapes"]
    save_report(report, out, name=name, title=f"face-expression {name} on {'+'.join(report['evaluated_on'])} "
                                              f"(acc {report['accuracy']:.3f}, macro-F1 {report['macro_f1']:.3f})")
    if "temporal_gru_sequences" in report:
        plot_confusion(np.array(report["temporal_gru_sequences"]["confusion_matrix"]), labels,
                       Path(out) / f"{name}-temporal.png", title="temporal GRU, CK+ sequences, subject-kfold")
    plot_confusion(np.array(anchor["confusion_matrix"]), labels, Path(out) / f"{name}-anchor-logreg.png",
                   title=f"LR anchor (52 blendshapes), acc {anchor['accuracy']:.3f}")


# ------------------------------------------------------------------- training
def _export(model, example, path, dynamic):
    """ONNX of the MLP (``frame``: input (batch, D)) or the GRU (``sequence``: (batch, time, D)); max |diff|."""
    from torch.export import Dim

    if dynamic == "frame":
        shapes, name = {"x": {0: Dim("batch", min=1)}}, "features"
    else:
        shapes, name = {"x": {0: Dim("batch", min=1), 1: Dim("time", min=1)}}, "frames"
    # shapes are dynamic: export on a few examples, check on all of them
    export_onnx(model, example[:8], path, input_names=[name], output_names=["probabilities"], dynamic_shapes=shapes)
    return onnx_max_abs_diff(model, path, example)["probabilities"]


def load_features(data, *, layout=None, limit=None, seed=0):
    """Blendshape(+geometry) inputs of the faces found (n, 72) float32, labels (n,), label names."""
    items, layout = load_corpus(data, layout)
    labels = tuple(lab for lab in LABELS if any(it.label == lab for it in items))  # as train() orders them
    keep = sample_indices(len(items), limit, seed)
    if keep is not None:
        items = [items[i] for i in keep]
    _, X, found = _features(items, progress=False)
    y = np.array([labels.index(it.label) for it in items])
    idx = np.flatnonzero(found)
    return X[idx].astype(np.float32), y[idx], labels


def train(data, out, *, layout=None, seed=0, quick=False, progress=True):
    """Train the per-frame MLP and the temporal GRU on all of ``data``; export ONNX and write the card."""
    from affectedge.models import sha256_file

    t0 = time.perf_counter()
    items, layout = _items(data, layout, quick, seed)
    pipe, X, found, labels, y = _labelled_features(items, progress)
    idx = np.flatnonzero(found)
    if len(set(y[idx])) < 2:
        raise ParameterError(f"{str(data)!r} has faces of fewer than two emotions; nothing to learn")
    C = len(labels)
    perm = _mirror_perm(pipe.names)
    model = _train_mlp(X[idx], y[idx], C, seed=seed, quick=quick, perm=perm)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / "model.onnx"
    frame_err = _export(model, X[idx], onnx_path, "frame")
    save_exported_program(model, X[idx][:2], out)
    train_acc = float(np.mean(predict(model, X[idx]).argmax(1) == y[idx]))

    S_all, y_all, n_seq, T, singles = _temporal_training_set(items, X, found, y, idx)
    gru = _train_gru(S_all, y_all, C, seed=seed, quick=quick, perm=perm)
    temporal_path = out / "temporal.onnx"
    seq_err = _export(gru, S_all, temporal_path, "sequence")
    # also check a different length than seen in export
    seq_err = max(seq_err, _check_len(gru, S_all[:8, :1], temporal_path))

    counts = {lab: int(np.sum(y[idx] == i)) for i, lab in enumerate(labels)}
    corpora = sorted({it.corpus for it in items})
    missed = {c: int(sum(1 for i, it in enumerate(items) if it.corpus == c and not found[i])) for c in corpora}
    evaluation = _evaluation_summary(data, out)
    return save_card(
        out,
        id=MODEL_ID,
        task="facial expression recognition (per frame)",
        version="1",
        summary=("Facial expression from MediaPipe Face Landmarker blendshapes (52) and 20 landmark distances: "
                 f"a {len(HIDDEN)}-hidden-layer MLP (per frame, model.onnx) and a GRU over frame sequences "
                 "(temporal.onnx, see extra.temporal)."),
        labels=tuple(labels),
        outputs={"probabilities": f"softmax over the {C} labels, (batch, {C})"},
        input={"pipeline": pipe.name, "spec": pipe.spec, "shape": [len(pipe.names)], "dtype": "float32",
               "feature_names": list(pipe.names)},
        parameters=count_parameters(model),
        file=onnx_path.name,
        training_data=tuple(
            {"name": c, "description": TERMS.get(c, (c, ""))[0] + f", {sum(1 for it in items if it.corpus == c)} "
             f"images ({missed[c]} without a detected face).", "terms": TERMS.get(c, ("", "see the corpus"))[1]}
            for c in corpora),
        evaluation=evaluation,
        limits=_limits(items, missed, labels, counts),
        extra={
            "data": str(data), "layout": layout, "quick": bool(quick), "seed": seed,
            "class_counts": counts, "detector_missed": missed, "train_accuracy": train_acc,
            "architecture": {"hidden": list(HIDDEN), "activation": "GELU", "dropout": DROPOUT,
                             "weight_decay": WEIGHT_DECAY, "input_noise_std": NOISE, "epochs": EPOCHS,
                             "standardisation": "inside the graph",
                             "mirror": "trained on mirrored copies; output averages the face and its mirror"},
            "onnx_max_abs_diff_vs_torch": frame_err,
            "face_landmarker": {"sha256": pipe.spec["model_sha256"], "url": _model_url(),
                                "terms": "Apache-2.0 (Google)"},
            "temporal": {
                "file": temporal_path.name, "sha256": sha256_file(temporal_path),
                "file_size_bytes": temporal_path.stat().st_size, "parameters": count_parameters(gru),
                "input": {"name": "frames", "shape": [None, None, len(pipe.names)], "dtype": "float32",
                          "description": "(batch, time, features): consecutive frames of one face, oldest first, "
                                         "features from the same pipeline/spec as model.onnx"},
                "outputs": {"probabilities": f"softmax over the {C} labels after the last frame"},
                "architecture": {"gru_hidden": TEMPORAL_HIDDEN, "layers": 1},
                "trained_on": f"{n_seq} CK+ sequences of {T} frames + {len(singles)} single images repeated {T}x",
                "onnx_max_abs_diff_vs_torch": seq_err,
                "evaluation": evaluation.get("temporal", {}),
            },
            "train_wall_s": round(time.perf_counter() - t0, 1),
        },
    )


def _temporal_training_set(items, X, found, y, idx):
    """CK+ sequences + single images as one-frame sequences padded to the same length.

    Returns ``(S, y, number of sequences, frames per sequence, single-image item indices)``.
    """
    S, _, last = _sequences(items, X, found, np.arange(len(items)))
    T = S.shape[1] if len(S) else 1
    singles = [i for i in idx if items[i].sequence is None]
    parts, ys = [], []
    if len(S):
        parts.append(S)
        ys.append(y[last])
    if singles:
        parts.append(np.repeat(X[singles][:, None, :], T, axis=1))
        ys.append(y[singles])
    return np.concatenate(parts), np.concatenate(ys), len(S), T, singles


def _limits(items, missed, labels, counts):
    limits = [
        "Research weights: trained on research-only data (CK+, FER2013); not for commercial use.",
        "Needs one roughly frontal face; MediaPipe missed %s of the training images (48x48 crops)." %
        ", ".join(f"{v} of {sum(1 for it in items if it.corpus == c)} in {c}" for c, v in missed.items()),
        "Posed (CK+) and web (FER2013) expressions; spontaneous, subtle or mixed expressions are harder.",
        "The pipeline raises NoFaceError when no face is found; use pipeline.try_call for None instead.",
    ]
    if "contempt" in labels:
        limits.append("contempt appears only in CK+ (%d images); its estimate is the least reliable." %
                      counts.get("contempt", 0))
    if "neutral" in labels:
        limits.append("neutral appears only in FER2013 (CK+ has no neutral peak frames).")
    return tuple(limits)


def _check_len(model, S, path):
    return onnx_max_abs_diff(model, path, S)["probabilities"]


def _model_url():
    from affectedge.features.face import MODEL_URL

    return MODEL_URL


def _evaluation_summary(data, out):
    """Figures for the card from reports/face/*.json when they exist (written by evaluate_protocol)."""
    summary, table = {}, []
    for p, r in iter_reports("face", keep=lambda p: p.stem in PROTOCOLS):
        a = r.get("anchor_logreg_52_blendshapes", {})
        table.append({"protocol": p.stem, "data": "+".join(r.get("evaluated_on", [])),
                      "extra training": "+".join(r.get("extra_training_corpora", [])) or "-",
                      "accuracy": r.get("accuracy"), "macro-F1": r.get("macro_f1"),
                      "acc. misses as errors": r.get("accuracy_misses_as_errors"),
                      "missed faces": f"{r.get('detector_missed')}/{r.get('n_images')}",
                      "LR anchor acc.": a.get("accuracy"), "LR anchor F1": a.get("macro_f1")})
        if "temporal_gru_sequences" in r and not r.get("extra_training_corpora"):
            t = r["temporal_gru_sequences"]
            summary["temporal"] = {k: t[k] for k in t if k != "confusion_matrix"}
    if table:
        summary = {"protocol": "retrained per fold; see reports/face", "table": table, **summary}
    else:
        summary = {"protocol": "not evaluated yet: run 'affectedge evaluate --task face --protocol subject-kfold' "
                               "and '--protocol cv', then retrain to copy the figures here"}
    return summary


# -------------------------------------------------------------- scoring a model
def evaluate_model(model, data, *, layout=None, progress=True, out=None):
    """Score a trained model on a labelled corpus; only classes both share count (argmax over those)."""
    items, layout = load_corpus(data, layout)
    labels = list(model.labels)
    shared = shared_classes(labels, {it.label for it in items},
                            f"{str(data)!r} shares no class with model {model.card.id!r} ({', '.join(labels)})")
    dropped = {}
    for it in items:
        if it.label not in shared:
            dropped[it.label] = dropped.get(it.label, 0) + 1
    items = [it for it in items if it.label in shared]
    pipe = model.pipeline
    X, found = pipe.batch([it.path for it in items], progress=progress)
    idx = np.flatnonzero(found)
    y = np.array([shared.index(it.label) for it in items])
    pred = np.full(len(items), -1)
    if len(idx):
        pred[idx] = shared_argmax(model.predict(X[idx])[model.output_names[0]], labels, shared)
    rep = _report(y[idx], pred[idx], shared)
    report = {"task": "face", "model": model.card.id, "data": str(data), "layout": layout,
              "shared_labels": shared, "ignored_model_labels": [lab for lab in labels if lab not in shared],
              "ignored_data_images": dropped,
              "n_images": len(items), "detector_missed": int((~found).sum()),
              "accuracy_misses_as_errors": float(np.sum(pred[idx] == y[idx]) / max(1, len(items))), **rep}
    if out is not None:
        from .metrics import save_report

        save_report(report, out, name="evaluate-model", title=f"{model.card.id} on {Path(data).name}")
    return report
