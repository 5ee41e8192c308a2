"""Speech emotion: a small TIM-Net-style temporal CNN on native-kernel features.

Task module (see :mod:`affectedge.training`): ``train``, ``evaluate_protocol``
("loso"), ``evaluate_model``.

Features: :class:`affectedge.features.speech.SpeechFeatures` (pipeline
``speech-mfcc-silence`` with ``lld=True, calibration_flag=True``): 20 MFCC +
deltas + delta-deltas, the 4 silence features (threshold factor 0.3), the
25 eGeMAPS v02 LLDs of :func:`affectedge.native_kernels.egemaps_llds`
(pitch, jitter, shimmer, HNR, H1-H2, H1-A3, F1-F3 with bandwidths and
levels, loudness, alpha ratio, Hammarberg index, slopes, flux, MFCC 1-4) on
the same 16 ms grid, 251 frames (4 s at 16 kHz, hop 256), each column
z-normalised per speaker (calibration from the speaker's unlabelled clips),
or with the pooled training statistics when uncalibrated; a ``calibrated``
column says which.

Model (one ONNX graph, input ``features`` (batch, 251, 91)):

* a TIM-Net-inspired temporal CNN (Ye et al., ICASSP 2023): a 1x1 input
  convolution (32 channels) average-pooled to half the frame rate (32 ms
  steps), then for *each* time direction (forward and time-reversed) a
  stack of temporal-aware blocks -- causal dilated convolutions (kernel 2,
  dilations 1, 2, 4, ..., 32), batch norm, ReLU, a sigmoid gate multiplying the block
  input -- whose outputs are averaged over the valid frames at every scale
  (multi-scale), summed over both directions and fused with learned softmax
  weights; a linear layer gives the class logits. It sees the calibrated
  column and is trained on calibrated and uncalibrated windows alike;
* two multinomial logistic regressions on utterance functionals (mean,
  std, min, max over valid frames of every frame feature) computed inside
  the graph, fitted with scikit-learn and copied into the graph: one on
  calibrated windows, one on uncalibrated ones; the ``calibrated`` column
  selects between them;
* outputs ``probs`` = mean of the CNN's and the selected LR's probability
  vectors, and ``va`` = ``probs @ VA_TABLE`` (valence, arousal in [-1, 1]).

The valence/arousal table places each category at an *approximate* point of
the circumplex (Russell 1980), using the pleasure/arousal ratings of
Russell & Mehrabian (1977) rounded to two decimals ("calm" = their
"relaxed"; neutral at the origin). The ``va`` output is an expectation over
category probabilities, not a model trained on dimensional labels (no
dimensional labels are in the training data to do better with).

Training: every clip twice -- as recorded, and through one simulated
recording condition per speaker (:mod:`affectedge.training.augment`:
speed perturbation 0.9-1.1, then a room (reverberation RT60 0.2-0.6 s), a
telephone line (300-3400 Hz, 8 kHz, mu-law) or nothing, then white, pink,
brown or babble noise at 10-30 dB SNR and a gain of -12..+6 dB), each copy
normalised with its speaker's statistics under that condition (calibrated
windows) and with the pooled statistics (uncalibrated windows). AdamW with
a one-cycle schedule, class-balanced cross-entropy with label smoothing
0.1, feature-space augmentation (a random time mask, up to 5 zeroed
feature columns, Gaussian noise 0.1 on the normalised features);
hyper-parameters in :data:`FULL` (``QUICK``: 2 epochs on the first 4
speakers). The logistic regressions (C=0.05, balanced) are fitted on the
same windows.

Evaluation (``evaluate_protocol(..., "loso")``): leave-one-speaker-out,
retraining everything per fold (augmentation of the training speakers
only); the test speaker is normalised with the statistics of its own clips
(labels unused), and, uncalibrated, with the training clips' pooled
statistics. The report holds the ensemble, the CNN and the LR alone, each
calibrated and uncalibrated; the test speaker's clips through three
held-out simulated recording conditions (harsher: SNR 5-20 dB, RT60 up to
0.8 s; other seeds); the openSMILE eGeMAPSv02 + linear SVM anchors with and
without per-speaker z-normalisation (features cached in
``~/.cache/affectedge``); and, with the cheaper LR-only protocol on the
same folds, the feature-set x augmentation ablation, the silence ablation
(no silence features; threshold factors 0.2 / 0.3 / 0.5) and binary
arousal (high: anger, happiness, fear; low: sadness, neutral, boredom) for
each silence variant. ``train`` puts the figures of
``reports/speech/report.json`` (looked up in the working directory, then
the repository; or ``$AFFECTEDGE_SPEECH_REPORT``) on the card, so run the
evaluation before training. ``evaluate_model`` scores a trained model on
another corpus with ``calibration="speaker"`` or ``"none"``, adding the
4-class figure and binary arousal (see there).

Reproducibility: fixed seeds, ``torch.use_deterministic_algorithms``,
single-threaded; the same seed gives the same weights on the same machine.
"""

import hashlib
import os
import time
from pathlib import Path

import numpy as np

from affectedge.errors import ParameterError

from ._common import (balanced_class_weights, check_protocol, count_parameters, export_onnx, find_report, log, loso,
                      onnx_max_abs_diff, sample_indices, save_card, save_exported_program, shared_argmax,
                      shared_classes, single_thread, torch_setup, warn)
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
FULL = {"epochs": 15, "batch": 32, "lr": 3e-3, "weight_decay": 1e-3, "label_smoothing": 0.1, "channels": 32,
        "dilations": (1, 2, 4, 8, 16, 32), "dropout": 0.1, "C_lr": 0.05, "swa": 0.0}
QUICK = {**FULL, "epochs": 2}

EMODB_TERMS = "EmoDB (TU Berlin): free for research use; research weights only"


# ----------------------------------------------------------------- features

