"""Identity hygiene (`chargeback.gateway.masking`): a value shaped like a credential is masked on
arrival, in every identity field of every shape; other values pass untouched."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chargeback.bodies.routes import route
from chargeback.gateway import parse_gateway_message
from chargeback.gateway.masking import (
    _CREDENTIAL,
    looks_like_credential,
    mask_credentials_in,
    mask_identity,
    mask_key,
    mask_request_id,
)
from chargeback.receive import RawMessage
from tests.gateway.test_message import V1

KEY = "5e1f0a7c9b2d4e6f8a0b1c2d3e4f5a6b"  # an APIM subscription key: 32 hex digits
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjYW5hcnktdXNlciJ9.c2lnbmF0dXJlLWNhbmFyeQ"
OTHER_JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzb21lb25lLWVsc2UifQ.b3RoZXItc2lnbmF0dXJl"


def _token(value: str) -> str:
    return "token:" + hashlib.sha256(value.encode()).hexdigest()[:8] + "XXXX"


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        (KEY, "5e1f0a7cXXXX"),
        (KEY.upper(), "5E1F0A7CXXXX"),
        (f"key {KEY}", "key 5e1fXXXX"),
        (JWT, _token(JWT)),
        (f"Bearer {JWT}", _token(f"Bearer {JWT}")),
        ("bearer opaque-access-token-0123", _token("bearer opaque-access-token-0123")),
        ("xBearer opaque-access-token-0123", _token("xBearer opaque-access-token-0123")),
        ("Basic dXNlcjpwYXNzd29yZA==", _token("Basic dXNlcjpwYXNzd29yZA==")),
        ("api-key: 0f9e8d7c6b5a", "api-key:XXXX"),
        ("Ocp-Apim-Subscription-Key=abc", "Ocp-ApimXXXX"),
        ("https://acct.blob.core.windows.net/c/b?sv=2024-08-04&sig=AbC%2Fd", "https://XXXX"),
        ("AccountName=a;AccountKey=c2VjcmV0;EndpointSuffix=x", "AccountNXXXX"),
        ("sk-proj-abcdefghijklmnopqrstuvwx", "sk-proj-XXXX"),
    ],
)
def test_a_credential_shaped_identity_is_masked(value: str, masked: str) -> None:
    assert looks_like_credential(value)
    assert mask_identity(value) == masked
    assert mask_identity(masked) == masked  # a mask is no longer shaped like a credential


@pytest.mark.parametrize(
    "value",
    [
        "finance-chatbot",
        "Finance chatbot",
        "7e0a8c1d-5f3b-4a2e-9c7d-1b2e3f4a5b6c",  # an Entra ID app id: a GUID with dashes
        "6059b2d8a0b7c2127c6b1e5a",  # an APIM subscription id as the portal makes it: 24 hex
        "5f0c8a4e-0000-4000-8000-000000000001",  # APIM's context.RequestId
        "alice@contoso.com",
        "Key accounts",
        "Basic subscription",
        "Bearer of bad news",
        "monkey-design",
        "gpt-4o-mini-2024-07-18",
        "eyJ",
        "https://gw.contoso.com/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
        "0123456789abcdef0123456789abcdef0123456789",  # 42 hex digits: no key is that long
    ],
)
def test_other_values_pass_untouched(value: str) -> None:
    assert mask_identity(value) == value
    assert mask_request_id(value) == value
    assert mask_credentials_in(value) == value


def test_a_token_mask_tells_tokens_apart_and_holds_nothing_of_them() -> None:
    assert mask_key(JWT) != mask_key(OTHER_JWT)
    assert mask_key(JWT) == mask_key(JWT)
    for masked in (mask_key(JWT), mask_key(f"Bearer {JWT}")):
        assert masked is not None
        assert "eyJ" not in masked and "Bearer" not in masked


def test_a_credential_shaped_request_id_stays_unique_and_stable() -> None:
    first, again, other = mask_request_id(JWT), mask_request_id(JWT), mask_request_id(OTHER_JWT)
    assert first == again != other
    assert first == "masked:" + hashlib.sha256(JWT.encode()).hexdigest()[:24]
    assert mask_request_id(KEY) != mask_request_id(KEY[::-1])
    assert not looks_like_credential(first)


def test_credentials_inside_a_url_are_masked_in_place() -> None:
    url = (
        "https://gw/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
        f"&subscription-key={KEY}&sig=AbC%2Fdef"
    )
    masked = mask_credentials_in(url)
    assert masked == (
        "https://gw/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
        "&subscription-key=5e1f0a7cXXXX&sig=AbC%2FdeXXXX"
    )
    where = route(masked)
    assert (where.deployment, where.api_version) == ("gpt-4o", "2024-10-21")


IDENTITY = [
    "subscriptionId",
    "subscriptionName",
    "productId",
    "userId",
    "appId",
    "businessUnit",
    "endUser",
    "backendId",
    "region",
    "model",
    "method",
]
ATTRIBUTE = {
    "subscriptionId": "subscription_id",
    "subscriptionName": "subscription_name",
    "productId": "product_id",
    "userId": "user_id",
    "appId": "app_id",
    "businessUnit": "business_unit",
    "endUser": "end_user",
    "backendId": "backend_id",
}


def _parse(fields: dict[str, Any]) -> Any:
    return parse_gateway_message(RawMessage(json.dumps(fields).encode()), max_bytes=10**6)


@pytest.mark.parametrize("name", IDENTITY)
def test_every_v1_identity_field_is_masked_on_arrival(name: str) -> None:
    call = _parse({**V1, name: JWT})
    attribute = ATTRIBUTE.get(name, name)
    assert getattr(call, attribute) == _token(JWT)
    assert JWT not in repr(call) and "eyJhbGci" not in repr(call)
    # The slow path (another timestamp form) masks exactly as the fast one.
    assert _parse({**V1, name: JWT, "timestamp": "2026-11-20T10:00:00.123+00:00"}) == call


def test_the_subscription_key_behind_app_key_and_the_request_id_are_masked() -> None:
    call = _parse(
        {**V1, "subscriptionId": KEY, "requestId": JWT, "url": f"{V1['url']}&api-key={KEY}"}
    )
    assert (call.subscription_id, call.app_key) == ("5e1f0a7cXXXX", "5e1f0a7cXXXX")
    assert call.request_id == mask_request_id(JWT)
    assert call.url is not None and call.url.endswith("&api-key=5e1f0a7cXXXX")
    assert KEY[8:] not in repr(call)


def test_the_legacy_shapes_mask_their_key_and_operation() -> None:
    usage_only = _parse(
        {
            "Timestamp": "11/20/2026 10:00:00 AM",
            "ApiOperation": f"Bearer {JWT}",
            "AppKey": JWT,
            "PromptTokens": "1",
            "CompletionTokens": "1",
        }
    )
    assert usage_only.app_key == _token(JWT)
    assert usage_only.operation_id == _token(f"Bearer {JWT}")
    bodies = _parse({"eventTime": "2026-11-20T10:00:00Z", "appSubscriptionKey": KEY})
    assert bodies.app_key == "5e1f0a7cXXXX"


@settings(max_examples=2000, deadline=None)
@given(
    st.text(max_size=60)
    | st.from_regex(
        r"(.{0,5})(eyJ[A-Za-z0-9_-]{8,12}\.eyJ[A-Za-z0-9_-]{0,4}|[0-9a-fA-F]{30,34}"
        r"|(?i:bearer|basic) [A-Za-z0-9._-]{6,10}|(?i:api-key|sig|subscription_key) ?[:=]x?"
        r"|sk-[A-Za-z0-9_-]{18,22})(.{0,5})",
        fullmatch=True,
    )
)
def test_the_quick_look_never_misses_what_the_full_pattern_finds(text: str) -> None:
    assert looks_like_credential(text) == (_CREDENTIAL.search(text) is not None)
