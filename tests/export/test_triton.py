"""The Triton repository's config.pbtxt parses as Triton's ModelConfig and matches the ONNX model."""

from __future__ import annotations

import onnx
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

from torchship.export.triton import model_name

# The fields torchship writes, with the names and numbers of Triton's model_config.proto
# (github.com/triton-inference-server/common, protobuf/model_config.proto).
_DATA_TYPES = [
    "TYPE_INVALID",
    "TYPE_BOOL",
    "TYPE_UINT8",
    "TYPE_UINT16",
    "TYPE_UINT32",
    "TYPE_UINT64",
    "TYPE_INT8",
    "TYPE_INT16",
    "TYPE_INT32",
    "TYPE_INT64",
    "TYPE_FP16",
    "TYPE_FP32",
    "TYPE_FP64",
    "TYPE_STRING",
    "TYPE_BF16",
]
_ONNX_TO_TRITON = {onnx.TensorProto.FLOAT: "TYPE_FP32"}


def _model_config_class():
    try:  # the real thing, when tritonclient[grpc] is installed
        from tritonclient.grpc import model_config_pb2

        return model_config_pb2.ModelConfig
    except Exception:  # not installed, or built for another protobuf major version
        pass
    f = descriptor_pb2.FileDescriptorProto(
        name="torchship_test_model_config.proto", package="inference", syntax="proto3"
    )
    data_type = f.enum_type.add(name="DataType")
    for i, name in enumerate(_DATA_TYPES):
        data_type.value.add(name=name, number=i)
    T = descriptor_pb2.FieldDescriptorProto  # noqa: N806 - protobuf's own naming

    def message(name, fields):
        msg = f.message_type.add(name=name)
        for field_name, number, kind, label, type_name in fields:
            field = msg.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                field.type_name = type_name
        return msg

    one, many = T.LABEL_OPTIONAL, T.LABEL_REPEATED
    message(
        "ModelInput",
        [
            ("name", 1, T.TYPE_STRING, one, None),
            ("data_type", 2, T.TYPE_ENUM, one, ".inference.DataType"),
            ("dims", 4, T.TYPE_INT64, many, None),
        ],
    )
    message(
        "ModelOutput",
        [
            ("name", 1, T.TYPE_STRING, one, None),
            ("data_type", 2, T.TYPE_ENUM, one, ".inference.DataType"),
            ("dims", 3, T.TYPE_INT64, many, None),
            ("label_filename", 4, T.TYPE_STRING, one, None),
        ],
    )
    group = message(
        "ModelInstanceGroup",
        [
            ("name", 1, T.TYPE_STRING, one, None),
            ("count", 2, T.TYPE_INT32, one, None),
            ("kind", 4, T.TYPE_ENUM, one, ".inference.ModelInstanceGroup.Kind"),
        ],
    )
    kind = group.enum_type.add(name="Kind")
    for i, name in enumerate(["KIND_AUTO", "KIND_GPU", "KIND_CPU", "KIND_MODEL"]):
        kind.value.add(name=name, number=i)
    message(
        "ModelDynamicBatching",
        [
            ("preferred_batch_size", 1, T.TYPE_INT32, many, None),
            ("max_queue_delay_microseconds", 2, T.TYPE_UINT64, one, None),
        ],
    )
    message(
        "ModelConfig",
        [
            ("name", 1, T.TYPE_STRING, one, None),
            ("platform", 2, T.TYPE_STRING, one, None),
            ("max_batch_size", 4, T.TYPE_INT32, one, None),
            ("input", 5, T.TYPE_MESSAGE, many, ".inference.ModelInput"),
            ("output", 6, T.TYPE_MESSAGE, many, ".inference.ModelOutput"),
            ("instance_group", 7, T.TYPE_MESSAGE, many, ".inference.ModelInstanceGroup"),
            ("dynamic_batching", 11, T.TYPE_MESSAGE, one, ".inference.ModelDynamicBatching"),
            ("backend", 17, T.TYPE_STRING, one, None),
        ],
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("inference.ModelConfig"))


def test_config_parses_and_matches_onnx(exported):
    art = exported("mlp")
    record = art.manifest.exports["triton"]
    repo = art.path / record["repository"] / record["model_name"]
    config = text_format.Parse((repo / "config.pbtxt").read_text(), _model_config_class()())
    model = onnx.load(str(repo / "1" / "model.onnx"))

    assert config.name == repo.name == "tiny-mlp"
    assert config.platform == "onnxruntime_onnx"
    assert config.backend == "onnxruntime"
    assert config.max_batch_size == 64
    assert config.dynamic_batching.max_queue_delay_microseconds > 0
    for declared, actual in [(config.input, model.graph.input), (config.output, model.graph.output)]:
        assert [t.name for t in declared] == [v.name for v in actual]
        for tensor, value in zip(declared, actual, strict=False):
            shape = value.type.tensor_type.shape.dim
            assert list(tensor.dims) == [d.dim_value for d in shape[1:]]  # batch dim left to max_batch_size
            assert shape[0].dim_param
            want = _ONNX_TO_TRITON[value.type.tensor_type.elem_type]
            assert tensor.data_type == _DATA_TYPES.index(want)
    assert list(config.input[0].dims) == art.manifest.input.shape
    assert list(config.output[0].dims) == [len(art.manifest.labels)]
    assert (repo / config.output[0].label_filename).read_text().split() == art.manifest.labels
    assert (repo / "1" / "model.onnx").read_bytes() == art.file("model.onnx").read_bytes()


@pytest.mark.parametrize(
    ("name", "want"), [("digits cnn/v2", "digits-cnn-v2"), ("ok_name-1.0", "ok_name-1.0"), ("///", "model")]
)
def test_model_name_is_a_directory_name(name, want):
    assert model_name(name) == want
