"""Every shipped zoo artifact in the runtime it targets, checked against the host's outputs.

    python zoo.py reference --out ref.npz      # on the host (x86-64): inputs and outputs
    python zoo.py check --reference ref.npz    # in the arm64 root: same inputs, compare

The artifacts are the files the wheel installs: each card's ``model.onnx``, the
fp16/int8 ONNX and fp32/fp16/int8 TFLite files its ``extra.artifacts.files``
lists (with their sha256), and the face model's temporal GRU. ``.onnx`` runs in
onnxruntime and ``.tflite`` in ai-edge-litert, both through
``affectedge.models.load`` (the runtime's one session factory).

``reference`` feeds every artifact one zero input, N seeded standard-normal
inputs (the zoo's inputs are standardised features) and, where ``--data`` holds
the model's training corpus, N real examples read with the task's own feature
pipeline (EmoDB clips, CK+ faces through MediaPipe, DEAP and Muse windows), all
batch 1, and stores inputs and outputs. The root needs no data, MediaPipe or
librosa: it gets the inputs. ``check`` verifies each file's sha256 against its card, runs the
same inputs, and compares:

- with the host's outputs of the same artifact in the same runtime (the
  question an arm64 build answers: does this runtime compute this file the
  same way on this CPU?). Tolerances per precision are in ``TOL`` below;
- the top-1 class with the fp32 ONNX model's on this machine (information);
- and it loads each model with ``profile="raspberry-pi-4"`` and prints the
  artifact and backend that profile picks.

Prints one line per artifact and "zoo: P passed, F failed"; exit 1 on a failure.
"""

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

from affectedge import models

# max |arm64 output - host output| allowed for the same file in the same runtime, and no
# top-1 change. fp32 is judged on every input: only summation order differs. fp16 and int8
# are judged on the zero and the real inputs: an x86-64 CPU computes fp16 graphs in fp32,
# while onnxruntime on a CPU with fp16 arithmetic (Cortex-A76: Pi 5) computes them in fp16
# (about 1e-3 relative per op); int8 kernels may round an activation to the neighbouring step.
# Their outputs on random inputs, far outside the range they were calibrated for, are printed.
TOL = {"fp32": 1e-4, "fp16": 2e-2, "int8": 5e-2}
N_RANDOM = 16


def artifacts(mid):
    """[(label, file path, precision, variant, sha256 or None)] for one zoo model."""
    c = models.card(mid)
    folder = Path(models.zoo_dir(mid))
    extra = c.extra if isinstance(c.extra, dict) else {}
    out = [(f"{mid}/{c.file}", folder / c.file, "fp32", None, c.file_sha256 or None)]
    for name, meta in sorted(((extra.get("artifacts") or {}).get("files") or {}).items()):
        out.append((f"{mid}/{name}", folder / name, meta.get("precision", "fp32"), None, meta.get("sha256")))
    temporal = extra.get("temporal")
    if isinstance(temporal, dict) and "file" in temporal:
        out.append((f"{mid}/{temporal['file']}", folder / temporal["file"], "fp32", "temporal", temporal.get("sha256")))
    return out


def load(path, variant):
    if variant is not None:
        return models.load(path.parent.name, variant=variant, threads=1)
    return models.load(path, threads=1)


def input_shape(model):
    """The session's input shape, batch 1; other symbolic axes from the card (else 8 steps)."""
    want = list(model.session.input_shapes[0])
    card = list(model.card.input.get("shape") or [])
    shape = []
    for i, w in enumerate(want):
        if isinstance(w, int) and w > 0:
            shape.append(w)
        elif i == 0:
            shape.append(1)
        elif i < len(card) and isinstance(card[i], int) and card[i] > 0:
            shape.append(card[i])
        else:
            shape.append(8)
    return tuple(shape)


def run_all(model, xs):
    outs = {}
    for i, x in enumerate(xs):
        for name, a in model.predict(x).items():
            outs.setdefault(name, []).append(np.asarray(a, dtype=np.float64))
    return {name: np.stack(v) for name, v in outs.items()}


def top1(outs, model):
    role = model.roles.get("class_probabilities")
    if role is None or role not in outs:
        return None
    return outs[role].reshape(len(outs[role]), -1).argmax(axis=1)


def real_inputs(mid, data, n):
    """n model inputs (each batch 1) from the model's default corpus under ``data``, or [] without it."""
    from affectedge.training import MODEL_TASKS, task_module

    mod = task_module(MODEL_TASKS[mid])
    folder = Path(data) / getattr(mod, "DEFAULT_DATA", "")
    if data is None or not folder.is_dir():
        return [], "no data"
    x, _, _ = mod.load_features(folder, limit=n, seed=0)
    return [np.asarray(v, np.float32)[None] for v in x[:n]], str(folder)


def reference(args):
    store = {"platform": np.array(f"{platform.machine()} {platform.python_version()}")}
    for k, mid in enumerate(models.ZOO):
        real, origin = real_inputs(mid, args.data, N_RANDOM)
        print(f"{mid}: {len(real)} real inputs from {origin}")
        for label, path, precision, variant, _ in artifacts(mid):
            with load(path, variant) as m:
                backend = m.session.backend
                shape = input_shape(m)
                rng = np.random.default_rng(20261202 + k)
                xs = [np.zeros(shape, np.float32)] + [rng.standard_normal(shape).astype(np.float32)
                                                      for _ in range(N_RANDOM)]
                if variant == "temporal" and real:  # the GRU over a sequence of real frames
                    seq = np.concatenate(real)[: shape[1]]
                    if len(seq) == shape[1]:
                        xs.append(seq[None])
                elif real and real[0].shape == shape:
                    xs += real
                outs = run_all(m, xs)
            store[f"{label}|input"] = np.stack(xs)
            for name, a in outs.items():
                store[f"{label}|out|{name}"] = a
            print(f"  {label:42s} {backend:11s} in {shape} -> {', '.join(outs)}")
    np.savez_compressed(args.out, **store)
    print(f"reference: {args.out} ({store['platform']})")
    return 0


