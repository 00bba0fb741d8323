"""Allow-lists for inventory values that reach a file or a command on a host.

Two kinds of test: the defaults pass and named hostile values are refused;
and a property test feeds generated strings (line breaks, quotes, `#`, NUL,
`%`, unicode, and valid values with such characters spliced in) to every
templated setting: either the check refuses the value, or the file the
role's template renders with it has exactly the directives it has with a
plain value, each with as many words, and no character that could start a
comment, a quote, a specifier or an expansion.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from plugins.filter.pisec_settings import (
    SETTINGS,
    chacha_first,
    check_settings,
    check_value,
    cipher_order,
    mosquitto_plugins,
    tls_groups,
)
from tests.conftest import PROJECT, load_role_module
from tests.templating import render, role_defaults, role_vars

KEY = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="
ROLES = PROJECT / "roles"


def _defaults(role: str) -> dict[str, Any]:
    return role_defaults(role)


def test_every_role_default_passes() -> None:
    """The shipped defaults are inside their own allow-lists (templated
    defaults such as `{{ inventory_dir }}` are resolved per host, and
    checked in the preflight runs of test_preflight)."""
    values = {
        name: value
        for role in ROLES.iterdir()
        for name, value in _defaults(role.name).items()
        if name in SETTINGS and not (isinstance(value, str) and "{{" in value)
    }
    assert len(values) > 50
    check_settings(values, "defaults")


def test_every_templated_setting_has_an_allow_list() -> None:
    """A new setting a template writes cannot skip the preflight: each
    pisec_* name in a template is checked here, derived (`__`), or one of
    the few checked by the identity, ACL and address-plan filters."""
    elsewhere = {
        "pisec_mosquitto_users",  # pisec_check_identities, pisec_check_entry_acls
        "pisec_mosquitto_probe_user",  # pisec_check_identities
        "pisec_fleet_devices",  # pisec_resolve_devices
        "pisec_mosquitto_devices",  # pisec_resolve_devices (where not the register)
        "pisec_ca_revoked_identities",  # names from the CA's own record
        "pisec_wireguard_public_key",  # pisec_check_value on what a Pi reports
        "pisec_vpn_network",  # filters
        "pisec_check_value",
        "pisec_tls_groups",
        "pisec_tls_chacha_first",
        "pisec_tls_cipher_order",
        "pisec_mosquitto_plugins",
        "pisec_coaps_keys_dir",  # a control-node directory, read by lookups only
        "pisec_mosquitto_credentials",  # pisec_mosquitto's credentials, a fact
        "pisec_psk_hex",  # a filter
    }
    named = {
        name
        for template in ROLES.glob("*/templates/**/*.j2")
        for expression in re.findall(r"\{\{.*?\}\}|\{%.*?%\}", template.read_text(), re.S)
        for name in re.findall(r"\bpisec_[a-z0-9_]+", expression)
        if "__" not in name
    }
    unchecked = sorted(named - set(SETTINGS) - elsewhere)
    assert unchecked == []


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("pisec_mosquitto_tls_listeners", [{"port": 8883, "bind_address": "::1\n"}], "entry 1"),
        ("pisec_mosquitto_tls_listeners", [], "at least one listener"),
        ("pisec_mosquitto_vpn_address", "10.8.0.1 ", "IPv4 address"),
        ("pisec_mosquitto_vpn_address", "010.8.0.1", "IPv4 address"),
        ("pisec_mosquitto_tls12_ciphers", "ECDHE-RSA-AES128-SHA", "is not a TLS 1.2 cipher"),
        (
            "pisec_mosquitto_tls12_ciphers",
            "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256",
            "twice",
        ),
        ("pisec_mosquitto_tls13_ciphersuites", "", "is not a TLS 1.3 cipher suite"),
        ("pisec_mosquitto_tls_groups", [], "at least one"),
        ("pisec_mosquitto_max_packet_size", "20 ", "whole number"),
        ("pisec_mosquitto_max_packet_size", 1.5, "whole number"),
        ("pisec_mosquitto_max_connections", 0, "or -1"),
        ("pisec_mosquitto_tcp_nodelay", "maybe", "true or false"),
        ("pisec_wireguard_interface", "..", "interface name"),
        ("pisec_wireguard_interface", "a" * 16, "interface name"),
        ("pisec_wireguard_endpoint", "hub.example.org:51820", "no port"),
        ("pisec_wireguard_hub", "hub\n", "host name"),
        ("pisec_rotation_job_project_dir", "srv/pisec", "absolute path"),
        ("pisec_rotation_job_project_dir", "/srv/pisec two", "absolute path"),
        ("pisec_rotation_job_extra_args", "--check", "must be a list"),
        ("pisec_rotation_job_on_calendar", "daily%n", "calendar"),
        ("pisec_host_cert_renewal_jitter", "0.6", "0..0.5"),
        ("pisec_host_cert_renew_fraction_left", "1", "between 0 and 1"),
        ("pisec_ca_common_name", "", "printable"),
        ("pisec_ca_common_name", "x" * 65, "printable"),
        ("inventory_hostname", "-rf", "host name"),
        # An IPv6 zone id may hold anything but '%' and '/' to ip_address().
        (
            "pisec_mosquitto_tls_listeners",
            [{"port": 8883, "bind_address": "::1%lo\nallow_anonymous true"}],
            "bind_address must be an IP address",
        ),
        (
            "pisec_mosquitto_tls_listeners",
            [{"port": 8883, "bind_address": "fe80::1%eth0"}],
            "entry 1",
        ),
        # A leading '-' would be an option to systemctl, wg or systemd-analyze.
        ("pisec_host_cert_reload_services", ["-Hroot@attacker.example"], "systemd unit name"),
        ("pisec_wireguard_interface", "-h", "interface name"),
        ("pisec_rotation_job_on_calendar", "-h", "calendar"),
        # A rollover appends " G2": 61 characters would make a 64+ CN.
        ("pisec_ca_common_name", "x" * 61, "1 to 60 printable"),
    ],
)
def test_hostile_values_are_refused_naming_host_and_variable(
    variable: str, value: object, message: str
) -> None:
    with pytest.raises(AnsibleFilterError) as refused:
        check_settings({variable: value}, "pi-7")
    text = str(refused.value)
    assert text.startswith(f"pi-7: {variable} "), text
    assert message in text, text
    assert text.endswith("Nothing was changed."), text
    assert "\n" not in text


def test_all_problems_are_named_at_once_and_values_normalised() -> None:
    with pytest.raises(AnsibleFilterError) as refused:
        check_settings(
            {
                "pisec_wireguard_port": "0",
                "pisec_wireguard_keepalive": "x",
                "pisec_wireguard_prefix": 24,
            },
            "hub",
        )
    assert "pisec_wireguard_port must be 1..65535" in str(refused.value)
    assert "pisec_wireguard_keepalive must be a whole number" in str(refused.value)
    checked = check_settings(
        {
            "pisec_wireguard_port": "51820",
            "pisec_host_cert_key_size": "3072",
            "pisec_mosquitto_tcp_nodelay": "yes",
            "pisec_mosquitto_tls_listeners": [{"port": "8883"}],
        },
        "hub",
    )
    assert checked == {
        "pisec_wireguard_port": 51820,
        "pisec_host_cert_key_size": 3072,
        "pisec_mosquitto_tcp_nodelay": True,
        "pisec_mosquitto_tls_listeners": [{"port": 8883, "bind_address": "", "auth": "password"}],
    }


def test_a_hostile_host_name_is_shown_escaped() -> None:
    with pytest.raises(AnsibleFilterError) as refused:
        check_settings({"inventory_hostname": "a\nb"}, "a\nb")
    assert str(refused.value).startswith('"a\\nb": inventory_hostname must be a host name')


@pytest.mark.parametrize(
    "reported",
    [KEY + "\n[Interface]\nPostUp = reboot", KEY[:-2] + "B=", "", KEY + " ", "x" * 44],
)
def test_what_a_pi_reports_as_its_wireguard_key_must_be_a_key(reported: str) -> None:
    with pytest.raises(AnsibleFilterError, match="pi-7: the public key it reported must be"):
        check_value(reported, "wireguard_key", "pi-7: the public key it reported")
    assert check_value(KEY, "wireguard_key", "pi-7") == KEY


@pytest.mark.parametrize(
    "reported",
    ["../../..", "/etc", "g20261202T034200Z-0a1b\n", "g20261202T034200Z-0a1b/..", "live", "."],
)
def test_what_a_pi_reports_as_a_generation_must_be_one_pisec_names(reported: str) -> None:
    with pytest.raises(
        AnsibleFilterError, match=r"pi-7: pisec-server\.d/live must be empty or a generation"
    ):
        check_value(reported, "generation", "pi-7: pisec-server.d/live")
    for accepted in ("", "g20261202T034200Z-0a1b"):
        assert check_value(accepted, "generation", "pi-7") == accepted


OPENSSL_35_GROUPS = (
    "secp256r1:secp384r1:secp521r1:x25519:x448:brainpoolP256r1tls13:brainpoolP384r1tls13:"
    "brainpoolP512r1tls13:ffdhe2048:ffdhe3072:ffdhe4096:ffdhe6144:ffdhe8192:MLKEM512:"
    "MLKEM768:MLKEM1024:SecP256r1MLKEM768:X25519MLKEM768:SecP384r1MLKEM1024\n"
)
BASE_GROUPS = ["X25519", "P-256", "P-384"]


def test_post_quantum_groups_come_first_where_the_pis_openssl_lists_them() -> None:
    """What trixie's OpenSSL 3.5 prints selects the hybrid group; bookworm's
    3.0 knows no -tls-groups option and prints nothing on stdout."""
    assert tls_groups(["X25519MLKEM768"], BASE_GROUPS, OPENSSL_35_GROUPS) == [
        "X25519MLKEM768",
        *BASE_GROUPS,
    ]
    assert tls_groups(["X25519MLKEM768"], BASE_GROUPS, "") == BASE_GROUPS
    assert tls_groups([], BASE_GROUPS, OPENSSL_35_GROUPS) == BASE_GROUPS
    # Only what the Pi lists, in the inventory's order.
    assert tls_groups(
        ["SecP384r1MLKEM1024", "X25519MLKEM768"], BASE_GROUPS, "x25519:X25519MLKEM768"
    ) == ["X25519MLKEM768", *BASE_GROUPS]


@pytest.mark.parametrize(
    "reported",
    [
        "X25519MLKEM768\nMinProtocol = TLSv1",
        "X25519MLKEM768:x25519 # comment",
        "X25519MLKEM768;reboot",
        "X25519MLKEM768:",
        ["X25519MLKEM768"],
        None,
        "X25519MLKEM768:" + "x" * 65,
    ],
)
def test_a_forged_group_list_selects_nothing(reported: Any) -> None:
    """A Pi's root can print anything: what is not a plain list of names
    selects no group, and no name outside the inventory's ever appears."""
    assert tls_groups(["X25519MLKEM768"], BASE_GROUPS, reported) == BASE_GROUPS


