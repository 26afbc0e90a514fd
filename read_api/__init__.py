"""The read API and the monitor page (SPEC §5).

Reads snapshots and segments that the worker keeps in Redis; turns the screen's write actions
into commands on Kafka and never writes a snapshot itself, so the worker stays the one writer
and every change goes through the same exact counting path as the event stream.
"""

from __future__ import annotations

from read_api.app import create_app
from read_api.server import run_api
from read_api.tokens import create_token, list_tokens, revoke_tokens

__all__ = ["create_app", "create_token", "list_tokens", "revoke_tokens", "run_api"]
