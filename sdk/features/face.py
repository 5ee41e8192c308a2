"""Face features: MediaPipe Face Landmarker blendshapes (+ landmark geometry).

Three layers, from low to high:

* :func:`face_model_path` finds (or downloads, sha256-checked) the MediaPipe
  Face Landmarker bundle ``face_landmarker.task``.
* :class:`FaceLandmarks` wraps MediaPipe's ``FaceLandmarker`` (IMAGE, VIDEO
  or asynchronous LIVE_STREAM running mode; a context manager).
  ``extract(image)`` returns a :class:`FaceResult` with the 52 blendshape
  scores (in :data:`BLENDSHAPE_NAMES` order) and the 478 landmarks, or
  ``None`` when no face is found; in LIVE_STREAM mode ``submit(image, t_ms)``
  returns at once and ``poll()`` gives the finished frames.
* :class:`BlendshapeFeatures` is the ``face-blendshapes`` feature pipeline used
  by the ``face-expression`` zoo model: image -> float32 vector (52 blendshapes,
  then :data:`GEOMETRY_NAMES` when ``geometry`` is on). **When no face is
  found it raises** :class:`NoFaceError` (a :class:`ParameterError`), so that
  ``Model.predict_raw`` never runs on made-up features; use
  :meth:`BlendshapeFeatures.try_call` to get ``None`` instead.
  :meth:`BlendshapeFeatures.batch` extracts thousands of images with a progress
  bar and an on-disk cache keyed by image content hash + model checksum +
  extractor parameters, so retraining never reruns MediaPipe.

Images are ``uint8`` arrays, (H, W) grey or (H, W, 3) **RGB** (convert
OpenCV's BGR first) or (H, W, 4) RGBA (alpha dropped). Small face crops (the
48x48 CK+/FER2013 images) are padded by ``pad`` x their size (edge pixels
repeated) and upscaled to ``upscale`` pixels on their longer side before
detection: measured on 500 FER2013 images, padding raised the detection rate
from 0.82 to 0.90; the upscale size (96-256) made no measurable difference.
"""

import hashlib
import json
import os
import tempfile
import urllib.error
import urllib.request
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from affectedge._optional import require
from affectedge.errors import ModelError, ParameterError
from affectedge.features.quality import NoSignalError

__all__ = [
    "BLENDSHAPE_NAMES",
    "GEOMETRY_NAMES",
    "MODEL_SHA256",
    "MODEL_URL",
    "BlendshapeFeatures",
    "CROP_SIZE",
    "FER_TEMPLATE",
    "FacePixels",
    "FaceLandmarks",
    "FaceResult",
    "NoFaceError",
    "aligned_crop",
    "align_points",
    "face_model_path",
    "feature_cache_dir",
    "is_face_crop",
    "load_image",
    "whole_crop",
]

MODEL_URL = (
    "https://storage.googleapis.com/mediapipe-models/face_landmarker/face_landmarker/float16/1/face_landmarker.task"
)
MODEL_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
MODEL_FILE = "face_landmarker.task"

# MediaPipe's blendshape categories, in the order the model emits them.
BLENDSHAPE_NAMES = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft",
    "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft",
    "eyeLookUpRight", "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft",
    "jawOpen", "jawRight", "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft",
    "mouthPressRight", "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower",
    "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthUpperUpLeft", "mouthUpperUpRight", "noseSneerLeft", "noseSneerRight",
)
_BS_INDEX = {n: i for i, n in enumerate(BLENDSHAPE_NAMES)}
N_LANDMARKS = 478

# Face-mesh indices used by the geometry features (subject's right = image left).
_L = dict(eye_out_r=33, eye_in_r=133, eye_out_l=263, eye_in_l=362, lid_up_r=159, lid_lo_r=145, lid_up_l=386,
          lid_lo_l=374, brow_in_r=55, brow_in_l=285, brow_mid_r=105, brow_mid_l=334, brow_out_r=46, brow_out_l=276,
          mouth_r=61, mouth_l=291, lip_in_up=13, lip_in_lo=14, lip_up=0, lip_lo=17, nose_tip=1, nose_base=2,
          chin=152, cheek_r=50, cheek_l=280)

GEOMETRY_NAMES = (
    "mouth_width", "mouth_open_inner", "lips_open_outer", "mouth_corner_drop", "eye_open_r", "eye_open_l",
    "brow_inner_raise_r", "brow_inner_raise_l", "brow_mid_raise_r", "brow_mid_raise_l", "brow_outer_raise_r",
    "brow_outer_raise_l", "brow_inner_gap", "nose_to_upper_lip", "nose_to_chin", "corner_to_eye_r",
    "corner_to_eye_l", "cheek_to_eye_r", "cheek_to_eye_l", "upper_lip_to_corners",
)

_CONF = 0.3  # detection / presence confidence: 0.3 finds ~4 % more FER2013 faces than MediaPipe's 0.5


class NoFaceError(NoSignalError):
    """The face detector found no face in the image (a NoSignalError, status "no_face")."""

    status = "no_face"


