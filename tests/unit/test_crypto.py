"""Provider tokens encrypted at rest: confidential, tamper-evident, bound to their row, rotatable."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arti.crypto import (
    KEY_BYTES,
    DecryptionError,
    KeySettingError,
    TokenCipher,
    generate_key_setting,
)

OLD_KEY = bytes(range(32))
NEW_KEY = bytes(range(100, 132))
AAD = "3f0c8f6e-2a4b-4a3e-9d4c-5b7d0f6c1a22:access_token"


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def b64url_nopad(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def blob_of(ciphertext: str) -> bytes:
    data = ciphertext.split(".")[2]
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


@pytest.fixture
def cipher() -> TokenCipher:
    return TokenCipher({"k1": NEW_KEY}, "k1")


# --- round trip and format ---------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(plaintext=st.text(), aad=st.text(min_size=1))
def test_round_trip(plaintext: str, aad: str) -> None:
    cipher = TokenCipher({"k1": NEW_KEY}, "k1")
    assert cipher.decrypt(cipher.encrypt(plaintext, aad), aad) == plaintext


def test_ciphertext_is_versioned_self_describing_and_randomised(cipher: TokenCipher) -> None:
    first = cipher.encrypt("ya29.provider-access-token", AAD)
    second = cipher.encrypt("ya29.provider-access-token", AAD)
    version, kid, data = first.split(".")
    assert (version, kid) == ("v1", "k1")
    assert "ya29" not in first
    # nonce (12) + plaintext + GCM tag (16)
    assert len(blob_of(first)) == 12 + len("ya29.provider-access-token") + 16
    assert first != second  # fresh random nonce each time
    assert blob_of(first)[:12] != blob_of(second)[:12]
    assert data == b64url_nopad(blob_of(first))


def test_bytes_aad_is_accepted_and_empty_aad_is_refused(cipher: TokenCipher) -> None:
    assert cipher.decrypt(cipher.encrypt("t", AAD.encode()), AAD) == "t"
    with pytest.raises(ValueError, match="aad"):
        cipher.encrypt("t", "")
    with pytest.raises(ValueError, match="aad"):
        cipher.decrypt(cipher.encrypt("t", AAD), b"")


# --- tampering and misuse ----------------------------------------------------------------------------


def test_tampering_with_any_single_byte_is_detected(cipher: TokenCipher) -> None:
    ciphertext = cipher.encrypt("refresh-token-value", AAD)
    blob = blob_of(ciphertext)
    for position in range(len(blob)):  # nonce, ciphertext body and tag
        tampered = bytearray(blob)
        tampered[position] ^= 0x01
        forged = f"v1.k1.{b64url_nopad(bytes(tampered))}"
        with pytest.raises(DecryptionError):
            cipher.decrypt(forged, AAD)


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_changing_any_character_of_the_text_is_detected(data: st.DataObject) -> None:
    cipher = TokenCipher({"k1": NEW_KEY}, "k1")
    ciphertext = cipher.encrypt("refresh-token-value", AAD)
    # Draws must not depend on the (randomly nonced) ciphertext, or hypothesis cannot replay them.
    position = data.draw(st.integers(min_value=0, max_value=10_000)) % len(ciphertext)
    alphabet = "AQgw_-.9z"
    replacement = alphabet[data.draw(st.integers(min_value=0, max_value=len(alphabet) - 1))]
    if replacement == ciphertext[position]:
        replacement = alphabet[(alphabet.index(replacement) + 1) % len(alphabet)]
    forged = ciphertext[:position] + replacement + ciphertext[position + 1:]
    with pytest.raises(DecryptionError):
        cipher.decrypt(forged, AAD)


def test_non_canonical_base64_is_refused(cipher: TokenCipher) -> None:
    """Flipping a padding bit of the last character leaves the bytes unchanged but is still an alteration."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    ciphertext = cipher.encrypt("refresh-token-value", AAD)  # 47-byte blob: the last character has 2 spare bits
    assert len(blob_of(ciphertext)) % 3 == 2
    altered = ciphertext[:-1] + alphabet[alphabet.index(ciphertext[-1]) ^ 0b01]
    assert blob_of(altered) == blob_of(ciphertext)
    with pytest.raises(DecryptionError, match="canonical"):
        cipher.decrypt(altered, AAD)


