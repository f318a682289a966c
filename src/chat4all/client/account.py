"""`chat4all login` and `chat4all logout`."""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from urllib.parse import urlsplit

from chat4all.client.api import Hub
from chat4all.client.credentials import Credentials, forget_credentials, load_credentials, save_credentials
from chat4all.client.errors import ClientError, NotLoggedIn, SessionExpired, Unreachable
from chat4all.client.output import Output
from chat4all.client.paths import Directories


def server_url(text: str) -> str:
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ClientError(f"not a server URL: {text!r} (expected e.g. http://127.0.0.1:8000)")
    return text.strip().rstrip("/")


def read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = getpass.getpass(f"Password for {args.username}: ")
    else:
        raise ClientError("no terminal to ask the password on: pipe it in with --password-stdin")
    if not password:
        raise ClientError("the password is empty")
    return password


def login(args: argparse.Namespace, output: Output, directories: Directories) -> None:
    url = server_url(args.url)
    password = read_password(args)
    with Hub(url) as anonymous:
        issued = anonymous.call("POST", "/auth/token", json={"username": args.username, "password": password})
    token = issued["access_token"]
    with Hub(url, token) as hub:
        me = hub.call("GET", "/v1/users/me")
    credentials = Credentials(url, me["username"], me["user_id"], token, time.time() + issued["expires_in"])
    path = save_credentials(directories, credentials)
    output.result(
        {
            "url": url,
            "username": credentials.username,
            "user_id": credentials.user_id,
            "expires_in": issued["expires_in"],
        },
        f"logged in to {url} as {credentials.username} (token saved in {path})",
    )


def logout(args: argparse.Namespace, output: Output, directories: Directories) -> None:
    try:
        credentials = load_credentials(directories)
    except NotLoggedIn:
        output.result({"logged_out": False}, "not logged in")
        return
    except SessionExpired:
        forget_credentials(directories)  # nothing left to revoke on the server
        output.result({"logged_out": True}, "logged out (the session had expired)")
        return
    try:
        with Hub(credentials.url, credentials.access_token) as hub:
            hub.call("POST", "/auth/logout")
    except SessionExpired:
        pass  # revoked already
    except Unreachable as error:
        forget_credentials(directories)
        raise Unreachable(
            f"{error}; the saved token was removed, but stays valid on the server until it expires"
        ) from None
    forget_credentials(directories)
    output.result(
        {"logged_out": True, "url": credentials.url, "username": credentials.username},
        f"logged out of {credentials.url}",
    )
