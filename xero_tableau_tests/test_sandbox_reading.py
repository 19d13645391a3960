"""Reading the sandbox's Accounting API over real HTTP.

Expected results are computed here, in Python, from the full record set (fetched over HTTP and
checked against the sandbox's store), never by asking the sandbox's own query code.
"""

import re
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest

from xero_tableau.sandbox.credentials import READ_SCOPES
from xero_tableau.sandbox.dataset import ENTITIES
from xero_tableau.sandbox.server import RunningXeroSandbox
from xero_tableau_tests.conftest import (
    API,
    SandboxFactory,
    XeroConnection,
    bearer,
    connect,
    connect_sandbox,
)
from xero_tableau_tests.xero_spec import (
    ACCOUNTING,
    assert_valid,
    request_header_errors,
    skip_reason,
    spec_available,
)

_MS_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
PAGED = ("Invoices", "CreditNotes", "Payments", "BankTransactions", "ManualJournals")
PAGED += ("PurchaseOrders", "Contacts", "Overpayments", "Prepayments")
UNPAGED = ("Accounts", "TrackingCategories", "TaxRates", "Currencies")


def ms(value: str) -> int:
    """Epoch ms of Xero's ``/Date(ms[+hhmm])/`` (written here, independent of the sandbox)."""
    match = _MS_DATE.match(value)
    assert match is not None, value
    return int(match.group(1))


def ids(records: list[dict], endpoint: str = "Invoices") -> list[str]:
    return [r[ENTITIES[endpoint].id_field] for r in records]


@pytest.fixture(scope="module")
def invoices(xero: XeroConnection, xero_sandbox: RunningXeroSandbox) -> list[dict]:
    """Every invoice of the first tenant, read page by page; checked against the store."""
    records = xero.all_records("Invoices")
    stored = xero_sandbox.sandbox.dataset.tenants[xero.tenant_ids[0]].collections["Invoices"]
    assert len(records) > 300, "the session dataset should have a few hundred invoices"
    assert sorted(ids(records)) == sorted(stored)  # every record exactly once
    return records


# --- envelope and conformance -------------------------------------------------------------------


def test_envelope_shape(xero: XeroConnection, xero_sandbox: RunningXeroSandbox) -> None:
    now_ms = xero_sandbox.sandbox.clock.now_ms()
    body = xero.ok("Invoices", params={"page": 1})
    assert list(body)[:4] == ["Id", "Status", "ProviderName", "DateTimeUTC"]
    assert UUID_RE.match(body["Id"])
    assert body["Status"] == "OK"
    assert isinstance(body["ProviderName"], str) and body["ProviderName"]
    assert re.fullmatch(r"/Date\(\d+\)/", body["DateTimeUTC"])
    assert abs(ms(body["DateTimeUTC"]) - now_ms) < 10_000
    assert set(body["pagination"]) == {"page", "pageSize", "pageCount", "itemCount"}
    assert isinstance(body["Invoices"], list)
    unpaged = xero.ok("Accounts")
    assert "pagination" not in unpaged and isinstance(unpaged["Accounts"], list)
    org = xero.ok("Organisation")
    assert len(org["Organisations"]) == 1
    assert xero.ok("Organisation")["Id"] != org["Id"]  # a fresh Id per response


SCHEMAS: dict[str, str] = {
    **{name: name for name in (*PAGED, *UNPAGED)},
    "Organisation": "Organisations",
}


@pytest.mark.parametrize("endpoint", list(SCHEMAS))
def test_responses_conform_to_the_spec_strictly(xero: XeroConnection, endpoint: str) -> None:
    if not spec_available(ACCOUNTING):
        pytest.skip(skip_reason(ACCOUNTING))
    schema = SCHEMAS[endpoint]
    for tenant in xero.tenant_ids:
        variants: list[dict[str, str | int]] = [{}]
        if endpoint in PAGED:
            variants = [{"page": 1, "pageSize": 1000}]
        if ENTITIES.get(endpoint) and ENTITIES[endpoint].include_archived:
            variants.append({**variants[0], "includeArchived": "true"})
        if ENTITIES.get(endpoint) and ENTITIES[endpoint].summary_only:
            variants.append({**variants[0], "summaryOnly": "true"})
        bodies = [xero.ok(endpoint, tenant, params) for params in variants]
        for body in bodies:
            if endpoint in ENTITIES:
                assert body[endpoint], f"{endpoint} is empty for {tenant}: nothing was checked"
            assert_valid(body, schema, strict=True)
        if endpoint in PAGED:  # a single-record GET has the same shape
            first_id = bodies[0][endpoint][0][ENTITIES[endpoint].id_field]
            assert_valid(xero.ok(f"{endpoint}/{first_id}", tenant), schema, strict=True)


