"""Video sources: cameras and network streams, video files, folders of images.

All three deliver :class:`~affectedge.sensors.VideoFrame` packets (RGB uint8
(H, W, 3), ``t_s`` on the session :class:`~affectedge.sensors.Clock`) through
the common :class:`~affectedge.sensors.Source` protocol:

* :class:`CameraSource` -- an OpenCV ``VideoCapture`` on a camera index, a
  device path (``/dev/video2``) or a stream URL (``rtsp://``, ``http://``). A
  capture thread grabs frames, stamps each on the clock at capture, converts
  BGR to RGB and keeps the newest ``queue_frames`` (the oldest is dropped and
  counted when the consumer falls behind). A lost device is reopened with
  back-off; the time without frames is recorded in ``stats.gaps``.
* :class:`VideoFileSource` -- the frames of a video file stamped with their
  media time; ``realtime=True`` paces them to the clock.
* :class:`ImageFolderSource` -- the images of a folder (sorted by path) as
  frames ``1 / fps`` seconds apart; unreadable files are skipped and counted.

:func:`open_video` turns a command-line spec (``camera``, ``camera:1``, a URL,
a file, a folder) into one of these; :func:`list_cameras` probes the video
devices. OpenCV (``affectedge[face]``) is imported only when a source opens.
Its warnings are silenced while probing devices, so that a missing camera
yields one clear :class:`~affectedge.errors.SensorError`, not a page of logs.
"""

import contextlib
import fnmatch
import inspect
import os
import sys
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np

from affectedge._optional import require
from affectedge.errors import ParameterError, SensorError
from affectedge.sensors._base import EndOfStream, Source, VideoFrame

