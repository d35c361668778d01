"""The shared parts: PKCE, Retry-After parsing, TokenSet, redaction, date windows, the registry."""

from __future__ import annotations

import re
from datetime import date, timedelta
from email.utils import format_datetime
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from arti.providers import (
    NOT_PROVIDED,
    PROVIDERS,
    InstagramClient,
    MetricPoint,
    PkcePair,
    SoundCloudClient,
    SpotifyClient,
    TikTokClient,
    TokenSet,
    YouTubeClient,
    code_challenge_s256,
    generate_code_verifier,
    get_provider,
    widen_for_reporting_lag,
)
from arti.providers.base import ProviderAuthError, parse_retry_after, redact, to_int
from tests.unit.providers.conftest import NOW

UNRESERVED = re.compile(r"[A-Za-z0-9\-._~]+")


def test_pkce_matches_the_rfc_7636_worked_example() -> None:
    assert code_challenge_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == (
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )


@given(st.integers(min_value=43, max_value=128))
def test_code_verifier_has_the_length_and_alphabet_rfc_7636_requires(length: int) -> None:
    verifier = generate_code_verifier(length)
    assert len(verifier) == length
    assert UNRESERVED.fullmatch(verifier)


@pytest.mark.parametrize("length", [42, 129])
def test_code_verifier_length_out_of_range_is_refused(length: int) -> None:
    with pytest.raises(ValueError, match="43 to 128"):
        generate_code_verifier(length)


def test_pkce_pair_challenge_is_the_s256_of_its_verifier_and_hides_the_verifier() -> None:
    pair = PkcePair.new()
    assert pair.method == "S256"
    assert pair.challenge == code_challenge_s256(pair.verifier)
    assert len(pair.challenge) == 43 and "=" not in pair.challenge
    assert pair.verifier not in repr(pair)
    assert PkcePair.new().verifier != pair.verifier


@pytest.mark.parametrize(("header", "seconds"), [("120", 120.0), ("0", 0.0), (" 7 ", 7.0), ("1.5", 1.5)])
def test_retry_after_in_seconds(header: str, seconds: float) -> None:
    assert parse_retry_after(header, NOW) == seconds


def test_retry_after_as_http_date_is_seconds_from_now() -> None:
    assert parse_retry_after(format_datetime(NOW + timedelta(seconds=90), usegmt=True), NOW) == 90.0
    assert parse_retry_after("Mon, 04 May 2026 12:05:00 GMT", NOW) == 300.0


def test_retry_after_in_the_past_is_zero_and_garbage_is_none() -> None:
    assert parse_retry_after("Mon, 04 May 2026 11:00:00 GMT", NOW) == 0.0
    assert parse_retry_after("soon", NOW) is None
    assert parse_retry_after("", NOW) is None
    assert parse_retry_after(None, NOW) is None


@given(st.integers(min_value=0, max_value=10**7))
def test_retry_after_any_delta_seconds_round_trips(seconds: int) -> None:
    assert parse_retry_after(str(seconds), NOW) == float(seconds)


def test_token_set_computes_expires_at_and_hides_tokens_from_repr() -> None:
    tokens = TokenSet.from_token_response(
        {
            "access_token": "secret-access",
            "refresh_token": "secret-refresh",
            "expires_in": 3600,
            "token_type": "bearer",
        },
        now=NOW,
    )
    assert tokens.expires_at == NOW + timedelta(hours=1)
    assert tokens.token_type == "bearer"
    assert "secret-access" not in repr(tokens) and "secret-refresh" not in repr(tokens)
    assert tokens.expires_within(3600, now=NOW)
    assert not tokens.expires_within(3599, now=NOW)


def test_token_set_without_expires_in_has_no_expiry_and_keeps_the_fallback_refresh_token() -> None:
    tokens = TokenSet.from_token_response({"access_token": "a"}, now=NOW, fallback_refresh_token="old")
    assert tokens.expires_at is None
    assert tokens.refresh_token == "old"
    assert tokens.token_type == "Bearer"
    assert not tokens.expires_within(10**9, now=NOW)


def test_redact_removes_known_secrets_and_token_query_parameters() -> None:
    text = redact(
        "GET https://graph.instagram.com/refresh_access_token?grant_type=ig_refresh_token&access_token=IGAAxyz failed"
        " (Bearer abcd-secret)",
        ["abcd-secret"],
    )
    assert "IGAAxyz" not in text and "abcd-secret" not in text
    assert "grant_type=ig_refresh_token" in text


def test_missing_metric_point_is_none_with_the_not_provided_note() -> None:
    point = MetricPoint.missing("followers", date(2026, 5, 1), why="hidden")
    assert point.value is None
    assert point.note == f"{NOT_PROVIDED} (hidden)"


def test_metric_point_keeps_ints_as_ints() -> None:
    assert isinstance(MetricPoint(metric="x", day=date(2026, 5, 1), value=3).value, int)


@pytest.mark.parametrize(("value", "expected"), [("12300", 12300), (7, 7), (2.0, 2), ("1.5", None), (True, None)])
def test_to_int_reads_numbers_and_numeric_strings_only(value: object, expected: int | None) -> None:
    assert to_int(value) == expected


def test_widen_for_reporting_lag_refetches_the_trailing_days() -> None:
    assert widen_for_reporting_lag(date(2026, 5, 4), date(2026, 5, 4), 3) == (date(2026, 5, 1), date(2026, 5, 4))
    assert widen_for_reporting_lag(date(2026, 4, 1), date(2026, 5, 4), 3) == (date(2026, 4, 1), date(2026, 5, 4))
    assert widen_for_reporting_lag(date(2026, 5, 4), date(2026, 5, 4), 0) == (date(2026, 5, 4), date(2026, 5, 4))
    with pytest.raises(ValueError, match="after end"):
        widen_for_reporting_lag(date(2026, 5, 5), date(2026, 5, 4), 3)


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("spotify", SpotifyClient),
        ("youtube", YouTubeClient),
        ("instagram", InstagramClient),
        ("soundcloud", SoundCloudClient),
        ("tiktok", TikTokClient),
    ],
)
def test_get_provider_builds_each_client_with_its_credentials(name: str, cls: type) -> None:
    settings = SimpleNamespace(
        **{f"{name}_client_id": f"{name}-id", f"{name}_client_secret": SecretStr("s3cr3t-value")}
    )
    client = get_provider(name, settings)
    assert isinstance(client, cls)
    assert client.name == name
    assert client.client_id == f"{name}-id"
    assert "s3cr3t-value" not in repr(client)


def test_get_provider_reads_a_mapping_and_ignores_case() -> None:
    client = get_provider("Spotify", {"spotify_client_id": "id", "spotify_client_secret": "secret"})
    assert isinstance(client, SpotifyClient)


def test_get_provider_rejects_unknown_names_and_missing_credentials() -> None:
    assert set(PROVIDERS) == {"spotify", "youtube", "instagram", "soundcloud", "tiktok"}
    with pytest.raises(ValueError, match="unknown provider 'myspace'"):
        get_provider("myspace", {})
    with pytest.raises(ValueError, match="youtube_client_secret"):
        get_provider("youtube", {"youtube_client_id": "id"})


def test_provider_errors_name_the_provider_and_status() -> None:
    error = ProviderAuthError("spotify", "The access token expired", status=401)
    assert str(error) == "spotify: The access token expired (HTTP 401)"
    assert (error.provider, error.status, error.provider_message) == ("spotify", 401, "The access token expired")
    assert error.retryable is False
