"""Encryption of WHOOP tokens at rest: MultiFernet over WHOOPSYNC_TOKEN_ENCRYPTION_KEY."""

from __future__ import annotations

from collections import OrderedDict

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr

__all__ = ["TokenCipher", "TokenDecryptError"]

# Decrypted tokens a process keeps, most recently used first (about one per active user).
DECRYPTED_KEPT = 4096


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
        # Stored ciphertexts already decrypted (each encryption is unique, so a ciphertext
        # always decrypts the same): an event's job reads its user's token on every event.
        self._plain: OrderedDict[str, str] = OrderedDict()

    def encrypt(self, plaintext: str) -> str:
        """Encrypt with the first key."""
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        """Decrypt with whichever configured key encrypted it."""
        plain = self._plain.get(ciphertext)
        if plain is not None:
            self._plain.move_to_end(ciphertext)
            return plain
        try:
            plain = self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            raise TokenDecryptError(
                "stored token does not decrypt with any configured key"
            ) from None
        self._plain[ciphertext] = plain
        if len(self._plain) > DECRYPTED_KEPT:
            self._plain.popitem(last=False)
        return plain

    def rotate(self, ciphertext: str) -> str:
        """Re-encrypt a token under the first key."""
        return self._fernet.rotate(ciphertext.encode()).decode()
