"""Reading semantics of the Accounting API: ``where``, ``order`` and ``If-Modified-Since``.

``where`` supports the forms connectors use: comparisons joined by
``&&``/``AND`` and ``||``/``OR`` on a field path, with a string, ``GUID("...")``,
``DateTime(y, m, d[, h, mi, s])``, a number or a boolean on the right; plus ``Field.Contains("x")``
and ``.StartsWith("x")``.
Anything else is refused with Xero's ``QueryParseException`` (HTTP 400) rather than guessed at.
"""

import re
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from xero_tableau.sandbox.dataset import parse_ms_date

# fields whose values are /Date()/ strings; they compare as instants, via the store's index
INSTANT_FIELDS = {"UpdatedDateUTC": 0, "Date": 1}


class QueryError(ValueError):
    """An unparseable where/order/If-Modified-Since: Xero answers 400 QueryParseException."""


Predicate = Callable[[dict, int, int], bool]

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<and>&&|\bAND\b)
      | (?P<or>\|\||\bOR\b)
      | (?P<call>(?P<callfield>[A-Za-z_][\w.]*)\.(?P<method>Contains|StartsWith|EndsWith)
            \(\s*"(?P<callarg>(?:[^"\\]|\\.)*)"\s*\))
      | (?P<cmp>(?P<field>[A-Za-z_][\w.]*)\s*(?P<op>==|!=|>=|<=|>|<)\s*(?P<value>
            "(?:[^"\\]|\\.)*"
          | GUID\(\s*"?[0-9a-fA-F-]{36}"?\s*\)
          | DateTime\(\s*\d{4}\s*(?:,\s*\d{1,2}\s*){2,5}\)
          | -?\d+(?:\.\d+)?
          | true|false|null))
    )""",
    re.VERBOSE | re.IGNORECASE,
)


def _field_value(record: dict, path: str) -> object:
    value: object = record
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


_ESCAPE = re.compile(r"\\(.)")


def _parse_value(raw: str) -> tuple[str, object]:
    """(kind, value): kind is 'str', 'guid', 'instant', 'number', 'bool' or 'null'."""
    if raw.startswith('"'):
        # only \" and \\ are escapes; other characters (accents, macrons...) stay as they are
        return "str", _ESCAPE.sub(r"\1", raw[1:-1])
    lower = raw.lower()
    if lower.startswith("guid("):
        return "guid", raw[raw.index("(") + 1 : -1].strip().strip('"').lower()
    if lower.startswith("datetime("):
        parts = [int(p) for p in raw[raw.index("(") + 1 : -1].split(",")]
        try:
            when = datetime(*parts, tzinfo=UTC)  # type: ignore[misc]
        except (TypeError, ValueError) as exc:
            raise QueryError(f"Invalid DateTime in where clause: {raw}") from exc
        return "instant", int(when.timestamp() * 1000)
    if lower in ("true", "false"):
        return "bool", lower == "true"
    if lower == "null":
        return "null", None
    return "number", float(raw)


_OPS: dict[str, Callable[[object, object], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">=": lambda a, b: a is not None and a >= b,  # type: ignore[operator]
    "<=": lambda a, b: a is not None and a <= b,  # type: ignore[operator]
    ">": lambda a, b: a is not None and a > b,  # type: ignore[operator]
    "<": lambda a, b: a is not None and a < b,  # type: ignore[operator]
}


def _comparison(field: str, op: str, raw_value: str) -> Predicate:
    kind, value = _parse_value(raw_value)
    compare = _OPS[op]
    if field in INSTANT_FIELDS:
        if kind != "instant":
            raise QueryError(
                f"Operator '{op}' incompatible with operand types 'DateTime' and {kind}"
            )
        slot = INSTANT_FIELDS[field]
        return lambda _r, upd, when: compare((upd, when)[slot], value)
    if kind == "guid":
        return lambda r, _u, _w: compare(str(_field_value(r, field) or "").lower(), value)
    if kind == "str":
        return lambda r, _u, _w: compare(_field_value(r, field), value)
    if kind == "number":

        def numeric(r: dict, _u: int, _w: int) -> bool:
            got = _field_value(r, field)
            return isinstance(got, int | float) and compare(float(got), value)

        return numeric
    return lambda r, _u, _w: compare(_field_value(r, field), value)


def _call(field: str, method: str, arg: str) -> Predicate:
    needle = arg.lower()
    tests: dict[str, Callable[[str], bool]] = {
        "contains": lambda s: needle in s,
        "startswith": lambda s: s.startswith(needle),
        "endswith": lambda s: s.endswith(needle),
    }
    test = tests[method.lower()]
    return lambda r, _u, _w: test(str(_field_value(r, field) or "").lower())


def parse_where(text: str) -> Predicate:
    """Compile a where clause into a predicate over (record, updated_ms, date_ms).

    ``&&``/``AND`` bind tighter than ``||``/``OR``, as in C#, whose syntax Xero's filter follows;
    parentheses are not supported (400)."""
    groups: list[list[Predicate]] = [[]]
    pos = 0
    expect_term = True
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise QueryError(f"Unable to parse where clause near: {text[pos : pos + 40]!r}")
        pos = match.end()
        if match.group("or") or match.group("and"):
            if expect_term:
                raise QueryError(f"Unexpected operator in where clause: {text!r}")
            if match.group("or"):
                groups.append([])
            expect_term = True
            continue
        if not expect_term:
            raise QueryError(f"Missing && between conditions in where clause: {text!r}")
        if match.group("call"):
            groups[-1].append(_call(match["callfield"], match["method"], match["callarg"]))
        else:
            groups[-1].append(_comparison(match["field"], match["op"], match["value"]))
        expect_term = False
    if expect_term:
        raise QueryError(f"Incomplete where clause: {text!r}")
    return lambda r, u, w: any(all(c(r, u, w) for c in group) for group in groups)


def parse_order(text: str) -> list[tuple[str, bool]]:
    """``"UpdatedDateUTC ASC, Date DESC"`` -> [("UpdatedDateUTC", False), ("Date", True)]."""
    keys: list[tuple[str, bool]] = []
    for part in text.split(","):
        words = part.split()
        if not words:
            continue
        if len(words) > 2 or not re.fullmatch(r"[A-Za-z_][\w.]*", words[0]):
            raise QueryError(f"Invalid order clause: {text!r}")
        direction = words[1].upper() if len(words) == 2 else "ASC"
        if direction not in ("ASC", "DESC"):
            raise QueryError(f"Invalid order direction: {words[1]!r}")
        keys.append((words[0], direction == "DESC"))
    return keys


def sort_key(field: str) -> Callable[[tuple[dict, int, int]], object]:
    if field in INSTANT_FIELDS:
        slot = INSTANT_FIELDS[field] + 1
        return lambda row: row[slot]

    def key(row: tuple[dict, int, int]) -> object:
        value = _field_value(row[0], field)
        if isinstance(value, str) and value.startswith("/Date("):
            return parse_ms_date(value)
        return (value is None, value if value is not None else 0)

    return key


# RFC 3339 ``date-time`` (what the spec's ``format: date-time`` means): full date, full time with
# optional fraction, and a mandatory offset (``Z`` or ``+hh:mm``); ``T`` and ``Z`` in either case.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})")
# RFC 9110's preferred HTTP-date (IMF-fixdate), the header's standard HTTP form.
_HTTP_DATE = re.compile(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT")


def parse_if_modified_since(value: str) -> int:
    """Epoch ms of an If-Modified-Since header, validated as the spec declares it.

    Xero's spec gives the header ``format: date-time``: an RFC 3339 date-time, offset required
    (``2026-12-01T10:00:00Z``, ``2020-02-06T12:17:43.202-08:00``). An RFC 9110 HTTP-date is
    accepted too. Anything else, the offset-less ``2026-12-01T10:00:00`` included, is a
    QueryError (400)."""
    text = value.strip()
    if _RFC3339.fullmatch(text):
        digits = text.upper().replace("Z", "+00:00")
        fraction = re.search(r"\.(\d+)", digits)
        if fraction is not None and len(fraction.group(1)) > 6:  # .NET's 7 digits: keep 6
            digits = digits[: fraction.start(1) + 6] + digits[fraction.end(1) :]
        try:
            when = datetime.fromisoformat(digits)
        except ValueError as exc:
            raise QueryError(f"Invalid If-Modified-Since header: {value!r}") from exc
    elif _HTTP_DATE.fullmatch(text):
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError) as exc:
            raise QueryError(f"Invalid If-Modified-Since header: {value!r}") from exc
    else:
        raise QueryError(
            f"Invalid If-Modified-Since header: {value!r} is not an RFC 3339 date-time with an "
            "offset (e.g. 2026-12-01T10:00:00Z)"
        )
    try:
        return int(when.timestamp() * 1000)
    except (OverflowError, ValueError, OSError) as exc:
        raise QueryError(f"Invalid If-Modified-Since header: {value!r}") from exc
