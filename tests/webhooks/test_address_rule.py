"""One address rule for webhooks (issue 14, item 6), performed as attacks against the real code paths.

private.ip_address_kind() is the only classifier: the save path (create/update_webhook_endpoint ->
webhook_url_problem -> webhook_host_kind) and the delivery path (resolve_destination asks Postgres about the
URL's host and every resolved address) both use it. Only global unicast passes: IPv6 inside 2000::/3 and
outside its special-purpose blocks, IPv4 outside every non-global special-purpose block. IPv4 written in IPv6
(::/96, ::ffff:0:0/96, ::ffff:0:0:0/96, 64:ff9b::/96, 64:ff9b:1::/48, 2002::/16, Teredo 2001::/32) is refused
whatever it embeds, as are hosts an IPv4 parser would read as a number (0177.0.0.1, 2130706433, 127.1).
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from arti.settings import Settings
from jobs.webhooks import DestinationRefused, RetryLater, WebhookConfig, deliver, resolve_destination
from tests.factories import World, build_world
from tests.harness import TestDB

# -- the corpus ---------------------------------------------------------------------------------------

# Every non-global IPv4 block, its first and last address (and the well-known ones inside).
REFUSED_IPV4 = {
    "0.0.0.0": "reserved", "0.255.255.255": "reserved",  # noqa: S104 (an address to refuse, not to bind)
    "10.0.0.0": "private", "10.0.0.1": "private", "10.255.255.255": "private",
    "100.64.0.0": "private", "100.127.255.255": "private",
    "127.0.0.0": "loopback", "127.0.0.1": "loopback", "127.255.255.255": "loopback",
    "169.254.0.0": "link-local", "169.254.255.255": "link-local",
    "169.254.169.254": "metadata", "100.100.100.200": "metadata",
    "172.16.0.0": "private", "172.31.255.255": "private",
    "192.0.0.0": "reserved", "192.0.0.255": "reserved",
    "192.0.2.0": "reserved", "192.0.2.255": "reserved",
    "192.88.99.0": "reserved", "192.88.99.255": "reserved",
    "192.168.0.0": "private", "192.168.255.255": "private",
    "198.18.0.0": "reserved", "198.19.255.255": "reserved",
    "198.51.100.0": "reserved", "198.51.100.255": "reserved",
    "203.0.113.0": "reserved", "203.0.113.255": "reserved",
    "224.0.0.0": "reserved", "239.255.255.255": "reserved",
    "240.0.0.0": "reserved", "255.255.255.254": "reserved", "255.255.255.255": "reserved",
}

# IPv6 outside 2000::/3, and the non-global special-purpose blocks inside it (first and last address).
REFUSED_IPV6 = {
    "::": "reserved", "::1": "loopback",
    "100::": "reserved", "100::ffff:ffff:ffff:ffff": "reserved",
    "1000::": "reserved", "1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff": "reserved",
    "4000::1": "reserved", "5eff:ffff:ffff:ffff:ffff:ffff:ffff:ffff": "reserved", "5f01::": "reserved",
    "8000::1": "reserved", "c000::1": "reserved", "e000::1": "reserved",
    "fc00::": "private", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff": "private", "fd12::1": "private",
    "fd00:ec2::254": "metadata",
    "fe80::": "link-local", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff": "link-local",
    "fec0::1": "reserved",  # deprecated site-local
    "ff00::": "reserved", "ff02::1": "reserved", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff": "reserved",
    "2001::": "embedded-ipv4", "2001:0:ffff:ffff:ffff:ffff:ffff:ffff": "embedded-ipv4",  # Teredo
    "2001:1::1": "reserved", "2001:1::2": "reserved", "2001:2::1": "reserved", "2001:3::1": "reserved",
    "2001:4:112::1": "reserved", "2001:10::1": "reserved", "2001:20::1": "reserved",
    "2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff": "reserved",  # the end of 2001::/23
    "2001:db8::": "reserved", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff": "reserved",
    "2002::": "embedded-ipv4", "2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff": "embedded-ipv4",
    "3fff::": "reserved", "3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff": "reserved",
    "5f00::": "reserved", "5f00:ffff:ffff:ffff:ffff:ffff:ffff:ffff": "reserved",
    "::ffff:0.0.0.0": "embedded-ipv4", "::ffff:255.255.255.255": "embedded-ipv4",
    "::ffff:0:0.0.0.0": "embedded-ipv4", "::ffff:0:255.255.255.255": "embedded-ipv4",
    "64:ff9b::": "embedded-ipv4", "64:ff9b::ffff:ffff": "embedded-ipv4",
    "64:ff9b:1::": "embedded-ipv4", "64:ff9b:1:ffff:ffff:ffff:ffff:ffff": "embedded-ipv4",
    "::0.0.0.2": "embedded-ipv4", "::255.255.255.255": "embedded-ipv4",
}

# 127.0.0.1, 10.0.0.1 and 169.254.169.254 in every IPv6 form that carries an IPv4 address.
EMBEDDED = {}
for v4, hex_v4, teredo_client in (("127.0.0.1", "7f00:1", "80ff:fffe"), ("10.0.0.1", "a00:1", "f5ff:fffe"),
                                  ("169.254.169.254", "a9fe:a9fe", "5601:5601")):
    hi, lo = hex_v4.split(":")
    for form in (f"::{v4}", f"::{hex_v4}", f"::ffff:{v4}", f"::ffff:{hex_v4}", f"::ffff:0:{v4}",
                 f"64:ff9b::{v4}", f"64:ff9b::{hex_v4}", f"64:ff9b:1::{v4}",
                 f"64:ff9b:1:{hi}:{int(lo, 16) >> 8:x}:{(int(lo, 16) & 0xFF) << 8:x}::",  # RFC 6052 /48 layout
                 f"2002:{hex_v4}::1", f"2001:0:{hex_v4}::1", f"2001:0:4136:e378:8000:63bf:{teredo_client}"):
        EMBEDDED[form] = "embedded-ipv4"
# Refused whatever the IPv4 inside is: a public one too (use the IPv4 address itself).
EMBEDDED_PUBLIC = {a: "embedded-ipv4" for a in ("::8.8.8.8", "::ffff:8.8.8.8", "::ffff:0:8.8.8.8", "64:ff9b::8.8.8.8",
                                                "64:ff9b:1::8.8.8.8", "2002:808:808::1")}

REFUSED = {**REFUSED_IPV4, **REFUSED_IPV6, **EMBEDDED, **EMBEDDED_PUBLIC}

# Global unicast, including the neighbours of refused blocks.
GLOBAL = [
    "8.8.8.8", "1.1.1.1", "1.0.0.0", "9.255.255.255", "11.0.0.0", "100.63.255.255", "100.128.0.0",
    "126.255.255.255", "128.0.0.0", "169.253.255.255", "169.255.0.0", "172.15.255.255", "172.32.0.0",
    "192.0.1.255", "192.0.3.0", "192.88.98.255", "192.88.100.0", "192.167.255.255", "192.169.0.0",
    "198.17.255.255", "198.20.0.0", "198.51.99.255", "198.51.101.0", "203.0.112.255", "203.0.114.0",
    "223.255.255.255", "93.184.215.14",
    "2606:4700:4700::1111", "2001:4860:4860::8888", "2a00:1450:4001:81b::200e", "2000::", "2001:200::",
    "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db9::", "2003::", "2620:4f:8000::1", "3ffe:ffff::1",
    "3fff:1000::", "3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
]

# Not canonical addresses, but an IPv4 parser (libc inet_aton, WHATWG URL) reads them as one.
NUMERIC_HOSTS = ["0177.0.0.1", "0x7f.0.0.1", "0x7f000001", "2130706433", "017700000001", "127.1", "127.0.1",
                 "0x7f.1", "10.1", "0", "0x", "00.0.0.0", "127.0.0.01", "08.8.8.8", "8.8.8.010", "256.0.0.1",
                 "1.2.3.4.5", "0251.0376.0251.0376", "0xa9fea9fe", "2852039166", "hooks.example.123",
                 "hooks.example.0x1", "127.0.0.1.0"]
# Not host names: percent-encoded, full-width digits, ideographic dots, other non-ASCII forms.
INVALID_HOSTS = ["%31%32%37.0.0.1", "\uff11\uff12\uff17.\uff10.\uff10.\uff11", "127\u30020\u30020\u30021",
                 "\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54", "hooks.exa mple.com",
                 "-hooks.example.com", "hooks..example.com", "b\u00fccher.example"]
PUBLIC_NAMES = ["hooks.example.com", "n8n.example.org", "xn--bcher-kva.example", "0x7f.example.com",
                "127.0.0.1.nip.io", "hooks-1.eu.example.net", "a_b.example.com"]


def url_for(host: str, port: int | None = None) -> str:
    netloc = f"[{host}]" if ":" in host else host
    return f"https://{netloc}{f':{port}' if port else ''}/hook"


# -- save time: the RPCs, as an organization admin --------------------------------------------------------


def _save_outcomes(db: TestDB, world: World, urls: list[str], via: str) -> dict[str, tuple[str | None, str]]:
    """url -> (sqlstate or None when accepted, message)."""
    outcomes: dict[str, tuple[str | None, str]] = {}
    endpoint = None
    if via == "update":
        with db.as_user(world.users["admin"]):
            endpoint = db.value("select public.create_webhook_endpoint(%s, 'https://start.example.com/', "
                                "'{sync.failed}') ->> 'id'", (world.ids["org_a"],))
    for url in urls:
        try:
            with db.as_user(world.users["admin"]):
                if via == "create":
                    db.execute("select public.create_webhook_endpoint(%s, %s, '{sync.failed}')",
                               (world.ids["org_a"], url))
                else:
                    db.execute("select public.update_webhook_endpoint(%s, url => %s)", (endpoint, url))
            outcomes[url] = (None, "accepted")
        except psycopg.Error as exc:
            outcomes[url] = (exc.sqlstate, exc.diag.message_primary or "")
    return outcomes


def _settings(db: TestDB, loopback: bool = False, hosts: str = "") -> None:
    db.execute("update private.settings set value = %s where key = 'webhooks.allow_loopback_http'",
               ("true" if loopback else "false",))
    db.execute("update private.settings set value = %s where key = 'webhooks.allowed_private_hosts'", (hosts,))


REFUSED_URLS = ([url_for(a) for a in REFUSED] + [url_for(h) for h in NUMERIC_HOSTS + INVALID_HOSTS]
                + ["https://0177.0.0.1/", "https://[::127.0.0.1]/", "https://[::7f00:1]/",
                   "https://[::ffff:0:127.0.0.1]/", "https://[64:ff9b:1::127.0.0.1]/", "https://[127.0.0.1]/",
                   "https://0177.0.0.1:8443/x?y=1", "https://2130706433./", "https://[::ffff:0177.0.0.1]/"])


@pytest.mark.parametrize("via", ["create", "update"])
def test_saving_a_url_refuses_every_address_that_is_not_global_unicast(db: TestDB, via: str) -> None:
    world = build_world(db)
    _settings(db)
    outcomes = _save_outcomes(db, world, REFUSED_URLS, via)
    wrong = {url: outcome for url, outcome in outcomes.items() if outcome[0] != "22023"}
    assert wrong == {}, f"{len(wrong)} of {len(outcomes)} not refused with 22023"


def test_embedded_reserved_and_metadata_forms_stay_refused_in_development_and_for_listed_hosts(db: TestDB) -> None:
    world = build_world(db)
    never = [a for a, kind in REFUSED.items() if kind not in ("loopback", "private")]
    _settings(db, loopback=True, hosts=",".join(a.lower() for a in never) + ",0177.0.0.1,2130706433")
    urls = [url_for(a) for a in never] + ["https://0177.0.0.1/", "https://2130706433/"]
    wrong = {url: o for url, o in _save_outcomes(db, world, urls, "create").items() if o[0] != "22023"}
    assert wrong == {}


def test_saving_accepts_global_addresses_and_public_names(db: TestDB) -> None:
    world = build_world(db)
    _settings(db)
    urls = [url_for(a) for a in GLOBAL] + [url_for(n) for n in PUBLIC_NAMES] + ["https://hooks.example.com./x"]
    wrong = {url: o for url, o in _save_outcomes(db, world, urls, "create").items() if o[0] is not None}
    assert wrong == {}


@pytest.mark.parametrize(("url", "message"), [
    ("https://0177.0.0.1/", "0177.0.0.1, a numeric host in a non-standard form"),
    ("https://2130706433/", "dotted-decimal"),
    ("https://[::127.0.0.1]/", "::127.0.0.1, an IPv6 address that embeds an IPv4 address"),
    ("https://[64:ff9b:1::127.0.0.1]/", "embeds an IPv4 address"),
    ("https://[::ffff:0:a00:1]/", "webhooks are never sent there"),
    ("https://[2001:db8::1]/", "not globally routable"),
    ("https://hooks%2eexample.com/", "not a valid host name"),
    ("https://%31%32%37.0.0.1/", "non-standard form"),  # ends in a number: a WHATWG parser decodes, then reads it
    ("https://[127.0.0.1]/", "invalid IPv6 address"),
])
def test_refusals_say_why(db: TestDB, url: str, message: str) -> None:
    world = build_world(db)
    _settings(db)
    state, text = _save_outcomes(db, world, [url], "create")[url]
    assert state == "22023" and message in text, text


def test_the_classifier_reports_each_kind(db: TestDB) -> None:
    expected = {**REFUSED, **{a: None for a in GLOBAL}}
    rows = db.execute("select a, private.ip_address_kind(a::inet) as kind from unnest(%s::text[]) as a",
                      (list(expected),))
    wrong = {r["a"]: (r["kind"], expected[r["a"]]) for r in rows if r["kind"] != expected[r["a"]]}
    assert wrong == {}, "address: (got, expected)"


# -- delivery: the worker's code path, with a resolver answering each address ------------------------------


class Listener:
    """Plain TCP listeners on 127.0.0.1 and ::1 (one port) that record every connection they accept."""

    def __init__(self) -> None:
        self.accepted: list[Any] = []
        self.sockets = [socket.create_server(("127.0.0.1", 0))]
        self.port = self.sockets[0].getsockname()[1]
        with contextlib.suppress(OSError):  # no IPv6 loopback here
            self.sockets.append(socket.create_server(("::1", self.port), family=socket.AF_INET6))
        self.closed = False
        for sock in self.sockets:
            sock.settimeout(0.2)
            threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    def _accept(self, sock: socket.socket) -> None:
        while not self.closed:
            try:
                client, peer = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(peer)
            client.close()

    def close(self) -> None:
        self.closed = True
        for sock in self.sockets:
            sock.close()


@pytest.fixture
def endpoint_jobs(make_org: Any, conn: Any) -> Iterator[list[Any]]:
    """Endpoint ids whose queued jobs (per endpoint or per delivery) are removed after the test: no worker runs
    here, so later tests' workers would otherwise find them."""
    ids: list[Any] = []
    yield ids
    conn.execute("delete from procrastinate.procrastinate_jobs where status = 'todo' and queueing_lock in ("
                 "select 'webhook-endpoint:' || e from unnest(%s::uuid[]) as e union all "
                 "select 'webhook:' || d.id from public.webhook_deliveries as d where d.endpoint_id = any(%s::uuid[]))",
                 (ids, ids))


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    try:
        yield server
    finally:
        server.close()


