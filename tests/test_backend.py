"""Applying a device profile: runtime / provider order with fallback, threads, artifact precision."""

import logging
import shutil
from types import MappingProxyType, SimpleNamespace

import numpy as np
import pytest

from affectedge import models
from affectedge.errors import ProfileError
from affectedge.runtime._backend import choose_backend

RC = lambda runtime, provider=None, delegate=None: SimpleNamespace(runtime=runtime, provider=provider,  # noqa: E731
                                                                  delegate=delegate)


def _profile(name, runtimes, threads=3, precision=None):
    return SimpleNamespace(name=name, runtimes=tuple(runtimes), threads=threads,
                           precision=MappingProxyType(precision or {"speech": "fp32", "face": "fp32", "eeg": "fp32"}))


@pytest.fixture()
def zoo_copy(tmp_path):
    d = tmp_path / "eeg-mental-state"
    shutil.copytree(models.zoo_dir("eeg-mental-state"), d)
    for f in list(d.glob("model.*.onnx")) + list(d.glob("*.tflite")):  # only the card's fp32 ONNX file
        f.unlink()
    return d


def test_jetson_order_falls_back_to_cpu_with_one_warning(zoo_copy, caplog):
    prof = _profile("jetson-like", [RC("onnxruntime", "TensorrtExecutionProvider"),
                                    RC("onnxruntime", "CUDAExecutionProvider"),
                                    RC("onnxruntime", "CPUExecutionProvider")])
    card = models.card(zoo_copy)
    with caplog.at_level(logging.WARNING, logger="affectedge"):
        ch = choose_backend(card, zoo_copy, prof, providers_available=("CPUExecutionProvider",))
    assert ch.runtime == "onnxruntime" and ch.providers == ("CPUExecutionProvider",) and ch.threads == 3
    assert len(ch.reasons) == 2 and "TensorrtExecutionProvider" in ch.reasons[0] and "CUDA" in ch.reasons[1]
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    # with CUDA offered, CUDA is chosen (CPU kept behind it)
    ch = choose_backend(card, zoo_copy, prof,
                        providers_available=("CUDAExecutionProvider", "CPUExecutionProvider"))
    assert ch.providers == ("CUDAExecutionProvider", "CPUExecutionProvider") and len(ch.reasons) == 1


def test_litert_first_needs_a_tflite_artifact_and_precision_is_picked(zoo_copy):
    prof = _profile("pi-like", [RC("litert", delegate="xnnpack"), RC("onnxruntime", "CPUExecutionProvider")],
                    precision={"speech": "int8", "face": "fp32", "eeg": "int8"})
    card = models.card(zoo_copy)
    ch = choose_backend(card, zoo_copy, prof, providers_available=("CPUExecutionProvider",), litert_available=True)
    assert ch.runtime == "onnxruntime" and "no .tflite artifact" in ch.reasons[0]
    assert ch.precision == "fp32" and "no int8 artifact" in ch.reasons[1]
    shutil.copy(zoo_copy / "model.onnx", zoo_copy / "model.int8.onnx")  # what 'quantize' would have written
    ch = choose_backend(card, zoo_copy, prof, providers_available=("CPUExecutionProvider",), litert_available=False)
    assert ch.precision == "int8" and ch.artifact.endswith("model.int8.onnx")
    assert "ai-edge-litert is not installed" in ch.reasons[0]
    (zoo_copy / "model.int8.tflite").write_bytes(b"")
    ch = choose_backend(card, zoo_copy, prof, providers_available=("CPUExecutionProvider",), litert_available=True)
    assert ch.runtime == "litert" and ch.backend == "litert" and ch.delegate == "xnnpack" and not ch.reasons


def test_nothing_usable_is_a_profile_error(zoo_copy):
    prof = _profile("ios-like", [RC("coreml", "CoreMLExecutionProvider")])
    with pytest.raises(ProfileError, match="offers no runtime"):
        choose_backend(models.card(zoo_copy), zoo_copy, prof, providers_available=("CPUExecutionProvider",))


