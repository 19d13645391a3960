"""Normalized facts and dimensions per tenant, with their data checks, and the .hyper extracts.

Both follow the raw assets by declarative automation: when a raw day partition or a reference
snapshot of a tenant changes, that tenant's tables are rebuilt from every raw partition of the
tenant (``xero_tableau.tenant_tables``), then its extracts are written and published
(``xero_tableau.tenant_publish``).
"""

import dagster as dg

from xero_tableau.asset_names import EXTRACTS_PATH, raw_path, table_path
from xero_tableau.defs.partitions import ALL_DAYS_OF_TENANT, xero_tenants
from xero_tableau.defs.resources import StateResource, TableauResource, XeroResource
from xero_tableau.entities import REFERENCE, TRANSACTIONAL
from xero_tableau.previews import markdown_preview
from xero_tableau.store import db, lake
from xero_tableau.tableau.hyper import HyperWriter
from xero_tableau.tenant_publish import TenantPublish, publish_tenant
from xero_tableau.tenant_tables import MissingOrganisation, build_tenant_tables
from xero_tableau.transform.checks import CheckOutcome, checks_for
from xero_tableau.transform.schema import TABLES

TABLE_KEYS = {name: dg.AssetKey(table_path(name)) for name in TABLES}
RAW_DEPS = [
    dg.AssetDep(dg.AssetKey(raw_path(e)), partition_mapping=ALL_DAYS_OF_TENANT)
    for e in TRANSACTIONAL
]
REFERENCE_DEPS = [dg.AssetKey(raw_path(e)) for e in REFERENCE]
PREVIEW_ROWS = 5
# Eager, with two of its guards dropped:
# - missing upstream partitions do not block the rebuild: a tenant's raw day partitions from
#   before its organisation existed, or of a switched-off entity, are never materialized, and
#   plain eager() would wait for them forever;
# - a raw run in progress does not block it either: on a busy day webhook runs follow each other
#   every few seconds and plain eager() would wait for a gap between them (docs/operations.md).
FOLLOW_RAW = (
    dg.AutomationCondition.eager()
    .without(~dg.AutomationCondition.any_deps_missing())
    .without(~dg.AutomationCondition.any_deps_in_progress())
)


def _result(key: dg.AssetKey, name: str, outcome: CheckOutcome) -> dg.AssetCheckResult:
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
    check_specs=[
        dg.AssetCheckSpec(check.name, asset=key, description=check.description)
        for name, key in TABLE_KEYS.items()
        for check in checks_for(name)
    ],
    can_subset=False,
)
def xero_tables(context: dg.AssetExecutionContext, state: StateResource, xero: XeroResource):
    """Rebuild every fact and dimension of one tenant from its raw partitions (none of a
    switched-off entity: its tables are empty)."""
    try:
        built = build_tenant_tables(
            state.lake_dir, context.partition_key, disabled=xero.disabled_entities
        )
    except MissingOrganisation as exc:
        raise dg.Failure(str(exc)) from exc
    for table in built.tables:
        key = TABLE_KEYS[table.name]
        metadata: dict = {
            "dagster/row_count": table.table.num_rows,
            "path": dg.MetadataValue.path(str(table.path)),
            "built_at": built.built_at,
            "preview": dg.MetadataValue.md(
                markdown_preview(
                    table.table.slice(0, PREVIEW_ROWS).to_pylist(),
                    max_columns=10,
                    width=32,
                    empty="_empty_",
                )
            ),
        }
        if table.documents is not None:
            metadata["documents"] = table.documents
        if table.name == "fct_invoice_lines":
            metadata["quarantined_records"] = len(built.quarantined)
            metadata["quarantine"] = dg.MetadataValue.json(
                [
                    {k: q[k] for k in ("entity", "day", "id", "reason")}
                    for q in built.quarantined[:20]
                ]
            )
        yield dg.MaterializeResult(asset_key=key, metadata=metadata)
        for check, outcome in table.checks:
            yield _result(key, check.name, outcome)


@dg.asset(
    key=list(EXTRACTS_PATH),
    group_name="tableau",
    kinds={"tableau", "hyper"},
    partitions_def=xero_tenants,
    deps=list(TABLE_KEYS.values()),
    automation_condition=dg.AutomationCondition.eager(),
    description="One .hyper per published table in XT_HOME/hyper/<tenant>/, published to the "
    "tenant's Tableau site when TABLEAU_SERVER_URL is set (replace or incremental).",
)
def tableau_extracts(
    context: dg.AssetExecutionContext, tableau: TableauResource
) -> dg.MaterializeResult:
    tenant_id = context.partition_key
    settings = tableau.settings()
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
