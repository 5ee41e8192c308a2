"""Video sources: image folders, video files, cameras (absent here), open_video specs.

Runs on real CK+48 faces from ../shared/data (copied into tmp_path; skipped
when absent). The video file is written by the test with OpenCV (MJPG .avi)
from CK+ images upscaled to 192x192. There is no camera on the test machines:
the camera tests check the errors, and the capture thread, queue and
reconnect logic run on a video file opened as if it were a device.
"""

import shutil
import time

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from affectedge.errors import ParameterError, SensorError  # noqa: E402
from affectedge.sensors import (  # noqa: E402
    CameraSource,
    Clock,
    EndOfStream,
    ImageFolderSource,
    VideoFileSource,
    VideoFrame,
    list_cameras,
    open_video,
)

FPS = 10.0
SIDE = 192


@pytest.fixture(scope="module")
def ck_files(shared_data):
    files = sorted((shared_data / "face" / "ckplus48" / "happy").glob("*.png"))
    if len(files) < 9:
        pytest.skip("CK+48 happy images are missing")
    return files[:9]


@pytest.fixture
def folder(tmp_path, ck_files):
    """6 CK+ images (2 in a subfolder), one corrupt .png and one unrelated file."""
    root = tmp_path / "faces"
    (root / "sub").mkdir(parents=True)
    for p in ck_files[:4]:
        shutil.copy(p, root / p.name)
    for p in ck_files[4:6]:
        shutil.copy(p, root / "sub" / p.name)
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    (root / "notes.txt").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def video(tmp_path_factory, ck_files):
    """An MJPG .avi at 10 fps: 9 CK+ frames upscaled to 192x192; returns (path, RGB frames written)."""
    path = tmp_path_factory.mktemp("video") / "faces.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (SIDE, SIDE))
    assert w.isOpened()
    frames = []
    for p in ck_files:
        rgb = cv2.cvtColor(cv2.resize(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE), (SIDE, SIDE),
                                      interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2RGB)
        rgb[:16, :16] = (255, 0, 0)  # a red corner tells RGB from BGR
        frames.append(rgb)
        w.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    w.release()
    return path, frames


# ------------------------------------------------------------- image folder
def test_image_folder_frames_names_times_and_skipped_file(folder):
    src = ImageFolderSource(folder, fps=4.0)
    assert len(src) == 7  # 6 images + broken.png; notes.txt is not an image
    with src:
        frames = list(src)
        with pytest.raises(EndOfStream):
            src.read()
    assert len(frames) == 6
    names = [f.name for f in frames]
    assert names == sorted(names) and "sub/" + names[-1].split("/")[-1] == names[-1]
    assert all(isinstance(f, VideoFrame) for f in frames)
    assert [f.index for f in frames] == list(range(6))
    assert [f.t_s for f in frames] == [i / 4.0 for i in range(6)]
    for f in frames:
        assert f.image.dtype == np.uint8 and f.image.shape == (48, 48, 3) and f.image.flags.c_contiguous
        assert np.array_equal(f.image[..., 0], f.image[..., 2])  # grey converted to RGB
    stats = src.stats.snapshot()
    assert stats["delivered"] == 6 and stats["dropped"] == 1 and src.skipped == 1
    assert "broken.png" in stats["last_error"]
    assert np.array_equal(frames[0].image[..., 0], cv2.imread(str(folder / names[0]), cv2.IMREAD_GRAYSCALE))


def test_image_folder_options(folder, tmp_path):
    with ImageFolderSource(folder, recursive=False) as src:
        assert [f.name for f in src] == sorted(p.name for p in folder.glob("S*.png"))
    with ImageFolderSource(folder, pattern="sub/*.png") as src:
        assert len(list(src)) == 2
    with ImageFolderSource(folder, fps=100.0, loop=True) as src:
        frames = [src.read() for _ in range(15)]
    assert [f.index for f in frames] == list(range(15))
    assert np.all(np.diff([f.t_s for f in frames]) > 0)
    assert frames[6].name == frames[0].name  # started over (6 readable images)
    clock = Clock()
    t0 = time.monotonic()
    with ImageFolderSource(folder, fps=20.0, realtime=True, clock=clock) as src:
        n = len(list(src))
    assert n == 6 and time.monotonic() - t0 >= 5 / 20.0 - 0.02  # paced: last frame 0.25 s after the first

    (tmp_path / "empty").mkdir()
    with pytest.raises(ParameterError, match="no files"):
        ImageFolderSource(tmp_path / "empty")
    with pytest.raises(ParameterError, match="does not exist"):
        ImageFolderSource(tmp_path / "missing")
    with pytest.raises(ParameterError, match="fps"):
        ImageFolderSource(folder, fps=0)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.png").write_bytes(b"nope")
    with ImageFolderSource(tmp_path / "bad", loop=True) as src, pytest.raises(SensorError, match="could be decoded"):
        src.read()


