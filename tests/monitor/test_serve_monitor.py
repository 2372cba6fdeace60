"""Drift monitoring in the running server: endpoints, gauges, and answers left untouched."""

from __future__ import annotations

import time

import httpx
import numpy as np
import pytest
from monitor_helpers import normalized, shifted
from serve_helpers import in_process, real_server, v2_body

from torchship.monitor import MonitorConfig
from torchship.serve import ServeConfig
from torchship.testing import tiny_artifact


def _config(**monitor) -> ServeConfig:
    return ServeConfig(
        access_log=False,
        monitor=MonitorConfig(**{"window_rows": 256, "min_rows": 128, "max_rows_per_s": 1e6, **monitor}),
    )


def _send(url: str, x: np.ndarray, rows: int = 8) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        for i in range(0, len(x), rows):
            r = client.post("/v2/models/digits/infer", json=v2_body(x[i : i + rows]))
            assert r.status_code == 200, r.text


def _drift_after(url: str, rows: int, path: str = "/v1/models/digits/drift") -> dict:
    deadline = time.monotonic() + 20
    while True:
        drift = httpx.get(url + path, timeout=10).json()
        if drift["rows"] >= rows or time.monotonic() > deadline:
            return drift
        time.sleep(0.05)


def test_live_drift_is_low_on_held_out_data_and_flags_a_brightness_shift(
    digits_repo, digits_artifact, digits_raw
):
    raw, labels = digits_raw
    with real_server(digits_repo, _config()) as url:
        _send(url, normalized(digits_artifact, raw[-400:]))
        calm = _drift_after(url, 256)
        assert calm["status"] == "ok", calm
        assert calm["max_input_psi"] < 0.05
        assert calm["prediction_psi"] < 0.15

        bright, _ = shifted(raw[-400:], labels[-400:], "brightness")
        _send(url, normalized(digits_artifact, bright))
        deadline = time.monotonic() + 20
        # the monitor thread folds batches in as they come: wait until the bright rows dominate
        while not (
            (drift := httpx.get(url + "/v1/models/digits/versions/1/drift").json())["status"] == "drift"
            and drift["max_input_psi"] > 1.0
        ):
            assert time.monotonic() < deadline, drift
            time.sleep(0.05)
        assert "input_psi:channel0" in drift["drift"]
        assert drift["name"] == "digits"
        assert drift["version"] == "1"

        metrics = httpx.get(url + "/metrics").text
        for series in (
            'torchship_drift_input_psi{group="channel0",model="digits",version="1"}',
            'torchship_drift_alert{model="digits",version="1"} 1.0',
            'torchship_drift_prediction_psi{model="digits",version="1"}',
            'torchship_drift_mean_confidence{model="digits",version="1"}',
        ):
            assert series in metrics, series

        stats = httpx.get(url + "/v2/models/digits/stats").json()["model_stats"][0]
        assert stats["inference_count"] == 800
        assert stats["drift"]["status"] == "drift"

        import tritonclient.http as triton

        client = triton.InferenceServerClient(url.removeprefix("http://"))
        parsed = client.get_inference_statistics("digits", "1")["model_stats"][0]
        assert parsed["inference_count"] == 800
        assert "drift" in parsed


def test_class_imbalanced_stream_flags_the_prediction_distribution(digits_repo, digits_artifact, digits_raw):
    raw, labels = shifted(*digits_raw, "imbalanced")
    with real_server(digits_repo, _config()) as url:
        _send(url, normalized(digits_artifact, raw[:320]), rows=16)
        drift = _drift_after(url, 256)
    assert "prediction_psi" in drift["drift"], drift
    assert drift["prediction_psi"] > 0.5
    assert drift["max_input_psi"] < 0.2


@pytest.mark.anyio
async def test_monitoring_and_request_logging_leave_answers_unchanged(
    digits_repo, digits_artifact, digits_raw, tmp_path
):
    x = normalized(digits_artifact, digits_raw[0][:96])
    answers = []
    for monitor in (
        MonitorConfig(enabled=False),
        MonitorConfig(max_rows_per_s=1e6, request_log={"path": tmp_path / "r.jsonl", "sample_rate": 1}),
    ):
        async with in_process(digits_repo, ServeConfig(access_log=False, monitor=monitor)) as client:
            got = []
            for i in range(0, len(x), 4):
                r = await client.post(
                    "/v2/models/digits/infer",
                    json=v2_body(
                        x[i : i + 4], outputs=[{"name": "logits", "parameters": {"binary_data": True}}]
                    ),
                )
                got.append(r.content)
            answers.append(got)
            drift = (await client.get("/v1/models/digits/drift")).json()
            assert drift["status"] == ("off" if not monitor.enabled else drift["status"])
    assert answers[0] == answers[1]  # byte for byte
    lines = (tmp_path / "r.jsonl").read_text().splitlines()
    assert len(lines) == len(x) // 4  # every request sampled (rate 1), written by the time the server stopped


@pytest.mark.anyio
async def test_dashboard_page_assets_and_summary(digits_repo, tmp_path):
    import shutil

    shutil.copytree(digits_repo, tmp_path / "repo")
    (tmp_path / "repo" / "broken" / "1").mkdir(parents=True)
    async with in_process(tmp_path / "repo", ServeConfig(access_log=False, strict_readiness=False)) as client:
        page = await client.get("/")
        assert page.status_code == 200
        assert "/static/dashboard.js" in page.text
        assert (await client.get("/static/dashboard.css")).headers["content-type"].startswith("text/css")
        assert (await client.get("/static/secret.py")).status_code == 404
        for _ in range(3):
            await client.post("/v2/models/digits/infer", json=v2_body(np.zeros((2, 1, 8, 8), np.float32)))
        summary = (await client.get("/v1/summary")).json()
    assert summary["server"]["ready"]
    assert summary["server"]["management"]
    models = {m["name"]: m for m in summary["models"]}
    assert models["broken"]["state"] == "UNAVAILABLE"
    assert models["broken"]["reason"]
    digits = models["digits"]
    assert digits["state"] == "READY"
    assert digits["requests"] == {"success": 3, "fail": 0}
    assert digits["latency_ms"]["p50"] > 0
    assert digits["batch_sizes"] == {"2": 3}
    assert digits["load_s"] > 0
    assert digits["drift"]["rows"] >= 0


@pytest.mark.anyio
async def test_drift_endpoint_explains_a_model_without_reference_and_404s(tmp_path):
    tiny_artifact("cnn", path=tmp_path / "repo" / "tiny" / "1")
    async with in_process(tmp_path / "repo", ServeConfig(access_log=False)) as client:
        drift = (await client.get("/v1/models/tiny/drift")).json()
        assert drift["status"] == "off"
        assert "no reference statistics" in drift["reason"]
        missing = await client.get("/v1/models/nope/drift")
        assert missing.status_code == 404
        assert "unknown model 'nope'" in missing.json()["error"]
        assert "drift" in (await client.get("/v2/models/stats")).json()["model_stats"][0]
