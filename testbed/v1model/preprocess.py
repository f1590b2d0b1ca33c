"""Stage 1: the C-style preprocessor that p4c runs before parsing.

Supports `#include "x"` (relative to the including file, then the include path) and `#include <x>`
(include path only), object-like and function-like `#define` (with `#` stringify and `##` paste),
`#undef`, `#ifdef/#ifndef/#if/#elif/#else/#endif` with `defined(X)`, `#error`, and ignores
`#pragma` and `#line`. The output is a list of logical lines, each tagged with the file and line
it came from, so later stages report errors at the user's source position.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from .errors import Loc, PreprocessError

INCLUDE_DIR = os.path.join(os.path.dirname(__file__), "include")
MAX_INCLUDE_DEPTH = 64
MAX_EXPANSION_DEPTH = 200

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TOKEN = re.compile(
    r'"(?:[^"\\]|\\.)*"'          # string
    r"|'(?:[^'\\]|\\.)*'"         # char
    r"|[A-Za-z_][A-Za-z0-9_]*"    # identifier
    r"|\d[\w]*"                   # number (loose)
    r"|##|\S"                     # paste operator or any other char
    r"|\s+")


@dataclass
class Line:
    """One logical source line after preprocessing."""

    text: str
    loc: Loc


@dataclass
class Macro:
    name: str
    body: str
    params: list[str] | None = None  # None for object-like macros
    variadic: bool = False


@dataclass
class _Cond:
    """State of one #if group: whether a branch was taken and whether we emit now."""

    parent_active: bool
    taken: bool
    active: bool
    seen_else: bool = False
    loc: Loc | None = None


