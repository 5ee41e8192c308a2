"""EEG sources: live BrainFlow boards, BrainFlow playback files, and recordings.

Three ways in, all with the :class:`~affectedge.sensors.Source` protocol
(``with src: pkt = src.read(timeout_s)``) and all delivering
:class:`~affectedge.sensors.EEGBlock` packets (EEG channels only, float64,
microvolts, shape ``(channels, n)``; NaN is passed through untouched: marking
flat or railed channels is the runtime's job):

:class:`BoardSource` ``(board="synthetic", *, params=None, clock=None, block_ms=100,
watchdog_s=2.0, reconnect=True, max_reconnects=None, backoff_s=(0.5, 1, 2, 4), log_level="off")``
    Any BrainFlow board, by name (case-insensitive: ``"synthetic"``,
    ``"cyton_daisy"``, ``"muse_2"``, ``"playback"``, any ``BoardIds`` member
    name with or without ``_BOARD``) or by integer id. ``params`` is a dict of
    BrainFlow connection parameters (``serial_port``, ``mac_address``,
    ``ip_address``, ``ip_port``, ``ip_protocol`` ("tcp"/"udp" or a number),
    ``serial_number``, ``file``, ``master_board`` (a board name or id),
    ``timeout``, ``other_info``, and the other ``BrainFlowInputParams`` fields).
    Channel names come from the board description's ``eeg_names`` (else
    ``"ch1".."chN"``), the rate from BrainFlow; both are known before
    ``open()`` as ``channel_names`` and ``sample_rate_hz``.

    *Timestamps.* The first block is anchored on the shared clock at the time
    its samples were fetched minus their duration; every later block starts
    where the previous one ended (contiguous by sample count), except across a
    gap, where the block carries ``gap_before_s > 0``.

    *Watchdog.* When no new samples arrive for ``watchdog_s`` seconds (Muse
    headsets stop silently, Bluetooth drops, a serial cable is pulled), the
    samples already fetched are delivered as a short block, then the session
    is released and prepared again in a background thread, waiting
    ``backoff_s[i]`` before attempt ``i`` (the last value repeats). While that
    runs ``read()`` returns None within its ``timeout_s`` so the other
    modalities go on. Each successful re-prepare counts in
    ``stats.reconnects``; the outage is recorded with ``stats.add_gap(start,
    end)`` once data flows again (or at close). An attempt fails when
    prepare/start raises or when the restarted session again delivers
    nothing for ``watchdog_s``; after ``max_reconnects`` consecutive failures
    (``None``: never give up) ``read()`` raises :class:`SensorError`, as it
    does at the first stall with ``reconnect=False``.

    *Playback.* ``BoardSource("playback", params={"file": path, "master_board":
    "muse_2"})`` replays a file in BrainFlow's own layout through
    ``PLAYBACK_FILE_BOARD`` in real time, without loopback. Channel names and
    rate come from the master board. When the file ends (all its rows
    delivered, or the watchdog fires), ``read()`` raises :class:`EndOfStream`
    after every sample has been delivered: a playback that ends is the end of
    the stream, never a reconnect.

    ``close()`` stops the reconnect thread and always releases the BrainFlow
    session (``stop_stream`` + ``release_session``); it is idempotent. BrainFlow
    allows one session per (board, params) in a process, so a second source on
    the same board can only open after the first is closed.

:class:`EEGRecordingSource` ``(path, *, sample_rate_hz=None, channels=None, clock=None,
block_ms=100, realtime=False, board=None)``
    A recording replayed as blocks: a CSV/TSV with a header of channel names
    (:func:`affectedge.io.read_eeg_csv`) or, with ``board=``, a file in
    BrainFlow's layout (:func:`affectedge.io.read_brainflow_file`). Blocks are
    stamped in media time (the first sample at 0 s). With ``realtime=True`` a
    block is delivered once the clock has reached its end time
    (``clock.sleep_until``, never longer than ``read``'s ``timeout_s``);
    otherwise as fast as ``read()`` is called. :class:`EndOfStream` at the end.

:func:`open_eeg` ``(spec, *, clock=None, **kw)``
    A source from a CLI spec string:

    * ``synthetic`` -- BrainFlow's synthetic board;
    * ``playback:FILE`` -- a BrainFlow file; the master board comes from the
      file name (``x.muse2.csv``, ``cyton_daisy_10s.csv``) or is given as
      ``playback:FILE:master_board=muse_2``;
    * ``BOARD[:key=value,...]`` -- e.g. ``cyton:serial_port=/dev/ttyUSB0``,
      ``muse_2:mac_address=00:55:DA:B0:12:34,timeout=15``;
    * a path to a ``.csv``/``.tsv``/``.txt`` recording (a header-less
      BrainFlow file whose name tells the board is read with that board).

    ``kw`` go to the source (``block_ms``, ``watchdog_s``, ... for boards;
    ``sample_rate_hz``, ``channels``, ``realtime``, ``board`` for recordings);
    keys set to None are dropped, and ``realtime`` is ignored for boards (they
    are live). A bad spec raises :class:`ParameterError` naming the spec and
    the accepted forms.

Everything BrainFlow comes through :func:`affectedge._optional.require_brainflow`
(``pip install 'affectedge[eeg]'``). ``log_level`` sets BrainFlow's board
logger, which is process-wide ("off", "error", "warn", "info", "debug", "trace").
"""

