"""EEG sources on BrainFlow's real synthetic and playback boards and on real recordings.

Only one fault is simulated: a board whose data fetch returns nothing (the
silent stop of a Muse headset), which a synthetic board cannot be made to do
on its own. Everything else runs BrainFlow's own boards.
"""

import gc
import time

import numpy as np
import pytest

pytest.importorskip("brainflow")

from affectedge import io  # noqa: E402
from affectedge.errors import ParameterError, SensorError  # noqa: E402
from affectedge.sensors import BoardSource, Clock, EEGBlock, EEGRecordingSource, EndOfStream, open_eeg  # noqa: E402
from affectedge.sensors import _eeg  # noqa: E402

SYNTH_NAMES = ("Fz", "C3", "Cz", "C4", "Pz", "PO7", "Oz", "PO8", "F5", "F7", "F3", "F1", "F2", "F4", "F6", "F8")
MUSE_NAMES = ("TP9", "AF7", "AF8", "TP10")


@pytest.fixture(scope="module")
def muse2_file(shared_data):
    path = shared_data / "eeg" / "muse_mentalstate" / "brainflow_muse2" / "subjecta-relaxed-1.muse2.csv"
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    return path


@pytest.fixture(scope="module")
def cyton_file(shared_data):
    path = shared_data / "eeg" / "brainflow_playback" / "cyton_daisy_10s.csv"
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    return path


@pytest.fixture(scope="module")
def muse_csv(shared_data):
    folder = shared_data / "eeg" / "muse_mentalstate"
    files = sorted(folder.glob("subject*.csv"), key=lambda p: p.stat().st_size)
    if not files:
        pytest.skip(f"no muse-lsl recordings in {folder}")
    return files[0]  # the smallest, to keep the test fast


def _blocks(src, n, timeout_s=0.5, limit_s=10.0):
    out, end = [], time.monotonic() + limit_s
    while len(out) < n:
        assert time.monotonic() < end, f"{src} delivered {len(out)} of {n} blocks in {limit_s} s"
        pkt = src.read(timeout_s)
        if pkt is not None:
            out.append(pkt)
    return out


def _until_end(src, timeout_s=0.5, limit_s=30.0):
    out, end = [], time.monotonic() + limit_s
    while True:
        assert time.monotonic() < end, f"{src} did not end within {limit_s} s"
        try:
            pkt = src.read(timeout_s)
        except EndOfStream:
            return out
        if pkt is not None:
            out.append(pkt)


def _contiguous(blocks):
    for a, b in zip(blocks, blocks[1:]):
        assert b.t_start_s == pytest.approx(a.t_end_s, abs=1e-9), (a.seq, b.seq)
        assert b.seq == a.seq + 1


# --------------------------------------------------------------------------- synthetic board
def test_synthetic_board_blocks():
    clock = Clock()
    with BoardSource("synthetic", clock=clock, block_ms=100) as src:
        assert src.sample_rate_hz == 250.0
        assert src.channel_names == SYNTH_NAMES
        assert src.modality == "eeg" and "synthetic" in src.name
        t_open = clock.now_s()
        blocks = _blocks(src, 8)
        now = clock.now_s()
    for b in blocks:
        assert isinstance(b, EEGBlock)
        assert b.data.shape == (16, 25) and b.data.dtype == np.float64 and b.data.flags.c_contiguous
        assert b.sample_rate_hz == 250.0 and b.channel_names == SYNTH_NAMES
        assert b.gap_before_s == 0.0
        assert np.isfinite(b.data).all() and np.ptp(b.data) > 0
    assert [b.seq for b in blocks] == list(range(8))
    _contiguous(blocks)
    # anchored on the clock: the first sample was acquired around the open, the last block before now
    assert t_open - 0.3 <= blocks[0].t_start_s <= t_open + 0.3
    assert blocks[-1].t_end_s <= now + 0.05
    assert src.stats.delivered == 8 and src.stats.samples == 8 * 25