def test_models_load_applies_a_real_profile():
    from affectedge import device_profiles

    for name in ("x86-64-desktop", "jetson-orin-nano", "raspberry-pi-4"):
        prof = device_profiles.load(name)
        m = models.load("eeg-mental-state", profile=name)
        ch = m.backend_choice
        assert ch.profile == name and ch.threads == prof.threads and m.session.threads == prof.threads
        out = m.predict(np.zeros((1, 4, 15), np.float32))
        assert np.isfinite(out["probs"]).all()
        if name == "jetson-orin-nano":  # no TensorRT / CUDA in this onnxruntime build: CPU, with the reasons
            assert ch.providers == ("CPUExecutionProvider",) and any("Tensorrt" in r for r in ch.reasons)
        m.close()
    m = models.load("eeg-mental-state", profile="auto")
    assert m.backend_choice.profile in device_profiles.list_profiles()


@pytest.mark.parametrize("model_id", ["speech-emotion", "face-expression", "face-expression-pixels",
                                      "eeg-valence-arousal", "eeg-mental-state"])
def test_pi_profile_runs_the_shipped_tflite_artifact_equal_to_onnx(model_id):
    """On a Raspberry Pi profile LiteRT + XNNPACK comes first; the zoo ships checked .tflite artifacts."""
    pytest.importorskip("ai_edge_litert")
    ref = models.load(model_id)
    pi = models.load(model_id, profile="raspberry-pi-4")
    ch = pi.backend_choice
    assert ch.runtime == "litert" and ch.artifact.endswith(".tflite") and pi.session.backend == "litert"
    assert pi.output_names == ref.output_names  # LiteRT's names mapped back to the card's roles
    shape = (1,) + tuple(d for d in ref.session.input_shapes[0][1:])
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    a = pi.predict(x)
    probs = a[ref.roles["class_probabilities"]]
    assert np.isfinite(probs).all() and np.allclose(probs.sum(-1), 1, atol=1e-3)
    assert pi.predict_roles(x).keys() == ref.predict_roles(x).keys()
    assert ch.precision == (dict(device_profiles_load("raspberry-pi-4").precision)[ch.profile and _mod(model_id)]
                            if ch.precision != "fp32" else "fp32")
    # the fp32 LiteRT artifact computes what the ONNX model computes (output order mapped to the card's names)
    fp32 = models.load(models.zoo_dir(model_id) / "model.fp32.tflite")
    b, c = fp32.predict(x), ref.predict(x)
    for name in ref.output_names:
        np.testing.assert_allclose(b[name], c[name], atol=1e-4)


def _shipped_artifacts():
    out = []
    for mid in models.ZOO:
        files = ((models.card(mid).extra or {}).get("artifacts") or {}).get("files") or {}
        out += [pytest.param(mid, name, meta.get("precision", "fp32"), id=f"{mid}/{name}") for name, meta in files.items()]
    return out


@pytest.mark.parametrize("model_id,name,precision", _shipped_artifacts())
def test_every_shipped_artifact_answers_under_the_cards_names(model_id, name, precision):
    """fp16/int8 ONNX and LiteRT artifacts rename their outputs; a profile that picks one still gets the card's
    roles, and output k is the card's k-th output (fp32/fp16 equal model.onnx's outputs by name)."""
    if name.endswith(".tflite"):
        pytest.importorskip("ai_edge_litert")
    ref = models.load(model_id)
    art = models.load(models.zoo_dir(model_id) / name)
    assert art.output_names == ref.output_names
    shape = (1,) + tuple(d if isinstance(d, int) and d > 0 else 1 for d in ref.session.input_shapes[0][1:])
    rng = np.random.default_rng(1)
    for _ in range(4):
        x = rng.standard_normal(shape).astype(np.float32)
        got, want = art.predict_roles(x), ref.predict_roles(x)
        assert got.keys() == want.keys() and "class_probabilities" in got
        for role, a in got.items():
            assert a.shape == want[role].shape and np.isfinite(a).all()
            if precision != "int8":  # int8 on random inputs saturates; the exporters check it on real data
                np.testing.assert_allclose(a, want[role], atol=1e-2, err_msg=f"{name} {role}")
    art.close()
    ref.close()


def device_profiles_load(name):
    from affectedge import device_profiles

    return device_profiles.load(name)


def _mod(model_id):
    return {"speech-emotion": "speech", "face-expression": "face", "face-expression-pixels": "face"}.get(model_id, "eeg")
