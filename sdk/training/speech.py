"""Speech emotion: a small TIM-Net-style temporal CNN on native-kernel features.

Task module (see :mod:`affectedge.training`): ``train``, ``evaluate_protocol``
("loso"), ``evaluate_model``.

Features: :class:`affectedge.features.speech.SpeechFeatures` (pipeline
``speech-mfcc-silence``): 20 MFCC + deltas + delta-deltas, the 4 silence
features (threshold factor 0.3), 251 frames (4 s at 16 kHz, hop 256), each
column z-normalised per speaker (calibration from the speaker's unlabelled
clips).

Model (one ONNX graph, input ``features`` (batch, 251, 65)):

* a TIM-Net-inspired temporal CNN (Ye et al., ICASSP 2023): a 1x1 input
  convolution (32 channels) average-pooled to half the frame rate (32 ms
  steps), then for *each* time direction (forward and time-reversed) a
  stack of temporal-aware blocks -- causal dilated convolutions (kernel 2,
  dilations 1, 2, 4, ..., 32), batch norm, ReLU, a sigmoid gate multiplying the block
  input -- whose outputs are averaged over the valid frames at every scale
  (multi-scale), summed over both directions and fused with learned softmax
  weights; a linear layer gives the class logits;
* a multinomial logistic regression on utterance functionals (mean, std,
  min, max over valid frames of every frame feature) computed inside the
  graph, fitted with scikit-learn and copied into the graph;
* outputs ``probs`` = mean of the two probability vectors, and ``va`` =
  ``probs @ VA_TABLE`` (valence, arousal in [-1, 1]).

The valence/arousal table places each category at an *approximate* point of
the circumplex (Russell 1980), using the pleasure/arousal ratings of
Russell & Mehrabian (1977) rounded to two decimals ("calm" = their
"relaxed"; neutral at the origin). The ``va`` output is an expectation over
category probabilities, not a model trained on dimensional labels.

Training: AdamW with a one-cycle schedule, class-balanced cross-entropy
with label smoothing 0.1, feature-space augmentation (a random time mask,
up to 5 zeroed feature columns, Gaussian noise 0.1 on the normalised
features); hyper-parameters in :data:`FULL` (``QUICK``: 6 epochs on the
first 4 speakers). The logistic regression (C=0.05, balanced) is fitted on
the same normalised windows.

Evaluation (``evaluate_protocol(..., "loso")``): leave-one-speaker-out,
retraining both parts per fold; the test speaker is normalised with the
statistics of its own clips (labels unused). The report also holds the CNN
and the LR alone, the ensemble run *uncalibrated*, the openSMILE eGeMAPSv02
+ linear SVM anchors with and without per-speaker z-normalisation (features
cached in ``~/.cache/affectedge``), and the silence ablation (no silence
features; threshold factors 0.2 / 0.3 / 0.5) run with the cheaper LR-only
protocol on the same folds. ``train`` puts the figures of
``reports/speech/report.json`` (looked up in the working directory, then
the repository; or ``$AFFECTEDGE_SPEECH_REPORT``) on the card, so run the
evaluation before training.

Reproducibility: fixed seeds, ``torch.use_deterministic_algorithms``,
single-threaded; the same seed gives the same weights on the same machine.
"""

import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from affectedge.errors import ParameterError

from ._export import save_exported_program
from .corpora import TAXONOMY, load_corpus

__all__ = ["DEFAULT_DATA", "MODEL_ID", "PROTOCOLS", "VA_TABLE", "evaluate_model", "evaluate_protocol", "train"]

MODEL_ID = "speech-emotion"
DEFAULT_DATA = "speech/emodb"
PROTOCOLS = ("loso",)

# Approximate (valence, arousal) per category, see the module doc.
VA_TABLE = {
    "anger": (-0.51, 0.59),
    "boredom": (-0.65, -0.62),
    "calm": (0.68, -0.46),
    "disgust": (-0.60, 0.35),
    "fear": (-0.64, 0.60),
    "happiness": (0.76, 0.48),
    "neutral": (0.0, 0.0),
    "sadness": (-0.63, -0.27),
    "surprise": (0.40, 0.67),
}
VA_SOURCE = ("approximate positions on the valence-arousal circumplex (Russell 1980), using the pleasure/arousal "
             "ratings of Russell & Mehrabian (1977), rounded; calm = 'relaxed', neutral = origin")
HIGH_AROUSAL = ("anger", "happiness", "fear")
LOW_AROUSAL = ("sadness", "boredom", "neutral")

# Training hyper-parameters (full and quick runs).
FULL = {"epochs": 45, "batch": 32, "lr": 3e-3, "weight_decay": 1e-3, "label_smoothing": 0.1, "channels": 32,
        "dilations": (1, 2, 4, 8, 16, 32), "dropout": 0.1, "C_lr": 0.05, "swa": 0.0}
QUICK = {**FULL, "epochs": 6}

EMODB_TERMS = "EmoDB (TU Berlin): free for research use; research weights only"


def _log(progress, msg):
    """Progress goes to stderr, so that stdout carries only results (``evaluate --json``)."""
    if progress:
        print(msg, file=sys.stderr, flush=True)


