"""Probe a CoAPs gateway: a DTLS-PSK handshake (its protocol and suite),
a CoAP POST to /ps/<topic>, and with --mqtt-url the proof that the message
reached the broker: an MQTT subscriber over TLS receives it.

The DTLS is libcoap's and GnuTLS's (pisec.coaps.libcoap); the key is read
from a file and stays in this process (coap-client takes keys on its
command line and prints them at its verbose levels).
"""

from __future__ import annotations

import re
import socket
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from pisec.coaps.libcoap import POST, Client, CoapError, Library
from pisec.errors import PisecError
from pisec.probe import Check, ProbeOptions, build_context, explain_tls_error

DEFAULT_COAPS_PORT = 5684
EXPECTED_SUITE = "TLS_PSK_WITH_AES_128_CCM_8"


@dataclass(frozen=True)
class CoapsTarget:
    host: str
    port: int
    address: str  # numeric, what libcoap binds to

    @classmethod
    def parse(cls, url: str) -> CoapsTarget:
        parts = urlsplit(url)
        if parts.scheme != "coaps":
            raise PisecError(url, "use coaps://HOST[:PORT]")
        if not parts.hostname:
            raise PisecError(url, "no host in the URL")
        try:
            port = parts.port or DEFAULT_COAPS_PORT
        except ValueError as exc:
            raise PisecError(url, f"bad port: {exc}") from None
        try:
            found = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_DGRAM)
        except OSError as exc:
            raise PisecError(url, f"cannot resolve {parts.hostname}: {exc}") from None
        return cls(parts.hostname, port, str(found[0][4][0]))

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"coaps://{host}:{self.port}"


def read_psk_file(path: Path, psk_format: str = "text") -> bytes:
    """The key. `text`: the file's bytes, exactly (16 to 64 of them), as a
    text key is used. `raw`: the file holds the key's bytes in hex (what a
    bundle holds for a raw key, which is 16 bytes)."""
    if path.is_dir():
        raise PisecError(str(path), "key file is a directory")
    try:
        key = path.read_bytes()
    except OSError as exc:
        raise PisecError(str(path), f"cannot read key file: {exc.strerror or exc}") from None
    if psk_format == "raw":
        text = key.strip()
        if not re.fullmatch(rb"(?:[0-9a-fA-F]{2}){16,64}", text):
            raise PisecError(
                str(path), "--psk-format raw: the file must hold 16 to 64 bytes in hex"
            )
        return bytes.fromhex(text.decode("ascii"))
    if not 16 <= len(key) <= 64:
        raise PisecError(str(path), f"a pre-shared key is 16 to 64 bytes (the file has {len(key)})")
    return key


@dataclass(frozen=True)
class CoapsProbeOptions:
    target: CoapsTarget
    identity: str
    key: bytes = field(repr=False)
    topic: str | None = None
    timeout: float = 10.0
    mqtt: ProbeOptions | None = None  # the subscriber that confirms delivery


@dataclass(frozen=True)
class CoapsProbeResult:
    target: str
    identity: str
    topic: str
    protocol: str | None = None
    cipher: str | None = None
    handshake_ms: float | None = None
    coap_code: str | None = None
    request_ms: float | None = None
    delivered_ms: float | None = None
    checks: tuple[Check, ...] = ()

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)