# ------------------------------------------------------------------ model file
def _cache_root():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "affectedge"


def feature_cache_dir():
    """Folder of the blendshape cache (``AFFECTEDGE_FACE_CACHE`` or ~/.cache/affectedge/face-features)."""
    return Path(os.environ.get("AFFECTEDGE_FACE_CACHE") or (_cache_root() / "face-features"))


def _sha256(path):
    from affectedge.models._card import sha256_file

    return sha256_file(path)


_urlopen = urllib.request.urlopen  # tests replace this to simulate being offline


def _shared_candidates():
    repo = Path(__file__).resolve().parents[2]
    return [repo.parent / "shared" / "models" / MODEL_FILE, Path.cwd().parent / "shared" / "models" / MODEL_FILE]


def face_model_path(*, download=True):
    """Path of the Face Landmarker bundle.

    Looks, in order, at ``$AFFECTEDGE_FACE_MODEL`` (used as given: a different
    model changes the pipeline spec's ``model_sha256`` and cards refuse it), the
    affectedge cache (``~/.cache/affectedge/models/face_landmarker.task``) and
    ``../shared/models`` beside the repository; the last two must match
    :data:`MODEL_SHA256`. Otherwise downloads :data:`MODEL_URL` into the cache
    and verifies its sha256 (a mismatch removes the file and raises
    :class:`ModelError`).
    """
    env = os.environ.get("AFFECTEDGE_FACE_MODEL")
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise ModelError(f"AFFECTEDGE_FACE_MODEL points to {str(p)!r}, which is not a file; "
                             f"set it to a MediaPipe {MODEL_FILE} bundle or unset it")
        return p
    cached = _cache_root() / "models" / MODEL_FILE
    if cached.is_file():
        if _sha256(cached) == MODEL_SHA256:
            return cached
        cached.unlink()  # corrupt or truncated: fetch it again below
    for cand in _shared_candidates():
        if cand.is_file() and _sha256(cand) == MODEL_SHA256:
            return cand
    if not download:
        raise ModelError(f"the MediaPipe Face Landmarker model is not in {str(cached.parent)!r}; "
                         f"download {MODEL_URL} there or set AFFECTEDGE_FACE_MODEL")
    return _download(cached)


def _download(dest):
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".face_landmarker.", dir=dest.parent)
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            try:
                resp = _urlopen(MODEL_URL, timeout=60)
                with resp:
                    for block in iter(lambda: resp.read(1 << 16), b""):
                        h.update(block)
                        out.write(block)
            except (urllib.error.URLError, OSError) as exc:
                raise ModelError(
                    f"cannot download the MediaPipe Face Landmarker model from {MODEL_URL} ({exc}); "
                    f"when offline, copy {MODEL_FILE} (sha256 {MODEL_SHA256}) to {str(dest)!r} "
                    "or set AFFECTEDGE_FACE_MODEL to its path"
                ) from exc
        got = h.hexdigest()
        if got != MODEL_SHA256:
            raise ModelError(
                f"the downloaded {MODEL_FILE} has sha256 {got}, expected {MODEL_SHA256}; refused and removed "
                f"(corrupt download or a changed upstream file). Retry, or copy a verified file to {str(dest)!r}"
            )
        os.replace(tmp, dest)
        tmp = None
        return dest
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


# ---------------------------------------------------------------------- images
def load_image(path):
    """Read an image file as uint8 grey (H, W) or RGB (H, W, 3)."""
    cv2 = require("cv2", "face", "reading images")
    path = Path(path)
    try:
        buf = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise ParameterError(f"cannot read image {str(path)!r}: {exc.strerror or exc}") from exc
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if buf.size else None
    if img is None:
        raise ParameterError(f"{str(path)!r} is not an image OpenCV can decode (PNG, JPEG, ...)")
    if img.dtype != np.uint8:
        img = (img / 257).astype(np.uint8) if img.dtype == np.uint16 else img.astype(np.uint8)
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB if img.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return img


def _check_image(image):
    if not isinstance(image, np.ndarray):
        raise ParameterError(f"image must be a numpy uint8 array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ParameterError(f"image must be uint8 (0-255), got dtype {image.dtype}; "
                             "scale floats with (img * 255).clip(0, 255).astype(np.uint8)")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4))):
        raise ParameterError(f"image must be (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA, got shape {image.shape}")
    if min(image.shape[:2]) < 16:
        raise ParameterError(f"image is {image.shape[1]}x{image.shape[0]} pixels; a face needs at least 16x16")
    return image


