"""Drift and prediction monitoring: live windows in the server, and an offline check.

The baseline is the artifact's ``reference`` block (training-split input bins, validation
predictions). ``score`` compares counts with it (PSI per input group and over predicted
classes, the mean-confidence drop); the server keeps a rolling ``Window`` per model
version (``LiveMonitor``), and ``check`` scores a whole dataset offline.
"""

from torchship.monitor.baseline import Baseline
from torchship.monitor.check import CheckResult, check
from torchship.monitor.config import DriftThresholds, MonitorConfig, RequestLogConfig
from torchship.monitor.drift import DriftScores, psi, score
from torchship.monitor.window import Window, count_batch

__all__ = [
    "Baseline",
    "CheckResult",
    "DriftScores",
    "DriftThresholds",
    "MonitorConfig",
    "RequestLogConfig",
    "Window",
    "check",
    "count_batch",
    "psi",
    "score",
]
