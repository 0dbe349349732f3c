"""Known-answer vectors for every signed outbound channel.

The fakes recompute signatures with code written by the same hands as the adapters, so a shared
misreading of a vendor's algorithm (key and message swapped, seconds for milliseconds, the wrong
encoding) would pass every other test. These vectors pin the exact bytes instead.

Where they come from:

- **DingTalk** publishes one fixed example for its HMAC-SHA256 → Base64 → URL-encode signing chain,
  in the server-API signature FAQ (``timestamp=1546084445901``, ``appSecret=testappSecret`` →
  ``HCbG3xNE3vzhO%2Bu7qCUL1jS5hsu2n5r2cFhnTrtyDAE%3D``; the same vector is in
  francistm/dingtalk-sdk's spec). Its custom-robot guide gives the algorithm
  (``sign = urlencode(base64(HmacSHA256(key=secret, msg=timestamp + "\\n" + secret)))``, timestamp in
  ms) and a Python sample, but no fixed example.
- **Feishu/Lark** documents the custom-bot algorithm (``timestamp + "\\n" + secret`` as the HMAC
  *key* over an empty message, Base64; timestamp in seconds, both in the JSON body) with Go/Java/Python
  samples, but publishes no fixed example.
- **Our generic webhook** documents its own scheme (bot/channels/webhook.py, README):
  ``X-Jixiao-Signature: sha256=<hex HMAC-SHA256(key=secret, msg=timestamp + "." + raw body)>``, the
  timestamp being the ``X-Jixiao-Timestamp`` header's text (also inside the body as ``sent_at``).
- **Unsigned channels** have nothing to vector: WeCom's group robot (the key in the URL is the
  credential), Slack incoming webhooks (the URL is the credential; Slack signs only what it sends *to*
  apps — inbound, covered with the inbound commands), Telegram (the bot token in the path), email.

So for the robot vectors below we ran each vendor's published sample code with a fixed timestamp
(``_vendor_*`` here are those samples, written out independently of bot/channels) and cross-checked
the outputs with ``openssl dgst -sha256 -hmac`` — three implementations, one answer. The literals are
what the adapters must produce byte for byte.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.parse

from bot.channels import Endpoint, Part, dingtalk, feishu, webhook
from tests.channels.conftest import RigFactory

DINGTALK_SECRET = "SEC0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
DINGTALK_TS_MS = "1764000000000"
DINGTALK_SIGN_B64 = "Dd96XnLmTX0tIdL7QlxH+hn5yyPvsMf7KaVd4LYR8hU="
DINGTALK_SIGN_QUERY = "Dd96XnLmTX0tIdL7QlxH%2Bhn5yyPvsMf7KaVd4LYR8hU%3D"

FEISHU_SECRET = "y5nD0RnBGmfVw9AZ8sCbbd"
FEISHU_TS_S = "1764000000"
FEISHU_SIGN = "j8jZkdBW/H+MJZBLzwKpx2Xxr9l0FbOUE/8hBCMbj38="

WEBHOOK_SECRET = "whsec-known-answer"
WEBHOOK_BODY = '{"title":"绩效","sent_at":1764000000}'.encode()
WEBHOOK_TS = "1764000000"
#: printf '%s' '1764000000.{"title":"绩效","sent_at":1764000000}' | openssl dgst -sha256 -hmac whsec-known-answer
WEBHOOK_SIGNATURE = "sha256=0e11ea7ddbe76d4f4f3b2b24bc12a2f971ceaff56b072af1d245c5350b78d604"


def _vendor_dingtalk_sample(secret: str, timestamp: str) -> str:
    """DingTalk's custom-robot Python sample, with `timestamp` passed in instead of time.time()."""
    secret_enc = secret.encode("utf-8")
    string_to_sign_enc = f"{timestamp}\n{secret}".encode()
    hmac_code = hmac.new(secret_enc, string_to_sign_enc, digestmod=hashlib.sha256).digest()
    return urllib.parse.quote_plus(base64.b64encode(hmac_code))


def _vendor_feishu_sample(secret: str, timestamp: str) -> str:
    """Feishu's custom-bot Python sample (the string to sign is the HMAC key, the message is empty)."""
    key_enc = f"{timestamp}\n{secret}".encode()
    hmac_code = hmac.new(key_enc, b"", digestmod=hashlib.sha256).digest()
    return base64.b64encode(hmac_code).decode("utf-8")


