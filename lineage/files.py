"""Finding and checking the data files of a dataset version.

Reading a file (formats, compression, bounded-memory batches) is :mod:`datafiles`,
shared with the checks; this module decides what is a dataset: which files of a folder
are data, whether they agree, what a version's identity is. Every file is read end to
end in batches when it is inspected, so
corruption anywhere in it is found before anything is stored, with memory bounded
by the batch size.

A folder is either a table split over files (a Spark-style Parquet directory, a
``save_to_disk`` folder, any folder of data files) or an image folder with one
sub-folder per class (see :mod:`lineage.images`). Names starting with ``.`` or
``_`` (hidden files, ``_SUCCESS``, ``_committed_*``, ``_temporary/``, ``.crc``
files) are not data, as in ``pyarrow.dataset``; other files that are not data
(``dataset_info.json``, ``state.json``, a README) are ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from datafiles import (  # noqa: F401  (re-exported: the stages read stored files through here)
    BATCH_BYTES,
    BATCH_ROWS,
    COMPRESSION,
    FORMATS,
    MAX_COLUMNS,
    MAX_ROW_BYTES,
    TEXT_FORMATS,
    InputLimitError,
    codec,
    empty_schema,
    file_schema,
    format_of,
    iter_file_batches,
)
from lineage import images
from lineage.errors import LineageInputError
from lineage.messages import first_line as _first_line
from lineage.messages import names as _names
from lineage.messages import printable
from lineage.store import sha256_file

SUPPORTED = (".parquet, .csv, .tsv, .jsonl (also .gz, .bz2, .zst), .arrow or .feather files, "
             "or image files in class folders")


@dataclass(frozen=True)
class FileInfo:
    path: Path  # absolute path of the original
    relpath: str  # path inside the dataset (posix), the name recorded in lineage
    format: str
    sha256: str
    size_bytes: int
    row_count: int
    schema: pa.Schema


@dataclass(frozen=True)
class Listing:
    """What :func:`collect` found: a table's files, or an image folder's images."""

    kind: str  # "table" or "images"
    root: Path  # the folder given (for a single file: the file itself)
    entries: list[tuple[Path, str]]  # (absolute path, relpath), in relpath order

    def __iter__(self):  # ``for path, relpath in collect(...)``
        return iter(self.entries)


def read_path(path: str | os.PathLike[str], *, data_root: str | os.PathLike[str] | None = None
              ) -> pa.Table:
    """A file or folder in any format ingest reads, as one Arrow table, without storing
    anything (``dataward screen`` on files that were never ingested). An image folder
    reads as its index table (:func:`lineage.images.index_table`). LineageInputError if
    it cannot be read."""
    listing = collect(path, data_root=data_root)
    if listing.kind == "images":
        return images.index_table([images.inspect_image(p, rel) for p, rel in listing.entries])
    tables = []
    for p, rel in listing.entries:
        fmt = format_of(p)
        try:
            tables.append(pa.Table.from_batches(list(iter_file_batches(p, fmt)), schema=file_schema(p, fmt)))
        except InputLimitError as exc:
            raise LineageInputError(f"{printable(rel)}: {exc}") from None
        except (pa.ArrowException, OSError, ValueError, TypeError, UnicodeError) as exc:
            raise LineageInputError(f"{printable(rel)} is not a readable {fmt} file: {_first_line(exc)}") from None
    if len(tables) == 1:
        return tables[0]
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowException, TypeError) as exc:
        raise LineageInputError(f"the files' columns do not agree: {_first_line(exc)}") from None


def _skipped(relpath: str) -> bool:
    """Hidden files and Hadoop/Spark markers, as ``pyarrow.dataset`` skips them."""
    return any(part.startswith(("_", ".")) for part in relpath.split("/"))


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def collect(path: str | os.PathLike[str], *, data_root: str | os.PathLike[str] | None = None
            ) -> Listing:
    """The data files at ``path`` (a file or a folder).

    Refuses a missing path, a path outside ``data_root`` (when given), a symlink
    that points outside the dataset folder, a folder with no data files, a folder
    that mixes image files with tables, and an image folder that is not laid out
    as one sub-folder per class.
    """
    given = Path(path)
    shown = printable(given, 200)
    if not given.exists():
        if given.is_symlink():
            raise LineageInputError(f"{shown} is a broken symlink")
        raise LineageInputError(f"{shown} does not exist")
    resolved = given.resolve()
    if data_root is not None:
        root = Path(data_root).resolve()
        if not _inside(resolved, root):
            raise LineageInputError(f"{shown} is outside the data root {printable(root, 200)}")
    if resolved.exists() and not resolved.is_dir() and not resolved.is_file():
        raise LineageInputError(f"{shown} is not a regular file (a pipe or device cannot be ingested)")
    if resolved.is_file():
        if images.is_image(resolved):
            raise LineageInputError(
                f"{shown} is a single image: give the folder that holds one sub-folder of "
                "images per class")
        if format_of(resolved) is None:
            raise LineageInputError(f"{shown} is not a supported data file (expected {SUPPORTED})")
        _check_name(resolved.name, shown)
        return Listing("table", resolved, [(resolved, resolved.name)])
    _refuse_dataset_dict(resolved, shown)
    tables: list[tuple[Path, str]] = []
    pictures: list[tuple[Path, str]] = []
    for dirpath, dirnames, filenames in os.walk(resolved, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__MACOSX")
        for name in sorted(dirnames + filenames):
            entry = Path(dirpath) / name
            if entry.is_symlink() and not _inside(_link_target(entry, resolved, shown), resolved):
                rel = printable(entry.relative_to(resolved).as_posix())
                raise LineageInputError(f"{rel} in {shown} is a symlink that points outside it")
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            entry = Path(dirpath) / name
            rel = entry.relative_to(resolved).as_posix()
            is_table = format_of(entry) is not None and not _skipped(rel)
            if not is_table and not images.is_image(entry):
                continue
            _check_name(rel, shown)
            if not entry.is_file():  # a pipe would block the reader forever
                raise LineageInputError(f"{printable(rel)} in {shown} is not a regular file")
            (tables if is_table else pictures).append((entry.resolve(), rel))
    if pictures and tables:
        raise LineageInputError(
            f"{shown} mixes image files ({printable(pictures[0][1])}) with data tables "
            f"({printable(tables[0][1])}): a dataset is either an image folder or a table")
    if pictures:
        images.check_layout(resolved, pictures, shown)
        return Listing("images", resolved, pictures)
    if not tables:
        raise LineageInputError(f"{shown} holds no data files ({SUPPORTED})")
    return Listing("table", resolved, tables)


def _link_target(entry: Path, root: Path, shown: str) -> Path:
    """Where the symlink ``entry`` ends; LineageInputError for a link that never ends (a
    file linking to itself, two links to each other: Path.resolve raises RuntimeError)."""
    try:
        return entry.resolve()
    except (RuntimeError, OSError):
        rel = printable(entry.relative_to(root).as_posix())
        raise LineageInputError(f"{rel} in {shown} is a symlink loop (it links back to itself); "
                                "remove it") from None


def _check_name(relpath: str, shown: str) -> None:
    try:
        relpath.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes in a file name arrive as surrogates
        raise LineageInputError(
            f"{printable(relpath)} in {shown}: the file name is not valid UTF-8; rename it") from None


def _refuse_dataset_dict(folder: Path, shown: str) -> None:
    """A ``DatasetDict.save_to_disk`` folder holds several splits: merging them silently
    would mix training and test rows, so ask for one split's folder."""
    marker = folder / "dataset_dict.json"
    if not marker.is_file():
        return
    splits: list[str] = []
    try:
        if marker.stat().st_size < 1 << 20:
            found = json.loads(marker.read_text(encoding="utf-8")).get("splits")
            splits = [str(x) for x in found] if isinstance(found, list) else []
    except (OSError, ValueError, AttributeError):
        pass
    splits = splits or sorted(d.name for d in folder.iterdir() if d.is_dir()
                              and not d.name.startswith((".", "_")))
    example = f", e.g. {shown}/{printable(splits[0], 40)}" if splits else ""
    raise LineageInputError(
        f"{shown} is a DatasetDict saved by datasets.save_to_disk with splits "
        f"{_names(splits) or '(none found)'}: ingest one split's folder{example}")


