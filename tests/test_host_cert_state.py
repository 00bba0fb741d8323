"""pisec_host_cert_state: what it reports for each layout a run can leave.

Every state a killed swap can leave on a host is built here as files and
symlinks, and the report must say which generation is served, which swap is
unconfirmed and what is left over.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PROJECT, load_role_module

state = load_role_module("pisec_host_cert", "pisec_host_cert_state")

NAME = "pisec-server"
OLD, NEW = "g20261201T000000Z-0a1b", "g20261202T000000Z-ff00"


def generation(directory: Path, name: str, serial: str) -> None:
    path = directory / f"{NAME}.d" / name
    path.mkdir(parents=True)
    (path / f"{NAME}.key").write_text(f"key {serial}\n")
    (path / f"{NAME}.csr").write_text(f"csr {serial}\n")
    (path / f"{NAME}.crt").write_text(f"crt {serial}\n")


def link(path: Path, target: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    os.symlink(target, tmp)
    os.replace(tmp, path)


def served_names(directory: Path) -> None:
    for ext in ("key", "crt", "csr"):
        link(directory / f"{NAME}.{ext}", f"{NAME}.d/live/{NAME}.{ext}")


def report(directory: Path) -> dict[str, Any]:
    result: dict[str, Any] = state.inspect(str(directory), NAME)
    return result


def test_nothing_there(tmp_path: Path) -> None:
    got = report(tmp_path)
    assert got["layout"] == "none"
    assert got["live"] == got["previous"] == got["certificate"] == ""
    assert not got["key_exists"] and not got["links"]
    assert got["stale"] == [] and got["leftovers"] == []


def test_plain_files_of_the_layout_before_generations(tmp_path: Path) -> None:
    for ext in ("key", "crt", "csr"):
        (tmp_path / f"{NAME}.{ext}").write_text(f"{ext} old\n")
    (tmp_path / f"{NAME}.key.prev").write_text("older key\n")
    got = report(tmp_path)
    assert got["layout"] == "legacy"
    assert got["key_exists"] and got["certificate"] == "crt old\n"
    assert got["leftovers"] == [f"{tmp_path}/{NAME}.key.prev"]


def test_a_plain_key_without_a_certificate_is_no_layout_to_keep(tmp_path: Path) -> None:
    # A first issuance of the old layout killed before the certificate.
    (tmp_path / f"{NAME}.key").write_text("key\n")
    assert report(tmp_path)["layout"] == "none"


def test_plain_files_without_a_request(tmp_path: Path) -> None:
    for ext in ("key", "crt"):
        (tmp_path / f"{NAME}.{ext}").write_text(f"{ext} old\n")
    got = report(tmp_path)
    assert got["layout"] == "legacy" and got["key_exists"] and not got["csr_exists"]


def test_settled_generation(tmp_path: Path) -> None:
    generation(tmp_path, OLD, "01")
    link(tmp_path / f"{NAME}.d" / "live", OLD)
    served_names(tmp_path)
    got = report(tmp_path)
    assert got["layout"] == "generations"
    assert (got["live"], got["previous"], got["stale"]) == (OLD, "", [])
    assert got["key_exists"] and got["csr_exists"] and got["links"]
    assert got["certificate"] == "crt 01\n"


@pytest.mark.parametrize(
    ("live", "previous", "stale"),
    [
        # killed after the new generation was written, before any switch
        (OLD, None, [NEW]),
        # killed after `previous` was set, before `live` was switched
        (OLD, OLD, [NEW]),
        # killed after the switch: the swap is unconfirmed
        (NEW, OLD, []),
    ],
)
def test_states_a_killed_swap_leaves(
    tmp_path: Path, live: str, previous: str | None, stale: list[str]
) -> None:
    generation(tmp_path, OLD, "01")
    generation(tmp_path, NEW, "02")
    link(tmp_path / f"{NAME}.d" / "live", live)
    if previous:
        link(tmp_path / f"{NAME}.d" / "previous", previous)
    served_names(tmp_path)
    got = report(tmp_path)
    assert got["live"] == live
    assert got["previous"] == (previous or "")
    assert got["stale"] == stale
    assert got["certificate"] == ("crt 02\n" if live == NEW else "crt 01\n")
    assert got["previous_certificate"] == ("crt 01\n" if previous else "")


def test_a_live_link_to_nowhere_is_no_generation(tmp_path: Path) -> None:
    (tmp_path / f"{NAME}.d").mkdir()
    link(tmp_path / f"{NAME}.d" / "live", NEW)
    got = report(tmp_path)
    assert got["layout"] == "none" and got["live"] == ""


@pytest.mark.parametrize("target", ["../../etc", "/etc", "a/b", ".", ".."])
def test_links_that_leave_the_generations_directory_are_not_followed(
    tmp_path: Path, target: str
) -> None:
    (tmp_path / f"{NAME}.d").mkdir()
    link(tmp_path / f"{NAME}.d" / "live", target)
    link(tmp_path / f"{NAME}.d" / "previous", target)
    got = report(tmp_path)
    assert got["live"] == got["previous"] == ""
    assert got["layout"] == "none"


def test_a_huge_certificate_is_not_read(tmp_path: Path) -> None:
    generation(tmp_path, OLD, "01")
    (tmp_path / f"{NAME}.d" / OLD / f"{NAME}.crt").write_bytes(
        b"A" * (state.MAX_CERTIFICATE_BYTES + 1)
    )
    link(tmp_path / f"{NAME}.d" / "live", OLD)
    assert report(tmp_path)["certificate"] == ""


def test_names_that_are_plain_files_are_not_the_links(tmp_path: Path) -> None:
    generation(tmp_path, OLD, "01")
    link(tmp_path / f"{NAME}.d" / "live", OLD)
    served_names(tmp_path)
    (tmp_path / f"{NAME}.csr").unlink()
    (tmp_path / f"{NAME}.csr").write_text("plain\n")
    assert report(tmp_path)["links"] is False


def test_what_a_converged_host_reports_to_be_left_alone(tmp_path: Path) -> None:
    """The served key's public key (computed on the host), the owners and
    modes of the key, certificate and directory, and the trust bundle's
    checksum: the same read, no second module run."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    generation(tmp_path, OLD, "01")
    link(tmp_path / f"{NAME}.d" / "live", OLD)
    served_names(tmp_path)
    key = ec.generate_private_key(ec.SECP256R1())
    key_path = tmp_path / f"{NAME}.d" / OLD / f"{NAME}.key"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o640)
    (tmp_path / f"{NAME}.d" / OLD / f"{NAME}.crt").chmod(0o644)
    tmp_path.chmod(0o755)
    bundle = tmp_path / "pisec-ca.crt"
    bundle.write_text("trust\n")
    bundle.chmod(0o644)
    got: dict[str, Any] = state.inspect(str(tmp_path), NAME, str(bundle))
    assert got["public_key"] == key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")
    files = got["files"]
    assert {name: files["key"][name] for name in ("exists", "owner", "group", "mode")} == {
        "exists": True,
        "owner": "root",
        "group": "root",
        "mode": "0640",
    }
    assert files["crt"]["mode"] == "0644" and files["dir"]["mode"] == "0755"
    assert files["ca"]["sha256"] == hashlib.sha256(b"trust\n").hexdigest()


