"""Load generator for MQTT broker benchmarks: connect latency, throughput, held connections.

Standard library only: the bench copies this one file into containers and runs
it with the system python3 (`python3 loadgen.py COMMAND ...`), so it speaks
MQTT 3.1.1 over raw sockets itself and imports nothing from pisec.

Every command prints exactly one JSON object on stdout; progress and errors go
to stderr. Exit codes: 0 the command ran (it may have stopped at --max-seconds:
see "timed_out"), 1 a failure ("error" in the JSON object says what), 2 usage
or input error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import queue
import resource
import selectors
import signal
import socket
import ssl
import statistics
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, NamedTuple, NoReturn

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

# MQTT 3.1.1 control packet types: the high nibble of a packet's first byte.
CONNECT = 1
CONNACK = 2
PUBLISH = 3
PUBACK = 4
SUBSCRIBE = 8
SUBACK = 9
PINGREQ = 12
PINGRESP = 13
DISCONNECT = 14
PINGREQ_PACKET = bytes((PINGREQ << 4, 0))
DISCONNECT_PACKET = bytes((DISCONNECT << 4, 0))
MAX_REMAINING_LENGTH = 268_435_455  # four length bytes of seven bits each
MAX_PACKET_ID = 65_535
SUBACK_FAILURE = 0x80
CONNACK_CODES = {
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorised",
}
TLS_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}

# QoS 0 has no acknowledgement to say the broker is done: once everything is
# published, stop waiting when the subscriber has heard nothing for this long.
DRAIN_IDLE_SECONDS = 2.0
SUBSCRIBER_POLL_SECONDS = 0.2
HOLD_POLL_SECONDS = 0.1
DISCONNECT_TIMEOUT_SECONDS = 1.0
# Descriptors beyond the held connections: stdio, the selector, the ssl module's files.
SPARE_DESCRIPTORS = 32
INTERRUPTED = "interrupted by SIGINT or SIGTERM"
QOS0_BATCH_BYTES = 65_536
COMPACT_AFTER_BYTES = 65_536  # of consumed packets at the front of the read buffer
# A paced publisher sleeps until its next message is due, within these bounds.
PACE_MIN_SLEEP = 0.0005
PACE_MAX_SLEEP = 0.05
GO_POLL_SECONDS = 0.005
# How long past the deadline a pair's process may take to report and end.
PAIR_GRACE_SECONDS = 5.0


class LoadgenError(Exception):
    """A failure, in one line. `fatal`: the next connection would fail the
    same way (refused, bad credentials, untrusted certificate), so a command
    stops rather than counting the same failure N times."""

    def __init__(self, message: str, *, fatal: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.fatal = fatal


class InputError(LoadgenError):
    """Options or files that cannot work: exit code 2."""


class ProtocolError(LoadgenError):
    """The broker sent something MQTT 3.1.1 does not allow here."""

    def __init__(self, message: str) -> None:
        super().__init__(f"protocol error: {message}", fatal=True)


class DeadlineError(Exception):
    """--max-seconds ran out: report what was done, with timed_out true."""


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.started = time.monotonic()
        self.end = self.started + seconds

    def remaining(self) -> float:
        return self.end - time.monotonic()

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0

    def timeout(self, cap: float) -> float:
        """A socket timeout: `cap`, or less so as not to pass the deadline."""
        remaining = self.remaining()
        if remaining <= 0:
            raise DeadlineError
        return min(cap, remaining)


@dataclass(frozen=True)
class Options:
    host: str
    port: int
    username: str | None
    password: str | None
    client_id_prefix: str
    keepalive: int
    timeout: float
    cafile: str | None
    cert: str | None
    key: str | None
    server_name: str | None
    tls_version: str

    @property
    def target(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


# --- MQTT 3.1.1 packets -------------------------------------------------------


def encode_remaining_length(length: int) -> bytes:
    if not 0 <= length <= MAX_REMAINING_LENGTH:
        raise ValueError(f"remaining length {length} is outside 0..{MAX_REMAINING_LENGTH}")
    encoded = bytearray()
    while True:
        length, byte = divmod(length, 128)
        encoded.append(byte | 0x80 if length else byte)
        if not length:
            return bytes(encoded)


def _string(value: str) -> bytes:
    return _binary(value.encode("utf-8"))


def _binary(data: bytes) -> bytes:
    if len(data) > 0xFFFF:
        raise ValueError("an MQTT string is at most 65535 bytes")
    return len(data).to_bytes(2, "big") + data


def _packet(first_byte: int, body: bytes) -> bytes:
    return bytes((first_byte,)) + encode_remaining_length(len(body)) + body


def connect_packet(
    client_id: str, username: str | None, password: str | None, keepalive: int
) -> bytes:
    flags = 0x02  # clean session
    payload = _string(client_id)
    if username is not None:
        flags |= 0x80
        payload += _string(username)
    if password is not None:
        flags |= 0x40
        payload += _binary(password.encode("utf-8"))
    header = _string("MQTT") + bytes((4, flags)) + keepalive.to_bytes(2, "big")
    return _packet(CONNECT << 4, header + payload)


def subscribe_packet(packet_id: int, topic: str, qos: int) -> bytes:
    body = packet_id.to_bytes(2, "big") + _string(topic) + bytes((qos,))
    return _packet(SUBSCRIBE << 4 | 0x02, body)


def publish_packet(topic: str, payload: bytes, qos: int, packet_id: int = 0) -> bytes:
    packet_id_bytes = packet_id.to_bytes(2, "big") if qos else b""
    return _packet(PUBLISH << 4 | qos << 1, _string(topic) + packet_id_bytes + payload)


PUBACK_HEADER = bytes((PUBACK << 4, 2))  # the packet identifier follows


def publish_header(topic: str, payload_size: int, qos: int) -> bytes:
    """What comes before the packet identifier in every PUBLISH of one topic
    and payload size: publish_packet without building it each time."""
    body = 2 + len(topic.encode("utf-8")) + (2 if qos else 0) + payload_size
    return bytes((PUBLISH << 4 | qos << 1,)) + encode_remaining_length(body) + _string(topic)


class Packet(NamedTuple):  # a tuple: made for every message, so made cheaply
    first_byte: int
    body: bytes

    @property
    def kind(self) -> int:
        return self.first_byte >> 4


def parse_packet(buffer: bytes | bytearray, start: int = 0) -> tuple[Packet, int] | None:
    """The packet at `start` and the offset after it, or None while it is incomplete."""
    available = len(buffer) - start
    length = 0
    for index in range(1, 5):
        if index >= available:
            return None
        byte = buffer[start + index]
        length += (byte & 0x7F) << (7 * (index - 1))
        if not byte & 0x80:
            end = start + 1 + index + length
            if len(buffer) < end:
                return None
            return Packet(buffer[start], bytes(buffer[start + 1 + index : end])), end
    raise ProtocolError("remaining length longer than four bytes")


# --- Connections -----------------------------------------------------------------


def describe_os_error(exc: OSError) -> tuple[str, bool]:
    """Words for a failed connect or handshake, and whether it is fatal."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        hint = ""
        if exc.verify_code in (62, 64):  # host name or IP address mismatch
            hint = " (set --server-name to a name in the broker's certificate)"
        elif exc.verify_code in (2, 18, 19, 20, 21):
            hint = " (is --cafile the CA that issued the broker's certificate?)"
        return f"TLS certificate verification failed: {exc.verify_message}{hint}", True
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or str(exc)
        if "CERTIFICATE_REQUIRED" in reason.upper():
            return "the broker requires a client certificate (--cert and --key)", True
        if reason == "WRONG_VERSION_NUMBER":
            return "TLS error: WRONG_VERSION_NUMBER (is this port a TLS listener?)", True
        fatal = any(word in reason.upper() for word in ("VERSION", "HANDSHAKE", "UNKNOWN_CA"))
        return f"TLS error: {reason}", fatal
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused: nothing listens on that port", True
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name: {exc.strerror or exc}", True
    if isinstance(exc, ConnectionResetError):
        return "the broker reset the connection", False
    return f"{exc.strerror or exc}", False


