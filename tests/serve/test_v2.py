"""Protocol decode/encode without a server."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torchship.serve.v2 import (
    DTYPES,
    OutputTensor,
    ServeError,
    classify,
    decode_infer,
    encode_infer,
    signature,
)
from torchship.serve.v2.signature import finite_copy


def _body(data, shape, datatype="FP32", **extra):
    return orjson.dumps(
        {"inputs": [{"name": "input", "shape": shape, "datatype": datatype, "data": data}], **extra}
    )


def test_flat_and_nested_data_decode_the_same():
    x = np.arange(12, dtype=np.float32).reshape(2, 2, 3)
    flat = decode_infer(_body(x.ravel().tolist(), [2, 2, 3])).inputs["input"]
    nested = decode_infer(_body(x.tolist(), [2, 2, 3])).inputs["input"]
    np.testing.assert_array_equal(flat, x)
    np.testing.assert_array_equal(nested, x)


@pytest.mark.parametrize("datatype", sorted(DTYPES))
def test_every_numeric_datatype_decodes(datatype):
    got = decode_infer(_body([1, 0, 1, 1], [2, 2], datatype)).inputs["input"]
    assert got.dtype == DTYPES[datatype]
    assert got.tolist() == [[1, 0], [1, 1]]


def test_binary_input_and_id_and_parameters():
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    head = orjson.dumps(
        {
            "id": "abc",
            "parameters": {"timeout": 5000, "binary_data_output": True},
            "inputs": [
                {
                    "name": "input",
                    "shape": [2, 3],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": x.nbytes},
                }
            ],
        }
    )
    req = decode_infer(head + x.tobytes(), str(len(head)))
    np.testing.assert_array_equal(req.inputs["input"], x)
    assert (req.id, req.timeout_us, req.binary_output) == ("abc", 5000, True)


_HEAD = b'{"inputs":[{"name":"input","shape":[4],"datatype":"FP32","parameters":{"binary_data_size":16}}]}'


@pytest.mark.parametrize(
    ("body", "header", "message"),
    [
        (b"{not json", None, "not valid JSON"),
        (b"[1, 2]", None, "JSON object"),
        (b'{"inputs": []}', None, "non-empty 'inputs'"),
        (_body([1, 2], [3]), None, "needs 3"),
        (_body(["a", "b"], [2]), None, "not all FP32"),
        (_body([1, 2], [2], "BYTES"), None, "not supported"),
        (_body([1, 2], [-2]), None, "non-negative"),
        (_body([], [0, 2**63]), None, "larger than a"),
        (_body([1], [1] * 9), None, "at most 8 dimensions"),
        (_body([1], [1], parameters={"timeout": "soon"}), None, "timeout"),
        (_HEAD + b"\0" * 8, str(len(_HEAD)), "truncated"),
        (_HEAD + b"\0" * 20, str(len(_HEAD)), "beyond"),
        (b"{}", "999", "does not fit"),
    ],
)
def test_bad_requests_say_what_is_wrong(body, header, message):
    with pytest.raises(ServeError, match=message) as info:
        decode_infer(body, header)
    assert info.value.status == 400


def test_classification_strings():
    got = classify(np.array([[0.1, 0.7, 0.2]]), 2, ["a", "b", "c"])
    assert got.tolist() == [[b"0.700000:1:b", b"0.200000:2:c"]]


def test_encode_json_and_binary():
    y = np.arange(6, dtype=np.float32).reshape(2, 3)
    body, headers = encode_infer("m", "1", "rid", [OutputTensor("logits", y)])
    assert headers["content-type"] == "application/json"
    out = orjson.loads(body)
    assert out["id"] == "rid"
    assert out["outputs"][0]["data"] == y.ravel().tolist()
    body, headers = encode_infer("m", "1", None, [OutputTensor("logits", y, binary=True)])
    n = int(headers["inference-header-content-length"])
    head = orjson.loads(body[:n])
    assert head["outputs"][0]["parameters"]["binary_data_size"] == y.nbytes
    np.testing.assert_array_equal(np.frombuffer(body[n:], np.float32).reshape(2, 3), y)


SPECIAL = [np.nan, np.inf, -np.inf, 3.4e38, -3.4e38, 1.7e38, -0.0, 1e-45, 0.0]


@pytest.mark.parametrize("limit", [0, 1 << 20], ids=["numpy", "bytes"])
@given(values=st.lists(st.one_of(st.floats(width=32), st.sampled_from(SPECIAL)), min_size=1, max_size=64))
@settings(max_examples=300, deadline=None)
def test_finite_copy_agrees_with_numpy(values, limit):
    """Both paths (bytes up to the lock-held limit, numpy above it) find numpy's first non-finite value
    and give back an equal, writeable copy that shares no memory with a read-only body view."""
    x = np.frombuffer(np.array(values, dtype=np.float32).tobytes(), np.float32).reshape(1, -1)
    saved, signature._LOCK_HELD_BYTES = signature._LOCK_HELD_BYTES, limit
    try:
        copy, first = finite_copy(x)
    finally:
        signature._LOCK_HELD_BYTES = saved
    bad = np.flatnonzero(~np.isfinite(x.reshape(-1)))
    assert first == (int(bad[0]) if bad.size else None)
    assert copy.flags.writeable
    assert copy.dtype == np.float32
    assert copy.shape == x.shape
    assert copy.tobytes() == x.tobytes()
    assert not np.shares_memory(copy, x)


def test_finite_copy_casts_other_float_types():
    copy, first = finite_copy(np.array([[1.5, np.nan]], dtype=np.float64))
    assert copy.dtype == np.float32
    assert first == 1
