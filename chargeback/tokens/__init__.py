"""Stage 4: the call's tokens. Reported usage wins; otherwise an estimate from the bodies with
the model's own encoding and its family's rules, flagged where the bodies cannot show what was
billed. Whatever the source, the counts then pass the usage rules (`plausible_counts`)."""

from chargeback.tokens.cache import TokenCountCache
from chargeback.tokens.encodings import (
    count_text,
    encoding_for_model,
    encoding_name_for_model,
    get_encoding,
)
from chargeback.tokens.estimate import estimate
from chargeback.tokens.plausible import plausible_counts
from chargeback.tokens.usage import TokenCounts, TokenSource, usage_from_api

__all__ = [
    "TokenCountCache",
    "TokenCounts",
    "TokenSource",
    "count_text",
    "encoding_for_model",
    "encoding_name_for_model",
    "estimate",
    "get_encoding",
    "plausible_counts",
    "usage_from_api",
]
