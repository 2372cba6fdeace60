"""The zoo side of compression: recorded shapes, fusions and ensembles rebuild from JSON alone."""

import pytest
import torch

from torchship.errors import ModelError
from torchship.models import build_model
from torchship.models.structure import changed_shapes

BASE = {
    "name": "cnn",
    "kwargs": {"in_channels": 1, "input_size": 8, "channels": [8, 16], "hidden": 32, "batch_norm": True},
}


def test_pruned_shapes_are_replayed_and_stay_initialised():
    shapes = {
        "features.0.weight": [4, 1, 3, 3],
        "features.1.weight": [4],
        "features.1.bias": [4],
        "features.1.running_mean": [4],
        "features.1.running_var": [4],
        "features.4.weight": [16, 4, 3, 3],
    }
    model = build_model({**BASE, "kwargs": {**BASE["kwargs"], "pruned_shapes": shapes}})
    assert model.features[0].out_channels == 4
    assert model.features[1].num_features == 4
    assert model.features[4].in_channels == 4
    assert changed_shapes(model, build_model(BASE)) == shapes
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    assert model.features[0].weight.abs().sum() > 0  # sliced from a fresh init, not left empty


def test_fused_pairs_drop_the_norm_and_add_a_bias():
    model = build_model({**BASE, "kwargs": {**BASE["kwargs"], "fused": [["features.0", "features.1"]]}})
    assert isinstance(model.features[1], torch.nn.Identity)
    assert model.features[0].bias is not None
    assert model.features[0].bias.shape == (8,)
    assert "features.1.running_mean" not in model.state_dict()


def test_edits_naming_missing_layers_are_model_errors():
    with pytest.raises(ModelError, match="names layer 'features.9'"):
        build_model({**BASE, "kwargs": {**BASE["kwargs"], "fused": [["features.9", "features.1"]]}})
    with pytest.raises(ModelError, match="names no tensor"):
        build_model({**BASE, "kwargs": {**BASE["kwargs"], "pruned_shapes": {"features.0.scale": [3]}}})


def test_ensemble_builds_from_member_architectures():
    members = [{"name": "mlp", "kwargs": {"hidden": [8]}}, BASE]
    model = build_model(
        {
            "name": "ensemble",
            "kwargs": {"members": members, "mode": "mean", "in_channels": 1, "input_size": 8},
        }
    )
    assert model(torch.zeros(3, 1, 8, 8)).shape == (3, 10)
    assert {k.split(".")[1] for k in model.state_dict()} == {"0", "1"}
    with pytest.raises(ModelError, match="unknown ensemble mode 'median'"):
        build_model({"name": "ensemble", "kwargs": {"members": members, "mode": "median"}})
    with pytest.raises(ModelError, match="is not a zoo model"):
        build_model({"name": "ensemble", "kwargs": {"members": [{"import": "x:Y"}]}})
