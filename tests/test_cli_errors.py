"""Bad input: exit code 2 and one line on stderr, never a traceback."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pisec.cli import main
from tests.certs import CLIENT_AUTH, build, name, new_key


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err
    return code, err


def test_wrong_scheme(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, err = _run(["probe", "mqtt://broker:1883", "--ca", str(tmp_path)], capsys)
    assert code == 2
    assert err == (
        "pisec: error: mqtt://broker:1883: scheme 'mqtt' is not supported: use mqtts://HOST:PORT\n"
    )


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (None, "cannot read CA file"),
        (b"", "not a PEM CA certificate"),
        (b"\x00\xffgarbage", "not a PEM CA certificate"),
        (b"-----BEGIN CERTIFICATE-----\nMIIB\n", "not a PEM CA certificate"),
    ],
)
def test_bad_ca_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes | None, why: str
) -> None:
    ca = tmp_path / "ca.pem"
    if content is not None:
        ca.write_bytes(content)
    code, err = _run(["probe", "mqtts://127.0.0.1:1", "--ca", str(ca)], capsys)
    assert code == 2
    assert err.startswith(f"pisec: error: {ca}: {why}")
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_ca_is_a_directory(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, err = _run(["probe", "mqtts://127.0.0.1:1", "--ca", str(tmp_path)], capsys)
    assert code == 2
    assert err == f"pisec: error: {tmp_path}: CA file is a directory\n"


def test_empty_password_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    empty = tmp_path / "password"
    empty.write_text("")
    code, err = _run(
        [
            "probe",
            "mqtts://127.0.0.1:1",
            "--ca",
            str(tmp_path),
            "--username",
            "x",
            "--password-file",
            str(empty),
        ],
        capsys,
    )
    assert code == 2
    assert err == f"pisec: error: {empty}: password file is empty\n"


def test_usage_error_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(["probe"], capsys)
    assert code == 2
    assert err.startswith("pisec: error: pisec probe: ")
    assert err.count("\n") == 1


def test_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(["frobnicate"], capsys)
    assert code == 2
    assert err.startswith("pisec: error: pisec: ")


def test_closed_pipe_is_quiet(tmp_path: Path) -> None:
    """`pisec inspect ... | head -1` must not end in a traceback."""
    import sys

    script = (
        "import sys; from pisec.cli import main; "
        "sys.exit(main(['inspect', '--json', *sys.argv[1:]]))"
    )
    bundle = sorted(Path("/usr/share/ca-certificates/mozilla").glob("*.crt"))[:40]
    process = subprocess.Popen(
        [sys.executable, "-c", script, *map(str, bundle)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.readline()
    process.stdout.close()
    err = process.stderr.read().decode()
    assert process.wait(timeout=30) == 0
    assert err == ""


@pytest.fixture
def client_pair(tmp_path: Path) -> dict[str, Path]:
    ca = build(name("probe CA"), new_key("p256"), ca=True)
    client = build(name("sensor-01"), new_key("p256"), issuer=ca, eku=CLIENT_AUTH)
    ca_path, _ = ca.write(tmp_path, "ca")
    cert, key = client.write(tmp_path, "client")
    return {"ca": ca_path, "cert": cert, "key": key, "tmp": tmp_path}


def _probe_with(pair: dict[str, Path], cert: Path, key: Path) -> list[str]:
    return [
        "probe",
        "mqtts://127.0.0.1:1",
        "--ca",
        str(pair["ca"]),
        "--cert",
        str(cert),
        "--key",
        str(key),
    ]


def test_garbage_client_key_says_why(
    capsys: pytest.CaptureFixture[str], client_pair: dict[str, Path]
) -> None:
    """It said "certificate and key do not load together (None)"."""
    garbage = client_pair["tmp"] / "garbage.key"
    garbage.write_bytes(b"garbage\n")
    code, err = _run(_probe_with(client_pair, client_pair["cert"], garbage), capsys)
    assert code == 2
    assert (
        err == f"pisec: error: {garbage}: not a private key: neither a PEM nor a DER private key\n"
    )


def test_someone_elses_client_key(
    capsys: pytest.CaptureFixture[str], client_pair: dict[str, Path]
) -> None:
    _, other = build(name("other"), new_key("p256")).write(client_pair["tmp"], "other")
    code, err = _run(_probe_with(client_pair, client_pair["cert"], other), capsys)
    assert code == 2
    assert err == f"pisec: error: {other}: is not the private key of {client_pair['cert']}\n"


def test_encrypted_client_key_is_refused_without_a_prompt(
    capsys: pytest.CaptureFixture[str], client_pair: dict[str, Path]
) -> None:
    encrypted = client_pair["tmp"] / "encrypted.key"
    subprocess.run(
        [
            *("openssl", "pkey", "-in", str(client_pair["key"]), "-out", str(encrypted)),
            *("-aes256", "-passout", "pass:x"),
        ],
        check=True,
    )
    code, err = _run(_probe_with(client_pair, client_pair["cert"], encrypted), capsys)
    assert code == 2
    assert err == f"pisec: error: {encrypted}: the private key is encrypted\n"


def test_der_client_certificate_is_named(
    capsys: pytest.CaptureFixture[str], client_pair: dict[str, Path]
) -> None:
    der = client_pair["tmp"] / "client.der"
    subprocess.run(
        ["openssl", "x509", "-in", str(client_pair["cert"]), "-outform", "DER", "-out", str(der)],
        check=True,
    )
    code, err = _run(_probe_with(client_pair, der, client_pair["key"]), capsys)
    assert code == 2
    assert err == f"pisec: error: {der}: the client certificate must be PEM, not DER\n"


def test_key_given_as_client_certificate(
    capsys: pytest.CaptureFixture[str], client_pair: dict[str, Path]
) -> None:
    key = client_pair["key"]
    code, err = _run(_probe_with(client_pair, key, key), capsys)
    assert code == 2
    assert err == f"pisec: error: {key}: holds a private key, not a certificate or CSR\n"