@dataclass
class Preprocessor:
    include_path: list[str] = field(default_factory=lambda: [INCLUDE_DIR])
    macros: dict[str, Macro] = field(default_factory=dict)

    def define(self, name: str, body: str = "1") -> None:
        self.macros[name] = Macro(name, body)

    def run(self, path: str) -> list[Line]:
        """Preprocess the file at `path` and everything it includes."""
        out: list[Line] = []
        self._file(os.path.abspath(path), out, depth=0)
        return out

    def run_text(self, text: str, name: str = "<string>") -> list[Line]:
        out: list[Line] = []
        self._text(text, name, os.getcwd(), out, depth=0)
        return out

    # -- files and lines ---------------------------------------------------------------------
    def _file(self, path: str, out: list[Line], depth: int, loc: Loc | None = None) -> None:
        if depth > MAX_INCLUDE_DEPTH:
            raise PreprocessError(loc, f"#include nested deeper than {MAX_INCLUDE_DEPTH} (recursive include?)")
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError as e:
            raise PreprocessError(loc, f"cannot read {path}: {e.strerror}") from None
        self._text(text, _display(path), os.path.dirname(path), out, depth)

    def _text(self, text: str, name: str, here: str, out: list[Line], depth: int) -> None:
        conds: list[_Cond] = []
        for lineno, raw in _logical_lines(strip_comments(text, name)):
            loc = Loc(name, lineno, 1)
            stripped = raw.lstrip()
            if stripped.startswith("#"):
                self._directive(stripped[1:].strip(), loc, here, out, depth, conds)
            elif _active(conds):
                out.append(Line(self.expand(raw, loc), loc))
        if conds:
            raise PreprocessError(conds[-1].loc, "#if without matching #endif")

    # -- directives --------------------------------------------------------------------------
    def _directive(self, d: str, loc: Loc, here: str, out: list[Line], depth: int,
                   conds: list[_Cond]) -> None:
        m = _IDENT.match(d)
        name = m.group(0) if m else ""
        rest = d[len(name):].strip()
        if name in ("if", "ifdef", "ifndef", "elif", "else", "endif"):
            self._conditional(name, rest, loc, conds)
        elif not _active(conds) or name in ("", "pragma", "line"):
            return
        elif name == "include":
            self._include(rest, loc, here, out, depth)
        elif name == "define":
            self._define(rest, loc)
        elif name == "undef":
            self.macros.pop(rest.strip(), None)
        elif name == "error":
            raise PreprocessError(loc, f"#error {rest}")
        elif name == "warning":
            return
        else:
            raise PreprocessError(loc, f"unknown preprocessor directive #{name}")

    def _conditional(self, kind: str, rest: str, loc: Loc, conds: list[_Cond]) -> None:
        if kind in ("if", "ifdef", "ifndef"):
            parent = _active(conds)
            value = parent and self._condition(kind, rest, loc)
            conds.append(_Cond(parent, value, value, loc=loc))
            return
        if not conds:
            raise PreprocessError(loc, f"#{kind} without #if")
        top = conds[-1]
        if kind == "endif":
            conds.pop()
        elif top.seen_else:
            raise PreprocessError(loc, f"#{kind} after #else")
        elif kind == "else":
            top.seen_else = True
            top.active = top.parent_active and not top.taken
            top.taken = top.taken or top.active
        else:  # elif
            top.active = top.parent_active and not top.taken and self._condition("if", rest, loc)
            top.taken = top.taken or top.active

    def _condition(self, kind: str, rest: str, loc: Loc) -> bool:
        if kind in ("ifdef", "ifndef"):
            m = _IDENT.match(rest)
            if not m:
                raise PreprocessError(loc, f"#{kind} needs a macro name")
            return (m.group(0) in self.macros) == (kind == "ifdef")
        return _eval_condition(self.expand(_replace_defined(rest, self.macros), loc), loc)

    def _include(self, rest: str, loc: Loc, here: str, out: list[Line], depth: int) -> None:
        rest = self.expand(rest, loc).strip()
        m = re.fullmatch(r'"([^"]+)"|<([^>]+)>', rest)
        if not m:
            raise PreprocessError(loc, f'#include expects "file" or <file>, got {rest!r}')
        quoted, angled = m.group(1), m.group(2)
        dirs = ([here] if quoted else []) + self.include_path
        target = quoted or angled
        for d in dirs:
            candidate = os.path.join(d, target)
            if os.path.isfile(candidate):
                self._file(os.path.abspath(candidate), out, depth + 1, loc)
                return
        raise PreprocessError(loc, f"#include file {target!r} not found (searched: {', '.join(dirs)})")

    def _define(self, rest: str, loc: Loc) -> None:
        m = _IDENT.match(rest)
        if not m:
            raise PreprocessError(loc, "#define needs a macro name")
        name = m.group(0)
        after = rest[m.end():]
        if after.startswith("("):
            close = after.find(")")
            if close < 0:
                raise PreprocessError(loc, f"#define {name}: missing ')' in parameter list")
            params = [p.strip() for p in after[1:close].split(",") if p.strip()]
            variadic = bool(params) and params[-1] == "..."
            if variadic:
                params[-1] = "__VA_ARGS__"
            self.macros[name] = Macro(name, after[close + 1:].strip(), params, variadic)
        else:
            self.macros[name] = Macro(name, after.strip())

    # -- macro expansion ---------------------------------------------------------------------
    def expand(self, text: str, loc: Loc, hidden: frozenset = frozenset(), depth: int = 0) -> str:
        """Expand macros in `text`; a macro is not re-expanded inside its own expansion."""
        if depth > MAX_EXPANSION_DEPTH:
            raise PreprocessError(loc, "macro expansion too deep (recursive macro?)")
        if not self.macros or not _IDENT.search(text):
            return text
        tokens = _TOKEN.findall(text)
        out: list[str] = []
        i = 0
        while i < len(tokens):
            tok = tokens[i]
            macro = self.macros.get(tok)
            if macro is None or tok in hidden:
                out.append(tok)
                i += 1
                continue
            if macro.params is None:
                body = macro.body
                i += 1
            else:
                parsed = _call_args(tokens, i + 1)
                if parsed is None:  # a function-like macro name not followed by '('
                    out.append(tok)
                    i += 1
                    continue
                args, i = parsed
                body = self._substitute(macro, args, loc, hidden, depth)
            out.append(self.expand(body, loc, hidden | {tok}, depth + 1))
        return "".join(out)

    def _substitute(self, macro: Macro, args: list[str], loc: Loc, hidden: frozenset, depth: int) -> str:
        params = macro.params or []
        if macro.variadic and len(args) >= len(params):
            args = args[:len(params) - 1] + [",".join(args[len(params) - 1:])]
        if args == [""] and not params:
            args = []
        if len(args) != len(params):
            raise PreprocessError(loc, f"macro {macro.name} expects {len(params)} arguments, got {len(args)}")
        raw = {p: a.strip() for p, a in zip(params, args)}
        expanded = {p: self.expand(a, loc, hidden, depth + 1) for p, a in raw.items()}
        toks = _TOKEN.findall(macro.body)
        out: list[str] = []
        i = 0
        while i < len(toks):
            t = toks[i]
            nxt = _next_nonspace(toks, i + 1)
            if t == "#" and nxt is not None and toks[nxt] in raw:
                out.append('"' + raw[toks[nxt]].replace('"', '\\"') + '"')
                i = nxt + 1
            elif t == "##":
                while out and out[-1].isspace():
                    out.pop()
                if nxt is not None:
                    out.append(raw.get(toks[nxt], toks[nxt]))
                    i = nxt + 1
                else:
                    i += 1
            elif t in raw:
                pasted = nxt is not None and toks[nxt] == "##"
                out.append(raw[t] if pasted else expanded[t])
                i += 1
            else:
                out.append(t)
                i += 1
        return "".join(out)


