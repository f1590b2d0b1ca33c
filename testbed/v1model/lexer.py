"""Stage 2: turn preprocessed lines into tokens.

`>` is always a token of its own; the parser joins two adjacent `>` into a shift where an
operator is expected, so `register<bit<32>>` needs no special case. Integer literals keep their
width and signedness (`8w255`, `4s-1` is `-` then `4s1`), in any base, with `_` separators.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import Loc, ParseError
from .preprocess import Line

KEYWORDS = frozenset("""
    abstract action apply bool bit const control default else enum error exit extern false
    header header_union if in inout int match_kind out package parser return select state
    string struct switch table this transition true tuple typedef type value_set varbit void
    list for
""".split())

PUNCT = ["&&&", "...", "|+|", "|-|", "<<", "<=", ">=", "==", "!=", "&&", "||", "++", "+:", "..",
         "=", ";", ",", ".", ":", "?", "(", ")", "{", "}", "[", "]", "<", ">", "+", "-", "*",
         "/", "%", "&", "|", "^", "~", "!", "@"]

_SPACE = re.compile(r"\s+")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"(?:(\d+)([ws]))?(0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+|0[dD][0-9_]+|[0-9][0-9_]*)")
_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')
_PUNCT = re.compile("|".join(re.escape(p) for p in PUNCT))


@dataclass(slots=True)
class Token:
    kind: str      # 'id', 'kw', 'int', 'str', 'op', 'eof'
    text: str
    loc: Loc
    value: object = None      # int value, or (width, signed) extra for ints
    width: int | None = None
    signed: bool = False
    adjacent: bool = False    # no whitespace before the next token
    end: int = 0              # column index just past the token (for adjacency)

    def __repr__(self) -> str:
        return f"Token({self.kind}, {self.text!r}, {self.loc})"


def parse_int_literal(text: str, loc: Loc) -> tuple[int, int | None, bool]:
    """Return (value, width or None, signed) for an integer literal's text."""
    m = _NUMBER.fullmatch(text)
    if not m:
        raise ParseError(loc, f"malformed integer literal {text!r}")
    width_s, ws, body = m.groups()
    body = body.replace("_", "")
    prefix = body[:2].lower()
    if prefix in ("0x", "0b", "0o", "0d"):
        value = int(body[2:], {"x": 16, "b": 2, "o": 8, "d": 10}[prefix[1]])
    else:
        value = int(body, 10)
    if width_s is None:
        return value, None, False
    width = int(width_s)
    signed = ws == "s"
    if width == 0 and not signed:
        raise ParseError(loc, f"integer literal {text!r} has width 0")
    return value, width, signed


def tokenize(lines: list[Line]) -> list[Token]:
    """Tokenize all lines; raises ParseError at the first character that starts no token."""
    tokens: list[Token] = []
    for line in lines:
        _tokenize_line(line, tokens)
    end = lines[-1].loc if lines else Loc("<empty>", 1, 1)
    tokens.append(Token("eof", "<end of input>", Loc(end.file, end.line + 1, 1)))
    return tokens


def _tokenize_line(line: Line, out: list[Token]) -> None:
    text, pos, n = line.text, 0, len(line.text)
    file, lineno = line.loc.file, line.loc.line
    while pos < n:
        m = _SPACE.match(text, pos)
        if m:
            pos = m.end()
            continue
        loc = Loc(file, lineno, pos + 1)
        prev = out[-1] if out else None
        if prev is not None and prev.loc.line == lineno and prev.loc.file == file and prev.end == pos:
            prev.adjacent = True
        tok, pos = _one_token(text, pos, loc)
        tok.end = pos
        out.append(tok)


def _one_token(text: str, pos: int, loc: Loc) -> tuple[Token, int]:
    c = text[pos]
    if c.isdigit():
        m = _NUMBER.match(text, pos)
        end = m.end()
        if end < len(text) and (text[end].isalnum() or text[end] == "_"):
            bad = _IDENT.match(text, end)
            raise ParseError(loc, f"malformed integer literal {text[pos:(bad.end() if bad else end + 1)]!r}")
        value, width, signed = parse_int_literal(m.group(0), loc)
        return Token("int", m.group(0), loc, value, width, signed), end
    if c.isalpha() or c == "_":
        m = _IDENT.match(text, pos)
        word = m.group(0)
        return Token("kw" if word in KEYWORDS else "id", word, loc), m.end()
    if c == '"':
        m = _STRING.match(text, pos)
        if not m:
            raise ParseError(loc, "unterminated string literal")
        return Token("str", m.group(0), loc, _unescape(m.group(0)[1:-1])), m.end()
    m = _PUNCT.match(text, pos)
    if not m:
        raise ParseError(loc, f"unexpected character {c!r}")
    return Token("op", m.group(0), loc), m.end()


def _unescape(s: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), s)
