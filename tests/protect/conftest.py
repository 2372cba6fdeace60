"""Fixtures for signed and encrypted artifacts: key pairs, an exported tiny artifact, an AES key."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from torchship.testing import tiny_artifact

SERVE_TESTS = Path(__file__).parents[1] / "serve"
if str(SERVE_TESTS) not in sys.path:
    sys.path.insert(0, str(SERVE_TESTS))  # serve_helpers: the in-process app pattern


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="session")
def keys(tmp_path_factory) -> dict[str, Path]:
    """Two EC key pairs: private/public (the signer) and other_public (someone else)."""
    from torchship.artifact.signing import keygen

    root = tmp_path_factory.mktemp("keys")
    private, public, _ = keygen(root / "signer")
    _, other_public, _ = keygen(root / "other")
    return {"private": private, "public": public, "other_public": other_public}


@pytest.fixture(scope="session")
def exported(tmp_path_factory) -> Path:
    """A tiny cnn artifact with TorchScript, torch.export and ONNX exports (never modified: copy it)."""
    from torchship.export import export

    path = tmp_path_factory.mktemp("exported") / "artifact"
    export(tiny_artifact("cnn", path=path, seed=3), ["torchscript", "exported", "onnx"])
    return path


@pytest.fixture
def artifact(exported, tmp_path) -> Path:
    """A fresh copy of the exported artifact, free to sign, tamper with or encrypt."""
    return Path(shutil.copytree(exported, tmp_path / "art"))


@pytest.fixture
def aes_key_file(tmp_path) -> Path:
    from torchship.artifact.encryption import generate_key

    path = tmp_path / "artifact.key"
    path.write_text(generate_key().hex() + "\n")
    return path


def _certificate(subject: str, public_key, issuer: str, signing_key, *, ca: bool):
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(signing_key, hashes.SHA256())
    )


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> dict[str, Path]:
    """A private CA and a signing certificate it issued (offline PKI, made with cryptography)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    root = tmp_path_factory.mktemp("pki")
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("test ca", ca_key.public_key(), "test ca", ca_key, ca=True)
    leaf = _certificate("model signer", leaf_key.public_key(), "test ca", ca_key, ca=False)
    paths = {"ca": root / "ca.pem", "certificate": root / "signer.pem", "private": root / "signer-key.pem"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["certificate"].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    pem = leaf_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    paths["private"].write_bytes(pem)
    return paths
