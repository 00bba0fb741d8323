"""pisec probe against mosquitto brokers that refuse part of the round trip.

mosquitto 2.0's acl_file never refuses a SUBSCRIBE (it checks reading when it
delivers), so one broker uses an acl_file (a user who may only read the probe
tree, one who may only write it) and another the dynamic-security plugin,
which does refuse SUBSCRIBE with a SUBACK reason code.
"""

from __future__ import annotations

import base64
import glob
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pisec.cli import PASSWORD_ENV, main
from tests.conftest import Broker, free_port, load_passwd_module, running_mosquitto

pytestmark = pytest.mark.broker

PASSWORD = "acl test password"


@dataclass(frozen=True)
class AclBroker:
    url: str
    ca_file: Path
    log: Path


def _tls_listener(broker: Broker, workdir: Path, settings: str) -> Iterator[AclBroker]:
    """A mosquitto on a free loopback port with the session broker's
    certificates and the given authentication settings, while in use."""
    port = free_port()
    log = workdir / "mosquitto.log"
    certs = broker.ca_file.parent
    (workdir / "mosquitto.conf").write_text(
        f"user root\n{settings}log_dest file {log}\nlog_type all\n"
        f"listener {port} 127.0.0.1\nuse_username_as_clientid true\ncafile {broker.ca_file}\n"
        f"certfile {certs}/server.crt\nkeyfile {certs}/server.key\n"
    )
    with running_mosquitto(workdir / "mosquitto.conf", port, log):
        yield AclBroker(f"mqtts://localhost:{port}", broker.ca_file, log)


@pytest.fixture(scope="module")
def acl_broker(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AclBroker]:
    """The session broker's certificates, a new listener, and a restrictive ACL."""
    workdir = tmp_path_factory.mktemp("acl-broker")
    passwd = load_passwd_module()
    (workdir / "passwd").write_text(
        "".join(
            f"{user}:{passwd.Pbkdf2Hash.new(PASSWORD, 1000).render()}\n"
            for user in ("reader", "writer")
        )
    )
    (workdir / "acl").write_text(
        "user reader\ntopic read pisec/probe/#\n\nuser writer\ntopic write pisec/probe/#\n"
    )
    yield from _tls_listener(
        broker,
        workdir,
        f"allow_anonymous false\npassword_file {workdir}/passwd\nacl_file {workdir}/acl\n",
    )


def _dynsec_client(username: str, password: str) -> dict[str, object]:
    """A dynamic-security client entry, hashed as mosquitto_ctrl hashes it."""
    salt = os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 101, 64)
    return {
        "username": username,
        "password": base64.b64encode(digest).decode(),
        "salt": base64.b64encode(salt).decode(),
        "iterations": 101,
        "roles": [],
    }


@pytest.fixture(scope="module")
def dynsec_broker(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AclBroker]:
    """A listener whose dynamic-security default refuses every SUBSCRIBE."""
    plugins = glob.glob("/usr/lib/*/mosquitto_dynamic_security.so")
    if not plugins:
        pytest.fail("mosquitto_dynamic_security.so is missing: the mosquitto package ships it")
    workdir = tmp_path_factory.mktemp("dynsec-broker")
    (workdir / "dynsec.json").write_text(
        json.dumps(
            {
                "defaultACLAccess": {
                    "publishClientSend": True,
                    "publishClientReceive": True,
                    "subscribe": False,
                    "unsubscribe": True,
                },
                "clients": [_dynsec_client("stranger", PASSWORD)],
                "groups": [],
                "roles": [],
            }
        )
    )
    yield from _tls_listener(
        broker,
        workdir,
        "per_listener_settings false\n"
        f"plugin {plugins[0]}\nplugin_opt_config_file {workdir}/dynsec.json\n",
    )


def _probe(
    acl_broker: AclBroker,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    user: str,
    mqtt_version: str,
    timeout: str = "3",
) -> tuple[int, str]:
    """Exit code and the failed round trip's detail."""
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    code = main(
        [
            "probe",
            acl_broker.url,
            "--ca",
            str(acl_broker.ca_file),
            "--username",
            user,
            "--mqtt-version",
            mqtt_version,
            "--timeout",
            timeout,
            "--json",
        ]
    )
    result = json.loads(capsys.readouterr().out)
    failed = [check for check in result["checks"] if not check["ok"]]
    assert [check["name"] for check in failed] == ["mqtt round trip"], result
    assert result["round_trip_ms"] is None
    return code, failed[0]["detail"]


@pytest.mark.parametrize(("mqtt_version", "code"), [("5", "0x87"), ("3.1.1", "0x80")])
def test_refused_subscribe_is_not_authorised(
    dynsec_broker: AclBroker,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    mqtt_version: str,
    code: str,
) -> None:
    exit_code, detail = _probe(dynsec_broker, capsys, monkeypatch, "stranger", mqtt_version)
    assert exit_code == 1
    assert detail.startswith("not authorised to subscribe to pisec/probe/stranger/"), detail
    assert f"the broker refused the SUBSCRIBE (reason code {code})" in detail


def test_read_only_user_is_not_authorised_to_publish(
    acl_broker: AclBroker, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """MQTT 5: the broker answers the QoS 1 PUBLISH with PUBACK 0x87."""
    exit_code, detail = _probe(acl_broker, capsys, monkeypatch, "reader", "5")
    assert exit_code == 1
    assert detail.startswith("not authorised to publish to pisec/probe/reader/"), detail
    assert "the broker refused the PUBLISH (reason code 0x87)" in detail


def test_read_only_user_under_mqtt_311_times_out_naming_the_acl(
    acl_broker: AclBroker, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """MQTT 3.1.1: mosquitto acknowledges the PUBLISH and drops it without a word."""
    exit_code, detail = _probe(acl_broker, capsys, monkeypatch, "reader", "3.1.1", timeout="1.5")
    assert exit_code == 1
    assert detail.startswith("timeout: the published message did not come back within 1.5 s")
    assert "an ACL may forbid this client to publish to or read pisec/probe/" in detail
    topic = detail.rsplit(" ", 1)[1]
    assert f"Denied PUBLISH from {topic.split('/')[2]} " in acl_broker.log.read_text()


def test_write_only_user_times_out_naming_the_read_acl(
    acl_broker: AclBroker, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """mosquitto grants the SUBSCRIBE and the PUBLISH, then does not deliver:
    the PUBACK said yes, so pisec points at reading."""
    exit_code, detail = _probe(acl_broker, capsys, monkeypatch, "writer", "5", timeout="1.5")
    assert exit_code == 1
    assert detail.startswith(
        "timeout: the broker accepted the PUBLISH but the message did not come back within 1.5 s"
    ), detail
    assert detail.endswith("an ACL may forbid this client to read " + detail.rsplit(" ", 1)[1])
