"""The ``affectedge`` command line (also ``python -m affectedge``).

The CLI only parses arguments and calls the library; exit codes:
0 success, 1 bad input or failed job (message on stderr), 2 usage error,
3 (quantize/export) an artifact missed its accuracy budget and was not written.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from ._version import __version__
from .errors import AffectEdgeError

__all__ = ["main"]


def _build_parser():
    p = argparse.ArgumentParser(prog="affectedge", description="On-device affect recognition toolkit.")
    p.add_argument("--version", action="version", version=f"affectedge {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    k = sub.add_parser("kernels", help="compile, cache and inspect the feature kernels")
    ksub = k.add_subparsers(dest="kernels_command", metavar="ACTION")
    kw = ksub.add_parser("warmup", help="compile and cache every kernel for float32 and float64")
    kw.add_argument("--quiet", action="store_true", help="no progress bar")
    ksub.add_parser("info", help="print JIT status and the cache directory")

    f = sub.add_parser("features", help="extract features from a recording")
    fsub = f.add_subparsers(dest="kind", metavar="KIND")
    fm = fsub.add_parser("mfcc", help="MFCC frames of an audio file (rows = frames)")
    fm.add_argument("input", help="audio file (WAV, FLAC, OGG, ... at any rate)")
    fm.add_argument("--out", required=True, help="output .npy or .csv")
    fm.add_argument("--n-mfcc", type=int, default=13)
    fm.add_argument("--n-mels", type=int, default=40)
    fm.add_argument("--n-fft", type=int, default=512)
    fm.add_argument("--hop-length", type=int, default=160)
    fm.add_argument("--deltas", action="store_true", help="append delta and delta-delta coefficients")

    fs = fsub.add_parser("silence", help="silence features of an audio file (one row)")
    fs.add_argument("input", help="audio file (WAV, FLAC, OGG, ... at any rate)")
    fs.add_argument("--out", required=True, help="output .npy or .csv")
    fs.add_argument("--threshold-factor", type=float, default=0.3)
    fs.add_argument("--threshold-db", type=float, default=None, help="absolute dBFS threshold instead")
    fs.add_argument("--frame-length", type=int, default=2048)
    fs.add_argument("--hop-length", type=int, default=512)

    fe = fsub.add_parser("eeg", help="band power and differential entropy per window of an EEG file")
    fe.add_argument("input", help="EEG CSV with a header of channel names, a .npy/.npz (channels, samples) with "
                                  "--sample-rate, or a BrainFlow file with --board")
    fe.add_argument("--out", required=True, help="output .npy (windows, channels, features) or .csv")
    fe.add_argument("--sample-rate", type=float, default=None, help="Hz; needed when the file has no timestamps")
    fe.add_argument("--board", default=None, help="BrainFlow board of a BrainFlow file (e.g. cyton_daisy, muse_2)")
    fe.add_argument("--channels", default=None, help="comma-separated channel names to keep")
    fe.add_argument("--window-s", type=float, default=4.0)
    fe.add_argument("--hop-s", type=float, default=1.0)
    fe.add_argument("--de-method", choices=("psd", "gaussian"), default="psd")
    fe.add_argument("--relative", action="store_true", help="relative instead of absolute band power")

    t = sub.add_parser("train", help="train a model on a labelled corpus, export ONNX and write its card")
    t.add_argument("task", choices=("speech", "face", "face-pixels", "eeg", "mental-state"))
    t.add_argument("--data", required=True, help="labelled corpus folder")
    t.add_argument("--layout", default=None, help="corpus layout (task-specific; default: detected)")
    t.add_argument("--out", required=True, help="output folder for model.onnx, card.json, card.md")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--quick", action="store_true", help="tiny training run (smoke test)")

    e = sub.add_parser("evaluate", help="score a trained model on a corpus, or retrain per fold under a protocol")
    e.add_argument("model", nargs="?", default=None, help="zoo id or model folder (omit with --task/--protocol)")
    e.add_argument("--data", required=True, help="labelled corpus folder")
    e.add_argument("--layout", default=None)
    e.add_argument("--task", choices=("speech", "face", "face-pixels", "eeg", "mental-state"), default=None)
    e.add_argument("--protocol", default=None, help="loso | subject-kfold | subject-independent | cv ...")
    e.add_argument("--out", default=None, help="folder for report.json / report.png")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--quick", action="store_true")
    e.add_argument("--json", action="store_true", help="print the report as JSON")
    e.add_argument("--calibration", choices=("speaker", "none"), default=None,
                   help="speech models on a corpus: 'speaker' (default) normalises each speaker with the statistics "
                        "of that speaker's clips (labels unused); 'none' uses the model's training statistics")
    e.add_argument("--unknown-speaker", choices=("error", "per-file", "pool"), default=None,
                   help="speech corpora: a clip whose speaker cannot be parsed is an error (default), its own "
                        "speaker, or pooled into one 'unknown' speaker")

    mo = sub.add_parser("models", help="the model zoo")
    msub = mo.add_subparsers(dest="models_command", metavar="ACTION")
    ml = msub.add_parser("list", help="list the zoo models")
    ml.add_argument("--json", action="store_true")
    ms = msub.add_parser("show", help="show one model's card")
    ms.add_argument("id")
    ms.add_argument("--json", action="store_true")

    _add_export_parsers(sub)

    from affectedge.runtime import _cli as runtime_cli

    runtime_cli.add_parsers(sub)

    from affectedge.batch import _cli as batch_cli

    batch_cli.add_parsers(sub)

    from affectedge.device_profiles import _cli as profiles_cli

    profiles_cli.add_parsers(sub)

    from affectedge.report import _cli as report_cli

    report_cli.add_parsers(sub)

    d = sub.add_parser("demo", help="the live pipeline on an embedded default: speech, faces and BrainFlow's "
                                    "synthetic EEG board, no hardware or network needed")
    d.add_argument("--data", default=None, help="data folder (default: $AFFECTEDGE_DATA_DIR or ../shared/data)")
    d.add_argument("--duration", type=float, default=None, help="seconds (default: the speech clip's length)")
    d.add_argument("--out", default=None, help="results .jsonl (default: ./demo-results.jsonl)")
    d.add_argument("--features", action="store_true", help="the former feature-extraction demo instead")
    return p


class _NamedInput:
    """Prefix errors raised while processing ``path`` with the path (when the message does not name it yet)."""

    def __init__(self, path):
        self.path = str(path)

    def __enter__(self):
        return self

    def __exit__(self, typ, exc, tb):
        from affectedge.errors import ParameterError

        if isinstance(exc, ParameterError) and self.path not in str(exc):
            raise type(exc)(f"{self.path!r}: {exc}") from None
        return False


def _features_mfcc(args):
    from affectedge.io import read_audio, write_features
    from affectedge.native_kernels import delta, mfcc

    y, sr = read_audio(args.input)
    with _NamedInput(args.input):
        m = mfcc(y, sr=sr, n_mfcc=args.n_mfcc, n_mels=args.n_mels, n_fft=args.n_fft, hop_length=args.hop_length)
    names = [f"mfcc{i}" for i in range(m.shape[0])]
    if args.deltas:
        width = min(9, m.shape[1] - (1 - m.shape[1] % 2))
        m = np.concatenate([m, delta(m, width=width), delta(m, width=width, order=2)])
        names += [f"d_{n}" for n in names[: args.n_mfcc]] + [f"dd_{n}" for n in names[: args.n_mfcc]]
    t = np.arange(m.shape[1]) * args.hop_length / sr
    out = np.column_stack([t, m.T]).astype(np.float32)
    write_features(args.out, out if args.out.endswith(".csv") else m.T.astype(np.float32), header=["t_s"] + names)
    print(f"{args.input}: {m.shape[1]} frames x {m.shape[0]} coefficients at {sr} Hz -> {args.out}")


def _features_silence(args):
    from affectedge.io import read_audio, write_features
    from affectedge.native_kernels import SilenceFeatures, silence_features

    y, sr = read_audio(args.input)
    with _NamedInput(args.input):
        f = silence_features(y, sr=sr, threshold_factor=args.threshold_factor, threshold_db=args.threshold_db,
                             frame_length=args.frame_length, hop_length=args.hop_length)
    write_features(args.out, f.as_array()[None, :], header=list(SilenceFeatures.NAMES))
    print(f"{args.input}: silence ratio {f.ratio:.3f}, {f.n_segments} segments, longest {f.longest_segment_s:.2f} s "
          f"-> {args.out}")


def _features_eeg(args):
    from affectedge.features.quality import eeg_quality
    from affectedge.io import read_brainflow_file, read_eeg, write_features
    from affectedge.native_kernels import StreamingBandPower

    channels = [c.strip() for c in args.channels.split(",")] if args.channels else None
    if args.board:
        rec = read_brainflow_file(args.input, args.board)
        if channels:
            idx = [rec.channel_names.index(c) for c in channels if c in rec.channel_names]
            rec = type(rec)(rec.data[idx], tuple(rec.channel_names[i] for i in idx), rec.sample_rate_hz)
    else:
        rec = read_eeg(args.input, sample_rate_hz=args.sample_rate, channels=channels)
    _check_eeg_recording(args.input, rec, eeg_quality(rec.data, rec.sample_rate_hz, channel_names=rec.channel_names))
    n_samples = rec.data.shape[1]
    if n_samples < args.window_s * rec.sample_rate_hz:
        raise AffectEdgeError(
            f"{args.input} holds {n_samples / rec.sample_rate_hz:.2f} s of EEG, shorter than one window "
            f"(--window-s {args.window_s:g}); pass a shorter --window-s"
        )
    sbp = StreamingBandPower(rec.sample_rate_hz, rec.data.shape[0], window_s=args.window_s, hop_s=args.hop_s,
                             relative=args.relative, with_de=True, de_method=args.de_method)
    feats = sbp.push(rec.data)  # (windows, channels, features)
    if not np.all(np.isfinite(feats)):  # never write NaN/inf (the quality check above should have caught it)
        bad = [rec.channel_names[i] for i in np.flatnonzero(~np.isfinite(feats).all(axis=(0, 2)))]
        raise AffectEdgeError(
            f"{args.input}: the features of channel(s) {', '.join(bad)} are NaN/inf (no usable signal); nothing "
            f"was written; drop them with --channels {','.join(c for c in rec.channel_names if c not in bad)}")
    names = [f"{ch}_{fn}" for ch in rec.channel_names for fn in sbp.feature_names]
    if args.out.endswith(".csv"):
        t = (np.arange(feats.shape[0]) * sbp.hop + sbp.win) / rec.sample_rate_hz
        write_features(args.out, np.column_stack([t, feats.reshape(feats.shape[0], -1)]), header=["t_end_s"] + names)
    else:
        write_features(args.out, feats)
    print(f"{args.input}: {len(rec.channel_names)} channels at {rec.sample_rate_hz:g} Hz, {feats.shape[0]} windows "
          f"x {feats.shape[2]} features per channel -> {args.out}")


def _check_eeg_recording(path, rec, q):
    """Refuse a recording with NaN, flat or railed channels (naming them, with the --channels remedy).

    Dropouts only warn: the features stay finite."""
    bad = {k: v for k, v in q.metrics.get("bad_by_status", {}).items() if k != "dropout"}
    if bad:
        junk = [c for c in rec.channel_names if any(c in v for v in bad.values())]
        what = "; ".join(f"{', '.join(v)}: {k.replace('_channels', '')}" for k, v in bad.items())
        good = [c for c in rec.channel_names if c not in junk]
        fix = (f"drop them with --channels {','.join(good)}" if good else
               "no channel is usable: check the electrodes and the recording's unit (microvolts)")
        raise AffectEdgeError(
            f"{path}: channel(s) without usable EEG ({what}); nothing was written; {fix}. Details: "
            f"{q.detail[:300]}")
    if q.status == "dropout":
        print(f"affectedge: warning: {path}: {q.detail[:300]}", file=sys.stderr)


def _find_data(explicit):
    candidates = [explicit, os.environ.get("AFFECTEDGE_DATA_DIR"), Path.cwd().parent / "shared" / "data",
                  Path(__file__).resolve().parents[1].parent / "shared" / "data"]
    for c in candidates:
        if c and Path(c).is_dir():
            return Path(c)
    return None


def _demo(args):
    from affectedge.io import read_audio, read_eeg_csv
    from affectedge.native_kernels import band_power, differential_entropy, jit_enabled, mfcc, silence_features

    data = _find_data(args.data)
    wav = data / "speech" / "emodb" / "wav" / "03a01Wa.wav" if data else None
    if wav is not None and wav.is_file():
        y, sr = read_audio(wav)
        source = f"{wav} (EmoDB, anger)"
    else:
        sr = 16000
        t = np.arange(3 * sr) / sr
        env = (np.sin(2 * np.pi * 1.5 * t) > 0).astype(np.float32)  # syllable-like bursts with pauses
        y = (0.3 * env * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
        source = "a generated 3 s voiced/pause signal (no ../shared/data found)"
    print(f"affectedge {__version__} demo (kernels: {'Numba JIT' if jit_enabled() else 'NumPy fallback'})")
    print(f"audio: {source}, {y.shape[0] / sr:.2f} s at {sr} Hz")
    t0 = time.perf_counter()
    m = mfcc(y, sr=sr, n_mfcc=13, n_fft=512, hop_length=160, n_mels=40)
    t1 = time.perf_counter()
    s = silence_features(y, sr=sr)
    t2 = time.perf_counter()
    print(f"  MFCC: {m.shape[1]} frames x {m.shape[0]} coefficients in {(t1 - t0) * 1e3:.1f} ms "
          f"(first call includes loading compiled kernels); mean c0 {m[0].mean():.1f}")
    print(f"  silence (factor 0.3): ratio {s.ratio:.3f}, {s.n_segments} silent segments, mean "
          f"{s.mean_segment_s:.3f} s, longest {s.longest_segment_s:.3f} s ({(t2 - t1) * 1e3:.1f} ms)")
    eeg_file = data / "eeg" / "deap_raw_trial" / "deap_trial_128hz.csv" if data else None
    if eeg_file is not None and eeg_file.is_file():
        rec = read_eeg_csv(eeg_file, sample_rate_hz=128.0)
        x, fs, src = rec.data[:, : 4 * 128], 128.0, f"{eeg_file} (DEAP, 32 channels, first 4 s)"
        names = rec.channel_names
    else:
        rng = np.random.default_rng(0)
        fs = 128.0
        tt = np.arange(512) / fs
        x = rng.standard_normal((4, 512)) + 3 * np.sin(2 * np.pi * 10 * tt)
        src, names = "generated 4-channel EEG with a 10 Hz alpha rhythm", ("c0", "c1", "c2", "c3")
    _demo_speech_model(y, sr)
    bp = band_power(x, fs, relative=True)
    de = differential_entropy(x, fs)
    print(f"EEG: {src}")
    for i in range(min(3, x.shape[0])):
        rel = ", ".join(f"{b} {v:.2f}" for b, v in zip(("delta", "theta", "alpha", "beta", "gamma"), bp[i]))
        print(f"  {names[i]:>4}: relative power {rel}; DE alpha {de[i, 2]:.2f} nats")
    _demo_mental_state_model(data)
    return 0


def _evaluate(args):
    import json

    from affectedge.errors import ParameterError
    from affectedge.training import task_module

    out = Path(args.out) if args.out else None
    if args.model is None:
        if not (args.task and args.protocol):
            raise ParameterError("evaluate needs a MODEL, or --task and --protocol to retrain per fold")
        mod = task_module(args.task)
        if args.protocol not in mod.PROTOCOLS:
            raise ParameterError(f"--protocol {args.protocol!r} is not offered for {args.task}; "
                                 f"choose one of {', '.join(mod.PROTOCOLS)}")
        with _stdout_to_stderr(args.json):
            report = mod.evaluate_protocol(Path(args.data), args.protocol, layout=args.layout, seed=args.seed,
                                           quick=args.quick, out=out)
    else:
        from affectedge import models

        with _stdout_to_stderr(args.json):
            model = models.load(args.model)
            from affectedge.training import MODEL_TASKS

            task = MODEL_TASKS.get(model.card.id, model.card.task)
            speech_opts = {k: v for k, v in (("calibration", args.calibration),
                                             ("unknown_speaker", args.unknown_speaker)) if v is not None}
            if speech_opts and task != "speech":
                raise ParameterError(f"--calibration / --unknown-speaker apply to speech models; {args.model!r} is a "
                                     f"{task} model")
            report = task_module(task).evaluate_model(model, Path(args.data), layout=args.layout, out=out,
                                                      **speech_opts)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(_summarise(report))
    return 0


class _stdout_to_stderr:
    """While active (``on``), everything written to stdout -- Python prints and native code writing to file
    descriptor 1 -- goes to stderr, so that a ``--json`` command's stdout holds only its JSON."""

    def __init__(self, on=True):
        self.on = on
        self._saved_fd = None

    def __enter__(self):
        if not self.on:
            return self
        import contextlib

        sys.stdout.flush()
        try:
            self._saved_fd = os.dup(1)
            os.dup2(2, 1)
        except OSError:  # no usable descriptors (embedded interpreter): Python-level redirection only
            self._saved_fd = None
        self._redirect = contextlib.redirect_stdout(sys.stderr)
        self._redirect.__enter__()
        return self

    def __exit__(self, *exc):
        if not self.on:
            return False
        self._redirect.__exit__(*exc)
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        if self._saved_fd is not None:
            os.dup2(self._saved_fd, 1)
            os.close(self._saved_fd)
        return False


