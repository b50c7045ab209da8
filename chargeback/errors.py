"""The exception tree. What the processor does with each branch is the point of it::

    ChargebackError
    ├── ConfigurationError        an app setting is wrong: fail fast, naming the setting
    ├── UserError                 a mistake at the command line: one line saying what to do
    ├── BadMessage                this message can never be processed: record it, dead-letter it,
    │   │                         go on with the rest of the batch
    │   ├── MalformedMessage      not JSON, none of the contract's shapes, a field of a wrong type
    │   ├── MessageTooLarge       over CHARGEBACK_MAX_MESSAGE_BYTES
    │   ├── UnidentifiableMessage cut short before the fields that identify the call
    │   ├── UnknownModel          tokens must be estimated but no encoding is known for the model
    │   └── ImplausibleUsage      more tokens than one call to the model can hold: never priced,
    │                             kept for a person (chargeback.tokens.plausible)
    └── TransientError            the world, not the message: raise so Event Hubs retries the batch
        ├── TelemetryNotAccepted  Application Insights did not accept the batch's events
        └── DeadLetterUnavailable the dead-letter store could not be written

A bad message never raises out of the batch; a transient error always does, so the checkpoint
does not move past events that were not delivered.
"""

from __future__ import annotations

__all__ = [
    "BadMessage",
    "ChargebackError",
    "ConfigurationError",
    "DeadLetterUnavailable",
    "ImplausibleUsage",
    "MalformedMessage",
    "MessageTooLarge",
    "TelemetryNotAccepted",
    "TransientError",
    "UnidentifiableMessage",
    "UnknownModel",
    "UserError",
]


class ChargebackError(Exception):
    """Base of every error the processor raises on purpose."""


class ConfigurationError(ChargebackError):
    """An app setting is missing or wrong."""


class UserError(ChargebackError):
    """A mistake in how a command was run (a missing file, a bad value): `main` prints it as
    one line and exits 2; nothing the Function runs raises it."""


class BadMessage(ChargebackError):
    """The message can never be processed as it is; it is dead-lettered with this reason."""

    #: Short machine-readable reason, stored with the dead letter.
    reason = "bad-message"


class MalformedMessage(BadMessage):
    reason = "malformed"


class MessageTooLarge(BadMessage):
    reason = "too-large"


class UnidentifiableMessage(BadMessage):
    reason = "unidentifiable"


class UnknownModel(BadMessage):
    reason = "unknown-model"


class ImplausibleUsage(BadMessage):
    reason = "implausible-usage"


class TransientError(ChargebackError):
    """A sink failed in a way a retry can fix: raised so that Event Hubs runs the batch again."""


class TelemetryNotAccepted(TransientError):
    pass


class DeadLetterUnavailable(TransientError):
    pass
