"""A loaded model: its card, its feature pipeline, and a session from the one session factory."""

import numpy as np

from affectedge.errors import ModelError, ParameterError

__all__ = ["Model"]

# pipeline name -> raw input kind, for pipelines without an ``input_kind`` attribute
_INPUT_KINDS = {"speech-mfcc-silence": "audio", "face-blendshapes": "image", "eeg-deap-de": "eeg",
                "eeg-muse-bands": "eeg"}


def _card_output_names(names, card_names):
    """Session output names, or the card's names where the artifact renamed them.

    Two renamings occur, and both keep the exported program's output order:
    litert-torch names output k ``serving_default_output_<k>_output``, and the
    exporters' fp16 / int8 ONNX artifacts end in renamed nodes (``mul_44``,
    ``softmax``). Output k is then the card's k-th output (checked numerically
    against model.onnx for every shipped artifact in tests/test_backend.py).
    """
    import re

    names = list(names)
    if set(names) == set(card_names) or len(names) != len(card_names):
        return names
    idx = [re.search(r"output_(\d+)", n) for n in names]
    if all(idx) and sorted(int(m.group(1)) for m in idx) == list(range(len(names))):
        return [card_names[int(m.group(1))] for m in idx]
    if not set(names) & set(card_names):  # none of the card's names survived: by position
        return list(card_names)
    return names


