"""affectedge kernel benchmarks against anchors measured in the same run.

    .venv/bin/python bench/kernels.py [--repeats N] [--json PATH]

One process, one thread (BLAS/OpenMP/Numba pools limited to 1 before any
import, threadpoolctl on top), every JIT warmed before timing, medians of
repeated timings. Sections and their targets:

* Batch MFCC, 60 s of 16 kHz float32 audio (real EmoDB speech when
  ../shared/data is present): librosa / ours >= 3x; ours / bare FFT <= 1.5x.
* Streaming MFCC per 10 ms hop: librosa per frame / ours >= 50x; ours <= 10 us.
* EEG band power + DE (bench/_eeg.py): scipy / ours >= 5x.
* Graph Chebyshev filter (bench/_graph.py): ours <= NumPy einsum reference.
* Silence features on 60 s: ours <= 1 ms.

See bench/README.md for what each figure means.
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:  # run as a script: import the sibling _eeg / _graph modules
    sys.path.insert(0, str(BENCH_DIR))

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from _timing import median_s  # noqa: E402

SR = 16000
SECONDS = 60
N_FFT, HOP, N_MELS, N_MFCC = 512, 160, 40, 13
MFCC_KW = dict(sr=SR, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS, n_mfcc=N_MFCC)

TARGET_LIBROSA_BATCH = 3.0  # librosa / ours, batch MFCC
TARGET_FLOOR = 1.5  # ours / bare FFT, batch MFCC
TARGET_LIBROSA_STREAM = 50.0  # librosa per frame / ours, streaming MFCC
TARGET_STREAM_US = 10.0  # ours per 10 ms hop
TARGET_EEG = 5.0  # scipy / ours, band power + DE
TARGET_SILENCE_MS = 1.0  # ours, 60 s


def _data_dir():
    for c in (os.environ.get("AFFECTEDGE_DATA_DIR"), BENCH_DIR.parents[1] / "shared" / "data"):
        if c and Path(c).is_dir():
            return Path(c)
    return None


def load_audio():
    """60 s of 16 kHz float32: EmoDB clips concatenated (sorted names), else seeded noise."""
    from affectedge.io import read_wav

    n = SR * SECONDS
    data = _data_dir()
    wav_dir = data / "speech" / "emodb" / "wav" if data else None
    if wav_dir is not None and wav_dir.is_dir():
        parts, total, used = [], 0, 0
        for f in sorted(wav_dir.glob("*.wav")):
            y, sr = read_wav(f)
            if sr != SR:
                continue
            parts.append(y)
            total += y.shape[0]
            used += 1
            if total >= n:
                break
        if total >= n:
            return np.ascontiguousarray(np.concatenate(parts)[:n], dtype=np.float32), (
                f"EmoDB speech, {used} clips concatenated to {SECONDS} s"
            )
    rng = np.random.default_rng(0)
    return (0.1 * rng.standard_normal(n)).astype(np.float32), f"seeded noise, {SECONDS} s (no EmoDB found)"


def _fmt_time(s):
    if s >= 1e-3:
        return f"{s * 1e3:9.3f} ms"
    return f"{s * 1e6:9.2f} us"


def print_table(title, rows, ratios, checks):
    """rows: (name, seconds, note); ratios: (label, value, target text); checks: (label, ok)."""
    print(f"\n== {title}")
    w = max([len(r[0]) for r in rows] + [len(r[0]) for r in ratios] + [10])
    for name, sec, note in rows:
        print(f"  {name:<{w}}  {_fmt_time(sec) if sec is not None else '        --'}  {note}")
    if ratios:
        print(f"  {'ratio':<{w}}  {'value':>12}  target")
        for label, value, target in ratios:
            print(f"  {label:<{w}}  {value:11.2f}x  {target}")
    for label, ok in checks:
        print(f"  [{'PASS' if ok else 'MISS'}] {label}")


# ------------------------------- batch MFCC -------------------------------


def bench_batch_mfcc(y, repeats):
    import librosa
    import numba
    import python_speech_features as psf

    from affectedge.native_kernels import mfcc

    rows, figures = [], {}

    def ours():
        return mfcc(y, **MFCC_KW)

    def lib():
        return librosa.feature.mfcc(y=y, **MFCC_KW)

    # Bare FFT floor: the same center-padded, windowed, contiguous float32
    # frames, transformed by rocket-fft inside @njit. Framing is done once,
    # outside the timing: this is the cost of the FFTs alone.
    yp = np.pad(y, N_FFT // 2)
    n_frames = 1 + (yp.shape[0] - N_FFT) // HOP
    win = librosa.filters.get_window("hann", N_FFT, fftbins=True).astype(np.float32)
    frames = np.ascontiguousarray(
        np.lib.stride_tricks.sliding_window_view(yp, N_FFT)[::HOP][:n_frames] * win, dtype=np.float32
    )

    @numba.njit(cache=False)
    def _rfft_frames(fr):
        return np.fft.rfft(fr)

    def floor():
        return _rfft_frames(frames)

    m_ours, m_lib = ours(), lib()
    assert m_ours.shape == m_lib.shape == (N_MFCC, n_frames), (m_ours.shape, m_lib.shape, n_frames)
    diff = float(np.max(np.abs(m_ours - m_lib)))
    t_ours = median_s(ours, repeats * 2)
    t_lib = median_s(lib, repeats)
    t_floor = median_s(floor, repeats * 2)
    rows.append(("affectedge mfcc", t_ours, f"{n_frames} frames x {N_MFCC}, max |diff| vs librosa {diff:.2e}"))
    rows.append(("librosa.feature.mfcc", t_lib, "same parameters"))
    figures.update(ours_s=t_ours, librosa_s=t_lib, floor_s=t_floor, n_frames=n_frames, max_abs_diff_vs_librosa=diff)

    def p_s_f():
        return psf.mfcc(y, samplerate=SR, winlen=0.032, winstep=0.01, numcep=N_MFCC, nfilt=N_MELS, nfft=N_FFT)

    t_psf = median_s(p_s_f, max(3, repeats // 2))
    rows.append(("python_speech_features.mfcc", t_psf, "winlen 0.032, winstep 0.01, nfilt 40, nfft 512"))
    figures["python_speech_features_s"] = t_psf
    others = [("python_speech_features / ours", t_psf)]

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from spafe.features.mfcc import mfcc as spafe_mfcc
            from spafe.utils.preprocessing import SlidingWindow

        def spafe_fn():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return spafe_mfcc(y, fs=SR, num_ceps=N_MFCC, nfilts=N_MELS, nfft=N_FFT,
                                  window=SlidingWindow(0.032, 0.01, "hanning"))

        t_spafe = median_s(spafe_fn, max(3, repeats // 2))
        rows.append(("spafe mfcc", t_spafe, "win 0.032 s hanning, hop 0.01 s, 40 filters, nfft 512"))
        figures["spafe_s"] = t_spafe
        others.append(("spafe / ours", t_spafe))
    except Exception as exc:  # noqa: BLE001 - optional anchor
        rows.append(("spafe mfcc", None, f"skipped: spafe unavailable ({type(exc).__name__}: {exc})"))
    rows.append(("bare FFT floor (njit rfft)", t_floor, f"{n_frames} pre-windowed frames of {N_FFT}, float32"))

    r_lib = t_lib / t_ours
    r_floor = t_ours / t_floor
    ratios = [("librosa / ours", r_lib, f">= {TARGET_LIBROSA_BATCH:g}x"),
              ("ours / bare FFT floor", r_floor, f"<= {TARGET_FLOOR:g}x")]
    ratios += [(label, t / t_ours, "info") for label, t in others]
    figures.update(librosa_over_ours=r_lib, ours_over_floor=r_floor)
    for label, t in others:
        figures[label.split(" /")[0] + "_over_ours"] = t / t_ours
    checks = [(f"batch MFCC: librosa / ours = {r_lib:.2f}x (target >= {TARGET_LIBROSA_BATCH:g}x)",
               r_lib >= TARGET_LIBROSA_BATCH),
              (f"batch MFCC: ours / FFT floor = {r_floor:.2f}x (target <= {TARGET_FLOOR:g}x)",
               r_floor <= TARGET_FLOOR)]
    return rows, ratios, checks, figures


# ----------------------------- streaming MFCC -----------------------------


def bench_stream_mfcc(y, repeats, pushes=3000):
    import librosa

    from affectedge.native_kernels import StreamingMFCC, mfcc

    chunks = y[: (y.shape[0] // HOP) * HOP].reshape(-1, HOP)
    sm = StreamingMFCC(sr=SR, n_mfcc=N_MFCC, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS)

    # Correctness: the stream equals batch center=False, top_db=None.
    sm.reset()
    streamed = np.concatenate([sm.push(c) for c in chunks[:400]], axis=1)
    batch = mfcc(np.ascontiguousarray(chunks[:400].ravel()), center=False, top_db=None, **MFCC_KW)
    stream_diff = float(np.max(np.abs(streamed - batch)))

    warm = 8  # pushes that fill the first frame (512 samples) and warm the kernel
    n_push = min(pushes, chunks.shape[0] - warm)

    def ours():
        sm.reset()
        for c in chunks[:warm]:
            sm.push(c)
        t0 = time.perf_counter()
        for c in chunks[warm : warm + n_push]:
            sm.push(c)
        return (time.perf_counter() - t0) / n_push

    ours()
    t_ours = float(np.median([ours() for _ in range(max(3, repeats))]))

    # Anchors: per 10 ms hop, shift a 512-sample buffer by 160 and compute one frame.
    win = librosa.filters.get_window("hann", N_FFT, fftbins=True).astype(np.float32)
    fb = librosa.filters.mel(sr=SR, n_fft=N_FFT, n_mels=N_MELS).astype(np.float32)
    n = np.arange(N_MELS)
    k = np.arange(N_MFCC)[:, None]
    dct = 2.0 * np.cos(np.pi * k * (2 * n + 1) / (2.0 * N_MELS))
    dct[0] *= np.sqrt(1.0 / (4 * N_MELS))
    dct[1:] *= np.sqrt(1.0 / (2 * N_MELS))
    dct = dct.astype(np.float32)

    def numpy_frame(frame):
        spec = np.fft.rfft(frame * win)
        p = (spec.real * spec.real + spec.imag * spec.imag).astype(np.float32)
        return dct @ (10.0 * np.log10(np.maximum(fb @ p, np.float32(1e-10))))

    def librosa_frame(frame):
        return librosa.feature.mfcc(y=frame, center=False, **MFCC_KW)

    def per_hop(frame_fn, count):
        def run():
            buf = np.concatenate(chunks[: N_FFT // HOP + 1])[-N_FFT:].copy()
            t0 = time.perf_counter()
            for c in chunks[warm : warm + count]:
                buf = np.concatenate((buf[HOP:], c))
                frame_fn(buf)
            return (time.perf_counter() - t0) / count

        return run

    # Correctness of the NumPy anchor against the stream (same frames).
    sm.reset()
    ref = np.concatenate([sm.push(c) for c in chunks[:8]], axis=1)[:, -1]
    last_start = ((8 * HOP - N_FFT) // HOP) * HOP
    buf = np.ascontiguousarray(chunks[:8].ravel()[last_start : last_start + N_FFT])
    np_diff = float(np.max(np.abs(numpy_frame(buf) - ref)))
    lib_diff = float(np.max(np.abs(librosa_frame(buf)[:, 0] - ref)))

    run_np = per_hop(numpy_frame, min(n_push, 3000))
    run_np()
    t_np = float(np.median([run_np() for _ in range(max(3, repeats // 2))]))
    run_lib = per_hop(librosa_frame, 300)
    run_lib()
    t_lib = float(np.median([run_lib() for _ in range(3)]))

    rows = [
        ("affectedge StreamingMFCC.push", t_ours,
         f"160-sample chunks, mean of {n_push} pushes; stream vs batch center=False max |diff| {stream_diff:.2e}"),
        ("librosa.feature.mfcc per frame", t_lib, f"512-sample frame, center=False; max |diff| {lib_diff:.2e}"),
        ("NumPy per frame", t_np, f"window, rfft, mel @, log10, DCT @; max |diff| {np_diff:.2e}"),
    ]
    r_lib = t_lib / t_ours
    r_np = t_np / t_ours
    ratios = [("librosa per frame / ours", r_lib, f">= {TARGET_LIBROSA_STREAM:g}x"),
              ("NumPy per frame / ours", r_np, "info")]
    checks = [
        (f"streaming MFCC: librosa / ours = {r_lib:.1f}x (target >= {TARGET_LIBROSA_STREAM:g}x)",
         r_lib >= TARGET_LIBROSA_STREAM),
        (f"streaming MFCC: ours = {t_ours * 1e6:.2f} us per 10 ms hop (target <= {TARGET_STREAM_US:g} us)",
         t_ours * 1e6 <= TARGET_STREAM_US),
    ]
    figures = dict(ours_us_per_hop=t_ours * 1e6, librosa_us_per_frame=t_lib * 1e6, numpy_us_per_frame=t_np * 1e6,
                   librosa_over_ours=r_lib, numpy_over_ours=r_np, stream_vs_batch_max_abs_diff=stream_diff,
                   pushes=n_push)
    return rows, ratios, checks, figures


# ---------------------------------- EEG -----------------------------------


def bench_eeg(repeats):
    import _eeg

    res = _eeg.run(repeats)
    rows = [(r["name"], r["us"] / 1e6, f"{r['ratio_vs_scipy']:.2f}x vs scipy; max rel diff "
             f"{r.get('max_rel_diff_vs_scipy', float('nan')):.1e}") for r in res]
    head = next((r for r in res if r["name"].startswith("affectedge band_power(with_de=True)")), None)
    ratios = [(f"scipy / {r['name']}", r["ratio_vs_scipy"], f">= {TARGET_EEG:g}x" if r is head else "info")
              for r in res[1:]]
    checks = []
    if head is not None:
        checks.append((f"EEG band power + DE: scipy / ours = {head['ratio_vs_scipy']:.2f}x (target >= {TARGET_EEG:g}x)",
                       head["ratio_vs_scipy"] >= TARGET_EEG))
    note = res[0]["note"] + "; data: " + res[0]["data"] if res else ""
    return rows, ratios, checks, {"rows": res}, note


# --------------------------------- graph ----------------------------------


def bench_graph(repeats):
    import _graph

    res = _graph.run(repeats)
    rows = [(r["name"], r["us"] / 1e6, f"{r['ratio_vs_numpy']:.3f} x the NumPy time") for r in res]
    ratios = [(f"numpy / {r['name']}", 1.0 / r["ratio_vs_numpy"], "info") for r in res if r["ratio_vs_numpy"] != 1.0]
    head = next((r for r in res if r["name"] == "chebyshev_filter[jit]"), None)
    checks = []
    if head is not None:
        checks.append((f"graph filter: ours = {head['ratio_vs_numpy']:.2f} x NumPy einsum time (target <= 1)",
                       head["ratio_vs_numpy"] <= 1.0))
    note = f"batch {_graph.BATCH}, {_graph.NODES} nodes, {_graph.F_IN} -> {_graph.F_OUT} features, K={_graph.K}, float32"
    return rows, ratios, checks, {"rows": res}, note


# -------------------------------- silence ---------------------------------


def bench_silence(y, repeats):
    import librosa

    from affectedge.native_kernels import silence_features

    def ours():
        return silence_features(y, sr=SR)

    def anchor():
        rms = librosa.feature.rms(y=y, frame_length=2048, hop_length=512, center=True)[0]
        mask = rms <= 0.3 * rms.mean()
        edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
        lengths = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
        hop_s = 512 / SR
        return (mask.mean(), len(lengths), lengths.mean() * hop_s if len(lengths) else 0.0,
                lengths.max() * hop_s if len(lengths) else 0.0)

    f = ours()
    a = anchor()
    same = (f.n_segments == a[1] and abs(f.ratio - a[0]) < 1e-6 and abs(f.longest_segment_s - a[3]) < 1e-6)
    t_ours = median_s(ours, repeats * 2, inner=5)
    t_anchor = median_s(anchor, repeats, inner=2)
    rows = [("affectedge silence_features", t_ours,
             f"{f.mask.shape[0]} frames; ratio {f.ratio:.3f}, {f.n_segments} segments; "
             f"{'agrees' if same else 'DISAGREES'} with anchor"),
            ("librosa rms + NumPy runs", t_anchor, "frame 2048, hop 512, center=True, factor 0.3")]
    r = t_anchor / t_ours
    ratios = [("anchor / ours", r, "info")]
    checks = [(f"silence features on {SECONDS} s: ours = {t_ours * 1e3:.3f} ms (target <= {TARGET_SILENCE_MS:g} ms)",
               t_ours * 1e3 <= TARGET_SILENCE_MS)]
    return rows, ratios, checks, dict(ours_s=t_ours, anchor_s=t_anchor, anchor_over_ours=r, agrees=bool(same))


# ---------------------------------- main ----------------------------------


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=9, help="timed repeats per figure (median taken); default 9")
    ap.add_argument("--json", metavar="PATH", default=None, help="also write every figure to PATH as JSON")
    args = ap.parse_args(argv)

    import affectedge
    from affectedge.native_kernels import _config, jit_enabled, warmup

    t_start = time.perf_counter()
    print(f"affectedge {affectedge.__version__} kernel benchmarks; Python {platform.python_version()}, "
          f"numpy {np.__version__}, {platform.machine()}, {os.cpu_count()} CPUs, single thread")
    print(f"kernels: {'Numba JIT' if jit_enabled() else 'NumPy twins (' + _config.JIT_DISABLED_REASON + ')'}, "
          f"numba fft: {'rocket-fft' if _config.HAVE_NUMBA_FFT else 'unavailable'}")
    t0 = time.perf_counter()
    warmup(progress=False)
    print(f"warm-up (compile or load every kernel): {time.perf_counter() - t0:.1f} s")

    y, label = load_audio()
    print(f"audio: {label}; {y.shape[0]} samples float32 at {SR} Hz")

    report = {"python": platform.python_version(), "numpy": np.__version__, "machine": platform.machine(),
              "jit": bool(jit_enabled()), "audio": label, "repeats": args.repeats, "sections": {}}
    all_checks = []
    with threadpool_limits(limits=1):
        rows, ratios, checks, fig = bench_batch_mfcc(y, args.repeats)
        print_table(f"Batch MFCC, {SECONDS} s @ {SR} Hz, n_fft {N_FFT}, hop {HOP}, {N_MELS} mels, "
                    f"{N_MFCC} coefficients, float32", rows, ratios, checks)
        report["sections"]["batch_mfcc"] = fig
        all_checks += checks

        rows, ratios, checks, fig = bench_stream_mfcc(y, args.repeats)
        print_table("Streaming MFCC, per 10 ms hop (160 samples in, one 13-coefficient frame out)",
                    rows, ratios, checks)
        report["sections"]["streaming_mfcc"] = fig
        all_checks += checks

    rows, ratios, checks, fig, note = bench_eeg(args.repeats)
    print_table(f"EEG band power + differential entropy ({note})", rows, ratios, checks)
    report["sections"]["eeg"] = fig
    all_checks += checks

    rows, ratios, checks, fig, note = bench_graph(max(args.repeats, 50))
    print_table(f"Graph Chebyshev filter ({note})", rows, ratios, checks)
    report["sections"]["graph"] = fig
    all_checks += checks

    with threadpool_limits(limits=1):
        rows, ratios, checks, fig = bench_silence(y, args.repeats)
        print_table(f"Silence features, {SECONDS} s @ {SR} Hz", rows, ratios, checks)
        report["sections"]["silence"] = fig
        all_checks += checks

    n_pass = sum(ok for _, ok in all_checks)
    elapsed = time.perf_counter() - t_start
    print(f"\n{n_pass}/{len(all_checks)} targets met; total {elapsed:.1f} s")
    report["targets"] = [{"target": label, "pass": bool(ok)} for label, ok in all_checks]
    report["elapsed_s"] = elapsed
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2, default=float) + "\n")
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
