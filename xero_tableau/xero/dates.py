"""Xero's dates and time zones, parsed exactly once and always to timezone-aware UTC.

An MS-JSON date (``/Date(1518685950940+0000)/``) is integer Unix milliseconds, its offset
validated and ignored: no float, no truncation. An ISO 8601 string without a zone is UTC.
Date-only fields are the UTC calendar date (:func:`parse_xero_date`); the organisation's business
date of an instant comes from :func:`local_date` with the zone :func:`xero_timezone_to_iana` maps.
"""

import functools
import re
from datetime import UTC, date, datetime, timedelta
from typing import overload
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "XERO_TIMEZONES",
    "local_date",
    "parse_xero_date",
    "parse_xero_datetime",
    "xero_timezone_to_iana",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# xero-python's shape (optional sign, digits, optional 2-4 digit offset), capped at 18 digits:
# anything longer is out of datetime's range anyway and would only slow int() down.
_MS_DATE = re.compile(r"/Date\((-?\d{1,18})(?:[+-]\d{2,4})?\)/")
# ISO 8601 as Xero writes it: date, optional time with any number of fraction digits, optional
# zone. Checked before ``fromisoformat`` so compact or partial forms ("2019", "20190307") are
# rejected rather than guessed at.
_ISO = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.(\d+))?)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?"
)
_MAX_REPR = 80


def _garbage(value: object, why: str) -> ValueError:
    text = repr(value)
    if len(text) > _MAX_REPR:
        text = text[: _MAX_REPR - 3] + "..."
    return ValueError(f"not a Xero date ({why}): {text}")


@functools.lru_cache(maxsize=8192)
def _parse_str(value: str) -> datetime:
    """Parse one Xero date string to aware UTC; cached because date-only values repeat a lot."""
    text = value.strip()
    match = _MS_DATE.fullmatch(text)
    if match is not None:
        try:
            # Integer milliseconds: exact for any sign, no float rounding.
            return _EPOCH + timedelta(milliseconds=int(match.group(1)))
        except OverflowError:
            raise _garbage(value, "out of range") from None
    iso = _ISO.fullmatch(text)
    if iso is None:
        raise _garbage(value, "expected /Date(ms[+-hhmm])/ or ISO 8601")
    fraction = iso.group(1)
    if fraction is not None and len(fraction) > 6:
        # .NET writes 7 digits (100 ns ticks); Python keeps microseconds. Truncate the 7th+.
        start = iso.start(1)
        text = text[: start + 6] + text[start + len(fraction) :]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise _garbage(value, "invalid calendar date or time") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


@overload
def parse_xero_datetime(value: str | datetime) -> datetime: ...
@overload
def parse_xero_datetime(value: None) -> None: ...
def parse_xero_datetime(value: str | datetime | None) -> datetime | None:
    """A Xero instant as an aware UTC ``datetime`` (millisecond precision kept); None stays None.

    Accepts ``/Date(ms)/``, ``/Date(ms+hhmm)/``, ``/Date(ms-hhmm)/`` and ISO 8601 (no zone = UTC).
    An already-parsed aware ``datetime`` is converted to UTC; a naive one is refused because its
    zone would be a guess. Raises ``ValueError`` naming the offending text.
    """
    if value is None:
        return None
    if isinstance(value, str):
        return _parse_str(value)
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise _garbage(value, "naive datetime, zone unknown")
        return value.astimezone(UTC)
    raise _garbage(value, f"expected a string, got {type(value).__name__}")