def _random_mask(n):
    """The seeded random inputs among n: they follow the zero input; the real examples come after them."""
    mask = np.zeros(n, bool)
    mask[1:1 + N_RANDOM] = True
    return mask


def check(args):
    ref = np.load(args.reference)
    print(f"host reference: {ref['platform']}; here: {platform.machine()} {platform.python_version()}")
    passed, failed = 0, []
    for mid in models.ZOO:
        fp32_top1 = None
        for label, path, precision, variant, want_sha in artifacts(mid):
            try:
                if want_sha and models.sha256_file(path) != want_sha:
                    raise RuntimeError(f"sha256 differs from the card ({want_sha[:12]}...)")
                xs = ref[f"{label}|input"]
                t0 = time.perf_counter()
                with load(path, variant) as m:
                    backend = m.session.backend
                    outs = run_all(m, list(xs))
                    ms = (time.perf_counter() - t0) * 1e3 / len(xs)
                    t1 = top1(outs, m)
                n = len(xs)
                judged = np.ones(n, bool) if precision == "fp32" else ~_random_mask(n)
                worst = {"judged": 0.0, "random": 0.0}
                nonfinite = {"judged": 0, "random": 0}
                host_top1 = None
                for name, a in outs.items():
                    key = f"{label}|out|{name}"
                    if key not in ref:
                        raise RuntimeError(f"output {name!r} is not in the host reference ({sorted(outs)})")
                    h = ref[key]
                    if name == m.roles.get("class_probabilities"):
                        host_top1 = h.reshape(n, -1).argmax(axis=1)
                    bad = ~np.isfinite(a).reshape(n, -1).all(axis=1)
                    diff = np.where(np.isfinite(a), np.abs(a - h), 0.0).reshape(n, -1).max(axis=1)
                    for group, sel in (("judged", judged), ("random", ~judged)):
                        if sel.any():
                            worst[group] = max(worst[group], float(diff[sel].max()))
                            nonfinite[group] += int(bad[sel].sum())
                tol = TOL[precision]
                flips = 0 if t1 is None or host_top1 is None else int(np.sum((t1 != host_top1) & judged))
                ok = worst["judged"] <= tol and nonfinite["judged"] == 0 and flips == 0
                what = "all inputs" if precision == "fp32" else "zero + real inputs"
                note = f"max|arm64-host| {worst['judged']:.1e} on {what} (tol {tol:.0e})"
                if nonfinite["judged"] or flips:
                    note += f", {nonfinite['judged']} non-finite, {flips} top-1 unlike the host's"
                if precision != "fp32":
                    note += (f"; random inputs (not judged: outside the artifact's calibrated range): "
                             f"{worst['random']:.1e}" + (f", {nonfinite['random']} non-finite" if nonfinite['random'] else ""))
                if t1 is not None and path.name == "model.onnx":
                    fp32_top1 = t1
                elif t1 is not None and fp32_top1 is not None and variant is None:
                    real = slice(1 + N_RANDOM, None)  # the real examples follow the zero and random inputs
                    note += f"; top-1 = fp32 onnx here on real inputs {int(np.sum(t1[real] == fp32_top1[real]))}/{len(t1[real])}"
                print(f"  {'ok  ' if ok else 'FAIL'} {label:38s} {backend:11s} {note}; "
                      f"{ms:.1f} ms/input{args.timing_label}")
                if ok:
                    passed += 1
                else:
                    failed.append(label)
            except Exception as exc:  # noqa: BLE001 -- report every artifact
                print(f"  FAIL {label:42s} {type(exc).__name__}: {exc}")
                failed.append(label)
        try:
            with models.load(mid, profile="raspberry-pi-4") as m:
                ch = m.backend_choice
                via = ch.delegate if ch.runtime == "litert" else ",".join(ch.providers)
                print(f"       profile raspberry-pi-4: {mid}/{Path(ch.artifact).name} on {ch.runtime}"
                      f"{' (' + via + ')' if via else ''}, {ch.precision}, {ch.threads} threads")
        except Exception as exc:  # noqa: BLE001
            print(f"  FAIL {mid} with profile raspberry-pi-4: {type(exc).__name__}: {exc}")
            failed.append(f"{mid} profile")
    print(f"zoo: {passed} passed, {len(failed)} failed" + (f" ({', '.join(failed)})" if failed else ""))
    return 1 if failed else 0


def main(argv=None):
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("reference")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--data", type=Path, help="the data folder (../shared/data) for real inputs")
    c = sub.add_parser("check")
    c.add_argument("--reference", type=Path, required=True)
    c.add_argument("--emulated", dest="timing_label", action="store_const", const=" (emulated)", default="",
                   help="label the timings as emulated (qemu-user)")
    args = ap.parse_args(argv)
    return reference(args) if args.cmd == "reference" else check(args)


if __name__ == "__main__":
    sys.exit(main())
