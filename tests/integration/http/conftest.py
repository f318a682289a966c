from __future__ import annotations

import pytest
import pytest_asyncio

from tests.integration.http.profiles import distributed, embedded

PROFILES = ["embedded", "distributed"]


@pytest_asyncio.fixture(scope="session", params=PROFILES)
async def deployment(request, tmp_path_factory):
    """One running deployment per profile, shared by the contract tests; each test makes its own users."""
    factory = embedded if request.param == "embedded" else distributed
    async with factory(tmp_path_factory.mktemp(request.param)) as running:
        yield running


@pytest.fixture
def client(deployment):
    return deployment.client


@pytest_asyncio.fixture(scope="session", params=PROFILES)
async def live(request, tmp_path_factory):
    """Real API processes per profile for the live transports (two when distributed: A and B)."""
    from tests.integration.http.live_profiles import live_deployment

    async with live_deployment(request.param, tmp_path_factory.mktemp(f"live-{request.param}")) as running:
        yield running
