"""EEG feature pipelines for the valence/arousal (DEAP) and mental-state (Muse) models.

Both are computed with :mod:`affectedge.native_kernels.eeg` (Welch PSD, band
power, differential entropy), so the device runs exactly the training code.
``__call__(raw, *, sample_rate_hz=None)``: a raw window recorded at another
rate than the pipeline's ``fs`` is resampled along time with soxr ("HQ")
first; ``None`` means the window is already at ``fs`` (``Model.predict_raw``
requires the rate for raw windows and never assumes it).

``eeg-deap-de`` (:class:`DeapDEFeatures`)
    Model input ``(32, 5)`` float32: differential entropy (nats) of 5 bands
    for the 32 DEAP electrodes (node-major: row = electrode in DEAP order,
    column = band). ``__call__`` accepts

    * a precomputed DEAP feature vector, ``(160,)`` band-major as in
      ``EEG_feature.txt`` (32 theta, 32 slow-alpha, 32 alpha, 32 beta, 32
      gamma) or already ``(32, 5)``: passed through (re-ordered);
    * a raw window ``(32, samples)`` at ``fs`` Hz (DEAP's preprocessed
      signals: 128 Hz, microvolts, ``samples >= nperseg``): DE per band with
      ``differential_entropy(x, fs, bands, method="psd", nperseg, noverlap,
      window="hann")``, i.e. ``0.5 * ln(2 pi e * band power)``.

    Known limit: the dataset's precomputed features come from DEAP's own
    preprocessing / feature code (values about 3-5 nats); DE computed here on
    a raw window follows the same definition but its absolute scale differs
    (units, filter, window length), so on-device DE is *not* interchangeable
    with the precomputed features without a per-user calibration.

``eeg-muse-bands`` (:class:`MuseBandFeatures`)
    Model input ``(4, 3 * n_bands)`` float32 from a ``(4, samples)`` Muse
    window (TP9, AF7, AF8, TP10 at 256 Hz, microvolts, ``window_s`` seconds:
    longer windows keep the last ``window_s`` seconds, shorter ones are
    refused). Per channel: ``log10`` absolute band power (uV^2), relative
    band power (over the span of all bands), and DE (nats) of each band.
"""

import numpy as np

from affectedge.errors import ParameterError

__all__ = ["DEAP_BANDS", "MUSE_BANDS", "DeapDEFeatures", "MuseBandFeatures"]

DEAP_BANDS = (("theta", 4.0, 8.0), ("slow_alpha", 8.0, 10.0), ("alpha", 8.0, 12.0),
              ("beta", 12.0, 30.0), ("gamma", 30.0, 45.0))
MUSE_BANDS = (("delta", 1.0, 4.0), ("theta", 4.0, 8.0), ("alpha", 8.0, 13.0),
              ("beta", 13.0, 30.0), ("gamma", 30.0, 45.0))
DEAP_CHANNELS = ("Fp1", "AF3", "F3", "F7", "FC5", "FC1", "C3", "T7", "CP5", "CP1", "P3", "P7", "PO3", "O1", "Oz",
                 "Pz", "Fp2", "AF4", "Fz", "F4", "F8", "FC6", "FC2", "Cz", "C4", "T8", "CP6", "CP2", "P4", "P8",
                 "PO4", "O2")
MUSE_CHANNELS = ("TP9", "AF7", "AF8", "TP10")


def _bands(bands, name):
    try:
        out = tuple((str(b), float(lo), float(hi)) for b, lo, hi in bands)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"{name} must be a list of [name, lo_hz, hi_hz] triples ({exc})") from exc
    if not out:
        raise ParameterError(f"{name} is empty; pass at least one [name, lo_hz, hi_hz]")
    return out


def _no_unknown(unknown, name):
    if unknown:
        raise ParameterError(f"pipeline {name!r} has no parameter(s) {sorted(unknown)}; the model card was written by "
                             "another affectedge version -- retrain with 'affectedge train' or upgrade")


