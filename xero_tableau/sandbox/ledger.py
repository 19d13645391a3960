"""The sandbox's general ledger: every document posts journals as Xero's accrual-basis GL does.

Xero keeps a general ledger behind its documents and serves it as ``GET /Journals``: one journal per
posting, numbered 1, 2, 3 ... in the order they were made, in the organisation's base currency,
each balancing to zero. The ledger is append-only: a void or delete posts a reversal, and an edit
of a posted document posts a reversal of its previous journal and then a new one (only when the
postings really changed: a new Reference moves nothing).

What each document posts (NetAmount is + for a debit, - for a credit; every amount is converted
to base currency as ``amount / CurrencyRate`` rounded half away from zero to the cent, and any
rounding cent lands on the control line: Accounts Receivable/Payable or the bank):

- ``ACCREC`` invoice (AUTHORISED, PAID): Dr Accounts Receivable (gross), Cr each line's account
  (net), Cr the sales-tax account (tax). ``ACCPAY`` bill: the mirror (Dr lines and tax, Cr
  Accounts Payable). DRAFT, SUBMITTED and DELETED post nothing.
- ``ACCRECCREDIT`` / ``ACCPAYCREDIT`` credit notes: the reverse of an invoice.
- Payments ``ACCRECPAYMENT`` (Dr bank at the payment's rate, Cr AR at the invoice's rate, the
  difference to the realised currency gains account), ``ACCPAYPAYMENT`` the mirror, and refunds of
  credit notes ``ARCREDITPAYMENT`` / ``APCREDITPAYMENT``.
- Bank transactions: RECEIVE ``CASHREC`` (Dr bank, Cr lines and tax), SPEND ``CASHPAID``.
- Overpayments ``AROVERPAYMENT`` / ``APOVERPAYMENT`` (Dr bank, Cr the line's account, which is AR
  itself) and prepayments ``ARPREPAYMENT`` / ``APPREPAYMENT`` (Dr bank, Cr lines and tax). The
  bank is the one of the document's bank transaction (``advances.py``: /BankTransactions lists
  the cash side of each, linked by OverpaymentID / PrepaymentID); that bank transaction posts
  nothing of its own, so the money is posted once, as in Xero's GL.
- Allocations to invoices: a credit note's or an overpayment's only posts the currency difference
  between the credit's rate and the invoice's (both sides are the control account); a
  prepayment's moves its share of the prepayment's lines (and tax) onto the control account, so
  the invoice's own lines are not counted twice, with the currency difference beside it.
- Manual journals ``MANJOURNAL`` (POSTED): their lines as given, a taxed line split into net and
  tax.
- Journals no document explains, as a real organisation has them: the conversion (opening)
  balances on the organisation's first day and the fixed-asset register's monthly depreciation
  (``TenantData.system_journals``, set by the generator). Xero's SourceType enum has no value for
  either, so they come without SourceType and SourceID.

Lines carry the source line's Description and Tracking (as ``TrackingCategories``). The journals
of the generated history are numbered in the order their documents were posted (each document's
date, never after its ``UpdatedDateUTC``; a voided or deleted document posted and later reversed);
every later write posts at the sandbox clock's time.

The ledger of a tenant is built on first use (a read of its journals or the first write after the
data was generated) from the records as they stand, then kept up to date by ``TenantData.put``.
Public API: :func:`journals` (and :func:`page` / :func:`journal` for the HTTP app).
"""

import bisect
import copy
import gc
import random
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from operator import itemgetter
from typing import Any, NamedTuple

from xero_tableau.sandbox.advances import linked_advance
from xero_tableau.sandbox.dataset import TenantData, ms_date, parse_ms_date

PAGE_SIZE = 100  # Xero returns at most 100 journals per call

# SourceTypes whose source is a Payment: what ``paymentsOnly=true`` keeps.
PAYMENT_SOURCE_TYPES = frozenset(
    {"ACCRECPAYMENT", "ACCPAYPAYMENT", "ARCREDITPAYMENT", "APCREDITPAYMENT"}
)

