"""``torchship keygen``, ``sign``, ``verify`` and ``encrypt``: signed and encrypted artifacts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from torchship.cli._common import KeyFile, err, out, use_key_file
from torchship.cli.main import app

_ART = Annotated[Path, typer.Argument(help="Artifact directory.")]


@app.command(epilog="Example: torchship keygen -o keys --encryption-key")
def keygen(
    out_dir: Annotated[Path, typer.Option("-o", "--out", help="Directory for private.pem and public.pem.")],
    encryption_key: Annotated[
        bool,
        typer.Option("--encryption-key", help="Also write artifact.key (256 bits, for torchship encrypt)."),
    ] = False,
) -> None:
    """Make an EC P-256 key pair for signing (and optionally an AES-256 key for encryption)."""
    import os

    from torchship.artifact.signing import keygen as make_pair

    private, public, fingerprint = make_pair(out_dir)
    out.print(f"private key {private} (keep it secret)\npublic key  {public}  {fingerprint}", soft_wrap=True)
    if encryption_key:
        from torchship.artifact.encryption import generate_key

        key_path = out_dir / "artifact.key"
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(generate_key().hex() + "\n")
        out.print(
            f"encryption key {key_path} (keep it secret; torchship encrypt ART --key-file {key_path})",
            soft_wrap=True,
        )


@app.command(epilog="Example: torchship sign runs/digits-cnn/artifact --key keys/private.pem")
def sign(
    artifact: _ART,
    key: Annotated[Path, typer.Option("--key", help="PEM EC private key (torchship keygen).")],
    certificate: Annotated[
        Path | None, typer.Option("--certificate", help="Sign with this certificate for KEY (offline PKI).")
    ] = None,
    chain: Annotated[list[Path] | None, typer.Option("--chain", help="Intermediate certificates.")] = None,
) -> None:
    """Sign every file of ARTIFACT (OpenSSF model signing); the signature lands in ARTIFACT/model.sig."""
    from torchship.artifact.signing import sign as sign_artifact
    from torchship.artifact.signing import signature_info

    signature = sign_artifact(artifact, key, certificate=certificate, chain=chain or ())
    info = signature_info(artifact) or {}
    out.print(
        f"signed {artifact} -> {signature} ({info.get('kind')} {info.get('fingerprint')})", soft_wrap=True
    )


@app.command(epilog="Example: torchship verify runs/digits-cnn/artifact --key keys/public.pem")
def verify(
    artifact: _ART,
    key: Annotated[Path | None, typer.Option("--key", help="PEM public key of the signer.")] = None,
    chain: Annotated[
        list[Path] | None,
        typer.Option("--chain", help="CA certificates (for certificate signatures) instead of --key."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> int:
    """Check ARTIFACT's signature: valid (exit 0), invalid, naming what changed (1), or unsigned (2)."""
    from torchship.artifact.signing import verify as verify_artifact
    from torchship.errors import ConfigError

    if (key is None) == (not chain):
        raise ConfigError(
            "give exactly one of --key PUBLIC.pem or --chain CA.pem", fix="see torchship verify --help"
        )
    verdict = verify_artifact(artifact, key, chain=chain or ())
    if as_json:
        print(
            json.dumps(
                {
                    "status": verdict.status,
                    "detail": verdict.detail,
                    "fingerprint": verdict.fingerprint,
                    "changed": list(verdict.changed),
                }
            )
        )
    else:
        (out if verdict.status == "valid" else err).print(
            f"{verdict.status}: {artifact}: {verdict.detail}", highlight=False, markup=False, soft_wrap=True
        )
    return {"valid": 0, "invalid": 1, "unsigned": 2}[verdict.status]


_ENCRYPT_EXAMPLE = (
    "Example: torchship encrypt runs/digits-cnn/artifact --key-file keys/artifact.key -o runs/sealed"
)


@app.command(epilog=_ENCRYPT_EXAMPLE)
def encrypt(
    artifact: _ART,
    out_dir: Annotated[
        Path, typer.Option("-o", "--out", help="Run directory; the artifact lands in OUT/artifact.")
    ],
    key_file: KeyFile = None,
) -> None:
    """Write an AES-256-GCM encrypted copy of ARTIFACT: weights and exports unreadable without the key."""
    from torchship.artifact import Artifact
    from torchship.artifact.encryption import encrypt_artifact, resolve_key

    use_key_file(key_file)
    key = resolve_key(f"torchship encrypt {artifact}")
    art = Artifact.load(artifact)
    written = encrypt_artifact(art, out_dir / "artifact", key)
    out.print(
        f"encrypted {len(art.manifest.files)} files of {artifact} -> {written} (AES-256-GCM; "
        "manifest.json stays readable; the copy is unsigned: sign it again)",
        soft_wrap=True,
    )
