"""A small asyncio client for the sandbox's own components (kubelet, provisioner): REST calls and
watches over aiohttp with the admin certificate. Plain dicts in and out."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

log = logging.getLogger("pitwall.sandbox.api")
MERGE = "application/merge-patch+json"


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(f"{status}: {message}")


class AsyncApi:
    def __init__(self, server: str, ssl_context: ssl.SSLContext) -> None:
        self.server, self.ssl = server, ssl_context
        self.session: aiohttp.ClientSession | None = None

    async def open(self) -> AsyncApi:
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.ssl, limit=32))
        return self

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def request(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None,
                      content_type: str = "application/json") -> dict[str, Any]:
        assert self.session is not None
        data = None if body is None else json.dumps(body)
        async with self.session.request(method, self.server + path, data=data, params=params,
                                        headers={"Content-Type": content_type, "Accept": "application/json"},
                                        timeout=aiohttp.ClientTimeout(total=30)) as response:
            text = await response.text()
            if response.status >= 300:
                try:
                    message = json.loads(text).get("message", text)
                except ValueError:
                    message = text
                raise ApiError(response.status, message)
            return json.loads(text) if text else {}

    async def get(self, path: str, **params: Any) -> dict[str, Any] | None:
        try:
            return await self.request("GET", path, params=params or None)
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    async def patch(self, path: str, body: Any) -> dict[str, Any]:
        return await self.request("PATCH", path, body, content_type=MERGE)

    async def watch(self, path: str, **params: Any) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """List, then watch from the list's resourceVersion; re-lists after a 410 or a dropped stream.

        Yields ("ADDED"|"MODIFIED"|"DELETED", object); a re-list yields every object as ADDED again.
        """
        assert self.session is not None
        while True:
            try:  # the API server may be away (restarted): list again until it answers
                listing = await self.request("GET", path, params=params or None)
            except (aiohttp.ClientError, TimeoutError, ApiError, OSError) as error:
                log.debug("list %s failed (%s); trying again", path, error)
                await asyncio.sleep(1.0)
                continue
            version = listing["metadata"]["resourceVersion"]
            for item in listing.get("items") or []:
                yield "ADDED", item
            query = {**params, "watch": "1", "resourceVersion": version, "allowWatchBookmarks": "true",
                     "timeoutSeconds": "300"}
            try:
                async with self.session.get(self.server + path, params=query,
                                            timeout=aiohttp.ClientTimeout(total=None, sock_read=330)) as response:
                    if response.status != 200:
                        raise ApiError(response.status, await response.text())
                    async for line in response.content:
                        if not line.strip():
                            continue
                        event = json.loads(line)
                        if event["type"] == "ERROR":
                            break
                        if event["type"] == "BOOKMARK":
                            continue
                        yield event["type"], event["object"]
            except (aiohttp.ClientError, TimeoutError, ApiError) as error:
                log.debug("watch %s ended (%s); listing again", path, error)
                await asyncio.sleep(0.5)
