"""Download Jolpica's CSV database dump and prove it is the file Jolpica published.

Why a dump: paging the API costs ~560 requests against its 500-an-hour limit; the dump is one
zip (6.6 MB in the docs' example index; it grows with the data). The protocol, from the
repository jolpica/jolpica-f1 (`docs/database_dumps.md`, `docs/endpoints/data/dumps.md`,
`jolpica_api/dumps/serializers.py`):

1. `GET {server}/data/dumps/download/` answers an index (JSON). `delayed_dumps.csv` is the free
   dump (14 days old, no authentication): `file_hash` (SHA-256 of the zip, hex), `file_size`
   (bytes), `uploaded_at` (ISO 8601) and `download_url`.
2. `GET download_url` redirects (302) to the zip; it is streamed into a temporary file while its
   size and SHA-256 are checked against the index. Nothing is trusted before both match.

The zip itself is read by `jolpica_dump`.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
import time
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests

from pitwall_trainer.progress import Progress

INDEX_PATH = "/data/dumps/download/"
DEFAULT_INDEX_URL = "https://api.jolpi.ca" + INDEX_PATH
TIER = "delayed_dumps"  # the free tier; `latest_dumps` needs a supporter's API key
DUMP_TYPE = "csv"
CHUNK = 1 << 16
_SHA256 = re.compile(r"[0-9a-f]{64}")


class DumpError(Exception):
    """The dump could not be had, or is not what Jolpica published; the paged API may still work.

    Not a PitwallError: like the API's FetchError it is worth retrying (exit code 1).
    """


@dataclass(frozen=True)
class DumpInfo:
    """One published dump, as the index describes it."""

    index_url: str
    download_url: str
    file_hash: str
    file_size: int
    uploaded_at: str


def index_url_for(base_url: str) -> str:
    """The dump index on the server that serves the API: `.../ergast/f1` -> `.../data/dumps/download/`.

    So `--base-url` names one Jolpica server (or a local stand-in) for both sources.
    """
    parts = urlsplit(base_url)
    root = parts.path.rstrip("/").removesuffix("/ergast/f1")
    return urlunsplit((parts.scheme, parts.netloc, root + INDEX_PATH, "", ""))


def _get(session: requests.Session, url: str, timeout: float, retries: int, **kwargs: Any) -> requests.Response:
    """GET with a few retries on connection errors and 5xx; other answers are returned as they are."""
    for attempt in range(retries + 1):
        try:
            response = session.get(url, timeout=timeout, **kwargs)
        except requests.RequestException as error:
            problem = f"{type(error).__name__}: {error}"
        else:
            if response.status_code < 500:
                return response
            problem = f"HTTP {response.status_code}"
            response.close()
        if attempt < retries:
            time.sleep(2.0**attempt)
    raise DumpError(f"{url}: {problem} after {retries + 1} attempts")


def read_index(
    session: requests.Session, index_url: str, timeout: float = 30.0, retries: int = 2
) -> DumpInfo:
    """The free CSV dump's description from the index; every missing or odd field is named."""
    response = _get(session, index_url, timeout, retries)
    if response.status_code != 200:
        raise DumpError(f"{index_url}: HTTP {response.status_code} {response.text[:200]}")
    try:
        index = response.json()
    except ValueError:
        raise DumpError(f"{index_url}: the dump index is not JSON") from None
    where = f"{TIER}.{DUMP_TYPE}"
    entry = index.get(TIER, {}).get(DUMP_TYPE) if isinstance(index, dict) else None
    if not isinstance(entry, dict):
        raise DumpError(f"{index_url}: field {where} is missing from the dump index")

    def field(name: str, kind: type) -> Any:
        value = entry.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise DumpError(f"{index_url}: field {where}.{name} is {value!r}, expected a {kind.__name__}")
        return value

    file_hash = field("file_hash", str).lower()
    if not _SHA256.fullmatch(file_hash):
        raise DumpError(f"{index_url}: field {where}.file_hash is {file_hash!r}, not a SHA-256 hex digest")
    return DumpInfo(
        index_url=index_url,
        download_url=urljoin(index_url, field("download_url", str)),
        file_hash=file_hash,
        file_size=field("file_size", int),
        uploaded_at=str(entry.get("uploaded_at") or "unknown"),
    )


def download(
    session: requests.Session,
    info: DumpInfo,
    into: IO[bytes],
    show_progress: bool | None = None,
    timeout: float = 60.0,
    retries: int = 2,
) -> None:
    """Stream the zip into `into`; raise unless its size and SHA-256 are the published ones."""
    response = _get(session, info.download_url, timeout, retries, stream=True)
    with response:
        if response.status_code != 200:
            raise DumpError(f"{info.download_url}: HTTP {response.status_code}")
        digest, size = hashlib.sha256(), 0
        with Progress(info.file_size, "Jolpica dump (bytes)", show_progress) as progress:
            try:
                for chunk in response.iter_content(CHUNK):
                    digest.update(chunk)
                    into.write(chunk)
                    size += len(chunk)
                    progress.advance(len(chunk), message=f"{size / 1e6:.1f} MB")
                    if size > info.file_size:
                        break  # longer than published: no need to read the rest
            except requests.RequestException as error:
                raise DumpError(f"{info.download_url}: download broke off ({error})") from None
    if size != info.file_size:
        raise DumpError(
            f"{info.download_url}: got {'more than ' if size > info.file_size else ''}{size} bytes, "
            f"the dump index {info.index_url} says file_size {info.file_size}"
        )
    if digest.hexdigest() != info.file_hash:
        raise DumpError(
            f"{info.download_url}: sha256 {digest.hexdigest()} does not match file_hash {info.file_hash} "
            f"published by {info.index_url}; refusing the download"
        )


@contextmanager
def fetch_dump(
    index_url: str = DEFAULT_INDEX_URL, show_progress: bool | None = None
) -> Iterator[tuple[DumpInfo, zipfile.ZipFile]]:
    """The verified dump as an open zip, in a temporary file that is gone afterwards."""
    with requests.Session() as session, tempfile.TemporaryFile(prefix="jolpica-dump-") as spool:
        info = read_index(session, index_url)
        download(session, info, spool, show_progress)
        spool.seek(0)
        try:
            archive = zipfile.ZipFile(spool)
            broken = archive.testzip()
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as error:
            raise DumpError(f"{info.download_url}: the download is not a readable zip archive ({error})") from None
        if broken is not None:
            raise DumpError(f"{info.download_url}: {broken} in the zip is corrupt (CRC mismatch)")
        with archive:
            yield info, archive
