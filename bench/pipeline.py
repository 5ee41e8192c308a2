"""Live-pipeline benchmark: latency, CPU at real time, peak memory, drops (issue 7, section 9).

    .venv/bin/python bench/pipeline.py [--seconds 20] [--json out.json]

Sections (each memory / CPU figure from a fresh subprocess, so that runs do
not share caches or allocations):

1. speech latency: end of a window (the block that completes it handed to the
   task) to its result, over EmoDB speech pushed in 100 ms blocks; p50 / p95.
   Target p95 <= 20 ms. Anchor: librosa's MFCC (+ deltas) on the same 4 s
   windows, with the same onnxruntime model call.
2. EEG latency: the same for the Muse mental-state model over a real Muse
   recording in 1/16 s blocks. Target p95 <= 10 ms. Anchor: scipy.signal.welch
   band powers of the same windows + the same model call.
3. face: per processed frame, what the time goes to (MediaPipe landmarks,
   features, model), on real CK+ images at 192x192 in VIDEO mode.
4. real time: speech file + BrainFlow synthetic board (and + a CK+ video at 10
   fps) paced at real time for ``--seconds``: process CPU (% of one core),
   peak RSS (target <= 200 MB with speech + EEG), and dropped blocks (target 0).
   Anchor: the same sources read with no task running (capture cost alone).
   ``--device-python`` runs these under a device-like install: in the dev
   venv numba's rocket-fft extension also imports scipy (about 28 MB more).

Ratios are ours / anchor (below 1 = faster or leaner than the anchor).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
EMODB = DATA / "speech" / "emodb" / "wav"
MUSE = DATA / "eeg" / "muse_mentalstate" / "subjecta-concentrating-1.csv"
CKPLUS = DATA / "face" / "ckplus48"


def _speech_audio(seconds):
    import soundfile as sf

    parts, total = [], 0
    for f in sorted(EMODB.glob("*.wav")):
        y, sr = sf.read(f, dtype="float32")
        parts.append(y)
        total += len(y)
        if total >= seconds * sr:
            break
    return np.concatenate(parts), 16000


def pct(x, q):
    return float(np.percentile(np.asarray(x, dtype=np.float64), q)) if len(x) else float("nan")


def bench_speech(seconds):
    import librosa

    from affectedge import runtime
    from affectedge.sensors import AudioBlock

    y, sr = _speech_audio(seconds)
    task = runtime.SpeechTask(runtime.SpeechOptions(online_calibration=True))
    task.warmup()
    n = sr // 10
    lat, feat = [], []
    for k, i in enumerate(range(0, len(y), n)):
        for r in task.push(AudioBlock(y[i:i + n], sr, i / sr, k)):
            if r.latency_ms is not None:
                lat.append(r.latency_ms)
    feat = task.timing_ms["features"]
    # anchor: librosa MFCC + deltas on the same windows, then the same model call
    pipe, model = task.pipe, task.model
    anchor = []
    for end in range(4 * sr, len(y), sr):
        w = y[end - 4 * sr:end]
        t0 = time.perf_counter()
        m = librosa.feature.mfcc(y=w, sr=sr, n_mfcc=pipe.n_mfcc, n_mels=pipe.n_mels, n_fft=pipe.n_fft,
                                 hop_length=pipe.hop_length)
        d1 = librosa.feature.delta(m, width=pipe.delta_width)
        d2 = librosa.feature.delta(m, width=pipe.delta_width, order=2)
        f = np.concatenate([m, d1, d2]).T[:pipe.n_frames]
        x = np.zeros(pipe.input_shape, np.float32)
        x[:f.shape[0], :f.shape[1]] = f
        model.predict(x[None])
        anchor.append((time.perf_counter() - t0) * 1e3)
    return {"windows": len(lat), "p50_ms": pct(lat, 50), "p95_ms": pct(lat, 95), "features_p50_ms": pct(feat, 50),
            "anchor_p50_ms": pct(anchor, 50), "anchor_p95_ms": pct(anchor, 95), "target_p95_ms": 20.0}


def bench_eeg(seconds):
    from scipy.signal import welch

    from affectedge import runtime
    from affectedge.io import read_eeg_csv
    from affectedge.sensors import EEGBlock

    rec = read_eeg_csv(MUSE, channels=["TP9", "AF7", "AF8", "TP10"], sample_rate_hz=256.0)
    x = rec.data[:, : int(256 * max(seconds, 10))]
    task = runtime.EEGTask()
    lat = []
    for k, i in enumerate(range(0, x.shape[1], 16)):
        for r in task.push(EEGBlock(x[:, i:i + 16], 256.0, ("TP9", "AF7", "AF8", "TP10"), i / 256, k)):
            lat.append(r.latency_ms)
    model, pipe = task.model, task.pipe
    anchor = []
    for end in range(1024, x.shape[1], 256):
        w = x[:, end - 1024:end]
        t0 = time.perf_counter()
        f, p = welch(w, fs=256.0, nperseg=256, noverlap=128, window="hann")
        df = f[1] - f[0]
        absb = np.stack([p[:, (f >= lo) & (f < hi)].sum(axis=1) * df for _, lo, hi in pipe.bands], axis=1)
        rel = absb / absb.sum(axis=1, keepdims=True)
        feats = np.concatenate([np.log10(absb + 1e-6), rel, 0.5 * np.log(2 * np.pi * np.e * absb)], axis=1)
        model.predict(feats.astype(np.float32)[None])
        anchor.append((time.perf_counter() - t0) * 1e3)
    return {"windows": len(lat), "p50_ms": pct(lat, 50), "p95_ms": pct(lat, 95), "anchor_p50_ms": pct(anchor, 50),
            "anchor_p95_ms": pct(anchor, 95), "target_p95_ms": 10.0}


def _face_frames(n):
    import cv2

    files = sorted(CKPLUS.glob("*/*.png"))[::37][:n]
    out = []
    for f in files:
        g = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
        out.append(cv2.cvtColor(cv2.resize(g, (192, 192), interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2RGB))
    return out


def bench_face(n=30):
    from affectedge import runtime
    from affectedge.sensors import VideoFrame

    task = runtime.FaceTask(runtime.FaceOptions(max_fps=1000))
    frames = _face_frames(n)
    for k, img in enumerate(frames):
        task.push(VideoFrame(img, k * 0.1, k))
    t = {k: v[1:] for k, v in task.timing_ms.items()}  # the first frame loads the graph
    lat = list(task.latencies_ms)[1:]
    task.close()
    return {"frames": len(frames), "per_frame_p50_ms": pct(lat, 50),
            **{f"{k}_p50_ms": pct(v, 50) for k, v in t.items()},
            "mediapipe_share": pct(t.get("landmarks", []), 50) / max(pct(lat, 50), 1e-9)}


def _make_video(path, seconds, fps=10):
    import cv2

    frames = _face_frames(20)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (192, 192))
    for k in range(int(seconds * fps)):
        w.write(cv2.cvtColor(frames[(k // fps) % len(frames)], cv2.COLOR_RGB2BGR))
    w.release()


def _vm_hwm_mb():
    """Peak RSS of this process (VmHWM; unlike ru_maxrss it is not inherited across exec)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024
    return float("nan")


