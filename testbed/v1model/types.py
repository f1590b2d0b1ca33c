"""P4 types as the checker (stage 4) computes them and the lowering (stage 5) consumes them."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class Type:
    """Base of all types. Subclasses are small value objects."""

    is_bits = False

    def __str__(self) -> str:
        return self.__class__.__name__


@dataclass(frozen=True, eq=True)
class BitT(Type):
    width: int
    signed: bool = False
    is_bits = True

    def __str__(self) -> str:
        return f"{'int' if self.signed else 'bit'}<{self.width}>"

    @property
    def mask(self) -> int:
        return (1 << self.width) - 1


@dataclass(frozen=True, eq=True)
class InfIntT(Type):
    """The type of an integer literal without a width."""

    def __str__(self) -> str:
        return "int"


@dataclass(frozen=True, eq=True)
class VarbitT(Type):
    max_width: int

    def __str__(self) -> str:
        return f"varbit<{self.max_width}>"


@dataclass(frozen=True, eq=True)
class BoolT(Type):
    def __str__(self) -> str:
        return "bool"


@dataclass(frozen=True, eq=True)
class StringT(Type):
    def __str__(self) -> str:
        return "string"


@dataclass(frozen=True, eq=True)
class VoidT(Type):
    def __str__(self) -> str:
        return "void"


@dataclass(frozen=True, eq=True)
class ErrorT(Type):
    def __str__(self) -> str:
        return "error"


@dataclass(frozen=True, eq=True)
class MatchKindT(Type):
    def __str__(self) -> str:
        return "match_kind"


@dataclass(frozen=True, eq=True)
class AnyT(Type):
    """A type the checker could not pin down (an unbound type parameter); accepts anything."""

    def __str__(self) -> str:
        return "_"


@dataclass(eq=False)
class EnumT(Type):
    name: str
    members: list                     # names in declaration order
    underlying: BitT | None = None    # serializable enums
    values: dict = field(default_factory=dict)   # member -> int (serializable) or index

    def __str__(self) -> str:
        return self.name


@dataclass(eq=False)
class FieldsT(Type):
    """Common base of struct, header and header_union types: ordered (name, type) fields."""

    name: str
    fields: list = field(default_factory=list)   # list[(name, Type)]
    annotations: dict = field(default_factory=dict)  # field name -> list[Annotation]

    def field_type(self, name: str) -> Type | None:
        for n, t in self.fields:
            if n == name:
                return t
        return None

    def field_names(self) -> list[str]:
        return [n for n, _ in self.fields]

    def __str__(self) -> str:
        return self.name


class StructT(FieldsT):
    pass


class HeaderT(FieldsT):
    def bit_width(self) -> int:
        """Fixed width in bits (varbit fields count their maximum)."""
        return sum(t.width if isinstance(t, BitT) else t.max_width if isinstance(t, VarbitT) else 0
                   for _, t in self.fields)

    def has_varbit(self) -> bool:
        return any(isinstance(t, VarbitT) for _, t in self.fields)


class UnionT(FieldsT):
    pass


@dataclass(eq=False)
class StackT(Type):
    elem: Type
    size: int

    def __str__(self) -> str:
        return f"{self.elem}[{self.size}]"


@dataclass(eq=False)
class TupleT(Type):
    elems: list

    def __str__(self) -> str:
        return "tuple<" + ", ".join(map(str, self.elems)) + ">"


@dataclass(eq=False)
class TypeVar(Type):
    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(eq=False)
class ExternT(Type):
    decl: Any                 # syntax.ExternDecl
    type_args: dict = field(default_factory=dict)   # type param name -> Type

    def __str__(self) -> str:
        return self.decl.name


@dataclass(eq=False)
class BlockT(Type):
    """The type of a parser/control/package declaration or instance."""

    decl: Any
    kind: str                  # 'parser', 'control', 'package'
    type_args: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return self.decl.name


@dataclass(eq=False)
class TableT(Type):
    decl: Any

    def __str__(self) -> str:
        return f"table {self.decl.name}"


@dataclass(frozen=True, eq=True)
class ApplyResultT(Type):
    """The value of `t.apply()`: has `hit`, `miss` and `action_run`."""

    table: Any = field(compare=False, default=None)

    def __str__(self) -> str:
        return "apply_result"


@dataclass(frozen=True, eq=True)
class ActionEnumT(Type):
    """The type of `t.apply().action_run`."""

    table: Any = field(compare=False, default=None)


@dataclass(eq=False)
class MethodT(Type):
    """A callable: function, action, extern method, built-in method or apply."""

    kind: str                         # 'function', 'action', 'extern_function', 'method', 'builtin', 'apply'
    overloads: list = field(default_factory=list)   # syntax.MethodDecl / FunctionDecl / ActionDecl
    target: Any = None                # receiver expression or symbol
    name: str = ""


BOOL = BoolT()
INFINT = InfIntT()
VOID = VoidT()
ERROR = ErrorT()
STRING = StringT()
ANY = AnyT()
BIT32 = BitT(32)


def same_type(a: Type, b: Type) -> bool:
    """Structural equality where it matters (bits), identity for named types."""
    if isinstance(a, AnyT) or isinstance(b, AnyT):
        return True
    if isinstance(a, (BitT, InfIntT, VarbitT, BoolT, StringT, VoidT, ErrorT, MatchKindT)):
        return a == b
    if isinstance(a, StackT) and isinstance(b, StackT):
        return a.size == b.size and same_type(a.elem, b.elem)
    if isinstance(a, TupleT) and isinstance(b, TupleT):
        return len(a.elems) == len(b.elems) and all(same_type(x, y) for x, y in zip(a.elems, b.elems))
    if isinstance(a, FieldsT) and isinstance(b, FieldsT):
        return a is b or (type(a) is type(b) and a.name == b.name)
    if isinstance(a, EnumT) and isinstance(b, EnumT):
        return a is b or a.name == b.name
    if isinstance(a, (ExternT, BlockT)) and type(a) is type(b):
        return a.decl is b.decl
    return a is b


def width_of(t: Type) -> int:
    """Bit width of a serializable type (bits, bool, serializable enum, header, struct of those)."""
    if isinstance(t, BitT):
        return t.width
    if isinstance(t, BoolT):
        return 1
    if isinstance(t, EnumT) and t.underlying is not None:
        return t.underlying.width
    if isinstance(t, VarbitT):
        return t.max_width
    if isinstance(t, FieldsT):
        return sum(width_of(ft) for _, ft in t.fields)
    if isinstance(t, StackT):
        return t.size * width_of(t.elem)
    if isinstance(t, TupleT):
        return sum(width_of(e) for e in t.elems)
    raise TypeError(f"type {t} has no bit width")
