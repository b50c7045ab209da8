"""The call's time (`chargeback.gateway.timestamps`): every form the policies write, read as UTC;
anything else refused naming the field, never guessed; the time billed settled against the time
Event Hubs enqueued the message.

The .NET forms are not typed from a picture of them: .NET's own ``DateTime.ToString()`` (the
article's policy writes ``DateTime.UtcNow.ToString()``) runs under Mono in the invariant, en-US,
en-GB and de-DE cultures and its output is read back. The one form Mono cannot print, the narrow
no-break space ICU 72 puts before AM/PM on .NET 8 on Linux, is written as dotnet/runtime#102220
shows it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chargeback.emit import MemorySink
from chargeback.emit.deadletter import DeadLetter, MemoryDeadLetters, raw_from_metadata
from chargeback.emit.event import iso_utc
from chargeback.errors import MalformedMessage
from chargeback.gateway.timestamps import AHEAD, BEHIND, call_time, parse_timestamp
from chargeback.pipeline import Processor
from chargeback.receive import RawMessage
from chargeback.settings import load_settings
from tests.support.csharp import run_csharp

# --- .NET's own output ----------------------------------------------------------------------

MOMENTS = [
    datetime(2026, 11, 20, 10, 0, 0, tzinfo=UTC),
    datetime(2027, 1, 2, 0, 0, 0, tzinfo=UTC),
    datetime(2026, 11, 20, 22, 0, 0, tzinfo=UTC),
    datetime(2026, 11, 20, 12, 30, 5, tzinfo=UTC),
    datetime(2026, 3, 4, 9, 7, 3, tzinfo=UTC),
    datetime(2026, 12, 31, 23, 59, 59, 123456, tzinfo=UTC),  # .1234567 in ticks
]
CULTURES = ["", "en-US", "en-GB", "de-DE"]  # "" is CultureInfo.InvariantCulture

PROGRAM = """
using System;
using System.Globalization;
using System.Threading;
public static class Program {
    public static void Main() {
        var moments = new DateTime[] { %(moments)s };
        foreach (var culture in new string[] { %(cultures)s }) {
            Thread.CurrentThread.CurrentCulture = new CultureInfo(culture);
            foreach (var moment in moments) {
                // The article's policy: DateTime.UtcNow.ToString(); and the round-trip "o".
                Console.WriteLine(culture + "|" + moment.ToString() + "|" + moment.ToString("o"));
            }
        }
    }
}
"""


def _csharp_moment(moment: datetime) -> str:
    ticks = moment.microsecond * 10 + (7 if moment.microsecond else 0)
    return (
        f"new DateTime({moment.year}, {moment.month}, {moment.day}, {moment.hour},"
        f" {moment.minute}, {moment.second}, DateTimeKind.Utc).AddTicks({ticks})"
    )


@pytest.fixture(scope="module")
def dotnet(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[str, str]]]:
    """culture -> [(ToString(), ToString("o"))], one pair per moment of MOMENTS."""
    source = PROGRAM % {
        "moments": ", ".join(map(_csharp_moment, MOMENTS)),
        "cultures": ", ".join(json.dumps(c) for c in CULTURES),
    }
    lines = run_csharp(source, tmp_path_factory.mktemp("dotnet")).splitlines()
    printed: dict[str, list[tuple[str, str]]] = {culture: [] for culture in CULTURES}
    for line in lines:
        culture, general, roundtrip = line.split("|")
        printed[culture].append((general, roundtrip))
    return printed


def test_mono_prints_the_documented_patterns(dotnet: dict[str, list[tuple[str, str]]]) -> None:
    # What the docs say each culture's "G" is (timestamps.py cites them), as .NET printed it.
    assert dotnet[""][0] == ("11/20/2026 10:00:00", "2026-11-20T10:00:00.0000000Z")
    assert dotnet["en-US"][1][0] == "1/2/2027 12:00:00 AM"
    assert dotnet["en-GB"][0][0] == "20/11/2026 10:00:00"
    assert dotnet["de-DE"][0][0] == "20.11.2026 10:00:00"


@pytest.mark.parametrize("culture", ["", "en-US"])
def test_the_invariant_and_en_us_forms_read_as_the_moment(
    culture: str, dotnet: dict[str, list[tuple[str, str]]]
) -> None:
    for moment, (general, roundtrip) in zip(MOMENTS, dotnet[culture], strict=True):
        assert parse_timestamp(general, "Timestamp") == moment.replace(microsecond=0), general
        # "o" writes 7 fraction digits; kept to the microsecond.
        assert parse_timestamp(roundtrip, "Timestamp") == moment, roundtrip


@pytest.mark.parametrize("culture", ["en-GB", "de-DE"])
def test_day_first_cultures_are_refused(
    culture: str, dotnet: dict[str, list[tuple[str, str]]]
) -> None:
    general, _ = dotnet[culture][0]  # the 20th of November
    with pytest.raises(MalformedMessage, match=r"^field Timestamp: not a date and time"):
        parse_timestamp(general, "Timestamp")


# --- Each form, exactly -----------------------------------------------------------------------

READ = [
    ("11/20/2026 10:00:00 AM", datetime(2026, 11, 20, 10, tzinfo=UTC)),
    ("1/2/2027 12:00:00 AM", datetime(2027, 1, 2, 0, tzinfo=UTC)),
    ("11/20/2026 22:00:00", datetime(2026, 11, 20, 22, tzinfo=UTC)),
    ("11/20/2026 12:00:00 PM", datetime(2026, 11, 20, 12, tzinfo=UTC)),
    ("11/20/2026 12:00:00 AM", datetime(2026, 11, 20, 0, tzinfo=UTC)),
    ("11/20/2026 10:00:00\u202fAM", datetime(2026, 11, 20, 10, tzinfo=UTC)),  # ICU 72
    ("11/20/2026 10:00:00\u00a0PM", datetime(2026, 11, 20, 22, tzinfo=UTC)),
    ("01/02/2027 00:00:00", datetime(2027, 1, 2, 0, tzinfo=UTC)),
    ("2026-11-20T10:00:00.123Z", datetime(2026, 11, 20, 10, 0, 0, 123000, tzinfo=UTC)),
    ("2026-11-20T10:00:00.1234567Z", datetime(2026, 11, 20, 10, 0, 0, 123456, tzinfo=UTC)),
    ("2026-11-20T10:00:00.123456789+01:00", datetime(2026, 11, 20, 9, 0, 0, 123456, tzinfo=UTC)),
    ("2026-11-20T11:00:00+0100", datetime(2026, 11, 20, 10, tzinfo=UTC)),
    ("2026-11-20T08:00:00-02", datetime(2026, 11, 20, 10, tzinfo=UTC)),
    ("2026-11-20 10:00:00Z", datetime(2026, 11, 20, 10, tzinfo=UTC)),  # .NET's "u"
    ("2026-11-20T10:00:00", datetime(2026, 11, 20, 10, tzinfo=UTC)),  # "s": UTC by policy
    ("2026-11-20T10:00Z", datetime(2026, 11, 20, 10, tzinfo=UTC)),
    ("2026-11-20t10:00:00z", datetime(2026, 11, 20, 10, tzinfo=UTC)),
    (" 2026-11-20T10:00:00Z ", datetime(2026, 11, 20, 10, tzinfo=UTC)),
]


@pytest.mark.parametrize(("text", "moment"), READ)
def test_each_form_reads_as_utc(text: str, moment: datetime) -> None:
    read = parse_timestamp(text, "Timestamp")
    assert read == moment
    assert read.utcoffset() == timedelta(0)


NOT_A_FORM = "field Timestamp: not a date and time in a form read"
DOES_NOT_EXIST = "field Timestamp: not a date and time that exists in UTC"
REFUSED: list[tuple[Any, str]] = [
    ("13/20/2026 10:00:00", DOES_NOT_EXIST),
    ("20/11/2026 10:00:00", DOES_NOT_EXIST),  # en-GB, day over 12
    ("11/20/2026 13:00:00 PM", DOES_NOT_EXIST),
    ("11/20/2026 0:00:00 AM", DOES_NOT_EXIST),
    ("2/30/2026 10:00:00", DOES_NOT_EXIST),
    ("2026-11-20T24:00:00Z", DOES_NOT_EXIST),
    ("2026-11-20T10:00:60Z", DOES_NOT_EXIST),
    ("2026-11-20T10:00:00+24:00", DOES_NOT_EXIST),
    ("0001-01-01T00:30:00+01:00", DOES_NOT_EXIST),
    ("9999-12-31T23:59:59-01:00", DOES_NOT_EXIST),
    ("0000-01-01T00:00:00Z", DOES_NOT_EXIST),
    ("11/20/2026 10:00:00 am", NOT_A_FORM),  # en-AU and others: lower case, day first
    ("20.11.2026 10:00:00", NOT_A_FORM),  # de-DE
    ("2026/11/20 10:00:00", NOT_A_FORM),  # ja-JP
    ("11/20/2026 10:00 AM", NOT_A_FORM),  # "g", not "G"
    ("11/20/26 10:00:00", NOT_A_FORM),
    ("2026-11-20", NOT_A_FORM),  # a day is not a call time
    ("20261120T100000Z", NOT_A_FORM),  # basic format: no policy writes it
    ("1767225600", NOT_A_FORM),  # seconds or milliseconds? never guessed
    ("", NOT_A_FORM),
    ("2026-11-20T10:00:00.1" + "2" * 60 + "Z", "field Timestamp: too long"),
    (1767225600, "field Timestamp: a number, not a date and time string"),
    (1.5, "field Timestamp: a number, not a date and time string"),
    (True, "field Timestamp: a bool, not a date and time string"),
    (None, "field Timestamp: a NoneType, not a date and time string"),
    ({"a": 1}, "field Timestamp: a dict, not a date and time string"),
]


@pytest.mark.parametrize(("value", "says"), REFUSED)
def test_other_values_are_refused_naming_the_field(value: Any, says: str) -> None:
    with pytest.raises(MalformedMessage) as caught:
        parse_timestamp(value, "Timestamp")
    assert str(caught.value).startswith(says)
    if isinstance(value, str) and value.strip():
        assert value.strip() not in str(caught.value)  # the value is never quoted


# --- Every accepted form, generated -------------------------------------------------------------

MOMENT = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31, 23, 59, 59))
OFFSET = st.integers(min_value=-14 * 60, max_value=14 * 60)


def _iso(moment: datetime, digits: int, separator: str, zone: int | None) -> tuple[str, datetime]:
    """``moment`` (UTC) as ISO 8601 with ``digits`` fraction digits, in zone ``zone`` minutes
    east (None: no designator), and what reading it gives."""
    offset = timedelta(minutes=zone or 0)
    local = moment + offset
    fraction = f"{local.microsecond:06d}{'7' * 3}"[:digits]
    text = local.strftime(f"%Y-%m-%d{separator}%H:%M:%S") + ("." + fraction if digits else "")
    if zone is not None:
        sign = "-" if zone < 0 else "+"
        text += "Z" if zone == 0 else f"{sign}{abs(zone) // 60:02d}:{abs(zone) % 60:02d}"
    kept = int(fraction[:6].ljust(6, "0")) if digits else 0
    return text, moment.replace(microsecond=kept, tzinfo=UTC)


@settings(max_examples=300, deadline=None)
@given(
    MOMENT,
    st.integers(min_value=0, max_value=9),
    st.sampled_from(["T", " "]),
    st.none() | OFFSET,
)
def test_iso_8601_with_any_fraction_and_offset(
    moment: datetime, digits: int, separator: str, zone: int | None
) -> None:
    text, expected = _iso(moment, digits, separator, zone)
    assert parse_timestamp(text, "timestamp") == expected, text


@settings(max_examples=300, deadline=None)
@given(MOMENT, st.sampled_from([" ", "\u00a0", "\u202f"]), st.booleans())
def test_dotnet_general_forms(moment: datetime, space: str, invariant: bool) -> None:
    if invariant:  # MM/dd/yyyy HH:mm:ss
        text = moment.strftime("%m/%d/%Y %H:%M:%S")
    else:  # M/d/yyyy h:mm:ss tt
        hour = moment.hour % 12 or 12
        meridiem = "AM" if moment.hour < 12 else "PM"
        clock = f"{hour}:{moment.minute:02d}:{moment.second:02d}"
        text = f"{moment.month}/{moment.day}/{moment.year} {clock}{space}{meridiem}"
    assert parse_timestamp(text, "Timestamp") == moment.replace(microsecond=0, tzinfo=UTC), text


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    OFFSET,
)
def test_every_date_with_any_offset_is_read_or_refused(local: datetime, zone: int) -> None:
    sign = "-" if zone < 0 else "+"
    text = local.isoformat() + f"{sign}{abs(zone) // 60:02d}:{abs(zone) % 60:02d}"
    try:
        expected = local.replace(tzinfo=timezone(timedelta(minutes=zone))).astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:30+01:00: no such moment in UTC
        with pytest.raises(MalformedMessage, match="out of range"):
            parse_timestamp(text, "timestamp")
        return
    assert parse_timestamp(text, "timestamp") == expected


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=80) | st.from_regex(r"[0-9/:. APMZT+-]{5,30}", fullmatch=True))
def test_any_text_is_read_as_utc_or_refused(text: str) -> None:
    try:
        moment = parse_timestamp(text, "timestamp")
    except MalformedMessage as exc:
        assert str(exc).startswith("field timestamp: ")
        return
    assert moment.tzinfo is UTC or moment.utcoffset() == timedelta(0)


# --- The time billed --------------------------------------------------------------------------

ENQUEUED = datetime(2026, 11, 20, 10, 0, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("reported", "billed", "why"),
    [
        (ENQUEUED - timedelta(seconds=1), ENQUEUED - timedelta(seconds=1), None),
        (ENQUEUED + AHEAD, ENQUEUED + AHEAD, None),  # a day ahead: a clock, not a wrong time
        (ENQUEUED + AHEAD + timedelta(seconds=1), ENQUEUED, "ahead-of-enqueued"),
        (ENQUEUED - BEHIND, ENQUEUED - BEHIND, None),
        (ENQUEUED - BEHIND - timedelta(seconds=1), ENQUEUED, "behind-enqueued"),
        (datetime(1, 1, 1, tzinfo=UTC), ENQUEUED, "behind-enqueued"),  # DateTime.MinValue
        (datetime(9999, 12, 31, tzinfo=UTC), ENQUEUED, "ahead-of-enqueued"),
    ],
)
def test_a_call_time_far_from_the_enqueued_time_is_replaced_by_it(
    reported: datetime, billed: datetime, why: str | None
) -> None:
    assert call_time(reported, ENQUEUED, "timestamp") == (billed, why)
    # Event Hubs' times are UTC; one without a zone is read as UTC.
    assert call_time(reported, ENQUEUED.replace(tzinfo=None), "timestamp") == (billed, why)


@pytest.mark.parametrize(
    "reported", [datetime(1, 1, 1, tzinfo=UTC), datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC)]
)
def test_without_an_enqueued_time_an_implausible_year_is_refused(reported: datetime) -> None:
    with pytest.raises(MalformedMessage, match=r"^field Timestamp: outside the years 2000 to 2099"):
        call_time(reported, None, "Timestamp")
    assert call_time(datetime(2000, 1, 1, tzinfo=UTC), None, "Timestamp")[1] is None


def test_every_emitted_time_has_a_four_digit_year() -> None:
    assert iso_utc(datetime(1, 1, 1, tzinfo=UTC)) == "0001-01-01T00:00:00.000Z"
    assert iso_utc(datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)) == (
        "0999-12-31T23:59:59.999Z"
    )
    assert iso_utc(datetime(2026, 11, 20, 10, 0, 0, 123456, tzinfo=UTC)) == (
        "2026-11-20T10:00:00.123Z"
    )


# --- Through the processor: the article's policy's messages, billed at their time ------------

SETTINGS = load_settings()


def _article(timestamp: str) -> bytes:
    """A message as the chargeback article's policy writes it (CONTRACTS §1b)."""
    return json.dumps(
        {
            "Timestamp": timestamp,
            "ApiOperation": "ChatCompletions_Create",
            "AppKey": "0123456789abcdef0123456789abcdef",
            "PromptTokens": "120",
            "CompletionTokens": "80",
            "TotalTokens": "200",
        }
    ).encode()


