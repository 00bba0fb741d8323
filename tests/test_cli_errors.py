"""Bad input: exit code 2 and one line on stderr, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from pisec.cli import main


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
    import subprocess
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
