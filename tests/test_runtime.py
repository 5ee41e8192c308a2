"""The runtime on real parts: EmoDB recordings at their native rate, real EEG, BrainFlow boards, CK+ faces.

Streamed model inputs equal the batch pipelines' on the same samples; junk
gets a status; fusion, events, JSON Lines, bounded queues, and clean stops.
"""

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from affectedge import models, runtime
from affectedge.errors import ModelError, ParameterError
from affectedge.sensors import AudioBlock, Clock, EEGBlock, Source, VideoFrame

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
EMODB = DATA / "speech" / "emodb" / "wav"
MUSE_CSV = DATA / "eeg" / "muse_mentalstate" / "subjecta-concentrating-1.csv"
DEAP_CSV = DATA / "eeg" / "deap_raw_trial" / "deap_trial_128hz.csv"
CKPLUS = DATA / "face" / "ckplus48"
ROOT = Path(__file__).resolve().parents[1]

needs_emodb = pytest.mark.skipif(not EMODB.is_dir(), reason="EmoDB not in ../shared/data")


def _read(name):
    import soundfile as sf

    y, sr = sf.read(EMODB / name, dtype="float32")
    return y, sr


def _blocks(y, sr, n):
    return [AudioBlock(y[i:i + n], sr, i / sr, k) for k, i in enumerate(range(0, len(y), n))]


@pytest.fixture(scope="module")
def speech_model():
    return runtime.load_model("speech-emotion")


# ------------------------------------------------------------------ options
def test_stream_mode_requires_a_callback():
    with pytest.raises(ParameterError, match="result_callback"):
        runtime.SpeechOptions(running_mode=runtime.RunningMode.STREAM)
    with pytest.raises(ParameterError, match="hop_ms"):
        runtime.SpeechOptions(hop_ms=0)
    with pytest.raises(ParameterError, match="window_ms"):
        runtime.SpeechOptions(window_ms=500, min_window_ms=1000)
    with pytest.raises(ParameterError, match="backend"):
        runtime.ModelOptions("speech-emotion", backend="tensorflow")


def test_missing_model_file_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        runtime.create_session(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError, match="corrupt"):
        runtime.create_session(bad)
    with pytest.raises(ModelError):
        runtime.load_model(runtime.ModelOptions(str(tmp_path / "missing-folder")))


def test_session_factory_outputs_by_role(speech_model):
    roles = runtime.output_roles(speech_model.card)
    assert roles == {"class_probabilities": "probs", "valence_arousal": "va"}
    s = runtime.create_session(speech_model.path)
    x = np.zeros((1,) + tuple(speech_model.pipeline.input_shape), np.float32)
    a = s.run(x)
    b = speech_model.predict(x)
    np.testing.assert_array_equal(a[0], b["probs"])
    s.close()
    with pytest.raises(ModelError, match="closed"):
        s.run(x)


# ------------------------------------------------------- streamed == batch
@needs_emodb
def test_speech_stream_input_equals_batch_pipeline(speech_model):
    a, sr = _read("03a01Wa.wav")
    b, _ = _read("03a05Fc.wav")
    y = np.concatenate([a, b, a])  # > 4 s: full windows slide
    task = runtime.SpeechTask(runtime.SpeechOptions(online_calibration=False), model=speech_model)
    pipe = speech_model.pipeline
    checked = 0
    seen = 0
    for blk in _blocks(y, sr, 1000):  # blocks that do not divide the hop
        res = task.push(blk)
        seen += blk.samples.shape[0]
        for r in res:
            assert r.status == "ok" and r.modality == "speech"
            end = int(round(r.end_ms * sr / 1000))
            start = int(round(r.start_ms * sr / 1000))
            batch = pipe(y[start:end], sample_rate_hz=sr)
            np.testing.assert_array_equal(task.last_input, batch)
            assert not r.calibrated
            checked += 1
    assert checked >= 4
    assert (end - start) == 4 * sr  # the last windows were the model's full 4 s


