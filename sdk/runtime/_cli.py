"""``affectedge run | predict | calibrate | devices``: the runtime's commands (hooked into the main CLI)."""

import json
import os
import sys
from pathlib import Path

from affectedge.errors import ParameterError

__all__ = ["add_parsers", "dispatch"]

AUDIO_EXT = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif"}
IMAGE_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
COMMANDS = ("run", "predict", "calibrate", "devices")


def add_parsers(sub):
    r = sub.add_parser("run", help="run the live pipeline on sensors or files and write time-spanned results")
    r.add_argument("--audio", default=None, help="mic, mic:NAME_OR_INDEX, or an audio file (any rate)")
    r.add_argument("--face", default=None, help="camera, camera:N, a stream URL, a video file or an image folder")
    r.add_argument("--eeg", default=None,
                   help="synthetic, playback:FILE[:master_board=B], BOARD[:k=v,...] or an EEG .csv")
    r.add_argument("--calibration", default=None, help="a calibration file from 'affectedge calibrate'")
    r.add_argument("--no-online-calibration", action="store_true", help="do not calibrate on the user's speech")
    r.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    r.add_argument("--out", default=None, help="results .jsonl ('-' = stdout)")
    r.add_argument("--realtime", action="store_true", help="pace files at real time (default when a live "
                                                            "sensor is in the run)")
    r.add_argument("--image-fps", type=float, default=2.0, help="frames per second of an image folder")
    r.add_argument("--loop-images", action="store_true", help="replay an image folder until the run ends")
    r.add_argument("--status-every", type=float, default=5.0, help="seconds between status records")
    r.add_argument("--quiet", action="store_true", help="no live view on stderr")
    r.add_argument("--profile", default=None, help="device profile NAME or 'auto' (detected): runtime, provider, "
                                                   "threads, artifacts and capture defaults")
    r.add_argument("--dashboard", action="store_true", help="serve a live web page of the run (affectedge[dashboard])")
    r.add_argument("--host", default="127.0.0.1", help="dashboard address (not loopback: a token is required)")
    r.add_argument("--port", type=int, default=8765, help="dashboard port (0 = a free one)")
    r.add_argument("--token", default=None, help="dashboard access token (generated for a non-loopback --host)")

    p = sub.add_parser("predict", help="classify one recording (audio or EEG .csv) or one image")
    p.add_argument("input", help="audio file, image, or EEG .csv")
    p.add_argument("--calibration", default=None, help="a calibration file (speech)")
    p.add_argument("--sample-rate", type=float, default=None, help="Hz, for an EEG .csv without timestamps")
    p.add_argument("--json", action="store_true")

    c = sub.add_parser("calibrate", help="per-user speech calibration from the user's own speech")
    c.add_argument("--audio", nargs="+", required=True, help="mic[:NAME] or one or more audio files")
    c.add_argument("--duration", type=float, default=30.0, help="seconds to record from the microphone")
    c.add_argument("--out", required=True, help="calibration .json")
    c.add_argument("--json", action="store_true")

    d = sub.add_parser("devices", help="list audio inputs and cameras")
    d.add_argument("--json", action="store_true")


def dispatch(args):
    return {"run": _run, "predict": _predict, "calibrate": _calibrate, "devices": _devices}[args.command](args)


# ----------------------------------------------------------------- sources
def _mic_device(spec):
    dev = spec.split(":", 1)[1] if ":" in spec else None
    if dev is not None and dev.isdigit():
        dev = int(dev)
    return dev


def audio_source(spec, clock, *, realtime, profile=None):
    from affectedge import sensors

    if spec == "mic" or spec.startswith("mic:"):
        kw = {"block_ms": profile.capture.audio_buffer_ms} if profile is not None else {}
        return sensors.MicrophoneSource(_mic_device(spec), target_rate_hz=16000, clock=clock, **kw), True
    p = Path(spec)
    if not p.is_file():
        raise ParameterError(f"--audio {spec!r} is neither 'mic[:NAME]' nor an existing audio file; pass a "
                             "WAV/FLAC/OGG path or 'mic'")
    return sensors.AudioFileSource(p, target_rate_hz=16000, realtime=realtime, clock=clock), False


