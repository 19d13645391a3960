"""The sandbox's admin API: change Xero's data the way a bookkeeper would, and steer the emulator.

Writes behave as Xero's do: they bump ``UpdatedDateUTC`` and fire webhooks only where Xero has
them, except that editing a line's account code changes the record silently, as real Xero does.

Routes (JSON in, JSON out; loopback only, no auth):
- ``GET    /sandbox/admin/state``
- ``POST   /sandbox/admin/clock/advance``            {"seconds": 3600}
- ``POST   /sandbox/admin/faults``                   {"error_rate": .., "fail_next": [503], ...}
- ``GET|POST /sandbox/admin/webhooks``               {"url": "...", "key": "..."} subscribes
- ``POST   /sandbox/admin/webhooks/{id}/verify``     re-runs intent to receive (and re-enables)
- ``POST   /sandbox/admin/tenants/{t}/{Endpoint}``   create a record
- ``PATCH  /sandbox/admin/tenants/{t}/{Endpoint}/{id}``  update fields (lines replace lines)
- ``POST   /sandbox/admin/tenants/{t}/{Endpoint}/{id}/void``   (and ``/delete``)
- ``POST   /sandbox/admin/tenants/{t}/Invoices/{id}/payments``  {"Amount": 10.5,
  "CurrencyRate": 0.61}: the rate defaults to the invoice's
- ``POST   /sandbox/admin/tenants/{t}/CreditNotes/{id}/payments``  {"Amount": 10.5}: a cash
  refund of a credit note's remaining credit
- ``POST   /sandbox/admin/tenants/{t}/{Over|Prepayments|CreditNotes}/{id}/allocations``
  {"InvoiceID": "...", "Amount": 10.5, "Date": "2026-03-01"}: apply credit to an invoice

An overpayment or prepayment is made with its bank transaction (``advances.py``): create it on
its own endpoint or, as in Xero, as a BankTransaction of Type RECEIVE-/SPEND-OVERPAYMENT or
-PREPAYMENT (the answer is then the bank transaction), with an optional ``BankAccount``
(``{"AccountID"}`` or ``{"Code"}`` of a BANK account; the first one by default) and
``IsReconciled``. Voiding either voids both; that bank transaction cannot be updated or deleted.
- ``POST   /sandbox/admin/tenants/{t}/{Endpoint}/{id}/lines/{line}/account-code``  {"AccountCode"}
- ``POST   /sandbox/admin/tenants/{t}/TrackingCategories/{id}/Options/{option}``  {"Name", "Status"}
- ``POST   /sandbox/admin/tenants/{t}/TrackingCategories/{id}/Options/{option}/delete``
  (a category: PATCH {"Name", "Status"} and ``/delete`` as for any record)
- ``POST   /sandbox/admin/tenants/{t}/disconnect``   the organisation revokes the app
"""

import uuid
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from xero_tableau.sandbox.advances import (
    ADVANCE_TYPES,
    LINK_FIELDS,
    bank_transaction_of,
    cash_side,
    linked_advance,
    mirror,
)
from xero_tableau.sandbox.clock import SandboxClock
from xero_tableau.sandbox.credentials import DEMO_WEBHOOK_KEY
from xero_tableau.sandbox.dataset import (
    ENTITIES,
    SandboxDataset,
    TenantData,
    date_string,
    day_ms,
    ms_date,
    parse_ms_date,
    utc_string,
)
from xero_tableau.sandbox.identity import IdentityService
from xero_tableau.sandbox.ledger import ledger_of
from xero_tableau.sandbox.limits import RateLimiter
from xero_tableau.sandbox.webhooks import WebhookSender

CENT = Decimal("0.01")
_ADVANCES = {"Overpayments", "Prepayments"}  # credit a contact holds until it is allocated
_LINED = {"Invoices", "CreditNotes", "BankTransactions", "PurchaseOrders", *_ADVANCES}
# endpoints that carry UpdatedDateUTCString
_UTC_STRING = {"Invoices", "CreditNotes", "Payments", *_ADVANCES}
_NO_ADVANCE_EDIT = (
    "Updates on overpayment and prepayment bank transactions are not supported: "
    "change the overpayment or prepayment"
)


class Sandbox(Protocol):
    """What the admin API needs of the emulated Xero (the HTTP app's ``XeroSandbox`` provides it).

    Declared here so this module never imports the HTTP app: the app builds its routes from this
    module, not the other way round."""

    @property
    def dataset(self) -> SandboxDataset: ...
    @property
    def clock(self) -> SandboxClock: ...
    @property
    def identity(self) -> IdentityService: ...
    @property
    def limiter(self) -> RateLimiter: ...
    @property
    def webhooks(self) -> WebhookSender: ...
    @property
    def faults(self) -> Any: ...  # a dataclass of fault settings, set field by field
    @property
    def calls(self) -> dict[str, int]: ...


class AdminError(ValueError):
    """A write Xero would refuse (400 with the reason)."""


