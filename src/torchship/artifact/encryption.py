"""Encryption at rest: an artifact's files sealed with AES-256-GCM, opened in memory only.

Each file is stored as ``nonce (12 bytes) || ciphertext || tag`` from ``cryptography``'s
``AESGCM``, with a fresh random nonce per file and the file's name as associated data (so
two encrypted files cannot be swapped). ``manifest.json`` stays readable and records which
files are encrypted and the algorithm, never the key; its checksums are those of the
encrypted bytes on disk. Loading decrypts into memory (safetensors from bytes, ONNX Runtime
from bytes, TorchScript and torch.export from a BytesIO): clear weights never touch the disk.

The key (32 bytes: raw, 64 hex digits or base64) comes from, in order: ``TORCHSHIP_KEY_FILE``
(a path; ``--key-file`` on the command line sets it, so child processes see it too),
``TORCHSHIP_KEY`` (the key itself), or ``TORCHSHIP_KEY_COMMAND`` (a command that prints it,
for a secrets manager; run without a shell).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import shlex
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from torchship.errors import ArtifactError, require

if TYPE_CHECKING:
    from torchship.artifact.manifest import Manifest
    from torchship.artifact.store import Artifact

ALGORITHM = "AES-256-GCM"
KEY_ENV, KEY_FILE_ENV, KEY_COMMAND_ENV = "TORCHSHIP_KEY", "TORCHSHIP_KEY_FILE", "TORCHSHIP_KEY_COMMAND"
NONCE_BYTES = 12
CLEAR_SUFFIXES = (".json", ".pbtxt", ".txt")
KEY_COMMAND_TIMEOUT_S = 30
_HOW = f"pass --key-file K, or set {KEY_FILE_ENV}, {KEY_ENV} or {KEY_COMMAND_ENV}"
_cache: dict[tuple[str, str], bytes] = {}


class EncryptionError(ArtifactError):
    """An encrypted artifact cannot be opened: no key, a malformed key, or the wrong key."""


def _aesgcm():
    return require("cryptography.hazmat.primitives.ciphers.aead", "protect").AESGCM


def generate_key() -> bytes:
    """A fresh random 256-bit key (from ``cryptography``)."""
    return _aesgcm().generate_key(bit_length=256)


def parse_key(raw: bytes, where: str) -> bytes:
    """A 32-byte key from raw bytes, 64 hex digits or base64 (surrounding whitespace ignored).

    Raises:
        EncryptionError: If ``raw`` is none of those.
    """
    if len(raw) == 32:
        return raw
    text = raw.strip()
    for decode in (bytes.fromhex, base64.b64decode):
        try:
            key = decode(text.decode("ascii"))
        except (ValueError, UnicodeDecodeError, binascii.Error):
            continue
        if len(key) == 32:
            return key
    raise EncryptionError(
        f"the key from {where} is not 32 bytes (raw, 64 hex digits or base64)",
        fix="make one with: torchship keygen -o keys --encryption-key",
    )


def use_key_file(path: str | os.PathLike[str]) -> None:
    """Use the key in ``path`` for this process and the processes it starts (``--key-file``).

    Raises:
        EncryptionError: If the file cannot be read or holds no valid key.
    """
    file = Path(path)
    try:
        parse_key(file.read_bytes(), str(file))
    except OSError as exc:
        raise EncryptionError(
            f"cannot read key file {file} ({exc.strerror})", fix="check the --key-file path"
        ) from None
    os.environ[KEY_FILE_ENV] = str(file.resolve())


def resolve_key(needed_for: str) -> bytes:
    """The key from the first source set (see the module docstring); cached per source.

    Raises:
        EncryptionError: No source is set, or the one set fails or gives no valid key.
    """
    for env in (KEY_FILE_ENV, KEY_ENV, KEY_COMMAND_ENV):
        value = os.environ.get(env)
        if value:
            break
    else:
        raise EncryptionError(f"{needed_for} needs a key and none was given", fix=_HOW)
    cached = _cache.get((env, value))
    if cached is not None:
        return cached
    if env == KEY_ENV:
        key = parse_key(value.encode(), KEY_ENV)
    elif env == KEY_FILE_ENV:
        try:
            key = parse_key(Path(value).read_bytes(), value)
        except OSError as exc:
            raise EncryptionError(
                f"cannot read key file {value} ({exc.strerror})", fix=f"check {KEY_FILE_ENV}"
            ) from None
    else:
        key = parse_key(_run_key_command(value), KEY_COMMAND_ENV)
    _cache[(env, value)] = key
    return key


def _run_key_command(command: str) -> bytes:
    try:
        done = subprocess.run(
            shlex.split(command), capture_output=True, timeout=KEY_COMMAND_TIMEOUT_S, check=False
        )
    except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
        raise EncryptionError(
            f"{KEY_COMMAND_ENV} {command!r} failed ({exc})", fix="check the command"
        ) from None
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise EncryptionError(
            f"{KEY_COMMAND_ENV} {command!r} exited {done.returncode} {said[0][:200]}", fix="check the command"
        )
    return done.stdout


def worth_sealing(name: str) -> bool:
    """Weights and exports are encrypted; JSON and text metadata (evaluation.json, a Triton
    config.pbtxt) stay readable like the manifest, which already carries the metrics."""
    return not name.endswith(CLEAR_SUFFIXES)


def seal(key: bytes, name: str, data: bytes) -> bytes:
    """Encrypt one file's bytes: fresh nonce, the file name bound as associated data."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + _aesgcm()(key).encrypt(nonce, data, name.encode())