def test_board_names_and_ids():
    import brainflow

    assert BoardSource("SYNTHETIC").board_id == -1
    assert BoardSource("synthetic_board").board_id == -1
    assert BoardSource(-1).board_id == -1
    assert BoardSource(brainflow.BoardIds.SYNTHETIC_BOARD).board_id == -1
    cd = BoardSource("cyton_daisy", params={"serial_port": "/dev/ttyUSB0"})  # described, not opened
    assert cd.board_id == brainflow.BoardIds.CYTON_DAISY_BOARD.value
    assert cd.sample_rate_hz == 125.0 and len(cd.channel_names) == 16 and cd.channel_names[0] == "Fp1"
    muse = BoardSource("muse2")
    assert muse.board_id == brainflow.BoardIds.MUSE_2_BOARD.value and muse.channel_names == MUSE_NAMES
    assert muse.sample_rate_hz == 256.0


def test_unknown_board_and_bad_arguments():
    with pytest.raises(ParameterError, match=r"'musee_2' is not a BrainFlow board.*muse_2"):
        BoardSource("musee_2")
    with pytest.raises(ParameterError, match="not a BrainFlow board id"):
        BoardSource(12345)
    with pytest.raises(ParameterError, match=r"'serial_prot'.*serial_port"):
        BoardSource("cyton", params={"serial_prot": "/dev/ttyUSB0"})
    with pytest.raises(ParameterError, match="timeout"):
        BoardSource("muse_2", params={"timeout": "soon"})
    with pytest.raises(ParameterError, match="master_board"):
        BoardSource("playback", params={"file": "x.csv"})
    with pytest.raises(ParameterError, match="does not exist"):
        BoardSource("playback", params={"file": "/no/such/file.csv", "master_board": "muse_2"})
    with pytest.raises(ParameterError, match="block_ms"):
        BoardSource("synthetic", block_ms=0)
    with pytest.raises(ParameterError, match="log_level"):
        BoardSource("synthetic", log_level="loud")


def test_failed_prepare_is_a_sensor_error():
    # a Cyton on a port that does not exist: BrainFlow's real error, with the port named
    src = BoardSource("cyton", params={"serial_port": "/dev/affectedge-no-such-port"})
    with pytest.raises(SensorError, match=r"UNABLE_TO_OPEN_PORT_ERROR.*serial_port"):
        src.open()
    src.close()


# --------------------------------------------------------------------------- close / sessions
def test_brainflow_library_that_cannot_load_is_a_sensor_error(tmp_path, monkeypatch, cyton_file):
    """On ARM Linux BrainFlow's PyPI wheel holds x86-64 libraries only: the loader fails (make arm64-check).
    Here the loader really fails on a library file that is not one of this machine's; the error says why and
    what to do, for a board and for a BrainFlow file, instead of a ctypes traceback."""
    import brainflow.board_shim as board_shim

    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "libBoardController.so").write_bytes(b"\x7fELF" + b"\0" * 60)  # not loadable here
    monkeypatch.setattr(board_shim, "files", lambda _name: tmp_path)
    monkeypatch.setattr(board_shim.BoardControllerDLL, "_BoardControllerDLL__instance", None)
    with pytest.raises(SensorError, match=r"board='synthetic'.*native library cannot load.*x86-64 only.*--eeg FILE"):
        BoardSource("synthetic")
    with pytest.raises(SensorError, match=r"reading BrainFlow file.*build BrainFlow's core from source"):
        io.read_brainflow_file(cyton_file, "cyton_daisy")


def test_close_releases_session_and_is_idempotent():
    first = BoardSource("synthetic")
    first.open()
    # BrainFlow allows one session per (board, params): a second source fails while the first is open ...
    second = BoardSource("synthetic")
    with pytest.raises(SensorError, match="ANOTHER_BOARD_IS_CREATED_ERROR"):
        second.open()
    del second
    gc.collect()
    # ... and its failure (and garbage collection) must not have released the first one's session
    assert len(_blocks(first, 2, timeout_s=0.3, limit_s=1.0)) == 2
    assert first.stats.reconnects == 0 and first.stats.gaps == []
    first.close()
    first.close()  # idempotent
    with pytest.raises(SensorError, match="closed"):
        first.read(0.1)
    third = BoardSource("synthetic")
    with third:
        del first
        gc.collect()  # collecting the closed source must not release the new session either
        assert len(_blocks(third, 2, timeout_s=0.3, limit_s=1.0)) == 2
        assert third.stats.reconnects == 0 and third.stats.gaps == []
    third.close()


