"""``xero-tableau sync``: one full sync of every tenant through Dagster, for cron users and CI.

Per tenant, three real Dagster runs recorded in the instance (the one at ``DAGSTER_HOME``, or
``XT_HOME/dagster``), so they show in the UI like any other:

1. the reference snapshots (organisation, accounts, tracking categories, tax rates, currencies);
2. the raw entities over every day since the organisation was created, as one single run (one
   paged If-Modified-Since read per entity);
3. the normalized tables with their checks, then the .hyper extracts (and the publish).

A tenant whose tables fail an ERROR data check is not published (the blocking check fails the
tables' step and Dagster skips the extracts); the sync says which checks failed and why, goes on
with the other tenants, and ``xero-tableau sync`` exits 1.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg

from xero_tableau import raw_lake
from xero_tableau.asset_names import (
    EXTRACTS_PATH,
    PURPOSE_TAG,
    XERO_TENANTS,
    day_range_tags,
    raw_path,
    table_path,
)
from xero_tableau.entities import REFERENCE, TRANSACTIONAL
from xero_tableau.settings import Settings
from xero_tableau.store.tenants import KnownTenant
from xero_tableau.tenant_tables import FailedCheck
from xero_tableau.transform.schema import TABLES
from xero_tableau.xero_connection import open_xero, record_tenants

QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
REFERENCE_KEYS = [dg.AssetKey(raw_path(e)) for e in REFERENCE]
RAW_KEYS = [dg.AssetKey(raw_path(e)) for e in TRANSACTIONAL]
TABLE_KEYS = {name: dg.AssetKey(table_path(name)) for name in TABLES}
EXTRACTS_KEY = dg.AssetKey(EXTRACTS_PATH)


@dataclass
class TenantSummary:
    tenant_id: str
    name: str
    runs: list[str] = field(default_factory=list)
    calls: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    quarantined: int = 0
    dq_notes: int = 0
    failed_checks: list[FailedCheck] = field(default_factory=list)
    published: list[dict] = field(default_factory=list)  # Tableau jobs, when publishing
    tableau_site: str = ""
    extracted: bool = False  # the extracts step ran to the end (.hyper written, published)
    errors: list[str] = field(default_factory=list)  # failed steps, other than blocking checks

    @property
    def blocking(self) -> list[FailedCheck]:
        return [f for f in self.failed_checks if f.severity == "ERROR"]

    @property
    def ok(self) -> bool:
        """Extracted (and published, when Tableau is set up): no ERROR check failed, no step."""
        return self.extracted and not self.blocking and not self.errors


def register_tenants(settings: Settings, instance: dg.DagsterInstance) -> list[KnownTenant]:
    """Read /connections, record the tenants and add any new one as a partition."""
    with open_xero(settings) as xero:
        known = record_tenants(xero)
    active = [t for t in known if t.active]
    add_tenant_partitions(instance, [t.tenant_id for t in active])
    return active


def add_tenant_partitions(instance: dg.DagsterInstance, tenant_ids: list[str]) -> None:
    existing = set(instance.get_dynamic_partitions(XERO_TENANTS))
    new = [tenant_id for tenant_id in tenant_ids if tenant_id not in existing]
    if new:
        instance.add_dynamic_partitions(XERO_TENANTS, new)


def _history_start(settings: Settings, tenant_id: str) -> date:
    """The day the organisation was created: no record can have been updated before it."""
    return raw_lake.history_start(settings.lake_dir, tenant_id)


def _calls(result: dg.ExecuteInProcessResult) -> int:
    """API calls a run spent. A ranged run repeats its metadata on every partition's event, so
    count each asset once."""
    per_asset: dict[dg.AssetKey, int] = {}
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        value = materialization.metadata.get("xero/calls")
        if value is not None:
            per_asset[materialization.asset_key] = int(value.value)  # type: ignore[arg-type]
    return sum(per_asset.values())


def _failed_checks(result: dg.ExecuteInProcessResult) -> list[FailedCheck]:
    failed = []
    for evaluation in result.get_asset_check_evaluations():
        if evaluation.passed:
            continue
        offending = evaluation.metadata.get("offending")
        sample = offending.value if offending is not None else []
        failed.append(
            FailedCheck(
                table=evaluation.asset_key.path[-1],
                check=evaluation.check_name,
                severity=evaluation.severity.value,
                description=evaluation.description or "",
                sample=[str(s) for s in sample] if isinstance(sample, list) else [],
            )
        )
    return failed


def _step_errors(result: dg.ExecuteInProcessResult) -> list[str]:
    errors = []
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data.error is not None:
            message = event.step_failure_data.error.message.strip()
            errors.append(f"{event.step_key}: {message}")
    return errors


def sync_all(
    settings: Settings,
    instance: dg.DagsterInstance,
    definitions: dg.Definitions,
    say: Callable[[str], None],
) -> list[TenantSummary]:
    assets = [a for a in definitions.assets or [] if isinstance(a, dg.AssetsDefinition)]
    resources = dict(definitions.resources or {})
    tenants = register_tenants(settings, instance)
    if not tenants:
        say("No Xero organisation is connected: run `xero-tableau connect` first.")
        return []
    today = datetime.now(UTC).date()
    summaries = []
    for tenant in tenants:
        summary = TenantSummary(tenant.tenant_id, tenant.name)
        say(f"\n{tenant.name} ({tenant.tenant_id})")

        def run(
            label: str,
            keys: list[dg.AssetKey],
            summary: TenantSummary = summary,
            **kwargs: object,
        ) -> dg.ExecuteInProcessResult:
            started = datetime.now(UTC)
            result = dg.materialize(
                assets,
                selection=dg.AssetSelection.assets(*keys),
                instance=instance,
                resources=resources,
                run_config=QUIET_RUN_CONFIG,
                **kwargs,  # type: ignore[arg-type]
            )
            seconds = (datetime.now(UTC) - started).total_seconds()
            calls = _calls(result)
            summary.runs.append(result.run_id)
            summary.calls += calls
            say(f"  {label:<34} run {result.run_id[:8]}  {calls:>4} calls  {seconds:5.1f}s")
            return result

        run(
            "reference snapshots",
            REFERENCE_KEYS,
            partition_key=tenant.tenant_id,
            tags={PURPOSE_TAG: "sync"},
        )
        first = _history_start(settings, tenant.tenant_id)
        run(
            f"raw entities {first} .. {today}",
            RAW_KEYS,
            tags={**day_range_tags(tenant.tenant_id, first, today), PURPOSE_TAG: "sync"},
        )
        result = run(
            "tables, checks and .hyper extracts",
            [*TABLE_KEYS.values(), EXTRACTS_KEY],
            partition_key=tenant.tenant_id,
            raise_on_error=False,  # a tenant whose checks fail must not stop the others
        )
        summary.failed_checks = _failed_checks(result)
        if summary.blocking:
            # the blocking checks failed the tables' step: that failure is the checks
            say(f"  NOT PUBLISHED: {len(summary.blocking)} ERROR data check(s) failed")
        else:
            summary.errors = _step_errors(result)
            for error in summary.errors:
                say(f"  FAILED {error}")
        for failure in summary.failed_checks:
            say(f"    {failure}")
        for event in result.get_asset_materialization_events():
            materialization = event.materialization
            if materialization.asset_key != EXTRACTS_KEY:
                continue
            summary.extracted = True
            metadata = materialization.metadata
            rows = metadata["rows_per_table"].value
            if isinstance(rows, dict):
                summary.rows = {str(k): int(v) for k, v in rows.items()}  # type: ignore[arg-type]
            jobs = metadata.get("tableau/jobs")
            if jobs is not None and isinstance(jobs.value, list):
                summary.published = [dict(j) for j in jobs.value]  # type: ignore[arg-type]
                site = metadata["tableau/site"].value
                summary.tableau_site = f"{site or 'Default'}/{metadata['tableau/project'].value}"
        summary.quarantined = len(raw_lake.quarantined(settings.lake_dir, tenant.tenant_id))
        summary.dq_notes = len(raw_lake.dq_notes(settings.lake_dir, tenant.tenant_id))
        summaries.append(summary)
    return summaries


def print_summary(
    settings: Settings, summaries: list[TenantSummary], say: Callable[[str], None]
) -> None:
    if not summaries:
        return
    tables = list(TABLE_KEYS)
    say("\nRows per table:")
    say("  " + f"{'table':<28}" + "".join(f"{s.name[:22]:>24}" for s in summaries))
    for table in tables:
        say("  " + f"{table:<28}" + "".join(f"{s.rows.get(table, 0):>24,}" for s in summaries))
    say("  " + f"{'Xero API calls':<28}" + "".join(f"{s.calls:>24,}" for s in summaries))
    say("  " + f"{'quarantined records':<28}" + "".join(f"{s.quarantined:>24,}" for s in summaries))
    say("  " + f"{'data-quality notes':<28}" + "".join(f"{s.dq_notes:>24,}" for s in summaries))
    for summary in summaries:
        if summary.blocking:
            say(
                f"\nNOT PUBLISHED: {summary.name} ({summary.tenant_id}), because ERROR data "
                'checks failed (fix the data in Xero; docs/operations.md, "Data checks"):'
            )
        elif summary.errors:
            say(f"\nFAILED: {summary.name} ({summary.tenant_id}):")
            for error in summary.errors:
                say(f"  {error}")
        elif summary.failed_checks:
            say(f"\nWARN data checks that failed for {summary.name} (they do not block):")
        for failure in summary.failed_checks:
            say(f"  {failure}")
    for summary in summaries:
        if not summary.published:
            continue
        say(f"\nTableau data sources of {summary.name} on {summary.tableau_site}:")
        for job in summary.published:
            rows = summary.rows.get(str(job["table"]), 0)
            outcome = (
                "unchanged"
                if job["mode"] == "unchanged"
                else (f"job {str(job['job_id'])[:8]} finish code {job['finish_code']}")
            )
            say(f"  {job['datasource']:<40}{rows:>10,} rows  {job['mode']:<9} {outcome}")
    say(f"\n.hyper files, one per table (Tableau Desktop opens them): {settings.hyper_dir}")
    for summary in summaries:
        say(f"  {Path(settings.hyper_dir) / summary.tenant_id}")
