"""The command-line client: `chat4all login`, `send`, `upload`, `download` and the rest.

It is an HTTP client of the hub's REST API and nothing more: it imports nothing of the server (an
import contract in pyproject.toml says so), so it works against any Chat4All deployment, of either
profile, local or remote."""
