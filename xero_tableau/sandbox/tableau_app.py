"""The emulated Tableau Server / Cloud REST API, as tableauserverclient (TSC 0.42) calls it.

It answers under ``/api/{version}/`` with ``<tsResponse xmlns="http://tableau.com/api">`` bodies:
server info, sign-in and sign-out, projects and their permissions, users, data sources (publish,
update, delete, download as ``.tdsx``), file uploads and jobs. Every published data source is a
real ``.hyper`` file at ``<storage>/<site>/<luid>.hyper`` and the update actions run for real in
Hyper SQL, so a test can read back exactly what Tableau would hold. Where Tableau's documentation
is silent, the choices made are deliberate; ``docs/design-notes.md`` lists them.
"""

import io
import json
import math
import re
import secrets
import shutil
import tempfile
import threading
import time
import uuid
import zipfile
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from tableauhyperapi import (
    Connection,
    HyperException,
    HyperProcess,
    SchemaName,
    Telemetry,
    escape_name,
    escape_string_literal,
)

from xero_tableau.sandbox.credentials import (
    TABLEAU_DEMO_PAT_NAME,
    TABLEAU_DEMO_PAT_SECRET,
)
from xero_tableau.sandbox.server import RunningSandbox, ServedApp

NS = "http://tableau.com/api"
_NS = {"t": NS}
XML_TYPE = "application/xml;charset=utf-8"
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
REQUEST_ID_WINDOW = 24 * 3600.0
BYTES_PER_MB = 1024 * 1024
DEFAULT_SITE_DIR = "_default"  # the Default site's content URL is "", which is no directory name
_VERSION = re.compile(r"^(\d+)\.(\d+)$")
_COMPARISONS = {"eq": "=", "ne": "<>", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
_ACTIONS = ("insert", "update", "upsert", "delete", "replace")
T = TypeVar("T")


@dataclass
class TableauSandboxConfig:
    """What the emulated Tableau looks like; the defaults are the demo's."""

    sites: tuple[str, ...] = ("", "finance")  # content URLs; "" is the Default site
    pat_name: str = TABLEAU_DEMO_PAT_NAME
    pat_secret: str = TABLEAU_DEMO_PAT_SECRET
    user_name: str = "xero-sync"
    site_role: str = "Creator"
    # Project name -> whether the PAT's user may publish there; the same on every site.
    projects: dict[str, bool] = field(default_factory=lambda: {"Xero": True, "Restricted": False})
    session_ttl: float = 240 * 60.0  # idle seconds before a token is 401002 (Server's default)
    api_version: str = "3.24"
    product_version: str = "2024.2.0"
    build: str = "20242.24.0711.1636"
    storage_dir: Path | None = None  # None: a temporary directory removed by close()
    job_delay: float = 0.0  # seconds before a job reports completion
    fail_next_jobs: int = 0  # the next N jobs finish with finishCode 1 and change nothing
    remember_failed_request_ids: bool = False
    seed: str = "xero-tableau"  # makes site, project and user LUIDs stable across runs


@dataclass
class Faults:
    """Failures injected on purpose; tests change them on a running sandbox."""

    fail_next_jobs: int = 0
    # HTTP statuses forced on the next REST calls (before any work), e.g. [503, 504].
    fail_next_statuses: list[int] = field(default_factory=list)


@dataclass
class Site:
    id: str
    content_url: str
    name: str
    user_id: str
    owner_id: str  # the (admin) owner of the site's projects, not the PAT's user


@dataclass
class Project:
    id: str
    site_id: str
    name: str
    can_publish: bool


@dataclass
class Session:
    token: str
    site_id: str
    user_id: str
    pat_name: str
    last_used: float


@dataclass
class Datasource:
    id: str
    site_id: str
    name: str
    project_id: str
    content_url: str
    owner_id: str
    path: Path
    created_at: datetime
    updated_at: datetime


@dataclass
class UploadSession:
    id: str
    site_id: str
    path: Path
    size: int = 0


@dataclass
class Job:
    """A job as ``GET jobs/{id}`` reports it; ``done_at`` is when it starts reporting done."""

    id: str
    site_id: str
    type: str  # PublishDatasource | UpdateUploadedFile
    created_at: datetime
    done_at: float
    completed_at: datetime
    finish_code: int
    notes: list[str]
    datasource_id: str | None
    datasource_name: str | None
    request_id: str | None = None


class ApiError(Exception):
    """An error answered as Tableau does: an HTTP status plus ``<error code>`` XML."""

    def __init__(self, status: int, code: str, summary: str, detail: str) -> None:
        super().__init__(f"{status} {code} {summary}: {detail}")
        self.status = status
        self.code = code
        self.summary = summary
        self.detail = detail


class JobError(Exception):
    """A failure inside a job: the job finishes with finishCode 1 and this text as its notes."""


@dataclass
class Call:
    """One REST call, read off the ASGI request so the handlers can run in a worker thread."""

    method: str
    version: tuple[int, int]
    params: dict[str, str]
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    content_type: str
    session: Session | None = None
    site: Site | None = None


def _luid(seed: str, *parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join((seed, *parts))))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now() -> datetime:
    return datetime.now(UTC)


def _ts(inner: str) -> str:
    return (
        "<?xml version='1.0' encoding='UTF-8'?>"
        f'<tsResponse xmlns="{NS}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        f'xsi:schemaLocation="{NS} https://help.tableau.com/samples/en-us/rest_api/ts-api_3_24.xsd">'
        f"{inner}</tsResponse>"
    )


def _attrs(**values: object) -> str:
    return "".join(f" {k}={quoteattr(str(v))}" for k, v in values.items() if v is not None)


def error_xml(code: str, summary: str, detail: str) -> str:
    return _ts(
        f"<error code={quoteattr(code)}><summary>{escape(summary)}</summary>"
        f"<detail>{escape(detail)}</detail></error>"
    )


def _unauthorized() -> ApiError:
    return ApiError(
        401, "401002", "Unauthorized Access", "Invalid authentication credentials were provided."
    )


def _bad_request(detail: str, code: str = "400000") -> ApiError:
    return ApiError(400, code, "Bad Request", detail)


