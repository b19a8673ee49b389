"""Data files as Arrow record batches: formats, compression, bounded-memory readers.

The one place that knows how a data file is read, shared by the system of record
(:mod:`lineage.files`: ingest, the content store) and the checks (:mod:`checks.validation`),
which may not import each other. Pure: imports only pyarrow.

Formats: Parquet (``.parquet``, ``.pq``), CSV (``.csv``, ``.tsv``), JSON Lines
(``.jsonl``, ``.ndjson``; text formats also compressed: ``.gz``, ``.bz2``, ``.zst``) and
Arrow IPC (``.arrow``, ``.feather``, ``.ipc``: the IPC file format, Feather v1 and v2, and
the IPC stream format that ``datasets.save_to_disk`` writes).

CSV and JSON Lines longer than one read block get their column types from the whole
file, not the first block (:func:`iter_file_batches`): integers that turn into
fractions or words further on widen the column instead of failing the read.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl",
           ".ndjson": "jsonl", ".arrow": "arrow", ".feather": "arrow", ".ipc": "arrow"}
TEXT_FORMATS = ("csv", "tsv", "jsonl")
# Text files may be compressed: the format is then e.g. "csv.gz" (and so is the stored
# blob's extension, which other readers go by).
COMPRESSION = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd"}
BATCH_ROWS = 65_536
# A Parquet batch holds at most about this many (uncompressed) bytes: a table of
# embedded images must not be read 65,536 rows at a time.
BATCH_BYTES = 64 << 20


class InputLimitError(ValueError):
    """A file past one of the input limits below; the message names the limit and where
    the file broke it (the row, the number of columns)."""


#: The widest table read. Wider files are refused at once, from their header or footer,
#: before any row is parsed: reading and screening cost grows with every column (a
#: 100,000-column CSV took 102 s to ingest and over 15 minutes to screen), and the
#: screens project any table wider than 512 columns onto 512 components anyway.
MAX_COLUMNS = 10_000


def check_width(n_columns: int) -> None:
    if n_columns > MAX_COLUMNS:
        raise InputLimitError(
            f"{n_columns:,} columns, more than the {MAX_COLUMNS:,} a table may have; select the "
            "columns that matter, or store many features as one list/embedding column")


def format_of(path: Path) -> str | None:
    """The format of a data file from its name ("parquet", "csv", "csv.gz", "jsonl", "arrow" ...),
    None if it is not one."""
    last = path.suffix.lower()
    if last in COMPRESSION:
        inner = FORMATS.get(Path(path.stem).suffix.lower())
        return f"{inner}{last}" if inner in TEXT_FORMATS else None
    return FORMATS.get(last)


def codec(fmt: str) -> tuple[str, str | None]:
    """("csv", "gzip") for "csv.gz"; ("parquet", None) for "parquet"."""
    base, dot, ext = fmt.partition(".")
    return base, (COMPRESSION.get(f".{ext}") if dot else None)


def iter_file_batches(path: Path, fmt: str, *, batch_rows: int = BATCH_ROWS,
                      columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """Record batches of one file, read with bounded memory (only ``columns`` if given).

    InputLimitError for a file past :data:`MAX_COLUMNS` (found from its header or footer,
    before any row is parsed) or with a CSV/JSON Lines row longer than :data:`MAX_ROW_BYTES`."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        # pre_buffer=False: pyarrow's default (True) buffers every column chunk of the row
        # groups it iterates, the whole file for a whole-file read (a 3.8 GB file took
        # 4.2 GB to ingest); without it memory is one batch and one row group's pages
        with pq.ParquetFile(path, pre_buffer=False) as pf:
            check_width(len(pf.schema_arrow))
            rows = _parquet_batch_rows(pf.metadata, batch_rows)
            yield from pf.iter_batches(batch_size=rows, columns=columns)
    elif codec(fmt)[0] in ("csv", "tsv"):
        check_width(_csv_header_width(path, fmt))
        with _rows_fit_in_a_block(path, fmt):
            yield from _open_csv(path, fmt, columns=columns, column_types=_csv_column_types(path, fmt))
    elif codec(fmt)[0] == "jsonl":
        check_width(_jsonl_first_width(path, fmt))
        with _rows_fit_in_a_block(path, fmt):
            types, order = _jsonl_column_types(path, fmt)
            for batch in _open_jsonl(path, fmt, types):
                check_width(batch.num_columns)  # later lines may bring new keys
                if columns is None and types:  # explicit columns come first: restore the order
                    names = batch.schema.names
                    columns_here = [n for n in order if n in names] + [n for n in names if n not in order]
                    yield batch.select(columns_here)
                else:
                    yield batch.select(columns) if columns is not None else batch
    elif fmt == "arrow":
        check_width(len(arrow_schema(path)))
        yield from arrow_batches(path, batch_rows, columns)
    else:  # pragma: no cover - callers check format_of first
        raise ValueError(f"unsupported format {fmt}")


#: The CSV and JSON Lines readers parse a file in blocks of this many bytes. A row up to
#: one block long is always read; a longer one may straddle three blocks, which the reader
#: cannot hold, and is then refused naming the row and this limit.
MAX_ROW_BYTES = 1 << 24


def _first_line(path: Path, fmt: str) -> bytes | None:
    """The file's first line (without its end), None if it is longer than MAX_ROW_BYTES."""
    with _open_binary(path, fmt) as fh:
        line = fh.readline(MAX_ROW_BYTES + 1)
    if len(line) > MAX_ROW_BYTES:
        return None
    return line.rstrip(b"\r\n")


def _open_binary(path: Path, fmt: str):
    compression = codec(fmt)[1]
    if compression:
        return io.BufferedReader(pa.input_stream(str(path), compression=compression), buffer_size=1 << 20)
    return open(path, "rb")


