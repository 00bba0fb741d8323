"""A device's one MQTT connection, held open: it publishes a counter every
interval and logs everything that arrives, until a stop file appears.

A device (or a dashboard) does both on one connection; mosquitto_pub and
mosquitto_sub cannot, and one identity holds one connection. Standard
library only, as a Pi has it. MQTT 3.1.1 over TLS, QoS 1 both ways.

    mqtt_device.py --host H --port P --cafile CA (--cert C --key K | --username U
                   --password-file F) [--subscribe TOPIC]... [--publish TOPIC]...
                   --log FILE --stop FILE [--interval S] [--max-seconds N]

Log lines: `connected`, `sent TOPIC N`, `recv TOPIC PAYLOAD`, `closed WHY`.
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import ssl
import struct
import sys
import time
from pathlib import Path
from typing import TextIO

CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK, PINGREQ, DISCONNECT = (
    1,
    2,
    3,
    4,
    8,
    9,
    12,
    14,
)
KEEPALIVE = 30


def _string(text: str) -> bytes:
    data = text.encode("utf-8")
    return struct.pack("!H", len(data)) + data


def _packet(kind: int, flags: int, body: bytes) -> bytes:
    length, encoded = len(body), b""
    while True:
        byte, length = length % 128, length // 128
        encoded += bytes([byte | (0x80 if length else 0)])
        if not length:
            return bytes([(kind << 4) | flags]) + encoded + body


class Connection:
    def __init__(self, tls: ssl.SSLSocket) -> None:
        self.tls = tls
        self.buffer = b""
        self.packet_id = 0

    def send(self, kind: int, flags: int, body: bytes) -> None:
        self.tls.sendall(_packet(kind, flags, body))

    def next_id(self) -> int:
        self.packet_id = self.packet_id % 65535 + 1
        return self.packet_id

    def packets(self, timeout: float) -> list[tuple[int, int, bytes]]:
        """Complete packets received within `timeout`; EOFError when closed."""
        if not self.tls.pending():
            readable, _, _ = select.select([self.tls], [], [], timeout)
            if not readable:
                return []
        while True:
            chunk = self.tls.recv(65536)
            if not chunk:
                raise EOFError("the broker closed the connection")
            self.buffer += chunk
            if not self.tls.pending():
                break
        found: list[tuple[int, int, bytes]] = []
        while len(self.buffer) >= 2:
            length, multiplier, position = 0, 1, 1
            while True:
                if position >= len(self.buffer):
                    return found
                byte = self.buffer[position]
                length += (byte & 0x7F) * multiplier
                multiplier *= 128
                position += 1
                if not byte & 0x80:
                    break
            if len(self.buffer) < position + length:
                return found
            header = self.buffer[0]
            found.append((header >> 4, header & 0x0F, self.buffer[position : position + length]))
            self.buffer = self.buffer[position + length :]
        return found


def run(args: argparse.Namespace, log: TextIO) -> int:
    def note(line: str) -> None:
        log.write(line + "\n")
        log.flush()

    context = ssl.create_default_context(cafile=args.cafile)
    if args.cert:
        context.load_cert_chain(args.cert, args.key)
    raw = socket.create_connection((args.host, args.port), timeout=10)
    connection = Connection(context.wrap_socket(raw, server_hostname=args.host))
    flags, payload = 0x02, _string(f"held-{os.getpid()}")  # clean session
    if args.username:
        password = Path(args.password_file).read_text().splitlines()[0]
        flags |= 0xC0
        payload += _string(args.username) + _string(password)
    connection.send(
        CONNECT, 0, _string("MQTT") + bytes([4, flags]) + struct.pack("!H", KEEPALIVE) + payload
    )
    deadline = time.monotonic() + 10
    while True:
        packets = connection.packets(max(0.0, deadline - time.monotonic()))
        if packets or time.monotonic() > deadline:
            break
    if not packets or packets[0][0] != CONNACK or packets[0][2][1] != 0:
        note(f"closed refused {packets[0][2][1] if packets else 'no CONNACK'}")
        return 1
    note("connected")
    for topic in args.subscribe:
        connection.send(
            SUBSCRIBE, 0x02, struct.pack("!H", connection.next_id()) + _string(topic) + b"\x01"
        )
    started = last_sent = last_ping = time.monotonic()
    count = 0
    try:
        while not os.path.exists(args.stop) and time.monotonic() - started < args.max_seconds:
            now = time.monotonic()
            if args.publish and now - last_sent >= args.interval:
                count += 1
                for topic in args.publish:
                    body = (
                        _string(topic)
                        + struct.pack("!H", connection.next_id())
                        + str(count).encode()
                    )
                    connection.send(PUBLISH, 0x02, body)
                    note(f"sent {topic} {count}")
                last_sent = now
            if now - last_ping >= KEEPALIVE / 2:
                connection.send(PINGREQ, 0, b"")
                last_ping = now
            for kind, packet_flags, body in connection.packets(0.05):
                if kind == PUBLISH:
                    (size,) = struct.unpack("!H", body[:2])
                    topic = body[2 : 2 + size].decode("utf-8", "replace")
                    rest = body[2 + size :]
                    if (packet_flags >> 1) & 0x03:
                        connection.send(PUBACK, 0, rest[:2])
                        rest = rest[2:]
                    note(f"recv {topic} {rest.decode('utf-8', 'replace')}")
    except (EOFError, OSError) as exc:
        note(f"closed {exc}")
        return 2
    connection.send(DISCONNECT, 0, b"")
    connection.tls.close()
    note("closed stop")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cafile", required=True)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--username")
    parser.add_argument("--password-file")
    parser.add_argument("--subscribe", action="append", default=[])
    parser.add_argument("--publish", action="append", default=[])
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--log", required=True)
    parser.add_argument("--stop", required=True)
    parser.add_argument("--max-seconds", type=float, default=300)
    args = parser.parse_args()
    with open(args.log, "a", encoding="utf-8") as log:
        return run(args, log)


if __name__ == "__main__":
    sys.exit(main())