import collections
import difflib
import os
import re
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .. import io as _io
from .._optional import brainflow_native, require_brainflow
from ..errors import ParameterError, SensorError
from ._base import EEGBlock, EndOfStream, Source

__all__ = ["BoardSource", "EEGRecordingSource", "open_eeg"]

_BUFFER_S = 60.0  # BrainFlow ring buffer, seconds of data (read() drains it on every poll)
_NO_BOARD = -100
_LOG_LEVELS = {"trace": 0, "debug": 1, "info": 2, "warn": 3, "warning": 3, "error": 4, "critical": 5,
               "off": 6, "none": 6}
_SPEC_FORMS = ("'synthetic'; 'playback:FILE' (master board from a file name like x.muse2.csv) or "
               "'playback:FILE:master_board=muse_2'; 'BOARD[:key=value,...]' such as "
               "'cyton:serial_port=/dev/ttyUSB0' or 'muse_2:mac_address=00:55:DA:B0:12:34'; "
               "or a path to a .csv recording")
_RECORDING_SUFFIXES = {".csv", ".tsv", ".txt"}


def _bf():
    return require_brainflow()[0]


_SHIM = []


def _shim_class():
    """BoardShim without its ``__del__``.

    BrainFlow keys sessions by (board id, params JSON), and ``BoardShim.__del__``
    releases *the session of that key* when one is prepared. So a BoardShim that
    is garbage-collected, after a failed prepare or after a reconnect made a new
    one, releases whichever session now holds the key: another source's, or
    the reconnected one. BoardSource releases its sessions itself.
    """
    if not _SHIM:
        bf = _bf()

        class _BoardShim(bf.BoardShim):
            def __del__(self):
                pass

        _SHIM.append(_BoardShim)
    return _SHIM[0]


# --------------------------------------------------------------------------- boards and params
def _board_names():
    """{lowercase name without _board: id} for every real board, plus the short aliases of io.BOARDS."""
    bf = _bf()
    table = {}
    for m in bf.BoardIds:
        if m.name in ("NO_BOARD",):
            continue
        key = m.name.lower()
        table[key[:-6] if key.endswith("_board") else key] = int(m.value)
    for alias, member in _io.BOARDS.items():
        table.setdefault(alias, int(getattr(bf.BoardIds, member).value))
    table["playback"] = int(bf.BoardIds.PLAYBACK_FILE_BOARD.value)
    table["streaming"] = int(bf.BoardIds.STREAMING_BOARD.value)
    return table


