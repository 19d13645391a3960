"""``xero-tableau doctor``: ping both real systems and say what is wrong and how to fix it.

Xero: the credentials, the state DB and its key, the webhook queue, a forced token refresh, the
tenants of ``/connections`` and per tenant one ``Organisation`` call with its rate-limit headroom.
Tableau, only when ``TABLEAU_SERVER_URL`` is set: per (server, site) a PAT sign-in, the REST
version and every routed project. Every check runs in its own ``try``: one failure is reported and
the rest still run. This module must never import dagster (the CLI stays light).
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from xero_tableau.rate_limits import DailyBudgetExhausted
from xero_tableau.settings import ConfigError, Settings
from xero_tableau.store import db
from xero_tableau.store.crypto import EncryptionKeyError, load_fernet
from xero_tableau.store.event_queue import EventQueue
from xero_tableau.store.tenants import KnownTenant, list_tenants
from xero_tableau.token_store import TokenStore
from xero_tableau.xero.errors import ReconsentRequired, XeroError, XeroForbidden
from xero_tableau.xero_connection import XeroConnection, open_xero

if TYPE_CHECKING:  # tableauserverclient and the Hyper API load only when Tableau is checked
    from xero_tableau.tableau.publish import TableauPublisher

__all__ = [
    "DAY_BUDGET_WARN_FRACTION",
    "MIN_INCREMENTAL_REST_VERSION",
    "Check",
    "exit_code",
    "format_report",
    "run_doctor",
]

System = Literal["xero", "tableau"]

#: Below this share of the daily call budget left, a tenant's headroom check warns.
DAY_BUDGET_WARN_FRACTION = 0.10
#: An event still unfinished after this long means the sensor or the daemon is not running.
STALE_EVENT_SECONDS = 15 * 60
#: ``update_hyper_data`` (incremental publishing) needs this REST API version.
MIN_INCREMENTAL_REST_VERSION = (3, 13)

CONNECT_FIX = "Run `xero-tableau connect` to consent again (and pick every organisation to sync)."
PAT_FIX = (
    "Check TABLEAU_PAT_NAME and TABLEAU_PAT_SECRET (create a new personal access token under "
    "My Account Settings if it expired or was revoked) and TABLEAU_SITE (the site's content URL, "
    "empty for the Default site). A PAT allows one session at a time: give each process that "
    "signs in at the same time (another sync, another machine) its own token."
)


@dataclass
class Check:
    """One line of the doctor's report.

    ``ok`` False means something is broken (the exit code becomes 1); ``warning`` marks an ok
    check that still deserves attention (low budget, a tenant disconnected earlier). ``fix`` says
    what to do; it is empty when there is nothing to do."""

    system: System
    name: str
    ok: bool
    detail: str
    fix: str = ""
    warning: bool = False


def run_doctor(settings: Settings) -> list[Check]:
    """Run every check against the real systems ``settings`` points at, Xero first."""
    checks: list[Check] = []
    tenants = _XeroDoctor(settings, checks).run()
    _TableauDoctor(settings, checks, tenants).run()
    return checks


def exit_code(checks: Iterable[Check]) -> int:
    """0 when every check passed (warnings included), 1 otherwise."""
    return 0 if all(check.ok for check in checks) else 1


def format_report(checks: Sequence[Check]) -> str:
    """A readable table: one line per check (✓ ok, ! warning, ✗ failed), its fix underneath, and
    a summary line."""
    if not checks:
        return "no checks ran"
    width = min(40, max(len(check.name) for check in checks))
    lines: list[str] = []
    system: str | None = None
    for check in checks:
        if check.system != system:
            system = check.system
            if lines:
                lines.append("")
            lines.append(system.capitalize())
        mark = "✗" if not check.ok else ("!" if check.warning else "✓")
        lines.append(f"  {mark} {check.name.ljust(width)}  {check.detail}")
        if check.fix:
            lines.append(f"    {' ' * width}  fix: {check.fix}")
    failed = sum(not check.ok for check in checks)
    warned = sum(check.ok and check.warning for check in checks)
    lines.append("")
    lines.append(
        f"{len(checks)} checks: {len(checks) - failed - warned} ok, {warned} warning(s), "
        f"{failed} failed"
    )
    return "\n".join(lines)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass(frozen=True)
class _Tenant:
    """A tenant the Tableau checks route: its id and a name for the report."""

    tenant_id: str
    name: str

    @property
    def label(self) -> str:
        return f"{self.name} ({self.tenant_id})" if self.name else self.tenant_id


# ------------------------------------------------------------------------------------ Xero


class _XeroDoctor:
    """The Xero checks, in order; each later one runs only when what it needs is there."""

    def __init__(self, settings: Settings, checks: list[Check]) -> None:
        self.settings = settings
        self.checks = checks
        self.recorded: list[KnownTenant] | None = None

    def add(self, name: str, ok: bool, detail: str, fix: str = "", warning: bool = False) -> None:
        self.checks.append(Check("xero", name, ok, detail, fix, warning))

    def run(self) -> list[_Tenant] | None:
        """The tenants to route (connected ones, else the recorded active ones; None: unknown)."""
        credentials = self.check_credentials()
        engine = self.check_state_db()
        try:
            tokens_stored = engine is not None and self.check_key(engine)
            if engine is not None:
                self.check_webhooks(engine)
        finally:
            if engine is not None:
                engine.dispose()
        connected: list[_Tenant] | None = None
        usable = tokens_stored or (
            engine is not None and self.settings.xero_auth_mode == "client_credentials"
        )
        if credentials and usable:
            try:
                with open_xero(self.settings) as xero:
                    connected = self.check_api(xero)
            except Exception as exc:  # opening the connection itself failed
                self.add("connection", False, _describe(exc), "Check the Xero settings above.")
        if connected is not None:
            return connected
        if self.recorded is not None:
            return [_Tenant(t.tenant_id, t.name) for t in self.recorded if t.active]
        return None

    def check_credentials(self) -> bool:
        try:
            self.settings.require_xero_app()
        except ConfigError as exc:
            self.add(
                "app credentials", False, "XERO_CLIENT_ID / XERO_CLIENT_SECRET missing", str(exc)
            )
            return False
        self.add(
            "app credentials",
            True,
            f"client id {self.settings.xero_client_id}, {self.settings.xero_auth_mode} flow",
        )
        return True

    def check_state_db(self) -> Engine | None:
        url = self.settings.database_url
        shown = sa.make_url(db.normalize_url(url)).render_as_string(hide_password=True)
        try:
            if url.startswith("sqlite:///"):
                path = Path(url.removeprefix("sqlite:///"))
                if not path.exists():
                    self.add(
                        "state DB",
                        False,
                        f"{path} does not exist yet",
                        "Run `xero-tableau connect` (it creates the state DB), or point "
                        "XT_DATABASE_URL / XT_HOME at the existing one.",
                    )
                    return None
            engine = db.connect(url)
            self.recorded = list_tenants(engine)
        except Exception as exc:
            self.add(
                "state DB",
                False,
                f"{shown}: {_describe(exc)}",
                "Check XT_DATABASE_URL (and that the database server is up and reachable).",
            )
            return None
        self.add("state DB", True, f"{shown}, {len(self.recorded)} tenant(s) recorded")
        return engine

    def check_webhooks(self, engine: Engine) -> None:
        """The webhook queue: strangers, retries, and events the sensor has not taken in."""
        try:
            health = EventQueue(engine).health()
        except Exception as exc:
            self.add("webhook queue", False, _describe(exc), "Check XT_DATABASE_URL.")
            return
        counts = health.counts
        if health.last_received is None:
            detail = "no webhook received yet"
            if self.settings.xero_webhook_key:
                detail += " (XERO_WEBHOOK_KEY is set: is the receiver registered in Xero?)"
            self.add("webhook queue", True, detail)
            return
        self.add(
            "webhook queue",
            True,
            f"{counts['done']} done, {counts['pending']} pending, {counts['requested']} in a run, "
            f"{counts['ignored']} ignored; last received {health.last_received:%Y-%m-%d %H:%M} UTC",
        )
        if health.unknown_tenants:
            named = ", ".join(
                f"{t} ({n} events)" for t, n in sorted(health.unknown_tenants.items())
            )
            self.add(
                "webhook tenants",
                True,
                f"events from organisation(s) not connected here, recorded and ignored: {named}",
                "If they should sync, run `xero-tableau connect` and pick them; events already "
                "received stay ignored (the next poll reads their changes).",
                warning=True,
            )
        if health.retrying:
            self.add(
                "webhook retries",
                True,
                f"{health.retrying} event(s) wait for a retry after their run failed",
                "Open the failed runs tagged xero/purpose=webhook in the Dagster UI; the sensor "
                "retries with a growing backoff (XT_WEBHOOK_RETRY_SECONDS).",
                warning=True,
            )
        age = (
            (datetime.now(UTC) - health.oldest_pending).total_seconds()
            if (health.oldest_pending)
            else 0.0
        )
        if age > STALE_EVENT_SECONDS:
            self.add(
                "webhook backlog",
                True,
                f"the oldest unfinished event arrived {age / 60:.0f} minutes ago",
                "Is the Dagster daemon running, with the sensor xero_webhook_events on?",
                warning=True,
            )

    def check_key(self, engine: Engine) -> bool:
        """The encryption key opens the stored tokens; True when tokens are stored."""
        settings = self.settings
        try:
            with engine.connect() as conn:
                stored = conn.execute(
                    sa.select(sa.func.count()).select_from(db.xero_tokens)
                ).scalar_one()
            if not settings.encryption_key and not settings.key_file.exists():
                if stored:
                    self.add(
                        "encryption key",
                        False,
                        f"tokens are stored but neither XT_ENCRYPTION_KEY nor {settings.key_file} "
                        "exists",
                        "Restore the key file or set XT_ENCRYPTION_KEY to the key used before; "
                        "if it is lost, run `xero-tableau connect` to start afresh.",
                    )
                else:
                    self.add(
                        "encryption key",
                        True,
                        f"none yet: `xero-tableau connect` creates {settings.key_file}",
                    )
                    self.add("token", False, "no Xero tokens are stored", CONNECT_FIX)
                return False
            fernet = load_fernet(settings.encryption_key, settings.key_file)
            loaded = TokenStore(engine, fernet).load()
        except EncryptionKeyError as exc:
            self.add("encryption key", False, "the key cannot open the stored tokens", str(exc))
            return False
        except Exception as exc:
            self.add(
                "encryption key", False, _describe(exc), "Check XT_ENCRYPTION_KEY / the key file."
            )
            return False
        source = "XT_ENCRYPTION_KEY" if settings.encryption_key else str(settings.key_file)
        self.add(
            "encryption key",
            True,
            f"{source} opens the stored tokens" if loaded else f"{source} readable",
        )
        if loaded is None and settings.xero_auth_mode == "authorization_code":
            self.add("token", False, "no Xero tokens are stored", CONNECT_FIX)
        return loaded is not None

    def check_api(self, xero: XeroConnection) -> list[_Tenant] | None:
        if not self.check_token(xero):
            return None
        connected = self.check_tenants(xero)
        for tenant in connected or []:
            self.check_headroom(xero, tenant)
        return connected

    def check_token(self, xero: XeroConnection) -> bool:
        session = xero.session
        try:
            stored = session.store.load()
            current = stored.tokens.access_token if stored is not None else ""
            session.refresh_now(current)  # forces a refresh: the current token counts as stale
            fresh = session.store.load()
        except ReconsentRequired as exc:
            self.add("token refresh", False, str(exc), CONNECT_FIX)
            return False
        except XeroError as exc:
            fix = (
                "Check XERO_CLIENT_ID and XERO_CLIENT_SECRET (and that the app still exists)."
                if "invalid_client" in str(exc)
                else "Run the doctor again; if it persists, run `xero-tableau connect`."
            )
            self.add("token refresh", False, str(exc), fix)
            return False
        except Exception as exc:
            self.add("token refresh", False, _describe(exc), "Check XERO_IDENTITY_BASE.")
            return False
        scopes = fresh.tokens.scope if fresh is not None else ""
        self.add(
            "token refresh",
            True,
            "refreshed and rotated" + (f"; scopes: {scopes}" if scopes else ""),
        )
        return True

    def check_tenants(self, xero: XeroConnection) -> list[_Tenant] | None:
        try:
            found = xero.client.connections()
        except ReconsentRequired as exc:
            self.add("tenants", False, str(exc), CONNECT_FIX)
            return None
        except Exception as exc:
            self.add("tenants", False, f"/connections failed: {_describe(exc)}", CONNECT_FIX)
            return None
        connected = [_Tenant(t.tenant_id, t.name) for t in found]
        if connected:
            names = ", ".join(t.label for t in connected)
            self.add("tenants", True, f"{len(connected)} connected: {names}")
        else:
            self.add("tenants", False, "no organisation is connected to the app", CONNECT_FIX)
        live = {t.tenant_id for t in connected}
        for known in self.recorded or []:
            if known.tenant_id in live:
                continue
            label = _Tenant(known.tenant_id, known.name).label
            if known.active:
                self.add(
                    f"tenant {known.name or known.tenant_id}",
                    False,
                    f"{label} is recorded in the state DB but no longer connected in Xero "
                    "(disconnected, or a demo company that was reset)",
                    f"{CONNECT_FIX.removesuffix('.')}, choosing {known.name or 'it'}; if it was "
                    "removed on purpose, nothing else is needed (its history is kept).",
                )
            else:
                self.add(
                    f"tenant {known.name or known.tenant_id}",
                    True,
                    f"{label} was disconnected earlier and is not synced",
                    "Run `xero-tableau connect` to reconnect it if it should be synced.",
                    warning=True,
                )
        return connected

    def check_headroom(self, xero: XeroConnection, tenant: _Tenant) -> None:
        name = f"rate limits: {tenant.name or tenant.tenant_id}"
        per_day = self.settings.xero_daily_call_limit
        client = xero.client
        try:
            client.get("Organisation", tenant.tenant_id)
            usage = xero.limiter.usage(tenant.tenant_id)
        except DailyBudgetExhausted as exc:
            self.add(name, False, str(exc), "Wait for the day budget to come back; nothing to fix.")
            return
        except XeroForbidden as exc:
            self.add(name, False, str(exc), CONNECT_FIX)
            return
        except Exception as exc:
            self.add(name, False, f"Organisation call failed: {_describe(exc)}", "Run again later.")
            return
        day = client.stats.day_remaining.get(tenant.tenant_id)
        minute = client.stats.min_remaining.get(tenant.tenant_id)
        day_left = day if day is not None else int(usage["day_remaining"])
        parts = [
            f"Xero: {'?' if day is None else day}/{per_day} calls left today, "
            f"{'?' if minute is None else minute} this minute",
            f"local limiter: {usage['last_day']} today, {usage['last_minute']} this minute, "
            f"{usage['in_flight']} in flight",
        ]
        fixes: list[str] = []
        if day_left < per_day * DAY_BUDGET_WARN_FRACTION:
            fixes.append(
                f"Under {DAY_BUDGET_WARN_FRACTION:.0%} of the day budget is left: syncs will stop "
                "early and resume when it recovers (check XERO_DAILY_CALL_LIMIT matches the "
                "app's tier, and that no other app shares this connection)."
            )
        if usage.get("blocked_until") is not None:
            parts.append(f"held back until {usage['blocked_until']:%H:%M:%S} UTC")
            fixes.append(f"Xero answered 429 ({usage['blocked_reason']}); calls wait it out.")
        self.add(name, True, "; ".join(parts), " ".join(fixes), warning=bool(fixes))


# ------------------------------------------------------------------------------------ Tableau


@dataclass(frozen=True)
class _Target:
    """One project on one site of one server, and the tenants routed there."""

    server_url: str
    site: str
    project: str
    tenants: tuple[str, ...]


class _TableauDoctor:
    """The Tableau checks: one sign-in per (server, site), then every routed project on it."""

    def __init__(
        self, settings: Settings, checks: list[Check], tenants: list[_Tenant] | None
    ) -> None:
        self.settings = settings
        self.checks = checks
        self.tenants = tenants

    def add(self, name: str, ok: bool, detail: str, fix: str = "", warning: bool = False) -> None:
        self.checks.append(Check("tableau", name, ok, detail, fix, warning))

    def run(self) -> None:
        settings = self.settings
        if not settings.tableau_server_url:
            self.add(
                "output",
                True,
                f"TABLEAU_SERVER_URL unset: local .hyper output at {settings.hyper_dir}",
            )
            return
        missing = [
            name
            for name, value in (
                ("TABLEAU_PAT_NAME", settings.tableau_pat_name),
                ("TABLEAU_PAT_SECRET", settings.tableau_pat_secret),
            )
            if not value
        ]
        if missing:
            self.add("credentials", False, f"{' and '.join(missing)} not set", PAT_FIX)
            return
        targets = self.targets()
        if targets is None:
            return
        by_site: dict[tuple[str, str], list[_Target]] = {}
        for target in targets:
            by_site.setdefault((target.server_url, target.site), []).append(target)
        for (server_url, site), site_targets in by_site.items():
            self.check_site(server_url, site, site_targets)

    def targets(self) -> list[_Target] | None:
        """The (server, site, project) triples the tenants are routed to; None on a bad file."""
        from xero_tableau.tableau.routing import (
            Route,
            RoutingError,
            UnknownTenantError,
            load_routing,
        )

        settings = self.settings
        default = Route(
            settings.tableau_site, settings.tableau_project, "", settings.tableau_server_url
        )
        try:
            routing = load_routing(settings.routing_file, default=default)
        except RoutingError as exc:
            self.add(
                "routing",
                False,
                str(exc),
                "Fix XT_ROUTING_FILE (see the README's routing section), or unset it to send "
                "every tenant to TABLEAU_SITE / TABLEAU_PROJECT.",
            )
            return None
        routed: dict[tuple[str, str, str], list[str]] = {}

        def place(route: Route, label: str) -> None:
            server = route.server_url or settings.tableau_server_url or ""
            routed.setdefault((server, route.site, route.project), []).append(label)

        if self.tenants is None or not self.tenants:
            if routing.source is None:
                place(default, "(default route)")
            else:
                for tenant_id in routing.tenants:
                    place(routing.route_for(tenant_id), tenant_id)
        else:
            for tenant in self.tenants:
                try:
                    place(routing.route_for(tenant.tenant_id), tenant.name or tenant.tenant_id)
                except UnknownTenantError as exc:
                    self.add(
                        f"route: {tenant.name or tenant.tenant_id}",
                        False,
                        str(exc),
                        f"Add tenant {tenant.tenant_id} ({tenant.name}) under `tenants:` in "
                        f"{routing.source} with its site, project and datasource_prefix.",
                    )
        if routing.source is not None:
            self.add("routing", True, f"{routing.source}: {len(routing.tenants)} tenant route(s)")
        return [
            _Target(server, site, project, tuple(labels))
            for (server, site, project), labels in routed.items()
        ]

    def check_site(self, server_url: str, site: str, targets: list[_Target]) -> None:
        from xero_tableau.tableau.outcome import PublishError
        from xero_tableau.tableau.publish import TableauPublisher

        settings = self.settings
        where = f"site {site or '(Default)'!r} at {server_url}"
        try:
            publisher = TableauPublisher(
                server_url, settings.tableau_pat_name or "", settings.tableau_pat_secret or "", site
            )
        except Exception as exc:
            self.add(f"sign-in {site or '(Default)'}", False, _describe(exc), _url_fix())
            return
        try:
            try:
                publisher.sign_in()
            except PublishError as exc:
                self.add(f"sign-in {site or '(Default)'}", False, str(exc), PAT_FIX)
                return
            except Exception as exc:
                self.add(
                    f"sign-in {site or '(Default)'}",
                    False,
                    f"{where}: {_describe(exc)}",
                    _url_fix(),
                )
                return
            self.add(
                f"sign-in {site or '(Default)'}",
                True,
                f"{where} with personal access token {settings.tableau_pat_name!r}",
            )
            self.check_version(publisher, site)
            for target in targets:
                self.check_project(publisher, target)
        finally:
            publisher.close()

    def check_version(self, publisher: "TableauPublisher", site: str) -> None:
        name = f"server version {site or '(Default)'}"
        try:
            info = publisher.server.server_info.get()
            product = getattr(info, "product_version", None) if info is not None else None
            reported = getattr(info, "rest_api_version", None) if info is not None else None
        except Exception as exc:
            product, reported = None, None
            unknown = _describe(exc)
        else:
            unknown = "" if reported else "serverInfo did not report a REST version"
        rest = str(reported or publisher.rest_version)
        detail = f"Tableau {product or 'version unknown'}, REST API {rest}"
        if unknown:
            detail += f" (assumed: {unknown})"
        try:
            old = tuple(int(part) for part in rest.split("."))[:2] < MIN_INCREMENTAL_REST_VERSION
        except ValueError:
            old = True
        needed = ".".join(str(part) for part in MIN_INCREMENTAL_REST_VERSION)
        if old and self.settings.tableau_publish_mode == "incremental":
            self.add(
                name,
                False,
                f"{detail}: incremental publishing needs REST API {needed}+",
                "Upgrade Tableau Server (2021.4 or later speaks REST 3.13), or set "
                "TABLEAU_PUBLISH_MODE=replace.",
            )
        elif old:
            self.add(name, True, f"{detail}: replace mode only (incremental needs {needed}+)")
        else:
            self.add(name, True, detail, warning=bool(unknown))

    def check_project(self, publisher: "TableauPublisher", target: _Target) -> None:
        from xero_tableau.tableau.outcome import PublishPermissionError

        site = target.site or "(Default)"
        name = f"project {target.project!r} on {site}"
        tenants = ", ".join(target.tenants)
        try:
            publisher.check_can_publish(target.project)
        except PublishPermissionError as exc:
            missing = exc.missing
            if "does not exist" in missing:
                fix = (
                    f"Create project {target.project!r} on site {site!r}, or route these tenants "
                    "elsewhere (TABLEAU_PROJECT, or the routing file)."
                )
            elif "site role" in missing:
                fix = (
                    f"Ask a site administrator for a publishing site role on {site!r} "
                    "(Creator or Explorer (can publish)) for the token's user: " + missing
                )
            else:
                fix = (
                    f"Ask a site or project administrator to grant the token's user Write "
                    f"(Allow) on project {target.project!r} on {site!r}, or route these "
                    "tenants to a project where it may publish."
                )
            self.add(name, False, f"{exc!s} (tenants: {tenants})", fix)
            return
        except Exception as exc:
            self.add(name, False, _describe(exc), "Run the doctor again; check the server logs.")
            return
        self.add(name, True, f"exists, publish permission ok (tenants: {tenants})")


def _url_fix() -> str:
    return (
        "Check TABLEAU_SERVER_URL (scheme, host and port; reachable from here?) and "
        "TABLEAU_SITE; " + PAT_FIX
    )
