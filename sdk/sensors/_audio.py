"""Audio: files (WAV/FLAC/OGG), microphones (PortAudio), and rate conversion.

Reading and resampling
----------------------
* :func:`read_audio` ``(path, *, mono=True) -> (samples, sample_rate_hz)``:
  WAV, FLAC, OGG (and whatever else libsndfile reads) via ``soundfile``, at
  any rate and channel count; float32 in [-1, 1], shape (n,) when ``mono``
  (the mean of the channels) or (n, channels). A missing, corrupt, empty or
  unsupported file, or one holding NaN/inf, raises
  :class:`~affectedge.errors.ParameterError` naming the path and what
  libsndfile said (never the file's bytes).
* :func:`resample` ``(y, sr_in, sr_out) -> float32``: soxr, "HQ" quality;
  returns the input (as float32) when the rates are equal. Not clipped: the
  filter may ring a little past +-1.
* :class:`StreamResampler` ``(sr_in, sr_out, channels=1)``: the same soxr
  resampler fed chunk by chunk (``push(chunk) -> out``, then ``flush() ->
  tail`` at the end). The concatenated output equals :func:`resample` of the
  whole signal (measured: identical to the last bit for 16k<->48k, 44.1k->16k,
  16k->8k with chunks of 37 to 4800 samples; the tests allow 1e-6). After
  ``flush`` the resampler starts a new stream.

Sources (the :class:`~affectedge.sensors.Source` protocol)
----------------------------------------------------------
Both deliver :class:`~affectedge.sensors.AudioBlock` s of ``block_ms``
(mono float32, clipped to [-1, 1]) at ``target_rate_hz``; ``seq`` counts
blocks and ``t_start_s`` of each block equals ``t_end_s`` of the previous
plus its ``gap_before_s`` (0 except across a gap).

* :class:`AudioFileSource` ``(path, *, target_rate_hz=None, block_ms=100,
  realtime=False, clock=None)``: streams the file (memory stays bounded for
  long recordings), resampled with :class:`StreamResampler` (``None`` keeps
  the file's rate). ``t_start_s`` is media time (0 at the file's start).
  ``realtime=True`` delivers each block once its end is due on the clock
  (counted from ``open()``, with ``clock.sleep_until``); ``read(timeout_s)``
  returns None when the next block is not due within the timeout. The last,
  shorter block is delivered, then :class:`~affectedge.sensors.EndOfStream`.
  ``name`` is e.g. ``"file:03a01Wa.wav (48000 Hz -> 16000 Hz)"``.
* :func:`list_audio_inputs` ``() -> [dict(index, name, max_input_channels,
  default_sample_rate_hz, host_api)]``: PortAudio's input devices (PyAudio is
  initialised and terminated inside the call).
* :class:`MicrophoneSource` ``(device=None, *, target_rate_hz=16000,
  block_ms=100, channels=1, clock=None, queue_blocks=50, reconnect=True,
  backoff_s=(0.5, 1, 2, 4), max_reconnects=None)``:

  - ``device``: None (the default input), an int (PortAudio index) or a str
    (case-insensitive part of the name; an exact match wins, else the first
    input containing it). A name or index that matches no input raises
    :class:`~affectedge.errors.SensorError` listing the available inputs.
  - Rate: the device is opened at the first rate it supports
    (``pa.is_format_supported``) among target, the device's default rate,
    48000, 44100, 32000, 22050, 16000, 8000, and resampled to the target with
    a :class:`StreamResampler`: a microphone is never rejected for its native
    rate. ``name`` is e.g. ``"mic:USB Audio (48000 Hz -> 16000 Hz)"``. An
    ALSA ``plug``/``default`` device accepts any rate and converts with
    ALSA's own resampler, which is coarser than soxr (through a plug over a
    48 kHz file, ALSA 1.2.8 lost the first period and drifted by 0.13 %);
    select the ``hw:`` device by name to have soxr convert instead.
  - Capture runs in PortAudio callback mode, 16-bit, ``block_ms`` per
    callback. The callback only stamps and copies the bytes into a bounded
    queue of ``queue_blocks`` chunks; when the consumer falls behind the
    oldest chunk is dropped (``stats.dropped``), so memory stays bounded.
    Conversion (int16 / 32768, mean of the channels), resampling and blocking
    happen in ``read()``. Input overflows the driver reports
    (``paInputOverflow`` in the callback's status) count in
    ``stats.overflows``; they never raise.
  - Timestamps: capture time on the clock. Each callback's first sample is
    stamped ``clock.now_s() - (current_time - input_buffer_adc_time)`` when
    PortAudio's latency is sane (between half a chunk and 2 s), else
    ``clock.now_s()`` minus the chunk's duration. Blocks follow the sample
    count from an anchor (the first chunk, then the first chunk after each
    gap), so they are contiguous except across gaps: dropped chunks (the gap
    is at least their duration), an overflow after which the capture time
    jumped ahead by more than half a chunk, a lost device, or a device whose
    chunks all came more than 0.25 s later than their sample count says for
    5 s (its clock runs slow or it loses samples silently). Each gap is
    recorded in ``stats.gaps``, and at a gap the resampler is flushed, so the
    block before a gap may be shorter.
  - Device lost (the stream is no longer active, or no callback for 2 s):
    the gap starts at the end of the last block; with ``reconnect=True`` a
    supervisor thread re-initialises PortAudio (so a re-plugged USB device
    is found again, by name or default) and reopens it after
    ``backoff_s[0]``, ``backoff_s[1]``, ... seconds (the last value
    repeating), giving up after ``max_reconnects`` failed attempts in a row
    (None: never; 0: like ``reconnect=False``). ``stats.reconnects`` counts
    successful reopenings; ``stats.last_error`` says what happened.
    Meanwhile ``read()`` returns None; it never blocks past ``timeout_s``
    (measured on ``time.monotonic``, whatever the clock; ``timeout_s=None``
    waits for the next block). Without reconnecting (or after giving up)
    ``read()`` raises SensorError once the queued audio is read. The first
    ``open()`` does not retry: it raises SensorError.
  - ``close()`` stops and closes the stream and terminates PortAudio; it is
    idempotent, never raises, and does not hang on a driver that does not
    stop (it gives it 2 s, then abandons it and says so in
    ``stats.last_error``).

Overflow in PortAudio's blocking mode (``stream.read(n,
exception_on_overflow=False)``) is not used: the callback mode above never
raises on overflow and reports it in the status flags instead.

PyAudio is the optional extra ``affectedge[audio]`` (and PortAudio's
development package, ``portaudio19-dev`` on Debian, to build it); it is
imported only when a microphone is listed or opened.
"""

