"""Device profiles: every shipped profile loads and carries its sources; user profiles inherit; bad files name the
file and the key; detection on fake roots holding the real OS files of each board; the profiles CLI."""

import json
import re
from pathlib import Path

import pytest

from affectedge import device_profiles as dp
from affectedge._cli import main
from affectedge.errors import ProfileError

ROOTS = Path(__file__).parent / "fixtures" / "roots"
EXPECTED = {
    "android-arm64", "ios-arm64", "jetson-nano", "jetson-orin-nano", "linux-aarch64-generic",
    "linux-armv7-generic", "raspberry-pi-4", "raspberry-pi-5", "raspberry-pi-zero-2w", "x86-64-desktop",
}
HARDWARE = {"jetson-nano", "jetson-orin-nano", "raspberry-pi-4", "raspberry-pi-5", "raspberry-pi-zero-2w"}
NO_EXTRAS = {"providers": ("CPUExecutionProvider",), "litert": False}


# ----------------------------------------------------------------------------- shipped profiles
def test_the_shipped_profiles_are_the_ones_asked_for():
    assert set(dp.list_profiles()) == EXPECTED
    assert dp.PROFILES_DIR.is_dir() and sorted(p.stem for p in dp.PROFILES_DIR.glob("*.json")) == dp.list_profiles()
    assert dp.__all__ == sorted(dp.__all__)
    for name in set(dp.__all__) - {"PROFILES_DIR"}:
        assert getattr(dp, name).__module__ == "affectedge.device_profiles", name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_shipped_profile_loads_and_validates(name):
    p = dp.load(name)
    assert isinstance(p, dp.Profile) and p.name == name and p.source_file == dp.PROFILES_DIR / f"{name}.json"
    assert p.extends is None and p.description
    assert p.arch in ("aarch64", "x86_64", "armv7l", "arm64")
    assert p.cores >= 1 and p.clock_ghz > 0 and p.memory_mb > 0 and 1 <= p.threads <= p.cores
    assert isinstance(p.simd, tuple) and isinstance(p.accelerators, tuple)
    assert p.runtimes and all(isinstance(r, dp.RuntimeChoice) for r in p.runtimes)
    assert set(p.precision) == {"speech", "face", "eeg"} and set(p.precision.values()) <= {"fp32", "fp16", "int8"}
    assert isinstance(p.budgets, dp.Budgets) and p.budgets.model_size_mb > 0 and p.budgets.ram_mb > 0
    assert set(p.budgets.latency_ms) == {"speech", "face", "eeg"}
    assert isinstance(p.capture, dp.Capture) and p.capture.audio_rate_hz == 16000
    assert isinstance(p.capture.eeg_boards, tuple) and p.capture.eeg_boards
    assert isinstance(p.numba_available, bool) and isinstance(p.numba_cache_dir, str)
    assert bool(p.numba_cache_dir) or not p.numba_available
    assert p.sustained_gmacs > 0 and p.constraints and all(isinstance(c, str) for c in p.constraints)
    with pytest.raises((TypeError, AttributeError)):
        p.precision["face"] = "fp32"  # read-only mappings
    with pytest.raises(TypeError):
        p.budgets.latency_ms["face"] = 1
    with pytest.raises(Exception):
        p.threads = 99  # frozen
    d = p.to_dict()
    json.dumps(d)
    assert d["name"] == name and d["runtimes"][0] == p.runtimes[0].to_dict()
    assert dp.load(name) is p  # shipped profiles are loaded once


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_number_from_outside_carries_its_source(name):
    p = dp.load(name)
    for key in ("arch", "cores", "clock_ghz", "simd", "memory_mb", "accelerators", "sustained_gmacs"):
        src = p.sources.get(key, "")
        assert src.strip(), f"{name}: no source for {key}"
        if name in HARDWARE or key == "sustained_gmacs":
            assert "http" in src, f"{name}: the source of {key} cites no page: {src!r}"
    assert p.sustained_gmacs_source == p.sources["sustained_gmacs"]
    assert re.match(r"(measured|estimate)", p.sustained_gmacs_source), "say how the throughput was obtained"
    for i in range(len(p.constraints)):
        assert "http" in p.sources[f"constraints[{i}]"], f"{name}: constraint {i} has no source"
    for key in ("threads", "precision", "budgets", "capture"):
        assert p.sources.get(key, "").startswith("choice:"), f"{name}: say why {key} is what it is"