def _summarise(report, indent=""):
    lines = []
    for k, v in report.items():
        if k in ("confusion", "per_fold", "predictions"):
            continue
        if isinstance(v, dict):
            lines.append(f"{indent}{k}:")
            lines.append(_summarise(v, indent + "  "))
        elif isinstance(v, float):
            lines.append(f"{indent}{k}: {v:.4f}")
        elif isinstance(v, list) and len(v) > 12:
            continue
        else:
            lines.append(f"{indent}{k}: {v}")
    return "\n".join(x for x in lines if x)


def _models(args):
    import json

    from affectedge import models

    if args.models_command == "list":
        with _stdout_to_stderr(args.json):
            cards = models.list_models()
            doc = json.dumps([c.to_dict() for c in cards], indent=2, default=str) if args.json else None
        if args.json:
            print(doc)
        else:
            for c in cards:
                print(f"{c.id:<22} {c.task:<22} {len(c.labels)} labels, {c.parameters:,} parameters, "
                      f"{c.file_size_bytes / 1024:.0f} KiB")
            missing = [m for m in models.ZOO if m not in {c.id for c in cards}]
            if missing:
                print(f"not built here: {', '.join(missing)} (run 'make models')")
        return 0
    if args.models_command == "show":
        with _stdout_to_stderr(args.json):
            c = models.card(args.id)
            text = json.dumps(c.to_dict(), indent=2, default=str) if args.json else c.to_markdown()
        print(text)
        return 0
    print("usage: affectedge models list|show ID [--json]", file=sys.stderr)
    return 2


