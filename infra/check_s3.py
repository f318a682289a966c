"""Feature check of the S3 server started by scripts/services.sh.

Runs each S3 operation the project relies on against the real server and
prints one line per check (PASS/FAIL). Exits non-zero if any check fails.

    eval "$(scripts/services.sh env)"
    uv run python infra/check_s3.py

Reads CHAT4ALL_TEST_S3_ENDPOINT, CHAT4ALL_TEST_S3_ACCESS_KEY,
CHAT4ALL_TEST_S3_SECRET_KEY and CHAT4ALL_TEST_S3_BUCKET. Everything it writes
goes under a random key prefix and is deleted at the end.
"""

from __future__ import annotations

import base64
import hashlib
import os
import sys
import traceback
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable

import boto3
from botocore.client import Config
from botocore.exceptions import ClientError

ENDPOINT = os.environ.get("CHAT4ALL_TEST_S3_ENDPOINT", "http://127.0.0.1:17070")
ACCESS = os.environ.get("CHAT4ALL_TEST_S3_ACCESS_KEY", "chat4all")
SECRET = os.environ.get("CHAT4ALL_TEST_S3_SECRET_KEY", "chat4all-secret")
BUCKET = os.environ.get("CHAT4ALL_TEST_S3_BUCKET", "chat4all-test")
PREFIX = f"check-s3/{uuid.uuid4().hex}/"

MIB = 1024 * 1024


def client():
    return boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        aws_access_key_id=ACCESS,
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


def sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None):
    """Plain HTTP request (no S3 client): returns (status, headers, body)."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()
    except (urllib.error.URLError, ConnectionError) as err:
        # A server may answer an error and close before the whole body is sent.
        reason = getattr(err, "reason", err)
        if isinstance(reason, ConnectionResetError):
            return 599, {}, b"connection reset by server"
        raise


def expect_client_error(fn: Callable[[], object]) -> str:
    try:
        fn()
    except ClientError as err:
        return err.response["Error"]["Code"]
    raise AssertionError("request was accepted, expected a rejection")


s3 = client()
results: list[tuple[str, bool, str]] = []


def check(name: str):
    def wrap(fn: Callable[[], str | None]):
        try:
            detail = fn() or ""
            results.append((name, True, detail))
        except Exception as exc:  # noqa: BLE001 - report every failure, keep going
            detail = f"{type(exc).__name__}: {exc}"
            if os.environ.get("CHECK_S3_TRACE"):
                traceback.print_exc()
            results.append((name, False, detail))
        return fn

    return wrap


@check("bucket exists / list_buckets")
def _():
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert BUCKET in names, names
    return ", ".join(names)


@check("put/get/head/delete object")
def _():
    key = PREFIX + "plain.txt"
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"hello", ContentType="text/plain")
    got = s3.get_object(Bucket=BUCKET, Key=key)
    assert got["Body"].read() == b"hello"
    head = s3.head_object(Bucket=BUCKET, Key=key)
    assert head["ContentLength"] == 5 and head["ContentType"] == "text/plain", head
    s3.delete_object(Bucket=BUCKET, Key=key)
    code = expect_client_error(lambda: s3.head_object(Bucket=BUCKET, Key=key))
    return f"head after delete -> {code}"


@check("put_object with x-amz-checksum-sha256 (correct value accepted, stored)")
def _():
    key = PREFIX + "sum.bin"
    data = os.urandom(1000)
    resp = s3.put_object(Bucket=BUCKET, Key=key, Body=data, ChecksumSHA256=sha256_b64(data))
    assert resp.get("ChecksumSHA256") == sha256_b64(data), resp
    head = s3.head_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
    assert head.get("ChecksumSHA256") == sha256_b64(data), head
    return "head_object(ChecksumMode=ENABLED) returns it"


@check("put_object with wrong x-amz-checksum-sha256 is rejected")
def _():
    key = PREFIX + "badsum.bin"
    data = os.urandom(1000)
    code = expect_client_error(
        lambda: s3.put_object(Bucket=BUCKET, Key=key, Body=data, ChecksumSHA256=sha256_b64(b"other"))
    )
    return code


def multipart(checksum: bool):
    key = PREFIX + ("mp-sum.bin" if checksum else "mp.bin")
    extra = {"ChecksumAlgorithm": "SHA256"} if checksum else {}
    up = s3.create_multipart_upload(Bucket=BUCKET, Key=key, **extra)
    uid = up["UploadId"]
    parts_data = [os.urandom(5 * MIB), os.urandom(5 * MIB), b"tail"]
    parts = []
    for n, data in enumerate(parts_data, start=1):
        kw = {"ChecksumSHA256": sha256_b64(data)} if checksum else {}
        r = s3.upload_part(Bucket=BUCKET, Key=key, UploadId=uid, PartNumber=n, Body=data, **kw)
        part = {"PartNumber": n, "ETag": r["ETag"]}
        if checksum:
            assert r.get("ChecksumSHA256") == sha256_b64(data), r
            part["ChecksumSHA256"] = r["ChecksumSHA256"]
        parts.append(part)
    listed = s3.list_parts(Bucket=BUCKET, Key=key, UploadId=uid)
    assert [p["PartNumber"] for p in listed["Parts"]] == [1, 2, 3], listed
    assert [p["Size"] for p in listed["Parts"]] == [len(d) for d in parts_data]
    if checksum:
        assert [p.get("ChecksumSHA256") for p in listed["Parts"]] == [
            sha256_b64(d) for d in parts_data
        ], listed["Parts"]
    uploads = s3.list_multipart_uploads(Bucket=BUCKET, Prefix=PREFIX)
    assert uid in [u["UploadId"] for u in uploads.get("Uploads", [])]
    s3.complete_multipart_upload(
        Bucket=BUCKET, Key=key, UploadId=uid, MultipartUpload={"Parts": parts}
    )
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert body == b"".join(parts_data)
    detail = "3 parts, list_parts sizes ok"
    if checksum:
        head = s3.head_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
        detail += f"; final object checksum: {head.get('ChecksumSHA256')!r}"
    return detail


@check("multipart: create/upload_part/list_parts/list_uploads/complete")
def _():
    return multipart(checksum=False)


@check("multipart with ChecksumAlgorithm=SHA256 + per-part x-amz-checksum-sha256")
def _():
    return multipart(checksum=True)


@check("multipart: upload_part with wrong x-amz-checksum-sha256 is rejected")
def _():
    key = PREFIX + "mp-badsum.bin"
    uid = s3.create_multipart_upload(Bucket=BUCKET, Key=key, ChecksumAlgorithm="SHA256")["UploadId"]
    try:
        data = os.urandom(1024)
        return expect_client_error(
            lambda: s3.upload_part(
                Bucket=BUCKET, Key=key, UploadId=uid, PartNumber=1, Body=data,
                ChecksumSHA256=sha256_b64(b"x"),
            )
        )
    finally:
        s3.abort_multipart_upload(Bucket=BUCKET, Key=key, UploadId=uid)


@check("multipart: abort, then list_parts fails with NoSuchUpload")
def _():
    key = PREFIX + "mp-abort.bin"
    uid = s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    s3.upload_part(Bucket=BUCKET, Key=key, UploadId=uid, PartNumber=1, Body=b"abc")
    s3.abort_multipart_upload(Bucket=BUCKET, Key=key, UploadId=uid)
    return expect_client_error(lambda: s3.list_parts(Bucket=BUCKET, Key=key, UploadId=uid))


@check("multipart: complete with a too-small non-last part is rejected")
def _():
    key = PREFIX + "mp-small.bin"
    uid = s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    try:
        e1 = s3.upload_part(Bucket=BUCKET, Key=key, UploadId=uid, PartNumber=1, Body=b"a")["ETag"]
        e2 = s3.upload_part(Bucket=BUCKET, Key=key, UploadId=uid, PartNumber=2, Body=b"b")["ETag"]
        return expect_client_error(
            lambda: s3.complete_multipart_upload(
                Bucket=BUCKET, Key=key, UploadId=uid,
                MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]},
            )
        )
    finally:
        try:
            s3.abort_multipart_upload(Bucket=BUCKET, Key=key, UploadId=uid)
        except ClientError:
            pass


def presigned_part(checksum: bool):
    key = PREFIX + ("presigned-sum.bin" if checksum else "presigned.bin")
    extra = {"ChecksumAlgorithm": "SHA256"} if checksum else {}
    uid = s3.create_multipart_upload(Bucket=BUCKET, Key=key, **extra)["UploadId"]
    data = os.urandom(5 * MIB)
    params = {"Bucket": BUCKET, "Key": key, "UploadId": uid, "PartNumber": 1}
    headers = {}
    if checksum:
        params["ChecksumSHA256"] = sha256_b64(data)
        headers["x-amz-checksum-sha256"] = sha256_b64(data)
    url = s3.generate_presigned_url("upload_part", Params=params, ExpiresIn=600)
    notes = []
    if checksum:
        # Tampered body with the signed checksum must be rejected.
        bad = bytearray(data)
        bad[0] ^= 1
        status, _, body = http("PUT", url, bytes(bad), headers)
        assert status >= 400, f"tampered body accepted: {status}"
        notes.append(f"tampered body -> HTTP {status}")
        # The checksum header is signed: leaving it out breaks the signature.
        status, _, body = http("PUT", url, data, {})
        assert status >= 400, f"request without the signed checksum header accepted: {status}"
        if status == 599:
            status = "connection reset"
        notes.append(f"signed header omitted -> HTTP {status}")
    status, resp_headers, body = http("PUT", url, data, headers)
    assert status == 200, (status, body[:300])
    etag = resp_headers.get("ETag") or resp_headers.get("Etag")
    assert etag, resp_headers
    part = {"PartNumber": 1, "ETag": etag}
    if checksum:
        part["ChecksumSHA256"] = sha256_b64(data)
    listed = s3.list_parts(Bucket=BUCKET, Key=key, UploadId=uid)["Parts"]
    assert listed[0]["Size"] == len(data), listed
    s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=uid, MultipartUpload={"Parts": [part]})
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == data
    notes.insert(0, "plain HTTP PUT ok, completed")
    query = dict(kv.split("=", 1) for kv in url.split("?", 1)[1].split("&"))
    notes.append(f"X-Amz-SignedHeaders={urllib.parse.unquote(query['X-Amz-SignedHeaders'])}")
    return "; ".join(notes)


@check("presigned upload_part URL, PUT by plain HTTP client")
def _():
    return presigned_part(checksum=False)


@check("presigned upload_part URL with signed x-amz-checksum-sha256 header")
def _():
    return presigned_part(checksum=True)


@check("presigned upload_part URL without checksum: extra x-amz-checksum-sha256 header refused")
def _():
    # Like AWS, the server refuses x-amz-* headers that the presigned URL did not
    # sign: a checksum header must be signed into the URL (ChecksumSHA256 param).
    key = PREFIX + "presigned-unsigned-sum.bin"
    uid = s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    try:
        url = s3.generate_presigned_url(
            "upload_part",
            Params={"Bucket": BUCKET, "Key": key, "UploadId": uid, "PartNumber": 1},
            ExpiresIn=600,
        )
        data = os.urandom(1024)
        status, _, body = http("PUT", url, data, {"x-amz-checksum-sha256": sha256_b64(data)})
        assert status == 403 and b"HeadersNotSigned" in body, (status, body[:400])
        return f"HTTP {status} AccessDenied (HeadersNotSigned)"
    finally:
        s3.abort_multipart_upload(Bucket=BUCKET, Key=key, UploadId=uid)


@check("presigned GET (and tampered signature rejected)")
def _():
    key = PREFIX + "get.txt"
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"presigned-get")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=300)
    status, _, body = http("GET", url)
    assert status == 200 and body == b"presigned-get", (status, body[:200])
    bad_url = url.replace("X-Amz-Signature=", "X-Amz-Signature=0")
    bad_status, _, _ = http("GET", bad_url)
    assert bad_status == 403, bad_status
    return f"tampered signature -> HTTP {bad_status}"


@check("unsigned request is rejected")
def _():
    status, _, _ = http("GET", f"{ENDPOINT}/{BUCKET}?list-type=2")
    assert status == 403, status
    return f"HTTP {status}"


def cleanup():
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=BUCKET, Prefix=PREFIX):
        for obj in page.get("Contents", []):
            s3.delete_object(Bucket=BUCKET, Key=obj["Key"])
    for up in s3.list_multipart_uploads(Bucket=BUCKET, Prefix=PREFIX).get("Uploads", []):
        s3.abort_multipart_upload(Bucket=BUCKET, Key=up["Key"], UploadId=up["UploadId"])


def main() -> int:
    try:
        cleanup()
    except Exception as exc:  # noqa: BLE001
        print(f"WARN cleanup failed: {exc}")
    failed = 0
    for name, ok, detail in results:
        failed += not ok
        print(f"{'PASS' if ok else 'FAIL'}  {name}" + (f"  [{detail}]" if detail else ""))
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
