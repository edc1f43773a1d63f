"""Markdown tables: the one writer behind every table the lessons, the CLI and the reports print."""

from __future__ import annotations

from collections.abc import Sequence


def format_cell(value: object) -> str:
    """A table cell: floats get three decimals below 10 and one above; anything else its ``str``."""
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown (GitHub) table.

    Args:
        header: column names.
        rows: one sequence of cells per row, as long as ``header``; cells are formatted by
            :func:`format_cell`, so pass strings for any other format.

    Returns:
        The table, header and separator included, without a final newline.

    Raises:
        ValueError: a row has another number of cells than the header.

    Examples:
        Dice values get three decimals, distances of 10 mm or more one; a string is printed as it
        is (a float 9.9 would show as ``9.900``):

        >>> rows = [["baseline", 0.8123, 12.34], ["pkl", 0.8456, "9.9"]]
        >>> print(markdown_table(["method", "WT Dice", "HD95 (mm)"], rows))
        | method | WT Dice | HD95 (mm) |
        |---|---|---|
        | baseline | 0.812 | 12.3 |
        | pkl | 0.846 | 9.9 |
    """
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise ValueError(f"row {i} has {len(row)} cells for {len(header)} columns: {list(row)!r}")
        lines.append("| " + " | ".join(format_cell(v) for v in row) + " |")
    return "\n".join(lines)
