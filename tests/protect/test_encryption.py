"""Encryption at rest: AES-256-GCM per file, key sources, in-memory loading in every runtime, bench."""

from __future__ import annotations

import base64
import json
import sys

import numpy as np
import pytest

from torchship.artifact import Artifact
from torchship.artifact.encryption import (
    KEY_COMMAND_ENV,
    KEY_ENV,
    KEY_FILE_ENV,
    EncryptionError,
    encrypt_artifact,
    generate_key,
    parse_key,
)
from torchship.runtime import load_predictor

X = np.random.default_rng(0).standard_normal((4, 1, 8, 8)).astype(np.float32)


@pytest.fixture(autouse=True)
def _no_key_in_env(monkeypatch):
    # setenv first so that teardown also removes what --key-file (use_key_file) sets in os.environ
    for env in (KEY_ENV, KEY_FILE_ENV, KEY_COMMAND_ENV):
        monkeypatch.setenv(env, "")
        monkeypatch.delenv(env)


@pytest.fixture
def sealed(artifact, aes_key_file, tmp_path):
    key = parse_key(aes_key_file.read_bytes(), "test")
    return encrypt_artifact(Artifact.load(artifact), tmp_path / "sealed" / "artifact", key)


def test_weights_and_exports_are_encrypted_with_fresh_nonces(artifact, sealed, aes_key_file, tmp_path):
    manifest = json.loads((sealed / "manifest.json").read_text())
    assert manifest["encryption"] == {
        "algorithm": "AES-256-GCM",
        "files": ["model.onnx", "model.pt2", "model.ts", "weights.safetensors"],
    }
    assert aes_key_file.read_text().strip() not in (sealed / "manifest.json").read_text()
    for name in manifest["files"]:
        clear, stored = (artifact / name).read_bytes(), (sealed / name).read_bytes()
        assert clear[64:128] not in stored
        assert len(stored) == len(clear) + 12 + 16
    again = encrypt_artifact(
        Artifact.load(artifact), tmp_path / "again", parse_key(aes_key_file.read_bytes(), "test")
    )
    nonces = {(root / "weights.safetensors").read_bytes()[:12] for root in (again, sealed)}
    assert len(nonces) == 2


def test_loads_with_the_key_from_each_source(artifact, sealed, aes_key_file, monkeypatch):
    want = Artifact.load(artifact).state_dict()
    monkeypatch.setenv(KEY_FILE_ENV, str(aes_key_file))
    got = Artifact.load(sealed).state_dict()
    assert all(np.array_equal(got[k].numpy(), v.numpy()) for k, v in want.items())
    monkeypatch.delenv(KEY_FILE_ENV)
    monkeypatch.setenv(KEY_ENV, base64.b64encode(bytes.fromhex(aes_key_file.read_text().strip())).decode())
    assert Artifact.load(sealed).manifest.encryption is not None
    monkeypatch.delenv(KEY_ENV)
    monkeypatch.setenv(KEY_COMMAND_ENV, f'{sys.executable} -c "print(open({str(aes_key_file)!r}).read())"')
    assert Artifact.load(sealed).manifest.encryption is not None


def test_missing_wrong_or_malformed_key_is_one_clear_error(sealed, tmp_path, monkeypatch):
    with pytest.raises(EncryptionError, match="needs a key and none was given"):
        Artifact.load(sealed)
    wrong = tmp_path / "wrong.key"
    wrong.write_text(generate_key().hex())
    monkeypatch.setenv(KEY_FILE_ENV, str(wrong))
    with pytest.raises(EncryptionError, match="cannot decrypt weights.safetensors .*wrong key"):
        Artifact.load(sealed)
    wrong.write_text("not a key")
    monkeypatch.setenv(KEY_FILE_ENV, str(wrong) + "-renamed")
    with pytest.raises(EncryptionError, match="cannot read key file"):
        Artifact.load(sealed)
    with pytest.raises(EncryptionError, match="is not 32 bytes"):
        parse_key(b"not a key", "test")
    monkeypatch.setenv(KEY_FILE_ENV, "")
    monkeypatch.setenv(KEY_COMMAND_ENV, f'{sys.executable} -c "raise SystemExit(3)"')
    with pytest.raises(EncryptionError, match="exited 3"):
        Artifact.load(sealed)


