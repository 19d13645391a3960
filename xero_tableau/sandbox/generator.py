"""Deterministic synthetic books for the sandbox: a consulting firm, "Meridian Advisory", run as one
Xero organisation per country.

Every record uses only fields and enum values Xero returns and is internally consistent (line sums,
payments, credits). The same config always yields the same IDs, amounts and dates, and no
``UpdatedDateUTC`` is in the future. ``invoice_lines`` is the exact number of invoice lines per
tenant; everything else scales with it. No dict or list is ever shared between two records.
"""

import bisect
import gc
import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from xero_tableau.sandbox.advances import cash_side
from xero_tableau.sandbox.dataset import (
    SandboxDataset,
    TenantData,
    date_string,
    day_ms,
    ms_date,
    parse_ms_date,
)
from xero_tableau.sandbox.ledger import ledger_of

_DAY = 86_400_000  # milliseconds in a day
_PAD = 90  # days of calendar before history starts: set-up of accounts and early contacts
_FUTURE = 150  # days of calendar after as_of: due and delivery dates can fall there

_EXCLUSIVE, _INCLUSIVE, _NO_TAX = 0, 1, 2
_LINE_AMOUNT_TYPES = ("Exclusive", "Inclusive", "NoTax")


@dataclass(frozen=True)
class GeneratorConfig:
    """What to generate. The same config always produces the same dataset."""

    seed: int = 7
    tenants: int = 2
    invoice_lines: int = 4000  # exact ACCREC + ACCPAY line count per tenant
    as_of: date | None = None  # last day of history; None: today (UTC), up to the current instant
    history_days: int = 540


# --- the organisations -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Tax:
    """One tax rate: the TaxType code lines carry and its rate in basis points."""

    type: str
    name: str
    rate_bp: int
    report: str  # ReportTaxType


@dataclass(frozen=True)
class _Profile:
    """A country edition of the firm: everything that differs between NZ, UK and AU books."""

    key: str
    legal_name: str
    currency: str
    country: str
    timezone: str
    version: str
    tax_label: str
    sales: _Tax
    purchases: _Tax
    zero_rated: _Tax  # exported services
    exempt: _Tax  # insurance and other exempt purchases
    no_tax: _Tax
    fy_end: tuple[int, int]  # (day, month)
    tax_basis: str
    tax_period: str
    registration: str
    tax_number: str
    bank: str
    tld: str
    pension: str
    places: tuple[str, ...]
    routes: tuple[str, ...]
    foreign: tuple[tuple[str, float], ...]  # (currency, units per 1 base unit)


_PROFILES = (
    _Profile(
        key="NZ",
        legal_name="Meridian Advisory Limited",
        currency="NZD",
        country="NZ",
        timezone="NEWZEALANDSTANDARDTIME",
        version="NZ",
        tax_label="GST",
        sales=_Tax("OUTPUT2", "15% GST on Income", 1500, "OUTPUT"),
        purchases=_Tax("INPUT2", "15% GST on Expenses", 1500, "INPUT"),
        zero_rated=_Tax("ZERORATED", "Zero Rated", 0, "ZERORATEDOUTPUT"),
        exempt=_Tax("NONE", "No GST", 0, "NONE"),
        no_tax=_Tax("NONE", "No GST", 0, "NONE"),
        fy_end=(31, 3),
        tax_basis="INVOICE",
        tax_period="2MONTHLY",
        registration="9429041873215",
        tax_number="112-834-906",
        bank="Kowhai Bank",
        tld="co.nz",
        pension="KiwiSaver Employer Contributions",
        places=("Tasman", "Kauri", "Rimu", "Waitemata", "Aoraki", "Pohutukawa", "Totara", "Kea"),
        routes=("AKL-WLG", "AKL-CHC", "WLG-CHC", "AKL-ZQN", "WLG-DUD", "CHC-NSN"),
        foreign=(("USD", 0.61), ("AUD", 0.92), ("GBP", 0.48), ("EUR", 0.56)),
    ),
    _Profile(
        key="UK",
        legal_name="Meridian Advisory Ltd",
        currency="GBP",
        country="GB",
        timezone="GMTSTANDARDTIME",
        version="UK",
        tax_label="VAT",
        sales=_Tax("OUTPUT2", "20% (VAT on Income)", 2000, "OUTPUT"),
        purchases=_Tax("INPUT2", "20% (VAT on Expenses)", 2000, "INPUT"),
        zero_rated=_Tax("ZERORATEDOUTPUT", "Zero Rated Income", 0, "ZERORATEDOUTPUT"),
        exempt=_Tax("EXEMPTINPUT", "Exempt Expenses", 0, "EXEMPTINPUT"),
        no_tax=_Tax("NONE", "No VAT", 0, "NONE"),
        fy_end=(31, 3),
        tax_basis="ACCRUAL",
        tax_period="QUARTERLY1",
        registration="09876543",
        tax_number="GB284716503",
        bank="Albion Bank",
        tld="co.uk",
        pension="Employer Pension Contributions",
        places=("Thames", "Pennine", "Mercia", "Cotswold", "Severn", "Wessex", "Albion", "Tyne"),
        routes=("LHR-EDI", "LHR-MAN", "LGW-GLA", "LHR-BHD", "LCY-DUB", "BRS-NCL"),
        foreign=(("USD", 1.27), ("EUR", 1.17), ("AUD", 1.93), ("NZD", 2.09)),
    ),
    _Profile(
        key="AU",
        legal_name="Meridian Advisory Pty Ltd",
        currency="AUD",
        country="AU",
        timezone="AUSEASTERNSTANDARDTIME",
        version="AU",
        tax_label="GST",
        sales=_Tax("OUTPUT", "GST on Income", 1000, "OUTPUT"),
        purchases=_Tax("INPUT", "GST on Expenses", 1000, "INPUT"),
        zero_rated=_Tax("EXEMPTOUTPUT", "GST Free Income", 0, "EXEMPTOUTPUT"),
        exempt=_Tax("EXEMPTEXPENSES", "GST Free Expenses", 0, "EXEMPTEXPENSES"),
        no_tax=_Tax("BASEXCLUDED", "BAS Excluded", 0, "BASEXCLUDED"),
        fy_end=(30, 6),
        tax_basis="ACCRUALS",
        tax_period="QUARTERLY",
        registration="53 004 085 616",
        tax_number="53 004 085 616",
        bank="Wattle Bank",
        tld="com.au",
        pension="Superannuation",
        places=("Banksia", "Coral", "Murray", "Ironbark", "Jarrah", "Kakadu", "Wollemi", "Eyre"),
        routes=("SYD-MEL", "SYD-BNE", "MEL-PER", "MEL-ADL", "BNE-CNS", "SYD-CBR"),
        foreign=(("USD", 0.66), ("NZD", 1.09), ("GBP", 0.52), ("EUR", 0.61)),
    ),
)

_CURRENCY_NAMES = {
    "NZD": "New Zealand Dollar",
    "GBP": "British Pound",
    "AUD": "Australian Dollar",
    "USD": "United States Dollar",
    "EUR": "Euro",
}

_CLASS_OF_TYPE = {
    "BANK": "ASSET",
    "CURRENT": "ASSET",
    "FIXED": "ASSET",
    "CURRLIAB": "LIABILITY",
    "EQUITY": "EQUITY",
    "REVENUE": "REVENUE",
    "DIRECTCOSTS": "EXPENSE",
    "OVERHEADS": "EXPENSE",
    "EXPENSE": "EXPENSE",
    "DEPRECIATN": "EXPENSE",
}

# (code, name, type, tax role, reporting code, system account, shown in expense claims, status);
# "{tax}" and "{pension}" are filled from the profile.
_CHART: tuple[tuple[str, str, str, str, str, str, bool, str], ...] = (
    ("090", "Business Bank Account", "BANK", "no_tax", "ASS.CUR.CAS.BAN", "", False, "ACTIVE"),
    ("091", "Business Savings Account", "BANK", "no_tax", "ASS.CUR.CAS.BAN", "", False, "ACTIVE"),
    ("200", "Advisory Revenue", "REVENUE", "sales", "REV.TRA.SER", "", False, "ACTIVE"),
    ("210", "Implementation Revenue", "REVENUE", "sales", "REV.TRA.SER", "", False, "ACTIVE"),
    ("220", "Training Revenue", "REVENUE", "sales", "REV.TRA.SER", "", False, "ACTIVE"),
    ("260", "Other Revenue", "REVENUE", "sales", "REV.OTH", "", False, "ACTIVE"),
    ("270", "Interest Income", "REVENUE", "no_tax", "REV.INV.INT", "", False, "ACTIVE"),
    ("310", "Subcontractors", "DIRECTCOSTS", "purchases", "EXP.COS", "", False, "ACTIVE"),
    ("400", "Advertising", "OVERHEADS", "purchases", "EXP.ADV", "", True, "ACTIVE"),
    ("404", "Bank Fees", "OVERHEADS", "no_tax", "EXP.BAN", "", False, "ACTIVE"),
    ("412", "Consulting & Accounting", "OVERHEADS", "purchases", "EXP.PRO", "", True, "ACTIVE"),
    ("416", "Depreciation", "DEPRECIATN", "no_tax", "EXP.DEP", "", False, "ACTIVE"),
    ("420", "Entertainment", "OVERHEADS", "purchases", "EXP.ENT", "", True, "ACTIVE"),
    ("425", "Freight & Courier", "OVERHEADS", "purchases", "EXP.FRE", "", True, "ARCHIVED"),
    ("429", "General Expenses", "OVERHEADS", "purchases", "EXP.GEN", "", True, "ACTIVE"),
    ("433", "Insurance", "OVERHEADS", "exempt", "EXP.INS", "", False, "ACTIVE"),
    ("453", "Office Expenses", "OVERHEADS", "purchases", "EXP.OFF", "", True, "ACTIVE"),
    ("461", "Printing & Stationery", "OVERHEADS", "purchases", "EXP.PRI", "", True, "ACTIVE"),
    (
        "463",
        "IT Software and Subscriptions",
        "OVERHEADS",
        "purchases",
        "EXP.COM",
        "",
        True,
        "ACTIVE",
    ),
    ("469", "Rent", "OVERHEADS", "purchases", "EXP.OCC.REN", "", False, "ACTIVE"),
    ("477", "Wages and Salaries", "OVERHEADS", "no_tax", "EXP.EMP.WAG", "", False, "ACTIVE"),
    ("478", "{pension}", "OVERHEADS", "no_tax", "EXP.EMP.SUP", "", False, "ACTIVE"),
    ("489", "Telephone & Internet", "OVERHEADS", "purchases", "EXP.COM.TEL", "", True, "ACTIVE"),
    ("493", "Travel - National", "OVERHEADS", "purchases", "EXP.TRA.NAT", "", True, "ACTIVE"),
    ("494", "Travel - International", "EXPENSE", "no_tax", "EXP.TRA.INT", "", True, "ACTIVE"),
    (
        "610",
        "Accounts Receivable",
        "CURRENT",
        "no_tax",
        "ASS.CUR.REC.TRA",
        "DEBTORS",
        False,
        "ACTIVE",
    ),
    ("620", "Prepayments", "CURRENT", "no_tax", "ASS.CUR.REC.PRE", "", False, "ACTIVE"),
    ("710", "Office Equipment", "FIXED", "purchases", "ASS.NCA.FIX.OWN", "", False, "ACTIVE"),
    (
        "711",
        "Less Accumulated Depreciation on Office Equipment",
        "FIXED",
        "no_tax",
        "ASS.NCA.FIX.OWN.ACC",
        "",
        False,
        "ACTIVE",
    ),
    (
        "800",
        "Accounts Payable",
        "CURRLIAB",
        "no_tax",
        "LIA.CUR.PAY.TRA",
        "CREDITORS",
        False,
        "ACTIVE",
    ),
    (
        "814",
        "Wages Payable - Payroll",
        "CURRLIAB",
        "no_tax",
        "LIA.CUR.PAY.EMP",
        "",
        False,
        "ACTIVE",
    ),
    ("820", "{tax}", "CURRLIAB", "no_tax", "LIA.CUR.TAX.GST", "GST", False, "ACTIVE"),
    ("826", "Accruals", "CURRLIAB", "no_tax", "LIA.CUR.PAY.ACC", "", False, "ACTIVE"),
    (
        "960",
        "Retained Earnings",
        "EQUITY",
        "no_tax",
        "EQU.RET",
        "RETAINEDEARNINGS",
        False,
        "ACTIVE",
    ),
    ("970", "Owner A Funds Introduced", "EQUITY", "no_tax", "EQU.OWN.CON", "", False, "ACTIVE"),
)

