"""Meter event filters (R-M3, R-M4): parse, validate, compile and evaluate filter trees.

Pure Python, no Django: this module is imported on the ingestion hot path and is checked by
import-linter ("Pure rule modules import no Django").

The JSON shape is fixed by API.md ("Meters")::

    {"conjunction": "and" | "or",
     "clauses": [{"property": "user_tier", "operator": "equals", "value": "premium"},
                 {"conjunction": "or", "clauses": [...]}]}

``parse_filter`` validates that shape (raising ``FilterError`` naming the bad clause by its
path, e.g. ``clauses[1].clauses[0].operator``) and returns an immutable tree of ``Group`` and
``Condition``. The tree compiles itself once, lazily, into closures; ``matches`` then costs one
dict lookup per referenced property plus the comparisons. Parse a meter's filter once and keep
the returned tree: do not call ``parse_filter`` per event.

Semantics
---------
* R-M4: if any property referenced anywhere in the tree is missing from the event, or is
  ``null``, the event is excluded, whatever the operator (``not_equals`` and
  ``does_not_contain`` included) and whatever the conjunction (an ``or`` group too).
* Comparisons are type-aware. Numbers compare as numbers (``1 == 1.0``). When one side is a
  number and the other a numeric string (``10`` vs ``"10"``), they compare as numbers too, in
  either direction. Otherwise a number and a non-number are never equal (``not_equals`` is
  true) and never ordered (every ordering operator is false). Two strings are ordered
  lexicographically (by code point), and compared case-sensitively. Booleans equal only
  booleans (``True != 1``); ordering operators do not accept a boolean value.
* ``contains``: substring test on a string property (with ``str(value)``, booleans spelt
  ``true``/``false`` as in JSON); membership, with the type-aware equality above, on a list
  property; false on anything else. ``does_not_contain`` is its negation (so it is true on a
  number property), subject to R-M4.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

__all__ = [
    "CONJUNCTIONS",
    "MAX_CLAUSES",
    "MAX_DEPTH",
    "MISSING",
    "OPERATORS",
    "ORDERING_OPERATORS",
    "Condition",
    "Filter",
    "FilterError",
    "Group",
    "extract",
    "filter_to_json",
    "matches",
    "parse_filter",
    "referenced_properties",
    "to_decimal",
]

OPERATORS: tuple[str, ...] = (
    "equals",
    "not_equals",
    "greater_than",
    "greater_than_or_equals",
    "less_than",
    "less_than_or_equals",
    "contains",
    "does_not_contain",
)
ORDERING_OPERATORS = frozenset(
    {"greater_than", "greater_than_or_equals", "less_than", "less_than_or_equals"}
)
CONJUNCTIONS: tuple[str, ...] = ("and", "or")

#: Groups nest at most this deep; the root group is depth 1.
MAX_DEPTH = 8
#: At most this many clauses (conditions and groups, the root not counted) in one filter.
MAX_CLAUSES = 100

# Numbers whose decimal exponent is beyond this are treated as non-numeric, so that sums of
# event values can never overflow a decimal context.
_MAX_ADJUSTED_EXPONENT = 1000
# A numeric string longer than this is treated as non-numeric.
_MAX_NUMERIC_STRING = 1000
_NUMERIC_RE = re.compile(r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*\Z")


class _Missing:
    """Type of ``MISSING``: what ``extract`` returns when a property is absent."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class FilterError(ValueError):
    """A malformed filter. ``path`` names the bad clause or field, ``""`` for the root."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(path, message)
        self.path = path
        self.message = message

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


# --------------------------------------------------------------------------------------------
# Values


def to_decimal(value: Any) -> Decimal | None:
    """``value`` as a ``Decimal`` if it is a finite number or a numeric string, else ``None``.

    Floats go through ``str`` (``0.1`` -> ``Decimal("0.1")``). Booleans, NaN, infinities,
    non-numeric strings (``"1_000"`` and ``"0x10"`` included) and numbers beyond 1e±1000 give
    ``None``. Surrounding whitespace in a numeric string is ignored.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        if -(10**18) < value < 10**18:
            return Decimal(value)
        number = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            return None
        number = Decimal(str(value))
    elif isinstance(value, Decimal):
        if not value.is_finite():
            return None
        number = value
    elif isinstance(value, str):
        if len(value) > _MAX_NUMERIC_STRING or not _NUMERIC_RE.match(value):
            return None
        number = Decimal(value.strip())
    else:
        return None
    if number and abs(number.adjusted()) > _MAX_ADJUSTED_EXPONENT:
        return None
    return number


