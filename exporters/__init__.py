"""Model exporters and the quantization CLI (ONNX and TFLite; fp32, fp16, int8).

Not implemented yet: this subpackage reserves the import name
``affectedge.exporters``. See the project's open issues for the plan.
"""

__all__ = []