_POSTED_DOCUMENT = frozenset({"AUTHORISED", "PAID"})
_CREDITED_LINES = frozenset(
    {"ACCREC", "ACCPAYCREDIT", "RECEIVE", "RECEIVE-OVERPAYMENT", "RECEIVE-PREPAYMENT"}
)
_BANK_SOURCE = {"RECEIVE": "CASHREC", "SPEND": "CASHPAID"}
_ADVANCE_SOURCE = {
    "RECEIVE-OVERPAYMENT": "AROVERPAYMENT",
    "SPEND-OVERPAYMENT": "APOVERPAYMENT",
    "RECEIVE-PREPAYMENT": "ARPREPAYMENT",
    "SPEND-PREPAYMENT": "APPREPAYMENT",
}
# receivable side: the document's control account is Accounts Receivable
_RECEIVABLE = frozenset({"ACCREC", "ACCRECCREDIT", "RECEIVE-OVERPAYMENT", "RECEIVE-PREPAYMENT"})
# money coming in (+1) or going out (-1) for each payment type the ledger posts
_PAYMENT_DIRECTION = {
    "ACCRECPAYMENT": 1,
    "APCREDITPAYMENT": 1,
    "ACCPAYPAYMENT": -1,
    "ARCREDITPAYMENT": -1,
}
_ENDPOINTS = (
    "Invoices",
    "CreditNotes",
    "Payments",
    "BankTransactions",
    "Overpayments",
    "Prepayments",
    "ManualJournals",
)
_POSTING_ENDPOINTS = frozenset(_ENDPOINTS)
_HOUR = 3_600_000
_LINE_SALT = 0x9E3779B97F4A7C15  # odd: (i * salt) mod 2**48 differs for every line position
_NODE_BITS = (1 << 48) - 1
_UNKNOWN_ACCOUNT = ("", "", "")
_TRACKING_FIELDS = itemgetter("TrackingCategoryID", "TrackingOptionID", "Name", "Option")

# (AccountID, NetAmount cents, TaxAmount cents, TaxType or "", Description, tracking), where
# tracking is a tuple of (TrackingCategoryID, TrackingOptionID, Name, Option)
Line = tuple[str, int, int, str, str, tuple]


class Posting(NamedTuple):
    """What a source posts in its current state (before it is numbered as a journal)."""

    date_ms: int
    reference: str
    source_id: str | None
    source_type: str | None
    lines: tuple[Line, ...]


def _same(one: Posting, other: Posting) -> bool:
    """Whether two postings move the same money: date, accounts, amounts, tax and tracking (a new
    Reference or Description moves nothing)."""
    return one.date_ms == other.date_ms and _moves(one.lines) == _moves(other.lines)


@dataclass(slots=True)
class Journal:
    number: int
    journal_id: str
    created_ms: int
    posting: Posting


def _moves(lines: tuple[Line, ...]) -> list[tuple]:
    return sorted((acc, net, tax, tt, trk) for acc, net, tax, tt, _d, trk in lines)


def _reversed(posting: Posting) -> Posting:
    lines = tuple((a, -net, -tax, tt, d, trk) for a, net, tax, tt, d, trk in posting.lines)
    return Posting(
        posting.date_ms, posting.reference, posting.source_id, posting.source_type, lines
    )


# --- money ---------------------------------------------------------------------------------------


def _cents(value: Any) -> int:
    """A record's money (a 2-dp JSON number) in exact integer cents."""
    if type(value) is float:
        return round(value * 100)
    if not value:
        return 0
    return round(float(value) * 100)


class _Rates:
    """CurrencyRate values as exact fractions (a rate is units of the currency per 1 base)."""

    def __init__(self) -> None:
        self._ratios: dict[Any, tuple[int, int]] = {}

    def ratio(self, rate: Any) -> tuple[int, int]:
        cached = self._ratios.get(rate)
        if cached is None:
            value = Decimal(repr(rate)) if isinstance(rate, float) else Decimal(str(rate or 1))
            if value <= 0:
                value = Decimal(1)
            cached = value.as_integer_ratio()
            self._ratios[rate] = cached
        return cached

    def to_base(self, cents: int, rate: Any) -> int:
        """``cents / rate`` rounded half away from zero: a foreign amount in base cents."""
        num, den = self.ratio(rate)
        if num == den or not cents:
            return cents
        q = (abs(cents) * den * 2 + num) // (2 * num)
        return q if cents > 0 else -q


# --- the ledger ----------------------------------------------------------------------------------


def _real_time_ms() -> int:
    return int(time.time() * 1000)