def _run(*raws: RawMessage) -> tuple[MemorySink, MemoryDeadLetters, list[str]]:
    events, dead = MemorySink(), MemoryDeadLetters()
    report = Processor(SETTINGS, events, dead).process_batch(raws)
    return events, dead, [f"{o.kind}:{o.reason}" for o in report.outcomes]


def test_the_articles_policy_message_is_billed_at_its_time() -> None:
    events, _, outcomes = _run(RawMessage(_article("11/20/2026 10:00:00 AM"), "0", 1))
    assert outcomes == ["emitted:"]
    (event,) = events.events
    assert event.to_json()["timestamp"] == "2026-11-20T10:00:00.000Z"
    assert dict(event.dimensions) == {
        "RequestId": event.dimensions["RequestId"],
        "Timestamp": "2026-11-20T10:00:00.000Z",
        "ApiOperation": "chat.completion",
        "Stream": "false",
        "AppKey": "01234567XXXX",
        "TokenSource": "event",
        "MessageShape": "usage-only",
        "Truncated": "false",
        "PromptTokens": "120",
        "CompletionTokens": "80",
        "TotalTokens": "200",
        "Application": "01234567XXXX",
        "BusinessUnit": "unassigned",
        "CostCenter": "unassigned",
        "IdentitySource": "unassigned",
        "Billing": "paygo",
        "Priced": "false",
        "Currency": "USD",
        "PriceVersion": "azure-openai-2026-08-11",
        "DeploymentType": "GlobalStandard",
    }
    assert event.dimensions["RequestId"].startswith("sha256:")


