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