def inspect(path: Path, relpath: str) -> FileInfo:
    """Read a whole file once: its row count, schema and hash; LineageInputError if unreadable."""
    fmt = format_of(path)
    shown = printable(relpath, 200)
    if fmt is None:
        raise LineageInputError(f"{shown}: unsupported file type")
    try:
        digest, size = sha256_file(path)
    except OSError as exc:
        raise LineageInputError(f"{shown} cannot be read: {exc.strerror or _first_line(exc)}") from None
    rows = 0
    schema: pa.Schema | None = None
    try:
        for batch in iter_file_batches(path, fmt):
            schema = schema or batch.schema
            rows += batch.num_rows
        if schema is None:
            schema = empty_schema(path, fmt)
    except LineageInputError:
        raise
    except InputLimitError as exc:
        raise LineageInputError(f"{shown}: {exc}") from None
    except (pa.ArrowException, OSError, ValueError, TypeError, NotImplementedError, UnicodeError,
            OverflowError, MemoryError) as exc:
        if codec(fmt)[0] == "jsonl" and "Column() changed from object to" in str(exc):
            raise LineageInputError(f"{shown} is not JSON Lines: each line must hold one JSON "
                                    f"object ({_first_line(exc)})") from None
        raise LineageInputError(f"{shown} is not a readable {fmt} file: {_first_line(exc)}") from None
    _check_schema(schema, shown, fmt)
    try:
        again = sha256_file(path)[0]
    except OSError as exc:
        raise LineageInputError(f"{shown} cannot be read: {exc.strerror or _first_line(exc)}") from None
    if again != digest:
        raise LineageInputError(f"{shown} changed while it was being read; try again once it is complete")
    return FileInfo(path, relpath, fmt, digest, size, rows, schema)


