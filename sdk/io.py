"""Reading sensor recordings and writing feature files, with clear errors.

* :func:`read_audio`: any format libsndfile reads (WAV, FLAC, OGG/Vorbis,
  Opus, MP3 with libsndfile >= 1.1, AIFF, ...) at any rate, via soundfile.
* :func:`read_wav`: RIFF/WAVE, PCM 8/16/24/32-bit and IEEE float 32/64-bit
  (also WAVE_FORMAT_EXTENSIBLE), with the standard library only.
* :func:`read_eeg_csv`: EEG as comma/tab separated text: a header row of
  channel names (muse-lsl exports, the DEAP raw trial), optionally with a
  ``timestamps`` column from which the sample rate is estimated.
* :func:`read_brainflow_file`: BrainFlow's own file layout (``DataFilter
  .write_file``: tab separated, one row per sample, one column per board
  channel); needs the board to know which columns are EEG (``affectedge[eeg]``).
* :func:`read_eeg_array`: EEG saved with NumPy (``.npy``, or ``.npz`` with one
  array / key ``x``), rows = channels, with the rate given by the caller.
* :func:`read_eeg`: dispatches on the file (``.npy``/``.npz`` or text).
* :func:`write_features`: ``.npy`` or ``.csv``, written atomically (a temporary
  file renamed into place), so a failure never leaves a partial file and an
  existing file is only replaced by a complete one.
"""

import contextlib
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ParameterError

__all__ = ["EEGRecording", "atomic_output", "read_audio", "read_brainflow_file", "read_eeg", "read_eeg_array", "read_eeg_csv",
           "read_wav", "write_features"]

_PCM, _FLOAT, _EXTENSIBLE = 0x0001, 0x0003, 0xFFFE


def _short(text, limit=60):
    """``text`` cut to ``limit`` characters for an error message (never echo a whole file)."""
    text = str(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_audio(path, *, mono=True):
    """Read any audio file libsndfile can decode into float32 samples in [-1, 1].

    Returns ``(samples, sample_rate_hz)``: samples (n,) when ``mono`` (the
    channels averaged) or (n, channels). The rate is the file's own: pass it
    on (``pipeline(y, sample_rate_hz=sr)``), the pipelines resample.
    """
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise ParameterError(f"cannot read audio file {str(path)!r}: no such file")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError, TypeError, ValueError) as exc:
        why = str(exc)
        if why.startswith("Error opening") and "': " in why:  # drop soundfile's repeat of the path
            why = why.split("': ", 1)[1]
        raise ParameterError(
            f"{str(path)!r} is not an audio file that soundfile can read ({_short(why, 80)}); use WAV, FLAC or "
            "OGG, or convert it, e.g. 'ffmpeg -i in.m4a out.wav' or 'sox in.aiff out.wav'"
        ) from None
    if data.shape[0] == 0:
        raise ParameterError(f"{str(path)!r} contains no audio samples (empty or truncated file)")
    if not np.isfinite(data).all():
        bad = int(np.argmax(~np.isfinite(data).all(axis=1)))
        raise ParameterError(f"{str(path)!r} contains NaN or inf samples (first at frame {bad})")
    return (data.mean(axis=1) if mono else data), int(rate)


