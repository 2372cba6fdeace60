"""NPZ arrays and CSV tables."""

from __future__ import annotations

import contextlib
import csv
import zipfile
from pathlib import Path

import numpy as np

from torchship.data.config import DataConfig
from torchship.data.registry import RawData, datasets
from torchship.errors import DataError


def _file(cfg: DataConfig, name: str, suffix: str) -> Path:
    if not cfg.path:
        raise DataError(f"dataset {name} needs a file", fix=f"use --data {name}:FILE{suffix}")
    path = Path(cfg.path).expanduser()
    if not path.is_file():
        raise DataError(f"{path} does not exist", fix=f"check the path given to --data {name}:FILE{suffix}")
    return path


@datasets.register("npz")
def read_npz(cfg: DataConfig) -> RawData:
    """``x`` and ``y`` arrays, optional ``labels`` (class names indexed by ``y``).

    ``x`` (n, features) is a table; (n, h, w) gray images; (n, c, h, w) images, or
    (n, h, w, c) when the last dim is 1 or 3 and the second is not. For training, uint8
    images are scaled by 1/255 and anything else is taken as already in [0, 1] (scale 1);
    fed to an artifact, ``x`` is raw and scaled by the manifest's ``input.scale``.
    """
    path = _file(cfg, "npz", ".npz")
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError("it holds a single array, not named arrays")
        missing = [k for k in ("x", "y") if k not in archive.files]
        if missing:
            raise DataError(
                f"{path} has no array {missing[0]!r} (it has: {', '.join(archive.files) or 'none'})",
                fix="save it with np.savez(path, x=inputs, y=labels)",
            )
        x, y = archive["x"], archive["y"]
        names = [str(v) for v in archive["labels"]] if "labels" in archive.files else None
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise DataError(
            f"{path} is not a readable .npz of plain arrays ({exc})",
            fix="save it with np.savez(path, x=inputs, y=labels)",
        ) from None
    if len(x) != len(y) or y.ndim != 1:
        raise DataError(
            f"{path}: x has {len(x)} samples but y has shape {list(y.shape)}", fix="y must be (n,)"
        )
    x, layout = _npz_layout(x, path)
    scale = 1 / 255 if x.dtype == np.uint8 and layout == "image" else 1.0
    if names is None:
        y_int, labels = encode_labels(y)
    else:
        y_int, labels = _indexed_labels(y, names, path)
    return RawData(
        x,
        y_int,
        labels,
        scale=scale,
        layout=layout,
        source={"origin": "npz", "path": str(path)},
        unitless=True,
    )


def _npz_layout(x: np.ndarray, path: Path) -> tuple[np.ndarray, str]:
    """(n, f) -> features; (n, h, w) -> (n, 1, h, w); (n, h, w, c) -> (n, c, h, w)."""
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
        raise DataError(f"{path}: x has dtype {x.dtype}, not numbers", fix="store x as a numeric array")
    if x.ndim == 2:
        return x, "features"
    if x.ndim == 3:
        return x[:, None], "image"
    if x.ndim == 4:
        channels_last = x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3)
        return (np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if channels_last else x), "image"
    raise DataError(
        f"{path}: x has {x.ndim} dimensions {list(x.shape)}",
        fix="use (n, features), (n, h, w), (n, c, h, w) or (n, h, w, c)",
    )


def _indexed_labels(y: np.ndarray, names: list[str], path: Path) -> tuple[np.ndarray, list[str]]:
    if not np.issubdtype(y.dtype, np.integer) or (len(y) and (y.min() < 0 or y.max() >= len(names))):
        raise DataError(
            f"{path}: with a 'labels' array, y must hold integers 0..{len(names) - 1}",
            fix="index the labels array with y, or drop 'labels'",
        )
    return y.astype(np.int64), names


@datasets.register("csv")
def read_csv(cfg: DataConfig) -> RawData:
    """Numeric feature columns and one label column (``data.label_column``, else the last).

    The first row is a header unless every field in it is a number; then the columns are
    named ``0``, ``1``, ... and the first row is data.
    """
    path = _file(cfg, "csv", ".csv")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = [
                (n, [v.strip() for v in row]) for n, row in enumerate(csv.reader(fh), start=1) if any(row)
            ]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(
            f"{path} is not a readable UTF-8 CSV file ({exc})", fix="save it as CSV (UTF-8)"
        ) from None
    if not rows:
        raise DataError(f"{path} is empty", fix="one header row, then one sample per row")
    header = rows[0][1]
    if all(_is_number(v) for v in header):
        header = [str(i) for i in range(len(header))]
    else:
        rows = rows[1:]
    if not rows:
        raise DataError(f"{path} has a header but no data rows", fix="add one sample per row")
    label_col = cfg.label_column if cfg.label_column is not None else header[-1]
    if label_col not in header:
        raise DataError(
            f"{path} has no column {label_col!r}", fix=f"set data.label_column to one of: {', '.join(header)}"
        )
    if len(header) < 2:
        raise DataError(f"{path} has only the label column", fix="add at least one numeric feature column")
    li = header.index(label_col)
    columns = header[:li] + header[li + 1 :]
    # features: (n, f)
    features = np.empty((len(rows), len(columns)), dtype=np.float32)
    raw_labels = []
    for i, (line, row) in enumerate(rows):
        if len(row) != len(header):
            raise DataError(
                f"{path} line {line} has {len(row)} fields but the header has {len(header)}",
                fix="give every row the same columns",
            )
        values = row[:li] + row[li + 1 :]
        try:
            features[i] = [float(v) for v in values]
        except ValueError:
            bad = next(j for j, v in enumerate(values) if not _is_number(v))
            raise DataError(
                f"{path} line {line}, column {columns[bad]!r}: {values[bad]!r} is not a number",
                fix="feature columns must be numeric (encode categories first)",
            ) from None
        raw_labels.append(row[li])
    y, labels = encode_labels(np.asarray(raw_labels))
    return RawData(
        features,
        y,
        labels,
        scale=1.0,
        layout="features",
        source={"origin": "csv", "path": str(path), "label_column": label_col, "columns": columns},
        unitless=True,
    )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def encode_labels(y: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Map labels to class indices and names.

    Integers 0..k-1 stay as they are (names ``"0"``..``"k-1"``). Other numbers are mapped
    in numeric order, anything else in sorted string order.

    Example:
        >>> encode_labels(np.array(["dog", "cat", "dog"]))
        (array([1, 0, 1]), ['cat', 'dog'])
    """
    numeric = None
    with contextlib.suppress(TypeError, ValueError):
        numeric = y.astype(np.float64)
    if numeric is not None and len(numeric) and np.isfinite(numeric).all():
        ints = numeric.astype(np.int64)
        if np.array_equal(ints, numeric) and ints.min() >= 0:
            return ints, [str(i) for i in range(int(ints.max()) + 1)]
        uniques = np.unique(numeric)
        names = [str(int(v)) if float(v).is_integer() else str(float(v)) for v in uniques]
        return np.searchsorted(uniques, numeric).astype(np.int64), names
    text = np.asarray([str(v) for v in y])
    uniques = np.unique(text)
    return np.searchsorted(uniques, text).astype(np.int64), [str(v) for v in uniques]
