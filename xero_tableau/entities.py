"""The one registry of the Xero entities the connector syncs: start here to add one.

Each :class:`XeroEntity` says everything the project knows about one Accounting API endpoint:
where it is read from, how it pages, which scopes open it, whether Xero sends webhooks for it,
the model that validates it, how the raw lake lays it out and which published table carries its
documents. Every other module derives what it needs from :data:`ENTITIES` (asset keys, polling
targets, webhook categories, the client's paging, the audit trail's tables, the switchable
entities); none keeps its own list. The order of :data:`ENTITIES` is the order a sync reads them
in. ``docs/architecture.md`` has the checklist for adding an entity.

The Xero sandbox keeps its own endpoint table (it must not import the code it emulates for); a
test checks that the two agree.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from xero_tableau import raw_layouts as layouts
from xero_tableau.raw_layouts import RawLayout
from xero_tableau.xero import models
from xero_tableau.xero.models import ParseResult, XeroModel

Paging = Literal["page", "offset", "none"]
"""``page``: ``page`` + ``pageSize`` (up to 1,000), read in ``UpdatedDateUTC`` order with an
If-Modified-Since keyset cursor; ``offset``: an ``offset`` cursor on a record number (the
general ledger's JournalNumber); ``none``: one call returns everything."""
Kind = Literal["transactional", "reference"]
"""``transactional``: raw assets partitioned by tenant x day of ``UpdatedDateUTC``;
``reference``: small snapshots re-read in full per tenant."""

# Scopes: the broad one first, then the granular one Xero introduced in 2026 (either opens it).
_TRANSACTIONS = "accounting.transactions"
_SETTINGS = ("accounting.settings",)
_UNIT_DP = {"unitdp": "4"}  # quantities and unit prices to 4 decimals, as the lake stores them


@dataclass(frozen=True)
class XeroEntity:
    """One Accounting API endpoint as the connector reads it."""

    endpoint: str
    """URL segment and JSON envelope key, e.g. ``Invoices``."""
    asset_name: str
    """Raw asset name (``xero/raw/<asset_name>``), lake folder and ``XT_DISABLED_ENTITIES`` name."""
    id_field: str
    """The JSON key that identifies a record, e.g. ``InvoiceID``."""
    model: type[XeroModel]
    """The pydantic model one record validates as."""
    scopes: tuple[str, ...]
    """OAuth scopes any one of which opens the endpoint (``.read`` is appended when asking)."""
    kind: Kind
    paging: Paging
    modified_since: bool
    """Whether the endpoint honours If-Modified-Since."""
    webhook_category: str | None = None
    """Xero's webhook ``eventCategory`` for it (INVOICE, CREDITNOTE, CONTACT); None: polled."""
    takes_ids: bool = False
    """Whether ``?IDs=`` reads records by id (50 a call)."""
    optional: bool = False
    """Whether ``XT_DISABLED_ENTITIES`` may switch it off."""
    params: Mapping[str, str] = field(default_factory=dict)
    """Extra query parameters sent on every read (``includeArchived``, ``unitdp`` ...)."""
    layout: RawLayout | None = None
    """The raw lake's columnar layout (transactional entities)."""
    published_table: str | None = None
    """The published table that carries its documents (what the audit trail links to)."""
    response_key: str = ""
    """JSON envelope key when it differs from ``endpoint`` (``Organisations``)."""

    @property
    def envelope(self) -> str:
        return self.response_key or self.endpoint

    @property
    def paged(self) -> bool:
        return self.paging != "none"

    @property
    def raw_layout(self) -> RawLayout:
        if self.layout is None:
            raise ValueError(f"{self.endpoint} is a reference entity: it has no raw layout")
        return self.layout

    def parse(self, raw: Iterable[Any]) -> ParseResult[Any]:
        """Validate records of this endpoint (:func:`xero_tableau.xero.models.parse_records`)."""
        return models.parse_records(self.model, raw, self.id_field)


def _transactional(
    endpoint: str,
    asset_name: str,
    id_field: str,
    model: type[XeroModel],
    layout: RawLayout,
    scopes: tuple[str, ...],
    published_table: str,
    **extra: Any,
) -> XeroEntity:
    return XeroEntity(
        endpoint,
        asset_name,
        id_field,
        model,
        scopes,
        kind="transactional",
        paging="page",
        modified_since=True,
        layout=layout,
        published_table=published_table,
        **extra,
    )


ENTITIES: dict[str, XeroEntity] = {
    entity.endpoint: entity
    for entity in (
        # Transactional, in the order a sync reads them: contacts first (documents name them).
        _transactional(
            "Contacts",
            "contacts",
            "ContactID",
            models.Contact,
            layouts.CONTACTS,
            ("accounting.contacts",),
            "dim_contacts",
            webhook_category="CONTACT",
            takes_ids=True,
            params={"includeArchived": "true"},  # archived contacts are Xero's soft deletes
        ),
        _transactional(
            "Invoices",
            "invoices",
            "InvoiceID",
            models.Invoice,
            layouts.INVOICES,
            (_TRANSACTIONS, "accounting.invoices"),
            "fct_invoice_lines",
            webhook_category="INVOICE",
            takes_ids=True,
            params=_UNIT_DP,
        ),
        _transactional(
            "CreditNotes",
            "credit_notes",
            "CreditNoteID",
            models.CreditNote,
            layouts.CREDIT_NOTES,
            (_TRANSACTIONS, "accounting.invoices"),
            "fct_credit_note_lines",
            webhook_category="CREDITNOTE",
            optional=True,
            params=_UNIT_DP,
        ),
        _transactional(
            "Payments",
            "payments",
            "PaymentID",
            models.Payment,
            layouts.PAYMENTS,
            (_TRANSACTIONS, "accounting.payments"),
            "fct_payments",
        ),
        _transactional(
            "BankTransactions",
            "bank_transactions",
            "BankTransactionID",
            models.BankTransaction,
            layouts.BANK_TRANSACTIONS,
            (_TRANSACTIONS, "accounting.banktransactions"),
            "fct_bank_transaction_lines",
            params=_UNIT_DP,
        ),
        _transactional(
            "ManualJournals",
            "manual_journals",
            "ManualJournalID",
            models.ManualJournal,
            layouts.MANUAL_JOURNALS,
            (_TRANSACTIONS, "accounting.manualjournals"),
            "fct_manual_journal_lines",
            optional=True,
        ),
        _transactional(
            "PurchaseOrders",
            "purchase_orders",
            "PurchaseOrderID",
            models.PurchaseOrder,
            layouts.PURCHASE_ORDERS,
            (_TRANSACTIONS, "accounting.invoices"),
            "fct_purchase_order_lines",
            optional=True,
        ),
        _transactional(
            "Overpayments",
            "overpayments",
            "OverpaymentID",
            models.Overpayment,
            layouts.OVERPAYMENTS,
            (_TRANSACTIONS, "accounting.payments"),
            "fct_overpayments",
            params=_UNIT_DP,
        ),
        _transactional(
            "Prepayments",
            "prepayments",
            "PrepaymentID",
            models.Prepayment,
            layouts.PREPAYMENTS,
            (_TRANSACTIONS, "accounting.payments"),
            "fct_prepayments",
            params=_UNIT_DP,
        ),
        # Reference snapshots, read in full each time (renames and archives show at once).
        XeroEntity(
            "Organisation",
            "organisation",
            "OrganisationID",
            models.Organisation,
            _SETTINGS,
            kind="reference",
            paging="none",
            modified_since=False,
            response_key="Organisations",
        ),
        XeroEntity(
            "Accounts",
            "accounts",
            "AccountID",
            models.Account,
            _SETTINGS,
            kind="reference",
            paging="none",
            modified_since=True,
            published_table="dim_accounts",
        ),
        XeroEntity(
            "TrackingCategories",
            "tracking_categories",
            "TrackingCategoryID",
            models.TrackingCategory,
            _SETTINGS,
            kind="reference",
            paging="none",
            modified_since=False,
            # archived categories and options too: old lines still point at them
            params={"includeArchived": "true"},
            published_table="dim_tracking_options",
        ),
        XeroEntity(
            "TaxRates",
            "tax_rates",
            "TaxType",
            models.TaxRate,
            _SETTINGS,
            kind="reference",
            paging="none",
            modified_since=False,
        ),
        XeroEntity(
            "Currencies",
            "currencies",
            "Code",
            models.Currency,
            _SETTINGS,
            kind="reference",
            paging="none",
            modified_since=False,
        ),
    )
}
"""Endpoint -> its entity; transactional entities first, in the order a sync reads them."""

TRANSACTIONAL: tuple[XeroEntity, ...] = tuple(
    e for e in ENTITIES.values() if e.kind == "transactional"
)
REFERENCE: tuple[XeroEntity, ...] = tuple(e for e in ENTITIES.values() if e.kind == "reference")
WEBHOOK_CATEGORIES: dict[str, XeroEntity] = {
    e.webhook_category: e for e in ENTITIES.values() if e.webhook_category
}
"""Xero webhook ``eventCategory`` -> the entity whose records it announces."""
OPTIONAL_ASSET_NAMES: tuple[str, ...] = tuple(e.asset_name for e in ENTITIES.values() if e.optional)
"""The entities ``XT_DISABLED_ENTITIES`` may name."""


def entity(endpoint: str) -> XeroEntity:
    """The entity of an endpoint name, with a clear error for an unknown one."""
    try:
        return ENTITIES[endpoint]
    except KeyError:
        known = ", ".join(ENTITIES)
        raise ValueError(f"unknown Xero entity {endpoint!r}; expected one of: {known}") from None


def transactional(endpoint: str) -> XeroEntity:
    """The transactional entity of an endpoint name (raw day partitions, a raw layout)."""
    spec = entity(endpoint)
    if spec.kind != "transactional":
        known = ", ".join(e.endpoint for e in TRANSACTIONAL)
        raise ValueError(f"not a transactional Xero entity: {endpoint!r} (expected one of {known})")
    return spec


def by_asset_name(name: str) -> XeroEntity:
    for spec in ENTITIES.values():
        if spec.asset_name == name:
            return spec
    raise ValueError(f"no Xero entity has the asset name {name!r}")


def parse_records(endpoint: str, raw: Iterable[Any]) -> ParseResult[Any]:
    """Validate records of ``endpoint``: a bad record is reported with its reason, never fatal."""
    return entity(endpoint).parse(raw)


PUBLISHED_TABLES: dict[str, str] = {
    e.endpoint: e.published_table for e in ENTITIES.values() if e.published_table
}
"""Entity -> the published table that carries its documents (what the audit trail links to)."""
