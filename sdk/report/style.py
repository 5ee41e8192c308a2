"""Plotting conventions shared by affectedge's figures (session reports, quantization and evaluation plots).

A fixed colour per modality and per emotion label (the same label has the
same colour in every figure), figure sizes, dpi and font sizes; matplotlib is
imported with the Agg backend (files only, no display needed).
"""

import zlib

__all__ = ["DPI", "FIGSIZE", "FONT", "CMAP", "MODALITIES", "MODALITY_COLORS", "LABEL_COLORS", "STATUS_HATCHES",
           "NOT_OK_COLOR", "GAP_COLOR", "REFERENCE_COLOR", "pyplot", "figure", "apply", "save", "modality_color",
           "label_color", "status_hatch"]

DPI = 110
FIGSIZE = {"plot": (7, 4.5), "bars": (7, 3.2), "timeline_row": 0.9, "wide": 10.0}
FONT = {"title": 9, "label": 8, "tick": 8, "legend": 7, "annotation": 7, "small": 6}
CMAP = {"confusion": "Blues", "change": "RdYlGn_r"}

MODALITIES = ("speech", "face", "eeg", "fused")
MODALITY_COLORS = {"speech": "#1f77b4", "face": "#ff7f0e", "eeg": "#2ca02c", "fused": "#6a3d9a"}

# one colour per label across the zoo's label sets (speech: EmoDB, face: CK+/FER, EEG mental state, fusion)
LABEL_COLORS = {
    "anger": "#d62728", "angry": "#d62728", "boredom": "#8c8c5a", "contempt": "#8c564b", "disgust": "#6b8e23",
    "fear": "#9467bd", "happiness": "#f2c200", "happy": "#f2c200", "neutral": "#9ecae1", "sadness": "#1f4e9c",
    "sad": "#1f4e9c", "surprise": "#ff7f0e", "other": "#7f7f7f", "concentrating": "#e377c2", "relaxed": "#17becf",
    "low": "#6baed6", "high": "#fd8d3c", "positive": "#74c476", "negative": "#de2d26",
}
_SPARE = ("#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354", "#756bb1")

NOT_OK_COLOR = "#d9d9d9"     # a window with no answer (status other than ok)
GAP_COLOR = "#ff9896"        # a sensor gap
REFERENCE_COLOR = "grey"     # chance / zero / budget lines
STATUS_HATCHES = {"no_speech": "//", "silent": "..", "no_face": "xx", "gap": "\\\\", "dropout": "\\\\",
                  "no_modality": "--", "clipped": "++", "nonfinite": "oo"}


def pyplot(purpose="plots"):
    """matplotlib.pyplot on the Agg backend, or MissingExtraError naming ``affectedge[report]``."""
    from affectedge._optional import require

    mpl = require("matplotlib", "report", purpose)
    mpl.use("Agg")
    return require("matplotlib.pyplot", "report", purpose)


def modality_color(modality):
    return MODALITY_COLORS.get(modality) or _SPARE[zlib.crc32(str(modality).encode()) % len(_SPARE)]


def label_color(label):
    return LABEL_COLORS.get(str(label).lower()) or _SPARE[zlib.crc32(str(label).encode()) % len(_SPARE)]


def status_hatch(status):
    return STATUS_HATCHES.get(status, "//")


def figure(figsize="plot", nrows=1, ncols=1, **kw):
    """``plt.subplots`` with the shared dpi; ``figsize`` is a FIGSIZE key or (w, h) inches."""
    plt = pyplot()
    return plt.subplots(nrows, ncols, figsize=FIGSIZE.get(figsize, figsize) if isinstance(figsize, str) else figsize,
                        dpi=DPI, **kw)


def apply(ax, *, title=None, xlabel=None, ylabel=None, grid=True, legend=False):
    """Shared axes look: font sizes, a light grid, a small legend."""
    if title is not None:
        ax.set_title(title, fontsize=FONT["title"])
    if xlabel is not None:
        ax.set_xlabel(xlabel, fontsize=FONT["label"])
    if ylabel is not None:
        ax.set_ylabel(ylabel, fontsize=FONT["label"])
    ax.tick_params(labelsize=FONT["tick"])
    if grid:
        ax.grid(alpha=0.3)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=FONT["legend"], loc="best")
    return ax


def save(fig, path):
    """tight_layout, write ``path`` at the shared dpi, close the figure; returns ``path``."""
    plt = pyplot()
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
