"""Stage 3: a call's OpenAI request and response bodies (JSON or server-sent events) as one
`Exchange`: the operation, the deployment, the model, the usage the API reported, and what the
model wrote, for when the tokens must be counted."""

from chargeback.bodies.exchange import Choice, Exchange
from chargeback.bodies.parse import parse_exchange
from chargeback.bodies.routes import Operation, Route, route
from chargeback.bodies.streams import response_cut

__all__ = ["Choice", "Exchange", "Operation", "Route", "parse_exchange", "response_cut", "route"]
