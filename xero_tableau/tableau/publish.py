"""Publish ``.hyper`` extracts to one Tableau site with tableauserverclient (TSC), safely.

Why it is built this way (see ``/work/shared/reference/tableau_facts.md``):

- **One session per run.** A personal access token allows one session: signing in again kills
  the earlier token (401002). So a :class:`TableauPublisher` signs in once, reuses the session
  for every push, and signs in again only when the server says the session is gone (401002, an
  idle timeout, or another process using the same PAT). TSC never re-authenticates by itself.
- **Only idempotent calls are retried after a re-sign-in**: GETs, an ``Overwrite`` publish (the
  same file twice gives the same data source) and ``update_hyper_data`` with the same
  ``request_id`` (the server runs one request id once). ``Append`` and ``CreateNew`` are never
  used: a retried Append doubles rows, a retried CreateNew fails with 409.
- **The REST version is pinned.** TSC defaults to 2.4 and silently stays there when
  ``serverInfo`` fails, after which ``update_hyper_data`` (TSC ``@api("3.13")``) raises. The
  publisher asks ``serverInfo`` once, pins the server's version (``api_version`` when the server
  does not say), and refuses incremental updates below 3.13 with a clear error.
- **Permissions are checked before any data moves** (:meth:`TableauPublisher.check_can_publish`):
  TSC has no effective-permission call, so the site role, ownership and explicit ``Write`` rules
  are evaluated; a refusal names the site, the project and the missing right.
- **Incremental updates are delete + insert by document**, with a deterministic ``request_id``
  (batch id + SHA-256 of the payload's rows, not of its bytes: Hyper files are not
  byte-reproducible, so a rebuilt payload must hash the same). A document's lines are replaced as
  a whole, so lines removed in Xero disappear too; a retry of the same batch is run once by
  Tableau, so it can neither double rows nor re-apply stale data over a later batch.
- **Every job is tracked to its finish code.** A failed job raises :class:`PublishFailed`
  carrying the :class:`PublishOutcome`, so the caller keeps its batch pending and retries it.
- **REST calls are counted** through TSC's ``session_factory`` (a response hook on every
  ``requests.Session`` TSC creates), so outcomes can compare incremental against replace.

State about batches lives behind the small :class:`PublishLedger` protocol; the only
implementation for now is :class:`InMemoryPublishLedger` (a state-DB table can implement the
same protocol later without changing the publisher).

This package must never import dagster.
"""

import hashlib
import json
import logging
import shutil
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol, Self, TypeVar, cast

import requests
import tableauserverclient as TSC
from tableauhyperapi import Connection, HyperException, TableName, escape_name
from tableauserverclient.server.endpoint.exceptions import (
    FailedSignInError,
    InternalServerError,
    NotSignedInError,
    ServerResponseError,
)

from xero_tableau.tableau.hyper import EXTRACT_SCHEMA, HyperWriter

__all__ = [
    "MIN_UPDATE_DATA_VERSION",
    "PUBLISHING_SITE_ROLES",
    "BatchRecord",
    "CallCounter",
    "InMemoryPublishLedger",
    "PublishError",
    "PublishFailed",
    "PublishLedger",
    "PublishOutcome",
    "PublishPermissionError",
    "PublishTimeout",
    "TableauPublisher",
    "content_sha256",
    "delete_insert_actions",
    "incremental_request_id",
    "keys_table_name",
]

logger = logging.getLogger(__name__)

#: ``update_hyper_data`` needs this REST version in TSC (``@api("3.13")``).
MIN_UPDATE_DATA_VERSION = "3.13"
#: Site roles that may publish at all (tableau_facts.md §1.5).
PUBLISHING_SITE_ROLES = frozenset(
    {
        "Creator",
        "ExplorerCanPublish",
        "SiteAdministratorCreator",
        "SiteAdministratorExplorer",
        "ServerAdministrator",
    }
)
#: Roles that hold implicit rights on every project (not listed in explicit rules).
_ADMIN_SITE_ROLES = frozenset(
    {"SiteAdministratorCreator", "SiteAdministratorExplorer", "ServerAdministrator"}
)
#: Finish codes TSC's ``wait_for_job`` accepts as success (0 Success, 3 Completed).
_SUCCESS_CODES = frozenset({0, 3})
_FINISH_CODE_NAMES = {0: "success", 1: "failed", 2: "cancelled", 3: "completed"}
_KEYS_SUFFIX = "__changed_keys"