def _is_live_video(spec):
    return spec == "camera" or spec.startswith("camera:") or "://" in spec


def _is_live_eeg(spec):
    return not (spec.startswith("playback:") or spec.endswith(".csv"))


# --------------------------------------------------------------------- run
class LiveView:
    """One compact line on stderr: the latest answer of each modality (rewritten in place on a terminal)."""

    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self.latest = {}
        self.ends = {}
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self._last_line_s = -1.0

    def __call__(self, r):
        txt = f"{r.label} {max(r.probs):.2f}" if r.ok and r.probs else ("ok" if r.ok else r.status)
        if r.ok and r.valence is not None:
            txt += f" v{r.valence:+.1f} a{r.arousal:+.1f}"
        if r.modality == "speech" and r.ok:
            txt += " cal" if r.calibrated else " uncal"
        self.latest[r.modality] = txt
        t = r.end_ms / 1e3
        self.ends[r.modality] = t
        if not self.tty and t - self._last_line_s < 1.0:
            return
        self._last_line_s = t
        line = f"[{t:6.1f} s] " + " | ".join(
            f"{m}: {self.latest[m]}" + (" (stale)" if t - self.ends[m] > 5.0 else "")
            for m in ("speech", "face", "eeg", "fused") if m in self.latest)
        if self.tty:
            self.stream.write("\r" + line[:160].ljust(160))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def end(self):
        if self.tty:
            self.stream.write("\n")


def build_runtime(args, *, jsonl, on_result=None, live_view=None):
    """Sources and tasks for ``run``'s arguments (files are paced at real time when a live sensor joins)."""
    from affectedge import runtime, sensors

    if not (args.audio or args.face or args.eeg):
        raise ParameterError("run needs at least one of --audio, --face, --eeg (e.g. --eeg synthetic)")
    live = (args.audio and (args.audio == "mic" or args.audio.startswith("mic:"))) or \
        (args.face and _is_live_video(args.face)) or (args.eeg and _is_live_eeg(args.eeg))
    realtime = bool(args.realtime or live)
    profile = None
    if getattr(args, "profile", None):
        from ._backend import resolve_profile

        profile = resolve_profile(args.profile)

    def mopt(model_id):  # with a profile, its thread count and artifact choice apply
        return runtime.ModelOptions(model_id, profile=profile, threads=None) if profile else runtime.ModelOptions(model_id)

    clock = sensors.Clock()
    lanes = {}
    opened = []
    try:
        if args.audio:
            src, _ = audio_source(args.audio, clock, realtime=realtime, profile=profile)
            opened.append(src)
            task = runtime.SpeechTask(runtime.SpeechOptions(mopt("speech-emotion"), calibration=args.calibration,
                                                            online_calibration=not args.no_online_calibration))
            lanes["audio"] = (src, task)
        if args.face:
            kw = {"realtime": realtime} if not _is_live_video(args.face) else {}
            if profile is not None and _is_live_video(args.face):
                c = profile.capture
                kw.update(width=c.camera_width, height=c.camera_height, fps=c.camera_fps)
            folder = Path(args.face).is_dir()
            if folder:
                kw["fps"] = args.image_fps
                kw["loop"] = bool(getattr(args, "loop_images", False))
            src = sensors.open_video(args.face, clock=clock, **kw)
            opened.append(src)
            lanes["video"] = (src, runtime.FaceTask(runtime.FaceOptions(
                mopt("face-expression"), pixel_model=mopt("face-expression-pixels"), independent_frames=folder)))
        if args.eeg:
            kw = {"realtime": realtime} if args.eeg.endswith(".csv") else {}
            src = sensors.open_eeg(args.eeg, clock=clock, **kw)
            opened.append(src)
            lanes["eeg"] = (src, runtime.EEGTask(runtime.EEGOptions(profile=profile)))
        for _, task in lanes.values():
            task.warmup()  # load / compile kernels before a live source opens (loading holds the GIL)
        for src in opened:
            src.open()  # fail fast: a missing camera or board is reported before anything runs
    except BaseException:
        for src in opened:
            src.close()
        raise
    return runtime.Runtime(jsonl=jsonl, on_result=on_result, duration_s=args.duration, clock=clock,
                           status_every_s=args.status_every, handle_signals=True, live_view=live_view, **lanes)


