"""PitWall operator package.

`kopf run -m pitwall_operator` registers the TrainingRun handlers: they are imported here only
when kopf is already loaded, so the trainer image (which imports `pitwall_operator.api` and has
no kopf) never pulls the operator in. `kopf run -m pitwall_operator.handlers` works too.
"""

import sys

if "kopf" in sys.modules:
    from pitwall_operator import handlers  # noqa: F401 - registers the kopf handlers
    from pitwall_operator.handlers import retrainpolicy  # noqa: F401 - registers the RetrainPolicy handlers
