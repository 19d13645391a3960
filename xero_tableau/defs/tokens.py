"""Keeps the Xero refresh token alive: Xero kills one left unused for 60 days."""

import dagster as dg

from xero_tableau.defs.resources import XeroResource
from xero_tableau.xero.errors import XeroError


@dg.sensor(
    name="xero_token_keepalive",
    minimum_interval_seconds=6 * 3600,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Renews the stored Xero refresh token once it has gone 30 days unused, so a "
    "tenant whose syncs are paused never needs re-consent. Starts no runs.",
)
def xero_token_keepalive(xero: XeroResource) -> dg.SkipReason:
    try:
        with xero.connection() as conn:
            renewed = conn.session.keep_alive()
    except XeroError as exc:
        return dg.SkipReason(f"could not check the Xero token: {exc}")
    return dg.SkipReason("refresh token renewed" if renewed else "refresh token recently used")
