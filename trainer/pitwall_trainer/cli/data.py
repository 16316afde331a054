"""`pitwall-train data fetch` and `pitwall-train validate-data`: getting and checking the F1 tables."""

from __future__ import annotations

import argparse
import sys

from pitwall_trainer.cli.common import add_data_dir, add_json, emit, seasons_arg
from pitwall_trainer.errors import EXIT_RETRYABLE, DataError


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="download the F1 tables")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    fetch = data_commands.add_parser(
        "fetch", help="download seasons from Jolpica (its CSV dump, or its Ergast-compatible API) into a folder of CSVs"
    )
    fetch.add_argument("--seasons", required=True, type=seasons_arg, help="e.g. 2018-2024 or 2022,2024")
    fetch.add_argument("--out", help="target folder (default: the fetch cache, see $PITWALL_CACHE_DIR)")
    fetch.add_argument("--base-url", help="API base URL (default: https://api.jolpi.ca/ergast/f1)")
    fetch.add_argument(
        "--source",
        choices=["auto", "dump", "api"],
        default="auto",
        help="dump: Jolpica's CSV dump (one zip of a few MB, up to 14 days old); api: page the API (hundreds of "
        "requests at 500 an hour, e.g. ~560 for a first run; newest races); auto (default): the dump, else the API",
    )
    fetch.add_argument(
        "--dump-url",
        help="the dump index (default: /data/dumps/download/ on the --base-url server, "
        "https://api.jolpi.ca/data/dumps/download/)",
    )
    fetch.add_argument(
        "--ids-from",
        help="a folder of Ergast CSVs whose surrogate ids to reuse (the target's own tables are always used)",
    )
    add_json(fetch)
    fetch.set_defaults(handler=run_fetch)

    validate = subparsers.add_parser(
        "validate-data", help="check a data folder: files, columns, types, keys, references, dates"
    )
    add_data_dir(validate)
    add_json(validate)
    validate.set_defaults(handler=run_validate)


def run_fetch(args: argparse.Namespace) -> int:
    from pitwall_trainer.data.dump import DumpError
    from pitwall_trainer.data.fetch import DEFAULT_BASE_URL, FetchError, fetch_seasons
    from pitwall_trainer.data.paths import fetch_cache_dir

    try:
        summary = fetch_seasons(
            args.seasons,
            out=args.out or fetch_cache_dir(),
            base_url=args.base_url or DEFAULT_BASE_URL,
            ids_from=args.ids_from,
            source=args.source,
            dump_url=args.dump_url,
        )
    except (FetchError, DumpError) as error:  # expected and retryable: the reason, not a traceback
        print(f"error: {error}", file=sys.stderr)
        return EXIT_RETRYABLE
    span = str(args.seasons[0]) if len(args.seasons) == 1 else f"{args.seasons[0]}-{args.seasons[-1]}"
    if summary["source"] == "dump":
        origin = f"the Jolpica dump uploaded {summary['dump']['uploaded_at']}"
    else:
        origin = f"the Jolpica API ({summary['requests']} requests)"
    human = f"fetched {span} into {summary['out']} from {origin}: " + ", ".join(
        f"{name} {count}" for name, count in summary["rows"].items()
    )
    if "fallback" in summary:
        human += f"\n(the dump was not used: {summary['fallback']})"
    emit(args, summary, human)
    return 0


def run_validate(args: argparse.Namespace) -> int:
    from pitwall_trainer.data.loader import read_raw_tables
    from pitwall_trainer.data.paths import resolve_data_dir
    from pitwall_trainer.data.validate import validate_tables

    folder = resolve_data_dir(args.data_dir)
    raw = read_raw_tables(folder)
    problems = validate_tables(folder, raw)
    rows = {name: len(frame) for name, frame in raw.items() if frame is not None}
    result = {"data_dir": str(folder), "valid": not problems, "problems": problems, "rows": rows}
    if problems:
        emit(args, result)
        raise DataError(f"the data in {folder} is not valid ({len(problems)} problems)", problems)
    emit(args, result, f"{folder}: valid ({sum(rows.values())} rows in {len(rows)} tables)")
    return 0