def _resolver(answers: dict[str, list[str]]) -> Any:
    async def resolve(host: str, port: int) -> list[str]:
        if host not in answers:
            raise OSError(f"Name or service not known: {host}")
        return answers[host]
    return resolve


async def _deliver_all(org: Any, database_url: str, endpoints: dict[str, Any], resolver: Any,
                       jobs: list[Any]) -> dict[str, Any]:
    """Make the deliveries of one event to every endpoint, in process; label -> (status, error, attempt outcome)."""
    org.fail_sync()
    results = {}
    jobs.extend(e["id"] for e in endpoints.values())
    for label, endpoint in endpoints.items():
        delivery = org.deliveries(endpoint["id"])[0]
        with contextlib.suppress(RetryLater):
            await deliver(str(delivery["id"]), settings=Settings(SUPABASE_DB_URL=database_url), resolver=resolver)
        row = org.deliveries(endpoint["id"])[0]
        results[label] = (row["status"], row["last_error"], [a["outcome"] for a in org.attempts(row["id"])])
    return results


DELIVERY_CORPUS = {a: k for a, k in {**REFUSED_IPV4, **REFUSED_IPV6, **EMBEDDED}.items()
                   if a in EMBEDDED or a in ("127.0.0.1", "127.255.255.255", "0.0.0.0",  # noqa: S104
                                             "10.0.0.1", "169.254.169.254",
                                             "100.100.100.200", "100.64.0.0", "192.168.0.0", "172.16.0.0",
                                             "192.0.0.0", "198.18.0.0", "224.0.0.0", "255.255.255.255", "::", "::1",
                                             "fe80::", "fc00::", "fd00:ec2::254", "ff02::1", "100::", "2001:db8::",
                                             "3fff::", "5f00::", "2001:2::1", "2001::", "2002::", "fec0::1")}