import collections
import math
import queue
import threading
import time
from pathlib import Path

import numpy as np

from affectedge.errors import ParameterError, SensorError

from ._base import AudioBlock, EndOfStream, Source

__all__ = ["AudioFileSource", "MicrophoneSource", "StreamResampler", "list_audio_inputs", "read_audio", "resample"]

_QUALITY = "HQ"
_FALLBACK_RATES = (48000, 44100, 32000, 22050, 16000, 8000)
_STALL_S = 2.0  # no callback for this long while "active": the device is lost
_DRIFT_WINDOW_S = 5.0
_DRIFT_MAX_S = 0.25
_STOP_TIMEOUT_S = 2.0
_MAX_REASON = 200


# ---------------------------------------------------------------------------
# reading and resampling
# ---------------------------------------------------------------------------
def _sf():
    import soundfile

    return soundfile


def _sf_reason(exc):
    """What libsndfile said, short, without the file name it repeats."""
    reason = getattr(exc, "error_string", "") or str(exc)
    reason = " ".join(str(reason).split())
    if len(reason) > _MAX_REASON:
        reason = reason[: _MAX_REASON - 3] + "..."
    return reason or type(exc).__name__


def _bad_file(path, exc):
    return ParameterError(
        f"cannot read audio file {str(path)!r}: libsndfile says {_sf_reason(exc)!r}; expected a WAV, FLAC or "
        "OGG file. If it is another format or damaged, convert or re-export it, e.g. "
        "'ffmpeg -i in.m4a -ar 16000 -ac 1 out.wav'"
    )


def _open_soundfile(path):
    path = Path(path)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise ParameterError(f"audio file {str(path)!r} {what}; pass the path of a WAV, FLAC or OGG file")
    sf = _sf()
    try:
        return sf.SoundFile(str(path))
    except (RuntimeError, OSError, ValueError, TypeError) as exc:  # LibsndfileError is a RuntimeError
        raise _bad_file(path, exc) from None


def _mono(x):
    """(n, ch) -> (n,) mean of the channels, float32."""
    if x.ndim == 2:
        x = x[:, 0] if x.shape[1] == 1 else x.mean(axis=1, dtype=np.float32)
    return np.ascontiguousarray(x, dtype=np.float32)


