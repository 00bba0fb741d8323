"""Subject alternative names built for host certificates."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from plugins.filter.pisec_san import check_common_name, check_sans, san_list


def test_names_addresses_and_extras() -> None:
    sans = san_list(
        ["pi-01", "pi-01.farm.example", "pi-01", "10.0.0.5"],
        ["10.0.0.5", "127.0.0.1", "fe80::1%eth0", "2001:db8::5", "not-an-address"],
        ["DNS:mqtt.example.org", "IP:192.0.2.1"],
    )
    assert sans == [
        "DNS:pi-01",
        "DNS:pi-01.farm.example",
        "IP:10.0.0.5",
        "IP:2001:db8::5",
        "DNS:mqtt.example.org",
        "IP:192.0.2.1",
    ]


@pytest.mark.parametrize(
    "entry", ["mqtt.example.org", "DNS:bad_name!", "IP:999.1.1.1", "URI:x", 42]
)
def test_bad_extra_entry_names_the_variable(entry: object) -> None:
    with pytest.raises(AnsibleFilterError, match=r"^pisec_mosquitto_extra_subject_alt_names: "):
        check_sans([entry], "pisec_mosquitto_extra_subject_alt_names")


def test_a_host_gets_no_name_the_inventory_gives_another_host() -> None:
    """A compromised broker reporting another broker's name and address in
    its facts: both are left out; its own inventory name always stays."""
    sans = san_list(
        ["broker-a", "broker-b.farm.example", "broker-a"],
        ["10.0.0.5", "10.0.0.6"],
        ["DNS:mqtt.example.org"],
        "pisec_mosquitto_extra_subject_alt_names",
        reserved=["broker-b.farm.example", "10.0.0.6", "client-1"],
    )
    assert sans == ["DNS:broker-a", "IP:10.0.0.5", "DNS:mqtt.example.org"]
    assert san_list(["10.0.0.6"], [], reserved=["10.0.0.6"]) == ["IP:10.0.0.6"]


@pytest.mark.parametrize("entry", ["DNS:pisec0\n", "IP:192.0.2.1\n", "DNS:x\nallow_anonymous"])
def test_a_trailing_line_break_is_not_a_name(entry: str) -> None:
    with pytest.raises(AnsibleFilterError, match="pisec_host_cert_extra_subject_alt_names"):
        check_sans([entry], "pisec_host_cert_extra_subject_alt_names")


@pytest.mark.parametrize("name", ["pisec-broker", "dev_1.farm@x", "192.0.2.1", "2001:db8::1"])
def test_common_names_pisec_issues(name: str) -> None:
    assert check_common_name(name, "pisec_host_cert_common_name") == name


@pytest.mark.parametrize(
    "name", ["dev1\n", "a/b", "", "x" * 65, "fe80::1%eth0", "-dev", "dev 1", 42, "CN=x,O=y"]
)
def test_bad_common_names_name_the_variable(name: object) -> None:
    with pytest.raises(AnsibleFilterError, match=r"^pisec_host_cert_common_name: "):
        check_common_name(name, "pisec_host_cert_common_name")


def test_a_host_gets_no_wildcard_and_no_name_the_inventory_gives_another() -> None:
    """A compromised broker reporting `*.fleet.example` as its fqdn (which
    would cover every other broker), another broker's extra SAN and the
    VPN endpoint name: all left out. The inventory's own extra SANs for
    this host, wildcards included, stay: the operator chose them."""
    sans = san_list(
        ["broker-a", "*.fleet.example", "mqtt-b.example.org", "hub.example.org"],
        [],
        ["DNS:*.a.example.org"],
        "pisec_mosquitto_extra_subject_alt_names",
        reserved=["broker-b", "DNS:mqtt-b.example.org", "hub.example.org", "IP:10.0.0.6"],
    )
    assert sans == ["DNS:broker-a", "DNS:*.a.example.org"]
    assert san_list(["broker-a"], ["10.0.0.6"], reserved=["IP:10.0.0.6"]) == ["DNS:broker-a"]
