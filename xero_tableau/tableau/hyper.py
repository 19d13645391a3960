"""Write Tableau ``.hyper`` extracts from parquet files with Hyper's own parquet reader.

A :class:`HyperWriter` owns one Hyper process and reuses it for every file; its log never lands in
the current working directory. No row passes through Python and no float is involved, so
``decimal128(18, 2)`` lands in ``NUMERIC(18, 2)`` to the cent, and there are no implicit casts.
An extract is replaced atomically: on any failure the previous one stays untouched. Each file
holds one table, ``"Extract"."<table>"``, in database version 2.

This package must never import dagster: it is used by the Dagster assets and by plain scripts.
"""

import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self, cast

import pyarrow as pa
import pyarrow.parquet as pq
from tableauhyperapi import (
    Connection,
    CreateMode,
    Date,
    HyperException,
    HyperProcess,
    Nullability,
    SqlType,
    TableDefinition,
    TableName,
    Telemetry,
    Timestamp,
    TypeTag,
    escape_name,
    escape_string_literal,
)

#: Schema that holds the table in every extract this module writes.
EXTRACT_SCHEMA = "Extract"
#: Hyper file format written: version 2 opens in Tableau Desktop/Server 2020.4.15 and later
#: (version 3 adds 128-bit numerics but needs Desktop 2022.4.1 / Server 2023.1).
DATABASE_VERSION = "2"
#: Largest ``NUMERIC`` precision a version-2 file can hold (64-bit numerics).
MAX_NUMERIC_PRECISION = 18

_USER_AGENT = "xero-tableau"


def _fsync_path(path: Path) -> None:
    """Flush a file, or on POSIX a directory's entries, to disk before trusting a rename."""
    if path.is_dir() and os.name != "posix":
        return  # directories cannot be opened for fsync there
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class HyperWriteError(RuntimeError):
    """A .hyper extract could not be written; the previous file at the target path is intact."""


def hyper_type(arrow_type: pa.DataType) -> SqlType:
    """The Hyper column type for an Arrow type, or :class:`HyperWriteError` if there is none.

    Money is ``decimal128(p, s)`` → ``NUMERIC(p, s)`` with ``p`` ≤ 18 (a version-2 file has no
    128-bit numerics, and widening silently is not an option for amounts). Timestamps with any
    time zone are instants → ``TIMESTAMP WITH TIME ZONE`` (read back in UTC); without a zone →
    ``TIMESTAMP``. Hyper keeps microseconds: nanosecond parquet timestamps are truncated.
    """
    if pa.types.is_decimal(arrow_type):
        decimal = cast(pa.Decimal128Type, arrow_type)
        if decimal.precision > MAX_NUMERIC_PRECISION:
            raise HyperWriteError(
                f"{arrow_type} has precision {decimal.precision}, but a version-{DATABASE_VERSION}"
                f" .hyper file holds NUMERIC up to precision {MAX_NUMERIC_PRECISION}; "
                f"store amounts as decimal128({MAX_NUMERIC_PRECISION}, {decimal.scale}) or less"
            )
        return SqlType.numeric(decimal.precision, decimal.scale)
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return SqlType.text()
    if pa.types.is_dictionary(arrow_type):
        # pandas categoricals: parquet stores the values as plain UTF-8 strings anyway.
        values = cast(pa.DictionaryType, arrow_type).value_type
        if pa.types.is_string(values) or pa.types.is_large_string(values):
            return SqlType.text()
    if pa.types.is_int32(arrow_type):
        return SqlType.int()
    if pa.types.is_int64(arrow_type):
        return SqlType.big_int()
    if pa.types.is_boolean(arrow_type):
        return SqlType.bool()
    if pa.types.is_date32(arrow_type):
        return SqlType.date()
    if pa.types.is_timestamp(arrow_type):
        timestamp = cast(pa.TimestampType, arrow_type)
        return SqlType.timestamp_tz() if timestamp.tz else SqlType.timestamp()
    if pa.types.is_float64(arrow_type):
        return SqlType.double()
    raise HyperWriteError(f"Arrow type {arrow_type} has no .hyper column type in this writer")


def table_definition(table: str, schema: pa.Schema) -> TableDefinition:
    """The ``"Extract"."<table>"`` definition of an Arrow schema; nullability follows the fields."""
    columns = [
        TableDefinition.Column(
            field.name,
            hyper_type_of(field),
            Nullability.NULLABLE if field.nullable else Nullability.NOT_NULLABLE,
        )
        for field in schema
    ]
    return TableDefinition(TableName(EXTRACT_SCHEMA, table), columns)