def _check_finite(path, x, offset):
    ok = np.isfinite(x).all(axis=1)
    if not ok.all():
        bad = offset + int(np.argmax(~ok))
        raise ParameterError(f"audio file {str(path)!r} contains NaN or inf samples (first at frame {bad}); "
                             "the file is damaged or was written from a broken signal")


def read_audio(path, *, mono=True):
    """Read an audio file into float32 samples in [-1, 1].

    Returns ``(samples, sample_rate_hz)``: (n,) when ``mono`` (the mean of
    the channels), else (n, channels). WAV, FLAC and OGG (any rate, any
    number of channels) via libsndfile. Raises ParameterError for a missing,
    corrupt, empty or unsupported file, naming the path and libsndfile's
    reason.
    """
    with _open_soundfile(path) as f:
        try:
            x = f.read(dtype="float32", always_2d=True)
        except (RuntimeError, OSError, ValueError) as exc:
            raise _bad_file(path, exc) from None
        rate = int(f.samplerate)
    if x.shape[0] == 0:
        raise ParameterError(f"audio file {str(path)!r} contains no samples; record or export it again")
    _check_finite(path, x, 0)
    np.clip(x, -1.0, 1.0, out=x)  # float files may exceed full scale
    return (_mono(x) if mono else np.ascontiguousarray(x)), rate


def _check_rate(name, rate):
    try:
        ok = float(rate) == int(rate) and int(rate) > 0
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise ParameterError(f"{name} must be a positive whole number of Hz (e.g. 16000), got {rate!r}")
    return int(rate)


def resample(y, sr_in, sr_out):
    """Resample ``y`` ((n,) or (n, channels)) from ``sr_in`` to ``sr_out`` Hz with soxr (HQ); float32.

    Returns ``y`` as float32 when the rates are equal.
    """
    sr_in = _check_rate("sr_in", sr_in)
    sr_out = _check_rate("sr_out", sr_out)
    y = np.asarray(y, dtype=np.float32)
    if y.ndim not in (1, 2):
        raise ParameterError(f"resample needs samples of shape (n,) or (n, channels), got shape {y.shape}")
    if sr_in == sr_out or y.shape[0] == 0:
        return y
    import soxr

    return np.asarray(soxr.resample(np.ascontiguousarray(y), sr_in, sr_out, _QUALITY), dtype=np.float32)


class StreamResampler:
    """Chunked soxr resampling (HQ): ``push(chunk) -> out`` per chunk, ``flush() -> tail`` at the end.

    Chunks are (n,) for ``channels=1`` or (n, channels). The concatenation of
    every ``push`` output and the ``flush`` tail equals ``resample`` of the
    whole signal. After ``flush`` the next ``push`` starts a new stream.
    """

    def __init__(self, sr_in, sr_out, channels=1):
        self.sr_in = _check_rate("sr_in", sr_in)
        self.sr_out = _check_rate("sr_out", sr_out)
        if not isinstance(channels, (int, np.integer)) or channels < 1:
            raise ParameterError(f"channels must be a positive int, got {channels!r}")
        self.channels = int(channels)
        self._stream = None

    @property
    def identity(self):
        return self.sr_in == self.sr_out

    def _check(self, chunk):
        x = np.asarray(chunk, dtype=np.float32)
        want = (1,) if self.channels == 1 else (2,)
        if x.ndim == 2 and self.channels == 1 and x.shape[1] == 1:
            x = x[:, 0]
        if x.ndim not in want or (x.ndim == 2 and x.shape[1] != self.channels):
            shape = "(n,)" if self.channels == 1 else f"(n, {self.channels})"
            raise ParameterError(f"StreamResampler.push needs a chunk of shape {shape}, got shape {x.shape}")
        return np.ascontiguousarray(x)

    def push(self, chunk):
        x = self._check(chunk)
        if self.identity:
            return x.copy()
        if self._stream is None:
            import soxr

            self._stream = soxr.ResampleStream(self.sr_in, self.sr_out, self.channels, dtype="float32",
                                               quality=_QUALITY)
        if x.shape[0] == 0:
            return self._empty()
        return np.asarray(self._stream.resample_chunk(x), dtype=np.float32)

    def flush(self):
        """The resampler's remaining output; the next ``push`` starts a new stream."""
        stream, self._stream = self._stream, None
        if stream is None:
            return self._empty()
        return np.asarray(stream.resample_chunk(self._empty(), last=True), dtype=np.float32)

    def _empty(self):
        return np.zeros((0,) if self.channels == 1 else (0, self.channels), np.float32)

    def __repr__(self):
        return f"StreamResampler({self.sr_in} -> {self.sr_out} Hz, channels={self.channels})"


