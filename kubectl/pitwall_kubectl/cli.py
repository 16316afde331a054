"""`kubectl pitwall` (the executable `kubectl-pitwall` on PATH): dashboard, logs, describe."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime

from kubernetes.client.rest import ApiException
from rich.console import Console

from pitwall_kubectl import render
from pitwall_kubectl.kube import Kube, PluginError, _api_message, connect


def _cluster_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """The kubectl-style flags, accepted before and after the subcommand."""
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument("--kubeconfig", default=default, help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")
    parser.add_argument("--context", default=default, help="kubeconfig context (default: the current one)")
    parser.add_argument("-n", "--namespace", default=default, help="namespace (default: the context's, else default)")
    parser.add_argument("-A", "--all-namespaces", action="store_true",
                        default=argparse.SUPPRESS if suppress else False, help="every namespace (dashboard)")


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="kubectl pitwall", description="Watch PitWall TrainingRuns and RetrainPolicies.")
    _cluster_options(main, suppress=False)
    common = argparse.ArgumentParser(add_help=False)
    _cluster_options(common, suppress=True)
    commands = main.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dashboard = commands.add_parser("dashboard", parents=[common], help="live view of runs, their progress and resources")
    dashboard.add_argument("--once", action="store_true",
                           help="print one frame and exit (the default when stdout is not a terminal)")

    logs = commands.add_parser("logs", parents=[common], help="print or follow the log of a run's current pod")
    logs.add_argument("run", metavar="RUN", help="TrainingRun name")
    logs.add_argument("-f", "--follow", action="store_true", help="follow the log")
    logs.add_argument("-c", "--container", help="container (default: the trainer's)")
    logs.add_argument("--head", action="store_true", help="the Ray head pod instead of the driver Job's pod")
    logs.add_argument("--tail", type=int, default=None, help="only the last N lines")

    describe = commands.add_parser("describe", parents=[common], help="conditions, metrics vs baselines, promotion, MLflow")
    describe.add_argument("run", metavar="RUN", help="TrainingRun name")
    return main


def _connect(args: argparse.Namespace) -> Kube:
    return connect(args.kubeconfig, args.context, args.namespace, all_namespaces=args.all_namespaces)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    console = Console()
    try:
        kube = _connect(args)
        if args.command == "dashboard":
            from pitwall_kubectl import dashboard

            if args.once or not console.is_terminal:
                dashboard.run_once(kube, console)
            else:
                dashboard.run_live(kube, console)
        elif args.command == "logs":
            from pitwall_kubectl.logs import stream_logs

            stream_logs(kube, args.run, follow=args.follow, container=args.container, head=args.head, tail=args.tail)
        elif args.command == "describe":
            run = kube.get_run(args.run)
            console.print(render.describe(run, kube.run_events(run), datetime.now().astimezone()))
    except PluginError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ApiException as exc:
        print(f"error: the API server answered {exc.status} {exc.reason}: {_api_message(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `kubectl pitwall logs x | head`
        return 0
    return 0
