"""The CoAPs gateway: its mapping of /ps/<topic> onto MQTT under fuzzing,
its answers with a stand-in broker, and the whole path on loopback: a
stock coap-client-gnutls over DTLS-PSK into the gateway, into a real
mosquitto with an ACL, out to an MQTT subscriber."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pisec.cli import main
from pisec.coaps import mqtt5
from pisec.coaps.gateway import Device, Gateway, TopicError, load_devices, topic_for
from pisec.coaps.libcoap import GET, POST, PUT, Client, Library, Request
from tests.conftest import DEVICE_PASSWORD as PASSWORD
from tests.conftest import PROJECT, PlainBroker, Subscriber, free_port
from tests.templating import render


def _priorities(allow_ccm: bool) -> str:
    """The role's own GnuTLS priority file for the gateway."""
    return render(
        "pisec_coaps/templates/etc/pisec/coaps/gnutls.conf.j2",
        {"ansible_managed": "Ansible managed", "pisec_coaps_allow_ccm": allow_ccm},
    )


# A client that offers AES-128-CCM alone (no CCM-8): what the role's
# pisec_coaps_allow_ccm lets in.
CCM_ONLY_CLIENT = """[overrides]
tls-disabled-cipher = AES-128-CCM-8
tls-disabled-cipher = AES-256-CCM
tls-disabled-cipher = AES-128-GCM
tls-disabled-cipher = AES-256-GCM
tls-disabled-cipher = CHACHA20-POLY1305
tls-disabled-cipher = AES-128-CBC
tls-disabled-cipher = AES-256-CBC
tls-disabled-kx = ECDHE-PSK
tls-disabled-kx = DHE-PSK
"""
KEY = "0123456789abcdef0123456789abcdef"  # 32 characters used as key text
OTHER_KEY = "fedcba9876543210fedcba9876543210"


@pytest.mark.parametrize(
    ("path", "topic"),
    [
        ([b"ps", b"devices", b"dev1", b"temp"], "devices/dev1/temp"),
        ([b"ps", b"t"], "t"),
        ([b"ps", "température".encode()], "température"),
    ],
)
def test_a_path_under_ps_is_its_topic(path: list[bytes], topic: str) -> None:
    assert topic_for(path) == topic


@pytest.mark.parametrize(
    "path",
    [
        [b"ps", b"devices", b"+", b"temp"],
        [b"ps", b"devices", b"#"],
        [b"ps", b"a/b"],
        [b"ps", b""],
        [b"ps", b"a\x00b"],
        [b"ps", b"a\nb"],
        [b"ps", b"\xff"],
        [b"ps", b"$SYS", b"broker"],
        [b"ps", b"x" * 1025],
    ],
)
def test_a_path_that_is_not_one_plain_topic_is_refused(path: list[bytes]) -> None:
    with pytest.raises(TopicError):
        topic_for(path)


@pytest.mark.parametrize("path", [[], [b"ps"], [b"other", b"t"], [b"PS", b"t"]])
def test_a_path_outside_ps_is_not_found(path: list[bytes]) -> None:
    with pytest.raises(LookupError):
        topic_for(path)


@given(st.lists(st.binary(max_size=12), max_size=6))
def test_any_path_maps_to_a_plain_topic_or_is_refused(tail: list[bytes]) -> None:
    try:
        topic = topic_for([b"ps", *tail])
    except (TopicError, LookupError):
        return
    assert not set(topic) & {"+", "#", "\0"}
    assert not topic.startswith("$")
    assert topic.split("/") == [level.decode("utf-8") for level in tail]


class FakePublisher:
    def __init__(self, reason: int | Exception) -> None:
        self.reason = reason
        self.published: list[tuple[str, bytes]] = []
        self.closed = False
        self.pings = 0

    def publish(self, topic: str, payload: bytes) -> int:
        if isinstance(self.reason, Exception):
            raise self.reason
        self.published.append((topic, payload))
        return self.reason

    def ping_if_idle(self) -> None:
        self.pings += 1

    def close(self) -> None:
        self.closed = True


DEVICE = Device("dev1", bytes(16), b"secret")


def _gateway(reason: int | Exception) -> tuple[Gateway, list[FakePublisher]]:
    made: list[FakePublisher] = []

    def connect(device: Device) -> FakePublisher:
        made.append(FakePublisher(reason))
        return made[-1]

    return Gateway({"dev1": DEVICE}, connect, max_payload=8), made


