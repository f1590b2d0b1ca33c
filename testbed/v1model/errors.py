"""Errors of the v1model target, each carrying the source location it is about."""
from __future__ import annotations

from dataclasses import dataclass

from testbed.errors import TestbedError


@dataclass(frozen=True)
class Loc:
    """A position in a P4 source file (1-based line and column)."""

    file: str
    line: int
    col: int = 1

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


NOWHERE = Loc("<builtin>", 0, 0)


class P4Error(TestbedError):
    """A P4 program cannot be loaded: the message starts with file:line:col."""

    def __init__(self, loc: Loc | None, message: str):
        self.loc = loc
        self.message = message
        super().__init__(f"{loc}: error: {message}" if loc else f"error: {message}")


class PreprocessError(P4Error):
    """A preprocessor directive is malformed or an #include cannot be found."""


class ParseError(P4Error):
    """The token stream does not follow the P4_16 grammar."""


class TypeCheckError(P4Error):
    """A name is unknown, a type or width does not match, or a construct is not allowed."""


class UnsupportedError(P4Error):
    """The program is valid P4 but uses something this target cannot run."""


class CommandError(TestbedError):
    """A control-plane command (simple_switch_CLI language) is malformed or refers to
    something that does not exist. The message names the command."""


class PacketError(TestbedError):
    """A packet could not be processed (raised only for target faults, never for
    malformed input, which is counted and handled as BMv2 does)."""
