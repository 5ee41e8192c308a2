"""Audio sources: read_audio / resample / StreamResampler, AudioFileSource, MicrophoneSource.

The microphone is tested twice over:

* through a real PortAudio + ALSA stack without sound hardware (see
  ``tests/_alsa.py``): an EmoDB recording played into ALSA file PCMs is
  recorded by MicrophoneSource in a subprocess and compared with the file,
  sample by sample and by MFCC;
* in-process against a fake ``pyaudio`` module, for what a null device
  cannot do: a device that disappears and comes back, a stalled or hung
  driver, overflow flags, PortAudio's ADC timestamps.

Measured (EmoDB 03a01Wa.wav, 16 kHz, 30045 samples):
* StreamResampler vs resample: identical to the last bit (16k<->48k, 44.1k->16k,
  16k->8k, chunks 37..4800); tolerance 1e-6.
* ALSA at 16 kHz: the recording equals the file bit for bit, MFCC identical.
* ALSA device that only does 48 kHz (file played as soxr-upsampled int16):
  MicrophoneSource opens 48 kHz and resamples; the recording equals
  resample(int16(resample(y, 16k, 48k)), 48k, 16k) bit for bit; against the
  original file: correlation 0.99995, rms error 1.05 % of the signal's rms,
  MFCC (n_mfcc=20, n_fft=512, hop 256) max |diff| 3.98, relative Frobenius
  0.0175 (it is the 7.3-8 kHz band that soxr's HQ filter, passband 91 %,
  takes off twice); with fmax=7000 max |diff| 0.37. Tolerances: 6, 0.03, 1.0.
"""

import json
import os
import sys
import threading
import time
import types

import numpy as np
import pytest

from affectedge.errors import MissingExtraError, ParameterError, SensorError
from affectedge.sensors import (AudioBlock, AudioFileSource, Clock, EndOfStream, MicrophoneSource,
                                StreamResampler, list_audio_inputs, read_audio, resample)
from affectedge.sensors import _audio

sys.path.insert(0, os.path.dirname(__file__))
import _alsa  # noqa: E402

sf = pytest.importorskip("soundfile")

MFCC_KW = dict(sr=16000, n_mfcc=20, n_fft=512, hop_length=256)


@pytest.fixture(scope="module")
def emodb(shared_data):
    path = shared_data / "speech" / "emodb" / "wav" / "03a01Wa.wav"
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    return path


@pytest.fixture(scope="module")
def speech(emodb):
    y, sr = read_audio(emodb)
    assert sr == 16000
    return y


def _assert_contiguous(blocks, rate):
    for a, b in zip(blocks, blocks[1:]):
        assert b.seq == a.seq + 1
        assert b.sample_rate_hz == rate
        assert b.t_start_s == pytest.approx(a.t_end_s + b.gap_before_s, abs=1e-9)


# ---------------------------------------------------------------------------
# read_audio, resample, StreamResampler
# ---------------------------------------------------------------------------
def test_read_audio_wav_matches_read_wav(emodb):
    from affectedge.io import read_wav

    y, sr = read_audio(emodb)
    ref, ref_sr = read_wav(emodb)
    assert sr == ref_sr == 16000 and y.dtype == np.float32 and y.ndim == 1
    np.testing.assert_array_equal(y, ref)


def test_read_audio_stereo_flac_mono_is_channel_mean(tmp_path, speech):
    stereo = np.stack([speech, 0.5 * speech[::-1]], axis=1)
    path = tmp_path / "stereo.flac"
    sf.write(path, stereo, 22050, subtype="PCM_16")
    y2, sr = read_audio(path, mono=False)
    assert sr == 22050 and y2.shape == stereo.shape and y2.dtype == np.float32
    np.testing.assert_allclose(y2, stereo, atol=1 / 32768 + 1e-7)
    y, _ = read_audio(path)
    np.testing.assert_allclose(y, y2.mean(axis=1), atol=1e-7)