def _resolve_board(board, what="board"):
    """A BrainFlow board id from a name (case-insensitive, with or without _BOARD), a BoardIds member or an int."""
    bf = _bf()
    valid_ids = {int(m.value) for m in bf.BoardIds if m.name != "NO_BOARD"}
    if isinstance(board, bf.BoardIds):
        return int(board.value)
    if isinstance(board, (int, np.integer)) and not isinstance(board, bool):
        bid = int(board)
    elif isinstance(board, str) and re.fullmatch(r"\s*-?\d+\s*", board):
        bid = int(board)
    elif isinstance(board, str) and board.strip():
        key = re.sub(r"[\s\-]+", "_", board.strip().lower())
        table = _board_names()
        for cand in (key, key[:-6] if key.endswith("_board") else None):
            if cand and cand in table:
                return table[cand]
        squashed = {k.replace("_", ""): v for k, v in table.items()}
        flat = key.replace("_", "")
        for cand in (flat, flat[:-5] if flat.endswith("board") else None):
            if cand and cand in squashed:
                return squashed[cand]
        close = difflib.get_close_matches(key, sorted(table), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ParameterError(
            f"{what}={board!r} is not a BrainFlow board{hint} Expected a board name such as 'synthetic', "
            "'cyton', 'cyton_daisy', 'ganglion', 'muse_2', 'muse_s', 'playback' (any BoardIds member "
            "name, case-insensitive, with or without _BOARD) or a board id number"
        )
    else:
        raise ParameterError(f"{what}={board!r} is not a board; expected a board name (str) or id (int)")
    if bid not in valid_ids:
        raise ParameterError(
            f"{what}={board!r} is not a BrainFlow board id; this BrainFlow knows ids "
            f"{min(valid_ids)}..{max(valid_ids)} (see brainflow.BoardIds), e.g. -1 for the synthetic board"
        )
    return bid


def _board_label(bid):
    bf = _bf()
    try:
        name = bf.BoardIds(bid).name.lower()
    except ValueError:
        return str(bid)
    return name[:-6] if name.endswith("_board") else name


def _input_params(params):
    """BrainFlowInputParams from a dict, checking names and types."""
    bf = _bf()
    p = bf.BrainFlowInputParams()
    if params is None:
        return p
    if isinstance(params, bf.BrainFlowInputParams):
        return params
    if not isinstance(params, Mapping):
        raise ParameterError(
            f"params={params!r} is not a dict; expected BrainFlow connection parameters such as "
            "{'serial_port': '/dev/ttyUSB0'} or {'mac_address': '00:55:DA:B0:12:34'}"
        )
    allowed = sorted(k for k in vars(p) if not k.startswith("_"))
    for key, value in params.items():
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ParameterError(
                f"params key {key!r} is not a BrainFlow connection parameter{hint}; expected one of {allowed}"
            )
        if value is None:
            continue
        default = getattr(p, key)
        if key == "master_board":
            value = _resolve_board(value, "params['master_board']")
        elif key == "ip_protocol" and isinstance(value, str) and not value.strip().isdigit():
            protocols = {"none": 0, "no": 0, "udp": 1, "tcp": 2}
            if value.strip().lower() not in protocols:
                raise ParameterError(
                    f"params['ip_protocol']={value!r} is not an IP protocol; expected 'tcp', 'udp', 'none' or 0/1/2"
                )
            value = protocols[value.strip().lower()]
        elif isinstance(default, int):
            try:
                value = int(value)
            except (TypeError, ValueError):
                raise ParameterError(
                    f"params[{key!r}]={value!r} is not a whole number; expected e.g. {key}=15"
                ) from None
        else:
            value = os.fspath(value) if isinstance(value, os.PathLike) else str(value)
        setattr(p, key, value)
    return p


def _log_level(level):
    bf = _bf()
    if level is None:
        return 6
    if isinstance(level, bf.LogLevels):
        return int(level.value)
    if isinstance(level, (int, np.integer)) and not isinstance(level, bool) and 0 <= int(level) <= 6:
        return int(level)
    if isinstance(level, str) and level.strip().lower().removeprefix("level_") in _LOG_LEVELS:
        return _LOG_LEVELS[level.strip().lower().removeprefix("level_")]
    raise ParameterError(
        f"log_level={level!r} is not a BrainFlow log level; expected one of 'off', 'error', 'warn', "
        "'info', 'debug', 'trace' (or 0..6)"
    )


_HINTS = {
    "UNABLE_TO_OPEN_PORT_ERROR": "check params serial_port (e.g. /dev/ttyUSB0 or COM3), that the dongle is "
                                 "plugged in and that you may open it (Linux: the dialout group)",
    "PORT_ALREADY_OPEN_ERROR": "another program (OpenBCI GUI, a second process) holds the port; close it",
    "SER_PORT_ERROR": "the serial port failed; re-plug the dongle and check serial_port",
    "BOARD_NOT_READY_ERROR": "is the board switched on, charged and in range? For Bluetooth boards pass "
                             "mac_address or serial_number and a longer timeout",
    "SYNC_TIMEOUT_ERROR": "the board did not answer in time; switch it on, bring it closer, or raise params timeout",
    "ANOTHER_BOARD_IS_CREATED_ERROR": "a session for this board with the same params is already open in this "
                                      "process; close the other BoardSource first",
    "INVALID_ARGUMENTS_ERROR": "BrainFlow rejected the params; check which fields this board needs "
                               "(https://brainflow.readthedocs.io/en/stable/SupportedBoards.html)",
    "UNSUPPORTED_BOARD_ERROR": "this BrainFlow build does not support the board on this platform",
    "GENERAL_ERROR": "run with log_level='info' to see BrainFlow's own log",
}


def _brainflow_message(exc):
    bf = _bf()
    code = getattr(exc, "exit_code", None)
    try:
        name = bf.BrainFlowExitCodes(code).name
    except (ValueError, TypeError):
        name = f"exit code {code}"
    hint = _HINTS.get(name, "run with log_level='info' to see BrainFlow's own log")
    return name, hint


def _count_rows(path, num_rows, what):
    """Data rows in a BrainFlow file, checking that the first has the master board's columns."""
    n = 0
    first = None
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if not line.strip():
                    continue
                if first is None:
                    first = line
                n += 1
    except OSError as exc:
        raise ParameterError(f"cannot read {what} {str(path)!r}: {exc.strerror or exc}") from exc
    if first is None:
        raise ParameterError(f"{what} {str(path)!r} is empty; expected rows of samples in BrainFlow's layout")
    sep = "\t" if "\t" in first else ","
    cells = first.rstrip("\r\n").split(sep)
    while cells and not cells[-1].strip():
        cells.pop()
    if len(cells) != num_rows:
        raise ParameterError(
            f"{what} {str(path)!r} has {len(cells)} columns per row but its master board writes {num_rows}; "
            "pass the board that recorded it as params['master_board'] (CLI: playback:FILE:master_board=NAME)"
        )
    return n


# --------------------------------------------------------------------------- BoardSource
class BoardSource(Source):
    """A live (or playback) BrainFlow board as a stream of :class:`EEGBlock` (see the module docstring)."""

    modality = "eeg"

    def __init__(self, board="synthetic", *, params=None, clock=None, block_ms=100, watchdog_s=2.0,
                 reconnect=True, max_reconnects=None, backoff_s=(0.5, 1, 2, 4), log_level="off"):
        super().__init__(clock)
        bf = _bf()
        self._bf = bf
        self.board_id = _resolve_board(board)
        self._params = _input_params(params)
        self._log_level = _log_level(log_level)
        self.is_playback = self.board_id == int(bf.BoardIds.PLAYBACK_FILE_BOARD.value)
        needs_master = self.is_playback or self.board_id == int(bf.BoardIds.STREAMING_BOARD.value)
        master = int(self._params.master_board)
        if needs_master:
            if master == _NO_BOARD:
                raise ParameterError(
                    f"board={board!r} replays data of another board but params has no 'master_board'; pass "
                    "the board that recorded it, e.g. params={'file': 'x.csv', 'master_board': 'muse_2'}"
                )
            self.master_board_id = master
        else:
            self.master_board_id = self.board_id
        try:
            with brainflow_native(f"board={board!r}"):
                descr = bf.BoardShim.get_board_descr(self.master_board_id)
        except bf.BrainFlowError as exc:
            raise ParameterError(
                f"board={board!r}: BrainFlow has no description of board {self.master_board_id} ({exc}); "
                "use a board this BrainFlow version supports"
            ) from None
        rows = list(descr.get("eeg_channels") or [])
        if not rows:
            raise ParameterError(
                f"board={board!r} ({descr.get('name', self.master_board_id)}) has no EEG channels; "
                "use an EEG board such as 'cyton', 'muse_2' or 'synthetic'"
            )
        self._eeg_rows = rows
        self._num_rows = int(descr["num_rows"])
        self.sample_rate_hz = float(descr["sampling_rate"])
        names = [n.strip() for n in str(descr.get("eeg_names") or "").split(",") if n.strip()]
        self.channel_names = tuple(names) if len(names) == len(rows) else tuple(f"ch{i + 1}" for i in range(len(rows)))

        self._file_rows = None
        if self.is_playback:
            file = self._params.file
            if not file:
                raise ParameterError(
                    f"board={board!r} needs params['file'], the BrainFlow file to replay "
                    "(CLI: playback:FILE or playback:FILE:master_board=NAME)"
                )
            if not Path(file).is_file():
                raise ParameterError(f"playback file {file!r} does not exist; pass the path of a BrainFlow data file")
            self._file_rows = _count_rows(file, self._num_rows, "playback file")

        block_ms = _positive(block_ms, "block_ms", "e.g. 100")
        self.watchdog_s = _positive(watchdog_s, "watchdog_s", "e.g. 2.0 (seconds without samples)")
        if max_reconnects is not None:
            if (isinstance(max_reconnects, bool) or not isinstance(max_reconnects, (int, np.integer))
                    or max_reconnects < 0):
                raise ParameterError(
                    f"max_reconnects={max_reconnects!r} is not a count; expected None (retry forever) or an int >= 0"
                )
            max_reconnects = int(max_reconnects)
        self.max_reconnects = max_reconnects
        self.reconnect = bool(reconnect)
        self.backoff_s = _backoff(backoff_s)
        self._block_n = max(1, int(round(block_ms / 1000.0 * self.sample_rate_hz)))
        self._buffer_size = max(1024, int(self.sample_rate_hz * _BUFFER_S))
        self._poll_s = min(0.05, max(0.005, block_ms / 4000.0))

        label = _board_label(self.board_id)
        if self.is_playback:
            label = f"playback {Path(self._params.file).name} as {_board_label(self.master_board_id)}"
        self.name = f"eeg:{label} ({len(rows)} ch, {self.sample_rate_hz:g} Hz)"

        # state
        self._board = None
        self._board_lock = threading.RLock()
        self._stop = threading.Event()
        self._ready = collections.deque()
        self._pending = []
        self._pending_n = 0
        self._seq = 0
        self._anchor = None  # clock time of the first sample of the current segment
        self._seg_n = 0  # samples of the current segment already cut into blocks
        self._last_end = None  # t_end_s of the last block cut
        self._gap_start = None  # set while an outage is open
        self._gap_before = 0.0  # carried by the next block
        self._last_data_t = 0.0
        self._got_data = False  # since the last (re)connect
        self._by_reconnect = False  # the current session came from a reconnect
        self._failures = 0  # consecutive failed reconnect attempts
        self._fetched = 0
        self._ended = False
        self._error = None
        self._reconnecting = threading.Event()
        self._thread = None
        self._t_open = 0.0

    # session -----------------------------------------------------------------
    def _start_session(self):
        bf = self._bf
        bf.BoardShim.set_log_level(self._log_level)
        board = _shim_class()(self.board_id, self._params)
        stage = "prepare_session"
        try:
            board.prepare_session()
            stage = "start_stream"
            if self.is_playback:
                board.config_board("loopback_false")
            board.start_stream(self._buffer_size)
        except bf.BrainFlowError as exc:
            # Release only what this call prepared: BrainFlow releases by (board, params), so
            # after a failed prepare (e.g. ANOTHER_BOARD_IS_CREATED_ERROR) it would end the
            # session of another source.
            if stage == "start_stream":
                _release(board)
            name, hint = _brainflow_message(exc)
            raise SensorError(
                f"EEG board {self.name}: {stage} failed with {name} (params: {_params_text(self._params)}); {hint}"
            ) from None
        with self._board_lock:
            self._board = board

    def _open(self):
        self._start_session()
        now = self.clock.now_s()
        self._t_open = now
        self._last_data_t = now
        self._got_data = False

    def _close(self):
        self._stop.set()
        thread = self._thread
        if thread is not None and thread.is_alive():
            thread.join(timeout=10.0)
        if self._gap_start is not None:
            self.stats.add_gap(self._gap_start, max(self._gap_start, self.clock.now_s()))
            self._gap_start = None
        with self._board_lock:
            board, self._board = self._board, None
        if board is not None:
            _release(board)

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    @property
    def params(self):
        """The BrainFlow connection parameters that differ from BrainFlow's defaults, as a dict."""
        return {k: v for k, v in vars(self._params).items()
                if not k.startswith("_") and v not in ("", 0) and not (k == "master_board" and v == _NO_BOARD)}

    @property
    def board(self):
        """The underlying ``BoardShim`` of the current session (None when closed or reconnecting)."""
        return self._board

    # reading -----------------------------------------------------------------
    def _read(self, timeout_s):
        deadline = time.monotonic() + max(0.0, float(timeout_s or 0.0))
        while True:
            if self._ready:
                return self._ready.popleft()
            if self._error is not None:
                raise self._error
            if self._ended:
                raise EndOfStream(f"{self.name}: the playback file has been delivered")
            if self._reconnecting.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                # the reconnect thread clears the flag and sets _stop only on close
                _wait_clear(self._reconnecting, min(remaining, self._poll_s * 2))
                continue
            self._poll()
            if self._ready or self._error is not None or self._ended or self._reconnecting.is_set():
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            if self._stop.wait(min(remaining, self._poll_s)):
                return None

    def _poll(self):
        with self._board_lock:
            board = self._board
            data = None
            if board is not None:
                try:
                    data = board.get_board_data()
                except self._bf.BrainFlowError as exc:
                    name, _ = _brainflow_message(exc)
                    self.stats.last_error = f"get_board_data: {name}"
        now = self.clock.now_s()
        n = 0 if data is None or data.ndim != 2 else int(data.shape[1])
        if n:
            self._on_data(np.ascontiguousarray(data[self._eeg_rows], dtype=np.float64), n, now)
            if self.is_playback and self._file_rows is not None and self._fetched >= self._file_rows:
                self._flush()
                self._ended = True
        elif now - self._last_data_t > self.watchdog_s:
            self._on_stall(now)

    def _on_data(self, eeg, n, now):
        fs = self.sample_rate_hz
        if n >= self._buffer_size:  # BrainFlow's ring buffer was full: older samples were overwritten
            with self.stats._lock:
                self.stats.overflows += 1
            self._flush()
            if self._last_end is not None and self._gap_start is None:
                self._gap_start = self._last_end
            self._anchor = None
        if self._anchor is None:
            t_first = now - n / fs
            if self._gap_start is not None:
                t_first = max(t_first, self._gap_start + 1.0 / fs)
                self.stats.add_gap(self._gap_start, t_first)
                self._gap_before = t_first - self._gap_start
                self._gap_start = None
            self._anchor = t_first
            self._seg_n = 0
        self._pending.append(eeg)
        self._pending_n += n
        self._fetched += n
        self._last_data_t = now
        if not self._got_data:
            self._got_data = True
            self._failures = 0
        while self._pending_n >= self._block_n:
            self._cut(self._block_n)

    def _cut(self, n):
        data = self._pending[0] if len(self._pending) == 1 else np.concatenate(self._pending, axis=1)
        block, rest = data[:, :n], data[:, n:]
        self._pending = [rest] if rest.shape[1] else []
        self._pending_n = rest.shape[1]
        t_start = self._anchor + self._seg_n / self.sample_rate_hz
        self._seg_n += n
        pkt = EEGBlock(data=np.ascontiguousarray(block), sample_rate_hz=self.sample_rate_hz,
                       channel_names=self.channel_names, t_start_s=t_start, seq=self._seq,
                       gap_before_s=self._gap_before)
        self._seq += 1
        self._gap_before = 0.0
        self._last_end = pkt.t_end_s
        self._ready.append(pkt)

    def _flush(self):
        if self._pending_n:
            self._cut(self._pending_n)

    def _on_stall(self, now):
        self._flush()
        if self.is_playback:
            if self._fetched == 0:
                self._fail(now, f"the playback of {self._params.file!r} gave no samples in {self.watchdog_s:g} s "
                                "(is master_board the board that wrote the file?)")
            else:
                self._ended = True
            return
        self._anchor = None
        if self._gap_start is None:
            self._gap_start = self._last_end if self._last_end is not None else self._t_open
        if self._by_reconnect and not self._got_data:
            self._failures += 1
        self.stats.last_error = f"no samples for {self.watchdog_s:g} s"
        if not self.reconnect:
            self._fail(now, f"no samples for {self.watchdog_s:g} s and reconnect=False")
            return
        if self.max_reconnects is not None and self._failures >= self.max_reconnects:
            self._fail(now, f"no samples for {self.watchdog_s:g} s and {self._failures} reconnect attempt(s) failed")
            return
        self._reconnecting.set()
        self._thread = threading.Thread(target=self._reconnect_loop, name=f"affectedge-eeg-reconnect-{self.board_id}",
                                        daemon=True)
        self._thread.start()

    def _fail(self, now, why):
        if self._gap_start is not None:
            self.stats.add_gap(self._gap_start, max(self._gap_start, now))
            self._gap_start = None
        last = f" (last error: {self.stats.last_error})" if self.stats.last_error else ""
        self._error = SensorError(
            f"EEG board {self.name} stopped delivering samples: {why}{last}. Check that the board is on, charged "
            f"and in range, and its params ({_params_text(self._params)}); raise watchdog_s or max_reconnects "
            "to wait longer"
        )

    def _reconnect_loop(self):
        try:
            while not self._stop.is_set():
                if self.max_reconnects is not None and self._failures >= self.max_reconnects:
                    self._fail(self.clock.now_s(), f"{self._failures} reconnect attempt(s) failed")
                    return
                delay = self.backoff_s[min(self._failures, len(self.backoff_s) - 1)]
                if self._stop.wait(delay):
                    return
                with self._board_lock:
                    board, self._board = self._board, None
                if board is not None:
                    _release(board)
                try:
                    self._start_session()
                except SensorError as exc:
                    self._failures += 1
                    self.stats.last_error = str(exc)
                    continue
                if self._stop.is_set():  # closed while preparing: close() may have missed this session
                    with self._board_lock:
                        board, self._board = self._board, None
                    if board is not None:
                        _release(board)
                    return
                with self.stats._lock:
                    self.stats.reconnects += 1
                self._by_reconnect = True
                self._got_data = False
                self._last_data_t = self.clock.now_s()
                return
        finally:
            self._reconnecting.clear()


def _wait_clear(event, timeout_s):
    """Wait up to timeout_s for ``event`` to be cleared."""
    end = time.monotonic() + timeout_s
    while event.is_set():
        left = end - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.01))


