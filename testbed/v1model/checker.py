"""Stage 4: name resolution, type checking and bit-width inference.

The checker walks every declaration once, in source order (P4 requires declaration before use),
resolves each name to a `Sym`, gives every expression a `type`, converts unsized integer
literals to the width their context requires, folds compile-time constants, and records on the
syntax nodes what the lowering stage needs (`sym`, `type`, `const`, `callee`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import syntax as S
from . import types as T
from .errors import NOWHERE, Loc, TypeCheckError, UnsupportedError

MATCH_KINDS_TABLE = {"exact", "ternary", "lpm", "range", "optional", "selector"}
ARITH_OPS = {"+", "-", "*", "/", "%", "|+|", "|-|", "&", "|", "^"}
COMPARE_OPS = {"<", ">", "<=", ">="}
HEADER_METHODS = {"isValid": T.BOOL, "setValid": T.VOID, "setInvalid": T.VOID,
                  "minSizeInBits": T.INFINT, "minSizeInBytes": T.INFINT,
                  "maxSizeInBits": T.INFINT, "maxSizeInBytes": T.INFINT}


class NotConstant(Exception):
    pass


@dataclass(eq=False)
class Sym:
    """What a name means at one point of the program."""

    kind: str          # var, param, const, action, function, extern_function, instance, table,
    #                    value_set, ctor_param, error_ns, match_kind
    name: str
    type: Any = None
    decl: Any = None
    value: Any = None          # folded value of constants
    direction: str = ""        # for params
    overloads: list = field(default_factory=list)
    owner: Any = None          # the control/parser/action/function declaring it

    @property
    def writable(self) -> bool:
        if self.kind == "var":
            return True
        return self.kind == "param" and self.direction in ("out", "inout")


class Scope:
    def __init__(self, parent: "Scope | None" = None, owner: Any = None):
        self.parent = parent
        self.values: dict[str, Sym] = {}
        self.types: dict[str, Any] = {}
        self.owner = owner if owner is not None else (parent.owner if parent else None)

    def lookup(self, name: str) -> Sym | None:
        s: Scope | None = self
        while s is not None:
            if name in s.values:
                return s.values[name]
            s = s.parent
        return None

    def lookup_type(self, name: str):
        s: Scope | None = self
        while s is not None:
            if name in s.types:
                return s.types[name]
            s = s.parent
        return None

    def root(self) -> "Scope":
        s = self
        while s.parent is not None:
            s = s.parent
        return s


@dataclass
class CheckedProgram:
    """The checker's result: the syntax tree (annotated) plus the global tables."""

    program: S.Program
    scope: Scope
    errors: list[str]              # error members in code order
    match_kinds: set
    main: S.Instantiation | None