class Connection:
    """One MQTT connection over TCP or TLS. Reads are framed from a buffer,
    so a packet split across reads, or several in one read, both work."""

    def __init__(self, sock: socket.socket, options: Options, deadline: Deadline) -> None:
        self.sock = sock
        self.closed = False
        self.last_sent = time.monotonic()
        self._options = options
        self._deadline = deadline
        self._buffer = bytearray()
        self._start = 0

    def _timeout(self, seconds: float) -> None:
        """Set the socket's timeout only when it changes: each setting is a
        system call, and a message costs only a few more."""
        if self.sock.gettimeout() != seconds:
            self.sock.settimeout(seconds)

    def tls_facts(self) -> tuple[str | None, str | None]:
        if isinstance(self.sock, ssl.SSLSocket):
            cipher = self.sock.cipher()
            return self.sock.version(), cipher[0] if cipher else None
        return None, None

    def send(self, data: bytes) -> None:
        self._timeout(self._deadline.timeout(self._options.timeout))
        try:
            self.sock.sendall(data)
        except TimeoutError:
            if self._deadline.expired:
                raise DeadlineError from None
            raise LoadgenError(
                f"timeout: the broker took no data for {self._options.timeout:g} s"
            ) from None
        except OSError as exc:
            message, fatal = describe_os_error(self._alert() or exc)
            raise LoadgenError(f"send failed: {message}", fatal=fatal) from None
        self.last_sent = time.monotonic()

    def _alert(self) -> ssl.SSLError | None:
        """The TLS alert that explains a failed send, if one waits unread: in
        TLS 1.3 a broker refuses a missing client certificate only after the
        handshake, and the client's next send fails with a bare EOF."""
        if not isinstance(self.sock, ssl.SSLSocket):
            return None
        try:
            self.sock.settimeout(0.2)
            self.sock.recv(1)
        except ssl.SSLEOFError:
            return None
        except ssl.SSLError as exc:
            return exc
        except OSError:
            return None
        return None

    def ping_if_due(self, keepalive: int) -> None:
        if keepalive and time.monotonic() - self.last_sent >= keepalive / 2:
            self.send(PINGREQ_PACKET)

    def buffered_packet(self) -> Packet | None:
        """The next packet if the last reads brought all of it, without reading."""
        parsed = parse_packet(self._buffer, self._start)
        if parsed is None:
            return None
        packet, self._start = parsed
        if self._start == len(self._buffer) or self._start > COMPACT_AFTER_BYTES:
            del self._buffer[: self._start]
            self._start = 0
        return packet

    def read_packet(self, waiting_for: str) -> Packet:
        packet = self._read(waiting_for, None)
        assert packet is not None
        return packet

    def poll_packet(self, seconds: float) -> Packet | None:
        """The next packet, or None if none is complete within `seconds`."""
        return self._read("a packet", seconds)

    def _read(self, waiting_for: str, poll: float | None) -> Packet | None:
        while True:
            packet = self.buffered_packet()
            if packet is not None:
                return packet
            cap = self._options.timeout if poll is None else poll
            self._timeout(self._deadline.timeout(cap))
            try:
                data = self.sock.recv(65_536)
            except TimeoutError:
                if self._deadline.expired:
                    raise DeadlineError from None
                if poll is not None:
                    return None
                raise LoadgenError(f"timeout: no {waiting_for} within {cap:g} s") from None
            except OSError as exc:
                message, fatal = describe_os_error(exc)
                raise LoadgenError(f"{message} (waiting for {waiting_for})", fatal=fatal) from None
            if not data:
                raise LoadgenError(f"the broker closed the connection (waiting for {waiting_for})")
            self._buffer += data

    def drain(self) -> bool:
        """Discard what the broker sent (PINGRESPs) without waiting; False
        once the broker has closed the connection."""
        try:
            self.sock.settimeout(0.0)
            return bool(self.sock.recv(4096))
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return True
        except OSError:
            return False

    def disconnect(self) -> None:
        """DISCONNECT and close, whatever state the connection is in."""
        if self.closed:
            return
        with contextlib.suppress(OSError):
            self.sock.settimeout(DISCONNECT_TIMEOUT_SECONDS)
            self.sock.sendall(DISCONNECT_PACKET)
        self.close()

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.close()


def tls_context(options: Options) -> ssl.SSLContext | None:
    """None for plain TCP; otherwise a context that verifies the broker's
    chain against --cafile and its name against --server-name."""
    if options.cafile is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, check_hostname
    context.minimum_version = TLS_VERSIONS[options.tls_version]
    try:
        context.load_verify_locations(cafile=options.cafile)
    except (OSError, ssl.SSLError) as exc:
        raise InputError(f"{options.cafile}: cannot load the CA file: {_why(exc)}") from None
    if options.cert is not None:
        try:
            # An empty passphrase: an encrypted key fails here instead of prompting.
            context.load_cert_chain(options.cert, options.key, password=b"")
        except (OSError, ssl.SSLError) as exc:
            raise InputError(
                f"{options.cert}: cannot load the client certificate and key: {_why(exc)}"
            ) from None
    return context


def _why(exc: OSError) -> str:
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason or exc)
    return str(exc.strerror or exc)


def open_connection(
    options: Options, context: ssl.SSLContext | None, deadline: Deadline
) -> Connection:
    address = (options.host, options.port)
    try:
        sock = socket.create_connection(address, timeout=deadline.timeout(options.timeout))
    except TimeoutError:
        if deadline.expired:
            raise DeadlineError from None
        raise LoadgenError(f"timeout: TCP connect took over {options.timeout:g} s") from None
    except OSError as exc:
        message, fatal = describe_os_error(exc)
        raise LoadgenError(message, fatal=fatal) from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if context is None:
        return Connection(sock, options, deadline)
    try:
        sock.settimeout(deadline.timeout(options.timeout))
        tls = context.wrap_socket(sock, server_hostname=options.server_name or options.host)
    except TimeoutError:
        sock.close()
        if deadline.expired:
            raise DeadlineError from None
        raise LoadgenError(f"timeout: TLS handshake took over {options.timeout:g} s") from None
    except OSError as exc:
        sock.close()
        message, fatal = describe_os_error(exc)
        raise LoadgenError(message, fatal=fatal) from None
    except BaseException:
        sock.close()
        raise
    return Connection(tls, options, deadline)


