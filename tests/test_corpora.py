"""Corpus loaders (training.corpora): layouts, labels, speakers, detection and the unknown-speaker policy.

Fixture corpora are built in tmp_path from tiny synthetic WAVs written at 16, 44.1 and 48 kHz (the loaders only
list files; resampling is the training code's job) and, where ../shared/data is present, from real EmoDB clips.
No model is trained here.
"""

import os
import shutil

import numpy as np
import pytest

from affectedge.errors import ParameterError
from affectedge.training.corpora import LAYOUTS, TAXONOMY, UNKNOWN_SPEAKER, detect_layout, load_corpus
from _speech import EMODB_CODES, pick_emodb

sf = pytest.importorskip("soundfile")

RATES = (16000, 44100, 48000)


def _wav(path, i=0):
    """A 20 ms tone at one of RATES (varies with i)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sr = RATES[i % len(RATES)]
    t = np.arange(int(0.02 * sr)) / sr
    sf.write(str(path), (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sr, subtype="PCM_16")
    return path


def _make(root, names):
    for i, n in enumerate(names):
        _wav(root / n, i)
    return root


def _got(root, items):
    """{relative posix path: (label, speaker)}."""
    return {os.path.relpath(p, root).replace(os.sep, "/"): (lab, s) for p, lab, s in items}


@pytest.fixture(scope="module")
def emodb(shared_data):
    root = shared_data / "speech" / "emodb"
    if not (root / "wav").is_dir():
        pytest.skip("EmoDB is not present in ../shared/data")
    return root




def test_contract():
    assert set(LAYOUTS) == {"emodb", "ravdess", "savee", "tess", "folder", "csv"}
    assert UNKNOWN_SPEAKER == ("error", "per-file", "pool")


# ------------------------------------------------------------------ SAVEE

SAVEE_FLAT = {"DC_a01.wav": ("anger", "DC"), "DC_d02.wav": ("disgust", "DC"), "JE_sa15.wav": ("sadness", "JE"),
              "JE_f03.wav": ("fear", "JE"), "KL_su03.wav": ("surprise", "KL"), "KL_h07.wav": ("happiness", "KL"),
              "JK_n30.wav": ("neutral", "JK"), "JK_sa01.wav": ("sadness", "JK")}


def test_savee_flat(tmp_path):
    root = _make(tmp_path / "savee", SAVEE_FLAT)
    assert detect_layout(root) == "savee"
    for layout in (None, "savee"):
        assert _got(root, load_corpus(root, layout)) == SAVEE_FLAT


def test_savee_kaggle_all_folder(tmp_path):
    # the Kaggle export: every file in one ALL/ folder, passed as the root or the folder above it
    root = _make(tmp_path / "kaggle" / "ALL", SAVEE_FLAT)
    for r in (root, root.parent):
        assert detect_layout(r) == "savee"
        assert {os.path.basename(p): (lab, s) for p, lab, s in load_corpus(r)} == SAVEE_FLAT


def test_savee_original_audiodata(tmp_path):
    names = {"AudioData/DC/a01.wav": ("anger", "DC"), "AudioData/DC/sa02.wav": ("sadness", "DC"),
             "AudioData/JE/su15.wav": ("surprise", "JE"), "AudioData/JK/n30.wav": ("neutral", "JK"),
             "AudioData/KL/h03.wav": ("happiness", "KL"), "AudioData/KL/d11.wav": ("disgust", "KL")}
    root = _make(tmp_path / "savee", names)
    assert detect_layout(root) == "savee"
    assert _got(root, load_corpus(root)) == names
    audio = root / "AudioData"  # root = AudioData itself
    assert detect_layout(audio) == "savee"
    assert {s for _, _, s in load_corpus(audio)} == {"DC", "JE", "JK", "KL"}


def test_savee_bad_code_and_name(tmp_path):
    root = _make(tmp_path / "bad", ["DC_a01.wav", "DC_x02.wav"])
    with pytest.raises(ParameterError, match=r"DC_x02\.wav.*code 'x' is unknown.*<speaker>_<code><nn>\.wav"):
        load_corpus(root, "savee")
    root = _make(tmp_path / "bad2", ["DC_a01.wav", "hello.wav"])
    with pytest.raises(ParameterError, match=r"hello\.wav.*not a SAVEE file name.*<speaker>_<code><nn>\.wav"):
        load_corpus(root, "savee")
    assert detect_layout(root) == "folder"  # one non-SAVEE name: not detected as SAVEE


def test_savee_codes_in_label_folders_are_not_savee(tmp_path):
    # folder-per-label whose files happen to be named like SAVEE's bare codes: the folder is the label, and the
    # speaker is unknown (not the label folder)
    root = _make(tmp_path / "lab", ["angry/a01.wav", "sad/sa02.wav"])
    assert detect_layout(root) == "folder"
    with pytest.raises(ParameterError, match="speaker of 2 of 2 clip"):
        load_corpus(root)
    with pytest.raises(ParameterError, match="speaker of 2 of 2 clip"):
        load_corpus(root, "savee")
    # SAVEE file names inside label folders: SAVEE parses them (label from the code, speaker from the prefix)
    root = _make(tmp_path / "lab2", ["angry/DC_a01.wav", "sad/KL_sa02.wav"])
    assert detect_layout(root) == "savee"
    assert _got(root, load_corpus(root)) == {"angry/DC_a01.wav": ("anger", "DC"), "sad/KL_sa02.wav": ("sadness", "KL")}
    assert _got(root, load_corpus(root, "folder")) == _got(root, load_corpus(root))


# ------------------------------------------------------------------ TESS

def test_tess_flat_with_stray_names(tmp_path):
    names = {"OAF_back_angry.wav": ("anger", "OAF"), "YAF_dog_ps.wav": ("surprise", "YAF"),
             "OAF_bar_disgust.wav": ("disgust", "OAF"), "YAF_base_Fear.wav": ("fear", "YAF"),
             "yaf_bath_happy.wav": ("happiness", "YAF"), "OAF_bean_sad.wav": ("sadness", "OAF"),
             "OA_bite_neutral.wav": ("neutral", "OAF"),  # the release's misnamed file: erratum OA -> OAF
             "YAF_beg_pleasant_surprise.wav": ("surprise", "YAF")}
    root = _make(tmp_path / "tess", names)
    assert detect_layout(root) == "tess"
    for layout in (None, "tess"):
        assert _got(root, load_corpus(root, layout)) == names


def test_tess_subfolders_real_download_names(tmp_path):
    # the folder names of the Kaggle/Dataverse download, including its case variants and the misnamed file
    names = {"TESS Toronto emotional speech set data/OAF_angry/OAF_back_angry.wav": ("anger", "OAF"),
             "TESS Toronto emotional speech set data/OAF_Fear/OAF_back_fear.wav": ("fear", "OAF"),
             "TESS Toronto emotional speech set data/OAF_Pleasant_surprise/OAF_back_ps.wav": ("surprise", "OAF"),
             "TESS Toronto emotional speech set data/OAF_Sad/OAF_back_sad.wav": ("sadness", "OAF"),
             "TESS Toronto emotional speech set data/OAF_neutral/OA_bite_neutral.wav": ("neutral", "OAF"),
             "TESS Toronto emotional speech set data/YAF_pleasant_surprised/YAF_dog_ps.wav": ("surprise", "YAF"),
             "TESS Toronto emotional speech set data/YAF_fear/YAF_neat_Fear.wav": ("fear", "YAF"),
             "TESS Toronto emotional speech set data/YAF_disgust/YAF_germ_disgust.wav": ("disgust", "YAF"),
             "TESS Toronto emotional speech set data/YAF_neutral/YA_bite_neutral.wav": ("neutral", "YAF")}
    root = _make(tmp_path / "tess", names)
    assert detect_layout(root) == "tess"
    assert _got(root, load_corpus(root)) == names
    # the folder layout reads the same labels and speakers from the sub-folders
    assert _got(root, load_corpus(root, "folder")) == names


def test_tess_unknown_prefix_is_reported(tmp_path):
    root = _make(tmp_path / "tess", ["OAF_back_angry.wav", "YAF_dog_ps.wav", "XX_back_sad.wav", "YA_bite_happy.wav"])
    assert detect_layout(root) == "tess"
    with pytest.raises(ParameterError) as e:
        load_corpus(root)
    msg = str(e.value)
    assert "speaker of 2 of 4 clip(s)" in msg and "'XX_back_sad.wav'" in msg and "'YA_bite_happy.wav'" in msg
    assert "OAF_back_angry" not in msg
    got = _got(root, load_corpus(root, unknown_speaker="per-file"))
    assert got["XX_back_sad.wav"] == ("sadness", "file:XX_back_sad.wav")
    assert got["YA_bite_happy.wav"] == ("happiness", "file:YA_bite_happy.wav")
    assert got["OAF_back_angry.wav"] == ("anger", "OAF")


def test_tess_errors(tmp_path):
    root = _make(tmp_path / "calm", ["OAF_back_angry.wav", "OAF_bar_calm.wav"])
    with pytest.raises(ParameterError, match=r"OAF_bar_calm\.wav.*'calm' is not a TESS emotion.*<speaker>_<word>"):
        load_corpus(root, "tess")
    root = _make(tmp_path / "name", ["OAF_back_angry.wav", "angry.wav"])
    with pytest.raises(ParameterError, match=r"angry\.wav.*not a TESS file name.*OAF or YAF"):
        load_corpus(root, "tess")
    root = _make(tmp_path / "label", ["OAF_angry/OAF_back_sad.wav"])
    with pytest.raises(ParameterError, match=r"OAF_back_sad\.wav.*says 'sadness' but its folder 'OAF_angry'"):
        load_corpus(root, "tess")
    root = _make(tmp_path / "spk", ["YAF_angry/OAF_back_angry.wav"])
    with pytest.raises(ParameterError, match=r"speaker 'OAF' but its folder 'YAF_angry' says 'YAF'"):
        load_corpus(root, "tess")
    # names that only look like TESS (no known speaker at all) are not detected as TESS
    root = _make(tmp_path / "generic", ["my_clip_angry.wav", "my_clip_sad.wav"])
    assert detect_layout(root) == "folder"


# ------------------------------------------------------------------ RAVDESS / EmoDB names (synthetic)

def test_ravdess_and_emodb_names(tmp_path):
    rav = {"Actor_01/03-01-05-01-02-01-01.wav": ("anger", "01"), "Actor_01/03-01-02-01-01-01-01.wav": ("calm", "01"),
           "Actor_24/03-01-08-02-02-02-24.wav": ("surprise", "24"), "Actor_24/03-02-03-01-01-01-24.wav":
               ("happiness", "24")}
    root = _make(tmp_path / "rav", rav)
    assert detect_layout(root) == "ravdess"
    assert _got(root, load_corpus(root)) == rav
    bad = _make(tmp_path / "rav_bad", ["03-01-09-01-01-01-01.wav"])
    with pytest.raises(ParameterError, match=r"03-01-09-01-01-01-01\.wav.*code '09' is unknown"):
        load_corpus(bad)
    emo = {"wav/03a01Wa.wav": ("anger", "03"), "wav/16b10Lb.wav": ("boredom", "16"), "wav/11a02Ac.wav": ("fear", "11")}
    root = _make(tmp_path / "emo", emo)
    assert detect_layout(root) == "emodb"
    assert _got(root, load_corpus(root)) == emo
    bad = _make(tmp_path / "emo_bad", ["wav/03a01Wa.wav", "wav/03a01Xa.wav"])
    with pytest.raises(ParameterError, match=r"03a01Xa\.wav.*not an EmoDB file name"):
        load_corpus(bad, "emodb")


# ------------------------------------------------------------------ folder / csv and unknown speakers

def test_folder_speakers(tmp_path):
    names = {"angry/spk07_a.wav": ("anger", "spk07"),           # file-name prefix
             "angry/03a01Wa.wav": ("anger", "03"),              # recognised EmoDB name
             "sad/03-01-04-01-01-01-12.wav": ("sadness", "12"),  # recognised RAVDESS name
             "sad/KL_sa02.wav": ("sadness", "KL"),              # recognised SAVEE name
             "happy/OA_bite_happy.wav": ("happiness", "OAF"),   # recognised TESS name (erratum)
             "YAF_fear/any.wav": ("fear", "YAF")}               # TESS-style label folder
    root = _make(tmp_path / "mixed", names)
    assert detect_layout(root) == "folder"
    assert _got(root, load_corpus(root)) == names
    nested = _make(tmp_path / "nested", ["s01/angry/x.wav", "s02/ps/y.wav"])  # <root>/<speaker>/<label>/
    assert _got(nested, load_corpus(nested)) == {"s01/angry/x.wav": ("anger", "s01"),
                                                 "s02/ps/y.wav": ("surprise", "s02")}


def test_unknown_speaker_error_per_file_pool(tmp_path, capsys):
    names = [f"neutral/{i:02d}.wav" for i in range(12)] + ["angry/spk1_a.wav"]
    root = _make(tmp_path / "f", names)
    with pytest.raises(ParameterError) as e:
        load_corpus(root)
    msg = str(e.value)
    assert "speaker of 12 of 13 clip(s)" in msg and "layout 'folder'" in msg
    assert "'neutral/00.wav'" in msg and "'neutral/09.wav'" in msg and "and 2 more" in msg  # 10 listed
    assert "'neutral/10.wav'" not in msg and "spk1_a" not in msg
    for fix in ("'speaker' column", "rename", "unknown_speaker='per-file'", "unknown_speaker='pool'"):
        assert fix in msg
    per = load_corpus(root, unknown_speaker="per-file")
    spk = {os.path.relpath(p, root).replace(os.sep, "/"): s for p, _, s in per}
    assert spk["neutral/03.wav"] == "file:neutral/03.wav" and spk["angry/spk1_a.wav"] == "spk1"
    assert len({s for _, _, s in per}) == 13 and "unknown" not in {s for _, _, s in per}
    assert capsys.readouterr().err == ""
    pooled = load_corpus(root, unknown_speaker="pool")
    assert sorted({s for _, _, s in pooled}) == ["spk1", "unknown"]
    assert sum(s == "unknown" for _, _, s in pooled) == 12
    err = capsys.readouterr().err
    assert "warning" in err and "12 of 13" in err and "'unknown'" in err and "neutral/00.wav" in err
    assert [p for p, _, _ in per] == [p for p, _, _ in pooled] == sorted(p for p, _, _ in per)
    with pytest.raises(ParameterError, match="unknown_speaker='guess' is not one of error, per-file, pool"):
        load_corpus(root, unknown_speaker="guess")


def test_csv_with_and_without_speaker(tmp_path):
    clips = _make(tmp_path / "m" / "wav", ["a.wav", "b.wav", "c.wav", "03a01Wa.wav"])
    m = tmp_path / "m"
    (m / "manifest.csv").write_text("path,label,speaker\na.wav,angry,s1\nb.wav,sad,s2\nc.wav,ps,s1\n"
                                    "03a01Wa.wav,anger,x9\n")
    assert detect_layout(m) == "csv"
    assert _got(clips, load_corpus(m)) == {"a.wav": ("anger", "s1"), "b.wav": ("sadness", "s2"),
                                           "c.wav": ("surprise", "s1"), "03a01Wa.wav": ("anger", "x9")}
    # no speaker column: a recognised name still gives its speaker; the others are reported
    (m / "manifest.csv").write_text("file,emotion\na.wav,angry\nb.wav,sad\n03a01Wa.wav,anger\n")
    with pytest.raises(ParameterError) as e:
        load_corpus(m)
    msg = str(e.value)
    assert "speaker of 2 of 3 clip(s)" in msg and "'wav/a.wav'" in msg and "'wav/b.wav'" in msg
    assert "03a01Wa" not in msg and "'speaker' column" in msg
    got = _got(clips, load_corpus(m, unknown_speaker="per-file"))
    assert got == {"a.wav": ("anger", "file:wav/a.wav"), "b.wav": ("sadness", "file:wav/b.wav"),
                   "03a01Wa.wav": ("anger", "03")}
    # empty / 'unknown' speaker cells are missing speakers too (never a silent pool)
    (m / "manifest.csv").write_text("path,label,speaker\na.wav,angry,\nb.wav,sad,unknown\nc.wav,ps,s3\n")
    with pytest.raises(ParameterError, match=r"speaker of 2 of 3 clip.*'wav/a\.wav', 'wav/b\.wav'"):
        load_corpus(m)
    # the csv file itself as the root
    assert {s for _, _, s in load_corpus(m / "manifest.csv", unknown_speaker="pool")} == {"unknown", "s3"}


def test_rates_are_not_the_loaders_concern(tmp_path):
    root = _make(tmp_path / "savee", SAVEE_FLAT)  # written at 16, 44.1 and 48 kHz in turn
    assert {sf.info(p).samplerate for p, _, _ in load_corpus(root)} == set(RATES)
    assert all(lab in TAXONOMY for _, lab, _ in load_corpus(root))


# ------------------------------------------------------------------ real EmoDB clips (moved from test_models_speech)

def test_emodb_loader_real(emodb):
    items = load_corpus(emodb, "emodb")
    assert len(items) == 535
    assert {s for _, _, s in items} == {"03", "08", "09", "10", "11", "12", "13", "14", "15", "16"}
    assert {lab for _, lab, _ in items} == set(EMODB_CODES)
    assert detect_layout(emodb) in ("csv", "emodb")
    auto = load_corpus(emodb)  # labels.csv manifest: same clips, labels and speakers
    assert [(os.path.basename(p), lab, s) for p, lab, s in auto] == [
        (os.path.basename(p), lab, s) for p, lab, s in items]
    p, lab, s = next(it for it in items if it[0].endswith("03a01Wa.wav"))
    assert (lab, s) == ("anger", "03")


def test_ravdess_layout(emodb, tmp_path):
    code = {"neutral": "01", "happiness": "03", "sadness": "04", "anger": "05", "fear": "06", "disgust": "07"}
    for i, (path, lab, spk) in enumerate(pick_emodb(emodb, 1)):
        if lab not in code:
            continue
        actor = "01" if spk == "03" else "02"
        d = tmp_path / f"Actor_{actor}"
        d.mkdir(exist_ok=True)
        os.symlink(path, d / f"03-01-{code[lab]}-01-01-{i % 2 + 1:02d}-{actor}.wav")
    assert detect_layout(tmp_path) == "ravdess"
    items = load_corpus(tmp_path)
    assert {s for _, _, s in items} == {"01", "02"}
    assert {lab for _, lab, _ in items} == set(code)


def test_real_clips_under_savee_and_tess_names(emodb, tmp_path):
    savee = {"anger": "a", "disgust": "d", "fear": "f", "happiness": "h", "neutral": "n", "sadness": "sa"}
    tess = {"anger": "angry", "disgust": "disgust", "fear": "Fear", "happiness": "happy", "neutral": "neutral",
            "sadness": "sad"}
    want_s, want_t = {}, {}
    for i, (path, lab, spk) in enumerate(pick_emodb(emodb, 1)):
        if lab not in savee:
            continue
        who = "DC" if spk == "03" else "JE"
        (tmp_path / "savee").mkdir(exist_ok=True)
        shutil.copy(path, tmp_path / "savee" / f"{who}_{savee[lab]}{i:02d}.wav")
        want_s[f"{who}_{savee[lab]}{i:02d}.wav"] = (lab, who)
        talker = "OAF" if spk == "03" else "YAF"
        d = tmp_path / "tess" / f"{talker}_{tess[lab]}"
        d.mkdir(parents=True, exist_ok=True)
        os.symlink(path, d / f"{talker}_word{chr(97 + i % 26)}_{tess[lab]}.wav")
        want_t[f"{talker}_{tess[lab]}/{talker}_word{chr(97 + i % 26)}_{tess[lab]}.wav"] = (lab, talker)
    assert detect_layout(tmp_path / "savee") == "savee" and detect_layout(tmp_path / "tess") == "tess"
    assert _got(tmp_path / "savee", load_corpus(tmp_path / "savee")) == want_s
    assert _got(tmp_path / "tess", load_corpus(tmp_path / "tess")) == want_t
    assert {sf.info(p).samplerate for p, _, _ in load_corpus(tmp_path / "tess")} == {16000}


def test_folder_and_csv_layouts(emodb, tmp_path):
    names = {"anger": "angry", "happiness": "happy", "sadness": "sad", "fear": "fearful", "neutral": "neutral"}
    folder = tmp_path / "tess"
    rows = ["path,label,speaker"]
    for i, (path, lab, spk) in enumerate(pick_emodb(emodb, 1)):
        if lab in names:
            d = folder / f"{'OAF' if spk == '03' else 'YAF'}_{names[lab]}"
            d.mkdir(parents=True, exist_ok=True)
            os.symlink(path, d / f"clip{i}.wav")
        rows.append(f"{path},{lab},{spk}")
    assert detect_layout(folder) == "folder"
    items = load_corpus(folder)
    assert {lab for _, lab, _ in items} == set(names)
    assert {s for _, _, s in items} == {"OAF", "YAF"}
    # plain folder-per-label with synonym 'ps': its one clip has no speaker, so the default refuses it and the
    # per-file option keeps it (as its own speaker)
    plain = tmp_path / "plain"
    (plain / "ps").mkdir(parents=True)
    shutil.copy(items[0][0], plain / "ps" / "a.wav")
    with pytest.raises(ParameterError, match=r"speaker of 1 of 1 clip.*'ps/a\.wav'"):
        load_corpus(plain, "folder")
    assert load_corpus(plain, "folder", unknown_speaker="per-file")[0][1] == "surprise"
    assert load_corpus(plain, "folder", unknown_speaker="per-file")[0][2] == "file:ps/a.wav"
    (tmp_path / "man").mkdir()
    (tmp_path / "man" / "manifest.csv").write_text("\n".join(rows) + "\n")
    got = load_corpus(tmp_path / "man")
    assert detect_layout(tmp_path / "man") == "csv"
    assert len(got) == len(rows) - 1 and {s for _, _, s in got} == {"03", "08"}


def test_loader_errors(emodb, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ParameterError, match="no .wav files"):
        load_corpus(tmp_path / "empty")
    bad = tmp_path / "bad" / "grumpy"
    bad.mkdir(parents=True)
    os.symlink(pick_emodb(emodb, 1)[0][0], bad / "x.wav")
    with pytest.raises(ParameterError, match="grumpy.*not in the shared taxonomy"):
        load_corpus(tmp_path / "bad")
    with pytest.raises(ParameterError, match="layout 'timit' is unknown"):
        load_corpus(tmp_path / "bad", "timit")
    with pytest.raises(ParameterError, match="does not exist"):
        load_corpus(tmp_path / "nowhere")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "manifest.csv").write_text(f"path,label\n{pick_emodb(emodb, 1)[0][0]},elated\n")
    with pytest.raises(ParameterError, match="elated"):
        load_corpus(tmp_path / "m")
    flat = _make(tmp_path / "flat", ["x.wav"])  # no known naming, no label folder
    with pytest.raises(ParameterError, match="lies directly in.*matches none of the emodb, ravdess, savee, tess"):
        load_corpus(flat)
