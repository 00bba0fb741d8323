"""The CoAPs gateway: DTLS with pre-shared keys (libcoap and GnuTLS) into
the broker, each device as its own MQTT identity. Self-contained (the
standard library only, no import from the rest of pisec): the role copies
this package onto the broker Pi."""
