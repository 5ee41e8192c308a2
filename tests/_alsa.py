"""A real PortAudio/ALSA capture stack without sound hardware, for the microphone tests.

ALSA reads ``~/.asoundrc`` when PortAudio initialises, so each scenario runs
in a subprocess whose HOME is a temporary folder holding one. Every input is
a ``type plug`` PCM over a ``type file`` PCM whose slave is ``null``, with
``infile`` the raw S16_LE samples to "record" (``format "raw"``); a ``hint``
makes PortAudio list it. ALSA's null PCM has no clock: capture runs as fast
as the callback keeps up. With a regular file as ``infile``, the file's
samples come first, then stale buffer contents, endlessly (a fast, noisy
device: good for overflow tests). With a FIFO as ``infile`` (filled by the
recording process before PortAudio starts, held open read-write so that
ALSA's open never blocks), the stream delivers exactly the FIFO's bytes and
then blocks until the writer closes it: a recording that arrives in one
burst, the way a real device's buffered samples do after a stall.

Run as a script (``python tests/_alsa.py MODE JSON``) it is the subprocess
side: it prints one JSON line with the results and may write arrays to an
``.npz`` named in the arguments.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ (Linux), not exported by Python < 3.10 everywhere


def _file_pcm(infile):
    return f'{{ type file slave.pcm "null" file "/dev/null" infile "{infile}" format "raw" }}'


def pcm_block(name, infile, *, rate=None, description=""):
    """ALSA config text: ``pcm.<name>``, a plug over an inline file PCM reading ``infile`` (at ``rate`` if given).

    The file PCM is defined inline (not as a named PCM) because PortAudio
    lists every named PCM of the configuration, hinted or not.
    """
    rate_line = f"\n        rate {int(rate)}" if rate else ""
    desc = description or f"affectedge test input {name}"
    return (f"pcm.{name} {{\n    type plug\n    slave {{\n        pcm {_file_pcm(infile)}{rate_line}\n    }}\n"
            f'    hint {{ show on description "{desc}" }}\n}}\n')


def write_asoundrc(home, inputs, default):
    """Write ``home/.asoundrc`` with the inputs {name: (infile, slave_rate or None)}; ``pcm.!default`` reads ``default``.

    ``default`` is a raw file (or FIFO) path.
    """
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    text = "".join(pcm_block(n, f, rate=r) for n, (f, r) in inputs.items())
    text += pcm_block("!default", default, description="affectedge test default input")
    (home / ".asoundrc").write_text(text)
    return home / ".asoundrc"


def write_raw(path, samples):
    """float samples in [-1, 1] -> raw S16_LE mono file."""
    x = np.clip(np.asarray(samples, np.float64), -1.0, 32767 / 32768)
    np.round(x * 32768.0).astype("<i2").tofile(path)
    return path


def run(home, mode, args, timeout=60):
    """Run ``MODE`` of this file in a subprocess with HOME=home; returns the JSON it printed."""
    env = dict(os.environ, HOME=str(home), PYTHONUNBUFFERED="1")
    env.pop("XDG_CONFIG_HOME", None)
    proc = subprocess.run([sys.executable, str(HERE / "_alsa.py"), mode, json.dumps(args)], env=env,
                          capture_output=True, text=True, timeout=timeout)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = "\n".join(l for l in proc.stderr.splitlines() if "ALSA lib" not in l and "ack" not in l)[-3000:]
        raise AssertionError(f"subprocess {mode} failed (rc {proc.returncode}):\n{proc.stdout[-2000:]}\n{tail}")
    return json.loads(lines[-1])


# ---------------------------------------------------------------------------
# subprocess side
# ---------------------------------------------------------------------------
def _only_rates(rates):
    """Make PortAudio report only ``rates`` as supported (a USB microphone that only does 48 kHz)."""
    import pyaudio

    real = pyaudio.PyAudio.is_format_supported

    def is_format_supported(self, rate, *a, **kw):
        if int(rate) not in rates:
            raise ValueError(("Invalid sample rate", -9997))
        return real(self, rate, *a, **kw)

    pyaudio.PyAudio.is_format_supported = is_format_supported


def _record(a):
    import fcntl
    import time

    from affectedge.sensors import MicrophoneSource

    raw = Path(a["raw"]).read_bytes()
    fd = os.open(a["fifo"], os.O_RDWR)  # RDWR: ALSA's open(O_RDONLY) never blocks, no EPIPE
    fcntl.fcntl(fd, F_SETPIPE_SZ, 1 << 20)
    os.write(fd, raw)
    if a.get("only_rates"):
        _only_rates(set(a["only_rates"]))
    src = MicrophoneSource(a["device"], target_rate_hz=a["target"], block_ms=a.get("block_ms", 100),
                           queue_blocks=a.get("queue_blocks", 200))
    blocks = []
    n = 0
    t_end = time.monotonic() + 10
    try:
        src.open()
        while n < a["n_samples"] and time.monotonic() < t_end:
            b = src.read(timeout_s=0.5)
            if b is None and blocks:
                break  # the FIFO is empty: everything written has been recorded
            if b is not None:
                blocks.append(b)
                n += b.samples.shape[0]
    finally:
        os.close(fd)  # unblocks ALSA's read of the FIFO so that the stream stops at once
        src.close()
    np.savez(a["out"], samples=np.concatenate([b.samples for b in blocks]) if blocks else np.zeros(0, np.float32),
             t_start=[b.t_start_s for b in blocks], t_end=[b.t_end_s for b in blocks],
             gap=[b.gap_before_s for b in blocks], seq=[b.seq for b in blocks],
             rate=[b.sample_rate_hz for b in blocks], n=[b.samples.shape[0] for b in blocks])
    return {"name": src.name, "device_rate_hz": src.device_rate_hz, "stats": src.stats.snapshot()}


def _rss_kb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _probe(a):
    import time

    from affectedge.errors import SensorError
    from affectedge.sensors import MicrophoneSource, list_audio_inputs

    out = {"inputs": list_audio_inputs()}
    idx = next(d["index"] for d in out["inputs"] if d["name"] == a["named"])
    for key, device in (("by_name", a["name_part"]), ("by_index", idx), ("default", None)):
        with MicrophoneSource(device, target_rate_hz=16000, block_ms=50) as src:
            b = src.read(timeout_s=2.0)
            out[key] = {"name": src.name, "device_index": src.device_index, "device_rate_hz": src.device_rate_hz,
                        "n": None if b is None else int(b.samples.shape[0]),
                        "rate": None if b is None else b.sample_rate_hz,
                        "finite": None if b is None else bool(np.isfinite(b.samples).all())}
    for key, device in (("missing_name", "no-such-microphone"), ("missing_index", 999)):
        try:
            MicrophoneSource(device).open()
            out[key] = None
        except SensorError as exc:
            out[key] = str(exc)
    # a consumer that does not read: the queue stays bounded, drops are counted
    q = a["queue_blocks"]
    src = MicrophoneSource(a["named"], target_rate_hz=16000, block_ms=20, queue_blocks=q)
    rss0 = _rss_kb()
    src.open()
    before = [src.read(timeout_s=1.0) for _ in range(3)]
    depth = 0
    t_end = time.monotonic() + a["idle_s"]
    while time.monotonic() < t_end:
        depth = max(depth, src._queue.qsize())
        time.sleep(0.005)
    rss1 = _rss_kb()
    st = src.stats.snapshot()
    blocks = [src.read(timeout_s=1.0) for _ in range(3 * q)]
    src.close()
    src.close()  # idempotent
    out["overflow"] = {"max_depth": depth, "read_before": sum(b is not None for b in before),
                       "dropped": st["dropped"], "rss_growth_kb": rss1 - rss0,
                       "gaps": [b.gap_before_s for b in blocks if b is not None],
                       "stats_after": src.stats.snapshot(), "maxsize": src._queue.maxsize}
    return out


def _runtime(a):
    """``affectedge run --audio mic:DEVICE`` end to end while the FIFO holds a known recording."""
    import fcntl

    from affectedge._cli import main

    raw = Path(a["raw"]).read_bytes()
    fd = os.open(a["fifo"], os.O_RDWR)
    fcntl.fcntl(fd, F_SETPIPE_SZ, 1 << 20)
    os.write(fd, raw)
    try:
        rc = main(["run", "--audio", f"mic:{a['device']}", "--duration", str(a["duration"]), "--out", a["out"],
                   "--quiet", "--no-online-calibration"])
    finally:
        os.close(fd)
    return {"rc": rc}


if __name__ == "__main__":
    mode, args = sys.argv[1], json.loads(sys.argv[2])
    result = {"record": _record, "probe": _probe, "runtime": _runtime}[mode](args)
    print(json.dumps(result))
