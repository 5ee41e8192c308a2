"""Sample-rate conversion for the feature pipelines (soxr, high quality)."""

import numpy as np

from affectedge.errors import ParameterError

__all__ = ["resample"]


def resample(x, rate_in, rate_out, *, axis=-1):
    """``x`` resampled from ``rate_in`` to ``rate_out`` Hz along ``axis`` with ``soxr.resample(..., "HQ")``.

    Returns ``x`` itself when the rates are equal. 1-D (samples) or 2-D
    (channels along the other axis) float arrays; float32 stays float32,
    anything else is computed in float64.
    """
    from affectedge.native_kernels._validate import check_rate

    rate_in = check_rate(rate_in, "sample_rate_hz")
    rate_out = check_rate(rate_out, "rate_out")
    if rate_in == rate_out:
        return x
    import soxr  # a core dependency, imported only when a conversion is needed

    a = np.asarray(x)
    dtype = np.float32 if a.dtype == np.float32 else np.float64
    if a.ndim == 1:
        return soxr.resample(np.ascontiguousarray(a, dtype=dtype), rate_in, rate_out, "HQ")
    if a.ndim != 2:
        raise ParameterError(f"resampling takes 1-D or 2-D arrays; got shape {a.shape}")
    moved = np.moveaxis(a, axis, 0)  # (samples, channels): the layout soxr takes
    out = soxr.resample(np.ascontiguousarray(moved, dtype=dtype), rate_in, rate_out, "HQ")
    return np.ascontiguousarray(np.moveaxis(out, 0, axis))