def unseal(key: bytes, name: str, blob: bytes, where: str) -> bytes:
    """Decrypt one file's bytes in memory.

    Raises:
        EncryptionError: The key is wrong (or the file was altered after encryption).
    """
    from cryptography.exceptions import InvalidTag

    try:
        return _aesgcm()(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], name.encode())
    except InvalidTag:
        raise EncryptionError(
            f"cannot decrypt {name} in {where}: wrong key (or the file was altered)",
            fix="give the key the artifact was encrypted with",
        ) from None


class Sealer:
    """Encrypts what an encrypted artifact writes (``Artifact.save``): weights and exports only."""

    def __init__(self, key: bytes):
        self._key = key

    def __call__(self, name: str, data: bytes) -> bytes:
        return seal(self._key, name, data) if worth_sealing(name) else data

    @staticmethod
    def names(files: Iterable[str]) -> list[str]:
        return sorted(name for name in files if worth_sealing(name))


def sealer_for(manifest: Manifest) -> Sealer | None:
    """What ``Artifact.save`` encrypts with when the artifact is encrypted at rest; None when it is not."""
    if manifest.encryption is None:
        return None
    return Sealer(resolve_key(f"encrypted artifact {manifest.name}"))


def is_encrypted(manifest: Manifest, name: str) -> bool:
    return manifest.encryption is not None and name in manifest.encryption.files


def read_file(root: Path, manifest: Manifest, name: str) -> bytes:
    """A listed file's bytes, decrypted in memory when the manifest says it is encrypted."""
    data = (root / name).read_bytes()
    if not is_encrypted(manifest, name):
        return data
    return unseal(resolve_key(f"encrypted artifact {root}"), name, data, str(root))


def encrypt_artifact(artifact: Artifact, out: str | os.PathLike[str], key: bytes) -> Path:
    """Write an encrypted copy of a saved artifact to ``out`` (weights and exports; see ``worth_sealing``).

    The copy is unsigned (sign it again); its manifest lists the encrypted files. Returns
    the directory written.

    Raises:
        EncryptionError: The artifact is already encrypted, or ``out`` is the artifact itself.
    """
    from torchship.artifact.manifest import Manifest
    from torchship.artifact.store import MANIFEST, sha256_file

    if artifact.path is None:
        raise EncryptionError("the artifact has not been saved", fix="save it first")
    if artifact.manifest.encryption is not None:
        raise EncryptionError(f"{artifact.path} is already encrypted", fix="encrypt the clear artifact")
    root = Path(out)
    if root.resolve() == artifact.path.resolve():
        raise EncryptionError("refusing to encrypt an artifact over itself", fix="pass another -o directory")
    root.mkdir(parents=True, exist_ok=True)
    files = {}
    for name in artifact.manifest.files:
        dst = root / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        data = (artifact.path / name).read_bytes()
        dst.write_bytes(seal(key, name, data) if worth_sealing(name) else data)
        files[name] = sha256_file(dst)
    sealed = sorted(name for name in files if worth_sealing(name))
    encryption = {"algorithm": ALGORITHM, "files": sealed}
    data = artifact.manifest.to_json_dict() | {"files": files, "encryption": encryption}
    manifest = Manifest.model_validate(data)
    (root / MANIFEST).write_text(json.dumps(manifest.to_json_dict(), indent=2) + "\n")
    return root
