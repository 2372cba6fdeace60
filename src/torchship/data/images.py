"""Image folders (``root/<class>/*.png``) and preprocessing one file for ``torchship predict``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from PIL import Image, UnidentifiedImageError

from torchship.data.config import DataConfig
from torchship.data.preprocess import preprocess
from torchship.data.registry import RawData, datasets
from torchship.errors import DataError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp"})
# the weights PIL uses for RGB -> L, so a 3->1 channel change matches a gray image
LUMA = (0.299, 0.587, 0.114)
_GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})


def load_image(source: Any, mode: str, size: tuple[int, int] | None) -> np.ndarray:
    """A file or PIL image -> uint8 array (h, w) for mode ``L`` or (h, w, 3) for ``RGB``.

    Args:
        size: (height, width) to resize to (bilinear), or None to keep the image's size.

    Raises:
        DataError: The file is missing or is not an image Pillow can decode.
    """
    try:
        if isinstance(source, Image.Image):
            return _pixels(source, mode, size)
        with Image.open(source) as img:
            return _pixels(img, mode, size)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(
            f"{source} is not a readable image ({exc})", fix="remove or replace the file"
        ) from None


def _pixels(img: Any, mode: str, size: tuple[int, int] | None) -> np.ndarray:
    img = img.convert(mode)
    if size is not None and img.size != (size[1], size[0]):
        img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def _image_mode(files: list[Path], channels: int | None) -> str:
    """``L`` when asked for 1 channel or when every image is gray, else ``RGB``."""
    if channels is not None:
        return "L" if channels == 1 else "RGB"
    for path in files:
        try:
            with Image.open(path) as img:  # reads the header only
                if img.mode not in _GRAY_MODES:
                    return "RGB"
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(
                f"{path} is not a readable image ({exc})", fix="remove or replace the file"
            ) from None
    return "L"


@datasets.register("imagefolder")
def read_imagefolder(cfg: DataConfig) -> RawData:
    """One sub-folder per class (sorted by name); every image resized to one size.

    The size is ``data.resize`` or else the first image's. Images are gray (1 channel)
    when all of them are, RGB otherwise; ``data.channels`` forces either.
    """
    if not cfg.path:
        raise DataError(
            "dataset imagefolder needs a folder", fix="use --data imagefolder:ROOT (ROOT/<class>/*.png)"
        )
    root = Path(cfg.path).expanduser()
    if not root.is_dir():
        raise DataError(
            f"{root} is not a folder", fix="use --data imagefolder:ROOT with one sub-folder per class"
        )
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{root} has no class sub-folders", fix="lay it out as ROOT/<class>/*.png")
    files: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        found = sorted(
            f for f in (root / name).iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
        )
        if not found:
            raise DataError(
                f"{root / name} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})",
                fix="add images or remove the empty class folder",
            )
        files += [(f, label) for f in found]
    mode = _image_mode([f for f, _ in files], cfg.channels)
    if cfg.resize is not None:
        size = (cfg.resize, cfg.resize) if isinstance(cfg.resize, int) else (cfg.resize[0], cfg.resize[1])
    else:
        first = load_image(files[0][0], mode, None)
        size = (first.shape[0], first.shape[1])
    # x: (n, h, w) or (n, h, w, 3) -> (n, c, h, w), uint8
    x = np.stack([load_image(f, mode, size) for f, _ in files])
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
    y = np.array([label for _, label in files], dtype=np.int64)
    return RawData(
        np.ascontiguousarray(x),
        y,
        classes,
        scale=1 / 255,
        source={"origin": "imagefolder", "path": str(root), "mode": mode, "size": list(size)},
    )


def preprocess_image(source: Any, input_spec: dict[str, Any]) -> torch.Tensor:
    """Turn one image file, PIL image or ``.npy`` file into the model's normalized input.

    Images are converted to gray or RGB per the spec's channels and resized to its (h, w)
    (bilinear); their 8-bit pixels are scaled by 1/255. ``.npy`` arrays hold raw values and
    are scaled by ``input_spec["scale"]``, as in training. Then ``(x - mean) / std`` per
    channel (:func:`torchship.data.preprocess`).

    Args:
        input_spec: An artifact's ``input`` block (shape, layout, scale, mean, std).

    Returns:
        (c, h, w) for images, (features,) for the ``features`` layout.

    Raises:
        DataError: The file is unreadable or cannot take the model's input shape.
    """
    shape = list(input_spec["shape"])
    if input_spec.get("layout", "image") == "features":
        arr = _load_npy(source, "a features-layout model takes .npy files").reshape(-1)
        if arr.shape[0] != shape[0]:
            raise DataError(
                f"{source} has {arr.shape[0]} features, the model expects {shape[0]}",
                fix="save one sample's feature vector with np.save",
            )
        return preprocess(arr[None], input_spec)[0]
    c, h, w = shape
    scale = None  # a .npy holds raw values: the manifest's scale
    if isinstance(source, (str, Path)) and Path(source).suffix.lower() == ".npy":
        raw = torch.from_numpy(_load_npy(source, ""))
    else:
        raw = torch.from_numpy(load_image(source, "L" if c == 1 else "RGB", (h, w)).astype(np.float32))
        scale = 1 / 255
    # channel mixing and bilinear resizing are linear, so they commute with the scaling
    return preprocess(_to_chw(raw, c, h, w, source)[None], input_spec, scale)[0]


def _load_npy(source: Any, fix: str) -> np.ndarray:
    if not isinstance(source, (str, Path)) or Path(source).suffix.lower() != ".npy":
        raise DataError(f"{source} is not a .npy file", fix=fix or "pass an image or a .npy file")
    try:
        return np.load(source, allow_pickle=False).astype(np.float32)
    except (OSError, ValueError) as exc:
        raise DataError(
            f"{source} is not a readable plain .npy array ({exc})", fix="save it with np.save"
        ) from None


def _to_chw(unit: torch.Tensor, c: int, h: int, w: int, source: Any) -> torch.Tensor:
    """(h, w) | (h, w, c) | (c, h, w) -> (c, h, w) with the model's channels and size."""
    if unit.dim() == 2:
        unit = unit[None]
    elif unit.dim() == 3 and unit.shape[-1] in (1, 3) and unit.shape[0] not in (1, 3):
        unit = unit.permute(2, 0, 1)
    if unit.dim() != 3:
        raise DataError(
            f"{source} has shape {list(unit.shape)}, the model expects {[c, h, w]}",
            fix="pass one sample (h, w), (c, h, w) or (h, w, c)",
        )
    if unit.shape[0] == 3 and c == 1:
        unit = (unit * torch.tensor(LUMA).view(3, 1, 1)).sum(0, keepdim=True)
    elif unit.shape[0] == 1 and c > 1:
        unit = unit.expand(c, -1, -1)
    if tuple(unit.shape[1:]) != (h, w):
        unit = F.interpolate(unit[None], size=(h, w), mode="bilinear", align_corners=False)[0]
    if tuple(unit.shape) != (c, h, w):
        raise DataError(
            f"{source} gives an input of shape {list(unit.shape)}, the model expects {[c, h, w]}",
            fix="pass an array with the model's channels",
        )
    return unit.contiguous()