def _check_block_ms(block_ms):
    try:
        ok = float(block_ms) > 0 and math.isfinite(float(block_ms))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ParameterError(f"block_ms must be a positive number of milliseconds (e.g. 100), got {block_ms!r}")
    return float(block_ms)


def _block_len(block_ms, rate):
    return max(1, int(round(block_ms * rate / 1000.0)))


def _rate_label(prefix, native, target):
    return f"{prefix} ({native} Hz)" if native == target else f"{prefix} ({native} Hz -> {target} Hz)"


class _Blocker:
    """Accumulates resampled samples and cuts AudioBlocks; times follow the sample count from an anchor."""

    def __init__(self, rate, block_len):
        self.rate = rate
        self.block_len = block_len
        self.seq = 0
        self.anchor = 0.0
        self.n_out = 0  # samples emitted since the anchor
        self.gap_next = 0.0
        self._buf = []
        self._n_buf = 0

    @property
    def t_end(self):
        return self.anchor + self.n_out / self.rate

    def reanchor(self, t_start, gap):
        self.anchor = float(t_start)
        self.n_out = 0
        self.gap_next = float(gap)

    def add(self, y, out):
        if y.shape[0]:
            self._buf.append(y)
            self._n_buf += y.shape[0]
        while self._n_buf >= self.block_len:
            out.append(self._cut(self.block_len))

    def drain(self, out):
        """Emit what is left (the shorter block before a gap or at the end)."""
        if self._n_buf:
            out.append(self._cut(self._n_buf))

    def _cut(self, n):
        y = np.concatenate(self._buf) if len(self._buf) > 1 else self._buf[0]
        blk, rest = y[:n], y[n:]
        self._buf = [rest] if rest.shape[0] else []
        self._n_buf = rest.shape[0]
        samples = np.clip(blk, -1.0, 1.0).astype(np.float32, copy=False)
        block = AudioBlock(samples=np.ascontiguousarray(samples), sample_rate_hz=self.rate,
                           t_start_s=self.anchor + self.n_out / self.rate, seq=self.seq,
                           gap_before_s=self.gap_next)
        self.seq += 1
        self.n_out += n
        self.gap_next = 0.0
        return block


# ---------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------
class AudioFileSource(Source):
    """Blocks of ``block_ms`` from an audio file, resampled to ``target_rate_hz`` (None: the file's rate)."""

    modality = "audio"

    def __init__(self, path, *, target_rate_hz=None, block_ms=100, realtime=False, clock=None):
        super().__init__(clock)
        self.path = Path(path)
        self.block_ms = _check_block_ms(block_ms)
        self.realtime = bool(realtime)
        with _open_soundfile(self.path) as f:  # fail early, and learn the rate for the name
            self.native_rate_hz = int(f.samplerate)
            self.channels = int(f.channels)
            self.frames = int(f.frames)
        if self.frames == 0:
            raise ParameterError(f"audio file {str(self.path)!r} contains no samples; record or export it again")
        self.target_rate_hz = (self.native_rate_hz if target_rate_hz is None
                               else _check_rate("target_rate_hz", target_rate_hz))
        self.name = _rate_label(f"file:{self.path.name}", self.native_rate_hz, self.target_rate_hz)
        self._file = None
        self._resampler = None
        self._blocker = None
        self._ready = collections.deque()
        self._eof = False
        self._t0 = 0.0
        self._stop = threading.Event()

    def _open(self):
        self._file = _open_soundfile(self.path)
        self._resampler = StreamResampler(self.native_rate_hz, self.target_rate_hz)
        self._blocker = _Blocker(self.target_rate_hz, _block_len(self.block_ms, self.target_rate_hz))
        self._chunk = _block_len(self.block_ms, self.native_rate_hz)
        self._frames_read = 0
        self._t0 = self.clock.now_s()

    def _fill(self):
        while not self._ready and not self._eof:
            try:
                x = self._file.read(self._chunk, dtype="float32", always_2d=True)
            except (RuntimeError, OSError, ValueError) as exc:
                raise _bad_file(self.path, exc) from None
            if x.shape[0]:
                _check_finite(self.path, x, self._frames_read)
                self._frames_read += x.shape[0]
                self._blocker.add(self._resampler.push(_mono(x)), self._ready)
            else:
                self._eof = True
                self._blocker.add(self._resampler.flush(), self._ready)
                self._blocker.drain(self._ready)

    def _read(self, timeout_s):
        self._fill()
        if not self._ready:
            raise EndOfStream(self.name)
        block = self._ready[0]
        if self.realtime:
            due = self._t0 + block.t_end_s
            wait = due - self.clock.now_s()
            if timeout_s is not None and wait > timeout_s:
                self.clock.sleep_until(self.clock.now_s() + max(0.0, timeout_s), self._stop)
                return None
            self.clock.sleep_until(due, self._stop)
        return self._ready.popleft()

    def _close(self):
        self._stop.set()
        if self._file is not None:
            self._file.close()
        self._resampler = None
        self._ready.clear()