# /proc/cpuinfo feature lines: this machine's kind of x86 CPU, a Pi 4
# (Cortex-A72, no ARMv8 crypto extensions) and a Pi 5 (Cortex-A76).
X86_FEATURES = (
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr "
    "sse sse2 ht syscall nx mmxext fxsr_opt pdpe1gb rdtscp lm constant_tsc rep_good nopl "
    "cpuid extd_apicid tsc_known_freq pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic "
    "movbe popcnt aes xsave avx f16c rdrand hypervisor lahf_lm cmp_legacy avx2 avx512f vaes"
)
PI4_FEATURES = "fp asimd evtstrm crc32 cpuid"
PI5_FEATURES = "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm"
TLS12 = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305"


@pytest.mark.parametrize(
    ("order", "features", "expected"),
    [
        ("auto", X86_FEATURES, False),
        ("auto", PI5_FEATURES, False),
        ("auto", PI4_FEATURES, True),
        ("aes", PI4_FEATURES, False),
        ("chacha20", X86_FEATURES, True),
        ("chacha20", "", True),
    ],
)
def test_chacha20_comes_first_exactly_on_a_cpu_without_aes(
    order: str, features: str, expected: bool
) -> None:
    assert chacha_first(order, features) is expected


@pytest.mark.parametrize(
    "reported",
    [
        "",
        None,
        ["fp", "asimd"],
        "fp asimd\naes",
        "fp  asimd",
        "fp asimd evtstrm crc32 cpuid\nflags : aes",
        "fp asimd; aes",
        "fp " + "x" * 65,
        " ".join(["fp"] * 1025),
    ],
)
def test_a_forged_cpu_feature_line_keeps_aes_first(reported: Any) -> None:
    """What is not a plain feature list decides nothing: AES-GCM stays first."""
    assert chacha_first("auto", reported) is False