def test_the_dingtalk_sample_chain_reproduces_dingtalks_published_example() -> None:
    # The vendor's own fixed vector (signature FAQ): HMAC-SHA256 over the timestamp, Base64, URL-encode.
    digest = hmac.new(b"testappSecret", b"1546084445901", hashlib.sha256).digest()
    assert (
        urllib.parse.quote_plus(base64.b64encode(digest))
        == "HCbG3xNE3vzhO%2Bu7qCUL1jS5hsu2n5r2cFhnTrtyDAE%3D"
    )


def test_the_vendor_samples_give_the_pinned_vectors() -> None:
    assert _vendor_dingtalk_sample(DINGTALK_SECRET, DINGTALK_TS_MS) == DINGTALK_SIGN_QUERY
    assert _vendor_feishu_sample(FEISHU_SECRET, FEISHU_TS_S) == FEISHU_SIGN


def test_dingtalk_sign_matches_the_known_answer() -> None:
    assert dingtalk.sign(DINGTALK_SECRET, DINGTALK_TS_MS) == DINGTALK_SIGN_B64


async def test_dingtalk_request_carries_the_known_timestamp_and_url_encoded_sign(
    make_rig: RigFactory,
) -> None:
    rig = await make_rig("dingtalk", secret=DINGTALK_SECRET)
    rig.adapter.clock = lambda: 1_764_000_000.0
    rig.fake.clock = lambda: 1_764_000_000.0
    endpoint = Endpoint(
        "dingtalk", "kat", {"access_token": "tok", "secret": DINGTALK_SECRET}, rig.endpoint.base_url
    )
    result = await rig.adapter.send(
        rig.session, endpoint, Part({"msgtype": "text", "text": {"content": "x"}})
    )
    (rec,) = rig.fake.received
    assert result.ok and rec.problems == []
    assert rec.query_string == f"access_token=tok&timestamp={DINGTALK_TS_MS}&sign={DINGTALK_SIGN_QUERY}"


def test_feishu_sign_matches_the_known_answer() -> None:
    assert feishu.sign(FEISHU_SECRET, FEISHU_TS_S) == FEISHU_SIGN


async def test_feishu_request_carries_the_known_timestamp_and_sign_in_the_body(make_rig: RigFactory) -> None:
    rig = await make_rig("feishu", secret=FEISHU_SECRET)
    rig.adapter.clock = lambda: 1_764_000_000.7  # seconds, truncated
    rig.fake.clock = lambda: 1_764_000_000.0
    endpoint = Endpoint("feishu", "kat", {"token": "hook", "secret": FEISHU_SECRET}, rig.endpoint.base_url)
    result = await rig.adapter.send(
        rig.session, endpoint, Part({"msg_type": "text", "content": {"text": "x"}})
    )
    (rec,) = rig.fake.received
    assert result.ok and rec.problems == []
    assert (rec.json["timestamp"], rec.json["sign"]) == (FEISHU_TS_S, FEISHU_SIGN)


def test_webhook_signature_matches_the_known_answer() -> None:
    assert webhook.signature(WEBHOOK_SECRET, WEBHOOK_TS, WEBHOOK_BODY) == WEBHOOK_SIGNATURE


async def test_webhook_request_is_the_known_body_with_the_known_signature(make_rig: RigFactory) -> None:
    rig = await make_rig("webhook", secret=WEBHOOK_SECRET)
    rig.adapter.clock = rig.fake.clock = lambda: 1_764_000_000.0
    endpoint = Endpoint(
        "webhook",
        "kat",
        {"url": "https://receiver.example/h", "secret": WEBHOOK_SECRET},
        rig.endpoint.base_url,
    )
    result = await rig.adapter.send(rig.session, endpoint, Part({"title": "绩效"}))
    (rec,) = rig.fake.received
    assert result.ok and rec.problems == []
    assert rec.body == WEBHOOK_BODY, "the signed bytes are exactly the documented body"
    assert rec.headers["X-Jixiao-Signature"] == WEBHOOK_SIGNATURE
    assert rec.headers["X-Jixiao-Timestamp"] == "1764000000"
