"""The fast path's own decisions, without a server: what it answers itself and what it leaves to
the app (tests/integration/test_api_fast_path.py compares whole answers on the real Redis)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from read_api.metrics import ApiMetrics
from read_api.monitor_fast_path import MonitorFastPath
from read_api.state import AppState
from read_api.tokens import Principal

ROUTE = "/v1/orgs/{org_id}/contacts/{contact_id}/monitor"
SNAPSHOT = b'{"org_id":"acme","contact_id":"c1"}'


class Tokens:
    def authenticate(self, token: str) -> Principal | None:
        return Principal("acme", "agent", "a") if token == "good" else None


class Store:
    def __init__(self) -> None:
        self.reads: list[tuple[str, str]] = []

    async def snapshot_json(self, org_id: str, contact_id: str) -> bytes | None:
        self.reads.append((org_id, contact_id))
        return SNAPSHOT if contact_id == "c1" else None


async def _call(scope: dict[str, Any]) -> tuple[list[dict[str, Any]], bool, Store]:
    store = Store()
    state = cast(AppState, SimpleNamespace(metrics=ApiMetrics(), tokens=Tokens(), store=store))
    reached = False

    async def app(_scope: Any, _receive: Any, _send: Any) -> None:
        nonlocal reached
        reached = True

    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {"type": "http.request", "body": b""}

    await MonitorFastPath(app, state, ROUTE)(scope, receive, send)
    return sent, reached, store


def _scope(path: bytes, auth: bytes | None = b"Bearer good", **extra: Any) -> dict[str, Any]:
    headers = [(b"host", b"api")] + ([(b"authorization", auth)] if auth is not None else [])
    scope = {
        "type": "http",
        "method": "GET",
        "path": path.decode(),
        "raw_path": path,
        "query_string": b"",
        "headers": headers,
    }
    scope.update(extra)
    return scope


async def test_an_ordinary_get_is_answered_with_the_stored_bytes() -> None:
    sent, reached, store = await _call(_scope(b"/v1/orgs/acme/contacts/c1/monitor"))
    assert not reached and store.reads == [("acme", "c1")]
    assert sent[0]["status"] == 200
    assert dict(sent[0]["headers"]) == {
        b"content-length": str(len(SNAPSHOT)).encode(),
        b"content-type": b"application/json",
    }
    assert sent[1]["body"] == SNAPSHOT


async def test_anything_else_goes_to_the_app() -> None:
    path = b"/v1/orgs/acme/contacts/c1/monitor"
    for scope in (
        _scope(path, auth=None),
        _scope(path, auth=b"Bearer bad"),
        _scope(path, auth=b"Basic good"),
        _scope(b"/v1/orgs/other/contacts/c1/monitor"),  # not the token's org: never read
        _scope(b"/v1/orgs/acme/contacts/nobody/monitor"),
        _scope(b"/v1/orgs/acme/contacts/c%31/monitor"),
        _scope(path, query_string=b"a=1"),
        _scope(path, method="POST"),
        {**_scope(path), "raw_path": None},  # a server without raw_path
        {**_scope(path), "headers": [(b"authorization", b"Bearer good")] * 2},
        # a body, however small: BodyLimit may refuse it (413), so the app decides
        {
            **_scope(path),
            "headers": [(b"authorization", b"Bearer good"), (b"content-length", b"70000")],
        },
        {
            **_scope(path),
            "headers": [(b"authorization", b"Bearer good"), (b"transfer-encoding", b"chunked")],
        },
    ):
        sent, reached, store = await _call(scope)
        assert reached and sent == [], scope
        assert ("other", "c1") not in store.reads


async def test_a_failed_read_goes_to_the_app_which_answers_and_counts_it() -> None:
    class Broken(Store):
        async def snapshot_json(self, org_id: str, contact_id: str) -> bytes | None:
            raise ValueError("a corrupt stored value")

    state = cast(AppState, SimpleNamespace(metrics=ApiMetrics(), tokens=Tokens(), store=Broken()))
    reached = False

    async def app(_scope: Any, _receive: Any, _send: Any) -> None:
        nonlocal reached
        reached = True

    async def send(_message: Any) -> None:
        raise AssertionError("the fast path must not answer")

    scope = _scope(b"/v1/orgs/acme/contacts/c1/monitor")
    await MonitorFastPath(app, state, ROUTE)(scope, _receive, send)
    assert reached


async def _receive() -> Any:
    return {"type": "http.request", "body": b""}
