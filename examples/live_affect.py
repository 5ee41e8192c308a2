"""A live affect app: microphone (or a file), camera (or a video / image folder) and an EEG board.

    python examples/live_affect.py --audio mic --eeg synthetic
    python examples/live_affect.py --audio speech.wav --face faces/ --eeg playback:rec.muse2.csv
    python examples/live_affect.py --smoke      # an EmoDB clip + BrainFlow's synthetic board, 6 s (CI)

Prints one line per fused result and writes every record to results.jsonl.
Copy it and replace ``show`` with what your app does with the signal.
"""

import argparse
import os
import tempfile
from pathlib import Path

from affectedge import runtime, sensors


def show(rec):
    if rec["type"] == "result" and rec["modality"] == "fused":
        if rec["status"] == "ok":
            va = f" valence {rec['valence']:+.2f} arousal {rec['arousal']:+.2f}" if rec["valence"] is not None else ""
            who = "+".join(c["modality"] for c in rec["contributors"])
            print(f"{rec['end_ms'] / 1e3:6.1f} s  {rec['label'] or '-':<10}{va}  from {who}")
        else:
            print(f"{rec['end_ms'] / 1e3:6.1f} s  ({rec['status']})")
    elif rec["type"] == "event":
        print(f"  event: {rec['modality']} {rec['label']} {rec['start_ms'] / 1e3:.1f}-{rec['end_ms'] / 1e3:.1f} s")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--audio", default=None, help="mic or an audio file")
    ap.add_argument("--face", default=None, help="camera[:N], a video file or an image folder")
    ap.add_argument("--eeg", default=None, help="synthetic, playback:FILE or BOARD[:k=v,...]")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--out", default="results.jsonl", help="where every record goes (JSON Lines)")
    ap.add_argument("--smoke", action="store_true", help="a real speech file and the synthetic board for 6 s")
    a = ap.parse_args()
    if a.smoke:  # the shared data folder: $AFFECTEDGE_DATA_DIR, else ../shared/data beside the repository
        data = os.environ.get("AFFECTEDGE_DATA_DIR") or Path(__file__).resolve().parents[1].parent / "shared" / "data"
        wav = Path(data) / "speech" / "emodb" / "wav" / "08b03Tc.wav"
        if not wav.is_file():
            ap.error(f"smoke: {wav} not found; set AFFECTEDGE_DATA_DIR to the shared data folder")
        a.audio, a.eeg, a.seconds = str(wav), "synthetic", 6.0
        a.out = str(Path(tempfile.mkdtemp(prefix="live_affect_")) / "results.jsonl")
    clock = sensors.Clock()
    lanes = {}
    if a.audio:
        src = (sensors.MicrophoneSource(target_rate_hz=16000, clock=clock) if a.audio == "mic" else
               sensors.AudioFileSource(a.audio, target_rate_hz=16000, realtime=True, clock=clock))
        lanes["audio"] = (src, runtime.SpeechTask())
    if a.face:
        lanes["video"] = (sensors.open_video(a.face, clock=clock), runtime.FaceTask())
    if a.eeg:
        lanes["eeg"] = (sensors.open_eeg(a.eeg, clock=clock), runtime.EEGTask())
    if not lanes:
        ap.error("give at least one of --audio, --face, --eeg")
    rt = runtime.Runtime(jsonl=a.out, on_result=show, duration_s=a.seconds, clock=clock,
                         handle_signals=True, **lanes)
    summary = rt.run()
    print(f"done: {summary['results']} results, {summary['events']} events, stopped by {summary['stopped_by']}; "
          f"records in {a.out}")
    if a.smoke:
        print("smoke: ok")


if __name__ == "__main__":
    main()
