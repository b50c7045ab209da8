"""Issue 18: the envelopes `AzureMonitorSink` writes itself are the ones the azure-monitor-
opentelemetry exporter writes for the same events, field by field, as an ingestion endpoint on
localhost receives them; and they go out through the exporter's own transport (its bearer token
policy included) with the exporter's own reading of the answer."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.monitor.opentelemetry.exporter import AzureMonitorLogExporter
from azure.monitor.opentelemetry.exporter._generated.exporter._utils.model_base import (
    SdkJSONEncoder,
)
from azure.monitor.opentelemetry.exporter._utils import _get_telemetry_type
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry._logs import LogRecord
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from chargeback.emit import AzureMonitorSink, ChargebackEvent, MemorySink
from chargeback.emit.deadletter import MemoryDeadLetters
from chargeback.emit.envelopes import EnvelopeWriter, exporter_tags
from chargeback.emit.transmit import EnvelopeExporter
from chargeback.pipeline import Processor
from chargeback.receive import RawMessage
from chargeback.settings import Settings
from tests.support.ingestion import FaultyIngestion, serve
from tests.support.messages import v1_message

IKEY = "00000000-0000-0000-0000-000000000000"


def _record(event: ChargebackEvent, resource: Resource) -> ReadableLogRecord:
    """The log record the sink handed the exporter before issue 18 (and still hands the
    Functions worker's provider): the event's dimensions, its name and measurements in the
    exporter's custom-event attributes."""
    attributes: dict[str, Any] = dict(event.dimensions)
    attributes["microsoft.custom_event.name"] = event.name
    attributes["microsoft.custom_measurements"] = json.dumps(dict(event.measurements))
    record = LogRecord(
        timestamp=int(event.timestamp.timestamp() * 1e9), body=event.name, attributes=attributes
    )
    scope = InstrumentationScope("chargeback.events")
    return ReadableLogRecord(record, resource=resource, instrumentation_scope=scope)


def _exporter(connection: str) -> AzureMonitorLogExporter:
    return AzureMonitorLogExporter(
        connection_string=connection,
        disable_offline_storage=True,
        max_envelopes_per_second=0,
        retry_total=0,
    )


def _differences(before: Any, after: Any, path: str = "") -> Iterator[str]:
    """Every place where two JSON values differ, by path."""
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after)):
            if key not in before or key not in after:
                yield f"{path}/{key}: only in {'after' if key in after else 'before'}"
            else:
                yield from _differences(before[key], after[key], f"{path}/{key}")
    elif isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for index, (b, a) in enumerate(zip(before, after, strict=True)):
            yield from _differences(b, a, f"{path}[{index}]")
    elif before != after or type(before) is not type(after):
        yield f"{path}: {before!r} before, {after!r} after"


def _corpus_events(records: list[dict[str, Any]], settings: Settings) -> list[ChargebackEvent]:
    """Every event the recorded exchanges make, as the processor builds them."""
    sink = MemorySink()
    processor = Processor(settings, sink, MemoryDeadLetters())
    bodies = [v1_message(r, f"call-{i}", businessUnit="finance") for i, r in enumerate(records)]
    processor.process_batch(RawMessage(body, "0", i) for i, body in enumerate(bodies))
    return sink.events


#: Events at the exporter's edges: values cut at 8 KB, keys over 150 characters dropped, text
#: JSON escapes, measurements it leaves out (not finite, not numbers), times with and without
#: microseconds, and one naive time (read as local time on both sides).
EDGES = [
    ChargebackEvent(
        datetime(2026, 11, 20, 10, 0, 0, 0, tzinfo=UTC),
        {"Long": "x" * 9000, "K" * 151: "dropped", "K" * 150: "kept", "Text": 'é"\\\n\u2028\x00'},
        {"Big": 1e308, "Nan": float("nan"), "Inf": float("inf"), "M" * 151: 1.0, "Neg": -0.0},
    ),
    ChargebackEvent(
        datetime(2026, 11, 20, 10, 0, 0, 999999, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        {"RequestId": "r-edge"},
        {"Tiny": 5e-324, "Whole": 3.0},
    ),
    ChargebackEvent(datetime(2026, 11, 20, 10, 0, 0, 123457), {}, {}),
]


def _received(events: Sequence[ChargebackEvent], through_sink: bool) -> list[dict[str, Any]]:
    ingestion = FaultyIngestion(None)
    with serve(ingestion) as connection:
        sink = AzureMonitorSink(connection, cloud_role_name="chargeback-test", clock=None)
        if through_sink:
            sink.send(events)
        else:
            exporter = _exporter(connection)
            exporter.export([_record(event, sink.resource) for event in events])
        sink.close()
    return ingestion.envelopes


def test_the_endpoint_receives_what_the_exporter_sent_field_by_field(
    records: list[dict[str, Any]], settings: Settings
) -> None:
    events = _corpus_events(records, settings) + EDGES
    ingestion_before, ingestion_after = FaultyIngestion(None), FaultyIngestion(None)
    with serve(ingestion_before) as before, serve(ingestion_after) as after:
        sink = AzureMonitorSink(after, cloud_role_name="chargeback-test", clock=None)
        sink.send(events)
        _exporter(before).export([_record(event, sink.resource) for event in events])
        sink.close()
    assert len(events) > 300
    assert len(ingestion_after.envelopes) == len(ingestion_before.envelopes) == len(events)
    assert list(_differences(ingestion_before.envelopes, ingestion_after.envelopes)) == []
    # The edges did reach the exporter's rules, on both sides.
    long, instance = ingestion_after.envelopes[-3], ingestion_after.envelopes[0]
    assert len(long["data"]["baseData"]["properties"]["Long"]) == 8192
    assert set(long["data"]["baseData"]["measurements"]) == {"Big", "Neg", "M" * 150}
    assert instance["tags"]["ai.cloud.role"] == "chargeback-test"


def test_our_dimensions_never_take_the_exporters_other_paths(
    records: list[dict[str, Any]], settings: Settings
) -> None:
    """The exporter turns some attributes into tags (``enduser.id``, ``session.id``,
    ``client.address``, ...) or into other telemetry (``exception.*``); the writer does not,
    because every key our events have is a CamelCase name without a dot."""
    keys = {key for event in _corpus_events(records, settings) for key in event.dimensions}
    assert keys and all(key.isalnum() and key[0].isupper() for key in keys), keys


def _keys() -> st.SearchStrategy[str]:
    # No dot: the exporter's special attributes all have one (see the test above).
    text = st.text(st.characters(blacklist_characters="."), max_size=12)
    return st.one_of(text, text.map(lambda k: k * 13))  # some over 150 characters


_DIMENSIONS = st.dictionaries(
    _keys(), st.one_of(st.text(max_size=30), st.text(max_size=3).map(lambda v: v * 3000))
)
_MEASUREMENTS = st.dictionaries(
    _keys(), st.one_of(st.floats(), st.integers(), st.integers(min_value=2**1100))
)
_TIMES = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)


