"""The `handlers` benchmark's baseline: a bare Starlette app with one JSON route, the liveness route's path and body.

Served as `uvicorn bench.bare_app:app`, with the same uvicorn options as the real handlers app.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


async def live(request: Request) -> Response:
    return JSONResponse({"status": "ok", "service": "handlers"})


app = Starlette(routes=[Route("/functions/v1/health/live", live, methods=["GET"])])