def test_cipher_order_moves_chacha20_first_and_keeps_the_rest() -> None:
    assert cipher_order(TLS12, False) == TLS12
    assert cipher_order(TLS12, True) == (
        "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"
    )
    suites = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
    assert cipher_order(suites, True) == (
        "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384"
    )
    # No ChaCha20 in the inventory's list: nothing to move, nothing added.
    assert cipher_order("TLS_AES_128_GCM_SHA256", True) == "TLS_AES_128_GCM_SHA256"


@pytest.mark.parametrize(
    ("features", "options", "first12", "first13"),
    [
        (
            X86_FEATURES,
            "ServerPreference,PrioritizeChaCha",
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            "TLS_AES_128_GCM_SHA256",
        ),
        (
            PI4_FEATURES,
            "ServerPreference",
            "ECDHE-ECDSA-CHACHA20-POLY1305",
            "TLS_CHACHA20_POLY1305_SHA256",
        ),
    ],
)
def test_the_broker_files_put_the_cpus_fast_cipher_first(
    features: str, options: str, first12: str, first13: str
) -> None:
    """openssl.cnf and mosquitto.conf agree on the order; with AES
    instructions, a client that puts ChaCha20 first still gets it."""
    context = {**MOSQUITTO, "pisec_mosquitto__support": {"cpu_features": features}}
    openssl = _render(OPENSSL, context)
    assert re.search(rf"(?m)^Options = {options}$", openssl)
    assert re.search(rf"(?m)^CipherString = {first12}:", openssl)
    assert re.search(rf"(?m)^Ciphersuites = {first13}:", openssl)
    conf = _render(CONF, {**context, "pisec_mosquitto_tls_listeners": [{"port": 8883}]})
    assert re.search(rf"(?m)^ciphers {first12}:", conf)
    assert re.search(rf"(?m)^ciphers_tls1.3 {first13}:", conf)
    # The skipped module run (no groups, cipher order not auto) leaves no group list.
    assert re.search(r"(?m)^Groups = X25519:P-256:P-384$", openssl)


