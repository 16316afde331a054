"""What crosses between the operator and the trainer, defined once.

The operator writes these names into the pods it builds and reads the trainer's results back;
the trainer reads the same names. Both import them from here and never from each other
(docs/design.md, "Who may import whom").
"""

from __future__ import annotations

GROUP = "pitwall.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
TRAININGRUN_KIND, TRAININGRUN_PLURAL = "TrainingRun", "trainingruns"
RETRAINPOLICY_KIND, RETRAINPOLICY_PLURAL = "RetrainPolicy", "retrainpolicies"

# Labels and annotations on what the operator creates.
RUN_LABEL = f"{GROUP}/training-run"
POLICY_LABEL = f"{GROUP}/retrain-policy"
TRIGGER_LABEL = f"{GROUP}/trigger"

# Environment the operator sets on trainer pods (a TrainingRun may not set them: RESERVED_ENV).
RUN_NAME_ENV = "PITWALL_TRAININGRUN_NAME"  # the run whose status the trainer reports to
RUN_NAMESPACE_ENV = "PITWALL_TRAININGRUN_NAMESPACE"
RUN_UID_ENV = "PITWALL_TRAININGRUN_UID"  # tags the MLflow run; the promotion lease's holder identity
PROMOTION_LEASE_ENV = "PITWALL_PROMOTION_LEASE"  # the Lease serialising promotions in the namespace
TERMINATION_LOG_ENV = "PITWALL_TERMINATION_LOG"
POLICY_NAME_ENV = "PITWALL_RETRAINPOLICY_NAME"  # the monitoring Job's RetrainPolicy
POLICY_NAMESPACE_ENV = "PITWALL_RETRAINPOLICY_NAMESPACE"
RAY_JOIN_ENV = "PITWALL_RAY_JOIN"  # "1" on a Ray driver pod: join the cluster as a 0-CPU node first
POD_IP_ENV = "PITWALL_POD_IP"  # that node's address (the pod's IP); Ray guesses it otherwise
OPTUNA_STORAGE_ENV = "PITWALL_OPTUNA_STORAGE"  # from spec.tuning.optuna.storageSecretRef
DATA_DIR_ENV = "PITWALL_DATA_DIR"  # where the Ergast tables are (the data volume in a pod)
CACHE_DIR_ENV = "PITWALL_CACHE_DIR"  # feature and fetch caches

# Ray's own authentication (set from the run's token Secret; reserved as well).
RAY_AUTH_ENV = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")

RESERVED_ENV = frozenset({
    RUN_NAME_ENV, RUN_NAMESPACE_ENV, RUN_UID_ENV, PROMOTION_LEASE_ENV, TERMINATION_LOG_ENV,
    POLICY_NAME_ENV, POLICY_NAMESPACE_ENV, *RAY_AUTH_ENV,
})

# Where the trainer writes its result (TrainerResult as JSON) for the kubelet to keep.
TERMINATION_LOG = "/dev/termination-log"
TERMINATION_LIMIT = 4096  # bytes the kubelet keeps of a termination message

# Trainer exit codes: the Job's podFailurePolicy fails fast on EXIT_BAD_INPUT.
EXIT_OK = 0
EXIT_RETRYABLE = 1  # MLflow down, a crash: worth another pod
EXIT_BAD_INPUT = 2  # bad spec or bad data: another pod would fail the same way

# The MLflow run tag naming the TrainingRun uid that trained a version.
MLFLOW_RUN_UID_TAG = "pitwall.training_run_uid"

# The primary metric of each model: promotion compares it when a spec names none.
PRIMARY_METRIC = {"race_winner": "top1_accuracy", "quali_order": "ndcg_at_10", "pit_window": "mae_laps"}
