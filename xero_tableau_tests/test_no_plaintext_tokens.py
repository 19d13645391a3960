"""No Xero token is ever written in plain text: not in the state DB, not in logs, not in Dagster's
event log or metadata, not in the lake. A real connect, a refresh and a real Dagster run, then a
grep of everything they wrote for every token the sandbox ever issued."""

import logging
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from xero_tableau.defs.reference_assets import reference_assets
from xero_tableau.defs.resources import StateResource, XeroResource
from xero_tableau.store import db
from xero_tableau.store.crypto import load_fernet
from xero_tableau.token_store import TokenStore
from xero_tableau.xero.oauth import TokenSet
from xero_tableau_tests.xero_harness import (
    CallbackSandbox,
    connected_settings,
    sandbox_with_callback,
)


@pytest.fixture
def sandbox() -> Iterator[CallbackSandbox]:
    running = sandbox_with_callback()
    yield running
    running.stop()


def test_tokens_never_land_in_plain_text(
    sandbox: CallbackSandbox,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    home = tmp_path / "home"
    settings, tenants = connected_settings(sandbox, home)
    # Make the stored access token stale so the Dagster run has to refresh and rotate.
    store = TokenStore(db.connect(settings.database_url), load_fernet(None, settings.key_file))
    stored = store.load()
    assert stored is not None
    store.save(
        TokenSet(
            access_token=stored.tokens.access_token,
            expires_at=0.0,
            refresh_token=stored.tokens.refresh_token,
            refresh_issued_at=stored.tokens.refresh_issued_at,
        ),
        expected_version=stored.version,
    )
    # The resources carry every setting: nothing comes from the environment.
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    with dg.instance_for_test(temp_dir=str(dagster_home)) as instance:
        instance.add_dynamic_partitions("xero_tenants", [t.tenant_id for t in tenants])
        (organisation,) = [a for a in reference_assets if a.key.path[-1] == "organisation"]
        result = dg.materialize(
            [organisation],
            instance=instance,
            partition_key=tenants[0].tenant_id,
            resources={
                "xero": XeroResource(
                    state=StateResource(home=str(home)),
                    client_id=settings.xero_client_id or "",
                    client_secret=settings.xero_client_secret or "",
                    api_base=settings.xero_api_base,
                    identity_base=settings.xero_identity_base,
                    login_base=settings.xero_login_base,
                    redirect_uri=settings.xero_redirect_uri,
                )
            },
        )
        assert result.success
        events = "\n".join(str(e) for e in instance.all_logs(result.run_id))
    assert sandbox.sandbox.identity.refresh_count == 1, "the run should have rotated the tokens"

    tokens = sandbox.sandbox.identity.issued_tokens()
    assert len(tokens) >= 4  # two access and two refresh tokens at least
    written = [events, caplog.text]
    for folder in (home, dagster_home):
        written += [p.read_bytes().decode("latin-1") for p in folder.rglob("*") if p.is_file()]
    for token in tokens:
        for fragment in (token, token[:32], token[-32:]):
            assert all(fragment not in text for text in written), "a token was written in clear"
