"""bench/calibration.py (online speaker calibration) on a tiny EmoDB subset: structure and finite figures."""

import importlib.util
import json
import math
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

BENCH = Path(__file__).resolve().parents[1] / "bench" / "calibration.py"


def _load():
    spec = importlib.util.spec_from_file_location("bench_calibration", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _numbers(obj, where="report"):
    if isinstance(obj, bool):
        return
    if isinstance(obj, (int, float)):
        yield where, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _numbers(v, f"{where}.{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _numbers(v, f"{where}[{i}]")


def test_online_calibration_quick(shared_data, tmp_path):
    emodb = shared_data / "speech" / "emodb"
    if not emodb.is_dir():
        pytest.skip("EmoDB is not present")
    bench = _load()
    rep = bench.run(emodb, tmp_path, speakers=["03", "08"], quick=True, seeds=2, progress=False,
                    command="pytest")

    assert rep["speakers"] == ["03", "08"] and rep["quick"] is True
    assert [f["speaker"] for f in rep["per_fold"]] == ["03", "08"]
    assert set(rep["online"]) == {"10", "30", "60"}
    for key in ("offline", "uncalibrated"):
        assert rep[key]["n"] == rep["n_clips"]
        assert 0.0 <= rep[key]["uar"] <= 1.0 and 0.0 <= rep[key]["war"] <= 1.0
    prev_clips = 0
    for b in ("10", "30", "60"):
        o = rep["online"][b]
        c, s = o["calibration_clips_per_speaker"], o["calibration_seconds_per_speaker"]
        assert c["n"] == 2 * 2  # 2 folds x 2 orders
        assert s["min"] >= float(b) and c["mean"] >= prev_clips  # budgets reached; nested prefixes
        prev_clips = c["mean"]
        for scored in ("all_clips", "unseen_clips"):
            assert o[scored]["uar"]["n"] == 2
            assert 0.0 <= o[scored]["uar"]["mean"] <= 1.0
            assert o[scored]["uar"]["sd"] >= 0.0
        assert o["all_clips"]["n_scored"] == rep["n_clips"]
        assert o["unseen_clips"]["n_scored"]["max"] < rep["n_clips"]
    # 2 fixed rows + (all, unseen) per budget, every figure present and finite
    assert len(rep["table"]) == 2 + 2 * 3
    for row in rep["table"]:
        assert row["uar"] is not None and math.isfinite(row["uar"])
        assert row["war"] is not None and math.isfinite(row["war"])
    for where, v in _numbers(rep):
        assert math.isfinite(v), where
    assert rep["wall_s"] > 0

    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["table"] == rep["table"]
    md = (tmp_path / "report.md").read_text()
    assert "`pytest`" in md and "online 60 s" in md and "offline" in md
