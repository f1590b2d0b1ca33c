"""Stage 5: lower each parser/control instance into Python source, then compile it.

Every instance becomes a maker function `make_<n>(I, RT)` that binds its tables and externs as
closure variables and returns its generated `apply`, action and table functions. Per-packet
work therefore never walks the syntax tree: it runs ordinary Python functions.

Conventions inside generated code:
- block parameters of header/struct/stack type are Python objects passed by reference
  (`p_hdr`); scalar block parameters and block-level variables live on the frame `F`;
- action and function locals are Python locals; scalar out/inout parameters are returned;
- `exit` raises ExitSignal; parser errors raise ParserException(code).
"""
from __future__ import annotations

from contextlib import contextmanager

from . import runtime as R
from . import syntax as S
from . import types as T
from .checker import CheckedProgram, NotConstant, Sym, _fold, expr_text
from .elaborate import Elaborator, Instance, qualified
from .errors import TypeCheckError, UnsupportedError
from .typegen import VALID, TypeGen, attr

PRELUDE = '''
import struct
from testbed.v1model.runtime import Stack, ParserException, ExitSignal, AssertFailure
from testbed.v1model.hashes import pack_fields, csum16
_new = object.__new__

def _sx(v, w):
    return v - (1 << w) if v >> (w - 1) else v

def _sw(v, w):
    v &= (1 << w) - 1
    return v - (1 << w) if v >> (w - 1) else v

def _div(a, b):
    return a // b if b else 0

def _mod(a, b):
    return a % b if b else 0

def _shl(a, b, w):
    return (a << b) & ((1 << w) - 1) if b < w else 0

def _sat(v, lo, hi):
    return lo if v < lo else hi if v > hi else v

def _lookahead(pkt, bits):
    n = (bits + 7) // 8
    if pkt.pos + n > pkt.n:
        raise ParserException(1)
    return int.from_bytes(pkt.data[pkt.pos:pkt.pos + n], 'big') >> (n * 8 - bits)

def _lookahead_hdr(pkt, cls):
    h = cls()
    saved = pkt.pos
    h.unpack(pkt)
    pkt.pos = saved
    return h

def _advance(pkt, bits):
    if bits % 8:
        raise ParserException(6)
    e = pkt.pos + bits // 8
    if e > pkt.n:
        raise ParserException(1)
    pkt.pos = e

def _hashmod(h, base, mx, mask):
    return (base + h % mx) & mask if mx else base & mask

def _fmt(msg, values):
    parts = msg.split('{}')
    out = [parts[0]]
    for i, p in enumerate(parts[1:]):
        out.append(str(values[i]) if i < len(values) else '{}')
        out.append(p)
    return ''.join(out)
'''


class Emitter:
    def __init__(self):
        self.lines: list[str] = []
        self.depth = 0

    def __call__(self, line: str) -> None:
        self.lines.append("    " * self.depth + line)

    @contextmanager
    def indent(self, header: str | None = None):
        if header is not None:
            self(header)
        start = len(self.lines)
        self.depth += 1
        try:
            yield
        finally:
            if len(self.lines) == start:
                self("pass")
            self.depth -= 1


def is_object(t) -> bool:
    """Values passed by reference: headers, structs, unions, stacks and extern objects."""
    return isinstance(t, (T.FieldsT, T.StackT, T.ExternT))


class Lowered:
    """The compiled program: top-level block functions and the control-plane registry."""

    def __init__(self, registry, blocks, typegen, field_lists, source):
        self.registry = registry
        self.blocks = blocks
        self.typegen = typegen
        self.field_lists = field_lists
        self.source = source


class Lowerer:
    def __init__(self, checked: CheckedProgram, rt):
        self.checked = checked
        self.rt = rt                       # the switch: ctx, rand, hashes, drop_port
        self.types = TypeGen()
        self.makers: list[str] = []
        self.bindings: list[dict] = []
        self.uid = 0
        self.field_lists: dict[int, list] = {}
        self.features: set[str] = set()        # clone, resubmit, recirculate, truncate, digest, log
        self.sm_fields: set[str] = set()       # standard_metadata fields the program mentions

    def run(self) -> Lowered:
        reg = Elaborator(self.checked, self.rt.ctx, self.rt.rand).run()
        self.registry = reg
        self._field_lists(reg)
        order: list[Instance] = []
        for role in ("parser", "verify_checksum", "ingress", "egress", "compute_checksum", "deparser"):
            self._collect(reg.blocks[role], order)
        for p in reg.blocks["ingress"].decl.params:
            if isinstance(p.type, T.FieldsT):
                self.types.class_name(p.type)
        gens = [BlockGen(self, inst) for inst in order]
        for g in gens:
            g.generate()
        source = PRELUDE + "\n" + "\n".join(self.types.sources) + "\n" + "\n".join(g.source for g in gens)
        env: dict = {}
        try:
            exec(compile(source, "<p4-generated>", "exec"), env)
        except SyntaxError as e:  # a bug in this module, never in the user's program
            raise RuntimeError(f"generated code does not compile: {e}\n{_numbered(source, e.lineno)}") from e
        self.types.classes = {name: env[name] for name in self.types.names.values()}
        for g in gens:                     # children come first in `order`
            g.finish(env)
        lowered = Lowered(reg, {role: reg.blocks[role].apply for role in reg.blocks}, self.types,
                          self.field_lists, source)
        lowered.features, lowered.sm_fields = self.features, self.sm_fields
        lowered.trivial = {role for role in reg.blocks if _trivial(reg.blocks[role].decl)}
        return lowered

    def _collect(self, inst: Instance, order: list) -> None:
        for obj in list(inst.objects.values()) + list(inst.ctor.values()):
            if isinstance(obj, Instance) and obj not in order:
                self._collect(obj, order)
        if inst not in order:
            order.append(inst)

    def next_uid(self) -> int:
        self.uid += 1
        return self.uid

    def _field_lists(self, reg) -> None:
        """Map @field_list(n) indices to attribute paths inside the user metadata struct."""
        ingress = reg.blocks["ingress"].decl
        if len(ingress.params) < 2:
            return
        mt = ingress.params[1].type
        self.meta_type = mt
        if isinstance(mt, T.StructT):
            self._scan_field_lists(mt, ())

    def _scan_field_lists(self, t: T.StructT, prefix: tuple) -> None:
        for name, ft in t.fields:
            path = prefix + (attr(name),)
            for a in t.annotations.get(name, []):
                if a.name == "field_list":
                    for tok in a.body:
                        if tok.kind == "int":
                            self.field_lists.setdefault(tok.value, []).append(("meta", path))
            if isinstance(ft, T.StructT):
                self._scan_field_lists(ft, path)


