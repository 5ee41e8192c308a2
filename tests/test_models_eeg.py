"""EEG models: quick training on real DEAP / Muse data, ONNX export, cards, BrainFlow playback, errors.

Each model is trained once per session in quick mode (train() also runs the
quick protocols for the card), then inspected by several tests.

Above-chance checks: the Muse LOSO model has a clear margin (3 classes,
chance 1/3). DEAP trial-level features do not allow one: honest
subject-dependent CV on 38 trials per subject sits near the majority class
(about 0.58 valence / 0.64 arousal) for both our model and logistic
regression, so that test only asserts better than a coin flip.
"""

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
pytest.importorskip("sklearn")

from affectedge import models  # noqa: E402
from affectedge.errors import ModelError, ParameterError  # noqa: E402
from affectedge.features import get_pipeline  # noqa: E402
from affectedge.features.eeg import DeapDEFeatures, MuseBandFeatures  # noqa: E402
from affectedge.io import read_eeg_csv  # noqa: E402


@pytest.fixture(scope="module")
def deap_model(shared_data, tmp_path_factory):
    from affectedge.training import eeg_va

    out = tmp_path_factory.mktemp("eeg-va")
    eeg_va.train(shared_data / eeg_va.DEFAULT_DATA, out, quick=True, progress=False)
    return out


@pytest.fixture(scope="module")
def muse_model(shared_data, tmp_path_factory):
    from affectedge.training import mental_state

    out = tmp_path_factory.mktemp("mental-state")
    mental_state.train(shared_data / mental_state.DEFAULT_DATA, out, quick=True, progress=False)
    return out


def _card(folder):
    return json.loads((folder / "card.json").read_text())


# ----------------------------------------------------------------------------- DEAP
def test_deap_card_and_onnx(deap_model):
    card = _card(deap_model)
    assert card["id"] == "eeg-valence-arousal"
    assert card["input"]["pipeline"] == "eeg-deap-de" and card["input"]["shape"] == [32, 5]
    assert 1000 <= card["parameters"] <= 5000
    assert max(card["evaluation"]["onnx_max_abs_diff"].values()) < 1e-4
    assert "academic research only" in card["training_data"][0]["terms"]
    assert any("in scale" in lim for lim in card["limits"])
    assert {r["protocol"] for r in card["evaluation"]["table"]} == {"subject-kfold", "subject-independent"}
    for fig in card["evaluation"]["figures"]:
        assert (deap_model / fig).is_file(), fig
    m = models.load(deap_model)
    assert m.card.id == card["id"] and list(m.labels) == card["labels"]


def test_deap_no_constant_first_matmul(deap_model):
    import onnx

    g = onnx.load(str(deap_model / "model.onnx")).graph
    consts = {i.name for i in g.initializer} | {o for n in g.node if n.op_type == "Constant" for o in n.output}
    matmuls = [n for n in g.node if n.op_type == "MatMul"]
    assert matmuls, "the Chebyshev graph multiplies should appear as MatMul nodes"
    bad = [n.name for n in matmuls if n.input[0] in consts]
    assert not bad, f"constant-first MatMul nodes: {bad}"


def test_deap_predict_raw_and_precomputed(deap_model, shared_data):
    m = models.load(deap_model)
    rec = read_eeg_csv(shared_data / "eeg/deap_raw_trial/deap_trial_128hz.csv", sample_rate_hz=128)
    assert rec.data.shape[0] == 32
    out = m.predict_raw(rec.data[:, : 4 * 128], sample_rate_hz=128)
    quad, va = out["quadrant"], out["valence_arousal"]
    assert quad.shape == (1, 4) and va.shape == (1, 2)
    assert np.isclose(quad.sum(), 1.0, atol=1e-5) and np.all((va >= 0) & (va <= 1))
    row = np.loadtxt(shared_data / "eeg/deap_de_features/EEG_feature.txt", max_rows=3)
    feats = np.stack([m.pipeline(r) for r in row])
    assert feats.shape == (3, 32, 5)
    np.testing.assert_allclose(feats[0][:, 0], row[0][:32], rtol=1e-6)  # theta column = first 32 values
    assert m.predict(feats)["quadrant"].shape == (3, 4)
    assert len(m.classify(feats)) == 3


