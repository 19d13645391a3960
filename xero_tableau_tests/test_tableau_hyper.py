"""The .hyper writer, checked on real files read back through tableauhyperapi.

Money must arrive to the cent: every amount and every ``SUM()`` Hyper computes is compared with
``Decimal`` arithmetic in Python, exactly. The rest pins down what Tableau and the publisher rely
on: the single-table layout, types and nullability, several parquet files into one table, empty
tables, the atomic replace (the previous extract survives any failure, no temporary file is left)
and that no ``hyperd.log`` is ever dropped into the working directory.
"""

import hashlib
import os
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tableauhyperapi import Connection, Nullability, SqlType, TableName

from xero_tableau.tableau.hyper import (
    EXTRACT_SCHEMA,
    HyperWriteError,
    HyperWriter,
    hyper_type,
    read_table,
)

D = Decimal
MONEY = pa.decimal128(18, 2)
RATE = pa.decimal128(18, 4)

SCHEMA = pa.schema(
    [
        pa.field("line_id", pa.string(), nullable=False),
        pa.field("line_no", pa.int32()),
        pa.field("journal_number", pa.int64()),
        pa.field("is_voided", pa.bool_()),
        pa.field("invoice_date", pa.date32()),
        pa.field("updated_utc", pa.timestamp("us", tz="UTC")),
        pa.field("local_time", pa.timestamp("us")),
        pa.field("currency_rate", pa.float64()),
        pa.field("line_amount", MONEY, nullable=False),
        pa.field("tax_amount", MONEY),
        pa.field("unit_amount", RATE),
        pa.field("description", pa.string()),
    ]
)

LINE_AMOUNTS = [
    D("9999999999999999.99"),
    D("-9999999999999999.99"),
    D("-0.01"),
    D("0.01"),
    D("0.00"),
    D("123.45"),
    D("-0.10"),
]

ROWS: list[dict[str, Any]] = [
    {
        "line_id": "L1",
        "line_no": 1,
        "journal_number": 2**40,
        "is_voided": False,
        "invoice_date": date(2024, 2, 29),
        "updated_utc": datetime(2024, 3, 1, 23, 59, 59, 999999, tzinfo=UTC),
        "local_time": datetime(2024, 3, 2, 12, 59, 59, 123456),
        "currency_rate": 1.5,
        "line_amount": LINE_AMOUNTS[0],
        "tax_amount": D("1499999999999999.99"),
        "unit_amount": D("99999999999999.9999"),
        "description": "Café — Ōtautahi 日本語 🧾",
    },
    {
        "line_id": "L2",
        "line_no": -2147483648,
        "journal_number": -(2**62),
        "is_voided": True,
        "invoice_date": date(1999, 12, 31),
        "updated_utc": datetime(2000, 1, 1, tzinfo=UTC),
        "local_time": datetime(1970, 1, 1),
        "currency_rate": -0.25,
        "line_amount": LINE_AMOUNTS[1],
        "tax_amount": D("-0.01"),
        "unit_amount": D("-0.0001"),
        "description": "",
    },
    *[
        {
            "line_id": f"L{index}",
            "line_no": None,
            "journal_number": None,
            "is_voided": None,
            "invoice_date": None,
            "updated_utc": None,
            "local_time": None,
            "currency_rate": None,
            "line_amount": amount,
            "tax_amount": None,
            "unit_amount": None,
            "description": None,
        }
        for index, amount in enumerate(LINE_AMOUNTS[2:], start=3)
    ],
]


def source_table() -> pa.Table:
    return pa.Table.from_pylist(ROWS, schema=SCHEMA)


