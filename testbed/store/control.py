"""The store's control socket: a UNIX stream socket, one command per line, one JSON reply per
line (``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``).

Commands:
    ping                     liveness
    role                     head/tail, prev, next, next_live, next_synced, predecessors
    stats                    the stats dump (as written to --stats-file)
    dump_stats               write the stats file now; replies with its path
    set_next HOST[:PORT]|none   new successor (full-state sync first; replies synced true/false)
                                or none = become the tail
    set_prev IP|any|none     predecessor address (connections from others are closed),
                             none = become the head
    get KEY                  one key's state (KEY in decimal or 0x hex)
    dump                     every key's state
    checkpoint_put NAME JSON save a control-plane checkpoint (the S1 baseline, testbed/checkpoint.py)
    checkpoint_get NAME      the last checkpoint saved under NAME (null if none)

The socket lives in the filesystem, so the testbed can reach a store running in a Mininet
host's network namespace from the root namespace. `send_command` is a blocking client.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import stat
from typing import TYPE_CHECKING, Awaitable, Callable

from testbed.store import StoreError

if TYPE_CHECKING:
    from testbed.store.server import StoreServer

log = logging.getLogger("testbed.store.control")


class ControlError(StoreError):
    """A control command failed; the message names the command and the reason."""


async def _ping(store: "StoreServer", arg: str) -> dict:
    return {"pid": os.getpid()}


async def _role(store: "StoreServer", arg: str) -> dict:
    return store.role()


async def _stats(store: "StoreServer", arg: str) -> dict:
    return {"stats": store.stats()}


async def _dump_stats(store: "StoreServer", arg: str) -> dict:
    path = store.write_stats()
    if path is None:
        raise ControlError("dump_stats: the store was started without --stats-file")
    return {"path": path}


async def _set_next(store: "StoreServer", arg: str) -> dict:
    return await store.set_next(_required(arg, "set_next HOST[:PORT]|none"))


async def _set_prev(store: "StoreServer", arg: str) -> dict:
    return store.set_prev(_required(arg, "set_prev IP|any|none"))


async def _get(store: "StoreServer", arg: str) -> dict:
    text = _required(arg, "get KEY")
    try:
        key = int(text, 0)
    except ValueError:
        raise ControlError(f"get: key {text!r} is not a decimal or 0x-hex integer") from None
    return {"key": key, "state": store.key_state(key)}


async def _dump(store: "StoreServer", arg: str) -> dict:
    return {"keys": store.dump()}


async def _checkpoint_put(store: "StoreServer", arg: str) -> dict:
    name, _, blob = _required(arg, "checkpoint_put NAME JSON").partition(" ")
    try:
        store.checkpoints[name] = json.loads(blob)
    except ValueError:
        raise ControlError(f"checkpoint_put: the checkpoint for {name!r} is not JSON") from None
    return {"name": name}


async def _checkpoint_get(store: "StoreServer", arg: str) -> dict:
    name = _required(arg, "checkpoint_get NAME")
    return {"name": name, "checkpoint": store.checkpoints.get(name)}


def _required(arg: str, usage: str) -> str:
    if not arg:
        raise ControlError(f"missing argument; usage: {usage}")
    return arg


Handler = Callable[["StoreServer", str], Awaitable[dict]]
COMMANDS: dict[str, Handler] = {
    "ping": _ping, "role": _role, "stats": _stats, "dump_stats": _dump_stats,
    "set_next": _set_next, "set_prev": _set_prev, "get": _get, "dump": _dump,
    "checkpoint_put": _checkpoint_put, "checkpoint_get": _checkpoint_get,
}


async def execute(store: "StoreServer", line: str) -> dict:
    """Run one command line against `store`; always returns a reply dict."""
    name, _, arg = line.strip().partition(" ")
    handler = COMMANDS.get(name)
    if handler is None:
        return {"ok": False, "error": f"unknown command {name!r}; known: {', '.join(COMMANDS)}"}
    try:
        return {"ok": True, **await handler(store, arg.strip())}
    except StoreError as exc:
        return {"ok": False, "error": str(exc)}


class ControlServer:
    """Owns the control socket file: creates it in `start`, removes it in `close`."""

    def __init__(self, path: str, store: "StoreServer") -> None:
        self.path = path
        self._store = store
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        """Bind the socket; a stale socket file at `path` is replaced, any other file is not."""
        self._remove_stale_socket()
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=self.path)
        except OSError as exc:
            raise StoreError(f"--control {self.path}: cannot bind: {exc}") from None

    def _remove_stale_socket(self) -> None:
        try:
            mode = os.lstat(self.path).st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            raise StoreError(f"--control {self.path}: exists and is not a socket")
        os.unlink(self.path)

    async def close(self) -> None:
        """Stop serving and remove the socket file."""
        if self._server is None:
            return
        self._server.close()
        await self._server.wait_closed()
        self._server = None
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                reply = await execute(self._store, line.decode(errors="replace"))
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except (OSError, ValueError) as exc:
            log.debug("control connection failed: %s", exc)
        finally:
            writer.close()


def send_command(path: str, command: str, timeout: float = 10.0) -> dict:
    """Send one command to the store's control socket and return its reply (blocking).
    Raises `ControlError` if the socket is unreachable, times out, or the reply is not ok."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(command.encode() + b"\n")
            reply = _read_line(sock)
    except OSError as exc:
        raise ControlError(f"control socket {path}: {command!r} failed: {exc}") from None
    return _checked(path, command, reply)


async def async_send_command(path: str, command: str, timeout: float = 10.0) -> dict:
    """`send_command` for callers inside an event loop."""
    async def exchange() -> bytes:
        reader, writer = await asyncio.open_unix_connection(path)
        try:
            writer.write(command.encode() + b"\n")
            return await reader.readline()
        finally:
            writer.close()
    try:
        reply = await asyncio.wait_for(exchange(), timeout)
    except (OSError, asyncio.TimeoutError) as exc:
        raise ControlError(f"control socket {path}: {command!r} failed: {exc!r}") from None
    return _checked(path, command, reply)


def _read_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _checked(path: str, command: str, reply: bytes) -> dict:
    try:
        answer = json.loads(reply)
    except ValueError:
        raise ControlError(f"control socket {path}: {command!r}: bad reply {reply[:80]!r}") from None
    if not answer.get("ok"):
        raise ControlError(f"control socket {path}: {command!r}: {answer.get('error')}")
    return answer