def _deap_stream(model, x, names, **opts):
    from affectedge import runtime
    from affectedge.sensors import EEGBlock

    task = runtime.EEGTask(runtime.EEGOptions(**opts), model=model)
    res = []
    for i in range(0, x.shape[1], 64):
        res += task.push(EEGBlock(x[:, i:i + 64], 128.0, names, i / 128, i // 64))
    return res


def test_deap_raw_trial_session_calibrated_predictions_vary(deap_model, shared_data):
    """Raw DEAP windows through the runtime with session calibration land in the training distribution:
    calibrated predictions vary across windows, are finite and not pinned to one corner (the model trained on
    precomputed DE said P(valence+) 0.01-0.06 in every uncalibrated window)."""
    card = _card(deap_model)
    assert card["extra"]["normalisation"].startswith("subject")
    stats = card["extra"]["input_stats"]
    assert np.asarray(stats["mean"]).shape == (32, 5) and np.all(np.asarray(stats["std"]) > 0)
    m = models.load(deap_model)
    rec = read_eeg_csv(shared_data / "eeg/deap_raw_trial/deap_trial_128hz.csv", sample_rate_hz=128)
    res = _deap_stream(m, rec.data, tuple(rec.channel_names), calibration_min_s=20.0)
    assert len(res) == 60 and all(r.ok for r in res)
    cal = [r for r in res if r.calibrated]
    assert len(cal) >= 35 and not res[0].calibrated and "session calibration" in res[0].detail
    va = np.array([[r.valence, r.arousal] for r in cal])
    assert np.all(np.isfinite(va)) and np.all(np.abs(va) <= 1)
    assert np.all(va.std(0) > 0.05), va.std(0)  # varies across windows, for both heads
    assert np.all(np.abs(np.median(va, 0)) < 0.9), np.median(va, 0)  # not saturated
    for r in res:
        json.dumps(r.to_dict(), allow_nan=False)


def test_deap_flat_channel_gets_status_never_nan(deap_model, shared_data):
    m = models.load(deap_model)
    rec = read_eeg_csv(shared_data / "eeg/deap_raw_trial/deap_trial_128hz.csv", sample_rate_hz=128)
    x = rec.data[:, : 128 * 40].copy()
    x[5] = 0.0
    res = _deap_stream(m, x, tuple(rec.channel_names), calibration_min_s=20.0)
    assert res and {r.status for r in res} == {"flat_channels"}
    for r in res:
        assert r.probs is None and r.valence is None
        json.dumps(r.to_dict(), allow_nan=False)


def test_deap_card_figures_carry_chance(deap_model):
    for row in _card(deap_model)["evaluation"]["table"]:
        for t in ("valence", "arousal"):
            assert 0.5 <= row[f"{t}_chance"] <= 1.0, row
    assert {r["method"] for r in _card(deap_model)["evaluation"]["table"]} >= {"logistic regression"}


def test_deap_evaluate_model(deap_model, shared_data, tmp_path):
    from affectedge.training import eeg_va

    rep = eeg_va.evaluate_model(models.load(deap_model), shared_data / eeg_va.DEFAULT_DATA, out=tmp_path)
    assert rep["n_trials"] == 1216 and set(rep["results"]) == {"valence", "arousal"}
    assert (tmp_path / "report.json").is_file() and (tmp_path / "report.png").is_file()


def test_deap_above_coin_flip(deap_model):
    table = _card(deap_model)["evaluation"]["table"]
    ours = next(r for r in table if r["protocol"] == "subject-kfold" and r["method"] == "graph (ours)")
    assert (ours["valence_acc"] + ours["arousal_acc"]) / 2 > 0.5


# ----------------------------------------------------------------------------- Muse
def test_muse_card_loso_above_chance(muse_model):
    card = _card(muse_model)
    assert card["id"] == "eeg-mental-state" and card["labels"] == ["concentrating", "neutral", "relaxed"]
    assert card["input"]["pipeline"] == "eeg-muse-bands" and card["input"]["shape"] == [4, 15]
    assert max(card["evaluation"]["onnx_max_abs_diff"].values()) < 1e-4
    rows = {r["method"]: r for r in card["evaluation"]["table"] if r["windows"] == "accepted"}
    assert rows["ours (global)"]["acc_3class"] > 0.55  # chance 1/3
    assert rows["ours (global)"]["auc_rel_vs_conc"] > 0.9
    assert "brainflow restfulness (score as P(relaxed))" in rows
    assert {"ours (subject)", "ours (subject-neutral)"} <= set(rows)
    report = json.loads((muse_model / "evaluation/loso/report.json").read_text())
    # name-concentrating-1.csv is a copy of subjecta-concentrating-1.csv: dropped, never its own LOSO subject
    assert set(report["subjects"]) == {"subjecta", "subjectb", "subjectc", "subjectd"}
    assert any(n.startswith("name-concentrating-1.csv dropped") for n in report["duplicates"])
    per = report["artefacts"]["per_subject"]
    assert sum(v["rejected"] for v in per.values()) == report["n_windows"] - report["n_accepted"] > 0
    assert card["extra"]["artefacts"]["status"] == "artefact" and "input_stats" not in card["extra"]
    assert (muse_model / "evaluation/loso/report.png").is_file()


def test_muse_graph_reduces_over_channels(muse_model, shared_data):
    """The channel averaging happens in the exported graph: the model takes the pipeline's (4, 15) and its
    answer does not depend on the channel order (no per-channel weights), but does on the signal."""
    m = models.load(muse_model)
    feats = {}
    for state in ("concentrating", "relaxed"):
        x = _muse_recording(shared_data, f"subjectb-{state}-1.csv")
        feats[state] = np.stack([m.pipeline(x[:, i:i + 1024]) for i in range(2048, 2048 + 10 * 256, 256)])
    p = {k: m.predict(v)["probs"] for k, v in feats.items()}
    np.testing.assert_allclose(m.predict(feats["relaxed"][:, [3, 2, 1, 0]])["probs"], p["relaxed"], atol=1e-5)
    ir = list(m.labels).index("relaxed")
    assert p["relaxed"][:, ir].mean() > p["concentrating"][:, ir].mean() + 0.3


def _muse_recording(shared_data, name="subjecta-neutral-1.csv"):
    rec = read_eeg_csv(shared_data / "eeg/muse_mentalstate" / name, channels=["TP9", "AF7", "AF8", "TP10"],
                       sample_rate_hz=256.0)
    return rec.data.astype(np.float64)


def _artefact_statuses(x, fs=256, win=1024, hop=256):
    from affectedge.features.quality import ArtefactDetector

    det = ArtefactDetector(("TP9", "AF7", "AF8", "TP10"), fs)
    return [det.check(x[:, e - win:e]) for e in range(win, x.shape[1] + 1, hop)]


def test_artefact_detector_flags_blink_and_jaw_clench_on_real_muse(shared_data):
    x = _muse_recording(shared_data)[:, : 256 * 40]
    clean = _artefact_statuses(x)
    assert all(q.ok for q in clean)  # this recording has no artefact of its own
    rng = np.random.default_rng(0)
    y = x.copy()
    t = np.arange(102) / 256
    y[1:3, 256 * 20:256 * 20 + 102] += 350 * np.exp(-((t - 0.2) / 0.08) ** 2)  # a blink on AF7 / AF8 at 20 s
    y[[0, 3], 256 * 32:256 * 33] += 50 * rng.standard_normal((2, 256))  # 1 s of jaw-clench EMG on TP9 / TP10
    got = _artefact_statuses(y)
    ends = [(k * 256 + 1024) / 256 for k in range(len(got))]
    for end, q in zip(ends, got):
        if end - 4 < 20.4 and end > 20.0:
            assert q.status == "artefact" and "blink" in q.detail and set(q.bad_channels) <= {"AF7", "AF8"}, end
        elif end - 4 < 33 and end > 32:
            assert q.status == "artefact" and "jaw" in q.detail and set(q.bad_channels) <= {"TP9", "TP10"}, end
        else:
            assert q.ok, (end, q.detail)


def test_artefact_detector_bad_input():
    from affectedge.features.quality import ArtefactDetector

    with pytest.raises(ParameterError, match=r"needs channels \['AF7', 'AF8'\].*Fp1"):
        ArtefactDetector(("TP9", "Fp1", "Fp2", "TP10"), 256)
    det = ArtefactDetector(("TP9", "AF7", "AF8", "TP10"), 256)
    with pytest.raises(ParameterError, match=r"\(4, samples\).*TP9, AF7, AF8, TP10"):
        det.check(np.zeros((3, 1024)))
    with pytest.raises(ParameterError, match="ptp_ratio"):
        ArtefactDetector(("TP9", "AF7", "AF8", "TP10"), 256, ptp_ratio=0.5)


def test_muse_predict_raw_csv_window(muse_model, shared_data):
    m = models.load(muse_model)
    rec = read_eeg_csv(shared_data / "eeg/muse_mentalstate/subjecta-concentrating-1.csv")
    assert rec.channel_names == ("TP9", "AF7", "AF8", "TP10") and rec.sample_rate_hz == 256
    probs = m.predict_raw(rec.data[:, 5000:5000 + 1024], sample_rate_hz=rec.sample_rate_hz)["probs"]
    assert probs.shape == (1, 3) and np.isclose(probs.sum(), 1.0, atol=1e-5)
    # a raw window's rate is never guessed; another rate is resampled to the model's 256 Hz
    with pytest.raises(ParameterError, match="sample_rate_hz"):
        m.predict_raw(rec.data[:, 5000:5000 + 1024])
    import soxr

    x512 = soxr.resample(np.ascontiguousarray(rec.data[:, 5000:5000 + 1024].T), 256, 512, "HQ").T
    p512 = m.predict_raw(x512, sample_rate_hz=512)["probs"]
    np.testing.assert_allclose(p512, probs, atol=0.05)


def test_brainflow_playback_feeds_the_model(muse_model, shared_data):
    from affectedge.training.mental_state import playback_eeg

    path = shared_data / "eeg/muse_mentalstate/brainflow_muse2/subjecta-relaxed-1.muse2.csv"
    rec = playback_eeg(path, seconds=4.6)
    assert rec.channel_names == ("TP9", "AF7", "AF8", "TP10") and rec.sample_rate_hz == 256
    assert rec.data.shape[0] == 4 and rec.data.shape[1] >= 1024
    csv = read_eeg_csv(shared_data / "eeg/muse_mentalstate/subjecta-relaxed-1.csv")
    np.testing.assert_allclose(rec.data[:, :1024], csv.data[:, :1024], atol=1e-3)  # same samples, in order
    m = models.load(muse_model)
    probs = m.predict_raw(rec.data[:, :1024], sample_rate_hz=rec.sample_rate_hz)["probs"]
    assert probs.shape == (1, 3) and np.all(np.isfinite(probs))


def test_brainflow_metrics_run(shared_data):
    from affectedge.training.mental_state import brainflow_scores

    rec = read_eeg_csv(shared_data / "eeg/muse_mentalstate/subjecta-relaxed-1.csv")
    s = brainflow_scores([rec.data[:, :1024], rec.data[:, 1024:2048]])
    assert set(s) == {"mindfulness", "restfulness"}
    assert all(v.shape == (2,) and np.all((v >= 0) & (v <= 1)) for v in s.values())


# ---------------------------------------------------------------------- bad inputs
def test_pipeline_bad_inputs():
    deap = DeapDEFeatures()
    with pytest.raises(ParameterError, match="32, samples"):
        deap(np.zeros((31, 512)))
    with pytest.raises(ParameterError, match="nperseg"):
        deap(np.random.default_rng(0).standard_normal((32, 64)))
    with pytest.raises(ParameterError, match="NaN"):
        deap(np.full(160, np.nan))
    with pytest.raises(ParameterError, match="numeric"):
        deap("not eeg")
    muse = MuseBandFeatures()
    with pytest.raises(ParameterError, match=r"x\.T"):
        muse(np.zeros((1024, 4)))
    with pytest.raises(ParameterError, match="1024"):
        muse(np.zeros((4, 500)))
    with pytest.raises(ParameterError):
        get_pipeline("eeg-muse-bands", {"window_s": 0.5})  # shorter than nperseg
    with pytest.raises(ParameterError):
        DeapDEFeatures(de_method="bogus")


def test_model_bad_inputs(deap_model, tmp_path, shared_data):
    from affectedge.training import eeg_va, mental_state

    m = models.load(deap_model)
    with pytest.raises(ParameterError, match="axis"):
        m.predict(np.zeros((1, 31, 5), np.float32))
    with pytest.raises(ParameterError):
        eeg_va.evaluate_protocol(shared_data / eeg_va.DEFAULT_DATA, "loso")
    with pytest.raises(ParameterError, match="DEAP feature folder"):
        eeg_va.load_deap(tmp_path)
    with pytest.raises(ParameterError):
        mental_state.list_recordings(tmp_path)
    # a card whose feature spec differs from the pipeline is refused
    bad = tmp_path / "bad"
    shutil.copytree(deap_model, bad)
    card = _card(bad)
    card["input"]["spec"]["nperseg"] = 64
    card["input"]["spec"]["unexpected"] = 1
    (bad / "card.json").write_text(json.dumps(card))
    with pytest.raises(ParameterError, match="unexpected"):
        models.load(bad)
    (bad / "model.onnx").write_bytes((bad / "model.onnx").read_bytes() + b"\0")
    del card["input"]["spec"]["unexpected"]
    (bad / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="sha256"):
        models.load(bad)
