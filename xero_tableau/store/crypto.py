"""The Fernet key that encrypts secrets at rest in the state DB.

``XT_ENCRYPTION_KEY`` wins when set (production: keep it in your secret manager). Otherwise the
embedded default generates a key file under ``XT_HOME`` with 0600 permissions on first use.
"""

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken


class EncryptionKeyError(ValueError):
    """The encryption key is malformed, or does not open what was stored with another key."""


def load_fernet(key: str | None, key_file: Path) -> Fernet:
    if key:
        try:
            return Fernet(key.encode())
        except (ValueError, TypeError) as exc:
            raise EncryptionKeyError(
                "XT_ENCRYPTION_KEY is not a valid Fernet key (32 url-safe base64-encoded bytes); "
                'make one with: python -c "from cryptography.fernet import Fernet; '
                'print(Fernet.generate_key().decode())"'
            ) from exc
    if key_file.exists():
        mode = key_file.stat().st_mode & 0o777
        if mode & 0o077:
            raise EncryptionKeyError(
                f"{key_file} is readable by others (mode {mode:o}); chmod 600 it"
            )
        return Fernet(key_file.read_bytes().strip())
    key_file.parent.mkdir(parents=True, exist_ok=True)
    new_key = Fernet.generate_key()
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(new_key)
    return Fernet(new_key)


def decrypt(fernet: Fernet, token: bytes) -> bytes:
    try:
        return fernet.decrypt(token)
    except InvalidToken as exc:
        raise EncryptionKeyError(
            "the stored Xero tokens cannot be decrypted with this key: XT_ENCRYPTION_KEY or the "
            "key file changed. Restore the key, or run `xero-tableau connect` to start afresh."
        ) from exc