def extract(properties: Any, path: str) -> Any:
    """The value at ``path`` in an event's ``properties``, or ``MISSING``.

    ``path`` is dotted (``"user.tier"`` reads ``properties["user"]["tier"]``). A key that itself
    contains dots is found when present literally: at each level the longest literal key is
    tried first (``{"user.tier": 1}`` gives 1 for ``"user.tier"``). Only dicts are walked into;
    a ``null`` value is returned as ``None`` (``matches`` treats it as missing, R-M4).
    """
    if not isinstance(properties, dict):
        return MISSING
    value = properties.get(path, MISSING)
    if value is MISSING and "." in path:
        return _walk(properties, path)
    return value


def _walk(properties: dict, path: str) -> Any:
    """Split ``path`` at each dot, longest head first (the literal key was tried already)."""
    end = len(path)
    while True:
        dot = path.rfind(".", 0, end)
        if dot < 0:
            return MISSING
        inner = properties.get(path[:dot], MISSING)
        if isinstance(inner, dict):
            value = extract(inner, path[dot + 1 :])
            if value is not MISSING:
                return value
        end = dot


def _text(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


# --------------------------------------------------------------------------------------------
# Compiled tests: each is a function of the (present, non-null) property value.

_Test = Callable[[Any], bool]

_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "greater_than": lambda a, b: a > b,
    "greater_than_or_equals": lambda a, b: a >= b,
    "less_than": lambda a, b: a < b,
    "less_than_or_equals": lambda a, b: a <= b,
}


def _equals_test(value: Any) -> _Test:
    if isinstance(value, bool):

        def test(p: Any) -> bool:
            return p is value

        return test

    number = to_decimal(value)
    if isinstance(value, str):
        if number is None:

            def test(p: Any) -> bool:
                return isinstance(p, str) and p == value

            return test

        def test(p: Any) -> bool:
            if isinstance(p, str):
                return p == value
            if isinstance(p, (int, float, Decimal)) and not isinstance(p, bool):
                d = to_decimal(p)
                return d is not None and d == number
            return False

        return test

    # A number.
    def test(p: Any) -> bool:
        if type(p) is int:
            return p == number
        d = to_decimal(p)
        return d is not None and d == number

    return test


def _ordering_test(operator: str, value: Any) -> _Test:
    compare = _ORDER[operator]
    number = to_decimal(value)
    if isinstance(value, str):

        def test(p: Any) -> bool:
            if isinstance(p, str):
                return compare(p, value)
            if number is not None and isinstance(p, (int, float, Decimal)):
                d = to_decimal(p)
                return d is not None and compare(d, number)
            return False

        return test

    # A number (booleans are refused by validation).
    def test(p: Any) -> bool:
        if type(p) is int:
            return compare(p, number)
        d = to_decimal(p)
        return d is not None and compare(d, number)

    return test


def _contains_test(value: Any) -> _Test:
    needle = _text(value)
    item_equals = _equals_test(value)

    def test(p: Any) -> bool:
        if isinstance(p, str):
            return needle in p
        if isinstance(p, (list, tuple)):
            for item in p:
                if item_equals(item):
                    return True
        return False

    return test


def _negate(test: _Test) -> _Test:
    def negated(p: Any) -> bool:
        return not test(p)

    return negated


def _compile_test(operator: str, value: Any) -> _Test:
    if operator == "equals":
        return _equals_test(value)
    if operator == "not_equals":
        return _negate(_equals_test(value))
    if operator == "contains":
        return _contains_test(value)
    if operator == "does_not_contain":
        return _negate(_contains_test(value))
    return _ordering_test(operator, value)


# --------------------------------------------------------------------------------------------
# Validation shared by parse_filter (with real paths) and the dataclasses (path "").


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _check_property(prop: Any, path: str) -> None:
    if not isinstance(prop, str) or not prop.strip():
        raise FilterError(_join(path, "property"), "must be a non-empty string")


