"""Configs: YAML file + ``--set a.b=c`` overrides -> a typed pydantic model.

Every problem is collected and reported at once in one ``ConfigError`` line, e.g.
``config runs.yaml has 2 problems: optim.lr: Input should be greater than 0 (got -1);
train.epoch: unknown key (did you mean 'epochs'?)``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from torchship.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    """The one base of every config and manifest model: typed, and an unknown key is an error.

    Subclasses add to ``model_config`` (pydantic merges it).
    """

    model_config = ConfigDict(extra="forbid")


class Frozen(Strict):
    """A :class:`Strict` record that cannot change once validated (manifests, served settings)."""

    model_config = ConfigDict(frozen=True)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing or malformed file is a one-line ConfigError."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(
            f"config file {file} does not exist", fix="check the path (example configs are in configs/)"
        )
    try:
        data = yaml.safe_load(file.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"config file {file} is not valid YAML{where}", fix="fix the syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {file} must hold a mapping (key: value), not {type(data).__name__}")
    return data


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``a.b=value`` overrides (values parsed as YAML: 1e-3, true, [1, 2]) to a copy of ``data``."""
    result = _deep_copy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"override {item!r} is not of the form key.path=value", fix="e.g. --set optim.lr=0.01"
            )
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        if isinstance(value, str):
            value = _number_or_text(value)
        node = result
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = value
    return result


def _number_or_text(text: str) -> Any:
    """YAML 1.1 reads ``1e-3`` as a string; users mean a number."""
    try:
        return float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError:
        return text


def validate_config(model: type[M], data: dict[str, Any], where: str = "config") -> M:
    """Validate ``data`` against ``model``, reporting every problem in one line."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [_describe(err, model) for err in exc.errors()]
    raise_problems(where, problems)
    raise AssertionError("unreachable: a ValidationError always has problems")


def config_problems(model: type[BaseModel], data: dict[str, Any]) -> list[str]:
    """Every problem ``data`` has against ``model``, one line each (empty when it is valid)."""
    try:
        model.model_validate(data)
    except ValidationError as exc:
        return [_describe(err, model) for err in exc.errors()]
    return []


def raise_problems(where: str, problems: list[str]) -> None:
    """Raise one ConfigError naming every problem (nothing when the list is empty)."""
    if problems:
        count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
        raise ConfigError(f"{where} has {count}: " + "; ".join(problems))


def load_config(
    model: type[M],
    path: str | Path | None = None,
    overrides: Iterable[str] = (),
    flags: dict[str, Any] | None = None,
) -> M:
    """YAML file <- ``flags`` (nested dict from CLI shortcuts) <- ``--set`` overrides, then validate."""
    data: dict[str, Any] = {}
    where = "config"
    if path is not None:
        data = read_yaml(path)
        where = f"config {path}"
    data = _merge(data, flags or {})
    return validate_config(model, apply_overrides(data, overrides), where)


def _describe(err: dict[str, Any], model: type[BaseModel]) -> str:
    loc = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        hint = _suggest(model, err["loc"])
        return f"{loc}: unknown key{hint}"
    got = err.get("input")
    shown = "" if isinstance(got, (dict, list)) or got is None else f" (got {got!r})"
    return f"{loc}: {err['msg']}{shown}"


def _suggest(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """Find the field names valid at ``loc``'s parent and suggest the closest."""
    current: Any = model
    for part in loc[:-1]:
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return ""
        annotation = fields[part].annotation
        current = next(
            (a for a in getattr(annotation, "__args__", (annotation,)) if hasattr(a, "model_fields")), None
        )
        if current is None:
            return ""
    names = [info.alias or name for name, info in getattr(current, "model_fields", {}).items()]
    close = difflib.get_close_matches(str(loc[-1]), names, n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (valid keys: {', '.join(names)})"


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = _deep_copy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _deep_copy(data: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in data.items()}
