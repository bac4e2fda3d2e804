"""Every metric declared once (vm.py, host.py), and the registry the table, the filter, the alerts, the
exporter, the history and the reports read them from (registry.py)."""

from __future__ import annotations

from vimtui.core.metrics import capacity as _capacity  # noqa: F401  (declares the capacity metrics)
from vimtui.core.metrics import host as _host  # noqa: F401  (declares the hosts' metrics)
from vimtui.core.metrics import vm as _vm  # noqa: F401  (declares the VMs' metrics)
from vimtui.core.metrics.registry import (
    UNITS,
    Column,
    FilterField,
    Metric,
    Series,
    Subject,
    Value,
    alert_metrics,
    all_metrics,
    columns,
    declare,
    declared,
    filter_fields,
    generation,
    get,
    history,
    history_names,
    history_row,
    of,
    percent_history_names,
    rates_row,
    report_figures,
    series,
)

__all__ = [
    "UNITS",
    "Column",
    "FilterField",
    "Metric",
    "Series",
    "Subject",
    "Value",
    "alert_metrics",
    "all_metrics",
    "columns",
    "declare",
    "declared",
    "filter_fields",
    "generation",
    "get",
    "history",
    "history_names",
    "history_row",
    "of",
    "percent_history_names",
    "rates_row",
    "report_figures",
    "series",
]