@dataclass(frozen=True)
class _Source:
    """The parquet files of one load, checked against the target schema."""

    paths: list[Path]
    schema: pa.Schema
    rows: int


def _inspect_sources(parquet_paths: Sequence[Path] | Path, schema: pa.Schema | None) -> _Source:
    """Read every footer (cheap: no data pages) to fix the schema, check types and count rows.

    Runs before Hyper is involved so that a wrong file fails fast, with the file and column
    named, and never reaches the point where Hyper would cast a value.
    """
    listed: Sequence[str | os.PathLike[str]] = (
        [parquet_paths] if isinstance(parquet_paths, str | os.PathLike) else parquet_paths
    )
    # hyperd resolves relative paths against its own working directory, not ours.
    paths = [Path(path).resolve() for path in listed]
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"parquet file not found: {path}")
    if not paths and schema is None:
        raise ValueError("no parquet files: pass `schema` to write an empty table")

    footers: list[tuple[Path, pq.FileMetaData]] = [(path, pq.read_metadata(path)) for path in paths]
    file_schemas: list[pa.Schema] = [metadata.schema.to_arrow_schema() for _, metadata in footers]
    target: pa.Schema = schema if schema is not None else file_schemas[0]
    wanted = {field.name: hyper_type_of(field) for field in target}
    rows = 0
    for (path, metadata), file_schema in zip(footers, file_schemas, strict=True):
        for name, sql_type in wanted.items():
            index = file_schema.get_field_index(name)
            if index < 0:
                raise HyperWriteError(f"{path}: no column {name!r}")
            found = hyper_type_of(file_schema.field(index))
            if found != sql_type:
                raise HyperWriteError(
                    f"{path}: column {name!r} is {file_schema.field(index).type} (Hyper {found}),"
                    f" but the table wants Hyper {sql_type}; values are never converted"
                )
        rows += metadata.num_rows
    return _Source(paths=paths, schema=target, rows=rows)


def hyper_type_of(field: pa.Field) -> SqlType:
    """:func:`hyper_type` with the column named in the error."""
    try:
        return hyper_type(field.type)
    except HyperWriteError as exc:
        raise HyperWriteError(f"column {field.name!r}: {exc}") from None


def _sql_type(sql_type: SqlType) -> str:
    """SQL spelling of a column type (``str(SqlType)`` gives API names such as ``BIG_INT``)."""
    if sql_type.tag == TypeTag.NUMERIC:
        return f"NUMERIC({sql_type.precision}, {sql_type.scale})"
    names = {
        TypeTag.TEXT: "TEXT",
        TypeTag.INT: "INTEGER",
        TypeTag.BIG_INT: "BIGINT",
        TypeTag.BOOL: "BOOLEAN",
        TypeTag.DATE: "DATE",
        TypeTag.TIMESTAMP: "TIMESTAMP",
        TypeTag.TIMESTAMP_TZ: "TIMESTAMPTZ",
        TypeTag.DOUBLE: "DOUBLE PRECISION",
    }
    return names[sql_type.tag]


def _insert_statement(definition: TableDefinition, paths: Sequence[Path]) -> str:
    """``INSERT … SELECT … FROM external(…)`` with the file schema spelt out.

    The explicit ``COLUMNS`` descriptor matters: without it Hyper takes the schema from the
    *first* file, and a later file whose field is optional where the first one's was required
    fails the whole load. Declared nullable there, every file reads; the target's ``NOT NULL``
    still rejects an actual null. Hyper also refuses a descriptor type that differs from the
    file's (``numeric(12,4)`` for ``numeric(18,4)``, say), so nothing is cast on the way in.
    Columns are matched by name: a file may carry extra ones.
    """
    names = [escape_name(column.name.unescaped) for column in definition.columns]
    descriptor = ", ".join(
        f"{name} {_sql_type(column.type)}"
        for name, column in zip(names, definition.columns, strict=True)
    )
    columns = ", ".join(names)
    sources = ", ".join(escape_string_literal(str(path)) for path in paths)
    return (
        f"INSERT INTO {definition.table_name} ({columns}) SELECT {columns} "
        f"FROM external(ARRAY[{sources}], FORMAT => 'parquet', "
        f"COLUMNS => DESCRIPTOR({descriptor}))"
    )


