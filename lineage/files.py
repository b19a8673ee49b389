"""Finding, checking and reading the data files of a dataset version.

Supported formats: Parquet (``.parquet``, ``.pq``), CSV (``.csv``), JSON Lines
(``.jsonl``, ``.ndjson``) and Arrow IPC (``.arrow``, ``.feather``, ``.ipc``: the IPC
file format, Feather, and the IPC stream format that ``datasets.save_to_disk``
writes). Every file is read end to end in batches when it is inspected, so
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

import functools
import hashlib
import io
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from lineage import images
from lineage.errors import LineageInputError
from lineage.messages import first_line as _first_line
from lineage.messages import names as _names
from lineage.messages import printable
from lineage.store import sha256_file

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl",
           ".ndjson": "jsonl", ".arrow": "arrow", ".feather": "arrow", ".ipc": "arrow"}
TEXT_FORMATS = ("csv", "tsv", "jsonl")
# Text files may be compressed: the format is then e.g. "csv.gz" (and so is the stored
# blob's extension, which other readers go by).
COMPRESSION = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd"}
SUPPORTED = (".parquet, .csv, .tsv, .jsonl (also .gz, .bz2, .zst), .arrow or .feather files, "
             "or image files in class folders")
BATCH_ROWS = 65_536
# A Parquet batch holds at most about this many (uncompressed) bytes: a table of
# embedded images must not be read 65,536 rows at a time.
BATCH_BYTES = 64 << 20


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
        except (pa.ArrowException, OSError, ValueError, TypeError, UnicodeError) as exc:
            raise LineageInputError(f"{printable(rel)} is not a readable {fmt} file: {_first_line(exc)}") from None
    if len(tables) == 1:
        return tables[0]
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowException, TypeError) as exc:
        raise LineageInputError(f"the files' columns do not agree: {_first_line(exc)}") from None


def format_of(path: Path) -> str | None:
    last = path.suffix.lower()
    if last in COMPRESSION:
        inner = FORMATS.get(Path(path.stem).suffix.lower())
        return f"{inner}{last}" if inner in TEXT_FORMATS else None
    return FORMATS.get(last)


def _codec(fmt: str) -> tuple[str, str | None]:
    """("csv", "gzip") for "csv.gz"; ("parquet", None) for "parquet"."""
    base, dot, ext = fmt.partition(".")
    return base, (COMPRESSION.get(f".{ext}") if dot else None)


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
            if entry.is_symlink() and not _inside(entry.resolve(), resolved):
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


def iter_file_batches(path: Path, fmt: str, *, batch_rows: int = BATCH_ROWS,
                      columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """Record batches of one file, read with bounded memory (only ``columns`` if given)."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        with pq.ParquetFile(path) as pf:
            rows = _parquet_batch_rows(pf.metadata, batch_rows)
            yield from pf.iter_batches(batch_size=rows, columns=columns)
    elif _codec(fmt)[0] in ("csv", "tsv"):
        yield from _open_csv(path, fmt, columns=columns, column_types=_csv_column_types(path, fmt))
    elif _codec(fmt)[0] == "jsonl":
        types, order = _jsonl_column_types(path, fmt)
        for batch in _open_jsonl(path, fmt, types):
            if columns is None and types:  # explicit columns come first: restore the order
                names = batch.schema.names
                columns_here = [n for n in order if n in names] + [n for n in names if n not in order]
                yield batch.select(columns_here)
            else:
                yield batch.select(columns) if columns is not None else batch
    elif fmt == "arrow":
        yield from _arrow_batches(path, batch_rows, columns)
    else:  # pragma: no cover - callers check format_of first
        raise LineageInputError(f"unsupported format {fmt}")


CSV_BLOCK = 1 << 24
_CSV_CONVERSION = re.compile(r"In CSV column #(\d+): CSV conversion error to [^:]*: invalid value '(.*)'",
                             re.S)


def _source(path: Path, fmt: str):
    """The file itself, or a decompressing stream over it for "csv.gz" and the like."""
    codec = _codec(fmt)[1]
    return pa.input_stream(str(path), compression=codec) if codec else path


