"""What a batch job runs over: the files under a folder, or listed in a manifest, each with its modality and speaker.

A file's modality comes from its kind: audio files are ``speech``, images and
videos are ``face``, EEG tables (CSV/TSV with a header naming 10-20 or Muse
electrodes) are ``eeg``. Anything else found in a folder is skipped with its
reason (a ``labels.csv``, a README), never failed.

Speakers (for ``calibration="speaker"``): a manifest's ``speaker`` column; else
the corpus's own file naming (EmoDB, RAVDESS, SAVEE, TESS, as the training
loaders read it); else the folder that holds the file (one call-centre line, one
session folder). Each item records which rule named its speaker.

Manifest: a CSV with a ``path`` (or ``file``) column, paths relative to the
manifest's folder, and optional ``speaker`` and ``modality`` columns.
"""

import csv
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from affectedge.errors import ParameterError

__all__ = ["MODALITIES", "Item", "discover", "kind_of"]

from affectedge.runtime._cli import AUDIO_EXT, IMAGE_EXT
from affectedge.sensors._video import VIDEO_EXTENSIONS

MODALITIES = ("speech", "face", "eeg")
EEG_EXT = {".csv", ".tsv", ".txt"}  # as `affectedge predict` reads them
_KIND_MODALITY = {"audio": "speech", "image": "face", "video": "face", "eeg": "eeg"}
# 10-20 / 10-10 electrode names (Fp1, AF7, Cz, TP10, O2, ...), the Muse's included
_ELECTRODE = re.compile(r"^(FP|AF|F|FC|FT|C|CP|T|TP|P|PO|O|I|A|M|EEG)[ _-]?(Z|\d{1,2})$", re.IGNORECASE)


@dataclass(frozen=True)
class Item:
    """One input file: ``rel`` (relative to the archive root, POSIX) names its outputs."""

    path: str
    rel: str
    modality: str
    kind: str
    speaker: str = ""
    speaker_from: str = ""
    size: int = 0
    mtime_ns: int = 0

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        return cls(**d)


def _eeg_header(path):
    """(is an EEG table, why not)."""
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as fh:
            header = fh.readline()
    except OSError as exc:
        return False, f"cannot read it: {exc.strerror or exc}"
    delim = "\t" if header.count("\t") > header.count(",") else ","
    names = [h.strip().strip('"') for h in header.rstrip("\r\n").split(delim)]
    if any(_ELECTRODE.match(n) for n in names):
        return True, ""
    if names and all(_is_number(n) for n in names if n):
        return False, ("a table without a header row (BrainFlow's own file layout?): replay it with "
                       "'affectedge run --eeg playback:FILE:master_board=BOARD'")
    return False, "a table whose header names no EEG electrode (a label or metadata file)"


def _is_number(s):
    try:
        float(s)
        return True
    except ValueError:
        return False


def _kind_by_extension(ext):
    return ("audio" if ext in AUDIO_EXT else "image" if ext in IMAGE_EXT else "video" if ext in VIDEO_EXTENSIONS
            else "eeg" if ext in EEG_EXT else None)


def kind_of(path):
    """("audio" | "image" | "video" | "eeg", "") or (None, why it is not an input)."""
    ext = Path(path).suffix.lower()
    kind = _kind_by_extension(ext)
    if kind == "eeg":
        ok, why = _eeg_header(path)
        return ("eeg", "") if ok else (None, why)
    if kind is None:
        return None, f"not an audio file, image, video or EEG table ({ext or 'no extension'})"
    return kind, ""


def _speaker(p, root, manifest_speaker):
    if manifest_speaker:
        return manifest_speaker, "manifest"
    from affectedge.training.corpora import _name_speaker

    s = _name_speaker(p, root)
    if s:
        return s, "corpus"
    parent = p.parent.relative_to(root).as_posix() if p.parent != root else ""
    return (parent or "."), "folder"