@pytest.mark.parametrize("runtime", ["eager", "torchscript", "exported", "onnxruntime"])
def test_runtimes_run_an_encrypted_artifact_from_memory(artifact, sealed, aes_key_file, monkeypatch, runtime):
    reference = load_predictor(Artifact.load(artifact), runtime, warmup=0).predict(X)
    monkeypatch.setenv(KEY_FILE_ENV, str(aes_key_file))
    predictor = load_predictor(Artifact.load(sealed), runtime, warmup=0)
    np.testing.assert_allclose(predictor.predict(X), reference, atol=1e-6)


def test_writing_from_an_encrypted_artifact_stays_encrypted(sealed, aes_key_file, monkeypatch, tmp_path):
    monkeypatch.setenv(KEY_FILE_ENV, str(aes_key_file))
    parent = Artifact.load(sealed)
    child = parent.derive(op="prune").save(tmp_path / "child")
    assert child.manifest.encryption.files == ["weights.safetensors"]
    assert b"__metadata__" not in (tmp_path / "child" / "weights.safetensors").read_bytes()
    assert Artifact.load(child.path).state_dict().keys() == parent.state_dict().keys()
    # metadata written beside it stays readable, like the manifest; exports are encrypted
    noted = child.with_manifest().save(child.path, extra_files={"notes.json": b"{}", "model.ts": b"graph"})
    assert noted.manifest.encryption.files == ["model.ts", "weights.safetensors"]
    assert (child.path / "notes.json").read_bytes() == b"{}"
    assert b"graph" not in (child.path / "model.ts").read_bytes()
    assert Artifact.load(child.path).read_bytes("model.ts") == b"graph"
    with pytest.raises(EncryptionError, match="already encrypted"):
        encrypt_artifact(parent, tmp_path / "twice", b"k" * 32)


def test_cli_encrypt_then_inspect_and_bench_with_the_right_key_only(
    run_cli, artifact, aes_key_file, tmp_path, monkeypatch
):
    code, stdout, stderr = run_cli("encrypt", artifact, "--key-file", aes_key_file, "-o", tmp_path / "run")
    assert code == 0, stderr
    sealed = tmp_path / "run" / "artifact"
    monkeypatch.delenv(KEY_FILE_ENV)  # set by --key-file for this process
    code, _, stderr = run_cli("inspect", sealed)
    assert code == 2
    assert stderr.count("\n") == 1
    assert "needs a key" in stderr
    code, stdout, _ = run_cli("inspect", sealed, "--key-file", aes_key_file)
    assert code == 0
    assert "AES-256-GCM" in stdout
    fast = ("--batch-sizes", "1", "--warmup", "1", "--min-iterations", "2", "--min-time-s", "0")
    code, stdout, stderr = run_cli(
        "bench", sealed, "--runtime", "eager,onnxruntime", *fast, "--key-file", aes_key_file
    )
    assert code == 0, stderr
    assert "onnxruntime" in stdout
    assert "skipped" not in stdout.lower()
    wrong = tmp_path / "wrong.key"
    wrong.write_text(generate_key().hex())
    code, _, stderr = run_cli("bench", sealed, *fast, "--key-file", wrong)
    assert code == 2
    assert stderr.splitlines()[-1].startswith("error: cannot decrypt")
    assert "wrong key" in stderr


def test_quantize_refuses_an_encrypted_artifact(sealed, aes_key_file, monkeypatch, tmp_path):
    # ONNX Runtime's quantizer works on files: it would write the model in clear
    from torchship.compress.base import CompressError
    from torchship.compress.quantize import quantize

    monkeypatch.setenv(KEY_FILE_ENV, str(aes_key_file))
    with pytest.raises(CompressError, match="encrypted"):
        quantize(Artifact.load(sealed), out=tmp_path / "int8")
