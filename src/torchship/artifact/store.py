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

from torchship.artifact.encryption import is_encrypted, read_file, sealer_for
from torchship.artifact.manifest import (
    Architecture,
    InputSpec,
    Manifest,
    Reference,
    Signature,
    parse_manifest,
    signature_from_input,
)
from torchship.errors import ArtifactError, ModelError
from torchship.output import atomic_path, make_dirs, write_atomic

MANIFEST = "manifest.json"
WEIGHTS = "weights.safetensors"
SIGNATURE = "model.sig"  # OpenSSF model-signing bundle over every other file (artifact/signing.py)
RUN_ARTIFACT = "artifact"  # every command's -o OUT is a run directory; its artifact is OUT/artifact


def resolve_artifact_dir(path: str | os.PathLike[str]) -> Path:
    """The artifact directory that PATH names: itself, its manifest's folder, or RUN/artifact."""
    root = Path(path)
    if root.is_file() and root.name == MANIFEST:
        return root.parent
    if not (root / MANIFEST).exists() and (root / RUN_ARTIFACT / MANIFEST).is_file():
        return root / RUN_ARTIFACT
    return root


def sha256_file(path: Path, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_bytes):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


def library_versions() -> dict[str, str]:
    import torchship

    versions = {
        "torchship": torchship.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
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
                "signature": signature
                if isinstance(signature, dict)
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
                "lineage": {
                    "parent": self.digest,
                    "parent_signature": self._signature_digest(),
                    "op": op,
                    "params": params or {},
                },
                "files": {},
                "exports": {},
                "env": library_versions(),
            }
        )
        for key, value in updates.items():
            data[key] = (
                value.model_dump(mode="json", by_alias=True) if hasattr(value, "model_dump") else value
            )
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

    def _signature_digest(self) -> str | None:
        signature = self.path / SIGNATURE if self.path is not None else None
        return sha256_file(signature) if signature is not None and signature.is_file() else None

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self._state)

    def build_model(self, allow_import: Iterable[str] = ()) -> nn.Module:
        """Rebuild the model from the manifest and load the weights; eval mode, on CPU.

        Raises:
            ArtifactError: The weights or the input shape do not fit the architecture.
        """
        from torchship.models import build_model

        arch = self.manifest.architecture
        if arch is None:
            raise ArtifactError(
                f"{self.manifest.name} was imported as a program only "
                f"({', '.join(self.manifest.exports) or 'no exports'}); "
                "it has no PyTorch module to rebuild, so this stage cannot run on it",
                fix="import it from its weights with --class pkg.mod:Class to train, prune or distill it",
            )
        if arch.name is not None:
            # a zoo model is first built on the meta device: kwargs out of range cannot allocate
            # memory, and the weights must fit before anything real is built
            try:
                with torch.device("meta"):
                    skeleton = build_model(arch)
            except ModelError as exc:
                raise ArtifactError(
                    f"{exc.what} (manifest architecture)", fix="re-create the artifact"
                ) from None
            _check_weights_fit(skeleton.state_dict(), self._state, arch.describe())
        model = build_model(arch, allow_import=allow_import)
        _check_weights_fit(model.state_dict(), self._state, arch.describe())
        model.load_state_dict(self._state)
        model.eval()
        if arch.name is not None:  # a zoo model: one sample of the manifest's input must go through
            _check_input_fits(model, self.manifest.input)
        return model

    def file(self, name: str) -> Path:
        """Path to a file of a saved artifact, which must be listed (and so checksummed)."""
        if self.path is None or name not in self.manifest.files:
            raise ArtifactError(f"artifact has no file {name!r}", fix="export it first (torchship export)")
        return self.path / name

    def read_bytes(self, name: str) -> bytes:
        """A listed file's bytes, decrypted in memory when the artifact is encrypted at rest."""
        return read_file(self.file(name).parent, self.manifest, name)

    def is_encrypted(self, name: str) -> bool:
        return is_encrypted(self.manifest, name)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Artifact:
        """Read an artifact directory (or a run directory holding ``artifact/``), verifying every sha256."""
        root = resolve_artifact_dir(path)
        manifest_path = root / MANIFEST
        if not root.exists():
            raise ArtifactError(f"artifact {root} does not exist", fix="check the path")
        if not manifest_path.is_file():
            raise ArtifactError(
                f"{root} has no {MANIFEST}",
                fix=f"point at an artifact directory, or a run directory holding {RUN_ARTIFACT}/",
            )
        try:
            raw = json.loads(manifest_path.read_text())
        # RecursionError: nested deeper than the decoder's stack (a hostile manifest)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise ArtifactError(
                f"{manifest_path} is not valid JSON ({exc})", fix="re-create the artifact"
            ) from None
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
        from safetensors.torch import load, load_file

        try:
            if is_encrypted(manifest, WEIGHTS):
                state = load(read_file(root, manifest, WEIGHTS))  # decrypted in memory only
            else:
                state = load_file(str(root / WEIGHTS))
        except SafetensorError as exc:
            raise ArtifactError(f"{root / WEIGHTS} is not a valid safetensors file ({exc})") from None
        return cls(manifest, state, root)

    # ---------------------------------------------------------------- writing
    def save(
        self, path: str | os.PathLike[str], extra_files: dict[str, Path | bytes] | None = None
    ) -> Artifact:
        """Write weights, extra files and the manifest (last) with fresh checksums.

        Files already listed in the manifest are carried over from the artifact's old
        directory when saving elsewhere. Returns the saved artifact (with ``path`` set).
        """
        from safetensors.torch import save, save_file

        root = make_dirs(path)
        (root / SIGNATURE).unlink(missing_ok=True)  # what changes here is unsigned until signed again
        seal = sealer_for(self.manifest)  # None unless encrypted; carried-over files stay as they are
        extra_files = {**self.pending_files, **(extra_files or {})}
        files: dict[str, str] = {}
        with atomic_path(root / WEIGHTS) as weights_tmp:
            if seal is None:
                save_file(self._state, str(weights_tmp), metadata={"format": "pt"})
            else:
                weights_tmp.write_bytes(seal(WEIGHTS, save(self._state, metadata={"format": "pt"})))
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
            if seal is not None:
                data = content if isinstance(content, bytes) else Path(content).read_bytes()
                dst.write_bytes(seal(name, data))
            elif isinstance(content, bytes):
                dst.write_bytes(content)
            elif Path(content).resolve() != dst.resolve():
                shutil.copyfile(content, dst)
            files[name] = sha256_file(dst)
        update: dict[str, Any] = {"files": files}
        if seal is not None:
            update["encryption"] = self.manifest.encryption.model_copy(update={"files": seal.names(files)})
        manifest = self.manifest.model_copy(update=update)
        write_atomic(root / MANIFEST, json.dumps(manifest.to_json_dict(), indent=2) + "\n")
        return Artifact(manifest, self._state, root)