Mode = Literal["replace", "create", "incremental", "noop"]
T = TypeVar("T")


# ------------------------------------------------------------------------------------ errors


class PublishError(RuntimeError):
    """Publishing could not be done; nothing is known to have changed unless the message says."""


class PublishPermissionError(PublishError):
    """The signed-in user may not publish to the project (raised before any data is sent)."""

    def __init__(self, site: str, project: str, missing: str) -> None:
        self.site = site
        self.project = project
        self.missing = missing
        super().__init__(
            f"cannot publish to project {project!r} on Tableau site {site or '(Default)'!r}: "
            f"{missing}"
        )


class PublishFailed(PublishError):
    """A publish or update job did not succeed; ``outcome`` holds its finish code and notes.

    The server discarded the job's changes (an update batch is all-or-nothing), so the caller
    keeps the batch pending and may retry it with the same batch id."""

    def __init__(self, outcome: "PublishOutcome") -> None:
        self.outcome = outcome
        notes = "; ".join(outcome.notes) or "no notes from the server"
        code = outcome.finish_code
        super().__init__(
            f"{outcome.mode} of data source {outcome.datasource_name!r} failed: job "
            f"{outcome.job_id} finished with code {outcome.finish_code} "
            f"({_FINISH_CODE_NAMES.get(-1 if code is None else code, 'unknown')}): {notes}"
        )


class PublishTimeout(PublishFailed):
    """The job did not report completion within ``poll_timeout``; its result is unknown.

    Retrying with the same batch id is still safe (Overwrite, or the same ``request_id``)."""


class _JobTimeout(Exception):
    """Internal: polling gave up; turned into :class:`PublishTimeout` with an outcome."""


# ------------------------------------------------------------------------------------ outcome


@dataclass(frozen=True)
class PublishOutcome:
    """What one publish or update did, for asset metadata, ledgers and benchmarks.

    ``rest_calls`` counts every HTTP request the operation made (sign-ins and permission checks
    included when they happened during it); ``calls_by_method`` splits them by HTTP method."""

    mode: Mode
    site: str
    project: str
    datasource_name: str
    datasource_id: str | None
    job_id: str | None
    finish_code: int | None
    succeeded: bool
    notes: tuple[str, ...] = ()
    duration_seconds: float = 0.0
    rest_calls: int = 0
    calls_by_method: Mapping[str, int] = field(default_factory=dict)
    request_id: str | None = None
    batch_id: str | None = None
    rows_sent: int | None = None
    sign_ins: int = 0


# ------------------------------------------------------------------------------------ ledger


@dataclass(frozen=True)
class BatchRecord:
    """The publish state of one incremental batch.

    ``request_id`` is the batch's deterministic base id; ``failures`` counts jobs that ended
    with a definite failure (finish code 1 or 2). Tableau discards a failed batch entirely, so
    after a *confirmed* failure the retry may use a fresh id (``<base>-r<failures>``): a server
    that remembers failed request ids would otherwise answer every retry with the old failed
    job. A timeout is not a confirmed failure and keeps the same id."""

    batch_id: str
    request_id: str
    datasource_name: str
    status: Literal["pending", "succeeded", "failed"]
    job_id: str | None = None
    finish_code: int | None = None
    notes: tuple[str, ...] = ()
    failures: int = 0
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class PublishLedger(Protocol):
    """Where batch states are kept between calls (in memory now; the state DB later)."""

    def get(self, batch_id: str) -> BatchRecord | None:
        """The batch's last record, or None if it was never attempted."""
        ...

    def put(self, record: BatchRecord) -> None:
        """Store (replace) the batch's record."""
        ...