def _default_pipeline(**over):
    """The v2 pipeline: MFCC + deltas + silence + the 25 eGeMAPS LLDs + the calibrated flag."""
    from affectedge.features.speech import SpeechFeatures

    return SpeechFeatures(**{"lld": True, "calibration_flag": True, **over})


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
            warn(f"skipped {path}: {reason[:300]}")
            continue
        out.append(f)
        kept.append(item)
    log(progress, f"  features of {len(kept)} clips in {time.perf_counter() - t0:.1f} s"
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
    """Model inputs: each clip normalised by its speaker's statistics (calibrated), or all by ``global_norm``
    (pooled statistics: the uncalibrated input, its flag 0)."""
    if global_norm is not None:
        return np.stack([pipeline.window(f, global_norm, calibrated=False) for f in frames])
    return np.stack([pipeline.window(f, norms[s]) for f, s in zip(frames, speakers)])


# Recording conditions of the training augmentation: mild (SNR 10-30 dB, RT60 0.2-0.6 s), one per speaker;
# the robustness test uses harsher ones (SNR 5-20 dB, RT60 0.2-0.8 s) with other seeds.
AUG_TRAIN = {"snr_db": (10.0, 30.0), "rt60": (0.2, 0.6)}
AUG_TEST = {"snr_db": (5.0, 20.0), "rt60": (0.2, 0.8)}
TEST_CONDITIONS = ("room", "phone", "street")


def _augmented_frames(items, pipeline, seed, *, condition=None, params=AUG_TRAIN):
    """Frames of every clip of ``items`` (all usable) through one recording condition per speaker (or
    ``condition`` for all), random parameters per clip; babble noise from other speakers' clips."""
    from affectedge.features._resample import resample

    from . import augment

    rng = np.random.default_rng(seed)
    speakers = sorted({s for _, _, s in items})
    conds = {s: condition or augment.TRAIN_CONDITIONS[int(rng.integers(len(augment.TRAIN_CONDITIONS)))]
             for s in speakers}
    audio = []
    for path, _, _ in items:
        y, sr = _read_clip(path, pipeline)
        audio.append(resample(y, sr, pipeline.sr) if sr != pipeline.sr else y)
    out = []
    for i, (_, _, s) in enumerate(items):
        others = [j for j in rng.choice(len(items), size=min(8, len(items)), replace=False) if items[j][2] != s]
        babble = [audio[j] for j in others] or None
        y = augment.apply_condition(audio[i], pipeline.sr, conds[s], rng, babble=babble, **params)
        out.append(pipeline.frames(y, pipeline.sr))
    return out, conds


def _train_inputs(frames, aug, speakers, pipe, idx):
    """(x_cal, x_uncal, y-index, pooled normaliser) of the clips ``idx``: calibrated windows (each speaker's own
    statistics, per recording condition) and uncalibrated ones (pooled statistics of all of them, flag 0)."""
    from affectedge.features.speech import SpeakerNormalizer

    sets = [frames] + ([aug] if aug is not None else [])
    spk = [speakers[i] for i in idx]
    gnorm = SpeakerNormalizer.fit([f[i] for f in sets for i in idx])
    xc, xu = [], []
    for f in sets:
        sub = [f[i] for i in idx]
        xc.append(_windows(sub, spk, _speaker_norms(sub, spk), pipe))
        xu.append(_windows(sub, spk, None, pipe, global_norm=gnorm))
    order = np.concatenate([np.asarray(idx)] * len(sets))
    return np.concatenate(xc), np.concatenate(xu), order, gnorm


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
            self.register_buffer("lin_w", torch.zeros(n_classes, n_func))  # calibrated head
            self.register_buffer("lin_b", torch.zeros(n_classes))
            self.register_buffer("lin_wu", torch.zeros(n_classes, n_func))  # uncalibrated head
            self.register_buffer("lin_bu", torch.zeros(n_classes))
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

        def linear(self, x):
            """The logistic-regression heads on the functionals: the calibrated one where the window's
            ``calibrated`` column (second to last) is 1, the uncalibrated one where it is 0."""
            f = self.functionals(x)
            flag = x[:, :, -2].amax(dim=1, keepdim=True).clamp(0.0, 1.0)
            p_cal = torch.softmax(f @ self.lin_w.T + self.lin_b, dim=1)
            p_unc = torch.softmax(f @ self.lin_wu.T + self.lin_bu, dim=1)
            return flag * p_cal + (1.0 - flag) * p_unc

        def forward(self, x):
            p_cnn = torch.softmax(self.logits(x), dim=1)
            probs = self.mix * p_cnn + (1.0 - self.mix) * self.linear(x)
            return probs, probs @ self.va_table

    return SpeechTIM()


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
    torch = torch_setup(seed, deterministic=True, blas=True)
    model = _build_model(x.shape[2], n_classes, hp, np.zeros((n_classes, 2), np.float32))
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
    n = x.shape[0]
    steps = hp["epochs"] * int(np.ceil(n / hp["batch"]))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=hp["lr"], total_steps=steps, pct_start=0.2)
    cw = torch.from_numpy(balanced_class_weights(y, n_classes))
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
            log(progress, f"    epoch {ep + 1}/{hp['epochs']} loss {loss.item():.3f} ({time.perf_counter() - t0:.0f} s)")
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
    # constant columns (the calibrated flag) carry nothing: their weights stay 0
    keep = f.std(axis=0) > 1e-6
    mu, sd = f.mean(axis=0), f.std(axis=0) + 1e-6
    mu, sd = np.where(keep, mu, 0.0), np.where(keep, sd, np.inf)
    clf = LogisticRegression(C=hp["C_lr"], max_iter=3000, class_weight="balanced")
    clf.fit(np.where(keep, (f - mu) / np.where(keep, sd, 1.0), 0.0), y)
    w = np.zeros((n_classes, f.shape[1]))
    b = np.full(n_classes, -1e4)  # classes absent from training never win
    coef, icpt = clf.coef_, clf.intercept_
    if coef.shape[0] == 1:  # two classes: scikit-learn keeps one row (for classes_[1])
        coef, icpt = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], icpt])
    w[clf.classes_] = coef / sd
    b[clf.classes_] = icpt - (coef / sd) @ mu
    return w.astype(np.float32), b.astype(np.float32)