def test_cipher_order_setting_is_checked() -> None:
    assert check_settings({"pisec_mosquitto_tls_cipher_order": "chacha20"}, "pi-1") == {
        "pisec_mosquitto_tls_cipher_order": "chacha20"
    }
    for value in ("CHACHA20", "chacha20\n", "", True, "aes:chacha20"):
        with pytest.raises(
            AnsibleFilterError,
            match="pi-1: pisec_mosquitto_tls_cipher_order must be one of auto, aes, chacha20",
        ):
            check_settings({"pisec_mosquitto_tls_cipher_order": value}, "pi-1")


def test_post_quantum_groups_setting_is_checked() -> None:
    assert check_settings({"pisec_mosquitto_tls_pq_groups": []}, "pi-1") == {
        "pisec_mosquitto_tls_pq_groups": []
    }
    for value, message in [
        (["X25519"], "is not a post-quantum key-exchange group"),
        (["X25519MLKEM768", "X25519MLKEM768"], "twice"),
        ("X25519MLKEM768", "must be a list"),
        (["X25519MLKEM768\n"], "is not a post-quantum key-exchange group"),
    ]:
        with pytest.raises(
            AnsibleFilterError, match=f"pi-1: pisec_mosquitto_tls_pq_groups .*{message}"
        ):
            check_settings({"pisec_mosquitto_tls_pq_groups": value}, "pi-1")


# ---- The property: a value either is refused, or changes no file's shape ----

SENTINEL = "pisecsentinel"
# Characters that would start a comment, quote, specifier, expansion or
# escape in one of the formats the templates write.
METACHARACTERS = "\n\r\x00#%$\\\"';{}[]`"


MOSQUITTO = {
    **{k: v for k, v in _defaults("pisec_mosquitto").items() if "{{" not in str(v)},
    "ansible_managed": "Ansible managed",
    "pisec_mosquitto_vpn_address": "10.8.0.1",
    "pisec_mosquitto_vpn_interface": "pisec0",
    # A trixie Pi whose CPU has AES instructions: its OpenSSL lists the
    # post-quantum groups.
    "pisec_mosquitto__support": {
        "tls_groups": OPENSSL_35_GROUPS,
        "cpu_features": X86_FEATURES,
    },
    "pisec_mosquitto__nofile": 4096,
    "pisec_mosquitto__mqtt_ports": [1883],
    "pisec_mosquitto__acl": [],
    "pisec_mosquitto__users": [],
    "pisec_mosquitto_devices": [],
    "pisec_mosquitto__tls": role_vars("pisec_mosquitto")["pisec_mosquitto__tls"],
}
WIREGUARD = {
    **_defaults("pisec_wireguard"),
    "ansible_managed": "Ansible managed",
    "inventory_hostname": "spoke",
    "pisec_wireguard_hub": "hub",
    "pisec_wireguard__psk": True,
    "pisec_wireguard__psk_dir": "/etc/wireguard/pisec0.psk.d",
    "pisec_wireguard__plan": {"hub": "10.8.0.1", "spoke": "10.8.0.2"},
    "pisec_wireguard__peers": ["hub"],
    "hostvars": {
        "hub": {
            "pisec_wireguard_public_key": KEY,
            "pisec_wireguard_endpoint": "",
            "pisec_wireguard__psks": {"spoke": KEY},
            "ansible_facts": {"default_ipv4": {"address": "192.0.2.1"}},
        }
    },
}
JOB = {
    **{k: v for k, v in _defaults("pisec_rotation_job").items() if "{{" not in str(v)},
    "ansible_managed": "Ansible managed",
    "pisec_rotation_job_project_dir": "/srv/pisec",
    "pisec_rotation_job_inventory": "/srv/pisec/inventory/fleet",
    "pisec_rotation_job_ansible_playbook": "/srv/pisec/.venv/bin/ansible-playbook",
    "pisec_rotation_job_vault_password_file": "/root/.pisec-vault",
    "pisec_rotation_job_extra_args": ["--diff"],
}
CONF = "pisec_mosquitto/templates/etc/mosquitto/conf.d/pisec.conf.j2"
OPENSSL = "pisec_mosquitto/templates/etc/mosquitto/pisec/openssl.cnf.j2"
DROP_IN = "pisec_mosquitto/templates/etc/systemd/system/mosquitto.service.d/pisec.conf.j2"
FIREWALL = "pisec_mosquitto/templates/etc/mosquitto/pisec/firewall.nft.j2"
TUNNEL = "pisec_wireguard/templates/etc/wireguard/interface.conf.j2"
SERVICE = "pisec_rotation_job/templates/etc/systemd/system/pisec-rotate.service.j2"
TIMER = "pisec_rotation_job/templates/etc/systemd/system/pisec-rotate.timer.j2"


