"""affectedge batch: per-file JSONL, Parquet, summary, resume, speaker calibration, bad files; in-process.

The Ray tests (a real two-node cluster on loopback, a killed worker, a killed
driver) are in test_batch_ray.py.
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from affectedge import batch
from affectedge.errors import MissingExtraError, ParameterError

pq = pytest.importorskip("pyarrow.parquet")

SPEAKERS = ("03", "10")


def make_archive(shared, root, *, n_speech=7, n_faces=3):
    """A small archive of real recordings (copied from ../shared/data) plus junk and bad files."""
    (root / "speech").mkdir(parents=True)
    (root / "face").mkdir()
    (root / "eeg").mkdir()
    wavs = sorted((shared / "speech" / "emodb" / "wav").glob("*.wav"))
    for spk in SPEAKERS:
        for p in [w for w in wavs if w.name.startswith(spk)][:n_speech]:
            shutil.copy(p, root / "speech" / p.name)
    for p in sorted((shared / "face" / "ckplus48" / "happy").glob("*.png"))[:n_faces]:
        shutil.copy(p, root / "face" / p.name)
    import cv2

    cv2.imwrite(str(root / "face" / "grey.png"), np.full((64, 64), 128, np.uint8))  # junk: no face
    (root / "face" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")  # bad file
    lines = (shared / "eeg" / "muse_mentalstate" / "subjecta-relaxed-1.csv").read_text().splitlines()
    (root / "eeg" / "a-relaxed.csv").write_text("\n".join(lines[:256 * 25]) + "\n")  # ~25 s
    flat = ["timestamps,TP9,AF7,AF8,TP10"] + [f"{i / 256:.6f},0,0,0,0" for i in range(256 * 8)]
    (root / "eeg" / "flat.csv").write_text("\n".join(flat) + "\n")  # junk: flat channels
    (root / "speech" / "broken.wav").write_bytes(b"RIFF....garbage")  # bad file
    shutil.copy(shared / "speech" / "emodb" / "labels.csv", root / "labels.csv")  # not an input
    return root


@pytest.fixture(scope="module")
def archive(shared_data, tmp_path_factory):
    return make_archive(shared_data, tmp_path_factory.mktemp("archive"))


@pytest.fixture(scope="module")
def reference(archive, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref")
    s = batch.run_batch(archive, batch.BatchOptions(out=str(out), ray="none", progress=False))
    return out, s


def read_jsonl(path):
    with open(path) as fh:
        return [json.loads(line) for line in fh]


def outputs(out):
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted((out / "files").rglob("*.jsonl"))}


def test_inputs_are_found_with_modality_and_speaker(archive):
    root, items, skipped = batch.discover(archive)
    by = {it.rel: it for it in items}
    assert {it.modality for it in items} == {"speech", "face", "eeg"}
    assert by["speech/03a01Fa.wav"].speaker == "03" and by["speech/03a01Fa.wav"].speaker_from == "corpus"
    assert by["speech/broken.wav"].speaker == "speech" and by["speech/broken.wav"].speaker_from == "folder"
    assert by["face/grey.png"].kind == "image" and by["eeg/flat.csv"].kind == "eeg"
    assert dict(skipped) == {"labels.csv": "a table whose header names no EEG electrode (a label or metadata file)"}
    _, only, skipped2 = batch.discover(archive, ("face",))
    assert {it.modality for it in only} == {"face"}
    assert dict(skipped2)["speech/03a01Fa.wav"].startswith("speech not selected")


def test_job_writes_jsonl_parquet_and_summary(archive, reference):
    out, s = reference
    _, items, _ = batch.discover(archive)
    assert s["files"] == len(items) and s["done"] == len(items) - 2 and s["resumed"] == 0
    # bad files are listed with their path and reason, and the job went on
    assert set(s["failed"]) == {"speech/broken.wav", "face/corrupt.png"}
    assert "broken.wav" in s["failed"]["speech/broken.wav"] and "ParameterError" in s["failed"]["speech/broken.wav"]
    assert "not an image" in s["failed"]["face/corrupt.png"]
    assert s["skipped"] == {"labels.csv": "a table whose header names no EEG electrode (a label or metadata file)"}
    assert json.loads((out / "summary.json").read_text()) == s
    assert s["throughput"]["files_per_s"] > 0 and s["throughput"]["media_s"]["speech"] > 20
    n_results = 0
    for it in items:
        p = out / "files" / (it.rel + ".jsonl")
        if it.rel in s["failed"]:
            assert not p.exists()
            continue
        recs = read_jsonl(p)
        head, tail = recs[0], recs[-1]
        assert head["type"] == "session" and head["input"] == it.rel and head["modality"] == it.modality
        assert len(head["key"]) == 64 and all(len(v) == 64 for v in head["models"].values())
        assert tail["type"] == "summary" and tail["stopped_by"] == "end"
        res = [r for r in recs if r["type"] == "result"]
        assert res and all(r["schema"] == "affectedge.results" and r["modality"] == it.modality for r in res)
        n_results += len(res)
    assert s["rows"] == n_results
    t = pq.read_table(out / "results.parquet").to_pylist()
    assert len(t) == n_results and t[0]["file"] == "eeg/a-relaxed.csv"
    assert {r["modality"] for r in t} == {"speech", "face", "eeg"}
    ok = [r for r in t if r["status"] == "ok"]
    assert ok and all(abs(sum(r["probs"]) - 1) < 1e-3 and len(r["labels"]) == len(r["probs"]) for r in ok)
    assert all(r["speaker"] in SPEAKERS for r in t if r["modality"] == "speech")


def test_junk_gets_a_status_never_an_answer(reference):
    out, _ = reference
    grey = [r for r in read_jsonl(out / "files" / "face" / "grey.png.jsonl") if r["type"] == "result"]
    assert [r["status"] for r in grey] == ["no_face"] and grey[0]["probs"] is None and grey[0]["label"] is None
    flat = [r for r in read_jsonl(out / "files" / "eeg" / "flat.csv.jsonl") if r["type"] == "result"]
    assert flat and all(r["status"] == "flat_channels" and r["probs"] is None for r in flat)
    faces = [r for r in read_jsonl(out / "files" / "face" / (sorted(os.listdir(out / "files" / "face"))[0]))
             if r["type"] == "result"]
    assert faces[0]["status"] == "ok"


def test_speaker_calibration_equals_calibrate_over_the_speakers_files(archive, reference):
    """Pass one merges per-file statistics; the result equals one calibration over all the speaker's files."""
    from affectedge import runtime
    from affectedge.runtime import _cli

    out, s = reference
    assert all("calibrated on" in s["speakers"][spk] for spk in SPEAKERS)
    assert "no speech found" in s["speakers"]["speech"]  # broken.wav's folder speaker
    files = sorted(str(p) for p in (archive / "speech").glob("03*.wav"))
    ref = out / "cal-03-direct.json"

    class A:
        audio, duration, out, json = files, 0, str(ref), False

    _cli._calibrate(A)
    direct = runtime.load_calibration(ref)
    merged = runtime.load_calibration(out / "calibration" / "03.json")
    assert merged.count == direct.count
    np.testing.assert_allclose(merged.mean_std()[0], direct.mean_std()[0], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(merged.mean_std()[1], direct.mean_std()[1], rtol=1e-7, atol=1e-9)
    res = [r for r in read_jsonl(out / "files" / "speech" / "03a01Fa.wav.jsonl") if r["type"] == "result"]
    assert res and all(r["calibrated"] for r in res if r["status"] == "ok")


def test_results_equal_the_live_runtime_on_the_same_file(archive, tmp_path):
    """Batch runs the runtime's own source and task: its records are the runtime's (latency aside)."""
    from affectedge import runtime, sensors

    out = tmp_path / "b"
    batch.run_batch(archive, batch.BatchOptions(out=str(out), ray="none", calibration="none", progress=False,
                                                modalities=("speech", "eeg")))
    for rel, lane in (("speech/10a01Wa.wav", "audio"), ("eeg/a-relaxed.csv", "eeg")):
        src = (sensors.AudioFileSource(archive / rel, target_rate_hz=16000) if lane == "audio"
               else sensors.EEGRecordingSource(archive / rel))
        task = (runtime.SpeechTask(runtime.SpeechOptions(online_calibration=False)) if lane == "audio"
                else runtime.EEGTask())
        live = tmp_path / "live.jsonl"
        runtime.Runtime(**{lane: (src, task)}, jsonl=str(live), status_every_s=1e9).run()
        strip = lambda recs: [{k: v for k, v in r.items() if k != "latency_ms"} for r in recs  # noqa: E731
                              if r["type"] in ("result", "event")]
        got = strip(read_jsonl(out / "files" / (rel + ".jsonl")))
        assert got and got == strip(read_jsonl(live))


def test_rerun_resumes_and_changes_invalidate(archive, tmp_path):
    work = tmp_path / "archive"
    shutil.copytree(archive, work)
    out = tmp_path / "out"
    opts = dict(out=str(out), ray="none", progress=False, calibration="none")
    first = batch.run_batch(work, batch.BatchOptions(**opts))
    before = outputs(out)
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "files").rglob("*.jsonl")}
    again = batch.run_batch(work, batch.BatchOptions(**opts))
    assert again["done"] == 0 and again["resumed"] == first["done"] and set(again["failed"]) == set(first["failed"])
    assert outputs(out) == before and all(p.stat().st_mtime_ns == m for p, m in mtimes.items())
    # a changed input is recomputed, nothing else
    os.utime(work / "face" / "grey.png", ns=(1, 1))
    third = batch.run_batch(work, batch.BatchOptions(**opts))
    assert third["done"] == 1 and third["resumed"] == first["done"] - 1
    # changed options invalidate the files they touch: the speech calibration only the speech files
    fourth = batch.run_batch(work, batch.BatchOptions(**{**opts, "calibration": "online"}))
    n_speech = sum(1 for k in before if k.startswith("files/speech/"))
    assert fourth["done"] == n_speech and fourth["resumed"] == first["done"] - n_speech
    # a damaged output (as if written by something else) is recomputed, never trusted
    victim = out / "files" / "eeg" / "a-relaxed.csv.jsonl"
    victim.write_text('{"type": "session", "key": "x"}\n')
    fifth = batch.run_batch(work, batch.BatchOptions(**{**opts, "calibration": "online"}))
    assert fifth["done"] == 1 and read_jsonl(victim)[-1]["type"] == "summary"
    # the speaker pass's per-file statistics are reused by a rerun
    batch.run_batch(work, batch.BatchOptions(**{**opts, "calibration": "speaker", "modalities": ("speech",)}))
    stats = sorted((out / ".state" / "calibration").rglob("*.json"))
    assert len(stats) == n_speech
    m0 = [p.stat().st_mtime_ns for p in stats]
    s = batch.run_batch(work, batch.BatchOptions(**{**opts, "calibration": "speaker", "modalities": ("speech",)}))
    assert s["done"] == 0 and [p.stat().st_mtime_ns for p in stats] == m0


