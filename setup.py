"""Packaging for affectedge: one distribution, one import name.

The repository keeps the design card's folders (sdk/, native_kernels/,
exporters/, device_profiles/); package_dir maps them under ``affectedge`` so
that no generic top-level name (``sdk``, ``tests``) lands in site-packages.
"""

import re
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).parent
VERSION = re.search(
    r'__version__ = "([^"]+)"', (HERE / "sdk" / "_version.py").read_text()
).group(1)

EXTRAS = {
    "audio": ["pyaudio>=0.2.13"],  # needs portaudio19-dev on Debian
    "face": ["mediapipe>=0.10.14"],  # brings opencv-contrib-python
    "eeg": ["brainflow>=5.10"],
    "onnx": ["onnxruntime>=1.17"],
    "tflite": ["ai-edge-litert>=1.0"],
    # the live dashboard: a local web page fed by Server-Sent Events, plotly.js served from the plotly package
    "dashboard": ["starlette>=0.37", "uvicorn>=0.30", "sse-starlette>=2.0", "plotly>=5.20"],
    # session reports (report.html + PNGs)
    "report": ["matplotlib>=3.7"],
    # affectedge batch on Ray (local or a cluster) with a Parquet table of every window
    "batch": ["ray>=2.40", "pyarrow>=14"],
    "export": [
        "torch==2.13.0",
        "onnx>=1.16",
        "onnxscript>=0.1",
        "onnxruntime>=1.17",
        "litert-torch>=0.5",
    ],
}
# Training and evaluating the zoo models (workstation): export plus the
# sensors' feature extractors, baselines and report plots. opensmile is used
# only to measure the eGeMAPS anchor in evaluation reports (its licence
# forbids commercial use, so it is never a runtime dependency).
EXTRAS["train"] = sorted(
    set(EXTRAS["export"]) | set(EXTRAS["face"]) | set(EXTRAS["eeg"])
    | {"scikit-learn>=1.3", "matplotlib>=3.7", "tqdm>=4.60", "opensmile>=2.5"}
)
EXTRAS.update({
    # What the test suite and the benchmarks compare against.
    "dev": [
        "pytest>=8",
        "hypothesis>=6.100",
        "scipy>=1.11",
        "librosa>=0.10.2",
        "python_speech_features>=0.6",
        "mne>=1.6",
        "threadpoolctl>=3.1",
        "playwright>=1.40",  # drives Debian's chromium in the dashboard's browser test
        "praat-parselmouth>=0.4",  # Praat, the anchor of the voice-quality kernels' tests (GPL: tests only)
        "httpx>=0.27",  # starlette's TestClient
    ] + EXTRAS["train"] + EXTRAS["audio"] + EXTRAS["dashboard"] + EXTRAS["report"] + EXTRAS["batch"],
})

setup(
    name="affectedge",
    version=VERSION,
    description="On-device affect recognition: Numba feature kernels, exporters, device profiles and a sensor runtime",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=[
        "affectedge",
        "affectedge.native_kernels",
        "affectedge.exporters",
        "affectedge.device_profiles",
        "affectedge.features",
        "affectedge.models",
        "affectedge.training",
        "affectedge.sensors",
        "affectedge.runtime",
        "affectedge.dashboard",
        "affectedge.report",
        "affectedge.batch",
    ],
    package_data={"affectedge.models": ["zoo/*/*.onnx", "zoo/*/*.tflite", "zoo/*/*.pt2", "zoo/*/*.json", "zoo/*/*.md", "zoo/*/*.png"],
                  "affectedge.device_profiles": ["data/*.json", "ops/*.json"]},
    package_dir={
        "affectedge": "sdk",
        "affectedge.native_kernels": "native_kernels",
        "affectedge.exporters": "exporters",
        "affectedge.device_profiles": "device_profiles",
        "affectedge.features": "sdk/features",
        "affectedge.models": "sdk/models",
        "affectedge.dashboard": "sdk/dashboard",
        "affectedge.report": "sdk/report",
        "affectedge.training": "sdk/training",
        "affectedge.sensors": "sdk/sensors",
        "affectedge.runtime": "sdk/runtime",
        "affectedge.batch": "sdk/batch",
    },
    install_requires=[
        "numpy>=1.24",
        "numba>=0.59",
        # Numba has no FFT of its own; rocket-fft is the Numba extension that
        # makes np.fft callable inside @njit kernels (pocketfft underneath).
        # Where it cannot install, the kernels fall back to numpy.fft.
        "rocket-fft>=0.2.5",
        # Audio files (WAV/FLAC/OGG, libsndfile bundled in the wheel) and the
        # polyphase resampler every rate conversion uses.
        "soundfile>=0.12",
        "soxr>=0.3",
    ],
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["affectedge = affectedge._cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
