"""Each provider's signature, checked as the provider specifies (SPEC §7.5), with test keys."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from read_api.webhooks import signatures

NOW = 1_780_315_200.0


def sendgrid_keypair() -> tuple[ec.EllipticCurvePrivateKey, str]:
    """A P-256 key and its public half as SendGrid's settings page shows it (base64 DER)."""
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, base64.b64encode(der).decode()


def sendgrid_sign(private: ec.EllipticCurvePrivateKey, timestamp: str, body: bytes) -> str:
    return base64.b64encode(
        private.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    ).decode()


def test_sendgrid_accepts_its_signature_and_refuses_anything_changed() -> None:
    private, public = sendgrid_keypair()
    key = signatures.load_sendgrid_key(public)
    body = b'[{"event":"delivered","sg_event_id":"x"}]'
    stamp = str(int(NOW))
    good = sendgrid_sign(private, stamp, body)
    assert signatures.sendgrid(key, good, stamp, body, NOW, 600) is None
    assert signatures.sendgrid(key, good, stamp, body + b" ", NOW, 600) == (
        "signature does not match"
    )
    assert signatures.sendgrid(key, good, str(int(NOW) + 1), body, NOW, 600) is not None
    other = signatures.load_sendgrid_key(sendgrid_keypair()[1])
    assert signatures.sendgrid(other, good, stamp, body, NOW, 600) == "signature does not match"
    assert signatures.sendgrid(key, None, stamp, body, NOW, 600) is not None
    assert signatures.sendgrid(key, "not base64!", stamp, body, NOW, 600) is not None


def test_sendgrid_refuses_a_stale_or_future_timestamp_even_when_signed() -> None:
    private, public = sendgrid_keypair()
    key = signatures.load_sendgrid_key(public)
    body = b"[]"
    for stamp in (str(int(NOW) - 601), str(int(NOW) + 601)):
        problem = signatures.sendgrid(
            key, sendgrid_sign(private, stamp, body), stamp, body, NOW, 600
        )
        assert problem is not None and "stale" in problem
    assert signatures.sendgrid(key, "x", "yesterday", body, NOW, 600) is not None


def test_sendgrid_key_in_pem_too_and_a_wrong_key_is_refused() -> None:
    private, _ = sendgrid_keypair()
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert isinstance(signatures.load_sendgrid_key(pem.decode()), ec.EllipticCurvePublicKey)
    with pytest.raises(ValueError):
        signatures.load_sendgrid_key("definitely not a key")


FIXTURES = Path(__file__).parent / "webhook_fixtures"


def test_sendgrid_official_test_vector() -> None:
    """The vector of SendGrid's own Python library (sendgrid-python
    test/unit/test_eventwebhook.py): its key, signature, timestamp and exact payload bytes."""
    key = signatures.load_sendgrid_key(
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3"
        "GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g=="
    )
    signature = (
        "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M1"
        "5TluLtEZtM="
    )
    payload = (FIXTURES / "sendgrid_signed_payload.txt").read_bytes()
    assert payload.endswith(b"\r\n")  # signed as sent: the raw bytes, not re-serialised JSON
    at = 1_600_112_502
    assert signatures.sendgrid(key, signature, "1600112502", payload, at, 600) is None
    assert signatures.sendgrid(key, signature, "1600112502", payload.rstrip(), at, 600) is not None
    wrong = signatures.load_sendgrid_key(
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqTxd43gyp8IOEto2LdIfjRQrIbsd4SXZkLW6jDutdhXSJCWHw8"
        "REntlo7aNDthvj+y7GjUuFDb/R1NGe1OPzpA=="
    )
    assert signatures.sendgrid(wrong, signature, "1600112502", payload, at, 600) is not None


def test_twilio_matches_the_example_of_its_current_documentation() -> None:
    """twilio.com/docs/usage/security, "Explore the algorithm yourself"."""
    url = "https://example.com/myapp.php?foo=1&bar=2"
    params = [
        ("Digits", "1234"),
        ("To", "+18005551212"),
        ("From", "+14158675310"),
        ("Caller", "+14158675310"),
        ("CallSid", "CA1234567890ABCDE"),
    ]
    assert signatures.twilio_expected("12345", url, params) == "L/OH5YylLD5NRKLltdqwSvS0BnU="


def test_twilio_matches_the_documented_example() -> None:
    """The worked example of earlier versions of Twilio's security documentation, still the
    vector of its helper libraries' tests: auth token 12345, this URL and these parameters."""
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+12349013030"),
        ("Digits", "1234"),
        ("From", "+12349013030"),
        ("To", "+18005551212"),
    ]
    expected = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="  # twilio.com/docs/usage/security
    assert signatures.twilio_expected("12345", url, params) == expected
    assert signatures.twilio("12345", expected, [url], params) is None
    tampered = [*params[:-1], ("To", "+18005551213")]
    assert signatures.twilio("12345", expected, [url], tampered) == "signature does not match"
    assert signatures.twilio("12346", expected, [url], params) == "signature does not match"
    assert signatures.twilio("12345", None, [url], params) is not None


def test_meta_hmac_sha256_of_the_raw_body() -> None:
    body = b'{"object":"whatsapp_business_account","entry":[]}'
    header = "sha256=" + hmac.new(b"app-secret", body, hashlib.sha256).hexdigest()
    assert signatures.meta("app-secret", header, body) is None
    assert signatures.meta("app-secret", header, body + b"\n") == "signature does not match"
    assert signatures.meta("other-secret", header, body) == "signature does not match"
    assert signatures.meta("app-secret", header.removeprefix("sha256="), body) is not None
    assert signatures.meta("app-secret", None, body) is not None


def test_zenvia_shared_token() -> None:
    assert signatures.shared_token("s3cret-token", "s3cret-token") is None
    assert signatures.shared_token("s3cret-token", "s3cret-tokem") is not None
    assert signatures.shared_token("s3cret-token", None) is not None
