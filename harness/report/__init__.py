"""Reports of benchmark runs (HTML, Markdown, JSON, JUnit) and baseline comparisons.

Read side only: everything comes from the results store (docs/results-schema.md) through
:func:`load_report`; the renderers are pure functions of the :class:`ReportData` it returns.
Heavy imports (matplotlib, Jinja2, OpenCV) happen inside the HTML renderer only.
"""

from harness.report.assemble import ReportData, load_report, render_json
from harness.report.compare import Comparison, compare_runs
from harness.report.data import DeviceData, ReportCell, RunData, load_run

__all__ = [
    "ReportCell",
    "Comparison",
    "DeviceData",
    "ReportData",
    "RunData",
    "compare_runs",
    "load_report",
    "load_run",
    "render_json",
]
