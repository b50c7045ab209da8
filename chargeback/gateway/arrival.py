"""What every message's call goes through on arrival, whatever its shape: its time settled against
the time Event Hubs enqueued the message (`chargeback.gateway.timestamps.call_time`), and every
value shaped like a credential masked (`chargeback.gateway.masking`), so that no later stage,
event, dead-letter name or log line ever holds one."""

from __future__ import annotations

import dataclasses
import operator
from typing import Any

from chargeback.gateway.call import GatewayCall, Shape
from chargeback.gateway.masking import (
    looks_like_credential,
    mask_credentials_in,
    mask_identity,
    mask_request_id,
)
from chargeback.gateway.timestamps import call_time
from chargeback.receive import RawMessage

__all__ = ["on_arrival"]

_TIME_FIELD: dict[Shape, str] = {
    "v1": "timestamp",
    "usage-only": "Timestamp",
    "bodies": "eventTime",
}

#: The text fields that can reach an event, a skip reason or a dead letter's detail. The bodies
#: are read by the bodies stage and never copied out whole.
_IDENTITY = (
    "method",
    "operation_id",
    "api_id",
    "product_id",
    "subscription_id",
    "subscription_name",
    "user_id",
    "app_id",
    "business_unit",
    "end_user",
    "client_ip",
    "backend_id",
    "region",
    "response_content_type",
    "model",
)
_texts = operator.attrgetter("url", *_IDENTITY)
#: The ids the usage-only and bodies shapes are given (`_derived_id`) are ours, hashes of the
#: message, and already hold nothing of it.
_DERIVED_IDS: frozenset[Shape] = frozenset({"usage-only", "bodies"})
#: Whether a caller's fields (URL and identities, which repeat from call to call) hold a
#: credential: looked at once per distinct set, not once per message. Bounded in entries and in
#: the size of each (at most 4,096 of up to 2 KB); a race between batches of two partitions
#: costs one more look, never a wrong answer.
_VERDICTS: dict[tuple[str | None, ...], bool] = {}
_VERDICTS_LIMIT = 4096
_VERDICT_SIZE = 2048


def on_arrival(call: GatewayCall, raw: RawMessage) -> GatewayCall:
    """The call with its time settled against the enqueued time and every value shaped like a
    credential masked. The usual call costs a comparison, a dictionary look-up and a look at
    its request id, and is returned as it is."""
    moment, why = call_time(call.timestamp, raw.enqueued_time, _TIME_FIELD[call.shape])
    if why is not None:
        call = dataclasses.replace(
            call, timestamp=moment, reported_timestamp=call.timestamp, timestamp_adjusted=why
        )
    texts = _texts(call)
    verdict = _VERDICTS.get(texts)
    if verdict is None:
        joined = "\n".join(filter(None, texts))
        verdict = looks_like_credential(joined)
        if len(joined) <= _VERDICT_SIZE:
            if len(_VERDICTS) >= _VERDICTS_LIMIT:
                _VERDICTS.clear()
            _VERDICTS[texts] = verdict
    if verdict or (call.shape not in _DERIVED_IDS and looks_like_credential(call.request_id)):
        call = _masked(call)
    return call


def _masked(call: GatewayCall) -> GatewayCall:
    changes: dict[str, Any] = {name: mask_identity(getattr(call, name)) for name in _IDENTITY}
    if call.shape not in _DERIVED_IDS:
        changes["request_id"] = mask_request_id(call.request_id)
    changes["url"] = mask_credentials_in(call.url)
    return dataclasses.replace(call, **changes)
