"""Artifacts every trained zoo folder carries besides model.onnx."""

from pathlib import Path

import numpy as np

__all__ = ["save_exported_program"]


def save_exported_program(model, example, folder, name="model.pt2"):
    """``torch.export.save`` the trained module (eval mode) as an ExportedProgram.

    The exporters convert it to TFLite (litert-torch needs the PyTorch
    program, not the ONNX file). A dynamic batch axis is kept when possible.
    """
    import torch

    model = model.eval()
    ex = torch.as_tensor(np.asarray(example, dtype=np.float32))
    if ex.shape[0] < 2:
        ex = torch.cat([ex, ex])
    try:
        batch = torch.export.Dim("batch", min=1, max=4096)
        prog = torch.export.export(model, (ex,), dynamic_shapes=({0: batch},))
    except Exception:  # some models specialise the batch size; keep a static one
        prog = torch.export.export(model, (ex[:1],))
    path = Path(folder) / name
    torch.export.save(prog, str(path))
    return path
