"""Import optional dependencies where they are needed, naming the extra."""

import importlib

from .errors import MissingExtraError

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
