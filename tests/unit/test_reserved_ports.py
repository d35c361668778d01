"""The ports the project listens on by default are kept out of the kernel's ephemeral range."""

from __future__ import annotations

import re

from arti.settings import DEFAULT_PORTS, PROJECT_ROOT

SCRIPT = PROJECT_ROOT / "scripts" / "reserve-ports.sh"
LINUX_EPHEMERAL_RANGE = range(32768, 61000)  # net.ipv4.ip_local_port_range's default


def reserved_by_script() -> set[int]:
    match = re.search(r'^PROJECT_PORTS="([0-9,-]+)"$', SCRIPT.read_text(), re.MULTILINE)
    assert match, "scripts/reserve-ports.sh must define PROJECT_PORTS"
    ports: set[int] = set()
    for part in match.group(1).split(","):
        low, _, high = part.partition("-")
        ports.update(range(int(low), int(high or low) + 1))
    return ports


def test_exactly_the_default_ports_in_the_ephemeral_range_are_reserved() -> None:
    exposed = {port for port in DEFAULT_PORTS.values() if port in LINUX_EPHEMERAL_RANGE}
    assert DEFAULT_PORTS["tests_database"] in exposed  # the reason this guard exists
    # Missing ones can be taken by outgoing connections; extra ones are taken from every other program.
    assert reserved_by_script() == exposed