class Checker:
    def __init__(self, program: S.Program):
        self.program = program
        self.root = Scope()
        self.errors: list[str] = []
        self.match_kinds: set[str] = set()
        self.main: S.Instantiation | None = None
        self.return_types: list = []
        self.in_action = 0
        for name, t in (("bool", T.BOOL), ("error", T.ERROR), ("string", T.STRING),
                        ("void", T.VOID), ("match_kind", T.MatchKindT())):
            self.root.types[name] = t
        self.root.values["error"] = Sym("error_ns", "error", T.ERROR)

    # -- entry ---------------------------------------------------------------------------------
    def check(self) -> CheckedProgram:
        for d in self.program.decls:
            self.declaration(d, self.root)
        return CheckedProgram(self.program, self.root, self.errors, self.match_kinds, self.main)

    def fail(self, node_or_loc, msg: str) -> TypeCheckError:
        loc = node_or_loc if isinstance(node_or_loc, Loc) else getattr(node_or_loc, "loc", NOWHERE)
        return TypeCheckError(loc, msg)

    def declare(self, scope: Scope, name: str, sym: Sym, node) -> None:
        existing = scope.values.get(name)
        if existing is not None and existing.kind == "extern_function" and sym.kind == "extern_function":
            existing.overloads.extend(sym.overloads)
            return
        if existing is not None and not (existing.kind in ("action",) and scope is self.root):
            raise self.fail(node, f"{name!r} is already declared in this scope")
        scope.values[name] = sym

    # -- declarations --------------------------------------------------------------------------
    def declaration(self, d, scope: Scope) -> None:
        handler = getattr(self, "decl_" + type(d).__name__, None)
        if handler is None:
            raise self.fail(d, f"{type(d).__name__} is not allowed here")
        handler(d, scope)

    def decl_Empty(self, d, scope):
        pass

    def decl_HeaderDecl(self, d, scope):
        self._fields_decl(d, scope, T.HeaderT)

    def decl_StructDecl(self, d, scope):
        self._fields_decl(d, scope, T.StructT)

    def decl_HeaderUnionDecl(self, d, scope):
        self._fields_decl(d, scope, T.UnionT)

    def _fields_decl(self, d, scope, cls):
        t = cls(d.name)
        t.loc = d.loc
        scope.types[d.name] = t
        inner = Scope(scope)
        for tp in d.type_params:
            inner.types[tp] = T.ANY
        seen = set()
        for f in d.fields:
            if f.name in seen:
                raise self.fail(f, f"duplicate field {f.name!r} in {d.name}")
            seen.add(f.name)
            ft = self.resolve_type(f.type_ref, inner)
            self._check_field_type(cls, d, f, ft)
            t.fields.append((f.name, ft))
            t.annotations[f.name] = f.annotations

    def _check_field_type(self, cls, d, f, ft):
        if cls is T.HeaderT and not isinstance(ft, (T.BitT, T.VarbitT, T.BoolT, T.EnumT, T.StructT, T.AnyT)):
            raise self.fail(f, f"header field {d.name}.{f.name} has type {ft}; header fields must be bit<>, int<>, varbit<>, bool or serializable enums")
        if cls is T.HeaderT and isinstance(ft, T.EnumT) and ft.underlying is None:
            raise self.fail(f, f"header field {d.name}.{f.name}: enum {ft.name} is not serializable")
        if cls is T.UnionT and not isinstance(ft, T.HeaderT):
            raise self.fail(f, f"header_union field {d.name}.{f.name} must be a header, not {ft}")

    def decl_EnumDecl(self, d, scope):
        underlying = self.resolve_type(d.underlying, scope) if d.underlying is not None else None
        if underlying is not None and not isinstance(underlying, T.BitT):
            raise self.fail(d, f"enum {d.name}: underlying type must be bit<N> or int<N>")
        t = T.EnumT(d.name, [m[0] for m in d.members], underlying)
        for i, (name, value, loc) in enumerate(d.members):
            if underlying is None:
                if value is not None:
                    raise self.fail(loc, f"enum {d.name}: only serializable enums (enum bit<N>) give members values")
                t.values[name] = i
            else:
                if value is None:
                    raise self.fail(loc, f"serializable enum {d.name}: member {name} needs a value")
                self.expr(value, scope, underlying)
                t.values[name] = self.const_value(value, scope) & underlying.mask
        scope.types[d.name] = t

    def decl_ErrorDecl(self, d, scope):
        for name, loc in d.members:
            if name not in self.errors:
                self.errors.append(name)

    def decl_MatchKindDecl(self, d, scope):
        for name, loc in d.members:
            self.match_kinds.add(name)
            scope.values.setdefault(name, Sym("match_kind", name, T.MatchKindT()))

    def decl_TypedefDecl(self, d, scope):
        inner = getattr(d, "inner", None)
        if inner is not None:
            self.declaration(inner, scope)
        scope.types[d.name] = self.resolve_type(d.type_ref, scope)

    def decl_ConstDecl(self, d, scope):
        t = self.resolve_type(d.type_ref, scope)
        self.expr(d.value, scope, t)
        self.coerce(d.value, t, "constant " + d.name)
        try:
            value = self.const_value(d.value, scope)
        except NotConstant:
            if isinstance(t, (T.BitT, T.BoolT, T.InfIntT)):
                raise self.fail(d.value, f"the value of constant {d.name} is not a compile-time constant") from None
            value = None
        self.declare(scope, d.name, Sym("const", d.name, t, d, value=value, owner=scope.owner), d)

    def decl_VarDecl(self, d, scope):
        t = self.resolve_type(d.type_ref, scope)
        if d.init is not None:
            self.expr(d.init, scope, t)
            self.coerce(d.init, t, "the initial value of " + d.name)
        d.type = t
        self.declare(scope, d.name, Sym("var", d.name, t, d, owner=scope.owner), d)

    def decl_ExternDecl(self, d, scope):
        scope.types[d.name] = d

    def decl_MethodDecl(self, d, scope):
        sym = Sym("extern_function", d.name, None, d, overloads=[d])
        self.declare(scope, d.name, sym, d)

    def decl_FunctionDecl(self, d, scope):
        self.declare(scope, d.name, Sym("function", d.name, None, d, overloads=[d]), d)
        inner = Scope(scope, owner=d)
        for tp in d.type_params:
            inner.types[tp] = T.TypeVar(tp)
        self.params(d.params, inner)
        rt = self.resolve_type(d.return_type, inner)
        d.rtype = rt
        self.return_types.append(rt)
        try:
            self.block(d.body, inner)
        finally:
            self.return_types.pop()
        if not isinstance(rt, T.VoidT) and not _always_returns(d.body):
            raise self.fail(d, f"function {d.name} does not return a value on every path")

    def decl_ActionDecl(self, d, scope):
        self.declare(scope, d.name, Sym("action", d.name, None, d, owner=scope.owner), d)
        inner = Scope(scope, owner=d)
        self.params(d.params, inner, action=True)
        self.return_types.append(T.VOID)
        self.in_action += 1
        try:
            self.block(d.body, inner)
        finally:
            self.in_action -= 1
            self.return_types.pop()

    def params(self, params: list, scope: Scope, action: bool = False) -> None:
        seen_directionless = False
        for p in params:
            pt = self.resolve_type(p.type_ref, scope)
            p.type = pt
            if action:
                if p.direction == "":
                    seen_directionless = True
                elif seen_directionless:
                    raise self.fail(p, f"action parameter {p.name}: directional parameters must come before directionless ones")
            if p.default is not None:
                self.expr(p.default, scope, pt)
            self.declare(scope, p.name, Sym("param", p.name, pt, p, direction=p.direction, owner=scope.owner), p)

    def decl_ParserTypeDecl(self, d, scope):
        scope.types[d.name] = d
        if isinstance(d, (S.ParserTypeDecl, S.ControlTypeDecl)) and not getattr(d, "type_params", None):
            # non-generic parser/control types can be constructor parameter types; their apply
            # parameters need resolved types for calls through such a parameter (`c.apply(x)`)
            for p in d.params:
                if not isinstance(getattr(p, "type", None), T.Type):
                    p.type = self.resolve_type(p.type_ref, scope)

    decl_ControlTypeDecl = decl_ParserTypeDecl
    decl_PackageTypeDecl = decl_ParserTypeDecl

    def _hoist_direct_invocations(self, d, scope) -> None:
        """Direct type invocation (P4 spec "Direct type invocation"): `C.apply(...)` on a parser or
        control type without constructor parameters is an anonymous instantiation `C() _hidden;` in
        the enclosing block followed by `_hidden.apply(...)`. One instance per invocation site."""
        import dataclasses
        roots = [d.body] if isinstance(d, S.ControlDecl) else [st for st in d.states]
        roots += [loc for loc in d.locals if isinstance(loc, S.ActionDecl)]
        seen, found = set(), []

        def visit(n):
            if id(n) in seen:
                return
            seen.add(id(n))
            if isinstance(n, list):
                for x in n:
                    visit(x)
                return
            if not dataclasses.is_dataclass(n) or isinstance(n, type):
                return
            if isinstance(n, S.Member) and n.name == "apply" and isinstance(n.expr, S.Name) \
                    and not n.expr.top_level and scope.lookup(n.expr.name) is None:
                td = scope.lookup_type(n.expr.name)
                if isinstance(td, (S.ControlDecl, S.ParserDecl)) and not td.ctor_params:
                    found.append(n)
            for f in dataclasses.fields(n):
                if f.name != "loc":
                    visit(getattr(n, f.name))

        visit(roots)
        for k, m in enumerate(found):
            hidden = f"__direct_{m.expr.name}_{k}"
            d.locals.append(S.Instantiation(m.loc, hidden, S.TypeRef(m.loc, m.expr.name), []))
            m.expr = S.Name(m.expr.loc, hidden)

    def decl_ParserDecl(self, d, scope):
        scope.types[d.name] = d
        self._hoist_direct_invocations(d, scope)
        inner = self._block_scope(d, scope)
        states = {s.name: s for s in d.states}
        d.state_map = states
        for loc_decl in d.locals:
            self.declaration(loc_decl, inner)
        if "start" not in states:
            raise self.fail(d, f"parser {d.name} has no start state")
        for st in d.states:
            if st.name in ("accept", "reject"):
                raise self.fail(st, f"parser {d.name}: state {st.name} is predefined and cannot be declared")
            self.parser_state(st, inner, states)

    def decl_ControlDecl(self, d, scope):
        scope.types[d.name] = d
        self._hoist_direct_invocations(d, scope)
        inner = self._block_scope(d, scope)
        for loc_decl in d.locals:
            self.declaration(loc_decl, inner)
        self.return_types.append(T.VOID)
        try:
            self.block(d.body, inner)
        finally:
            self.return_types.pop()

    def _block_scope(self, d, scope: Scope) -> Scope:
        inner = Scope(scope, owner=d)
        for tp in d.type_params:
            inner.types[tp] = T.ANY
        self.params(d.params, inner)
        for p in d.ctor_params:
            pt = self.resolve_type(p.type_ref, inner)
            p.type = pt
            self.declare(inner, p.name, Sym("ctor_param", p.name, pt, p, owner=d), p)
        d.scope = inner
        return inner

    def decl_Instantiation(self, d, scope):
        t = self.resolve_type(d.type_ref, scope)
        if isinstance(t, T.BlockT) and t.kind in ("parser", "control"):
            if isinstance(t.decl, (S.ParserTypeDecl, S.ControlTypeDecl)):
                raise self.fail(d, f"cannot instantiate {t.decl.name}: it is only a type, with no body")
            self.ctor_args(d, t.decl.ctor_params, scope)
        elif isinstance(t, T.BlockT) and t.kind == "package":
            for a in d.args:
                if a.value is not None:
                    self.expr(a.value, scope)
            if d.name == "main":
                self.main = d
        elif isinstance(t, T.ExternT):
            self.extern_ctor(d, t, scope)
        else:
            raise self.fail(d, f"cannot instantiate {t}: only externs, parsers, controls and packages can be instantiated")
        d.type = t
        self.declare(scope, d.name, Sym("instance", d.name, t, d, owner=scope.owner), d)

    def ctor_args(self, d, params, scope):
        if len(d.args) != len(params):
            raise self.fail(d, f"{_text(getattr(d, 'func', None)) if isinstance(d, S.Call) else d.type_ref.name} expects {len(params)} constructor arguments, got {len(d.args)}")
        for a, p in zip(d.args, params):
            self.expr(a.value, scope, p.type)
            if self._conforms_to_block_type(a.value.type, p.type, scope):
                continue
            self.coerce(a.value, p.type, f"constructor argument {p.name}")

    def _conforms_to_block_type(self, t, target, scope) -> bool:
        """A parser/control instance may be passed where a parser/control *type* is expected
        (`control C2(inout bit<16> x)(my_control_type c)` given a `C1` instance, p4c test
        issue1566-bmv2) when its apply parameters match in number, direction and type."""
        if not (isinstance(t, T.BlockT) and isinstance(target, T.BlockT) and t.kind == target.kind
                and isinstance(target.decl, (S.ParserTypeDecl, S.ControlTypeDecl))
                and not getattr(target.decl, "type_params", None)):
            return False
        have, want = t.decl.params, target.decl.params
        if len(have) != len(want):
            return False
        for a, b in zip(have, want):
            if (a.direction or "") != (b.direction or ""):
                return False
            ta = a.type if isinstance(getattr(a, "type", None), T.Type) else self.resolve_type(a.type_ref, scope)
            tb = b.type if isinstance(getattr(b, "type", None), T.Type) else self.resolve_type(b.type_ref, scope)
            if not T.same_type(ta, tb):
                return False
        return True

    def extern_ctor(self, d, t: T.ExternT, scope):
        ctors = [m for m in t.decl.methods if m.return_type is None]
        matching = [c for c in ctors if _arity_fits(c.params, d.args)]
        if not matching:
            raise self.fail(d, f"extern {t.decl.name} has no constructor taking {len(d.args)} arguments")
        ctor = matching[0]
        inner = Scope(scope)
        for name, bound in t.type_args.items():
            inner.types[name] = bound
        for a, p in zip(d.args, ctor.params):
            pt = self.resolve_type(p.type_ref, inner)
            self.expr(a.value, scope, pt if not isinstance(pt, T.TypeVar) else None)
            self.coerce(a.value, pt, f"constructor argument {p.name}")
        d.ctor = ctor

    def decl_ValueSetDecl(self, d, scope):
        et = self.resolve_type(d.elem_type, scope)
        self.expr(d.size, scope)
        d.elem = et
        self.declare(scope, d.name, Sym("value_set", d.name, et, d, owner=scope.owner), d)

    def decl_TableDecl(self, d, scope):
        self.declare(scope, d.name, Sym("table", d.name, T.TableT(d), d, owner=scope.owner), d)
        for k in d.key:
            self.expr(k.expr, scope)
            if k.match_kind not in MATCH_KINDS_TABLE:
                raise self.fail(k, f"table {d.name}: unknown match kind {k.match_kind!r}")
            if k.match_kind == "selector":
                raise UnsupportedError(k.loc, f"table {d.name}: action selectors are not supported by this target")
            if not isinstance(k.expr.type, (T.BitT, T.BoolT, T.EnumT, T.ErrorT, T.InfIntT)):
                raise self.fail(k, f"table {d.name}: key {_text(k.expr)} has type {k.expr.type}, which cannot be matched")
        if sum(1 for k in d.key if k.match_kind == "lpm") > 1:
            raise UnsupportedError(d.loc, f"table {d.name}: more than one lpm key (BMv2 allows one)")
        for ref in d.actions:
            self.action_ref(ref, scope, d, in_list=True)
        if not d.actions:
            raise self.fail(d, f"table {d.name} has no actions property")
        if d.default_action is not None:
            self.action_ref(d.default_action, scope, d, in_list=False)
        for entry in d.entries or []:
            self.entry(entry, d, scope)
        for name, value in d.properties.items():
            self.table_property(d, name, value, scope)

    def table_property(self, d, name, value, scope):
        if name in ("counters", "meters"):
            self.expr(value, scope)
            want = "direct_counter" if name == "counters" else "direct_meter"
            if not (isinstance(value.type, T.ExternT) and value.type.decl.name == want):
                raise self.fail(value, f"table {d.name}: property {name} must name a {want} instance")
        elif name == "implementation":
            raise UnsupportedError(value.loc, f"table {d.name}: action profiles/selectors (implementation) are not supported by this target")
        elif name == "size":
            self.expr(value, scope)
            self.const_value(value, scope)
        else:
            self.expr(value, scope)

    def action_ref(self, ref: S.ActionRef, scope: Scope, table, in_list: bool) -> None:
        sym = self.root.lookup(ref.name) if ref.top_level else scope.lookup(ref.name)
        if sym is None or sym.kind != "action":
            raise self.fail(ref, f"table {table.name}: {ref.name!r} is not an action")
        ref.decl = sym.decl
        ref.sym = sym
        if not in_list:
            listed = [r for r in table.actions if r.decl is sym.decl]
            if not listed:
                raise self.fail(ref, f"table {table.name}: default action {ref.name} is not in the table's actions")
        params = sym.decl.params
        directional = [p for p in params if p.direction]
        if in_list:
            if ref.args and len(ref.args) != len(directional):
                raise self.fail(ref, f"action {ref.name} takes {len(directional)} directional arguments in the actions list, got {len(ref.args)}")
            needed = directional if ref.args else []
        else:
            needed = params if len(ref.args) == len(params) else [p for p in params if not p.direction]
            if len(ref.args) != len(needed):
                raise self.fail(ref, f"action {ref.name} takes {len(params)} arguments, got {len(ref.args)}")
        for a, p in zip(ref.args, needed):
            self.expr(a.value, scope, p.type)
            self.coerce(a.value, p.type, f"argument {p.name} of action {ref.name}")

    def entry(self, entry: S.Entry, table, scope) -> None:
        if len(entry.keys) != len(table.key):
            raise self.fail(entry, f"table {table.name}: entry has {len(entry.keys)} keys, the table has {len(table.key)}")
        for kexpr, kel in zip(entry.keys, table.key):
            self.keyset(kexpr, kel.expr.type, scope, kel.match_kind)
        self.action_ref(entry.action, scope, table, in_list=False)
        if entry.priority is not None:
            self.expr(entry.priority, scope)

    def keyset(self, ks, t, scope, kind: str | None = None) -> None:
        if isinstance(ks, S.Default):
            ks.type = t
            return
        if isinstance(t, T.EnumT) and t.underlying is not None:
            # A serializable enum key is implicitly cast to its underlying type (P4 spec "Implicit
            # casts"), so keyset expressions of that underlying type are accepted as well (p4c test
            # table-entries-ser-enum-bmv2: `((bit<16>)MyEnum2B.MBR2) &&& 0xff00` for a MyEnum2B key).
            probe = ks.value if isinstance(ks, S.Mask) else ks.lo if isinstance(ks, S.Range) else ks
            if not isinstance(probe, S.Default):
                self.expr(probe, scope, t)
                if T.same_type(probe.type, t.underlying):
                    t = t.underlying
        if isinstance(ks, S.Mask):
            self.expr(ks.value, scope, t)
            self.expr(ks.mask, scope, t)
            self.coerce(ks.value, t, "keyset value")
            self.coerce(ks.mask, t, "keyset mask")
        elif isinstance(ks, S.Range):
            self.expr(ks.lo, scope, t)
            self.expr(ks.hi, scope, t)
            self.coerce(ks.lo, t, "range bound")
            self.coerce(ks.hi, t, "range bound")
        else:
            self.expr(ks, scope, t)
            if isinstance(ks.type, T.Type) and isinstance(getattr(ks, "sym", None), Sym) and ks.sym.kind == "value_set":
                return
            if kind == "lpm" and isinstance(ks, S.Binary) and ks.op == "/":
                return
            self.coerce(ks, t, "keyset")
        ks.type = t

    # -- parser states -------------------------------------------------------------------------
    def parser_state(self, st: S.ParserState, scope: Scope, states: dict) -> None:
        inner = Scope(scope)
        for s in st.stmts:
            self.statement(s, inner)
        tr = st.transition
        if tr is None:
            return
        if tr.select is None:
            self._state_name(tr, tr.state, states)
            return
        for k in tr.select:
            self.expr(k, inner)
        key_types = [k.type for k in tr.select]
        for case in tr.cases:
            self._state_name(case, case.state, states)
            self.select_case(case.keyset, key_types, inner)

    def _state_name(self, node, name, states):
        if name not in states and name not in ("accept", "reject"):
            raise self.fail(node, f"unknown parser state {name!r}")

    def select_case(self, ks, key_types, scope):
        if isinstance(ks, S.Default):
            return
        items = ks.items if isinstance(ks, S.ListExpr) and getattr(ks, "paren", False) else [ks]
        if isinstance(ks, S.Name):
            sym = scope.lookup(ks.name)
            if sym is not None and sym.kind == "value_set":
                ks.sym = sym
                ks.type = sym.type
                return
        if len(items) != len(key_types):
            raise self.fail(ks, f"select has {len(key_types)} keys but this case has {len(items)}")
        for item, t in zip(items, key_types):
            self.keyset(item, t, scope)

    # -- statements ----------------------------------------------------------------------------
    def block(self, b: S.Block, scope: Scope) -> None:
        inner = Scope(scope)
        for s in b.stmts:
            self.statement(s, inner)

    def statement(self, s, scope: Scope) -> None:
        handler = getattr(self, "stmt_" + type(s).__name__, None)
        if handler is None:
            raise self.fail(s, f"{type(s).__name__} is not allowed here")
        handler(s, scope)

    def stmt_Block(self, s, scope):
        self.block(s, scope)

    def stmt_Empty(self, s, scope):
        pass

    def stmt_VarDecl(self, s, scope):
        self.decl_VarDecl(s, scope)

    def stmt_ConstDecl(self, s, scope):
        self.decl_ConstDecl(s, scope)

    def stmt_Instantiation(self, s, scope):
        raise self.fail(s, "instantiations are not allowed inside blocks")

    def stmt_Assign(self, s, scope):
        if isinstance(s.target, S.DontCare):
            self.expr(s.value, scope)
            return
        t = self.expr(s.target, scope)
        self.require_lvalue(s.target, scope)
        self.expr(s.value, scope, t)
        self.coerce(s.value, t, "the assigned value")

    def stmt_CallStmt(self, s, scope):
        self.expr(s.call, scope)

    def stmt_If(self, s, scope):
        self.expr(s.cond, scope, T.BOOL)
        if not isinstance(s.cond.type, (T.BoolT, T.AnyT)):
            raise self.fail(s.cond, f"if condition has type {s.cond.type}, not bool")
        self.statement(s.then, Scope(scope))
        if s.other is not None:
            self.statement(s.other, Scope(scope))

    def stmt_Switch(self, s, scope):
        t = self.expr(s.expr, scope)
        for case in s.cases:
            for label in case.labels:
                if isinstance(label, S.Default):
                    continue
                if isinstance(t, T.ActionEnumT):
                    self._action_label(label, t.table)
                else:
                    self.expr(label, scope, t)
                    self.coerce(label, t, "switch label")
                    label.const = self.const_value(label, scope)
            if case.body is not None:
                self.block(case.body, scope)

    def _action_label(self, label, table):
        if not isinstance(label, S.Name):
            raise self.fail(label, "switch on action_run: labels must be action names")
        for ref in table.actions:
            if ref.name == label.name or ref.decl.name == label.name:
                label.action = ref.decl
                return
        raise self.fail(label, f"{label.name!r} is not an action of table {table.name}")

    def stmt_Exit(self, s, scope):
        pass

    def stmt_Return(self, s, scope):
        rt = self.return_types[-1] if self.return_types else T.VOID
        if s.value is None:
            if not isinstance(rt, T.VoidT):
                raise self.fail(s, f"return without a value in a function returning {rt}")
            return
        if isinstance(rt, T.VoidT):
            raise self.fail(s, "return with a value in a void function, action or control")
        self.expr(s.value, scope, rt)
        self.coerce(s.value, rt, "the returned value")

    def stmt_For(self, s, scope):
        inner = Scope(scope)
        for i in s.init:
            self.statement(i, inner)
        if s.cond is not None:
            self.expr(s.cond, inner, T.BOOL)
        for u in s.update:
            self.statement(u, inner)
        self.statement(s.body, Scope(inner))

    def stmt_ForIn(self, s, scope):
        inner = Scope(scope)
        t = self.resolve_type(s.var_type, scope)
        if isinstance(s.iterable, S.Range):
            self.expr(s.iterable.lo, scope, t)
            self.expr(s.iterable.hi, scope, t)
            self.coerce(s.iterable.lo, t, "loop bound")
            self.coerce(s.iterable.hi, t, "loop bound")
        else:
            self.expr(s.iterable, scope)
        decl = S.VarDecl(s.loc, s.var, type_ref=s.var_type, init=None)
        decl.type = t
        s.decl = decl
        self.declare(inner, s.var, Sym("var", s.var, t, decl, owner=scope.owner), s)
        self.statement(s.body, inner)

    def stmt_Break(self, s, scope):
        pass

    stmt_Continue = stmt_Break

    def require_lvalue(self, e, scope) -> None:
        root = e
        while isinstance(root, (S.Member, S.Index, S.Slice)):
            if isinstance(root, S.Member) and isinstance(root.expr.type, (T.StackT,)) and root.name in ("next", "last"):
                pass
            root = root.expr
        if isinstance(root, S.Name):
            sym = root.sym if hasattr(root, "sym") else scope.lookup(root.name)
            if sym is not None and sym.writable:
                return
            what = f"{sym.kind} {root.name}" if sym else root.name
            if sym is not None and sym.kind == "param":
                what = f"parameter {root.name} (direction '{sym.direction or 'none'}')"
            raise self.fail(e, f"cannot assign to {what}: it is read-only")
        raise self.fail(e, f"{_text(e)} cannot be assigned to")

    # -- types ---------------------------------------------------------------------------------
    def resolve_type(self, ref, scope: Scope):
        if ref is None:
            return T.VOID
        if isinstance(ref, S.StackTypeRef):
            elem = self.resolve_type(ref.elem, scope)
            self.expr(ref.size, scope)
            size = self.const_value(ref.size, scope)
            if size <= 0:
                raise self.fail(ref, f"header stack size must be positive, got {size}")
            return T.StackT(elem, size)
        if isinstance(ref, S.TupleTypeRef):
            return T.TupleT([self.resolve_type(e, scope) for e in ref.elems])
        name = ref.name
        if name in ("bit", "int", "varbit"):
            return self._sized_type(ref, scope)
        if name == "_":
            return T.ANY
        t = scope.lookup_type(name)
        if t is None:
            raise self.fail(ref, f"unknown type {name!r}")
        if isinstance(t, S.ExternDecl):
            return T.ExternT(t, self._type_args(ref, t.type_params, scope))
        if isinstance(t, (S.ParserDecl, S.ParserTypeDecl)):
            return T.BlockT(t, "parser", self._type_args(ref, t.type_params, scope))
        if isinstance(t, (S.ControlDecl, S.ControlTypeDecl)):
            return T.BlockT(t, "control", self._type_args(ref, t.type_params, scope))
        if isinstance(t, S.PackageTypeDecl):
            return T.BlockT(t, "package", self._type_args(ref, t.type_params, scope))
        return t

    def _sized_type(self, ref, scope):
        if not ref.args:
            if ref.name == "int":
                return T.INFINT
            if ref.name == "bit":
                return T.BitT(1)
            raise self.fail(ref, "varbit needs a maximum width")
        self.expr(ref.args[0], scope)
        w = self.const_value(ref.args[0], scope)
        if ref.name == "varbit":
            return T.VarbitT(w)
        if w <= 0 or (ref.name == "int" and w < 1):
            raise self.fail(ref, f"{ref.name}<{w}>: width must be positive")
        return T.BitT(w, ref.name == "int")

    def _type_args(self, ref, params, scope) -> dict:
        if len(ref.args) > len(params):
            raise self.fail(ref, f"{ref.name} takes {len(params)} type arguments, got {len(ref.args)}")
        bound = {}
        for p, a in zip(params, ref.args):
            bound[p] = self.resolve_type(a, scope) if not isinstance(a, S.IntLit) else T.ANY
        for p in params[len(ref.args):]:
            bound[p] = T.ANY
        return bound

    # -- constants -----------------------------------------------------------------------------
    def const_value(self, e, scope: Scope | None = None):
        """Fold a compile-time constant expression, or raise TypeCheckError."""
        try:
            return _fold(e)
        except NotConstant:
            raise self.fail(e, f"{_text(e)} is not a compile-time constant") from None

    # -- expressions ---------------------------------------------------------------------------
    def expr(self, e, scope: Scope, expected=None):
        """Type-check expression `e`; `expected` guides unsized literals. Returns its type."""
        handler = getattr(self, "ex_" + type(e).__name__)
        t = handler(e, scope, expected)
        e.type = t
        return t

    def ex_IntLit(self, e, scope, expected):
        if e.width is None:
            e.const = e.value
            return T.INFINT
        t = T.BitT(e.width, e.signed)
        e.const = _wrap(e.value, t)
        if e.signed and not (-(1 << (e.width - 1)) <= e.value < (1 << (e.width - 1))) and e.value >= (1 << e.width):
            raise self.fail(e, f"value {e.value} does not fit in int<{e.width}>")
        if not e.signed and e.value >= (1 << e.width):
            raise self.fail(e, f"value {e.value} does not fit in bit<{e.width}>")
        return t

    def ex_BoolLit(self, e, scope, expected):
        e.const = e.value
        return T.BOOL

    def ex_StrLit(self, e, scope, expected):
        e.const = e.value
        return T.STRING

    def ex_DontCare(self, e, scope, expected):
        return expected or T.ANY

    def ex_Default(self, e, scope, expected):
        return expected or T.ANY

    def ex_TypeExpr(self, e, scope, expected):
        e.resolved_type = self.resolve_type(e.ref, scope)
        return e.resolved_type

    def ex_Name(self, e, scope, expected):
        sym = self.root.lookup(e.name) if e.top_level else scope.lookup(e.name)
        if sym is None:
            t = scope.lookup_type(e.name)
            if t is not None:
                e.type_value = self.resolve_type(S.TypeRef(e.loc, e.name), scope)
                e.sym = None
                return e.type_value
            raise self.fail(e, f"unknown name {e.name!r}")
        e.sym = sym
        if sym.kind == "const" and sym.value is not None:
            e.const = sym.value
        if sym.kind in ("action", "function", "extern_function"):
            return T.MethodT(sym.kind, sym.overloads or [sym.decl], None, e.name)
        return sym.type

    def ex_Member(self, e, scope, expected):
        base = e.expr
        bt = self.expr(base, scope)
        if isinstance(base, S.Name) and getattr(base, "sym", None) is not None and base.sym.kind == "error_ns":
            if e.name not in self.errors:
                raise self.fail(e, f"unknown error {e.name!r}")
            e.const = ("error", self.errors.index(e.name))
            return T.ERROR
        if hasattr(base, "type_value"):
            return self._type_member(e, base.type_value)
        if isinstance(bt, T.FieldsT):
            ft = bt.field_type(e.name)
            if ft is not None:
                return ft
            if e.name in HEADER_METHODS and isinstance(bt, (T.HeaderT, T.UnionT)):
                return T.MethodT("builtin", [], base, e.name)
            raise self.fail(e, f"{bt} has no field {e.name!r}")
        if isinstance(bt, T.StackT):
            return self._stack_member(e, bt)
        if isinstance(bt, T.ExternT):
            methods = [m for m in bt.decl.methods if m.name == e.name and m.return_type is not None]
            if not methods:
                raise self.fail(e, f"extern {bt.decl.name} has no method {e.name!r}")
            return T.MethodT("method", methods, base, e.name)
        if isinstance(bt, T.TableT):
            if e.name != "apply":
                raise self.fail(e, f"tables have only the apply method, not {e.name!r}")
            return T.MethodT("apply", [], base, "apply")
        if isinstance(bt, T.BlockT) and e.name == "apply":
            return T.MethodT("apply", [], base, "apply")
        if isinstance(bt, T.ApplyResultT):
            if e.name in ("hit", "miss"):
                return T.BOOL
            if e.name == "action_run":
                return T.ActionEnumT(bt.table)
            raise self.fail(e, f"a table's apply result has hit, miss and action_run, not {e.name!r}")
        raise self.fail(e, f"{_text(base)} of type {bt} has no member {e.name!r}")

    def _type_member(self, e, t):
        if isinstance(t, T.EnumT):
            if e.name not in t.values:
                raise self.fail(e, f"enum {t.name} has no member {e.name!r}")
            e.const = ("enum", t.name, e.name, t.values[e.name])
            return t
        if isinstance(t, T.ErrorT):
            if e.name not in self.errors:
                raise self.fail(e, f"unknown error {e.name!r}")
            e.const = ("error", self.errors.index(e.name))
            return T.ERROR
        raise self.fail(e, f"type {t} has no member {e.name!r}")

    def _stack_member(self, e, bt: T.StackT):
        if e.name == "size":
            e.const = bt.size
            return T.BIT32
        if e.name in ("next", "last"):
            return bt.elem
        if e.name in ("lastIndex", "nextIndex"):
            return T.BIT32
        if e.name in ("push_front", "pop_front"):
            return T.MethodT("builtin", [], e.expr, e.name)
        raise self.fail(e, f"header stacks have no member {e.name!r}")

    def ex_Index(self, e, scope, expected):
        bt = self.expr(e.expr, scope)
        self.expr(e.index, scope, T.BIT32)
        if isinstance(bt, T.StackT):
            if not isinstance(e.index.type, (T.BitT, T.InfIntT)):
                raise self.fail(e.index, "a header stack index must be an integer")
            if isinstance(e.index.type, T.InfIntT):
                self.coerce(e.index, T.BIT32, "stack index")
            c = getattr(e.index, "const", None)
            if isinstance(c, int) and not 0 <= c < bt.size:
                raise self.fail(e.index, f"index {c} is out of range for a stack of size {bt.size}")
            return bt.elem
        if isinstance(bt, T.TupleT):
            i = self.const_value(e.index, scope)
            if not 0 <= i < len(bt.elems):
                raise self.fail(e.index, f"tuple index {i} out of range")
            return bt.elems[i]
        if isinstance(bt, T.BitT):
            i = self.const_value(e.index, scope)
            e.__class__ = S.Slice
            e.hi = e.lo = e.index
            return self._slice_type(e, bt, i, i)
        raise self.fail(e, f"{_text(e.expr)} of type {bt} cannot be indexed")

    def ex_Slice(self, e, scope, expected):
        bt = self.expr(e.expr, scope)
        self.expr(e.hi, scope)
        self.expr(e.lo, scope)
        if not isinstance(bt, (T.BitT, T.InfIntT)):
            raise self.fail(e, f"cannot slice {_text(e.expr)} of type {bt}")
        hi, lo = self.const_value(e.hi, scope), self.const_value(e.lo, scope)
        return self._slice_type(e, bt, hi, lo)

    def _slice_type(self, e, bt, hi, lo):
        if isinstance(bt, T.InfIntT):
            raise self.fail(e, "cannot slice an unsized integer; give it a width first")
        if not (0 <= lo <= hi < bt.width):
            raise self.fail(e, f"slice [{hi}:{lo}] is out of range for {bt}")
        e.hi_v, e.lo_v = hi, lo
        return T.BitT(hi - lo + 1)

    def ex_Unary(self, e, scope, expected):
        t = self.expr(e.expr, scope, expected)
        if e.op == "!":
            if not isinstance(t, (T.BoolT, T.AnyT)):
                raise self.fail(e, f"operator ! needs a bool, got {t}")
            return T.BOOL
        if not isinstance(t, (T.BitT, T.InfIntT, T.AnyT)):
            raise self.fail(e, f"operator {e.op} needs an integer, got {t}")
        if e.op == "~" and isinstance(t, T.InfIntT):
            if isinstance(expected, T.BitT):
                self.coerce(e.expr, expected, "operand")
                return expected
            raise self.fail(e, "cannot complement an unsized integer; give it a width")
        return t

    def ex_Binary(self, e, scope, expected):
        op = e.op
        if op in ("&&", "||"):
            for side in (e.left, e.right):
                if not isinstance(self.expr(side, scope, T.BOOL), (T.BoolT, T.AnyT)):
                    raise self.fail(side, f"operator {op} needs bool operands, got {side.type}")
            return T.BOOL
        if op == "++":
            return self._concat(e, scope)
        if op in ("<<", ">>"):
            return self._shift(e, scope, expected)
        hint = expected if op in ARITH_OPS else None
        lt = self.expr(e.left, scope, hint)
        rt = self.expr(e.right, scope, lt if not isinstance(lt, T.InfIntT) else hint)
        if isinstance(lt, T.InfIntT) and not isinstance(rt, T.InfIntT):
            self.expr(e.left, scope, rt)
        t = self._unify(e, lt, rt)
        if op in ("==", "!="):
            return T.BOOL
        if op in COMPARE_OPS:
            if not isinstance(t, (T.BitT, T.InfIntT, T.AnyT)):
                raise self.fail(e, f"operator {op} needs integers, got {t}")
            return T.BOOL
        if not isinstance(t, (T.BitT, T.InfIntT, T.AnyT)):
            raise self.fail(e, f"operator {op} needs integers, got {t}")
        if op in ("|+|", "|-|") and isinstance(t, T.InfIntT):
            raise self.fail(e, f"saturating {op} needs a width")
        return t

    def _unify(self, e, lt, rt):
        if isinstance(lt, T.InfIntT) and isinstance(rt, T.InfIntT):
            return T.INFINT
        if isinstance(lt, T.InfIntT):
            self.coerce(e.left, rt, f"left operand of {e.op}")
            return rt
        if isinstance(rt, T.InfIntT):
            self.coerce(e.right, lt, f"right operand of {e.op}")
            return lt
        if not T.same_type(lt, rt):
            if isinstance(lt, T.BitT) and isinstance(rt, T.BitT):
                raise self.fail(e, f"operands of {e.op} have different types: {lt} and {rt} (cast one of them)")
            raise self.fail(e, f"operands of {e.op} have incompatible types {lt} and {rt}")
        return lt if not isinstance(lt, T.AnyT) else rt

    def _concat(self, e, scope):
        lt = self.expr(e.left, scope)
        rt = self.expr(e.right, scope)
        for side, t in ((e.left, lt), (e.right, rt)):
            if not isinstance(t, T.BitT):
                raise self.fail(side, f"operands of ++ must have a width, got {t}")
        return T.BitT(lt.width + rt.width, lt.signed)

    def _shift(self, e, scope, expected):
        lt = self.expr(e.left, scope, expected)
        rt = self.expr(e.right, scope)
        if isinstance(rt, T.BitT) and rt.signed:
            raise self.fail(e.right, "shift amount must be unsigned")
        if isinstance(rt, T.InfIntT) and getattr(e.right, "const", 0) < 0:
            raise self.fail(e.right, "shift amount must not be negative")
        if isinstance(lt, T.InfIntT):
            if not hasattr(e.right, "const") or not isinstance(e.right.const, int):
                if isinstance(expected, T.BitT):
                    self.coerce(e.left, expected, "shifted value")
                    return expected
                raise self.fail(e, "shifting an unsized integer by a non-constant amount; give it a width")
            return T.INFINT
        if not isinstance(lt, (T.BitT, T.AnyT)):
            raise self.fail(e, f"cannot shift a {lt}")
        if isinstance(rt, T.InfIntT):
            e.right.type = T.BitT(max(8, e.right.const.bit_length())) if isinstance(getattr(e.right, "const", None), int) else T.BIT32
        return lt

    def ex_Ternary(self, e, scope, expected):
        self.expr(e.cond, scope, T.BOOL)
        if not isinstance(e.cond.type, (T.BoolT, T.AnyT)):
            raise self.fail(e.cond, f"condition of ?: must be bool, got {e.cond.type}")
        a = self.expr(e.then, scope, expected)
        b = self.expr(e.other, scope, a if not isinstance(a, T.InfIntT) else expected)
        if isinstance(a, T.InfIntT) and isinstance(b, T.InfIntT) and isinstance(expected, T.BitT):
            self.coerce(e.then, expected, "?: branch")
            self.coerce(e.other, expected, "?: branch")
            return expected
        if isinstance(a, T.InfIntT) and not isinstance(b, T.InfIntT):
            self.coerce(e.then, b, "?: branch")
            return b
        if isinstance(b, T.InfIntT) and not isinstance(a, T.InfIntT):
            self.coerce(e.other, a, "?: branch")
            return a
        if not T.same_type(a, b):
            raise self.fail(e, f"branches of ?: have different types {a} and {b}")
        return a

    def ex_Cast(self, e, scope, expected):
        to = self.resolve_type(e.to, scope)
        t = self.expr(e.expr, scope, to if isinstance(to, (T.BitT, T.FieldsT, T.TupleT)) else None)
        e.to_type = to
        if isinstance(to, T.FieldsT) and isinstance(e.expr, (S.ListExpr, S.StructExpr)):
            self.coerce(e.expr, to, "cast operand")
            return to
        if isinstance(t, T.InfIntT) and isinstance(to, (T.BitT, T.EnumT, T.BoolT)):
            if isinstance(to, T.BoolT):
                raise self.fail(e, "cannot cast an unsized integer to bool")
            return to
        if not _cast_allowed(t, to):
            raise self.fail(e, f"cannot cast {t} to {to}")
        return to

    def ex_ListExpr(self, e, scope, expected):
        if isinstance(expected, T.TupleT) and len(expected.elems) == len(e.items):
            types = []
            for item, et in zip(e.items, expected.elems):
                self.expr(item, scope, et)
                self.coerce(item, et, "list element")
                types.append(et)
            return T.TupleT(types)
        if isinstance(expected, (T.HeaderT, T.StructT)) and len(expected.fields) == len(e.items):
            for item, (fname, ft) in zip(e.items, expected.fields):
                self.expr(item, scope, ft)
                self.coerce(item, ft, f"field {fname}")
            return expected
        return T.TupleT([self.expr(item, scope) for item in e.items])

    def ex_StructExpr(self, e, scope, expected):
        if isinstance(expected, (T.StructT, T.HeaderT)):
            names = {n for n, _ in e.fields}
            missing = [n for n in expected.field_names() if n not in names]
            if missing:
                raise self.fail(e, f"structure initializer for {expected} misses fields {', '.join(missing)}")
            for n, v in e.fields:
                ft = expected.field_type(n)
                if ft is None:
                    raise self.fail(v, f"{expected} has no field {n!r}")
                self.expr(v, scope, ft)
                self.coerce(v, ft, f"field {n}")
            return expected
        t = T.StructT("<anonymous>")
        for n, v in e.fields:
            t.fields.append((n, self.expr(v, scope)))
        return t

    def ex_Mask(self, e, scope, expected):
        self.expr(e.value, scope, expected)
        self.expr(e.mask, scope, expected)
        return expected or e.value.type

    def ex_Range(self, e, scope, expected):
        self.expr(e.lo, scope, expected)
        self.expr(e.hi, scope, expected)
        return expected or e.lo.type

    # -- calls ---------------------------------------------------------------------------------
    def ex_Call(self, e, scope, expected):
        ft = self.expr(e.func, scope)
        if hasattr(e.func, "type_value"):
            return self._constructor_call(e, e.func.type_value, scope)
        if not isinstance(ft, T.MethodT):
            raise self.fail(e, f"{_text(e.func)} is not callable")
        e.callee = ft
        if ft.kind == "builtin":
            return self._builtin_call(e, ft, scope)
        if ft.kind == "apply":
            return self._apply_call(e, ft, scope)
        return self._decl_call(e, ft, scope, expected)

    def _constructor_call(self, e, t, scope):
        """`MyIngress()` or `register<bit<8>>(4)` used as an expression (package arguments)."""
        e.constructs = t
        if isinstance(t, T.BlockT) and t.kind in ("parser", "control"):
            self.ctor_args(e, t.decl.ctor_params, scope)
        elif isinstance(t, T.ExternT):
            self.extern_ctor(e, t, scope)
        else:
            raise self.fail(e, f"{t} cannot be constructed")
        return t

    def _builtin_call(self, e, ft, scope):
        name = ft.name
        if name in ("push_front", "pop_front"):
            if len(e.args) != 1:
                raise self.fail(e, f"{name} takes one argument")
            self.expr(e.args[0].value, scope)
            e.args[0].const = self.const_value(e.args[0].value, scope)
            self.require_lvalue(ft.target, scope)
            return T.VOID
        if e.args:
            raise self.fail(e, f"{name} takes no arguments")
        if name in ("setValid", "setInvalid"):
            self.require_lvalue(ft.target, scope)
        if name.startswith(("min", "max")):
            w = T.width_of(ft.target.type)
            e.const = w if name.endswith("Bits") else (w + 7) // 8
        return HEADER_METHODS[name]

    def _apply_call(self, e, ft, scope):
        t = ft.target.type
        if isinstance(t, T.TableT):
            if e.args:
                raise self.fail(e, "table apply takes no arguments")
            return T.ApplyResultT(t.decl)
        decl = t.decl
        self._bind_args(e, decl.params, scope, {}, f"{decl.name}.apply")
        return T.VOID

    def _decl_call(self, e, ft, scope, expected):
        candidates = [d for d in ft.overloads if _arity_fits(d.params, e.args)]
        if not candidates:
            n = len(e.args)
            raise self.fail(e, f"{ft.name} takes {_arity_text(ft.overloads)} arguments, got {n}")
        decl = candidates[0]
        if len(candidates) > 1:
            decl = self._pick_overload(candidates, e, scope)
        e.decl = decl
        if ft.kind == "action" and self.in_action == 0 and False:
            pass
        bindings = {}
        if ft.kind == "method":
            bindings.update(ft.target.type.type_args)
        tps = getattr(decl, "type_params", [])
        for name, ta in zip(tps, e.type_args):
            bindings[name] = self.resolve_type(ta, scope) if not isinstance(ta, S.IntLit) else T.ANY
        self._bind_args(e, decl.params, scope, bindings, ft.name, type_params=tps)
        rt_ref = getattr(decl, "return_type", None)
        if ft.kind == "action":
            return T.VOID
        if ft.kind == "function":
            return _subst(decl.rtype, bindings)
        inner = Scope(scope)
        for k, v in bindings.items():
            inner.types[k] = v
        for tp in tps:
            inner.types.setdefault(tp, T.ANY)
        rt = self.resolve_type(rt_ref, inner)
        if isinstance(rt, T.AnyT) and expected is not None:
            return expected
        return rt

    def _pick_overload(self, candidates, e, scope):
        """Choose among overloads of the same arity by argument names, then the first."""
        names = [a.name for a in e.args if a.name]
        for c in candidates:
            if all(any(p.name == n for p in c.params) for n in names):
                return c
        return candidates[0]

    def _bind_args(self, e, params, scope, bindings: dict, what: str, type_params=()) -> None:
        """Match arguments to parameters (by position or name), check and coerce them."""
        ordered = _order_args(e, params, self.fail)
        e.bound = ordered                      # list of (param, Arg | None)
        inner = Scope(scope)
        for tp in type_params:
            inner.types[tp] = bindings.get(tp, T.TypeVar(tp))
        for k, v in bindings.items():
            inner.types[k] = v
        deferred = []
        for p, a in ordered:
            pt = self.resolve_type(p.type_ref, inner) if not hasattr(p, "type") or type_params or bindings else p.type
            if a is None:
                continue
            if a.value is None or isinstance(a.value, S.DontCare):
                if p.direction not in ("out", "inout"):
                    raise self.fail(a, f"{what}: '_' can only be passed to an out parameter ({p.name} is '{p.direction or 'in'}')")
                continue
            if isinstance(pt, T.TypeVar) and pt.name not in bindings:
                at = self.expr(a.value, scope)
                if isinstance(at, T.InfIntT) or (isinstance(at, T.TupleT) and any(isinstance(x, T.InfIntT) for x in at.elems)):
                    deferred.append((p, a, pt))
                    continue
                bindings[pt.name] = at
                inner.types[pt.name] = at
            else:
                pt = _subst(pt, bindings)
                self.expr(a.value, scope, pt if not isinstance(pt, T.AnyT) else None)
                if not isinstance(pt, T.AnyT):
                    self.coerce(a.value, pt, f"argument {p.name} of {what}")
            self._check_direction(p, a, scope, what)
        for p, a, pt in deferred:
            bound = bindings.get(pt.name)
            if bound is not None:
                self.coerce(a.value, bound, f"argument {p.name} of {what}")
            self._check_direction(p, a, scope, what)

    def _check_direction(self, p, a, scope, what):
        if p.direction in ("out", "inout"):
            try:
                self.require_lvalue(a.value, scope)
            except TypeCheckError:
                raise self.fail(a, f"{what}: argument for {p.direction} parameter {p.name} must be assignable, got {_text(a.value)}") from None

    # -- coercion ------------------------------------------------------------------------------
    def coerce(self, e, target, what: str) -> None:
        """Check that `e` fits `target`, converting unsized literals. Raises with context."""
        t = e.type
        if target is None or isinstance(target, (T.AnyT, T.TypeVar)) or isinstance(t, T.AnyT):
            return
        if isinstance(t, T.InfIntT):
            if isinstance(target, T.BitT):
                e.type = target
                if isinstance(getattr(e, "const", None), int):
                    v = e.const
                    if v >= (1 << target.width) or v < -(1 << target.width):
                        raise self.fail(e, f"{what}: value {v} does not fit in {target}")
                    e.const = _wrap(v, target)
                _retype_literals(e, target)
                return
            if isinstance(target, (T.InfIntT, T.VarbitT)):
                return
            if isinstance(target, T.EnumT) and target.underlying is not None:
                return
            raise self.fail(e, f"{what}: expected {target}, got an integer")
        if isinstance(e, S.ListExpr) and isinstance(target, (T.TupleT, T.FieldsT)) and not T.same_type(t, target):
            self.ex_ListExpr(e, None, target) if False else None
            if isinstance(target, T.FieldsT) and len(target.fields) == len(e.items):
                for item, (fname, ft) in zip(e.items, target.fields):
                    self.coerce(item, ft, f"{what}, field {fname}")
                e.type = target
                return
            if isinstance(target, T.TupleT) and len(target.elems) == len(e.items):
                for item, et in zip(e.items, target.elems):
                    self.coerce(item, et, what)
                e.type = target
                return
        if isinstance(e, S.StructExpr) and isinstance(target, T.FieldsT):
            e.type = target
            return
        if isinstance(target, T.TupleT) and isinstance(t, T.TupleT) and len(t.elems) == len(target.elems):
            return
        if isinstance(target, T.FieldsT) and isinstance(t, T.TupleT) and len(t.elems) == len(target.fields):
            return
        if not T.same_type(t, target):
            raise self.fail(e, f"{what}: expected {target}, got {t}")