def _as_float(raw, what):
    if isinstance(raw, np.ndarray) and raw.dtype.kind in "fiu":
        x = raw
    else:
        try:
            x = np.asarray(raw, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ParameterError(f"{what} must be a numeric array; could not convert it ({exc})") from exc
    if x.dtype.kind not in "f":
        x = x.astype(np.float64)
    return x


def _resampled(x, rate, fs):
    """``x`` (channels, samples) resampled from ``rate`` to ``fs`` along time (``rate`` None: already at fs)."""
    if rate is None:
        return x
    from affectedge.native_kernels._validate import check_rate

    rate = check_rate(rate, "sample_rate_hz")
    if rate == fs or x.ndim != 2:
        return x
    from ._resample import resample

    if not np.all(np.isfinite(x)):
        raise ParameterError("the EEG window contains NaN or inf; it cannot be resampled (clean it first)")
    return resample(np.asarray(x, dtype=np.float64), rate, fs, axis=1)


class DeapDEFeatures:
    """DEAP differential-entropy features, ``(32 electrodes, 5 bands)`` float32 (see module doc)."""

    name = "eeg-deap-de"
    input_kind = "eeg"
    description = ("(32 electrodes, 5 bands) node-major differential entropy in nats, DE = 0.5 ln(2 pi e band "
                   "power); a precomputed (160,) DEAP vector is band-major; raw windows in microvolts")

    def __init__(self, *, fs=128.0, window_s=4.0, bands=DEAP_BANDS, de_method="psd", nperseg=128,
                 noverlap=64, window="hann", channels=DEAP_CHANNELS, nan_policy="raise", **unknown):
        _no_unknown(unknown, self.name)
        from affectedge.native_kernels._validate import check_choice, check_positive_int, check_rate

        self.fs = check_rate(fs, "fs")
        self.window_s = float(window_s)
        if not self.window_s > 0:
            raise ParameterError(f"window_s={window_s!r} must be > 0 seconds")
        self.bands = _bands(bands, "bands")
        self.de_method = check_choice(de_method, "de_method", ("psd", "gaussian"))
        self.nperseg = check_positive_int(nperseg, "nperseg")
        self.noverlap = int(noverlap)
        self.window = str(window)
        self.channels = tuple(str(c) for c in channels)
        self.nan_policy = check_choice(nan_policy, "nan_policy", ("raise", "zero", "interpolate"))
        if len(self.channels) * len(self.bands) < 1:
            raise ParameterError("channels and bands must not be empty")

    @property
    def spec(self):
        return {
            "fs": self.fs, "window_s": self.window_s, "bands": [list(b) for b in self.bands],
            "de_method": self.de_method, "nperseg": self.nperseg, "noverlap": self.noverlap,
            "window": self.window, "channels": list(self.channels), "nan_policy": self.nan_policy,
        }

    @property
    def input_shape(self):
        return (len(self.channels), len(self.bands))

    def from_precomputed(self, vec):
        """(n_bands * n_channels,) band-major or (n_channels, n_bands) -> (n_channels, n_bands) float32."""
        c, b = self.input_shape
        x = _as_float(vec, "DEAP feature vector")
        if x.shape == (c * b,):
            x = x.reshape(b, c).T
        elif x.shape != (c, b):
            raise ParameterError(f"a precomputed DEAP feature vector must be ({c * b},) band-major or ({c}, {b}); "
                                 f"got shape {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ParameterError("the DEAP feature vector contains NaN or inf")
        return np.ascontiguousarray(x, dtype=np.float32)

    def is_raw_window(self, raw):
        """True when ``raw`` is a raw (channels, samples) window, False for a precomputed feature vector."""
        c, b = self.input_shape
        return np.shape(raw) not in ((c * b,), (c, b))

    def __call__(self, raw, *, sample_rate_hz=None):
        """Features of a raw window at ``sample_rate_hz`` (default: the pipeline's ``fs``; other rates are
        resampled with soxr), or a precomputed feature vector passed through."""
        from affectedge.native_kernels import differential_entropy

        c, b = self.input_shape
        x = _as_float(raw, "EEG input")
        if x.shape in ((c * b,), (c, b)):
            return self.from_precomputed(x)
        x = _resampled(x, sample_rate_hz, self.fs)
        if x.ndim != 2 or x.shape[0] != c:
            raise ParameterError(
                f"EEG input has shape {x.shape}; pass a raw window ({c}, samples) at {self.fs:g} Hz in the DEAP "
                f"channel order ({', '.join(self.channels[:4])}, ...), or a precomputed feature vector "
                f"({c * b},) / ({c}, {b})")
        if x.shape[1] < self.nperseg:
            raise ParameterError(
                f"the raw window has {x.shape[1]} samples, fewer than nperseg={self.nperseg} "
                f"({self.nperseg / self.fs:g} s at {self.fs:g} Hz); pass at least {self.nperseg} samples "
                f"(the model was built for {self.window_s:g} s windows)")
        de = differential_entropy(x, self.fs, bands=self.bands, method=self.de_method, nperseg=self.nperseg,
                                  noverlap=self.noverlap, window=self.window, nan_policy=self.nan_policy)
        return np.ascontiguousarray(de, dtype=np.float32)


class MuseBandFeatures:
    """Muse band features, ``(4 channels, 3 * n_bands)`` float32 (see module doc).

    Columns per channel: ``log10 power`` of each band, then ``relative power``
    of each band, then ``DE`` of each band (:attr:`feature_names`).
    """

    name = "eeg-muse-bands"
    input_kind = "eeg"
    description = ("per channel (TP9, AF7, AF8, TP10): log10(abs band power + log_floor) [uV^2] of each band, "
                   "relative band power of each band, DE = 0.5 ln(2 pi e max(abs band power, log_floor)) [nats]")

    def __init__(self, *, fs=256.0, window_s=4.0, bands=MUSE_BANDS, nperseg=256, noverlap=128, window="hann",
                 method="rectangle", de_method="psd", log_floor=1e-6, channels=MUSE_CHANNELS,
                 nan_policy="interpolate", **unknown):
        _no_unknown(unknown, self.name)
        from affectedge.native_kernels._validate import check_choice, check_positive_int, check_rate

        self.fs = check_rate(fs, "fs")
        self.window_s = float(window_s)
        self.n_samples = int(round(self.window_s * self.fs))
        self.bands = _bands(bands, "bands")
        self.nperseg = check_positive_int(nperseg, "nperseg")
        self.noverlap = int(noverlap)
        if self.n_samples < self.nperseg:
            raise ParameterError(f"window_s={window_s!r} gives {self.n_samples} samples, fewer than "
                                 f"nperseg={self.nperseg}; use a longer window or a smaller nperseg")
        self.window = str(window)
        self.method = check_choice(method, "method", ("rectangle", "trapezoid"))
        self.de_method = check_choice(de_method, "de_method", ("psd", "gaussian"))
        self.log_floor = float(log_floor)
        self.channels = tuple(str(c) for c in channels)
        self.nan_policy = check_choice(nan_policy, "nan_policy", ("raise", "zero", "interpolate"))

    @property
    def spec(self):
        return {
            "fs": self.fs, "window_s": self.window_s, "bands": [list(b) for b in self.bands],
            "nperseg": self.nperseg, "noverlap": self.noverlap, "window": self.window, "method": self.method,
            "de_method": self.de_method, "log_floor": self.log_floor, "channels": list(self.channels),
            "nan_policy": self.nan_policy,
        }

    @property
    def input_shape(self):
        return (len(self.channels), 3 * len(self.bands))

    @property
    def feature_names(self):
        names = [b[0] for b in self.bands]
        return [f"{n}_log_power" for n in names] + [f"{n}_rel_power" for n in names] + [f"{n}_de" for n in names]

    def is_raw_window(self, raw):
        return True

    def __call__(self, raw, *, sample_rate_hz=None):
        """Features of a ``(4, samples)`` window at ``sample_rate_hz`` (default: the pipeline's ``fs``; other
        rates are resampled with soxr)."""
        from affectedge.native_kernels import band_power

        c = len(self.channels)
        x = _as_float(raw, "Muse window")
        if x.ndim == 2 and x.shape[0] == c:
            x = _resampled(x, sample_rate_hz, self.fs)
        if x.ndim != 2 or x.shape[0] != c:
            hint = " (it looks like (samples, channels): pass x.T)" if x.ndim == 2 and x.shape[1] == c else ""
            raise ParameterError(f"Muse window has shape {x.shape}; ({c}, samples) is required with channels "
                                 f"{', '.join(self.channels)}{hint}")
        if x.shape[1] < self.n_samples:
            raise ParameterError(
                f"Muse window has {x.shape[1]} samples but the model needs {self.n_samples} "
                f"({self.window_s:g} s at {self.fs:g} Hz); collect a longer window")
        x = np.ascontiguousarray(x[:, x.shape[1] - self.n_samples:], dtype=np.float64)
        kw = dict(bands=self.bands, nperseg=self.nperseg, noverlap=self.noverlap, window=self.window,
                  method=self.method, nan_policy=self.nan_policy)
        absolute = band_power(x, self.fs, **kw)
        relative = band_power(x, self.fs, relative=True, **kw)
        relative = np.nan_to_num(relative, nan=0.0, posinf=0.0, neginf=0.0)
        if self.de_method == "psd":
            de = 0.5 * np.log(2 * np.pi * np.e * np.maximum(absolute, self.log_floor))
        else:
            from affectedge.native_kernels import differential_entropy

            de = differential_entropy(x, self.fs, bands=self.bands, method="gaussian", nan_policy=self.nan_policy)
        logp = np.log10(absolute + self.log_floor)
        return np.ascontiguousarray(np.concatenate([logp, relative, de], axis=1), dtype=np.float32)