def _csv_header_width(path: Path, fmt: str) -> int:
    """How many columns the header names (0 if unreadable: the reader then says why)."""
    import csv

    try:
        line = _first_line(path, fmt)
    except (OSError, pa.ArrowException):
        return 0
    if line is None:
        raise InputLimitError(f"the header is longer than {MAX_ROW_BYTES >> 20} MiB, the most one "
                              "row may hold")
    text = line.decode("utf-8", errors="replace").lstrip("\ufeff")
    delimiter = "\t" if codec(fmt)[0] == "tsv" else ","
    try:
        return len(next(csv.reader([text], delimiter=delimiter), []))
    except csv.Error:  # a header with a quoted line break: count the separators instead
        return text.count(delimiter) + 1


def _jsonl_first_width(path: Path, fmt: str) -> int:
    try:
        line = _first_line(path, fmt)
    except (OSError, pa.ArrowException):
        return 0
    if line is None:
        raise InputLimitError(f"line 1 is longer than {MAX_ROW_BYTES >> 20} MiB, the most one row may hold")
    try:
        first = json.loads(line)
    except ValueError:
        return 0
    return len(first) if isinstance(first, dict) else 0


@contextlib.contextmanager
def _rows_fit_in_a_block(path: Path, fmt: str) -> Iterator[None]:
    """Turns the reader's "straddling object straddles two block boundaries" (a row longer
    than its block) into InputLimitError naming the row and :data:`MAX_ROW_BYTES`."""
    try:
        yield
    except pa.ArrowInvalid as exc:
        if "straddl" not in str(exc):
            raise
        where = _long_row(path, fmt)
        raise InputLimitError(
            f"{where or 'a row'} is longer than {MAX_ROW_BYTES >> 20} MiB and too long to read: a row "
            f"(and so a cell) of a {codec(fmt)[0].upper()} file is read up to {MAX_ROW_BYTES >> 20} MiB; "
            "store such values in a Parquet file, or as files beside the table") from None


def _long_row(path: Path, fmt: str) -> str | None:
    """'row N' (CSV: N counts data rows, the header is row 0) or 'line N' (JSON Lines) of
    the first row longer than MAX_ROW_BYTES; None if none is found."""
    import csv

    try:
        with _open_binary(path, fmt) as fh:
            if codec(fmt)[0] == "jsonl":
                number = 0
                while True:
                    line = fh.readline(MAX_ROW_BYTES + 1)
                    if not line:
                        return None
                    number += 1
                    if len(line) > MAX_ROW_BYTES:
                        return f"line {number}"
                    if not line.endswith(b"\n"):
                        return None
            text = io.TextIOWrapper(fh, encoding="utf-8", errors="replace", newline="")
            reader = csv.reader(text, delimiter="\t" if codec(fmt)[0] == "tsv" else ",")
            saved = csv.field_size_limit()
            csv.field_size_limit(MAX_ROW_BYTES)
            number = -1
            try:
                for number, row in enumerate(reader):
                    if sum(len(v) + 1 for v in row) > MAX_ROW_BYTES:
                        return f"row {number}"
            except csv.Error:  # one field past the limit: the row being read
                return f"row {number + 1}"
            finally:
                csv.field_size_limit(saved)
    except (OSError, pa.ArrowException, ValueError):
        return None
    return None


CSV_BLOCK = 1 << 24
_CSV_CONVERSION = re.compile(r"In CSV column #(\d+): CSV conversion error to [^:]*: invalid value '(.*)'",
                             re.S)


def _source(path: Path, fmt: str):
    """The file itself, or a decompressing stream over it for "csv.gz" and the like."""
    compression = codec(fmt)[1]
    return pa.input_stream(str(path), compression=compression) if compression else path


def _open_csv(path: Path, fmt: str = "csv", *, columns: list[str] | None = None,
              column_types: dict[str, pa.DataType] | None = None):
    import pyarrow.csv as pcsv

    convert = pcsv.ConvertOptions(include_columns=columns or [], column_types=column_types or {})
    # Quoted fields may hold line breaks (any spreadsheet export with a notes column);
    # without newlines_in_values the reader fails once such a field straddles a block.
    parse = pcsv.ParseOptions(delimiter="\t" if codec(fmt)[0] == "tsv" else ",",
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
    if st.st_size <= (CSV_BLOCK // 10 if codec(fmt)[1] else CSV_BLOCK):
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
    if st.st_size <= (CSV_BLOCK // 10 if codec(fmt)[1] else CSV_BLOCK):
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
        with pa.input_stream(path, compression=codec(fmt)[1]) as raw, \
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


def arrow_batches(path: Path, batch_rows: int, columns: list[str] | None
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


def arrow_schema(path: Path) -> pa.Schema:
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
        return arrow_schema(path)
    for batch in iter_file_batches(path, fmt):
        return batch.schema
    return empty_schema(path, fmt)


def empty_schema(path: Path, fmt: str) -> pa.Schema:
    """The schema of a file with no rows: a header-only CSV still names its columns."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.read_schema(path)
    if fmt == "arrow":
        return arrow_schema(path)
    if codec(fmt)[0] in ("csv", "tsv"):
        return _open_csv(path, fmt).schema
    return pa.schema([])


def parquet_row_group_batches(path: Path, columns: list[str] | None, batch_rows: int
                              ) -> Iterator[pa.RecordBatch]:
    """A Parquet file's batches, one ``iter_batches`` per row group.

    A single generator over the whole file keeps the buffers of every row group read so
    far alive until it is exhausted, which breaks bounded memory on files of many large
    row groups; this one holds one row group at a time.
    """
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    for group in range(pf.metadata.num_row_groups):
        yield from pf.iter_batches(batch_size=batch_rows, row_groups=[group], columns=columns)