def read_wav(path, *, mono=True):
    """Read a WAV file into float32 samples in [-1, 1].

    Returns ``(samples, sample_rate_hz)``; samples are (n,) when ``mono`` (the
    channels averaged) or (n, channels) otherwise.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ParameterError(f"cannot read WAV file {str(path)!r}: {exc.strerror or exc}") from exc
    if len(data) < 12 or data[:4] not in (b"RIFF", b"RF64") or data[8:12] != b"WAVE":
        raise ParameterError(
            f"{str(path)!r} is not a WAV file (no RIFF/WAVE header); convert it first, "
            "e.g. with 'sox in.mp3 -r 16000 -c 1 out.wav' or 'ffmpeg -i in.mp3 out.wav'"
        )
    fmt = None
    payload = None
    pos = 12
    while pos + 8 <= len(data):
        cid = data[pos : pos + 4]
        size = struct.unpack_from("<I", data, pos + 4)[0]
        body = data[pos + 8 : pos + 8 + size]
        if cid == b"fmt ":
            if len(body) < 16:
                raise ParameterError(f"{str(path)!r}: the WAV 'fmt ' chunk is truncated ({len(body)} bytes)")
            tag, channels, rate, _, block_align, bits = struct.unpack_from("<HHIIHH", body)
            if tag == _EXTENSIBLE and len(body) >= 26:
                tag = struct.unpack_from("<H", body, 24)[0]
            fmt = (tag, channels, rate, block_align, bits)
        elif cid == b"data":
            payload = body
            if len(body) < size:  # truncated file: keep the whole frames we have
                pass
            break
        pos += 8 + size + (size & 1)
    if fmt is None or payload is None:
        raise ParameterError(f"{str(path)!r}: WAV file has no {'fmt ' if fmt is None else 'data'} chunk (truncated?)")
    tag, channels, rate, block_align, bits = fmt
    if channels < 1 or rate < 1 or block_align < 1:
        raise ParameterError(f"{str(path)!r}: WAV header says {channels} channels at {rate} Hz; the file is corrupt")
    n = len(payload) // block_align
    raw = payload[: n * block_align]
    if n == 0:
        raise ParameterError(f"{str(path)!r} contains no audio samples")
    width = bits // 8
    if tag == _PCM and bits == 8:
        x = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif tag == _PCM and bits == 16:
        x = np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
    elif tag == _PCM and bits == 24:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        x = v.astype(np.float32) / float(1 << 23)
    elif tag == _PCM and bits == 32:
        x = (np.frombuffer(raw, "<i4").astype(np.float64) / 2147483648.0).astype(np.float32)
    elif tag == _FLOAT and bits in (32, 64):
        x = np.frombuffer(raw, "<f4" if bits == 32 else "<f8").astype(np.float32)
    else:
        raise ParameterError(
            f"{str(path)!r}: WAV format tag {tag:#06x} with {bits}-bit samples is not supported; "
            "use PCM 8/16/24/32-bit or IEEE float 32/64-bit"
        )
    if width * channels != block_align:
        raise ParameterError(f"{str(path)!r}: WAV block size {block_align} does not match {channels} x {bits}-bit")
    x = x.reshape(n, channels)
    if not np.isfinite(x).all():
        bad = int(np.argmax(~np.isfinite(x).all(axis=1)))
        raise ParameterError(f"{str(path)!r} contains NaN or inf samples (first at frame {bad})")
    return (x.mean(axis=1) if mono else x), int(rate)


@dataclass(frozen=True)
class EEGRecording:
    """EEG samples (channels, samples) in the file's unit (usually microvolts)."""

    data: np.ndarray
    channel_names: tuple
    sample_rate_hz: float


_NOMINAL_RATES = (100, 125, 128, 200, 250, 256, 500, 512, 1000, 1024, 2048)
_TIME_COLUMNS = {"timestamps", "timestamp", "time", "t", "time_s"}
_IGNORED_COLUMNS = {"right aux", "aux", "marker", "markers"}


