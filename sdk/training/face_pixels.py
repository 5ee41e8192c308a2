"""Facial expression from pixels (``face-expression-pixels``): a small CNN on the aligned face crop.

The crop is the ``face-pixels`` pipeline's (:class:`affectedge.features.face.FacePixels`):
the MediaPipe Face Landmarker run that gives the blendshapes also gives the
landmarks, and the face is warped so that its eyes and mouth sit where they
sit in a FER2013 crop (48x48 grey). A picture that is already a face crop and
in which MediaPipe finds no face is classified whole (``crop_fallback``).

Labels: the seven basic classes, :data:`LABELS` (contempt is left out: it has
no FER2013 images and 54 CK+ ones).

Data (``--data``): a face root holding ``fer2013_train/``, ``fer2013_val/``
(FER2013 PublicTest) and ``ckplus48/`` (e.g. ``../shared/data/face``).

Recipe:

1. **base**: the CNN trained on FER2013 train minus a stratified 10 %
   (``internal validation``: fusion weight, int8 calibration), with
   augmentation (rotation, scale, shift, mirror, contrast, cut-out). Trained
   once and cached (:func:`cache_dir`): it never sees CK+ or
   PublicTest.
2. **fine-tune**: the base, a few epochs on CK+ subjects mixed with a replay
   sample of its FER2013 training images. The shipped model is the base
   fine-tuned on all of CK+; protocol ``subject-kfold`` fine-tunes it on the
   training subjects of each CK+ fold.

Model (:func:`cnn_class`): per-image standardisation, four stages of two 3x3
conv + BN + ReLU (16, 32, 64, 128 channels, max-pool between), global average
pool, dropout, linear; the output averages six views (the crop zoomed 1.0,
1.08 and 0.92, each with its mirror image: test-time augmentation inside the
graph). About 0.3 M parameters and 6 x 30 M multiply-adds, against HSEmotion's EfficientNet-B0 (4 M parameters, 0.4 G at
224x224).
"""

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from affectedge.errors import ParameterError

from ._common import log, torch_setup

LABELS = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")
MODEL_ID = "face-expression-pixels"
WIDTH = 16
EPOCHS, QUICK_EPOCHS = 30, 2
FINETUNE_EPOCHS, FT_REPLAY = 4, 2000
BATCH, LR, WD, SMOOTH = 128, 3e-3, 5e-2, 0.1
INTERNAL_VAL = 0.1
PIXEL_SPEC = {"upscale": 192, "pad": 0.33, "size": 48}


def cache_dir():
    """Where base CNNs are cached: ``$AFFECTEDGE_FACE_PIXELS_CACHE`` or ~/.cache/affectedge/face-pixels."""
    import os

    from affectedge.features.face import _cache_root

    return Path(os.environ.get("AFFECTEDGE_FACE_PIXELS_CACHE") or (_cache_root() / "face-pixels"))


# ---------------------------------------------------------------------- model
def cnn_class():
    torch = torch_setup()
    nn = torch.nn

    def cbr(i, o):
        return [nn.Conv2d(i, o, 3, 1, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]

    class FaceCNN(nn.Module):
        """(batch, 1, 48, 48) grey crop in [0, 1] -> softmax (batch, classes), mirror-averaged."""

        def __init__(self, n_classes, width=WIDTH, dropout=0.3):
            super().__init__()
            layers, i = [], 1
            for j, o in enumerate((width, 2 * width, 4 * width, 8 * width)):
                layers += cbr(i, o) + cbr(o, o)
                i = o
                if j < 3:
                    layers.append(nn.MaxPool2d(2))
            self.features = nn.Sequential(*layers)
            self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                                      nn.Linear(i, n_classes))

        def logits(self, x):
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            std = ((x - mean) ** 2).mean(dim=(1, 2, 3), keepdim=True).sqrt()
            return self.head(self.features((x - mean) / (std + 0.02)))

        def forward(self, x):
            # test-time views: the crop, zoomed in by 1.08 and out by 0.92, each with its mirror image (chosen on
            # the FER2013 internal validation set: 0.655 -> 0.662 for the base CNN)
            s = x.shape[-1]
            F = torch.nn.functional
            zin = F.interpolate(x, size=(s + 4, s + 4), mode="bilinear", align_corners=False)[..., 2:s + 2, 2:s + 2]
            z = F.interpolate(x, size=(s - 4, s - 4), mode="bilinear", align_corners=False)
            z = torch.cat([z[..., :1].expand(-1, -1, -1, 2), z, z[..., -1:].expand(-1, -1, -1, 2)], dim=3)
            zout = torch.cat([z[..., :1, :].expand(-1, -1, 2, -1), z, z[..., -1:, :].expand(-1, -1, 2, -1)], dim=2)
            # one batched pass over the six views: every layer appears once in the graph (an int8 artifact
            # then holds one copy of each weight) and the batch runs in one call
            views = torch.cat([x, zin, zout], dim=0)
            views = torch.cat([views, torch.flip(views, dims=[3])], dim=0)
            p = torch.softmax(self.logits(views), -1)
            return p.reshape(6, -1, p.shape[-1]).mean(0)

    return FaceCNN


