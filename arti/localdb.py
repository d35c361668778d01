"""The embedded Postgres: a local cluster in a git-ignored folder of the project.

It listens on 127.0.0.1 (54322 by default, Supabase's local DB port), preloads pg_cron and runs with
wal_level=logical like a Supabase database. Postgres refuses to run as root, so when this runs as root
the server runs as the unprivileged `postgres` user (via runuser) and we say so once.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from arti.errors import ArtiError
from arti.settings import EMBEDDED_PASSWORD

PG_MAJOR = 15
PG_BIN = Path(f"/usr/lib/postgresql/{PG_MAJOR}/bin")
PG_SHARE = Path(f"/usr/share/postgresql/{PG_MAJOR}")
PG_LIB = Path(f"/usr/lib/postgresql/{PG_MAJOR}/lib")
SERVER_USER = "postgres"
INSTALL_HINT = "run: sudo ./scripts/install-system-deps.sh"

# What the embedded mode needs from the system, and where to find it.
REQUIRED_FILES = {
    f"postgresql-{PG_MAJOR}": PG_BIN / "postgres",
    f"postgresql-{PG_MAJOR}-cron": PG_LIB / "pg_cron.so",
    f"postgresql-{PG_MAJOR}-pgtap": PG_SHARE / "extension" / "pgtap.control",
    "pgvector (>= 0.8, built from Debian's source package)": PG_SHARE / "extension" / "vector.control",
}


def _say(message: str) -> None:
    print(f"arti: {message}", file=sys.stderr)


def missing_system_packages() -> list[str]:
    """Names of the system packages whose files are absent."""
    return [name for name, path in REQUIRED_FILES.items() if not path.exists()]


def tcp_listeners() -> list[tuple[str, int, str]]:
    """(address, port, socket inode) of every TCP socket in LISTEN state on this machine (from /proc/net)."""
    found = []
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A":
                continue
            hex_address, hex_port = local.split(":")
            raw = bytes.fromhex(hex_address)
            # /proc prints the address as 32-bit words in host (little-endian) order.
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            found.append((socket.inet_ntop(family, raw), int(hex_port, 16), inode))
    return found


def socket_inodes(pid: int) -> set[str]:
    """Inodes of the sockets process `pid` holds open (empty when it is gone or not visible)."""
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        pass
    return inodes


def cmdline(pid: int) -> str:
    """Process `pid`'s command line, space-separated ("" when it is gone or not visible)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def port_owner(port: int) -> str | None:
    """Describe the process listening on 127.0.0.1:port (or any address), or None if the port is free."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        if probe.connect_ex(("127.0.0.1", port)) != 0:
            return None
    inodes = {inode for _, listening, inode in tcp_listeners() if listening == port}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and socket_inodes(int(proc.name)) & inodes:
            return f"{cmdline(int(proc.name)) or proc.name} (pid {proc.name})"
    return "another program (its process is not visible to this user)"


def self_signed_certificate() -> tuple[bytes, bytes]:
    """PEM certificate and key for `localhost` and 127.0.0.1 (the embedded cluster's TLS; local use only)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


@dataclass
class ClusterStatus:
    """What `arti db status` reports about the cluster process."""

    initialized: bool
    running: bool
    pid: int | None
    port: int
    data_dir: Path


class LocalCluster:
    """A Postgres cluster under `root` listening on 127.0.0.1:`port`."""

    def __init__(self, root: Path, port: int, *, cron_database: str = "postgres") -> None:
        self.root = root
        self.port = port
        self.cron_database = cron_database
        self.pgdata = root / "pgdata"
        self.pidfile = self.pgdata / "postmaster.pid"
        self.run_dir = root / "run"
        self.log_file = root / "postgres.log"
        self._told_about_root = False

    # -- privileges -------------------------------------------------------------------------------
    @property
    def as_root(self) -> bool:
        return os.geteuid() == 0

    def _wrap(self, argv: list[str]) -> list[str]:
        if not self.as_root:
            return argv
        if not self._told_about_root:
            _say(f"running as root: the Postgres server runs as the unprivileged user '{SERVER_USER}'")
            self._told_about_root = True
        return ["runuser", "-u", SERVER_USER, "--", *argv]

    def _run(self, argv: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self._wrap(argv), capture_output=True, text=True, check=check)

    def _prepare_dir(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        if not self.as_root:
            return
        try:
            entry = pwd.getpwnam(SERVER_USER)
        except KeyError as exc:
            raise ArtiError(
                f"running as root, but there is no '{SERVER_USER}' user to run Postgres as; {INSTALL_HINT}"
            ) from exc
        os.chown(path, entry.pw_uid, entry.pw_gid)
        # The server user must be able to walk down to the data folder.
        for parent in path.resolve().parents:
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH:
                os.chmod(parent, mode | stat.S_IXOTH)
                _say(f"made {parent} traversable (o+x) so '{SERVER_USER}' can reach {path}")

    # -- lifecycle --------------------------------------------------------------------------------
    def check_system(self) -> None:
        missing = missing_system_packages()
        if missing:
            raise ArtiError(f"missing system packages: {', '.join(missing)}; {INSTALL_HINT}")

    @property
    def initialized(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def init(self) -> bool:
        """Create the cluster if it does not exist. Returns True when it was created."""
        self.check_system()
        if self.initialized:
            return False
        self._prepare_dir(self.root)
        self._prepare_dir(self.run_dir)
        pwfile = self.root / "pwfile"
        pwfile.write_text(EMBEDDED_PASSWORD + "\n")
        if self.as_root:
            shutil.chown(pwfile, SERVER_USER)
        try:
            result = self._run(
                [str(PG_BIN / "initdb"), "-D", str(self.pgdata), "-U", "postgres", "-E", "UTF8",
                 "--locale=C.UTF-8", "--auth-local=trust", "--auth-host=scram-sha-256",
                 f"--pwfile={pwfile}"],
                check=False,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise ArtiError(f"initdb failed in {self.pgdata}: {result.stderr.strip().splitlines()[-1]}")
        conf = self.pgdata / "postgresql.conf"
        with conf.open("a") as fh:
            fh.write("\n# ARTi embedded-mode settings (rewritten on every start)\ninclude 'arti.conf'\n")
        return True

    def _write_config(self) -> None:
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.run_dir}'",
            # As on Supabase: pg_stat_statements preloaded (`supabase inspect db` reads it), pg_cron for schedules.
            "shared_preload_libraries": "'pg_stat_statements,pg_cron'",
            "pg_stat_statements.track": "all",
            # TLS with a certificate made for this cluster (tools that default to TLS, such as the Supabase
            # CLI's --db-url, connect without `sslmode=disable`); plain connections stay allowed on loopback.
            "ssl": "on",
            "ssl_cert_file": "'server.crt'",
            "ssl_key_file": "'server.key'",
            "cron.database_name": f"'{self.cron_database}'",
            "cron.timezone": "'UTC'",
            "wal_level": "logical",
            "max_wal_senders": "10",
            "max_replication_slots": "10",
            "max_connections": "120",
            "shared_buffers": "512MB",
            "work_mem": "16MB",
            "maintenance_work_mem": "512MB",
            "synchronous_commit": "on",  # as on Supabase: a commit is on disk before it is acknowledged
            "timezone": "'UTC'",
            "log_timezone": "'UTC'",
        }
        body = "".join(f"{key} = {value}\n" for key, value in settings.items())
        path = self.pgdata / "arti.conf"
        path.write_text("# Written by arti.localdb; edits are overwritten on start.\n" + body)
        if self.as_root:
            shutil.chown(path, SERVER_USER)

    def _ensure_certificate(self) -> None:
        """A self-signed certificate for localhost/127.0.0.1 in the data folder (made once, kept 10 years)."""
        cert, key = self.pgdata / "server.crt", self.pgdata / "server.key"
        if cert.exists() and key.exists():
            return
        cert_pem, key_pem = self_signed_certificate()
        key.touch(mode=0o600)
        key.write_bytes(key_pem)
        cert.write_bytes(cert_pem)
        if self.as_root:
            for path in (cert, key):
                shutil.chown(path, SERVER_USER, SERVER_USER)

    def status(self) -> ClusterStatus:
        pid: int | None = None
        running = False
        if self.initialized and self.pidfile.exists():
            result = self._run([str(PG_BIN / "pg_ctl"), "-D", str(self.pgdata), "status"], check=False)
            running = result.returncode == 0
            if running:
                pid = int(self.pidfile.read_text().splitlines()[0])
        return ClusterStatus(self.initialized, running, pid, self.port, self.pgdata)

    def running_port(self) -> int | None:
        try:
            return int(self.pidfile.read_text().splitlines()[3])
        except (OSError, IndexError, ValueError):
            return None

    def start(self) -> bool:
        """Start the server (initialising it first). Returns False when it was already running."""
        self.check_system()
        if self.initialized and self.status().running:
            if self.running_port() != self.port:
                raise ArtiError(
                    f"the embedded Postgres is already running on port {self.running_port()}, "
                    f"not {self.port}; run `arti db stop` first"
                )
            return False
        owner = port_owner(self.port)
        if owner:
            raise ArtiError(
                f"port {self.port} is already in use by {owner}; stop it, or set ARTI_DB_PORT to a free port"
            )
        self.init()
        self._prepare_dir(self.run_dir)
        self._ensure_certificate()
        self._write_config()
        if self.as_root and self.log_file.exists():
            shutil.chown(self.log_file, SERVER_USER)
        elif self.as_root:
            self.log_file.touch()
            shutil.chown(self.log_file, SERVER_USER)
        result = self._run(
            [str(PG_BIN / "pg_ctl"), "-D", str(self.pgdata), "-l", str(self.log_file), "-w", "-t", "60",
             "start"],
            check=False,
        )
        if result.returncode != 0:
            tail = self.log_file.read_text().strip().splitlines()[-3:] if self.log_file.exists() else []
            raise ArtiError(
                f"Postgres did not start (see {self.log_file}): " + " | ".join(tail or [result.stderr.strip()])
            )
        self._wait_ready()
        return True

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self._run(
                [str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"], check=False
            )
            if result.returncode == 0:
                return
            time.sleep(0.2)
        raise ArtiError(f"Postgres did not accept connections on port {self.port} within {timeout:.0f}s")

    def stop(self) -> bool:
        """Stop the server if it runs. Returns False when it was not running."""
        if not self.status().running:
            return False
        result = self._run(
            [str(PG_BIN / "pg_ctl"), "-D", str(self.pgdata), "-m", "fast", "-w", "-t", "60", "stop"],
            check=False,
        )
        if result.returncode != 0:
            raise ArtiError(f"pg_ctl stop failed: {result.stderr.strip()}")
        return True

    def recreate_database(self, name: str = "postgres") -> None:
        """Drop (disconnecting its sessions) and create an empty database in this running cluster."""
        import psycopg

        from arti.settings import embedded_url

        with psycopg.connect(embedded_url(self.port, "template1"), autocommit=True) as admin:
            admin.execute(f'drop database if exists "{name}" with (force)')
            admin.execute(f'create database "{name}"')

    def destroy(self) -> None:
        """Stop the server and delete the cluster's files."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
