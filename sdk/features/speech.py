"""Speech features for the emotion model: MFCC + deltas + silence features.

Pipeline name ``speech-mfcc-silence``. Everything is computed with
:mod:`affectedge.native_kernels` (``mfcc``, ``delta``, ``silence_features``),
so the device runs exactly the code used in training.

Input: one utterance, mono float audio in [-1, 1] and its sample rate, passed
explicitly as ``sample_rate_hz`` (no default: a wrong guess silently gives
wrong features). Audio at another rate than the pipeline's ``sr`` (16 kHz by
default) is resampled with ``soxr.resample(y, rate, sr, "HQ")`` first.
Output: float32 array ``(n_frames, n_features)`` with, per frame (hop
``hop_length`` samples)::

    [ n_mfcc MFCC | n_mfcc deltas | n_mfcc delta-deltas | 4 silence | 25 eGeMAPS LLDs | calibrated | valid ]

* MFCC: ``mfcc(y, sr, n_mfcc, n_mels, n_fft, hop_length)`` (librosa-compatible,
  top_db=80); deltas: Savitzky-Golay ``delta`` over ``delta_width`` frames.
* Silence features (Atmaja & Akagi 2020) of the *whole* utterance:
  silence ratio, silent segments, mean and longest silence (s), with
  ``threshold_factor`` x mean RMS as the silence threshold; the same four
  values are repeated on every frame (``silence=False`` drops them).
* eGeMAPS LLDs (``lld=True``): the 25 low-level descriptors of
  :func:`affectedge.native_kernels.gemaps_llds` (pitch, jitter, shimmer,
  HNR, formants, harmonic levels, loudness, spectral balance), computed on
  the same hop and placed on the MFCC frame grid (``SpeechFeatures._llds``).
* ``calibrated`` (``calibration_flag=True``): 1 on every real frame when the
  speaker's own normaliser was applied, 0 when the spec's fallback
  statistics were (the model then uses its uncalibrated head).
* Window: the utterance's frames are cropped to the central ``n_frames``
  when longer (``n_frames`` = 251 frames = 4.0 s at 16 kHz / hop 256) and
  zero-padded at the end when shorter; the last column ``valid`` is 1 for a
  real frame and 0 for padding (padding is zero *after* normalisation).
* Normalisation: each feature column is z-normalised with a
  :class:`SpeakerNormalizer` -- the per-speaker mean/std of that speaker's
  *unlabelled* clips (on a device: a per-user calibration from a few
  utterances) -- when one is passed as ``calibration``; otherwise with the
  training-set statistics stored in the spec (``norm_mean``/``norm_std``),
  or not at all when those are absent. Per-speaker calibration is what the
  model was evaluated with; uncalibrated use is less accurate.
"""

import warnings

import numpy as np

from affectedge.errors import ParameterError

__all__ = ["SpeakerNormalizer", "SpeechFeatures"]

_SILENCE_NAMES = ("silence_ratio", "silent_segments", "mean_silence_s", "longest_silence_s")
N_LLD = 25  # len(affectedge.native_kernels.gemaps.LLD_NAMES)
LLD_SHIFT = 1  # MFCC frames are centred, LLD frames left-aligned: see SpeechFeatures._llds