def write_parquet(path: Path, table: pa.Table) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def writer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HyperWriter]:
    """One Hyper process for the module, started in a scratch working directory."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path_factory.mktemp("hyper-cwd"))
        with HyperWriter() as hyper:
            yield hyper


# --- types, layout and exact money --------------------------------------------------------------


def test_every_type_round_trips_exactly(writer: HyperWriter, tmp_path: Path) -> None:
    source = source_table()
    parquet = write_parquet(tmp_path / "lines.parquet", source)
    target = tmp_path / "out" / "invoice_lines.hyper"

    assert writer.write_table(parquet, target, "invoice_lines") == len(ROWS)

    back = read_table(target, order_by=["line_id"])
    expected = source.sort_by("line_id")
    assert back.schema == SCHEMA  # types and nullability, as the Arrow fields said
    assert back.equals(expected), back.to_pylist()
    assert back.to_pylist() == expected.to_pylist()

    # Hyper's own values (not re-quantised by Arrow) and Hyper's own arithmetic, to the cent.
    table = f'"{EXTRACT_SCHEMA}"."invoice_lines"'
    amounts = writer.query(target, f"SELECT line_amount FROM {table} ORDER BY line_id")
    assert sorted(amount for (amount,) in amounts) == sorted(LINE_AMOUNTS)
    sums = writer.query(
        target,
        f"SELECT SUM(line_amount), SUM(tax_amount), SUM(unit_amount), COUNT(tax_amount) "
        f"FROM {table}",
    )
    assert sums == [
        (
            sum(LINE_AMOUNTS, D(0)),
            D("1499999999999999.99") + D("-0.01"),
            D("99999999999999.9999") + D("-0.0001"),
            2,
        )
    ]
    assert sums[0][0] == D("123.35")  # the two extremes cancel: nothing was lost on the way


def test_layout_is_one_table_in_the_extract_schema(writer: HyperWriter, tmp_path: Path) -> None:
    parquet = write_parquet(tmp_path / "lines.parquet", source_table())
    target = tmp_path / "lines.hyper"
    writer.write_table(parquet, target, "invoice_lines")

    with Connection(writer.process.endpoint, target) as connection:
        catalog = connection.catalog
        tables = [
            name
            for schema in catalog.get_schema_names()
            for name in catalog.get_table_names(schema)
        ]
        assert tables == [TableName(EXTRACT_SCHEMA, "invoice_lines")]
        definition = catalog.get_table_definition(tables[0])
    columns = {column.name.unescaped: column for column in definition.columns}
    assert [str(columns[name].type) for name in SCHEMA.names] == [
        "TEXT",
        "INT",
        "BIG_INT",
        "BOOL",
        "DATE",
        "TIMESTAMP_TZ",
        "TIMESTAMP",
        "DOUBLE",
        "NUMERIC(18, 2)",
        "NUMERIC(18, 2)",
        "NUMERIC(18, 4)",
        "TEXT",
    ]
    not_null = {
        name for name, column in columns.items() if column.nullability is Nullability.NOT_NULLABLE
    }
    assert not_null == {"line_id", "line_amount"}


@pytest.mark.parametrize(
    ("arrow_type", "sql_type"),
    [
        (pa.decimal128(18, 2), SqlType.numeric(18, 2)),
        (pa.decimal128(9, 4), SqlType.numeric(9, 4)),
        (pa.string(), SqlType.text()),
        (pa.large_string(), SqlType.text()),
        (pa.dictionary(pa.int32(), pa.string()), SqlType.text()),
        (pa.int32(), SqlType.int()),
        (pa.int64(), SqlType.big_int()),
        (pa.bool_(), SqlType.bool()),
        (pa.date32(), SqlType.date()),
        (pa.timestamp("us", tz="UTC"), SqlType.timestamp_tz()),
        (pa.timestamp("ms", tz="Pacific/Auckland"), SqlType.timestamp_tz()),
        (pa.timestamp("us"), SqlType.timestamp()),
        (pa.float64(), SqlType.double()),
    ],
)
def test_type_mapping(arrow_type: pa.DataType, sql_type: SqlType) -> None:
    assert hyper_type(arrow_type) == sql_type


@pytest.mark.parametrize(
    "arrow_type",
    [pa.decimal128(19, 2), pa.uint64(), pa.float32(), pa.dictionary(pa.int8(), pa.int64())],
)
def test_unsupported_types_are_refused(arrow_type: pa.DataType) -> None:
    with pytest.raises(HyperWriteError):
        hyper_type(arrow_type)


def test_other_parquet_encodings_of_the_same_types(writer: HyperWriter, tmp_path: Path) -> None:
    """Decimals stored as int32/int64 (``store_decimal_as_integer``) and pandas-style
    dictionary strings land exactly as the default encodings do."""
    table = pa.table(
        {
            "amount": pa.array([D("-0.01"), D("9999999999999999.99"), None], MONEY),
            "small": pa.array([D("-0.01"), D("1234567.89"), None], pa.decimal128(9, 2)),
            "account": pa.array(["200", "Café", None]).dictionary_encode(),
        }
    )
    parquet = tmp_path / "compact.parquet"
    pq.write_table(table, parquet, store_decimal_as_integer=True)
    assert pq.ParquetFile(parquet).schema.column(0).physical_type == "INT64"
    target = tmp_path / "compact.hyper"

    assert writer.write_table(parquet, target, "t") == 3
    back = writer.read_table(target, order_by=["amount"])
    assert back.column("amount").to_pylist() == [D("-0.01"), D("9999999999999999.99"), None]
    assert back.column("small").to_pylist() == [D("-0.01"), D("1234567.89"), None]
    assert back.column("account").to_pylist() == ["200", "Café", None]


# --- nullability ----------------------------------------------------------------------------------


def test_not_null_columns_load_from_optional_parquet_fields(
    writer: HyperWriter, tmp_path: Path
) -> None:
    """pyarrow writes optional fields by default; COPY would refuse them for NOT NULL columns."""
    loose = pa.table({"id": ["a", "b"], "amount": pa.array([D("1.00"), D("-2.50")], MONEY)})
    parquet = write_parquet(tmp_path / "loose.parquet", loose)
    assert pq.ParquetFile(parquet).schema.column(0).max_definition_level == 1  # optional
    strict = pa.schema(
        [pa.field("id", pa.string(), nullable=False), pa.field("amount", MONEY, nullable=False)]
    )
    target = tmp_path / "strict.hyper"

    assert writer.write_table(parquet, target, "t", schema=strict) == 2
    back = writer.read_table(target, "t", order_by=["id"])
    assert back.schema == strict
    assert back.column("amount").to_pylist() == [D("1.00"), D("-2.50")]


def test_null_in_not_null_column_fails_and_keeps_the_old_file(
    writer: HyperWriter, tmp_path: Path
) -> None:
    target = tmp_path / "t.hyper"
    good = write_parquet(tmp_path / "good.parquet", pa.table({"id": ["a"]}))
    writer.write_table(good, target, "t")
    before = digest(target)

    bad = write_parquet(tmp_path / "bad.parquet", pa.table({"id": ["b", None]}))
    strict = pa.schema([pa.field("id", pa.string(), nullable=False)])
    with pytest.raises(HyperWriteError, match="non-NULL"):
        writer.write_table(bad, target, "t", schema=strict)

    assert digest(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.parquet", "good.parquet", "t.hyper"]


# --- several files, empty tables -----------------------------------------------------------------


def test_several_files_into_one_table(writer: HyperWriter, tmp_path: Path) -> None:
    source = source_table()
    parts = [source.slice(0, 2), source.slice(2, 0), source.slice(2)]
    paths = [write_parquet(tmp_path / f"part-{i}.parquet", part) for i, part in enumerate(parts)]
    # A later file may carry extra columns (only the table's are read), and its line_id field is
    # optional where the others' is required: Hyper must not take the first file's schema as law.
    extra = source.slice(0, 1).append_column("extra", pa.array([1.0]))
    extra = extra.set_column(0, "line_id", pa.array(["L0"]))
    assert extra.schema.field("line_id").nullable
    paths.append(write_parquet(tmp_path / "part-extra.parquet", extra))
    target = tmp_path / "all.hyper"

    assert writer.write_table(paths, target, "invoice_lines", schema=SCHEMA) == len(ROWS) + 1

    back = writer.read_table(target, order_by=["line_id"])
    assert back.column("line_id").to_pylist() == sorted(
        [*source.column("line_id").to_pylist(), "L0"]
    )
    (total,) = writer.query(target, 'SELECT SUM(line_amount) FROM "Extract"."invoice_lines"')[0]
    assert total == sum(LINE_AMOUNTS, D(0)) + LINE_AMOUNTS[0]


def test_empty_table_keeps_its_schema(writer: HyperWriter, tmp_path: Path) -> None:
    parquet = write_parquet(tmp_path / "empty.parquet", source_table().slice(0, 0))
    from_file = tmp_path / "from_file.hyper"
    assert writer.write_table(parquet, from_file, "invoice_lines") == 0
    back = writer.read_table(from_file)
    assert back.num_rows == 0
    assert back.schema == SCHEMA

    no_files = tmp_path / "no_files.hyper"
    assert writer.write_table([], no_files, "invoice_lines", schema=SCHEMA) == 0
    assert writer.read_table(no_files).schema == SCHEMA

    with pytest.raises(ValueError, match="schema"):
        writer.write_table([], tmp_path / "nothing.hyper", "t")
    assert not (tmp_path / "nothing.hyper").exists()


# --- atomic replace ------------------------------------------------------------------------------


def test_existing_extract_is_replaced_without_leftovers(
    writer: HyperWriter, tmp_path: Path
) -> None:
    source = source_table()
    out = tmp_path / "out"
    target = out / "lines.hyper"
    writer.write_table(write_parquet(tmp_path / "a.parquet", source.slice(0, 2)), target, "lines")
    assert writer.read_table(target).num_rows == 2

    writer.write_table(write_parquet(tmp_path / "b.parquet", source), target, "lines")

    assert writer.read_table(target).num_rows == len(ROWS)
    assert os.listdir(out) == ["lines.hyper"]


def test_failed_write_keeps_the_old_extract(writer: HyperWriter, tmp_path: Path) -> None:
    target = tmp_path / "out" / "lines.hyper"
    writer.write_table(write_parquet(tmp_path / "ok.parquet", source_table()), target, "lines")
    before = digest(target)

    wide = pa.table({"amount": pa.array([D("1.00")], pa.decimal128(20, 2))})
    with pytest.raises(HyperWriteError, match=r"column 'amount'.*precision 20"):
        writer.write_table(write_parquet(tmp_path / "wide.parquet", wide), target, "lines")

    # Two files that disagree on a money column's scale: Hyper would round quietly; we refuse.
    other = (
        source_table()
        .slice(1, 1)
        .cast(SCHEMA.set(SCHEMA.get_field_index("tax_amount"), pa.field("tax_amount", RATE)))
    )  # its tax_amount is -0.0100
    mixed = [tmp_path / "ok.parquet", write_parquet(tmp_path / "scale4.parquet", other)]
    with pytest.raises(HyperWriteError, match="tax_amount"):
        writer.write_table(mixed, target, "lines")

    # A file Hyper itself cannot read fails inside Hyper, after the temporary file exists.
    broken = tmp_path / "broken.parquet"
    pq.write_table(source_table(), broken)
    data = broken.read_bytes()
    footer = len(data) - 8 - int.from_bytes(data[-8:-4], "little")
    broken.write_bytes(b"\0" * footer + data[footer:])  # data pages gone, footer intact
    with pytest.raises(HyperWriteError, match="failed"):
        writer.write_table(broken, target, "lines")

    assert digest(target) == before
    assert os.listdir(target.parent) == ["lines.hyper"]
    assert read_table(target).num_rows == len(ROWS)


def test_missing_parquet_file(writer: HyperWriter, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        writer.write_table(tmp_path / "nope.parquet", tmp_path / "x.hyper", "t")
    assert list(tmp_path.iterdir()) == []


# --- process hygiene -----------------------------------------------------------------------------


def test_no_hyperd_log_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    write_parquet(cwd / "lines.parquet", source_table())

    with HyperWriter() as hyper:  # relative paths resolve against our CWD, not hyperd's
        assert hyper.write_table(Path("lines.parquet"), Path("lines.hyper"), "lines") == len(ROWS)
        assert hyper.read_table(Path("lines.hyper")).num_rows == len(ROWS)
    assert sorted(os.listdir(cwd)) == ["lines.hyper", "lines.parquet"]

    logs = tmp_path / "logs" / "hyper"  # created on demand: hyperd will not start without it
    with HyperWriter(log_dir=logs) as hyper:
        hyper.write_table(Path("lines.parquet"), Path("again.hyper"), "lines")
    assert sorted(os.listdir(cwd)) == ["again.hyper", "lines.hyper", "lines.parquet"]
    assert [p.suffix for p in logs.iterdir()] == [".log"]


def test_writer_must_be_started(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="not started"):
        HyperWriter().write_table(tmp_path / "x.parquet", tmp_path / "x.hyper", "t")