def parse_multipart(body: bytes, content_type: str) -> dict[str, bytes]:
    """Split a multipart/mixed (or form-data) body into ``{part name: bytes}``.

    Tableau's publish calls are multipart/mixed with form-data dispositions; starlette's form
    parser wants python-multipart and the ``email`` parser may rewrite binary parts, so split
    on the boundary ourselves and leave each part's bytes untouched.
    """
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match:
        raise _bad_request("The multipart request has no boundary.", "400011")
    delimiter = b"--" + match.group(1).encode()
    parts: dict[str, bytes] = {}
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk.removeprefix(b"\r\n")
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            continue
        name = re.search(rb'name="([^"]*)"', head)
        if name:
            parts[name.group(1).decode()] = content.removesuffix(b"\r\n")
    return parts


def _sql_name(*parts: str) -> str:
    return ".".join(escape_name(p) for p in parts)


def _literal(const: Any) -> str:
    """A condition's ``const`` ({"type": ..., "v": ...}) as a Hyper SQL literal."""
    if not isinstance(const, dict) or "v" not in const:
        raise JobError('A "const" operand must be {"type": ..., "v": ...}.')
    kind, value = str(const.get("type", "string")).lower(), const["v"]
    if value is None:
        return "NULL"
    if kind in ("string", "text"):
        return escape_string_literal(str(value))
    if kind in ("integer", "int", "bigint"):
        return str(int(value))
    if kind in ("double", "float", "real"):
        return f"CAST({float(value)!r} AS DOUBLE PRECISION)"
    if kind in ("numeric", "decimal"):
        return f"CAST({escape_string_literal(str(value))} AS NUMERIC(38,6))"
    if kind in ("bool", "boolean"):
        return "TRUE" if value in (True, "true", "True", 1) else "FALSE"
    if kind == "date":
        return f"DATE {escape_string_literal(str(value))}"
    if kind == "datetime":
        return f"TIMESTAMP {escape_string_literal(str(value).removesuffix('Z'))}"
    raise JobError(f"Unsupported const type {kind!r}.")


def condition_sql(cond: Any, src: str | None, tgt: str) -> str:
    """Translate an update-action condition into a SQL predicate over aliases src and tgt."""
    if not isinstance(cond, dict) or "op" not in cond:
        raise JobError(f"Invalid condition: {cond!r}")
    op = str(cond["op"]).lower()
    if op in ("and", "or", "not"):
        args = cond.get("args")
        if not isinstance(args, list) or not args:
            raise JobError(f'"{op}" needs a non-empty "args" list.')
        if op == "not":
            if len(args) != 1:
                raise JobError('"not" takes exactly one argument.')
            return f"(NOT {condition_sql(args[0], src, tgt)})"
        return "(" + f" {op.upper()} ".join(condition_sql(a, src, tgt) for a in args) + ")"
    if op not in _COMPARISONS:
        raise JobError(f"Unsupported condition operator {op!r}.")
    operands: list[str] = []
    if "target-col" in cond:
        operands.append(f"{tgt}.{escape_name(str(cond['target-col']))}")
    if "source-col" in cond:
        if src is None:
            raise JobError('A condition uses "source-col" but the action has no source table.')
        operands.append(f"{src}.{escape_name(str(cond['source-col']))}")
    if "const" in cond:
        operands.append(_literal(cond["const"]))
    if len(operands) != 2:
        raise JobError(f'"{op}" needs exactly two of target-col, source-col and const.')
    return f"({operands[0]} {_COMPARISONS[op]} {operands[1]})"


def _condition_source_cols(cond: Any) -> set[str]:
    if not isinstance(cond, dict):
        return set()
    cols = {str(cond["source-col"])} if "source-col" in cond else set()
    for arg in cond.get("args") or []:
        cols |= _condition_source_cols(arg)
    return cols


Columns = list[tuple[str, str]]  # (unescaped column name, SQL type) in table order


