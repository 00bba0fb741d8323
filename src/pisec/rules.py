"""Rules pisec applies in every place it runs, defined once.

This one file is the `pisec.rules` module of the package (the CLI), and,
through the symlink plugins/module_utils/pisec_rules.py, the
`ansible.module_utils.pisec_rules` of the modules that run on the CA host
and the filters on the controller: a serial looks the same and a
certificate is due at the same moment wherever pisec looks. Standard
library only, as Ansible ships it to hosts.
"""

from __future__ import annotations

from datetime import datetime


def serial_hex(serial: int) -> str:
    """A serial as `openssl x509 -serial` prints it: uppercase hex, whole
    bytes, no separators (a negative one, which no CA should issue, keeps
    its sign)."""
    digits = f"{abs(serial):X}"
    if len(digits) % 2:
        digits = "0" + digits
    return ("-" if serial < 0 else "") + digits


def renewal_due(
    not_before: datetime, not_after: datetime, now: datetime, fraction_left: float
) -> bool:
    """Whether a certificate valid from `not_before` to `not_after` should be
    renewed at `now`: expired, not yet valid, or with less than
    `fraction_left` of its lifetime left."""
    if now < not_before or now >= not_after:
        return True
    lifetime = (not_after - not_before).total_seconds()
    return (not_after - now).total_seconds() < lifetime * fraction_left
