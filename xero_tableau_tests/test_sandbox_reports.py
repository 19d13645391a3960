"""The sandbox's Reports: P&L, Trial Balance, Balance Sheet, Bank Summary and the aged reports.

The unit tests run ``sandbox/reports.py`` on small ledgers written here by hand, with every
expected figure worked out by hand in the comments; the property tests run it on random balanced
journals; the HTTP tests read the reports from a running sandbox (scopes, refusals, counting, and
invariants that hold for whatever its general ledger holds). Every report is checked against the
spec's ``ReportWithRows`` schema when the spec is at hand.
"""

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xero_tableau.sandbox import reports
from xero_tableau.sandbox.credentials import READ_SCOPES
from xero_tableau.sandbox.dataset import TenantData
from xero_tableau.sandbox.ledger import journals as ledger_journals
from xero_tableau.sandbox.limits import LimitSettings
from xero_tableau.sandbox.reports import (
    Books,
    ReportRequestError,
    Stamp,
    TrackingChoice,
)
from xero_tableau.sandbox.server import RunningXeroSandbox
from xero_tableau.sandbox.xero_app import XeroSandboxConfig
from xero_tableau_tests.conftest import (
    API,
    SandboxFactory,
    XeroConnection,
    bearer,
    connect_sandbox,
)
from xero_tableau_tests.xero_spec import ACCOUNTING, assert_valid, spec_available

REPORT_SCOPES = READ_SCOPES + " accounting.reports.read"
STAMP = Stamp(date(2025, 6, 30), 1_751_241_600_000)


# --- a hand-built organisation -----------------------------------------------------------------


def _id(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"reports-test/{name}"))


BANK, AR, AP, GST = _id("bank"), _id("ar"), _id("ap"), _id("gst")
SALES, INTEREST, COGS, RENT = _id("sales"), _id("interest"), _id("cogs"), _id("rent")
EQUIP, RETAINED, CAPITAL = _id("equip"), _id("retained"), _id("capital")
REGION, NORTH, SOUTH = _id("region"), _id("north"), _id("south")
ACCOUNTS = [
    {"AccountID": BANK, "Code": "090", "Name": "Business Bank Account", "Type": "BANK"},
    {"AccountID": AR, "Code": "610", "Name": "Accounts Receivable", "Type": "CURRENT"},
    {"AccountID": AP, "Code": "800", "Name": "Accounts Payable", "Type": "CURRLIAB"},
    {"AccountID": GST, "Code": "820", "Name": "GST", "Type": "CURRLIAB"},
    {"AccountID": SALES, "Code": "200", "Name": "Sales", "Type": "REVENUE"},
    {"AccountID": INTEREST, "Code": "270", "Name": "Interest Income", "Type": "OTHERINCOME"},
    {"AccountID": COGS, "Code": "310", "Name": "Cost of Goods Sold", "Type": "DIRECTCOSTS"},
    {"AccountID": RENT, "Code": "469", "Name": "Rent", "Type": "OVERHEADS"},
    {"AccountID": EQUIP, "Code": "710", "Name": "Office Equipment", "Type": "FIXED"},
    {
        "AccountID": RETAINED,
        "Code": "960",
        "Name": "Retained Earnings",
        "Type": "EQUITY",
        "SystemAccount": "RETAINEDEARNINGS",
    },
    {"AccountID": CAPITAL, "Code": "970", "Name": "Owner Funds Introduced", "Type": "EQUITY"},
]
for _account in ACCOUNTS:
    _account["Class"] = reports._CLASS_OF_TYPE[_account["Type"]]
    _account["Status"] = "ACTIVE"
TYPE_OF = {a["AccountID"]: a["Type"] for a in ACCOUNTS}
ORGANISATION = {
    "Name": "Hand Books Ltd",
    "BaseCurrency": "NZD",
    "CountryCode": "NZ",
    "Timezone": "NEWZEALANDSTANDARDTIME",
    "FinancialYearEndDay": 31,
    "FinancialYearEndMonth": 3,  # the year 2025-26 starts on 1 April 2025
}
TRACKING = [
    {
        "TrackingCategoryID": REGION,
        "Name": "Region",
        "Status": "ACTIVE",
        "Options": [
            {"TrackingOptionID": NORTH, "Name": "North", "Status": "ACTIVE"},
            {"TrackingOptionID": SOUTH, "Name": "South", "Status": "ACTIVE"},
        ],
    }
]


def msdate(day: date) -> str:
    return (
        f"/Date({int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)}+0000)/"
    )


def journal(number: int, day: date, *lines: tuple, source: str | None = None) -> dict:
    """A journal in Xero's shape from (account, amount[, option]) lines (+ debit, - credit)."""
    built = []
    for line in lines:
        account, amount = line[0], Decimal(str(line[1]))
        tracking = []
        if len(line) > 2 and line[2]:
            name = "North" if line[2] == NORTH else "South"
            tracking = [
                {
                    "TrackingCategoryID": REGION,
                    "TrackingOptionID": line[2],
                    "Name": "Region",
                    "Option": name,
                }
            ]
        built.append(
            {
                "JournalLineID": str(uuid.uuid4()),
                "AccountID": account,
                "AccountType": TYPE_OF[account],
                "NetAmount": float(amount),
                "GrossAmount": float(amount),
                "TaxAmount": 0.0,
                "TrackingCategories": tracking,
            }
        )
    assert sum(Decimal(str(line["NetAmount"])) for line in built) == 0, "unbalanced journal"
    return {
        "JournalID": str(uuid.uuid4()),
        "JournalDate": msdate(day),
        "JournalNumber": number,
        "SourceID": source or str(uuid.uuid4()),
        "SourceType": "ACCREC",
        "JournalLines": built,
    }


# The whole ledger of Hand Books Ltd, worked through by hand below.
LEDGER = [
    journal(1, date(2025, 1, 15), (BANK, 10000), (CAPITAL, -10000)),  # owner puts in 10,000
    journal(2, date(2025, 2, 10), (AR, 1150), (SALES, -1000, NORTH), (GST, -150)),  # sale
    journal(3, date(2025, 3, 5), (RENT, 500), (BANK, -500)),  # rent, no region
    journal(4, date(2025, 4, 10), (AR, 2300), (SALES, -2000, SOUTH), (GST, -300)),  # sale
    journal(5, date(2025, 4, 20), (BANK, 1150), (AR, -1150)),  # the first sale is paid
    journal(6, date(2025, 5, 5), (COGS, 400), (GST, 60), (AP, -460)),  # a supplier's bill
    journal(7, date(2025, 5, 31), (BANK, 25), (INTEREST, -25)),  # interest on the 31st
    journal(8, date(2025, 5, 31), (EQUIP, 1200), (BANK, -1200)),  # equipment bought
    journal(9, date(2025, 6, 15), (RENT, 500, NORTH), (BANK, -500)),  # rent for the north
]


