"""Validate JSON against Xero's official OpenAPI specs (accounting, identity, webhooks).

The local Xero emulator must produce responses that real Xero could have produced; checking
them against Xero's own OpenAPI documents keeps the emulator (and our fixtures) honest.

OpenAPI schemas are not plain JSON Schema, so every ``components/schemas`` tree is translated
once per (spec, mode) into JSON Schema 2020-12 and validated with ``jsonschema``:

* OpenAPI 3.0 ``nullable: true`` becomes ``type: [T, "null"]``; ``$ref`` siblings are dropped
  (3.0 ignores them); boolean ``exclusiveMinimum``/``exclusiveMaximum`` become numeric.
* Annotations (``description``, ``example``, ``readOnly``, ``x-*``, ...) are stripped.
* Format checking stays off (Xero's ``/Date(...)/`` strings would fail RFC 3339); instead
  Xero-specific shapes become patterns: ``x-is-msdate``/``x-is-msdate-time`` -> MS-JSON date,
  ``format: uuid`` -> UUID syntax, ``format: date-time`` -> lenient ISO 8601 (Xero omits the
  ``Z``), ``format: int32`` -> 32-bit range.
* ``strict=True`` forbids properties the spec does not declare so the emulator cannot invent
  fields (Xero's specs never set ``additionalProperties``). Objects get ``additionalProperties:
  false``; ``allOf`` compositions are merged first (union of declared properties at every
  level); ``oneOf``/``anyOf`` objects get ``unevaluatedProperties: false``.
* ``extras=True`` (default) declares what real Xero sends but the spec omits, so strict mode
  stays usable for a faithful emulator: the response envelope (``Id``, ``Status``,
  ``ProviderName``, ``DateTimeUTC``) on the root of every response schema, and the few
  companion fields in :data:`XERO_UNDECLARED_PROPERTIES` that Xero's own examples show
  (``DateString``...). Their types are checked too. ``extras=False`` = the bare spec.

Requests are checked too, for their headers: :func:`request_header_errors` validates the header
parameters an operation declares (required ones present, ``format: date-time`` strictly as RFC
3339 with its offset, ``format: uuid``).

Typical use in tests::

    from xero_tableau_tests import xero_spec

    if xero_spec.missing_specs():
        pytest.skip(xero_spec.skip_reason())
    xero_spec.assert_valid(response.json(), "Invoices", strict=True)
    xero_spec.assert_valid(connections, "Connection", spec=xero_spec.IDENTITY, many=True)
    xero_spec.assert_valid(payload, "WebhookEvent", spec=xero_spec.WEBHOOKS, strict=True)
"""

import copy
import functools
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry
from referencing.jsonschema import DRAFT202012

SPEC_DIR: Path = Path(__file__).resolve().parents[2] / "shared" / "reference" / "xero-openapi"
"""Where CI (and the dev box) keep Xero's spec files: ``<repo>/../shared/reference/...``."""

ACCOUNTING = "xero_accounting.yaml"
IDENTITY = "xero-identity.yaml"
WEBHOOKS = "xero-webhooks.yaml"
SPECS = (ACCOUNTING, IDENTITY, WEBHOOKS)

MSDATE_PATTERN = r"^/Date\(-?\d+([+-]\d{2,4})?\)/$"
"""Xero's MS-JSON date, e.g. ``/Date(1518685950940+0000)/`` (same regex as xero-python)."""
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
ISO_DATETIME_PATTERN = (
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)?$"
)
"""Lenient ISO 8601: Xero's identity/webhook timestamps have 3-7 fraction digits and no Z."""
ISO_DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"

ENVELOPE_PROPERTIES: dict[str, Any] = {
    "Id": {"type": "string", "pattern": UUID_PATTERN, "x-xero-check": "uuid"},
    "Status": {"type": "string"},
    "ProviderName": {"type": "string"},
    "DateTimeUTC": {"type": "string", "pattern": MSDATE_PATTERN, "x-xero-check": "msdate"},
}
"""Keys real Xero puts around every accounting response; undeclared in the spec."""

