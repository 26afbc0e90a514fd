"""`engagement-monitor api`: the app under uvicorn."""

from __future__ import annotations

import logging
import sys

import uvicorn

from engagement_monitor.settings import Settings
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
    app = create_app(settings)
    print(
        f"engagement-monitor api: http://{settings.api_host}:{settings.api_port}/ "
        f"(monitor page), /docs, /openapi.json; {len(tokens)} token(s) in "
        f"{settings.api_tokens_file}; provider webhooks for {len(webhooks)} org/provider "
        f"pair(s) in {settings.webhook_secrets_file}",
        flush=True,
    )
    config = uvicorn.Config(
        app,
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
        access_log=False,
        proxy_headers=False,
        server_header=False,
    )
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 1