# --------------------------------------------------------------- video file
def test_video_file_frames_media_time_and_end(video):
    path, written = video
    clock = Clock()
    src = VideoFileSource(path, clock=clock)
    with src:
        frames = list(src)
        with pytest.raises(EndOfStream):
            src.read()
    assert src.fps == FPS and src.frame_count == len(written)
    assert len(frames) == len(written)
    assert [f.index for f in frames] == list(range(len(written)))
    t = np.array([f.t_s for f in frames])
    assert t[0] == 0.0 and np.all(np.diff(t) > 0)
    assert np.allclose(t, np.arange(len(written)) / FPS, atol=1e-6)
    for f, ref in zip(frames, written):
        assert f.image.shape == (SIDE, SIDE, 3) and f.image.dtype == np.uint8 and f.name == str(path)
        assert np.abs(f.image.astype(int) - ref).mean() < 4  # MJPG is lossy
        r, g, b = f.image[4, 4]
        assert r > 200 and g < 60 and b < 60  # RGB order, not BGR
    assert src.stats.snapshot()["delivered"] == len(written)
    with pytest.raises(SensorError, match="closed"):
        src.read()


def test_video_file_every_n_and_realtime(video):
    path, written = video
    with VideoFileSource(path, every_n=3) as src:
        frames = list(src)
    assert [f.index for f in frames] == [0, 3, 6]
    assert np.allclose([f.t_s for f in frames], [0.0, 0.3, 0.6], atol=1e-6)
    t0 = time.monotonic()
    with VideoFileSource(path, realtime=True) as src:
        n = len(list(src))
    elapsed = time.monotonic() - t0
    assert n == len(written) and 0.8 - 0.03 <= elapsed < 3.0  # the last frame sits at 0.8 s


def test_video_file_errors(tmp_path):
    bad = tmp_path / "garbage.avi"
    bad.write_bytes(b"definitely not a video" * 100)
    with pytest.raises(ParameterError, match="garbage.avi"):
        VideoFileSource(bad).open()
    with pytest.raises(ParameterError, match="missing.mp4"):
        VideoFileSource(tmp_path / "missing.mp4").open()
    with pytest.raises(ParameterError, match="every_n"):
        VideoFileSource(bad, every_n=0)


# ------------------------------------------------------------------ cameras
@pytest.mark.parametrize("target", [7, "/dev/video99"])
def test_missing_camera_raises_quickly_with_remedy(target, capfd):
    path = target if isinstance(target, str) else f"/dev/video{target}"
    if __import__("os").path.exists(path):
        pytest.skip(f"{path} exists on this machine")
    t0 = time.monotonic()
    src = CameraSource(target)
    with pytest.raises(SensorError) as err:
        src.open()
    assert time.monotonic() - t0 < 3.0
    msg = str(err.value)
    assert str(target) in msg and ("no camera was found" in msg or "cameras found" in msg)
    assert "camera:N" in msg and "stream URL" in msg  # the remedy
    src.close()  # closing a source that never opened is fine
    assert "WARN" not in capfd.readouterr().err


def test_list_cameras_is_quiet_and_fast(capfd):
    t0 = time.monotonic()
    cams = list_cameras()
    assert time.monotonic() - t0 < 5.0
    assert isinstance(cams, list)
    for c in cams:
        assert set(c) == {"index", "path", "width", "height"}
    err = capfd.readouterr().err
    assert "WARN" not in err and "ERROR" not in err
    with pytest.raises(ParameterError):
        list_cameras(0)


