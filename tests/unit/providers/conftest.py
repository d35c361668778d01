"""Fixtures for the provider client tests: a fixed clock and an httpx client whose traffic respx intercepts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import httpx
import pytest
import respx

NOW = datetime(2026, 5, 4, 12, 0, 0, tzinfo=UTC)
"""The tests' "now" (a Monday, 05:00 in California)."""


def fixed_clock() -> datetime:
    """The clock handed to every client under test."""
    return NOW


@pytest.fixture
def mock_api() -> Iterator[respx.MockRouter]:
    """A respx router; any request to a route that was not declared fails the test."""
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        yield router


@pytest.fixture
async def http(mock_api: respx.MockRouter) -> AsyncIterator[httpx.AsyncClient]:
    """The AsyncClient injected into clients (its transport is mocked by `mock_api`)."""
    async with httpx.AsyncClient() as client:
        yield client