@pytest.mark.parametrize(
    ("timestamp", "billed"),
    [
        ("1/2/2027 12:00:00 AM", "2027-01-02T00:00:00.000Z"),
        ("11/20/2026 22:00:00", "2026-11-20T22:00:00.000Z"),
        ("11/20/2026 10:00:00 PM", "2026-11-20T22:00:00.000Z"),
        ("2026-11-20T10:00:00.1234567Z", "2026-11-20T10:00:00.123Z"),
    ],
)
def test_other_policy_forms_are_billed_at_their_time(timestamp: str, billed: str) -> None:
    events, _, outcomes = _run(RawMessage(_article(timestamp)))
    assert outcomes == ["emitted:"]
    assert events.events[0].dimensions["Timestamp"] == billed
    assert events.events[0].to_json()["timestamp"] == billed


def test_an_unreadable_or_impossible_time_is_dead_lettered_as_malformed() -> None:
    bodies = ["13/20/2026 10:00:00", "0001-01-01T00:30:00+01:00", "9999-12-31T23:59:59-01:00"]
    _, dead, outcomes = _run(*(RawMessage(_article(b)) for b in bodies))
    assert outcomes == ["dead-lettered:malformed"] * 3
    assert [letter.detail for letter in dead.letters] == [
        "usage-only message: field Timestamp: not a date and time that exists in UTC (out of range)"
    ] * 3