def _add_export_parsers(sub):
    """``quantize`` and ``export``: build, check and report ONNX/TFLite artifacts (see affectedge.exporters)."""
    from affectedge.exporters._options import CalibrationMethod, Int8Scheme

    def common(x, what):
        x.add_argument("source", help="zoo id, package.module:factory (with --weights), model.pt2 or model.onnx")
        x.add_argument("--to", default="onnx", help="comma-separated targets: onnx,tflite (default onnx)")
        x.add_argument("--out", required=True, help="output folder (written atomically)")
        x.add_argument("--validation", default=None,
                       help="dataset folder or .npz (x[, y]) to check the artifacts on (default: the zoo model's "
                            "corpus, else random inputs)")
        x.add_argument("--weights", default=None, help="state_dict .pt for a package.module:factory source")
        x.add_argument("--profile", default=None, metavar="NAME",
                       help="device class for the thread count (provisional table)")
        x.add_argument("--threads", type=int, default=None, help="inference threads for the checks (overrides --profile)")
        x.add_argument("--allow-degraded", action="store_true",
                       help=f"write {what} that miss their budget instead of refusing them (exit 0)")
        x.add_argument("--repeats", type=int, default=50, help="timed single-example calls per check")
        x.add_argument("--validation-limit", type=int, default=200, help="at most this many validation examples")
        x.add_argument("--create-tflite-env", action="store_true",
                       help="create the isolated numpy<2 env that tflite-runtime 2.14 needs, if missing")
        x.add_argument("--fp32-max-rel-err", type=float, default=1e-3)
        x.add_argument("--quiet", action="store_true", help="no progress on stderr")

    q = sub.add_parser("quantize", help="export + quantize a model (ONNX/TFLite; fp32, fp16, int8, auto), check "
                                        "every artifact in every runtime, and write a report")
    common(q, "artifacts")
    q.add_argument("--precision", default="auto", help="comma-separated fp32,fp16,int8, or auto (default)")
    q.add_argument("--calibration", default=None, help="dataset folder or .npz of model inputs for int8")
    q.add_argument("--calibration-method", choices=[m.value for m in CalibrationMethod], default="minmax")
    q.add_argument("--int8-scheme", choices=[m.value for m in Int8Scheme], default="auto",
                   help="ONNX int8: static QDQ, dynamic, or auto (dynamic for recurrent graphs)")
    q.add_argument("--calibration-limit", type=int, default=200)
    q.add_argument("--require-metric", action="store_true", help="fail unless the validation data has labels")
    q.add_argument("--fp16-max-rel-err", type=float, default=1e-2)
    q.add_argument("--int8-min-top1", type=float, default=0.97)
    q.add_argument("--int8-max-metric-drop", type=float, default=0.01)
    e = sub.add_parser("export", help="plain fp32 conversion (ONNX/TFLite), checked in every runtime, with a report")
    common(e, "artifacts")