def test_ciphertext_copied_to_another_row_or_field_fails(cipher: TokenCipher) -> None:
    ciphertext = cipher.encrypt("secret", "connection-A:access_token")
    with pytest.raises(DecryptionError, match="another row"):
        cipher.decrypt(ciphertext, "connection-B:access_token")
    with pytest.raises(DecryptionError):
        cipher.decrypt(ciphertext, "connection-A:refresh_token")
    assert cipher.decrypt(ciphertext, "connection-A:access_token") == "secret"


def test_relabelling_the_key_id_fails() -> None:
    ring = TokenCipher({"a": OLD_KEY, "b": NEW_KEY}, "a")
    ciphertext = ring.encrypt("secret", AAD)
    relabelled = ciphertext.replace("v1.a.", "v1.b.", 1)
    with pytest.raises(DecryptionError):
        ring.decrypt(relabelled, AAD)


def test_wrong_key_under_the_same_kid_fails() -> None:
    ciphertext = TokenCipher({"k1": OLD_KEY}, "k1").encrypt("secret", AAD)
    with pytest.raises(DecryptionError):
        TokenCipher({"k1": NEW_KEY}, "k1").decrypt(ciphertext, AAD)


def test_unknown_kid_is_a_clear_error(cipher: TokenCipher) -> None:
    ciphertext = TokenCipher({"retired": OLD_KEY}, "retired").encrypt("secret", AAD)
    with pytest.raises(DecryptionError, match="'retired', which is not in the key ring"):
        cipher.decrypt(ciphertext, AAD)


@pytest.mark.parametrize("garbage", [
    "", "plaintext-token", "v1.k1", "v1.k1.a.b", "v2.k1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    "v1.bad kid.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "v1.k1.not+base64/url==", "v1.k1.AAAA",
    "v1.k1.A",
])
def test_malformed_ciphertexts_raise_decryption_error(cipher: TokenCipher, garbage: str) -> None:
    with pytest.raises(DecryptionError):
        cipher.decrypt(garbage, AAD)


def test_truncated_ciphertext_fails(cipher: TokenCipher) -> None:
    ciphertext = cipher.encrypt("secret", AAD)
    blob = blob_of(ciphertext)
    for cut in (1, 16, len(blob) - 12):
        with pytest.raises(DecryptionError):
            cipher.decrypt(f"v1.k1.{b64url_nopad(blob[:-cut])}", AAD)


# --- rotation ----------------------------------------------------------------------------------------


def test_rotation_old_ciphertexts_still_decrypt_and_need_rotation() -> None:
    before = TokenCipher.from_setting(f"old:{b64(OLD_KEY)}")
    stored = before.encrypt("provider-token", AAD)
    assert before.needs_rotation(stored) is False

    after = TokenCipher.from_setting(f"new:{b64(NEW_KEY)},old:{b64(OLD_KEY)}")
    assert after.current_kid == "new"
    assert after.kids == ("new", "old")
    assert after.decrypt(stored, AAD) == "provider-token"
    assert after.needs_rotation(stored) is True

    rotated = after.reencrypt(stored, AAD)
    assert rotated.startswith("v1.new.")
    assert after.needs_rotation(rotated) is False
    assert after.decrypt(rotated, AAD) == "provider-token"
    # New ciphertexts use the new key: the old ring alone cannot read them.
    with pytest.raises(DecryptionError):
        before.decrypt(rotated, AAD)
    # Once the old key is dropped, un-rotated rows fail with a message naming the missing key id.
    with pytest.raises(DecryptionError, match="'old'"):
        TokenCipher.from_setting(f"new:{b64(NEW_KEY)}").decrypt(stored, AAD)


def test_reencrypt_keeps_the_row_binding(cipher: TokenCipher) -> None:
    old = TokenCipher({"old": OLD_KEY, "k1": NEW_KEY}, "old").encrypt("x", AAD)
    ring = TokenCipher({"k1": NEW_KEY, "old": OLD_KEY}, "k1")
    with pytest.raises(DecryptionError):
        ring.reencrypt(old, "another-row:access_token")
    assert ring.decrypt(ring.reencrypt(old, AAD), AAD) == "x"


def test_needs_rotation_refuses_garbage(cipher: TokenCipher) -> None:
    with pytest.raises(DecryptionError):
        cipher.needs_rotation("not a ciphertext")


# --- key settings ------------------------------------------------------------------------------------


