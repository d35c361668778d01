"""Edge-style HTTP handlers (ASGI, `uvicorn handlers.app:app`): OAuth connect/disconnect, admin users, health.

Imports `arti`, never `jobs`. See `handlers.app` for the routes.
"""
