"""The entity registry (``xero_tableau.entities``) against the Xero sandbox's own endpoint table:
the sandbox implements Xero's side from the spec and must not import the client code, so the two
tables are written independently; here they must agree on every fact they both state."""

import pytest

from xero_tableau.entities import (
    ENTITIES,
    OPTIONAL_ASSET_NAMES,
    REFERENCE,
    TRANSACTIONAL,
    WEBHOOK_CATEGORIES,
    entity,
    transactional,
)
from xero_tableau.sandbox.dataset import ENTITIES as SANDBOX_ENTITIES
from xero_tableau.sandbox.dataset import endpoint_scopes

SERVED = [name for name in ENTITIES if name in SANDBOX_ENTITIES]


def test_the_sandbox_serves_every_registered_entity() -> None:
    missing = sorted(set(ENTITIES) - set(SANDBOX_ENTITIES) - {"Organisation"})
    assert missing == [], f"registered but not served by the sandbox: {missing}"
    assert endpoint_scopes("Organisation") == ENTITIES["Organisation"].scopes


@pytest.mark.parametrize("name", SERVED)
def test_registry_and_sandbox_agree(name: str) -> None:
    ours, theirs = ENTITIES[name], SANDBOX_ENTITIES[name]
    assert ours.id_field == theirs.id_field
    assert ours.paged == theirs.paged
    assert ours.modified_since == theirs.modified_since
    assert ours.webhook_category == theirs.webhook_category
    assert ours.takes_ids == theirs.takes_ids
    assert ours.scopes == theirs.scopes
    # What we ask for must be what the endpoint takes: includeArchived only where archived
    # records are hidden without it, and unitdp=4 everywhere Xero takes it.
    assert ("includeArchived" in ours.params) == theirs.include_archived
    assert ("unitdp" in ours.params) == theirs.unit_dp
    if "unitdp" in ours.params:
        assert ours.params["unitdp"] == "4"


def test_names_are_unique_and_kinds_complete() -> None:
    names = [e.asset_name for e in ENTITIES.values()]
    assert len(names) == len(set(names))
    assert {e.endpoint for e in TRANSACTIONAL} | {e.endpoint for e in REFERENCE} == set(ENTITIES)
    for spec in TRANSACTIONAL:
        assert spec.paging == "page" and spec.layout is not None and spec.published_table
    for spec in REFERENCE:
        assert spec.layout is None and not spec.paged


def test_derived_views() -> None:
    assert {c: e.endpoint for c, e in WEBHOOK_CATEGORIES.items()} == {
        "INVOICE": "Invoices",
        "CREDITNOTE": "CreditNotes",
        "CONTACT": "Contacts",
    }
    assert set(OPTIONAL_ASSET_NAMES) == {"credit_notes", "manual_journals", "purchase_orders"}
    # Contacts are read first: the documents of the same sync name them.
    assert TRANSACTIONAL[0].endpoint == "Contacts"


def test_unknown_names_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown Xero entity 'Journals'"):
        entity("Journals")
    with pytest.raises(ValueError, match="not a transactional Xero entity: 'Accounts'"):
        transactional("Accounts")
