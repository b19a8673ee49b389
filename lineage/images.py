"""Image folders: one sub-folder of image files per class (torchvision's ImageFolder layout).

::

    root/cat/001.png
    root/cat/nested/002.jpg     # deeper folders belong to their top-level class
    root/dog/003.png

Each image is checked with Pillow and content-hashed; it is stored and listed in
lineage as a file of its own (role ``image``). So that every later stage reads an
ordinary table, ingest also writes an *index table* (:func:`write_index`): one row per
image in relpath order, with the image's bytes in the Hugging Face ``datasets`` Image
layout. The index holds nothing but the images' names and bytes, so the same folder
always gives the same index bytes; a version's identity (content hash) is the listing
of its images, not the index file.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from lineage.errors import LineageInputError
from lineage.messages import first_line, printable

# torchvision's IMG_EXTENSIONS, and GIF
EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
FORMATS = ("png", "jpeg", "bmp", "gif", "webp", "tiff", "ppm")  # as Pillow names them
ROLE = "image"  # DataFile.role of each image file
INDEX_RELPATH = "index.parquet"
LABEL_COLUMN = "label"  # the index's label column: the default label column of an image folder
INDEX_LAYOUT = "dataward-imagefolder-index-v1"
# Decoded in full only up to this many pixels (memory); larger images are verified only.
LOAD_MAX_PIXELS = 40_000_000
# No image may be larger than this (Pillow's default MAX_IMAGE_PIXELS, where it starts to
# warn of a decompression bomb): the screens and the report decode every image in full,
# so a larger one is refused here, with its size, before anything is stored.
MAX_PIXELS = 89_478_485
# Rows of the index are written in row groups of at most this many image bytes.
ROW_GROUP_BYTES = 32 << 20

SPLITS = {"train", "training", "val", "valid", "validation", "test", "testing", "dev", "eval"}

INDEX_SCHEMA = pa.schema(
    [
        pa.field("image", pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])),
        pa.field("label", pa.string()),
        pa.field("path", pa.string()),
    ],
    # datasets.load_dataset("parquet", ...) reads these features back: image is an Image.
    metadata={
        b"huggingface": json.dumps({"info": {"features": {
            "image": {"_type": "Image"},
            "label": {"dtype": "string", "_type": "Value"},
            "path": {"dtype": "string", "_type": "Value"},
        }}}, sort_keys=True).encode(),
        b"dataward": INDEX_LAYOUT.encode(),
    },
)


@dataclass(frozen=True)
class ImageInfo:
    path: Path  # absolute path of the original
    relpath: str  # CLASS/.../NAME, the name recorded in lineage
    label: str  # the class folder
    format: str  # what Pillow found (one of FORMATS)
    sha256: str
    size_bytes: int
    width: int
    height: int


def is_image(path: Path) -> bool:
    return path.suffix.lower() in EXTENSIONS


def check_layout(root: Path, entries: list[tuple[Path, str]], shown: str) -> None:
    """Refuse an image folder that is not one sub-folder per class: an image at the top
    level, or a class folder with no images (torchvision refuses both too)."""
    loose = [rel for _, rel in entries if "/" not in rel]
    if loose:
        raise LineageInputError(
            f"{shown} has image {printable(loose[0])} at its top level: an image folder "
            "needs one sub-folder of images per class (CLASS/IMAGE.png)")
    classes = {rel.split("/", 1)[0] for _, rel in entries}
    if classes <= SPLITS and all(rel.count("/") >= 2 for _, rel in entries):
        # root/train/cat/x.png: the classes would silently be "train" and "test"
        first = sorted(classes)[0]
        raise LineageInputError(
            f"{shown} holds split folders ({', '.join(sorted(classes))}), not class folders: "
            f"ingest one split's folder, e.g. {shown}/{first}")
    empty = sorted(d.name for d in root.iterdir()
                   if d.is_dir() and not d.name.startswith(".") and d.name != "__MACOSX"
                   and d.name not in classes)
    if empty:
        raise LineageInputError(
            f"{shown}: class folder {printable(empty[0], 60)} holds no image files "
            f"({', '.join(EXTENSIONS)}); remove it or add its images")


def inspect_image(path: Path, relpath: str) -> ImageInfo:
    """Hash one image and check that Pillow can decode it; LineageInputError if not."""
    from PIL import Image

    from lineage.store import sha256_file

    shown = printable(relpath, 200)
    try:
        digest, size = sha256_file(path)
    except OSError as exc:
        raise LineageInputError(f"{shown} cannot be read: {exc.strerror or first_line(exc)}") from None
    try:
        with warnings.catch_warnings():
            # Size is judged against MAX_PIXELS here, in one line of ours, not by Pillow's
            # raw warning on stderr (DecompressionBombError, twice as large, still raises).
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                fmt = (im.format or "").lower()
                width, height = im.size
                if width * height > MAX_PIXELS:
                    raise LineageInputError(_too_large(shown, (width, height)))
                im.verify()  # structure and checksums, without decoding the pixels
            if width * height <= LOAD_MAX_PIXELS:
                with Image.open(path) as im:
                    im.load()  # a truncated JPEG passes verify() but not this
    except LineageInputError:
        raise
    except Image.DecompressionBombError:  # more than twice MAX_PIXELS: Pillow will not open it
        raise LineageInputError(_too_large(shown, None)) from None
    except Exception as exc:  # Pillow raises many types (OSError, SyntaxError, ValueError...)
        raise LineageInputError(
            f"{shown} is not a readable image: {first_line(exc) or type(exc).__name__}") from None
    if fmt not in FORMATS:
        raise LineageInputError(f"{shown} is a {printable(fmt or 'unknown', 20)} image; "
                                f"supported: {', '.join(f.upper() for f in FORMATS)}")
    if sha256_file(path)[0] != digest:
        raise LineageInputError(f"{shown} changed while it was being read; try again once it is complete")
    label = relpath.split("/", 1)[0]
    return ImageInfo(path, relpath, label, fmt, digest, size, width, height)


def _too_large(shown: str, size: tuple[int, int] | None) -> str:
    has = f"{size[0]} x {size[1]} = {size[0] * size[1]:,} pixels" if size else \
        f"more than {2 * MAX_PIXELS:,} pixels"
    return (f"{shown} has {has}, more than the {MAX_PIXELS:,} an image may have (the "
            "screens decode every image in full); downscale it")


def listing_hash(infos: Iterable[ImageInfo]) -> str:
    """An image folder's identity: its layout tag and sorted (relpath, hash) listing."""
    listing = INDEX_LAYOUT + "\n" + "".join(
        f"{i.relpath}\0{i.sha256}\n" for i in sorted(infos, key=lambda i: i.relpath))
    return hashlib.sha256(listing.encode()).hexdigest()


