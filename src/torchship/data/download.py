"""Optional downloads for the MNIST family and CIFAR, verified by checksum before use.

Runs only with ``--download`` (``data.download: true``) and only when the files are
missing. Tests never touch the network: they point ``download`` at ``file://`` URLs.
"""

from __future__ import annotations

import hashlib
import shutil
import tarfile
import urllib.request
from collections.abc import Callable
from pathlib import Path

from torchship.data.config import DataConfig
from torchship.errors import DataError

# name -> (base URL, {file: checksum}); 32 hex digits is an md5, 64 a sha256. The md5s are the
# ones each dataset publishes (and torchvision checks).
SOURCES: dict[str, tuple[str, dict[str, str]]] = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        {
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
    ),
    "fashion-mnist": (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        {
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
    ),
    "kmnist": (
        "http://codh.rois.ac.jp/kmnist/dataset/kmnist/",
        {
            "train-images-idx3-ubyte.gz": "bdb82020997e1d708af4cf47b453dcf7",
            "train-labels-idx1-ubyte.gz": "e144d726b3acfaa3e44228e80efcd344",
            "t10k-images-idx3-ubyte.gz": "5c965bf0a639b31b8f53240b1b52f4d7",
            "t10k-labels-idx1-ubyte.gz": "7320c461ea6c1c855c0b718fb2a4b134",
        },
    ),
    "cifar10": (
        "https://www.cs.toronto.edu/~kriz/",
        {"cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"},
    ),
    "cifar100": (
        "https://www.cs.toronto.edu/~kriz/",
        {"cifar-100-python.tar.gz": "eb9058c3a382ffc7106e4002c42a8d85"},
    ),
}


def default_root(name: str) -> Path:
    """Where a dataset lives when no path is given: ``~/.cache/torchship/<name>``."""
    return Path.home() / ".cache" / "torchship" / name


def ensure_root(name: str, cfg: DataConfig, complete: Callable[[Path], bool]) -> Path:
    """The dataset's folder, downloaded into first when ``cfg.download`` is set and files are missing.

    Args:
        name: The registry name, a key of :data:`SOURCES`.
        complete: Whether a folder already holds the files the reader needs.

    Raises:
        DataError: The folder does not exist and downloading was not asked for.
    """
    root = Path(cfg.path).expanduser() if cfg.path else default_root(name)
    if complete(root):
        return root
    if cfg.download:
        download(name, root)
        return root
    if not root.exists():
        raise DataError(
            f"{name} is not at {root} (no such folder)",
            fix=f"give --data {name}:PATH (the folder holding its files), or add --download",
        )
    return root  # the reader names the file that is missing


def file_digest(path: Path, algorithm: str) -> str:
    """Hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _algorithm(checksum: str) -> str:
    return {32: "md5", 64: "sha256"}[len(checksum)]


def download(name: str, root: Path, base_url: str | None = None) -> list[Path]:
    """Fetch every file of ``name`` into ``root``, refusing any whose checksum differs.

    A file already there with the right checksum is kept; ``.tar.gz`` archives are
    extracted next to themselves (with tarfile's ``data`` filter: no links out, no
    absolute paths).

    Args:
        base_url: Another mirror (or a ``file://`` folder) holding the same files.

    Raises:
        DataError: A download failed or a file's checksum does not match the table.
    """
    base, files = SOURCES[name]
    base = base_url or base
    root.mkdir(parents=True, exist_ok=True)
    fetched = []
    for file, want in files.items():
        target = root / file
        if not (target.is_file() and file_digest(target, _algorithm(want)) == want):
            _fetch(base + file, target, want)
        if file.endswith(".tar.gz"):
            _extract(target, root)
        fetched.append(target)
    return fetched


def _fetch(url: str, target: Path, want: str) -> None:
    part = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, open(part, "wb") as out:
            shutil.copyfileobj(resp, out)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise DataError(
            f"downloading {url} failed ({exc})", fix=f"download it by hand into {target.parent}"
        ) from None
    algorithm = _algorithm(want)
    got = file_digest(part, algorithm)
    if got != want:
        part.unlink()
        raise DataError(
            f"{url} has {algorithm} {got}, expected {want}",
            fix="retry (the download was corrupted), or fetch the file by hand",
        )
    part.replace(target)


def _extract(archive: Path, root: Path) -> None:
    if not hasattr(tarfile, "data_filter"):
        raise DataError(
            f"this Python cannot extract {archive.name} safely (no tarfile filters)",
            fix=f"extract it by hand into {root}, or use Python >= 3.10.12",
        )
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(root, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise DataError(
            f"{archive} cannot be extracted ({exc})", fix="delete it and download again"
        ) from None
