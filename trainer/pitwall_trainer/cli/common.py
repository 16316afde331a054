"""Options and output shared by the commands."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from pitwall_trainer.errors import ConfigError


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        help="folder of Ergast-schema CSVs (default: $PITWALL_DATA_DIR, then the fetch cache)",
    )


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object with the results as the last line"
    )


def parse_seasons(text: str) -> list[int]:
    """Parse `2022,2023,2024`, `2018-2024` or a mix such as `2014-2016,2024`."""
    seasons: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            if "-" in part:
                low, high = (int(x) for x in part.split("-", 1))
                if low > high:
                    raise ConfigError(f"--seasons: range {part!r} runs backwards")
                seasons.update(range(low, high + 1))
            else:
                seasons.add(int(part))
        except ValueError:
            raise ConfigError(
                f"--seasons: {part!r} is not a year or a range like 2018-2024"
            ) from None
    if not seasons:
        raise ConfigError("--seasons: no season given")
    bad = sorted(s for s in seasons if not 1950 <= s <= 2100)
    if bad:
        raise ConfigError(f"--seasons: {bad[0]} is outside 1950-2100")
    return sorted(seasons)


def seasons_arg(text: str) -> list[int]:
    """argparse `type=` wrapper that turns a ConfigError into a usage error."""
    try:
        return parse_seasons(text)
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return _jsonable(value.item())
    return value


def emit(args: argparse.Namespace, result: dict[str, Any], human: str | None = None) -> None:
    """Print the human summary, then (with --json) one JSON object as the last stdout line."""
    if human:
        print(human)
    if getattr(args, "json", False):
        sys.stdout.flush()
        print(json.dumps(_jsonable(result), sort_keys=True))
