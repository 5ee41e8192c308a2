"""Multimodal fusion: voice, face and EEG fused into one answer every second, with an optional live dashboard.

    python examples/multimodal_fusion.py                                   # mic + camera 0 + Muse 2, Ctrl-C to stop
    python examples/multimodal_fusion.py --eeg synthetic --dashboard       # open the printed URL in a browser
    python examples/multimodal_fusion.py --audio talk.wav --video clip.mp4 --eeg playback:rec.muse2.csv
    python examples/multimodal_fusion.py --video off --eeg off             # any modality can be left out
    python examples/multimodal_fusion.py --smoke                           # data files, ~8 s (CI)

Each modality runs its own model on its own thread (``affectedge.runtime.Runtime``);
every second the latest answer of each is fused: weighted by its confidence
and freshness, dropped when older than 5 s or when it has a status instead of
an answer (no speech, no face, electrodes off). The fused line says which
modalities contributed. A Muse headset gives a mental state (concentrating /
neutral / relaxed), not an emotion: it is shown beside the fused answer
("| eeg relaxed 0.98") and fused only by a model with valence/arousal (the
32-channel DEAP one). Every record (results, events, sensor status, the
summary) is also written as JSON Lines with ``--jsonl`` and goes to the
dashboard with ``--dashboard`` (``pip install 'affectedge[dashboard]'``).
Research weights only; not for decisions about people.
"""

import argparse
import os
import sys
from pathlib import Path

from affectedge import runtime, sensors
from affectedge.errors import AffectEdgeError, MissingExtraError

SMOKE_AUDIO = "speech/emodb/wav/08b02Tc.wav"  # 7.7 s, speaker 08, sadness
SMOKE_FACES = "face/ckplus48/sadness"
SMOKE_EEG = "eeg/muse_mentalstate/brainflow_muse2/subjecta-relaxed-1.muse2.csv"


