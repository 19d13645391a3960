"""Daily bank balances from movements: the pure core of ``fct_bank_balances``.

A movement is one amount of money into (+) or out of (-) one bank account on one day, in the
account's currency and, when it has a usable rate, in base currency. :func:`bank_balances` turns
any set of movements into one row per account and day, with no gaps, each with its opening and
closing balance, money in and money out. It knows nothing of where movements come from:
``normalize`` builds them from the documents the connector reads (payments and bank
transactions); a general-ledger source (the lines of ``/Journals`` on bank accounts, which also
carry the opening balances Xero keeps as conversion balances) can feed the same function.

Exact: amounts are integer cents (int64) from end to end, written back as ``decimal128(18, 2)``;
never a float. Vectorized: NumPy on whole columns, no loop over rows.

This package must never import dagster.
"""

from datetime import date
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pa_compute

# pyarrow.compute builds its kernels at import time, so type checkers cannot see them.
pc: Any = pa_compute

__all__ = ["BALANCE_SCHEMA", "MOVEMENT_SCHEMA", "PROVENANCE", "bank_balances"]

MONEY = pa.decimal128(18, 2)
INSTANT = pa.timestamp("ms", tz="UTC")

#: The provenance of a movement (the read of the document it comes from); a balance row carries
#: that of the latest read among the movements it includes.
PROVENANCE = ("synced_at_utc", "sync_source", "dagster_run_id", "source_event_at_utc")

MOVEMENT_SCHEMA = pa.schema(
    [
        pa.field("bank_account_id", pa.string(), nullable=False),
        pa.field("date", pa.date32(), nullable=False),
        # signed: + money in, - money out, in the bank account's currency
        pa.field("amount", MONEY, nullable=False),
        # the same in base currency; null: no usable rate
        pa.field("amount_base", MONEY),
        pa.field("synced_at_utc", INSTANT),
        pa.field("sync_source", pa.string()),
        pa.field("dagster_run_id", pa.string()),
        pa.field("source_event_at_utc", INSTANT),
    ]
)
"""What :func:`bank_balances` reads (provenance columns may be absent: nulls)."""

BALANCE_SCHEMA = pa.schema(
    [
        pa.field("bank_account_id", pa.string(), nullable=False),
        pa.field("balance_date", pa.date32(), nullable=False),
        pa.field("opening_balance", MONEY, nullable=False),
        pa.field("money_in", MONEY, nullable=False),
        pa.field("money_out", MONEY, nullable=False),
        pa.field("closing_balance", MONEY, nullable=False),
        pa.field("movement_count", pa.int32(), nullable=False),
        pa.field("opening_balance_base", MONEY),
        pa.field("money_in_base", MONEY),
        pa.field("money_out_base", MONEY),
        pa.field("closing_balance_base", MONEY),
        *(MOVEMENT_SCHEMA.field(name) for name in PROVENANCE),
    ]
)
"""What :func:`bank_balances` returns, sorted by account id and day."""

_HUNDRED = pa.scalar(Decimal(100), pa.decimal128(3, 0))
_CENT = pa.scalar(Decimal("0.01"), pa.decimal128(3, 2))


def _cents(column: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Integer cents of a decimal column (exact), and its validity."""
    cents = pc.multiply(column, _HUNDRED).cast(pa.int64())
    valid = pc.is_valid(cents).to_numpy(zero_copy_only=False)
    values = pc.fill_null(cents, 0).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    return values, np.asarray(valid, dtype=bool)


def _money(cents: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """decimal128(18, 2) from integer cents (raises if a value needs more than 18 digits)."""
    mask = None if valid is None else ~valid
    whole = pa.array(cents, pa.int64(), mask=mask).cast(pa.decimal128(19, 0))
    return pc.multiply(whole, _CENT).cast(MONEY)


def _conformed(movements: pa.Table) -> pa.Table:
    names = movements.column_names
    required = [f.name for f in MOVEMENT_SCHEMA if f.name not in PROVENANCE]
    missing = [name for name in required if name not in names]
    if missing:
        raise ValueError(f"movements lack columns {missing}")
    columns = []
    for f in MOVEMENT_SCHEMA:
        if f.name in names:
            column = movements.column(f.name)
            if not f.nullable and column.null_count:
                raise ValueError(f"movements.{f.name} has nulls")
            columns.append(column.cast(f.type))
        else:
            columns.append(pa.nulls(movements.num_rows, f.type))
    return pa.Table.from_arrays(columns, schema=MOVEMENT_SCHEMA)


def _ranks(movements: pa.Table) -> np.ndarray:
    """Each movement's position in the order of its provenance (synced_at_utc, then
    source_event_at_utc, sync_source, dagster_run_id; nulls first): the higher, the later the
    read. Equal provenances get distinct ranks, but then either one gives the same values."""
    order = pc.sort_indices(
        movements.select(list(PROVENANCE)),
        sort_keys=[(name, "ascending", "at_start") for name in PROVENANCE],
    ).to_numpy()
    ranks = np.empty(len(order), np.int64)
    ranks[order] = np.arange(len(order), dtype=np.int64)
    return ranks


def _within(values: np.ndarray, starts: np.ndarray, account: np.ndarray) -> np.ndarray:
    """Running sums of ``values`` restarted at each account's first row (``starts``)."""
    total = np.cumsum(values)
    before = np.where(starts > 0, total[np.maximum(starts - 1, 0)], 0)
    return total - before[account]


