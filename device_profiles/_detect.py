"""Which profile this machine is, from what the OS tells.

:func:`detect` reads, under ``root`` (``/`` or a fake root for tests):

* ``proc/device-tree/model`` (else ``sys/firmware/devicetree/base/model``, else the ``Model`` line of
  ``proc/cpuinfo``) and ``proc/device-tree/compatible``: the board (Raspberry Pi, Jetson). Device-tree
  strings end with a NUL byte; ``compatible`` is a NUL-separated list.
* ``etc/nv_tegra_release``: a Jetson and its L4T release (JetPack).
* the architecture: ``platform.machine()`` and the interpreter's pointer size when ``root`` is ``/`` (a 64-bit
  kernel can run a 32-bit Raspberry Pi OS userland, whose wheels are armhf); under a fake root, from
  ``proc/cpuinfo`` (``model name : ARMv7 ...``, ``CPU architecture: 8``, x86 ``flags ... lm``) or
  ``ro.product.cpu.abi`` in ``system/build.prop``.
* Android (``system/build.prop``, ``$ANDROID_ROOT``) and iOS (``sys.platform == "ios"``) markers.
* which onnxruntime providers and whether LiteRT is importable (``providers=`` / ``litert=`` override them).

The shipped profiles' ``detect`` rules (device-tree model prefixes, compatible strings) pick the board; a
board whose profile assumes another architecture than the OS runs (a Pi 4 on 32-bit Raspberry Pi OS), and
hardware with no profile, fall back to the generic profile of the architecture, with a note.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import re
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from affectedge.errors import ProfileError

from ._profile import Profile, list_profiles, load

__all__ = ["Detection", "detect"]

GENERIC = {"aarch64": "linux-aarch64-generic", "armv7l": "linux-armv7-generic", "x86_64": "x86-64-desktop"}
_ARCH_ALIASES = {"arm64": "aarch64", "aarch64": "aarch64", "armv8l": "armv7l", "armv7l": "armv7l",
                 "armv7": "armv7l", "armhf": "armv7l", "armv6l": "armv6l", "x86_64": "x86_64", "amd64": "x86_64",
                 "i386": "x86", "i686": "x86", "x86": "x86"}
_ABI = {"arm64-v8a": "aarch64", "armeabi-v7a": "armv7l", "x86_64": "x86_64", "x86": "x86"}
# JetPack for an L4T major release (NVIDIA JetPack archive, https://developer.nvidia.com/embedded/jetpack-archive).
_JETPACK = {"32": "JetPack 4.x", "34": "JetPack 5.0 developer preview", "35": "JetPack 5.x", "36": "JetPack 6.x"}


@dataclass(frozen=True)
class Detection:
    """The detected :class:`Profile`, the reasons it was chosen, notes (fallbacks, caveats), and the facts read."""

    profile: Profile
    reasons: tuple
    notes: tuple
    facts: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))

    def to_dict(self) -> dict:
        return {"profile": self.profile.name, "description": self.profile.description,
                "reasons": list(self.reasons), "notes": list(self.notes),
                "facts": {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.facts.items()}}


# ----------------------------------------------------------------------------- reading the OS
def _read_bytes(root: Path, rel: str):
    try:
        return (root / rel).read_bytes()
    except OSError:
        return None


def _dt_string(raw) -> str | None:
    """A device-tree string property: NUL-terminated (possibly padded); None when absent or empty."""
    if raw is None:
        return None
    text = raw.split(b"\x00", 1)[0].decode("utf-8", "replace").strip()
    return text or None


def _dt_list(raw) -> tuple:
    if raw is None:
        return ()
    return tuple(s.decode("utf-8", "replace").strip() for s in raw.split(b"\x00") if s.strip())


def _cpuinfo(text: str) -> dict:
    """Key -> list of values of ``/proc/cpuinfo`` (``key : value`` lines, tabs or spaces)."""
    out = {}
    for line in text.splitlines():
        if ":" not in line:
            continue
        k, v = line.split(":", 1)
        out.setdefault(k.strip().lower(), []).append(v.strip())
    return out


def _arch_from_cpuinfo(info: dict) -> str | None:
    names = " ".join(info.get("model name", []) + info.get("processor", []))
    if re.search(r"ARMv7|\(v7l\)|\(v8l\)", names):
        # "(v8l)": an AArch64 kernel shows a 32-bit process this "model name"; the userland is armhf
        return "armv7l"
    if re.search(r"ARMv6|\(v6l\)", names):
        return "armv6l"
    if "vendor_id" in info or "flags" in info:
        flags = " ".join(info.get("flags", [])).split()
        return "x86_64" if "lm" in flags or not flags else "x86"
    arch = info.get("cpu architecture", [])
    if arch and arch[0].startswith("8"):
        # An AArch64 kernel: Features list asimd/fp. (An AArch32 kernel on ARMv8 shows "model name: ARMv7/ARMv8
        # Processor ... (v7l/v8l)" instead and is caught above.)
        return "aarch64"
    if arch and arch[0].startswith("7"):
        return "armv7l"
    return None


def _build_prop(raw) -> dict:
    out = {}
    if raw is None:
        return out
    for line in raw.decode("utf-8", "replace").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def _live_arch() -> str:
    m = _ARCH_ALIASES.get(platform.machine().lower(), platform.machine().lower())
    if m == "aarch64" and struct.calcsize("P") == 4:
        return "armv7l"  # a 32-bit userland (armhf) on a 64-bit kernel: wheels and runtimes are 32-bit
    if m == "x86_64" and struct.calcsize("P") == 4:
        return "x86"
    return m


def _providers_here():
    if importlib.util.find_spec("onnxruntime") is None:
        return ()
    try:
        import onnxruntime as ort
    except Exception:  # noqa: BLE001 -- a broken install means no providers, not a crash in detection
        return ()
    return tuple(ort.get_available_providers())


def _litert_here():
    for mod in ("ai_edge_litert", "tflite_runtime"):
        try:
            if importlib.util.find_spec(mod) is not None:
                return True
        except (ImportError, ValueError):
            continue
    return False


def _l4t(text: str | None):
    """("36.4.3", "# R36 (release), REVISION: 4.3, ...") from nv_tegra_release, or (None, None)."""
    if not text:
        return None, None
    first = text.strip().splitlines()[0]
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", first)
    return (f"{m.group(1)}.{m.group(2)}" if m else None), first


# ----------------------------------------------------------------------------- matching
def _matches(profile: Profile, model: str | None, model_file: str, compatible: tuple, compat_file: str):
    """Why ``profile``'s detect rules match (a reason string), or None."""
    rules = profile.detect
    for prefix in rules.get("device_tree_model", ()):
        if model and model.startswith(prefix):
            return f"device-tree model {model!r} starts with {prefix!r} ({model_file})"
    for comp in rules.get("compatible", ()):
        for tok in compatible:
            if tok == comp or tok.startswith(comp + "-"):
                return f"device-tree compatible lists {tok!r} ({compat_file})"
    return None


