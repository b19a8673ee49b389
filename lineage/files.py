"""Finding, checking and reading the data files of a dataset version.

Supported formats: Parquet (``.parquet``, ``.pq``), CSV (``.csv``) and JSON Lines
(``.jsonl``, ``.ndjson``). Every file is read end to end in batches when it is
inspected, so corruption anywhere in it is found before anything is stored, with
memory bounded by the batch size.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from lineage.errors import LineageInputError
from lineage.store import sha256_file

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl",
           ".ndjson": "jsonl"}
BATCH_ROWS = 65_536


@dataclass(frozen=True)
class FileInfo:
    path: Path  # absolute path of the original
    relpath: str  # path inside the dataset (posix), the name recorded in lineage
    format: str
    sha256: str
    size_bytes: int
    row_count: int
    schema: pa.Schema


def format_of(path: Path) -> str | None:
    return FORMATS.get(path.suffix.lower())


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def collect(path: str | os.PathLike[str], *, data_root: str | os.PathLike[str] | None = None
            ) -> list[tuple[Path, str]]:
    """The data files at ``path`` (a file or a folder) as (absolute path, relpath) pairs.

    Refuses a missing path, a path outside ``data_root`` (when given), a symlink
    that points outside the dataset folder, and a folder with no data files.
    """
    given = Path(path)
    if not given.exists():
        if given.is_symlink():
            raise LineageInputError(f"{given} is a broken symlink")
        raise LineageInputError(f"{given} does not exist")
    resolved = given.resolve()
    if data_root is not None:
        root = Path(data_root).resolve()
        if not _inside(resolved, root):
            raise LineageInputError(f"{given} is outside the data root {root}")
    if resolved.exists() and not resolved.is_dir() and not resolved.is_file():
        raise LineageInputError(f"{given} is not a regular file (a pipe or device cannot be ingested)")
    if resolved.is_file():
        if format_of(resolved) is None:
            raise LineageInputError(
                f"{given} is not a supported data file (expected .parquet, .csv or .jsonl)"
            )
        return [(resolved, resolved.name)]
    found: list[tuple[Path, str]] = []
    for dirpath, dirnames, filenames in os.walk(resolved, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(dirnames + filenames):
            entry = Path(dirpath) / name
            if entry.is_symlink() and not _inside(entry.resolve(), resolved):
                rel = entry.relative_to(resolved).as_posix()
                raise LineageInputError(f"{rel} in {given} is a symlink that points outside it")
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            entry = Path(dirpath) / name
            if format_of(entry) is None:
                continue
            if not entry.is_file():  # a pipe would block the reader forever
                rel = entry.relative_to(resolved).as_posix()
                raise LineageInputError(f"{rel} in {given} is not a regular file")
            found.append((entry.resolve(), entry.relative_to(resolved).as_posix()))
    if not found:
        raise LineageInputError(f"{given} holds no data files (.parquet, .csv or .jsonl)")
    return found


def iter_file_batches(path: Path, fmt: str, *, batch_rows: int = BATCH_ROWS,
                      columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """Record batches of one file, read with bounded memory (only ``columns`` if given)."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        with pq.ParquetFile(path) as pf:
            yield from pf.iter_batches(batch_size=batch_rows, columns=columns)
    elif fmt == "csv":
        import pyarrow.csv as pcsv

        convert = pcsv.ConvertOptions(include_columns=columns) if columns is not None else None
        reader = pcsv.open_csv(path, read_options=pcsv.ReadOptions(block_size=1 << 24),
                               convert_options=convert)
        yield from reader
    elif fmt == "jsonl":
        import pyarrow.json as pjson

        reader = pjson.open_json(path, read_options=pjson.ReadOptions(block_size=1 << 24))
        for batch in reader:
            yield batch.select(columns) if columns is not None else batch
    else:  # pragma: no cover - callers check format_of first
        raise LineageInputError(f"unsupported format {fmt}")


def file_schema(path: Path, fmt: str) -> pa.Schema:
    """The schema a stored file's batches have (Parquet: from the footer, no data read)."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.read_schema(path)
    for batch in iter_file_batches(path, fmt):
        return batch.schema
    return pa.schema([])


def inspect(path: Path, relpath: str) -> FileInfo:
    """Read a whole file once: its row count, schema and hash; LineageInputError if unreadable."""
    fmt = format_of(path)
    if fmt is None:
        raise LineageInputError(f"{relpath}: unsupported file type")
    try:
        digest, size = sha256_file(path)
    except OSError as exc:
        raise LineageInputError(f"{relpath} cannot be read: {exc.strerror or _first_line(exc)}") from None
    rows = 0
    schema: pa.Schema | None = None
    try:
        for batch in iter_file_batches(path, fmt):
            schema = schema or batch.schema
            rows += batch.num_rows
        if schema is None:
            schema = _empty_schema(path, fmt)
    except LineageInputError:
        raise
    except (pa.ArrowException, OSError, ValueError, TypeError, NotImplementedError, UnicodeError,
            OverflowError, MemoryError) as exc:
        raise LineageInputError(f"{relpath} is not a readable {fmt} file: {_first_line(exc)}") from None
    _check_schema(schema, relpath, fmt)
    try:
        again = sha256_file(path)[0]
    except OSError as exc:
        raise LineageInputError(f"{relpath} cannot be read: {exc.strerror or _first_line(exc)}") from None
    if again != digest:
        raise LineageInputError(f"{relpath} changed while it was being read; try again once it is complete")
    return FileInfo(path, relpath, fmt, digest, size, rows, schema)


def _empty_schema(path: Path, fmt: str) -> pa.Schema:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.read_schema(path)
    return pa.schema([])


def _check_schema(schema: pa.Schema, relpath: str, fmt: str) -> None:
    names = schema.names
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise LineageInputError(f"{relpath} has duplicate column names: {', '.join(dupes)}")
    if not names:
        raise LineageInputError(f"{relpath} has no columns")
    if fmt in ("csv", "jsonl"):
        binary = [f.name for f in schema if pa.types.is_binary(f.type)]
        if binary:
            raise LineageInputError(
                f"{relpath}: column {binary[0]!r} holds text that is not valid UTF-8"
            )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def unify(infos: list[FileInfo]) -> pa.Schema:
    """The one schema all files share; LineageInputError naming the odd file if none."""
    first = infos[0]
    for info in infos[1:]:
        if info.schema.names != first.schema.names:
            raise LineageInputError(
                f"{info.relpath} has columns {info.schema.names[:8]} but {first.relpath} has "
                f"{first.schema.names[:8]}: all files of a dataset need the same columns"
            )
    try:
        return pa.unify_schemas([i.schema for i in infos], promote_options="permissive")
    except (pa.ArrowException, TypeError) as exc:
        raise LineageInputError(f"the files' column types do not agree: {_first_line(exc)}") from None


def schema_json(schema: pa.Schema) -> list[dict[str, str]]:
    return [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in schema]


def schema_fingerprint(schema: pa.Schema) -> str:
    body = json.dumps([[f["name"], f["type"]] for f in schema_json(schema)], separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def content_hash(infos: list[FileInfo]) -> str:
    """A version's identity: the hash of its sorted (relpath, file hash) listing."""
    listing = "".join(f"{i.relpath}\0{i.sha256}\n" for i in sorted(infos, key=lambda i: i.relpath))
    return hashlib.sha256(listing.encode()).hexdigest()