# --- wording -------------------------------------------------------------------------------------

_NAME_WORDS = (
    "Summit", "Horizon", "Pinnacle", "Evergreen", "Northstar", "Keystone", "Granite", "Beacon",
    "Atlas", "Vantage", "Crest", "Meadow", "Harbour", "Silverline", "Bluewater", "Redwood",
    "Coastal", "Highfield", "Lakeside", "Riverbend", "Stonebridge", "Westbury", "Eastgate",
    "Ashford", "Brightwater", "Clearview", "Foxglove", "Greenway", "Hawthorn", "Juniper",
    "Kingfisher", "Larch", "Maple", "Oakridge", "Pioneer", "Quarry", "Rosewood", "Sterling",
    "Thornbury", "Unity", "Valley", "Willow", "Yarrow", "Zenith", "Copperleaf", "Driftwood",
    "Fernhill", "Goldcrest", "Ironwood", "Lighthouse", "Marlin", "Nimbus", "Orchard", "Parkside",
)  # fmt: skip
_INDUSTRIES = (
    "Logistics", "Health", "Engineering", "Foods", "Energy", "Retail", "Capital", "Telecom",
    "Construction", "Education", "Agritech", "Software", "Insurance", "Property", "Manufacturing",
    "Tourism", "Media", "Pharma", "Transport", "Dairy", "Wines", "Water", "Resources", "Analytics",
    "Holdings", "Freight", "Utilities", "Fisheries", "Aviation", "Housing",
)  # fmt: skip
_FOREIGN_SUFFIX = {"USD": "Inc", "AUD": "Pty Ltd", "EUR": "GmbH", "GBP": "plc", "NZD": "Limited"}
_FIRST_NAMES = (
    "Aroha", "Ben", "Chloe", "Daniel", "Emma", "Finn", "Grace", "Hemi", "Isla", "Jack", "Kate",
    "Liam", "Mia", "Noah", "Olivia", "Priya", "Quinn", "Ruby", "Sam", "Tane", "Uma", "Victor",
    "Wiremu", "Xavier", "Yasmin", "Zoe", "Amir", "Bella", "Callum", "Dev", "Ella", "Fraser",
)  # fmt: skip
_SURNAMES = (
    "Anderson", "Brown", "Chen", "Davies", "Evans", "Fletcher", "Green", "Harris", "Ito", "Jones",
    "Kumar", "Lee", "Mitchell", "Nguyen", "O'Brien", "Patel", "Quinlan", "Robinson", "Singh",
    "Taylor", "Walker", "Wilson", "Young", "Ngata", "Parata", "Campbell", "Murray", "Stewart",
    "Reid", "Scott", "Clarke", "Hughes",
)  # fmt: skip

_SALE_TEXT = {
    "200": (
        "Strategy workshop facilitation", "Board advisory retainer", "Financial due diligence",
        "Operating model review", "Market entry analysis", "Cost reduction diagnostic",
        "Governance review", "Investment case preparation", "Pricing strategy advice",
        "Risk and controls assessment",
    ),
    "210": (
        "ERP implementation - configuration", "Data migration services", "Process automation build",
        "System integration testing", "Go-live support", "Reporting dashboard build",
        "Finance system upgrade", "Change management support",
    ),
    "220": (
        "Leadership programme - workshop day", "Finance for non-finance managers",
        "Project management fundamentals", "Data literacy course", "Board effectiveness session",
        "Change leadership masterclass",
    ),
    "260": (
        "Travel disbursements recharged", "Report printing and binding", "Venue hire recovery",
        "Third-party licence recharge", "Expenses recovery",
    ),
}  # fmt: skip
_SALE_RATES = {  # unit amounts in cents; even, so half quantities stay exact
    "200": (19500, 21000, 22500, 24000, 26000, 28500, 31000),
    "210": (16500, 18000, 19500, 21000),
    "220": (145000, 165000, 185000, 220000, 260000),
}
_CREDIT_TEXT = {
    "ACCRECCREDIT": (
        "Fee adjustment - agreed discount", "Service credit - delayed deliverable",
        "Refund of unused training places", "Write-down of overrun hours",
    ),
    "ACCPAYCREDIT": (
        "Supplier credit - billing error", "Refund - cancelled booking",
        "Credit for unused licences", "Volume rebate",
    ),
}  # fmt: skip


@dataclass(frozen=True)
class _Kind:
    """A kind of supplier: what its bills look like."""

    key: str
    word: str  # used in generated supplier names
    accounts: tuple[str, ...]
    texts: tuple[str, ...]
    units: tuple[int, ...]  # unit amounts in cents (even)
    max_qty: int  # quantity in halves when hourly, else whole units
    hourly: bool
    tax: str  # tax role
    count_weight: float  # share of suppliers of this kind
    bill_weight: float  # how often each supplier of this kind bills
    tracked: float  # chance a bill line carries tracking


_KINDS = (
    _Kind(
        "subcontractor", "Consulting", ("310",),
        ("Subcontract consulting services", "Specialist tax review", "Project management support",
         "Data migration contractor", "Business analyst services", "Technical architect services"),
        (8500, 9500, 11000, 12500, 14000, 16000, 17500), 120, True, "purchases", 0.38, 1.0, 0.8,
    ),
    _Kind(
        "software", "Software", ("463",),
        ("Monthly subscription - practice management", "Cloud hosting", "Collaboration suite seats",
         "Design software licences", "Survey platform plan", "Password manager seats"),
        (900, 1250, 1900, 2900, 4500, 7900, 12000), 25, False, "purchases", 0.15, 1.4, 0.2,
    ),
    _Kind(
        "travel", "Travel", ("493", "494"),
        ("Return flights", "Hotel accommodation", "Rental car", "Airport transfers"),
        (12000, 18500, 26000, 42000, 65000, 98000), 3, False, "purchases", 0.1, 1.5, 0.6,
    ),
    _Kind(
        "rent", "Property", ("469",), ("Office rent",),
        (480000, 650000, 820000), 1, False, "purchases", 0.02, 2.0, 0.3,
    ),
    _Kind(
        "professional", "Legal", ("412",),
        ("Legal advice - contract review", "Annual accounts preparation", "Tax compliance advice",
         "Employment law advice"),
        (45000, 90000, 150000, 240000), 2, False, "purchases", 0.08, 0.6, 0.1,
    ),
    _Kind(
        "advertising", "Media", ("400",),
        ("Online advertising campaign", "Conference sponsorship", "Industry magazine advert",
         "Event photography"),
        (30000, 75000, 150000, 320000), 2, False, "purchases", 0.07, 0.6, 0.5,
    ),
    _Kind(
        "telecom", "Telecom", ("489",),
        ("Mobile plan", "Fibre broadband", "Conference call service"),
        (4500, 8900, 15000, 29000), 12, False, "purchases", 0.05, 1.0, 0.0,
    ),
    _Kind(
        "insurance", "Insurance", ("433",),
        ("Professional indemnity premium", "Public liability premium", "Cyber insurance premium"),
        (120000, 240000, 380000), 1, False, "exempt", 0.03, 0.4, 0.0,
    ),
    _Kind(
        "office", "Supplies", ("453", "461"),
        ("Office supplies", "Printer toner", "Kitchen supplies", "Stationery order",
         "Cleaning services"),
        (1850, 3400, 6500, 12000, 24000), 10, False, "purchases", 0.12, 0.8, 0.1,
    ),
)  # fmt: skip
_KIND = {kind.key: kind for kind in _KINDS}
_SHORT_CODE_CHARS = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghjkmnpqrstuvwxyz23456789"
_CARD_KINDS = ("software", "travel", "office", "telecom", "advertising")  # paid by card


# --- small fast helpers --------------------------------------------------------------------------


def _table(weighted: Sequence[tuple[object, float]], size: int = 200) -> list:
    """A lookup list where each value fills a share of slots proportional to its weight, so a
    weighted pick in a hot loop is one ``random()`` and one index."""
    total = sum(weight for _, weight in weighted)
    out: list = []
    for value, weight in weighted:
        out.extend([value] * max(1, round(size * weight / total)))
    return out


def _status(draw: float, table: Sequence[tuple[float, str]]) -> str:
    """The status whose cumulative-probability band ``draw`` falls in."""
    return next((status for bound, status in table if draw < bound), table[-1][1])


def _tax_of(amount: int, rate_bp: int, lat: int) -> int:
    """Tax in cents on a line of ``amount`` cents, rounded half up per line as Xero does."""
    if lat == _EXCLUSIVE:
        return (amount * rate_bp + 5000) // 10000
    # inclusive: amount * rate / (1 + rate), in integers
    return (amount * rate_bp * 2 + 10000 + rate_bp) // (2 * (10000 + rate_bp))


def _totals(lat: int, line_sum: int, tax_sum: int) -> tuple[int, int]:
    """(SubTotal, Total) in cents: inclusive line amounts already contain their tax."""
    if lat == _INCLUSIVE:
        return line_sum - tax_sum, line_sum
    return line_sum, line_sum + tax_sum


class _Calendar:
    """Per-day lookup tables, so hot loops index lists instead of doing date arithmetic.

    Day ``i`` is ``base + i days``; history runs from index ``first`` to ``last`` (as_of)."""

    def __init__(self, as_of: date, history_days: int, now_ms: int | None) -> None:
        self.first = _PAD
        self.last = _PAD + history_days - 1
        base = as_of - timedelta(days=self.last)
        days = [base + timedelta(days=i) for i in range(self.last + 1 + _FUTURE)]
        self.base_ms = day_ms(base)
        self.ms = [self.base_ms + i * _DAY for i in range(len(days))]
        self.msdate = [ms_date(ms) for ms in self.ms]
        self.string = [date_string(day) for day in days]
        self.iso = [day.isoformat() for day in days]
        self.weekday = [day.weekday() for day in days]
        self.month = [day.year * 12 + day.month - 1 for day in days]  # month ordinal
        self.label = [f"{day:%b %Y}" for day in days]
        # instants on as_of fall in its first `last_span` ms: the whole day, or up to "now" when
        # as_of is today, since Xero never serves an UpdatedDateUTC in the future
        last_ms = self.ms[self.last]
        self.last_span = _DAY if now_ms is None else max(1, min(_DAY, now_ms - last_ms + 1))

    def stamp(self, ms: int) -> tuple[str, str]:
        """``UpdatedDateUTC`` and its ``UpdatedDateUTCString`` (same as ``utc_string``)."""
        day, rem = divmod(ms - self.base_ms, _DAY)
        sec = rem // 1000
        clock = f"{sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}"
        return f"/Date({ms}+0000)/", f"{self.iso[day]}T{clock}Z"