def realtime_child(seconds, with_face, tasks, wav, video):
    """One real-time run in this (fresh) process; prints a JSON line."""
    from affectedge import runtime, sensors

    clock = sensors.Clock()
    lanes = {"audio": (sensors.AudioFileSource(wav, target_rate_hz=16000, realtime=True, clock=clock),
                       runtime.SpeechTask() if tasks else None),
             "eeg": (sensors.BoardSource("synthetic", clock=clock), runtime.EEGTask() if tasks else None)}
    if with_face:
        lanes["video"] = (sensors.VideoFileSource(video, realtime=True, clock=clock),
                          runtime.FaceTask() if tasks else None)
    if not tasks:  # the anchor: capture alone
        class Null:
            latencies_ms, n_results = [], 0
            model = None

            def warmup(self): pass
            def push(self, p): return []
            def flush(self): return []
            def close(self): pass
        lanes = {k: (s, Null()) for k, (s, _) in lanes.items()}
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    rt = runtime.Runtime(duration_s=seconds, clock=clock, status_every_s=1e9, **lanes)
    summary = rt.run()
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    print(json.dumps({"cpu_pct_of_one_core": 100 * cpu / wall, "peak_rss_mb": _vm_hwm_mb(),
                      "dropped": summary["dropped"], "results": summary["results"],
                      "results_dropped": summary["results_dropped"], "errors": summary["errors"]}))


