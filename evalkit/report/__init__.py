"""Reports: run folders (written from a gate's evidence, read back), the tables and CSV, Markdown, self-contained
HTML with inline SVG charts, and terminal text. Reads the gate's records; nothing here re-measures a model."""

from evalkit.errors import RunError
from evalkit.report.rundir import Entry, Run, RunWriter, load_run
from evalkit.report.tables import Row, csv_text, rows
from evalkit.report.writer import ReportPaths, write_reports, write_run

__all__ = ["Entry", "ReportPaths", "Row", "Run", "RunError", "RunWriter", "csv_text", "load_run", "rows",
           "write_reports", "write_run"]