class Ledger:
    """One organisation's general ledger. Thread-safe; built on first use (see the module doc)."""

    def __init__(self, tenant: TenantData) -> None:
        self.tenant = tenant
        self.clock: Callable[[], int] = _real_time_ms  # the sandbox sets its own clock
        self._lock = threading.RLock()
        self._built = False
        self._rng = random.Random(f"xero-tableau/ledger/{tenant.tenant_id}")
        self._rates = _Rates()
        self._journals: list[Journal] = []
        self._created: list[int] = []  # CreatedDateUTC ms by position: never decreasing
        self._by_id: dict[str, int] = {}  # JournalID -> position, filled on demand
        # source key -> the journal of its current posting (a document's key is its id, an
        # allocation's is its AllocationID); a source whose state posts nothing has no entry
        self._current: dict[str, Journal] = {}
        self._allocations: dict[str, set[str]] = {}  # document id -> allocation keys posted
        self._tracking: dict[tuple, tuple] = {}
        self._accounts: _Accounts | None = None
        # overpayment or prepayment id -> (AccountID, Code) of its bank transaction's account
        self._advance_banks: dict[str, tuple[str, str]] = {}

    # copies: a copied organisation (``copy.deepcopy`` of its TenantData) carries a copy of its
    # ledger, with the same history, its own lock and the same clock

    def __deepcopy__(self, memo: dict[int, Any]) -> "Ledger":
        with self._lock:
            twin = Ledger.__new__(Ledger)
            memo[id(self)] = twin
            for name, value in vars(self).items():
                if name not in ("_lock", "clock", "_accounts"):
                    setattr(twin, name, copy.deepcopy(value, memo))
            twin._lock = threading.RLock()
            twin.clock = self.clock
            twin._accounts = None  # read again from the copy's chart
            return twin

    def __getstate__(self) -> dict[str, Any]:
        with self._lock:
            state = {k: v for k, v in vars(self).items() if k not in ("_lock", "clock")}
            state["_accounts"] = None
            return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()
        self.clock = _real_time_ms

    # building

    def build(self) -> None:
        """Post the records as they stand now, history first (see the module doc); no-op once
        built."""
        with self._lock:
            if self._built:
                return
            self._built = True
            # Many small acyclic tuples: generational GC passes would only re-scan the records.
            was_enabled = gc.isenabled()
            gc.disable()
            try:
                self._build()
            finally:
                if was_enabled:
                    gc.enable()
            if gc.get_freeze_count():
                # The process froze its generated records (``start_xero_sandbox``): freeze the
                # journals built from them too, or the next full collection walks them all.
                gc.freeze()

    def _build(self) -> None:
        for record in self.tenant.collections["BankTransactions"].values():
            self._note_advance_bank(record)
        events: list[tuple[int, int, str, Posting, bool]] = []
        for journal in self.tenant.system_journals:
            posting = self._system_posting(journal)
            if posting.lines:
                created = parse_ms_date(journal["CreatedDateUTC"])
                events.append((created, len(events), "", posting, False))
        for endpoint in _ENDPOINTS:
            for record, updated, _when in self.tenant.records(endpoint):
                self._history(endpoint, record, updated, events)
        events.sort(key=lambda event: (event[0], event[1]))
        for created, _seq, key, posting, reversal in events:
            if reversal:
                self._append(_reversed(posting), created)
                self._current.pop(key, None)
            else:
                journal = self._append(posting, created)
                if key:
                    self._current[key] = journal

    def _history(
        self,
        endpoint: str,
        record: dict,
        updated: int,
        events: list[tuple[int, int, str, Posting, bool]],
    ) -> None:
        """The journals one generated record stands for: its current postings, dated on its
        day (never after its UpdatedDateUTC), or a posting and its reversal for a document that
        was posted and later voided (or, for payments and bank transactions, deleted)."""
        record_id = self._id(endpoint, record)
        status = record.get("Status")
        was_posted = status == "VOIDED" or (
            status == "DELETED" and endpoint in ("Payments", "BankTransactions")
        )
        if was_posted:
            posting = self._document(endpoint, record, assume_posted=True)
            if posting is not None:
                created = min(self._posted_at(record, record_id), updated - 1)
                events.append((created, len(events), record_id, posting, False))
                events.append((max(updated, created + 1), len(events), record_id, posting, True))
            return
        for key, posting in self._postings(endpoint, record):
            when = record.get("Date") if key == record_id else self._allocation_date(record, key)
            created = min(self._posted_at(record, key, when), updated)
            events.append((created, len(events), key, posting, False))
            if key != record_id:
                self._allocations.setdefault(record_id, set()).add(key)

    @staticmethod
    def _posted_at(record: dict, key: str, when: str | None = None) -> int:
        """A working-hours instant on the document's (or allocation's) date, fixed by its id."""
        day = parse_ms_date(when or record.get("Date") or record["UpdatedDateUTC"])
        day -= day % 86_400_000
        return day + 8 * _HOUR + zlib.crc32(key.encode()) % (9 * _HOUR)

    @staticmethod
    def _allocation_date(record: dict, key: str) -> str | None:
        for allocation in record.get("Allocations", ()):
            if allocation.get("AllocationID") == key:
                return allocation.get("Date")
        return None

    # writes

    def before_write(self) -> None:
        """``TenantData.put`` is about to store a record: build from the state before it."""
        self.build()

    def written(self, endpoint: str, record: dict) -> None:
        """``TenantData.put`` stored ``record``: post what changed (see the module doc)."""
        with self._lock:
            self.build()
            if endpoint in ("Accounts", "TaxRates"):
                self._accounts = None  # names and codes are served as they are now
            if endpoint not in _POSTING_ENDPOINTS:
                return
            linked = self._note_advance_bank(record) if endpoint == "BankTransactions" else None
            if linked is not None:  # the cash side of an advance: the advance posts its money
                advance = self.tenant.get(*linked)
                if advance is not None:
                    self._repost(linked[0], advance)
                return
            self._repost(endpoint, record)
            if endpoint in ("Invoices", "CreditNotes"):  # their payments use their rate
                for payment in record.get("Payments", ()):
                    paid = self.tenant.get("Payments", str(payment.get("PaymentID", "")))
                    if paid is not None:
                        self._repost("Payments", paid)
            if endpoint == "Invoices":  # so do the allocations of credit to them
                for credits in ("CreditNotes", "Prepayments", "Overpayments"):
                    id_key = self._id_field(credits)
                    for applied in record.get(credits, ()):
                        source = self.tenant.get(credits, str(applied.get(id_key, "")))
                        if source is not None:
                            self._repost(credits, source)

    def _repost(self, endpoint: str, record: dict) -> None:
        record_id = self._id(endpoint, record)
        wanted = dict(self._postings(endpoint, record))
        keys = {record_id, *self._allocations.get(record_id, ()), *wanted}
        now = self.clock()
        for key in sorted(keys, key=lambda k: (k != record_id, k)):
            before = self._current.get(key)
            after = wanted.get(key)
            if before is not None and after is not None and _same(before.posting, after):
                continue
            if before is not None:
                self._append(_reversed(before.posting), now)
                del self._current[key]
            if after is not None:
                self._current[key] = self._append(after, now)
        allocated = {key for key in wanted if key != record_id}
        if allocated:
            self._allocations[record_id] = allocated
        else:
            self._allocations.pop(record_id, None)

    def _append(self, posting: Posting, created: int) -> Journal:
        if self._created and created < self._created[-1]:
            created = self._created[-1]  # numbers and creation times run together
        bits = self._rng.getrandbits(128)
        bits = (bits & ~(0xF000 << 64 | 0xC000 << 48)) | (0x4000 << 64 | 0x8000 << 48)
        h = f"{bits:032x}"  # a version-4 UUID, formatted by hand (it runs once per journal)
        journal_id = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
        journal = Journal(len(self._journals) + 1, journal_id, created, posting)
        self._journals.append(journal)
        self._created.append(created)
        return journal

    # postings

    def postings(self, endpoint: str, record: dict) -> list[tuple[str, Posting]]:
        """(source key, posting) of ``record`` in its current state: its own and its
        allocations'. The sum of a source's journals always equals these."""
        with self._lock:
            return self._postings(endpoint, record)

    def _postings(self, endpoint: str, record: dict) -> list[tuple[str, Posting]]:
        out: list[tuple[str, Posting]] = []
        own = self._document(endpoint, record)
        record_id = self._id(endpoint, record)
        if own is not None:
            out.append((record_id, own))
        if record.get("Allocations") and record.get("Status") in _POSTED_DOCUMENT:
            for allocation in record["Allocations"]:
                posting = self._allocation(endpoint, record, allocation)
                if posting is not None:
                    out.append((str(allocation.get("AllocationID", "")), posting))
        return out

    @staticmethod
    def _id_field(endpoint: str) -> str:
        return "CreditNoteID" if endpoint == "CreditNotes" else f"{endpoint[:-1]}ID"

    def _id(self, endpoint: str, record: dict) -> str:
        return str(record[self._id_field(endpoint)])

    def _document(self, endpoint: str, record: dict, assume_posted: bool = False) -> Posting | None:
        status = record.get("Status")
        if endpoint == "Payments":
            if status != "AUTHORISED" and not assume_posted:
                return None
            return self._payment(record)
        if endpoint == "ManualJournals":
            if status != "POSTED" and not assume_posted:
                return None
            return self._manual_journal(record)
        if endpoint == "BankTransactions":
            if status != "AUTHORISED" and not assume_posted:
                return None
            source_type = _BANK_SOURCE.get(str(record.get("Type")))
        elif endpoint in ("Overpayments", "Prepayments"):
            if status not in _POSTED_DOCUMENT and not assume_posted:
                return None
            source_type = _ADVANCE_SOURCE.get(str(record.get("Type")))
        else:
            if status not in _POSTED_DOCUMENT and not assume_posted:
                return None
            source_type = str(record.get("Type"))
        if source_type is None:
            # transfers: not a document of this sandbox; the bank transaction of an over- or
            # prepayment: its money is the advance's own posting (never a second one)
            return None
        accounts = self._chart()
        kind = str(record.get("Type"))
        sign = -1 if kind in _CREDITED_LINES else 1
        if endpoint in ("Invoices", "CreditNotes"):
            control = accounts.receivable if kind in _RECEIVABLE else accounts.payable
        elif endpoint == "BankTransactions":
            bank = record.get("BankAccount") or {}
            control = accounts.resolve(bank.get("AccountID"), bank.get("Code")) or accounts.bank
        else:  # an advance: the bank account of its bank transaction
            bank_id, code = self._advance_banks.get(self._id(endpoint, record), ("", ""))
            control = accounts.resolve(bank_id, code) or accounts.bank
        lines, tax_total = self._document_lines(record, sign)
        return self._balanced(
            record, self._id(endpoint, record), source_type, lines, tax_total, control
        )

    def _note_advance_bank(self, record: dict) -> tuple[str, str] | None:
        """Remember the bank account of an advance's bank transaction; (endpoint, advance id)
        when ``record`` is one, else None."""
        linked = linked_advance(record)
        if linked is not None:
            bank = record.get("BankAccount") or {}
            self._advance_banks[linked[1]] = (
                str(bank.get("AccountID") or ""),
                str(bank.get("Code") or ""),
            )
        return linked

    def _document_lines(self, record: dict, sign: int) -> tuple[list[Line], int]:
        """Each line's net and tax in base cents (signed), and the tax total."""
        accounts = self._chart()
        by_id, by_code, suspense = accounts.by_id, accounts.by_code, accounts.suspense
        num, den = self._rates.ratio(record.get("CurrencyRate") or 1)
        foreign = num != den
        kind = record.get("LineAmountTypes")
        inclusive, no_tax = kind == "Inclusive", kind == "NoTax"
        track = self._track
        lines: list[Line] = []
        tax_total = 0
        for item in record.get("LineItems", ()):
            amount = _cents(item.get("LineAmount"))
            tax = 0 if no_tax else _cents(item.get("TaxAmount"))
            net = amount - tax if inclusive else amount
            if foreign:  # to base cents, half away from zero (as _Rates.to_base)
                q = (abs(net) * den * 2 + num) // (2 * num)
                net = q if net > 0 else -q
                q = (abs(tax) * den * 2 + num) // (2 * num)
                tax = q if tax > 0 else -q
            if not net and not tax:
                continue
            account = item.get("AccountID")
            if account not in by_id:
                account = by_code.get(item.get("AccountCode") or "", suspense)
            lines.append(
                (
                    account,
                    sign * net,
                    sign * tax,
                    item.get("TaxType") or "",
                    item.get("Description") or "",
                    track(item.get("Tracking")),
                )
            )
            tax_total += sign * tax
        return lines, tax_total

    def _balanced(
        self,
        record: dict,
        source_id: str,
        source_type: str,
        lines: list[Line],
        tax_total: int,
        control: str,
        fx: int = 0,
    ) -> Posting | None:
        """The posting with its tax, currency-difference and control lines; the control line
        takes whatever makes the journal balance (so the rounding cent lands there)."""
        accounts = self._chart()
        if tax_total:
            lines.append((accounts.tax, tax_total, 0, "", "", ()))
        if fx and accounts.fx:
            lines.append((accounts.fx, fx, 0, "", "", ()))
        rest = sum(line[1] for line in lines)
        if rest:
            lines.append((control, -rest, 0, "", "", ()))
        if not lines:
            return None
        return Posting(
            parse_ms_date(record["Date"]),
            str(record.get("Reference") or record.get("Narration") or ""),
            source_id,
            source_type,
            tuple(lines),
        )

    def _payment(self, record: dict) -> Posting | None:
        payment_type = str(record.get("PaymentType"))
        direction = _PAYMENT_DIRECTION.get(payment_type)
        if direction is None:
            return None  # refunds of over- and prepayments: no SourceType in Xero's enum
        accounts = self._chart()
        credit = payment_type in ("ARCREDITPAYMENT", "APCREDITPAYMENT")
        endpoint, stub_key = ("CreditNotes", "CreditNote") if credit else ("Invoices", "Invoice")
        stub = record.get(stub_key) or {}
        document = self.tenant.get(endpoint, str(stub.get(f"{stub_key}ID", ""))) or {}
        amount = _cents(record.get("Amount"))
        to_base = self._rates.to_base
        own_rate = record.get("CurrencyRate") or 1
        at_bank = direction * to_base(amount, own_rate)
        settled = -direction * to_base(amount, document.get("CurrencyRate") or own_rate)
        receivable = payment_type in ("ACCRECPAYMENT", "ARCREDITPAYMENT")
        control = accounts.receivable if receivable else accounts.payable
        bank = record.get("Account") or {}
        bank_id = accounts.resolve(bank.get("AccountID"), bank.get("Code")) or accounts.bank
        lines: list[Line] = [(bank_id, at_bank, 0, "", "", ())] if at_bank else []
        fx = -(at_bank + settled)
        return self._balanced(record, str(record["PaymentID"]), payment_type, lines, 0, control, fx)

    def _allocation(self, endpoint: str, record: dict, allocation: dict) -> Posting | None:
        """An allocation of a credit note's, overpayment's or prepayment's credit to an invoice
        (see the module doc)."""
        kind = str(record.get("Type"))
        source_type = kind if endpoint == "CreditNotes" else _ADVANCE_SOURCE.get(kind)
        if source_type is None:
            return None
        accounts = self._chart()
        receivable = kind in _RECEIVABLE
        control = accounts.receivable if receivable else accounts.payable
        stub = allocation.get("Invoice") or {}
        invoice = self.tenant.get("Invoices", str(stub.get("InvoiceID", ""))) or {}
        amount = _cents(allocation.get("Amount"))
        own_rate = record.get("CurrencyRate") or 1
        to_base = self._rates.to_base
        side = 1 if receivable else -1
        fx = side * (
            to_base(amount, invoice.get("CurrencyRate") or own_rate) - to_base(amount, own_rate)
        )
        lines: list[Line] = []
        tax_total = 0
        if endpoint == "Prepayments":
            lines, tax_total = self._prepayment_share(record, amount, side)
        when = {"Date": allocation.get("Date") or record["Date"], "Reference": _reference(record)}
        return self._balanced(
            when, self._id(endpoint, record), source_type, lines, tax_total, control, fx
        )

    def _prepayment_share(self, record: dict, amount: int, sign: int) -> tuple[list[Line], int]:
        """``amount`` (document cents) of a prepayment spread over its lines by their gross, each
        part's tax in the line's proportion, in base cents; ``sign`` +1 debits them."""
        items = list(record.get("LineItems", ()))
        kind = record.get("LineAmountTypes")
        grosses = []
        for item in items:
            line, tax = _cents(item.get("LineAmount")), _cents(item.get("TaxAmount"))
            tax = 0 if kind == "NoTax" else tax
            grosses.append((line if kind == "Inclusive" else line + tax, tax))
        total = sum(gross for gross, _ in grosses)
        if not total:
            return [], 0
        accounts = self._chart()
        rate = record.get("CurrencyRate") or 1
        to_base = self._rates.to_base
        lines: list[Line] = []
        tax_total = 0
        left = amount
        for index, (item, (gross, tax)) in enumerate(zip(items, grosses, strict=True)):
            part = left if index == len(items) - 1 else amount * gross // total
            left -= part
            part_tax = 0
            if gross and tax:
                q = (abs(part * tax) * 2 + abs(gross)) // (2 * abs(gross))
                part_tax = q if part * tax * gross > 0 else -q
            net, tax_base = to_base(part - part_tax, rate), to_base(part_tax, rate)
            if not net and not tax_base:
                continue
            account = accounts.resolve(item.get("AccountID"), item.get("AccountCode"))
            lines.append(
                (
                    account or accounts.suspense,
                    sign * net,
                    sign * tax_base,
                    str(item.get("TaxType") or ""),
                    str(item.get("Description") or ""),
                    self._track(item.get("Tracking")),
                )
            )
            tax_total += sign * tax_base
        return lines, tax_total

    def _manual_journal(self, record: dict) -> Posting | None:
        accounts = self._chart()
        kind = record.get("LineAmountTypes") or "NoTax"
        lines: list[Line] = []
        tax_total = 0
        for item in record.get("JournalLines", ()):
            amount = _cents(item.get("LineAmount"))
            tax = 0 if kind == "NoTax" else _cents(item.get("TaxAmount"))
            net = amount - tax if kind == "Inclusive" else amount
            if not net and not tax:
                continue
            account = accounts.resolve(item.get("AccountID"), item.get("AccountCode"))
            lines.append(
                (
                    account or accounts.suspense,
                    net,
                    tax,
                    str(item.get("TaxType") or ""),
                    str(item.get("Description") or ""),
                    self._track(item.get("Tracking")),
                )
            )
            tax_total += tax
        if tax_total:
            lines.append((accounts.tax, tax_total, 0, "", "", ()))
        if not lines:
            return None
        return Posting(
            parse_ms_date(record["Date"]),
            str(record.get("Narration") or ""),
            str(record["ManualJournalID"]),
            "MANJOURNAL",
            tuple(lines),
        )

    def _system_posting(self, journal: dict) -> Posting:
        accounts = self._chart()
        lines = tuple(
            (accounts.resolve(None, code) or accounts.suspense, amount, 0, "", text, ())
            for code, amount, text in journal["Lines"]
            if amount
        )
        date_ms = parse_ms_date(journal["JournalDate"])
        return Posting(date_ms, str(journal.get("Reference", "")), None, None, lines)

    def _track(self, tracking: Iterable[dict] | None) -> tuple:
        """A line's tracking as an immutable tuple (shared between equal ones)."""
        if not tracking:
            return ()
        try:
            key = tuple(map(_TRACKING_FIELDS, tracking))
        except (KeyError, TypeError):
            key = tuple(
                (
                    str(t.get("TrackingCategoryID", "")),
                    str(t.get("TrackingOptionID", "")),
                    str(t.get("Name", "")),
                    str(t.get("Option", "")),
                )
                for t in tracking
            )
        return self._tracking.setdefault(key, key)

    def _chart(self) -> "_Accounts":
        if self._accounts is None:
            self._accounts = _Accounts(self.tenant)
        return self._accounts

    # reading

    def count(self) -> int:
        with self._lock:
            self.build()
            return len(self._journals)

    def rendered(self, start: int = 0, stop: int | None = None) -> list[dict]:
        with self._lock:
            self.build()
            chosen = self._journals[start:stop]
            return [self._render(journal) for journal in chosen]

    def page(
        self,
        offset: int = 0,
        since_ms: int | None = None,
        payments_only: bool = False,
        limit: int = PAGE_SIZE,
    ) -> list[dict]:
        """Xero's ``GET /Journals``: journals with JournalNumber > ``offset``, created during or
        after the second of ``since_ms`` (If-Modified-Since), oldest first, at most ``limit``."""
        with self._lock:
            self.build()
            start = max(0, offset)
            if since_ms is not None:
                floor = since_ms // 1000 * 1000
                start = max(start, bisect.bisect_left(self._created, floor))
            out: list[dict] = []
            for position in range(start, len(self._journals)):
                journal = self._journals[position]
                if payments_only and journal.posting.source_type not in PAYMENT_SOURCE_TYPES:
                    continue
                out.append(self._render(journal))
                if len(out) >= limit:
                    break
            return out

    def journal(self, key: str) -> dict | None:
        """One journal by JournalID or JournalNumber."""
        with self._lock:
            self.build()
            if key.isdigit():
                number = int(key)
                if 1 <= number <= len(self._journals):
                    return self._render(self._journals[number - 1])
                return None
            if len(self._by_id) < len(self._journals):
                for position in range(len(self._by_id), len(self._journals)):
                    self._by_id[self._journals[position].journal_id] = position
            position = self._by_id.get(key.lower())
            return None if position is None else self._render(self._journals[position])

    def _render(self, journal: Journal) -> dict:
        """A journal in Xero's JSON shape."""
        accounts = self._chart()
        taxes = accounts.tax_names
        posting = journal.posting
        parent = int(journal.journal_id.replace("-", ""), 16)
        lines = []
        for index, (account_id, net, tax, tax_type, text, tracking) in enumerate(posting.lines):
            code, kind, name = accounts.shown.get(account_id, _UNKNOWN_ACCOUNT)
            # the journal's id with its last 48 bits scrambled by the line's position: stable,
            # distinct within the journal, still a version-4 UUID
            h = f"{parent ^ ((index + 1) * _LINE_SALT & _NODE_BITS):032x}"
            line: dict[str, Any] = {
                "JournalLineID": f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}",
                "AccountID": account_id,
                "AccountCode": code,
                "AccountType": kind,
                "AccountName": name,
                "Description": text,
                "NetAmount": net / 100,
                "GrossAmount": (net + tax) / 100,
                "TaxAmount": tax / 100,
            }
            if tax_type:
                line["TaxType"] = tax_type
                line["TaxName"] = taxes.get(tax_type, tax_type)
            line["TrackingCategories"] = [
                {
                    "Name": name,
                    "Option": option,
                    "TrackingCategoryID": category_id,
                    "TrackingOptionID": option_id,
                }
                for category_id, option_id, name, option in tracking
            ]
            lines.append(line)
        out: dict[str, Any] = {
            "JournalID": journal.journal_id,
            "JournalDate": ms_date(posting.date_ms),
            "JournalNumber": journal.number,
            "CreatedDateUTC": ms_date(journal.created_ms),
            "Reference": posting.reference,
        }
        if posting.source_type is not None:
            out["SourceID"] = posting.source_id
            out["SourceType"] = posting.source_type
        out["JournalLines"] = lines
        return out


