"""Time-spanned results, emotion events, status records, and their JSON Lines form.

JSON Lines schema (``SCHEMA`` = "affectedge.results", ``SCHEMA_VERSION`` = 1)
-----------------------------------------------------------------------------
One JSON object per line, written whole and flushed. Every record has
``"schema"``, ``"version"`` and ``"type"``; times are milliseconds on the
session clock (0 = session start).

``type: "session"`` (first line)
    ``started_utc``, ``affectedge`` (version), ``sources`` {modality: name},
    ``models`` {modality: model id}.
``type: "result"`` (one per window / frame / fusion step)
    ``modality`` ("speech", "face", "eeg" or "fused"), ``start_ms``, ``end_ms``,
    ``status`` ("ok" or why there is no answer: "no_speech", "silent",
    "clipped", "out_of_scale", "dc_only", "no_face", "flat_channels",
    "railed_channels", "nonfinite", "dropout", "gap", "no_modality", ...),
    ``label`` (top class or null), ``labels`` and ``probs`` (null unless
    status is "ok"), ``valence``/``arousal`` in [-1, 1] or null,
    ``confidence`` in [0, 1] (1 - normalised entropy; 0 when not ok),
    ``calibrated`` (bool), ``model``, ``latency_ms`` (end of window to result),
    ``detail`` (text), ``contributors`` (fused only: [{modality, weight, age_ms}]).
``type: "event"`` (an emotion episode, emitted when it ends)
    ``modality``, ``label``, ``start_ms``, ``end_ms``, ``n_results``,
    ``mean_confidence``: consecutive "ok" results of one modality with the
    same label merged; a different label, a non-ok status or a gap longer
    than ``max_gap_ms`` ends the event.
``type: "status"`` (every ``status_every_s`` and at the end)
    ``modality``, ``source``, ``rate_hz`` (packets/s delivered), ``samples``,
    ``dropped`` (queue drops), ``overflows``, ``reconnects``, ``gaps``
    ([[start_ms, end_ms], ...]), ``gap_ms``, ``latency_ms_p50``/``p95``,
    ``results``, ``error``.
``type: "summary"`` (last line)
    ``duration_ms``, ``results`` {modality: count}, ``label_share``
    {modality: {label: fraction of ok results}}, ``events``, ``dropped``,
    ``stopped_by`` ("end", "duration", "signal", "error").
"""

import json
import math
import threading
from dataclasses import dataclass, field

import numpy as np

__all__ = ["SCHEMA", "SCHEMA_VERSION", "AffectResult", "EmotionEvent", "EventMerger", "JsonlWriter",
           "entropy_confidence"]

SCHEMA = "affectedge.results"
SCHEMA_VERSION = 1


def entropy_confidence(probs):
    """1 - H(p) / ln(K): 1 for a one-hot answer, 0 for a uniform one."""
    p = np.asarray(probs, dtype=np.float64)
    if p.size < 2 or not np.all(np.isfinite(p)):
        return 0.0
    p = np.clip(p / max(p.sum(), 1e-12), 1e-12, 1.0)
    return float(max(0.0, 1.0 + (p * np.log(p)).sum() / math.log(p.size)))


def _f(x, nd=4):
    return None if x is None else round(float(x), nd)


