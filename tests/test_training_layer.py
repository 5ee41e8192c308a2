"""The training layer: the task-module protocol, the shared helpers, and the exporters' data interface.

Fast: no corpus, no training (the task modules themselves are exercised by
tests/test_models_*.py).
"""

import inspect
import json
import subprocess
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from affectedge.errors import ParameterError
from affectedge.training import TASKS, TaskModule, task_module
from affectedge.training import _common as C

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ protocol
@pytest.mark.parametrize("task", list(TASKS))
def test_every_registered_task_satisfies_the_protocol(task):
    mod = task_module(task)
    assert isinstance(mod, TaskModule) and C.task_module_gaps(mod) == []
    assert isinstance(mod.MODEL_ID, str) and isinstance(mod.DEFAULT_DATA, str)
    assert isinstance(mod.PROTOCOLS, tuple) and mod.PROTOCOLS
    for name in ("train", "evaluate_protocol", "evaluate_model", "load_features"):
        want = [(p.name, p.kind, p.default) for p in inspect.signature(getattr(TaskModule, name)).parameters.values()
                if p.name != "self"]
        params = list(inspect.signature(getattr(mod, name)).parameters.values())
        got = [(p.name, p.kind, p.default) for p in params[:len(want)]]
        assert got == want, f"{mod.__name__}.{name}{inspect.signature(getattr(mod, name))}"
        # a task may add its own options after the protocol's: keyword-only, with defaults
        extra = params[len(want):]
        assert all(p.kind == p.KEYWORD_ONLY and p.default is not p.empty for p in extra), \
            f"{mod.__name__}.{name}{inspect.signature(getattr(mod, name))}"


def test_task_module_refuses_a_module_that_is_not_a_task(monkeypatch):
    fake = types.ModuleType("affectedge_fake_task")
    fake.MODEL_ID, fake.train = "x", lambda *a, **k: None
    monkeypatch.setitem(sys.modules, "affectedge_fake_task", fake)
    monkeypatch.setitem(TASKS, "fake", "affectedge_fake_task")
    with pytest.raises(TypeError, match="DEFAULT_DATA, PROTOCOLS, evaluate_protocol, evaluate_model, load_features"):
        task_module("fake")
    with pytest.raises(ParameterError, match="unknown"):
        task_module("nope")


# ------------------------------------------------------------------- helpers
def test_balanced_class_weights_match_the_formulas_the_tasks_used():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(2, 9))
        y = rng.integers(0, n, size=int(rng.integers(1, 3000)))
        counts = np.bincount(y, minlength=n).astype(np.float64)
        speech = torch.tensor(counts.sum() / (n * np.maximum(counts, 1)), dtype=torch.float32).numpy()
        np.testing.assert_array_equal(C.balanced_class_weights(y, n), speech)
        c = torch.bincount(torch.as_tensor(y), minlength=n).float()
        face = torch.where(c > 0, c.sum() / (n * c.clamp(min=1)), torch.zeros_like(c)).clamp(max=5.0).numpy()
        np.testing.assert_array_equal(C.balanced_class_weights(y, n, absent=0.0, max_weight=5.0), face)


def test_sample_indices_and_loso():
    assert C.sample_indices(10, None, 0) is None and C.sample_indices(10, 10, 0) is None
    idx = C.sample_indices(100, 7, 3)
    np.testing.assert_array_equal(idx, np.sort(np.random.default_rng(3).choice(100, size=7, replace=False)))
    folds = list(C.loso(["b", "a", "b", "c"]))
    assert [g for g, _ in folds] == ["a", "b", "c"]
    np.testing.assert_array_equal(folds[1][1], [True, False, True, False])
    assert [g for g, _ in C.loso(["b", "a", "b"], order=["b", "a"])] == ["b", "a"]
    with pytest.raises(ParameterError, match=r"protocol 'x' is not offered for speech; choose one of loso"):
        C.check_protocol("x", ("loso",), "speech")


def test_report_lookup_skips_quick_and_broken_reports(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(C, "REPO", tmp_path / "no-repo")
    d = tmp_path / "reports" / "speech"
    d.mkdir(parents=True)
    (d / "report.json").write_text(json.dumps({"task": "speech", "quick": True}))
    assert C.find_report("speech") == (None, None)
    (d / "report.json").write_text(json.dumps({"task": "speech", "uar": 0.5}))
    path, rep = C.find_report("speech", accept=lambda r: r.get("task") == "speech")
    assert path == Path.cwd() / "reports" / "speech" / "report.json" and rep["uar"] == 0.5
    assert C.find_report("speech", accept=lambda r: r.get("task") == "face") == (None, None)
    env = tmp_path / "elsewhere.json"
    env.write_text(json.dumps({"task": "speech", "uar": 0.7}))
    monkeypatch.setenv("AFFECTEDGE_X_REPORT", str(env))
    assert C.find_report("speech", env="AFFECTEDGE_X_REPORT")[1]["uar"] == 0.7
    f = tmp_path / "reports" / "face" / "sub"
    f.mkdir(parents=True)
    (f / "cv.json").write_text(json.dumps({"accuracy": 0.9}))
    (f / "quick.json").write_text(json.dumps({"accuracy": 0.1, "quick": True}))
    (f / "other.json").write_text(json.dumps({"accuracy": 0.2}))
    (f / "broken.json").write_text("{")
    got = [(p.name, r["accuracy"]) for p, r in C.iter_reports("face", keep=lambda p: p.stem != "other")]
    assert got == [("cv.json", 0.9)]


def test_shared_class_scoring():
    probs = np.array([[0.1, 0.5, 0.4], [0.6, 0.1, 0.3]])
    shared = C.shared_classes(["a", "b", "c"], {"c", "a"}, "no class")
    assert shared == ["a", "c"]
    np.testing.assert_array_equal(C.shared_argmax(probs, ["a", "b", "c"], shared), [1, 0])
    with pytest.raises(ParameterError, match="no class"):
        C.shared_classes(["a"], ["z"], "no class")


def test_export_onnx_names_an_unsupported_operator(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from affectedge.errors import ExportError

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(3, 2)

        def forward(self, x):
            return torch.softmax(self.fc(x), dim=-1)

    model = Tiny().eval()
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    path = C.export_onnx(model, x[:2], tmp_path / "m.onnx", input_names=["features"], output_names=["probs"],
                         dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=64)},))
    diffs = C.onnx_max_abs_diff(model, path, x)
    assert list(diffs) == ["probs"] and diffs["probs"] < 1e-6
    assert C.count_parameters(model) == 8 and C.count_parameters(model, torch.zeros(3)) == 11
    np.testing.assert_allclose(C.predict(model, x), model(torch.from_numpy(x)).detach().numpy())

    def fail(*a, **k):
        raise RuntimeError("no symbolic function for aten::frobnicate.default in the registry")

    monkeypatch.setattr(torch.onnx, "export", fail)
    with pytest.raises(ExportError, match=r"operator aten::frobnicate.default is not supported"):
        C.export_onnx(model, x[:2], tmp_path / "n.onnx", input_names=["features"], output_names=["probs"],
                      dynamic_shapes=None)


