"""pisec fleet certs: inventory reading, due rule, report and exit codes.

The SSH transport is exercised for real by the Molecule scenario `rotation`;
here a reader stands in for it so that every outcome can be set up.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

import pisec.cli
import pisec.fleet
import pisec.rules
from pisec.cli import main
from pisec.fleet import (
    FleetHost,
    facts_command,
    hosts_from_inventory,
    is_due,
    managed_files,
    remote_command,
    split_files,
)
from plugins.filter import pisec_pki
from tests.certs import build, name, new_key
from tests.conftest import PROJECT

INVENTORY = {
    "_meta": {
        "hostvars": {
            "broker-1": {"ansible_host": "192.0.2.10", "ansible_user": "pi"},
            "sensor-1": {
                "ansible_connection": "community.docker.docker",
                "pisec_ssh_host": "172.30.0.5",
                "pisec_ssh_port": "2222",
                "pisec_ssh_user": "root",
                "pisec_ssh_key": "~/.ssh/demo",
            },
        }
    },
    "all": {"children": ["pisec_brokers", "pisec_pis"]},
    "pisec_pis": {"children": ["pisec_clients"]},
    "pisec_brokers": {"hosts": ["broker-1"]},
    "pisec_clients": {"hosts": ["sensor-1"]},
}


def test_hosts_come_from_the_inventory() -> None:
    hosts = hosts_from_inventory("inv", runner=lambda _args: json.dumps(INVENTORY))
    assert hosts == [
        FleetHost("broker-1", "192.0.2.10", 22, "pi", None),
        FleetHost("sensor-1", "172.30.0.5", 2222, "root", "~/.ssh/demo"),
    ]


def _fact(stem: str, fact: dict[str, Any]) -> str:
    return f"==> pisec-file /etc/ansible/facts.d/{stem}.fact\n{json.dumps(fact)}\n"


def _cert_fact(name: str, purpose: str, directory: str) -> str:
    return _fact(
        "pisec_cert_" + name.replace("-", "_"),
        {
            "name": name,
            "purpose": purpose,
            "common_name": "x",
            "dir": directory,
            "certificate": f"{directory}/{name}.crt",
            "key": f"{directory}/{name}.key",
            "ca": f"{directory}/pisec-ca.crt",
        },
    )


# What the roles write on a broker and on a device Pi (the device's
# directory moved by its inventory: the paths come from the facts).
BROKER_FACTS = _cert_fact("pisec-server", "server", "/etc/mosquitto/certs") + _fact(
    "pisec_mosquitto", {"crl_file": "/etc/mosquitto/certs/pisec-ca.crl"}
)
CLIENT_FACTS = _cert_fact("client", "client", "/srv/pisec/tls")


def test_the_remote_side_reads_the_facts_then_the_files_they_name() -> None:
    command = facts_command()
    assert "/etc/ansible/facts.d/pisec_cert_*.fact" in command and "sudo" not in command
    files = split_files(BROKER_FACTS + CLIENT_FACTS)
    assert managed_files(files) == [
        ("device client", "/srv/pisec/tls/client.crt"),
        ("broker server", "/etc/mosquitto/certs/pisec-server.crt"),
        ("broker CRL", "/etc/mosquitto/certs/pisec-ca.crl"),
    ]
    assert remote_command(["/srv/pisec/tls/client.crt"]).startswith(
        "if [ -r /srv/pisec/tls/client.crt ]; then echo '==> pisec-file /srv/pisec/tls/client.crt'"
    )
    files = split_files("==> pisec-file /srv/pisec/tls/client.crt\n-----BEGIN X-----\nAA\n")
    assert files == {"/srv/pisec/tls/client.crt": b"-----BEGIN X-----\nAA\n"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("certificate", "/etc/pisec/tls/client.crt; rm -rf /"),
        ("certificate", "$(reboot)"),
        ("certificate", "/etc/../root/.ssh/id_ed25519"),
        ("certificate", "relative/client.crt"),
        ("certificate", "/etc/pisec/tls/client.crt\n/etc/shadow"),
        ("ca", "/etc/pisec/tls/ca.crt\u00a0"),
        ("purpose", "admin"),
        ("name", "../client"),
        ("dir", ["/etc"]),
    ],
)
def test_a_forged_fact_is_refused_naming_its_field_and_nothing_is_read(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    field: str,
    value: Any,
) -> None:
    """Root on a Pi writes its local facts: a path that is not a plain
    absolute path, or a field that is not what the roles write, is one
    problem item naming the fact and field; no path of it reaches a
    command."""
    fact = json.loads(CLIENT_FACTS.split("\n", 1)[1])
    fact[field] = value
    output = _fact("pisec_cert_client", fact) + "==> pisec-file /etc/shadow\nroot:x\n"
    with pytest.raises(ValueError, match=re.escape(f"ansible_local.pisec_cert_client.{field}")):
        managed_files(split_files(output))
    code, reports = _run(monkeypatch, capsys, {"broker-1": BROKER_FACTS, "sensor-1": output})
    assert code == 1
    [item] = reports[1]["certificates"]
    assert item["role"] == "local facts" and f"pisec_cert_client.{field}" in item["problem"]


def test_a_fact_that_is_not_json_is_a_problem_item() -> None:
    with pytest.raises(ValueError, match=re.escape("pisec_cert_client.fact is not JSON")):
        managed_files(
            split_files("==> pisec-file /etc/ansible/facts.d/pisec_cert_client.fact\n{\n")
        )


def test_due_rule_matches_the_roles() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    end = start + timedelta(days=90)
    assert not is_due(start, end, start + timedelta(days=59), 1 / 3)
    assert is_due(start, end, start + timedelta(days=61), 1 / 3)
    assert is_due(start, end, end, 1 / 3)


def _pem(days_left: int, lifetime: int) -> str:
    now = datetime.now(UTC)
    pair = build(
        name("broker-1"),
        new_key("p256"),
        not_before=now - timedelta(days=lifetime - days_left),
        not_after=now + timedelta(days=days_left),
    )
    return pair.certificate.public_bytes(serialization.Encoding.PEM).decode()


def _run(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    outputs: dict[str, str | Exception],
    *extra: str,
) -> tuple[int, list[dict[str, Any]]]:
    monkeypatch.setattr(pisec.fleet, "_run_ansible_inventory", lambda _a: json.dumps(INVENTORY))

    def reader(host: FleetHost, _timeout: float, _known: Path | None = None) -> str:
        value = outputs[host.name]
        if isinstance(value, Exception):
            raise value
        return value

    monkeypatch.setattr(pisec.cli, "read_over_ssh", reader)
    code = main(["fleet", "certs", "-i", "inv", "--json", *extra])
    return code, json.loads(capsys.readouterr().out)


def test_nothing_due_exits_0(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fresh = BROKER_FACTS + "==> pisec-file /etc/mosquitto/certs/pisec-server.crt\n" + _pem(300, 365)
    code, reports = _run(monkeypatch, capsys, {"broker-1": fresh, "sensor-1": ""})
    assert code == 0
    [cert] = reports[0]["certificates"]
    assert cert["role"] == "broker server" and cert["due"] is False and cert["days_left"] == 299


def test_due_or_unreachable_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    due = CLIENT_FACTS + "==> pisec-file /srv/pisec/tls/client.crt\n" + _pem(20, 365)
    code, reports = _run(
        monkeypatch, capsys, {"broker-1": OSError("No route to host"), "sensor-1": due}, "--due"
    )
    assert code == 1
    assert reports[0]["reachable"] is False and "No route to host" in str(reports[0]["error"])
    [cert] = reports[1]["certificates"]
    assert cert["role"] == "device client" and cert["due"] is True


def test_text_table(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(pisec.fleet, "_run_ansible_inventory", lambda _a: json.dumps(INVENTORY))
    monkeypatch.setattr(
        pisec.cli,
        "read_over_ssh",
        lambda host, _t, _k=None: (
            CLIENT_FACTS + "==> pisec-file /srv/pisec/tls/client.crt\n" + _pem(5, 30)
        ),
    )
    assert main(["fleet", "certs", "-i", "inv"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["HOST", "WHAT", "SERIAL", "NOT", "AFTER", "DAYS", "STATUS"]
    assert out[1].startswith("broker-1") and out[1].endswith("DUE")


def test_bad_inventory_is_an_input_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = main(["fleet", "certs", "-i", str(tmp_path / "missing")])
    assert code == 2
    assert capsys.readouterr().err.startswith("pisec: error: ")


def _crl_pem(issuer: str, days_left: int) -> str:
    now = datetime.now(UTC)
    ca = build(name(issuer), new_key("p256"), ca=True)
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(now - timedelta(days=1))
        .next_update(now + timedelta(days=days_left, hours=1))
        .sign(ca.key, hashes.SHA256())
    )
    return crl.public_bytes(serialization.Encoding.PEM).decode()


def test_every_crl_of_a_rollover_bundle_is_listed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # During a CA rollover the broker's crlfile holds the CRL of each CA;
    # the second one running out must not hide behind the first.
    bundle = _crl_pem("pisec fleet CA", 25) + _crl_pem("pisec fleet CA G2", 5)
    output = BROKER_FACTS + "==> pisec-file /etc/mosquitto/certs/pisec-ca.crl\n" + bundle
    code, reports = _run(monkeypatch, capsys, {"broker-1": output, "sensor-1": ""})
    assert code == 1
    crls = reports[0]["certificates"]
    assert [(c["role"], c["days_left"], c["due"]) for c in crls] == [
        ("broker CRL", 25, False),
        ("broker CRL", 5, True),
    ]


def _inventory_with_ca(ca_vars: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(json.dumps(INVENTORY))
    data["_meta"]["hostvars"]["localhost"] = ca_vars
    data["pisec_ca"] = {"hosts": ["localhost"]}
    return data


def _run_with(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    inventory: dict[str, Any],
    outputs: dict[str, str],
    *extra: str,
) -> tuple[int, list[dict[str, Any]]]:
    monkeypatch.setattr(pisec.fleet, "_run_ansible_inventory", lambda _a: json.dumps(inventory))
    monkeypatch.setattr(pisec.cli, "read_over_ssh", lambda host, _t, _k=None: outputs[host.name])
    code = main(["fleet", "certs", "-i", "inv", "--json", *extra])
    return code, json.loads(capsys.readouterr().out)


def test_a_crl_is_due_within_the_inventorys_renewal_window(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    output = (
        BROKER_FACTS
        + "==> pisec-file /etc/mosquitto/certs/pisec-ca.crl\n"
        + _crl_pem("pisec fleet CA", 15)
    )
    inventory = _inventory_with_ca({"pisec_ca_crl_renew_before_days": 20})
    code, reports = _run_with(monkeypatch, capsys, inventory, {"broker-1": output, "sensor-1": ""})
    assert code == 1
    assert [(c["days_left"], c["due"]) for c in reports[0]["certificates"]] == [(15, True)]
    code, reports = _run_with(
        monkeypatch, capsys, inventory, {"broker-1": output, "sensor-1": ""}, "--crl-days", "5"
    )
    assert code == 0
    assert [(c["days_left"], c["due"]) for c in reports[0]["certificates"]] == [(15, False)]


def test_unmanaged_devices_bundles_are_listed_with_their_days_left(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "esp32-door").mkdir()
    (tmp_path / "esp32-door" / "esp32-door.crt").write_text(_pem(3, 30))
    (tmp_path / "esp32-door" / "esp32-door.key").write_text("never read")
    (tmp_path / "esp32-door" / "esp32-door.key").chmod(0)
    inventory = _inventory_with_ca(
        {
            "pisec_ca_device_bundle_dir": str(tmp_path),
            "pisec_fleet_devices": [
                {"name": "sensor-1"},
                {"name": "esp32-door", "managed": False},
                {"name": "esp32-gate"},
            ],
        }
    )
    fresh = "==> pisec-file /etc/pisec/tls/client.crt\n" + _pem(300, 365)
    code, reports = _run_with(monkeypatch, capsys, inventory, {"broker-1": "", "sensor-1": fresh})
    assert code == 1
    bundles = {report["host"]: report["certificates"] for report in reports[2:]}
    assert list(bundles) == ["esp32-door", "esp32-gate"]
    [door] = bundles["esp32-door"]
    assert (door["role"], door["days_left"], door["due"]) == ("device bundle", 2, True)
    assert door["path"] == str(tmp_path / "esp32-door" / "esp32-door.crt")
    [gate] = bundles["esp32-gate"]
    assert gate["problem"] == "no bundle yet" and gate["due"] is True


def test_a_templated_bundle_dir_needs_the_option(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    inventory = _inventory_with_ca(
        {
            "pisec_ca_device_bundle_dir": "{{ lookup('env', 'HOME') }}/devices",
            "pisec_fleet_devices": [{"name": "esp32-door", "managed": False}],
        }
    )
    monkeypatch.setattr(pisec.fleet, "_run_ansible_inventory", lambda _a: json.dumps(inventory))
    assert main(["fleet", "certs", "-i", "inv"]) == 2
    assert "give --bundle-dir" in capsys.readouterr().err
    code, reports = _run_with(
        monkeypatch,
        capsys,
        inventory,
        {"broker-1": "", "sensor-1": ""},
        "--bundle-dir",
        str(tmp_path),
    )
    assert code == 1
    assert reports[-1]["host"] == "esp32-door" and reports[-1]["certificates"][0]["due"]


def test_the_renewal_rule_and_serial_form_are_one_implementation() -> None:
    """The CLI, the roles' filters and the CA host's modules use the same
    file (plugins/module_utils/pisec_rules.py is a link to it)."""
    shared = PROJECT / "plugins/module_utils/pisec_rules.py"
    assert shared.is_symlink()
    assert shared.resolve() == Path(pisec.rules.__file__).resolve()
    assert pisec.fleet.is_due is pisec.rules.renewal_due
    assert pisec_pki.serial_hex(0x0ABC) == pisec.rules.serial_hex(0x0ABC) == "0ABC"


def test_the_playbooks_read_the_same_facts_through_the_filters() -> None:
    """ca-rollover.yml and rotate-certs.yml read ansible_local through
    pisec_cert_facts / pisec_cert_fact: the same checks, the host named."""
    from ansible.errors import AnsibleFilterError

    from plugins.filter.pisec_pki import cert_fact, cert_facts

    local = {
        stem.removesuffix(".fact").rsplit("/", 1)[-1]: json.loads(data)
        for stem, data in split_files(BROKER_FACTS + CLIENT_FACTS).items()
    }
    assert [fact["certificate"] for fact in cert_facts(local, "pi")] == [
        "/srv/pisec/tls/client.crt",
        "/etc/mosquitto/certs/pisec-server.crt",
    ]
    assert cert_fact(local, "pisec-server", "pi")["ca"] == "/etc/mosquitto/certs/pisec-ca.crt"
    with pytest.raises(AnsibleFilterError, match=r"pi-b: no local fact .*pisec_cert_pisec_server"):
        cert_fact({}, "pisec-server", "pi-b")
    local["pisec_cert_client"]["key"] = "/etc/pisec/tls/client.key && id"
    with pytest.raises(
        AnsibleFilterError, match=re.escape("pi-c: ansible_local.pisec_cert_client.key")
    ):
        cert_facts(local, "pi-c")
