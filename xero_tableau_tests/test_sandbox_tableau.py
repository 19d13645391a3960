"""The Tableau emulator, driven by the real tableauserverclient (TSC) as the project will drive it.

TSC is Tableau's own client library, so these tests check the emulator against what Tableau's
client sends and parses, never against the project's publisher. The stored ``.hyper`` files are
read back with tableauhyperapi to check that publishes and update actions really happened.
"""

import io
import time
import uuid
import zipfile
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, cast
from xml.etree import ElementTree as ET

import httpx
import pytest
import tableauserverclient as TSC
from tableauhyperapi import (
    Connection,
    CreateMode,
    HyperProcess,
    Inserter,
    SqlType,
    TableDefinition,
    TableName,
    Telemetry,
)
from tableauserverclient.server.endpoint import fileuploads_endpoint
from tableauserverclient.server.endpoint.exceptions import (
    FailedSignInError,
    InternalServerError,
    JobFailedException,
    ServerResponseError,
)

from xero_tableau.sandbox.credentials import (
    TABLEAU_DEMO_PAT_NAME,
    TABLEAU_DEMO_PAT_SECRET,
    TABLEAU_DEMO_SITE,
)
from xero_tableau.sandbox.tableau_app import (
    RunningTableauSandbox,
)
from xero_tableau_tests.conftest import StartTableau

API_VERSION = "3.24"
TABLE = TableName("Extract", "t")
Row = tuple[int, Decimal, str]


@pytest.fixture(scope="module")
def hyper() -> Iterator[HyperProcess]:
    """One Hyper process for the test side (making payloads, reading stored extracts)."""
    with HyperProcess(
        Telemetry.DO_NOT_SEND_USAGE_DATA_TO_TABLEAU, parameters={"log_config": ""}
    ) as process:
        yield process


@pytest.fixture
def tableau(start: StartTableau) -> RunningTableauSandbox:
    return start()


def sign_in(base_url: str, site: str = TABLEAU_DEMO_SITE) -> TSC.Server:
    server = TSC.Server(base_url, use_server_version=False)
    server.version = API_VERSION
    server.auth.sign_in(
        TSC.PersonalAccessTokenAuth(TABLEAU_DEMO_PAT_NAME, TABLEAU_DEMO_PAT_SECRET, site_id=site)
    )
    return server


def make_hyper(hyper: HyperProcess, path: Path, rows: list[Row]) -> Path:
    """A one-table extract, "Extract"."t"(id bigint, amount numeric(18,2), name text)."""
    definition = TableDefinition(
        TABLE,
        [
            TableDefinition.Column("id", SqlType.big_int()),
            TableDefinition.Column("amount", SqlType.numeric(18, 2)),
            TableDefinition.Column("name", SqlType.text()),
        ],
    )
    with Connection(hyper.endpoint, str(path), CreateMode.CREATE_AND_REPLACE) as conn:
        conn.catalog.create_schema("Extract")
        conn.catalog.create_table(definition)
        if rows:
            with Inserter(conn, definition) as inserter:
                inserter.add_rows(rows)
                inserter.execute()
    return path


def read_rows(hyper: HyperProcess, path: Path) -> list[Row]:
    with Connection(hyper.endpoint, str(path)) as conn:
        rows = conn.execute_list_query(
            'SELECT "id", "amount", "name" FROM "Extract"."t" ORDER BY 1'
        )
    return [(int(str(r[0])), Decimal(str(r[1])), str(r[2])) for r in rows]


def project_id(server: TSC.Server, name: str) -> str:
    projects = [p for p in TSC.Pager(server.projects) if p.name == name]
    assert len(projects) == 1
    assert projects[0].id is not None
    return projects[0].id


def publish(
    server: TSC.Server, file: Path, name: str = "GL", project: str = "Xero", mode: str = "CreateNew"
) -> TSC.DatasourceItem:
    item = TSC.DatasourceItem(project_id(server, project), name=name)
    result = server.datasources.publish(item, str(file), mode)
    assert isinstance(result, TSC.DatasourceItem)
    return result


