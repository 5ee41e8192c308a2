"""The live dashboard: token rules on a real server, the SSE stream, and a real browser fed by a real pipeline.

The browser test drives Debian's chromium (``make system-deps``) with
Playwright while a Runtime reads an EmoDB recording, CK+ pictures and
BrainFlow's synthetic board at real time; it saves a screenshot to
build/test-artifacts/dashboard.png.
"""

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("sse_starlette")
pytest.importorskip("plotly")
httpx = pytest.importorskip("httpx")

from affectedge.dashboard import Dashboard, is_loopback  # noqa: E402
from affectedge.errors import MissingExtraError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
WAV = DATA / "speech" / "emodb" / "wav" / "08b03Tc.wav"  # 9 s, EmoDB's longest
CKPLUS = DATA / "face" / "ckplus48"
CHROMIUM = "/usr/bin/chromium"
SHOT = ROOT / "build" / "test-artifacts" / "dashboard.png"


def _base(d):
    return f"http://127.0.0.1:{d.port}"


# -------------------------------------------------------------------- tokens
def test_loopback_without_token_is_open():
    with Dashboard(port=0) as d:
        assert d.token is None and d.url == _base(d) + "/"
        assert httpx.get(d.url).status_code == 200
        js = httpx.get(_base(d) + "/static/plotly.min.js")
        assert js.status_code == 200 and len(js.content) > 1_000_000  # plotly.js from the plotly package, no CDN
        with httpx.stream("GET", _base(d) + "/events", timeout=5) as s:
            assert s.status_code == 200 and s.headers["content-type"].startswith("text/event-stream")


@pytest.mark.parametrize("path", ["/", "/events", "/static/plotly.min.js"])
def test_token_is_checked_on_every_route_and_refusals_are_logged(path, caplog):
    secret = "s3cret-Token"
    with Dashboard(port=0, token=secret) as d:
        assert d.url.endswith("?token=" + secret)
        with caplog.at_level(logging.WARNING, logger="affectedge.dashboard"):
            assert httpx.get(_base(d) + path).status_code == 401
            assert httpx.get(_base(d) + path, params={"token": "guess-42"}).status_code == 401
            assert httpx.get(_base(d) + path, headers={"Authorization": "Bearer guess-42"}).status_code == 401
        refused = [r for r in caplog.records if r.name == "affectedge.dashboard"]
        assert len(refused) == 3 and all(path in r.getMessage() and "127.0.0.1" in r.getMessage() for r in refused)
        assert not any("guess-42" in r.getMessage() or secret in r.getMessage() for r in refused)  # never the token
        with httpx.stream("GET", _base(d) + path, params={"token": secret}, timeout=5) as s:
            assert s.status_code == 200
        with httpx.stream("GET", _base(d) + path, headers={"Authorization": f"Bearer {secret}"}, timeout=5) as s:
            assert s.status_code == 200


def test_non_loopback_without_token_generates_and_enforces_one(capsys):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("example.org")
    with Dashboard(host="0.0.0.0", port=0) as d:
        assert d.token_generated and len(d.token) >= 20
        assert d.token in capsys.readouterr().err  # printed at start
        assert httpx.get(_base(d) + "/").status_code == 401
        assert httpx.get(d.url).status_code == 200
    d.stop()  # idempotent


def test_missing_extra_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "sse_starlette", None)
    with pytest.raises(MissingExtraError, match=r"affectedge\[dashboard\]"):
        Dashboard()


# ------------------------------------------------------------- the stream
def test_stream_sends_a_snapshot_then_batches_and_history_is_bounded():
    with Dashboard(port=0, history_s=0.5) as d:
        d.on_record({"type": "session", "sources": {"eeg": "synthetic"}})
        d.on_record({"type": "result", "modality": "eeg", "end_ms": 0.0, "status": "ok"})
        time.sleep(0.6)  # older than history_s: pruned when the next record comes (the session record stays)
        d.on_record({"type": "result", "modality": "eeg", "end_ms": 600.0, "status": "ok"})
        events = []
        with httpx.stream("GET", _base(d) + "/events", timeout=5) as s:
            threading.Timer(0.3, d.on_record, ({"type": "summary", "duration_ms": 900.0},)).start()
            name = None
            for line in s.iter_lines():
                if line.startswith("event:"):
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("data:"):
                    events.append((name, json.loads(line.split(":", 1)[1])))
                    if len(events) == 2:
                        break
    (n0, snap), (n1, batch) = events
    assert n0 == "snapshot" and [r["type"] for r in snap["records"]] == ["session", "result"]
    assert snap["records"][1]["end_ms"] == 600.0
    assert n1 == "records" and [r["type"] for r in batch["records"]] == ["summary"]


def test_cli_run_serves_the_dashboard():
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    p = subprocess.run([sys.executable, "-m", "affectedge", "run", "--eeg", "synthetic", "--duration", "2", "--quiet",
                        "--dashboard", "--port", "0", "--host", "0.0.0.0"],
                       capture_output=True, text=True, timeout=180, env=env, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    assert "dashboard: http://127.0.0.1:" in p.stderr and "?token=" in p.stderr and "generated token" in p.stderr


# ----------------------------------------------------------- real browser
@pytest.fixture(scope="module")
def chromium():
    if not os.path.exists(CHROMIUM) and shutil.which("apt-get") and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
                       capture_output=True, timeout=900)  # what `make system-deps` installs
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is absent and could not be installed (make system-deps installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.mark.skipif(not (WAV.is_file() and CKPLUS.is_dir()), reason="EmoDB / CK+ not in ../shared/data")
def test_browser_shows_a_live_real_pipeline(chromium):
    from affectedge.runtime._cli import build_runtime

    args = argparse.Namespace(audio=str(WAV), face=str(CKPLUS / "happy"), eeg="synthetic", calibration=None,
                              no_online_calibration=False, duration=14.0, realtime=True, image_fps=2.0,
                              loop_images=True, status_every=1.0, profile=None)
    with Dashboard(port=0) as dash:
        page = chromium.new_page(viewport={"width": 1400, "height": 1500})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(dash.url)
        page.wait_for_function("typeof Plotly !== 'undefined' && document.getElementById('conn').textContent === 'live'",
                               timeout=15000)
        rt = build_runtime(args, jsonl=None, on_result=dash.on_record)
        run = threading.Thread(target=rt.run, daemon=True)
        run.start()
        try:
            # every modality answers (models load first), then the plots keep receiving points
            page.wait_for_function("['speech','face','eeg','fused'].every(m => S.latest[m])", timeout=40000)
            p1 = page.evaluate("window.__points")
            time.sleep(3.0)
            p2 = page.evaluate("window.__points")
            assert p2 > p1 > 0
            assert page.evaluate("document.getElementById('p-eeg').data.length") > 0  # traces drawn by Plotly
            assert page.evaluate("document.getElementById('va').data.length") == 8
            page.wait_for_function("document.querySelectorAll('#status tbody tr td').length > 12", timeout=10000)
            cards = page.inner_text("#cards")
            for m in ("speech", "face", "eeg", "fused"):
                assert f"{m}:" in cards  # a card with its latest answer, not "no result yet"
            status = page.inner_text("#status")
            assert "speech" in status and "face" in status and "eeg" in status and "calibrated" in status
            assert "from:" in page.inner_text("#contrib")  # the fused answer names its contributors
            SHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOT), full_page=True)
        finally:
            rt.stop()
            run.join(timeout=30)
            page.close()
        assert not errors, errors
    assert SHOT.is_file() and SHOT.stat().st_size > 30_000