# Written as OpenAPI (untranslated) schemas: they are merged into components before translation.
_ISO = {"type": "string", "format": "date-time"}
_UUID = {"type": "string", "format": "uuid"}
_BOOL = {"type": "boolean"}
XERO_UNDECLARED_PROPERTIES: dict[str, dict[str, Any]] = {
    "Invoice": {"DateString": _ISO, "DueDateString": _ISO},
    "CreditNote": {"DateString": _ISO, "ID": _UUID},
    "Overpayment": {"DateString": _ISO, "ID": _UUID},
    "Prepayment": {"DateString": _ISO, "ID": _UUID},
    "BankTransaction": {"DateString": _ISO},
    "BankTransfer": {"DateString": _ISO, "CreatedDateUTCString": _ISO},
    "PurchaseOrder": {"DateString": _ISO, "DeliveryDateString": _ISO},
    "TrackingOption": {"IsActive": _BOOL, "IsArchived": _BOOL, "IsDeleted": _BOOL},
}
"""Fields present in Xero's own response examples (and real responses) but not declared by
the component schema. Typos in examples (``TaxNumbeType``, ``CISEnambed``) are not listed."""

MAX_REPORTED_ERRORS = 10

# Keywords that only annotate; dropping them keeps the translated schema small and fast.
_ANNOTATIONS = frozenset(
    {
        "description",
        "title",
        "example",
        "examples",
        "externalDocs",
        "xml",
        "discriminator",
        "deprecated",
        "readOnly",
        "writeOnly",
        "default",
        "$comment",
        "nullable",
        "format",
    }
)
_SINGLE_SUBSCHEMA = frozenset(
    {
        "items",
        "not",
        "contains",
        "if",
        "then",
        "else",
        "propertyNames",
        "unevaluatedItems",
        "unevaluatedProperties",
        "additionalProperties",
        "additionalItems",
    }
)
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions"})
_COMBINATORS = ("allOf", "anyOf", "oneOf")
_CHECK_KEY = "x-xero-check"  # marker kept in translated nodes so errors can be explained
_COMPONENT_KEY = "x-xero-component"  # component name, for strict-mode messages
_CONFLICTS = "x-xero-conflicts"  # keywords both allOf branches set; validated as allOf
_INT32 = (-(2**31), 2**31 - 1)


class XeroSpecError(AssertionError):
    """Raised by :func:`assert_valid`; ``messages`` holds every readable error."""

    def __init__(self, schema_name: str, messages: list[str]) -> None:
        self.schema_name = schema_name
        self.messages = messages
        shown = messages[:MAX_REPORTED_ERRORS]
        more = len(messages) - len(shown)
        text = "\n  ".join(shown)
        tail = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(
            f"{len(messages)} error(s) validating against {schema_name!r}:\n  {text}{tail}"
        )


def spec_available(name: str = ACCOUNTING) -> bool:
    """True when the spec file exists; tests ``pytest.skip`` otherwise."""
    return (SPEC_DIR / name).is_file()


def missing_specs(names: Iterable[str] = SPECS) -> list[str]:
    """Spec files (of ``names``) absent from :data:`SPEC_DIR`."""
    return [name for name in names if not spec_available(name)]


def skip_reason(names: Iterable[str] = SPECS) -> str:
    """A clear ``pytest.skip`` message naming the missing files and where they were expected."""
    wanted = tuple(names)
    missing = missing_specs(wanted) or list(wanted)
    return (
        f"Xero OpenAPI spec(s) {', '.join(missing)} not found in {SPEC_DIR}; the repo must be "
        "checked out beside shared/ (shared/reference/xero-openapi/ holds Xero-OpenAPI files)"
    )


# CSafeLoader (libyaml) parses the 926 KB spec ~6x faster than pure Python (0.2 s vs 1.2 s). It
# is not a SafeLoader subclass but has the same resolver interface, hence the loose annotation.
_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _SpecLoader(_BaseLoader):
    """SafeLoader without the timestamp resolver, so ISO example strings stay strings."""


_SpecLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
}


