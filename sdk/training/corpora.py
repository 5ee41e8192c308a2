"""Labelled speech-emotion corpora: loaders for common layouts.

Every loader returns a list of ``(path, label, speaker)`` sorted by path, with
``label`` in the shared taxonomy :data:`TAXONOMY`:

    anger, boredom, calm, disgust, fear, happiness, neutral, sadness, surprise

Clips may be in any format soundfile reads (``.wav``, ``.flac``, ``.ogg``,
``.opus``, ``.mp3``, ``.aiff``; ``.wav`` is written below) at any sample rate:
the loaders only list files (they never open them); the training code
resamples them to the pipeline's rate and skips (and lists) files it cannot
read.

Layouts. ``layout=None`` detects them in this order: **csv, emodb, ravdess,
savee, tess, folder**. ``csv`` needs a manifest with path and label columns;
``emodb``, ``ravdess``, ``savee`` and ``tess`` are chosen only when *every*
audio file under the root has that corpus's file name (``tess`` also needs at
least one file of a known TESS speaker); anything else is ``folder``.

``emodb``
    Berlin EmoDB: ``wav/<speaker:2><text:3><code:1><version>.wav`` (or the
    files directly in the folder), e.g. ``03a01Wa.wav``. Codes (German):
    W anger (Wut), L boredom (Langeweile), E disgust (Ekel), A fear (Angst),
    F happiness (Freude), T sadness (Trauer), N neutral. Speaker = 2 digits.
``ravdess``
    RAVDESS: ``MM-VV-EE-II-SS-RR-AA.wav`` (any sub-folders, e.g.
    ``Actor_01/03-01-05-01-02-01-01.wav``). EE: 01 neutral, 02 calm,
    03 happy, 04 sad, 05 angry, 06 fearful, 07 disgust, 08 surprised.
    Speaker = actor (last field, 2 digits).
``savee``
    SAVEE: ``<speaker>_<code><nn>.wav`` in one folder (the Kaggle export's
    ``ALL/``; any sub-folders), e.g. ``DC_a01.wav``, ``JE_sa15.wav``; speaker
    = the 2-letter prefix, upper-cased (DC, JE, JK, KL). Or the original
    ``AudioData/<speaker>/<code><nn>.wav`` (root = ``AudioData`` or the folder
    above it); speaker = that folder. Codes: a anger, d disgust, f fear,
    h happiness, n neutral, sa sadness, su surprise.
``tess``
    TESS: ``<speaker>_<word>_<emotion>.wav``, flat or in TESS's
    ``<speaker>_<emotion>/`` sub-folders (``OAF_angry/OAF_back_angry.wav``,
    ``YAF_pleasant_surprised/YAF_dog_ps.wav``). Case is ignored (``YAF_``,
    ``OAF_Fear``, ``_Fear``). Emotions: angry, disgust, fear, happy, neutral,
    ps (pleasant surprise -> surprise), sad; the file name's emotion must agree
    with its sub-folder's. Speakers: OAF (older talker), YAF (younger).
    A file whose prefix is not OAF/YAF takes the speaker of its
    ``OAF_*``/``YAF_*`` sub-folder; if it has none, the erratum table
    :data:`TESS_SPEAKER_ERRATA` is used: ``OA`` -> ``OAF`` — the original TESS
    release holds one misnamed file, ``OAF_neutral/OA_bite_neutral.wav``, and
    ``OA`` is a prefix of OAF only. Any other prefix is an unknown speaker.
``folder``
    One folder per label: ``<root>/<label>/*.wav``, also nested one level
    (``<root>/<anything>/<label>/*.wav``, e.g. TESS's ``OAF_angry``: the part
    after the last ``_`` is used). Folder names go through :data:`SYNONYMS`
    (angry->anger, happy->happiness, sad->sadness, ps/surprised->surprise,
    fearful->fear, ...). Speaker, first that applies: the label folder's
    prefix before ``_`` (TESS ``OAF``/``YAF``); a recognised corpus file name
    (EmoDB, RAVDESS, SAVEE, TESS: its speaker as above); the file name prefix
    (letters, optional digits) before ``_`` or ``-`` (``spk07_x.wav``); the
    folder above the label folder (``<root>/<speaker>/<label>/``); else the
    speaker is unknown (see below).
``csv``
    A manifest ``labels.csv`` / ``manifest.csv`` (or the csv file itself)
    with columns ``path`` (or ``file``), ``label`` (or ``emotion``) and
    ``speaker`` (or ``speaker_id``, ``actor``); paths relative to the
    manifest's folder (or its ``wav/`` sub-folder). Labels go through
    :data:`SYNONYMS`. A row with no speaker (no column, an empty cell, or
    ``unknown``/``none``/``nan``/``n/a``/``?``/``-``) takes it from a
    recognised corpus file name (EmoDB, RAVDESS, SAVEE, TESS), else the
    speaker is unknown.

Unknown speakers. A clip whose speaker cannot be parsed is never pooled
silently. ``load_corpus(..., unknown_speaker=...)``:

``"error"`` (default)
    ParameterError listing (up to :data:`MAX_LISTED`) such files and the fixes.
``"per-file"``
    each such clip is its own speaker, ``"file:<path relative to the root>"``:
    a speaker-independent split can never put two of them on both sides.
``"pool"``
    all of them share the speaker ``"unknown"`` (a warning on stderr says how
    many); speaker-independent protocols then treat them as one speaker.
"""

