"""Dynamic int8 for a transformer encoder on this CPU: fp32 ONNX Runtime vs int8 ONNX Runtime.

A BERT-mini-sized classifier (4 layers, hidden 256, 4 heads, intermediate 1024, vocabulary
30522, 3 labels; random weights from a seed: speed does not depend on training) is brought in
with ``torchship.from_model``, exported to ONNX (dynamic batch and sequence, parity-checked)
and quantized with ``compress quantize --mode dynamic`` (ORT: int8 MatMul/Gemm weights,
activations quantized at run time). Both graphs are timed at sequence 128, batch 1 and 8,
alternating rounds so machine noise hits both alike (warm-up, then the median p50 of the
rounds), through the same ``measure_latency`` ``torchship bench`` uses. Agreement is top-1
and max |Δ| of the logits on ``--samples`` generated token sequences.

    python benchmarks/bert_int8.py [--threads 2] [--rounds 3] [--samples 256] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

SEQ = 128
VOCAB = 30522


def build_encoder() -> torch.nn.Module:
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=1024,
        num_labels=3,
        max_position_embeddings=512,
    )
    return BertForSequenceClassification(config).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import onnxruntime

    from torchship.artifact import Artifact
    from torchship.bench import measure_latency
    from torchship.compress.quantize import QuantizeConfig, quantize
    from torchship.export import export
    from torchship.importer import from_model
    from torchship.runtime import load_predictor
    from torchship.runtime.feeds import example_feeds

    ids = torch.randint(0, VOCAB, (2, SEQ))
    dims = {name: {0: "batch", 1: "seq"} for name in ("input_ids", "attention_mask")}
    with tempfile.TemporaryDirectory() as tmp:
        art = from_model(
            build_encoder(),
            {"input_ids": ids, "attention_mask": torch.ones_like(ids)},
            name="bert-mini",
            labels=["a", "b", "c"],
            dynamic_dims=dims,
            ranges={"input_ids": [0, VOCAB]},
            out=Path(tmp) / "fp32",
        )
        fp32_art = export(art, ["onnx"])
        int8_art = quantize(
            Artifact.load(fp32_art.path), QuantizeConfig(mode="dynamic"), out=Path(tmp) / "int8"
        )
        fp32 = load_predictor(fp32_art, "onnxruntime", threads=args.threads, precision="fp32")
        int8 = load_predictor(int8_art, "onnxruntime", threads=args.threads)
        sig = fp32_art.manifest.signature
        agree, max_diff = [], 0.0
        for start in range(0, args.samples, 32):
            feeds = example_feeds(
                sig, batch=min(32, args.samples - start), dims={"seq": SEQ}, seed=100 + start
            )
            a, b = fp32.run(feeds)["logits"], int8.run(feeds)["logits"]
            agree.append(a.argmax(1) == b.argmax(1))
            max_diff = max(max_diff, float(np.abs(a - b).max()))
        rows: list[dict[str, Any]] = []
        for batch in (1, 8):
            feeds = example_feeds(sig, batch=batch, dims={"seq": SEQ}, seed=batch)
            p50 = {"fp32": [], "int8": []}
            for _ in range(args.rounds):
                for name, predictor in (("fp32", fp32), ("int8", int8)):
                    stats = measure_latency(
                        predictor.run, feeds, warmup=3, min_iterations=20, min_time_s=1.0, max_time_s=6.0
                    )
                    p50[name].append(stats.p50_ms)
            med = {k: statistics.median(v) for k, v in p50.items()}
            rows.append(
                {
                    "batch": batch,
                    "fp32_p50_ms": round(med["fp32"], 3),
                    "int8_p50_ms": round(med["int8"], 3),
                    "fp32_sps": round(batch / med["fp32"] * 1e3, 1),
                    "int8_sps": round(batch / med["int8"] * 1e3, 1),
                    "speedup": round(med["fp32"] / med["int8"], 2),
                }
            )
        sizes = {
            "fp32_bytes": fp32_art.file("model.onnx").stat().st_size,
            "int8_bytes": int8_art.file("model.int8.onnx").stat().st_size,
        }
    result = {
        "model": "BERT-mini-sized encoder (4 layers, hidden 256, seq 128, random weights)",
        "rows": rows,
        "top1_agreement": float(np.mean(np.concatenate(agree))),
        "max_abs_diff": max_diff,
        "samples": args.samples,
        **sizes,
        "threads": args.threads,
        "rounds": args.rounds,
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__,
        },
    }
    print(
        f"{'batch':>5} {'fp32 p50 ms':>12} {'int8 p50 ms':>12} {'fp32 samples/s':>15} {'int8 samples/s':>15} "
        f"{'speed-up':>9}"
    )
    for r in rows:
        print(
            f"{r['batch']:>5} {r['fp32_p50_ms']:>12.3f} {r['int8_p50_ms']:>12.3f} {r['fp32_sps']:>15.1f} "
            f"{r['int8_sps']:>15.1f} {r['speedup']:>8.2f}x"
        )
    print(
        f"top-1 agreement {result['top1_agreement']:.2%} on {args.samples} sequences, max |Δ| logits "
        f"{max_diff:.4f}; size {sizes['fp32_bytes'] / 1e6:.1f} MB -> {sizes['int8_bytes'] / 1e6:.1f} MB"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
