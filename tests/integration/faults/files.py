"""Files on a `Stack`: an upload through the API, and its bytes lost behind the hub's back."""

from __future__ import annotations

import uuid

import aiohttp

from tests.integration.faults.stack import Stack


async def upload_file(base_url: str, headers: dict[str, str], data: bytes, filename: str) -> str:
    """A completed upload of `data` (one chunk); returns its file id."""
    import hashlib

    async with aiohttp.ClientSession(base_url, headers=headers) as session:
        async with session.post("/v1/files/initiate", json={"filename": filename, "file_size": len(data)}) as response:
            assert response.status == 201, await response.text()
            file_id = (await response.json())["file_id"]
        async with session.patch(
            "/v1/files/upload",
            params={"file_id": file_id, "chunk_id": "0"},
            data=data,
            headers={"Content-Type": "application/octet-stream"},
        ) as response:
            assert response.status == 200, await response.text()
        async with session.post(
            "/v1/files/complete", json={"file_id": file_id, "checksum": hashlib.sha256(data).hexdigest()}
        ) as response:
            assert response.status == 200, await response.text()
    return file_id


def delete_file_bytes(stack: Stack, file_id: str) -> None:
    """Removes a completed file's bytes from the bucket behind the hub's back."""
    import boto3

    from chat4all.adapters.storage.s3 import S3FileStorage

    client = boto3.client(
        "s3",
        endpoint_url=stack.env["CHAT4ALL_S3_ENDPOINT"],
        aws_access_key_id=stack.env["CHAT4ALL_S3_ACCESS_KEY"],
        aws_secret_access_key=stack.env["CHAT4ALL_S3_SECRET_KEY"],
        region_name="us-east-1",
    )
    bucket = stack.env["CHAT4ALL_S3_BUCKET"]
    key = S3FileStorage(client, bucket).file_key(uuid.UUID(file_id))
    client.head_object(Bucket=bucket, Key=key)
    client.delete_object(Bucket=bucket, Key=key)