import csv
import re
import sys
from pathlib import Path

from affectedge.errors import ParameterError

__all__ = ["LAYOUTS", "SYNONYMS", "TAXONOMY", "UNKNOWN_SPEAKER", "detect_layout", "load_corpus", "normalise_label"]

TAXONOMY = ("anger", "boredom", "calm", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")
LAYOUTS = ("emodb", "ravdess", "savee", "tess", "folder", "csv")
UNKNOWN_SPEAKER = ("error", "per-file", "pool")
MAX_LISTED = 10  # files named in an unknown-speaker error or warning

EMODB_CODES = {"W": "anger", "L": "boredom", "E": "disgust", "A": "fear", "F": "happiness", "T": "sadness",
               "N": "neutral"}
RAVDESS_CODES = {"01": "neutral", "02": "calm", "03": "happiness", "04": "sadness", "05": "anger", "06": "fear",
                 "07": "disgust", "08": "surprise"}
SAVEE_CODES = {"a": "anger", "d": "disgust", "f": "fear", "h": "happiness", "n": "neutral", "sa": "sadness",
               "su": "surprise"}
SAVEE_SPEAKERS = ("DC", "JE", "JK", "KL")
TESS_SPEAKERS = ("OAF", "YAF")
# Misnamed files of the original TESS release (see the module doc): stray prefix -> speaker.
TESS_SPEAKER_ERRATA = {"OA": "OAF"}
TESS_LABELS = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")
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
_SAVEE_FLAT_RE = re.compile(r"^([A-Za-z]{2})_([A-Za-z]{1,2})(\d\d)" + _EXT)
_SAVEE_BARE_RE = re.compile(r"^([A-Za-z]{1,2})(\d\d)" + _EXT)
_TESS_RE = re.compile(r"^([A-Za-z]+)_([A-Za-z]+)_([A-Za-z][A-Za-z_-]*)" + _EXT)
_MISSING = {"", "unknown", "none", "nan", "n/a", "?", "-"}

_SAVEE_PATTERN = ("<speaker>_<code><nn>.wav (e.g. DC_a01.wav) or AudioData/<speaker>/<code><nn>.wav, codes "
                  + ", ".join(f"{c} {lab}" for c, lab in SAVEE_CODES.items()))
_TESS_PATTERN = ("<speaker>_<word>_<emotion>.wav (e.g. OAF_back_angry.wav), speaker OAF or YAF, emotion angry, "
                 "disgust, fear, happy, neutral, ps (pleasant surprise) or sad")


def normalise_label(name, *, where=""):
    """A label or folder name in the shared taxonomy; ParameterError if unknown."""
    key = str(name).strip().lower().replace(" ", "_").replace("-", "_")
    if key in SYNONYMS:
        return SYNONYMS[key]
    raise ParameterError(
        f"label {name!r}{where} is not in the shared taxonomy ({', '.join(TAXONOMY)}) nor a known synonym; "
        "rename it or map it in a csv manifest (path,label,speaker)")


def _label_or_none(name):
    try:
        return normalise_label(name)
    except ParameterError:
        return None


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


# ------------------------------------------------------------ name parsers

def _savee_parse(p, root):
    """``(label, speaker or None)`` of a SAVEE-shaped name; None if not that shape; ParameterError on a bad code."""
    m = _SAVEE_FLAT_RE.match(p.name)
    if m:
        spk, code = m.group(1).upper(), m.group(2).lower()
    else:
        m = _SAVEE_BARE_RE.match(p.name)
        if not m:
            return None
        code = m.group(1).lower()
        parent = p.parent
        # AudioData/<speaker>/<code><nn>.wav: the folder is the speaker (not the root, not a label folder)
        spk = parent.name.upper() if parent != root and _label_or_none(parent.name) is None else None
    if code not in SAVEE_CODES:
        raise ParameterError(f"{str(p)!r}: SAVEE emotion code {code!r} is unknown; expected {_SAVEE_PATTERN}")
    return SAVEE_CODES[code], spk


def _savee_detect(p, root):
    """True when ``p`` certainly is a SAVEE file (used for layout detection only)."""
    m = _SAVEE_FLAT_RE.match(p.name)
    if m:
        return m.group(2).lower() in SAVEE_CODES
    m = _SAVEE_BARE_RE.match(p.name)
    parent = p.parent.name
    return bool(m and m.group(1).lower() in SAVEE_CODES and p.parent != root
                and re.fullmatch(r"[A-Za-z]{2}", parent) and parent.lower() not in SYNONYMS)


def _tess_folder(parent):
    """``(speaker, label)`` of a TESS sub-folder ``OAF_angry`` / ``YAF_pleasant_surprised``; None otherwise."""
    m = re.fullmatch(r"([A-Za-z]+)_(.+)", parent.name)
    if not m or m.group(1).upper() not in TESS_SPEAKERS:
        return None
    return m.group(1).upper(), _label_or_none(m.group(2))


def _tess_parse(p):
    """``(label, speaker or None)`` of a TESS-shaped name; None if not that shape; ParameterError on conflicts."""
    m = _TESS_RE.match(p.name)
    if not m:
        return None
    prefix, token = m.group(1).upper(), m.group(3)
    label = _label_or_none(token)
    if label not in TESS_LABELS:
        raise ParameterError(f"{str(p)!r}: {token!r} is not a TESS emotion; expected {_TESS_PATTERN}")
    folder = _tess_folder(p.parent)
    if folder and folder[1] is not None and folder[1] != label:
        raise ParameterError(f"{str(p)!r}: the file name says {label!r} but its folder {p.parent.name!r} says "
                             f"{folder[1]!r}; rename one of them or list the clips in a csv manifest")
    if prefix in TESS_SPEAKERS:
        if folder and folder[0] != prefix:
            raise ParameterError(f"{str(p)!r}: the file name says speaker {prefix!r} but its folder "
                                 f"{p.parent.name!r} says {folder[0]!r}; rename one of them or list the clips in a "
                                 "csv manifest")
        return label, prefix
    if folder:  # stray prefix (OA_bite_neutral.wav in OAF_neutral/): the speaker's folder decides
        return label, folder[0]
    return label, TESS_SPEAKER_ERRATA.get(prefix)


def _tess_detect(p):
    m = _TESS_RE.match(p.name)
    return bool(m and _label_or_none(m.group(3)) in TESS_LABELS)


def _name_speaker(p, root):
    """Speaker from a recognised corpus file name (EmoDB, RAVDESS, SAVEE, TESS), else None."""
    m = _EMODB_RE.match(p.name)
    if m:
        return m.group(1)
    m = _RAVDESS_RE.match(p.name)
    if m:
        return m.group(7)
    m = _SAVEE_FLAT_RE.match(p.name)
    if m and m.group(2).lower() in SAVEE_CODES:
        return m.group(1).upper()
    if _tess_detect(p):
        try:
            return _tess_parse(p)[1]
        except ParameterError:
            return None
    return None


# ------------------------------------------------------------ public API

def detect_layout(root):
    """Guess the layout of a corpus folder: csv, emodb, ravdess, savee, tess, folder (see the module doc)."""
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
    if all(_savee_detect(p, root) for p in wavs):
        return "savee"
    if all(_tess_detect(p) for p in wavs) and any(_name_speaker(p, root) for p in wavs):
        return "tess"
    return "folder"


def load_corpus(root, layout=None, *, unknown_speaker="error"):
    """``[(path, label, speaker), ...]`` sorted by path; labels in :data:`TAXONOMY`.

    ``layout``: one of :data:`LAYOUTS` or None to detect it. ``unknown_speaker``: what to do with clips whose
    speaker cannot be parsed: ``"error"`` (ParameterError naming them), ``"per-file"`` (each its own speaker
    ``"file:<relative path>"``) or ``"pool"`` (one speaker ``"unknown"``, with a warning on stderr).
    """
    root = Path(root)
    if unknown_speaker not in UNKNOWN_SPEAKER:
        raise ParameterError(f"unknown_speaker={unknown_speaker!r} is not one of {', '.join(UNKNOWN_SPEAKER)}")
    detected = layout is None
    if layout is None:
        layout = detect_layout(root)
    if layout not in LAYOUTS:
        raise ParameterError(f"layout {layout!r} is unknown; choose one of {', '.join(LAYOUTS)} or None to detect")
    if not root.exists():
        raise ParameterError(f"corpus {str(root)!r} does not exist")
    loader = {"emodb": _emodb, "ravdess": _ravdess, "savee": _savee, "tess": _tess, "csv": _csv,
              "folder": lambda r: _folder(r, detected)}[layout]
    items = loader(root)
    if not items:
        raise ParameterError(f"no labelled clips found in {str(root)!r} with layout {layout!r}")
    return sorted(_resolve_speakers(items, root, layout, unknown_speaker))


def _resolve_speakers(items, root, layout, policy):
    missing = [p for p, _, s in items if s is None]
    if not missing:
        return items
    base = root.parent if root.is_file() else root

    def rel(p):
        try:
            return Path(p).relative_to(base).as_posix()
        except ValueError:
            return Path(p).as_posix()

    listed = ", ".join(repr(rel(p)) for p in missing[:MAX_LISTED])
    more = f" and {len(missing) - MAX_LISTED} more" if len(missing) > MAX_LISTED else ""
    what = f"{len(missing)} of {len(items)} clip(s) in {str(root)!r} (layout {layout!r})"
    if policy == "error":
        raise ParameterError(
            f"the speaker of {what} could not be parsed: {listed}{more}. Speaker-independent evaluation needs it. "
            "Fix: add a 'speaker' column to a csv manifest (path,label,speaker); or rename the files or folders so "
            "the speaker can be read (<label>/<speaker>_<name>.wav, <root>/<speaker>/<label>/<name>.wav, or the "
            "corpus's own naming); or pass unknown_speaker='per-file' to make each such clip its own speaker "
            "(keeps speaker-independent splits honest), or unknown_speaker='pool' to pool them as one speaker "
            "'unknown' knowingly")
    if policy == "per-file":
        return [(p, lab, s if s is not None else f"file:{rel(p)}") for p, lab, s in items]
    print(f"affectedge: warning: the speaker of {what} could not be parsed; pooled as one speaker 'unknown' "
          f"(unknown_speaker='pool'): {listed}{more}", file=sys.stderr, flush=True)
    return [(p, lab, s if s is not None else "unknown") for p, lab, s in items]


# ------------------------------------------------------------ loaders
# Each returns [(path, label, speaker or None)]; None = could not be parsed (load_corpus applies the policy).

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


def _savee(root):
    out = []
    for p in _wavs(root):
        got = _savee_parse(p, root)
        if got is None:
            raise ParameterError(f"{str(p)!r} is not a SAVEE file name; expected {_SAVEE_PATTERN}")
        out.append((str(p), got[0], got[1]))
    return out


def _tess(root):
    out = []
    for p in _wavs(root):
        got = _tess_parse(p)
        if got is None:
            raise ParameterError(f"{str(p)!r} is not a TESS file name; expected {_TESS_PATTERN}")
        out.append((str(p), got[0], got[1]))
    return out


def _folder(root, detected=False):
    out = []
    for p in _wavs(root):
        rel = p.relative_to(root).parts
        if len(rel) < 2:
            hint = (" (its name matches none of the emodb, ravdess, savee, tess file names either, so the layout "
                    "was detected as 'folder')") if detected else ""
            raise ParameterError(f"{str(p)!r} lies directly in {str(root)!r}; the 'folder' layout needs "
                                 f"<root>/<label>/<file>.wav{hint}")
        folder = rel[-2]
        label_part = folder.split("_")[-1] if "_" in folder and folder.lower() not in SYNONYMS else folder
        label = normalise_label(label_part, where=f" (folder of {str(p)!r})")
        if "_" in folder and folder.lower() not in SYNONYMS:
            speaker = folder.split("_")[0]
            speaker = speaker.upper() if speaker.upper() in TESS_SPEAKERS else speaker
        else:
            speaker = _name_speaker(p, root)
            if speaker is None:
                m = re.match(r"^([A-Za-z]+\d*)[_-]", p.stem)
                speaker = m.group(1) if m else (rel[-3] if len(rel) >= 3 else None)
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
    scol = cols.get("speaker") or cols.get("speaker_id") or cols.get("actor")
    if not pcol or not lcol:
        raise ParameterError(f"manifest {str(man)!r} needs columns path,label[,speaker]; has {list(rows[0])}")
    for i, r in enumerate(rows, start=2):
        rel = (r[pcol] or "").strip()
        p = Path(rel)
        if not p.is_absolute():
            p = base / rel if (base / rel).is_file() or not (base / "wav" / rel).is_file() else base / "wav" / rel
        if not rel or not p.is_file():
            raise ParameterError(f"{str(man)!r} line {i}: file {rel!r} does not exist")
        label = normalise_label(r[lcol] or "", where=f" ({str(man)!r} line {i})")
        speaker = (r[scol] or "").strip() if scol else ""
        if speaker.lower() in _MISSING:
            speaker = _name_speaker(p, base)
        out.append((str(p), label, speaker))
    return out
