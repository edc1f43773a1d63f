"""Numbers from elsewhere, kept as data so that lessons can print them beside their own.

They come from other people's experiments on real data and are labelled as such wherever shown.
"""

from __future__ import annotations

from pkd_lessons.markdown import markdown_table

BRATS2018_REIMPLEMENTATION: dict = {
    "source": (
        "BraTS 2018, re-implementation by the ProtoKD authors (arXiv 2303.09830), "
        "split 200/28/57 cases, student modality T1ce"
    ),
    "metric": "Dice (%)",
    "regions": ("WT", "TC", "ET"),
    "rows": {
        "teacher (4 modalities)": {"WT": 86.3, "TC": 79.1, "ET": 77.4, "mean": 80.9},
        "unimodal T1ce": {"WT": 71.4, "TC": 73.3, "ET": 76.4, "mean": 73.7},
        "KD-Net (Hu et al. 2020)": {"WT": 78.9, "TC": 80.8, "ET": 70.5, "mean": 76.7},
        "PKL (Chen et al. 2022, this paper)": {"WT": 70.5, "TC": 76.9, "ET": 75.5, "mean": 74.3},
        "ProtoKD": {"WT": 74.7, "TC": 81.5, "ET": 76.0, "mean": 77.4},
    },
}


def published_markdown(table: dict = BRATS2018_REIMPLEMENTATION) -> str:
    """The published table as Markdown, with its source above it."""
    cols = [*table["regions"], "mean"]
    rows = [[name, *(f"{row[c]:.1f}" for c in cols)] for name, row in table["rows"].items()]
    return f"*From elsewhere: {table['source']}; {table['metric']}.*\n\n" + markdown_table(["method", *cols], rows)
