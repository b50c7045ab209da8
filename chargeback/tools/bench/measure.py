"""Measuring what an invocation does against the least work, in one run.

The pipeline side is what the Function runs for each batch: `Processor.process_batch` with the
real `AzureMonitorSink`, which writes the batch's envelopes and sends them through the
exporter's transport to an ingestion endpoint on localhost (`chargeback.tools.bench.endpoint`,
in its own process: its parsing is not the Function's work), and waits for the answer. One sink
for a whole comparison, as the Function keeps one for its process; a fresh processor per
repetition, so that its token-count cache starts empty each time.

Times are CPU seconds of this process (``time.process_time``: the Function's work, whatever
else the machine runs) and wall seconds; the ratio is the median of the per-repetition ratios of
CPU time, the pipeline and the baseline run in turn.
"""

from __future__ import annotations

import gc
import logging
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from chargeback.tools.bench.baseline import BaselineBatch, run_baseline
from chargeback.tools.bench.mix import BATCH_SIZE

if TYPE_CHECKING:
    from chargeback.emit import EventSink
    from chargeback.receive import RawMessage

__all__ = [
    "Comparison",
    "PipelineRun",
    "as_raw",
    "compare",
    "quiet",
    "run_pipeline",
    "split_batches",
]


def quiet() -> None:
    # As the CLI does: outcomes are counted here, the processor's own log stays quiet; the
    # exporter logs each successful send at INFO.
    logging.getLogger("chargeback").addHandler(logging.NullHandler())
    logging.getLogger("azure").setLevel(logging.WARNING)


def as_raw(bodies: Sequence[bytes]) -> list[RawMessage]:
    from chargeback.receive import RawMessage

    return [
        RawMessage(body=body, partition="0", sequence_number=number)
        for number, body in enumerate(bodies)
    ]


def split_batches(messages: list[RawMessage]) -> list[list[RawMessage]]:
    return [messages[i : i + BATCH_SIZE] for i in range(0, len(messages), BATCH_SIZE)]


@dataclass
class PipelineRun:
    cpu: float
    wall: float
    outcomes: Counter[str]


def run_pipeline(batches: list[list[RawMessage]], sink: EventSink) -> PipelineRun:
    """The Function's processor, delivering to ``sink``, on every batch once. The sink (and its
    connection) lives as long as the Function's process; the processor is new, so that its
    token-count cache starts empty each time."""
    from chargeback.emit.deadletter import MemoryDeadLetters
    from chargeback.pipeline import Processor
    from chargeback.settings import load_settings

    processor = Processor(load_settings(), sink, MemoryDeadLetters())
    outcomes: Counter[str] = Counter()
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    for batch in batches:
        report = processor.process_batch(batch)
        outcomes.update(o.kind for o in report.outcomes)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return PipelineRun(cpu, wall, outcomes)


@dataclass
class Comparison:
    """Both sides' times, repetition by repetition."""

    pipeline_cpu: list[float] = field(default_factory=list)
    pipeline_wall: list[float] = field(default_factory=list)
    baseline_cpu: list[float] = field(default_factory=list)
    baseline_wall: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)

    @property
    def ratios(self) -> list[float]:
        return [p / b for p, b in zip(self.pipeline_cpu, self.baseline_cpu, strict=True)]

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)

    @property
    def pipeline(self) -> float:
        """The pipeline's median CPU seconds."""
        return statistics.median(self.pipeline_cpu)

    @property
    def baseline(self) -> float:
        return statistics.median(self.baseline_cpu)


def compare(
    pipeline: Callable[[], PipelineRun],
    baseline: Sequence[BaselineBatch] | None,
    repeat: int,
) -> Comparison:
    """``repeat`` repetitions of the pipeline and (when given) the baseline, in turn."""
    result = Comparison()
    for _ in range(max(1, repeat)):
        run = pipeline()
        result.pipeline_cpu.append(run.cpu)
        result.pipeline_wall.append(run.wall)
        result.outcomes = run.outcomes
        if baseline is not None:
            cpu, wall = run_baseline(baseline)
            result.baseline_cpu.append(cpu)
            result.baseline_wall.append(wall)
    return result
