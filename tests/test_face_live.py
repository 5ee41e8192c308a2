"""Face Landmarker LIVE_STREAM mode, and a clean interpreter exit for every program using face models.

Real MediaPipe model (../shared/models) on real CK+48 faces (../shared/data),
upscaled to 192x192 as a camera would deliver them; skipped when mediapipe,
OpenCV or the data are absent.
"""

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mediapipe")
cv2 = pytest.importorskip("cv2")

from affectedge.errors import ModelError, ParameterError  # noqa: E402
from affectedge.features import face as F  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_MODEL = REPO.parent / "shared" / "models" / F.MODEL_FILE
# Measured: a live_stream result equals the video-mode result on the same
# frames bit for bit (max |diff| 0.0 over 24 CK+ frames) when each frame is
# awaited before the next one; the tolerance only guards against float noise.
BS_ATOL = 1e-4
LM_ATOL_PX = 0.05


@pytest.fixture(scope="module")
def model():
    if not SHARED_MODEL.is_file():
        pytest.skip(f"{SHARED_MODEL} is not present")
    return SHARED_MODEL


@pytest.fixture(scope="module")
def frames(shared_data):
    """Two CK+ sequences (happy, surprise): 12 frames, 192x192 RGB."""
    ck = shared_data / "face" / "ckplus48"
    files = sorted((ck / "happy").glob("*.png"))[:6] + sorted((ck / "surprise").glob("*.png"))[:6]
    if len(files) < 12:
        pytest.skip("CK+48 images are missing")
    return [cv2.resize(cv2.cvtColor(F.load_image(p), cv2.COLOR_GRAY2RGB), (192, 192),
                       interpolation=cv2.INTER_CUBIC) for p in files]


def _live_one_by_one(lm, images, step_ms=100):
    out = []
    for k, img in enumerate(images):
        t = lm.submit(img, k * step_ms)
        got = lm.poll(timeout_s=5.0)
        assert [ts for ts, _ in got] == [t]
        out.append(got[0][1])
    return out


def test_live_stream_matches_video_mode(model, frames):
    with F.FaceLandmarks(mode="video", model_path=model) as v:
        ref = [v.extract(img, k * 100) for k, img in enumerate(frames)]
    with F.FaceLandmarks(mode="live_stream", model_path=model) as live:
        got = _live_one_by_one(live, frames)
        assert live.calls == len(frames) and live.pending() == 0 and live.dropped == 0
    assert all(r is not None for r in ref), "MediaPipe should find every CK+ face at 192x192"
    assert all(g is not None for g in got)
    for r, g in zip(ref, got):
        assert g.blendshapes.shape == (52,) and g.landmarks.shape == (478, 3)
        np.testing.assert_allclose(g.blendshapes, r.blendshapes, atol=BS_ATOL)
        np.testing.assert_allclose(g.landmarks, r.landmarks, atol=LM_ATOL_PX)
    happy = F.BLENDSHAPE_NAMES.index("mouthSmileLeft")
    jaw = F.BLENDSHAPE_NAMES.index("jawOpen")
    assert got[5].blendshapes[happy] > got[11].blendshapes[happy]  # the happy peak smiles more
    assert got[11].blendshapes[jaw] > got[5].blendshapes[jaw]  # the surprise peak opens the jaw


def test_live_stream_no_face_gives_none(model, frames):
    grey = np.full((192, 192, 3), 128, np.uint8)
    with F.FaceLandmarks(mode="live_stream", model_path=model) as live:
        assert live.poll() == []  # nothing submitted: returns at once
        got = _live_one_by_one(live, [grey, frames[0], grey])
    assert got[0] is None and got[1] is not None and got[2] is None


def test_live_stream_small_crops_map_back_to_input_pixels(model, shared_data):
    p = sorted((shared_data / "face" / "ckplus48" / "happy").glob("*.png"))[0]
    small = F.load_image(p)  # 48x48 grey: padded and upscaled inside, like image mode
    with F.FaceLandmarks(mode="image", model_path=model) as im:
        ref = im.extract(small)
    with F.FaceLandmarks(mode="live_stream", model_path=model) as live:
        (got,) = _live_one_by_one(live, [small])
    assert ref is not None and got is not None
    np.testing.assert_allclose(got.blendshapes, ref.blendshapes, atol=BS_ATOL)
    np.testing.assert_allclose(got.landmarks, ref.landmarks, atol=LM_ATOL_PX)
    assert 0 <= got.landmarks[:, 0].min() and got.landmarks[:, 0].max() <= 48


def test_live_stream_burst_drops_but_stays_ordered(model, frames):
    n = 30
    with F.FaceLandmarks(mode="live_stream", model_path=model, max_results=4) as live:
        t_sent = [live.submit(frames[k % len(frames)], 1000 + 10 * k) for k in range(n)]
        out = []
        deadline = time.monotonic() + 10
        while live.pending() and time.monotonic() < deadline:
            out += live.poll(timeout_s=0.5)
        out += live.poll()
        ts = [t for t, _ in out]
        assert ts == sorted(ts) and set(ts) <= set(t_sent)
        assert ts[-1] == t_sent[-1]  # the newest frame is always answered
        assert len(out) + live.dropped == n  # every frame is either answered or counted as dropped
        assert all(r is not None for _, r in out)