class BlockGen:
    """Generates the maker for one parser or control instance."""

    def __init__(self, lowerer: Lowerer, inst: Instance):
        self.L = lowerer
        self.inst = inst
        self.decl = inst.decl
        self.uid = lowerer.next_uid()
        self.em = Emitter()
        self.bindings: dict[str, object] = {}
        self.local_names: dict[int, str] = {}
        self.frame: list[str] = []
        self.tmp = 0
        self.outs: list[str] | None = None
        self.returns_value = False
        self.loop_updates: list = []
        self.action_fns: dict = {}          # (table name, action cp name) -> python fn name
        self.block_vars = {id(d) for d in self.decl.locals if isinstance(d, (S.VarDecl,))}
        self.tracing = lowerer.rt.trace is not None
        self.obj_params = [p for p in self.decl.params if is_object(p.type)]
        self.ctx_params = [self.param_name(p) for p in self.obj_params] + ["F"]

    # -- names --------------------------------------------------------------------------------
    def param_name(self, p) -> str:
        return "p_" + p.name

    def new_tmp(self) -> str:
        self.tmp += 1
        return f"_t{self.tmp}"

    def bind(self, prefix: str, name: str, obj) -> str:
        key = f"{prefix}_{_ident(name)}"
        while key in self.bindings and self.bindings[key] is not obj:
            key += "_"
        self.bindings[key] = obj
        return key

    def local_name(self, decl, name: str) -> str:
        key = id(decl)
        if key not in self.local_names:
            self.local_names[key] = f"v{len(self.local_names)}_{_ident(name)}"
        return self.local_names[key]

    # -- maker --------------------------------------------------------------------------------
    def generate(self) -> None:
        em = self.em
        body = Emitter()
        self.em = body
        body.depth = 1
        self._gen_functions()
        self._gen_actions()
        if self.inst.kind == "control":
            self._gen_tables()
            self._gen_control_apply()
        else:
            self._gen_parser()
        self.em = em
        header = [f"def make_{self.uid}(I, RT):", "    CTX = RT.ctx"]
        if self.tracing:
            header.append("    TRACE = RT.trace")
        header += [f"    {k} = I[{k!r}]" for k in self.bindings if not k.startswith("__")]
        frame_cls = f"FR{self.uid}"
        header += [f"    class {frame_cls}:", f"        __slots__ = {tuple(self.frame)!r}"]
        ret = "{'apply': apply, 'actions': {" + ", ".join(f"{k!r}: {v}" for k, v in self.action_fns.items()) + "}}"
        self.source = "\n".join(header + body.lines + [f"    return {ret}", ""])

    def finish(self, env: dict) -> None:
        """Run the maker, then hand action functions to the tables and install entries."""
        for k, v in list(self.bindings.items()):
            if isinstance(v, Instance):
                self.bindings[k] = v.apply
        made = env[f"make_{self.uid}"](self.bindings, self.L.rt)
        self.inst.apply = made["apply"]
        if self.inst.kind == "control":
            TableBuilder(self, made["actions"]).install()

    # -- top-level functions and actions ------------------------------------------------------
    def _gen_functions(self) -> None:
        for d in self.L.checked.program.decls:
            if isinstance(d, S.FunctionDecl) and not d.type_params:
                self._gen_callable(d, f"FN_{_ident(d.name)}", [], d.params)
            elif isinstance(d, S.FunctionDecl):
                self._gen_callable(d, f"FN_{_ident(d.name)}", [], d.params)

    def _gen_actions(self) -> None:
        actions = [d for d in self.L.checked.program.decls if isinstance(d, S.ActionDecl)]
        actions += [d for d in self.decl.locals if isinstance(d, S.ActionDecl)]
        for d in actions:
            self._gen_callable(d, self.action_fn(d), self.ctx_params, d.params)

    def action_fn(self, d) -> str:
        return f"A{id(d) % 100000}_{_ident(d.name)}"

    def action_cp_name(self, d) -> str:
        top = d in self.L.checked.program.decls
        return qualified("" if top else self.inst.path, d.name, d.annotations)

    def _gen_callable(self, d, fname: str, ctx: list, params: list) -> None:
        names = [self.local_name(p, p.name) for p in params]
        saved = (self.outs, self.returns_value)
        self.outs = [n for p, n in zip(params, names) if p.direction in ("out", "inout") and not is_object(p.type)]
        self.returns_value = isinstance(getattr(d, "rtype", T.VOID), T.Type) and not isinstance(getattr(d, "rtype", T.VOID), T.VoidT)
        with self.em.indent(f"def {fname}({', '.join(ctx + names)}):"):
            if self.tracing and isinstance(d, S.ActionDecl):
                self.em(f"TRACE({('action ' + self.action_cp_name(d))!r})")
            for p, n in zip(params, names):
                if p.direction == "out" and is_object(p.type) and isinstance(p.type, (T.FieldsT, T.StackT)):
                    self.em(f"{n}.reset()")
            with self._copy_out_on_exit(self.outs):
                self.block(d.body)
                if self.outs and not _always_returns(d.body):
                    self.em(f"return ({', '.join(self.outs)},)")
        self.outs, self.returns_value = saved

    @contextmanager
    def _copy_out_on_exit(self, outs):
        """`exit` still copies out out/inout parameters of the enclosing action/control and of all its
        callers (P4 spec, "Exit statement"). Scalar results travel on the ExitSignal; object-typed
        parameters are passed by reference and need nothing."""
        if not outs:
            yield
            return
        with self.em.indent("try:"):
            yield
        with self.em.indent("except ExitSignal as _x:"):
            self.em(f"_x.outs = ({', '.join(outs)},)")
            self.em("raise")

    # -- controls -----------------------------------------------------------------------------
    def _gen_control_apply(self) -> None:
        params = [self.param_name(p) for p in self.decl.params]
        self.outs = [f"F.{self.param_name(p)}" for p in self.decl.params
                     if p.direction in ("out", "inout") and not is_object(p.type)]
        self.returns_value = False
        with self.em.indent(f"def apply({', '.join(params)}):"):
            self._frame_setup()
            with self._copy_out_on_exit(self.outs):
                self.block(self.decl.body)
                if self.outs:
                    self.em(f"return ({', '.join(self.outs)},)")

    def _frame_setup(self) -> None:
        if not self._needs_frame():
            self.em("F = None")
            return
        self.em(f"F = FR{self.uid}()")
        for p in self.decl.params:
            if not is_object(p.type):
                self.frame.append(self.param_name(p))
                self.em(f"F.{self.param_name(p)} = {self.param_name(p)}")
        for d in self.decl.locals:
            if isinstance(d, S.VarDecl):
                n = self.local_name(d, d.name)
                self.frame.append(n)
                self.em(f"F.{n} = {self.init_value(d)}")

    def _needs_frame(self) -> bool:
        scalars = any(not is_object(p.type) for p in self.decl.params)
        return scalars or any(isinstance(d, S.VarDecl) for d in self.decl.locals)

    def init_value(self, d) -> str:
        if d.init is None:
            return self.L.types.new_value(d.type)
        if isinstance(d.type, (T.FieldsT, T.StackT)):
            return self.materialize(d.init, d.type, copy=True)
        return self.ex(d.init)

    def _gen_tables(self) -> None:
        for d in self.decl.locals:
            if isinstance(d, S.TableDecl):
                self._gen_table(d)

    def _gen_table(self, d: S.TableDecl) -> None:
        table = self.inst.objects[d.name]
        tb = self.bind("TB", d.name, table)
        with self.em.indent(f"def TA_{_ident(d.name)}({', '.join(self.ctx_params)}):"):
            if not d.key:
                self.em(f"e = {tb}.default")
            else:
                keys = [self.key_code(k.expr) for k in d.key]
                key = keys[0] if len(keys) == 1 else "(" + ", ".join(keys) + ",)"
                self.em(f"e = {tb}.lookup({key})")
            if self.tracing:
                self.em(f"TRACE({('table ' + table.name + ': ')!r} + ('hit' if e.hit else 'miss') + ' -> ' + e.action.name)")
            self.em(f"e.fn({', '.join(self.ctx_params)}, *e.args)")
            self.em("return e")
        for ref in d.actions:
            self.action_fns[(d.name, self.action_cp_name(ref.decl))] = self._table_action_fn(d, ref)

    def key_code(self, e) -> str:
        c = self.ex(e)
        if isinstance(e.type, T.BoolT):
            return f"(1 if {c} else 0)"
        if isinstance(e.type, T.BitT) and e.type.signed:
            return f"({c} & {hex(e.type.mask)})"
        return c

    def _table_action_fn(self, d, ref: S.ActionRef) -> str:
        """The function a table calls: the action itself, or a wrapper binding list arguments."""
        fn = self.action_fn(ref.decl)
        if not ref.args:
            return fn
        wrapper = f"AW_{_ident(d.name)}_{_ident(ref.decl.name)}"
        cp = [p for p in ref.decl.params if not p.direction]
        cp_names = [f"c{i}" for i in range(len(cp))]
        with self.em.indent(f"def {wrapper}({', '.join(self.ctx_params + cp_names)}):"):
            call = S.Call(ref.loc, S.Name(ref.loc, ref.decl.name), [], list(ref.args))
            call.bound = [(p, a) for p, a in zip(ref.decl.params, ref.args)]
            code = self.call_user(fn, call, self.ctx_params, returns=False, extra=cp_names)
            if code:
                self.em(code)
        return wrapper

    # -- parsers ------------------------------------------------------------------------------
    def _gen_parser(self) -> None:
        self.pkt = self.param_name(next(p for p in self.decl.params
                                         if isinstance(p.type, T.ExternT) and p.type.decl.name == "packet_in"))
        for st in self.decl.states:
            self._gen_state(st)
        params = [self.param_name(p) for p in self.decl.params]
        self.outs = [f"F.{self.param_name(p)}" for p in self.decl.params
                     if p.direction in ("out", "inout") and not is_object(p.type)]
        with self.em.indent(f"def apply({', '.join(params)}, _fresh=False):"):
            self._frame_setup()
            for p in self.decl.params:
                if p.direction == "out" and isinstance(p.type, (T.FieldsT, T.StackT)):
                    self.em(f"if not _fresh: {self.param_name(p)}.reset()")
            self.em(f"s = S_{_ident('start')}")
            with self.em.indent("while s is not None:"):
                self.em(f"s = s({', '.join(self.ctx_params)})")
            if self.outs:
                self.em(f"return ({', '.join(self.outs)},)")

    def _gen_state(self, st: S.ParserState) -> None:
        self.outs = None
        with self.em.indent(f"def S_{_ident(st.name)}({', '.join(self.ctx_params)}):"):
            if self.tracing:
                self.em(f"TRACE({('parser ' + self.inst.path + ': state ' + st.name)!r})")
            for s in st.stmts:
                self.stmt(s)
            self._transition(st.transition)

    def _state_ref(self, name: str) -> str:
        return "None" if name in ("accept", "reject") else f"S_{_ident(name)}"

    def _transition(self, tr) -> None:
        if tr is None:
            self.em("return None")
            return
        if tr.select is None:
            self.em(f"return {self._state_ref(tr.state)}")
            return
        keys = []
        for k in tr.select:
            t = self.new_tmp()
            self.em(f"{t} = {self.key_code(k)}")
            keys.append((t, k.type))
        if self._select_as_dict(tr, keys):
            return
        for case in tr.cases:
            cond = self._keyset_match(case.keyset, keys)
            if cond == "True":
                self.em(f"return {self._state_ref(case.state)}")
                return
            with self.em.indent(f"if {cond}:"):
                self.em(f"return {self._state_ref(case.state)}")
        self.em("return None")

    def _select_as_dict(self, tr, keys) -> bool:
        """One key and only exact constant cases (plus default): a dict lookup."""
        if len(keys) != 1:
            return False
        table, default = {}, "None"
        for case in tr.cases:
            ks = case.keyset
            if isinstance(ks, S.ListExpr) and getattr(ks, "paren", False) and len(ks.items) == 1:
                ks = ks.items[0]
            if isinstance(ks, S.Default):
                default = self._state_ref(case.state)
                break
            try:
                v = _const_int(ks)
            except NotConstant:
                return False
            if isinstance(ks, (S.Mask, S.Range)) or getattr(ks, "sym", None) is not None and getattr(ks.sym, "kind", "") == "value_set":
                return False
            table.setdefault(v, self._state_ref(case.state))
        if len(table) < 2:
            return False
        items = ", ".join(f"{k!r}: {v}" for k, v in table.items())
        self.em(f"return {{{items}}}.get({keys[0][0]}, {default})")
        return True

    def _keyset_match(self, ks, keys) -> str:
        if isinstance(ks, S.Default):
            return "True"
        if isinstance(ks, S.Name) and getattr(ks, "sym", None) is not None and ks.sym.kind == "value_set":
            vs = self.bind("VS", ks.name, self.inst.objects[ks.name])
            packed = keys[0][0] if len(keys) == 1 else self._pack_keys(keys)
            return f"{vs}.contains({packed})"
        items = ks.items if isinstance(ks, S.ListExpr) and getattr(ks, "paren", False) else [ks]
        conds = [self._one_keyset(item, k) for item, (k, _) in zip(items, keys)]
        conds = [c for c in conds if c != "True"]
        return " and ".join(conds) or "True"

    def _pack_keys(self, keys) -> str:
        parts, shift = [], 0
        for code, t in reversed(keys):
            parts.append(f"({code} << {shift})" if shift else code)
            shift += T.width_of(t)
        return "(" + " | ".join(parts) + ")"

    def _one_keyset(self, ks, k: str) -> str:
        if isinstance(ks, S.Default):
            return "True"
        if isinstance(ks, S.Mask):
            m = self.ex(ks.mask)
            return f"({k} & {m}) == ({self.ex(ks.value)} & {m})"
        if isinstance(ks, S.Range):
            return f"{self.ex(ks.lo)} <= {k} <= {self.ex(ks.hi)}"
        return f"{k} == {self.key_code(ks)}"

    # -- statements ---------------------------------------------------------------------------
    def block(self, b) -> None:
        for s in (b.stmts if isinstance(b, S.Block) else [b]):
            self.stmt(s)

    def stmt(self, s) -> None:
        getattr(self, "st_" + type(s).__name__)(s)

    def st_Block(self, s):
        self.block(s)

    def st_Empty(self, s):
        pass

    def st_ConstDecl(self, s):
        """Constants are folded into their uses."""

    def st_VarDecl(self, s):
        n = self.local_name(s, s.name)
        self.em(f"{n} = {self.init_value(s)}")

    def st_Assign(self, s):
        if isinstance(s.target, S.DontCare):
            self.em(self.ex(s.value))
            return
        # P4 spec "Assignment statement": the left-hand side is evaluated to an l-value first, then the
        # right-hand side. Runtime stack indexes in the target are therefore computed before the value
        # (whose hoisted calls may change them, e.g. h.h[f(x)].a = g(x) with g writing x).
        pinned = self._pin_indexes(s.target)
        try:
            t = s.target.type
            if isinstance(t, (T.FieldsT, T.StackT)):
                self.store(s.target, self.materialize(s.value, t, copy=False))
                return
            self.store(s.target, self.ex(s.value))
        finally:
            for k in pinned:
                self._pinned.pop(k, None)

    def st_CallStmt(self, s):
        code = self.ex_Call(s.call, statement=True)
        if code:
            self.em(code)

    def st_If(self, s):
        c = self.ex(s.cond)
        with self.em.indent(f"if {c}:"):
            self.stmt(s.then)
        if s.other is not None:
            with self.em.indent("else:"):
                self.stmt(s.other)

    def st_Switch(self, s):
        t = s.expr.type
        subject = self.new_tmp()
        if isinstance(t, T.ActionEnumT):
            self.em(f"{subject} = {self.ex(s.expr.expr)}.action.name")
        else:
            self.em(f"{subject} = {self.ex(s.expr)}")
        pending, first, default = [], True, None
        for case in s.cases:
            for label in case.labels:
                if isinstance(label, S.Default):
                    default = case
                else:
                    pending.append(self._switch_label(label, t))
            if case.body is None:
                continue
            if case is default or not pending:
                default = case
                pending = []
                continue
            cond = f"{subject} in ({', '.join(pending)},)" if len(pending) > 1 else f"{subject} == {pending[0]}"
            with self.em.indent(f"{'if' if first else 'elif'} {cond}:"):
                self.block(case.body)
            first, pending = False, []
        if default is not None and default.body is not None:
            if first:
                self.block(default.body)
            else:
                with self.em.indent("else:"):
                    self.block(default.body)

    def _switch_label(self, label, t) -> str:
        if isinstance(t, T.ActionEnumT):
            return repr(self.action_cp_name(label.action))
        return self.ex(label)

    def st_Exit(self, s):
        self.em("raise ExitSignal()")

    def st_Return(self, s):
        outs = self.outs or []
        if s.value is None:
            self.em(f"return ({', '.join(outs)},)" if outs else "return")
            return
        t = s.value.type
        v = self.materialize(s.value, t, copy=True) if isinstance(t, (T.FieldsT, T.StackT)) else self.ex(s.value)
        self.em(f"return ({v}, {', '.join(outs)})" if outs else f"return {v}")

    def st_For(self, s):
        for i in s.init:
            self.stmt(i)
        self.loop_updates.append(s.update)
        with self.em.indent("while True:"):
            if s.cond is not None:
                c = self.ex(s.cond)
                with self.em.indent(f"if not ({c}):"):
                    self.em("break")
            self.stmt(s.body)
            for u in s.update:
                self.stmt(u)
        self.loop_updates.pop()

    def st_ForIn(self, s):
        n = self.local_name(s.decl, s.var)
        if isinstance(s.iterable, S.Range):
            lo, hi = self.ex(s.iterable.lo), self.ex(s.iterable.hi)
            header = f"for {n} in range({lo}, ({hi}) + 1):"
        else:
            header = f"for {n} in {self.ex(s.iterable)}.h:"
        self.loop_updates.append([])
        with self.em.indent(header):
            self.stmt(s.body)
        self.loop_updates.pop()

    def st_Break(self, s):
        self.em("break")

    def st_Continue(self, s):
        for u in (self.loop_updates[-1] if self.loop_updates else []):
            self.stmt(u)
        self.em("continue")

    # -- stores -------------------------------------------------------------------------------
    def store(self, target, value: str) -> None:
        """Emit code assigning the Python expression `value` to the l-value `target`."""
        t = target.type
        if isinstance(target, S.DontCare):
            self.em(value)
            return
        if isinstance(t, (T.FieldsT, T.StackT)):
            self.em(f"{self.ex(target)}.assign({value})")
            self._union_fixup(target)
            return
        if isinstance(target, S.Slice):
            self._store_slice(target, value)
            return
        self.em(f"{self.lvalue(target)} = {value}")

    def _union_fixup(self, target) -> None:
        if isinstance(target, S.Member) and isinstance(target.expr.type, T.UnionT):
            u = self.ex(target.expr)
            self.em(f"if {u}.{attr(target.name)}.{VALID}: {u}.only({attr(target.name)!r})")

    def _store_slice(self, target: S.Slice, value: str) -> None:
        base_t = target.expr.type
        hi, lo = target.hi_v, target.lo_v
        m = (1 << (hi - lo + 1)) - 1
        keep = base_t.mask & ~(m << lo)
        b = self.ex(target.expr)
        if base_t.signed:
            new = f"_sw(({b} & {hex(keep)}) | ((({value}) & {hex(m)}) << {lo}), {base_t.width})"
        else:
            new = f"({b} & {hex(keep)}) | ((({value}) & {hex(m)}) << {lo})"
        self.store(target.expr, new)

    def lvalue(self, e) -> str:
        if isinstance(e, S.Name):
            return self.name_code(e)
        if isinstance(e, S.Member):
            self.note_member(e)
            return f"{self.ex(e.expr)}.{attr(e.name)}"
        if isinstance(e, S.Index):
            return self.ex(e)
        raise TypeCheckError(e.loc, f"{expr_text(e)} cannot be assigned to")

    def materialize(self, e, t, copy: bool) -> str:
        """A Python object of compound type t for expression e (list/struct initialisers built)."""
        if isinstance(e, (S.ListExpr, S.StructExpr)) or (isinstance(e, S.Cast) and isinstance(e.expr, (S.ListExpr, S.StructExpr))):
            return self.build_object(e.expr if isinstance(e, S.Cast) else e, t)
        if isinstance(e, S.Call):
            return self.ex(e)
        code = self.ex(e)
        return f"{code}.copy()" if copy else code

    def build_object(self, e, t) -> str:
        tmp = self.new_tmp()
        self.em(f"{tmp} = {self.L.types.new_value(t)}")
        if isinstance(e, S.StructExpr):
            pairs = [(n, v) for n, v in e.fields]
        else:
            pairs = list(zip(t.field_names(), e.items))
        for n, v in pairs:
            ft = t.field_type(n)
            code = self.materialize(v, ft, copy=False) if isinstance(ft, (T.FieldsT, T.StackT)) else self.ex(v)
            if isinstance(ft, (T.FieldsT, T.StackT)):
                self.em(f"{tmp}.{attr(n)}.assign({code})")
            else:
                self.em(f"{tmp}.{attr(n)} = {code}")
        if isinstance(t, T.HeaderT):
            self.em(f"{tmp}.{VALID} = True")
        return tmp

    # -- expressions --------------------------------------------------------------------------
    def capture(self, e) -> tuple[str, list[str]]:
        """Generate `e`, returning its code and the statements it needed (not emitted)."""
        start = len(self.em.lines)
        code = self.ex(e)
        lines = self.em.lines[start:]
        del self.em.lines[start:]
        prefix = "    " * self.em.depth
        return code, [line[len(prefix):] for line in lines]

    def replay(self, lines: list[str]) -> None:
        for line in lines:
            self.em(line)

    def spill(self, code: str, t) -> str:
        """Evaluate `code` now into a temporary (its operands may change later)."""
        if code.isidentifier() and code.startswith("_t") or _is_literal(code):
            return code
        tmp = self.new_tmp()
        self.em(f"{tmp} = {code}.copy()" if isinstance(t, (T.FieldsT, T.StackT)) else f"{tmp} = {code}")
        return tmp

    def ex(self, e) -> str:
        c = getattr(e, "const", None)
        if c is not None:
            return _literal(c)
        if isinstance(e, (S.Binary, S.Unary, S.Cast, S.Ternary)):
            try:
                return _literal(_fold(e))
            except (NotConstant, TypeError, KeyError, AttributeError):
                pass
        return getattr(self, "ex_" + type(e).__name__)(e)

    def ex_Name(self, e):
        return self.name_code(e)

    def name_code(self, e) -> str:
        sym: Sym = e.sym
        if sym is None:
            raise UnsupportedError(e.loc, f"{e.name} cannot be used as a value")
        kind = sym.kind
        if kind == "param":
            if sym.owner is self.decl:
                return self.param_name(sym.decl) if is_object(sym.type) else f"F.{self.param_name(sym.decl)}"
            return self.local_name(sym.decl, sym.name)
        if kind == "var":
            n = self.local_name(sym.decl, sym.name)
            return f"F.{n}" if id(sym.decl) in self.block_vars else n
        if kind == "const":
            if sym.value is None:
                return self.materialize(sym.decl.value, sym.type, copy=True)
            return _literal(sym.value)
        if kind == "ctor_param":
            v = self.inst.ctor[sym.name]
            return self.bind("SUB", sym.name, v) if isinstance(v, Instance) else _literal(v)
        if kind == "instance":
            obj = self.inst.objects.get(sym.name)
            if obj is None:
                obj = self.L.registry.globals.get(sym.name)
            if obj is None:
                raise UnsupportedError(e.loc, f"instance {sym.name} is not available here")
            return self.bind("SUB" if isinstance(obj, Instance) else "X", sym.name, obj)
        if kind == "table":
            return self.bind("TB", sym.name, self.inst.objects[sym.name])
        raise UnsupportedError(e.loc, f"{e.name} ({kind}) cannot be used as a value here")

    def note_member(self, e) -> None:
        if isinstance(e.expr.type, T.StructT) and e.expr.type.name == "standard_metadata_t":
            self.L.sm_fields.add(e.name)

    def ex_Member(self, e):
        bt = e.expr.type
        self.note_member(e)
        if isinstance(bt, T.ApplyResultT):
            entry = self.ex(e.expr)
            return {"hit": f"{entry}.hit", "miss": f"(not {entry}.hit)"}.get(e.name, f"{entry}.action.name")
        if isinstance(bt, T.StackT):
            return self._stack_member(e)
        return f"{self.ex(e.expr)}.{attr(e.name)}"

    def _stack_member(self, e):
        b = self.ex(e.expr)
        if e.name == "next":
            return f"{b}.get({b}.nxt)"
        if e.name == "last":
            return f"{b}.last()"
        if e.name == "lastIndex":
            return f"(({b}.nxt - 1) & 0xffffffff)"
        if e.name == "nextIndex":
            return f"{b}.nxt"
        raise UnsupportedError(e.loc, f"stack member {e.name} is not supported here")

    def ex_Index(self, e):
        b = self.ex(e.expr)
        if isinstance(e.expr.type, T.TupleT):
            return f"{b}[{_fold(e.index)}]"
        c = getattr(e.index, "const", None)
        if isinstance(c, int):
            return f"{b}.h[{c}]"
        pinned = getattr(self, "_pinned", {}).get(id(e))
        return f"{b}.get({pinned if pinned is not None else self.ex(e.index)})"

    def _pin_indexes(self, target) -> list:
        """Evaluate the runtime indexes of an l-value now (outermost base first) into temporaries."""
        pinned, chain = [], []
        e = target
        while isinstance(e, (S.Member, S.Index, S.Slice)):
            chain.append(e)
            e = e.expr
        for e in reversed(chain):
            if isinstance(e, S.Index) and not isinstance(e.expr.type, T.TupleT) \
                    and not isinstance(getattr(e.index, "const", None), int):
                if not hasattr(self, "_pinned"):
                    self._pinned = {}
                self._pinned[id(e)] = self.spill(self.ex(e.index), e.index.type)
                pinned.append(id(e))
        return pinned

    def ex_Slice(self, e):
        m = (1 << (e.hi_v - e.lo_v + 1)) - 1
        b = self.ex(e.expr)
        if isinstance(e.expr.type, T.BitT) and e.expr.type.signed:
            b = f"({b} & {hex(e.expr.type.mask)})"
        return f"(({b} >> {e.lo_v}) & {hex(m)})" if e.lo_v else f"({b} & {hex(m)})"

    def ex_Unary(self, e):
        x = self.ex(e.expr)
        t = e.type
        if e.op == "!":
            return f"(not {x})"
        if e.op == "+":
            return x
        if not isinstance(t, T.BitT):
            return f"({e.op}{x})"
        if e.op == "~":
            return f"(~{x})" if t.signed else f"({x} ^ {hex(t.mask)})"
        return _wrap(f"-{x}", t)

    def ex_Binary(self, e):
        op, t = e.op, e.type
        if op in ("&&", "||"):
            return self._short_circuit(e)
        l = self.ex(e.left)
        r, lines = self.capture(e.right)
        if lines:                       # the right operand has side effects: left goes first
            l = self.spill(l, e.left.type)
            self.replay(lines)
        if op in ("==", "!="):
            lt = e.left.type
            if isinstance(lt, (T.FieldsT, T.StackT)):
                return f"({'' if op == '==' else 'not '}{l}.is_equal({r}))"
            return f"({l} {op} {r})"
        if op in ("<", ">", "<=", ">="):
            return f"({l} {op} {r})"
        if not isinstance(t, T.BitT):
            return f"({l} {_pyop(op)} {r})"
        return self._arith(op, l, r, e, t)

    def _arith(self, op, l, r, e, t: T.BitT) -> str:
        if op in ("+", "-", "*"):
            return _wrap(f"{l} {op} {r}", t)
        if op in ("&", "|", "^"):
            return f"({l} {op} {r})"
        if op == "/":
            return f"_div({l}, {r})"
        if op == "%":
            return f"_mod({l}, {r})"
        if op == "<<":
            c = getattr(e.right, "const", None)
            if isinstance(c, int):
                return "0" if c >= t.width else _wrap(f"{l} << {c}", t)
            return f"_shl({l}, {r}, {t.width})" if not t.signed else f"_sw({l} << min({r}, {t.width}), {t.width})"
        if op == ">>":
            return f"({l} >> {r})"
        if op in ("|+|", "|-|"):
            lo, hi = (-(1 << (t.width - 1)), (1 << (t.width - 1)) - 1) if t.signed else (0, t.mask)
            return f"_sat({l} {op[1]} {r}, {lo}, {hi})"
        if op == "++":
            lw, rw = e.left.type.width, e.right.type.width
            v = f"((({l}) & {hex((1 << lw) - 1)}) << {rw}) | (({r}) & {hex((1 << rw) - 1)})"
            return f"_sx({v}, {t.width})" if t.signed else f"({v})"
        raise UnsupportedError(e.loc, f"operator {op} is not supported")

    def _short_circuit(self, e) -> str:
        l = self.ex(e.left)
        r, lines = self.capture(e.right)
        word = "and" if e.op == "&&" else "or"
        if not lines:
            return f"({l} {word} {r})"
        tmp = self.new_tmp()
        self.em(f"{tmp} = {l}")
        with self.em.indent(f"if {'' if e.op == '&&' else 'not '}{tmp}:"):
            self.replay(lines)
            self.em(f"{tmp} = {r}")
        return tmp

    def ex_Ternary(self, e):
        c = self.ex(e.cond)
        a, a_lines = self.capture(e.then)
        b, b_lines = self.capture(e.other)
        if not a_lines and not b_lines:
            return f"({a} if {c} else {b})"
        tmp = self.new_tmp()
        with self.em.indent(f"if {c}:"):
            self.replay(a_lines)
            self.em(f"{tmp} = {a}")
        with self.em.indent("else:"):
            self.replay(b_lines)
            self.em(f"{tmp} = {b}")
        return tmp

    def ex_Cast(self, e):
        src, dst = e.expr.type, e.to_type
        if isinstance(dst, T.FieldsT):
            return self.materialize(e, dst, copy=True)
        x = self.ex(e.expr)
        if isinstance(dst, T.BoolT):
            return x if isinstance(src, T.BoolT) else f"({x} != 0)"
        if isinstance(dst, T.EnumT) and dst.underlying is not None:
            dst = dst.underlying
        if isinstance(src, T.EnumT) and src.underlying is not None:
            src = src.underlying
        if not isinstance(dst, T.BitT):
            return x
        if isinstance(src, T.BoolT):
            x = f"(1 if {x} else 0)"
            src = T.BitT(1)
        if dst.signed:
            if isinstance(src, T.BitT) and not src.signed and src.width < dst.width:
                return x
            return f"_sw({x}, {dst.width})"
        if isinstance(src, T.BitT) and not src.signed and src.width <= dst.width:
            return x
        return f"({x} & {hex(dst.mask)})"

    def ex_ListExpr(self, e):
        if isinstance(e.type, T.FieldsT):
            return self.build_object(e, e.type)
        return "(" + "".join(self.ex(i) + ", " for i in e.items) + ")"

    def ex_StructExpr(self, e):
        return self.build_object(e, e.type)

    def ex_IntLit(self, e):
        return repr(e.value)

    def ex_BoolLit(self, e):
        return "True" if e.value else "False"

    def ex_StrLit(self, e):
        return repr(e.value)

    def ex_DontCare(self, e):
        return self.L.types.new_value(e.type)

    def ex_TypeExpr(self, e):
        raise UnsupportedError(e.loc, "a type cannot be used as a value")

    # -- calls --------------------------------------------------------------------------------
    def ex_Call(self, e, statement: bool = False):
        ft = e.callee if hasattr(e, "callee") else None
        if hasattr(e, "constructs"):
            raise UnsupportedError(e.loc, "constructor calls are only allowed as instantiations")
        kind = ft.kind
        if kind == "builtin":
            return self._builtin(e, ft)
        if kind == "apply":
            return self._apply(e, ft)
        if kind == "function":
            return self.call_user(f"FN_{_ident(e.decl.name)}", e, [], returns=self._returns(e.decl))
        if kind == "action":
            return self.call_user(self.action_fn(e.decl), e, self.ctx_params, returns=False)
        return Intrinsics(self).call(e, ft)

    def _returns(self, d) -> bool:
        return not isinstance(getattr(d, "rtype", T.VOID), T.VoidT)

    def call_user(self, fn: str, e, ctx: list, returns: bool, extra=()) -> str | None:
        """Call a generated function; scalar out/inout results are stored after the call."""
        args, outs = [], []
        for p, a in e.bound:
            if a is None or a.value is None or isinstance(a.value, S.DontCare):
                args.append(self.ex(p.default) if a is None and p.default is not None else self.L.types.new_value(p.type))
                continue
            code, lines = self.capture(a.value)
            if lines:                   # earlier arguments are evaluated before this one
                args = [self.spill(c, None) for c in args]
                self.replay(lines)
            args.append(code)
            if not is_object(p.type) and p.direction in ("out", "inout"):
                outs.append(a.value)
        call = f"{fn}({', '.join(list(ctx) + args + list(extra))})"
        if not outs:
            return call
        tmp = self.new_tmp()
        with self.em.indent("try:"):
            self.em(f"{tmp} = {call}")
        with self.em.indent("except ExitSignal as _x:"):
            with self.em.indent("if getattr(_x, 'outs', None) is not None:"):
                self.em(f"{tmp} = _x.outs")
                self.em("_x.outs = None")
                for k, target in enumerate(outs):
                    self.store(target, f"{tmp}[{k}]")
            self.em("raise")
        k = 1 if returns else 0
        for target in outs:
            self.store(target, f"{tmp}[{k}]")
            k += 1
        return f"{tmp}[0]" if returns else None

    def _apply(self, e, ft):
        target = ft.target
        t = target.type
        if isinstance(t, T.TableT):
            return f"TA_{_ident(t.decl.name)}({', '.join(self.ctx_params)})"
        sub = self.ex(target)
        return self.call_user(sub, e, [], returns=False)

    def _builtin(self, e, ft):
        target, name = ft.target, ft.name
        b = self.ex(target)
        if name == "isValid":
            return f"{b}.is_valid()" if isinstance(target.type, T.UnionT) else f"{b}.{VALID}"
        if name == "setValid":
            self.em(f"{b}.set_valid()")
            self._union_fixup(target)
            return None
        if name == "setInvalid":
            if isinstance(target.type, T.UnionT):
                for n, _ in target.type.fields:
                    self.em(f"{b}.{attr(n)}.{VALID} = False")
                return None
            return f"{b}.set_invalid()"
        if name in ("push_front", "pop_front"):
            return f"{b}.{name}({e.args[0].const})"
        return repr(e.const)


