"""Mental state (concentrating / neutral / relaxed) from a 4-channel Muse headband.

Data: ``eeg/muse_mentalstate`` (Bird et al. 2018): ``<subject>-<state>-<session>.csv``
muse-lsl exports (TP9, AF7, AF8, TP10 at 256 Hz, microvolts; Right AUX
ignored). Subjects ``subjecta``-``subjectd`` have every state twice.
``name-concentrating-1.csv`` is a copy of ``subjecta-concentrating-1.csv``
(the same 15192 timestamps; 7 TP9 samples differ): a recording whose
timestamps repeat another's is dropped as a duplicate (the copy of the
subject with more recordings is kept), otherwise the same signal would sit
on both sides of a leave-one-subject-out split.

Windows of ``window_s`` = 4 s every ``hop_s`` = 1 s of each recording
(never across a timestamp gap > 0.1 s: ``subjectb-relaxed-2`` has nine
gaps) go through the ``eeg-muse-bands`` pipeline (per channel: log10 band
power, relative band power and DE of delta/theta/alpha/beta/gamma ->
(4, 15)), unchanged, so the runtime's streamed features stay equal to it.

Artefacts: :class:`affectedge.features.quality.ArtefactDetector` runs over
each recording in order, as the runtime runs it over a session (a window
whose AF7/AF8 peak-to-peak is > 3 x, or whose TP9/TP10 30-45 Hz power is
> 10 x, the median of the session's previous windows: blink / jaw clench /
muscle). Those windows are left out of training; at run time they get the
status ``"artefact"`` and no answer, so the headline figures are on the
accepted windows (figures on all windows are reported too).

Model (why: BrainFlow's channel-averaged band powers generalise across
subjects better than per-channel features): inside the exported graph the
(4, 15) input is reduced over the 4 channels to the mean and the std of the
relative band powers (BrainFlow's 10 features) and the mean log10 band
power (15 features), standardised with the training statistics (buffers),
then an MLP 15 -> 16 -> 3. No per-session normalisation: it was measured
worse (``subject`` rows: each recording holds one state, so the session's
statistics carry the class; a subject's all-states statistics are a
calibration a live user does not have), so the card has no
``input_stats`` and the runtime's session calibration stays off for it.

Protocol ``loso``: leave one subject out (4 subjects). Normalisations:
``global`` (training-fold statistics in the model: the shipped model),
``subject`` (each subject's (4, 15) inputs z-scored with the mean/std of all
its own unlabelled accepted windows and mapped onto the training scale, the
offline twin of the runtime's session calibration) and ``subject-neutral``
(the same with statistics from the subject's first neutral recording only,
about 1 minute of a single state). Beside it, on the same windows: logistic
regression on the per-channel and on the channel-averaged features, a small
grid (features x hidden units, shown in full in the report; the shipped
configuration was picked from it on the same 4 folds: there is no fifth
subject to select on) and BrainFlow's built-in metrics -- the MINDFULNESS
and RESTFULNESS default classifiers on ``DataFilter.get_avg_band_powers``
(5 bands, mean and std over the 4 channels, with BrainFlow's filters), each
score taken as P(relaxed) and compared with ours on the
relaxed-vs-concentrating windows (accuracy at 0.5 and ROC AUC; ours:
P(relaxed) / (P(relaxed) + P(concentrating))).
"""

import re
import time
from pathlib import Path

import numpy as np

from affectedge.errors import ParameterError

from ._common import (check_protocol, count_parameters, loso, predict, sample_indices, shared_argmax, shared_classes,
                      torch_setup)
from .eeg_va import export_checked, plot_comparison, write_card
from .metrics import classification_report, save_report

