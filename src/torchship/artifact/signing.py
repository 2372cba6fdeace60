"""Signed artifacts: the OpenSSF ``model-signing`` library over a whole artifact directory.

``sign`` hashes every file of the artifact (the manifest, the weights, every export) with
model-signing's file serialization and writes a Sigstore bundle, ``model.sig``, inside the
artifact; the bundle is excluded from what it signs. ``verify`` recomputes the hashes and
checks the bundle against a public key, and says which file changed when the library can
tell. Key-based signing (EC P-256/384/521 keys) works offline; so does certificate-based
signing (a private key plus its certificate chain). No cryptography is written here.

The key fingerprint shown by ``inspect`` and ``keygen`` is the one model-signing records in
the bundle: ``sha256:`` of the public key's PEM (SubjectPublicKeyInfo).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from torchship.artifact.store import MANIFEST, SIGNATURE, resolve_artifact_dir
from torchship.errors import ArtifactError, require


class SignatureError(ArtifactError):
    """An artifact is unsigned or its signature does not verify where one is required."""


@dataclass(frozen=True)
class Verdict:
    """The outcome of ``verify``: ``valid``, ``invalid`` or ``unsigned``, and why."""

    status: Literal["valid", "invalid", "unsigned"]
    detail: str
    fingerprint: str | None = None
    changed: tuple[str, ...] = ()


def _library():
    require("OpenSSL", "protect")  # model-signing imports pyOpenSSL without declaring it
    return require("model_signing", "protect")


def _artifact_dir(path: str | os.PathLike[str]) -> Path:
    root = resolve_artifact_dir(path)
    if not (root / MANIFEST).is_file():
        raise ArtifactError(f"{root} is not an artifact directory (no {MANIFEST})", fix="check the path")
    return root


def _hashing(model_signing: Any):
    return model_signing.hashing.Config().set_ignored_paths(paths=[SIGNATURE])


def _key_file(path: str | os.PathLike[str], what: str) -> Path:
    file = Path(path)
    if not file.is_file():
        raise ArtifactError(
            f"{what} {file} does not exist", fix="make a key pair with: torchship keygen -o keys"
        )
    return file


def sign(
    path: str | os.PathLike[str],
    private_key: str | os.PathLike[str],
    *,
    password: str | None = None,
    certificate: str | os.PathLike[str] | None = None,
    chain: Sequence[str | os.PathLike[str]] = (),
) -> Path:
    """Sign the artifact at ``path`` in place; returns the signature file written.

    Raises:
        ArtifactError: The path is not an artifact, or the key (or certificate) cannot be used.
    """
    model_signing = _library()
    root = _artifact_dir(path)
    key = _key_file(private_key, "private key")
    config = model_signing.signing.Config().set_hashing_config(_hashing(model_signing))
    try:
        if certificate is not None:
            config.use_certificate_signer(
                private_key=key,
                signing_certificate=Path(certificate),
                certificate_chain=[Path(c) for c in chain],
            )
        else:
            config.use_elliptic_key_signer(private_key=key, password=password)
    except (ValueError, TypeError) as exc:
        raise ArtifactError(
            f"cannot sign with {key} ({' '.join(str(exc).split())[:200]})",
            fix="use a PEM EC private key (P-256, P-384 or P-521): torchship keygen -o keys",
        ) from None
    (root / SIGNATURE).unlink(missing_ok=True)
    config.sign(root, root / SIGNATURE)
    return root / SIGNATURE


def verify(
    path: str | os.PathLike[str],
    public_key: str | os.PathLike[str] | None = None,
    *,
    chain: Sequence[str | os.PathLike[str]] = (),
) -> Verdict:
    """Check the artifact's signature against ``public_key`` (or a certificate ``chain``)."""
    model_signing = _library()
    root = _artifact_dir(path)
    info = signature_info(root)
    if info is None:
        return Verdict("unsigned", f"{root} has no {SIGNATURE}")
    config = model_signing.verifying.Config()
    if public_key is not None:
        config.use_elliptic_key_verifier(public_key=_key_file(public_key, "public key"))
    else:
        config.use_certificate_verifier(certificate_chain=[Path(c) for c in chain])
    try:
        config.verify(root, root / SIGNATURE)
    except Exception as exc:  # the library raises ValueError, InvalidSignature, protobuf and JSON errors
        changed, added, removed = _diff(str(exc))
        return Verdict(
            "invalid",
            _explain(exc, changed, added, removed),
            info["fingerprint"],
            tuple(changed + added + removed),
        )
    return Verdict("valid", f"signed by {info['fingerprint']}", info["fingerprint"])


