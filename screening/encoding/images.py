"""Image decoding with Pillow: encoded image bytes to a fixed probe size."""

from __future__ import annotations

import math

import numpy as np

from ..errors import ScreeningInputError


def image_shape(arr: np.ndarray, config) -> tuple[int, ...] | None:
    if arr.ndim == 3:  # nested rows: (H, W)
        return (1,) + arr.shape[1:]
    length = arr.shape[1]
    if config.image_shape is not None:
        shape = tuple(int(s) for s in config.image_shape)
        if len(shape) == 2:
            shape = (1, *shape)
        return shape if int(np.prod(shape)) == length else None
    side = math.isqrt(length)
    return (1, side, side) if side * side == length and side >= 4 else None


def image_pixels(im, mode: str, size: tuple[int, int]) -> np.ndarray:
    """One image as float32 (H, W[, 3]) in [0, 1]: 8-bit modes through Pillow's
    conversion; 16-bit and 32-bit grey scaled by their own range first (``convert("L")``
    would clip them to white)."""
    from PIL import Image

    if im.mode.startswith(("I;16", "I", "F")) and im.mode not in ("IA",):
        a = np.asarray(im, dtype=np.float32)
        top = 65535.0 if im.mode.startswith("I;16") else max(float(a.max()), 1.0)
        a = np.asarray(Image.fromarray(a / top, mode="F").resize(size, Image.BILINEAR), dtype=np.float32)
        return np.repeat(a[..., None], 3, axis=2) if mode == "RGB" else a
    im = im.convert(mode)
    if im.size != size:
        im = im.resize(size, Image.BILINEAR)
    return np.asarray(im, dtype=np.float32) / 255.0


def decode_images(col, shape: tuple[int, int, int], what: str, *, batch: int = 1024) -> np.ndarray:
    """Encoded images (bytes, or the ``datasets`` Image struct) -> float32 (N, C, H, W) in
    [0, 1], every image converted to the plan's mode and resized to its (H, W)."""

    from PIL import UnidentifiedImageError

    h, w, c = shape
    mode = "L" if c == 1 else "RGB"
    n = len(col)
    out = np.zeros((n, c, h, w), dtype=np.float32)
    row = 0
    for chunk in col.chunks:
        for v in chunk:
            b = _bytes_of(v.as_py())
            if b is None:  # a missing image: an all-zero one, like a missing number's median
                row += 1
                continue
            try:
                with open_image(b, what, row) as im:
                    a = image_pixels(im, mode, (w, h))
            except ScreeningInputError:
                raise
            except (UnidentifiedImageError, OSError, ValueError) as exc:
                raise ScreeningInputError(
                    f"{what} image column row {row} cannot be decoded: {type(exc).__name__}") from None
            out[row] = a.reshape(h, w, c).transpose(2, 0, 1)
            row += 1
    return out


def open_image(b: bytes, what: str, row: int):
    """``PIL.Image.open`` of one encoded image, refused with :class:`ScreeningInputError`
    (row and limit named) when it has more pixels than Pillow's decompression-bomb limit
    (``Image.MAX_IMAGE_PIXELS``, 89,478,485), before any pixel is decoded and without
    Pillow's raw ``DecompressionBombWarning`` on the console."""
    import io
    import warnings

    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(b))
        except Image.DecompressionBombError:
            im = None
    limit = Image.MAX_IMAGE_PIXELS
    if im is None or (limit and im.size[0] * im.size[1] > limit):
        size = "" if im is None else f" ({im.size[0]} x {im.size[1]} pixels)"
        if im is not None:
            im.close()
        raise ScreeningInputError(f"{what} image column row {row} is larger than the {limit:,}-pixel limit"
                                  f"{size}; resize it or leave it out")
    return im


def first_bytes(col) -> bytes | None:
    for chunk in col.chunks:
        for v in chunk:
            b = _bytes_of(v.as_py())
            if b:
                return b
    return None


def _bytes_of(v) -> bytes | None:
    if isinstance(v, dict):
        v = v.get("bytes")
    return bytes(v) if isinstance(v, (bytes, bytearray)) else None


def probe_image_shape(col, config) -> tuple[int, int, int] | None:
    """(H, W, C) every image of the column is decoded to: the common size when all
    sampled images share one no larger than ``config.image_size``, else
    ``image_size`` square; grey when every sampled image is grey, else RGB."""

    from PIL import UnidentifiedImageError

    sizes, modes = set(), set()
    seen = 0
    for chunk in col.chunks:
        for v in chunk:
            b = _bytes_of(v.as_py())
            if not b:
                continue
            try:
                with open_image(b, "data", seen) as im:
                    sizes.add(im.size)
                    modes.add(im.mode)
            except ScreeningInputError:
                raise
            except (UnidentifiedImageError, OSError, ValueError):
                return None
            seen += 1
            if seen >= 64:
                break
        if seen >= 64:
            break
    if not sizes:
        return None
    grey = all(m in ("L", "1", "I", "I;16", "F", "LA") for m in modes)
    c = 1 if grey else 3
    if len(sizes) == 1:
        w, h = next(iter(sizes))
        if max(w, h) <= config.image_size:
            return (h, w, c)
    s = int(config.image_size)
    return (s, s, c)
