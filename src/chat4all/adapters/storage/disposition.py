"""`Content-Disposition: attachment` for a user-chosen file name (RFC 6266, RFC 8187)."""

from __future__ import annotations

import re
from urllib.parse import quote

# RFC 8187 attr-char minus ALPHA / DIGIT, which quote() never escapes.
_ATTR_CHAR_EXTRAS = "!#$&+-.^_`|~"
# RFC 6266 appendix D: the plain fallback should be printable ASCII without '%', '\' or '"'.
_UNSAFE_FALLBACK = re.compile(r'[^\x20-\x7e]|["\\%]')


def attachment_disposition(filename: str) -> str:
    fallback = _UNSAFE_FALLBACK.sub("_", filename).strip() or "download"
    encoded = quote(filename, safe=_ATTR_CHAR_EXTRAS, encoding="utf-8", errors="replace")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"
