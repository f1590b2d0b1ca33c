"""Part of stage 5: Python classes for P4 headers, structs and header unions.

Each P4 type becomes a class with `__slots__` and specialised methods (copy, assign, reset,
is_equal; headers also unpack/pack), so per-packet work is plain attribute access.
"""
from __future__ import annotations

import keyword

from . import types as T
from .errors import UnsupportedError

VALID = "_vld"
PAD = "_pad"          # a last field padding a header to whole bytes, as p4c's BMv2 back end adds


def attr(name: str) -> str:
    """Python attribute name for a P4 field."""
    return name + "_" if keyword.iskeyword(name) or name in (VALID, PAD, "copy", "assign", "reset") else name


class TypeGen:
    """Assigns a class name to every FieldsT type and writes the class source."""

    def __init__(self):
        self.names: dict[int, str] = {}
        self.order: list[T.FieldsT] = []
        self.sources: list[str] = []
        self.structs: list[str] = []        # struct.Struct definitions the classes use
        self.inline_unpack: dict[int, list] = {}    # id(header type) -> layout, for unpack_inline
        self.inline_pack: dict[int, list] = {}      # id(header type) -> layout, for pack_inline

    def class_name(self, t: T.FieldsT) -> str:
        key = id(t)
        if key not in self.names:
            for _, ft in t.fields:
                self._dependencies(ft)
            prefix = {T.HeaderT: "H", T.StructT: "S", T.UnionT: "U"}[type(t)]
            name = f"{prefix}{len(self.names)}_{_ident(t.name)}"
            self.names[key] = name
            self.order.append(t)
            source = self._source(t, name)
            self.sources.append("\n".join(self.structs) + "\n" + source)
            self.structs = []
        return self.names[key]

    def _dependencies(self, ft) -> None:
        if isinstance(ft, T.FieldsT):
            self.class_name(ft)
        elif isinstance(ft, T.StackT):
            self._dependencies(ft.elem)

    # -- expressions for fresh values --------------------------------------------------------
    def new_value(self, t) -> str:
        """Python expression creating a default (zero / invalid) value of type t."""
        if isinstance(t, T.FieldsT):
            return self.class_name(t) + "()"
        if isinstance(t, T.StackT):
            return f"Stack({self.class_name(t.elem)}, {t.size})"
        if isinstance(t, T.BoolT):
            return "False"
        if isinstance(t, T.TupleT):
            return "(" + "".join(self.new_value(e) + ", " for e in t.elems) + ")"
        return "0"

    def copy_expr(self, t, code: str) -> str:
        if isinstance(t, (T.FieldsT, T.StackT)):
            return f"{code}.copy()"
        return code

    # -- class source -------------------------------------------------------------------------
    def _source(self, t: T.FieldsT, name: str) -> str:
        fields = self._fields(t)
        slots = ([VALID] if isinstance(t, T.HeaderT) else []) + [a for a, _ in fields]
        slots += [a + "__len" for a, ft in fields if isinstance(ft, T.VarbitT)]
        lines = [f"class {name}:", f"    __slots__ = {tuple(slots)!r}", f"    p4name = {t.name!r}",
                 f"    fields = {tuple(n for n, _ in t.fields)!r}"]
        lines += self._init(t, fields)
        lines += self._copy(t, name, fields)
        lines += self._assign(t, fields)
        lines += self._reset(t, fields)
        lines += self._equal(t, fields)
        if isinstance(t, T.HeaderT):
            lines += self._header_methods(t, fields)
        if isinstance(t, T.UnionT):
            lines += self._union_methods(fields)
        return "\n".join(lines) + "\n"

    def _zero_lines(self, t, fields, target: str, valid: bool | None) -> list[str]:
        out = []
        if isinstance(t, T.HeaderT) and valid is not None:
            out.append(f"{target}.{VALID} = {valid}")
        for a, ft in fields:
            out.append(f"{target}.{a} = {self.new_value(ft)}")
            if isinstance(ft, T.VarbitT):
                out.append(f"{target}.{a}__len = 0")
        return out

    def _init(self, t, fields) -> list[str]:
        """__init__ zeroing every field; nested headers and structs are made in line (no
        __init__ call of their own). A class without fields keeps object's __init__."""
        body = self._init_lines(t, fields, "self", 0)
        return ["    def __init__(self):"] + ["        " + b for b in body] if body else []

    def _init_lines(self, t, fields, target: str, depth: int) -> list[str]:
        out = [f"{target}.{VALID} = False"] if isinstance(t, T.HeaderT) else []
        for a, ft in fields:
            if isinstance(ft, T.FieldsT):
                name, inner = self.class_name(ft), f"_o{depth}"
                out.append(f"{inner} = {target}.{a} = _new({name})")
                out += self._init_lines(ft, self._fields(ft), inner, depth + 1) if depth < 3 else [
                    f"{name}.__init__({inner})"]
                continue
            out.append(f"{target}.{a} = {self.new_value(ft)}")
            if isinstance(ft, T.VarbitT):
                out.append(f"{target}.{a}__len = 0")
        return out

    @staticmethod
    def _fields(t) -> list:
        """(attribute, type) of the slots a class of `t` zeroes, with a header's pad field."""
        fields = [(attr(n), ft) for n, ft in t.fields]
        if isinstance(t, T.HeaderT) and not t.has_varbit() and T.width_of(t) % 8:
            fields.append((PAD, T.BitT((-T.width_of(t)) % 8)))
        return fields

    def _copy(self, t, name, fields) -> list[str]:
        out = ["    def copy(self):", f"        n = {name}.__new__({name})"]
        if isinstance(t, T.HeaderT):
            out.append(f"        n.{VALID} = self.{VALID}")
        for a, ft in fields:
            out.append(f"        n.{a} = {self.copy_expr(ft, 'self.' + a)}")
            if isinstance(ft, T.VarbitT):
                out.append(f"        n.{a}__len = self.{a}__len")
        return out + ["        return n"]

    def _assign(self, t, fields) -> list[str]:
        out = ["    def assign(self, o):"]
        if isinstance(t, T.HeaderT):
            out.append(f"        self.{VALID} = o.{VALID}")
        for a, ft in fields:
            if isinstance(ft, (T.FieldsT, T.StackT)):
                out.append(f"        self.{a}.assign(o.{a})")
            else:
                out.append(f"        self.{a} = o.{a}")
            if isinstance(ft, T.VarbitT):
                out.append(f"        self.{a}__len = o.{a}__len")
        return out if len(out) > 1 else out + ["        pass"]

    def _reset(self, t, fields) -> list[str]:
        out = ["    def reset(self):"]
        if isinstance(t, T.HeaderT):
            out.append(f"        self.{VALID} = False")
        for a, ft in fields:
            if isinstance(ft, (T.FieldsT, T.StackT)):
                out.append(f"        self.{a}.reset()")
            else:
                out.append(f"        self.{a} = {self.new_value(ft)}")
        return out if len(out) > 1 else out + ["        pass"]

    def _equal(self, t, fields) -> list[str]:
        terms = []
        for a, ft in [f for f in fields if f[0] != PAD]:
            if isinstance(ft, (T.FieldsT, T.StackT)):
                terms.append(f"self.{a}.is_equal(o.{a})")
            else:
                terms.append(f"self.{a} == o.{a}")
        body = " and ".join(terms) or "True"
        if isinstance(t, T.HeaderT):
            body = f"self.{VALID} == o.{VALID} and (not self.{VALID} or ({body}))"
        if isinstance(t, T.UnionT):
            body = " and ".join(terms) or "True"
        return ["    def is_equal(self, o):", f"        return {body}"]

    def _union_methods(self, fields) -> list[str]:
        valid_any = " or ".join(f"self.{a}.{VALID}" for a, _ in fields) or "False"
        out = ["    def is_valid(self):", f"        return {valid_any}",
               "    def only(self, keep):"]
        for a, _ in fields:
            out.append(f"        if keep != {a!r}: self.{a}.{VALID} = False")
        return out + ["        return None"]

    # -- headers: validity, unpack, pack ----------------------------------------------------
    def _header_methods(self, t: T.HeaderT, fields) -> list[str]:
        out = ["    def set_valid(self):", f"        if not self.{VALID}:"]
        out += ["            " + line for line in self._zero_lines(t, fields, "self", True)]
        out += ["    def set_invalid(self):", f"        self.{VALID} = False"]
        leaves = self._leaves(t, fields)
        if t.has_varbit():
            out += self._unpack_varbit(t, leaves) + self._pack_varbit(t, leaves)
        else:
            out += self._unpack_fixed(t, leaves) + self._pack_fixed(t, leaves)
        return out

    def _leaves(self, t, fields, prefix: str = "") -> list:
        """(attribute path, type) of every bit-level field, structs flattened depth first."""
        out = []
        for a, ft in fields:
            if isinstance(ft, T.StructT):
                out += self._leaves(t, [(attr(n), f) for n, f in ft.fields], prefix + a + ".")
            elif isinstance(ft, (T.BitT, T.VarbitT, T.BoolT, T.EnumT)):
                out.append((prefix + a, ft))
            else:
                raise UnsupportedError(getattr(t, "loc", None), f"header {t.name}: field {a} of type {ft} is not supported by this target")
        return out

    def _unpack_fixed(self, t, fields) -> list[str]:
        layout = _layout(fields)
        codes = "".join(code for _, _, parts in layout for code, _ in parts)
        self.structs.append(f"ST_{self.names[id(t)]} = struct.Struct('!{codes}')")
        self.inline_unpack[id(t)] = layout
        body = self._unpack_lines(t, layout, "self", "pkt", "")
        return ["    def unpack(self, pkt):"] + ["        " + line for line in body]

    def unpack_inline(self, t, obj: str, pkt: str) -> list[str] | None:
        """Statements extracting fixed-size header `t` from `pkt` into `obj` (the body of its
        unpack method, for a parser state to run without the call), or None if it has none."""
        layout = self.inline_unpack.get(id(t))
        return None if layout is None else self._unpack_lines(t, layout, obj, pkt, "_u")

    def _unpack_lines(self, t, layout, obj: str, pkt: str, tmp: str) -> list[str]:
        nbytes = sum(w for _, w, _ in layout) // 8
        ncodes = sum(len(parts) for _, _, parts in layout)
        names = [f"{tmp}x{i}" for i in range(ncodes)]
        out = [f"{tmp}p = {pkt}.pos", f"{tmp}e = {tmp}p + {nbytes}",
               f"if {tmp}e > {pkt}.n:", "    raise ParserException(1)",
               f"{', '.join(names)}{',' if len(names) == 1 else ''} = ST_{self.names[id(t)]}.unpack_from({pkt}.data, {tmp}p)"]
        k = 0
        for chunk, width, parts in layout:
            value, k = _join_parts(names, k, parts)
            out += _split_chunk(chunk, width, value, obj)
        return out + [f"{obj}.{VALID} = True", f"{pkt}.pos = {tmp}e"]

    def _pack_fixed(self, t, fields) -> list[str]:
        layout = _layout(fields)
        self.inline_pack[id(t)] = layout
        bits = sum(_bits(ft) for _, ft in fields)
        shift, terms = bits, []
        for a, ft in fields:
            w = _bits(ft)
            shift -= w
            v = _to_bits(f"self.{a}", w, ft)
            terms.append(f"({v} << {shift})" if shift else v)
        return ["    def pack(self):", f"        return {self._pack_expr(t, layout, 'self')}",
                "    def as_int(self):", f"        return {' | '.join(terms) or '0'}", f"    width = {bits}"]

    def pack_inline(self, t, obj: str) -> str | None:
        """The bytes of fixed-size header `obj` of type `t` as one expression (the body of its
        pack method, for a deparser to run without the call), or None if it has none."""
        layout = self.inline_pack.get(id(t))
        return None if layout is None else self._pack_expr(t, layout, obj)

    def _pack_expr(self, t, layout, obj: str) -> str:
        values = []
        for chunk, width, parts in layout:
            values += _chunk_parts(chunk, width, parts, obj)
        return f"ST_{self.names[id(t)]}.pack({', '.join(values)})"

    def _unpack_varbit(self, t, fields) -> list[str]:
        fixed = sum(_bits(ft) for _, ft in fields if not isinstance(ft, T.VarbitT))
        out = ["    def unpack(self, pkt, varbits=0):", "        total = " + str(fixed) + " + varbits"]
        vb = next(ft for _, ft in fields if isinstance(ft, T.VarbitT))
        # BMv2 extract_VL (src/bm_sim/parser.cpp): size not a multiple of 8 -> ParserInvalidArgument,
        # then too few packet bytes -> PacketTooShort, then size above the maximum -> HeaderTooShort.
        out += ["        if varbits % 8 or total % 8:",
                "            raise ParserException(6)",
                "        p = pkt.pos", "        e = p + total // 8",
                "        if e > pkt.n:", "            raise ParserException(1)",
                f"        if varbits > {vb.max_width} or varbits < 0:",
                "            raise ParserException(4)",
                "        v = int.from_bytes(pkt.data[p:e], 'big')", "        shift = total"]
        for a, ft in fields:
            if isinstance(ft, T.VarbitT):
                out += ["        shift -= varbits", f"        self.{a} = (v >> shift) & ((1 << varbits) - 1)",
                        f"        self.{a}__len = varbits"]
            else:
                w = _bits(ft)
                out += [f"        shift -= {w}", f"        self.{a} = {_from_bits('(v >> shift)', w, ft, True)}"]
        return out + [f"        self.{VALID} = True", "        pkt.pos = e"]

    def _pack_varbit(self, t, fields) -> list[str]:
        out = ["    def pack(self):", "        v = 0", "        bits = 0"]
        for a, ft in fields:
            if isinstance(ft, T.VarbitT):
                out += [f"        v = (v << self.{a}__len) | self.{a}", f"        bits += self.{a}__len"]
            else:
                w = _bits(ft)
                out += [f"        v = (v << {w}) | {_to_bits('self.' + a, w, ft)}", f"        bits += {w}"]
        return out + ["        return v.to_bytes((bits + 7) // 8, 'big')"]


