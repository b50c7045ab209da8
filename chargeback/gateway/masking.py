"""Keys and credentials are masked on arrival, so no later stage ever holds one.

A key (a raw ``AppKey``, ``appSubscriptionKey``, the subscription id behind ``AppKey``) is shown
as its first 8 characters, then ``XXXX`` (CONTRACTS §2): enough to tell callers apart, and what
the chargeback article's KQL filters on.

Any other value that should name someone but is shaped like a credential is masked the same way
before it reaches an event, a dead letter's name or metadata, or a log line:

- a JWT (``eyJ...`` header, ``.``, ``eyJ...`` payload), alone or inside a value (``Bearer eyJ...``);
- an ``Authorization`` value (``Bearer`` or ``Basic`` and at least 16 token characters: a
  subscription named "Basic tier" is not one);
- 32 hexadecimal digits in a row: an API Management subscription key, or an Azure OpenAI key;
- a value that names a key: ``api-key=``/``api-key:``, ``subscription-key``,
  ``Ocp-Apim-Subscription-Key``, a SAS ``sig=``, a connection string's ``AccountKey=`` or
  ``SharedAccessKey=``;
- an OpenAI key (``sk-`` and at least 20 more characters).

A token's first characters say nothing (every JWT starts ``eyJhbGci``, every bearer value
``Bearer``), so a token is masked as ``token:`` plus the first 8 hex digits of its SHA-256, then
``XXXX``: stable for the same token, different between tokens, and nothing of the token itself.
A request id shaped like a credential becomes ``masked:`` plus 24 hex digits of its SHA-256, so
it still tells calls apart and still removes redeliveries.
"""

from __future__ import annotations

import hashlib
import re

__all__ = [
    "looks_like_credential",
    "mask_credentials_in",
    "mask_identity",
    "mask_key",
    "mask_request_id",
]

_TOKEN = re.compile(
    r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]*|(?i:(?:bearer|basic)\s+[A-Za-z0-9._~+/=-]{16,})"
)
#: Every credential shape of the module docstring. ``name`` and ``value`` split a ``name=value``
#: match so that, inside a URL, only the value is replaced and the query still parses.
_CREDENTIAL = re.compile(
    r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]*"
    r"|(?i:(?:bearer|basic)\s+[A-Za-z0-9._~+/=-]{16,})"
    r"|(?<![0-9A-Fa-f])[0-9A-Fa-f]{32}(?![0-9A-Fa-f])"
    r"|\bsk-[A-Za-z0-9_-]{20,}"
    r"|(?P<name>(?i:\b(?:ocp-apim-subscription-key|subscription[-_]?key|api[-_]?key"
    r"|sig|accountkey|sharedaccesskey)\s*[:=]\s*))(?P<value>[^&\s;,\"']*)"
)


def looks_like_credential(value: str) -> bool:
    """True when ``value`` holds any credential shape of the module docstring."""
    # The full pattern costs about 100 ns a character (case-blind names, a look-behind at every
    # hex digit); every message's fields pass through here, so a scan for what each shape must
    # contain comes first and almost always answers.
    low = value.lower()
    if not (
        "eyj" in low
        or "key" in low
        or "sig" in low
        or "bearer" in low
        or "basic" in low
        or "sk-" in low
        or _HEX_RUN in value.encode("utf-8", "replace").translate(_HEX_TABLE)
    ):
        return False
    return _CREDENTIAL.search(value) is not None


#: Hex digits become ``h``, every other byte ``.``: 32 in a row are `_HEX_RUN`.
_HEX_TABLE = bytes(ord("h") if chr(i) in "0123456789abcdefABCDEF" else ord(".") for i in range(256))
_HEX_RUN = b"h" * 32


def mask_key(value: str | None) -> str | None:
    """A key as ``AppKey`` shows it: first 8 characters, then ``XXXX`` (CONTRACTS §2); a token
    as ``token:`` and a hash (module docstring)."""
    if not value:
        return None
    # What every token holds, looked for first: the usual key costs one lower() and three tests.
    low = value.lower()
    if ("eyj" in low or "bearer" in low or "basic" in low) and _TOKEN.search(value):
        return "token:" + hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()[:8] + "XXXX"
    return value[:8] + "XXXX"


def mask_identity(value: str | None) -> str | None:
    """The value, or its mask when it is shaped like a credential."""
    if not value:
        return value
    masked = _MASKED.get(value)
    if masked is None:
        masked = mask_key(value) if looks_like_credential(value) else value
        if len(value) <= 256:  # names repeat from call to call (a model, a subscription)
            if len(_MASKED) >= 4096:
                _MASKED.clear()
            _MASKED[value] = masked or value
    return masked


_MASKED: dict[str, str] = {}


def mask_request_id(value: str) -> str:
    """The id, or ``masked:`` and a hash of it when it is shaped like a credential: still
    unique, still the same for a redelivery."""
    if looks_like_credential(value):
        return "masked:" + hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()[:24]
    return value


def mask_credentials_in(text: str | None) -> str | None:
    """A URL or any text with each credential inside it masked in place, the rest untouched
    (``?api-key=0123...`` becomes ``?api-key=01234567XXXX``)."""
    if not text:
        return text
    return _CREDENTIAL.sub(_masked_match, text)


def _masked_match(match: re.Match[str]) -> str:
    name = match.group("name")
    if name is None:
        return mask_key(match.group()) or ""
    return name + (mask_key(match.group("value")) or "")
