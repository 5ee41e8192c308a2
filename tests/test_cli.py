"""The affectedge CLI: main(argv) exit codes, outputs and error messages."""

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from affectedge import __version__
from affectedge._cli import main
from affectedge.io import read_eeg_csv, read_wav, write_features
from affectedge.native_kernels import mfcc


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"affectedge {__version__}"
    r = subprocess.run([sys.executable, "-m", "affectedge", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and __version__ in r.stdout


def test_features_mfcc_csv_and_npy(shared_data, tmp_path, capsys):
    wav = shared_data / "speech" / "emodb" / "wav" / "03a01Fa.wav"
    assert main(["features", "mfcc", str(wav), "--out", str(tmp_path / "m.csv"), "--deltas"]) == 0
    table = np.loadtxt(tmp_path / "m.csv", delimiter=",", skiprows=1)
    header = (tmp_path / "m.csv").read_text().splitlines()[0].split(",")
    assert header[:2] == ["t_s", "mfcc0"] and len(header) == 1 + 39
    y, sr = read_wav(wav)
    ref = mfcc(y, sr=sr, n_fft=512, hop_length=160, n_mels=40, n_mfcc=13)
    np.testing.assert_allclose(table[:, 1:14], ref.T, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(table[1, 0], 0.01)
    assert main(["features", "mfcc", str(wav), "--out", str(tmp_path / "m.npy")]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "m.npy"), ref.T)
    assert "190 frames x 39 coefficients" in capsys.readouterr().out


def test_features_silence(shared_data, tmp_path):
    wav = shared_data / "speech" / "emodb" / "wav" / "03a01Fa.wav"
    assert main(["features", "silence", str(wav), "--out", str(tmp_path / "s.csv"), "--threshold-factor", "0.5"]) == 0
    lines = (tmp_path / "s.csv").read_text().splitlines()
    assert lines[0] == "silence_ratio,silent_segments,mean_silence_s,longest_silence_s"
    assert 0 < float(lines[1].split(",")[0]) < 1


def test_features_eeg_muse_and_deap(shared_data, tmp_path):
    muse = shared_data / "eeg" / "muse_mentalstate" / "subjecta-relaxed-1.csv"
    rec = read_eeg_csv(muse)
    assert rec.channel_names == ("TP9", "AF7", "AF8", "TP10") and rec.sample_rate_hz == 256.0
    out = tmp_path / "muse.npy"
    assert main(["features", "eeg", str(muse), "--out", str(out)]) == 0
    feats = np.load(out)
    assert feats.shape[1:] == (4, 10) and feats.shape[0] == 1 + (rec.data.shape[1] - 1024) // 256
    deap = shared_data / "eeg" / "deap_raw_trial" / "deap_trial_128hz.csv"
    csv = tmp_path / "deap.csv"
    assert main(["features", "eeg", str(deap), "--sample-rate", "128", "--out", str(csv), "--channels", "Fp1,O2"]) == 0
    header = csv.read_text().splitlines()[0].split(",")
    assert header[0] == "t_end_s" and header[1] == "Fp1_delta_power" and len(header) == 1 + 2 * 10


def test_bad_inputs_give_clear_errors_and_keep_existing_output(shared_data, tmp_path, capsys):
    out = tmp_path / "keep.csv"
    out.write_text("precious\n")
    # not a WAV
    notwav = tmp_path / "notes.txt"
    notwav.write_text("hello")
    assert main(["features", "mfcc", str(notwav), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "is not an audio file" in err and "sox" in err and str(notwav) in err
    # missing file
    assert main(["features", "silence", str(tmp_path / "missing.wav"), "--out", str(out)]) == 1
    assert "cannot read audio file" in capsys.readouterr().err
    # EEG without a rate
    deap = shared_data / "eeg" / "deap_raw_trial" / "deap_trial_128hz.csv"
    assert main(["features", "eeg", str(deap), "--out", str(out)]) == 1
    assert "--sample-rate" in capsys.readouterr().err
    # unknown channel
    assert main(["features", "eeg", str(deap), "--sample-rate", "128", "--channels", "Fp1,XX", "--out", str(out)]) == 1
    assert "['XX'] are not in" in capsys.readouterr().err
    # wrong suffix
    wav = shared_data / "speech" / "emodb" / "wav" / "03a01Fa.wav"
    assert main(["features", "mfcc", str(wav), "--out", str(tmp_path / "m.txt")]) == 1
    assert "must end in .npy or .csv" in capsys.readouterr().err
    # a truncated WAV: header promises more data than the file holds
    data = wav.read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[:44])
    assert main(["features", "mfcc", str(tmp_path / "cut.wav"), "--out", str(out)]) == 1
    assert "contains no audio samples" in capsys.readouterr().err
    assert out.read_text() == "precious\n"  # nothing already written was lost
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left


def test_write_features_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "f.npy"
    write_features(target, np.ones((2, 3)))

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(np, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        write_features(target, np.zeros((2, 3)))
    monkeypatch.undo()
    np.testing.assert_array_equal(np.load(target), np.ones((2, 3)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.npy"]


def test_kernels_info_and_warmup(capsys):
    assert main(["kernels", "info"]) == 0
    assert "cache:" in capsys.readouterr().out
    assert main(["kernels", "warmup"]) == 0
    captured = capsys.readouterr()
    done = re.findall(r"(\d+)/(\d+) ", captured.err)  # the progress bar ends at N/N: every task ran
    assert done and done[-1][0] == done[-1][1], captured.err
    assert f"compiled {done[-1][1]} kernel groups" in captured.out


def test_demo_runs(capsys):
    assert main(["demo", "--features"]) == 0  # the feature-extraction demo (plain 'demo' is the live runtime's)
    out = capsys.readouterr().out
    assert "MFCC:" in out and "silence" in out and "EEG:" in out


def test_read_wav_formats(tmp_path):
    import wave

    sig = (np.sin(np.arange(1600) / 5) * 0.5).astype(np.float32)
    pcm16 = (sig * 32767).astype("<i2")
    with wave.open(str(tmp_path / "s16.wav"), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(np.column_stack([pcm16, pcm16]).tobytes())
    y, sr = read_wav(tmp_path / "s16.wav")
    assert sr == 8000 and y.shape == (1600,)
    np.testing.assert_allclose(y, sig, atol=1e-4)
    stereo, _ = read_wav(tmp_path / "s16.wav", mono=False)
    assert stereo.shape == (1600, 2)
    pcm24 = (sig.astype(np.float64) * (2**23 - 1)).astype(np.int32)
    with wave.open(str(tmp_path / "s24.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(3)
        w.setframerate(8000)
        w.writeframes(b"".join(int(v).to_bytes(3, "little", signed=True) for v in pcm24))
    y24, _ = read_wav(tmp_path / "s24.wav")
    np.testing.assert_allclose(y24, sig, atol=1e-6)


def test_features_eeg_brainflow_file(shared_data, tmp_path):
    pytest.importorskip("brainflow")
    src = shared_data / "eeg" / "brainflow_playback" / "cyton_daisy_10s.csv"
    out = tmp_path / "cd.npy"
    assert main(["features", "eeg", str(src), "--board", "cyton_daisy", "--window-s", "2", "--out", str(out)]) == 0
    feats = np.load(out)
    assert feats.shape == (9, 16, 10)  # 10 s at 125 Hz, 2 s windows, hop 1 s; 16 EEG channels
    assert main(["features", "eeg", str(src), "--board", "muse_2", "--out", str(out)]) == 1  # wrong board


# --------------------------------------------------------------- any audio format, junk EEG, short errors

def test_features_read_any_audio_format_and_rate(shared_data, tmp_path, capsys):
    import soundfile as sf
    import soxr

    y, sr = read_wav(shared_data / "speech" / "emodb" / "wav" / "03a01Fa.wav")
    y44 = soxr.resample(y, sr, 44100, "HQ")
    sf.write(tmp_path / "clip.flac", np.column_stack([y44, y44]), 44100)  # stereo FLAC at 44.1 kHz
    sf.write(tmp_path / "clip.ogg", y44, 44100)
    for name in ("clip.flac", "clip.ogg"):
        assert main(["features", "mfcc", str(tmp_path / name), "--out", str(tmp_path / "m.npy")]) == 0
        assert "at 44100 Hz" in capsys.readouterr().out
        assert np.all(np.isfinite(np.load(tmp_path / "m.npy")))
    assert main(["features", "silence", str(tmp_path / "clip.flac"), "--out", str(tmp_path / "s.csv")]) == 0
    bad = tmp_path / "broken.flac"
    bad.write_bytes(b"fLaC" + bytes(64))
    for kind in ("mfcc", "silence"):
        assert main(["features", kind, str(bad), "--out", str(tmp_path / "x.npy")]) == 1
        err = capsys.readouterr().err
        assert str(bad) in err and len(err) < 500
    short = tmp_path / "short.wav"
    sf.write(short, np.zeros(100, np.float32), 16000)  # shorter than one FFT frame
    assert main(["features", "mfcc", str(short), "--out", str(tmp_path / "x.npy")]) == 1
    assert str(short) in capsys.readouterr().err
    assert not (tmp_path / "x.npy").exists()


def _muse_csv(shared_data, path, zero=(), seconds=10):
    rec = read_eeg_csv(shared_data / "eeg" / "muse_mentalstate" / "subjecta-relaxed-1.csv",
                       channels=["TP9", "AF7", "AF8", "TP10"])
    x = rec.data[:, : int(seconds * 256)].copy()
    for i in zero:
        x[i] = 0.0
    np.savetxt(path, x.T, delimiter=",", header="TP9,AF7,AF8,TP10", comments="", fmt="%.3f")
    return path


def test_features_eeg_refuses_flat_channels(shared_data, tmp_path, capsys):
    out = tmp_path / "feats.npy"
    np.save(out, np.arange(3.0))  # an earlier result that must survive
    flat = _muse_csv(shared_data, tmp_path / "flat.csv", zero=(1,))
    assert main(["features", "eeg", str(flat), "--sample-rate", "256", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "AF7" in err and "flat" in err and "--channels TP9,AF8,TP10" in err and len(err) < 600
    np.testing.assert_array_equal(np.load(out), np.arange(3.0))
    assert main(["features", "eeg", str(flat), "--sample-rate", "256", "--out", str(out),
                 "--channels", "TP9,AF8,TP10"]) == 0
    feats = np.load(out)
    assert feats.shape[1:] == (3, 10) and np.all(np.isfinite(feats))
    dead = _muse_csv(shared_data, tmp_path / "dead.csv", zero=(0, 1, 2, 3))
    assert main(["features", "eeg", str(dead), "--sample-rate", "256", "--out", str(tmp_path / "d.csv")]) == 1
    assert "no channel is usable" in capsys.readouterr().err
    assert not (tmp_path / "d.csv").exists()
    ok = _muse_csv(shared_data, tmp_path / "ok.csv")
    assert main(["features", "eeg", str(ok), "--sample-rate", "256", "--out", str(tmp_path / "ok.npy")]) == 0
    assert np.all(np.isfinite(np.load(tmp_path / "ok.npy")))


def test_nan_npy_errors_are_short(shared_data, tmp_path, capsys):
    deap = read_eeg_csv(shared_data / "eeg" / "deap_raw_trial" / "deap_trial_128hz.csv", sample_rate_hz=128)
    x = deap.data.astype(np.float32)  # 32 x 8064: ~1 MB of binary that used to be echoed
    x[3, 5] = np.nan
    npy = tmp_path / "trial.npy"
    np.save(npy, x)
    out = tmp_path / "o.npy"
    assert main(["features", "eeg", str(npy), "--sample-rate", "128", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert len(err) < 500 and str(npy) in err and "[3, 5]" in err and "NaN" in err and "--channels" in err
    assert main(["features", "eeg", str(npy), "--out", str(out)]) == 1  # no rate in a NumPy file
    assert "--sample-rate" in capsys.readouterr().err
    disguised = tmp_path / "trial.csv"
    shutil.copy(npy, disguised)
    np.save(tmp_path / "allnan.npy", np.full((32, 8064), np.nan, np.float32))
    shutil.copy(tmp_path / "allnan.npy", tmp_path / "allnan.csv")
    for f in (disguised, tmp_path / "allnan.csv", tmp_path / "allnan.npy"):
        assert main(["features", "eeg", str(f), "--sample-rate", "128", "--out", str(out)]) == 1
        err = capsys.readouterr().err
        assert len(err) < 500 and str(f) in err
    assert not out.exists()
    # the same array as exporter validation / calibration data (.npy or .npz)
    from affectedge.errors import ParameterError
    from affectedge.exporters._data import load_data

    spec = SimpleNamespace(name="x", dtype="float32", shape=(None, 32, 8064), example_shape=(32, 8064))
    source = SimpleNamespace(input_specs=[spec], card=None, task=None, ref="test")
    np.savez(tmp_path / "val.npz", x=x[None])
    for f in (npy.with_name("batch.npy"), tmp_path / "val.npz"):
        if f.suffix == ".npy":
            np.save(f, x[None])
        with pytest.raises(ParameterError) as exc:
            load_data(f, source, purpose="validation")
        msg = str(exc.value)
        assert len(msg) < 500 and str(f) in msg and "[0, 3, 5]" in msg, msg


# ----------------------------------------------------------------- corpus runs, JSON on stdout

@pytest.fixture(scope="module")
def tiny_corpus(shared_data, tmp_path_factory):
    """20 EmoDB clips of 3 speakers (copies) plus one corrupt WAV, with EmoDB's labels.csv layout."""
    src = shared_data / "speech" / "emodb"
    if not (src / "labels.csv").is_file():
        pytest.skip("EmoDB is not present in ../shared/data")
    root = tmp_path_factory.mktemp("tiny-emodb")
    (root / "wav").mkdir()
    rows = list(csv.DictReader(open(src / "labels.csv", newline="")))
    keep = []
    for spk, n in (("03", 7), ("08", 7), ("10", 6)):
        seen = set()
        for r in rows:
            if r["speaker"] == spk and r["emotion"] not in seen and len(seen) < n:
                seen.add(r["emotion"])
                keep.append(r)
    for r in keep:
        shutil.copy(src / "wav" / r["file"], root / "wav" / r["file"])
    corrupt = root / "wav" / "03b99Wz.wav"
    corrupt.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(200))  # a header, no audio
    with open(root / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "speaker", "text", "emotion"])
        for r in keep:
            w.writerow([r["file"], r["speaker"], r["text"], r["emotion"]])
        w.writerow([corrupt.name, "03", "b99", "anger"])
    return root, corrupt


def _cli(*args):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "affectedge", *args], capture_output=True, text=True, env=env,
                          cwd=Path(__file__).resolve().parents[1])


def test_evaluate_json_is_only_json_and_skips_a_corrupt_file(tiny_corpus):
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    root, corrupt = tiny_corpus
    r = _cli("evaluate", "--task", "speech", "--protocol", "loso", "--quick", "--json", "--data", str(root))
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads(r.stdout)  # nothing but the JSON document on stdout
    n_good = len(list((root / "wav").glob("*.wav"))) - 1
    assert n_good >= 18 and report["n"] == n_good and report["n_speakers"] == 3
    assert [s["path"] for s in report["skipped"]] == [str(corrupt)]
    assert "warning: skipped" in r.stderr and str(corrupt) in r.stderr
    assert "fold speaker" in r.stderr  # progress went to stderr


def test_train_skips_a_corrupt_file(tiny_corpus, tmp_path, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    root, corrupt = tiny_corpus
    assert main(["train", "speech", "--data", str(root), "--out", str(tmp_path / "m"), "--quick"]) == 0
    captured = capsys.readouterr()
    assert str(corrupt) in captured.err and "trained speech model" in captured.out
    card = json.loads((tmp_path / "m" / "card.json").read_text())
    assert [s["path"] for s in card["extra"]["skipped"]] == [str(corrupt)]
    n_good = len(list((root / "wav").glob("*.wav"))) - 1
    assert f"{n_good} utterances" in card["training_data"][0]["description"]


def test_models_json_is_only_json():
    r = _cli("models", "list", "--json")
    assert r.returncode == 0, r.stderr
    cards = json.loads(r.stdout)
    assert isinstance(cards, list)
    if any(c["id"] == "speech-emotion" for c in cards):
        r = _cli("models", "show", "speech-emotion", "--json")
        assert r.returncode == 0 and json.loads(r.stdout)["id"] == "speech-emotion"
