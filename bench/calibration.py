"""Online speaker calibration for the speech model: UAR after 10 / 30 / 60 s of the user's speech.

    .venv/bin/python bench/calibration.py --data ../shared/data/speech/emodb \\
        --out reports/speech/online_calibration [--quick] [--speakers 03,08] [--seeds 10]

The shipped speech model (``speech-emotion``) is evaluated leave-one-speaker-out
on EmoDB with *offline* calibration: the test speaker's features are
z-normalised with the mean/std of all of that speaker's (unlabelled) clips.
On a device the calibration is *online*: a running per-feature mean/variance
over the user's frames from the first seconds of a session. This script
measures what that reaches after ``N`` seconds of the test speaker's speech.

Protocol (one LOSO run, 10 folds on EmoDB):

* Each fold model is trained once, exactly as
  :func:`affectedge.training.speech.evaluate_protocol` trains the shipped
  ensemble (same corpus order, per-speaker normalisation of the training
  speakers, ``_fit`` with ``FULL`` (``QUICK`` with ``--quick``) and seed 0),
  so the offline figure reproduces ``reports/speech/report.json``.
* The same fold model then classifies the test speaker under every
  calibration variant:

  - **offline**: normaliser fitted on all of the speaker's clips (the
    published figure);
  - **uncalibrated**: normaliser of the training speakers' pooled frames (the
    fallback stored in the shipped pipeline spec);
  - **online N s** (N = 10, 30, 60): the speaker's clips are shuffled with a
    fixed seed (``--seeds`` orders, nested: the 10 s clips are the first of
    the 30 s clips), clips are taken in that order until their cumulative
    duration reaches N s, and ``SpeakerNormalizer.fit`` is run on those
    clips' unnormalised frames (``pipeline.frames``). A running mean /
    variance over the same frames gives the same statistics, so this is
    what the online calibrator holds at that point. Scored on **all** the
    speaker's clips, and on the **unseen** clips only (those after the
    calibration clips: audio the normaliser never saw), with the offline
    and uncalibrated normalisers scored on the same unseen clips as
    references.

* UAR (unweighted average recall) and WAR (accuracy) are pooled over all
  folds' predictions (as ``evaluate_protocol`` does), per shuffle seed; the
  table gives mean +- sd (ddof 1) over seeds. Durations are whole-clip audio
  durations (EmoDB clips are short acted sentences with little silence).

Raw frame features are cached in the affectedge cache folder
(``$AFFECTEDGE_CACHE_DIR`` or ``~/.cache/affectedge``), keyed by the clips'
paths, sizes and mtimes, the pipeline spec and the feature code.
"""

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import datetime  # noqa: E402
import hashlib  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import zlib  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

BUDGETS_S = (10, 30, 60)
REPO = Path(__file__).resolve().parents[1]


def _log(progress, msg):
    """Progress on stderr; the results table goes to stdout."""
    if progress:
        print(msg, file=sys.stderr, flush=True)


def _out(progress, msg):
    if progress:
        print(msg, flush=True)


# ----------------------------------------------------------------- features

def _frames_call(pipe):
    """``f(audio, sr) -> frames`` for the current ``SpeechFeatures.frames`` signature.

    Newer versions take a required ``sample_rate_hz=`` keyword; older ones an
    optional ``sr``.
    """
    params = inspect.signature(pipe.frames).parameters
    if "sample_rate_hz" in params:
        return lambda y, sr: pipe.frames(y, sample_rate_hz=sr)
    if "sr" in params:
        return lambda y, sr: pipe.frames(y, sr=sr)
    return lambda y, sr: pipe.frames(y)


def _cache_key(items, pipe):
    import affectedge
    from affectedge.features import speech as speech_features

    h = hashlib.sha256()
    h.update(json.dumps(pipe.spec, sort_keys=True).encode())
    h.update(str(getattr(affectedge, "__version__", "")).encode())
    try:
        h.update(Path(inspect.getsourcefile(speech_features)).read_bytes())
    except (OSError, TypeError):
        pass
    for path, _, _ in items:
        st = os.stat(path)
        h.update(f"{os.path.abspath(path)}|{st.st_size}|{int(st.st_mtime)}\n".encode())
    return h.hexdigest()[:16]