@needs_emodb
def test_speech_at_other_rates_is_resampled(speech_model):
    import soxr

    y, sr = _read("03a01Wa.wav")
    y48 = soxr.resample(y, sr, 48000, "HQ").astype(np.float32)
    t16 = runtime.SpeechTask(runtime.SpeechOptions(online_calibration=False), model=speech_model)
    r16 = t16.classify_clip(y, sr)
    r48 = t16.classify_clip(y48, 48000)
    assert r16.ok and r48.ok and r16.label == r48.label
    assert np.abs(np.subtract(r16.probs, r48.probs)).max() < 0.1
    # a 48 kHz stream through push() gives results too, on 16 kHz windows
    t = runtime.SpeechTask(runtime.SpeechOptions(online_calibration=False), model=speech_model)
    res = [r for blk in _blocks(y48, 48000, 4800) for r in t.push(blk)]
    assert res and all(r.ok for r in res)


def test_eeg_muse_stream_input_equals_batch_pipeline():
    from affectedge.io import read_eeg_csv

    rec = read_eeg_csv(MUSE_CSV, channels=["TP9", "AF7", "AF8", "TP10"], sample_rate_hz=256.0)
    x = rec.data[:, : 256 * 9]
    task = runtime.EEGTask()
    n = 0
    for i in range(0, x.shape[1], 37):
        for r in task.push(EEGBlock(x[:, i:i + 37], 256.0, ("TP9", "AF7", "AF8", "TP10"), i / 256, n)):
            end = int(round(r.end_ms * 256 / 1000))
            batch = task.model.pipeline(x[:, end - 1024:end])
            np.testing.assert_allclose(task.last_input, batch, rtol=1e-5, atol=1e-5)
            assert r.ok and r.model == "eeg-mental-state" and r.label in task.model.labels
            n += 1
    assert n == 6  # windows ending at 4, 5, ..., 9 s


def _muse_stream(x, task, block=64):
    names = ("TP9", "AF7", "AF8", "TP10")
    out = []
    for k, i in enumerate(range(0, x.shape[1], block)):
        out += task.push(EEGBlock(x[:, i:i + block], 256.0, names, i / 256, k))
    return out


def test_eeg_muse_blink_and_jaw_clench_get_an_artefact_status_never_an_answer():
    from affectedge.io import read_eeg_csv

    rec = read_eeg_csv(MUSE_CSV.with_name("subjecta-neutral-1.csv"), channels=["TP9", "AF7", "AF8", "TP10"],
                       sample_rate_hz=256.0)
    x = rec.data[:, : 256 * 40].astype(np.float64)
    clean = _muse_stream(x, runtime.EEGTask())
    assert len(clean) == 37 and all(r.ok for r in clean)  # the real recording alone: every window answered
    y = x.copy()
    t = np.arange(102) / 256
    y[1:3, 256 * 20:256 * 20 + 102] += 350 * np.exp(-((t - 0.2) / 0.08) ** 2)  # blink on AF7 / AF8
    y[[0, 3], 256 * 32:256 * 33] += 50 * np.random.default_rng(0).standard_normal((2, 256))  # jaw clench
    res = _muse_stream(y, runtime.EEGTask())
    hit = [r for r in res if (r.start_ms < 20400 and r.end_ms > 20000) or (r.start_ms < 33000 and r.end_ms > 32000)]
    assert len(hit) == 8  # windows ending at 21-24 s (blink) and 33-36 s (jaw clench)
    for r in hit:
        assert r.status == "artefact" and r.probs is None and r.label is None and not r.ok
        assert ("blink" in r.detail) or ("jaw" in r.detail)
    rest = [r for r in res if r not in hit]
    assert rest and all(r.ok and np.all(np.isfinite(r.probs)) for r in rest)


def test_eeg_muse_flat_channel_gets_a_status():
    from affectedge.io import read_eeg_csv

    rec = read_eeg_csv(MUSE_CSV, channels=["TP9", "AF7", "AF8", "TP10"], sample_rate_hz=256.0)
    x = rec.data[:, : 256 * 8].astype(np.float64)
    x[3] = 5.0 + 0.01 * np.random.default_rng(1).standard_normal(x.shape[1])  # TP10 off the skin: flat
    res = _muse_stream(x, runtime.EEGTask())
    assert res and all(r.status == "flat_channels" and r.probs is None for r in res)
    assert "channel 3" in res[0].detail or "TP10" in res[0].detail