# --------------------------------------------------------------------------- watchdog and reconnect
def test_watchdog_marks_gap_and_reconnects_after_board_stops():
    clock = Clock()
    timeout_s = 0.1
    with BoardSource("synthetic", clock=clock, watchdog_s=0.5, backoff_s=(0.2,)) as src:
        before = _blocks(src, 3)
        src.board.stop_stream()  # the board stops delivering, as a Muse headset does
        t_stop = clock.now_s()
        got, longest, nones = [], 0.0, 0
        end = time.monotonic() + 8.0
        while not got or got[-1].gap_before_s == 0.0:
            assert time.monotonic() < end, "the watchdog did not reconnect"
            t0 = time.monotonic()
            pkt = src.read(timeout_s)
            longest = max(longest, time.monotonic() - t0)
            if pkt is None:
                nones += 1
            else:
                got.append(pkt)
        after = _blocks(src, 3)
    resumed = got[-1]
    assert longest < timeout_s + 0.15, f"read() blocked {longest:.3f} s with timeout_s={timeout_s}"
    assert nones >= 3  # read() kept returning None during the outage
    assert src.stats.reconnects == 1
    assert len(src.stats.gaps) == 1
    gap_start, gap_end = src.stats.gaps[0]
    delivered = before + got[:-1]
    _contiguous(delivered)  # the samples fetched before the stall came as a (short) block
    assert gap_start == pytest.approx(delivered[-1].t_end_s)
    assert resumed.gap_before_s == pytest.approx(gap_end - gap_start) and resumed.gap_before_s >= 0.5
    assert resumed.t_start_s == pytest.approx(gap_end) and resumed.t_start_s > t_stop + 0.5
    _contiguous([resumed] + after)
    assert all(b.channel_names == SYNTH_NAMES for b in after)


def test_close_during_reconnect_releases_quickly():
    src = BoardSource("synthetic", watchdog_s=0.3, backoff_s=(5.0,))
    src.open()
    _blocks(src, 1)
    src.board.stop_stream()
    end = time.monotonic() + 3.0
    while not src._reconnecting.is_set():
        assert time.monotonic() < end
        src.read(0.05)
    t0 = time.monotonic()
    assert src.read(0.05) is None
    src.close()
    assert time.monotonic() - t0 < 1.0
    assert len(src.stats.gaps) == 1  # the open outage is recorded at close
    with BoardSource("synthetic") as again:  # the session was released
        assert len(_blocks(again, 1)) == 1


def test_silent_board_gives_up_after_max_reconnects(monkeypatch):
    # the one fault a real board cannot be told to make: sessions prepare fine but never deliver
    shim = _eeg._shim_class()
    monkeypatch.setattr(shim, "get_board_data", lambda self, num_samples=None, preset=0: np.empty((32, 0)))
    src = BoardSource("synthetic", watchdog_s=0.25, backoff_s=(0.05,), max_reconnects=2)
    t0 = time.monotonic()
    with src, pytest.raises(SensorError, match=r"stopped delivering samples.*2 reconnect attempt"):
        while time.monotonic() - t0 < 10.0:
            assert src.read(0.1) is None
    assert src.stats.reconnects == 2
    assert len(src.stats.gaps) == 1
    assert src.board is None  # closed: session released


def test_no_reconnect_raises_at_first_stall():
    with BoardSource("synthetic", watchdog_s=0.3, reconnect=False) as src:
        _blocks(src, 2)
        src.board.stop_stream()
        with pytest.raises(SensorError, match="reconnect=False"):
            _until_end(src, timeout_s=0.1, limit_s=5.0)
        assert src.stats.reconnects == 0