def _image_hash(image):
    h = hashlib.sha256(f"{image.shape}|{image.dtype}".encode())
    h.update(np.ascontiguousarray(image).tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class FaceResult:
    """One detected face: ``blendshapes`` (52,) in BLENDSHAPE_NAMES order and
    ``landmarks`` (478, 3) in pixels of the image given (x, y; z on x's scale)."""

    blendshapes: np.ndarray
    landmarks: np.ndarray


# ------------------------------------------------------------------- extractor
class FaceLandmarks:
    """MediaPipe Face Landmarker, one face per image.

    ``mode``:

    * ``"image"``: independent pictures; :meth:`extract` runs synchronously.
    * ``"video"``: frames of one stream (tracking between frames); :meth:`extract`
      runs synchronously; pass increasing ``timestamp_ms``, or none for frames
      33 ms apart.
    * ``"live_stream"``: MediaPipe's asynchronous mode for cameras.
      :meth:`submit` hands a frame over and returns at once; MediaPipe may
      drop frames while it is busy (``dropped`` counts them). :meth:`poll`
      returns the finished frames as ``(timestamp_ms, FaceResult or None)``.
      MediaPipe's result callback only stores the raw result in a small
      bounded buffer (``max_results``; the oldest is dropped when the consumer
      falls behind); the conversion to :class:`FaceResult` happens in
      :meth:`poll`, on the caller's thread.

    Use as a context manager or call :meth:`close`. ``calls`` counts MediaPipe
    invocations (frames submitted, in live_stream mode). Every open landmarker
    is closed when the interpreter starts shutting down (before MediaPipe's
    worker threads stop); use from threads still running after the main
    thread returned then raises :class:`ModelError`.
    """

    def __init__(self, *, mode="image", upscale=192, pad=0.33, min_confidence=_CONF, model_path=None,
                 max_results=8):
        if mode not in _MODES:
            raise ParameterError(f"mode must be one of {', '.join(map(repr, _MODES))}, got {mode!r}")
        if not (32 <= int(upscale) <= 1024):
            raise ParameterError(f"upscale must be 32-1024 pixels, got {upscale!r}")
        if not (0 <= float(pad) <= 1):
            raise ParameterError(f"pad must be a fraction of the image size in [0, 1], got {pad!r}")
        if not (1 <= int(max_results) <= 1024):
            raise ParameterError(f"max_results must be 1-1024 buffered results, got {max_results!r}")
        self.mode, self.upscale, self.pad, self.min_confidence = mode, int(upscale), float(pad), float(min_confidence)
        self.model_path = Path(model_path) if model_path else face_model_path()
        self._mp = require("mediapipe", "face", "face landmarks")
        self._cv2 = require("cv2", "face", "resizing images")
        from mediapipe.tasks.python import vision
        from mediapipe.tasks.python.core.base_options import BaseOptions

        self._t = -1
        self.calls = 0
        self.dropped = 0  # live_stream: frames MediaPipe skipped or results the consumer never polled
        self._closed_at_exit = False
        live = mode == "live_stream"
        if live:
            import collections
            import threading

            self._cond = threading.Condition()
            self._results = collections.deque(maxlen=int(max_results))  # (timestamp_ms, raw MediaPipe result)
            self._pending = collections.OrderedDict()  # timestamp_ms -> (mp image, h, w, off, scale)
        running_mode = {"image": vision.RunningMode.IMAGE, "video": vision.RunningMode.VIDEO,
                        "live_stream": vision.RunningMode.LIVE_STREAM}[mode]
        opts = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(self.model_path)),
            running_mode=running_mode,
            num_faces=1,
            min_face_detection_confidence=self.min_confidence,
            min_face_presence_confidence=self.min_confidence,
            min_tracking_confidence=self.min_confidence,
            output_face_blendshapes=True,
            # a bound method would make MediaPipe's dispatcher keep self alive; the weak proxy does not
            result_callback=_weak_callback(self) if live else None,
        )
        _register_exit_hook()
        try:
            self._lm = vision.FaceLandmarker.create_from_options(opts)
        except Exception as exc:  # mediapipe raises RuntimeError/ValueError on a bad bundle
            if _interpreter_exiting(exc):
                raise ModelError("cannot start the MediaPipe Face Landmarker: the interpreter is shutting down "
                                 "(the main thread returned); create and use face models before that, and join "
                                 "the threads that use them") from exc
            raise ModelError(f"MediaPipe cannot load {str(self.model_path)!r} as a Face Landmarker bundle: {exc}") from exc
        # close at garbage collection or interpreter exit; see _close_quietly for why it never raises
        self._finalizer = weakref.finalize(self, _close_quietly, self._lm)
        _LIVE.add(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if getattr(self, "_lm", None) is not None:
            self._finalizer()
            self._lm = None
            _LIVE.discard(self)
            if self.mode == "live_stream":
                with self._cond:
                    self._pending.clear()
                    self._cond.notify_all()

    def _close_at_exit(self):
        self._closed_at_exit = True
        self.close()

    def prepare(self, image):
        """The SRGB array MediaPipe sees and the (offset, scale) back to the input's pixels."""
        cv2 = self._cv2
        image = _check_image(image)
        if image.ndim == 3 and image.shape[2] == 4:
            image = image[:, :, :3]
        off, scale = 0.0, 1.0
        side = max(image.shape[:2])
        if side < self.upscale:
            p = int(round(self.pad * side))
            if p:
                image = cv2.copyMakeBorder(image, p, p, p, p, cv2.BORDER_REPLICATE)
                off = float(p)
            scale = self.upscale / max(image.shape[:2])
            image = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)),
                               interpolation=cv2.INTER_CUBIC)
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
        return np.ascontiguousarray(image), off, scale

    def _check_open(self):
        if self._lm is None:
            if self._closed_at_exit:
                raise ModelError("this FaceLandmarks was closed because the interpreter is shutting down (the "
                                 "main thread returned); join the threads that use face models before it ends")
            raise ParameterError("this FaceLandmarks is closed; create a new one")

    def _next_timestamp(self, timestamp_ms):
        t = self._t + 33 if timestamp_ms is None else int(timestamp_ms)
        if t <= self._t:
            raise ParameterError(f"timestamp_ms must increase from frame to frame ({t} after {self._t}); "
                                 "pass the frame's capture time in milliseconds")
        return t

    def _run(self, fn, *args):
        try:
            return fn(*args)
        except RuntimeError as exc:
            if _interpreter_exiting(exc):
                raise ModelError("MediaPipe's worker thread has stopped: the interpreter is shutting down (the "
                                 "main thread returned); join the threads that use face models before the main "
                                 "thread ends") from exc
            raise

    def extract(self, image, timestamp_ms=None):
        """A :class:`FaceResult` for the most confident face, or ``None`` when none is found (image / video mode)."""
        self._check_open()
        if self.mode == "live_stream":
            raise ParameterError("extract() runs synchronously, but this FaceLandmarks is in live_stream mode; "
                                 "use submit(image, timestamp_ms) and poll(), or create it with mode='video'")
        rgb, off, scale = self.prepare(image)
        mp_image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=rgb)
        if self.mode == "video":
            t = self._next_timestamp(timestamp_ms)
            self._t = t
            self.calls += 1
            res = self._run(self._lm.detect_for_video, mp_image, t)
        else:
            self.calls += 1
            res = self._run(self._lm.detect, mp_image)
        return _face_result(res, rgb.shape[0], rgb.shape[1], off, scale)

    # ------------------------------------------------------------ live stream
    def submit(self, image, timestamp_ms=None):
        """Hand one frame to MediaPipe (live_stream mode); returns its timestamp at once.

        ``timestamp_ms`` must increase from frame to frame (none: 33 ms after
        the previous one). The result arrives later through :meth:`poll`.
        """
        self._check_open()
        if self.mode != "live_stream":
            raise ParameterError(f"submit() needs mode='live_stream', this FaceLandmarks is in {self.mode!r} mode; "
                                 "use extract(image) instead")
        t = self._next_timestamp(timestamp_ms)
        rgb, off, scale = self.prepare(image)
        mp_image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=rgb)
        with self._cond:
            self._pending[t] = (mp_image, rgb.shape[0], rgb.shape[1], off, scale)
            while len(self._pending) > _MAX_PENDING:  # never answered (MediaPipe dropped them)
                self._pending.popitem(last=False)
                self.dropped += 1
        self._t = t
        self.calls += 1
        try:
            self._run(self._lm.detect_async, mp_image, t)
        except BaseException:
            with self._cond:
                self._pending.pop(t, None)
            raise
        return t

    def _on_result(self, result, _image, timestamp_ms):
        # Runs on MediaPipe's dispatcher thread: store the raw result, nothing else.
        with self._cond:
            self._results.append((int(timestamp_ms), result))
            self._cond.notify_all()

    def poll(self, timeout_s=0.0):
        """Finished frames since the last poll: a list of ``(timestamp_ms, FaceResult or None)``, oldest first.

        Waits up to ``timeout_s`` for at least one result when none is ready
        (0: return at once, possibly an empty list). ``None`` means MediaPipe
        ran on the frame and found no face; frames it dropped never appear.
        """
        if self.mode != "live_stream":
            raise ParameterError(f"poll() needs mode='live_stream', this FaceLandmarks is in {self.mode!r} mode")
        import time

        deadline = time.monotonic() + max(0.0, float(timeout_s))
        with self._cond:
            while not self._results and self._lm is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            raw = list(self._results)
            self._results.clear()
            metas = []
            for t, res in raw:
                meta = None
                while self._pending:  # results come in timestamp order; older pending frames were dropped
                    t0, m = self._pending.popitem(last=False)
                    if t0 == t:
                        meta = m
                        break
                    if t0 > t:
                        self._pending[t0] = m
                        self._pending.move_to_end(t0, last=False)
                        break
                    self.dropped += 1
                metas.append(meta)
        out = []
        for (t, res), meta in zip(raw, metas):
            if meta is None:
                continue  # submitted before a close() or evicted from the pending table
            _, h, w, off, scale = meta
            out.append((t, _face_result(res, h, w, off, scale)))
        return out

    def pending(self):
        """How many submitted frames have no result yet (live_stream mode)."""
        if self.mode != "live_stream":
            return 0
        with self._cond:
            return len(self._pending)


