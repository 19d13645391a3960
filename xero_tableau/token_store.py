"""The Xero token set in the state DB, encrypted at rest (Fernet), written with compare-and-swap
on a version number: the storage :class:`xero_tableau.xero.session.XeroSession` rotates through."""

import json
from datetime import UTC, datetime

import sqlalchemy as sa
from cryptography.fernet import Fernet
from sqlalchemy.engine import Engine

from xero_tableau.store.crypto import decrypt
from xero_tableau.store.db import xero_tokens
from xero_tableau.xero.oauth import TokenSet
from xero_tableau.xero.session import StaleTokenVersion, StoredTokens


class TokenStore:
    def __init__(self, engine: Engine, fernet: Fernet, name: str = "default") -> None:
        self.engine = engine
        self.fernet = fernet
        self.name = name

    def _encrypt(self, tokens: TokenSet) -> bytes:
        payload = {
            "access_token": tokens.access_token,
            "refresh_token": tokens.refresh_token,
            "expires_at": tokens.expires_at,
            "scope": tokens.scope,
            "refresh_issued_at": tokens.refresh_issued_at,
        }
        return self.fernet.encrypt(json.dumps(payload).encode())

    def _decrypt(self, blob: bytes) -> TokenSet:
        data = json.loads(decrypt(self.fernet, blob))
        return TokenSet(
            access_token=data["access_token"],
            expires_at=float(data["expires_at"]),
            refresh_token=data.get("refresh_token"),
            scope=data.get("scope", ""),
            refresh_issued_at=float(data.get("refresh_issued_at") or 0.0),
        )

    def load(self) -> StoredTokens | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(xero_tokens.c.version, xero_tokens.c.token_set).where(
                    xero_tokens.c.name == self.name
                )
            ).first()
        if row is None:
            return None
        return StoredTokens(self._decrypt(row.token_set), row.version)

    def save(self, tokens: TokenSet, expected_version: int | None) -> int:
        """Write ``tokens`` if the stored version is still ``expected_version`` (None: no row yet
        expected). Returns the new version; raises ``StaleTokenVersion`` when someone was first."""
        now = datetime.now(UTC)
        blob = self._encrypt(tokens)
        with self.engine.begin() as conn:
            current: int | None = expected_version
            if current is None:
                current = conn.execute(
                    sa.select(xero_tokens.c.version).where(xero_tokens.c.name == self.name)
                ).scalar()
                if current is None:
                    conn.execute(
                        xero_tokens.insert().values(
                            name=self.name, version=1, token_set=blob, updated_at=now
                        )
                    )
                    return 1
            result = conn.execute(
                xero_tokens.update()
                .where(xero_tokens.c.name == self.name)
                .where(xero_tokens.c.version == current)
                .values(
                    version=current + 1,
                    token_set=blob,
                    updated_at=now,
                    refresh_owner=None,
                    refresh_claim_until=None,
                )
            )
            if result.rowcount != 1:
                raise StaleTokenVersion(f"token set {self.name!r} changed since version {current}")
            return current + 1

    def claim_refresh(self, version: int, owner: str, until: float, now: float) -> bool:
        """Claim the right to spend the stored refresh token (version ``version``) until
        ``until``. False when the set changed or another live claim holds it."""
        with self.engine.begin() as conn:
            result = conn.execute(
                xero_tokens.update()
                .where(xero_tokens.c.name == self.name)
                .where(xero_tokens.c.version == version)
                .where(
                    sa.or_(
                        xero_tokens.c.refresh_claim_until.is_(None),
                        xero_tokens.c.refresh_claim_until < now,
                        xero_tokens.c.refresh_owner == owner,
                    )
                )
                .values(refresh_owner=owner, refresh_claim_until=until)
            )
            return result.rowcount == 1

    def release_claim(self, owner: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                xero_tokens.update()
                .where(xero_tokens.c.name == self.name)
                .where(xero_tokens.c.refresh_owner == owner)
                .values(refresh_owner=None, refresh_claim_until=None)
            )

    def clear(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(xero_tokens.delete().where(xero_tokens.c.name == self.name))
