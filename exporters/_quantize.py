"""Orchestration of ``quantize`` / ``export``: build, check, choose, report, write.

Order of work: resolve the source, read validation (then calibration) data,
compute the source model's reference outputs, build every requested
artifact (target x precision) in a temporary folder beside ``out``, check
each in every runtime of its target, apply the budgets, choose per runtime
(``auto``), write the report, and move the folder into place in one rename.
An exception leaves nothing behind; a budget miss writes the artifacts that
passed plus the report, then raises :class:`OutOfBudgetError`.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from affectedge.errors import ExportError, ParameterError

from ._check import Check, OutOfBudgetError, run_check, task_metric
from ._data import DataSet, load_data
from ._options import ExportOptions, Int8Scheme, Precision, QuantizeOptions, Target
from ._sources import resolve_source

__all__ = ["QuantizeResult", "export", "quantize"]

# Latencies within this fraction (or TIE_MS) of the fastest count as a tie;
# the smallest file among them wins.
TIE_FRACTION = 0.05
TIE_MS = 0.001
RANDOM_VALIDATION_N = 32


@dataclass
class QuantizeResult:
    """What a run produced: the output folder, every check, and the choices."""

    out: Path
    artifacts: list  # dicts, as in report.json
    checks: list  # Check
    chosen: dict  # runtime -> file name (auto), else {}
    delivered: list  # file names written to out
    refused: list  # "file in runtime: figure" lines
    report: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.refused


class _Progress:
    def __init__(self, enabled, verb):
        self.enabled, self.verb, self.t0 = enabled, verb, time.perf_counter()

    def __call__(self, msg):
        if self.enabled:
            print(f"[affectedge {self.verb} {time.perf_counter() - self.t0:6.1f}s] {msg}", file=sys.stderr, flush=True)


def export(options: ExportOptions | None = None, **kwargs) -> QuantizeResult:
    """Plain fp32 conversion of ``source`` to each target, checked in every runtime."""
    if options is None:
        options = ExportOptions(**kwargs)
    elif kwargs:
        options = dataclasses.replace(options, **kwargs)
    if not isinstance(options, ExportOptions):
        raise ParameterError(f"export() takes ExportOptions, got {type(options).__name__}")
    return _run(options.to_quantize_options(), verb="export")


def quantize(options: QuantizeOptions | None = None, **kwargs) -> QuantizeResult:
    """Build, check and write ONNX/TFLite artifacts as described by ``options``.

    Keyword arguments build (or amend) the :class:`QuantizeOptions`.
    Raises :class:`OutOfBudgetError` (after writing what passed) when an
    artifact misses its budget in a runtime and ``allow_degraded`` is off.
    """
    if options is None:
        options = QuantizeOptions(**kwargs)
    elif kwargs:
        options = options.replace(**kwargs)
    if not isinstance(options, QuantizeOptions):
        raise ParameterError(f"quantize() takes QuantizeOptions, got {type(options).__name__}")
    return _run(options, verb="quantize")


# ----------------------------------------------------------------- the run
def _run(opts: QuantizeOptions, *, verb) -> QuantizeResult:
    say = _Progress(opts.progress, verb)
    out = Path(opts.out).absolute()
    _check_out(out)
    threads = opts.resolved_threads

    say(f"resolving source {opts.source}")
    src = resolve_source(opts.source, weights=opts.weights)
    tfl = None
    if Target.TFLITE in opts.targets:
        if not src.has_torch:
            raise ExportError(
                f"TFLite from an ONNX source is refused: {src.ref!r} has no PyTorch program, and ONNX->TFLite "
                "converters are exactly where silent wrong numbers come from. Pass the PyTorch model (zoo id with "
                "model.pt2, a .pt2, or package.module:factory --weights), or use --to onnx"
            )
        tfl = _tflite_module()

    val, val_note = _validation(opts, src, say)
    src.set_specs_from_data(val.examples)
    say(f"validation: {len(val)} examples from {val.origin}" + (" with labels" if val.labels is not None else ""))
    calib, calib_note = _calibration(opts, src, say, val)

    say("computing the source model's reference outputs")
    reference = src.reference_outputs(val.examples)
    for k, r in enumerate(reference):
        bad = ~np.isfinite(np.asarray(r, dtype=np.float64).reshape(len(r), -1)).all(axis=1)
        if bad.any():
            name = src.output_names[k] if k < len(src.output_names) else k
            raise ExportError(
                f"the source model itself outputs NaN/inf for {int(bad.sum())} of {len(bad)} validation examples "
                f"(output {name!r}, first at example {int(np.flatnonzero(bad)[0])}; validation: {val.origin}). "
                "Nothing can be checked against that: fix the model (e.g. clamp before sqrt/log) or the data"
            )
    metric_name = src.metric_name if val.labels is not None else None
    ref_metric = task_metric(metric_name, reference, val.labels) if metric_name else None

    runtimes_info = {"onnxruntime": _ort_info()}
    tfl_runtimes = []
    if tfl is not None:
        if opts.create_tflite_env:
            say("preparing the isolated tflite-runtime environment")
            try:
                tfl.ensure_tflite_runtime_env(create=True)
            except Exception as exc:  # reported below as unavailable
                say(f"tflite-runtime environment could not be created: {exc}")
        for name, info in tfl.tflite_runtimes().items():
            runtimes_info[name] = dict(info)
            if info.get("available"):
                tfl_runtimes.append(name)
            else:
                say(f"WARNING: TFLite runtime {name} NOT checked: {info.get('why', 'not available')}")
        if not tfl_runtimes:
            raise ExportError(
                "no TFLite runtime is available to check TFLite artifacts ("
                + "; ".join(f"{k}: {v.get('why')}" for k, v in runtimes_info.items() if k != "onnxruntime")
                + "); install 'affectedge[tflite]' or drop tflite from --to"
            )

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        work = tmp / "_work"
        work.mkdir()
        built, build_failures = _build_all(opts, src, val, calib, tmp, work, tfl, say)
        checks = []
        for b in built:
            rts = ["onnxruntime"] if b["target"] == "onnx" else tfl_runtimes
            for rt in rts:
                say(f"checking {b['file']} in {rt} ({threads} thread{'s' if threads > 1 else ''})")
                runner = _runner(rt, tfl)
                try:
                    c = run_check(tmp / b["file"], target=b["target"], precision=b["precision"], runtime=rt,
                                  data=val, reference=reference, reference_metric=ref_metric,
                                  metric_name=metric_name, budgets=opts.budgets, threads=threads,
                                  repeats=opts.repeats, run=runner)
                except ExportError as exc:
                    if not opts.auto:
                        raise
                    build_failures.append({"file": b["file"], "runtime": rt, "error": str(exc)})
                    b["runtime_errors"] = b.get("runtime_errors", []) + [f"{rt}: {exc}"]
                    continue
                checks.append(c)
                say("  " + _check_line(c))
        if opts.int8_scheme == Int8Scheme.AUTO:
            checks = _int8_fallback(opts, built, checks, tmp, work, calib, val, reference, ref_metric,
                                    metric_name, threads, say)
        chosen, delivered, refused = _decide(opts, built, checks, tfl_runtimes)
        for b in built:
            b["delivered"] = b["file"] in delivered
            b["checks"] = [c.to_dict() for c in checks if c.artifact == b["file"]]
            if not b["delivered"]:
                (tmp / b["file"]).unlink(missing_ok=True)
        shutil.rmtree(work)
        card_file = _write_card(src, tmp, built, chosen, checks, delivered)

        from ._report import build_report, write_report

        report = build_report(
            opts=opts, verb=verb, src=src, val=val, calib=calib, notes=[n for n in (val_note, calib_note) if n],
            reference_metric=ref_metric, metric_name=metric_name, built=built, checks=checks, chosen=chosen,
            delivered=delivered, refused=refused, runtimes=runtimes_info, build_failures=build_failures,
            threads=threads, card_file=card_file,
        )
        say("writing report.json, report.md, report.png")
        write_report(report, tmp)
        _move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    result = QuantizeResult(out=out, artifacts=built, checks=checks, chosen=chosen, delivered=sorted(delivered),
                            refused=refused, report=report)
    say(f"done: {len(delivered)} artifact(s) in {out}" + (f"; {len(refused)} refused" if refused else ""))
    if refused and not opts.allow_degraded:
        err = OutOfBudgetError(
            "out of budget (not delivered): " + "; ".join(refused)
            + f". The report in {out} has every figure; loosen the budgets or pass --allow-degraded to keep them",
            [c for c in checks if not c.ok],
        )
        err.result = result  # what was delivered within budget, for callers that ship it anyway
        raise err
    return result


# ----------------------------------------------------------------- pieces
def _check_out(out):
    if out.exists() and not out.is_dir():
        raise ParameterError(f"--out {str(out)!r} exists and is a file; pass a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / "report.json").is_file():
        raise ParameterError(
            f"--out {str(out)!r} is a non-empty folder that was not written by affectedge quantize/export "
            "(no report.json); pass an empty or new folder"
        )


def _move_into_place(tmp, out):
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}-{time.time_ns()}"
        os.replace(out, old)
    try:
        os.replace(tmp, out)
    except BaseException:
        if old is not None:
            os.replace(old, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _default_data(src):
    """The source card's default corpus (from the data provider), when it is present here."""
    if src.card is None:
        return None
    from ._data import data_provider

    return data_provider().default_data(src.card)


