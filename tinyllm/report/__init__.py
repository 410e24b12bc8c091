"""`tinyllm report` (one self-contained report.html per run) and `tinyllm info` (a run in a few lines)."""
from .info import run_info
from .page import REPORT_NAME, write_report

__all__ = ["write_report", "run_info", "REPORT_NAME"]
