"""`python -m handlers [--host H] [--port P]`: serve the handlers with uvicorn, after checking the settings.

A configuration that would let anyone sign accepted tokens (a well-known JWT secret outside embedded mode, or an
exposed listener in embedded mode; see `Settings.check_edge_security`) stops here with one line on stderr and
exit status 2, before anything listens. `uvicorn handlers.app:app` refuses the same configuration at startup.
"""

from __future__ import annotations

import argparse
import sys

from arti.errors import ArtiError
from handlers.settings import HandlerSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m handlers", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    parser.add_argument("--proxy-headers", action="store_true",
                        help="trust X-Forwarded-* from --forwarded-allow-ips (behind Caddy in docker mode)")
    parser.add_argument("--forwarded-allow-ips", default="127.0.0.1")
    args = parser.parse_args(argv)
    try:
        settings = HandlerSettings()
        settings.check_edge_security()
    except ArtiError as exc:
        print(f"handlers: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # pydantic's ValidationError: one line per bad setting
        print(f"handlers: invalid settings: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2

    import uvicorn

    from handlers.app import create_app

    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level=args.log_level,
                server_header=False, proxy_headers=args.proxy_headers,
                forwarded_allow_ips=args.forwarded_allow_ips)
    return 0


if __name__ == "__main__":
    sys.exit(main())
