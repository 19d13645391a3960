"""Xero date parsing and time zones: the edge cases other connectors got wrong.

tap-xero needed fixes for ``/Date(0+0000)/`` on voided invoices, negative (pre-1970) dates and
truncated times, and shifted instants by the annotated offset; Airbyte zeroed time parts. Each test
below pins one of those down, plus the organisation-local business date around midnight and DST.
"""

from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from xero_tableau.xero.dates import (
    XERO_TIMEZONES,
    local_date,
    parse_xero_date,
    parse_xero_datetime,
    xero_timezone_to_iana,
)
from xero_tableau_tests import xero_spec

SPEC_DIR = Path(__file__).resolve().parents[2] / "shared" / "reference" / "xero-openapi"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- MS-JSON dates --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # The spec's Invoice example: UpdatedDateUTC and its UpdatedDateUTCString twin.
        ("/Date(1551981568133+0000)/", utc(2019, 3, 7, 17, 59, 28, 133000)),
        ("/Date(1551981568133)/", utc(2019, 3, 7, 17, 59, 28, 133000)),
        # The offset annotates; the milliseconds are already the UTC instant.
        ("/Date(1551981568133+1300)/", utc(2019, 3, 7, 17, 59, 28, 133000)),
        ("/Date(1551981568133-0800)/", utc(2019, 3, 7, 17, 59, 28, 133000)),
        ("/Date(1551981568133+13)/", utc(2019, 3, 7, 17, 59, 28, 133000)),
        # Voided invoices carry /Date(0+0000)/ (tap-xero #62/#64).
        ("/Date(0+0000)/", utc(1970, 1, 1)),
        ("/Date(0)/", utc(1970, 1, 1)),
        # Pre-1970 (tap-xero #68/#74): a real DueDate from a Xero org.
        ("/Date(-80006400000+0000)/", utc(1967, 6, 20)),
        # Negative and not a whole second: must floor towards the past, not truncate to zero.
        ("/Date(-1)/", utc(1969, 12, 31, 23, 59, 59, 999000)),
        ("/Date(-1500+0000)/", utc(1969, 12, 31, 23, 59, 58, 500000)),
        # .NET DateTime.MinValue, which Xero uses for "no date" in places.
        ("/Date(-62135596800000)/", utc(1, 1, 1)),
    ],
)
def test_ms_dates(text: str, expected: datetime) -> None:
    parsed = parse_xero_datetime(text)
    assert parsed == expected
    assert parsed is not None and parsed.utcoffset() == timedelta(0)


def test_milliseconds_are_kept_to_the_last_digit() -> None:
    assert parse_xero_datetime("/Date(1518685950941+0000)/") == utc(2018, 2, 15, 9, 12, 30, 941000)
    assert parse_xero_datetime("/Date(1518685950001)/") == utc(2018, 2, 15, 9, 12, 30, 1000)
    # The largest instant Python can hold, to the millisecond (integer maths, no float seconds).
    last = parse_xero_datetime("/Date(253402300799999)/")
    assert last == utc(9999, 12, 31, 23, 59, 59, 999000)


def test_time_part_is_not_zeroed() -> None:
    # Airbyte's ParseDate dropped the time of every datetime (#51007).
    parsed = parse_xero_datetime("/Date(1541176592690+0000)/")
    assert parsed is not None
    assert (parsed.hour, parsed.minute, parsed.second) == (16, 36, 32)


def test_result_is_aware_utc() -> None:
    for text in ("/Date(1439434356790)/", "2019-03-07T00:00:00", "2020-02-06T12:17:43.202-08:00"):
        parsed = parse_xero_datetime(text)
        assert parsed is not None
        assert parsed.tzinfo is not None
        assert parsed.utcoffset() == timedelta(0), text


# --- ISO strings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2019-03-07T00:00:00", utc(2019, 3, 7)),  # DateString: no zone means UTC
        ("2019-03-07T17:59:28Z", utc(2019, 3, 7, 17, 59, 28)),  # UpdatedDateUTCString
        ("2019-12-07T18:46:19.5165400", utc(2019, 12, 7, 18, 46, 19, 516540)),  # /connections
        ("2024-06-21T01:15:39.902", utc(2024, 6, 21, 1, 15, 39, 902000)),  # webhook eventDateUtc
        ("2020-02-06T12:17:43.202-08:00", utc(2020, 2, 6, 20, 17, 43, 202000)),
        ("2019-03-07T10:00:00+13:00", utc(2019, 3, 6, 21)),
        ("2019-03-07T10:00:00+1300", utc(2019, 3, 6, 21)),
        ("2019-12-07T18:46:19.5165400+00:00", utc(2019, 12, 7, 18, 46, 19, 516540)),
        ("2019-03-07", utc(2019, 3, 7)),
    ],
)
def test_iso_strings(text: str, expected: datetime) -> None:
    assert parse_xero_datetime(text) == expected


