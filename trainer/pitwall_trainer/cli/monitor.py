"""`pitwall-train monitor`: the retraining signals of a model's champion, as JSON and into a RetrainPolicy.

Run by the RetrainPolicy's monitoring Job (see pitwall_operator.builders.retrain) and by people:

    pitwall-train monitor --model race_winner --json
    pitwall-train monitor --model race_winner --data-dir /data --refresh --seasons 2025 --policy rp --namespace ml
"""

from __future__ import annotations

import argparse
import json

from pitwall_trainer.cli.common import add_data_dir, add_json, emit, seasons_arg
from pitwall_trainer.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "monitor", help="retraining signals: new races and samples, champion accuracy drift, data drift (PSI)"
    )
    parser.add_argument("--model", required=True, help="race_winner, quali_order or pit_window")
    parser.add_argument("--registered-model-name", help="MLflow registered model (default: pitwall-<model>)")
    parser.add_argument("--alias", default="champion", help="alias of the version in production (default: champion)")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else local SQLite)")
    parser.add_argument("--triggers", help="the RetrainPolicy's triggers as JSON (default: all four, the RetrainPolicy's default thresholds)")
    add_data_dir(parser)
    parser.add_argument("--refresh", action="store_true", help="fetch --seasons into the data folder first")
    parser.add_argument("--seasons", type=seasons_arg, help="seasons to refresh, e.g. 2025")
    parser.add_argument("--base-url", help="API base URL for the refresh (default: Jolpica)")
    parser.add_argument("--policy", help="RetrainPolicy whose status.signals to patch (default: $PITWALL_RETRAINPOLICY_NAME)")
    parser.add_argument("--namespace", help="its namespace (default: $PITWALL_RETRAINPOLICY_NAMESPACE, else default)")
    add_json(parser)
    parser.set_defaults(handler=run_monitor)


def _triggers(text: str | None) -> dict | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError as error:
        raise ConfigError(f"--triggers: not JSON: {error}") from None
    if not isinstance(value, dict):
        raise ConfigError("--triggers: expected a JSON object such as {\"newData\": {\"minSamples\": 20}}")
    return value


def _human(signals: dict) -> str:
    fired = ", ".join(f["reason"] for f in signals.get("fired") or []) or "none"
    return (f"champion {signals.get('championVersion') or '-'} trained through {signals.get('championTrainEndDate') or '-'}; "
            f"latest race {signals.get('latestRaceDate')}: {signals.get('newRaces')} new races, "
            f"{signals.get('newSamples')} new samples; accuracy recent {signals.get('recentAccuracy')} vs "
            f"baseline {signals.get('baselineAccuracy')}; drift {signals.get('driftScore')}; triggers fired: {fired}")


def run_monitor(args: argparse.Namespace) -> int:
    from pitwall_trainer.data.paths import resolve_data_dir
    from pitwall_trainer.monitoring.signals import PolicyStatusReporter, monitor, refresh_data, status_signals
    from pitwall_trainer.reporting import write_termination_message

    triggers = _triggers(args.triggers)
    refresh = None
    if args.refresh:
        if not args.seasons:
            raise ConfigError("--refresh needs --seasons (the seasons to fetch, e.g. 2025)")
        if not args.data_dir:
            raise ConfigError("--refresh needs --data-dir (the folder to refresh)")
        refresh = refresh_data(args.data_dir, args.seasons, args.base_url)
    folder = resolve_data_dir(args.data_dir)
    signals = monitor(args.model, folder, args.registered_model_name, args.alias, args.tracking_uri, triggers)
    if refresh is not None:
        signals["dataRefresh"] = refresh
    reporter = PolicyStatusReporter.from_env(args.policy, args.namespace)
    if reporter is not None:
        signals["reported"] = reporter.patch_signals(signals)
    write_termination_message({**status_signals(signals), "fired": signals["fired"]})
    emit(args, signals, _human(signals))
    return 0
