"""Face expression: Face Landmarker resolution/checksum, extractor, cache, training, ONNX, card.

Runs on the real CK+48 / FER2013 images in ../shared/data (skipped when absent)
and the local Face Landmarker copy in ../shared/models; never touches the network.
"""

import io
import json
import shutil
import urllib.error
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mediapipe")
pytest.importorskip("cv2")

from affectedge.errors import ModelError, ParameterError  # noqa: E402
from affectedge.features import face as F  # noqa: E402

SHARED_MODEL = Path(__file__).resolve().parents[1].parent / "shared" / "models" / F.MODEL_FILE


@pytest.fixture(scope="session")
def ck(shared_data):
    return shared_data / "face" / "ckplus48"


@pytest.fixture(scope="session")
def sequence(ck):
    """The three frames of one CK+ sequence, oldest first."""
    files = sorted((ck / "happy").glob("*.png"))
    stem = files[0].stem.rsplit("_", 1)[0]
    return [p for p in files if p.stem.startswith(stem)]


@pytest.fixture
def local_model():
    if not SHARED_MODEL.is_file():
        pytest.skip(f"{SHARED_MODEL} is not present")
    return SHARED_MODEL


# ------------------------------------------------------------ model resolution
def test_model_path_env_then_cache_then_shared(monkeypatch, tmp_path, local_model):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("AFFECTEDGE_FACE_MODEL", raising=False)
    monkeypatch.setattr(F, "_urlopen", _offline)
    assert F.face_model_path() == local_model  # nothing cached: ../shared/models
    cached = tmp_path / "affectedge" / "models" / F.MODEL_FILE
    cached.parent.mkdir(parents=True)
    shutil.copy(local_model, cached)
    assert F.face_model_path() == cached  # verified cache copy wins
    cached.write_bytes(local_model.read_bytes()[:-10] + b"corrupted!")
    assert F.face_model_path() == local_model  # corrupt cache copy is dropped
    assert not cached.exists()
    monkeypatch.setenv("AFFECTEDGE_FACE_MODEL", str(local_model))
    assert F.face_model_path() == local_model
    monkeypatch.setenv("AFFECTEDGE_FACE_MODEL", str(tmp_path / "missing.task"))
    with pytest.raises(ModelError, match="AFFECTEDGE_FACE_MODEL"):
        F.face_model_path()


def _offline(*a, **k):
    raise urllib.error.URLError("network is unreachable (simulated)")


def test_download_is_checksum_verified(monkeypatch, tmp_path, local_model):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("AFFECTEDGE_FACE_MODEL", raising=False)
    monkeypatch.setattr(F, "_shared_candidates", lambda: [])
    dest = tmp_path / "affectedge" / "models" / F.MODEL_FILE
    monkeypatch.setattr(F, "_urlopen", _offline)
    with pytest.raises(ModelError, match="cannot download.*offline"):
        F.face_model_path()
    with pytest.raises(ModelError, match="not in"):
        F.face_model_path(download=False)
    good = local_model.read_bytes()
    monkeypatch.setattr(F, "_urlopen", lambda url, timeout: io.BytesIO(good[:1000] + b"x" + good[1001:]))
    with pytest.raises(ModelError, match="sha256.*refused and removed"):
        F.face_model_path()
    assert not dest.exists() and not list(dest.parent.iterdir())  # nothing half-written left behind
    seen = []
    monkeypatch.setattr(F, "_urlopen", lambda url, timeout: seen.append(url) or io.BytesIO(good))
    assert F.face_model_path() == dest and F._sha256(dest) == F.MODEL_SHA256
    assert seen == [F.MODEL_URL]


# ------------------------------------------------------------------ extractor
def test_extractor_image_and_video_modes(sequence):
    frames = [F.load_image(p) for p in sequence]
    assert frames[0].shape == (48, 48) and frames[0].dtype == np.uint8
    with F.FaceLandmarks(mode="image") as ex:
        still = [ex.extract(f) for f in frames]
    assert all(r is not None for r in still)
    r = still[-1]
    assert r.blendshapes.shape == (52,) and r.landmarks.shape == (478, 3)
    assert 0 <= r.blendshapes.min() and r.blendshapes.max() <= 1
    assert r.blendshapes[F.BLENDSHAPE_NAMES.index("mouthSmileLeft")] > 0.3  # a happy face smiles
    xy = r.landmarks[:, :2]
    assert xy.min() > -5 and xy.max() < 53  # landmarks mapped back to the 48x48 input's pixels
    with F.FaceLandmarks(mode="video") as ex:
        video = [ex.extract(f, timestamp_ms=40 * i) for i, f in enumerate(frames)]
        with pytest.raises(ParameterError, match="increase"):
            ex.extract(frames[0], timestamp_ms=0)
    assert all(v is not None for v in video)
    assert np.abs(video[0].blendshapes - still[0].blendshapes).max() < 0.2
    rgb = np.repeat(frames[0][:, :, None], 3, axis=2)
    with F.FaceLandmarks() as ex:
        assert ex.extract(rgb) is not None  # (H, W, 3) RGB works too
    ex.close()  # closing twice is harmless
    with pytest.raises(ParameterError, match="closed"):
        ex.extract(rgb)


