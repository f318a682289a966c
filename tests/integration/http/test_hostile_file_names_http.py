"""Files under hostile input, on both profiles: file names never reach storage, downloads name the file
alike however served, content types are echoed never served, links are short-lived and scoped."""

from __future__ import annotations

import hashlib
import re
import uuid
from urllib.parse import parse_qs, unquote, urlparse

import httpx

from tests.integration.http.helpers import upload_file
from tests.integration.http.hostile import BINARY, refused

ODD_NAME = "Relatório — ünïcødé 📎 ; rm -rf ~ $(x) 'q' \"q\" <b>.pdf"


async def stored_names(deployment) -> list[str]:
    """Every object key (distributed) or path below the data directory (embedded)."""
    settings = deployment.hub.settings
    if deployment.profile == "embedded":
        root = settings.data_dir / "files"
        return [str(path.relative_to(root)) for path in root.rglob("*")]
    import boto3

    s3 = boto3.client("s3", endpoint_url=settings.s3.endpoint_url, aws_access_key_id=settings.s3.access_key,
                      aws_secret_access_key=settings.s3.secret_key, region_name=settings.s3.region)
    listing = s3.list_objects_v2(Bucket=settings.s3.bucket)
    return [item["Key"] for item in listing.get("Contents", [])]


async def test_file_names_never_become_paths_or_keys(deployment, client):
    _, headers = await deployment.user()
    for name in ("../../x", "..\\..\\x", "/etc/passwd", "a/b", "invoice\u202egpj.exe"):
        refused(await client.post("/v1/files/initiate", json={"filename": name, "file_size": 1}, headers=headers), 400)
    data = b"odd name" * 10
    file_id = await upload_file(client, headers, data, filename=ODD_NAME)
    status = (await client.get(f"/v1/files/{file_id}", headers=headers)).json()
    assert status["filename"] == ODD_NAME and status["status"] == "completed"
    names = await stored_names(deployment)
    assert any(file_id in name for name in names)
    uuid_only = re.compile(r"^(files/)?[0-9a-f-]{36}$|^uploads/[0-9a-f-]{36}(/chunks/\d+)?$|^uploads/[0-9a-f-]{36}/\d+\.part$")
    for name in names:
        assert "ü" not in name and ".pdf" not in name and "rm -rf" not in name, name
        if file_id in name:
            assert uuid_only.match(name), name
    # the name only travels back as an attachment file name, percent-encoded
    download = status["download_url"]
    if deployment.profile == "embedded":
        response = await client.get(download, headers=headers)
        assert response.content == data
        disposition = response.headers["content-disposition"]
    else:
        disposition = parse_qs(urlparse(download).query)["response-content-disposition"][0]
    assert disposition.startswith("attachment;")
    assert unquote(disposition.split("filename*=UTF-8''", 1)[1]) == ODD_NAME
    assert "\n" not in disposition and "\r" not in disposition


async def test_a_download_names_the_file_alike_whether_streamed_or_redirected(deployment, client):
    from chat4all.domain.uploads import attachment_disposition

    _, headers = await deployment.user()
    file_id = await upload_file(client, headers, b"odd name", filename=ODD_NAME)
    response = await client.get(f"/v1/files/{file_id}/content", headers=headers)
    if response.status_code == 307:  # distributed: storage serves it, with the disposition signed into the URL
        disposition = parse_qs(urlparse(response.headers["location"]).query)["response-content-disposition"][0]
    else:
        assert response.status_code == 200 and response.content == b"odd name"
        disposition = response.headers["content-disposition"]
    assert disposition == attachment_disposition(ODD_NAME)
    assert disposition.startswith('attachment; filename="Relat_rio _ _n_c_d_ _ ; rm -rf ~ $(x) \'q\' _q_ <b>.pdf"; ')


async def test_content_types_are_only_echoed_never_served(deployment, client):
    _, headers = await deployment.user()
    started = await client.post(
        "/v1/files/initiate", json={"filename": "page.html", "file_size": 20, "content_type": "text/html; charset=utf-8"}, headers=headers
    )
    file_id = started.json()["file_id"]
    data = b"<script>x()</script>"
    await client.patch("/v1/files/upload", params={"file_id": file_id, "chunk_id": 0}, content=data, headers={**headers, **BINARY})
    await client.post("/v1/files/complete", json={"file_id": file_id, "checksum": hashlib.sha256(data).hexdigest()}, headers=headers)
    status = (await client.get(f"/v1/files/{file_id}", headers=headers)).json()
    assert status["content_type"] == "text/html; charset=utf-8"
    if deployment.profile == "embedded":
        response = await client.get(status["download_url"], headers=headers)
    else:
        assert "response-content-type" not in status["download_url"]
        async with httpx.AsyncClient() as outside:
            response = await outside.get(status["download_url"])
    assert response.status_code == 200 and response.content == data
    assert "html" not in response.headers.get("content-type", "")


async def test_links_are_short_lived_and_scoped_to_one_object(deployment, client):
    _, headers = await deployment.user()
    data = b"link test" * 5
    file_id = await upload_file(client, headers, data)
    download = (await client.get(f"/v1/files/{file_id}", headers=headers)).json()["download_url"]
    started = (await client.post("/v1/files/initiate", json={"filename": "u.bin", "file_size": 10}, headers=headers)).json()
    if deployment.profile == "embedded":
        # links point back at the API, which wants the bearer token for each of them
        refused(await client.get(download), 401)
        refused(await client.patch(started["upload_url"], content=b"x" * 10, headers=BINARY), 401)
        return
    bucket = deployment.hub.settings.s3.bucket
    for url, key in ((download, f"files/{file_id}"), (started["upload_url"], f"uploads/{started['file_id']}/chunks/")):
        parsed = urlparse(url)
        query = parse_qs(parsed.query)
        assert query["X-Amz-Expires"] == ["900"], url
        assert parsed.path.startswith(f"/{bucket}/{key}"), url
    assert parse_qs(urlparse(started["upload_url"]).query)["X-Amz-SignedHeaders"] == ["content-length;host"]
    async with httpx.AsyncClient() as outside:
        assert (await outside.get(download)).content == data
        elsewhere = download.replace(f"files/{file_id}", f"files/{uuid.uuid4()}")
        assert (await outside.get(elsewhere)).status_code == 403  # the signature covers the key
        # and the chunk URL its size: 10 bytes, no more, no less
        for wrong in (b"x" * 9, b"x" * 11):
            assert (await outside.put(started["upload_url"], content=wrong)).status_code == 403
        assert (await outside.put(started["upload_url"], content=b"x" * 10)).status_code == 200