_MODES = ("image", "video", "live_stream")
_MAX_PENDING = 64


def _face_result(res, h, w, off, scale):
    """A MediaPipe FaceLandmarkerResult -> FaceResult in the input image's pixels (None: no face)."""
    if not res.face_blendshapes or not res.face_landmarks:
        return None
    bs = np.zeros(len(BLENDSHAPE_NAMES), np.float32)
    for i, c in enumerate(res.face_blendshapes[0]):
        bs[_BS_INDEX.get(c.category_name, i)] = c.score
    lms = np.array([(p.x * w, p.y * h, p.z * w) for p in res.face_landmarks[0]], np.float32)
    lms = lms / scale
    lms[:, :2] -= off
    return FaceResult(bs, lms)


def _weak_callback(obj):
    ref = weakref.ref(obj)

    def callback(result, image, timestamp_ms):
        target = ref()
        if target is not None:
            target._on_result(result, image, timestamp_ms)

    return callback


# ------------------------------------------------------------ shutdown handling
# MediaPipe runs every landmarker call on its own ThreadPoolExecutor. When the
# main thread returns, Python's threading shutdown stops those executors; from
# then until MediaPipe's atexit hook runs, FaceLandmarker.close() raises
# "cannot schedule new futures after shutdown". A landmarker closed or freed
# in that window (an atexit handler closing a model, a weakref finalizer)
# used to print "Exception ignored in: FaceLandmarker.__del__". So:
# 1. a threading-exit hook, registered after concurrent.futures' own, closes
#    every open FaceLandmarks while the executors still run (a clean native
#    close), and
# 2. _close_quietly clears the handle when close() fails anyway, which turns
#    MediaPipe's __del__ into a no-op.
_LIVE = weakref.WeakSet()
_HOOKED = False