@settings(max_examples=300, deadline=None)
@given(_DIMENSIONS, _MEASUREMENTS, _TIMES)
def test_any_event_is_written_as_the_exporter_writes_it(
    dimensions: dict[str, str], measurements: dict[str, Any], moment: datetime
) -> None:
    event = ChargebackEvent(moment, dimensions, measurements)
    resource = Resource.create({"service.name": "chargeback-test"})
    exporter = _exporter(f"InstrumentationKey={IKEY};IngestionEndpoint=http://127.0.0.1:9/")
    item = exporter._log_to_envelope(_record(event, resource))
    theirs = json.loads(json.dumps([item], cls=SdkJSONEncoder, exclude_readonly=True))[0]
    writer = EnvelopeWriter(IKEY, exporter_tags(resource), "chargeback.events", None)
    ours = json.loads(writer.batch([event]).body)[0]
    assert list(_differences(theirs, ours)) == []


def test_the_exporters_statistics_count_our_envelopes_as_custom_events() -> None:
    event = EDGES[1]
    resource = Resource.create({"service.name": "chargeback-test"})
    exporter = _exporter(f"InstrumentationKey={IKEY};IngestionEndpoint=http://127.0.0.1:9/")
    theirs = exporter._log_to_envelope(_record(event, resource))
    ours: Any = EnvelopeWriter(IKEY, exporter_tags(resource), "chargeback.events", None).envelope(
        event
    )
    # The statistics read what they are given by its attributes (``envelope.data.base_type``).
    assert _get_telemetry_type(ours) == _get_telemetry_type(theirs) == "CUSTOM_EVENT"


EVENTS = [
    ChargebackEvent(datetime(2026, 11, 20, 10, tzinfo=UTC), {"RequestId": f"r{i}"}, {"T": 1.0})
    for i in range(4)
]


@pytest.mark.parametrize("answer", ["ok", "206", "503", "429", "500", "400", "402", "439"])
def test_the_answer_is_read_as_the_exporter_reads_it(answer: str) -> None:
    """The same answer to the same events gives the same result through the exporter's
    ``export`` and through ``export_envelopes``, one request each."""
    resource = Resource.create({"service.name": "chargeback-test"})
    results = []
    for ours in (False, True):
        ingestion = FaultyIngestion(None, lambda _n: answer)
        with serve(ingestion) as connection:
            if ours:
                exporter = EnvelopeExporter(
                    connection_string=connection,
                    disable_offline_storage=True,
                    max_envelopes_per_second=0,
                    retry_total=0,
                )
                writer = EnvelopeWriter(IKEY, exporter_tags(resource), "chargeback.events", None)
                results.append(exporter.export_envelopes(writer.batch(EVENTS)))
            else:
                exported = _exporter(connection).export([_record(e, resource) for e in EVENTS])
                results.append(exported)
        assert ingestion.requests == [answer]
    assert results[0] == results[1]
    assert (results[1].name == "SUCCESS") == (answer == "ok")


class _Credential:
    """A token credential (``get_token``) that hands out a known token: the managed identity
    stands in for it in Azure."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken("token-of-the-identity", 4_102_444_800)


def _self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_the_envelopes_carry_the_credentials_bearer_token(tmp_path: Path) -> None:
    """With a credential, the bytes go through the exporter's bearer token policy (which
    azure-core allows over HTTPS only): the endpoint sees the identity's token, asked for
    Azure Monitor's scope."""
    cert, key = _self_signed(tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    credential = _Credential()
    ingestion = FaultyIngestion(None)
    with serve(ingestion, tls) as connection:
        exporter = EnvelopeExporter(
            connection_string=connection,
            credential=credential,
            disable_offline_storage=True,
            max_envelopes_per_second=0,
            retry_total=0,
            connection_verify=str(cert),
        )
        resource = Resource.create({"service.name": "chargeback-test"})
        writer = EnvelopeWriter(IKEY, exporter_tags(resource), "chargeback.events", None)
        result = exporter.export_envelopes(writer.batch(EVENTS))
    assert result.name == "SUCCESS"
    assert ingestion.authorizations == ["Bearer token-of-the-identity"]
    assert credential.scopes == [("https://monitor.azure.com//.default",)]
    assert [e["data"]["baseData"]["properties"]["RequestId"] for e in ingestion.envelopes] == [
        "r0",
        "r1",
        "r2",
        "r3",
    ]
