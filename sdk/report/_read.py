"""Read a results JSON Lines file (``affectedge.results`` schema), tolerating a killed run's partial last line."""

import json
from dataclasses import dataclass, field
from pathlib import Path

from affectedge.errors import ParameterError

TYPES = ("session", "result", "event", "status", "summary")


@dataclass
class Results:
    """The records of one results file, by type, and what was odd about it (``notes``)."""

    path: Path
    session: dict = None
    results: list = field(default_factory=list)
    events: list = field(default_factory=list)
    status: list = field(default_factory=list)
    summary: dict = None
    n_lines: int = 0
    partial_line: int = None
    notes: list = field(default_factory=list)

    @property
    def n_records(self):
        return (self.session is not None) + len(self.results) + len(self.events) + len(self.status) + (
            self.summary is not None)

    @property
    def modalities(self):
        """Modalities present (speech, face, eeg, fused first, then any other), in that order."""
        from .style import MODALITIES

        seen = {r.get("modality") for r in self.results + self.events + self.status} - {None}
        seen |= set((self.session or {}).get("sources") or {})
        return [m for m in MODALITIES if m in seen] + sorted(seen - set(MODALITIES))

    def span_ms(self):
        ts = [t for r in self.results + self.events for t in (r.get("start_ms"), r.get("end_ms")) if t is not None]
        ts += [t for s in self.status for t in ([s.get("t_ms")] + [x for g in s.get("gaps") or [] for x in g])
               if t is not None]
        if self.summary and self.summary.get("duration_ms") is not None:
            ts.append(self.summary["duration_ms"])
        return (min(0.0, min(ts)), max(ts)) if ts else (0.0, 1.0)


def read_results(path, *, warn=None):
    """Parse ``path``; a last line that is not valid JSON (a killed writer) is ignored and noted.

    A malformed line before the last one is a ParameterError naming the file and
    line: the runtime writes whole lines only, so that file was damaged or is
    not a results file. ``warn`` (e.g. ``print`` to stderr) receives each note.
    """
    p = Path(path)
    hint = "a results .jsonl written by `affectedge run --out FILE` (or runtime.Runner(out=...))"
    if not p.is_file():
        raise ParameterError(f"report input {str(p)!r} does not exist or is not a file; expected {hint}. "
                             "Check the path, or produce one with: affectedge run --eeg synthetic --duration 10 "
                             "--out results.jsonl")
    lines = p.read_text(encoding="utf-8", errors="replace").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    res = Results(path=p, n_lines=len(lines))
    note = (lambda s: (res.notes.append(s), warn and warn(s)))
    unknown = {}
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as exc:
            if i == len(lines):
                res.partial_line = i
                note(f"{p.name}: line {i} is incomplete (killed run?); ignored")
                break
            raise ParameterError(f"{p}: line {i} is not valid JSON ({exc}); expected one JSON object per line "
                                 f"({hint}). Only a killed run's last line may be partial: this file is damaged "
                                 "or not a results file; regenerate it or remove that line") from None
        if not isinstance(rec, dict) or "type" not in rec:
            raise ParameterError(f"{p}: line {i} is not a results record (expected a JSON object with 'type' in "
                                 f"{', '.join(TYPES)}; got {line[:60]!r}); is this {hint}?")
        if rec.get("schema") not in (None, "affectedge.results"):
            raise ParameterError(f"{p}: line {i} has schema {rec.get('schema')!r}, expected 'affectedge.results'")
        t = rec["type"]
        if t == "session":
            res.session = rec
        elif t == "summary":
            res.summary = rec
        elif t in ("result", "event", "status"):
            getattr(res, "results" if t == "result" else "events" if t == "event" else "status").append(rec)
        else:
            unknown[t] = unknown.get(t, 0) + 1
    if unknown:
        note(f"{p.name}: ignored records of unknown type: " + ", ".join(f"{k} ({v})" for k, v in unknown.items()))
    if res.n_records == 0:
        what = "only an incomplete line" if res.partial_line else "no lines" if not lines else "no records"
        raise ParameterError(f"report input {str(p)!r} has {what}; expected {hint} with at least one record. "
                             "Was the run stopped before its first result? Run it longer, or check the --out path")
    if res.summary is None:
        note(f"{p.name}: run did not finish: no summary record")
    return res
