"""The markdown previews shown in asset metadata (first rows of what a run wrote)."""

from collections.abc import Mapping, Sequence
from typing import Any


def markdown_preview(
    rows: Sequence[Mapping[str, Any]], *, max_columns: int, width: int, empty: str
) -> str:
    """A markdown table of ``rows`` (their first ``max_columns`` columns, values cut to
    ``width`` characters), or ``empty`` when there are none."""
    if not rows:
        return empty
    columns = list(rows[0])[:max_columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r.get(c, ""))[:width] for c in columns) + " |" for r in rows]
    return "\n".join(lines)
