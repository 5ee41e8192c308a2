"""Formants and harmonic levels: synthetic vowels, Praat and openSMILE on real speech, JIT vs twin,
streaming, junk and bad input."""

import sys
from pathlib import Path

import numpy as np
import pytest

from affectedge import ParameterError
from affectedge.io import read_wav
from affectedge.native_kernels import (FormantTrack, HarmonicLevels, StreamingFormants, _config, formants,
                                       harmonic_levels)

fm_module = sys.modules["affectedge.native_kernels.formant"]
SR = 16000

# Named tolerances (measured values in brackets).
SYNTH_FORMANT_REL_TOL = 0.05  # median |F - F_true| / F_true on synthetic vowels, f0 120/200 Hz [<= 3.2 %]
SYNTH_BANDWIDTH_FACTOR = 4.0  # bandwidth within [B / 4, 4 B] [0.5-2.5 x]
H1H2_TOL_DB = 0.3  # standard H1-H2 of a harmonic complex with known amplitudes [<= 0.09 dB]
FORMANT_AMP_TOL_DB = 0.4  # standard A_k relative to H1 and H1-A3 [<= 0.19 dB]
OPENSMILE_SEMANTICS_TOL_DB = 1.2  # method="opensmile": "H1-H2" = L(2 f0) - L(3 f0), A_k vs the f0 bin [<= 0.9 dB]
# against Praat (to_formant_burg, 8 EmoDB clips, voiced frames), per-clip median relative difference
PRAAT_MEDIAN_REL_TOL = (0.05, 0.04, 0.035)  # F1, F2, F3 [worst clip 3.65 %, 2.54 %, 2.27 %]
PRAAT_MEAN_MEDIAN_REL_TOL = 0.02  # mean over the clips, each of F1..F3 [1.34 %, 1.18 %, 1.09 %]
PRAAT_MIN_R = (0.45, 0.45)  # per-clip Pearson r of the F1 and F2 tracks [worst clip 0.59, 0.61]
# against openSMILE 2.6.0's own per-frame output (method="opensmile")
OPENSMILE_FORMANT_WITHIN_1HZ_MIN = 0.9  # share of frames with |F - F_openSMILE| < 1 Hz, F1..F3 [0.93-0.98]
OPENSMILE_HARMONICS_TOL_DB = 1e-3  # H1-H2, H1-A3, F1..F3 amplitude vs openSMILE (float32) [<= 3.5e-5 dB]
TWIN_RTOL = {np.float64: 1e-6, np.float32: 1e-5}  # JIT vs NumPy twin [float64: ~1e-14 relative]
HARMONIC_TWIN_ATOL_DB = {np.float64: 1e-6, np.float32: 1e-4}  # [float64: ~1e-7 dB]
STREAM_RTOL = 1e-12  # streamed vs whole clip [0: the same frames go through the same arithmetic]

PRAAT_CLIPS = ("03a01Fa.wav", "08a01Ab.wav", "09a01Ea.wav", "10a01Ac.wav", "11a01Aa.wav", "13a01Ac.wav",
               "14a01Aa.wav", "16a01Ec.wav")  # the first clip of 8 of the 10 speakers (5 female, 3 male)
PARITY_CLIPS = ("03a01Fa.wav", "13a01Ac.wav", "16a01Ec.wav")


def _lfilter(b0, a, x):
    """y[n] = b0 x[n] - a[1] y[n-1] - a[2] y[n-2] (a two-pole IIR, a[0] = 1)."""
    y = np.zeros_like(x)
    y1 = y2 = 0.0
    a1, a2 = a[1], a[2]
    for n in range(x.shape[0]):
        v = b0 * x[n] - a1 * y1 - a2 * y2
        y[n] = v
        y2, y1 = y1, v
    return y


