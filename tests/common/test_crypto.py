"""Token encryption: MultiFernet, first key encrypts, every key decrypts."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from common.crypto import TokenCipher, TokenDecryptError


def test_round_trips_and_hides_the_plaintext() -> None:
    cipher = TokenCipher(SecretStr(Fernet.generate_key().decode()))
    sealed = cipher.encrypt("access-token-value")
    assert "access-token-value" not in sealed
    assert cipher.decrypt(sealed) == "access-token-value"


def test_old_keys_still_decrypt_after_rotation() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    sealed_with_old = TokenCipher(old).encrypt("t")
    rotated = TokenCipher(f"{new}, {old}")
    assert rotated.decrypt(sealed_with_old) == "t"
    assert TokenCipher(new).decrypt(rotated.encrypt("t")) == "t"  # the first key encrypts
    assert TokenCipher(new).decrypt(rotated.rotate(sealed_with_old)) == "t"


def test_unknown_key_fails_cleanly() -> None:
    sealed = TokenCipher(Fernet.generate_key().decode()).encrypt("t")
    with pytest.raises(TokenDecryptError):
        TokenCipher(Fernet.generate_key().decode()).decrypt(sealed)


def test_missing_key_is_refused() -> None:
    with pytest.raises(ValueError, match="TOKEN_ENCRYPTION_KEY"):
        TokenCipher(None)