def _random_examples(opts, src, why, say):
    if not src.input_specs or any(d is None for s in src.input_specs for d in s.example_shape):
        raise ParameterError(
            f"validation data is needed to check the artifacts ({why}; the model's input shape is not fixed, so "
            "random inputs cannot be made); pass --validation (a dataset folder or an .npz of inputs)"
        )
    rng = np.random.default_rng(opts.seed)
    examples = [tuple(rng.standard_normal((1, *s.example_shape)).astype(s.dtype) for s in src.input_specs)
                for _ in range(RANDOM_VALIDATION_N)]
    note = (f"validation: {why}; checked on {RANDOM_VALIDATION_N} standard-normal random inputs "
            "(numerical agreement only, no task metric) -- pass --validation for a real check")
    say("WARNING: " + note)
    return DataSet(examples, None, "random standard-normal inputs"), note


def _validation(opts, src, say):
    path = opts.validation if opts.validation is not None else opts.calibration
    if path is not None:
        return load_data(path, src, purpose="validation", limit=opts.validation_limit, seed=opts.seed,
                         need_labels=opts.require_metric), None
    path = _default_data(src)
    if path is None:
        return _random_examples(opts, src, "no data given", say)
    try:
        val = load_data(path, src, purpose="validation", limit=opts.validation_limit, seed=opts.seed,
                        need_labels=opts.require_metric)
    except ParameterError as exc:
        if opts.require_metric:
            raise
        return _random_examples(opts, src, f"the model's default corpus could not be read ({exc})", say)
    note = f"validation: no --validation given; used the model's default corpus {path}"
    say(note)
    return val, note