def _run(args):
    view = None if args.quiet else LiveView()
    jsonl = args.out
    if jsonl and jsonl != "-":
        Path(jsonl).parent.mkdir(parents=True, exist_ok=True)
    dash = None
    if getattr(args, "dashboard", False):
        from affectedge.dashboard import Dashboard

        dash = Dashboard(host=args.host, port=args.port, token=args.token).start()  # prints a generated token
        print(f"dashboard: {dash.url}", file=sys.stderr)
    try:
        rt = build_runtime(args, jsonl=jsonl, live_view=view, on_result=dash.on_record if dash else None)
        summary = rt.run()
    finally:
        if dash is not None:
            dash.stop()
    if view is not None:
        view.end()
    print_summary(summary, out=sys.stderr if jsonl == "-" else sys.stdout)
    return 0 if not summary.get("errors") else 1


def print_summary(s, out=sys.stdout):
    w = lambda line: print(line, file=out)  # noqa: E731
    w(f"summary: {s['duration_ms'] / 1e3:.1f} s, stopped by {s['stopped_by']}, {s['events']} emotion events")
    for m, n in s["results"].items():
        share = s["label_share"].get(m, {})
        top = ", ".join(f"{k} {v:.0%}" for k, v in list(share.items())[:3]) or "no confident answer"
        w(f"  {m:<7} {n:4d} results; most often: {top}")
    drops = {m: d for m, d in s["dropped"].items() if d}
    w(f"  dropped: {drops if drops else 'none'}" + (f"; results dropped {s['results_dropped']}"
                                                      if s.get("results_dropped") else ""))
    for m, e in s.get("errors", {}).items():
        w(f"  {m} error: {e}")


# ----------------------------------------------------------------- predict
def _kind(path):
    ext = Path(path).suffix.lower()
    if ext in AUDIO_EXT:
        return "audio"
    if ext in IMAGE_EXT:
        return "image"
    if ext in (".csv", ".txt", ".tsv"):
        return "eeg"
    raise ParameterError(f"{str(path)!r}: cannot tell its kind from {ext!r}; pass an audio file "
                         f"({', '.join(sorted(AUDIO_EXT))}), an image ({', '.join(sorted(IMAGE_EXT))}) or an EEG .csv")


def predict_file(path, *, calibration=None, sample_rate_hz=None):
    """One result dict for a recording or image (+ per-window results for long audio and EEG)."""
    from affectedge import runtime, sensors

    p = Path(path)
    if not p.is_file():
        raise ParameterError(f"{str(p)!r} does not exist; pass an audio file, an image or an EEG .csv")
    kind = _kind(p)
    if kind == "audio":
        y, sr = sensors.read_audio(p)
        task = runtime.SpeechTask(runtime.SpeechOptions(calibration=calibration, online_calibration=False))
        res = task.classify_clip(y, sr)
        out = res.to_dict()
        out["input"] = {"path": str(p), "sample_rate_hz": sr, "duration_s": round(len(y) / sr, 3)}
        return out
    if kind == "image":
        from affectedge.features.face import load_image

        task = runtime.FaceTask()
        try:
            res = task.classify_image(load_image(p))
        finally:
            task.close()
        out = res.to_dict()
        out["input"] = {"path": str(p)}
        return out
    src = sensors.EEGRecordingSource(p, sample_rate_hz=sample_rate_hz)
    task = runtime.EEGTask()
    windows = []
    with src:
        for blk in src:
            windows += task.push(blk)
    ok = [r for r in windows if r.ok]
    import numpy as np

    if ok:
        probs = np.mean([r.probs for r in ok], axis=0)
        res = runtime.AffectResult(windows[0].start_ms, windows[-1].end_ms, "eeg", labels=ok[0].labels,
                                   probs=tuple(probs.tolist()), confidence=float(np.mean([r.confidence for r in ok])),
                                   model=ok[0].model, detail=f"mean of {len(ok)} of {len(windows)} windows"
                                   + (f"; {ok[0].detail}" if ok[0].detail else ""))
    else:
        status = windows[0].status if windows else "too_short"
        res = runtime.AffectResult(0.0, 0.0, "eeg", status=status, model=task.model.card.id if task.model else "",
                                   detail="no usable window" if windows else "shorter than one window")
    out = res.to_dict()
    out["windows"] = [w.to_dict() for w in windows]
    out["input"] = {"path": str(p)}
    return out