class Intrinsics:
    """Code for extern functions and methods of core.p4 and v1model.p4."""

    def __init__(self, g: BlockGen):
        self.g = g

    def call(self, e, ft):
        if ft.kind == "method":
            recv = ft.target.type.decl.name
            fn = getattr(self, f"m_{recv}_{ft.name}", None)
        else:
            recv = None
            fn = getattr(self, f"f_{ft.name}", None)
        if fn is None:
            what = f"{recv}.{ft.name}" if recv else ft.name
            raise UnsupportedError(e.loc, f"extern {what} is not supported by this target")
        for feature in ("clone", "resubmit", "recirculate", "truncate", "digest", "log"):
            if ft.name.startswith(feature):
                self.g.L.features.add(feature)
        args = {p.name: a.value if a is not None else None for p, a in e.bound}
        return fn(e, ft, args)

    def ex(self, e):
        return self.g.ex(e)

    # -- packet_in / packet_out ---------------------------------------------------------------
    def m_packet_in_extract(self, e, ft, args):
        pkt = self.ex(ft.target)
        target = e.bound[0][1].value
        extra = ""
        if len(e.bound) > 1:
            extra = ", " + self.ex(e.bound[1][1].value)
        if isinstance(target, S.Member) and isinstance(target.expr.type, T.StackT) and target.name == "next":
            self.g.em(f"{self.ex(target.expr)}.next_for_extract().unpack({pkt}{extra})")
        else:
            self._extract(target, pkt, extra)
            self.g._union_fixup(target)
        return None

    def _extract(self, target, pkt: str, extra: str) -> None:
        """A fixed-size header is unpacked in line (saving a call per header in the parser)."""
        types = self.g.L.types
        if not extra and isinstance(target.type, T.HeaderT):
            types.class_name(target.type)
            lines = types.unpack_inline(target.type, "_h", pkt)
            if lines is not None:
                self.g.em(f"_h = {self.ex(target)}")
                for line in lines:
                    self.g.em(line)
                return
        self.g.em(f"{self.ex(target)}.unpack({pkt}{extra})")

    def m_packet_in_lookahead(self, e, ft, args):
        pkt = self.ex(ft.target)
        t = e.type
        if isinstance(t, T.HeaderT):
            return f"_lookahead_hdr({pkt}, {self.g.L.types.class_name(t)})"
        if isinstance(t, T.BoolT):
            return f"(_lookahead({pkt}, 1) != 0)"
        w = T.width_of(t)
        if isinstance(t, T.BitT) and t.signed:
            return f"_sx(_lookahead({pkt}, {w}), {w})"
        if isinstance(t, T.StructT):
            raise UnsupportedError(e.loc, "lookahead of a struct is not supported by this target")
        return f"_lookahead({pkt}, {w})"

    def m_packet_in_advance(self, e, ft, args):
        return f"_advance({self.ex(ft.target)}, {self.ex(args['sizeInBits'])})"

    def m_packet_in_length(self, e, ft, args):
        return f"{self.ex(ft.target)}.n"

    def m_packet_out_emit(self, e, ft, args):
        out = self.ex(ft.target)
        value = e.bound[0][1].value
        self._emit(out, self.ex(value), value.type)
        return None

    def _emit(self, out: str, code: str, t) -> None:
        if isinstance(t, T.HeaderT):
            self.g.L.types.class_name(t)
            packed = self.g.L.types.pack_inline(t, "_h")
            if packed is None:
                self.g.em(f"if {code}.{VALID}: {out}.parts.append({code}.pack())")
            else:                       # in line: no call of the header's pack method
                self.g.em(f"_h = {code}")
                self.g.em(f"if _h.{VALID}: {out}.parts.append({packed})")
        elif isinstance(t, (T.StructT, T.UnionT)):
            for n, ft in t.fields:
                self._emit(out, f"{code}.{attr(n)}", ft)
        elif isinstance(t, T.StackT):
            for i in range(t.size):
                self._emit(out, f"{code}.h[{i}]", t.elem)
        else:
            raise UnsupportedError(None, f"emit of {t} is not supported")

    def f_verify(self, e, ft, args):
        self.g.em(f"if not ({self.ex(args['check'])}): raise ParserException({self.ex(args['toSignal'])})")
        return None

    def f_static_assert(self, e, ft, args):
        try:
            ok = _fold(args["check"])
        except NotConstant:
            raise TypeCheckError(e.loc, "static_assert needs a compile-time condition") from None
        if not ok:
            msg = args.get("message")
            raise TypeCheckError(e.loc, f"static_assert failed{': ' + msg.value if msg is not None else ''}")
        return "True"

    # -- registers, counters, meters ----------------------------------------------------------
    def m_register_read(self, e, ft, args):
        r, res = self.ex(ft.target), args["result"]
        self.g.store(res, f"{r}.read({self.ex(args['index'])}, {self.ex(res)})")

    def m_register_write(self, e, ft, args):
        return f"{self.ex(ft.target)}.write({self.ex(args['index'])}, {self.ex(args['value'])})"

    def m_counter_count(self, e, ft, args):
        return f"{self.ex(ft.target)}.count({self.ex(args['index'])})"

    def m_direct_counter_count(self, e, ft, args):
        return None

    def m_meter_execute_meter(self, e, ft, args):
        res = args["result"]
        self.g.store(res, f"{self.ex(ft.target)}.execute({self.ex(args['index'])}, {self.ex(res)})")

    def m_direct_meter_read(self, e, ft, args):
        self.g.store(args["result"], f"{self.ex(ft.target)}.read()")

    def m_Checksum16_get(self, e, ft, args):
        return f"csum16({self.data_bytes(args['data'])})"

    # -- v1model functions --------------------------------------------------------------------
    def f_mark_to_drop(self, e, ft, args):
        sm = self.ex(args["standard_metadata"]) if "standard_metadata" in args else "CTX.sm"
        self.g.em(f"{sm}.egress_spec = {self.g.L.rt.drop_port}; {sm}.mcast_grp = 0")
        return None

    def f_hash(self, e, ft, args):
        res = args["result"]
        h = self.hash_fn(args["algo"], e)
        mask = hex(res.type.mask) if isinstance(res.type, T.BitT) else "-1"
        data = self.data_bytes(args["data"])
        base, mx = self.ex(args["base"]), args["max"]
        try:
            m = _fold(mx)
            value = f"(({base}) + {h}({data}) % {m}) & {mask}" if m else f"({base}) & {mask}"
        except NotConstant:
            value = f"_hashmod({h}({data}), {base}, {self.ex(mx)}, {mask})"
        self.g.store(res, value)

    def hash_fn(self, algo_expr, e) -> str:
        try:
            algo = _fold(algo_expr)[2]
        except (NotConstant, TypeError, IndexError):
            raise UnsupportedError(e.loc, "the hash algorithm must be a constant") from None
        fn = self.g.L.rt.hashes.function(algo)
        if fn is None:
            raise UnsupportedError(e.loc, f"hash algorithm {algo} is not supported by BMv2")
        return self.g.bind("HASH", algo, fn)

    def f_random(self, e, ft, args):
        res = args["result"]
        rand = self.g.bind("RAND", "rng", self.g.L.rt.rand)
        self.g.store(res, f"{rand}.value({self.ex(args['lo'])}, {self.ex(args['hi'])}, {self.ex(res)})")

    def f_digest(self, e, ft, args):
        values = ", ".join(f"{c}" for c, w, g in self.data_items(args["data"]))
        self.g.em(f"CTX.digests.append(({self.ex(args['receiver'])}, ({values},)))")
        return None

    def f_clone(self, e, ft, args):
        self.g.em(f"CTX.clone = ({self.ex(args['type'])}, {self.ex(args['session'])}, ())")

    def f_clone_preserving_field_list(self, e, ft, args):
        fl = self._field_list(args["index"])
        self.g.em(f"CTX.clone = ({self.ex(args['type'])}, {self.ex(args['session'])}, {fl})")

    def f_clone3(self, e, ft, args):
        fl = self._paths(args["data"])
        self.g.em(f"CTX.clone = ({self.ex(args['type'])}, {self.ex(args['session'])}, {fl!r})")

    def f_resubmit_preserving_field_list(self, e, ft, args):
        self.g.em(f"CTX.resubmit = {self._field_list(args['index'])}")

    def f_recirculate_preserving_field_list(self, e, ft, args):
        self.g.em(f"CTX.recirculate = {self._field_list(args['index'])}")

    def f_resubmit(self, e, ft, args):
        self.g.em(f"CTX.resubmit = {self._paths(args['data'])!r}")

    def f_recirculate(self, e, ft, args):
        self.g.em(f"CTX.recirculate = {self._paths(args['data'])!r}")

    def _field_list(self, index_expr) -> str:
        idx = _fold(index_expr)
        return repr(tuple(self.g.L.field_lists.get(idx, ())))

    def _paths(self, data) -> tuple:
        """Field paths named by a deprecated field-list argument: {meta.a, standard_metadata.x}."""
        items = data.items if isinstance(data, S.ListExpr) else [data]
        out = []
        for item in items:
            root, path = _path_of(item)
            if root is None:
                continue
            role = self._root_role(root)
            t = item.type
            if isinstance(t, T.StructT):
                out += [(role, path + (attr(n),)) for n, _ in t.fields]
            else:
                out.append((role, path))
        return tuple(out)

    def _root_role(self, root) -> str:
        sym = getattr(root, "sym", None)
        if sym is not None and sym.kind == "param" and isinstance(sym.type, T.StructT) and sym.type.name == "standard_metadata_t":
            return "sm"
        return "meta"

    def f_truncate(self, e, ft, args):
        self.g.em(f"CTX.truncate = {self.ex(args['length'])}")

    def f_assert(self, e, ft, args):
        self.g.em(f"if not ({self.ex(args['check'])}): raise AssertFailure({str(e.loc)!r})")

    f_assume = f_assert

    def f_log_msg(self, e, ft, args):
        msg = args["msg"].value if isinstance(args["msg"], S.StrLit) else self.ex(args["msg"])
        data = args.get("data")
        values = "()"
        if data is not None:
            values = "(" + "".join(f"{c}, " for c, w, g in self.data_items(data)) + ")"
        self.g.em(f"if CTX.log_enabled: CTX.logs.append(_fmt({msg!r}, {values}))")
        if self.g.tracing:
            self.g.em(f"TRACE('log_msg: ' + _fmt({msg!r}, {values}))")

    def checksum_code(self, e, args, payload: bool) -> str:
        """The checksum of a data list; csum16 of fixed fields is computed on one integer."""
        fast = self.csum16_of_int(args["algo"], args["data"]) if not payload else None
        if fast is not None:
            return fast
        h = self.hash_fn(args["algo"], e)
        return f"{h}({self.data_bytes(args['data'])}{' + CTX.payload' if payload else ''})"

    def csum16_of_int(self, algo_expr, data) -> str | None:
        try:
            if _fold(algo_expr)[2] != "csum16":
                return None
        except (NotConstant, TypeError, IndexError):
            return None
        items = self.data_items(data)
        guards = {g for _, _, g in items}
        if len(guards) != 1:
            return None
        value = _csum16_terms(items)
        guard = guards.pop()
        # csum16_int inlined: the ones' complement of the sum modulo 0xFFFF, 0xFFFF for zero data
        code = f"((_cs % 0xFFFF or 0xFFFF) ^ 0xFFFF if (_cs := {value}) else 0xFFFF)"
        return f"({code} if {guard} else 0xffff)" if guard else code

    def f_verify_checksum(self, e, ft, args, payload=False):
        data = self.checksum_code(e, args, payload)
        self.g.em(f"if ({self.ex(args['condition'])}) and {data} != {self.ex(args['checksum'])}: CTX.sm.checksum_error = 1")

    def f_update_checksum(self, e, ft, args, payload=False):
        value = self.checksum_code(e, args, payload)
        target = args["checksum"]
        mask = hex(target.type.mask) if isinstance(target.type, T.BitT) else "-1"
        with self.g.em.indent(f"if {self.ex(args['condition'])}:"):
            self.g.store(target, f"{value} & {mask}")

    def f_verify_checksum_with_payload(self, e, ft, args):
        self.f_verify_checksum(e, ft, args, payload=True)

    def f_update_checksum_with_payload(self, e, ft, args):
        self.f_update_checksum(e, ft, args, payload=True)

    # -- field lists to bytes -----------------------------------------------------------------
    def data_items(self, data) -> list:
        """(code, width, guard) for each field of a data argument, in order."""
        t = data.type
        if isinstance(data, S.ListExpr):
            out = []
            for item in data.items:
                out += self.data_items(item)
            return out
        if isinstance(t, (T.HeaderT, T.StructT, T.UnionT)) and not isinstance(data, S.ListExpr):
            code = self.ex(data)
            guard = f"{code}.{VALID}" if isinstance(t, T.HeaderT) else None
            out = []
            for n, ft in t.fields:
                sub = S.Member(data.loc, data, n)
                sub.type = ft
                for c, w, g in self.data_items(sub):
                    out.append((c, w, guard or g))
            return out
        if isinstance(t, T.InfIntT) or not isinstance(t, (T.BitT, T.BoolT, T.EnumT, T.VarbitT)):
            raise UnsupportedError(data.loc, f"{expr_text(data)} has type {t}; field lists need fixed-width fields")
        code = self.ex(data)
        if isinstance(t, T.BoolT):
            code = f"(1 if {code} else 0)"
        elif isinstance(t, T.BitT) and t.signed:
            code = f"({code} & {hex(t.mask)})"
        guard = None
        if isinstance(data, S.Member) and isinstance(data.expr.type, T.HeaderT):
            guard = f"{self.ex(data.expr)}.{VALID}"
        return [(code, T.width_of(t), guard)]

    def data_bytes(self, data) -> str:
        items = self.data_items(data)
        guards = {g for _, _, g in items}
        if guards == {None}:
            return _inline_pack(items)
        if len(guards) == 1:
            return f"({_inline_pack(items)} if {guards.pop()} else b'')"
        groups, cur, cur_guard = [], [], object()
        for c, w, g in items:
            if g != cur_guard and cur:
                groups.append((cur_guard, cur))
                cur = []
            cur_guard = g
            cur.append((c, w))
        if cur:
            groups.append((cur_guard, cur))
        parts = []
        for g, its in groups:
            tup = "(" + "".join(f"({c}, {w}), " for c, w in its) + ")"
            parts.append(f"({tup} if {g} else ())" if g else tup)
        return f"pack_fields({' + '.join(parts)})"


