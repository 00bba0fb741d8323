"""Tables of `make bench` results, for docs/benchmarks.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.core import SATURATED, bulk_phase

TLS_LIBRARIES = ("libssl.", "libcrypto.")
BEGIN = "<!-- pisec-bench: begin (written by `make bench`; edits here are lost) -->"
END = "<!-- pisec-bench: end -->"

DESCRIPTIONS = {
    "plaintext": "plaintext + password (baseline)",
    "tls-ecdsa": "TLS, ECDSA P-256 server + password",
    "mtls-ecdsa": "mutual TLS, ECDSA P-256 server",
    "tls-rsa": "TLS, RSA-2048 server + password",
    "mtls-rsa": "mutual TLS, RSA-2048 server",
    "tls-ecdsa-nagle": "TLS, ECDSA P-256 + password, Nagle on",
    "mtls-ecdsa-nagle": "mutual TLS, ECDSA P-256, Nagle on",
    "vpn": "MQTT inside WireGuard + password",
    "vpn+tls": "TLS inside WireGuard + password",
    "mtls-aes": "mutual TLS, AES instructions, AES-GCM first",
    "mtls-noaes-aes": "mutual TLS, no AES instructions, AES-GCM first",
    "mtls-noaes-chacha20": "mutual TLS, no AES instructions, ChaCha20 first",
    "tls-aes": "TLS, AES instructions, AES-GCM first",
    "tls-noaes-aes": "TLS, no AES instructions, AES-GCM first",
    "tls-noaes-chacha20": "TLS, no AES instructions, ChaCha20 first",
}


def _name(label: str) -> str:
    return DESCRIPTIONS.get(label, label)


def _ratio(value: float, base: float | None) -> str:
    if not base:
        return "-"
    return f"{value / base:.2f}x"


def _table(header: list[str], rows: list[list[str]], text_columns: int = 1) -> list[str]:
    """A Markdown table; the first `text_columns` align left, the figures right."""
    align = ["---" if index < text_columns else "---:" for index in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _by_phase(
    measured: dict[str, Any], baselines: dict[str, Any], key: str = ""
) -> list[tuple[str, dict[str, Any], list[dict[str, Any]]]]:
    """Each set-up's baseline with the results measured beside it, in run order.

    `key` picks the baselines of one kind ("qos0": those of "PHASE/qos0").
    """
    groups = []
    for name, base in baselines.items():
        phase, _, kind = name.partition("/")
        if kind != key:
            continue
        rows = [
            result
            for result in measured.values()
            if result.get("phase") == phase and (not key or f"qos{result.get('qos')}" == key)
        ]
        groups.append((phase, base, rows))
    return groups


def _connect(broker: dict[str, Any]) -> list[str]:
    connect = broker.get("connect", {})
    if not connect:
        return []
    rows = []
    for phase, base, results in _by_phase(connect, broker.get("baselines", {})):
        base_latency = base["latency_ms"]["median"]
        base_cpu = base["cpu_ms_per_1000"]["mosquitto"]
        for result in [base, *results]:
            label = result["endpoint"]
            latency = result["latency_ms"]
            cpu = result["cpu_ms_per_1000"]
            wireguard = cpu.get("wireguard-go", 0.0)
            rows.append(
                [
                    phase,
                    _name(label),
                    f"{latency['n']:.0f}",
                    f"{latency['median']:.1f}",
                    f"{latency['p95']:.1f}",
                    f"{latency['min']:.1f}-{latency['max']:.1f}",
                    _ratio(latency["median"], base_latency),
                    f"{cpu['mosquitto']:.0f}",
                    _ratio(cpu["mosquitto"], base_cpu),
                    f"{wireguard:.0f}" if label.startswith("vpn") else "-",
                    result.get("tls_version") or "-",
                ]
            )
    return [
        "### Connect: TCP + TLS handshake + CONNECT/CONNACK",
        "",
        "Latency is measured on the client Pi, one fresh connection after another. "
        "Broker CPU is the broker's user+system time over the same connections, per "
        "1,000 connections: with a password, it includes the PBKDF2 check of each "
        "CONNECT (see the password table below); mutual TLS has none. Each set-up "
        "measures the plaintext baseline again, interleaved with its own endpoints "
        "(round by round, baseline first), and its ratios are to that baseline: the "
        "baseline's own rows show how far the machine drifted between set-ups.",
        "",
        *_table(
            [
                "set-up",
                "endpoint",
                "n",
                "median ms",
                "p95 ms",
                "min-max ms",
                "x plaintext",
                "broker CPU ms / 1,000",
                "x plaintext",
                "wireguard-go CPU ms / 1,000",
                "TLS",
            ],
            rows,
            text_columns=2,
        ),
    ]


def _cpu_ratio(connect: dict[str, Any], label: str) -> float | None:
    """The broker CPU of `label` per connect, divided by its own set-up's baseline."""
    result = connect[label]
    base = result.get("baseline", {}).get("cpu_ms_per_1000", {}).get("mosquitto")
    return result["cpu_ms_per_1000"]["mosquitto"] / base if base else None