def test_from_setting_accepts_standard_urlsafe_padded_and_unpadded_keys() -> None:
    key = bytes([251, 255, 190] * 10 + [1, 2])  # encodes with '+' and '/' (or '-' and '_')
    standard = base64.b64encode(key).decode()
    assert "+" in standard or "/" in standard
    urlsafe_unpadded = base64.urlsafe_b64encode(key).decode().rstrip("=")
    ciphertext = TokenCipher({"a": key}, "a").encrypt("v", AAD)
    for encoded in (standard, urlsafe_unpadded):
        ring = TokenCipher.from_setting(f" a : {encoded} ,\n b:{b64(OLD_KEY)} ")
        assert ring.kids == ("a", "b")
        assert ring.decrypt(ciphertext, AAD) == "v"


SECRET_LOOKING = b64(b"\x07" * 16)  # valid base64, wrong length
BAD_B64 = "this-is-not*base64!!" + "Q" * 24


@pytest.mark.parametrize(("setting", "expected"), [
    (None, "is not set"),
    ("", "is not set"),
    ("   ", "is not set"),
    (f"k1{b64(NEW_KEY)}", "entry 1 must look like <kid>:<base64 key>"),
    ("k1:", "entry 1 must look like <kid>:<base64 key>"),
    (f"k1:{b64(NEW_KEY)},,k2:{b64(OLD_KEY)}", "entry 2 is empty"),
    (f"k1:{b64(NEW_KEY)},k1:{b64(OLD_KEY)}", "'k1' appears twice"),
    (f"bad.kid:{b64(NEW_KEY)}", "a key id must be 1-32 letters"),
    (f":{b64(NEW_KEY)}", "a key id must be 1-32 letters"),
    (f"k1:{SECRET_LOOKING}", "decodes to 16 bytes; AES-256-GCM needs exactly 32 bytes"),
    (f"k1:{b64(NEW_KEY)},k2:{BAD_B64}", "the key for id 'k2' is not valid base64"),
    (f"k1:{b64(NEW_KEY + b'x')}", "decodes to 33 bytes"),
])
def test_bad_key_settings_give_clear_errors_without_echoing_keys(setting: str | None, expected: str) -> None:
    with pytest.raises(KeySettingError) as caught:
        TokenCipher.from_setting(setting, setting_name="ARTI_TEST_KEYS")
    message = str(caught.value)
    assert expected in message
    assert isinstance(caught.value, ValueError)
    for secret in (b64(NEW_KEY), b64(OLD_KEY), SECRET_LOOKING, BAD_B64, b64(NEW_KEY + b"x")):
        assert secret not in message
    if setting and setting.strip():
        assert "ARTI_TEST_KEYS" in message
    # No chained exception carries the key either.
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__ is True or caught.value.__context__ is None


def test_constructor_validates_keys_without_echoing_them() -> None:
    with pytest.raises(KeySettingError, match="empty"):
        TokenCipher({}, "k1")
    with pytest.raises(KeySettingError, match="32 raw bytes") as caught:
        TokenCipher({"k1": b"short-key-material"}, "k1")
    assert "short-key-material" not in str(caught.value)
    with pytest.raises(KeySettingError, match="not in the key ring"):
        TokenCipher({"k1": NEW_KEY}, "k2")
    with pytest.raises(KeySettingError, match="key id"):
        TokenCipher({"k.1": NEW_KEY}, "k.1")


def test_repr_shows_key_ids_only(cipher: TokenCipher) -> None:
    text = repr(cipher)
    assert "k1" in text
    assert b64(NEW_KEY) not in text
    assert repr(NEW_KEY) not in text


def test_generate_key_setting_makes_a_usable_random_key() -> None:
    setting = generate_key_setting()
    kid, _, encoded = setting.partition(":")
    assert len(base64.b64decode(encoded)) == KEY_BYTES
    ring = TokenCipher.from_setting(setting)
    assert ring.current_kid == kid
    assert ring.decrypt(ring.encrypt("v", AAD), AAD) == "v"
    assert generate_key_setting("x").split(":")[1] != generate_key_setting("x").split(":")[1]


def test_generate_key_setting_rotates_an_existing_ring() -> None:
    old_setting = f"old:{b64(OLD_KEY)}"
    stored = TokenCipher.from_setting(old_setting).encrypt("v", AAD)
    rotated_setting = generate_key_setting("new", existing=old_setting)
    assert rotated_setting.startswith("new:")
    assert rotated_setting.endswith("," + old_setting)
    ring = TokenCipher.from_setting(rotated_setting)
    assert ring.current_kid == "new"
    assert ring.decrypt(stored, AAD) == "v"
    assert ring.needs_rotation(stored) is True
    with pytest.raises(KeySettingError, match="already in the key ring"):
        generate_key_setting("old", existing=old_setting)
    with pytest.raises(KeySettingError, match="key id"):
        generate_key_setting("no good")