def bank_balances(movements: pa.Table, as_of: date | None = None) -> pa.Table:
    """One row per bank account and day (:data:`BALANCE_SCHEMA`), from ``movements``
    (:data:`MOVEMENT_SCHEMA`).

    Every account gets every day from its first movement to ``as_of`` (the day the data is
    known to, e.g. the tenant's sync date) or to its last movement if that is later; a day
    without movements repeats the previous closing balance. For each row: money_in is the sum
    of the day's positive amounts, money_out the sum of its negative amounts as a positive
    number, closing_balance = opening_balance + money_in - money_out, and opening_balance is the
    previous day's closing_balance (0 on the first day: what the account held before its first
    movement is not in the movements). The base columns follow the same rules on
    ``amount_base``; a movement without a base amount leaves that day's base money in and out
    null, and the base balances null from that day on. Each row's provenance is that of the
    latest read (:func:`_ranks`) among the account's movements dated on or before its day."""
    moves = _conformed(movements)
    n = moves.num_rows
    if n == 0:
        return BALANCE_SCHEMA.empty_table()
    keys = _combine(pc.unique(moves.column("bank_account_id")))
    keys = keys.take(pc.sort_indices(keys))
    account = _index(moves.column("bank_account_id"), keys)
    day = _combine(moves.column("date")).view(pa.int32()).to_numpy(zero_copy_only=False)
    day = day.astype(np.int64)
    amount, _ = _cents(moves.column("amount"))
    base, base_valid = _cents(moves.column("amount_base"))

    accounts = len(keys)
    first = np.full(accounts, np.iinfo(np.int64).max)
    last = np.full(accounts, np.iinfo(np.int64).min)
    np.minimum.at(first, account, day)
    np.maximum.at(last, account, day)
    if as_of is not None:
        last = np.maximum(last, (as_of - date(1970, 1, 1)).days)
    length = last - first + 1
    starts = np.concatenate(([0], np.cumsum(length)[:-1]))
    rows = int(length.sum())
    row_account = np.repeat(np.arange(accounts), length)
    row_day = first[row_account] + (np.arange(rows) - starts[row_account])
    at = starts[account] + (day - first[account])

    money_in = np.zeros(rows, np.int64)
    money_out = np.zeros(rows, np.int64)
    np.add.at(money_in, at, np.where(amount > 0, amount, 0))
    np.add.at(money_out, at, np.where(amount < 0, -amount, 0))
    count = np.bincount(at, minlength=rows)
    closing = _within(money_in - money_out, starts, row_account)

    base = np.where(base_valid, base, 0)
    base_in = np.zeros(rows, np.int64)
    base_out = np.zeros(rows, np.int64)
    np.add.at(base_in, at, np.where(base > 0, base, 0))
    np.add.at(base_out, at, np.where(base < 0, -base, 0))
    unknown_day = np.zeros(rows, bool)
    unknown_day[at[~base_valid]] = True
    closing_base = _within(base_in - base_out, starts, row_account)
    unknown_days = _within(unknown_day.astype(np.int64), starts, row_account)
    unknown_through = unknown_days > 0  # a day so far had a movement without a base amount
    unknown_before = unknown_days - unknown_day > 0  # one before this day had

    # provenance: the latest read among the movements up to each day (every account's first day
    # has a movement, so the running maximum never reaches back into the previous account)
    ranks = _ranks(moves)
    best = np.full(rows, -1, np.int64)
    np.maximum.at(best, at, ranks)
    offset = row_account * n
    latest_rank = np.maximum.accumulate(best + offset) - offset
    by_rank = np.empty(n, np.int64)
    by_rank[ranks] = np.arange(n, dtype=np.int64)
    source = pa.array(by_rank[latest_rank])

    columns: dict[str, Any] = {
        "bank_account_id": keys.take(pa.array(row_account)),
        "balance_date": pa.array(row_day.astype(np.int32), pa.int32()).view(pa.date32()),
        "opening_balance": _money(closing - money_in + money_out),
        "money_in": _money(money_in),
        "money_out": _money(money_out),
        "closing_balance": _money(closing),
        "movement_count": pa.array(count.astype(np.int32), pa.int32()),
        "opening_balance_base": _money(closing_base - base_in + base_out, ~unknown_before),
        "money_in_base": _money(base_in, ~unknown_day),
        "money_out_base": _money(base_out, ~unknown_day),
        "closing_balance_base": _money(closing_base, ~unknown_through),
        **{name: _combine(moves.column(name)).take(source) for name in PROVENANCE},
    }
    return pa.Table.from_arrays([columns[f.name] for f in BALANCE_SCHEMA], schema=BALANCE_SCHEMA)


def _combine(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        return column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    return column


def _index(values: pa.Array | pa.ChunkedArray, keys: pa.Array) -> np.ndarray:
    found = _combine(pc.index_in(values, value_set=keys))
    return found.to_numpy(zero_copy_only=False).astype(np.int64)
