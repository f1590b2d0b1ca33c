"""Stage 3: a recursive-descent parser for P4_16, producing `syntax` nodes.

The grammar is context sensitive (is `T` a type or a value?), so the parser keeps a scoped set
of type names, as the P4_16 specification's grammar appendix asks the lexer to. Where the grammar
is ambiguous between a generic call `f<T>(x)` and a comparison, or a cast `(T)x` and a
parenthesised expression, the parser tries the first reading and backtracks.
"""
from __future__ import annotations

from contextlib import contextmanager

from . import syntax as S
from .errors import ParseError
from .lexer import Token, tokenize
from .preprocess import Preprocessor

BUILTIN_TYPES = {"bit", "int", "varbit", "bool", "error", "string", "void", "match_kind",
                 "tuple", "list", "packet_in", "packet_out"}
TYPE_KEYWORDS = {"bit", "int", "varbit", "bool", "error", "string", "void", "tuple", "match_kind", "list"}

BINARY_LEVELS = [
    ["||"], ["&&"], ["==", "!="], ["<", ">", "<=", ">="], ["|"], ["^"], ["&"],
    ["<<", ">>"], ["++", "+", "-", "|+|", "|-|"], ["*", "/", "%"],
]


class _Backtrack(Exception):
    pass


class Parser:
    def __init__(self, tokens: list[Token]):
        self.toks = tokens
        self.pos = 0
        self.type_scopes: list[set[str]] = [set(BUILTIN_TYPES)]

    # -- token helpers -------------------------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.toks[self.pos]

    def peek(self, k: int = 1) -> Token:
        return self.toks[min(self.pos + k, len(self.toks) - 1)]

    def at(self, *texts: str) -> bool:
        t = self.tok
        return t.kind in ("op", "kw") and t.text in texts

    def accept(self, text: str) -> Token | None:
        if self.at(text):
            return self.advance()
        return None

    def advance(self) -> Token:
        t = self.toks[self.pos]
        if t.kind != "eof":
            self.pos += 1
        return t

    def expect(self, text: str, what: str | None = None) -> Token:
        if self.at(text):
            return self.advance()
        raise self.error(f"expected {what or repr(text)}, found {self.describe(self.tok)}")

    def ident(self, what: str = "a name") -> Token:
        t = self.tok
        if t.kind == "id" or (t.kind == "kw" and t.text in ("apply", "state", "type", "key", "actions", "entries")):
            return self.advance()
        raise self.error(f"expected {what}, found {self.describe(t)}")

    def at_ident(self) -> bool:
        return self.tok.kind == "id"

    def error(self, msg: str, tok: Token | None = None) -> ParseError:
        return ParseError((tok or self.tok).loc, msg)

    @staticmethod
    def describe(t: Token) -> str:
        return "end of input" if t.kind == "eof" else repr(t.text)

    def close_angle(self) -> None:
        self.expect(">", "'>' closing the type arguments")

    # -- type-name scopes ----------------------------------------------------------------------
    def is_type_name(self, name: str) -> bool:
        return any(name in s for s in self.type_scopes)

    def add_type(self, name: str) -> None:
        self.type_scopes[-1].add(name)

    @contextmanager
    def type_scope(self, names=()):
        self.type_scopes.append(set(names))
        try:
            yield
        finally:
            self.type_scopes.pop()

    def at_type_start(self) -> bool:
        t = self.tok
        if t.kind == "kw" and t.text in TYPE_KEYWORDS:
            return True
        if t.kind == "op" and t.text == "." and self.peek().kind == "id":
            return self.is_type_name(self.peek().text)
        return t.kind == "id" and self.is_type_name(t.text)

    def speculate(self, fn):
        """Run fn(); on a parse failure restore the position and return None."""
        saved = self.pos
        try:
            return fn()
        except (ParseError, _Backtrack):
            self.pos = saved
            return None

    # -- program -------------------------------------------------------------------------------
    def program(self) -> S.Program:
        loc = self.tok.loc
        decls = []
        while self.tok.kind != "eof":
            if self.accept(";"):
                continue
            decls.append(self.declaration())
        return S.Program(loc, decls)

    def annotations(self) -> list[S.Annotation]:
        out = []
        while self.at("@"):
            at = self.advance()
            name = self.ident("an annotation name").text
            body = []
            if self.at("("):
                body = self.balanced("(", ")")
            elif self.at("[") and self.toks[self.pos - 1].adjacent:
                body = self.balanced("[", "]")
            out.append(S.Annotation(at.loc, name, body))
        return out

    def balanced(self, open_: str, close: str) -> list[Token]:
        self.expect(open_)
        depth, body = 1, []
        while True:
            t = self.advance()
            if t.kind == "eof":
                raise self.error(f"unbalanced {open_!r} in annotation", t)
            if t.kind == "op" and t.text == open_:
                depth += 1
            elif t.kind == "op" and t.text == close:
                depth -= 1
                if depth == 0:
                    return body
            body.append(t)

    def declaration(self):
        annos = self.annotations()
        t = self.tok
        handlers = {
            "const": self.const_decl, "typedef": self.typedef_decl, "type": self.typedef_decl,
            "header": self.header_decl, "header_union": self.header_decl, "struct": self.header_decl,
            "enum": self.enum_decl, "error": self.error_decl, "match_kind": self.error_decl,
            "extern": self.extern_decl, "action": self.action_decl, "parser": self.parser_decl,
            "control": self.control_decl, "package": self.package_decl,
        }
        if t.kind == "kw" and t.text in handlers and not (t.text == "error" and self.peek().text == "."):
            d = handlers[t.text]()
        else:
            d = self.typed_declaration(allow_function=True)
        if isinstance(d, S.Decl):
            d.annotations = annos + d.annotations
        return d

    def const_decl(self) -> S.ConstDecl:
        loc = self.expect("const").loc
        ty = self.type_ref()
        name = self.ident("the constant's name").text
        self.expect("=")
        value = self.expression()
        self.expect(";")
        return S.ConstDecl(loc, name, type_ref=ty, value=value)

    def typedef_decl(self) -> S.TypedefDecl:
        kw = self.advance()
        annos = self.annotations()
        if self.at("struct", "header", "header_union", "enum"):
            inner = self.declaration()
            ty = S.TypeRef(inner.loc, inner.name)
            decls = [inner]
        else:
            ty = self.type_ref()
            decls = []
        name = self.ident("the type's name").text
        self.expect(";")
        self.add_type(name)
        d = S.TypedefDecl(kw.loc, name, type_ref=ty, newtype=kw.text == "type", annotations=annos)
        if decls:
            d.inner = decls[0]  # type: ignore[attr-defined]
        return d

    def header_decl(self):
        kw = self.advance()
        name = self.ident("the type's name").text
        self.add_type(name)
        tps = self.type_params()
        with self.type_scope(tps):
            self.expect("{")
            fields = []
            while not self.accept("}"):
                fannos = self.annotations()
                ftype = self.type_ref()
                fname = self.ident("a field name")
                self.expect(";")
                fields.append(S.Field(fname.loc, fname.text, ftype, fannos))
        cls = {"header": S.HeaderDecl, "header_union": S.HeaderUnionDecl, "struct": S.StructDecl}[kw.text]
        return cls(kw.loc, name, fields=fields, type_params=tps)

    def enum_decl(self) -> S.EnumDecl:
        loc = self.expect("enum").loc
        underlying = self.type_ref() if self.at("bit", "int") or (self.at_ident() and self.peek().kind == "id") else None
        name = self.ident("the enum's name").text
        self.add_type(name)
        self.expect("{")
        members = []
        while not self.accept("}"):
            self.annotations()
            m = self.ident("an enum member")
            value = self.expression() if self.accept("=") else None
            members.append((m.text, value, m.loc))
            if not self.accept(","):
                self.expect("}")
                break
        return S.EnumDecl(loc, name, members=members, underlying=underlying)

    def error_decl(self):
        kw = self.advance()
        self.expect("{")
        members = []
        while not self.accept("}"):
            m = self.ident("a member name")
            members.append((m.text, m.loc))
            if not self.accept(","):
                self.expect("}")
                break
        cls = S.ErrorDecl if kw.text == "error" else S.MatchKindDecl
        return cls(kw.loc, kw.text, members=members)

    def extern_decl(self):
        loc = self.expect("extern").loc
        annos = self.annotations()
        # extern object type: `extern Name<T> { ... }`; extern function: `extern T f(...);`
        if self.at_ident() and (self.peek().text in ("{", "<") and not self.is_type_name(self.tok.text) or self.peek().text == "{"):
            if self.peek().text == "<" and self._looks_like_function_after_generic():
                return self.function_prototype(loc, annos)
            name = self.ident().text
            self.add_type(name)
            tps = self.type_params()
            methods = []
            with self.type_scope(tps):
                self.expect("{")
                while not self.accept("}"):
                    methods.append(self.method_prototype(name))
            return S.ExternDecl(loc, name, type_params=tps, methods=methods, annotations=annos)
        return self.function_prototype(loc, annos)

    def _looks_like_function_after_generic(self) -> bool:
        """`extern Name<...> { ...}` vs `extern Name<...> f(...)`: the latter is rare; scan ahead."""
        depth, i = 0, self.pos + 1
        while i < len(self.toks):
            t = self.toks[i]
            if t.text == "<":
                depth += 1
            elif t.text == ">":
                depth -= 1
                if depth == 0:
                    return self.toks[i + 1].text != "{"
            i += 1
        return False

    def function_prototype(self, loc, annos) -> S.MethodDecl:
        rtype = self.type_ref()
        name = self.ident("the function's name").text
        tps = self.type_params()
        with self.type_scope(tps):
            params = self.params()
        self.expect(";")
        return S.MethodDecl(loc, name, return_type=rtype, type_params=tps, params=params, annotations=annos)

    def method_prototype(self, extern_name: str) -> S.MethodDecl:
        annos = self.annotations()
        loc = self.tok.loc
        abstract = bool(self.accept("abstract"))
        if self.at_ident() and self.tok.text == extern_name and self.peek().text == "(":
            self.advance()
            params = self.params()
            self.expect(";")
            return S.MethodDecl(loc, extern_name, return_type=None, type_params=[], params=params, annotations=annos)
        rtype = self.type_ref()
        name = self.ident("a method name").text
        tps = self.type_params()
        with self.type_scope(tps):
            params = self.params()
        self.expect(";")
        return S.MethodDecl(loc, name, return_type=rtype, type_params=tps, params=params,
                            abstract=abstract, annotations=annos)

    def type_params(self) -> list[str]:
        if not self.accept("<"):
            return []
        names = []
        while True:
            names.append(self.ident("a type parameter").text)
            if not self.accept(","):
                break
        self.close_angle()
        return names

    def params(self) -> list[S.Param]:
        self.expect("(")
        out = []
        if self.accept(")"):
            return out
        while True:
            annos = self.annotations()
            loc = self.tok.loc
            direction = self.advance().text if self.at("in", "out", "inout") else ""
            ty = self.type_ref()
            name = self.ident("a parameter name").text
            default = self.expression() if self.accept("=") else None
            out.append(S.Param(loc, direction, ty, name, default, annos))
            if not self.accept(","):
                break
        self.expect(")")
        return out

    def action_decl(self) -> S.ActionDecl:
        loc = self.expect("action").loc
        name = self.ident("the action's name").text
        params = self.params()
        body = self.block()
        return S.ActionDecl(loc, name, params=params, body=body)

    def parser_decl(self):
        loc = self.expect("parser").loc
        name = self.ident("the parser's name").text
        self.add_type(name)
        tps = self.type_params()
        with self.type_scope(tps):
            params = self.params()
            if self.accept(";"):
                return S.ParserTypeDecl(loc, name, type_params=tps, params=params)
            ctor = self.params() if self.at("(") else []
            self.expect("{")
            locals_, states = [], []
            while not self.accept("}"):
                annos = self.annotations()
                if self.at("state"):
                    st = self.parser_state()
                    st.annotations = annos
                    states.append(st)
                else:
                    d = self.local_declaration()
                    if isinstance(d, S.Decl):
                        d.annotations = annos + d.annotations
                    locals_.append(d)
        return S.ParserDecl(loc, name, type_params=tps, params=params, ctor_params=ctor,
                            locals=locals_, states=states)

    def control_decl(self):
        loc = self.expect("control").loc
        name = self.ident("the control's name").text
        self.add_type(name)
        tps = self.type_params()
        with self.type_scope(tps):
            params = self.params()
            if self.accept(";"):
                return S.ControlTypeDecl(loc, name, type_params=tps, params=params)
            ctor = self.params() if self.at("(") else []
            self.expect("{")
            locals_ = []
            while not self.at("apply"):
                if self.tok.kind == "eof" or self.at("}"):
                    raise self.error(f"control {name} has no apply block")
                annos = self.annotations()
                d = self.local_declaration()
                if isinstance(d, S.Decl):
                    d.annotations = annos + d.annotations
                locals_.append(d)
            self.expect("apply")
            body = self.block()
            self.expect("}")
        return S.ControlDecl(loc, name, type_params=tps, params=params, ctor_params=ctor,
                             locals=locals_, body=body)

    def package_decl(self) -> S.PackageTypeDecl:
        loc = self.expect("package").loc
        name = self.ident("the package's name").text
        self.add_type(name)
        tps = self.type_params()
        with self.type_scope(tps):
            params = self.params()
        self.expect(";")
        return S.PackageTypeDecl(loc, name, type_params=tps, params=params)

    def local_declaration(self):
        if self.at("const"):
            return self.const_decl()
        if self.at("action"):
            return self.action_decl()
        if self.at("table"):
            return self.table_decl()
        if self.at("value_set"):
            return self.value_set_decl()
        if self.at(";"):
            self.advance()
            return S.Empty(self.toks[self.pos - 1].loc)
        return self.typed_declaration(allow_function=False)

    def typed_declaration(self, allow_function: bool):
        """`T name [= e];`, `T(args) name [{...}];` or (at top level) `T name(params) {...}`."""
        loc = self.tok.loc
        ty = self.type_ref()
        if self.at("("):
            args = self.arguments()
            name = self.ident("the instance's name").text
            body = []
            if self.at("{"):
                self.advance()
                while not self.accept("}"):
                    body.append(self.declaration())
            self.expect(";")
            return S.Instantiation(loc, name, type_ref=ty, args=args, body=body)
        name_tok = self.ident("a name")
        if allow_function and self.at("(", "<"):
            tps = self.type_params()
            with self.type_scope(tps):
                params = self.params()
                body = self.block()
            return S.FunctionDecl(loc, name_tok.text, return_type=ty, type_params=tps, params=params, body=body)
        init = self.expression() if self.accept("=") else None
        self.expect(";")
        return S.VarDecl(loc, name_tok.text, type_ref=ty, init=init)

    def value_set_decl(self) -> S.ValueSetDecl:
        loc = self.expect("value_set").loc
        self.expect("<")
        elem = self.type_ref()
        self.close_angle()
        self.expect("(")
        size = self.expression()
        self.expect(")")
        name = self.ident().text
        self.expect(";")
        return S.ValueSetDecl(loc, name, elem_type=elem, size=size)

    # -- types ---------------------------------------------------------------------------------
    def type_ref(self):
        t = self.tok
        if t.kind == "op" and t.text == ".":
            self.advance()
            t = self.tok
        if t.kind == "kw" and t.text in ("bit", "int", "varbit"):
            self.advance()
            args = []
            if self.at("<"):
                self.advance()
                if self.at("("):
                    self.advance()
                    args = [self.expression()]
                    self.expect(")")
                elif self.tok.kind == "int":
                    it = self.advance()
                    args = [S.IntLit(it.loc, it.value, it.width, it.signed)]
                else:
                    args = [S.Name(self.tok.loc, self.ident("a width").text)]
                self.close_angle()
            ref = S.TypeRef(t.loc, t.text, args)
        elif t.kind == "kw" and t.text in ("tuple", "list"):
            self.advance()
            self.expect("<")
            elems = []
            if not self.at(">"):
                elems = [self.type_ref()]
                while self.accept(","):
                    elems.append(self.type_ref())
            self.close_angle()
            ref = S.TupleTypeRef(t.loc, elems)
        elif t.kind == "kw" and t.text in ("bool", "error", "string", "void", "match_kind"):
            self.advance()
            ref = S.TypeRef(t.loc, t.text)
        elif t.kind == "id":
            self.advance()
            args = []
            if self.at("<") and self.is_type_name(t.text):
                self.advance()
                args = [self.type_arg()]
                while self.accept(","):
                    args.append(self.type_arg())
                self.close_angle()
            ref = S.TypeRef(t.loc, t.text, args)
        else:
            raise self.error(f"expected a type, found {self.describe(t)}")
        while self.at("[") and not (self.peek().kind == "op" and self.peek().text == "]"):
            self.advance()
            size = self.expression()
            self.expect("]")
            ref = S.StackTypeRef(ref.loc, ref, size)
        return ref

    def type_arg(self):
        if self.tok.kind == "int":
            it = self.advance()
            return S.IntLit(it.loc, it.value, it.width, it.signed)
        if self.at("_"):
            return S.TypeRef(self.advance().loc, "_")
        return self.type_ref()

    # -- tables --------------------------------------------------------------------------------
    def table_decl(self) -> S.TableDecl:
        loc = self.expect("table").loc
        name = self.ident("the table's name").text
        table = S.TableDecl(loc, name)
        if self.accept("("):          # p4c accepts an empty parameter list: table t() { ... }
            self.expect(")", "')': tables take no parameters")
        self.expect("{")
        while not self.accept("}"):
            self.table_property(table)
        return table

    def table_property(self, table: S.TableDecl) -> None:
        annos = self.annotations()
        is_const = bool(self.accept("const"))
        prop = self.ident("a table property").text
        if prop == "key":
            self.expect("=")
            table.key = self.key_elements()
        elif prop == "actions":
            self.expect("=")
            table.actions = self.action_list()
        elif prop == "default_action":
            self.expect("=")
            table.default_action = self.action_ref([])
            table.default_const = is_const
            self.expect(";")
        elif prop == "entries":
            self.expect("=")
            table.entries = self.entries_list(is_const)
            table.entries_const = is_const
        else:
            self.expect("=")
            table.properties[prop] = self.expression()
            self.expect(";")
        if annos and prop not in ("key", "actions", "entries", "default_action"):
            pass

    def key_elements(self) -> list[S.KeyElement]:
        self.expect("{")
        out = []
        while not self.accept("}"):
            e = self.expression()
            self.expect(":")
            kind = self.ident("a match kind").text
            annos = self.annotations()
            self.expect(";")
            out.append(S.KeyElement(e.loc, e, kind, annos))
        return out

    def action_list(self) -> list[S.ActionRef]:
        self.expect("{")
        out = []
        while not self.accept("}"):
            annos = self.annotations()
            out.append(self.action_ref(annos))
            self.expect(";")
        return out

    def action_ref(self, annos) -> S.ActionRef:
        top = bool(self.accept("."))
        t = self.ident("an action name")
        args = self.arguments() if self.at("(") else []
        return S.ActionRef(t.loc, t.text, args, annos, top)

    def entries_list(self, table_const: bool) -> list[S.Entry]:
        self.expect("{")
        out = []
        while not self.accept("}"):
            annos = self.annotations()
            loc = self.tok.loc
            is_const = bool(self.accept("const")) or table_const
            priority = None
            if self.at_ident() and self.tok.text == "priority" and self.peek().text == "=":
                self.advance()
                self.advance()
                priority = self.expression()
                self.expect(":")
            keys = self.keyset_expression()
            keys = keys.items if isinstance(keys, S.ListExpr) and getattr(keys, "paren", False) else [keys]
            self.expect(":")
            action = self.action_ref([])
            eannos = self.annotations()
            self.expect(";")
            out.append(S.Entry(loc, keys, action, priority, annos + eannos, is_const))
        return out

    # -- parser states -------------------------------------------------------------------------
    def parser_state(self) -> S.ParserState:
        loc = self.expect("state").loc
        name = self.ident("the state's name").text
        self.expect("{")
        stmts, transition = [], None
        while not self.accept("}"):
            if self.at("transition"):
                transition = self.transition()
                self.expect("}")
                break
            stmts.append(self.statement())
        return S.ParserState(loc, name, stmts=stmts, transition=transition)

    def transition(self) -> S.Transition:
        loc = self.expect("transition").loc
        if self.accept("select"):
            self.expect("(")
            keys = [self.expression()]
            while self.accept(","):
                keys.append(self.expression())
            self.expect(")")
            self.expect("{")
            cases = []
            while not self.accept("}"):
                self.annotations()
                ks = self.keyset_expression()
                self.expect(":")
                st = self.ident("a state name")
                self.expect(";")
                cases.append(S.SelectCase(ks.loc, ks, st.text))
            self.accept(";")
            return S.Transition(loc, None, keys, cases)
        st = self.ident("a state name")
        self.expect(";")
        return S.Transition(loc, st.text)

    def keyset_expression(self) -> S.Expr:
        """A select/entry keyset: a tuple `(a, b)`, `default`, `_`, or a simple keyset."""
        if self.at("(") and self._paren_is_tuple():
            loc = self.advance().loc
            items = [self.simple_keyset()]
            while self.accept(","):
                items.append(self.simple_keyset())
            self.expect(")")
            e = S.ListExpr(loc, items)
            e.paren = True  # type: ignore[attr-defined]
            return e
        return self.simple_keyset()

    def _paren_is_tuple(self) -> bool:
        """Is the '(' at the cursor a keyset tuple (it has a top-level comma, or holds `_`)?"""
        depth, i = 0, self.pos
        while i < len(self.toks):
            t = self.toks[i]
            if t.kind == "op" and t.text in "([{":
                depth += 1
            elif t.kind == "op" and t.text in ")]}":
                depth -= 1
                if depth == 0:
                    nxt = self.toks[i + 1]
                    return nxt.kind == "op" and nxt.text == ":"
            elif t.kind == "eof":
                return False
            i += 1
        return False

    def simple_keyset(self) -> S.Expr:
        loc = self.tok.loc
        if self.accept("default"):
            return S.Default(loc)
        if self.at_ident() and self.tok.text == "_" :
            self.advance()
            return S.Default(loc)
        e = self.expression()
        if self.accept("&&&"):
            return S.Mask(loc, e, self.expression())
        if self.accept(".."):
            return S.Range(loc, e, self.expression())
        return e

    # -- statements ----------------------------------------------------------------------------
    def block(self) -> S.Block:
        annos = self.annotations()
        loc = self.expect("{").loc
        stmts = []
        with self.type_scope():
            while not self.accept("}"):
                if self.tok.kind == "eof":
                    raise self.error("missing '}' at end of block")
                stmts.append(self.statement())
        return S.Block(loc, stmts, annos)

    def statement(self):
        annos = self.annotations()
        t = self.tok
        if t.kind == "op" and t.text == "{":
            return self.block()
        if t.kind == "op" and t.text == ";":
            self.advance()
            return S.Empty(t.loc)
        if t.kind == "kw":
            kw = {"if": self.if_stmt, "switch": self.switch_stmt, "exit": self.exit_stmt,
                  "return": self.return_stmt, "const": self.const_decl, "for": self.for_stmt}.get(t.text)
            if kw:
                return kw()
        if t.kind == "id" and t.text in ("break", "continue") and self.peek().text == ";":
            self.advance()
            self.advance()
            return (S.Break if t.text == "break" else S.Continue)(t.loc)
        if self.at_type_start() and self._declaration_follows():
            d = self.typed_declaration(allow_function=False)
            if isinstance(d, S.Decl):
                d.annotations = annos
            return d
        return self.simple_statement()

    def _declaration_follows(self) -> bool:
        """After a type name: is this `T x`, `T<..> x`, `T[..] x`, or `T(...) x`?"""
        if self.tok.kind == "kw":
            return True
        nxt = self.peek()
        if nxt.kind == "id":
            return True
        if nxt.text in ("<", "[", "("):
            saved = self.pos
            try:
                self.type_ref()
                if self.at("("):
                    self.arguments()
                return self.tok.kind == "id"
            except ParseError:
                return False
            finally:
                self.pos = saved
        return False

    def simple_statement(self):
        loc = self.tok.loc
        lhs = self.expression()
        if self.accept("="):
            rhs = self.expression()
            self.expect(";")
            return S.Assign(loc, lhs, rhs)
        self.expect(";", "';' or '=' after the expression")
        if not isinstance(lhs, S.Call):
            raise ParseError(loc, "this expression is not a statement (only calls and assignments are)")
        return S.CallStmt(loc, lhs)

    def if_stmt(self) -> S.If:
        loc = self.expect("if").loc
        self.expect("(")
        cond = self.expression()
        self.expect(")")
        then = self.statement()
        other = self.statement() if self.accept("else") else None
        return S.If(loc, cond, then, other)

    def switch_stmt(self) -> S.Switch:
        loc = self.expect("switch").loc
        self.expect("(")
        e = self.expression()
        self.expect(")")
        self.expect("{")
        cases = []
        while not self.accept("}"):
            cloc = self.tok.loc
            label = S.Default(cloc) if self.accept("default") else self.expression()
            self.expect(":")
            body = self.block() if self.at("{") else None
            cases.append(S.SwitchCase(cloc, [label], body))
        return S.Switch(loc, e, cases)

    def exit_stmt(self) -> S.Exit:
        loc = self.expect("exit").loc
        self.expect(";")
        return S.Exit(loc)

    def return_stmt(self) -> S.Return:
        loc = self.expect("return").loc
        value = None if self.at(";") else self.expression()
        self.expect(";")
        return S.Return(loc, value)

    def for_stmt(self):
        loc = self.expect("for").loc
        self.expect("(")
        if self.at_type_start() and self._for_in_follows():
            ty = self.type_ref()
            var = self.ident().text
            self.expect("in")
            it = self.for_iterable()
            self.expect(")")
            return S.ForIn(loc, ty, var, it, self.statement())
        init = self.for_clause(";")
        self.expect(";")
        cond = None if self.at(";") else self.expression()
        self.expect(";")
        update = self.for_clause(")")
        self.expect(")")
        return S.For(loc, init, cond, update, self.statement())

    def _for_in_follows(self) -> bool:
        saved = self.pos
        try:
            self.type_ref()
            self.ident()
            return self.at("in")
        except ParseError:
            return False
        finally:
            self.pos = saved

    def for_iterable(self):
        e = self.expression()
        if self.accept(".."):
            return S.Range(e.loc, e, self.expression())
        return e

    def for_clause(self, end: str) -> list:
        out = []
        while not self.at(end):
            loc = self.tok.loc
            if self.at_type_start() and self._declaration_follows():
                ty = self.type_ref()
                name = self.ident().text
                init = self.expression() if self.accept("=") else None
                out.append(S.VarDecl(loc, name, type_ref=ty, init=init))
            else:
                lhs = self.expression()
                if self.accept("="):
                    out.append(S.Assign(loc, lhs, self.expression()))
                else:
                    out.append(S.CallStmt(loc, lhs))
            if not self.accept(","):
                break
        return out

    def arguments(self) -> list[S.Arg]:
        self.expect("(")
        out = []
        if self.accept(")"):
            return out
        while True:
            loc = self.tok.loc
            name = None
            if self.at_ident() and self.peek().kind == "op" and self.peek().text == "=" :
                name = self.advance().text
                self.advance()
            if self.at_ident() and self.tok.text == "_" and self.peek().text in (",", ")"):
                self.advance()
                out.append(S.Arg(loc, None, name))
            else:
                out.append(S.Arg(loc, self.expression(), name))
            if not self.accept(","):
                break
        self.expect(")")
        return out

    # -- expressions ---------------------------------------------------------------------------
    def expression(self) -> S.Expr:
        cond = self.binary(0)
        if self.accept("?"):
            then = self.expression()
            self.expect(":")
            other = self.expression()
            return S.Ternary(cond.loc, cond, then, other)
        return cond

    def binary(self, level: int) -> S.Expr:
        if level == len(BINARY_LEVELS):
            return self.prefix()
        left = self.binary(level + 1)
        while True:
            op = self.binary_op(BINARY_LEVELS[level])
            if op is None:
                return left
            right = self.binary(level + 1)
            left = S.Binary(left.loc, op, left, right)

    def binary_op(self, ops: list[str]) -> str | None:
        t = self.tok
        if t.kind != "op":
            return None
        if t.text == ">" and t.adjacent and self.peek().kind == "op" and self.peek().text == ">":
            if ">>" in ops:
                self.pos += 2
                return ">>"
            return None
        if t.text in ops:
            self.advance()
            return t.text
        return None

    def prefix(self) -> S.Expr:
        t = self.tok
        if t.kind == "op" and t.text in ("!", "~", "-", "+"):
            self.advance()
            inner = self.prefix()
            if t.text == "-" and isinstance(inner, S.IntLit) and inner.width is None:
                return S.IntLit(t.loc, -inner.value)
            return S.Unary(t.loc, t.text, inner)
        if t.kind == "op" and t.text == "(":
            cast = self.speculate(self.cast)
            if cast is not None:
                return cast
        return self.postfix(self.primary())

    def cast(self) -> S.Cast:
        loc = self.expect("(").loc
        if not self.at_type_start():
            raise _Backtrack()
        ty = self.type_ref()
        self.expect(")")
        nxt = self.tok
        starts_expr = nxt.kind in ("id", "int", "kw", "str") or (nxt.kind == "op" and nxt.text in ("(", "{", "!", "~", "-", "+", "."))
        if not starts_expr:
            raise _Backtrack()
        return S.Cast(loc, ty, self.prefix())

    def primary(self) -> S.Expr:
        t = self.tok
        if t.kind == "int":
            self.advance()
            return S.IntLit(t.loc, t.value, t.width, t.signed)
        if t.kind == "str":
            self.advance()
            return S.StrLit(t.loc, t.value)
        if t.kind == "kw" and t.text in ("true", "false"):
            self.advance()
            return S.BoolLit(t.loc, t.text == "true")
        if t.kind == "op" and t.text == "(":
            self.advance()
            e = self.expression()
            self.expect(")")
            return e
        if t.kind == "op" and t.text == "{":
            return self.brace_expression()
        if t.kind == "op" and t.text == ".":
            self.advance()
            n = self.ident()
            return S.Name(n.loc, n.text, top_level=True)
        if t.kind == "kw" and t.text in ("bit", "int", "varbit", "bool", "tuple"):
            return S.TypeExpr(t.loc, self.type_ref())
        if t.kind == "kw" and t.text in ("error", "this"):
            self.advance()
            return S.Name(t.loc, t.text)
        if t.kind == "id" or (t.kind == "kw" and t.text in ("apply", "state", "type")):
            self.advance()
            if t.text == "_":
                return S.DontCare(t.loc)
            return S.Name(t.loc, t.text)
        raise self.error(f"expected an expression, found {self.describe(t)}")

    def brace_expression(self) -> S.Expr:
        loc = self.expect("{").loc
        if self.at_ident() and self.peek().kind == "op" and self.peek().text == "=":
            fields = []
            while not self.accept("}"):
                n = self.ident("a field name").text
                self.expect("=")
                fields.append((n, self.expression()))
                if not self.accept(","):
                    self.expect("}")
                    break
            return S.StructExpr(loc, fields)
        items = []
        while not self.accept("}"):
            items.append(self.expression())
            if not self.accept(","):
                self.expect("}")
                break
        return S.ListExpr(loc, items)

    def postfix(self, e: S.Expr) -> S.Expr:
        while True:
            t = self.tok
            if t.kind != "op":
                return e
            if t.text == ".":
                self.advance()
                n = self.ident("a member name")
                e = S.Member(n.loc, e, n.text)
            elif t.text == "[":
                e = self.index_or_slice(e)
            elif t.text == "(":
                e = S.Call(e.loc, e, [], self.arguments())
            elif t.text == "<" and isinstance(e, (S.Name, S.Member)):
                targs = self.speculate(self.generic_args)
                if targs is None:
                    return e
                e = S.Call(e.loc, e, targs, self.arguments())
            else:
                return e

    def generic_args(self) -> list:
        self.expect("<")
        args = [self.type_arg()]
        while self.accept(","):
            args.append(self.type_arg())
        self.close_angle()
        if not self.at("("):
            raise _Backtrack()
        return args

    def index_or_slice(self, e: S.Expr) -> S.Expr:
        self.expect("[")
        first = self.expression()
        if self.accept(":"):
            lo = self.expression()
            self.expect("]")
            return S.Slice(e.loc, e, first, lo)
        if self.accept("+:"):
            width = self.expression()
            self.expect("]")
            hi = S.Binary(first.loc, "+", first, S.Binary(width.loc, "-", width, S.IntLit(width.loc, 1)))
            return S.Slice(e.loc, e, hi, first)
        self.expect("]")
        return S.Index(e.loc, e, first)


def parse_tokens(tokens: list[Token]) -> S.Program:
    return Parser(tokens).program()


def parse_file(path: str, include_path: list[str] | None = None, defines: dict | None = None) -> S.Program:
    """Preprocess and parse a P4 file."""
    pp = Preprocessor()
    if include_path:
        pp.include_path = list(include_path) + pp.include_path
    for k, v in (defines or {}).items():
        pp.define(k, v)
    return parse_tokens(tokenize(pp.run(path)))


def parse_text(text: str, name: str = "<string>") -> S.Program:
    pp = Preprocessor()
    return parse_tokens(tokenize(pp.run_text(text, name)))