def _needs_calibration(opts, src):
    if Precision.INT8 not in opts.build_precisions:
        return False
    if Target.TFLITE in opts.targets:
        return True
    return opts.int8_scheme != Int8Scheme.DYNAMIC


def _calibration(opts, src, say, val):
    if not _needs_calibration(opts, src):
        return None, None
    path, note = opts.calibration, None
    if path is None:
        path = _default_data(src)
        if path is not None:
            try:
                calib = load_data(path, src, purpose="calibration", limit=opts.calibration_limit,
                                  seed=opts.seed + 1)
            except ParameterError as exc:
                note = (f"calibration: the model's default corpus could not be read ({exc}); calibrated on the "
                        f"validation inputs ({val.origin})")
                say("WARNING: " + note)
                return val, note
            note = (f"calibration: no --calibration given; used the model's default corpus {path} "
                    f"(seed {opts.seed + 1}; may overlap validation)")
            say(note)
            return calib, note
    if path is None:
        if opts.validation is not None:
            path = opts.validation
            note = "calibration: no --calibration given; calibrated on the validation data (overlapping sets)"
            say("WARNING: " + note)
        else:
            raise ParameterError(
                "int8 needs calibration data; pass --calibration (a dataset folder or an .npz of model inputs)"
            )
    calib = load_data(path, src, purpose="calibration", limit=opts.calibration_limit, seed=opts.seed + 1)
    say(f"calibration: {len(calib)} examples from {calib.origin}")
    return calib, note