def books(ledger: list[dict] | None = None) -> Books:
    return Books.of(LEDGER if ledger is None else ledger, ACCOUNTS, ORGANISATION, TRACKING)


# --- reading a report --------------------------------------------------------------------------


def valid(report: dict) -> dict:
    """The report, after checking it (in its envelope) against the spec, strictly."""
    if spec_available(ACCOUNTING):
        assert_valid({"Reports": [report]}, "ReportWithRows", strict=True)
    return report


def rows(report: dict) -> Iterator[tuple[str, dict]]:
    """(section title, row) for every non-header row, sections flattened."""
    for row in report["Rows"]:
        if row["RowType"] == "Section":
            for inner in row["Rows"]:
                yield row["Title"], inner
        elif row["RowType"] != "Header":
            yield "", row


def line(report: dict, label: str, section: str | None = None) -> list[str]:
    """The value cells of the row whose first cell is ``label`` (in ``section`` if given)."""
    found = [
        [c.get("Value", "") for c in row["Cells"][1:]]
        for title, row in rows(report)
        if row["Cells"][0].get("Value") == label and (section is None or title == section)
    ]
    assert len(found) == 1, f"{label!r} in {section!r}: {len(found)} rows"
    return found[0]


def header(report: dict) -> list[str]:
    return [c["Value"] for c in report["Rows"][0]["Cells"]]


def sections(report: dict) -> list[str]:
    return [r["Title"] for r in report["Rows"] if r["RowType"] == "Section"]


def labels(report: dict, section: str) -> list[str]:
    return [
        row["Cells"][0]["Value"]
        for title, row in rows(report)
        if title == section and row["RowType"] == "Row"
    ]


def amount(value: str) -> Decimal:
    return Decimal(value) if value else Decimal(0)


# --- Profit and Loss ---------------------------------------------------------------------------


def test_profit_and_loss_one_month_lays_out_xeros_sections() -> None:
    # May 2025: bill of 400 to cost of sales; interest 25 on the 31st.
    report = valid(reports.profit_and_loss(books(), date(2025, 5, 1), date(2025, 5, 31), STAMP))
    assert report["ReportID"] == report["ReportType"] == "ProfitAndLoss"
    assert report["ReportName"] == "Profit and Loss"
    assert report["ReportTitles"] == [
        "Profit & Loss",
        "Hand Books Ltd",
        "1 May 2025 to 31 May 2025",
    ]
    assert report["ReportDate"] == "30 June 2025"
    assert header(report) == ["", "31 May 25"]
    # no income this month: no Income section; no operating expenses either
    assert sections(report) == ["Less Cost of Sales", "", "Plus Other Income", ""]
    assert line(report, "Cost of Goods Sold") == ["400.00"]
    assert line(report, "Total Cost of Sales") == ["400.00"]
    assert line(report, "Gross Profit") == ["-400.00"]
    assert line(report, "Interest Income") == ["25.00"]
    assert line(report, "Net Profit") == ["-375.00"]  # -400 + 25
    cogs_row = next(r for _, r in rows(report) if r["Cells"][0]["Value"] == "Cost of Goods Sold")
    assert all(c["Attributes"] == [{"Value": COGS, "Id": "account"}] for c in cogs_row["Cells"])


def test_profit_and_loss_periods_are_newest_first_and_keep_the_day_span() -> None:
    """Xero: the range applies to each period, so 1-30 June compares 1-30 May (the interest of
    31 May is left out) and 1-30 April."""
    report = valid(
        reports.profit_and_loss(
            books(), date(2025, 6, 1), date(2025, 6, 30), STAMP, periods=2, timeframe="MONTH"
        )
    )
    assert header(report) == ["", "30 Jun 25", "30 May 25", "30 Apr 25"]
    assert line(report, "Sales") == ["0.00", "0.00", "2000.00"]
    assert line(report, "Total Income") == ["0.00", "0.00", "2000.00"]
    assert line(report, "Cost of Goods Sold") == ["0.00", "400.00", "0.00"]
    assert line(report, "Rent") == ["500.00", "0.00", "0.00"]
    # June: -500 rent; May 1-30: -400 (no interest); April: 2,000 of sales
    assert line(report, "Net Profit") == ["-500.00", "-400.00", "2000.00"]
    assert "Plus Other Income" not in sections(report)  # the interest fell outside every column


def test_profit_and_loss_quarters_and_years() -> None:
    quarters = valid(
        reports.profit_and_loss(
            books(), date(2025, 4, 1), date(2025, 6, 30), STAMP, periods=1, timeframe="QUARTER"
        )
    )
    # Apr-Jun: 2,000 - 400 + 25 - 500 = 1,125; 1 Jan-30 Mar (the day span again): 1,000 - 500
    assert header(quarters) == ["", "30 Jun 25", "30 Mar 25"]
    assert line(quarters, "Net Profit") == ["1125.00", "500.00"]
    years = valid(
        reports.profit_and_loss(
            books(), date(2025, 4, 1), date(2026, 3, 31), STAMP, periods=1, timeframe="YEAR"
        )
    )
    assert header(years) == ["", "31 Mar 26", "31 Mar 25"]
    assert line(years, "Net Profit") == ["1125.00", "500.00"]


def test_profit_and_loss_filtered_by_one_tracking_option() -> None:
    north = [TrackingChoice(REGION, NORTH)]
    report = valid(
        reports.profit_and_loss(books(), date(2025, 1, 1), date(2025, 6, 30), STAMP, tracking=north)
    )
    # North: the February sale (1,000) and June's rent (500)
    assert header(report) == ["", "30 Jun 25"]
    assert line(report, "Sales") == ["1000.00"]
    assert line(report, "Rent") == ["500.00"]
    assert line(report, "Net Profit") == ["500.00"]
    assert "Less Cost of Sales" not in sections(report)
    monthly = valid(
        reports.profit_and_loss(
            books(), date(2025, 6, 1), date(2025, 6, 30), STAMP, periods=1, tracking=north
        )
    )
    assert line(monthly, "Net Profit") == ["-500.00", "0.00"]


def test_profit_and_loss_by_tracking_category_has_a_column_per_option() -> None:
    report = valid(
        reports.profit_and_loss(
            books(), date(2025, 1, 1), date(2025, 6, 30), STAMP, tracking=[TrackingChoice(REGION)]
        )
    )
    assert header(report) == ["", "North", "South", "Unassigned", "Total"]
    assert line(report, "Sales") == ["1000.00", "2000.00", "0.00", "3000.00"]
    # Unassigned: the bill (400), the interest (25), March's rent (500)
    assert line(report, "Gross Profit") == ["1000.00", "2000.00", "-400.00", "2600.00"]
    assert line(report, "Net Profit") == ["500.00", "2000.00", "-875.00", "1625.00"]
    with pytest.raises(ReportRequestError):
        reports.profit_and_loss(
            books(),
            date(2025, 1, 1),
            date(2025, 6, 30),
            STAMP,
            periods=2,
            tracking=[TrackingChoice(REGION)],
        )


