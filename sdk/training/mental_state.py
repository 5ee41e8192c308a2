"""Mental state (concentrating / neutral / relaxed) from a 4-channel Muse headband.

Data: ``eeg/muse_mentalstate`` (Bird et al. 2018): ``<subject>-<state>-<session>.csv``
muse-lsl exports (TP9, AF7, AF8, TP10 at 256 Hz, microvolts; Right AUX
ignored). Subjects ``subjecta``-``subjectd`` have every state twice; the file
``name-concentrating-1.csv`` is treated as a fifth subject ``name`` of its
own (its origin is unknown, so it is never pooled with a-d; its LOSO fold
only tests the ``concentrating`` class).

Windows of ``window_s`` = 4 s every ``hop_s`` = 1 s of each recording go
(windows never span a timestamp gap > 0.1 s: ``subjectb-relaxed-2`` has
nine gaps; files shorter than one window give none) go
through the ``eeg-muse-bands`` pipeline (per channel: log10 band power,
relative band power and DE of delta/theta/alpha/beta/gamma -> (4, 15)), then
a small MLP (60 -> 32 -> 3, training-set standardisation baked into the
graph). Protocol ``loso``: leave one subject out; reported with ``global``
normalisation (training-fold statistics: the shipped model) and ``subject``
normalisation (each subject's windows z-scored with the mean/std of that
subject's own unlabelled windows, test subject included: a per-user
calibration, no labels). Beside it, on the same windows: logistic regression
on the same features and BrainFlow's built-in metrics -- the
MINDFULNESS and RESTFULNESS default classifiers on
``DataFilter.get_avg_band_powers`` (5 bands, mean and std over the 4
channels, with BrainFlow's filters), each score taken as P(relaxed) and
compared with ours on the relaxed-vs-concentrating windows (accuracy at 0.5
and ROC AUC).
"""

import re
import time
from pathlib import Path

import numpy as np

from affectedge.errors import ParameterError

from ._common import (check_protocol, count_parameters, loso, predict, sample_indices, shared_argmax, shared_classes,
                      torch_setup)
from .eeg_va import export_checked, plot_comparison, subject_normalise, write_card
from .metrics import classification_report, save_report

MODEL_ID = "eeg-mental-state"
DEFAULT_DATA = "eeg/muse_mentalstate"
PROTOCOLS = ("loso",)
LABELS = ("concentrating", "neutral", "relaxed")
HPARAMS = {"hidden": 32, "dropout": 0.3, "lr": 0.005, "weight_decay": 1e-3, "epochs": 300, "lr_C": 0.1,
           "window_s": 4.0, "hop_s": 1.0}
QUICK = {"epochs": 80, "hop_s": 4.0}
MUSE_TERMS = ("Published by Bird et al. (2018, 'A Study on Mental State Classification using EEG-based "
              "Brain-Machine Interface', IEEE IS) with their feature code for research use; research weights only.")
_FILE_RE = re.compile(r"^(?P<subject>[^-]+)-(?P<state>[a-z]+)-(?P<session>\d+)\.csv$")


# ------------------------------------------------------------------------- BrainFlow
def brainflow_modules():
    """(board_shim, data_filter, ml_model), loadable (see affectedge._optional.require_brainflow)."""
    from affectedge._optional import require_brainflow

    return require_brainflow()


def playback_eeg(path, *, seconds=4.5, master_board="MUSE_2_BOARD"):
    """Replay a BrainFlow file through PLAYBACK_FILE_BOARD (real time) and return EEGRecording of the EEG rows."""
    from affectedge.io import EEGRecording

    bs_mod, _, _ = brainflow_modules()
    path = Path(path)
    if not path.is_file():
        raise ParameterError(f"cannot replay {str(path)!r}: no such file")
    master = getattr(bs_mod.BoardIds, master_board).value
    params = bs_mod.BrainFlowInputParams()
    params.file = str(path)
    params.master_board = master
    bs_mod.BoardShim.disable_board_logger()
    board = bs_mod.BoardShim(bs_mod.BoardIds.PLAYBACK_FILE_BOARD.value, params)
    board.prepare_session()
    try:
        board.start_stream()
        time.sleep(float(seconds))
        data = board.get_board_data()
        board.stop_stream()
    finally:
        board.release_session()
    del board
    eeg = bs_mod.BoardShim.get_eeg_channels(master)
    return EEGRecording(data=np.ascontiguousarray(data[eeg]), channel_names=tuple(bs_mod.BoardShim.get_eeg_names(master)),
                        sample_rate_hz=float(bs_mod.BoardShim.get_sampling_rate(master)))


