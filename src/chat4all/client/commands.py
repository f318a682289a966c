"""The client's subcommands of `chat4all`, beside the server's.

Each is one entry of COMMANDS: its help, its arguments and the function that runs it (imported only
when that command runs, so the server's commands do not load the HTTP client). The function is
given the parsed arguments, the `Output` to print with and the client's `Directories`."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

from chat4all.client.paths import Directories

DEFAULT_PARALLEL = 4
MAX_PARALLEL = 16


@dataclass(frozen=True)
class Command:
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    runs: str  # "module:function" in chat4all.client
    resumable: bool = False
    until_interrupted: bool = False  # runs until Ctrl-C, which is then a normal end (status 0)


def _login(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", required=True, help="the hub's address, e.g. http://127.0.0.1:8000")
    parser.add_argument("username")
    parser.add_argument("--password-stdin", action="store_true", help="read the password from stdin (for scripts)")


def _conversations(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=int, default=50, help="how many (1-100, default 50)")
    parser.add_argument("--offset", type=int, default=0, help="how many to skip (the newest first)")


def _channels(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--channel",
        dest="channels",
        action="append",
        metavar="CHANNEL",
        help="deliver on this channel (whatsapp, instagram, ...; repeat for several); default: all",
    )


def _send(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("conversation", metavar="CONVERSATION", help="a conversation id, or a username (private)")
    parser.add_argument("text", metavar="TEXT")
    _channels(parser)


def _parallel(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_PARALLEL:
        raise argparse.ArgumentTypeError(f"between 1 and {MAX_PARALLEL}")
    return value


def _upload(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE")
    parser.add_argument("--to", metavar="CONVERSATION", help="then send it there (a conversation id or a username)")
    parser.add_argument("--parallel", type=_parallel, default=DEFAULT_PARALLEL, help="chunks in flight (default 4)")
    parser.add_argument("--restart", action="store_true", help="start afresh instead of resuming an earlier attempt")
    _channels(parser)


def _download(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file_id", metavar="FILE_ID")
    parser.add_argument("-o", "--output", metavar="PATH", help="where to write it (default: its name, here)")
    parser.add_argument("--force", action="store_true", help="replace PATH if it exists")


def _watch(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "conversation", metavar="CONVERSATION", nargs="?", help="only this one: a conversation id, or a username (private)"
    )


COMMANDS = {
    "login": Command("log in to a hub and save the token", _login, "account:login"),
    "logout": Command("revoke the saved token and forget it", lambda parser: None, "account:logout"),
    "conversations": Command("list your conversations, newest activity first", _conversations, "chat:conversations"),
    "send": Command("send a text message", _send, "chat:send"),
    "upload": Command("upload a file (resumes an interrupted upload of it)", _upload, "upload:upload", True),
    "download": Command("download a file and verify its SHA-256 (resumes)", _download, "download:download", True),
    "watch": Command("print live events as they come, until Ctrl-C", _watch, "watch:watch", until_interrupted=True),
}


def add_client_commands(commands: argparse._SubParsersAction) -> None:
    """Adds the client's subcommands to the `chat4all` parser's `commands`."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print one JSON object per result, and no progress")
    for name, command in COMMANDS.items():
        parser = commands.add_parser(name, help=f"client: {command.help}", parents=[common])
        command.arguments(parser)
        parser.set_defaults(client_command=name)


def run_client_command(args: argparse.Namespace, directories: Directories) -> int:
    """Runs the client command `args` name; the exit status (0, or non-zero after a one-line error)."""
    from chat4all.client.errors import ClientError
    from chat4all.client.output import Output

    output = Output(as_json=args.json)
    command = COMMANDS[args.client_command]
    module, function = command.runs.split(":")
    run = getattr(importlib.import_module(f"chat4all.client.{module}"), function)
    try:
        run(args, output, directories)
    except ClientError as error:
        output.error(str(error))
        return error.exit_code
    except KeyboardInterrupt:
        if command.until_interrupted:
            return 0
        output.error("interrupted" + ("; run the same command again to resume" if command.resumable else ""))
        return 130
    except BrokenPipeError:  # stdout's reader has gone (`chat4all watch --json | head -n 3`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush does not fail
        return 0 if command.until_interrupted else 1
    return 0
