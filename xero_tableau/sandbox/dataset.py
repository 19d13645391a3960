"""The sandbox's data: one ``TenantData`` per Xero organisation, records in Xero's own JSON shape.

Records are stored exactly as the Accounting API returns them (PascalCase keys, ``/Date(ms+0000)/``
strings, money as JSON numbers with two decimals), so serving a page is a filter, a sort and a
``json.dumps``. Beside each record the store keeps the two instants the API filters and sorts on
(UpdatedDateUTC and Date, in epoch milliseconds) so no request has to parse dates.

This module is the contract between the generator (which fills it), the admin API (which writes to
it) and the HTTP app (which reads it). It implements the server side from Xero's OpenAPI spec and
never imports the connector's client code.
"""

import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Protocol

# The scopes that open an endpoint: the broad one Xero's spec lists, or the 2026 granular one;
# each also opens with its ``.read`` variant (``accounting.invoices.read``).
_INVOICES = ("accounting.transactions", "accounting.invoices")
_PAYMENTS = ("accounting.transactions", "accounting.payments")
_SETTINGS = ("accounting.settings",)


@dataclass(frozen=True)
class EntitySpec:
    """How one Accounting API endpoint behaves: the sandbox's single table of endpoint facts.

    The HTTP app serves every entity from these fields alone, and a client's own endpoint registry
    can be compared with them field by field, so the names are stable:

    - ``endpoint``: URL segment and JSON envelope key, e.g. ``"Invoices"``.
    - ``id_field``: the record's key, e.g. ``"InvoiceID"`` (``"TaxType"``, ``"Code"`` for the two
      natural-key endpoints); ``GET /{endpoint}/{id}`` looks it up.
    - ``paged``: takes ``page`` and ``pageSize`` (at most 1,000) and answers with ``pagination``
      (the nine paged endpoints of the spec).
    - ``modified_since``: honours the If-Modified-Since header.
    - ``scopes``: the scopes that open it; a grant holding any of them, or its ``.read`` variant,
      may read the endpoint.
    - ``webhook_category``: INVOICE / CREDITNOTE / CONTACT, ``None`` where Xero sends no webhooks.
    - ``takes_ids``: takes ``?IDs=guid,guid`` (at most 50).
    - ``takes_where``: takes ``?where=``.
    - ``summary_only``: takes ``?summaryOnly=true``.
    - ``include_archived``: archived records are hidden unless ``?includeArchived=true``.
    - ``unit_dp``: takes ``?unitdp=4`` (four decimals on unit amounts; totals stay at two).
      Without it, or on an endpoint that does not take it, line unit amounts come rounded to two.
    - ``has_lines``: key of the line array (``"LineItems"``, ``"JournalLines"``), if any.
    - ``default_order``: the field the API sorts by when no ``?order=`` is given.
    """

    endpoint: str
    id_field: str
    paged: bool
    modified_since: bool
    scopes: tuple[str, ...]
    webhook_category: str | None = None
    takes_ids: bool = False
    takes_where: bool = True
    summary_only: bool = False
    include_archived: bool = False
    unit_dp: bool = False
    has_lines: str | None = None
    default_order: str = ""