# -- helpers ---------------------------------------------------------------------------------
def _display(path: str) -> str:
    """Show paths below the working directory relative to it, others as they are."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel == ".." or rel.startswith("../") else rel


def _active(conds: list[_Cond]) -> bool:
    return all(c.active for c in conds)


def strip_comments(text: str, name: str) -> str:
    """Replace // and /* */ comments by spaces, keeping newlines (and so line numbers)."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = _string_end(text, i)
            out.append(text[i:j])
            i = j
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            if j < 0:
                line = text.count("\n", 0, i) + 1
                raise PreprocessError(Loc(name, line, 1), "unterminated /* comment")
            out.append("".join(ch if ch == "\n" else " " for ch in text[i:j + 2]))
            i = j + 2
        else:
            j = _next_special(text, i)
            out.append(text[i:j])
            i = j
    return "".join(out)


_SPECIAL = re.compile(r'["/]')


def _next_special(text: str, i: int) -> int:
    m = _SPECIAL.search(text, i + 1)
    return m.start() if m else len(text)


def _string_end(text: str, i: int) -> int:
    j = i + 1
    while j < len(text) and text[j] not in '"\n':
        j += 2 if text[j] == "\\" else 1
    return min(j + 1, len(text))


def _logical_lines(text: str):
    """Yield (first line number, text) for each line, joining backslash continuations."""
    pending, start = [], 0
    for lineno, line in enumerate(text.split("\n"), 1):
        if not pending:
            start = lineno
        if line.endswith("\\"):
            pending.append(line[:-1])
            continue
        pending.append(line)
        yield start, " ".join(pending) if len(pending) > 1 else pending[0]
        pending = []
    if pending:
        yield start, " ".join(pending)


def _next_nonspace(toks: list[str], i: int) -> int | None:
    while i < len(toks) and toks[i].isspace():
        i += 1
    return i if i < len(toks) else None


def _call_args(tokens: list[str], i: int):
    """Parse `( a, b )` starting at tokens[i] (after optional spaces). Returns (args, next index)."""
    j = _next_nonspace(tokens, i)
    if j is None or tokens[j] != "(":
        return None
    depth, args, cur = 0, [], []
    for k in range(j, len(tokens)):
        t = tokens[k]
        if t == "(":
            depth += 1
            if depth == 1:
                continue
        elif t == ")":
            depth -= 1
            if depth == 0:
                args.append("".join(cur))
                return args, k + 1
        elif t == "," and depth == 1:
            args.append("".join(cur))
            cur = []
            continue
        cur.append(t)
    return None


def _replace_defined(expr: str, macros: dict[str, Macro]) -> str:
    def repl(m: re.Match) -> str:
        return "1" if m.group(1) in macros else "0"
    return re.sub(r"\bdefined\s*\(?\s*([A-Za-z_]\w*)\s*\)?", repl, expr)


_COND_TOKEN = re.compile(r"\s*(0[xX][0-9a-fA-F]+|\d+|[A-Za-z_]\w*|&&|\|\||==|!=|<=|>=|<<|>>|[-+*/%()<>!~&|^?:])")


def _eval_condition(expr: str, loc: Loc) -> bool:
    """Evaluate a #if expression (after macro expansion); unknown identifiers are 0."""
    tokens, pos = [], 0
    expr = expr.strip()
    while pos < len(expr):
        m = _COND_TOKEN.match(expr, pos)
        if not m:
            raise PreprocessError(loc, f"cannot evaluate #if expression {expr!r}")
        tokens.append(m.group(1))
        pos = m.end()
    py = []
    for t in tokens:
        if t[0].isdigit():
            py.append(str(int(t.rstrip("uUlL"), 0) if not t.startswith("0") or t.lower().startswith("0x") or t == "0" else int(t, 8)))
        elif t[0].isalpha() or t[0] == "_":
            py.append("0")
        else:
            py.append({"&&": " and ", "||": " or ", "!": " not ", "/": "//"}.get(t, t))
    try:
        return bool(eval("".join(py), {"__builtins__": {}}, {}))  # tokens are restricted above
    except Exception:
        raise PreprocessError(loc, f"cannot evaluate #if expression {expr!r}") from None