def brainflow_scores(windows, fs=256):
    """BrainFlow MINDFULNESS and RESTFULNESS scores of each (4, n) window: dict name -> (n_windows,)."""
    _, df_mod, ml_mod = brainflow_modules()
    feats = []
    for w in windows:
        avg, std = df_mod.DataFilter.get_avg_band_powers(np.array(w, dtype=np.float64, order="C"),
                                                         list(range(w.shape[0])), int(fs), True)
        feats.append(np.concatenate([avg, std]))
    out = {}
    for metric in ("MINDFULNESS", "RESTFULNESS"):
        params = ml_mod.BrainFlowModelParams(ml_mod.BrainFlowMetrics[metric].value,
                                             ml_mod.BrainFlowClassifiers.DEFAULT_CLASSIFIER.value)
        model = ml_mod.MLModel(params)
        model.prepare()
        try:
            out[metric.lower()] = np.array([float(model.predict(f)[0]) for f in feats])
        finally:
            model.release()
    return out


# ------------------------------------------------------------------------------ data
def list_recordings(data, layout=None):
    if layout not in (None, "muse-mentalstate"):
        raise ParameterError(f"layout={layout!r} is not known for mental-state; use 'muse-mentalstate' or leave it out")
    data = Path(data)
    if not data.is_dir():
        raise ParameterError(f"{str(data)!r} is not a folder of <subject>-<state>-<session>.csv Muse recordings")
    recs = []
    for p in sorted(data.glob("*.csv")):
        m = _FILE_RE.match(p.name)
        if m and m["state"] in LABELS:
            recs.append((p, m["subject"], m["state"], int(m["session"])))
    if not recs:
        raise ParameterError(f"{str(data)!r} holds no <subject>-<state>-<session>.csv files with states {LABELS}")
    return recs


def load_windows(data, *, layout=None, window_s=4.0, hop_s=1.0, raw=False):
    """Feature windows of every recording: X (n, 4, 15), y (n,), subjects (n,), recordings (n,) [, raw windows]."""
    from affectedge.features.eeg import MUSE_CHANNELS, MuseBandFeatures
    from affectedge.io import read_eeg_csv

    pipe = MuseBandFeatures(window_s=window_s)
    xs, ys, subs, recs, raws = [], [], [], [], []
    for path, subject, state, session in list_recordings(data, layout):
        key = (str(path), path.stat().st_mtime_ns, pipe.fs)
        if key not in _RECORDINGS:
            rec = read_eeg_csv(path, channels=list(MUSE_CHANNELS), sample_rate_hz=pipe.fs)
            _RECORDINGS[key] = (rec.data, _runs(path, rec.data.shape[1]))
        eeg, runs = _RECORDINGS[key]
        win, hop = pipe.n_samples, int(round(hop_s * pipe.fs))
        for start in [st for a, b in runs for st in range(a, b - win + 1, hop)]:
            w = eeg[:, start:start + win]
            xs.append(pipe(w))
            ys.append(LABELS.index(state))
            subs.append(subject)
            recs.append(f"{subject}-{state}-{session}")
            if raw:
                raws.append(w.astype(np.float32))
    out = (np.stack(xs), np.array(ys), np.array(subs), np.array(recs))
    return out + ((raws,) if raw else ())


_RECORDINGS = {}  # (path, mtime, fs) -> (eeg, runs): CSV parsing dominates, folds reuse it


def _runs(path, n, max_gap_s=0.1):
    """Contiguous runs [(start, stop)] of a recording (split where timestamps jump by > max_gap_s)."""
    try:
        ts = np.loadtxt(path, delimiter=",", skiprows=1, usecols=0, ndmin=1)
    except (ValueError, IndexError):
        ts = None
    if ts is None or ts.size != n:
        bounds = [(0, n)]
    else:
        cuts = np.flatnonzero(np.diff(ts) > max_gap_s) + 1
        edges = np.concatenate([[0], cuts, [n]])
        bounds = list(zip(edges[:-1], edges[1:]))
    return [(int(a), int(b)) for a, b in bounds]