# ---------------------------------------------------------------------------
# microphones
# ---------------------------------------------------------------------------
def _pyaudio():
    from affectedge._optional import require

    return require("pyaudio", "audio", "microphone capture")


def _inputs(pa):
    out = []
    for i in range(pa.get_device_count()):
        try:
            d = pa.get_device_info_by_index(i)
        except (OSError, ValueError):
            continue
        if int(d.get("maxInputChannels", 0)) < 1:
            continue
        try:
            host = pa.get_host_api_info_by_index(d["hostApi"])["name"]
        except (OSError, ValueError, KeyError):
            host = str(d.get("hostApi", ""))
        out.append({"index": int(d.get("index", i)), "name": str(d["name"]),
                    "max_input_channels": int(d["maxInputChannels"]),
                    "default_sample_rate_hz": int(round(float(d.get("defaultSampleRate", 0) or 0))),
                    "host_api": host})
    return out


def list_audio_inputs():
    """PortAudio's input devices: [dict(index, name, max_input_channels, default_sample_rate_hz, host_api)]."""
    pa = _pyaudio().PyAudio()
    try:
        return _inputs(pa)
    finally:
        pa.terminate()


def _describe_inputs(inputs, limit=30):
    if not inputs:
        return "none (PortAudio sees no input device: is a microphone plugged in and allowed?)"
    lines = [f"{d['index']}: {d['name']} ({d['max_input_channels']} ch, {d['default_sample_rate_hz']} Hz, "
             f"{d['host_api']})" for d in inputs[:limit]]
    more = f"; ... {len(inputs) - limit} more" if len(inputs) > limit else ""
    return "; ".join(lines) + more


