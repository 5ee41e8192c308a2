"""Speech emotion in STREAM mode: results arrive through a callback while audio is pushed.

    python examples/speech_stream_callback.py recording.flac     # any rate, any channel count

The first seconds use the training-set statistics (``calibrated: False``);
once 10 s of the speaker's speech are in, the online calibration takes over.
Save it with ``task.calibration.save("me.json")`` and pass
``SpeechOptions(calibration="me.json")`` next time.
"""

import sys

from affectedge import runtime, sensors


def on_result(r):
    if r.ok:
        print(f"{r.start_ms / 1e3:5.1f}-{r.end_ms / 1e3:5.1f} s  {r.label:<10} {max(r.probs):.2f}  "
              f"{'calibrated' if r.calibrated else 'uncalibrated'}")
    else:
        print(f"{r.start_ms / 1e3:5.1f}-{r.end_ms / 1e3:5.1f} s  ({r.status})")


opts = runtime.SpeechOptions(running_mode=runtime.RunningMode.STREAM, result_callback=on_result)
with runtime.SpeechTask(opts) as task, sensors.AudioFileSource(sys.argv[1], target_rate_hz=16000) as src:
    for block in src:
        task.push(block)
    task.flush()