def test_runtime_orders_are_the_ones_the_issue_asks_for():
    labels = {n: [(r.runtime, r.provider, r.delegate) for r in dp.load(n).runtimes] for n in EXPECTED}
    for jetson in ("jetson-nano", "jetson-orin-nano"):
        assert [p for _, p, _ in labels[jetson]] == ["TensorrtExecutionProvider", "CUDAExecutionProvider",
                                                     "CPUExecutionProvider"]
    for pi in ("raspberry-pi-4", "raspberry-pi-5", "raspberry-pi-zero-2w"):
        assert labels[pi][:2] == [("litert", None, "xnnpack"), ("onnxruntime", "CPUExecutionProvider", None)]
    assert labels["android-arm64"][:2] == [("litert", None, "gpu"), ("litert", None, "nnapi")]
    assert labels["ios-arm64"][0] == ("onnxruntime", "CoreMLExecutionProvider", None)
    assert labels["x86-64-desktop"][0] == ("onnxruntime", "CPUExecutionProvider", None)
    # the known constraints are said where they bite
    text = lambda n: " ".join(dp.load(n).constraints)  # noqa: E731
    assert "numpy<2" in text("raspberry-pi-4") and "llvmlite" in text("linux-armv7-generic")
    assert "Python 3.6" in text("jetson-nano") and "CUDA 10.2" in text("jetson-nano")
    assert "Python 3.10" in text("jetson-orin-nano") and "CUDA 12.6" in text("jetson-orin-nano")
    assert not dp.load("linux-armv7-generic").numba_available and dp.load("raspberry-pi-4").numba_available


# ----------------------------------------------------------------------------- user profiles
def _write(path, obj):
    path.write_text(json.dumps(obj) if not isinstance(obj, str) else obj, encoding="utf-8")
    return path


def test_a_user_profile_extends_a_shipped_one(tmp_path):
    base = dp.load("raspberry-pi-4")
    f = _write(tmp_path / "kiosk.json", {
        "extends": "raspberry-pi-4", "description": "Our kiosk: Pi 4 with 8 GB and a fan", "memory_mb": 8192,
        "cores": 4, "threads": 3, "budgets": {"latency_ms": {"face": 66}},
        "sources": {"memory_mb": "our bill of materials, 8 GB model"}})
    p = dp.load(f)
    assert p.name == "kiosk" and p.extends == "raspberry-pi-4" and p.source_file == f.resolve()
    assert p.memory_mb == 8192 and p.threads == 3
    assert p.budgets.latency_ms["face"] == 66 and p.budgets.latency_ms["speech"] == base.budgets.latency_ms["speech"]
    assert p.budgets.ram_mb == base.budgets.ram_mb and p.runtimes == base.runtimes  # deep merge keeps the rest
    assert p.sources["memory_mb"] == "our bill of materials, 8 GB model"
    assert str(f.resolve()) in p.sources["cores"]  # a value set without its own source is attributed to the file
    assert p.sources["clock_ghz"] == base.sources["clock_ghz"] and not p.detect  # detect rules are not inherited
    # a chain: a file extending a user file by relative path
    g = _write(tmp_path / "kiosk-lite.json", {"extends": "kiosk.json", "name": "kiosk-lite", "threads": 2})
    q = dp.load(str(g))
    assert q.name == "kiosk-lite" and q.threads == 2 and q.memory_mb == 8192 and q.extends == "kiosk.json"
    # the README's example is a valid file
    readme = (dp.PROFILES_DIR.parent / "README.md").read_text()
    example = re.search(r"## Inheriting a profile\s+```json\n(.*?)```", readme, re.S).group(1)
    assert dp.load(_write(tmp_path / "readme.json", example)).memory_mb == 8192


def _bad(tmp_path, content, name="bad.json"):
    path = _write(tmp_path / name, content)
    with pytest.raises(ProfileError) as exc:
        dp.load(path)
    msg = str(exc.value)
    assert str(path.resolve()) in msg or str(path) in msg, msg
    return msg