def _register_exit_hook():
    global _HOOKED
    if _HOOKED:
        return
    import concurrent.futures.thread  # noqa: F401  (its exit hook must be registered before ours)
    import threading

    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        try:
            register(_close_all_at_exit)  # runs before the hooks registered earlier, i.e. concurrent.futures'
        except RuntimeError:  # already shutting down: the atexit finalizers and _close_quietly remain
            pass
    _HOOKED = True


def _close_all_at_exit():
    for fl in list(_LIVE):
        try:
            fl._close_at_exit()
        except Exception:  # exit hooks must not raise
            pass


def _interpreter_exiting(exc):
    msg = str(exc)
    return "after shutdown" in msg or "interpreter shutdown" in msg or "atexit after shutdown" in msg


def _close_quietly(lm):
    try:
        lm.close()
    except Exception:  # MediaPipe's executor already stopped (interpreter exit): the OS reclaims the graph
        pass
    # close() stops before clearing the handle when it fails; clear it so that MediaPipe's own __del__,
    # which calls close() again, has nothing left to do and prints nothing.
    try:
        lm._handle = None
    except Exception:
        pass


# ------------------------------------------------------------------- geometry
def geometry_features(landmarks):
    """Pose-normalised distances (GEOMETRY_NAMES) from (..., 478, 3) landmarks.

    The face is centred between the outer eye corners, rotated so that the eyes
    are level and scaled to unit outer-eye distance; y points down.
    """
    lm = np.asarray(landmarks, np.float64)[..., :2]
    er, el = lm[..., _L["eye_out_r"], :], lm[..., _L["eye_out_l"], :]
    centre = (er + el) / 2
    d = el - er
    iod = np.linalg.norm(d, axis=-1)[..., None]
    c, s = d[..., 0:1] / iod, d[..., 1:2] / iod
    rel = lm - centre[..., None, :]
    x = (rel[..., 0] * c + rel[..., 1] * s) / iod
    y = (-rel[..., 0] * s + rel[..., 1] * c) / iod
    P = np.stack([x, y], -1)

    def pt(k):
        return P[..., _L[k], :]

    def dist(a, b):
        return np.linalg.norm(pt(a) - pt(b), axis=-1)

    def dy(a, b):  # how far a sits above b
        return pt(b)[..., 1] - pt(a)[..., 1]

    lip_mid = (pt("lip_in_up") + pt("lip_in_lo")) / 2
    corners = (pt("mouth_r") + pt("mouth_l")) / 2
    feats = [
        dist("mouth_r", "mouth_l"),
        dist("lip_in_up", "lip_in_lo"),
        dist("lip_up", "lip_lo"),
        corners[..., 1] - lip_mid[..., 1],
        dist("lid_up_r", "lid_lo_r"),
        dist("lid_up_l", "lid_lo_l"),
        dy("brow_in_r", "eye_in_r"),
        dy("brow_in_l", "eye_in_l"),
        dy("brow_mid_r", "lid_up_r"),
        dy("brow_mid_l", "lid_up_l"),
        dy("brow_out_r", "eye_out_r"),
        dy("brow_out_l", "eye_out_l"),
        dist("brow_in_r", "brow_in_l"),
        dy("nose_base", "lip_up"),
        dy("nose_tip", "chin"),
        dy("eye_out_r", "mouth_r"),
        dy("eye_out_l", "mouth_l"),
        dy("eye_out_r", "cheek_r"),
        dy("eye_out_l", "cheek_l"),
        corners[..., 1] - pt("lip_up")[..., 1],
    ]
    return np.stack(feats, -1).astype(np.float32)


