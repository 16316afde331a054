"""kopf handlers; importing this package registers them all.

Both entry points load every handler: `kopf run -m pitwall_operator` (the image) and
`python -m pitwall_operator` (the sandbox and `make demo`).
"""

from pitwall_operator.handlers import retrainpolicy, trainingrun

__all__ = ["retrainpolicy", "trainingrun"]
