"""A small HTTP/1.1 load generator: `python -m bench.loadgen --url URL --requests N --concurrency C`.

C keep-alive connections on asyncio streams each send GET requests one after another until N have
been answered in total; prints one JSON line: {"seconds", "requests", "errors", "statuses", "latencies_ms"}.
Hand-rolled (request line + headers, reads the status line, headers and a Content-Length body) rather
than httpx, whose per-request cost would make the client, not the server, the bottleneck on a small
machine; it runs in its own process so the servers being measured keep their core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from urllib.parse import urlsplit


async def _connection(host: str, port: int, request: bytes, todo: list[int], latencies: list[float],
                      statuses: dict[str, int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while todo[0] > 0:
            todo[0] -= 1
            t0 = time.perf_counter()
            writer.write(request)
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            if length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - t0)
            status = status_line.split(b" ", 2)[1].decode() if status_line else "closed"
            statuses[status] = statuses.get(status, 0) + 1
            if not status_line:
                break
    finally:
        writer.close()


async def run(url: str, requests: int, concurrency: int) -> dict[str, object]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: application/json\r\n\r\n".encode()
    todo = [requests]
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    t0 = time.perf_counter()
    await asyncio.gather(*(_connection(host, port, request, todo, latencies, statuses)
                           for _ in range(min(concurrency, requests))))
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "requests": len(latencies), "errors": len(latencies) - statuses.get("200", 0),
            "statuses": statuses, "latencies_ms": [round(x * 1000, 4) for x in latencies]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(run(args.url, args.requests, args.concurrency))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
