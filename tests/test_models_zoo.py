"""Model zoo infrastructure: cards, loader checks, CLI (independent of the shipped models)."""

import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper

from affectedge import ModelError, ParameterError, features, models
from affectedge._cli import main
from affectedge.models import ModelCard, sha256_file


class TinyPipeline:
    """A stand-in pipeline for these tests: mean and std of each of 2 channels."""

    name = "test-tiny"

    def __init__(self, *, scale=1.0):
        self.spec = {"scale": float(scale)}
        self.input_shape = (4,)

    def __call__(self, raw):
        raw = np.asarray(raw, dtype=np.float32) * self.spec["scale"]
        return np.concatenate([raw.mean(axis=1), raw.std(axis=1)]).astype(np.float32)


@pytest.fixture
def tiny_model(tmp_path, monkeypatch):
    monkeypatch.setitem(features.PIPELINES, "test-tiny", f"{__name__}:TinyPipeline")
    w = np.array([[1, 0, -1], [0, 1, 0], [0, 0, 1], [1, 1, 1]], np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["logits"]), helper.make_node("Softmax", ["logits"], ["probs"], axis=-1)],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 3])],
        [numpy_helper.from_array(w, "w")],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    folder = tmp_path / "tiny"
    folder.mkdir()
    onnx.save(m, folder / "model.onnx")
    card = ModelCard(
        id="tiny", task="test", version="1", summary="A 4-in 3-out test model.", labels=("a", "b", "c"),
        outputs={"probs": "class probabilities"},
        input={"pipeline": "test-tiny", "spec": {"scale": 1.0}, "shape": ["batch", 4], "dtype": "float32"},
        parameters=12, file="model.onnx", file_sha256=sha256_file(folder / "model.onnx"),
        file_size_bytes=(folder / "model.onnx").stat().st_size,
        training_data=({"name": "none", "description": "weights set by hand.", "terms": "n/a"},),
        evaluation={"protocol": "none", "table": [{"set": "x", "accuracy": 1.0}]}, limits=("not a real model",),
    )
    card.save(folder)
    return folder


def test_card_roundtrip_and_markdown(tiny_model):
    c = ModelCard.load(tiny_model / "card.json")
    assert c.labels == ("a", "b", "c") and c.parameters == 12
    md = (tiny_model / "card.md").read_text()
    assert md.startswith("# tiny (v1)") and "| x | 1.000 |" in md and "not a real model" in md


def test_load_and_predict(tiny_model):
    m = models.load(tiny_model)
    raw = np.array([[1.0, 3.0], [2.0, 2.0]])
    out = m.predict_raw(raw)["probs"]
    x = np.array([2.0, 2.0, 1.0, 0.0], np.float32)
    logits = x @ np.array([[1, 0, -1], [0, 1, 0], [0, 0, 1], [1, 1, 1]], np.float32)
    np.testing.assert_allclose(out[0], np.exp(logits) / np.exp(logits).sum(), rtol=1e-6)
    assert m.classify(x[None]) == ["a"]
    with pytest.raises(ParameterError, match=r"add a batch axis"):
        m.predict(x)
    with pytest.raises(ParameterError, match=r"axis 1 has size 5 but model 'tiny' expects 4"):
        m.predict(np.zeros((1, 5), np.float32))


def test_feature_spec_mismatch_is_refused(tiny_model):
    d = json.loads((tiny_model / "card.json").read_text())
    d["input"]["spec"] = {"scale": 2.0}
    (tiny_model / "card.json").write_text(json.dumps(d))
    with pytest.raises(ModelError, match=r"differ from those computed here \(scale: card 2.0, computed 1.0\)"):
        # The pipeline is built from the card's spec, so feed a card whose spec
        # the pipeline normalises differently: check_input_spec directly.
        c = ModelCard.load(tiny_model)
        c.check_input_spec(TinyPipeline(scale=1.0).spec, "test-tiny")
    c = ModelCard.load(tiny_model)
    with pytest.raises(ModelError, match=r"expects features from pipeline 'test-tiny'"):
        c.check_input_spec({}, "speech-mfcc-silence")


def test_tampered_or_corrupt_model_is_refused(tiny_model):
    path = tiny_model / "model.onnx"
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"does not match the sha256 on its card"):
        models.load(tiny_model)
    path.write_bytes(b"not an onnx file")
    with pytest.raises(ModelError, match=r"onnxruntime [0-9.]* ?cannot load"):
        models.load(tiny_model, check_file=False)


def test_unknown_references(tmp_path):
    with pytest.raises(ModelError, match=r"'nope' is not a zoo model id"):
        models.zoo_dir("nope")
    with pytest.raises(ModelError, match=r"no model card for"):
        models.load(tmp_path)
    (tmp_path / "card.json").write_text("{broken")
    with pytest.raises(ModelError, match=r"is not valid JSON"):
        models.card(tmp_path)


def test_cli_models_and_evaluate_errors(capsys):
    assert main(["models", "list"]) == 0
    assert main(["evaluate", "--data", "x"]) == 1
    assert "needs a MODEL, or --task and --protocol" in capsys.readouterr().err
    assert main(["evaluate", "--data", "x", "--task", "speech", "--protocol", "bogus"]) == 1
    assert "is not offered for speech" in capsys.readouterr().err
    assert main(["models", "show", "nope"]) == 1
    assert "no model card for 'nope'" in capsys.readouterr().err
