"""The CoAP part of `make bench` (Table 3): bench/coapgen.py measures real
libcoap servers and clients on loopback, and the report sets the figures
beside the study's."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench import report
from bench.coap import SUITE
from bench.coapgen import elf_sizes
from tests.conftest import PROJECT, free_port
from tests.templating import render

COAPGEN = PROJECT / "bench" / "coapgen.py"
KEY = "0123456789abcdef0123456789abcdef"


@dataclass(frozen=True)
class Servers:
    plain: str
    secure: str
    plain_pid: int
    secure_pid: int
    key_file: Path


def _wait_udp(port: int) -> None:
    for _ in range(50):
        table = Path("/proc/net/udp").read_text(encoding="ascii")
        if f":{port:04X} " in table:
            return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on UDP {port}")


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """coap-server-notls and coap-server-gnutls on loopback, the latter with
    the gateway's own GnuTLS priority file (TLS_PSK_WITH_AES_128_CCM_8)."""
    directory = tmp_path_factory.mktemp("coap-bench")
    priorities = directory / "gnutls.conf"
    priorities.write_text(
        render(
            "pisec_coaps/templates/etc/pisec/coaps/gnutls.conf.j2",
            {"ansible_managed": "Ansible managed", "pisec_coaps_allow_ccm": False},
        ),
        encoding="utf-8",
    )
    key_file = directory / "bench.psk"
    key_file.write_text(KEY, encoding="ascii")
    # As bench/coap.py starts it: the key in a file (-i), a default key no
    # client uses on the command line.
    identities = directory / "bench.ids"
    identities.write_text(f"pisec,pisec-bench,{KEY}\n", encoding="ascii")
    identities.chmod(0o400)
    plain_port, secure_port = free_port(), free_port()
    environment = dict(os.environ, GNUTLS_SYSTEM_PRIORITY_FILE=str(priorities))
    environment["GNUTLS_SYSTEM_PRIORITY_FAIL_ON_INVALID"] = "1"
    processes = [
        subprocess.Popen(
            ["coap-server-notls", "-A", "127.0.0.1", "-p", str(plain_port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [
                "coap-server-gnutls",
                "-A",
                "127.0.0.1",
                "-p",
                str(secure_port),
                "-h",
                "pisec",
                "-k",
                "f" * 32,
                "-i",
                str(identities),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=environment,
        ),
    ]
    try:
        _wait_udp(plain_port)
        _wait_udp(secure_port + 1)
        yield Servers(
            f"coap://127.0.0.1:{plain_port}/time",
            f"coaps://127.0.0.1:{secure_port + 1}/time",
            processes[0].pid,
            processes[1].pid,
            key_file,
        )
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)


def coapgen(*args: str, stdin: str | None = None, timeout: float = 120) -> list[dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, str(COAPGEN), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        input=stdin,
        env=dict(os.environ, PYTHONPATH=str(PROJECT / "src")),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def auth(servers: Servers, key_file: Path | None = None) -> list[str]:
    return ["--identity", "pisec-bench", "--key-file", str(key_file or servers.key_file)]


def test_latency_over_dtls_reports_the_pinned_suite_and_every_answer(servers: Servers) -> None:
    (result,) = coapgen(
        "latency", servers.secure, *auth(servers), "--rounds", "5", "--requests", "40"
    )
    assert result["failures"] == 0
    assert result["protocol"] == "DTLS1.2"
    assert result["suite"] == SUITE
    assert result["handshake_ms"]["n"] == 5
    assert result["first_answer_ms"]["n"] == 5
    assert result["request_ms"]["n"] == 40
    assert result["codes"] == {"2.05": 45}
    assert 0 < result["handshake_ms"]["min"] <= result["handshake_ms"]["median"]
    # The client's own CPU is within each exchange's wall time.
    assert 0 < result["client_cpu_us_per_request"] < 1000 * result["request_ms"]["median"] * 5
    assert result["client_cpu_us_per_session"] > 0


def test_latency_over_plain_udp_has_no_handshake(servers: Servers) -> None:
    (result,) = coapgen("latency", servers.plain, "--rounds", "3", "--requests", "10")
    assert result["failures"] == 0
    assert result["handshake_ms"] == {}
    assert result["suite"] is None
    assert result["codes"] == {"2.05": 13}


def test_a_wrong_key_fails_every_handshake(servers: Servers, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.psk"
    wrong.write_text("e" * 32, encoding="ascii")
    (result,) = coapgen(
        "latency",
        servers.secure,
        *auth(servers, wrong),
        "--rounds",
        "2",
        "--requests",
        "0",
        "--timeout",
        "1",
    )
    assert result["failures"] == 2
    assert result["codes"] == {}


def test_sessions_are_held_until_stdin_closes_and_the_server_grows(servers: Servers) -> None:
    (idle,) = coapgen("footprint", str(servers.secure_pid))
    process = subprocess.Popen(
        [
            sys.executable,
            str(COAPGEN),
            "hold",
            servers.secure,
            *auth(servers),
            "--sessions",
            "30",
            "--hold-seconds",
            "60",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(PROJECT / "src")),
    )
    assert process.stdout is not None and process.stdin is not None
    started = time.monotonic()
    ready = json.loads(process.stdout.readline())
    assert ready == {"ready": 30, "failures": 0, "codes": {"2.05": 30}, "suite": SUITE}
    (held,) = coapgen("footprint", str(servers.secure_pid))
    process.stdin.close()
    released = json.loads(process.stdout.readline())
    assert process.wait(timeout=30) == 0
    assert released == {"released": 30}
    assert time.monotonic() - started < 30  # not the 60 s of --hold-seconds
    # 30 DTLS sessions of GnuTLS hold kilobytes each of the server's own data.
    assert held["anonymous_kib"] >= idle["anonymous_kib"] + 30 * 2
    assert held["peak_rss_kib"] >= held["rss_kib"] > idle["rss_kib"]


def test_the_footprint_names_the_code_dtls_adds(servers: Servers) -> None:
    (plain,) = coapgen("footprint", str(servers.plain_pid))
    (secure,) = coapgen("footprint", str(servers.secure_pid))
    names = {Path(path).name for path in secure["files"]}
    assert any(name.startswith("libgnutls.so") for name in names)
    assert not any(Path(path).name.startswith("libgnutls") for path in plain["files"])
    assert secure["code_kib"] == sum(secure["files"].values())
    assert secure["code_kib"] > plain["code_kib"] > 0
    assert secure["file_kib"] > secure["code_kib"] / 2
    for footprint in (plain, secure):
        assert 0 < footprint["private_kib"] <= footprint["rss_kib"] <= footprint["peak_rss_kib"]


def test_a_client_is_sampled_while_its_session_is_open(servers: Servers, tmp_path: Path) -> None:
    hint = tmp_path / "bench.coap-client"
    hint.write_text(f"pisec,pisec-bench,{KEY}\n", encoding="ascii")
    (plain,) = coapgen(
        "client", "--sample-after", "1", "--", "coap-client-notls", "-s", "2", servers.plain
    )
    (secure,) = coapgen(
        "client",
        "--sample-after",
        "1",
        "--",
        "coap-client-gnutls",
        "-u",
        "pisec-bench",
        "-k",
        "unused",
        "-h",
        str(hint),
        "-s",
        "2",
        servers.secure,
    )
    for result in (plain, secure):
        assert result["exit"] == 0
        assert result["sample"] is not None
        # /time answers with the time: the client got through.
        assert any(char.isdigit() for char in result["output"])
    assert secure["sample"]["code_kib"] > plain["sample"]["code_kib"]


def _footprint(rss: int, private: int, files: dict[str, int]) -> dict[str, Any]:
    return {
        "rss_kib": rss,
        "peak_rss_kib": rss + 100,
        "pss_kib": rss // 2,
        "private_kib": private,
        "anonymous_kib": private // 2,
        "code_kib": sum(files.values()),
        "file_kib": 2 * sum(files.values()),
        "files": files,
    }


def _server(idle: dict[str, Any], held: dict[str, Any], handshake: bool) -> dict[str, Any]:
    timing = {"n": 10, "median": 0.5, "p90": 0.9, "min": 0.4}
    return {
        "idle": idle,
        "held": held,
        "sessions": 50,
        "suite": SUITE if handshake else None,
        "handshakes": {
            "handshake_ms": timing if handshake else {},
            "first_answer_ms": timing,
            "server_cpu_us_each": 300.0,
            "client_cpu_us_per_session": 400.0,
        },
        "requests": {
            "request_ms": {"n": 1000, "median": 0.07, "p90": 0.09, "min": 0.05},
            "server_cpu_us_each": 40.0,
            "client_cpu_us_per_request": 45.0,
        },
    }


def test_the_report_sets_each_pair_beside_the_studys_ratios() -> None:
    base = {
        "/usr/bin/coap-server-notls": 20,
        "/usr/lib/libc.so.6": 1000,
        "/usr/lib/libcoap-3-notls.so.3": 100,
    }
    dtls = {
        "/usr/bin/coap-server-gnutls": 20,
        "/usr/lib/libc.so.6": 1000,
        "/usr/lib/libcoap-3-gnutls.so.3": 180,
        "/usr/lib/libgnutls.so.30": 1500,
        "/usr/lib/libnettle.so.8": 300,
    }
    results = {
        "coap": {
            "servers": {
                "coap-server-notls": _server(
                    _footprint(2000, 400, base), _footprint(2500, 500, base), False
                ),
                "coap-server-gnutls": _server(
                    _footprint(5000, 600, dtls), _footprint(11000, 1000, dtls), True
                ),
                "pisec-coapsd": _server(
                    _footprint(20000, 13000, dtls), _footprint(26000, 14000, dtls), True
                ),
            },
            "clients": {
                "coap-client-notls": {"sample": _footprint(2200, 500, base), "exit": 0},
                "coap-client-gnutls": {"sample": _footprint(5500, 3000, dtls), "exit": 0},
            },
            "mosquitto": _footprint(
                9000, 1000, {"/usr/sbin/mosquitto": 500, "/usr/lib/libssl.so.3": 700,
                             "/usr/lib/libcrypto.so.3": 3300, "/usr/lib/libc.so.6": 1000}
            ),
        },
        "broker": {
            "memory": {
                "plaintext": {"rss_kib": {"0": 1000, "100": 2000}},
                "tls-ecdsa": {"rss_kib": {"0": 1000, "100": 4000}},
            }
        },
    }  # fmt: skip
    text = "\n".join(report._coap(results))
    server_row = next(
        line for line in text.splitlines() if line.startswith("| `coap-server-gnutls` | 5,000")
    )
    # RSS 5,000 against 2,000 idle; own data (anonymous) 300 against 200
    # idle and 500 against 250 with 50 sessions, 4 KiB more per session;
    # the study's server RAM 11,274 against 8,200 bytes.
    assert "| 5,000 | 300 | 11,000 | 500 | 4.0 | 2.50x | 1.50x | 2.00x | 1.37x |" in server_row
    client_row = next(
        line for line in text.splitlines() if line.startswith("| `coap-client-gnutls` | 5,500")
    )
    assert "| 2.50x | 6.00x | 1.39x |" in client_row
    code_row = next(
        line for line in text.splitlines() if line.startswith("| `coap-server-gnutls` | 3,000")
    )
    # 3,000 KiB of code against 1,120; study ROM 89,737 against 50,224.
    assert "| 2.68x | 1,800 KiB: libgnutls, libnettle |" in code_row
    # Without ELF sizes, no table of the study's own measures.
    assert "Measured the study's way" not in text and "study ROM" not in text
    coapsd_row = next(
        line for line in text.splitlines() if line.startswith("| `pisec-coapsd` | 20,000")
    )
    assert "x" not in coapsd_row.split("|", 7)[-1]  # no ratio for the Python gateway
    assert SUITE in text
    assert "4,000 KiB of it OpenSSL" in text and "3.67x smaller" in text
    assert "10.0 KiB plaintext and 30.0 KiB over TLS (3.00x" in text
    # Without the CoAP part, no section.
    assert report._coap({"broker": {}}) == []


def test_static_code_matches_what_the_loader_maps(servers: Servers) -> None:
    """On this machine the ELF reading (what an emulated arm64 Pi gets) and
    a running process's executable mappings agree: same files, same size
    but for page rounding."""
    (mapped,) = coapgen("footprint", str(servers.secure_pid))
    (static,) = coapgen("static-code", "coap-server-gnutls")
    program = static["programs"]["coap-server-gnutls"]
    assert static["arch"] == os.uname().machine
    assert {Path(path).name for path in program["files"]} == {
        Path(path).name for path in mapped["files"]
    }
    assert 0.95 * mapped["code_kib"] <= program["code_kib"] <= mapped["code_kib"]


def _elf(wide: bool, big: bool, segments: list[tuple[int, int, int, int]]) -> bytes:
    """An ELF header and program headers: (type, flags, filesz, memsz) each."""
    order = ">" if big else "<"
    ident = b"\x7fELF" + bytes([2 if wide else 1, 2 if big else 1, 1]) + bytes(9)
    if wide:
        header = ident + struct.pack(
            order + "HHIQQQIHHHHHH", 2, 183, 1, 0, 64, 0, 0, 64, 56, len(segments), 0, 0, 0
        )
        table = b"".join(
            struct.pack(order + "IIQQQQQQ", kind, flags, 0, 0, 0, filesz, memsz, 4096)
            for kind, flags, filesz, memsz in segments
        )
    else:
        header = ident + struct.pack(
            order + "HHIIIIIHHHHHH", 2, 20, 1, 0, 52, 0, 0, 52, 32, len(segments), 0, 0, 0
        )
        table = b"".join(
            struct.pack(order + "IIIIIIII", kind, 0, 0, 0, filesz, memsz, flags, 4096)
            for kind, flags, filesz, memsz in segments
        )
    return header + table  # fmt: skip


@pytest.mark.parametrize(
    ("wide", "big"), [(True, False), (True, True), (False, True), (False, False)]
)
def test_elf_sizes_count_load_segments_only(tmp_path: Path, wide: bool, big: bool) -> None:
    segments = [
        (1, 5, 0x1234, 0x1234),  # PT_LOAD r-x: code and image
        (1, 4, 0x300, 0x300),  # PT_LOAD r--: read-only data, image only
        (1, 6, 0x200, 0x8000),  # PT_LOAD rw-: initial data in the image, the rest bss
        (2, 1, 0x500, 0x500),  # PT_DYNAMIC flagged X: not a load segment
        (1, 1, 0x100, 0x180),  # PT_LOAD --x
    ]
    path = tmp_path / "prog"
    path.write_bytes(_elf(wide, big, segments))
    assert elf_sizes(str(path)) == (0x1234 + 0x180, 0x1234 + 0x300 + 0x200 + 0x100, 0x8000)


def test_a_file_that_is_not_elf_or_cut_short_is_named(tmp_path: Path) -> None:
    path = tmp_path / "script"
    path.write_text("#!/bin/sh\n")
    with pytest.raises(ValueError, match=f"{path}: not an ELF file"):
        elf_sizes(str(path))
    path.write_bytes(_elf(True, False, [(1, 5, 16, 16), (1, 6, 16, 16)])[:-40])
    with pytest.raises(ValueError, match="cut short"):
        elf_sizes(str(path))


def test_the_report_measures_the_studys_way_on_each_architecture() -> None:
    def programs(scale: float) -> dict[str, Any]:
        # (static data, load image) of each program with its libraries.
        sizes = {
            "coap-server-notls": (100.0, 1000.0),
            "coap-server-gnutls": (300.0, 2500.0),
            "coap-client-notls": (100.0, 1000.0),
            "coap-client-gnutls": (350.0, 3000.0),
        }
        return {
            name: {"code_kib": 0.0, "data_kib": data * scale, "image_kib": image * scale}
            for name, (data, image) in sizes.items()
        } | {
            "mosquitto": {
                "image_kib": 4000.0 * scale,
                "files": {
                    "/usr/lib/aarch64-linux-gnu/libcrypto.so.3": {"image_kib": 3000.0 * scale}
                },
            }
        }

    files = {"/usr/bin/x": 1000}
    server = _server(_footprint(2000, 400, files), _footprint(2500, 500, files), True)
    client = {"sample": _footprint(2200, 500, files), "exit": 0}
    coap = {
        "servers": {"coap-server-notls": server, "coap-server-gnutls": server},
        "clients": {"coap-client-notls": client, "coap-client-gnutls": client},
        "static_code": {
            "amd64": {"arch": "x86_64", "programs": programs(0.5)},
            "arm64": {"arch": "aarch64", "programs": programs(1.0)},
        },
        "mosquitto": _footprint(9000, 1000, {"/usr/sbin/mosquitto": 1000}),
    }
    text = "\n".join(report._coap({"coap": coap}))
    assert (
        "| program | RAM, amd64 | x CoAP | RAM, arm64 | x CoAP | study RAM x CoAP "
        "| ROM, amd64 | x CoAP | ROM, arm64 | x CoAP | study ROM x CoAP |"
    ) in text
    assert (
        "| `coap-server-gnutls` | 150 | 3.00x | 300 | 3.00x | 1.37x "
        "| 1,250 | 2.50x | 2,500 | 2.50x | 1.79x |"
    ) in text
    assert (
        "| `coap-client-gnutls` | 175 | 3.50x | 350 | 3.50x | 1.39x "
        "| 1,500 | 3.00x | 3,000 | 3.00x | 1.93x |"
    ) in text
    assert "| `coap-client-notls` | 50 |  | 100 |  |  | 500 |  | 1,000 |  |  |" in text
    assert "On arm64 its load image is 4,000 KiB, 3,000 KiB of it OpenSSL's (4.00x)" in text
