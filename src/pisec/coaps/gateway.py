"""pisec-coapsd: CoAP over DTLS (pre-shared keys) into the local MQTT broker.

A device that POSTs or PUTs to /ps/<topic> (the publish/subscribe shape of
draft-ietf-core-coap-pubsub) publishes <topic> on the broker as its own
MQTT identity, the PSK identity it authenticated with: the broker's ACL
decides what it may write, and a denial comes back as 4.03.

    pisec-coapsd CONFIG KEYS

CONFIG (JSON, written by the pisec_coaps role): the addresses and port to
listen on, the broker's loopback address, the identity hint, limits.
KEYS (JSON, readable by root and the gateway's user alone): per device the
identity, its pre-shared key in hex and the MQTT password the gateway logs
in with as that device. SIGHUP reads KEYS again from its path (not a copy
made at start): a rotated or revoked device takes effect without dropping
the others. The MQTT publish is synchronous, on loopback, with a 2-second
timeout: a broker that does not answer holds every device's requests that
long (5.03 follows).

Logs name the device, the topic and the outcome; never a key, a password
or a payload.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from . import mqtt5
from .libcoap import POST, PUT, CoapError, Library, Request, Response, Server

LOG = logging.getLogger("pisec-coapsd")

PREFIX = b"ps"
MAX_TOPIC_BYTES = 1024
# What a class-1 device sends in one CoAP message; larger requests would
# need block-wise transfer, which the gateway does not offer.
DEFAULT_MAX_PAYLOAD = 1024


class TopicError(ValueError):
    """The path does not name one MQTT topic a device may publish to."""


def topic_for(path: list[bytes]) -> str:
    """The MQTT topic of /ps/<level>/<level>...: every level non-empty UTF-8
    without a wildcard, NUL or '/' of its own, and no topic under $ (the
    broker's own)."""
    if len(path) < 2 or path[0] != PREFIX:
        raise LookupError("not under /ps")
    levels: list[str] = []
    for raw in path[1:]:
        try:
            level = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise TopicError("a topic level is not UTF-8") from None
        if not level or any(character in level for character in "+#/\0"):
            raise TopicError(f"topic level {level!r} is empty or holds + # / or NUL")
        if not level.isprintable():
            raise TopicError(f"topic level {level!r} holds a control character")
        levels.append(level)
    topic = "/".join(levels)
    if topic.startswith("$"):
        raise TopicError("topics under $ are the broker's")
    if len(topic.encode("utf-8")) > MAX_TOPIC_BYTES:
        raise TopicError(f"the topic is longer than {MAX_TOPIC_BYTES} bytes")
    return topic


class Publishing(Protocol):
    def publish(self, topic: str, payload: bytes) -> int: ...

    def ping_if_idle(self) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Device:
    identity: str
    key: bytes
    mqtt_password: bytes


class Gateway:
    """Answers each CoAP request: publish as the device, say how it went."""

    def __init__(
        self,
        devices: Mapping[str, Device],
        connect: Callable[[Device], Publishing],
        *,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
    ) -> None:
        self._connect = connect
        self._max_payload = max_payload
        self._publishers: dict[str, Publishing] = {}
        self.devices: dict[str, Device] = {}
        self.replace(devices)

    def replace(self, devices: Mapping[str, Device]) -> None:
        """New keys and passwords: a device that is gone or changed loses
        its broker connection (the next request opens one as it is now)."""
        for identity in list(self._publishers):
            if devices.get(identity) != self.devices.get(identity):
                self._publishers.pop(identity).close()
        self.devices = dict(devices)

    def keepalive(self) -> None:
        """Ping the broker on connections idle for half their keepalive, so
        that a device that sends rarely keeps its connection (and does not
        pay a login on each request)."""
        for publisher in self._publishers.values():
            publisher.ping_if_idle()

    def close(self) -> None:
        for publisher in self._publishers.values():
            publisher.close()
        self._publishers.clear()

    def handle(self, request: Request) -> Response:
        identity = request.identity.decode("utf-8", "replace")
        device = self.devices.get(identity)
        if device is None:
            return Response("4.01")
        try:
            topic = topic_for(request.path)
        except LookupError:
            return Response("4.04")
        except TopicError as problem:
            LOG.info("%s: refused: %s", identity, problem)
            return Response("4.00", str(problem).encode())
        if request.method not in (POST, PUT):
            return Response("4.05")
        if len(request.payload) > self._max_payload:
            return Response("4.13")
        publisher = self._publishers.get(identity)
        if publisher is None:
            publisher = self._publishers[identity] = self._connect(device)
        try:
            reason = publisher.publish(topic, request.payload)
        except (OSError, mqtt5.MqttError) as problem:
            LOG.warning("%s: %s: the broker is not reachable: %s", identity, topic, problem)
            return Response("5.03")
        if reason in (mqtt5.SUCCESS, mqtt5.NO_MATCHING_SUBSCRIBERS):
            LOG.info("%s: published %s (%d bytes)", identity, topic, len(request.payload))
            return Response("2.04")
        if reason == mqtt5.NOT_AUTHORIZED:
            LOG.info("%s: %s: denied by the broker's ACL", identity, topic)
            return Response("4.03")
        LOG.warning("%s: %s: the broker answered reason code 0x%02x", identity, topic, reason)
        return Response("5.02")


def load_devices(path: Path) -> dict[str, Device]:
    """The key file: {"devices": [{"identity", "psk_hex", "mqtt_password"}]}."""
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: cannot read it ({error.__class__.__name__})") from None
    entries = data.get("devices") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ValueError(f"{path}: no list of devices")
    devices: dict[str, Device] = {}
    for number, entry in enumerate(entries, start=1):
        where = f"{path}: device {number}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: not an object")
        identity, key, password = (
            entry.get("identity"),
            entry.get("psk_hex"),
            entry.get("mqtt_password"),
        )
        if not isinstance(identity, str) or not identity or identity in devices:
            raise ValueError(f"{where}: identity missing or repeated")
        try:
            raw_key = bytes.fromhex(key) if isinstance(key, str) else b""
        except ValueError:
            raw_key = b""
        if not 16 <= len(raw_key) <= 64:
            raise ValueError(f"{where} ({identity}): psk_hex must be 16 to 64 bytes in hex")
        if not isinstance(password, str) or not password:
            raise ValueError(f"{where} ({identity}): mqtt_password missing")
        devices[identity] = Device(identity, raw_key, password.encode())
    return devices