def _release(board):
    try:
        board.stop_stream()
    except Exception:
        pass
    try:
        board.release_session()
    except Exception:
        pass


def _params_text(p):
    shown = {k: v for k, v in vars(p).items() if not k.startswith("_") and v not in ("", 0, _NO_BOARD)}
    return ", ".join(f"{k}={v!r}" for k, v in shown.items()) or "none"


def _positive(value, what, example):
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if isinstance(value, bool) or not np.isfinite(v) or v <= 0:
        raise ParameterError(f"{what}={value!r} is not a positive number; expected {example}")
    return v


def _backoff(backoff_s):
    seq = [backoff_s] if isinstance(backoff_s, (int, float)) and not isinstance(backoff_s, bool) else backoff_s
    try:
        out = tuple(float(x) for x in seq)
    except (TypeError, ValueError):
        out = ()
    if not out or any(not np.isfinite(x) or x < 0 for x in out):
        raise ParameterError(
            f"backoff_s={backoff_s!r} is not a list of waits; expected seconds >= 0 such as (0.5, 1, 2, 4)"
        )
    return out


# --------------------------------------------------------------------------- EEGRecordingSource
class EEGRecordingSource(Source):
    """An EEG recording (CSV with a header, or a BrainFlow file with ``board=``) replayed as blocks."""

    modality = "eeg"

    def __init__(self, path, *, sample_rate_hz=None, channels=None, clock=None, block_ms=100, realtime=False,
                 board=None):
        super().__init__(clock)
        self.path = Path(path)
        block_ms = _positive(block_ms, "block_ms", "e.g. 100")
        if channels is not None and (isinstance(channels, str) or not all(isinstance(c, str) for c in channels)):
            raise ParameterError(f"channels={channels!r} is not a list of channel names; expected e.g. ['TP9', 'AF7']")
        if board is None:
            rec = _io.read_eeg_csv(self.path, sample_rate_hz=sample_rate_hz, channels=channels)
            data, names, fs = rec.data, rec.channel_names, rec.sample_rate_hz
        else:
            rec = _io.read_brainflow_file(self.path, board)
            data, names, fs = rec.data, rec.channel_names, rec.sample_rate_hz
            if sample_rate_hz is not None:
                fs = _positive(sample_rate_hz, "sample_rate_hz", "e.g. 256")
            if channels is not None:
                missing = [c for c in channels if c not in names]
                if missing:
                    raise ParameterError(
                        f"channels {missing} are not in {str(self.path)!r}; board {board!r} has {list(names)}"
                    )
                idx = [names.index(c) for c in channels]
                data, names = data[idx], tuple(channels)
        if data.shape[1] == 0:
            raise ParameterError(f"EEG recording {str(self.path)!r} has no samples")
        self._data = np.asarray(data, dtype=np.float64)
        self.channel_names = tuple(names)
        self.sample_rate_hz = float(fs)
        self.realtime = bool(realtime)
        self._block_n = max(1, int(round(block_ms / 1000.0 * self.sample_rate_hz)))
        self._pos = 0
        self._seq = 0
        self._stop = threading.Event()
        self.name = f"eeg-file:{self.path.name} ({len(names)} ch, {self.sample_rate_hz:g} Hz)"

    @property
    def n_samples(self):
        return int(self._data.shape[1])

    @property
    def duration_s(self):
        return self.n_samples / self.sample_rate_hz

    def _read(self, timeout_s):
        n = self._data.shape[1]
        if self._pos >= n:
            raise EndOfStream(f"{self.name}: all {n} samples delivered")
        end = min(self._pos + self._block_n, n)
        fs = self.sample_rate_hz
        if self.realtime:
            due = end / fs
            now = self.clock.now_s()
            if due > now:
                self.clock.sleep_until(now + min(due - now, max(0.0, float(timeout_s or 0.0))), self._stop)
                if self.clock.now_s() + 1e-4 < due:
                    return None
        pkt = EEGBlock(data=np.ascontiguousarray(self._data[:, self._pos:end]), sample_rate_hz=fs,
                       channel_names=self.channel_names, t_start_s=self._pos / fs, seq=self._seq)
        self._pos = end
        self._seq += 1
        return pkt

    def _close(self):
        self._stop.set()