# -- helpers -------------------------------------------------------------------------------------
def _wrap(v: int, t: T.BitT) -> int:
    v &= t.mask
    if t.signed and v >> (t.width - 1):
        v -= 1 << t.width
    return v


def _retype_literals(e, target):
    """Give nested unsized literals of an arithmetic expression the target type."""
    if isinstance(e, (S.Binary,)) and e.op not in ("==", "!=", "<", ">", "<=", ">=", "&&", "||"):
        for side in (e.left, e.right) if e.op not in ("<<", ">>") else (e.left,):
            if isinstance(side.type, T.InfIntT):
                side.type = target
                _retype_literals(side, target)
    elif isinstance(e, S.Unary) and isinstance(e.expr.type, T.InfIntT):
        e.expr.type = target
        _retype_literals(e.expr, target)
    elif isinstance(e, S.Ternary):
        for side in (e.then, e.other):
            if isinstance(side.type, T.InfIntT):
                side.type = target
                _retype_literals(side, target)


def _fold(e):
    """Compile-time value of an expression (ints, bools, errors/enums as tagged tuples)."""
    c = getattr(e, "const", None)
    if c is not None:
        return c
    if isinstance(e, S.Name) and getattr(e, "sym", None) is not None and e.sym.kind == "const":
        if e.sym.value is None:
            raise NotConstant()
        return e.sym.value
    if isinstance(e, S.Unary):
        v = _fold(e.expr)
        r = {"-": lambda: -v, "+": lambda: v, "!": lambda: not v, "~": lambda: ~v}[e.op]()
        return _wrap(r, e.type) if isinstance(e.type, T.BitT) and e.op != "!" else r
    if isinstance(e, S.Binary):
        return _fold_binary(e)
    if isinstance(e, S.Cast):
        v = _fold(e.expr)
        to = e.to_type
        if isinstance(to, T.BitT):
            return _wrap(int(v) if not isinstance(v, tuple) else v[-1], to)
        if isinstance(to, T.BoolT):
            return bool(v)
        return v
    if isinstance(e, S.Ternary):
        return _fold(e.then) if _fold(e.cond) else _fold(e.other)
    if isinstance(e, S.Slice) and hasattr(e, "hi_v"):
        v = _fold(e.expr)
        return (v >> e.lo_v) & ((1 << (e.hi_v - e.lo_v + 1)) - 1)
    raise NotConstant()