# --- garbage --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "garbage",
        "",
        "/Date()/",
        "/Date(abc)/",
        "/Date(1551981568133+0000)",  # no closing slash
        "Date(1551981568133)",
        "/Date(1.5)/",
        "/Date(99999999999999999)/",  # past year 9999
        "/Date(123456789012345678901234567890)/",
        "2019",
        "20190307",
        "2019-02-30T00:00:00",
        "2019-03-07T25:00:00",
        "07/03/2019",
    ],
)
def test_garbage_raises_value_error_naming_the_text(text: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_xero_datetime(text)
    assert repr(text)[:40] in str(raised.value)


def test_none_passes_through() -> None:
    assert parse_xero_datetime(None) is None
    assert parse_xero_date(None) is None


def test_python_datetimes() -> None:
    aware = datetime(2024, 3, 11, 1, 30, tzinfo=ZoneInfo("Pacific/Auckland"))
    assert parse_xero_datetime(aware) == utc(2024, 3, 10, 12, 30)
    with pytest.raises(ValueError, match="naive"):
        parse_xero_datetime(datetime(2024, 3, 10, 12, 30))
    with pytest.raises(ValueError):
        parse_xero_datetime(1551981568133)  # type: ignore[arg-type]


# --- date-only fields -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/Date(1551916800000+0000)/", date(2019, 3, 7)),  # Invoice.Date in the spec example
        # A -hhmm annotation must not pull midnight UTC back to the previous day (tap-xero did).
        ("/Date(1551916800000-0800)/", date(2019, 3, 7)),
        ("/Date(1551916800000+1300)/", date(2019, 3, 7)),
        ("/Date(0+0000)/", date(1970, 1, 1)),
        ("/Date(-80006400000+0000)/", date(1967, 6, 20)),
        ("2019-03-07T00:00:00", date(2019, 3, 7)),
        ("2019-03-07", date(2019, 3, 7)),
        # Not midnight: still that instant's UTC date.
        ("/Date(1551999599999)/", date(2019, 3, 7)),
    ],
)
def test_date_only_fields_are_the_utc_calendar_date(text: str, expected: date) -> None:
    parsed = parse_xero_date(text)
    assert parsed == expected
    assert type(parsed) is date


def test_parse_xero_date_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="not-a-date"):
        parse_xero_date("not-a-date")
    assert parse_xero_date(date(2024, 1, 31)) == date(2024, 1, 31)


# --- time zones -----------------------------------------------------------------------------------


def test_every_spec_timezone_maps_to_a_loadable_iana_zone() -> None:
    if not (SPEC_DIR / xero_spec.ACCOUNTING).is_file():
        pytest.skip(f"Xero's OpenAPI spec is not checked out at {SPEC_DIR}")
    schemas = xero_spec.load_spec()["components"]["schemas"]
    enum = schemas["TimeZone"]["enum"]
    assert len(enum) > 100
    # Organisation.Timezone refers to this enum, so this really is the field's list.
    assert schemas["Organisation"]["properties"]["Timezone"]["$ref"].endswith("/TimeZone")
    unmapped = sorted(set(enum) - set(XERO_TIMEZONES))
    assert not unmapped, f"spec Timezone values without an IANA zone: {unmapped}"
    for name in enum:
        assert isinstance(xero_timezone_to_iana(name), ZoneInfo)


def test_every_mapped_zone_loads() -> None:
    for name in XERO_TIMEZONES:
        xero_timezone_to_iana(name)


WINTER = utc(2024, 1, 15, 12)  # January: southern summer, northern winter
SUMMER = utc(2024, 7, 15, 12)