def _check_operator(operator: Any, path: str) -> None:
    if not isinstance(operator, str) or operator not in OPERATORS:
        raise FilterError(
            _join(path, "operator"),
            f"unknown operator {operator!r}; expected one of {', '.join(OPERATORS)}",
        )


def _check_value(value: Any, operator: str, path: str) -> None:
    where = _join(path, "value")
    if value is None:
        raise FilterError(where, "must not be null")
    if isinstance(value, bool):
        if operator in ORDERING_OPERATORS:
            raise FilterError(where, f"{operator} needs a number or a string, not a boolean")
        return
    if isinstance(value, (int, float)):
        if to_decimal(value) is None:
            raise FilterError(where, "must be a finite number (within 1e±1000)")
        return
    if isinstance(value, str):
        return
    if isinstance(value, (list, tuple)):
        raise FilterError(
            where,
            "must be a single string, number or boolean, not a list "
            "(use an 'or' group for several values)",
        )
    raise FilterError(where, "must be a string, a number or a boolean")


def _check_conjunction(conjunction: Any, path: str) -> None:
    if not isinstance(conjunction, str) or conjunction not in CONJUNCTIONS:
        raise FilterError(_join(path, "conjunction"), f"must be 'and' or 'or', not {conjunction!r}")


# --------------------------------------------------------------------------------------------
# The tree


@dataclass(frozen=True, slots=True)
class Condition:
    """``property operator value``. Equality is type-aware: ``value=True`` differs from ``1``."""

    property: str
    operator: str
    value: str | int | float | bool
    _kind: type = field(init=False, repr=False, compare=True)
    _test: _Test = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        _check_property(self.property, "")
        _check_operator(self.operator, "")
        _check_value(self.value, self.operator, "")
        object.__setattr__(self, "_kind", type(self.value))
        object.__setattr__(self, "_test", _compile_test(self.operator, self.value))

    def __reduce__(self) -> tuple:
        return (Condition, (self.property, self.operator, self.value))

    def test(self, value: Any) -> bool:
        """This condition on one property value already known to be present and non-null."""
        return self._test(value)


_Program = tuple[tuple[tuple[str, bool], ...], Callable[[list], bool]]


@dataclass(frozen=True, slots=True)
class Group:
    """Clauses joined by ``and`` or ``or``; ``clauses`` is a non-empty tuple."""

    conjunction: str
    clauses: tuple[Condition | Group, ...]
    _program: _Program | None = field(
        init=False, repr=False, compare=False, hash=False, default=None
    )

    def __post_init__(self) -> None:
        _check_conjunction(self.conjunction, "")
        clauses = tuple(self.clauses)
        if not clauses:
            raise FilterError("clauses", "must not be empty")
        for i, clause in enumerate(clauses):
            if not isinstance(clause, (Condition, Group)):
                raise FilterError(f"clauses[{i}]", "must be a Condition or a Group")
        object.__setattr__(self, "clauses", clauses)

    def __reduce__(self) -> tuple:
        return (Group, (self.conjunction, self.clauses))

    def conditions(self) -> Iterator[Condition]:
        """Every condition in the tree, depth first, in document order."""
        for clause in self.clauses:
            if isinstance(clause, Group):
                yield from clause.conditions()
            else:
                yield clause

    def matches(self, properties: Any) -> bool:
        return matches(self, properties)

    def program(self) -> _Program:
        """(referenced keys with a "dotted" flag, evaluator over their values); cached."""
        program = self._program
        if program is None:
            program = _compile(self)
            object.__setattr__(self, "_program", program)
        return program


Filter = Group


def _compile(root: Group) -> _Program:
    slots: dict[str, int] = {}
    for condition in root.conditions():
        slots.setdefault(condition.property, len(slots))
    keys = tuple((key, "." in key) for key in slots)

    def node(clause: Condition | Group) -> Callable[[list], bool]:
        if isinstance(clause, Condition):
            index = slots[clause.property]
            test = clause._test

            def condition(values: list) -> bool:
                return test(values[index])

            return condition

        parts = tuple(node(c) for c in clause.clauses)
        if len(parts) == 1:
            return parts[0]
        if clause.conjunction == "and":

            def all_of(values: list) -> bool:  # a loop: faster than all() on a generator
                for part in parts:  # noqa: SIM110
                    if not part(values):
                        return False
                return True

            return all_of

        def any_of(values: list) -> bool:
            for part in parts:  # noqa: SIM110
                if part(values):
                    return True
            return False

        return any_of

    return keys, node(root)