def update_data(
    server: TSC.Server,
    ds: TSC.DatasourceItem,
    request_id: str,
    actions: list[dict[str, Any]],
    payload: Path,
) -> TSC.JobItem:
    """``update_hyper_data`` with plain dicts: TSC's TypedDicts lack the ``*-schema`` keys."""
    return server.datasources.update_hyper_data(
        ds, request_id=request_id, actions=cast(Sequence[Any], actions), payload=str(payload)
    )


ROWS: list[Row] = [(1, Decimal("10.50"), "a"), (2, Decimal("-3.25"), "b")]


# ------------------------------------------------------------------------------------ auth


def test_server_info_sign_in_and_out(tableau: RunningTableauSandbox) -> None:
    server = TSC.Server(tableau.base_url, use_server_version=True)
    info = server.server_info.get()
    assert info is not None
    assert info.rest_api_version == API_VERSION
    server.auth.sign_in(
        TSC.PersonalAccessTokenAuth(
            TABLEAU_DEMO_PAT_NAME, TABLEAU_DEMO_PAT_SECRET, TABLEAU_DEMO_SITE
        )
    )
    assert server.version == API_VERSION  # adopted from serverInfo after sign-in
    assert server.site_id == tableau.sandbox.site_by_url(TABLEAU_DEMO_SITE).id
    user = server.users.get_by_id(server.user_id)
    assert user.site_role == "Creator"
    server.auth.sign_out()
    assert not server.is_signed_in()


def test_wrong_pat_is_401001(tableau: RunningTableauSandbox) -> None:
    server = TSC.Server(tableau.base_url, use_server_version=False)
    server.version = API_VERSION
    with pytest.raises(FailedSignInError) as err:
        server.auth.sign_in(TSC.PersonalAccessTokenAuth(TABLEAU_DEMO_PAT_NAME, "nope", "finance"))
    assert err.value.code == "401001"


def test_second_sign_in_with_same_pat_invalidates_the_first(
    tableau: RunningTableauSandbox,
) -> None:
    first = sign_in(tableau.base_url)
    second = sign_in(tableau.base_url)
    with pytest.raises(FailedSignInError) as err:
        first.projects.get()
    assert err.value.code == "401002"
    second.projects.get()  # the newest session works
    with pytest.raises(FailedSignInError):
        first.auth.sign_out()  # sign-out on a dead session fails too, as on Tableau


def test_session_expires_after_idle_ttl(start: StartTableau) -> None:
    tableau = start(session_ttl=0.3)
    server = sign_in(tableau.base_url)
    server.projects.get()
    time.sleep(0.45)
    with pytest.raises(FailedSignInError) as err:
        server.projects.get()
    assert err.value.code == "401002"


def test_missing_token_is_401000(tableau: RunningTableauSandbox) -> None:
    site = tableau.sandbox.site_by_url(TABLEAU_DEMO_SITE).id
    resp = httpx.get(f"{tableau.base_url}/api/{API_VERSION}/sites/{site}/projects")
    assert resp.status_code == 401
    assert 'code="401000"' in resp.text


# ------------------------------------------------------------------------------- projects


def test_projects_filter_and_permissions(tableau: RunningTableauSandbox) -> None:
    server = sign_in(tableau.base_url)
    names = sorted(p.name for p in TSC.Pager(server.projects))
    assert names == ["Restricted", "Xero"]
    found = list(server.projects.filter(name="Xero"))
    assert [p.name for p in found] == ["Xero"]
    capabilities = {}
    for project in found + list(server.projects.filter(name="Restricted")):
        server.projects.populate_permissions(project)
        rules = project.permissions
        assert [r.grantee.id for r in rules] == [server.user_id]
        capabilities[project.name] = rules[0].capabilities
    assert capabilities["Xero"]["Write"] == "Allow"
    assert capabilities["Restricted"]["Write"] == "Deny"


