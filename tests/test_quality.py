"""Signal quality checks (affectedge.features.quality) on real speech and EEG, and junk refused by predict_raw."""

import numpy as np
import pytest

from affectedge.errors import ParameterError
from affectedge.features.quality import NoSignalError, Quality, audio_quality, eeg_quality
from affectedge.io import read_audio, read_eeg_csv

EMODB_CLIPS = ("03a01Wa.wav", "08a01Fd.wav", "10a04Lb.wav", "13a01Ta.wav", "16a01Wa.wav")
MUSE = ("TP9", "AF7", "AF8", "TP10")


@pytest.fixture(scope="module")
def speech(shared_data):
    wav = shared_data / "speech" / "emodb" / "wav"
    clips = [read_audio(wav / name) for name in EMODB_CLIPS if (wav / name).is_file()]
    if not clips:
        pytest.skip("EmoDB is not present in ../shared/data")
    return clips


@pytest.fixture(scope="module")
def muse(shared_data):
    return read_eeg_csv(shared_data / "eeg" / "muse_mentalstate" / "subjecta-concentrating-1.csv", channels=MUSE)


@pytest.fixture(scope="module")
def deap(shared_data):
    return read_eeg_csv(shared_data / "eeg" / "deap_raw_trial" / "deap_trial_128hz.csv", sample_rate_hz=128)


# -------------------------------------------------------------------- audio

def test_real_speech_is_ok(speech):
    for y, sr in speech:
        assert sr == 16000
        q = audio_quality(y, sr)
        assert isinstance(q, Quality) and q.ok, q
        assert q.metrics["active_s"] >= 1.0 and q.metrics["clipped_fraction"] < 0.001


def test_junk_audio_gets_its_status(speech):
    y, sr = speech[0]
    rng = np.random.default_rng(0)
    cases = {
        "no_speech": [np.zeros(2 * sr, np.float32),  # digital silence
                      (rng.standard_normal(2 * sr) * 10 ** (-70 / 20)).astype(np.float32),  # -70 dBFS noise
                      (y * 10 ** (-50 / 20)).astype(np.float32)],  # speech 50 dB down
        "dc_only": [np.full(2 * sr, 0.25, np.float32)],
        "out_of_scale": [(y * 32768).astype(np.float32), (y * 32768).astype(np.int16)],
        "clipped": [np.clip(y * 20, -1, 1)],
        "nonfinite": [np.where(np.arange(y.size) == 1234, np.nan, y).astype(np.float32)],
    }
    for status, signals in cases.items():
        for s in signals:
            q = audio_quality(s, sr)
            assert q.status == status and not q.ok, (status, q)
    assert "32768" in audio_quality((y * 32768).astype(np.float32), sr).detail
    assert "1234" in audio_quality(cases["nonfinite"][0], sr).detail
    # quieter (-20 dB), DC-shifted or 48 kHz speech is still speech
    import soxr

    assert audio_quality(y * 0.1, sr).ok
    assert audio_quality(y * 0.5 + 0.2, sr).ok
    assert audio_quality(soxr.resample(y, sr, 48000, "HQ"), 48000).ok
    with pytest.raises(ParameterError):
        audio_quality(np.zeros((2, 100)), sr)
    with pytest.raises(ParameterError):
        audio_quality(y, 0)


def test_no_signal_error_and_no_face_error():
    q = audio_quality(np.zeros(16000, np.float32), 16000)
    with pytest.raises(NoSignalError) as exc:
        q.raise_for_status("mic")
    assert exc.value.status == "no_speech" and exc.value.quality is q and "mic" in str(exc.value)
    assert isinstance(exc.value, ParameterError)
    from affectedge.features.face import NoFaceError

    e = NoFaceError("no face found in the 48x48 image")
    assert isinstance(e, NoSignalError) and e.status == "no_face" and "no face" in e.detail


# ---------------------------------------------------------------------- EEG

def test_real_eeg_is_ok(shared_data, muse, deap):
    assert eeg_quality(deap.data, 128, channel_names=deap.channel_names).ok
    for i in range(0, deap.data.shape[1] - 512, 1024):
        assert eeg_quality(deap.data[:, i:i + 512], 128).ok
    for path in sorted((shared_data / "eeg" / "muse_mentalstate").glob("*.csv")):
        rec = read_eeg_csv(path, channels=MUSE, sample_rate_hz=256)
        q = eeg_quality(rec.data, 256, channel_names=MUSE)
        assert q.ok, (path.name, q.detail)
        for i in range(0, rec.data.shape[1] - 1024, 2048):  # 4 s windows, as the mental-state model sees them
            assert eeg_quality(rec.data[:, i:i + 1024], 256).ok, (path.name, i)


def test_brainflow_synthetic_board_is_ok():
    pytest.importorskip("brainflow")
    import time

    from affectedge._optional import require_brainflow

    bs = require_brainflow()[0]
    bid = bs.BoardIds.SYNTHETIC_BOARD.value
    bs.BoardShim.disable_board_logger()
    board = bs.BoardShim(bid, bs.BrainFlowInputParams())
    board.prepare_session()
    try:
        board.start_stream()
        time.sleep(2.5)
        data = board.get_board_data()
        board.stop_stream()
    finally:
        board.release_session()
    x = data[bs.BoardShim.get_eeg_channels(bid)]
    fs = bs.BoardShim.get_sampling_rate(bid)
    assert x.shape[1] >= fs  # at least a second of samples
    q = eeg_quality(x, fs)
    assert q.ok, q.detail


