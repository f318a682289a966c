"""The README's commands from a fresh clone on a machine where uv is not on PATH.

`scripts/bootstrap.sh` installs uv into the cache when it finds none; every script must find uv
that way, not only on PATH. The clone gets a cache directory of its own without uv in it, so
the run has to install uv itself; the built servers (Kafka jars, S3 binary) are linked in from
the shared cache, and `services.sh up` finds the servers of this test run already up (it is
idempotent), so the test costs a uv install and an environment sync, not a server build.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.services

REPO = Path(__file__).resolve().parents[2]
SHARED_CACHE = Path(os.environ.get("CHAT4ALL_CACHE_DIR", Path.home() / ".cache" / "chat4all"))
BUILT_SERVERS = ("kafka", "m2", "bin")  # what services.sh caches; tools/ (uv) is left out on purpose


def path_without_uv() -> str:
    kept = [entry for entry in os.environ.get("PATH", "").split(os.pathsep) if entry and not _has_uv(entry)]
    path = os.pathsep.join(kept)
    assert shutil.which("uv", path=path) is None
    assert shutil.which("python3", path=path), f"no python3 left on {path}"
    return path


def _has_uv(directory: str) -> bool:
    candidate = Path(directory) / "uv"
    return candidate.is_file() and os.access(candidate, os.X_OK)


def fresh_clone(target: Path) -> Path:
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(REPO), str(target)], check=True)
    subprocess.run(["git", "-C", str(target), "checkout", "--quiet", head.stdout.strip()], check=True)
    return target


def cache_without_uv(target: Path) -> Path:
    target.mkdir()
    for name in BUILT_SERVERS:
        if (SHARED_CACHE / name).exists():
            (target / name).symlink_to(SHARED_CACHE / name)
    return target


def run(clone: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), cwd=clone, env=env, capture_output=True, text=True, timeout=900)


def test_services_up_and_the_cli_work_from_a_fresh_clone_without_uv_on_path(tmp_path):
    clone = fresh_clone(tmp_path / "chat4all")
    cache = cache_without_uv(tmp_path / "cache")
    env = {key: value for key, value in os.environ.items() if key not in ("UV", "VIRTUAL_ENV")}
    env |= {"PATH": path_without_uv(), "CHAT4ALL_CACHE_DIR": str(cache)}

    up = run(clone, env, "bash", "scripts/services.sh", "up")
    assert up.returncode == 0, f"services.sh up failed:\n{up.stdout}\n{up.stderr}"
    assert "installing uv" in up.stderr, up.stderr
    assert os.access(cache / "tools" / "bin" / "uv", os.X_OK), "uv was not installed into the cache"
    assert "ready: postgres kafka s3" in up.stderr, up.stderr

    cli = run(clone, env, "scripts/chat4all", "--help")
    assert cli.returncode == 0, f"scripts/chat4all --help failed:\n{cli.stdout}\n{cli.stderr}"
    for command in ("serve", "worker", "migrate"):
        assert command in cli.stdout, cli.stdout
