"""EEG relaxation monitor: a BrainFlow board -> the mental-state model, with BrainFlow's restfulness beside it.

    python examples/eeg_relaxation_monitor.py                                    # Muse 2 (Bluetooth), Ctrl-C to stop
    python examples/eeg_relaxation_monitor.py --board muse_2:mac_address=00:55:DA:B0:12:34
    python examples/eeg_relaxation_monitor.py --board synthetic                  # BrainFlow's synthetic board
    python examples/eeg_relaxation_monitor.py --board playback:rec.muse2.csv     # replay a BrainFlow file
    python examples/eeg_relaxation_monitor.py --smoke                            # a Muse recording, a few seconds

Every second, on the last 4 s of EEG (TP9, AF7, AF8, TP10):

* ours: the zoo model ``eeg-mental-state`` (concentrating / neutral / relaxed),
  shown as its label and P(relaxed);
* BrainFlow's: ``MLModel(RESTFULNESS, DEFAULT_CLASSIFIER)`` on
  ``DataFilter.get_avg_band_powers`` of the same raw window (the function the
  training report compares with, ``affectedge.training.mental_state.brainflow_scores``).

Windows with flat, railed or non-finite channels (a headset not on the head)
get a status and no score from either. A board with other electrodes runs the
model on its first four channels, and each line says so ("mapped").
Research weights only (Bird et al. 2018 Muse data); not for decisions about people.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from affectedge import runtime, sensors
from affectedge.errors import AffectEdgeError
from affectedge.sensors import EEGBlock
from affectedge.training.mental_state import brainflow_scores

SMOKE_FILE = "eeg/muse_mentalstate/brainflow_muse2/subjecta-relaxed-1.muse2.csv"


def data_dir():
    """The shared data folder: $AFFECTEDGE_DATA_DIR, else ../shared/data beside the repository."""
    env = os.environ.get("AFFECTEDGE_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"


class RawWindow:
    """The last ``seconds`` of the board's raw EEG (for BrainFlow's own metric), at the board's rate."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.x = None
        self.fs = None

    def push(self, block):
        self.fs = block.sample_rate_hz
        keep = int(round(self.seconds * self.fs))
        x = block.data if self.x is None or block.gap_before_s > 0 else np.concatenate([self.x, block.data], axis=1)
        self.x = x[:, -keep:]

    def full(self):
        return self.x is not None and self.x.shape[1] >= int(round(self.seconds * self.fs))


def line(r, restful, mapped):
    t = f"{r.end_ms / 1e3:6.1f} s  "
    if not r.ok:
        return t + f"({r.status}) {r.detail}"
    p_relaxed = r.probs[r.labels.index("relaxed")] if "relaxed" in r.labels else float("nan")
    bf = f"{restful:.2f}" if restful is not None else "-"
    return (t + f"ours: {r.label:<13} P(relaxed) {p_relaxed:.2f} conf {r.confidence:.2f}   "
                f"BrainFlow restfulness {bf}" + ("   (mapped channels)" if mapped else ""))


def monitor(src, seconds=None, out=sys.stdout):
    """Run one source; returns the results. Ctrl-C (or ``seconds``) stops it; the board is always released."""
    task = runtime.EEGTask()  # picks the mental-state model for Muse channels (or maps the first four)
    raw = RawWindow(4.0)
    results = []
    t0 = time.monotonic()
    with src, task:
        print(f"board: {src.name}", file=out)
        try:
            for block in src:
                raw.push(block)
                for r in task.push(block):
                    restful = None
                    if r.ok and raw.full():
                        # BrainFlow's metric on the same 4 channels the model reads
                        w = np.ascontiguousarray(raw.x[task.idx])
                        restful = float(brainflow_scores([w], fs=int(raw.fs))["restfulness"][0])
                    print(line(r, restful, task.mapped), file=out, flush=True)
                    results.append((r, restful))
                if seconds is not None and time.monotonic() - t0 >= seconds:
                    break
        except KeyboardInterrupt:
            pass
    return results


def junk_check(out=sys.stdout):
    """Flat channels (electrodes off the head): a status, never a mental state."""
    task = runtime.EEGTask()
    names = ("TP9", "AF7", "AF8", "TP10")
    res = [r for k in range(5) for r in task.push(EEGBlock(np.zeros((4, 256)), 256.0, names, float(k), k))]
    task.close()
    for r in res[:1]:
        print("flat channels -> " + line(r, None, False).strip(), file=out)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--board", default="muse_2",
                    help="BrainFlow board: muse_2 (default), muse_2:mac_address=..., synthetic, playback:FILE, ...")
    ap.add_argument("--seconds", type=float, default=None, help="stop after this many seconds (default: Ctrl-C)")
    ap.add_argument("--smoke", action="store_true",
                    help="replay a Muse 2 recording (synthetic board if it is missing) for a few seconds (CI)")
    a = ap.parse_args()
    try:
        if a.smoke:
            f = data_dir() / SMOKE_FILE
            spec = f"playback:{f}" if f.is_file() else "synthetic"
            print(f"smoke: {spec}")
            res = monitor(sensors.open_eeg(spec), seconds=7.0)
            bad = junk_check()
            ok = [r for r, bf in res if r.ok and bf is not None]
            if not ok or any(r.ok for r in bad):
                sys.exit("smoke: FAILED (no scored window, or a score for flat channels)")
            print(f"smoke: ok ({len(ok)} windows scored by both)")
            return
        monitor(sensors.open_eeg(a.board), seconds=a.seconds)
    except AffectEdgeError as exc:  # no headset in range, a bad spec, BrainFlow missing: say so, no traceback
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
