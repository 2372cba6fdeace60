"""Checks of a written Triton repository, shared by the export and import tests.

The config is parsed by tritonclient's own ``ModelConfig`` message (Triton's model_config.proto),
and the version's ``model.onnx`` is run in ONNX Runtime with inputs shaped and typed as the config
declares them, beside the artifact's own predictor.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from google.protobuf import text_format

from torchship.artifact import Artifact
from torchship.runtime.feeds import example_feeds
from torchship.serve.v2.signature import softmax

NUMPY_OF = {"TYPE_FP32": np.float32, "TYPE_FP16": np.float16, "TYPE_INT64": np.int64, "TYPE_INT32": np.int32}


def parse_config(repo: Path):
    """``config.pbtxt`` as tritonclient's ``ModelConfig`` (fails on any field Triton lacks)."""
    from tritonclient.grpc import model_config_pb2

    return text_format.Parse((repo / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())


def repository(art: Artifact) -> Path:
    record = art.manifest.exports["triton"]
    return art.path / record["repository"] / record["model_name"]


def check_repository(art: Artifact, reference, dims: list[dict[str, int]], atol: float = 1e-4):
    """Parse the config, match it to the graph, run the graph at batch 1 and 3 for each ``dims``.

    ``reference`` runs named feeds through the artifact itself (``predictor.run``); its outputs
    and the server's softmax of the first one are what the Triton graph must answer.
    Returns the parsed config.
    """
    import onnx
    import onnxruntime as ort
    from tritonclient.grpc import model_config_pb2

    repo = repository(art)
    config = parse_config(repo)
    type_name = model_config_pb2.DataType.Name
    version = repo / str(art.manifest.version)
    assert sorted(p.name for p in repo.iterdir() if p.is_dir()) == [str(art.manifest.version)]
    graph = onnx.load(str(version / "model.onnx")).graph
    assert config.name == repo.name
    assert config.platform == "onnxruntime_onnx"
    assert config.max_batch_size > 0
    assert config.dynamic_batching.max_queue_delay_microseconds > 0
    sig = art.manifest.signature
    assert [t.name for t in config.input] == sig.input_names
    assert [t.name for t in config.output][: len(sig.outputs)] == sig.output_names
    values = {v.name: v for v in [*graph.input, *graph.output]}
    for tensor in [*config.input, *config.output]:
        shape = values[tensor.name].type.tensor_type.shape.dim
        assert shape[0].dim_param, f"{tensor.name}: batch dim left to max_batch_size"
        assert list(tensor.dims) == [-1 if d.dim_param else d.dim_value for d in shape[1:]], tensor.name
    assert "already preprocessed" in (repo / "README.md").read_text()
    assert "already preprocessed" in (repo / "config.pbtxt").read_text()

    session = ort.InferenceSession(str(version / "model.onnx"), providers=["CPUExecutionProvider"])
    first = sig.outputs[0].name
    for sizes in dims:
        for batch in (1, 3):
            feeds = example_feeds(sig, batch=batch, dims=sizes, seed=batch)
            for tensor in config.input:  # the feeds are what the config declares
                x = feeds[tensor.name]
                assert x.dtype == NUMPY_OF[type_name(tensor.data_type)], tensor.name
                assert x.shape[0] == batch
                assert all(d in (-1, n) for d, n in zip(tensor.dims, x.shape[1:], strict=True))
            names = [t.name for t in config.output]
            got = dict(zip(names, session.run(names, feeds), strict=True))
            want = reference.run(feeds)
            for name in sig.output_names:
                np.testing.assert_allclose(got[name], want[name], atol=atol, err_msg=name)
            if "probabilities" in got:
                np.testing.assert_allclose(got["probabilities"], softmax(want[first]), atol=atol)
                np.testing.assert_allclose(
                    got["probabilities"], softmax(got[first]), atol=1e-6, err_msg="server's softmax"
                )
    return config
