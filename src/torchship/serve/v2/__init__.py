"""Open Inference Protocol v2: the wire format (``codec``) and a served model's signature (``signature``).

``codec`` decodes infer requests and encodes responses (JSON and binary tensors);
``signature`` says what one model takes and answers, checks a decoded request against it and
builds the response tensors. Both protocols (HTTP in ``serve/app.py``, gRPC in
``serve/grpc_service.py``) go through these two and nothing else.
"""

from torchship.serve.v2.codec import (
    DTYPES,
    HEADER_LENGTH,
    MAX_SHAPE_RANK,
    InferRequest,
    OutputTensor,
    RequestedOutput,
    ServeError,
    classify,
    decode_head,
    decode_infer,
    decode_json,
    encode_infer,
    encode_outputs,
)
from torchship.serve.v2.signature import PROBABILITIES, V2Signature, softmax

__all__ = [
    "DTYPES",
    "HEADER_LENGTH",
    "MAX_SHAPE_RANK",
    "PROBABILITIES",
    "InferRequest",
    "OutputTensor",
    "RequestedOutput",
    "ServeError",
    "V2Signature",
    "classify",
    "decode_head",
    "decode_infer",
    "decode_json",
    "encode_infer",
    "encode_outputs",
    "softmax",
]
