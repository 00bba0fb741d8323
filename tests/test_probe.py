"""pisec probe against a real mosquitto over real TLS on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pisec.cli import PASSWORD_ENV, main
from pisec.rules import serial_hex
from tests.conftest import Broker, free_port

pytestmark = pytest.mark.broker


def _probe(
    broker: Broker,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    *extra: str,
    url: str | None = None,
    password: str | None = None,
    ca: Path | None = None,
) -> tuple[int, dict[str, object]]:
    monkeypatch.setenv(PASSWORD_ENV, broker.password if password is None else password)
    code = main(
        [
            "probe",
            url or broker.url,
            "--ca",
            str(ca or broker.ca_file),
            "--username",
            broker.username,
            "--timeout",
            "5",
            "--json",
            *extra,
        ]
    )
    out = capsys.readouterr().out
    return code, json.loads(out)


def _failed_details(result: dict[str, object]) -> list[str]:
    checks = result["checks"]
    assert isinstance(checks, list)
    return [check["detail"] for check in checks if not check["ok"]]


def test_round_trip_over_tls(
    broker: Broker, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, result = _probe(broker, capsys, monkeypatch)
    assert code == 0, result
    assert result["ok"] is True
    assert result["tls_version"] in ("TLSv1.2", "TLSv1.3")
    assert result["server_serial"] == serial_hex(broker.server.certificate.serial_number)
    assert result["server_subject"] == "CN=localhost"
    assert isinstance(result["round_trip_ms"], float) and result["round_trip_ms"] > 0
    assert isinstance(result["server_days_left"], int) and 8 <= result["server_days_left"] <= 10
    checks = result["checks"]
    assert isinstance(checks, list)
    names = [check["name"] for check in checks]
    assert names == ["tls handshake", "served chain", "host name", "mqtt round trip"]


def test_untrusted_ca_is_named(
    broker: Broker, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, result = _probe(broker, capsys, monkeypatch, ca=broker.rogue_ca_file)
    assert code == 1
    assert _failed_details(result) == [
        "untrusted CA: the broker's certificate was not issued by the given CA"
    ]


def test_name_mismatch_is_named(
    broker: Broker, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, result = _probe(broker, capsys, monkeypatch, url=f"mqtts://127.0.0.1:{broker.port}")
    assert code == 1
    details = _failed_details(result)
    assert len(details) == 1 and details[0].startswith("name mismatch")


def test_bad_password_is_named(
    broker: Broker, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, result = _probe(broker, capsys, monkeypatch, password="not the password")
    assert code == 1
    assert _failed_details(result) == [
        "bad credentials or not authorised: the broker refused this client at CONNECT"
    ]


def test_the_brokers_dropped_messages_are_shown(
    fresh_broker: Broker,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The broker's count of messages dropped from full queues, which the
    probe identity may read, in --json and in the table. (A broker of its
    own: the session broker's retained $SYS value was not always there
    after minutes of other tests.)"""
    code, result = _probe(fresh_broker, capsys, monkeypatch)
    assert code == 0, result
    assert result["dropped_messages"] == 0
    monkeypatch.setenv(PASSWORD_ENV, fresh_broker.password)
    argv = ["probe", fresh_broker.url, "--ca", str(fresh_broker.ca_file)]
    assert main([*argv, "--username", fresh_broker.username]) == 0
    out = capsys.readouterr().out
    assert "dropped messages    0 since the broker started (queues full)" in out


def test_human_output_is_a_table(
    broker: Broker, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, broker.password)
    code = main(["probe", broker.url, "--ca", str(broker.ca_file), "--username", broker.username])
    out = capsys.readouterr().out
    assert code == 0
    assert "PASS  mqtt round trip" in out
    assert f"serial              {serial_hex(broker.server.certificate.serial_number)}" in out


def test_password_on_standard_input_only(broker: Broker) -> None:
    """`--password-file -` (what verify.yml uses): the password reaches the
    probe through a pipe, with nothing in its argv or environment."""
    environment = {key: value for key, value in os.environ.items() if key != PASSWORD_ENV}
    argv = [
        sys.executable,
        "-c",
        "import sys; from pisec.cli import main; sys.exit(main())",
        "probe",
        broker.url,
        "--ca",
        str(broker.ca_file),
        "--username",
        broker.username,
        "--password-file",
        "-",
        "--json",
    ]
    assert not any(broker.password in word for word in argv)
    assert not any(broker.password in value for value in environment.values())
    done = subprocess.run(
        argv,
        input=broker.password + "\n",
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ok"] is True
    wrong = subprocess.run(
        argv,
        input="not the password\n",
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert wrong.returncode == 1
    assert "bad credentials" in wrong.stdout
    empty = subprocess.run(
        argv, input="", env=environment, capture_output=True, text=True, timeout=60, check=False
    )
    assert empty.returncode == 2
    assert empty.stderr == "pisec: error: standard input: password file is empty\n"


def test_absent_broker_is_an_input_error(
    broker: Broker, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    code = main(["probe", f"mqtts://127.0.0.1:{port}", "--ca", str(broker.ca_file)])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err == (
        f"pisec: error: mqtts://127.0.0.1:{port}: "
        "connection refused: nothing listens on that port\n"
    )


def test_client_certificate_on_an_mtls_listener(
    broker: Broker, capsys: pytest.CaptureFixture[str]
) -> None:
    """The certificate's CN is the identity: the round trip needs no password."""
    url = f"mqtts://localhost:{broker.mtls_port}"
    code = main(
        [
            "probe",
            url,
            "--ca",
            str(broker.ca_file),
            "--cert",
            str(broker.client_cert),
            "--key",
            str(broker.client_key),
            "--json",
            "--timeout",
            "5",
        ]
    )
    result = json.loads(capsys.readouterr().out)
    assert code == 0, result
    assert result["ok"] is True


def test_mtls_listener_without_a_certificate_is_refused(
    broker: Broker, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"mqtts://localhost:{broker.mtls_port}"
    code = main(["probe", url, "--ca", str(broker.ca_file), "--json", "--timeout", "5"])
    result = json.loads(capsys.readouterr().out)
    assert code == 1
    assert not result["ok"]
    assert any(
        not check["ok"] and "client certificate" in check["detail"] for check in result["checks"]
    ), result["checks"]
