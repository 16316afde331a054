"""MLflow tracking, registry and promotion (aliases, never stages).

- Tracking URI: the argument, else ``$MLFLOW_TRACKING_URI``, else a local SQLite store at
  ``<cache_root()>/mlflow/mlflow.db`` (``$PITWALL_CACHE_DIR``, else ``~/.cache/pitwall``) with
  artifacts beside it in ``<cache_root()>/mlflow/artifacts``; never the plain file store. View it
  with ``mlflow ui --backend-store-uri sqlite:///$HOME/.cache/pitwall/mlflow/mlflow.db``. The
  model registry is always the tracking server itself.
Modules: tracking (the store, bounded calls, logging and registering), flavours (how an
estimator is logged), promotion (the alias and the champion).

- ``log_and_register`` logs one TrainResult as a run of the experiment ``pitwall-<model>`` and
  registers a version of ``pitwall-<model>``; ``promote`` moves the alias ``champion`` by policy
  and writes why as ``pitwall.promotion.*`` tags on the new version; ``champion_info`` reads the
  version under an alias (the retraining monitor uses it).
- An unreachable server raises ``RegistryUnavailable`` naming the URI after a few short retries
  (defaults below, each overridable by its ``MLFLOW_HTTP_REQUEST_*`` variable). A failure after
  the run was created marks the run FAILED and removes a half-made model version.
"""


from pitwall_api.trainingrun import DEFAULT_ALIAS

from pitwall_trainer.registry.flavours import choose_flavour
from pitwall_trainer.registry.promotion import champion_info, promote
from pitwall_trainer.registry.tracking import (
    ENV_DEFAULTS,
    NAME_PREFIX,
    POLICIES,
    RegistryError,
    RegistryUnavailable,
    check_reachable,
    default_tracking_uri,
    ensure_reachable,
    get_experiment_id,
    log_and_register,
    mlflow_call,
    mlflow_client,
    registered_name,
    resolve_tracking_uri,
)

__all__ = [
    "DEFAULT_ALIAS", "ENV_DEFAULTS", "NAME_PREFIX", "POLICIES", "RegistryError", "RegistryUnavailable",
    "champion_info", "check_reachable", "choose_flavour", "default_tracking_uri", "ensure_reachable",
    "get_experiment_id", "log_and_register", "mlflow_call", "mlflow_client", "promote", "registered_name",
    "resolve_tracking_uri",
]