def _handshakes(broker: dict[str, Any]) -> list[str]:
    connect = broker.get("connect", {})
    pairs = [("mtls-ecdsa", "mtls-rsa"), ("tls-ecdsa", "tls-rsa")]
    rows = []
    for ecdsa, rsa in pairs:
        if ecdsa in connect and rsa in connect:
            cpu_ecdsa = connect[ecdsa]["cpu_ms_per_1000"]["mosquitto"]
            cpu_rsa = connect[rsa]["cpu_ms_per_1000"]["mosquitto"]
            relative_ecdsa, relative_rsa = _cpu_ratio(connect, ecdsa), _cpu_ratio(connect, rsa)
            corrected = (
                f"{relative_rsa / relative_ecdsa:.2f}x"
                if relative_ecdsa and relative_rsa is not None
                else "-"
            )
            rows.append(
                [
                    "mutual TLS" if ecdsa.startswith("mtls") else "TLS + password",
                    f"{cpu_ecdsa:.0f}",
                    f"{cpu_rsa:.0f}",
                    _ratio(cpu_rsa, cpu_ecdsa),
                    corrected,
                ]
            )
    if not rows:
        return []
    return [
        "### Broker CPU per 1,000 TLS handshakes: RSA-2048 vs ECDSA P-256",
        "",
        "The two server keys need two set-ups, measured minutes apart. The last column "
        "first divides each figure by the plaintext baseline of its own set-up, which "
        "takes out a change in the machine's speed between them.",
        "",
        *_table(
            [
                "listener",
                "ECDSA P-256 ms",
                "RSA-2048 ms",
                "RSA ÷ ECDSA",
                "RSA ÷ ECDSA, each ÷ its baseline",
            ],
            rows,
        ),
    ]


def _throughput(broker: dict[str, Any]) -> list[str]:
    throughput = broker.get("throughput", {})
    if not throughput:
        return []
    rows = []
    baselines = broker.get("throughput_baselines", {})
    done: list[dict[str, Any]] = []
    for key in ("qos0", "qos1"):
        for phase, base, results in _by_phase(throughput, baselines, key):
            if base.get("bulk"):
                continue  # in the cipher table
            base_rate = base["messages_per_second"]["median"]
            base_cpu = base["broker_us_per_message"]
            for result in [base, *results]:
                done.append(result)
                rate = result["messages_per_second"]
                offered = result["offered_per_second"]["median"]
                lost = f"{result['lost']:,}"
                if result["qos"] == 0:
                    lost += f" ({result['loss_percent']:.2f}%)"
                rows.append(
                    [
                        phase,
                        _name(result["endpoint"]),
                        str(result["qos"]),
                        f"{rate['median']:,.0f} ({rate['min']:,.0f}-{rate['max']:,.0f})",
                        _ratio(rate["median"], base_rate),
                        _offered(result, offered),
                        lost,
                        f"{result['broker_us_per_message']:.1f}",
                        _ratio(result["broker_us_per_message"], base_cpu),
                        f"{result['broker_cores']:.2f}",
                        f"{result['loadgen_cores']:.2f} ({result['loadgen_busiest_cores']:.2f})",
                        _others(result["other_cores"]),
                        result["limit"],
                    ]
                )
    first = next(result for result in throughput.values() if not result.get("bulk"))
    messages = {
        result["qos"]: result["messages"]
        for result in throughput.values()
        if not result.get("bulk")
    }
    sizes = ", ".join(f"{count:,} at QoS {qos}" for qos, count in sorted(messages.items()))
    return [
        "### Publish goodput",
        "",
        f"{first['pairs']} publisher-subscriber pairs on the client Pi, each pair in a "
        f"process of its own on a topic of its own, {first['payload_bytes']:,}-byte "
        f"payloads, messages per run: {sizes}. Delivered is messages received per second, "
        "from the first publish to the last delivery (median and range of the repeated "
        "runs). At QoS 0 the publishers send as fast as TCP takes it (offered: the "
        "rate they handed it to TCP) and the loss is beside the rate. At QoS 1 each "
        "keeps 20 messages in flight (the broker's max_inflight_messages; offered: "
        "the rate the broker acknowledged them), and a run that lost any is followed "
        "by a search for the highest offered rate that loses none. Each set-up "
        "repeats the plaintext baseline, run for run, interleaved with its "
        "endpoints. CPU is counted from the start signal, after the clients have "
        "connected, and given in cores over each run: mosquitto's time per message "
        "delivered and its share of a core (it has one thread), and the load "
        "generator's processes together (the busiest one); other cores: the tunnel's "
        "processes (wireguard-go on broker and client) where they worked. Limit: what was "
        f"saturated, at least {SATURATED:.0%} of a core, or of all the cores together "
        "(shared cores); a row gives the least trustworthy of its runs' limits, and a "
        "searched row that of its first, unpaced run.",
        "",
        *_table(
            [
                "set-up",
                "endpoint",
                "QoS",
                "delivered msg/s",
                "delivered x plaintext",
                "offered msg/s",
                "lost",
                "broker µs/msg",
                "µs/msg x plaintext",
                "broker cores",
                "generator cores (busiest)",
                "other cores",
                "limit",
            ],
            rows,
            text_columns=2,
        ),
        _verdict(done, int(broker.get("cores", 0))),
        "",
    ]