def _render(template: str, context: dict[str, Any]) -> str:
    return render(template, context)


def _shape(text: str) -> list[tuple[str, int]]:
    """Each directive line as (its key, its number of words); comments out."""
    shape = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = (
            line.partition("=") if re.match(r"[A-Za-z]\w*\s*=", line) else (line.partition(" "))
        )
        shape.append((key.strip(), len(value.split())))
    return shape


# (template, extra context, setting, a valid value, how a value enters the
# context). A setting may reach several files.
def _set(name: str) -> Callable[[Any], dict[str, Any]]:
    return lambda value: {name: value}


def _listener(value: Any) -> dict[str, Any]:
    return {
        "pisec_mosquitto_tls_listeners": [{"port": 8883, "bind_address": value, "auth": "mtls"}]
    }


def _endpoint(value: Any) -> dict[str, Any]:
    hub = {**WIREGUARD["hostvars"]["hub"], "pisec_wireguard_endpoint": value}
    return {"hostvars": {"hub": hub}}


VPN = {"pisec_mosquitto_transport": "vpn"}
CASES: list[tuple[str, dict[str, Any], str, Any, Callable[[Any], dict[str, Any]]]] = [
    (CONF, {}, "pisec_mosquitto_tls_listeners", "127.0.0.1", _listener),
    (CONF, {}, "pisec_mosquitto_tls_listeners", "::1", _listener),
    (
        CONF,
        {},
        "pisec_mosquitto_tls12_ciphers",
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        _set("pisec_mosquitto_tls12_ciphers"),
    ),
    (
        OPENSSL,
        {},
        "pisec_mosquitto_tls12_ciphers",
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        _set("pisec_mosquitto_tls12_ciphers"),
    ),
    (
        CONF,
        {},
        "pisec_mosquitto_tls13_ciphersuites",
        "TLS_AES_128_GCM_SHA256",
        _set("pisec_mosquitto_tls13_ciphersuites"),
    ),
    (
        OPENSSL,
        {},
        "pisec_mosquitto_tls13_ciphersuites",
        "TLS_AES_128_GCM_SHA256",
        _set("pisec_mosquitto_tls13_ciphersuites"),
    ),
    (OPENSSL, {}, "pisec_mosquitto_tls_groups", ["X25519"], _set("pisec_mosquitto_tls_groups")),
    (
        OPENSSL,
        {},
        "pisec_mosquitto_tls_pq_groups",
        ["X25519MLKEM768"],
        _set("pisec_mosquitto_tls_pq_groups"),
    ),
    (
        CONF,
        {},
        "pisec_mosquitto_persistent_client_expiration",
        "14d",
        _set("pisec_mosquitto_persistent_client_expiration"),
    ),
    (
        CONF,
        {},
        "pisec_mosquitto_max_queued_messages",
        "1000",
        _set("pisec_mosquitto_max_queued_messages"),
    ),
    (
        CONF,
        {},
        "pisec_mosquitto_max_queued_bytes",
        "1000",
        _set("pisec_mosquitto_max_queued_bytes"),
    ),
    (CONF, {}, "pisec_mosquitto_max_packet_size", "1000", _set("pisec_mosquitto_max_packet_size")),
    (CONF, {}, "pisec_mosquitto_max_connections", "1000", _set("pisec_mosquitto_max_connections")),
    (CONF, {}, "pisec_mosquitto_plaintext_port", "1883", _set("pisec_mosquitto_plaintext_port")),
    (CONF, VPN, "pisec_mosquitto_vpn_address", "10.8.0.1", _set("pisec_mosquitto_vpn_address")),
    (CONF, VPN, "pisec_mosquitto_vpn_port", "1883", _set("pisec_mosquitto_vpn_port")),
    (
        DROP_IN,
        VPN,
        "pisec_mosquitto_vpn_interface",
        "pisec0",
        _set("pisec_mosquitto_vpn_interface"),
    ),
    (
        FIREWALL,
        VPN,
        "pisec_mosquitto_vpn_interface",
        "pisec0",
        _set("pisec_mosquitto_vpn_interface"),
    ),
    (TUNNEL, {}, "pisec_wireguard_endpoint", "hub.example.org", _endpoint),
    (TUNNEL, {}, "pisec_wireguard_port", "51820", _set("pisec_wireguard_port")),
    (TUNNEL, {}, "pisec_wireguard_keepalive", "25", _set("pisec_wireguard_keepalive")),
    (TUNNEL, {}, "pisec_wireguard_prefix", "24", _set("pisec_wireguard_prefix")),
    (TUNNEL, {}, "pisec_wireguard_interface", "pisec0", _set("pisec_wireguard_interface")),
    (
        SERVICE,
        {},
        "pisec_rotation_job_project_dir",
        "/srv/pisec",
        _set("pisec_rotation_job_project_dir"),
    ),
    (SERVICE, {}, "pisec_rotation_job_inventory", "/srv/inv", _set("pisec_rotation_job_inventory")),
    (
        SERVICE,
        {},
        "pisec_rotation_job_ansible_playbook",
        "/usr/bin/ansible-playbook",
        _set("pisec_rotation_job_ansible_playbook"),
    ),
    (
        SERVICE,
        {},
        "pisec_rotation_job_vault_password_file",
        "/root/vault",
        _set("pisec_rotation_job_vault_password_file"),
    ),
    (SERVICE, {}, "pisec_rotation_job_user", "root", _set("pisec_rotation_job_user")),
    (
        SERVICE,
        {},
        "pisec_rotation_job_extra_args",
        ["--diff"],
        _set("pisec_rotation_job_extra_args"),
    ),
    (TIMER, {}, "pisec_rotation_job_on_calendar", "daily", _set("pisec_rotation_job_on_calendar")),
    (
        TIMER,
        {},
        "pisec_rotation_job_randomized_delay_sec",
        "3600",
        _set("pisec_rotation_job_randomized_delay_sec"),
    ),
]
# Settings whose directive takes the rest of the line, spaces included.
REST_OF_LINE = {"pisec_rotation_job_on_calendar"}
CONTEXTS = {
    CONF: MOSQUITTO,
    OPENSSL: MOSQUITTO,
    DROP_IN: MOSQUITTO,
    FIREWALL: MOSQUITTO,
    TUNNEL: WIREGUARD,
    SERVICE: JOB,
    TIMER: JOB,
}

