"""Xero's Reports, computed by the sandbox: ProfitAndLoss, TrialBalance, BalanceSheet, BankSummary,
AgedReceivablesByContact and AgedPayablesByContact.

Every report is a pure function of the tenant's books: the general ledger's journals (Xero's
Journal JSON, as ``ledger.journals`` builds them: NetAmount + for a debit, - for a credit, in the
base currency), the Accounts, the Organisation (financial year end, country) and the tracking
categories; the two aged reports read the Invoices and CreditNotes instead of the ledger, as Xero's
do (AmountDue as at a date). A report comes back as one ``ReportWithRow`` object of Xero's JSON:
``{"ReportID", "ReportName", "ReportType", "ReportTitles", "ReportDate", "UpdatedDateUTC",
"Fields", "Rows": [{"RowType": "Header" | "Section" | "Row" | "SummaryRow", "Title", "Rows",
"Cells": [{"Value", "Attributes": [{"Id": "account", "Value": AccountID}]}]}]}``, amounts as
strings with two decimals (``"1234.50"``, ``"-12.00"``, ``"0.00"``).

``build_report`` is the HTTP side: it reads a request's query parameters (names matched without
regard to case, as Xero's are), refuses what Xero refuses with :class:`ReportRequestError`, fills
the defaults Xero documents and calls the report. The decisions taken where Xero's documentation
is silent are listed in docs/sandbox.md ("Reports").
"""

import calendar
import itertools
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from xero_tableau.sandbox.dataset import TenantData, date_string, ms_date, parse_ms_date

CENT = Decimal("0.01")
ZERO = Decimal(0)
ZERO_ID = "00000000-0000-0000-0000-000000000000"
FX_GROUP_ID = "FXGROUPID"
MAX_PERIODS = 11
TIMEFRAME_MONTHS = {"MONTH": 1, "QUARTER": 3, "YEAR": 12}

READ_SCOPE = "accounting.reports.read"
# The scopes that open each report: the broad read scope, or the report's 2026 granular scope.
REPORT_SCOPES: dict[str, tuple[str, ...]] = {
    "ProfitAndLoss": (READ_SCOPE, "accounting.reports.profitandloss.read"),
    "TrialBalance": (READ_SCOPE, "accounting.reports.trialbalance.read"),
    "BalanceSheet": (READ_SCOPE, "accounting.reports.balancesheet.read"),
    "BankSummary": (READ_SCOPE, "accounting.reports.banksummary.read"),
    "AgedReceivablesByContact": (READ_SCOPE, "accounting.reports.aged.read"),
    "AgedPayablesByContact": (READ_SCOPE, "accounting.reports.aged.read"),
}
# Reports Xero serves that the sandbox does not compute: answered 501 Not Implemented.
NOT_EMULATED = frozenset(
    {"BudgetSummary", "ExecutiveSummary", "TenNinetyNine", "BASReport", "GSTReport"}
)

_NAMES = {
    "ProfitAndLoss": "Profit and Loss",
    "TrialBalance": "Trial Balance",
    "BalanceSheet": "Balance Sheet",
    "BankSummary": "Bank Summary",
    "AgedReceivablesByContact": "Aged Receivables By Contact",
    "AgedPayablesByContact": "Aged Payables By Contact",
}

# Organisation.Timezone values the sandbox's organisations use, for "today" in org-local time.
_ZONES = {
    "NEWZEALANDSTANDARDTIME": "Pacific/Auckland",
    "GMTSTANDARDTIME": "Europe/London",
    "AUSEASTERNSTANDARDTIME": "Australia/Sydney",
    "EASTERNSTANDARDTIME": "America/New_York",
    "PACIFICSTANDARDTIME": "America/Los_Angeles",
    "UTC": "UTC",
}

_CLASS_OF_TYPE = {
    "BANK": "ASSET",
    "CURRENT": "ASSET",
    "FIXED": "ASSET",
    "INVENTORY": "ASSET",
    "NONCURRENT": "ASSET",
    "PREPAYMENT": "ASSET",
    "CURRLIAB": "LIABILITY",
    "LIABILITY": "LIABILITY",
    "TERMLIAB": "LIABILITY",
    "PAYG": "LIABILITY",
    "EQUITY": "EQUITY",
    "REVENUE": "REVENUE",
    "SALES": "REVENUE",
    "OTHERINCOME": "REVENUE",
    "DIRECTCOSTS": "EXPENSE",
    "EXPENSE": "EXPENSE",
    "OVERHEADS": "EXPENSE",
    "DEPRECIATN": "EXPENSE",
}
_FX_SYSTEM_ACCOUNTS = frozenset(
    {"BANKCURRENCYGAIN", "REALISEDCURRENCYGAIN", "UNREALISEDCURRENCYGAIN"}
)


