"""JWT verification must accept exactly Supabase's tokens and refuse the classic JWT attacks."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
import respx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from arti.jwt_auth import (
    AuthError,
    Claims,
    JWTVerifier,
    bearer_token,
    jwks_url_for,
    mint_service_key,
    mint_token,
)
from arti.settings import LOCAL_JWT_SECRET

SECRET = LOCAL_JWT_SECRET
OTHER_SECRET = "another-projects-secret-that-is-also-32-chars-or-more"
JWKS_URL = jwks_url_for("http://supabase.test/")
USER_ID = "7b1f8a2e-6c0d-4f4e-9a53-0d6f2b9c1e11"

# Keys `supabase start` prints for the local secret (public development values).
SUPABASE_DEMO_ANON_KEY = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdXBhYmFzZS1kZW1vIiwicm9sZSI6ImFub24iLCJleHAiOjE5ODM4MTI5OTZ9"
    ".CRXP1A7WOeoJeXxjNni43kdQwgnWNReilDMblYTn_I0"
)
SUPABASE_DEMO_SERVICE_ROLE_KEY = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdXBhYmFzZS1kZW1vIiwicm9sZSI6InNlcnZpY2Vfcm9sZSIsImV4cCI6"
    "MTk4MzgxMjk5Nn0.EGIM96RAZx35lJzdJsyH-qQwv8Hdp7fsn3W0YpN81IU"
)

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_KEY_2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def rsa_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    """The public JWK of an RSA key, as a JWKS endpoint publishes it."""
    return {**RSAAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, "alg": "RS256", "use": "sig"}


def ec_jwk(key: ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    """The public JWK of a P-256 key, shaped like Supabase's JWKS entries."""
    return {**ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, "alg": "ES256", "use": "sig",
            "key_ops": ["verify"]}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64json(obj: Any) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def user_claims(**overrides: Any) -> dict[str, Any]:
    """A valid GoTrue-shaped user payload; overrides set or (with None) remove claims."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": "http://supabase.test/auth/v1", "sub": USER_ID, "aud": "authenticated", "exp": now + 600,
        "iat": now, "email": "ada@example.com", "phone": "", "role": "authenticated",
        "app_metadata": {"provider": "email", "providers": ["email"]}, "user_metadata": {},
        "aal": "aal1", "session_id": "0d7c2a9e-51b4-4c59-9b1d-3f2f8e0f0a01", "is_anonymous": False,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def signed(payload: dict[str, Any], key: Any = SECRET, alg: str = "HS256", kid: str | None = None) -> str:
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid} if kid else None)


def hmac_signed_by_hand(header: dict[str, Any], payload: dict[str, Any], key: bytes) -> str:
    """An HS256 JWT built without PyJWT (which refuses PEM keys as HMAC secrets)."""
    signing_input = f"{b64json(header)}.{b64json(payload)}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


async def expect_auth_error(verifier: JWTVerifier, token: str | None, code: str) -> AuthError:
    """Verification fails with `code`, and the message does not leak the token."""
    with pytest.raises(AuthError) as caught:
        await verifier.verify(token)
    error = caught.value
    assert error.code == code, error.message
    assert error.message
    if token:
        assert token not in error.message
        for part in token.split("."):
            if len(part) > 8:
                assert part not in error.message
    return error


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def mock_jwks() -> Iterator[respx.Route]:
    """The JWKS endpoint, publishing the RSA and EC keys; `route.call_count` counts fetches."""
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        route = router.get(JWKS_URL).mock(
            return_value=httpx.Response(200, json={"keys": [rsa_jwk(RSA_KEY, "rsa-1"), ec_jwk(EC_KEY, "ec-1")]})
        )
        yield route


# --- HS256 with the project secret -------------------------------------------------------------------


async def test_minted_user_token_verifies_with_gotrue_claims() -> None:
    token = mint_token(SECRET, USER_ID, email="ada@example.com", app_metadata={"provider": "email"},
                       user_metadata={"name": "Ada"})
    claims = await JWTVerifier(SECRET).verify(token)
    assert isinstance(claims, Claims)
    assert claims.sub == USER_ID
    assert claims.role == "authenticated"
    assert claims.email == "ada@example.com"
    assert claims.aud == "authenticated"
    assert claims.exp > time.time() + 3500
    assert claims.user_metadata == {"name": "Ada"}
    assert claims["aal"] == "aal1"
    assert claims.get("missing", "dflt") == "dflt"
    assert "session_id" in claims
    assert set(claims.as_dict()) == {
        "iss", "sub", "aud", "exp", "iat", "email", "phone", "app_metadata", "user_metadata", "role", "aal",
        "amr", "session_id", "is_anonymous",
    }
    assert claims.is_platform_admin is False


async def test_is_platform_admin_reads_app_metadata_only() -> None:
    verifier = JWTVerifier(SECRET)
    admin = await verifier.verify(mint_token(SECRET, USER_ID, app_metadata={"platform_admin": True}))
    assert admin.is_platform_admin is True
    # user_metadata is user-writable: it must not grant anything; nor does a truthy non-boolean.
    self_declared = await verifier.verify(mint_token(SECRET, USER_ID, user_metadata={"platform_admin": True}))
    assert self_declared.is_platform_admin is False
    stringly = await verifier.verify(mint_token(SECRET, USER_ID, app_metadata={"platform_admin": "true"}))
    assert stringly.is_platform_admin is False


async def test_service_keys_match_supabase_start_and_verify_without_sub_or_aud() -> None:
    assert mint_service_key(SECRET, "anon") == SUPABASE_DEMO_ANON_KEY
    assert mint_service_key(SECRET, "service_role") == SUPABASE_DEMO_SERVICE_ROLE_KEY
    verifier = JWTVerifier(SECRET)
    anon = await verifier.verify(SUPABASE_DEMO_ANON_KEY)
    service = await verifier.verify(SUPABASE_DEMO_SERVICE_ROLE_KEY)
    assert (anon.role, anon.sub, anon.aud) == ("anon", None, None)
    assert service.role == "service_role"
    with pytest.raises(ValueError, match="anon"):
        mint_service_key(SECRET, "authenticated")


async def test_expired_token_is_refused() -> None:
    token = mint_token(SECRET, USER_ID, issued_at=int(time.time()) - 7200, expires_in=3600)
    error = await expect_auth_error(JWTVerifier(SECRET), token, "expired_token")
    assert "expired" in error.message


async def test_expiry_within_leeway_is_accepted_and_beyond_is_not() -> None:
    now = int(time.time())
    just_expired = mint_token(SECRET, USER_ID, issued_at=now - 65, expires_in=60)
    assert (await JWTVerifier(SECRET, leeway=30).verify(just_expired)).sub == USER_ID
    await expect_auth_error(JWTVerifier(SECRET, leeway=0), just_expired, "expired_token")


async def test_token_without_exp_is_refused() -> None:
    await expect_auth_error(JWTVerifier(SECRET), signed(user_claims(exp=None)), "invalid_token")


async def test_token_issued_in_the_future_is_refused() -> None:
    token = signed(user_claims(iat=int(time.time()) + 3600, exp=int(time.time()) + 7200))
    await expect_auth_error(JWTVerifier(SECRET), token, "invalid_token")


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
async def test_alg_none_is_refused(mock_jwks: respx.Route, alg: str) -> None:
    unsigned = f"{b64json({'alg': alg, 'typ': 'JWT'})}.{b64json(user_claims(role='service_role'))}."
    async with httpx.AsyncClient() as http:
        verifier = JWTVerifier(SECRET, JWKS_URL, http)
        error = await expect_auth_error(verifier, unsigned, "invalid_token")
    assert "algorithm" in error.message
    assert mock_jwks.call_count == 0


async def test_algorithms_outside_the_allow_list_are_refused() -> None:
    verifier = JWTVerifier(SECRET)
    # HS512 with the very same secret (repeated only to satisfy HS512's recommended key length).
    await expect_auth_error(JWTVerifier(SECRET * 2), signed(user_claims(), SECRET * 2, "HS512"), "invalid_token")
    await expect_auth_error(verifier, signed(user_claims(), RSA_KEY, "PS256"), "invalid_token")


async def test_wrong_secret_is_refused() -> None:
    token = mint_token(OTHER_SECRET, USER_ID)
    error = await expect_auth_error(JWTVerifier(SECRET), token, "invalid_token")
    assert "signature" in error.message


async def test_altered_payload_is_refused() -> None:
    header, _, signature = mint_token(SECRET, USER_ID).split(".")
    forged = f"{header}.{b64json(user_claims(role='service_role'))}.{signature}"
    await expect_auth_error(JWTVerifier(SECRET), forged, "invalid_token")


async def test_wrong_or_missing_audience_is_refused_for_user_tokens() -> None:
    verifier = JWTVerifier(SECRET)
    await expect_auth_error(verifier, signed(user_claims(aud="some-other-api")), "invalid_audience")
    await expect_auth_error(verifier, signed(user_claims(aud=["a", "b"])), "invalid_audience")
    await expect_auth_error(verifier, signed(user_claims(aud=None)), "invalid_audience")
    # Several audiences including ours is fine.
    claims = await verifier.verify(signed(user_claims(aud=["authenticated", "other"])))
    assert claims.audiences == ["authenticated", "other"]


async def test_missing_sub_is_refused_for_authenticated_role() -> None:
    error = await expect_auth_error(JWTVerifier(SECRET), signed(user_claims(sub=None)), "invalid_token")
    assert "sub" in error.message
    await expect_auth_error(JWTVerifier(SECRET), signed(user_claims(sub="")), "invalid_token")


@pytest.mark.parametrize("sub", ["not-a-uuid", "\x00", "7b1f8a2e-6c0d-4f4e-9a53-0d6f2b9c1e1", USER_ID + "\x00",
                                 "{" + USER_ID + "}", "urn:uuid:" + USER_ID, USER_ID.replace("-", ""), 42, ["x"]])
async def test_a_user_token_whose_sub_is_not_a_uuid_is_refused(sub: Any) -> None:
    """auth.uid() casts sub to uuid: a token naming anything else is refused here, not by Postgres (a 500)."""
    error = await expect_auth_error(JWTVerifier(SECRET), signed(user_claims(sub=sub)), "invalid_token")
    assert error.http_status == 401
    upper = await JWTVerifier(SECRET).verify(signed(user_claims(sub=USER_ID.upper())))
    assert upper.sub == USER_ID.upper()


@pytest.mark.parametrize("role", ["supabase_admin", "postgres", "authenticator", "", None, 1])
async def test_roles_outside_the_api_roles_are_refused(role: Any) -> None:
    payload = user_claims()
    payload["role"] = role
    if role is None:
        del payload["role"]
    await expect_auth_error(JWTVerifier(SECRET), signed(payload), "invalid_role")


async def test_verifier_can_require_a_signed_in_user() -> None:
    verifier = JWTVerifier(SECRET, roles=("authenticated",))
    await expect_auth_error(verifier, SUPABASE_DEMO_ANON_KEY, "invalid_role")
    assert (await verifier.verify(mint_token(SECRET, USER_ID))).sub == USER_ID


@pytest.mark.parametrize("token", [None, "", "   "])
async def test_missing_token(token: str | None) -> None:
    await expect_auth_error(JWTVerifier(SECRET), token, "missing_token")


@pytest.mark.parametrize("token", ["abc", "a.b.c", "eyJ.eyJ.", "x" * 20_000])
async def test_malformed_token(token: str) -> None:
    await expect_auth_error(JWTVerifier(SECRET), token, "invalid_token")


async def test_claims_of_the_wrong_shape_are_refused() -> None:
    await expect_auth_error(JWTVerifier(SECRET), signed(user_claims(app_metadata=["not", "an", "object"])),
                            "invalid_token")


# --- asymmetric keys from the JWKS endpoint ----------------------------------------------------------


async def test_es256_token_from_jwks_verifies(mock_jwks: respx.Route) -> None:
    async with httpx.AsyncClient() as http:
        verifier = JWTVerifier(None, JWKS_URL, http)
        claims = await verifier.verify(signed(user_claims(), EC_KEY, "ES256", kid="ec-1"))
    assert claims.sub == USER_ID
    assert mock_jwks.call_count == 1


async def test_rs256_token_from_jwks_verifies_next_to_hs256(mock_jwks: respx.Route) -> None:
    async with httpx.AsyncClient() as http:
        verifier = JWTVerifier(SECRET, JWKS_URL, http)
        assert (await verifier.verify(signed(user_claims(), RSA_KEY, "RS256", kid="rsa-1"))).sub == USER_ID
        assert (await verifier.verify(mint_token(SECRET, USER_ID))).sub == USER_ID


async def test_jwks_is_cached_across_calls(mock_jwks: respx.Route) -> None:
    async with httpx.AsyncClient() as http:
        verifier = JWTVerifier(None, JWKS_URL, http)
        for _ in range(5):
            await verifier.verify(signed(user_claims(), RSA_KEY, "RS256", kid="rsa-1"))
            await verifier.verify(signed(user_claims(), EC_KEY, "ES256", kid="ec-1"))
        await asyncio.gather(*(verifier.verify(signed(user_claims(), EC_KEY, "ES256", kid="ec-1"))
                               for _ in range(10)))
    assert mock_jwks.call_count == 1


async def test_jwks_is_refetched_after_its_ttl(mock_jwks: respx.Route) -> None:
    clock = FakeClock()
    token = signed(user_claims(), RSA_KEY, "RS256", kid="rsa-1")
    async with httpx.AsyncClient() as http:
        verifier = JWTVerifier(None, JWKS_URL, http, jwks_ttl=600, clock=clock)
        await verifier.verify(token)
        clock.now += 599
        await verifier.verify(token)
        assert mock_jwks.call_count == 1
        clock.now += 2
        await verifier.verify(token)
    assert mock_jwks.call_count == 2


async def test_unknown_kid_triggers_one_refetch_that_finds_a_rotated_key(mock_jwks: respx.Route) -> None:
    clock = FakeClock()
    async with httpx.AsyncClient() as http:
        verifier = JWTVerifier(None, JWKS_URL, http, jwks_refetch_cooldown=30, clock=clock)
        await verifier.verify(signed(user_claims(), RSA_KEY, "RS256", kid="rsa-1"))
        assert mock_jwks.call_count == 1
        # The project rotates its signing key; tokens with the new kid appear before our TTL ends.
        mock_jwks.return_value = httpx.Response(
            200, json={"keys": [rsa_jwk(RSA_KEY, "rsa-1"), rsa_jwk(RSA_KEY_2, "rsa-2")]})
        clock.now += 31
        claims = await verifier.verify(signed(user_claims(), RSA_KEY_2, "RS256", kid="rsa-2"))
        assert claims.sub == USER_ID
        assert mock_jwks.call_count == 2
        await verifier.verify(signed(user_claims(), RSA_KEY_2, "RS256", kid="rsa-2"))
    assert mock_jwks.call_count == 2


async def test_unknown_kids_within_the_cooldown_do_not_refetch(mock_jwks: respx.Route) -> None:
    clock = FakeClock()
    async with httpx.AsyncClient() as http:
        verifier = JWTVerifier(None, JWKS_URL, http, jwks_refetch_cooldown=30, clock=clock)
        await verifier.verify(signed(user_claims(), RSA_KEY, "RS256", kid="rsa-1"))
        clock.now += 31
        # First unknown kid: exactly one refetch, then refused.
        error = await expect_auth_error(verifier, signed(user_claims(), RSA_KEY_2, "RS256", kid="ghost-1"),
                                        "invalid_token")
        assert "kid" in error.message
        assert mock_jwks.call_count == 2
        # A second unknown kid within the cooldown, and then a flood of them: no further fetch.
        clock.now += 5
        await expect_auth_error(verifier, signed(user_claims(), RSA_KEY_2, "RS256", kid="ghost-2"), "invalid_token")
        results = await asyncio.gather(
            *(verifier.verify(signed(user_claims(), RSA_KEY_2, "RS256", kid=f"flood-{i}")) for i in range(50)),
            return_exceptions=True,
        )
        assert all(isinstance(r, AuthError) and r.code == "invalid_token" for r in results)
        assert mock_jwks.call_count == 2
        # Known keys keep working during the cooldown without fetching.
        await verifier.verify(signed(user_claims(), RSA_KEY, "RS256", kid="rsa-1"))
        assert mock_jwks.call_count == 2
        # After the cooldown an unknown kid may refetch again (once).
        clock.now += 30
        await expect_auth_error(verifier, signed(user_claims(), RSA_KEY_2, "RS256", kid="ghost-3"), "invalid_token")
    assert mock_jwks.call_count == 3


async def test_hs256_signed_with_the_rsa_public_key_is_refused(mock_jwks: respx.Route) -> None:
    """Algorithm confusion: the attacker HMACs a token with the *published* RSA key."""
    pem = RSA_KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    jwk_json = json.dumps(rsa_jwk(RSA_KEY, "rsa-1")).encode()
    payload = user_claims(role="service_role")
    forgeries = [hmac_signed_by_hand({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, payload, key)
                 for key in (pem, jwk_json)]
    async with httpx.AsyncClient() as http:
        # Control: the same claims properly RS256-signed verify, so only the confusion is refused.
        genuine = await JWTVerifier(SECRET, JWKS_URL, http).verify(signed(payload, RSA_KEY, "RS256", kid="rsa-1"))
        assert genuine.role == "service_role"
        for forged in forgeries:
            await expect_auth_error(JWTVerifier(SECRET, JWKS_URL, http), forged, "invalid_token")
            # Without a configured secret, HS256 is not accepted at all, and no key is even looked up.
            calls = mock_jwks.call_count
            error = await expect_auth_error(JWTVerifier(None, JWKS_URL, http), forged, "invalid_token")
            assert "algorithm" in error.message
            assert mock_jwks.call_count == calls


async def test_rs256_token_is_never_checked_against_the_hs_secret() -> None:
    """With only the secret configured, asymmetric tokens are refused (and nothing is fetched)."""
    with respx.mock(assert_all_mocked=True) as router:
        token = signed(user_claims(), RSA_KEY, "RS256", kid="rsa-1")
        error = await expect_auth_error(JWTVerifier(SECRET), token, "invalid_token")
        assert "algorithm" in error.message
        # An "RS256" header over an HMAC-with-the-secret signature does not pass either.
        forged = hmac_signed_by_hand({"alg": "RS256", "typ": "JWT"}, user_claims(), SECRET.encode())
        await expect_auth_error(JWTVerifier(SECRET), forged, "invalid_token")
        assert len(router.calls) == 0


async def test_rs256_header_with_hmac_signature_and_known_kid_is_refused(mock_jwks: respx.Route) -> None:
    forged = hmac_signed_by_hand({"alg": "RS256", "typ": "JWT", "kid": "rsa-1"}, user_claims(), SECRET.encode())
    async with httpx.AsyncClient() as http:
        await expect_auth_error(JWTVerifier(SECRET, JWKS_URL, http), forged, "invalid_token")


async def test_token_algorithm_must_match_the_kind_of_its_jwks_key(mock_jwks: respx.Route) -> None:
    async with httpx.AsyncClient() as http:
        verifier = JWTVerifier(None, JWKS_URL, http)
        # ES256 token claiming the RSA key's kid.
        await expect_auth_error(verifier, signed(user_claims(), EC_KEY, "ES256", kid="rsa-1"), "invalid_token")
        # RS256 token claiming the EC key's kid.
        await expect_auth_error(verifier, signed(user_claims(), RSA_KEY, "RS256", kid="ec-1"), "invalid_token")
        # Asymmetric token without a kid.
        await expect_auth_error(verifier, signed(user_claims(), RSA_KEY, "RS256"), "invalid_token")


async def test_symmetric_and_private_keys_in_the_jwks_are_ignored() -> None:
    oct_jwk = {"kty": "oct", "kid": "oct-1", "k": b64url(SECRET.encode()), "alg": "HS256"}
    private_jwk = {**json.loads(RSAAlgorithm.to_jwk(RSA_KEY)), "kid": "rsa-private", "alg": "RS256"}
    with respx.mock(assert_all_mocked=True) as router:
        router.get(JWKS_URL).mock(return_value=httpx.Response(200, json={"keys": [oct_jwk, private_jwk]}))
        async with httpx.AsyncClient() as http:
            verifier = JWTVerifier(None, JWKS_URL, http)
            await expect_auth_error(verifier, signed(user_claims(), SECRET, "HS256", kid="oct-1"), "invalid_token")
            await expect_auth_error(verifier, signed(user_claims(), RSA_KEY, "RS256", kid="rsa-private"),
                                    "invalid_token")


async def test_unreachable_jwks_is_a_503_not_a_bad_token() -> None:
    with respx.mock(assert_all_mocked=True) as router:
        router.get(JWKS_URL).mock(return_value=httpx.Response(500))
        async with httpx.AsyncClient() as http:
            error = await expect_auth_error(JWTVerifier(None, JWKS_URL, http),
                                            signed(user_claims(), RSA_KEY, "RS256", kid="rsa-1"), "jwks_unavailable")
    assert error.http_status == 503
    assert JWKS_URL in error.message


async def test_cached_keys_survive_a_failed_refresh(mock_jwks: respx.Route) -> None:
    clock = FakeClock()
    token = signed(user_claims(), RSA_KEY, "RS256", kid="rsa-1")
    async with httpx.AsyncClient() as http:
        verifier = JWTVerifier(None, JWKS_URL, http, jwks_ttl=600, clock=clock)
        await verifier.verify(token)
        mock_jwks.side_effect = httpx.ConnectError("down")
        clock.now += 601
        assert (await verifier.verify(token)).sub == USER_ID
    assert mock_jwks.call_count == 2


def test_verifier_needs_a_key_source() -> None:
    with pytest.raises(ValueError, match="secret"):
        JWTVerifier(None, None)
    with pytest.raises(ValueError, match="roles"):
        JWTVerifier(SECRET, roles=("postgres",))
    assert "super-secret" not in repr(JWTVerifier(SECRET))


def test_jwks_url_for_supabase_project() -> None:
    assert jwks_url_for("https://abc.supabase.co/") == "https://abc.supabase.co/auth/v1/.well-known/jwks.json"


# --- Authorization header ----------------------------------------------------------------------------


@pytest.mark.parametrize("header", ["Bearer abc.def.ghi", "bearer abc.def.ghi", "BEARER abc.def.ghi",
                                    "  Bearer abc.def.ghi  ", "Bearer  abc.def.ghi"])
def test_bearer_token_accepts_the_bearer_scheme(header: str) -> None:
    assert bearer_token(header) == "abc.def.ghi"


@pytest.mark.parametrize("header", [None, "", "   ", "Bearer", "Bearer   "])
def test_bearer_token_missing(header: str | None) -> None:
    with pytest.raises(AuthError) as caught:
        bearer_token(header)
    assert caught.value.code == "missing_token"


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Token abc.def.ghi", "abc.def.ghi", "Bearer a.b.c extra",
                                    "Bearer a.b.c,Bearer d.e.f", "Bearer a b", "Bearer\ta.b.c", "Bearer a.b.c\n"
                                    "X: y", "Bearer ab=c"])
def test_bearer_token_refuses_malformed_headers(header: str) -> None:
    with pytest.raises(AuthError) as caught:
        bearer_token(header)
    assert caught.value.code == "invalid_token"
    assert caught.value.http_status == 401