@dataclass(slots=True)
class _Party:
    """A contact as the generator sees it: identity plus behaviour (terms, payment habit)."""

    id: str
    name: str
    currency: str
    kind: str = ""  # supplier kind; "" for customers
    region: int = 0  # index into the Region options (customers)
    terms: int = 20  # days from invoice date to due date
    pace: float = 1.0  # multiple of terms the customer takes to pay
    prefix: str = ""  # supplier's document-number prefix
    docs: int = 0  # supplier documents issued so far
    unit: int = 0  # fixed unit amount (rent)
    archived: bool = False


# --- the builder ---------------------------------------------------------------------------------


class _TenantBuilder:
    """Builds one organisation's books into a ``TenantData``."""

    def __init__(
        self, config: GeneratorConfig, index: int, profile: _Profile, cal: _Calendar
    ) -> None:
        self.rng = random.Random(f"xero-tableau/{config.seed}/{index}")
        # Over- and prepayments draw from their own stream, so adding them left every record
        # drawn from ``rng`` as it was (only the invoices they are allocated to change).
        self.credit_rng = random.Random(f"xero-tableau/{config.seed}/{index}/prepay")
        self.rnd = self.rng.random
        self.cal = cal
        self.profile = profile
        self.lines_target = config.invoice_lines
        self.revenue: dict[int, int] = {}  # month ordinal -> sales in base cents, for payroll
        self.qty = [half / 2 for half in range(0, 241)]  # Quantity floats, shared
        suffix = f" {index // len(_PROFILES) + 1}" if index >= len(_PROFILES) else ""
        name = f"Meridian Advisory ({profile.key}){suffix}"
        self.data = TenantData(tenant_id=self.uid(), name=name, organisation={})
        self.taxes = {
            "sales": profile.sales,
            "purchases": profile.purchases,
            "zero_rated": profile.zero_rated,
            "exempt": profile.exempt,
            "no_tax": profile.no_tax,
        }
        self.fx_phase = {code: self.rnd() * math.tau for code, _ in profile.foreign}
        self.fx_base = dict(profile.foreign)

    # ids, instants and money

    def uid(self) -> str:
        """A version-4 UUID string from the tenant's RNG (equal to ``uuid.UUID(int=...,
        version=4)``), built by hand because it runs millions of times."""
        bits = (self.rng.getrandbits(128) & ~(0xF000 << 64 | 0xC000 << 48)) | (
            0x4000 << 64 | 0x8000 << 48
        )
        h = f"{bits:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def instant(self, day: int) -> int:
        """A random instant (ms) on ``day``, clamped to as_of so nothing is in the future."""
        cal = self.cal
        if day >= cal.last:
            return cal.ms[cal.last] + int(self.rnd() * cal.last_span)
        return cal.ms[day] + int(self.rnd() * _DAY)

    def touched(self, day: int) -> int:
        """The day of a later edit between ``day`` and as_of, linearly more likely towards the
        present (the minimum of two uniforms), as real edits are."""
        last = self.cal.last
        return last - int((last - min(day, last)) * min(self.rnd(), self.rnd()))

    def fx(self, currency: str, day: int) -> float:
        """Xero's CurrencyRate for ``currency`` on ``day``: units of it per unit of base, 6 dp."""
        if currency == self.profile.currency:
            return 1.0
        drift = 1 + 0.05 * math.sin(day / 53 + self.fx_phase[currency])
        return round(self.fx_base[currency] * drift * (1 + 0.006 * (self.rnd() - 0.5)), 6)

    def sample_days(self, count: int) -> list[int]:
        """``count`` sorted history days: weekdays busier than weekends and the business growing,
        so recent days carry more records but most days carry some."""
        cal = self.cal
        span = cal.last - cal.first + 1
        days = range(cal.first, cal.last + 1)
        weights = [
            (0.2 if cal.weekday[d] >= 5 else 1.0) * (1 + 0.8 * (d - cal.first) / span) for d in days
        ]
        return sorted(self.rng.choices(days, weights=weights, k=count))

    # settings: organisation, accounts, tracking, tax rates, currencies

    def organisation(self) -> None:
        p = self.profile
        code = "".join(self.rng.choice(_SHORT_CODE_CHARS) for _ in range(5))
        self.data.short_code = f"!{code}"
        self.data.organisation = {
            "OrganisationID": self.data.tenant_id,
            "Name": self.data.name,
            "LegalName": p.legal_name,
            "PaysTax": True,
            "Version": p.version,
            "OrganisationType": "COMPANY",
            "BaseCurrency": p.currency,
            "CountryCode": p.country,
            "IsDemoCompany": False,
            "OrganisationStatus": "ACTIVE",
            "RegistrationNumber": p.registration,
            "TaxNumber": p.tax_number,
            "FinancialYearEndDay": p.fy_end[0],
            "FinancialYearEndMonth": p.fy_end[1],
            "SalesTaxBasis": p.tax_basis,
            "SalesTaxPeriod": p.tax_period,
            "DefaultSalesTax": "Tax Exclusive",
            "DefaultPurchasesTax": "Tax Inclusive",
            "CreatedDateUTC": ms_date(self.instant(0)),
            "Timezone": p.timezone,
            "OrganisationEntityType": "COMPANY",
            "ShortCode": self.data.short_code,
            "Class": "PREMIUM",
            "Edition": "BUSINESS",
            "LineOfBusiness": "Management consulting",
        }

    def accounts(self) -> None:
        p = self.profile
        self.account: dict[str, tuple[str, str]] = {}  # code -> (AccountID, Name)
        for code, name, type_, role, reporting, system, claims, status in _CHART:
            name = name.format(tax=p.tax_label, pension=p.pension)
            account_id = self.uid()
            self.account[code] = (account_id, name)
            made = self.instant(int(self.rnd() * 10))
            record = {
                "AccountID": account_id,
                "Code": code,
                "Name": name,
                "Status": status,
                "Type": type_,
                "TaxType": self.taxes[role].type,
                "Class": _CLASS_OF_TYPE[type_],
                "EnablePaymentsToAccount": False,
                "ShowInExpenseClaims": claims,
                "ReportingCode": reporting,
                "HasAttachments": False,
                "AddToWatchlist": False,
                "UpdatedDateUTC": ms_date(made if status == "ACTIVE" else self.instant(_PAD + 30)),
            }
            if type_ == "BANK":
                record["BankAccountNumber"] = f"{self.rng.randrange(10**11, 10**12)}"
                record["BankAccountType"] = "BANK"
                record["CurrencyCode"] = p.currency
            if system:
                record["SystemAccount"] = system
            self.data.put("Accounts", record)

    def tracking(self) -> None:
        """Region (with one option archived a third of the way through history) and Service Line.

        Options are kept as (category id, category name, option id, option name) tuples from
        which every line builds its own tracking dicts."""
        self.archive_day = self.cal.first + (self.cal.last - self.cal.first) // 3
        categories = (
            ("Region", ("North", "South", "International", "Central")),
            ("Service Line", ("Advisory", "Implementation", "Training")),
        )
        built: list[list[tuple[str, str, str, str]]] = []
        for name, options in categories:
            category_id = self.uid()
            opts = [(category_id, name, self.uid(), option) for option in options]
            built.append(opts)
            records = []
            for opt in sorted(opts, key=lambda o: o[3]):
                archived = opt[3] == "Central"
                records.append(
                    {
                        "TrackingOptionID": opt[2],
                        "Name": opt[3],
                        "Status": "ARCHIVED" if archived else "ACTIVE",
                        "IsDeleted": False,
                        "IsArchived": archived,
                        "IsActive": not archived,
                    }
                )
            record = {
                "TrackingCategoryID": category_id,
                "Name": name,
                "Status": "ACTIVE",
                "Options": records,
            }
            self.data.put("TrackingCategories", record)
        self.regions, services = built
        # revenue account -> Service Line option; Other Revenue carries none
        self.service_of = {"200": services[0], "210": services[1], "220": services[2]}
        self.services = services

    def tax_rates(self) -> None:
        seen = set()
        for role, tax in self.taxes.items():
            if tax.type in seen:
                continue
            seen.add(tax.type)
            rate = tax.rate_bp / 100
            sales_side = role in ("sales", "zero_rated")
            buy_side = role in ("purchases", "exempt")
            self.data.put(
                "TaxRates",
                {
                    "Name": tax.name,
                    "TaxType": tax.type,
                    "ReportTaxType": tax.report,
                    "CanApplyToAssets": not sales_side,
                    "CanApplyToEquity": role == "no_tax",
                    "CanApplyToExpenses": not sales_side,
                    "CanApplyToLiabilities": role == "no_tax",
                    "CanApplyToRevenue": not buy_side,
                    "DisplayTaxRate": rate,
                    "EffectiveRate": rate,
                    "Status": "ACTIVE",
                    "TaxComponents": [
                        {
                            "Name": self.profile.tax_label,
                            "Rate": rate,
                            "IsCompound": False,
                            "IsNonRecoverable": False,
                        }
                    ],
                },
            )

    def currencies(self) -> None:
        for code in sorted([self.profile.currency, *self.fx_base]):
            self.data.put("Currencies", {"Code": code, "Description": _CURRENCY_NAMES[code]})

    # contacts

    def contacts(self) -> None:
        """Clients (about one per 20 invoice lines, capped) and suppliers of each kind, a few
        archived; archived contacts only trade in the first half of history."""
        rng, rnd, p = self.rng, self.rnd, self.profile
        lines = self.lines_target
        n_customers = min(1200, max(12, lines // 20))
        n_suppliers = min(400, max(len(_KINDS) + 3, lines // 50))
        words = (*p.places, *_NAME_WORDS)
        combos = rng.sample(range(len(words) * len(_INDUSTRIES)), n_customers)
        n_foreign = max(2, n_customers // 6)  # with foreign suppliers, ~10% of invoices
        self.customers: list[_Party] = []
        for i, combo in enumerate(combos):
            word, industry = words[combo // len(_INDUSTRIES)], _INDUSTRIES[combo % len(_INDUSTRIES)]
            if i < n_foreign:
                currency = p.foreign[i % len(p.foreign)][0]
                region, suffix = 2, _FOREIGN_SUFFIX[currency]
            else:
                currency, region = p.currency, (0, 0, 0, 1, 1, 1, 3)[int(rnd() * 7)]
                suffix = ("Ltd", "Limited", "Group", "Trust", "Partners")[int(rnd() * 5)]
            self.customers.append(
                _Party(
                    id=self.uid(),
                    name=f"{word} {industry} {suffix}",
                    currency=currency,
                    region=region,
                    terms=(7, 14, 20, 20, 30, 30)[int(rnd() * 6)],
                    pace=(0.6, 0.9, 1.0, 1.1, 1.4, 2.2)[int(rnd() * 6)],
                    archived=i >= n_foreign and (i - n_foreign) % 25 == 12,
                )
            )
        kinds = _table([(kind.key, kind.count_weight) for kind in _KINDS])
        taken = {customer.name for customer in self.customers}
        fresh_names: dict[str, Iterator[str]] = {}
        self.suppliers: list[_Party] = []
        for i in range(n_suppliers):
            kind = _KINDS[i].key if i < len(_KINDS) else kinds[int(rnd() * len(kinds))]
            if kind not in fresh_names:
                if kind == "subcontractor":
                    pool = [f"{f} {s} Consulting" for f in _FIRST_NAMES for s in _SURNAMES]
                else:
                    word = _KIND[kind].word
                    pool = [f"{w} {word} {x}" for w in words for x in ("Ltd", "Limited", "Co")]
                rng.shuffle(pool)
                fresh_names[kind] = iter(pool)
            name = next(name for name in fresh_names[kind] if name not in taken)
            taken.add(name)
            foreign = kind in ("software", "subcontractor") and rnd() < 0.12
            units = _KIND[kind].units
            self.suppliers.append(
                _Party(
                    id=self.uid(),
                    name=name,
                    currency=p.foreign[0][0] if foreign else p.currency,
                    kind=kind,
                    terms=(14, 20, 30)[int(rnd() * 3)],
                    prefix="".join(ch for ch in name.upper() if ch.isalpha())[:3],
                    docs=int(rnd() * 5000) + 1000,
                    unit=units[int(rnd() * len(units))],
                    archived=i >= len(_KINDS) and (i - len(_KINDS)) % 20 == 7,
                )
            )
        self.card_suppliers = [
            s for s in self.suppliers if s.kind in _CARD_KINDS and not s.archived
        ]
        self.bank_contact = _Party(id=self.uid(), name=p.bank, currency=p.currency)
        mid = (self.cal.first + self.cal.last) // 2
        self.mid_day = mid
        for party in (*self.customers, *self.suppliers, self.bank_contact):
            self.contact_record(party, mid)
        self.customer_pick = self.pickers(self.customers, lambda c: 0.3 + rnd())
        self.supplier_pick = self.pickers(
            self.suppliers, lambda s: _KIND[s.kind].bill_weight * (0.5 + rnd())
        )

    def contact_record(self, party: _Party, mid: int) -> None:
        rnd = self.rnd
        created = self.instant(int(rnd() * mid))
        updated = self.instant(self.touched(mid)) if party.archived else created
        if not party.archived and rnd() < 0.3:
            updated = max(created, self.instant(self.touched(mid)))
        first = _FIRST_NAMES[int(rnd() * len(_FIRST_NAMES))]
        last = _SURNAMES[int(rnd() * len(_SURNAMES))]
        slug = "".join(ch for ch in party.name.lower() if ch.isalnum())[:24]
        mailbox = "accounts" if party.kind else first.lower()
        record = {
            "ContactID": party.id,
            "ContactStatus": "ARCHIVED" if party.archived else "ACTIVE",
            "Name": party.name,
            "FirstName": first,
            "LastName": last,
            "EmailAddress": f"{mailbox}@{slug}.{self.profile.tld}",
            "IsSupplier": bool(party.kind) or party is self.bank_contact,
            "IsCustomer": not party.kind and party is not self.bank_contact,
            "HasAttachments": False,
            "HasValidationErrors": False,
            "UpdatedDateUTC": ms_date(updated),
        }
        if party.currency != self.profile.currency:
            record["DefaultCurrency"] = party.currency
        self.data.put("Contacts", record)

    def pickers(
        self, parties: list[_Party], weight: Callable[[_Party], float]
    ) -> tuple[Callable[[], _Party], Callable[[], _Party]]:
        """Weighted pickers for the first half of history (everyone) and the second (archived
        contacts no longer trade)."""
        weights = [weight(party) for party in parties]

        def picker(active_only: bool) -> Callable[[], _Party]:
            pool = [
                (p, w)
                for p, w in zip(parties, weights, strict=True)
                if not (active_only and p.archived)
            ]
            cum, total = [], 0.0
            for _, w in pool:
                total += w
                cum.append(total)
            members = [p for p, _ in pool]
            rnd, top = self.rnd, len(members) - 1

            def pick() -> _Party:
                return members[min(top, bisect.bisect(cum, rnd() * total))]

            return pick

        return picker(False), picker(True)

    # document pieces

    def track(self, opts: Sequence[tuple[str, str, str, str] | None]) -> list[dict]:
        """A fresh Tracking list for a line (never shared: the admin API edits lines in place)."""
        return [
            {"Name": o[1], "Option": o[3], "TrackingCategoryID": o[0], "TrackingOptionID": o[2]}
            for o in opts
            if o is not None
        ]

    def region_of(self, party: _Party, day: int) -> tuple[str, str, str, str]:
        """The customer's Region option; Central was archived, later work is tracked to North."""
        if party.region == 3 and day >= self.archive_day:
            return self.regions[0]
        return self.regions[party.region]

    def line(
        self,
        text: str,
        code: str,
        halves: int,
        unit: int,
        tax: _Tax,
        lat: int,
        tracking: list[dict],
    ) -> tuple[dict, int, int]:
        """One LineItem with its LineAmount and TaxAmount in cents (``halves`` = Quantity x 2)."""
        amount = halves * unit // 2
        tax_cents = _tax_of(amount, tax.rate_bp, lat) if tax.rate_bp else 0
        account_id = self.account[code][0]
        return (
            {
                "LineItemID": self.uid(),
                "Description": text,
                "Quantity": self.qty[halves],
                "UnitAmount": unit / 100,
                "AccountCode": code,
                "AccountID": account_id,
                "TaxType": tax.type,
                "TaxAmount": tax_cents / 100,
                "LineAmount": amount / 100,
                "Tracking": tracking,
            },
            amount,
            tax_cents,
        )

    def sale_lines(
        self, customer: _Party, day: int, count: int, tax: _Tax, lat: int
    ) -> tuple[list[dict], int, int]:
        """Client work: advisory and implementation by the hour, training by the day, the odd
        recharge; both tracking slots usually filled."""
        rnd = self.rnd
        region = self.region_of(customer, day)
        lines, line_sum, tax_sum = [], 0, 0
        for _ in range(count):
            code = _SALE_ACCOUNTS[int(rnd() * len(_SALE_ACCOUNTS))]
            texts = _SALE_TEXT[code]
            text = texts[int(rnd() * len(texts))]
            if code == "260":
                halves, unit = 2, 2500 + int(rnd() * 87500)
            elif code == "220":
                rates = _SALE_RATES[code]
                halves, unit = 1 + int(rnd() * 10), rates[int(rnd() * len(rates))]
            else:
                rates = _SALE_RATES[code]
                halves = 2 + int(rnd() * rnd() * (70 if code == "200" else 140))
                unit = rates[int(rnd() * len(rates))]
            fill = rnd()
            service = self.service_of.get(code)
            if fill < 0.85:
                tracking = self.track((region, service))
            elif fill < 0.9:
                tracking = self.track((region,))
            elif fill < 0.95:
                tracking = self.track((service,))
            else:
                tracking = []
            item, amount, tax_cents = self.line(text, code, halves, unit, tax, lat, tracking)
            lines.append(item)
            line_sum += amount
            tax_sum += tax_cents
        return lines, line_sum, tax_sum

    def bill_lines(
        self, supplier: _Party, day: int, count: int, lat: int
    ) -> tuple[list[dict], int, int]:
        """A supplier's lines: its kind fixes accounts, wording, amounts and tax."""
        rnd = self.rnd
        kind = _KIND[supplier.kind]
        foreign = supplier.currency != self.profile.currency
        lines, line_sum, tax_sum = [], 0, 0
        for _ in range(count):
            code = kind.accounts[int(rnd() * len(kind.accounts))]
            tax = self.taxes["no_tax" if foreign or lat == _NO_TAX or code == "494" else kind.tax]
            text = kind.texts[int(rnd() * len(kind.texts))]
            if kind.key == "rent":
                text = f"{text} - {self.cal.label[day]}"
            if kind.key == "travel":
                text = f"{text} {self.profile.routes[int(rnd() * len(self.profile.routes))]}"
            unit = supplier.unit if kind.key == "rent" else kind.units[int(rnd() * len(kind.units))]
            if kind.hourly:
                halves = 4 + int(rnd() * kind.max_qty)
            else:
                halves = 2 * (1 + int(rnd() * rnd() * kind.max_qty))
            tracking: list[dict] = []
            if rnd() < kind.tracked:
                region = self.regions[int(rnd() * 3)]
                service = self.services[int(rnd() * 3)] if kind.key == "subcontractor" else None
                tracking = self.track((region, service))
            item, amount, tax_cents = self.line(text, code, halves, unit, tax, lat, tracking)
            lines.append(item)
            line_sum += amount
            tax_sum += tax_cents
        return lines, line_sum, tax_sum

    def contact_stub(self, party: _Party) -> dict:
        return {"ContactID": party.id, "Name": party.name}

    # invoices, their payments and credit notes

    def invoices(self) -> None:
        """Exactly ``invoice_lines`` lines: 60% of invoices are sales (1-6 lines), the rest bills
        (1-3 lines), dated over history and numbered in date order."""
        rnd = self.rnd
        shells: list[tuple[bool, int]] = []
        remaining = self.lines_target
        while remaining > 0:
            sale = rnd() < 0.6
            pool = _SALE_LINE_COUNTS if sale else _BILL_LINE_COUNTS
            count = min(remaining, pool[int(rnd() * len(pool))])
            shells.append((sale, count))
            remaining -= count
        self.invoice_no = 0
        self.credit_no = 0
        self.open_credits = 0
        for (sale, count), day in zip(shells, self.sample_days(len(shells)), strict=True):
            if sale:
                self.sale(day, count)
            else:
                self.bill(day, count)
            if rnd() < 0.015:
                self.standalone_credit(day, sale)

    def sale(self, day: int, count: int) -> None:
        rnd, p = self.rnd, self.profile
        customer = self.customer_pick[day >= self.mid_day]()
        currency = customer.currency
        if currency != p.currency:
            lat, tax = _EXCLUSIVE, p.zero_rated
        else:
            draw = rnd()
            lat = _EXCLUSIVE if draw < 0.8 else _INCLUSIVE if draw < 0.92 else _NO_TAX
            tax = p.no_tax if lat == _NO_TAX else p.sales
        lines, line_sum, tax_sum = self.sale_lines(customer, day, count, tax, lat)
        self.invoice_no += 1
        number = f"INV-{self.invoice_no:05d}"
        reference = (
            f"PRJ-{1000 + int(rnd() * 9000)}"
            if rnd() < 0.6
            else f"PO {100000 + int(rnd() * 900000)}"
            if rnd() < 0.5
            else ""
        )
        self.invoice(
            "ACCREC", customer, day, number, reference, lines, lat, line_sum, tax_sum, currency
        )

    def bill(self, day: int, count: int) -> None:
        rnd = self.rnd
        supplier = self.supplier_pick[day >= self.mid_day]()
        draw = rnd()
        lat = _EXCLUSIVE if draw < 0.7 else _INCLUSIVE if draw < 0.95 else _NO_TAX
        if supplier.currency != self.profile.currency:
            lat = _NO_TAX
        lines, line_sum, tax_sum = self.bill_lines(supplier, day, count, lat)
        supplier.docs += 1
        reference = f"{supplier.prefix}-{supplier.docs}"
        number = reference if rnd() < 0.7 else ""
        self.invoice(
            "ACCPAY",
            supplier,
            day,
            number,
            reference,
            lines,
            lat,
            line_sum,
            tax_sum,
            supplier.currency,
        )

    def invoice(
        self,
        type_: str,
        party: _Party,
        day: int,
        number: str,
        reference: str,
        lines: list[dict],
        lat: int,
        line_sum: int,
        tax_sum: int,
        currency: str,
    ) -> None:
        """Give the document a life: deleted drafts, voids, approvals, credits and payments, and
        an UpdatedDateUTC that is the latest of those events."""
        rnd, cal, last = self.rnd, self.cal, self.cal.last
        sale = type_ == "ACCREC"
        sub_total, total = _totals(lat, line_sum, tax_sum)
        rate = self.fx(currency, day)
        invoice_id = self.uid()
        due = day + party.terms
        created = self.instant(day + (0, 0, 0, 1, 2)[int(rnd() * 5)])
        updated = created
        payments: list[tuple[dict, dict]] = []
        credits: list[dict] = []
        paid = credited = 0
        paid_day = -1
        age = last - day
        draw = rnd()
        if draw < 0.02:
            status = "DELETED"
            updated = max(created, self.instant(day + 1 + int(rnd() * 14)))
        elif draw < 0.045:
            status = "VOIDED"
            updated = max(created, self.instant(day + 3 + int(rnd() * 60)))
        else:
            draw = rnd()
            draft = (0.1 if sale else 0.12) if age < 14 else 0.005
            submitted = (0.05 if sale else 0.08) if age < 21 else 0.003
            if draw < draft:
                status = "DRAFT"
            elif draw < draft + submitted:
                status = "SUBMITTED"
            else:
                status = "AUTHORISED"
                stub = {"InvoiceID": invoice_id, "InvoiceNumber": number}
                credit_day = day
                if rnd() < (0.03 if sale else 0.02) and day + 2 <= last:
                    credit_day = min(last, day + 2 + int(rnd() * 25))
                    credited, when = self.linked_credit(
                        type_, party, credit_day, lines[0], lat, currency, rate, stub, credits
                    )
                    updated = max(updated, when)
                for pay_day, amount in self.schedule(party, day, credit_day, total - credited):
                    when = self.payment(
                        type_, party, pay_day, amount, currency, reference, stub, payments
                    )
                    updated = max(updated, when)
                    paid += amount
                    paid_day = pay_day
                if paid + credited == total:
                    status = "PAID"
                if sale:
                    month = cal.month[day]
                    self.revenue[month] = self.revenue.get(month, 0) + round(sub_total / rate)
        if rnd() < 0.04:
            updated = max(updated, self.instant(self.touched(day)))
        updated_ms, updated_string = cal.stamp(updated)
        record = {
            "Type": type_,
            "InvoiceID": invoice_id,
            "InvoiceNumber": number,
            "Reference": reference,
            "Payments": [p for p, _ in payments],
            "CreditNotes": credits,
            "AmountDue": (total - paid - credited) / 100,
            "AmountPaid": paid / 100,
            "AmountCredited": credited / 100,
            "CurrencyRate": rate,
            "HasAttachments": False,
            "Contact": self.contact_stub(party),
            "DateString": cal.string[day],
            "Date": cal.msdate[day],
            "DueDateString": cal.string[due],
            "DueDate": cal.msdate[due],
            "Status": status,
            "LineAmountTypes": _LINE_AMOUNT_TYPES[lat],
            "LineItems": lines,
            "SubTotal": sub_total / 100,
            "TotalTax": tax_sum / 100,
            "Total": total / 100,
            "UpdatedDateUTC": updated_ms,
            "UpdatedDateUTCString": updated_string,
            "CurrencyCode": currency,
            "SentToContact": sale and status in ("AUTHORISED", "PAID", "VOIDED"),
        }
        if status == "PAID":
            record["FullyPaidOnDate"] = cal.msdate[max(paid_day, day)]
        self.data.put("Invoices", record)
        for _, payment in payments:
            self.data.put("Payments", payment)

    def schedule(self, party: _Party, day: int, after: int, owed: int) -> list[tuple[int, int]]:
        """(day, cents) instalments that settle ``owed``, dropping any after as_of. Clients pay
        at their own pace, some in two or three parts, a few stall or never pay; bills are paid
        around their due date."""
        rnd, last = self.rnd, self.cal.last
        if owed <= 0 or rnd() < (0.03 if not party.kind else 0.01):
            return []
        if party.kind:
            start = day + party.terms + int(rnd() * 7) - 3
        else:
            start = day + int(party.terms * party.pace * (0.7 + 0.6 * rnd()))
        start = max(start, after + 1, day + 1)
        parts = 1 if owed < 300 or rnd() >= (0.05 if party.kind else 0.12) else 2 + int(rnd() * 2)
        out = []
        pay_day, left = start, owed
        for part in range(parts, 0, -1):
            amount = left if part == 1 else max(1, int(left * (0.3 + 0.4 * rnd())))
            if pay_day > last:
                break
            out.append((pay_day, amount))
            left -= amount
            if part > 1 and rnd() < 0.2:
                break  # stalled: the rest is still owing
            pay_day += 7 + int(rnd() * 24)
        return out

    def payment(
        self,
        type_: str,
        party: _Party,
        day: int,
        amount: int,
        currency: str,
        reference: str,
        stub: dict,
        out: list[tuple[dict, dict]],
    ) -> int:
        """Record one AUTHORISED payment (sometimes after a DELETED mis-keyed attempt) into
        ``out`` as (invoice stub, Payment record); returns the invoice's latest event instant."""
        rnd, cal = self.rnd, self.cal
        rate = self.fx(currency, day)
        bank_id = self.account["090"][0]
        payment_type = "ACCRECPAYMENT" if type_ == "ACCREC" else "ACCPAYPAYMENT"
        attempts = ("DELETED", "AUTHORISED") if rnd() < 0.02 else ("AUTHORISED",)
        latest = 0
        for status in attempts:
            payment_id = self.uid()
            when = self.instant(day + (0, 0, 1, 2)[int(rnd() * 4)])
            entered = when
            if status == "DELETED":
                when = max(when, self.instant(day + 1 + int(rnd() * 3)))
            updated_ms, updated_string = cal.stamp(when)
            record = {
                "PaymentID": payment_id,
                "Date": cal.msdate[day],
                "BankAmount": round(amount / rate) / 100,
                "Amount": amount / 100,
                "Reference": reference,
                "CurrencyRate": rate,
                "PaymentType": payment_type,
                "Status": status,
                "UpdatedDateUTC": updated_ms,
                "UpdatedDateUTCString": updated_string,
                "HasAccount": True,
                "IsReconciled": day < cal.last - 7 or rnd() < 0.5,
                "Account": {"AccountID": bank_id, "Code": "090"},
                "Invoice": {
                    "Type": type_,
                    "InvoiceID": stub["InvoiceID"],
                    "InvoiceNumber": stub["InvoiceNumber"],
                    "CurrencyCode": currency,
                    "Contact": self.contact_stub(party),
                },
            }
            if status == "AUTHORISED":
                summary = {
                    "PaymentID": payment_id,
                    "Date": cal.msdate[day],
                    "Amount": amount / 100,
                    "Reference": reference,
                    "CurrencyRate": rate,
                }
                out.append((summary, record))
            else:
                self.data.put("Payments", record)
            latest = max(latest, entered, when)
        return latest

    def credit_lines(
        self, type_: str, source: dict, lat: int, tax: _Tax, cents: int
    ) -> tuple[list[dict], int, int]:
        """A one-line credit of ``cents`` against ``source``'s account and tracking."""
        texts = _CREDIT_TEXT[type_]
        tracking = self.track(
            [
                (t["TrackingCategoryID"], t["Name"], t["TrackingOptionID"], t["Option"])
                for t in source["Tracking"]
            ]
        )
        text = texts[int(self.rnd() * len(texts))]
        item, amount, tax_cents = self.line(
            text, source["AccountCode"], 2, cents, tax, lat, tracking
        )
        return [item], amount, tax_cents

    def linked_credit(
        self,
        type_: str,
        party: _Party,
        day: int,
        source: dict,
        lat: int,
        currency: str,
        rate: float,
        invoice_stub: dict,
        credits: list[dict],
    ) -> tuple[int, int]:
        """A credit note for part of an invoice's first line, fully allocated to that invoice
        (so it is PAID with no RemainingCredit). Returns (credited cents, instant)."""
        rnd, cal = self.rnd, self.cal
        credit_type = "ACCRECCREDIT" if type_ == "ACCREC" else "ACCPAYCREDIT"
        tax = self.tax_named(source["TaxType"])
        cents = max(1, int(round(source["LineAmount"] * 100) * (0.1 + 0.4 * rnd())))
        lines, line_sum, tax_sum = self.credit_lines(credit_type, source, lat, tax, cents)
        sub_total, total = _totals(lat, line_sum, tax_sum)
        credit_id, number = self.uid(), self.credit_number(credit_type, party)
        when = self.instant(day)
        allocation = {
            "AllocationID": self.uid(),
            "Amount": total / 100,
            "Date": cal.msdate[day],
            "Invoice": dict(invoice_stub),
        }
        self.put_credit(
            credit_type,
            credit_id,
            number,
            party,
            day,
            "PAID",
            lines,
            lat,
            sub_total,
            tax_sum,
            total,
            0,
            currency,
            rate,
            when,
            [allocation],
        )
        credits.append(
            {
                "CreditNoteID": credit_id,
                "CreditNoteNumber": number,
                "AppliedAmount": total / 100,
                "Date": cal.msdate[day],
                "Total": total / 100,
            }
        )
        return total, when

    def standalone_credit(self, day: int, sale: bool) -> None:
        """A credit note not allocated to anything: open, draft, voided or deleted."""
        rnd, p = self.rnd, self.profile
        credit_type = "ACCRECCREDIT" if sale else "ACCPAYCREDIT"
        if sale:
            party = self.customer_pick[day >= self.mid_day]()
            tax = p.zero_rated if party.currency != p.currency else p.sales
            source, _, _ = self.sale_lines(party, day, 1, tax, _EXCLUSIVE)
        else:
            party = self.supplier_pick[day >= self.mid_day]()
            source, _, _ = self.bill_lines(party, day, 1, _EXCLUSIVE)
        tax = self.tax_named(source[0]["TaxType"])
        cents = max(100, int(round(source[0]["LineAmount"] * 100) * (0.05 + 0.3 * rnd())))
        lines, line_sum, tax_sum = self.credit_lines(credit_type, source[0], _EXCLUSIVE, tax, cents)
        sub_total, total = _totals(_EXCLUSIVE, line_sum, tax_sum)
        self.open_credits += 1
        status = _OPEN_CREDIT_STATUS[self.open_credits % len(_OPEN_CREDIT_STATUS)]
        when = self.instant(day + int(rnd() * 3))
        if status in ("VOIDED", "DELETED"):
            when = max(when, self.instant(day + 2 + int(rnd() * 30)))
        remaining = 0 if status in ("VOIDED", "DELETED") else total
        self.put_credit(
            credit_type,
            self.uid(),
            self.credit_number(credit_type, party),
            party,
            day,
            status,
            lines,
            _EXCLUSIVE,
            sub_total,
            tax_sum,
            total,
            remaining,
            party.currency,
            self.fx(party.currency, day),
            when,
            [],
        )

    def tax_named(self, tax_type: str) -> _Tax:
        return next(tax for tax in self.taxes.values() if tax.type == tax_type)

    def credit_number(self, credit_type: str, party: _Party) -> str:
        """CN-00001 for our own credit notes; suppliers' credits carry their own numbering."""
        if credit_type == "ACCRECCREDIT":
            self.credit_no += 1
            return f"CN-{self.credit_no:05d}"
        party.docs += 1
        return f"{party.prefix}-CR{party.docs}"

    def put_credit(
        self,
        credit_type: str,
        credit_id: str,
        number: str,
        party: _Party,
        day: int,
        status: str,
        lines: list[dict],
        lat: int,
        sub_total: int,
        tax_sum: int,
        total: int,
        remaining: int,
        currency: str,
        rate: float,
        when: int,
        allocations: list[dict],
    ) -> None:
        cal = self.cal
        updated_ms, updated_string = cal.stamp(when)
        record = {
            "CreditNoteID": credit_id,
            "CreditNoteNumber": number,
            "Payments": [],
            "CurrencyRate": rate,
            "Type": credit_type,
            "Reference": "",
            "RemainingCredit": remaining / 100,
            "Allocations": allocations,
            "HasAttachments": False,
            "Contact": self.contact_stub(party),
            "DateString": cal.string[day],
            "Date": cal.msdate[day],
            "Status": status,
            "LineAmountTypes": _LINE_AMOUNT_TYPES[lat],
            "LineItems": lines,
            "SubTotal": sub_total / 100,
            "TotalTax": tax_sum / 100,
            "Total": total / 100,
            "UpdatedDateUTC": updated_ms,
            "UpdatedDateUTCString": updated_string,
            "CurrencyCode": currency,
        }
        if status == "PAID":
            record["FullyPaidOnDate"] = cal.msdate[day]
        self.data.put("CreditNotes", record)

    # spend/receive money

    def bank_transactions(self) -> None:
        """Monthly bank fees and savings interest, plus card spending and sundry receipts: about
        one transaction per 20 invoice lines."""
        cal, rnd = self.cal, self.rnd
        planned: list[tuple[int, str]] = []
        for day in range(cal.first, cal.last + 1):
            if day + 1 > cal.last or cal.month[day + 1] != cal.month[day]:
                planned.append((day, "fee"))
                planned.append((day, "interest"))
        extra = max(0, max(24, self.lines_target // 20) - len(planned))
        kinds = _table([("card", 0.78), ("other_income", 0.22)])
        planned += [(day, kinds[int(rnd() * len(kinds))]) for day in self.sample_days(extra)]
        planned.sort(key=lambda item: item[0])
        for day, what in planned:
            self.bank_transaction(day, what)

    def bank_transaction(self, day: int, what: str) -> None:
        rnd, cal, p = self.rnd, self.cal, self.profile
        if what == "fee":
            type_, bank, party, lat = "SPEND", "090", self.bank_contact, _NO_TAX
            spec = [("Monthly account fee", "404", 1500 + int(rnd() * 4000), p.no_tax, None)]
        elif what == "interest":
            type_, bank, party, lat = "RECEIVE", "091", self.bank_contact, _NO_TAX
            spec = [("Interest earned", "270", 2000 + int(rnd() * 40000), p.no_tax, None)]
        elif what == "other_income":
            type_, bank, lat = "RECEIVE", "090", _INCLUSIVE
            party = self.customer_pick[day >= self.mid_day]()
            text = ("Conference speaking fee", "Panel honorarium", "Sublease of meeting room")[
                int(rnd() * 3)
            ]
            spec = [(text, "260", 20000 + int(rnd() * 180000), p.sales, self.regions[0])]
        else:
            type_, bank, lat = "SPEND", "090", _INCLUSIVE
            party = self.card_suppliers[int(rnd() * len(self.card_suppliers))]
            kind = _KIND[party.kind]
            spec = [
                (
                    kind.texts[int(rnd() * len(kind.texts))],
                    kind.accounts[0],
                    kind.units[int(rnd() * len(kind.units))] // 2 + int(rnd() * 5000),
                    self.taxes[kind.tax],
                    self.regions[int(rnd() * 3)] if rnd() < 0.4 else None,
                )
                for _ in range(1 + int(rnd() * rnd() * 3))
            ]
        lines, line_sum, tax_sum = [], 0, 0
        for text, code, cents, tax, region in spec:
            item, amount, tax_cents = self.line(
                text, code, 2, cents, tax, lat, self.track((region,))
            )
            lines.append(item)
            line_sum += amount
            tax_sum += tax_cents
        sub_total, total = _totals(lat, line_sum, tax_sum)
        draw = rnd()
        status = "AUTHORISED" if draw < 0.94 else "DELETED" if draw < 0.98 else "VOIDED"
        when = self.instant(day + (0, 0, 1, 3)[int(rnd() * 4)])
        if status != "AUTHORISED" or rnd() < 0.03:
            when = max(when, self.instant(self.touched(day)))
        account_id, account_name = self.account[bank]
        record = {
            "BankTransactionID": self.uid(),
            "BankAccount": {"AccountID": account_id, "Code": bank, "Name": account_name},
            "Type": type_,
            "Reference": "",
            "IsReconciled": status == "AUTHORISED" and (day < cal.last - 5 or rnd() < 0.5),
            "HasAttachments": False,
            "Contact": self.contact_stub(party),
            "DateString": cal.string[day],
            "Date": cal.msdate[day],
            "Status": status,
            "LineAmountTypes": _LINE_AMOUNT_TYPES[lat],
            "LineItems": lines,
            "SubTotal": sub_total / 100,
            "TotalTax": tax_sum / 100,
            "Total": total / 100,
            "UpdatedDateUTC": ms_date(when),
            "CurrencyCode": p.currency,
        }
        self.data.put("BankTransactions", record)

    # manual journals

    def manual_journals(self) -> None:
        """Month-end depreciation, payroll (sized from that month's revenue) and some accruals
        with their reversals, plus revenue reclassifications up to one per 500 invoice lines."""
        cal, rnd = self.cal, self.rnd
        depreciation = 85000 + int(rnd() * 60000)
        journals: list[tuple[int, str, list[tuple[str, str, int, tuple | None]]]] = []
        for day in range(cal.first, cal.last + 1):
            if day < cal.last and cal.month[day + 1] == cal.month[day]:
                continue
            label = cal.label[day]
            journals.append(
                (
                    day,
                    f"Depreciation - {label}",
                    [
                        ("Depreciation of office equipment", "416", depreciation, None),
                        ("Accumulated depreciation", "711", -depreciation, None),
                    ],
                )
            )
            revenue = self.revenue.get(cal.month[day], 0)
            wages = max(800000, int(revenue * (0.36 + 0.08 * rnd())))
            shares = (wages * 5 // 10, wages * 3 // 10)
            split = (*shares, wages - sum(shares))
            pension = wages * 3 // 100
            journals.append(
                (
                    day,
                    f"Payroll - {label}",
                    [
                        *(
                            ("Salaries", "477", part, service)
                            for part, service in zip(split, self.services, strict=True)
                        ),
                        ("Employer contributions", "478", pension, None),
                        ("Net wages and deductions payable", "814", -(wages + pension), None),
                    ],
                )
            )
            if rnd() < 0.5 and day + 1 <= cal.last:
                accrual = 100000 + int(rnd() * 900000)
                service = self.services[int(rnd() * 3)]
                lines = [
                    ("Accrued subcontractor costs", "310", accrual, service),
                    ("Accrued subcontractor costs", "826", -accrual, None),
                ]
                journals.append((day, f"Accrual - subcontractors {label}", lines))
                reversal = [(text, code, -amount, opt) for text, code, amount, opt in lines]
                journals.append((day + 1, f"Reversal: Accrual - subcontractors {label}", reversal))
        extra = max(0, self.lines_target // 500 - len(journals))
        for day in self.sample_days(extra):
            amount = 50000 + int(rnd() * 500000)
            source, target = ("200", "210") if rnd() < 0.5 else ("210", "220")
            journals.append(
                (
                    day,
                    "Reclassify revenue between service lines",
                    [
                        ("Reclassification", source, amount, self.service_of[source]),
                        ("Reclassification", target, -amount, self.service_of[target]),
                    ],
                )
            )
        journals.sort(key=lambda journal: journal[0])
        for day, narration, lines in journals:
            self.manual_journal(day, narration, lines)

    def manual_journal(
        self, day: int, narration: str, lines: list[tuple[str, str, int, tuple | None]]
    ) -> None:
        rnd, cal = self.rnd, self.cal
        draw = rnd()
        if cal.last - day < 20 and draw < 0.25:
            status = "DRAFT"
        else:
            status = "POSTED" if draw < 0.97 else "VOIDED" if draw < 0.99 else "DELETED"
        when = self.instant(day + int(rnd() * 4))
        if status in ("VOIDED", "DELETED") or rnd() < 0.03:
            when = max(when, self.instant(self.touched(day)))
        journal_lines = [
            {
                "Description": text,
                "LineAmount": amount / 100,
                "AccountCode": code,
                "AccountID": self.account[code][0],
                "TaxType": self.profile.no_tax.type,
                "TaxAmount": 0.0,
                "IsBlank": False,
                "Tracking": self.track((option,)),
            }
            for text, code, amount, option in lines
        ]
        self.data.put(
            "ManualJournals",
            {
                "ManualJournalID": self.uid(),
                "Narration": narration,
                "Date": cal.msdate[day],
                "Status": status,
                "LineAmountTypes": "NoTax",
                "JournalLines": journal_lines,
                "ShowOnCashBasisReports": True,
                "HasAttachments": False,
                "UpdatedDateUTC": ms_date(when),
            },
        )

    # purchase orders

    def purchase_orders(self) -> None:
        """One order per 100 invoice lines (at least a dozen) to subcontractors and suppliers of
        goods, in every status from DRAFT to BILLED."""
        rnd, cal, p = self.rnd, self.cal, self.profile
        buyers = [s for s in self.suppliers if s.kind in ("subcontractor", "office", "software")]
        for number, day in enumerate(self.sample_days(max(12, self.lines_target // 100)), 1):
            supplier = buyers[int(rnd() * len(buyers))]
            lat = _NO_TAX if supplier.currency != p.currency else _EXCLUSIVE
            lines, line_sum, tax_sum = self.bill_lines(supplier, day, 1 + int(rnd() * 3), lat)
            sub_total, total = _totals(lat, line_sum, tax_sum)
            status = _status(rnd(), _RECENT_PO_STATUS if cal.last - day < 30 else _PO_STATUS)
            when = self.instant(day + int(rnd() * 2))
            if status in ("BILLED", "DELETED"):
                when = max(when, self.instant(day + 5 + int(rnd() * 40)))
            delivery = day + 5 + int(rnd() * 35)
            self.data.put(
                "PurchaseOrders",
                {
                    "PurchaseOrderID": self.uid(),
                    "PurchaseOrderNumber": f"PO-{number:05d}",
                    "Reference": f"PRJ-{1000 + int(rnd() * 9000)}" if rnd() < 0.5 else "",
                    "Contact": self.contact_stub(supplier),
                    "DateString": cal.string[day],
                    "Date": cal.msdate[day],
                    "DeliveryDate": cal.msdate[delivery],
                    "AttentionTo": "Accounts",
                    "CurrencyCode": supplier.currency,
                    "CurrencyRate": self.fx(supplier.currency, day),
                    "Status": status,
                    "SentToContact": status in ("AUTHORISED", "BILLED"),
                    "LineAmountTypes": _LINE_AMOUNT_TYPES[lat],
                    "LineItems": lines,
                    "SubTotal": sub_total / 100,
                    "TotalTax": tax_sum / 100,
                    "Total": total / 100,
                    "HasAttachments": False,
                    "UpdatedDateUTC": ms_date(when),
                },
            )

    def build(self) -> TenantData:
        self.organisation()
        self.accounts()
        self.tracking()
        self.tax_rates()
        self.currencies()
        self.contacts()
        self.invoices()
        self.bank_transactions()
        self.manual_journals()
        self.purchase_orders()
        _AdvanceBuilder(self).build()
        _BooksBuilder(self).build()
        return self.data


# --- overpayments and prepayments ----------------------------------------------------------------


def _uuid4(bits: int) -> str:
    """A version-4 UUID string from 128 random bits (as ``_TenantBuilder.uid``)."""
    bits = (bits & ~(0xF000 << 64 | 0xC000 << 48)) | (0x4000 << 64 | 0x8000 << 48)
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _cents(value: float) -> int:
    """Money as the records carry it (a 2-dp float), in exact integer cents."""
    return int(Decimal(str(value)) * 100)


@dataclass
class _Advance:
    """One planned overpayment or prepayment before its record is built."""

    endpoint: str  # "Overpayments" or "Prepayments"
    receive: bool  # RECEIVE-* (from a client) or SPEND-* (to a supplier)
    party: _Party
    day: int
    total: int  # cents
    voided: bool = False
    # (invoice record, allocated cents, allocation day)
    allocations: list[tuple[dict, int, int]] = field(default_factory=list)


class _AdvanceBuilder:
    """Overpayments and prepayments of one organisation, and their allocations to invoices.

    About one overpayment and one or two prepayments a month (fewer in a small dataset: a few
    percent of the invoices). Clients overpay and pay deposits; the firm pays suppliers deposits
    and sometimes overpays a bill. Most are allocated, in full or in part, to open invoices of the
    same contact and currency (ACCREC for RECEIVE-*, ACCPAY for SPEND-*); an allocated invoice's
    AmountCredited, AmountDue, ``Overpayments``/``Prepayments`` list, status (PAID with
    FullyPaidOnDate once nothing is due) and UpdatedDateUTC follow, as in Xero. The rest keep
    their credit; every tenth one is voided (no allocations, RemainingCredit 0, as this sandbox
    does for voided credit notes).

    All randomness comes from the builder's ``credit_rng``, never from its main stream.
    """

    def __init__(self, books: _TenantBuilder) -> None:
        self.books = books
        self.cal = books.cal
        self.rng = books.credit_rng
        self.rnd = self.rng.random
        self.data = books.data
        # their bank transactions draw from a stream of their own too, so the over- and
        # prepayments themselves are the same as before Xero's cash side was generated
        self.bank_rng = random.Random(f"xero-tableau/{books.data.tenant_id}/advance-bank")

    def uid(self) -> str:
        return _uuid4(self.rng.getrandbits(128))

    def instant(self, day: int) -> int:
        """A random instant (ms) on ``day``, clamped to as_of (as ``_TenantBuilder.instant``)."""
        cal = self.cal
        if day >= cal.last:
            return cal.ms[cal.last] + int(self.rnd() * cal.last_span)
        return cal.ms[day] + int(self.rnd() * _DAY)

    def fx(self, currency: str, day: int) -> float:
        books = self.books
        if currency == books.profile.currency:
            return 1.0
        drift = 1 + 0.05 * math.sin(day / 53 + books.fx_phase[currency])
        return round(books.fx_base[currency] * drift * (1 + 0.006 * (self.rnd() - 0.5)), 6)

    def day_of(self, value: str) -> int:
        """The calendar index of a date-only ``/Date(...)/`` value."""
        return (parse_ms_date(value) - self.cal.base_ms) // _DAY

    # planning

    def build(self) -> None:
        cal, books = self.cal, self.books
        months = len(set(cal.month[cal.first : cal.last + 1]))
        invoices = self.data.count("Invoices")
        counts = {
            "Overpayments": max(2, min(months, invoices // 40)),
            "Prepayments": max(3, min(months * 3 // 2, invoices // 25)),
        }
        # open invoices by type, in date order: what an advance can be allocated to
        self.open: dict[str, list[dict]] = {"ACCREC": [], "ACCPAY": []}
        for invoice in self.data.collections["Invoices"].values():
            if invoice["Status"] == "AUTHORISED" and invoice["AmountDue"] > 0:
                self.open[invoice["Type"]].append(invoice)
        self.parties = {p.id: p for p in (*books.customers, *books.suppliers)}
        plans: list[_Advance] = []
        for endpoint, count in counts.items():
            for i in range(count):
                receive = self.rnd() < (0.75 if endpoint == "Prepayments" else 0.7)
                plans.append(self.plan(endpoint, receive, voided=i % 10 == 3))
        plans.sort(key=lambda plan: plan.day)  # stable: ties keep their planning order
        self.numbers = 0
        for plan in plans:
            self.put(plan)

    def plan(self, endpoint: str, receive: bool, voided: bool) -> _Advance:
        rnd, cal = self.rnd, self.cal
        prepay = endpoint == "Prepayments"
        pool = self.open["ACCREC" if receive else "ACCPAY"]
        if not voided and pool and rnd() < 0.7:
            first = pool.pop(int(rnd() * len(pool)))
            party = self.parties[first["Contact"]["ContactID"]]
            targets = [first]
            if rnd() < 0.3:
                more = [
                    i
                    for i in pool
                    if i["Contact"]["ContactID"] == party.id
                    and i["CurrencyCode"] == first["CurrencyCode"]
                ]
                if more:
                    targets.append(more[0])
                    pool.remove(more[0])
            earliest = min(self.day_of(i["Date"]) for i in targets)
            # a deposit comes before the invoice it pays; an overpayment of an earlier bill or
            # invoice may come shortly before or after the invoice that takes up the excess
            lead = 2 + int(rnd() * 40) if prepay else int(rnd() * 60) - 15
            day = min(cal.last, max(cal.first, earliest - lead))
            plan = _Advance(endpoint, receive, party, day, 0)
            for invoice in targets:
                due = _cents(invoice["AmountDue"])
                amount = due if rnd() < 0.6 else max(1, int(due * (0.2 + 0.7 * rnd())))
                start = max(day, self.day_of(invoice["Date"]))
                when = min(cal.last, start + int(rnd() * 10))
                plan.allocations.append((invoice, amount, when))
            extra = 0 if rnd() < 0.5 else 500 + int(rnd() * rnd() * 60000)
            plan.total = sum(amount for _, amount, _ in plan.allocations) + extra
            return plan
        party = self.unallocated_party(receive)
        span = cal.last - cal.first
        day = cal.last - int(span * rnd() * (rnd() if not voided else 1.0))  # recent-leaning
        if prepay:
            total = (50000 if receive else 20000) + int(rnd() * 400000)
        else:
            total = 500 + int(rnd() * rnd() * 80000)
        return _Advance(endpoint, receive, party, day, total, voided=voided)

    def unallocated_party(self, receive: bool) -> _Party:
        books, rnd = self.books, self.rnd
        parties = books.customers if receive else books.suppliers
        active = [p for p in parties if not p.archived]
        foreign = [p for p in active if p.currency != books.profile.currency]
        pool = foreign if foreign and rnd() < 0.3 else active
        return pool[int(rnd() * len(pool))]

    # records

    def lines(self, plan: _Advance) -> tuple[list[dict], int, int, int]:
        """(LineItems, LineAmountTypes, tax cents, SubTotal cents) of ``plan``.

        An overpayment is one untaxed line on Accounts Receivable (or Payable), as Xero books it;
        a prepayment is one or two tax-inclusive lines on the income or expense accounts the
        deposit is for, taxed as the sale or purchase will be."""
        books, rnd, p = self.books, self.rnd, self.books.profile
        party = plan.party
        foreign = party.currency != p.currency
        if plan.endpoint == "Overpayments":
            code = "610" if plan.receive else "800"
            text = "Overpayment received" if plan.receive else "Overpayment to supplier"
            line = self.line(text, code, plan.total, p.no_tax, _NO_TAX, [])
            return [line], _NO_TAX, 0, plan.total
        if plan.receive:
            tax = p.zero_rated if foreign else p.sales
            code = ("220", "200", "210")[int(rnd() * 3)]
            texts = _SALE_TEXT[code]
            text = f"Deposit - {texts[int(rnd() * len(texts))]}"
            tracking_opts: tuple = (books.region_of(party, plan.day), books.service_of[code])
        else:
            kind = _KIND[party.kind]
            tax = books.taxes["no_tax" if foreign else kind.tax]
            code = kind.accounts[0]
            text = f"Deposit - {kind.texts[int(rnd() * len(kind.texts))]}"
            tracking_opts = (books.regions[int(rnd() * 3)],) if rnd() < 0.5 else ()
        lat = _NO_TAX if tax.rate_bp == 0 and not plan.receive else _INCLUSIVE
        parts = [plan.total]
        if plan.total >= 2000 and rnd() < 0.3:
            first = plan.total * (3 + int(rnd() * 5)) // 10
            parts = [first, plan.total - first]
        lines, tax_sum = [], 0
        for cents in parts:
            line = self.line(text, code, cents, tax, lat, books.track(tracking_opts))
            lines.append(line)
            tax_sum += _cents(line["TaxAmount"])
        sub_total, _ = _totals(lat, plan.total, tax_sum)
        return lines, lat, tax_sum, sub_total

    def line(
        self, text: str, code: str, cents: int, tax: _Tax, lat: int, tracking: list[dict]
    ) -> dict:
        """A one-unit LineItem of ``cents`` (tax-inclusive when ``lat`` is Inclusive)."""
        tax_cents = _tax_of(cents, tax.rate_bp, lat) if tax.rate_bp and lat != _NO_TAX else 0
        return {
            "LineItemID": self.uid(),
            "Description": text,
            "Quantity": 1.0,
            "UnitAmount": cents / 100,
            "AccountCode": code,
            "AccountID": self.books.account[code][0],
            "TaxType": tax.type,
            "TaxAmount": tax_cents / 100,
            "LineAmount": cents / 100,
            "Tracking": tracking,
        }

    def put(self, plan: _Advance) -> None:
        cal, rnd, books = self.cal, self.rnd, self.books
        prepay = plan.endpoint == "Prepayments"
        kind = "PREPAYMENT" if prepay else "OVERPAYMENT"
        record_id = self.uid()
        lines, lat, tax_sum, sub_total = self.lines(plan)
        currency = plan.party.currency
        rate = self.fx(currency, plan.day)
        updated = self.instant(plan.day + (0, 0, 1)[int(rnd() * 3)])
        entered = updated  # when the money was recorded: its bank transaction's UpdatedDateUTC
        allocations: list[dict] = []
        for invoice, amount, day in plan.allocations:
            when = self.instant(day)
            allocations.append(
                {
                    "AllocationID": self.uid(),
                    "Amount": amount / 100,
                    "Date": cal.msdate[day],
                    "Invoice": {
                        "InvoiceID": invoice["InvoiceID"],
                        "InvoiceNumber": invoice["InvoiceNumber"],
                    },
                }
            )
            self.allocate(invoice, plan, record_id, amount, day, when)
            updated = max(updated, when)
        remaining = plan.total - sum(amount for _, amount, _ in plan.allocations)
        status = "PAID" if remaining == 0 else "AUTHORISED"
        if plan.voided:
            status, remaining = "VOIDED", 0
            later = plan.day + 1 + int(rnd() * 30)
            updated = max(updated, self.instant(min(cal.last, later)))
            entered = updated  # voiding changes the bank transaction too
        if prepay and plan.receive:
            self.numbers += 1
            reference = f"PP-{self.numbers:05d}"
        elif prepay:
            reference = f"{plan.party.prefix}-DEP{1000 + int(rnd() * 9000)}"
        else:
            reference = f"Remittance {100000 + int(rnd() * 900000)}" if rnd() < 0.7 else ""
        updated_ms, updated_string = cal.stamp(updated)
        record: dict = {
            f"{kind.title()}ID": record_id,
            "Type": f"{'RECEIVE' if plan.receive else 'SPEND'}-{kind}",
            "Reference": reference,
        }
        if prepay and plan.receive:
            record["InvoiceNumber"] = reference
        record.update(
            {
                "RemainingCredit": remaining / 100,
                "Allocations": allocations,
                "Payments": [],
                "HasAttachments": False,
                "Contact": books.contact_stub(plan.party),
                "DateString": cal.string[plan.day],
                "Date": cal.msdate[plan.day],
                "Status": status,
                "LineAmountTypes": _LINE_AMOUNT_TYPES[lat],
                "LineItems": lines,
                "SubTotal": sub_total / 100,
                "TotalTax": tax_sum / 100,
                "Total": plan.total / 100,
                "UpdatedDateUTC": updated_ms,
                "UpdatedDateUTCString": updated_string,
                "CurrencyCode": currency,
                "CurrencyRate": rate,
            }
        )
        self.bank_transaction(plan, record, entered)
        self.data.put(plan.endpoint, record)

    def bank_transaction(self, plan: _Advance, record: dict, entered: int) -> None:
        """The advance's cash side in /BankTransactions (``advances.cash_side``): through the
        business bank account, where the firm's payments go, reconciled as its other bank
        transactions are."""
        cal, rnd = self.cal, self.bank_rng.random
        bits = self.bank_rng.getrandbits(128)
        account_id, name = self.books.account["090"]
        self.data.put(
            "BankTransactions",
            cash_side(
                plan.endpoint,
                record,
                bank_transaction_id=_uuid4(bits),
                bank_account={"AccountID": account_id, "Code": "090", "Name": name},
                is_reconciled=not plan.voided and (plan.day < cal.last - 5 or rnd() < 0.5),
                updated=ms_date(entered),
            ),
        )

    def allocate(
        self, invoice: dict, plan: _Advance, record_id: str, amount: int, day: int, when: int
    ) -> None:
        """Apply ``amount`` cents of the advance to ``invoice`` as Xero does: AmountCredited up,
        AmountDue down, the advance listed on the invoice, PAID once nothing is due, and a new
        UpdatedDateUTC no earlier than the allocation."""
        cal = self.cal
        due = _cents(invoice["AmountDue"]) - amount
        applied = {
            "AppliedAmount": amount / 100,
            "Date": cal.msdate[day],
            "Total": plan.total / 100,
        }
        id_key = "PrepaymentID" if plan.endpoint == "Prepayments" else "OverpaymentID"
        rebuilt: dict = {}
        for key, value in invoice.items():
            if key in ("Prepayments", "Overpayments"):
                continue
            rebuilt[key] = value
            if key == "CreditNotes":  # where Xero lists them: after the credit notes
                rebuilt["Prepayments"] = invoice.get("Prepayments", [])
                rebuilt["Overpayments"] = invoice.get("Overpayments", [])
        rebuilt[plan.endpoint].append({id_key: record_id, **applied})
        rebuilt["AmountDue"] = due / 100
        rebuilt["AmountCredited"] = (_cents(invoice["AmountCredited"]) + amount) / 100
        if due == 0:
            rebuilt["Status"] = "PAID"
            settled = [self.day_of(p["Date"]) for p in invoice["Payments"]]
            settled += [self.day_of(c["Date"]) for k in _APPLIED for c in rebuilt.get(k, ())]
            rebuilt["FullyPaidOnDate"] = cal.msdate[max(settled)]
        updated = max(parse_ms_date(invoice["UpdatedDateUTC"]), when)
        rebuilt["UpdatedDateUTC"], rebuilt["UpdatedDateUTCString"] = cal.stamp(updated)
        invoice.clear()
        invoice.update(rebuilt)  # the same dict: the open-invoice pools still point at it
        self.data.put("Invoices", invoice)


_APPLIED = ("CreditNotes", "Prepayments", "Overpayments")  # invoice lists of applied credit


# --- what the general ledger holds without a document --------------------------------------------

# (code, name, type, tax role, reporting code, system account): accounts the ledger posts to that
# no generated document uses directly
_LEDGER_CHART = (
    ("499", "Realised Currency Gains", "EXPENSE", "no_tax", "EXP.FOR", "REALISEDCURRENCYGAIN"),
    ("720", "Computer Equipment", "FIXED", "purchases", "ASS.NCA.FIX.OWN", ""),
    (
        "721",
        "Less Accumulated Depreciation on Computer Equipment",
        "FIXED",
        "no_tax",
        "ASS.NCA.FIX.OWN.ACC",
        "",
    ),
)


class _BooksBuilder:
    """The organisation's general-ledger side that no document explains: the realised currency
    gains system account and the computer equipment in the fixed-asset register (added to the
    chart), the conversion balances on the organisation's first day, and the register's monthly
    depreciation (Dr Depreciation, Cr accumulated depreciation) until the equipment is written
    off. Kept in ``TenantData.system_journals`` for ``ledger.py`` to post.

    All randomness comes from a stream of its own, so every other record is the same as without
    it."""

    def __init__(self, books: _TenantBuilder) -> None:
        self.books = books
        self.cal = books.cal
        self.rng = random.Random(f"xero-tableau/{books.data.tenant_id}/books")
        self.rnd = self.rng.random

    def instant(self, day: int) -> int:
        cal = self.cal
        if day >= cal.last:
            return cal.ms[cal.last] + int(self.rnd() * cal.last_span)
        return cal.ms[day] + int(self.rnd() * _DAY)

    def build(self) -> None:
        books, cal, rnd = self.books, self.cal, self.rnd
        for code, name, type_, role, reporting, system in _LEDGER_CHART:
            account_id = _uuid4(self.rng.getrandbits(128))
            books.account[code] = (account_id, name)
            record = {
                "AccountID": account_id,
                "Code": code,
                "Name": name,
                "Status": "ACTIVE",
                "Type": type_,
                "TaxType": books.taxes[role].type,
                "Class": _CLASS_OF_TYPE[type_],
                "EnablePaymentsToAccount": False,
                "ShowInExpenseClaims": False,
                "ReportingCode": reporting,
                "HasAttachments": False,
                "AddToWatchlist": False,
                "UpdatedDateUTC": ms_date(self.instant(int(rnd() * 10))),
            }
            if system:
                record["SystemAccount"] = system
            books.data.put("Accounts", record)
        computers = 2_400_000 + int(rnd() * 3_600_000) // 100 * 100  # cost in cents
        monthly = computers // 36
        used = monthly * (6 + int(rnd() * 12))  # depreciated before the conversion
        office = 6_000_000 + int(rnd() * 3_000_000)
        opening = [
            ("090", 5_000_000 + int(rnd() * 10_000_000), "Opening balance"),
            ("091", 10_000_000 + int(rnd() * 20_000_000), "Opening balance"),
            ("710", office, "Opening balance"),
            ("711", -(office // 5), "Opening balance"),
            ("720", computers, "Opening balance"),
            ("721", -used, "Opening balance"),
            ("970", -10_000_000, "Opening balance"),
        ]
        opening.append(("960", -sum(amount for _, amount, _ in opening), "Opening balance"))
        first = parse_ms_date(books.data.organisation["CreatedDateUTC"])
        journals = [
            {
                "JournalDate": cal.msdate[0],
                "CreatedDateUTC": ms_date(first + 2 * 3_600_000),
                "Reference": "Conversion balances",
                "Lines": opening,
            }
        ]
        written_off = used
        for day in range(0, cal.last - 1):
            if cal.month[day + 1] == cal.month[day] or written_off >= computers:
                continue  # not a month end, or nothing left to depreciate
            amount = min(monthly, computers - written_off)
            written_off += amount
            text = f"Depreciation - Computer Equipment - {cal.label[day]}"
            journals.append(
                {
                    "JournalDate": cal.msdate[day],
                    "CreatedDateUTC": ms_date(self.instant(day + 2)),
                    "Reference": text,
                    "Lines": [
                        ("416", amount, "Depreciation of computer equipment"),
                        ("721", -amount, "Accumulated depreciation"),
                    ],
                }
            )
        books.data.system_journals = journals


# unallocated credit notes take these in turn, so even a small dataset has each status
_OPEN_CREDIT_STATUS = (
    "AUTHORISED", "VOIDED", "DRAFT", "AUTHORISED", "DELETED", "AUTHORISED", "SUBMITTED",
    "AUTHORISED", "VOIDED", "AUTHORISED",
)  # fmt: skip
# cumulative probability -> status
_RECENT_PO_STATUS = (
    (0.25, "DRAFT"), (0.5, "SUBMITTED"), (0.9, "AUTHORISED"), (0.95, "BILLED"), (1.0, "DELETED"),
)  # fmt: skip
_PO_STATUS = (
    (0.72, "BILLED"), (0.82, "AUTHORISED"), (0.92, "DELETED"), (0.96, "DRAFT"), (1.0, "SUBMITTED"),
)  # fmt: skip
_SALE_ACCOUNTS = _table([("200", 0.42), ("210", 0.33), ("220", 0.17), ("260", 0.08)])
_SALE_LINE_COUNTS = _table([(1, 25), (2, 25), (3, 20), (4, 15), (5, 10), (6, 5)])
_BILL_LINE_COUNTS = _table([(1, 60), (2, 28), (3, 12)])


def generate(config: GeneratorConfig) -> SandboxDataset:
    """Build the sandbox's tenants from ``config``; identical configs give identical data."""
    if config.tenants < 1 or config.history_days < 1 or config.invoice_lines < 0:
        raise ValueError(f"invalid generator config: {config}")
    if config.as_of is None:
        now = datetime.now(UTC)
        cal = _Calendar(now.date(), config.history_days, int(now.timestamp() * 1000))
    else:
        cal = _Calendar(config.as_of, config.history_days, None)
    dataset = SandboxDataset()
    # Millions of small acyclic dicts: generational GC passes would only re-scan them.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for index in range(config.tenants):
            profile = _PROFILES[index % len(_PROFILES)]
            tenant = _TenantBuilder(config, index, profile, cal).build()
            ledger_of(tenant)  # from here on every write posts to the general ledger
            dataset.add(tenant)
    finally:
        if was_enabled:
            gc.enable()
    return dataset
