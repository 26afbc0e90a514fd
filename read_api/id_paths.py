"""Ids in URL paths, taken apart exactly as the client encoded them.

An id may contain ``/`` (SPEC §2 allows any character but those ``models.identifiers`` refuses).
The ASGI server percent-decodes the path before routing, so ``contacts/x%2Flists%2Fy`` would
reach the router as ``contacts/x/lists/y`` and match the *list* route of contact ``x``: the
decoded path is as ambiguous as the old Redis keys were (issue 17). So routes under ``/v1/``
are matched on the raw path, where an encoded ``/`` is still ``%2F``, and each id segment is
decoded on its own by the ``id`` convertor: ``{contact_id:id}``.

Invalid UTF-8 in a segment (``%FF``) decodes to lone surrogates, which the id rule refuses with
a 422 rather than having them replaced silently.
"""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import quote, unquote_to_bytes

from starlette.convertors import Convertor, register_url_convertor
from starlette.types import ASGIApp, Receive, Scope, Send

API_PREFIX = "/v1/"


class IdConvertor(Convertor[str]):
    """One path segment, percent-decoded on its own."""

    regex: ClassVar[str] = "[^/]+"

    def convert(self, value: str) -> str:
        try:  # the raw path, as bytes read as latin-1 (see RawPathRouting)
            raw = value.encode("latin-1")
        except UnicodeEncodeError:  # a server without raw_path: already decoded text
            raw = value.encode("utf-8", "surrogateescape")
        return unquote_to_bytes(raw).decode("utf-8", "surrogateescape")

    def to_string(self, value: str) -> str:
        return quote(value, safe="", errors="surrogateescape")


register_url_convertor("id", IdConvertor())


class RawPathRouting:
    """Pure ASGI middleware: routes under ``/v1/`` see the path as the client sent it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path") if scope["type"] == "http" else None
        if raw and str(scope.get("path", "")).startswith(API_PREFIX):
            # Some clients' raw_path still carries the query string; the router must not.
            path = bytes(raw).split(b"?", 1)[0].decode("latin-1")
            scope = {**scope, "path": path}
        await self.app(scope, receive, send)
