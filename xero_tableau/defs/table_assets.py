"""Normalized facts and dimensions per tenant, with their data checks, and the .hyper extracts.

Both follow the raw assets by declarative automation: when a raw day partition or a reference
snapshot of a tenant changes, that tenant's tables are rebuilt from every raw partition of the
tenant (``xero_tableau.tenant_tables``), then its extracts are written and published
(``xero_tableau.tenant_publish``).

The checks of ``transform.checks.TABLE_CHECKS`` of ERROR severity are blocking and per tenant: one
that fails fails the tables' step, so a run that also holds the extracts skips them, and the
extracts' automation waits until they pass (``all_deps_blocking_checks_passed``).
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
from xero_tableau.tenant_tables import (
    MissingOrganisation,
    blocking_failures,
    build_tenant_tables,
)
from xero_tableau.transform.checks import ERROR, CheckOutcome, TableCheck, checks_for
from xero_tableau.transform.schema import TABLES

TABLE_KEYS = {name: dg.AssetKey(table_path(name)) for name in TABLES}
RAW_DEPS = [
    dg.AssetDep(dg.AssetKey(raw_path(e)), partition_mapping=ALL_DAYS_OF_TENANT)
    for e in TRANSACTIONAL
]
REFERENCE_DEPS = [dg.AssetKey(raw_path(e)) for e in REFERENCE]
PREVIEW_ROWS = 5
# Dagster's eager() counts an upstream update as handled once the asset is requested *or
# materialized*. A raw update that lands while the tables run is in progress (after that run read
# the lake) would be "handled" by that run's completion and never followed: the edit would stay out
# of Tableau until some later, unrelated change. Here only a request handles an update, and only
# one made before it: an update seen on the tick after the request (the run was queued or already
# reading) still counts, so the asset runs once more after the run in progress (docs/operations.md).
_UPDATED_SINCE_REQUESTED = (
    dg.AutomationCondition.newly_missing() | dg.AutomationCondition.any_deps_updated()
).since(
    (
        dg.AutomationCondition.newly_requested() & ~dg.AutomationCondition.any_deps_updated()
    ).with_label("requested, nothing newer")
    | dg.AutomationCondition.initial_evaluation()
)
# The tables follow every raw update of their tenant. Unlike eager(), neither missing upstream
# partitions nor raw runs in progress hold them back:
# - a tenant's raw day partitions from before its organisation existed, or of a switched-off
#   entity, are never materialized, and eager() would wait for them forever;
# - on a busy day webhook runs follow each other every few seconds and eager() would wait for a
#   gap between them.
FOLLOW_RAW = (_UPDATED_SINCE_REQUESTED & ~dg.AutomationCondition.in_progress()).with_label(
    "follow raw"
)
# The extracts follow the tables once none of them is missing or being rebuilt, and only while
# every blocking check of the tenant's tables passed (or is about to run in the same run as the
# extracts: a failure there then skips the extracts' step).
FOLLOW_TABLES = (
    _UPDATED_SINCE_REQUESTED
    & ~dg.AutomationCondition.any_deps_missing()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
    & dg.AutomationCondition.all_deps_blocking_checks_passed()
).with_label("follow checked tables")
SEVERITY = {ERROR: dg.AssetCheckSeverity.ERROR}


def _result(key: dg.AssetKey, check: TableCheck, outcome: CheckOutcome) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=check.name,
        passed=outcome.passed,
        severity=SEVERITY.get(check.severity, dg.AssetCheckSeverity.WARN),
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
        dg.AssetCheckSpec(
            check.name,
            asset=key,
            description=f"{check.description} ({check.severity})",
            blocking=check.blocking,
            partitions_def=xero_tenants,  # a tenant's failure gates that tenant's extracts only
        )
        for name, key in TABLE_KEYS.items()
        for check in checks_for(name)
    ],
    can_subset=False,
)
def xero_tables(context: dg.AssetExecutionContext, state: StateResource, xero: XeroResource):
    """Rebuild every fact and dimension of one tenant from its raw partitions (none of a
    switched-off entity: its tables are empty)."""
    settings = state.settings()
    engine = db.connect(settings.database_url)
    try:
        built = build_tenant_tables(
            settings.lake_dir, context.partition_key, engine, disabled=xero.disabled_entities
        )
    except MissingOrganisation as exc:
        raise dg.Failure(str(exc)) from exc
    finally:
        engine.dispose()
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
            metadata["dq_notes"] = len(built.dq_notes)
        yield dg.MaterializeResult(asset_key=key, metadata=metadata)
        for check, outcome in table.checks:
            yield _result(key, check, outcome)


@dg.asset(
    key=list(EXTRACTS_PATH),
    group_name="tableau",
    kinds={"tableau", "hyper"},
    partitions_def=xero_tenants,
    deps=list(TABLE_KEYS.values()),
    automation_condition=FOLLOW_TABLES,
    description="One .hyper per published table in XT_HOME/hyper/<tenant>/, published to the "
    "tenant's Tableau site when TABLEAU_SERVER_URL is set (replace or incremental); never while "
    "an ERROR data check of the tenant's tables fails.",
)
def tableau_extracts(
    context: dg.AssetExecutionContext, tableau: TableauResource
) -> dg.MaterializeResult:
    tenant_id = context.partition_key
    settings = tableau.settings()
    blocked = blocking_failures(settings.lake_dir, tenant_id)
    if blocked:
        # A run of the extracts alone (manual, backfill) still never publishes failed tables.
        raise dg.Failure(
            description=f"not published: {len(blocked)} ERROR data check(s) failed on the "
            "tenant's tables:\n" + "\n".join(str(f) for f in blocked),
            metadata={"failed_checks": dg.MetadataValue.json([str(f) for f in blocked])},
            allow_retries=False,
        )
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
                    "documents_removed": t.documents_removed,
                    "job_id": t.outcome.job_id if t.outcome else None,
                    "finish_code": t.outcome.finish_code if t.outcome else None,
                    "notes": list(t.outcome.notes) if t.outcome else [],
                    "seconds": round(t.outcome.duration_seconds, 2) if t.outcome else 0,
                    "error": t.error,
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
