"""Late fusion at the probability level (after the ABAW-6 late-fusion approach).

The rule
--------
1. **Shared taxonomy.** Every modality's class probabilities are mapped onto
   :data:`TAXONOMY` (neutral, anger, disgust, fear, happiness, sadness,
   surprise, other) by :data:`LABEL_MAP`: a label of the same name maps to
   itself; ``boredom`` (speech) and ``contempt`` (face) map to ``other``.
   A model whose labels are not all emotion categories (the EEG
   mental-state model's concentrating / neutral / relaxed, the valence/arousal
   quadrants) contributes no category probabilities, only valence/arousal
   when it has them.
2. **Weights.** The latest result of each modality counts with
   ``w = modality_weight * confidence * exp(-age_ms / freshness_ms)``, where
   ``confidence = 1 - H(p)/ln K`` of that modality's own probabilities and
   ``age_ms`` = fusion time - the result's ``end_ms``.
3. **Drop-outs.** A modality drops out when it has no result yet, when its
   latest result is older than ``max_age_ms`` (stale), or when its status is
   not "ok" (no speech, no face, flat EEG...).
4. **Categories.** ``p(c) = sum_m w_m p_m(c) / sum_m w_m`` over the
   contributing modalities (each ``p_m`` already mapped, summing to 1), so a
   category a modality cannot express gets no mass from it.
5. **Valence / arousal.** The same weighted mean over the modalities that
   give valence/arousal (speech: its ``va`` head; face: probabilities times
   the circumplex table :data:`VA_TABLE`; EEG valence/arousal model:
   ``2 p - 1``).
6. **The result** names the contributing modalities with their weights and
   ages; with none, the fused status is "no_modality".
"""

import math

import numpy as np

from ._results import AffectResult, entropy_confidence

__all__ = ["LABEL_MAP", "TAXONOMY", "VA_TABLE", "Fusion", "map_to_taxonomy"]

TAXONOMY = ("neutral", "anger", "disgust", "fear", "happiness", "sadness", "surprise", "other")
LABEL_MAP = {"neutral": "neutral", "anger": "anger", "disgust": "disgust", "fear": "fear",
             "happiness": "happiness", "sadness": "sadness", "surprise": "surprise",
             "boredom": "other", "contempt": "other"}
# Approximate circumplex positions (Russell & Mehrabian 1977 ratings, rounded; as on the speech card).
VA_TABLE = {"anger": (-0.51, 0.59), "boredom": (-0.65, -0.62), "disgust": (-0.60, 0.35), "fear": (-0.64, 0.60),
            "happiness": (0.76, 0.48), "neutral": (0.0, 0.0), "sadness": (-0.63, -0.27),
            "surprise": (0.40, 0.67), "contempt": (-0.55, 0.15)}


def map_to_taxonomy(labels, probs):
    """Probabilities over TAXONOMY, or None unless every label is an emotion category (mental state is not)."""
    if not labels or any(lab not in LABEL_MAP for lab in labels):
        return None
    out = np.zeros(len(TAXONOMY))
    hit = False
    for lab, p in zip(labels, probs):
        t = LABEL_MAP.get(lab)
        if t is not None:
            out[TAXONOMY.index(t)] += p
            hit = True
    s = out.sum()
    return out / s if hit and s > 0 else None


def va_from_categories(labels, probs):
    """Probability-weighted circumplex position of categorical probabilities, or (None, None)."""
    v = a = w = 0.0
    for lab, p in zip(labels, probs):
        if lab in VA_TABLE:
            v += p * VA_TABLE[lab][0]
            a += p * VA_TABLE[lab][1]
            w += p
    return (v / w, a / w) if w > 0 else (None, None)


class Fusion:
    """Keeps the latest result per modality and fuses them at a given time (see module doc)."""

    def __init__(self, options):
        self.o = options
        self.latest = {}

    def weight_of(self, modality):
        return {"speech": self.o.speech_weight, "face": self.o.face_weight, "eeg": self.o.eeg_weight}.get(modality, 1.0)

    def update(self, result):
        if result.modality != "fused":
            prev = self.latest.get(result.modality)
            if prev is None or result.end_ms >= prev.end_ms:
                self.latest[result.modality] = result

    def fuse(self, now_ms, start_ms=None):
        cat_sum = np.zeros(len(TAXONOMY))
        cat_w = va_w = v_sum = a_sum = 0.0
        contributors = []
        for m, r in sorted(self.latest.items()):
            age = now_ms - r.end_ms
            if not r.ok or age > self.o.max_age_ms:
                continue
            base = self.weight_of(m) * math.exp(-max(age, 0.0) / self.o.freshness_ms)
            cats = map_to_taxonomy(r.labels, r.probs) if r.probs is not None else None
            conf = r.confidence if r.confidence is not None else entropy_confidence(r.probs or ())
            w = base * max(conf, 1e-3)
            used = False
            if cats is not None and w > 0:
                cat_sum += w * cats
                cat_w += w
                used = True
            if r.valence is not None and r.arousal is not None and w > 0:
                v_sum += w * r.valence
                a_sum += w * r.arousal
                va_w += w
                used = True
            if used:
                contributors.append({"modality": m, "weight": round(w, 4), "age_ms": round(age, 1)})
        start = now_ms - self.o.hop_ms if start_ms is None else start_ms
        if not contributors:
            return AffectResult(start, now_ms, "fused", status="no_modality", model="fusion",
                                detail="no fresh ok result from any modality")
        probs = tuple(float(x) for x in cat_sum / cat_w) if cat_w > 0 else None
        total_w = sum(c["weight"] for c in contributors)
        return AffectResult(
            start, now_ms, "fused", labels=TAXONOMY if probs else (), probs=probs,
            valence=v_sum / va_w if va_w else None, arousal=a_sum / va_w if va_w else None,
            confidence=entropy_confidence(probs) if probs else 0.0, status="ok",
            calibrated=all(self.latest[c["modality"]].calibrated for c in contributors), model="fusion",
            detail="weights: " + ", ".join(f"{c['modality']} {c['weight'] / total_w:.2f}" for c in contributors),
            contributors=tuple(contributors))
