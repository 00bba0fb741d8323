"""Identity, ACL, serial and CRL helpers used by the roles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from ansible.errors import AnsibleFilterError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from plugins.filter.pisec_mqtt import (
    acl_entries,
    check_acl,
    check_entry_acls,
    check_unique_across,
    resolve_devices,
    short_passwords,
    topic_filter_problem,
)
from plugins.filter.pisec_pki import ca_subject, crl_status, serial_hex


@pytest.mark.parametrize(
    "topic", ["a/b", "devices/%u/#", "+/+/temp", "#", "+", "pisec/probe/%u/#", "a//b", "/"]
)
def test_valid_topic_filters(topic: str) -> None:
    assert topic_filter_problem(topic) is None


@pytest.mark.parametrize(
    ("topic", "why"),
    [
        ("", "is empty"),
        ("a/#/b", "'#' other than as the whole last level"),
        ("a/b#", "'#' other than as the whole last level"),
        ("a/b+/c", "'+' other than as a whole level"),
        ("a\x00b", "NUL or line break"),
        ("a\nb", "NUL or line break"),
        (" a/b", "white space"),
        ("a/%x", "%c (client id) and %u (user name)"),
        ("x" * 65536, "longer than 65535 bytes"),
    ],
)
def test_topic_filters_mosquitto_would_reject(topic: str, why: str) -> None:
    problem = topic_filter_problem(topic)
    assert problem is not None and why in problem


def test_acl_rule_errors_name_the_entry() -> None:
    with pytest.raises(AnsibleFilterError, match=r"^x\[2\]: topic 'a/#/b'"):
        check_acl([{"topic": "a/b"}, {"topic": "a/#/b", "access": "read"}], "x")
    with pytest.raises(AnsibleFilterError, match="access 'rw' is not one of"):
        check_acl([{"topic": "a", "access": "rw"}], "x")
    with pytest.raises(
        AnsibleFilterError,
        match=r"only pattern rules substitute \(put it in pisec_mosquitto_acl_patterns\)",
    ):
        check_acl([{"topic": "devices/%u/#"}], "x")
    assert check_acl([{"topic": "devices/%u/#"}], "x", patterns=True) == [
        {"topic": "devices/%u/#", "access": "readwrite"}
    ]


def test_user_acl_errors_name_the_user() -> None:
    users = [
        {"name": "dash", "acl": [{"topic": "a/b", "access": "read"}]},
        {"name": "door"},
        {"name": "lamp", "acl": [{"topic": "lamp/#"}, {"topic": "a+"}]},
    ]
    with pytest.raises(
        AnsibleFilterError,
        match=r"^pisec_mosquitto_users\[lamp\]\.acl\[2\]: topic 'a\+' uses '\+'",
    ):
        check_entry_acls(users, "pisec_mosquitto_users")
    assert check_entry_acls(users[:2], "pisec_mosquitto_users") == [
        {"name": "dash", "acl": [{"topic": "a/b", "access": "read"}]},
        {"name": "door", "acl": []},
    ]
    with pytest.raises(AnsibleFilterError, match=r"^pisec_mosquitto_users\[2\]: 'x' is not"):
        check_entry_acls([{"name": "dash"}, "x"], "pisec_mosquitto_users")


def test_short_passwords_name_only_their_users() -> None:
    users = [
        {"name": "dash", "password": "sixteen chars ok"},
        {"name": "door", "password": "fifteen chars!!"},
        {"name": "lamp"},
        {"name": "gate", "password": ""},
        {"name": "fan", "password": None},
    ]
    short = short_passwords(users, 16, "pisec_mosquitto_users")
    assert short == [
        "pisec_mosquitto_users[door]",
        "pisec_mosquitto_users[gate]",
        "pisec_mosquitto_users[fan]",
    ]
    assert not any("chars" in entry for entry in short)
    assert short_passwords(users[:1], "16", "u") == []
    assert short_passwords([{"password": "x"}], 8, "u") == ["u[1]"]


def test_devices_resolve_managed_from_the_inventory() -> None:
    devices = [
        {"name": "pi-a"},
        {"name": "esp32-door", "acl": [{"topic": "door/#", "access": "write"}]},
        {"name": "pi-b", "managed": False},
        {"name": "sensor-7", "coaps": True, "psk_format": "raw"},
    ]
    plain = {"coaps": False, "psk_format": "text"}
    assert resolve_devices(devices, ["pi-a", "pi-b"]) == [
        {"name": "pi-a", "managed": True, "acl": [], **plain},
        {
            "name": "esp32-door",
            "managed": False,
            "acl": [{"topic": "door/#", "access": "write"}],
            **plain,
        },
        {"name": "pi-b", "managed": False, "acl": [], **plain},
        {"name": "sensor-7", "managed": False, "acl": [], "coaps": True, "psk_format": "raw"},
    ]


@pytest.mark.parametrize(
    ("devices", "why"),
    [
        ([{"name": "pi a"}], "'pi a' is not a valid identity"),
        ([{"name": "x" * 65}], "is not a valid identity"),
        ([{"name": "-lead"}], "is not a valid identity"),
        ([{"name": "pi-a"}, {"name": "pi-a"}], "'pi-a' is declared twice"),
        ([{"name": "pi-z", "managed": True}], "not a host of pisec_clients"),
        ([{"name": "pi-a", "acl": [{"topic": "a/#/b"}]}], r"pisec_fleet_devices\[pi-a\]\.acl\[1\]"),
        ([{"name": "pi-a", "manged": True}], r"pisec_fleet_devices\[pi-a\]: manged is not one of"),
        ([{"name": "pi-a", "managed": "yes"}], r"\[pi-a\]\.managed must be true or false"),
        ([{"name": "pi-a", "coaps": "yes"}], r"\[pi-a\]\.coaps must be true or false"),
        (
            [{"name": "pi-a", "coaps": True, "psk_format": "hex\n"}],
            r"\[pi-a\]\.psk_format must be text or raw \(is 'hex\\n'\)",
        ),
        ([{"name": "pi-a", "psk_format": "raw"}], r"psk_format is for coaps: true devices"),
    ],
)
def test_bad_devices_are_named(devices: list[dict[str, object]], why: str) -> None:
    with pytest.raises(AnsibleFilterError, match=why):
        resolve_devices(devices, ["pi-a"])


def test_an_identity_is_a_device_or_a_user_not_both() -> None:
    assert check_unique_across({"users": ["dash"], "devices": ["pi-a"]})
    with pytest.raises(AnsibleFilterError, match="'pi-a' is declared in both users and devices"):
        check_unique_across({"users": ["pi-a"], "devices": ["pi-a"]})


def test_serials_as_openssl_prints_them() -> None:
    assert serial_hex(0x3B5) == "03B5"
    assert serial_hex(255) == "FF"
    with pytest.raises(AnsibleFilterError, match="is negative"):
        serial_hex(-1)


def test_ca_subject_names_each_generation_apart() -> None:
    assert ca_subject("pisec fleet CA", "pisec") == [{"O": "pisec"}, {"CN": "pisec fleet CA"}]
    assert ca_subject("pisec fleet CA", "pisec", "2") == [
        {"O": "pisec"},
        {"CN": "pisec fleet CA G2"},
    ]
    for bad in (0, "x", None):
        with pytest.raises(AnsibleFilterError, match="CA generation"):
            ca_subject("pisec fleet CA", "pisec", bad)


PATTERNS = [
    {"topic": "pisec/probe/%u/#", "access": "readwrite"},
    {"topic": "devices/%u/#"},
    {"topic": "sessions/%c/state", "access": "read"},
]


def test_acl_entries_write_the_patterns_out_under_each_identity() -> None:
    users = [
        {"name": "dashboard", "acl": [{"topic": "devices/#", "access": "read"}]},
        {"name": "pisec-probe"},
    ]
    devices = [
        {"name": "dev-a"},
        {"name": "esp32-door", "acl": [{"topic": "door/#", "access": "write"}]},
    ]
    entries = acl_entries(users, devices, PATTERNS)
    assert [(entry["name"], entry["kind"]) for entry in entries] == [
        ("dashboard", "password user"),
        ("pisec-probe", "password user"),
        ("dev-a", "certificate device"),
        ("esp32-door", "certificate device"),
    ]
    # The identity's own rules first (mosquitto takes the first match), then
    # the patterns, with %u and %c both the identity's name.
    assert entries[0]["rules"] == [
        {"topic": "devices/#", "access": "read"},
        {"topic": "pisec/probe/dashboard/#", "access": "readwrite"},
        {"topic": "devices/dashboard/#", "access": "readwrite"},
        {"topic": "sessions/dashboard/state", "access": "read"},
    ]
    assert entries[3]["rules"][0] == {"topic": "door/#", "access": "write"}


def test_a_revoked_identity_gets_no_rules_at_all() -> None:
    entries = acl_entries(
        [{"name": "dashboard"}], [{"name": "dev-a"}, {"name": "dev-b"}], PATTERNS, ["dev-a"]
    )
    assert [entry["name"] for entry in entries] == ["dashboard", "dev-b"]


@pytest.mark.parametrize(
    ("users", "devices", "wanted"),
    [
        ([{"name": "dash\nuser evil"}], [], r"^pisec_mosquitto_users: 'dash\\nuser evil' is not"),
        ([], [{"name": "dev1\n"}], r"^pisec_mosquitto_devices: 'dev1\\n' is not a valid identity"),
        (
            [{"name": "a", "acl": [{"topic": "x\ntopic readwrite #"}]}],
            [],
            r"pisec_mosquitto_users\[a\]\.acl",
        ),
    ],
    ids=["user-newline", "device-newline", "topic-newline"],
)
def test_acl_entries_refuse_what_would_inject_lines(
    users: list[dict[str, object]], devices: list[dict[str, object]], wanted: str
) -> None:
    with pytest.raises(AnsibleFilterError, match=wanted):
        acl_entries(users, devices, PATTERNS)


def _crl(issuer: str, days_left: int) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .last_update(now - timedelta(days=30))
        .next_update(now + timedelta(days=days_left, hours=1))
        .sign(key, hashes.SHA256())
    )
    return crl.public_bytes(serialization.Encoding.PEM).decode()


def test_crl_status_lists_every_crl_of_a_bundle_with_its_days_left() -> None:
    status = crl_status(_crl("pisec fleet CA", 25) + _crl("pisec fleet CA G2", -3))
    assert [(entry["issuer"], entry["days_left"]) for entry in status] == [
        ("CN=pisec fleet CA", 25),
        ("CN=pisec fleet CA G2", -3),
    ]
    assert status[0]["summary"].startswith("CN=pisec fleet CA: 25 days left (next update ")
    assert crl_status("not a CRL") == []