HOSTILE_TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from([*METACHARACTERS, " ", "\t", ":", "-", ".", "/", "\u2028", "\x85"]),
        st.characters(codec="utf-8"),
    ),
    max_size=24,
)


def _spliced(valid: str) -> st.SearchStrategy[str]:
    """The valid value with hostile text put in at some place."""
    return st.builds(
        lambda at, text: valid[: at % (len(valid) + 1)] + text + valid[at % (len(valid) + 1) :],
        st.integers(min_value=0, max_value=64),
        HOSTILE_TEXT,
    )


def _values(valid: Any) -> st.SearchStrategy[Any]:
    if isinstance(valid, list):
        return st.lists(
            st.one_of(_spliced(valid[0]), HOSTILE_TEXT, st.just(valid[0])), min_size=1, max_size=3
        )
    return st.one_of(_spliced(valid), HOSTILE_TEXT, st.just(valid))


def _plain(value: Any, checked: Any) -> Any:
    """What the value is compared with: a plain word in its place (one per
    list entry), the number it stands for, or itself when empty."""
    if isinstance(value, list):
        return [SENTINEL] * len(value)
    if isinstance(checked, int) or value == "":
        return checked if value != "" else value
    return SENTINEL


@pytest.mark.parametrize(
    ("template", "extra", "setting", "valid", "into"),
    CASES,
    ids=[f"{case[2]}-{Path(case[0]).name}-{case[3]}" for case in CASES],
)
def test_a_value_is_refused_or_leaves_the_file_its_shape(
    template: str,
    extra: dict[str, Any],
    setting: str,
    valid: Any,
    into: Callable[[Any], dict[str, Any]],
) -> None:
    context = {**CONTEXTS[template], **extra}
    accepted: list[Any] = []

    # A trailing line break is what a `$` instead of fullmatch lets through;
    # an IPv6 zone id ('%...') what ipaddress lets through.
    def suffixed(suffix: str) -> Any:
        return [valid[0] + suffix] if isinstance(valid, list) else valid + suffix

    trailing, zone = suffixed("\n"), suffixed("%lo\n#")

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @example(trailing)
    @example(zone)
    @given(_values(valid))
    def check(value: Any) -> None:
        given_value = into(value).get(setting, value)
        try:
            checked = check_settings({setting: given_value}, "h")[setting]
        except AnsibleFilterError:
            return
        if setting == "pisec_mosquitto_tls_listeners":
            checked = checked[0]["bind_address"]
        accepted.append(value)
        rendered = _render(template, {**context, **into(value)})
        reference = _render(template, {**context, **into(_plain(value, checked))})
        if setting not in REST_OF_LINE:
            assert _shape(rendered) == _shape(reference)
        else:
            assert [key for key, _ in _shape(rendered)] == [key for key, _ in _shape(reference)]
        for character in METACHARACTERS:
            assert rendered.count(character) == reference.count(character), repr(character)

    check()
    assert accepted, "no generated value passed: the property tested nothing"


