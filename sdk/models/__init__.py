"""The model zoo: shipped models, their cards, and an onnxruntime loader.

    >>> from affectedge import models
    >>> models.list_models()            # ids with their cards
    >>> m = models.load("speech-emotion")
    >>> m.predict_raw(audio, sample_rate_hz=sr)  # quality-checked, resampled, features as on the card

Shipped models run with onnxruntime alone (``pip install 'affectedge[onnx]'``);
no PyTorch is needed on the device.
"""

from dataclasses import replace
from pathlib import Path

from affectedge.errors import ModelError

from ._card import ModelCard, sha256_file
from ._model import Model

__all__ = ["ZOO", "Model", "ModelCard", "card", "list_models", "load", "zoo_dir"]

ZOO = ("speech-emotion", "face-expression", "face-expression-pixels", "eeg-valence-arousal", "eeg-mental-state")
_ZOO_DIR = Path(__file__).resolve().parent / "zoo"


def zoo_dir(model_id):
    """Folder of a zoo model (model.onnx, card.json, card.md)."""
    if model_id not in ZOO:
        raise ModelError(f"{model_id!r} is not a zoo model id; known ids: {', '.join(ZOO)}")
    return _ZOO_DIR / model_id


def list_models():
    """Cards of the zoo models that are present in this installation."""
    out = []
    for mid in ZOO:
        path = zoo_dir(mid) / "card.json"
        if path.is_file():
            out.append(ModelCard.load(path))
    return out


def card(model_id_or_path):
    """The card of a zoo id, a model folder, or a card/model file."""
    return ModelCard.load(_card_path(model_id_or_path))


def _card_path(ref):
    if str(ref) in ZOO:
        path = zoo_dir(str(ref)) / "card.json"
        if not path.is_file():
            raise ModelError(
                f"zoo model {ref!r} is not built in this checkout ({path} is missing); run 'make models'"
            )
        return path
    p = Path(ref)
    if p.is_dir():
        p = p / "card.json"
    elif p.suffix in (".onnx", ".tflite"):
        p = p.parent / "card.json"
    if not p.is_file():
        raise ModelError(
            f"no model card for {str(ref)!r} (looked for {str(p)!r}); pass a zoo id ({', '.join(ZOO)}) "
            "or a folder written by 'affectedge train'"
        )
    return p


def load(model_id_or_path, *, threads=None, check_file=True, variant=None, providers=("CPUExecutionProvider",),
         backend=None, profile=None):
    """Load a model (zoo id, folder, or .onnx next to its card.json).

    ``profile`` (a device profile name, a Profile, or "auto") picks the runtime,
    provider or delegate, threads and artifact precision in the profile's order
    (see :func:`affectedge.runtime._backend.choose_backend`; the choice is
    ``model.backend_choice``). ``variant`` picks a second network described on the card under
    ``extra[variant]`` (e.g. ``"temporal"``: the face GRU over frame
    sequences, input (batch, time, features) from the same pipeline).
    """
    path = _card_path(model_id_or_path)
    c = ModelCard.load(path)
    model_file = path.parent / c.file
    if variant is not None:
        spec = c.extra.get(variant) if isinstance(c.extra, dict) else None
        if not isinstance(spec, dict) or "file" not in spec:
            offered = [k for k, v in (c.extra or {}).items() if isinstance(v, dict) and "file" in v]
            raise ModelError(f"model {c.id!r} has no variant {variant!r}; its card offers {offered or 'none'}")
        c = replace(c, file=spec["file"], file_sha256=spec.get("sha256", ""),
                    file_size_bytes=spec.get("file_size_bytes", 0), outputs=spec.get("outputs", c.outputs),
                    parameters=spec.get("parameters", c.parameters))
        model_file = path.parent / c.file
    elif Path(str(model_id_or_path)).suffix in (".onnx", ".tflite"):
        model_file = Path(model_id_or_path)
    if not model_file.is_file():
        raise ModelError(f"model file {str(model_file)!r} named on card {str(path)!r} is missing")
    if check_file and c.file_sha256 and model_file.name == Path(c.file).name and sha256_file(model_file) != c.file_sha256:
        raise ModelError(
            f"{str(model_file)!r} does not match the sha256 on its card (corrupt or replaced); "
            "re-export it or restore the original"
        )
    choice = None
    if profile is not None and variant is None and Path(str(model_id_or_path)).suffix not in (".onnx", ".tflite"):
        # a device profile picks the runtime, provider/delegate, threads and artifact (runtime._backend)
        from affectedge.runtime._backend import choose_backend

        choice = choose_backend(c, path.parent, profile)
        model_file, backend, providers = Path(choice.artifact), choice.backend, choice.providers
        listed = ((c.extra or {}).get("artifacts") or {}).get("files", {}) if isinstance(c.extra, dict) else {}
        want = listed.get(model_file.name, {}).get("sha256")
        if check_file and want and sha256_file(model_file) != want:
            raise ModelError(f"{str(model_file)!r} does not match the sha256 its card lists for it (corrupt or "
                             "replaced); re-export it with 'affectedge quantize' or restore the original")
        threads = threads if threads is not None else choice.threads
    m = Model(c, model_file, threads=threads, providers=providers, backend=backend)
    m.backend_choice = choice
    return m