class SpeakerNormalizer:
    """Per-speaker (per-user) feature statistics: column mean and std.

    Fit it on the *unnormalised* frame features of a speaker's clips
    (``SpeechFeatures.frames(audio, sample_rate_hz)`` of each, no labels needed), then pass
    it as ``calibration`` to the pipeline. Statistics are taken over all real
    frames of all clips together.
    """

    def __init__(self, mean, std):
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)
        if self.mean.shape != self.std.shape or self.mean.ndim != 1:
            raise ParameterError(f"calibration mean/std must be 1-D of one length; got {self.mean.shape}, {self.std.shape}")
        if not (np.all(np.isfinite(self.mean)) and np.all(np.isfinite(self.std))):
            raise ParameterError("calibration mean/std contain NaN or inf")

    @classmethod
    def fit(cls, frame_sets, *, min_std=1e-3):
        """Statistics of a list of ``(n_frames, n_features)`` raw feature arrays."""
        frame_sets = [np.asarray(f, dtype=np.float64) for f in frame_sets]
        if not frame_sets:
            raise ParameterError("SpeakerNormalizer.fit needs at least one clip's features")
        widths = {f.shape[1] for f in frame_sets if f.ndim == 2}
        if len(widths) != 1 or any(f.ndim != 2 for f in frame_sets):
            raise ParameterError("SpeakerNormalizer.fit needs 2-D (frames, features) arrays of one width")
        allf = np.concatenate(frame_sets, axis=0)
        return cls(allf.mean(axis=0), np.maximum(allf.std(axis=0), min_std))

    @classmethod
    def from_audio(cls, pipeline, clips, *, sample_rate_hz=None):
        """Calibrate from unlabelled audio clips of one speaker, all at ``sample_rate_hz``."""
        return cls.fit([pipeline.frames(c, sample_rate_hz) for c in clips])

    def apply(self, frames):
        if frames.shape[-1] != self.mean.shape[0]:
            raise ParameterError(
                f"calibration has {self.mean.shape[0]} features but the pipeline computes {frames.shape[-1]}; "
                "recalibrate with this pipeline")
        return (frames - self.mean) / self.std

    def to_dict(self):
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d):
        return cls(d["mean"], d["std"])