def _read_manifest(path):
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise ParameterError(f"cannot read manifest {str(path)!r}: {exc.strerror or exc}") from None
    except (csv.Error, UnicodeDecodeError) as exc:
        raise ParameterError(f"manifest {str(path)!r} is not a readable CSV ({exc}); expected a header row with "
                             "a 'path' column (optional: speaker, modality)") from None
    if not rows:
        raise ParameterError(f"manifest {str(path)!r} lists no files; expected a header row with a 'path' column "
                             "and one row per recording")
    cols = {c.strip().lower(): c for c in rows[0].keys() if c}
    key = cols.get("path") or cols.get("file")
    if key is None:
        raise ParameterError(f"manifest {str(path)!r} has no 'path' (or 'file') column; its columns are "
                             f"{list(rows[0].keys())}. Add one with each recording's path, relative to the manifest")
    spk = cols.get("speaker") or cols.get("speaker_id")
    mod = cols.get("modality")
    out = []
    for i, r in enumerate(rows, start=2):
        raw = (r.get(key) or "").strip()
        if not raw:
            raise ParameterError(f"manifest {str(path)!r} line {i}: the path is empty; fill it in or drop the row")
        p = Path(raw)
        p = p if p.is_absolute() else Path(path).parent / p
        out.append((Path(os.path.abspath(p)), (r.get(spk) or "").strip() if spk else "",
                    (r.get(mod) or "").strip().lower() if mod else ""))
    return out


def discover(source, modalities=MODALITIES):
    """``(root, items, skipped)`` for a folder or a ``.csv`` manifest.

    ``skipped`` is ``[(rel path, reason)]`` for files that are not inputs of
    the selected modalities; ``items`` are sorted by ``rel``. A listed file
    that is missing is an item of its extension's kind (the job lists it as
    failed, with the reason, and goes on).
    """
    src = Path(source)
    mods = tuple(modalities)
    bad = [m for m in mods if m not in MODALITIES]
    if bad or not mods:
        raise ParameterError(f"modalities {list(mods)}: each must be one of {', '.join(MODALITIES)}")
    if src.is_dir():
        root = Path(os.path.abspath(src))
        entries = [(p, "", "") for p in sorted(root.rglob("*")) if p.is_file() and not p.name.startswith(".")]
    elif src.is_file() and src.suffix.lower() == ".csv":
        entries = _read_manifest(src)
        folder = Path(os.path.abspath(src)).parent
        paths = [str(p) for p, _, _ in entries]
        root = folder if all(Path(p).is_relative_to(folder) for p in paths) else Path(os.path.commonpath(paths))
        if root.is_file():
            root = root.parent
    else:
        raise ParameterError(f"batch input {str(source)!r} is neither a folder nor a .csv manifest; pass a folder "
                             "of recordings or a CSV with a 'path' column")
    items, skipped, seen = [], [], set()
    for p, spk, mod in entries:
        rel = p.relative_to(root).as_posix()
        if rel in seen:
            continue
        seen.add(rel)
        kind, why = kind_of(p) if p.exists() else (_kind_by_extension(p.suffix.lower()), "")
        if kind is None:
            skipped.append((rel, why or f"not an audio file, image, video or EEG table ({p.suffix or 'no extension'})"))
            continue
        modality = mod or _KIND_MODALITY[kind]
        if modality not in MODALITIES or _KIND_MODALITY[kind] != modality:
            skipped.append((rel, f"the manifest says modality {mod!r}; a {kind} file is "
                                 f"{_KIND_MODALITY[kind]!r}"))
            continue
        if modality not in mods:
            skipped.append((rel, f"{modality} not selected (--modalities {','.join(mods)})"))
            continue
        speaker, how = _speaker(p, root, spk) if modality == "speech" else ("", "")
        st = p.stat() if p.exists() else None
        items.append(Item(str(p), rel, modality, kind, speaker, how, st.st_size if st else 0,
                          st.st_mtime_ns if st else 0))
    items.sort(key=lambda it: it.rel)
    return root, items, skipped
