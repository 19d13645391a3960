"""Keeps the ``xero_tenants`` partitions in step with Xero's /connections."""

import dagster as dg

from xero_tableau.asset_names import XERO_TENANTS
from xero_tableau.defs.partitions import xero_tenants
from xero_tableau.defs.resources import XeroResource
from xero_tableau.xero.errors import XeroError
from xero_tableau.xero_connection import record_tenants


@dg.sensor(
    name="xero_tenants_sensor",
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Adds a partition for every organisation connected in Xero; a disconnected one "
    "is marked inactive in the state DB and its partition kept, so its history stays.",
)
def xero_tenants_sensor(
    context: dg.SensorEvaluationContext, xero: XeroResource
) -> dg.SensorResult | dg.SkipReason:
    try:
        with xero.connection() as conn:
            connected = [t.tenant_id for t in record_tenants(conn) if t.active]
    except XeroError as exc:
        return dg.SkipReason(f"cannot list Xero connections: {exc}")
    known = set(context.instance.get_dynamic_partitions(XERO_TENANTS))
    new = sorted(t for t in connected if t not in known)
    if not new:
        return dg.SkipReason(f"{len(connected)} tenant(s) connected, none new")
    return dg.SensorResult(dynamic_partitions_requests=[xero_tenants.build_add_request(new)])
