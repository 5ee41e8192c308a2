"""Speech emotion in STREAM mode: results arrive through a callback while audio is pushed.

    python examples/speech_stream_callback.py recording.flac     # any rate, any channel count
    python examples/speech_stream_callback.py --smoke            # an EmoDB clip, then 6 s of silence (CI)

The first seconds use the training-set statistics (``calibrated: False``);
once 10 s of the speaker's speech are in, the online calibration takes over.
Save it with ``task.calibration.save("me.json")`` and pass
``SpeechOptions(calibration="me.json")`` next time.
"""

import os
import sys
from pathlib import Path

import numpy as np

from affectedge import runtime, sensors


def on_result(r):
    if r.ok:
        print(f"{r.start_ms / 1e3:5.1f}-{r.end_ms / 1e3:5.1f} s  {r.label:<10} {max(r.probs):.2f}  "
              f"{'calibrated' if r.calibrated else 'uncalibrated'}")
    else:
        print(f"{r.start_ms / 1e3:5.1f}-{r.end_ms / 1e3:5.1f} s  ({r.status})")


if len(sys.argv) != 2:
    sys.exit("usage: speech_stream_callback.py AUDIO_FILE | --smoke")
smoke = sys.argv[1] == "--smoke"
path = sys.argv[1]
if smoke:  # a real clip from the shared data folder ($AFFECTEDGE_DATA_DIR, else ../shared/data)
    data = os.environ.get("AFFECTEDGE_DATA_DIR") or Path(__file__).resolve().parents[1].parent / "shared" / "data"
    path = Path(data) / "speech" / "emodb" / "wav" / "08b03Tc.wav"
    if not path.is_file():
        sys.exit(f"smoke: {path} not found; set AFFECTEDGE_DATA_DIR to the shared data folder")

opts = runtime.SpeechOptions(running_mode=runtime.RunningMode.STREAM, result_callback=on_result)
with runtime.SpeechTask(opts) as task, sensors.AudioFileSource(path, target_rate_hz=16000) as src:
    for block in src:
        task.push(block)
    task.flush()
    if smoke:  # 6 s of silence after the speech: a status, never an emotion
        task.push(sensors.AudioBlock(np.zeros(6 * 16000, np.float32), 16000, block.t_end_s, block.seq + 1))
        task.flush()
        print("smoke: ok")