def read_eeg_csv(path, *, sample_rate_hz=None, channels=None):
    """EEG from a CSV/TSV with a header row of channel names.

    A ``timestamps`` column (seconds) gives the sample rate when
    ``sample_rate_hz`` is not passed; columns named like AUX or markers are
    dropped. ``channels`` picks columns by name.
    """
    path = Path(path)
    try:
        with path.open("rb") as fh:
            head = fh.read(4096)
    except OSError as exc:
        raise ParameterError(f"cannot read EEG file {str(path)!r}: {exc.strerror or exc}") from exc
    if head.startswith(b"\x93NUMPY") or head.startswith(b"PK\x03\x04"):
        raise ParameterError(f"{str(path)!r} is a NumPy file, not a CSV; name it .npy/.npz and pass the rate "
                             "(read_eeg_array, CLI: --sample-rate)")
    if b"\x00" in head:
        raise ParameterError(f"{str(path)!r} is a binary file (it starts with {_short(repr(head[:16]), 70)}), not "
                             "a CSV/TSV of EEG samples with a header row; for BrainFlow files pass --board, for "
                             "NumPy arrays use a .npy file")
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        header = fh.readline()
    delim = "\t" if header.count("\t") > header.count(",") else ","
    names = [h.strip() for h in header.rstrip("\r\n").split(delim)]
    if not names or all(_is_number(n) for n in names if n):
        raise ParameterError(
            f"{str(path)!r} has no header row of channel names; for BrainFlow's own files use "
            "read_brainflow_file (CLI: --board NAME), else add a header such as 'Fp1,Fp2,...'"
        )
    try:
        table = np.loadtxt(path, delimiter=delim, skiprows=1, ndmin=2, usecols=None, dtype=np.float64,
                           converters=None) if names[-1] else None
    except ValueError:
        table = None
    if table is None:
        # Trailing delimiter (an empty last column) or irregular rows: parse by hand.
        rows = []
        with path.open("r", encoding="utf-8", errors="replace") as fh:
            fh.readline()
            for lineno, line in enumerate(fh, start=2):
                if not line.strip():
                    continue
                cells = line.rstrip("\r\n").split(delim)
                try:
                    rows.append([float(c) if c.strip() else np.nan for c in cells[: len(names)]])
                except ValueError:
                    bad = next((c for c in cells[: len(names)] if c.strip() and not _is_number(c)), "")
                    raise ParameterError(f"{str(path)!r} line {lineno}: {_short(repr(bad.strip()), 40)} is not a "
                                         "number; every row after the header must hold numbers only") from None
        if not rows:
            raise ParameterError(f"{str(path)!r} has a header but no samples")
        width = max(len(r) for r in rows)
        table = np.full((len(rows), width), np.nan)
        for i, r in enumerate(rows):
            table[i, : len(r)] = r
    keep = [i for i, n in enumerate(names) if n and i < table.shape[1]]
    time_idx = next((i for i in keep if names[i].lower() in _TIME_COLUMNS), None)
    chan_idx = [i for i in keep if i != time_idx and names[i].lower() not in _IGNORED_COLUMNS]
    if channels is not None:
        lookup = {names[i]: i for i in chan_idx}
        missing = [c for c in channels if c not in lookup]
        if missing:
            raise ParameterError(
                f"channels {_short(missing, 200)} are not in {str(path)!r}; it has "
                f"{_short([names[i] for i in chan_idx], 300)}"
            )
        chan_idx = [lookup[c] for c in channels]
    if not chan_idx:
        raise ParameterError(f"{str(path)!r} has no EEG channel columns (header: {_short(names, 200)})")
    if sample_rate_hz is None:
        if time_idx is None:
            raise ParameterError(
                f"{str(path)!r} has no timestamps column, so its sample rate is unknown; "
                "pass sample_rate_hz (CLI: --sample-rate), e.g. 128 for DEAP"
            )
        ts = table[:, time_idx]
        ts = ts[np.isfinite(ts)]
        span = ts[-1] - ts[0] if ts.size > 1 else 0.0
        if span <= 0:
            raise ParameterError(f"{str(path)!r}: the timestamps column does not increase; pass sample_rate_hz")
        # Mean rate over the recording (device timestamps jitter sample to
        # sample), snapped to a nominal rate within 2 %.
        rate = (ts.size - 1) / span
        nominal = min(_NOMINAL_RATES, key=lambda r: abs(r - rate))
        sample_rate_hz = float(nominal) if abs(nominal - rate) <= 0.02 * nominal else float(np.round(rate, 3))
    from affectedge.native_kernels._validate import check_rate

    sample_rate_hz = check_rate(sample_rate_hz, "sample_rate_hz")
    data = np.ascontiguousarray(table[:, chan_idx].T)
    return EEGRecording(data=data, channel_names=tuple(names[i] for i in chan_idx), sample_rate_hz=sample_rate_hz)


def read_eeg_array(path, *, sample_rate_hz, channels=None, channel_names=None):
    """EEG from a ``.npy`` (one 2-D array) or ``.npz`` (one array, or key ``x``): rows = channels.

    ``sample_rate_hz`` is required (NumPy files carry no rate).
    ``channel_names`` names the rows (default ``ch0``, ``ch1``, ...);
    ``channels`` picks rows by name. NaN/inf samples are refused with the
    first bad position.
    """
    path = Path(path)
    if not path.is_file():
        raise ParameterError(f"cannot read EEG file {str(path)!r}: no such file")
    if sample_rate_hz is None:
        raise ParameterError(f"{str(path)!r} is a NumPy file, which has no sample rate; pass sample_rate_hz "
                             "(CLI: --sample-rate)")
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise ParameterError(f"{str(path)!r} cannot be read as .npy/.npz ({_short(exc, 80)})") from None
    key = "array"
    if isinstance(z, np.lib.npyio.NpzFile):
        with z:
            keys = list(z.files)
            key = "x" if "x" in keys else (keys[0] if len(keys) == 1 else None)
            if key is None:
                raise ParameterError(f"{str(path)!r} holds arrays {_short(keys, 120)}; put the EEG under key 'x'")
            x = z[key]
    else:
        x = z
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.number):
        raise ParameterError(f"{str(path)!r}: {key} has shape {x.shape} and dtype {x.dtype}; EEG must be a 2-D "
                             "numeric array (channels, samples)")
    if x.shape[0] > x.shape[1]:
        raise ParameterError(f"{str(path)!r}: {key} has shape {x.shape}, more channels than samples; rows must be "
                             "channels: save x.T")
    names = tuple(channel_names) if channel_names is not None else tuple(f"ch{i}" for i in range(x.shape[0]))
    if len(names) != x.shape[0]:
        raise ParameterError(f"{len(names)} channel names for the {x.shape[0]} rows of {str(path)!r}")
    if channels is not None:
        missing = [c for c in channels if c not in names]
        if missing:
            raise ParameterError(f"channels {_short(missing, 200)} are not in {str(path)!r}; it has "
                                 f"{_short(list(names), 300)}")
        idx = [names.index(c) for c in channels]
        x, names = x[idx], tuple(names[i] for i in idx)
    from affectedge.native_kernels._validate import check_rate

    rate = check_rate(sample_rate_hz, "sample_rate_hz")
    x = np.asarray(x, dtype=np.float64)
    bad = ~np.isfinite(x)
    if bad.any():
        ch, t = (int(v) for v in np.argwhere(bad)[0])
        raise ParameterError(
            f"{str(path)!r}: {key} {x.shape} has {int(bad.sum())} NaN/inf value(s), the first at [{ch}, {t}] "
            f"(channel {names[ch]}, {t / rate:.3f} s); interpolate or cut those samples, or drop the channel "
            "(--channels)")
    return EEGRecording(data=np.ascontiguousarray(x), channel_names=names, sample_rate_hz=rate)