MODEL_ID = "eeg-mental-state"
DEFAULT_DATA = "eeg/muse_mentalstate"
PROTOCOLS = ("loso",)
LABELS = ("concentrating", "neutral", "relaxed")
HPARAMS = {"features": "channel-averaged", "hidden": 16, "dropout": 0.2, "lr": 0.01, "weight_decay": 1e-3,
           "epochs": 300, "lr_C": 0.1, "window_s": 4.0, "hop_s": 1.0}
QUICK = {"epochs": 150, "hop_s": 2.0}
FEATURE_SETS = ("channel-averaged", "channel-averaged+asymmetry", "per-channel")
GRID = [{"features": f, "hidden": h} for f in FEATURE_SETS for h in (0, 16)]
NORMALISATIONS = ("global", "subject", "subject-neutral")
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
    """Feature windows of every (non-duplicate) recording.

    Returns a dict: ``x`` (n, 4, 15) float32, ``y`` (n,), ``subjects``,
    ``recordings`` (n,) names, ``artefact`` (n,) bool (the runtime's
    :class:`~affectedge.features.quality.ArtefactDetector` run over each
    recording in order), ``duplicates`` (notes on the recordings dropped) and,
    with ``raw``, ``raw`` (list of (4, samples) float32 windows).
    """
    from affectedge.features.eeg import MUSE_CHANNELS, MuseBandFeatures
    from affectedge.features.quality import ArtefactDetector
    from affectedge.io import read_eeg_csv

    pipe = MuseBandFeatures(window_s=window_s)
    recs = list_recordings(data, layout)
    loaded = []
    for path, subject, state, session in recs:
        key = (str(path), path.stat().st_mtime_ns, pipe.fs)
        if key not in _RECORDINGS:
            rec = read_eeg_csv(path, channels=list(MUSE_CHANNELS), sample_rate_hz=pipe.fs)
            _RECORDINGS[key] = (rec.data,) + _runs(path, rec.data.shape[1])
        loaded.append(_RECORDINGS[key])
    keep, duplicates = _drop_duplicates(recs, [sig for _, _, sig in loaded])
    out = {k: [] for k in ("x", "y", "subjects", "recordings", "artefact", "raw")}
    win, hop = pipe.n_samples, int(round(hop_s * pipe.fs))
    for (path, subject, state, session), (eeg, runs, _), ok in zip(recs, loaded, keep):
        if not ok:
            continue
        det = ArtefactDetector(MUSE_CHANNELS, pipe.fs)
        for start in [st for a, b in runs for st in range(a, b - win + 1, hop)]:
            w = eeg[:, start:start + win]
            out["x"].append(pipe(w))
            out["y"].append(LABELS.index(state))
            out["subjects"].append(subject)
            out["recordings"].append(f"{subject}-{state}-{session}")
            out["artefact"].append(not det.check(w).ok)
            if raw:
                out["raw"].append(w.astype(np.float32))
    res = {"x": np.stack(out["x"]), "y": np.array(out["y"]), "subjects": np.array(out["subjects"]),
           "recordings": np.array(out["recordings"]), "artefact": np.array(out["artefact"], bool),
           "duplicates": duplicates}
    if raw:
        res["raw"] = out["raw"]
    return res


_RECORDINGS = {}  # (path, mtime, fs) -> (eeg, runs, signature): CSV parsing dominates, folds reuse it


def _runs(path, n, max_gap_s=0.1):
    """(contiguous runs [(start, stop)] split where timestamps jump by > max_gap_s, timestamp signature)."""
    try:
        ts = np.loadtxt(path, delimiter=",", skiprows=1, usecols=0, ndmin=1)
    except (ValueError, IndexError):
        ts = None
    if ts is None or ts.size != n:
        return [(0, n)], None
    cuts = np.flatnonzero(np.diff(ts) > max_gap_s) + 1
    edges = np.concatenate([[0], cuts, [n]])
    sig = (int(n), round(float(ts[0]), 3), round(float(ts[-1]), 3), round(float(ts.sum()), 1))
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])], sig


