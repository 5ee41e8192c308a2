"""A live affect app: microphone (or a file), camera (or a video / image folder) and an EEG board.

    python examples/live_affect.py --audio mic --eeg synthetic
    python examples/live_affect.py --audio speech.wav --face faces/ --eeg playback:rec.muse2.csv

Prints one line per fused result and writes every record to results.jsonl.
Copy it and replace ``show`` with what your app does with the signal.
"""

import argparse

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
    a = ap.parse_args()
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
    rt = runtime.Runtime(jsonl="results.jsonl", on_result=show, duration_s=a.seconds, clock=clock,
                         handle_signals=True, **lanes)
    summary = rt.run()
    print(f"done: {summary['results']} results, {summary['events']} events, stopped by {summary['stopped_by']}")


if __name__ == "__main__":
    main()