# -------------------------------------------------------------------- pipeline
class _FacePipeline:
    """``__call__`` of the face pipelines: ``try_call`` or :class:`NoFaceError`."""

    def __call__(self, image, timestamp_ms=None):
        f = self.try_call(image, timestamp_ms)
        if f is None:
            raise NoFaceError(
                f"no face found in the {image.shape[1]}x{image.shape[0]} image (detector confidence "
                f"{self.spec['min_confidence']}); give a frontal face filling a good part of the picture"
            )
        return f


class BlendshapeFeatures(_FacePipeline):
    """``face-blendshapes`` pipeline: image -> (52 [+ 20],) float32.

    Spec: ``model_sha256`` (of the Face Landmarker bundle; checked against the
    file found by :func:`face_model_path`), ``upscale`` / ``pad`` (small-image
    preparation), ``min_confidence`` (detector and presence thresholds) and
    ``geometry`` (append the 20 landmark distances of GEOMETRY_NAMES).
    ``__call__`` raises :class:`NoFaceError` when no face is found.
    """

    name = "face-blendshapes"

    def __init__(self, *, model_sha256=MODEL_SHA256, upscale=192, pad=0.33, min_confidence=_CONF, geometry=True,
                 mode="image"):
        self.spec = {"model_sha256": str(model_sha256), "upscale": int(upscale), "pad": float(pad),
                     "min_confidence": float(min_confidence), "geometry": bool(geometry)}
        if mode not in ("image", "video"):
            raise ParameterError(f"mode must be 'image' or 'video', got {mode!r}")
        self.mode = mode  # runtime choice, not part of the spec: features are the same kind in both modes
        self.calls = 0  # MediaPipe runs made by batch()
        self._extractor = None
        self._model_path = None

    @property
    def names(self):
        return BLENDSHAPE_NAMES + (GEOMETRY_NAMES if self.spec["geometry"] else ())

    @property
    def input_shape(self):
        return (len(self.names),)

    def model_path(self):
        if self._model_path is None:
            p = face_model_path()
            got = _sha256(p)
            if got != self.spec["model_sha256"]:
                raise ModelError(
                    f"the Face Landmarker model at {str(p)!r} has sha256 {got[:16]}..., but these features need "
                    f"{self.spec['model_sha256'][:16]}...; point AFFECTEDGE_FACE_MODEL at the matching bundle"
                )
            self._model_path = p
        return self._model_path

    def extractor(self):
        if self._extractor is None:
            self._extractor = FaceLandmarks(mode=self.mode, upscale=self.spec["upscale"], pad=self.spec["pad"],
                                            min_confidence=self.spec["min_confidence"], model_path=self.model_path())
        return self._extractor

    def close(self):
        if self._extractor is not None:
            self._extractor.close()
            self._extractor = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def from_raw(self, blendshapes, landmarks):
        """Features from stored extractor outputs (…, 52) and (…, 478, 3)."""
        bs = np.asarray(blendshapes, np.float32)
        if not self.spec["geometry"]:
            return bs.copy()
        return np.concatenate([bs, geometry_features(landmarks)], -1).astype(np.float32)

    def try_call(self, image, timestamp_ms=None):
        """Features of one image, or ``None`` when no face is found."""
        r = self.extractor().extract(image, timestamp_ms)
        return None if r is None else self.from_raw(r.blendshapes, r.landmarks)

    # -------------------------------------------------------------- batches
    def _cache_file(self, cache_dir):
        key = {k: self.spec[k] for k in ("model_sha256", "upscale", "pad", "min_confidence")}
        tag = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        return Path(cache_dir or feature_cache_dir()) / f"blendshapes-{tag}.npz"

    def batch(self, images, *, cache_dir=None, progress=True, desc="face landmarks"):
        """Features of many images (paths or arrays) in IMAGE mode, cached on disk.

        Returns ``(X, found)``: X (N, D) float32 with NaN rows where no face was
        found, ``found`` (N,) bool. ``self.last_batch_stats`` tells how many
        images MediaPipe actually ran on (``computed``) and how many came from
        the cache (``cached``).
        """
        bs, lms, found = self.batch_raw(images, cache_dir=cache_dir, progress=progress, desc=desc)
        X = np.full((len(found), len(self.names)), np.nan, np.float32)
        if found.any():
            X[found] = self.from_raw(bs[found], lms[found])
        return X, found

    def batch_raw(self, images, *, cache_dir=None, progress=True, desc="face landmarks"):
        """Raw extractor outputs of many images: blendshapes (N, 52), landmarks (N, 478, 3), found (N,)."""
        images = list(images)
        path = self._cache_file(cache_dir)
        cache = _load_cache(path)
        n = len(images)
        bs = np.zeros((n, len(BLENDSHAPE_NAMES)), np.float32)
        lms = np.zeros((n, N_LANDMARKS, 3), np.float32)
        found = np.zeros(n, bool)
        todo, keys = [], []
        for i, item in enumerate(images):
            img = load_image(item) if isinstance(item, (str, os.PathLike)) else _check_image(item)
            k = _image_hash(img)
            keys.append(k)
            hit = cache.get(k)
            if hit is None:
                todo.append((i, img))
            else:
                found[i], bs[i], lms[i] = hit
        self.last_batch_stats = {"images": n, "cached": n - len(todo), "computed": len(todo)}
        if todo:
            ex = FaceLandmarks(mode="image", upscale=self.spec["upscale"], pad=self.spec["pad"],
                               min_confidence=self.spec["min_confidence"], model_path=self.model_path())
            new = {}
            it = todo
            if progress:
                from tqdm.auto import tqdm

                it = tqdm(todo, desc=desc, unit="img", leave=False)
            with ex:
                for j, (i, img) in enumerate(it):
                    r = ex.extract(img)
                    if r is not None:
                        found[i], bs[i], lms[i] = True, r.blendshapes, r.landmarks
                    new[keys[i]] = (found[i], bs[i].copy(), lms[i].copy())
                    if len(new) >= 2000 and j < len(todo) - 1:  # checkpoint long runs
                        _save_cache(path, new)
                        new = {}
            self.calls += ex.calls
            _save_cache(path, new)
        return bs, lms, found


