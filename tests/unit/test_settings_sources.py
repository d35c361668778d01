"""Every setting comes from the environment and `.env` alike, read in one place (arti.settings; issue 17)."""

from __future__ import annotations

from pathlib import Path

import pytest

from arti import platform
from handlers.settings import HandlerSettings

PORT_SETTINGS = {"ARTI_HTTP_PORT": "18080", "ARTI_HANDLERS_PORT": "18000", "ARTI_STUDIO_PORT": "18323"}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*PORT_SETTINGS, "ARTI_OAUTH_REDIRECT_BASE", "SUPABASE_DB_URL"):
        monkeypatch.delenv(name, raising=False)


def test_ports_come_from_dotenv_as_well_as_the_environment(tmp_path: Path, clean_env: None,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("".join(f"{k}={v}\n" for k, v in PORT_SETTINGS.items()))
    from_file = HandlerSettings(_env_file=dotenv)  # type: ignore[call-arg]
    assert platform.ports(from_file) == {"http": 18080, "handlers": 18000, "studio": 18323}
    monkeypatch.setenv("ARTI_HTTP_PORT", "28080")
    assert platform.ports(HandlerSettings(_env_file=dotenv))["http"] == 28080, "the environment wins"  # type: ignore[call-arg]


def test_the_oauth_redirect_uri_follows_the_http_port(tmp_path: Path, clean_env: None) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("ARTI_HTTP_PORT=18080\n")
    settings = HandlerSettings(_env_file=dotenv)  # type: ignore[call-arg]
    assert settings.oauth_callback_url("spotify") == "http://localhost:18080/functions/v1/oauth/spotify/callback"
    dotenv.write_text("ARTI_HTTP_PORT=18080\nARTI_OAUTH_REDIRECT_BASE=https://api.example.com/functions/v1/oauth/\n")
    settings = HandlerSettings(_env_file=dotenv)  # type: ignore[call-arg]
    assert settings.oauth_callback_url("youtube") == "https://api.example.com/functions/v1/oauth/youtube/callback"


def test_the_supervisor_hands_the_settings_ports_to_caddy_and_the_handlers(tmp_path: Path, clean_env: None) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("".join(f"{k}={v}\n" for k, v in PORT_SETTINGS.items()) + f"ARTI_DATA_DIR={tmp_path}\n")
    supervisor = platform.Supervisor(HandlerSettings(_env_file=dotenv))  # type: ignore[call-arg]
    env = supervisor.environment()
    assert {k: env[k] for k in PORT_SETTINGS} == PORT_SETTINGS
    assert env["ARTI_HANDLERS_UPSTREAM"] == "127.0.0.1:18000"
    assert env["ARTI_HTTP_BIND"] == "127.0.0.1"