# --------------------------------------------------------------------------- open_eeg
def _board_from_filename(path):
    """The board a file name names (``x.muse2.csv``, ``cyton_daisy_10s.csv``), or None."""
    table = {k: v for k, v in _board_names().items() if k not in ("playback", "streaming", "playback_file")}
    name = Path(path).name.lower()
    parts = name.split(".")
    if len(parts) >= 3:
        token = re.sub(r"[^a-z0-9]", "", parts[-2])
        squashed = {k.replace("_", ""): v for k, v in table.items()}
        if token in squashed:
            return squashed[token]
    stem = parts[0]
    forms = sorted({f for k in table for f in (k, k.replace("_", ""))}, key=len, reverse=True)
    lookup = {**{k.replace("_", ""): v for k, v in table.items()}, **table}
    for form in forms:
        if stem == form or (stem.startswith(form) and stem[len(form)] in "_-. "):
            return lookup[form]
    return None


def _is_board(name):
    try:
        _resolve_board(name)
    except ParameterError:
        return False
    return True


_KV = r"[A-Za-z_][A-Za-z0-9_]*=[^,]*"


def _parse_options(text, spec):
    out = {}
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ParameterError(
                f"EEG spec {spec!r}: {item!r} is not key=value; accepted forms: {_SPEC_FORMS}"
            )
        out[key.strip()] = value.strip()
    return out