@overload
def parse_xero_date(value: str | date) -> date: ...
@overload
def parse_xero_date(value: None) -> None: ...
def parse_xero_date(value: str | date | None) -> date | None:
    """The UTC calendar date of a Xero date-only field (encoded as midnight UTC); None stays None.

    Values that are not exactly midnight still yield their UTC date: the field is a date, and
    dropping a record over a stray time part would lose money.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        return parse_xero_datetime(value).date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        return _parse_str(value).date()
    raise _garbage(value, f"expected a string, got {type(value).__name__}")


# Xero's Organisation.Timezone enum (spec schema ``TimeZone``) is the Windows time zone id,
# upper-cased with spaces and dots removed, and "-" dropped from "UTC-xx" (UTC-02 -> UTC02) while
# "+" is kept (UTC+12). Each maps to the IANA zone of CLDR windowsZones.xml's territory "001"
# entry; where CLDR's id is a legacy alias the canonical IANA name is used (Asia/Calcutta ->
# Asia/Kolkata ...). Two values are obsolete Windows zones no longer in CLDR: KAMCHATKA ("(UTC+12)
# Petropavlovsk-Kamchatsky - Old") -> Asia/Kamchatka and MIDATLANTIC ("(UTC-02:00) Mid-Atlantic -
# Old") -> Atlantic/South_Georgia (UTC-2, no DST).
XERO_TIMEZONES: dict[str, str] = {
    "AFGHANISTANSTANDARDTIME": "Asia/Kabul",
    "ALASKANSTANDARDTIME": "America/Anchorage",
    "ALEUTIANSTANDARDTIME": "America/Adak",
    "ALTAISTANDARDTIME": "Asia/Barnaul",
    "ARABIANSTANDARDTIME": "Asia/Dubai",
    "ARABICSTANDARDTIME": "Asia/Baghdad",
    "ARABSTANDARDTIME": "Asia/Riyadh",
    "ARGENTINASTANDARDTIME": "America/Argentina/Buenos_Aires",
    "ASTRAKHANSTANDARDTIME": "Europe/Astrakhan",
    "ATLANTICSTANDARDTIME": "America/Halifax",
    "AUSCENTRALSTANDARDTIME": "Australia/Darwin",
    "AUSCENTRALWSTANDARDTIME": "Australia/Eucla",
    "AUSEASTERNSTANDARDTIME": "Australia/Sydney",
    "AZERBAIJANSTANDARDTIME": "Asia/Baku",
    "AZORESSTANDARDTIME": "Atlantic/Azores",
    "BAHIASTANDARDTIME": "America/Bahia",
    "BANGLADESHSTANDARDTIME": "Asia/Dhaka",
    "BELARUSSTANDARDTIME": "Europe/Minsk",
    "BOUGAINVILLESTANDARDTIME": "Pacific/Bougainville",
    "CANADACENTRALSTANDARDTIME": "America/Regina",
    "CAPEVERDESTANDARDTIME": "Atlantic/Cape_Verde",
    "CAUCASUSSTANDARDTIME": "Asia/Yerevan",
    "CENAUSTRALIASTANDARDTIME": "Australia/Adelaide",
    "CENTRALAMERICASTANDARDTIME": "America/Guatemala",
    "CENTRALASIASTANDARDTIME": "Asia/Bishkek",
    "CENTRALBRAZILIANSTANDARDTIME": "America/Cuiaba",
    "CENTRALEUROPEANSTANDARDTIME": "Europe/Warsaw",
    "CENTRALEUROPESTANDARDTIME": "Europe/Budapest",
    "CENTRALPACIFICSTANDARDTIME": "Pacific/Guadalcanal",
    "CENTRALSTANDARDTIME": "America/Chicago",
    "CENTRALSTANDARDTIME(MEXICO)": "America/Mexico_City",
    "CHATHAMISLANDSSTANDARDTIME": "Pacific/Chatham",
    "CHINASTANDARDTIME": "Asia/Shanghai",
    "CUBASTANDARDTIME": "America/Havana",
    "DATELINESTANDARDTIME": "Etc/GMT+12",
    "EAFRICASTANDARDTIME": "Africa/Nairobi",
    "EASTERISLANDSTANDARDTIME": "Pacific/Easter",
    "EASTERNSTANDARDTIME": "America/New_York",
    "EASTERNSTANDARDTIME(MEXICO)": "America/Cancun",
    "EAUSTRALIASTANDARDTIME": "Australia/Brisbane",
    "EEUROPESTANDARDTIME": "Europe/Chisinau",
    "EGYPTSTANDARDTIME": "Africa/Cairo",
    "EKATERINBURGSTANDARDTIME": "Asia/Yekaterinburg",
    "ESOUTHAMERICASTANDARDTIME": "America/Sao_Paulo",
    "FIJISTANDARDTIME": "Pacific/Fiji",
    "FLESTANDARDTIME": "Europe/Kyiv",
    "GEORGIANSTANDARDTIME": "Asia/Tbilisi",
    "GMTSTANDARDTIME": "Europe/London",
    "GREENLANDSTANDARDTIME": "America/Nuuk",
    "GREENWICHSTANDARDTIME": "Atlantic/Reykjavik",
    "GTBSTANDARDTIME": "Europe/Bucharest",
    "HAITISTANDARDTIME": "America/Port-au-Prince",
    "HAWAIIANSTANDARDTIME": "Pacific/Honolulu",
    "INDIASTANDARDTIME": "Asia/Kolkata",
    "IRANSTANDARDTIME": "Asia/Tehran",
    "ISRAELSTANDARDTIME": "Asia/Jerusalem",
    "JORDANSTANDARDTIME": "Asia/Amman",
    "KALININGRADSTANDARDTIME": "Europe/Kaliningrad",
    "KAMCHATKASTANDARDTIME": "Asia/Kamchatka",
    "KOREASTANDARDTIME": "Asia/Seoul",
    "LIBYASTANDARDTIME": "Africa/Tripoli",
    "LINEISLANDSSTANDARDTIME": "Pacific/Kiritimati",
    "LORDHOWESTANDARDTIME": "Australia/Lord_Howe",
    "MAGADANSTANDARDTIME": "Asia/Magadan",
    "MAGALLANESSTANDARDTIME": "America/Punta_Arenas",
    "MARQUESASSTANDARDTIME": "Pacific/Marquesas",
    "MAURITIUSSTANDARDTIME": "Indian/Mauritius",
    "MIDATLANTICSTANDARDTIME": "Atlantic/South_Georgia",
    "MIDDLEEASTSTANDARDTIME": "Asia/Beirut",
    "MONTEVIDEOSTANDARDTIME": "America/Montevideo",
    "MOROCCOSTANDARDTIME": "Africa/Casablanca",
    "MOUNTAINSTANDARDTIME": "America/Denver",
    "MOUNTAINSTANDARDTIME(MEXICO)": "America/Mazatlan",
    "MYANMARSTANDARDTIME": "Asia/Yangon",
    "NAMIBIASTANDARDTIME": "Africa/Windhoek",
    "NCENTRALASIASTANDARDTIME": "Asia/Novosibirsk",
    "NEPALSTANDARDTIME": "Asia/Kathmandu",
    "NEWFOUNDLANDSTANDARDTIME": "America/St_Johns",
    "NEWZEALANDSTANDARDTIME": "Pacific/Auckland",
    "NORFOLKSTANDARDTIME": "Pacific/Norfolk",
    "NORTHASIAEASTSTANDARDTIME": "Asia/Irkutsk",
    "NORTHASIASTANDARDTIME": "Asia/Krasnoyarsk",
    "NORTHKOREASTANDARDTIME": "Asia/Pyongyang",
    "OMSKSTANDARDTIME": "Asia/Omsk",
    "PACIFICSASTANDARDTIME": "America/Santiago",
    "PACIFICSTANDARDTIME": "America/Los_Angeles",
    "PACIFICSTANDARDTIME(MEXICO)": "America/Tijuana",
    "PAKISTANSTANDARDTIME": "Asia/Karachi",
    "PARAGUAYSTANDARDTIME": "America/Asuncion",
    "QYZYLORDASTANDARDTIME": "Asia/Qyzylorda",
    "ROMANCESTANDARDTIME": "Europe/Paris",
    "RUSSIANSTANDARDTIME": "Europe/Moscow",
    "RUSSIATIMEZONE10": "Asia/Srednekolymsk",
    "RUSSIATIMEZONE11": "Asia/Kamchatka",
    "RUSSIATIMEZONE3": "Europe/Samara",
    "SAEASTERNSTANDARDTIME": "America/Cayenne",
    "SAINTPIERRESTANDARDTIME": "America/Miquelon",
    "SAKHALINSTANDARDTIME": "Asia/Sakhalin",
    "SAMOASTANDARDTIME": "Pacific/Apia",
    "SAOTOMESTANDARDTIME": "Africa/Sao_Tome",
    "SAPACIFICSTANDARDTIME": "America/Bogota",
    "SARATOVSTANDARDTIME": "Europe/Saratov",
    "SAWESTERNSTANDARDTIME": "America/La_Paz",
    "SEASIASTANDARDTIME": "Asia/Bangkok",
    "SINGAPORESTANDARDTIME": "Asia/Singapore",
    "SOUTHAFRICASTANDARDTIME": "Africa/Johannesburg",
    "SOUTHSUDANSTANDARDTIME": "Africa/Juba",
    "SRILANKASTANDARDTIME": "Asia/Colombo",
    "SUDANSTANDARDTIME": "Africa/Khartoum",
    "SYRIASTANDARDTIME": "Asia/Damascus",
    "TAIPEISTANDARDTIME": "Asia/Taipei",
    "TASMANIASTANDARDTIME": "Australia/Hobart",
    "TOCANTINSSTANDARDTIME": "America/Araguaina",
    "TOKYOSTANDARDTIME": "Asia/Tokyo",
    "TOMSKSTANDARDTIME": "Asia/Tomsk",
    "TONGASTANDARDTIME": "Pacific/Tongatapu",
    "TRANSBAIKALSTANDARDTIME": "Asia/Chita",
    "TURKEYSTANDARDTIME": "Europe/Istanbul",
    "TURKSANDCAICOSSTANDARDTIME": "America/Grand_Turk",
    "ULAANBAATARSTANDARDTIME": "Asia/Ulaanbaatar",
    "USEASTERNSTANDARDTIME": "America/Indiana/Indianapolis",
    "USMOUNTAINSTANDARDTIME": "America/Phoenix",
    "UTC": "Etc/UTC",
    "UTC+12": "Etc/GMT-12",
    "UTC+13": "Etc/GMT-13",
    "UTC02": "Etc/GMT+2",
    "UTC08": "Etc/GMT+8",
    "UTC09": "Etc/GMT+9",
    "UTC11": "Etc/GMT+11",
    "VENEZUELASTANDARDTIME": "America/Caracas",
    "VLADIVOSTOKSTANDARDTIME": "Asia/Vladivostok",
    "VOLGOGRADSTANDARDTIME": "Europe/Volgograd",
    "WAUSTRALIASTANDARDTIME": "Australia/Perth",
    "WCENTRALAFRICASTANDARDTIME": "Africa/Lagos",
    "WESTASIASTANDARDTIME": "Asia/Tashkent",
    "WESTBANKSTANDARDTIME": "Asia/Hebron",
    "WESTPACIFICSTANDARDTIME": "Pacific/Port_Moresby",
    "WEUROPESTANDARDTIME": "Europe/Berlin",
    "WMONGOLIASTANDARDTIME": "Asia/Hovd",
    "YAKUTSKSTANDARDTIME": "Asia/Yakutsk",
    "YUKONSTANDARDTIME": "America/Whitehorse",
}
"""Xero ``Organisation.Timezone`` value -> IANA zone name (CLDR windowsZones, territory 001)."""

# Canonical names renamed in recent tzdata releases, with the older alias to try on systems whose
# tz database predates the rename.
_OLDER_NAMES = {
    "Europe/Kyiv": "Europe/Kiev",  # tzdata 2022b
    "America/Nuuk": "America/Godthab",  # tzdata 2020a
    "Asia/Yangon": "Asia/Rangoon",  # tzdata 2016d
}


def _normalise(name: str) -> str:
    """Xero's spelling of a Windows zone id: upper case without spaces, dots or hyphens."""
    return re.sub(r"[\s.\-]", "", name).upper()


def xero_timezone_to_iana(name: str) -> ZoneInfo:
    """The IANA zone of a Xero ``Organisation.Timezone`` value, e.g. NEWZEALANDSTANDARDTIME.

    Windows spellings ("New Zealand Standard Time", "UTC-11") are accepted too. Raises
    ``ValueError`` naming the value when it is not a known Xero time zone, so a new value Xero adds
    fails loudly instead of silently shifting business dates.
    """
    iana = XERO_TIMEZONES.get(_normalise(name)) if isinstance(name, str) else None
    if iana is None:
        raise ValueError(f"unknown Xero time zone {name!r} (not in Xero's TimeZone enum)")
    try:
        return ZoneInfo(iana)
    except ZoneInfoNotFoundError:
        older = _OLDER_NAMES.get(iana)
        if older is None:
            raise
        return ZoneInfo(older)


def local_date(instant: datetime, tz: ZoneInfo) -> date:
    """The organisation-local business date of an aware instant (e.g. a payment's timestamp)."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"local_date needs an aware datetime, got naive {instant.isoformat()}")
    return instant.astimezone(tz).date()
