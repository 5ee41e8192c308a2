"""Waveform augmentation of speech training: each step does what it says, on real speech, without NaN."""

import numpy as np
import pytest

pytest.importorskip("scipy")

from affectedge.io import read_wav  # noqa: E402
from affectedge.training import augment  # noqa: E402

SNR_TOL_DB = 0.5  # measured SNR of the added noise vs the drawn one
TELEPHONE_MAX_HF_RATIO = 0.02  # energy above 4 kHz after telephone band-limiting, relative to before
SPEED_LENGTH_TOL = 0.01


@pytest.fixture(scope="module")
def speech(shared_data):
    y, sr = read_wav(shared_data / "speech" / "emodb" / "wav" / "03a01Wa.wav")
    return y.astype(np.float32), sr


def _band_energy(y, sr, lo, hi):
    spec = np.abs(np.fft.rfft(y)) ** 2
    f = np.fft.rfftfreq(y.size, 1 / sr)
    return float(spec[(f >= lo) & (f < hi)].sum())


def test_noise_reaches_the_drawn_snr(speech, rng):
    y, sr = speech
    for kind_seed in range(6):
        r = np.random.default_rng(kind_seed)
        out = augment.noise(y, sr, r, snr_db=(10.0, 10.0), babble=[y[::-1].copy(), np.roll(y, 5000)])
        n = out.astype(np.float64) - y
        snr = 10 * np.log10(np.sum(y.astype(np.float64) ** 2) / np.sum(n ** 2))
        if np.max(np.abs(y + n)) <= 0.99:  # not rescaled against clipping
            assert snr == pytest.approx(10.0, abs=SNR_TOL_DB)
        assert out.dtype == np.float32 and out.shape == y.shape and np.isfinite(out).all()


def test_telephone_removes_the_high_band(speech, rng):
    y, sr = speech
    out = augment.telephone(y, sr, rng)
    assert out.shape == y.shape and out.dtype == np.float32 and np.isfinite(out).all()
    assert _band_energy(out, sr, 4000, 8000) < TELEPHONE_MAX_HF_RATIO * _band_energy(y, sr, 4000, 8000)
    assert _band_energy(out, sr, 500, 3000) > 0.3 * _band_energy(y, sr, 500, 3000)


def test_speed_changes_length_by_the_factor(speech):
    y, sr = speech
    for seed in range(3):
        r = np.random.default_rng(seed)
        factor = np.random.default_rng(seed).uniform(0.9, 1.1)
        out = augment.speed(y, sr, r)
        assert out.size == pytest.approx(y.size / factor, rel=SPEED_LENGTH_TOL)


def test_reverb_gain_and_chains(speech, rng):
    y, sr = speech
    r = augment.reverb(y, sr, rng)
    assert r.shape == y.shape and np.isfinite(r).all()
    assert np.sqrt(np.mean(r ** 2)) == pytest.approx(np.sqrt(np.mean(y ** 2)), rel=0.05)  # level restored
    assert np.corrcoef(r, y)[0, 1] < 0.99  # a tail was added
    g = augment.gain(y, sr, rng, db=(-6.0, -6.0))
    assert np.allclose(g, y * 10 ** (-6 / 20), atol=1e-6)
    for c in augment.TRAIN_CONDITIONS:
        out = augment.apply_condition(y, sr, c, np.random.default_rng(1), babble=[y])
        assert out.dtype == np.float32 and np.isfinite(out).all() and np.max(np.abs(out)) <= 1.0
        assert 0.85 * y.size < out.size < 1.15 * y.size