async def test_delivery_refuses_a_name_that_resolves_to_any_non_global_address(
        make_org: Any, settings: Any, listener: Listener, database_url: str, endpoint_jobs: list[Any]) -> None:
    settings(allow_loopback_http="false", allowed_private_hosts="", timeout_seconds="1")
    org = make_org()
    names = {a: f"h{i}-{uuid.uuid4().hex[:6]}.hooks.example.com" for i, a in enumerate(DELIVERY_CORPUS)}
    endpoints = {a: org.create_endpoint(url_for(name, listener.port), ["sync.failed"]) for a, name in names.items()}
    results = await _deliver_all(org, database_url, endpoints, _resolver({n: [a] for a, n in names.items()}),
                                 endpoint_jobs)
    wrong = {a: r for a, r in results.items()
             if not (r[0] == "failed" and r[2] == ["refused"]
                     and f"resolves to {ipaddress.ip_address(a)}," in (r[1] or ""))}
    assert wrong == {}
    assert listener.accepted == []


async def test_delivery_refuses_embedded_and_reserved_answers_even_in_development_for_listed_hosts(
        make_org: Any, settings: Any, listener: Listener, database_url: str, endpoint_jobs: list[Any]) -> None:
    corpus = [a for a, kind in DELIVERY_CORPUS.items() if kind not in ("loopback", "private")]
    names = {a: f"l{i}-{uuid.uuid4().hex[:6]}.hooks.example.com" for i, a in enumerate(corpus)}
    control = f"control-{uuid.uuid4().hex[:6]}.hooks.example.com"
    settings(allow_loopback_http="true", allowed_private_hosts=",".join([*names.values(), control]),
             timeout_seconds="1")
    org = make_org()
    endpoints = {a: org.create_endpoint(url_for(name, listener.port), ["sync.failed"]) for a, name in names.items()}
    # The control: plain loopback is allowed in development, so it does reach the listener (TLS then fails).
    endpoints["control"] = org.create_endpoint(url_for(control, listener.port), ["sync.failed"])
    answers = {n: [a] for a, n in names.items()} | {control: ["127.0.0.1"]}
    results = await _deliver_all(org, database_url, endpoints, _resolver(answers), endpoint_jobs)
    assert results.pop("control")[2] == ["retry"] and len(listener.accepted) == 1
    wrong = {a: r for a, r in results.items() if not (r[0] == "failed" and r[2] == ["refused"])}
    assert wrong == {}
    assert len(listener.accepted) == 1


