"""Command-line entry points of the bundled v1model target.

    python -m testbed.v1model stf PROGRAM.p4 TEST.stf     run an STF test (exit 0 = pass)
    python -m testbed.v1model check PROGRAM.p4            load a program and report errors
    python -m testbed.v1model switch [simple_switch options] PROGRAM.p4 [-- target options]
                                                          run the switch process (see switchd.py)
    python -m testbed.v1model cli [--thrift-port P] [FILE] simple_switch_CLI stand-in (see client.py)
"""
from __future__ import annotations

import argparse
import sys

from .errors import P4Error

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_PROGRAM = 0, 1, 64, 65


def _program_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("program", help="P4_16 source file for the v1model architecture")
    p.add_argument("-I", dest="include", action="append", default=[], metavar="DIR",
                   help="add DIR to the #include search path")
    p.add_argument("-D", dest="defines", action="append", default=[], metavar="NAME[=VALUE]",
                   help="define a preprocessor macro")


def _defines(items: list[str]) -> dict:
    out = {}
    for item in items:
        name, _, value = item.partition("=")
        out[name] = value or "1"
    return out


def cmd_stf(args) -> int:
    from .stf import StfError, run_stf
    try:
        result = run_stf(args.program, args.stf, args.include, _defines(args.defines))
    except P4Error as e:
        print(e, file=sys.stderr)
        return EXIT_PROGRAM
    except StfError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    if args.verbose:
        for line in result.log:
            print(line)
    print(result.report())
    return EXIT_OK if result.passed else EXIT_FAIL


def cmd_check(args) -> int:
    from .simple_switch import SimpleSwitch
    try:
        sw = SimpleSwitch(args.program, args.include, _defines(args.defines))
    except P4Error as e:
        print(e, file=sys.stderr)
        return EXIT_PROGRAM
    except OSError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    reg = sw.registry
    print(f"{args.program}: OK ({len(reg.tables)} tables, {len(reg.registers)} registers, "
          f"{len(reg.counters) + len(reg.direct_counters)} counters, {len(reg.meters) + len(reg.direct_meters)} meters)")
    return EXIT_OK


def cmd_switch(argv: list[str]) -> int:
    from .switchd import main as switch_main
    return switch_main(argv)


def cmd_cli(argv: list[str]) -> int:
    from .client import main as cli_main
    return cli_main(argv)


PASSTHROUGH = {"switch": cmd_switch, "cli": cmd_cli}   # subcommands that parse their own argv


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in PASSTHROUGH:
        return PASSTHROUGH[argv[0]](argv[1:])
    parser = argparse.ArgumentParser(prog="python -m testbed.v1model",
                                     description="The bundled P4_16 v1model target (a BMv2 simple_switch work-alike).")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("stf", help="run an STF test against a program")
    _program_args(p)
    p.add_argument("stf", help="the .stf test file")
    p.add_argument("-v", "--verbose", action="store_true", help="print control-plane output")
    p.set_defaults(func=cmd_stf)
    p = sub.add_parser("check", help="load a program and report errors")
    _program_args(p)
    p.set_defaults(func=cmd_check)
    sub.add_parser("switch", help="run the switch process (simple_switch command line; see `switch -h`)")
    sub.add_parser("cli", help="send simple_switch_CLI commands to a running switch (see `cli -h`)")
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
