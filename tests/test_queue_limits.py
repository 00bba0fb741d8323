"""No silent loss of QoS 1 under a burst, with pisec's queue limits.

A real mosquitto runs on loopback with the limits the role writes (rendered
from its template with its defaults). A subscriber with a persistent
session holds its connection but stops reading; a publisher sends a burst
of 10,000 QoS 1 messages and gets every PUBACK; the subscriber resumes and
must receive all of them, and the broker's dropped-messages counter stays 0.
The control runs mosquitto's own default queue (1,000 messages), which
drops most of the burst while the publisher still gets its PUBACKs: the
loss shows only in $SYS/broker/publish/messages/dropped.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.conftest import free_port, running_mosquitto
from tests.templating import render, role_defaults, role_vars

pytestmark = pytest.mark.broker

BURST = 10_000
PAYLOAD = 64
CONF = "pisec_mosquitto/templates/etc/mosquitto/conf.d/pisec.conf.j2"
LIMITS = re.compile(r"(max_inflight_messages|max_queued_messages|max_queued_bytes) \S+")


def pisec_limits() -> str:
    """The queue lines of the mosquitto.conf the role writes by default."""
    context = {
        **{k: v for k, v in role_defaults("pisec_mosquitto").items() if "{{" not in str(v)},
        "ansible_managed": "Ansible managed",
        "pisec_mosquitto__tls": role_vars("pisec_mosquitto")["pisec_mosquitto__tls"],
    }
    lines = [m.group(0) for m in LIMITS.finditer(render(CONF, context))]
    assert [line.split()[0] for line in lines] == [
        "max_inflight_messages",
        "max_queued_messages",
        "max_queued_bytes",
    ]
    return "\n".join(lines)


@dataclass
class Outcome:
    acknowledged: int
    received: int
    dropped: int
    rss_growth_kib: int


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _connected(
    client_id: str, port: int, *, persistent: bool = False, inflight: int = 20
) -> mqtt.Client:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=not persistent,
        protocol=mqtt.MQTTv311,
    )
    client.max_inflight_messages_set(inflight)
    ready = threading.Event()
    client.on_connect = lambda *_: ready.set()
    client.connect("127.0.0.1", port, keepalive=120)
    client.loop_start()
    assert ready.wait(10), f"{client_id}: no CONNACK"
    return client


@pytest.fixture
def burst(tmp_path: Path) -> Iterator[Callable[[str], Outcome]]:
    def run(limits: str) -> Outcome:
        port = free_port()
        config = tmp_path / "mosquitto.conf"
        config.write_text(
            # $SYS every second (mosquitto's default is 10 s).
            f"user root\nlistener {port} 127.0.0.1\nallow_anonymous true\nsys_interval 1\n"
            f"log_dest file {tmp_path}/mosquitto.log\n{limits}\n"
        )
        with running_mosquitto(config, port, tmp_path / "mosquitto.log") as broker:
            received: set[bytes] = set()
            lock = threading.Lock()
            subscriber = _connected("held-dashboard", port, persistent=True)

            def on_message(_c: object, _u: object, message: mqtt.MQTTMessage) -> None:
                with lock:
                    received.add(bytes(message.payload[:8]))

            subscriber.on_message = on_message
            subscribed = threading.Event()
            subscriber.on_subscribe = lambda *_: subscribed.set()
            subscriber.subscribe("devices/#", qos=1)
            assert subscribed.wait(10)
            # Paused: the connection stays, nothing is read from it.
            subscriber.loop_stop()
            before = _rss_kib(broker.pid)
            publisher = _connected("burst-publisher", port, inflight=100)
            infos = [
                publisher.publish("devices/pi-7/reading", b"%08d" % n + b"x" * (PAYLOAD - 8), 1)
                for n in range(BURST)
            ]
            for info in infos:
                info.wait_for_publish(60)
            acknowledged = sum(info.is_published() for info in infos)
            growth = _rss_kib(broker.pid) - before
            subscriber.loop_start()
            # Until all came, or nothing more came for 2 s.
            deadline = time.monotonic() + 60
            count, quiet_since = -1, time.monotonic()
            while time.monotonic() < deadline and time.monotonic() - quiet_since < 2:
                with lock:
                    if len(received) == BURST:
                        break
                    if len(received) != count:
                        count, quiet_since = len(received), time.monotonic()
                time.sleep(0.1)
            time.sleep(1.5)  # one more $SYS update
            counters: dict[str, str] = {}
            monitor = _connected("monitor", port)
            monitor.on_message = lambda _c, _u, m: counters.__setitem__(m.topic, m.payload.decode())
            monitor.subscribe("$SYS/broker/publish/messages/dropped")
            deadline = time.monotonic() + 10
            while not counters and time.monotonic() < deadline:
                time.sleep(0.05)
            for client in (publisher, subscriber, monitor):
                client.disconnect()
                client.loop_stop()
            return Outcome(
                acknowledged,
                len(received),
                int(counters["$SYS/broker/publish/messages/dropped"]),
                growth,
            )

    yield run


def test_a_paused_subscriber_gets_a_whole_burst_with_pisecs_defaults(
    burst: Callable[[str], Outcome],
) -> None:
    outcome = burst(pisec_limits())
    assert outcome.acknowledged == BURST
    assert outcome.received == BURST
    assert outcome.dropped == 0
    per_message = outcome.rss_growth_kib * 1024 / BURST
    print(f"queued {BURST} messages of {PAYLOAD} bytes: {per_message:.0f} bytes each in the broker")
    # The README's figure (about 330 bytes besides the payload) in a band.
    assert per_message - PAYLOAD < 1024


def test_mosquittos_default_queue_drops_silently_but_counts(
    burst: Callable[[str], Outcome],
) -> None:
    """The control: 20 in flight and 1,000 queued, the rest of the burst
    dropped while every PUBACK still came; the counter is the only trace."""
    outcome = burst("max_inflight_messages 20\nmax_queued_messages 1000")
    assert outcome.acknowledged == BURST
    assert outcome.received == 1020
    assert outcome.dropped == BURST - 1020
