"""Encryption at rest for provider tokens and other secrets stored in Postgres.

The keys live only in settings (a key ring such as ``k1:<base64 32 bytes>,k0:<base64 32 bytes>``, the
first key current), never in the database, so a database dump alone reveals nothing.

* AES-256-GCM (``cryptography``'s :class:`~cryptography.hazmat.primitives.ciphers.aead.AESGCM`) with a
  fresh random 96-bit nonce per encryption.
* Associated data binds each ciphertext to its row and field (e.g. ``f"{connection_id}:access_token"``):
  a ciphertext copied into another row or column fails to decrypt. The ciphertext's own header
  (version and key id) is authenticated too.
* Ciphertexts are self-describing text: ``v1.<kid>.<base64url(nonce || ciphertext || tag)>``. The key
  id makes rotation possible: add a new key in front of the ring, keep the old ones until every row has
  been re-encrypted (:meth:`TokenCipher.needs_rotation`, :meth:`TokenCipher.reencrypt`).

Errors never contain key material or plaintext.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from arti.errors import ArtiError

__all__ = [
    "DEFAULT_SETTING_NAME",
    "FORMAT_VERSION",
    "KEY_BYTES",
    "DecryptionError",
    "KeySettingError",
    "TokenCipher",
    "generate_key_setting",
]

FORMAT_VERSION = "v1"
KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # 96-bit nonce, the size GCM is designed for
TAG_BYTES = 16
DEFAULT_SETTING_NAME = "ARTI_ENCRYPTION_KEYS"
"""The setting name used in error messages unless the caller names another."""

_KID_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")
_B64URL_RE = re.compile(r"[A-Za-z0-9_-]+")


class DecryptionError(ArtiError):
    """A ciphertext could not be decrypted: malformed, tampered with, bound to another row, or its key is unknown."""


class KeySettingError(ArtiError, ValueError):
    """The encryption key setting (or a key given to :class:`TokenCipher`) is unusable. Never echoes a key."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _aad(kid: str, aad: str | bytes) -> bytes:
    """Associated data actually authenticated: the ciphertext header, then the caller's row context."""
    context = aad.encode("utf-8") if isinstance(aad, str) else bytes(aad)
    if not context:
        raise ValueError("aad must identify where the ciphertext is stored, e.g. f'{connection_id}:access_token'")
    # The kid cannot contain '.', so the header prefix is unambiguous.
    return f"{FORMAT_VERSION}.{kid}.".encode("ascii") + context


def _decode_key(encoded: str, kid: str, setting_name: str) -> bytes:
    """Standard or URL-safe base64, padded or not, to exactly 32 bytes."""
    text = encoded.strip().replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise KeySettingError(
            f"{setting_name}: the key for id {kid!r} is not valid base64. "
            "Generate one with `python -c 'from arti.crypto import generate_key_setting as g; print(g())'`."
        ) from None
    if len(raw) != KEY_BYTES:
        raise KeySettingError(
            f"{setting_name}: the key for id {kid!r} decodes to {len(raw)} bytes; AES-256-GCM needs exactly "
            f"{KEY_BYTES} bytes (44 base64 characters)."
        )
    return raw


def _check_kid(kid: object, where: str) -> str:
    if not isinstance(kid, str) or not _KID_RE.fullmatch(kid):
        raise KeySettingError(f"{where}: a key id must be 1-32 letters, digits, '-' or '_'.")
    return kid