def _shipped_with_rules():
    return [p for p in (load(n) for n in list_profiles()) if p.detect]


def detect(root="/", *, providers=None, litert=None, environ=None, sys_platform=None) -> Detection:
    """The :class:`Detection` of the machine under ``root`` (see the module doc).

    ``providers`` (onnxruntime provider names), ``litert`` (bool), ``environ`` and ``sys_platform`` replace what
    this process would see (for tests and fake roots); by default they are read here, and only when ``root`` is
    ``/`` for the environment and platform markers.
    """
    root = Path(root)
    try:
        live = root.resolve() == Path("/").resolve()
    except OSError:
        live = False
    if environ is None:
        environ = os.environ if live else {}
    if sys_platform is None:
        sys_platform = sys.platform if live else "linux"
    reasons, notes = [], []

    model_raw = _read_bytes(root, "proc/device-tree/model")
    model_file = "/proc/device-tree/model"
    if model_raw is None:
        model_raw = _read_bytes(root, "sys/firmware/devicetree/base/model")
        model_file = "/sys/firmware/devicetree/base/model"
    model = _dt_string(model_raw)
    compat_raw = _read_bytes(root, "proc/device-tree/compatible")
    compat_file = "/proc/device-tree/compatible"
    if compat_raw is None:
        compat_raw = _read_bytes(root, "sys/firmware/devicetree/base/compatible")
        compat_file = "/sys/firmware/devicetree/base/compatible"
    compatible = _dt_list(compat_raw)
    cpu_raw = _read_bytes(root, "proc/cpuinfo")
    info = _cpuinfo(cpu_raw.decode("utf-8", "replace")) if cpu_raw else {}
    cpu_model = re.findall(r"^Model\s*:\s*(.+?)\s*$", cpu_raw.decode("utf-8", "replace"), re.M) if cpu_raw else []
    if model is None and cpu_model:  # Raspberry Pi kernels add "Model : ..." (x86's lower-case "model" is a number)
        model, model_file = cpu_model[-1], "/proc/cpuinfo (Model line)"
    tegra_raw = _read_bytes(root, "etc/nv_tegra_release")
    l4t, l4t_line = _l4t(tegra_raw.decode("utf-8", "replace") if tegra_raw else None)
    build_prop_raw = _read_bytes(root, "system/build.prop")
    prop = _build_prop(build_prop_raw)

    # -- architecture
    if live:
        arch, arch_why = _live_arch(), f"platform.machine() = {platform.machine()!r}, " \
                                       f"{struct.calcsize('P') * 8}-bit interpreter"
    else:
        arch = _arch_from_cpuinfo(info) if info else None
        arch_why = f"{root}/proc/cpuinfo" if arch else None
        if arch is None and prop.get("ro.product.cpu.abi") in _ABI:
            arch, arch_why = _ABI[prop["ro.product.cpu.abi"]], f"ro.product.cpu.abi in {root}/system/build.prop"
        # The userland decides which wheels install: a Debian-style root says it by its multiarch library folder
        # (a 64-bit kernel's cpuinfo under a 32-bit Raspberry Pi OS still reads AArch64).
        for folder, userland in (("usr/lib/aarch64-linux-gnu", "aarch64"), ("usr/lib/arm-linux-gnueabihf", "armv7l"),
                                 ("usr/lib/x86_64-linux-gnu", "x86_64")):
            if (root / folder).is_dir():
                if userland != arch:
                    arch, arch_why = userland, f"{root}/{folder} (the userland's libraries)"
                break

    # What this Python can run says something about the machine only when it is the machine (or when told).
    runtimes_known = live or providers is not None or litert is not None
    avail = (_providers_here() if providers is None else tuple(providers)) if runtimes_known else None
    has_litert = (_litert_here() if litert is None else bool(litert)) if runtimes_known else None
    facts = {"root": str(root), "arch": arch, "device_tree_model": model, "compatible": compatible,
             "l4t": l4t, "onnxruntime_providers": avail, "litert": has_litert}

    def done(name):
        prof = load(name)
        if runtimes_known:
            _runtime_notes(prof, avail, has_litert, notes)
        return Detection(prof, tuple(reasons), tuple(notes), MappingProxyType(facts))

    # -- mobile markers
    if sys_platform == "ios":
        reasons.append("sys.platform is 'ios'")
        return done("ios-arm64")
    android_markers = []
    if build_prop_raw is not None:
        android_markers.append(f"{root / 'system/build.prop'} exists")
    if environ.get("ANDROID_ROOT"):
        android_markers.append(f"ANDROID_ROOT={environ['ANDROID_ROOT']}")
    if sys_platform == "android":
        android_markers.append("sys.platform is 'android'")
    if android_markers:
        reasons.append("Android: " + "; ".join(android_markers))
        if prop.get("ro.product.model"):
            reasons.append(f"device {prop.get('ro.product.manufacturer', '')} {prop['ro.product.model']}".strip())
        if arch not in (None, "aarch64"):
            notes.append(f"this Android runs on {arch}, not arm64; android-arm64's runtimes and figures assume "
                         "an arm64 phone (an emulator?)")
        return done("android-arm64")

    # -- boards with a profile
    if arch:
        reasons.append(f"architecture {arch} ({arch_why})")
    if l4t_line:
        jp = _JETPACK.get(l4t.split(".")[0], "an unknown JetPack") if l4t else "an unknown JetPack"
        reasons.append(f"/etc/nv_tegra_release: {l4t_line!r} (L4T {l4t or '?'}, {jp})")
    board = None
    for prof in _shipped_with_rules():
        why = _matches(prof, model, model_file, compatible, compat_file)
        if why:
            board = prof
            reasons.append(why)
            break
    if board is not None:
        if arch is None:
            notes.append(f"the architecture could not be read under {root}; assumed {board.arch}, the "
                         f"{board.name} profile's")
            return done(board.name)
        if arch == board.arch:
            return done(board.name)
        generic = GENERIC.get(arch)
        if generic is None:
            raise ProfileError(_no_profile(arch, root))
        notes.append(f"{model or board.name}: the OS here is {arch}, but the {board.name} profile assumes "
                     f"{board.arch}, so {generic} is used. " + _arch_hint(board, arch))
        return done(generic)

    # -- no board profile: the generic profile of the architecture
    if arch is None:
        raise ProfileError(f"cannot tell the architecture of {root}: no readable proc/cpuinfo, device tree or "
                           "system/build.prop there; point --root at a root file system, or pass --profile NAME")
    generic = GENERIC.get(arch)
    if generic is None:
        raise ProfileError(_no_profile(arch, root))
    if model or l4t_line or compatible:
        what = model or (compatible[0] if compatible else "an NVIDIA Jetson")
        jetson = bool(l4t_line) or any(c.startswith("nvidia,") for c in compatible) or what.startswith("NVIDIA")
        hint = (' For a Jetson, jetson-orin-nano or jetson-nano is the nearest profile: write a profile file with '
                '"extends" set to one of them.' if jetson else
                f' Write a profile file with "extends": "{generic}" to describe it.')
        notes.append(f"no profile ships for {what}: using the generic {generic} profile with conservative "
                     f"figures.{hint}")
    elif arch != "x86_64":
        notes.append(f"unknown {arch} hardware: using the generic {generic} profile with conservative figures")
    gpu_eps = [p for p in (avail or ()) if p in ("TensorrtExecutionProvider", "CUDAExecutionProvider")]
    if gpu_eps and arch == "aarch64":
        notes.append(f"this onnxruntime offers {', '.join(gpu_eps)}: on a Jetson, a profile extending "
                     "jetson-orin-nano (or jetson-nano) uses them; the generic profile runs on the CPU")
    if arch == "x86_64" and info.get("model name"):
        reasons.append(f"CPU {info['model name'][0]!r}")
    if sys_platform == "darwin":
        notes.append(f"macOS ({arch}): {generic} is the nearest profile (its runtime order and thread count apply)")
    return done(generic)


