"""Device profiles as data: the schema, the frozen :class:`Profile`, and the loader.

A profile is one JSON file (``data/<name>.json`` for the shipped ones, any
path for a user's). Its keys are the :class:`Profile` attributes; the full
schema, with what each key means, is in ``device_profiles/README.md`` and in
:data:`SCHEMA` below, which the loader enforces. A user profile names a
shipped profile (or another file) in ``extends`` and states only what differs;
the two are deep-merged (objects merge key by key, lists and scalars replace).

Every number that comes from outside (a vendor spec page, a published
benchmark) carries its source in the file's ``sources`` object; a value a
user profile overrides without giving a new source is attributed to that
user file.

A bad file raises :class:`~affectedge.errors.ProfileError` naming the file and
the key, what was expected, what came, and what to do.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from affectedge.errors import ProfileError

__all__ = ["PROFILES_DIR", "Budgets", "Capture", "Profile", "RuntimeChoice", "list_profiles", "load"]

PROFILES_DIR = Path(__file__).resolve().parent / "data"
SCHEMA_VERSION = 1

MODALITIES = ("speech", "face", "eeg")
PRECISIONS = ("fp32", "fp16", "int8")
ARCHES = ("aarch64", "x86_64", "armv7l", "arm64")
RUNTIMES = ("onnxruntime", "litert", "coreml")
DELEGATES = ("xnnpack", "gpu", "nnapi", "coreml")
# The fields whose values come from outside the project (hardware facts and the throughput the latency estimate
# uses): each needs an entry in ``sources``.
SOURCED_FIELDS = ("arch", "cores", "clock_ghz", "simd", "memory_mb", "accelerators", "sustained_gmacs")


# ----------------------------------------------------------------------------- the objects
@dataclass(frozen=True)
class RuntimeChoice:
    """One entry of a profile's runtime preference order.

    ``runtime``: ``"onnxruntime"``, ``"litert"`` or ``"coreml"``; ``provider``: an onnxruntime execution
    provider (``"TensorrtExecutionProvider"``, ``"CUDAExecutionProvider"``, ``"CPUExecutionProvider"``,
    ``"CoreMLExecutionProvider"``, ``"NnapiExecutionProvider"``) or None; ``delegate``: a LiteRT delegate
    (``"xnnpack"``, ``"gpu"``, ``"nnapi"``, ``"coreml"``) or None.
    """

    runtime: str
    provider: str | None = None
    delegate: str | None = None

    @property
    def label(self) -> str:
        return self.runtime + (f" {self.provider}" if self.provider else "") + (
            f" + {self.delegate}" if self.delegate else "")

    def to_dict(self) -> dict:
        return {"runtime": self.runtime, "provider": self.provider, "delegate": self.delegate}


@dataclass(frozen=True)
class Budgets:
    """Hard limits a model must meet on the device: file size, runtime RAM, latency per modality (ms)."""

    model_size_mb: float
    ram_mb: float
    latency_ms: MappingProxyType

    def to_dict(self) -> dict:
        return {"model_size_mb": self.model_size_mb, "ram_mb": self.ram_mb, "latency_ms": dict(self.latency_ms)}

    def __hash__(self):
        return hash((self.model_size_mb, self.ram_mb, tuple(sorted(self.latency_ms.items()))))


@dataclass(frozen=True)
class Capture:
    """Capture defaults: audio rate and buffer, camera resolution and rate, suggested BrainFlow EEG boards."""

    audio_rate_hz: int
    audio_buffer_ms: float
    camera_width: int
    camera_height: int
    camera_fps: float
    eeg_boards: tuple

    def to_dict(self) -> dict:
        return {"audio_rate_hz": self.audio_rate_hz, "audio_buffer_ms": self.audio_buffer_ms,
                "camera_width": self.camera_width, "camera_height": self.camera_height,
                "camera_fps": self.camera_fps, "eeg_boards": list(self.eeg_boards)}


@dataclass(frozen=True)
class Profile:
    """A device profile (see the module doc and ``device_profiles/README.md`` for every field)."""

    name: str
    description: str
    extends: str | None
    source_file: Path
    arch: str
    cores: int
    clock_ghz: float
    simd: tuple
    memory_mb: int
    accelerators: tuple
    runtimes: tuple
    threads: int
    precision: MappingProxyType
    budgets: Budgets
    capture: Capture
    numba_available: bool
    numba_cache_dir: str
    constraints: tuple
    sustained_gmacs: float
    sources: MappingProxyType
    detect: MappingProxyType = field(default_factory=lambda: MappingProxyType({}), repr=False)

    def __hash__(self):
        return hash((self.name, str(self.source_file)))

    @property
    def sustained_gmacs_source(self) -> str:
        """Where :attr:`sustained_gmacs` comes from (how the latency estimate's throughput was obtained)."""
        return self.sources.get("sustained_gmacs", "")

    def source(self, key: str) -> str:
        """The citation for ``key`` (a field name such as ``"cores"``), or ``""``."""
        return self.sources.get(key, "")

    def to_dict(self) -> dict:
        """The profile as JSON-ready data, in the file format (plus ``source_file``)."""
        return {
            "schema": SCHEMA_VERSION,
            "name": self.name,
            "description": self.description,
            "extends": self.extends,
            "source_file": str(self.source_file),
            "arch": self.arch,
            "cores": self.cores,
            "clock_ghz": self.clock_ghz,
            "simd": list(self.simd),
            "memory_mb": self.memory_mb,
            "accelerators": list(self.accelerators),
            "runtimes": [r.to_dict() for r in self.runtimes],
            "threads": self.threads,
            "precision": dict(self.precision),
            "budgets": self.budgets.to_dict(),
            "capture": self.capture.to_dict(),
            "numba_available": self.numba_available,
            "numba_cache_dir": self.numba_cache_dir,
            "sustained_gmacs": self.sustained_gmacs,
            "constraints": [{"text": t, "source": self.sources.get(f"constraints[{i}]", "")}
                            for i, t in enumerate(self.constraints)],
            "detect": {k: list(v) for k, v in self.detect.items()},
            "sources": {k: v for k, v in self.sources.items() if not k.startswith("constraints[")},
        }


# ----------------------------------------------------------------------------- the schema
class _Spec:
    """One key of the schema: a checker that returns the clean value or raises with what was expected."""

    def __init__(self, expected, check, required=True, doc=""):
        self.expected, self.check, self.required, self.doc = expected, check, required, doc


class _Bad(Exception):
    """Raised by a checker: key path relative to the checker, what was expected, what came, and the kind of
    fault: ``"type"`` (a wrong value), ``"unknown"`` (a key the schema lacks) or ``"missing"``."""

    def __init__(self, path, expected, got, kind="type"):
        super().__init__(path)
        self.path, self.expected, self.got, self.kind = path, expected, got, kind


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _int(minimum=None):
    def check(v):
        if not _is_int(v) or (minimum is not None and v < minimum):
            raise _Bad("", f"an integer >= {minimum}" if minimum is not None else "an integer", v)
        return v
    return check


def _pos_num(v):
    if not _is_num(v) or v <= 0:
        raise _Bad("", "a number > 0", v)
    return float(v)


def _str(v):
    if not isinstance(v, str) or not v.strip():
        raise _Bad("", "a non-empty string", v)
    return v


def _any_str(v):
    if not isinstance(v, str):
        raise _Bad("", "a string (may be empty)", v)
    return v


def _bool(v):
    if not isinstance(v, bool):
        raise _Bad("", "true or false", v)
    return v


def _opt_str(v):
    if v is None:
        return None
    return _str(v)


def _choice(options):
    def check(v):
        if v not in options:
            raise _Bad("", f"one of {', '.join(options)}", v)
        return v
    return check


def _str_list(v):
    if not isinstance(v, list) or not all(isinstance(s, str) and s.strip() for s in v):
        raise _Bad("", "a list of non-empty strings", v)
    return tuple(v)


def _object(fields):
    """A JSON object with exactly these keys (all required), each checked."""
    def check(v):
        if not isinstance(v, dict):
            raise _Bad("", f"an object with keys {', '.join(fields)}", v)
        for k in v:
            if k not in fields:
                raise _Bad(k, _did_you_mean(k, fields) + f"; the known keys there are {', '.join(fields)}",
                           v[k], "unknown")
        out = {}
        for k, sub in fields.items():
            if k not in v:
                raise _Bad(k, sub.expected, _MISSING, "missing")
            try:
                out[k] = sub.check(v[k])
            except _Bad as exc:
                raise _Bad(_join(k, exc.path), exc.expected, exc.got, exc.kind) from None
        return out
    return check


def _runtimes(v):
    if not isinstance(v, list) or not v:
        raise _Bad("", "a non-empty list of {runtime, provider, delegate} objects in preference order", v)
    out = []
    for i, item in enumerate(v):
        where = f"[{i}]"
        if not isinstance(item, dict):
            raise _Bad(where, "an object {\"runtime\": ..., \"provider\": ..., \"delegate\": ...}", item)
        for k in item:
            if k not in ("runtime", "provider", "delegate"):
                raise _Bad(f"{where}.{k}", _did_you_mean(k, ("runtime", "provider", "delegate"))
                           + "; the known keys there are runtime, provider, delegate", item[k], "unknown")
        if "runtime" not in item:
            raise _Bad(f"{where}.runtime", f"one of {', '.join(RUNTIMES)}", _MISSING, "missing")
        rt = item["runtime"]
        if rt not in RUNTIMES:
            raise _Bad(f"{where}.runtime", f"one of {', '.join(RUNTIMES)}", rt)
        prov, dele = item.get("provider"), item.get("delegate")
        if prov is not None and (not isinstance(prov, str) or not prov.endswith("ExecutionProvider")):
            raise _Bad(f"{where}.provider", "null or an onnxruntime provider name ending in 'ExecutionProvider' "
                                            "(e.g. CPUExecutionProvider)", prov)
        if prov is not None and rt == "litert":
            raise _Bad(f"{where}.provider", "null for runtime litert (LiteRT takes a delegate, not a provider)", prov)
        if dele is not None and dele not in DELEGATES:
            raise _Bad(f"{where}.delegate", f"null or one of {', '.join(DELEGATES)}", dele)
        if dele is not None and rt == "onnxruntime":
            raise _Bad(f"{where}.delegate", "null for runtime onnxruntime (onnxruntime takes a provider)", dele)
        if rt == "onnxruntime" and prov is None:
            raise _Bad(f"{where}.provider", "an onnxruntime provider name for runtime onnxruntime", prov)
        out.append(RuntimeChoice(rt, prov, dele))
    return tuple(out)


def _modality_map(value_check, expected):
    def check(v):
        if not isinstance(v, dict):
            raise _Bad("", f"an object mapping {', '.join(MODALITIES)} to {expected}", v)
        for k in v:
            if k not in MODALITIES:
                raise _Bad(k, _did_you_mean(k, MODALITIES) + f"; the modalities are {', '.join(MODALITIES)}",
                           v[k], "unknown")
        out = {}
        for k in MODALITIES:
            if k not in v:
                raise _Bad(k, expected, _MISSING, "missing")
            try:
                out[k] = value_check(v[k])
            except _Bad as exc:
                raise _Bad(k, exc.expected, exc.got, exc.kind) from None
        return MappingProxyType(out)
    return check


def _constraints(v):
    if not isinstance(v, list):
        raise _Bad("", "a list of {\"text\": ..., \"source\": ...} objects", v)
    out = []
    for i, item in enumerate(v):
        if not isinstance(item, dict) or set(item) != {"text", "source"}:
            raise _Bad(f"[{i}]", "an object with exactly the keys text and source", item)
        for k in ("text", "source"):
            if not isinstance(item[k], str) or not item[k].strip():
                raise _Bad(f"[{i}].{k}", "a non-empty string", item[k])
        out.append((item["text"], item["source"]))
    return tuple(out)


def _detect(v):
    known = ("device_tree_model", "compatible")
    if not isinstance(v, dict):
        raise _Bad("", "an object with lists device_tree_model and/or compatible", v)
    out = {}
    for k, val in v.items():
        if k not in known:
            raise _Bad(k, _did_you_mean(k, known) + f"; the known keys there are {', '.join(known)}", val,
                       "unknown")
        try:
            out[k] = _str_list(val)
        except _Bad as exc:
            raise _Bad(k, exc.expected, exc.got, exc.kind) from None
    return MappingProxyType(out)


def _sources(v):
    if not isinstance(v, dict) or not all(isinstance(k, str) and isinstance(s, str) and s.strip()
                                          for k, s in v.items()):
        raise _Bad("", "an object mapping field names to citations (non-empty strings)", v)
    return dict(v)


_CAPTURE = {
    "audio_rate_hz": _Spec("an integer >= 1 (Hz)", _int(1)),
    "audio_buffer_ms": _Spec("a number > 0 (ms)", _pos_num),
    "camera_width": _Spec("an integer >= 1 (pixels)", _int(1)),
    "camera_height": _Spec("an integer >= 1 (pixels)", _int(1)),
    "camera_fps": _Spec("a number > 0", _pos_num),
    "eeg_boards": _Spec("a list of BrainFlow board names", _str_list),
}
_BUDGETS = {
    "model_size_mb": _Spec("a number > 0 (MB)", _pos_num),
    "ram_mb": _Spec("a number > 0 (MB)", _pos_num),
    "latency_ms": _Spec("an object speech/face/eeg -> ms", _modality_map(_pos_num, "a number > 0 (ms)")),
}

#: The file format: key -> (what is expected, checker, required). See device_profiles/README.md.
SCHEMA = {
    "schema": _Spec(f"the schema version {SCHEMA_VERSION}", _choice((SCHEMA_VERSION,)), required=False),
    "name": _Spec("the profile name (a non-empty string; the file name for shipped profiles)", _str),
    "description": _Spec("a one-line description", _str),
    "extends": _Spec("null, a shipped profile name, or a path to a profile file", _opt_str, required=False),
    "arch": _Spec(f"one of {', '.join(ARCHES)}", _choice(ARCHES)),
    "cores": _Spec("an integer >= 1", _int(1)),
    "clock_ghz": _Spec("a number > 0 (GHz)", _pos_num),
    "simd": _Spec("a list of SIMD extension names", _str_list),
    "memory_mb": _Spec("an integer >= 1 (MB)", _int(1)),
    "accelerators": _Spec("a list of accelerator names (may be empty)", _str_list),
    "runtimes": _Spec("a non-empty list of {runtime, provider, delegate} in preference order", _runtimes),
    "threads": _Spec("an integer >= 1", _int(1)),
    "precision": _Spec("an object speech/face/eeg -> fp32|fp16|int8", _modality_map(_choice(PRECISIONS),
                                                                                    "one of fp32, fp16, int8")),
    "budgets": _Spec("an object with model_size_mb, ram_mb, latency_ms", _object(_BUDGETS)),
    "capture": _Spec("an object with " + ", ".join(_CAPTURE), _object(_CAPTURE)),
    "numba_available": _Spec("true or false", _bool),
    "numba_cache_dir": _Spec("a string (the Numba cache directory; '' where Numba is unavailable)", _any_str),
    "sustained_gmacs": _Spec("a number > 0 (sustained GMAC/s, with its source in 'sources')", _pos_num),
    "constraints": _Spec("a list of {text, source} objects", _constraints),
    "detect": _Spec("an object with device_tree_model / compatible lists", _detect, required=False),
    "sources": _Spec("an object field -> citation", _sources),
}


class _Missing:
    def __repr__(self):
        return "nothing"


_MISSING = _Missing()


def _join(a, b):
    if not b:
        return a
    return f"{a}{b}" if b.startswith("[") else f"{a}.{b}"


def _did_you_mean(key, options):
    import difflib

    near = difflib.get_close_matches(str(key), list(options), n=1)
    return f" (did you mean {near[0]!r}?)" if near else ""


def _got(v):
    if v is _MISSING:
        return "nothing"
    text = json.dumps(v) if not isinstance(v, (tuple, RuntimeChoice)) else repr(v)
    return text if len(text) <= 80 else text[:77] + "..."


# ----------------------------------------------------------------------------- loading
def list_profiles() -> list:
    """The names of the shipped profiles, sorted."""
    return sorted(p.stem for p in PROFILES_DIR.glob("*.json"))


def load(name_or_path) -> Profile:
    """A :class:`Profile` from a shipped name (``"raspberry-pi-4"``), a path to a JSON profile file, or a Profile.

    Raises :class:`~affectedge.errors.ProfileError` for an unknown name or a bad file (naming the file and key).
    """
    if isinstance(name_or_path, Profile):
        return name_or_path
    if not isinstance(name_or_path, (str, Path)):
        raise ProfileError(f"a profile is a shipped name, a path to a .json profile file or a Profile; got "
                           f"{type(name_or_path).__name__} {name_or_path!r}")
    text = str(name_or_path)
    if isinstance(name_or_path, str) and text in list_profiles():
        return _load_shipped(text)
    path = Path(text).expanduser()
    if path.suffix or "/" in text or "\\" in text or path.exists():
        return _load_file(path)
    raise ProfileError(_unknown_name(text))


def _unknown_name(text, *, file=None, key=None):
    names = list_profiles()
    where = f"{file}: key {key!r}: " if file else ""
    return (f"{where}unknown profile {text!r}{_did_you_mean(text, names)}; expected one of {', '.join(names)}, "
            "or a path to a .json profile file (see 'affectedge profiles list')")


@functools.lru_cache(maxsize=None)
def _load_shipped(name) -> Profile:
    return _load_file(PROFILES_DIR / f"{name}.json")


def _read(path: Path) -> dict:
    if not path.is_file():
        raise ProfileError(f"{path}: no such profile file; pass a shipped name ({', '.join(list_profiles())}) "
                           "or the path of an existing .json profile")
    if path.suffix.lower() != ".json":
        raise ProfileError(f"{path}: a profile file must be JSON (.json), got {path.suffix or 'no'} suffix; "
                           "write it as JSON (see 'affectedge profiles show raspberry-pi-4 --json')")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ProfileError(f"{path}: not UTF-8 text ({exc}); save it as UTF-8 JSON") from None
    except json.JSONDecodeError as exc:
        raise ProfileError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}; "
                           "fix the syntax (no comments or trailing commas in JSON)") from None
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: expected a JSON object of profile keys at the top level, got "
                           f"{type(data).__name__}; wrap the keys in {{ }}")
    return data


