"""Building one tenant's normalized tables: the counterpart of ``raw_sync.sync_entity`` for the
tables asset (no dagster here).

Reads every raw day partition of the tenant (only the columns normalize and the checks need) and
its reference snapshots, gives any new tracking category its slot for good (kept in the state DB,
``store.tracking_slots``), normalizes (with the tenant's latest read watermark, which dates
fct_bank_balances' last day), writes each table to
``lake/tenant=<id>/tables/<name>.parquet`` and runs the checks of ``transform.checks.TABLE_CHECKS``
that apply to it; the failed ones are kept beside the tables (``tables/checks.json``), so whatever
publishes the tables can refuse those an ERROR check failed on. A switched-off entity
(``XT_DISABLED_ENTITIES``) is not read: its tables are built empty, though the lake keeps its
partitions for when it is switched on again.
"""

import json
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy.engine import Engine

from xero_tableau import raw_lake
from xero_tableau.entities import TRANSACTIONAL, by_asset_name, parse_records
from xero_tableau.store import lake, watermarks
from xero_tableau.store.tracking_slots import assign_slots
from xero_tableau.transform.checks import (
    ERROR,
    CheckInputs,
    CheckOutcome,
    TableCheck,
    checks_for,
)
from xero_tableau.transform.normalize import (
    NORMALIZE_COLUMNS,
    Reference,
    line_tracking_categories,
    normalize,
    tracking_slots,
)
from xero_tableau.transform.raw import DOCUMENT_SCHEMAS, LINE_SCHEMAS
from xero_tableau.transform.schema import TABLES


class MissingOrganisation(RuntimeError):
    """No organisation snapshot yet: its base currency and time zone shape every table."""


@dataclass
class BuiltTable:
    name: str
    table: pa.Table
    path: Path
    checks: list[tuple[TableCheck, CheckOutcome]]

    @property
    def failed(self) -> list[tuple[TableCheck, CheckOutcome]]:
        return [(check, outcome) for check, outcome in self.checks if not outcome.passed]

    @property
    def documents(self) -> int | None:
        """Distinct documents of a fact table (None for dimensions)."""
        if not self.name.startswith("fct_"):
            return None
        return len(set(self.table[TABLES[self.name].key[1]].to_pylist()))


@dataclass
class TenantTables:
    tenant_id: str
    built_at: str
    tables: list[BuiltTable] = field(default_factory=list)
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    dq_notes: list[dict[str, Any]] = field(default_factory=list)
    tracking_slots: dict[str, int] = field(default_factory=dict)

    @property
    def blocked(self) -> bool:
        """An ERROR check failed: these tables must not be published."""
        return any(check.blocking for table in self.tables for check, _ in table.failed)


def _columns() -> dict[str, tuple[list[str], list[str] | None]]:
    """Per raw entity, what normalize reads plus the document columns the checks read."""
    extra: dict[str, list[str]] = defaultdict(list)
    for name in TABLES:
        for check in checks_for(name):
            for entity, names in check.columns.items():
                extra[entity] += [n for n in names if n not in extra[entity]]
    columns = {}
    for entity, (documents, lines) in NORMALIZE_COLUMNS.items():
        wanted = [*documents, *(n for n in extra.get(entity, []) if n not in documents)]
        columns[entity] = (wanted, lines)
    return columns


def _nothing(entity: str, columns: raw_lake.Columns) -> tuple[pa.Table, pa.Table | None]:
    """What the lake would give for an entity without partitions: empty tables of ``columns``."""
    documents, lines = columns
    schema = DOCUMENT_SCHEMAS[entity]
    empty = pa.schema([schema.field(n) for n in documents]).empty_table()
    line_schema = LINE_SCHEMAS.get(entity)
    if line_schema is None:
        return empty, None
    names = line_schema.names if lines is None else lines
    return empty, pa.schema([line_schema.field(n) for n in names]).empty_table()


