"""A conformance kit for speaker firmware: ``loa conformance`` drives any speaker
through a scripted session over MQTT and prints a pass/fail table against
docs/protocol.md (docs/conformance.md). It uses only ``devices/`` (the wire protocol)
and the controller's signing key; it never imports ``firmware_sim``."""
