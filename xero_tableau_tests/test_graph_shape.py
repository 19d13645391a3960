"""A snapshot of the Dagster graph's shape: asset keys, groups, kinds, partitions, checks (and
which of them block), automation conditions, dependencies, sensors and schedules. A change to any
of them fails this test until the snapshot is rewritten (``XT_UPDATE_SNAPSHOTS=1 pytest
xero_tableau_tests/test_graph_shape.py``), so it is always deliberate and shows in review."""

import json
import os
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from xero_tableau.definitions import defs as load_definitions

SNAPSHOT = Path(__file__).parent / "snapshots" / "graph_shape.json"


def _partitions(partitions_def: dg.PartitionsDefinition | None) -> Any:
    if partitions_def is None:
        return None
    if isinstance(partitions_def, dg.MultiPartitionsDefinition):
        return {d.name: _partitions(d.partitions_def) for d in partitions_def.partitions_defs}
    if isinstance(partitions_def, dg.DynamicPartitionsDefinition):
        return f"dynamic:{partitions_def.name}"
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        return f"time:{partitions_def.cron_schedule}:{partitions_def.start.date()}"
    return type(partitions_def).__name__


def _check(spec: dg.AssetCheckSpec) -> str:
    """A check's name, marked when it is blocking (its failure stops the assets downstream)."""
    return f"{spec.name} (blocking)" if spec.blocking else spec.name


def shape() -> dict[str, Any]:
    # Loaded against a fresh instance, as Dagster's own tools do (not a closed one of another test).
    with dg.instance_for_test():
        return _shape(load_definitions())


def _shape(definitions: dg.Definitions) -> dict[str, Any]:
    repository = definitions.get_repository_def()
    graph = repository.asset_graph
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        condition = node.automation_condition
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "kinds": sorted(node.kinds),
            "partitions": _partitions(node.partitions_def),
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "automation": condition.get_label() or str(condition) if condition else None,
            "checks": sorted(_check(graph.get_check_spec(c)) for c in node.check_keys),
            "pools": sorted(node.pools or []),
        }
    sensors = {
        s.name: {
            "interval": s.minimum_interval_seconds,
            "default_status": s.default_status.value,
        }
        for s in repository.sensor_defs
    }
    schedules = {
        s.name: {"cron": s.cron_schedule, "timezone": s.execution_timezone}
        for s in repository.schedule_defs
    }
    return {
        "assets": assets,
        "sensors": dict(sorted(sensors.items())),
        "schedules": dict(sorted(schedules.items())),
        "resources": sorted(definitions.resources or {}),
    }


def test_graph_shape_is_the_snapshot() -> None:
    current = shape()
    if os.environ.get("XT_UPDATE_SNAPSHOTS"):
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    if not SNAPSHOT.exists():
        pytest.fail(f"no snapshot at {SNAPSHOT}: run with XT_UPDATE_SNAPSHOTS=1 to write it")
    expected = json.loads(SNAPSHOT.read_text())
    assert current == expected, (
        "the Dagster graph changed shape; if deliberate, rewrite the snapshot with "
        "XT_UPDATE_SNAPSHOTS=1 and review the diff"
    )