def _fit(x, y, n_classes, hp, seed, va_table, progress=False, crops=None, x_uncal=None):
    """The CNN on the calibrated windows ``x`` and the uncalibrated ones ``x_uncal`` (same labels ``y``), the
    calibrated LR head on ``x``, the uncalibrated head on ``x_uncal`` (on ``x`` when None)."""
    import torch

    xu = x if x_uncal is None else x_uncal
    x_cnn, y_cnn = (x, y) if x_uncal is None else (np.concatenate([x, xu]), np.concatenate([y, y]))
    model = _train_cnn(x_cnn, y_cnn, n_classes, hp, seed, progress, crops)
    w, b = _fit_linear(x, y, n_classes, hp)
    wu, bu = (w, b) if x_uncal is None else _fit_linear(xu, y, n_classes, hp)
    with torch.no_grad():
        for name, v in (("lin_w", w), ("lin_b", b), ("lin_wu", wu), ("lin_bu", bu)):
            getattr(model, name).copy_(torch.from_numpy(v))
        model.va_table.copy_(torch.tensor(np.asarray(va_table, np.float32)))
    return model


def _predict(model, x, part="all"):
    import torch

    with torch.no_grad():
        xt = torch.from_numpy(x)
        if part == "cnn":
            return torch.softmax(model.logits(xt), dim=1).numpy()
        if part == "lin":
            return model.linear(xt).numpy()
        return model(xt)[0].numpy()


def _param_count(model):
    """Trained parameters: the CNN's and the logistic regression's (graph buffers ``lin_w``, ``lin_b``)."""
    return count_parameters(model, model.lin_w, model.lin_b, model.lin_wu, model.lin_bu)


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
    log(progress, f"  openSMILE eGeMAPSv02 of {len(paths)} clips in {time.perf_counter() - t0:.0f} s (cached: {cache})")
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

    pred = np.zeros_like(y)
    for _, te in loso(speakers):
        clf = make_pipeline(StandardScaler(), LinearSVC(C=0.01, class_weight="balanced", max_iter=20000))
        clf.fit(f[~te], y[~te])
        pred[te] = clf.predict(f[te])
    return pred


def _lin_loso(x, y, speakers, n_classes, hp):
    pred = np.zeros_like(y)
    for _, te in loso(speakers):
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


def _inputs(items, labels, pipe, progress=False):
    """``(frames, kept items, skipped, y, speakers, windows)`` of the usable clips, each speaker normalised by
    the statistics of its own clips."""
    frames, kept, skipped = _clip_frames(items, pipe, progress)
    y, speakers = _keep(kept, labels)
    return frames, kept, skipped, y, speakers, _windows(frames, speakers, _speaker_norms(frames, speakers), pipe)


def _two_speakers(speakers, data, what=""):
    spk_list = sorted(set(speakers))
    if len(spk_list) < 2:
        raise ParameterError(f"leave-one-speaker-out needs at least 2 speakers{what}; {str(data)!r} has {spk_list}")
    return spk_list


# --------------------------------------------------------------- protocol

# the systems of the LOSO report: name -> (prediction key, note)
_UNCAL_NOTE = ("test speaker normalised with the training clips' pooled statistics (no calibration; the model's "
               "uncalibrated head)")
_SYSTEMS = {
    "ours: ensemble CNN + LR on functionals (shipped model)": ("ensemble", ""),
    "ours: temporal CNN alone": ("cnn", ""),
    "ours: LR on functionals of our features alone": ("lin", ""),
    "ours: ensemble, test speaker uncalibrated": ("ensemble_uncal", _UNCAL_NOTE),
    "ours: temporal CNN alone, uncalibrated": ("cnn_uncal", _UNCAL_NOTE),
    "ours: LR alone, uncalibrated": ("lin_uncal", _UNCAL_NOTE),
}
_ABLATION_NOTE = "ablation protocol: LR on functionals of our features (no CNN), same LOSO folds and speaker z-norm"
_ROBUST_NOTE = ("the test speaker's clips through a held-out simulated recording condition (harsher than the "
                "training augmentation: SNR 5-20 dB, RT60 0.2-0.8 s, other seeds); calibrated = that speaker's "
                "statistics under the condition")