def _predict(args):
    out = predict_file(args.input, calibration=args.calibration, sample_rate_hz=args.sample_rate)
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    if out["status"] == "ok":
        ranked = sorted(zip(out["labels"], out["probs"]), key=lambda t: -t[1])[:3]
        va = f"; valence {out['valence']:+.2f}, arousal {out['arousal']:+.2f}" if out["valence"] is not None else ""
        print(f"{args.input}: {out['modality']} {out['label']} ({', '.join(f'{k} {v:.2f}' for k, v in ranked)})"
              f"{va}; confidence {out['confidence']:.2f}; {'calibrated' if out['calibrated'] else 'uncalibrated'}")
    else:
        print(f"{args.input}: {out['modality']}: no answer -- {out['status']} ({out['detail']})")
    return 0


# --------------------------------------------------------------- calibrate
def _calibrate(args):
    from affectedge import runtime, sensors

    task = runtime.SpeechTask(runtime.SpeechOptions(online_calibration=True))
    used = []
    for spec in args.audio:
        if spec == "mic" or spec.startswith("mic:"):
            print(f"recording {args.duration:g} s from the microphone: speak naturally...", file=sys.stderr)
            with sensors.MicrophoneSource(_mic_device(spec), target_rate_hz=16000) as mic:
                while mic.clock.now_s() < args.duration:
                    blk = mic.read(timeout_s=0.5)
                    if blk is not None:
                        task.push(blk)
            used.append(spec)
        else:
            with sensors.AudioFileSource(spec, target_rate_hz=16000) as src:
                for blk in src:
                    task.push(blk)
                task.flush()
            task._t0_ms = None  # next file starts a fresh window
            used.append(spec)
    cal = task.calibration
    if cal.count == 0:
        raise ParameterError(f"no speech found in {', '.join(used)}: every window was silent or unusable; "
                             "record some speech and try again (nothing was written)")
    cal.save(args.out)
    info = {"out": str(args.out), "speech_s": round(cal.speech_s, 2), "frames": cal.count,
            "ready": cal.ready, "min_speech_s": cal.min_speech_s, "inputs": used}
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        warn = "" if cal.ready else f" (less than the {cal.min_speech_s:g} s recommended: record more)"
        print(f"calibration from {cal.speech_s:.1f} s of speech{warn} -> {args.out}")
    return 0


# ----------------------------------------------------------------- devices
def _devices(args):
    from affectedge import sensors
    from affectedge.errors import MissingExtraError

    info = {"audio_inputs": [], "cameras": [], "eeg": ["synthetic", "playback:FILE", "BOARD[:k=v,...]"]}
    notes = []
    try:
        info["audio_inputs"] = sensors.list_audio_inputs()
    except MissingExtraError as exc:
        notes.append(str(exc))
    try:
        info["cameras"] = sensors.list_cameras()
    except MissingExtraError as exc:
        notes.append(str(exc))
    if args.json:
        info["notes"] = notes
        print(json.dumps(info, indent=2))
        return 0
    print("audio inputs:" + ("" if info["audio_inputs"] else " none found"))
    for d in info["audio_inputs"]:
        print(f"  mic:{d['index']:<3} {d['name']} ({d['max_input_channels']} ch, {d['default_sample_rate_hz']:g} Hz)")
    print("cameras:" + ("" if info["cameras"] else " none found"))
    for c in info["cameras"]:
        print(f"  camera:{c['index']:<3} {c.get('path', '')} {c.get('width')}x{c.get('height')}")
    print("eeg: synthetic (BrainFlow synthetic board), playback:FILE, or BOARD[:serial_port=...,mac_address=...]")
    for n in notes:
        print(f"note: {n}", file=sys.stderr)
    return 0


def _env_flag(name):
    return os.environ.get(name, "") not in ("", "0")
