"""The gateway's MQTT 5 publisher against a real mosquitto on loopback, and
its parsers under fuzzing: the broker's ACL decides, and the publisher
reports the decision (0x87 for a denied topic), which is what turns into
the CoAP 4.03 a device gets."""

from __future__ import annotations

import contextlib
import socket
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pisec.coaps import mqtt5
from tests.conftest import DEVICE_PASSWORD as PASSWORD
from tests.conftest import PlainBroker, Subscriber


def test_a_permitted_publish_arrives_and_a_denied_one_is_reported(
    plain_broker: PlainBroker,
) -> None:
    subscriber = Subscriber(plain_broker.port, "devices/#")
    publisher = mqtt5.Publisher(("127.0.0.1", plain_broker.port), "dev1", PASSWORD)
    try:
        assert publisher.publish("devices/dev1/temp", b"21.5") == mqtt5.SUCCESS
        assert subscriber.arrived.wait(5)
        assert subscriber.messages == [("devices/dev1/temp", b"21.5")]
        # Another device's topic: the broker's ACL refuses, and says so.
        subscriber.arrived.clear()
        assert publisher.publish("devices/dev2/temp", b"forged") == mqtt5.NOT_AUTHORIZED
        assert not subscriber.arrived.wait(1)
        assert subscriber.messages == [("devices/dev1/temp", b"21.5")]
        # The connection survives a refusal and carries on.
        assert publisher.publish("devices/dev1/temp", b"22.0") == mqtt5.SUCCESS
        assert subscriber.arrived.wait(5)
    finally:
        publisher.close()
        subscriber.close()


def test_no_matching_subscribers_is_not_an_error(plain_broker: PlainBroker) -> None:
    publisher = mqtt5.Publisher(("127.0.0.1", plain_broker.port), "dev1", PASSWORD)
    try:
        assert publisher.publish("devices/dev1/nobody", b"x") in (
            mqtt5.SUCCESS,
            mqtt5.NO_MATCHING_SUBSCRIBERS,
        )
    finally:
        publisher.close()


def test_a_wrong_password_is_refused_with_the_reason(plain_broker: PlainBroker) -> None:
    publisher = mqtt5.Publisher(("127.0.0.1", plain_broker.port), "dev1", b"not the password")
    # mosquitto 2.0 answers 0x87 (not authorized), the standard allows 0x86.
    with pytest.raises(mqtt5.MqttError, match=r"refused the connection \(reason code 0x8[67]\)"):
        publisher.connect()
    assert not publisher.connected


def test_a_restarted_broker_is_reconnected_once(plain_broker: PlainBroker) -> None:
    publisher = mqtt5.Publisher(("127.0.0.1", plain_broker.port), "dev1", PASSWORD)
    try:
        publisher.connect()
        # The connection breaks under the publisher (as a broker restart
        # would break it): the next publish connects again and goes through.
        assert publisher._socket is not None
        publisher._socket.shutdown(socket.SHUT_RDWR)
        assert publisher.publish("devices/dev1/temp", b"again") in (
            mqtt5.SUCCESS,
            mqtt5.NO_MATCHING_SUBSCRIBERS,
        )
        assert publisher.connected
    finally:
        publisher.close()


def test_a_silent_broker_times_out() -> None:
    """A listener that accepts and never answers: the publisher gives up
    within its timeout instead of holding the gateway."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        publisher = mqtt5.Publisher(("127.0.0.1", port), "dev1", PASSWORD, timeout=0.3)
        with pytest.raises(OSError):
            publisher.publish("devices/dev1/temp", b"x")
        assert not publisher.connected


def test_packets_are_encoded_as_the_standard_says() -> None:
    assert mqtt5.varint(0) == b"\x00"
    assert mqtt5.varint(127) == b"\x7f"
    assert mqtt5.varint(128) == b"\x80\x01"
    assert mqtt5.varint(268_435_455) == b"\xff\xff\xff\x7f"
    with pytest.raises(ValueError):
        mqtt5.varint(268_435_456)
    # PUBLISH QoS 1: type 3, flags 0b0010, topic, packet id, no properties.
    assert mqtt5.publish_packet("a/b", b"hi", 7) == b"\x32\x0a\x00\x03a/b\x00\x07\x00hi"
    with pytest.raises(ValueError):
        mqtt5.utf8("a\0b")
    with pytest.raises(ValueError):
        mqtt5.publish_packet("a", b"", 0)
    connect = mqtt5.connect_packet("dev1", "dev1", b"pw", 60)
    assert connect[0] == 0x10
    assert connect[2:10] == b"\x00\x04MQTT\x05\xc2"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"\x00\x07", (7, mqtt5.SUCCESS)),
        (b"\x00\x07\x87", (7, mqtt5.NOT_AUTHORIZED)),
        (b"\x00\x07\x87\x00", (7, mqtt5.NOT_AUTHORIZED)),
        # A reason string property (0x1f) in the properties.
        (b"\x00\x07\x87\x06\x1f\x00\x03abc", (7, mqtt5.NOT_AUTHORIZED)),
    ],
)
def test_puback_bodies(body: bytes, expected: tuple[int, int]) -> None:
    assert mqtt5.parse_puback(body) == expected


@given(st.binary(max_size=64))
def test_parsers_raise_only_their_own_error(data: bytes) -> None:
    """Whatever the broker sends, the parsers answer or raise MqttError."""
    for parse in (mqtt5.parse_puback, mqtt5.parse_connack, mqtt5.parse_disconnect):
        with contextlib.suppress(mqtt5.MqttError):
            parse(data)
    try:
        value, end = mqtt5.read_varint(data, 0)
    except mqtt5.MqttError:
        return
    assert 1 <= end <= 4
    assert 0 <= value <= mqtt5.MAX_REMAINING_LENGTH


@given(st.integers(min_value=0, max_value=268_435_455))
def test_varint_round_trips(value: int) -> None:
    encoded = mqtt5.varint(value)
    assert mqtt5.read_varint(encoded + b"rest", 0) == (value, len(encoded))


def test_an_oversized_packet_from_the_broker_is_refused() -> None:
    """A peer that announces a packet larger than the client reads is cut
    off before the body is read."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

        def answer() -> None:
            connection, _ = server.accept()
            with connection:
                connection.recv(1024)
                connection.sendall(b"\x20" + mqtt5.varint(mqtt5.MAX_INCOMING + 1))
                connection.recv(1024)

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        publisher = mqtt5.Publisher(("127.0.0.1", port), "dev1", PASSWORD, timeout=2)
        with pytest.raises(mqtt5.MqttError, match="more than this client reads"):
            publisher.connect()
        thread.join(5)