@pytest.mark.parametrize(
    ("name", "iana", "winter_hours", "summer_hours"),
    [
        ("NEWZEALANDSTANDARDTIME", "Pacific/Auckland", 13, 12),
        ("GMTSTANDARDTIME", "Europe/London", 0, 1),
        ("AUSEASTERNSTANDARDTIME", "Australia/Sydney", 11, 10),
        ("EASTERNSTANDARDTIME", "America/New_York", -5, -4),
        ("PACIFICSTANDARDTIME", "America/Los_Angeles", -8, -7),
        ("SINGAPORESTANDARDTIME", "Asia/Singapore", 8, 8),
        ("INDIASTANDARDTIME", "Asia/Kolkata", 5.5, 5.5),
        ("GREENWICHSTANDARDTIME", "Atlantic/Reykjavik", 0, 0),
        ("UTC", "Etc/UTC", 0, 0),
        # Xero drops the "-" of Windows' "UTC-02" but keeps the "+" of "UTC+12"; and the Etc/GMT
        # sign is inverted. A sign slip here would move every date by a day.
        ("UTC02", "Etc/GMT+2", -2, -2),
        ("UTC11", "Etc/GMT+11", -11, -11),
        ("UTC+12", "Etc/GMT-12", 12, 12),
        ("UTC+13", "Etc/GMT-13", 13, 13),
        ("CENTRALSTANDARDTIME(MEXICO)", "America/Mexico_City", -6, -6),
        ("CHATHAMISLANDSSTANDARDTIME", "Pacific/Chatham", 13.75, 12.75),
    ],
)
def test_known_zones(name: str, iana: str, winter_hours: float, summer_hours: float) -> None:
    zone = xero_timezone_to_iana(name)
    assert zone.key == iana
    assert WINTER.astimezone(zone).utcoffset() == timedelta(hours=winter_hours)
    assert SUMMER.astimezone(zone).utcoffset() == timedelta(hours=summer_hours)


def test_windows_spellings_are_accepted() -> None:
    assert xero_timezone_to_iana("New Zealand Standard Time").key == "Pacific/Auckland"
    assert xero_timezone_to_iana("newzealandstandardtime").key == "Pacific/Auckland"
    assert xero_timezone_to_iana("UTC-02").key == "Etc/GMT+2"
    assert xero_timezone_to_iana("Aus Central W. Standard Time").key == "Australia/Eucla"


@pytest.mark.parametrize("name", ["MARSSTANDARDTIME", "", "Pacific/Auckland", "UTC+14"])
def test_unknown_timezone_raises_naming_it(name: str) -> None:
    with pytest.raises(ValueError) as raised:
        xero_timezone_to_iana(name)
    assert repr(name) in str(raised.value)


# --- organisation-local business dates ------------------------------------------------------------

AUCKLAND = xero_timezone_to_iana("NEWZEALANDSTANDARDTIME")
LOS_ANGELES = xero_timezone_to_iana("PACIFICSTANDARDTIME")
LONDON = xero_timezone_to_iana("GMTSTANDARDTIME")


@pytest.mark.parametrize(
    ("instant", "zone", "expected"),
    [
        (utc(2024, 3, 10, 12, 30), AUCKLAND, date(2024, 3, 11)),  # already tomorrow in NZ
        (utc(2024, 3, 10, 12, 30), LOS_ANGELES, date(2024, 3, 10)),
        (utc(2024, 3, 10, 6, 30), LOS_ANGELES, date(2024, 3, 9)),  # still yesterday in LA
        (utc(2024, 3, 10, 12, 30), LONDON, date(2024, 3, 10)),
        (utc(2024, 6, 30, 23, 30), LONDON, date(2024, 7, 1)),  # BST: 00:30 on 1 July
        (utc(2024, 1, 31, 23, 30), LONDON, date(2024, 1, 31)),  # GMT: still 31 January
        # NZ DST ends 2024-04-07 03:00 NZDT: a fixed +13 offset would give 8 April here.
        (utc(2024, 4, 6, 11, 30), AUCKLAND, date(2024, 4, 7)),
        (utc(2024, 4, 7, 11, 30), AUCKLAND, date(2024, 4, 7)),
        (utc(2024, 4, 7, 12, 0), AUCKLAND, date(2024, 4, 8)),
    ],
)
def test_local_date(instant: datetime, zone: ZoneInfo, expected: date) -> None:
    assert local_date(instant, zone) == expected


def test_local_date_of_a_parsed_xero_instant() -> None:
    instant = parse_xero_datetime("/Date(1710073800000+0000)/")  # 2024-03-10T12:30:00Z
    assert instant == utc(2024, 3, 10, 12, 30)
    assert local_date(instant, AUCKLAND) == date(2024, 3, 11)
    assert local_date(instant.astimezone(timezone(timedelta(hours=-5))), AUCKLAND) == date(
        2024, 3, 11
    )


def test_local_date_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="naive"):
        local_date(datetime(2024, 3, 10, 12, 30), AUCKLAND)
