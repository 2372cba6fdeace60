"""The ``monitor:`` section of the serve config: drift windows, thresholds and request logging.

```yaml
# serve.yaml
monitor:
  enabled: true
  window_rows: 4096          # rolling window of live rows per model version
  max_rows_per_s: 2000       # above this the monitor samples (skips whole batches)
  thresholds: {input_psi: 0.2, prediction_psi: 0.2, confidence_drop: 0.1}
  request_log: {path: logs/requests.jsonl, sample_rate: 0.01, max_bytes: 10485760, backups: 3}
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from torchship.config import Frozen


class DriftThresholds(Frozen):
    """Above these a drift score is flagged (PSI: 0.1 is a small shift, 0.25 a large one)."""

    input_psi: float = Field(default=0.2, gt=0)
    prediction_psi: float = Field(default=0.2, gt=0)
    confidence_drop: float = Field(default=0.1, gt=0)


class RequestLogConfig(Frozen):
    """Sampled request/response logging; the file rotates at ``max_bytes`` keeping ``backups`` old files."""

    path: Path
    format: Literal["jsonl", "sqlite"] | None = None  # None: from the suffix (.db/.sqlite: sqlite)
    sample_rate: float = Field(default=0.01, gt=0, le=1)
    max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    backups: int = Field(default=3, ge=0)
    queue_size: int = Field(default=1024, ge=1)

    @property
    def kind(self) -> str:
        if self.format is not None:
            return self.format
        return "sqlite" if self.path.suffix in (".db", ".sqlite", ".sqlite3") else "jsonl"


class MonitorConfig(Frozen):
    """Live drift monitoring: off the request path, on a background thread, sampled under load."""

    enabled: bool = True
    window_rows: int = Field(default=4096, ge=64)
    min_rows: int = Field(default=200, ge=1, description="fewer live rows than this: scores are not judged")
    max_rows_per_s: float = Field(default=2000, gt=0)
    queue_batches: int = Field(
        default=256, ge=1, description="batches waiting to be counted; beyond: skipped"
    )
    update_interval_s: float = Field(
        default=0.1, ge=0, description="the monitor thread wakes at most this often"
    )
    values_per_row: int = Field(default=64, ge=1, description="pixels sampled per channel of each image row")
    thresholds: DriftThresholds = Field(default_factory=DriftThresholds)
    request_log: RequestLogConfig | None = None