def test_pipeline_vector_and_no_face():
    pipe = F.BlendshapeFeatures()
    assert pipe.spec["model_sha256"] == F.MODEL_SHA256 and pipe.spec["geometry"] is True
    assert pipe.input_shape == (72,) and len(pipe.names) == 72
    blank = np.full((96, 96), 128, np.uint8)
    assert pipe.try_call(blank) is None
    with pytest.raises(F.NoFaceError, match="no face"):
        pipe(blank)
    assert isinstance(F.NoFaceError("x"), ParameterError)
    assert F.BlendshapeFeatures(geometry=False).input_shape == (52,)
    pipe.close()


@pytest.mark.parametrize("bad, msg", [
    (np.zeros((48, 48), np.float32), "uint8"),
    (np.zeros((48, 48, 2), np.uint8), "shape"),
    (np.zeros((8, 8), np.uint8), "16x16"),
    ([[0, 1], [2, 3]], "numpy"),
])
def test_bad_images(bad, msg):
    with F.BlendshapeFeatures() as pipe, pytest.raises(ParameterError, match=msg):
        pipe(bad)


def test_bad_image_file(tmp_path):
    (tmp_path / "x.png").write_bytes(b"not a png")
    with pytest.raises(ParameterError, match="decode"):
        F.load_image(tmp_path / "x.png")


def test_batch_cache_skips_mediapipe(tmp_path, sequence):
    blank = np.full((64, 64), 90, np.uint8)
    images = list(sequence) + [blank]
    pipe = F.BlendshapeFeatures()
    X1, found1 = pipe.batch(images, cache_dir=tmp_path, progress=False)
    assert pipe.last_batch_stats == {"images": 4, "cached": 0, "computed": 4} and pipe.calls == 4
    assert found1.tolist() == [True, True, True, False] and np.isnan(X1[3]).all()
    pipe2 = F.BlendshapeFeatures()
    X2, found2 = pipe2.batch(images, cache_dir=tmp_path, progress=False)
    assert pipe2.last_batch_stats["computed"] == 0 and pipe2.calls == 0  # MediaPipe never ran
    np.testing.assert_array_equal(found1, found2)
    np.testing.assert_allclose(X1[:3], X2[:3])
    # the same pixels give the same features live as from the cache
    np.testing.assert_allclose(pipe(F.load_image(sequence[0])), X2[0], atol=1e-5)
    # other extractor parameters use another cache entry
    F.BlendshapeFeatures(upscale=128).batch(images[:1], cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("blendshapes-*.npz"))) == 2


# --------------------------------------------------------------- training
@pytest.fixture(scope="session")
def trained(ck, tmp_path_factory):
    from affectedge.training import face as T

    out = tmp_path_factory.mktemp("face-expression")
    card = T.train(ck, out, quick=True, progress=False)
    return out, json.loads(card.read_text())


def test_quick_protocol_is_subject_independent_and_beats_chance(ck):
    from affectedge.training import face as T

    rep = T.evaluate_protocol(ck, "subject-kfold", quick=True, progress=False)
    assert rep["folds"] == 3 and all(f["subjects_overlap"] == 0 for f in rep["per_fold"])
    assert rep["n_images"] >= 200 and rep["detector_missed"] == 0
    assert rep["accuracy"] > 0.6  # chance is 1/7 (largest class ~0.25)
    assert rep["anchor_logreg_52_blendshapes"]["accuracy"] > 0.5
    assert rep["temporal_gru_sequences"]["frames_per_sequence"] == 3
    assert rep["accuracy_misses_as_errors"] <= rep["accuracy"] + 1e-9


def test_trained_model_loads_and_matches_card(trained, ck, sequence):
    from affectedge import models
    from affectedge.models import sha256_file

    out, card = trained
    labels = ["anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise"]
    assert card["labels"] == labels
    assert card["file_sha256"] == sha256_file(out / "model.onnx")
    assert card["input"]["pipeline"] == "face-blendshapes" and card["input"]["shape"] == [72]
    assert card["input"]["spec"]["model_sha256"] == F.MODEL_SHA256
    assert card["extra"]["onnx_max_abs_diff_vs_torch"] < 1e-4
    m = models.load(out)
    probs = m.predict_raw(F.load_image(sequence[-1]))["probabilities"]
    assert probs.shape == (1, 7) and abs(probs.sum() - 1) < 1e-4
    assert m.classify(m.pipeline(F.load_image(sequence[-1]))[None]) == ["happiness"]
    sizes = [72] + card["extra"]["architecture"]["hidden"] + [7]
    assert card["parameters"] == sum(a * b + b for a, b in zip(sizes, sizes[1:]))
    with pytest.raises(F.NoFaceError):
        m.predict_raw(np.full((96, 96), 128, np.uint8))