__all__ = ["CameraSource", "ImageFolderSource", "VideoFileSource", "list_cameras", "open_video"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts")
URL_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")
_SPEC_FORMS = ("'camera' (the first camera), 'camera:N' (camera index N), '/dev/videoN', "
               "a stream URL (rtsp://, http://, ...), a video file path, or a folder of images")


def _cv2(purpose):
    return require("cv2", "face", purpose)


@contextlib.contextmanager
def _quiet_opencv(cv2):
    """Silence OpenCV's own log (V4L2 / FFmpeg backend warnings) for the block."""
    log = getattr(getattr(cv2, "utils", None), "logging", None)
    if log is None:
        yield
        return
    previous = log.getLogLevel()
    log.setLogLevel(log.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        log.setLogLevel(previous)


def _to_rgb(cv2, frame):
    """An OpenCV frame (BGR, BGRA or grey; any depth) -> contiguous RGB uint8 (H, W, 3)."""
    if frame.dtype != np.uint8:
        frame = (frame / 257).astype(np.uint8) if frame.dtype == np.uint16 else frame.astype(np.uint8)
    if frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 1):
        return cv2.cvtColor(frame.reshape(frame.shape[:2]), cv2.COLOR_GRAY2RGB)
    code = cv2.COLOR_BGRA2RGB if frame.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return np.ascontiguousarray(cv2.cvtColor(frame, code))


# ------------------------------------------------------------------ cameras
def _device_paths():
    """Existing /dev/videoN nodes as (N, path), by N (Linux); [] elsewhere or when there are none."""
    out = []
    for p in Path("/dev").glob("video*"):
        suffix = p.name[len("video"):]
        if suffix.isdigit():
            out.append((int(suffix), str(p)))
    return sorted(out)


def list_cameras(max_index=8):
    """The cameras OpenCV can open: a list of ``dict(index, path, width, height)``.

    On Linux only the existing ``/dev/video0`` .. ``/dev/video{max_index-1}``
    nodes are probed (V4L2 metadata nodes, which deliver no frames, are
    left out); elsewhere indices 0 .. max_index-1 are tried. OpenCV's warnings
    are silenced while probing; returns ``[]`` when there is no camera.
    """
    if int(max_index) < 1:
        raise ParameterError(f"max_index must be at least 1, got {max_index!r}")
    cv2 = _cv2("listing cameras")
    linux = sys.platform.startswith("linux")
    if linux:
        candidates = [(i, p) for i, p in _device_paths() if i < int(max_index)]
    else:
        candidates = [(i, "") for i in range(int(max_index))]
    found = []
    with _quiet_opencv(cv2):
        for index, path in candidates:
            cap = cv2.VideoCapture(index, cv2.CAP_V4L2) if linux else cv2.VideoCapture(index)
            try:
                if not cap.isOpened():
                    continue
                w = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
                h = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
                if w <= 0 or h <= 0:
                    continue
                found.append({"index": index, "path": path, "width": w, "height": h})
            finally:
                cap.release()
    return found


def _cameras_text(cams):
    if not cams:
        return "no camera was found (no openable /dev/video* device)"
    return "cameras found: " + ", ".join(f"{c['index']} ({c['path'] or 'index'} {c['width']}x{c['height']})"
                                         for c in cams)


class CameraSource(Source):
    """Frames of a camera or a network stream, stamped on the clock at capture.

    ``index_or_url``: a camera index (0, 1, ...), a device path
    (``/dev/video2``) or a stream URL (``rtsp://...``, ``http://...``).
    ``width`` / ``height`` / ``fps`` are requested from the driver (it may
    choose the nearest mode it has). A capture thread keeps the newest
    ``queue_frames`` frames; older ones are dropped and counted in
    ``stats.dropped``. When the device stops delivering, ``reconnect=True``
    reopens it after the delays in ``backoff_s`` (the last delay repeats) and
    records the time without frames in ``stats.gaps``; with
    ``reconnect=False``, ``read`` raises :class:`SensorError` once the
    remaining frames are consumed. A camera index that does not exist raises
    :class:`SensorError` at :meth:`open`, naming the cameras found.
    """

    modality = "video"

    def __init__(self, index_or_url=0, *, clock=None, width=None, height=None, fps=None, queue_frames=4,
                 reconnect=True, backoff_s=(0.5, 1, 2, 4)):
        super().__init__(clock)
        self.target = _camera_target(index_or_url)
        for label, v in (("width", width), ("height", height), ("fps", fps)):
            if v is not None and not (isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0):
                raise ParameterError(f"{label} must be a positive number or None, got {v!r}")
        if not (isinstance(queue_frames, int) and queue_frames >= 1):
            raise ParameterError(f"queue_frames must be an integer >= 1, got {queue_frames!r}")
        backoff = tuple(backoff_s) if not isinstance(backoff_s, (int, float)) else (backoff_s,)
        if not backoff or any(not isinstance(b, (int, float)) or b < 0 for b in backoff):
            raise ParameterError(f"backoff_s must be a sequence of delays >= 0 in seconds, got {backoff_s!r}")
        self.width, self.height, self.fps = width, height, fps
        self.queue_frames, self.reconnect, self.backoff_s = int(queue_frames), bool(reconnect), backoff
        self.name = f"camera:{self.target}"
        self._frames = deque()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = None
        self._cap = None
        self._fatal = None  # message when the device is gone for good
        self._index = 0

    # -------------------------------------------------------------- opening
    def _open(self):
        cv2 = _cv2("camera capture")
        cap = self._open_capture(cv2, first=True)
        self._cap = cap
        w = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        h = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.name = f"camera:{self.target} ({w}x{h}" + (f" @ {fps:g} fps)" if fps and fps > 0 else ")")
        self._thread = threading.Thread(target=self._capture_loop, args=(cv2,), name=f"affectedge-{self.name}",
                                        daemon=True)
        self._thread.start()

    def _open_capture(self, cv2, first):
        target = self.target
        is_url = isinstance(target, str) and target.lower().startswith(URL_SCHEMES)
        if not is_url and sys.platform.startswith("linux"):
            path = f"/dev/video{target}" if isinstance(target, int) else target
            if not os.path.exists(path):
                if not first:
                    return None
                raise SensorError(
                    f"camera {target!r} does not exist ({path} is missing); {_cameras_text(list_cameras())}. "
                    "Plug the camera in, pass one of the indices found (camera:N), a stream URL "
                    "(rtsp://...) or a video file instead"
                )
        with _quiet_opencv(cv2):
            if is_url:
                params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 5000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 5000]
                cap = cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)
            elif isinstance(target, int) and sys.platform.startswith("linux"):
                cap = cv2.VideoCapture(target, cv2.CAP_V4L2)
            else:
                cap = cv2.VideoCapture(target)
            if not cap.isOpened():
                cap.release()
                if not first:
                    return None
                if is_url:
                    raise SensorError(f"cannot open the video stream {target!r} (no answer within 5 s or not a "
                                      "stream FFmpeg can decode); check the URL, the network and the credentials")
                raise SensorError(
                    f"camera {target!r} exists but OpenCV cannot open it; {_cameras_text(list_cameras())}. "
                    "Close other programs that use it, check your permissions on the device (e.g. join the "
                    "'video' group), or pass another camera index"
                )
            if self.width:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, float(self.width))
            if self.height:
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, float(self.height))
            if self.fps:
                cap.set(cv2.CAP_PROP_FPS, float(self.fps))
        return cap

    # ------------------------------------------------------------- capturing
    def _capture_loop(self, cv2):
        cap = self._cap
        lost_at = None
        try:
            while not self._stop.is_set():
                ok = cap is not None and cap.grab()
                t = self.clock.now_s()
                frame = None
                if ok:
                    ok, frame = cap.retrieve()
                if not ok or frame is None:
                    if self._stop.is_set():
                        break
                    lost_at = t if lost_at is None else lost_at
                    self.stats.last_error = f"{self.name}: no frame from the device"
                    if not self.reconnect:
                        self._fail(f"{self.name} stopped delivering frames (device lost or stream ended); "
                                   "reconnect it and open a new CameraSource, or use reconnect=True")
                        break
                    if cap is not None:
                        cap.release()
                    cap = self._reconnect(cv2)
                    self._cap = cap
                    if cap is None:
                        break  # stopped while waiting
                    continue
                if lost_at is not None:
                    self.stats.add_gap(lost_at, t)
                    lost_at = None
                self._push(VideoFrame(_to_rgb(cv2, frame), t, self._index, ""))
                self._index += 1
        except Exception as exc:  # the capture thread must not die silently
            self._fail(f"{self.name}: capture failed: {exc}")
        finally:
            if cap is not None:
                cap.release()
            self._cap = None

    def _reconnect(self, cv2):
        attempt = 0
        while not self._stop.is_set():
            delay = self.backoff_s[min(attempt, len(self.backoff_s) - 1)]
            if self._stop.wait(delay):
                return None
            attempt += 1
            try:
                cap = self._open_capture(cv2, first=False)
            except Exception as exc:
                self.stats.last_error = f"{self.name}: reconnect {attempt} failed: {exc}"
                cap = None
            if cap is not None:
                with self.stats._lock:
                    self.stats.reconnects += 1
                return cap
            self.stats.last_error = f"{self.name}: reconnect attempt {attempt} failed; retrying"
        return None

    def _push(self, frame):
        with self._cond:
            if len(self._frames) >= self.queue_frames:
                self._frames.popleft()
                with self.stats._lock:
                    self.stats.dropped += 1
            self._frames.append(frame)
            self._cond.notify_all()

    def _fail(self, msg):
        with self._cond:
            self._fatal = msg
            self.stats.last_error = msg
            self._cond.notify_all()

    # --------------------------------------------------------------- reading
    def _read(self, timeout_s):
        deadline = time.monotonic() + max(0.0, float(timeout_s or 0))
        with self._cond:
            while not self._frames:
                if self._fatal is not None:
                    raise SensorError(self._fatal)
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            return self._frames.popleft()

    def _close(self):
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)  # a read blocked in the driver returns within its timeout
        if self._thread is None or not self._thread.is_alive():
            if self._cap is not None:
                self._cap.release()
                self._cap = None


