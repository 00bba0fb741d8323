"""A minimal MQTT 5 publisher: connect with a user name and password,
publish at QoS 1, and report the broker's reason code.

The CoAPs gateway publishes as each device's own identity and must learn
whether the broker's ACL let the message through: mosquitto answers a
denied QoS 1 PUBLISH from an MQTT 5 client with PUBACK reason code 0x87
(not authorized), which MQTT 3.1.1 cannot express and which the paho
release of Debian bookworm (1.6) does not report. This module runs on the
broker Pi with the standard library only (the gateway is copied there,
without a virtualenv), and talks to the broker on loopback.

Only what the gateway needs is here: CONNECT, CONNACK, PUBLISH (QoS 1),
PUBACK, PINGREQ/PINGRESP and DISCONNECT. Everything the broker sends is
parsed with bounds checked; anything unexpected closes the connection.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from dataclasses import dataclass

# Reason codes (MQTT 5.0, 2.4) the gateway tells apart.
SUCCESS = 0x00
NO_MATCHING_SUBSCRIBERS = 0x10
NOT_AUTHORIZED = 0x87

# Control packet types (the fixed header's high nibble).
CONNECT = 1
CONNACK = 2
PUBLISH = 3
PUBACK = 4
PINGREQ = 12
PINGRESP = 13
DISCONNECT = 14

MAX_REMAINING_LENGTH = 268_435_455  # four bytes of variable byte integer
# What the broker may send this client: CONNACK and PUBACK with their
# properties (a reason string at most), PINGRESP, DISCONNECT. A larger
# packet is refused before it is read.
MAX_INCOMING = 64 * 1024


class MqttError(Exception):
    """The broker refused, closed, or said something this client cannot read."""


@dataclass(frozen=True)
class Packet:
    kind: int
    flags: int
    body: bytes


def varint(value: int) -> bytes:
    """A variable byte integer (MQTT 5.0, 1.5.5)."""
    if not 0 <= value <= MAX_REMAINING_LENGTH:
        raise ValueError(f"{value} does not fit a variable byte integer")
    out = bytearray()
    while True:
        byte, value = value % 128, value // 128
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def read_varint(data: bytes, offset: int) -> tuple[int, int]:
    """The variable byte integer at `offset` and the offset after it."""
    value = 0
    for index in range(4):
        if offset + index >= len(data):
            raise MqttError("truncated variable byte integer")
        byte = data[offset + index]
        value += (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            return value, offset + index + 1
    raise MqttError("variable byte integer longer than four bytes")


def utf8(text: str) -> bytes:
    """A UTF-8 encoded string (MQTT 5.0, 1.5.4): no NUL, at most 65,535 bytes."""
    encoded = text.encode("utf-8")
    if "\0" in text or len(encoded) > 0xFFFF:
        raise ValueError("an MQTT string has no NUL and at most 65,535 bytes")
    return struct.pack("!H", len(encoded)) + encoded


def packet(kind: int, flags: int, body: bytes) -> bytes:
    return bytes([(kind << 4) | flags]) + varint(len(body)) + body


def connect_packet(client_id: str, username: str, password: bytes, keepalive: int) -> bytes:
    """CONNECT with clean start, a user name and a password, no properties."""
    if not 0 <= keepalive <= 0xFFFF or len(password) > 0xFFFF:
        raise ValueError("keepalive and password must fit two bytes")
    flags = 0x80 | 0x40 | 0x02  # user name, password, clean start
    variable = utf8("MQTT") + bytes([5, flags]) + struct.pack("!H", keepalive) + varint(0)
    payload = utf8(client_id) + utf8(username) + struct.pack("!H", len(password)) + password
    return packet(CONNECT, 0, variable + payload)


def publish_packet(topic: str, payload: bytes, packet_id: int) -> bytes:
    """PUBLISH at QoS 1, not retained, no properties."""
    if not 1 <= packet_id <= 0xFFFF:
        raise ValueError("a packet identifier is 1..65535")
    body = utf8(topic) + struct.pack("!H", packet_id) + varint(0) + payload
    return packet(PUBLISH, 0x02, body)


def parse_connack(body: bytes) -> int:
    """The CONNACK's reason code (MQTT 5.0, 3.2)."""
    if len(body) < 3:
        raise MqttError("CONNACK too short")
    if body[0] & 0xFE:
        raise MqttError("CONNACK with reserved flags set")
    length, end = read_varint(body, 2)
    if end + length != len(body):
        raise MqttError("CONNACK properties do not fill the packet")
    return body[1]


def parse_puback(body: bytes) -> tuple[int, int]:
    """The PUBACK's packet identifier and reason code (MQTT 5.0, 3.4): a
    two-byte PUBACK means success."""
    if len(body) < 2:
        raise MqttError("PUBACK too short")
    (packet_id,) = struct.unpack_from("!H", body)
    if len(body) == 2:
        return packet_id, SUCCESS
    reason = body[2]
    if len(body) > 3:
        length, end = read_varint(body, 3)
        if end + length != len(body):
            raise MqttError("PUBACK properties do not fill the packet")
    return packet_id, reason