def bench_realtime(seconds, python=sys.executable):
    import soundfile as sf

    tmp = Path(tempfile.mkdtemp(prefix="affectedge-bench-"))
    y, sr = _speech_audio(seconds + 2)
    wav = tmp / "speech.wav"
    sf.write(wav, y, sr)
    video = tmp / "faces.avi"
    _make_video(video, seconds + 2)
    out = {}
    for name, face, tasks in (("speech+eeg", False, True), ("speech+eeg capture only", False, False),
                              ("all three", True, True), ("all three capture only", True, False)):
        p = subprocess.run([python, __file__, "--child", str(seconds), str(int(face)), str(int(tasks)),
                            str(wav), str(video)], capture_output=True, text=True, timeout=seconds * 4 + 120)
        line = [x for x in p.stdout.splitlines() if x.startswith("{")]
        if p.returncode or not line:
            raise SystemExit(f"child {name} failed:\n{p.stderr[-2000:]}")
        out[name] = json.loads(line[-1])
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="seconds per real-time run")
    ap.add_argument("--json", default=None)
    ap.add_argument("--device-python", default=sys.executable,
                    help="interpreter of a device-like install for the real-time runs (e.g. a venv with only "
                         "'.[onnx,eeg]': without scipy, which numba's rocket-fft extension imports when present)")
    ap.add_argument("--child", nargs=5, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        s, face, tasks, wav, video = a.child
        return realtime_child(float(s), face == "1", tasks == "1", wav, video)
    res = {"speech": bench_speech(60), "eeg": bench_eeg(60), "face": bench_face(),
           "realtime": bench_realtime(a.seconds, a.device_python)}
    s, e, f, rt = res["speech"], res["eeg"], res["face"], res["realtime"]
    print("latency (end of window -> result)")
    print(f"  speech  p50 {s['p50_ms']:6.2f} ms  p95 {s['p95_ms']:6.2f} ms  ({s['windows']} windows; features p50 "
          f"{s['features_p50_ms']:.2f} ms)  anchor librosa+ort p50 {s['anchor_p50_ms']:.2f} ms  ratio p50 "
          f"{s['p50_ms'] / s['anchor_p50_ms']:.2f}  target p95 <= 20 ms [{'PASS' if s['p95_ms'] <= 20 else 'MISS'}]")
    print(f"  eeg     p50 {e['p50_ms']:6.2f} ms  p95 {e['p95_ms']:6.2f} ms  ({e['windows']} windows)  anchor scipy "
          f"welch+ort p50 {e['anchor_p50_ms']:.2f} ms  ratio p50 {e['p50_ms'] / e['anchor_p50_ms']:.2f}  "
          f"target p95 <= 10 ms [{'PASS' if e['p95_ms'] <= 10 else 'MISS'}]")
    print(f"face per frame (192x192, VIDEO mode): {f['per_frame_p50_ms']:.2f} ms p50 = landmarks "
          f"{f.get('landmarks_p50_ms', float('nan')):.2f} + features {f.get('features_p50_ms', float('nan')):.3f} + "
          f"model {f.get('model_p50_ms', float('nan')):.3f} ms (MediaPipe {100 * f['mediapipe_share']:.0f} %)")
    print(f"real time ({a.seconds:g} s per run, files paced + BrainFlow synthetic board; interpreter "
          f"{a.device_python})")
    for name in ("speech+eeg", "all three"):
        r, c = rt[name], rt[name + " capture only"]
        drops = sum(r["dropped"].values())
        line = (f"  {name:<10} CPU {r['cpu_pct_of_one_core']:5.1f} % of one core (capture only "
                f"{c['cpu_pct_of_one_core']:.1f} %, ratio {r['cpu_pct_of_one_core'] / max(c['cpu_pct_of_one_core'], 1e-9):.1f})"
                f"  peak RSS {r['peak_rss_mb']:.0f} MB (capture only {c['peak_rss_mb']:.0f} MB)  dropped blocks {drops}"
                f" [{'PASS' if drops == 0 else 'MISS'}]")
        if name == "speech+eeg":
            line += f"  RSS target <= 200 MB [{'PASS' if r['peak_rss_mb'] <= 200 else 'MISS'}]"
        print(line)
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