def _check_schema(schema: pa.Schema, shown: str, fmt: str) -> None:
    names = schema.names
    dupes = sorted({n for n in names if names.count(n) > 1})
    if "" in dupes:
        raise LineageInputError(f"{shown} has {names.count('')} columns without a name; name them")
    if dupes:
        raise LineageInputError(f"{shown} has duplicate column names: {_names(dupes)}")
    if not names:
        raise LineageInputError(f"{shown} has no columns")
    if codec(fmt)[0] in TEXT_FORMATS:
        binary = [f.name for f in schema if pa.types.is_binary(f.type)]
        if binary:
            raise LineageInputError(
                f"{shown}: column '{printable(binary[0], 60)}' holds text that is not valid UTF-8"
            )


def unify(infos: list[FileInfo]) -> pa.Schema:
    """The one schema all files share; LineageInputError naming the odd file if none."""
    first = infos[0]
    for info in infos[1:]:
        if info.schema.names != first.schema.names:
            raise LineageInputError(
                f"{printable(info.relpath)} has columns {_names(info.schema.names)} but "
                f"{printable(first.relpath)} has {_names(first.schema.names)}: all files of a "
                "dataset need the same columns"
            )
    try:
        return pa.unify_schemas([i.schema for i in infos], promote_options="permissive")
    except (pa.ArrowException, TypeError) as exc:
        raise LineageInputError(f"the files' column types do not agree: {_first_line(exc)}") from None


def check_partitions(infos: list[FileInfo]) -> None:
    """Refuse Hive-style partition folders (``label=cat/part-0.parquet``) whose column is
    not inside the files: Spark's ``partitionBy`` keeps it only in the folder names, and
    reading the files alone would silently lose it."""
    for info in infos:
        for folder in info.relpath.split("/")[:-1]:
            key, eq, _ = folder.partition("=")
            if eq and key and key not in info.schema.names:
                raise LineageInputError(
                    f"{printable(info.relpath)} sits in the partition folder "
                    f"'{printable(folder, 60)}' but has no column '{printable(key, 40)}': that "
                    "column lives only in the folder names (Spark partitionBy); write the table "
                    "without partitionBy, or keep the column in the files")


def schema_json(schema: pa.Schema) -> list[dict[str, str]]:
    return [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in schema]


def schema_fingerprint(schema: pa.Schema) -> str:
    body = json.dumps([[f["name"], f["type"]] for f in schema_json(schema)], separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def content_hash(infos: list[FileInfo]) -> str:
    """A version's identity: the hash of its sorted (relpath, file hash) listing."""
    listing = "".join(f"{i.relpath}\0{i.sha256}\n" for i in sorted(infos, key=lambda i: i.relpath))
    return hashlib.sha256(listing.encode()).hexdigest()