def test_profit_and_loss_groups_multi_currency_system_accounts_except_in_the_us() -> None:
    fx_gain, fx_loss = _id("fx-realised"), _id("fx-unrealised")
    chart = [
        *ACCOUNTS,
        {"AccountID": fx_gain, "Name": "Realised Currency Gains", "Type": "OVERHEADS",
         "Class": "EXPENSE", "SystemAccount": "REALISEDCURRENCYGAIN"},
        {"AccountID": fx_loss, "Name": "Unrealised Currency Gains", "Type": "OVERHEADS",
         "Class": "EXPENSE", "SystemAccount": "UNREALISEDCURRENCYGAIN"},
    ]  # fmt: skip
    TYPE_OF.update({fx_gain: "OVERHEADS", fx_loss: "OVERHEADS"})
    ledger = [journal(1, date(2025, 5, 2), (fx_gain, 12), (fx_loss, -2), (BANK, -10))]
    nz = Books.of(ledger, chart, ORGANISATION)
    report = valid(reports.profit_and_loss(nz, date(2025, 5, 1), date(2025, 5, 31), STAMP))
    assert labels(report, "Less Operating Expenses") == ["Foreign Currency Gains and Losses"]
    assert line(report, "Foreign Currency Gains and Losses") == ["10.00"]
    fx_row = next(r for _, r in rows(report) if r["Cells"][0]["Value"].startswith("Foreign"))
    assert fx_row["Cells"][0]["Attributes"] == [{"Value": "FXGROUPID", "Id": "account"}]
    us = Books.of(ledger, chart, {**ORGANISATION, "CountryCode": "US"})
    report = valid(reports.profit_and_loss(us, date(2025, 5, 1), date(2025, 5, 31), STAMP))
    assert labels(report, "Less Operating Expenses") == [
        "Realised Currency Gains",
        "Unrealised Currency Gains",
    ]


# --- Trial Balance -----------------------------------------------------------------------------


def test_trial_balance_balances_with_ytd_from_the_financial_year_start() -> None:
    report = valid(reports.trial_balance(books(), date(2025, 5, 31), STAMP))
    assert report["ReportTitles"] == ["Trial Balance", "Hand Books Ltd", "As at 31 May 2025"]
    assert header(report) == ["Account", "Debit", "Credit", "YTD Debit", "YTD Credit"]
    assert sections(report) == ["Revenue", "Expenses", "Assets", "Liabilities", "Equity", ""]
    # May's movements, then year-to-date (P&L from 1 April 2025, balance sheet cumulative)
    assert line(report, "Sales (200)") == ["", "0.00", "", "2000.00"]
    assert line(report, "Interest Income (270)") == ["", "25.00", "", "25.00"]
    assert line(report, "Cost of Goods Sold (310)") == ["400.00", "", "400.00", ""]
    assert line(report, "Business Bank Account (090)") == ["", "1175.00", "9475.00", ""]
    assert line(report, "Accounts Receivable (610)") == ["0.00", "", "2300.00", ""]
    assert line(report, "Office Equipment (710)") == ["1200.00", "", "1200.00", ""]
    assert line(report, "Accounts Payable (800)") == ["", "460.00", "", "460.00"]
    assert line(report, "GST (820)") == ["60.00", "", "", "390.00"]
    assert line(report, "Owner Funds Introduced (970)") == ["", "0.00", "", "10000.00"]
    # last year's profit (1,000 of sales - 500 of rent) sits in retained earnings
    assert line(report, "Retained Earnings (960)") == ["", "0.00", "", "500.00"]
    assert "Rent (469)" not in labels(report, "Expenses")  # no rent this financial year yet
    total = line(report, "Total")
    assert total == ["1660.00", "1660.00", "13375.00", "13375.00"]
    retained_row = next(r for t, r in rows(report) if t == "Equity" and "Retained" in str(r))
    assert {"Value": "3/31/2025", "Id": "toDate"} in retained_row["Cells"][1]["Attributes"]


def test_trial_balance_across_the_financial_year_boundary() -> None:
    before = valid(reports.trial_balance(books(), date(2025, 3, 31), STAMP))
    # 2024-25: sales 1,000 and rent 500 are year-to-date; nothing retained yet
    assert line(before, "Sales (200)") == ["", "0.00", "", "1000.00"]
    assert line(before, "Rent (469)") == ["500.00", "", "500.00", ""]
    assert "Retained Earnings (960)" not in labels(before, "Equity")
    # bank 9,500 + receivable 1,150 + rent 500 = capital 10,000 + sales 1,000 + GST 150
    assert line(before, "Total")[2:] == ["11150.00", "11150.00"]
    after = valid(reports.trial_balance(books(), date(2025, 4, 10), STAMP))
    # 10 April 2025: a new year; the year's sales are April's 2,000 alone, rent is gone from
    # the P&L side and last year's 500 of profit is retained
    assert line(after, "Sales (200)") == ["", "2000.00", "", "2000.00"]
    assert "Rent (469)" not in labels(after, "Expenses")
    assert line(after, "Retained Earnings (960)") == ["", "0.00", "", "500.00"]
    total = line(after, "Total")
    assert total[0] == total[1] and total[2] == total[3]


def test_trial_balance_without_a_retained_earnings_account_names_one() -> None:
    chart = [a for a in ACCOUNTS if a["AccountID"] != RETAINED]
    report = valid(
        reports.trial_balance(Books.of(LEDGER, chart, ORGANISATION), date(2025, 4, 30), STAMP)
    )
    assert line(report, "Retained Earnings") == ["", "0.00", "", "500.00"]


# --- Balance Sheet -----------------------------------------------------------------------------


def test_balance_sheet_balances_with_current_year_earnings() -> None:
    dates = reports.balance_sheet_dates(date(2025, 5, 31), 1, "MONTH")
    assert dates == [date(2025, 5, 31), date(2025, 4, 30)]
    report = valid(reports.balance_sheet(books(), dates, STAMP))
    assert report["ReportTitles"] == ["Balance Sheet", "Hand Books Ltd", "As at 31 May 2025"]
    assert header(report) == ["", "31 May 2025", "30 Apr 2025"]
    assert sections(report) == [
        "Assets", "Bank", "Current Assets", "Fixed Assets", "",
        "Liabilities", "Current Liabilities", "", "", "Equity",
    ]  # fmt: skip
    assert line(report, "Business Bank Account") == ["9475.00", "10650.00"]
    assert line(report, "Total Bank") == ["9475.00", "10650.00"]
    assert line(report, "Accounts Receivable") == ["2300.00", "2300.00"]
    assert line(report, "Office Equipment") == ["1200.00", "0.00"]
    assert line(report, "Total Assets") == ["12975.00", "12950.00"]
    assert line(report, "Accounts Payable") == ["460.00", "0.00"]
    assert line(report, "GST") == ["390.00", "450.00"]
    assert line(report, "Total Liabilities") == ["850.00", "450.00"]
    assert line(report, "Net Assets") == ["12125.00", "12500.00"]
    # this year's profit: 2,000 - 400 + 25 by May, 2,000 by April; last year's: 500
    assert line(report, "Current Year Earnings") == ["1625.00", "2000.00"]
    assert line(report, "Retained Earnings") == ["500.00", "500.00"]
    assert line(report, "Owner Funds Introduced") == ["10000.00", "10000.00"]
    assert line(report, "Total Equity") == ["12125.00", "12500.00"]
    assert labels(report, "Equity") == [
        "Current Year Earnings",
        "Owner Funds Introduced",
        "Retained Earnings",
    ]
    cye = next(r for _, r in rows(report) if r["Cells"][0]["Value"] == "Current Year Earnings")
    assert cye["Cells"][1]["Attributes"] == [
        {"Value": reports.ZERO_ID, "Id": "account"},
        {"Value": "4/1/2025", "Id": "fromDate"},
        {"Value": "5/31/2025", "Id": "toDate"},
    ]


