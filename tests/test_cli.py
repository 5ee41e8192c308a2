"""The affectedge CLI: main(argv) exit codes, outputs and error messages."""

import subprocess
import sys

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
    assert "is not a WAV file" in err and "sox" in err
    # missing file
    assert main(["features", "silence", str(tmp_path / "missing.wav"), "--out", str(out)]) == 1
    assert "cannot read WAV file" in capsys.readouterr().err
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
    assert "8/8" in captured.err and "compiled 8 kernel groups" in captured.out


def test_demo_runs(capsys):
    assert main(["demo"]) == 0
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
