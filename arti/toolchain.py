"""The pinned Supabase toolchain, run without Docker: the Supabase CLI and postgres-meta from tools/.

`scripts/install-node-tools.sh` installs them (`npm ci` in tools/, exact versions). The CLI's commands that
take `--db-url` (db push, db reset, migration list, db lint, db advisors) run as they are. The two that need
Docker are run the way the CLI runs them in its container:

* `supabase gen types typescript`: postgres-meta's server with PG_META_GENERATE_TYPES=typescript prints the
  types and exits (`generate_types`);
* `supabase test db`: pg_prove over supabase/tests, with pgTAP created in `extensions` for the run and dropped
  afterwards when it was not there (tests/toolchain does this).

`arti types` (or `python -m arti.toolchain types`) regenerates supabase/types/database.ts from a freshly migrated
database.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from arti.errors import ArtiError
from arti.localdb import LocalCluster
from arti.settings import PROJECT_ROOT, embedded_url

TOOLS_DIR = PROJECT_ROOT / "tools"
SUPABASE_BIN = TOOLS_DIR / "node_modules" / ".bin" / "supabase"
POSTGRES_META_DIR = TOOLS_DIR / "node_modules" / "@supabase" / "postgres-meta"
SUPABASE_DIR = PROJECT_ROOT / "supabase"
TYPES_FILE = SUPABASE_DIR / "types" / "database.ts"
TYPES_COMMAND = "arti types"  # or: python -m arti.toolchain types
INSTALL_HINT = "run ./scripts/install-node-tools.sh"
# What `supabase gen types --db-url` passes to postgres-meta besides the URL and schemas (its --query-timeout
# default is 15s; one-to-one relationships are detected unless --postgrest-v9-compat).
GEN_TYPES_ENV = {
    "PG_META_GENERATE_TYPES": "typescript",
    "PG_META_GENERATE_TYPES_SWIFT_ACCESS_CONTROL": "internal",
    "PG_META_GENERATE_TYPES_DETECT_ONE_TO_ONE_RELATIONSHIPS": "true",
    "PG_CONN_TIMEOUT_SECS": "15",
    "PG_QUERY_TIMEOUT_SECS": "15",
}


def require_tools() -> None:
    """Fail with what to run when the pinned tools are not installed."""
    if not SUPABASE_BIN.exists() or not (POSTGRES_META_DIR / "dist" / "server" / "server.js").exists():
        raise ArtiError(f"the Supabase CLI and postgres-meta are not installed in {TOOLS_DIR}: {INSTALL_HINT}")


def cli_db_url(url: str) -> str:
    """`url` for the CLI's --db-url: with sslmode=disable (the embedded cluster is reached over loopback and the
    CLI otherwise insists on TLS), unless the URL already says which sslmode."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.setdefault("sslmode", "disable")
    return urlunsplit(parts._replace(query=urlencode(query)))


def _environment(*dropped_prefixes: str) -> dict[str, str]:
    """This process's environment without the variables that would reconfigure the tool (the Supabase CLI reads
    SUPABASE_* as config.toml overrides; postgres-meta reads PG_META_*): the project's files decide."""
    return {k: v for k, v in os.environ.items() if not k.startswith(dropped_prefixes)}


def supabase(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the pinned Supabase CLI in the project (its supabase/ folder), answering yes to prompts, with
    telemetry off, no inherited SUPABASE_* variables, and a throwaway HOME (it keeps telemetry and profile
    files there): nothing is left outside the repository."""
    require_tools()
    with tempfile.TemporaryDirectory(prefix="arti-supabase-home-") as home:
        env = {**_environment("SUPABASE_"), "HOME": home, "SUPABASE_TELEMETRY_DISABLED": "1", "DO_NOT_TRACK": "1"}
        return subprocess.run(
            [str(SUPABASE_BIN), *args, "--workdir", str(PROJECT_ROOT), "--yes"],
            cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        )


def api_schemas(config: Path = SUPABASE_DIR / "config.toml") -> list[str]:
    """The schemas `supabase gen types` includes by default: public, then [api].schemas of config.toml."""
    schemas = ["public", *tomllib.loads(config.read_text()).get("api", {}).get("schemas", [])]
    return list(dict.fromkeys(schemas))


def generate_types(db_url: str, *, timeout: float = 600) -> str:
    """The TypeScript types of `db_url`'s database exactly as `supabase gen types typescript --db-url` prints
    them: postgres-meta's server in type-generation mode, with the environment the CLI gives its container."""
    require_tools()
    env = {
        **_environment("PG_META_", "PG_CONN_", "PG_QUERY_"),
        **GEN_TYPES_ENV,
        "PG_META_DB_URL": cli_db_url(db_url),
        "PG_META_GENERATE_TYPES_INCLUDED_SCHEMAS": ",".join(api_schemas()),
    }
    result = subprocess.run(
        ["node", "dist/server/server.js"], cwd=POSTGRES_META_DIR, env=env, capture_output=True, text=True,
        timeout=timeout, stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0 or not result.stdout.startswith("export type"):
        tail = (result.stderr.strip() or result.stdout.strip()).splitlines()[-5:]
        raise ArtiError("postgres-meta did not generate the types: " + " | ".join(tail))
    return result.stdout


def free_port() -> int:
    """A loopback port nothing listens on now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def scratch_cluster(name: str) -> Iterator[LocalCluster]:
    """An embedded cluster of its own in .arti/<name> (kept between runs to save initdb), started on a free
    port and stopped at the end. Its `postgres` database is the pg_cron database, as on Supabase: pg_cron can
    be created there only, so a Supabase-like database needs a cluster of its own."""
    root = PROJECT_ROOT / ".arti" / name
    probe = LocalCluster(root, 0)
    port = None
    if probe.initialized and probe.status().running:  # left running by an interrupted run
        port = probe.running_port()
    cluster = LocalCluster(root, port or free_port())
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def write_types() -> Path:
    """Regenerate supabase/types/database.ts from a freshly migrated database in a scratch cluster."""
    from arti.db import connect
    from arti.migrate import migrate

    require_tools()
    with scratch_cluster("typegen-db") as cluster:
        cluster.recreate_database()
        url = embedded_url(cluster.port)
        with connect(url, autocommit=True) as conn:
            migrate(conn, SUPABASE_DIR / "migrations")
        types = generate_types(url)
    TYPES_FILE.parent.mkdir(parents=True, exist_ok=True)
    TYPES_FILE.write_text(types)
    return TYPES_FILE


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args != ["types"]:
        print("usage: python -m arti.toolchain types   (regenerates supabase/types/database.ts)", file=sys.stderr)
        return 2
    try:
        path = write_types()
    except ArtiError as exc:
        print(f"arti: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {path.relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