class ReportRequestError(ValueError):
    """A report request Xero refuses: 400 ValidationException with ``message`` (or ``status``)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


# --- the books ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    """What the reports need of one account of the chart."""

    account_id: str
    code: str
    name: str
    type: str
    account_class: str
    system_account: str = ""
    status: str = "ACTIVE"

    @property
    def profit_and_loss(self) -> bool:
        return self.account_class in ("REVENUE", "EXPENSE")

    @property
    def label(self) -> str:
        """How the trial balance names it: ``Sales (200)``."""
        return f"{self.name} ({self.code})" if self.code else self.name


@dataclass(frozen=True)
class LedgerLine:
    """One journal line: its day, account, signed base-currency amount and tracking options."""

    day: date
    account_id: str
    net: Decimal
    tracking: frozenset[tuple[str, str]] = frozenset()  # (TrackingCategoryID, TrackingOptionID)
    source: str = ""  # SourceID, or the JournalID of a journal without one


@dataclass(frozen=True)
class Books:
    """A tenant's ledger lines, chart of accounts, organisation and tracking categories."""

    lines: tuple[LedgerLine, ...]
    accounts: Mapping[str, Account]
    organisation: Mapping
    tracking_categories: tuple[Mapping, ...] = ()

    @classmethod
    def of(
        cls,
        journals: Iterable[Mapping],
        accounts: Iterable[Mapping],
        organisation: Mapping,
        tracking_categories: Iterable[Mapping] = (),
    ) -> "Books":
        chart: dict[str, Account] = {}
        for record in accounts:
            type_ = str(record.get("Type") or "")
            chart[str(record["AccountID"])] = Account(
                account_id=str(record["AccountID"]),
                code=str(record.get("Code") or ""),
                name=str(record.get("Name") or ""),
                type=type_,
                account_class=str(record.get("Class") or _CLASS_OF_TYPE.get(type_, "")),
                system_account=str(record.get("SystemAccount") or ""),
                status=str(record.get("Status") or "ACTIVE"),
            )
        lines: list[LedgerLine] = []
        for journal in journals:
            day = _day(journal["JournalDate"])
            source = str(journal.get("SourceID") or journal.get("JournalID") or "")
            for line in journal.get("JournalLines") or ():
                account_id = str(line.get("AccountID") or f"code:{line.get('AccountCode', '')}")
                if account_id not in chart:  # an account the chart no longer lists
                    type_ = str(line.get("AccountType") or "")
                    chart[account_id] = Account(
                        account_id=account_id,
                        code=str(line.get("AccountCode") or ""),
                        name=str(line.get("AccountName") or ""),
                        type=type_,
                        account_class=_CLASS_OF_TYPE.get(type_, ""),
                    )
                tracking = frozenset(
                    (str(t["TrackingCategoryID"]).lower(), str(t["TrackingOptionID"]).lower())
                    for t in line.get("TrackingCategories") or ()
                    if t.get("TrackingCategoryID") and t.get("TrackingOptionID")
                )
                lines.append(
                    LedgerLine(day, account_id, _decimal(line.get("NetAmount")), tracking, source)
                )
        return cls(tuple(lines), chart, organisation, tuple(tracking_categories))

    def retained_earnings(self) -> Account | None:
        return next(
            (a for a in self.accounts.values() if a.system_account == "RETAINEDEARNINGS"), None
        )


LineFilter = Callable[[LedgerLine], bool]


def _sums(
    lines: Iterable[LedgerLine], start: date | None, end: date, keep: LineFilter | None = None
) -> dict[str, Decimal]:
    """Net amount per account of the lines dated ``start``..``end`` (inclusive; no start: all
    history) that ``keep`` keeps."""
    out: dict[str, Decimal] = defaultdict(Decimal)
    for line in lines:
        if line.day > end or (start is not None and line.day < start):
            continue
        if keep is not None and not keep(line):
            continue
        out[line.account_id] += line.net
    return out


# --- dates -------------------------------------------------------------------------------------


def _day(value: object) -> date:
    """The date of a ``/Date(ms+0000)/`` (midnight UTC for Xero's date-only fields)."""
    ms = parse_ms_date(str(value))
    return datetime.fromtimestamp(ms / 1000, UTC).date()


def _decimal(value: object) -> Decimal:
    if value is None or value == "":
        return ZERO
    if isinstance(value, Decimal):
        return value
    return Decimal(str(value))