@dataclass(frozen=True)
class AffectResult:
    """What one modality (or the fusion) says about one span of time.

    ``probs`` is in ``labels`` order and is None unless ``status == "ok"``;
    ``valence``/``arousal`` are in [-1, 1] or None.
    """

    start_ms: float
    end_ms: float
    modality: str
    labels: tuple = ()
    probs: tuple = None
    valence: float = None
    arousal: float = None
    confidence: float = 0.0
    status: str = "ok"
    calibrated: bool = False
    model: str = ""
    latency_ms: float = None
    detail: str = ""
    contributors: tuple = ()

    def __post_init__(self):
        # a model that overflowed (an fp16 artifact computed in fp16 on an ARM CPU or a GPU, an int8 artifact far
        # outside its calibration range) gives NaN or inf: that is a status, never an answer
        if self.status == "ok" and not all(
                np.all(np.isfinite(np.asarray(v, dtype=np.float64)))
                for v in (self.probs, self.valence, self.arousal, self.confidence) if v is not None):
            for name in ("probs", "valence", "arousal"):
                object.__setattr__(self, name, None)
            object.__setattr__(self, "confidence", 0.0)
            object.__setattr__(self, "status", "nonfinite")
            object.__setattr__(self, "detail", "; ".join(
                x for x in (self.detail, f"model {self.model or '?'} gave NaN or inf for this input") if x))

    @property
    def ok(self):
        return self.status == "ok"

    @property
    def label(self):
        if not self.ok or not self.probs:
            return None
        return self.labels[int(np.argmax(self.probs))]

    def to_dict(self):
        d = {"schema": SCHEMA, "version": SCHEMA_VERSION, "type": "result", "modality": self.modality,
             "start_ms": _f(self.start_ms, 1), "end_ms": _f(self.end_ms, 1), "status": self.status,
             "label": self.label, "labels": list(self.labels) if self.ok else None,
             "probs": [_f(p) for p in self.probs] if (self.ok and self.probs is not None) else None,
             "valence": _f(self.valence), "arousal": _f(self.arousal), "confidence": _f(self.confidence),
             "calibrated": bool(self.calibrated), "model": self.model, "latency_ms": _f(self.latency_ms, 2),
             "detail": self.detail}
        if self.modality == "fused":
            d["contributors"] = [dict(c) for c in self.contributors]
        return d


@dataclass
class EmotionEvent:
    modality: str
    label: str
    start_ms: float
    end_ms: float
    n_results: int = 1
    confidence_sum: float = 0.0

    def to_dict(self):
        return {"schema": SCHEMA, "version": SCHEMA_VERSION, "type": "event", "modality": self.modality,
                "label": self.label, "start_ms": _f(self.start_ms, 1), "end_ms": _f(self.end_ms, 1),
                "n_results": self.n_results, "mean_confidence": _f(self.confidence_sum / max(self.n_results, 1))}


class EventMerger:
    """Merge consecutive same-label "ok" results of one modality into :class:`EmotionEvent` s.

    ``push(result)`` returns the events that ended (0 or 1); ``flush()`` ends
    the open ones. Overlapping windows extend the event to the later end.
    """

    def __init__(self, *, max_gap_ms=1500.0):
        self.max_gap_ms = float(max_gap_ms)
        self._open = {}
        self.closed = []

    def push(self, r):
        done = []
        cur = self._open.get(r.modality)
        lab = r.label
        if cur is not None and (lab != cur.label or r.start_ms - cur.end_ms > self.max_gap_ms):
            done.append(self._open.pop(r.modality))
            cur = None
        if lab is not None:
            if cur is None:
                self._open[r.modality] = EmotionEvent(r.modality, lab, r.start_ms, r.end_ms, 1, r.confidence)
            else:
                cur.end_ms = max(cur.end_ms, r.end_ms)
                cur.n_results += 1
                cur.confidence_sum += r.confidence
        self.closed.extend(done)
        return done

    def flush(self):
        done = list(self._open.values())
        self._open.clear()
        self.closed.extend(done)
        return done


class JsonlWriter:
    """Writes records as JSON Lines, one whole line per ``write`` and flushed (thread-safe).

    ``path`` "-" writes to stdout. A line is built fully before it is written,
    so an interrupted run never leaves a partial line.
    """

    def __init__(self, path_or_file):
        import sys

        self._own = False
        if path_or_file in ("-", None):
            self._fh = sys.stdout
        elif hasattr(path_or_file, "write"):
            self._fh = path_or_file
        else:
            self._fh = open(path_or_file, "w", encoding="utf-8")
            self._own = True
        self._lock = threading.Lock()
        self.lines = 0

    def write(self, record):
        if hasattr(record, "to_dict"):
            record = record.to_dict()
        line = json.dumps(record, allow_nan=False, separators=(",", ":")) + "\n"
        with self._lock:
            if self._fh is None:
                return
            self._fh.write(line)
            self._fh.flush()
            self.lines += 1

    def close(self):
        with self._lock:
            if self._fh is not None:
                try:
                    self._fh.flush()
                finally:
                    if self._own:
                        self._fh.close()
                    self._fh = None


def record(type_, **fields):
    """A JSONL record of ``type_`` with the schema header."""
    return {"schema": SCHEMA, "version": SCHEMA_VERSION, "type": type_, **fields}