class TableauSandbox:
    """The emulated Tableau: state, a Hyper process, and the Starlette app that serves them."""

    def __init__(self, config: TableauSandboxConfig | None = None) -> None:
        self.config = config or TableauSandboxConfig()
        cfg = self.config
        self.faults = Faults(fail_next_jobs=cfg.fail_next_jobs)
        self._own_storage = cfg.storage_dir is None
        self.storage = Path(cfg.storage_dir or tempfile.mkdtemp(prefix="tableau-sandbox-"))
        self.storage.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._hyper_lock = threading.Lock()
        self._hyper: HyperProcess | None = None
        self.sites: dict[str, Site] = {}
        self.projects: dict[str, Project] = {}
        self.sessions: dict[str, Session] = {}
        self._pat_tokens: dict[str, str] = {}
        self.datasources: dict[str, Datasource] = {}
        self.uploads: dict[str, UploadSession] = {}
        self.jobs: dict[str, Job] = {}
        self._request_ids: dict[tuple[str, str], tuple[str, float]] = {}
        self.requests_log: Counter[str] = Counter()
        for content_url in cfg.sites:
            site = Site(
                id=_luid(cfg.seed, "site", content_url),
                content_url=content_url,
                name=content_url or "Default",
                user_id=_luid(cfg.seed, "user", content_url, cfg.user_name),
                owner_id=_luid(cfg.seed, "admin", content_url),
            )
            self.sites[site.id] = site
            (self.storage / (content_url or DEFAULT_SITE_DIR)).mkdir(exist_ok=True)
            for name, can_publish in cfg.projects.items():
                pid = _luid(cfg.seed, "project", content_url, name)
                self.projects[pid] = Project(pid, site.id, name, can_publish)
        self.app = self._build_app()

    # ----------------------------------------------------------------- accessors for tests

    def site_by_url(self, content_url: str) -> Site:
        for site in self.sites.values():
            if site.content_url == content_url:
                return site
        raise KeyError(f"no site {content_url!r}")

    def find_datasource(self, site: str, name: str, project: str = "Xero") -> Datasource:
        """The data source called ``name`` in project ``project`` of site (content URL)."""
        site_id = self.site_by_url(site).id
        with self._lock:
            for ds in self.datasources.values():
                proj = self.projects[ds.project_id]
                if ds.site_id == site_id and ds.name == name and proj.name == project:
                    return ds
        raise KeyError(f"no data source {name!r} in project {project!r} on site {site!r}")

    def datasource_path(self, site: str, name: str, project: str = "Xero") -> Path:
        """Where the published ``.hyper`` of a data source lives (read it with tableauhyperapi)."""
        return self.find_datasource(site, name, project).path

    def query(self, site: str, name: str, sql: str, project: str = "Xero") -> list[tuple]:
        """Run ``sql`` against a data source's .hyper attached as ``ds`` (``"ds"."Extract"."t"``),
        under the lock that publishes and PATCHes take: what a dashboard would read now."""
        path = self.datasource_path(site, name, project)
        with self._hyper_session() as conn:
            conn.catalog.attach_database(str(path), alias="ds")
            try:
                return [tuple(row) for row in conn.execute_list_query(sql)]
            finally:
                conn.catalog.detach_database("ds")

    def forget_request_ids(self) -> None:
        """Forget the update requests already applied, as a new server would: for tests that
        replay many histories on one running sandbox."""
        with self._lock:
            self._request_ids.clear()

    def expire_sessions(self) -> None:
        """Make every token idle past its lifetime, as after a long pause."""
        with self._lock:
            for session in self.sessions.values():
                session.last_used = -math.inf

    def close(self) -> None:
        """Stop the Hyper process and drop the temporary storage (when the sandbox made it)."""
        with self._hyper_lock:
            if self._hyper is not None:
                self._hyper.close()
                self._hyper = None
        if self._own_storage:
            shutil.rmtree(self.storage, ignore_errors=True)

    # ----------------------------------------------------------------- app and dispatch

    def _build_app(self) -> Starlette:
        prefix = "/api/{version}"
        table: list[tuple[str, str, Callable[[Call], Response], bool]] = [
            ("GET", "/serverInfo", self._server_info, False),
            ("POST", "/auth/signin", self._sign_in, False),
            ("POST", "/auth/signout", self._sign_out, False),
            ("GET", "/sites/{site}/projects", self._list_projects, True),
            ("GET", "/sites/{site}/projects/{project}", self._get_project, True),
            ("GET", "/sites/{site}/projects/{project}/permissions", self._permissions, True),
            ("GET", "/sites/{site}/users/{user}", self._get_user, True),
            ("GET", "/sites/{site}/datasources", self._list_datasources, True),
            ("POST", "/sites/{site}/datasources", self._publish, True),
            ("GET", "/sites/{site}/datasources/{ds}", self._get_datasource, True),
            ("DELETE", "/sites/{site}/datasources/{ds}", self._delete_datasource, True),
            ("PATCH", "/sites/{site}/datasources/{ds}/data", self._update_data, True),
            ("GET", "/sites/{site}/datasources/{ds}/content", self._download_datasource, True),
            ("POST", "/sites/{site}/fileUploads", self._initiate_upload, True),
            ("PUT", "/sites/{site}/fileUploads/{upload}", self._append_upload, True),
            ("GET", "/sites/{site}/jobs/{job}", self._get_job, True),
        ]
        routes = [
            Route(prefix + path, self._endpoint(f"{method} {path}", fn, auth), methods=[method])
            for method, path, fn, auth in table
        ]

        async def not_found(request: Request, exc: Exception) -> Response:
            status = exc.status_code if isinstance(exc, HTTPException) else 404
            code = "405000" if status == 405 else "404000"
            summary = "Method Not Allowed" if status == 405 else "Resource Not Found"
            detail = f"Unknown resource '{request.url.path}' specified in URI."
            return Response(error_xml(code, summary, detail), status, media_type=XML_TYPE)

        return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})

    def _endpoint(
        self, name: str, handler: Callable[[Call], Response], auth: bool
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            with self._lock:
                self.requests_log[name] += 1
                statuses = self.faults.fail_next_statuses
                forced = statuses.pop(0) if statuses else None
            if forced is not None:
                return Response(
                    error_xml(str(forced) + "000", "Injected failure", "sandbox fault"),
                    forced,
                    media_type=XML_TYPE,
                )
            body = await request.body()
            try:
                call = Call(
                    method=request.method,
                    version=self._check_version(request.path_params["version"]),
                    params={k: str(v) for k, v in request.path_params.items()},
                    query=dict(request.query_params),
                    headers={k.lower(): v for k, v in request.headers.items()},
                    body=body,
                    content_type=request.headers.get("content-type", ""),
                )
                if auth:
                    self._authenticate(call)
                return await run_in_threadpool(handler, call)
            except ApiError as err:
                xml = error_xml(err.code, err.summary, err.detail)
                return Response(xml, err.status, media_type=XML_TYPE)

        return endpoint

    def _check_version(self, text: str) -> tuple[int, int]:
        match = _VERSION.match(text)
        served = _VERSION.match(self.config.api_version)
        assert served is not None
        if not match:
            raise ApiError(404, "404000", "Resource Not Found", f"Unknown API version '{text}'.")
        version = (int(match.group(1)), int(match.group(2)))
        if version < (2, 4) or version > (int(served.group(1)), int(served.group(2))):
            raise ApiError(
                404, "404000", "Resource Not Found", f"API version {text} is not supported."
            )
        return version

    def _authenticate(self, call: Call) -> None:
        token = call.headers.get("x-tableau-auth")
        if not token:
            raise ApiError(401, "401000", "Unauthorized Access", "Missing authentication token.")
        now = time.monotonic()
        with self._lock:
            session = self.sessions.get(token)
            if session is None or now - session.last_used > self.config.session_ttl:
                self.sessions.pop(token, None)
                raise _unauthorized()
            session.last_used = now
        call.session = session
        site_id = call.params.get("site")
        if site_id is not None:
            if site_id != session.site_id:
                raise ApiError(
                    403, "403000", "Forbidden", "The token is not valid for the site in the URI."
                )
            call.site = self.sites[site_id]

    @staticmethod
    def _xml(inner: str, status: int = 200) -> Response:
        return Response(_ts(inner), status, media_type=XML_TYPE)

    # ----------------------------------------------------------------- server and auth

    def _server_info(self, call: Call) -> Response:
        cfg = self.config
        return self._xml(
            f"<serverInfo><productVersion build={quoteattr(cfg.build)}>{cfg.product_version}"
            f"</productVersion><restApiVersion>{cfg.api_version}</restApiVersion></serverInfo>"
        )

    def _sign_in(self, call: Call) -> Response:
        failed = ApiError(401, "401001", "Signin Error", "Error signing in to Tableau Server")
        try:
            root = ET.fromstring(call.body)
        except ET.ParseError as err:
            raise _bad_request("The sign-in request is not valid XML.") from err
        creds = root.find("credentials")
        site_el = creds.find("site") if creds is not None else None
        if creds is None or site_el is None:
            raise _bad_request("The sign-in request needs <credentials><site/></credentials>.")
        name = creds.get("personalAccessTokenName")
        secret = creds.get("personalAccessTokenSecret")
        content_url = site_el.get("contentUrl", "")
        if (
            name is None
            or name != self.config.pat_name
            or not secrets.compare_digest((secret or "").encode(), self.config.pat_secret.encode())
        ):
            raise failed
        try:
            site = self.site_by_url(content_url)
        except KeyError:
            raise failed from None
        token = secrets.token_urlsafe(24) + "|" + site.id
        with self._lock:
            previous = self._pat_tokens.get(name)
            if previous is not None:
                self.sessions.pop(previous, None)  # one session per PAT
            self._pat_tokens[name] = token
            self.sessions[token] = Session(token, site.id, site.user_id, name, time.monotonic())
        ttl = int(self.config.session_ttl)
        return self._xml(
            f"<credentials{_attrs(token=token, estimatedTimeToExpiration=_hms(ttl))}>"
            f"<site{_attrs(id=site.id, contentUrl=site.content_url)}/>"
            f"<user{_attrs(id=site.user_id)}/></credentials>"
        )

    def _sign_out(self, call: Call) -> Response:
        self._authenticate(call)
        assert call.session is not None
        with self._lock:
            self.sessions.pop(call.session.token, None)
            if self._pat_tokens.get(call.session.pat_name) == call.session.token:
                del self._pat_tokens[call.session.pat_name]
        return Response(status_code=204)

    # ----------------------------------------------------------------- projects and users

    def _project_xml(self, project: Project, site: Site) -> str:
        return (
            f"<project{_attrs(id=project.id, name=project.name, description='')}"
            f' contentPermissions="ManagedByOwner" createdAt="2024-01-01T00:00:00Z"'
            f' updatedAt="2024-01-01T00:00:00Z"><owner{_attrs(id=site.owner_id)}/></project>'
        )

    def _list_projects(self, call: Call) -> Response:
        site = self._site(call)
        with self._lock:
            items = [p for p in self.projects.values() if p.site_id == site.id]
        fields = {
            "name": lambda p: p.name,
            "id": lambda p: p.id,
            "ownerName": lambda p: "admin",
            "parentProjectId": lambda p: "",
            "topLevelProject": lambda p: "true",
        }
        items = _filter(items, call.query.get("filter"), fields)
        items.sort(key=lambda p: p.name)
        page, pagination = _paginate(items, call.query)
        body = "".join(self._project_xml(p, site) for p in page)
        return self._xml(f"{pagination}<projects>{body}</projects>")

    def _get_project(self, call: Call) -> Response:
        site = self._site(call)
        return self._xml(self._project_xml(self._project(site, call.params["project"]), site))

    def _permissions(self, call: Call) -> Response:
        site = self._site(call)
        project = self._project(site, call.params["project"])
        write = "Allow" if project.can_publish else "Deny"
        return self._xml(
            f"<permissions><project{_attrs(id=project.id, name=project.name)}>"
            f"<owner{_attrs(id=site.owner_id)}/></project>"
            f"<granteeCapabilities><user{_attrs(id=site.user_id)}/><capabilities>"
            f'<capability name="Read" mode="Allow"/><capability name="Write" mode="{write}"/>'
            "</capabilities></granteeCapabilities></permissions>"
        )

    def _get_user(self, call: Call) -> Response:
        site = self._site(call)
        if call.params["user"] != site.user_id:
            raise ApiError(404, "404002", "Resource Not Found", "User not found.")
        cfg = self.config
        return self._xml(
            f"<user{_attrs(id=site.user_id, name=cfg.user_name, siteRole=cfg.site_role)}"
            f' authSetting="ServerDefault" lastLogin="{_iso(_now())}"'
            f"{_attrs(fullName=cfg.user_name, email=cfg.user_name + '@example.com')}/>"
        )

    # ----------------------------------------------------------------- data sources

    def _ds_xml(self, ds: Datasource) -> str:
        project = self.projects[ds.project_id]
        return (
            f"<datasource{_attrs(id=ds.id, name=ds.name, contentUrl=ds.content_url)}"
            ' type="dataengine" description="" hasExtracts="true" encryptExtracts="false"'
            ' isCertified="false" useRemoteQueryAgent="false"'
            f"{_attrs(createdAt=_iso(ds.created_at), updatedAt=_iso(ds.updated_at))}"
            f"{_attrs(webpageUrl=f'http://sandbox/#/datasources/{ds.id}')}>"
            f"<project{_attrs(id=project.id, name=project.name)}/>"
            f"<owner{_attrs(id=ds.owner_id)}/><tags/></datasource>"
        )

    def _list_datasources(self, call: Call) -> Response:
        site = self._site(call)
        with self._lock:
            items = [d for d in self.datasources.values() if d.site_id == site.id]
        fields = {
            "name": lambda d: d.name,
            "id": lambda d: d.id,
            "contentUrl": lambda d: d.content_url,
            "projectName": lambda d: self.projects[d.project_id].name,
            "projectId": lambda d: d.project_id,
            "type": lambda d: "dataengine",
            "hasExtracts": lambda d: "true",
        }
        items = _filter(items, call.query.get("filter"), fields)
        items.sort(key=lambda d: (d.name, d.id))
        page, pagination = _paginate(items, call.query)
        body = "".join(self._ds_xml(d) for d in page)
        return self._xml(f"{pagination}<datasources>{body}</datasources>")

    def _get_datasource(self, call: Call) -> Response:
        return self._xml(self._ds_xml(self._datasource(call)))

    def _delete_datasource(self, call: Call) -> Response:
        ds = self._datasource(call)
        with self._lock:
            self.datasources.pop(ds.id, None)
        ds.path.unlink(missing_ok=True)
        return Response(status_code=204)

    def _publish(self, call: Call) -> Response:
        site = self._site(call)
        q = call.query
        kind = q.get("datasourceType", "")
        if kind != "hyper":
            raise _bad_request(
                f"The sandbox publishes .hyper files only (datasourceType={kind!r}).", "400011"
            )
        modes = [m for m in ("overwrite", "append", "replace") if _true(q.get(m))]
        if len(modes) > 1:
            raise _bad_request("Only one of overwrite, append and replace may be true.")
        mode = modes[0] if modes else "createnew"
        as_job = _true(q.get("asJob"))
        if not call.content_type.startswith("multipart/"):
            raise _bad_request("Publish requests must be multipart/mixed.", "400011")
        parts = parse_multipart(call.body, call.content_type)
        try:
            root = ET.fromstring(parts.get("request_payload", b""))
        except ET.ParseError as err:
            raise _bad_request("The request_payload part is not valid XML.") from err
        ds_el = root.find("datasource")
        proj_el = ds_el.find("project") if ds_el is not None else None
        if ds_el is None or not ds_el.get("name") or proj_el is None:
            raise _bad_request("request_payload needs <datasource name><project id/>.")
        name = ds_el.get("name", "")
        project = self._project(site, proj_el.get("id", ""))
        if not project.can_publish:
            raise ApiError(
                403,
                "403004",
                "Forbidden",
                f"The user does not have permission to publish to project '{project.name}'.",
            )
        upload_id = q.get("uploadSessionId")
        staging = self.storage / "_staging" / f"{uuid.uuid4()}.hyper"
        staging.parent.mkdir(exist_ok=True)
        if upload_id:
            upload = self._take_upload(site, upload_id)
            shutil.move(upload.path, staging)
        elif "tableau_datasource" in parts:
            staging.write_bytes(parts["tableau_datasource"])
        else:
            raise _bad_request("The request has no tableau_datasource part.", "400011")
        try:
            existing = self._by_name(site, project, name)
            if existing is not None and mode == "createnew":
                raise ApiError(
                    409,
                    "409004",
                    "Resource Conflict",
                    f"A data source named '{name}' already exists in project '{project.name}'.",
                )
            try:
                self._hyper_tables(staging)
            except HyperException as err:
                raise _bad_request(
                    f"There was a problem publishing the file: {err}", "400011"
                ) from err
            if existing is not None and mode in ("append", "replace"):
                self._check_same_schema(existing.path, staging)
            if as_job:
                job = self._new_job(site, "PublishDatasource", existing)
                if job.finish_code != 1:
                    ds = self._apply_publish(site, project, name, existing, mode, staging)
                    job.datasource_id, job.datasource_name = ds.id, ds.name
                return self._xml(self._job_xml(job, fresh=True), 202)
            ds = self._apply_publish(site, project, name, existing, mode, staging)
            return self._xml(self._ds_xml(ds), 201)
        finally:
            staging.unlink(missing_ok=True)

    def _apply_publish(
        self,
        site: Site,
        project: Project,
        name: str,
        existing: Datasource | None,
        mode: str,
        staging: Path,
    ) -> Datasource:
        now = _now()
        if existing is None:
            luid = str(uuid.uuid4())
            path = self.storage / (site.content_url or DEFAULT_SITE_DIR) / f"{luid}.hyper"
            shutil.copyfile(staging, path)
            ds = Datasource(
                luid,
                site.id,
                name,
                project.id,
                self._content_url(site, name),
                site.user_id,
                path,
                now,
                now,
            )
            with self._lock:
                self.datasources[luid] = ds
            return ds
        if mode == "append":
            with self._hyper_session() as conn:
                conn.catalog.attach_database(str(existing.path), alias="target")
                conn.catalog.attach_database(str(staging), alias="payload")
                for table, _ in self._tables(conn, "payload"):
                    conn.execute_command(
                        f"INSERT INTO {_sql_name('target', *table)} "
                        f"SELECT * FROM {_sql_name('payload', *table)}"
                    )
        else:  # overwrite and replace both swap the data and keep the LUID
            tmp = existing.path.with_suffix(".tmp")
            shutil.copyfile(staging, tmp)
            with self._hyper_lock:
                tmp.replace(existing.path)
        existing.updated_at = now
        return existing

    def _download_datasource(self, call: Call) -> Response:
        """``GET datasources/{id}/content``: the data source as a ``.tdsx`` (a zip of the ``.tds``
        and, unless ``includeExtract=False``, ``Data/Extracts/<name>.hyper``), named by
        ``Content-Disposition`` as Tableau does. Without the extract it is still a ``.tdsx``,
        holding the ``.tds`` alone (TSC issue #1181: such a file cannot be published again).
        The PAT's user owns what it published, so it may always download it; an id unknown on
        the site is 404004, as Tableau answers a download of a missing data source."""
        site = self._site(call)
        with self._lock:
            ds = self.datasources.get(call.params["ds"])
        if ds is None or ds.site_id != site.id:
            raise ApiError(
                404,
                "404004",
                "Resource Not Found",
                f"Datasource '{call.params['ds']}' could not be found.",
            )
        include = call.query.get("includeExtract", "true").strip().lower() != "false"
        stem = re.sub(r"[^A-Za-z0-9 ._-]", "_", ds.name).strip() or "datasource"
        extract = f"Data/Extracts/{stem}.hyper"
        with self._hyper_lock:  # no publish or update is halfway through the file
            hyper = ds.path.read_bytes() if include else None
        tables = list(self._hyper_tables(ds.path))
        body = io.BytesIO()
        with zipfile.ZipFile(body, "w", zipfile.ZIP_DEFLATED) as tdsx:
            tdsx.writestr(f"{stem}.tds", _tds_xml(ds, tables, extract))
            if hyper is not None:
                tdsx.writestr(extract, hyper)
        disposition = f'name="tableau_datasource"; filename="{stem}.tdsx"'
        return Response(
            body.getvalue(),
            200,
            media_type="application/octet-stream",
            headers={"Content-Disposition": disposition},
        )

    def _content_url(self, site: Site, name: str) -> str:
        base = re.sub(r"[^A-Za-z0-9_-]", "", name) or "datasource"
        with self._lock:
            taken = {d.content_url for d in self.datasources.values() if d.site_id == site.id}
        candidate, n = base, 0
        while candidate in taken:
            n += 1
            candidate = f"{base}_{n}"
        return candidate

    # ----------------------------------------------------------------- file uploads

    def _initiate_upload(self, call: Call) -> Response:
        site = self._site(call)
        upload_id = f"{secrets.randbelow(9000) + 1000}:{uuid.uuid4().hex}-1:0"
        path = self.storage / "_uploads" / f"{uuid.uuid4().hex}.part"
        path.parent.mkdir(exist_ok=True)
        path.touch()
        with self._lock:
            self.uploads[upload_id] = UploadSession(upload_id, site.id, path)
        return self._xml(f"<fileUpload{_attrs(uploadSessionId=upload_id, fileSize=0)}/>", 201)

    def _append_upload(self, call: Call) -> Response:
        site = self._site(call)
        with self._lock:
            upload = self.uploads.get(call.params["upload"])
        if upload is None or upload.site_id != site.id:
            raise ApiError(404, "404033", "Resource Not Found", "Upload session not found.")
        if not call.content_type.startswith("multipart/"):
            raise _bad_request("Append to File Upload must be multipart/mixed.")
        parts = parse_multipart(call.body, call.content_type)
        if "tableau_file" not in parts:
            raise _bad_request("The request has no tableau_file part.")
        with self._lock, upload.path.open("ab") as fh:
            fh.write(parts["tableau_file"])
            upload.size += len(parts["tableau_file"])
        size_mb = math.ceil(upload.size / BYTES_PER_MB)
        return self._xml(f"<fileUpload{_attrs(uploadSessionId=upload.id, fileSize=size_mb)}/>")

    def _take_upload(self, site: Site, upload_id: str) -> UploadSession:
        with self._lock:
            upload = self.uploads.get(upload_id)
            if upload is None or upload.site_id != site.id:
                raise ApiError(404, "404033", "Resource Not Found", "Upload session not found.")
            del self.uploads[upload_id]
        return upload

    # ----------------------------------------------------------------- update data + jobs

    def _update_data(self, call: Call) -> Response:
        site = self._site(call)
        if call.version < (3, 12):
            raise ApiError(404, "404000", "Resource Not Found", "Update data needs API 3.12+.")
        ds = self._datasource(call)
        request_id = call.headers.get("requestid")
        if not request_id:
            raise _bad_request("The requestid header is required.")
        try:
            body = json.loads(call.body)
        except (ValueError, UnicodeDecodeError) as err:
            raise _bad_request("The request body is not valid JSON.") from err
        actions = body.get("actions") if isinstance(body, dict) else None
        if not isinstance(actions, list) or not actions:
            raise _bad_request('The body must be {"actions": [...]} with at least one action.')
        now = time.monotonic()
        with self._lock:
            seen = self._request_ids.get((site.id, request_id))
            if seen is not None and now - seen[1] < REQUEST_ID_WINDOW and seen[0] in self.jobs:
                return self._xml(self._job_xml(self.jobs[seen[0]]), 202)
        upload_id = call.query.get("uploadSessionId")
        upload = self._take_upload(site, upload_id) if upload_id else None
        try:
            job = self._new_job(site, "UpdateUploadedFile", ds, request_id)
            if job.finish_code != 1:
                try:
                    self._run_actions(ds, actions, upload.path if upload else None)
                    ds.updated_at = _now()
                except (JobError, HyperException) as err:
                    job.finish_code = 1
                    job.notes = [str(err).strip()]
            remember = job.finish_code == 0 or self.config.remember_failed_request_ids
            if remember:
                with self._lock:
                    self._request_ids[(site.id, request_id)] = (job.id, now)
            return self._xml(self._job_xml(job, fresh=True), 202)
        finally:
            if upload is not None:
                upload.path.unlink(missing_ok=True)

    def _new_job(
        self, site: Site, kind: str, ds: Datasource | None, request_id: str | None = None
    ) -> Job:
        with self._lock:
            fail = self.faults.fail_next_jobs > 0
            if fail:
                self.faults.fail_next_jobs -= 1
            created = _now()
            job = Job(
                id=str(uuid.uuid4()),
                site_id=site.id,
                type=kind,
                created_at=created,
                done_at=time.monotonic() + self.config.job_delay,
                completed_at=created + timedelta(seconds=self.config.job_delay),
                finish_code=1 if fail else 0,
                notes=["Injected failure (sandbox fail_next_jobs)."] if fail else [],
                datasource_id=ds.id if ds else None,
                datasource_name=ds.name if ds else None,
                request_id=request_id,
            )
            self.jobs[job.id] = job
        return job

    def _job_xml(self, job: Job, *, fresh: bool = False) -> str:
        """A job as Tableau shows it; ``fresh`` is the 202 answer (never finished yet)."""
        done = not fresh and time.monotonic() >= job.done_at
        attrs = _attrs(
            id=job.id,
            mode="Asynchronous",
            type=job.type,
            progress=100 if done else 0,
            createdAt=_iso(job.created_at),
            startedAt=None if fresh else _iso(job.created_at),
            updatedAt=None if fresh else _iso(job.completed_at if done else _now()),
            completedAt=_iso(job.completed_at) if done else None,
            finishCode=job.finish_code if done else None,
        )
        inner = ""
        if job.datasource_id:
            inner = f"<datasource{_attrs(id=job.datasource_id, name=job.datasource_name)}/>"
        if job.type == "UpdateUploadedFile":
            inner += f"<connectionLuid>{_luid(self.config.seed, 'conn', job.datasource_id or '')}"
            inner += "</connectionLuid>"
        if done:
            inner += "".join(f"<notes>{escape(n)}</notes>" for n in job.notes)
        element = "updateUploadedFileJob" if job.type == "UpdateUploadedFile" else None
        if element:
            inner = f"<{element}>{inner}</{element}>"
        return f"<job{attrs}>{inner}</job>"

    def _get_job(self, call: Call) -> Response:
        site = self._site(call)
        with self._lock:
            job = self.jobs.get(call.params["job"])
        if job is None or job.site_id != site.id:
            raise ApiError(404, "404031", "Resource Not Found", "Job not found.")
        return self._xml(self._job_xml(job))

    # ----------------------------------------------------------------- Hyper

    @contextmanager
    def _hyper_session(self) -> Iterator[Connection]:
        """A Hyper connection with nothing attached, under the one-writer lock."""
        with self._hyper_lock:
            if self._hyper is None:
                self._hyper = HyperProcess(
                    Telemetry.DO_NOT_SEND_USAGE_DATA_TO_TABLEAU, parameters={"log_config": ""}
                )
            with Connection(self._hyper.endpoint) as conn:
                yield conn

    @staticmethod
    def _tables(conn: Connection, alias: str) -> list[tuple[tuple[str, str], Columns]]:
        out: list[tuple[tuple[str, str], Columns]] = []
        for schema in conn.catalog.get_schema_names(alias):
            schema_name = schema.name.unescaped
            for table in conn.catalog.get_table_names(SchemaName(alias, schema_name)):
                definition = conn.catalog.get_table_definition(table)
                cols = [(c.name.unescaped, str(c.type)) for c in definition.columns]
                out.append(((schema_name, table.name.unescaped), cols))
        return out

    def _hyper_tables(self, path: Path) -> dict[tuple[str, str], Columns]:
        with self._hyper_session() as conn:
            conn.catalog.attach_database(str(path), alias="f")
            return dict(self._tables(conn, "f"))

    def _check_same_schema(self, target: Path, payload: Path) -> None:
        have, new = self._hyper_tables(target), self._hyper_tables(payload)
        for table, cols in new.items():
            if have.get(table) != cols:
                raise _bad_request(
                    f"The file's table {'.'.join(table)} does not match the published extract "
                    "(append and replace need the same schema).",
                    "400011",
                )

    def _run_actions(self, ds: Datasource, actions: list[Any], payload: Path | None) -> None:
        """Run the action batch in one transaction: all of it applies, or nothing does."""
        with self._hyper_session() as conn:
            conn.catalog.attach_database(str(ds.path), alias="target")
            target_tables = dict(self._tables(conn, "target"))
            source_tables: dict[tuple[str, str], Columns] = {}
            if payload is not None:
                conn.catalog.attach_database(str(payload), alias="payload")
                source_tables = dict(self._tables(conn, "payload"))
            conn.execute_command("BEGIN TRANSACTION")
            try:
                for index, action in enumerate(actions):
                    try:
                        self._run_action(conn, action, target_tables, source_tables)
                    except HyperException as err:
                        raise JobError(f"Action {index} failed: {err}") from err
                    except JobError as err:
                        raise JobError(f"Action {index}: {err}") from err
                conn.execute_command("COMMIT")
            except BaseException:
                conn.execute_command("ROLLBACK")
                raise

    @staticmethod
    def _resolve(
        tables: dict[tuple[str, str], Columns], schema: Any, table: Any, what: str
    ) -> tuple[str, str]:
        if not isinstance(table, str) or not table:
            raise JobError(f'"{what}-table" is required.')
        if isinstance(schema, str):
            if (schema, table) not in tables:
                raise JobError(f"410012: Specified table does not exist: {schema}.{table}")
            return schema, table
        found = [key for key in tables if key[1] == table]
        if len(found) != 1:
            problem = "does not exist" if not found else "is ambiguous; give the schema"
            raise JobError(f"410012: Specified table {problem}: {table}")
        return found[0]

    def _run_action(
        self,
        conn: Connection,
        action: Any,
        target_tables: dict[tuple[str, str], Columns],
        source_tables: dict[tuple[str, str], Columns],
    ) -> None:
        if not isinstance(action, dict) or action.get("action") not in _ACTIONS:
            raise JobError(f"Unknown action {action!r}; expected one of {', '.join(_ACTIONS)}.")
        kind: str = action["action"]
        tgt_key = self._resolve(
            target_tables, action.get("target-schema"), action.get("target-table"), "target"
        )
        tgt_cols = [c for c, _ in target_tables[tgt_key]]
        tgt = _sql_name("target", *tgt_key)
        cond = action.get("condition")
        has_source = "source-table" in action
        if kind != "delete" and not has_source:
            raise JobError(f'"{kind}" needs a "source-table".')
        if kind in ("update", "upsert", "delete") and cond is None:
            raise JobError(f'"{kind}" needs a "condition".')
        if kind in ("insert", "replace") and cond is not None:
            raise JobError(f'"{kind}" takes no "condition".')
        if not has_source:  # a delete by constants over the target alone
            conn.execute_command(f"DELETE FROM {tgt} AS t WHERE {condition_sql(cond, None, 't')}")
            return
        if not source_tables:
            raise JobError("The action names a source table but the request has no payload.")
        src_key = self._resolve(
            source_tables, action.get("source-schema"), action["source-table"], "source"
        )
        src = _sql_name("payload", *src_key)
        src_cols = [c for c, _ in source_tables[src_key]]
        unknown = [c for c in src_cols if c not in tgt_cols]
        if kind != "delete" and unknown:
            raise JobError(f"Source columns not in the target table: {', '.join(unknown)}")
        col_list = ", ".join(escape_name(c) for c in src_cols)
        s_cols = ", ".join(f"s.{escape_name(c)}" for c in src_cols)
        if kind == "delete":
            extra = set(src_cols) - _condition_source_cols(cond)
            if extra:
                raise JobError(
                    f"Source columns not used by the condition: {', '.join(sorted(extra))}"
                )
            match = condition_sql(cond, "s", "t")
            conn.execute_command(
                f"DELETE FROM {tgt} AS t WHERE EXISTS (SELECT 1 FROM {src} AS s WHERE {match})"
            )
            return
        if kind == "replace":
            conn.execute_command(f"DELETE FROM {tgt}")
        if kind in ("insert", "replace"):
            conn.execute_command(f"INSERT INTO {tgt} ({col_list}) SELECT {s_cols} FROM {src} AS s")
            return
        # update / upsert
        match = condition_sql(cond, "s", "t")
        keys = _condition_source_cols(cond)
        sets = [c for c in src_cols if c not in keys]
        if sets:
            assignments = ", ".join(
                f"{escape_name(c)} = (SELECT s.{escape_name(c)} FROM {src} AS s "
                f"WHERE {match} LIMIT 1)"
                for c in sets
            )
            conn.execute_command(
                f"UPDATE {tgt} AS t SET {assignments} "
                f"WHERE EXISTS (SELECT 1 FROM {src} AS s WHERE {match})"
            )
        if kind == "upsert":
            conn.execute_command(
                f"INSERT INTO {tgt} ({col_list}) SELECT {s_cols} FROM {src} AS s "
                f"WHERE NOT EXISTS (SELECT 1 FROM {tgt} AS t WHERE {match})"
            )

    # ----------------------------------------------------------------- lookups

    @staticmethod
    def _site(call: Call) -> Site:
        assert call.site is not None
        return call.site

    def _project(self, site: Site, project_id: str) -> Project:
        with self._lock:
            project = self.projects.get(project_id)
        if project is None or project.site_id != site.id:
            raise ApiError(404, "404005", "Resource Not Found", f"Project {project_id} not found.")
        return project

    def _datasource(self, call: Call) -> Datasource:
        site = self._site(call)
        with self._lock:
            ds = self.datasources.get(call.params["ds"])
        if ds is None or ds.site_id != site.id:
            raise ApiError(
                404, "404011", "Resource Not Found", f"Datasource {call.params['ds']} not found."
            )
        return ds

    def _by_name(self, site: Site, project: Project, name: str) -> Datasource | None:
        with self._lock:
            for ds in self.datasources.values():
                if ds.site_id == site.id and ds.project_id == project.id and ds.name == name:
                    return ds
        return None


def _tds_xml(ds: Datasource, tables: list[tuple[str, str]], extract: str) -> str:
    """The ``.tds`` of a data source published from a ``.hyper``: a federated connection to the
    packaged extract, one relation per table of the file."""
    root = ET.Element(
        "datasource",
        {"formatted-name": ds.name, "inline": "true", "version": "18.1"},
    )
    federated = ET.SubElement(root, "connection", {"class": "federated"})
    named = ET.SubElement(
        ET.SubElement(federated, "named-connections"),
        "named-connection",
        {"caption": Path(extract).name, "name": f"hyper.{ds.id}"},
    )
    ET.SubElement(
        named,
        "connection",
        {"authentication": "auth-none", "class": "hyper", "dbname": extract},
    )
    for schema, table in tables:
        ET.SubElement(
            federated,
            "relation",
            {
                "connection": f"hyper.{ds.id}",
                "name": table,
                "table": f"[{schema}].[{table}]",
                "type": "table",
            },
        )
    return "<?xml version='1.0' encoding='utf-8' ?>\n" + ET.tostring(root, encoding="unicode")


def _hms(seconds: int) -> str:
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _true(value: str | None) -> bool:
    return (value or "").lower() == "true"


def _split_filter(text: str) -> list[str]:
    """Split ``a:eq:x,b:in:[y,z]`` on the commas outside brackets."""
    clauses, depth, current = [], 0, ""
    for ch in text:
        depth += ch == "["
        depth -= ch == "]"
        if ch == "," and depth == 0:
            clauses.append(current)
            current = ""
        else:
            current += ch
    if current:
        clauses.append(current)
    return clauses


def _filter(items: list[T], text: str | None, fields: dict[str, Callable[[T], str]]) -> list[T]:
    """Apply a REST ``filter=`` expression (eq, in, gt/gte/lt/lte, has, cieq) to ``items``."""
    if not text:
        return items
    for clause in _split_filter(text):
        field_name, op, value = [*clause.split(":", 2), "", ""][:3]
        getter = fields.get(field_name)
        if getter is None or not op:
            raise _bad_request(f"Invalid filter '{clause}'.", "400065")
        if op == "in":
            wanted = set(value.strip("[]").split(","))
            items = [i for i in items if getter(i) in wanted]
        elif op == "eq":
            pattern = re.compile(
                "^" + ".*".join(re.escape(p) for p in value.split("*")) + "$", re.DOTALL
            )
            items = [i for i in items if pattern.match(getter(i))]
        elif op == "cieq":
            items = [i for i in items if getter(i).lower() == value.lower()]
        elif op == "has":
            items = [i for i in items if value.lower() in getter(i).lower()]
        elif op in ("gt", "gte", "lt", "lte"):
            compare = {
                "gt": str.__gt__,
                "gte": str.__ge__,
                "lt": str.__lt__,
                "lte": str.__le__,
            }[op]
            items = [i for i in items if compare(getter(i), value)]
        else:
            raise _bad_request(f"Invalid filter operator '{op}'.", "400065")
    return items


def _paginate(items: list[T], query: dict[str, str]) -> tuple[list[T], str]:
    try:
        size = int(query.get("pageSize", DEFAULT_PAGE_SIZE))
        number = int(query.get("pageNumber", 1))
    except ValueError as err:
        raise _bad_request("pageSize and pageNumber must be integers.") from err
    if not 1 <= size <= MAX_PAGE_SIZE or number < 1:
        raise _bad_request(f"pageSize must be 1..{MAX_PAGE_SIZE} and pageNumber at least 1.")
    page = items[(number - 1) * size : number * size]
    pagination = (
        f"<pagination{_attrs(pageNumber=number, pageSize=size, totalAvailable=len(items))}/>"
    )
    return page, pagination


class RunningTableauSandbox(RunningSandbox):
    """An emulated Tableau served on loopback; stop it (or use ``with``) when done."""

    def __init__(self, sandbox: TableauSandbox, served: ServedApp) -> None:
        super().__init__(served)
        self.sandbox = sandbox

    def stop(self) -> None:
        super().stop()
        self.sandbox.close()


def start_tableau_sandbox(
    config: TableauSandboxConfig | None = None, port: int = 0
) -> RunningTableauSandbox:
    """Build the emulated Tableau and serve it on 127.0.0.1 (port 0 picks a free port)."""
    sandbox = TableauSandbox(config)
    served = ServedApp(sandbox.app, port=port).start()
    return RunningTableauSandbox(sandbox, served)
