"""Speech emotion: feature pipeline, quick training, ONNX export and card checks.

Uses the real EmoDB clips in ../shared/data (skipped where that folder is absent).
"""

import json
import os
import shutil

import numpy as np
import pytest

from affectedge.errors import ModelError, ParameterError
from _speech import pick_emodb

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("sklearn")



@pytest.fixture(scope="module")
def emodb(shared_data):
    root = shared_data / "speech" / "emodb"
    if not (root / "wav").is_dir():
        pytest.skip("EmoDB is not present in ../shared/data")
    return root


@pytest.fixture(scope="module")
def quick_model(emodb, tmp_path_factory):
    from affectedge.training import speech

    out = tmp_path_factory.mktemp("speech-model")
    card_path = speech.train(emodb, out, quick=True, progress=False)
    return out, card_path




# Corpus-loader tests (EmoDB, RAVDESS, folder, csv, SAVEE, TESS, unknown speakers): tests/test_corpora.py


# ----------------------------------------------------------------- pipeline

def test_pipeline_shapes_and_calibration(emodb):
    from affectedge.features import get_pipeline
    from affectedge.features.speech import SpeakerNormalizer
    from affectedge.io import read_wav

    pipe = get_pipeline("speech-mfcc-silence")
    y, sr = read_wav(emodb / "wav" / "03a01Wa.wav")
    x = pipe(y, sample_rate_hz=sr)
    assert x.shape == pipe.input_shape == (251, 65) and x.dtype == np.float32
    n = pipe.frames(y, sr).shape[0]
    assert x[:n, -1].sum() == min(n, 251) and np.all(x[n:] == 0)
    clips = [read_wav(p)[0] for p, _, _ in pick_emodb(emodb, 1, ("03",))]
    cal = SpeakerNormalizer.from_audio(pipe, clips, sample_rate_hz=16000)
    xc = pipe(y, calibration=cal, sample_rate_hz=sr)
    assert abs(float(xc[:n, :-1].mean())) < 1.5 and not np.allclose(xc, x)
    assert np.allclose(pipe(y, calibration=cal.to_dict(), sample_rate_hz=sr), xc)
    assert get_pipeline("speech-mfcc-silence", pipe.spec).spec == pipe.spec
    with pytest.raises(ParameterError, match="sample_rate_hz"):
        pipe(y)  # the rate is never guessed
    with pytest.raises(ParameterError, match="sample_rate_hz"):
        pipe.frames(y)
    with pytest.raises(ParameterError, match="mono"):
        pipe(np.zeros((2, 16000), np.float32), sample_rate_hz=16000)
    with pytest.raises(ParameterError, match="n_mfcc"):
        get_pipeline("speech-mfcc-silence", {"n_mfcc": 60})
    # v2: the eGeMAPS LLDs and the calibrated flag (1 with the speaker's own normaliser, 0 with the fallback)
    v2 = get_pipeline("speech-mfcc-silence", {"lld": True, "calibration_flag": True})
    assert v2.input_shape == (251, 91) and v2.n_frame_features == 89
    assert v2.feature_names[-2:] == ["calibrated", "valid"] and "egemaps_F0semitoneFrom27.5Hz_sma3nz" in v2.feature_names
    cal2 = SpeakerNormalizer.from_audio(v2, clips, sample_rate_hz=16000)
    f2 = v2.frames(y, sr)
    assert f2.shape[1] == 89 and np.isfinite(f2).all()
    w_cal, w_unc = v2.window(f2, cal2), v2.window(f2, cal2, calibrated=False)
    assert np.all(w_cal[:n, -2] == 1) and np.all(w_unc[:, -2] == 0) and np.all(w_cal[n:] == 0)
    assert np.array_equal(w_cal[:, :-2], w_unc[:, :-2])
    with pytest.raises(ParameterError, match="threshold_factor"):
        get_pipeline("speech-mfcc-silence", {"threshold_factor": 2.0})


