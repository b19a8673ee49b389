"""Stream the files of one dataset version as Arrow tables of bounded size.

Which files are data and how each format is opened is :mod:`datafiles`, the reader
ingest uses too, so validation accepts exactly the formats ingest stores. What is
validation's own: text types are inferred from the first block and a later block that
disagrees is refused as mixed types (ingest widens the column instead), every text byte
is checked to be UTF-8 (naming the line), and batches span file boundaries.

All files of a version together form the dataset: they must share their column names, and
their column types must unify (int64 with float64 gives float64; a number with a string
does not, and is reported as mixed types). Parquet is read with
``ParquetFile.iter_batches``, CSV with ``pyarrow.csv.open_csv`` and JSON Lines with
``pyarrow.json.open_json``, so memory stays bounded by ``batch_rows`` whatever the size.
Text must be UTF-8: CSV and JSONL bytes are checked (pyarrow would otherwise read bad
bytes as a ``binary`` column or replace them silently), Parquet strings are validated.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

import datafiles

from ._outcome import ValidationInputError

_BLOCK = 16 << 20


@dataclass(frozen=True)
class _Source:
    path: Path
    fmt: str  # "parquet" | "arrow" | a text format as datafiles names it ("csv", "tsv.gz", "jsonl" ...)

    @property
    def kind(self) -> str:
        """"parquet", "arrow", "csv" (also TSV) or "jsonl"."""
        base = datafiles.codec(self.fmt)[0]
        return "csv" if base == "tsv" else base

    @property
    def delimiter(self) -> str:
        return "\t" if datafiles.codec(self.fmt)[0] == "tsv" else ","


def _source(path: str | Path) -> _Source:
    p = Path(path)
    if not p.is_file():
        raise ValidationInputError(f"data file {p} does not exist")
    fmt = datafiles.format_of(p)
    if fmt is None:
        raise ValidationInputError(
            f"data file {p} has an unknown format {p.suffix.lower()!r}: expected Parquet (.parquet), "
            f"CSV (.csv, .tsv) or JSON Lines (.jsonl, .ndjson), optionally compressed, or Arrow "
            f"IPC (.arrow, .feather)"
        )
    return _Source(p, fmt)


def _check_utf8(src: _Source) -> None:
    """Refuse a text file that is not UTF-8, naming the line of the first bad byte."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    offset = 0
    line = 1
    with pa.input_stream(str(src.path), compression=datafiles.codec(src.fmt)[1]) as f:
        while True:
            chunk = f.read(4 << 20)
            final = not chunk
            try:
                decoder.decode(chunk, final=final)
            except UnicodeDecodeError as exc:
                bad = offset + exc.start
                line += chunk[: max(exc.start, 0)].count(b"\n")
                raise ValidationInputError(
                    f"data file {src.path} is not valid UTF-8 text: bad byte at offset {bad} "
                    f"(line {line}); re-encode it as UTF-8"
                ) from None
            if final:
                return
            offset += len(chunk)
            line += chunk.count(b"\n")


def _read_schema(src: _Source) -> pa.Schema:
    try:
        if src.kind == "parquet":
            return pq.read_schema(src.path).remove_metadata()
        if src.kind == "arrow":
            return datafiles.arrow_schema(src.path).remove_metadata()
        _check_utf8(src)
        reader = _open_text(src, schema=None, columns=None)
        try:
            schema = reader.schema
        finally:
            reader.close()
    except ValidationInputError:
        raise
    except (pa.ArrowException, OSError) as exc:
        raise _read_error(src, exc) from None
    for field in schema:
        if pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type):
            raise ValidationInputError(
                f"column {field.name!r} of {src.path} holds text that is not valid UTF-8"
            )
    return schema


def _open_text(src: _Source, *, schema: pa.Schema | None, columns: list[str] | None):
    stream = pa.input_stream(str(src.path), compression=datafiles.codec(src.fmt)[1])
    if src.kind == "csv":
        convert = pacsv.ConvertOptions(
            column_types={f.name: f.type for f in schema} if schema is not None else None,
            include_columns=columns,
        )
        return pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(block_size=_BLOCK),
            parse_options=pacsv.ParseOptions(delimiter=src.delimiter, newlines_in_values=True),
            convert_options=convert,
        )
    parse = pajson.ParseOptions(
        explicit_schema=schema, unexpected_field_behavior="ignore" if schema is not None else "infer"
    )
    return pajson.open_json(stream, read_options=pajson.ReadOptions(block_size=_BLOCK), parse_options=parse)