def establish(
    options: Options, context: ssl.SSLContext | None, deadline: Deadline, client_id: str
) -> Connection:
    """An MQTT session: TCP, TLS if configured, CONNECT, and CONNACK accepted."""
    connection = open_connection(options, context, deadline)
    try:
        connection.send(
            connect_packet(client_id, options.username, options.password, options.keepalive)
        )
        packet = connection.read_packet("CONNACK")
        if packet.kind != CONNACK or len(packet.body) != 2:
            raise ProtocolError(f"expected CONNACK, got packet type {packet.kind}")
        code = packet.body[1]
        if code:
            meaning = CONNACK_CODES.get(code, "unknown code")
            raise LoadgenError(
                f"CONNACK return code {code} ({meaning}): the broker refused the connection",
                fatal=True,
            )
    except BaseException:
        connection.close()
        raise
    return connection


def _token() -> str:
    return os.urandom(4).hex()


def _progress(message: str) -> None:
    print(f"loadgen: {message}", file=sys.stderr, flush=True)


# --- Reports ------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    command: str
    target: str
    requested: int
    timed_out: bool
    error: str | None
    wall_s: float


@dataclass(frozen=True)
class ConnectReport(Report):
    count: int
    failures: int
    samples_ms: list[float]
    median_ms: float | None
    p95_ms: float | None
    min_ms: float | None
    max_ms: float | None
    tls_version: str | None
    cipher: str | None


@dataclass(frozen=True)
class ThroughputReport(Report):
    qos: int
    size: int
    inflight: int | None
    topic: str
    pairs: int
    granted_qos: int | None
    rate: float | None  # the offered rate asked for, messages per second; None: unpaced
    published: int
    acked: int | None
    received: int
    lost: int  # published - received; when timed out, includes messages still on the way
    loss_percent: float | None
    publish_s: float | None
    elapsed_s: float | None  # first publish to last delivery, over all pairs
    offered_per_second: float | None  # published / publish_s: the rate the broker took
    messages_per_second: float | None  # delivered: received / elapsed_s (goodput)
    loadgen_cpu_s: float  # all pairs' processes, start signal to end
    loadgen_busiest_share: float | None  # the busiest pair process's CPU, in cores


@dataclass(frozen=True)
class HoldReport(Report):
    connected: int
    failures: int
    dropped: int
    connect_s: float | None
    held_s: float | None
    released_by: str | None
    nofile_limit: int | None


def _failure_summary(first: str | None, failures: int, attempts: int) -> str | None:
    if first is None:
        return None
    if failures == 1:
        return first
    return f"{first} ({failures} of {attempts} connections failed)"


def percentile_95(samples: Sequence[float]) -> float | None:
    if not samples:
        return None
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[94]


# --- connect --------------------------------------------------------------------------


def run_connect(
    options: Options, context: ssl.SSLContext | None, deadline: Deadline, count: int
) -> ConnectReport:
    """`count` fresh connections one after another, each timed from before
    the TCP connect to the CONNACK."""
    token = _token()
    samples: list[float] = []
    tls_version = cipher = None
    failures = attempts = 0
    first_failure: str | None = None
    timed_out = interrupted = False
    for index in range(count):
        attempts += 1
        started = time.perf_counter()
        try:
            connection = establish(
                options, context, deadline, f"{options.client_id_prefix}-{token}-{index}"
            )
        except DeadlineError:
            attempts -= 1
            timed_out = True
            break
        except KeyboardInterrupt:
            attempts -= 1
            interrupted = True
            break
        except LoadgenError as exc:
            failures += 1
            first_failure = first_failure or exc.message
            if exc.fatal:
                break
            continue
        samples.append((time.perf_counter() - started) * 1000)
        if len(samples) == 1:
            tls_version, cipher = connection.tls_facts()
        connection.disconnect()
    return ConnectReport(
        command="connect",
        target=options.target,
        requested=count,
        timed_out=timed_out,
        error=INTERRUPTED if interrupted else _failure_summary(first_failure, failures, attempts),
        wall_s=round(time.monotonic() - deadline.started, 3),
        count=len(samples),
        failures=failures,
        samples_ms=[round(sample, 3) for sample in samples],
        median_ms=round(statistics.median(samples), 3) if samples else None,
        p95_ms=_round(percentile_95(samples)),
        min_ms=round(min(samples), 3) if samples else None,
        max_ms=round(max(samples), 3) if samples else None,
        tls_version=tls_version,
        cipher=cipher,
    )


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


# --- throughput -------------------------------------------------------------------------


class Subscriber(threading.Thread):
    """Counts the messages on one topic. The PUBACKs for every QoS 1
    delivery one read brought go back in one write, as a C client's would
    in one loop pass: a write per message would cost more CPU than the
    broker spends on it."""

    def __init__(self, connection: Connection, topic: str, expected: int, keepalive: int) -> None:
        super().__init__(name="loadgen-subscriber", daemon=True)
        self.received = 0
        self.last_at: float | None = None
        self.error: str | None = None
        self.done = threading.Event()
        self._connection = connection
        self._topic = topic.encode("utf-8")
        self._expected = expected
        self._keepalive = keepalive
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        connection = self._connection
        try:
            while self.received < self._expected and not self._stopping.is_set():
                packet = connection.poll_packet(SUBSCRIBER_POLL_SECONDS)
                acks: list[bytes] = []
                counted = self.received
                while packet is not None:
                    if packet.kind == PUBLISH:
                        self._on_publish(packet, acks)
                    elif packet.kind != PINGRESP:
                        raise ProtocolError(f"subscriber got packet type {packet.kind}")
                    packet = connection.buffered_packet()
                if self.received != counted:
                    self.last_at = monotonic()
                if acks:
                    connection.send(b"".join(acks))
                connection.ping_if_due(self._keepalive)
        except DeadlineError:
            pass
        except LoadgenError as exc:
            self.error = f"subscriber: {exc.message}"
        finally:
            self.done.set()

    def _on_publish(self, packet: Packet, acks: list[bytes]) -> None:
        body = packet.body
        topic_end = 2 + int.from_bytes(body[:2], "big")
        if packet.first_byte >> 1 & 0x03:
            acks.append(PUBACK_HEADER + body[topic_end : topic_end + 2])
        if body[2:topic_end] == self._topic:
            self.received += 1


def _subscribe(connection: Connection, topic: str, qos: int) -> int:
    """SUBSCRIBE and the granted QoS."""
    connection.send(subscribe_packet(1, topic, qos))
    packet = connection.read_packet("SUBACK")
    if packet.kind != SUBACK or len(packet.body) != 3:
        raise ProtocolError(f"expected SUBACK, got packet type {packet.kind}")
    granted = packet.body[2]
    if granted == SUBACK_FAILURE:
        raise LoadgenError(
            f"the broker refused the SUBSCRIBE to {topic} (SUBACK 0x80): "
            "its ACL does not let this user read the topic",
            fatal=True,
        )
    return granted