def test_a_key_that_is_not_one_and_a_linked_bundle_report_nothing(tmp_path: Path) -> None:
    """A key the library cannot read gives no public key; a trust bundle
    that is a symlink is not reported as the file pisec writes."""
    generation(tmp_path, OLD, "01")
    link(tmp_path / f"{NAME}.d" / "live", OLD)
    served_names(tmp_path)
    (tmp_path / "elsewhere").write_text("trust\n")
    os.symlink("elsewhere", tmp_path / "pisec-ca.crt")
    got: dict[str, Any] = state.inspect(str(tmp_path), NAME, str(tmp_path / "pisec-ca.crt"))
    assert got["public_key"] == ""
    assert got["files"]["ca"] == {"exists": False}
    assert state.inspect(str(tmp_path / "missing"), NAME)["files"] == {
        "dir": {"exists": False},
        "key": {"exists": False},
        "crt": {"exists": False},
        "ca": {"exists": False},
        "fact": {"exists": False},
        "facts_dir": {"exists": False},
    }


def test_installed_packages_are_what_dpkg_marks_installed() -> None:
    """dpkg-query's answer: only `ii` counts (a removed package whose
    configuration is left, `rc`, does not), an architecture suffix is
    dropped, and a line without a status counts for nothing. The controller
    installs only names it asked about, whatever the answer says."""
    out = "mosquitto-clients ii \npython3-cryptography rc \nlibssl3t64:arm64 ii \nevil\nname ii \n"
    assert state.installed(out) == {"mosquitto-clients", "libssl3t64", "name"}


