import pytest
from pydantic import BaseModel, ConfigDict

from torchship.config import apply_overrides, load_config, read_yaml, validate_config
from torchship.errors import ConfigError, TorchshipError
from torchship.registry import Registry


def test_registry_miss_lists_choices():
    reg = Registry("widget")
    reg.register("b")(1)
    reg.register("a")(2)
    assert reg.names() == ["a", "b"]
    with pytest.raises(TorchshipError, match="unknown widget 'c'; choose one of: a, b"):
        reg.get("c")
    with pytest.raises(ValueError, match="twice"):
        reg.register("a")(3)


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lr: float = 0.1
    epochs: int = 3


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inner: Inner = Inner()
    name: str = "x"


def test_overrides_parse_values_as_yaml():
    data = apply_overrides(
        {"inner": {"lr": 1}}, ["inner.lr=1e-3", "inner.epochs=7", "name=abc", "new.deep.key=[1, 2]"]
    )
    assert data == {"inner": {"lr": 1e-3, "epochs": 7}, "name": "abc", "new": {"deep": {"key": [1, 2]}}}


def test_every_problem_is_reported_at_once(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("inner: {lr: fast, epoch: 3}\nnaem: y\n")
    with pytest.raises(ConfigError) as info:
        load_config(Outer, cfg)
    message = str(info.value)
    assert "3 problems" in message
    assert "inner.lr" in message
    assert "'fast'" in message
    assert "inner.epoch: unknown key (did you mean 'epochs'?)" in message
    assert "naem: unknown key (did you mean 'name'?)" in message
    assert "\n" not in message


def test_flags_then_set_override_the_file(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("inner: {lr: 0.5, epochs: 9}\n")
    loaded = load_config(Outer, cfg, ["inner.lr=0.25"], flags={"inner": {"lr": 0.3, "epochs": 4}})
    assert loaded.inner.lr == 0.25
    assert loaded.inner.epochs == 4


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        read_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        read_yaml(bad)
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        read_yaml(bad)
    with pytest.raises(ConfigError, match="key.path=value"):
        apply_overrides({}, ["justakey"])


def test_validate_config_ok():
    assert validate_config(Outer, {"inner": {"lr": 2}}).inner.lr == 2.0