def _vowel(f0, F, B, dur=1.0):
    """Pulse train -> glottal low-pass (-12 dB/oct) -> formant resonators (+ F4, F5) -> lip radiation."""
    x = np.zeros(int(dur * SR))
    x[:: int(round(SR / f0))] = 1.0
    r = np.exp(-np.pi * 100.0 / SR)
    x = _lfilter(1.0, (1.0, -2 * r, r * r), x)
    for f, b in list(zip(F, B)) + [(3500.0, 200.0), (4500.0, 250.0)]:
        rr = np.exp(-np.pi * b / SR)
        a = (1.0, -2 * rr * np.cos(2 * np.pi * f / SR), rr * rr)
        x = _lfilter(sum(a), a, x)
    x = np.diff(x, prepend=0.0)
    return 0.5 * x / np.abs(x).max()


def _harmonic_complex(f0, amps, dur=1.0):
    t = np.arange(int(dur * SR)) / SR
    rng = np.random.default_rng(7)
    return 0.1 * sum(a * np.sin(2 * np.pi * (k + 1) * f0 * t + rng.uniform(0, 2 * np.pi))
                     for k, a in enumerate(amps) if (k + 1) * f0 < SR / 2 - 100)


@pytest.fixture(scope="module")
def emodb(shared_data):
    wav = shared_data / "speech" / "emodb" / "wav"
    out = {}
    for name in sorted(set(PRAAT_CLIPS) | set(PARITY_CLIPS)):
        y, sr = read_wav(wav / name)
        out[name] = (y, sr, wav / name)
    return out


# ------------------------------------------------------------------ synthetic


@pytest.mark.parametrize("f0", [120.0, 200.0])
def test_synthetic_vowels(f0, kernel_mode):
    for F, B in [((700.0, 1220.0, 2600.0), (80.0, 90.0, 120.0)), ((300.0, 2300.0, 3000.0), (60.0, 100.0, 120.0)),
                 ((500.0, 1500.0, 2500.0), (70.0, 90.0, 110.0))]:
        fr = formants(_vowel(f0, F, B), SR)
        assert fr.status == "ok" and fr.n_formants == 3
        assert fr.n_frames == 1 + (SR - 320) // 160  # 20 ms frames, 10 ms hop
        assert fr.valid.all()
        med = np.median(fr.frequency, axis=0)
        np.testing.assert_array_less(np.abs(med - F) / F, SYNTH_FORMANT_REL_TOL, err_msg=f"{F} at f0 {f0}")
        bw = np.median(fr.bandwidth, axis=0)
        assert np.all(bw > np.array(B) / SYNTH_BANDWIDTH_FACTOR) and np.all(bw < np.array(B) * SYNTH_BANDWIDTH_FACTOR)