# -- table set-up ----------------------------------------------------------------------------
class TableBuilder:
    """After code generation: give each table its actions, default action and const entries."""

    def __init__(self, g: BlockGen, fns: dict):
        self.g = g
        self.fns = fns

    def install(self) -> None:
        for d in self.g.decl.locals:
            if isinstance(d, S.TableDecl):
                self.table(d, self.g.inst.objects[d.name])

    def table(self, d: S.TableDecl, table: R.Table) -> None:
        for ref in d.actions:
            name = self.g.action_cp_name(ref.decl)
            params = [(p.name, _param_width(p.type), isinstance(p.type, T.BitT) and p.type.signed)
                      for p in ref.decl.params if not p.direction]
            annos = {a.name for a in ref.annotations}
            table.actions[name] = R.ActionInfo(name, self.fns[(d.name, name)], params,
                                               "defaultonly" in annos, "tableonly" in annos)
        self.default(d, table)
        for i, entry in enumerate(d.entries or []):
            self.const_entry(d, table, entry, i)

    def default(self, d, table) -> None:
        ref = d.default_action
        if ref is None:
            noaction = next((a for a in table.actions.values() if a.name == "NoAction"), None)
            info = noaction or R.ActionInfo("NoAction", _noop, [])
            table.set_default(info, ())
            table.initial_default = (info, ())
            return
        info = table.actions[self.g.action_cp_name(ref.decl)]
        cp = [p for p in ref.decl.params if not p.direction]
        values = [a.value for a in ref.args][-len(cp):] if cp else []
        args = tuple(_fold(v) for v in values)
        table.set_default(info, args)
        table.initial_default = (info, args)

    def const_entry(self, d, table: R.Table, entry: S.Entry, index: int) -> None:
        match = tuple(_entry_match(ks, spec) for ks, spec in zip(entry.keys, table.keys))
        info = table.actions[self.g.action_cp_name(entry.action.decl)]
        cp = [p for p in entry.action.decl.params if not p.direction]
        args = tuple(_fold(a.value) for a in entry.action.args[-len(cp):]) if cp else ()
        prio, order = _entry_priority(d, entry, index)
        table.add(match, info, args, prio, order=order, is_const=entry.is_const)


