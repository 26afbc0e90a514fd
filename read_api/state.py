"""What every request handler needs, held once per app (``app.state.em``)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from engagement_monitor.settings import Settings
from read_api.commands import Publisher
from read_api.metrics import ApiMetrics
from read_api.store import SnapshotStore
from read_api.tokens import TokenStore
from read_api.webhooks.secrets import WebhookSecrets


@dataclass
class AppState:
    settings: Settings
    store: SnapshotStore
    publisher: Publisher
    tokens: TokenStore
    metrics: ApiMetrics
    webhooks: WebhookSecrets


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.em
    return state
