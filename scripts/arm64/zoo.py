"""Every zoo model in onnxruntime, and its .tflite in ai-edge-litert, on one input.

    python zoo.py [--artifacts DIR] [--tol 1e-4]

For each zoo id: ``affectedge.models.load(id)`` (onnxruntime, the card's
model.onnx), predict on a zero input and on a seeded random input of the
card's input shape (batch 1). The face model's temporal variant runs too.
With ``--artifacts DIR``, ``DIR/<id>/*.fp32.tflite`` (written on the host by
``affectedge export <id> --to tflite``) runs in
``ai_edge_litert.interpreter.Interpreter`` on the same inputs and its outputs
are compared with onnxruntime's (max abs diff; outputs matched by shape, else
by order). A missing artifact is reported and counts as a failure.

Prints one line per model and runtime and "zoo: P passed, F failed".
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from affectedge import models


def input_shape(model):
    """The card's input shape with a batch axis of 1 (None/symbolic dims -> 1)."""
    want = model.session.input_shapes[0]
    card = list(model.card.input.get("shape") or [])
    if len(card) == len(want) - 1:
        card = [1] + card
    if len(card) != len(want):
        card = list(want)
    return tuple(int(c) if isinstance(c, int) and c > 0 else 1 for c in card)


def inputs_for(shape, seed):
    rng = np.random.default_rng(seed)
    return {"zeros": np.zeros(shape, np.float32), "random": rng.standard_normal(shape).astype(np.float32)}


def litert_run(path, x, threads):
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), num_threads=threads)
    ins = interp.get_input_details()
    if tuple(ins[0]["shape"]) != x.shape:
        interp.resize_tensor_input(ins[0]["index"], x.shape)
    interp.allocate_tensors()
    interp.set_tensor(ins[0]["index"], x.astype(ins[0]["dtype"]))
    interp.invoke()
    return [interp.get_tensor(d["index"]).copy() for d in interp.get_output_details()]


def match(ort_out, lite_outs):
    """{ort name: litert array}: by unique shape, else by position."""
    shapes = [tuple(a.shape) for a in lite_outs]
    out = {}
    for i, (name, ref) in enumerate(ort_out.items()):
        same = [j for j, s in enumerate(shapes) if s == tuple(ref.shape)]
        j = same[0] if len(same) == 1 else i
        out[name] = lite_outs[j] if j < len(lite_outs) else None
    return out


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--artifacts", type=Path)
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    passed, failed = 0, []
    for k, mid in enumerate(models.ZOO):
        variants = [None] + (["temporal"] if "temporal" in ((models.card(mid).extra or {})) else [])
        for variant in variants:
            label = mid + (f"[{variant}]" if variant else "")
            t0 = time.perf_counter()
            try:
                m = models.load(mid, variant=variant, threads=args.threads)
                shape = input_shape(m)
                xs = inputs_for(shape, 20261126 + k)
                ort_outs = {kind: m.predict(x) for kind, x in xs.items()}
                bad = [n for o in ort_outs.values() for n, a in o.items() if not np.all(np.isfinite(a))]
                if bad:
                    raise RuntimeError(f"non-finite outputs {bad}")
                desc = ", ".join(f"{n} {tuple(a.shape)}" for n, a in ort_outs["random"].items())
                print(f"  onnxruntime {label:28s} in {shape} -> {desc}  ({(time.perf_counter() - t0) * 1e3:.0f} ms)")
                passed += 1
            except Exception as exc:  # noqa: BLE001 -- report every model
                print(f"  onnxruntime {label:28s} FAIL {type(exc).__name__}: {exc}")
                failed.append(f"onnxruntime {label}")
                continue
            if args.artifacts is None or variant is not None:
                continue
            found = sorted((args.artifacts / mid).glob("*.fp32.tflite")) if (args.artifacts / mid).is_dir() else []
            if not found:
                print(f"  litert      {label:28s} FAIL no {args.artifacts / mid}/*.fp32.tflite (host export missing)")
                failed.append(f"litert {label}")
                continue
            t0 = time.perf_counter()
            try:
                worst = 0.0
                for kind, x in xs.items():
                    lite = match(ort_outs[kind], litert_run(found[0], x, args.threads))
                    for name, ref in ort_outs[kind].items():
                        got = lite[name]
                        if got is None or got.shape != ref.shape:
                            raise RuntimeError(f"output {name}: LiteRT gave {None if got is None else got.shape}, "
                                               f"onnxruntime {ref.shape}")
                        worst = max(worst, float(np.max(np.abs(got.astype(np.float64) - ref))))
                ok = worst <= args.tol
                print(f"  litert      {label:28s} {found[0].name}: max abs diff vs onnxruntime {worst:.2e} "
                      f"(zeros and random) {'ok' if ok else f'FAIL > {args.tol:.0e}'}  "
                      f"({(time.perf_counter() - t0) * 1e3:.0f} ms)")
                if ok:
                    passed += 1
                else:
                    failed.append(f"litert {label}")
            except Exception as exc:  # noqa: BLE001
                print(f"  litert      {label:28s} FAIL {type(exc).__name__}: {exc}")
                failed.append(f"litert {label}")
    print(f"zoo: {passed} passed, {len(failed)} failed" + (f" ({', '.join(failed)})" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
