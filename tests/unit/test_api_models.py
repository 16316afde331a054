"""The API models: what the operator parses, the human errors it reports, the status helpers it reuses."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pitwall_api import (
    STATES,
    RetrainPolicySpec,
    SpecError,
    TrainingRunSpec,
    conditions_equal,
    derive_state,
    duration_seconds,
    get_condition,
    is_terminal,
    kueue_labels,
    make_condition,
    parse_resource,
    parse_retrain_policy_spec,
    parse_retrain_policy_status,
    parse_training_run_spec,
    parse_training_run_status,
    set_condition,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
T0, T1 = "2026-05-26T06:00:00Z", "2026-05-26T07:00:00Z"


def minimal(**extra) -> dict:
    return {"model": "race_winner", "data": {"seasons": [2024]}, **extra}


def errors(spec: dict) -> list[str]:
    with pytest.raises(SpecError) as caught:
        parse_training_run_spec(spec)
    return caught.value.messages


# --- examples ---------------------------------------------------------------------------------


def test_examples_parse_to_what_they_say():
    run = parse_resource(yaml.safe_load((EXAMPLES / "trainingrun.yaml").read_text()))
    assert isinstance(run, TrainingRunSpec)
    assert (run.model, run.algorithm, run.data.seasons) == ("race_winner", "logistic_regression", [2022, 2023, 2024])
    assert run.data.source is None  # the operator's default data claim
    assert run.resources.requests == {"cpu": "4", "memory": "8Gi"}
    assert run.resources.limits == {"cpu": "8", "memory": "16Gi"}
    assert run.run_policy.backoff_limit == 3

    tuned = parse_resource(yaml.safe_load((EXAMPLES / "trainingrun-tuned.yaml").read_text()))
    space = tuned.tuning.search_space
    assert tuned.tuning.engine == "ray" and tuned.tuning.num_samples == 100
    assert set(space) == {"n_estimators", "max_depth", "learning_rate", "subsample", "colsample_bytree",
                          "min_child_weight", "reg_alpha", "reg_lambda"}
    assert (space["max_depth"].type, space["max_depth"].low, space["max_depth"].high) == ("int", 3, 12)
    assert space["learning_rate"].type == "logfloat"
    sched = tuned.tuning.scheduler
    assert (sched.max_t, sched.grace_period, sched.reduction_factor) == (100, 10, 3)
    assert tuned.tuning.ray_cluster.workers == 2

    policy = parse_resource(yaml.safe_load((EXAMPLES / "retrainpolicy.yaml").read_text()))
    assert isinstance(policy, RetrainPolicySpec)
    assert policy.schedule == "0 6 * * 2"
    trig = policy.triggers
    assert trig.after_new_race.enabled
    assert (trig.performance_drift.threshold, trig.performance_drift.window_races) == (0.9, 5)
    assert (trig.data_drift.threshold, trig.data_drift.method) == (0.1, "psi")
    assert trig.new_data.min_samples == 20
    assert policy.template.spec.promotion.policy == "IfBetter"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("wrong-enum.yaml", "spec.model: 'race_loser' is not allowed; use one of 'race_winner', 'quali_order' or 'pit_window'"),
        ("low-above-high.yaml", "spec.tuning.searchSpace.max_depth: low (12) must be below high (3)"),
        ("unknown-field.yaml", "spec.data.seasonz: unknown field (check the spelling and indentation; see docs/api.md)"),
        ("negative-num-samples.yaml", "spec.tuning.numSamples: must be at least 1 (got -5)"),
    ],
)
def test_bad_examples_give_the_human_line(name, expected):
    with pytest.raises(SpecError) as caught:
        parse_resource(yaml.safe_load((EXAMPLES / "bad" / name).read_text()))
    assert expected in caught.value.messages
    assert expected in caught.value.message


# --- defaults and shapes ----------------------------------------------------------------------


def test_defaults():
    spec = parse_training_run_spec(minimal(tuning={"searchSpace": {"x": {"type": "float", "low": 0, "high": 1}}}))
    assert spec.algorithm == "logistic_regression" and spec.suspend is False
    assert spec.data.source is None  # the operator's configured default applies
    assert spec.tuning.engine == "optuna" and spec.tuning.num_samples == 20
    assert spec.run_policy is None and spec.promotion is None  # builders apply RunPolicy()/Promotion() defaults
    from pitwall_api.trainingrun import AshaScheduler, Notifications, Promotion, RunPolicy

    assert RunPolicy().backoff_limit == 3
    assert (Promotion().policy, Promotion().alias, Promotion().min_improvement) == ("IfBetter", "champion", 0.0)
    assert (AshaScheduler().max_t, AshaScheduler().grace_period, AshaScheduler().reduction_factor) == (None, 10, 3)  # maxT sized to the search space
    assert Notifications().events == ["Failed", "Regression"]
    policy = parse_retrain_policy_spec({"schedule": "0 6 * * 2", "template": {"spec": minimal()}})
    assert (policy.time_zone, policy.check_interval, policy.concurrency_policy) == ("UTC", "15m", "Forbid")
    assert (policy.successful_runs_history_limit, policy.failed_runs_history_limit) == (3, 1)


def test_snake_case_names_work_and_to_dict_gives_yaml_names():
    spec = TrainingRunSpec(model="pit_window", data={"seasons": [2023]}, run_policy={"backoff_limit": 0})
    out = spec.to_dict()
    assert out["runPolicy"]["backoffLimit"] == 0
    assert "run_policy" not in out and "tuning" not in out  # unset optionals left out
    assert parse_training_run_spec(out) == spec


def test_null_means_unset_as_on_the_server():
    spec = parse_training_run_spec(minimal(algorithm=None, tuning=None, runPolicy={"backoffLimit": None}))
    assert spec.algorithm == "logistic_regression" and spec.tuning is None and spec.run_policy.backoff_limit == 3


def test_round_trip_of_every_example():
    for path in EXAMPLES.glob("*.yaml"):
        body = yaml.safe_load(path.read_text())
        parsed = parse_resource(body)
        assert parse_resource({**body, "spec": parsed.to_dict()}) == parsed, path.name


def test_quantities_from_yaml_numbers_and_limits():
    spec = parse_training_run_spec(minimal(resources={"requests": {"cpu": 0.5, "memory": "8Gi"}, "limits": {"cpu": 4}}))
    assert spec.resources.requests["cpu"] == "0.5" and spec.resources.limits["cpu"] == "4"
    assert errors(minimal(resources={"requests": {"cpu": "4"}, "limits": {"cpu": "500m"}})) == [
        "spec.resources: requests.cpu (4) must not exceed limits.cpu (500m)"
    ]
    assert errors(minimal(resources={"limits": {"memory": "16GB"}})) == [
        "spec.resources.limits.memory: '16GB' is not a Kubernetes quantity (examples: 500m, 4, 8Gi, 1.5)"
    ]


@pytest.mark.parametrize(
    ("extra", "line"),
    [
        ({"data": {"seasons": [2024], "source": {}}}, "spec.data.source: set exactly one of pvc or fetch"),
        ({"data": {"seasons": [2024], "source": {"pvc": {"claimName": "d"}, "fetch": {}}}}, "spec.data.source: set exactly one of pvc or fetch"),
        ({"data": {"seasons": [2024, 2024]}}, "spec.data.seasons: season 2024 is listed twice"),
        ({"data": {"seasons": [1949]}}, "spec.data.seasons[0]: must be at least 1950 (got 1949)"),
        ({"data": {"seasons": []}}, "spec.data.seasons: too few items or characters (at least 1)"),
        ({"evaluation": {"holdoutRaces": 5, "holdoutSeason": 2024}}, "spec.evaluation: set holdoutRaces or holdoutSeason, not both"),
        ({"env": [{"name": "A", "value": "1", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}, "spec.env[0]: set value or valueFrom, not both"),
        ({"env": [{"name": "A", "valueFrom": {}}]}, "spec.env[0].valueFrom: set exactly one of secretKeyRef or configMapKeyRef"),
        ({"tolerations": [{"operator": "Exists", "value": "x"}]}, "spec.tolerations[0]: operator Exists takes no value"),
        ({"promotion": {"minImprovement": -0.1}}, "spec.promotion.minImprovement: must be at least 0 (got -0.1)"),
        ({"promotion": {"policy": "Sometimes"}}, "spec.promotion.policy: 'Sometimes' is not allowed; use one of 'IfBetter', 'Always' or 'Never'"),
        ({"runPolicy": {"backoffLimit": "three"}}, "spec.runPolicy.backoffLimit: must be a whole number (got 'three')"),
        ({"queueName": "Team A"}, "spec.queueName: 'Team A' does not match the pattern ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"),
    ],
)
def test_human_errors(extra, line):
    assert line in errors(minimal(**extra))


@pytest.mark.parametrize(
    ("param", "line"),
    [
        ({"type": "int", "low": 12, "high": 3}, "low (12) must be below high (3)"),
        ({"type": "float", "low": 0.5, "high": 0.5}, "low (0.5) must be below high (0.5)"),
        ({"type": "logfloat", "low": 0, "high": 1}, "logfloat needs low above 0 (got 0)"),
        ({"type": "categorical", "values": ["gbtree"], "low": 1}, "categorical takes values, not low/high"),
        ({"type": "float", "low": 0, "high": 1, "values": [1]}, "values are only for categorical; float takes low and high"),
        ({"type": "int", "low": 1}, "int needs both low and high"),
        ({"type": "int", "low": 1.5, "high": 3}, "int bounds must be whole numbers"),
        ({"type": "categorical", "values": [{"a": 1}]}, "categorical values must be strings, numbers or booleans, not {'a': 1}"),
        ({"type": "normal", "low": 0, "high": 1}, "'normal' is not allowed; use one of 'int', 'float', 'logfloat' or 'categorical'"),
    ],
)
def test_search_space_errors_name_the_parameter(param, line):
    messages = errors(minimal(tuning={"searchSpace": {"max_depth": param}}))
    prefix = "spec.tuning.searchSpace.max_depth"
    assert any(m.startswith(prefix) and m.endswith(line) for m in messages), messages


def test_tuning_cross_field_rules():
    space = {"x": {"type": "float", "low": 0, "high": 1}}
    assert errors(minimal(tuning={"engine": "optuna", "searchSpace": space, "rayCluster": {"workers": 1}})) == [
        "spec.tuning: rayCluster is only for engine ray"
    ]
    assert errors(minimal(tuning={"numSamples": 2, "maxConcurrentTrials": 4, "searchSpace": space})) == [
        "spec.tuning: maxConcurrentTrials (4) must not exceed numSamples (2)"
    ]
    assert errors(minimal(tuning={"searchSpace": {"max-depth": space["x"]}})) == [
        "spec.tuning.searchSpace: parameter name 'max-depth' must be a Python identifier such as max_depth"
    ]
    assert errors(minimal(tuning={"searchSpace": space, "scheduler": {"maxT": 5, "gracePeriod": 10}})) == [
        "spec.tuning.scheduler: gracePeriod (10) must not exceed maxT (5)"
    ]
    ok = parse_training_run_spec(minimal(tuning={"searchSpace": {"booster": {"type": "categorical", "values": ["gbtree", 3, True]}}}))
    assert ok.tuning.search_space["booster"].values == ["gbtree", 3, True]  # types kept, bool not turned into 1


def test_many_errors_at_once_and_missing_spec():
    messages = errors({"model": "x", "data": {"seasons": [1]}, "bogus": 1})
    assert messages[0].startswith("spec.model: 'x' is not allowed")
    assert "spec.bogus: unknown field (check the spelling and indentation; see docs/api.md)" in messages
    assert "spec.data.seasons[0]: must be at least 1950 (got 1)" in messages
    with pytest.raises(SpecError, match=r"^spec: required field is missing$"):
        parse_training_run_spec(None)
    with pytest.raises(SpecError, match="metadata.name"):
        parse_training_run_spec(minimal(), name="x" * 51)


def test_retrain_policy_errors_use_template_paths():
    def policy_errors(spec: dict) -> list[str]:
        with pytest.raises(SpecError) as caught:
            parse_retrain_policy_spec(spec)
        return caught.value.messages

    bad = policy_errors({"schedule": "every tuesday", "timeZone": "Mars/Olympus", "checkInterval": "5s",
                         "template": {"spec": minimal(model="winner")},
                         "triggers": {"performanceDrift": {"threshold": 1.5}}})
    assert "spec.template.spec.model: 'winner' is not allowed; use one of 'race_winner', 'quali_order' or 'pit_window'" in bad
    assert any(m.startswith("spec.schedule: 'every tuesday' does not match") for m in bad)
    assert "spec.timeZone: 'Mars/Olympus' is not an IANA time zone such as UTC or Europe/London" in bad
    assert "spec.checkInterval: '5s' is too short; use at least 10s" in bad
    assert "spec.triggers.performanceDrift.threshold: must be at most 1 (got 1.5)" in bad
    for cron in ("0 6 * * 2", "0 6 * * TUE", "*/15 * * * *", "@weekly"):
        assert parse_retrain_policy_spec({"schedule": cron, "template": {"spec": minimal()}}).schedule == cron


def test_policy_without_schedule_or_triggers_is_rejected():
    with pytest.raises(SpecError) as caught:
        parse_retrain_policy_spec({"template": {"spec": minimal()}})
    assert caught.value.messages == ["spec: set a schedule, triggers, or both"]


def test_duration_seconds():
    assert duration_seconds("15m") == 900
    assert duration_seconds("1h30m") == 5400
    assert duration_seconds("45s") == 45
    with pytest.raises(ValueError):
        duration_seconds("")
    with pytest.raises(ValueError):
        duration_seconds("15 minutes")


def test_kueue_labels():
    spec = parse_training_run_spec(minimal(queueName="team-a"))
    labels = {"kueue.x-k8s.io/queue-name": "old", "kueue.x-k8s.io/priority-class": "high", "app": "x"}
    assert kueue_labels(spec, labels) == {"kueue.x-k8s.io/queue-name": "team-a", "kueue.x-k8s.io/priority-class": "high"}
    assert kueue_labels(parse_training_run_spec(minimal()), None) == {}


# --- conditions and state ---------------------------------------------------------------------


def test_set_condition_keeps_transition_time_unless_status_flips():
    conds = set_condition([], "Running", True, "JobCreated", "Job race-winner-train created", 1, now=T0)
    assert conds == [{"type": "Running", "status": "True", "reason": "JobCreated",
                      "message": "Job race-winner-train created", "lastTransitionTime": T0, "observedGeneration": 1}]
    same = set_condition(conds, "Running", "True", "TrainerRunning", "epoch 3", 2, now=T1)
    assert same[0]["lastTransitionTime"] == T0 and same[0]["reason"] == "TrainerRunning"
    assert same[0]["observedGeneration"] == 2
    flipped = set_condition(same, "Running", False, "Completed", now=T1)
    assert flipped[0]["lastTransitionTime"] == T1 and flipped[0]["status"] == "False"
    assert conds[0]["reason"] == "JobCreated"  # input untouched
    more = set_condition(flipped, "Succeeded", True, "TrainerSucceeded", now=T1)
    assert [c["type"] for c in more] == ["Running", "Succeeded"]
    assert get_condition(more, "Succeeded")["status"] == "True" and get_condition(more, "Failed") is None
    assert conditions_equal(more, list(reversed(more)))
    assert not conditions_equal(more, flipped)
    assert make_condition("Failed", True, "ValidationFailed", "x" * 40000, now=T0)["message"] == "x" * 32768
    with pytest.raises(ValueError, match="CamelCase"):
        set_condition([], "Failed", True, "validation failed")


@pytest.mark.parametrize(
    ("true_types", "state"),
    [
        ([], "Pending"),
        (["Running"], "Running"),
        (["Suspended"], "Suspended"),
        (["Running", "Suspended"], "Suspended"),
        (["Running", "Succeeded", "ModelRegistered", "Promoted"], "Succeeded"),
        (["Succeeded", "ModelRegistered"], "Succeeded"),
        (["Running", "Failed"], "Failed"),
        (["ModelRegistered"], "Pending"),
    ],
)
def test_derive_state(true_types, state):
    conds: list = []
    for t in ("Running", "Succeeded", "Failed", "Suspended", "ModelRegistered", "Promoted"):
        conds = set_condition(conds, t, t in true_types, "Test", now=T0)
    assert derive_state(conds) == state and state in STATES
    assert is_terminal(conds) == (state in {"Succeeded", "Failed"})


def test_a_resumed_run_is_not_suspended():
    """Kubeflow Trainer #3666: the last condition was Suspended=False and the column still said Suspended."""
    conds = set_condition([], "Running", True, "JobRunning", now=T0)
    conds = set_condition(conds, "Suspended", False, "Resumed", now=T1)
    assert derive_state(conds) == "Running"


