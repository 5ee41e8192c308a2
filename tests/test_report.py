"""Session reports from a real run's results JSON Lines (EmoDB speech + BrainFlow's synthetic EEG board)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from affectedge.errors import ParameterError

ROOT = Path(__file__).resolve().parents[1]
EMODB = ROOT.parent / "shared" / "data" / "speech" / "emodb" / "wav"
pytest.importorskip("matplotlib")
pytestmark = pytest.mark.skipif(not (EMODB / "03a01Wa.wav").is_file(), reason=f"EmoDB not at {EMODB}")


@pytest.fixture(scope="module")
def run_jsonl(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "results.jsonl"
    p = subprocess.run([sys.executable, "-m", "affectedge", "run", "--audio", str(EMODB / "03a01Wa.wav"), "--eeg",
                        "synthetic", "--duration", "6", "--status-every", "2", "--out", str(out), "--quiet"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    return out


def _check_html(html_path, modalities):
    text = html_path.read_text()
    assert not re.search(r"""(src|href)\s*=\s*['"]?https?://""", text)  # self-contained
    assert "http://" not in text and "https://" not in text
    imgs = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", text)
    assert len(imgs) == 3 and all(len(i) > 10000 for i in imgs)
    assert f"<h2>Emotion timeline ({', '.join(modalities)})</h2>" in text
    return text


def test_report_from_real_run(run_jsonl, tmp_path):
    from affectedge.report import read_results, write_report

    res = read_results(run_jsonl)
    assert res.summary is not None and res.partial_line is None and res.notes == []
    assert {"speech", "eeg", "fused"} <= set(res.modalities) and len(res.status) >= 4
    info = write_report(run_jsonl, tmp_path / "rep")
    assert info.html == tmp_path / "rep" / "report.html" and info.finished
    assert set(info.pngs) == {"timeline", "valence_arousal", "health"}
    for p in info.pngs.values():
        assert p.parent == info.html.parent and p.read_bytes()[:4] == b"\x89PNG" and p.stat().st_size > 10000
    assert info.counts["results"]["speech"] >= 1 and info.counts["results"]["eeg"] >= 1
    assert info.counts["events"] == len(res.events) > 0
    assert info.modalities == ["speech", "eeg", "fused"]  # the timeline's rows
    text = _check_html(info.html, info.modalities)
    assert "stopped by" in text and "duration" in text and "label share: speech" in text


def test_killed_run_partial_last_line_and_no_summary(run_jsonl, tmp_path, capsys):
    from affectedge.report import _cli, write_report

    lines = run_jsonl.read_text().splitlines(keepends=True)
    assert json.loads(lines[-1])["type"] == "summary"
    lines = lines[:-1]
    lines[-1] = lines[-1][: len(lines[-1]) // 2]  # killed mid-record
    killed = tmp_path / "killed.jsonl"
    killed.write_text("".join(lines))
    warned = []
    info = write_report(killed, tmp_path / "rep", warn=warned.append)
    n = len(lines)
    assert info.partial_line == n and not info.finished
    assert warned == [f"killed.jsonl: line {n} is incomplete (killed run?); ignored",
                      "killed.jsonl: run did not finish: no summary record"]
    assert {"speech", "eeg"} <= set(info.modalities)
    text = _check_html(info.html, info.modalities)
    assert f"line {n} is incomplete" in text and "run did not finish: no summary record" in text

    assert _cli.dispatch(type("A", (), {"results": str(killed), "out": str(tmp_path / "cli"), "quiet": False})) == 0
    cap = capsys.readouterr()
    assert f"line {n} is incomplete (killed run?); ignored" in cap.err and "run did not finish" in cap.out


def test_bad_inputs(run_jsonl, tmp_path):
    from affectedge.report import write_report

    with pytest.raises(ParameterError, match=r"missing\.jsonl.*does not exist.*affectedge run"):
        write_report(tmp_path / "missing.jsonl", tmp_path / "o")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(ParameterError, match=r"empty\.jsonl.*has no lines.*at least one record"):
        write_report(tmp_path / "empty.jsonl", tmp_path / "o")
    (tmp_path / "half.jsonl").write_text('{"schema":"affectedge.results","ty')
    with pytest.raises(ParameterError, match="only an incomplete line"):
        write_report(tmp_path / "half.jsonl", tmp_path / "o")
    lines = run_jsonl.read_text().splitlines(keepends=True)
    lines[3] = "garbage\n"
    (tmp_path / "mid.jsonl").write_text("".join(lines))
    with pytest.raises(ParameterError, match=r"mid\.jsonl: line 4 is not valid JSON"):
        write_report(tmp_path / "mid.jsonl", tmp_path / "o")
    (tmp_path / "other.jsonl").write_text('{"a": 1}\n')
    with pytest.raises(ParameterError, match="line 1 is not a results record"):
        write_report(tmp_path / "other.jsonl", tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_cli(run_jsonl, tmp_path):
    p = subprocess.run([sys.executable, "-m", "affectedge", "report", str(run_jsonl), "--out", str(tmp_path / "r")],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "report ->" in p.stdout and (tmp_path / "r" / "report.html").is_file()
    assert {f.name for f in (tmp_path / "r").iterdir()} == {"report.html", "timeline.png", "valence_arousal.png",
                                                             "health.png"}
    p = subprocess.run([sys.executable, "-m", "affectedge", "report", str(tmp_path / "nope.jsonl")],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and "affectedge: error:" in p.stderr and "nope.jsonl" in p.stderr


def test_missing_matplotlib_names_the_extra(monkeypatch, run_jsonl, tmp_path):
    from affectedge.errors import MissingExtraError
    from affectedge.report import write_report

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingExtraError, match=r"affectedge\[report\]"):
        write_report(run_jsonl, tmp_path)


def test_style_conventions():
    from affectedge.report import style

    assert set(style.MODALITIES) <= set(style.MODALITY_COLORS)
    assert len(set(style.MODALITY_COLORS.values())) == len(style.MODALITY_COLORS)
    assert style.label_color("anger") == style.label_color("Anger") != style.label_color("neutral")
    assert style.label_color("made-up") == style.label_color("made-up")  # stable for labels not listed
    fig, ax = style.figure("bars")
    style.apply(ax, title="t", xlabel="x", ylabel="y")
    assert fig.dpi == style.DPI and ax.title.get_fontsize() == style.FONT["title"]
    style.pyplot().close(fig)


def test_gaps_and_not_ok_statuses_are_shown(run_jsonl, tmp_path):
    from affectedge.report import write_report

    recs = [json.loads(x) for x in run_jsonl.read_text().splitlines()]
    last_eeg = [r for r in recs if r["type"] == "status" and r["modality"] == "eeg"][-1]
    last_eeg.update(gaps=[[1500.0, 2750.0]], gap_ms=1250.0, reconnects=1)
    first = next(r for r in recs if r["type"] == "result")  # the template: any result record
    recs.insert(2, dict(first, modality="speech", start_ms=4000.0, end_ms=5000.0, status="no_speech", label=None,
                        labels=None, probs=None, valence=None, arousal=None, confidence=0.0))
    (tmp_path / "g.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    text = write_report(tmp_path / "g.jsonl", tmp_path / "rep").html.read_text()
    assert "<td>eeg</td><td>1.50</td><td>2.75</td><td>1250</td>" in text and "speech no_speech 1" in text