def read_eeg(path, *, sample_rate_hz=None, channels=None):
    """EEG from a ``.npy``/``.npz`` (:func:`read_eeg_array`) or a CSV/TSV (:func:`read_eeg_csv`)."""
    if Path(path).suffix.lower() in (".npy", ".npz"):
        return read_eeg_array(path, sample_rate_hz=sample_rate_hz, channels=channels)
    return read_eeg_csv(path, sample_rate_hz=sample_rate_hz, channels=channels)


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


BOARDS = {
    "synthetic": "SYNTHETIC_BOARD",
    "cyton": "CYTON_BOARD",
    "cyton_daisy": "CYTON_DAISY_BOARD",
    "ganglion": "GANGLION_BOARD",
    "muse_2": "MUSE_2_BOARD",
    "muse_s": "MUSE_S_BOARD",
    "muse_2016": "MUSE_2016_BOARD",
}


def board_id(board):
    """A BrainFlow board id from a name in BOARDS, a BoardIds member name, or an int."""
    from ._optional import require_brainflow

    bf = require_brainflow()[0]
    if isinstance(board, int) or (isinstance(board, str) and board.lstrip("-").isdigit()):
        return int(board)
    name = BOARDS.get(str(board).lower(), str(board).upper())
    try:
        return int(getattr(bf.BoardIds, name).value)
    except AttributeError:
        raise ParameterError(
            f"board={board!r} is not a BrainFlow board; use one of {sorted(BOARDS)} or a BoardIds name/number"
        ) from None


def read_brainflow_file(path, board):
    """EEG channels of a file in BrainFlow's layout, for ``board``."""
    from ._optional import require_brainflow

    bf = require_brainflow()[0]
    bid = board_id(board)
    path = Path(path)
    if not path.is_file():
        raise ParameterError(f"cannot read BrainFlow file {str(path)!r}: no such file")
    delim = "\t"
    try:
        table = np.loadtxt(path, delimiter=delim, ndmin=2)
    except ValueError as exc:
        raise ParameterError(f"{str(path)!r} is not a BrainFlow data file (tab-separated numbers): {exc}") from exc
    from ._optional import brainflow_native

    with brainflow_native(f"reading BrainFlow file {str(path)!r}"):
        rows = bf.BoardShim.get_num_rows(bid)
    if table.shape[1] != rows:
        raise ParameterError(
            f"{str(path)!r} has {table.shape[1]} columns but board {board!r} writes {rows}; "
            "is it the right board?"
        )
    eeg = bf.BoardShim.get_eeg_channels(bid)
    try:
        names = tuple(bf.BoardShim.get_eeg_names(bid))
    except Exception:  # some boards have no names in BrainFlow's descriptor
        names = tuple(f"ch{i}" for i in eeg)
    return EEGRecording(
        data=np.ascontiguousarray(table[:, eeg].T),
        channel_names=names,
        sample_rate_hz=float(bf.BoardShim.get_sampling_rate(bid)),
    )


@contextlib.contextmanager
def atomic_output(path, mode="w", *, fsync=False):
    """Open ``path`` for writing so that it appears whole or not at all.

    Writes go to a hidden temporary file in the same folder (``.NAME.XXXX.tmp``), which replaces ``path`` when
    the block ends without an exception (``os.replace``) and is deleted otherwise; an existing file survives a
    failure. ``fsync`` also flushes the data to the disk before the rename.
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
            yield fh
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_features(path, array, *, header=None):
    """Write a 2-D feature array to ``.npy`` or ``.csv`` atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".csv"):
        raise ParameterError(f"output {str(path)!r} must end in .npy or .csv")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ParameterError(f"output folder {str(parent)!r} does not exist; create it first")
    with atomic_output(path, "wb") as fh:
        if suffix == ".npy":
            np.save(fh, array)
        else:
            np.savetxt(fh, np.atleast_2d(array), delimiter=",", header=",".join(header or []), comments="",
                       fmt="%.9g")