def _reader(pipe):
    """``f(path) -> (audio, sr)`` as the training code reads corpus clips (quality-checked when it does)."""
    from affectedge.training import speech as ts

    if hasattr(ts, "_read_clip"):
        return lambda p: ts._read_clip(p, pipe)
    from affectedge.io import read_wav

    return read_wav


def raw_frames(items, pipe, *, cache=True, cache_dir=None, progress=False):
    """Unnormalised frames of the usable clips, their durations (s), the kept indices and the skipped clips.

    Mirrors ``training.speech._clip_frames`` (what ``evaluate_protocol``
    uses): unreadable / junk / too short clips are skipped and listed.
    """
    from affectedge.errors import ParameterError

    path = None
    if cache:
        if cache_dir is None:
            from affectedge.training.speech import _cache_dir

            cache_dir = _cache_dir()
        cache_dir = Path(cache_dir)
        cache_dir.mkdir(parents=True, exist_ok=True)
        path = cache_dir / f"speech-frames-{_cache_key(items, pipe)}.npz"
        if path.is_file():
            try:
                z = np.load(path)
                lens, flat = z["lengths"], z["frames"]
                ends = np.cumsum(lens)
                frames = [flat[e - n:e] for e, n in zip(ends, lens)]
                skipped = json.loads(str(z["skipped"]))
                _log(progress, f"  features of {len(frames)} clips from the cache ({path})")
                return frames, z["durations"].astype(np.float64), z["kept"].astype(np.int64), skipped
            except (OSError, KeyError, ValueError):
                pass
    read, call = _reader(pipe), _frames_call(pipe)
    frames, durs, kept, skipped = [], [], [], []
    t0 = time.perf_counter()
    for i, (p, _, _) in enumerate(items):
        try:
            y, sr = read(p)
            f = call(y, sr)
        except ParameterError as exc:
            skipped.append({"path": str(p), "reason": str(exc)[:300]})
            print(f"calibration: warning: skipped {p}: {str(exc)[:300]}", file=sys.stderr, flush=True)
            continue
        frames.append(f)
        durs.append(y.shape[0] / sr)
        kept.append(i)
    _log(progress, f"  features of {len(kept)} clips in {time.perf_counter() - t0:.1f} s"
                   + (f" ({len(skipped)} skipped)" if skipped else ""))
    if not kept:
        raise ParameterError(f"none of the {len(items)} clips could be used")
    durs, kept = np.asarray(durs, dtype=np.float64), np.asarray(kept, dtype=np.int64)
    if path is not None:
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npz")
        np.savez(tmp, frames=np.concatenate(frames, axis=0), lengths=np.array([f.shape[0] for f in frames]),
                 durations=durs, kept=kept, skipped=np.array(json.dumps(skipped)))
        os.replace(tmp, path)
    return frames, durs, kept, skipped


# ---------------------------------------------------------------- statistics

def _mean_sd(vals):
    v = np.asarray([x for x in vals if x is not None], dtype=np.float64)
    if v.size == 0:
        return {"mean": None, "sd": None, "n": 0}
    return {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if v.size > 1 else 0.0, "n": int(v.size),
            "min": float(v.min()), "max": float(v.max())}


def _shuffle_rng(seed, speaker):
    return np.random.default_rng([int(seed), zlib.crc32(str(speaker).encode())])


def _take_until(durations, budget_s):
    """Number of leading clips whose cumulative duration first reaches ``budget_s`` (all when never)."""
    cum = np.cumsum(durations)
    k = int(np.searchsorted(cum, budget_s - 1e-9) + 1)
    return min(k, len(durations)), bool(cum[-1] >= budget_s - 1e-9)


# ---------------------------------------------------------------- protocol