def month_end(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def shift_months(day: date, months: int) -> date:
    """``day`` moved by whole months, the day of the month kept where the month has it and the
    month's last day otherwise (30 Sep - 1 month = 30 Aug; 31 Mar - 1 month = 28/29 Feb)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def financial_year_start(day: date, organisation: Mapping) -> date:
    """First day of the financial year ``day`` falls in (Organisation.FinancialYearEndDay/Month;
    a day past the month's end means its last day)."""
    end_day = int(organisation.get("FinancialYearEndDay") or 31)
    end_month = int(organisation.get("FinancialYearEndMonth") or 12)

    def year_end(year: int) -> date:
        return date(year, end_month, min(end_day, calendar.monthrange(year, end_month)[1]))

    this_end = year_end(day.year)
    if day > this_end:
        return this_end + timedelta(days=1)
    return year_end(day.year - 1) + timedelta(days=1)


def org_today(organisation: Mapping, now_ms: int) -> date:
    """The organisation's local date at ``now_ms`` (UTC where its timezone is unknown)."""
    zone = ZoneInfo(_ZONES.get(str(organisation.get("Timezone") or "").upper(), "UTC"))
    return datetime.fromtimestamp(now_ms / 1000, UTC).astimezone(zone).date()


def _long(day: date) -> str:
    return f"{day.day} {day:%B %Y}"  # 28 February 2018


def _us(day: date) -> str:
    return f"{day.month}/{day.day}/{day.year}"  # 4/30/2019, as the balance sheet's attributes


# --- cells and rows ----------------------------------------------------------------------------


def money(value: Decimal) -> str:
    """Xero's report amount: two decimals, half away from zero, never ``-0.00``."""
    rounded = value.quantize(CENT, ROUND_HALF_UP)
    if rounded == 0:
        rounded = Decimal("0.00")
    return f"{rounded:.2f}"


def _cell(value: str, attributes: Sequence[tuple[str, str]] = ()) -> dict:
    cell: dict = {"Value": value}
    if attributes:
        cell["Attributes"] = [{"Value": v, "Id": k} for k, v in attributes]
    return cell


def _header(values: Sequence[str]) -> dict:
    return {"RowType": "Header", "Cells": [_cell(v) for v in values]}


def _row(cells: list[dict], row_type: str = "Row") -> dict:
    return {"RowType": row_type, "Cells": cells}


def _plain(label: str, values: Sequence[Decimal], row_type: str = "Row") -> dict:
    return _row([_cell(label), *(_cell(money(v)) for v in values)], row_type)


def _account_row(label: str, account_id: str, values: Sequence[Decimal]) -> dict:
    attrs = (("account", account_id),)
    return _row([_cell(label, attrs), *(_cell(money(v), attrs) for v in values)])


def _section(title: str, rows: list[dict]) -> dict:
    return {"RowType": "Section", "Title": title, "Rows": rows}


@dataclass(frozen=True)
class Stamp:
    """When a report runs: the organisation's date (ReportDate), the instant (UpdatedDateUTC)."""

    today: date
    now_ms: int


def _report(
    report_type: str, titles: list[str], rows: list[dict], stamp: Stamp
) -> dict[str, object]:
    return {
        "ReportID": report_type,
        "ReportName": _NAMES[report_type],
        "ReportType": report_type,
        "ReportTitles": titles,
        "ReportDate": _long(stamp.today),
        "UpdatedDateUTC": ms_date(stamp.now_ms, offset=False),
        "Fields": [],
        "Rows": rows,
    }


def _org_name(books_or_org: Mapping) -> str:
    return str(books_or_org.get("Name") or "")


# --- Profit and Loss ---------------------------------------------------------------------------

# (title, total label, account types, sign that shows the section's normal balance positive)
_PL_SECTIONS: tuple[tuple[str, str, tuple[str, ...], int], ...] = (
    ("Income", "Total Income", ("REVENUE", "SALES"), -1),
    ("Less Cost of Sales", "Total Cost of Sales", ("DIRECTCOSTS",), 1),
    ("Plus Other Income", "Total Other Income", ("OTHERINCOME",), -1),
    (
        "Less Operating Expenses",
        "Total Operating Expenses",
        ("EXPENSE", "OVERHEADS", "DEPRECIATN"),
        1,
    ),
)


def _pl_section(account: Account) -> str | None:
    for title, _, types, _ in _PL_SECTIONS:
        if account.type in types:
            return title
    if account.account_class == "REVENUE":
        return "Income"
    if account.account_class == "EXPENSE":
        return "Less Operating Expenses"
    return None


@dataclass(frozen=True)
class Column:
    """One value column: its header, its date range and which lines it counts."""

    label: str
    start: date | None
    end: date
    keep: LineFilter | None = None


def period_columns(
    from_date: date, to_date: date, periods: int, timeframe: str
) -> list[tuple[date, date]]:
    """The date ranges of a report with ``periods`` comparative periods, newest first.

    As Xero documents, the requested range is moved back whole timeframes, keeping its days of
    the month: 1-30 Sep with MONTH compares 1-30 Aug, 1-30 Jul, ... (the 31st of those months is
    left out), so a whole-month comparison must start from a 31-day month."""
    step = TIMEFRAME_MONTHS[timeframe]
    return [
        (shift_months(from_date, -k * step), shift_months(to_date, -k * step))
        for k in range(periods + 1)
    ]


def _grouped(books: Books, accounts: list[Account]) -> list[tuple[str, str, list[str]]]:
    """(label, attribute id, account ids) rows of a section, sorted by name; multi-currency
    system accounts in one FXGROUPID row, except for US organisations (as Xero's standard
    layout does)."""
    fx_group = str(books.organisation.get("CountryCode") or "") != "US"
    rows: list[tuple[str, str, list[str]]] = []
    fx: list[str] = []
    for account in accounts:
        if fx_group and account.system_account in _FX_SYSTEM_ACCOUNTS:
            fx.append(account.account_id)
        else:
            rows.append((account.name, account.account_id, [account.account_id]))
    if fx:
        rows.append(("Foreign Currency Gains and Losses", FX_GROUP_ID, fx))
    return sorted(rows, key=lambda r: (r[0].lower(), r[1]))


def profit_and_loss_rows(books: Books, columns: Sequence[Column]) -> list[dict]:
    """Header, Income, Less Cost of Sales, Gross Profit, Plus Other Income, Less Operating
    Expenses and Net Profit, as Xero lays them out (a section without accounts is left out)."""
    sums = [_sums(books.lines, c.start, c.end, c.keep) for c in columns]
    width = len(columns)
    rows: list[dict] = [_header(["", *(c.label for c in columns)])]
    totals: dict[str, list[Decimal]] = {}

    def section(title: str, total_label: str, sign: int) -> None:
        members = [
            a
            for a in books.accounts.values()
            if _pl_section(a) == title and any(s.get(a.account_id, ZERO) for s in sums)
        ]
        body: list[dict] = []
        total = [ZERO] * width
        for label, attr, ids in _grouped(books, members):
            values = [sign * sum((s.get(i, ZERO) for i in ids), ZERO) for s in sums]
            total = [t + v for t, v in zip(total, values, strict=True)]
            body.append(_account_row(label, attr, values))
        totals[title] = total
        if body:
            rows.append(_section(title, [*body, _plain(total_label, total, "SummaryRow")]))

    (income, cost, other, expenses) = _PL_SECTIONS
    section(income[0], income[1], income[3])
    section(cost[0], cost[1], cost[3])
    gross = [i - c for i, c in zip(totals[income[0]], totals[cost[0]], strict=True)]
    rows.append(_section("", [_plain("Gross Profit", gross)]))
    section(other[0], other[1], other[3])
    section(expenses[0], expenses[1], expenses[3])
    net = [g + o - e for g, o, e in zip(gross, totals[other[0]], totals[expenses[0]], strict=True)]
    rows.append(_section("", [_plain("Net Profit", net)]))
    return rows


@dataclass(frozen=True)
class TrackingChoice:
    """A P&L tracking parameter pair: the category and, optionally, one of its options."""

    category_id: str
    option_id: str | None = None

    def __post_init__(self) -> None:  # GUIDs compare without regard to case
        object.__setattr__(self, "category_id", self.category_id.lower())
        if self.option_id is not None:
            object.__setattr__(self, "option_id", self.option_id.lower())


def _tracking_columns(
    books: Books, choices: Sequence[TrackingChoice]
) -> list[tuple[str, LineFilter]]:
    """(label, filter) per column of a P&L split by tracking: one option of a category, or each
    of its options (active ones, and archived ones that hold amounts) plus Unassigned; with two
    categories every combination."""
    dimensions: list[list[tuple[str, LineFilter]]] = []
    for choice in choices:
        category = _category(books, choice.category_id)
        options = category.get("Options") or []
        if choice.option_id is not None:
            option = next(
                (o for o in options if str(o.get("TrackingOptionID")).lower() == choice.option_id),
                None,
            )
            if option is None:
                raise ReportRequestError(
                    f"TrackingOptionID {choice.option_id} is not an option of the tracking "
                    f"category {choice.category_id}"
                )
            dimensions.append(
                [(str(option["Name"]), _has_option(choice.category_id, choice.option_id))]
            )
            continue
        used = {
            opt for line in books.lines for cat, opt in line.tracking if cat == choice.category_id
        }
        dimension = [
            (str(o["Name"]), _has_option(choice.category_id, str(o["TrackingOptionID"]).lower()))
            for o in sorted(options, key=lambda o: str(o.get("Name", "")).lower())
            if o.get("Status", "ACTIVE") == "ACTIVE"
            or str(o.get("TrackingOptionID")).lower() in used
        ]
        dimension.append(("Unassigned", _lacks_category(choice.category_id)))
        dimensions.append(dimension)
    columns: list[tuple[str, LineFilter]] = []
    for combo in itertools.product(*dimensions):
        labels = [label for label, _ in combo]
        filters = [keep for _, keep in combo]
        columns.append((", ".join(labels), _all_of(filters)))
    return columns


def _category(books: Books, category_id: str) -> Mapping:
    for category in books.tracking_categories:
        if str(category.get("TrackingCategoryID")).lower() == category_id:
            return category
    raise ReportRequestError(f"TrackingCategoryID {category_id} is not a tracking category")


def _has_option(category_id: str, option_id: str) -> LineFilter:
    return lambda line: (category_id, option_id) in line.tracking


def _lacks_category(category_id: str) -> LineFilter:
    return lambda line: all(cat != category_id for cat, _ in line.tracking)


def _all_of(filters: Sequence[LineFilter]) -> LineFilter:
    return lambda line: all(keep(line) for keep in filters)


def profit_and_loss(
    books: Books,
    from_date: date,
    to_date: date,
    stamp: Stamp,
    *,
    periods: int = 0,
    timeframe: str = "MONTH",
    tracking: Sequence[TrackingChoice] = (),
) -> dict[str, object]:
    """Xero's Profit and Loss (accrual basis, base currency) for ``from_date``..``to_date``.

    With ``periods`` the columns are the range and its ``periods`` comparative ranges, newest
    first (see :func:`period_columns`). With a tracking category the columns are its options
    (each, plus Unassigned and Total) or, with an option, the periods filtered to that option."""
    split = _tracking_columns(books, tracking) if tracking else []
    if len(split) > 1:
        if periods:
            raise ReportRequestError(
                "periods cannot be combined with a trackingCategoryID that has no "
                "trackingOptionID (one column per option)"
            )
        columns = [Column(name, from_date, to_date, keep) for name, keep in split]
        shown = [keep for _, keep in split]
        columns.append(Column("Total", from_date, to_date, lambda ln: any(k(ln) for k in shown)))
    else:
        keep = split[0][1] if split else None
        columns = [
            Column(f"{end.day} {end:%b %y}", start, end, keep)
            for start, end in period_columns(from_date, to_date, periods, timeframe)
        ]
    titles = ["Profit & Loss", _org_name(books.organisation)]
    titles.append(f"{_long(from_date)} to {_long(to_date)}")
    return _report("ProfitAndLoss", titles, profit_and_loss_rows(books, columns), stamp)


# --- Trial Balance -----------------------------------------------------------------------------

_TB_SECTIONS = (
    ("Revenue", "REVENUE"),
    ("Expenses", "EXPENSE"),
    ("Assets", "ASSET"),
    ("Liabilities", "LIABILITY"),
    ("Equity", "EQUITY"),
)


@dataclass(frozen=True)
class TrialBalanceLine:
    """One account's trial balance figures: signed month-to-date movement and year-to-date
    balance (P&L accounts from the financial year start; balance-sheet accounts cumulative)."""

    account: Account
    month: Decimal
    ytd: Decimal


def trial_balance_lines(books: Books, as_at: date) -> list[TrialBalanceLine]:
    """The trial balance's accounts as at ``as_at``: profit-and-loss accounts year to date, the
    balance-sheet accounts cumulative, and every earlier year's profit in retained earnings."""
    year_start = financial_year_start(as_at, books.organisation)
    month_start = as_at.replace(day=1)
    retained = books.retained_earnings()
    retained_id = retained.account_id if retained else ZERO_ID
    ytd: dict[str, Decimal] = defaultdict(Decimal)
    month: dict[str, Decimal] = defaultdict(Decimal)
    for line in books.lines:
        if line.day > as_at:
            continue
        account = books.accounts[line.account_id]
        if line.day >= month_start:
            month[line.account_id] += line.net
        if account.profit_and_loss and line.day < year_start:
            ytd[retained_id] += line.net  # earlier years' profit, rolled into retained earnings
        else:
            ytd[line.account_id] += line.net
    chart = dict(books.accounts)
    if retained is None and ytd.get(ZERO_ID):
        chart[ZERO_ID] = Account(ZERO_ID, "", "Retained Earnings", "EQUITY", "EQUITY")
    out = []
    for account_id in set(ytd) | set(month):
        m, y = month.get(account_id, ZERO), ytd.get(account_id, ZERO)
        if m or y:
            out.append(TrialBalanceLine(chart[account_id], m, y))
    return out


def _sides(value: Decimal, zero_side: int) -> tuple[str, str]:
    """(debit, credit) cells of a signed amount; a zero shows as 0.00 on ``zero_side``."""
    if value > 0 or (value == 0 and zero_side > 0):
        return money(value), ""
    return "", money(-value)


def trial_balance(books: Books, as_at: date, stamp: Stamp) -> dict[str, object]:
    """Xero's Trial Balance as at ``as_at``: Debit and Credit (the month to date), YTD Debit and
    YTD Credit, per account, by class, with a Total row whose debits equal its credits."""
    lines = trial_balance_lines(books, as_at)
    year_start = financial_year_start(as_at, books.organisation)
    retained = books.retained_earnings()
    retained_id = retained.account_id if retained else ZERO_ID
    rows: list[dict] = [_header(["Account", "Debit", "Credit", "YTD Debit", "YTD Credit"])]
    totals = [ZERO] * 4
    for title, account_class in _TB_SECTIONS:
        members = sorted(
            (line for line in lines if line.account.account_class == account_class),
            key=lambda line: (line.account.name.lower(), line.account.account_id),
        )
        body = []
        for line in members:
            ytd_side = 1 if line.ytd > 0 or (line.ytd == 0 and line.month >= 0) else -1
            month_side = 1 if line.month > 0 or (line.month == 0 and ytd_side > 0) else -1
            values = (*_sides(line.month, month_side), *_sides(line.ytd, ytd_side))
            for i, value in enumerate(values):
                totals[i] += Decimal(value) if value else ZERO
            attrs: list[tuple[str, str]] = [("account", line.account.account_id)]
            value_attrs = list(attrs)
            if line.account.account_id == retained_id:
                value_attrs += [("fromDate", ""), ("toDate", _us(year_start - timedelta(days=1)))]
            cells = [_cell(line.account.label, attrs)]
            cells += [_cell(v, value_attrs) for v in values]
            body.append(_row(cells))
        if body:
            rows.append(_section(title, body))
    rows.append(_section("", [_plain("Total", totals, "SummaryRow")]))
    titles = ["Trial Balance", _org_name(books.organisation), f"As at {_long(as_at)}"]
    return _report("TrialBalance", titles, rows, stamp)


# --- Balance Sheet -----------------------------------------------------------------------------

_ASSET_SECTIONS = (
    ("Bank", ("BANK",)),
    ("Current Assets", ("CURRENT", "PREPAYMENT", "INVENTORY")),
    ("Fixed Assets", ("FIXED",)),
    ("Non-current Assets", ("NONCURRENT",)),
)
_LIABILITY_SECTIONS = (
    ("Current Liabilities", ("CURRLIAB", "PAYG")),
    ("Non-current Liabilities", ("TERMLIAB", "LIABILITY")),
)


def _bs_section(account: Account) -> str | None:
    for title, types in (*_ASSET_SECTIONS, *_LIABILITY_SECTIONS):
        if account.type in types:
            return title
    if account.account_class == "ASSET":
        return "Current Assets"
    if account.account_class == "LIABILITY":
        return "Current Liabilities"
    return None


def balance_sheet_dates(as_at: date, periods: int, timeframe: str) -> list[date]:
    """The balance sheet's column dates, newest first: ``as_at`` and ``periods`` earlier ones a
    timeframe apart (month ends when ``as_at`` is a month end: 30 Apr, 31 Mar, 28 Feb)."""
    step = TIMEFRAME_MONTHS[timeframe]
    at_month_end = as_at == month_end(as_at)
    out = []
    for k in range(periods + 1):
        day = shift_months(as_at, -k * step)
        out.append(month_end(day) if at_month_end else day)
    return out


@dataclass(frozen=True)
class BalanceSheetColumn:
    """One balance-sheet date's figures: each account's balance and the two computed equity
    lines (Current Year Earnings, Retained Earnings), all signed as Xero shows them."""

    as_at: date
    year_start: date
    balances: Mapping[str, Decimal]  # account id -> shown balance (assets +, liabilities +...)
    current_year_earnings: Decimal
    retained_earnings: Decimal


def balance_sheet_column(
    books: Books, as_at: date, keep: LineFilter | None = None
) -> BalanceSheetColumn:
    year_start = financial_year_start(as_at, books.organisation)
    retained = books.retained_earnings()
    balances: dict[str, Decimal] = defaultdict(Decimal)
    current = earlier = ZERO
    for account_id, net in _sums(books.lines, None, as_at, keep).items():
        account = books.accounts[account_id]
        if account.profit_and_loss:
            continue
        sign = 1 if account.account_class == "ASSET" else -1
        balances[account_id] += sign * net
    for line in books.lines:
        if line.day > as_at or (keep is not None and not keep(line)):
            continue
        if books.accounts[line.account_id].profit_and_loss:
            if line.day >= year_start:
                current -= line.net
            else:
                earlier -= line.net
    own = balances.pop(retained.account_id, ZERO) if retained else ZERO
    return BalanceSheetColumn(as_at, year_start, balances, current, earlier + own)


def balance_sheet(
    books: Books,
    dates: Sequence[date],
    stamp: Stamp,
    keep: LineFilter | None = None,
) -> dict[str, object]:
    """Xero's Balance Sheet at each of ``dates`` (newest first): Assets (Bank, Current, Fixed,
    Non-current), Liabilities, Net Assets and Equity with Current Year Earnings (profit since the
    financial year start) and Retained Earnings (every earlier year, plus what was posted to the
    retained earnings account)."""
    columns = [balance_sheet_column(books, day, keep) for day in dates]
    width = len(columns)
    rows: list[dict] = [_header(["", *(f"{d.day} {d:%b %Y}" for d in dates)])]

    def account_sections(sections: Sequence[tuple[str, tuple[str, ...]]]) -> list[Decimal]:
        grand = [ZERO] * width
        for title, _ in sections:
            members = sorted(
                (
                    a
                    for a in books.accounts.values()
                    if _bs_section(a) == title
                    and any(c.balances.get(a.account_id) for c in columns)
                ),
                key=lambda a: (a.name.lower(), a.account_id),
            )
            if not members:
                continue
            body = []
            total = [ZERO] * width
            for account in members:
                values = [c.balances.get(account.account_id, ZERO) for c in columns]
                total = [t + v for t, v in zip(total, values, strict=True)]
                body.append(_account_row(account.name, account.account_id, values))
            grand = [g + t for g, t in zip(grand, total, strict=True)]
            rows.append(_section(title, [*body, _plain(f"Total {title}", total, "SummaryRow")]))
        return grand

    rows.append(_section("Assets", []))
    assets = account_sections(_ASSET_SECTIONS)
    rows.append(_section("", [_plain("Total Assets", assets, "SummaryRow")]))
    rows.append(_section("Liabilities", []))
    liabilities = account_sections(_LIABILITY_SECTIONS)
    rows.append(_section("", [_plain("Total Liabilities", liabilities, "SummaryRow")]))
    net_assets = [a - li for a, li in zip(assets, liabilities, strict=True)]
    rows.append(_section("", [_plain("Net Assets", net_assets)]))

    retained = books.retained_earnings()
    equity_rows: list[tuple[str, str, dict]] = []
    cye_cells = [_cell("Current Year Earnings", (("account", ZERO_ID),))]
    re_id = retained.account_id if retained else ZERO_ID
    re_name = retained.name if retained else "Retained Earnings"
    re_cells = [_cell(re_name, (("account", re_id),))]
    equity_total = [ZERO] * width
    for i, column in enumerate(columns):
        cye_cells.append(
            _cell(
                money(column.current_year_earnings),
                (
                    ("account", ZERO_ID),
                    ("fromDate", _us(column.year_start)),
                    ("toDate", _us(column.as_at)),
                ),
            )
        )
        re_cells.append(
            _cell(
                money(column.retained_earnings),
                (("account", re_id), ("fromDate", ""), ("toDate", _us(column.as_at))),
            )
        )
        equity_total[i] += column.current_year_earnings + column.retained_earnings
    equity_rows.append(("Current Year Earnings", ZERO_ID, _row(cye_cells)))
    equity_rows.append((re_name, re_id, _row(re_cells)))
    for account in books.accounts.values():
        if account.account_class != "EQUITY" or account is retained:
            continue
        values = [c.balances.get(account.account_id, ZERO) for c in columns]
        if not any(values):
            continue
        equity_total = [t + v for t, v in zip(equity_total, values, strict=True)]
        equity_rows.append(
            (
                account.name,
                account.account_id,
                _account_row(account.name, account.account_id, values),
            )
        )
    equity_rows.sort(key=lambda r: (r[0].lower(), r[1]))
    rows.append(
        _section(
            "Equity",
            [*(r for _, _, r in equity_rows), _plain("Total Equity", equity_total, "SummaryRow")],
        )
    )
    titles = ["Balance Sheet", _org_name(books.organisation), f"As at {_long(dates[0])}"]
    return _report("BalanceSheet", titles, rows, stamp)


# --- Bank Summary ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BankMovement:
    """One bank account over a range: opening balance, cash in, cash out, closing balance."""

    account: Account
    opening: Decimal
    received: Decimal
    spent: Decimal

    @property
    def closing(self) -> Decimal:
        return self.opening + self.received - self.spent


def bank_movements(books: Books, from_date: date, to_date: date) -> list[BankMovement]:
    """Per bank account (Type BANK), in the base currency: the balance before ``from_date``, and
    the range's movements netted per source document (an edit's reversal and re-post cancel),
    received where a document's net is a debit, spent where it is a credit."""
    banks = {a.account_id: a for a in books.accounts.values() if a.type == "BANK"}
    opening: dict[str, Decimal] = defaultdict(Decimal)
    per_source: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for line in books.lines:
        if line.account_id not in banks or line.day > to_date:
            continue
        if line.day < from_date:
            opening[line.account_id] += line.net
        else:
            per_source[(line.account_id, line.source)] += line.net
    received: dict[str, Decimal] = defaultdict(Decimal)
    spent: dict[str, Decimal] = defaultdict(Decimal)
    for (account_id, _), net in per_source.items():
        if net > 0:
            received[account_id] += net
        else:
            spent[account_id] -= net
    out = []
    for account in sorted(banks.values(), key=lambda a: (a.name.lower(), a.account_id)):
        i = account.account_id
        movement = BankMovement(account, opening[i], received[i], spent[i])
        if account.status == "ACTIVE" or movement.opening or movement.received or movement.spent:
            out.append(movement)
    return out


def bank_summary(books: Books, from_date: date, to_date: date, stamp: Stamp) -> dict[str, object]:
    """Xero's Bank Summary: Opening Balance, Cash Received, Cash Spent and Closing Balance of
    each bank account, in the organisation's base currency (the ledger's)."""
    rows: list[dict] = [
        _header(
            ["Bank Accounts", "Opening Balance", "Cash Received", "Cash Spent", "Closing Balance"]
        )
    ]
    body = []
    totals = [ZERO] * 4
    for m in bank_movements(books, from_date, to_date):
        i = m.account.account_id
        values = (m.opening, m.received, m.spent, m.closing)
        totals = [t + v for t, v in zip(totals, values, strict=True)]
        body.append(
            _row(
                [
                    _cell(m.account.name, (("accountID", i),)),
                    _cell(money(m.opening)),
                    _cell(money(m.received), (("account", i),)),
                    _cell(money(m.spent), (("account", i),)),
                    _cell(money(m.closing)),
                ]
            )
        )
    rows.append(_section("", [*body, _plain("Total", totals, "SummaryRow")]))
    titles = ["Bank Summary", _org_name(books.organisation)]
    titles.append(f"From {_long(from_date)} to {_long(to_date)}")
    return _report("BankSummary", titles, rows, stamp)


# --- Aged Receivables / Payables by contact ----------------------------------------------------

_AGED = {
    # report type -> (invoice type, credit note type, header of the number column)
    "AgedReceivablesByContact": ("ACCREC", "ACCRECCREDIT", "Number"),
    "AgedPayablesByContact": ("ACCPAY", "ACCPAYCREDIT", "Reference"),
}
_POSTED = ("AUTHORISED", "PAID")
_APPLIED = ("CreditNotes", "Prepayments", "Overpayments")  # an invoice's applied credit


@dataclass(frozen=True)
class AgedItem:
    """One document of an aged report as at a date, in its own currency (credit notes negative)."""

    kind: str  # "invoiceID" or "creditNoteID"
    document_id: str
    number: str
    day: date
    due_date: date | None
    total: Decimal
    paid: Decimal
    credited: Decimal

    @property
    def due(self) -> Decimal:
        return self.total - self.paid - self.credited


def _applied_by(entries: Iterable[Mapping], key: str, as_at: date) -> Decimal:
    return sum(
        (_decimal(e.get(key)) for e in entries if e.get("Date") and _day(e["Date"]) <= as_at),
        ZERO,
    )


def aged_items(
    report_type: str,
    contact_id: str,
    invoices: Iterable[Mapping],
    credit_notes: Iterable[Mapping],
    as_at: date,
) -> list[AgedItem]:
    """The contact's posted (AUTHORISED or PAID) invoices and credit notes of the report's side,
    each with what was paid and credited on or before ``as_at``."""
    invoice_type, credit_type, _ = _AGED[report_type]
    wanted = contact_id.lower()
    items: list[AgedItem] = []
    for invoice in invoices:
        if (
            invoice.get("Type") != invoice_type
            or invoice.get("Status") not in _POSTED
            or str((invoice.get("Contact") or {}).get("ContactID", "")).lower() != wanted
        ):
            continue
        credited = sum(
            (_applied_by(invoice.get(k) or (), "AppliedAmount", as_at) for k in _APPLIED), ZERO
        )
        items.append(
            AgedItem(
                "invoiceID",
                str(invoice["InvoiceID"]),
                str(invoice.get("InvoiceNumber") or ""),
                _day(invoice["Date"]),
                _day(invoice["DueDate"]) if invoice.get("DueDate") else None,
                _decimal(invoice.get("Total")),
                _applied_by(invoice.get("Payments") or (), "Amount", as_at),
                credited,
            )
        )
    for note in credit_notes:
        if (
            note.get("Type") != credit_type
            or note.get("Status") not in _POSTED
            or str((note.get("Contact") or {}).get("ContactID", "")).lower() != wanted
        ):
            continue
        items.append(
            AgedItem(
                "creditNoteID",
                str(note["CreditNoteID"]),
                str(note.get("CreditNoteNumber") or ""),
                _day(note["Date"]),
                None,
                -_decimal(note.get("Total")),
                -_applied_by(note.get("Payments") or (), "Amount", as_at),
                -_applied_by(note.get("Allocations") or (), "Amount", as_at),
            )
        )
    items.sort(key=lambda item: (item.day, item.number, item.document_id))
    return items


def overdue_text(item: AgedItem, as_at: date) -> str:
    """``305 days overdue`` when something is still due past the due date, else empty."""
    if item.due_date is None or item.due <= 0 or item.due_date >= as_at:
        return ""
    days = (as_at - item.due_date).days
    return f"{days} day overdue" if days == 1 else f"{days} days overdue"


def aged_by_contact(
    report_type: str,
    contact: Mapping,
    invoices: Iterable[Mapping],
    credit_notes: Iterable[Mapping],
    as_at: date,
    stamp: Stamp,
    *,
    from_date: date | None = None,
    to_date: date | None = None,
) -> dict[str, object]:
    """Xero's Aged Receivables (or Payables) By Contact: the contact's documents dated
    ``from_date``..``to_date`` (default: up to ``as_at``) with Total, Paid, Credited and Due as
    at ``as_at`` and how many days each is overdue; with ``from_date`` an Opening Balance (what
    was still due of the earlier documents), then a Closing Balance."""
    _, _, number_header = _AGED[report_type]
    last = to_date or as_at
    items = aged_items(
        report_type, str(contact.get("ContactID", "")), invoices, credit_notes, as_at
    )
    rows: list[dict] = [
        _header(["Date", number_header, "Due Date", "", "Total", "Paid", "Credited", "Due"])
    ]
    opening = ZERO
    if from_date is not None:
        opening = sum((i.due for i in items if i.day < from_date), ZERO)
        blank = [_cell("") for _ in range(5)]
        rows.append(
            _section(
                "",
                [
                    _row(
                        [
                            _cell(date_string(from_date)),
                            _cell("Opening Balance"),
                            *blank,
                            _cell(money(opening)),
                        ]
                    )
                ],
            )
        )
    shown = [i for i in items if (from_date is None or i.day >= from_date) and i.day <= last]
    body = []
    totals = [ZERO] * 4
    for item in shown:
        attrs = ((item.kind, item.document_id),)
        values = (item.total, item.paid, item.credited, item.due)
        totals = [t + v for t, v in zip(totals, values, strict=True)]
        due_date = date_string(item.due_date) if item.due_date else ""
        cells = [
            _cell(date_string(item.day), attrs),
            _cell(item.number, attrs),
            _cell(due_date, attrs),
            _cell(overdue_text(item, as_at), attrs),
            *(_cell(money(v), attrs) for v in values),
        ]
        body.append(_row(cells))
    blanks = [_cell(""), _cell(""), _cell("")]
    total_cells = [_cell(money(v)) for v in totals]
    body.append(_row([_cell("Total"), *blanks, *total_cells], "SummaryRow"))
    rows.append(_section("", body))
    closing = [*totals[:3], totals[3] + opening]
    closing_cells = [_cell(money(v)) for v in closing]
    rows.append(
        _section("", [_row([_cell("Closing Balance"), *blanks, *closing_cells], "SummaryRow")])
    )
    span = f"From {_long(from_date)} to {_long(last)}" if from_date else f"To {_long(last)}"
    titles = [
        "Invoices",
        str(contact.get("Name") or ""),
        span,
        f"Showing payments to {_long(as_at)}",
    ]
    return _report(report_type, titles, rows, stamp)


# --- requests ----------------------------------------------------------------------------------

_ISO_DAY = re.compile(r"^(\d{4}-\d{2}-\d{2})(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


@dataclass
class _Params:
    """A report request's query parameters, looked up without regard to case (as Xero does)."""

    raw: Mapping[str, str]
    lowered: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.lowered = {k.lower(): v for k, v in self.raw.items()}

    def get(self, name: str) -> str | None:
        value = self.lowered.get(name.lower())
        return value if value not in (None, "") else None

    def day(self, name: str) -> date | None:
        value = self.get(name)
        if value is None:
            return None
        match = _ISO_DAY.match(value.strip())
        try:
            if match is None:
                raise ValueError(value)
            return date.fromisoformat(match.group(1))
        except ValueError:
            raise ReportRequestError(
                f"Report Parameter {name} could not be parsed as a DateTime"
            ) from None

    def periods(self) -> int | None:
        value = self.get("periods")
        if value is None:
            return None
        try:
            periods = int(value)
        except ValueError:
            raise ReportRequestError(
                "Report Parameter periods could not be parsed as an Int32"
            ) from None
        if not 1 <= periods <= MAX_PERIODS:
            raise ReportRequestError(
                f"The supplied periods parameter must be between 1 and {MAX_PERIODS}."
            )
        return periods

    def timeframe(self) -> str | None:
        value = self.get("timeframe")
        if value is None:
            return None
        if value not in TIMEFRAME_MONTHS:
            raise ReportRequestError(
                "The supplied timeframe parameter must be one of the following: "
                "'MONTH', 'QUARTER', 'YEAR'."
            )
        return value

    def guid(self, name: str) -> str | None:
        value = self.get(name)
        if value is None:
            return None
        if not _GUID.match(value.strip()):
            raise ReportRequestError(f"Report Parameter {name} could not be parsed as a Guid")
        return value.strip().lower()

    def flag(self, name: str) -> bool:
        value = self.get(name)
        if value is not None and value.lower() not in ("true", "false"):
            raise ReportRequestError(f"Report Parameter {name} could not be parsed as a Boolean")
        return value is not None and value.lower() == "true"


def books_of(tenant: TenantData, journals: Iterable[Mapping]) -> Books:
    """A tenant's books as the reports read them."""
    return Books.of(
        journals,
        tenant.collections["Accounts"].values(),
        tenant.organisation,
        tenant.collections["TrackingCategories"].values(),
    )


def _range(params: _Params, today: date) -> tuple[date, date]:
    """fromDate and toDate, by default the first and last day of the current month."""
    start = params.day("fromDate") or today.replace(day=1)
    end = params.day("toDate") or month_end(today)
    if start > end:
        raise ReportRequestError("The fromDate must be on or before the toDate.")
    return start, end


def _tracking_choices(params: _Params) -> list[TrackingChoice]:
    choices = []
    for suffix in ("", "2"):
        category = params.guid(f"trackingCategoryID{suffix}")
        option = params.guid(f"trackingOptionID{suffix}")
        if option is not None and category is None:
            raise ReportRequestError(
                f"TrackingCategoryID{suffix} must be provided if a TrackingOptionID{suffix} "
                "is provided."
            )
        if category is not None:
            choices.append(TrackingChoice(category, option))
    return choices


def _tracking_filter(books: Books, option_ids: Sequence[str]) -> LineFilter | None:
    """The balance sheet's trackingOptionID1/2: lines carrying every option given."""
    if not option_ids:
        return None
    known = {
        str(o.get("TrackingOptionID")).lower(): str(c.get("TrackingCategoryID")).lower()
        for c in books.tracking_categories
        for o in c.get("Options") or ()
    }
    pairs = []
    for option_id in option_ids:
        if option_id not in known:
            raise ReportRequestError(f"TrackingOptionID {option_id} is not a tracking option")
        pairs.append((known[option_id], option_id))
    return lambda line: all(pair in line.tracking for pair in pairs)


def build_report(
    name: str,
    query: Mapping[str, str],
    tenant: TenantData,
    journals: Callable[[], Iterable[Mapping]],
    now_ms: int,
) -> dict[str, object]:
    """The report ``GET Reports/{name}?{query}`` answers for ``tenant`` (its ``ReportWithRow``).

    ``journals`` is called only for the ledger reports. Raises :class:`ReportRequestError` for a
    request Xero refuses; ``name`` must be a key of :data:`REPORT_SCOPES`."""
    params = _Params(query)
    organisation = tenant.organisation
    today = org_today(organisation, now_ms)
    stamp = Stamp(today, now_ms)
    if params.flag("paymentsOnly"):
        raise ReportRequestError(
            "paymentsOnly=true (cash basis) is not emulated by the sandbox", status=501
        )
    params.flag("standardLayout")  # the sandbox has no custom layouts: standard either way
    if name in _AGED:
        contact_id = params.guid("contactID")
        if contact_id is None:
            raise ReportRequestError("ContactID must be provided.")
        as_at = params.day("date") or month_end(today)
        from_date, to_date = params.day("fromDate"), params.day("toDate")
        if from_date and to_date and from_date > to_date:
            raise ReportRequestError("The fromDate must be on or before the toDate.")
        contact = tenant.collections["Contacts"].get(contact_id) or {"ContactID": contact_id}
        return aged_by_contact(
            name,
            contact,
            tenant.collections["Invoices"].values(),
            tenant.collections["CreditNotes"].values(),
            as_at,
            stamp,
            from_date=from_date,
            to_date=to_date,
        )
    books = books_of(tenant, journals())
    if name == "ProfitAndLoss":
        from_date, to_date = _range(params, today)
        if to_date >= shift_months(from_date, 12):
            raise ReportRequestError("The report period cannot be longer than one year.")
        periods, timeframe = params.periods(), params.timeframe()
        return profit_and_loss(
            books,
            from_date,
            to_date,
            stamp,
            periods=periods or 0,
            timeframe=timeframe or "MONTH",
            tracking=_tracking_choices(params),
        )
    if name == "TrialBalance":
        return trial_balance(books, params.day("date") or today, stamp)
    if name == "BalanceSheet":
        as_at = params.day("date") or month_end(today)
        periods, timeframe = params.periods(), params.timeframe()
        if periods is None and timeframe is None:
            periods, timeframe = (
                1,
                "YEAR",
            )  # "also returns ... the same month for the previous year"
        dates = balance_sheet_dates(as_at, periods or 1, timeframe or "MONTH")
        options = [
            o for o in (params.guid("trackingOptionID1"), params.guid("trackingOptionID2")) if o
        ]
        return balance_sheet(books, dates, stamp, _tracking_filter(books, options))
    if name == "BankSummary":
        from_date, to_date = _range(params, today)
        return bank_summary(books, from_date, to_date, stamp)
    raise KeyError(name)
