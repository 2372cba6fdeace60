import sys
import textwrap

import pytest
import torch

from torchship.artifact import Architecture
from torchship.errors import ModelError
from torchship.models import apply_init, build_model, zoo

SHAPES = {"mlp": (1, 8, 8), "cnn": (1, 8, 8), "lenet": (1, 28, 28), "resnet": (3, 32, 32)}


@pytest.mark.parametrize("name", zoo.names())
def test_every_zoo_model_builds_and_runs(name):
    shape = SHAPES.get(name.rstrip("0123456789"), (3, 32, 32))
    kwargs = {"in_channels": shape[0], "num_classes": 7, "input_size": list(shape[1:])}
    if name == "resnet18":
        kwargs["width"] = 8  # keep the test small; depth is what the alias sets
    model = build_model({"name": name, "kwargs": kwargs}).eval()
    with torch.no_grad():
        assert model(torch.randn(2, *shape)).shape == (2, 7)


@pytest.mark.parametrize(("depth", "blocks"), [(8, 3), (20, 9), (18, 8)])
def test_resnet_depths(depth, blocks):
    model = build_model({"name": "resnet", "kwargs": {"depth": depth, "width": 4}})
    assert len(model.layers) == blocks


def test_lenet_and_cnn_fit_digits_size():
    for name in ("lenet", "cnn"):
        model = build_model({"name": name, "kwargs": {"in_channels": 1, "input_size": 8}})
        assert model(torch.zeros(1, 1, 8, 8)).shape == (1, 10)


def test_unknown_model_lists_choices():
    with pytest.raises(ModelError, match="unknown model 'cnm'; choose one of: cnn, lenet, mlp"):
        build_model({"name": "cnm"})


def test_bad_kwargs_and_bad_depth_are_clear():
    with pytest.raises(ModelError, match="cannot build cnn"):
        build_model({"name": "cnn", "kwargs": {"colour": 3}})
    with pytest.raises(ModelError, match="resnet depth 7"):
        build_model({"name": "resnet", "kwargs": {"depth": 7}})
    with pytest.raises(ModelError, match="cannot take 1x2x2"):
        build_model({"name": "cnn", "kwargs": {"in_channels": 1, "input_size": 2}})


def test_image_models_refuse_feature_vectors():
    with pytest.raises(ModelError, match="needs image input"):
        build_model({"name": "cnn", "kwargs": {"in_channels": 16, "input_size": None}})
    assert build_model({"name": "mlp", "kwargs": {"in_channels": 16}})(torch.zeros(3, 16)).shape == (3, 10)


@pytest.mark.parametrize("scheme", ["default", "xavier", "kaiming"])
def test_init_schemes(scheme):
    torch.manual_seed(0)
    model = build_model({"name": "cnn", "kwargs": {"in_channels": 1, "input_size": 8}}, init=scheme)
    head = model.head
    if scheme != "default":
        assert torch.count_nonzero(head.bias) == 0
    with pytest.raises(ModelError, match="unknown init"):
        apply_init(model, "orthogonal")


@pytest.fixture
def byo_module(tmp_path, monkeypatch):
    (tmp_path / "mynets.py").write_text(
        textwrap.dedent("""
        import torch
        IMPORTED = []
        class Tiny(torch.nn.Module):
            def __init__(self, num_classes=10, hidden=8):
                super().__init__()
                IMPORTED.append(1)
                self.fc = torch.nn.Sequential(
                    torch.nn.Flatten(), torch.nn.Linear(64, hidden), torch.nn.Linear(hidden, num_classes)
                )
            def forward(self, x):
                return self.fc(x)
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "mynets:Tiny"
    sys.modules.pop("mynets", None)


def test_bring_your_own_model_needs_explicit_permission(byo_module):
    arch = Architecture.model_validate({"import": byo_module, "kwargs": {"num_classes": 4, "in_channels": 1}})
    with pytest.raises(ModelError, match="--allow-import mynets:Tiny"):
        build_model(arch)
    assert "mynets" not in sys.modules  # refused before any import happened
    model = build_model(arch, allow_import=[byo_module])
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 4)  # in_channels dropped: Tiny does not take it


def test_bad_import_paths(byo_module):
    with pytest.raises(ModelError, match="not of the form"):
        build_model({"import": "mynets.Tiny"}, allow_import=["mynets.Tiny"])
    with pytest.raises(ModelError, match="cannot import"):
        build_model({"import": "nosuchpkg:Net"}, allow_import=["nosuchpkg:Net"])
    with pytest.raises(ModelError, match="no attribute"):
        build_model({"import": "mynets:Nope"}, allow_import=["mynets:Nope"])