ENTITIES: dict[str, EntitySpec] = {
    spec.endpoint: spec
    for spec in (
        EntitySpec(
            "Invoices",
            "InvoiceID",
            paged=True,
            modified_since=True,
            scopes=_INVOICES,
            webhook_category="INVOICE",
            takes_ids=True,
            summary_only=True,
            unit_dp=True,
            has_lines="LineItems",
            default_order="UpdatedDateUTC",
        ),
        EntitySpec(
            "CreditNotes",
            "CreditNoteID",
            paged=True,
            modified_since=True,
            scopes=_INVOICES,
            webhook_category="CREDITNOTE",
            unit_dp=True,
            has_lines="LineItems",
            default_order="UpdatedDateUTC",
        ),
        EntitySpec(
            "Payments",
            "PaymentID",
            paged=True,
            modified_since=True,
            scopes=_PAYMENTS,
            default_order="UpdatedDateUTC",
        ),
        EntitySpec(
            "BankTransactions",
            "BankTransactionID",
            paged=True,
            modified_since=True,
            scopes=("accounting.transactions", "accounting.banktransactions"),
            unit_dp=True,
            has_lines="LineItems",
            default_order="UpdatedDateUTC",
        ),
        EntitySpec(
            "ManualJournals",
            "ManualJournalID",
            paged=True,
            modified_since=True,
            scopes=("accounting.transactions", "accounting.manualjournals"),
            has_lines="JournalLines",
            default_order="UpdatedDateUTC",
        ),
        EntitySpec(
            "PurchaseOrders",
            "PurchaseOrderID",
            paged=True,
            modified_since=True,
            scopes=_INVOICES,
            takes_where=False,  # the spec gives PurchaseOrders Status/DateFrom/DateTo, no where
            has_lines="LineItems",
            default_order="UpdatedDateUTC",
        ),
        EntitySpec(
            "Contacts",
            "ContactID",
            paged=True,
            modified_since=True,
            scopes=("accounting.contacts",),
            webhook_category="CONTACT",
            takes_ids=True,
            summary_only=True,
            include_archived=True,
            default_order="Name",
        ),
        EntitySpec(
            "Overpayments",
            "OverpaymentID",
            paged=True,
            modified_since=True,
            scopes=_PAYMENTS,
            unit_dp=True,
            has_lines="LineItems",
            default_order="UpdatedDateUTC",
        ),
        EntitySpec(
            "Prepayments",
            "PrepaymentID",
            paged=True,
            modified_since=True,
            scopes=_PAYMENTS,
            unit_dp=True,
            has_lines="LineItems",
            default_order="UpdatedDateUTC",
        ),
        EntitySpec(
            "Accounts",
            "AccountID",
            paged=False,
            modified_since=True,
            scopes=_SETTINGS,
            default_order="Code",
        ),
        EntitySpec(
            "TrackingCategories",
            "TrackingCategoryID",
            paged=False,
            modified_since=False,
            scopes=_SETTINGS,
            include_archived=True,
            default_order="Name",
        ),
        EntitySpec(
            "TaxRates",
            "TaxType",
            paged=False,
            modified_since=False,
            scopes=_SETTINGS,
            default_order="Name",
        ),
        EntitySpec(
            "Currencies",
            "Code",
            paged=False,
            modified_since=False,
            scopes=_SETTINGS,
            default_order="Code",
        ),
        # The general ledger: posted by ``ledger.py`` from the documents, never written; read
        # by ``offset`` (JournalNumber), 100 at a time, with ``accounting.journals.read`` only.
        EntitySpec(
            "Journals",
            "JournalID",
            paged=False,
            modified_since=True,
            scopes=("accounting.journals.read",),
            takes_where=False,
            has_lines="JournalLines",
            default_order="JournalNumber",
        ),
    )
}

# /Organisation is served beside the table (one record per tenant, no collection, envelope key
# "Organisations"), so only its scopes live here.
ORGANISATION_SCOPES: tuple[str, ...] = _SETTINGS


def endpoint_scopes(endpoint: str) -> tuple[str, ...]:
    """The scopes that open ``endpoint`` (any ``ENTITIES`` key or ``"Organisation"``)."""
    if endpoint == "Organisation":
        return ORGANISATION_SCOPES
    return ENTITIES[endpoint].scopes


PAGED_ENDPOINTS = frozenset(name for name, spec in ENTITIES.items() if spec.paged)


# --- Xero's date forms -------------------------------------------------------------------------

_MS_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{2,4})?\)/$")


def ms_date(ms: int, offset: bool = True) -> str:
    """Xero's ``/Date(ms+0000)/`` (or ``/Date(ms)/`` without the offset, as the envelope uses)."""
    return f"/Date({ms}+0000)/" if offset else f"/Date({ms})/"


def parse_ms_date(value: str) -> int:
    """Epoch milliseconds of a ``/Date(...)/`` string; the offset only annotates the instant."""
    match = _MS_DATE.match(value)
    if match is None:
        raise ValueError(f"not a Xero /Date()/ value: {value!r}")
    return int(match.group(1))


def day_ms(day: date) -> int:
    """Midnight UTC of ``day`` in epoch ms: how Xero encodes date-only fields."""
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def date_string(day: date) -> str:
    """The ``DateString`` companion of a date-only field, e.g. ``2019-03-07T00:00:00``."""
    return f"{day.isoformat()}T00:00:00"


