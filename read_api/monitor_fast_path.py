"""The monitor snapshot GET without FastAPI's routing and dependency machinery (issue 14).

`GET /v1/orgs/{org_id}/contacts/{contact_id}/monitor` is what dashboards and the screen call
most, and its answer is bytes the worker stored: a token lookup, one Redis GET and a
decompression. Through FastAPI the same request also pays for matching ~40 routes, solving four
dependencies, validating the path, building a `Response` and three middlewares; one API
process served ~1,800 snapshots/s on this machine's core, most of it spent there.

This pure ASGI middleware answers the request itself only when everything about it is ordinary:
a GET on that exact path with plain ids (unreserved URL characters, within the id limits), a
bearer token that authenticates, the path's org equal to the token's, and a snapshot in Redis.
Anything else, every error included (401, 404, 413, 422, 503 on a Redis error, and any
failure while reading), goes on to the app
unchanged, which answers it exactly as before, so the contract has one implementation of each
refusal. The answer is the app's: 200, `application/json`, the stored bytes; the request is
counted in the same metrics, under the route's own template.
"""

from __future__ import annotations

import re
import time

from starlette.types import ASGIApp, Receive, Scope, Send

from models.identifiers import CONTACT_ID_MAX, ORG_ID_MAX
from read_api.state import AppState

# Ids made of unreserved URL characters only: the raw path is the id, nothing to decode, and
# every such id is valid (`models.identifiers`); any other id takes the app's path.
_PLAIN_ID = rb"[A-Za-z0-9._~-]"
PATH = re.compile(
    rb"/v1/orgs/("
    + _PLAIN_ID
    + rb"{1,%d})/contacts/(" % ORG_ID_MAX
    + _PLAIN_ID
    + rb"{1,%d})/monitor" % CONTACT_ID_MAX
)
_JSON = b"application/json"
_BODY_HEADERS = (b"content-length", b"transfer-encoding")


class MonitorFastPath:
    """Serves ordinary monitor GETs (module docstring); `route` is the route's template, as the
    metrics label it."""

    def __init__(self, app: ASGIApp, state: AppState, route: str) -> None:
        self.app = app
        self.state = state
        self.route = route
        metrics = state.metrics
        self._ok = metrics.requests.labels("GET", route, "200")
        self._latency = metrics.latency.labels("GET", route)
        self.served = 0  # requests answered here (tests check the path was taken)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            started = time.perf_counter()
            body = await self._snapshot(scope)
            if body is not None:
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [
                            (b"content-length", str(len(body)).encode()),
                            (b"content-type", _JSON),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                self.served += 1
                self._ok.inc()
                self._latency.observe(time.perf_counter() - started)
                return
        await self.app(scope, receive, send)

    async def _snapshot(self, scope: Scope) -> bytes | None:
        """The stored snapshot when the request is an ordinary one that may read it, else
        None (the app then answers it)."""
        path = scope.get("raw_path")  # a server that does not give it: the app's path
        match = PATH.fullmatch(path) if isinstance(path, bytes) else None
        if match is None or scope.get("query_string"):
            return None
        token = None
        for name, value in scope["headers"]:
            if name in _BODY_HEADERS:
                return None  # a GET with a body is not ordinary (the app may answer 413)
            if name == b"authorization":
                if token is not None:
                    return None  # two Authorization headers
                # What FastAPI's HTTPBearer takes: the scheme up to the first space, the rest
                # stripped (bytes strip less than str does: a token it leaves is the same).
                scheme, _, token = value.partition(b" ")
                if scheme.lower() != b"bearer":
                    return None
                token = token.strip()
        if not token:
            return None
        principal = self.state.tokens.authenticate(token.decode("latin-1"))
        org_id = match.group(1).decode()
        if principal is None or principal.org_id != org_id:
            return None
        try:
            return await self.state.store.snapshot_json(org_id, match.group(2).decode())
        except Exception:  # the app asks again, and answers (and counts) what it gets:
            return None  # 503 if Redis still fails, 500 for what the app would not expect