def test_balance_sheet_column_dates() -> None:
    # month ends stay month ends (as in Xero's example: 30 Apr, 31 Mar, 28 Feb)
    assert reports.balance_sheet_dates(date(2019, 4, 30), 2, "MONTH") == [
        date(2019, 4, 30),
        date(2019, 3, 31),
        date(2019, 2, 28),
    ]
    assert reports.balance_sheet_dates(date(2025, 5, 15), 1, "QUARTER") == [
        date(2025, 5, 15),
        date(2025, 2, 15),
    ]
    assert reports.balance_sheet_dates(date(2024, 2, 29), 1, "YEAR") == [
        date(2024, 2, 29),
        date(2023, 2, 28),
    ]


def test_balance_sheet_before_any_history_is_zero_and_balanced() -> None:
    report = valid(reports.balance_sheet(books(), [date(2024, 12, 31)], STAMP))
    assert line(report, "Total Assets") == ["0.00"]
    assert line(report, "Total Equity") == ["0.00"]
    assert line(report, "Current Year Earnings") == ["0.00"]


# --- Bank Summary ------------------------------------------------------------------------------


def test_bank_summary_opening_plus_in_less_out_is_closing() -> None:
    report = valid(reports.bank_summary(books(), date(2025, 5, 1), date(2025, 5, 31), STAMP))
    assert report["ReportTitles"] == [
        "Bank Summary",
        "Hand Books Ltd",
        "From 1 May 2025 to 31 May 2025",
    ]
    assert header(report) == [
        "Bank Accounts",
        "Opening Balance",
        "Cash Received",
        "Cash Spent",
        "Closing Balance",
    ]
    # opening 10,000 - 500 + 1,150; May: 25 in, 1,200 out
    assert line(report, "Business Bank Account") == ["10650.00", "25.00", "1200.00", "9475.00"]
    assert line(report, "Total") == ["10650.00", "25.00", "1200.00", "9475.00"]
    row = next(r for _, r in rows(report) if r["Cells"][0]["Value"] == "Business Bank Account")
    assert row["Cells"][0]["Attributes"] == [{"Value": BANK, "Id": "accountID"}]
    assert row["Cells"][2]["Attributes"] == [{"Value": BANK, "Id": "account"}]


def test_bank_summary_nets_an_edit_of_one_document() -> None:
    """An edited receipt is a reversal and a new journal of the same source: one receipt."""
    source = str(uuid.uuid4())
    ledger = [
        journal(1, date(2025, 5, 3), (BANK, 100), (SALES, -100), source=source),
        journal(2, date(2025, 5, 3), (BANK, -100), (SALES, 100), source=source),
        journal(3, date(2025, 5, 3), (BANK, 120), (SALES, -120), source=source),
    ]
    report = valid(reports.bank_summary(books(ledger), date(2025, 5, 1), date(2025, 5, 31), STAMP))
    assert line(report, "Business Bank Account") == ["0.00", "120.00", "0.00", "120.00"]


# --- Aged Receivables and Payables -------------------------------------------------------------

KEA = {"ContactID": _id("kea"), "Name": "Kea Logistics"}
OTHER = {"ContactID": _id("other"), "Name": "Someone Else"}


def invoice(number: str, day: date, due: date, total: str, contact: dict = KEA, **extra) -> dict:
    return {
        "Type": extra.pop("Type", "ACCREC"),
        "InvoiceID": _id(number),
        "InvoiceNumber": number,
        "Contact": {"ContactID": contact["ContactID"], "Name": contact["Name"]},
        "Date": msdate(day),
        "DueDate": msdate(due),
        "Status": extra.pop("Status", "AUTHORISED"),
        "Total": float(total),
        "Payments": extra.pop("Payments", []),
        "CreditNotes": extra.pop("CreditNotes", []),
        **extra,
    }


def pay(day: date, value: str) -> dict:
    return {"PaymentID": str(uuid.uuid4()), "Date": msdate(day), "Amount": float(value)}


INVOICES = [
    # part-paid: 500 on 20 April, the rest (650) on 10 June
    invoice(
        "INV-1",
        date(2025, 3, 1),
        date(2025, 3, 31),
        "1150",
        Status="PAID",
        Payments=[pay(date(2025, 4, 20), "500"), pay(date(2025, 6, 10), "650")],
    ),
    # credited 300 by CN-1 on 15 April
    invoice(
        "INV-2",
        date(2025, 4, 10),
        date(2025, 5, 10),
        "2300",
        CreditNotes=[
            {
                "CreditNoteID": _id("CN-1"),
                "CreditNoteNumber": "CN-1",
                "AppliedAmount": 300.0,
                "Date": msdate(date(2025, 4, 15)),
                "Total": 300.0,
            }
        ],
    ),
    invoice("INV-3", date(2025, 5, 20), date(2025, 6, 19), "115"),
    invoice("INV-4", date(2025, 5, 1), date(2025, 5, 2), "99", contact=OTHER),
    invoice("BILL-1", date(2025, 5, 2), date(2025, 5, 20), "460", Type="ACCPAY"),
    invoice("INV-5", date(2025, 5, 3), date(2025, 5, 4), "70", Status="VOIDED"),
    invoice("INV-6", date(2025, 6, 5), date(2025, 7, 5), "40"),  # after the report date
]
CREDIT_NOTES = [
    {
        "Type": "ACCRECCREDIT",
        "CreditNoteID": _id("CN-1"),
        "CreditNoteNumber": "CN-1",
        "Contact": {"ContactID": KEA["ContactID"], "Name": KEA["Name"]},
        "Date": msdate(date(2025, 4, 15)),
        "Status": "PAID",
        "Total": 300.0,
        "Payments": [],
        "Allocations": [{"Amount": 300.0, "Date": msdate(date(2025, 4, 15))}],
    }
]