class MicrophoneSource(Source):
    """Live audio from a PortAudio input, resampled to ``target_rate_hz``; see the module docstring."""

    modality = "audio"
    realtime = True

    def __init__(self, device=None, *, target_rate_hz=16000, block_ms=100, channels=1, clock=None,
                 queue_blocks=50, reconnect=True, backoff_s=(0.5, 1, 2, 4), max_reconnects=None):
        super().__init__(clock)
        if isinstance(device, bool) or (device is not None and not isinstance(device, (int, np.integer, str))):
            raise ParameterError(f"device must be None (the default input), an int index or a str name part, "
                                 f"got {type(device).__name__}")
        if isinstance(device, str) and not device.strip():
            raise ParameterError("device name is empty; pass None for the default input or a part of its name")
        self.device = int(device) if isinstance(device, (int, np.integer)) else device
        self.target_rate_hz = _check_rate("target_rate_hz", target_rate_hz)
        self.block_ms = _check_block_ms(block_ms)
        if not isinstance(channels, (int, np.integer)) or isinstance(channels, bool) or channels < 1:
            raise ParameterError(f"channels must be a positive int (1 for mono), got {channels!r}")
        self.channels = int(channels)
        if not isinstance(queue_blocks, (int, np.integer)) or queue_blocks < 1:
            raise ParameterError(f"queue_blocks must be a positive int (e.g. 50), got {queue_blocks!r}")
        self.queue_blocks = int(queue_blocks)
        self.reconnect = bool(reconnect)
        try:
            self.backoff_s = tuple(float(b) for b in (backoff_s if np.iterable(backoff_s) else (backoff_s,)))
        except (TypeError, ValueError):
            self.backoff_s = ()
        if not self.backoff_s or any(not (b >= 0 and math.isfinite(b)) for b in self.backoff_s):
            raise ParameterError(f"backoff_s must be non-negative seconds, e.g. (0.5, 1, 2, 4), got {backoff_s!r}")
        if max_reconnects is not None and (not isinstance(max_reconnects, (int, np.integer)) or max_reconnects < 0):
            raise ParameterError(f"max_reconnects must be None (retry forever) or an int >= 0, got {max_reconnects!r}")
        self.max_reconnects = None if max_reconnects is None else int(max_reconnects)
        label = "default" if self.device is None else (f"#{self.device}" if isinstance(self.device, int)
                                                        else repr(self.device))
        self.name = f"mic:{label}"
        self.device_name = None
        self.device_index = None
        self.device_rate_hz = None
        self._queue = queue.Queue(maxsize=self.queue_blocks)
        self._ready = collections.deque()
        self._lock = threading.RLock()  # guards _pa / _stream / _gen
        self._pa = None
        self._stream = None
        self._gen = 0
        self._last_cb = 0.0
        self._stop = threading.Event()
        self._supervisor = None
        self._dead = None  # error message once the source gave up
        self._lost_since = None
        # consumer state
        self._cur_gen = None
        self._next_seq = 0
        self._resampler = None
        self._blocker = None
        self._in_anchor = 0.0
        self._n_in = 0
        self._drift_min, self._drift_n, self._resync = math.inf, 0, 0.0

    # opening ---------------------------------------------------------------
    def _resolve(self, pa):
        inputs = _inputs(pa)
        if self.device is None:
            try:
                info = pa.get_default_input_device_info()
            except (OSError, ValueError) as exc:
                raise SensorError(f"there is no default audio input ({exc}); available inputs: "
                                  f"{_describe_inputs(inputs)}. Pass device=<index or name part>") from None
            return int(info["index"]), info
        if isinstance(self.device, int):
            match = [d for d in inputs if d["index"] == self.device]
            if not match:
                raise SensorError(f"audio input index {self.device} is not an input device; available inputs: "
                                  f"{_describe_inputs(inputs)}. Pass one of these indices or a name part")
            return self.device, pa.get_device_info_by_index(self.device)
        want = self.device.strip().lower()
        exact = [d for d in inputs if d["name"].strip().lower() == want]
        match = exact or [d for d in inputs if want in d["name"].lower()]
        if not match:
            raise SensorError(f"no audio input's name contains {self.device!r}; available inputs: "
                              f"{_describe_inputs(inputs)}. Pass a part of one of these names or its index "
                              "(affectedge.sensors.list_audio_inputs() lists them)")
        return match[0]["index"], pa.get_device_info_by_index(match[0]["index"])

    def _candidate_rates(self, info):
        rates = [self.target_rate_hz]
        default = int(round(float(info.get("defaultSampleRate", 0) or 0)))
        if default > 0:
            rates.append(default)
        rates.extend(_FALLBACK_RATES)
        return list(dict.fromkeys(rates))

    def _open_stream(self):
        """Initialise PortAudio, find the device, open and start a stream; returns nothing, raises SensorError."""
        pyaudio = _pyaudio()
        pa = pyaudio.PyAudio()
        stream = None
        try:
            index, info = self._resolve(pa)
            dev_name = str(info.get("name", index))
            if int(info.get("maxInputChannels", 0)) < self.channels:
                raise SensorError(f"audio input {dev_name!r} has {info.get('maxInputChannels')} input channels, "
                                  f"{self.channels} were asked for; pass channels=1")
            tried = []
            errors = []
            for rate in self._candidate_rates(info):
                try:
                    ok = pa.is_format_supported(rate, input_device=index, input_channels=self.channels,
                                                input_format=pyaudio.paInt16)
                except (ValueError, OSError):
                    ok = False
                tried.append(rate)
                if not ok:
                    continue
                with self._lock:
                    gen = self._gen + 1
                try:
                    frames = _block_len(self.block_ms, rate)
                    stream = pa.open(rate=rate, channels=self.channels, format=pyaudio.paInt16, input=True,
                                     input_device_index=index, frames_per_buffer=frames,
                                     stream_callback=self._make_callback(gen, rate, frames,
                                                                         pyaudio.paInputOverflow,
                                                                         pyaudio.paContinue),
                                     start=False)
                except (OSError, ValueError) as exc:
                    errors.append(f"{rate} Hz: {exc}")
                    stream = None
                    continue
                break
            if stream is None:
                why = f" ({'; '.join(errors)})" if errors else ""
                raise SensorError(f"audio input {dev_name!r} supports none of the rates {tried} with "
                                  f"{self.channels} channel(s) of 16-bit samples{why}; check the device's "
                                  "settings or pass channels= its channel count")
            with self._lock:
                self._gen = gen
                self._last_cb = time.monotonic()
                self._pa, self._stream = pa, stream
                self.device_index, self.device_name, self.device_rate_hz = index, dev_name, rate
                self.name = _rate_label(f"mic:{dev_name}", rate, self.target_rate_hz)
            try:
                stream.start_stream()
            except (OSError, ValueError) as exc:
                raise SensorError(f"audio input {dev_name!r} opened at {rate} Hz but did not start: {exc}") from None
        except BaseException:
            with self._lock:
                if self._stream is stream:
                    self._pa = self._stream = None
            _teardown(stream, pa, self.stats)
            raise

    def _make_callback(self, gen, rate, frames, overflow_flag, cont):
        clock, q, stats = self.clock, self._queue, self.stats
        chunk_s = frames / rate
        state = {"seq": 0}

        def callback(in_data, frame_count, time_info, status):
            try:
                now = clock.now_s()
                t_cap = now - frame_count / rate
                if time_info:
                    try:
                        lat = float(time_info["current_time"]) - float(time_info["input_buffer_adc_time"])
                        if 0.5 * chunk_s <= lat <= 2.0 and float(time_info["input_buffer_adc_time"]) > 0:
                            t_cap = now - lat
                    except (KeyError, TypeError, ValueError):
                        pass
                ovf = bool(status & overflow_flag)
                if ovf:
                    with stats._lock:
                        stats.overflows += 1
                item = (gen, state["seq"], t_cap, frame_count, rate, in_data, ovf)
                state["seq"] += 1
                while True:
                    try:
                        q.put_nowait(item)
                        break
                    except queue.Full:
                        try:
                            q.get_nowait()  # drop the oldest chunk
                            with stats._lock:
                                stats.dropped += 1
                        except queue.Empty:
                            pass
                self._last_cb = time.monotonic()
            except Exception as exc:  # never let an exception kill PortAudio's thread
                stats.last_error = f"callback: {type(exc).__name__}: {exc}"
            return (None, cont)

        return callback

    def _open(self):
        self._open_stream()
        self._supervisor = threading.Thread(target=self._supervise, name="affectedge-mic-supervisor", daemon=True)
        self._supervisor.start()

    # supervision -------------------------------------------------------------
    def _healthy(self):
        with self._lock:
            stream = self._stream
        if stream is None:
            return False, "no stream"
        try:
            active = stream.is_active()
        except (OSError, ValueError) as exc:
            return False, f"stream error: {exc}"
        if not active:
            return False, "the stream stopped (device unplugged or failed)"
        silent = time.monotonic() - self._last_cb
        if silent > _STALL_S:
            return False, f"no audio from the device for {silent:.1f} s"
        return True, ""

    def _supervise(self):
        while not self._stop.wait(0.1):
            ok, why = self._healthy()
            if ok:
                continue
            self._lost_since = self.clock.now_s()
            self.stats.last_error = f"{self.device_name or self.name}: {why}"
            with self._lock:
                stream, pa = self._stream, self._pa
                self._stream = self._pa = None
            _teardown(stream, pa, self.stats)
            if not self.reconnect or self.max_reconnects == 0:
                self._dead = f"{self.name} was lost ({why}) and reconnect=False"
                return
            failures = 0
            while not self._stop.is_set():
                delay = self.backoff_s[min(failures, len(self.backoff_s) - 1)]
                if self._stop.wait(delay):
                    return
                try:
                    self._open_stream()
                except Exception as exc:  # keep trying: SensorError, MissingExtraError, driver errors
                    failures += 1
                    self.stats.last_error = (f"{self.device_name or self.name}: lost ({why}); reconnect attempt "
                                             f"{failures} failed: {exc}")[:500]
                    if self.max_reconnects is not None and failures >= self.max_reconnects:
                        self._dead = (f"{self.name} was lost ({why}) and {failures} reconnect attempts failed; "
                                      f"last: {exc}")[:500]
                        return
                    continue
                if self._stop.is_set():  # closed while reopening: close() may have missed this stream
                    with self._lock:
                        stream, pa = self._stream, self._pa
                        self._stream = self._pa = None
                    _teardown(stream, pa, self.stats)
                    return
                with self.stats._lock:
                    self.stats.reconnects += 1
                self.stats.last_error = f"{self.device_name}: lost ({why}); reconnected"
                self._lost_since = None
                break

    # reading -----------------------------------------------------------------
    def _read(self, timeout_s):
        # timeouts run on time.monotonic(), whatever clock stamps the blocks
        deadline = math.inf if timeout_s is None else time.monotonic() + max(0.0, float(timeout_s))
        while not self._ready:
            remaining = deadline - time.monotonic()
            try:
                if remaining > 0:
                    item = self._queue.get(timeout=min(remaining, 0.25))
                else:
                    item = self._queue.get_nowait()
            except queue.Empty:
                if self._dead is not None:
                    raise SensorError(f"{self._dead}; create a new source (or use reconnect=True)") from None
                if remaining <= 0:
                    return None
                continue
            self._consume(item)
        return self._ready.popleft()

    def _consume(self, item):
        gen, seq, t_cap, frames, rate, data, ovf = item
        chunk_s = frames / rate
        if self._blocker is None:  # the first chunk anchors the first segment
            self._blocker = _Blocker(self.target_rate_hz, _block_len(self.block_ms, self.target_rate_hz))
            self._start_segment(rate, t_cap, 0.0)
        else:
            late = t_cap - (self._in_anchor + self._n_in / self._resampler.sr_in)
            gap = None
            if gen != self._cur_gen or rate != self._resampler.sr_in:
                gap = max(0.0, late)  # the device was lost and reopened
            elif seq > self._next_seq:
                gap = max((seq - self._next_seq) * chunk_s, late)  # chunks dropped from the queue
            elif ovf and late > 0.5 * chunk_s:
                gap = late  # the driver overflowed and lost samples
            elif self._resync > 0:
                gap = self._resync  # every chunk for a while came late: re-anchor
            if gap is not None:
                self._blocker.add(self._resampler.flush(), self._ready)
                self._blocker.drain(self._ready)
                start = self._blocker.t_end
                if gap > 0:
                    self.stats.add_gap(start, start + gap)
                self._start_segment(rate, start + gap, gap)
        self._cur_gen, self._next_seq = gen, seq + 1
        if self._n_in:
            self._drift_min = min(self._drift_min, t_cap - (self._in_anchor + self._n_in / rate))
            self._drift_n += 1
            if self._drift_n * chunk_s >= _DRIFT_WINDOW_S:
                self._resync = self._drift_min if self._drift_min > _DRIFT_MAX_S else 0.0
                self._drift_min, self._drift_n = math.inf, 0
        x = np.frombuffer(data, dtype="<i2").astype(np.float32) * np.float32(1.0 / 32768.0)
        if self.channels > 1:
            x = x[: (x.shape[0] // self.channels) * self.channels].reshape(-1, self.channels)
            x = x.mean(axis=1, dtype=np.float32)
        self._n_in += x.shape[0]
        self._blocker.add(self._resampler.push(x), self._ready)

    def _start_segment(self, rate, t_start, gap):
        self._resampler = StreamResampler(rate, self.target_rate_hz)
        self._in_anchor = float(t_start)
        self._n_in = 0
        self._blocker.reanchor(t_start, gap)
        self._drift_min, self._drift_n, self._resync = math.inf, 0, 0.0

    def _close(self):
        self._stop.set()
        sup = self._supervisor
        if sup is not None and sup is not threading.current_thread():
            sup.join(timeout=_STOP_TIMEOUT_S + 3.0)
        with self._lock:
            stream, pa = self._stream, self._pa
            self._stream = self._pa = None
        _teardown(stream, pa, self.stats)
        if self._lost_since is not None:
            self.stats.add_gap(self._blocker.t_end if self._blocker is not None else self._lost_since,
                               self.clock.now_s())
        self._resampler = None  # release soxr's state now, not when a hung driver lets go of the callback
        self._ready.clear()


def _teardown(stream, pa, stats):
    """Stop and close ``stream``, terminate ``pa``; at most _STOP_TIMEOUT_S, never raises."""
    if stream is None and pa is None:
        return

    def run():
        for step in ("stop", "close", "terminate"):
            try:
                if step == "stop" and stream is not None:
                    if stream.is_active():
                        stream.stop_stream()
                elif step == "close" and stream is not None:
                    stream.close()
                elif step == "terminate" and pa is not None:
                    pa.terminate()
            except Exception as exc:
                stats.last_error = f"{step}: {exc}"

    t = threading.Thread(target=run, name="affectedge-mic-close", daemon=True)
    t.start()
    t.join(_STOP_TIMEOUT_S)
    if t.is_alive():
        stats.last_error = f"the audio driver did not stop within {_STOP_TIMEOUT_S:.0f} s; the stream was abandoned"
