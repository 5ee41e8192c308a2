"""EmoDB helpers shared by the speech tests."""

EMODB_CODES = {"anger": "W", "boredom": "L", "disgust": "E", "fear": "A", "happiness": "F", "sadness": "T",
               "neutral": "N"}


def pick_emodb(emodb, per_label=2, speakers=("03", "08")):
    """``per_label`` EmoDB clips per emotion of each of ``speakers``: [(path, label, speaker)]."""
    from affectedge.training.corpora import load_corpus

    items = load_corpus(emodb, "emodb")
    out = []
    for spk in speakers:
        for lab in EMODB_CODES:
            out += [it for it in items if it[2] == spk and it[1] == lab][:per_label]
    return out