def aged(as_at: date, **kwargs) -> dict:
    return valid(
        reports.aged_by_contact(
            "AgedReceivablesByContact", KEA, INVOICES, CREDIT_NOTES, as_at, STAMP, **kwargs
        )
    )


def document(report: dict, number: str) -> list[dict]:
    """The cells of the document row numbered ``number``."""
    return next(r["Cells"] for _, r in rows(report) if r["Cells"][1]["Value"] == number)


def test_aged_receivables_as_at_a_date() -> None:
    report = aged(date(2025, 5, 31))
    assert report["ReportTitles"] == [
        "Invoices",
        "Kea Logistics",
        "To 31 May 2025",
        "Showing payments to 31 May 2025",
    ]
    assert header(report) == [
        "Date", "Number", "Due Date", "", "Total", "Paid", "Credited", "Due",
    ]  # fmt: skip
    body = [[c["Value"] for c in r["Cells"]] for _, r in rows(report) if r["RowType"] == "Row"]
    assert body == [
        # paid 500 of 1,150 by 31 May; due 31 March: 61 days overdue
        ["2025-03-01T00:00:00", "INV-1", "2025-03-31T00:00:00", "61 days overdue",
         "1150.00", "500.00", "0.00", "650.00"],
        # 2,300 less the 300 credit note; due 10 May: 21 days overdue
        ["2025-04-10T00:00:00", "INV-2", "2025-05-10T00:00:00", "21 days overdue",
         "2300.00", "0.00", "300.00", "2000.00"],
        # the credit note itself, fully allocated
        ["2025-04-15T00:00:00", "CN-1", "", "", "-300.00", "0.00", "-300.00", "0.00"],
        ["2025-05-20T00:00:00", "INV-3", "2025-06-19T00:00:00", "", "115.00", "0.00", "0.00",
         "115.00"],
    ]  # fmt: skip
    assert line(report, "Total") == ["", "", "", "3265.00", "500.00", "0.00", "2765.00"]
    assert line(report, "Closing Balance") == ["", "", "", "3265.00", "500.00", "0.00", "2765.00"]
    inv1 = next(r for _, r in rows(report) if r["Cells"][1]["Value"] == "INV-1")
    assert all(
        c["Attributes"] == [{"Value": _id("INV-1"), "Id": "invoiceID"}] for c in inv1["Cells"]
    )


def test_aged_receivables_earlier_date_and_opening_balance() -> None:
    april = aged(date(2025, 4, 30))
    # INV-3 is dated after 30 April; INV-2 not yet due
    assert [r["Cells"][1]["Value"] for _, r in rows(april) if r["RowType"] == "Row"] == [
        "INV-1",
        "INV-2",
        "CN-1",
    ]
    assert line(april, "Total")[3:] == ["3150.00", "500.00", "0.00", "2650.00"]
    assert document(april, "INV-1")[3]["Value"] == "30 days overdue"
    report = aged(date(2025, 5, 31), from_date=date(2025, 4, 1))
    assert report["ReportTitles"][2] == "From 1 April 2025 to 31 May 2025"
    # INV-1 is before fromDate: what is due of it (650) is the opening balance
    assert line(report, "2025-04-01T00:00:00") == ["Opening Balance", "", "", "", "", "", "650.00"]
    assert line(report, "Total")[3:] == ["2115.00", "0.00", "0.00", "2115.00"]
    assert line(report, "Closing Balance")[3:] == ["2115.00", "0.00", "0.00", "2765.00"]
    settled = aged(date(2025, 6, 30))  # INV-1 fully paid by then: listed, nothing due
    assert document(settled, "INV-1")[3:] == [
        {"Value": "", "Attributes": [{"Value": _id("INV-1"), "Id": "invoiceID"}]},
        *(
            {"Value": v, "Attributes": [{"Value": _id("INV-1"), "Id": "invoiceID"}]}
            for v in ("1150.00", "1150.00", "0.00", "0.00")
        ),
    ]


def test_aged_payables_reads_bills() -> None:
    report = valid(
        reports.aged_by_contact(
            "AgedPayablesByContact", KEA, INVOICES, CREDIT_NOTES, date(2025, 5, 31), STAMP
        )
    )
    assert report["ReportName"] == "Aged Payables By Contact"
    assert header(report)[1] == "Reference"
    assert line(report, "2025-05-02T00:00:00") == [
        "BILL-1", "2025-05-20T00:00:00", "11 days overdue", "460.00", "0.00", "0.00", "460.00",
    ]  # fmt: skip


# --- dates -------------------------------------------------------------------------------------


def test_financial_year_start() -> None:
    org = {"FinancialYearEndDay": 31, "FinancialYearEndMonth": 3}
    assert reports.financial_year_start(date(2025, 3, 31), org) == date(2024, 4, 1)
    assert reports.financial_year_start(date(2025, 4, 1), org) == date(2025, 4, 1)
    feb = {"FinancialYearEndDay": 29, "FinancialYearEndMonth": 2}
    assert reports.financial_year_start(date(2025, 3, 1), feb) == date(2025, 3, 1)
    assert reports.financial_year_start(date(2024, 2, 29), feb) == date(2023, 3, 1)
    assert reports.financial_year_start(date(2025, 12, 31), {}) == date(2025, 1, 1)


# --- properties over random balanced ledgers ----------------------------------------------------

ALL_ACCOUNTS = [a["AccountID"] for a in ACCOUNTS]
FIRST_DAY = date(2024, 1, 1)


@st.composite
def ledgers(draw: st.DrawFn) -> list[dict]:
    """Random balanced journals over 2024-2025: 2 to 4 lines in whole cents, the last line
    balancing the others, some lines tracked."""
    out = []
    for number in range(1, draw(st.integers(0, 25)) + 1):
        day = FIRST_DAY + timedelta(days=draw(st.integers(0, 730)))
        count = draw(st.integers(1, 3))
        lines: list[tuple] = []
        for _ in range(count):
            cents = draw(st.integers(-500_000, 500_000))
            option = draw(st.sampled_from([None, NORTH, SOUTH]))
            lines.append((draw(st.sampled_from(ALL_ACCOUNTS)), Decimal(cents) / 100, option))
        balance = -sum((line[1] for line in lines), Decimal(0))
        lines.append((draw(st.sampled_from(ALL_ACCOUNTS)), balance, None))
        out.append(journal(number, day, *lines))
    return out


PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
days = st.integers(0, 760).map(lambda n: FIRST_DAY + timedelta(days=n))


@PROPERTY
@given(ledgers(), days)
def test_property_trial_balance_nets_to_zero(ledger: list[dict], as_at: date) -> None:
    report = reports.trial_balance(books(ledger), as_at, STAMP)
    debit, credit, ytd_debit, ytd_credit = (amount(v) for v in line(report, "Total"))
    assert debit == credit
    assert ytd_debit == ytd_credit