@pytest.mark.parametrize("f0", [110.0, 123.4, 200.0, 217.7])
def test_harmonic_levels_known_amplitudes(f0, kernel_mode):
    amps = np.full(int(7000 // f0), 0.02)
    amps[[0, 1, 2]] = 1.0, 0.5, 0.1  # H1, H2, H3
    amps[[4, 9, 14]] = 0.2, 0.1, 0.08  # the largest harmonics near F1 = 5 f0, F2 = 10 f0, F3 = 15 f0
    y = _harmonic_complex(f0, amps)
    n = 1 + (y.size - 320) // 160
    f0s = np.full(n, f0)
    F = np.tile([5 * f0, 10 * f0, 15 * f0], (n, 1))
    inner = slice(0, n - 5)  # the last frames' 60 ms windows run past the end (zero-padded)
    h = harmonic_levels(y, SR, f0s, F)
    assert h.status == "ok" and h.valid.all() and h.formant_valid.all()
    assert np.abs(h.h1_h2[inner] - 20 * np.log10(1.0 / 0.5)).max() < H1H2_TOL_DB
    assert np.abs(h.h1_a3[inner] - 20 * np.log10(1.0 / 0.08)).max() < FORMANT_AMP_TOL_DB
    amp_db = 20 * np.log10([0.2, 0.1, 0.08])
    assert np.abs(h.formant_amplitude[inner] - amp_db).max() < FORMANT_AMP_TOL_DB
    # openSMILE's numbering: its "H1" is the harmonic at 2 f0, "H2" at 3 f0
    o = harmonic_levels(y, SR, f0s, F, method="opensmile")
    assert np.abs(o.h1_h2[inner] - 20 * np.log10(0.5 / 0.1)).max() < OPENSMILE_SEMANTICS_TOL_DB
    assert np.abs(o.h1_a3[inner] - 20 * np.log10(0.5 / 0.08)).max() < OPENSMILE_SEMANTICS_TOL_DB
    assert np.abs(o.formant_amplitude[inner] - amp_db).max() < OPENSMILE_SEMANTICS_TOL_DB
    # unvoiced frames and missing formants: 0 and masked
    f0s[::3] = 0.0
    F[1::3, 2] = 0.0
    h = harmonic_levels(y, SR, f0s, F)
    assert not h.valid[::3].any() and (h.h1_h2[::3] == 0).all() and (h.formant_amplitude[::3] == 0).all()
    assert not h.formant_valid[1::3, 2].any() and (h.h1_a3[1::3] == 0).all() and not h.h1_a3_valid[1::3].any()


# ------------------------------------------------------------------ real speech


def test_against_praat_on_emodb(emodb):
    parselmouth = pytest.importorskip("parselmouth")
    medians, rs = [], []
    for name in PRAAT_CLIPS:
        y, sr, path = emodb[name]
        fr = formants(y.astype(np.float64), sr)
        snd = parselmouth.Sound(str(path))
        pf = snd.to_formant_burg(time_step=0.01, max_number_of_formants=5, maximum_formant=5500,
                                 window_length=0.025, pre_emphasis_from=50)
        P = np.array([[pf.get_value_at_time(k, t) for k in (1, 2, 3)] for t in fr.times])
        pp = snd.to_pitch(time_step=0.01)
        f0 = np.array([pp.get_value_at_time(t) for t in fr.times])
        ok = np.isfinite(f0) & (f0 > 0) & np.isfinite(P).all(axis=1) & fr.valid.all(axis=1)
        assert ok.sum() >= 50, name
        med = np.median(np.abs(fr.frequency[ok] - P[ok]) / P[ok], axis=0)
        r = [np.corrcoef(fr.frequency[ok, k], P[ok, k])[0, 1] for k in range(2)]
        np.testing.assert_array_less(med, PRAAT_MEDIAN_REL_TOL, err_msg=name)
        np.testing.assert_array_less(PRAAT_MIN_R, r, err_msg=name)
        medians.append(med)
        rs.append(r)
    assert np.all(np.mean(medians, axis=0) < PRAAT_MEAN_MEDIAN_REL_TOL)


def _opensmile_raw(tmp_path, path):
    opensmile = pytest.importorskip("opensmile")
    core = Path(opensmile.__file__).parent / "core" / "config" / "gemaps" / "v01b" / "GeMAPSv01b_core.lld.conf.inc"
    conf = tmp_path / "raw.conf"
    conf.write_text(
        "[componentInstances:cComponentManager]\ninstance[dataMemory].type=cDataMemory\nprintLevelStats=0\n\n"
        "\\{\\cm[source{?}:include external source]}\n"
        f"\\{{{core}}}\n\n"
        "[componentInstances:cComponentManager]\ninstance[rawconcat].type=cVectorConcat\n\n"
        "[rawconcat:cVectorConcat]\n"
        "reader.dmLevel = gemapsv01b_logPitch;gemapsv01b_formants;gemapsv01b_harmonics\n"
        "writer.dmLevel = raw\nincludeSingleElementFields = 1\n\n"
        "\\{\\cm[sink{?}:include external sink]}\n"
    )
    formant_level = opensmile.Smile(feature_set=str(conf), feature_level="gemapsv01b_formants").process_file(str(path))
    raw = opensmile.Smile(feature_set=str(conf), feature_level="raw").process_file(str(path))
    return formant_level, raw


def test_opensmile_method_matches_opensmile(emodb, tmp_path):
    for name in PARITY_CLIPS[:2]:
        y, sr, path = emodb[name]
        fl, raw = _opensmile_raw(tmp_path, path)
        ref = fl[[f"formantFreqLpc[{i}]" for i in range(1, 4)]].to_numpy()
        fr = formants(y, sr, method="opensmile")
        assert fr.n_frames == ref.shape[0]
        within = (np.abs(fr.frequency - ref) < 1.0).mean(axis=0)
        assert np.all(within >= OPENSMILE_FORMANT_WITHIN_1HZ_MIN), (name, within)
        # cHarmonics on openSMILE's own F0 and formants (the 60 ms level has fewer frames)
        f0 = raw["F0final"].to_numpy()
        ff = raw[[f"formantFreqLpc[{i}]" for i in range(1, 4)]].to_numpy()
        h = harmonic_levels(y, sr, f0, ff, method="opensmile")
        voiced = f0 > 0
        np.testing.assert_array_equal(h.valid, voiced)
        tol = OPENSMILE_HARMONICS_TOL_DB
        np.testing.assert_allclose(h.h1_h2[voiced], raw["HarmonicDifferenceLogRelH1-H2"].to_numpy()[voiced], atol=tol)
        w = h.h1_a3_valid
        np.testing.assert_allclose(h.h1_a3[w], raw["HarmonicDifferenceLogRelH1-A3"].to_numpy()[w], atol=tol)
        amp = raw[[f"FormantAmplitudeByMaxHarmonicLogRelF0[{i}]" for i in range(1, 4)]].to_numpy()
        np.testing.assert_allclose(h.formant_amplitude[h.formant_valid], amp[h.formant_valid], atol=tol)
        # where openSMILE found no harmonic in a formant's range on a voiced frame, it writes 0: ours is masked
        assert np.all(amp[voiced[:, None] & ~h.formant_valid] == 0.0)


@pytest.mark.skipif(not _config.JIT_ENABLED, reason="numba is unavailable or AFFECTEDGE_DISABLE_JIT is set")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_jit_matches_twin(emodb, dtype):
    previous = _config.use_jit()
    try:
        for name in PARITY_CLIPS:
            y = emodb[name][0].astype(dtype)
            for method in ("burg", "opensmile"):
                res = []
                for jit in (True, False):
                    _config.set_jit(jit)
                    fr = formants(y, SR, method=method, n_formants=4)
                    hl = harmonic_levels(y, SR, np.where(np.arange(fr.n_frames) % 4, 140.0, 0.0), fr.frequency,
                                         method="standard" if method == "burg" else "opensmile")
                    res.append((fr, hl))
                (a, ha), (b, hb) = res
                np.testing.assert_array_equal(a.valid, b.valid)
                np.testing.assert_array_equal(a.silent, b.silent)
                for x, z in ((a.frequency, b.frequency), (a.bandwidth, b.bandwidth)):
                    assert x.dtype == z.dtype == dtype
                    np.testing.assert_allclose(x, z, rtol=TWIN_RTOL[dtype], atol=0, err_msg=f"{name} {method}")
                np.testing.assert_array_equal(ha.valid, hb.valid)
                np.testing.assert_array_equal(ha.formant_valid, hb.formant_valid)
                for x, z in ((ha.h1_h2, hb.h1_h2), (ha.h1_a3, hb.h1_a3), (ha.formant_amplitude, hb.formant_amplitude)):
                    assert x.dtype == z.dtype == dtype
                    np.testing.assert_allclose(x, z, rtol=0, atol=HARMONIC_TWIN_ATOL_DB[dtype])
    finally:
        _config.STATE.jit = previous


# ------------------------------------------------------------------ streaming


def _feed(stream, y, rng):
    out, i = [], 0
    while i < y.size:
        k = int(rng.choice([0, 1, 37, 159, 160, 161, 700, 2500]))
        out.append(stream.process(y[i : i + k]))
        i += k
    return out


@pytest.mark.parametrize("method", ["burg", "opensmile"])
def test_streaming_equals_batch(emodb, rng, method, kernel_mode):
    y = emodb["03a01Fa.wav"][0]
    for dtype in (np.float32, np.float64):
        yd = y.astype(dtype)
        batch = formants(yd, SR, method=method)
        stream = StreamingFormants(SR, method=method, dtype=dtype)
        parts = _feed(stream, yd, rng)
        assert stream.frames_emitted == batch.n_frames
        for name in ("frequency", "bandwidth", "times"):
            got = np.concatenate([getattr(p, name) for p in parts])
            assert got.dtype == getattr(batch, name).dtype
            np.testing.assert_allclose(got, getattr(batch, name), rtol=STREAM_RTOL, atol=0, err_msg=name)
        for name in ("valid", "silent"):
            np.testing.assert_array_equal(np.concatenate([getattr(p, name) for p in parts]), getattr(batch, name))
    # a chunk with NaN is refused whole; the stream goes on as if it had not been pushed
    s = StreamingFormants(SR, dtype=np.float64)
    a = s.process(y[:1000].astype(np.float64))
    with pytest.raises(ParameterError, match="nothing"):
        s.process(np.array([0.0, np.nan]))
    b = s.push(y[1000:4000].astype(np.float64))
    whole = formants(y[:4000].astype(np.float64), SR)
    np.testing.assert_allclose(np.concatenate([a.frequency, b.frequency]), whole.frequency, rtol=STREAM_RTOL)


# ------------------------------------------------------------------ junk and bad input


def test_silence_and_junk(kernel_mode):
    z = np.zeros(SR, dtype=np.float32)
    fr = formants(z, SR)
    assert fr.status == "silent" and fr.silent.all() and not fr.valid.any()
    assert (fr.frequency == 0).all() and (fr.bandwidth == 0).all() and fr.frequency.dtype == np.float32
    for method in ("standard", "opensmile"):
        hl = harmonic_levels(z, SR, np.full(fr.n_frames, 150.0), fr.frequency, method=method)
        assert hl.status == "silent" and not hl.valid.any() and not hl.formant_valid.any()
        for a in (hl.h1_h2, hl.h1_a3, hl.formant_amplitude):
            assert np.isfinite(a).all() and (a == 0).all()
    y = _vowel(120.0, (700.0, 1220.0, 2600.0), (80.0, 90.0, 120.0))
    hl = harmonic_levels(y, SR, np.zeros(fr.n_frames), fr.frequency)
    assert hl.status == "unvoiced" and not hl.valid.any()
    # speech with a digitally silent stretch: those frames are flagged, the rest are fine
    y[4000:9000] = 0.0
    fr = formants(y, SR, method="opensmile")
    assert fr.status == "ok"
    assert fr.silent[26:55].all() and not fr.silent[:20].any() and not fr.valid[fr.silent].any()
    assert fr.valid[~fr.silent].mean() > 0.9
    for a in (fr.frequency, fr.bandwidth):
        assert np.isfinite(a).all() and (a[~fr.valid] == 0).all()
    # a tiny dither-level noise is not silent and gives finite numbers
    noise = (np.random.default_rng(0).standard_normal(SR) * 3e-5).astype(np.float64)
    fr = formants(noise, SR)
    assert fr.status == "ok" and np.isfinite(fr.frequency).all() and np.isfinite(fr.bandwidth).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtypes(dtype, kernel_mode):
    y = _vowel(150.0, (500.0, 1500.0, 2500.0), (70.0, 90.0, 110.0), dur=0.3).astype(dtype)
    fr = formants(y, SR)
    assert isinstance(fr, FormantTrack)
    assert fr.frequency.dtype == fr.bandwidth.dtype == dtype and fr.valid.dtype == np.bool_
    assert fr.times.dtype == np.float64 and fr.times[0] == pytest.approx(0.010)  # centre of the first 20 ms frame
    hl = harmonic_levels(y, SR, np.full(fr.n_frames, 150.0), fr)  # a FormantTrack is accepted for the formants
    assert isinstance(hl, HarmonicLevels)
    assert hl.h1_h2.dtype == hl.h1_a3.dtype == hl.formant_amplitude.dtype == dtype


def test_the_package_attribute_stays_the_function():
    """Importing the module first must not shadow the exported function ``formants``."""
    import affectedge.native_kernels as nk
    import affectedge.native_kernels.formant  # noqa: F401

    y = _vowel(150.0, (500.0, 1500.0, 2500.0), (70.0, 90.0, 110.0), dur=0.2)
    assert isinstance(nk.formants(y, SR), FormantTrack)
    assert isinstance(fm_module.formants(y, SR), FormantTrack)


def test_bad_input():
    y = np.zeros(SR, dtype=np.float32)
    cases = [
        (dict(y=np.array([0.1, np.nan] * 2000, dtype=np.float32)), "nan"),
        (dict(y=np.zeros(100, dtype=np.float32)), "shorter than one frame"),
        (dict(y=np.zeros(0, dtype=np.float32)), "empty"),
        (dict(y=(y * 32767).astype(np.int16)), "dtype"),
        (dict(y=np.zeros((2, SR), dtype=np.float32)), "dimensional"),
        (dict(sr=0), "sr"),
        (dict(sr=-16000), "sr"),
        (dict(sr=float("nan")), "sr"),
        (dict(sr="16000"), "sr"),
        (dict(sr=8000), "Nyquist"),
        (dict(frame_length=0), "frame_length"),
        (dict(frame_length=320.5), "frame_length"),
        (dict(frame_length=20), "frame_length"),  # 14 samples at 11 kHz < 2 x order
        (dict(hop_length=0), "hop_length"),
        (dict(hop_length=True), "hop_length"),
        (dict(n_formants=6), "n_formants"),
        (dict(n_formants=0), "n_formants"),
        (dict(order=1), "order"),
        (dict(max_formant=50.0), "max_formant"),
        (dict(pre_emphasis=1.0), "pre_emphasis"),
        (dict(pre_emphasis=-0.5), "pre_emphasis"),
        (dict(method="lpc"), "method"),
        (dict(max_bandwidth=0.0), "max_bandwidth"),
    ]
    for kw, msg in cases:
        args = dict(y=y, sr=SR)
        args.update(kw)
        with pytest.raises(ParameterError, match=msg):
            formants(args.pop("y"), args.pop("sr"), **args)
    with pytest.raises(ParameterError, match="sr"):
        StreamingFormants(0)
    with pytest.raises(ParameterError, match="dtype"):
        StreamingFormants(SR, dtype=np.int16)
    with pytest.raises(ParameterError, match="dimensional"):
        StreamingFormants(SR).process(np.zeros((2, 100), dtype=np.float32))
    n = 1 + (SR - 320) // 160
    f0, F = np.full(n, 120.0), np.zeros((n, 3))
    h_cases = [
        (dict(f0=f0[:-1]), "same frame grid"),
        (dict(f0=-f0), ">= 0"),
        (dict(f0=np.full(n, np.inf)), ">= 0"),
        (dict(f0=np.full(n, 9000.0)), "Nyquist"),
        (dict(f0=np.zeros((n, 2))), "1-dimensional"),
        (dict(f0=np.zeros(0)), "empty"),
        (dict(f0=np.full(200, 120.0), formant_frequency=np.zeros((200, 3))), "frame starts"),
        (dict(formant_frequency=F[:, :2]), "n_frames, 3"),
        (dict(formant_frequency=-np.ones((n, 3))), ">= 0"),
        (dict(method="praat"), "method"),
        (dict(frame_length=2), "frame_length"),
        (dict(hop_length=-1), "hop_length"),
        (dict(y=np.full(SR, np.nan, dtype=np.float32)), "nan"),
        (dict(sr=0), "sr"),
    ]
    for kw, msg in h_cases:
        args = dict(y=y, sr=SR, f0=f0, formant_frequency=F)
        args.update(kw)
        with pytest.raises(ParameterError, match=msg):
            harmonic_levels(args.pop("y"), args.pop("sr"), args.pop("f0"), args.pop("formant_frequency"), **args)
