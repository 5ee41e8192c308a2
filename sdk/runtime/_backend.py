"""Applying a device profile: which runtime, provider or delegate, threads and artifact a model runs with.

:func:`choose_backend` walks the profile's runtime preference order
(``profile.runtimes``: e.g. onnxruntime TensorRT -> CUDA -> CPU on a Jetson,
LiteRT + XNNPACK then onnxruntime CPU on a Raspberry Pi) and takes the first
choice that is both *available here* (the provider is in this onnxruntime
build, the LiteRT interpreter imports) and *has an artifact* (a ``.onnx`` /
``.tflite`` file next to the model's card, in the profile's preferred
precision for the model's modality when the exporters produced one, else the
card's fp32 file). Every choice skipped is a reason in the result and one
warning on the ``affectedge`` logger, so a user can see why a model runs where
it does. The choice is returned as a :class:`BackendChoice` and
``models.load(..., profile=...)`` / ``affectedge run --profile`` apply it.
"""

import importlib.util
import logging
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["BackendChoice", "choose_backend", "resolve_profile"]

log = logging.getLogger("affectedge")

_MODALITY = {"speech-mfcc-silence": "speech", "face-blendshapes": "face", "eeg-deap-de": "eeg",
             "eeg-muse-bands": "eeg"}
_SUFFIX = {"onnxruntime": ".onnx", "litert": ".tflite", "coreml": ".onnx"}


@dataclass(frozen=True)
class BackendChoice:
    """What a model runs with under a profile, and why."""

    profile: str
    runtime: str
    providers: tuple
    delegate: str
    threads: int
    precision: str
    artifact: str
    reasons: tuple = ()
    warnings: tuple = field(default=())

    @property
    def backend(self):
        return "litert" if self.runtime == "litert" else "onnxruntime"

    def to_dict(self):
        return {"profile": self.profile, "runtime": self.runtime, "providers": list(self.providers),
                "delegate": self.delegate, "threads": self.threads, "precision": self.precision,
                "artifact": self.artifact, "reasons": list(self.reasons), "warnings": list(self.warnings)}


def resolve_profile(profile):
    """A Profile from a Profile, a name, a path, or "auto" (detected on this machine)."""
    from affectedge import device_profiles

    if profile is None or hasattr(profile, "runtimes"):
        return profile
    if str(profile) == "auto":
        return device_profiles.detect().profile
    return device_profiles.load(profile)


def _available_providers():
    if importlib.util.find_spec("onnxruntime") is None:
        return ()
    import onnxruntime as ort

    return tuple(ort.get_available_providers())


def _litert_available():
    try:
        return importlib.util.find_spec("ai_edge_litert") is not None
    except (ImportError, ValueError):
        return False


def _artifacts(card_dir, card_file, runtime, precision):
    """Candidate files for a runtime: <stem>.<precision><suffix>, <stem><suffix> (fp32), in that order."""
    suffix = _SUFFIX[runtime]
    stem = Path(card_file).stem
    out = []
    if precision and precision != "fp32":
        out += [(card_dir / f"{stem}.{precision}{suffix}", precision)]
    out += [(card_dir / f"{stem}.fp32{suffix}", "fp32"), (card_dir / f"{stem}{suffix}", "fp32")]
    return [(p, prec) for p, prec in out if p.is_file()]


def choose_backend(card, card_dir, profile, *, providers_available=None, litert_available=None):
    """The :class:`BackendChoice` for a model (its card and folder) under ``profile`` (see module doc)."""
    profile = resolve_profile(profile)
    card_dir = Path(card_dir)
    modality = _MODALITY.get(card.input.get("pipeline"), "speech")
    want = dict(profile.precision).get(modality, "fp32")
    avail = _available_providers() if providers_available is None else tuple(providers_available)
    has_litert = _litert_available() if litert_available is None else bool(litert_available)
    reasons, warnings = [], []
    for rc in profile.runtimes:
        label = rc.runtime + (f" {rc.provider}" if rc.provider else "") + (f" + {rc.delegate}" if rc.delegate else "")
        if rc.runtime == "coreml":
            reasons.append(f"{label}: Core ML is not available on this platform")
            continue
        if rc.runtime == "litert" and not has_litert:
            reasons.append(f"{label}: ai-edge-litert is not installed (pip install 'affectedge[tflite]')")
            continue
        if rc.runtime == "onnxruntime":
            if not avail:
                reasons.append(f"{label}: onnxruntime is not installed (pip install 'affectedge[onnx]')")
                continue
            if rc.provider and rc.provider not in avail:
                reasons.append(f"{label}: provider not in this onnxruntime build (available: {', '.join(avail)})")
                continue
        found = _artifacts(card_dir, card.file, rc.runtime, want)
        if not found:
            reasons.append(f"{label}: no {_SUFFIX[rc.runtime]} artifact next to the card (export one with "
                           f"'affectedge quantize {card.id} --to {'tflite' if rc.runtime == 'litert' else 'onnx'}')")
            continue
        path, prec = found[0]
        if prec != want:
            reasons.append(f"{label}: no {want} artifact for {modality}; using {prec} ({path.name})")
        provs = ((rc.provider,) if rc.provider else ()) + (("CPUExecutionProvider",)
                                                           if rc.runtime == "onnxruntime" else ())
        provs = tuple(dict.fromkeys(provs))
        if reasons:
            warnings.append(f"profile {profile.name}: {card.id} runs on {label} ({path.name}); skipped: "
                            + "; ".join(reasons))
            log.warning(warnings[-1])
        choice = BackendChoice(profile.name, rc.runtime, provs, rc.delegate or "", int(profile.threads), prec,
                               str(path), tuple(reasons), tuple(warnings))
        log.info("backend for %s under %s: %s", card.id, profile.name, choice.to_dict())
        return choice
    from affectedge.errors import ProfileError

    raise ProfileError(f"profile {profile.name!r} offers no runtime that can run {card.id!r} here: "
                       + "; ".join(reasons) + ". Install the missing runtime or export the artifact it needs")
