"""`engagement-monitor api`: the app under uvicorn."""

from __future__ import annotations

import logging
import sys
from typing import Any

import uvicorn
from fastapi import FastAPI

from engagement_monitor.settings import Settings, load_settings
from read_api.app import create_app
from read_api.tokens import TokenFileError, read_token_file
from read_api.webhooks.secrets import WebhookSecretsError, read_secrets_file


def run_api(settings: Settings) -> int:
    """Serve until interrupted; 2 when the tokens file or the webhook secrets file is unusable
    (the message names the setting)."""
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        tokens = read_token_file(settings.api_tokens_file)
        webhooks = read_secrets_file(settings.webhook_secrets_file)
    except (TokenFileError, WebhookSecretsError) as exc:
        print(f"engagement-monitor: {exc}", file=sys.stderr)
        return 2
    print(
        f"engagement-monitor api: http://{settings.api_host}:{settings.api_port}/ "
        f"(monitor page), /docs, /openapi.json; {len(tokens)} token(s) in "
        f"{settings.api_tokens_file}; provider webhooks for {len(webhooks)} org/provider "
        f"pair(s) in {settings.webhook_secrets_file}; {settings.api_workers} process(es)",
        flush=True,
    )
    options: dict[str, Any] = {
        "host": settings.api_host,
        "port": settings.api_port,
        "log_level": settings.log_level.lower(),
        "access_log": False,
        "proxy_headers": False,
        "server_header": False,
    }
    if settings.api_workers > 1:
        # uvicorn's supervisor binds the port once and starts the processes, each building its
        # app from the same environment (`app_from_environment`); it restarts one that dies.
        uvicorn.run(
            "read_api.server:app_from_environment",
            factory=True,
            workers=settings.api_workers,
            **options,
        )
        return 0
    server = uvicorn.Server(uvicorn.Config(create_app(settings), **options))
    server.run()
    return 0 if server.started else 1


def app_from_environment() -> FastAPI:
    """One of several API processes (EM_API_WORKERS): settings from the environment, as the
    process that started them read them."""
    return create_app(load_settings())
