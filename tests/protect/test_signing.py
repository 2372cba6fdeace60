"""Signing with OpenSSF model-signing: valid, tampered, copied, wrong key, unsigned; lineage; CLI."""

from __future__ import annotations

import json
import shutil

import pytest

from torchship.artifact import Artifact
from torchship.artifact.signing import SignatureError, require_signature, sign, signature_info, verify
from torchship.artifact.store import SIGNATURE, sha256_file
from torchship.testing import tiny_artifact


def _flip_last_byte(path) -> None:
    data = bytearray(path.read_bytes())
    data[-2] ^= 0x01  # -2: a manifest ends in "}\n"; flipping a space or digit keeps it a file
    path.write_bytes(bytes(data))


def test_sign_then_verify_is_valid_and_names_the_key(artifact, keys):
    sign(artifact, keys["private"])
    verdict = verify(artifact, keys["public"])
    assert verdict.status == "valid", verdict
    info = signature_info(artifact)
    assert info["kind"] == "key"
    assert verdict.fingerprint == info["fingerprint"].lower()
    assert (artifact / SIGNATURE).is_file()


@pytest.mark.parametrize("name", ["weights.safetensors", "model.ts", "model.onnx", "manifest.json"])
def test_one_changed_byte_in_any_file_fails_and_is_named(artifact, keys, name):
    sign(artifact, keys["private"])
    _flip_last_byte(artifact / name)
    verdict = verify(artifact, keys["public"])
    assert verdict.status == "invalid"
    assert verdict.changed == (name,)
    assert name in verdict.detail


def test_added_and_removed_files_are_named(artifact, keys):
    sign(artifact, keys["private"])
    (artifact / "extra.bin").write_bytes(b"x")
    (artifact / "model.ts").unlink()
    verdict = verify(artifact, keys["public"])
    assert verdict.status == "invalid"
    assert set(verdict.changed) == {"extra.bin", "model.ts"}
    assert "added: extra.bin" in verdict.detail
    assert "removed: model.ts" in verdict.detail


def test_signature_copied_from_another_artifact_fails(artifact, keys, tmp_path):
    other = tiny_artifact("cnn", path=tmp_path / "other", seed=9).path
    sign(other, keys["private"])
    shutil.copyfile(other / SIGNATURE, artifact / SIGNATURE)
    verdict = verify(artifact, keys["public"])
    assert verdict.status == "invalid"
    assert "weights.safetensors" in verdict.changed


def test_wrong_public_key_fails(artifact, keys):
    sign(artifact, keys["private"])
    verdict = verify(artifact, keys["other_public"])
    assert verdict.status == "invalid"
    assert "different key" in verdict.detail
    with pytest.raises(SignatureError, match="signature invalid"):
        require_signature(artifact, keys["other_public"])


def test_edited_signature_file_fails(artifact, keys):
    sign(artifact, keys["private"])
    bundle = json.loads((artifact / SIGNATURE).read_text())
    envelope = bundle["dsseEnvelope"]
    sig = envelope["signatures"][0]["sig"]
    envelope["signatures"][0]["sig"] = ("A" if sig[0] != "A" else "B") + sig[1:]
    (artifact / SIGNATURE).write_text(json.dumps(bundle))
    assert verify(artifact, keys["public"]).status == "invalid"


def test_unsigned_is_its_own_verdict(artifact, keys):
    assert verify(artifact, keys["public"]).status == "unsigned"
    assert signature_info(artifact) is None
    with pytest.raises(SignatureError, match="signature unsigned"):
        require_signature(artifact, keys["public"])


def test_derived_artifacts_are_unsigned_and_keep_the_parent_signature_digest(artifact, keys, tmp_path):
    sign(artifact, keys["private"])
    parent = Artifact.load(artifact)
    child = parent.derive(op="prune").save(tmp_path / "child")
    assert signature_info(child.path) is None
    assert child.manifest.lineage.parent_signature == sha256_file(artifact / SIGNATURE)
    reloaded = Artifact.load(child.path)
    assert reloaded.manifest.lineage.parent_signature == child.manifest.lineage.parent_signature
    # rewriting an artifact in place (an export into it) leaves it unsigned, not wrongly signed
    parent.with_manifest(exports={}).save(artifact)
    assert verify(artifact, keys["public"]).status == "unsigned"


def test_cli_keygen_sign_verify_inspect(run_cli, artifact, tmp_path):
    code, stdout, _ = run_cli("keygen", "-o", tmp_path / "k")
    assert code == 0
    assert "sha256:" in stdout
    fingerprint = stdout.split()[-1]
    assert run_cli("verify", artifact, "--key", tmp_path / "k" / "public.pem")[0] == 2
    code, stdout, _ = run_cli("sign", artifact, "--key", tmp_path / "k" / "private.pem")
    assert code == 0
    assert fingerprint in stdout
    code, stdout, _ = run_cli("verify", artifact, "--key", tmp_path / "k" / "public.pem")
    assert code == 0
    assert stdout.startswith("valid:")
    code, stdout, _ = run_cli("inspect", artifact)
    assert code == 0
    assert fingerprint in stdout
    code, stdout, _ = run_cli("inspect", artifact, "--json")
    assert json.loads(stdout)["signature"]["fingerprint"] == fingerprint
    _flip_last_byte(artifact / "model.onnx")
    code, stdout, stderr = run_cli("verify", artifact, "--key", tmp_path / "k" / "public.pem", "--json")
    assert code == 1
    assert json.loads(stdout)["changed"] == ["model.onnx"]
    code, _, stderr = run_cli("verify", artifact, "--key", tmp_path / "k" / "public.pem")
    assert code == 1
    assert stderr.startswith("invalid:")
    assert "model.onnx" in stderr


def test_cli_bad_key_paths_are_one_line(run_cli, artifact, tmp_path, keys):
    code, _, stderr = run_cli("sign", artifact, "--key", tmp_path / "nope.pem")
    assert code == 2
    assert stderr.count("\n") == 1
    assert "does not exist" in stderr
    code, _, stderr = run_cli("sign", artifact, "--key", keys["public"])
    assert code == 2
    assert stderr.count("\n") == 1
    assert "cannot sign" in stderr
    code, _, stderr = run_cli("keygen", "-o", keys["private"].parent)
    assert code == 2
    assert "already exists" in stderr


def test_certificate_signing_verifies_against_the_ca_offline(run_cli, artifact, pki, tmp_path):
    code, stdout, stderr = run_cli(
        "sign", artifact, "--key", pki["private"], "--certificate", pki["certificate"], "--chain", pki["ca"]
    )
    assert code == 0, stderr
    assert signature_info(artifact)["kind"] == "certificate"
    code, stdout, _ = run_cli("verify", artifact, "--chain", pki["ca"])
    assert code == 0, stdout
    _flip_last_byte(artifact / "weights.safetensors")
    code, _, stderr = run_cli("verify", artifact, "--chain", pki["ca"])
    assert code == 1
    assert "weights.safetensors" in stderr
    code, _, stderr = run_cli("verify", artifact)
    assert code == 2
    assert "exactly one of --key" in stderr