def test_eeg_deap_stream_input_equals_batch_pipeline():
    from affectedge.io import read_eeg_csv

    rec = read_eeg_csv(DEAP_CSV, sample_rate_hz=128.0)
    x = rec.data[:, : 128 * 6]
    task = runtime.EEGTask()
    got = []
    for i in range(0, x.shape[1], 64):
        got += task.push(EEGBlock(x[:, i:i + 64], 128.0, tuple(rec.channel_names), i / 128, i // 64))
    assert task.model.card.id == "eeg-valence-arousal" and len(got) == 3
    end = int(round(got[-1].end_ms * 128 / 1000))
    batch = task.model.pipeline(x[:, end - 512:end])
    np.testing.assert_allclose(task.last_input, batch, rtol=1e-5, atol=1e-5)
    r = got[-1]
    assert r.ok and -1 <= r.valence <= 1 and -1 <= r.arousal <= 1


def test_eeg_other_rate_resampled_and_mapped_channels_flagged():
    rng = np.random.default_rng(1)
    fs = 250.0
    t = np.arange(int(6 * fs)) / fs
    x = 10 * rng.standard_normal((8, t.size)) + 20 * np.sin(2 * np.pi * 10 * t)
    task = runtime.EEGTask()
    res = []
    for i in range(0, t.size, 25):
        res += task.push(EEGBlock(x[:, i:i + 25], fs, tuple(f"ch{k}" for k in range(8)), i / fs, i // 25))
    assert res and all(r.ok for r in res)
    assert "mapped" in res[0].detail and task.model.card.id == "eeg-mental-state"


# ----------------------------------------------------------- junk inputs
@needs_emodb
def test_speech_junk_gets_a_status_never_an_emotion(speech_model):
    y, sr = _read("03a01Wa.wav")
    task = runtime.SpeechTask(runtime.SpeechOptions(online_calibration=False), model=speech_model)
    cases = {
        "no_speech": np.zeros(2 * sr, np.float32),
        "out_of_scale": (y * 32767).astype(np.float32),
        "dc_only": np.full(2 * sr, 0.3, np.float32),
        "clipped": np.clip(y * 40, -1, 1).astype(np.float32),
    }
    for status, clip in cases.items():
        r = task.classify_clip(clip, sr)
        assert r.status == status, (status, r)
        d = r.to_dict()
        assert d["probs"] is None and d["label"] is None and d["confidence"] == 0
        json.dumps(d, allow_nan=False)
    # the same through the stream
    res = [r for blk in _blocks(np.zeros(3 * sr, np.float32), sr, 1600) for r in task.push(blk)]
    assert res and {r.status for r in res} == {"no_speech"}


def test_eeg_junk_windows_marked_and_never_nan():
    rng = np.random.default_rng(2)
    fs = 256.0
    names = ("TP9", "AF7", "AF8", "TP10")
    good = 10 * rng.standard_normal((4, int(6 * fs)))
    variants = {"flat_channels": good.copy(), "nonfinite": good.copy()}
    variants["flat_channels"][2] = 0.0
    variants["nonfinite"][1, 300:310] = np.nan
    zeros = np.zeros_like(good)
    for status, x in list(variants.items()) + [("flat_channels", zeros)]:
        task = runtime.EEGTask()
        res = []
        for i in range(0, x.shape[1], 64):
            res += task.push(EEGBlock(x[:, i:i + 64], fs, names, i / fs, i // 64))
        assert res
        bad = [r for r in res if not r.ok]
        assert bad and bad[0].status == status, (status, [r.status for r in res])
        for r in res:
            json.dumps(r.to_dict(), allow_nan=False)  # raises on NaN / inf


# ------------------------------------------------------------- calibration
@needs_emodb
def test_online_calibration_becomes_ready_and_saves(tmp_path, speech_model):
    files = sorted(EMODB.glob("03*.wav"))[:12]
    clips = [_read(f.name)[0] for f in files]
    y = np.concatenate(clips)
    task = runtime.SpeechTask(runtime.SpeechOptions(online_min_speech_s=10.0), model=speech_model)
    res = [r for blk in _blocks(y, 16000, 1600) for r in task.push(blk)]
    cal_flags = [r.calibrated for r in res if r.ok]
    assert cal_flags[0] is False and cal_flags[-1] is True
    assert task.calibration.speech_s >= 10
    # equals SpeakerNormalizer.fit on the same frames (Welford == batch statistics)
    from affectedge.features.speech import SpeakerNormalizer

    c = runtime.OnlineCalibration(4, frame_s=0.016)
    parts = [np.random.default_rng(k).standard_normal((50 + k, 4)) * (k + 1) for k in range(4)]
    for p in parts:
        c.update(p)
    ref = SpeakerNormalizer.fit(parts)
    np.testing.assert_allclose(c.normalizer().mean, ref.mean, rtol=1e-10)
    np.testing.assert_allclose(c.normalizer().std, ref.std, rtol=1e-10)
    path = task.calibration.save(tmp_path / "me.json")
    t2 = runtime.SpeechTask(runtime.SpeechOptions(calibration=path), model=speech_model)
    r = t2.classify_clip(clips[0], 16000)
    assert r.ok and r.calibrated
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ParameterError, match="not an affectedge calibration"):
        runtime.SpeechTask(runtime.SpeechOptions(calibration=tmp_path / "bad.json"), model=speech_model)


# ---------------------------------------------------------- fusion, events
def _r(mod, labels, probs, end, status="ok", va=(None, None)):
    return runtime.AffectResult(end - 1000, end, mod, labels=labels, probs=probs, valence=va[0], arousal=va[1],
                                confidence=runtime._results.entropy_confidence(probs) if probs else 0.0,
                                status=status)


def test_fusion_rule():
    f = runtime.Fusion(runtime.FusionOptions(freshness_ms=1000, max_age_ms=3000))
    sp = ("anger", "boredom", "disgust", "fear", "happiness", "neutral", "sadness")
    fa = ("anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise")
    f.update(_r("speech", sp, (0.7, 0.1, 0.05, 0.05, 0.05, 0.03, 0.02), 10000, va=(-0.5, 0.6)))
    f.update(_r("face", fa, (0.1, 0.05, 0.05, 0.05, 0.6, 0.05, 0.1), 9500))
    out = f.fuse(10000)
    assert out.ok and {c["modality"] for c in out.contributors} == {"speech", "face"}
    assert math.isclose(sum(out.probs), 1.0, rel_tol=1e-9)
    assert out.labels == runtime.TAXONOMY
    # boredom and contempt land in "other"
    p = dict(zip(out.labels, out.probs))
    assert p["other"] > 0 and p["anger"] > p["happiness"]  # speech is fresher and more confident
    # stale: face drops out after max_age
    out2 = f.fuse(12800)
    assert [c["modality"] for c in out2.contributors] == ["speech"]
    # not ok drops out; nothing left -> no_modality
    f.update(_r("speech", (), None, 13000, status="no_speech"))
    assert f.fuse(13000).status == "no_modality"


def test_a_model_that_gives_nan_is_a_status_never_an_answer():
    """fp16 artifacts compute in fp16 on ARM CPUs and GPUs (make arm64-check saw the face fp16 model give inf
    there): a NaN/inf from any model becomes status 'nonfinite', and fusion leaves it out."""
    sp = ("anger", "boredom", "disgust", "fear", "happiness", "neutral", "sadness")
    bad = _r("speech", sp, (float("nan"),) + (0.1,) * 6, 10000, va=(0.2, float("inf")))
    assert bad.status == "nonfinite" and bad.probs is None and bad.valence is None and bad.label is None
    assert "gave NaN or inf" in bad.detail
    json.dumps(bad.to_dict(), allow_nan=False)
    f = runtime.Fusion(runtime.FusionOptions(freshness_ms=1000, max_age_ms=3000))
    f.update(bad)
    assert f.fuse(10000).status == "no_modality"
    # and from a real task on a real clip. This machine's CPU computes the fp16 artifacts in fp32, so the
    # overflow cannot be caused here: the session's outputs are replaced by NaN (the one simulated fault)
    if not EMODB.is_dir():
        return
    y, sr = _read("03a01Wa.wav")
    model = models.load("speech-emotion")
    task = runtime.SpeechTask(runtime.SpeechOptions(online_calibration=False), model=model)
    assert task.classify_clip(y, sr).status == "ok"
    run = model.session.run
    model.session.run = lambda arrays: [np.full_like(a, np.nan) for a in run(arrays)]
    out = task.classify_clip(y, sr)
    assert out.status == "nonfinite" and out.probs is None
    json.dumps(out.to_dict(), allow_nan=False)
    model.close()


def test_events_merge_consecutive_labels():
    m = runtime.EventMerger(max_gap_ms=1500)
    labs = ("a", "b")
    seq = [(1000, (0.9, 0.1)), (2000, (0.8, 0.2)), (3000, (0.2, 0.8)), (4000, None), (5000, (0.3, 0.7))]
    ev = []
    for end, p in seq:
        r = _r("speech", labs if p else (), p, end, status="ok" if p else "no_speech")
        ev += m.push(r)
    ev += m.flush()
    assert [(e.label, e.start_ms, e.end_ms, e.n_results) for e in ev] == \
        [("a", 0, 2000, 2), ("b", 2000, 3000, 1), ("b", 4000, 5000, 1)]


# ----------------------------------------------------------- the runtime
class _ListSource(Source):
    """Packets from a list (finite); used where the fault is the consumer, not the sensor."""

    modality = "audio"

    def __init__(self, packets, realtime=False, name="list"):
        super().__init__()
        self.packets = list(packets)
        self.realtime = realtime
        self.name = name

    def _read(self, timeout_s):
        from affectedge.sensors import EndOfStream

        if not self.packets:
            raise EndOfStream
        return self.packets.pop(0)


@needs_emodb
def test_runtime_files_and_synthetic_board_to_jsonl(tmp_path):
    from affectedge.sensors import AudioFileSource, BoardSource

    clock = Clock()
    wav = EMODB / "03a05Fc.wav"
    audio = AudioFileSource(wav, target_rate_hz=16000, realtime=True, clock=clock)
    board = BoardSource("synthetic", clock=clock)
    out = tmp_path / "r.jsonl"
    rt = runtime.Runtime(audio=(audio, runtime.SpeechTask()), eeg=(board, runtime.EEGTask()), jsonl=out,
                         duration_s=6.0, clock=clock, status_every_s=2.0)
    summary = rt.run()
    lines = out.read_text().splitlines()
    recs = [json.loads(x) for x in lines]
    assert all(r["schema"] == "affectedge.results" and r["version"] == 1 for r in recs)
    types = {r["type"] for r in recs}
    assert {"session", "result", "status", "summary"} <= types
    assert recs[0]["type"] == "session" and recs[-1]["type"] == "summary"
    mods = {r["modality"] for r in recs if r["type"] == "result"}
    assert {"speech", "eeg", "fused"} <= mods
    fused = [r for r in recs if r["type"] == "result" and r["modality"] == "fused" and r["status"] == "ok"]
    assert fused and all(c["modality"] in ("speech", "eeg") for r in fused for c in r["contributors"])
    st = [r for r in recs if r["type"] == "status"]
    assert {s["modality"] for s in st} == {"speech", "eeg"}
    assert summary["stopped_by"] == "duration" and not summary["errors"]
    assert all(v == 0 for v in summary["dropped"].values())
    # the board was released: a new session on the same board prepares
    with BoardSource("synthetic") as b2:
        assert b2.read(timeout_s=2.0) is not None or b2.read(timeout_s=2.0) is not None


def test_slow_consumer_drops_oldest_and_stays_bounded():
    rng = np.random.default_rng(3)
    fs = 256.0
    names = ("TP9", "AF7", "AF8", "TP10")
    x = 10 * rng.standard_normal((4, int(40 * fs)))
    pk = [EEGBlock(x[:, i:i + 64], fs, names, i / fs, k) for k, i in enumerate(range(0, x.shape[1], 64))]
    got = []

    def stall(rec):
        got.append(rec)
        if rec.get("type") == "result":
            time.sleep(0.05)

    rt = runtime.Runtime(eeg=(_ListSource(pk), runtime.EEGTask()), on_result=stall, results_queue_size=8,
                         queue_size=16)
    summary = rt.run()
    assert rt.results_q.high_water <= 8 and rt.lanes[0].queue.high_water <= 16
    assert summary["results_dropped"] + summary["dropped"]["eeg"] > 0  # drops are counted
    assert any(r.get("type") == "result" for r in got)  # and results kept flowing
    assert got[-1]["type"] == "summary"


@needs_emodb
def test_iterator_delivery_and_a_lane_that_ends_while_others_go_on():
    rng = np.random.default_rng(4)
    fs = 256.0
    names = ("TP9", "AF7", "AF8", "TP10")
    x = 10 * rng.standard_normal((4, int(12 * fs)))
    eeg = [EEGBlock(x[:, i:i + 64], fs, names, i / fs, k) for k, i in enumerate(range(0, x.shape[1], 64))]
    y, sr = _read("03a01Wa.wav")  # 1.9 s: this lane ends first
    rt = runtime.Runtime(eeg=(_ListSource(eeg), runtime.EEGTask()),
                         audio=(_ListSource(_blocks(y, sr, 1600), name="ends-early"), runtime.SpeechTask()))
    recs = list(rt)
    assert recs[-1]["type"] == "summary" and recs[-1]["stopped_by"] == "end"
    by = [r for r in recs if r["type"] == "result"]
    assert sum(r["modality"] == "eeg" for r in by) == 9  # the long lane ran to its end
    assert sum(r["modality"] == "speech" for r in by) == 2  # 1 s hop + the flushed remainder


# ----------------------------------------------------------- CLI and signals
def _cli(*args, timeout=180, **kw):
    return subprocess.run([sys.executable, "-m", "affectedge", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, **kw)


@needs_emodb
def test_predict_cli_json_and_text(tmp_path):
    p = _cli("predict", str(EMODB / "03a01Wa.wav"), "--json")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["status"] == "ok" and d["modality"] == "speech" and d["label"] in d["labels"]
    import soundfile as sf

    sf.write(tmp_path / "quiet.flac", np.zeros(48000, np.float32), 48000)
    p = _cli("predict", str(tmp_path / "quiet.flac"))
    assert p.returncode == 0 and "no answer" in p.stdout and "no_speech" in p.stdout
    p = _cli("predict", str(tmp_path / "missing.wav"))
    assert p.returncode == 1 and "does not exist" in p.stderr


@needs_emodb
def test_sigterm_mid_run_leaves_valid_jsonl(tmp_path):
    out = tmp_path / "r.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "affectedge", "run", "--audio", str(EMODB / "03a05Fc.wav"),
                             "--eeg", "synthetic", "--duration", "60", "--out", str(out), "--quiet"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while time.time() - t0 < 60:
        if out.is_file() and sum(1 for _ in out.open()) >= 6:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stdout + stderr
    text = out.read_text()
    assert text.endswith("\n")
    recs = [json.loads(x) for x in text.splitlines()]
    assert recs[-1]["type"] == "summary" and recs[-1]["stopped_by"] == "signal"
    assert "summary:" in stdout


@needs_emodb
def test_board_that_stops_mid_session_gap_marked_others_continue(tmp_path):
    """The watchdog marks the EEG gap and reconnects; speech results keep coming meanwhile."""
    from affectedge.sensors import AudioFileSource, BoardSource

    clock = Clock()
    y = np.concatenate([_read("03a05Fc.wav")[0]] * 3)
    import soundfile as sf

    sf.write(tmp_path / "s.wav", y, 16000)
    board = BoardSource("synthetic", clock=clock, watchdog_s=1.0, backoff_s=(0.2,))
    audio = AudioFileSource(tmp_path / "s.wav", target_rate_hz=16000, realtime=True, clock=clock)
    recs = []
    rt = runtime.Runtime(audio=(audio, runtime.SpeechTask()), eeg=(board, runtime.EEGTask()), duration_s=9.0,
                         clock=clock, on_result=recs.append, status_every_s=1.0)
    rt.start()
    time.sleep(2.5)
    board.board.stop_stream()  # the headset goes silent, as Muse headsets do
    t_stop = clock.now_s()
    summary = rt.wait()
    status = [r for r in recs if r["type"] == "status" and r["modality"] == "eeg"][-1]
    assert status["reconnects"] >= 1 and status["gaps"] and status["gap_ms"] > 500
    speech_after = [r for r in recs if r["type"] == "result" and r["modality"] == "speech"
                    and r["end_ms"] > (t_stop + 1.0) * 1e3]
    assert speech_after and all(r["status"] == "ok" for r in speech_after)
    assert not summary["errors"]


def test_playback_board_that_ends_while_the_run_goes_on(tmp_path):
    """A Cyton-Daisy playback file (10 s) ends; the EEG lane finishes and the run ends with it."""
    f = DATA / "eeg" / "brainflow_playback" / "cyton_daisy_10s.csv"
    if not f.is_file():
        pytest.skip("no BrainFlow playback file")
    from affectedge.sensors import open_eeg

    src = open_eeg(f"playback:{f}")
    recs = []
    rt = runtime.Runtime(eeg=(src, runtime.EEGTask()), on_result=recs.append, duration_s=40)
    summary = rt.run()
    assert summary["stopped_by"] == "end" and not summary["errors"]
    res = [r for r in recs if r["type"] == "result"]
    assert 5 <= len(res) <= 8  # 4 s windows every 1 s over 10 s
    assert all("mapped" in r["detail"] for r in res if r["status"] == "ok")


def _ck_images(n):
    import cv2

    files = sorted(CKPLUS.glob("*/*.png"))[::53][:n]
    return [(f, cv2.cvtColor(cv2.imread(str(f), cv2.IMREAD_GRAYSCALE), cv2.COLOR_GRAY2RGB)) for f in files]


@pytest.mark.skipif(not CKPLUS.is_dir(), reason="CK+ not in ../shared/data")
def test_face_task_input_equals_batch_pipeline_and_no_face_is_a_status():
    pytest.importorskip("mediapipe")
    from affectedge.features.face import BlendshapeFeatures

    from affectedge.features.face import FacePixels

    imgs = _ck_images(6)
    task = runtime.FaceTask(runtime.FaceOptions(independent_frames=True, max_fps=100))
    cheap = runtime.FaceTask(runtime.FaceOptions(independent_frames=True, max_fps=100, pixel_model=None))
    assert task.pixel.card.id == "face-expression-pixels" and 0 <= task.w_pixels <= 1 and cheap.pixel is None
    w = task.w_pixels
    try:
        with BlendshapeFeatures(**task.pipe.spec) as batch, FacePixels(**task.pixel.pipeline.spec) as crops:
            for k, (f, img) in enumerate(imgs):
                (r,) = task.push(VideoFrame(img, k * 0.5, k, f.name))
                (rc,) = cheap.push(VideoFrame(img, k * 0.5, k, f.name))
                ref = batch.try_call(img)
                assert ref is not None, f
                np.testing.assert_array_equal(task.last_input, ref)
                assert r.ok and r.model == "face-expression" and r.label in task.model.labels
                p = task.model.predict(ref[None])[task.model.output_names[0]][0]
                np.testing.assert_allclose(rc.probs, p, rtol=1e-6, atol=1e-7)  # blendshapes only
                pp = task.pixel.predict(crops(img)[None])[task.pixel.output_names[0]][0]
                np.testing.assert_allclose(r.probs, w * pp + (1 - w) * p, rtol=1e-5, atol=1e-6)  # fused
                assert "pixels x" in r.detail
        (r,) = task.push(VideoFrame(np.full((192, 192, 3), 128, np.uint8), 10.0, 99))
        assert r.status == "no_face" and r.probs is None
        (r,) = task.push(VideoFrame(np.full((48, 48), 128, np.uint8), 11.0, 100))  # a flat 'crop': still no face
        assert r.status == "no_face" and r.probs is None
        json.dumps(r.to_dict(), allow_nan=False)
    finally:
        task.close()
        cheap.close()
    # a stream (VIDEO mode, tracking) on the same pictures upscaled finds the faces too
    import cv2

    vt = runtime.FaceTask(runtime.FaceOptions(max_fps=100))
    try:
        res = [r for k, (_, img) in enumerate(imgs[:3]) for _ in range(3)
               for r in vt.push(VideoFrame(cv2.resize(img, (192, 192)), (k * 3 + _) * 0.1, k * 3 + _))]
        assert sum(r.ok for r in res) >= 7
    finally:
        vt.close()


@needs_emodb
def test_calibrate_then_predict_with_it_and_devices_json(tmp_path):
    files = [str(f) for f in sorted(EMODB.glob("08*.wav"))[:8]]
    out = tmp_path / "me.json"
    p = _cli("calibrate", "--audio", *files, "--out", str(out), "--json")
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout)
    assert info["speech_s"] > 5 and out.is_file()
    p = _cli("predict", files[0], "--calibration", str(out), "--json")
    d = json.loads(p.stdout)
    assert p.returncode == 0 and d["calibrated"] is True and d["status"] == "ok"
    # silence only: nothing written, an existing file survives
    import soundfile as sf

    sf.write(tmp_path / "quiet.wav", np.zeros(48000, np.float32), 16000)
    before = out.read_bytes()
    p = _cli("calibrate", "--audio", str(tmp_path / "quiet.wav"), "--out", str(out))
    assert p.returncode == 1 and "no speech" in p.stderr and out.read_bytes() == before
    p = _cli("devices", "--json")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert isinstance(d["audio_inputs"], list) and isinstance(d["cameras"], list)


def test_eeg_session_calibration_maps_deap_features_onto_the_training_scale():
    """Raw-window DE (~2 nats) is not the precomputed DEAP scale (~4.7): the session's statistics are mapped."""
    from affectedge.io import read_eeg_csv

    rec = read_eeg_csv(DEAP_CSV, sample_rate_hz=128.0)
    x = rec.data[:, : 128 * 30]
    task = runtime.EEGTask(runtime.EEGOptions(calibration_min_s=10.0))
    res = []

    for i in range(0, x.shape[1], 128):
        out = task.push(EEGBlock(x[:, i:i + 128], 128.0, tuple(rec.channel_names), i / 128, i // 128))
        res += out
    flags = [r.calibrated for r in res]
    assert flags[0] is False and flags[-1] is True and all(r.ok for r in res)
    assert "session calibration" in res[0].detail
    train_mean = np.asarray(task.model.card.extra["input_stats"]["mean"])
    raw_mean = float(task.last_input.mean())
    assert raw_mean < train_mean.mean() - 1.0  # the raw-window scale really differs
    assert all(-1 <= r.valence <= 1 for r in res)
    # the Muse model has no input_stats: never "calibrated", never mapped
    names = ("TP9", "AF7", "AF8", "TP10")
    muse = runtime.EEGTask()
    muse.push(EEGBlock(10 * np.random.default_rng(0).standard_normal((4, 256 * 5)), 256.0, names, 0.0, 0))
    assert muse._cal is None


def test_a_raising_callback_never_stops_delivery_and_the_live_view_prints():
    import io

    from affectedge.runtime._cli import LiveView

    rng = np.random.default_rng(5)
    fs = 256.0
    names = ("TP9", "AF7", "AF8", "TP10")
    x = 10 * rng.standard_normal((4, int(8 * fs)))
    pk = [EEGBlock(x[:, i:i + 64], fs, names, i / fs, k) for k, i in enumerate(range(0, x.shape[1], 64))]
    seen = []

    def bad(rec):
        seen.append(rec)
        raise RuntimeError("app bug")

    rt = runtime.Runtime(eeg=(_ListSource(pk), runtime.EEGTask()), on_result=bad)
    summary = rt.run()
    assert summary["callback_errors"] == len(seen) - 1 and summary["results"]["eeg"] == 5  # windows at 4..8 s
    assert seen[-1]["type"] == "summary"
    # the text view (not a terminal) with modalities arriving in any order
    buf = io.StringIO()
    view = LiveView(stream=buf)
    sp = ("anger", "boredom", "disgust", "fear", "happiness", "neutral", "sadness")
    for end, mod in ((1000, "speech"), (1500, "face"), (2100, "eeg"), (9000, "speech")):
        view(_r(mod, sp, (0.4, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1), end))
    text = buf.getvalue()
    assert "speech: anger 0.40" in text and "(stale)" in text