def test_junk_eeg_gets_its_status_and_channels(muse, deap):
    w = np.array(muse.data[:, 2560:2560 + 1024])
    flat = w.copy()
    flat[1] = 0.0
    q = eeg_quality(flat, 256, channel_names=MUSE)
    assert q.status == "flat_channels" and q.bad_channels == ("AF7",) and "AF7" in q.detail
    assert q.metrics["channel_status"] == ["ok", "flat_channels", "ok", "ok"]
    nan = w.copy()
    nan[2, 100] = np.nan
    nan[3, 7] = np.inf
    q = eeg_quality(nan, 256)
    assert q.status == "nonfinite" and q.bad_channels == (2, 3) and "sample 100" in q.detail
    railed = w.copy()
    railed[0, :950] = 999.512  # stuck at the Muse amplifier's ceiling
    railed[3] *= 1e6  # volts-vs-microvolts or ADC counts
    q = eeg_quality(railed, 256, channel_names=MUSE)
    assert q.status == "railed_channels" and q.bad_channels == ("TP9", "TP10")
    drop = w.copy()
    drop[2, 300:300 + 128] = 0.0  # 0.5 s of zeros inside a live channel
    q = eeg_quality(drop, 256, channel_names=MUSE)
    assert q.status == "dropout" and q.bad_channels == ("AF8",) and "0.50 s" in q.detail
    held = w.copy()
    held[0, 500:580] = held[0, 500]  # 0.31 s of a held value
    assert eeg_quality(held, 256).status == "dropout"
    assert eeg_quality(held, 256, dropout_s=0.5).ok
    # priority: NaN first, then railed, flat, dropout; the others are still listed
    mixed = drop.copy()
    mixed[0] = 0.0
    mixed[1, 5] = np.nan
    q = eeg_quality(mixed, 256, channel_names=MUSE)
    assert q.status == "nonfinite" and q.bad_channels == ("AF7",)
    assert q.metrics["bad_by_status"] == {"nonfinite": ["AF7"], "flat_channels": ["TP9"], "dropout": ["AF8"]}
    z = np.zeros_like(deap.data[:, :512])
    q = eeg_quality(z, 128, channel_names=deap.channel_names)
    assert q.status == "flat_channels" and len(q.bad_channels) == 32 and len(q.detail) < 400


# --------------------------------------------------------- predict_raw refuses junk

def _zoo(model_id):
    pytest.importorskip("onnxruntime")
    from affectedge import models

    if model_id not in {c.id for c in models.list_models()}:
        pytest.skip(f"zoo model {model_id} is not built in this checkout")
    return models.load(model_id)


def test_speech_model_refuses_junk_audio(speech):
    y, sr = speech[0]
    with _zoo("speech-emotion") as m:
        probs = m.predict_raw(y, sample_rate_hz=sr)["probs"]
        assert np.all(np.isfinite(probs)) and abs(float(probs.sum()) - 1) < 1e-4
        for status, junk in (("no_speech", np.zeros(2 * sr, np.float32)),
                             ("out_of_scale", (y * 32768).astype(np.float32)),
                             ("nonfinite", np.full(sr, np.nan, np.float32)),
                             ("clipped", np.clip(y * 20, -1, 1))):
            with pytest.raises(NoSignalError) as exc:
                m.predict_raw(junk, sample_rate_hz=sr)
            assert exc.value.status == status
        with pytest.raises(ParameterError, match="sample_rate_hz"):
            m.predict_raw(y)
    assert m.closed
    from affectedge.errors import ModelError

    with pytest.raises(ModelError, match="closed"):
        m.predict_raw(y, sample_rate_hz=sr)


def test_eeg_models_refuse_junk_windows(muse, deap):
    m = _zoo("eeg-mental-state")
    w = muse.data[:, 2560:2560 + 1024]
    assert np.all(np.isfinite(m.predict_raw(w, sample_rate_hz=256)["probs"]))
    with pytest.raises(NoSignalError) as exc:
        m.predict_raw(np.zeros((4, 1024)), sample_rate_hz=256)  # used to give NaN probabilities
    assert exc.value.status == "flat_channels" and exc.value.quality.bad_channels == MUSE
    bad = w.copy()
    bad[1, 10] = np.nan
    with pytest.raises(NoSignalError) as exc:
        m.predict_raw(bad, sample_rate_hz=256)
    assert exc.value.status == "nonfinite" and exc.value.quality.bad_channels == ("AF7",)
    m.close()
    d = _zoo("eeg-valence-arousal")
    out = d.predict_raw(deap.data[:, :512], sample_rate_hz=128)
    assert all(np.all(np.isfinite(v)) for v in out.values())
    with pytest.raises(NoSignalError, match="flat"):
        d.predict_raw(np.zeros((32, 512)), sample_rate_hz=128)
    with pytest.raises(ParameterError, match="sample_rate_hz"):
        d.predict_raw(deap.data[:, :512])
    # precomputed DEAP features need no rate
    assert d.predict_raw(np.full(160, 4.0, np.float32))["quadrant"].shape == (1, 4)
    d.close()