@PROPERTY
@given(ledgers(), days, st.integers(1, 11), st.sampled_from(["MONTH", "QUARTER", "YEAR"]))
def test_property_balance_sheet_balances(
    ledger: list[dict], as_at: date, periods: int, timeframe: str
) -> None:
    dates = reports.balance_sheet_dates(as_at, periods, timeframe)
    report = reports.balance_sheet(books(ledger), dates, STAMP)
    assets = [amount(v) for v in line(report, "Total Assets")]
    liabilities = [amount(v) for v in line(report, "Total Liabilities")]
    equity = [amount(v) for v in line(report, "Total Equity")]
    net = [amount(v) for v in line(report, "Net Assets")]
    assert [a - li for a, li in zip(assets, liabilities, strict=True)] == net == equity


@PROPERTY
@given(
    ledgers(), st.sampled_from([1, 3, 5, 7, 8, 10, 12]), st.integers(2024, 2025), st.integers(0, 11)
)
def test_property_net_profit_of_a_range_is_the_sum_of_its_months(
    ledger: list[dict], month: int, year: int, periods: int
) -> None:
    """With the newest month a 31-day one every comparative month is whole (Xero's rule), so the
    monthly net profits add up to the net profit of the whole range."""
    last = date(year, month, 31)
    first = reports.shift_months(last.replace(day=1), -periods)
    book = books(ledger)
    monthly = reports.profit_and_loss(
        book, last.replace(day=1), last, STAMP, periods=periods, timeframe="MONTH"
    )
    whole = reports.profit_and_loss(book, first, last, STAMP)
    columns = [amount(v) for v in line(monthly, "Net Profit")]
    assert len(columns) == periods + 1
    assert sum(columns, Decimal(0)) == amount(line(whole, "Net Profit")[0])


@PROPERTY
@given(ledgers(), days, st.integers(0, 120))
def test_property_bank_summary_rolls_forward(ledger: list[dict], start: date, span: int) -> None:
    end = start + timedelta(days=span)
    report = reports.bank_summary(books(ledger), start, end, STAMP)
    opening, received, spent, closing = (amount(v) for v in line(report, "Business Bank Account"))
    assert opening + received - spent == closing
    balance = sum(
        (
            Decimal(str(jl["NetAmount"]))
            for j in ledger
            if reports._day(j["JournalDate"]) <= end
            for jl in j["JournalLines"]
            if jl["AccountID"] == BANK
        ),
        Decimal(0),
    )
    assert closing == balance


# --- request parameters ------------------------------------------------------------------------


def hand_tenant() -> TenantData:
    tenant = TenantData(_id("tenant"), "Hand Books Ltd", dict(ORGANISATION))
    for record in ACCOUNTS:
        tenant.put("Accounts", record)
    for record in TRACKING:
        tenant.put("TrackingCategories", record)
    for record in (KEA, OTHER):
        tenant.put("Contacts", {**record, "UpdatedDateUTC": msdate(date(2025, 1, 1))})
    for record in INVOICES:
        tenant.put("Invoices", {**record, "UpdatedDateUTC": msdate(date(2025, 6, 1))})
    for record in CREDIT_NOTES:
        tenant.put("CreditNotes", {**record, "UpdatedDateUTC": msdate(date(2025, 6, 1))})
    return tenant


# 2025-06-20 12:00 UTC: 21 June in New Zealand, the organisation's "today"
NOW_MS = int(datetime(2025, 6, 20, 12, tzinfo=UTC).timestamp() * 1000)


def build(name: str, **params: str) -> dict:
    return valid(reports.build_report(name, params, hand_tenant(), lambda: LEDGER, NOW_MS))


def test_build_report_defaults_are_xeros() -> None:
    pnl = build("ProfitAndLoss")  # the current month
    assert pnl["ReportTitles"][2] == "1 June 2025 to 30 June 2025"
    assert pnl["ReportDate"] == "21 June 2025"
    assert pnl["UpdatedDateUTC"] == f"/Date({NOW_MS})/"
    assert build("TrialBalance")["ReportTitles"][2] == "As at 21 June 2025"  # today
    sheet = build("BalanceSheet")  # end of this month, and a year earlier
    assert header(sheet) == ["", "30 Jun 2025", "30 Jun 2024"]
    assert build("BankSummary")["ReportTitles"][2] == "From 1 June 2025 to 30 June 2025"
    aged_now = build("AgedReceivablesByContact", contactId=KEA["ContactID"])
    assert aged_now["ReportTitles"][3] == "Showing payments to 30 June 2025"
    three = build("BalanceSheet", date="2025-05-31", periods="2")  # periods alone: months
    assert header(three) == ["", "31 May 2025", "30 Apr 2025", "31 Mar 2025"]


def test_build_report_reads_parameters_whatever_their_case() -> None:
    upper = build("ProfitAndLoss", FROMDATE="2025-05-01", todate="2025-05-31", PERIODS="1")
    assert header(upper) == ["", "31 May 25", "30 Apr 25"]
    aged_report = build("AgedReceivablesByContact", ContactID=KEA["ContactID"], date="2025-05-31")
    assert line(aged_report, "Total")[3:] == ["3265.00", "500.00", "0.00", "2765.00"]
    tracked = build(
        "ProfitAndLoss",
        fromDate="2025-01-01",
        toDate="2025-06-30",
        trackingCategoryID=REGION,
        trackingOptionID=SOUTH,
    )
    assert line(tracked, "Net Profit") == ["2000.00"]
    balance = build("BalanceSheet", date="2025-05-31", trackingOptionID1=NORTH)
    # North's only earnings by May 2025: February's sale (last financial year); none in 2024
    assert line(balance, "Current Year Earnings") == ["0.00", "0.00"]
    assert line(balance, "Retained Earnings") == ["1000.00", "0.00"]


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("ProfitAndLoss", {"fromDate": "2025-13-01"},
         "Report Parameter fromDate could not be parsed as a DateTime"),
        ("ProfitAndLoss", {"toDate": "31/05/2025"},
         "Report Parameter toDate could not be parsed as a DateTime"),
        ("TrialBalance", {"date": "yesterday"},
         "Report Parameter date could not be parsed as a DateTime"),
        ("BankSummary", {"fromDate": "2025-02-30"},
         "Report Parameter fromDate could not be parsed as a DateTime"),
        ("AgedReceivablesByContact", {"contactId": KEA["ContactID"], "date": "2025-5-1"},
         "Report Parameter date could not be parsed as a DateTime"),
        ("BalanceSheet", {"timeframe": "WEEK"},
         "The supplied timeframe parameter must be one of the following: 'MONTH', 'QUARTER', "
         "'YEAR'."),
        ("ProfitAndLoss", {"periods": "12"},
         "The supplied periods parameter must be between 1 and 11."),
        ("ProfitAndLoss", {"periods": "three"},
         "Report Parameter periods could not be parsed as an Int32"),
        ("ProfitAndLoss", {"fromDate": "2025-06-02", "toDate": "2025-06-01"},
         "The fromDate must be on or before the toDate."),
        ("ProfitAndLoss", {"fromDate": "2024-06-01", "toDate": "2025-06-01"},
         "The report period cannot be longer than one year."),
        ("ProfitAndLoss", {"trackingOptionID": NORTH},
         "TrackingCategoryID must be provided if a TrackingOptionID is provided."),
        ("AgedReceivablesByContact", {}, "ContactID must be provided."),
        ("AgedPayablesByContact", {"contactId": "not-a-guid"},
         "Report Parameter contactID could not be parsed as a Guid"),
    ],
)  # fmt: skip
def test_requests_xero_refuses(name: str, params: dict[str, str], message: str) -> None:
    with pytest.raises(ReportRequestError) as refused:
        reports.build_report(name, params, hand_tenant(), lambda: LEDGER, NOW_MS)
    assert refused.value.message == message
    assert refused.value.status == 400