def test_temporal_model(trained, sequence):
    import onnxruntime as ort

    from affectedge.models import sha256_file

    out, card = trained
    t = card["extra"]["temporal"]
    assert t["sha256"] == sha256_file(out / t["file"]) and t["onnx_max_abs_diff_vs_torch"] < 1e-4
    sess = ort.InferenceSession(str(out / t["file"]), providers=["CPUExecutionProvider"])
    with F.BlendshapeFeatures(mode="video") as pipe:
        seq = np.stack([pipe(F.load_image(p), timestamp_ms=40 * i) for i, p in enumerate(sequence)])
    for x in (seq[None], seq[None, -1:], np.stack([seq, seq])):
        p = sess.run(None, {"frames": x.astype(np.float32)})[0]
        assert p.shape == (x.shape[0], 7) and np.allclose(p.sum(1), 1, atol=1e-4)
    assert card["labels"][int(p[0].argmax())] == "happiness"


def test_evaluate_model_on_folder_layout(trained, shared_data, tmp_path):
    from affectedge import models
    from affectedge.training import face as T

    fer = shared_data / "face" / "fer2013_val"
    for src, n in (("happy", 6), ("surprise", 4), ("neutral", 3)):  # neutral is not a class of the CK+ model
        (tmp_path / "val" / src).mkdir(parents=True)
        for p in sorted((fer / src).glob("*.jpg"))[:n]:
            shutil.copy(p, tmp_path / "val" / src / p.name)
    rep = T.evaluate_model(models.load(trained[0]), tmp_path, progress=False)
    assert rep["layout"] == "folder" and rep["shared_labels"] == ["happiness", "surprise"]
    assert rep["n_images"] == 10 and 0 <= rep["detector_missed"] <= 10
    assert rep["labels"] == ["happiness", "surprise"] and rep["ignored_data_images"] == {"neutral": 3}
    assert "anger" in rep["ignored_model_labels"]


def test_corpus_errors(tmp_path):
    from affectedge.training import face as T

    with pytest.raises(ParameterError, match="not a folder"):
        T.load_corpus(tmp_path / "missing")
    with pytest.raises(ParameterError, match="no face corpus"):
        T.load_corpus(tmp_path)
    (tmp_path / "happy").mkdir()
    with pytest.raises(ParameterError, match="holds no images"):
        T.train(tmp_path, tmp_path / "out", quick=True, progress=False)
    with pytest.raises(ParameterError, match="protocol"):
        T.evaluate_protocol(tmp_path, "loso")


def test_quick_fer_cv_counts_detector_misses(shared_data, tmp_path):
    from affectedge.training import face as T

    rep = T.evaluate_protocol(shared_data / "face" / "fer2013_val", "cv", quick=True, progress=False, out=tmp_path)
    assert rep["folds"] == 3 and rep["n_images"] == 300 and "neutral" in rep["labels"]
    assert 0 < rep["detector_missed"] == sum(rep["detector_missed_by_class"].values())
    assert rep["accuracy_misses_as_errors"] < rep["accuracy"]
    assert {p.name for p in tmp_path.iterdir()} == {"cv.json", "cv.png", "cv-anchor-logreg.png"}


def test_temporal_variant_loads_and_runs_on_a_real_sequence(shared_data):
    """The GRU over frame sequences ships beside the per-frame model (card extra.temporal)."""
    from affectedge import ModelError, models

    zoo = models.zoo_dir("face-expression")
    if not (zoo / "card.json").is_file():
        pytest.skip("face-expression is not built in this checkout (make models)")
    frame = models.load("face-expression")
    seq = models.load("face-expression", variant="temporal")
    frames = sorted((shared_data / "face" / "ckplus48" / "surprise").glob("*.png"))[:3]
    assert len({p.name.rsplit("_", 1)[0] for p in frames}) == 1  # one CK+ sequence
    import cv2

    feats = np.stack([frame.pipeline(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)) for p in frames])
    probs = seq.predict(feats[None])[seq.output_names[0]]
    assert probs.shape == (1, len(seq.labels)) and np.isclose(probs.sum(), 1.0, atol=1e-5)
    assert seq.labels[int(probs.argmax())] == "surprise"
    with pytest.raises(ModelError, match=r"has no variant 'bogus'.*offers \['temporal'\]"):
        models.load("face-expression", variant="bogus")