def test_a_far_time_is_kept_billed_at_the_enqueued_time_and_flagged() -> None:
    enqueued = datetime(2026, 11, 20, 10, 0, 1, 500000, tzinfo=UTC)
    events, _, outcomes = _run(
        RawMessage(_article("1/1/0001 12:00:00 AM"), "0", 1, enqueued_time=enqueued),
        RawMessage(_article("11/23/2026 10:00:00 AM"), "0", 2, enqueued_time=enqueued),
        RawMessage(_article("11/20/2026 9:59:59 AM"), "0", 3, enqueued_time=enqueued),
    )
    assert outcomes == ["emitted:"] * 3
    old, ahead, usual = (event.dimensions for event in events.events)
    assert (old["Timestamp"], old["ReportedTimestamp"], old["TimestampAdjusted"]) == (
        "2026-11-20T10:00:01.500Z",
        "0001-01-01T00:00:00.000Z",
        "behind-enqueued",
    )
    assert (ahead["Timestamp"], ahead["ReportedTimestamp"], ahead["TimestampAdjusted"]) == (
        "2026-11-20T10:00:01.500Z",
        "2026-11-23T10:00:00.000Z",
        "ahead-of-enqueued",
    )
    assert usual["Timestamp"] == "2026-11-20T09:59:59.000Z"
    assert "ReportedTimestamp" not in usual and "TimestampAdjusted" not in usual
    assert events.events[0].timestamp == enqueued


def test_without_an_enqueued_time_year_one_is_malformed() -> None:
    _, dead, outcomes = _run(RawMessage(_article("1/1/0001 12:00:00 AM")))
    assert outcomes == ["dead-lettered:malformed"]
    assert dead.letters[0].detail == (
        "usage-only message: field Timestamp: outside the years 2000 to 2099, not the time of a call"
    )


def test_a_dead_letter_replays_with_its_enqueued_time() -> None:
    """Replay from the container restores the enqueued time from the metadata, so a far call
    time settles the same way on replay as it did live."""
    enqueued = datetime(2026, 11, 20, 10, 0, 1, tzinfo=UTC)
    raw = RawMessage(_article("1/1/0001 12:00:00 AM"), "0", 7, enqueued_time=enqueued)
    replayed = raw_from_metadata(raw.body, DeadLetter(raw, "x", "y").metadata())
    events, _, outcomes = _run(replayed)
    assert outcomes == ["emitted:"]
    assert events.events[0].dimensions["Timestamp"] == "2026-11-20T10:00:01.000Z"
