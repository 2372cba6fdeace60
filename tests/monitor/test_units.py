"""One unit everywhere data enters: raw values in, the manifest's preprocessing applied.

The same raw digits (0..16, as scikit-learn ships them) go through ``predict`` (.npy),
``monitor check`` and ``evaluate --data`` (npz) and the server's ``/v1 :predict``; all of
them must see the inputs the model was trained on.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from serve_helpers import in_process

from torchship.data import artifact_data, preprocess


@pytest.fixture(scope="module")
def raw_digits() -> tuple[np.ndarray, np.ndarray]:
    """The last 300 digits as on disk: (n, 8, 8) values 0..16, float64 like scikit-learn's."""
    from torchship.data.builtin import _bundled_digits

    rows = _bundled_digits()[-300:]
    return rows[:, :64].reshape(-1, 8, 8), rows[:, 64].astype(np.int64)


def _model_predictions(artifact, raw: np.ndarray) -> list[str]:
    model = artifact.build_model().eval()
    x = preprocess(raw[:, None], artifact.manifest.input.model_dump())
    return [artifact.manifest.labels[i] for i in model(x).argmax(1).tolist()]


def test_raw_digits_through_monitor_check_show_no_drift(run_cli, digits_artifact, raw_digits, tmp_path):
    raw, labels = raw_digits
    np.savez(tmp_path / "new.npz", x=raw, y=labels)
    data = f"npz:{tmp_path / 'new.npz'}"
    code, out, err = run_cli("monitor", "check", digits_artifact.path, "--data", data, "--json")
    assert code == 0, out + err
    scores = json.loads(out)
    assert scores["status"] == "ok"
    assert scores["max_input_psi"] < 0.1


def test_npz_data_for_an_artifact_is_exactly_its_own_data(digits_artifact, raw_digits, tmp_path):
    raw, labels = raw_digits
    np.savez(tmp_path / "new.npz", x=raw.astype(np.uint8), y=labels)  # uint8: no 1/255 guess either
    fed = artifact_data(digits_artifact, f"npz:{tmp_path / 'new.npz'}")
    spec = digits_artifact.manifest.input.model_dump()
    assert fed.input["scale"] == spec["scale"]
    x = np.concatenate([fed.train.x.numpy(), fed.val.x.numpy()])  # a seeded permutation of the rows
    want = preprocess(raw[:, None], spec).numpy()
    np.testing.assert_allclose(np.sort(x.ravel()), np.sort(want.ravel()), atol=1e-5)


def test_predict_and_evaluate_take_the_same_raw_digits(run_cli, digits_artifact, raw_digits, tmp_path):
    raw, labels = raw_digits
    files = []
    for i in range(5):
        np.save(tmp_path / f"{i}.npy", raw[i])
        files.append(tmp_path / f"{i}.npy")
    code, out, err = run_cli("predict", digits_artifact.path, *files, "--json", "--top-k", "1")
    assert code == 0, err
    assert [r["top"][0]["label"] for r in json.loads(out)] == _model_predictions(digits_artifact, raw[:5])

    np.savez(tmp_path / "new.npz", x=raw, y=labels)
    code, out, err = run_cli(
        "evaluate",
        digits_artifact.path,
        "--data",
        f"npz:{tmp_path / 'new.npz'}",
        "--json",
        tmp_path / "m.json",
    )
    assert code == 0, err
    assert json.loads((tmp_path / "m.json").read_text())["metrics"]["accuracy"] > 0.8


@pytest.mark.anyio
async def test_v1_predict_takes_raw_instances(digits_repo, digits_artifact, raw_digits):
    raw, _ = raw_digits
    async with in_process(digits_repo) as c:
        r = await c.post("/v1/models/digits:predict", json={"instances": raw[:8, None].tolist()})
    assert r.status_code == 200, r.text
    assert [p["label"] for p in r.json()["predictions"]] == _model_predictions(digits_artifact, raw[:8])