def _money(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(CENT, ROUND_HALF_UP)


def _num(value: Decimal) -> float:
    return float(value)


class SandboxWriter:
    """Applies writes to one sandbox, keeping records consistent and firing webhooks."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    # --- helpers -----------------------------------------------------------------------------

    def tenant(self, tenant_id: str) -> TenantData:
        tenant = self.sandbox.dataset.tenant(tenant_id.lower())
        if tenant is None:
            raise KeyError(f"no tenant {tenant_id}")
        # Writes edit records in place before storing them: the general ledger must hold the
        # postings of the state before this write (it is built lazily, on first use).
        ledger_of(tenant).build()
        return tenant

    def _stamp(self, tenant: TenantData, endpoint: str, record: dict) -> None:
        """A new UpdatedDateUTC, strictly after the record's previous one.

        Records Xero serves without UpdatedDateUTC (TrackingCategories, TaxRates, Currencies: the
        endpoints that ignore If-Modified-Since) never get one."""
        if not ENTITIES[endpoint].modified_since:
            return
        now = self.sandbox.clock.now_ms()
        previous = record.get("UpdatedDateUTC")
        if previous:
            now = max(now, parse_ms_date(previous) + 1)
        record["UpdatedDateUTC"] = ms_date(now)
        if endpoint in _UTC_STRING:
            record["UpdatedDateUTCString"] = utc_string(now)

    def _notify(self, tenant: TenantData, endpoint: str, record: dict, event_type: str) -> None:
        category = ENTITIES[endpoint].webhook_category
        if category is None:
            return  # Xero has no webhook for this entity: pollers must find the change
        data: dict[str, str] | None = None
        if category == "CREDITNOTE":
            data = {"Type": str(record.get("Type")), "Status": str(record.get("Status"))}
        record_id = str(record[ENTITIES[endpoint].id_field])
        # Xero stamps the event with the moment of the change: the record's new UpdatedDateUTC.
        updated = record.get("UpdatedDateUTC")
        at = datetime.fromtimestamp(parse_ms_date(updated) / 1000, UTC) if updated else None
        self.sandbox.webhooks.emit(
            tenant.tenant_id, category, event_type, record_id, data=data, at=at
        )

    def _save(self, tenant: TenantData, endpoint: str, record: dict, event_type: str) -> dict:
        self._stamp(tenant, endpoint, record)
        tenant.put(endpoint, record)
        self._notify(tenant, endpoint, record, event_type)
        return record

    def _record(self, tenant: TenantData, endpoint: str, record_id: str) -> dict:
        if endpoint not in ENTITIES:
            raise KeyError(f"no endpoint {endpoint}")
        record = tenant.get(endpoint, record_id)
        if record is None:
            raise KeyError(f"no {endpoint} record {record_id}")
        return record

    def _tax_rate(self, tenant: TenantData, tax_type: str | None) -> Decimal:
        rate = tenant.get("TaxRates", tax_type or "")
        if rate is None:
            return Decimal(0)
        return Decimal(str(rate.get("EffectiveRate", rate.get("DisplayTaxRate", 0)))) / 100

    def _resolve_tracking(self, tenant: TenantData, tracking: list[dict]) -> list[dict]:
        out = []
        for element in tracking:
            match = None
            for category in tenant.collections["TrackingCategories"].values():
                for option in category.get("Options", []):
                    by_id = element.get("TrackingOptionID") == option["TrackingOptionID"]
                    by_name = (
                        element.get("Name") == category["Name"]
                        and element.get("Option") == option["Name"]
                    )
                    if by_id or by_name:
                        match = (category, option)
            if match is None:
                raise AdminError(f"unknown tracking option {element}")
            category, option = match
            out.append(
                {
                    "TrackingCategoryID": category["TrackingCategoryID"],
                    "TrackingOptionID": option["TrackingOptionID"],
                    "Name": category["Name"],
                    "Option": option["Name"],
                }
            )
        return out

    def _account_ids(self, tenant: TenantData) -> dict[str, str]:
        """Account code -> AccountID: Xero's lines carry both."""
        accounts = tenant.collections["Accounts"].values()
        return {a["Code"]: a["AccountID"] for a in accounts if a.get("Code")}

    def _price_lines(self, tenant: TenantData, record: dict) -> None:
        """Fill LineAmount/TaxAmount per line and the document totals, as Xero computes them."""
        kind = record.setdefault("LineAmountTypes", "Exclusive")
        codes = self._account_ids(tenant)
        subtotal = tax_total = gross = Decimal(0)
        for line in record.get("LineItems", []):
            line.setdefault("LineItemID", str(uuid.uuid4()))
            if line.get("AccountCode"):
                if line["AccountCode"] not in codes:
                    raise AdminError(f"Account code '{line['AccountCode']}' is not a valid code")
                line["AccountID"] = codes[line["AccountCode"]]  # the ID follows the code
            quantity = Decimal(str(line.get("Quantity", 1)))
            unit = Decimal(str(line.get("UnitAmount", 0)))
            amount = _money(line["LineAmount"]) if "LineAmount" in line else _money(quantity * unit)
            rate = Decimal(0) if kind == "NoTax" else self._tax_rate(tenant, line.get("TaxType"))
            if kind == "Inclusive":
                tax = _money(amount - amount / (1 + rate))
                subtotal += amount - tax
                gross += amount
            else:
                tax = _money(amount * rate)
                subtotal += amount
                gross += amount + tax
            tax_total += tax
            line["Quantity"] = float(quantity)
            line["UnitAmount"] = float(unit)
            line["LineAmount"] = _num(amount)
            line["TaxAmount"] = _num(tax)
            line["Tracking"] = self._resolve_tracking(tenant, line.get("Tracking", []))
        record["SubTotal"] = _num(subtotal)
        record["TotalTax"] = _num(tax_total)
        record["Total"] = _num(gross)

    def _remaining_credit(self, record: dict) -> None:
        """RemainingCredit of a credit note or advance: its Total less what was allocated or
        refunded (0 once voided)."""
        if record.get("Status") == "VOIDED":
            record["RemainingCredit"] = 0.0
            return
        used = sum((_money(a["Amount"]) for a in record.get("Allocations", [])), Decimal(0))
        used += sum((_money(p["Amount"]) for p in record.get("Payments", [])), Decimal(0))
        remaining = _money(record.get("Total", 0)) - used
        if remaining < 0:
            raise AdminError("the total cannot fall below the amount already allocated")
        record["RemainingCredit"] = _num(remaining)

    def _price_journal(self, tenant: TenantData, record: dict) -> None:
        """A manual journal's lines as Xero keeps them: each line's tax from its TaxType (none
        when the journal is NoTax, its default), and debits equal to credits, tax included."""
        kind = record.setdefault("LineAmountTypes", "NoTax")
        codes = self._account_ids(tenant)
        balance = Decimal(0)
        for line in record.get("JournalLines", []):
            amount = _money(line["LineAmount"])
            if line.get("AccountCode"):
                if line["AccountCode"] not in codes:
                    raise AdminError(f"Account code '{line['AccountCode']}' is not a valid code")
                line["AccountID"] = codes[line["AccountCode"]]
            rate = Decimal(0) if kind == "NoTax" else self._tax_rate(tenant, line.get("TaxType"))
            if kind == "Inclusive":
                tax = _money(amount - amount / (1 + rate))
                balance += amount
            else:
                tax = _money(amount * rate)
                balance += amount + tax
            line["LineAmount"] = _num(amount)
            line["TaxAmount"] = _num(tax)
            line["Tracking"] = self._resolve_tracking(tenant, line.get("Tracking", []))
        if balance != 0:
            raise AdminError("journal lines must balance to zero")

    def _settle(self, record: dict) -> None:
        """AmountDue/AmountPaid and PAID status follow the record's payments."""
        if "AmountPaid" not in record and record.get("Type") not in ("ACCREC", "ACCPAY"):
            return
        total = _money(record.get("Total", 0))
        paid = sum((_money(p["Amount"]) for p in record.get("Payments", [])), Decimal(0))
        credited = _money(record.get("AmountCredited", 0))
        record["AmountPaid"] = _num(paid)
        record["AmountCredited"] = _num(credited)
        record["AmountDue"] = _num(total - paid - credited)
        if record.get("Status") in ("AUTHORISED", "PAID"):
            record["Status"] = (
                "PAID" if total - paid - credited <= 0 and total > 0 else "AUTHORISED"
            )
        if record.get("Status") != "PAID":
            record.pop("FullyPaidOnDate", None)  # a re-opened invoice is no longer fully paid

    # --- writes ------------------------------------------------------------------------------

    def create(self, tenant_id: str, endpoint: str, body: dict) -> dict:
        tenant = self.tenant(tenant_id)
        spec = ENTITIES.get(endpoint)
        if spec is None:
            raise KeyError(f"no endpoint {endpoint}")
        if endpoint == "BankTransactions" and body.get("Type") in ADVANCE_TYPES:
            # Xero's way in: PUT /BankTransactions with an overpayment or prepayment Type makes
            # the document, and answers with its bank transaction
            kind = ADVANCE_TYPES[str(body["Type"])]
            advance = self.create(tenant_id, kind, body)
            cash = bank_transaction_of(tenant, kind, advance[LINK_FIELDS[kind]])
            assert cash is not None
            return cash
        record = dict(body)
        cash_of: tuple[str, dict, bool] | None = None  # an advance's bank transaction to make
        if endpoint in _ADVANCES:
            bank = self._bank_account(tenant, record.pop("BankAccount", None))
            cash_id = str(record.pop("BankTransactionID", None) or uuid.uuid4())
            if tenant.get("BankTransactions", cash_id) is not None:
                raise AdminError(f"BankTransactionID {cash_id} already exists")
            cash_of = (cash_id, bank, bool(record.pop("IsReconciled", False)))
        record.setdefault(spec.id_field, str(uuid.uuid4()))
        if tenant.get(endpoint, record[spec.id_field]) is not None:
            raise AdminError(f"{spec.id_field} {record[spec.id_field]} already exists")
        today = self.sandbox.clock.now().date()
        companions = endpoint in _LINED  # only these carry DateString companions in Xero
        for key in ("Date", "DueDate", "DeliveryDate"):
            if key in record and not str(record[key]).startswith("/Date("):
                day = date.fromisoformat(str(record[key])[:10])
                record[key] = ms_date(day_ms(day))
                if companions:
                    record[f"{key}String"] = date_string(day)
        if (endpoint in _LINED or endpoint == "ManualJournals") and "Date" not in record:
            record["Date"] = ms_date(day_ms(today))
            if companions:
                record["DateString"] = date_string(today)
        if "Contact" in record:
            contact = tenant.get("Contacts", record["Contact"].get("ContactID", ""))
            if contact is None:
                raise AdminError("unknown contact")
            record["Contact"] = {"ContactID": contact["ContactID"], "Name": contact["Name"]}
        if endpoint == "Invoices":
            record.setdefault("Status", "AUTHORISED")
            record.setdefault("CurrencyCode", tenant.organisation.get("BaseCurrency"))
            record.setdefault("CurrencyRate", 1.0)
            record.setdefault("Payments", [])
            record.setdefault("AmountCredited", 0.0)
            if record.get("Type") not in ("ACCREC", "ACCPAY"):
                raise AdminError("Invoice Type must be ACCREC or ACCPAY")
            if record["Type"] == "ACCREC" and "InvoiceNumber" not in record:
                record["InvoiceNumber"] = f"INV-SBX-{len(tenant.collections['Invoices']) + 1:06d}"
        if cash_of is not None:
            self._new_advance(tenant, endpoint, record, cash_of[1])
        if endpoint == "TrackingCategories":
            record.setdefault("Status", "ACTIVE")
            self._check_category_change(
                tenant, record, {"Name": record.get("Name"), "Status": record["Status"]}
            )
            record["Options"] = [
                {
                    "TrackingOptionID": str(uuid.uuid4()),
                    "Name": str(option["Name"]),
                    "Status": "ACTIVE",
                    "IsDeleted": False,
                    "IsArchived": False,
                    "IsActive": True,
                }
                for option in record.get("Options", [])
            ]
        if endpoint == "Contacts":
            record.setdefault("ContactStatus", "ACTIVE")
            if not record.get("Name"):
                raise AdminError("a contact needs a Name")
        if endpoint in _LINED:
            self._price_lines(tenant, record)
        if endpoint == "ManualJournals":
            self._price_journal(tenant, record)
        if endpoint == "Invoices":
            self._settle(record)
        if endpoint in _ADVANCES:
            record["RemainingCredit"] = record["Total"]
        if endpoint == "CreditNotes":
            record.setdefault("CurrencyCode", tenant.organisation.get("BaseCurrency"))
            record.setdefault("CurrencyRate", 1.0)
            record.setdefault("Allocations", [])
            record.setdefault("Payments", [])
            self._remaining_credit(record)
        if cash_of is not None:
            # the bank transaction first, so the ledger posts the advance on its bank account
            cash_id, bank, reconciled = cash_of
            cash = cash_side(
                endpoint,
                record,
                bank_transaction_id=cash_id,
                bank_account={
                    "AccountID": bank["AccountID"],
                    "Code": bank.get("Code", ""),
                    "Name": bank.get("Name", ""),
                },
                is_reconciled=reconciled,
                updated="",
            )
            self._save(tenant, "BankTransactions", cash, "CREATE")
        return self._save(tenant, endpoint, record, "CREATE")

    def update(self, tenant_id: str, endpoint: str, record_id: str, changes: dict) -> dict:
        tenant = self.tenant(tenant_id)
        record = self._record(tenant, endpoint, record_id)
        protected = {ENTITIES[endpoint].id_field, "UpdatedDateUTC", "UpdatedDateUTCString"}
        if protected & changes.keys():
            raise AdminError(f"cannot change {sorted(protected & changes.keys())}")
        if record.get("Status") in ("VOIDED", "DELETED"):
            raise AdminError(f"a {record['Status']} document cannot be edited")
        if endpoint == "BankTransactions" and ADVANCE_TYPES.keys() & {
            record.get("Type"),
            changes.get("Type"),
        }:
            raise AdminError(_NO_ADVANCE_EDIT)
        if endpoint == "TrackingCategories":
            self._check_category_change(tenant, record, changes)
        record.update(changes)
        if endpoint in _LINED and ("LineItems" in changes or "LineAmountTypes" in changes):
            self._price_lines(tenant, record)
        if endpoint == "ManualJournals" and (changes.keys() & {"JournalLines", "LineAmountTypes"}):
            self._price_journal(tenant, record)
        if endpoint == "Invoices":
            self._settle(record)
        if endpoint in _ADVANCES or endpoint == "CreditNotes":
            self._remaining_credit(record)
        if endpoint in _ADVANCES:
            return self._save_advance(tenant, endpoint, record)
        return self._save(tenant, endpoint, record, "UPDATE")

    def void(self, tenant_id: str, endpoint: str, record_id: str) -> dict:
        tenant = self.tenant(tenant_id)
        record = self._record(tenant, endpoint, record_id)
        linked = linked_advance(record) if endpoint == "BankTransactions" else None
        if linked is not None:  # voiding the cash side voids the overpayment or prepayment
            self.void(tenant_id, *linked)
            return record
        voidable = ("Invoices", "CreditNotes", "BankTransactions", "ManualJournals", *_ADVANCES)
        if endpoint not in voidable:
            raise AdminError(f"{endpoint} cannot be voided")
        status = record.get("Status")
        if endpoint == "ManualJournals" and status != "POSTED":
            raise AdminError("only a POSTED manual journal can be voided")
        if endpoint != "ManualJournals" and status != "AUTHORISED":
            # DRAFT and SUBMITTED documents are deleted, not voided (as in Xero)
            raise AdminError(f"a {status} document cannot be voided; delete it instead")
        if record.get("Payments"):
            raise AdminError("This document cannot be voided as it has payments applied")
        if record.get("Allocations"):
            raise AdminError("This document cannot be voided as it has been allocated")
        if _money(record.get("AmountCredited", 0)):
            raise AdminError("This document cannot be voided as it has credit allocated to it")
        record["Status"] = "VOIDED"
        if endpoint in _ADVANCES or endpoint == "CreditNotes":
            record["RemainingCredit"] = 0.0  # as the generator's voided advances and credit notes
        if endpoint in _ADVANCES:
            return self._save_advance(tenant, endpoint, record)  # its bank transaction too
        return self._save(tenant, endpoint, record, "UPDATE")

    def delete(self, tenant_id: str, endpoint: str, record_id: str) -> dict:
        """Soft delete, as Xero does: the record stays readable with Status DELETED."""
        tenant = self.tenant(tenant_id)
        record = self._record(tenant, endpoint, record_id)
        status = record.get("Status")
        if endpoint in ("Invoices", "CreditNotes", "PurchaseOrders", "ManualJournals"):
            if status not in ("DRAFT", "SUBMITTED"):
                raise AdminError(f"a {status} document cannot be deleted; void it instead")
        elif endpoint == "Payments":
            if status == "DELETED":
                raise AdminError("the payment is already deleted")
            self._unapply_payment(tenant, record)
        elif endpoint == "TrackingCategories":
            return self._delete_tracking(tenant, record, None)
        elif endpoint != "BankTransactions":
            raise AdminError(f"{endpoint} cannot be deleted")
        elif record.get("Type") in ADVANCE_TYPES:
            raise AdminError(
                "Deletes are not supported for overpayment and prepayment bank transactions; "
                "void it instead"
            )
        record["Status"] = "DELETED"
        return self._save(tenant, endpoint, record, "UPDATE")

    # --- tracking categories and options (no UpdatedDateUTC, no webhooks) --------------------

    def _tracking_in_use(self, tenant: TenantData, category_id: str, option_id: str | None) -> bool:
        """Whether any document line carries the category (or that option of it)."""
        for endpoint, spec in ENTITIES.items():
            if spec.has_lines is None:
                continue
            for record in tenant.collections[endpoint].values():
                for line in record.get(spec.has_lines, []):
                    for element in line.get("Tracking", []):
                        if element.get("TrackingCategoryID") == category_id and (
                            option_id is None or element.get("TrackingOptionID") == option_id
                        ):
                            return True
        return False

    def _check_category_change(self, tenant: TenantData, record: dict, changes: dict) -> None:
        unknown = set(changes) - {"Name", "Status"}
        if unknown:
            raise AdminError(f"a tracking category takes Name and Status, not {sorted(unknown)}")
        if not changes.get("Name", record.get("Name")):
            raise AdminError("a tracking category needs a Name")
        status = changes.get("Status", record.get("Status"))
        if status not in ("ACTIVE", "ARCHIVED"):
            raise AdminError("Status must be ACTIVE or ARCHIVED (delete to remove a category)")
        others = [
            c
            for c in tenant.collections["TrackingCategories"].values()
            if c is not record and c.get("Status") == "ACTIVE"
        ]
        if status == "ACTIVE" and len(others) >= 2:
            raise AdminError("an organisation has at most two active tracking categories")
        if "Name" in changes and any(
            c.get("Name") == changes["Name"]
            for c in tenant.collections["TrackingCategories"].values()
            if c is not record
        ):
            raise AdminError(f"a tracking category named {changes['Name']!r} exists already")

    def _option(self, tenant: TenantData, category_id: str, option_id: str) -> tuple[dict, dict]:
        category = self._record(tenant, "TrackingCategories", category_id)
        for option in category.get("Options", []):
            if option["TrackingOptionID"] == option_id:
                return category, option
        raise KeyError(f"no tracking option {option_id}")

    def update_tracking_option(
        self, tenant_id: str, category_id: str, option_id: str, changes: dict
    ) -> dict:
        """Rename, archive or restore one option, as Xero's ``POST
        /TrackingCategories/{id}/Options/{optionId}`` does: the documents that carry it keep
        its id (Xero joins on ids; names can change) and no UpdatedDateUTC moves."""
        tenant = self.tenant(tenant_id)
        category, option = self._option(tenant, category_id, option_id)
        unknown = set(changes) - {"Name", "Status"}
        if unknown:
            raise AdminError(f"a tracking option takes Name and Status, not {sorted(unknown)}")
        status = changes.get("Status", option.get("Status"))
        if status not in ("ACTIVE", "ARCHIVED"):
            raise AdminError("Status must be ACTIVE or ARCHIVED (delete to remove an option)")
        name = changes.get("Name", option["Name"])
        if any(o is not option and o["Name"] == name for o in category.get("Options", [])):
            raise AdminError(f"the category has an option named {name!r} already")
        option.update(
            Name=name,
            Status=status,
            IsDeleted=False,
            IsArchived=status == "ARCHIVED",
            IsActive=status == "ACTIVE",
        )
        tenant.put("TrackingCategories", category)
        return option

    def delete_tracking_option(self, tenant_id: str, category_id: str, option_id: str) -> dict:
        """``DELETE /TrackingCategories/{id}/Options/{optionId}``: see ``_delete_tracking``."""
        tenant = self.tenant(tenant_id)
        category, _ = self._option(tenant, category_id, option_id)
        return self._delete_tracking(tenant, category, option_id)

    def _delete_tracking(self, tenant: TenantData, category: dict, option_id: str | None) -> dict:
        """Delete an option (or a whole category) no document line uses; a used one can only be
        archived. Xero answers with the deleted item marked DELETED and never lists it again."""
        category_id = category["TrackingCategoryID"]
        if self._tracking_in_use(tenant, category_id, option_id):
            raise AdminError("a tracking option in use cannot be deleted; archive it instead")
        if option_id is None:
            tenant.remove("TrackingCategories", category_id)
            return {**category, "Status": "DELETED", "Options": []}
        kept = [o for o in category["Options"] if o["TrackingOptionID"] != option_id]
        (gone,) = [o for o in category["Options"] if o["TrackingOptionID"] == option_id]
        category["Options"] = kept
        tenant.put("TrackingCategories", category)
        return {**gone, "Status": "DELETED", "IsDeleted": True, "IsActive": False}

    def _unapply_payment(self, tenant: TenantData, payment: dict) -> None:
        credit_note_id = (payment.get("CreditNote") or {}).get("CreditNoteID")
        if credit_note_id:
            self._unapply_refund(tenant, payment, credit_note_id)
            return
        invoice_id = (payment.get("Invoice") or {}).get("InvoiceID")
        invoice = tenant.get("Invoices", invoice_id or "")
        if invoice is None:
            return
        invoice["Payments"] = [
            p for p in invoice.get("Payments", []) if p.get("PaymentID") != payment["PaymentID"]
        ]
        if invoice.get("Status") == "PAID":
            invoice["Status"] = "AUTHORISED"
        self._settle(invoice)
        self._save(tenant, "Invoices", invoice, "UPDATE")

    def _unapply_refund(self, tenant: TenantData, payment: dict, credit_note_id: str) -> None:
        note = tenant.get("CreditNotes", credit_note_id)
        if note is None:
            return
        note["Payments"] = [
            p for p in note.get("Payments", []) if p.get("PaymentID") != payment["PaymentID"]
        ]
        note["RemainingCredit"] = _num(
            _money(note.get("RemainingCredit", 0)) + _money(payment["Amount"])
        )
        if note.get("Status") == "PAID":
            note["Status"] = "AUTHORISED"
            note.pop("FullyPaidOnDate", None)
        self._save(tenant, "CreditNotes", note, "UPDATE")

    def pay(self, tenant_id: str, invoice_id: str, body: dict) -> dict:
        tenant = self.tenant(tenant_id)
        invoice = self._record(tenant, "Invoices", invoice_id)
        if invoice.get("Status") != "AUTHORISED":
            raise AdminError(f"a {invoice.get('Status')} invoice cannot take a payment")
        amount = _money(body.get("Amount", invoice.get("AmountDue", 0)))
        if amount <= 0 or amount > _money(invoice.get("AmountDue", 0)):
            raise AdminError("payment amount must be positive and at most the amount due")
        bank = next(
            (a for a in tenant.collections["Accounts"].values() if a.get("Type") == "BANK"), None
        )
        if bank is None:
            raise AdminError("the organisation has no bank account")
        day = (
            date.fromisoformat(body["Date"])
            if body.get("Date")
            else self.sandbox.clock.now().date()
        )
        # the rate of the day the money moved; by default the invoice's (no currency difference)
        rate = self._rate(body.get("CurrencyRate", invoice.get("CurrencyRate", 1.0)))
        payment = {
            "PaymentID": str(uuid.uuid4()),
            "Date": ms_date(day_ms(day)),
            "Amount": _num(amount),
            "BankAmount": _num(_money(amount / Decimal(str(rate or 1)))),  # base currency
            "CurrencyRate": rate,
            "Reference": body.get("Reference", ""),
            "PaymentType": "ACCRECPAYMENT" if invoice["Type"] == "ACCREC" else "ACCPAYPAYMENT",
            "Status": "AUTHORISED",
            "IsReconciled": False,
            "HasAccount": True,
            "HasValidationErrors": False,
            "Account": {"AccountID": bank["AccountID"], "Code": bank.get("Code", "")},
            "Invoice": {
                "InvoiceID": invoice["InvoiceID"],
                "InvoiceNumber": invoice.get("InvoiceNumber", ""),
                "Type": invoice["Type"],
                "CurrencyCode": invoice.get("CurrencyCode"),
            },
        }
        self._save(tenant, "Payments", payment, "CREATE")
        invoice.setdefault("Payments", []).append(
            {
                "PaymentID": payment["PaymentID"],
                "Date": payment["Date"],
                "Amount": payment["Amount"],
                "CurrencyRate": rate,
            }
        )
        self._settle(invoice)
        if invoice["Status"] == "PAID":
            invoice["FullyPaidOnDate"] = payment["Date"]
        self._save(tenant, "Invoices", invoice, "UPDATE")
        return payment

    @staticmethod
    def _rate(value: Any) -> float:
        rate = float(value or 1.0)
        if rate <= 0:
            raise AdminError("CurrencyRate must be positive")
        return rate

    def refund(self, tenant_id: str, credit_note_id: str, body: dict) -> dict:
        """Pay out (ACCRECCREDIT) or receive (ACCPAYCREDIT) a credit note's remaining credit as
        cash, as Xero's ``PUT /Payments`` with a ``CreditNote`` does: an ``ARCREDITPAYMENT`` or
        ``APCREDITPAYMENT``; RemainingCredit falls, PAID at zero."""
        tenant = self.tenant(tenant_id)
        note = self._record(tenant, "CreditNotes", credit_note_id)
        if note.get("Status") != "AUTHORISED":
            raise AdminError(f"a {note.get('Status')} credit note cannot be refunded")
        remaining = _money(note.get("RemainingCredit", 0))
        amount = _money(body.get("Amount", remaining))
        if amount <= 0 or amount > remaining:
            raise AdminError("refund amount must be positive and at most the credit left")
        bank = next(
            (a for a in tenant.collections["Accounts"].values() if a.get("Type") == "BANK"), None
        )
        if bank is None:
            raise AdminError("the organisation has no bank account")
        day = (
            date.fromisoformat(body["Date"])
            if body.get("Date")
            else self.sandbox.clock.now().date()
        )
        if day_ms(day) < parse_ms_date(note["Date"]):
            raise AdminError("a refund cannot be dated before its credit note")
        rate = self._rate(body.get("CurrencyRate", note.get("CurrencyRate", 1.0)))
        sales = note.get("Type") == "ACCRECCREDIT"
        payment = {
            "PaymentID": str(uuid.uuid4()),
            "Date": ms_date(day_ms(day)),
            "Amount": _num(amount),
            "BankAmount": _num(_money(amount / Decimal(str(rate)))),  # base currency
            "CurrencyRate": rate,
            "Reference": body.get("Reference", ""),
            "PaymentType": "ARCREDITPAYMENT" if sales else "APCREDITPAYMENT",
            "Status": "AUTHORISED",
            "IsReconciled": False,
            "HasAccount": True,
            "HasValidationErrors": False,
            "Account": {"AccountID": bank["AccountID"], "Code": bank.get("Code", "")},
            "CreditNote": {
                "CreditNoteID": note["CreditNoteID"],
                "CreditNoteNumber": note.get("CreditNoteNumber", ""),
                "Type": note.get("Type"),
                "CurrencyCode": note.get("CurrencyCode"),
            },
        }
        self._save(tenant, "Payments", payment, "CREATE")
        note.setdefault("Payments", []).append(
            {
                "PaymentID": payment["PaymentID"],
                "Date": payment["Date"],
                "Amount": payment["Amount"],
                "CurrencyRate": rate,
            }
        )
        note["RemainingCredit"] = _num(remaining - amount)
        if remaining == amount:
            note["Status"] = "PAID"
            note["FullyPaidOnDate"] = payment["Date"]
        self._save(tenant, "CreditNotes", note, "UPDATE")
        return payment

    def _bank_account(self, tenant: TenantData, wanted: Any) -> dict:
        """The BANK account a body names (``{"AccountID"}`` or ``{"Code"}``, as Xero takes a
        BankAccount), or the organisation's first bank account (where payments go)."""
        accounts = tenant.collections["Accounts"].values()
        if not wanted:
            bank = next((a for a in accounts if a.get("Type") == "BANK"), None)
            if bank is None:
                raise AdminError("the organisation has no bank account")
            return bank
        if not isinstance(wanted, dict):
            raise AdminError("BankAccount must be an object with AccountID or Code")
        account_id, code = wanted.get("AccountID"), wanted.get("Code")
        found = next(
            (
                a
                for a in accounts
                if (a["AccountID"] == account_id if account_id else a.get("Code") == code)
            ),
            None,
        )
        if found is None or not (account_id or code):
            raise AdminError("unknown BankAccount")
        if found.get("Type") != "BANK":
            raise AdminError("Only accounts of Type BANK will be accepted as BankAccount")
        return found

    def _save_advance(self, tenant: TenantData, endpoint: str, record: dict) -> dict:
        """Store a changed overpayment or prepayment (UPDATE) and bring its bank transaction in
        line, stamped too when what it shows changed (no webhook: Xero has none for either)."""
        cash = bank_transaction_of(tenant, endpoint, record[LINK_FIELDS[endpoint]])
        if cash is not None and mirror(endpoint, record, cash):
            self._save(tenant, "BankTransactions", cash, "UPDATE")
        return self._save(tenant, endpoint, record, "UPDATE")

    def _new_advance(self, tenant: TenantData, endpoint: str, record: dict, bank: dict) -> None:
        """Defaults and checks for a new overpayment or prepayment (AUTHORISED, unallocated),
        received into or paid from ``bank``: in that account's currency unless the body names
        another.

        An overpayment is one untaxed line on the Accounts Receivable (RECEIVE-) or Payable
        (SPEND-) control account: given ``Total`` (or one line), the sandbox books it there."""
        prefix = "RECEIVE" if str(record.get("Type", "")).startswith("RECEIVE") else "SPEND"
        kind = "PREPAYMENT" if endpoint == "Prepayments" else "OVERPAYMENT"
        if record.get("Type") not in (f"RECEIVE-{kind}", f"SPEND-{kind}"):
            raise AdminError(f"Type must be RECEIVE-{kind} or SPEND-{kind}")
        if "Contact" not in record:
            raise AdminError("a contact is required")
        if record.setdefault("Status", "AUTHORISED") != "AUTHORISED":
            raise AdminError("a new overpayment or prepayment is AUTHORISED")
        record.setdefault(
            "CurrencyCode", bank.get("CurrencyCode") or tenant.organisation.get("BaseCurrency")
        )
        record.setdefault("CurrencyRate", 1.0)
        record.setdefault("Reference", "")
        record.setdefault("HasAttachments", False)
        record["Allocations"] = []
        record["Payments"] = []
        if endpoint == "Overpayments":
            system = "DEBTORS" if prefix == "RECEIVE" else "CREDITORS"
            control = next(
                (
                    a
                    for a in tenant.collections["Accounts"].values()
                    if a.get("SystemAccount") == system
                ),
                None,
            )
            if control is None:
                raise AdminError(f"the organisation has no {system} account")
            lines = record.get("LineItems") or [{"LineAmount": record.get("Total", 0)}]
            if len(lines) != 1:
                raise AdminError("an overpayment has exactly one line")
            amount = _money(lines[0].get("LineAmount", lines[0].get("UnitAmount", 0)))
            record["LineAmountTypes"] = "NoTax"
            record["LineItems"] = [
                {
                    "Description": lines[0].get("Description", "Overpayment"),
                    "Quantity": 1.0,
                    "UnitAmount": _num(amount),
                    "LineAmount": _num(amount),
                    "AccountCode": control["Code"],
                    "TaxType": control.get("TaxType", "NONE"),
                    "Tracking": [],
                }
            ]
            record.pop("Total", None)
        elif not record.get("LineItems"):
            raise AdminError("a prepayment needs line items")
        if endpoint == "Prepayments" and prefix == "RECEIVE":
            record.setdefault("InvoiceNumber", f"PP-SBX-{tenant.count(endpoint) + 1:05d}")
            record["Reference"] = record["InvoiceNumber"]

    def allocate(self, tenant_id: str, endpoint: str, record_id: str, body: dict) -> dict:
        """Apply part of an overpayment's, prepayment's or credit note's credit to an invoice,
        as Xero's ``PUT /{Endpoint}/{id}/Allocations`` does: an invoice of the same contact and
        currency (ACCREC for RECEIVE- and ACCRECCREDIT, ACCPAY for SPEND- and ACCPAYCREDIT), at
        most the credit left and the amount due.

        The invoice's AmountCredited and AmountDue move (PAID once nothing is due) and it fires an
        INVOICE UPDATE webhook; the credit's RemainingCredit falls (PAID at zero), with a
        CREDITNOTE webhook for a credit note and none for the two advance endpoints, as Xero has
        none for them."""
        if endpoint not in _ADVANCES and endpoint != "CreditNotes":
            raise KeyError(f"no allocations on {endpoint}")
        tenant = self.tenant(tenant_id)
        record = self._record(tenant, endpoint, record_id)
        invoice_id = (body.get("Invoice") or {}).get("InvoiceID") or body.get("InvoiceID", "")
        invoice = self._record(tenant, "Invoices", invoice_id)
        if record.get("Status") != "AUTHORISED":
            raise AdminError(f"a {record.get('Status')} {endpoint[:-1].lower()} has no credit left")
        sales = str(record["Type"]).startswith("RECEIVE") or record["Type"] == "ACCRECCREDIT"
        wanted = "ACCREC" if sales else "ACCPAY"
        if invoice.get("Type") != wanted or invoice.get("Status") != "AUTHORISED":
            raise AdminError(f"credit can only be allocated to an AUTHORISED {wanted} invoice")
        if invoice["Contact"]["ContactID"] != record["Contact"]["ContactID"]:
            raise AdminError("the invoice belongs to another contact")
        if invoice.get("CurrencyCode") != record.get("CurrencyCode"):
            raise AdminError("the invoice is in another currency")
        remaining = _money(record.get("RemainingCredit", 0))
        due = _money(invoice.get("AmountDue", 0))
        amount = _money(body.get("Amount", min(remaining, due)))
        if amount <= 0 or amount > remaining or amount > due:
            raise AdminError("the amount must be positive and at most the credit left and due")
        day = (
            date.fromisoformat(str(body["Date"])[:10])
            if body.get("Date")
            else self.sandbox.clock.now().date()
        )
        if day_ms(day) < max(parse_ms_date(record["Date"]), parse_ms_date(invoice["Date"])):
            raise AdminError("an allocation cannot be dated before the documents it joins")
        when = ms_date(day_ms(day))
        allocation = {
            "AllocationID": str(uuid.uuid4()),
            "Amount": _num(amount),
            "Date": when,
            "Invoice": {
                "InvoiceID": invoice["InvoiceID"],
                "InvoiceNumber": invoice.get("InvoiceNumber", ""),
            },
        }
        record.setdefault("Allocations", []).append(allocation)
        record["RemainingCredit"] = _num(remaining - amount)
        if remaining == amount:
            record["Status"] = "PAID"
            if endpoint == "CreditNotes":
                record["FullyPaidOnDate"] = when
        self._save(tenant, endpoint, record, "UPDATE")
        applied: dict[str, Any] = {}
        if endpoint == "CreditNotes":
            number = record.get("CreditNoteNumber", "")
            applied = {"CreditNoteID": record_id, "CreditNoteNumber": number}
        else:
            applied = {"PrepaymentID" if endpoint == "Prepayments" else "OverpaymentID": record_id}
            invoice.setdefault("Prepayments", [])
            invoice.setdefault("Overpayments", [])
        applied.update(AppliedAmount=_num(amount), Date=when, Total=record["Total"])
        invoice.setdefault(endpoint, []).append(applied)
        invoice["AmountCredited"] = _num(_money(invoice.get("AmountCredited", 0)) + amount)
        self._settle(invoice)
        if invoice["Status"] == "PAID":
            invoice["FullyPaidOnDate"] = when
        self._save(tenant, "Invoices", invoice, "UPDATE")
        return record

    def edit_line_account_code(
        self, tenant_id: str, endpoint: str, record_id: str, line_id: str, account_code: str
    ) -> dict:
        """Change one line's account code the way Xero does: UpdatedDateUTC stays, no webhook."""
        tenant = self.tenant(tenant_id)
        record = self._record(tenant, endpoint, record_id)
        linked = linked_advance(record) if endpoint == "BankTransactions" else None
        if linked is not None:  # the lines are the document's: edit them there
            self.edit_line_account_code(tenant_id, *linked, line_id, account_code)
            return record
        accounts = self._account_ids(tenant)
        if account_code not in accounts:
            raise AdminError(f"Account code '{account_code}' is not a valid code")
        key = ENTITIES[endpoint].has_lines
        for line in record.get(key or "", []):
            if line.get("LineItemID", line.get("JournalLineID")) == line_id:
                line["AccountCode"] = account_code
                if "AccountID" in line:
                    line["AccountID"] = accounts[account_code]  # the ID follows the code
                if endpoint in _ADVANCES:  # its bank transaction shows the same lines
                    cash = bank_transaction_of(tenant, endpoint, record_id)
                    if cash is not None and mirror(endpoint, record, cash):
                        tenant.put("BankTransactions", cash)
                tenant.put(endpoint, record)  # no new UpdatedDateUTC, but the GL re-posts
                return record
        raise KeyError(f"no line {line_id}")


# --- routes ------------------------------------------------------------------------------------


def admin_routes(sandbox: Sandbox) -> list[Route]:
    writer = SandboxWriter(sandbox)
    prefix = "/sandbox/admin"

    async def body_of(request: Request) -> dict:
        raw = await request.body()
        if not raw:
            return {}
        data = await request.json()
        if not isinstance(data, dict):
            raise AdminError("the body must be a JSON object")
        return data

    def run(fn: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                body = await body_of(request)
                with sandbox.dataset.lock:
                    result = fn(request.path_params, body)
            except KeyError as exc:
                return JSONResponse({"error": str(exc).strip("'\"")}, status_code=404)
            except (AdminError, ValueError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            if isinstance(result, Response):
                return result
            return JSONResponse(result)

        return endpoint

    def state(_p: dict, _b: dict) -> dict:
        return {
            "now": sandbox.clock.now().isoformat(),
            "clock_speed": sandbox.clock.speed,
            "tenants": {
                tid: {
                    "name": t.name,
                    # journals are derived by the ledger (built here if it was not yet)
                    "counts": {
                        name: ledger_of(t).count() if name == "Journals" else t.count(name)
                        for name in ENTITIES
                    },
                }
                for tid, t in sandbox.dataset.tenants.items()
            },
            "calls": dict(sandbox.calls),
            "rate_limits": sandbox.limiter.snapshot(),
            "refused": dict(sandbox.limiter.refused),
            "token_refreshes": sandbox.identity.refresh_count,
            "webhooks": [_subscription_json(s) for s in sandbox.webhooks.subscriptions()],
        }

    def advance(_p: dict, body: dict) -> dict:
        sandbox.clock.advance(float(body.get("seconds", 0)))
        return {"now": sandbox.clock.now().isoformat()}

    def faults(_p: dict, body: dict) -> dict:
        for key, value in body.items():
            if not hasattr(sandbox.faults, key):
                raise AdminError(f"unknown fault {key}")
            setattr(sandbox.faults, key, list(value) if key == "fail_next" else value)
        return dict(vars(sandbox.faults))

    def webhooks(_p: dict, body: dict) -> Any:
        if "url" not in body:
            return [_subscription_json(s) for s in sandbox.webhooks.subscriptions()]
        sub = sandbox.webhooks.subscribe(body["url"], body.get("key", DEMO_WEBHOOK_KEY))
        return _subscription_json(sub)

    def verify(p: dict, _b: dict) -> dict:
        return _subscription_json(sandbox.webhooks.verify(p["sub_id"]))

    def create(p: dict, body: dict) -> dict:
        return writer.create(p["tenant_id"], p["endpoint"], body)

    def update(p: dict, body: dict) -> dict:
        return writer.update(p["tenant_id"], p["endpoint"], p["record_id"], body)

    def void(p: dict, _b: dict) -> dict:
        return writer.void(p["tenant_id"], p["endpoint"], p["record_id"])

    def delete(p: dict, _b: dict) -> dict:
        return writer.delete(p["tenant_id"], p["endpoint"], p["record_id"])

    def pay(p: dict, body: dict) -> dict:
        return writer.pay(p["tenant_id"], p["record_id"], body)

    def refund(p: dict, body: dict) -> dict:
        return writer.refund(p["tenant_id"], p["record_id"], body)

    def allocate(p: dict, body: dict) -> dict:
        return writer.allocate(p["tenant_id"], p["endpoint"], p["record_id"], body)

    def account_code(p: dict, body: dict) -> dict:
        return writer.edit_line_account_code(
            p["tenant_id"], p["endpoint"], p["record_id"], p["line_id"], body["AccountCode"]
        )

    def tracking_option(p: dict, body: dict) -> dict:
        return writer.update_tracking_option(p["tenant_id"], p["record_id"], p["option_id"], body)

    def delete_tracking_option(p: dict, _b: dict) -> dict:
        return writer.delete_tracking_option(p["tenant_id"], p["record_id"], p["option_id"])

    def disconnect(p: dict, _b: dict) -> dict:
        return {"grants": sandbox.identity.disconnect_tenant_everywhere(p["tenant_id"].lower())}

    record = prefix + "/tenants/{tenant_id}/{endpoint}/{record_id}"
    return [
        Route(prefix + "/state", run(state), methods=["GET"]),
        Route(prefix + "/clock/advance", run(advance), methods=["POST"]),
        Route(prefix + "/faults", run(faults), methods=["POST"]),
        Route(prefix + "/webhooks", run(webhooks), methods=["GET", "POST"]),
        Route(prefix + "/webhooks/{sub_id}/verify", run(verify), methods=["POST"]),
        Route(prefix + "/tenants/{tenant_id}/disconnect", run(disconnect), methods=["POST"]),
        Route(prefix + "/tenants/{tenant_id}/{endpoint}", run(create), methods=["POST"]),
        Route(record, run(update), methods=["PATCH"]),
        Route(record + "/void", run(void), methods=["POST"]),
        Route(record + "/delete", run(delete), methods=["POST"]),
        Route(
            prefix + "/tenants/{tenant_id}/Invoices/{record_id}/payments",
            run(pay),
            methods=["POST"],
        ),
        Route(
            prefix + "/tenants/{tenant_id}/CreditNotes/{record_id}/payments",
            run(refund),
            methods=["POST"],
        ),
        Route(record + "/lines/{line_id}/account-code", run(account_code), methods=["POST"]),
        Route(record + "/allocations", run(allocate), methods=["POST"]),
        Route(
            prefix + "/tenants/{tenant_id}/TrackingCategories/{record_id}/Options/{option_id}",
            run(tracking_option),
            methods=["POST"],
        ),
        Route(
            prefix
            + "/tenants/{tenant_id}/TrackingCategories/{record_id}/Options/{option_id}/delete",
            run(delete_tracking_option),
            methods=["POST"],
        ),
    ]


def _subscription_json(sub: Any) -> dict:
    return {
        "id": sub.id,
        "url": sub.url,
        "status": sub.status,
    }