def _entry_priority(d, entry, index: int) -> tuple[int, tuple]:
    """(priority, sort key; smaller wins) of a program-declared entry. Without a priority,
    earlier entries win (p4c numbers them 1, 2, ...). `@priority(n)` reaches BMv2 unchanged,
    where the smallest number wins; `priority = n:` follows the table's largest_priority_wins
    property (default true)."""
    for a in entry.annotations:
        if a.name == "priority" and a.body:
            n = a.body[0].value
            return n, (n, index)
    if entry.priority is not None:
        n = _fold(entry.priority)
        largest_wins = _fold(d.properties["largest_priority_wins"]) if "largest_priority_wins" in d.properties else True
        return n, ((-n if largest_wins else n), index)
    return index + 1, (index + 1, index)


def _trivial(decl) -> bool:
    """A control whose apply block does nothing (the architecture may skip calling it)."""
    return isinstance(decl, S.ControlDecl) and not decl.locals and not decl.body.stmts


def _noop(*args):
    return None


def _param_width(t) -> int:
    if isinstance(t, T.BoolT):
        return 1
    if isinstance(t, T.EnumT):
        return t.underlying.width if t.underlying else 32
    return T.width_of(t)


def _entry_match(ks, spec: R.KeySpec) -> tuple:
    full = (1 << spec.width) - 1
    if isinstance(ks, S.Default) or isinstance(ks, S.DontCare):
        if spec.kind == "range":
            return (0, full)
        if spec.kind == "lpm":
            return (0, 0, 0)
        return (0, 0)
    if isinstance(ks, S.Mask):
        v, m = _fold(ks.value) & full, _fold(ks.mask) & full
        if spec.kind == "lpm":
            plen = bin(m).count("1")
            return (v & m, m, plen)
        return (v & m, m)
    if isinstance(ks, S.Range):
        return (_fold(ks.lo) & full, _fold(ks.hi) & full)
    v = _const_int(ks) & full
    if spec.kind == "range":
        return (v, v)
    if spec.kind == "lpm":
        return (v, full, spec.width)
    return (v, full)