def run(data, out=None, *, speakers=None, quick=False, seeds=10, budgets=BUDGETS_S, seed=0, layout=None,
        cache=True, cache_dir=None, progress=True, command=None):
    """LOSO with one model per fold, scored under offline / uncalibrated / online-N-s calibration.

    ``speakers``: restrict the corpus to these speakers (LOSO among them);
    ``quick``: ``QUICK`` hyper-parameters (and, without ``speakers``, the first
    4 speakers, as ``evaluate_protocol(quick=True)``). ``seeds``: number of
    clip orders (shuffle seeds 0..seeds-1). Returns the report dict; writes
    ``report.json`` and ``report.md`` to ``out`` when given.
    """
    from affectedge.errors import ParameterError
    from affectedge.features.speech import SpeakerNormalizer
    from affectedge.training import speech as ts
    from affectedge.training._common import single_thread
    from affectedge.training.metrics import classification_report

    t_start = time.perf_counter()
    single_thread()
    hp = ts.QUICK if quick else ts.FULL
    items, labels, y, spk_all = ts._corpus(data, layout, quick and not speakers)
    if speakers:
        want = [str(s) for s in speakers]
        missing = sorted(set(want) - set(spk_all))
        if missing:
            raise ParameterError(f"speaker(s) {missing} not in {str(data)!r} (has {sorted(set(spk_all))})")
        keep = np.flatnonzero(np.isin(np.asarray(spk_all), want))
        items = [items[i] for i in keep]
        y = y[keep]
        spk_all = [spk_all[i] for i in keep]
        present = sorted(set(y.tolist()))
        if len(present) < 2:
            raise ParameterError("the chosen speakers' clips hold fewer than 2 classes")
    spk_list = sorted(set(spk_all))
    if len(spk_list) < 2:
        raise ParameterError(f"leave-one-speaker-out needs at least 2 speakers; got {spk_list}")
    seed_list = list(range(int(seeds)))
    if not seed_list:
        raise ParameterError("seeds must be >= 1")
    budgets = tuple(float(b) for b in budgets)
    n_classes = len(labels)
    va = [ts.VA_TABLE[lab] for lab in labels]
    pipe = ts._default_pipeline()
    _log(progress, f"online calibration LOSO on {data}: {len(items)} clips, {len(spk_list)} speakers, "
                   f"{'QUICK' if quick else 'FULL'} hyper-parameters, {len(seed_list)} clip orders, budgets "
                   f"{', '.join(f'{b:g}' for b in budgets)} s")
    t_feat = time.perf_counter()
    frames, durs, kept, skipped = raw_frames(items, pipe, cache=cache, cache_dir=cache_dir, progress=progress)
    t_feat = time.perf_counter() - t_feat
    items = [items[i] for i in kept]
    y = y[kept]
    spk_all = [spk_all[i] for i in kept]
    spk_list = sorted(set(spk_all))
    if len(spk_list) < 2:
        raise ParameterError(f"leave-one-speaker-out needs at least 2 speakers with usable clips; got {spk_list}")
    norms = ts._speaker_norms(frames, spk_all)
    x = ts._windows(frames, spk_all, norms, pipe)
    spk = np.asarray(spk_all)
    n = len(y)

    def windows(idx, norm, calibrated=True):
        return np.stack([pipe.window(frames[i], norm, calibrated=calibrated) for i in idx])

    # predictions: offline / uncal over all clips; online[(seed, budget)] over all clips + calibration mask
    pred_off = np.full(n, -1)
    pred_unc = np.full(n, -1)
    pred_on = {(s, b): np.full(n, -1) for s in seed_list for b in budgets}
    calib = {(s, b): np.zeros(n, bool) for s in seed_list for b in budgets}
    per_fold = []
    t_train = 0.0
    t_folds = time.perf_counter()
    for s in spk_list:
        te = spk == s
        te_idx = np.flatnonzero(te)
        t0 = time.perf_counter()
        # the shipped model's two heads (calibrated / uncalibrated), without the waveform augmentation
        xc, xu, order_tr, gnorm = ts._train_inputs(frames, None, spk_all, pipe, np.flatnonzero(~te))
        model = ts._fit(xc, y[order_tr], n_classes, hp, seed, va, x_uncal=xu)
        t_fit = time.perf_counter() - t0
        t_train += t_fit
        pred_off[te] = ts._predict(model, x[te]).argmax(1)
        pred_unc[te] = ts._predict(model, windows(te_idx, gnorm, calibrated=False)).argmax(1)
        fold = {"speaker": s, "n": int(te.sum()), "total_s": round(float(durs[te].sum()), 2),
                "train_s": round(t_fit, 1),
                "uar_offline": classification_report(y[te], pred_off[te], labels)["uar"],
                "uar_uncalibrated": classification_report(y[te], pred_unc[te], labels)["uar"],
                "online": {}}
        for sd in seed_list:
            order = te_idx[_shuffle_rng(sd, s).permutation(len(te_idx))]
            for b in budgets:
                k, reached = _take_until(durs[order], b)
                cal = order[:k]
                norm = SpeakerNormalizer.fit([frames[i] for i in cal])
                pred_on[(sd, b)][te] = ts._predict(model, windows(te_idx, norm)).argmax(1)
                calib[(sd, b)][cal] = True
                rec = fold["online"].setdefault(f"{b:g}", {"clips": [], "seconds": [], "reached": [], "uar_all": [],
                                                           "uar_unseen": []})
                rec["clips"].append(int(k))
                rec["seconds"].append(round(float(durs[cal].sum()), 3))
                rec["reached"].append(reached)
                rec["uar_all"].append(classification_report(y[te], pred_on[(sd, b)][te], labels)["uar"])
                unseen = te & ~calib[(sd, b)]
                rec["uar_unseen"].append(classification_report(y[unseen], pred_on[(sd, b)][unseen], labels)["uar"]
                                         if unseen.any() else None)
        per_fold.append(fold)
        on_txt = " ".join(f"{b:g}s {np.mean(fold['online'][f'{b:g}']['uar_all']):.3f}" for b in budgets)
        _log(progress, f"  fold speaker {s}: offline UAR {fold['uar_offline']:.3f}, uncalibrated "
                       f"{fold['uar_uncalibrated']:.3f}, online (all clips, mean over orders) {on_txt}  "
                       f"[train {t_fit:.0f} s]")
    t_folds = time.perf_counter() - t_folds

    def rep(mask, pred):
        r = classification_report(y[mask], pred[mask], labels)
        return {"n": r["n"], "uar": r["uar"], "war": r["war"], "per_class_recall": r["per_class_recall"]}

    everything = np.ones(n, bool)
    offline = {**rep(everything, pred_off), "confusion": classification_report(y, pred_off, labels)["confusion"]}
    uncal = {**rep(everything, pred_unc), "confusion": classification_report(y, pred_unc, labels)["confusion"]}
    online = {}
    for b in budgets:
        key = f"{b:g}"
        all_runs, unseen_runs, ref_off, ref_unc = [], [], [], []
        for sd in seed_list:
            all_runs.append(rep(everything, pred_on[(sd, b)]))
            m = ~calib[(sd, b)]
            if m.any():
                unseen_runs.append(rep(m, pred_on[(sd, b)]))
                ref_off.append(rep(m, pred_off))
                ref_unc.append(rep(m, pred_unc))
        clips = [c for f in per_fold for c in f["online"][key]["clips"]]
        secs = [c for f in per_fold for c in f["online"][key]["seconds"]]
        not_reached = [(f["speaker"], sd) for f in per_fold for sd, r in zip(seed_list, f["online"][key]["reached"])
                       if not r]
        online[key] = {
            "budget_s": b,
            "calibration_clips_per_speaker": _mean_sd(clips),
            "calibration_seconds_per_speaker": _mean_sd(secs),
            "budget_not_reached": [f"speaker {s} order {sd}" for s, sd in not_reached],
            "all_clips": {"uar": _mean_sd([r["uar"] for r in all_runs]), "war": _mean_sd([r["war"] for r in all_runs]),
                          "n_scored": all_runs[0]["n"],
                          "per_class_recall_mean": _class_mean([r["per_class_recall"] for r in all_runs], labels)},
            "unseen_clips": {
                "uar": _mean_sd([r["uar"] for r in unseen_runs]), "war": _mean_sd([r["war"] for r in unseen_runs]),
                "n_scored": _mean_sd([r["n"] for r in unseen_runs]),
                "per_class_recall_mean": _class_mean([r["per_class_recall"] for r in unseen_runs], labels),
                "offline_on_same_clips": {"uar": _mean_sd([r["uar"] for r in ref_off]),
                                          "war": _mean_sd([r["war"] for r in ref_off])},
                "uncalibrated_on_same_clips": {"uar": _mean_sd([r["uar"] for r in ref_unc]),
                                               "war": _mean_sd([r["war"] for r in ref_unc])},
            },
            "per_order": [{"order_seed": sd, "uar_all": a["uar"], "war_all": a["war"],
                           **({"uar_unseen": u["uar"], "war_unseen": u["war"], "n_unseen": u["n"]} if u else {})}
                          for sd, a, u in zip(seed_list, all_runs,
                                              unseen_runs if len(unseen_runs) == len(all_runs)
                                              else [None] * len(all_runs))],
        }
    for f in per_fold:
        for key, rec in f["online"].items():
            rec["uar_all_mean"] = float(np.mean(rec["uar_all"]))
            u = [v for v in rec["uar_unseen"] if v is not None]
            rec["uar_unseen_mean"] = float(np.mean(u)) if u else None
    wall = time.perf_counter() - t_start
    ref = _reference(data, quick, speakers, layout)
    report = {
        "task": "speech", "bench": "online_calibration", "model_id": ts.MODEL_ID, "protocol": "loso",
        "data": str(data), "quick": bool(quick), "speakers": spk_list, "n_clips": n, "skipped": skipped, "labels": list(labels),
        "train_seed": seed, "order_seeds": seed_list, "budgets_s": list(budgets),
        "hyper_parameters": {k: list(v) if isinstance(v, tuple) else v for k, v in hp.items()},
        "features": pipe.spec,
        "command": command, "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "wall_s": round(wall, 1), "features_s": round(t_feat, 1), "folds_s": round(t_folds, 1),
        "train_s": round(t_train, 1),
        "offline": offline, "uncalibrated": uncal, "online": online, "per_fold": per_fold,
        "reference_report": ref,
        "method": _METHOD,
    }
    report["table"] = _table_rows(report)
    _out(progress, "\n" + format_table(report))
    _out(progress, f"\nwall time {wall:.0f} s (features {t_feat:.0f} s, {len(spk_list)} fold trainings {t_train:.0f} s, "
                   f"all folds incl. scoring {t_folds:.0f} s)")
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(json.dumps(report, indent=2, default=_json_default) + "\n")
        (out / "report.md").write_text(format_markdown(report))
        _log(progress, f"wrote {out / 'report.json'} and {out / 'report.md'}")
    return report


