"""The serve config: server limits plus per-model runtime and batching settings (YAML, extra=forbid).

```yaml
# serve.yaml
max_body_bytes: 16777216      # the limits are listed, with their defaults, in docs/security.md
max_json_bytes: 1048576
strict_readiness: true
default:                      # every model, unless overridden below
  runtime: auto               # fastest measured at load; int8 artifacts run their int8 program
  max_batch_size: 32
  max_queue_delay_ms: 2
models:
  digits: {runtime: onnxruntime, instances: 2, threads: 1}
  big-resnet: {load: on_demand}
  signed-only: {require_signature: keys/public.pem}   # refuse unsigned or tampered artifacts
monitor:                      # drift monitoring and request logging (torchship.monitor.config)
  thresholds: {input_psi: 0.2}
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from torchship.config import Frozen
from torchship.errors import ConfigError
from torchship.monitor.config import MonitorConfig
from torchship.serve.batcher import BatchPolicy


class ModelSettings(Frozen):
    """How one model is run and batched."""

    # auto: the fastest runtime measured at load that runs the artifact as it is (its int8 program
    # for an int8 artifact; no Python class when a .pt2/ONNX/TorchScript program is there)
    runtime: str = "auto"
    allow_import: list[str] = Field(
        default_factory=list, description="bring-your-own classes trusted (pkg.mod:Class)"
    )
    threads: int | None = Field(default=None, ge=1, description="intra-op threads per instance")
    instances: int = Field(default=1, ge=1, le=16)
    max_batch_size: int = Field(default=32, ge=1)
    max_queue_delay_ms: float = Field(default=2.0, ge=0)
    preferred_batch_sizes: list[int] = Field(default_factory=list)
    queue_limit: int = Field(default=256, ge=1)
    timeout_ms: float = Field(default=30_000, gt=0, description="server default per-request timeout")
    load: Literal["startup", "on_demand"] = "startup"
    warmup: int = Field(default=3, ge=0)
    require_signature: str | None = Field(
        default=None, description="public key (PEM): load only artifacts whose model.sig verifies against it"
    )

    def policy(self) -> BatchPolicy:
        return BatchPolicy(
            max_batch_size=self.max_batch_size,
            max_queue_delay_ms=self.max_queue_delay_ms,
            preferred_batch_sizes=tuple(self.preferred_batch_sizes),
            queue_limit=self.queue_limit,
        )


class ServeConfig(Frozen):
    """Server-wide limits, the default model settings and per-model overrides."""

    # request limits (docs/security.md lists them with their defaults)
    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    max_json_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        description="a JSON body, or the JSON "
        "header of a binary-tensor request; parsing it holds the event loop",
    )
    max_header_bytes: int = Field(default=16 * 1024, ge=1024, description="request line + headers; 431 above")
    max_image_pixels: int = Field(default=4096 * 4096, ge=1, description="width x height of an image")
    header_timeout_s: float = Field(default=10.0, gt=0, description="time to send the request head")
    body_timeout_s: float = Field(default=60.0, gt=0, description="time to send the whole body; 408 after")
    keep_alive_timeout_s: float = Field(default=30.0, gt=0, description="idle time between requests")
    max_connections: int | None = Field(
        default=None,
        ge=1,
        description="open HTTP connections per worker; at the limit the server stops accepting: "
        "further connections wait in the kernel's short listen queue or go unanswered until a place "
        "is free, so an overloaded server spends nothing on them; None: no limit (full queues "
        "refuse with 503)",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="addresses (or CIDR networks) of reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto give the client's address and scheme (access log); empty: those headers "
        "are ignored and cost nothing",
    )
    strict_readiness: bool = Field(default=True, description="ready only when every startup model is READY")
    access_log: bool = True
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    default: ModelSettings = Field(default_factory=ModelSettings)
    models: dict[str, ModelSettings] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _merge_defaults(cls, raw: Any) -> Any:
        # each model entry overrides only the keys it names; the rest come from `default`
        if not isinstance(raw, dict) or not isinstance(raw.get("models"), dict):
            return raw
        default = raw.get("default") or {}
        if isinstance(default, ModelSettings):
            default = default.model_dump()
        models = {}
        for name, entry in raw["models"].items():
            entry = entry.model_dump(exclude_unset=True) if isinstance(entry, ModelSettings) else entry
            models[name] = {**default, **(entry or {})} if isinstance(entry, (dict, type(None))) else entry
        return {**raw, "models": models}

    def settings_for(self, model: str) -> ModelSettings:
        return self.models.get(model, self.default)

    def with_defaults(self, **updates: Any) -> ServeConfig:
        """Apply command-line settings (those not None) to ``default`` and to every model entry."""
        updates = {k: v for k, v in updates.items() if v is not None}
        if not updates:
            return self
        try:
            return ServeConfig.model_validate(
                {
                    **self.model_dump(exclude={"default", "models"}),
                    "default": {**self.default.model_dump(), **updates},
                    "models": {name: {**s.model_dump(), **updates} for name, s in self.models.items()},
                }
            )
        except ValidationError as exc:
            # every model entry repeats the same complaint: name each option once, as typed
            problems = {
                f"--{str(e['loc'][-1]).replace('_', '-')} {e['input']}: {e['msg']}": None
                for e in exc.errors()
            }
            raise ConfigError(
                f"invalid option {'; '.join(problems)}", fix="see 'torchship serve --help'"
            ) from None


def load_serve_config(path: str | Path | None) -> ServeConfig:
    """Read and validate a serve YAML file (every problem reported at once); None gives defaults.

    Raises:
        ConfigError: The file is missing, not YAML, or has unknown or invalid keys.
    """
    if path is None:
        return ServeConfig()
    import yaml

    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"serve config {file} does not exist", fix="check the --config path")
    try:
        raw = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"{file} is not valid YAML ({' '.join(str(exc).split())})", fix="fix the syntax"
        ) from None
    try:
        return ServeConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"{file} is invalid: {problems}", fix="see docs/serve.md for the keys") from None
