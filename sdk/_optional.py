"""Import optional dependencies where they are needed, naming the extra."""

import contextlib
import importlib
import platform

from .errors import MissingExtraError, SensorError

__all__ = ["require"]


def require(module: str, extra: str, purpose: str = ""):
    """Import ``module`` or raise MissingExtraError naming ``affectedge[extra]``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        what = f" for {purpose}" if purpose else ""
        raise MissingExtraError(
            f"{module!r} is needed{what} but is not installed ({exc}). "
            f"Install it with: pip install 'affectedge[{extra}]'"
        ) from exc


def require_brainflow():
    """(board_shim, data_filter, ml_model) with BrainFlow's native libraries loadable.

    BrainFlow 5.23 finds its shared libraries with
    ``importlib.resources.files(<module name>)``, which Python < 3.12 refuses
    for a module (not a package), and then falls back to ``pkg_resources``,
    which setuptools >= 81 no longer ships. Pointing the modules' ``files`` at
    the ``brainflow`` package resolves the same paths on every version.
    """
    import importlib.resources

    mods = []
    for name in ("brainflow.board_shim", "brainflow.data_filter", "brainflow.ml_model"):
        mod = require(name, "eeg", "BrainFlow boards, files and metrics")
        if getattr(mod, "files", None) is not None and not getattr(mod, "_affectedge_patched", False):
            mod.files = lambda _name, _f=importlib.resources.files: _f("brainflow")
            mod._affectedge_patched = True
        mods.append(mod)
    return tuple(mods)


BRAINFLOW_BUILD_DOCS = "https://github.com/brainflow-dev/brainflow/blob/master/docs/BuildBrainFlow.rst"


@contextlib.contextmanager
def brainflow_native(what):
    """Turn BrainFlow's native library failing to load (ctypes OSError) into a SensorError that says why.

    BrainFlow's PyPI wheel carries its Linux libraries for x86-64 only; on ARM
    Linux (Raspberry Pi, Jetson) the first native call fails with "cannot open
    shared object file" (seen in ``make arm64-check``).
    """
    try:
        yield
    except OSError as exc:
        raise SensorError(
            f"{what}: BrainFlow's native library cannot load on this machine ({platform.system()} "
            f"{platform.machine()}): {exc}. BrainFlow's PyPI wheel carries Linux libraries for x86-64 only; on ARM "
            f"Linux build BrainFlow's core from source and install its python_package ({BRAINFLOW_BUILD_DOCS}), "
            "or read a recording instead (--eeg FILE.csv, affectedge.sensors.EEGRecordingSource)"
        ) from None
