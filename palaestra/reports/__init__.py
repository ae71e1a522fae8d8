"""Run reports (`report.html` with plots and tables) and the trajectory viewer (`viewer/`)."""

from __future__ import annotations

from palaestra.reports.report import render_report, write_report
from palaestra.reports.run_data import RunData, load_run
from palaestra.reports.viewer import build_viewer, serve

__all__ = ["RunData", "build_viewer", "load_run", "render_report", "serve", "write_report"]
