"""PitWall's public API: the TrainingRun and RetrainPolicy models, the one source of the CRDs and docs.

The operator imports from here only; everything below is re-exported so module moves stay internal.
"""

from pitwall_api.common import (
    API_VERSION,
    GROUP,
    STATES,
    TERMINAL_STATES,
    VERSION,
    Condition,
    conditions_equal,
    derive_state,
    get_condition,
    is_terminal,
    is_true,
    make_condition,
    now_iso,
    quantity_value,
    set_condition,
)
from pitwall_api.errors import SpecError, field_path, format_errors
from pitwall_api.parsing import (
    parse_resource,
    parse_retrain_policy_spec,
    parse_retrain_policy_status,
    parse_training_run_spec,
    parse_training_run_status,
)
from pitwall_api.retrainpolicy import RetrainPolicySpec, RetrainPolicyStatus, duration_seconds
from pitwall_api.trainingrun import TrainingRunSpec, TrainingRunStatus, kueue_labels

__all__ = [
    "API_VERSION",
    "GROUP",
    "STATES",
    "TERMINAL_STATES",
    "VERSION",
    "Condition",
    "RetrainPolicySpec",
    "RetrainPolicyStatus",
    "SpecError",
    "TrainingRunSpec",
    "TrainingRunStatus",
    "conditions_equal",
    "derive_state",
    "duration_seconds",
    "field_path",
    "format_errors",
    "get_condition",
    "is_terminal",
    "is_true",
    "kueue_labels",
    "make_condition",
    "now_iso",
    "parse_resource",
    "parse_retrain_policy_spec",
    "parse_retrain_policy_status",
    "parse_training_run_spec",
    "parse_training_run_status",
    "quantity_value",
    "set_condition",
]
