"""``affectedge demo``: the live pipeline on an embedded default that needs no hardware and no network.

* EEG from BrainFlow's synthetic board (live, 250 Hz, 16 channels; the
  mental-state model runs on its first four channels, flagged as mapped);
* speech from real EmoDB recordings in ``../shared/data`` (one speaker's
  utterances joined with short pauses, paced at real time), else from a clip
  spoken by espeak-ng, else from a generated voiced/pause signal;
* faces from real CK+ images in ``../shared/data`` (an image folder at 1 frame/s).

Results stream to the terminal (one line a second) and to a JSONL file; a
closing summary says what each modality found.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np

__all__ = ["run_demo"]

SPEECH_FILES = ("03a01Wa.wav", "03a05Fc.wav", "03a02Ta.wav", "03a04Nc.wav", "03a01Fa.wav", "03a05Wa.wav",
                "03a04Ta.wav", "03a07La.wav", "03a05Aa.wav")
FACE_CLASSES = ("happy", "surprise", "anger", "sadness", "happy", "disgust", "fear", "surprise")


def find_data(explicit=None):
    candidates = [explicit, os.environ.get("AFFECTEDGE_DATA_DIR"), Path.cwd().parent / "shared" / "data",
                  Path(__file__).resolve().parents[2].parent / "shared" / "data"]
    for c in candidates:
        if c and Path(c).is_dir():
            return Path(c)
    return None


def _speech_clip(data, work):
    """(wav path, description) of the demo's speech."""
    import soundfile as sf

    wav_dir = data / "speech" / "emodb" / "wav" if data else None
    if wav_dir is not None and wav_dir.is_dir():
        parts, names = [], []
        for n in SPEECH_FILES:
            f = wav_dir / n
            if f.is_file():
                y, sr = sf.read(f, dtype="float32")
                parts += [y, np.zeros(int(0.6 * sr), np.float32)]
                names.append(n)
        if parts:
            out = work / "speech.wav"
            sf.write(out, np.concatenate(parts), sr)
            return out, f"{len(names)} EmoDB utterances of speaker 03 ({', '.join(names[:3])}, ...)"
    espeak = shutil.which("espeak-ng")
    if espeak:
        out = work / "speech.wav"
        text = "Hello. I am testing the affect runtime on this device. It is a calm and quiet day."
        subprocess.run([espeak, "-w", str(out), text], check=True, capture_output=True)
        return out, "a clip spoken by espeak-ng (no ../shared/data found)"
    sr = 16000
    t = np.arange(8 * sr) / sr
    env = (np.sin(2 * np.pi * 0.7 * t) > 0).astype(np.float32)
    y = 0.3 * env * np.sin(2 * np.pi * 180 * t) * (1 + 0.5 * np.sin(2 * np.pi * 4 * t))
    out = work / "speech.wav"
    sf.write(out, y.astype(np.float32), sr)
    return out, "a generated voiced/pause signal (no data, no espeak-ng)"


def _face_folder(data, work):
    root = data / "face" / "ckplus48" if data else None
    if root is None or not root.is_dir():
        return None, "no face images found (../shared/data/face/ckplus48)"
    folder = work / "faces"
    folder.mkdir()
    used = {}
    for i, cls in enumerate(FACE_CLASSES):
        files = sorted((root / cls).glob("*.png")) if (root / cls).is_dir() else []
        k = used.get(cls, 0)
        if len(files) > k:
            used[cls] = k + 1
            shutil.copy(files[k * 7 % len(files)], folder / f"{i:02d}_{cls}.png")
    return folder, (f"{sum(used.values())} CK+ images ({', '.join(dict.fromkeys(FACE_CLASSES))}), one a second, "
                    "repeated")


def run_demo(data=None, *, duration_s=None, out=None):
    from affectedge import __version__
    from affectedge.native_kernels import jit_enabled

    from ._cli import LiveView, build_runtime, print_summary

    data = find_data(data)
    work = Path(tempfile.mkdtemp(prefix="affectedge-demo-"))
    try:
        wav, speech_desc = _speech_clip(data, work)
        faces, face_desc = _face_folder(data, work)
        import soundfile as sf

        info = sf.info(str(wav))
        dur = duration_s or min(max(info.duration + 1.0, 12.0), 40.0)
        out = Path(out) if out else Path.cwd() / "demo-results.jsonl"
        print(f"affectedge {__version__} live demo (kernels: {'Numba JIT' if jit_enabled() else 'NumPy fallback'})")
        print(f"  speech: {speech_desc}, {info.duration:.1f} s at {info.samplerate} Hz, paced at real time")
        print(f"  face:   {face_desc}")
        print("  eeg:    BrainFlow synthetic board (live)")
        print(f"  running {dur:.0f} s; results -> {out}  (Ctrl-C stops cleanly)")
        args = SimpleNamespace(audio=str(wav), face=str(faces) if faces else None, eeg="synthetic",
                               calibration=None, no_online_calibration=False, duration=dur, realtime=True,
                               image_fps=1.0, loop_images=True, status_every=10.0, quiet=False)
        view = LiveView(stream=sys.stdout)
        rt = build_runtime(args, jsonl=str(out), live_view=view)
        summary = rt.run()
        view.end()
        print_summary(summary)
        print(f"  every window, event and status record is in {out} (JSON Lines, schema affectedge.results v1)")
        return 0 if not summary.get("errors") else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
