"""The one Markdown table writer."""

from __future__ import annotations

import pytest

from pkd_lessons.markdown import markdown_table


def test_markdown_table_formats_floats_and_keeps_strings():
    table = markdown_table(["name", "value", "note"], [["a", 0.12345, "x"], ["b", 123.456, 7]])
    assert table.splitlines() == ["| name | value | note |", "|---|---|---|", "| a | 0.123 | x |", "| b | 123.5 | 7 |"]


def test_markdown_table_refuses_a_ragged_row():
    with pytest.raises(ValueError, match="row 1 has 1 cells for 2 columns"):
        markdown_table(["a", "b"], [[1, 2], [3]])