class SpeechFeatures:
    """MFCC + deltas + silence features, fixed frame window (see module doc)."""

    name = "speech-mfcc-silence"
    input_kind = "audio"

    def __init__(self, *, sr=16000, n_mfcc=20, n_mels=40, n_fft=512, hop_length=256, delta_width=9,
                 n_frames=251, silence=True, threshold_factor=0.3, silence_frame_length=2048,
                 silence_hop_length=512, lld=False, calibration_flag=False, norm_mean=None, norm_std=None,
                 **unknown):
        if unknown:
            raise ParameterError(f"speech-mfcc-silence has no parameter(s) {sorted(unknown)}; "
                                 "the card was written by another version -- retrain or update affectedge")
        def _int(v, name, lo):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise ParameterError(f"{name}={v!r} must be an integer >= {lo}")
            return int(v)

        self.sr = _int(sr, "sr", 1000)
        self.n_mfcc = _int(n_mfcc, "n_mfcc", 1)
        if not 13 <= self.n_mfcc <= 40:
            raise ParameterError(f"n_mfcc={n_mfcc} must be between 13 and 40")
        self.n_mels = _int(n_mels, "n_mels", self.n_mfcc)
        self.n_fft = _int(n_fft, "n_fft", 16)
        self.hop_length = _int(hop_length, "hop_length", 1)
        self.delta_width = _int(delta_width, "delta_width", 3)
        if self.delta_width % 2 == 0:
            raise ParameterError(f"delta_width={delta_width} must be odd")
        self.n_frames = _int(n_frames, "n_frames", self.delta_width)
        self.silence = bool(silence)
        try:
            self.threshold_factor = float(threshold_factor)
        except (TypeError, ValueError):
            raise ParameterError(f"threshold_factor={threshold_factor!r} must be a number") from None
        if not 0 < self.threshold_factor < 1:
            raise ParameterError(f"threshold_factor={threshold_factor!r} must be in (0, 1)")
        self.silence_frame_length = _int(silence_frame_length, "silence_frame_length", 16)
        self.silence_hop_length = _int(silence_hop_length, "silence_hop_length", 1)
        self.lld = bool(lld)
        if self.lld and self.sr < 10000:
            raise ParameterError(f"lld=True needs sr >= 10000 Hz (eGeMAPS bands reach 5 kHz); got sr={self.sr}")
        self.calibration_flag = bool(calibration_flag)
        self.n_frame_features = 3 * self.n_mfcc + (4 if self.silence else 0) + (N_LLD if self.lld else 0)
        self.n_features = self.n_frame_features + (1 if self.calibration_flag else 0) + 1
        self.norm = None
        if (norm_mean is None) != (norm_std is None):
            raise ParameterError("norm_mean and norm_std must be given together")
        if norm_mean is not None:
            self.norm = SpeakerNormalizer(norm_mean, norm_std)
            if self.norm.mean.shape[0] != self.n_frame_features:
                raise ParameterError(
                    f"norm_mean has {self.norm.mean.shape[0]} values; this spec computes {self.n_frame_features} "
                    "features")

    # ------------------------------------------------------------------ spec
    @property
    def spec(self):
        d = {
            "sr": self.sr, "n_mfcc": self.n_mfcc, "n_mels": self.n_mels, "n_fft": self.n_fft,
            "hop_length": self.hop_length, "delta_width": self.delta_width, "n_frames": self.n_frames,
            "silence": self.silence, "threshold_factor": self.threshold_factor,
            "silence_frame_length": self.silence_frame_length, "silence_hop_length": self.silence_hop_length,
        }
        if self.lld:
            d["lld"] = True
        if self.calibration_flag:
            d["calibration_flag"] = True
        if self.norm is not None:
            d["norm_mean"] = [float(x) for x in self.norm.mean]
            d["norm_std"] = [float(x) for x in self.norm.std]
        return d

    @property
    def input_shape(self):
        return (self.n_frames, self.n_features)

    @property
    def window_s(self):
        return (self.n_frames - 1) * self.hop_length / self.sr

    @property
    def feature_names(self):
        m = [f"mfcc{i}" for i in range(self.n_mfcc)]
        names = m + [f"d_{x}" for x in m] + [f"dd_{x}" for x in m]
        if self.silence:
            names += list(_SILENCE_NAMES)
        if self.lld:
            from affectedge.native_kernels.gemaps import LLD_NAMES

            names += ["egemaps_" + n for n in LLD_NAMES]
        return names + (["calibrated"] if self.calibration_flag else []) + ["valid"]

    def with_norm(self, normalizer):
        """A copy of this pipeline whose uncalibrated fallback uses ``normalizer``."""
        spec = self.spec
        spec["norm_mean"] = [float(f"{v:.7g}") for v in normalizer.mean]  # float32 precision, readable card
        spec["norm_std"] = [float(f"{v:.7g}") for v in normalizer.std]
        return type(self)(**spec)

    # --------------------------------------------------------------- compute
    def _rate(self, sample_rate_hz, sr, where):
        if sr is not None:
            warnings.warn(f"SpeechFeatures.{where}(..., sr=) is deprecated; pass sample_rate_hz=", DeprecationWarning,
                          stacklevel=3)
            if sample_rate_hz is not None and float(sample_rate_hz) != float(sr):
                raise ParameterError(f"sample_rate_hz={sample_rate_hz!r} and sr={sr!r} disagree; pass only "
                                     "sample_rate_hz")
            sample_rate_hz = sr if sample_rate_hz is None else sample_rate_hz
        if sample_rate_hz is None:
            raise ParameterError(
                f"the audio's sample rate is needed: pass sample_rate_hz= (e.g. pipeline(y, sample_rate_hz=sr) with "
                f"y, sr = soundfile.read(path)); audio at another rate than {self.sr} Hz is resampled, but the "
                "pipeline never guesses the rate")
        from affectedge.native_kernels._validate import check_rate

        return check_rate(sample_rate_hz, "sample_rate_hz")

    def _check_audio(self, audio, sample_rate_hz):
        y = np.asarray(audio)
        if y.ndim == 2 and 1 in y.shape:
            y = y.reshape(-1)
        if y.ndim != 1:
            raise ParameterError(f"audio must be mono 1-D samples; got shape {y.shape}")
        if not np.issubdtype(y.dtype, np.floating):
            raise ParameterError(f"audio must be float samples in [-1, 1]; got dtype {y.dtype} "
                                 "(use affectedge.io.read_audio)")
        if not np.all(np.isfinite(y)):
            raise ParameterError("audio contains NaN or inf samples")
        if sample_rate_hz != self.sr:
            from ._resample import resample

            y = resample(y.astype(np.float32, copy=False), sample_rate_hz, self.sr)
        y = y.astype(np.float32, copy=False)
        if y.shape[0] < self.n_fft:
            raise ParameterError(f"audio has {y.shape[0]} samples at {self.sr} Hz; at least n_fft={self.n_fft} "
                                 f"({self.n_fft / self.sr:.3f} s) are needed")
        return y

    def frames(self, audio, sample_rate_hz=None, *, sr=None):
        """Unnormalised features of every frame of the utterance, ``(frames, n_frame_features)``.

        ``sample_rate_hz``: the audio's rate (required; resampled to the
        pipeline's ``sr`` when different). No cropping or padding; used to
        calibrate a :class:`SpeakerNormalizer`.
        """
        from affectedge.native_kernels import delta, mfcc, silence_features

        y = self._check_audio(audio, self._rate(sample_rate_hz, sr, "frames"))
        m = mfcc(y, sr=self.sr, n_mfcc=self.n_mfcc, n_mels=self.n_mels, n_fft=self.n_fft,
                 hop_length=self.hop_length)  # (n_mfcc, T)
        t = m.shape[1]
        if t < self.delta_width:  # too short for the delta window: repeat the edge frames
            m = np.pad(m, ((0, 0), (0, self.delta_width - t)), mode="edge")
        parts = [m, delta(m, width=self.delta_width), delta(m, width=self.delta_width, order=2)]
        f = np.concatenate(parts, axis=0).T[:t]
        if self.silence:
            s = silence_features(y, sr=self.sr, threshold_factor=self.threshold_factor,
                                 frame_length=self.silence_frame_length, hop_length=self.silence_hop_length)
            f = np.concatenate([f, np.broadcast_to(s.as_array(np.float32), (f.shape[0], 4))], axis=1)
        if self.lld:
            f = np.concatenate([f, self._llds(y, f.shape[0])], axis=1)
        return np.ascontiguousarray(f, dtype=np.float32)

    def _llds(self, y, t):
        """eGeMAPS LLDs on the MFCC frame grid: LLD frame k (samples [k hop, k hop + 60 ms)) goes to MFCC
        frame k + LLD_SHIFT (MFCC frame j is centred on sample j hop); the edges repeat the nearest frame."""
        from affectedge.native_kernels.gemaps import egemaps_llds

        need = int(round(0.080 * self.sr))
        yy = y if y.shape[0] >= need else np.pad(y, (0, need - y.shape[0]))
        ll = egemaps_llds(yy, self.sr, hop_length=self.hop_length).llds
        idx = np.clip(np.arange(t) - LLD_SHIFT, 0, ll.shape[0] - 1)
        return ll[idx].astype(np.float32)

    def window(self, frames, calibration=None, *, offset=None, calibrated=None):
        """Normalise, crop (central ``n_frames``, or from ``offset``) and pad; adds the valid column.

        With ``calibration_flag``, the ``calibrated`` column is 1 on real frames when ``calibration`` (the
        speaker's own normaliser) is given and 0 when the spec's fallback statistics are used;
        ``calibrated=`` overrides it (training passes pooled statistics as an uncalibrated normaliser).
        """
        if calibrated is None:
            calibrated = calibration is not None
        if calibration is None:
            calibration = self.norm
        elif isinstance(calibration, dict):
            calibration = SpeakerNormalizer.from_dict(calibration)
        elif not isinstance(calibration, SpeakerNormalizer):
            raise ParameterError("calibration must be a SpeakerNormalizer (or its to_dict()), or None")
        f = frames if calibration is None else calibration.apply(frames)
        t = f.shape[0]
        if t > self.n_frames:
            start = (t - self.n_frames) // 2 if offset is None else int(min(max(offset, 0), t - self.n_frames))
            f = f[start:start + self.n_frames]
            t = self.n_frames
        out = np.zeros(self.input_shape, dtype=np.float32)
        out[:t, :self.n_frame_features] = f
        if self.calibration_flag:
            out[:t, -2] = 1.0 if calibrated else 0.0
        out[:t, -1] = 1.0
        return out

    def __call__(self, audio, calibration=None, *, sample_rate_hz=None, sr=None):
        """Model input ``(n_frames, n_features)`` float32 for one utterance at ``sample_rate_hz`` (required)."""
        return self.window(self.frames(audio, self._rate(sample_rate_hz, sr, "__call__")), calibration)

    def __repr__(self):
        return f"SpeechFeatures(n_mfcc={self.n_mfcc}, n_frames={self.n_frames}, silence={self.silence}, " \
               f"threshold_factor={self.threshold_factor}, lld={self.lld})"