async def test_delivery_refuses_literal_urls_saved_before_the_rule(make_org: Any, settings: Any, listener: Listener,
                                                                  database_url: str, conn: Any,
                                                                  endpoint_jobs: list[Any]) -> None:
    settings(allow_loopback_http="false", allowed_private_hosts="", timeout_seconds="1")
    org = make_org()
    hosts = [*DELIVERY_CORPUS, "0177.0.0.1", "2130706433", "0x7f.1", "127.1", "0x7f000001", "%31%32%37.0.0.1"]
    endpoints = {}
    for i, host in enumerate(hosts):
        endpoint = org.create_endpoint(f"https://legacy-{i}.hooks.example.com/", ["sync.failed"])
        # As if saved before this rule existed: written directly, past the RPC's check.
        conn.execute("update public.webhook_endpoints set url = %s where id = %s",
                     (url_for(host, listener.port), endpoint["id"]))
        endpoints[host] = endpoint
    results = await _deliver_all(org, database_url, endpoints, _resolver({}), endpoint_jobs)
    wrong = {h: r for h, r in results.items() if not (r[0] == "failed" and r[2] == ["refused"])}
    assert wrong == {}
    assert listener.accepted == []


async def test_save_and_delivery_decide_alike(db: TestDB, database_url: str) -> None:
    """The same verdict for every address of the corpus: saved as a literal URL, and answered by DNS at delivery."""
    world = build_world(db)
    _settings(db)
    addresses = [*REFUSED, *GLOBAL]
    saved = _save_outcomes(db, world, [url_for(a) for a in addresses], "create")
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as aconn:
        disagree = {}
        for address in addresses:
            try:
                await resolve_destination("https://hooks.example.com/x", WebhookConfig(), aconn,
                                          _resolver({"hooks.example.com": [address]}))
                delivered = "accepted"
            except DestinationRefused:
                delivered = "refused"
            at_save = "accepted" if saved[url_for(address)][0] is None else "refused"
            if at_save != delivered:
                disagree[address] = (at_save, delivered)
    assert disagree == {}, "address: (at save, at delivery)"