def _ciphers(broker: dict[str, Any]) -> list[str]:
    """Handshakes and bulk goodput with and without the broker's AES instructions."""
    bulk = [result for result in broker.get("throughput", {}).values() if result.get("bulk")]
    rows = []
    # Each set-up's handshakes beside its bulk run (bench.run.CIPHER_SETUPS).
    for handshake in broker.get("connect", {}).values():
        moved = next((run for run in bulk if run["phase"] == bulk_phase(handshake["phase"])), None)
        if moved is None:
            continue
        cpu, base_cpu = handshake["cpu_ms_per_1000"], handshake["baseline"]["cpu_ms_per_1000"]
        size = moved["payload_bytes"]
        rate, base_rate = moved["messages_per_second"], moved["baseline"]["messages_per_second"]
        rows.append(
            [
                handshake["phase"],
                handshake.get("cipher") or "-",
                f"{handshake['latency_ms']['median']:.1f}",
                f"{cpu['mosquitto']:.0f}",
                _ratio(cpu["mosquitto"], base_cpu["mosquitto"]),
                f"{rate['median'] * size / 1e6:,.1f}",
                _ratio(rate["median"], base_rate["median"]),
                f"{moved['broker_us_per_message']:.1f}",
                _ratio(moved["broker_us_per_message"], moved["baseline"]["broker_us_per_message"]),
                f"{moved['broker_cores']:.2f}",
                f"{moved['loadgen_cores']:.2f} ({moved['loadgen_busiest_cores']:.2f})",
                moved["limit"],
            ]
        )
    if not rows:
        return []
    first = bulk[0]
    speed = broker.get("openssl_speed_mb_s", {})
    measured = ""
    if speed:
        measured = (
            "`openssl speed` on the broker, 16 KiB blocks: AES-128-GCM "
            f"{speed['aes']['aes-128-gcm']:,.0f} MB/s with AES instructions and "
            f"{speed['no_aes']['aes-128-gcm']:,.0f} MB/s without, ChaCha20-Poly1305 "
            f"{speed['aes']['chacha20-poly1305']:,.0f} and "
            f"{speed['no_aes']['chacha20-poly1305']:,.0f} MB/s (the bench stops if the mask "
            "does not slow AES-GCM down). "
        )
    return [
        "### Ciphers with and without AES instructions",
        "",
        "A Pi before the Pi 5 has no AES instructions, and there ChaCha20-Poly1305 is "
        "several times faster than AES-GCM. The stand-in is this machine with its AES "
        "instructions (AES-NI, VAES) hidden from the broker's OpenSSL "
        "(`OPENSSL_ia32cap=~0x200000200000000:~0x60000000000` in mosquitto's "
        f"environment); the client keeps its own. {measured}The client offers "
        "AES-GCM first (Python's default); the cipher is the one the broker chose, "
        "checked by the bench. Handshakes: mutual TLS connects, no password hash, "
        "broker CPU per 1,000 (x plaintext: to the password CONNECTs of the "
        "baseline, so below 1). Bulk: QoS 0 goodput of "
        f"{first['messages']:,} messages of {first['payload_bytes']:,} bytes over "
        f"{first['pairs']} pairs, where the cipher outweighs the broker's work per "
        "message; each row beside its plaintext baseline.",
        "",
        *_table(
            [
                "set-up",
                "cipher chosen",
                "handshake median ms",
                "broker CPU ms / 1,000 handshakes",
                "x plaintext",
                "bulk MB/s delivered",
                "x plaintext",
                "broker µs/msg",
                "x plaintext",
                "broker cores",
                "generator cores (busiest)",
                "limit",
            ],
            rows,
            text_columns=2,
        ),
    ]


