"""The live dashboard: a local web page of a run, pushed by Server-Sent Events (``pip install 'affectedge[dashboard]'``).

::

    from affectedge.dashboard import Dashboard
    with Dashboard(port=0) as dash:          # 127.0.0.1, a free port
        rt = runtime.Runtime(..., on_result=dash.on_record)
        print(dash.url)
        rt.run()

Shows the valence-arousal trajectory on the circumplex, each modality's
category probabilities over the last ``history_s`` seconds, the fused answer
with its contributors, and the sensors' rates, drops, gaps, latency and
calibration. plotly.js comes from the installed ``plotly`` package (no CDN).
Binding a non-loopback host requires a token (generated when none is given).
"""

from ._server import Dashboard, is_loopback

__all__ = ["Dashboard", "is_loopback"]