def test_bad_files_name_the_file_and_the_key(tmp_path):
    ok = {"extends": "raspberry-pi-4"}
    msg = _bad(tmp_path, {**ok, "thread": 2})
    assert "unknown key 'thread'" in msg and "did you mean 'threads'" in msg
    msg = _bad(tmp_path, {**ok, "budgets": {"latency_ms": {"faces": 30}}})
    assert "unknown key 'budgets.latency_ms.faces'" in msg and "'face'" in msg
    msg = _bad(tmp_path, {**ok, "threads": "four"})
    assert "key 'threads': expected an integer >= 1, got \"four\"" in msg
    msg = _bad(tmp_path, {**ok, "precision": {"face": "int4"}})
    assert "key 'precision.face': expected one of fp32, fp16, int8, got \"int4\"" in msg
    msg = _bad(tmp_path, {**ok, "runtimes": [{"runtime": "tensorflow"}]})
    assert "key 'runtimes[0].runtime': expected one of onnxruntime, litert, coreml" in msg
    msg = _bad(tmp_path, {**ok, "runtimes": [{"runtime": "litert", "delegate": "hexagon"}]})
    assert "key 'runtimes[0].delegate'" in msg
    msg = _bad(tmp_path, {**ok, "numba_available": "yes"})
    assert "key 'numba_available': expected true or false" in msg
    msg = _bad(tmp_path, {**ok, "threads": 9})
    assert "key 'threads'" in msg and "at most 'cores' (4)" in msg
    whole = dp.load("raspberry-pi-4").to_dict()
    for k in ("source_file", "detect"):
        whole.pop(k)
    del whole["budgets"]["ram_mb"]
    msg = _bad(tmp_path, {**whole, "extends": None, "name": "bad"})
    assert "missing required key 'budgets.ram_mb'" in msg
    whole["budgets"]["ram_mb"] = 512
    del whole["sustained_gmacs"]
    msg = _bad(tmp_path, {k: v for k, v in whole.items() if k != "extends"})
    assert "missing required key 'sustained_gmacs'" in msg
    msg = _bad(tmp_path, {"extends": "raspberry-pi-44"})
    assert "key 'extends'" in msg and "unknown profile 'raspberry-pi-44'" in msg and "raspberry-pi-4" in msg
    msg = _bad(tmp_path, "{\"extends\": \"raspberry-pi-4\",}")
    assert "not valid JSON" in msg and "line 1" in msg
    msg = _bad(tmp_path, "[1, 2]")
    assert "JSON object" in msg


def test_an_extends_cycle_is_an_error(tmp_path):
    _write(tmp_path / "a.json", {"extends": "b.json"})
    _write(tmp_path / "b.json", {"extends": "a.json"})
    with pytest.raises(ProfileError, match=r"key 'extends': cycle .*a\.json -> .*b\.json -> .*a\.json"):
        dp.load(tmp_path / "a.json")
    _write(tmp_path / "self.json", {"extends": "self.json"})
    with pytest.raises(ProfileError, match=r"self\.json: key 'extends': cycle"):
        dp.load(tmp_path / "self.json")


def test_unknown_names_and_missing_files():
    with pytest.raises(ProfileError, match=r"unknown profile 'toaster'.*raspberry-pi-4"):
        dp.load("toaster")
    with pytest.raises(ProfileError, match="no such profile file"):
        dp.load("nowhere/pi.json")
    with pytest.raises(ProfileError, match="a profile is a shipped name"):
        dp.load(42)
    assert dp.load(dp.load("jetson-nano")) is dp.load("jetson-nano")


# ----------------------------------------------------------------------------- detection
@pytest.mark.parametrize("root, expected", [
    ("raspberry-pi-4", "raspberry-pi-4"),
    ("raspberry-pi-5", "raspberry-pi-5"),
    ("raspberry-pi-zero-2w", "raspberry-pi-zero-2w"),
    ("jetson-nano", "jetson-nano"),
    ("jetson-orin-nano", "jetson-orin-nano"),
    ("x86-64-desktop", "x86-64-desktop"),
])
def test_detection_on_the_real_files_of_each_board(root, expected):
    d = dp.detect(ROOTS / root, **NO_EXTRAS)
    assert isinstance(d, dp.Detection) and d.profile is dp.load(expected)
    assert any(f"architecture {d.profile.arch}" in r for r in d.reasons)
    if expected in HARDWARE:
        assert any("device-tree model" in r for r in d.reasons)
        assert not [n for n in d.notes if "generic" in n]
    json.dumps(d.to_dict())


