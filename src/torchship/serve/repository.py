"""The model repository: PATH is one artifact, or ``REPO/<model>/<version>/`` of artifacts.

Loads, reloads and unloads models while the server runs. Names from URLs are checked
against a strict pattern and every resolved path must stay inside the repository root,
so no request can make the server read a file elsewhere. The default version of a model
is its highest loaded one. A reload swaps in the new versions, then lets the old ones
finish their accepted requests before closing them. An entry that cannot load (no version
directory, a link leading outside the repository, an artifact that fails to load) is
``UNAVAILABLE`` with the reason, and requests for it answer 503 with that reason.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torchship.artifact import MANIFEST, Artifact
from torchship.artifact.store import resolve_artifact_dir
from torchship.errors import ArtifactError, ConfigError
from torchship.monitor.live import MonitorHub
from torchship.serve.config import ServeConfig
from torchship.serve.metrics import ServeMetrics
from torchship.serve.model import ServedModel
from torchship.serve.v2 import ServeError

log = logging.getLogger("torchship.serve")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass
class ModelState:
    """A repository entry's state as the index reports it (READY, LOADING, UNAVAILABLE)."""

    state: str
    reason: str = ""
    failed: bool = False  # UNAVAILABLE because loading failed (not because it was unloaded)


class Repository:
    """Every model the server knows, their versions and their states."""

    def __init__(self, path: str | Path, config: ServeConfig, metrics: ServeMetrics):
        self.root = resolve_artifact_dir(path).resolve()  # an artifact, a run directory, or a repository
        if not self.root.is_dir():
            raise ConfigError(
                f"model repository {path} is not a directory", fix="pass an artifact or a repository"
            )
        self.single = (self.root / MANIFEST).is_file()
        self.config = config
        self.metrics = metrics
        self.monitoring = MonitorHub(config.monitor)
        self.models: dict[str, dict[str, ServedModel]] = {}
        self.states: dict[str, ModelState] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.startup: set[str] = set()  # the models readiness waits for (those loaded at start, not unloaded)
        if self.single:
            self._single_name = _manifest_name(self.root)
        elif not any((v / MANIFEST).is_file() for name in self.names() for v in self._entry(name).iterdir()):
            raise ConfigError(
                f"{path} holds no model: no {MANIFEST} in it, nor in any <model>/<version>/",
                fix="pass an artifact, or a repository REPO/<model>/<version>/ of them",
            )

    # ------------------------------------------------------------------ disk
    def names(self) -> list[str]:
        """Model names found on disk."""
        if self.single:
            return [self._single_name]
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and _NAME.match(p.name))

    def _entry(self, name: str) -> Path:
        """The directory of a model on disk, not yet resolved; 400 for a bad name, 404 for an unknown one."""
        if not _NAME.match(name) or name in (".", ".."):
            raise ServeError(f"{name!r} is not a valid model name", status=400)
        if self.single:
            if name != self._single_name:
                raise ServeError(
                    f"unknown model {name!r}", fix=f"this server has {self._single_name!r}", status=404
                )
            return self.root
        if not (self.root / name).is_dir():
            raise ServeError(
                f"unknown model {name!r}", fix=f"choose one of: {', '.join(self.names())}", status=404
            )
        return self.root / name

    def _versions_on_disk(self, name: str) -> dict[str, Path]:
        path = self._entry(name).resolve()
        if self.single:
            return {str(_manifest_version(path)): path}
        if not path.is_relative_to(self.root):
            raise ServeError(
                f"model directory {name!r} is a link to a place outside the repository",
                fix="copy the model into the repository instead of linking to it",
            )
        versions = {}
        for sub in path.iterdir():
            target = sub.resolve()
            if (
                sub.name.isdigit()
                and int(sub.name) > 0
                and target.is_relative_to(self.root)
                and target.is_dir()
            ):
                versions[str(int(sub.name))] = target
        if not versions:
            raise ServeError(
                f"model {name!r} has no version directories",
                status=404,
                fix=f"put artifacts in {path}/<version>/ (1, 2, ...)",
            )
        return versions

    # ------------------------------------------------------------------ lookup
    def get(self, name: str, version: str | None = None) -> ServedModel:
        """The loaded model version (highest when ``version`` is None) or a 404/503 ServeError."""
        versions = self.models.get(name)
        if versions is None:
            state = self.states.get(name)
            if state is not None and state.state == "LOADING":
                raise ServeError(
                    f"model {name!r} is loading",
                    fix="retry shortly",
                    status=503,
                    headers={"retry-after": "1"},
                )
            if state is not None and state.failed:
                raise ServeError(
                    f"model {name!r} is unavailable: {state.reason}",
                    status=503,
                    fix=f"fix it, then load it with POST /v2/repository/models/{name}/load",
                )
            if state is None and name not in self.names():
                raise ServeError(
                    f"unknown model {name!r}",
                    status=404,
                    fix=f"choose one of: {', '.join(self.names()) or '(none)'}",
                )
            reason = f" ({state.reason})" if state and state.reason else ""
            raise ServeError(
                f"model {name!r} is not loaded{reason}",
                status=404,
                fix=f"load it with POST /v2/repository/models/{name}/load",
            )
        if version is None:
            return versions[max(versions, key=int)]
        model = versions.get(version)
        if model is None:
            raise ServeError(
                f"model {name!r} has no loaded version {version!r}",
                status=404,
                fix=f"loaded versions: {', '.join(sorted(versions, key=int))}",
            )
        return model

    def index(self, ready_only: bool = False) -> list[dict[str, Any]]:
        """Triton's repository index: name, version, state, reason for every model on disk."""
        entries = []
        for name in sorted(set(self.names()) | set(self.models)):
            loaded = self.models.get(name, {})
            for version in sorted(loaded, key=int):
                entries.append({"name": name, "version": version, "state": "READY", "reason": ""})
            if not loaded and not ready_only:
                state = self.states.get(name, ModelState("UNAVAILABLE", "unloaded"))
                entries.append({"name": name, "state": state.state, "reason": state.reason})
        return entries

    def unavailable_startup_models(self) -> list[str]:
        """``"name: STATE (reason)"`` for every startup model that is not serving (strict readiness)."""
        problems = []
        for name in sorted(self.startup):
            if name not in self.models:
                state = self.states.get(name, ModelState("LOADING"))
                why = f" ({state.reason})" if state.reason else ""
                problems.append(f"model {name!r} is {state.state}{why}")
        return problems

    # ------------------------------------------------------------------ load / unload
    async def load_startup(self) -> None:
        names = [n for n in self.names() if self.config.settings_for(n).load == "startup"]
        self.startup = set(names)
        for name in names:
            self.states[name] = ModelState("LOADING")
        for name in names:
            try:
                await self.load(name)
            except ServeError as exc:
                log.error("model %s failed to load at startup: %s", name, exc)

    async def load(self, name: str) -> None:
        """Load (or reload) every version of ``name`` found on disk; in-flight requests finish first."""
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            self._entry(name)  # a bad or unknown name changes no state
            if name not in self.models:
                self.states[name] = ModelState("LOADING")
            loop = asyncio.get_running_loop()
            try:
                versions = self._versions_on_disk(name)
                fresh = {
                    v: await asyncio.to_thread(self._load_version, name, v, p, loop)
                    for v, p in versions.items()
                }
            except Exception as exc:  # noqa: BLE001 - whatever failed, the entry says why instead of LOADING
                self.metrics.load_failures.labels(name).inc()
                reason = " ".join(str(exc).split())
                self.states[name] = (
                    ModelState("READY", f"reload failed, old versions still serve: {reason}")
                    if name in self.models
                    else ModelState("UNAVAILABLE", reason, failed=True)
                )
                raise ServeError(f"model {name!r} failed to load: {reason}", status=400) from None
            old = self.models.get(name, {})
            self.models[name] = fresh
            self.states[name] = ModelState("READY")
        await asyncio.gather(*(m.close() for m in old.values()))
        settle_heap()

    def _load_version(
        self, name: str, version: str, path: Path, loop: asyncio.AbstractEventLoop
    ) -> ServedModel:
        t0 = time.monotonic()
        settings = self.config.settings_for(name)
        if settings.require_signature:
            _check_signature(name, version, path, settings.require_signature)
        artifact = Artifact.load(path)
        model = ServedModel(name, version, artifact, settings, self.metrics, loop, self.monitoring)
        load_s = model.load_s = time.monotonic() - t0
        self.metrics.load_s.labels(name, version).set(load_s)
        log.info("loaded model %s version %s in %.2f s", name, version, load_s)
        return model

    async def unload(self, name: str) -> None:
        """Stop routing to ``name``, let its accepted requests finish, then free it."""
        self._entry(name)  # 400/404 for names that are invalid or not on disk
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            self.startup.discard(name)  # unloaded on purpose: readiness no longer waits for it
            old = self.models.pop(name, {})
            self.states[name] = ModelState("UNAVAILABLE", "unloaded")
        await asyncio.gather(*(m.close() for m in old.values()))
        settle_heap()

    async def close(self) -> None:
        for name in list(self.models):
            await self.unload(name)
        await asyncio.to_thread(self.monitoring.close)