def _const_int(e) -> int:
    v = _fold(e)
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, tuple):
        return v[-1] if v[0] == "enum" else v[1]
    return v


def _is_literal(code: str) -> bool:
    return code.lstrip("-").isdigit() or code in ("True", "False")


def _literal(c) -> str:
    if isinstance(c, bool):
        return "True" if c else "False"
    if isinstance(c, int):
        return repr(c)
    if isinstance(c, tuple) and c and c[0] == "error":
        return repr(c[1])
    if isinstance(c, tuple) and c and c[0] == "enum":
        return repr(c[3])
    if isinstance(c, str):
        return repr(c)
    raise NotConstant()


def _wrap(expr: str, t: T.BitT) -> str:
    if t.signed:
        return f"_sw({expr}, {t.width})"
    return f"(({expr}) & {hex(t.mask)})"


def _pyop(op: str) -> str:
    return {"/": "//"}.get(op, op)


def _csum16_terms(items) -> str:
    """An integer congruent, modulo 0xFFFF, to the fields MSB first padded to 16-bit words,
    and zero only when they all are (all csum16_int needs): as 2**16 = 1 (mod 0xFFFF), each
    field shifted by its offset modulo 16, summed. Small integers instead of one wide one."""
    bits = sum(w for _, w, _ in items)
    terms, shift = [], bits + (-bits) % 16
    for c, w, _ in _shared_base(items):
        shift -= w
        terms.append(f"({c} << {shift % 16})" if shift % 16 else c)
    return "(" + (" + ".join(terms) or "0") + ")"


