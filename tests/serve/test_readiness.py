"""Readiness tells the truth: entries that cannot load say why, and strict readiness waits for every model."""

from __future__ import annotations

import contextlib
from pathlib import Path

import anyio
import httpx
import numpy as np
import pytest
from serve_helpers import v2_body

from torchship.errors import ConfigError
from torchship.serve import ServeConfig, create_app
from torchship.testing import tiny_artifact

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def mixed_repo(tmp_path_factory) -> Path:
    """REPO/good/1, plus entries that cannot load: no version, a link outside the repo, bad weights."""
    root = tmp_path_factory.mktemp("mixed")
    outside = tmp_path_factory.mktemp("outside")
    tiny_artifact("mlp", shape=(16,), path=root / "good" / "1")
    (root / "empty").mkdir()
    tiny_artifact("mlp", shape=(16,), path=outside / "linked" / "1")
    (root / "linked").symlink_to(outside / "linked", target_is_directory=True)
    broken = tiny_artifact("mlp", shape=(16,), path=root / "broken" / "1")
    weights = Path(broken.path) / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"tampered")
    return root


@contextlib.asynccontextmanager
async def started(path: Path, config: ServeConfig | None = None):
    """The app with its startup loading finished (ready or not), and a client."""
    app = create_app(path, config)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=30) as client:
            for _ in range(400):
                index = (await client.post("/v2/repository/index")).json()
                if all(entry["state"] != "LOADING" for entry in index) and app.state.serve.started:
                    break
                await anyio.sleep(0.05)
            else:
                raise AssertionError(f"entries stayed LOADING: {index}")
            yield client


async def test_entries_that_cannot_load_are_unavailable_with_their_reason(mixed_repo):
    async with started(mixed_repo) as c:
        index = {e["name"]: e for e in (await c.post("/v2/repository/index")).json()}
        assert index["good"]["state"] == "READY"
        for name, why in (
            ("empty", "has no version directories"),
            ("linked", "is a link to a place outside the repository"),
            ("broken", "checksum mismatch"),
        ):
            assert index[name]["state"] == "UNAVAILABLE", index[name]
            assert why in index[name]["reason"]
            r = await c.post(f"/v2/models/{name}/infer", json=v2_body(np.ones((1, 16), np.float32)))
            assert r.status_code == 503
            assert "retry-after" not in r.headers  # retrying will not help
            assert f"model {name!r} is unavailable: " in r.json()["error"]
            assert why in r.json()["error"]
        dashboard = {m["name"]: m for m in (await c.get("/v1/summary")).json()["models"]}
        assert dashboard["linked"]["state"] == "UNAVAILABLE"
        assert "outside the repository" in dashboard["linked"]["reason"]
        r = await c.post("/v2/models/good/infer", json=v2_body(np.ones((1, 16), np.float32)))
        assert r.status_code == 200


async def test_strict_readiness_is_503_with_the_failed_models_until_they_are_unloaded(mixed_repo):
    async with started(mixed_repo) as c:
        r = await c.get("/v2/health/ready")
        assert r.status_code == 503
        assert "retry-after" not in r.headers
        error = r.json()["error"]
        assert "model 'broken' is UNAVAILABLE (" in error
        assert "model 'empty' is UNAVAILABLE (" in error
        assert "--no-strict-readiness" in error
        summary = (await c.get("/v1/summary")).json()["server"]
        assert summary["ready"] is False
        assert summary["started"] is True
        assert "model 'linked' is UNAVAILABLE" in summary["not_ready_reason"]
        for name in ("broken", "empty", "linked"):  # the operator gives up on them: ready again
            assert (await c.post(f"/v2/repository/models/{name}/unload")).status_code == 200
        assert (await c.get("/v2/health/ready")).status_code == 200


async def test_no_strict_readiness_is_ready_once_loading_is_done(mixed_repo):
    async with started(mixed_repo, ServeConfig(strict_readiness=False)) as c:
        assert (await c.get("/v2/health/ready")).json() == {"ready": True}


@pytest.mark.anyio(False)
def test_a_path_without_any_model_is_refused_at_start(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "1").mkdir()
    with pytest.raises(ConfigError, match="holds no model: no manifest.json in it, nor in any <model>/<v"):
        create_app(tmp_path)


@pytest.mark.anyio(False)
def test_the_cli_passes_no_strict_readiness_to_the_server(run_cli, repo, monkeypatch):
    import torchship.serve

    seen = {}
    monkeypatch.setattr(torchship.serve, "serve", lambda path, **kw: seen.update(kw))
    assert run_cli("serve", repo, "--no-strict-readiness")[0] == 0
    assert seen["config"].strict_readiness is False
    assert run_cli("serve", repo)[0] == 0
    assert seen["config"].strict_readiness is True


async def test_a_run_directory_is_served_as_its_artifact(tmp_path):
    """`-o OUT` puts the artifact in OUT/artifact; serving OUT must serve that artifact, ready."""
    tiny_artifact("mlp", shape=(16,), path=tmp_path / "run" / "artifact")
    async with started(tmp_path / "run") as client:
        assert (await client.get("/v2/health/ready")).status_code == 200