def _temporary_path(hyper_path: Path) -> Path:
    """A hidden, unique sibling of the target: same filesystem (so the rename is atomic) and not
    matched by a ``*.hyper`` glob, so nobody picks up a half-written extract."""
    return hyper_path.with_name(f".{hyper_path.name}.{uuid.uuid4().hex[:12]}.tmp")


def _python_value(value: Any) -> Any:
    """Hyper's own ``Date``/``Timestamp`` as ``datetime`` objects; Decimal and the rest as is."""
    if isinstance(value, Date):
        return value.to_date()
    if isinstance(value, Timestamp):
        return value.to_datetime()
    return value


def _arrow_type(sql_type: SqlType) -> pa.DataType:
    """The Arrow type :func:`hyper_type` maps to ``sql_type`` (the inverse, for reading back)."""
    tag = sql_type.tag
    if tag == TypeTag.NUMERIC:
        return pa.decimal128(cast(int, sql_type.precision), cast(int, sql_type.scale))
    simple: Mapping[TypeTag, pa.DataType] = {
        TypeTag.TEXT: pa.string(),
        TypeTag.INT: pa.int32(),
        TypeTag.BIG_INT: pa.int64(),
        TypeTag.SMALL_INT: pa.int16(),
        TypeTag.BOOL: pa.bool_(),
        TypeTag.DATE: pa.date32(),
        TypeTag.TIMESTAMP: pa.timestamp("us"),
        TypeTag.TIMESTAMP_TZ: pa.timestamp("us", tz="UTC"),
        TypeTag.DOUBLE: pa.float64(),
    }
    if tag not in simple:
        raise HyperWriteError(f"cannot read Hyper type {sql_type} back into Arrow")
    return simple[tag]