_METHOD = (
    "Leave-one-speaker-out; each fold model trained once exactly as evaluate_protocol trains the shipped "
    "ensemble (training speakers normalised with their own statistics) and reused for every variant. "
    "offline: test speaker normalised with the statistics of all its clips (the published figure). "
    "uncalibrated: training speakers' pooled statistics. online N s: the test speaker's clips shuffled with a "
    "fixed seed, taken in that order until their cumulative duration reaches N s, SpeakerNormalizer.fit on "
    "those clips' unnormalised frames (what a running mean/variance over the same frames converges to); "
    "'all clips' scores every clip of the speaker, 'unseen clips' only those after the calibration clips. "
    "UAR/WAR pooled over all folds per clip order; mean +- sd (ddof 1) over orders."
)


def _class_mean(recalls, labels):
    out = {}
    for lab in labels:
        v = [r[lab] for r in recalls if r.get(lab) is not None]
        out[lab] = float(np.mean(v)) if v else None
    return out


def _reference(data, quick, speakers, layout):
    """The published LOSO figure, for a full 10-speaker run to compare with."""
    p = REPO / "reports" / "speech" / "report.json"
    if quick or speakers or not p.is_file():
        return None
    try:
        r = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    unc = next((t for t in r.get("table", []) if "uncalibrated" in t.get("system", "")), None)
    return {"path": "reports/speech/report.json", "uar": r.get("uar"), "war": r.get("war"),
            "uar_uncalibrated": unc.get("uar") if unc else None, "war_uncalibrated": unc.get("war") if unc else None}


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o))


