"""Times as the API writes them: RFC 3339 in UTC, to and from aware datetimes."""

from __future__ import annotations

from datetime import UTC, datetime


def utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso(moment: datetime) -> str:
    return utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> datetime | None:
    """RFC 3339 (`...Z` or an offset) to an aware UTC datetime; None for None or garbage."""
    if not text:
        return None
    try:
        return utc(datetime.fromisoformat(str(text).replace("Z", "+00:00")))
    except ValueError:
        return None