def test_no_partial_file_is_left(archive, tmp_path, monkeypatch):
    """A write that fails midway leaves the earlier output (or none), never a partial file."""
    from affectedge.batch import _job

    out = tmp_path / "out"
    target = out / "files" / "x.jsonl"
    _job.atomic_write(target, "old\n")
    real = os.replace

    def boom(a, b):
        raise OSError("disk full")

    monkeypatch.setattr(_job.os, "replace", boom)
    with pytest.raises(OSError):
        _job.atomic_write(target, "new\n")
    monkeypatch.setattr(_job.os, "replace", real)
    assert target.read_text() == "old\n" and [p.name for p in target.parent.iterdir()] == ["x.jsonl"]


def test_manifest_speakers_missing_files_and_calibration_file(archive, tmp_path):
    m = tmp_path / "list.csv"
    rows = ["path,speaker"] + [f"{archive}/speech/{p.name},spk-{p.name[:2]}"
                               for p in sorted((archive / "speech").glob("0*.wav"))]
    rows.append("speech/gone.wav,spk-x")  # relative to the manifest; missing: failed, the job goes on
    m.write_text("\n".join(rows) + "\n")
    root, items, _ = batch.discover(m)
    assert all(it.speaker_from == "manifest" for it in items) and items[0].speaker == "spk-03"
    cal = tmp_path / "me.json"
    from affectedge.runtime import _cli

    class A:
        audio, duration, out, json = [str(archive / "speech" / "10a01Wa.wav")], 0, str(cal), False

    _cli._calibrate(A)
    s = batch.run_batch(m, batch.BatchOptions(out=str(tmp_path / "o"), ray="none", progress=False,
                                              calibration=str(cal)))
    gone = [k for k in s["failed"] if k.endswith("gone.wav")]
    assert len(gone) == 1 and "does not exist" in s["failed"][gone[0]]
    assert s["done"] == len(items) - 1
    head = read_jsonl(tmp_path / "o" / "files" / (items[0].rel + ".jsonl"))
    assert head[0]["speaker"] == "spk-03" and head[0]["calibration_note"] == "calibration file me.json"
    assert all(r["calibrated"] for r in head if r["type"] == "result" and r["status"] == "ok")


