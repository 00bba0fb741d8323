"""Subject alternative names built for host certificates."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from plugins.filter.pisec_san import check_sans, san_list


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
