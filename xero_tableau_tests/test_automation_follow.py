"""The tables and the extracts follow every upstream update, including one that lands while they
are being rebuilt (Dagster's eager() drops it: the run in progress read the data before it)."""

import dagster as dg
import pytest

from xero_tableau.defs.table_assets import FOLLOW_RAW, FOLLOW_TABLES

PARTS = dg.StaticPartitionsDefinition(["t1"])
CONDITIONS = {"tables": FOLLOW_RAW, "extracts": FOLLOW_TABLES}


def _requests_after_update_during_run(condition: dg.AutomationCondition) -> tuple[int, int]:
    """Evaluate: upstream updated -> downstream requested and run; during that run, upstream is
    updated again and a tick is evaluated; then a tick after the run. Returns the requests of the
    first tick and of the two later ones together."""
    instance = dg.DagsterInstance.ephemeral()
    state: dict = {"cursor": None, "later": 0, "done": False}

    @dg.asset(partitions_def=PARTS)
    def up() -> None: ...

    @dg.asset(partitions_def=PARTS, deps=[up], automation_condition=condition)
    def down(context: dg.AssetExecutionContext) -> None:
        if state["done"]:
            return
        state["done"] = True  # the run has read upstream; now upstream changes again
        context.instance.report_runless_asset_event(dg.AssetMaterialization("up", partition="t1"))
        state["during"] = tick(context.instance)

    defs = dg.Definitions(assets=[up, down])

    def tick(inst: dg.DagsterInstance) -> int:
        result = dg.evaluate_automation_conditions(defs=defs, instance=inst, cursor=state["cursor"])
        state["cursor"] = result.cursor
        return len(result.get_requested_partitions(dg.AssetKey("down")))

    tick(instance)  # the first evaluation handles nothing
    instance.report_runless_asset_event(dg.AssetMaterialization("up", partition="t1"))
    first = tick(instance)
    assert dg.materialize([down], instance=instance, partition_key="t1", selection=[down]).success
    after = tick(instance)
    return first, state["during"] + after


@pytest.mark.parametrize("name", sorted(CONDITIONS))
def test_update_during_run_is_followed(name: str) -> None:
    first, later = _requests_after_update_during_run(CONDITIONS[name])
    assert first == 1
    assert later >= 1, "the update made while the asset was being rebuilt was never followed"


def test_plain_eager_drops_it() -> None:
    """Why the conditions are not eager(): this is the behaviour they replace."""
    first, later = _requests_after_update_during_run(dg.AutomationCondition.eager())
    assert (first, later) == (1, 0)


@pytest.mark.parametrize("name", sorted(CONDITIONS))
def test_no_update_no_rerun(name: str) -> None:
    """A run that saw every update is not followed by another one."""
    instance = dg.DagsterInstance.ephemeral()

    @dg.asset(partitions_def=PARTS)
    def up() -> None: ...

    @dg.asset(partitions_def=PARTS, deps=[up], automation_condition=CONDITIONS[name])
    def down() -> None: ...

    defs = dg.Definitions(assets=[up, down])
    cursor = dg.evaluate_automation_conditions(defs=defs, instance=instance).cursor
    instance.report_runless_asset_event(dg.AssetMaterialization("up", partition="t1"))
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    assert result.total_requested == 1
    assert dg.materialize([down], instance=instance, partition_key="t1", selection=[down]).success
    counts = []
    for _ in range(3):
        result = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, cursor=result.cursor
        )
        counts.append(result.total_requested)
    assert counts == [0, 0, 0]
