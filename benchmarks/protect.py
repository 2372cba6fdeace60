"""Cost of protecting an artifact: sign / verify time, and the load-time overhead of decryption.

Builds a seeded, untrained ``resnet18`` artifact (CIFAR-shaped input, about 45 MB of
safetensors weights), then, in the same run:

- signs it with an EC P-256 key (OpenSSF model-signing) and verifies it, ``--repeats`` times;
- encrypts a copy (AES-256-GCM) and times what a server does to bring a model up, clear vs
  encrypted: ``Artifact.load`` (checksums, weights) plus ``load_predictor`` with one warm-up call.

Each figure is the median of ``--repeats`` runs after one discarded run. Prints a table, then
one JSON line for docs/benchmarks.md.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/protect.py --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path


def timed(fn, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs, after one discarded run."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--runtime", default="eager")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import torch

    import torchship
    from torchship.artifact import Artifact
    from torchship.artifact.encryption import KEY_FILE_ENV, encrypt_artifact, generate_key
    from torchship.artifact.signing import keygen, sign, verify
    from torchship.runtime import load_predictor
    from torchship.testing import tiny_artifact

    root = Path(tempfile.mkdtemp(prefix="torchship-protect-"))
    clear = tiny_artifact(args.model, shape=(3, 32, 32), path=root / "clear")
    size_bytes = sum((clear.path / name).stat().st_size for name in clear.manifest.files)
    private, public, _ = keygen(root / "keys")
    key = generate_key()
    (root / "artifact.key").write_text(key.hex())
    os.environ[KEY_FILE_ENV] = str(root / "artifact.key")

    sign_s = timed(lambda: sign(clear.path, private), args.repeats)
    assert verify(clear.path, public).status == "valid"
    verify_s = timed(lambda: verify(clear.path, public), args.repeats)
    encrypt_s = timed(lambda: encrypt_artifact(Artifact.load(clear.path), root / "sealed", key), args.repeats)

    def bring_up(path: Path) -> None:
        load_predictor(Artifact.load(path), args.runtime, warmup=1).close()

    load_clear_s = timed(lambda: bring_up(clear.path), args.repeats)
    load_sealed_s = timed(lambda: bring_up(root / "sealed"), args.repeats)

    from importlib.metadata import version

    import cryptography

    result = {
        "benchmark": "protect",
        "model": args.model,
        "artifact_bytes": size_bytes,
        "runtime": args.runtime,
        "repeats": args.repeats,
        "sign_s": round(sign_s, 3),
        "verify_s": round(verify_s, 3),
        "encrypt_s": round(encrypt_s, 3),
        "load_clear_s": round(load_clear_s, 3),
        "load_encrypted_s": round(load_sealed_s, 3),
        "load_ratio": round(load_sealed_s / load_clear_s, 3),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_1m": round(os.getloadavg()[0], 2),
            "torch_threads": torch.get_num_threads(),
        },
        "versions": {
            "torchship": torchship.__version__,
            "torch": torch.__version__,
            "model_signing": version("model-signing"),
            "cryptography": cryptography.__version__,
        },
    }
    mb = size_bytes / 1e6
    print(f"{args.model} artifact, {mb:.1f} MB, median of {args.repeats}")
    print(f"  sign                         {sign_s * 1e3:8.1f} ms  ({mb / sign_s:.0f} MB/s)")
    print(f"  verify                       {verify_s * 1e3:8.1f} ms  ({mb / verify_s:.0f} MB/s)")
    print(f"  encrypt (torchship encrypt)  {encrypt_s * 1e3:8.1f} ms")
    print(f"  load + {args.runtime}, clear        {load_clear_s * 1e3:8.1f} ms")
    ratio = result["load_ratio"]
    print(f"  load + {args.runtime}, encrypted    {load_sealed_s * 1e3:8.1f} ms  ({ratio:.2f} x clear)")
    print(json.dumps(result))
    shutil.rmtree(root)


if __name__ == "__main__":
    main()
