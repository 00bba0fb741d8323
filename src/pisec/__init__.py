"""pisec: controller-side helpers for TLS-secured Mosquitto on Raspberry Pi fleets."""

__version__ = "0.1.0"
