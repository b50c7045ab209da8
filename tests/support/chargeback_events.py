"""The fixed set of calls the query pack, the report and the workbook are tested on.

Each call goes through the real path: gateway message -> Processor (identity map and price
table from tests/data/queries) -> AzureMonitorSink -> the local store over HTTP. One more row
is ingested as the exporter would send a sampled event (sampleRate 50, so itemCount 2).

The calls (prices per million tokens in EUR: gpt-4o 2 / cached 1 / output 8, gpt-4o-mini
0.5 / 0.25 / 2, o3 4 / 16):

========  ===========  =================  ==============================  ===================
call      day          who                model / deployment              cost
========  ===========  =================  ==============================  ===================
oct-1     2026-10-30   Finance chatbot    gpt-4o-2024-08-06 / gpt-4o      600*2+400*1+500*8
                       (appId)            1000 prompt, 400 cached, 500    = 0.0056
nov-1     2026-11-02   Finance chatbot    gpt-4o-mini-2024-07-18          2000*.5+1000*2
                                          (delivered twice: one call)     = 0.003
nov-2     2026-11-02   Campaign writer    o3-2025-04-16 (Responses)       1000*4+3000*16
                       (subscriptionId)   3000 output incl. 2000 reasoning= 0.052
nov-3     2026-11-03   rogue-sub          gpt-4o, 100 + 100               = 0.001, unassigned
                       (unmapped)
nov-4     2026-11-03   Campaign writer    mystery-model-1 (no price)      0, Priced=false
nov-5     2026-11-04   Finance chatbot    ptu-gpt-4o (provisioned)        0, 3000 + 1000
nov-6     2026-11-05   Research agent     ptu-gpt-4o (provisioned)        0, 1000 + 1000
                       (productId)
nov-7     2026-11-05   Legal helper       gpt-4o, estimated from bodies   by the tokenizer
                       (gateway BU)
nov-8     2026-11-06   Campaign writer    gpt-4o-mini, response cut short 100*.5+20*2 = 0.00009
sampled   2026-11-06   Campaign writer    gpt-4o-mini, itemCount 2        2 x 0.00009
========  ===========  =================  ==============================  ===================
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chargeback.emit import AzureMonitorSink
from chargeback.emit.deadletter import MemoryDeadLetters
from chargeback.local.store import LocalStore
from chargeback.pipeline import Processor
from chargeback.receive import RawMessage
from chargeback.settings import Settings, load_settings

DATA = Path(__file__).resolve().parents[1] / "data" / "queries"
PRICES = DATA / "prices.json"
IDENTITY_MAP = DATA / "identity-map.json"

FINANCE = {
    "appId": "app-finance-bot",
    "subscriptionId": "sub-fin",
    "subscriptionName": "Finance sub",
    "productId": "finance",
}
MARKETING = {
    "subscriptionId": "sub-mkt-writer",
    "subscriptionName": "Writer sub",
    "productId": "marketing",
}
RESEARCH = {
    "subscriptionId": "sub-rnd",
    "subscriptionName": "Research agent",
    "productId": "research",
}
ROGUE = {"subscriptionId": "rogue-sub"}
LEGAL = {"subscriptionId": "sub-legal", "subscriptionName": "Legal helper", "businessUnit": "legal"}


def message(
    n: int,
    day: str,
    who: dict[str, str],
    deployment: str,
    *,
    model: str | None = None,
    usage: dict[str, Any] | None = None,
    path: str = "chat/completions",
    request: dict[str, Any] | None = None,
    response: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "version": 1,
        "requestId": f"req-{n:04d}",
        "timestamp": f"{day}T10:00:00.000Z",
        "method": "POST",
        "url": f"https://gw.example/openai/deployments/{deployment}/{path}?api-version=2024-10-21",
        "statusCode": 200,
        **who,
        "responseContentType": "application/json",
    }
    if model:
        body["model"] = model
    if usage:
        body["usage"] = usage
    body["requestBody"] = json.dumps(request or {"messages": [{"role": "user", "content": "hi"}]})
    if response is not None:
        body["responseBody"] = response
    return body


def chat_usage(prompt: int, completion: int, cached: int = 0) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def batches() -> list[list[dict[str, Any]]]:
    nov1 = message(
        2,
        "2026-11-02",
        FINANCE,
        "gpt-4o-mini",
        model="gpt-4o-mini-2024-07-18",
        usage=chat_usage(2000, 1000),
    )
    first = [
        message(
            1,
            "2026-10-30",
            FINANCE,
            "gpt-4o",
            model="gpt-4o-2024-08-06",
            usage=chat_usage(1000, 500, cached=400),
        ),
        nov1,
        message(
            3,
            "2026-11-02",
            MARKETING,
            "o3",
            model="o3-2025-04-16",
            path="responses",
            request={"input": "think"},
            usage={
                "input_tokens": 1000,
                "output_tokens": 3000,
                "total_tokens": 4000,
                "output_tokens_details": {"reasoning_tokens": 2000},
            },
        ),
        message(
            4, "2026-11-03", ROGUE, "gpt-4o", model="gpt-4o-2024-11-20", usage=chat_usage(100, 100)
        ),
        message(
            5,
            "2026-11-03",
            MARKETING,
            "mystery",
            model="mystery-model-1",
            usage=chat_usage(500, 500),
        ),
        message(
            6,
            "2026-11-04",
            FINANCE,
            "ptu-gpt-4o",
            model="gpt-4o-2024-08-06",
            usage=chat_usage(3000, 1000),
        ),
        message(
            7,
            "2026-11-05",
            RESEARCH,
            "ptu-gpt-4o",
            model="gpt-4o-2024-08-06",
            usage=chat_usage(1000, 1000),
        ),
        message(
            8,
            "2026-11-05",
            LEGAL,
            "gpt-4o",
            request={"messages": [{"role": "user", "content": "Hello, how are you?"}]},
            response=json.dumps(
                {
                    "model": "gpt-4o-2024-08-06",
                    "object": "chat.completion",
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": "Fine, thanks."}}
                    ],
                }
            ),
        ),
        message(
            9,
            "2026-11-06",
            MARKETING,
            "gpt-4o-mini",
            model="gpt-4o-mini-2024-07-18",
            usage=chat_usage(100, 20),
            response='{"model": "gpt-4o-mini-2024-07-18", "choices": [{"message": {"content": "cut',
        ),
    ]
    # Event Hubs redelivers nov-1 in a later batch: the store holds it twice.
    return [first, [nov1]]


def settings() -> Settings:
    return load_settings(
        prices_file=PRICES,
        identity_map_file=IDENTITY_MAP,
        provisioned_deployments=frozenset({"ptu-gpt-4o"}),
    )


def sampled_envelope() -> dict[str, Any]:
    """An event as the exporter sends it when sampling kept 1 in 2 (itemCount 2)."""
    return {
        "name": "Microsoft.ApplicationInsights.Event",
        "time": "2026-11-06T11:00:00.000Z",
        "sampleRate": 50.0,
        "iKey": "00000000-0000-0000-0000-000000000000",
        "tags": {"ai.cloud.role": "chargeback-processor"},
        "data": {
            "baseType": "EventData",
            "baseData": {
                "ver": 2,
                "name": "Azure OpenAI Tokens",
                "properties": {
                    "RequestId": "req-sampled",
                    "Timestamp": "2026-11-06T11:00:00.000Z",
                    "ApiOperation": "chat.completion",
                    "Deployment": "gpt-4o-mini",
                    "Model": "gpt-4o-mini-2024-07-18",
                    "TokenSource": "usage",
                    "Truncated": "false",
                    "Application": "Campaign writer",
                    "BusinessUnit": "marketing",
                    "CostCenter": "CC-2040",
                    "IdentitySource": "subscriptionId",
                    "Billing": "paygo",
                    "Priced": "true",
                    "Currency": "EUR",
                    "PriceVersion": "test-prices-1",
                    "DeploymentType": "GlobalStandard",
                },
                "measurements": {
                    "PromptTokens": 100.0,
                    "CompletionTokens": 20.0,
                    "TotalTokens": 120.0,
                    "CachedTokens": 0.0,
                    "ReasoningTokens": 0.0,
                    "Cost": 0.00009,
                },
            },
        },
    }


def fill(store: LocalStore) -> None:
    sink = AzureMonitorSink(store.connection_string)
    try:
        processor = Processor(settings(), sink, MemoryDeadLetters())
        for batch in batches():
            raws = [
                RawMessage(json.dumps(m).encode(), sequence_number=i) for i, m in enumerate(batch)
            ]
            report = processor.process_batch(raws)
            assert report.emitted == len(batch), report.reasons()
    finally:
        sink.close()
    store.ingest([sampled_envelope()])