def _others(cores: dict[str, float]) -> str:
    """The other processes' cores, those that did any work."""
    busy = [f"{name} {share:.2f}" for name, share in cores.items() if share >= 0.01]
    return ", ".join(busy) or "-"


def _offered(result: dict[str, Any], offered: float) -> str:
    """The offered rate; a search's rate when one was needed."""
    text = f"{offered:,.0f}"
    if result.get("extra_runs"):
        text += f" (searched, {result['extra_runs']} more runs)"
    return text


def _verdict(results: list[dict[str, Any]], cores: int) -> str:
    """Whether the load generator limited any row: a row's figures stand only if not."""
    busiest = max(result["loadgen_busiest_cores"] for result in results)
    limits: dict[str, int] = {}
    for result in results:
        limits[result["limit"]] = limits.get(result["limit"], 0) + 1
    counted = ", ".join(f"{limit}: {count}" for limit, count in sorted(limits.items()))
    flagged = sum(
        1
        for result in results
        if result["limit"] == "load generator" or result["loadgen_busiest_cores"] >= SATURATED
    )
    if flagged:
        return (
            f"**The load generator limited {flagged} of {len(results)} rows** (its busiest "
            f"process used {busiest:.2f} of a core): those rows measure the generator, "
            f"not the broker. Limits: {counted}."
        )
    text = (
        f"No load-generator process used {SATURATED:.0%} of a core (the busiest: "
        f"{busiest:.2f}), so none limited a row by itself. Limits over the "
        f"{len(results)} rows: {counted}."
    )
    if limits.get("shared cores"):
        text += (
            f" Where the cores were shared, broker, load generator and tunnel kept all "
            f"{cores or 'the'} cores busy together: the generator took CPU the broker "
            "could have used, so a broker with a core of its own delivers more. There, "
            "the broker's µs per message is the figure to compare."
        )
    return text


def _memory(broker: dict[str, Any]) -> list[str]:
    memory = broker.get("memory", {})
    if not memory:
        return []
    counts = sorted({int(count) for result in memory.values() for count in result["rss_kib"]})
    base = memory.get("plaintext")
    rows = []
    for label, result in memory.items():
        rss = result["rss_kib"]
        most = str(counts[-1])
        per_client = (rss[most] - rss["0"]) / counts[-1] if counts[-1] else 0.0
        rows.append(
            [
                _name(label),
                *(f"{rss[str(count)] / 1024:.1f}" for count in counts),
                f"{per_client:.1f}",
                _ratio(rss[most], base["rss_kib"][most] if base else None),
            ]
        )
    header = [
        "endpoint",
        *(("idle" if count == 0 else f"{count:,} clients") + " MiB" for count in counts),
        "KiB per client",
        f"x plaintext at {counts[-1]:,}",
    ]
    lines = [
        "### Broker resident memory (VmRSS of mosquitto)",
        "",
        "The broker is restarted before each row, then holds the clients connected. "
        + (
            f"They log in as a user whose hash has {broker['held_iterations']:,} PBKDF2 "
            "iterations: the count sets the CPU of a CONNECT, not the memory of a "
            "connected client, and 1,000 connects at pisec's own count would take minutes."
            if "held_iterations" in broker
            else ""
        ),
        "",
        *_table(header, rows),
    ]
    processes = broker.get("processes", {})
    if "wireguard-go" in processes:
        rss = processes["wireguard-go"]["rss_kib"] / 1024
        lines += [f"The VPN adds wireguard-go on the broker: {rss:.1f} MiB resident.", ""]
    return lines