def parse_disconnect(body: bytes) -> int:
    """The DISCONNECT's reason code (0 when absent)."""
    return body[0] if body else SUCCESS


class Publisher:
    """One MQTT 5 connection as one identity, publishing at QoS 1.

    Blocking, with a timeout on every step; the gateway gives each device
    identity one publisher and serialises calls to it. A connection the
    broker closed (restart, session taken over) is opened again once per
    publish."""

    def __init__(
        self,
        address: tuple[str, int] | str,
        username: str,
        password: bytes,
        *,
        timeout: float = 5.0,
        keepalive: int = 60,
    ) -> None:
        self._address = address
        self._username = username
        self._password = password
        self._timeout = timeout
        self._keepalive = keepalive
        self._socket: socket.socket | None = None
        self._buffer = b""
        self._packet_id = 0
        self._last_sent = 0.0

    @property
    def connected(self) -> bool:
        return self._socket is not None

    def connect(self) -> None:
        self.close()
        family = socket.AF_UNIX if isinstance(self._address, str) else socket.AF_INET
        if not isinstance(self._address, str) and ":" in self._address[0]:
            family = socket.AF_INET6
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(self._timeout)
        try:
            sock.connect(self._address)
            if family != socket.AF_UNIX:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._socket = sock
            self._buffer = b""
            # The client id is the identity, as mosquitto makes it anyway
            # (use_username_as_clientid).
            self._send(
                connect_packet(self._username, self._username, self._password, self._keepalive)
            )
            reply = self._receive()
        except (OSError, MqttError):
            self.close()
            raise
        if reply.kind != CONNACK:
            self.close()
            raise MqttError(f"expected CONNACK, got packet type {reply.kind}")
        reason = parse_connack(reply.body)
        if reason != SUCCESS:
            self.close()
            raise MqttError(f"the broker refused the connection (reason code 0x{reason:02x})")

    def publish(self, topic: str, payload: bytes) -> int:
        """Publish at QoS 1 and return the broker's PUBACK reason code. A
        connection that was already open and turns out broken (the broker
        restarted) is opened again once; a new one that fails is not retried,
        so that one request holds its caller for one timeout at most."""
        reused = self._socket is not None
        try:
            if self._socket is None:
                self.connect()
            return self._publish_once(topic, payload)
        except (OSError, MqttError):
            self.close()
            if not reused:
                raise
        self.connect()
        try:
            return self._publish_once(topic, payload)
        except (OSError, MqttError):
            self.close()
            raise

    def ping_if_idle(self) -> None:
        """Keep the connection alive: a PINGREQ when half the keepalive passed."""
        if self._socket is None or time.monotonic() - self._last_sent < self._keepalive / 2:
            return
        try:
            self._send(packet(PINGREQ, 0, b""))
            if self._receive().kind != PINGRESP:
                raise MqttError("expected PINGRESP")
        except (OSError, MqttError):
            self.close()

    def close(self) -> None:
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.sendall(packet(DISCONNECT, 0, b""))
            self._socket.close()
            self._socket = None

    def _publish_once(self, topic: str, payload: bytes) -> int:
        self._packet_id = self._packet_id % 0xFFFF + 1
        self._send(publish_packet(topic, payload, self._packet_id))
        while True:
            reply = self._receive()
            if reply.kind == PUBACK:
                packet_id, reason = parse_puback(reply.body)
                if packet_id != self._packet_id:
                    raise MqttError(f"PUBACK for packet {packet_id}, not {self._packet_id}")
                return reason
            if reply.kind == DISCONNECT:
                raise MqttError(
                    f"the broker disconnected (reason code 0x{parse_disconnect(reply.body):02x})"
                )
            if reply.kind != PINGRESP:
                raise MqttError(f"unexpected packet type {reply.kind}")

    def _send(self, data: bytes) -> None:
        assert self._socket is not None
        self._socket.sendall(data)
        self._last_sent = time.monotonic()

    def _receive(self) -> Packet:
        # The fixed header's first byte, then the remaining length: up to
        # four bytes, read as they come.
        data = self._read(2)
        while True:
            try:
                length, _ = read_varint(data, 1)
                break
            except MqttError as error:
                if len(data) >= 5:
                    raise error
                data += self._read(1)
        if length > MAX_INCOMING:
            raise MqttError(
                f"a {length}-byte packet from the broker is more than this client reads"
            )
        # The length's last byte ended what was read so far.
        return Packet(data[0] >> 4, data[0] & 0x0F, self._read(length))

    def _read(self, count: int) -> bytes:
        assert self._socket is not None
        while len(self._buffer) < count:
            chunk = self._socket.recv(max(4096, count - len(self._buffer)))
            if not chunk:
                raise MqttError("the broker closed the connection")
            self._buffer += chunk
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        return data
