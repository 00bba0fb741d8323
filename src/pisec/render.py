"""What `pisec` prints: for people, tables and `pisec inspect`'s text (the
sections of `openssl x509 -text -noout`, with what a person wants first:
days left, fingerprint, CA, self-signed); for machines, the `--json` shape
of each command. The CLI only parses, calls and picks one of these."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from pisec.facts import Facts
from pisec.fleet import HostReport
from pisec.oids import colon_hex
from pisec.probe import Check, ProbeResult
from pisec.probe_coaps import CoapsProbeResult
from pisec.verify import VerifyResult


@dataclass(frozen=True)
class Style:
    """ANSI styling when writing to a terminal, nothing otherwise."""

    enabled: bool

    def _wrap(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.enabled else text

    def bold(self, text: str) -> str:
        return self._wrap("1", text)

    def good(self, text: str) -> str:
        return self._wrap("32", text)

    def warn(self, text: str) -> str:
        return self._wrap("33", text)

    def bad(self, text: str) -> str:
        return self._wrap("31", text)


def _openssl_time(moment: datetime) -> str:
    text = moment.astimezone(UTC).strftime("%b %d %H:%M:%S %Y GMT")
    # openssl pads the day with a space, not a zero.
    return text[:4] + (" " + text[5] if text[4] == "0" else text[4:6]) + text[6:]


def _days_text(facts: Facts, style: Style) -> str:
    if facts.days_left is None:
        return ""
    if facts.validity == "not yet valid" and facts.not_before is not None:
        days = facts.starts_in_days or 0
        when = f"in {days} days" if days else "in less than a day"
        return style.bad(f"NOT YET VALID: starts {facts.not_before:%Y-%m-%d} ({when})")
    if facts.days_left < 0:
        return style.bad(f"expired {-facts.days_left} days ago")
    text = f"{facts.days_left} days left"
    return style.warn(text) if facts.days_left < 30 else style.good(text)


def _issuer_text(facts: Facts) -> str:
    if facts.self_signed:
        return "self-signed"
    if facts.self_signed is None and facts.issuer == facts.subject:
        return "self-issued (signature not checked)"
    return "issued by " + (facts.issuer_text or "")


def render_text(facts: Facts, out: TextIO, style: Style) -> None:
    title = "Certificate" if facts.kind == "certificate" else "Certificate Request"
    out.write(style.bold(f"{facts.source} [{facts.index}] {title} ({facts.encoding})") + "\n")
    summary = [facts.subject_text or "(empty subject)"]
    if facts.kind == "certificate":
        summary.append(_days_text(facts, style))
        summary.append("CA" if facts.is_ca else "not a CA")
        summary.append(_issuer_text(facts))
    elif facts.signature_valid is None:
        summary.append(style.warn("signature not checked (unsupported algorithm)"))
    else:
        summary.append("signature valid" if facts.signature_valid else style.bad("BAD SIGNATURE"))
    out.write("    " + " | ".join(summary) + "\n")
    for problem in facts.problems:
        out.write("    " + style.bad(f"problem: {problem}") + "\n")
    out.write(f"    SHA-256 Fingerprint: {facts.fingerprint_sha256}\n")
    out.write("    Data:\n")
    out.write(f"        Version: {facts.version} (0x{(facts.version or 1) - 1:x})\n")
    if facts.serial is not None:
        serial_bytes = bytes.fromhex(facts.serial.lstrip("-"))
        out.write(f"        Serial Number:\n            {colon_hex(serial_bytes, upper=False)}\n")
        out.write(f"        Signature Algorithm: {facts.signature_algorithm}\n")
        out.write(f"        Issuer: {facts.issuer_text}\n")
        out.write("        Validity\n")
        if facts.not_before and facts.not_after:
            out.write(f"            Not Before: {_openssl_time(facts.not_before)}\n")
            out.write(f"            Not After : {_openssl_time(facts.not_after)}\n")
    out.write(f"        Subject: {facts.subject_text}\n")
    out.write("        Subject Public Key Info:\n")
    key = facts.public_key
    out.write(f"            Public Key Algorithm: {key.algorithm}\n")
    if key.heading:
        out.write(f"                {key.heading}\n")
    if key.asn1_curve:
        out.write(f"                ASN1 OID: {key.asn1_curve}\n")
        if key.curve and key.curve.startswith("P-"):
            out.write(f"                NIST CURVE: {key.curve}\n")
    if facts.extensions:
        heading = "X509v3 extensions" if facts.kind == "certificate" else "Requested Extensions"
        out.write(f"        {heading}:\n")
        for extension in facts.extensions:
            critical = " critical" if extension.critical else ""
            out.write(f"            {extension.title}:{critical}\n")
            for line in extension.lines:
                out.write(f"                {line}\n")
    out.write(f"    Signature Algorithm: {facts.signature_algorithm}\n")


def verify_json(result: VerifyResult) -> dict[str, Any]:
    return {
        "certificate": result.certificate,
        "subject": result.subject,
        "serial": result.serial,
        "at": result.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "chain": list(result.chain),
        "checks": [dataclasses.asdict(check) for check in result.checks],
        "ok": result.ok,
    }


def render_verify(result: VerifyResult, out: TextIO) -> None:
    out.write(f"certificate  {result.certificate}\n")
    out.write(f"subject      {result.subject}\n")
    out.write(f"serial       {result.serial}\n\n")
    width = max(len(check.name) for check in result.checks)
    for check in result.checks:
        out.write(f"{check.status.upper():<4}  {check.name:<{width}}  {check.detail}\n")


def _iso_or_none(moment: Any) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def fleet_json(report: HostReport, only_due: bool) -> dict[str, Any]:
    return {
        "host": report.host,
        "reachable": report.reachable,
        "error": report.error,
        "certificates": [
            {
                "role": item.role,
                "path": item.path,
                "serial": item.serial,
                "not_before": _iso_or_none(item.not_before),
                "not_after": _iso_or_none(item.not_after),
                "days_left": item.days_left,
                "due": item.due,
                "problem": item.problem,
            }
            for item in report.items
            if item.due or not only_due
        ],
    }


def render_fleet(reports: list[HostReport], only_due: bool, out: TextIO) -> None:
    rows = [("HOST", "WHAT", "SERIAL", "NOT AFTER", "DAYS", "STATUS")]
    for report in reports:
        if not report.reachable:
            rows.append((report.host, "-", "-", "-", "-", f"UNREACHABLE {report.error}"))
            continue
        for item in report.items:
            if only_due and not item.due:
                continue
            if item.problem:
                status = item.problem
            elif item.days_left is not None and item.days_left < 0:
                status = "EXPIRED"
            else:
                status = "DUE" if item.due else "ok"
            rows.append(
                (
                    report.host,
                    item.role,
                    item.serial or "-",
                    (_iso_or_none(item.not_after) or "-")[:10],
                    "-" if item.days_left is None else str(item.days_left),
                    status,
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        out.write("  ".join([*cells, row[-1]]).rstrip() + "\n")


def probe_json(result: ProbeResult | CoapsProbeResult) -> dict[str, Any]:
    data = dataclasses.asdict(result)
    data["ok"] = result.ok
    return data


def render_probe(result: ProbeResult | CoapsProbeResult, out: TextIO) -> None:
    if isinstance(result, CoapsProbeResult):
        _render_facts_and_checks(
            [
                ("server", result.target),
                ("identity", result.identity),
                ("dtls version", result.protocol),
                ("cipher", result.cipher),
                ("handshake", _ms(result.handshake_ms)),
                ("topic", result.topic),
                ("coap answer", result.coap_code),
                ("request", _ms(result.request_ms)),
                ("delivered", _ms(result.delivered_ms)),
            ],
            result.checks,
            out,
        )
        return
    facts = [
        ("broker", result.target),
        ("tls version", result.tls_version),
        ("cipher", result.cipher),
        ("server certificate", result.server_subject),
        ("serial", result.server_serial),
        ("days left", None if result.server_days_left is None else str(result.server_days_left)),
        ("round trip", None if result.round_trip_ms is None else f"{result.round_trip_ms:.1f} ms"),
        (
            "dropped messages",
            None
            if result.dropped_messages is None
            else f"{result.dropped_messages} since the broker started (queues full)",
        ),
    ]
    _render_facts_and_checks(facts, result.checks, out)


def _ms(value: float | None) -> str | None:
    return None if value is None else f"{value:.1f} ms"


def _render_facts_and_checks(
    facts: list[tuple[str, str | None]], checks: tuple[Check, ...], out: TextIO
) -> None:
    width = max(len(name) for name, _ in facts)
    for name, value in facts:
        if value is not None:
            out.write(f"{name:<{width}}  {value}\n")
    out.write("\n")
    check_width = max((len(check.name) for check in checks), default=0)
    for check in checks:
        mark = "PASS" if check.ok else "FAIL"
        out.write(f"{mark}  {check.name:<{check_width}}  {check.detail}\n")
