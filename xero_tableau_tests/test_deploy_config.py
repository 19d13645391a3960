"""The production instance config in deploy/ is valid for the Dagster we install."""

import importlib
from pathlib import Path

import pytest
from dagster._core.instance.config import dagster_instance_config

from xero_tableau.devstack import prepare_dagster_home

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def test_production_dagster_yaml_validates_and_names_real_classes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_HOST", "DAGSTER_PG_DB"):
        monkeypatch.setenv(name, "x")
    config, _cls = dagster_instance_config(str(DEPLOY))
    assert "postgres" in config["storage"]
    coordinator = config["run_coordinator"]
    module = importlib.import_module(coordinator["module"])
    assert getattr(module, coordinator["class"]).__name__ == "QueuedRunCoordinator"
    limits = config["concurrency"]["runs"]["tag_concurrency_limits"]
    assert {"key": "xero/tenant", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits


def test_embedded_dagster_yaml_validates_and_runs_one_raw_run_per_tenant(tmp_path: Path) -> None:
    prepare_dagster_home(tmp_path)
    config, _cls = dagster_instance_config(str(tmp_path))
    coordinator = config["run_coordinator"]
    module = importlib.import_module(coordinator["module"])
    assert getattr(module, coordinator["class"]).__name__ == "QueuedRunCoordinator"
    limits = coordinator["config"]["tag_concurrency_limits"]
    assert {"key": "xero/tenant", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits
