"""Self-tests for ``xero_spec``: the validator must accept Xero's own examples and reject bad data.

A validator that silently passes everything would make every emulator contract test useless,
so each check here pairs a "valid" case from Xero's spec with a mutation that must fail and
whose message must name the JSON path.
"""

import copy
from typing import Any

import pytest

from xero_tableau_tests import xero_spec as xs

pytestmark = pytest.mark.skipif(bool(xs.missing_specs()), reason=xs.skip_reason())

# GET endpoints whose documented 200 example must validate (the entities we sync).
ENDPOINTS = [
    "/Invoices",
    "/Contacts",
    "/Accounts",
    "/TrackingCategories",
    "/Payments",
    "/BankTransactions",
    "/CreditNotes",
    "/ManualJournals",
    "/PurchaseOrders",
    "/TaxRates",
    "/Currencies",
    "/Organisation",
]

# Spec quirk: the GET /Payments example is stale. Xero-OpenAPI PR #526 (2022) fixed the
# BatchPayment schema to number/boolean "to align with data returned by Accounting API" but
# left the example's strings. Any other lenient failure would be our bug.
KNOWN_EXAMPLE_ERRORS: dict[str, list[str]] = {
    "/Payments": [
        "Payments[0].BatchPayment.TotalAmount: '50.00' is not of type 'number'",
        "Payments[0].BatchPayment.IsReconciled: 'false' is not of type 'boolean'",
    ],
}

# Informative only: properties in Xero's own examples that the schemas do not declare (beyond
# the envelope and xs.XERO_UNDECLARED_PROPERTIES). "TaxNumbeType" is a typo in the example.
KNOWN_STRICT_GAPS: dict[str, set[str]] = {
    "/Contacts": {"Contacts[0].TaxNumbeType", "Contacts[1].TaxNumbeType"},
    "/BankTransactions": {"BankTransactions[0].BatchPayment"},
    "/PurchaseOrders": {
        f"PurchaseOrders[{i}].{name}"
        for i in (0, 1)
        for name in ("HasErrors", "IsDiscounted", "Type")
    },
}

UNDECLARED = ": property not declared in the spec schema"
DAY_MS = "/Date(1551916800000+0000)/"


def _example(path: str) -> tuple[str, Any]:
    name, example = xs.response_example(path)
    assert name is not None, f"{path}: response schema is inline, expected a $ref"
    return name, example


def _invoices_example() -> dict[str, Any]:
    return _example("/Invoices")[1]


def _tracked_invoices(count: int) -> dict[str, Any]:
    """An ``Invoices`` response with ``count`` invoices, each with tracked line items.

    Built from Xero's examples: the single-invoice example (which has a line item) plus the
    single-PurchaseOrder example's Tracking (list examples all have empty Tracking).
    """
    envelope = _invoices_example()
    invoice = xs.response_example("/Invoices/{InvoiceID}")[1]["Invoices"][0]
    order = xs.response_example("/PurchaseOrders/{PurchaseOrderID}")[1]["PurchaseOrders"][0]
    tracking = order["LineItems"][0]["Tracking"]
    assert tracking, "expected the spec's PurchaseOrder example to carry Tracking"
    line = {k: v for k, v in invoice["LineItems"][0].items() if k != "ValidationErrors"}
    invoice = {k: v for k, v in invoice.items() if k not in ("Contact", "ValidationErrors")}
    invoice["Contact"] = {"ContactID": "430fa14a-f945-44d3-9f97-5df5e28441b8", "Name": "Liam"}
    invoice["LineItems"] = [dict(line, Tracking=copy.deepcopy(tracking)) for _ in range(3)]
    envelope["Invoices"] = [copy.deepcopy(invoice) for _ in range(count)]
    return envelope


# --- the spec's own examples -------------------------------------------------------------


def test_loader_keeps_iso_timestamps_as_strings() -> None:
    """PyYAML would turn the unquoted webhook ``eventDateUtc`` into a datetime."""
    example = xs.load_spec(xs.WEBHOOKS)["components"]["responses"]["200WebhookDataReceivedOk"]
    event = example["content"]["application/json"]["schema"]["example"]["events"][0]
    assert event["eventDateUtc"] == "2024-06-21T01:15:39.902"


@pytest.mark.parametrize("path", ENDPOINTS)
def test_spec_example_validates(path: str) -> None:
    name, example = _example(path)
    assert xs.errors(example, name) == KNOWN_EXAMPLE_ERRORS.get(path, [])


@pytest.mark.parametrize("path", ENDPOINTS)
def test_spec_example_strict_only_adds_undeclared_properties(
    path: str, record_property: Any
) -> None:
    """Strict mode may only add "undeclared property" errors; anything else is our bug."""
    name, example = _example(path)
    lenient = set(xs.errors(example, name))
    strict_only = [m for m in xs.errors(example, name, strict=True) if m not in lenient]
    assert all(UNDECLARED in m for m in strict_only), strict_only
    gaps = {m.split(":", 1)[0] for m in strict_only}
    record_property("undeclared_in_spec", sorted(gaps))
    if gaps != KNOWN_STRICT_GAPS.get(path, set()):
        print(f"{path}: example properties missing from schema {name!r}: {sorted(gaps)}")


def test_strict_reports_the_known_example_typo() -> None:
    """Proves strict mode bites on real data: the Contacts example says ``TaxNumbeType``."""
    name, example = _example("/Contacts")
    assert "Contacts[0].TaxNumbeType" + UNDECLARED + " of 'Contact' (strict mode)" in xs.errors(
        example, name, strict=True
    )


def test_extras_off_is_the_bare_spec() -> None:
    """Without extras the envelope and ``DateString`` are undeclared (a spec gap)."""
    name, example = _example("/Invoices")
    assert xs.errors(example, name, strict=True) == []
    paths = {m.split(":", 1)[0] for m in xs.errors(example, name, strict=True, extras=False)}
    assert {"Id", "Status", "ProviderName", "DateTimeUTC", "Invoices[0].DateString"} <= paths


# --- mutations must fail, naming the path -------------------------------------------------


def test_wrong_status_enum() -> None:
    example = _invoices_example()
    example["Invoices"][1]["Status"] = "OPEN"
    assert xs.errors(example, "Invoices") == [
        "Invoices[1].Status: 'OPEN' is not one of "
        "['DRAFT', 'SUBMITTED', 'DELETED', 'AUTHORISED', 'PAID', 'VOIDED']"
    ]


def test_long_enum_is_summarised() -> None:
    example = _invoices_example()
    example["Invoices"][0]["CurrencyCode"] = "XXX"
    (message,) = xs.errors(example, "Invoices")
    assert message.startswith("Invoices[0].CurrencyCode: 'XXX' is not one of ['AED', ")
    assert message.endswith("values)")


def test_number_where_string_required() -> None:
    example = _invoices_example()
    example["Invoices"][0]["InvoiceNumber"] = 123
    assert xs.errors(example, "Invoices") == [
        "Invoices[0].InvoiceNumber: 123 is not of type 'string'"
    ]


def test_string_where_number_required() -> None:
    example = _invoices_example()
    example["Invoices"][0]["Total"] = "10.00"
    assert xs.errors(example, "Invoices") == ["Invoices[0].Total: '10.00' is not of type 'number'"]


@pytest.mark.parametrize(
    "value",
    ["/Date(1518685950940+0000)/", "/Date(1439434356790)/", "/Date(-86400000)/", "/Date(0-05)/"],
)
def test_msdate_accepts_xero_forms(value: str) -> None:
    example = _invoices_example()
    example["Invoices"][0]["Date"] = value
    example["Invoices"][0]["UpdatedDateUTC"] = value  # x-is-msdate-time
    assert xs.errors(example, "Invoices") == []


@pytest.mark.parametrize(
    "value",
    ["2019-03-07", "2019-03-07T00:00:00", "/Date(abc)/", "Date(1439434356790)", "/Date(1+00000)/"],
)
def test_malformed_msdate(value: str) -> None:
    example = _invoices_example()
    example["Invoices"][2]["DueDate"] = value
    assert xs.errors(example, "Invoices") == [
        f"Invoices[2].DueDate: {value!r} is not a Xero MS-JSON date /Date(<ms>[+hhmm])/"
    ]


def test_bad_uuid_and_case_insensitive_hex() -> None:
    example = _invoices_example()
    example["Invoices"][0]["InvoiceID"] = example["Invoices"][0]["InvoiceID"].upper()
    assert xs.errors(example, "Invoices") == []
    example["Invoices"][0]["InvoiceID"] = "not-a-uuid"
    assert xs.errors(example, "Invoices") == ["Invoices[0].InvoiceID: 'not-a-uuid' is not a UUID"]


def test_bad_tracking_option_id_deep_path() -> None:
    payload = _tracked_invoices(5)
    assert xs.errors(payload, "Invoices", strict=True) == []
    payload["Invoices"][3]["LineItems"][0]["Tracking"][0]["TrackingOptionID"] = "x"
    assert xs.errors(payload, "Invoices", strict=True) == [
        "Invoices[3].LineItems[0].Tracking[0].TrackingOptionID: 'x' is not a UUID"
    ]


def test_missing_required_property() -> None:
    name, example = _example("/BankTransactions")
    del example["BankTransactions"][0]["BankAccount"]
    assert xs.errors(example, name) == ["BankTransactions[0]: 'BankAccount' is a required property"]


def test_invented_property_fails_only_in_strict_mode() -> None:
    example = _invoices_example()
    example["Invoices"][0]["Foo"] = 1
    example["Invoices"][0]["Contact"]["Bar"] = "x"
    assert xs.errors(example, "Invoices") == []
    assert sorted(xs.errors(example, "Invoices", strict=True)) == [
        "Invoices[0].Contact.Bar" + UNDECLARED + " of 'Contact' (strict mode)",
        "Invoices[0].Foo" + UNDECLARED + " of 'Invoice' (strict mode)",
    ]


def test_envelope_is_declared_at_root_only_and_type_checked() -> None:
    example = _invoices_example()
    example["Invoices"][0]["ProviderName"] = "nested envelope key is invented"
    example["DateTimeUTC"] = "2019-03-07T00:00:00"
    example["Oops"] = True
    assert xs.errors(example, "Invoices", strict=True) == [
        "DateTimeUTC: '2019-03-07T00:00:00' is not a Xero MS-JSON date /Date(<ms>[+hhmm])/",
        "Invoices[0].ProviderName" + UNDECLARED + " of 'Invoice' (strict mode)",
        "Oops" + UNDECLARED + " of 'Invoices' (strict mode)",
    ]


def test_companion_fields_are_type_checked() -> None:
    example = _invoices_example()
    example["Invoices"][0]["DateString"] = DAY_MS  # wrong way round: must be ISO
    assert xs.errors(example, "Invoices") == [
        f"Invoices[0].DateString: {DAY_MS!r} is not an ISO 8601 date-time"
    ]


def test_assert_valid_reports_at_most_ten_messages() -> None:
    payload = _tracked_invoices(15)
    for invoice in payload["Invoices"]:
        invoice["Status"] = "NOPE"
    with pytest.raises(AssertionError) as info:
        xs.assert_valid(payload, "Invoices")
    assert isinstance(info.value, xs.XeroSpecError)
    assert len(info.value.messages) == 15
    text = str(info.value)
    assert text.startswith("15 error(s) validating against 'Invoices':")
    assert "Invoices[9].Status" in text and "Invoices[10].Status" not in text
    assert text.endswith("... and 5 more")
    xs.validate(_invoices_example(), "Invoices", strict=True)  # alias; valid -> no raise


def test_translation_marks_xero_specific_checks() -> None:
    date = xs.translated_schema("Invoice")["properties"]["Date"]
    assert date["pattern"] == xs.MSDATE_PATTERN
    assert "format" not in date
    strict = xs.translated_schema("Invoice", strict=True)
    assert strict["additionalProperties"] is False
    assert "additionalProperties" not in xs.translated_schema("Invoice")


def test_openapi30_translation_on_a_synthetic_spec() -> None:
    """Xero's specs have no ``nullable``; prove the 3.0 rules on a tiny document instead."""
    doc: dict[str, Any] = {
        "openapi": "3.0.0",
        "components": {
            "schemas": {
                "Thing": {
                    "type": "object",
                    "properties": {
                        "Maybe": {"type": "string", "nullable": True, "enum": ["A"]},
                        "Never": {"type": "string"},
                        "Score": {"type": "number", "minimum": 0, "exclusiveMinimum": True},
                        "Ref": {"$ref": "#/components/schemas/Code", "type": "object"},
                        "When": {"type": "string", "format": "date", "x-is-msdate": True},
                    },
                },
                "Code": {"type": "string", "enum": ["X"]},
            }
        },
    }
    validator = xs.XeroSchemaValidator("Thing", spec=doc, strict=True)
    assert validator.errors({"Maybe": None, "Score": 1, "Ref": "X", "When": DAY_MS}) == []
    assert validator.errors({"Maybe": "B", "Never": None, "Score": 0, "Ref": "Y", "When": "x"}) == [
        "Maybe: 'B' is not one of ['A', None]",
        "Never: None is not of type 'string'",
        "Score: 0 is less than or equal to the minimum of 0",
        "Ref: 'Y' is not one of ['X']",
        "When: 'x' is not a Xero MS-JSON date /Date(<ms>[+hhmm])/",
    ]


def test_strict_oneof_of_objects_on_a_synthetic_spec() -> None:
    """oneOf branches stay open at their root; the composing schema rejects extras."""
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "components": {
            "schemas": {
                "Pet": {"oneOf": [{"$ref": "#/components/schemas/Cat"}, {"type": "integer"}]},
                "Cat": {
                    "type": "object",
                    "required": ["meow"],
                    "properties": {
                        "meow": {"type": "boolean"},
                        "toy": {"type": "object", "properties": {"n": {"type": "string"}}},
                    },
                },
            }
        },
    }
    validator = xs.XeroSchemaValidator("Pet", spec=doc, strict=True)
    assert validator.errors({"meow": True, "toy": {"n": "a"}}) == []
    assert validator.errors(3) == []
    assert validator.errors({"meow": True, "zzz": 1}) == [
        "<root>: Unevaluated properties are not allowed ('zzz' was unexpected)"
    ]
    (message, _) = validator.errors({"meow": True, "toy": {"x": 1}})
    assert message == (
        "<root>: matches no oneOf alternative; closest: "
        "toy.x: property not declared in the spec schema (strict mode)"
    )


# --- identity (/connections) and webhooks ---------------------------------------------------


def test_connections_response() -> None:
    name, connections = xs.response_example("/Connections", spec=xs.IDENTITY)
    assert name == "Connection"
    connections.append(dict(connections[0], authEventId="d99ecdfe-391d-43d2-b834-17636ba90e8d"))
    assert xs.errors(connections, "Connection", spec=xs.IDENTITY, many=True, strict=True) == []
    connections[1]["tenantId"] = "tenant-1"
    connections[1]["createdDateUtc"] = "/Date(1551916800000)/"
    connections[0]["orgName"] = "x"
    assert xs.errors(connections, "Connection", spec=xs.IDENTITY, many=True, strict=True) == [
        "[0].orgName" + UNDECLARED + " of 'Connection' (strict mode)",
        "[1].tenantId: 'tenant-1' is not a UUID",
        "[1].createdDateUtc: '/Date(1551916800000)/' is not an ISO 8601 date-time",
    ]
    assert xs.errors({"id": "x"}, "Connection", spec=xs.IDENTITY, many=True) == [
        "<root>: {'id': 'x'} is not of type 'array'"
    ]


