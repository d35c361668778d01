"""Settings from the environment (and a `.env` file), with embedded-mode defaults.

Names follow Supabase's own where one exists (SUPABASE_DB_URL, SUPABASE_URL, SUPABASE_JWT_SECRET,
SUPABASE_SERVICE_ROLE_KEY); ARTi-specific settings use the ARTI_ prefix.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# The JWT secret `supabase start` uses for local development; embedded mode mirrors it.
LOCAL_JWT_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"  # noqa: S105 (public dev key)
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
    "http": 8080,  # ARTI_HTTP_PORT
    "handlers": 8000,  # ARTI_HANDLERS_PORT
}
EMBEDDED_PASSWORD = "postgres"  # noqa: S105 (Supabase local default)


class Settings(BaseSettings):
    """All runtime configuration. Unset values fall back to embedded mode."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    db_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("SUPABASE_DB_URL", "ARTI_DB_URL"),
        description="Postgres URL of a Supabase project (cloud mode). Unset: the embedded cluster.",
    )
    supabase_url: str | None = Field(default=None, validation_alias="SUPABASE_URL")
    service_role_key: str | None = Field(default=None, validation_alias="SUPABASE_SERVICE_ROLE_KEY")
    jwt_secret: str = Field(default=LOCAL_JWT_SECRET, validation_alias="SUPABASE_JWT_SECRET")

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

    provider_gateway: str | None = Field(
        default=None,
        validation_alias="ARTI_PROVIDER_GATEWAY",
        description="Route provider API calls through this HTTP endpoint (egress gateway; fakes in e2e tests).",
    )
    worker_concurrency: int = Field(default=4, ge=1, le=64, validation_alias="ARTI_WORKER_CONCURRENCY")
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

    db_port: int = Field(default=EMBEDDED_PORT, validation_alias="ARTI_DB_PORT")
    data_dir: Path = Field(default=PROJECT_ROOT / ".arti", validation_alias="ARTI_DATA_DIR")
    migrations_dir: Path = Field(default=PROJECT_ROOT / "supabase" / "migrations")
    sql_functions_dir: Path = Field(default=PROJECT_ROOT / "sql_functions")

    @property
    def mode(self) -> str:
        """`cloud` when a database URL is configured, otherwise `embedded`."""
        return "cloud" if self.db_url else "embedded"

    def database_url(self) -> str:
        """The URL to connect to: the configured one, or the embedded cluster's."""
        if self.db_url:
            return self.db_url
        return embedded_url(self.db_port)


def embedded_url(port: int, dbname: str = "postgres") -> str:
    """URL of a database in an embedded cluster listening on 127.0.0.1:port."""
    return f"postgresql://postgres:{EMBEDDED_PASSWORD}@127.0.0.1:{port}/{dbname}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()
