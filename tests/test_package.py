"""Packaging, lazy imports, extras, the JIT switch and the kernel cache."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import affectedge
from affectedge import MissingExtraError, ParameterError
from affectedge._optional import require
from affectedge.native_kernels import _config

REPO = Path(__file__).resolve().parents[1]
OPTIONAL = ("torch", "mediapipe", "brainflow", "onnx", "onnxruntime", "pyaudio", "cv2", "ai_edge_litert",
            "scipy", "librosa", "numba")


def _run(code, **env):
    full = {**os.environ, **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=300)


def test_import_is_lazy():
    code = (
        "import sys, json; import affectedge, affectedge.native_kernels; "
        f"print(json.dumps([m for m in {OPTIONAL!r} if m in sys.modules]))"
    )
    r = _run(code)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == []


def test_all_is_sorted_and_complete():
    assert affectedge.__all__ == sorted(affectedge.__all__)
    for name in affectedge.__all__:
        assert getattr(affectedge, name) is not None
    nk = affectedge.native_kernels
    assert nk.__all__ == sorted(nk.__all__)
    for name in nk.__all__:
        assert getattr(nk, name) is not None, name


def test_missing_extra_names_the_pip_line(monkeypatch):
    with pytest.raises(MissingExtraError, match=r"pip install 'affectedge\[eeg\]'"):
        require("affectedge_no_such_module", "eeg", "EEG boards")
    monkeypatch.setitem(sys.modules, "brainflow", None)  # as if the extra were not installed
    monkeypatch.setitem(sys.modules, "brainflow.board_shim", None)
    from affectedge.io import read_brainflow_file

    with pytest.raises(MissingExtraError, match=r"affectedge\[eeg\]"):
        read_brainflow_file("x.csv", "cyton_daisy")
    assert issubclass(MissingExtraError, ImportError) and issubclass(ParameterError, ValueError)


_MFCC_CODE = (
    "import numpy as np, sys, json; from affectedge.native_kernels import mfcc, band_power, silence_features, _config;"
    "y = (np.random.default_rng(0).standard_normal(16000) * 0.1);"
    "m = mfcc(y, sr=16000, n_fft=512, hop_length=160, n_mels=40, n_mfcc=13);"
    "b = band_power(np.random.default_rng(1).standard_normal((4, 512)), 128.0);"
    "s = silence_features(y, sr=16000).ratio;"
    "print(json.dumps({'jit': _config.use_jit(), 'reason': _config.JIT_DISABLED_REASON, "
    "'numba': 'numba' in sys.modules, 'm': m.tolist(), 'b': b.tolist(), 's': s}))"
)


@pytest.mark.skipif(not _config.JIT_ENABLED, reason="numba is not importable here")
def test_disable_jit_env_gives_same_results():
    on = json.loads(_run(_MFCC_CODE).stdout)
    off_run = _run(_MFCC_CODE, AFFECTEDGE_DISABLE_JIT="1")
    assert off_run.returncode == 0, off_run.stderr
    off = json.loads(off_run.stdout)
    assert on["jit"] and not off["jit"] and "AFFECTEDGE_DISABLE_JIT" in off["reason"]
    assert not off["numba"]
    np.testing.assert_allclose(off["m"], on["m"], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(off["b"], on["b"], rtol=1e-9)
    assert off["s"] == on["s"]


def test_numba_missing_falls_back_to_numpy():
    code = "import sys; sys.modules['numba'] = None\n" + _MFCC_CODE
    r = _run(code)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert not out["jit"] and "numba cannot be imported" in out["reason"]


def test_enabling_a_missing_jit_is_refused(monkeypatch):
    monkeypatch.setattr(_config, "JIT_ENABLED", False)
    monkeypatch.setattr(_config, "JIT_DISABLED_REASON", "numba cannot be imported (test)")
    with pytest.raises(ParameterError, match=r"cannot enable the JIT: numba cannot be imported"):
        _config.set_jit(True)


def test_unwritable_cache_dir_warns_once_and_still_works(tmp_path):
    target = "/proc/affectedge-cache"  # cannot be created, even as root
    code = "import warnings; warnings.simplefilter('always')\n" + _MFCC_CODE
    r = _run(code, AFFECTEDGE_CACHE_DIR=target, NUMBA_CACHE_DIR="")
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("is not writable") == 1, r.stderr
    assert json.loads(r.stdout)["m"]


def test_cache_dir_is_used(tmp_path):
    if not _config.JIT_ENABLED:
        pytest.skip("numba is not importable here")
    env = {"AFFECTEDGE_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("NUMBA_CACHE_DIR", None)
    r = _run(_MFCC_CODE, **env)
    assert r.returncode == 0, r.stderr
    assert list((tmp_path / "cache").rglob("*.nbi")), "no Numba index files were written to the cache dir"


def test_wheel_installs_one_import_name(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
        capture_output=True, text=True, timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    wheel = next(tmp_path.glob("affectedge-*.whl"))
    tops = {n.split("/")[0] for n in zipfile.ZipFile(wheel).namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"affectedge"}
    names = zipfile.ZipFile(wheel).namelist()
    for sub in ("native_kernels", "exporters", "device_profiles"):
        assert f"affectedge/{sub}/__init__.py" in names
    assert not any("/tests/" in n or n.startswith("tests/") for n in names)