def build_tenant_tables(
    lake_dir: Path, tenant_id: str, engine: Engine, disabled: Collection[str] = ()
) -> TenantTables:
    """Rebuild every fact and dimension of one tenant from its raw partitions, and check them.
    ``engine`` is the state DB's, which keeps the tenant's tracking slots; ``disabled`` names
    switched-off entities (asset names): their raw data is not read."""
    off = {by_asset_name(name).endpoint for name in disabled}
    raw = {
        entity: _nothing(entity, columns)
        if entity in off
        else raw_lake.read_entity(lake_dir, tenant_id, entity, columns=columns)
        for entity, columns in _columns().items()
    }
    organisation = raw_lake.read_reference(lake_dir, tenant_id, "Organisation")
    if not organisation:
        raise MissingOrganisation(
            f"no organisation snapshot for tenant {tenant_id}: materialize xero/raw/organisation "
            "first (its base currency and time zone shape every table)"
        )
    accounts, accounts_reads = raw_lake.read_reference_snapshot(lake_dir, tenant_id, "Accounts")
    categories, categories_reads = raw_lake.read_reference_snapshot(
        lake_dir, tenant_id, "TrackingCategories"
    )
    reference = Reference(
        organisation=organisation[0],
        accounts=accounts,
        tracking_categories=categories,
        reads={**accounts_reads.get("rows", {}), **categories_reads.get("rows", {})},
    )
    categories = parse_records("TrackingCategories", list(reference.tracking_categories)).records
    on_lines = line_tracking_categories(raw)
    slots = assign_slots(
        engine,
        tenant_id,
        lambda known: tracking_slots(categories, known, on_lines),
        {c.tracking_category_id: c.name for c in categories},
    )
    # the tenant's sync date (how far fct_bank_balances runs): its latest read up to the present
    marks = [
        watermarks.read_through(engine, tenant_id, e.endpoint)
        for e in TRANSACTIONAL
        if e.endpoint not in off
    ]
    synced = max((m for m in marks if m is not None), default=None)
    tables = normalize(tenant_id, raw, reference, slots, synced_through=synced)
    out_dir = lake.tenant_dir(lake_dir, tenant_id) / "tables"
    inputs = CheckInputs(tenant_id, {entity: documents for entity, (documents, _) in raw.items()})
    built = TenantTables(
        tenant_id,
        datetime.now(UTC).isoformat(),
        quarantined=[
            q for q in raw_lake.quarantined(lake_dir, tenant_id) if q["entity"] not in off
        ],
        dq_notes=[n for n in raw_lake.dq_notes(lake_dir, tenant_id) if n["entity"] not in off],
        tracking_slots=slots,
    )
    for name, table in tables.items():
        outcomes = [(check, check.run(name, table, inputs)) for check in checks_for(name)]
        built.tables.append(BuiltTable(name, table, out_dir / f"{name}.parquet", outcomes))
    # The verdict lands before the tables it describes, so failed tables never sit on disk
    # under a verdict that lets them be published.
    _write_verdict(out_dir, built)
    for table in built.tables:
        lake.write_parquet(table.path, table.table)
    return built


# --- the verdict of the checks, beside the tables -------------------------------------------------

VERDICT = "checks.json"


@dataclass(frozen=True)
class FailedCheck:
    table: str
    check: str
    severity: str
    description: str
    sample: list[str]

    def __str__(self) -> str:
        offending = f": {', '.join(self.sample)}" if self.sample else ""
        return f"{self.table} {self.check} [{self.severity}] {self.description}{offending}"


def _write_verdict(out_dir: Path, built: TenantTables) -> None:
    failed = [
        {
            "table": table.name,
            "check": check.name,
            "severity": check.severity,
            "description": outcome.description,
            "sample": outcome.sample,
        }
        for table in built.tables
        for check, outcome in table.failed
    ]
    verdict = {"built_at": built.built_at, "blocked": built.blocked, "failed": failed}
    lake.atomic_write_bytes(out_dir / VERDICT, json.dumps(verdict, indent=1).encode())


def failed_checks(lake_dir: Path, tenant_id: str) -> list[FailedCheck]:
    """The checks that failed on the tenant's tables as they are on disk (none if never built)."""
    path = lake.tenant_dir(lake_dir, tenant_id) / "tables" / VERDICT
    if not path.exists():
        return []
    return [FailedCheck(**failure) for failure in json.loads(path.read_text())["failed"]]


def blocking_failures(lake_dir: Path, tenant_id: str) -> list[FailedCheck]:
    """The ERROR checks that failed on the tenant's tables on disk: while there are any, the
    tables must not be published."""
    return [f for f in failed_checks(lake_dir, tenant_id) if f.severity == ERROR]