# The study's Table 3 (Wismote, TinyDTLS, TLS_PSK_WITH_AES_128_CCM_8), in
# bytes: RAM and ROM of its CoAP and CoAPs client and server.
STUDY_TABLE3 = {
    "server": {"coap": (8200, 50224), "coaps": (11274, 89737)},
    "client": {"coap": (8210, 44831), "coaps": (11396, 86583)},
}
COAP_PAIRS = (
    ("server", "coap-server-notls", "coap-server-gnutls"),
    ("client", "coap-client-notls", "coap-client-gnutls"),
)


def _kib(value: float) -> str:
    return f"{value:,.0f}"


def _if(paired: bool, value: float, base: float) -> str:
    """The ratio on the row of a pair's DTLS program; nothing on the others."""
    return _ratio(value, base) if paired else ""


def _coap_added(plain: dict[str, Any], secure: dict[str, Any]) -> tuple[int, list[str]]:
    """Code KiB of the libraries the DTLS program maps and the plain one does
    not (its own binary and libcoap's -gnutls build replace theirs)."""
    added = {
        path: kib
        for path, kib in secure["files"].items()
        if path not in plain["files"] and not Path(path).name.startswith(("coap-", "libcoap-"))
    }
    names = sorted(Path(path).name.split(".so")[0] for path in added)
    return sum(added.values()), names


def _coap(results: dict[str, Any]) -> list[str]:
    coap = results.get("coap")
    if not coap:
        return []
    servers, clients = coap["servers"], coap["clients"]
    study = STUDY_TABLE3
    lines = [
        "### CoAP without and with DTLS: the study's Table 3 on a simulated Pi",
        "",
        "Debian's libcoap3 programs on the broker Pi and the client Pi: `-notls` is plain "
        "CoAP over UDP (the baseline; pisec never listens on it), `-gnutls` the same "
        "program with DTLS 1.2 and a pre-shared key, pinned by the gateway's own GnuTLS "
        f"priority file to {servers['coap-server-gnutls']['suite']}; `pisec-coapsd` is pisec's "
        "gateway (Python on the same libcoap, then MQTT QoS 1 into mosquitto). "
        "The study's column is its Wismote figure for the same pair (CoAPs over CoAP). "
        "What each can say is under the tables.",
        "",
    ]
    # The study's RAM, CoAPs and CoAP, of each role.
    study_ram = {role: (pair["coaps"][0], pair["coap"][0]) for role, pair in study.items()}
    base = servers["coap-server-notls"]
    rows = []
    for label, result in servers.items():
        idle, held, count = result["idle"], result["held"], result["sessions"]
        # The ratios are of the same program with and without DTLS;
        # pisec-coapsd is a Python process, its own row only.
        paired = label == "coap-server-gnutls"
        rows.append(
            [
                f"`{label}`",
                _kib(idle["rss_kib"]),
                _kib(idle["anonymous_kib"]),
                _kib(held["rss_kib"]),
                _kib(held["anonymous_kib"]),
                f"{(held['anonymous_kib'] - idle['anonymous_kib']) / count:.1f}",
                _if(paired, idle["rss_kib"], base["idle"]["rss_kib"]),
                _if(paired, idle["anonymous_kib"], base["idle"]["anonymous_kib"]),
                _if(paired, held["anonymous_kib"], base["held"]["anonymous_kib"]),
                _if(paired, *study_ram["server"]),
            ]
        )
    count = base["sessions"]
    lines += [
        f"**Servers, memory** (KiB, idle and with {count} sessions held at once, each with one "
        "answered request. RSS: VmRSS, the library pages it maps included. Own data: its "
        "anonymous memory, heap, stacks and written data, which no other process shares; the "
        "library pages are the code below, and private or shared depending on what else "
        "runs on the Pi):",
        "",
        *_table(
            [
                "server",
                "RSS idle",
                "own data idle",
                f"RSS, {count} sessions",
                f"own data, {count} sessions",
                "own data per session",
                "RSS idle x CoAP",
                "own data idle x CoAP",
                f"own data, {count} sessions x CoAP",
                "study RAM x CoAP",
            ],
            rows,
        ),
    ]
    plain_client = clients["coap-client-notls"]["sample"]
    rows = []
    for label, result in clients.items():
        sample = result["sample"]
        paired = label == "coap-client-gnutls"
        rows.append(
            [
                f"`{label}`",
                _kib(sample["rss_kib"]),
                _kib(sample["anonymous_kib"]),
                _kib(sample["peak_rss_kib"]),
                _if(paired, sample["rss_kib"], plain_client["rss_kib"]),
                _if(paired, sample["anonymous_kib"], plain_client["anonymous_kib"]),
                _if(paired, *study_ram["client"]),
            ]
        )
    lines += [
        "**Clients, memory** (KiB, one observed session, read after 1.5 s):",
        "",
        *_table(
            ["client", "RSS", "own data", "peak RSS", "RSS x CoAP", "own data x CoAP",
             "study RAM x CoAP"],
            rows,
        ),
    ]  # fmt: skip
    static = coap.get("static_code", {})
    images = {arch: static[arch]["programs"] for arch in ("amd64", "arm64") if arch in static}
    if images:
        rows = []
        for role, plain_label, secure_label in COAP_PAIRS:
            for label in (plain_label, secure_label):
                paired = label == secure_label
                row = [f"`{label}`"]
                for key, index in (("data_kib", 0), ("image_kib", 1)):
                    for programs in images.values():
                        value = programs[label][key]
                        row += [
                            _kib(value),
                            _ratio(value, programs[plain_label][key]) if paired else "",
                        ]
                    study_pair = (study[role]["coaps"][index], study[role]["coap"][index])
                    row.append(_ratio(*study_pair) if paired else "")
                rows.append(row)
        header = ["program"]
        for name in ("RAM", "ROM"):
            for arch in images:
                header += [f"{name}, {arch}", "x CoAP"]
            header.append(f"study {name} x CoAP")
        lines += [
            "**Measured the study's way** (KiB). The study took `size` of its firmware: RAM "
            "is data and bss, ROM is code, read-only data and initial data. Here the same, "
            "read from the ELF headers of each program and every library it links: RAM the "
            "memory size of the writable load segments, ROM the file bytes of all load "
            "segments"
            + (
                "; arm64 on an emulated arm64 Pi (the same Debian packages)"
                if "arm64" in images
                else ""
            )
            + ":",
            "",
            *_table(header, rows),
        ]
    rows = []
    for role, plain_label, secure_label in COAP_PAIRS:
        group = servers if role == "server" else clients
        plain_fp = group[plain_label]["idle" if role == "server" else "sample"]
        secure_fp = group[secure_label]["idle" if role == "server" else "sample"]
        added, names = _coap_added(plain_fp, secure_fp)
        rows += [
            [f"`{plain_label}`", _kib(plain_fp["code_kib"]), "", ""],
            [
                f"`{secure_label}`",
                _kib(secure_fp["code_kib"]),
                _ratio(secure_fp["code_kib"], plain_fp["code_kib"]),
                f"{_kib(added)} KiB: {', '.join(names)}",
            ],
        ]
    lines += [
        "**Code mapped** (KiB: the executable mappings of the running program and every "
        "library it loaded, on the trixie Pi):",
        "",
        *_table(["program", "code mapped", "x CoAP", "what DTLS adds"], rows),
    ]
    rows = []
    for label, result in servers.items():
        shakes, requests = result["handshakes"], result["requests"]
        handshake = shakes["handshake_ms"]
        rows.append(
            [
                f"`{label}`",
                f"{handshake['median']:.2f} ({handshake['p90']:.2f})" if handshake else "-",
                f"{shakes['first_answer_ms']['median']:.2f}",
                f"{shakes['server_cpu_us_each']:,.0f}",
                f"{shakes['client_cpu_us_per_session']:,.0f}",
                f"{requests['request_ms']['median']:.3f} ({requests['request_ms']['p90']:.3f})",
                f"{requests['server_cpu_us_each']:,.0f}",
                f"{requests['client_cpu_us_per_request']:,.0f}",
            ]
        )
    sessions = base["handshakes"]["first_answer_ms"]["n"]
    lines += [
        f"**Time** (ms, median and 90th percentile, from the client Pi: {sessions} "
        f"new sessions, each with one request and closed again, then "
        f"{base['requests']['request_ms']['n']:,} requests one after another on one session. "
        "CPU in microseconds each: the server's from /proc/PID/task/*/schedstat, the "
        "client tool's (Python over libcoap) from its own clock. In a request-then-answer "
        "loop the client's time is part of every latency here, so the latencies are upper "
        "bounds and the server's CPU is the figure of what the server does. "
        "`pisec-coapsd`'s request is a POST that it publishes with QoS 1 and answers after "
        "mosquitto's PUBACK):",
        "",
        *_table(
            [
                "server",
                "handshake",
                "new session to first answer",
                "server CPU per new session",
                "client CPU per new session",
                "request",
                "server CPU per request",
                "client CPU per request",
            ],
            rows,
        ),
    ]
    mosquitto = coap.get("mosquitto")
    if mosquitto:
        tls = sum(
            kib
            for path, kib in mosquitto["files"].items()
            if Path(path).name.startswith(TLS_LIBRARIES)
        )
        line = (
            f"MQTT beside it: mosquitto on the same broker Pi maps {_kib(mosquitto['code_kib'])} "
            f"KiB of code, {_kib(tls)} KiB of it OpenSSL's libssl and libcrypto: without them "
            f"it would be {_ratio(mosquitto['code_kib'], mosquitto['code_kib'] - tls)} smaller "
            "(mosquitto links OpenSSL whether or not a listener uses TLS)."
        )
        if "mosquitto" in images.get("arm64", {}):
            program = images["arm64"]["mosquitto"]
            total = program["image_kib"]
            tls_arm64 = sum(
                sizes["image_kib"]
                for path, sizes in program["files"].items()
                if Path(path).name.startswith(TLS_LIBRARIES)
            )
            line += (
                f" On arm64 its load image is {_kib(total)} KiB, {_kib(tls_arm64)} KiB of it "
                f"OpenSSL's ({_ratio(total, total - tls_arm64)})."
            )
        memory = results.get("broker", {}).get("memory", {})
        if "plaintext" in memory and "tls-ecdsa" in memory:
            per = {}
            for label in ("plaintext", "tls-ecdsa"):
                rss = memory[label]["rss_kib"]
                most = max(rss, key=int)
                per[label] = (rss[most] - rss["0"]) / int(most)
            line += (
                f" Per connected client the broker holds {per['plaintext']:.1f} KiB plaintext "
                f"and {per['tls-ecdsa']:.1f} KiB over TLS "
                f"({_ratio(per['tls-ecdsa'], per['plaintext'])}; memory table above)."
            )
        lines += [line, ""]
    return lines