def _camera_target(spec):
    if isinstance(spec, bool):
        raise ParameterError(f"camera must be an index, a device path or a stream URL, got {spec!r}")
    if isinstance(spec, (int, np.integer)):
        if spec < 0:
            raise ParameterError(f"camera index must be >= 0, got {spec}")
        return int(spec)
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if isinstance(spec, str) and spec.strip():
        s = spec.strip()
        if s.isdigit():
            return int(s)
        return s
    raise ParameterError(f"camera must be an index (0, 1, ...), a device path (/dev/video0) or a stream URL "
                         f"(rtsp://...), got {spec!r}")


# --------------------------------------------------------------- video files
class VideoFileSource(Source):
    """The frames of a video file, stamped with their media time.

    ``t_s`` is the frame's position in the file (OpenCV's
    ``CAP_PROP_POS_MSEC``; ``index / fps`` when the container has no
    timestamps); ``index`` is the frame's number in the file. ``every_n``
    keeps one frame in n (the others are skipped without decoding).
    ``realtime=True`` paces delivery so that media time follows the clock
    from the first read on. :class:`EndOfStream` at the end of the file;
    a file OpenCV cannot decode raises :class:`ParameterError` naming it.
    """

    modality = "video"

    def __init__(self, path, *, clock=None, realtime=False, every_n=1):
        super().__init__(clock)
        self.path = Path(path)
        if not (isinstance(every_n, int) and not isinstance(every_n, bool) and every_n >= 1):
            raise ParameterError(f"every_n must be an integer >= 1 (keep one frame in n), got {every_n!r}")
        self.realtime, self.every_n = bool(realtime), int(every_n)
        self.name = f"video:{self.path}"
        self.fps = None
        self.frame_count = None
        self._cap = None
        self._next = 0  # index of the next frame in the file
        self._origin = None  # clock time of media time 0 (realtime)
        self._last_t = -1.0
        self._use_pos = True

    def _open(self):
        cv2 = _cv2("reading video files")
        if not self.path.is_file():
            raise ParameterError(f"video file {str(self.path)!r} does not exist or is not a file; "
                                 "give the path of a video OpenCV can read (.mp4, .avi, .mkv, ...)")
        with _quiet_opencv(cv2):
            cap = cv2.VideoCapture(str(self.path))
            ok = cap.isOpened()
            if ok:
                ok, first = cap.read()
        if not ok:
            cap.release()
            raise ParameterError(f"cannot read video file {str(self.path)!r}: OpenCV/FFmpeg cannot decode it "
                                 "(truncated file, unsupported codec, or not a video); re-encode it (e.g. "
                                 "ffmpeg -i in -c:v libx264 out.mp4) or pass a folder of images")
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and np.isfinite(fps) and fps > 0 else 30.0
        n = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self.frame_count = int(n) if n and np.isfinite(n) and n > 0 else None
        self._cap = cap
        self._cv2 = cv2
        self._first = first
        self.name = f"video:{self.path.name} ({first.shape[1]}x{first.shape[0]} @ {self.fps:g} fps)"

    def _media_time(self, index):
        t = None
        if self._use_pos:
            pos = self._cap.get(self._cv2.CAP_PROP_POS_MSEC)
            if pos is not None and np.isfinite(pos) and (pos / 1000.0 > self._last_t or index == 0):
                t = pos / 1000.0
            else:  # no usable timestamps in this container: count frames from here on
                self._use_pos = False
        if t is None:
            t = index / self.fps
            if t <= self._last_t:
                t = self._last_t + 1.0 / self.fps
        self._last_t = t
        return t

    def _read(self, timeout_s):
        cap = self._cap
        if cap is None:
            raise EndOfStream(self.name)
        if self._first is not None:
            frame, self._first = self._first, None
        else:
            while (self._next % self.every_n) != 0:  # skip without decoding
                if not cap.grab():
                    raise EndOfStream(self.name)
                self._next += 1
            ok, frame = cap.read()
            if not ok or frame is None:
                raise EndOfStream(self.name)
        index = self._next
        self._next += 1
        t = self._media_time(index)
        if self.realtime:
            if self._origin is None:
                self._origin = self.clock.now_s() - t
            self.clock.sleep_until(self._origin + t)
        return VideoFrame(_to_rgb(self._cv2, frame), t, index, str(self.path))

    def _close(self):
        if self._cap is not None:
            self._cap.release()
            self._cap = None