# --- status ----------------------------------------------------------------------------------


def test_partial_status_parses_and_keeps_kopf_bookkeeping():
    status = parse_training_run_status({
        "progress": {"percent": 42.6, "bestMetric": 0.58, "etaSeconds": 12.4},
        "kopf": {"progress": {"create_fn": {"started": "2026-05-26T06:00:00", "retries": 0}}, "dummy": "x"},
        "somethingNew": 1,
    })
    assert status.progress.percent == 43 and status.progress.eta_seconds == 12
    assert status.kopf["progress"]["create_fn"]["retries"] == 0
    assert parse_training_run_status(None).state is None
    full = parse_training_run_status({
        "state": "Succeeded", "observedGeneration": 2, "startTime": T0, "completionTime": T1,
        "conditions": [make_condition("Succeeded", True, "TrainerSucceeded", now=T1)],
        "metrics": {"top1_accuracy": 0.58}, "baselines": {"pole_sitter.top1_accuracy": 0.5},
        "mlflow": {"runId": "abc", "modelVersion": "7"}, "promotion": {"promoted": True, "version": "7"},
    })
    assert full.to_dict()["promotion"] == {"promoted": True, "version": "7"}
    assert full.to_dict()["completionTime"] == T1
    policy = parse_retrain_policy_status({"champion": {"version": "7", "metric": "top1_accuracy", "value": 0.58},
                                          "lastTriggerReasons": ["Schedule", "NewData"]})
    assert policy.champion.version == "7"
    with pytest.raises(SpecError, match=r"status.state: 'Done' is not allowed"):
        parse_training_run_status({"state": "Done"})