def _augment(torch, x, g):
    """Random rotation (+-12 deg), scale (0.9-1.1), shift (+-8 %), mirror, contrast/brightness, cut-out."""
    import math

    F = torch.nn.functional
    b = x.shape[0]
    ang = (torch.rand(b, generator=g) * 2 - 1) * (12 * math.pi / 180)
    sc = 1 / (0.9 + 0.2 * torch.rand(b, generator=g))
    flip = torch.where(torch.rand(b, generator=g) < 0.5, -1.0, 1.0)
    tx, ty = (torch.rand(2, b, generator=g) * 2 - 1) * 0.16
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = sc * torch.cos(ang) * flip
    theta[:, 0, 1] = -sc * torch.sin(ang)
    theta[:, 1, 0] = sc * torch.sin(ang) * flip
    theta[:, 1, 1] = sc * torch.cos(ang)
    theta[:, 0, 2], theta[:, 1, 2] = tx, ty
    grid = F.affine_grid(theta, x.shape, align_corners=False)
    x = F.grid_sample(x, grid, padding_mode="border", align_corners=False)
    c = (0.7 + 0.6 * torch.rand(b, 1, 1, 1, generator=g))
    x = ((x - 0.5) * c + 0.5 + (torch.rand(b, 1, 1, 1, generator=g) - 0.5) * 0.2).clamp(0, 1)
    # cut-out: one 16x16 square in half of the images
    s = x.shape[-1]
    cy, cx = torch.randint(0, s, (2, b), generator=g)
    yy = torch.arange(s).view(1, s, 1)
    xx = torch.arange(s).view(1, 1, s)
    m = ((yy - cy.view(b, 1, 1)).abs() < 8) & ((xx - cx.view(b, 1, 1)).abs() < 8)
    m &= (torch.rand(b, generator=g) < 0.5).view(b, 1, 1)
    return x.masked_fill(m[:, None], 0.5)


def _class_weights(y, n):
    counts = np.bincount(y, minlength=n).astype(np.float64)
    w = np.where(counts > 0, np.sqrt(counts.max() / np.maximum(counts, 1)), 0.0)
    w = np.minimum(w, 3.0)
    return (w / np.mean(w[counts > 0])).astype(np.float32)