def _arch_hint(board: Profile, arch: str) -> str:
    if arch == "armv7l":
        return ("32-bit Raspberry Pi OS has no llvmlite/numba or ai-edge-litert wheels (the kernels use their "
                "NumPy twins; LiteRT needs tflite-runtime with numpy<2); install 64-bit Raspberry Pi OS to use "
                f"the {board.name} profile")
    return f"install a {board.arch} OS to use the {board.name} profile"


def _no_profile(arch, root) -> str:
    return (f"no shipped profile for the {arch} architecture found under {root} (profiles: "
            f"{', '.join(list_profiles())}); write a profile file and pass it with --profile FILE")


def _runtime_notes(prof: Profile, avail: tuple, has_litert: bool, notes: list):
    """Say which of the profile's runtime choices this Python can use (the backend factory falls back in order)."""
    usable = []
    for rc in prof.runtimes:
        if rc.runtime == "onnxruntime":
            ok = bool(avail) and rc.provider in avail
        elif rc.runtime == "litert":
            ok = has_litert
        else:
            ok = False
        usable.append((rc, ok))
    first_ok = next((rc for rc, ok in usable if ok), None)
    if first_ok is None:
        notes.append(f"none of {prof.name}'s runtimes is usable in this Python ("
                     + ", ".join(rc.label for rc in prof.runtimes) + "): install 'affectedge[onnx]' or "
                     "'affectedge[tflite]'")
    elif first_ok is not prof.runtimes[0]:
        skipped = [rc.label for rc, ok in usable[:usable.index((first_ok, True))]]
        notes.append(f"models will run on {first_ok.label}: not available here: {', '.join(skipped)}")