def _check_top_keys(path, data):
    for k in data:
        if k not in SCHEMA:
            raise ProfileError(f"{path}: unknown key {k!r}{_did_you_mean(k, SCHEMA)}; the known keys are "
                               f"{', '.join(SCHEMA)}. Remove it or fix its spelling")


def _resolve(path: Path, chain=()):
    """The merged raw data of ``path`` with its ``extends`` chain applied, and the chain of files."""
    path = path.resolve()
    if path in chain:
        cycle = " -> ".join(str(p) for p in chain + (path,))
        raise ProfileError(f"{chain[-1]}: key 'extends': cycle {cycle}; one profile in the chain must not "
                           "extend another")
    data = _read(path)
    _check_top_keys(path, data)
    parent = data.get("extends")
    if parent is None:
        return data, {}
    if not isinstance(parent, str) or not parent.strip():
        raise ProfileError(f"{path}: key 'extends': expected a shipped profile name or a path to a profile "
                           f"file, got {_got(parent)}")
    if parent in list_profiles():
        parent_path = PROFILES_DIR / f"{parent}.json"
    else:
        cand = Path(parent).expanduser()
        if not cand.is_absolute():
            cand = path.parent / cand
        if not (cand.suffix.lower() == ".json" and cand.is_file()):
            raise ProfileError(_unknown_name(parent, file=path, key="extends"))
        parent_path = cand
    base, _ = _resolve(parent_path, chain + (path,))
    merged = _merge(base, data, path)
    return merged, base


