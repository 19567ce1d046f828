"""Encryption of WHOOP tokens at rest: MultiFernet over WHOOPSYNC_TOKEN_ENCRYPTION_KEY."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr

__all__ = ["TokenCipher", "TokenDecryptError"]


class TokenDecryptError(Exception):
    """A stored token could not be decrypted with any configured key."""


class TokenCipher:
    """Comma-separated Fernet keys: the first encrypts, every one decrypts (key rotation)."""

    def __init__(self, keys: SecretStr | str | None) -> None:
        value = keys.get_secret_value() if isinstance(keys, SecretStr) else keys
        parts = [k.strip() for k in (value or "").split(",") if k.strip()]
        if not parts:
            raise ValueError("WHOOPSYNC_TOKEN_ENCRYPTION_KEY is required to store WHOOP tokens")
        self._fernet = MultiFernet([Fernet(k.encode()) for k in parts])

    def encrypt(self, plaintext: str) -> str:
        """Encrypt with the first key."""
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        """Decrypt with whichever configured key encrypted it."""
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            raise TokenDecryptError(
                "stored token does not decrypt with any configured key"
            ) from None

    def rotate(self, ciphertext: str) -> str:
        """Re-encrypt a token under the first key."""
        return self._fernet.rotate(ciphertext.encode()).decode()
