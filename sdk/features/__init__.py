"""Feature pipelines shared by training and on-device inference.

A pipeline turns raw sensor data (audio samples, a face image or its
blendshapes, an EEG window) into the exact input tensor a model was trained
on. Training code and the runtime use the same class, and each model card
stores the pipeline's name and ``spec`` so the loader can refuse a mismatch.

Interface of every pipeline class:

* ``Pipeline(**spec)``: validated parameters (keyword-only, JSON-able);
* ``.name`` (class attribute) and ``.spec`` (dict of the parameters);
* ``__call__(raw) -> np.ndarray``: model input for one example, float32,
  without the batch axis; audio and EEG pipelines also take the raw input's
  rate, ``__call__(raw, *, sample_rate_hz=...)``, and resample it to their
  own (required for audio);
* ``input_kind`` (class attribute): "audio", "eeg" or "image", which tells
  ``Model.predict_raw`` which quality check (:mod:`.quality`) to run;
* ``input_shape``: shape of that array (``None`` for a variable axis).
"""

import importlib

from affectedge.errors import ParameterError

__all__ = ["PIPELINES", "get_pipeline"]

PIPELINES = {
    "speech-mfcc-silence": "affectedge.features.speech:SpeechFeatures",
    "face-blendshapes": "affectedge.features.face:BlendshapeFeatures",
    "face-pixels": "affectedge.features.face:FacePixels",
    "eeg-deap-de": "affectedge.features.eeg:DeapDEFeatures",
    "eeg-muse-bands": "affectedge.features.eeg:MuseBandFeatures",
}


def get_pipeline(name, spec=None):
    """Instantiate the pipeline called ``name`` with ``spec`` parameters."""
    target = PIPELINES.get(name)
    if target is None:
        raise ParameterError(f"feature pipeline {name!r} is unknown; known: {sorted(PIPELINES)}")
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)(**(spec or {}))
