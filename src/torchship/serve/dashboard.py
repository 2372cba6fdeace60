"""The dashboard: ``GET /`` serves a static page that polls ``GET /v1/summary`` every few seconds.

The page (``serve/static/``: HTML, JS and CSS shipped in the package, no CDN) shows every
model version: state, load time, live throughput, latency percentiles, batch sizes, queue
depth, error rate and drift; with the management API on, it loads and unloads models
through ``/v2/repository/...`` with the bearer token typed into it. ``/v1/summary`` is the
one JSON document it reads, built from the stats the server keeps anyway; live rates are
differences between the summaries of the last ten seconds, so nothing on the request path
changes for the dashboard.
"""

from __future__ import annotations

import time
from collections import deque
from importlib import resources
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

import torchship

STATIC = {  # file name -> media type; nothing else is served
    "index.html": "text/html; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
_RATE_WINDOW_S = 10.0


class RateTracker:
    """Recent requests/s, rows/s, error rate and batch size per model version, from cumulative counts."""

    def __init__(self) -> None:
        self._history: dict[tuple, deque] = {}

    def rates(self, key: tuple, counts: tuple[int, int, int, int], now: float) -> dict[str, float | None]:
        """``counts`` = (successes, failures, rows, batches) now; rates over about the last 10 s."""
        history = self._history.setdefault(key, deque())
        if not history or now - history[-1][0] >= 0.5:
            history.append((now, *counts))
        while len(history) > 2 and now - history[1][0] >= _RATE_WINDOW_S:
            history.popleft()
        t0, ok0, fail0, rows0, batches0 = history[0]
        span = now - t0
        if span < 0.5:
            return {"requests_per_s": None, "rows_per_s": None, "error_rate": None, "recent_batch_rows": None}
        before = (ok0, fail0, rows0, batches0)
        ok, fail, rows, batches = (c - c0 for c, c0 in zip(counts, before, strict=True))
        return {
            "requests_per_s": (ok + fail) / span,
            "rows_per_s": rows / span,
            "error_rate": fail / (ok + fail) if ok + fail else 0.0,
            "recent_batch_rows": rows / batches if batches else None,
        }

    def forget_except(self, keys: set[tuple]) -> None:
        for key in list(self._history):
            if key not in keys:
                del self._history[key]


def static_file(name: str) -> Response:
    media = STATIC.get(name)
    if media is None:
        return Response(b"not found", 404, media_type="text/plain")
    body = resources.files("torchship.serve").joinpath("static", name).read_bytes()
    return Response(body, media_type=media, headers={"cache-control": "no-cache"})


async def index(request: Request) -> Response:
    return static_file("index.html")


async def asset(request: Request) -> Response:
    return static_file(request.path_params["name"])


def summary(state: Any) -> dict[str, Any]:
    """Everything the dashboard shows, for every model on disk or loaded."""
    now = time.monotonic()
    models, keys = [], set()
    for entry in state.repository.index():
        name, version = entry["name"], entry.get("version")
        loaded = state.repository.models.get(name, {}).get(version) if version else None
        row: dict[str, Any] = {
            "name": name,
            "version": version,
            "state": entry["state"],
            "reason": entry["reason"],
        }
        if loaded is not None:
            key = (name, version, loaded.loaded_at)
            keys.add(key)
            row.update(_model_summary(loaded, state.rates.rates(key, _counts(loaded), now)))
        models.append(row)
    state.rates.forget_except(keys)
    security = state.security
    not_ready = state.not_ready()
    request_log = state.repository.monitoring.request_log
    return {
        "server": {
            "name": "torchship",
            "version": torchship.__version__,
            "ready": not_ready is None,
            "started": state.started,
            "not_ready_reason": None if not_ready is None else str(not_ready),
            "draining": state.draining,
            "time": time.time(),
            "management": security.management,
            "management_token": (security.management_token or security.inference_token) is not None,
            "inference_token": security.inference_token is not None,
            "request_log": request_log.stats() if request_log is not None else None,
        },
        "models": models,
    }


def _counts(model: Any) -> tuple[int, int, int, int]:
    s = model.stats
    return s.phases["success"].count, s.phases["fail"].count, s.inference_count, s.execution_count


def _model_summary(model: Any, rates: dict[str, Any]) -> dict[str, Any]:
    s = model.stats
    ok, fail = s.phases["success"].count, s.phases["fail"].count
    return {
        "runtime": model.settings.runtime,
        "instances": model.settings.instances,
        "load_s": model.load_s,
        "loaded_at": model.loaded_at,
        "requests": {"success": ok, "fail": fail},
        "rows": s.inference_count,
        "batches": s.execution_count,
        "mean_batch_rows": s.inference_count / s.execution_count if s.execution_count else None,
        "batch_sizes": {
            str(size): phases["compute_infer"].count for size, phases in sorted(s.batches.items())
        },
        "max_batch_size": model.settings.max_batch_size,
        "latency_ms": s.latency_ms(),
        "queue_depth": model.batcher.depth,
        "in_flight": model.in_flight,
        "restarts": s.instance_restarts,
        **rates,
        "drift": model.drift(),
    }
