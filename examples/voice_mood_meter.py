"""Voice mood meter: microphone -> speech emotion, as a one-line meter in the terminal.

    python examples/voice_mood_meter.py                      # the default microphone, until Ctrl-C
    python examples/voice_mood_meter.py --device 2           # another input (see `affectedge devices`)
    python examples/voice_mood_meter.py --input talk.wav     # a file, paced like a live input
    python examples/voice_mood_meter.py --smoke              # an EmoDB file and 2 s of silence, a few seconds

Every second the model looks at the last 4 s of audio and the line is redrawn:

    3.0 s  anger      [#########-----------] 0.46  valence -0.42 arousal +0.51  uncalibrated

Silence, clipping and other junk get a status in brackets, never an emotion.
The first 10 s of speech use the training-set statistics ("uncalibrated");
after that the meter calibrates to your voice. Research weights only (EmoDB):
acted German speech, not for decisions about people.
"""

import argparse
import os
import shutil
import sys
from pathlib import Path

import numpy as np

from affectedge import runtime, sensors
from affectedge.errors import AffectEdgeError

SMOKE_WAV = "speech/emodb/wav/03a01Wa.wav"  # speaker 03, an angry sentence


def data_dir():
    """The shared data folder: $AFFECTEDGE_DATA_DIR, else ../shared/data beside the repository."""
    env = os.environ.get("AFFECTEDGE_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"


def meter_line(r, width=20):
    """One line for one result: label, confidence bar, valence/arousal; or the status when there is no answer."""
    t = f"{r.end_ms / 1e3:6.1f} s  "
    if not r.ok:
        return t + f"({r.status}) {r.detail}"
    conf = max(r.probs)  # the top class's probability
    bar = "#" * int(round(conf * width))
    va = ""
    if r.valence is not None:
        va = f"  valence {r.valence:+.2f} arousal {r.arousal:+.2f}"
    return t + f"{r.label:<10} [{bar:-<{width}}] {conf:.2f}{va}  {'calibrated' if r.calibrated else 'uncalibrated'}"


class Meter:
    """Redraws one line in place on a terminal; prints one line per result otherwise (logs, CI)."""

    def __init__(self, stream=sys.stdout):
        self.stream = stream
        self.tty = stream.isatty()

    def show(self, r):
        line = meter_line(r)
        if self.tty:
            self.stream.write("\r\033[K" + line[:shutil.get_terminal_size().columns - 1])
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def done(self):
        if self.tty:
            self.stream.write("\n")


def run_source(src, task, meter, seconds=None):
    """Push the source's audio blocks through the task and show every result."""
    n = 0
    with src:  # opens the microphone / file here: a missing device raises SensorError
        print(f"input: {src.name}" + (" (Ctrl-C to stop)" if src.realtime else ""), flush=True)
        try:
            for block in src:  # an AudioBlock every 100 ms
                for r in task.push(block):
                    meter.show(r)
                    n += 1
                if seconds is not None and block.t_start_s >= seconds:
                    break
        except KeyboardInterrupt:
            pass
    for r in task.flush():  # the tail after the last full hop
        meter.show(r)
        n += 1
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--input", default="mic", help="'mic' (default) or an audio file")
    ap.add_argument("--device", default=None, help="microphone index or part of its name (default: system input)")
    ap.add_argument("--seconds", type=float, default=None, help="stop after this many seconds (default: Ctrl-C)")
    ap.add_argument("--calibration", default=None, help="a saved calibration from `affectedge calibrate`")
    ap.add_argument("--smoke", action="store_true", help="an EmoDB file instead of the microphone (CI)")
    a = ap.parse_args()

    opts = runtime.SpeechOptions(calibration=a.calibration)
    meter = Meter()
    try:
        with runtime.SpeechTask(opts) as task:
            if a.smoke:
                wav = data_dir() / SMOKE_WAV
                if not wav.is_file():
                    sys.exit(f"smoke: {wav} not found; set AFFECTEDGE_DATA_DIR to the shared data folder")
                print(f"smoke: {wav.name} (EmoDB, labelled anger); model {task.model.card.id}, "
                      f"labels {', '.join(task.model.labels)}")
                n = run_source(sensors.AudioFileSource(wav, target_rate_hz=16000), task, meter)
                meter.done()
                # junk input: 2 s of digital silence must give a status, never an emotion
                r = task.classify_clip(np.zeros(32000, np.float32), 16000)
                print(f"silence -> {meter_line(r).strip()}")
                if r.ok or n == 0:
                    sys.exit("smoke: FAILED (no result for speech, or an emotion for silence)")
                print(f"smoke: ok ({n} results)")
                return
            if a.input == "mic":
                device = int(a.device) if a.device is not None and a.device.isdigit() else a.device
                src = sensors.MicrophoneSource(device, target_rate_hz=16000)
            else:
                src = sensors.AudioFileSource(a.input, target_rate_hz=16000, realtime=True)
            run_source(src, task, meter, a.seconds)
            meter.done()
    except AffectEdgeError as exc:  # no microphone, a bad file, a missing extra: say so, no traceback
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