def test_no_record_is_updated_after_the_sandbox_now(
    xero: XeroConnection, xero_sandbox: RunningXeroSandbox
) -> None:
    """Xero never serves an UpdatedDateUTC in the future: a connector's watermark taken from the
    data would jump ahead of the clock and skip every real change made before it."""
    now_ms = xero_sandbox.sandbox.clock.now_ms()
    for tenant in xero.tenant_ids:
        for endpoint in PAGED:
            future = [
                r[ENTITIES[endpoint].id_field]
                for r in xero.all_records(endpoint, tenant, includeArchived="true")
                if ms(r["UpdatedDateUTC"]) > now_ms
            ]
            assert not future, f"{len(future)} {endpoint} updated after now, e.g. {future[0]}"


# --- paging -------------------------------------------------------------------------------------


def test_default_page_is_100_with_pagination(xero: XeroConnection, invoices: list[dict]) -> None:
    body = xero.ok("Invoices", params={"page": 1})
    assert len(body["Invoices"]) == 100
    assert body["pagination"] == {
        "page": 1,
        "pageSize": 100,
        "pageCount": -(-len(invoices) // 100),
        "itemCount": len(invoices),
    }


def test_page_size_is_capped_at_1000(xero: XeroConnection, invoices: list[dict]) -> None:
    assert len(invoices) > 1000
    body = xero.ok("Invoices", params={"page": 1, "pageSize": 5000})
    assert len(body["Invoices"]) == 1000
    assert body["pagination"] == {
        "page": 1,
        "pageSize": 1000,
        "pageCount": -(-len(invoices) // 1000),
        "itemCount": len(invoices),
    }
    second = xero.ok("Invoices", params={"page": 2, "pageSize": 5000})
    assert len(second["Invoices"]) == len(invoices) - 1000
    assert not set(ids(body["Invoices"])) & set(ids(second["Invoices"]))


@pytest.mark.parametrize("endpoint", PAGED)
def test_walking_all_pages_returns_every_record_once(
    xero: XeroConnection, xero_sandbox: RunningXeroSandbox, endpoint: str
) -> None:
    tenant = xero.tenant_ids[1]
    store = xero_sandbox.sandbox.dataset.tenants[tenant].collections[endpoint]
    params: dict[str, str | int] = {"includeArchived": "true"} if endpoint == "Contacts" else {}
    seen: list[str] = []
    page, size = 1, 37
    while True:
        body = xero.ok(endpoint, tenant, {**params, "page": page, "pageSize": size})
        batch = ids(body[endpoint], endpoint)
        seen.extend(batch)
        pagination = body["pagination"]
        assert pagination["page"] == page and pagination["pageSize"] == size
        assert pagination["itemCount"] == len(store)
        if page >= pagination["pageCount"]:
            break
        assert len(batch) == size  # only the last page is short
        page += 1
    assert len(seen) == len(set(seen)) == len(store)
    assert set(seen) == set(store)
    past_end = xero.ok(endpoint, tenant, {**params, "page": page + 1, "pageSize": size})
    assert past_end[endpoint] == []


def test_page_size_is_ignored_on_unpaged_endpoints(
    xero: XeroConnection, xero_sandbox: RunningXeroSandbox
) -> None:
    stored = xero_sandbox.sandbox.dataset.tenants[xero.tenant_ids[0]].collections["Accounts"]
    assert len(stored) > 3
    body = xero.ok("Accounts", params={"page": 1, "pageSize": 3})
    assert "pagination" not in body
    assert sorted(ids(body["Accounts"], "Accounts")) == sorted(stored)


# --- If-Modified-Since --------------------------------------------------------------------------


def _modified_since_cut(records: list[dict]) -> tuple[datetime, set[str]]:
    """A cut inside the data whose second holds a record updated after the second began, and the
    IDs Xero would return for it (UpdatedDateUTC at or after that whole second)."""
    instants = sorted(ms(r["UpdatedDateUTC"]) for r in records)
    middle = instants[len(instants) // 2 :]
    pick = next((t for t in middle if t % 1000 > 0), middle[0])
    second = pick // 1000
    expected = {r["InvoiceID"] for r in records if ms(r["UpdatedDateUTC"]) // 1000 >= second}
    assert 0 < len(expected) < len(records)
    return datetime.fromtimestamp(second, UTC), expected


@pytest.mark.parametrize(
    "form",
    [
        lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ"),  # what our client sends
        lambda t: t.isoformat(),  # +00:00 (xero-python)
        lambda t: t.astimezone(timezone(timedelta(hours=-8))).isoformat(timespec="milliseconds"),
        lambda t: (t + timedelta(milliseconds=999)).isoformat(),  # same second, later ms
        lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.1234567Z"),  # .NET's 7 fraction digits
        lambda t: t.strftime("%Y-%m-%dt%H:%M:%Sz"),  # RFC 3339 allows lower case
        lambda t: format_datetime(t, usegmt=True),  # RFC 9110 HTTP-date
    ],
    ids=["iso-z", "iso-utc-offset", "iso-minus-8", "iso-late-fraction", "iso-7-digits",
         "iso-lower-case", "http-date"],
)  # fmt: skip
def test_if_modified_since(
    xero: XeroConnection, invoices: list[dict], form: Callable[[datetime], str]
) -> None:
    cut, expected = _modified_since_cut(invoices)
    header = form(cut)
    if spec_available(ACCOUNTING) and "GMT" not in header:
        sent = {"If-Modified-Since": header, "xero-tenant-id": xero.tenant_ids[0]}
        assert request_header_errors("/Invoices", sent) == []
    got = xero.all_records("Invoices", headers={"If-Modified-Since": header})
    assert sorted(ids(got)) == sorted(expected)


@pytest.mark.parametrize(
    "header",
    [
        "2026-12-01T10:00:00",  # no offset: Xero's prose form, not the spec's date-time
        "2026-12-01",
        "2026-12-01 10:00:00Z",
        "2026-12-01T10:00Z",
        "2026-12-01T10:00:00+0000",
        "yesterday",
        "2026-02-30T10:00:00Z",
    ],
)
def test_if_modified_since_must_be_an_rfc3339_date_time(xero: XeroConnection, header: str) -> None:
    response = xero.get("Invoices", params={"page": 1}, headers={"If-Modified-Since": header})
    assert response.status_code == 400, header
    body = response.json()
    assert body["Type"] == "QueryParseException" and "If-Modified-Since" in body["Message"]
    if spec_available(ACCOUNTING) and header != "2026-02-30T10:00:00Z":
        assert request_header_errors("/Invoices", {"If-Modified-Since": header})
    # an endpoint that ignores the header ignores a bad one too, as Xero does
    assert xero.get("TrackingCategories", headers={"If-Modified-Since": header}).status_code == 200


def test_if_modified_since_is_ignored_where_xero_ignores_it(xero: XeroConnection) -> None:
    future = {"If-Modified-Since": "2999-01-01T00:00:00Z"}
    everything = xero.ok("TrackingCategories")["TrackingCategories"]
    assert everything
    assert xero.ok("TrackingCategories", headers=future)["TrackingCategories"] == everything
    assert xero.ok("Accounts", headers=future)["Accounts"] == []  # Accounts honours it


# --- order and where ----------------------------------------------------------------------------


def test_order_by_updated_ascending_and_date_descending(
    xero: XeroConnection, invoices: list[dict]
) -> None:
    ascending = xero.all_records("Invoices", order="UpdatedDateUTC ASC")
    assert [ms(r["UpdatedDateUTC"]) for r in ascending] == sorted(
        ms(r["UpdatedDateUTC"]) for r in invoices
    )
    descending = xero.all_records("Invoices", order="Date DESC")
    dates = [ms(r["Date"]) for r in descending]
    assert dates == sorted(dates, reverse=True)
    assert sorted(ids(descending)) == sorted(ids(invoices))
    assert len(set(dates)) > 1


def _instant_at(invoices: list[dict], key: str, share: float) -> datetime:
    """The instant of ``key`` that ``share`` of the invoices come before."""
    values = sorted(ms(r[key]) for r in invoices)
    return datetime.fromtimestamp(values[int(len(values) * share)] // 1000, UTC)


def test_where_clauses_match_a_python_filter(xero: XeroConnection, invoices: list[dict]) -> None:
    date_cut = _instant_at(invoices, "Date", 0.4)
    upd_cut = _instant_at(invoices, "UpdatedDateUTC", 0.7)
    contact_id = invoices[len(invoices) // 2]["Contact"]["ContactID"]
    date_fn = f"DateTime({date_cut.year}, {date_cut.month:02d}, {date_cut.day:02d})"
    upd_fn = (
        f"DateTime({upd_cut.year},{upd_cut.month},{upd_cut.day},"
        f"{upd_cut.hour},{upd_cut.minute},{upd_cut.second})"
    )
    date_ms = int(datetime(date_cut.year, date_cut.month, date_cut.day, tzinfo=UTC).timestamp())
    date_ms *= 1000
    upd_ms = int(upd_cut.timestamp()) * 1000

    cases: list[tuple[str, Callable[[dict], bool]]] = [
        ('Type=="ACCPAY"', lambda r: r["Type"] == "ACCPAY"),
        ('Status!="DRAFT"', lambda r: r["Status"] != "DRAFT"),
        (f"Date >= {date_fn}", lambda r: ms(r["Date"]) >= date_ms),
        (f"UpdatedDateUTC < {upd_fn}", lambda r: ms(r["UpdatedDateUTC"]) < upd_ms),
        (
            f'Contact.ContactID==GUID("{contact_id.upper()}")',
            lambda r: r["Contact"]["ContactID"] == contact_id,
        ),
        (
            f'Type=="ACCREC" && Status=="AUTHORISED" && Date >= {date_fn}',
            lambda r: (
                r["Type"] == "ACCREC" and r["Status"] == "AUTHORISED" and ms(r["Date"]) >= date_ms
            ),
        ),
        (
            'Type=="ACCPAY" AND AmountDue > 0',
            lambda r: r["Type"] == "ACCPAY" and r["AmountDue"] > 0,
        ),
        (
            'Status=="VOIDED" || Type=="ACCPAY" && Status=="DRAFT"',
            lambda r: r["Status"] == "VOIDED" or (r["Type"] == "ACCPAY" and r["Status"] == "DRAFT"),
        ),
    ]
    for where, keep in cases:
        expected = sorted(r["InvoiceID"] for r in invoices if keep(r))
        assert expected, f"{where!r} selects nothing: the test data would prove nothing"
        got = xero.all_records("Invoices", where=where)
        assert sorted(ids(got)) == expected, where
    statuses = {r["Status"] for r in invoices}
    assert {"DRAFT", "AUTHORISED"} <= statuses and len({r["Type"] for r in invoices}) == 2


def test_explicit_invoice_filters(xero: XeroConnection, invoices: list[dict]) -> None:
    """Statuses, ContactIDs and InvoiceNumbers: the fast alternatives to ``where``."""
    statuses = ["DRAFT", "VOIDED"]
    got = xero.all_records("Invoices", Statuses=",".join(statuses))
    assert sorted(ids(got)) == sorted(r["InvoiceID"] for r in invoices if r["Status"] in statuses)
    contacts = sorted({r["Contact"]["ContactID"] for r in invoices})[:2]
    got = xero.all_records("Invoices", ContactIDs=",".join(contacts))
    expected = [r["InvoiceID"] for r in invoices if r["Contact"]["ContactID"] in contacts]
    assert sorted(ids(got)) == sorted(expected) and expected
    numbers = sorted(r["InvoiceNumber"] for r in invoices if r["Type"] == "ACCREC")[:3]
    got = xero.all_records("Invoices", InvoiceNumbers=",".join(numbers))
    assert sorted(r["InvoiceNumber"] for r in got) == numbers


def test_purchase_orders_filter_by_status_and_dates(xero: XeroConnection) -> None:
    orders = xero.all_records("PurchaseOrders")
    days = sorted(ms(r["Date"]) for r in orders)
    low, high = days[len(days) // 4], days[3 * len(days) // 4]
    status = Counter(r["Status"] for r in orders).most_common(1)[0][0]
    got = xero.all_records(
        "PurchaseOrders",
        Status=status,
        DateFrom=datetime.fromtimestamp(low / 1000, UTC).date().isoformat(),
        DateTo=datetime.fromtimestamp(high / 1000, UTC).date().isoformat(),
    )
    expected = [
        r["PurchaseOrderID"]
        for r in orders
        if r["Status"] == status and low <= ms(r["Date"]) <= high
    ]
    assert expected and sorted(ids(got, "PurchaseOrders")) == sorted(expected)


@pytest.mark.parametrize(
    "where",
    ['Status=="AUTHORISED" ||', "Status AUTHORISED", 'Status=="X" Type=="Y"', "DROP TABLE"],
)
def test_garbage_where_is_a_query_parse_error(xero: XeroConnection, where: str) -> None:
    response = xero.get("Invoices", params={"page": 1, "where": where})
    assert response.status_code == 400
    assert response.json()["Type"] == "QueryParseException"


def test_where_strings_keep_non_ascii_characters_and_escapes(
    make_sandbox: SandboxFactory, http: httpx.Client
) -> None:
    running = make_sandbox()
    xero = connect_sandbox(http, running)
    tenant = xero.tenant_ids[0]
    names = ["Café Māori Ōtautahi Ltd", 'The "Quoted" Co']
    created = []
    for name in names:
        response = http.post(
            f"{running.base_url}/sandbox/admin/tenants/{tenant}/Contacts", json={"Name": name}
        )
        assert response.status_code == 200, response.text
        created.append(response.json()["ContactID"])
    for name, contact_id in zip(names, created, strict=True):
        literal = name.replace('"', '\\"')
        got = xero.all_records("Contacts", tenant, where=f'Name=="{literal}"')
        assert [c["ContactID"] for c in got] == [contact_id], name
    contains = xero.all_records("Contacts", tenant, where='Name.Contains("māori")')
    assert [c["ContactID"] for c in contains] == [created[0]]


# --- IDs, summaryOnly, includeArchived ----------------------------------------------------------


def test_ids_up_to_50_and_404_beyond(xero: XeroConnection, invoices: list[dict]) -> None:
    wanted = sorted(ids(invoices))[:51]
    body = xero.ok("Invoices", params={"page": 1, "IDs": ",".join(wanted[:50])})
    assert sorted(ids(body["Invoices"])) == wanted[:50]
    too_many = xero.get("Invoices", params={"page": 1, "IDs": ",".join(wanted)})
    assert too_many.status_code == 404
    assert "cannot be found" in too_many.text
    contacts = sorted({r["Contact"]["ContactID"] for r in invoices})[:3]
    got = xero.ok("Contacts", params={"IDs": ",".join(contacts)})["Contacts"]
    assert sorted(ids(got, "Contacts")) == contacts


def test_summary_only_drops_line_items(xero: XeroConnection) -> None:
    full = xero.ok("Invoices", params={"page": 1, "pageSize": 50})["Invoices"]
    summary = xero.ok("Invoices", params={"page": 1, "pageSize": 50, "summaryOnly": "true"})
    assert all(inv["LineItems"] for inv in full)
    assert ids(summary["Invoices"]) == ids(full)
    for brief, whole in zip(summary["Invoices"], full, strict=True):
        assert "LineItems" not in brief
        assert brief["Total"] == whole["Total"] and brief["Status"] == whole["Status"]


def test_unpaged_invoices_come_without_line_items(xero: XeroConnection) -> None:
    unpaged = xero.ok("Invoices")["Invoices"]
    assert unpaged
    assert all("LineItems" not in inv for inv in unpaged)
    paged = xero.ok("Invoices", params={"page": 1})["Invoices"]
    assert all(inv["LineItems"] for inv in paged)


def test_include_archived(make_sandbox: SandboxFactory, http: httpx.Client) -> None:
    running = make_sandbox()
    base = running.base_url
    xero = connect_sandbox(http, running)
    tenant = xero.tenant_ids[0]
    admin = f"{base}/sandbox/admin/tenants/{tenant}"

    contacts = xero.all_records("Contacts", tenant, includeArchived="true")
    archived = {c["ContactID"] for c in contacts if c["ContactStatus"] == "ARCHIVED"}
    if not archived:
        victim = contacts[0]["ContactID"]
        response = http.patch(f"{admin}/Contacts/{victim}", json={"ContactStatus": "ARCHIVED"})
        assert response.status_code == 200, response.text
        archived = {victim}
    every = {c["ContactID"] for c in xero.all_records("Contacts", tenant, includeArchived="true")}
    visible = {c["ContactID"] for c in xero.all_records("Contacts", tenant)}
    assert visible == every - archived
    single = xero.ok(f"Contacts/{next(iter(archived))}", tenant)["Contacts"]
    assert single[0]["ContactStatus"] == "ARCHIVED"  # a direct GET still finds it

    categories = xero.ok("TrackingCategories", tenant)["TrackingCategories"]
    assert categories and categories[0]["Options"]
    category = categories[0]
    option = category["Options"][0]
    response = http.post(
        f"{admin}/TrackingCategories/{category['TrackingCategoryID']}"
        f"/Options/{option['TrackingOptionID']}",
        json={"Status": "ARCHIVED"},
    )
    assert response.status_code == 200, response.text
    last = categories[-1]
    response = http.patch(
        f"{admin}/TrackingCategories/{last['TrackingCategoryID']}", json={"Status": "ARCHIVED"}
    )
    assert response.status_code == 200, response.text

    hidden = xero.ok("TrackingCategories", tenant)["TrackingCategories"]
    shown = xero.ok("TrackingCategories", tenant, {"includeArchived": "true"})["TrackingCategories"]
    hidden_ids = [c["TrackingCategoryID"] for c in hidden]
    assert last["TrackingCategoryID"] not in hidden_ids
    assert last["TrackingCategoryID"] in [c["TrackingCategoryID"] for c in shown]
    by_id = {c["TrackingCategoryID"]: c for c in hidden}
    first_options = [
        o["TrackingOptionID"] for o in by_id[category["TrackingCategoryID"]]["Options"]
    ]
    assert option["TrackingOptionID"] not in first_options
    shown_first = next(
        c for c in shown if c["TrackingCategoryID"] == category["TrackingCategoryID"]
    )
    assert option["TrackingOptionID"] in [o["TrackingOptionID"] for o in shown_first["Options"]]
    if spec_available(ACCOUNTING):
        assert_valid({"TrackingCategories": shown}, "TrackingCategories", strict=True)


# --- single records and errors ------------------------------------------------------------------


def test_single_invoice_and_unknown_id(xero: XeroConnection, invoices: list[dict]) -> None:
    wanted = invoices[3]
    body = xero.ok(f"Invoices/{wanted['InvoiceID']}")
    assert ids(body["Invoices"]) == [wanted["InvoiceID"]]
    assert body["Invoices"][0]["LineItems"] == wanted["LineItems"]
    assert "pagination" not in body
    missing = xero.get(f"Invoices/{uuid.uuid4()}")
    assert missing.status_code == 404
    other_tenant = xero.get(f"Invoices/{wanted['InvoiceID']}", xero.tenant_ids[1])
    assert other_tenant.status_code == 404  # tenants never see each other's records


def test_tenant_and_token_errors(http: httpx.Client, xero: XeroConnection) -> None:
    url = f"{xero.base_url}{API}/Invoices"
    no_tenant = http.get(url, headers=bearer(xero.access_token))
    assert no_tenant.status_code == 403
    assert no_tenant.json()["Detail"] == "AuthenticationUnsuccessful"
    assert no_tenant.json()["Title"] == "Forbidden"
    unknown = http.get(url, headers=bearer(xero.access_token, str(uuid.uuid4())))
    assert unknown.status_code == 403
    garbage = http.get(url, headers=bearer(xero.access_token, "not-a-guid"))
    assert garbage.status_code == 403
    no_bearer = http.get(url, headers={"xero-tenant-id": xero.tenant_ids[0]})
    assert no_bearer.status_code == 401
    bad_bearer = http.get(url, headers=bearer("not.a.token", xero.tenant_ids[0]))
    assert bad_bearer.status_code == 401
    unknown_endpoint = xero.get("NotAnEndpoint")
    assert unknown_endpoint.status_code == 404


def test_scope_without_settings_is_refused_on_accounts(
    http: httpx.Client, xero_sandbox: RunningXeroSandbox, xero: XeroConnection
) -> None:
    scope = " ".join(s for s in READ_SCOPES.split() if s != "accounting.settings.read")
    token = connect(http, xero_sandbox.base_url, scope=scope)
    narrow = XeroConnection(http, xero.base_url, token, xero.tenant_ids)
    for endpoint in ("Accounts", "TrackingCategories", "TaxRates", "Organisation"):
        refused = narrow.get(endpoint)
        assert refused.status_code == 403, endpoint
        assert refused.json()["Status"] == 403
    assert narrow.get("Invoices", params={"page": 1}).status_code == 200
    assert narrow.get("Contacts", params={"page": 1}).status_code == 200


def test_granular_scopes(
    http: httpx.Client, xero_sandbox: RunningXeroSandbox, xero: XeroConnection
) -> None:
    token = connect(http, xero_sandbox.base_url, scope="offline_access accounting.invoices.read")
    granular = XeroConnection(http, xero.base_url, token, xero.tenant_ids)
    assert granular.get("Invoices", params={"page": 1}).status_code == 200
    assert granular.get("CreditNotes", params={"page": 1}).status_code == 200
    assert granular.get("Payments", params={"page": 1}).status_code == 403
    assert granular.get("BankTransactions", params={"page": 1}).status_code == 403
    assert granular.get("Contacts", params={"page": 1}).status_code == 403