class Model:
    """A zoo or user model ready to run on the device.

    ``predict(x)`` takes a batch of model inputs (the pipeline's output with a
    batch axis) and returns {output name: array}; ``predict_raw(raw,
    sample_rate_hz=...)`` checks the raw input's quality, runs the card's
    feature pipeline, then the model. ``classify`` returns label names.
    ``close()`` releases the onnxruntime session; a Model is also a context
    manager (``with models.load(...) as m:``).
    """

    def __init__(self, card, path, *, threads=None, providers=("CPUExecutionProvider",), backend=None,
                 model_asset_buffer=None):
        from affectedge.features import get_pipeline
        from affectedge.runtime._session import create_session

        self.card = card
        self.path = path
        self.pipeline = get_pipeline(card.input["pipeline"], card.input.get("spec", {}))
        card.check_input_spec(self.pipeline.spec, self.pipeline.name)
        # the one session factory, shared with the exporters' checks
        self.session = create_session(model_asset_buffer if model_asset_buffer is not None else path,
                                      backend=backend, providers=providers, threads=threads)
        self.backend_choice = None  # set by models.load(..., profile=...)
        self.input_names = list(self.session.input_names)
        self.output_names = _card_output_names(self.session.output_names, list(card.outputs))

    @property
    def roles(self):
        """{role: output name}: "class_probabilities", "valence_arousal", ... as the card declares them."""
        from affectedge.runtime._tasks import output_roles

        return output_roles(self.card)

    def predict_roles(self, x):
        """Like :meth:`predict`, keyed by role instead of output name (see :attr:`roles`)."""
        out = self.predict(x)
        return {role: out[name] for role, name in self.roles.items() if name in out}

    @property
    def labels(self):
        return self.card.labels

    def __repr__(self):
        return f"Model({self.card.id!r}, labels={list(self.card.labels)})"

    # -------------------------------------------------------------- lifetime
    def close(self):
        """Release the session (idempotent); predicting afterwards raises ModelError."""
        if self.session is not None:
            self.session.close()
        self.session = None

    @property
    def closed(self):
        return self.session is None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _session(self):
        if self.session is None:
            raise ModelError(f"model {self.card.id!r} is closed; load it again with affectedge.models.load")
        return self.session

    def predict(self, x):
        """Run a batch of model inputs; returns {output name: array}."""
        session = self._session()
        x = np.asarray(x, dtype=np.float32)
        want = session.input_shapes[0]
        if x.ndim != len(want):
            raise ParameterError(
                f"input has shape {x.shape} but model {self.card.id!r} takes {len(want)}-D batches shaped {want}; "
                "add a batch axis (x[None]) or compute features with model.pipeline"
            )
        for axis, (got, exp) in enumerate(zip(x.shape, want)):
            if isinstance(exp, int) and exp > 0 and got != exp:
                raise ParameterError(
                    f"input axis {axis} has size {got} but model {self.card.id!r} expects {exp} (shape {want})"
                )
        outs = session.run([np.ascontiguousarray(x)])
        return dict(zip(self.output_names, outs))

    @property
    def input_kind(self):
        """"audio", "eeg", "image", or None for a pipeline of unknown kind."""
        return getattr(self.pipeline, "input_kind", None) or _INPUT_KINDS.get(self.pipeline.name)

    def features_raw(self, raw, *, sample_rate_hz=None):
        """The model input (without batch axis) for one raw example, after the quality checks of predict_raw."""
        from affectedge.features.quality import NoSignalError, audio_quality, eeg_quality

        kind = self.input_kind
        if kind == "audio":
            if sample_rate_hz is None:
                raise ParameterError(
                    f"model {self.card.id!r} takes audio: pass its sample rate, predict_raw(y, sample_rate_hz=sr) "
                    f"(any rate; it is resampled to {self.pipeline.sr} Hz); the rate is never guessed")
            audio_quality(raw, sample_rate_hz).raise_for_status("audio")
            feats = self.pipeline(raw, sample_rate_hz=sample_rate_hz)
        elif kind == "eeg":
            is_raw = getattr(self.pipeline, "is_raw_window", lambda r: True)(raw)
            if is_raw:
                if sample_rate_hz is None:
                    raise ParameterError(
                        f"model {self.card.id!r} takes EEG windows: pass their sample rate, predict_raw(x, "
                        f"sample_rate_hz=fs) (the model was built at {self.pipeline.fs:g} Hz; other rates are "
                        "resampled); the rate is never guessed")
                x = np.asarray(raw)
                names = tuple(getattr(self.pipeline, "channels", ()) or ())
                # a window of the wrong shape is left to the pipeline, whose message says how to fix it
                if x.ndim == 2 and np.issubdtype(x.dtype, np.number) and x.size and x.shape[0] == len(names):
                    eeg_quality(x, sample_rate_hz, channel_names=names).raise_for_status("EEG window")
                feats = self.pipeline(raw, sample_rate_hz=sample_rate_hz)
            else:
                feats = self.pipeline(raw)
        else:
            feats = self.pipeline(raw)
        feats = np.asarray(feats)
        if np.issubdtype(feats.dtype, np.floating) and not np.all(np.isfinite(feats)):
            raise NoSignalError(
                f"the {self.pipeline.name} features of this input contain NaN or inf; the input holds no usable "
                "signal (check the sensor)", status="nonfinite_features")
        return feats

    def predict_raw(self, raw, *, sample_rate_hz=None):
        """Check the raw example's quality, compute the card's features, then predict (batch of 1).

        ``sample_rate_hz``: the rate of ``raw`` -- required for audio (speech
        models) and raw EEG windows (resampled to the pipeline's rate when it
        differs); not used for images or precomputed EEG feature vectors.
        Junk input (silence, a constant, int16 values as float, clipping, a
        flat / railed / NaN channel, no face) raises
        :class:`affectedge.features.quality.NoSignalError` with its ``status``
        instead of returning a confident-looking answer.
        """
        out = self.predict(self.features_raw(raw, sample_rate_hz=sample_rate_hz)[None])
        for name, v in out.items():
            if np.issubdtype(np.asarray(v).dtype, np.floating) and not np.all(np.isfinite(v)):
                raise ModelError(f"model {self.card.id!r} output {name!r} is NaN/inf for finite features; "
                                 "the model file is broken -- re-export it")
        return out

    def classify(self, x):
        """Label names of the most probable class for each example in the batch."""
        self._session()
        probs = self.predict(x)[self.output_names[0]]
        return [self.card.labels[i] for i in np.argmax(probs, axis=-1)]
