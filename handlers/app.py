"""The handlers' ASGI app: `uvicorn handlers.app:app` (Caddy forwards /functions/v1/* to it unchanged).

Routes (the app serves the /functions/v1 prefix itself, so it also works without Caddy):

    GET    /functions/v1/health                        database, migrations, worker heartbeat, queue
    GET    /functions/v1/health/live                   liveness of this process only (always 200)
    GET    /functions/v1/oauth/{provider}/start        JWT; {"authorize_url"} (302 with ?redirect=1)
    GET    /functions/v1/oauth/{provider}/callback     the provider's redirect; parks the result, 302 to the frontend
    POST   /functions/v1/oauth/{provider}/complete     JWT of the flow's starter; {"completion"} -> connected
    POST   /functions/v1/oauth/{provider}/disconnect   JWT; {"account_id"}
    GET    /functions/v1/admin/users                   platform admins; list
    POST   /functions/v1/admin/users                   platform admins; create or invite
    GET    /functions/v1/admin/users/{user_id}         platform admins
    PATCH  /functions/v1/admin/users/{user_id}         platform admins; platform_admin, ban_duration, full_name
    DELETE /functions/v1/admin/users/{user_id}         platform admins
    POST   /functions/v1/insights/ask                  JWT (insights.ask); {"org_id", "question", "artist_id"?}

`create_app(settings, http=..., db_pool=...)` builds an app; injected clients and pools belong to the
caller (tests inject respx-backed clients and may share a pool), the others are created at startup and
closed at shutdown.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from arti.http import provider_http_client
from arti.jwt_auth import JWTVerifier, jwks_url_for
from handlers import admin_users, health, insights, oauth
from handlers.db import make_pool
from handlers.errors import Handler, endpoint, http_exception_handler, unhandled_exception_handler
from handlers.redirects import RedirectAllowList
from handlers.services import Services
from handlers.settings import HandlerSettings

log = logging.getLogger("handlers")

PREFIX = "/functions/v1"


def _by_method(handlers: dict[str, Handler]) -> Handler:
    """One endpoint for all of a path's methods (HEAD is answered by GET, as Starlette adds it to GET routes)."""

    async def dispatch(request: Request) -> Response:
        return await (handlers.get(request.method) or handlers["GET"])(request)

    return dispatch


def routes() -> list[Route]:
    """Every route, each handler wrapped so errors are JSON.

    One Route per path, dispatching by method: a wrong method is then answered 405 with every method of the
    path in Allow (one Route per method made Starlette answer with the first route's methods only).
    """
    table = [
        ("/health", health.health, ["GET"]),
        ("/health/live", health.live, ["GET"]),
        ("/oauth/{provider}/start", oauth.oauth_start, ["GET"]),
        ("/oauth/{provider}/callback", oauth.oauth_callback, ["GET"]),
        ("/oauth/{provider}/complete", oauth.oauth_complete, ["POST"]),
        ("/oauth/{provider}/disconnect", oauth.oauth_disconnect, ["POST"]),
        ("/insights/ask", insights.ask, ["POST"]),
        ("/admin/users", admin_users.list_users, ["GET"]),
        ("/admin/users", admin_users.create_user, ["POST"]),
        ("/admin/users/{user_id}", admin_users.get_user, ["GET"]),
        ("/admin/users/{user_id}", admin_users.update_user, ["PATCH"]),
        ("/admin/users/{user_id}", admin_users.delete_user, ["DELETE"]),
    ]
    by_path: dict[str, dict[str, Handler]] = {}
    for path, func, methods in table:
        for method in methods:
            by_path.setdefault(path, {})[method] = endpoint(func)
    return [Route(PREFIX + path, _by_method(handlers), methods=list(handlers), name=PREFIX + path)
            for path, handlers in by_path.items()]


def create_app(settings: HandlerSettings | None = None, *, http: httpx.AsyncClient | None = None,
               db_pool: AsyncConnectionPool[Any] | None = None) -> Starlette:
    """The handlers' app.

    Args:
        settings: defaults to `HandlerSettings()` (environment and `.env`).
        http: client for every outbound call (providers, Supabase Auth, JWKS); by default one for the
            providers (through ARTI_PROVIDER_GATEWAY when set) and one for Supabase Auth.
        db_pool: a pool to use instead of one opened from `settings.database_url()` at startup.
    """
    cfg = settings if settings is not None else HandlerSettings()
    redirects = RedirectAllowList(cfg.frontend_urls)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Fails closed before serving anything: no well-known JWT secret outside embedded mode, none when the
        # API is exposed beyond loopback (`python -m handlers` reports this as one line before uvicorn starts).
        cfg.check_edge_security()
        async with AsyncExitStack() as stack:
            pool = db_pool
            if pool is None:
                pool = make_pool(cfg.database_url(), max_size=cfg.db_pool_max, timeout=cfg.db_timeout)
                # Not waiting: the app starts (and /health answers 503) even while the database is down.
                await pool.open(wait=False)
                stack.push_async_callback(pool.close)
            provider_http = http
            auth_http = http
            if provider_http is None:
                provider_http = provider_http_client(getattr(cfg, "provider_gateway", None))
                stack.push_async_callback(provider_http.aclose)
            if auth_http is None:
                auth_http = httpx.AsyncClient(timeout=httpx.Timeout(15.0), follow_redirects=False)
                stack.push_async_callback(auth_http.aclose)
            verifier = JWTVerifier(
                cfg.verification_secret(),
                jwks_url_for(cfg.supabase_url) if cfg.supabase_url else None,
                auth_http,
                roles=("authenticated",),
            )
            app.state.services = Services(settings=cfg, pool=pool, provider_http=provider_http,
                                          auth_http=auth_http, verifier=verifier, redirects=redirects)
            log.info("handlers ready (frontends: %s; auth admin: %s)", ", ".join(cfg.frontend_urls),
                     "on" if cfg.auth_admin_available else "off (embedded)")
            yield

    app = Starlette(
        routes=routes(),
        lifespan=lifespan,
        exception_handlers={HTTPException: http_exception_handler, Exception: unhandled_exception_handler},
    )
    # No redirect to the path with(out) a trailing slash: Starlette builds its Location from the Host header,
    # which the client chooses (and Caddy forwards). Such a path is a JSON 404 like any unknown path.
    app.router.redirect_slashes = False
    return app


app = create_app()
"""The app uvicorn serves: `uvicorn handlers.app:app`."""