def data_dir():
    """The shared data folder: $AFFECTEDGE_DATA_DIR, else ../shared/data beside the repository."""
    env = os.environ.get("AFFECTEDGE_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"


def start_dashboard(required):
    """A started Dashboard, or None (with the reason printed) when the extra is missing and not required."""
    try:
        from affectedge.dashboard import Dashboard

        dash = Dashboard(host="127.0.0.1", port=0, token=None)
        dash.start()
    except (MissingExtraError, ImportError, AttributeError, OSError) as exc:
        if required:
            sys.exit(f"error: the dashboard cannot start: {exc} (pip install 'affectedge[dashboard]')")
        print(f"dashboard: not available ({type(exc).__name__}: {exc}); going on without it")
        return None
    print(f"dashboard: {dash.url}")
    return dash


class Printer:
    """Prints the fused answer every second, each modality's statuses when they change, and events."""

    def __init__(self):
        self.last_status = {}
        self.fused_ok = 0
        self.eeg = ""  # the latest EEG mental state, shown beside the fused emotion

    def __call__(self, rec):
        if rec["type"] == "result":
            m = rec["modality"]
            if m == "eeg":
                self.eeg = (f"   | eeg {rec['label']} {max(rec['probs']):.2f}" if rec["status"] == "ok" and
                            rec["valence"] is None else "")
            if m == "fused":
                t = f"{rec['end_ms'] / 1e3:6.1f} s  fused "
                if rec["status"] == "ok":
                    self.fused_ok += 1
                    va = (f" valence {rec['valence']:+.2f} arousal {rec['arousal']:+.2f}"
                          if rec["valence"] is not None else "")
                    who = ", ".join(f"{c['modality']} {c['weight']:.2f}" for c in rec["contributors"])
                    print(f"{t}{rec['label'] or '-':<10} conf {rec['confidence']:.2f}{va}   from {who}{self.eeg}",
                          flush=True)
                else:
                    print(f"{t}({rec['status']}) {rec['detail']}", flush=True)
            elif rec["status"] != "ok" and self.last_status.get(m) != rec["status"]:
                print(f"{rec['end_ms'] / 1e3:6.1f} s  {m:<6}({rec['status']}) {rec['detail'][:100]}", flush=True)
            if m != "fused":
                self.last_status[m] = rec["status"]
        elif rec["type"] == "event":
            print(f"         event: {rec['modality']} {rec['label']} {rec['start_ms'] / 1e3:.1f}-"
                  f"{rec['end_ms'] / 1e3:.1f} s", flush=True)


def build_lanes(audio, video, eeg, clock):
    """(source, task) pairs for Runtime; 'off' leaves a modality out."""
    lanes = {}
    if audio != "off":
        src = (sensors.MicrophoneSource(target_rate_hz=16000, clock=clock) if audio == "mic" else
               sensors.AudioFileSource(audio, target_rate_hz=16000, realtime=True, clock=clock))
        lanes["audio"] = (src, runtime.SpeechTask())
    if video != "off":
        folder = Path(video).is_dir()
        kw = {"fps": 2.0, "realtime": True, "loop": True} if folder else {}
        lanes["video"] = (sensors.open_video(video, clock=clock, **kw),
                          runtime.FaceTask(runtime.FaceOptions(independent_frames=folder)))
    if eeg != "off":
        lanes["eeg"] = (sensors.open_eeg(eeg, clock=clock), runtime.EEGTask())
    return lanes


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--audio", default="mic", help="mic (default), an audio file, or off")
    ap.add_argument("--video", default="camera", help="camera[:N] (default), a video file, an image folder, or off")
    ap.add_argument("--eeg", default="muse_2", help="muse_2 (default), synthetic, playback:FILE, BOARD:k=v, or off")
    ap.add_argument("--seconds", type=float, default=None, help="stop after this many seconds (default: Ctrl-C)")
    ap.add_argument("--jsonl", default=None, help="write every record to this JSON Lines file ('-' = stdout)")
    ap.add_argument("--dashboard", action="store_true", help="serve the live dashboard on 127.0.0.1")
    ap.add_argument("--smoke", action="store_true", help="EmoDB + CK+ + a Muse recording, ~8 s (CI)")
    a = ap.parse_args()

    if a.smoke:
        d = data_dir()
        a.audio, a.video, a.eeg = str(d / SMOKE_AUDIO), str(d / SMOKE_FACES), f"playback:{d / SMOKE_EEG}"
        a.seconds = 8.0
        for p in (d / SMOKE_AUDIO, d / SMOKE_FACES, d / SMOKE_EEG):
            if not p.exists():
                sys.exit(f"smoke: {p} not found; set AFFECTEDGE_DATA_DIR to the shared data folder")
        print("smoke: sad speech (EmoDB), sad faces (CK+), a relaxed Muse recording")
    dash = start_dashboard(required=a.dashboard) if (a.dashboard or a.smoke) else None
    printer = Printer()

    def on_record(rec):  # called on the runtime's delivery thread for every record
        printer(rec)
        if dash is not None:
            dash.on_record(rec)

    try:
        clock = sensors.Clock()  # one clock for every source, so their results line up in time
        lanes = build_lanes(a.audio, a.video, a.eeg, clock)
        if not lanes:
            ap.error("every modality is off")
        rt = runtime.Runtime(**lanes, on_result=on_record, jsonl=a.jsonl, duration_s=a.seconds, clock=clock,
                             handle_signals=True)  # Ctrl-C ends the run cleanly: sensors released, summary written
        summary = rt.run()
    except AffectEdgeError as exc:  # no microphone / camera / headset, a bad path: say which, no traceback
        sys.exit(f"error: {exc}")
    finally:
        if dash is not None:
            dash.stop()
    print(f"done: results {summary['results']}, {summary['events']} events, stopped by {summary['stopped_by']}")
    for m, err in summary["errors"].items():  # a sensor that failed ends its lane; the others go on
        print(f"error: {m}: {err}", file=sys.stderr)
    if summary["errors"] and not summary["results"]:
        sys.exit("error: no modality delivered anything (see above)")
    if a.smoke:
        if printer.fused_ok == 0 or summary["errors"]:
            sys.exit("smoke: FAILED (no fused answer, or a modality failed)")
        print(f"smoke: ok ({printer.fused_ok} fused answers)")


if __name__ == "__main__":
    main()