def test_pipeline_resamples_other_rates(emodb):
    """Audio at 48 kHz or 8 kHz is resampled with soxr to the pipeline's 16 kHz instead of refused."""
    import soxr

    from affectedge.features import get_pipeline
    from affectedge.io import read_wav

    pipe = get_pipeline("speech-mfcc-silence")
    y, sr = read_wav(emodb / "wav" / "03a01Wa.wav")
    ref = pipe.frames(y, sr)
    y48 = soxr.resample(y, sr, 48000, "HQ")
    f48 = pipe.frames(y48, sample_rate_hz=48000)
    assert f48.shape == ref.shape
    # same MFCCs up to the resampler's round trip: measured max |diff| 0.52 on values up to ~400 (0.26 % overall)
    np.testing.assert_allclose(f48[:, :20], ref[:, :20], atol=1.0)
    assert np.linalg.norm(f48[:, :20] - ref[:, :20]) < 0.01 * np.linalg.norm(ref[:, :20])
    w48, w16 = pipe(y48, sample_rate_hz=48000), pipe(y, sample_rate_hz=sr)
    assert np.linalg.norm(w48 - w16) < 0.02 * np.linalg.norm(w16)
    y8 = soxr.resample(y, sr, 8000, "HQ")  # band-limited to 4 kHz: upper MFCCs differ, shapes match
    assert pipe.frames(y8, 8000).shape == ref.shape
    with pytest.warns(DeprecationWarning):
        np.testing.assert_array_equal(pipe(y, sr=16000), pipe(y, sample_rate_hz=16000))


# ----------------------------------------------------------- train / export

def test_quick_training_beats_chance_on_unseen_speaker(emodb):
    """Train on three speakers of real EmoDB, test on a fourth (speaker-independent)."""
    from affectedge.training import speech
    from affectedge.training.metrics import classification_report

    items, labels, y, speakers = speech._corpus(emodb, "emodb", quick=True)
    pipe = speech._default_pipeline()
    frames = speech._raw_frames(items, pipe)
    x = speech._windows(frames, speakers, speech._speaker_norms(frames, speakers), pipe)
    te = np.asarray(speakers) == sorted(set(speakers))[-1]
    model = speech._fit(x[~te], y[~te], len(labels), speech.QUICK, 0, [speech.VA_TABLE[k] for k in labels])
    rep = classification_report(y[te], speech._predict(model, x[te]).argmax(1), labels)
    assert rep["uar"] >= 0.35, rep  # chance is 1/7


def test_exported_model_loads_and_runs(quick_model, emodb):
    from affectedge import models
    from affectedge.io import read_wav
    from affectedge.models import sha256_file

    out, card_path = quick_model
    card = json.loads(card_path.read_text())
    assert card["labels"] == ["anger", "boredom", "disgust", "fear", "happiness", "neutral", "sadness"]
    assert card["file_sha256"] == sha256_file(out / "model.onnx")
    assert card["file_size_bytes"] == (out / "model.onnx").stat().st_size
    # v2 input: 60 MFCC/deltas + 4 silence + 25 eGeMAPS LLDs + the calibrated flag + valid
    assert card["input"]["pipeline"] == "speech-mfcc-silence" and card["input"]["shape"][1:] == [251, 91]
    assert card["input"]["spec"]["lld"] is True and card["input"]["spec"]["calibration_flag"] is True
    assert card["extra"]["onnx_max_abs_diff_vs_torch"] < 1e-4
    assert (out / "card.md").is_file()
    m = models.load(out)
    y, sr = read_wav(emodb / "wav" / "03a01Wa.wav")
    res = m.predict_raw(y, sample_rate_hz=sr)
    assert res["probs"].shape == (1, 7) and abs(float(res["probs"].sum()) - 1) < 1e-4
    assert res["va"].shape == (1, 2) and np.all(np.abs(res["va"]) <= 1)
    # parameter count on the card equals the torch model's
    from affectedge.training import speech

    tm = speech._build_model(91, 7, speech.QUICK, np.zeros((7, 2), np.float32))
    assert card["parameters"] == speech._param_count(tm) <= 100_000
    # calibrated run through the model's own pipeline gives a distribution too
    cal = m.pipeline.frames(y, sr)
    from affectedge.features.speech import SpeakerNormalizer

    p = m.predict(m.pipeline(y, calibration=SpeakerNormalizer.fit([cal]), sample_rate_hz=sr)[None])["probs"]
    assert p.shape == (1, 7)
    assert m.classify(m.pipeline(y, sample_rate_hz=sr)[None])[0] in card["labels"]
    # other rates are resampled; a missing rate is refused, never guessed
    import soxr

    r48 = m.predict_raw(soxr.resample(y, sr, 48000, "HQ"), sample_rate_hz=48000)["probs"]
    assert np.argmax(r48) == np.argmax(res["probs"])
    with pytest.raises(ParameterError, match="sample_rate_hz"):
        m.predict_raw(y)


