"""Presigned S3 URLs against a real S3 server: chunk uploads signed for one key and size, downloads
as attachments, and both signed for the public endpoint."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit
from uuid import uuid4

import attrs
import httpx
import pytest

from chat4all.adapters.storage.s3 import S3FileStorage, S3StorageOptions
from chat4all.domain.uploads import attachment_disposition
from tests.integration.s3_chunks import MiB, put_all, read_all, sha256
from tests.integration.s3_fixtures import (  # noqa: F401 - fixtures
    multipart_uploads,
    object_bytes,
    s3_client,
    s3_prefix,
    s3_settings,
    s3_storage,
)

pytestmark = pytest.mark.services


async def test_a_chunk_put_to_a_presigned_url_is_seen_and_assembled(s3_storage: S3FileStorage) -> None:
    upload_id = uuid4()
    chunks = [os.urandom(5 * MiB), os.urandom(5 * MiB), os.urandom(777)]
    await put_all(s3_storage, upload_id, chunks, [0, 2])
    url = s3_storage.chunk_upload_url(upload_id, 1, 5 * MiB)
    assert url is not None

    async with httpx.AsyncClient(timeout=30) as http:
        for wrong_size in (b"", b"x" * 1000):  # the signed Content-Length holds
            assert (await http.put(url, content=wrong_size)).status_code == 403
        response = await http.put(url, content=chunks[1])
    assert response.status_code == 200, response.text

    assert await s3_storage.stored_chunks(upload_id) == {0: 5 * MiB, 1: 5 * MiB, 2: 777}
    whole = b"".join(chunks)
    assert await s3_storage.assemble_if_matches(upload_id, 3, sha256(whole)) == sha256(whole)
    assert await read_all(s3_storage, upload_id) == whole


async def test_a_presigned_url_refuses_a_different_key(s3_storage: S3FileStorage) -> None:
    url = s3_storage.chunk_upload_url(uuid4(), 0, 1)
    assert url is not None
    tampered = url.replace("/chunks/00000?", "/chunks/00001?")

    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.put(tampered, content=b"x")

    assert response.status_code == 403


async def test_a_presigned_download_returns_the_bytes_as_an_attachment(s3_storage: S3FileStorage) -> None:
    upload_id = uuid4()
    data = os.urandom(3 * MiB + 5)
    await s3_storage.put_chunk(upload_id, 0, data)
    assert await s3_storage.assemble_if_matches(upload_id, 1, sha256(data)) == sha256(data)
    filename = 'résumé "final" 100%.pdf'

    url = s3_storage.download_url(upload_id, filename)
    assert url is not None
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.get(url)

    assert response.status_code == 200
    assert response.content == data
    disposition = response.headers["content-disposition"]
    assert disposition == attachment_disposition(filename)
    assert disposition.startswith('attachment; filename="r_sum_ _final_ 100_.pdf"; ')
    assert disposition.endswith("filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22%20100%25.pdf")


async def test_urls_are_signed_for_the_public_endpoint(s3_client: Any, s3_settings: S3StorageOptions) -> None:
    public = attrs.evolve(s3_settings, presign_endpoint="https://files.example.test:8443")
    storage = S3FileStorage.from_options(public)
    try:
        upload_url = storage.chunk_upload_url(uuid4(), 3, 5 * MiB)
        download_url = storage.download_url(uuid4(), "a.txt")
    finally:
        await storage.close()

    for url, signed in ((upload_url, "content-length%3Bhost"), (download_url, "host")):
        assert url is not None
        assert urlsplit(url).netloc == "files.example.test:8443"
        assert "X-Amz-Expires=900" in url
        assert f"X-Amz-SignedHeaders={signed}&" in url