def _load_cache(path):
    if not path.is_file():
        return {}
    try:
        with np.load(path) as z:
            return {k: (bool(f), b, m) for k, f, b, m in zip(z["keys"], z["found"], z["blendshapes"], z["landmarks"])}
    except Exception:  # a damaged cache is rebuilt, never trusted
        return {}


def _save_cache(path, new):
    if not new:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    merged = _load_cache(path)  # another process may have added entries meanwhile
    merged.update(new)
    keys = list(merged)
    fd, tmp = tempfile.mkstemp(prefix=".blendshapes.", suffix=".npz", dir=path.parent)
    os.close(fd)
    try:
        np.savez(tmp, keys=np.array(keys), found=np.array([merged[k][0] for k in keys], bool),
                 blendshapes=np.stack([merged[k][1] for k in keys]).astype(np.float32),
                 landmarks=np.stack([merged[k][2] for k in keys]).astype(np.float32))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# ------------------------------------------------------------ aligned crops
# Points the crop is aligned on: the two eye centres (mean of the eye corners) and the mouth centre.
_ALIGN_POINTS = ((33, 133), (263, 362), (61, 291))

# Where those points sit in a 48x48 FER2013 face crop: the median over the 25,505 FER2013 training
# images MediaPipe found a face in, made left-right symmetric (affectedge.training.face_pixels.alignment_template
# recomputes it).
# Aligning every face onto it makes a camera frame's crop look like the crops the pixel model learnt from.
FER_TEMPLATE = ((15.28, 19.01), (32.72, 19.01), (24.0, 36.81))
CROP_SIZE = 48
FLAT_STD = 8.0  # grey levels: a picture flatter than this is no face, never classified


def align_points(landmarks):
    """(3, 2) alignment points (right eye, left eye, mouth centre) of (478, 3) landmarks in pixels."""
    lm = np.asarray(landmarks, np.float64)
    return np.array([lm[list(ix), :2].mean(axis=0) for ix in _ALIGN_POINTS])