def _shared_base(items) -> list:
    """Items whose codes are all fields of one object (`p_hdr.ipv4.ttl`, ...) read it once:
    the first as `(_ck := p_hdr.ipv4).version`, the others as `_ck.ttl` (left to right)."""
    codes = [c for c, _, _ in items]
    base = codes[0].rpartition(".")[0] if codes else ""
    if len(codes) < 2 or not base or not all(c.rpartition(".")[0] == base and c.rpartition(".")[2].isidentifier()
                                              for c in codes):
        return items
    first = f"(_ck := {base}).{codes[0].rpartition('.')[2]}"
    return [(first if i == 0 else f"_ck.{c.rpartition('.')[2]}", w, g) for i, (c, w, g) in enumerate(items)]


def _inline_pack(items) -> str:
    bits = sum(w for _, w, _ in items)
    if bits == 0:
        return "b''"
    pad = (-bits) % 8
    terms, shift = [], bits + pad
    for c, w, _ in items:
        shift -= w
        terms.append(f"({c} << {shift})" if shift else c)
    return f"({' | '.join(terms)}).to_bytes({(bits + pad) // 8}, 'big')"


def _path_of(e):
    """(root Name, attribute path) of an l-value like meta.a.b."""
    path = []
    while isinstance(e, S.Member):
        path.append(attr(e.name))
        e = e.expr
    if isinstance(e, S.Name):
        return e, tuple(reversed(path))
    return None, ()


def _always_returns(b) -> bool:
    stmts = b.stmts if isinstance(b, S.Block) else [b]
    return bool(stmts) and isinstance(stmts[-1], (S.Return, S.Exit))


def _ident(name: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in name)


def _numbered(source: str, around: int | None) -> str:
    lines = source.split("\n")
    lo = max(0, (around or 1) - 5)
    return "\n".join(f"{i + 1:5d} {lines[i]}" for i in range(lo, min(len(lines), lo + 10)))