# ------------------------------------------------------------------ output

def _ms(d, digits=3):
    if d is None or d.get("mean") is None:
        return "-"
    return f"{d['mean']:.{digits}f} ± {d['sd']:.{digits}f}"


def _table_rows(rep):
    rows = [{"variant": "offline: all of the speaker's clips", "scored": "all", "uar": rep["offline"]["uar"],
             "war": rep["offline"]["war"], "uar_sd": None, "war_sd": None},
            {"variant": "uncalibrated: training speakers' pooled stats", "scored": "all",
             "uar": rep["uncalibrated"]["uar"], "war": rep["uncalibrated"]["war"], "uar_sd": None, "war_sd": None}]
    for key, o in rep["online"].items():
        c, s = o["calibration_clips_per_speaker"], o["calibration_seconds_per_speaker"]
        for scored in ("all_clips", "unseen_clips"):
            r = o[scored]
            row = {"variant": f"online {key} s", "scored": "all" if scored == "all_clips" else "unseen",
                   "uar": r["uar"]["mean"], "uar_sd": r["uar"]["sd"], "war": r["war"]["mean"], "war_sd": r["war"]["sd"],
                   "calibration_clips_mean": c["mean"], "calibration_clips_min": c.get("min"),
                   "calibration_clips_max": c.get("max"), "calibration_seconds_mean": s["mean"],
                   "calibration_seconds_min": s.get("min"), "calibration_seconds_max": s.get("max")}
            if scored == "unseen_clips":
                row["n_scored_mean"] = r["n_scored"]["mean"]
                row["offline_same_clips_uar"] = r["offline_on_same_clips"]["uar"]["mean"]
                row["offline_same_clips_uar_sd"] = r["offline_on_same_clips"]["uar"]["sd"]
                row["uncalibrated_same_clips_uar"] = r["uncalibrated_on_same_clips"]["uar"]["mean"]
            rows.append(row)
    return rows