class TokenCipher:
    """AES-256-GCM with a key ring; encrypts with the current key, decrypts with any key in the ring.

    Args:
        keys: key id -> 32-byte key. Key ids are 1-32 characters of ``[A-Za-z0-9_-]``.
        current_kid: the id of the key new ciphertexts are encrypted with.
    """

    def __init__(self, keys: Mapping[str, bytes], current_kid: str) -> None:
        if not keys:
            raise KeySettingError("the key ring is empty: at least one 32-byte key is needed")
        self._aead: dict[str, AESGCM] = {}
        for kid, key in keys.items():
            _check_kid(kid, "key ring")
            if not isinstance(key, bytes | bytearray) or len(key) != KEY_BYTES:
                size = len(key) if isinstance(key, bytes | bytearray) else "not bytes"
                raise KeySettingError(f"key {kid!r} must be {KEY_BYTES} raw bytes for AES-256-GCM (got {size})")
            self._aead[kid] = AESGCM(bytes(key))
        if current_kid not in self._aead:
            raise KeySettingError(f"the current key id {current_kid!r} is not in the key ring")
        self._current = current_kid

    @classmethod
    def from_setting(cls, value: str | None, *, setting_name: str = DEFAULT_SETTING_NAME) -> TokenCipher:
        """Parse a key ring setting ``kid1:base64key,kid2:base64key``; the first key is the current one.

        Raises :class:`KeySettingError` naming the entry and what is wrong with it, never the key itself.
        """
        if value is None or not value.strip():
            raise KeySettingError(
                f"{setting_name} is not set. Generate a key ring with "
                "`python -c 'from arti.crypto import generate_key_setting as g; print(g())'`."
            )
        keys: dict[str, bytes] = {}
        for position, entry in enumerate(value.split(","), start=1):
            entry = entry.strip()
            if not entry:
                raise KeySettingError(f"{setting_name}: entry {position} is empty (stray comma?).")
            kid, sep, encoded = entry.partition(":")
            if not sep or not encoded.strip():
                raise KeySettingError(f"{setting_name}: entry {position} must look like <kid>:<base64 key>.")
            kid = _check_kid(kid.strip(), f"{setting_name} entry {position}")
            if kid in keys:
                raise KeySettingError(f"{setting_name}: key id {kid!r} appears twice; key ids must be unique.")
            keys[kid] = _decode_key(encoded, kid, setting_name)
        return cls(keys, next(iter(keys)))

    def __repr__(self) -> str:
        return f"TokenCipher(kids={list(self._aead)!r}, current={self._current!r})"

    @property
    def current_kid(self) -> str:
        """The id of the key new ciphertexts are made with."""
        return self._current

    @property
    def kids(self) -> tuple[str, ...]:
        """All key ids in the ring."""
        return tuple(self._aead)

    def encrypt(self, plaintext: str, aad: str | bytes) -> str:
        """Encrypt with the current key, bound to ``aad`` (where the value is stored: row id and field)."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead[self._current].encrypt(nonce, plaintext.encode("utf-8"), _aad(self._current, aad))
        return f"{FORMAT_VERSION}.{self._current}.{_b64url(nonce + sealed)}"

    def decrypt(self, token: str, aad: str | bytes) -> str:
        """Decrypt a ciphertext made by :meth:`encrypt` with the same ``aad``; raise :class:`DecryptionError`."""
        kid, blob = self._parse(token)
        aead = self._aead.get(kid)
        if aead is None:
            raise DecryptionError(
                f"the ciphertext was encrypted with key {kid!r}, which is not in the key ring; "
                "add that key back to the setting (keep retired keys until every row is re-encrypted)."
            )
        try:
            plaintext = aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], _aad(kid, aad))
        except InvalidTag:
            raise DecryptionError(
                "the ciphertext does not authenticate: it was altered, copied from another row or field "
                "(associated data mismatch), or the key with that id has changed."
            ) from None
        try:
            return plaintext.decode("utf-8")
        except UnicodeDecodeError:
            raise DecryptionError("the decrypted value is not UTF-8 text") from None

    def needs_rotation(self, token: str) -> bool:
        """True when the ciphertext is not in the current format under the current key."""
        kid, _ = self._parse(token)
        return kid != self._current

    def reencrypt(self, token: str, aad: str | bytes) -> str:
        """The same plaintext encrypted under the current key (a fresh nonce even if already current)."""
        return self.encrypt(self.decrypt(token, aad), aad)

    @staticmethod
    def _parse(token: str) -> tuple[str, bytes]:
        """``(kid, nonce || ciphertext || tag)`` of a well-formed ciphertext, else DecryptionError."""
        if not isinstance(token, str):
            raise DecryptionError("a ciphertext must be text of the form v1.<kid>.<data>")
        parts = token.split(".")
        if len(parts) != 3:
            raise DecryptionError("not an ARTi ciphertext: expected the form v1.<kid>.<data>")
        version, kid, data = parts
        if version != FORMAT_VERSION:
            raise DecryptionError(f"unsupported ciphertext format version (this code reads {FORMAT_VERSION})")
        if not _KID_RE.fullmatch(kid):
            raise DecryptionError("the ciphertext's key id is malformed")
        if not _B64URL_RE.fullmatch(data):
            raise DecryptionError("the ciphertext's data is not base64url")
        try:
            blob = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
        except (binascii.Error, ValueError):
            raise DecryptionError("the ciphertext's data is not base64url") from None
        if _b64url(blob) != data:  # non-canonical encodings (altered padding bits) are tampering too
            raise DecryptionError("the ciphertext's data is not canonical base64url (altered?)")
        if len(blob) < NONCE_BYTES + TAG_BYTES:
            raise DecryptionError("the ciphertext is truncated")
        return kid, blob


def generate_key_setting(kid: str | None = None, existing: str | None = None) -> str:
    """A key ring setting with a new random 32-byte key, ``<kid>:<base64>``.

    With ``existing`` (the current setting) the new key is put in front, so it becomes current while the
    old keys still decrypt: the rotation step. The default key id is ``k<YYYYMMDD><4 hex>``.
    """
    kid = kid or f"k{datetime.now(UTC):%Y%m%d}{secrets.token_hex(2)}"
    _check_kid(kid, "generate_key_setting")
    entry = f"{kid}:{base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode('ascii')}"
    if existing is None or not existing.strip():
        return entry
    ring = TokenCipher.from_setting(existing)  # validates the existing ring
    if kid in ring.kids:
        raise KeySettingError(f"key id {kid!r} is already in the key ring; choose another.")
    return f"{entry},{existing.strip()}"