class Publisher:
    """Publishes `count` messages at `rate` per second, or (rate 0) as fast
    as the broker takes them. QoS 1 keeps a window of unacknowledged
    messages, as mosquitto's max_inflight_messages does for its own
    deliveries, and takes every PUBACK one read brought before refilling
    it; QoS 0 writes messages in batches."""

    def __init__(
        self,
        connection: Connection,
        topic: str,
        payload: bytes,
        qos: int,
        window: int,
        rate: float = 0.0,
    ) -> None:
        self.published = 0
        self.acked: int | None = 0 if qos else None
        self.started: float | None = None
        self.done_at: float | None = None
        self._connection = connection
        self._topic = topic
        self._payload = payload
        self._qos = qos
        self._window = window
        self._rate = rate

    def run(self, count: int) -> None:
        self.started = monotonic()
        if self._qos:
            self._run_qos1(count)
        else:
            self._run_qos0(count)
        self.done_at = monotonic()

    def _due(self, count: int) -> int:
        """How many messages the offered rate allows by now (all when unpaced)."""
        if not self._rate or self.started is None:
            return count
        return min(count, 1 + int((monotonic() - self.started) * self._rate))

    def _until_due(self) -> float:
        """Seconds until the next message is due, within the pacing bounds."""
        if not self._rate or self.started is None:
            return PACE_MAX_SLEEP
        next_at = self.started + self.published / self._rate
        return max(PACE_MIN_SLEEP, min(PACE_MAX_SLEEP, next_at - monotonic()))

    def _run_qos0(self, count: int) -> None:
        packet = publish_packet(self._topic, self._payload, 0)
        batch = max(1, QOS0_BATCH_BYTES // len(packet))
        while self.published < count:
            due = self._due(count)
            if due <= self.published:
                time.sleep(self._until_due())
                continue
            size = min(batch, due - self.published)
            self._connection.send(packet * size)
            self.published += size

    def _run_qos1(self, count: int) -> None:
        unacked: set[int] = set()
        next_id = 1
        acked = 0
        header, payload = publish_header(self._topic, len(self._payload), 1), self._payload
        while acked < count:
            due = self._due(count)
            batch: list[bytes] = []
            while self.published < due and len(unacked) < self._window:
                batch += (header, next_id.to_bytes(2, "big"), payload)
                unacked.add(next_id)
                next_id = next_id % MAX_PACKET_ID + 1
                self.published += 1
            if batch:
                self._connection.send(b"".join(batch))
            if not unacked:
                time.sleep(self._until_due())
                continue
            if self._rate and self.published < count and len(unacked) < self._window:
                # More messages fall due before the PUBACKs may come.
                packet = self._connection.poll_packet(self._until_due())
            else:
                packet = self._connection.read_packet("PUBACK")
            while packet is not None:
                if packet.kind == PUBACK and len(packet.body) == 2:
                    packet_id = int.from_bytes(packet.body, "big")
                    if packet_id in unacked:
                        unacked.remove(packet_id)
                        acked += 1
                elif packet.kind != PINGRESP:
                    raise ProtocolError(f"publisher expected PUBACK, got packet type {packet.kind}")
                packet = self._connection.buffered_packet()
            self.acked = acked


@dataclass(frozen=True)
class _Plan:
    """What every publisher-subscriber pair of one throughput run does."""

    options: Options
    context: ssl.SSLContext | None
    deadline: Deadline
    topic: str  # the pair's index is appended
    counts: tuple[int, ...]  # messages per pair
    qos: int
    payload: bytes
    inflight: int
    rate: float  # per pair; 0 is as fast as the broker takes them


@dataclass
class _PairResult:
    granted: int | None = None
    published: int = 0
    acked: int | None = None
    received: int = 0
    started: float | None = None  # monotonic(): one clock for every pair's process
    publish_done: float | None = None
    last_at: float | None = None
    cpu_s: float = 0.0  # this pair's process, from the start signal to the end
    busy_s: float = 0.0  # the wall time that CPU figure covers
    timed_out: bool = False
    error: str | None = None


def _run_pair(plan: _Plan, index: int, messages: Any, go: Any, abort: Any) -> None:
    """One pair, in a process of its own: tells the parent when it is
    connected and subscribed, publishes on the start signal, reports."""
    result = _PairResult()
    try:
        _pair(plan, index, result, lambda: messages.put(("ready", index, None)), go, abort)
    except Exception as exc:  # the parent reports it; a traceback here would be lost
        result.error = result.error or f"internal error: {exc!r}"
    messages.put(("done", index, asdict(result)))


def _pair(
    plan: _Plan,
    index: int,
    result: _PairResult,
    ready: Callable[[], None],
    go: Any,
    abort: Any,
) -> None:
    options, deadline, count = plan.options, plan.deadline, plan.counts[index]
    topic = f"{plan.topic}-{index}"
    prefix = f"{options.client_id_prefix}-{plan.topic.rsplit('/', 1)[-1]}-{index}"
    subscriber: Subscriber | None = None
    publisher: Publisher | None = None
    cpu_at = busy_at = None
    with contextlib.ExitStack() as connections:
        try:
            sub_connection = establish(options, plan.context, deadline, f"{prefix}-sub")
            connections.callback(sub_connection.disconnect)
            result.granted = _subscribe(sub_connection, topic, plan.qos)
            pub_connection = establish(options, plan.context, deadline, f"{prefix}-pub")
            connections.callback(pub_connection.disconnect)
            subscriber = Subscriber(sub_connection, topic, count, options.keepalive)
            subscriber.start()
            connections.callback(subscriber.join, DISCONNECT_TIMEOUT_SECONDS * 2)
            connections.callback(subscriber.stop)
            publisher = Publisher(
                pub_connection, topic, plan.payload, plan.qos, plan.inflight, plan.rate
            )
            ready()
            _wait_for_start(go, deadline, pub_connection, options.keepalive)
            if abort.is_set():
                return
            cpu_at, busy_at = _cpu_seconds(), monotonic()
            publisher.run(count)
            assert publisher.done_at is not None
            result.timed_out = not _drain(subscriber, deadline, publisher.done_at)
        except DeadlineError:
            result.timed_out = True
        except LoadgenError as exc:
            result.error = exc.message
        except KeyboardInterrupt:
            result.error = INTERRUPTED
        finally:
            if cpu_at is not None and busy_at is not None:
                # Over the pair's work, not the idle wait for lost messages
                # at its end: that wait costs next to no CPU, and counting
                # its seconds would make a busy process look idle.
                result.cpu_s = _cpu_seconds() - cpu_at
                worked = [busy_at]
                if publisher is not None and publisher.done_at is not None:
                    worked.append(publisher.done_at)
                if subscriber is not None and subscriber.last_at is not None:
                    worked.append(subscriber.last_at)
                result.busy_s = max(worked) - busy_at
    if publisher is not None:
        result.published, result.acked = publisher.published, publisher.acked
        result.started, result.publish_done = publisher.started, publisher.done_at
    if subscriber is not None:
        result.received, result.last_at = subscriber.received, subscriber.last_at
        if result.error is None and subscriber.error:
            result.error = subscriber.error


def _wait_for_start(go: Any, deadline: Deadline, connection: Connection, keepalive: int) -> None:
    """Wait for the start signal, keeping the publisher's connection alive
    (the subscriber's thread keeps its own)."""
    while not go.wait(min(max(0.0, deadline.remaining()), keepalive / 2 if keepalive else 1.0)):
        if deadline.expired:
            raise DeadlineError
        connection.ping_if_due(keepalive)


def _wait_for_go(go_file: str | None, deadline: Deadline) -> None:
    while go_file is not None and not os.path.exists(go_file):
        if deadline.expired:
            raise DeadlineError
        time.sleep(GO_POLL_SECONDS)


def run_throughput(
    options: Options,
    context: ssl.SSLContext | None,
    deadline: Deadline,
    *,
    count: int,
    qos: int,
    size: int,
    inflight: int,
    topic_prefix: str,
    allow_loss: bool = False,
    pairs: int = 1,
    rate: float = 0.0,
    ready_file: str | None = None,
    go_file: str | None = None,
) -> ThroughputReport:
    """`count` messages shared out over `pairs` publisher-subscriber pairs,
    each pair on a fresh topic of its own and in a process of its own, so
    that the load generator is not held to one core by Python's GIL. Every
    pair connects and subscribes first; all start publishing together,
    after `go_file` appears if one is named. `rate` is the offered rate of
    all pairs together, in messages per second (0: as fast as they can)."""
    if pairs > count:
        raise InputError(f"--pairs {pairs} is more than --count {count}: each pair needs one")
    token = _token()
    plan = _Plan(
        options=options,
        context=context,
        deadline=deadline,
        topic=f"{topic_prefix.rstrip('/')}/{token}",
        counts=tuple(
            count // pairs + (1 if index < count % pairs else 0) for index in range(pairs)
        ),
        qos=qos,
        payload=os.urandom(size),
        inflight=inflight,
        rate=rate / pairs,
    )
    fork = multiprocessing.get_context("fork")
    messages = fork.Queue()
    go, abort = fork.Event(), fork.Event()
    workers = [
        fork.Process(
            target=_run_pair,
            args=(plan, index, messages, go, abort),
            name=f"loadgen-pair-{index}",
            daemon=True,
        )
        for index in range(pairs)
    ]
    results: dict[int, dict[str, Any]] = {}
    timed_out = False
    error: str | None = None
    try:
        for worker in workers:
            worker.start()
        waiting = set(range(pairs))
        while waiting:
            kind, index, payload = messages.get(timeout=max(0.01, deadline.remaining()))
            waiting.discard(index)
            if kind == "done":
                results[index] = payload
        if results:
            abort.set()  # a pair failed before the start: none publishes
        else:
            _announce_ready(pairs, ready_file)
            _wait_for_go(go_file, deadline)
        go.set()
        while len(results) < pairs:
            _kind, index, payload = messages.get(
                timeout=max(0.01, deadline.remaining()) + PAIR_GRACE_SECONDS
            )
            if _kind == "done":
                results[index] = payload
    except (queue.Empty, DeadlineError):
        timed_out = True
    except LoadgenError as exc:
        error = exc.message
    except KeyboardInterrupt:
        error = INTERRUPTED
    finally:
        abort.set()
        go.set()
        _end_workers(workers, messages, results)
    return _throughput_report(
        options,
        deadline,
        plan,
        results,
        count=count,
        pairs=pairs,
        rate=rate,
        timed_out=timed_out,
        error=error,
        allow_loss=allow_loss,
    )


def _end_workers(workers: list[Any], messages: Any, results: dict[int, dict[str, Any]]) -> None:
    """Let the pairs' processes end, taking the reports still on the way;
    after PAIR_GRACE_SECONDS for all together, stop those left."""
    started = [worker for worker in workers if worker.pid is not None]
    until = time.monotonic() + PAIR_GRACE_SECONDS
    while any(worker.is_alive() for worker in started) and time.monotonic() < until:
        with contextlib.suppress(queue.Empty):
            kind, index, payload = messages.get(timeout=0.05)
            if kind == "done":
                results.setdefault(index, payload)
    for worker in started:
        if worker.is_alive():
            worker.kill()
        worker.join(PAIR_GRACE_SECONDS)


def _throughput_report(
    options: Options,
    deadline: Deadline,
    plan: _Plan,
    results: dict[int, dict[str, Any]],
    *,
    count: int,
    pairs: int,
    rate: float,
    timed_out: bool,
    error: str | None,
    allow_loss: bool,
) -> ThroughputReport:
    done = [results[index] for index in sorted(results)]
    for index, result in sorted(results.items()):
        if error is None and result["error"]:
            error = result["error"] if pairs == 1 else f"pair {index}: {result['error']}"
    timed_out = timed_out or len(done) < pairs or any(result["timed_out"] for result in done)
    published = sum(result["published"] for result in done)
    received = sum(result["received"] for result in done)
    qos = plan.qos
    if error is None and not timed_out:
        error = _loss_error(qos, f"{plan.topic}-*", published, received, allow_loss)
    starts = [result["started"] for result in done if result["started"] is not None]
    ends = [result["last_at"] for result in done if result["last_at"] is not None]
    sent = [result["publish_done"] for result in done if result["publish_done"] is not None]
    started = min(starts) if starts else None
    elapsed = max(ends) - started if ends and started is not None else None
    publish_s = max(sent) - started if sent and started is not None else None
    shares = [result["cpu_s"] / result["busy_s"] for result in done if result["busy_s"] > 0]
    return ThroughputReport(
        command="throughput",
        target=options.target,
        requested=count,
        timed_out=timed_out,
        error=error,
        wall_s=round(time.monotonic() - deadline.started, 3),
        qos=qos,
        size=len(plan.payload),
        inflight=plan.inflight if qos else None,
        topic=f"{plan.topic}-0" if pairs == 1 else f"{plan.topic}-{{0..{pairs - 1}}}",
        pairs=pairs,
        granted_qos=min((r["granted"] for r in done if r["granted"] is not None), default=None),
        rate=rate or None,
        published=published,
        acked=sum(result["acked"] or 0 for result in done) if qos else None,
        received=received,
        lost=max(0, published - received),
        loss_percent=round(100 * max(0, published - received) / published, 3)
        if published
        else None,
        publish_s=_round(publish_s, 6),
        elapsed_s=_round(elapsed, 6),
        offered_per_second=round(published / publish_s, 1) if publish_s else None,
        messages_per_second=round(received / elapsed, 1) if elapsed else None,
        loadgen_cpu_s=round(sum(result["cpu_s"] for result in done), 3),
        loadgen_busiest_share=round(max(shares), 3) if shares else None,
    )


def _drain(subscriber: Subscriber, deadline: Deadline, publish_done: float) -> bool:
    """Wait for the subscriber to hear every message, or to go quiet.
    False if the deadline came first."""
    while not subscriber.done.wait(0.05):
        if deadline.expired:
            return False
        heard = max(subscriber.last_at or publish_done, publish_done)
        if monotonic() - heard > DRAIN_IDLE_SECONDS:
            return True
    return True


def _loss_error(
    qos: int, topic: str, published: int, received: int, allow_loss: bool = False
) -> str | None:
    if published and not received:
        return (
            f"none of the {published} messages came back on {topic}: "
            "the broker's ACL may forbid this user to publish to or read it"
        )
    if qos and received < published and not allow_loss:
        return f"lost {published - received} of {published} QoS 1 messages on {topic}"
    return None


# --- hold -----------------------------------------------------------------------------------


def raise_nofile_limit(needed: int) -> int:
    """Raise the soft open-files limit to the hard one; fail if still below `needed`."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        for target in (hard, max(soft, needed)):
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                break
            except (ValueError, OSError):
                continue  # an unlimited hard limit cannot be the soft one on Linux
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        raise LoadgenError(
            f"the open files limit (RLIMIT_NOFILE) is {soft}, hard limit {hard}: "
            f"{needed} needed; raise the hard limit (ulimit -Hn, docker --ulimit nofile)",
            fatal=True,
        )
    return int(soft)


def _announce_ready(connected: int, ready_file: str | None) -> None:
    if ready_file is not None:
        partial = f"{ready_file}.partial"
        try:
            with open(partial, "w", encoding="utf-8") as stream:
                stream.write(f"{connected}\n")
            os.replace(partial, ready_file)
        except OSError as exc:
            raise LoadgenError(
                f"cannot write the ready file {ready_file}: {exc.strerror or exc}", fatal=True
            ) from None
    print(f"READY {connected}", file=sys.stderr, flush=True)


def _hold(
    connections: list[Connection],
    deadline: Deadline,
    *,
    hold_seconds: float,
    keepalive: int,
    release_file: str | None,
) -> str:
    """Keep the connections open, closing those the broker closes; how the hold ended."""
    until = time.monotonic() + hold_seconds
    last_ping = time.monotonic()
    with selectors.DefaultSelector() as selector:
        for connection in connections:
            selector.register(connection.sock, selectors.EVENT_READ, connection)
        while True:
            if release_file is not None and os.path.exists(release_file):
                return "release-file"
            now = time.monotonic()
            if now >= until:
                return "hold-seconds"
            if deadline.expired:
                raise DeadlineError
            if keepalive and now - last_ping >= keepalive / 2:
                last_ping = now
                for connection in connections:
                    if connection.closed:
                        continue
                    try:
                        connection.send(PINGREQ_PACKET)
                    except LoadgenError:
                        selector.unregister(connection.sock)
                        connection.close()
            wait = min(HOLD_POLL_SECONDS, until - now, max(0.0, deadline.remaining()))
            for key, _events in selector.select(timeout=wait):
                connection = key.data
                if not connection.drain():
                    selector.unregister(connection.sock)
                    connection.close()


@dataclass
class _Opened:
    """Connections made one after another, and how many attempts failed."""

    connections: list[Connection]
    attempts: int = 0
    failures: int = 0
    first_failure: str | None = None


def _open_one_by_one(
    options: Options,
    context: ssl.SSLContext | None,
    deadline: Deadline,
    count: int,
    prefix: str,
    command: str,
    opened: _Opened,
) -> None:
    """`count` connections into `opened`, kept if the deadline interrupts; stops when fatal."""
    for index in range(count):
        opened.attempts += 1
        try:
            opened.connections.append(establish(options, context, deadline, f"{prefix}-{index}"))
        except LoadgenError as exc:
            opened.failures += 1
            opened.first_failure = opened.first_failure or exc.message
            if exc.fatal:
                break
        if (index + 1) % 100 == 0:
            _progress(f"{command}: {len(opened.connections)} of {count} connected")


def run_hold(
    options: Options,
    context: ssl.SSLContext | None,
    deadline: Deadline,
    *,
    count: int,
    hold_seconds: float,
    ready_file: str | None,
    release_file: str | None,
) -> HoldReport:
    """`count` connections, made one after another and then held together."""
    prefix = f"{options.client_id_prefix}-{_token()}"
    opened = _Opened(connections=[])
    connections = opened.connections
    nofile: int | None = None
    connect_s = held_s = None
    released_by: str | None = None
    timed_out = interrupted = False
    started = time.monotonic()
    try:
        nofile = raise_nofile_limit(count + SPARE_DESCRIPTORS)
        _open_one_by_one(options, context, deadline, count, prefix, "hold", opened)
        connect_s = round(time.monotonic() - started, 3)
        if not (opened.first_failure and opened.failures == opened.attempts):
            _announce_ready(len(connections), ready_file)
            hold_started = time.monotonic()
            try:
                released_by = _hold(
                    connections,
                    deadline,
                    hold_seconds=hold_seconds,
                    keepalive=options.keepalive,
                    release_file=release_file,
                )
            finally:
                held_s = round(time.monotonic() - hold_started, 3)
    except DeadlineError:
        timed_out = True
        released_by = "deadline"
    except LoadgenError as exc:
        opened.first_failure = opened.first_failure or exc.message
        opened.failures = max(opened.failures, 1)
    except KeyboardInterrupt:
        interrupted = True
        released_by = "signal"
    finally:
        dropped = sum(connection.closed for connection in connections)
        for connection in connections:
            connection.disconnect()
    error = _failure_summary(opened.first_failure, opened.failures, max(opened.attempts, 1))
    if dropped and error is None:
        error = f"the broker closed {dropped} of {len(connections)} held connections"
    return HoldReport(
        command="hold",
        target=options.target,
        requested=count,
        timed_out=timed_out,
        error=INTERRUPTED if interrupted else error,
        wall_s=round(time.monotonic() - deadline.started, 3),
        connected=len(connections),
        failures=opened.failures,
        dropped=dropped,
        connect_s=connect_s,
        held_s=held_s,
        released_by=released_by,
        nofile_limit=nofile,
    )


# --- Reconnect storm ----------------------------------------------------------------------

# While the broker is coming back, a refused or reset connect is retried
# after this long; a refused login (bad password, not authorised) is not.
STORM_RETRY_SECONDS = 0.05
STORM_GIVE_UP_CODES = (1, 2, 4, 5)


@dataclass(frozen=True)
class StormReport(Report):
    connected: int
    reconnected: int
    failures: int
    retries: int
    workers: int
    connect_s: float | None
    storm_s: float | None
    first_back_s: float | None
    loadgen_cpu_s: float | None
    nofile_limit: int | None


def monotonic() -> float:
    """CLOCK_MONOTONIC by name: the pairs' processes compare their times."""
    return time.clock_gettime(time.CLOCK_MONOTONIC)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _wait_for_drops(connections: list[Connection], deadline: Deadline, keepalive: int) -> float:
    """Hold the connections until the broker has closed every one; when it closed the first."""
    first: float | None = None
    remaining = len(connections)
    last_ping = time.monotonic()
    with selectors.DefaultSelector() as selector:
        for connection in connections:
            selector.register(connection.sock, selectors.EVENT_READ, connection)
        while remaining:
            if deadline.expired:
                raise DeadlineError
            now = time.monotonic()
            if keepalive and now - last_ping >= keepalive / 2:
                last_ping = now
                for connection in connections:
                    if not connection.closed:
                        with contextlib.suppress(LoadgenError):
                            connection.send(PINGREQ_PACKET)
            wait = min(HOLD_POLL_SECONDS, max(0.0, deadline.remaining()))
            for key, _events in selector.select(timeout=wait):
                connection = key.data
                if not connection.drain():
                    selector.unregister(connection.sock)
                    connection.close()
                    remaining -= 1
                    if first is None:
                        first = time.monotonic()
    return first if first is not None else time.monotonic()


class _Storm:
    """`workers` threads bring `count` clients back, each retrying until the broker answers."""

    def __init__(
        self, options: Options, context: ssl.SSLContext | None, deadline: Deadline, prefix: str
    ) -> None:
        self.options, self.context, self.deadline, self.prefix = options, context, deadline, prefix
        self.lock = threading.Lock()
        self.next_index = 0
        self.count = 0
        self.connections: list[Connection] = []
        self.times: list[float] = []
        self.retries = self.failures = 0
        self.first_failure: str | None = None
        self.timed_out = False

    def _take(self) -> int | None:
        with self.lock:
            if self.next_index >= self.count:
                return None
            self.next_index += 1
            return self.next_index - 1

    def _one(self, index: int) -> None:
        while True:
            try:
                connection = establish(
                    self.options, self.context, self.deadline, f"{self.prefix}-{index}"
                )
            except DeadlineError:
                with self.lock:
                    self.timed_out = True
                return
            except LoadgenError as exc:
                refused_login = any(
                    exc.message.startswith(f"CONNACK return code {code} ")
                    for code in STORM_GIVE_UP_CODES
                )
                with self.lock:
                    if refused_login or isinstance(exc, ProtocolError):
                        self.failures += 1
                        self.first_failure = self.first_failure or exc.message
                        return
                    self.retries += 1
                if self.deadline.remaining() <= STORM_RETRY_SECONDS:
                    with self.lock:
                        self.timed_out = True
                        self.first_failure = self.first_failure or exc.message
                    return
                time.sleep(STORM_RETRY_SECONDS)
                continue
            with self.lock:
                self.connections.append(connection)
                self.times.append(time.monotonic())
            return

    def _work(self) -> None:
        while (index := self._take()) is not None:
            if self.timed_out:
                return
            self._one(index)

    def run(self, count: int, workers: int) -> None:
        self.count = count
        threads = [
            threading.Thread(target=self._work, name=f"storm-{n}", daemon=True)
            for n in range(min(workers, count))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=max(0.0, self.deadline.remaining()) + self.options.timeout)


def run_storm(
    options: Options,
    context: ssl.SSLContext | None,
    deadline: Deadline,
    *,
    count: int,
    workers: int,
    ready_file: str | None,
) -> StormReport:
    """`count` clients connected, then all back at once after the broker drops them.

    The clients are connected one after another and held. When the broker
    closes them (it restarts), `workers` threads reconnect every one, each
    retrying a refused or reset connect every STORM_RETRY_SECONDS while the
    broker is down: the time from the first drop to the last client back is
    the storm, and this process's CPU over it is reported beside it.
    """
    prefix = f"{options.client_id_prefix}-{_token()}"
    opened = _Opened(connections=[])
    held = opened.connections
    storm = _Storm(options, context, deadline, prefix)
    nofile: int | None = None
    connect_s = storm_s = first_back_s = cpu = None
    timed_out = interrupted = False
    started = time.monotonic()
    try:
        # The held clients and the new ones are open together for a moment.
        nofile = raise_nofile_limit(2 * count + SPARE_DESCRIPTORS)
        _open_one_by_one(options, context, deadline, count, prefix, "storm", opened)
        connect_s = round(time.monotonic() - started, 3)
        if held and opened.failures == 0:
            _announce_ready(len(held), ready_file)
            dropped_at = _wait_for_drops(held, deadline, options.keepalive)
            _progress(f"storm: the broker closed all {len(held)}; reconnecting")
            cpu_before = _cpu_seconds()
            storm.run(len(held), workers)
            cpu = round(_cpu_seconds() - cpu_before, 3)
            if storm.times:
                first_back_s = round(min(storm.times) - dropped_at, 3)
                if len(storm.times) == len(held):
                    storm_s = round(max(storm.times) - dropped_at, 3)
            timed_out = storm.timed_out
    except DeadlineError:
        timed_out = True
    except LoadgenError as exc:
        opened.first_failure = opened.first_failure or exc.message
        opened.failures = max(opened.failures, 1)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        for connection in held + storm.connections:
            connection.disconnect()
    error = _failure_summary(opened.first_failure, opened.failures, max(opened.attempts, 1))
    reconnected = len(storm.connections)
    if error is None and held and reconnected < len(held):
        error = (
            f"{reconnected} of {len(held)} clients came back"
            + (f"; {storm.failures} were refused: {storm.first_failure}" if storm.failures else "")
            + (
                f"; the time ran out (--max-seconds), last: {storm.first_failure}"
                if timed_out and not storm.failures
                else ""
            )
        )
    return StormReport(
        command="storm",
        target=options.target,
        requested=count,
        timed_out=timed_out,
        error=INTERRUPTED if interrupted else error,
        wall_s=round(time.monotonic() - deadline.started, 3),
        connected=len(held),
        reconnected=reconnected,
        failures=opened.failures + storm.failures,
        retries=storm.retries,
        workers=min(workers, count),
        connect_s=connect_s,
        storm_s=storm_s,
        first_back_s=first_back_s,
        loadgen_cpu_s=cpu,
        nofile_limit=nofile,
    )


# --- Command line ---------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors still end in one JSON object on stdout."""

    def error(self, message: str) -> NoReturn:
        _emit_failure(self.prog.rsplit(" ", 1)[-1], None, f"{self.prog}: {message}")
        raise SystemExit(EXIT_USAGE)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number of at least 0, not {text}")
    return value


def _bounded_int(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {low}..{high}, not {value}")
        return value

    parse.__name__ = "integer"
    return parse


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    broker = common.add_argument_group("broker")
    broker.add_argument("--host", default="localhost", help="broker address (default: localhost)")
    broker.add_argument(
        "--port", type=_bounded_int(1, 65535), help="default: 8883 with --cafile, else 1883"
    )
    broker.add_argument("--username")
    secret = broker.add_mutually_exclusive_group()
    secret.add_argument("--password-file", help="first line is the password (preferred)")
    secret.add_argument("--password", help="visible to other local users: prefer --password-file")
    broker.add_argument("--client-id-prefix", default="pisec-loadgen")
    broker.add_argument(
        "--keepalive", type=_bounded_int(0, 65535), default=60, help="seconds (default: 60)"
    )
    broker.add_argument(
        "--timeout",
        type=_positive_float,
        default=10.0,
        help="per socket operation, seconds (default: 10)",
    )
    broker.add_argument(
        "--max-seconds",
        type=_positive_float,
        default=60.0,
        help="stop and report after this long (default: 60)",
    )
    tls = common.add_argument_group("TLS (on with --cafile; the broker is always verified)")
    tls.add_argument("--cafile", help="CA certificate(s) to verify the broker against")
    tls.add_argument("--cert", help="client certificate (PEM) for mutual TLS")
    tls.add_argument("--key", help="client certificate's unencrypted key (PEM)")
    tls.add_argument("--server-name", help="name to check in the broker's certificate")
    tls.add_argument("--tls-version", choices=sorted(TLS_VERSIONS), default="1.2", help="minimum")

    parser = _Parser(prog="loadgen", description=(__doc__ or "").splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    connect = commands.add_parser(
        "connect", parents=[common], help="time N fresh connections, one after another"
    )
    connect.add_argument("--count", type=_positive_int, required=True)
    throughput = commands.add_parser(
        "throughput",
        parents=[common],
        help="N messages from publishers to subscribers, one pair per process",
    )
    throughput.add_argument("--count", type=_positive_int, required=True)
    throughput.add_argument("--qos", type=int, choices=(0, 1), required=True)
    throughput.add_argument(
        "--allow-loss",
        action="store_true",
        help="report QoS 1 messages the broker dropped (a full queue) instead of failing",
    )
    throughput.add_argument(
        "--size", type=_bounded_int(0, 1_000_000), default=64, help="payload bytes (default: 64)"
    )
    throughput.add_argument(
        "--inflight",
        type=_bounded_int(1, MAX_PACKET_ID),
        default=20,
        help="QoS 1 messages awaiting PUBACK (default: 20, mosquitto's max_inflight_messages)",
    )
    throughput.add_argument("--topic-prefix", default="pisec/bench")
    throughput.add_argument(
        "--pairs",
        type=_bounded_int(1, 64),
        default=1,
        help="publisher-subscriber pairs, each in a process of its own (default: 1)",
    )
    throughput.add_argument(
        "--rate",
        type=_non_negative_float,
        default=0.0,
        help="offered messages per second, all pairs together (default: 0, unpaced)",
    )
    throughput.add_argument("--ready-file", help="written once every pair is subscribed")
    throughput.add_argument("--go-file", help="the pairs start publishing when this file appears")
    hold = commands.add_parser(
        "hold", parents=[common], help="open N connections and hold them together"
    )
    hold.add_argument("--count", type=_positive_int, required=True)
    hold.add_argument("--hold-seconds", type=_positive_float, required=True)
    hold.add_argument("--ready-file", help="written (with the count) once all are connected")
    hold.add_argument("--release-file", help="hold ends early when this file appears")
    storm = commands.add_parser(
        "storm",
        parents=[common],
        help="hold N connections; when the broker drops them, bring all back at once",
    )
    storm.add_argument("--count", type=_positive_int, required=True)
    storm.add_argument(
        "--workers",
        type=_bounded_int(1, 256),
        default=16,
        help="threads reconnecting at once (default: 16)",
    )
    storm.add_argument("--ready-file", help="written (with the count) once all are connected")
    return parser


def _read_password_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as stream:
            line = stream.readline().rstrip("\r\n")
    except OSError as exc:
        raise InputError(f"{path}: cannot read the password file: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: the password file is not UTF-8 text") from None
    if not line:
        raise InputError(f"{path}: the password file's first line is empty")
    return line


def options_from(args: argparse.Namespace) -> Options:
    if args.cafile is None:
        for flag, value in (("--cert", args.cert), ("--server-name", args.server_name)):
            if value is not None:
                raise InputError(f"{flag} needs --cafile (TLS)")
    if (args.cert is None) != (args.key is None):
        raise InputError("--cert and --key go together")
    password = args.password
    if args.password_file is not None:
        password = _read_password_file(args.password_file)
    if password is not None and args.username is None:
        raise InputError("a password needs --username (MQTT 3.1.1)")
    port = args.port or (8883 if args.cafile else 1883)
    return Options(
        host=args.host,
        port=port,
        username=args.username,
        password=password,
        client_id_prefix=args.client_id_prefix,
        keepalive=args.keepalive,
        timeout=args.timeout,
        cafile=args.cafile,
        cert=args.cert,
        key=args.key,
        server_name=args.server_name,
        tls_version=args.tls_version,
    )


def _emit_failure(command: str, target: str | None, message: str) -> None:
    line = f"{target}: {message}" if target else message
    print(json.dumps({"command": command, "target": target, "error": line}))
    print(f"loadgen: error: {line}", file=sys.stderr, flush=True)


def _target(args: argparse.Namespace) -> str:
    port = args.port or (8883 if args.cafile else 1883)
    host = f"[{args.host}]" if ":" in args.host else args.host
    return f"{host}:{port}"


def run(args: argparse.Namespace, options: Options, deadline: Deadline) -> Report:
    context = tls_context(options)
    if args.command == "connect":
        return run_connect(options, context, deadline, args.count)
    if args.command == "throughput":
        return run_throughput(
            options,
            context,
            deadline,
            count=args.count,
            qos=args.qos,
            size=args.size,
            inflight=args.inflight,
            topic_prefix=args.topic_prefix,
            allow_loss=args.allow_loss,
            pairs=args.pairs,
            rate=args.rate,
            ready_file=args.ready_file,
            go_file=args.go_file,
        )
    if args.command == "storm":
        return run_storm(
            options,
            context,
            deadline,
            count=args.count,
            workers=args.workers,
            ready_file=args.ready_file,
        )
    return run_hold(
        options,
        context,
        deadline,
        count=args.count,
        hold_seconds=args.hold_seconds,
        ready_file=args.ready_file,
        release_file=args.release_file,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    deadline = Deadline(args.max_seconds)
    target = _target(args)
    try:
        report = run(args, options_from(args), deadline)
    except InputError as exc:
        _emit_failure(args.command, None, exc.message)
        return EXIT_USAGE
    except KeyboardInterrupt:
        _emit_failure(args.command, target, f"{args.command}: interrupted")
        return EXIT_FAILED
    except Exception as exc:
        traceback.print_exc()
        _emit_failure(args.command, target, f"{args.command}: internal error: {exc!r}")
        return EXIT_FAILED
    if report.error is not None:
        report = replace(report, error=f"{target}: {args.command}: {report.error}")
        print(json.dumps(asdict(report)))
        print(f"loadgen: error: {report.error}", file=sys.stderr, flush=True)
        return EXIT_FAILED
    print(json.dumps(asdict(report)))
    return EXIT_OK


if __name__ == "__main__":
    # A TERM from the bench orchestrator ends the run like Ctrl-C: still one JSON object.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    sys.exit(main())