def _pm(v, sd):
    if v is None:
        return "-"
    return f"{v:.3f}" if sd is None else f"{v:.3f} ± {sd:.3f}"


def _cal_txt(r):
    if r.get("calibration_clips_mean") is None:
        return "-", "-"
    return (f"{r['calibration_clips_mean']:.1f} [{r['calibration_clips_min']:.0f}-{r['calibration_clips_max']:.0f}]",
            f"{r['calibration_seconds_mean']:.1f} [{r['calibration_seconds_min']:.1f}-"
            f"{r['calibration_seconds_max']:.1f}]")


def format_table(rep):
    hdr = f"{'variant':<46} {'scored':<7} {'UAR':>15} {'WAR':>15} {'cal. clips':>14} {'cal. s':>18} " \
          f"{'offline same clips':>19}"
    lines = [hdr, "-" * len(hdr)]
    for r in rep["table"]:
        clips, secs = _cal_txt(r)
        ref = _pm(r.get("offline_same_clips_uar"), r.get("offline_same_clips_uar_sd")) \
            if "offline_same_clips_uar" in r else ""
        lines.append(f"{r['variant']:<46} {r['scored']:<7} {_pm(r['uar'], r['uar_sd']):>15} "
                     f"{_pm(r['war'], r['war_sd']):>15} {clips:>14} {secs:>18} {ref:>19}")
    return "\n".join(lines)