class InMemoryPublishLedger:
    """A :class:`PublishLedger` in a dict: enough for one process and for tests."""

    def __init__(self) -> None:
        self._records: dict[str, BatchRecord] = {}
        self._lock = threading.Lock()

    def get(self, batch_id: str) -> BatchRecord | None:
        with self._lock:
            return self._records.get(batch_id)

    def put(self, record: BatchRecord) -> None:
        with self._lock:
            self._records[record.batch_id] = record

    def records(self) -> list[BatchRecord]:
        """Every record, oldest batch first."""
        with self._lock:
            return sorted(self._records.values(), key=lambda r: r.updated_at)


# ------------------------------------------------------------------------------------ counting


class CallCounter:
    """Counts HTTP requests TSC sends, via a response hook on each session it creates.

    TSC 0.42 makes one ``requests.Session`` per thread from ``session_factory``; hooking every
    one of them counts all calls (uploads and job polls included), thread-safely."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def session_factory(self) -> requests.Session:
        """A ``requests.Session`` whose responses are counted (pass to ``TSC.Server``)."""
        session = requests.Session()
        session.hooks["response"].append(self._hook)
        return session

    def _hook(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        method = response.request.method or "?"
        with self._lock:
            self._counts[method] += 1

    def snapshot(self) -> Counter[str]:
        """A copy of the counts by HTTP method so far."""
        with self._lock:
            return Counter(self._counts)

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())


# ------------------------------------------------------------------------------------ helpers


def incremental_request_id(
    batch_id: str, payload_sha256: str, datasource_name: str, actions: Sequence[Mapping[str, Any]]
) -> str:
    """The deterministic ``request_id`` of an update: the same batch, payload and actions give
    the same id, so a retry (ours, or a re-run of the asset) is executed once by Tableau.

    The data source name and actions are hashed too, so one batch id reused for two tables, or
    for different actions, never collides. Readable prefix, fixed length."""
    spec = json.dumps(
        {"batch": batch_id, "ds": datasource_name, "payload": payload_sha256, "actions": actions},
        sort_keys=True,
        separators=(",", ":"),
    )
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in batch_id)[:40]
    return f"xt-{safe}-{hashlib.sha256(spec.encode()).hexdigest()[:32]}"


def keys_table_name(table: str) -> str:
    """The payload table that lists the changed documents' keys for the ``delete`` action."""
    return f"{table}{_KEYS_SUFFIX}"


def delete_insert_actions(
    table: str, condition_columns: Sequence[str], *, schema: str = EXTRACT_SCHEMA
) -> list[dict[str, Any]]:
    """Delete every target row of a changed document, then insert the payload's rows.

    The delete reads the keys table (only the condition's columns: Tableau rejects a delete
    source with columns its condition does not use); the insert copies the rows by name."""
    eqs = [{"op": "eq", "source-col": col, "target-col": col} for col in condition_columns]
    condition: dict[str, Any] = eqs[0] if len(eqs) == 1 else {"op": "and", "args": eqs}
    target = {"target-schema": schema, "target-table": table}
    return [
        {
            "action": "delete",
            "source-schema": schema,
            "source-table": keys_table_name(table),
            **target,
            "condition": condition,
        },
        {"action": "insert", "source-schema": schema, "source-table": table, **target},
    ]


def _is_session_expired(err: BaseException) -> bool:
    """401002 (expired or superseded token) or TSC's own "not signed in"; not a bad sign-in."""
    if isinstance(err, FailedSignInError):
        return err.code == "401002"
    return isinstance(err, NotSignedInError)


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


# ------------------------------------------------------------------------------------ publisher


