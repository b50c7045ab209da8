"""Stage 2: an Event Hub message, in any of the input shapes of CONTRACTS §1, as `GatewayCall`."""

from chargeback.gateway.call import GatewayCall
from chargeback.gateway.masking import mask_identity, mask_key
from chargeback.gateway.message import parse_gateway_message
from chargeback.gateway.timestamps import parse_timestamp

__all__ = ["GatewayCall", "mask_identity", "mask_key", "parse_gateway_message", "parse_timestamp"]