# --------------------------------------------------------------------------- playback
def test_playback_muse2_reproduces_file_and_ends(muse2_file, tmp_path):
    # the full file lasts 59 s in real time: replay its first 2.3 s, cut from the real file
    lines = muse2_file.read_text().splitlines(keepends=True)[:590]
    short = tmp_path / "subjecta-relaxed-1-head.muse2.csv"
    short.write_text("".join(lines))
    expected = io.read_brainflow_file(muse2_file, "muse_2").data[:, :590]
    src = open_eeg(f"playback:{short}")
    assert src.is_playback and src.master_board_id == _eeg._resolve_board("muse_2")
    assert src.channel_names == MUSE_NAMES and src.sample_rate_hz == 256.0
    t0 = time.monotonic()
    with src:
        blocks = _until_end(src, timeout_s=0.2, limit_s=15.0)
        with pytest.raises(EndOfStream):  # stays ended
            src.read(0.05)
    took = time.monotonic() - t0
    data = np.concatenate([b.data for b in blocks], axis=1)
    np.testing.assert_array_equal(data, expected)
    assert all(b.channel_names == MUSE_NAMES and b.sample_rate_hz == 256.0 for b in blocks)
    _contiguous(blocks)
    assert 590 / 256 - 0.3 < took < 590 / 256 + 1.5  # real time, ended without waiting for the watchdog
    assert src.stats.reconnects == 0 and src.stats.gaps == []


def test_playback_muse2_file_directly(muse2_file):
    ref = io.read_brainflow_file(muse2_file, "muse_2")
    with BoardSource("playback", params={"file": str(muse2_file), "master_board": "MUSE_2_BOARD"}) as src:
        blocks = _blocks(src, 5)
    data = np.concatenate([b.data for b in blocks], axis=1)
    np.testing.assert_array_equal(data, ref.data[:, : data.shape[1]])
    assert blocks[0].channel_names == MUSE_NAMES


def test_playback_cyton_daisy_whole_file(cyton_file):
    ref = io.read_brainflow_file(cyton_file, "cyton_daisy")
    src = open_eeg(f"playback:{cyton_file}")  # master board from the name cyton_daisy_10s.csv
    assert src.sample_rate_hz == 125.0 and src.channel_names == ref.channel_names
    with src:
        blocks = _until_end(src, timeout_s=0.5, limit_s=20.0)
    data = np.concatenate([b.data for b in blocks], axis=1)
    np.testing.assert_array_equal(data, ref.data)
    assert data.shape == (16, 1250)
    _contiguous(blocks)


def test_playback_wrong_master_board(cyton_file):
    with pytest.raises(ParameterError, match=r"columns.*master_board"):
        open_eeg(f"playback:{cyton_file}:master_board=muse_2")


# --------------------------------------------------------------------------- recordings
def test_recording_source_reproduces_csv(muse_csv):
    ref = io.read_eeg_csv(muse_csv)
    src = open_eeg(str(muse_csv), block_ms=100)
    assert isinstance(src, EEGRecordingSource)
    assert src.channel_names == MUSE_NAMES == ref.channel_names and src.sample_rate_hz == 256.0
    with src:
        blocks = _until_end(src, timeout_s=0.1, limit_s=10.0)
        with pytest.raises(EndOfStream):
            src.read()
    data = np.concatenate([b.data for b in blocks], axis=1)
    np.testing.assert_array_equal(data, ref.data)
    assert blocks[0].t_start_s == 0.0 and all(b.data.shape[1] == 26 for b in blocks[:-1])
    assert blocks[-1].t_end_s == pytest.approx(ref.data.shape[1] / 256.0)
    _contiguous(blocks)
    assert src.stats.samples == ref.data.shape[1]


def test_recording_source_realtime_paces_to_clock(muse_csv):
    clock = Clock()
    with EEGRecordingSource(muse_csv, clock=clock, block_ms=100, realtime=True) as src:
        got, longest = [], 0.0
        while len(got) < 4:
            t0 = time.monotonic()
            pkt = src.read(0.03)
            longest = max(longest, time.monotonic() - t0)
            if pkt is not None:
                got.append(pkt)
                assert clock.now_s() >= pkt.t_end_s - 1e-3  # delivered once its last sample is due
    assert longest < 0.03 + 0.15
    assert clock.now_s() >= 4 * 26 / 256.0 - 1e-3
    _contiguous(got)


