"""Normalized facts and dimensions per tenant, with their data checks, and the .hyper extracts.

Both follow the raw assets by declarative automation (``AutomationCondition.eager()``): when a raw
day partition or a reference snapshot of a tenant changes, that tenant's tables are rebuilt from
every raw partition of the tenant (latest version of each record), then its extracts.
"""

from datetime import UTC, datetime

import dagster as dg

from xero_tableau.defs.partitions import ALL_DAYS_OF_TENANT, xero_tenants
from xero_tableau.defs.raw_assets import RAW_ENTITIES
from xero_tableau.defs.reference_assets import REFERENCE_ENTITIES
from xero_tableau.defs.resources import XeroResource
from xero_tableau.store import db, lake, raw_lake
from xero_tableau.tableau.hyper import HyperWriter
from xero_tableau.tenant_publish import TenantPublish, publish_tenant
from xero_tableau.transform import checks
from xero_tableau.transform.normalize import NORMALIZE_COLUMNS, Reference, normalize
from xero_tableau.transform.schema import TABLES

TABLE_KEYS = {name: dg.AssetKey(["xero", "tables", name]) for name in TABLES}
FACTS = [name for name in TABLES if name.startswith("fct_")]
RAW_DEPS = [
    dg.AssetDep(dg.AssetKey(["xero", "raw", name]), partition_mapping=ALL_DAYS_OF_TENANT)
    for name in RAW_ENTITIES.values()
]
REFERENCE_DEPS = [dg.AssetKey(["xero", "raw", name]) for name, _p in REFERENCE_ENTITIES.values()]
PREVIEW_ROWS = 5
# Eager, with two of its guards dropped:
# - missing upstream partitions do not block the rebuild: a tenant's raw day partitions from
#   before its organisation existed, or of a switched-off entity, are never materialized, and
#   plain eager() would wait for them forever;
# - a raw run in progress does not block it either: on a busy day webhook runs follow each other
#   every few seconds and plain eager() would wait for a gap between them (measured: a minute and
#   more behind). Day partitions are swapped in atomically, so a rebuild reads each day whole,
#   and the raw run that was in progress triggers the next rebuild when it lands. One rebuild per
#   tenant at a time still holds (eager's own in_progress guard).
FOLLOW_RAW = (
    dg.AutomationCondition.eager()
    .without(~dg.AutomationCondition.any_deps_missing())
    .without(~dg.AutomationCondition.any_deps_in_progress())
)


def _check_specs() -> list[dg.AssetCheckSpec]:
    specs = []
    for name in TABLES:
        key = TABLE_KEYS[name]
        specs.append(dg.AssetCheckSpec("unique_keys", asset=key, description="Keys are unique."))
        specs.append(
            dg.AssetCheckSpec("single_tenant", asset=key, description="No row of another tenant.")
        )
    for name in FACTS:
        key = TABLE_KEYS[name]
        specs.append(
            dg.AssetCheckSpec(
                "known_accounts", asset=key, description="Every account code is in the chart."
            )
        )
        if name != "fct_payments":
            specs.append(
                dg.AssetCheckSpec(
                    "known_tracking_options",
                    asset=key,
                    description="Every tracking option is one of the tenant's.",
                )
            )
        if name in checks.SUBTOTAL_FACTS:
            specs.append(
                dg.AssetCheckSpec(
                    "lines_sum_to_subtotal",
                    asset=key,
                    description="Each document's lines sum to its SubTotal.",
                )
            )
    specs.append(
        dg.AssetCheckSpec(
            "journals_balance",
            asset=TABLE_KEYS["fct_manual_journal_lines"],
            description="Each manual journal's lines sum to zero.",
        )
    )
    return specs