def _build_all(opts, src, val, calib, tmp, work, tfl, say):
    from . import _onnx

    name = _safe(src.name)
    built, failures = [], []
    example = val.examples[0]

    def attempt(label, fn):
        try:
            return fn()
        except ExportError as exc:
            if not opts.auto or label.endswith("fp32"):
                raise
            say(f"  {label} failed: {exc}")
            failures.append({"file": label, "error": str(exc)})
            return None

    if Target.ONNX in opts.targets:
        say("exporting fp32 ONNX")
        fp32 = _onnx.export_fp32(src, example, tmp / f"{name}.fp32.onnx")
        onnx_built = [fp32] if Precision.FP32 in opts.build_precisions else []
        if Precision.FP16 in opts.build_precisions:
            say("converting to fp16 ONNX")
            b = attempt("onnx fp16", lambda: _onnx.to_fp16(fp32.path, tmp / f"{name}.fp16.onnx"))
            onnx_built += [b] if b else []
        if Precision.INT8 in opts.build_precisions:
            say("pre-processing and quantizing to int8 ONNX")
            pre = work / "pre.onnx"
            notes = _onnx.preprocess(fp32.path, pre)
            b = attempt("onnx int8", lambda: _onnx.to_int8(pre, tmp / f"{name}.int8.onnx", scheme=opts.int8_scheme,
                                                           calibration=calib.examples if calib else None,
                                                           method=opts.calibration_method))
            if b:
                b.notes[:0] = notes
                onnx_built.append(b)
        if Precision.FP32 not in opts.build_precisions:
            fp32.path.unlink()
        for b in onnx_built:
            built.append(_entry(b, "onnx"))
    if Target.TFLITE in opts.targets:
        import torch

        module = src.torch_module()
        ex_t = tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in example)
        for p in opts.build_precisions:
            say(f"converting to {p.value} TFLite")
            path = tmp / f"{name}.{p.value}.tflite"
            kw = {"calibration": calib.examples} if p == Precision.INT8 and calib is not None else {}
            res = attempt(f"tflite {p.value}",
                          lambda: tfl.to_tflite(module, ex_t, path, precision=p.value, **kw))
            if res is not None:
                from ._onnx import Built

                scheme = "full-integer int8 (PT2E static)" if p == Precision.INT8 else "litert-torch"
                built.append(_entry(Built(Path(res), p.value, scheme, []), "tflite"))
    return built, failures


def _int8_fallback(opts, built, checks, tmp, work, calib, val, reference, ref_metric, metric_name, threads, say):
    """An ONNX int8 artifact that missed its budget is rebuilt with the other scheme.

    Static QDQ is the first choice for feed-forward graphs and dynamic for
    recurrent ones; when the first choice misses the budget (small graph
    models accumulate 8-bit activation error), the other one is built and
    checked, and kept when it is within budget. Both figures go in the notes.
    """
    from . import _onnx

    for b in built:
        if b["target"] != "onnx" or b["precision"] != "int8":
            continue
        mine = [c for c in checks if c.artifact == b["file"]]
        if not mine or all(c.ok for c in mine) or not (work / "pre.onnx").is_file():
            continue
        first = "dynamic" if b["scheme"].startswith("dynamic") else "static"
        alt = Int8Scheme.STATIC if first == "dynamic" else Int8Scheme.DYNAMIC
        if alt == Int8Scheme.STATIC and not calib:
            b["notes"].append("static int8 fallback not tried: no calibration data")
            continue
        say(f"{b['file']} missed its budget with {first} int8; trying {alt.value} int8")
        alt_path = work / f"alt.{b['file']}"
        try:
            nb = _onnx.to_int8(work / "pre.onnx", alt_path, scheme=alt, calibration=calib.examples if calib else None,
                               method=opts.calibration_method)
            from ._runtime import run_onnx

            c = run_check(alt_path, target="onnx", precision="int8", runtime="onnxruntime", data=val,
                          reference=reference, reference_metric=ref_metric, metric_name=metric_name,
                          budgets=opts.budgets, threads=threads, repeats=opts.repeats,
                          run=lambda p, ex, threads, repeats: run_onnx(p, ex, threads=threads, repeats=repeats))
        except ExportError as exc:
            b["notes"].append(f"{alt.value} int8 fallback failed: {exc}")
            continue
        say("  " + _check_line(c).replace(alt_path.name, b["file"]))
        was = "; ".join(v for m in mine for v in m.violations)
        if c.ok:
            os.replace(alt_path, tmp / b["file"])
            c = dataclasses.replace(c, artifact=b["file"])
            checks = [x for x in checks if x.artifact != b["file"]] + [c]
            b.update(_entry(dataclasses.replace(nb, path=tmp / b["file"]), "onnx"))
            b["notes"] = [n for n in nb.notes if not n.startswith("int8 scheme")] + [f"{first} int8 missed the budget ({was}); {alt.value} int8 kept"]
        else:
            b["notes"].append(f"{alt.value} int8 also missed the budget ({'; '.join(c.violations)}); "
                              f"{first} kept for the report")
    return checks