def _fold_binary(e):
    a, b = _fold(e.left), _fold(e.right)
    op = e.op
    if op in ("&&", "||"):
        return (a and b) if op == "&&" else (a or b)
    if op in ("==", "!="):
        return (a == b) == (op == "==")
    if op in COMPARE_OPS:
        return {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]
    t = e.type
    if op == "++":
        return ((a & ((1 << e.left.type.width) - 1)) << e.right.type.width) | (b & ((1 << e.right.type.width) - 1))
    if op in ("/", "%") and b == 0:
        raise NotConstant()
    r = {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "/": lambda: a // b,
         "%": lambda: a % b, "&": lambda: a & b, "|": lambda: a | b, "^": lambda: a ^ b,
         "<<": lambda: a << b if b < 4096 else 0, ">>": lambda: a >> b,
         "|+|": lambda: a + b, "|-|": lambda: a - b}[op]()
    if isinstance(t, T.BitT):
        if op in ("|+|", "|-|"):
            lo, hi = (-(1 << (t.width - 1)), (1 << (t.width - 1)) - 1) if t.signed else (0, t.mask)
            return min(max(r, lo), hi)
        return _wrap(r, t)
    return r


def _cast_allowed(src, dst) -> bool:
    if isinstance(src, T.AnyT) or isinstance(dst, T.AnyT):
        return True
    if isinstance(dst, T.BitT):
        return isinstance(src, (T.BitT, T.BoolT, T.InfIntT)) or (isinstance(src, T.EnumT) and src.underlying is not None)
    if isinstance(dst, T.BoolT):
        return isinstance(src, T.BoolT) or (isinstance(src, T.BitT) and src.width == 1 and not src.signed)
    if isinstance(dst, T.EnumT):
        return dst.underlying is not None and isinstance(src, (T.BitT, T.InfIntT, T.EnumT))
    return T.same_type(src, dst)


