"""The server enforces signatures (startup and repository load) and serves encrypted artifacts from memory."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from serve_helpers import in_process, v2_body

from torchship.artifact import Artifact
from torchship.artifact.encryption import KEY_COMMAND_ENV, KEY_ENV, KEY_FILE_ENV, encrypt_artifact, parse_key
from torchship.artifact.signing import sign
from torchship.serve import ModelSettings, ServeConfig

pytestmark = pytest.mark.anyio
X = np.random.default_rng(1).standard_normal((2, 1, 8, 8)).astype(np.float32)


@pytest.fixture(autouse=True)
def _no_key_in_env(monkeypatch):
    for env in (KEY_ENV, KEY_FILE_ENV, KEY_COMMAND_ENV):
        monkeypatch.setenv(env, "")
        monkeypatch.delenv(env)


def _expected(artifact: Path) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return Artifact.load(artifact).build_model()(torch.from_numpy(X)).numpy()


@pytest.fixture
def repo(exported, keys, tmp_path) -> Path:
    """REPO/good/1 signed, REPO/unsigned/1 not signed, REPO/tampered/1 changed after signing."""
    root = tmp_path / "repo"
    for name in ("good", "unsigned", "tampered"):
        shutil.copytree(exported, root / name / "1")
    sign(root / "good" / "1", keys["private"])
    sign(root / "tampered" / "1", keys["private"])
    weights = root / "tampered" / "1" / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    return root


async def test_require_signature_refuses_unsigned_and_tampered_at_startup_and_on_load(repo, keys, caplog):
    # strict readiness would keep the server unready while two startup models are refused
    config = ServeConfig(
        default=ModelSettings(require_signature=str(keys["public"]), warmup=0), strict_readiness=False
    )
    with caplog.at_level(logging.ERROR, logger="torchship.serve"):
        async with in_process(repo, config) as c:
            index = {e["name"]: e for e in (await c.post("/v2/repository/index")).json()}
            assert index["good"]["state"] == "READY"
            assert index["unsigned"]["state"] == "UNAVAILABLE"
            assert "signature unsigned" in index["unsigned"]["reason"]
            assert index["tampered"]["state"] == "UNAVAILABLE"
            assert "changed since signing: weights.safetensors" in index["tampered"]["reason"]
            r = await c.post("/v2/models/good/infer", json=v2_body(X))
            assert r.status_code == 200, r.text
            logits = np.array(r.json()["outputs"][0]["data"], np.float32).reshape(2, 10)
            np.testing.assert_allclose(logits, _expected(repo / "good" / "1"), atol=1e-5)
            assert (await c.get("/v2/models/tampered/ready")).status_code != 200
            r = await c.post("/v2/models/unsigned/infer", json=v2_body(X))
            assert r.status_code == 503, r.text
            assert "signature unsigned" in r.json()["error"]
            # through the repository API: still refused, and the reason is in the answer
            r = await c.post("/v2/repository/models/tampered/load")
            assert r.status_code == 400
            assert "weights.safetensors" in r.json()["error"]
            r = await c.post("/v2/repository/models/unsigned/load")
            assert r.status_code == 400
            assert "signature unsigned" in r.json()["error"]
            # signed now: the same API call loads it
            sign(repo / "unsigned" / "1", keys["private"])
            assert (await c.post("/v2/repository/models/unsigned/load")).status_code == 200
            assert (await c.get("/v2/models/unsigned/ready")).status_code == 200
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert any("tampered" in m and "weights.safetensors" in m for m in refused)


async def test_require_signature_per_model_and_wrong_key(repo, keys):
    config = ServeConfig.model_validate(
        {
            "default": {"warmup": 0},
            "models": {"good": {"require_signature": str(keys["other_public"])}},
            "strict_readiness": False,  # 'good' is refused: strict readiness would never be ready
        }
    )
    async with in_process(repo, config) as c:
        index = {e["name"]: e for e in (await c.post("/v2/repository/index")).json()}
        assert index["good"]["state"] == "UNAVAILABLE"
        assert "different key" in index["good"]["reason"]
        assert index["unsigned"]["state"] == "READY"  # no requirement for this one


def _sealed(exported: Path, key_file: Path, tmp_path: Path) -> Path:
    key = parse_key(key_file.read_bytes(), "test")
    return encrypt_artifact(Artifact.load(exported), tmp_path / "sealed", key)


def _same_bytes_on_disk(roots: list[Path], secrets: list[bytes]) -> list[Path]:
    sizes = {len(s) for s in secrets}
    found = []
    for root in roots:
        for folder, _, files in os.walk(root):
            for name in files:
                path = Path(folder) / name
                try:
                    if path.stat().st_size in sizes and path.read_bytes() in secrets:
                        found.append(path)
                except OSError:
                    continue
    return found


@pytest.mark.parametrize("runtime", ["eager", "onnxruntime", "torchscript", "exported"])
async def test_encrypted_artifact_is_served_from_memory_with_the_right_key_only(
    exported, aes_key_file, tmp_path, monkeypatch, runtime
):
    sealed = _sealed(exported, aes_key_file, tmp_path)
    work, scratch = tmp_path / "cwd", tmp_path / "tmp"
    work.mkdir()
    scratch.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    monkeypatch.setenv(KEY_FILE_ENV, str(aes_key_file))
    secrets = [
        (exported / name).read_bytes()
        for name in ("weights.safetensors", "model.onnx", "model.ts", "model.pt2")
    ]
    config = ServeConfig(default=ModelSettings(runtime=runtime, warmup=1))
    async with in_process(sealed, config) as c:
        r = await c.post("/v2/models/tiny-cnn/infer", json=v2_body(X))
        assert r.status_code == 200, r.text
        logits = np.array(r.json()["outputs"][0]["data"], np.float32).reshape(2, 10)
        np.testing.assert_allclose(logits, _expected(exported), atol=1e-5)
        assert tempfile.gettempdir() == str(scratch)
        assert _same_bytes_on_disk([work, scratch, sealed], secrets) == []
    assert len(_same_bytes_on_disk([exported], secrets)) == 4  # the scan does find clear files


async def test_encrypted_artifact_with_a_wrong_key_never_becomes_ready(
    exported, aes_key_file, tmp_path, monkeypatch
):
    from torchship.artifact.encryption import generate_key

    sealed = _sealed(exported, aes_key_file, tmp_path)
    wrong = tmp_path / "wrong.key"
    wrong.write_text(generate_key().hex())
    monkeypatch.setenv(KEY_FILE_ENV, str(wrong))
    async with in_process(sealed, ServeConfig(default=ModelSettings(warmup=0), strict_readiness=False)) as c:
        index = (await c.post("/v2/repository/index")).json()
        assert index[0]["state"] == "UNAVAILABLE"
        assert "wrong key" in index[0]["reason"]
        assert (await c.get("/v2/models/tiny-cnn/ready")).status_code != 200


def test_cli_serve_passes_require_signature_and_key_file(run_cli, repo, keys, aes_key_file, monkeypatch):
    import torchship.serve

    seen = {}
    monkeypatch.setattr(torchship.serve, "serve", lambda path, **kw: seen.update(kw, path=path))
    code, _, stderr = run_cli(
        "serve", repo, "--require-signature", keys["public"], "--key-file", aes_key_file
    )
    assert code == 0, stderr
    assert seen["config"].default.require_signature == str(keys["public"].resolve())
    assert os.environ[KEY_FILE_ENV] == str(aes_key_file.resolve())
    code, _, stderr = run_cli("serve", repo, "--require-signature", repo / "missing.pem")
    assert code == 2
    assert "does not exist" in stderr
