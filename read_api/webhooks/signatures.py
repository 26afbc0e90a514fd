"""Each provider's webhook signature, checked exactly as the provider specifies.

Every comparison of a secret-derived value is constant-time (``hmac.compare_digest``), and the
ECDSA check is the ``cryptography`` library's. A function returns None when the request is
authentic, or a short reason (never echoing a secret) when it is not: the route answers 401
with it and publishes nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key


def load_sendgrid_key(text: str) -> ec.EllipticCurvePublicKey:
    """SendGrid's verification key, as the settings page shows it (base64 DER of the
    SubjectPublicKeyInfo) or as PEM. Raises ValueError when it is neither, or not an EC key."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        key = load_pem_public_key(text.encode())
    else:
        try:
            der = base64.b64decode(text, validate=True)
        except binascii.Error:
            raise ValueError("not base64 DER nor PEM") from None
        key = load_der_public_key(der)
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("not an elliptic-curve public key")
    return key


def sendgrid(
    key: ec.EllipticCurvePublicKey,
    signature: str | None,
    timestamp: str | None,
    body: bytes,
    now_s: float,
    max_age_s: float,
) -> str | None:
    """Signed Event Webhook: ECDSA (P-256, SHA-256) over ``timestamp + raw body``; the
    signature header is base64 of the DER signature. A timestamp further than ``max_age_s``
    from now is refused, so a captured request cannot be replayed later."""
    if not signature or not timestamp:
        return "missing X-Twilio-Email-Event-Webhook-Signature or -Timestamp"
    try:
        sent_at = int(timestamp)
    except ValueError:
        return "X-Twilio-Email-Event-Webhook-Timestamp is not a unix time"
    if abs(now_s - sent_at) > max_age_s:
        return f"timestamp is more than {max_age_s:g} s from now (stale or replayed)"
    try:
        der = base64.b64decode(signature, validate=True)
        key.verify(der, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (binascii.Error, InvalidSignature, ValueError):
        return "signature does not match"
    return None


def twilio_expected(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """Twilio's ``X-Twilio-Signature``: base64 HMAC-SHA1, keyed by the auth token, over the
    full URL (with its query string) followed by every POST parameter's name and value,
    sorted by name (values of a repeated name in the order sent)."""
    data = url + "".join(name + value for name, value in sorted(params, key=lambda p: p[0]))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def twilio(
    auth_token: str, signature: str | None, urls: Iterable[str], params: list[tuple[str, str]]
) -> str | None:
    """``urls``: the URL as Twilio called it, tried with and without the port (Twilio signs
    what it was configured with, and proxies add or drop ports)."""
    if not signature:
        return "missing X-Twilio-Signature"
    for url in urls:
        if hmac.compare_digest(twilio_expected(auth_token, url, params), signature):
            return None
    return "signature does not match"


def meta(app_secret: str, header: str | None, body: bytes) -> str | None:
    """Meta's ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body, app secret>``."""
    if not header or not header.startswith("sha256="):
        return "missing X-Hub-Signature-256"
    expected = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, header.removeprefix("sha256=").lower()):
        return "signature does not match"
    return None


def shared_token(secret: str, token: str | None) -> str | None:
    """Zenvia signs nothing: the subscription URL carries ``?token=<secret>``."""
    if not token:
        return "missing token query parameter"
    if not hmac.compare_digest(secret.encode(), token.encode()):
        return "token does not match"
    return None