def test_live_stream_from_a_video_source(model, frames, tmp_path):
    """Frames of an ImageFolderSource, stamped by the source, drive the live landmarker."""
    from affectedge.sensors import ImageFolderSource

    for k, img in enumerate(frames[:4]):
        cv2.imwrite(str(tmp_path / f"f{k}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    results = []
    with ImageFolderSource(tmp_path, fps=30.0) as src, F.FaceLandmarks(mode="live_stream", model_path=model) as live:
        for frame in src:
            live.submit(frame.image, int(round(frame.t_s * 1000)))
            results += live.poll(timeout_s=5.0)
    assert [t for t, _ in results] == [0, 33, 67, 100]
    assert all(r is not None for _, r in results)


def test_live_stream_argument_errors(model, frames):
    with F.FaceLandmarks(mode="live_stream", model_path=model) as live:
        live.submit(frames[0], 100)
        with pytest.raises(ParameterError, match="must increase"):
            live.submit(frames[1], 100)
        with pytest.raises(ParameterError, match="must increase"):
            live.submit(frames[1], 50)
        assert live.submit(frames[1]) == 133  # no timestamp: 33 ms after the previous one
        with pytest.raises(ParameterError, match="live_stream"):
            live.extract(frames[0])
        with pytest.raises(ParameterError, match="uint8"):
            live.submit(frames[0].astype(np.float32), 200)
    with pytest.raises(ParameterError, match="closed"):
        live.submit(frames[0], 300)
    assert live.poll() == []  # results of a closed landmarker are gone, not an error
    with F.FaceLandmarks(mode="video", model_path=model) as v:
        with pytest.raises(ParameterError, match="live_stream"):
            v.submit(frames[0], 0)
        with pytest.raises(ParameterError, match="live_stream"):
            v.poll()
    with pytest.raises(ParameterError, match="mode"):
        F.FaceLandmarks(mode="stream", model_path=model)
    with pytest.raises(ParameterError, match="max_results"):
        F.FaceLandmarks(mode="live_stream", model_path=model, max_results=0)


def test_live_stream_callback_keeps_no_reference(model, frames):
    import gc
    import weakref

    live = F.FaceLandmarks(mode="live_stream", model_path=model)
    live.submit(frames[0], 0)
    live.poll(timeout_s=5.0)
    ref = weakref.ref(live)
    del live
    gc.collect()
    assert ref() is None  # MediaPipe's dispatcher holds only a weak proxy: GC closes the landmarker


# --------------------------------------------------------------- clean exit
_PROGRAM = textwrap.dedent("""
    import atexit, sys, threading
    import numpy as np
    import affectedge.features.face as F
    from affectedge.errors import ModelError
    if "--no-exit-hook" in sys.argv:
        F._HOOKED = True  # check the second line of defence alone (_close_quietly)
    img = F.load_image(sys.argv[1])
    feats = F.BlendshapeFeatures()
    assert feats.try_call(img) is not None
    atexit.register(feats.close)  # closing in an atexit handler used to print the __del__ traceback
    import affectedge.models as M
    model = M.load("face-expression")
    print(model.predict_raw(img)["probabilities"].shape)
    video = F.FaceLandmarks(mode="video")
    video.extract(img)
    atexit.register(video.close)
    live = F.FaceLandmarks(mode="live_stream")
    live.submit(img, 0)
    live.poll(timeout_s=5.0)
    live.submit(img, 40)  # left pending at exit
    cycle = F.FaceLandmarks(mode="image")
    cycle.me = cycle  # garbage only the final collection finds
    del cycle
    if "--late-thread" in sys.argv:
        late = F.BlendshapeFeatures()
        late.try_call(img)
        def work():
            import time
            time.sleep(0.3)  # the main thread has returned by now
            try:
                late.try_call(img)
                print("late call ran")
            except ModelError as exc:
                print("late call refused:", exc)
        threading.Thread(target=work).start()
    print("main done")
""")


@pytest.mark.parametrize("flags", [[], ["--no-exit-hook"], ["--late-thread"]])
def test_no_del_traceback_at_interpreter_exit(model, shared_data, flags, tmp_path):
    img = sorted((shared_data / "face" / "ckplus48" / "happy").glob("*.png"))[0]
    script = tmp_path / "uses_face.py"
    script.write_text(_PROGRAM)
    proc = subprocess.run([sys.executable, str(script), str(img), *flags], capture_output=True, text=True,
                          timeout=120, cwd=str(REPO))
    assert proc.returncode == 0, proc.stderr
    assert "main done" in proc.stdout
    assert "Exception ignored" not in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    if "--late-thread" in flags:
        assert "late call refused:" in proc.stdout and "join the threads" in proc.stdout, proc.stdout


def test_closed_at_exit_error_is_a_model_error(model, frames):
    lm = F.FaceLandmarks(mode="image", model_path=model)
    lm._close_at_exit()
    with pytest.raises(ModelError, match="shutting down"):
        lm.extract(frames[0])
