"""PitWall operator package.

`kopf run -m pitwall_operator` registers the TrainingRun and RetrainPolicy handlers: they are imported here only
when kopf is already loaded, so the trainer image (which imports `pitwall_api` and has
no kopf) never pulls the operator in. `kopf run -m pitwall_operator.handlers` works too.
"""

import sys

if "kopf" in sys.modules:
    from pitwall_operator import handlers  # noqa: F401 - registers every kopf handler
