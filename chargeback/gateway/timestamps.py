"""A call's time, from the text each policy writes, and the time its event is billed at.

The forms read, and nothing else (a form not listed is refused, never guessed):

- ISO 8601 / RFC 3339 with a ``T``, ``t`` or space between date and time, seconds optional, any
  number of fraction digits (kept to the microsecond; .NET's round-trip ``"o"`` format writes 7),
  and ``Z`` or an offset (``+01:00``, ``+0100``, ``+01``); without one the time is UTC, since every
  policy we read writes UTC.
- What .NET's ``DateTime.ToString()`` writes in the invariant and the en-US cultures: the general
  date/time pattern "G", the culture's ShortDatePattern and LongTimePattern joined by a space
  (learn.microsoft.com/dotnet/api/system.datetime.tostring, "Remarks": "formatted using the
  general date and time format specifier ('G') ... combines ... ShortDatePattern and
  LongTimePattern").

  - Invariant: ``MM/dd/yyyy HH:mm:ss``. ShortDatePattern "MM/dd/yyyy"
    (learn.microsoft.com/dotnet/standard/base-types/standard-date-and-time-format-strings);
    LongTimePattern "HH:mm:ss" (dotnet/runtime, System.Private.CoreLib
    src/System/Globalization/CultureData.cs, ``Invariant``).
  - en-US: ``M/d/yyyy h:mm:ss tt``, e.g. ``11/20/2026 10:00:00 AM``. ShortDatePattern "M/d/yyyy"
    (learn.microsoft.com/dotnet/api/system.globalization.datetimeformatinfo.shortdatepattern);
    LongTimePattern "h:mm:ss tt" (.../datetimeformatinfo.longtimepattern). On ICU 72 and later
    .NET writes a narrow no-break space (U+202F) before AM/PM (dotnet/runtime#102220), so that
    and U+00A0 are read as the space.

  Month first, always: a culture that writes the day first (en-GB ``20/11/2026 10:00:00``)
  cannot be told from the invariant one when the day is 12 or less, so it is not supported
  (README, "Reliability"); its dates with a day over 12 are refused.

The chargeback article's policy writes ``DateTime.UtcNow.ToString()``, so its ``Timestamp`` is the
gateway culture's "G" form, read as UTC.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Final

from chargeback.errors import MalformedMessage

__all__ = ["AHEAD", "BEHIND", "call_time", "parse_timestamp"]

#: Longer than any form above: a longer value is refused unread.
_MAX_LENGTH = 64

_ISO = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2})"
    r"(?::([0-9]{2})(?:[.,]([0-9]+))?)?"
    r"(?:[Zz]|([+-])([0-9]{2})(?::?([0-9]{2}))?)?",
    re.ASCII,
)
_GENERAL = re.compile(
    r"([0-9]{1,2})/([0-9]{1,2})/([0-9]{4}) ([0-9]{1,2}):([0-9]{2}):([0-9]{2})"
    r"(?:[ \u00a0\u202f](AM|PM))?",
    re.ASCII,
)


def parse_timestamp(value: object, field: str) -> datetime:
    """The UTC time in ``value``, one of the forms of this module's docstring. Raises
    `MalformedMessage` naming ``field`` and the problem (never the value) otherwise."""
    if not isinstance(value, str):
        number = isinstance(value, int | float) and not isinstance(value, bool)
        kind = "a number" if number else f"a {type(value).__name__}"
        raise MalformedMessage(f"field {field}: {kind}, not a date and time string")
    text = value.strip()
    if len(text) > _MAX_LENGTH:
        raise MalformedMessage(f"field {field}: too long for a date and time")
    try:
        if match := _ISO.fullmatch(text):
            return _iso(match)
        if match := _GENERAL.fullmatch(text):
            return _general(match)
    except (ValueError, OverflowError):
        raise MalformedMessage(
            f"field {field}: not a date and time that exists in UTC (out of range)"
        ) from None
    raise MalformedMessage(
        f"field {field}: not a date and time in a form read (ISO 8601, or .NET's general"
        " date/time of the invariant or en-US culture, month first)"
    )


def _iso(match: re.Match[str]) -> datetime:
    year, month, day, hour, minute, second, fraction, sign, off_h, off_m = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    zone = UTC
    if sign:
        hours, minutes = int(off_h), int(off_m or 0)
        if hours > 23 or minutes > 59:
            raise ValueError("offset out of range")
        offset = timedelta(hours=hours, minutes=minutes)
        zone = timezone(-offset if sign == "-" else offset)
    moment = datetime(
        int(year), int(month), int(day), int(hour), int(minute), int(second or 0), micro, zone
    )
    # Raises OverflowError for 0001-01-01T00:30+01:00 or 9999-12-31T23:59-01:00.
    return moment if zone is UTC else moment.astimezone(UTC)


def _general(match: re.Match[str]) -> datetime:
    month, day, year, hour, minute, second, meridiem = match.groups()
    hours = int(hour)
    if meridiem:
        if not 1 <= hours <= 12:
            raise ValueError("hour out of range for AM/PM")
        hours = hours % 12 + (12 if meridiem == "PM" else 0)
    return datetime(int(year), int(month), int(day), hours, int(minute), int(second), tzinfo=UTC)


# --- The time the event is billed at --------------------------------------------------------

#: How far a call's own time may run ahead of the time Event Hubs enqueued its message: a gateway
#: sends the message right after the call, so only a wrong clock or a wrong form (local time
#: written as UTC is at most 14 hours off) puts it ahead; beyond a day it is not the call's time.
AHEAD: Final = timedelta(days=1)
#: How far it may lag behind. Application Insights refuses an item whose time is more than 48
#: hours old ("103: Field 'time' on type 'Envelope' is older than the allowed min date. Expected:
#: now - 172800000ms", microsoft/ApplicationInsights-node.js#1466; "The ingestion service rejects
#: anything older than 2 days", microsoft/ApplicationInsights-dotnet TransmissionStorage.cs), and
#: the sink counts a refused item as a failed batch that Event Hubs then retries without end: an
#: older call time would stop its partition. (The hub's retention, up to 90 days on Premium and
#: Dedicated and 7 on Standard, learn.microsoft.com/azure/event-hubs/compare-tiers, bounds how
#: late a message is read, not how far its call time is from its enqueued time.)
BEHIND: Final = timedelta(days=2)
#: Without an enqueued time (a replayed file), a time outside these years is a default or a
#: broken clock (.NET's DateTime.MinValue is 0001-01-01), not a call time.
_EARLIEST: Final = datetime(2000, 1, 1, tzinfo=UTC)
_LATEST: Final = datetime(2100, 1, 1, tzinfo=UTC)


def call_time(
    reported: datetime, enqueued: datetime | None, field: str
) -> tuple[datetime, str | None]:
    """The time to bill a call at, and why it is not ``reported`` (None when it is).

    With the time Event Hubs enqueued the message: ``reported`` unless it is more than `AHEAD`
    after it (``ahead-of-enqueued``) or more than `BEHIND` before it (``behind-enqueued``), when
    the enqueued time is used and the call is kept. Without one: ``reported``, or a
    `MalformedMessage` when it lies outside the years 2000 to 2099."""
    if enqueued is None:
        if not _EARLIEST <= reported < _LATEST:
            raise MalformedMessage(
                f"field {field}: outside the years 2000 to 2099, not the time of a call"
            )
        return reported, None
    if enqueued.tzinfo is None:
        enqueued = enqueued.replace(tzinfo=UTC)
    lead = reported - enqueued  # never overflows: timedelta spans every pair of datetimes
    if lead > AHEAD:
        return enqueued.astimezone(UTC), "ahead-of-enqueued"
    if lead < -BEHIND:
        return enqueued.astimezone(UTC), "behind-enqueued"
    return reported, None
