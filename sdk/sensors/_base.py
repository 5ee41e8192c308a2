"""What every sensor source shares: one clock, packets, statistics, the source protocol.

Every source (audio file, microphone, camera, video file, image folder, EEG
board, EEG recording) is a context manager with the same small surface::

    with source:                       # open() ... close()
        while True:
            pkt = source.read(timeout_s=0.5)   # a packet, or None when nothing arrived yet
            ...                                 # raises EndOfStream when a finite source is exhausted

Packets carry times in seconds on one :class:`Clock` shared by all the
sources of a session (live sources stamp capture time; file sources stamp
media time and, with ``realtime=True``, pace themselves so that media time
follows the clock). ``source.stats`` counts what was delivered, dropped,
overflowed, reconnected and the gaps seen.
"""

import threading
import time
from dataclasses import dataclass, field

import numpy as np

__all__ = ["AudioBlock", "Clock", "EEGBlock", "EndOfStream", "Source", "SourceStats", "VideoFrame"]


class EndOfStream(Exception):
    """A finite source (file, folder, playback board) has delivered everything."""


class Clock:
    """Seconds since the session started, from ``time.monotonic()``; shared by all sources."""

    def __init__(self, t0=None):
        self.t0 = time.monotonic() if t0 is None else float(t0)

    def now_s(self):
        return time.monotonic() - self.t0

    def sleep_until(self, t_s, stop_event=None):
        """Sleep until clock time ``t_s`` (returns at once if it has passed, or when stop_event is set)."""
        delay = t_s - self.now_s()
        if delay > 0:
            if stop_event is not None:
                stop_event.wait(delay)
            else:
                time.sleep(delay)


@dataclass(frozen=True)
class AudioBlock:
    """Mono float32 samples in [-1, 1] at ``sample_rate_hz``, starting at ``t_start_s`` on the clock.

    ``gap_before_s`` > 0 means samples were lost just before this block (device
    lost, overflow); ``seq`` counts blocks from 0.
    """

    samples: np.ndarray
    sample_rate_hz: int
    t_start_s: float
    seq: int
    gap_before_s: float = 0.0

    @property
    def t_end_s(self):
        return self.t_start_s + self.samples.shape[0] / self.sample_rate_hz


@dataclass(frozen=True)
class VideoFrame:
    """One RGB uint8 frame (H, W, 3), captured at ``t_s`` on the clock; ``index`` counts frames."""

    image: np.ndarray
    t_s: float
    index: int
    name: str = ""  # file name for image folders / video path, else ""


@dataclass(frozen=True)
class EEGBlock:
    """EEG samples (channels, n) float64 in microvolts at ``sample_rate_hz``, starting at ``t_start_s``."""

    data: np.ndarray
    sample_rate_hz: float
    channel_names: tuple
    t_start_s: float
    seq: int
    gap_before_s: float = 0.0

    @property
    def t_end_s(self):
        return self.t_start_s + self.data.shape[1] / self.sample_rate_hz


@dataclass
class SourceStats:
    """Counters of one source; :meth:`snapshot` gives a JSON-able copy (thread-safe)."""

    delivered: int = 0  # packets handed to read()'s caller
    samples: int = 0  # audio/EEG samples (per channel) or video frames delivered
    dropped: int = 0  # packets dropped (full queue, slow consumer)
    overflows: int = 0  # device input overflows reported by the driver
    reconnects: int = 0
    gaps: list = field(default_factory=list)  # [(start_s, end_s), ...] on the clock
    last_error: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add_gap(self, start_s, end_s):
        with self._lock:
            self.gaps.append((float(start_s), float(end_s)))

    def snapshot(self):
        with self._lock:
            return {"delivered": self.delivered, "samples": self.samples, "dropped": self.dropped,
                    "overflows": self.overflows, "reconnects": self.reconnects,
                    "gaps": [list(g) for g in self.gaps], "gap_s": float(sum(e - s for s, e in self.gaps)),
                    "last_error": self.last_error}


class Source:
    """Base class: context manager, ``open()``, ``read(timeout_s)``, ``close()``, ``stats``.

    Subclasses set ``modality`` ("audio", "video", "eeg") and ``name`` (a short
    human-readable description, e.g. ``"mic:USB Audio (48000 Hz -> 16000 Hz)"``),
    and implement ``_open``, ``_read(timeout_s)`` and ``_close``. ``close`` is
    idempotent and never raises; ``read`` on a closed source raises SensorError.
    """

    modality = ""
    name = ""

    def __init__(self, clock=None):
        self.clock = clock if clock is not None else Clock()
        self.stats = SourceStats()
        self._opened = False
        self._closed = False

    # public surface -------------------------------------------------------
    def open(self):
        if not self._opened:
            self._open()
            self._opened = True
        return self

    def read(self, timeout_s=0.5):
        from affectedge.errors import SensorError

        if self._closed:
            raise SensorError(f"{self.name or type(self).__name__} is closed; create a new source")
        if not self._opened:
            self.open()
        pkt = self._read(timeout_s)
        if pkt is not None:
            with self.stats._lock:
                self.stats.delivered += 1
                self.stats.samples += _count(pkt)
        return pkt

    def close(self):
        if self._closed:
            return
        self._closed = True
        if self._opened:
            try:
                self._close()
            except Exception as exc:  # closing must never raise: it runs in finally blocks and at exit
                self.stats.last_error = f"close: {exc}"

    def __iter__(self):
        while True:
            try:
                pkt = self.read()
            except EndOfStream:
                return
            if pkt is not None:
                yield pkt

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"{type(self).__name__}({self.name!r})"

    # for subclasses ---------------------------------------------------------
    def _open(self):
        pass

    def _read(self, timeout_s):
        raise NotImplementedError

    def _close(self):
        pass


def _count(pkt):
    if isinstance(pkt, AudioBlock):
        return int(pkt.samples.shape[0])
    if isinstance(pkt, EEGBlock):
        return int(pkt.data.shape[1])
    return 1
