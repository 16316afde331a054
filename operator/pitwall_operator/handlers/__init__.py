"""kopf handlers; importing this package registers them (`kopf run -m pitwall_operator`)."""

from pitwall_operator.handlers import kopf_handlers

__all__ = ["kopf_handlers"]
