"""Every example in examples/ runs its ``--smoke`` mode as a user would (a subprocess) and says something meaningful.

The smoke modes read files from the shared data folder (``../shared/data`` or
``$AFFECTEDGE_DATA_DIR``) and BrainFlow's playback / synthetic boards, never
a microphone, camera or headset; each one takes seconds. A test asserts the
exit code 0, a line with a label the model can give, the status a junk input
gets, and the example's own "smoke: ok".
"""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from affectedge import models

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
DATA = Path(os.environ.get("AFFECTEDGE_DATA_DIR") or REPO.parent / "shared" / "data")
TIMEOUT_S = 120

needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"real data folder {DATA} is not present")


def _needs(*modules):
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    return pytest.mark.skipif(bool(missing), reason=f"needs {', '.join(missing)}")


def run_example(name, tmp_path):
    """Run examples/<name> --smoke from a scratch working directory; returns stdout (asserts exit 0)."""
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)  # the venv's bin: `affectedge` for the shell / subprocess examples
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    env["AFFECTEDGE_DATA_DIR"] = str(DATA)
    env.setdefault("PYTHONUNBUFFERED", "1")
    path = EXAMPLES / name
    cmd = ["bash", str(path), "--smoke"] if name.endswith(".sh") else [sys.executable, str(path), "--smoke"]
    p = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert p.returncode == 0, f"{name} --smoke exited {p.returncode}\n--- stdout\n{p.stdout[-4000:]}\n" \
                              f"--- stderr\n{p.stderr[-4000:]}"
    # nothing written into the working directory (temp dirs only), and never into the repository
    assert not any(tmp_path.iterdir()), f"{name} left files in its working directory: {list(tmp_path.iterdir())}"
    return p.stdout


def _label_line(out, labels, marker=""):
    pat = re.compile(r"\b(" + "|".join(map(re.escape, labels)) + r")\b")
    return [ln for ln in out.splitlines() if marker in ln and pat.search(ln)]


SMOKE_EXAMPLES = ("voice_mood_meter.py", "eeg_relaxation_monitor.py", "webcam_expressions.py", "multimodal_fusion.py",
                  "quantize_for_raspberry_pi.sh", "train_on_your_own_data.py", "live_affect.py",
                  "speech_stream_callback.py", "extract_features.py", "score_an_archive.py")


def test_every_smoke_example_has_a_test_a_how_to_and_a_readme_entry():
    src = Path(__file__).read_text()
    readme = (EXAMPLES / "README.md").read_text()
    for n in SMOKE_EXAMPLES:
        text = (EXAMPLES / n).read_text()
        head = text[:1500]
        assert "--smoke" in text and f"examples/{n}" in head, f"{n}: no --smoke mode or no how-to-run at the top"
        assert f"run_example(\"{n}\"" in src, f"{n} has no smoke test"
        assert n in readme, f"{n} is not in examples/README.md"


@needs_data
def test_voice_mood_meter(tmp_path):
    out = run_example("voice_mood_meter.py", tmp_path)
    labels = models.card("speech-emotion").labels
    meter = [ln for ln in _label_line(out, labels, "[") if "valence" in ln and "arousal" in ln]
    assert meter, out
    assert "(no_speech)" in out, "silence must get a status"
    assert "smoke: ok" in out


@needs_data
@_needs("brainflow")
def test_eeg_relaxation_monitor(tmp_path):
    out = run_example("eeg_relaxation_monitor.py", tmp_path)
    labels = models.card("eeg-mental-state").labels
    lines = [ln for ln in _label_line(out, labels, "ours:") if re.search(r"BrainFlow restfulness \d\.\d\d", ln)]
    assert lines, out
    assert "(flat_channels)" in out, "flat channels must get a status"
    assert "smoke: ok" in out


@needs_data
@_needs("mediapipe", "cv2")
def test_webcam_expressions(tmp_path):
    out = run_example("webcam_expressions.py", tmp_path)
    labels = models.card("face-expression").labels
    assert _label_line(out, labels, ".png"), out
    assert "(no_face)" in out, "a blank frame must get a status"
    assert "smoke: ok" in out


@needs_data
@_needs("brainflow", "mediapipe", "cv2")
def test_multimodal_fusion(tmp_path):
    from affectedge.runtime import TAXONOMY

    out = run_example("multimodal_fusion.py", tmp_path)
    fused = _label_line(out, TAXONOMY, " fused ")
    assert fused and any("from " in ln and "speech" in ln for ln in fused), out
    assert "dashboard:" in out  # started, or said why not
    assert re.search(r"done: results \{.*'fused': \d+", out)
    assert "smoke: ok" in out


@needs_data
@_needs("onnxruntime", "torch")
def test_quantize_for_raspberry_pi(tmp_path):
    out = run_example("quantize_for_raspberry_pi.sh", tmp_path)
    assert re.search(r"eeg-mental-state\.(fp32|int8)\.tflite", out), out
    assert "verdict      within the hard budgets" in out
    assert "all artifacts fit raspberry-pi-4" in out


@needs_data
@_needs("torch", "onnxruntime")
def test_train_on_your_own_data(tmp_path):
    out = run_example("train_on_your_own_data.py", tmp_path)
    # the folder names angry/happy/neutral become taxonomy labels; the trained model answers with them
    assert "labels anger, happiness, neutral" in out, out
    assert _label_line(out, ("anger", "happiness", "neutral"), " s  "), out
    assert "silence -> (no_speech)" in out
    assert "smoke: ok" in out


@needs_data
@_needs("brainflow")
def test_live_affect(tmp_path):
    out = run_example("live_affect.py", tmp_path)
    from affectedge.runtime import TAXONOMY

    assert _label_line(out, TAXONOMY, " from "), out  # fused lines name their modalities
    assert "stopped by duration" in out and "smoke: ok" in out


@needs_data
def test_speech_stream_callback(tmp_path):
    out = run_example("speech_stream_callback.py", tmp_path)
    assert _label_line(out, models.card("speech-emotion").labels, " s  "), out
    assert "(no_speech)" in out, "silence must get a status"
    assert "smoke: ok" in out


def test_extract_features(tmp_path):
    out = run_example("extract_features.py", tmp_path)
    assert "MFCC" in out and "silence: ratio" in out and "max |streamed - batch(center=False)|" in out
    assert "smoke: ok" in out


@needs_data
@_needs("pyarrow", "mediapipe")
def test_score_an_archive(tmp_path):
    out = run_example("score_an_archive.py", tmp_path)
    assert _label_line(out, models.card("speech-emotion").labels, "speech, speaker 03"), out
    assert _label_line(out, models.card("face-expression").labels, "face"), out
    assert "(no_face)" in out and ("(silent)" in out or "(no_speech)" in out), "junk must get a status"
    assert "smoke: ok" in out