def _entry(b, target):
    from affectedge.models import sha256_file

    return {"file": b.path.name, "target": target, "precision": b.precision, "scheme": b.scheme,
            "notes": list(b.notes), "size_bytes": b.path.stat().st_size, "sha256": sha256_file(b.path)}


def _safe(name):
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(name)) or "model"


def _runner(runtime, tfl):
    if runtime == "onnxruntime":
        from ._runtime import run_onnx

        return lambda p, ex, threads, repeats: run_onnx(p, ex, threads=threads, repeats=repeats)
    return lambda p, ex, threads, repeats: tfl.run_tflite(p, ex, runtime=runtime, threads=threads, repeats=repeats)


def _decide(opts, built, checks, tfl_runtimes):
    """(chosen per runtime, delivered file names, refused lines)."""
    by_file = {}
    for c in checks:
        by_file.setdefault(c.artifact, []).append(c)
    refused = []
    if not opts.auto:
        delivered = set()
        for b in built:
            cs = by_file.get(b["file"], [])
            bad = [c for c in cs if not c.ok]
            for c in bad:
                refused.append(f"{c.artifact} in {c.runtime} {c.runtime_version}: {', '.join(c.violations)}")
            if cs and (not bad or opts.allow_degraded):
                delivered.add(b["file"])
        return {}, delivered, refused
    chosen = {}
    runtimes = sorted({c.runtime for c in checks})
    for rt in runtimes:
        cands = [c for c in checks if c.runtime == rt]
        good = [c for c in cands if c.ok]
        if not good:
            for c in cands:
                refused.append(f"{c.artifact} in {c.runtime} {c.runtime_version}: {', '.join(c.violations)}")
            if not opts.allow_degraded:
                continue
            good = [c for c in cands if c.precision == "fp32"] or cands  # degraded: the least transformed
        chosen[rt] = _fastest(good).artifact
    return chosen, set(chosen.values()), refused


def _fastest(cands):
    best = min(c.latency_median_ms for c in cands)
    tol = max(best * TIE_FRACTION, TIE_MS)
    ties = [c for c in cands if c.latency_median_ms <= best + tol]
    return min(ties, key=lambda c: (c.size_bytes, c.latency_median_ms))


def _write_card(src, tmp, built, chosen, checks, delivered):
    """card.json/card.md for the ONNX artifact the on-device runtime should load."""
    if src.card is None:
        return None
    onnx_ok = [c for c in checks if c.runtime == "onnxruntime" and c.artifact in delivered]
    if not onnx_ok:
        return None
    pick = chosen.get("onnxruntime") or _fastest(onnx_ok).artifact
    from affectedge.models import sha256_file

    path = tmp / pick
    c = next(c for c in onnx_ok if c.artifact == pick)
    extra = dict(src.card.extra or {})
    extra["exported"] = {"from": src.card.file, "from_sha256": src.card.file_sha256, "precision": c.precision,
                         "max_rel_err": c.max_rel_err, "top1_agreement": c.top1_agreement,
                         "report": "report.json"}
    card = dataclasses.replace(src.card, file=pick, file_sha256=sha256_file(path),
                               file_size_bytes=path.stat().st_size, extra=extra)
    card.save(tmp)
    return pick


def _check_line(c: Check):
    top1 = f", top-1 {c.top1_agreement:.3f}" if c.top1_agreement is not None else ""
    met = f", {c.metric_name} {c.metric:.3f} (drop {c.metric_drop:+.3f})" if c.metric is not None else ""
    verdict = "ok" if c.ok else "OUT OF BUDGET: " + "; ".join(c.violations)
    return (f"{c.artifact} [{c.runtime}]: {c.size_bytes / 1024:.1f} KiB, {c.latency_median_ms:.3f} ms median, "
            f"max rel err {c.max_rel_err:.2g}{top1}{met} -> {verdict}")


def _tflite_module():
    try:
        from . import _tflite
    except ImportError as exc:
        raise ExportError(
            f"TFLite support not available in this installation ({exc}); use --to onnx, or install "
            "'affectedge[export]' with a build that includes affectedge.exporters._tflite"
        ) from exc
    return _tflite


def _ort_info():
    try:
        import onnxruntime as ort

        return {"available": True, "version": ort.__version__, "why": "",
                "providers": list(ort.get_available_providers())}
    except ImportError as exc:
        return {"available": False, "version": None, "why": str(exc)}
