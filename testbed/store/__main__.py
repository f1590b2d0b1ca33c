"""CLI of the state store: ``python -m testbed.store --app nat --shard 0 ...``.

Prints ``READY {json}`` on stdout once every socket is bound. SIGUSR1 writes the stats file
(or prints ``STATS {json}`` when there is none); SIGTERM / SIGINT stop the store cleanly and
write the stats file. Exit codes: 0 clean stop, 1 startup error (message on stderr), 2 usage.
"""
from __future__ import annotations

import argparse
import dataclasses
import asyncio
import json
import logging
import signal
import sys

from testbed.errors import TestbedError
from testbed.redplane import protocol
from testbed.store.chain import Endpoint
from testbed.store.server import StoreConfig, StoreServer

log = logging.getLogger("testbed.store")

EPILOG = """\
Roles: the head is the replica started with --prev none (the default); only it serves
switch requests. The tail is the replica with --next none (the default); only it sends acks.
Chain A -> B -> C of shard 0:
  C: --listen IP_C --prev IP_B
  B: --listen IP_B --prev IP_A --next IP_C
  A: --listen IP_A --next IP_B
Reconfiguration over --control (see testbed.store.control): head failed: B `set_prev none`,
then re-point the switches at B. Middle failed: C `set_prev IP_A`, then A `set_next IP_C`.
Tail failed: B `set_next none`.
Readiness: one line `READY {"pid", "app", "shard", "udp": [ip, port], "repl": [ip, port],
"control", "head", "tail", ...}` on stdout.
"""


def _port_or_source(text: str) -> int | None:
    if text == "source":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number or 'source', got {text!r}")


def _none_or(text: str) -> str | None:
    return None if text.lower() == "none" else text


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (flags documented in --help)."""
    p = argparse.ArgumentParser(prog="python -m testbed.store", epilog=EPILOG,
                                description="RedPlane state store: one replica of one shard.",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--app", required=True, choices=sorted(protocol.APP_LAYOUTS),
                   help="app whose message layout this store serves")
    p.add_argument("--shard", type=int, default=0, help="shard index served (default 0)")
    p.add_argument("--shards", type=int, default=1, dest="n_shards",
                   help="number of shards; requests whose key does not hash here (crc32 mod "
                        "shards) are counted as misrouted and dropped (default 1)")
    p.add_argument("--listen", default="0.0.0.0", help="address to bind (default 0.0.0.0)")
    p.add_argument("--port", type=int, default=None, dest="udp_port",
                   help="UDP request port (default 8000 + shard; 0 = any free port)")
    p.add_argument("--repl-port", type=int, default=None,
                   help="TCP replication port (default --port + 1000; 0 = any free port)")
    p.add_argument("--lease-ms", type=float, default=1000.0, help="lease period L in ms "
                   "(default 1000)")
    p.add_argument("--next", type=_none_or, default=None, metavar="HOST[:PORT]|none",
                   help="successor replica (port default 9000 + shard); none = this is the tail")
    p.add_argument("--prev", type=_none_or, default=None, metavar="IP|any|none",
                   help="address the predecessor connects from (any = anyone); none = this "
                        "is the head (default)")
    p.add_argument("--switch-port", type=_port_or_source, default=protocol.SWITCH_PORT,
                   metavar="PORT|source", help="UDP port acks go to (default 4000); 'source' "
                   "= the request's source port, switches told apart by address:port (tests)")
    p.add_argument("--control", default=None, metavar="PATH",
                   help="UNIX socket for control commands (set_next, set_prev, role, stats...)")
    p.add_argument("--stats-file", default=None, metavar="PATH",
                   help="JSON stats dump written on SIGUSR1 and at exit")
    p.add_argument("--mirror-values", action="store_true",
                   help="also commit value -> key with every write (NAT's reverse mapping; the "
                        "switch keeps both keys on one shard)")
    p.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    return p


def config_from_args(args: argparse.Namespace) -> StoreConfig:
    """A validated `StoreConfig` from parsed arguments."""
    config = StoreConfig(app=args.app, shard=args.shard, n_shards=args.n_shards,
                         listen=args.listen, udp_port=args.udp_port, repl_port=args.repl_port,
                         lease_ms=args.lease_ms, prev=args.prev, switch_port=args.switch_port,
                         control=args.control, stats_file=args.stats_file,
                         mirror_values=args.mirror_values)
    config.validate()
    if args.next is None:
        return config
    default_port = protocol.replication_port(config.shard)
    return dataclasses.replace(config, next=Endpoint.parse(args.next, default_port))


def _on_usr1(server: StoreServer) -> None:
    try:
        if server.write_stats() is None:
            print("STATS " + json.dumps(server.stats(), sort_keys=True), flush=True)
    except TestbedError as exc:
        log.error("%s", exc)


async def serve(config: StoreConfig) -> None:
    """Run one store replica until SIGTERM or SIGINT; the stats file is written at exit."""
    loop = asyncio.get_running_loop()
    server = StoreServer(config)
    info = await server.start()  # releases what it bound if it fails
    stop = asyncio.Event()
    try:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGUSR1, _on_usr1, server)
        print("READY " + json.dumps(info), flush=True)
        await stop.wait()
    finally:
        await server.stop()
        server.write_stats()


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        asyncio.run(serve(config_from_args(args)))
    except TestbedError as exc:
        print(f"store: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