def format_markdown(rep):
    n_spk = len(rep["speakers"])
    L = [f"# Speech model: online speaker calibration ({'quick, ' if rep['quick'] else ''}{n_spk} LOSO folds)", ""]
    L += [f"- command: `{rep['command']}`" if rep.get("command") else "- command: (called from Python)",
          f"- date: {rep['date']}",
          f"- data: `{rep['data']}` ({rep['n_clips']} clips, speakers {', '.join(rep['speakers'])})",
          f"- fold models: trained once per fold as `evaluate_protocol` does (hyper-parameters "
          f"{'QUICK' if rep['quick'] else 'FULL'}, seed {rep['train_seed']}); clip orders: "
          f"{len(rep['order_seeds'])} shuffle seeds ({rep['order_seeds'][0]}..{rep['order_seeds'][-1]})",
          f"- wall time: {rep['wall_s']:.0f} s (features {rep['features_s']:.0f} s, fold trainings "
          f"{rep['train_s']:.0f} s, all folds incl. scoring {rep['folds_s']:.0f} s)", ""]
    ref = rep.get("reference_report")
    if ref:
        L += [f"Published figures ({ref['path']}): offline UAR {ref['uar']:.3f}, uncalibrated UAR "
              f"{ref['uar_uncalibrated']:.3f}; this run: offline {rep['offline']['uar']:.3f}, uncalibrated "
              f"{rep['uncalibrated']['uar']:.3f}.", ""]
    L += ["| calibration | scored clips | UAR | WAR | calibration clips / speaker, mean [min-max] | "
          "calibration seconds / speaker, mean [min-max] | offline UAR on the same clips |",
          "|---|---|---|---|---|---|---|"]
    for r in rep["table"]:
        clips, secs = _cal_txt(r)
        ref_c = _pm(r.get("offline_same_clips_uar"), r.get("offline_same_clips_uar_sd")) \
            if "offline_same_clips_uar" in r else "-"
        scored = "all" if r["scored"] == "all" else f"unseen (mean {r['n_scored_mean']:.0f})"
        L.append(f"| {r['variant']} | {scored} | {_pm(r['uar'], r['uar_sd'])} | {_pm(r['war'], r['war_sd'])} | "
                 f"{clips} | {secs} | {ref_c} |")
    L += ["", "UAR/WAR pooled over the folds' predictions; ± is the sd over clip orders (ddof 1). 'unseen' scores "
          "only the clips after the calibration clips (never seen by the normaliser); its last column scores the "
          "offline normaliser on those same clips, the like-for-like reference.", ""]
    budgets = list(rep["online"])
    L += ["## Per fold (UAR on the speaker's clips; online: mean over orders, all clips)", "",
          "| speaker | clips | total s | offline | uncalibrated | " + " | ".join(f"online {b} s" for b in budgets)
          + " |", "|---|---|---|---|---|" + "---|" * len(budgets)]
    for f in rep["per_fold"]:
        L.append(f"| {f['speaker']} | {f['n']} | {f['total_s']:.0f} | {f['uar_offline']:.3f} | "
                 f"{f['uar_uncalibrated']:.3f} | " + " | ".join(f"{f['online'][b]['uar_all_mean']:.3f}"
                                                            for b in budgets) + " |")
    L += ["", "## Method", "", rep["method"], ""]
    return "\n".join(L)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "speech" / "emodb"))
    ap.add_argument("--out", default=None, help="folder for report.json and report.md")
    ap.add_argument("--quick", action="store_true", help="QUICK hyper-parameters (first 4 speakers unless --speakers)")
    ap.add_argument("--speakers", default=None, help="comma-separated speakers: LOSO among these only")
    ap.add_argument("--seeds", type=int, default=10, help="number of clip orders (shuffle seeds 0..N-1)")
    ap.add_argument("--budgets", default=",".join(str(b) for b in BUDGETS_S), help="calibration seconds, e.g. 10,30,60")
    ap.add_argument("--no-cache", action="store_true", help="recompute the frame features")
    args = ap.parse_args(argv)
    speakers = [s.strip() for s in args.speakers.split(",") if s.strip()] if args.speakers else None
    budgets = [float(b) for b in args.budgets.split(",") if b.strip()]
    cmd = "python bench/calibration.py " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    run(args.data, args.out, speakers=speakers, quick=args.quick, seeds=args.seeds, budgets=budgets,
        cache=not args.no_cache, command=cmd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