# ------------------------------------------------------------- image folders
class ImageFolderSource(Source):
    """The images of a folder as frames ``1 / fps`` seconds apart.

    Files ending in .png, .jpg, .jpeg or .bmp (or matching the glob
    ``pattern``, e.g. ``"S010_*.png"``), in subfolders too when
    ``recursive``, sorted by relative path. Frames are RGB uint8 (grey and
    RGBA images are converted); ``t_s = index / fps`` where ``index`` counts
    the frames delivered; ``name`` is the file's path relative to the folder.
    A file that cannot be decoded is skipped, counted in ``stats.dropped`` and
    ``skipped``, and named in ``stats.last_error``. ``realtime=True`` paces
    delivery to the clock. :class:`EndOfStream` after the last image, unless
    ``loop`` starts over.
    """

    modality = "video"

    def __init__(self, path, *, fps=2.0, clock=None, realtime=False, pattern=None, recursive=True, loop=False):
        super().__init__(clock)
        self.path = Path(path)
        if not (isinstance(fps, (int, float)) and not isinstance(fps, bool) and fps > 0):
            raise ParameterError(f"fps must be a positive number of images per second, got {fps!r}")
        if pattern is not None and not (isinstance(pattern, str) and pattern):
            raise ParameterError(f"pattern must be a glob such as '*.png' or None, got {pattern!r}")
        self.fps, self.realtime, self.pattern = float(fps), bool(realtime), pattern
        self.recursive, self.loop = bool(recursive), bool(loop)
        self.name = f"images:{self.path}"
        if not self.path.is_dir():
            raise ParameterError(f"image folder {str(self.path)!r} does not exist or is not a folder; "
                                 "give a folder of .png/.jpg/.bmp images")
        self.files = self._scan()
        if not self.files:
            what = f"matching {pattern!r}" if pattern else f"ending in {', '.join(IMAGE_EXTENSIONS)}"
            raise ParameterError(f"image folder {str(self.path)!r} has no files {what}"
                                 + ("" if self.recursive else " (subfolders not searched: recursive=False)")
                                 + "; point it at a folder of images or change pattern")
        self.skipped = 0
        self._pos = 0
        self._index = 0
        self._origin = None
        self._delivered_this_pass = 0

    def _scan(self):
        it = self.path.rglob("*") if self.recursive else self.path.glob("*")
        out = []
        for p in it:
            if not p.is_file():
                continue
            if self.pattern is not None:
                if not fnmatch.fnmatch(p.name, self.pattern) and not fnmatch.fnmatch(
                        p.relative_to(self.path).as_posix(), self.pattern):
                    continue
            elif p.suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            out.append(p)
        return sorted(out, key=lambda p: p.relative_to(self.path).as_posix())

    def __len__(self):
        return len(self.files)

    def _open(self):
        self._cv2 = _cv2("reading images")

    def _read(self, timeout_s):
        from affectedge.features.face import load_image

        while True:
            if self._pos >= len(self.files):
                if not self.loop:
                    raise EndOfStream(self.name)
                if self._delivered_this_pass == 0:
                    raise SensorError(f"no image in {str(self.path)!r} could be decoded ({self.skipped} skipped; "
                                      f"last: {self.stats.last_error}); loop=True would never deliver a frame")
                self._pos, self._delivered_this_pass = 0, 0
            p = self.files[self._pos]
            self._pos += 1
            try:
                img = load_image(p)
            except Exception as exc:
                self.skipped += 1
                with self.stats._lock:
                    self.stats.dropped += 1
                    self.stats.last_error = f"skipped {p.relative_to(self.path).as_posix()}: {exc}"
                continue
            if img.ndim == 2:
                img = self._cv2.cvtColor(img, self._cv2.COLOR_GRAY2RGB)
            break
        index = self._index
        self._index += 1
        self._delivered_this_pass += 1
        t = index / self.fps
        if self.realtime:
            if self._origin is None:
                self._origin = self.clock.now_s() - t
            self.clock.sleep_until(self._origin + t)
        return VideoFrame(np.ascontiguousarray(img), t, index, p.relative_to(self.path).as_posix())