def _bits(ft) -> int:
    if isinstance(ft, T.BoolT):
        return 1
    if isinstance(ft, T.EnumT):
        return ft.underlying.width
    return ft.width if isinstance(ft, T.BitT) else 0


def _from_bits(v: str, w: int, ft, needs_mask: bool) -> str:
    masked = f"({v} & {hex((1 << w) - 1)})" if needs_mask else v
    if isinstance(ft, T.BoolT):
        return f"({masked} != 0)"
    if isinstance(ft, T.BitT) and ft.signed:
        return f"_sx({masked}, {w})"
    if isinstance(ft, T.EnumT) and ft.underlying.signed:
        return f"_sx({masked}, {w})"
    return masked


def _to_bits(v: str, w: int, ft) -> str:
    if isinstance(ft, T.BoolT):
        return f"(1 if {v} else 0)"
    if (isinstance(ft, T.BitT) and ft.signed) or (isinstance(ft, T.EnumT) and ft.underlying.signed):
        return f"({v} & {hex((1 << w) - 1)})"
    return v


def _ident(name: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in name)


STRUCT_CODES = ((64, "Q"), (32, "I"), (16, "H"), (8, "B"))


def _layout(fields) -> list:
    """Fields grouped into byte-aligned chunks, each read as struct codes:
    [(chunk fields, chunk width, [(code, width), ...]), ...]."""
    out, chunk, width = [], [], 0
    for a, ft in fields:
        chunk.append((a, ft))
        width += _bits(ft)
        if width % 8 == 0:
            out.append((chunk, width, _codes(width)))
            chunk, width = [], 0
    if chunk:
        raise UnsupportedError(None, "header fields do not end on a byte boundary")
    return out


