#!/usr/bin/env bash
# Sourced by the other scripts: makes sure uv is available and the project's
# virtual environment matches uv.lock exactly. Safe to run repeatedly.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHAT4ALL_CACHE_DIR="${CHAT4ALL_CACHE_DIR:-$HOME/.cache/chat4all}"
UV_VERSION="0.13.9"

find_uv() {
  if command -v uv >/dev/null 2>&1; then
    command -v uv
  elif [ -x "$CHAT4ALL_CACHE_DIR/tools/bin/uv" ]; then
    echo "$CHAT4ALL_CACHE_DIR/tools/bin/uv"
  else
    echo "installing uv $UV_VERSION into $CHAT4ALL_CACHE_DIR/tools" >&2
    python3 -m venv "$CHAT4ALL_CACHE_DIR/tools" >&2
    "$CHAT4ALL_CACHE_DIR/tools/bin/pip" install --quiet "uv==$UV_VERSION" >&2
    echo "$CHAT4ALL_CACHE_DIR/tools/bin/uv"
  fi
}

UV="$(find_uv)"
export UV
# Byte-compiled once here, so every `chat4all` process (tests start many) skips compiling.
unset PYTHONDONTWRITEBYTECODE
(cd "$ROOT" && "$UV" sync --frozen --quiet --compile-bytecode)