def test_bad_options_and_inputs_are_clear(archive, tmp_path, monkeypatch):
    with pytest.raises(ParameterError, match="needs Ray"):
        batch.BatchOptions(out=str(tmp_path), ray="none", workers=2)
    with pytest.raises(ParameterError, match="modalities"):
        batch.BatchOptions(out=str(tmp_path), modalities="speech,smell")
    with pytest.raises(ParameterError, match="calibration 'sometimes'"):
        batch.BatchOptions(out=str(tmp_path), calibration="sometimes")
    with pytest.raises(ParameterError, match="neither a folder nor a .csv manifest"):
        batch.run_batch(tmp_path / "nope", batch.BatchOptions(out=str(tmp_path / "o")))
    bad = tmp_path / "bad.csv"
    bad.write_text("file_name,label\nx.wav,anger\n")
    with pytest.raises(ParameterError, match="no 'path'"):
        batch.discover(bad)
    # Ray missing: the error names the extra and the in-process way (a fault that cannot be caused otherwise)
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MissingExtraError, match=r"affectedge\[batch\].*--ray none --workers 1"):
        batch.run_batch(archive, batch.BatchOptions(out=str(tmp_path / "o2"), ray="local", progress=False))


def test_cli_batch(archive, tmp_path):
    out = tmp_path / "cli"
    r = subprocess.run([sys.executable, "-m", "affectedge", "batch", str(archive), "--out", str(out), "--ray", "none",
                        "--modalities", "face", "--quiet"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stderr  # a failed file (corrupt.png) makes the exit status 1
    assert "failed: face/corrupt.png" in r.stdout and "done" in r.stdout
    s = json.loads((out / "summary.json").read_text())
    assert s["modalities"] == ["face"] and s["done"] == 4


def test_video_file_runs_in_video_mode(shared_data, tmp_path):
    """A video in the archive goes through the runtime's video source and FaceTask (VIDEO mode, tracking)."""
    import cv2

    root = tmp_path / "videos"
    root.mkdir()
    imgs = sorted((shared_data / "face" / "ckplus48" / "happy").glob("*.png"))[:2]
    w = cv2.VideoWriter(str(root / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (192, 192))
    for k in range(10):
        g = cv2.resize(cv2.imread(str(imgs[k // 5])), (192, 192), interpolation=cv2.INTER_CUBIC)
        w.write(g)
    w.release()
    s = batch.run_batch(root, batch.BatchOptions(out=str(tmp_path / "o"), ray="none", progress=False))
    assert s["done"] == 1 and not s["failed"]
    recs = read_jsonl(tmp_path / "o" / "files" / "clip.avi.jsonl")
    assert recs[0]["kind"] == "video"
    res = [r for r in recs if r["type"] == "result"]
    assert len(res) == 10 and [r["end_ms"] for r in res] == sorted(r["end_ms"] for r in res)
    assert res[-1]["end_ms"] == pytest.approx(1800.0, abs=1.0)
    assert sum(r["status"] == "ok" for r in res) >= 8 and "frame(s)" in res[-1]["detail"]


def test_clip_shorter_than_a_window_gets_a_status(tmp_path):
    import soundfile as sf

    root = tmp_path / "short"
    root.mkdir()
    t = np.arange(8000) / 16000  # 0.5 s: shorter than the 1 s first window
    sf.write(root / "tiny.wav", (0.2 * np.sin(2 * np.pi * 180 * t)).astype(np.float32), 16000)
    s = batch.run_batch(root, batch.BatchOptions(out=str(tmp_path / "o"), ray="none", progress=False,
                                                 calibration="none"))
    res = [r for r in read_jsonl(tmp_path / "o" / "files" / "tiny.wav.jsonl") if r["type"] == "result"]
    assert s["done"] == 1 and [r["status"] for r in res] == ["too_short"] and res[0]["probs"] is None
    assert "shorter than one" in res[0]["detail"]
