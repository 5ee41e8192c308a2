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


# ------------------------------------------------------------ aligned crops
def test_aligned_crop_puts_the_face_on_the_template(shared_data):
    """A face from a large frame, aligned, is found again with its eyes and mouth on the FER template."""
    import cv2

    img = F.load_image(sorted((shared_data / "face" / "ckplus48" / "happy").glob("*.png"))[0])
    # a 320x240 'camera frame': the face small, off-centre and rotated by 10 degrees
    frame = np.full((240, 320), 90, np.uint8)
    big = cv2.resize(img, (120, 120), interpolation=cv2.INTER_CUBIC)
    frame[40:160, 150:270] = big
    m = cv2.getRotationMatrix2D((210, 100), 10, 1.0)
    frame = cv2.warpAffine(frame, m, (320, 240), borderMode=cv2.BORDER_REPLICATE)
    with F.FaceLandmarks() as ex:
        r = ex.extract(frame)
        assert r is not None
        crop = F.aligned_crop(frame, r.landmarks)
        assert crop.shape == (48, 48) and crop.dtype == np.uint8
        again = ex.extract(crop)
    assert again is not None
    err = np.linalg.norm(F.align_points(again.landmarks) - np.array(F.FER_TEMPLATE), axis=1)
    assert err.max() < 2.5, err  # pixels of the 48x48 crop
    rgb = np.repeat(frame[:, :, None], 3, axis=2)
    np.testing.assert_array_equal(F.aligned_crop(rgb, r.landmarks), crop)


def test_pixel_pipeline_fallback_only_for_face_crops():
    pipe = F.FacePixels()
    assert pipe.input_shape == (1, 48, 48) and pipe.spec["crop_fallback"] is True
    crop = np.full((48, 48), 128, np.uint8)
    crop[10:20, 10:38] = 30
    x = pipe(crop)  # no face in it, but it is a 48x48 crop: classified whole
    assert pipe.last_fallback and x.shape == (1, 48, 48) and x.dtype == np.float32
    np.testing.assert_allclose(x[0], crop / 255.0, atol=1e-6)
    frame = np.full((240, 320), 128, np.uint8)
    assert pipe.try_call(frame) is None  # a camera frame without a face: no answer
    assert pipe.try_call(np.full((48, 48), 128, np.uint8)) is None  # a flat crop is no face either
    with pytest.raises(F.NoFaceError, match="no face"):
        pipe(frame)
    assert F.FacePixels(crop_fallback=False).try_call(crop) is None
    with pytest.raises(ParameterError, match="template"):
        F.FacePixels(template=[[1, 2]])
    pipe.close()


# --------------------------------------------------------------- training
def _tiny_root(dst, shared, n_train=25, n_val=8, ck_subjects=14):
    """A face root of symbolic links: a few FER2013 train / PublicTest images per class and 14 CK+ subjects."""
    for corpus, n in (("fer2013_train", n_train), ("fer2013_val", n_val)):
        for d in sorted((shared / "face" / corpus).iterdir()):
            (dst / corpus / d.name).mkdir(parents=True)
            for p in sorted(d.glob("*.jpg"))[:n]:
                (dst / corpus / d.name / p.name).symlink_to(p)
    ck = shared / "face" / "ckplus48"
    subjects = sorted({p.name[:4] for p in ck.glob("*/*.png")})[:ck_subjects - 2]
    subjects += sorted({p.name[:4] for p in (ck / "contempt").glob("*.png")} - set(subjects))[:2]
    for d in sorted(ck.iterdir()):
        (dst / "ckplus48" / d.name).mkdir(parents=True)
        for p in sorted(d.glob("*.png")):
            if p.name[:4] in subjects:
                (dst / "ckplus48" / d.name / p.name).symlink_to(p)
    return dst


@pytest.fixture(scope="session")
def tiny_root(shared_data, tmp_path_factory):
    # the quick base CNN is cached under the test session's own folder, never in the user's cache
    mp = pytest.MonkeyPatch()
    mp.setenv("AFFECTEDGE_FACE_PIXELS_CACHE", str(tmp_path_factory.mktemp("face-pixels-cache")))
    yield _tiny_root(tmp_path_factory.mktemp("face-root"), shared_data)
    mp.undo()


@pytest.fixture(scope="session")
def trained(tiny_root, tmp_path_factory):
    from affectedge.training import face as T

    out = tmp_path_factory.mktemp("face-expression")
    card = T.train(tiny_root, out, quick=True, progress=False)
    return out, json.loads(card.read_text())


def test_quick_protocol_is_subject_independent_and_scores_every_system(tiny_root, tmp_path):
    from affectedge.training import face as T

    rep = T.evaluate_protocol(tiny_root, "subject-kfold", quick=True, progress=False, out=tmp_path)
    assert rep["folds"] == 3 and all(f["subjects_overlap"] == 0 for f in rep["per_fold"])
    assert rep["evaluated_on"] == ["ckplus48"] and rep["extra_training_corpora"] == ["fer2013_train"]
    assert rep["ignored_images"]["contempt"] > 0 and "contempt" not in rep["labels"]
    assert set(rep["systems"]) == {"blendshapes", "anchor_logreg_52_blendshapes", "pixels", "fused"}
    assert rep["systems"]["blendshapes"]["accuracy_all_images"] > 0.5  # 6 CK+ classes, the largest ~0.25
    assert all(0 <= w <= 1 for w in rep["fusion"]["weights"])
    assert rep["sequences_frame_average"]["frames_per_sequence"] == 3
    for s in rep["systems"].values():
        assert s["accuracy_all_images"] <= s["accuracy_detected_faces"] + 1e-9
    assert {p.name for p in tmp_path.iterdir()} >= {"subject-kfold.json", "subject-kfold-fused.png"}