def test_env_cannot_redirect_the_trainer_to_another_resource() -> None:
    from pitwall_api import SpecError, parse_training_run_spec

    spec = {"model": "race_winner", "data": {"seasons": [2024]},
            "env": [{"name": "LOG_LEVEL", "value": "DEBUG"}, {"name": "PITWALL_TRAININGRUN_NAME", "value": "other-run"}]}
    with pytest.raises(SpecError) as caught:
        parse_training_run_spec(spec)
    assert any(m.startswith("spec.env[1].name") and "set by the operator" in m for m in caught.value.messages)


def test_the_cli_and_a_pod_share_the_apis_defaults():
    """One definition: what a TrainingRun omits, `pitwall-train train` omits the same way."""
    import inspect

    from pitwall_trainer.cli import build_parser
    from pitwall_trainer.models.factory import MODELS
    from pitwall_trainer.registry import DEFAULT_ALIAS as registry_alias
    from pitwall_trainer.training import train

    spec = parse_training_run_spec({"model": "race_winner", "data": {"seasons": [2024]},
                                    "evaluation": {"holdoutRaces": 4}, "promotion": {}})
    args = build_parser().parse_args(["train", "--model", "race_winner", "--seasons", "2024"])
    assert args.folds == spec.evaluation.walk_forward_folds == inspect.signature(train).parameters[
        "walk_forward_folds"].default
    assert args.alias == spec.promotion.alias == registry_alias
    assert {m.default_algorithm for m in MODELS.values()} == {spec.algorithm}
