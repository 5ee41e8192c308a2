"""Silence features (Atmaja & Akagi): librosa RMS parity, rules, streaming."""

import numpy as np
import pytest

from affectedge import ParameterError
from affectedge.io import read_wav
from affectedge.native_kernels import SilenceFeatures, StreamingSilence, silence_features

librosa = pytest.importorskip("librosa")


def _paper_reference(y, factor, frame_length=2048, hop_length=512):
    """The rule as in the paper's code: librosa RMS, silent if rms <= factor * mean."""
    rms = librosa.feature.rms(y=y, frame_length=frame_length, hop_length=hop_length)[0]
    mask = rms <= factor * np.mean(rms)
    runs, run = [], 0
    for m in mask:
        if m:
            run += 1
        elif run:
            runs.append(run)
            run = 0
    if run:
        runs.append(run)
    return rms, mask, runs


@pytest.mark.parametrize("factor", [0.2, 0.3, 0.5])
def test_matches_paper_rule_on_emodb(shared_data, factor, kernel_mode):
    paths = sorted((shared_data / "speech" / "emodb" / "wav").glob("*.wav"))[::60]
    assert len(paths) >= 8
    for path in paths:
        y, sr = read_wav(path)
        f = silence_features(y, sr=sr, threshold_factor=factor)
        rms, mask, runs = _paper_reference(y, factor)
        np.testing.assert_allclose(f.rms, rms, rtol=1e-5, atol=1e-8)
        np.testing.assert_array_equal(f.mask, mask)
        assert f.ratio == pytest.approx(mask.mean())
        assert f.n_segments == len(runs)
        hop_s = 512 / sr
        assert f.longest_segment_s == pytest.approx(max(runs, default=0) * hop_s)
        assert f.mean_segment_s == pytest.approx(np.mean(runs) * hop_s if runs else 0.0)


def test_known_pattern(kernel_mode):
    sr = 1000
    tone = 0.5 * np.sin(2 * np.pi * 50 * np.arange(sr) / sr)
    y = np.concatenate([tone, np.zeros(500), tone, np.zeros(1500), tone]).astype(np.float64)
    f = silence_features(y, sr=sr, frame_length=100, hop_length=100, center=False)
    assert f.n_segments == 2
    assert f.longest_segment_s == pytest.approx(1.5)
    assert f.mean_segment_s == pytest.approx(1.0)
    assert f.ratio == pytest.approx(20 / 50)
    assert f.as_array().tolist() == pytest.approx([0.4, 2, 1.0, 1.5])
    assert SilenceFeatures.NAMES[0] == "silence_ratio"
    # the factor matters: a higher factor marks more frames silent
    quiet = y * np.repeat(np.r_[1.0, 0.2, 1.0, 0.2, 1.0], [1000, 500, 1000, 1500, 1000])[: y.size]
    lo = silence_features(quiet, sr=sr, frame_length=100, hop_length=100, center=False, threshold_factor=0.05)
    hi = silence_features(quiet, sr=sr, frame_length=100, hop_length=100, center=False, threshold_factor=0.9)
    assert lo.ratio <= hi.ratio


def test_absolute_dbfs_threshold(kernel_mode):
    sr = 1000
    y = np.concatenate([np.full(1000, 0.1), np.full(1000, 0.001)])  # -20 dBFS then -60 dBFS
    f = silence_features(y, sr=sr, frame_length=100, hop_length=100, center=False, threshold_db=-40.0)
    np.testing.assert_array_equal(f.mask, np.r_[np.zeros(10, bool), np.ones(10, bool)])
    assert f.threshold == pytest.approx(0.01)


def test_streaming_running_mean_and_finalize(shared_data, kernel_mode):
    y, sr = read_wav(shared_data / "speech" / "emodb" / "wav" / "03a01Fa.wav")
    s = StreamingSilence(sr=sr)
    masks = [s.push(y[i : i + 700]) for i in range(0, y.size, 700)]
    running = np.concatenate(masks)
    batch = silence_features(y, sr=sr, center=False)
    assert running.size == batch.mask.size
    # The running rule: frame t judged against the mean of frames 0..t.
    expected = batch.rms <= 0.3 * (np.cumsum(batch.rms.astype(np.float64)) / np.arange(1, batch.rms.size + 1))
    np.testing.assert_array_equal(running, expected)
    final = s.finalize()
    np.testing.assert_array_equal(final.mask, batch.mask)
    assert final.ratio == batch.ratio and final.n_segments == batch.n_segments
    assert s.summary().mask.size == batch.mask.size


def test_bad_input(kernel_mode):
    y = np.zeros(4000, np.float32)
    with pytest.raises(ParameterError, match="threshold_factor=0.0 must be > 0"):
        silence_features(y, sr=16000, threshold_factor=0)
    with pytest.raises(ParameterError, match="threshold_db=6.0 must be <= 0"):
        silence_features(y, sr=16000, threshold_db=6)
    with pytest.raises(ParameterError, match="sr=0.0 must be strictly positive"):
        silence_features(y, sr=0)
    bad = y.copy()
    bad[3] = np.nan
    with pytest.raises(ParameterError, match="index 3"):
        silence_features(bad, sr=16000)
    with pytest.raises(ParameterError, match="shorter than one frame"):
        silence_features(y[:100], sr=16000, center=False)
    with pytest.raises(ParameterError, match="mono audio"):
        silence_features(np.zeros((2, 4000)), sr=16000)
    s = StreamingSilence(sr=16000)
    s.push(np.ones(3000, np.float32))
    before = s.summary()
    with pytest.raises(ParameterError, match="nothing from this chunk was consumed"):
        s.push(bad)
    assert s.summary().mask.size == before.mask.size
    with pytest.raises(ParameterError, match="no complete frame yet"):
        StreamingSilence(sr=16000).finalize()