def _export_command(args):
    """Run ``quantize``/``export``. Exit codes: 0 ok, 1 bad input or failed conversion, 3 out of budget."""
    from affectedge import exporters

    split = lambda s: tuple(x.strip() for x in s.split(",") if x.strip())  # noqa: E731
    common = dict(source=args.source, out=args.out, targets=split(args.to), validation=args.validation,
                  threads=args.threads, profile=args.profile, allow_degraded=args.allow_degraded,
                  weights=args.weights, validation_limit=args.validation_limit, repeats=args.repeats,
                  create_tflite_env=args.create_tflite_env, progress=not args.quiet)
    try:
        if args.command == "export":
            opts = exporters.ExportOptions(budgets=exporters.Budgets(fp32_max_rel_err=args.fp32_max_rel_err),
                                           **common)
            res = exporters.export(opts)
        else:
            budgets = exporters.Budgets(fp32_max_rel_err=args.fp32_max_rel_err,
                                        fp16_max_rel_err=args.fp16_max_rel_err, int8_min_top1=args.int8_min_top1,
                                        int8_max_metric_drop=args.int8_max_metric_drop)
            opts = exporters.QuantizeOptions(precisions=split(args.precision), calibration=args.calibration,
                                             calibration_method=args.calibration_method,
                                             int8_scheme=args.int8_scheme, calibration_limit=args.calibration_limit,
                                             require_metric=args.require_metric, budgets=budgets, **common)
            res = exporters.quantize(opts)
    except exporters.OutOfBudgetError as exc:
        print(f"affectedge: error: {exc}", file=sys.stderr)
        return 3
    for rt, f in res.chosen.items():
        print(f"{rt}: {f}")
    print(f"{len(res.delivered)} artifact(s) and report.md/report.json/report.png in {res.out}")
    if res.refused:
        print("kept despite missing the budget (--allow-degraded): " + "; ".join(res.refused), file=sys.stderr)
    return 0


