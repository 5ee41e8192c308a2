"""Labelled speech-emotion corpora: loaders for common layouts.

Every loader returns a list of ``(path, label, speaker)`` with ``label`` in
the shared taxonomy :data:`TAXONOMY`:

    anger, boredom, calm, disgust, fear, happiness, neutral, sadness, surprise

Clips may be in any format soundfile reads (``.wav``, ``.flac``, ``.ogg``,
``.opus``, ``.mp3``, ``.aiff``; ``.wav`` is written below) at any sample rate:
the training code resamples them to the pipeline's rate and skips (and
lists) files it cannot read.

Layouts (``layout=None`` detects them in this order: csv, emodb, ravdess, folder):

``emodb``
    Berlin EmoDB: ``wav/<speaker:2><text:3><code:1><version>.wav`` (or the
    files directly in the folder), e.g. ``03a01Wa.wav``. Codes (German):
    W anger (Wut), L boredom (Langeweile), E disgust (Ekel), A fear (Angst),
    F happiness (Freude), T sadness (Trauer), N neutral. Speaker = 2 digits.
``ravdess``
    RAVDESS: ``MM-VV-EE-II-SS-RR-AA.wav`` (any sub-folders, e.g.
    ``Actor_01/03-01-05-01-02-01-01.wav``). EE: 01 neutral, 02 calm,
    03 happy, 04 sad, 05 angry, 06 fearful, 07 disgust, 08 surprised.
    Speaker = actor (last field).
``folder``
    One folder per label (TESS, SAVEE exports, ...): ``<root>/<label>/*.wav``,
    also nested one level (``<root>/<anything>/<label>/*.wav``, e.g. TESS's
    ``OAF_angry``: the part after the last ``_`` is used). Folder names go
    through :data:`SYNONYMS` (angry->anger, happy->happiness, sad->sadness,
    ps/surprised->surprise, fearful->fear, ...). Speaker: the parent folder
    prefix before ``_`` when present (TESS ``OAF``/``YAF``), else the file
    name prefix before ``_`` or ``-`` (SAVEE ``DC_a01``), else "unknown".
``csv``
    A manifest ``labels.csv`` / ``manifest.csv`` (or the csv file itself)
    with columns ``path`` (or ``file``), ``label`` (or ``emotion``) and
    optional ``speaker``; paths relative to the manifest's folder (or its
    ``wav/`` sub-folder). Labels go through :data:`SYNONYMS`.
"""

import csv
import re
from pathlib import Path

from affectedge.errors import ParameterError

__all__ = ["LAYOUTS", "SYNONYMS", "TAXONOMY", "detect_layout", "load_corpus", "normalise_label"]

TAXONOMY = ("anger", "boredom", "calm", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")
LAYOUTS = ("emodb", "ravdess", "folder", "csv")

EMODB_CODES = {"W": "anger", "L": "boredom", "E": "disgust", "A": "fear", "F": "happiness", "T": "sadness",
               "N": "neutral"}
RAVDESS_CODES = {"01": "neutral", "02": "calm", "03": "happiness", "04": "sadness", "05": "anger", "06": "fear",
                 "07": "disgust", "08": "surprise"}
SYNONYMS = {
    **{t: t for t in TAXONOMY},
    "angry": "anger", "ang": "anger", "a": "anger", "mad": "anger",
    "bored": "boredom",
    "calmness": "calm",
    "disgusted": "disgust", "dis": "disgust", "d": "disgust",
    "fearful": "fear", "afraid": "fear", "scared": "fear", "fea": "fear", "f": "fear",
    "happy": "happiness", "hap": "happiness", "joy": "happiness", "h": "happiness",
    "neu": "neutral", "n": "neutral",
    "sad": "sadness", "sa": "sadness",
    "ps": "surprise", "surprised": "surprise", "sur": "surprise", "su": "surprise", "pleasant_surprise": "surprise",
    "pleasant_surprised": "surprise",
}
# Audio files a corpus may hold: what soundfile (libsndfile) reads. Clips at any rate are resampled to the
# pipeline's; unreadable ones are skipped and listed by the training code (see training.speech).
_AUDIO = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff")
_EXT = r"\.(?i:wav|flac|ogg|oga|opus|mp3|aif|aiff)$"
_EMODB_RE = re.compile(r"^(\d\d)([a-b]\d\d)([WLEAFTN])([a-z]?)" + _EXT)
_RAVDESS_RE = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)" + _EXT)


def normalise_label(name, *, where=""):
    """A label or folder name in the shared taxonomy; ParameterError if unknown."""
    key = str(name).strip().lower().replace(" ", "_").replace("-", "_")
    if key in SYNONYMS:
        return SYNONYMS[key]
    raise ParameterError(
        f"label {name!r}{where} is not in the shared taxonomy ({', '.join(TAXONOMY)}) nor a known synonym; "
        "rename it or map it in a csv manifest (path,label,speaker)")


def _wavs(root):
    return sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in _AUDIO and p.is_file())