def test_card_spec_mismatch_and_tamper_refused(quick_model, tmp_path):
    from affectedge import models

    out, card_path = quick_model
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    card = json.loads((bad / "card.json").read_text())
    card["input"]["spec"]["n_mfcc"] = 13  # a pipeline built from it computes different features
    card["input"]["spec"].pop("norm_mean")
    card["input"]["spec"].pop("norm_std")
    (bad / "card.json").write_text(json.dumps(card))
    from affectedge.features.speech import SpeechFeatures
    from affectedge.models import ModelCard

    c = ModelCard.load(bad)
    with pytest.raises(ModelError, match="differ"):
        c.check_input_spec(SpeechFeatures().spec, "speech-mfcc-silence")
    with pytest.raises(ModelError, match="pipeline"):
        c.check_input_spec(SpeechFeatures().spec, "face-blendshapes")
    tampered = tmp_path / "tampered"
    shutil.copytree(out, tampered)
    with open(tampered / "model.onnx", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ModelError, match="sha256"):
        models.load(tampered)


def test_cross_corpus_and_bad_inputs(quick_model, emodb, tmp_path):
    from affectedge import models
    from affectedge.training import speech

    code = {"neutral": "01", "calm": "02", "happiness": "03", "sadness": "04", "anger": "05"}
    picked = pick_emodb(emodb, 2, ("09", "10"))
    for i, (path, lab, spk) in enumerate(picked):
        if lab in code:
            actor = "01" if spk == "09" else "02"
            os.symlink(path, tmp_path / f"03-01-{code[lab]}-01-01-{i % 2 + 1:02d}-{actor}.wav")
    # a 'calm' clip: not a class of the model, must be dropped
    os.symlink(picked[0][0], tmp_path / "03-01-02-01-01-01-01.wav")
    # arousal classifiers for the silence variants trained on two other EmoDB speakers (fast)
    train_dir = tmp_path / "train_corpus"
    (train_dir / "wav").mkdir(parents=True)
    for path, _, _ in pick_emodb(emodb, 3, ("03", "08")):
        os.symlink(path, train_dir / "wav" / os.path.basename(path))
    m = models.load(quick_model[0])
    corpus = tmp_path / "ravdess"
    corpus.mkdir()
    for f in tmp_path.glob("*.wav"):
        f.rename(corpus / f.name)
    rep = speech.evaluate_model(m, corpus, progress=False, out=tmp_path / "rep", train_data=train_dir)
    assert rep["shared_classes"] == ["anger", "happiness", "neutral", "sadness"]
    assert rep["corpus_only_classes"] == ["calm"] and rep["clips_dropped"] == 1
    assert 0 <= rep["uar"] <= 1 and (tmp_path / "rep" / "report.json").is_file()
    assert rep["calibration"] == "speaker" and rep["four_class"]["classes"] == ["anger", "happiness", "neutral",
                                                                                "sadness"]
    ar = rep["arousal"]
    assert 0 <= ar["model"] <= 1 and [r["system"] for r in ar["silence_variants"]] == [
        "no silence features", "silence, threshold factor 0.2", "silence, threshold factor 0.3",
        "silence, threshold factor 0.5"]
    unc = speech.evaluate_model(m, corpus, progress=False, calibration="none", train_data=train_dir)
    assert unc["calibration"] == "none" and 0 <= unc["uar"] <= 1
    with pytest.raises(ParameterError, match="calibration='both' is unknown"):
        speech.evaluate_model(m, corpus, progress=False, calibration="both")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ParameterError, match="no .wav"):
        speech.train(tmp_path / "empty", tmp_path / "o", quick=True, progress=False)
    with pytest.raises(ParameterError, match="protocol"):
        speech.evaluate_protocol(emodb, "kfold", quick=True, progress=False)
