"""A DataTable whose header follows its columns' widths once they are worked out."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

from textual.widgets import DataTable
from textual.widgets.data_table import RowKey

CellType = TypeVar("CellType")


class ListTable(DataTable[CellType], Generic[CellType]):
    """Textual's DataTable works out its columns' widths when it is next idle after rows are added, and
    keeps what it rendered before under the same cache keys: a header painted in between stayed at the
    old widths above rows at the new ones (seen in the host detail's volume list on a busy machine). The
    widths worked out, what was rendered is dropped."""

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        widths = [c.content_width for c in self.columns.values()]
        super()._update_dimensions(new_rows)
        if widths != [c.content_width for c in self.columns.values()]:
            self._update_count += 1  # every render cache is keyed by it
            self.refresh()