def _zoo_ready(model_id):
    """True when onnxruntime is installed and the zoo model is built here (else one line says why not)."""
    import importlib.util

    from affectedge import models

    if importlib.util.find_spec("onnxruntime") is None:
        print(f"  {model_id}: skipped (install 'affectedge[onnx]' to run the shipped models)")
        return False
    if model_id not in {c.id for c in models.list_models()}:
        print(f"  {model_id}: skipped (not built in this checkout; run 'make models')")
        return False
    return True


def _demo_speech_model(y, sr):
    """The shipped speech model on the demo's audio."""
    from affectedge import models

    if not _zoo_ready("speech-emotion"):
        return
    m = models.load("speech-emotion")
    out = m.predict_raw(y, sample_rate_hz=sr)
    probs = out[m.output_names[0]][0]
    top = np.argsort(probs)[::-1][:3]
    va = out[m.output_names[1]][0] if len(m.output_names) > 1 else None
    ranked = ", ".join(f"{m.labels[i]} {probs[i]:.2f}" for i in top)
    extra = f"; valence {va[0]:+.2f}, arousal {va[1]:+.2f}" if va is not None else ""
    print(f"  speech-emotion (uncalibrated speaker): {ranked}{extra}")


def _demo_mental_state_model(data):
    """The shipped Muse mental-state model on a 4 s window of a real Muse recording."""
    from affectedge import models
    from affectedge.io import read_eeg_csv

    muse = data / "eeg" / "muse_mentalstate" / "subjecta-concentrating-1.csv" if data else None
    if muse is None or not muse.is_file() or not _zoo_ready("eeg-mental-state"):
        return
    m = models.load("eeg-mental-state")
    rec = read_eeg_csv(muse, channels=["TP9", "AF7", "AF8", "TP10"], sample_rate_hz=256.0)
    n = m.pipeline.n_samples
    probs = m.predict_raw(rec.data[:, 10 * 256 : 10 * 256 + n], sample_rate_hz=rec.sample_rate_hz)[m.output_names[0]][0]
    ranked = ", ".join(f"{lab} {p:.2f}" for lab, p in zip(m.labels, probs))
    print(f"EEG mental state: {muse.name}, 4 s window at 10 s (a recording the shipped model was trained on): "
          f"{ranked}")


