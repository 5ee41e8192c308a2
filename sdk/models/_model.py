"""A loaded model: its card, its feature pipeline, and an onnxruntime session."""

import numpy as np

from affectedge._optional import require
from affectedge.errors import ModelError, ParameterError

__all__ = ["Model"]


class Model:
    """A zoo or user model ready to run on the device.

    ``predict(x)`` takes a batch of model inputs (the pipeline's output with a
    batch axis) and returns {output name: array}; ``predict_raw(raw)`` runs the
    card's feature pipeline first. ``classify`` returns label names.
    """

    def __init__(self, card, path, *, threads=None):
        from affectedge.features import get_pipeline

        self.card = card
        self.path = path
        self.pipeline = get_pipeline(card.input["pipeline"], card.input.get("spec", {}))
        card.check_input_spec(self.pipeline.spec, self.pipeline.name)
        ort = require("onnxruntime", "onnx", "running ONNX models")
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"onnxruntime cannot load {str(path)!r}: {exc}") from exc
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    @property
    def labels(self):
        return self.card.labels

    def __repr__(self):
        return f"Model({self.card.id!r}, labels={list(self.card.labels)})"

    def predict(self, x):
        """Run a batch of model inputs; returns {output name: array}."""
        x = np.asarray(x, dtype=np.float32)
        want = self.session.get_inputs()[0].shape
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
        outs = self.session.run(None, {self.input_names[0]: np.ascontiguousarray(x)})
        return dict(zip(self.output_names, outs))

    def predict_raw(self, raw):
        """Compute the card's features from one raw example, then predict (batch of 1)."""
        return self.predict(self.pipeline(raw)[None])

    def classify(self, x):
        """Label names of the most probable class for each example in the batch."""
        probs = self.predict(x)[self.output_names[0]]
        return [self.card.labels[i] for i in np.argmax(probs, axis=-1)]