@pytest.mark.parametrize(
    ("reason", "method", "path", "payload", "expected"),
    [
        (mqtt5.SUCCESS, POST, [b"ps", b"a"], b"x", "2.04"),
        (mqtt5.NO_MATCHING_SUBSCRIBERS, PUT, [b"ps", b"a"], b"x", "2.04"),
        (mqtt5.NOT_AUTHORIZED, POST, [b"ps", b"a"], b"x", "4.03"),
        (0x97, POST, [b"ps", b"a"], b"x", "5.02"),
        (OSError("refused"), POST, [b"ps", b"a"], b"x", "5.03"),
        (mqtt5.MqttError("gone"), POST, [b"ps", b"a"], b"x", "5.03"),
        (mqtt5.SUCCESS, GET, [b"ps", b"a"], b"", "4.05"),
        (mqtt5.SUCCESS, POST, [b"other"], b"x", "4.04"),
        (mqtt5.SUCCESS, POST, [b"ps", b"#"], b"x", "4.00"),
        (mqtt5.SUCCESS, POST, [b"ps", b"a"], b"123456789", "4.13"),
    ],
)
def test_the_gateway_answers_what_the_broker_decided(
    reason: int | Exception, method: int, path: list[bytes], payload: bytes, expected: str
) -> None:
    gateway, made = _gateway(reason)
    assert gateway.handle(Request(method, b"dev1", path, payload)).code == expected
    published = [message for publisher in made for message in publisher.published]
    # The broker was asked exactly when the request was one to publish.
    asked = expected in ("2.04", "4.03", "5.02")
    assert published == ([("a", payload)] if asked else [])


def test_an_identity_the_gateway_does_not_hold_publishes_nothing() -> None:
    gateway, made = _gateway(mqtt5.SUCCESS)
    assert gateway.handle(Request(POST, b"dev2", [b"ps", b"a"], b"x")).code == "4.01"
    assert made == []


def test_keepalive_pings_every_open_connection() -> None:
    gateway, made = _gateway(mqtt5.SUCCESS)
    gateway.keepalive()
    assert made == []  # no connection yet, nothing to ping
    gateway.handle(Request(POST, b"dev1", [b"ps", b"a"], b"x"))
    gateway.keepalive()
    gateway.keepalive()
    assert made[0].pings == 2