def _is_brainflow_layout(path):
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as fh:
            first = next((line for line in fh if line.strip()), "")
    except OSError:
        return False
    cells = [c for c in re.split(r"[\t,]", first.strip()) if c.strip()]
    if not cells:
        return False
    try:
        [float(c) for c in cells]
    except ValueError:
        return False
    return True


_BOARD_KW = {"params", "block_ms", "watchdog_s", "reconnect", "max_reconnects", "backoff_s", "log_level"}
_RECORDING_KW = {"sample_rate_hz", "channels", "block_ms", "realtime", "board"}


def _check_kw(spec, kw, allowed, kind):
    kw = {k: v for k, v in kw.items() if v is not None}
    if kind == "board":
        kw.pop("realtime", None)  # boards are live
    bad = sorted(set(kw) - allowed)
    if bad:
        raise ParameterError(
            f"EEG spec {spec!r} opens a {kind}, which does not take {bad}; it takes {sorted(allowed)}"
        )
    return kw


def open_eeg(spec, *, clock=None, **kw):
    """An EEG source from a CLI spec (see the module docstring for the forms).

    Nothing is opened yet: the source connects on ``open()`` / ``with``.
    """
    try:
        return _open_eeg(spec, clock, kw)
    except ParameterError as exc:
        text = str(exc)
        if "accepted forms" in text.lower():
            raise
        prefix = "" if text.startswith("EEG spec") else f"EEG spec {spec!r}: "
        raise ParameterError(f"{prefix}{text.rstrip('.')}. Accepted forms: {_SPEC_FORMS}") from None