# ----------------------------------------------------------------------------- model
def build_model(mean=None, std=None, *, hidden=32, dropout=0.3, n_in=(4, 15), **_):
    import torch
    from torch import nn

    class MuseMLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("mean", torch.zeros(n_in) if mean is None else torch.as_tensor(mean))
            self.register_buffer("std", torch.ones(n_in) if std is None else torch.as_tensor(std))
            self.fc1 = nn.Linear(n_in[0] * n_in[1], hidden)
            self.drop = nn.Dropout(dropout)
            self.fc2 = nn.Linear(hidden, len(LABELS))

        def logits(self, x):
            x = ((x - self.mean) / self.std).flatten(1)
            return self.fc2(self.drop(nn.functional.elu(self.fc1(x))))

        def forward(self, x):
            return torch.softmax(self.logits(x), dim=-1)

    return MuseMLP()


def fit_model(x, y, *, seed, hp):
    torch = torch_setup(seed)
    model = build_model(x.mean(0).astype(np.float32), (x.std(0) + 1e-6).astype(np.float32), **hp)
    xt = torch.as_tensor(x, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.long)
    # class-balanced, computed as the shipped weights were (float32, n / count / 3); the layer's
    # balanced_class_weights rounds once, which differs by an ulp for some counts and moves the trained weights
    counts = np.bincount(y, minlength=len(LABELS)).astype(np.float32)
    weight = torch.as_tensor(np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / len(LABELS), 0.0),
                             dtype=torch.float32)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight)
    opt = torch.optim.Adam(model.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
    model.train()
    for _ in range(hp["epochs"]):
        opt.zero_grad()
        loss_fn(model.logits(xt), yt).backward()
        opt.step()
    model.eval()
    return model


def predict_proba(model, x):
    return predict(model, x)


def _binary(y, score):
    """Relaxed (1) vs concentrating (0) windows: accuracy at 0.5 and ROC AUC of ``score`` = P(relaxed)."""
    from sklearn.metrics import roc_auc_score

    m = y != LABELS.index("neutral")
    yt = (y[m] == LABELS.index("relaxed")).astype(int)
    s = score[m]
    auc = float(roc_auc_score(yt, s)) if len(np.unique(yt)) == 2 else None
    return {"n": int(m.sum()), "accuracy": float(np.mean((s >= 0.5).astype(int) == yt)), "auc": auc,
            "uar": float(np.mean([np.mean((s[yt == c] >= 0.5) == c) for c in (0, 1) if np.any(yt == c)]))}


# ------------------------------------------------------------------------- protocols
def evaluate_protocol(data, protocol, *, layout=None, seed=0, quick=False, progress=True, out=None):
    """Leave-one-subject-out: ours (MLP) vs logistic regression vs BrainFlow's metrics."""
    check_protocol(protocol, PROTOCOLS, MODEL_ID, wording="is unknown for")
    t0 = time.perf_counter()
    hp = dict(HPARAMS, **(QUICK if quick else {}))
    x, y, subjects, _, raws = load_windows(data, layout=layout, window_s=hp["window_s"], hop_s=hp["hop_s"], raw=True)
    subs = list(dict.fromkeys(subjects))
    results, per_fold = {}, []
    for norm in ("global", "subject"):
        results[norm], folds = _loso_run(x, y, subjects, subs, norm, hp, seed)
        per_fold += folds
    brainflow = _brainflow_anchor(raws, y)
    rows = _summary_rows(results, brainflow)
    report = {
        "task": "mental-state", "model": MODEL_ID, "protocol": protocol, "quick": bool(quick), "seed": seed,
        "data": str(data), "n_windows": int(len(y)), "subjects": subs,
        "windows": {"window_s": hp["window_s"], "hop_s": hp["hop_s"]},
        "subject_note": "'name-concentrating-1.csv' is its own subject 'name' (one class only: its fold tests "
                        "concentrating windows only; under 'subject' normalisation z-scoring a one-class subject removes the class "
                        "information, so that fold is uninformative there)",
        "normalisation": {"global": "training-fold statistics baked into the model (the shipped model)",
                          "subject": "each subject z-scored with its own unlabelled windows (per-user calibration)"},
        "summary": rows, "results": results, "brainflow": brainflow, "per_fold": per_fold,
        "labels": list(LABELS), "confusion": results["global"]["ours"]["confusion"],
        "parameters": count_parameters(build_model(**hp)),
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    if out is not None:
        save_report(report, out, title=f"{MODEL_ID} LOSO (ours, global norm)")
        _plot_rows(rows, Path(out) / "report_comparison.png")
    return report


def _loso_run(x, y, subjects, subs, norm, hp, seed):
    """One LOSO pass (``subs`` in order) under ``norm``: ours and the logistic regression; results, folds."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    xx = subject_normalise(x, subjects) if norm == "subject" else x
    prob = np.zeros((len(y), len(LABELS)))
    lr_pred = np.zeros(len(y), np.int64)
    lr_prob = np.zeros((len(y), len(LABELS)))
    per_fold = []
    for i, (s, te) in enumerate(loso(subjects, subs)):
        tr = ~te
        model = fit_model(xx[tr], y[tr], seed=seed + i, hp=hp)
        prob[te] = predict_proba(model, xx[te])
        lr = make_pipeline(StandardScaler(), LogisticRegression(C=hp["lr_C"], max_iter=3000, class_weight="balanced"))
        lr.fit(xx[tr].reshape(tr.sum(), -1), y[tr])
        lr_prob[te] = lr.predict_proba(xx[te].reshape(te.sum(), -1))
        lr_pred[te] = lr_prob[te].argmax(1)
        per_fold.append({"normalisation": norm, "test_subject": s, "n": int(te.sum()),
                         "classes": [LABELS[c] for c in np.unique(y[te])],
                         "ours_accuracy": float(np.mean(prob[te].argmax(1) == y[te])),
                         "lr_accuracy": float(np.mean(lr_pred[te] == y[te]))})
    ir, ic = LABELS.index("relaxed"), LABELS.index("concentrating")
    return {
        "ours": classification_report(y, prob.argmax(1), LABELS),
        "lr": classification_report(y, lr_pred, LABELS),
        "ours_relaxed_vs_concentrating": _binary(y, prob[:, ir] / (prob[:, ir] + prob[:, ic] + 1e-12)),
        "lr_relaxed_vs_concentrating": _binary(y, lr_prob[:, ir] / (lr_prob[:, ir] + lr_prob[:, ic] + 1e-12)),
    }, per_fold


def _brainflow_anchor(raws, y):
    """BrainFlow's MINDFULNESS / RESTFULNESS on the raw windows, each score taken as P(relaxed)."""
    bf = brainflow_scores(raws, fs=256)
    brainflow = {f"brainflow_{k}": _binary(y, v) for k, v in bf.items()}
    for k, v in bf.items():
        brainflow[f"brainflow_{k}"]["mean_score"] = {lab: float(v[y == i].mean()) for i, lab in enumerate(LABELS)}
    return brainflow


def _summary_rows(results, brainflow):
    rows = []
    for norm, res in results.items():
        for method in ("ours", "lr"):
            rows.append({"method": f"{'MLP (ours)' if method == 'ours' else 'logistic regression'} ({norm})",
                         "acc_3class": round(res[method]["accuracy"], 4), "uar_3class": round(res[method]["uar"], 4),
                         "f1_3class": round(res[method]["macro_f1"], 4),
                         "acc_rel_vs_conc": round(res[f"{method}_relaxed_vs_concentrating"]["accuracy"], 4),
                         "auc_rel_vs_conc": round(res[f"{method}_relaxed_vs_concentrating"]["auc"], 4)})
    for k, v in brainflow.items():
        rows.append({"method": k.replace("_", " ") + " (score as P(relaxed))", "acc_3class": None,
                     "uar_3class": None, "f1_3class": None, "acc_rel_vs_conc": round(v["accuracy"], 4),
                     "auc_rel_vs_conc": round(v["auc"], 4)})
    return rows


def _plot_rows(rows, path):
    plot_comparison([{"method": r["method"], **{k: (v or 0.0) for k, v in r.items() if k != "method"}}
                     for r in rows], path, title=f"{MODEL_ID} LOSO")


def load_features(data, *, layout=None, limit=None, seed=0):
    """Model inputs (n, 4, 15) float32 (card pipeline, hop 1 s), labels (n,), label names."""
    x, y, _, _ = load_windows(data, layout=layout, window_s=HPARAMS["window_s"], hop_s=HPARAMS["hop_s"])
    idx = sample_indices(len(x), limit, seed)
    if idx is not None:
        x, y = x[idx], y[idx]
    return x.astype(np.float32), y, LABELS


def train(data, out, *, layout=None, seed=0, quick=False, progress=True):
    from affectedge.features.eeg import MuseBandFeatures

    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    hp = dict(HPARAMS, **(QUICK if quick else {}))
    x, y, subjects, _ = load_windows(data, layout=layout, window_s=hp["window_s"], hop_s=hp["hop_s"])
    model = fit_model(x, y, seed=seed, hp=hp)
    diffs = export_checked(model, x, out, ("probs",), 256)
    train_acc = float(np.mean(predict_proba(model, x).argmax(1) == y))
    rep = evaluate_protocol(data, "loso", layout=layout, seed=seed, quick=quick, progress=progress,
                            out=out / "evaluation" / "loso")
    _plot_rows(rep["summary"], out / "evaluation.png")
    pipe = MuseBandFeatures(window_s=hp["window_s"])
    n_params = count_parameters(model)
    card = write_card(
        out, model_id=MODEL_ID, task="eeg-mental-state",
        summary=(f"Concentrating / neutral / relaxed from a {hp['window_s']:g} s, 4-channel Muse window "
                 f"(band powers, relative powers, DE) with a {n_params:,}-parameter MLP."),
        labels=LABELS, outputs={"probs": "(B, 3) class probabilities of " + ", ".join(LABELS)},
        pipeline=pipe, window_s=pipe.window_s, n_params=n_params,
        training_data=[{"name": "Muse mental state (Bird et al. 2018)",
                        "description": f"{len(np.unique(subjects))} subjects (a-d and a file 'name-' as its own "
                                       f"subject), 3 states, {len(y)} windows of {hp['window_s']:g} s every "
                                       f"{hp['hop_s']:g} s.",
                        "terms": MUSE_TERMS}],
        evaluation={"protocol": "leave-one-subject-out (5 subjects); ours vs logistic regression vs BrainFlow "
                                "MINDFULNESS / RESTFULNESS metrics",
                    "table": rep["summary"], "train_accuracy": train_acc, "onnx_max_abs_diff": diffs,
                    "figures": ["evaluation.png", "evaluation/loso/report.png", "evaluation/loso/report_comparison.png"],
                    "quick": bool(quick)},
        limits=["Only 4 subjects (+1 single-recording 'name' subject), one session pair each: LOSO numbers have a "
                "wide uncertainty and the states were self-induced (reading / listening / nothing), not validated "
                "measures of attention.",
                "Windows overlap (hop < window) inside a recording; subjects never overlap between train and test.",
                "Muse dry electrodes pick up blinks and jaw EMG; no artifact rejection is applied.",
                "Research weights only; not a medical device."],
        extra={"hyperparameters": hp, "seed": seed, "train_wall_s": round(time.perf_counter() - t0, 1)})
    return card


def evaluate_model(model, data, *, layout=None, progress=True, out=None):
    """Score a trained Model on a Muse mental-state corpus (only the classes both share count)."""
    spec = model.card.input.get("spec", {})
    x, y, subjects, _, raws = load_windows(data, layout=layout, window_s=spec.get("window_s", 4.0), hop_s=1.0,
                                           raw=True)
    shared = shared_classes(LABELS, model.labels,
                            f"model {model.card.id!r} labels {model.labels} share no class with {LABELS}")
    feats = np.stack([model.pipeline(w) for w in raws])
    probs = model.predict(feats)[model.output_names[0]]
    keep = np.isin(y, [LABELS.index(lab) for lab in shared])
    yt = np.array([shared.index(LABELS[v]) for v in y[keep]])
    pred = shared_argmax(probs[keep], model.labels, shared)
    report = {"task": "mental-state", "model": model.card.id, "data": str(data), "classes": shared,
              **classification_report(yt, pred, shared)}
    if out is not None:
        save_report(report, out, title=f"{model.card.id} on {Path(data).name}")
    return report
