"""The abstract syntax tree produced by the parser (stage 3) and annotated by the checker.

Every node carries `loc`. Expressions get a `type` slot that the checker fills in.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from .errors import Loc


@dataclass(eq=False)
class Node:
    loc: Loc


@dataclass(eq=False)
class Annotation(Node):
    name: str
    body: list  # raw tokens' texts, or parsed expressions for known annotations


# ---- types as written in the source ---------------------------------------------------------
@dataclass(eq=False)
class TypeRef(Node):
    """A named type, possibly with type arguments: `bit<8>`, `H`, `register<bit<32>>`."""

    name: str
    args: list = field(default_factory=list)     # TypeRef | Expr (for bit<W> widths)


@dataclass(eq=False)
class StackTypeRef(Node):
    elem: Any
    size: Any  # Expr


@dataclass(eq=False)
class TupleTypeRef(Node):
    elems: list


# ---- expressions ------------------------------------------------------------------------------
@dataclass(eq=False)
class Expr(Node):
    def __post_init__(self):
        self.type = None


@dataclass(eq=False)
class IntLit(Expr):
    value: int
    width: Optional[int] = None
    signed: bool = False


@dataclass(eq=False)
class BoolLit(Expr):
    value: bool


@dataclass(eq=False)
class StrLit(Expr):
    value: str


@dataclass(eq=False)
class Name(Expr):
    name: str
    top_level: bool = False   # written `.name`


@dataclass(eq=False)
class Member(Expr):
    expr: Expr
    name: str


@dataclass(eq=False)
class Index(Expr):
    expr: Expr
    index: Expr


@dataclass(eq=False)
class Slice(Expr):
    expr: Expr
    hi: Expr
    lo: Expr


@dataclass(eq=False)
class Call(Expr):
    func: Expr
    type_args: list
    args: list           # list[Arg]


@dataclass(eq=False)
class Arg(Node):
    value: Optional[Expr]   # None = don't care `_`
    name: Optional[str] = None


@dataclass(eq=False)
class Unary(Expr):
    op: str
    expr: Expr


@dataclass(eq=False)
class Binary(Expr):
    op: str
    left: Expr
    right: Expr


@dataclass(eq=False)
class Ternary(Expr):
    cond: Expr
    then: Expr
    other: Expr


@dataclass(eq=False)
class Cast(Expr):
    to: Any     # TypeRef
    expr: Expr


@dataclass(eq=False)
class ListExpr(Expr):
    items: list


@dataclass(eq=False)
class StructExpr(Expr):
    fields: list   # list[(name, Expr)]
    type_ref: Any = None


@dataclass(eq=False)
class TypeExpr(Expr):
    """A type used where an expression is expected (`bit<8>` in `(bit<8>)x`, enum type names)."""

    ref: Any


@dataclass(eq=False)
class Mask(Expr):
    value: Expr
    mask: Expr


@dataclass(eq=False)
class Range(Expr):
    lo: Expr
    hi: Expr


@dataclass(eq=False)
class Default(Expr):
    """`default` or `_` in a keyset."""


@dataclass(eq=False)
class DontCare(Expr):
    """`_` used as an argument or l-value."""


# ---- statements -------------------------------------------------------------------------------
@dataclass(eq=False)
class Stmt(Node):
    pass


@dataclass(eq=False)
class Assign(Stmt):
    target: Expr
    value: Expr


@dataclass(eq=False)
class CallStmt(Stmt):
    call: Call


@dataclass(eq=False)
class If(Stmt):
    cond: Expr
    then: Stmt
    other: Optional[Stmt]


@dataclass(eq=False)
class Block(Stmt):
    stmts: list
    annotations: list = field(default_factory=list)


@dataclass(eq=False)
class SwitchCase(Node):
    labels: list        # list[Expr | Default]; names are action names when switching on action_run
    body: Optional[Block]   # None = fall through to the next case


@dataclass(eq=False)
class Switch(Stmt):
    expr: Expr
    cases: list


@dataclass(eq=False)
class Exit(Stmt):
    pass


@dataclass(eq=False)
class Return(Stmt):
    value: Optional[Expr]


@dataclass(eq=False)
class Empty(Stmt):
    pass


@dataclass(eq=False)
class For(Stmt):
    init: list
    cond: Optional[Expr]
    update: list
    body: Stmt


@dataclass(eq=False)
class ForIn(Stmt):
    var_type: Any
    var: str
    iterable: Expr
    body: Stmt


@dataclass(eq=False)
class Break(Stmt):
    pass


@dataclass(eq=False)
class Continue(Stmt):
    pass


# ---- declarations -----------------------------------------------------------------------------
@dataclass(eq=False)
class Decl(Node):
    name: str
    annotations: list = field(default_factory=list, kw_only=True)


@dataclass(eq=False)
class VarDecl(Decl, Stmt):
    type_ref: Any
    init: Optional[Expr]


@dataclass(eq=False)
class ConstDecl(Decl, Stmt):
    type_ref: Any
    value: Expr


@dataclass(eq=False)
class Field(Node):
    name: str
    type_ref: Any
    annotations: list = field(default_factory=list)


@dataclass(eq=False)
class HeaderDecl(Decl):
    fields: list
    type_params: list = field(default_factory=list)


@dataclass(eq=False)
class HeaderUnionDecl(Decl):
    fields: list
    type_params: list = field(default_factory=list)


@dataclass(eq=False)
class StructDecl(Decl):
    fields: list
    type_params: list = field(default_factory=list)


@dataclass(eq=False)
class EnumDecl(Decl):
    members: list               # list[(name, Expr|None, Loc)]
    underlying: Any = None      # TypeRef for serializable enums


@dataclass(eq=False)
class ErrorDecl(Decl):
    members: list


@dataclass(eq=False)
class MatchKindDecl(Decl):
    members: list


@dataclass(eq=False)
class TypedefDecl(Decl):
    type_ref: Any
    newtype: bool = False


@dataclass(eq=False)
class Param(Node):
    direction: str      # 'in', 'out', 'inout' or '' (directionless)
    type_ref: Any
    name: str
    default: Optional[Expr] = None
    annotations: list = field(default_factory=list)


@dataclass(eq=False)
class MethodDecl(Decl):
    """A method prototype in an extern, or an extern function / abstract method."""

    return_type: Any            # TypeRef or None (constructor)
    type_params: list
    params: list
    abstract: bool = False


@dataclass(eq=False)
class ExternDecl(Decl):
    type_params: list
    methods: list               # list[MethodDecl]; constructors have return_type None


@dataclass(eq=False)
class FunctionDecl(Decl):
    return_type: Any
    type_params: list
    params: list
    body: Block


@dataclass(eq=False)
class ActionDecl(Decl):
    params: list
    body: Block


@dataclass(eq=False)
class KeyElement(Node):
    expr: Expr
    match_kind: str
    annotations: list = field(default_factory=list)


@dataclass(eq=False)
class ActionRef(Node):
    name: str
    args: list       # list[Arg]
    annotations: list = field(default_factory=list)
    top_level: bool = False


@dataclass(eq=False)
class Entry(Node):
    keys: list       # list[Expr]
    action: ActionRef
    priority: Optional[Expr] = None
    annotations: list = field(default_factory=list)
    is_const: bool = False


@dataclass(eq=False)
class TableDecl(Decl):
    key: list = field(default_factory=list)              # list[KeyElement]
    actions: list = field(default_factory=list)          # list[ActionRef]
    default_action: Optional[ActionRef] = None
    default_const: bool = False
    entries: Optional[list] = None                       # list[Entry]
    entries_const: bool = True
    properties: dict = field(default_factory=dict)       # other properties: name -> Expr


@dataclass(eq=False)
class Instantiation(Decl, Stmt):
    type_ref: Any
    args: list                  # list[Arg]
    body: list = field(default_factory=list)   # abstract method implementations


@dataclass(eq=False)
class ValueSetDecl(Decl):
    elem_type: Any
    size: Expr


@dataclass(eq=False)
class SelectCase(Node):
    keyset: Expr                # ListExpr for tuples, Default, Mask, Range, value
    state: str


@dataclass(eq=False)
class Transition(Node):
    """`transition s;` (select is None) or `transition select(...) {...}`."""

    state: Optional[str]
    select: Optional[list] = None     # list[Expr] select keys
    cases: list = field(default_factory=list)


@dataclass(eq=False)
class ParserState(Decl):
    stmts: list
    transition: Optional[Transition]


@dataclass(eq=False)
class ParserTypeDecl(Decl):
    type_params: list
    params: list


@dataclass(eq=False)
class ParserDecl(Decl):
    type_params: list
    params: list
    ctor_params: list
    locals: list
    states: list


@dataclass(eq=False)
class ControlTypeDecl(Decl):
    type_params: list
    params: list


@dataclass(eq=False)
class ControlDecl(Decl):
    type_params: list
    params: list
    ctor_params: list
    locals: list
    body: Block


@dataclass(eq=False)
class PackageTypeDecl(Decl):
    type_params: list
    params: list


@dataclass(eq=False)
class Program(Node):
    decls: list