def _webhook_examples() -> tuple[dict[str, Any], dict[str, Any]]:
    spec = xs.load_spec(xs.WEBHOOKS)
    contact = spec["components"]["responses"]["200WebhookDataReceivedOk"]["content"]
    credit = spec["webhooks"]["creditNotes"]["post"]["requestBody"]["content"]
    return (
        copy.deepcopy(contact["application/json"]["schema"]["example"]),
        copy.deepcopy(credit["application/json"]["examples"]["creditNoteCreate"]["value"]),
    )


@pytest.mark.parametrize("strict", [False, True])
def test_webhook_examples_validate(strict: bool) -> None:
    contact, credit = _webhook_examples()
    assert xs.errors(contact, "WebhookEvent", spec=xs.WEBHOOKS, strict=strict) == []
    assert xs.errors(credit, "CreditNoteWebhookEvent", spec=xs.WEBHOOKS, strict=strict) == []


def test_webhook_mutations() -> None:
    contact, credit = _webhook_examples()
    contact["events"][0]["eventType"] = "DELETE"
    contact["events"][0]["resourceId"] = "nope"
    contact["events"][0]["data"] = {}
    assert xs.errors(contact, "WebhookEvent", spec=xs.WEBHOOKS, strict=True) == [
        "events[0].resourceId: 'nope' is not a UUID",
        "events[0].eventType: 'DELETE' is not one of ['CREATE', 'UPDATE']",
        "events[0].data" + UNDECLARED + " (strict mode)",
    ]
    # allOf in strict mode: the composed schema declares data; its nested keys stay strict.
    credit["events"][0]["data"]["Status"] = "OPEN"
    credit["events"][0]["data"]["Total"] = 1
    credit["events"][0]["eventCategory"] = "INVOICE"
    credit["extra"] = 1
    errors = xs.errors(credit, "CreditNoteWebhookEvent", spec=xs.WEBHOOKS, strict=True)
    assert errors == [
        "events[0].eventCategory: expected 'CREDITNOTE', got 'INVOICE'",
        "events[0].data.Status: 'OPEN' is not one of "
        "['DRAFT', 'SUBMITTED', 'DELETED', 'AUTHORISED', 'PAID', 'VOIDED']",
        "events[0].data.Total" + UNDECLARED + " (strict mode)",
        "extra" + UNDECLARED + " of 'CreditNoteWebhookEvent' (strict mode)",
    ]


def test_intent_to_receive_payload_violates_spec_minimum() -> None:
    """Spec quirk: Xero's intent-to-receive probe sends sequence 0 but the spec says >= 1."""
    probe = {"events": [], "lastEventSequence": 0, "firstEventSequence": 0, "entropy": "X"}
    assert xs.errors(probe, "WebhookEvent", spec=xs.WEBHOOKS) == [
        "lastEventSequence: 0 is less than the minimum of 1",
        "firstEventSequence: 0 is less than the minimum of 1",
    ]


# --- speed ----------------------------------------------------------------------------------


@pytest.mark.parametrize("strict", [False, True])
def test_thousand_invoices_validate_with_one_validator(strict: bool) -> None:
    """The validator is built once and reused (its speed is not a test's business)."""
    payload = _tracked_invoices(1000)
    validator = xs.validator_for("Invoices", strict=strict)
    assert validator is xs.validator_for("Invoices", strict=strict)  # built once, reused
    assert validator.errors(payload) == []
