"""``python -m chargeback bench``: how close the processor runs to the work it cannot avoid
(`run`), on a mix of recorded exchanges (`mix`), measured in `measure`."""

from chargeback.tools.bench.measure import cold_start_child, memory_child
from chargeback.tools.bench.mix import Sample, build_mix, large_batch, load_corpus, policy_message
from chargeback.tools.bench.run import run

__all__ = [
    "Sample",
    "build_mix",
    "cold_start_child",
    "large_batch",
    "load_corpus",
    "memory_child",
    "policy_message",
    "run",
]