def test_a_reload_closes_the_connections_of_changed_and_removed_devices() -> None:
    gateway, made = _gateway(mqtt5.SUCCESS)
    gateway.handle(Request(POST, b"dev1", [b"ps", b"a"], b"x"))
    gateway.replace({"dev1": DEVICE})
    assert not made[0].closed  # unchanged: its connection stays
    gateway.replace({"dev1": Device("dev1", bytes(16), b"new password")})
    assert made[0].closed
    gateway.handle(Request(POST, b"dev1", [b"ps", b"a"], b"x"))
    assert len(made) == 2
    gateway.replace({})
    assert made[1].closed
    assert gateway.handle(Request(POST, b"dev1", [b"ps", b"a"], b"x")).code == "4.01"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "cannot read it"),
        ('{"devices": {}}', "no list of devices"),
        ('{"devices": [{"identity": "d", "psk_hex": "00", "mqtt_password": "p"}]}', "16 to 64"),
        ('{"devices": [{"identity": "d", "psk_hex": "zz", "mqtt_password": "p"}]}', "16 to 64"),
        (f'{{"devices": [{{"identity": "d", "psk_hex": "{"00" * 16}"}}]}}', "mqtt_password"),
        (
            '{"devices": ['
            + ",".join([f'{{"identity": "d", "psk_hex": "{"00" * 16}", "mqtt_password": "p"}}'] * 2)
            + "]}",
            "repeated",
        ),
    ],
)
def test_a_bad_key_file_is_refused_naming_the_file_and_device(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "keys.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as raised:
        load_devices(path)
    assert str(path) in str(raised.value)
    assert "00000000" not in str(raised.value)


def test_the_roles_validate_step_checks_a_key_file_with_the_gateways_reader(
    tmp_path: Path,
) -> None:
    """`pisec-coapsd --check-keys` (the role's `validate:`): a good file
    passes, a bad one fails naming the file and the device, with no secret."""
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    secret_key, secret_password = "ab" * 16, "s3cret-password"
    entry = {"identity": "sensor-1", "psk_hex": secret_key, "mqtt_password": secret_password}
    good.write_text(json.dumps({"devices": [entry]}))
    bad.write_text(json.dumps({"devices": [entry, {**entry, "psk_hex": "ab"}]}))

    def check(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pisec.coaps.gateway", "--check-keys", str(path)],
            capture_output=True,
            text=True,
            check=False,
            env=dict(os.environ, PYTHONPATH=str(PROJECT / "src")),
        )

    passed, failed = check(good), check(bad)
    assert (passed.returncode, passed.stdout.strip()) == (0, f"{good}: 1 devices")
    assert failed.returncode == 1
    assert f"{bad}: device 2" in failed.stderr
    for output in (passed.stdout + passed.stderr, failed.stdout + failed.stderr):
        assert secret_key not in output and secret_password not in output
    usage = subprocess.run(
        [sys.executable, "-m", "pisec.coaps.gateway", "--check-keys"],
        capture_output=True,
        text=True,
        check=False,
        env=dict(os.environ, PYTHONPATH=str(PROJECT / "src")),
    )
    assert usage.returncode == 2


# ---- The whole path, on loopback ----------------------------------------


@dataclass
class RunningGateway:
    port: int
    keys: Path
    process: subprocess.Popen[str]
    log: Path


def _client() -> str:
    client = shutil.which("coap-client-gnutls")
    if client is None:
        pytest.fail("coap-client-gnutls is missing: run `make deps` (libcoap3-bin)")
    return client


def _keys(devices: dict[str, str]) -> str:
    return json.dumps(
        {
            "devices": [
                {
                    "identity": identity,
                    "psk_hex": key.encode().hex(),
                    "mqtt_password": PASSWORD.decode(),
                }
                for identity, key in devices.items()
            ]
        }
    )


@contextlib.contextmanager
def _running_gateway(
    plain_broker: PlainBroker, tmp_path: Path, *, allow_ccm: bool = False
) -> Iterator[RunningGateway]:
    port = free_port()
    (tmp_path / "gnutls.conf").write_text(_priorities(allow_ccm))
    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "listen": ["127.0.0.1"],
                "port": port,
                "broker_host": "127.0.0.1",
                "broker_port": plain_broker.port,
            }
        )
    )
    keys = tmp_path / "keys.json"
    keys.write_text(_keys({"dev1": KEY}))
    log = tmp_path / "gateway.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "pisec.coaps.gateway", str(tmp_path / "config.json"), str(keys)],
            env={
                **os.environ,
                "PYTHONPATH": str(PROJECT / "src"),
                "GNUTLS_SYSTEM_PRIORITY_FILE": str(tmp_path / "gnutls.conf"),
                "GNUTLS_SYSTEM_PRIORITY_FAIL_ON_INVALID": "1",
            },
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        deadline = time.monotonic() + 10
        while "listening for CoAPs" not in log.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the gateway did not start: {log.read_text()}")
            time.sleep(0.05)
        yield RunningGateway(port, keys, process, log)
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def gateway(plain_broker: PlainBroker, tmp_path: Path) -> Iterator[RunningGateway]:
    with _running_gateway(plain_broker, tmp_path) as running:
        yield running


@dataclass
class Answer:
    code: str | None
    suite: str | None
    output: str
    stdout: str = ""