def _result(key: dg.AssetKey, name: str, outcome: checks.CheckOutcome) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=name,
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=outcome.description,
        metadata={"failures": outcome.failures, "offending": dg.MetadataValue.json(outcome.sample)},
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            key,
            group_name="xero_tables",
            kinds={"parquet"},
            partitions_def=xero_tenants,
            deps=[*RAW_DEPS, *REFERENCE_DEPS],
            automation_condition=FOLLOW_RAW,
            description=TABLES[name].description,
        )
        for name, key in TABLE_KEYS.items()
    ],
    check_specs=_check_specs(),
    can_subset=False,
)
def xero_tables(context: dg.AssetExecutionContext, xero: XeroResource):
    """Rebuild every fact and dimension of one tenant from its raw partitions."""
    tenant_id = context.partition_key
    settings = xero.settings()
    lake_dir = settings.lake_dir
    raw = {
        entity: raw_lake.read_entity(lake_dir, tenant_id, entity, columns=_columns(entity))
        for entity in RAW_ENTITIES
    }
    organisation = raw_lake.read_reference(lake_dir, tenant_id, "Organisation")
    if not organisation:
        raise dg.Failure(
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
    quarantined = raw_lake.quarantined(lake_dir, tenant_id)
    built_at = datetime.now(UTC).isoformat()
    for name, table in tables.items():
        path = out_dir / f"{name}.parquet"
        lake.write_parquet(path, table)
        key = TABLE_KEYS[name]
        metadata: dict = {
            "dagster/row_count": table.num_rows,
            "path": dg.MetadataValue.path(str(path)),
            "built_at": built_at,
            "preview": dg.MetadataValue.md(_preview(table)),
        }
        record = TABLES[name].key[1]
        if name.startswith("fct_"):
            metadata["documents"] = len(set(table[record].to_pylist()))
        if name == "fct_invoice_lines":
            metadata["quarantined_records"] = len(quarantined)
            metadata["quarantine"] = dg.MetadataValue.json(
                [{k: q[k] for k in ("entity", "day", "id", "reason")} for q in quarantined[:20]]
            )
        yield dg.MaterializeResult(asset_key=key, metadata=metadata)
        yield _result(key, "unique_keys", checks.unique_keys(name, table))
        yield _result(key, "single_tenant", checks.single_tenant(name, table, tenant_id))
        if name.startswith("fct_"):
            yield _result(key, "known_accounts", checks.known_accounts(name, table))
            if name != "fct_payments":
                yield _result(
                    key, "known_tracking_options", checks.known_tracking_options(name, table)
                )
        if name in checks.SUBTOTAL_FACTS:
            documents = raw[checks.SUBTOTAL_FACTS[name][1]][0]
            outcome = checks.lines_sum_to_subtotal(name, table, documents)
            yield _result(key, "lines_sum_to_subtotal", outcome)
        if name == "fct_manual_journal_lines":
            yield _result(key, "journals_balance", checks.journals_balance(table))


def _columns(entity: str) -> tuple[list[str], list[str] | None]:
    """What normalize reads, plus the SubTotal the line-sum check compares against."""
    documents, lines = NORMALIZE_COLUMNS[entity]
    if entity in {raw for _id, raw in checks.SUBTOTAL_FACTS.values()}:
        documents = [*documents, "sub_total"]
    return documents, lines


def _preview(table) -> str:
    rows = table.slice(0, PREVIEW_ROWS).to_pylist()
    if not rows:
        return "_empty_"
    columns = list(rows[0])[:10]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r[c])[:32] for c in columns) + " |" for r in rows]
    return "\n".join(lines)


@dg.asset(
    key=["tableau", "extracts"],
    group_name="tableau",
    kinds={"tableau", "hyper"},
    partitions_def=xero_tenants,
    deps=list(TABLE_KEYS.values()),
    automation_condition=dg.AutomationCondition.eager(),
    description="One .hyper per published table in XT_HOME/hyper/<tenant>/, published to the "
    "tenant's Tableau site when TABLEAU_SERVER_URL is set (replace or incremental).",
)
def tableau_extracts(context: dg.AssetExecutionContext, xero: XeroResource) -> dg.MaterializeResult:
    tenant_id = context.partition_key
    settings = xero.settings()
    source = lake.tenant_dir(settings.lake_dir, tenant_id) / "tables"
    target = settings.hyper_dir / tenant_id
    rows: dict[str, int] = {}
    published: TenantPublish | None = None
    with HyperWriter(log_dir=settings.home / "logs") as writer:
        for name in TABLES:
            rows[name] = writer.write_table(
                source / f"{name}.parquet", target / f"{name}.hyper", name
            )
            context.log.info(f"{name}: {rows[name]} rows -> {target / (name + '.hyper')}")
        if settings.tableau_server_url:
            engine = db.connect(settings.database_url)
            try:
                published = publish_tenant(settings, engine, tenant_id, writer, context.log.info)
            finally:
                engine.dispose()
    metadata: dict = {
        "dagster/row_count": sum(rows.values()),
        "rows_per_table": dg.MetadataValue.json(rows),
        "folder": dg.MetadataValue.path(str(target)),
    }
    if published is not None:
        metadata["tableau/site"] = published.site
        metadata["tableau/project"] = published.project
        metadata["tableau/rest_calls"] = published.rest_calls
        metadata["tableau/jobs"] = dg.MetadataValue.json(
            [
                {
                    "table": t.table,
                    "datasource": t.datasource,
                    "mode": t.mode,
                    "documents_sent": t.documents_sent,
                    "job_id": t.outcome.job_id if t.outcome else None,
                    "finish_code": t.outcome.finish_code if t.outcome else None,
                    "notes": list(t.outcome.notes) if t.outcome else [],
                    "seconds": round(t.outcome.duration_seconds, 2) if t.outcome else 0,
                }
                for t in published.tables
            ]
        )
        if published.failed:
            # The batches stay pending in the ledger; the next run sends them again.
            raise dg.Failure(
                description="Tableau publish failed for "
                + ", ".join(f"{t.table} ({t.error})" for t in published.failed),
                metadata=metadata,
            )
    return dg.MaterializeResult(metadata=metadata)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(assets=[xero_tables, tableau_extracts])