def test_cash_basis_is_not_emulated() -> None:
    with pytest.raises(ReportRequestError) as refused:
        build("ProfitAndLoss", paymentsOnly="true")
    assert refused.value.status == 501
    assert build("ProfitAndLoss", paymentsOnly="false", standardLayout="true")


# --- HTTP --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def xero_reports(http: httpx.Client, xero_sandbox: RunningXeroSandbox) -> XeroConnection:
    """The session sandbox, connected with the read scopes and accounting.reports.read."""
    return connect_sandbox(http, xero_sandbox, REPORT_SCOPES)


def http_report(conn: XeroConnection, name: str, params: dict | None = None) -> dict:
    body = conn.ok(f"Reports/{name}", params=params)
    if spec_available(ACCOUNTING):
        assert_valid(body, "ReportWithRows", strict=True)
    assert list(body)[:4] == ["Id", "Status", "ProviderName", "DateTimeUTC"]
    assert len(body["Reports"]) == 1
    return body["Reports"][0]


def some_contact(conn: XeroConnection, kind: str = "ACCREC") -> tuple[dict, list[dict]]:
    """A contact with several posted invoices of ``kind``, and those invoices (read over HTTP)."""
    invoices = [
        i
        for i in conn.all_records("Invoices")
        if i["Type"] == kind and i["Status"] in ("AUTHORISED", "PAID")
    ]
    by_contact: dict[str, list[dict]] = {}
    for inv in invoices:
        by_contact.setdefault(inv["Contact"]["ContactID"], []).append(inv)
    contact_id = max(by_contact, key=lambda c: sum(1 for i in by_contact[c] if i["AmountDue"]))
    contact = conn.ok(f"Contacts/{contact_id}")["Contacts"][0]
    return contact, by_contact[contact_id]


def test_reports_need_a_reports_scope(http: httpx.Client, xero_sandbox: RunningXeroSandbox) -> None:
    plain = connect_sandbox(http, xero_sandbox)  # the read scopes, no reports scope
    for name in reports.REPORT_SCOPES:
        response = plain.get(f"Reports/{name}", params={"contactId": KEA["ContactID"]})
        assert response.status_code == 403, (name, response.text)
        assert response.json()["Title"] == "Forbidden"
    granular = connect_sandbox(
        http, xero_sandbox, READ_SCOPES + " accounting.reports.trialbalance.read"
    )
    assert granular.get("Reports/TrialBalance").status_code == 200
    assert granular.get("Reports/ProfitAndLoss").status_code == 403
    aged_only = connect_sandbox(http, xero_sandbox, READ_SCOPES + " accounting.reports.aged.read")
    contact_id = KEA["ContactID"]
    assert (
        aged_only.get("Reports/AgedPayablesByContact", params={"contactId": contact_id}).status_code
        == 200
    )
    assert aged_only.get("Reports/BankSummary").status_code == 403


def test_every_report_over_http_conforms_to_the_spec(xero_reports: XeroConnection) -> None:
    contact, _ = some_contact(xero_reports)
    for name in reports.REPORT_SCOPES:
        params = {"contactId": contact["ContactID"]} if "Aged" in name else None
        report = http_report(xero_reports, name, params)
        assert report["ReportType"] == report["ReportID"] == name
    http_report(
        xero_reports,
        "ProfitAndLoss",
        {"fromDate": "2025-01-01", "toDate": "2025-01-31", "periods": 11, "timeframe": "MONTH"},
    )
    http_report(xero_reports, "BalanceSheet", {"date": "2025-03-31", "periods": 3})


def test_aged_receivables_over_http_match_each_invoices_amount_due(
    xero_reports: XeroConnection,
) -> None:
    """As at the end of this month every payment and credit has happened, so each invoice's Due
    is its AmountDue (read from /Invoices, not from the report code)."""
    contact, invoices = some_contact(xero_reports)
    report = http_report(
        xero_reports, "AgedReceivablesByContact", {"contactId": contact["ContactID"]}
    )
    assert report["ReportTitles"][1] == contact["Name"]
    shown = {
        r["Cells"][0]["Attributes"][0]["Value"]: r["Cells"]
        for _, r in rows(report)
        if r["RowType"] == "Row" and r["Cells"][0]["Attributes"][0]["Id"] == "invoiceID"
    }
    assert set(shown) == {i["InvoiceID"] for i in invoices}
    for inv in invoices:
        cells = shown[inv["InvoiceID"]]
        assert cells[1]["Value"] == inv["InvoiceNumber"]
        assert Decimal(cells[4]["Value"]) == Decimal(str(inv["Total"])).quantize(Decimal("0.01"))
        assert Decimal(cells[7]["Value"]) == Decimal(str(inv["AmountDue"])).quantize(
            Decimal("0.01")
        )
        paid = sum((Decimal(str(p["Amount"])) for p in inv["Payments"]), Decimal(0))
        assert Decimal(cells[5]["Value"]) == paid


def test_aged_receivables_without_contact_id_is_400(xero_reports: XeroConnection) -> None:
    response = xero_reports.get("Reports/AgedReceivablesByContact")
    assert response.status_code == 400
    body = response.json()
    assert body["Type"] == "ValidationException"
    assert body["Message"] == "ContactID must be provided."
    if spec_available(ACCOUNTING):
        assert_valid(body, "Error", strict=True)


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("ProfitAndLoss", {"fromDate": "2025-13-01"},
         "Report Parameter fromDate could not be parsed as a DateTime"),
        ("TrialBalance", {"date": "30/04/2025"},
         "Report Parameter date could not be parsed as a DateTime"),
        ("BalanceSheet", {"date": "2025-02-29"},
         "Report Parameter date could not be parsed as a DateTime"),
        ("BankSummary", {"toDate": "tomorrow"},
         "Report Parameter toDate could not be parsed as a DateTime"),
    ],
)  # fmt: skip
def test_bad_dates_over_http(
    xero_reports: XeroConnection, name: str, params: dict, message: str
) -> None:
    response = xero_reports.get(f"Reports/{name}", params=params)
    assert response.status_code == 400
    assert response.json()["Message"] == message