def test_camera_capture_thread_queue_reconnect_and_close(video):
    """A video file opened as a 'device': it ends after 9 frames, like a lost camera, and is reopened."""
    path, written = video
    clock = Clock()
    src = CameraSource(str(path), clock=clock, queue_frames=2, backoff_s=(0.05,))
    with src:
        assert src.name.startswith(f"camera:{path}") and "192x192" in src.name
        first = src.read(timeout_s=5.0)
        assert first is not None and first.image.shape == (SIDE, SIDE, 3)
        deadline = time.monotonic() + 10
        while src.stats.reconnects < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        frames = [src.read(timeout_s=5.0) for _ in range(4)]
        thread = src._thread
    assert not thread.is_alive() and src._cap is None  # close() joined the thread and released the capture
    stats = src.stats.snapshot()
    assert stats["reconnects"] >= 2 and len(stats["gaps"]) >= 1
    assert all(0 <= s <= e for s, e in stats["gaps"])
    assert stats["dropped"] > 0  # the consumer slept: only the 2 newest frames were kept
    ts = [first.t_s] + [f.t_s for f in frames]
    idx = [first.index] + [f.index for f in frames]
    assert np.all(np.diff(ts) >= 0) and np.all(np.diff(idx) > 0)
    assert 0 <= ts[0] <= clock.now_s()  # stamped on the session clock at capture
    r, g, b = frames[-1].image[4, 4]
    assert r > 200 and b < 60
    with pytest.raises(SensorError, match="closed"):
        src.read()


def test_camera_without_reconnect_reports_the_loss(video):
    path, written = video
    with CameraSource(str(path), reconnect=False, queue_frames=64) as src:
        got = []
        with pytest.raises(SensorError, match="stopped delivering"):
            while True:
                f = src.read(timeout_s=5.0)
                assert f is not None
                got.append(f)
    assert len(got) == len(written)  # every queued frame is delivered before the error


def test_camera_parameter_errors(tmp_path):
    with pytest.raises(ParameterError):
        CameraSource(-1)
    with pytest.raises(ParameterError):
        CameraSource(0, queue_frames=0)
    with pytest.raises(ParameterError):
        CameraSource(0, width=-5)
    with pytest.raises(ParameterError):
        CameraSource(0, backoff_s=())
    text = tmp_path / "not_a_camera.txt"
    text.write_text("x")
    with pytest.raises(SensorError, match="cannot open"):
        CameraSource(str(text)).open()


# --------------------------------------------------------------- open_video
def test_open_video_specs(video, folder):
    path, _ = video
    clock = Clock()
    cases = {
        "camera": 0,
        "camera:2": 2,
        "CAMERA:11": 11,
        "rtsp://192.168.1.20:554/stream1": "rtsp://192.168.1.20:554/stream1",
        "http://cam.local/video.mjpg": "http://cam.local/video.mjpg",
        "/dev/video3": "/dev/video3",
        "camera:/dev/video1": "/dev/video1",
        4: 4,
    }
    for spec, target in cases.items():
        src = open_video(spec, clock=clock)
        assert isinstance(src, CameraSource) and src.target == target and src.clock is clock, spec
    v = open_video(str(path), every_n=2)
    assert isinstance(v, VideoFileSource) and v.every_n == 2
    f = open_video(folder, fps=5.0, clock=clock)
    assert isinstance(f, ImageFolderSource) and f.fps == 5.0 and f.clock is clock
    cam = open_video("camera:1", queue_frames=8, reconnect=False)
    assert cam.queue_frames == 8 and not cam.reconnect


@pytest.mark.parametrize("spec, match", [
    ("webcam", "accepted forms"),
    ("camera:front", "camera index"),
    ("ftp://host/video.mp4", "unsupported URL scheme"),
    ("", "not understood"),
    (None, "not understood"),
    (3.5, "not understood"),
    ("/no/such/file.mp4", "accepted forms"),
])
def test_open_video_bad_specs(spec, match):
    with pytest.raises(ParameterError, match=match) as err:
        open_video(spec)
    assert repr(spec) in str(err.value)


def test_open_video_bad_options_and_single_image(folder):
    with pytest.raises(ParameterError, match="does not take every_n"):
        open_video(folder, every_n=2)
    one = next(folder.glob("S*.png"))
    with pytest.raises(ParameterError, match="single image"):
        open_video(one)