def _inside(root: Path, name: str) -> Path:
    """Resolve a manifest file name, refusing anything that escapes the artifact directory."""
    candidate = (root / name).resolve()
    if root.resolve() not in candidate.parents:
        raise ArtifactError(
            f"manifest names a file outside the artifact: {name!r}", fix="the manifest was tampered with"
        )
    return candidate


_MISFIT_FIX = "the manifest and weights.safetensors come from different models; re-create the artifact"


def _check_weights_fit(want: dict[str, torch.Tensor], got: dict[str, torch.Tensor], arch: str) -> None:
    """Refuse weights whose names, shapes or kind of dtype (float vs integer) differ from the model's."""
    missing, unexpected = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    if missing or unexpected:
        raise ArtifactError(
            f"weights do not fit architecture {arch} (missing {missing[:3]}, unexpected {unexpected[:3]})",
            fix=_MISFIT_FIX,
        )
    for name, tensor in want.items():
        if got[name].shape != tensor.shape:
            raise ArtifactError(
                f"weights do not fit architecture {arch}: {name} is {list(got[name].shape)} in {WEIGHTS}, "
                f"the architecture needs {list(tensor.shape)}",
                fix=_MISFIT_FIX,
            )
        if got[name].dtype.is_floating_point != tensor.dtype.is_floating_point:
            raise ArtifactError(
                f"weights do not fit architecture {arch}: {name} is {got[name].dtype} in {WEIGHTS}, "
                f"the architecture needs {tensor.dtype}",
                fix=_MISFIT_FIX,
            )


@torch.inference_mode()
def _check_input_fits(model: nn.Module, spec: InputSpec) -> None:
    """Run one zero sample of the manifest's input shape, so a misfit shows at load, in one line."""
    try:
        # x: (1, *input.shape)
        model(torch.zeros(1, *spec.shape, dtype=getattr(torch, spec.dtype, torch.float32)))
    except (RuntimeError, ValueError, IndexError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ArtifactError(
            f"the model rejects its manifest's input shape {list(spec.shape)} ({first})",
            fix="input.shape in manifest.json does not match the model; re-create the artifact",
        ) from None


def _state_of(model: nn.Module) -> dict[str, torch.Tensor]:
    # clone: safetensors refuses tensors that share storage (tied weights, views)
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}


def load(path: str | os.PathLike[str]) -> Artifact:
    """Load and verify an artifact directory (see :meth:`Artifact.load`)."""
    return Artifact.load(path)
