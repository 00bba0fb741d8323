"""pisec's benchmark harness (`make bench`): what TLS, the VPN and
provisioning cost, measured on simulated Pis. A development tool, not part
of the pisec package; it needs PyYAML (the `bench` extra) and docker."""