# --------------------------------------------------------------------------------------------
# Public functions


def parse_filter(obj: Any) -> Filter | None:
    """Validate a filter's JSON and return its compiled tree; ``None`` or ``{}`` -> ``None``.

    Raises ``FilterError`` (a ``ValueError``) naming the first bad clause by its path.
    A ``Group`` is returned as is.
    """
    if obj is None:
        return None
    if isinstance(obj, Group):
        return obj
    if not isinstance(obj, dict):
        raise FilterError("", "a filter must be an object with 'conjunction' and 'clauses'")
    if not obj:
        return None
    if "clauses" not in obj and "conjunction" not in obj:
        raise FilterError(
            "", "a filter must be a group with 'conjunction' and 'clauses', not a single condition"
        )
    return _parse_group(obj, "", 1, [0])


def _parse_group(obj: dict, path: str, depth: int, counter: list[int]) -> Group:
    if depth > MAX_DEPTH:
        raise FilterError(path, f"groups nest at most {MAX_DEPTH} deep")
    if "conjunction" not in obj:
        raise FilterError(_join(path, "conjunction"), "is required")
    _check_conjunction(obj["conjunction"], path)
    raw = obj.get("clauses", MISSING)
    where = _join(path, "clauses")
    if raw is MISSING:
        raise FilterError(where, "is required")
    if not isinstance(raw, list):
        raise FilterError(where, "must be a list")
    if not raw:
        raise FilterError(where, "must not be empty")
    clauses: list[Condition | Group] = []
    for i, item in enumerate(raw):
        item_path = f"{where}[{i}]"
        counter[0] += 1
        if counter[0] > MAX_CLAUSES:
            raise FilterError(item_path, f"a filter has at most {MAX_CLAUSES} clauses in total")
        if not isinstance(item, dict):
            raise FilterError(item_path, "a clause must be an object")
        is_group = "clauses" in item or "conjunction" in item
        if is_group and ("property" in item or "operator" in item or "value" in item):
            raise FilterError(
                item_path,
                "a clause is either a condition (property, operator, value) "
                "or a group (conjunction, clauses), not both",
            )
        if is_group:
            clauses.append(_parse_group(item, item_path, depth + 1, counter))
        else:
            clauses.append(_parse_condition(item, item_path))
    return Group(obj["conjunction"], tuple(clauses))


def _parse_condition(obj: dict, path: str) -> Condition:
    for key in ("property", "operator", "value"):
        if key not in obj:
            raise FilterError(_join(path, key), "is required")
    _check_property(obj["property"], path)
    _check_operator(obj["operator"], path)
    _check_value(obj["value"], obj["operator"], path)
    return Condition(obj["property"], obj["operator"], obj["value"])


def filter_to_json(f: Filter | None) -> dict | None:
    """The JSON form of a tree; ``parse_filter(filter_to_json(f)) == f``."""
    if f is None:
        return None
    return _to_json(f)


def _to_json(clause: Condition | Group) -> dict:
    if isinstance(clause, Condition):
        return {"property": clause.property, "operator": clause.operator, "value": clause.value}
    return {"conjunction": clause.conjunction, "clauses": [_to_json(c) for c in clause.clauses]}


def matches(f: Filter | None, properties: Any) -> bool:
    """Whether an event with these ``properties`` passes the filter (``None`` passes all).

    R-M4: any referenced property missing or null excludes the event, whatever the operator
    and the conjunction.
    """
    if f is None:
        return True
    keys, evaluate = f.program()
    if not isinstance(properties, dict):
        properties = {}
    values = []
    for key, dotted in keys:
        value = properties.get(key, MISSING)
        if value is MISSING and dotted:
            value = _walk(properties, key)
        if value is None or value is MISSING:
            return False
        values.append(value)
    return evaluate(values)


def referenced_properties(f: Filter | None) -> frozenset[str]:
    """Every property path a filter's conditions read."""
    if f is None:
        return frozenset()
    return frozenset(c.property for c in f.conditions())