# --------------------------------------------------- exporters' data interface
def test_exporters_do_not_import_the_training_package():
    code = ("import sys; from affectedge.exporters import _check, _data, _onnx, _options, _quantize, _report, "
            "_sources; print([m for m in sys.modules if m.startswith('affectedge.training')])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def _source(card_id="fake-model", shape=(None, 3)):
    from affectedge.exporters._sources import InputSpec, Source

    return Source(kind="folder", name=card_id, ref=card_id, card=SimpleNamespace(id=card_id),
                  input_specs=[InputSpec("features", shape)])


class _FakeProvider:
    def __init__(self, tmp):
        self.tmp, self.calls = tmp, []

    def task(self, card):
        return "fake" if card.id == "fake-model" else None

    def metric(self, card):
        return "uar"

    def default_data(self, card):
        return self.tmp

    def read_folder(self, card, path, *, limit=None, seed=0):
        from affectedge.exporters._data import ArrayData

        self.calls.append((card.id, Path(path), limit, seed))
        x = np.arange(30, dtype=np.float32).reshape(10, 3)[:limit]
        return ArrayData({"x": x}, labels=np.arange(len(x)) % 2, label_names=("no", "yes"), origin=str(path))


def test_a_data_provider_serves_folders_task_and_metric(tmp_path):
    from affectedge.exporters import _data, _quantize

    fake = _FakeProvider(tmp_path)
    previous = _data.set_data_provider(fake)
    try:
        src = _source()
        assert src.task == "fake" and src.metric_name == "uar"
        assert _quantize._default_data(src) == tmp_path
        ds = _data.load_data(tmp_path, src, purpose="calibration", limit=4, seed=2)
        assert fake.calls == [("fake-model", tmp_path, 4, 2)]
        assert len(ds) == 4 and ds.examples[1][0].shape == (1, 3) and ds.label_names == ("no", "yes")
        np.testing.assert_array_equal(ds.labels, [0, 1, 0, 1])
        assert _source("unknown").task is None and _source("unknown").metric_name == "uar"
        with pytest.raises(ParameterError, match="has no zoo model card"):
            _data.load_data(tmp_path, _source("unknown"), purpose="validation")
        with pytest.raises(ParameterError, match="not a DataProvider"):
            _data.set_data_provider(object())
    finally:
        _data.set_data_provider(previous)
    assert _data.data_provider().__class__.__name__ == "TaskData"


def test_a_calibration_reader_object_is_accepted(tmp_path):
    from affectedge import exporters
    from affectedge.exporters._data import ArrayData, CalibrationData, load_data

    class OrtStyle:  # only get_next, as onnxruntime's CalibrationDataReader subclasses have
        def __init__(self):
            self.it = iter([{"features": np.ones((2, 3), np.float32)}, {"features": np.zeros((1, 3), np.float32)}])

        def get_next(self):
            return next(self.it, None)

    ds = load_data(OrtStyle(), _source(), purpose="calibration")
    assert len(ds) == 3 and ds.labels is None and ds.origin == "OrtStyle"
    assert isinstance(OrtStyle(), CalibrationData)
    arr = ArrayData({"features": np.ones((5, 3), np.float32)}, labels=[0, 1, 0, 1, 1], origin="mine")
    assert len(list(arr)) == 5 and len(list(arr)) == 5  # iterating rewinds
    ds = load_data(arr, _source(), purpose="validation", limit=3, seed=0)
    assert len(ds) == 3 and ds.origin == "mine" and len(ds.labels) == 3
    opts = exporters.QuantizeOptions(source="speech-emotion", out=tmp_path / "o", calibration=arr)
    assert opts.calibration is arr and opts.validation is None
    with pytest.raises(ParameterError, match="model takes inputs"):
        load_data(ArrayData({"a": np.ones((2, 3))}), _two_input_source(), purpose="validation")
    with pytest.raises(ParameterError, match="expected a dict"):
        load_data(SimpleNamespace(get_next=lambda: 3), _source(), purpose="validation")


def _two_input_source():
    from affectedge.exporters._sources import InputSpec

    src = _source()
    src.input_specs = [InputSpec("a", (None, 3)), InputSpec("b", (None, 3))]
    return src