def evaluate_protocol(data, protocol, *, layout=None, seed=0, quick=False, progress=True, out=None):
    """Leave-one-speaker-out evaluation with anchors, robustness, feature / augmentation / silence ablations."""
    from .metrics import classification_report, save_report

    check_protocol(protocol, PROTOCOLS, "speech")
    t_start = time.perf_counter()
    single_thread()
    hp = QUICK if quick else FULL
    items, labels, y, speakers = _corpus(data, layout, quick)
    spk_list = _two_speakers(speakers, data)
    pipe = _default_pipeline()
    log(progress, f"speech LOSO on {data}: {len(items)} clips, {len(spk_list)} speakers, labels {labels}")
    frames, items, skipped, y, speakers, x = _inputs(items, labels, pipe, progress)
    spk_list = _two_speakers(speakers, data, " with usable clips")
    t0 = time.perf_counter()
    aug, conds = _augmented_frames(items, pipe, seed + 1000)
    tests = {} if quick else {c: _augmented_frames(items, pipe, seed + 2000 + i, condition=c, params=AUG_TEST)[0]
                              for i, c in enumerate(TEST_CONDITIONS)}
    log(progress, f"  augmented frames ({len(tests) + 1} conditions) in {time.perf_counter() - t0:.0f} s")
    preds, probs, per_fold = _loso_folds(x, y, speakers, frames, pipe, labels, hp, seed, progress, aug, tests)
    reps = {k: classification_report(y, v, labels) for k, v in preds.items()}
    report = _loso_report(data, quick, seed, spk_list, reps, skipped, per_fold, items, y, labels, preds, probs, pipe,
                          hp)
    report["augmentation"] = {"training_conditions": conds, "parameters": {k: list(v) for k, v in AUG_TRAIN.items()},
                              "chains": _aug_chains()}
    table = []
    for name, (k, note) in _SYSTEMS.items():
        _add_system(report, table, name, reps[k], note)
    robust = []
    for c in tests:
        for m in ("cal", "uncal"):
            _add_system(report, robust, f"{c}, {'calibrated' if m == 'cal' else 'uncalibrated'}", reps[f"{c}/{m}"],
                        _ROBUST_NOTE, prefix="held-out condition: ")
    report["robustness"] = robust
    if quick:
        report["table"] = table
        report["not_run"] = "quick run: robustness, anchors and ablations not run"
        report["elapsed_s"] = round(time.perf_counter() - t_start, 1)
        if out is not None:
            save_report(report, out, title=f"speech LOSO quick: UAR {report['uar']:.3f}")
        return report
    try:
        for name, rep, note in _anchors(items, y, speakers, labels, progress):
            _add_system(report, table, name, rep, note)
    except ImportError as exc:
        report["anchors_skipped"] = f"opensmile/scikit-learn not installed ({exc})"
    report["feature_ablation"] = _feature_ablation(frames, aug, tests, y, speakers, labels, pipe, hp, report)
    abl = []
    for label, rep in _silence_ablation(frames, items, y, speakers, labels, hp):
        _add_system(report, abl, label, rep, _ABLATION_NOTE, prefix="silence ablation: ")
    report["table"] = table
    report["silence_ablation"] = abl
    report["silence_ablation_protocol"] = _ABLATION_NOTE
    report["arousal"] = _arousal_ablation(frames, items, y, speakers, labels, hp)
    report["elapsed_s"] = round(time.perf_counter() - t_start, 1)
    report["va_mapping"] = {"table": {lab: VA_TABLE[lab] for lab in labels}, "source": VA_SOURCE}
    if out is not None:
        save_report(report, out, title=f"speech LOSO ({len(spk_list)} speakers): UAR {report['uar']:.3f}")
    log(progress, _format_table(table + robust + report["feature_ablation"] + abl))
    return report


def _aug_chains():
    from . import augment

    return {c: list(augment.CONDITIONS[c]) for c in augment.TRAIN_CONDITIONS}


# feature groups of the ablation: name -> predicate on the pipeline's feature names
_GROUPS = {
    "MFCC + deltas + silence (the v1 features)": lambda n: not n.startswith("egemaps_"),
    "eGeMAPS LLDs alone": lambda n: n.startswith("egemaps_"),
    "MFCC + deltas + eGeMAPS LLDs (no silence)": lambda n: n not in _SILENCE,
    "MFCC + deltas + silence + eGeMAPS LLDs (shipped)": lambda n: True,
}
_SILENCE = ("silence_ratio", "silent_segments", "mean_silence_s", "longest_silence_s")


def _lin_two_heads(frames, aug, tests, y, speakers, pipe, hp, n_classes):
    """LR-only LOSO with a calibrated and an uncalibrated head: predictions clean and per held-out condition."""
    out = {k: np.zeros_like(y) for k in ["cal", "uncal"] + [f"{c}/{m}" for c in tests for m in ("cal", "uncal")]}
    for _, te in loso(speakers):
        tr, ti = np.flatnonzero(~te), np.flatnonzero(te)
        xc, xu, order, gnorm = _train_inputs(frames, aug, speakers, pipe, tr)
        heads = {"cal": _fit_linear(xc, y[order], n_classes, hp), "uncal": _fit_linear(xu, y[order], n_classes, hp)}
        spk = [speakers[i] for i in ti]
        for c, fc in [("", frames)] + list(tests.items()):
            sub = [fc[i] for i in ti]
            for m, xx in (("cal", _windows(sub, spk, _speaker_norms(sub, spk), pipe)),
                          ("uncal", _windows(sub, None, None, pipe, global_norm=gnorm))):
                w, b = heads[m]
                out[f"{c}/{m}" if c else m][te] = np.argmax(_functionals_np(xx) @ w.T + b, axis=1)
    return out


def _feature_ablation(frames, aug, tests, y, speakers, labels, pipe, hp, report):
    """Rows of the feature-set x augmentation ablation (LR-only protocol, both heads, held-out conditions)."""
    from .metrics import classification_report

    rows = []
    names = pipe.feature_names[:pipe.n_frame_features]
    for group, keep in _GROUPS.items():
        drop = np.array([not keep(n) for n in names])
        fr = [np.where(drop, 0.0, f).astype(np.float32) for f in frames]  # zero columns: constant, ignored by the LR
        ag = [np.where(drop, 0.0, f).astype(np.float32) for f in aug]
        ts = {c: [np.where(drop, 0.0, f).astype(np.float32) for f in v] for c, v in tests.items()}
        for with_aug in (False, True):
            pr = _lin_two_heads(fr, ag if with_aug else None, ts, y, speakers, pipe, hp, len(labels))
            name = f"{group}, {'with' if with_aug else 'without'} augmentation"
            row = {"system": name, "features": int((~drop).sum())}
            for k, v in pr.items():
                rep = classification_report(y, v, labels)
                row["uar_" + k.replace("/", "_")] = rep["uar"]
                report["systems"]["feature ablation (LR only): " + name + " / " + k] = \
                    {kk: vv for kk, vv in rep.items() if kk != "labels"}
            row["uar"] = row["uar_cal"]
            rows.append(row)
    return rows


