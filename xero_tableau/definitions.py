"""The Definitions root: every object under ``defs/`` (autoloaded: each module's module-level
assets, checks, sensors and schedules), bound to the resources the environment describes."""

import os
from pathlib import Path

import dagster as dg

from xero_tableau.defs.resources import resources_from_env


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        dg.Definitions(resources=resources_from_env(os.environ)),
    )