def test_read_audio_bad_files_name_the_path_not_the_bytes(tmp_path, emodb):
    rng = np.random.default_rng(7)
    junk = bytes(rng.integers(0, 256, 3000, dtype=np.uint8)) + b"SECRETPAYLOAD" * 20
    cases = {
        "random.wav": junk,
        "truncated.wav": emodb.read_bytes()[:20],
        "riff_garbage.wav": b"RIFF\xff\xff\xff\xffWAVEfmt " + junk,
        "empty.flac": b"",
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        for call in (lambda: read_audio(path), lambda: AudioFileSource(path)):
            with pytest.raises(ParameterError) as info:
                call()
            msg = str(info.value)
            assert str(path) in msg and "SECRET" not in msg and "\\x" not in msg, msg
            assert len(msg) < 500
    with pytest.raises(ParameterError, match="does not exist"):
        read_audio(tmp_path / "missing.wav")
    with pytest.raises(ParameterError, match="directory"):
        read_audio(tmp_path)


def test_read_audio_nan_file(tmp_path, speech):
    y = speech.copy()
    y[20000] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, y, 16000, subtype="FLOAT")
    with pytest.raises(ParameterError, match="NaN or inf samples .first at frame 20000"):
        read_audio(path)
    with pytest.raises(ParameterError, match="frame 20000"):
        list(AudioFileSource(path, block_ms=50))


def test_read_audio_empty_wav(tmp_path):
    path = tmp_path / "silent.wav"
    sf.write(path, np.zeros(0, np.float32), 16000)
    with pytest.raises(ParameterError, match="no samples"):
        read_audio(path)


def test_resample_identity_and_validation(speech):
    out = resample(speech, 16000, 16000)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, speech)
    assert resample(speech.astype(np.float64), 16000, 16000).dtype == np.float32
    for bad in (0, -16000, 16000.5, "x", None):
        with pytest.raises(ParameterError):
            resample(speech, bad, 16000)
    with pytest.raises(ParameterError, match="shape"):
        resample(np.zeros((2, 2, 2)), 16000, 8000)


@pytest.mark.parametrize("sr_in,sr_out", [(16000, 48000), (48000, 16000), (44100, 16000), (16000, 8000)])
def test_resample_length_and_band(sr_in, sr_out):
    t = np.arange(sr_in) / sr_in
    y = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    out = resample(y, sr_in, sr_out)
    assert out.dtype == np.float32 and abs(out.shape[0] - sr_out) <= 1
    spec = np.abs(np.fft.rfft(out[sr_out // 10: -sr_out // 10]))
    peak = np.argmax(spec) * sr_out / (2 * (spec.shape[0] - 1))
    assert abs(peak - 1000) < 5
    assert np.sqrt(np.mean(out[sr_out // 10: -sr_out // 10] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=1e-3)


@pytest.mark.parametrize("sr_in,sr_out", [(16000, 48000), (48000, 16000), (44100, 16000), (16000, 8000)])
@pytest.mark.parametrize("chunk", [37, 1000, 4800])
def test_stream_resampler_matches_resample(speech, sr_in, sr_out, chunk):
    x = speech if sr_in == 16000 else resample(speech, 16000, sr_in)
    whole = resample(x, sr_in, sr_out)
    rs = StreamResampler(sr_in, sr_out)
    parts = [rs.push(x[i: i + chunk]) for i in range(0, x.shape[0], chunk)] + [rs.flush()]
    out = np.concatenate(parts)
    assert out.shape == whole.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, whole, rtol=0, atol=1e-6)  # measured: 0.0 (bit-identical)
    # after flush it is a fresh stream
    again = np.concatenate([rs.push(x), rs.flush()])
    np.testing.assert_allclose(again, whole, rtol=0, atol=1e-6)


def test_stream_resampler_channels_identity_and_errors(speech):
    st = np.stack([speech, -speech], axis=1)
    rs = StreamResampler(16000, 8000, channels=2)
    out = np.concatenate([rs.push(st[:5000]), rs.push(st[5000:]), rs.flush()])
    np.testing.assert_allclose(out, resample(st, 16000, 8000), atol=1e-6)
    ident = StreamResampler(16000, 16000)
    np.testing.assert_array_equal(ident.push(speech[:100]), speech[:100])
    assert ident.flush().shape == (0,)
    with pytest.raises(ParameterError, match="shape"):
        StreamResampler(16000, 8000).push(st)
    with pytest.raises(ParameterError):
        StreamResampler(16000, 8000, channels=0)


# ---------------------------------------------------------------------------
# AudioFileSource
# ---------------------------------------------------------------------------
def test_file_source_native_wav(emodb, speech):
    src = AudioFileSource(emodb)
    assert src.name == "file:03a01Wa.wav (16000 Hz)" and src.modality == "audio" and not src.realtime
    with src:
        blocks = list(src)
        with pytest.raises(EndOfStream):
            src.read()
    assert [b.samples.shape[0] for b in blocks] == [1600] * 18 + [30045 - 18 * 1600]
    assert blocks[0].t_start_s == 0.0 and blocks[-1].t_end_s == pytest.approx(30045 / 16000)
    _assert_contiguous(blocks, 16000)
    assert all(b.gap_before_s == 0 and b.samples.dtype == np.float32 for b in blocks)
    np.testing.assert_array_equal(np.concatenate([b.samples for b in blocks]), speech)
    st = src.stats.snapshot()
    assert st["delivered"] == 19 and st["samples"] == 30045 and st["gaps"] == []
    with pytest.raises(SensorError, match="closed"):
        src.read()


@pytest.mark.parametrize("fmt,rate", [("FLAC", 44100), ("OGG", 48000)])
def test_file_source_flac_ogg_resampled(tmp_path, speech, fmt, rate):
    path = tmp_path / f"03a01Wa_{rate}.{fmt.lower()}"
    extra = {"compression_level": 0.1} if fmt == "OGG" else {}  # Vorbis at high quality
    sf.write(path, resample(speech, 16000, rate) * 0.9, rate, format=fmt, **extra)
    decoded, sr = read_audio(path)
    assert sr == rate
    src = AudioFileSource(path, target_rate_hz=16000, block_ms=50)
    assert src.name == f"file:{path.name} ({rate} Hz -> 16000 Hz)"
    blocks = list(src)
    _assert_contiguous(blocks, 16000)
    assert {b.samples.shape[0] for b in blocks[:-1]} == {800}
    out = np.concatenate([b.samples for b in blocks])
    ref = np.clip(resample(decoded, rate, 16000), -1, 1)
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-6)
    assert blocks[-1].t_end_s == pytest.approx(out.shape[0] / 16000)
    n = min(out.shape[0], speech.shape[0])
    corr = np.corrcoef(out[:n], speech[:n])[0, 1]
    assert corr > (0.9999 if fmt == "FLAC" else 0.999)  # measured 0.99995 / 0.99958 (Vorbis is lossy)


class _FakeClock(Clock):
    def __init__(self):
        super().__init__(t0=0.0)
        self.t = 0.0
        self.sleeps = []

    def now_s(self):
        return self.t

    def sleep_until(self, t_s, stop_event=None):
        self.sleeps.append(t_s)
        self.t = max(self.t, t_s)


def test_file_source_realtime_paces_on_the_clock(emodb):
    clock = _FakeClock()
    clock.t = 5.0
    src = AudioFileSource(emodb, realtime=True, block_ms=200, clock=clock)
    src.open()  # media time 0 = clock 5.0
    b = src.read(timeout_s=1.0)
    assert b.t_start_s == 0.0 and clock.t == pytest.approx(5.2)
    assert src.read(timeout_s=0.05) is None  # next block due at 5.4, only 50 ms allowed
    assert clock.t == pytest.approx(5.25)
    b = src.read(timeout_s=1.0)
    assert b.seq == 1 and b.t_start_s == pytest.approx(0.2) and clock.t == pytest.approx(5.4)
    src.close()


def test_file_source_parameters(emodb):
    for kw in ({"block_ms": 0}, {"block_ms": "x"}, {"target_rate_hz": 0}, {"target_rate_hz": 1.5}):
        with pytest.raises(ParameterError):
            AudioFileSource(emodb, **kw)


# ---------------------------------------------------------------------------
# MicrophoneSource against a fake pyaudio
# ---------------------------------------------------------------------------
class _World:
    """What the fake PortAudio sees: the devices, whether the microphone is plugged in."""

    def __init__(self, rates=(48000,), default_rate=48000, name="Fake USB Mic", latency_s=0.03, speed=1.0):
        self.rates, self.default_rate, self.name = set(rates), default_rate, name
        self.present = True
        self.latency_s = latency_s
        self.speed = speed
        self.overflow_at = set()
        self.stall_after = None  # stop calling back (but stay "active") after this many chunks
        self.hang_on_stop = False
        self.inits = self.terminated = 0
        self.streams = []
        self.sample = 0  # a 440 Hz tone that runs on across chunks and streams
        self.lock = threading.Lock()

    def devices(self):
        devs = [{"index": 0, "name": "Speakers", "hostApi": 0, "maxInputChannels": 0, "defaultSampleRate": 48000.0}]
        if self.present:
            devs.append({"index": 1, "name": self.name, "hostApi": 0, "maxInputChannels": 2,
                         "defaultSampleRate": float(self.default_rate)})
            devs.append({"index": 2, "name": "Fake USB Mic Monitor", "hostApi": 0, "maxInputChannels": 1,
                         "defaultSampleRate": 44100.0})
        return devs

    def unplug(self):
        self.present = False
        for s in self.streams:
            s.fail()

    def module(self):
        world = self

        class PyAudio:
            def __init__(self):
                world.inits += 1
                self.devs = world.devices()

            def get_device_count(self):
                return len(self.devs)

            def get_device_info_by_index(self, i):
                if not 0 <= i < len(self.devs):
                    raise OSError("Invalid device index")
                return dict(self.devs[i])

            def get_host_api_info_by_index(self, i):
                return {"name": "FakeAPI"}

            def get_default_input_device_info(self):
                ins = [d for d in self.devs if d["maxInputChannels"] > 0]
                if not ins:
                    raise OSError("No Default Input Device Available")
                return dict(ins[0])

            def is_format_supported(self, rate, input_device=None, input_channels=None, input_format=None):
                if not world.present or int(rate) not in world.rates:
                    raise ValueError(("Invalid sample rate", -9997))
                return True

            def open(self, rate, channels, format, input, input_device_index, frames_per_buffer, stream_callback,
                     start=True):
                if not world.present:
                    raise OSError("[Errno -9996] Invalid input device (no default output device)")
                s = _FakeStream(world, rate, channels, frames_per_buffer, stream_callback)
                world.streams.append(s)
                return s

            def terminate(self):
                world.terminated += 1

        return types.SimpleNamespace(PyAudio=PyAudio, paInt16=8, paInputOverflow=2, paContinue=0)


class _FakeStream:
    def __init__(self, world, rate, channels, frames, callback):
        self.world, self.rate, self.channels, self.frames, self.callback = world, rate, channels, frames, callback
        self.active = False
        self.closed = False
        self._stop = threading.Event()
        self._thread = None
        self.n = 0

    def start_stream(self):
        self.active = True
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        w = self.world
        dur = self.frames / self.rate
        t_next = time.monotonic()
        while not self._stop.is_set():
            t_next += dur / w.speed
            self._stop.wait(max(0.0, t_next - time.monotonic()))
            if self._stop.is_set():
                return
            if w.stall_after is not None and self.n >= w.stall_after:
                continue
            with w.lock:
                k = np.arange(w.sample, w.sample + self.frames)
                w.sample += self.frames
            tone = np.round(0.25 * 32767 * np.sin(2 * np.pi * 440 * k / self.rate)).astype("<i2")
            data = np.repeat(tone, self.channels).tobytes()
            now = 1000.0 + time.monotonic()  # PortAudio's own time base
            info = {"input_buffer_adc_time": now - dur - w.latency_s, "current_time": now,
                    "output_buffer_dac_time": 0.0}
            status = 2 if self.n in w.overflow_at else 0
            self.n += 1
            self.callback(data, self.frames, info, status)

    def fail(self):
        self.active = False
        self._stop.set()

    def is_active(self):
        return self.active

    def stop_stream(self):
        if self.world.hang_on_stop:
            threading.Event().wait()  # a driver that never returns
        self.fail()

    def close(self):
        self.fail()
        self.closed = True


@pytest.fixture
def fake(monkeypatch):
    def make(**kw):
        world = _World(**kw)
        mod = world.module()
        monkeypatch.setattr(_audio, "_pyaudio", lambda: mod)
        return world

    return make


def _read_n(src, n, timeout_s=3.0):
    blocks, t_end = [], time.monotonic() + timeout_s
    while len(blocks) < n and time.monotonic() < t_end:
        b = src.read(timeout_s=0.5)
        if b is not None:
            blocks.append(b)
    return blocks


def test_fake_mic_opens_at_native_rate_and_resamples(fake):
    world = fake(rates=(48000,), default_rate=48000)
    clock = Clock()
    with MicrophoneSource("usb mic", target_rate_hz=16000, block_ms=20, clock=clock) as src:
        assert src.name == "mic:Fake USB Mic (48000 Hz -> 16000 Hz)"  # the first of two inputs that match
        assert src.device_rate_hz == 48000 and src.device_index == 1
        blocks = _read_n(src, 25)
        now = clock.now_s()
    assert len(blocks) == 25
    assert all(isinstance(b, AudioBlock) and b.sample_rate_hz == 16000 for b in blocks)
    assert {b.samples.shape[0] for b in blocks} == {320}
    _assert_contiguous(blocks, 16000)
    assert all(b.gap_before_s == 0 for b in blocks)
    y = np.concatenate([b.samples for b in blocks])[800:]
    spec = np.abs(np.fft.rfft(y * np.hanning(y.shape[0])))
    assert abs(np.argmax(spec) * 16000 / y.shape[0] - 440) < 10
    assert np.abs(y).max() == pytest.approx(0.25, abs=0.01)
    # capture time from PortAudio's ADC time: the first chunk's first sample came 20 + 30 ms before it arrived
    assert -0.2 < blocks[0].t_start_s < 0.1
    assert blocks[-1].t_end_s == pytest.approx(now, abs=0.15)
    assert world.terminated == world.inits == 1 and all(s.closed for s in world.streams)


def test_fake_mic_prefers_target_rate_and_channels_mean(fake):
    fake(rates=(16000, 48000), default_rate=48000)
    with MicrophoneSource(1, target_rate_hz=16000, block_ms=20, channels=2) as src:
        assert src.name == "mic:Fake USB Mic (16000 Hz)"
        b = _read_n(src, 1)[0]
    assert b.samples.shape == (320,) and np.abs(b.samples).max() == pytest.approx(0.25, abs=0.01)


def test_fake_mic_device_errors(fake, monkeypatch):
    fake(rates=(11025,))
    with pytest.raises(SensorError) as info:
        MicrophoneSource("headset").open()
    msg = str(info.value)
    assert "'headset'" in msg and "1: Fake USB Mic (2 ch, 48000 Hz, FakeAPI)" in msg and "Speakers" not in msg
    with pytest.raises(SensorError, match="index 0 is not an input"):
        MicrophoneSource(0).open()
    with pytest.raises(SensorError, match="input channels"):
        MicrophoneSource(2, channels=2).open()
    with pytest.raises(SensorError, match="supports none of the rates"):
        MicrophoneSource(1, target_rate_hz=16000).open()  # 11025 Hz only: not among the rates tried
    for kw in ({"device": 1.5}, {"device": True}, {"device": " "}, {"channels": 0}, {"queue_blocks": 0},
               {"backoff_s": ()}, {"backoff_s": (-1,)}, {"max_reconnects": -1}, {"block_ms": -5}):
        with pytest.raises(ParameterError):
            MicrophoneSource(**kw)


def test_fake_mic_lowest_fallback_rate(fake):
    fake(rates=(8000,), default_rate=8000)
    with MicrophoneSource(1, target_rate_hz=16000, block_ms=20) as src:
        assert src.name == "mic:Fake USB Mic (8000 Hz -> 16000 Hz)"
        assert _read_n(src, 2)[0].samples.shape == (320,)


def test_fake_mic_overflow_is_counted_not_raised(fake):
    world = fake()
    world.overflow_at = {3, 4}
    with MicrophoneSource(target_rate_hz=16000, block_ms=20) as src:
        blocks = _read_n(src, 10)
    assert len(blocks) == 10 and src.stats.overflows == 2
    _assert_contiguous(blocks, 16000)  # the chunks came on time: no samples lost, no gap


def test_fake_mic_reconnects_after_unplug(fake):
    world = fake()
    src = MicrophoneSource(target_rate_hz=16000, block_ms=20, backoff_s=(0.1, 0.2))
    with src:
        before = _read_n(src, 5)
        world.unplug()
        t_lost = src.clock.now_s()
        nones, mid = 0, []
        t_plug = time.monotonic() + 0.6
        while time.monotonic() < t_plug:
            t0 = time.monotonic()
            b = src.read(timeout_s=0.1)
            assert time.monotonic() - t0 < 0.3  # never blocks past the timeout
            if b is None:
                nones += 1
            else:
                mid.append(b)  # what was queued before the device went away
        assert nones >= 3 and src.stats.reconnects == 0
        assert "stream stopped" in src.stats.last_error
        world.present = True
        after = _read_n(src, 5)
    assert len(before) == 5 and len(after) == 5
    assert src.stats.reconnects == 1 and "reconnected" in src.stats.last_error
    blocks = before + mid + after
    _assert_contiguous(blocks, 16000)
    gapped = [i for i, b in enumerate(blocks) if b.gap_before_s > 0]
    assert len(gapped) == 1 and any(blocks[gapped[0]] is b for b in after[:2])  # after[0]: maybe the flushed tail
    gap = blocks[gapped[0]].gap_before_s
    assert gap > 0.5  # lost for >= 0.6 s
    assert {b.samples.shape[0] for b in blocks[: gapped[0] - 1]} == {320}  # only the block before the gap is short
    (g0, g1), = src.stats.gaps
    assert g0 == pytest.approx(blocks[gapped[0] - 1].t_end_s) and g0 <= t_lost + 0.05
    assert g1 - g0 == pytest.approx(gap)
    assert world.inits >= 2 and world.terminated == world.inits  # PortAudio re-initialised, every one terminated


def test_fake_mic_stall_is_a_lost_device(fake, monkeypatch):
    monkeypatch.setattr(_audio, "_STALL_S", 0.3)
    world = fake()
    world.stall_after = 3
    with MicrophoneSource(target_rate_hz=16000, block_ms=20, backoff_s=(0.05,)) as src:
        assert len(_read_n(src, 3)) == 3
        t_end = time.monotonic() + 3
        while src.stats.reconnects == 0 and time.monotonic() < t_end:
            src.read(timeout_s=0.05)
        assert src.stats.reconnects >= 1 and "no audio from the device" in src.stats.last_error


def test_fake_mic_gives_up_after_max_reconnects(fake):
    world = fake()
    src = MicrophoneSource(target_rate_hz=16000, block_ms=20, backoff_s=(0.05,), max_reconnects=2)
    with src:
        _read_n(src, 2)
        world.unplug()
        t_end = time.monotonic() + 3
        with pytest.raises(SensorError, match="2 reconnect attempts failed"):
            while time.monotonic() < t_end:
                src.read(timeout_s=0.1)
    assert src.stats.reconnects == 0 and "attempt 2 failed" in src.stats.last_error
    assert src.stats.gaps and src.stats.gaps[-1][1] > src.stats.gaps[-1][0]  # the open gap closed at close()


def test_fake_mic_no_reconnect_raises(fake):
    world = fake()
    with MicrophoneSource(target_rate_hz=16000, block_ms=20, reconnect=False) as src:
        _read_n(src, 2)
        world.unplug()
        with pytest.raises(SensorError, match="reconnect=False"):
            for _ in range(30):
                src.read(timeout_s=0.1)


def test_fake_mic_timeouts_do_not_depend_on_the_clock(fake):
    world = fake()
    world.stall_after = 0  # a device that opens but sends nothing
    clock = _FakeClock()  # frozen: never advances
    with MicrophoneSource(target_rate_hz=16000, block_ms=20, clock=clock) as src:
        t0 = time.monotonic()
        assert src.read(timeout_s=0.2) is None and src.read(timeout_s=0) is None
        assert time.monotonic() - t0 < 0.6
        world.stall_after = None
        b = src.read(timeout_s=None)  # waits for the next block
        assert b is not None and b.samples.shape == (320,)


def test_fake_mic_close_is_idempotent_and_bounded(fake, monkeypatch):
    monkeypatch.setattr(_audio, "_STOP_TIMEOUT_S", 0.3)
    world = fake()
    src = MicrophoneSource(target_rate_hz=16000, block_ms=20)
    src.open()
    _read_n(src, 1)
    world.hang_on_stop = True
    t0 = time.monotonic()
    src.close()
    src.close()
    assert time.monotonic() - t0 < 2.0 and "did not stop" in src.stats.last_error
    for s in world.streams:
        s.fail()
    with pytest.raises(SensorError, match="closed"):
        src.read()
    src2 = MicrophoneSource(target_rate_hz=16000)
    src2.close()  # never opened: nothing to do
    assert world.inits == 1


def test_fake_mic_slow_consumer_drops_oldest(fake):
    world = fake(speed=20.0)  # chunks 20x faster than real time
    with MicrophoneSource(target_rate_hz=16000, block_ms=20, queue_blocks=5) as src:
        first = _read_n(src, 2)
        time.sleep(0.3)  # ~300 chunks arrive, 5 fit
        assert src._queue.qsize() <= 5
        later = _read_n(src, 3)
    assert src.stats.dropped > 100
    blocks = first + later
    _assert_contiguous(blocks, 16000)
    gapped = [b for b in later if b.gap_before_s > 0]  # later[0]: the resampler's tail before the gap
    assert len(gapped) == 1 and gapped[0].gap_before_s >= 0.02 * 100  # >= 100 chunks of 20 ms lost
    assert src.stats.gaps[0][1] - src.stats.gaps[0][0] == pytest.approx(gapped[0].gap_before_s)


def test_list_audio_inputs_fake(fake):
    world = fake()
    assert list_audio_inputs() == [
        {"index": 1, "name": "Fake USB Mic", "max_input_channels": 2, "default_sample_rate_hz": 48000,
         "host_api": "FakeAPI"},
        {"index": 2, "name": "Fake USB Mic Monitor", "max_input_channels": 1, "default_sample_rate_hz": 44100,
         "host_api": "FakeAPI"},
    ]
    assert world.terminated == world.inits == 1


def test_missing_pyaudio_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyaudio", None)
    with pytest.raises(MissingExtraError, match=r"affectedge\[audio\]"):
        list_audio_inputs()
    with pytest.raises(MissingExtraError, match=r"affectedge\[audio\]"):
        MicrophoneSource().open()


# ---------------------------------------------------------------------------
# MicrophoneSource through real PortAudio + ALSA (no hardware)
# ---------------------------------------------------------------------------
def _need_alsa():
    pytest.importorskip("pyaudio", reason="PyAudio (affectedge[audio]) is not installed")
    if not sys.platform.startswith("linux"):
        pytest.skip("the hardware-free PortAudio stack uses ALSA file PCMs (Linux)")


@pytest.fixture(scope="module")
def alsa_files(tmp_path_factory, speech):
    _need_alsa()
    d = tmp_path_factory.mktemp("alsa")
    raw16 = _alsa.write_raw(d / "emodb_16k.raw", speech)
    raw48 = _alsa.write_raw(d / "emodb_48k.raw", resample(speech, 16000, 48000))
    return d, raw16, raw48


@pytest.fixture(scope="module")
def alsa_probe(alsa_files):
    d, raw16, _ = alsa_files
    home = d / "home_probe"
    _alsa.write_asoundrc(home, {"affectedge_test": (raw16, None), "affectedge_other": (raw16, None)}, raw16)
    return _alsa.run(home, "probe", {"named": "affectedge_other", "name_part": "EDGE_oth", "queue_blocks": 8,
                                     "idle_s": 1.0})


def _record(alsa_files, raw, device, only_rates=None):
    d, raw16, _ = alsa_files
    home = d / "home_rec"
    fifo = d / "fifo"
    if not fifo.exists():
        os.mkfifo(fifo)
    _alsa.write_asoundrc(home, {"affectedge_test": (fifo, None)}, raw16)
    out = d / "rec.npz"
    res = _alsa.run(home, "record", {"raw": str(raw), "fifo": str(fifo), "device": device, "target": 16000,
                                     "only_rates": only_rates, "n_samples": 40000, "out": str(out)})
    return res, dict(np.load(out))


def _align(x, y):
    """x shifted by the cross-correlation lag onto y; (x_aligned, lag)."""
    from scipy.signal import correlate

    cc = correlate(x, y, mode="full", method="fft")
    lag = int(np.argmax(cc)) - (y.shape[0] - 1)
    xs = x[lag:] if lag >= 0 else np.concatenate([np.zeros(-lag, np.float32), x])
    n = min(xs.shape[0], y.shape[0])
    return xs[:n], lag


def _check_rec_blocks(rec):
    n = rec["n"]
    assert set(n[:-1].tolist()) == {1600} and (rec["rate"] == 16000).all()
    assert (np.diff(rec["seq"]) == 1).all() and (rec["gap"] == 0).all()
    np.testing.assert_allclose(rec["t_start"][1:], rec["t_end"][:-1], atol=1e-9)


def test_alsa_record_at_16k_is_bit_exact(alsa_files, speech):
    from affectedge.native_kernels import mfcc

    res, rec = _record(alsa_files, alsa_files[1], "affectedge_test")
    assert res["name"] == "mic:affectedge_test (16000 Hz)" and res["device_rate_hz"] == 16000
    _check_rec_blocks(rec)
    x, lag = _align(rec["samples"], speech)
    assert lag == 0 and x.shape[0] == speech.shape[0]  # everything, from the first sample
    np.testing.assert_array_equal(x, speech)
    np.testing.assert_array_equal(mfcc(x, **MFCC_KW), mfcc(speech, **MFCC_KW))
    assert res["stats"]["reconnects"] == 0 and res["stats"]["overflows"] == 0


def test_alsa_48k_only_device_is_opened_at_48k_and_resampled(alsa_files, speech):
    from affectedge.native_kernels import mfcc

    raw48 = alsa_files[2]
    res, rec = _record(alsa_files, raw48, "edge_TEST", only_rates=[48000])
    assert res["name"] == "mic:affectedge_test (48000 Hz -> 16000 Hz)" and res["device_rate_hz"] == 48000
    _check_rec_blocks(rec)
    x, lag = _align(rec["samples"], speech)
    assert lag == 0 and x.shape[0] >= 28800
    n = x.shape[0]
    # what was played, resampled 48k -> 16k in one go: the recording is that, bit for bit (measured 0.0)
    played = np.fromfile(raw48, "<i2").astype(np.float32) / 32768
    np.testing.assert_allclose(x, np.clip(resample(played, 48000, 16000)[:n], -1, 1), rtol=0, atol=1e-6)
    # against the original file (16k -> 48k -> 16k loses the top of the band)
    y = speech[:n]
    assert np.corrcoef(x, y)[0, 1] > 0.9999  # measured 0.99995
    assert np.sqrt(np.mean((x - y) ** 2) / np.mean(y ** 2)) < 0.02  # measured 0.0105
    mx, my = mfcc(x, **MFCC_KW), mfcc(y, **MFCC_KW)
    assert np.abs(mx - my).max() < 6.0  # measured 3.98
    assert np.linalg.norm(mx - my) / np.linalg.norm(my) < 0.03  # measured 0.0175
    mx7, my7 = mfcc(x, fmax=7000, **MFCC_KW), mfcc(y, fmax=7000, **MFCC_KW)
    assert np.abs(mx7 - my7).max() < 1.0  # measured 0.37


def test_alsa_list_inputs_lists_the_test_pcms(alsa_probe):
    names = [d["name"] for d in alsa_probe["inputs"]]
    assert {"affectedge_test", "affectedge_other", "default"} <= set(names)
    for d in alsa_probe["inputs"]:
        assert set(d) == {"index", "name", "max_input_channels", "default_sample_rate_hz", "host_api"}
        assert d["host_api"] == "ALSA" and d["max_input_channels"] >= 1 and d["default_sample_rate_hz"] > 0


def test_alsa_select_by_name_index_and_default(alsa_probe):
    idx = next(d["index"] for d in alsa_probe["inputs"] if d["name"] == "affectedge_other")
    for key, name in (("by_name", "affectedge_other"), ("by_index", "affectedge_other"), ("default", "default")):
        r = alsa_probe[key]
        assert r["name"] == f"mic:{name} (16000 Hz)" and r["device_rate_hz"] == 16000, r
        assert r["n"] == 800 and r["rate"] == 16000 and r["finite"]
    assert alsa_probe["by_name"]["device_index"] == alsa_probe["by_index"]["device_index"] == idx


def test_alsa_unknown_device_lists_inputs(alsa_probe):
    msg = alsa_probe["missing_name"]
    assert "'no-such-microphone'" in msg and "affectedge_test" in msg and "affectedge_other" in msg
    assert "999" in alsa_probe["missing_index"] and "affectedge_other" in alsa_probe["missing_index"]


def test_alsa_slow_consumer_queue_bounded(alsa_probe):
    r = alsa_probe["overflow"]
    assert r["read_before"] == 3
    assert r["maxsize"] == 8 and r["max_depth"] <= 8
    assert r["dropped"] > 100 and r["stats_after"]["dropped"] >= r["dropped"]
    assert r["rss_growth_kb"] < 20_000  # an unbounded queue would hold ~100 MB after 1 s of this device
    assert r["gaps"][0] > 0 and r["stats_after"]["gaps"]
    assert r["stats_after"]["reconnects"] == 0


def test_affectedge_run_from_the_microphone_matches_the_file(alsa_files, speech):
    """``affectedge run --audio mic`` through a real PortAudio stack: its speech results are the file's."""
    d, raw16, _ = alsa_files
    home = d / "home_run"
    fifo = d / "fifo_run"
    if not fifo.exists():
        os.mkfifo(fifo)
    _alsa.write_asoundrc(home, {"affectedge_test": (fifo, None)}, raw16)
    out = d / "run.jsonl"
    res = _alsa.run(home, "runtime", {"raw": str(raw16), "fifo": str(fifo), "device": "affectedge_test",
                                      "duration": 4.0, "out": str(out)}, timeout=120)
    assert res["rc"] == 0
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    got = [r for r in recs if r["type"] == "result" and r["modality"] == "speech" and r["status"] == "ok"]
    # the same samples through the task directly, in the same 100 ms blocks
    from affectedge import runtime
    from affectedge.sensors import AudioBlock

    y = np.round(np.clip(speech, -1, 32767 / 32768) * 32768).astype(np.int16).astype(np.float32) / 32768
    task = runtime.SpeechTask(runtime.SpeechOptions(online_calibration=False))
    want = [r for i in range(0, len(y), 1600) for r in task.push(AudioBlock(y[i:i + 1600], 16000, i / 16000, 0))]
    assert len(want) >= 1 and len(got) >= len(want)
    for g, w in zip(got, want):
        assert g["label"] == w.label
        np.testing.assert_allclose(g["probs"], w.probs, atol=2e-4)  # JSONL rounds to 4 decimals
    st = [r for r in recs if r["type"] == "status" and r["modality"] == "speech"][-1]
    assert st["source"].startswith("mic:") and st["overflows"] == 0