def _warn(msg):
    print(f"affectedge: warning: {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------- features

def _default_pipeline(**over):
    from affectedge.features.speech import SpeechFeatures

    return SpeechFeatures(**over)


# quality statuses that make a clip unusable for training / scoring ("clipped" clips are kept)
_JUNK = ("nonfinite", "out_of_scale", "dc_only", "no_speech")


def _read_clip(path, pipeline):
    """A corpus clip as float32 mono at its own rate (any format soundfile reads); ParameterError if unusable."""
    from affectedge.features.quality import audio_quality
    from affectedge.io import read_audio

    y, sr = read_audio(path)
    q = audio_quality(y, sr)
    if q.status in _JUNK:
        raise ParameterError(f"{q.status}: {q.detail}")
    return y, sr


def _clip_frames(items, pipeline, progress=False):
    """Unnormalised frame features of every usable clip.

    Returns ``(frames, kept_items, skipped)``: clips that cannot be read
    (corrupt, empty, unknown format), hold junk (NaN, silence, a constant) or
    are too short are left out, each listed in ``skipped`` as
    ``{"path", "reason"}`` and warned about on stderr. Clips at another rate
    than the pipeline's are resampled.
    """
    out, kept, skipped = [], [], []
    t0 = time.perf_counter()
    for item in items:
        path = item[0]
        try:
            y, sr = _read_clip(path, pipeline)
            f = pipeline.frames(y, sr)
        except ParameterError as exc:
            reason = str(exc)
            if reason.startswith(repr(str(path))):  # the path is listed next to the reason
                reason = reason[len(repr(str(path))):].strip(" :") or str(exc)
            skipped.append({"path": str(path), "reason": reason[:300]})
            _warn(f"skipped {path}: {reason[:300]}")
            continue
        out.append(f)
        kept.append(item)
    _log(progress, f"  features of {len(kept)} clips in {time.perf_counter() - t0:.1f} s"
                   + (f" ({len(skipped)} skipped)" if skipped else ""))
    if not kept:
        raise ParameterError(f"none of the {len(items)} clips could be used (first: {skipped[0]['path']}: "
                             f"{skipped[0]['reason']})" if skipped else "the corpus has no clips")
    return out, kept, skipped


def _raw_frames(items, pipeline, progress=False):
    """Unnormalised frame features of every clip (list of arrays); ParameterError on any unusable clip."""
    frames, _, skipped = _clip_frames(items, pipeline, progress)
    if skipped:
        raise ParameterError(f"{skipped[0]['path']}: {skipped[0]['reason']}")
    return frames


def _keep(kept, labels):
    """(y, speakers) of the kept corpus items."""
    return np.array([labels.index(lab) for _, lab, _ in kept], dtype=np.int64), [s for _, _, s in kept]


def _speaker_norms(frames, speakers):
    """SpeakerNormalizer per speaker, from that speaker's clips (labels unused)."""
    from affectedge.features.speech import SpeakerNormalizer

    spk = np.asarray(speakers)
    return {s: SpeakerNormalizer.fit([frames[i] for i in np.flatnonzero(spk == s)]) for s in sorted(set(speakers))}


def _windows(frames, speakers, norms, pipeline, global_norm=None):
    x = np.stack([pipeline.window(f, global_norm if global_norm is not None else norms[s])
                  for f, s in zip(frames, speakers)])
    return x


def _functionals_np(x):
    """Functionals of window batches (N, T, F) with a valid column last -- as the graph computes them."""
    v = x[:, :, -1:]
    f = x[:, :, :-1]
    n = np.maximum(v.sum(axis=1), 1.0)
    mean = (f * v).sum(axis=1) / n
    var = (((f - mean[:, None]) ** 2) * v).sum(axis=1) / n
    filled = f * v + mean[:, None] * (1.0 - v)  # padded frames take the mean (see the graph)
    mx = filled.max(axis=1)
    mn = filled.min(axis=1)
    return np.concatenate([mean, np.sqrt(np.maximum(var, 0.0) + 1e-6), mn, mx], axis=1).astype(np.float32)


# -------------------------------------------------------------------- model

def _build_model(n_features, n_classes, hp, va_table):
    import torch
    from torch import nn
    from torch.nn import functional as F

    class TAB(nn.Module):
        """Temporal-aware block: two causal dilated convs, sigmoid gate on the input."""

        def __init__(self, c, dilation, dropout):
            super().__init__()
            self.d = dilation
            self.c1 = nn.Conv1d(c, c, 2, dilation=dilation)
            self.b1 = nn.BatchNorm1d(c)
            self.c2 = nn.Conv1d(c, c, 2, dilation=dilation)
            self.b2 = nn.BatchNorm1d(c)
            self.drop = nn.Dropout(dropout)

        def forward(self, x):
            h = self.drop(F.relu(self.b1(self.c1(F.pad(x, (self.d, 0))))))
            h = self.drop(F.relu(self.b2(self.c2(F.pad(h, (self.d, 0))))))
            return x * torch.sigmoid(h)

    class SpeechTIM(nn.Module):
        def __init__(self):
            super().__init__()
            c = hp["channels"]
            self.inp = nn.Conv1d(n_features - 1, c, 1)
            self.pool = nn.AvgPool1d(2, 2)  # frames at half rate: 32 ms steps
            self.fwd = nn.ModuleList([TAB(c, d, hp["dropout"]) for d in hp["dilations"]])
            self.bwd = nn.ModuleList([TAB(c, d, hp["dropout"]) for d in hp["dilations"]])
            self.fuse = nn.Parameter(torch.zeros(len(hp["dilations"])))
            self.drop = nn.Dropout(0.2)
            self.head = nn.Linear(c, n_classes)
            n_func = 4 * (n_features - 1)
            self.register_buffer("lin_w", torch.zeros(n_classes, n_func))
            self.register_buffer("lin_b", torch.zeros(n_classes))
            self.register_buffer("va_table", torch.tensor(va_table, dtype=torch.float32))
            self.register_buffer("mix", torch.tensor(0.5))

        def logits(self, x):
            # x: (B, T, F) with the valid column last
            v = self.pool(x[:, :, -1].unsqueeze(1))  # (B, 1, T/2), 0.5 on a half-valid pair
            n = v.sum(dim=2).clamp_min(1.0)  # (B, 1)
            h = self.pool(self.inp(x[:, :, :-1].transpose(1, 2)))
            hf, hb = h, torch.flip(h, dims=[2])
            vb = torch.flip(v, dims=[2])
            scales = []
            for tf, tb in zip(self.fwd, self.bwd):
                hf = tf(hf)
                hb = tb(hb)
                scales.append((hf * v).sum(dim=2) / n + (hb * vb).sum(dim=2) / n)
            s = torch.stack(scales, dim=1)  # (B, S, C)
            w = torch.softmax(self.fuse, dim=0)
            z = (s * w[None, :, None]).sum(dim=1)
            return self.head(self.drop(z))

        def functionals(self, x):
            v = x[:, :, -1:]
            f = x[:, :, :-1]
            n = v.sum(dim=1).clamp_min(1.0)
            mean = (f * v).sum(dim=1) / n
            var = (((f - mean[:, None, :]) ** 2) * v).sum(dim=1) / n
            # Padded frames take the mean, which lies inside [min, max] of the
            # valid frames, so max/min are those of the valid frames; no large
            # sentinel constants (they wreck int8 activation ranges).
            filled = f * v + mean[:, None, :] * (1.0 - v)
            mx = filled.amax(dim=1)
            mn = filled.amin(dim=1)
            # clamp: an input whose valid-frame flag is not 0/1 must not give NaN
            return torch.cat([mean, torch.sqrt(var.clamp_min(0.0) + 1e-6), mn, mx], dim=1)

        def forward(self, x):
            p_cnn = torch.softmax(self.logits(x), dim=1)
            p_lin = torch.softmax(self.functionals(x) @ self.lin_w.T + self.lin_b, dim=1)
            probs = self.mix * p_cnn + (1.0 - self.mix) * p_lin
            return probs, probs @ self.va_table

    return SpeechTIM()


def _single_thread():
    """One BLAS/OpenMP thread: small problems on a shared machine run far faster than oversubscribed."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass


def _torch_setup(seed):
    import torch

    _single_thread()

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    return torch


def _augment(xb, rng):
    """Feature-space augmentation: time masks, feature-column masks, small noise (valid frames only)."""
    xb = xb.copy()
    b, t, f = xb.shape
    for i in range(b):
        n_valid = int(xb[i, :, -1].sum())
        if n_valid > 20:
            w = rng.integers(5, max(6, n_valid // 6))
            s = rng.integers(0, n_valid - w)
            xb[i, s:s + w, :-1] = 0.0
        cols = rng.choice(f - 1, size=rng.integers(0, 6), replace=False)
        xb[i, :, cols] = 0.0
        xb[i, :n_valid, :-1] += rng.normal(0, 0.1, size=(n_valid, f - 1)).astype(np.float32)
    return xb


def _train_cnn(x, y, n_classes, hp, seed, progress=False, crops=None):
    """Train the temporal CNN part; x (N, T, F) windows. ``crops``: optional list of extra window sets."""
    torch = _torch_setup(seed)
    model = _build_model(x.shape[2], n_classes, hp, np.zeros((n_classes, 2), np.float32))
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
    n = x.shape[0]
    steps = hp["epochs"] * int(np.ceil(n / hp["batch"]))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=hp["lr"], total_steps=steps, pct_start=0.2)
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    cw = torch.tensor(counts.sum() / (n_classes * np.maximum(counts, 1)), dtype=torch.float32)
    loss_fn = torch.nn.CrossEntropyLoss(weight=cw, label_smoothing=hp["label_smoothing"])
    sources = [x] + list(crops or [])
    yt = torch.tensor(y)
    t0 = time.perf_counter()
    swa_start = hp["epochs"] - int(round(hp.get("swa", 0.0) * hp["epochs"]))
    swa = None
    model.train()
    for ep in range(hp["epochs"]):
        perm = rng.permutation(n)
        src = sources[rng.integers(len(sources))] if len(sources) > 1 else x
        for k in range(0, n, hp["batch"]):
            idx = perm[k:k + hp["batch"]]
            if len(idx) < 2:
                continue
            xb = torch.from_numpy(_augment(src[idx], rng))
            loss = loss_fn(model.logits(xb), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        if ep >= swa_start:  # stochastic weight averaging over the last epochs
            if swa is None:
                swa = torch.optim.swa_utils.AveragedModel(model)
            else:
                swa.update_parameters(model)
        if progress and (ep + 1) % 15 == 0:
            _log(progress, f"    epoch {ep + 1}/{hp['epochs']} loss {loss.item():.3f} ({time.perf_counter() - t0:.0f} s)")
    if swa is not None and swa_start < hp["epochs"] - 1:
        model = swa.module
        # batch-norm statistics of the averaged weights, on the unaugmented training windows
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.reset_running_stats()
                    m.momentum = None
            model.train()
            for k in range(0, n, 64):
                model.logits(torch.from_numpy(x[k:k + 64]))
    model.eval()
    return model


def _fit_linear(x, y, n_classes, hp):
    """Multinomial logistic regression on functionals (standardisation folded into the weights)."""
    from sklearn.linear_model import LogisticRegression

    f = _functionals_np(x).astype(np.float64)
    mu, sd = f.mean(axis=0), f.std(axis=0) + 1e-6
    clf = LogisticRegression(C=hp["C_lr"], max_iter=3000, class_weight="balanced")
    clf.fit((f - mu) / sd, y)
    w = np.zeros((n_classes, f.shape[1]))
    b = np.full(n_classes, -1e4)  # classes absent from training never win
    coef, icpt = clf.coef_, clf.intercept_
    if coef.shape[0] == 1:  # two classes: scikit-learn keeps one row (for classes_[1])
        coef, icpt = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], icpt])
    w[clf.classes_] = coef / sd
    b[clf.classes_] = icpt - (coef / sd) @ mu
    return w.astype(np.float32), b.astype(np.float32)


def _fit(x, y, n_classes, hp, seed, va_table, progress=False, crops=None):
    import torch

    model = _train_cnn(x, y, n_classes, hp, seed, progress, crops)
    w, b = _fit_linear(x, y, n_classes, hp)
    with torch.no_grad():
        model.lin_w.copy_(torch.from_numpy(w))
        model.lin_b.copy_(torch.from_numpy(b))
        model.va_table.copy_(torch.tensor(np.asarray(va_table, np.float32)))
    return model


def _predict(model, x, part="all"):
    import torch

    with torch.no_grad():
        xt = torch.from_numpy(x)
        if part == "cnn":
            return torch.softmax(model.logits(xt), dim=1).numpy()
        if part == "lin":
            return torch.softmax(model.functionals(xt) @ model.lin_w.T + model.lin_b, dim=1).numpy()
        return model(xt)[0].numpy()


def _param_count(model):
    return int(sum(p.numel() for p in model.parameters()) + model.lin_w.numel() + model.lin_b.numel())


# --------------------------------------------------------------- anchors

def _cache_dir():
    base = os.environ.get("AFFECTEDGE_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "affectedge")
    p = Path(base)
    p.mkdir(parents=True, exist_ok=True)
    return p


def egemaps_features(paths, progress=False):
    """openSMILE eGeMAPSv02 functionals (88) per file, cached in the affectedge cache folder."""
    key = hashlib.sha256()
    for p in paths:
        st = os.stat(p)
        key.update(f"{os.path.abspath(p)}|{st.st_size}|{int(st.st_mtime)}\n".encode())
    cache = _cache_dir() / f"egemaps-v02-{key.hexdigest()[:16]}.npy"
    if cache.is_file():
        return np.load(cache)
    import opensmile

    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                            feature_level=opensmile.FeatureLevel.Functionals)
    t0 = time.perf_counter()
    feats = np.stack([smile.process_file(str(p)).to_numpy()[0] for p in paths]).astype(np.float64)
    _log(progress, f"  openSMILE eGeMAPSv02 of {len(paths)} clips in {time.perf_counter() - t0:.0f} s (cached: {cache})")
    np.save(cache, feats)
    return feats


def _znorm_by_speaker(f, speakers):
    f = f.copy()
    spk = np.asarray(speakers)
    for s in set(speakers):
        m = spk == s
        f[m] = (f[m] - f[m].mean(axis=0)) / (f[m].std(axis=0) + 1e-8)
    return f


def _svm_loso(f, y, speakers, n_classes):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    spk = np.asarray(speakers)
    pred = np.zeros_like(y)
    for s in sorted(set(speakers)):
        te = spk == s
        clf = make_pipeline(StandardScaler(), LinearSVC(C=0.01, class_weight="balanced", max_iter=20000))
        clf.fit(f[~te], y[~te])
        pred[te] = clf.predict(f[te])
    return pred


def _lin_loso(x, y, speakers, n_classes, hp):
    spk = np.asarray(speakers)
    pred = np.zeros_like(y)
    for s in sorted(set(speakers)):
        te = spk == s
        w, b = _fit_linear(x[~te], y[~te], n_classes, hp)
        pred[te] = np.argmax(_functionals_np(x[te]) @ w.T + b, axis=1)
    return pred


# ----------------------------------------------------------------- corpus

def _corpus(data, layout, quick=False):
    items = load_corpus(data, layout)
    labels = [t for t in TAXONOMY if t in {lab for _, lab, _ in items}]
    if len(labels) < 2:
        raise ParameterError(f"corpus {str(data)!r} has {len(labels)} emotion class(es); at least 2 are needed")
    if quick:
        spk = sorted({s for _, _, s in items})[:4]
        items = [it for it in items if it[2] in spk]
    y = np.array([labels.index(lab) for _, lab, _ in items])
    speakers = [s for _, _, s in items]
    return items, labels, y, speakers


def _summary_row(name, rep, note=""):
    r = {"system": name, "uar": rep["uar"], "war": rep["war"]}
    for c in HIGH_AROUSAL + LOW_AROUSAL:
        r[c] = rep["per_class_recall"].get(c)
    if note:
        r["note"] = note
    return r


# --------------------------------------------------------------- protocol

def evaluate_protocol(data, protocol, *, layout=None, seed=0, quick=False, progress=True, out=None):
    """Leave-one-speaker-out evaluation with anchors and the silence ablation."""
    from .metrics import classification_report, save_report

    if protocol not in PROTOCOLS:
        raise ParameterError(f"protocol {protocol!r} is not offered for speech; choose one of {', '.join(PROTOCOLS)}")
    t_start = time.perf_counter()
    _single_thread()
    hp = QUICK if quick else FULL
    items, labels, y, speakers = _corpus(data, layout, quick)
    spk_list = sorted(set(speakers))
    if len(spk_list) < 2:
        raise ParameterError(f"leave-one-speaker-out needs at least 2 speakers; {str(data)!r} has {spk_list}")
    n_classes = len(labels)
    va = [VA_TABLE[lab] for lab in labels]
    pipe = _default_pipeline()
    _log(progress, f"speech LOSO on {data}: {len(items)} clips, {len(spk_list)} speakers, labels {labels}")
    frames, items, skipped = _clip_frames(items, pipe, progress)
    y, speakers = _keep(items, labels)
    spk_list = sorted(set(speakers))
    if len(spk_list) < 2:
        raise ParameterError(f"leave-one-speaker-out needs at least 2 speakers with usable clips; {str(data)!r} "
                             f"has {spk_list}")
    norms = _speaker_norms(frames, speakers)
    x = _windows(frames, speakers, norms, pipe)
    spk = np.asarray(speakers)
    preds = {k: np.zeros_like(y) for k in ("ensemble", "cnn", "lin", "ensemble_uncal")}
    probs = np.zeros((len(y), 2, n_classes))
    per_fold = []
    for s in spk_list:
        te = spk == s
        t0 = time.perf_counter()
        model = _fit(x[~te], y[~te], n_classes, hp, seed, va)
        p_cnn, p_lin = _predict(model, x[te], "cnn"), _predict(model, x[te], "lin")
        probs[te, 0], probs[te, 1] = p_cnn, p_lin
        preds["cnn"][te] = p_cnn.argmax(1)
        preds["lin"][te] = p_lin.argmax(1)
        preds["ensemble"][te] = (0.5 * p_cnn + 0.5 * p_lin).argmax(1)
        # uncalibrated use: the test speaker normalised with the training speakers' pooled statistics
        from affectedge.features.speech import SpeakerNormalizer

        gnorm = SpeakerNormalizer.fit([frames[i] for i in np.flatnonzero(~te)])
        xu = np.stack([pipe.window(frames[i], gnorm) for i in np.flatnonzero(te)])
        preds["ensemble_uncal"][te] = _predict(model, xu).argmax(1)
        fold = classification_report(y[te], preds["ensemble"][te], labels)
        per_fold.append({"speaker": s, "n": int(te.sum()), "uar": fold["uar"], "war": fold["war"],
                         "uar_cnn": classification_report(y[te], preds["cnn"][te], labels)["uar"]})
        _log(progress, f"  fold speaker {s}: UAR {fold['uar']:.3f} (cnn {per_fold[-1]['uar_cnn']:.3f}) "
                       f"{time.perf_counter() - t0:.0f} s")
    reps = {k: classification_report(y, v, labels) for k, v in preds.items()}
    report = {
        "task": "speech", "model_id": MODEL_ID, "protocol": "loso", "data": str(data), "quick": bool(quick),
        "seed": seed, "n_speakers": len(spk_list), **reps["ensemble"], "skipped": skipped,
        "per_fold": per_fold,
        "predictions": [{"file": os.path.basename(p), "speaker": s, "label": labels[t], "pred": labels[e],
                         "p_cnn": [round(float(v), 4) for v in pc], "p_lin": [round(float(v), 4) for v in pl]}
                        for (p, _, s), t, e, pc, pl in zip(items, y, preds["ensemble"], probs[:, 0], probs[:, 1])],
        "normalisation": ("per-speaker z-normalisation of every feature column; the test speaker's statistics come "
                          "from all of its own clips with their labels unused (transductive, unlabelled "
                          "calibration); training speakers each use their own statistics"),
        "features": pipe.spec, "hyper_parameters": {k: list(v) if isinstance(v, tuple) else v for k, v in hp.items()},
        "systems": {},
    }
    systems = {
        "ours: ensemble CNN + LR on functionals (shipped model)": ("ensemble", ""),
        "ours: temporal CNN alone": ("cnn", ""),
        "ours: LR on functionals of our features alone": ("lin", ""),
        "ours: ensemble, test speaker uncalibrated": ("ensemble_uncal",
                                                      "test speaker normalised with the training speakers' "
                                                      "pooled statistics (no calibration)"),
    }
    table = []
    for name, (k, note) in systems.items():
        report["systems"][name] = {kk: vv for kk, vv in reps[k].items() if kk != "labels"}
        table.append(_summary_row(name, reps[k], note))
    if quick:
        report["table"] = table
        report["not_run"] = "quick run: anchors and silence ablation not run"
        report["elapsed_s"] = round(time.perf_counter() - t_start, 1)
        if out is not None:
            save_report(report, out, title=f"speech LOSO quick: UAR {report['uar']:.3f}")
        return report
    # anchors: eGeMAPS + linear SVM
    try:
        eg = egemaps_features([p for p, _, _ in items], progress)  # the usable clips only
        for name, f, note in (("anchor: eGeMAPSv02 + linear SVM, per-speaker z-norm", _znorm_by_speaker(eg, speakers),
                               "88 openSMILE functionals, LinearSVC(C=0.01), speaker z-norm from unlabelled clips"),
                              ("anchor: eGeMAPSv02 + linear SVM, no speaker norm", eg,
                               "88 openSMILE functionals, LinearSVC(C=0.01), global standardisation only")):
            rep = classification_report(y, _svm_loso(f, y, speakers, n_classes), labels)
            report["systems"][name] = {kk: vv for kk, vv in rep.items() if kk != "labels"}
            table.append(_summary_row(name, rep, note))
    except ImportError as exc:
        report["anchors_skipped"] = f"opensmile/scikit-learn not installed ({exc})"
    # silence ablation (cheap protocol: LR on functionals only, same LOSO folds and speaker norm)
    abl = []
    note = "ablation protocol: LR on functionals of our features (no CNN), same LOSO folds and speaker z-norm"
    for label, over in (("no silence features", {"silence": False}),
                        ("silence, threshold factor 0.2", {"threshold_factor": 0.2}),
                        ("silence, threshold factor 0.3", {"threshold_factor": 0.3}),
                        ("silence, threshold factor 0.5", {"threshold_factor": 0.5})):
        p2 = _default_pipeline(**over)
        fr2 = frames if over == {"threshold_factor": 0.3} else _swap_silence(frames, items, p2)
        x2 = _windows(fr2, speakers, _speaker_norms(fr2, speakers), p2)
        rep = classification_report(y, _lin_loso(x2, y, speakers, n_classes, hp), labels)
        abl.append(_summary_row(label, rep, note))
        report["systems"]["silence ablation: " + label] = {kk: vv for kk, vv in rep.items() if kk != "labels"}
    report["table"] = table
    report["silence_ablation"] = abl
    report["silence_ablation_protocol"] = note
    report["elapsed_s"] = round(time.perf_counter() - t_start, 1)
    report["va_mapping"] = {"table": {lab: VA_TABLE[lab] for lab in labels}, "source": VA_SOURCE}
    if out is not None:
        save_report(report, out, title=f"speech LOSO ({len(spk_list)} speakers): UAR {report['uar']:.3f}")
    _log(progress, _format_table(table + abl))
    return report


def _swap_silence(frames, items, pipe):
    """Frames with the silence columns recomputed for ``pipe`` (or dropped)."""
    from affectedge.features._resample import resample
    from affectedge.native_kernels import silence_features

    n_m = 3 * pipe.n_mfcc
    out = []
    for f, (path, _, _) in zip(frames, items):
        if not pipe.silence:
            out.append(np.ascontiguousarray(f[:, :n_m]))
            continue
        y, sr = _read_clip(path, pipe)
        y = resample(y, sr, pipe.sr)  # as the pipeline computes its silence features
        s = silence_features(y, sr=pipe.sr, threshold_factor=pipe.threshold_factor,
                             frame_length=pipe.silence_frame_length, hop_length=pipe.silence_hop_length)
        g = f.copy()
        g[:, n_m:n_m + 4] = s.as_array(np.float32)
        out.append(g)
    return out


def _format_table(rows):
    cols = ["uar", "war"] + list(HIGH_AROUSAL + LOW_AROUSAL)
    lines = [f"{'system':<62} " + " ".join(f"{c[:7]:>7}" for c in cols)]
    for r in rows:
        lines.append(f"{r['system'][:62]:<62} " + " ".join(
            f"{r[c]:7.3f}" if isinstance(r.get(c), float) else f"{'-':>7}" for c in cols))
    return "\n".join(lines)


# ------------------------------------------------------------------- train

def _find_report(out):
    env = os.environ.get("AFFECTEDGE_SPEECH_REPORT")
    cands = [Path(env)] if env else []
    repo = Path(__file__).resolve().parents[2]
    cands += [Path.cwd() / "reports" / "speech" / "report.json", repo / "reports" / "speech" / "report.json"]
    for c in cands:
        if c.is_file():
            try:
                rep = json.loads(c.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if rep.get("task") == "speech" and rep.get("protocol") == "loso" and not rep.get("quick"):
                return c, rep
    return None, None



def load_features(data, *, layout=None, limit=None, seed=0):
    """Model inputs (n, frames, features) float32 with per-speaker calibration, labels (n,), label names."""
    items, labels, y, speakers = _corpus(data, layout)
    if limit is not None and limit < len(items):
        keep = np.sort(np.random.default_rng(seed).choice(len(items), size=limit, replace=False))
        items = [items[i] for i in keep]
        y = y[keep]
        speakers = [speakers[i] for i in keep]
    pipe = _default_pipeline()
    frames, kept, _ = _clip_frames(items, pipe)
    y, speakers = _keep(kept, labels)
    x = _windows(frames, speakers, _speaker_norms(frames, speakers), pipe)
    return np.asarray(x, dtype=np.float32), y, tuple(labels)


def train(data, out, *, layout=None, seed=0, quick=False, progress=True):
    """Train on all of ``data`` (every speaker), export ONNX, write the card."""
    from affectedge.features.speech import SpeakerNormalizer
    from affectedge.models import ModelCard, sha256_file

    t_start = time.perf_counter()
    hp = QUICK if quick else FULL
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    items, labels, y, speakers = _corpus(data, layout, quick)
    n_classes = len(labels)
    va = [VA_TABLE[lab] for lab in labels]
    pipe = _default_pipeline()
    _log(progress, f"speech train on {data}: {len(items)} clips, {len(set(speakers))} speakers, labels {labels}")
    frames, kept, skipped = _clip_frames(items, pipe, progress)
    y, speakers = _keep(kept, labels)
    x = _windows(frames, speakers, _speaker_norms(frames, speakers), pipe)
    model = _fit(x, y, n_classes, hp, seed, va, progress)
    # the uncalibrated fallback: pooled statistics of all training speakers
    pipe = pipe.with_norm(SpeakerNormalizer.fit(frames))
    onnx_path = out / "model.onnx"
    max_diff = _export(model, x[:8], onnx_path)
    save_exported_program(model, x[:8], out)
    _log(progress, f"  exported {onnx_path} ({onnx_path.stat().st_size:,} bytes); onnxruntime vs torch max |diff| "
                   f"{max_diff:.2e}")
    train_rep = _train_fit(model, x, y, labels)
    rep_path, rep = (None, None) if quick else _find_report(out)
    evaluation = {"protocol": "leave-one-speaker-out on EmoDB (10 folds), per-speaker calibration"}
    if rep is not None:
        evaluation["table"] = [{k: v for k, v in r.items() if k != "note"} for r in rep.get("table", [])] + \
            [{**{k: v for k, v in r.items() if k != "note"}, "system": "silence ablation (LR only): " + r["system"]}
             for r in rep.get("silence_ablation", [])]
        evaluation["uar"] = rep["uar"]
        evaluation["war"] = rep["war"]
        try:
            shown = os.path.relpath(rep_path)
        except ValueError:
            shown = str(rep_path)
        evaluation["source"] = f"{shown} (affectedge evaluate --task speech --protocol loso)"
        evaluation["per_class_recall"] = ", ".join(f"{k} {v:.2f}" for k, v in rep["per_class_recall"].items()
                                                   if v is not None)
    else:
        evaluation["note"] = ("no LOSO report found (run 'affectedge evaluate --task speech --protocol loso --out "
                              "reports/speech' first, or set AFFECTEDGE_SPEECH_REPORT)")
    evaluation["training_set_uar"] = train_rep["uar"]
    evaluation["training_set_note"] = "fit on the training data itself; optimistic, not a test figure"
    n_spk = len(set(speakers))
    card = ModelCard(
        id=MODEL_ID, task="speech-emotion", version="1",
        summary=("TIM-Net-style bidirectional dilated temporal CNN averaged with a logistic regression on "
                 "utterance functionals, on native-kernel MFCC + delta + silence features with per-speaker "
                 f"calibration; {n_classes} categories and approximate valence/arousal."),
        labels=tuple(labels),
        outputs={"probs": f"(batch, {n_classes}) category probabilities in label order",
                 "va": "(batch, 2) valence, arousal in [-1, 1] = probs @ table (" + VA_SOURCE + "): "
                       + ", ".join(f"{lab} {VA_TABLE[lab]}" for lab in labels)},
        input={"pipeline": pipe.name, "spec": pipe.spec, "shape": [None, *pipe.input_shape], "dtype": "float32",
               "window_s": pipe.window_s, "input_name": "features",
               "calibration": ("per speaker: SpeakerNormalizer.fit on the unnormalised frames "
                               "(pipeline.frames) of a few of the user's utterances, passed as "
                               "pipeline(audio, calibration=...); without it the training-set statistics in the "
                               "spec are used (less accurate, see evaluation)")},
        parameters=_param_count(model),
        file="model.onnx", file_sha256=sha256_file(onnx_path), file_size_bytes=onnx_path.stat().st_size,
        training_data=({"name": "EmoDB" if n_spk == 10 else str(Path(data).name),
                        "description": f"{len(kept)} utterances, {n_spk} speakers, from {data}"
                                       + (f" ({len(skipped)} unusable files skipped)" if skipped else ""),
                        "terms": EMODB_TERMS},),
        evaluation=evaluation,
        limits=(
            "Acted German speech from 10 adult speakers (5 f, 5 m), 10 sentences, studio quality: expect much lower "
            "accuracy on spontaneous, other-language, noisy or far-field speech.",
            "Features are computed on 16 kHz mono (audio at other rates is resampled with soxr); clips are "
            "centre-cropped to 4 s and shorter ones padded.",
            "Evaluated with per-speaker calibration (the test speaker's unlabelled clips); uncalibrated use is "
            "less accurate (see the evaluation table).",
            "The valence/arousal output is a probability-weighted lookup of approximate category positions, not a "
            "model of dimensional ratings.",
            "Research weights only (EmoDB terms); not for decisions about people.",
        ),
        extra={"onnx_max_abs_diff_vs_torch": max_diff, "seed": seed, "quick": bool(quick), "skipped": skipped,
               "hyper_parameters": {k: list(v) if isinstance(v, tuple) else v for k, v in hp.items()},
               "train_seconds": round(time.perf_counter() - t_start, 1), "opset_export": "torch.onnx dynamo"},
    )
    card.save(out)
    _log(progress, f"  card -> {out / 'card.json'} ({card.parameters:,} parameters, {time.perf_counter() - t_start:.0f} s)")
    return out / "card.json"


def _train_fit(model, x, y, labels):
    from .metrics import classification_report

    return classification_report(y, _predict(model, x).argmax(1), labels)


def _export(model, sample, path):
    """torch.onnx.export(dynamo=True) to fp32 ONNX; returns max |onnxruntime - torch| on ``sample``."""
    import logging
    import warnings

    import onnxruntime as ort
    import torch

    model.eval()
    xs = torch.from_numpy(np.ascontiguousarray(sample))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prev = logging.getLogger("torch.onnx").level
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        try:
            prog = torch.onnx.export(model, (xs,), dynamo=True, input_names=["features"],
                                     output_names=["probs", "va"],
                                     dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=4096)}},
                                     verbose=False)
        finally:
            logging.getLogger("torch.onnx").setLevel(prev)
    prog.save(str(path))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: sample.astype(np.float32)})
    with torch.no_grad():
        ref = model(xs)
    return float(max(np.max(np.abs(g - r.numpy())) for g, r in zip(got, ref)))


# --------------------------------------------------------- cross-corpus

def evaluate_model(model, data, *, layout=None, progress=True, out=None):
    """Score a trained model on a labelled corpus; only classes both share count."""
    from affectedge.features.speech import SpeakerNormalizer

    from .metrics import classification_report, save_report

    items = load_corpus(data, layout)
    model_labels = list(model.labels)
    corpus_labels = sorted({lab for _, lab, _ in items}, key=TAXONOMY.index)
    shared = [lab for lab in model_labels if lab in corpus_labels]
    if not shared:
        raise ParameterError(f"the model's labels {model_labels} and the corpus labels {corpus_labels} share no class")
    kept = [it for it in items if it[1] in shared]
    pipe = model.pipeline
    n_kept = len(kept)
    frames, kept, skipped = _clip_frames(kept, pipe, progress)
    speakers = [s for _, _, s in kept]
    norms = {s: SpeakerNormalizer.fit([f for f, s2 in zip(frames, speakers) if s2 == s]) for s in set(speakers)}
    x = np.stack([pipe.window(f, norms[s]) for f, s in zip(frames, speakers)])
    probs = model.predict(x)[model.output_names[0]]
    cols = [model_labels.index(lab) for lab in shared]
    pred = probs[:, cols].argmax(1)
    y = np.array([shared.index(lab) for _, lab, _ in kept])
    rep = classification_report(y, pred, shared)
    rep.update({
        "task": "speech", "model_id": model.card.id, "data": str(data), "protocol": "cross-corpus",
        "shared_classes": shared,
        "model_only_classes": [lab for lab in model_labels if lab not in shared],
        "corpus_only_classes": [lab for lab in corpus_labels if lab not in shared],
        "clips_scored": len(kept), "clips_dropped": len(items) - n_kept, "skipped": skipped,
        "note": ("only classes both share count; predictions are the most probable shared class; features "
                 "calibrated per corpus speaker from that speaker's clips (labels unused)"),
    })
    if out is not None:
        save_report(rep, out, title=f"speech cross-corpus: UAR {rep['uar']:.3f} on {len(shared)} shared classes")
    return rep