def _similarity(src, dst):
    """2x3 similarity (rotation, uniform scale, shift) mapping src (n, 2) onto dst (n, 2), least squares (Umeyama)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    var = (a ** 2).sum() / len(a)
    cov = b.T @ a / len(a)
    u, d, vt = np.linalg.svd(cov)
    s = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        s[1, 1] = -1
    r = u @ s @ vt
    scale = float(np.trace(np.diag(d) @ s) / max(var, 1e-12))
    m = np.zeros((2, 3))
    m[:, :2] = scale * r
    m[:, 2] = md - scale * r @ ms
    return m


def _grey(image):
    cv2 = require("cv2", "face", "face crops")
    image = _check_image(image)
    if image.ndim == 3:
        image = cv2.cvtColor(image[:, :, :3], cv2.COLOR_RGB2GRAY)
    return image


def aligned_crop(image, landmarks, *, size=CROP_SIZE, template=FER_TEMPLATE):
    """Grey ``size`` x ``size`` uint8 crop of the face, its eyes and mouth moved onto ``template``.

    ``image`` is the picture the ``landmarks`` (478, 3) were found in (pixels,
    as :class:`FaceResult` gives them); the template is in 48x48 coordinates
    and scales with ``size``. Large faces are shrunk with area averaging first
    (no aliasing), then warped with bilinear interpolation; pixels outside the
    picture repeat its edge.
    """
    cv2 = require("cv2", "face", "face crops")
    grey = _grey(image)
    dst = np.asarray(template, np.float64) * (size / CROP_SIZE)
    m = _similarity(align_points(landmarks), dst)
    scale = float(np.hypot(*m[:, 0]))
    if scale < 0.5:  # shrink first so that the warp samples an image of about the crop's resolution
        f = min(1.0, 2.0 * scale)
        small = cv2.resize(grey, (max(1, round(grey.shape[1] * f)), max(1, round(grey.shape[0] * f))),
                           interpolation=cv2.INTER_AREA)
        fx, fy = small.shape[1] / grey.shape[1], small.shape[0] / grey.shape[0]
        m = m @ np.array([[1 / fx, 0, 0], [0, 1 / fy, 0], [0, 0, 1]])
        grey = small
    return cv2.warpAffine(grey, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def whole_crop(image, *, size=CROP_SIZE):
    """The whole picture as a grey ``size`` x ``size`` crop (for a picture that is already a face crop)."""
    cv2 = require("cv2", "face", "face crops")
    grey = _grey(image)
    interp = cv2.INTER_AREA if min(grey.shape) > size else cv2.INTER_LINEAR
    return cv2.resize(grey, (size, size), interpolation=interp)


def is_face_crop(image, *, max_side=128, max_aspect=1.34):
    """Whether ``image`` looks like a ready face crop (FER-like): small and about square."""
    h, w = np.asarray(image).shape[:2]
    return max(h, w) <= max_side and max(h, w) / max(1, min(h, w)) <= max_aspect


class FacePixels(_FacePipeline):
    """``face-pixels`` pipeline: image -> (1, size, size) float32 grey face crop in [0, 1].

    The crop comes from the same MediaPipe Face Landmarker run as the
    blendshapes (:func:`aligned_crop` on its landmarks). Spec:
    ``model_sha256`` / ``upscale`` / ``pad`` / ``min_confidence`` (as
    :class:`BlendshapeFeatures`), ``size`` and ``template`` (the crop) and
    ``crop_fallback``: when no face is found in a picture that is already a
    face crop (:func:`is_face_crop`: at most 128 pixels, about square, like
    FER2013's 48x48) and not flat (grey-level std >= FLAT_STD), the whole
    picture is used instead (``last_fallback`` tells); otherwise
    :class:`NoFaceError`.
    """

    name = "face-pixels"
    input_kind = "image"

    def __init__(self, *, model_sha256=MODEL_SHA256, upscale=192, pad=0.33, min_confidence=_CONF, size=CROP_SIZE,
                 template=FER_TEMPLATE, crop_fallback=True, mode="image"):
        if not (16 <= int(size) <= 256):
            raise ParameterError(f"size must be 16-256 pixels, got {size!r}")
        t = np.asarray(template, np.float64)
        if t.shape != (3, 2) or not np.all(np.isfinite(t)):
            raise ParameterError(f"template must be 3 (x, y) points (right eye, left eye, mouth), got {template!r}")
        self.spec = {"model_sha256": str(model_sha256), "upscale": int(upscale), "pad": float(pad),
                     "min_confidence": float(min_confidence), "size": int(size),
                     "template": [[float(x), float(y)] for x, y in t], "crop_fallback": bool(crop_fallback)}
        self._bs = BlendshapeFeatures(model_sha256=model_sha256, upscale=upscale, pad=pad,
                                      min_confidence=min_confidence, geometry=True, mode=mode)
        self.last_fallback = False

    @property
    def mode(self):
        return self._bs.mode

    @mode.setter
    def mode(self, value):
        self._bs.mode = value

    @property
    def input_shape(self):
        return (1, self.spec["size"], self.spec["size"])

    def extractor(self):
        return self._bs.extractor()

    def close(self):
        self._bs.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def from_raw(self, image, landmarks):
        """Model input from a picture and its landmarks; ``landmarks=None``: the whole picture (fallback)."""
        if landmarks is None:
            crop = whole_crop(image, size=self.spec["size"])
        else:
            crop = aligned_crop(image, landmarks, size=self.spec["size"], template=self.spec["template"])
        return (crop.astype(np.float32) / 255.0)[None]

    def can_fall_back(self, image):
        """Whether a picture without a detected face is classified whole: a face crop that is not flat."""
        return bool(self.spec["crop_fallback"] and is_face_crop(image) and np.std(_grey(image)) >= FLAT_STD)

    def try_call(self, image, timestamp_ms=None):
        """Model input of one picture, or ``None`` when there is no face and no fallback."""
        image = _check_image(image)
        r = self.extractor().extract(image, timestamp_ms)
        self.last_fallback = r is None
        if r is None:
            return self.from_raw(image, None) if self.can_fall_back(image) else None
        return self.from_raw(image, r.landmarks)

    def batch(self, images, *, cache_dir=None, progress=True, desc="face landmarks"):
        """``(X (N, 1, size, size), found (N,), fallback (N,))`` for many pictures (landmarks cached on disk).

        Rows without a face and without a fallback are NaN; ``fallback`` marks
        the pictures classified whole.
        """
        images = [load_image(p) if isinstance(p, (str, os.PathLike)) else _check_image(p) for p in images]
        _, lms, found = self._bs.batch_raw(images, cache_dir=cache_dir, progress=progress, desc=desc)
        s = self.spec["size"]
        X = np.full((len(images), 1, s, s), np.nan, np.float32)
        fallback = np.zeros(len(images), bool)
        for i, img in enumerate(images):
            if found[i]:
                X[i] = self.from_raw(img, lms[i])
            elif self.can_fall_back(img):
                X[i] = self.from_raw(img, None)
                fallback[i] = True
        return X, found, fallback
