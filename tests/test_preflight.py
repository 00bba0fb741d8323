"""Bad inventory values stop ansible-playbook before anything changes.

The broker in this inventory does not exist: if the preflight let a bad
value through, the run would get as far as creating the CA on the control
node, which the tests check did not happen.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import PROJECT

ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"

INVENTORY = """\
all:
  children:
    pisec_ca:
      hosts:
        localhost:
          ansible_connection: local
          ansible_python_interpreter: "{{ ansible_playbook_python }}"
          # No systemd here to run the rotation job's timer.
          pisec_rotation_job_state: absent
    pisec_brokers:
      hosts:
        preflight-broker:
          ansible_connection: community.docker.docker
    pisec_clients:
      hosts:
        preflight-client:
          ansible_connection: community.docker.docker
"""


def run_playbook(
    tmp_path: Path,
    playbook: str,
    extra_vars: dict[str, object],
    *,
    fresh_inventory: bool = True,
) -> subprocess.CompletedProcess[str]:
    inventory = tmp_path / "inventory"
    if fresh_inventory:
        inventory.mkdir()
        (inventory / "hosts.yml").write_text(INVENTORY)
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(PROJECT / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
    }
    return subprocess.run(
        [
            str(ANSIBLE_PLAYBOOK),
            "-i",
            str(inventory),
            str(PROJECT / "playbooks" / playbook),
            "-e",
            json.dumps({"pisec_ca_passphrase": "a passphrase long enough", **extra_vars}),
        ],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


Runs = dict[str, tuple[Path, "subprocess.CompletedProcess[str]"]]


def _key(extra_vars: dict[str, object]) -> str:
    return json.dumps(extra_vars, sort_keys=True)


@pytest.fixture(scope="module")
def preflight_runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """site.yml once for every bad and hostile value of this module, three
    runs at a time (each is one ansible-playbook, mostly waiting on itself)."""
    cases = {_key(extra): extra for extra, _ in BAD + HOSTILE}
    places = {key: tmp_path_factory.mktemp("preflight") for key in cases}

    def run(key: str) -> tuple[str, tuple[Path, subprocess.CompletedProcess[str]]]:
        return key, (places[key], run_playbook(places[key], "site.yml", cases[key]))

    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(pool.map(run, cases))


def assert_stopped_in_the_preflight(runs: Runs, extra_vars: dict[str, object], named: str) -> None:
    """site.yml with these values failed in the preflight, naming `named`,
    without a traceback and before the CA directory existed."""
    place, result = runs[_key(extra_vars)]
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert named in output, output
    assert "Preflight" in output
    assert "Traceback" not in output, output
    assert "PLAY [Run the fleet CA]" not in output
    assert not (place / "inventory/.pisec").exists(), "the CA host was changed"


BAD: list[tuple[dict[str, object], str]] = [
    ({"pisec_ca_key_type": "dsa"}, "pisec_ca_key_type"),
    ({"pisec_ca_key_type": "rsa", "pisec_ca_key_size": 1024}, "pisec_ca_key_size"),
    ({"pisec_mosquitto_key_size": 1024}, "pisec_mosquitto_key_size"),
    ({"pisec_mosquitto_cert_validity_days": 900}, "pisec_mosquitto_cert_validity_days"),
    ({"pisec_ca_max_leaf_validity_days": 826}, "pisec_ca_max_leaf_validity_days"),
    ({"pisec_mosquitto_tls_listeners": [{"port": 70000}]}, "pisec_mosquitto_tls_listeners"),
    ({"pisec_mosquitto_plaintext_port": 0}, "pisec_mosquitto_plaintext_port"),
    ({"pisec_ca_passphrase": ""}, "pisec_ca_passphrase"),
    ({"pisec_mosquitto_tls_version": "tlsv1.1"}, "pisec_mosquitto_tls_version"),
    (
        {"pisec_mosquitto_users": [{"name": "u", "password": "short"}]},
        "the password of pisec_mosquitto_users[u] is shorter than 16 characters "
        "(pisec_mosquitto_password_min_length)",
    ),
    (
        {
            "pisec_mosquitto_users": [
                {"name": "u", "password": "a long enough password"},
                {"name": "u", "password": "another long password"},
            ]
        },
        "pisec_mosquitto_users: 'u' is declared twice",
    ),
    (
        {"pisec_mosquitto_extra_subject_alt_names": ["mqtt.example.org"]},
        "pisec_mosquitto_extra_subject_alt_names",
    ),
    ({"pisec_fleet_devices": [{"name": "not a CN"}]}, "pisec_fleet_devices"),
    (
        {"pisec_fleet_devices": [{"name": "pi-a"}, {"name": "pi-a"}]},
        "'pi-a' is declared twice",
    ),
    (
        {
            "pisec_fleet_devices": [{"name": "dash"}],
            "pisec_mosquitto_users": [{"name": "dash", "password": "a long enough password"}],
        },
        "'dash' is declared in both",
    ),
    (
        {"pisec_mosquitto_acl_patterns": [{"topic": "devices/#/%u", "access": "read"}]},
        "pisec_mosquitto_acl_patterns[1]",
    ),
    (
        {
            "pisec_mosquitto_users": [
                {"name": "u", "password": "a long enough password", "acl": [{"topic": "a+"}]}
            ]
        },
        "pisec_mosquitto_users[u].acl[1]: topic 'a+'",
    ),
    (
        {"pisec_ca_device_validity_days": 826},
        "pisec_ca_device_validity_days must be 1..825 (is 826)",
    ),
    (
        {"pisec_ca_device_validity_days": 500, "pisec_ca_max_leaf_validity_days": 397},
        "pisec_ca_device_validity_days (is 500) must not exceed pisec_ca_max_leaf_validity_days",
    ),
    # The CoAPs gateway publishes to the broker's loopback listener.
    (
        {"pisec_coaps_enabled": True, "pisec_mosquitto_plaintext_listener": "off"},
        "pisec_coaps_enabled needs the broker's loopback listener",
    ),
    ({"pisec_coaps_listen": ["0.0.0.0\nExecStart=/bin/sh"]}, "pisec_coaps_listen"),
    (
        {"pisec_fleet_devices": [{"name": "dev1", "coaps": "yes"}]},
        "pisec_fleet_devices[dev1].coaps must be true or false",
    ),
    (
        {"pisec_fleet_devices": [{"name": "dev1", "coaps": True, "psk_format": "hex"}]},
        "pisec_fleet_devices[dev1].psk_format must be text or raw",
    ),
    # Names of CoAPs devices reach file names and coap-client's hint file.
    (
        {"pisec_coaps_devices": [{"name": "../../etc/cron.d/x", "coaps": True}]},
        "pisec_coaps_devices: '../../etc/cron.d/x' is not a valid identity",
    ),
    (
        {"pisec_mosquitto_gateway_identities": ["dev,evil"]},
        "pisec_mosquitto_gateway_identities: 'dev,evil' is not a valid identity",
    ),
    # Settings of earlier versions stop the run instead of being ignored.
    (
        {"pisec_fleet_acl_patterns": [{"topic": "devices/%u/#", "access": "read"}]},
        "pisec_fleet_acl_patterns is now pisec_mosquitto_acl_patterns",
    ),
    (
        {"pisec_fleet_device_cert_validity_days": 30},
        "pisec_fleet_device_cert_validity_days is now pisec_ca_device_validity_days",
    ),
    # A role's own device list, where it is not the fleet's register, is
    # checked under its own name.
    (
        {"pisec_mosquitto_devices": [{"name": "dev1", "acl": [{"topic": "a/#/b"}]}]},
        "pisec_mosquitto_devices[dev1].acl[1]",
    ),
    ({"pisec_mosquitto_tls_listeners": [{"port": 8883, "auth": "psk"}]}, "auth"),
    (
        {"pisec_host_cert_renew_fraction_left": 1.5},
        "pisec_host_cert_renew_fraction_left must be between 0 and 1 (is 1.5)",
    ),
    # A `$` would let a trailing line break through; fullmatch does not.
    (
        {"pisec_host_cert_common_name": "pi-a\nuser evil"},
        "pisec_host_cert_common_name: 'pi-a\\nuser evil' is not a valid certificate",
    ),
    ({"pisec_fleet_devices": [{"name": "dev1\n"}]}, "pisec_fleet_devices: 'dev1\\n'"),
    (
        {"pisec_mosquitto_extra_subject_alt_names": ["DNS:mqtt.example.org\n"]},
        "pisec_mosquitto_extra_subject_alt_names: 'DNS:mqtt.example.org\\n'",
    ),
    ({"pisec_host_cert_purpose": "both"}, "pisec_host_cert_purpose"),
    # Types the roles' meta/argument_specs.yml declare, checked in the
    # preflight too (a role checks them only when it starts).
    ({"pisec_host_cert_validity_days": "x"}, "argument 'pisec_host_cert_validity_days' is of type"),
    (
        {"pisec_ca_sign_not_before": "+10m"},
        "pisec_ca_sign_not_before must be a time before now",
    ),
    ({"pisec_mosquitto_probe_user": "probe user"}, "pisec_mosquitto_probe_user: 'probe user'"),
    (
        {"pisec_mosquitto_users": [{"name": "pisec-probe"}]},
        "'pisec-probe' is declared in both pisec_mosquitto_users and pisec_mosquitto_probe_user",
    ),
]

# Values that would inject a line into a file on a host (or a word into a
# command) if written verbatim. Each must stop the run in the preflight,
# named with its host, before the CA directory exists.
JOB = {"pisec_rotation_job_state": "present"}
HOSTILE: list[tuple[dict[str, object], str]] = [
    # From the review (issue 14).
    (
        {
            "pisec_mosquitto_tls_listeners": [
                {"port": 8883, "bind_address": "127.0.0.1\nallow_anonymous true"}
            ]
        },
        "preflight-broker: pisec_mosquitto_tls_listeners entry 1: bind_address must be",
    ),
    (
        {"pisec_mosquitto_tls12_ciphers": "ECDHE-ECDSA-AES128-GCM-SHA256\nallow_anonymous true"},
        "'ECDHE-ECDSA-AES128-GCM-SHA256\\nallow_anonymous true' is not a TLS 1.2",
    ),
    (
        {"pisec_mosquitto_tls13_ciphersuites": "TLS_AES_128_GCM_SHA256\nallow_anonymous true"},
        "pisec_mosquitto_tls13_ciphersuites",
    ),
    (
        {"pisec_mosquitto_tls_groups": ["X25519\nMinProtocol = TLSv1"]},
        "pisec_mosquitto_tls_groups",
    ),
    (
        {"pisec_wireguard_endpoint": "hub.example.org\n[Interface]\nPostUp = touch /tmp/x"},
        "pisec_wireguard_endpoint must be the hub's DNS name or IPv4 address",
    ),
    (
        {"pisec_wireguard_interface": "pisec0\n"},
        "pisec_wireguard_interface must be an interface name",
    ),
    # pisec's own.
    (
        {"pisec_mosquitto_persistent_client_expiration": "14d\nallow_anonymous true"},
        "pisec_mosquitto_persistent_client_expiration must be a duration",
    ),
    (
        {"pisec_mosquitto_max_queued_messages": "0\nallow_anonymous true"},
        "pisec_mosquitto_max_queued_messages",
    ),
    (
        {"pisec_mosquitto_max_connections": True},
        "pisec_mosquitto_max_connections must be a whole number",
    ),
    (
        {
            "pisec_mosquitto_transport": "vpn",
            "pisec_mosquitto_vpn_address": "10.8.0.1\nlistener 1884",
        },
        "pisec_mosquitto_vpn_address must be an IPv4 address",
    ),
    ({"pisec_mosquitto_vpn_interface": 'wg0"; reboot'}, "pisec_mosquitto_vpn_interface"),
    ({"pisec_mosquitto_tls12_ciphers": "ALL:eNULL"}, "'ALL' is not a TLS 1.2 cipher pisec accepts"),
    ({"pisec_mosquitto_tls_groups": "X25519"}, "pisec_mosquitto_tls_groups must be a list"),
    (
        {"pisec_mosquitto_tls_listeners": [{"port": 8883, "bind_adress": "127.0.0.1"}]},
        "pisec_mosquitto_tls_listeners.bind_adress",
    ),
    ({"pisec_wireguard_keepalive": "25\nPostUp = reboot"}, "pisec_wireguard_keepalive"),
    ({"pisec_wireguard_port": "51820 # x"}, "pisec_wireguard_port"),
    (
        {**JOB, "pisec_rotation_job_project_dir": "/srv/pisec\nExecStartPre=/bin/sh"},
        "localhost: pisec_rotation_job_project_dir must be an absolute path",
    ),
    (
        {**JOB, "pisec_rotation_job_extra_args": ["--limit", "a b"]},
        "pisec_rotation_job_extra_args entry 2",
    ),
    ({**JOB, "pisec_rotation_job_user": "root\nUser=nobody"}, "pisec_rotation_job_user"),
    (
        {**JOB, "pisec_rotation_job_on_calendar": "daily\nExecStart=/bin/sh"},
        "pisec_rotation_job_on_calendar must be a systemd calendar expression",
    ),
    (
        {**JOB, "pisec_rotation_job_vault_password_file": "/root/vault %h"},
        "pisec_rotation_job_vault_password_file",
    ),
    (
        {**JOB, "pisec_rotation_job_randomized_delay_sec": "60\nUser=x"},
        "pisec_rotation_job_randomized_delay_sec",
    ),
    (
        {"pisec_host_cert_reload_services": ["mosquitto; reboot"]},
        "pisec_host_cert_reload_services entry 1",
    ),
    ({"pisec_host_cert_dir": "../tls"}, "pisec_host_cert_dir must be an absolute path"),
    ({"pisec_host_cert_key_mode": 256}, "pisec_host_cert_key_mode"),
    ({"pisec_mqtt_client_packages": ["mosquitto-clients\n"]}, "pisec_mqtt_client_packages entry 1"),
    ({"pisec_mqtt_client_ca_path": "/etc/pisec/tls/pisec-ca.crt\n"}, "pisec_mqtt_client_ca_path"),
    ({"pisec_ca_common_name": "pisec CA\u0000"}, "pisec_ca_common_name must be 1 to 60 printable"),
]


@pytest.mark.parametrize(("extra_vars", "named"), HOSTILE, ids=[named for _, named in HOSTILE])
def test_hostile_value_stops_the_run_before_anything_changes(
    preflight_runs: Runs, extra_vars: dict[str, object], named: str
) -> None:
    # Named by pisec's allow-lists, or by Ansible's own type check of the
    # role's argument spec, which runs first for values that are no number.
    assert_stopped_in_the_preflight(preflight_runs, extra_vars, named)


def test_the_inventory_cannot_skip_the_preflight(tmp_path: Path) -> None:
    """Whatever the inventory says (a 'passed' flag or the old marker), the
    first preflight of a run checks every host."""
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    (inventory / "hosts.yml").write_text(
        INVENTORY.replace(
            "all:\n",
            "all:\n  vars:\n    pisec__preflight_passed: true\n    pisec_preflight_done: true\n"
            "    pisec_mosquitto_tls12_ciphers: 'ALL:eNULL'\n",
            1,
        )
    )
    result = run_playbook(tmp_path, "site.yml", {}, fresh_inventory=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "'ALL' is not a TLS 1.2 cipher pisec accepts" in output, output
    assert not (tmp_path / "inventory/.pisec").exists(), "the CA host was changed"


def test_a_hostile_host_name_stops_the_run(tmp_path: Path) -> None:
    """A host name reaches file names and shell words on the hub; one that
    is not a plain name stops the run before anything changes."""
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    hostile = "c1;touch${IFS}/tmp/pisec-injected;"
    (inventory / "hosts.yml").write_text(
        INVENTORY + f"        '{hostile}':\n          ansible_connection: community.docker.docker\n"
    )
    result = run_playbook(tmp_path, "site.yml", {}, fresh_inventory=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert f'"{hostile}": inventory_hostname must be a host name' in output, output
    assert "Traceback" not in output, output
    assert not (tmp_path / "inventory/.pisec").exists(), "the CA host was changed"
    assert not Path("/tmp/pisec-injected").exists()


@pytest.mark.parametrize(
    ("extra_vars", "named"),
    BAD,
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_bad_value_stops_the_run_naming_the_variable(
    preflight_runs: Runs, extra_vars: dict[str, object], named: str
) -> None:
    assert_stopped_in_the_preflight(preflight_runs, extra_vars, named)


def test_short_passwords_name_only_their_users(tmp_path: Path) -> None:
    """Only the users whose password is too short are named, and no
    password, short or long, reaches the output."""
    users = [
        {"name": "dash", "password": "a long enough password"},
        {"name": "door", "password": "tiny-secret"},
        {"name": "lamp", "acl": [{"topic": "lamp/#"}]},
        {"name": "gate", "password": "tiny-secret-2"},
    ]
    result = run_playbook(tmp_path, "site.yml", {"pisec_mosquitto_users": users})
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert (
        "the password of pisec_mosquitto_users[door], pisec_mosquitto_users[gate] is shorter"
        in output
    ), output
    assert "[dash]" not in output and "[lamp]" not in output, output
    for secret in ("a long enough password", "tiny-secret"):
        assert secret not in output, output
    assert not (tmp_path / "inventory/.pisec").exists(), "the CA host was changed"


def test_good_values_pass_the_preflight(tmp_path: Path) -> None:
    """The control: the same inventory with sane values gets past the
    preflight, creates the CA, and only then fails on the missing broker."""
    result = run_playbook(tmp_path, "site.yml", {})
    output = result.stdout + result.stderr
    assert "PLAY [Run the fleet CA]" in output, output
    assert (tmp_path / "inventory/.pisec/ca/ca.crt").exists()
    assert (tmp_path / "inventory/.pisec/ca/ca.key").stat().st_mode & 0o777 == 0o600
    assert "preflight-broker" in output and "UNREACHABLE" in output


@pytest.mark.skipif(
    Path("/run/systemd/system").is_dir(),
    reason="this machine runs systemd: the job could be installed",
)
def test_a_rotation_job_without_systemd_stops_the_run_before_anything_changes(
    tmp_path: Path,
) -> None:
    """Without the job nothing renews the CRLs; a CA host that cannot run
    it is named before anything changes, with what to do instead."""
    result = run_playbook(tmp_path, "site.yml", {"pisec_rotation_job_state": "present"})
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert (
        "localhost: pisec_rotation_job_state is present, but this host does not run systemd"
        in output
    ), output
    assert (
        "set pisec_rotation_job_state: absent and run playbooks/rotate-certs.yml every day"
        in output
    )
    assert not (tmp_path / "inventory/.pisec").exists(), "the CA host was changed"


def _fleet_inventory(pis: int, extra: str = "") -> str:
    clients = "".join(
        f"        pi{index:03d}:\n          ansible_connection: community.docker.docker\n{extra}"
        for index in range(pis)
    )
    return INVENTORY.replace(
        "    pisec_clients:\n      hosts:\n",
        "    pisec_clients:\n      hosts:\n" + clients,
        1,
    )


def _with_host_var(inventory: str, host: str, line: str) -> str:
    """The inventory with one more variable on one host."""
    entry = f"        {host}:\n          ansible_connection: community.docker.docker\n"
    assert entry in inventory
    return inventory.replace(entry, f"{entry}          {line}\n", 1)


def _failed_run(tmp_path: Path, playbook: str, inventory_text: str) -> str:
    """Run a playbook on this inventory; it must fail. Its output."""
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    (inventory / "hosts.yml").write_text(inventory_text)
    result = run_playbook(tmp_path, playbook, {}, fresh_inventory=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    return output


def test_the_preflight_is_one_task_on_the_controller_however_large_the_fleet(
    tmp_path: Path,
) -> None:
    """200 Pis are checked by one task on the controller: no Pi is contacted
    (none of them exists), and the one bad value among them is named with
    its host."""
    output = _failed_run(
        tmp_path,
        "preflight.yml",
        _with_host_var(_fleet_inventory(200), "pi150", "pisec_mqtt_client_key_mode: '0644'"),
    )
    assert (
        "- pi150: pisec_mqtt_client (meta/argument_specs.yml): value of pisec_mqtt_client_key_mode"
        in output
    ), output
    assert "pi149" not in output and "pi151" not in output, output
    assert output.count("TASK [") == 1, output
    assert "UNREACHABLE" not in output, output


def test_the_vpn_has_one_hub_and_network(tmp_path: Path) -> None:
    """A host that disagrees on the hub or the prefix is named (the VPN role
    works out one address plan for the whole play)."""
    output = _failed_run(
        tmp_path,
        "site.yml",
        _with_host_var(INVENTORY, "preflight-client", "pisec_wireguard_prefix: 16"),
    )
    assert (
        "preflight-client: pisec_wireguard_hub and pisec_wireguard_prefix ('preflight-broker', 16)"
        " differ from preflight-broker's ('preflight-broker', 24)" in output
    ), output
    assert not (tmp_path / "inventory/.pisec").exists(), "the CA host was changed"