def test_detection_details():
    # the model file ends with a NUL byte, which is not part of the model
    assert (ROOTS / "raspberry-pi-4/proc/device-tree/model").read_bytes().endswith(b"\x00")
    d = dp.detect(ROOTS / "raspberry-pi-4", **NO_EXTRAS)
    assert d.facts["device_tree_model"] == "Raspberry Pi 4 Model B Rev 1.4"
    assert d.facts["compatible"] == ("raspberrypi,4-model-b", "brcm,bcm2711")
    # the Pi prefers LiteRT: without it, the CPU fallback is noted
    assert any("onnxruntime CPUExecutionProvider" in n and "litert + xnnpack" in n for n in d.notes)
    assert not dp.detect(ROOTS / "raspberry-pi-4", providers=("CPUExecutionProvider",), litert=True).notes
    # Jetson: the L4T release names the JetPack; the Orin's model is read from /sys (no /proc/device-tree there)
    nano = dp.detect(ROOTS / "jetson-nano", **NO_EXTRAS)
    assert nano.facts["l4t"] == "32.7.1" and any("JetPack 4" in r for r in nano.reasons)
    assert any("TensorrtExecutionProvider" in n for n in nano.notes)  # falls back to the CPU, and says so
    orin = dp.detect(ROOTS / "jetson-orin-nano", providers=("TensorrtExecutionProvider", "CPUExecutionProvider"))
    assert orin.facts["l4t"] == "36.4.3" and any("/sys/firmware/devicetree/base/model" in r for r in orin.reasons)
    assert not orin.notes
    # a fake root says nothing about the runtimes unless told
    assert dp.detect(ROOTS / "raspberry-pi-5").facts["onnxruntime_providers"] is None


def test_unknown_aarch64_falls_back_to_the_generic_profile_with_a_note():
    d = dp.detect(ROOTS / "unknown-aarch64", **NO_EXTRAS)
    assert d.profile.name == "linux-aarch64-generic"
    assert any("unknown aarch64 hardware" in n and "linux-aarch64-generic" in n for n in d.notes)


def test_a_pi_on_32_bit_raspberry_pi_os_gets_the_armv7_profile_with_a_note():
    d = dp.detect(ROOTS / "raspberry-pi-zero-2w-armhf", **NO_EXTRAS)
    assert d.profile.name == "linux-armv7-generic" and d.facts["arch"] == "armv7l"
    assert any("raspberry-pi-zero-2w" in n and "64-bit Raspberry Pi OS" in n for n in d.notes)


def test_an_unknown_jetson_and_a_32_bit_userland(tmp_path):
    (tmp_path / "proc/device-tree").mkdir(parents=True)
    (tmp_path / "proc/cpuinfo").write_text((ROOTS / "jetson-nano/proc/cpuinfo").read_text())
    (tmp_path / "proc/device-tree/model").write_bytes(b"NVIDIA Jetson AGX Orin Developer Kit\x00")
    d = dp.detect(tmp_path, **NO_EXTRAS)
    assert d.profile.name == "linux-aarch64-generic" and any("jetson-orin-nano" in n for n in d.notes)
    # a 64-bit kernel under a 32-bit (armhf) userland: the userland decides
    (tmp_path / "proc/device-tree/model").write_bytes(b"Raspberry Pi 4 Model B Rev 1.4\x00")
    (tmp_path / "usr/lib/arm-linux-gnueabihf").mkdir(parents=True)
    d = dp.detect(tmp_path, **NO_EXTRAS)
    assert d.profile.name == "linux-armv7-generic" and any("raspberry-pi-4" in n for n in d.notes)


def test_compatible_alone_and_a_32_bit_process_on_a_64_bit_kernel(tmp_path):
    (tmp_path / "proc/device-tree").mkdir(parents=True)
    (tmp_path / "proc/device-tree/compatible").write_bytes(b"raspberrypi,5-model-b\x00brcm,bcm2712\x00")
    cpu = (ROOTS / "raspberry-pi-5/proc/cpuinfo").read_text()
    (tmp_path / "proc/cpuinfo").write_text("\n".join(ln for ln in cpu.splitlines() if not ln.startswith("Model")))
    d = dp.detect(tmp_path, **NO_EXTRAS)
    assert d.profile.name == "raspberry-pi-5" and any("compatible lists 'raspberrypi,5-model-b'" in r
                                                      for r in d.reasons)
    # what a 32-bit process reads from an AArch64 kernel (hrw/arm-socs-table issue #6, a Pi 3)
    (tmp_path / "proc/cpuinfo").write_text(cpu.replace("BogoMIPS", "model name\t: ARMv8 Processor rev 1 (v8l)\n"
                                                                   "BogoMIPS"))
    assert dp.detect(tmp_path, **NO_EXTRAS).profile.name == "linux-armv7-generic"


