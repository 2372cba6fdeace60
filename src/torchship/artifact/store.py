"""Save, load and verify artifacts: a directory of manifest.json + safetensors weights.

Loading checks the schema and the sha256 of every file the manifest lists, and never
unpickles anything: weights are safetensors, everything else is JSON.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from torchship.artifact.manifest import (
    Architecture,
    InputSpec,
    Manifest,
    Reference,
    Signature,
    parse_manifest,
    signature_from_input,
)
from torchship.errors import ArtifactError

MANIFEST = "manifest.json"
WEIGHTS = "weights.safetensors"


def sha256_file(path: Path, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_bytes):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


def library_versions() -> dict[str, str]:
    import torchship

    versions = {"torchship": torchship.__version__, "torch": torch.__version__, "python": platform.python_version()}
    for name in ("numpy", "onnx", "onnxruntime"):
        module = __import__("sys").modules.get(name)
        if module is not None:
            versions[name] = getattr(module, "__version__", "?")
    return versions


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class Artifact:
    """A model plus everything needed to feed, rebuild and trust it.

    Example:
        >>> from torchship.testing import tiny_artifact
        >>> art = tiny_artifact()
        >>> art.manifest.architecture.name
        'mlp'
    """

    def __init__(self, manifest: Manifest, state: dict[str, torch.Tensor], path: Path | None = None):
        self.manifest = manifest
        self._state = state
        self.path = path
        # files made in memory (an imported program) that ``save`` writes beside the weights
        self.pending_files: dict[str, Path | bytes] = {}

    # ---------------------------------------------------------------- creating
    @classmethod
    def create(
        cls,
        *,
        name: str,
        model: nn.Module | None,
        architecture: Architecture | dict[str, Any] | None,
        input: InputSpec | dict[str, Any] | None = None,  # noqa: A002 - the schema-1 key
        labels: list[str] | None = None,
        signature: Signature | dict[str, Any] | None = None,
        op: str = "train",
        params: dict[str, Any] | None = None,
        metrics: dict[str, dict[str, float]] | None = None,
        reference: Reference | dict[str, Any] | None = None,
        **extra: Any,
    ) -> Artifact:
        """Make an in-memory artifact from a model; ``save`` writes it.

        The model is described by ``signature``, or (the schema-1 way, for a one-input
        classifier) by ``input`` and ``labels``.
        """
        if (signature is None) == (input is None):
            raise ValueError("Artifact.create needs exactly one of signature= or input=")
        if signature is None:
            signature = signature_from_input(input, len(labels or []))  # type: ignore[arg-type]
        if isinstance(architecture, Architecture):
            architecture = architecture.model_dump(by_alias=True, exclude_none=True)
        manifest = Manifest.model_validate(
            {
                "name": name,
                "created": _now(),
                "architecture": architecture,
                "signature": signature if isinstance(signature, dict)
                else signature.model_dump(exclude_none=True),
                "labels": labels or [],
                "metrics": metrics or {},
                "lineage": {"parent": None, "op": op, "params": params or {}},
                "reference": reference if not isinstance(reference, Reference) else reference.model_dump(),
                "env": library_versions(),
                **extra,
            }
        )
        return cls(manifest, _state_of(model) if model is not None else {})

    def derive(
        self,
        *,
        op: str,
        params: dict[str, Any] | None = None,
        model: nn.Module | None = None,
        **updates: Any,
    ) -> Artifact:
        """A child artifact whose lineage names this one as parent; unchanged fields carry over."""
        data = self.manifest.to_json_dict()
        data.update(
            {
                "version": self.manifest.version + 1,
                "created": _now(),
                "lineage": {"parent": self.digest, "op": op, "params": params or {}},
                "files": {},
                "exports": {},
                "env": library_versions(),
            }
        )
        for key, value in updates.items():
            data[key] = value.model_dump(mode="json", by_alias=True) if hasattr(value, "model_dump") else value
        state = _state_of(model) if model is not None else dict(self._state)
        return Artifact(Manifest.model_validate(data), state)

    def with_manifest(self, **updates: Any) -> Artifact:
        """The same weights with some manifest fields replaced (checksums are redone on save)."""
        data = self.manifest.to_json_dict()
        data.update(updates)
        return Artifact(Manifest.model_validate(data), self._state, self.path)

    # ---------------------------------------------------------------- reading
    @property
    def digest(self) -> str:
        """sha256 of the canonical manifest: names this exact artifact in a child's lineage."""
        canonical = json.dumps(self.manifest.to_json_dict(), sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self._state)

    def build_model(self, allow_import: Iterable[str] = ()) -> nn.Module:
        """Rebuild the model from the manifest and load the weights; eval mode, on CPU."""
        from torchship.models import build_model

        if self.manifest.architecture is None:
            raise ArtifactError(
                f"{self.manifest.name} was imported as a program only "
                f"({', '.join(self.manifest.exports) or 'no exports'}); "
                "it has no PyTorch module to rebuild, so this stage cannot run on it",
                fix="import it from its weights with --class pkg.mod:Class to train, prune or distill it",
            )
        model = build_model(self.manifest.architecture, allow_import=allow_import)
        missing, unexpected = model.load_state_dict(self._state, strict=False)
        if missing or unexpected:
            raise ArtifactError(
                f"weights do not fit architecture {self.manifest.architecture.describe()} "
                f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})",
                fix="the manifest and weights.safetensors come from different models; re-create the artifact",
            )
        return model.eval()

    def file(self, name: str) -> Path:
        """Path to a file of a saved artifact, which must be listed (and so checksummed)."""
        if self.path is None or name not in self.manifest.files:
            raise ArtifactError(f"artifact has no file {name!r}", fix="export it first (torchship export)")
        return self.path / name

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Artifact:
        """Read an artifact directory, verifying schema and every file's sha256."""
        root = Path(path)
        if root.is_file() and root.name == MANIFEST:
            root = root.parent
        manifest_path = root / MANIFEST
        if not root.exists():
            raise ArtifactError(f"artifact {root} does not exist", fix="check the path")
        if not manifest_path.is_file():
            raise ArtifactError(f"{root} has no {MANIFEST}", fix="point at an artifact directory written by torchship")
        try:
            raw = json.loads(manifest_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ArtifactError(f"{manifest_path} is not valid JSON ({exc})", fix="re-create the artifact") from None
        manifest = parse_manifest(raw, str(manifest_path))
        if WEIGHTS not in manifest.files:
            raise ArtifactError(f"{manifest_path} lists no {WEIGHTS}", fix="re-create the artifact")
        for name, want in manifest.files.items():
            file_path = _inside(root, name)
            if not file_path.is_file():
                raise ArtifactError(f"{name} is missing from {root}", fix="copy the whole artifact directory")
            got = sha256_file(file_path)
            if got != want:
                raise ArtifactError(
                    f"{name} checksum mismatch in {root} (expected {want[7:19]}, got {got[7:19]})",
                    fix="the file was modified or truncated; re-run the stage that produced it",
                )
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(root / WEIGHTS))
        except SafetensorError as exc:
            raise ArtifactError(f"{root / WEIGHTS} is not a valid safetensors file ({exc})") from None
        return cls(manifest, state, root)

    # ---------------------------------------------------------------- writing
    def save(self, path: str | os.PathLike[str], extra_files: dict[str, Path | bytes] | None = None) -> Artifact:
        """Write weights, extra files and the manifest (last) with fresh checksums.

        Files already listed in the manifest are carried over from the artifact's old
        directory when saving elsewhere. Returns the saved artifact (with ``path`` set).
        """
        from safetensors.torch import save_file

        root = Path(path)
        root.mkdir(parents=True, exist_ok=True)
        extra_files = {**self.pending_files, **(extra_files or {})}
        files: dict[str, str] = {}
        weights_tmp = root / (WEIGHTS + ".tmp")
        save_file(self._state, str(weights_tmp), metadata={"format": "pt"})
        os.replace(weights_tmp, root / WEIGHTS)
        files[WEIGHTS] = sha256_file(root / WEIGHTS)
        for name in self.manifest.files:
            if name == WEIGHTS or name in (extra_files or {}):
                continue
            src = _inside(self.path, name) if self.path is not None else None
            dst = _inside(root, name)
            if src is not None and src.resolve() != dst.resolve():
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)
            if dst.is_file():
                files[name] = sha256_file(dst)
        for name, content in (extra_files or {}).items():
            dst = _inside(root, name)
            dst.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                dst.write_bytes(content)
            elif Path(content).resolve() != dst.resolve():
                shutil.copyfile(content, dst)
            files[name] = sha256_file(dst)
        manifest = self.manifest.model_copy(update={"files": files})
        tmp = root / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(manifest.to_json_dict(), indent=2) + "\n")
        os.replace(tmp, root / MANIFEST)
        return Artifact(manifest, self._state, root)


def _inside(root: Path, name: str) -> Path:
    """Resolve a manifest file name, refusing anything that escapes the artifact directory."""
    candidate = (root / name).resolve()
    if root.resolve() not in candidate.parents:
        raise ArtifactError(f"manifest names a file outside the artifact: {name!r}", fix="the manifest was tampered with")
    return candidate


def _state_of(model: nn.Module) -> dict[str, torch.Tensor]:
    # clone: safetensors refuses tensors that share storage (tied weights, views)
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}


def load(path: str | os.PathLike[str]) -> Artifact:
    """Load and verify an artifact directory (see :meth:`Artifact.load`)."""
    return Artifact.load(path)