def test_recording_source_brainflow_file_and_channels(cyton_file):
    ref = io.read_brainflow_file(cyton_file, "cyton_daisy")
    with EEGRecordingSource(cyton_file, board="cyton_daisy", channels=["O1", "O2"], block_ms=200) as src:
        blocks = list(src)
    data = np.concatenate([b.data for b in blocks], axis=1)
    idx = [ref.channel_names.index("O1"), ref.channel_names.index("O2")]
    np.testing.assert_array_equal(data, ref.data[idx])
    assert blocks[0].channel_names == ("O1", "O2") and blocks[0].data.shape == (2, 25)
    # a header-less BrainFlow file named after its board opens as a recording of that board
    auto = open_eeg(str(cyton_file))
    assert auto.channel_names == ref.channel_names


def test_recording_passes_nan_through(tmp_path):
    path = tmp_path / "gappy.csv"
    path.write_text("timestamps,TP9,AF7\n0.0,1.5,2.5\n0.004,,3.0\n0.008,nan,4.0\n0.012,2.0,5.0\n")
    with EEGRecordingSource(path, sample_rate_hz=250) as src:
        block = src.read()
    assert np.isnan(block.data[0, 1]) and np.isnan(block.data[0, 2])
    np.testing.assert_array_equal(block.data[1], [2.5, 3.0, 4.0, 5.0])


# --------------------------------------------------------------------------- open_eeg specs
def test_open_eeg_good_specs(muse2_file):
    import brainflow

    ids = brainflow.BoardIds
    src = open_eeg("synthetic", block_ms=50)
    assert isinstance(src, BoardSource) and src.board_id == ids.SYNTHETIC_BOARD.value and src._block_n == 12
    cyton = open_eeg("cyton:serial_port=/dev/ttyUSB0")
    assert cyton.board_id == ids.CYTON_BOARD.value and cyton.params == {"serial_port": "/dev/ttyUSB0"}
    muse = open_eeg("Muse_2:mac_address=00:55:DA:B0:12:34,timeout=15", watchdog_s=5, realtime=True)
    assert muse.board_id == ids.MUSE_2_BOARD.value
    assert muse.params == {"mac_address": "00:55:DA:B0:12:34", "timeout": 15} and muse.watchdog_s == 5
    pb = open_eeg(f"playback:{muse2_file}")
    assert pb.is_playback and pb.master_board_id == ids.MUSE_2_BOARD.value
    pb2 = open_eeg(f"playback:{muse2_file}:master_board=muse_2")
    assert pb2.master_board_id == ids.MUSE_2_BOARD.value and pb2.params["file"] == str(muse2_file)
    assert open_eeg("-1").board_id == ids.SYNTHETIC_BOARD.value
    other = open_eeg("cyton:other_info=notes.csv")  # a board spec, though it ends in .csv
    assert isinstance(other, BoardSource) and other.params == {"other_info": "notes.csv"}


@pytest.mark.parametrize("spec, match", [
    ("", "empty"),
    ("nonsense_board", r"'nonsense_board' is not a BrainFlow board"),
    ("cyton:serial_port", r"'serial_port' is not key=value"),
    ("cyton:bogus=1", r"'bogus' is not a BrainFlow connection parameter"),
    ("playback:", "names no file"),
    ("playback:/no/such/recording.muse2.csv", "does not exist"),
    ("/no/such/recording.csv", "no such file"),
])
def test_open_eeg_bad_specs(spec, match):
    with pytest.raises(ParameterError, match=match) as info:
        open_eeg(spec)
    text = str(info.value)
    assert repr(spec) in text and "accepted forms" in text.lower() and "playback:FILE" in text


def test_open_eeg_undetectable_master_and_wrong_kwargs(shared_data, muse_csv):
    deap = shared_data / "eeg" / "deap_raw_trial" / "deap_trial_128hz.csv"
    with pytest.raises(ParameterError, match=r"cannot tell which board.*master_board="):
        open_eeg(f"playback:{deap}")
    with pytest.raises(ParameterError, match=r"does not take \['watchdog_s'\]"):
        open_eeg(str(muse_csv), watchdog_s=1.0)
    with pytest.raises(ParameterError, match=r"does not take \['channels'\]"):
        open_eeg("synthetic", channels=["Fz"])