def main(argv=None):
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "kernels":
            from affectedge.native_kernels import _config, warmup

            if args.kernels_command == "warmup":
                times = warmup(progress=not args.quiet)
                print(f"compiled {len(times)} kernel groups in {sum(times.values()):.1f} s; cache: "
                      f"{_config.CACHE_DIR if _config.CACHE else 'in memory only (cache dir not writable)'}")
            elif args.kernels_command == "info":
                print(f"jit: {'on' if _config.use_jit() else 'off (' + _config.JIT_DISABLED_REASON + ')'}")
                print(f"numba fft: {'rocket-fft' if _config.HAVE_NUMBA_FFT else 'unavailable (numpy.fft fallback)'}")
                print(f"cache: {_config.CACHE_DIR} ({'writable' if _config.CACHE else 'not writable'})")
            else:
                parser.parse_args(["kernels", "--help"])
        elif args.command == "features":
            handler = {"mfcc": _features_mfcc, "silence": _features_silence, "eeg": _features_eeg}.get(args.kind)
            if handler is None:
                parser.parse_args(["features", "--help"])
            handler(args)
        elif args.command == "train":
            from affectedge.training import task_module

            card = task_module(args.task).train(Path(args.data), Path(args.out), layout=args.layout, seed=args.seed,
                                                quick=args.quick)
            print(f"trained {args.task} model -> {card.parent}")
        elif args.command == "evaluate":
            return _evaluate(args)
        elif args.command == "models":
            return _models(args)
        elif args.command == "demo":
            if args.features:
                return _demo(args)
            from affectedge.runtime._demo import run_demo

            return run_demo(args.data, duration_s=args.duration, out=args.out)
        elif args.command in ("run", "predict", "calibrate", "devices"):
            from affectedge.runtime import _cli as runtime_cli

            return runtime_cli.dispatch(args)
        elif args.command == "batch":
            from affectedge.batch import _cli as batch_cli

            return batch_cli.dispatch(args)
        elif args.command == "profiles":
            from affectedge.device_profiles import _cli as profiles_cli

            return profiles_cli.dispatch(args)
        elif args.command == "report":
            from affectedge.report import _cli as report_cli

            return report_cli.dispatch(args)
        elif args.command in ("quantize", "export"):
            return _export_command(args)
        else:
            parser.print_help()
            return 2
    except AffectEdgeError as exc:
        print(f"affectedge: error: {exc}", file=sys.stderr)
        return 1
    return 0
