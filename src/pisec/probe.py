"""Probe a live broker: TLS handshake facts, then a real MQTT round trip.

The TLS phase uses a plain socket so that the handshake's facts (version,
cipher, served certificate) are read before MQTT starts; the MQTT phase uses
paho-mqtt over a fresh TLS connection with the same context.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from pisec.certfile import load_certificates, load_private_key
from pisec.errors import PisecError
from pisec.rules import serial_hex

DEFAULT_MQTTS_PORT = 8883
MQTT_VERSIONS = {"5": mqtt.MQTTv5, "3.1.1": mqtt.MQTTv311}
NOT_AUTHORIZED = 0x87  # MQTT 5 reason code


@dataclass(frozen=True)
class ProbeTarget:
    host: str
    port: int

    @classmethod
    def parse(cls, url: str) -> ProbeTarget:
        parts = urlsplit(url)
        if parts.scheme != "mqtts":
            raise PisecError(
                url, f"scheme {parts.scheme or '(none)'!r} is not supported: use mqtts://HOST:PORT"
            )
        if not parts.hostname:
            raise PisecError(url, "no host in the URL")
        try:
            port = parts.port or DEFAULT_MQTTS_PORT
        except ValueError as exc:
            raise PisecError(url, f"bad port: {exc}") from None
        return cls(parts.hostname, port)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"mqtts://{host}:{self.port}"


@dataclass(frozen=True)
class ProbeOptions:
    target: ProbeTarget
    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None
    username: str | None = None
    password: str | None = None
    timeout: float = 10.0
    mqtt_version: str = "5"  # a key of MQTT_VERSIONS


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class ProbeResult:
    target: str
    tls_version: str | None = None
    cipher: str | None = None
    key_exchange_group: str | None = None
    server_serial: str | None = None
    server_subject: str | None = None
    server_days_left: int | None = None
    round_trip_ms: float | None = None
    # $SYS/broker/publish/messages/dropped: QoS 1/2 messages the broker
    # dropped since it started because a client's queue was full. None when
    # the broker does not let this identity read it.
    dropped_messages: int | None = None
    checks: tuple[Check, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)


def read_password_file(path: Path) -> str:
    """The password: the file's first line, without its line ending."""
    if path.is_dir():
        raise PisecError(str(path), "password file is a directory")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise PisecError(str(path), f"cannot read password file: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise PisecError(str(path), "password file is not UTF-8 text") from None
    return _first_line(lines, str(path))


def read_password_stream(stream: TextIO, name: str) -> str:
    """The password from a pipe (`--password-file -`): its first line. A
    pipe is seen by no other process, unlike argv or the environment."""
    try:
        line = stream.readline(65536)
    except UnicodeDecodeError:
        raise PisecError(name, "password is not UTF-8 text") from None
    return _first_line(line.splitlines(), name)


def _first_line(lines: list[str], name: str) -> str:
    if not lines or not lines[0]:
        raise PisecError(name, "password file is empty")
    return lines[0]


def _read_file(path: Path, what: str) -> None:
    if path.is_dir():
        raise PisecError(str(path), f"{what} is a directory")
    try:
        path.read_bytes()
    except OSError as exc:
        raise PisecError(str(path), f"cannot read {what}: {exc.strerror or exc}") from None


def build_context(options: ProbeOptions) -> ssl.SSLContext:
    """A client context that trusts only the given CA and checks the host name."""
    _read_file(options.ca_file, "CA file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    try:
        context.load_verify_locations(cafile=str(options.ca_file))
    except ssl.SSLError as exc:
        raise PisecError(str(options.ca_file), f"not a PEM CA certificate ({exc.reason})") from None
    if options.cert_file is not None:
        if options.key_file is None:
            raise PisecError("--cert", "needs --key")
        _check_client_pair(options.cert_file, options.key_file)
        try:
            context.load_cert_chain(str(options.cert_file), str(options.key_file))
        except ssl.SSLError as exc:
            why = exc.reason or exc.strerror or str(exc)
            raise PisecError(
                str(options.cert_file), f"certificate and key do not load together ({why})"
            ) from None
    return context


def _check_client_pair(cert_file: Path, key_file: Path) -> None:
    """Say what is wrong with a client certificate and key in words, before
    the ssl module does in codes (or, for an encrypted key, asks for a
    passphrase on the terminal)."""
    _read_file(cert_file, "client certificate")
    _read_file(key_file, "client key")
    certificate = load_certificates(cert_file, "client certificate")[0]
    key = load_private_key(key_file)
    for path, what in ((cert_file, "client certificate"), (key_file, "client key")):
        if b"-----BEGIN" not in path.read_bytes():
            raise PisecError(str(path), f"the {what} must be PEM, not DER")
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    ours = key.public_key().public_bytes(serialization.Encoding.DER, spki)
    try:
        theirs = certificate.public_key().public_bytes(serialization.Encoding.DER, spki)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise PisecError(
            str(cert_file), f"pisec cannot read the certificate's public key ({exc})"
        ) from None
    if ours != theirs:
        raise PisecError(str(key_file), f"is not the private key of {cert_file}")


def explain_tls_error(exc: BaseException, target: ProbeTarget) -> str:
    """Words a user understands for a failed handshake."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        code = exc.verify_code
        if code in (2, 18, 19, 20, 21):
            return "untrusted CA: the broker's certificate was not issued by the given CA"
        if code in (62, 64):  # hostname, IP address mismatch
            return f"name mismatch: the broker's certificate does not name {target.host}"
        if code == 10:
            return "the broker's certificate has expired"
        if code == 9:
            return "the broker's certificate is not yet valid"
        if code == 23:
            return "the broker's certificate is revoked"
        return f"certificate rejected: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        reason = (exc.reason or "").upper()
        if "PROTOCOL_VERSION" in reason or "UNSUPPORTED_PROTOCOL" in reason:
            return "TLS version refused: broker and client share no TLS version"
        if "HANDSHAKE_FAILURE" in reason or "NO_SHARED_CIPHER" in reason:
            return "handshake refused: no shared cipher or key-exchange group"
        if "CERTIFICATE_REQUIRED" in reason or "CERTIFICATE REQUIRED" in reason:
            return "the broker requires a client certificate"
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timeout: no answer from the broker"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused: nothing listens on that port"
    if isinstance(exc, socket.gaierror):
        return f"unknown host {target.host}"
    if isinstance(exc, OSError):
        return f"cannot connect: {exc.strerror or exc}"
    return str(exc)


def _post_handshake_refusal(tls: ssl.SSLSocket, timeout: float) -> str | None:
    """In TLS 1.3 a server that requires a client certificate says so only
    after the handshake, with an alert. Listen briefly for it; a server that
    is waiting for MQTT's CONNECT stays silent."""
    tls.settimeout(min(0.5, timeout))
    try:
        data = tls.recv(1)
    except TimeoutError:
        return None
    except ssl.SSLError as exc:
        return explain_tls_error(exc, ProbeTarget("", 0))
    except OSError as exc:
        return f"the broker closed the connection after the handshake ({exc.strerror or exc})"
    if not data:
        return "the broker closed the connection after the handshake"
    return None


def _handshake(options: ProbeOptions, context: ssl.SSLContext) -> tuple[ProbeResult, list[Check]]:
    target = options.target
    checks: list[Check] = []
    try:
        with (
            socket.create_connection((target.host, target.port), timeout=options.timeout) as raw,
            context.wrap_socket(raw, server_hostname=target.host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
            version = tls.version()
            cipher = tls.cipher()
            if options.cert_file is None:
                refusal = _post_handshake_refusal(tls, options.timeout)
                if refusal:
                    checks.append(Check("tls handshake", False, refusal))
                    return ProbeResult(str(target), tls_version=version), checks
    except (ConnectionRefusedError, socket.gaierror) as exc:
        # Nothing to check: the broker is not there. An input error, not a finding.
        raise PisecError(str(target), explain_tls_error(exc, target)) from None
    except (OSError, ssl.SSLError) as exc:
        checks.append(Check("tls handshake", False, explain_tls_error(exc, target)))
        return ProbeResult(str(target)), checks
    checks.append(Check("tls handshake", True, f"{version} {cipher[0] if cipher else ''}".strip()))
    checks.append(Check("served chain", True, "verifies against the given CA"))
    checks.append(Check("host name", True, f"{target.host} is in the certificate"))
    serial = subject = None
    days_left = None
    if der:
        certificate = x509.load_der_x509_certificate(der)
        serial = serial_hex(certificate.serial_number)
        subject = certificate.subject.rfc4514_string()
        days_left = (certificate.not_valid_after_utc - datetime.now(UTC)).days
    return (
        ProbeResult(
            str(target),
            tls_version=version,
            cipher=cipher[0] if cipher else None,
            server_serial=serial,
            server_subject=subject,
            server_days_left=days_left,
        ),
        checks,
    )


# Mosquitto 2.0 answers a wrong password with "Not authorized" too, so at
# CONNECT time the two cannot be told apart; say so rather than guess.
_CONNACK_WORDS = {
    "Bad user name or password": "bad credentials: the broker refused the user name or password",
    "Not authorized": (
        "bad credentials or not authorised: the broker refused this client at CONNECT"
    ),
}


def _refusal(packet: str, reason: ReasonCode, topic: str, mqtt_version: str) -> str:
    """Words for a SUBACK or PUBACK failure code (0x80 and above)."""
    # MQTT 3.1.1 has one failure code, 0x80, which mosquitto sends for an ACL
    # refusal; MQTT 5 says "not authorised" with 0x87.
    if reason.value == NOT_AUTHORIZED or (mqtt_version == "3.1.1" and reason.value == 0x80):
        action = "subscribe to" if packet == "SUBSCRIBE" else "publish to"
        return (
            f"not authorised to {action} {topic}: the broker refused the {packet} "
            f"(reason code 0x{reason.value:02X}); its ACL does not allow this client"
        )
    return f"the broker refused the {packet} to {topic}: {reason} (0x{reason.value:02X})"


def _lost_message(published: bool, topic: str, options: ProbeOptions) -> str:
    """Why a PUBLISH may not have come back when nothing said so."""
    waited = f"within {options.timeout:g} s"
    if options.mqtt_version == "3.1.1":
        return (
            f"timeout: the published message did not come back {waited}; under MQTT 3.1.1 "
            f"a broker silently drops a PUBLISH its ACL forbids, so an ACL may forbid this "
            f"client to publish to or read {topic}"
        )
    if published:
        return (
            f"timeout: the broker accepted the PUBLISH but the message did not come back "
            f"{waited}; an ACL may forbid this client to read {topic}"
        )
    return f"timeout: no PUBACK from the broker {waited}"


def _identity(options: ProbeOptions) -> str:
    """Who the broker will take this client for: the user name, or the CN
    of the client certificate (use_identity_as_username)."""
    if options.username is not None:
        return options.username
    if options.cert_file is not None:
        certificate = load_certificates(options.cert_file, "client certificate")[0]
        names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if names:
            return str(names[0].value)
    return "anonymous"


DROPPED_TOPIC = "$SYS/broker/publish/messages/dropped"
# mosquitto publishes $SYS retained: the value comes on SUBSCRIBE.
_DROPPED_WAIT = 2.0


def _dropped(payload: bytes) -> int | None:
    text = payload.decode("ascii", "replace")
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 19 else None


def _round_trip(
    options: ProbeOptions, context: ssl.SSLContext
) -> tuple[float | None, Check, int | None]:
    """CONNECT, SUBSCRIBE to a fresh topic, PUBLISH to it, wait for the
    message; then read the broker's count of dropped messages."""
    client_id = f"pisec-probe-{uuid.uuid4().hex[:12]}"
    # Under the identity: pisec's default ACL pattern `pisec/probe/%u/#`
    # gives every identity exactly this tree, which no other can read or
    # write. (A pisec broker replaces the client id with the identity.)
    topic = f"pisec/probe/{_identity(options)}/round-trip-{uuid.uuid4().hex[:12]}"
    payload = uuid.uuid4().bytes
    connected = threading.Event()
    subscribed = threading.Event()
    published = threading.Event()  # PUBACK received, whatever its reason code
    finished = threading.Event()  # the message came back, or the PUBLISH was refused
    received = threading.Event()
    dropped_read = threading.Event()
    dropped: list[int | None] = []
    failure: list[str] = []
    version = options.mqtt_version
    # MQTT 5 (the default) has reason codes that tell bad credentials from
    # not authorised, and a refused PUBLISH from a lost one.
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTT_VERSIONS[version]
    )
    client.tls_set_context(context)
    if options.username is not None:
        client.username_pw_set(options.username, options.password)

    def on_connect(c: mqtt.Client, _u: object, _f: object, reason: ReasonCode, _p: object) -> None:
        if reason.is_failure:
            failure.append(_CONNACK_WORDS.get(str(reason), f"connection refused: {reason}"))
            connected.set()
            return
        connected.set()
        c.subscribe(topic, qos=1)

    def on_subscribe(
        _c: mqtt.Client, _u: object, _m: object, reasons: list[ReasonCode], _p: object
    ) -> None:
        refused = [reason for reason in reasons if reason.is_failure]
        if finished.is_set():  # the SUBACK for the dropped-messages counter
            if refused:
                dropped_read.set()
            return
        if refused:
            failure.append(_refusal("SUBSCRIBE", refused[0], topic, version))
        subscribed.set()

    def on_publish(_c: mqtt.Client, _u: object, _m: object, reason: ReasonCode, _p: object) -> None:
        if reason.is_failure:
            failure.append(_refusal("PUBLISH", reason, topic, version))
            finished.set()
        published.set()

    def on_message(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        if message.topic == DROPPED_TOPIC:
            dropped.append(_dropped(bytes(message.payload)))
            dropped_read.set()
        elif message.topic == topic and message.payload == payload:
            received.set()
            finished.set()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_publish = on_publish
    client.on_message = on_message
    deadline = time.monotonic() + options.timeout
    try:
        if version == "5":
            client.connect(options.target.host, options.target.port, keepalive=30, clean_start=True)
        else:
            client.connect(options.target.host, options.target.port, keepalive=30)
    except (OSError, ssl.SSLError) as exc:
        return None, Check("mqtt round trip", False, explain_tls_error(exc, options.target)), None
    client.loop_start()
    try:
        if not connected.wait(max(0.0, deadline - time.monotonic())):
            return (
                None,
                Check("mqtt round trip", False, "timeout: no CONNACK from the broker"),
                None,
            )
        if failure:
            return None, Check("mqtt round trip", False, failure[0]), None
        if not subscribed.wait(max(0.0, deadline - time.monotonic())):
            return None, Check("mqtt round trip", False, "timeout: no SUBACK from the broker"), None
        if failure:
            return None, Check("mqtt round trip", False, failure[0]), None
        started = time.perf_counter()
        client.publish(topic, payload, qos=1)
        finished.wait(max(0.0, deadline - time.monotonic()))
        if failure:
            return None, Check("mqtt round trip", False, failure[0]), None
        if not received.is_set():
            return (
                None,
                Check("mqtt round trip", False, _lost_message(published.is_set(), topic, options)),
                None,
            )
        latency_ms = (time.perf_counter() - started) * 1000
        client.subscribe(DROPPED_TOPIC, qos=0)
        dropped_read.wait(min(_DROPPED_WAIT, max(0.0, deadline - time.monotonic())))
    finally:
        client.disconnect()
        client.loop_stop()
    check = Check("mqtt round trip", True, f"{latency_ms:.1f} ms on {topic}")
    return latency_ms, check, (dropped[0] if dropped else None)


def probe(options: ProbeOptions) -> ProbeResult:
    context = build_context(options)
    facts, checks = _handshake(options, context)
    if not all(check.ok for check in checks):
        return ProbeResult(facts.target, checks=tuple(checks))
    latency_ms, round_trip, dropped = _round_trip(options, context)
    checks.append(round_trip)
    return ProbeResult(
        facts.target,
        tls_version=facts.tls_version,
        cipher=facts.cipher,
        key_exchange_group=facts.key_exchange_group,
        server_serial=facts.server_serial,
        server_subject=facts.server_subject,
        server_days_left=facts.server_days_left,
        round_trip_ms=latency_ms,
        dropped_messages=dropped,
        checks=tuple(checks),
    )
