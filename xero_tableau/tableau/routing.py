"""Which Tableau site, project and data source names each Xero tenant is published to.

A routing file is YAML::

    tenants:
      0b3c8e5e-...:                # the Xero tenant id
        site: finance              # the site's content URL ("" is the Default site on Server)
        project: Xero
        datasource_prefix: "acme_" # data source per table: f"{prefix}{table}"
        server_url: https://tableau.example.com   # optional; else the default route's

A tenant missing from the file is refused (:class:`UnknownTenantError`), never sent to a default
site; two tenants may not share a data source; unknown keys are errors. The default route applies
only when there is no routing file at all.

This package must never import dagster.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "Route",
    "Routing",
    "RoutingError",
    "UnknownTenantError",
    "datasource_name",
    "load_routing",
    "parse_routing",
]

_ENTRY_KEYS = {"site", "project", "datasource_prefix", "server_url"}
_REQUIRED_KEYS = ("site", "project")


class RoutingError(ValueError):
    """The routing file is missing, unreadable or invalid; the message says where and why."""


class UnknownTenantError(LookupError):
    """A tenant has no route: it must be added to the routing file before it is published."""

    def __init__(self, tenant_id: str, source: Path | None) -> None:
        self.tenant_id = tenant_id
        self.source = source
        where = f"routing file {source}" if source else "routing (no routing file, no default)"
        super().__init__(
            f"tenant {tenant_id!r} has no Tableau route in {where}; add it under `tenants:` "
            "with its site, project and datasource_prefix (tenants are never published to a "
            "default site when a routing file is used)"
        )

    def __str__(self) -> str:  # LookupError would repr() the message
        return str(self.args[0])


def datasource_name(prefix: str, table: str) -> str:
    """The published data source name of one table: the prefix glued to the table name."""
    return f"{prefix}{table}"


@dataclass(frozen=True)
class Route:
    """Where one tenant's tables go. ``site`` is the site's content URL (``""``: Default)."""

    site: str
    project: str
    datasource_prefix: str = ""
    server_url: str | None = None

    def datasource_name(self, table: str) -> str:
        """The data source that holds ``table`` for this route (``f"{prefix}{table}"``)."""
        return datasource_name(self.datasource_prefix, table)


@dataclass(frozen=True)
class Routing:
    """Tenant → :class:`Route`. ``source`` is the file it came from (None: default only)."""

    routes: Mapping[str, Route] = field(default_factory=dict)
    source: Path | None = None
    default: Route | None = None

    def route_for(self, tenant_id: str) -> Route:
        """The tenant's route; :class:`UnknownTenantError` if a routing file does not list it.

        Without a routing file every tenant gets ``default`` (if there is one)."""
        if self.source is None and not self.routes:
            if self.default is None:
                raise UnknownTenantError(tenant_id, None)
            return self.default
        route = self.routes.get(tenant_id)
        if route is None:
            raise UnknownTenantError(tenant_id, self.source)
        return route

    @property
    def tenants(self) -> list[str]:
        """The tenants the routing file lists (empty when only a default route exists)."""
        return sorted(self.routes)


def _text(value: Any, where: str, *, allow_empty: bool) -> str:
    if not isinstance(value, str):
        raise RoutingError(f"{where} must be a string, got {type(value).__name__} {value!r}")
    if not allow_empty and not value.strip():
        raise RoutingError(f"{where} must not be empty")
    if value != value.strip():
        raise RoutingError(f"{where} has leading or trailing spaces: {value!r}")
    return value


def parse_routing(data: Any, *, source: Path, default: Route | None = None) -> Routing:
    """Validate parsed YAML (``source`` is named in every error) and build a :class:`Routing`.

    ``default`` only lends its ``server_url`` to entries without one: it never routes a tenant.
    """
    if not isinstance(data, dict):
        raise RoutingError(f"{source}: the top level must be a mapping with a `tenants:` key")
    unknown = sorted(str(key) for key in data if key != "tenants")
    if unknown:
        raise RoutingError(f"{source}: unknown top-level keys {unknown}; only `tenants` is allowed")
    tenants = data.get("tenants")
    if not isinstance(tenants, dict) or not tenants:
        raise RoutingError(f"{source}: `tenants` must be a non-empty mapping of tenant id → route")
    routes: dict[str, Route] = {}
    owners: dict[tuple[str | None, str, str, str], str] = {}
    for raw_id, entry in tenants.items():
        if not isinstance(raw_id, str) or not raw_id.strip():
            raise RoutingError(
                f"{source}: tenant id {raw_id!r} must be a non-empty string (quote it)"
            )
        where = f"{source}: tenants.{raw_id}"
        if not isinstance(entry, dict):
            raise RoutingError(f"{where} must be a mapping with site, project, datasource_prefix")
        extra = sorted(str(key) for key in entry if key not in _ENTRY_KEYS)
        if extra:
            raise RoutingError(
                f"{where}: unknown keys {extra}; allowed: {', '.join(sorted(_ENTRY_KEYS))}"
            )
        missing = [key for key in _REQUIRED_KEYS if key not in entry]
        if missing:
            raise RoutingError(f"{where}: missing {', '.join(missing)}")
        site = _text(entry["site"], f"{where}.site", allow_empty=True)
        project = _text(entry["project"], f"{where}.project", allow_empty=False)
        prefix = _text(
            entry.get("datasource_prefix", ""), f"{where}.datasource_prefix", allow_empty=True
        )
        server_url: str | None = None
        if entry.get("server_url") is not None:
            server_url = _text(entry["server_url"], f"{where}.server_url", allow_empty=False)
        elif default is not None:
            server_url = default.server_url
        slot = (server_url, site, project, prefix)
        if slot in owners:
            raise RoutingError(
                f"{where}: same site {site!r}, project {project!r} and datasource_prefix "
                f"{prefix!r} as tenant {owners[slot]!r}; two tenants may not share data sources "
                "(give each its own datasource_prefix)"
            )
        owners[slot] = raw_id
        routes[raw_id] = Route(site, project, prefix, server_url)
    return Routing(routes=routes, source=source, default=default)


def load_routing(path: Path | None, *, default: Route | None) -> Routing:
    """Load the routing file, or (``path=None``) route every tenant to ``default``.

    With a file, tenants it does not list are refused; ``default`` only supplies the server URL
    for entries that omit ``server_url``."""
    if path is None:
        return Routing(routes={}, source=None, default=default)
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RoutingError(f"routing file {path} does not exist") from None
    except OSError as exc:
        raise RoutingError(f"routing file {path} cannot be read: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RoutingError(f"routing file {path} is not valid YAML: {exc}") from exc
    return parse_routing(data, source=path, default=default)