def _open_csv(path: Path, fmt: str = "csv", *, columns: list[str] | None = None,
              column_types: dict[str, pa.DataType] | None = None):
    import pyarrow.csv as pcsv

    convert = pcsv.ConvertOptions(include_columns=columns or [], column_types=column_types or {})
    # Quoted fields may hold line breaks (any spreadsheet export with a notes column);
    # without newlines_in_values the reader fails once such a field straddles a block.
    parse = pcsv.ParseOptions(delimiter="\t" if _codec(fmt)[0] == "tsv" else ",",
                              newlines_in_values=True)
    return pcsv.open_csv(_source(path, fmt), read_options=pcsv.ReadOptions(block_size=CSV_BLOCK),
                         parse_options=parse, convert_options=convert)


def _csv_column_types(path: Path, fmt: str = "csv") -> dict[str, pa.DataType]:
    """Column types for a CSV longer than one read block, where the reader's guess from the
    first block is too narrow (integers, then ``1.5`` or a word 20 MB later)."""
    try:
        st = path.stat()
    except OSError:
        return {}
    # One block: the reader's guess saw every value (compressed text: about a tenth).
    if st.st_size <= (CSV_BLOCK // 10 if _codec(fmt)[1] else CSV_BLOCK):
        return {}
    return dict(_csv_widened(str(path), fmt, st.st_size, st.st_mtime_ns))


@functools.lru_cache(maxsize=32)
def _csv_widened(path: str, fmt: str, size: int, mtime_ns: int
                 ) -> tuple[tuple[str, pa.DataType], ...]:
    """One pass over the file per column whose guessed type has to widen: null -> int64 ->
    float64 -> string. Any other error is left for the real read to report."""
    try:
        guessed = _open_csv(Path(path), fmt).schema
    except (pa.ArrowException, OSError):
        return ()
    names = guessed.names
    types: dict[str, pa.DataType] = {}
    for _ in range(3 * len(names) + 1):
        try:
            for _batch in _open_csv(Path(path), fmt, column_types=types):
                pass
            return tuple(types.items())
        except (pa.ArrowException, OSError) as exc:
            match = _CSV_CONVERSION.search(str(exc))
            if match is None or int(match.group(1)) >= len(names):
                return tuple(types.items())
            name = names[int(match.group(1))]
            wider = _wider(types.get(name, guessed.field(name).type), match.group(2))
            if wider is None:
                return tuple(types.items())
            types[name] = wider
    return tuple(types.items())


def _open_jsonl(path: Path, fmt: str, column_types: dict[str, pa.DataType] | None = None):
    import pyarrow.json as pjson

    parse = pjson.ParseOptions(explicit_schema=pa.schema(list((column_types or {}).items())),
                               unexpected_field_behavior="infer")
    return pjson.open_json(_source(path, fmt), read_options=pjson.ReadOptions(block_size=CSV_BLOCK),
                           parse_options=parse)


def _jsonl_column_types(path: Path, fmt: str) -> tuple[dict[str, pa.DataType], list[str]]:
    """(float64 for the integer-looking columns of a JSON Lines file longer than one read
    block that hold a fraction further on (``3`` ... ``3.5``, as JavaScript writes them),
    the file's column order)."""
    try:
        st = path.stat()
    except OSError:
        return {}, []
    if st.st_size <= (CSV_BLOCK // 10 if _codec(fmt)[1] else CSV_BLOCK):
        return {}, []
    types, order = _jsonl_widened(str(path), fmt, st.st_size, st.st_mtime_ns)
    return dict(types), list(order)


@functools.lru_cache(maxsize=32)
def _jsonl_widened(path: str, fmt: str, size: int, mtime_ns: int):
    none = ((), ())
    guessed = None
    try:
        reader = _open_jsonl(Path(path), fmt)
        guessed = reader.schema
        for _batch in reader:
            pass
        return none
    except (pa.ArrowException, OSError) as exc:
        if guessed is None or "Failed to convert JSON to int64" not in str(exc):
            return none  # not a widening problem: the real read reports it
    # pyarrow does not say which column: find them with one plain pass
    ints = {f.name for f in guessed if pa.types.is_integer(f.type)}
    found: set[str] = set()
    try:
        with pa.input_stream(path, compression=_codec(fmt)[1]) as raw, \
                io.BufferedReader(raw, buffer_size=1 << 20) as stream:
            for line in stream:
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                if isinstance(row, dict):
                    found.update(c for c in ints - found if isinstance(row.get(c), float))
                if found == ints:
                    break
    except (pa.ArrowException, OSError, ValueError):
        return none
    return tuple((c, pa.float64()) for c in sorted(found)), tuple(guessed.names)


def _wider(current: pa.DataType, value: str) -> pa.DataType | None:
    """The next type up that can hold ``value`` (None if there is none)."""
    ladder = [pa.null(), pa.int64(), pa.float64(), pa.string()]
    start = ladder.index(current) + 1 if current in ladder else len(ladder) - 1
    for candidate in ladder[start:]:
        if candidate == pa.int64() and not re.fullmatch(r"\s*[-+]?\d+\s*", value):
            continue
        if candidate == pa.float64():
            try:
                float(value)
            except ValueError:
                continue
        return candidate
    return None


def _parquet_batch_rows(meta, batch_rows: int) -> int:
    """``batch_rows``, fewer where rows are wide (embedded images), so a batch stays near
    :data:`BATCH_BYTES`."""
    widest = 0.0
    for i in range(meta.num_row_groups):
        rg = meta.row_group(i)
        if rg.num_rows:
            widest = max(widest, rg.total_byte_size / rg.num_rows)
    if widest <= 0:
        return batch_rows
    return max(1, min(batch_rows, int(BATCH_BYTES // widest)))


_ARROW_FILE_MAGIC = b"ARROW1"
_FEATHER_V1_MAGIC = b"FEA1"


def _arrow_kind(path: Path) -> str:
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head.startswith(_ARROW_FILE_MAGIC):
        return "file"  # the IPC file format, also Feather v2
    if head.startswith(_FEATHER_V1_MAGIC):
        return "feather1"
    return "stream"  # the IPC stream format (datasets.save_to_disk)


def _arrow_batches(path: Path, batch_rows: int, columns: list[str] | None
                   ) -> Iterator[pa.RecordBatch]:
    """Batches of an Arrow IPC file or stream, memory-mapped, at most ``batch_rows`` long."""
    kind = _arrow_kind(path)
    if kind == "feather1":  # legacy format without batches: small files, read whole
        yield from _feather_v1(path, columns).to_batches(max_chunksize=batch_rows)
        return
    with pa.memory_map(str(path)) as source:
        if kind == "file":
            reader = pa.ipc.open_file(source)
            batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
        else:
            batches = iter(pa.ipc.open_stream(source))
        for batch in batches:
            if columns is not None:
                batch = batch.select(columns)
            for start in range(0, max(batch.num_rows, 1), batch_rows):
                yield batch.slice(start, batch_rows)


def _feather_v1(path: Path, columns: list[str] | None) -> pa.Table:
    import warnings

    import pyarrow.feather as feather

    with warnings.catch_warnings():  # deprecated, still written by old pandas/R code
        warnings.simplefilter("ignore", DeprecationWarning)
        return feather.read_table(path, columns=columns)


def _arrow_schema(path: Path) -> pa.Schema:
    kind = _arrow_kind(path)
    if kind == "feather1":
        return _feather_v1(path, None).schema
    with pa.memory_map(str(path)) as source:
        reader = pa.ipc.open_file(source) if kind == "file" else pa.ipc.open_stream(source)
        return reader.schema


def file_schema(path: Path, fmt: str) -> pa.Schema:
    """The schema a stored file's batches have (Parquet, Arrow: from the file's header or
    footer, no data read)."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.read_schema(path)
    if fmt == "arrow":
        return _arrow_schema(path)
    for batch in iter_file_batches(path, fmt):
        return batch.schema
    return _empty_schema(path, fmt)


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
            schema = _empty_schema(path, fmt)
    except LineageInputError:
        raise
    except (pa.ArrowException, OSError, ValueError, TypeError, NotImplementedError, UnicodeError,
            OverflowError, MemoryError) as exc:
        if _codec(fmt)[0] == "jsonl" and "Column() changed from object to" in str(exc):
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


def _empty_schema(path: Path, fmt: str) -> pa.Schema:
    """The schema of a file with no rows: a header-only CSV still names its columns."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.read_schema(path)
    if fmt == "arrow":
        return _arrow_schema(path)
    if _codec(fmt)[0] in ("csv", "tsv"):
        return _open_csv(path, fmt).schema
    return pa.schema([])


def _check_schema(schema: pa.Schema, shown: str, fmt: str) -> None:
    names = schema.names
    dupes = sorted({n for n in names if names.count(n) > 1})
    if "" in dupes:
        raise LineageInputError(f"{shown} has {names.count('')} columns without a name; name them")
    if dupes:
        raise LineageInputError(f"{shown} has duplicate column names: {_names(dupes)}")
    if not names:
        raise LineageInputError(f"{shown} has no columns")
    if _codec(fmt)[0] in TEXT_FORMATS:
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
