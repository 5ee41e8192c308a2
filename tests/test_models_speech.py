"""Speech emotion: corpus loaders, feature pipeline, quick training, ONNX export and card checks.

Uses the real EmoDB clips in ../shared/data (skipped where that folder is absent).
"""

import json
import os
import shutil

import numpy as np
import pytest

from affectedge.errors import ModelError, ParameterError

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("sklearn")

EMODB_CODES = {"anger": "W", "boredom": "L", "disgust": "E", "fear": "A", "happiness": "F", "sadness": "T",
               "neutral": "N"}


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


def _pick(emodb, per_label=2, speakers=("03", "08")):
    from affectedge.training.corpora import load_corpus

    items = load_corpus(emodb, "emodb")
    out = []
    for spk in speakers:
        for lab in EMODB_CODES:
            out += [it for it in items if it[2] == spk and it[1] == lab][:per_label]
    return out


# ------------------------------------------------------------------ loaders

def test_emodb_loader_real(emodb):
    from affectedge.training.corpora import detect_layout, load_corpus

    items = load_corpus(emodb, "emodb")
    assert len(items) == 535
    assert {s for _, _, s in items} == {"03", "08", "09", "10", "11", "12", "13", "14", "15", "16"}
    assert {lab for _, lab, _ in items} == set(EMODB_CODES)
    assert detect_layout(emodb) in ("csv", "emodb")
    auto = load_corpus(emodb)  # labels.csv manifest: same clips, labels and speakers
    assert [(os.path.basename(p), lab, s) for p, lab, s in auto] == [
        (os.path.basename(p), lab, s) for p, lab, s in items]
    p, lab, s = next(it for it in items if it[0].endswith("03a01Wa.wav"))
    assert (lab, s) == ("anger", "03")


def test_ravdess_layout(emodb, tmp_path):
    from affectedge.training.corpora import detect_layout, load_corpus

    code = {"neutral": "01", "happiness": "03", "sadness": "04", "anger": "05", "fear": "06", "disgust": "07"}
    for i, (path, lab, spk) in enumerate(_pick(emodb, 1)):
        if lab not in code:
            continue
        actor = "01" if spk == "03" else "02"
        d = tmp_path / f"Actor_{actor}"
        d.mkdir(exist_ok=True)
        os.symlink(path, d / f"03-01-{code[lab]}-01-01-{i % 2 + 1:02d}-{actor}.wav")
    assert detect_layout(tmp_path) == "ravdess"
    items = load_corpus(tmp_path)
    assert {s for _, _, s in items} == {"01", "02"}
    assert {lab for _, lab, _ in items} == set(code)


def test_folder_and_csv_layouts(emodb, tmp_path):
    from affectedge.training.corpora import detect_layout, load_corpus

    names = {"anger": "angry", "happiness": "happy", "sadness": "sad", "fear": "fearful", "neutral": "neutral"}
    folder = tmp_path / "tess"
    rows = ["path,label,speaker"]
    for i, (path, lab, spk) in enumerate(_pick(emodb, 1)):
        if lab in names:
            d = folder / f"{'OAF' if spk == '03' else 'YAF'}_{names[lab]}"
            d.mkdir(parents=True, exist_ok=True)
            os.symlink(path, d / f"clip{i}.wav")
        rows.append(f"{path},{lab},{spk}")
    assert detect_layout(folder) == "folder"
    items = load_corpus(folder)
    assert {lab for _, lab, _ in items} == set(names)
    assert {s for _, _, s in items} == {"OAF", "YAF"}
    # plain folder-per-label with synonym 'ps'
    plain = tmp_path / "plain"
    (plain / "ps").mkdir(parents=True)
    shutil.copy(items[0][0], plain / "ps" / "a.wav")
    assert load_corpus(plain, "folder")[0][1] == "surprise"
    (tmp_path / "man").mkdir()
    (tmp_path / "man" / "manifest.csv").write_text("\n".join(rows) + "\n")
    got = load_corpus(tmp_path / "man")
    assert detect_layout(tmp_path / "man") == "csv"
    assert len(got) == len(rows) - 1 and {s for _, _, s in got} == {"03", "08"}


def test_loader_errors(emodb, tmp_path):
    from affectedge.training.corpora import load_corpus

    (tmp_path / "empty").mkdir()
    with pytest.raises(ParameterError, match="no .wav files"):
        load_corpus(tmp_path / "empty")
    bad = tmp_path / "bad" / "grumpy"
    bad.mkdir(parents=True)
    os.symlink(_pick(emodb, 1)[0][0], bad / "x.wav")
    with pytest.raises(ParameterError, match="grumpy.*not in the shared taxonomy"):
        load_corpus(tmp_path / "bad")
    with pytest.raises(ParameterError, match="layout 'timit' is unknown"):
        load_corpus(tmp_path / "bad", "timit")
    with pytest.raises(ParameterError, match="does not exist"):
        load_corpus(tmp_path / "nowhere")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "manifest.csv").write_text(f"path,label\n{_pick(emodb, 1)[0][0]},elated\n")
    with pytest.raises(ParameterError, match="elated"):
        load_corpus(tmp_path / "m")


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
    clips = [read_wav(p)[0] for p, _, _ in _pick(emodb, 1, ("03",))]
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
    assert card["input"]["pipeline"] == "speech-mfcc-silence" and card["input"]["shape"][1:] == [251, 65]
    assert card["extra"]["onnx_max_abs_diff_vs_torch"] < 1e-4
    assert (out / "card.md").is_file()
    m = models.load(out)
    y, sr = read_wav(emodb / "wav" / "03a01Wa.wav")
    res = m.predict_raw(y, sample_rate_hz=sr)
    assert res["probs"].shape == (1, 7) and abs(float(res["probs"].sum()) - 1) < 1e-4
    assert res["va"].shape == (1, 2) and np.all(np.abs(res["va"]) <= 1)
    # parameter count on the card equals the torch model's
    from affectedge.training import speech

    tm = speech._build_model(65, 7, speech.QUICK, np.zeros((7, 2), np.float32))
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
    picked = _pick(emodb, 2, ("09", "10"))
    for i, (path, lab, spk) in enumerate(picked):
        if lab in code:
            actor = "01" if spk == "09" else "02"
            os.symlink(path, tmp_path / f"03-01-{code[lab]}-01-01-{i % 2 + 1:02d}-{actor}.wav")
    # a 'calm' clip: not a class of the model, must be dropped
    os.symlink(picked[0][0], tmp_path / "03-01-02-01-01-01-01.wav")
    rep = speech.evaluate_model(models.load(quick_model[0]), tmp_path, progress=False, out=tmp_path / "rep")
    assert rep["shared_classes"] == ["anger", "happiness", "neutral", "sadness"]
    assert rep["corpus_only_classes"] == ["calm"] and rep["clips_dropped"] == 1
    assert 0 <= rep["uar"] <= 1 and (tmp_path / "rep" / "report.json").is_file()
    (tmp_path / "empty").mkdir()
    with pytest.raises(ParameterError, match="no .wav"):
        speech.train(tmp_path / "empty", tmp_path / "o", quick=True, progress=False)
    with pytest.raises(ParameterError, match="protocol"):
        speech.evaluate_protocol(emodb, "kfold", quick=True, progress=False)