def _subst(t, bindings: dict):
    if isinstance(t, T.TypeVar) and t.name in bindings:
        return bindings[t.name]
    return t


def _arity_fits(params, args) -> bool:
    if any(a.name for a in args):
        names = {p.name for p in params}
        return all(a.name in names for a in args if a.name) and len(args) <= len(params)
    required = sum(1 for p in params if p.default is None and not _optional(p))
    return required <= len(args) <= len(params)


def _optional(p) -> bool:
    return any(a.name == "optional" for a in p.annotations)


def _arity_text(overloads) -> str:
    counts = sorted({len(d.params) for d in overloads})
    return " or ".join(map(str, counts))


def _order_args(e, params, fail):
    """Pair each parameter with its argument (None if omitted and defaulted/optional)."""
    if any(a.name for a in e.args):
        by_name = {a.name: a for a in e.args}
        out = []
        for p in params:
            a = by_name.pop(p.name, None)
            if a is None and p.default is None and not _optional(p):
                raise fail(e, f"missing argument for parameter {p.name}")
            out.append((p, a))
        if by_name:
            raise fail(e, f"unknown parameter {next(iter(by_name))!r}")
        return out
    out = []
    for i, p in enumerate(params):
        out.append((p, e.args[i] if i < len(e.args) else None))
    return out