@functools.cache
def load_spec(name: str = ACCOUNTING) -> dict[str, Any]:
    """Parse a spec from :data:`SPEC_DIR` once (the accounting YAML is ~926 KB).

    Callers must not mutate the result; use :func:`response_example` for copies.
    """
    with (SPEC_DIR / name).open("rb") as fh:
        doc = yaml.load(fh, Loader=_SpecLoader)  # SafeLoader subclass: safe
    if not isinstance(doc, dict):
        raise ValueError(f"{name}: expected a mapping at the top level")
    return doc


def schema_names(spec: str = ACCOUNTING) -> list[str]:
    """Names under ``#/components/schemas`` of a spec."""
    return sorted(load_spec(spec).get("components", {}).get("schemas", {}))


def response_example(
    path: str,
    method: str = "get",
    status: str = "200",
    *,
    spec: str = ACCOUNTING,
    media_type: str = "application/json",
) -> tuple[str | None, Any]:
    """Return ``(schema_name, example)`` documented for an operation's response.

    ``schema_name`` is the ``$ref``'d component (``None`` for inline schemas). The example
    is a deep copy, JSON-decoded if the spec stores it as a string, so tests may mutate it.
    """
    content = load_spec(spec)["paths"][path][method]["responses"][status]["content"][media_type]
    example = content["example"]
    if isinstance(example, str):
        example = json.loads(example)
    schema = content.get("schema", {})
    ref = schema.get("$ref") or schema.get("items", {}).get("$ref")
    name = ref.rsplit("/", 1)[-1] if isinstance(ref, str) else None
    return name, copy.deepcopy(example)