def _diff(message: str) -> tuple[list[str], list[str], list[str]]:
    # model-signing reports "Signature mismatch: [...]" with "Hash mismatch for 'NAME'",
    # "Extra files found in model 'M': A, B" and "Missing files in model 'M': A" (as a list repr)
    changed = re.findall(r"Hash mismatch for \\*'([^'\\]+)", message)

    def listed(label: str) -> list[str]:
        found = re.findall(label + r" in model \\*'[^'\\]*\\*': ([^\"'\\\]]+)", message)
        return [name.strip() for match in found for name in match.split(",") if name.strip()]

    return changed, listed("Extra files found"), listed("Missing files")


def _explain(exc: Exception, changed: list[str], added: list[str], removed: list[str]) -> str:
    message = " ".join(str(exc).split())
    if changed or added or removed:
        parts = [
            f"{label}: {', '.join(names)}"
            for label, names in (("changed since signing", changed), ("added", added), ("removed", removed))
            if names
        ]
        return "; ".join(parts)
    if message.startswith("Key mismatch"):
        return "signed by a different key than the one given"
    if type(exc).__name__ == "InvalidSignature":
        return "the signature does not match its contents (the signature file was altered)"
    return (message or type(exc).__name__)[:300]


def require_signature(path: str | os.PathLike[str], public_key: str | os.PathLike[str]) -> Verdict:
    """Verify or refuse: the check the server runs before it loads an artifact.

    Raises:
        SignatureError: The artifact is unsigned or its signature does not verify.
    """
    verdict = verify(path, public_key)
    if verdict.status != "valid":
        raise SignatureError(
            f"signature {verdict.status}: {verdict.detail}",
            fix=f"sign it: torchship sign ARTIFACT --key PRIVATE.pem (pair of {public_key})",
        )
    return verdict


def signature_info(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """What ``model.sig`` says about its signer (without verifying it), or None when unsigned."""
    file = _artifact_dir(path) / SIGNATURE
    if not file.is_file():
        return None
    try:
        material = json.loads(file.read_text()).get("verificationMaterial", {})
    except (OSError, ValueError, AttributeError):
        return {"kind": "unreadable", "fingerprint": "?", "file": SIGNATURE}
    hint = (material.get("publicKey") or {}).get("hint")
    if hint:
        return {"kind": "key", "fingerprint": f"sha256:{hint}", "file": SIGNATURE}
    certificates = (material.get("x509CertificateChain") or {}).get("certificates") or []
    if certificates and certificates[0].get("rawBytes"):
        import base64

        der = base64.b64decode(certificates[0]["rawBytes"])
        fingerprint = "sha256:" + hashlib.sha256(der).hexdigest()
        return {"kind": "certificate", "fingerprint": fingerprint, "file": SIGNATURE}
    return {"kind": "unknown", "fingerprint": "?", "file": SIGNATURE}


def public_key_fingerprint(public_pem: bytes) -> str:
    """``sha256:`` of a PEM public key, as model-signing records it in the bundle."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_public_key(public_pem)
    spki = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def keygen(out: str | os.PathLike[str]) -> tuple[Path, Path, str]:
    """Write an EC P-256 key pair (``private.pem``, ``public.pem``) with ``cryptography``.

    Returns the two paths and the public key's fingerprint.

    Raises:
        ArtifactError: ``private.pem`` already exists in ``out`` (it is never overwritten).
    """
    require("cryptography", "protect")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    root = Path(out)
    private, public = root / "private.pem", root / "public.pem"
    if private.exists():
        raise ArtifactError(
            f"{private} already exists", fix="choose another -o directory; keys are never overwritten"
        )
    root.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public.write_bytes(public_pem)
    return private, public, public_key_fingerprint(public_pem)