def settle_heap() -> None:
    """Put every object alive now (torch, onnxruntime, the loaded models) out of the collector's way.

    A full (generation 2) collection walks every tracked object, and with torch and a runtime
    loaded that is hundreds of thousands: measured under load (cnn, JSON, concurrency 32) the
    four gen-2 collections of a 10 s run paused the event loop 12-117 ms each, which was the
    p99 tail. ``gc.freeze`` moves them to a permanent generation no collection walks; they are
    still freed by reference counting, and cycles among them wait for the next load or unload,
    which unfreezes, collects and freezes again.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _check_signature(name: str, version: str, path: Path, public_key: str) -> None:
    """Refuse (SignatureError, logged) an artifact that is unsigned or fails verification."""
    from torchship.artifact.signing import require_signature

    try:
        require_signature(path, public_key)
    except ArtifactError as exc:
        log.error("model %s version %s refused: %s", name, version, exc)
        raise


def _manifest_name(root: Path) -> str:
    name = _read_manifest(root).get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ArtifactError(
            f"{root / MANIFEST} has no usable 'name' to serve under", fix="re-create the artifact"
        )
    return name


def _manifest_version(root: Path) -> int:
    version = _read_manifest(root).get("version", 1)
    return version if isinstance(version, int) and version > 0 else 1


def _read_manifest(root: Path) -> dict[str, Any]:
    try:
        raw = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"cannot read {root / MANIFEST} ({exc})", fix="re-create the artifact") from None
    return raw if isinstance(raw, dict) else {}