def _read_error(src: _Source, exc: BaseException) -> ValidationInputError:
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    low = msg.lower()
    if "conversion error" in low or "changed from" in low or "failed of conversion" in low:
        return ValidationInputError(
            f"data file {src.path} has mixed types in one column ({msg}); every value of a "
            f"column must have the same type"
        )
    if "utf8" in low or "utf-8" in low:
        return ValidationInputError(f"data file {src.path} is not valid UTF-8 text ({msg})")
    return ValidationInputError(f"cannot read data file {src.path}: {msg}")


class DatasetReader:
    """The files of one dataset version, read as one table in bounded batches.

    Attributes:
        schema: the unified Arrow schema of the dataset (column order of the first file).
    """

    def __init__(self, paths: list[str | Path]):
        if not paths:
            raise ValidationInputError("no data files given: a dataset version needs at least one file")
        self.sources = [_source(p) for p in paths]
        schemas = [_read_schema(s) for s in self.sources]
        self.schema = _unify(self.sources, schemas)

    @property
    def column_names(self) -> list[str]:
        return list(self.schema.names)

    def iter_tables(self, batch_rows: int, columns: list[str] | None = None) -> Iterator[pa.Table]:
        """Yield consecutive tables of exactly ``batch_rows`` rows (the last may be shorter).

        Batches span file boundaries, so many small files make few batches. ``columns``
        limits reading to those columns (in schema order); None reads all.
        """
        if batch_rows < 1:
            raise ValidationInputError(f"batch_rows must be at least 1, not {batch_rows}")
        names = [n for n in self.schema.names if columns is None or n in columns]
        target = pa.schema([self.schema.field(n) for n in names])
        pending: list[pa.RecordBatch] = []
        n_pending = 0
        for src in self.sources:
            for rb in self._iter_file(src, target, batch_rows):
                if rb.num_rows == 0:
                    continue
                pending.append(rb)
                n_pending += rb.num_rows
                while n_pending >= batch_rows:
                    table = pa.Table.from_batches(pending, schema=target)
                    rest = table.slice(batch_rows)
                    # an empty slice still pins the parent's buffers: drop it
                    pending = rest.to_batches() if rest.num_rows else []
                    n_pending = rest.num_rows
                    out = table.slice(0, batch_rows)
                    rb = None
                    del table, rest
                    yield out
                    del out
        if n_pending:
            yield pa.Table.from_batches(pending, schema=target)

    def _iter_file(self, src: _Source, target: pa.Schema, batch_rows: int) -> Iterator[pa.RecordBatch]:
        names = target.names
        check_utf8 = [n for n in names if pa.types.is_string(target.field(n).type)
                      or pa.types.is_large_string(target.field(n).type)]
        try:
            if src.kind == "parquet":
                it = datafiles.parquet_row_group_batches(src.path, names, min(batch_rows, 1 << 20))
            elif src.kind == "arrow":
                it = datafiles.arrow_batches(src.path, batch_rows, None)
            else:
                it = _open_text(src, schema=target, columns=names)
            for rb in it:
                rb = rb.select(names)
                if rb.schema != target:
                    rb = rb.cast(target)
                if src.kind in ("parquet", "arrow"):
                    for n in check_utf8:
                        try:
                            rb.column(n).validate(full=True)
                        except pa.ArrowInvalid:
                            raise ValidationInputError(
                                f"column {n!r} of {src.path} holds text that is not valid UTF-8"
                            ) from None
                yield rb
        except ValidationInputError:
            raise
        except (pa.ArrowException, OSError) as exc:
            raise _read_error(src, exc) from None


def _unify(sources: list[_Source], schemas: list[pa.Schema]) -> pa.Schema:
    first = schemas[0]
    for src, schema in zip(sources[1:], schemas[1:]):
        if set(schema.names) != set(first.names):
            missing = sorted(set(first.names) - set(schema.names))
            extra = sorted(set(schema.names) - set(first.names))
            raise ValidationInputError(
                f"the files of the dataset disagree on columns: {src.path} lacks {missing} "
                f"and adds {extra} compared with {sources[0].path}"
            )
    for name in first.names:
        if first.get_all_field_indices(name).__len__() > 1:
            raise ValidationInputError(f"column {name!r} appears twice in {sources[0].path}")
    fields = []
    for name in first.names:
        types = [s.field(name).type for s in schemas]
        try:
            unified = pa.unify_schemas(
                [pa.schema([pa.field(name, t)]) for t in types], promote_options="permissive"
            ).field(name).type
        except (pa.ArrowTypeError, pa.ArrowInvalid):
            seen = ", ".join(f"{t} in {s.path.name}" for s, t in zip(sources, types))
            raise ValidationInputError(
                f"column {name!r} has mixed types across the files of the dataset ({seen})"
            ) from None
        fields.append(pa.field(name, unified))
    return pa.schema(fields)