def _resolve_pointer(document: Mapping[str, Any], ref: str) -> Any:
    """Follow a local ``#/a/b`` JSON pointer inside the raw spec."""
    if not ref.startswith("#/"):
        raise ValueError(f"only local $refs are supported, got {ref!r}")
    node: Any = document
    for raw in ref[2:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


class _Translator:
    """Turns an OpenAPI ``components/schemas`` tree into JSON Schema 2020-12."""

    def __init__(self, document: Mapping[str, Any], *, strict: bool, extras: bool) -> None:
        self.document = document
        self.strict = strict
        self.extras = extras
        self.oas30 = str(document.get("openapi", "3.0")).startswith("3.0")
        self.open_roots: list[Any] = []
        self._open_index: dict[str, int] = {}

    def translate(self) -> dict[str, Any]:
        schemas = self.document.get("components", {}).get("schemas", {})
        out: dict[str, Any] = {}
        for name, node in schemas.items():
            if self.extras and name in XERO_UNDECLARED_PROPERTIES and "properties" in node:
                undeclared = XERO_UNDECLARED_PROPERTIES[name]
                node = {**node, "properties": {**undeclared, **node["properties"]}}
            translated = self.node(node)
            if isinstance(translated, dict):
                translated[_COMPONENT_KEY] = name
            out[name] = translated
        envelopes: dict[str, Any] = {}
        if self.extras:
            for name in _response_schema_names(self.document):
                root = out.get(name)
                if isinstance(root, dict) and isinstance(root.get("properties"), dict):
                    envelopes[name] = self._with_envelope(root)
        return {
            "components": {"schemas": out, "x-envelope": envelopes},
            "x-open": self.open_roots,
        }

    def node(self, node: Any, *, open_root: bool = False) -> Any:
        """Translate one schema; ``open_root`` = a oneOf/anyOf branch root (never strict)."""
        if not isinstance(node, dict):
            return node  # boolean schemas (3.1)
        if self.strict and "allOf" in node and "$ref" not in node:
            node = self._flatten(node, 0)
        if "$ref" in node:
            ref = self._open_ref(node["$ref"]) if open_root and self.strict else node["$ref"]
            if self.oas30:
                return {"$ref": ref}  # OpenAPI 3.0: siblings of $ref are ignored
            rest = self.node({k: v for k, v in node.items() if k != "$ref"}, open_root=True)
            return {"$ref": ref, **rest}
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == _CONFLICTS:
                out.setdefault("allOf", []).extend(self.node(sub, open_root=True) for sub in value)
                continue
            if key in _ANNOTATIONS or key.startswith("x-"):
                continue
            if key in _SCHEMA_MAPS:
                out[key] = {name: self.node(sub) for name, sub in value.items()}
            elif key in _SINGLE_SUBSCHEMA:
                out[key] = self.node(value)
            elif key in _COMBINATORS:
                out.setdefault(key, []).extend(self.node(sub, open_root=True) for sub in value)
            elif key == "prefixItems":
                out[key] = [self.node(sub) for sub in value]
            elif key in ("exclusiveMinimum", "exclusiveMaximum") and isinstance(value, bool):
                bound = "minimum" if key == "exclusiveMinimum" else "maximum"
                if value and bound in node:
                    out[key] = node[bound]
            else:
                out[key] = value
        if "exclusiveMinimum" in out and isinstance(node.get("exclusiveMinimum"), bool):
            out.pop("minimum", None)
        if "exclusiveMaximum" in out and isinstance(node.get("exclusiveMaximum"), bool):
            out.pop("maximum", None)
        self._add_format_checks(node, out)
        if self.oas30 and node.get("nullable") is True:
            _allow_null(out)
        if self.strict and not open_root:
            self._forbid_extra(node, out)
        return out

    def _add_format_checks(self, node: Mapping[str, Any], out: dict[str, Any]) -> None:
        fmt = node.get("format")
        if node.get("x-is-msdate") or node.get("x-is-msdate-time"):
            check, pattern = "msdate", MSDATE_PATTERN
        elif fmt == "uuid":
            check, pattern = "uuid", UUID_PATTERN
        elif fmt == "date-time" or node.get("x-is-datetime"):
            check, pattern = "iso-datetime", ISO_DATETIME_PATTERN
        elif fmt == "date":
            check, pattern = "iso-date", ISO_DATE_PATTERN
        else:
            if fmt == "int32" and node.get("type") == "integer":
                out.setdefault("minimum", _INT32[0])
                out.setdefault("maximum", _INT32[1])
            return
        out[_CHECK_KEY] = check
        if "pattern" in out:  # keep the spec's own pattern too
            out.setdefault("allOf", []).append({"pattern": pattern, _CHECK_KEY: check})
        else:
            out["pattern"] = pattern

    def _forbid_extra(self, node: Mapping[str, Any], out: dict[str, Any]) -> None:
        if "additionalProperties" in node or "unevaluatedProperties" in node:
            return  # the spec decided; respect it
        if any(key in node for key in _COMBINATORS) and self._describes_object(node, set()):
            out["unevaluatedProperties"] = False  # sees through allOf/oneOf/$ref
        elif "properties" in node:
            out["additionalProperties"] = False

    def _describes_object(self, node: Any, seen: set[str]) -> bool:
        if not isinstance(node, dict):
            return False
        if "$ref" in node:
            ref = node["$ref"]
            if ref in seen:
                return False
            seen.add(ref)
            return self._describes_object(_resolve_pointer(self.document, ref), seen)
        if "properties" in node or node.get("type") == "object":
            return True
        return any(
            self._describes_object(sub, seen) for key in _COMBINATORS for sub in node.get(key, [])
        )

    def _flatten(self, node: Mapping[str, Any], depth: int) -> dict[str, Any]:
        """Merge ``allOf`` branches into one schema (strict mode only).

        ``additionalProperties: false`` on each branch would reject the other branches'
        properties, and ``unevaluatedProperties`` cannot help when a branch *extends a
        nested object* (CreditNoteWebhookEvent adds ``events[].data``). Merging gives each
        instance location the union of declared properties, so strictness stays exact.
        """
        merged: dict[str, Any] = {k: v for k, v in node.items() if k != "allOf"}
        for branch in node.get("allOf", []):
            merged = self._merge(merged, self._deref(branch), depth + 1)
        return merged

    def _deref(self, node: Any) -> Any:
        """Inline a branch's ``$ref`` (3.1 siblings are merged on top) and flatten it."""
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            target = self._deref(_resolve_pointer(self.document, node["$ref"]))
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            if self.oas30 or not siblings:
                return target
            return self._merge(target, self._deref(siblings), 0)
        if "allOf" in node:
            return self._flatten(node, 0)
        return node

    def _merge(self, left: Any, right: Any, depth: int) -> Any:
        if not isinstance(left, dict) or not isinstance(right, dict) or depth > 32:
            return {"allOf": [left, right]}  # give up merging; plain conjunction
        out = dict(left)
        for key, value in right.items():
            if key not in out or out[key] == value:
                out[key] = value
            elif key in _ANNOTATIONS or key.startswith("x-"):
                continue
            elif key == "properties":
                props = dict(out[key])
                for name, sub in value.items():
                    props[name] = (
                        self._merge(self._deref(props[name]), self._deref(sub), depth + 1)
                        if name in props
                        else sub
                    )
                out[key] = props
            elif key == "required":
                out[key] = list(dict.fromkeys([*out[key], *value]))
            elif key == "items":
                out[key] = self._merge(self._deref(out[key]), self._deref(value), depth + 1)
            else:  # both sides constrain the same keyword differently: keep both
                out[_CONFLICTS] = [*out.get(_CONFLICTS, []), {key: value}]
        return out

    def _open_ref(self, ref: str) -> str:
        """Point a oneOf/anyOf branch at a copy of its target whose root allows extra keys.

        In strict mode the composing schema gets ``unevaluatedProperties: false``, which
        sees the winning branch's properties; the branch root itself must stay open.
        Nested objects inside the copy stay strict (each branch is a full alternative).
        """
        if ref not in self._open_index:
            self._open_index[ref] = len(self.open_roots)
            self.open_roots.append(None)  # reserve the slot (guards recursion)
            target = _resolve_pointer(self.document, ref)
            self.open_roots[self._open_index[ref]] = self.node(target, open_root=True)
        return f"#/x-open/{self._open_index[ref]}"

    @staticmethod
    def _with_envelope(root: dict[str, Any]) -> dict[str, Any]:
        merged = dict(root)
        merged["properties"] = {**ENVELOPE_PROPERTIES, **root.get("properties", {})}
        return merged


def _allow_null(out: dict[str, Any]) -> None:
    kind = out.get("type")
    if isinstance(kind, str):
        out["type"] = [kind, "null"]
    elif isinstance(kind, list) and "null" not in kind:
        out["type"] = [*kind, "null"]
    if "enum" in out and None not in out["enum"]:
        out["enum"] = [*out["enum"], None]


def _response_schema_names(document: Mapping[str, Any]) -> set[str]:
    """Components used directly as a 2xx JSON response body (these get the envelope)."""
    if not str(document.get("openapi", "")).startswith("3.0"):
        return set()  # identity/webhooks (3.1) responses carry no envelope
    names: set[str] = set()
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            for status, response in operation.get("responses", {}).items():
                if not str(status).startswith("2") or not isinstance(response, dict):
                    continue
                for media in response.get("content", {}).values():
                    ref = media.get("schema", {}).get("$ref", "")
                    if ref.startswith("#/components/schemas/"):
                        names.add(ref.rsplit("/", 1)[-1])
    return names


def translate_document(
    document: Mapping[str, Any], *, strict: bool = False, extras: bool = True
) -> dict[str, Any]:
    """Translate a whole OpenAPI document's schemas to JSON Schema 2020-12 (uncached).

    The result keeps ``#/components/schemas/<Name>`` pointers valid, adds
    ``#/components/x-envelope/<Name>`` for response schemas (when ``extras``) and
    ``#/x-open/<i>`` for strict-mode allOf branches.
    """
    return _Translator(document, strict=strict, extras=extras).translate()


@functools.cache
def _translated(spec: str, strict: bool, extras: bool) -> dict[str, Any]:
    return translate_document(load_spec(spec), strict=strict, extras=extras)


def translated_schema(
    schema_name: str, *, spec: str = ACCOUNTING, strict: bool = False, extras: bool = True
) -> Any:
    """The translated JSON Schema of one component (for debugging and tests; do not mutate)."""
    return _translated(spec, strict, extras)["components"]["schemas"][schema_name]


class XeroSchemaValidator:
    """Validates instances against ``#/components/schemas/<schema_name>`` of one spec.

    Build once and reuse (see :func:`validator_for`): the jsonschema validator and registry
    are created in ``__init__`` so per-instance validation is just the tree walk.
    ``spec`` is a file name in :data:`SPEC_DIR` or an already-parsed OpenAPI document.
    ``many=True`` expects a JSON array of the schema (e.g. ``GET /connections``).
    ``extras`` declares Xero's response envelope (on response schemas, at the root only) and
    :data:`XERO_UNDECLARED_PROPERTIES`; ``extras=False`` validates against the bare spec.
    """

    def __init__(
        self,
        schema_name: str,
        *,
        spec: str | Mapping[str, Any] = ACCOUNTING,
        strict: bool = False,
        many: bool = False,
        extras: bool = True,
    ) -> None:
        if isinstance(spec, str):
            document = _translated(spec, strict, extras)
            label = spec
        else:
            document = translate_document(spec, strict=strict, extras=extras)
            label = "inline"
        components = document["components"]
        if schema_name not in components["schemas"]:
            raise KeyError(f"{schema_name!r} is not in #/components/schemas of {label}")
        mode = ("strict" if strict else "lenient") + ("+extras" if extras else "")
        base = f"https://xero-spec.invalid/{label}/{mode}"
        section = "x-envelope" if schema_name in components["x-envelope"] else "schemas"
        root: dict[str, Any] = {"$ref": f"{base}#/components/{section}/{schema_name}"}
        if many:
            root = {"type": "array", "items": root}
        registry: Registry[Any] = Registry().with_resource(
            base, DRAFT202012.create_resource(document)
        )
        self.schema_name = schema_name
        self.strict = strict
        self._validator = Draft202012Validator(root, registry=registry)

    def iter_errors(self, instance: Any) -> Iterator[ValidationError]:
        """Raw jsonschema errors, for callers that want more than strings."""
        return self._validator.iter_errors(instance)

    def is_valid(self, instance: Any) -> bool:
        return self._validator.is_valid(instance)

    def errors(self, instance: Any) -> list[str]:
        """Readable messages, each prefixed by the JSON path (``Invoices[3].Date: ...``)."""
        if self._validator.is_valid(instance):
            return []
        return [msg for err in self._validator.iter_errors(instance) for msg in _describe(err)]

    def assert_valid(self, instance: Any) -> None:
        """Raise :class:`XeroSpecError` (an AssertionError) listing up to 10 errors."""
        messages = self.errors(instance)
        if messages:
            raise XeroSpecError(self.schema_name, messages)


@functools.cache
def validator_for(
    schema_name: str,
    *,
    spec: str = ACCOUNTING,
    strict: bool = False,
    many: bool = False,
    extras: bool = True,
) -> XeroSchemaValidator:
    """Cached :class:`XeroSchemaValidator` per (schema, spec, mode)."""
    return XeroSchemaValidator(schema_name, spec=spec, strict=strict, many=many, extras=extras)


def errors(
    instance: Any,
    schema_name: str,
    *,
    spec: str = ACCOUNTING,
    strict: bool = False,
    many: bool = False,
    extras: bool = True,
) -> list[str]:
    """Readable validation errors (empty list = valid)."""
    validator = validator_for(schema_name, spec=spec, strict=strict, many=many, extras=extras)
    return validator.errors(instance)


def assert_valid(
    instance: Any,
    schema_name: str,
    *,
    spec: str = ACCOUNTING,
    strict: bool = False,
    many: bool = False,
    extras: bool = True,
) -> None:
    """Raise :class:`XeroSpecError` (an AssertionError) if ``instance`` is invalid."""
    validator = validator_for(schema_name, spec=spec, strict=strict, many=many, extras=extras)
    validator.assert_valid(instance)


validate = assert_valid
"""Alias: ``validate(instance, "Invoices", spec=ACCOUNTING, strict=True)``."""


RFC3339_DATETIME_PATTERN = r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
"""RFC 3339 ``date-time`` as a request must send it: the offset is required (no leniency)."""


def header_parameters(
    path: str, method: str = "get", *, spec: str = ACCOUNTING
) -> dict[str, dict[str, Any]]:
    """The header parameters an operation declares (path-level and operation-level, ``$ref``s
    resolved), by lower-case header name."""
    document = load_spec(spec)
    item = document["paths"][path]
    declared: dict[str, dict[str, Any]] = {}
    for raw in [*item.get("parameters", []), *item[method].get("parameters", [])]:
        parameter = _resolve_pointer(document, raw["$ref"]) if "$ref" in raw else raw
        if parameter.get("in") == "header":
            declared[str(parameter["name"]).lower()] = parameter
    return declared


def request_header_errors(
    path: str, headers: Mapping[str, str], method: str = "get", *, spec: str = ACCOUNTING
) -> list[str]:
    """What is wrong with a request's headers against the operation's declared header
    parameters: a required one missing, or a value that is not its ``format`` (``date-time``
    checked strictly as RFC 3339, ``uuid``). Undeclared headers are not checked."""
    given = {name.lower(): value for name, value in headers.items()}
    problems = []
    for name, parameter in header_parameters(path, method, spec=spec).items():
        value = given.get(name)
        if value is None:
            if parameter.get("required"):
                problems.append(f"header {parameter['name']}: required but missing")
            continue
        fmt = parameter.get("schema", {}).get("format")
        if fmt == "date-time" and not re.match(RFC3339_DATETIME_PATTERN, value):
            problems.append(f"header {parameter['name']}: {value!r} is not an RFC 3339 date-time")
        elif fmt == "uuid" and not re.match(UUID_PATTERN, value):
            problems.append(f"header {parameter['name']}: {value!r} is not a UUID")
    return problems


def format_path(parts: Iterable[str | int]) -> str:
    """``["Invoices", 3, "Date"]`` -> ``Invoices[3].Date`` (``<root>`` when empty)."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "<root>"


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_CHECK_TEXT = {
    "msdate": "is not a Xero MS-JSON date /Date(<ms>[+hhmm])/",
    "uuid": "is not a UUID",
    "iso-datetime": "is not an ISO 8601 date-time",
    "iso-date": "is not an ISO 8601 date (YYYY-MM-DD)",
}


def _describe(error: ValidationError) -> list[str]:
    """One or more readable messages for a jsonschema error."""
    parts = list(error.absolute_path)
    path = format_path(parts)
    schema = error.schema if isinstance(error.schema, dict) else {}
    instance = error.instance
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        declared = schema.get("properties", {})
        where = schema.get(_COMPONENT_KEY)
        suffix = f" of {where!r}" if where else ""
        return [
            f"{format_path([*parts, key])}: property not declared in the spec schema{suffix} "
            "(strict mode)"
            for key in instance
            if key not in declared
        ]
    if error.validator == "pattern" and schema.get(_CHECK_KEY) in _CHECK_TEXT:
        return [f"{path}: {_short(instance)} {_CHECK_TEXT[schema[_CHECK_KEY]]}"]
    if error.validator == "const":
        return [f"{path}: expected {error.validator_value!r}, got {_short(instance)}"]
    if error.validator in ("oneOf", "anyOf"):
        branches = schema.get(str(error.validator), [])
        consts = [b["const"] for b in branches if isinstance(b, dict) and "const" in b]
        if consts and len(consts) == len(branches):
            return [f"{path}: {_short(instance)} is not one of {consts}"]
        if error.context:  # no branch matched: show the deepest failure of a same-type branch
            same_type = [e for e in error.context if e.validator != "type" or e.relative_path]
            pick = max(same_type, key=lambda e: len(e.absolute_path), default=None)
            closest = _describe(pick or best_match(error.context))[0]
            return [f"{path}: matches no {error.validator} alternative; closest: {closest}"]
    if error.validator == "type":
        return [f"{path}: {_short(instance)} is not of type {error.validator_value!r}"]
    if error.validator == "enum" and isinstance(error.validator_value, list):
        allowed = error.validator_value
        if len(allowed) <= 12:
            shown = repr(allowed)
        else:
            shown = f"[{', '.join(map(repr, allowed[:10]))}, ...] ({len(allowed)} values)"
        return [f"{path}: {_short(instance)} is not one of {shown}"]
    message = error.message
    if len(message) > 300:
        message = message[:200] + " ... " + message[-95:]
    return [f"{path}: {message}"]
