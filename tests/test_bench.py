"""The bench's measurements and report, against a real mosquitto on loopback.

The same BrokerBench that `make bench` points at containers runs here with
tiny counts against a local broker process, so the measuring and reporting
code cannot rot between bench runs. `make bench-smoke` runs the container
path.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from pisec import benchreport
from pisec.bench import recap_totals
from pisec.benchcore import (
    BenchError,
    BrokerBench,
    Counts,
    Credentials,
    Endpoint,
    Running,
    RunningProcess,
    Usage,
    loadgen_report,
    parse_usage,
    summary,
)
from tests.conftest import (
    BENCH_USER,
    PROJECT,
    BenchBrokerFiles,
    Broker,
    running_mosquitto,
    write_bench_broker,
)

LOADGEN = PROJECT / "src/pisec/loadgen.py"


class LocalBroker:
    """mosquitto as a child process of the test, restartable."""

    name = "loopback"

    def __init__(self, files: BenchBrokerFiles) -> None:
        self.files = files
        self.stack = contextlib.ExitStack()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = self.stack.enter_context(
            running_mosquitto(self.files.config, self.files.tls_port, self.files.log)
        )

    def stop(self) -> None:
        self.stack.close()
        self.stack = contextlib.ExitStack()

    def restart(self) -> None:
        self.stop()
        self.start()

    def usage(self, process: str) -> Usage:
        if process != "mosquitto" or self.process is None:
            raise BenchError(f"no {process} here")
        pid = self.process.pid
        return parse_usage(
            pid,
            Path(f"/proc/{pid}/stat").read_text(),
            Path(f"/proc/{pid}/status").read_text(),
            os.sysconf("SC_CLK_TCK"),
        )


class LocalClient:
    name = "loopback"

    def __init__(self, scratch: Path) -> None:
        self.directory = scratch

    def _argv(self, args: Sequence[str]) -> list[str]:
        return [sys.executable, str(LOADGEN), *args]

    def loadgen(self, args: Sequence[str], timeout: float) -> dict[str, Any]:
        done = subprocess.run(
            self._argv(args), capture_output=True, text=True, timeout=timeout, check=False
        )
        return loadgen_report(f"loadgen {args[0]}", done.returncode, done.stdout, done.stderr)

    def start_loadgen(self, args: Sequence[str]) -> Running:
        process = subprocess.Popen(
            self._argv(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        return RunningProcess(process, f"loadgen {args[0]}")

    def exists(self, path: str) -> bool:
        return Path(path).exists()

    def touch(self, path: str) -> None:
        Path(path).touch()

    def scratch(self, name: str) -> str:
        return str(self.directory / name)


@pytest.fixture
def local(broker: Broker, tmp_path: Path) -> Iterator[tuple[LocalBroker, LocalClient, Credentials]]:
    files = write_bench_broker(broker, tmp_path)
    local_broker = LocalBroker(files)
    local_broker.start()
    creds = Credentials(
        username=BENCH_USER, password_file=str(files.password_file), cafile=str(broker.ca_file)
    )
    try:
        yield local_broker, LocalClient(tmp_path), creds
    finally:
        local_broker.stop()


def test_the_bench_measures_a_real_broker_and_reports_it(
    local: tuple[LocalBroker, LocalClient, Credentials], tmp_path: Path
) -> None:
    broker, client, creds = local
    plain = Endpoint("plaintext", "127.0.0.1", broker.files.plain_port)
    tls = Endpoint(
        "tls-ecdsa", "127.0.0.1", broker.files.tls_port, tls=True, server_name="localhost"
    )
    bench = BrokerBench(broker, client, creds, Counts.smoke())

    for endpoint in (plain, tls):
        result = bench.connect(endpoint)
        assert result["latency_ms"]["n"] == Counts.smoke().connects
        assert 0 < result["latency_ms"]["median"] <= result["latency_ms"]["max"]
        assert result["cpu_ms_per_1000"]["mosquitto"] >= 0
    assert bench.results["connect"]["plaintext"]["tls_version"] is None
    assert bench.results["connect"]["tls-ecdsa"]["tls_version"] in ("TLSv1.2", "TLSv1.3")

    for qos in (0, 1):
        result = bench.throughput(tls, qos)
        assert result["messages_per_second"]["median"] > 0
    assert bench.results["throughput"]["tls-ecdsa/qos1"]["lost"] == 0

    memory = bench.memory(plain)["rss_kib"]
    assert list(memory) == ["0", "5", "20"]
    assert all(value > 0 for value in memory.values())

    results = {
        "command": "pytest",
        "date": "today",
        "machine": {"cpus": 2, "cpu": "test", "arch": "x86_64", "kernel": "k", "openssl": "o"},
        "broker": bench.results,
        "fleet": [
            {
                "pis": 1,
                "floor_seconds": 2.0,
                "first_seconds": 30.0,
                "second_seconds": 8.0,
                "first_changed": 40,
                "second_changed": 0,
                "settings": {"ansible.cfg as committed": 8.0, "strategy free": 6.0},
            }
        ],
    }
    json.dumps(results)  # what make bench writes must serialise
    section = benchreport.render(results)
    assert "| plaintext + password (baseline) |" in section
    assert "| TLS, ECDSA P-256 server + password |" in section
    assert "1.00x" in section  # the baseline against itself
    assert "| strategy free | 6.0 | 0.75x |" in section
    assert "| 1 | 2.0 | 30.0 | 8.0 | 4.00x | 40 | 0 |" in section
    assert "Raw numbers: `docs/benchmarks.json`" in section
    other = benchreport.render(results, raw="docs/benchmarks-ansible.json")
    assert "Raw numbers: `docs/benchmarks-ansible.json`" in other

    page = tmp_path / "benchmarks.md"
    page.write_text("# pisec benchmarks\n\nHand-written password table.\n")
    benchreport.update_markdown(page, section)
    benchreport.update_markdown(page, section)
    text = page.read_text()
    assert text.count(benchreport.BEGIN) == 1
    assert text.startswith("# pisec benchmarks\n\nHand-written password table.\n")
    assert "connect latency, TLS, ECDSA P-256 server + password" in benchreport.headline(results)


def test_a_refused_login_stops_the_bench_with_its_reason(
    local: tuple[LocalBroker, LocalClient, Credentials], tmp_path: Path
) -> None:
    broker, client, creds = local
    wrong = tmp_path / "wrong"
    wrong.write_text("not the password\n")
    bench = BrokerBench(
        broker,
        client,
        Credentials(username=creds.username, password_file=str(wrong)),
        Counts.smoke(),
    )
    with pytest.raises(BenchError, match="not authorised"):
        bench.connect(Endpoint("plaintext", "127.0.0.1", broker.files.plain_port))


def test_proc_stat_with_spaces_and_parentheses_in_the_name() -> None:
    stat = "42 (mos quit) to) S 1 42 42 0 -1 4194560 500 0 0 0 250 130 0 0 20 0 1 0 100"
    usage = parse_usage(42, stat, "Name:\tx\nVmRSS:\t  5120 kB\n", 100)
    assert usage == Usage(pid=42, cpu_seconds=3.8, rss_kib=5120)
    with pytest.raises(BenchError, match="VmRSS"):
        parse_usage(42, stat, "Name:\tx\n", 100)


def test_summary_and_recap() -> None:
    stats = summary([float(value) for value in range(1, 101)])
    assert (stats["median"], stats["p95"], stats["min"], stats["max"]) == (50.5, 95.0, 1.0, 100.0)
    with pytest.raises(BenchError):
        summary([])
    recap = (
        "PLAY RECAP ****\n"
        "pi-1 : ok=10 changed=2 unreachable=0 failed=0 skipped=3 rescued=0 ignored=0\n"
        "localhost : ok=4 changed=1 unreachable=0 failed=0 skipped=0 rescued=0 ignored=0\n"
    )
    assert recap_totals(recap)["changed"] == 3
    with pytest.raises(BenchError, match="RECAP"):
        recap_totals("no recap here")