SUPPORT = load_role_module("pisec_mosquitto", "pisec_mosquitto_support")
TEST_CONFIG = load_role_module("pisec_mosquitto", "pisec_mosquitto_test_config")


def test_the_module_reports_the_first_feature_line_of_either_architecture() -> None:
    """x86 names its features `flags`, ARM `Features`; one line per CPU."""
    x86 = (
        f"processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: {X86_FEATURES}\n\nprocessor\t: 1\n"
    )
    arm = (
        f"processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: {PI4_FEATURES}\n"
        "CPU implementer\t: 0x41\n\nprocessor\t: 1\nFeatures\t: fp aes\n"
    )
    assert SUPPORT.cpu_features(x86) == X86_FEATURES
    assert SUPPORT.cpu_features(arm) == PI4_FEATURES
    assert SUPPORT.cpu_features("processor\t: 0\nmodel name\t: unknown\n") == ""
    # This machine's own line, as the controller parses it: it has AES.
    own = SUPPORT.cpu_features(Path("/proc/cpuinfo").read_text(encoding="utf-8"))
    assert chacha_first("auto", own) is ("aes" not in own.split())


PLUGIN_DIR = "/usr/lib/x86_64-linux-gnu/mosquitto"
MOSQUITTO_21 = {"mosquitto_version": "2.1.2", "plugin_dir": PLUGIN_DIR}


def test_mosquitto_21_gets_the_file_plugins_and_20_the_options() -> None:
    assert mosquitto_plugins(MOSQUITTO_21) == {
        "password_file": f"{PLUGIN_DIR}/mosquitto_password_file.so",
        "acl_file": f"{PLUGIN_DIR}/mosquitto_acl_file.so",
    }
    arm = {"mosquitto_version": "3.0", "plugin_dir": "/usr/lib/aarch64-linux-gnu/mosquitto"}
    assert mosquitto_plugins(arm)["acl_file"].startswith("/usr/lib/aarch64-linux-gnu/")
    for older in ("2.0.21", "2.0.11", "1.6.9", ""):
        assert mosquitto_plugins({**MOSQUITTO_21, "mosquitto_version": older}) == {}
    # 2.1 without the plugins installed keeps the options, which it still reads.
    assert mosquitto_plugins({**MOSQUITTO_21, "plugin_dir": ""}) == {}
    assert mosquitto_plugins({}) == {}
    assert mosquitto_plugins({"skipped": True}) == {}


@pytest.mark.parametrize(
    "forged",
    [
        {"plugin_dir": PLUGIN_DIR + "\nallow_anonymous true"},
        {"plugin_dir": "/tmp/mosquitto"},
        {"plugin_dir": "/usr/lib/../../tmp/mosquitto"},
        {"plugin_dir": "/usr/lib/x86_64-linux-gnu/mosquitto/"},
        {"plugin_dir": ["/usr/lib/x/mosquitto"]},
        {"mosquitto_version": "2.1.2\nallow_anonymous true"},
        {"mosquitto_version": "2.1.2 "},
        {"mosquitto_version": 2.1},
        {"mosquitto_version": "99999.1"},
    ],
)
def test_a_forged_mosquitto_report_keeps_the_options(forged: dict[str, Any]) -> None:
    """A version or plugin directory that is not plainly one changes nothing:
    no path of the Pi's choosing reaches mosquitto.conf."""
    assert mosquitto_plugins({**MOSQUITTO_21, **forged}) == {}
    assert mosquitto_plugins([MOSQUITTO_21]) == {}


