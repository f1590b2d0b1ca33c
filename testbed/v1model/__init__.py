"""The bundled v1model target: a P4_16 interpreter that behaves like BMv2's simple_switch.

    from testbed.v1model import load
    sw = load("prog.p4")                       # parse, check and compile the program
    sw.cli("table_add ipv4_lpm forward 10.0.0.0/8 => 1")
    out = sw.send(0, packet_bytes)             # [(port, bytes), ...]

Stages: preprocess -> lexer -> parser -> checker -> elaborate/lower -> simple_switch (run).
"""
from .errors import CommandError, P4Error


def load(program: str, **options):
    """Load a P4_16 v1model program; see SimpleSwitch for the options (clock, seed, ...)."""
    from .simple_switch import SimpleSwitch
    return SimpleSwitch(program, **options)


__all__ = ["load", "P4Error", "CommandError"]