class _Subscriber:
    """An MQTT subscriber over TLS on one topic, until closed."""

    def __init__(self, options: ProbeOptions, topic: str) -> None:
        self.topic = topic
        self.ready = threading.Event()
        self.received = threading.Event()
        self.received_at = 0.0
        self.failure: str | None = None
        self.payload: bytes | None = None
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"pisec-probe-{uuid.uuid4().hex[:12]}",
            protocol=mqtt.MQTTv5,
        )
        self._client.tls_set_context(build_context(options))
        if options.username is not None:
            self._client.username_pw_set(options.username, options.password)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        try:
            self._client.connect(options.target.host, options.target.port, keepalive=30)
        except (OSError, ssl.SSLError) as exc:
            self.failure = explain_tls_error(exc, options.target)
            self.ready.set()
            return
        self._client.loop_start()

    def _on_connect(
        self, c: mqtt.Client, _u: object, _f: object, r: ReasonCode, _p: object
    ) -> None:
        if r.is_failure:
            self.failure = f"the broker refused the subscriber: {r}"
            self.ready.set()
            return
        c.subscribe(self.topic, qos=1)

    def _on_subscribe(
        self, _c: mqtt.Client, _u: object, _m: object, reasons: list[ReasonCode], _p: object
    ) -> None:
        if any(reason.is_failure for reason in reasons):
            self.failure = f"the broker refused the subscription to {self.topic}"
        self.ready.set()

    def _on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        if message.topic == self.topic and self.payload is None:
            self.payload = bytes(message.payload)
            self.received_at = time.monotonic()
            self.received.set()

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def probe_coaps(options: CoapsProbeOptions, library: Library | None = None) -> CoapsProbeResult:
    topic = options.topic or f"pisec/probe/{options.identity}/coaps-{uuid.uuid4().hex[:12]}"
    payload = uuid.uuid4().hex.encode()
    base = CoapsProbeResult(str(options.target), options.identity, topic)
    try:
        client = Client(library or Library())
    except CoapError as problem:
        return _with(base, Check("dtls handshake", False, str(problem)))
    subscriber: _Subscriber | None = None
    checks: list[Check] = []
    try:
        if options.mqtt is not None:
            subscriber = _Subscriber(options.mqtt, topic)
            if not subscriber.ready.wait(options.timeout) or subscriber.failure:
                return _with(
                    base,
                    Check("mqtt subscriber", False, subscriber.failure or "no SUBACK in time"),
                )
        sent = time.monotonic()
        exchange = client.request(
            options.target.address,
            options.target.port,
            options.identity.encode(),
            options.key,
            POST,
            [b"ps", *(level.encode() for level in topic.split("/"))],
            payload,
            options.timeout,
        )
        result = CoapsProbeResult(
            base.target,
            base.identity,
            topic,
            exchange.protocol,
            exchange.suite,
            exchange.handshake_ms,
            exchange.code,
            exchange.request_ms,
        )
        if exchange.handshake_ms is None:
            detail = exchange.failure or "failed"
            if "timed out" in detail:
                detail += ": a wrong key, or no CoAPs server at this address"
            elif "0x0000" in detail:
                detail += ": the server closed it (an identity it does not know?)"
            return _with(result, Check("dtls handshake", False, detail))
        checks.append(
            Check(
                "dtls handshake",
                True,
                f"{exchange.protocol}, {exchange.suite}, {exchange.handshake_ms:.1f} ms",
            )
        )
        if exchange.suite != EXPECTED_SUITE:
            checks.append(Check("cipher suite", False, f"{exchange.suite}, not {EXPECTED_SUITE}"))
        if exchange.code != "2.04":
            words = {"4.03": "the broker's ACL denies this identity the topic"}
            detail = f"{exchange.code or 'no answer'} for POST /ps/{topic}"
            if exchange.code in words:
                detail += f": {words[exchange.code]}"
            checks.append(Check("coap publish", False, detail))
            return _with(result, *checks)
        checks.append(Check("coap publish", True, f"2.04 in {exchange.request_ms:.1f} ms"))
        if subscriber is not None:
            left = max(0.0, options.timeout - (time.monotonic() - sent))
            if subscriber.received.wait(left) and subscriber.payload == payload:
                delivered_ms = (subscriber.received_at - sent) * 1000
                checks.append(
                    Check("mqtt delivery", True, f"arrived on {topic} {delivered_ms:.1f} ms after")
                )
                return _with(replace(result, delivered_ms=delivered_ms), *checks)
            checks.append(Check("mqtt delivery", False, f"nothing arrived on {topic} in time"))
        return _with(result, *checks)
    finally:
        if subscriber is not None:
            subscriber.close()


def _with(result: CoapsProbeResult, *checks: Check) -> CoapsProbeResult:
    return replace(result, checks=tuple(checks))
