"""Encryption at rest for secret settings (Fernet; several keys allow rotation)."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class UndecryptableSecret(ValueError):
    """A stored secret that none of the configured keys opens (a wrong or rotated-away key)."""


class SecretBox:
    """Encrypts with the first key, decrypts with any: `new,old` rotates without loss."""

    def __init__(self, keys: str) -> None:
        self._fernet = MultiFernet([Fernet(k.strip().encode()) for k in keys.split(",")])

    def encrypt(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise UndecryptableSecret(
                "a stored secret cannot be decrypted with BRIDGE_ENCRYPTION_KEY"
            ) from None

    def rotate(self, token: str) -> str:
        """Re-encrypt a stored token under the first (newest) key."""
        return self._fernet.rotate(token.encode()).decode()

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode()