class TableauPublisher:
    """Publishes ``.hyper`` files to one Tableau site with one reused, self-healing session.

    Use as a context manager: entering signs in (once), leaving signs out. Not meant for
    concurrent use from several threads (TSC allows it, but the call counts per outcome would
    mix); run one publisher per site."""

    def __init__(
        self,
        server_url: str,
        pat_name: str,
        pat_secret: str,
        site: str,
        *,
        api_version: str = "3.24",
        poll_timeout: float = 1800.0,
        poll_interval: float = 0.5,
        max_poll_interval: float = 15.0,
        transient_retries: int = 2,
        sleep: Callable[[float], None] = time.sleep,
        ledger: PublishLedger | None = None,
        hyper: HyperWriter | None = None,
        work_dir: Path | None = None,
    ) -> None:
        """``site`` is the site's content URL; ``api_version`` is used when ``serverInfo`` does
        not answer. ``hyper``: a started writer whose Hyper process builds update payloads
        (default: one started on first need and stopped on exit). ``work_dir``: where payloads
        are staged (default: a temporary folder)."""
        self.server_url = server_url
        self.site = site
        self.api_version = api_version
        self.poll_timeout = poll_timeout
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.transient_retries = transient_retries
        self.ledger = ledger
        self._pat_name = pat_name
        self._pat_secret = pat_secret
        self._sleep = sleep
        self._hyper = hyper
        self._own_hyper = False
        self._work_dir = work_dir
        self._own_work_dir: Path | None = None
        self.counter = CallCounter()
        self.server = TSC.Server(
            server_url, use_server_version=False, session_factory=self.counter.session_factory
        )
        self.sign_ins = 0
        self._signed_in = False
        self._projects: dict[str, TSC.ProjectItem] = {}

    # -------------------------------------------------------------- session

    def __enter__(self) -> Self:
        self.sign_in()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def sign_in(self) -> None:
        """Pin the REST version (first time) and sign in with the PAT."""
        if not self._signed_in and self.sign_ins == 0:
            self._pin_version()
        try:
            self.server.auth.sign_in(
                TSC.PersonalAccessTokenAuth(self._pat_name, self._pat_secret, site_id=self.site)
            )
        except FailedSignInError as err:
            # Never retried: a bad PAT or site stays bad, and retries could lock the token.
            raise PublishError(
                f"sign-in to Tableau site {self.site or '(Default)'!r} at {self.server_url} with "
                f"personal access token {self._pat_name!r} failed ({err.code}: {err.summary}); "
                "check the token name, secret and site content URL"
            ) from err
        self.sign_ins += 1
        self._signed_in = True

    def _pin_version(self) -> None:
        """Use the server's REST version (what it speaks best); ``api_version`` if it won't say."""
        self.server.version = "2.4"  # serverInfo exists from 2.4 and needs no token
        version: str | None = None
        try:
            info = self.server.server_info.get()
            version = info.rest_api_version if info is not None else None
        except Exception as exc:  # any failure here just means "the server did not say"
            logger.warning("serverInfo failed (%s); pinning REST API %s", exc, self.api_version)
        self.server.version = version or self.api_version
        logger.info("Tableau REST API version pinned to %s", self.server.version)

    def close(self) -> None:
        """Sign out (a dead session is fine), stop an own Hyper process, drop staged files."""
        if self._signed_in:
            self._signed_in = False
            try:
                self.server.auth.sign_out()
            except (NotSignedInError, ServerResponseError, requests.RequestException) as exc:
                logger.info("sign-out failed (session already gone?): %s", exc)
        self.server.close()
        if self._own_hyper and self._hyper is not None:
            self._hyper.close()
            self._hyper = None
            self._own_hyper = False
        if self._own_work_dir is not None:
            shutil.rmtree(self._own_work_dir, ignore_errors=True)
            self._own_work_dir = None

    def _call(self, fn: Callable[[], T], *, idempotent: bool = True) -> T:
        """Run one TSC call, healing what is safe to heal for idempotent calls only (a
        non-idempotent call's first attempt may have applied):

        - an expired or superseded session (401002): sign in again, retry once;
        - a transient failure (HTTP 5xx, connection error): retry up to ``transient_retries``
          times with a growing pause."""
        if not self._signed_in:
            raise PublishError("the publisher is not signed in: use it in a `with` block")
        resigned, transient = False, 0
        while True:
            try:
                return fn()
            except NotSignedInError as err:
                if not idempotent or resigned or not _is_session_expired(err):
                    raise
                logger.info("Tableau session expired (%s); signing in again", err)
                resigned = True
                self.sign_in()
            except (InternalServerError, requests.ConnectionError, requests.Timeout) as err:
                if not idempotent or transient >= self.transient_retries:
                    raise
                transient += 1
                logger.warning("transient Tableau failure (%s); retry %d", err, transient)
                self._sleep(self.poll_interval * transient)

    @property
    def rest_version(self) -> str:
        """The pinned REST API version."""
        return str(self.server.version)

    # -------------------------------------------------------------- permissions

    def check_can_publish(self, project_name: str) -> TSC.ProjectItem:
        """The project, if it exists and the signed-in user may publish there.

        Rules (TSC exposes explicit permissions only): a publishing site role is required;
        administrators and the project's owner hold implicit rights; otherwise an explicit
        ``Write`` (or ``ProjectLeader``) ``Allow`` for the user, or for one of the user's groups
        when the user has no rule of their own, with no ``Deny`` taking precedence.
        Raises :class:`PublishPermissionError` naming what is missing. Cached per project."""
        cached = self._projects.get(project_name)
        if cached is not None:
            return cached
        server = self.server
        found = self._call(lambda: list(server.projects.filter(name=project_name)))
        matches = [p for p in found if p.name == project_name]
        if not matches:
            raise PublishPermissionError(self.site, project_name, "the project does not exist")
        if len(matches) > 1:
            top = [p for p in matches if not p.parent_id]
            if len(top) != 1:
                raise PublishPermissionError(
                    self.site,
                    project_name,
                    f"{len(matches)} projects have this name; rename one or use a unique name",
                )
            matches = top
        project = matches[0]
        user_id = server.user_id
        user = self._call(lambda: server.users.get_by_id(user_id))
        role = str(user.site_role or "")
        if role not in PUBLISHING_SITE_ROLES:
            raise PublishPermissionError(
                self.site,
                project_name,
                f"site role {role or 'unknown'!r} cannot publish (needs one of "
                f"{', '.join(sorted(PUBLISHING_SITE_ROLES))})",
            )
        if role in _ADMIN_SITE_ROLES or (project.owner_id and project.owner_id == user_id):
            self._projects[project_name] = project
            return project
        self._call(lambda: server.projects.populate_permissions(project))
        verdict = self._write_verdict(project, user)
        if verdict != "Allow":
            raise PublishPermissionError(
                self.site,
                project_name,
                f"user {user.name or user_id!r} lacks Write=Allow on the project "
                f"({'explicitly denied' if verdict == 'Deny' else 'no rule grants it'})",
            )
        self._projects[project_name] = project
        return project

    def _write_verdict(self, project: TSC.ProjectItem, user: TSC.UserItem) -> str | None:
        """Tableau's precedence: the user's own Deny, then own Allow, then group Deny, Allow."""

        def verdict(capabilities: Mapping[str, str]) -> str | None:
            modes = {capabilities.get("Write"), capabilities.get("ProjectLeader")}
            if "Deny" in modes:
                return "Deny"
            return "Allow" if "Allow" in modes else None

        rules = project.permissions
        own = [
            verdict(r.capabilities)
            for r in rules
            if r.grantee.tag_name == "user" and r.grantee.id == user.id
        ]
        if "Deny" in own:
            return "Deny"
        if "Allow" in own:
            return "Allow"
        group_rules = [r for r in rules if r.grantee.tag_name == "group"]
        if not any(verdict(r.capabilities) for r in group_rules):
            return None
        self._call(lambda: self.server.users.populate_groups(user))
        mine = {g.id for g in user.groups}
        group_verdicts = [verdict(r.capabilities) for r in group_rules if r.grantee.id in mine]
        if "Deny" in group_verdicts:
            return "Deny"
        return "Allow" if "Allow" in group_verdicts else None

    # -------------------------------------------------------------- lookups

    def find_datasource(self, datasource_name: str, project_name: str) -> TSC.DatasourceItem | None:
        """The data source of that name in that project, or None."""
        server = self.server
        found = self._call(
            lambda: list(server.datasources.filter(name=datasource_name, project_name=project_name))
        )
        exact = [d for d in found if d.name == datasource_name and d.project_name == project_name]
        if len(exact) > 1:
            raise PublishError(
                f"{len(exact)} data sources named {datasource_name!r} in project "
                f"{project_name!r} on site {self.site!r}; cannot tell which to update"
            )
        return exact[0] if exact else None

    # -------------------------------------------------------------- publishing

    def publish_replace(
        self, hyper_path: Path, datasource_name: str, project: str
    ) -> PublishOutcome:
        """Publish the whole extract with ``Overwrite`` (creates the data source if missing,
        keeps its LUID otherwise) as a job, and wait for the job's finish code."""
        started, before, sign_ins = time.monotonic(), self.counter.snapshot(), self.sign_ins
        project_item = self.check_can_publish(project)
        return self._overwrite(
            Path(hyper_path), datasource_name, project_item, "replace", started, before, sign_ins
        )

    def publish_incremental(
        self,
        changed_hyper_path: Path,
        datasource_name: str,
        project: str,
        table: str,
        key_column: str,
        batch_id: str,
        *,
        full_hyper_path: Path | None = None,
        tenant_column: str | None = "tenant_id",
    ) -> PublishOutcome:
        """Apply one batch of changed documents to the published data source.

        ``changed_hyper_path`` holds ``"Extract"."<table>"`` with every row of every changed
        document (``key_column`` is the document id, e.g. ``invoice_id``). If the data source
        does not exist yet it is created from ``full_hyper_path`` (the full extract, which
        already contains the batch). Otherwise ``update_hyper_data`` deletes the target rows of
        those documents (matched on ``tenant_column`` too, when given) and inserts the payload's
        rows, under a request id derived from ``batch_id`` and the payload rows' SHA-256, so
        repeating a batch never doubles rows. Raises :class:`PublishFailed` if the job fails."""
        started, before, sign_ins = time.monotonic(), self.counter.snapshot(), self.sign_ins
        condition_columns = [c for c in (tenant_column, key_column) if c]
        actions = delete_insert_actions(table, condition_columns)
        # Built locally first: the request id hashes its *content*, and a missing table or
        # column fails here, before anything is sent.
        payload, rows, payload_sha = self._build_payload(
            Path(changed_hyper_path), table, condition_columns
        )
        try:
            base_request_id = incremental_request_id(
                batch_id, payload_sha, datasource_name, actions
            )
            extra: dict[str, Any] = {"batch_id": batch_id, "request_id": base_request_id}
            previous = self.ledger.get(batch_id) if self.ledger is not None else None
            if previous is not None and previous.request_id != base_request_id:
                if previous.status == "succeeded":
                    raise PublishError(
                        f"batch {batch_id!r} was already published with other data (request id "
                        f"{previous.request_id}, now {base_request_id}); batch ids must not be "
                        "reused for different data"
                    )
                previous = None  # an unfinished attempt with other data: start afresh
            if previous is not None and previous.status == "succeeded":
                return self._outcome(
                    "noop", project, datasource_name, None, previous.job_id,
                    previous.finish_code, True, ("batch already published",),
                    started, before, sign_ins, **extra,
                )  # fmt: skip
            failures = previous.failures if previous is not None else 0
            request_id = f"{base_request_id}-r{failures}" if failures else base_request_id
            extra["request_id"] = request_id

            project_item = self.check_can_publish(project)
            existing = self.find_datasource(datasource_name, project)
            if existing is None:
                if full_hyper_path is None:
                    raise PublishError(
                        f"data source {datasource_name!r} does not exist in project {project!r} "
                        f"on site {self.site!r}: pass full_hyper_path to create it"
                    )
                outcome = self._overwrite(
                    Path(full_hyper_path), datasource_name, project_item, "create",
                    started, before, sign_ins, batch_id=batch_id, raise_on_failure=False,
                )  # fmt: skip
                self._record(outcome, batch_id, base_request_id)
                if not outcome.succeeded:
                    raise PublishFailed(outcome)
                return outcome

            if _version_tuple(self.rest_version) < _version_tuple(MIN_UPDATE_DATA_VERSION):
                raise PublishError(
                    f"incremental publish needs Tableau REST API {MIN_UPDATE_DATA_VERSION}+ "
                    f"(server speaks {self.rest_version}); use replace mode"
                )
            if rows == 0:
                return self._outcome(
                    "noop", project, datasource_name, existing.id, None, None, True,
                    ("no changed rows",), started, before, sign_ins, rows_sent=0, **extra,
                )  # fmt: skip
            if self.ledger is not None:
                self.ledger.put(
                    BatchRecord(
                        batch_id, base_request_id, datasource_name, "pending", failures=failures
                    )
                )
            server = self.server
            ds_id = existing.id or ""
            job = self._call(
                lambda: server.datasources.update_hyper_data(
                    ds_id,
                    request_id=request_id,
                    actions=cast(Sequence[Any], actions),
                    payload=str(payload),
                )
            )
        finally:
            payload.unlink(missing_ok=True)
        outcome = self._finish_job(
            job, "incremental", project, datasource_name, existing.id, started, before, sign_ins,
            rows_sent=rows, **extra,
        )  # fmt: skip
        self._record(outcome, batch_id, base_request_id)
        if not outcome.succeeded:
            raise PublishFailed(outcome)
        return outcome

    # -------------------------------------------------------------- internals

    def _overwrite(
        self,
        hyper_path: Path,
        datasource_name: str,
        project: TSC.ProjectItem,
        mode: Mode,
        started: float,
        before: Counter[str],
        sign_ins: int,
        *,
        batch_id: str | None = None,
        raise_on_failure: bool = True,
    ) -> PublishOutcome:
        if not hyper_path.is_file():
            raise FileNotFoundError(f"extract to publish not found: {hyper_path}")
        server = self.server
        item = TSC.DatasourceItem(project.id, name=datasource_name)
        job = self._call(
            lambda: server.datasources.publish(
                item, str(hyper_path), TSC.Server.PublishMode.Overwrite, as_job=True
            )
        )
        outcome = self._finish_job(
            job, mode, project.name or "", datasource_name, None, started, before, sign_ins,
            batch_id=batch_id,
        )  # fmt: skip
        if raise_on_failure and not outcome.succeeded:
            raise PublishFailed(outcome)
        return outcome

    def _finish_job(
        self,
        job: TSC.JobItem,
        mode: Mode,
        project: str,
        datasource_name: str,
        datasource_id: str | None,
        started: float,
        before: Counter[str],
        sign_ins: int,
        **extra: Any,
    ) -> PublishOutcome:
        """Poll the job to its finish code and describe the result (failure included)."""
        try:
            done = self._wait_for_job(job)
        except _JobTimeout as timeout:
            outcome = self._outcome(
                mode, project, datasource_name, datasource_id, job.id, None, False,
                (f"no finish code after {self.poll_timeout:.0f}s",), started, before, sign_ins,
                **extra,
            )  # fmt: skip
            raise PublishTimeout(outcome) from timeout
        notes = tuple(n for n in (done.notes or []) if n)
        notes += tuple(
            str(n.get("text") or n.get("value") or "") for n in (done.status_notes or [])
        )
        return self._outcome(
            mode, project, datasource_name, done.datasource_id or datasource_id, done.id,
            done.finish_code, done.finish_code in _SUCCESS_CODES, tuple(n for n in notes if n),
            started, before, sign_ins, **extra,
        )  # fmt: skip

    def _wait_for_job(self, job: TSC.JobItem) -> TSC.JobItem:
        """Poll ``GET jobs/{id}`` with backoff until it reports a finish code.

        Our own loop rather than TSC's ``wait_for_job``: each poll survives a session expiry on
        its own, the sleep is injectable, and a failure becomes an outcome, not an exception."""
        server, job_id = self.server, job.id
        delay, slept = self.poll_interval, 0.0
        deadline = time.monotonic() + self.poll_timeout
        while True:
            current = self._call(lambda: server.jobs.get_by_id(job_id))
            if current.completed_at is not None or current.finish_code not in (-1, None):
                return current
            if slept >= self.poll_timeout or time.monotonic() >= deadline:
                raise _JobTimeout(job_id)
            self._sleep(delay)
            slept += delay
            delay = min(delay * 1.4, self.max_poll_interval)

    def _outcome(
        self,
        mode: Mode,
        project: str,
        datasource_name: str,
        datasource_id: str | None,
        job_id: str | None,
        finish_code: int | None,
        succeeded: bool,
        notes: tuple[str, ...],
        started: float,
        before: Counter[str],
        sign_ins: int,
        **extra: Any,
    ) -> PublishOutcome:
        calls = self.counter.snapshot()
        calls.subtract(before)
        by_method = {method: n for method, n in sorted(calls.items()) if n}
        return PublishOutcome(
            mode=mode,
            site=self.site,
            project=project,
            datasource_name=datasource_name,
            datasource_id=datasource_id,
            job_id=job_id,
            finish_code=finish_code,
            succeeded=succeeded,
            notes=notes,
            duration_seconds=time.monotonic() - started,
            rest_calls=sum(by_method.values()),
            calls_by_method=by_method,
            sign_ins=self.sign_ins - sign_ins,
            **extra,
        )

    def _record(self, outcome: PublishOutcome, batch_id: str, request_id: str) -> None:
        if self.ledger is None:
            return
        previous = self.ledger.get(batch_id)
        failures = previous.failures if previous and previous.request_id == request_id else 0
        if outcome.finish_code in (1, 2):
            failures += 1
        self.ledger.put(
            BatchRecord(
                batch_id=batch_id,
                request_id=request_id,
                datasource_name=outcome.datasource_name,
                status="succeeded" if outcome.succeeded else "failed",
                job_id=outcome.job_id,
                finish_code=outcome.finish_code,
                notes=outcome.notes,
                failures=failures,
            )
        )

    def _hyper_writer(self) -> HyperWriter:
        if self._hyper is None:
            self._hyper = HyperWriter()
            self._hyper.start()
            self._own_hyper = True
        return self._hyper

    def _staging_dir(self) -> Path:
        if self._work_dir is not None:
            self._work_dir.mkdir(parents=True, exist_ok=True)
            return self._work_dir
        if self._own_work_dir is None:
            self._own_work_dir = Path(tempfile.mkdtemp(prefix="xt-publish-"))
        return self._own_work_dir

    def _build_payload(
        self, changed: Path, table: str, key_columns: Sequence[str]
    ) -> tuple[Path, int, str]:
        """Copy the changed rows' file and add the keys table the ``delete`` action reads.

        Returns the payload path, its row count and the SHA-256 of its rows' *content*
        (:func:`content_sha256`): two builds of the same rows are different bytes (Hyper files
        are not byte-reproducible), yet must give the same request id. A copy, so the caller's
        file is untouched."""
        if not changed.is_file():
            raise FileNotFoundError(f"changed-rows extract not found: {changed}")
        payload = self._staging_dir() / f"payload-{uuid.uuid4().hex}.hyper"
        shutil.copyfile(changed, payload)
        rows_table = TableName(EXTRACT_SCHEMA, table)
        keys_table = TableName(EXTRACT_SCHEMA, keys_table_name(table))
        cols = ", ".join(escape_name(c) for c in key_columns)
        try:
            with Connection(self._hyper_writer().process.endpoint, str(payload)) as conn:
                if not conn.catalog.has_table(rows_table):
                    raise PublishError(f"{changed} has no table {rows_table}")
                definition = conn.catalog.get_table_definition(rows_table)
                have = {c.name.unescaped for c in definition.columns}
                missing = [c for c in key_columns if c not in have]
                if missing:
                    raise PublishError(f"{changed}: table {rows_table} has no column {missing}")
                digest, rows = content_sha256(conn, rows_table)
                conn.execute_command(
                    f"CREATE TABLE {keys_table} AS SELECT DISTINCT {cols} FROM {rows_table}"
                )
        except HyperException as exc:
            payload.unlink(missing_ok=True)
            raise PublishError(f"cannot build the update payload from {changed}: {exc}") from exc
        except BaseException:
            payload.unlink(missing_ok=True)
            raise
        return payload, rows, digest


def content_sha256(conn: Connection, table: TableName) -> tuple[str, int]:
    """SHA-256 of a table's columns (names, types) and rows in a canonical order, plus the row
    count. Meant for update payloads (changed documents only), which are small."""
    definition = conn.catalog.get_table_definition(table)
    digest = hashlib.sha256()
    for column in definition.columns:
        digest.update(f"{column.name.unescaped}\x1f{column.type}\x1e".encode())
    order = ", ".join(str(i) for i in range(1, len(definition.columns) + 1))
    rows = 0
    with conn.execute_query(f"SELECT * FROM {table} ORDER BY {order}") as result:
        for row in result:
            rows += 1
            digest.update(
                "\x1f".join("\x00" if v is None else str(v) for v in row).encode() + b"\x1e"
            )
    return digest.hexdigest(), rows
