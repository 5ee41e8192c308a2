"""Model cards: what a shipped model is, what it expects, and how it scored.

A card is JSON (machine-readable, checked by the loader) plus a Markdown
rendering for people. The ``input`` section is the feature specification: the
loader compares it with the specification of the feature pipeline it will
run, and refuses a mismatch (a model fed features computed differently from
its training features gives confident nonsense).
"""

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from affectedge.errors import ModelError

__all__ = ["ModelCard", "sha256_file"]

CARD_SCHEMA = 1


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class ModelCard:
    """Everything a user needs to know before trusting a model's output.

    ``input``: {"pipeline": name, "spec": {...feature parameters...},
    "shape": [...], "dtype": "float32", "window_s": ...}
    ``outputs``: {output name: description}; ``labels``: class names in the
    order of the probability output.
    """

    id: str
    task: str
    version: str
    summary: str
    labels: tuple
    outputs: dict
    input: dict
    parameters: int
    file: str
    file_sha256: str
    file_size_bytes: int
    training_data: tuple = ()
    evaluation: dict = field(default_factory=dict)
    limits: tuple = ()
    extra: dict = field(default_factory=dict)
    schema: int = CARD_SCHEMA

    # ----------------------------------------------------------- serialising
    def to_dict(self):
        d = asdict(self)
        if isinstance(d.get("extra"), dict) and "output_roles" not in d["extra"]:
            # which output is what, so that callers never index output names (affectedge.runtime.output_roles)
            from affectedge.runtime._tasks import output_roles

            roles = output_roles(self)
            if roles:
                d["extra"] = {**d["extra"], "output_roles": roles}
        d["labels"] = list(self.labels)
        d["training_data"] = list(self.training_data)
        d["limits"] = list(self.limits)
        return d

    def save(self, folder):
        """Write card.json and card.md into ``folder``."""
        folder = Path(folder)
        (folder / "card.json").write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n")
        (folder / "card.md").write_text(self.to_markdown())

    @classmethod
    def load(cls, path):
        path = Path(path)
        if path.is_dir():
            path = path / "card.json"
        try:
            d = json.loads(path.read_text())
        except OSError as exc:
            raise ModelError(f"cannot read model card {str(path)!r}: {exc.strerror or exc}") from exc
        except json.JSONDecodeError as exc:
            raise ModelError(f"model card {str(path)!r} is not valid JSON ({exc})") from exc
        known = set(cls.__dataclass_fields__)
        missing = [k for k in ("id", "task", "labels", "input", "file") if k not in d]
        if missing:
            raise ModelError(f"model card {str(path)!r} lacks {missing}; regenerate it with 'affectedge train'")
        d = {k: v for k, v in d.items() if k in known}
        d["labels"] = tuple(d.get("labels", ()))
        d["training_data"] = tuple(d.get("training_data", ()))
        d["limits"] = tuple(d.get("limits", ()))
        d.setdefault("version", "0")
        d.setdefault("summary", "")
        d.setdefault("outputs", {})
        d.setdefault("parameters", 0)
        d.setdefault("file_sha256", "")
        d.setdefault("file_size_bytes", 0)
        return cls(**d)

    def to_markdown(self):
        lines = [f"# {self.id} (v{self.version})", "", self.summary, "", "| | |", "|---|---|"]
        lines += [
            f"| task | {self.task} |",
            f"| labels | {', '.join(self.labels)} |",
            f"| outputs | {'; '.join(f'`{k}`: {v}' for k, v in self.outputs.items())} |",
            f"| parameters | {self.parameters:,} |",
            f"| file | `{self.file}` ({self.file_size_bytes:,} bytes, sha256 `{self.file_sha256[:16]}...`) |",
        ]
        lines += ["", "## Input", "", "```json", json.dumps(self.input, indent=2), "```", ""]
        lines += ["## Training data", ""]
        for td in self.training_data:
            lines.append(f"- **{td.get('name', '?')}**: {td.get('description', '')} Terms: {td.get('terms', 'unknown')}")
        lines += ["", "## Evaluation", ""]
        ev = dict(self.evaluation)
        if ev.get("protocol"):
            lines += [f"Protocol: {ev.pop('protocol')}", ""]
        table = ev.pop("table", None)
        if table:
            header = list(table[0].keys())
            lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            for row in table:
                lines.append("| " + " | ".join(_fmt(row.get(h)) for h in header) + " |")
            lines.append("")
        for k, v in ev.items():
            lines.append(f"- {k}: {_fmt(v)}")
        lines += ["", "## Known limits", ""] + [f"- {x}" for x in self.limits] + [""]
        return "\n".join(lines)

    # -------------------------------------------------------------- checking
    def check_input_spec(self, spec, pipeline_name):
        """Refuse to run when the features we compute differ from the card's."""
        want = self.input.get("spec", {})
        if self.input.get("pipeline") != pipeline_name:
            raise ModelError(
                f"model {self.id!r} expects features from pipeline {self.input.get('pipeline')!r}, "
                f"but {pipeline_name!r} was given; use the pipeline named on its card"
            )
        diffs = _diff(want, _jsonable(spec))
        if diffs:
            shown = "; ".join(f"{k}: card {a!r}, computed {b!r}" for k, a, b in diffs[:6])
            raise ModelError(
                f"model {self.id!r} was trained on features that differ from those computed here ({shown}). "
                "Compute the features with the card's parameters (affectedge.models.load(...).pipeline) "
                "or retrain the model with 'affectedge train'"
            )


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def _jsonable(obj):
    return json.loads(json.dumps(obj, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def _diff(a, b, prefix=""):
    out = []
    keys = set(a) | set(b) if isinstance(a, dict) and isinstance(b, dict) else None
    if keys is None:
        if isinstance(a, float) or isinstance(b, float):
            try:
                if abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(a))):
                    return []
            except (TypeError, ValueError):
                pass
        return [] if a == b else [(prefix.rstrip("."), a, b)]
    for k in sorted(keys):
        if k not in a or k not in b:
            out.append((prefix + k, a.get(k, "<missing>"), b.get(k, "<missing>")))
        else:
            out.extend(_diff(a[k], b[k], prefix + k + "."))
    return out
