"""The completion side of an estimate: what the model wrote (text, tool calls, built-in tool
calls, visible reasoning) and the wrappers each family adds around a reply."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chargeback._values import as_list
from chargeback.tokens.cache import TokenCountCache
from chargeback.tokens.counting import Counting
from chargeback.tokens.request import forced_function, json_schema_format

if TYPE_CHECKING:
    from chargeback.bodies import Choice, Exchange
    from chargeback.tokens.families import Tokenizer

__all__ = ["CompletionCounter"]


class CompletionCounter(Counting):
    """Counts a reply's tokens (the completion side of the bill)."""

    def __init__(
        self, model: str, cache: TokenCountCache | None = None, tokenizer: Tokenizer | None = None
    ) -> None:
        super().__init__(model, cache, tokenizer)
        self.reasoning = 0  # reasoning tokens the body shows as text

    def count(self, exchange: Exchange) -> int:
        if exchange.operation == "embeddings":
            return 0
        responses = exchange.operation == "responses"
        overhead = self.rule.responses_reply if responses else self.rule.reply
        request = exchange.request or {}
        effort = request.get("reasoning_effort")
        if (
            not responses
            and effort in (None, "none")
            and self.rule.reply_without_effort is not None
        ):
            overhead = self.rule.reply_without_effort
        forced = forced_function(request)
        schema = 0
        if json_schema_format(request):
            tools = bool(as_list(request.get("tools")) or as_list(request.get("functions")))
            schema = self.rule.schema_reply if tools else self.rule.schema_reply_alone
        choices = exchange.choices.values()
        total = sum(self.reply(choice, overhead, forced, schema) for choice in choices)
        if responses and self.rule.responses_preamble:
            # Responses output items are choices by position; a message that is not the last
            # item is a preamble (phase "commentary") to what follows.
            last = max(exchange.choices, default=0)
            total += self.rule.responses_preamble * sum(
                1
                for index, choice in exchange.choices.items()
                if index != last and choice.text and not choice.tool_calls
            )
        hidden = sum(choice.hidden_reasoning for choice in choices)
        if hidden:
            total += hidden * self.rule.responses_reasoning_item
            if self.rule.reasoning_step:
                self.notes.append("reasoning-remainder-unseen")
        kinds = {kind for choice in choices for kind, _ in choice.builtin_calls}
        if "compaction" in kinds:  # the service's encrypted summary of the conversation
            self.notes.append("compaction-output")
        if kinds - {"compaction"}:
            self.notes.append("server-tool-output")
        return total

    def reply(self, choice: Choice, overhead: int, forced: bool, schema: int = 0) -> int:
        rule = self.rule
        per_call = rule.reply_call + (rule.reply_parallel_call if len(choice.tool_calls) > 1 else 0)
        total = self.text("".join(choice.text))
        if total and not choice.tool_calls:
            total += schema  # a structured-output text reply
        if forced and len(choice.tool_calls) == 1 and not total:
            # A named tool_choice puts the call's header in the prompt: the model writes only
            # the arguments and the end token (measured: record 49, 8 = 7 + 1).
            return self.text(choice.tool_calls[0][1]) + rule.forced_call
        for name, arguments in choice.tool_calls:
            total += per_call + self.text(name) + self.text(arguments)
        for kind, written in choice.builtin_calls:
            total += rule.builtin_call.get(kind, 0) + self.text(written)
        if choice.reasoning:
            reasoning = self.text("".join(choice.reasoning))
            self.reasoning += reasoning
            total += reasoning + rule.visible_reasoning
        return total + (overhead if total else 0)
