"""Facial expression (``face-expression``): MLP on MediaPipe blendshapes + geometry.

Data (``--data``):

* a **face root** holding several corpora, e.g. ``../shared/data/face`` with
  ``ckplus48/``, ``fer2013_train/`` and ``fer2013_val/`` inside (layout
  ``multi``): ``train`` uses every training corpus (this is how the zoo model
  is built); folders named ``*val*`` / ``*test*`` (FER2013 PublicTest) are
  evaluation-only and never trained on. ``subject-kfold`` evaluates on the
  corpus with subject ids (CK+), ``cv`` on the others, ``heldout`` on the
  evaluation-only ones; the other training corpora join every training fold.
  With ``fer2013_train`` in the root, a stratified 10 % of it is the internal
  validation set (:func:`affectedge.training.face_pixels.internal_split`): kept
  out of training, it chooses the fusion weight;
* a **CK+** folder, ``<emotion>/S###_###_########.png`` (layout ``ckplus``;
  subject = ``S###``, sequence = ``S###_###``, frame = the last number);
* a **folder-per-label** corpus (layout ``folder``, alias ``fer2013``):
  ``<emotion>/<image>`` or ``<split>/<emotion>/<image>``.

Folder names map onto :data:`LABELS`, the seven basic classes (happy ->
happiness, sad -> sadness, angry -> anger, ...); contempt images are left out
(and counted). Faces are turned into features with the ``face-blendshapes``
pipeline (cached on disk: MediaPipe runs once per image).

Model: a per-frame MLP (``model.onnx``; standardisation inside, softmax
output). In a face root the protocols also score the pixel CNN
(:mod:`.face_pixels`, zoo ``face-expression-pixels``) and the fusion of the
two, beside the logistic-regression anchor on the 52 blendshapes. The temporal
GRU of version 1 is gone: averaging the frames' probabilities scored as well
(CK+ sequences: 0.905 against the GRU's 0.896); the runtime averages frames.
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
DEFAULT_DATA = "face"
PROTOCOLS = ("subject-kfold", "cv", "heldout")
# the seven basic classes; contempt (54 CK+ images, none in FER2013) is left out
LABELS = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")
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
    # large sets (FER2013) take bigger batches: about 100 steps an epoch
    return _fit(model, X, y, n_classes, epochs=QUICK_EPOCHS if quick else EPOCHS, seed=seed,
                batch=max(64, len(X) // 100))


def _lr_anchor(Xtr, ytr, Xte):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    clf.fit(Xtr[:, :52], ytr)
    return clf.predict(Xte[:, :52])


# ------------------------------------------------------------------ evaluation
def _report(y_true, y_pred, labels):
    from .metrics import classification_report

    return classification_report(np.asarray(y_true, int), np.asarray(y_pred, int), list(labels))


def _subset_quick(items, seed):
    """A few hundred images: whole CK+ subjects / a stratified sample of the rest of each corpus."""
    rng = np.random.default_rng(seed)
    subjects = sorted({it.subject for it in items if it.subject})
    keep_s = set(rng.permutation(subjects)[:36]) if subjects else set()
    out = [it for it in items if it.subject in keep_s]
    for corpus in sorted({it.corpus for it in items if not it.subject}):
        rest = [it for it in items if not it.subject and it.corpus == corpus]
        out += [rest[i] for i in sorted(rng.permutation(len(rest))[:300])]
    return out


def _eval_only(corpus):
    """Corpora kept for evaluation (FER2013 PublicTest, any *val* / *test* folder): never trained on."""
    c = corpus.lower()
    return "val" in c or "test" in c


def _items(data, layout, quick, seed):
    """Items of ``data`` with a label of :data:`LABELS` (contempt dropped), layout, dropped counts."""
    items, layout = load_corpus(data, layout)
    dropped = {}
    for it in items:
        if it.label not in LABELS:
            dropped[it.label] = dropped.get(it.label, 0) + 1
    items = [it for it in items if it.label in LABELS]
    return (_subset_quick(items, seed) if quick else items), layout, dropped


def _labelled_features(items, progress):
    """``(pipeline, X, found, labels, y)``: features, face-found mask, the labels present (LABELS order)."""
    pipe, X, found = _features(items, progress)
    labels = [lab for lab in LABELS if any(it.label == lab for it in items)]
    lab_idx = {lab: i for i, lab in enumerate(labels)}
    return pipe, X, found, labels, np.array([lab_idx[it.label] for it in items])


def _pixel_context(data, layout, items, y, labels, *, seed, quick, progress):
    """The pixel CNN's side of a face root holding ``fer2013_train`` (None elsewhere).

    ``base``: the cached FER2013-only CNN; ``crops`` (n, 1, 48, 48) aligned on
    the items (NaN where neither a face nor the fallback gives one);
    ``usable`` / ``fallback`` masks; ``replay`` (X, y): its FER2013 training
    crops; ``internal``: item indices of the internal-validation images (kept out
    of every training set here, used to choose the fusion weight).
    """
    from . import face_pixels as FP

    root = Path(data)
    if layout != "multi" or not (root / "fer2013_train").is_dir() or tuple(labels) != FP.LABELS:
        return None
    base, (f_items, f_X, f_found, f_fb, f_y), tr, va = FP.fer_base(root, seed=seed, quick=quick, progress=progress)
    pos = {it.path: i for i, it in enumerate(items)}
    crops = np.full((len(items), 1, 48, 48), np.nan, np.float32)
    usable = np.zeros(len(items), bool)
    fallback = np.zeros(len(items), bool)
    for src_items, X, found, fb in [(f_items, f_X, f_found, f_fb)] + [
            FP.corpus_arrays(root / c, progress=progress)[:4] for c in sorted({it.corpus for it in items})
            if c != "fer2013_train"]:
        for j, it in enumerate(src_items):
            i = pos.get(it.path)
            if i is not None and (found[j] or fb[j]):
                crops[i], usable[i], fallback[i] = X[j], True, bool(fb[j] and not found[j])
    internal = np.array(sorted(pos[f_items[j].path] for j in va if f_items[j].path in pos), int)
    return {"base": base, "crops": crops, "usable": usable, "fallback": fallback,
            "replay": (f_X[tr], f_y[tr]), "internal": internal, "base_train_images": int(len(tr))}


def fusion_weight(p_pix, p_bs, y):
    """Weight of the pixel model in w * p_pixels + (1 - w) * p_blendshapes: best accuracy on (p_pix, p_bs, y)."""
    grid = np.round(np.linspace(0, 1, 21), 2)
    acc = [float(np.mean((w * p_pix + (1 - w) * p_bs).argmax(1) == y)) for w in grid]
    return float(grid[int(np.argmax(acc))]), dict(zip(map(float, grid), acc))


def evaluate_protocol(data, protocol, *, layout=None, seed=0, quick=False, progress=True, out=None):
    """Retrain per fold and score: ``subject-kfold`` (GroupKFold by CK+ subject, 10 folds), ``cv``
    (stratified 5-fold) or ``heldout`` (train on every training corpus, score the evaluation-only ones).

    In a face root (several corpora) the protocol evaluates the corpus it fits
    (subject ids for subject-kfold, none for cv, FER2013 PublicTest and other
    ``*val*`` / ``*test*`` folders for heldout); the other training corpora join
    every training fold, and evaluation-only corpora are never trained on.
    Scores the blendshape MLP, the logistic-regression anchor on the 52
    blendshapes and, in a face root with ``fer2013_train``, the pixel CNN
    (:mod:`.face_pixels`) and the fusion of the two, all on the same images:
    accuracy over every image (a detector miss is an error unless the pixel
    fallback classified it) and over the detected faces.
    """
    check_protocol(protocol, PROTOCOLS, "face")
    t0 = time.perf_counter()
    items, layout, dropped = _items(data, layout, quick, seed)
    is_eval = _evaluated(items, protocol, data)
    pipe, X, found, labels, y = _labelled_features(items, progress)
    px = _pixel_context(data, layout, items, y, labels, seed=seed, quick=quick, progress=progress)
    ev = np.flatnonzero(is_eval)
    trainable = np.array([not _eval_only(it.corpus) for it in items])
    if px is not None:
        trainable[px["internal"]] = False
    extra = np.flatnonzero(~is_eval & found & trainable)
    splits = _splits(protocol, items, ev, y, quick, seed)
    folds = _run_folds(protocol, splits, items, X, found, y, ev, extra, len(labels), _mirror_perm(pipe.names),
                       px, seed=seed, quick=quick, progress=progress)
    report = _protocol_report(protocol, data, layout, quick, seed, pipe, items, y, labels, ev, extra, found,
                              len(splits), folds, px, dropped)
    report["wall_s"] = round(time.perf_counter() - t0, 1)
    if out is not None:
        _save_protocol_report(report, out, protocol, labels)
    return report


def _evaluated(items, protocol, data):
    """Mask of the items the protocol scores."""
    if protocol == "subject-kfold":
        is_eval = np.array([it.subject is not None for it in items])
        if not is_eval.any():
            raise ParameterError(f"subject-kfold needs subject ids (CK+ layout S###_...); {str(data)!r} has none. "
                                 "Use --protocol cv")
    elif protocol == "heldout":
        is_eval = np.array([_eval_only(it.corpus) for it in items])
        if not is_eval.any() or is_eval.all():
            raise ParameterError(f"heldout needs a face root with training corpora and an evaluation-only one (a "
                                 f"folder named *val* or *test*, e.g. fer2013_val); {str(data)!r} has "
                                 f"{sorted({it.corpus for it in items})}")
    else:
        is_eval = np.array([it.subject is None and not _eval_only(it.corpus) for it in items])
        if not is_eval.any():
            is_eval[:] = True
    return is_eval


def _splits(protocol, items, ev, y, quick, seed):
    """(train, test) positions into ``ev``: GroupKFold by subject, a seeded StratifiedKFold, or all (heldout)."""
    from sklearn.model_selection import GroupKFold, StratifiedKFold

    if protocol == "subject-kfold":
        groups = np.array([items[i].subject for i in ev])
        k = min(3 if quick else 10, len(set(groups)))
        return list(GroupKFold(n_splits=k).split(ev, groups=groups))
    if protocol == "heldout":
        return [(np.zeros(0, int), np.arange(len(ev)))]
    k = 3 if quick else 5
    return list(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(ev, y[ev]))


def _run_folds(protocol, splits, items, X, found, y, ev, extra, C, perm, px, *, seed, quick, progress):
    """Retrain the MLP, the LR anchor and (face root) fine-tune the pixel CNN per fold; fuse."""
    n = len(items)
    res = {"pred_lr": np.full(n, -1), "probs": np.full((n, C), np.nan, np.float32), "per_fold": [],
           "probs_pix": np.full((n, C), np.nan, np.float32), "fused": np.full((n, C), np.nan, np.float32),
           "weights": []}
    for f, (tr, te) in enumerate(progress_bar(splits, progress, f"{protocol} folds")):
        tr_i = np.concatenate([ev[tr][found[ev[tr]]], extra]).astype(int)
        te_all = ev[te]
        te_i = te_all[found[te_all]]
        model = _train_mlp(X[tr_i], y[tr_i], C, seed=seed + f, quick=quick, perm=perm)
        res["probs"][te_i] = predict(model, X[te_i])
        res["pred_lr"][te_i] = _lr_anchor(X[tr_i], y[tr_i], X[te_i])
        fold = {"fold": f, "n_train": int(len(tr_i)), "n_test": int(len(te_all)),
                "missed": int((~found[te_all]).sum()),
                "subjects_overlap": len({items[i].subject for i in tr_i if items[i].subject}
                                        & {items[i].subject for i in te_all if items[i].subject})}
        if px is not None:
            from . import face_pixels as FP

            ck = np.array([i for i in np.concatenate([ev[tr], extra]).astype(int)
                           if items[i].corpus != "fer2013_train" and px["usable"][i]], int)
            cnn = FP.finetune(px["base"], px["crops"][ck], y[ck], *px["replay"], seed=seed + f,
                              epochs=1 if quick else FP.FINETUNE_EPOCHS) if len(ck) else px["base"]
            te_px = te_all[px["usable"][te_all]]
            res["probs_pix"][te_px] = FP.probs(cnn, px["crops"][te_px])
            iv = px["internal"][found[px["internal"]]]
            w, _ = fusion_weight(FP.probs(cnn, px["crops"][iv]), predict(model, X[iv]), y[iv])
            res["weights"].append(w)
            fold["fusion_weight"] = w
            fold["n_finetune_images"] = int(len(ck))
            res["fused"][te_px] = res["probs_pix"][te_px]
            res["fused"][te_i] = w * res["probs_pix"][te_i] + (1 - w) * res["probs"][te_i]
        res["per_fold"].append(fold)
    return res


def _scores(pred, y, ev, found, labels):
    """Accuracy over all of ``ev`` (no prediction = error), and accuracy / F1 / UAR on the detected faces."""
    ok = pred[ev] >= 0
    det = ev[found[ev]]
    rep = _report(y[det], np.where(pred[det] >= 0, pred[det], (y[det] + 1) % len(labels)), labels)
    return {"accuracy_all_images": float(np.sum(pred[ev] == y[ev]) / max(1, len(ev))),
            "accuracy_detected_faces": rep["accuracy"], "macro_f1_detected_faces": rep["macro_f1"],
            "uar_detected_faces": rep["uar"], "classified": int(ok.sum()), "confusion_detected": rep["confusion"]}


def _argmax(p):
    out = np.full(len(p), -1)
    ok = np.all(np.isfinite(p), axis=1)
    out[ok] = p[ok].argmax(1)
    return out


def _protocol_report(protocol, data, layout, quick, seed, pipe, items, y, labels, ev, extra, found, n_folds, folds,
                     px, dropped):
    pred = _argmax(folds["probs"])
    ev_found = ev[found[ev]]
    ours = _report(y[ev_found], pred[ev_found], labels)
    n_missed = int((~found[ev]).sum())
    missed_by_class = {lab: int(sum(1 for i in ev if not found[i] and items[i].label == lab)) for lab in labels}
    systems = {"blendshapes": _scores(pred, y, ev, found, labels),
               "anchor_logreg_52_blendshapes": _scores(folds["pred_lr"], y, ev, found, labels)}
    report = {
        "task": "face", "model": MODEL_ID, "protocol": protocol, "data": str(data), "layout": layout,
        "evaluated_on": sorted({items[i].corpus for i in ev}),
        "extra_training_corpora": sorted({items[i].corpus for i in extra}),
        "ignored_images": dropped, "folds": n_folds, "quick": bool(quick), "seed": seed,
        "features": {"pipeline": pipe.name, "spec": pipe.spec, "dim": len(pipe.names)},
        "n_images": int(len(ev)), "n_detected": int(len(ev_found)), "detector_missed": n_missed,
        "detector_missed_by_class": missed_by_class,
        "accuracy": ours["accuracy"], "macro_f1": ours["macro_f1"], "uar": ours["uar"],
        "accuracy_misses_as_errors": systems["blendshapes"]["accuracy_all_images"],
        "labels": labels, "confusion": ours["confusion"], "per_class_recall": ours["per_class_recall"],
        "systems": systems,
        "anchor_logreg_52_blendshapes": {
            "accuracy": systems["anchor_logreg_52_blendshapes"]["accuracy_detected_faces"],
            "macro_f1": systems["anchor_logreg_52_blendshapes"]["macro_f1_detected_faces"],
            "accuracy_misses_as_errors": systems["anchor_logreg_52_blendshapes"]["accuracy_all_images"],
            "confusion_matrix": systems["anchor_logreg_52_blendshapes"]["confusion_detected"],
        },
        "per_fold": folds["per_fold"],
    }
    if px is not None:
        pp, pf = _argmax(folds["probs_pix"]), _argmax(folds["fused"])
        systems["pixels"] = _scores(pp, y, ev, found, labels)
        systems["fused"] = _scores(pf, y, ev, found, labels)
        fb = ev[px["fallback"][ev]]
        report["pixel_fallback"] = {
            "images": int(len(fb)), "share_of_images": float(len(fb) / max(1, len(ev))),
            "accuracy_on_fallback_images": float(np.mean(pp[fb] == y[fb])) if len(fb) else None,
            "accuracy_all_images_without_fallback": float(np.sum((pf[ev] == y[ev]) & found[ev]) / max(1, len(ev))),
            "rule": "no face found and the picture is a face crop (<= 128 px, about square): the whole picture",
        }
        report["fusion"] = {"rule": "w * p_pixels + (1 - w) * p_blendshapes where a face is found; p_pixels on a "
                                    "fallback; w chosen per fold on the FER2013 internal validation images",
                            "weights": folds["weights"]}
        report["pixel_base"] = {"trained_on": f"{px['base_train_images']} FER2013 training images (internal "
                                              f"validation {len(px['internal'])} held out)"}
    seqs = {}
    for i in ev:
        if items[i].sequence:
            seqs.setdefault(items[i].sequence, []).append(i)
    if seqs:
        key = "fused" if px is not None else "probs"
        sp = [np.nanmean(folds[key][v], axis=0) for v in seqs.values()]
        ok = [np.all(np.isfinite(p)) for p in sp]
        report["sequences_frame_average"] = {
            "system": "fused" if px is not None else "blendshapes", "n_sequences": len(seqs),
            "frames_per_sequence": int(max(len(v) for v in seqs.values())),
            "accuracy": float(np.mean([o and p.argmax() == y[v[0]] for p, o, v in zip(sp, ok, seqs.values())])),
            "note": "mean of the per-frame probabilities over each CK+ sequence (the temporal GRU is gone: on "
                    "the previous label set it scored 0.896 against 0.905 for this frame average)",
        }
    return report


def _save_protocol_report(report, out, name, labels):
    """``<name>.json`` / ``.png`` and the confusion matrices of every system."""
    from .metrics import plot_confusion, save_report

    s = report["systems"]
    head = s.get("fused", s["blendshapes"])
    save_report(report, out, name=name, title=f"face-expression {name} on {'+'.join(report['evaluated_on'])} "
                                              f"(blendshapes acc {report['accuracy']:.3f})")
    for k, v in s.items():
        tag = {"anchor_logreg_52_blendshapes": "anchor-logreg"}.get(k, k)
        plot_confusion(np.array(v["confusion_detected"]), labels, Path(out) / f"{name}-{tag}.png",
                       title=f"{k}: acc {v['accuracy_all_images']:.3f} all images, "
                             f"{v['accuracy_detected_faces']:.3f} detected")
    del head


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
    items = [it for it in items if it.label in LABELS]  # contempt is not a class
    labels = tuple(lab for lab in LABELS if any(it.label == lab for it in items))  # as train() orders them
    keep = sample_indices(len(items), limit, seed)
    if keep is not None:
        items = [items[i] for i in keep]
    _, X, found = _features(items, progress=False)
    y = np.array([labels.index(it.label) for it in items])
    idx = np.flatnonzero(found)
    return X[idx].astype(np.float32), y[idx], labels


def shipped_training_set(data, *, layout=None, seed=0, quick=False, progress=True):
    """What the shipped models learn from: items, features, labels and index sets.

    Returns a dict: ``items``, ``pipe``, ``X``, ``found``, ``labels``, ``y``,
    ``train`` (indices of the faces the MLP trains on: every training corpus,
    without evaluation-only corpora and the FER2013 internal validation),
    ``internal`` (the internal-validation indices, empty without FER2013
    train), ``px`` (the pixel context or None) and ``layout``.
    """
    items, layout, dropped = _items(data, layout, quick, seed)
    pipe, X, found, labels, y = _labelled_features(items, progress)
    px = _pixel_context(data, layout, items, y, labels, seed=seed, quick=quick, progress=progress)
    trainable = np.array([not _eval_only(it.corpus) for it in items]) if layout == "multi" else np.ones(len(items), bool)
    internal = px["internal"] if px is not None else np.zeros(0, int)
    trainable[internal] = False
    return {"items": items, "pipe": pipe, "X": X, "found": found, "labels": labels, "y": y, "layout": layout,
            "train": np.flatnonzero(found & trainable), "internal": internal, "px": px, "dropped": dropped,
            "trainable": trainable}


def train(data, out, *, layout=None, seed=0, quick=False, progress=True):
    """Train the per-frame blendshape MLP on every training corpus of ``data``; export ONNX and write the card."""
    t0 = time.perf_counter()
    d = shipped_training_set(data, layout=layout, seed=seed, quick=quick, progress=progress)
    items, pipe, X, found, labels, y, idx = d["items"], d["pipe"], d["X"], d["found"], d["labels"], d["y"], d["train"]
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
    counts = {lab: int(np.sum(y[idx] == i)) for i, lab in enumerate(labels)}
    used = sorted({items[i].corpus for i in idx})
    missed = {c: int(sum(1 for i, it in enumerate(items) if it.corpus == c and not found[i])) for c in used}
    evaluation = _evaluation_summary(data, out)
    return save_card(
        out,
        id=MODEL_ID,
        task="facial expression recognition (per frame)",
        version="2",
        summary=("Facial expression from MediaPipe Face Landmarker blendshapes (52) and 20 landmark distances: "
                 f"a {len(HIDDEN)}-hidden-layer MLP over the seven basic classes (neutral included). The cheap "
                 "path: the face-expression-pixels CNN on the aligned face crop is fused with it at the "
                 "probability level by the runtime."),
        labels=tuple(labels),
        outputs={"probabilities": f"softmax over the {C} labels, (batch, {C})"},
        input={"pipeline": pipe.name, "spec": pipe.spec, "shape": [len(pipe.names)], "dtype": "float32",
               "feature_names": list(pipe.names)},
        parameters=count_parameters(model),
        file=onnx_path.name,
        training_data=tuple(
            {"name": c, "description": TERMS.get(c, (c, ""))[0] + f", {sum(1 for i in idx if items[i].corpus == c)} "
             f"images with a detected face ({missed[c]} without).", "terms": TERMS.get(c, ("", "see the corpus"))[1]}
            for c in used),
        evaluation=evaluation,
        limits=_limits(items, missed, labels, counts, d["dropped"]),
        extra={
            "data": str(data), "layout": d["layout"], "quick": bool(quick), "seed": seed,
            "class_counts": counts, "detector_missed": missed, "train_accuracy": train_acc,
            "ignored_images": d["dropped"], "internal_validation_images": int(len(d["internal"])),
            "architecture": {"hidden": list(HIDDEN), "activation": "GELU", "dropout": DROPOUT,
                             "weight_decay": WEIGHT_DECAY, "input_noise_std": NOISE, "epochs": EPOCHS,
                             "standardisation": "inside the graph",
                             "mirror": "trained on mirrored copies; output averages the face and its mirror"},
            "onnx_max_abs_diff_vs_torch": frame_err,
            "face_landmarker": {"sha256": pipe.spec["model_sha256"], "url": _model_url(),
                                "terms": "Apache-2.0 (Google)"},
            "train_wall_s": round(time.perf_counter() - t0, 1),
        },
    )


def _limits(items, missed, labels, counts, dropped):
    limits = [
        "Research weights: trained on research-only data (CK+, FER2013); not for commercial use.",
        "Needs one roughly frontal face; MediaPipe missed %s of the training images (48x48 crops)." %
        ", ".join(f"{v} of {sum(1 for it in items if it.corpus == c)} in {c}" for c, v in missed.items()),
        "Posed (CK+) and web (FER2013) expressions; spontaneous, subtle or mixed expressions are harder.",
        "The pipeline raises NoFaceError when no face is found; use pipeline.try_call for None instead.",
    ]
    if dropped:
        limits.append("Left out of the label set: " + ", ".join(f"{k} ({v} images)" for k, v in dropped.items())
                      + "; FER2013 has no contempt images.")
    if "neutral" in labels:
        limits.append("neutral comes from FER2013 only (CK+ peak frames have no neutral).")
    return tuple(limits)


def _model_url():
    from affectedge.features.face import MODEL_URL

    return MODEL_URL


def _evaluation_summary(data, out, task_dir="face"):
    """Figures for the card from reports/face/*.json when they exist (written by evaluate_protocol)."""
    table = []
    for p, r in iter_reports(task_dir, keep=lambda p: p.stem in PROTOCOLS):
        for name, s in r.get("systems", {}).items():
            table.append({"protocol": p.stem, "data": "+".join(r.get("evaluated_on", [])), "system": name,
                          "accuracy (all images)": s.get("accuracy_all_images"),
                          "accuracy (detected faces)": s.get("accuracy_detected_faces"),
                          "macro-F1 (detected)": s.get("macro_f1_detected_faces"),
                          "missed faces": f"{r.get('detector_missed')}/{r.get('n_images')}",
                          "fallback": (r.get("pixel_fallback") or {}).get("images", "-") if name in ("pixels", "fused")
                          else "-"})
    if table:
        return {"protocol": "retrained per fold; see reports/face", "table": table,
                "chance": "largest class share: FER2013 PublicTest happiness 0.25, CK+ surprise 0.25"}
    return {"protocol": "not evaluated yet: run 'affectedge evaluate --task face --protocol subject-kfold' and "
                        "'--protocol heldout', then retrain to copy the figures here"}


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
    got = model.pipeline.batch([it.path for it in items], progress=progress)
    X, found = got[0], got[1]
    fallback = got[2] & ~found if len(got) > 2 else np.zeros(len(items), bool)  # face-pixels: whole-crop answers
    idx = np.flatnonzero(found | fallback)
    y = np.array([shared.index(it.label) for it in items])
    pred = np.full(len(items), -1)
    if len(idx):
        pred[idx] = shared_argmax(model.predict(X[idx])[model.output_names[0]], labels, shared)
    rep = _report(y[idx], pred[idx], shared)
    report = {"task": "face", "model": model.card.id, "data": str(data), "layout": layout,
              "shared_labels": shared, "ignored_model_labels": [lab for lab in labels if lab not in shared],
              "ignored_data_images": dropped,
              "n_images": len(items), "detector_missed": int((~found).sum()), "fallback": int(fallback.sum()),
              "accuracy_misses_as_errors": float(np.sum(pred[idx] == y[idx]) / max(1, len(items))), **rep}
    if out is not None:
        from .metrics import save_report

        save_report(report, out, name="evaluate-model", title=f"{model.card.id} on {Path(data).name}")
    return report
