"""Ed25519 keys: the controller signs, speakers verify.

A key is named on the wire by its *key id*: the first 4 bytes of SHA-256 of the raw
32-byte public key. Speakers hold one or more trusted public keys (from provisioning).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from loa.errors import ConfigError, SignatureError

SIGNATURE_LEN = 64
KEY_ID_LEN = 4


def key_id(public: Ed25519PublicKey) -> bytes:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).digest()[:KEY_ID_LEN]


class Signer:
    """Holds the controller's private key."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public = private.public_key()
        self.key_id = key_id(self.public)

    @classmethod
    def generate(cls) -> Signer:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load_or_create(cls, path: Path) -> Signer:
        """Load a PEM private key, creating it (mode 0600) on first use."""
        if path.exists():
            try:
                key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"signing key {path} is not a PEM private key") from exc
            if not isinstance(key, Ed25519PrivateKey):
                raise ConfigError(f"signing key {path} is not an Ed25519 key")
            return cls(key)
        signer = cls.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = signer._private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        return signer

    def sign(self, data: bytes) -> bytes:
        return self._private.sign(data)

    def public_hex(self) -> str:
        return public_to_hex(self.public)


def public_to_hex(public: Ed25519PublicKey) -> str:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def public_from_hex(text: str) -> Ed25519PublicKey:
    try:
        raw = bytes.fromhex(text.strip())
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise ConfigError("a public key must be 64 hex characters (32 raw bytes)") from exc


class Verifier:
    """The trusted keys of a speaker, looked up by key id."""

    def __init__(self, keys: list[Ed25519PublicKey]) -> None:
        if not keys:
            raise ConfigError("a verifier needs at least one trusted public key")
        self._keys = {key_id(k): k for k in keys}

    def verify(self, kid: bytes, signed: bytes, signature: bytes) -> None:
        key = self._keys.get(kid)
        if key is None:
            raise SignatureError(f"signed with unknown key id {kid.hex()}")
        try:
            key.verify(signature, signed)
        except InvalidSignature:
            raise SignatureError(
                "signature does not verify: frame forged, altered or sent to another topic"
            ) from None