def _request(
    gateway: RunningGateway,
    path: str,
    identity: str = "dev1",
    key: str = KEY,
    scheme: str = "coaps",
    client_priorities: Path | None = None,
) -> Answer:
    """coap-client-gnutls POSTs; its answer code, from what it prints (it
    exits 0 whatever happened), and the suite from its handshake log."""
    environment = dict(os.environ)
    if client_priorities is not None:
        environment["GNUTLS_SYSTEM_PRIORITY_FILE"] = str(client_priorities)
    result = subprocess.run(
        [
            _client(),
            "-v",
            "9",
            "-B",
            "3",
            "-m",
            "post",
            "-e",
            "21.5",
            "-u",
            identity,
            "-k",
            key,
            f"{scheme}://127.0.0.1:{gateway.port}{path}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=environment,
    )
    output = result.stdout + result.stderr
    codes = re.findall(r"\bc:(\d\.\d\d)\b", output)
    suite = re.search(r"Selected cipher suite: (\S+)", output)
    return Answer(codes[-1] if codes else None, suite.group(1) if suite else None, output)


def test_a_device_publishes_over_coaps_and_a_subscriber_receives_it(
    gateway: RunningGateway, plain_broker: PlainBroker
) -> None:
    subscriber = Subscriber(plain_broker.port, "devices/#")
    try:
        answer = _request(gateway, "/ps/devices/dev1/temp")
        assert answer.code == "2.04", answer.output
        assert answer.suite == "GNUTLS_PSK_AES_128_CCM_8", answer.output
        assert subscriber.arrived.wait(5)
        assert subscriber.messages == [("devices/dev1/temp", b"21.5")]
        # The broker's ACL decides: another device's topic is 4.03 and
        # reaches nobody.
        subscriber.arrived.clear()
        assert _request(gateway, "/ps/devices/dev2/temp").code == "4.03"
        assert not subscriber.arrived.wait(1)
        assert subscriber.messages == [("devices/dev1/temp", b"21.5")]
    finally:
        subscriber.close()
    log = gateway.log.read_text()
    assert "dev1: published devices/dev1/temp" in log
    assert KEY not in log and KEY.encode().hex() not in log and PASSWORD.decode() not in log


def test_a_wrong_key_an_unknown_identity_and_plain_coap_are_refused(
    gateway: RunningGateway,
) -> None:
    assert _request(gateway, "/ps/devices/dev1/temp", key=OTHER_KEY).code is None
    assert _request(gateway, "/ps/devices/dev1/temp", identity="nobody").code is None
    assert _request(gateway, "/ps/devices/dev1/temp", scheme="coap").code is None
    log = gateway.log.read_text()
    assert "unknown identity 'nobody'" in log
    assert "published" not in log
    assert KEY not in log and OTHER_KEY not in log


def test_a_reload_revokes_a_device_and_admits_a_new_one(gateway: RunningGateway) -> None:
    assert _request(gateway, "/ps/devices/dev1/temp").code == "2.04"
    gateway.keys.write_text(_keys({"dev2": OTHER_KEY}))
    gateway.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while "reloaded: 1 devices" not in gateway.log.read_text():
        assert time.monotonic() < deadline, gateway.log.read_text()
        time.sleep(0.05)
    assert _request(gateway, "/ps/devices/dev1/temp").code is None
    assert _request(gateway, "/ps/devices/dev2/temp", identity="dev2", key=OTHER_KEY).code == "2.04"


# ---- pisec probe coaps:// against the gateway ---------------------------


def _probe(
    gateway: RunningGateway,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    *extra: str,
    key: str = KEY,
) -> Answer:
    """`pisec probe coaps://...`: its exit code and what it printed."""
    key_file = tmp_path / "dev1.psk"
    key_file.write_bytes(key.encode())
    key_file.chmod(0o600)
    status = main(
        [
            "probe",
            f"coaps://127.0.0.1:{gateway.port}",
            "--psk-identity",
            "dev1",
            "--psk-file",
            str(key_file),
            "--timeout",
            "4",
            *extra,
        ]
    )
    printed = capfd.readouterr()
    return Answer(str(status), None, printed.out + printed.err, printed.out)


def test_the_probe_reports_the_suite_and_confirms_delivery_over_mqtt(
    gateway: RunningGateway,
    plain_broker: PlainBroker,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    password_file = tmp_path / "reader.password"
    password_file.write_text(PASSWORD.decode() + "\n")
    answer = _probe(
        gateway,
        tmp_path,
        capfd,
        "--mqtt-url",
        f"mqtts://localhost:{plain_broker.tls_port}",
        "--ca",
        str(plain_broker.ca_file),
        "--username",
        "reader",
        "--password-file",
        str(password_file),
        "--json",
    )
    assert answer.code == "0", answer.output
    report = json.loads(answer.stdout)
    assert report["ok"] is True
    assert report["protocol"] == "DTLS1.2"
    assert report["cipher"] == "TLS_PSK_WITH_AES_128_CCM_8"
    assert report["coap_code"] == "2.04"
    assert report["delivered_ms"] is not None
    assert [check["name"] for check in report["checks"]] == [
        "dtls handshake",
        "coap publish",
        "mqtt delivery",
    ]
    assert KEY not in answer.output


def test_the_probe_fails_with_the_reason_and_exit_code_1(
    gateway: RunningGateway, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    table = _probe(gateway, tmp_path, capfd)
    assert table.code == "0", table.output
    assert "TLS_PSK_WITH_AES_128_CCM_8" in table.output and "PASS  coap publish" in table.output
    denied = _probe(gateway, tmp_path, capfd, "--topic", "devices/dev2/temp")
    assert denied.code == "1", denied.output
    assert "FAIL  coap publish" in denied.output and "4.03" in denied.output
    wrong = _probe(gateway, tmp_path, capfd, key=OTHER_KEY)
    assert wrong.code == "1", wrong.output
    assert "FAIL  dtls handshake" in wrong.output
    assert OTHER_KEY not in wrong.output


def test_the_probe_refuses_a_short_key_file_naming_it(
    gateway: RunningGateway, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    short = _probe(gateway, tmp_path, capfd, key="too short")
    assert short.code == "2", short.output
    assert "dev1.psk" in short.output and "16 to 64 bytes" in short.output


def _reload(gateway: RunningGateway, devices: dict[str, str]) -> None:
    """New keys for the gateway, and SIGHUP; returns once it reloaded."""
    reloads = gateway.log.read_text().count("reloaded:")
    gateway.keys.write_text(_keys(devices))
    gateway.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while gateway.log.read_text().count("reloaded:") == reloads:
        assert time.monotonic() < deadline, gateway.log.read_text()
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        ({"dev1": KEY, "dev2": OTHER_KEY}, "2.04"),  # dev1 unchanged: its session goes on
        ({"dev1": OTHER_KEY}, "4.01"),  # rotated: the old session is done
        ({"dev2": OTHER_KEY}, "4.01"),  # revoked
    ],
    ids=["unchanged", "rotated", "revoked"],
)
def test_a_session_made_with_an_old_key_ends_with_the_key(
    gateway: RunningGateway, after: dict[str, str], expected: str
) -> None:
    """One DTLS session, a request, a reload of the gateway's keys, the same
    request on the same session: a key that changed or went takes the
    session's rights with it."""
    first: list[str | None] = []
    client = Client(Library())

    def remember_and_reload(code: str | None) -> None:
        first.append(code)
        _reload(gateway, after)

    exchange = client.request(
        "127.0.0.1",
        gateway.port,
        b"dev1",
        KEY.encode(),
        POST,
        [b"ps", b"devices", b"dev1", b"temp"],
        b"21.5",
        5,
        between=(remember_and_reload,),
    )
    assert first == ["2.04"]
    assert exchange.code == expected, exchange


def test_the_json_report_is_alone_on_standard_output_when_the_handshake_fails(
    gateway: RunningGateway, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """libcoap warns of the failed handshake; the warning goes to standard
    error, and standard output is the report alone."""
    unknown = _probe(gateway, tmp_path, capfd, "--psk-identity", "nobody", "--json")
    assert unknown.code == "1", unknown.output
    report = json.loads(unknown.stdout)
    assert report["checks"][0]["name"] == "dtls handshake"
    assert not report["checks"][0]["ok"]
    assert "libcoap:" in unknown.output


@pytest.mark.parametrize(("allow_ccm", "expected"), [(False, None), (True, "2.04")])
def test_aes_128_ccm_is_refused_unless_the_role_allows_it(
    plain_broker: PlainBroker, tmp_path: Path, allow_ccm: bool, expected: str | None
) -> None:
    """The role's priority file, rendered both ways: a client without CCM-8
    gets in only with pisec_coaps_allow_ccm, and then on AES-128-CCM."""
    client_file = tmp_path / "client-gnutls.conf"
    client_file.write_text(CCM_ONLY_CLIENT)
    with _running_gateway(plain_broker, tmp_path, allow_ccm=allow_ccm) as running:
        answer = _request(running, "/ps/devices/dev1/temp", client_priorities=client_file)
        control = _request(running, "/ps/devices/dev1/temp")
    assert answer.code == expected, answer.output
    if allow_ccm:
        assert answer.suite == "GNUTLS_PSK_AES_128_CCM", answer.output
    # A client that offers both: CCM-8 only, or with the variable either
    # (GnuTLS's own order may then pick the 16-byte tag).
    assert control.code == "2.04", control.output
    assert control.suite in (
        ("GNUTLS_PSK_AES_128_CCM_8", "GNUTLS_PSK_AES_128_CCM")
        if allow_ccm
        else ("GNUTLS_PSK_AES_128_CCM_8",)
    ), control.output