def test_the_local_fact_and_its_directory_are_reported(tmp_path: Path) -> None:
    """The fact that records the paths is reported like the other files
    (checksum, owner, mode), so a converged host needs no task to check it;
    a symlink in its place is reported as absent and rewritten."""
    facts = tmp_path / "facts.d"
    facts.mkdir(mode=0o755)
    fact = facts / "pisec_cert_client.fact"
    fact.write_text('{"name": "client"}\n')
    fact.chmod(0o644)
    got = state.inspect(str(tmp_path / "tls"), NAME, "", str(fact))["files"]
    assert got["fact"]["mode"] == "0644" and got["fact"]["sha256"] == (
        hashlib.sha256(b'{"name": "client"}\n').hexdigest()
    )
    assert got["facts_dir"]["exists"] and got["facts_dir"]["mode"] == "0755"
    fact.unlink()
    os.symlink("/etc/passwd", fact)
    assert state.inspect(str(tmp_path / "tls"), NAME, "", str(fact))["files"]["fact"] == {
        "exists": False
    }


def test_the_local_fact_the_role_writes_is_what_the_readers_accept() -> None:
    """pisec_host_cert__fact_text, templated by Ansible itself from the
    role's vars file, is JSON that pisec.rules.cert_facts (the readers:
    the playbooks' filters and `pisec fleet certs`) accepts, with the
    paths the role's other variables name."""
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, trust_as_template

    from pisec.fleet import managed_files, split_files
    from pisec.rules import cert_facts

    loader = DataLoader()
    role = PROJECT / "roles" / "pisec_host_cert"
    variables: dict[str, Any] = {
        **loader.load_from_file(str(role / "defaults" / "main.yml"), trusted_as_template=True),
        **loader.load_from_file(str(role / "vars" / "main.yml"), trusted_as_template=True),
        "inventory_hostname": "pisec-broker",
        "pisec_host_cert_dir": "/etc/mosquitto/certs",
        "pisec_host_cert_name": "pisec-server",
        "pisec_host_cert_ca_path": "/etc/mosquitto/certs/pisec-ca.crt",
    }
    templar = Templar(loader=loader, variables=variables)
    text = templar.template(trust_as_template("{{ pisec_host_cert__fact_text }}"))
    path = templar.template(trust_as_template("{{ pisec_host_cert__fact_path }}"))
    assert path == "/etc/ansible/facts.d/pisec_cert_pisec_server.fact"
    [fact] = cert_facts({"pisec_cert_pisec_server": json.loads(text)})
    assert fact == {
        "name": "pisec-server",
        "purpose": "server",
        "certificate": "/etc/mosquitto/certs/pisec-server.crt",
        "key": "/etc/mosquitto/certs/pisec-server.key",
        "ca": "/etc/mosquitto/certs/pisec-ca.crt",
        "dir": "/etc/mosquitto/certs",
    }
    # As `pisec fleet certs` reads it back: the file after its marker.
    output = f"==> pisec-file {path}\n{text}\n"
    assert managed_files(split_files(output)) == [
        ("broker server", "/etc/mosquitto/certs/pisec-server.crt")
    ]
