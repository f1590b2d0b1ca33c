"""Part of stage 5: instantiate the program from `main` down, naming every control-plane object.

The result is a tree of `Instance`s (one per parser/control instance) whose tables and externs
are run-time objects, named as p4c names them for BMv2 (`MyIngress.ipv4_lpm`; `@name("x")`
is relative to the enclosing block, `@name(".x")` absolute).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from . import runtime as R
from . import syntax as S
from . import types as T
from .checker import CheckedProgram, _fold, NotConstant
from .errors import TypeCheckError, UnsupportedError

V1SWITCH_BLOCKS = ("parser", "verify_checksum", "ingress", "egress", "compute_checksum", "deparser")


def annotation_name(annotations) -> str | None:
    for a in annotations:
        if a.name == "name" and a.body:
            tok = a.body[0]
            return tok.value if tok.kind == "str" else tok.text
    return None


def qualified(prefix: str, local: str, annotations) -> str:
    """Control-plane name of `local` declared inside the block named `prefix`."""
    given = annotation_name(annotations)
    if given is not None:
        if given.startswith("."):
            return given[1:]
        local = given
    return f"{prefix}.{local}" if prefix else local


@dataclass(eq=False)
class ValueSet:
    name: str
    width: int
    size: int
    members: list = field(default_factory=list)    # (value, mask)

    def contains(self, key) -> bool:
        return any(key & m == v for v, m in self.members)


@dataclass(eq=False)
class Instance:
    """One instance of a parser or control."""

    decl: object
    kind: str                 # 'parser' or 'control'
    path: str
    ctor: dict = field(default_factory=dict)        # constructor parameter -> value or Instance
    objects: dict = field(default_factory=dict)     # local name -> runtime object / Instance
    apply: object = None                            # set after code generation


@dataclass
class Registry:
    """All control-plane-visible objects of a loaded program, by full name."""

    tables: dict = field(default_factory=dict)
    registers: dict = field(default_factory=dict)
    counters: dict = field(default_factory=dict)
    direct_counters: dict = field(default_factory=dict)
    meters: dict = field(default_factory=dict)
    direct_meters: dict = field(default_factory=dict)
    value_sets: dict = field(default_factory=dict)
    globals: dict = field(default_factory=dict)     # top-level extern instances by local name
    blocks: dict = field(default_factory=dict)      # V1Switch block role -> Instance


class Elaborator:
    def __init__(self, checked: CheckedProgram, ctx: R.PacketContext, rand: R.RandomSource):
        self.checked = checked
        self.ctx = ctx
        self.rand = rand
        self.reg = Registry()

    def run(self) -> Registry:
        main = self.checked.main
        if main is None:
            raise TypeCheckError(None, "the program has no `main` package instance")
        pkg = main.type.decl
        if pkg.name != "V1Switch":
            raise UnsupportedError(main.loc, f"main is a {pkg.name}; this target runs V1Switch programs only")
        for d in self.checked.program.decls:
            if isinstance(d, S.Instantiation) and isinstance(d.type, T.ExternT):
                self.reg.globals[d.name] = self.extern(d, d.name, qualified("", d.name, d.annotations))
        if len(main.args) != len(V1SWITCH_BLOCKS):
            raise TypeCheckError(main.loc, f"V1Switch takes {len(V1SWITCH_BLOCKS)} blocks, got {len(main.args)}")
        for role, arg in zip(V1SWITCH_BLOCKS, main.args):
            self.reg.blocks[role] = self.top_block(role, arg.value)
        return self.reg

    def top_block(self, role: str, e) -> Instance:
        if not isinstance(e, S.Call) or not hasattr(e, "constructs"):
            if isinstance(e, S.Name) and e.sym is not None and e.sym.kind == "instance":
                d = e.sym.decl
                return self.block(d.type.decl, d.type.decl.name, d.args)
            raise TypeCheckError(e.loc, f"V1Switch argument {role} must be a parser or control instance")
        t = e.constructs
        if not isinstance(t, T.BlockT):
            raise TypeCheckError(e.loc, f"V1Switch argument {role} must be a parser or control instance")
        return self.block(t.decl, t.decl.name, e.args)

    def block(self, decl, path: str, args, outer: Instance | None = None) -> Instance:
        kind = "parser" if isinstance(decl, S.ParserDecl) else "control"
        inst = Instance(decl, kind, path)
        for p, a in zip(decl.ctor_params, args):
            inst.ctor[p.name] = self.ctor_value(a.value, p, outer)
        for d in decl.locals:
            self.local(inst, d)
        return inst

    def ctor_value(self, e, p, outer: Instance | None = None):
        if isinstance(e, S.Call) and hasattr(e, "constructs") and isinstance(e.constructs, T.BlockT):
            return self.block(e.constructs.decl, e.constructs.decl.name, e.args)
        sym = getattr(e, "sym", None) if isinstance(e, S.Name) else None
        if outer is not None and sym is not None:
            # an instance declared earlier in the enclosing block (`C1() c1; C2(c1) c2;`, p4c test
            # issue1566-bmv2) or a constructor parameter of the enclosing block: shared, not copied
            if sym.kind == "instance" and isinstance(outer.objects.get(e.name), Instance):
                return outer.objects[e.name]
            if sym.kind == "ctor_param" and isinstance(outer.ctor.get(e.name), Instance):
                return outer.ctor[e.name]
        try:
            return _fold(e)
        except NotConstant:
            raise UnsupportedError(e.loc, f"constructor argument {p.name} must be a compile-time constant") from None

    def local(self, inst: Instance, d) -> None:
        if isinstance(d, S.Instantiation):
            name = qualified(inst.path, d.name, d.annotations)
            t = d.type
            if isinstance(t, T.BlockT):
                inst.objects[d.name] = self.block(t.decl, name, d.args, inst)
            else:
                inst.objects[d.name] = self.extern(d, d.name, name)
        elif isinstance(d, S.TableDecl):
            inst.objects[d.name] = self.table(inst, d)
        elif isinstance(d, S.ValueSetDecl):
            name = qualified(inst.path, d.name, d.annotations)
            vs = ValueSet(name, T.width_of(d.elem), _fold(d.size))
            self.reg.value_sets[name] = vs
            inst.objects[d.name] = vs

    # -- externs ------------------------------------------------------------------------------
    def extern(self, d: S.Instantiation, local: str, name: str):
        t: T.ExternT = d.type
        kind = t.decl.name
        args = [_fold(a.value) if a.value is not None else None for a in d.args]
        maker = getattr(self, "make_" + kind, None)
        if maker is None:
            raise UnsupportedError(d.loc, f"extern {kind} is not supported by this target")
        return maker(d, name, t, args)

    def make_register(self, d, name, t, args):
        vt = t.type_args.get("T")
        if not isinstance(vt, T.BitT):
            raise UnsupportedError(d.loc, f"register {name}: cells must be bit<W> or int<W>, got {vt}")
        r = R.Register(name, args[0], vt.width, vt.signed)
        self.reg.registers[name] = r
        return r

    def make_counter(self, d, name, t, args):
        c = R.Counter(name, args[0], _enum_member(args[1]), self.ctx)
        self.reg.counters[name] = c
        return c

    def make_direct_counter(self, d, name, t, args):
        c = R.DirectCounter(name, _enum_member(args[0]))
        self.reg.direct_counters[name] = c
        return c

    def make_meter(self, d, name, t, args):
        m = R.Meter(name, args[0], _enum_member(args[1]), self.ctx)
        self.reg.meters[name] = m
        return m

    def make_direct_meter(self, d, name, t, args):
        m = R.DirectMeter(name, _enum_member(args[0]), self.ctx)
        self.reg.direct_meters[name] = m
        return m

    def make_Checksum16(self, d, name, t, args):
        return object()

    # -- tables -------------------------------------------------------------------------------
    def table(self, inst: Instance, d: S.TableDecl) -> R.Table:
        from .checker import expr_text
        name = qualified(inst.path, d.name, d.annotations)
        keys = [R.KeySpec(key_name(k, expr_text), k.match_kind, _key_width(k)) for k in d.key]
        size = _fold(d.properties["size"]) if "size" in d.properties else 1024
        table = R.Table(name, keys, {}, size, self.ctx)
        table.default_const = d.default_const
        table.entries_const = d.entries is not None and d.entries_const
        for prop, attr_name in (("counters", "counter"), ("meters", "meter")):
            if prop in d.properties:
                obj = self._named_object(inst, d.properties[prop])
                obj.table = table
                setattr(table, attr_name, obj)
        self.reg.tables[name] = table
        return table

    def _named_object(self, inst, e):
        if isinstance(e, S.Name):
            if e.name in inst.objects:
                return inst.objects[e.name]
            if e.name in self.reg.globals:
                return self.reg.globals[e.name]
        raise UnsupportedError(e.loc, "table property must name an extern instance")


def key_name(k: S.KeyElement, expr_text) -> str:
    given = annotation_name(k.annotations)
    if given is not None:
        return given
    e = k.expr
    if isinstance(e, S.Call) and isinstance(e.func, S.Member) and e.func.name == "isValid":
        return expr_text(e.func.expr) + ".$valid$"
    return expr_text(e)


def _key_width(k: S.KeyElement) -> int:
    t = k.expr.type
    if isinstance(t, T.BoolT):
        return 1
    if isinstance(t, (T.ErrorT,)):
        return 32
    if isinstance(t, T.EnumT):
        return t.underlying.width if t.underlying else 32
    return t.width


def _enum_member(v) -> str:
    """Folded enum constants are ('enum', type, member, value)."""
    return v[2] if isinstance(v, tuple) else str(v)
