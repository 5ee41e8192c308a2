"""Train a speech-emotion model on your own recordings, export it, and run it.

    python examples/train_on_your_own_data.py --data my_corpus/ --out my_model/
    python examples/train_on_your_own_data.py --data my_corpus/ --out my_model/ --run test.wav
    python examples/train_on_your_own_data.py --smoke     # a tiny corpus of EmoDB links in a temp dir (CI)

The corpus is one folder per label (the "folder" layout of
``affectedge.training.corpora``)::

    my_corpus/
      anger/      alice_001.wav  bob_002.flac ...
      happy/      alice_003.wav  ...            (happy -> happiness, sad -> sadness, ...)
      neutral/    ...

Labels must be in the shared taxonomy (anger, boredom, calm, disgust, fear,
happiness, neutral, sadness, surprise) or a known synonym. The speaker is the
file-name prefix before ``_`` or ``-`` (``alice_001.wav`` -> alice): the
features are normalised per speaker, so name your files that way. Any rate,
any format soundfile reads. At least 2 labels.

Steps: ``affectedge train speech --data ... --layout folder --out ...``
(trains, exports ``model.onnx`` and writes ``card.json``/``card.md``), then
the model folder is loaded with ``runtime.ModelOptions(model=folder)`` and
run on a file. Add ``--quick`` for a short training run.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from affectedge import runtime, sensors
from affectedge.errors import AffectEdgeError

# EmoDB emotion codes (6th character of the file name) -> the folder names a user would choose
SMOKE_LABELS = {"W": "angry", "F": "happy", "N": "neutral"}
SMOKE_SPEAKERS = ("03", "08", "09", "10")  # 4 speakers (2 m, 2 f), 2 clips each per label: 24 clips


def data_dir():
    """The shared data folder: $AFFECTEDGE_DATA_DIR, else ../shared/data beside the repository."""
    env = os.environ.get("AFFECTEDGE_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"


def build_smoke_corpus(root):
    """A folder-per-label corpus of links to EmoDB files, named <speaker>_<n>.wav (never copied into the repo)."""
    wav = data_dir() / "speech" / "emodb" / "wav"
    if not wav.is_dir():
        sys.exit(f"smoke: {wav} not found; set AFFECTEDGE_DATA_DIR to the shared data folder")
    n = 0
    for code, label in SMOKE_LABELS.items():
        (root / label).mkdir(parents=True)
        for spk in SMOKE_SPEAKERS:
            for i, f in enumerate(sorted(wav.glob(f"{spk}???{code}*.wav"))[:2]):
                (root / label / f"spk{spk}_{i}.wav").symlink_to(f)
                n += 1
    print(f"smoke: corpus of {n} clips in {root} ({', '.join(SMOKE_LABELS.values())}; speakers "
          f"{', '.join(SMOKE_SPEAKERS)})")
    return wav / "11a01Wc.wav"  # an angry clip of speaker 11, who is not in the training corpus


def train(data, out, quick):
    exe = shutil.which("affectedge") or str(Path(sys.executable).with_name("affectedge"))
    cmd = [exe, "train", "speech", "--data", str(data), "--layout", "folder", "--out", str(out)]
    if quick:
        cmd.append("--quick")
    print("$ " + " ".join(cmd), flush=True)
    rc = subprocess.call(cmd)
    if rc != 0:
        sys.exit(f"training failed (exit {rc}); see the message above")


def run(model_dir, audio):
    """Load the exported model folder and classify a file window by window (4 s windows, 1 s hop)."""
    opts = runtime.SpeechOptions(model=runtime.ModelOptions(model=str(model_dir)))
    results = []
    with runtime.SpeechTask(opts) as task, sensors.AudioFileSource(audio, target_rate_hz=16000) as src:
        print(f"model {model_dir} ({task.model.card.id}, labels {', '.join(task.model.labels)}) on {Path(audio).name}:")
        for block in src:
            results += task.push(block)
        results += task.flush()
        for r in results:
            if r.ok:
                print(f"  {r.start_ms / 1e3:4.1f}-{r.end_ms / 1e3:4.1f} s  {r.label:<10} {max(r.probs):.2f}  "
                      f"valence {r.valence:+.2f} arousal {r.arousal:+.2f}")
            else:
                print(f"  {r.start_ms / 1e3:4.1f}-{r.end_ms / 1e3:4.1f} s  ({r.status}) {r.detail}")
        # junk check: 2 s of silence gets a status from the new model too, never an emotion
        junk = task.classify_clip(np.zeros(32000, np.float32), 16000)
        print(f"  silence -> ({junk.status})" if not junk.ok else f"  silence -> {junk.label} (unexpected)")
    return results, junk


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", help="folder-per-label corpus (<root>/<label>/<speaker>_<n>.wav)")
    ap.add_argument("--out", help="model folder to write (model.onnx, card.json, card.md)")
    ap.add_argument("--run", default=None, help="an audio file to run the trained model on")
    ap.add_argument("--quick", action="store_true", help="a short training run")
    ap.add_argument("--smoke", action="store_true", help="tiny EmoDB corpus in a temp dir, --quick (CI)")
    a = ap.parse_args()
    try:
        if a.smoke:
            with tempfile.TemporaryDirectory() as tmp:
                test_file = build_smoke_corpus(Path(tmp) / "corpus")
                train(Path(tmp) / "corpus", Path(tmp) / "model", quick=True)
                res, junk = run(Path(tmp) / "model", test_file)
            if not any(r.ok for r in res) or junk.ok:
                sys.exit("smoke: FAILED (no result from the trained model, or an emotion for silence)")
            print("smoke: ok (trained, exported, ran)")
            return
        if not a.data or not a.out:
            ap.error("give --data and --out (or --smoke)")
        train(a.data, a.out, a.quick)
        if a.run:
            run(a.out, a.run)
        else:
            print(f"trained model in {a.out}; run it with --run FILE, or "
                  f"runtime.SpeechOptions(model=runtime.ModelOptions(model={str(a.out)!r}))")
    except AffectEdgeError as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