def fit(model, X, y, *, epochs, seed, lr=LR, threads=2, progress=False, val=None, tag="cnn"):
    """Train ``model`` on crops X (n, 1, 48, 48) / labels y; OneCycle AdamW, label smoothing, augmentation."""
    torch = torch_setup(seed)
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(seed)
    Xt = torch.as_tensor(X, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.long)
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.from_numpy(_class_weights(y, len(LABELS))),
                                        label_smoothing=SMOOTH)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=WD)
    steps = epochs * max(1, -(-len(Xt) // BATCH))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    for ep in range(epochs):
        model.train()
        t0 = time.perf_counter()
        perm = torch.randperm(len(Xt), generator=g)
        tot = 0.0
        for i in range(0, len(Xt), BATCH):
            idx = perm[i:i + BATCH]
            xb = _augment(torch, Xt[idx], g)
            loss = loss_fn(model.logits(xb), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += loss.item() * len(idx)
        model.eval()
        msg = f"{tag} epoch {ep + 1}/{epochs}: loss {tot / len(Xt):.3f}, {time.perf_counter() - t0:.0f} s"
        if val is not None and (ep % 5 == 4 or ep == epochs - 1):
            msg += f", internal-val accuracy {np.mean(probs(model, val[0]).argmax(1) == val[1]):.3f}"
        log(progress, msg)
    model.eval()
    return model


def probs(model, X, batch=512):
    import torch  # not torch_setup(): it would drop the training threads to one

    out = []
    with torch.no_grad():
        for i in range(0, len(X), batch):
            out.append(model(torch.as_tensor(X[i:i + batch], dtype=torch.float32)).numpy())
    return np.concatenate(out) if out else np.zeros((0, len(LABELS)), np.float32)


# ----------------------------------------------------------------------- data
def alignment_template(landmarks):
    """The crop template: median eye and mouth centres of (n, 478, 3) landmarks in 48x48 crops, made symmetric."""
    from affectedge.features.face import align_points

    med = np.median(np.array([align_points(lm) for lm in landmarks]), axis=0)
    half = (med[1, 0] - med[0, 0]) / 2
    eye_y = (med[0, 1] + med[1, 1]) / 2
    return ((24 - half, eye_y), (24 + half, eye_y), (24.0, med[2, 1]))


def internal_split(y, seed=0):
    """Stratified INTERNAL_VAL split of FER2013 train: (train indices, internal-validation indices)."""
    rng = np.random.default_rng(seed)
    tr, va = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        k = int(round(INTERNAL_VAL * len(idx)))
        va += list(idx[:k])
        tr += list(idx[k:])
    return np.sort(tr), np.sort(va)


def base_key(train_paths, epochs, seed):
    h = hashlib.sha256(json.dumps({"n": len(train_paths), "first": str(train_paths[0].name),
                                   "last": str(train_paths[-1].name), "epochs": epochs, "seed": seed,
                                   "width": WIDTH, "lr": LR, "wd": WD, "batch": BATCH, "spec": PIXEL_SPEC,
                                   "v": 1}, sort_keys=True).encode())
    return h.hexdigest()[:16]


def train_base(X, y, *, epochs, seed, key, progress=True, val=None):
    """The FER2013-only base CNN, cached on disk under ``key``."""
    torch = torch_setup()
    path = cache_dir() / f"base-{key}.pt"
    model = cnn_class()(len(LABELS))
    if path.is_file():
        model.load_state_dict(torch.load(path))
        model.eval()
        log(progress, f"base CNN from the cache ({path})")
        return model
    fit(model, X, y, epochs=epochs, seed=seed, progress=progress, val=val, tag="base CNN")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(model.state_dict(), tmp)
    tmp.replace(path)
    return model


def finetune(base, X_ck, y_ck, X_rep, y_rep, *, seed, epochs=FINETUNE_EPOCHS):
    """A copy of ``base`` trained a few epochs on CK+ images mixed with a FER2013 replay sample."""
    import copy

    rng = np.random.default_rng(seed)
    k = rng.permutation(len(X_rep))[:FT_REPLAY]
    model = copy.deepcopy(base)
    X = np.concatenate([X_ck, X_rep[k]])
    y = np.concatenate([y_ck, y_rep[k]])
    return fit(model, X, y, epochs=epochs, seed=seed, lr=LR / 5, tag="fine-tune")


def check_labels(items):
    bad = sorted({it.label for it in items} - set(LABELS) - {"contempt"})
    if bad:
        raise ParameterError(f"face labels {bad} are not among {LABELS}")


def pixel_pipeline():
    from affectedge.features.face import FacePixels

    return FacePixels(**PIXEL_SPEC)


def corpus_arrays(folder, *, progress=True, keep_contempt=False):
    """Items, crops X (n, 1, 48, 48), face found, fallback used, labels y (LABELS index; -1: contempt)."""
    from .face import load_corpus

    items, _ = load_corpus(folder)
    check_labels(items)
    if not keep_contempt:
        items = [it for it in items if it.label in LABELS]
    X, found, fallback = pixel_pipeline().batch([it.path for it in items], progress=progress,
                                                desc=f"face crops {Path(folder).name}")
    y = np.array([LABELS.index(it.label) if it.label in LABELS else -1 for it in items])
    return items, X, found, fallback, y


def fer_base(root, *, seed=0, quick=False, progress=True):
    """(base CNN, FER2013-train arrays, train indices, internal-validation indices), trained or cached."""
    items, X, found, fb, y = corpus_arrays(Path(root) / "fer2013_train", progress=progress)
    tr, va = internal_split(y, seed)
    if quick:
        tr = tr[np.random.default_rng(seed).permutation(len(tr))[:600]]
    epochs = QUICK_EPOCHS if quick else EPOCHS
    # the key names the split, not the crops: a change of the fallback rule keeps the cached base
    key = base_key([items[i].path for i in tr], epochs, seed)
    usable = found | fb
    tr, va = tr[usable[tr]], va[usable[va]]
    base = train_base(X[tr], y[tr], epochs=epochs, seed=seed, key=key, progress=progress, val=(X[va], y[va]))
    return base, (items, X, found, fb, y), tr, va


# --------------------------------------------------------- the task module
DEFAULT_DATA = "face/fer2013_train"  # int8 calibration and validation: training images, never PublicTest
PROTOCOLS = ("subject-kfold", "heldout")
TERMS = "research only (CK+) and research use (FER2013, ICML 2013 challenge data); research weights"


def evaluate_protocol(data, protocol, *, layout=None, seed=0, quick=False, progress=True, out=None):
    """The face task's protocol (:func:`affectedge.training.face.evaluate_protocol`): pixels, blendshapes, fused."""
    from . import face

    from ._common import check_protocol

    check_protocol(protocol, PROTOCOLS, "face-pixels")
    return face.evaluate_protocol(data, protocol, layout=layout, seed=seed, quick=quick, progress=progress, out=out)


def load_features(data, *, layout=None, limit=None, seed=0):
    """Pixel-model inputs (n, 1, 48, 48) of the usable images (face or fallback), labels, label names."""
    from ._common import sample_indices
    from .face import load_corpus

    items, _ = load_corpus(data, layout)
    items = [it for it in items if it.label in LABELS]
    keep = sample_indices(len(items), limit, seed)
    if keep is not None:
        items = [items[i] for i in keep]
    X, found, fb = pixel_pipeline().batch([it.path for it in items], progress=False)
    ok = found | fb
    y = np.array([LABELS.index(it.label) for it in items])
    return X[ok].astype(np.float32), y[ok], LABELS


def evaluate_model(model, data, *, layout=None, progress=True, out=None):
    """Score a trained pixel model on a labelled corpus (:func:`affectedge.training.face.evaluate_model`:
    shared classes only; fallback crops count as answers)."""
    from . import face

    return face.evaluate_model(model, data, layout=layout, progress=progress, out=out)


def train(data, out, *, layout=None, seed=0, quick=False, progress=True):
    """The shipped pixel CNN: the FER2013 base fine-tuned on every CK+ image; fusion weight; ONNX; card."""
    from . import face as FT
    from ._common import count_parameters, export_onnx, onnx_max_abs_diff, predict, save_card, save_exported_program

    t0 = time.perf_counter()
    d = FT.shipped_training_set(data, layout=layout, seed=seed, quick=quick, progress=progress)
    px = d["px"]
    if px is None:
        raise ParameterError(f"the pixel model trains on a face root holding fer2013_train/ (and ckplus48/), e.g. "
                             f"../shared/data/face; {str(data)!r} is not one")
    items, y = d["items"], d["y"]
    ft = np.array([i for i in range(len(items)) if d["trainable"][i] and items[i].corpus != "fer2013_train"
                   and px["usable"][i]], int)
    cnn = finetune(px["base"], px["crops"][ft], y[ft], *px["replay"], seed=seed,
                   epochs=1 if quick else FINETUNE_EPOCHS) if len(ft) else px["base"]
    mlp = FT._train_mlp(d["X"][d["train"]], y[d["train"]], len(LABELS), seed=seed, quick=quick,
                        perm=FT._mirror_perm(d["pipe"].names))
    iv = d["internal"][d["found"][d["internal"]]]
    w, curve = FT.fusion_weight(probs(cnn, px["crops"][iv]), predict(mlp, d["X"][iv]), y[iv])
    iv_all = d["internal"]
    internal_acc = float(np.mean(probs(cnn, px["crops"][iv_all]).argmax(1) == y[iv_all])) if len(iv_all) else None

    from torch.export import Dim

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / "model.onnx"
    example = px["crops"][ft[:8]] if len(ft) else px["replay"][0][:8]
    export_onnx(cnn, example, onnx_path, input_names=["face"], output_names=["probabilities"],
                dynamic_shapes={"x": {0: Dim("batch", min=1)}})
    check = px["replay"][0][:64]
    err = onnx_max_abs_diff(cnn, onnx_path, check)["probabilities"]
    save_exported_program(cnn, example[:2], out)
    pipe = pixel_pipeline()
    ck_n = int(len(ft))
    return save_card(
        out,
        id=MODEL_ID,
        task="facial expression recognition (per frame, pixels)",
        version="1",
        summary=("Facial expression from the aligned 48x48 grey face crop: a small CNN (four stages of two 3x3 "
                 "convolutions, 16-128 channels, mirror-averaged) over the seven basic classes, trained on FER2013 "
                 "and fine-tuned on CK+. The runtime fuses it with the face-expression blendshape model: "
                 f"{w:g} x pixels + {1 - w:g} x blendshapes."),
        labels=LABELS,
        outputs={"probabilities": f"softmax over the {len(LABELS)} labels, (batch, {len(LABELS)})"},
        input={"pipeline": pipe.name, "spec": pipe.spec, "shape": list(pipe.input_shape), "dtype": "float32",
               "description": "grey face crop in [0, 1], aligned on the FER2013 template; (batch, 1, 48, 48)"},
        parameters=count_parameters(cnn),
        file=onnx_path.name,
        training_data=(
            {"name": "fer2013_train", "description": f"FER2013 Training split: {px['base_train_images']} images "
             f"(faces and fallback crops; {len(d['internal'])} more held out as internal validation)",
             "terms": "research use (ICML 2013 challenge data)"},
            {"name": "ckplus48", "description": f"CK+ 48x48 peak frames: {ck_n} images (fine-tuning, with a replay "
             f"sample of {FT_REPLAY} FER2013 images)", "terms": "research only, no redistribution outside research"},
        ),
        evaluation=FT._evaluation_summary(data, out),
        limits=(
            "Research weights: trained on research-only data (CK+, FER2013); not for commercial use.",
            "Grey 48x48 crops: colour and fine detail are not used; faces far from frontal align poorly.",
            "Posed (CK+) and web (FER2013) expressions; spontaneous, subtle or mixed expressions are harder.",
            "Contempt is not a class (no FER2013 images).",
        ),
        extra={
            "data": str(data), "quick": bool(quick), "seed": seed,
            "fusion": {"with": "face-expression", "weight_pixels": w, "rule": "w * p_pixels + (1 - w) * "
                       "p_blendshapes when a face is found; p_pixels alone on a fallback crop",
                       "chosen_on": f"{len(iv)} FER2013 internal-validation faces (accuracy by weight)",
                       "accuracy_by_weight": curve},
            "internal_validation_accuracy": internal_acc,
            "architecture": {"stages": [WIDTH, 2 * WIDTH, 4 * WIDTH, 8 * WIDTH], "convs_per_stage": 2,
                             "input_standardisation": "per image, inside the graph",
                             "test_time_views": "the crop zoomed 1.0, 1.08 and 0.92, each with its mirror: "
                                                "inside the graph", "epochs_base": EPOCHS,
                             "epochs_finetune": FINETUNE_EPOCHS, "batch": BATCH, "lr": LR, "weight_decay": WD,
                             "label_smoothing": SMOOTH,
                             "augmentation": "rotation +-12 deg, scale 0.9-1.1, shift +-8 %, mirror, contrast "
                                             "0.7-1.3, brightness +-0.1, 16x16 cut-out (p 0.5)"},
            "anchor": {"name": "HSEmotion enet_b0_8 (EfficientNet-B0)", "parameters": "about 4.0 M",
                       "input": "224x224 RGB"},
            "onnx_max_abs_diff_vs_torch": err,
            "face_landmarker": {"sha256": pipe.spec["model_sha256"], "terms": "Apache-2.0 (Google)"},
            "train_wall_s": round(time.perf_counter() - t0, 1),
        },
    )