def utc_string(ms: int) -> str:
    """``UpdatedDateUTCString``, e.g. ``2019-03-07T17:59:28Z``."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the store ---------------------------------------------------------------------------------


class LedgerHook(Protocol):
    """What the store needs of the general ledger (``ledger.Ledger``) to post every write."""

    clock: Callable[[], int]  # epoch ms of "now": when journals are posted

    def before_write(self) -> None: ...
    def written(self, endpoint: str, record: dict) -> None: ...


@dataclass
class TenantData:
    """One Xero organisation: its Organisation record and a collection per endpoint."""

    tenant_id: str
    name: str
    organisation: dict
    short_code: str = ""
    collections: dict[str, dict[str, dict]] = field(
        default_factory=lambda: {name: {} for name in ENTITIES}
    )
    # endpoint -> record id -> (UpdatedDateUTC ms, Date ms); Date ms is 0 where a record has none
    instants: dict[str, dict[str, tuple[int, int]]] = field(
        default_factory=lambda: {name: {} for name in ENTITIES}
    )

    # endpoint -> (UpdatedDateUTC ms ascending, record ids in that order); rebuilt after a write
    _by_updated: dict[str, tuple[list[int], list[str]]] = field(default_factory=dict, repr=False)
    # Journals no document explains (conversion balances, fixed-asset depreciation), set by the
    # generator: {"JournalDate", "CreatedDateUTC", "Reference", "Lines": [(code, cents, text)]}
    system_journals: list[dict] = field(default_factory=list, repr=False)
    # the general ledger, once attached (``ledger.ledger_of``): every put posts to it
    ledger: LedgerHook | None = field(default=None, repr=False, compare=False)

    def put(self, endpoint: str, record: dict) -> None:
        """Insert or replace a record, keeping the instants index and the ledger in step."""
        if endpoint == "Journals":
            raise ValueError("journals are posted by the ledger, never written")
        ledger = self.ledger
        if ledger is not None:
            ledger.before_write()
        self._by_updated.pop(endpoint, None)
        spec = ENTITIES[endpoint]
        record_id = str(record[spec.id_field])
        updated = record.get("UpdatedDateUTC")
        when = record.get("Date")
        self.collections[endpoint][record_id] = record
        self.instants[endpoint][record_id] = (
            parse_ms_date(updated) if updated else 0,
            parse_ms_date(when) if when else 0,
        )
        if ledger is not None:
            ledger.written(endpoint, record)

    def remove(self, endpoint: str, record_id: str) -> None:
        """Forget a record Xero deletes for good (an unused tracking category)."""
        self._by_updated.pop(endpoint, None)
        self.collections[endpoint].pop(record_id, None)
        self.instants[endpoint].pop(record_id, None)

    def by_updated(self, endpoint: str) -> tuple[list[int], list[str]]:
        """Record ids sorted by (UpdatedDateUTC, id), with their UpdatedDateUTC ms alongside: the
        order incremental readers ask for, kept so a page costs a slice, not a sort."""
        cached = self._by_updated.get(endpoint)
        if cached is None:
            pairs = sorted((upd, rid) for rid, (upd, _when) in self.instants[endpoint].items())
            cached = ([upd for upd, _ in pairs], [rid for _, rid in pairs])
            self._by_updated[endpoint] = cached
        return cached

    def get(self, endpoint: str, record_id: str) -> dict | None:
        return self.collections[endpoint].get(record_id)

    def records(self, endpoint: str) -> Iterator[tuple[dict, int, int]]:
        """Every record of an endpoint with its (UpdatedDateUTC ms, Date ms)."""
        instants = self.instants[endpoint]
        for record_id, record in self.collections[endpoint].items():
            updated, when = instants[record_id]
            yield record, updated, when

    def count(self, endpoint: str) -> int:
        """Records stored for ``endpoint`` (the ledger's journals are derived, not stored: 0)."""
        return len(self.collections[endpoint])


@dataclass
class SandboxDataset:
    """All tenants of the sandbox, with the lock that serialises writes against reads."""

    tenants: dict[str, TenantData] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    # the sandbox's clock in epoch ms, once an emulator serves the data: ledgers post at its now
    clock: Callable[[], int] | None = None

    def add(self, tenant: TenantData) -> None:
        self.tenants[tenant.tenant_id] = tenant
        if self.clock is not None and tenant.ledger is not None:
            tenant.ledger.clock = self.clock

    def tenant(self, tenant_id: str) -> TenantData | None:
        return self.tenants.get(tenant_id)

    def invoice_line_count(self) -> int:
        return sum(
            len(inv.get("LineItems", ()))
            for t in self.tenants.values()
            for inv in t.collections["Invoices"].values()
        )