# -------------------------------------------------------------------------------- publish


def test_publish_create_overwrite_append_replace(
    tableau: RunningTableauSandbox, hyper: HyperProcess, tmp_path: Path
) -> None:
    server = sign_in(tableau.base_url)
    file = make_hyper(hyper, tmp_path / "gl.hyper", ROWS)
    created = publish(server, file)
    stored = tableau.sandbox.datasource_path(TABLEAU_DEMO_SITE, "GL")
    assert stored.name == f"{created.id}.hyper"
    assert read_rows(hyper, stored) == ROWS

    found = list(server.datasources.filter(name="GL", project_name="Xero"))
    assert [d.id for d in found] == [created.id]
    assert list(server.datasources.filter(name="GL", project_name="Restricted")) == []
    assert server.datasources.get_by_id(created.id or "").name == "GL"

    with pytest.raises(ServerResponseError) as err:
        publish(server, file)  # CreateNew on an existing name
    assert err.value.code.startswith("409")

    new_rows: list[Row] = [(7, Decimal("1.00"), "z")]
    replaced = publish(server, make_hyper(hyper, tmp_path / "v2.hyper", new_rows), mode="Overwrite")
    assert replaced.id == created.id
    assert read_rows(hyper, stored) == new_rows

    publish(server, file, mode="Overwrite")
    publish(server, file, mode="Append")
    assert sorted(read_rows(hyper, stored)) == sorted(ROWS + ROWS)
    publish(server, file, mode="Replace")
    assert read_rows(hyper, stored) == ROWS


def test_publish_to_restricted_project_is_403(
    tableau: RunningTableauSandbox, hyper: HyperProcess, tmp_path: Path
) -> None:
    server = sign_in(tableau.base_url)
    file = make_hyper(hyper, tmp_path / "gl.hyper", ROWS)
    with pytest.raises(ServerResponseError) as err:
        publish(server, file, project="Restricted", mode="Overwrite")
    assert err.value.code == "403004"
    assert list(TSC.Pager(server.datasources)) == []


def test_append_with_another_schema_is_refused(
    tableau: RunningTableauSandbox, hyper: HyperProcess, tmp_path: Path
) -> None:
    server = sign_in(tableau.base_url)
    publish(server, make_hyper(hyper, tmp_path / "gl.hyper", ROWS))
    other = tmp_path / "other.hyper"
    with Connection(hyper.endpoint, str(other), CreateMode.CREATE_AND_REPLACE) as conn:
        conn.catalog.create_schema("Extract")
        conn.catalog.create_table(
            TableDefinition(TABLE, [TableDefinition.Column("id", SqlType.text())])
        )
    with pytest.raises(ServerResponseError) as err:
        publish(server, other, mode="Append")
    assert err.value.code == "400011"