def _arousal_ablation(frames, items, y, speakers, labels, hp):
    """Binary arousal (high: anger, happiness, fear; low: sadness, neutral, boredom), LR-only LOSO, calibrated
    and uncalibrated, without silence features and at threshold factors 0.2 / 0.3 / 0.5."""
    from .metrics import classification_report

    high = [labels.index(c) for c in HIGH_AROUSAL if c in labels]
    low = [labels.index(c) for c in LOW_AROUSAL if c in labels]
    sel = np.flatnonzero(np.isin(y, high + low))
    ya = np.isin(y[sel], high).astype(np.int64)  # 1 = high
    spk = [speakers[i] for i in sel]
    rows = []
    for label, over in _SILENCE_VARIANTS:
        p2 = _default_pipeline(**over)
        fr2 = frames if over == {"threshold_factor": 0.3} else _swap_silence(frames, items, p2)
        fr2 = [fr2[i] for i in sel]
        pr = _lin_two_heads(fr2, None, {}, ya, spk, p2, hp, 2)
        row = {"system": label}
        for m in ("cal", "uncal"):
            rep = classification_report(ya, pr[m], ["low", "high"])
            row["uar_" + m] = rep["uar"]
            row["recall_high_" + m] = rep["per_class_recall"]["high"]
            row["recall_low_" + m] = rep["per_class_recall"]["low"]
        rows.append(row)
    return {"protocol": "LR on functionals (no CNN), LOSO, binary labels high = anger/happiness/fear, low = "
                        "sadness/neutral/boredom (disgust left out)", "clips": int(sel.size), "rows": rows}


def _loso_folds(x, y, speakers, frames, pipe, labels, hp, seed, progress, aug=None, tests=None):
    """Retrain on all speakers but one, for each speaker: predictions of every system, probabilities, folds.

    ``aug``: frames of the training augmentation (one recording condition per speaker), added to the training
    set of every fold; ``tests``: {condition: frames} of every clip under a held-out recording condition,
    scored calibrated (the test speaker's own statistics under that condition) and uncalibrated.
    """
    from .metrics import classification_report

    n_classes = len(labels)
    va = [VA_TABLE[lab] for lab in labels]
    keys = ["ensemble", "cnn", "lin", "ensemble_uncal", "cnn_uncal", "lin_uncal"]
    keys += [f"{c}/{m}" for c in (tests or {}) for m in ("cal", "uncal")]
    preds = {k: np.zeros_like(y) for k in keys}
    probs = np.zeros((len(y), 2, n_classes))
    per_fold = []
    for s, te in loso(speakers):
        t0 = time.perf_counter()
        tr, ti = np.flatnonzero(~te), np.flatnonzero(te)
        xc, xu, order, gnorm = _train_inputs(frames, aug, speakers, pipe, tr)
        model = _fit(xc, y[order], n_classes, hp, seed, va, x_uncal=xu)
        xs = x[te]
        xsu = _windows([frames[i] for i in ti], None, None, pipe, global_norm=gnorm)
        for suffix, xx in (("", xs), ("_uncal", xsu)):
            p_cnn, p_lin = _predict(model, xx, "cnn"), _predict(model, xx, "lin")
            if not suffix:
                probs[te, 0], probs[te, 1] = p_cnn, p_lin
            preds["cnn" + suffix][te] = p_cnn.argmax(1)
            preds["lin" + suffix][te] = p_lin.argmax(1)
            preds["ensemble" + suffix][te] = _predict(model, xx).argmax(1)
        for c, fc in (tests or {}).items():
            sub = [fc[i] for i in ti]
            spk = [speakers[i] for i in ti]
            preds[f"{c}/cal"][te] = _predict(model, _windows(sub, spk, _speaker_norms(sub, spk), pipe)).argmax(1)
            preds[f"{c}/uncal"][te] = _predict(model, _windows(sub, None, None, pipe, global_norm=gnorm)).argmax(1)
        fold = classification_report(y[te], preds["ensemble"][te], labels)
        per_fold.append({"speaker": s, "n": int(te.sum()), "uar": fold["uar"], "war": fold["war"],
                         "uar_cnn": classification_report(y[te], preds["cnn"][te], labels)["uar"],
                         "uar_uncal": classification_report(y[te], preds["ensemble_uncal"][te], labels)["uar"]})
        log(progress, f"  fold speaker {s}: UAR {fold['uar']:.3f} (cnn {per_fold[-1]['uar_cnn']:.3f}, uncalibrated "
                      f"{per_fold[-1]['uar_uncal']:.3f}) {time.perf_counter() - t0:.0f} s")
    return preds, probs, per_fold


def _loso_report(data, quick, seed, spk_list, reps, skipped, per_fold, items, y, labels, preds, probs, pipe, hp):
    """The LOSO report's head: the shipped ensemble's figures, folds, per-clip predictions, the set-up."""
    return {
        "task": "speech", "model_id": MODEL_ID, "protocol": "loso", "data": str(data), "quick": bool(quick),
        "seed": seed, "n_speakers": len(spk_list), **reps["ensemble"], "skipped": skipped,
        "per_fold": per_fold,
        "predictions": [{"file": os.path.basename(p), "speaker": s, "label": labels[t], "pred": labels[e],
                         "p_cnn": [round(float(v), 4) for v in pc], "p_lin": [round(float(v), 4) for v in pl]}
                        for (p, _, s), t, e, pc, pl in zip(items, y, preds["ensemble"], probs[:, 0], probs[:, 1])],
        "normalisation": ("per-speaker z-normalisation of every feature column; the test speaker's statistics come "
                          "from all of its own clips with their labels unused (transductive, unlabelled "
                          "calibration); training speakers each use their own statistics"),
        "features": pipe.spec, "hyper_parameters": _hp_json(hp),
        "systems": {},
    }


def _hp_json(hp):
    return {k: list(v) if isinstance(v, tuple) else v for k, v in hp.items()}


def _add_system(report, rows, name, rep, note, prefix=""):
    report["systems"][prefix + name] = {kk: vv for kk, vv in rep.items() if kk != "labels"}
    rows.append(_summary_row(name, rep, note))


