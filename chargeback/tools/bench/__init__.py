"""``python -m chargeback bench``: what the Function spends against the work it cannot avoid
(`run`), on mixes of recorded exchanges (`mix`), measured in `measure`."""

from chargeback.tools.bench.corpus import load_corpus
from chargeback.tools.bench.mix import (
    Sample,
    build_mix,
    conversation_mix,
    large_batch,
    small_mix,
)
from chargeback.tools.bench.policy import policy_message
from chargeback.tools.bench.run import run

__all__ = [
    "Sample",
    "build_mix",
    "conversation_mix",
    "large_batch",
    "load_corpus",
    "policy_message",
    "run",
    "small_mix",
]