# ------------------------------------------------------------------- specs
def open_video(spec, *, clock=None, **kw):
    """A video source from a command-line spec.

    ``"camera"`` (camera 0), ``"camera:N"`` (camera index N), ``"/dev/videoN"``,
    a stream URL (``rtsp://``, ``rtsps://``, ``rtmp://``, ``http(s)://``,
    ``udp://``, ``tcp://``, ``srt://``) -> :class:`CameraSource`; a video file
    -> :class:`VideoFileSource`; a folder -> :class:`ImageFolderSource`. An
    int is a camera index. ``kw`` goes to the source's constructor. A spec
    that is none of these raises :class:`ParameterError` listing the forms.
    """
    if isinstance(spec, bool):
        raise ParameterError(f"video spec {spec!r} is not understood; give {_SPEC_FORMS}")
    if isinstance(spec, (int, np.integer)):
        return _make(CameraSource, spec, clock, kw)
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str) or not spec.strip():
        raise ParameterError(f"video spec {spec!r} is not understood; give {_SPEC_FORMS}")
    s = spec.strip()
    low = s.lower()
    if low == "camera":
        return _make(CameraSource, 0, clock, kw)
    if low.startswith("camera:"):
        rest = s[len("camera:"):].strip()
        if rest.isdigit():
            return _make(CameraSource, int(rest), clock, kw)
        if rest.startswith("/dev/") or rest.lower().startswith(URL_SCHEMES):
            return _make(CameraSource, rest, clock, kw)
        raise ParameterError(f"video spec {spec!r}: after 'camera:' comes a camera index such as 'camera:1', "
                             f"got {rest!r}; accepted forms: {_SPEC_FORMS}")
    if low.startswith(URL_SCHEMES):
        return _make(CameraSource, s, clock, kw)
    if "://" in s:
        raise ParameterError(f"video spec {spec!r} has an unsupported URL scheme; streams can be "
                             f"{', '.join(URL_SCHEMES)}; accepted forms: {_SPEC_FORMS}")
    p = Path(s).expanduser()
    if s.startswith("/dev/video"):
        return _make(CameraSource, s, clock, kw)
    if p.is_dir():
        return _make(ImageFolderSource, p, clock, kw)
    if p.is_file():
        if p.suffix.lower() in IMAGE_EXTENSIONS:
            raise ParameterError(f"video spec {spec!r} is a single image; give the folder that holds it "
                                 f"({str(p.parent)!r}) to read it as frames, or use load_image for one picture")
        return _make(VideoFileSource, p, clock, kw)
    raise ParameterError(f"video spec {spec!r} is not a camera, a stream URL, an existing video file or a folder; "
                         f"accepted forms: {_SPEC_FORMS}")


def _make(cls, arg, clock, kw):
    params = inspect.signature(cls.__init__).parameters
    unknown = sorted(k for k in kw if k not in params or k in ("self", "clock"))
    if unknown:
        accepted = [k for k, v in params.items() if v.kind is v.KEYWORD_ONLY and k != "clock"]
        raise ParameterError(f"{cls.__name__} does not take {', '.join(unknown)}; its options are "
                             f"{', '.join(accepted)}")
    return cls(arg, clock=clock, **kw)
