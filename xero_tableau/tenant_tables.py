"""Building one tenant's normalized tables: the counterpart of ``raw_sync.sync_entity`` for the
tables asset (no dagster here).

Reads every raw day partition of the tenant (only the columns normalize and the checks need) and
its reference snapshots, normalizes, writes each table to ``lake/tenant=<id>/tables/<name>.parquet``
and runs the checks of ``transform.checks.TABLE_CHECKS`` that apply to it. A switched-off entity
(``XT_DISABLED_ENTITIES``) is not read: its tables are built empty, though the lake keeps its
partitions for when it is switched on again.
"""

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from xero_tableau import raw_lake
from xero_tableau.entities import by_asset_name
from xero_tableau.store import lake
from xero_tableau.transform.checks import CheckInputs, CheckOutcome, TableCheck, checks_for
from xero_tableau.transform.normalize import NORMALIZE_COLUMNS, Reference, normalize
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
    lake_dir: Path, tenant_id: str, disabled: Collection[str] = ()
) -> TenantTables:
    """Rebuild every fact and dimension of one tenant from its raw partitions, and check them.
    ``disabled`` names switched-off entities (asset names): their raw data is not read."""
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
    reference = Reference(
        organisation=organisation[0],
        accounts=raw_lake.read_reference(lake_dir, tenant_id, "Accounts"),
        tracking_categories=raw_lake.read_reference(lake_dir, tenant_id, "TrackingCategories"),
    )
    tables = normalize(tenant_id, raw, reference)
    out_dir = lake.tenant_dir(lake_dir, tenant_id) / "tables"
    inputs = CheckInputs(tenant_id, {entity: documents for entity, (documents, _) in raw.items()})
    built = TenantTables(
        tenant_id,
        datetime.now(UTC).isoformat(),
        quarantined=[
            q for q in raw_lake.quarantined(lake_dir, tenant_id) if q["entity"] not in off
        ],
    )
    for name, table in tables.items():
        path = out_dir / f"{name}.parquet"
        lake.write_parquet(path, table)
        outcomes = [(check, check.run(name, table, inputs)) for check in checks_for(name)]
        built.tables.append(BuiltTable(name, table, path, outcomes))
    return built
