"""The filters that turn a CoAPs device's stored key into what its files
say: names and keys checked whole, and no message that holds a key."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from plugins.filter.pisec_coaps import key_file, key_files, psk_hex

KEY = "0123456789abcdef0123456789abcdef"


def test_a_text_key_is_its_characters_and_a_raw_key_its_bytes() -> None:
    assert psk_hex(KEY, "text", "dev1") == KEY.encode().hex()
    assert psk_hex(KEY, "raw", "dev1") == KEY
    assert bytes.fromhex(psk_hex(KEY, "raw", "dev1")) == bytes.fromhex(KEY)
    assert key_file(KEY, "psk", "dev1") == KEY
    assert key_file(KEY, "coap-client", "dev1") == f"pisec,dev1,{KEY}\n"


def test_a_raw_key_gets_no_coap_client_file() -> None:
    assert key_files([{"name": "a"}, {"name": "b", "psk_format": "raw"}]) == [
        {"name": "a", "kind": "psk"},
        {"name": "a", "kind": "coap-client"},
        {"name": "b", "kind": "psk"},
    ]


@pytest.mark.parametrize("name", ["../etc/x", "dev,evil", "dev\n", "", "-dev", "a" * 65, 7])
def test_a_name_that_is_not_an_identity_is_refused(name: object) -> None:
    with pytest.raises(AnsibleFilterError, match="not a valid identity"):
        key_file(KEY, "psk", name)  # type: ignore[arg-type]
    with pytest.raises(AnsibleFilterError, match="not a valid identity"):
        key_files([{"name": name}])


@pytest.mark.parametrize(
    "stored", [KEY.upper(), KEY[:-1], KEY + "0", KEY[:-1] + "\n", "", None, KEY.replace("0", ",")]
)
def test_a_stored_key_of_another_shape_is_refused_without_showing_it(stored: object) -> None:
    with pytest.raises(AnsibleFilterError, match="not 32 lowercase hex digits") as raised:
        psk_hex(stored, "text", "dev1")
    if isinstance(stored, str) and stored:
        assert stored.strip() not in str(raised.value)