class HyperWriter:
    """Owns one Hyper process and writes (and reads back) many ``.hyper`` files with it.

    Use it as a context manager; the process starts on entry and stops on exit::

        with HyperWriter() as writer:
            writer.write_table(lake / "invoice_lines.parquet", out / "invoice_lines.hyper",
                               "invoice_lines")

    Calls are not meant to run concurrently on one writer: Hyper already uses every core for a
    single load.
    """

    def __init__(self, *, log_dir: Path | None = None) -> None:
        """``log_dir``: folder for ``hyperd``'s log (created; at most 2 files of 10 MB each).

        ``None`` turns logging off, so nothing is ever written to the working directory."""
        self._log_dir = log_dir
        self._process: HyperProcess | None = None

    def _parameters(self) -> dict[str, str]:
        parameters = {"default_database_version": DATABASE_VERSION}
        if self._log_dir is None:
            parameters["log_config"] = ""
        else:
            # hyperd refuses to start when the folder is missing ("Unable to open log file").
            self._log_dir.mkdir(parents=True, exist_ok=True)
            parameters["log_dir"] = str(self._log_dir.resolve())
            parameters["log_file_max_count"] = "2"
            parameters["log_file_size_limit"] = "10M"
        return parameters

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Start ``hyperd`` (idempotent)."""
        if self._process is None:
            self._process = HyperProcess(
                Telemetry.DO_NOT_SEND_USAGE_DATA_TO_TABLEAU,
                user_agent=_USER_AGENT,
                parameters=self._parameters(),
            )

    def close(self) -> None:
        """Stop ``hyperd`` (idempotent)."""
        if self._process is not None:
            process, self._process = self._process, None
            process.close()

    @property
    def process(self) -> HyperProcess:
        """The running process, for callers that need their own ``Connection``."""
        if self._process is None:
            raise RuntimeError("HyperWriter is not started: use it in a `with` block")
        return self._process

    def write_table(
        self,
        parquet_paths: Sequence[Path] | Path,
        hyper_path: Path,
        table: str,
        schema: pa.Schema | None = None,
    ) -> int:
        """Create ``hyper_path`` holding ``"Extract"."<table>"`` loaded from the parquet files.

        ``schema`` fixes the columns, their order and nullability (default: the first file's
        schema, as stored in its footer). Every file must have those columns with the same Hyper
        types; extra columns in a file are ignored. No files and a ``schema`` give an empty table.
        Replaces any existing ``hyper_path`` atomically and returns the row count, which Hyper
        counted and which must equal the parquet footers' total.
        """
        process = self.process
        source = _inspect_sources(parquet_paths, schema)
        definition = table_definition(table, source.schema)
        hyper_path = Path(hyper_path).resolve()
        hyper_path.parent.mkdir(parents=True, exist_ok=True)
        temporary = _temporary_path(hyper_path)
        try:
            with Connection(process.endpoint, temporary, CreateMode.CREATE) as connection:
                connection.catalog.create_schema_if_not_exists(EXTRACT_SCHEMA)
                connection.catalog.create_table(definition)
                if source.paths:
                    connection.execute_command(_insert_statement(definition, source.paths))
                rows = connection.execute_scalar_query(
                    f"SELECT COUNT(*) FROM {definition.table_name}"
                )
            if not isinstance(rows, int) or rows != source.rows:
                raise HyperWriteError(
                    f"{hyper_path}: Hyper loaded {rows} rows but the parquet footers say "
                    f"{source.rows}"
                )
            _fsync_path(temporary)
            os.replace(temporary, hyper_path)
            _fsync_path(hyper_path.parent)
        except HyperException as exc:
            temporary.unlink(missing_ok=True)
            raise HyperWriteError(
                f"writing {hyper_path} (table {table!r}) failed: {exc.main_message}"
                + (f" (hint: {exc.hint})" if exc.hint else "")
            ) from exc
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        return rows

    def query(self, hyper_path: Path, sql: str) -> list[tuple[Any, ...]]:
        """Run a read-only query on a ``.hyper`` file; NUMERIC comes back as ``Decimal``, dates
        and timestamps as ``datetime`` objects. For checks such as ``SUM`` / ``COUNT``."""
        with (
            Connection(self.process.endpoint, Path(hyper_path).resolve()) as connection,
            connection.execute_query(sql) as result,
        ):
            return [tuple(_python_value(value) for value in row) for row in result]

    def read_table(
        self,
        hyper_path: Path,
        table: str | None = None,
        order_by: Sequence[str] | None = None,
    ) -> pa.Table:
        """Read a table of a ``.hyper`` file back into Arrow, with the types :func:`hyper_type`
        maps from (NUMERIC → decimal128, so money stays ``Decimal``).

        ``table`` is the table name in any schema; ``None`` means the file's only table. Hyper
        loads in parallel, so row order is arbitrary unless ``order_by`` names columns. Values go
        through Python objects: meant for checks and tests, not for millions of rows.
        """
        with Connection(self.process.endpoint, Path(hyper_path).resolve()) as connection:
            name = _find_table(connection, table, hyper_path)
            definition = connection.catalog.get_table_definition(name)
            fields = [
                pa.field(
                    column.name.unescaped,
                    _arrow_type(column.type),
                    nullable=column.nullability == Nullability.NULLABLE,
                )
                for column in definition.columns
            ]
            sql = f"SELECT * FROM {name}"
            if order_by:
                sql += " ORDER BY " + ", ".join(escape_name(column) for column in order_by)
            with connection.execute_query(sql) as result:
                columns: list[list[Any]] = [[] for _ in fields]
                for row in result:
                    for values, value in zip(columns, row, strict=True):
                        values.append(_python_value(value))
        arrays = [
            pa.array(values, type=field.type) for values, field in zip(columns, fields, strict=True)
        ]
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _find_table(connection: Connection, table: str | None, hyper_path: Path) -> TableName:
    """The one table named ``table`` (in any schema), or the file's only table."""
    catalog = connection.catalog
    names = [
        name
        for schema in catalog.get_schema_names()
        for name in catalog.get_table_names(schema)
        if table is None or name.name.unescaped == table
    ]
    if len(names) != 1:
        wanted = "exactly one table" if table is None else f"exactly one table {table!r}"
        found = ", ".join(str(name) for name in names) or "none"
        raise HyperWriteError(f"{hyper_path}: expected {wanted}, found {found}")
    return names[0]


def read_table(
    hyper_path: Path, table: str | None = None, order_by: Sequence[str] | None = None
) -> pa.Table:
    """:meth:`HyperWriter.read_table` with a Hyper process of its own (no log written)."""
    with HyperWriter() as writer:
        return writer.read_table(hyper_path, table, order_by)


__all__ = [
    "DATABASE_VERSION",
    "EXTRACT_SCHEMA",
    "MAX_NUMERIC_PRECISION",
    "HyperWriteError",
    "HyperWriter",
    "hyper_type",
    "hyper_type_of",
    "read_table",
    "table_definition",
]