@dataclass(frozen=True)
class Config:
    listen: list[str]
    port: int
    broker_host: str
    broker_port: int
    hint: str = "pisec"
    max_payload: int = DEFAULT_MAX_PAYLOAD
    max_sessions: int = 64
    max_handshakes: int = 16
    session_timeout: int = 300

    @classmethod
    def load(cls, path: Path) -> Config:
        try:
            data: Any = json.loads(path.read_text(encoding="utf-8"))
            config = cls(**data)
        except (OSError, ValueError, TypeError) as error:
            raise ValueError(f"{path}: {error}") from None
        if not config.listen or not 1 <= config.port <= 65535:
            raise ValueError(f"{path}: listen must name addresses and port be 1..65535")
        return config


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if len(arguments) == 2 and arguments[0] == "--check-keys":
        # The role's `validate:` of a new key file, before it replaces the
        # one the running gateway reloads. Names the file and the device,
        # never a key or a password.
        try:
            count = len(load_devices(Path(arguments[1])))
        except ValueError as problem:
            print(problem, file=sys.stderr)
            return 1
        print(f"{arguments[1]}: {count} devices")
        return 0
    if len(arguments) != 2 or arguments[0].startswith("-"):
        print("usage: pisec-coapsd CONFIG KEYS | pisec-coapsd --check-keys KEYS", file=sys.stderr)
        return 2
    config_path, keys_path = Path(arguments[0]), Path(arguments[1])
    try:
        config = Config.load(config_path)
        devices = load_devices(keys_path)
        library = Library()
    except (ValueError, CoapError) as problem:
        LOG.error("%s", problem)
        return 1
    library.log_to(lambda level, message: LOG.warning("libcoap: %s", message))

    def connect(device: Device) -> mqtt5.Publisher:
        return mqtt5.Publisher(
            (config.broker_host, config.broker_port),
            device.identity,
            device.mqtt_password,
            timeout=2.0,
        )

    gateway = Gateway(devices, connect, max_payload=config.max_payload)
    server = Server(
        library,
        {device.identity.encode(): device.key for device in devices.values()},
        gateway.handle,
        hint=config.hint.encode(),
        max_sessions=config.max_sessions,
        max_handshakes=config.max_handshakes,
        session_timeout=config.session_timeout,
    )
    try:
        for host in config.listen:
            server.listen(host, config.port)
    except CoapError as problem:
        LOG.error("%s", problem)
        return 1
    flags = {"reload": False, "stop": False}
    signal.signal(signal.SIGHUP, lambda *_: flags.update(reload=True))
    signal.signal(signal.SIGTERM, lambda *_: flags.update(stop=True))
    LOG.info(
        "listening for CoAPs on %s port %d, %d devices",
        ", ".join(config.listen),
        config.port,
        len(devices),
    )
    while not flags["stop"]:
        server.run_once(500)
        gateway.keepalive()
        while server.refused:
            refused = server.refused.pop().decode("utf-8", "replace")
            LOG.warning("refused a handshake from unknown identity %r", refused)
        if flags["reload"]:
            flags["reload"] = False
            try:
                devices = load_devices(keys_path)
            except ValueError as problem:
                LOG.error("reload refused, keeping the devices as they were: %s", problem)
                continue
            gateway.replace(devices)
            server.set_keys({d.identity.encode(): d.key for d in devices.values()})
            LOG.info("reloaded: %d devices", len(devices))
    gateway.close()
    server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