def _merge(base: dict, child: dict, child_path: Path) -> dict:
    """Deep merge (objects key by key, lists/scalars replace); ``detect`` is not inherited; overridden sourced
    values without a new source are attributed to the child file."""
    out = {k: v for k, v in base.items() if k not in ("detect", "name", "extends")}
    for k, v in child.items():
        if k == "sources":
            continue
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep(out[k], v)
        else:
            out[k] = v
    sources = dict(base.get("sources", {}))
    child_sources = child.get("sources", {})
    if isinstance(child_sources, dict):
        for k in child:
            if k in SOURCED_FIELDS and k not in child_sources:
                sources[k] = f"set in the user profile {child_path}"
        sources.update(child_sources)
        out["sources"] = sources
    else:
        out["sources"] = child_sources  # let validation report the bad value
    return out


def _deep(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _deep(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _load_file(path: Path) -> Profile:
    path = Path(path).expanduser()
    merged, _ = _resolve(path)
    path = path.resolve()
    if "name" not in merged:
        merged["name"] = path.stem
    clean = {}
    for key, spec in SCHEMA.items():
        if key not in merged:
            if spec.required:
                raise ProfileError(f"{path}: missing required key {key!r} ({spec.expected}); add it, or "
                                   "'extends' a shipped profile that defines it")
            continue
        try:
            clean[key] = spec.check(merged[key])
        except _Bad as exc:
            full = _join(key, exc.path)
            if exc.kind == "unknown":
                msg = f"unknown key {full!r}{exc.expected}. Remove it or fix its spelling"
            elif exc.kind == "missing":
                msg = (f"missing required key {full!r} ({exc.expected}); add it, or 'extends' a shipped "
                       "profile that defines it")
            else:
                msg = (f"key {full!r}: expected {exc.expected}, got {_got(exc.got)}; fix the value (the schema "
                       "is in device_profiles/README.md)")
            raise ProfileError(f"{path}: {msg}") from None
    if path.parent == PROFILES_DIR and clean["name"] != path.stem:
        raise ProfileError(f"{path}: key 'name': expected {path.stem!r} (a shipped profile is named after its "
                           f"file), got {clean['name']!r}; rename the file or the profile")
    sources = dict(clean["sources"])
    unknown = [k for k in sources if k.split(".")[0].split("[")[0] not in SCHEMA]
    if unknown:
        raise ProfileError(f"{path}: key 'sources.{unknown[0]}': expected a citation for a profile field "
                           f"(one of {', '.join(k for k in SCHEMA if k != 'sources')}), got a source for an "
                           f"unknown field {unknown[0]!r}; fix the field name")
    constraints = clean["constraints"]
    for i, (_, src) in enumerate(constraints):
        sources[f"constraints[{i}]"] = src
    if clean["threads"] > clean["cores"]:
        raise ProfileError(f"{path}: key 'threads': expected at most 'cores' ({clean['cores']}), got "
                           f"{clean['threads']}; lower threads or raise cores")
    budgets = clean["budgets"]
    capture = clean["capture"]
    return Profile(
        name=clean["name"],
        description=clean["description"],
        extends=clean.get("extends"),
        source_file=path,
        arch=clean["arch"],
        cores=clean["cores"],
        clock_ghz=clean["clock_ghz"],
        simd=clean["simd"],
        memory_mb=clean["memory_mb"],
        accelerators=clean["accelerators"],
        runtimes=clean["runtimes"],
        threads=clean["threads"],
        precision=clean["precision"],
        budgets=Budgets(budgets["model_size_mb"], budgets["ram_mb"], budgets["latency_ms"]),
        capture=Capture(capture["audio_rate_hz"], capture["audio_buffer_ms"], capture["camera_width"],
                        capture["camera_height"], capture["camera_fps"], capture["eeg_boards"]),
        numba_available=clean["numba_available"],
        numba_cache_dir=clean["numba_cache_dir"],
        constraints=tuple(t for t, _ in constraints),
        sustained_gmacs=clean["sustained_gmacs"],
        sources=MappingProxyType(sources),
        detect=clean.get("detect", MappingProxyType({})),
    )
