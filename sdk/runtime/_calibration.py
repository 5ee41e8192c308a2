"""Per-user calibration on the device: running feature statistics over the user's own speech.

The speech model was evaluated with per-speaker normalisation (each feature
column z-scored with that speaker's mean and std). :class:`OnlineCalibration`
builds the same statistics live: Welford running mean/variance over the
unnormalised frame features of every window the quality gate passes (each
frame counted once), from the first seconds of a session on. Once
``min_speech_s`` of speech is in, :meth:`normalizer` gives a
:class:`~affectedge.features.speech.SpeakerNormalizer` equal to
``SpeakerNormalizer.fit`` on the same frames. ``save``/``load`` keep it for the
next session (``affectedge calibrate ... --out me.json``, ``run --calibration
me.json``).
"""

import json
from pathlib import Path

import numpy as np

from affectedge.errors import ParameterError

__all__ = ["OnlineCalibration", "load_calibration"]

FORMAT = "affectedge.calibration"


class OnlineCalibration:
    def __init__(self, n_features, *, frame_s, min_speech_s=10.0, min_std=1e-3, model="speech-emotion",
                 pipeline_spec=None):
        self.n_features = int(n_features)
        self.frame_s = float(frame_s)
        self.min_speech_s = float(min_speech_s)
        self.min_std = float(min_std)
        self.model = model
        self.pipeline_spec = pipeline_spec
        self.count = 0
        self._mean = np.zeros(self.n_features)
        self._m2 = np.zeros(self.n_features)

    @property
    def speech_s(self):
        return self.count * self.frame_s

    @property
    def ready(self):
        return self.count > 1 and self.speech_s >= self.min_speech_s

    def update(self, frames):
        """Add unnormalised frames (n, n_features) (Chan et al. parallel update of mean / M2)."""
        f = np.asarray(frames, dtype=np.float64)
        if f.ndim != 2 or f.shape[1] != self.n_features:
            raise ParameterError(f"calibration frames must be (n, {self.n_features}); got {f.shape}")
        f = f[np.all(np.isfinite(f), axis=1)]
        n = f.shape[0]
        if n == 0:
            return
        m_b = f.mean(axis=0)
        self._combine(n, m_b, ((f - m_b) ** 2).sum(axis=0))

    def merge(self, other):
        """Add another calibration's statistics (e.g. one per file, merged per speaker); returns self."""
        if other.n_features != self.n_features:
            raise ParameterError(f"cannot merge a calibration of {other.n_features} features into one of "
                                 f"{self.n_features}")
        if other.count:
            self._combine(other.count, other._mean, other._m2)
        return self

    def _combine(self, n, m_b, m2_b):
        tot = self.count + n
        d = m_b - self._mean
        self._mean = self._mean + d * (n / tot)
        self._m2 = self._m2 + m2_b + d * d * (self.count * n / tot)
        self.count = tot

    def mean_std(self):
        std = np.sqrt(self._m2 / max(self.count, 1))
        return self._mean.copy(), np.maximum(std, self.min_std)

    def normalizer(self):
        from affectedge.features.speech import SpeakerNormalizer

        if self.count == 0:
            raise ParameterError("the calibration holds no speech yet; record or pass some speech first")
        return SpeakerNormalizer(*self.mean_std())

    def to_dict(self):
        mean, std = self.mean_std()
        return {"format": FORMAT, "version": 1, "model": self.model, "n_features": self.n_features,
                "frames": int(self.count), "speech_s": round(self.speech_s, 3), "frame_s": self.frame_s,
                "min_speech_s": self.min_speech_s, "mean": mean.tolist(), "std": std.tolist(),
                "m2": self._m2.tolist(), "pipeline_spec": {k: v for k, v in (self.pipeline_spec or {}).items()
                                                           if k not in ("norm_mean", "norm_std")}}

    def save(self, path):
        """Write atomically (an existing file survives a failure)."""
        from affectedge.io import atomic_output

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path) as fh:
            json.dump(self.to_dict(), fh, indent=1)
        return path

    @classmethod
    def from_dict(cls, d, *, source="calibration"):
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ParameterError(f"{source} is not an affectedge calibration file (no \"format\": \"{FORMAT}\"); "
                                 "make one with 'affectedge calibrate --audio FILE... --out me.json'")
        try:
            c = cls(int(d["n_features"]), frame_s=float(d["frame_s"]), min_speech_s=float(d.get("min_speech_s", 10)),
                    model=d.get("model", "speech-emotion"), pipeline_spec=d.get("pipeline_spec"))
            c.count = int(d["frames"])
            c._mean = np.asarray(d["mean"], dtype=np.float64)
            c._m2 = np.asarray(d.get("m2") or (np.asarray(d["std"]) ** 2 * c.count), dtype=np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise ParameterError(f"{source} is damaged ({type(exc).__name__}: {exc}); calibrate again") from None
        if c._mean.shape != (c.n_features,) or c._m2.shape != (c.n_features,) or not np.all(np.isfinite(c._mean)):
            raise ParameterError(f"{source} holds statistics of the wrong size or NaN; calibrate again")
        return c


def load_calibration(path, *, n_features=None):
    p = Path(path)
    try:
        d = json.loads(p.read_text())
    except FileNotFoundError:
        raise ParameterError(f"calibration file {str(p)!r} does not exist; make one with "
                             "'affectedge calibrate --audio mic --out me.json'") from None
    except (OSError, ValueError) as exc:
        raise ParameterError(f"calibration file {str(p)!r} is not readable JSON ({type(exc).__name__}); "
                             "calibrate again") from None
    c = OnlineCalibration.from_dict(d, source=f"calibration file {str(p)!r}")
    if n_features is not None and c.n_features != n_features:
        raise ParameterError(f"calibration file {str(p)!r} has {c.n_features} features but the speech model "
                             f"computes {n_features}; it was made for another model -- calibrate again")
    return c
