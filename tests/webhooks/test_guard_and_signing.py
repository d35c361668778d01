"""The delivery-time SSRF guard (after DNS resolution, asking SQL's rule), signatures and retry timing."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from arti.webhook_signing import compute_signature, signature_header, verify_signature
from jobs.webhooks import (
    Destination,
    DestinationRefused,
    DestinationUnavailable,
    WebhookConfig,
    backoff_seconds,
    resolve_destination,
    retry_after_seconds,
    send,
)


def fake_resolver(answers: dict[str, list[str]]) -> object:
    async def resolve(host: str, port: int) -> list[str]:
        if host not in answers:
            raise OSError(f"Name or service not known: {host}")
        return answers[host]
    return resolve


@pytest.mark.parametrize(("answer", "reason"), [
    (["10.0.0.5"], "hooks.example.com resolves to 10.0.0.5, a private network address"),
    (["93.184.215.14", "192.168.1.1"], "resolves to 192.168.1.1"),
    (["169.254.169.254"], "resolves to 169.254.169.254, a cloud metadata address"),
    (["127.0.0.1"], "resolves to 127.0.0.1, a loopback address"),
    (["::ffff:10.1.2.3"], "embeds an IPv4 address"),
])
async def test_a_name_resolving_to_an_internal_address_is_refused(answer: list[str], reason: str, aconn: Any) -> None:
    resolver = fake_resolver({"hooks.example.com": answer})
    with pytest.raises(DestinationRefused, match=reason):
        await resolve_destination("https://hooks.example.com/arti", WebhookConfig(), aconn,
                                  resolver)  # type: ignore[arg-type]


async def test_a_public_answer_is_pinned_and_unknown_names_are_retried(aconn: Any) -> None:
    resolver = fake_resolver({"hooks.example.com": ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]})
    destination = await resolve_destination("https://hooks.example.com:8443/a?b=1", WebhookConfig(), aconn,
                                            resolver)  # type: ignore[arg-type]
    assert destination.addresses[0] == "93.184.215.14" and destination.host == "hooks.example.com"
    assert destination.netloc == "hooks.example.com:8443"
    with pytest.raises(DestinationUnavailable, match="cannot resolve"):
        await resolve_destination("https://gone.example.com/", WebhookConfig(), aconn,
                                  resolver)  # type: ignore[arg-type]


@pytest.mark.parametrize(("url", "config", "reason"), [
    ("http://169.254.169.254/", WebhookConfig(allow_loopback_http=True), "cloud metadata"),
    ("https://metadata.google.internal/", WebhookConfig(), "cloud metadata"),
    ("https://10.0.0.5/", WebhookConfig(allow_loopback_http=True), "a private network address"),
    ("http://localhost:8080/", WebhookConfig(), "loopback"),
    ("https://n8n/webhook", WebhookConfig(), "not a public domain name"),
    ("https://0x7f.1/", WebhookConfig(), "non-standard"),
    ("http://hooks.example.com/", WebhookConfig(), "only https"),
    ("ftp://hooks.example.com/", WebhookConfig(), "only https"),
])
async def test_refusals_without_resolution(url: str, config: WebhookConfig, reason: str, aconn: Any) -> None:
    with pytest.raises(DestinationRefused, match=reason):
        await resolve_destination(url, config, aconn, fake_resolver({}))  # type: ignore[arg-type]


async def test_listed_private_hosts_and_development_loopback_are_allowed(aconn: Any) -> None:
    resolver = fake_resolver({"n8n": ["172.18.0.4"], "localhost": ["::1", "127.0.0.1"]})
    listed = WebhookConfig(allowed_private_hosts=frozenset({"n8n"}))
    assert (await resolve_destination("http://n8n:5678/webhook/x", listed, aconn, resolver)).addresses == [  # type: ignore[arg-type]
        "172.18.0.4"]
    dev = WebhookConfig(allow_loopback_http=True)
    assert (await resolve_destination("http://localhost:9/x", dev, aconn, resolver)).addresses == [  # type: ignore[arg-type]
        "::1", "127.0.0.1"]
    with pytest.raises(DestinationRefused):  # a listed name still never reaches metadata
        await resolve_destination("http://n8n/", listed, aconn, fake_resolver({"n8n": ["169.254.169.254"]}))  # type: ignore[arg-type]


def test_signature_matches_the_documented_recipe() -> None:
    secret, timestamp, body = "whsec_" + "ab" * 32, "1795600000", '{"id":"e1","data":{"name":"Jos\u00e9"}}'
    expected = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
    assert compute_signature(secret, timestamp, body) == expected
    assert signature_header([secret], timestamp, body) == f"v1={expected}"
    both = signature_header([secret, "whsec_old"], timestamp, body)
    assert both.startswith(f"v1={expected},v1=")
    assert verify_signature("whsec_old", both, timestamp, body, now=1795600010)
    assert not verify_signature(secret, both, timestamp, body + " ", now=1795600010)
    assert not verify_signature(secret, both, timestamp, body, now=1795600000 + 301)  # older than 5 minutes


def test_retry_after_and_backoff() -> None:
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    in_a_minute = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 60))
    assert 55 <= (retry_after_seconds(in_a_minute) or 0) <= 61
    config = WebhookConfig(retry_base_seconds=30, retry_max_interval_seconds=3600)
    assert 24 <= backoff_seconds(1, config) <= 36
    assert 96 <= backoff_seconds(3, config) <= 144
    assert backoff_seconds(20, config) <= 3600 * 1.2


def _tls_server(name: str, tmp_path: Path) -> tuple[ThreadingHTTPServer, ssl.SSLContext, list[dict[str, str]]]:
    """An HTTPS server on 127.0.0.1 whose self-signed certificate names `name`; returns a client context trusting it."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    seen: list[dict[str, str]] = []
    names: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append({"host": self.headers["Host"], "sni": names[-1] if names else ""})
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert_file, key_file)
    server_context.sni_callback = lambda _sock, name, _ctx: names.append(name or "") and None
    server.socket = server_context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, ssl.create_default_context(cafile=str(cert_file)), seen


async def test_https_goes_to_the_checked_address_with_the_name_in_sni_host_and_certificate(tmp_path: Path) -> None:
    server, trusting, seen = _tls_server("hooks.example.test", tmp_path)
    port = server.server_address[1]
    try:
        destination = Destination(httpx.URL(f"https://hooks.example.test:{port}/x"), "hooks.example.test",
                                  ["127.0.0.1"])
        async with httpx.AsyncClient(verify=trusting, trust_env=False) as client:
            outcome = await send(client, destination, "{}", {"Content-Type": "application/json"}, 5)
            assert outcome.kind == "delivered" and outcome.status_code == 204
            assert seen == [{"host": f"hooks.example.test:{port}", "sni": "hooks.example.test"}]
            # A certificate for another name is not accepted, even at the checked address.
            wrong = Destination(httpx.URL(f"https://other.example.test:{port}/x"), "other.example.test",
                                ["127.0.0.1"])
            outcome = await send(client, wrong, "{}", {}, 5)
            assert outcome.kind == "retry" and "connection failed" in (outcome.error or "")
            assert len(seen) == 1
    finally:
        server.shutdown()
        server.server_close()