def _manifest(root):
    root = Path(root)
    if root.is_file() and root.suffix.lower() == ".csv":
        return root
    for name in ("manifest.csv", "labels.csv"):
        if (root / name).is_file():
            return root / name
    return None


def detect_layout(root):
    """Guess the layout of a corpus folder (see the module doc)."""
    root = Path(root)
    if not root.exists():
        raise ParameterError(f"corpus {str(root)!r} does not exist")
    man = _manifest(root)
    if man is not None:
        with open(man, newline="") as fh:
            header = {h.strip().lower() for h in next(csv.reader(fh), [])}
        if ({"path", "file"} & header) and ({"label", "emotion"} & header):
            # EmoDB ships labels.csv too; its files also parse as EmoDB names: both work.
            return "csv"
    wavs = _wavs(root)
    if not wavs:
        raise ParameterError(f"corpus folder {str(root)!r} contains no .wav files (nor .flac/.ogg/.mp3 audio, nor a "
                             "labels.csv/manifest.csv)")
    names = [p.name for p in wavs]
    if all(_EMODB_RE.match(n) for n in names):
        return "emodb"
    if all(_RAVDESS_RE.match(n) for n in names):
        return "ravdess"
    return "folder"


def load_corpus(root, layout=None):
    """``[(path, label, speaker), ...]`` sorted by path; labels in :data:`TAXONOMY`."""
    root = Path(root)
    if layout is None:
        layout = detect_layout(root)
    if layout not in LAYOUTS:
        raise ParameterError(f"layout {layout!r} is unknown; choose one of {', '.join(LAYOUTS)} or None to detect")
    if not root.exists():
        raise ParameterError(f"corpus {str(root)!r} does not exist")
    items = {"emodb": _emodb, "ravdess": _ravdess, "folder": _folder, "csv": _csv}[layout](root)
    if not items:
        raise ParameterError(f"no labelled clips found in {str(root)!r} with layout {layout!r}")
    return sorted(items)


def _emodb(root):
    wav_dir = root / "wav" if (root / "wav").is_dir() else root
    out = []
    for p in _wavs(wav_dir):
        m = _EMODB_RE.match(p.name)
        if not m:
            raise ParameterError(f"{p.name!r} is not an EmoDB file name (<speaker:2><text:3><code>[version].wav, "
                                 f"codes {''.join(EMODB_CODES)})")
        out.append((str(p), EMODB_CODES[m.group(3)], m.group(1)))
    return out


def _ravdess(root):
    out = []
    for p in _wavs(root):
        m = _RAVDESS_RE.match(p.name)
        if not m:
            raise ParameterError(f"{p.name!r} is not a RAVDESS file name (MM-VV-EE-II-SS-RR-AA.wav)")
        code = m.group(3)
        if code not in RAVDESS_CODES:
            raise ParameterError(f"{p.name!r}: RAVDESS emotion code {code!r} is unknown (01-08)")
        out.append((str(p), RAVDESS_CODES[code], m.group(7)))
    return out


def _folder(root):
    out = []
    for p in _wavs(root):
        rel = p.relative_to(root).parts
        if len(rel) < 2:
            raise ParameterError(f"{str(p)!r} lies directly in {str(root)!r}; the 'folder' layout needs "
                                 "<root>/<label>/<file>.wav")
        folder = rel[-2]
        label_part = folder.split("_")[-1] if "_" in folder and folder.lower() not in SYNONYMS else folder
        label = normalise_label(label_part, where=f" (folder of {str(p)!r})")
        if "_" in folder and folder.lower() not in SYNONYMS:
            speaker = folder.split("_")[0]
        else:
            m = re.match(r"^([A-Za-z]+\d*)[_-]", p.stem)
            speaker = m.group(1) if m else (rel[-3] if len(rel) >= 3 else "unknown")
        out.append((str(p), label, speaker))
    return out


def _csv(root):
    man = _manifest(root)
    if man is None:
        raise ParameterError(f"no manifest.csv / labels.csv in {str(root)!r} (or pass the csv file itself)")
    base = man.parent
    out = []
    with open(man, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ParameterError(f"manifest {str(man)!r} has no rows")
    cols = {k.strip().lower(): k for k in rows[0]}
    pcol = cols.get("path") or cols.get("file")
    lcol = cols.get("label") or cols.get("emotion")
    scol = cols.get("speaker")
    if not pcol or not lcol:
        raise ParameterError(f"manifest {str(man)!r} needs columns path,label[,speaker]; has {list(rows[0])}")
    for i, r in enumerate(rows, start=2):
        rel = r[pcol].strip()
        p = Path(rel)
        if not p.is_absolute():
            p = base / rel if (base / rel).is_file() or not (base / "wav" / rel).is_file() else base / "wav" / rel
        if not p.is_file():
            raise ParameterError(f"{str(man)!r} line {i}: file {rel!r} does not exist")
        label = normalise_label(r[lcol], where=f" ({str(man)!r} line {i})")
        speaker = (r[scol].strip() if scol and r[scol] else None) or "unknown"
        out.append((str(p), label, speaker))
    return out