def _anchors(items, y, speakers, labels, progress):
    """``(name, report, note)`` of the eGeMAPS + linear SVM anchors; ImportError without opensmile."""
    from .metrics import classification_report

    eg = egemaps_features([p for p, _, _ in items], progress)  # the usable clips only
    n_classes = len(labels)
    return [(name, classification_report(y, _svm_loso(f, y, speakers, n_classes), labels), note)
            for name, f, note in (("anchor: eGeMAPSv02 + linear SVM, per-speaker z-norm",
                                   _znorm_by_speaker(eg, speakers),
                                   "88 openSMILE functionals, LinearSVC(C=0.01), speaker z-norm from unlabelled "
                                   "clips"),
                                  ("anchor: eGeMAPSv02 + linear SVM, no speaker norm", eg,
                                   "88 openSMILE functionals, LinearSVC(C=0.01), global standardisation only"))]


_SILENCE_VARIANTS = (("no silence features", {"silence": False}),
                     ("silence, threshold factor 0.2", {"threshold_factor": 0.2}),
                     ("silence, threshold factor 0.3", {"threshold_factor": 0.3}),
                     ("silence, threshold factor 0.5", {"threshold_factor": 0.5}))


def _silence_ablation(frames, items, y, speakers, labels, hp):
    """``(label, report)`` of the silence ablation: the cheap LR-only protocol on the same folds and norm."""
    from .metrics import classification_report

    out = []
    for label, over in _SILENCE_VARIANTS:
        p2 = _default_pipeline(**over)
        fr2 = frames if over == {"threshold_factor": 0.3} else _swap_silence(frames, items, p2)
        x2 = _windows(fr2, speakers, _speaker_norms(fr2, speakers), p2)
        out.append((label, classification_report(y, _lin_loso(x2, y, speakers, len(labels), hp), labels)))
    return out


def _swap_silence(frames, items, pipe):
    """Frames with the silence columns recomputed for ``pipe`` (or dropped)."""
    from affectedge.features._resample import resample
    from affectedge.native_kernels import silence_features

    n_m = 3 * pipe.n_mfcc
    out = []
    for f, (path, _, _) in zip(frames, items):
        if not pipe.silence:
            out.append(np.ascontiguousarray(np.delete(f, np.s_[n_m:n_m + 4], axis=1)))
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
    return find_report("speech", env="AFFECTEDGE_SPEECH_REPORT",
                       accept=lambda r: r.get("task") == "speech" and r.get("protocol") == "loso")


def load_features(data, *, layout=None, limit=None, seed=0):
    """Model inputs (n, frames, features) float32 with per-speaker calibration, labels (n,), label names."""
    items, labels, _, _ = _corpus(data, layout)
    keep = sample_indices(len(items), limit, seed)
    if keep is not None:
        items = [items[i] for i in keep]
    _, _, _, y, _, x = _inputs(items, labels, _default_pipeline())
    return np.asarray(x, dtype=np.float32), y, tuple(labels)


def train(data, out, *, layout=None, seed=0, quick=False, progress=True):
    """Train on all of ``data`` (every speaker), export ONNX, write the card."""
    t_start = time.perf_counter()
    hp = QUICK if quick else FULL
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    items, labels, y, speakers = _corpus(data, layout, quick)
    n_classes = len(labels)
    va = [VA_TABLE[lab] for lab in labels]
    pipe = _default_pipeline()
    log(progress, f"speech train on {data}: {len(items)} clips, {len(set(speakers))} speakers, labels {labels}")
    frames, kept, skipped, y, speakers, x = _inputs(items, labels, pipe, progress)
    aug, conds = _augmented_frames(kept, pipe, seed + 1000)
    xc, xu, order, gnorm = _train_inputs(frames, aug, speakers, pipe, np.arange(len(kept)))
    model = _fit(xc, y[order], n_classes, hp, seed, va, progress, x_uncal=xu)
    # the uncalibrated fallback: pooled statistics of all training clips, augmented ones included
    pipe = pipe.with_norm(gnorm)
    onnx_path = export_onnx(model, x[:8], out / "model.onnx", input_names=["features"], output_names=["probs", "va"],
                            dynamic_shapes={"x": {0: _batch_dim()}})
    max_diff = max(onnx_max_abs_diff(model, onnx_path, x[:8]).values())
    save_exported_program(model, x[:8], out)
    log(progress, f"  exported {onnx_path} ({onnx_path.stat().st_size:,} bytes); onnxruntime vs torch max |diff| "
                  f"{max_diff:.2e}")
    rep_path, rep = (None, None) if quick else _find_report(out)
    evaluation = _card_evaluation(rep_path, rep, _train_fit(model, x, y, labels))
    n_spk = len(set(speakers))
    card = save_card(
        out, id=MODEL_ID, task="speech-emotion", version="2",
        summary=("TIM-Net-style bidirectional dilated temporal CNN averaged with logistic regressions on "
                 "utterance functionals (one for calibrated, one for uncalibrated input), on native-kernel MFCC + "
                 "delta + silence + eGeMAPS LLD features (pitch, jitter, shimmer, HNR, formants, loudness, "
                 "spectral balance), trained with speed / noise / reverberation / gain / telephone augmentation; "
                 f"{n_classes} categories and approximate valence/arousal."),
        labels=tuple(labels),
        outputs={"probs": f"(batch, {n_classes}) category probabilities in label order",
                 "va": "(batch, 2) valence, arousal in [-1, 1] = probs @ table (" + VA_SOURCE + "): "
                       + ", ".join(f"{lab} {VA_TABLE[lab]}" for lab in labels)},
        input={"pipeline": pipe.name, "spec": pipe.spec, "shape": [None, *pipe.input_shape], "dtype": "float32",
               "window_s": pipe.window_s, "input_name": "features",
               "calibration": ("per speaker: SpeakerNormalizer.fit on the unnormalised frames "
                               "(pipeline.frames) of a few of the user's utterances, passed as "
                               "pipeline(audio, calibration=...); the window's 'calibrated' column is then 1 and "
                               "the calibrated head is used. Without it the pooled training statistics in the "
                               "spec are used, the column is 0 and the uncalibrated head answers (less accurate, "
                               "see evaluation)")},
        parameters=_param_count(model),
        training_data=({"name": "EmoDB" if n_spk == 10 else str(Path(data).name),
                        "description": f"{len(kept)} utterances, {n_spk} speakers, from {data}"
                                       + (f" ({len(skipped)} unusable files skipped)" if skipped else ""),
                        "terms": EMODB_TERMS},),
        evaluation=evaluation,
        limits=_LIMITS,
        extra={"onnx_max_abs_diff_vs_torch": max_diff, "seed": seed, "quick": bool(quick), "skipped": skipped,
               "augmentation": {"training_conditions": conds, "parameters": {k: list(v) for k, v in AUG_TRAIN.items()},
                                "chains": _aug_chains()},
               "hyper_parameters": _hp_json(hp),
               "train_seconds": round(time.perf_counter() - t_start, 1), "opset_export": "torch.onnx dynamo"},
    )
    log(progress, f"  card -> {card} ({_param_count(model):,} parameters, {time.perf_counter() - t_start:.0f} s)")
    return card


