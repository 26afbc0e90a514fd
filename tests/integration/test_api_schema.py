"""Property-based: schemathesis against `/openapi.json`, on a real HTTP server and the real Redis.

Bounded (a few dozen examples per operation) so it fits CI; any 5xx, undocumented status code,
wrong content type or body that does not match the documented schema fails the test.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from engagement_monitor import keyspace as ks
from engagement_monitor.settings import load_settings
from read_api.app import create_app
from read_api.commands import MemoryPublisher
from tests.integration.harness import free_port
from tests.read_api.support import make_settings, make_tokens, sample_snapshot

pytestmark = pytest.mark.integration

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
SEEDED = ("c1", "c2", "c3")


class Served:
    def __init__(self, base_url: str, org: str, headers: dict[str, str]) -> None:
        self.base_url = base_url
        self.org = org
        self.headers = headers


@pytest.fixture(scope="module")
def served(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The API under uvicorn in a thread, over a Redis holding a few snapshots of one org."""
    tmp: Path = tmp_path_factory.mktemp("schema")
    org = f"st-{tmp.name[-8:]}"
    settings_ = make_settings(tmp, redis_url=redis_url, topic_prefix="schemathesis.")
    tokens = make_tokens(settings_, org)
    sync = redis.Redis.from_url(redis_url)
    for i, contact in enumerate(SEEDED):
        sync.set(ks.redis_snapshot_key(org, contact), orjson.dumps(sample_snapshot(org, contact)))
        for tier in ("low", "high"):
            sync.zadd(
                ks.redis_segment_key(org, None, tier), {ks.segment_member(contact, 30 + i): 0}
            )
            sync.zadd(
                ks.redis_segment_key(org, "email", tier), {ks.segment_member(contact, 60 + i): 0}
            )
    app = create_app(settings_, producer=MemoryPublisher())
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the API did not start"
    try:
        yield Served(f"http://127.0.0.1:{port}", org, tokens.header("operator"))
    finally:
        server.should_exit = True
        thread.join(10)
        keys = list(sync.scan_iter(match=ks.redis_org_pattern(org)))
        if keys:
            sync.delete(*keys)
        sync.close()


def _document() -> dict[str, Any]:
    """The document the API serves at /openapi.json (built at import: schemathesis's lazy
    fixture loader does not work with pytest 9; `test_served_document_is_this_one` checks that
    the server really serves this document)."""
    settings_ = load_settings(api_tokens_file=Path("/nonexistent/tokens.json"))
    return create_app(settings_, producer=MemoryPublisher()).openapi()


DOCUMENT = _document()
schema = schemathesis.openapi.from_dict(DOCUMENT)


def test_served_document_is_this_one(served: Served) -> None:
    served_doc = httpx.get(f"{served.base_url}/openapi.json", timeout=10).json()
    assert served_doc == orjson.loads(orjson.dumps(DOCUMENT))


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
def test_api_conforms_to_its_openapi_document(case: Any, served: Served) -> None:
    # Mostly this org (otherwise every answer would be the 404 of a foreign org), and about
    # half the time a contact that exists, so the 200/202 paths are exercised too.
    params = case.path_parameters
    if params is not None and "org_id" in params:
        params["org_id"] = served.org
        contact = params.get("contact_id")
        if isinstance(contact, str) and len(contact) % 2 == 0:
            params["contact_id"] = SEEDED[len(contact) % 3]
    case.call_and_validate(base_url=served.base_url, headers=served.headers, checks=CHECKS)


def test_the_examples_reached_the_success_paths(served: Served) -> None:
    """Runs after the property test (file order): proves the examples did not all stop at a
    404 or a 422, i.e. the answers checked above include real snapshots, pages and 202s."""
    text = httpx.get(f"{served.base_url}/metrics", timeout=10).text
    monitor = 'route="/v1/orgs/{org_id}/contacts/{contact_id}/monitor",status="200"'
    segments = 'route="/v1/orgs/{org_id}/segments",status="200"'
    assert monitor in text and segments in text
    assert 'status="202"' in text and 'status="422"' in text
    assert 'status="500"' not in text
