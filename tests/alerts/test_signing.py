"""Webhook signatures: `Kota-Signature: t=<unix>,v1=<hex>`, HMAC-SHA256 over "<t>.<body>" (API.md)."""

import hashlib
import hmac

import pytest

from alerts.signing import SignatureError, sign, verify

SECRET = "whsec_test"
BODY = b'{"id":"evt_1","type":"alert.triggered"}'


def test_header_is_hmac_sha256_over_timestamp_dot_body():
    expected = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, BODY, 1700000000) == f"t=1700000000,v1={expected}"


def test_verify_accepts_its_own_signature_and_returns_the_timestamp():
    header = sign(SECRET, BODY, 1700000000)
    assert verify(SECRET, BODY, header, now=1700000010) == 1700000000


@pytest.mark.parametrize(
    "secret, body, now",
    [
        ("whsec_other", BODY, 1700000000),  # wrong secret
        (SECRET, BODY + b" ", 1700000000),  # body changed
        (SECRET, BODY, 1700000000 + 301),  # replayed too late
    ],
)
def test_verify_refuses_a_wrong_secret_a_changed_body_or_an_old_timestamp(secret, body, now):
    header = sign(SECRET, BODY, 1700000000)
    with pytest.raises(SignatureError):
        verify(secret, body, header, now=now)


@pytest.mark.parametrize("header", ["", "t=1", "v1=abc", "t=x,v1=abc", "garbage"])
def test_verify_refuses_malformed_headers(header):
    with pytest.raises(SignatureError):
        verify(SECRET, BODY, header, now=1)


def test_one_matching_v1_among_several_suffices():
    good = sign(SECRET, BODY, 5).split(",")[1]
    assert verify(SECRET, BODY, f"t=5,v1=deadbeef,{good}", now=5) == 5