_LIMITS = (
    "Acted German speech from 10 adult speakers (5 f, 5 m), 10 sentences, studio quality, augmented with "
    "simulated rooms, noise and telephone lines: expect much lower accuracy on spontaneous, other-language, "
    "noisy or far-field speech; the robustness rows of the evaluation are simulations on EmoDB, not other "
    "corpora.",
    "Features are computed on 16 kHz mono (audio at other rates is resampled with soxr); clips are "
    "centre-cropped to 4 s and shorter ones padded.",
    "Evaluated with per-speaker calibration (the test speaker's unlabelled clips); uncalibrated use is "
    "less accurate (see the evaluation table).",
    "The valence/arousal output is a probability-weighted lookup of approximate category positions, not a "
    "model of dimensional ratings.",
    "Research weights only (EmoDB terms); not for decisions about people.",
)


def _batch_dim():
    import torch

    return torch.export.Dim("batch", min=1, max=4096)


def _card_evaluation(rep_path, rep, train_rep):
    """The card's evaluation: the figures of the LOSO report ``rep`` (None: not found) and the training fit."""
    evaluation = {"protocol": "leave-one-speaker-out on EmoDB (10 folds), per-speaker calibration"}
    if rep is not None:
        evaluation["table"] = [{k: v for k, v in r.items() if k != "note"} for r in rep.get("table", [])] + \
            [{**{k: v for k, v in r.items() if k != "note"}, "system": "silence ablation (LR only): " + r["system"]}
             for r in rep.get("silence_ablation", [])]
        evaluation["robustness"] = [{k: v for k, v in r.items() if k in ("system", "uar", "war")}
                                    for r in rep.get("robustness", [])]
        evaluation["robustness_note"] = _ROBUST_NOTE
        evaluation["feature_ablation"] = rep.get("feature_ablation", [])
        evaluation["feature_ablation_note"] = ("LR-only protocol, both heads; uar_cal / uar_uncal clean, "
                                               "uar_<condition>_<cal|uncal> under the held-out conditions")
        if "arousal" in rep:
            evaluation["arousal"] = rep["arousal"]
        if "systems" in rep and "ours: ensemble, test speaker uncalibrated" in rep["systems"]:
            evaluation["uar_uncalibrated"] = rep["systems"]["ours: ensemble, test speaker uncalibrated"]["uar"]
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
    return evaluation


def _train_fit(model, x, y, labels):
    from .metrics import classification_report

    return classification_report(y, _predict(model, x).argmax(1), labels)


# --------------------------------------------------------- cross-corpus

CALIBRATIONS = ("speaker", "none")
FOUR_CLASSES = ("anger", "happiness", "neutral", "sadness")


def evaluate_model(model, data, *, layout=None, progress=True, out=None, calibration="speaker",
                   unknown_speaker="error", train_data=None):
    """Score a trained model on a labelled corpus it has never seen; only classes both share count.

    ``calibration``: ``"speaker"`` normalises each corpus speaker with the statistics of that speaker's clips
    (labels unused), ``"none"`` uses the model's training statistics (the uncalibrated head). The report adds
    the 4-class figure (anger, happiness, neutral, sadness) and binary arousal (from the model's probabilities,
    and, with ``train_data`` (default: EmoDB under the shared data folder, when present), from LR arousal
    classifiers trained there without silence features and at threshold factors 0.2 / 0.3 / 0.5).
    """
    from .metrics import classification_report, save_report

    if calibration not in CALIBRATIONS:
        raise ParameterError(f"calibration={calibration!r} is unknown; choose 'speaker' (per-speaker statistics "
                             "from the corpus speaker's clips) or 'none' (the model's training statistics)")
    items = load_corpus(data, layout, unknown_speaker=unknown_speaker)
    model_labels = list(model.labels)
    corpus_labels = sorted({lab for _, lab, _ in items}, key=TAXONOMY.index)
    shared = shared_classes(model_labels, corpus_labels,
                            f"the model's labels {model_labels} and the corpus labels {corpus_labels} share no class")
    kept = [it for it in items if it[1] in shared]
    pipe = model.pipeline
    n_kept = len(kept)
    frames, kept, skipped = _clip_frames(kept, pipe, progress)
    speakers = [s for _, _, s in kept]
    if calibration == "speaker":
        x = _windows(frames, speakers, _speaker_norms(frames, speakers), pipe)
    else:
        x = np.stack([pipe.window(f, None) for f in frames])
    probs = model.predict(x)[model.output_names[0]]
    pred = shared_argmax(probs, model_labels, shared)
    y = np.array([shared.index(lab) for _, lab, _ in kept])
    rep = classification_report(y, pred, shared)
    rep.update({
        "task": "speech", "model_id": model.card.id, "data": str(data), "protocol": "cross-corpus",
        "calibration": calibration,
        "shared_classes": shared,
        "model_only_classes": [lab for lab in model_labels if lab not in shared],
        "corpus_only_classes": [lab for lab in corpus_labels if lab not in shared],
        "clips_scored": len(kept), "clips_dropped": len(items) - n_kept, "skipped": skipped,
        "speakers": len(set(speakers)),
        "note": ("only classes both share count; predictions are the most probable shared class; "
                 + ("features calibrated per corpus speaker from that speaker's clips (labels unused)"
                    if calibration == "speaker" else "no calibration: the model's training statistics")),
    })
    four = [c for c in FOUR_CLASSES if c in shared]
    if len(four) >= 2:
        sel = np.isin(y, [shared.index(c) for c in four])
        p4 = shared_argmax(probs[sel], model_labels, four)
        rep["four_class"] = {k: v for k, v in classification_report(
            np.array([four.index(shared[t]) for t in y[sel]]), p4, four).items() if k != "labels"}
        rep["four_class"]["classes"] = four
    rep["arousal"] = _arousal_cross(model, probs, kept, frames, speakers, calibration, train_data, progress)
    if out is not None:
        save_report(rep, out, title=f"speech cross-corpus ({calibration} calibration): UAR {rep['uar']:.3f} on "
                                    f"{len(shared)} shared classes")
    return rep


