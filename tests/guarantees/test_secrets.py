"""Issue #5, point 7: messages carrying subscription keys, bearer tokens and Authorization
headers, and prompts and completions, go through the real exporter and the real dead-letter
store; no key, token or text is in any envelope sent to the ingestion endpoint, in any blob's
name or metadata, in any outcome detail, or in the processor's log. (A dead letter's body is
the original message byte for byte, by design: that is what replay needs.)

Issue #16: the same for a misconfigured policy that puts a credential where an identity belongs
(a JWT in ``endUser``, ``userId``, ``appId`` or ``requestId``, a key in ``subscriptionName``, a
SAS in ``backendId``, an ``api-key`` in ``businessUnit``, a bearer value in ``AppKey``): each is
masked on arrival, whether the message is emitted or dead-lettered."""

from __future__ import annotations

import json
import logging
import re
import uuid
from typing import Any

import pytest
from azure.storage.blob import ContainerClient

from chargeback.emit import AzureMonitorSink
from chargeback.emit.deadletter import BlobDeadLetters
from chargeback.pipeline import Processor
from chargeback.receive import RawMessage
from chargeback.settings import Settings
from tests.support.accounting import assert_accounted
from tests.support.ingestion import FaultyIngestion, serve
from tests.support.messages import v1_fields
from tests.support.services import Azurite

KEY = "5e1f0a7c9b2d4e6f8a0b1c2d3e4f5a6b"  # an APIM subscription key's shape
API_KEY = "0f9e8d7c6b5a49382716aabbccddeeff"
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjYW5hcnktdXNlciJ9.c2lnbmF0dXJlLWNhbmFyeQ"
SAS = "sv=2024-08-04&sr=b&sig=S4SCanarySignature%2Bq0wXyZ%3D"
PROMPT = "PROMPT-CANARY the quarterly numbers are confidential"
COMPLETION = "COMPLETION-CANARY here is the confidential summary"
SECRETS = [
    KEY,
    KEY[8:],
    API_KEY,
    API_KEY[8:],
    JWT,
    "Bearer",
    "eyJhbGci",
    "S4SCanarySignature",
    API_KEY[8:],
    PROMPT,
    COMPLETION,
    "PROMPT-CANARY",
    "COMPLETION-CANARY",
    "confidential",
]


def _messages(records: list[dict[str, Any]]) -> list[bytes]:
    record = next(r for r in records if r["endpoint"] == "chat" and not r["stream"] and r["usage"])
    request = {
        **record["request"],
        "messages": [{"role": "user", "content": PROMPT}],
        "api_key": API_KEY,
    }
    response = json.loads(record["response_text"])
    response["choices"][0]["message"]["content"] = COMPLETION
    headers = {
        "Authorization": f"Bearer {JWT}",
        "Ocp-Apim-Subscription-Key": KEY,
        "api-key": API_KEY,
    }
    v1 = v1_fields(
        record,
        "secret-1",
        headers=headers,
        url=f"https://gw/openai/v1/chat/completions?subscription-key={KEY}",
        requestBody=json.dumps(request),
        responseBody=json.dumps(response),
    )
    stream = v1_fields(
        record,
        "secret-2",
        usage=False,
        requestBody=json.dumps(request),
        responseBody="data: "
        + json.dumps(
            {
                "object": "chat.completion.chunk",
                "model": "gpt-4o-mini",
                "choices": [{"index": 0, "delta": {"content": COMPLETION}}],
            }
        )
        + "\n\ndata: [DONE]\n\n",
    )
    usage_only = {
        "Timestamp": "2026-11-20T10:00:00Z",
        "ApiOperation": "ChatCompletions_Create",
        "AppKey": KEY,
        "PromptTokens": "12",
        "CompletionTokens": "4",
    }
    bodies_shape = {
        "eventTime": "2026-11-20T10:00:00Z",
        "appSubscriptionKey": KEY,
        "request": json.dumps(request),
        "response": json.dumps(response),
    }
    # A policy that writes credentials where identities belong (issue 16).
    misplaced = [
        {**v1, "requestId": "misplaced-1", "endUser": JWT, "userId": f"Bearer {JWT}"},
        {**v1, "requestId": JWT, "appId": JWT, "subscriptionName": KEY},
        {**v1, "requestId": "misplaced-3", "backendId": SAS, "businessUnit": f"api-key={API_KEY}"},
        {**usage_only, "AppKey": f"Bearer {JWT}", "ApiOperation": JWT},
        {**v1, "requestId": "misplaced-5", "endUser": JWT, "usage": {"prompt_tokens": 10**15}},
        {**v1, "requestId": KEY, "appId": JWT, "timestamp": "13/20/2026 10:00:00"},
    ]
    bad = [
        {"Authorization": f"Bearer {JWT}", "prompt": PROMPT},  # no shape
        {"version": f"Bearer {JWT}"},  # a wrong version
        {**v1, "requestId": "bad-1", "statusCode": KEY},  # a wrong type
        {**v1, "requestId": KEY * 10},  # too long an id
        {**v1, "timestamp": f"{PROMPT} {JWT}"},  # not a time
        {**bodies_shape, "eventTime": KEY},
    ]
    whole = [
        json.dumps(m).encode() for m in (v1, stream, usage_only, bodies_shape, *misplaced, *bad)
    ]
    text = json.dumps(v1).encode()
    cut = [text[: text.index(b'"requestId"') + 20], text[: text.index(PROMPT.encode()) + 10]]
    return whole + cut + [b"\xff" + f"Authorization: Bearer {JWT}".encode()]


def test_no_secret_or_content_leaves_the_process(
    settings: Settings,
    records: list[dict[str, Any]],
    azurite: Azurite,
    caplog: pytest.LogCaptureFixture,
) -> None:
    container = ContainerClient.from_connection_string(
        azurite.connection_string, f"secrets-{uuid.uuid4().hex[:8]}"
    )
    ingestion = FaultyIngestion(store=None)
    bodies = _messages(records)
    with serve(ingestion) as connection, caplog.at_level(logging.DEBUG, logger="chargeback"):
        sink = AzureMonitorSink(connection)
        processor = Processor(settings, sink, BlobDeadLetters(container))
        report = processor.process_batch(RawMessage(b, "2", i) for i, b in enumerate(bodies))
        sink.close()
    assert_accounted(report, len(bodies))
    assert report.emitted == 8 and report.dead_lettered >= 8, report.reasons()
    assert report.reasons()["dead-lettered:implausible-usage"] == 1

    sent = "\n".join(ingestion.raw_bodies)
    assert len(ingestion.envelopes) == 8
    blobs = list(container.list_blobs(include=["metadata"]))
    assert len(blobs) == report.dead_lettered
    metadata = json.dumps([[b.name, b.metadata] for b in blobs])
    details = json.dumps([[o.reason, o.detail] for o in report.outcomes])
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for secret in SECRETS:
        assert secret not in sent, secret
        assert secret not in metadata, secret
        assert secret not in details, secret
        assert secret not in logged, secret
    # What is left of a misplaced token is its mask (gateway/masking.py), not nothing.
    assert re.search(r"\"EndUser\": ?\"token:", sent)
    # The masked key is all that is left of it (CONTRACTS §2).
    app_keys = {e["data"]["baseData"]["properties"].get("AppKey") for e in ingestion.envelopes}
    assert f"{KEY[:8]}XXXX" in app_keys
