"""Builds samples/gateway-messages.jsonl: the demo's gateway messages.

Real exchanges from ../shared/corpus (see its README for their origin), wrapped as the APIM
policy would send them, for several applications and business units; plus an Azure-style
stream built from the Azure OpenAI docs, one message of each legacy shape, a redelivered
duplicate, a throttled call and a malformed message. Run from the repo root:

    python samples/make_samples.py ../shared/corpus/recorded-exchanges.jsonl
"""

import json
import re
import sys
from pathlib import Path

APPS = {
    "finance": dict(
        subscriptionId="fin-chatbot-7f3a",
        subscriptionName="Finance chatbot",
        productId="finance",
        businessUnit="finance",
        appId="0b7e0a8c-finance-bot",
    ),
    "marketing": dict(
        subscriptionId="mkt-writer-91cc",
        subscriptionName="Campaign writer",
        productId="marketing",
        businessUnit="marketing",
        appId="5d2f-mkt-writer",
    ),
    "research": dict(
        subscriptionId="rnd-agent-20aa",
        subscriptionName="Research agent",
        productId="research",
        businessUnit="research",
        appId="9a41-rnd-agent",
    ),
}
PATHS = {"chat": "chat/completions", "embeddings": "embeddings", "responses": "responses"}


def without_usage(text: str) -> str:
    """The stream as an older api-version sends it: no usage chunk."""
    return "".join(
        block + "\n\n"
        for block in text.split("\n\n")
        if block.strip() and '"choices":[]' not in block
    )


def v1(n: int, app: str, record: dict, deployment: str, *, strip_usage: bool = False) -> dict:
    response = record["response_text"]
    if strip_usage:
        response = without_usage(response)
    request = dict(record["request"])
    if strip_usage:
        request.pop("stream_options", None)
    return {
        "version": 1,
        "requestId": f"5f0c8a4e-0000-4000-8000-{n:012d}",
        "timestamp": f"2026-11-{16 + n % 5:02d}T{9 + n % 8:02d}:15:00.000Z",
        "method": "POST",
        "url": f"https://gw.contoso.com/openai/deployments/{deployment}/"
        f"{PATHS[record['endpoint']]}?api-version=2024-10-21",
        "statusCode": record["status"],
        **APPS[app],
        "userId": "1",
        "endUser": f"user{n}@contoso.com",
        "backendId": "aoai-eastus",
        "region": "East US",
        "responseContentType": "text/event-stream" if record["stream"] else "application/json",
        "requestBody": json.dumps(request),
        "responseBody": response,
    }


def azure_stream(n: int) -> dict:
    """Azure's stream quirks, per the Azure OpenAI content filtering and streaming docs."""
    filters = {"hate": {"filtered": False, "severity": "safe"}}
    chunks = [
        {
            "choices": [],
            "created": 0,
            "id": "",
            "model": "",
            "object": "",
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": filters}],
        },
        *(
            {
                "choices": [{"delta": {"content": piece}, "finish_reason": None, "index": 0}],
                "model": "gpt-4o-2024-08-06",
                "object": "chat.completion.chunk",
                "usage": None,
            }
            for piece in ["Paris", " is", " the", " capital", " of", " France", "."]
        ),
        {
            "choices": [{"content_filter_results": filters, "finish_reason": None, "index": 0}],
            "model": "gpt-4o-2024-08-06",
            "object": "chat.completion.chunk",
            "usage": None,
        },
        {
            "choices": [],
            "model": "gpt-4o-2024-08-06",
            "object": "chat.completion.chunk",
            "usage": {
                "prompt_tokens": 14,
                "completion_tokens": 7,
                "total_tokens": 21,
                "prompt_tokens_details": {"cached_tokens": 0},
            },
        },
    ]
    body = "".join(f"data: {json.dumps(c)}\r\n\r\n" for c in chunks) + "data: [DONE]\r\n\r\n"
    request = {
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    return {
        **v1(
            n,
            "finance",
            {
                "request": request,
                "response_text": body,
                "endpoint": "chat",
                "status": 200,
                "stream": True,
            },
            "gpt-4o",
        )
    }


def main(corpus: str) -> None:
    records = [json.loads(line) for line in open(corpus, encoding="utf-8")]
    by_file = {}
    for record in records:
        by_file.setdefault(record["file"].rsplit("/", 1)[1], record)
    pick = lambda name: next(r for f, r in by_file.items() if re.fullmatch(name, f))  # noqa: E731
    messages = [
        v1(1, "finance", pick(r"test_azure_provider_call\.yaml"), "gpt-4o"),
        azure_stream(2),
        v1(3, "finance", pick(r"test_chat_completion_streaming\.yaml"), "gpt-4", strip_usage=True),
        v1(
            4,
            "marketing",
            pick(r"test_chat_completion_with_context_manager_streaming\.yaml"),
            "gpt-4o-mini",
        ),
        v1(
            5,
            "marketing",
            pick(r"test_run_stream_sync_streams_real_model\.yaml"),
            "gpt-4o-mini",
            strip_usage=True,
        ),
        v1(6, "marketing", pick(r"test_embeddings_with_dimensions\.yaml"), "embeddings-small"),
        v1(7, "research", pick(r".*default_wire_contract\[gpt-5\.4\]\.yaml"), "gpt-5.4"),
        v1(8, "research", pick(r"test_openai_responses_stream\.yaml"), "gpt-4o"),
    ]
    messages.append(dict(messages[0]))  # Event Hubs redelivers: the same requestId again
    throttled = dict(
        messages[3],
        requestId="5f0c8a4e-0000-4000-8000-000000000429",
        statusCode=429,
        responseBody='{"error":{"code":"429"}}',
    )
    messages.append(throttled)
    lines = [json.dumps(m) for m in messages]
    # The chargeback article's policy writes DateTime.UtcNow.ToString(): the gateway culture's
    # general date/time (en-US here), not ISO 8601.
    lines.append(
        json.dumps(
            {
                "Timestamp": "11/18/2026 12:00:00 PM",
                "ApiOperation": "ChatCompletions_Create",
                "AppKey": "hrkey-0123456789abcdef",
                "PromptTokens": "120",
                "CompletionTokens": "80",
                "TotalTokens": "200",
            }
        )
    )
    legal = pick(r"test_chat_completion_with_raw_response_streaming\.yaml")
    lines.append(
        json.dumps(
            {
                "eventTime": "2026-11-19T15:30:00Z",
                "apiOperation": "ChatCompletions_Create",
                "appSubscriptionKey": "legal-key-fedcba9876",
                "request": json.dumps(legal["request"]),
                "response": legal["response_text"],
            }
        )
    )
    lines.append('{"version": 1, "requestId": "broken", "timestamp": "2026-11-20T10:00:00Z", "url"')
    lines.append("this is not a gateway message")
    out = Path(__file__).with_name("gateway-messages.jsonl")
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(lines)} messages to {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/corpus/recorded-exchanges.jsonl")