def test_mosquitto_conf_for_21_has_no_deprecated_option() -> None:
    """2.1: the plugins, no password_file, acl_file or per_listener_settings;
    2.0: the options, as before."""
    listeners = {"pisec_mosquitto_tls_listeners": [{"port": 8883}]}
    newer = _render(CONF, {**MOSQUITTO, **listeners, "pisec_mosquitto__support": MOSQUITTO_21})
    directives = [line.split()[0] for line in newer.splitlines() if line and line[0] != "#"]
    assert not {"password_file", "acl_file", "per_listener_settings"} & set(directives)
    assert f"global_plugin {PLUGIN_DIR}/mosquitto_password_file.so\n" in newer
    assert "plugin_opt_password_file /etc/mosquitto/pisec/passwd\n" in newer
    assert f"global_plugin {PLUGIN_DIR}/mosquitto_acl_file.so\n" in newer
    assert "plugin_opt_acl_file /etc/mosquitto/pisec/acl\n" in newer
    # Each option follows the plugin it belongs to.
    plugins = [index for index, name in enumerate(directives) if name == "global_plugin"]
    assert [directives[index + 1] for index in plugins] == [
        "plugin_opt_password_file",
        "plugin_opt_acl_file",
    ]
    older = _render(CONF, {**MOSQUITTO, **listeners})
    assert "password_file /etc/mosquitto/pisec/passwd\n" in older
    assert "acl_file /etc/mosquitto/pisec/acl\n" in older
    assert "per_listener_settings false\n" in older
    assert "plugin" not in older


def test_the_support_module_reads_the_version_and_finds_the_plugins(tmp_path: Path) -> None:
    assert SUPPORT.mosquitto_version("mosquitto version 2.1.2\n\nmosquitto is ...") == "2.1.2"
    assert SUPPORT.mosquitto_version("Usage: mosquitto") == ""
    for triplet, names in (
        ("x86_64-linux-gnu", SUPPORT.PLUGINS),
        ("aarch64-linux-gnu", SUPPORT.PLUGINS[:1]),
    ):
        directory = tmp_path / triplet / "mosquitto"
        directory.mkdir(parents=True)
        for name in names:
            (directory / name).write_bytes(b"")
    # Only a directory with both plugins counts.
    found = SUPPORT.plugin_dir(str(tmp_path / "*" / "mosquitto"))
    assert found == str(tmp_path / "x86_64-linux-gnu" / "mosquitto")
    assert SUPPORT.plugin_dir(str(tmp_path / "none" / "*")) == ""


def test_only_mosquitto_21_and_later_is_asked_to_test_its_configuration() -> None:
    assert TEST_CONFIG.version("mosquitto version 2.1.2\n") == (2, 1)
    assert TEST_CONFIG.version("mosquitto version 2.0.21\n") == (2, 0)
    assert TEST_CONFIG.version("mosquitto version 10.0\n") == (10, 0)
    assert TEST_CONFIG.version("nothing") is None


class FakeMosquitto:
    """Answers `mosquitto -h` with a version and --test-config with a verdict."""

    def __init__(self, version: str, valid: bool = True) -> None:
        self.version, self.valid = version, valid
        self.calls: list[list[str]] = []

    def __call__(self, argv: list[str]) -> tuple[int, str, str]:
        self.calls.append(argv)
        if argv[1] == "-h":
            return 0, f"mosquitto version {self.version}\n\nUsage: mosquitto ...\n", ""
        if self.valid:
            return 0, "Configuration file is OK.\n", ""
        return 3, "", "Error: Unknown configuration variable 'no_such_option'.\n"


def test_the_handler_tests_the_configuration_on_21_and_stops_a_bad_one() -> None:
    good = FakeMosquitto("2.1.2")
    result, error = TEST_CONFIG.test_config(good, "/usr/sbin/mosquitto", "/etc/mosquitto/m.conf")
    assert (result["tested"], result["version"], error) == (True, "2.1", "")
    assert good.calls[-1] == ["/usr/sbin/mosquitto", "--test-config", "-c", "/etc/mosquitto/m.conf"]
    bad = FakeMosquitto("2.1.2", valid=False)
    result, error = TEST_CONFIG.test_config(bad, "/usr/sbin/mosquitto", "/etc/mosquitto/m.conf")
    assert result["tested"] and "no_such_option" in result["output"]
    assert error.startswith("mosquitto --test-config refused /etc/mosquitto/m.conf: Error:")
    # 2.0 has no --test-config (it refuses the option): it is not asked.
    older = FakeMosquitto("2.0.21", valid=False)
    result, error = TEST_CONFIG.test_config(older, "/usr/sbin/mosquitto", "/etc/mosquitto/m.conf")
    assert (result["tested"], error, len(older.calls)) == (False, "", 1)