def _fleet(results: dict[str, Any]) -> list[str]:
    fleet = results.get("fleet", [])
    if not fleet:
        return []
    rows = [
        [
            str(run["pis"]),
            f"{run['floor_seconds']:.1f}",
            f"{run['first_seconds']:.1f}",
            f"{run['second_seconds']:.1f}",
            _ratio(run["second_seconds"], run["floor_seconds"]),
            f"{run.get('check_seconds', 0.0):.1f}",
            f"{run.get('second_tasks_broker', 0)} / {run.get('second_tasks_client', 0)}",
            str(run["first_changed"]),
            str(run["second_changed"]),
        ]
        for run in fleet
    ]
    lines = [
        "### Provisioning: playbooks/site.yml",
        "",
        "One broker Pi, the rest client Pis with a client certificate each; the CA on this "
        "host. The floor is `ansible pisec_pis -m ansible.builtin.ping` plus fact gathering "
        "on the same hosts, in the same run. The containers are reached with `docker exec` "
        "(community.docker.docker); a real fleet uses SSH. The bench turns pipelining on "
        "for docker exec, as ansible.cfg does for SSH. The check run is `site.yml --check` "
        "on the converged fleet; tasks are those the second run executed (ok, changed or "
        "failed in its recap; skipped ones are not), on the broker and on the client Pi "
        "with the most.",
        "",
        *_table(
            [
                "Pis",
                "floor s",
                "first run s",
                "second run s",
                "second ÷ floor",
                "check run s",
                "tasks per Pi, second run (broker / client)",
                "changed (first)",
                "changed (second)",
            ],
            rows,
        ),
    ]
    for run in fleet:
        if run.get("settings"):
            # The first entry is the run the others override one key of.
            base = next(iter(run["settings"].values()))
            lines += [
                f"Ansible settings, second run of site.yml on {run['pis']} Pis, one after "
                "another (each overrides one ansible.cfg key):",
                "",
                *_table(
                    ["setting", "seconds", "x committed"],
                    [
                        [label, f"{seconds:.1f}", _ratio(seconds, base)]
                        for label, seconds in run["settings"].items()
                    ],
                ),
            ]
    return lines