def _open_eeg(spec, clock, kw):
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str) or not spec.strip():
        raise ParameterError(f"EEG spec {spec!r} is empty or not a string; accepted forms: {_SPEC_FORMS}")
    text = spec.strip()
    low = text.lower()

    if low == "playback" or low.startswith("playback:"):
        rest = text[len("playback:"):] if ":" in text else ""
        options = {}
        m = re.search(rf":({_KV}(?:,{_KV})*)$", rest)
        if m:
            options = _parse_options(m.group(1), spec)
            rest = rest[: m.start()]
        if not rest.strip():
            raise ParameterError(f"EEG spec {spec!r} names no file to replay; accepted forms: {_SPEC_FORMS}")
        kw = _check_kw(spec, kw, _BOARD_KW, "board")
        params = dict(kw.pop("params", None) or {})
        params.update(options)
        params["file"] = rest
        if "master_board" not in params:
            master = _board_from_filename(rest)
            if master is None:
                raise ParameterError(
                    f"EEG spec {spec!r}: cannot tell which board recorded {rest!r} from its name; write "
                    f"'playback:{rest}:master_board=muse_2' (the board's name) or name the file like "
                    "'x.muse2.csv'"
                )
            params["master_board"] = master
        return BoardSource("playback", params=params, clock=clock, **kw)

    name, sep, opts = text.partition(":")
    path = Path(text)
    # BOARD[:k=v,...] wins over a path (cyton:other_info=x.txt), unless a file of that name exists
    board_form = (re.fullmatch(r"-?[A-Za-z0-9_]+", name) is not None and (not sep or "=" in opts)
                  and not path.is_file() and _is_board(name))
    if not board_form and (path.suffix.lower() in _RECORDING_SUFFIXES or path.is_file()):
        if not path.is_file():
            raise ParameterError(
                f"EEG spec {spec!r} looks like a recording but there is no such file; pass an existing "
                f".csv path. Accepted forms: {_SPEC_FORMS}"
            )
        kw = _check_kw(spec, kw, _RECORDING_KW, "recording")
        if "board" not in kw and _is_brainflow_layout(path):
            board = _board_from_filename(path)
            if board is not None:
                kw["board"] = board
        return EEGRecordingSource(path, clock=clock, **kw)

    options = _parse_options(opts, spec) if sep else {}
    _resolve_board(name)
    kw = _check_kw(spec, kw, _BOARD_KW, "board")
    params = dict(kw.pop("params", None) or {})
    params.update(options)
    return BoardSource(name, params=params or None, clock=clock, **kw)