def _codes(width: int) -> list:
    parts = []
    while width:
        w, code = next((w, c) for w, c in STRUCT_CODES if w <= width)
        parts.append((code, w))
        width -= w
    return parts


def _join_parts(names, k, parts) -> tuple[str, int]:
    """Expression rebuilding a chunk from its struct values names[k:k+len(parts)]."""
    if len(parts) == 1:
        return names[k], k + 1
    expr = names[k]
    for i, (_, w) in enumerate(parts[1:], 1):
        expr = f"(({expr} << {w}) | {names[k + i]})"
    return expr, k + len(parts)


def _split_chunk(chunk, width, value, obj: str) -> list[str]:
    lines, shift = [], width
    for a, ft in chunk:
        w = _bits(ft)
        shift -= w
        raw = f"({value} >> {shift})" if shift else value
        lines.append(f"{obj}.{a} = {_from_bits(raw, w, ft, len(chunk) > 1 and shift + w < width)}")
    return lines


def _chunk_parts(chunk, width, parts, obj: str) -> list[str]:
    """Expressions for the struct values of one chunk, from the fields of `obj`."""
    shift, terms = width, []
    for a, ft in chunk:
        w = _bits(ft)
        shift -= w
        v = _to_bits(f"{obj}.{a}", w, ft)
        terms.append(f"({v} << {shift})" if shift else v)
    whole = " | ".join(terms)
    if len(parts) == 1:
        return [whole if len(terms) == 1 else f"({whole})"]
    out, rest = [], width
    for _, w in parts:
        rest -= w
        piece = f"(({whole}) >> {rest})" if rest else f"({whole})"
        out.append(f"({piece} & {hex((1 << w) - 1)})" if rest != width - w else piece)
    return out