def test_quick_heldout_never_trains_on_publictest_and_counts_the_fallback(tiny_root):
    from affectedge.training import face as T

    rep = T.evaluate_protocol(tiny_root, "heldout", quick=True, progress=False)
    assert rep["evaluated_on"] == ["fer2013_val"] and "fer2013_val" not in rep["extra_training_corpora"]
    assert rep["n_images"] == 7 * 8 and rep["detector_missed"] > 0
    fb = rep["pixel_fallback"]
    assert 0 < fb["images"] <= rep["detector_missed"]
    px, bs = rep["systems"]["pixels"], rep["systems"]["blendshapes"]
    assert px["classified"] == rep["n_detected"] + fb["images"] and bs["classified"] == rep["n_detected"]


def test_trained_model_loads_and_matches_card(trained, sequence):
    from affectedge import models
    from affectedge.models import sha256_file

    out, card = trained
    labels = ["anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise"]
    assert card["labels"] == labels
    assert card["file_sha256"] == sha256_file(out / "model.onnx")
    assert card["input"]["pipeline"] == "face-blendshapes" and card["input"]["shape"] == [72]
    assert card["input"]["spec"]["model_sha256"] == F.MODEL_SHA256
    assert card["extra"]["onnx_max_abs_diff_vs_torch"] < 1e-4
    assert card["extra"]["internal_validation_images"] > 0 and "temporal" not in card["extra"]
    m = models.load(out)
    probs = m.predict_raw(F.load_image(sequence[-1]))["probabilities"]
    assert probs.shape == (1, 7) and abs(probs.sum() - 1) < 1e-4
    sizes = [72] + card["extra"]["architecture"]["hidden"] + [7]
    assert card["parameters"] == sum(a * b + b for a, b in zip(sizes, sizes[1:]))
    with pytest.raises(F.NoFaceError):
        m.predict_raw(np.full((96, 96), 128, np.uint8))


def test_quick_pixel_model_exports_and_runs(tiny_root, tmp_path, sequence):
    from affectedge import models
    from affectedge.training import face_pixels as P

    card = json.loads(P.train(tiny_root, tmp_path, quick=True, progress=False).read_text())
    assert card["labels"] == list(P.LABELS) and card["input"]["pipeline"] == "face-pixels"
    assert card["input"]["shape"] == [1, 48, 48] and card["extra"]["onnx_max_abs_diff_vs_torch"] < 1e-4
    assert 0 <= card["extra"]["fusion"]["weight_pixels"] <= 1
    m = models.load(tmp_path)
    p = m.predict_raw(F.load_image(sequence[-1]))["probabilities"]
    assert p.shape == (1, 7) and np.isclose(p.sum(), 1, atol=1e-4)
    with pytest.raises(F.NoFaceError):
        m.predict_raw(np.full((200, 200), 128, np.uint8))
    with pytest.raises(ParameterError, match="fer2013_train"):
        P.train(tiny_root / "ckplus48", tmp_path / "x", quick=True, progress=False)


def test_evaluate_model_on_folder_layout(trained, shared_data, tmp_path):
    from affectedge import models
    from affectedge.training import face as T

    fer = shared_data / "face" / "fer2013_val"
    for src, n in (("happy", 6), ("surprise", 4)):
        (tmp_path / "val" / src).mkdir(parents=True)
        for p in sorted((fer / src).glob("*.jpg"))[:n]:
            shutil.copy(p, tmp_path / "val" / src / p.name)
    rep = T.evaluate_model(models.load(trained[0]), tmp_path, progress=False)
    assert rep["layout"] == "folder" and rep["shared_labels"] == ["happiness", "surprise"]
    assert rep["n_images"] == 10 and 0 <= rep["detector_missed"] <= 10
    assert "anger" in rep["ignored_model_labels"] and "neutral" in rep["ignored_model_labels"]


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


def test_heldout_needs_an_evaluation_only_corpus(shared_data):
    from affectedge.training import face as T

    with pytest.raises(ParameterError, match="evaluation-only"):
        T.evaluate_protocol(shared_data / "face" / "ckplus48", "heldout", quick=True, progress=False)


# ------------------------------------------------------------ shipped models
def _zoo_or_skip(model_id):
    from affectedge import models

    if not (models.zoo_dir(model_id) / "card.json").is_file():
        pytest.skip(f"{model_id} is not built in this checkout (make models)")
    return models.load(model_id)


def test_shipped_pixel_model_reads_publictest_faces(shared_data):
    """The zoo CNN on 10 PublicTest images per class (never trained on): well above chance (0.25)."""
    m = _zoo_or_skip("face-expression-pixels")
    fer = shared_data / "face" / "fer2013_val"
    paths, y = [], []
    for d in sorted(fer.iterdir()):
        lab = {"angry": "anger", "happy": "happiness", "sad": "sadness"}.get(d.name, d.name)
        for p in sorted(d.glob("*.jpg"))[:10]:
            paths.append(p)
            y.append(m.labels.index(lab))
    X, found, fb = m.pipeline.batch(paths, progress=False)
    ok = found | fb
    assert ok.all()  # every 48x48 crop gets an answer: a face or the fallback
    p = m.predict(X)[m.output_names[0]]
    assert np.all(np.isfinite(p)) and np.allclose(p.sum(1), 1, atol=1e-4)
    assert np.mean(p.argmax(1) == np.array(y)) > 0.5