def _always_returns(stmt) -> bool:
    if isinstance(stmt, (S.Return, S.Exit)):
        return True
    if isinstance(stmt, S.Block):
        return any(_always_returns(s) for s in stmt.stmts)
    if isinstance(stmt, S.If):
        return stmt.other is not None and _always_returns(stmt.then) and _always_returns(stmt.other)
    if isinstance(stmt, S.Switch):
        return any(isinstance(l, S.Default) for c in stmt.cases for l in c.labels) and \
            all(c.body is None or _always_returns(c.body) for c in stmt.cases)
    return False


def _text(e) -> str:
    """Source-like rendering of an expression, for messages and control-plane key names."""
    if isinstance(e, S.Name):
        return ("." if e.top_level else "") + e.name
    if isinstance(e, S.Member):
        return f"{_text(e.expr)}.{e.name}"
    if isinstance(e, S.Index):
        return f"{_text(e.expr)}[{_text(e.index)}]"
    if isinstance(e, S.Slice):
        return f"{_text(e.expr)}[{_text(e.hi)}:{_text(e.lo)}]"
    if isinstance(e, S.IntLit):
        return str(e.value) if e.width is None else f"{e.width}{'s' if e.signed else 'w'}{e.value}"
    if isinstance(e, S.BoolLit):
        return "true" if e.value else "false"
    if isinstance(e, S.Call):
        return f"{_text(e.func)}({', '.join(_text(a.value) if a.value is not None else '_' for a in e.args)})"
    if isinstance(e, S.Binary):
        return f"{_text(e.left)} {e.op} {_text(e.right)}"
    if isinstance(e, S.Unary):
        return f"{e.op}{_text(e.expr)}"
    if isinstance(e, S.Cast):
        return f"({getattr(e, 'to_type', '?')}){_text(e.expr)}"
    return type(e).__name__


expr_text = _text


def check(program: S.Program) -> CheckedProgram:
    return Checker(program).check()