def _drop_duplicates(recs, sigs):
    """keep flags and notes: a recording with the timestamps of another is a copy; keep the copy whose
    subject has more recordings (then the first by name)."""
    per_subject = {}
    for _, subject, _, _ in recs:
        per_subject[subject] = per_subject.get(subject, 0) + 1
    keep, notes, groups = [True] * len(recs), [], {}
    for i, sig in enumerate(sigs):
        if sig is not None:
            groups.setdefault(sig, []).append(i)
    for idx in groups.values():
        if len(idx) < 2:
            continue
        best = max(idx, key=lambda i: (per_subject[recs[i][1]], -i))
        for i in idx:
            if i != best:
                keep[i] = False
                notes.append(f"{recs[i][0].name} dropped: same {sigs[i][0]} timestamps as {recs[best][0].name} "
                             "(a copy of it)")
    return keep, notes


# ----------------------------------------------------------------------------- model
def build_model(mean=None, std=None, *, features="channel-averaged", hidden=16, dropout=0.2, **_):
    """(B, 4, 15) eeg-muse-bands input -> (B, 3) probabilities; the channel reduction is in the graph.

    ``features``: "channel-averaged" (mean and std over channels of the
    relative band powers, mean log10 band power: 15), "+asymmetry" (also
    AF8 - AF7 and TP10 - TP9 log10 band power: 25) or "per-channel" (the 60
    inputs as they are). ``hidden`` 0: a linear softmax model.
    ``mean`` / ``std``: the training statistics of those features.
    """
    import torch
    from torch import nn

    if features not in FEATURE_SETS:
        raise ParameterError(f"features={features!r} is unknown; choose one of {', '.join(FEATURE_SETS)}")
    n_feat = {"channel-averaged": 15, "channel-averaged+asymmetry": 25, "per-channel": 60}[features]

    class MuseMentalState(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = features
            self.register_buffer("mean", torch.zeros(n_feat) if mean is None else torch.as_tensor(mean).reshape(-1))
            self.register_buffer("std", torch.ones(n_feat) if std is None else torch.as_tensor(std).reshape(-1))
            if hidden:
                self.net = nn.Sequential(nn.Linear(n_feat, hidden), nn.ELU(), nn.Dropout(dropout),
                                         nn.Linear(hidden, len(LABELS)))
            else:
                self.net = nn.Linear(n_feat, len(LABELS))

        def reduce(self, x):  # x: (B, 4 channels TP9 AF7 AF8 TP10, 15)
            if self.features == "per-channel":
                return x.flatten(1)
            logp, rel = x[:, :, 0:5], x[:, :, 5:10]
            rel_mean = rel.mean(dim=1)
            rel_std = torch.sqrt(((rel - rel_mean.unsqueeze(1)) ** 2).mean(dim=1) + 1e-12)
            parts = [rel_mean, rel_std, logp.mean(dim=1)]
            if self.features == "channel-averaged+asymmetry":
                parts += [logp[:, 2] - logp[:, 1], logp[:, 3] - logp[:, 0]]
            return torch.cat(parts, dim=1)

        def logits(self, x):
            return self.net((self.reduce(x) - self.mean) / self.std)

        def forward(self, x):
            return torch.softmax(self.logits(x), dim=-1)

    return MuseMentalState()


def reduced_features(x, features="channel-averaged"):
    """The model's first step (its channel reduction) on (n, 4, 15) inputs, as NumPy (n, n_feat)."""
    import torch

    with torch.no_grad():
        return build_model(features=features).reduce(torch.as_tensor(np.asarray(x, np.float32))).numpy()


def fit_model(x, y, *, seed, hp):
    torch = torch_setup(seed)
    f = reduced_features(x, hp.get("features", "channel-averaged")).astype(np.float64)
    model = build_model(f.mean(0).astype(np.float32), (f.std(0) + 1e-6).astype(np.float32), **hp)
    xt = torch.as_tensor(x, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.long)
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


def _p_relaxed(prob):
    ir, ic = LABELS.index("relaxed"), LABELS.index("concentrating")
    return prob[:, ir] / (prob[:, ir] + prob[:, ic] + 1e-12)


# ------------------------------------------------------------------- normalisation
def session_calibrated(x, subjects, recordings, mode, use, mean, std):
    """Each subject's (4, 15) inputs z-scored with its own unlabelled statistics, mapped onto ``mean``/``std``.

    The offline twin of the runtime's session calibration. ``mode``
    "subject": statistics from all of the subject's windows in ``use``;
    "subject-neutral": from its first neutral recording only (about a minute
    of one state, the calibration a live user could give).
    """
    out = np.empty_like(x, dtype=np.float32)
    for s in np.unique(subjects):
        m = subjects == s
        ref = m & use
        if mode == "subject-neutral":
            first = sorted(r for r in np.unique(recordings[m]) if "-neutral-" in r)
            if first:
                ref = ref & (recordings == first[0])
        if not ref.any():
            ref = m
        mu, sd = x[ref].mean(0), x[ref].std(0) + 1e-6
        out[m] = ((x[m] - mu) / sd) * std + mean
    return out


# ------------------------------------------------------------------------- protocols
def evaluate_protocol(data, protocol, *, layout=None, seed=0, quick=False, progress=True, out=None):
    """Leave-one-subject-out: ours vs logistic regression vs BrainFlow's metrics, on accepted and all windows."""
    check_protocol(protocol, PROTOCOLS, MODEL_ID, wording="is unknown for")
    t0 = time.perf_counter()
    hp = dict(HPARAMS, **(QUICK if quick else {}))
    d = load_windows(data, layout=layout, window_s=hp["window_s"], hop_s=hp["hop_s"], raw=True)
    x, y, subjects, recs, art = d["x"], d["y"], d["subjects"], d["recordings"], d["artefact"]
    subs = list(dict.fromkeys(subjects))
    probs, per_fold = {}, []
    for norm in NORMALISATIONS:
        p, folds = _loso_probs(x, y, subjects, recs, art, subs, norm, hp, seed)
        probs[f"ours ({norm})"] = p
        per_fold += folds
    grid = []
    for g in ([] if quick else GRID):
        ghp = dict(hp, **g)
        p, _ = _loso_probs(x, y, subjects, recs, art, subs, "global", ghp, seed)
        grid.append({**g, **_scores(y, p, ~art)})
    for name, p in _lr_probs(x, y, subjects, art, subs, hp).items():
        probs[name] = p
    bf = brainflow_scores(d["raw"], fs=256)
    results = {"accepted": {}, "all": {}}
    for subset, m in (("accepted", ~art), ("all", np.ones(len(y), bool))):
        for name, p in probs.items():
            results[subset][name] = {**classification_report(y[m], p[m].argmax(1), LABELS),
                                     "relaxed_vs_concentrating": _binary(y[m], _p_relaxed(p)[m])}
        for k, v in bf.items():
            results[subset][f"brainflow {k}"] = {"relaxed_vs_concentrating": _binary(y[m], v[m]),
                                                 "mean_score": {lab: float(v[m & (y == i)].mean())
                                                                for i, lab in enumerate(LABELS)}}
    rows = _summary_rows(results)
    artefacts = {str(s): {"windows": int(np.sum(subjects == s)), "rejected": int(np.sum(art & (subjects == s)))}
                 for s in subs}
    shipped = results["accepted"]["ours (global)"]
    report = {
        "task": "mental-state", "model": MODEL_ID, "protocol": protocol, "quick": bool(quick), "seed": seed,
        "data": str(data), "n_windows": int(len(y)), "n_accepted": int(np.sum(~art)), "subjects": [str(s) for s in subs],
        "windows": {"window_s": hp["window_s"], "hop_s": hp["hop_s"]},
        "duplicates": d["duplicates"],
        "artefacts": {"per_subject": artefacts, "rule": _ARTEFACT_RULE,
                      "use": "left out of training; at run time an artefact window gets status 'artefact' and no "
                             "answer, so 'accepted' is what a user sees"},
        "normalisation": {"global": "training-fold statistics in the model (the shipped model)",
                          "subject": "each subject's inputs z-scored with all its own unlabelled accepted windows "
                                     "(all states: a per-user calibration a live user may not match), mapped onto "
                                     "the training scale",
                          "subject-neutral": "the same with statistics from the subject's first neutral recording "
                                             "only (about 1 minute of one state)"},
        "features": _FEATURES, "hyperparameters": hp,
        "grid": grid, "grid_note": ("global normalisation, accepted windows; the shipped configuration "
                                    f"({hp['features']}, hidden {hp['hidden']}) was picked from this grid on the same "
                                    "4 folds (no fifth subject to select on)") if grid else "skipped in quick mode",
        "summary": rows, "results": results, "per_fold": per_fold,
        "labels": list(LABELS), "confusion": shipped["confusion"],
        "parameters": count_parameters(build_model(**hp)),
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    if out is not None:
        save_report(report, out, title=f"{MODEL_ID} LOSO (ours, global norm, accepted windows)")
        _plot_rows(rows, Path(out) / "report_comparison.png")
    return report


_ARTEFACT_RULE = ("affectedge.features.quality.ArtefactDetector over each recording in order: AF7/AF8 "
                  "peak-to-peak > 3 x, or TP9/TP10 30-45 Hz power > 10 x, the median of the recording's previous "
                  "windows (from the 9th window on)")
_FEATURES = ("in the graph: mean over the 4 channels of the relative band powers (delta, theta, alpha, beta, "
             "gamma), their std over the channels, and the mean over the channels of the log10 band powers (15 "
             "features), standardised with the training statistics")


def _scores(y, p, m):
    b = _binary(y[m], _p_relaxed(p)[m])
    return {"acc_3class": round(float(np.mean(p[m].argmax(1) == y[m])), 4), "acc_rel_vs_conc": round(b["accuracy"], 4),
            "auc_rel_vs_conc": round(b["auc"], 4) if b["auc"] is not None else None}


def _loso_probs(x, y, subjects, recs, art, subs, norm, hp, seed):
    """Held-out probabilities of ours under ``norm`` (training on the accepted windows of the other subjects)."""
    p = np.zeros((len(y), len(LABELS)))
    per_fold = []
    for i, (s, te) in enumerate(loso(subjects, subs)):
        tr = ~te & ~art
        if norm == "global":
            xx = x
        else:
            xx = session_calibrated(x, subjects, recs, norm, ~art, x[tr].mean(0), x[tr].std(0) + 1e-6)
        model = fit_model(xx[tr], y[tr], seed=seed + i, hp=hp)
        p[te] = predict_proba(model, xx[te])
        ok = te & ~art
        per_fold.append({"normalisation": norm, "features": hp["features"], "hidden": hp["hidden"],
                         "test_subject": s, "n": int(te.sum()), "n_accepted": int(ok.sum()),
                         "accuracy_accepted": float(np.mean(p[ok].argmax(1) == y[ok]))})
    return p, per_fold


def _lr_probs(x, y, subjects, art, subs, hp):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    out = {}
    for name, f in (("logistic regression per-channel (global)", x.reshape(len(x), -1)),
                    ("logistic regression channel-averaged (global)", reduced_features(x))):
        p = np.zeros((len(y), len(LABELS)))
        for s, te in loso(subjects, subs):
            tr = ~te & ~art
            lr = make_pipeline(StandardScaler(), LogisticRegression(C=hp["lr_C"], max_iter=3000,
                                                                    class_weight="balanced"))
            lr.fit(f[tr], y[tr])
            p[te] = lr.predict_proba(f[te])
        out[name] = p
    return out


def _summary_rows(results):
    rows = []
    for subset, res in results.items():
        for method, r in res.items():
            b = r["relaxed_vs_concentrating"]
            rows.append({"windows": subset, "method": method if not method.startswith("brainflow") else
                         f"{method} (score as P(relaxed))",
                         "acc_3class": round(r["accuracy"], 4) if "accuracy" in r else None,
                         "uar_3class": round(r["uar"], 4) if "uar" in r else None,
                         "f1_3class": round(r["macro_f1"], 4) if "macro_f1" in r else None,
                         "acc_rel_vs_conc": round(b["accuracy"], 4),
                         "auc_rel_vs_conc": round(b["auc"], 4) if b["auc"] is not None else None})
    return rows


def _plot_rows(rows, path):
    plot_comparison([{"method": r["method"], **{k: (v or 0.0) for k, v in r.items()
                                                if k in ("acc_3class", "acc_rel_vs_conc", "auc_rel_vs_conc")}}
                     for r in rows if r["windows"] == "accepted"], path, title=f"{MODEL_ID} LOSO (accepted windows)")


def load_features(data, *, layout=None, limit=None, seed=0):
    """Model inputs (n, 4, 15) float32 of the accepted windows (card pipeline, hop 1 s), labels (n,), names."""
    d = load_windows(data, layout=layout, window_s=HPARAMS["window_s"], hop_s=HPARAMS["hop_s"])
    x, y = d["x"][~d["artefact"]], d["y"][~d["artefact"]]
    idx = sample_indices(len(x), limit, seed)
    if idx is not None:
        x, y = x[idx], y[idx]
    return x.astype(np.float32), y, LABELS


def train(data, out, *, layout=None, seed=0, quick=False, progress=True):
    from affectedge.features.eeg import MuseBandFeatures
    from affectedge.features import quality

    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    hp = dict(HPARAMS, **(QUICK if quick else {}))
    d = load_windows(data, layout=layout, window_s=hp["window_s"], hop_s=hp["hop_s"])
    ok = ~d["artefact"]
    x, y, subjects = d["x"][ok], d["y"][ok], d["subjects"][ok]
    model = fit_model(x, y, seed=seed, hp=hp)
    diffs = export_checked(model, x, out, ("probs",), 256)
    train_acc = float(np.mean(predict_proba(model, x).argmax(1) == y))
    rep = evaluate_protocol(data, "loso", layout=layout, seed=seed, quick=quick, progress=progress,
                            out=out / "evaluation" / "loso")
    _plot_rows(rep["summary"], out / "evaluation.png")
    pipe = MuseBandFeatures(window_s=hp["window_s"])
    n_params = count_parameters(model)
    acc = rep["results"]["accepted"]
    ours, bf = acc["ours (global)"], acc["brainflow restfulness"]["relaxed_vs_concentrating"]
    headline = {"ours_acc_3class": round(ours["accuracy"], 4),
                "ours_acc_rel_vs_conc": round(ours["relaxed_vs_concentrating"]["accuracy"], 4),
                "ours_auc_rel_vs_conc": round(ours["relaxed_vs_concentrating"]["auc"], 4),
                "brainflow_restfulness_acc_rel_vs_conc": round(bf["accuracy"], 4),
                "brainflow_restfulness_auc_rel_vs_conc": round(bf["auc"], 4),
                "windows": f"{rep['n_accepted']} of {rep['n_windows']} LOSO windows accepted by the artefact check"}
    card = write_card(
        out, model_id=MODEL_ID, task="eeg-mental-state",
        summary=(f"Concentrating / neutral / relaxed from a {hp['window_s']:g} s, 4-channel Muse window: "
                 "channel-averaged relative and log band powers (computed in the graph from the per-channel "
                 f"band features) and a {n_params:,}-parameter MLP; blink / muscle windows get an 'artefact' "
                 "status at run time."),
        labels=LABELS, outputs={"probs": "(B, 3) class probabilities of " + ", ".join(LABELS)},
        pipeline=pipe, window_s=pipe.window_s, n_params=n_params,
        training_data=[{"name": "Muse mental state (Bird et al. 2018)",
                        "description": f"{len(np.unique(subjects))} subjects (a-d), 3 states, {len(y)} accepted "
                                       f"windows of {hp['window_s']:g} s every {hp['hop_s']:g} s "
                                       f"({int(np.sum(d['artefact']))} artefact windows left out); "
                                       + "; ".join(d["duplicates"]),
                        "terms": MUSE_TERMS}],
        evaluation={"protocol": "leave-one-subject-out (4 subjects), on the windows the artefact check accepts "
                                "(rows 'all' on every window); ours vs logistic regression vs BrainFlow "
                                "MINDFULNESS / RESTFULNESS metrics on the same windows",
                    "headline": headline,
                    "table": rep["summary"], "grid": rep["grid"], "artefacts": rep["artefacts"],
                    "train_accuracy": train_acc, "onnx_max_abs_diff": diffs,
                    "figures": ["evaluation.png", "evaluation/loso/report.png", "evaluation/loso/report_comparison.png"],
                    "quick": bool(quick)},
        limits=["Only 4 subjects, one session pair each: LOSO numbers have a wide uncertainty and the states were "
                "self-induced (reading / listening / nothing), not validated measures of attention; the "
                "configuration was picked on the same 4 folds (see the grid).",
                "Windows overlap (hop < window) inside a recording; subjects never overlap between train and test.",
                "In several concentrating recordings AF8 (and AF7 for subjectc) has a poor contact (peak-to-peak "
                "above 1 mV throughout), so electrode contact may be confounded with the state in this corpus.",
                "Artefact check (blink on AF7/AF8, jaw/muscle on TP9/TP10) is relative to the session's own median "
                f"and starts after {quality.ARTEFACT_MIN_HISTORY} windows; a session that is artefact-laden "
                "throughout is not caught by it.",
                "No per-session normalisation: the card has no input_stats, so the runtime's session calibration "
                "does not apply (it was measured worse; see the 'subject' rows).",
                "Research weights only; not a medical device."],
        extra={"hyperparameters": hp, "seed": seed, "features": _FEATURES,
               "artefacts": {"detector": "affectedge.features.quality.ArtefactDetector", "rule": _ARTEFACT_RULE,
                             "status": quality.ARTEFACT_STATUS},
               "session_normalisation": "none (global training statistics in the graph)",
               "train_wall_s": round(time.perf_counter() - t0, 1)})
    return card


def evaluate_model(model, data, *, layout=None, progress=True, out=None):
    """Score a trained Model on a Muse mental-state corpus's accepted windows (only shared classes count)."""
    spec = model.card.input.get("spec", {})
    d = load_windows(data, layout=layout, window_s=spec.get("window_s", 4.0), hop_s=1.0, raw=True)
    y, art = d["y"], d["artefact"]
    shared = shared_classes(LABELS, model.labels,
                            f"model {model.card.id!r} labels {model.labels} share no class with {LABELS}")
    feats = np.stack([model.pipeline(w) for w in d["raw"]])
    probs = model.predict(feats)[model.output_names[0]]
    keep = np.isin(y, [LABELS.index(lab) for lab in shared]) & ~art
    yt = np.array([shared.index(LABELS[v]) for v in y[keep]])
    pred = shared_argmax(probs[keep], model.labels, shared)
    report = {"task": "mental-state", "model": model.card.id, "data": str(data), "classes": shared,
              "n_artefact_windows": int(art.sum()), "duplicates": d["duplicates"],
              **classification_report(yt, pred, shared)}
    if out is not None:
        save_report(report, out, title=f"{model.card.id} on {Path(data).name}")
    return report
