"""The processor: each message of a batch through every stage, and an account of the batch.

receive → gateway message → OpenAI bodies → tokens → event. Every message ends as exactly one
of emitted, skipped (with a stated reason) or dead-lettered; one bad message never affects the
others. Transient sink failures are raised so that Event Hubs runs the batch again.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterable
from pathlib import Path

from chargeback.batches import BatchReport, Outcome
from chargeback.billing.identity import PayerResolver
from chargeback.billing.pricing import Pricing
from chargeback.bodies import Exchange, parse_exchange
from chargeback.emit import ChargebackEvent, EventSink, build_event
from chargeback.emit.deadletter import DeadLetter, DeadLetterSink
from chargeback.errors import (
    BadMessage,
    MessageTooLarge,
    TransientError,
    UnidentifiableMessage,
    UnknownModel,
)
from chargeback.gateway import GatewayCall, mask_identity, parse_gateway_message
from chargeback.gateway.resource_logs import (
    CATEGORY_LLM,
    GatewayIdentity,
    RecordError,
    RecordResult,
    Skipped,
    parse_resource_log_message,
)
from chargeback.receive import RawMessage
from chargeback.resource_logs import LogCall, is_resource_logs, log_call, not_billable
from chargeback.settings import Settings
from chargeback.tokens import (
    TokenCountCache,
    TokenCounts,
    estimate,
    plausible_counts,
    usage_from_api,
)
from chargeback.tokens.families import Tokenizers, counted_as, names_a_model

__all__ = ["Processor"]

log = logging.getLogger("chargeback")


class _Skip(Exception):
    """The call is not billable; the reason is stated in the batch report."""


class Processor:
    """Runs batches of raw messages through the stages into an event sink."""

    def __init__(
        self,
        settings: Settings,
        events: EventSink,
        dead_letters: DeadLetterSink,
        *,
        pricing: Pricing | None = None,
        token_counts: TokenCountCache | None = None,
    ):
        self.settings = settings
        self.events = events
        self.dead_letters = dead_letters
        # Shared by every batch this processor runs (several at once on the runtime's threads):
        # a conversation's history, re-sent on each turn, is tokenized once.
        self.token_counts = token_counts or TokenCountCache()
        # Loaded once here, never per message; a bad file raises ConfigurationError now.
        self.payers = PayerResolver.from_settings(settings)
        self.pricing = pricing or Pricing.from_settings(settings)
        self.tokenizers = Tokenizers.from_settings(settings)

    def process_batch(self, messages: Iterable[RawMessage]) -> BatchReport:
        """Process a batch, then send its events. Raises `TransientError` if delivery failed."""
        report = BatchReport()
        seen: set[str] = set()
        # This batch's events, delivered together at its end: held by this call alone, so
        # batches of other partitions running at once never send or drop them.
        events: list[ChargebackEvent] = []
        for position, raw in enumerate(messages):
            if is_resource_logs(raw.body):
                for outcome in self._process_records(raw, seen, events):
                    report.add(position, outcome)
            else:
                report.add(position, self._process_one(raw, seen, events))
        self.events.send(events)
        if log.isEnabledFor(logging.INFO):  # the summary counts every outcome four times
            log.info("chargeback batch: %s", report.summary())
        return report

    def _process_one(
        self, raw: RawMessage, seen: set[str], events: list[ChargebackEvent]
    ) -> Outcome:
        try:
            call = parse_gateway_message(raw, max_bytes=self.settings.max_message_bytes)
            if call.request_id in seen:
                return Outcome("skipped", "duplicate-in-batch", call.request_id)
            events.append(self._event_for(call))
            seen.add(call.request_id)
            return Outcome("emitted", "", call.request_id)
        except _Skip as skip:
            return Outcome("skipped", str(skip))
        except BadMessage as exc:
            return self._dead_letter(raw, exc.reason, str(exc))
        except TransientError:
            raise
        except Exception as exc:  # a bug must not lose the message either
            # Where, not what: an exception's text can quote the message (a key, a prompt).
            where = _where(exc)
            log.error("chargeback: unexpected %s on %s", where, raw.describe())
            return self._dead_letter(raw, "internal-error", where)

    def _process_records(
        self, raw: RawMessage, seen: set[str], events: list[ChargebackEvent]
    ) -> list[Outcome]:
        """A resource-log message, record by record: a bad record does not stop the others. Its
        dead letter is the whole message, byte for byte like every dead letter: replayed, its
        good records are emitted again and removed as duplicates by RequestId, as after any
        redelivery."""
        if len(raw.body) > self.settings.max_message_bytes:
            return [self._dead_letter(raw, MessageTooLarge.reason, _too_large(raw, self.settings))]
        try:
            records = parse_resource_log_message(raw.body)
        except BadMessage as exc:
            return [self._dead_letter(raw, exc.reason, str(exc))]
        return [self._record_outcome(raw, record, seen, events) for record in records]

    def _record_outcome(
        self, raw: RawMessage, record: RecordResult, seen: set[str], events: list[ChargebackEvent]
    ) -> Outcome:
        if isinstance(record, Skipped):  # a short reason, as for every skip; the sentence too
            reason = "llm-log-without-counts" if record.category == CATEGORY_LLM else None
            return Outcome("skipped", reason or f"category-{record.category}", detail=record.reason)
        if isinstance(record, RecordError):
            return self._dead_letter(
                raw, record.error.reason, _record_detail(record.index, record.error)
            )
        key = f"{record.correlation_id}|{type(record).__name__}"  # each half once per batch
        try:
            if key in seen:
                return Outcome("skipped", "duplicate-in-batch", record.correlation_id)
            if isinstance(record, GatewayIdentity) and (reason := not_billable(record)):
                return Outcome("skipped", reason, record.correlation_id)
            events.append(self._log_event(log_call(record, raw.enqueued_time)))
            seen.add(key)
            return Outcome("emitted", "", record.correlation_id)
        except BadMessage as exc:
            return self._dead_letter(raw, exc.reason, f"{record.correlation_id}: {exc}")
        except TransientError:
            raise
        except Exception as exc:  # a bug must not lose the record either
            where = _where(exc)
            log.error("chargeback: unexpected %s on %s", where, raw.describe())
            return self._dead_letter(raw, "internal-error", where)

    def _log_event(self, half: LogCall) -> ChargebackEvent:
        """One half of a call from API Management's resource logs (`chargeback.resource_logs`)."""
        extra = {**self.payers.dimensions(half.call), "LogCategory": half.category}
        if half.counts is None:  # the identity half: no tokens, so no price and no source
            counts = TokenCounts(0, 0, 0)
            extra["TokenSource"] = ""
            return build_event(half.call, half.exchange, counts, None, extra=extra)
        model = self.model_of(half.call, half.exchange)
        counts = plausible_counts(half.counts, model)  # the same usage rules as every source
        price_dims, cost = self.pricing.charge(model, half.exchange.deployment, counts)
        extra.update(price_dims)
        return build_event(half.call, half.exchange, counts, model, extra=extra, measurements=cost)

    def _dead_letter(self, raw: RawMessage, reason: str, detail: str) -> Outcome:
        self.dead_letters.put(DeadLetter(raw, reason, detail))
        log.warning("chargeback: dead-lettered %s: %s: %s", raw.describe(), reason, detail)
        return Outcome("dead-lettered", reason, detail=detail)

    def _event_for(self, call: GatewayCall) -> ChargebackEvent:
        if call.status_code is not None and not 200 <= call.status_code < 300:
            raise _Skip(f"status-{call.status_code}")
        if call.method and call.method.upper() != "POST":
            raise _Skip(f"method-{call.method.upper()}")
        # The policy's copy of usage is what the call is billed on (CONTRACTS §1a): with it,
        # what the model wrote is never counted, so it is not collected; with the policy's
        # model as well, nothing else the response holds is needed, and it is not decoded
        # (`parse_exchange` still tells whether it streams and whether it was cut).
        reported = None if call.event_tokens is not None else usage_from_api(call.usage)
        known = reported is not None
        exchange = parse_exchange(call, texts=not known, response=not (known and call.model))
        if exchange.operation is None and call.event_tokens is None:
            raise _Skip("not-billable-operation")
        model = self.model_of(call, exchange)
        counts = self._counts(call, exchange, model, reported)
        price_dims, cost = self.pricing.charge(model, exchange.deployment, counts)
        return build_event(
            call,
            exchange,
            counts,
            model,
            extra={**self.payers.dimensions(call), **price_dims},
            measurements=cost,
        )

    def model_of(self, call: GatewayCall, exchange: Exchange) -> str | None:
        """The model the response reported (the policy's copy of it when the response was not
        read); else the deployment's mapped or own name."""
        if exchange.response_model:
            # From the body, not the gateway: masked here like the gateway's own fields.
            return mask_identity(exchange.response_model)
        if call.model:
            return call.model
        mapping = self.settings.deployment_models
        for name in (exchange.deployment, _request_model(exchange)):
            if name and name in mapping:
                return mapping[name]
            if name and names_a_model(name):
                return mask_identity(name)
        return None

    def _counts(
        self, call: GatewayCall, exchange: Exchange, model: str | None, reported: TokenCounts | None
    ) -> TokenCounts:
        """The call's counts, from whichever source has them, as the usage rules allow them
        (`plausible_counts`: corrected and flagged, or `ImplausibleUsage`). ``reported``: the
        counts of the policy's copy of usage, if readable."""
        counts = self._measured(call, exchange, model, reported)
        return plausible_counts(counts, model, exchange.operation, exchange.request)

    def _measured(
        self, call: GatewayCall, exchange: Exchange, model: str | None, reported: TokenCounts | None
    ) -> TokenCounts:
        if call.event_tokens is not None:
            prompt, completion, total = call.event_tokens
            return TokenCounts(prompt, completion, total, source="event")
        # The policy's copy of usage is what the call is billed on (CONTRACTS §1a).
        reported = reported or usage_from_api(exchange.usage)
        if reported is not None:
            return reported
        counts = self._estimated(call, exchange, model)
        if call.usage or exchange.usage:
            # A usage object was there but held no readable counts: the estimate says so.
            counts = counts._replace(notes=(*counts.notes, "usage-unreadable"))
        return counts

    def _estimated(self, call: GatewayCall, exchange: Exchange, model: str | None) -> TokenCounts:
        cut = call.truncated or exchange.request_truncated or exchange.response_truncated
        if model is None:
            if cut:
                # The cut took what names the model; configuration cannot bring it back.
                raise UnidentifiableMessage("cut short before the model or deployment")
            raise UnknownModel(
                f"tokens must be estimated but deployment {exchange.deployment!r} names no known"
                " model: add it to CHARGEBACK_DEPLOYMENT_MODELS"
            )
        try:
            counts = estimate(
                exchange,
                counted_as(model, _request_model(exchange), exchange.deployment),
                image_url_policy=self.settings.image_url_policy,
                cache=self.token_counts,
                tokenizers=self.tokenizers,
            )
        except UnknownModel:
            if cut:
                raise UnidentifiableMessage("cut short before a known model name") from None
            raise
        if not cut:
            return counts
        if counts.total == 0 or (exchange.request is None and not exchange.choices):
            # Never bill a cut call from nothing (zero, or a bare overhead): neither its request
            # nor any of its response arrived.
            raise UnidentifiableMessage("cut short before anything that measures the call")
        notes = [*counts.notes, "message-truncated" if call.truncated else "body-truncated"]
        if call.truncated and call.response_body is None and exchange.operation != "embeddings":
            notes.append("response-missing")
        return counts._replace(notes=tuple(dict.fromkeys(notes)))


def _record_detail(index: int, error: BadMessage) -> str:
    text = str(error)
    return text if text.startswith("record ") else f"record {index}: {text}"


def _too_large(raw: RawMessage, settings: Settings) -> str:
    return (
        f"message is {len(raw.body)} bytes, over"
        f" CHARGEBACK_MAX_MESSAGE_BYTES={settings.max_message_bytes}"
    )


def _where(exc: BaseException) -> str:
    """``KeyError at tokens.py:123``: the exception's type and innermost frame, no message."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return type(exc).__name__
    last = frames[-1]
    return f"{type(exc).__name__} at {Path(last.filename).name}:{last.lineno}"


def _request_model(exchange: Exchange) -> str | None:
    model = (exchange.request or {}).get("model")
    return model if isinstance(model, str) else None