def _reference(record: dict) -> str:
    return str(record.get("Reference") or record.get("CreditNoteNumber") or "")


class _Accounts:
    """The chart as the ledger needs it: ids by code, and the system accounts it posts to."""

    def __init__(self, tenant: TenantData) -> None:
        self.by_id: dict[str, dict] = {}
        self.by_code: dict[str, str] = {}
        self.shown: dict[str, tuple[str, str, str]] = {}  # id -> (Code, Type, Name) as served
        self.tax_names = {
            str(rate["TaxType"]): str(rate.get("Name", rate["TaxType"]))
            for rate in tenant.collections["TaxRates"].values()
        }
        system: dict[str, str] = {}
        bank = ""
        for account in tenant.collections["Accounts"].values():
            account_id = str(account["AccountID"])
            self.by_id[account_id] = account
            self.shown[account_id] = (
                str(account.get("Code", "")),
                str(account.get("Type", "")),
                str(account.get("Name", "")),
            )
            if account.get("Code"):
                self.by_code[str(account["Code"])] = account_id
            if account.get("SystemAccount"):
                system.setdefault(str(account["SystemAccount"]), account_id)
            if not bank and account.get("Type") == "BANK":
                bank = account_id  # the first bank account, as the admin API pays into it
        self.receivable = system.get("DEBTORS", "")
        self.payable = system.get("CREDITORS", "")
        self.tax = system.get("GST", "")
        self.bank = bank
        # without a currency-gains account a difference stays on the control line
        self.fx = system.get("REALISEDCURRENCYGAIN", "")
        self.suspense = self.receivable  # a line without an account (Xero refuses to approve it)

    def resolve(self, account_id: Any, code: Any) -> str:
        if account_id and str(account_id) in self.by_id:
            return str(account_id)
        return self.by_code.get(str(code or ""), "")


# --- public API ----------------------------------------------------------------------------------


def ledger_of(tenant: TenantData) -> Ledger:
    """The tenant's ledger, attached (not yet built) on first call."""
    ledger = tenant.ledger
    if not isinstance(ledger, Ledger):
        ledger = Ledger(tenant)
        tenant.ledger = ledger
    return ledger


def journals(tenant: TenantData) -> list[dict]:
    """All journals of ``tenant`` in JournalNumber order, in Xero's JSON shape."""
    return ledger_of(tenant).rendered()


def page(
    tenant: TenantData,
    offset: int = 0,
    since_ms: int | None = None,
    payments_only: bool = False,
) -> list[dict]:
    """One response of ``GET /Journals`` (see :meth:`Ledger.page`)."""
    return ledger_of(tenant).page(offset, since_ms, payments_only)


def journal(tenant: TenantData, key: str) -> dict | None:
    """``GET /Journals/{JournalID}`` (or ``/{JournalNumber}``)."""
    return ledger_of(tenant).journal(key)