def test_android_and_ios_markers(tmp_path):
    d = dp.detect(ROOTS / "android", **NO_EXTRAS)
    assert d.profile.name == "android-arm64" and d.facts["arch"] == "aarch64"
    assert any("build.prop" in r for r in d.reasons)
    d = dp.detect(tmp_path, environ={"ANDROID_ROOT": "/system"}, **NO_EXTRAS)
    assert d.profile.name == "android-arm64" and any("ANDROID_ROOT" in r for r in d.reasons)
    assert dp.detect(tmp_path, sys_platform="ios", **NO_EXTRAS).profile.name == "ios-arm64"
    with pytest.raises(ProfileError, match="cannot tell the architecture"):
        dp.detect(tmp_path, **NO_EXTRAS)


def test_detection_of_this_machine():
    d = dp.detect()
    assert d.profile.name in EXPECTED and d.reasons


# ----------------------------------------------------------------------------- CLI
def test_cli_list_show_detect(capsys):
    assert main(["profiles", "list"]) == 0
    out = capsys.readouterr().out
    assert all(n in out for n in EXPECTED) and "litert + xnnpack" in out
    assert main(["profiles", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted(r["name"] for r in rows) == sorted(EXPECTED)
    assert main(["profiles", "show", "jetson-orin-nano"]) == 0
    out = capsys.readouterr().out
    assert "1. onnxruntime TensorrtExecutionProvider" in out and "GMAC/s" in out and "https://" in out
    assert main(["profiles", "show", "raspberry-pi-5", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["name"] == "raspberry-pi-5" and shown["sources"]["cores"]
    assert main(["profiles", "detect", "--root", str(ROOTS / "raspberry-pi-4")]) == 0
    assert capsys.readouterr().out.startswith("raspberry-pi-4: ")
    assert main(["profiles", "detect", "--root", str(ROOTS / "jetson-nano"), "--json"]) == 0
    det = json.loads(capsys.readouterr().out)
    assert det["profile"] == "jetson-nano" and det["facts"]["l4t"] == "32.7.1"


def test_cli_errors(capsys, tmp_path):
    assert main(["profiles", "show", "toaster"]) == 1
    err = capsys.readouterr()
    assert "unknown profile 'toaster'" in err.err and not err.out
    bad = _write(tmp_path / "bad.json", {"extends": "raspberry-pi-4", "thread": 1})
    assert main(["profiles", "show", str(bad), "--json"]) == 1
    err = capsys.readouterr()
    assert "unknown key 'thread'" in err.err and not err.out
    assert main(["profiles"]) == 2
    assert "list" in capsys.readouterr().err
    args = main.__globals__["_build_parser"]().parse_args(["profiles", "check", "m.onnx", "--profile", "x",
                                                             "--threads", "2", "--json"])
    assert (args.model, args.profile, args.threads, args.json) == ("m.onnx", "x", 2, True)


# ----------------------------------------------------------------------------- packaging
def test_the_wheel_ships_the_profiles(tmp_path):
    """The data files are package data: a wheel built from the sources loads every profile from its own copy."""
    import shutil
    import subprocess
    import sys
    import zipfile

    repo = Path(__file__).resolve().parents[1]
    src = tmp_path / "src"
    src.mkdir()
    for item in ("setup.py", "README.md", "sdk", "native_kernels", "exporters", "device_profiles"):
        if (repo / item).is_dir():
            shutil.copytree(repo / item, src / item, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(repo / item, src / item)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(src)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    wheel = next(tmp_path.glob("affectedge-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert {f"affectedge/device_profiles/data/{n}.json" for n in EXPECTED} <= set(names)
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    code = ("from affectedge import device_profiles as d; print(len([d.load(n) for n in d.list_profiles()]), "
            "d.PROFILES_DIR)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                       env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr[-2000:]
    count, where = r.stdout.split()
    assert int(count) == len(EXPECTED) and where.startswith(str(tmp_path / "site"))
