"""Settings from the environment (and a `.env` file), with embedded-mode defaults.

Names follow Supabase's own where one exists (SUPABASE_DB_URL, SUPABASE_URL, SUPABASE_JWT_SECRET,
SUPABASE_SERVICE_ROLE_KEY); ARTi-specific settings use the ARTI_ prefix.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Literal

import jwt
from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from arti.errors import ArtiError

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# The JWT secret `supabase start` uses for local development; embedded mode mirrors it.
LOCAL_JWT_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"  # noqa: S105 (public dev key)
WELL_KNOWN_JWT_SECRETS = frozenset({
    LOCAL_JWT_SECRET,
    # The placeholder in Supabase's self-hosting .env.example (supabase/docker).
    "your-super-secret-jwt-token-with-at-least-32-characters-long",
})
"""JWT secrets published in Supabase's documentation and repositories: anyone can sign tokens with them.
Only embedded mode, which listens on loopback, uses one; every other mode refuses them at start."""
Mode = Literal["embedded", "cloud", "docker"]
EMBEDDED_PORT = 54322
# Fixed local ports by default (each has an environment override). All but the HTTP ones lie in
# Linux's ephemeral range, so scripts/reserve-ports.sh keeps outgoing connections off them.
DEFAULT_PORTS = {
    "database": EMBEDDED_PORT,  # ARTI_DB_PORT
    "studio": 54323,  # ARTI_STUDIO_PORT
    "tests_database": 54329,  # ARTI_TEST_DB_PORT
    "bench_database": 54330,  # ARTI_BENCH_DB_PORT
    "bench_smoke_database": 54331,  # ARTI_BENCH_SMOKE_PORT
    "e2e_platform_database": 55422,  # fixed by tests/e2e/test_platform.py
    "e2e_faults_database": 55423,  # fixed by tests/e2e/test_faults.py
    "e2e_sandbox_database": 55424,  # fixed by tests/e2e/test_sandbox.py
    "http": 8080,  # ARTI_HTTP_PORT
    "handlers": 8000,  # ARTI_HANDLERS_PORT
    "sandbox": 8090,  # ARTI_SANDBOX_PORT (the provider sandbox, loopback, only with ARTI_PROVIDER_SANDBOX=1)
}
EMBEDDED_PASSWORD = "postgres"  # noqa: S105 (Supabase local default)
SANDBOX_PROVIDERS = ("spotify", "youtube", "instagram", "soundcloud", "tiktok")


def sandbox_client_id(provider: str) -> str:
    """The OAuth client id every process uses for `provider` in sandbox mode (arti/sandbox.py knows only it)."""
    return f"sandbox-{provider}-client"


def sandbox_client_secret(provider: str) -> str:
    """Its secret: public on purpose, no real provider knows it."""
    return f"sandbox-{provider}-secret"


class Settings(BaseSettings):
    """All runtime configuration. Unset values fall back to embedded mode."""

    # The project's .env wherever the command runs from (environment variables win over it).
    model_config = SettingsConfigDict(env_file=PROJECT_ROOT / ".env", extra="ignore", populate_by_name=True)

    db_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("SUPABASE_DB_URL", "ARTI_DB_URL"),
        description="Postgres URL of a Supabase project (cloud mode). Unset: the embedded cluster.",
    )
    supabase_url: str | None = Field(default=None, validation_alias="SUPABASE_URL")
    service_role_key: str | None = Field(default=None, validation_alias="SUPABASE_SERVICE_ROLE_KEY")
    jwt_secret: str | None = Field(
        default=None,
        validation_alias="SUPABASE_JWT_SECRET",
        description="HS256 secret of the project's tokens. Unset: embedded mode uses `supabase start`'s public "
        "local secret; cloud and docker modes then accept only asymmetric tokens (the project's JWKS).",
    )
    mode_setting: Mode | None = Field(
        default=None,
        validation_alias="ARTI_MODE",
        description="embedded, cloud or docker. Unset: cloud when SUPABASE_DB_URL is set, else embedded.",
    )
    http_bind: str = Field(
        default="127.0.0.1",
        validation_alias="ARTI_HTTP_BIND",
        description="Address(es) Caddy's API listener binds, space-separated. Loopback unless told otherwise.",
    )

    encryption_keys: str | None = Field(
        default=None,
        validation_alias="ARTI_ENCRYPTION_KEYS",
        description="Key ring for provider tokens at rest: `kid:base64key[,kid:base64key...]`, first is current. "
        "Never stored in the database; generate one with `arti keys generate`.",
    )

    # OAuth apps of the providers (ProviderClient credentials); unset providers cannot be connected.
    spotify_client_id: str | None = Field(default=None, validation_alias="SPOTIFY_CLIENT_ID")
    spotify_client_secret: SecretStr | None = Field(default=None, validation_alias="SPOTIFY_CLIENT_SECRET")
    youtube_client_id: str | None = Field(default=None, validation_alias="YOUTUBE_CLIENT_ID")
    youtube_client_secret: SecretStr | None = Field(default=None, validation_alias="YOUTUBE_CLIENT_SECRET")
    instagram_client_id: str | None = Field(default=None, validation_alias="INSTAGRAM_CLIENT_ID")
    instagram_client_secret: SecretStr | None = Field(default=None, validation_alias="INSTAGRAM_CLIENT_SECRET")
    soundcloud_client_id: str | None = Field(default=None, validation_alias="SOUNDCLOUD_CLIENT_ID")
    soundcloud_client_secret: SecretStr | None = Field(default=None, validation_alias="SOUNDCLOUD_CLIENT_SECRET")
    tiktok_client_id: str | None = Field(default=None, validation_alias="TIKTOK_CLIENT_ID",
                                         description="TikTok's client key (Login Kit).")
    tiktok_client_secret: SecretStr | None = Field(default=None, validation_alias="TIKTOK_CLIENT_SECRET")

    provider_gateway: str | None = Field(
        default=None,
        validation_alias="ARTI_PROVIDER_GATEWAY",
        description="Route provider API calls through this HTTP endpoint (egress gateway; fakes in e2e tests).",
    )
    provider_sandbox: bool = Field(
        default=False,
        validation_alias="ARTI_PROVIDER_SANDBOX",
        description="Embedded mode only: start the local provider sandbox (arti/sandbox.py) and point every provider "
        "client at it (consent page, ARTI_PROVIDER_GATEWAY, sandbox client ids and secrets). Refused in any other "
        "mode and with an API opened beyond loopback.",
    )
    sandbox_port: int = Field(default=DEFAULT_PORTS["sandbox"], ge=1, le=65535, validation_alias="ARTI_SANDBOX_PORT",
                              description="The provider sandbox's port on 127.0.0.1.")
    worker_concurrency: int = Field(default=4, ge=1, le=64, validation_alias="ARTI_WORKER_CONCURRENCY")
    worker_sync_concurrency: int = Field(
        default=2, ge=0, le=64, validation_alias="ARTI_WORKER_SYNC_CONCURRENCY",
        description="Job slots `arti worker` keeps for the sync queue on top of its concurrency (0: none).",
    )
    stalled_worker_seconds: float = Field(
        default=30.0, ge=1, validation_alias="ARTI_STALLED_WORKER_SECONDS",
        description="A worker silent this long is dead: its running jobs are re-queued.",
    )

    # Insights: embeddings (none = full-text retrieval only) and the answering LLM (unset = extractive answers).
    embedding_provider: str = Field(default="none", validation_alias="ARTI_EMBEDDING_PROVIDER")
    embedding_base_url: str | None = Field(default=None, validation_alias="ARTI_EMBEDDING_BASE_URL")
    embedding_model: str = Field(default="text-embedding-3-small", validation_alias="ARTI_EMBEDDING_MODEL")
    embedding_api_key: SecretStr | None = Field(default=None, validation_alias="ARTI_EMBEDDING_API_KEY")
    llm_base_url: str | None = Field(default=None, validation_alias="ARTI_LLM_BASE_URL")
    llm_model: str = Field(default="gpt-4o-mini", validation_alias="ARTI_LLM_MODEL")
    llm_api_key: SecretStr | None = Field(default=None, validation_alias="ARTI_LLM_API_KEY")
    llm_timeout_seconds: float = Field(default=30.0, gt=0, validation_alias="ARTI_LLM_TIMEOUT_SECONDS")

    db_port: int = Field(default=EMBEDDED_PORT, ge=1, le=65535, validation_alias="ARTI_DB_PORT")
    http_port: int = Field(default=DEFAULT_PORTS["http"], ge=1, le=65535, validation_alias="ARTI_HTTP_PORT",
                           description="Caddy's API listener (the platform's one entry point).")
    handlers_port: int = Field(default=DEFAULT_PORTS["handlers"], ge=1, le=65535,
                               validation_alias="ARTI_HANDLERS_PORT", description="uvicorn (handlers), loopback.")
    studio_port: int = Field(default=DEFAULT_PORTS["studio"], ge=1, le=65535, validation_alias="ARTI_STUDIO_PORT",
                             description="Caddy's tools listener (Studio, n8n), loopback.")
    data_dir: Path = Field(default=PROJECT_ROOT / ".arti", validation_alias="ARTI_DATA_DIR")
    log_max_bytes: int = Field(
        default=10_000_000, ge=10_000, validation_alias="ARTI_LOG_MAX_BYTES",
        description="Size at which the supervisor rotates a log in <data dir>/logs (and the cluster's postgres.log).")
    log_backups: int = Field(default=3, ge=1, le=50, validation_alias="ARTI_LOG_BACKUPS",
                             description="Rotated generations kept per log (<name>.log.1 is the newest).")
    migrations_dir: Path = Field(default=PROJECT_ROOT / "supabase" / "migrations")
    sql_functions_dir: Path = Field(default=PROJECT_ROOT / "sql_functions")

    @field_validator("jwt_secret", "service_role_key", "db_url", "supabase_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `KEY=` in a copied .env.example means "not set", not "the empty secret".
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _point_providers_at_the_sandbox(self) -> Settings:
        # Sandbox mode replaces the gateway and every provider app, whatever else is configured, so that no real
        # credential is sent to the sandbox and no provider is called; never outside embedded mode, where
        # check_edge_security refuses the setting instead.
        if self.sandbox_active:
            self.provider_gateway = self.sandbox_url
            for provider in SANDBOX_PROVIDERS:
                setattr(self, f"{provider}_client_id", sandbox_client_id(provider))
                setattr(self, f"{provider}_client_secret", SecretStr(sandbox_client_secret(provider)))
        return self

    @property
    def sandbox_active(self) -> bool:
        """ARTI_PROVIDER_SANDBOX=1 in embedded mode (the only mode it may run in)."""
        return self.provider_sandbox and self.mode == "embedded"

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_port}"

    @property
    def provider_authorize_base(self) -> str | None:
        """Where the provider clients send the browser for consent instead of the provider: the sandbox, in sandbox
        mode only (derived, never a setting of its own: no configuration can point users' consent elsewhere)."""
        return self.sandbox_url if self.sandbox_active else None

    @property
    def mode(self) -> Mode:
        """ARTI_MODE when set; otherwise `cloud` when a database URL is configured, else `embedded`."""
        if self.mode_setting is not None:
            return self.mode_setting
        return "cloud" if self.db_url else "embedded"

    def verification_secret(self) -> str | None:
        """The HS256 secret tokens are verified (and, locally, minted) with.

        Embedded mode falls back to the public local secret; the other modes have none unless one is
        configured, and then accept only tokens signed by the project's asymmetric keys (JWKS).
        """
        if self.jwt_secret:
            return self.jwt_secret
        return LOCAL_JWT_SECRET if self.mode == "embedded" else None

    def http_exposed(self) -> bool:
        """True when ARTI_HTTP_BIND opens the API listener beyond loopback."""
        return any(not _is_loopback(address) for address in self.http_bind.split())

    def check_edge_security(self) -> None:
        """Refuse a configuration in which anyone could sign accepted tokens, or the provider sandbox outside a
        local embedded trial (one-line ArtiError).

        Called at the start of every process that verifies tokens or serves HTTP (handlers, platform start).
        """
        secret = self.verification_secret()
        well_known = secret in WELL_KNOWN_JWT_SECRETS
        if self.mode == "embedded" and self.db_url:
            raise ArtiError("ARTI_MODE=embedded uses the local cluster: unset SUPABASE_DB_URL, or set ARTI_MODE=cloud")
        if self.provider_sandbox and self.mode != "embedded":
            raise ArtiError(f"ARTI_PROVIDER_SANDBOX=1 fakes the providers for a local trial and runs in embedded mode "
                            f"only, not in {self.mode} mode: unset ARTI_PROVIDER_SANDBOX")
        if self.provider_sandbox and self.http_exposed():
            raise ArtiError(f"ARTI_PROVIDER_SANDBOX=1 needs the API on loopback, but ARTI_HTTP_BIND={self.http_bind} "
                            f"opens it beyond: unset ARTI_HTTP_BIND, or unset ARTI_PROVIDER_SANDBOX")
        if self.mode != "embedded":
            if well_known:
                raise ArtiError(
                    f"SUPABASE_JWT_SECRET is a publicly known development secret, which anyone can sign tokens "
                    f"with; {self.mode} mode refuses it: set your project's own JWT secret (Supabase dashboard: "
                    f"Settings > API), a fresh one (`openssl rand -hex 32`), or unset it to accept only the "
                    f"project's asymmetric keys (SUPABASE_URL)")
            if secret is None and not self.supabase_url:
                raise ArtiError(f"{self.mode} mode cannot verify tokens: set SUPABASE_URL (the project's JWKS) "
                                f"or SUPABASE_JWT_SECRET")
            if self.service_role_key and _signed_with_well_known_secret(self.service_role_key):
                raise ArtiError("SUPABASE_SERVICE_ROLE_KEY is signed with a publicly known development secret; "
                                "use your project's service_role key (Supabase dashboard: Settings > API)")
        elif well_known and self.http_exposed():
            raise ArtiError(
                f"ARTI_HTTP_BIND={self.http_bind} opens the API beyond loopback while tokens are signed with the "
                f"public local JWT secret, which anyone can use: set SUPABASE_JWT_SECRET to a fresh secret "
                f"(`openssl rand -hex 32`), or unset ARTI_HTTP_BIND to stay on 127.0.0.1")

    def database_url(self) -> str:
        """The URL to connect to: the configured one, or the embedded cluster's."""
        if self.db_url:
            return self.db_url
        return embedded_url(self.db_port)


def _is_loopback(address: str) -> bool:
    host = address.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name or a wildcard: assume it is reachable from elsewhere


def _signed_with_well_known_secret(token: str) -> bool:
    """True when `token` verifies with one of the published development secrets."""
    for secret in WELL_KNOWN_JWT_SECRETS:
        try:
            jwt.decode(token, secret, algorithms=["HS256"], options={"verify_exp": False, "verify_aud": False})
        except jwt.PyJWTError:
            continue
        return True
    return False


def embedded_url(port: int, dbname: str = "postgres") -> str:
    """URL of a database in an embedded cluster listening on 127.0.0.1:port."""
    return f"postgresql://postgres:{EMBEDDED_PASSWORD}@127.0.0.1:{port}/{dbname}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()