def write_index(infos: list[ImageInfo], dest: Path) -> None:
    """Write the index table of ``infos`` to ``dest`` (Parquet), holding one row group of
    images in memory at a time. Same images, same bytes: rows in relpath order, no
    timestamps. Refuses (LineageInputError) an image whose bytes changed since
    :func:`inspect_image`."""
    import pyarrow.parquet as pq

    ordered = sorted(infos, key=lambda i: i.relpath)
    with pq.ParquetWriter(dest, INDEX_SCHEMA, compression="snappy",
                          write_statistics=["label", "path"]) as writer:
        group: list[tuple[ImageInfo, bytes]] = []
        held = 0
        for info in ordered:
            data = info.path.read_bytes()
            if hashlib.sha256(data).hexdigest() != info.sha256:
                raise LineageInputError(f"{printable(info.relpath, 200)} changed while it was "
                                        "being read; try again once it is complete")
            group.append((info, data))
            held += len(data)
            if held >= ROW_GROUP_BYTES:
                writer.write_table(_index_rows(group), row_group_size=len(group))
                group, held = [], 0
        if group or not ordered:
            writer.write_table(_index_rows(group), row_group_size=max(len(group), 1))


def index_table(infos: list[ImageInfo]) -> pa.Table:
    """The index table of ``infos`` in memory (what :func:`write_index` writes)."""
    ordered = sorted(infos, key=lambda i: i.relpath)
    return _index_rows([(i, i.path.read_bytes()) for i in ordered])


def _index_rows(group: list[tuple[ImageInfo, bytes]]) -> pa.Table:
    image = pa.StructArray.from_arrays(
        [pa.array([d for _, d in group], pa.binary()), pa.array([i.relpath for i, _ in group], pa.string())],
        fields=list(INDEX_SCHEMA.field("image").type))
    return pa.Table.from_arrays(
        [image, pa.array([i.label for i, _ in group], pa.string()),
         pa.array([i.relpath for i, _ in group], pa.string())],
        schema=INDEX_SCHEMA)
