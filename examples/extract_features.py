"""Extract MFCC and silence features from an audio file (WAV, FLAC, OGG, ...), batch and streaming.

    .venv/bin/python examples/extract_features.py [WAV]
    .venv/bin/python examples/extract_features.py --smoke    # what CI runs

Without an argument (and with --smoke) it uses an EmoDB clip from the shared
data folder ($AFFECTEDGE_DATA_DIR, else ../shared/data) when present,
otherwise a generated 3 s voiced/pause signal.
"""

import os
import sys
from pathlib import Path

import numpy as np

from affectedge.io import read_audio, read_wav
from affectedge.native_kernels import StreamingMFCC, mfcc, silence_features

PARAMS = dict(n_mfcc=13, n_fft=512, hop_length=160, n_mels=40)


def load(argv):
    if len(argv) > 1:
        return (*read_audio(argv[1]), argv[1])  # any format soundfile reads
    data = os.environ.get("AFFECTEDGE_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data"
    clip = Path(data) / "speech" / "emodb" / "wav" / "03a01Wa.wav"
    if clip.is_file():
        return (*read_wav(clip), str(clip))
    sr = 16000
    t = np.arange(3 * sr) / sr
    bursts = (np.sin(2 * np.pi * 1.5 * t) > 0).astype(np.float32)  # voiced bursts with pauses
    y = (0.3 * bursts * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    return y, sr, "generated 3 s signal"


def main(argv):
    smoke = "--smoke" in argv
    y, sr, source = load([a for a in argv if a != "--smoke"])
    print(f"{source}: {y.shape[0] / sr:.2f} s at {sr} Hz, {y.dtype}")

    # Batch MFCC, librosa-compatible: (n_mfcc, n_frames).
    m = mfcc(y, sr=sr, **PARAMS)
    print(f"MFCC (center=True, as librosa.feature.mfcc): shape {m.shape}")

    # Silence features (Atmaja & Akagi): frames with RMS <= 0.3 x mean RMS are silent.
    s = silence_features(y, sr=sr)
    print(f"silence: ratio {s.ratio:.3f}, {s.n_segments} segments, mean {s.mean_segment_s:.3f} s, "
          f"longest {s.longest_segment_s:.3f} s")

    # Streaming: feed 10 ms chunks as a microphone callback would.
    hop = PARAMS["hop_length"]
    stream = StreamingMFCC(sr=sr, **PARAMS)
    frames = [stream.push(y[i : i + hop]) for i in range(0, y.shape[0], hop)]
    streamed = np.concatenate(frames, axis=1)
    batch = mfcc(y, sr=sr, center=False, top_db=None, **PARAMS)
    diff = float(np.max(np.abs(streamed - batch)))
    print(f"streamed {streamed.shape[1]} frames in {hop}-sample chunks; "
          f"max |streamed - batch(center=False)| = {diff:.2e}")
    assert streamed.shape == batch.shape and np.allclose(streamed, batch, atol=1e-3), "stream differs from batch"
    if smoke:
        print("smoke: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