def test_chunked_publish(
    tableau: RunningTableauSandbox,
    hyper: HyperProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Force TSC's fileUploads path and 16 KiB chunks without making a 64 MB file.
    monkeypatch.setenv("TSC_FILESIZE_LIMIT_MB", "0")
    monkeypatch.setenv("TSC_CHUNK_SIZE_MB", "1")
    monkeypatch.setattr(fileuploads_endpoint, "BYTES_PER_MB", 16 * 1024)
    rows = [(i, Decimal(i) / 100, f"name-{i}") for i in range(20_000)]
    file = make_hyper(hyper, tmp_path / "big.hyper", rows)
    server = sign_in(tableau.base_url)
    job = server.datasources.publish(
        TSC.DatasourceItem(project_id(server, "Xero"), name="Big"),
        str(file),
        "Overwrite",
        as_job=True,
    )
    assert isinstance(job, TSC.JobItem)
    server.jobs.wait_for_job(job)
    log = tableau.sandbox.requests_log
    assert log["PUT /sites/{site}/fileUploads/{upload}"] >= 3
    stored = tableau.sandbox.datasource_path(TABLEAU_DEMO_SITE, "Big")
    assert stored.read_bytes() == file.read_bytes()


# ---------------------------------------------------------------------------- update data


def _delete_insert(table: str = "t") -> list[dict[str, Any]]:
    common = {
        "source-schema": "Extract",
        "source-table": table,
        "target-schema": "Extract",
        "target-table": "t",
    }
    return [
        {
            "action": "delete",
            **common,
            "source-table": "keys",
            "condition": {"op": "eq", "source-col": "id", "target-col": "id"},
        },
        {"action": "insert", **common},
    ]


def make_delta(hyper: HyperProcess, path: Path, rows: list[Row]) -> Path:
    """A payload with the new rows in "Extract"."t" and their keys in "Extract"."keys"."""
    make_hyper(hyper, path, rows)
    with Connection(hyper.endpoint, str(path)) as conn:
        conn.execute_command('CREATE TABLE "Extract"."keys" AS SELECT "id" FROM "Extract"."t"')
    return path


def test_update_hyper_data_delete_insert_is_applied_once(
    tableau: RunningTableauSandbox, hyper: HyperProcess, tmp_path: Path
) -> None:
    server = sign_in(tableau.base_url)
    ds = publish(server, make_hyper(hyper, tmp_path / "gl.hyper", ROWS))
    delta_rows: list[Row] = [(2, Decimal("99.99"), "B"), (3, Decimal("0.01"), "c")]
    delta = make_delta(hyper, tmp_path / "delta.hyper", delta_rows)
    request_id = str(uuid.uuid4())
    for _ in range(2):  # a retry with the same request id must not apply twice
        job = update_data(server, ds, request_id, _delete_insert(), delta)
        assert job.type == "UpdateUploadedFile"
        done = server.jobs.wait_for_job(job, timeout=10)
        assert done.finish_code == 0
    stored = tableau.sandbox.datasource_path(TABLEAU_DEMO_SITE, "GL")
    assert read_rows(hyper, stored) == [ROWS[0], *delta_rows]
    assert len(tableau.sandbox.jobs) == 1


def test_forgotten_request_ids_apply_again(
    tableau: RunningTableauSandbox, hyper: HyperProcess, tmp_path: Path
) -> None:
    """A test replaying histories on one sandbox starts each from a server with no request
    seen: the same request id then applies again, as on a new server."""
    server = sign_in(tableau.base_url)
    ds = publish(server, make_hyper(hyper, tmp_path / "gl.hyper", ROWS))
    delta = make_delta(hyper, tmp_path / "delta.hyper", [(3, Decimal("3.00"), "c")])
    server.jobs.wait_for_job(update_data(server, ds, "same", _delete_insert(), delta), timeout=10)
    publish(server, make_hyper(hyper, tmp_path / "again.hyper", ROWS), mode="Overwrite")
    server.jobs.wait_for_job(update_data(server, ds, "same", _delete_insert(), delta), timeout=10)
    stored = tableau.sandbox.datasource_path(TABLEAU_DEMO_SITE, "GL")
    assert read_rows(hyper, stored) == ROWS  # remembered: not applied again
    tableau.sandbox.forget_request_ids()
    server.jobs.wait_for_job(update_data(server, ds, "same", _delete_insert(), delta), timeout=10)
    assert read_rows(hyper, stored) == [*ROWS, (3, Decimal("3.00"), "c")]


def test_update_upsert_and_const_delete(
    tableau: RunningTableauSandbox, hyper: HyperProcess, tmp_path: Path
) -> None:
    server = sign_in(tableau.base_url)
    ds = publish(server, make_hyper(hyper, tmp_path / "gl.hyper", ROWS))
    delta = make_hyper(
        hyper, tmp_path / "up.hyper", [(1, Decimal("11.00"), "A"), (5, Decimal("5.00"), "e")]
    )
    actions = [
        {
            "action": "upsert",
            "source-table": "t",
            "target-table": "t",
            "condition": {"op": "eq", "source-col": "id", "target-col": "id"},
        },
        {
            "action": "delete",
            "target-schema": "Extract",
            "target-table": "t",
            "condition": {
                "op": "and",
                "args": [
                    {"op": "lt", "target-col": "amount", "const": {"type": "double", "v": 0}},
                    {"op": "eq", "target-col": "name", "const": {"type": "string", "v": "b"}},
                ],
            },
        },
    ]
    job = update_data(server, ds, "upsert-1", actions, delta)
    server.jobs.wait_for_job(job, timeout=10)
    stored = tableau.sandbox.datasource_path(TABLEAU_DEMO_SITE, "GL")
    assert read_rows(hyper, stored) == [(1, Decimal("11.00"), "A"), (5, Decimal("5.00"), "e")]


def test_failing_batch_changes_nothing(
    tableau: RunningTableauSandbox, hyper: HyperProcess, tmp_path: Path
) -> None:
    server = sign_in(tableau.base_url)
    ds = publish(server, make_hyper(hyper, tmp_path / "gl.hyper", ROWS))
    delta = make_delta(hyper, tmp_path / "delta.hyper", [(9, Decimal("9.00"), "i")])
    actions = [
        *_delete_insert(),
        {"action": "insert", "source-table": "missing", "target-table": "t"},
    ]
    job = update_data(server, ds, "bad", actions, delta)
    with pytest.raises(JobFailedException) as err:
        server.jobs.wait_for_job(job, timeout=10)
    assert "410012" in " ".join(err.value.notes or [])
    stored = tableau.sandbox.datasource_path(TABLEAU_DEMO_SITE, "GL")
    assert read_rows(hyper, stored) == ROWS  # the first two actions were rolled back


def test_injected_job_failure_then_retry_succeeds(
    start: StartTableau, hyper: HyperProcess, tmp_path: Path
) -> None:
    tableau = start(fail_next_jobs=1, job_delay=0.2)
    server = sign_in(tableau.base_url)
    ds = publish(server, make_hyper(hyper, tmp_path / "gl.hyper", ROWS))
    delta = make_delta(hyper, tmp_path / "delta.hyper", [(3, Decimal("3.00"), "c")])
    stored = tableau.sandbox.datasource_path(TABLEAU_DEMO_SITE, "GL")

    def update() -> TSC.JobItem:
        return update_data(server, ds, "batch-7", _delete_insert(), delta)

    job = update()
    assert server.jobs.get_by_id(job.id).completed_at is None  # still running: clients poll
    with pytest.raises(JobFailedException) as err:
        server.jobs.wait_for_job(job, timeout=10)
    assert err.value.notes and "Injected failure" in err.value.notes[0]
    assert read_rows(hyper, stored) == ROWS
    retried = server.jobs.wait_for_job(update(), timeout=10)
    assert retried.finish_code == 0
    assert read_rows(hyper, stored) == [*ROWS, (3, Decimal("3.00"), "c")]


def test_injected_http_failure_hits_only_the_next_call(tableau: RunningTableauSandbox) -> None:
    server = sign_in(tableau.base_url)
    tableau.sandbox.faults.fail_next_statuses.append(503)
    with pytest.raises(InternalServerError):
        server.projects.get()
    assert len(server.projects.get()[0]) == 2


# ------------------------------------------------------------------------------------ download


def download_rows(
    server: TSC.Server, hyper: HyperProcess, ds_id: str, folder: Path
) -> tuple[Path, list[str], list[Row]]:
    """Download a data source with TSC, unzip it and read its extract back."""
    folder.mkdir(parents=True, exist_ok=True)
    path = Path(server.datasources.download(ds_id, filepath=str(folder), include_extract=True))
    with zipfile.ZipFile(path) as tdsx:
        names = tdsx.namelist()
        extract = next(n for n in names if n.startswith("Data/Extracts/"))
        tdsx.extract(extract, folder)
    return path, names, read_rows(hyper, folder / extract)


def test_download_is_a_tdsx_with_the_extract_after_an_incremental_update(
    tableau: RunningTableauSandbox, hyper: HyperProcess, tmp_path: Path
) -> None:
    server = sign_in(tableau.base_url)
    ds = publish(server, make_hyper(hyper, tmp_path / "gl.hyper", ROWS))
    assert ds.id is not None
    path, names, rows = download_rows(server, hyper, ds.id, tmp_path / "first")
    assert path.name == "GL.tdsx"
    assert sorted(names) == ["Data/Extracts/GL.hyper", "GL.tds"]
    assert rows == ROWS
    delta_rows: list[Row] = [(2, Decimal("-0.01"), "B"), (3, Decimal("1234567.89"), "c")]
    delta = make_delta(hyper, tmp_path / "delta.hyper", delta_rows)
    job = update_data(server, ds, "download-1", _delete_insert(), delta)
    assert server.jobs.wait_for_job(job, timeout=10).finish_code == 0
    _, _, rows = download_rows(server, hyper, ds.id, tmp_path / "second")
    assert rows == [ROWS[0], *delta_rows]  # what Tableau holds now, cent for cent
    assert rows == read_rows(hyper, tableau.sandbox.datasource_path(TABLEAU_DEMO_SITE, "GL"))


def test_download_names_the_file_and_describes_the_extract(
    tableau: RunningTableauSandbox, hyper: HyperProcess, tmp_path: Path
) -> None:
    server = sign_in(tableau.base_url)
    ds = publish(server, make_hyper(hyper, tmp_path / "gl.hyper", ROWS), name="GL Facts")
    response = httpx.get(
        f"{tableau.base_url}/api/{API_VERSION}/sites/{server.site_id}/datasources/{ds.id}/content",
        headers={"X-Tableau-Auth": server.auth_token or ""},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"] == (
        'name="tableau_datasource"; filename="GL Facts.tdsx"'
    )
    with zipfile.ZipFile(io.BytesIO(response.content)) as tdsx:
        tds = ET.fromstring(tdsx.read("GL Facts.tds"))
    hyper_connection = tds.find("./connection/named-connections/named-connection/connection")
    assert hyper_connection is not None
    assert hyper_connection.get("class") == "hyper"
    assert hyper_connection.get("dbname") == "Data/Extracts/GL Facts.hyper"
    relations = tds.findall("./connection/relation")
    assert [r.get("table") for r in relations] == ["[Extract].[t]"]


def test_download_without_the_extract_is_a_tdsx_holding_the_tds_alone(
    tableau: RunningTableauSandbox, hyper: HyperProcess, tmp_path: Path
) -> None:
    server = sign_in(tableau.base_url)
    ds = publish(server, make_hyper(hyper, tmp_path / "gl.hyper", ROWS))
    assert ds.id is not None
    path = server.datasources.download(ds.id, filepath=str(tmp_path), include_extract=False)
    assert Path(path).name == "GL.tdsx"
    with zipfile.ZipFile(path) as tdsx:
        assert tdsx.namelist() == ["GL.tds"]


def test_download_of_an_unknown_or_foreign_data_source(
    tableau: RunningTableauSandbox, hyper: HyperProcess, tmp_path: Path
) -> None:
    server = sign_in(tableau.base_url)
    with pytest.raises(ServerResponseError) as missing:
        server.datasources.download(str(uuid.uuid4()), filepath=str(tmp_path))
    assert missing.value.code == "404004"
    ds = publish(server, make_hyper(hyper, tmp_path / "gl.hyper", ROWS))
    other = sign_in(tableau.base_url, site="")  # a token of the Default site
    url = f"{tableau.base_url}/api/{API_VERSION}/sites/{server.site_id}/datasources/{ds.id}/content"
    foreign = httpx.get(url, headers={"X-Tableau-Auth": other.auth_token or ""})
    assert foreign.status_code == 403
    anonymous = httpx.get(url)
    assert anonymous.status_code == 401
    assert "401000" in anonymous.text
