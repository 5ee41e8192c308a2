"""Device profiles: Jetson, Raspberry Pi, mobile and desktop, as data.

A profile says what works on a device: its CPU, memory and accelerators, the
runtime preference order (with onnxruntime provider or LiteRT delegate names),
threads, the precision per modality, budgets, capture defaults, whether Numba
runs there, known constraints, and the sustained throughput used for latency
estimates, each figure from outside with its source::

    from affectedge import device_profiles

    device_profiles.list_profiles()          # ['android-arm64', ..., 'x86-64-desktop']
    p = device_profiles.load("raspberry-pi-4")   # or a path to a user profile file
    p.runtimes[0]                            # RuntimeChoice(runtime='litert', provider=None, delegate='xnnpack')
    device_profiles.detect().profile.name    # the profile of this machine

The shipped profiles are ``data/<name>.json`` (:data:`PROFILES_DIR`); the
schema is documented in ``device_profiles/README.md``. A user profile can live
anywhere and inherit a shipped one with ``"extends": "raspberry-pi-4"``.
"""

from ._profile import PROFILES_DIR, Budgets, Capture, Profile, RuntimeChoice, list_profiles, load

__all__ = sorted(["Budgets", "Capture", "Detection", "PROFILES_DIR", "Profile", "RuntimeChoice", "detect",
                  "list_profiles", "load"])

for _obj in (Budgets, Capture, Profile, RuntimeChoice, list_profiles, load):
    _obj.__module__ = __name__
del _obj


def detect(root="/", *, providers=None, litert=None, environ=None, sys_platform=None):
    """The :class:`Detection` (profile, reasons, notes) of the machine under ``root``; see :mod:`._detect`."""
    from ._detect import detect as _detect

    return _detect(root, providers=providers, litert=litert, environ=environ, sys_platform=sys_platform)


def __getattr__(name):
    if name == "Detection":
        from ._detect import Detection

        Detection.__module__ = __name__
        return Detection
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return __all__
