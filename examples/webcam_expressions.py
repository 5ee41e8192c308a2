"""Webcam expressions: camera -> face landmarks -> facial expression, printed per frame (optional preview window).

    python examples/webcam_expressions.py                      # camera 0, Ctrl-C to stop
    python examples/webcam_expressions.py --camera camera:1 --preview
    python examples/webcam_expressions.py --camera clip.mp4    # a video file
    python examples/webcam_expressions.py --camera faces/      # a folder of pictures (each one on its own)
    python examples/webcam_expressions.py --smoke              # a few CK+ pictures and a blank frame (CI)

MediaPipe's Face Landmarker finds the face, its 52 blendshapes and its
landmarks; the zoo model ``face-expression`` maps the blendshapes to an
expression and ``face-expression-pixels`` (a small CNN) reads the face crop
aligned on the landmarks; the two are fused at the probability level
(``FaceOptions(pixel_model=None)`` keeps the cheap blendshape path only). At most ``--fps``
frames a second are classified (the rest are skipped); on a stream the
probabilities are averaged over the last 3 frames. A frame without a face
gives the status ``no_face``, never an expression. ``--preview`` opens an
OpenCV window with the label drawn on the frame (needs a display; press q to
quit). Research weights only; not for decisions about people.
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from affectedge import runtime, sensors
from affectedge.errors import AffectEdgeError
from affectedge.sensors import VideoFrame

# a few CK+ peak frames (48x48 grey) of different expressions, for --smoke
SMOKE_CLASSES = ("happy", "surprise", "sadness")


def data_dir():
    """The shared data folder: $AFFECTEDGE_DATA_DIR, else ../shared/data beside the repository."""
    env = os.environ.get("AFFECTEDGE_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"


def describe(r, name=""):
    t = f"{r.end_ms / 1e3:6.1f} s  " + (f"{name:<32} " if name else "")
    if not r.ok:
        return t + f"({r.status}) {r.detail}"
    top = sorted(zip(r.probs, r.labels), reverse=True)[:3]
    return (t + f"{r.label:<10} {max(r.probs):.2f}  valence {r.valence:+.2f} arousal {r.arousal:+.2f}   ("
            + ", ".join(f"{lab} {p:.2f}" for p, lab in top) + ")")


class Preview:
    """An OpenCV window showing the frame and the latest answer; q or Esc closes it."""

    def __init__(self):
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            # OpenCV's Qt backend aborts the whole process without a display: refuse before that
            sys.exit("error: --preview needs a display (DISPLAY is not set); run without --preview, or with "
                     "ssh -X / on the desktop")
        import cv2

        self.cv2 = cv2
        self.text = "..."
        self.title = "affectedge: facial expression"
        try:
            cv2.namedWindow(self.title)
        except cv2.error as exc:  # opencv-python-headless, or no display (ssh without X forwarding)
            sys.exit(f"error: --preview needs a display and a GUI build of OpenCV (opencv-python): "
                     f"{str(exc).strip().splitlines()[-1]}")

    def show(self, frame, r=None):
        cv2 = self.cv2
        if r is not None:
            self.text = f"{r.label} {max(r.probs):.2f}" if r.ok else f"({r.status})"
        img = cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR)  # sources give RGB, OpenCV draws BGR
        cv2.putText(img, self.text, (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (0, 255, 0), 2)
        cv2.imshow(self.title, img)
        return (cv2.waitKey(1) & 0xFF) not in (ord("q"), 27)

    def close(self):
        self.cv2.destroyAllWindows()


def watch(src, task, preview=None, limit=None):
    """Run frames from ``src`` through ``task``; returns the results."""
    results = []
    with src:
        print(f"video: {src.name}")
        try:
            for frame in src:
                for r in task.push(frame):  # [] for a skipped frame (over --fps)
                    print(describe(r, frame.name), flush=True)
                    results.append(r)
                if preview is not None and not preview.show(frame, results[-1] if results else None):
                    break
                if limit is not None and len(results) >= limit:
                    break
        except KeyboardInterrupt:
            pass
    return results


def smoke():
    ck = data_dir() / "face" / "ckplus48"
    if not ck.is_dir():
        sys.exit(f"smoke: {ck} not found; set AFFECTEDGE_DATA_DIR to the shared data folder")
    with tempfile.TemporaryDirectory() as tmp:  # links to 2 pictures per class: never copies data into the repo
        for c in SMOKE_CLASSES:
            for f in sorted((ck / c).glob("*.png"))[:2]:
                (Path(tmp) / f"{c}_{f.name}").symlink_to(f)
        # independent pictures: IMAGE mode, no tracking or smoothing between them
        task = runtime.FaceTask(runtime.FaceOptions(independent_frames=True, max_fps=100))
        print(f"smoke: CK+ pictures of {', '.join(SMOKE_CLASSES)}; model {task.model.card.id}, labels "
              f"{', '.join(task.model.labels)}")
        with task:
            res = watch(sensors.ImageFolderSource(tmp, fps=10), task)
            # junk: a blank grey frame has no face -> a status, never an expression
            (blank,) = task.push(VideoFrame(np.full((192, 192, 3), 128, np.uint8), 60.0, 99, "blank"))
            print(describe(blank, "blank grey frame"))
    found = [r for r in res if r.ok]
    print(f"faces found in {len(found)} of {len(res)} pictures (48x48 is small: the detector misses some)")
    if not found or blank.ok:
        sys.exit("smoke: FAILED (no face found, or an expression for a blank frame)")
    print("smoke: ok")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--camera", default="camera", help="camera, camera:N, /dev/videoN, a URL, a video file or a folder")
    ap.add_argument("--fps", type=float, default=10.0, help="frames classified per second at most")
    ap.add_argument("--preview", action="store_true", help="show an OpenCV window (needs a display)")
    ap.add_argument("--smoke", action="store_true", help="a few CK+ pictures instead of the camera (CI)")
    a = ap.parse_args()
    try:
        if a.smoke:
            return smoke()
        src = sensors.open_video(a.camera)
        is_folder = Path(a.camera).is_dir()
        task = runtime.FaceTask(runtime.FaceOptions(max_fps=a.fps, independent_frames=is_folder))
        preview = Preview() if a.preview else None
        try:
            with task:
                watch(src, task, preview)
        finally:
            if preview is not None:
                preview.close()
    except AffectEdgeError as exc:  # no camera, a bad path, mediapipe missing: say so, no traceback
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
