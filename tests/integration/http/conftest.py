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
