"""Mininet testbed for fault-tolerant stateful in-switch applications (RedPlane)."""