def test_unknown_and_unemulated_reports(xero_reports: XeroConnection) -> None:
    assert xero_reports.get("Reports/NoSuchReport").status_code == 404
    assert xero_reports.get("Reports/BudgetSummary").status_code == 501


def test_ledger_report_invariants_over_http(
    xero_reports: XeroConnection, xero_sandbox: RunningXeroSandbox
) -> None:
    """Whatever the sandbox's ledger holds: the trial balance balances, the balance sheet
    balances, each bank rolls forward, and the trial balance's bank balance is the ledger's."""
    tb = http_report(xero_reports, "TrialBalance", {"date": "2026-01-31"})
    debit, credit, ytd_debit, ytd_credit = (amount(v) for v in line(tb, "Total"))
    assert (debit, ytd_debit) == (credit, ytd_credit)
    bs = http_report(xero_reports, "BalanceSheet", {"date": "2026-01-31", "periods": 2})
    assets = [amount(v) for v in line(bs, "Total Assets")]
    liabilities = [amount(v) for v in line(bs, "Total Liabilities")]
    equity = [amount(v) for v in line(bs, "Total Equity")]
    assert [a - li for a, li in zip(assets, liabilities, strict=True)] == equity
    summary = http_report(
        xero_reports, "BankSummary", {"fromDate": "2025-12-01", "toDate": "2026-01-31"}
    )
    tenant = xero_sandbox.sandbox.dataset.tenants[xero_reports.tenant_ids[0]]
    with xero_sandbox.sandbox.dataset.lock:
        ledger = ledger_journals(tenant)
    for _, row in rows(summary):
        if row["RowType"] != "Row":
            continue
        opening, received, spent, closing = (amount(c["Value"]) for c in row["Cells"][1:])
        assert opening + received - spent == closing
        bank_id = row["Cells"][0]["Attributes"][0]["Value"]
        held = sum(
            (
                Decimal(str(jl["NetAmount"]))
                for j in ledger
                if reports._day(j["JournalDate"]) <= date(2026, 1, 31)
                for jl in j["JournalLines"]
                if jl["AccountID"] == bank_id
            ),
            Decimal(0),
        )
        assert closing == held


def test_report_calls_are_counted_and_rate_limited(
    http: httpx.Client, make_sandbox: SandboxFactory
) -> None:
    limits = LimitSettings(per_minute=3, per_day=1000)
    running = make_sandbox(XeroSandboxConfig(limits=limits))
    conn = connect_sandbox(http, running, REPORT_SCOPES)
    tenant = conn.tenant_ids[0]
    for _ in range(3):
        response = conn.get("Reports/TrialBalance")
        assert response.status_code == 200
        assert "X-MinLimit-Remaining" in response.headers
    refused = conn.get("Reports/ProfitAndLoss")
    assert refused.status_code == 429
    assert refused.headers["X-Rate-Limit-Problem"] == "minute"
    assert running.sandbox.calls[f"{tenant} Reports/TrialBalance"] == 3
    assert f"{tenant} Reports/ProfitAndLoss" not in running.sandbox.calls
    headers = bearer(conn.access_token, tenant)
    other = http.get(f"{running.base_url}{API}/Invoices", params={"page": 1}, headers=headers)
    assert other.status_code == 429  # reports and the other endpoints share the tenant's minute


def test_tracking_ids_match_without_regard_to_case() -> None:
    """A GUID is the same GUID in capitals: journals (or a caller) that spell it so still match."""
    shouting = [
        {
            **j,
            "JournalLines": [
                {
                    **jl,
                    "TrackingCategories": [
                        {**t, "TrackingCategoryID": t["TrackingCategoryID"].upper(),
                         "TrackingOptionID": t["TrackingOptionID"].upper()}
                        for t in jl["TrackingCategories"]
                    ],
                }
                for jl in j["JournalLines"]
            ],
        }
        for j in LEDGER
    ]  # fmt: skip
    north = [TrackingChoice(REGION.upper(), NORTH.upper())]
    report = reports.profit_and_loss(
        books(shouting), date(2025, 1, 1), date(2025, 6, 30), STAMP, tracking=north
    )
    assert line(report, "Net Profit") == ["500.00"]
    sheet = reports.balance_sheet(
        books(shouting),
        [date(2025, 5, 31)],
        STAMP,
        reports._tracking_filter(books(shouting), [NORTH]),
    )
    assert line(sheet, "Retained Earnings") == ["1000.00"]


def test_profit_and_loss_by_two_tracking_categories() -> None:
    service, advisory = _id("service"), _id("advisory")
    categories = [
        *TRACKING,
        {
            "TrackingCategoryID": service,
            "Name": "Service",
            "Status": "ACTIVE",
            "Options": [{"TrackingOptionID": advisory, "Name": "Advisory", "Status": "ACTIVE"}],
        },
    ]

    def tagged(*pairs: tuple[str, str]) -> list[dict]:
        return [
            {"TrackingCategoryID": c, "TrackingOptionID": o, "Name": "", "Option": ""}
            for c, o in pairs
        ]

    ledger = [
        journal(1, date(2025, 5, 1), (AR, 100), (SALES, -100)),
        journal(2, date(2025, 5, 2), (AR, 50), (SALES, -50)),
        journal(3, date(2025, 5, 3), (AR, 10), (SALES, -10)),
    ]
    for j, tracking in zip(
        ledger,
        [tagged((REGION, NORTH), (service, advisory)), tagged((REGION, SOUTH), (service, advisory)),
         tagged((REGION, NORTH))],
        strict=True,
    ):  # fmt: skip
        j["JournalLines"][1]["TrackingCategories"] = tracking
    both = Books.of(ledger, ACCOUNTS, ORGANISATION, categories)
    split = valid(
        reports.profit_and_loss(
            both,
            date(2025, 5, 1),
            date(2025, 5, 31),
            STAMP,
            tracking=[TrackingChoice(REGION), TrackingChoice(service)],
        )
    )
    assert header(split) == [
        "", "North, Advisory", "North, Unassigned", "South, Advisory", "South, Unassigned",
        "Unassigned, Advisory", "Unassigned, Unassigned", "Total",
    ]  # fmt: skip
    assert line(split, "Sales") == ["100.00", "10.00", "50.00", "0.00", "0.00", "0.00", "160.00"]
    advisory_only = valid(
        reports.profit_and_loss(
            both,
            date(2025, 5, 1),
            date(2025, 5, 31),
            STAMP,
            tracking=[TrackingChoice(REGION), TrackingChoice(service, advisory)],
        )
    )
    # the second option narrows every column, the Total included
    assert header(advisory_only) == [
        "",
        "North, Advisory",
        "South, Advisory",
        "Unassigned, Advisory",
        "Total",
    ]
    assert line(advisory_only, "Sales") == ["100.00", "50.00", "0.00", "150.00"]
