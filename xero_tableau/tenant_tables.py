"""Building one tenant's normalized tables: the counterpart of ``raw_sync.sync_entity`` for the
tables asset (no dagster here).

Reads every raw day partition of the tenant (only the columns normalize and the checks need) and
its reference snapshots, normalizes, writes each table to ``lake/tenant=<id>/tables/<name>.parquet``
and runs the checks of ``transform.checks.TABLE_CHECKS`` that apply to it.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from xero_tableau import raw_lake
from xero_tableau.store import lake
from xero_tableau.transform.checks import CheckInputs, CheckOutcome, TableCheck, checks_for
from xero_tableau.transform.normalize import NORMALIZE_COLUMNS, Reference, normalize
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


def build_tenant_tables(lake_dir: Path, tenant_id: str) -> TenantTables:
    """Rebuild every fact and dimension of one tenant from its raw partitions, and check them."""
    raw = {
        entity: raw_lake.read_entity(lake_dir, tenant_id, entity, columns=columns)
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
    tables = normalize(tenant_id, raw, reference)
    out_dir = lake.tenant_dir(lake_dir, tenant_id) / "tables"
    inputs = CheckInputs(tenant_id, {entity: documents for entity, (documents, _) in raw.items()})
    built = TenantTables(
        tenant_id,
        datetime.now(UTC).isoformat(),
        quarantined=raw_lake.quarantined(lake_dir, tenant_id),
    )
    for name, table in tables.items():
        path = out_dir / f"{name}.parquet"
        lake.write_parquet(path, table)
        outcomes = [(check, check.run(name, table, inputs)) for check in checks_for(name)]
        built.tables.append(BuiltTable(name, table, path, outcomes))
    return built