def _storm(broker: dict[str, Any]) -> list[str]:
    storm = broker.get("storm", {})
    if not storm:
        return []
    rows = [
        [
            _name(label),
            f"{result['clients']:,}",
            f"{result['seconds']:.1f}",
            f"{result['first_back_seconds']:.2f}",
            f"{result['broker_cpu_seconds']:.1f}",
            f"{1000 * result['broker_cpu_seconds'] / result['clients']:.1f}",
            f"{result['loadgen_cpu_seconds']:.1f}",
            f"{result['retries']:,}",
        ]
        for label, result in storm.items()
    ]
    header = [
        "endpoint",
        "clients",
        "s until all back",
        "s until the first",
        "broker CPU s",
        "broker CPU ms per client",
        "load generator CPU s",
        "refused retries",
    ]
    workers = max(int(result["workers"]) for result in storm.values())
    return [
        "### Reconnect storm after a broker restart",
        "",
        "The clients are connected and held; then mosquitto is restarted (as a CA "
        "rollover's switch does) and every client reconnects at once: "
        f"{workers} threads of one load generator, each retrying a refused connect every "
        "50 ms while the broker is down. Seconds run from the first dropped connection "
        "to the last client back. Password clients log in with pisec's hash cost "
        "(pisec_mosquitto_password_iterations); the broker CPU is the new mosquitto "
        "process's, its start included. A load generator CPU well below the seconds "
        "shows it was not the limit.",
        "",
        *_table(header, rows),
    ]


def pis_release(results: dict[str, Any]) -> str:
    """The simulated Pis' release and architecture, from the image's tag
    (pisec/pi-systemd:<suite>-<arch>-<hash>); runs before the tag carried
    them were bookworm on amd64."""
    tag = str(results.get("image", "")).rpartition(":")[2]
    suite, _, rest = tag.partition("-")
    arch = rest.partition("-")[0]
    if suite in ("bookworm", "trixie") and arch in ("amd64", "arm64"):
        return f"{suite} ({arch})"
    return "bookworm (amd64)"


def render(results: dict[str, Any], raw: str = "docs/benchmarks.json") -> str:
    """The generated section of docs/benchmarks.md; `raw` names the JSON beside it."""
    machine = results["machine"]
    broker = results.get("broker", {})
    lines = [
        BEGIN,
        "",
        "## `make bench`: the cost of security and of provisioning",
        "",
        f"Command: `{results['command']}` ({results.get('seconds', 0):.0f} s), "
        f"{results['date']}. Machine: {machine['cpus']} x {machine['cpu']} ({machine['arch']}), "
        f"kernel {machine['kernel']}, {machine['openssl']}. Broker and client are Debian "
        f"{pis_release(results)} containers with systemd on this machine, provisioned by "
        "playbooks/site.yml; "
        "they share its cores, so compare within a table. Connect and throughput "
        "ratios are to the plaintext baseline measured in the same set-up, interleaved "
        f"with it. Raw numbers: `{raw}`.",
        "",
        *_connect(broker),
        *_handshakes(broker),
        *_throughput(broker),
        *_ciphers(broker),
        *_memory(broker),
        *_storm(broker),
        *_coap(results),
        *_fleet(results),
        END,
    ]
    return "\n".join(lines) + "\n"


def update_markdown(path: Path, section: str) -> None:
    """Replace the generated section of `path`, keeping the hand-written rest."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# pisec benchmarks\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + section.rstrip("\n") + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text, encoding="utf-8")


def headline(results: dict[str, Any]) -> str:
    """The ratios the README quotes, one line each (each to its own set-up's baseline)."""
    connect = results.get("broker", {}).get("connect", {})
    lines = []
    for label in ("tls-ecdsa", "mtls-ecdsa", "tls-rsa", "mtls-rsa", "vpn", "vpn+tls"):
        if label in connect and "baseline" in connect[label]:
            ratio = (
                connect[label]["latency_ms"]["median"]
                / connect[label]["baseline"]["latency_ms"]["median"]
            )
            lines.append(f"connect latency, {_name(label)}: {ratio:.2f}x plaintext")
    if "mtls-ecdsa" in connect and "mtls-rsa" in connect:
        raw = (
            connect["mtls-rsa"]["cpu_ms_per_1000"]["mosquitto"]
            / connect["mtls-ecdsa"]["cpu_ms_per_1000"]["mosquitto"]
        )
        line = f"broker CPU per mutual TLS handshake, RSA-2048 vs ECDSA P-256: {raw:.2f}x"
        relative_ecdsa, relative_rsa = (
            _cpu_ratio(connect, "mtls-ecdsa"),
            _cpu_ratio(connect, "mtls-rsa"),
        )
        if relative_ecdsa and relative_rsa is not None:
            line += f" ({relative_rsa / relative_ecdsa:.2f}x, each to its baseline)"
        lines.append(line)
    return "\n".join(lines)
