"""Credentials never leave a URI: one redaction for everything that shows a URI to people.

A tracking URI such as `https://user:secret@mlflow.example/?token=abc` is a credential carrier: the
trainer's errors quote it and the operator copies those errors into status conditions, Events,
Slack and logs, all readable by far more people than the Secret it came from. Every place that
shows a URI or a message that may contain one passes it through `redact_text` first.

Plain standard library: the trainer image imports it too.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
# Query parameters that carry a credential (compared lower-case, `-` and `_` ignored).
SECRET_PARAMS = frozenset({
    "token", "accesstoken", "authtoken", "apitoken", "apikey", "key", "password", "passwd", "pwd",
    "secret", "clientsecret", "signature", "sig", "xamzsignature", "xamzcredential",
    "xamzsecuritytoken", "credential", "auth", "sessiontoken",
})
# scheme://anything-up-to-whitespace-or-quote: what a URI looks like inside free text.
_URI_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>`]+")


def _secret_param(name: str) -> bool:
    return name.lower().replace("-", "").replace("_", "") in SECRET_PARAMS


def redact_uri(uri: str) -> str:
    """The URI with `user:password@` (or a bare `token@`) and secret query values masked."""
    try:
        parts = urlsplit(uri)
    except ValueError:  # e.g. an unbalanced IPv6 bracket: show nothing that might be a secret
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_secret_param(k) for k, _ in pairs):
            query = urlencode([(k, MASK if _secret_param(k) else v) for k, v in pairs], safe="*")
    if netloc == parts.netloc and query == parts.query:
        return uri
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """Every URI inside a free-text message (an error, a condition) redacted as `redact_uri` does."""
    if not text or "://" not in text:
        return text
    return _URI_IN_TEXT.sub(lambda m: redact_uri(m.group(0)), text)