def _arousal_cross(model, probs, kept, frames, speakers, calibration, train_data, progress):
    """Binary arousal on a corpus: from the model's probabilities, and from LR arousal classifiers trained on
    ``train_data`` with each silence variant (``None`` if that corpus is absent)."""
    from .metrics import classification_report

    labels = [lab for _, lab, _ in kept]
    sel = np.array([lab in HIGH_AROUSAL + LOW_AROUSAL for lab in labels])
    out = {"high": list(HIGH_AROUSAL), "low": list(LOW_AROUSAL), "clips": int(sel.sum())}
    if sel.sum() == 0 or len({lab in HIGH_AROUSAL for lab, ok in zip(labels, sel) if ok}) < 2:
        out["note"] = "the corpus lacks high- or low-arousal clips: not scored"
        return out
    ya = np.array([lab in HIGH_AROUSAL for lab in labels])[sel].astype(np.int64)
    ml = list(model.labels)
    hi = [ml.index(c) for c in HIGH_AROUSAL if c in ml]
    lo = [ml.index(c) for c in LOW_AROUSAL if c in ml]
    pa = (probs[sel][:, hi].sum(1) > probs[sel][:, lo].sum(1)).astype(np.int64)
    out["model"] = classification_report(ya, pa, ["low", "high"])["uar"]
    out["model_note"] = "high when the model's probability mass on high-arousal classes exceeds the low ones'"
    train_data = Path(train_data) if train_data is not None else _default_train_data()
    if train_data is None or not Path(train_data).exists():
        out["silence_variants"] = "not run: no training corpus (pass train_data)"
        return out
    t_items, t_labels, t_y, _ = _corpus(train_data, None)
    t_items = [it for it in t_items if it[1] in HIGH_AROUSAL + LOW_AROUSAL]
    pipe0 = _default_pipeline()
    t_frames, t_items, _ = _clip_frames(t_items, pipe0, progress)
    t_ya = np.array([lab in HIGH_AROUSAL for _, lab, _ in t_items]).astype(np.int64)
    t_spk = [s for _, _, s in t_items]
    items_sel = [it for it, ok in zip(kept, sel) if ok]
    frames_sel = [f for f, ok in zip(frames, sel) if ok]
    spk_sel = [s for s, ok in zip(speakers, sel) if ok]
    hp = FULL
    rows = []
    for label, over in _SILENCE_VARIANTS:
        p2 = _default_pipeline(**over)
        tr_f = t_frames if over == {"threshold_factor": 0.3} else _swap_silence(t_frames, t_items, p2)
        te_f = _swap_silence(_as_pipeline(frames_sel, model.pipeline, pipe0), items_sel, p2) \
            if over != {"threshold_factor": 0.3} else _as_pipeline(frames_sel, model.pipeline, pipe0)
        xc, xu, order, gnorm = _train_inputs(tr_f, None, t_spk, p2, np.arange(len(tr_f)))
        if calibration == "speaker":
            xt, (w, b) = _windows(te_f, spk_sel, _speaker_norms(te_f, spk_sel), p2), _fit_linear(xc, t_ya[order], 2, hp)
        else:
            xt, (w, b) = _windows(te_f, None, None, p2, global_norm=gnorm), _fit_linear(xu, t_ya[order], 2, hp)
        pr = np.argmax(_functionals_np(xt) @ w.T + b, axis=1)
        r = classification_report(ya, pr, ["low", "high"])
        rows.append({"system": label, "uar": r["uar"], "recall_high": r["per_class_recall"]["high"],
                     "recall_low": r["per_class_recall"]["low"]})
    out["silence_variants"] = rows
    out["silence_protocol"] = (f"LR arousal classifiers trained on {train_data} ({len(t_items)} clips), applied "
                               f"here with calibration={calibration!r}")
    return out


def _as_pipeline(frames, have, want):
    """Frames computed by the model's pipeline ``have``, checked to have the layout of ``want``."""
    if getattr(have, "n_frame_features", None) == want.n_frame_features:
        return frames
    raise ParameterError("the arousal ablation needs a model with the current speech pipeline (eGeMAPS LLDs); "
                         f"this model's pipeline computes {have.n_frame_features} features per frame")


def _default_train_data():
    from ._calibration import shared_data_dir

    try:
        root = shared_data_dir()
    except Exception:
        return None
    p = Path(root) / DEFAULT_DATA if root is not None else None
    return p if p is not None and p.is_dir() else None
