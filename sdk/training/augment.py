"""Waveform augmentation for speech training: other speakers, rooms, microphones and lines.

Each augmentation is a function ``f(y, sr, rng) -> y'`` on float32 mono audio
in [-1, 1]; :data:`CONDITIONS` groups them into recording *conditions*, each
a chain with random parameters drawn per clip. The training code applies one
condition to every clip of a training speaker and fits that speaker's
normaliser on the augmented clips, as a user calibrating in that room with
that microphone would. Chosen after the cross-corpus speech-emotion
literature: speed perturbation (Ko et al. 2015, Kaldi's 0.9/1.0/1.1),
additive noise at 5-20 dB SNR and reverberation (Ko et al. 2017; Lotfian &
Busso 2017 for emotion), gain changes, and telephone band-limiting
(300-3400 Hz, 8 kHz, mu-law).

* ``speed``: resample by a factor in [0.9, 1.1] and play at the original
  rate (changes tempo and pitch together, as Kaldi's speed perturbation).
* ``noise``: white, pink or brown noise (shaped in the frequency domain)
  or *babble* (a sum of 3-5 other clips given in ``babble``) at an SNR in
  ``snr_db`` (default 5-20 dB), measured on the whole clip.
* ``reverb``: convolution with a synthetic room impulse response: a direct
  path then exponentially decaying Gaussian noise with RT60 in 0.2-0.8 s
  (direct-to-reverberant ratio 0-10 dB), level restored.
* ``gain``: a gain in [-12, +6] dB, clipped to [-1, 1].
* ``telephone``: 4th-order Butterworth band-pass 300-3400 Hz, resampled
  to 8 kHz and back, mu-law (8 bit) companding.

No augmentation creates NaN or silence from speech; every output is
float32 of the input's length (``speed`` changes the length, by design).
"""

import numpy as np

__all__ = ["CONDITIONS", "TRAIN_CONDITIONS", "apply_condition", "gain", "noise", "reverb", "speed", "telephone"]


def _rms(y):
    return float(np.sqrt(np.mean(np.square(y, dtype=np.float64)) + 1e-20))


def speed(y, sr, rng, *, low=0.9, high=1.1):
    import soxr

    factor = float(rng.uniform(low, high))
    # played back at sr, audio resampled to sr / factor lasts 1 / factor as long and is factor higher
    return soxr.resample(y.astype(np.float32), sr, sr / factor, "HQ").astype(np.float32)


def _coloured(n, rng, exponent):
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.shape[0], dtype=np.float64)
    f[0] = 1.0
    spec = spec / f ** (exponent / 2.0)
    x = np.fft.irfft(spec, n=n)
    return x / (np.std(x) + 1e-12)


def noise(y, sr, rng, *, snr_db=(5.0, 20.0), babble=None):
    """Additive noise at a random SNR; ``babble``: list of other speakers' clips (float arrays) to mix."""
    n = y.shape[0]
    kinds = ["white", "pink", "brown"] + (["babble"] if babble else [])
    kind = kinds[int(rng.integers(len(kinds)))]
    if kind == "babble":
        z = np.zeros(n)
        for _ in range(int(rng.integers(3, 6))):
            c = np.asarray(babble[int(rng.integers(len(babble)))], dtype=np.float64)
            if c.shape[0] < n:
                c = np.tile(c, int(np.ceil(n / max(c.shape[0], 1))))
            s = int(rng.integers(0, c.shape[0] - n + 1))
            z += c[s:s + n] / (_rms(c[s:s + n]) + 1e-12)
    else:
        z = _coloured(n, rng, {"white": 0.0, "pink": 1.0, "brown": 2.0}[kind])
    snr = float(rng.uniform(*snr_db))
    z = z * (_rms(y) / (_rms(z) + 1e-12)) * 10.0 ** (-snr / 20.0)
    out = y + z
    peak = np.max(np.abs(out))
    return (out / peak * 0.99 if peak > 0.99 else out).astype(np.float32)


def reverb(y, sr, rng, *, rt60=(0.2, 0.8), drr_db=(0.0, 10.0)):
    from scipy.signal import fftconvolve

    t60 = float(rng.uniform(*rt60))
    n = int(t60 * sr)
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-6.9078 * t / t60)  # -60 dB at t60
    tail[: int(0.002 * sr)] = 0.0  # a 2 ms gap after the direct path
    drr = float(rng.uniform(*drr_db))
    tail *= 10.0 ** (-drr / 20.0) / (np.sqrt(np.sum(tail ** 2)) + 1e-12)
    h = tail
    h[0] = 1.0
    out = fftconvolve(y.astype(np.float64), h)[: y.shape[0]]
    out *= _rms(y) / (_rms(out) + 1e-12)
    peak = np.max(np.abs(out))
    return (out / peak * 0.99 if peak > 0.99 else out).astype(np.float32)


def gain(y, sr, rng, *, db=(-12.0, 6.0)):
    g = 10.0 ** (float(rng.uniform(*db)) / 20.0)
    return np.clip(y * g, -1.0, 1.0).astype(np.float32)


def telephone(y, sr, rng):
    import soxr
    from scipy.signal import butter, sosfilt

    sos = butter(4, [300.0, 3400.0], btype="bandpass", fs=sr, output="sos")
    x = sosfilt(sos, y.astype(np.float64))
    x8 = soxr.resample(x.astype(np.float32), sr, 8000, "HQ").astype(np.float64)
    mu = 255.0
    x8 = np.clip(x8, -1.0, 1.0)
    q = np.round((np.sign(x8) * np.log1p(mu * np.abs(x8)) / np.log1p(mu) + 1.0) * 127.5) / 127.5 - 1.0
    x8 = np.sign(q) * (np.expm1(np.abs(q) * np.log1p(mu)) / mu)
    out = soxr.resample(x8.astype(np.float32), 8000, sr, "HQ")
    if out.shape[0] != y.shape[0]:
        out = np.pad(out, (0, max(0, y.shape[0] - out.shape[0])))[: y.shape[0]]
    return out.astype(np.float32)


# Recording conditions: each is a chain applied with its own random parameters per clip.
TRAIN_CONDITIONS = ("room", "phone", "street")
CONDITIONS = {
    "room": ("speed", "reverb", "noise", "gain"),
    "phone": ("speed", "telephone", "noise", "gain"),
    "street": ("speed", "noise", "gain"),
}
_FUNCS = {"speed": speed, "noise": noise, "reverb": reverb, "gain": gain, "telephone": telephone}


def apply_condition(y, sr, condition, rng, *, babble=None, snr_db=(5.0, 20.0), rt60=(0.2, 0.8)):
    """``y`` through the chain of ``CONDITIONS[condition]`` (float32); ``snr_db``/``rt60``: parameter ranges."""
    y = np.asarray(y, dtype=np.float32)
    for step in CONDITIONS[condition]:
        if step == "noise":
            y = noise(y, sr, rng, babble=babble, snr_db=snr_db)
        elif step == "reverb":
            y = reverb(y, sr, rng, rt60=rt60)
        else:
            y = _FUNCS[step](y, sr, rng)
    return y
