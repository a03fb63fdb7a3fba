"""Meter filters (R-M3, R-M4): pure Python, no database."""

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metering.filters import (
    CONJUNCTIONS,
    MISSING,
    OPERATORS,
    Condition,
    FilterError,
    Group,
    extract,
    filter_to_json,
    matches,
    parse_filter,
    referenced_properties,
    to_decimal,
)


def cond(prop, op, value):
    return {"property": prop, "operator": op, "value": value}


def group(conjunction, *clauses):
    return {"conjunction": conjunction, "clauses": list(clauses)}


def one(op, value, prop="p"):
    return parse_filter(group("and", cond(prop, op, value)))


# ---------------------------------------------------------------------------- R-M3 examples


def test_r_m3_example_premium_and_users_endpoint():
    """R-M3: count API calls where user_tier = "premium" AND endpoint = "/api/v2/users"."""
    f = parse_filter(
        group(
            "and",
            cond("user_tier", "equals", "premium"),
            cond("endpoint", "equals", "/api/v2/users"),
        )
    )
    events = [
        {"user_tier": "premium", "endpoint": "/api/v2/users"},
        {"user_tier": "premium", "endpoint": "/api/v2/users", "tokens": 5},
        {"user_tier": "free", "endpoint": "/api/v2/users"},
        {"user_tier": "premium", "endpoint": "/api/v2/orders"},
        {"user_tier": "premium"},
        {"endpoint": "/api/v2/users"},
    ]
    assert [matches(f, e) for e in events] == [True, True, False, False, False, False]
    assert sum(matches(f, e) for e in events) == 2


def test_r_m3_example_method_post_or_put_or_delete():
    """R-M3: count events where method = "POST" OR "PUT" OR "DELETE"."""
    f = parse_filter(
        group(
            "or",
            cond("method", "equals", "POST"),
            cond("method", "equals", "PUT"),
            cond("method", "equals", "DELETE"),
        )
    )
    methods = ["POST", "PUT", "DELETE", "GET", "PATCH", "post"]
    assert [matches(f, {"method": m}) for m in methods] == [True, True, True, False, False, False]
    assert referenced_properties(f) == {"method"}


def test_r_m3_nested_groups_three_deep():
    """R-M3: groups nest; tier = premium AND (region = eu OR (plan = pro AND seats >= 10))."""
    f = parse_filter(
        group(
            "and",
            cond("tier", "equals", "premium"),
            group(
                "or",
                cond("region", "equals", "eu"),
                group(
                    "and",
                    cond("plan", "equals", "pro"),
                    cond("seats", "greater_than_or_equals", 10),
                ),
            ),
        )
    )
    base = {"tier": "premium", "region": "us", "plan": "pro", "seats": 10}
    assert matches(f, base)
    assert matches(f, {**base, "region": "eu", "plan": "basic"})
    assert not matches(f, {**base, "seats": 9})
    assert not matches(f, {**base, "plan": "basic"})
    assert not matches(f, {**base, "tier": "free", "region": "eu"})
    assert referenced_properties(f) == {"tier", "region", "plan", "seats"}


def test_r_m3_no_filter_matches_everything():
    """R-M3: the filter is optional; None and {} mean no filter."""
    assert parse_filter(None) is None
    assert parse_filter({}) is None
    assert matches(None, {})
    assert matches(None, {"anything": 1})
    assert filter_to_json(None) is None
    assert referenced_properties(None) == frozenset()


# ---------------------------------------------------------------------------- R-M3 operators

OPERATOR_TABLE = [
    # equals: numbers as numbers, numeric strings numerically against numbers
    ("equals", "premium", "premium", True),
    ("equals", "premium", "Premium", False),
    ("equals", 1, 1.0, True),
    ("equals", 1.0, 1, True),
    ("equals", 0.1, 0.1, True),
    ("equals", 10, "10", True),
    ("equals", 10, "10.00", True),
    ("equals", "10", 10, True),
    ("equals", "10", "10.0", False),  # two strings compare as strings
    ("equals", 10, "ten", False),
    ("equals", "ten", 10, False),
    ("equals", True, True, True),
    ("equals", True, 1, False),
    ("equals", 1, True, False),
    ("equals", False, 0, False),
    ("equals", "true", True, False),
    ("equals", 1, [1], False),
    ("equals", "a", {"a": 1}, False),
    # not_equals: the negation
    ("not_equals", "premium", "free", True),
    ("not_equals", "premium", "premium", False),
    ("not_equals", 1, 1.0, False),
    ("not_equals", 10, "10", False),
    ("not_equals", 10, "ten", True),
    ("not_equals", True, 1, True),
    # ordering: numbers numerically
    ("greater_than", 100, 120, True),
    ("greater_than", 100, 100, False),
    ("greater_than", 100, 100.5, True),
    ("greater_than", 9, "10", True),  # numeric string vs number: numerically
    ("greater_than", "9", 10, True),
    ("greater_than", 100, "lots", False),
    ("greater_than", 0, True, False),  # booleans are not numbers
    ("greater_than", 1, [5], False),
    ("greater_than_or_equals", 100, 100, True),
    ("greater_than_or_equals", 100, 99.999, False),
    ("less_than", 100, 99, True),
    ("less_than", 100, 100, False),
    ("less_than", 0.3, 0.1 + 0.2, False),  # 0.30000000000000004
    ("less_than_or_equals", 100, 100.0, True),
    ("less_than_or_equals", 100, 101, False),
    # ordering: strings lexicographically, only when both are strings
    ("greater_than", "abc", "abd", True),
    ("greater_than", "abc", "abc", False),
    ("less_than", "b", "a", True),
    ("less_than", "9", "10", True),  # both strings: lexicographic, "10" < "9"
    ("greater_than", "2026-01-01", "2026-11-21", True),
    ("less_than_or_equals", "m", "m", True),
    ("greater_than_or_equals", "abc", 5, False),  # non-numeric string vs number
    # contains / does_not_contain
    ("contains", "v2", "/api/v2/users", True),
    ("contains", "v3", "/api/v2/users", False),
    ("contains", "V2", "/api/v2/users", False),
    ("contains", 2, "/api/v2/users", True),  # substring with str(value)
    ("contains", True, "is true", True),
    ("contains", "beta", ["alpha", "beta"], True),
    ("contains", "bet", ["alpha", "beta"], False),  # membership, not substring
    ("contains", 1, [1.0, 2], True),
    ("contains", 1, ["1"], True),
    ("contains", 1, [True], False),
    ("contains", 5, 12345, False),  # neither string nor list
    ("contains", "a", {"a": 1}, False),
    ("does_not_contain", "test", "prod-eu", True),
    ("does_not_contain", "test", "test-eu", False),
    ("does_not_contain", "beta", ["alpha", "beta"], False),
    ("does_not_contain", "gamma", ["alpha", "beta"], True),
    ("does_not_contain", 5, 12345, True),
]


@pytest.mark.parametrize(("operator", "value", "prop", "expected"), OPERATOR_TABLE)
def test_r_m3_operator(operator, value, prop, expected):
    """R-M3: every comparator, type-aware."""
    assert matches(one(operator, value), {"p": prop}) is expected


def test_r_m3_every_operator_is_covered():
    assert {row[0] for row in OPERATOR_TABLE} == set(OPERATORS)
    assert len(OPERATORS) == 8
    assert CONJUNCTIONS == ("and", "or")


# ---------------------------------------------------------------------------- R-M4


@pytest.mark.parametrize("operator", OPERATORS)
@pytest.mark.parametrize("event", [{}, {"p": None}, {"other": "x"}], ids=["absent", "null", "else"])
def test_r_m4_missing_property_excludes_whatever_the_operator(operator, event):
    """R-M4: an event lacking the property is excluded, not_equals / does_not_contain too."""
    assert matches(one(operator, "x"), event) is False


@pytest.mark.parametrize("operator", OPERATORS)
def test_r_m4_missing_property_excludes_inside_an_or_group(operator):
    """R-M4: even when another branch of an OR group is true, the event is excluded."""
    f = parse_filter(
        group("or", cond("tier", "equals", "premium"), cond("p", operator, "x")),
    )
    assert matches(f, {"tier": "premium"}) is False
    assert matches(f, {"tier": "premium", "p": None}) is False


def test_r_m4_missing_property_deep_inside_groups():
    """R-M4: a missing property three groups down still excludes the event."""
    f = parse_filter(
        group(
            "or",
            cond("a", "equals", 1),
            group("or", cond("b", "equals", 1), group("and", cond("c", "not_equals", 1))),
        )
    )
    assert matches(f, {"a": 1, "b": 1, "c": 2})
    assert not matches(f, {"a": 1, "b": 1})


def test_r_m4_missing_dotted_property():
    """R-M4: a dotted path that does not resolve is a missing property."""
    f = one("not_equals", "free", prop="user.tier")
    assert matches(f, {"user": {"tier": "premium"}})
    assert not matches(f, {"user": {}})
    assert not matches(f, {"user": "premium"})
    assert not matches(f, {"user": {"tier": None}})


def test_r_m4_properties_not_a_dict():
    assert matches(one("not_equals", "x"), None) is False
    assert matches(one("not_equals", "x"), ["p"]) is False


def test_r_m4_present_falsy_values_are_not_missing():
    """R-M4: only absent or null is missing; 0, "", false and [] are present."""
    assert matches(one("not_equals", "x"), {"p": 0})
    assert matches(one("not_equals", "x"), {"p": ""})
    assert matches(one("not_equals", "x"), {"p": False})
    assert matches(one("does_not_contain", "x"), {"p": []})


# ---------------------------------------------------------------------------- dotted paths


def test_extract_dotted_paths():
    props = {
        "user": {"tier": "premium", "org": {"id": 7}},
        "http.method": "POST",
        "a.b": {"c": "literal-head"},
        "a": {"b": {"c": "nested"}, "x.y": "inner-literal"},
        "n": None,
    }
    assert extract(props, "user.tier") == "premium"
    assert extract(props, "user.org.id") == 7
    assert extract(props, "user") == props["user"]
    assert extract(props, "http.method") == "POST"  # literal key with a dot
    assert extract(props, "a.b.c") == "literal-head"  # longest literal key first
    assert extract(props, "a.x.y") == "inner-literal"
    assert extract(props, "n") is None
    assert extract(props, "user.plan") is MISSING
    assert extract(props, "user.tier.x") is MISSING
    assert extract(props, "nope") is MISSING
    assert extract(props, "http") is MISSING
    assert extract(None, "a") is MISSING


def test_extract_falls_back_when_literal_head_misses():
    props = {"a.b": {"z": 1}, "a": {"b": {"c": 2}}}
    assert extract(props, "a.b.c") == 2
    assert extract(props, "a.b.z") == 1


def test_r_m3_filter_on_dotted_path():
    """R-M3 with a dotted property; a literal dotted key wins over nesting."""
    f = one("equals", "premium", prop="user.tier")
    assert matches(f, {"user": {"tier": "premium"}})
    assert matches(f, {"user.tier": "premium", "user": {"tier": "free"}})
    assert not matches(f, {"user": {"tier": "free"}})


# ---------------------------------------------------------------------------- to_decimal


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, Decimal(1)),
        (0.1, Decimal("0.1")),
        (1e20, Decimal("1e20")),
        (Decimal("2.50"), Decimal("2.50")),
        ("10", Decimal(10)),
        (" 12.5 ", Decimal("12.5")),
        ("-3e2", Decimal(-300)),
        (".5", Decimal("0.5")),
        (10**30, Decimal(10**30)),
        (True, None),
        (False, None),
        (float("nan"), None),
        (float("inf"), None),
        (Decimal("NaN"), None),
        (Decimal("-Infinity"), None),
        ("NaN", None),
        ("Infinity", None),
        ("1_000", None),
        ("0x10", None),
        ("", None),
        ("ten", None),
        ("1e5000", None),
        (None, None),
        ([1], None),
        ({"a": 1}, None),
    ],
)
def test_to_decimal(value, expected):
    result = to_decimal(value)
    if expected is None:
        assert result is None
    else:
        assert result == expected
        assert isinstance(result, Decimal)


# ---------------------------------------------------------------------------- FilterError

MALFORMED = [
    ([], "", "must be an object"),
    ("and", "", "must be an object"),
    (cond("p", "equals", 1), "", "not a single condition"),
    ({"clauses": [cond("p", "equals", 1)]}, "conjunction", "is required"),
    (group("xor", cond("p", "equals", 1)), "conjunction", "must be 'and' or 'or'"),
    (group("AND", cond("p", "equals", 1)), "conjunction", "must be 'and' or 'or'"),
    ({"conjunction": "and"}, "clauses", "is required"),
    ({"conjunction": "and", "clauses": "x"}, "clauses", "must be a list"),
    (group("and"), "clauses", "must not be empty"),
    (group("and", cond("p", "equals", 1), group("or")), "clauses[1].clauses", "must not be empty"),
    (group("and", "p = 1"), "clauses[0]", "must be an object"),
    (group("and", cond("p", "equals", 1), 7), "clauses[1]", "must be an object"),
    (
        group("and", cond("p", "equals", 1), group("or", cond("q", "equls", 1))),
        "clauses[1].clauses[0].operator",
        "unknown operator 'equls'",
    ),
    (group("and", {"property": "p", "value": 1}), "clauses[0].operator", "is required"),
    (group("and", cond("p", ["equals"], 1)), "clauses[0].operator", "unknown operator"),
    (group("and", {"operator": "equals", "value": 1}), "clauses[0].property", "is required"),
    (group("and", cond("", "equals", 1)), "clauses[0].property", "non-empty string"),
    (group("and", cond("  ", "equals", 1)), "clauses[0].property", "non-empty string"),
    (group("and", cond(5, "equals", 1)), "clauses[0].property", "non-empty string"),
    (group("and", {"property": "p", "operator": "equals"}), "clauses[0].value", "is required"),
    (group("and", cond("p", "equals", None)), "clauses[0].value", "must not be null"),
    (group("and", cond("p", "greater_than", [1, 2])), "clauses[0].value", "not a list"),
    (group("and", cond("p", "equals", ["a", "b"])), "clauses[0].value", "not a list"),
    (group("and", cond("p", "contains", {"a": 1})), "clauses[0].value", "string, a number"),
    (group("and", cond("p", "less_than", True)), "clauses[0].value", "not a boolean"),
    (group("and", cond("p", "equals", float("nan"))), "clauses[0].value", "finite number"),
    (group("and", cond("p", "equals", float("inf"))), "clauses[0].value", "finite number"),
    (
        group("and", {"conjunction": "or", "property": "p", "clauses": []}),
        "clauses[0]",
        "not both",
    ),
    (
        group("or", cond("a", "equals", 1), group("and", {"conjunction": "nand", "clauses": []})),
        "clauses[1].clauses[0].conjunction",
        "must be 'and' or 'or'",
    ),
]


@pytest.mark.parametrize(("obj", "path", "message"), MALFORMED)
def test_r_m3_malformed_filter_names_the_bad_clause(obj, path, message):
    """R-M3: a malformed filter raises FilterError naming the bad clause by its path."""
    with pytest.raises(FilterError) as info:
        parse_filter(obj)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.path == path
    assert message in err.message
    assert str(err) == (f"{path}: {err.message}" if path else err.message)


def nested(depth):
    """A filter whose innermost group is at ``depth`` (the root is depth 1)."""
    node = group("and", cond("p", "equals", 1))
    for _ in range(depth - 1):
        node = group("or", node)
    return node


def test_r_m3_nesting_at_most_eight_deep():
    """R-M3: groups nest at most 8 deep; the ninth names its path."""
    assert parse_filter(nested(8)) is not None
    with pytest.raises(FilterError) as info:
        parse_filter(nested(9))
    assert info.value.path == ".".join(["clauses[0]"] * 8)
    assert "at most 8 deep" in info.value.message


def test_r_m3_at_most_one_hundred_clauses():
    """R-M3: at most 100 clauses in total; the 101st is named."""
    assert parse_filter(group("and", *[cond("p", "equals", i) for i in range(100)]))
    with pytest.raises(FilterError) as info:
        parse_filter(group("and", *[cond("p", "equals", i) for i in range(101)]))
    assert info.value.path == "clauses[100]"
    # Groups count as clauses and the count spans the whole tree.
    tree = group(
        "or",
        *[group("and", *[cond("p", "equals", i) for i in range(9)]) for _ in range(10)],
        cond("q", "equals", 1),
    )
    with pytest.raises(FilterError) as info:
        parse_filter(tree)
    assert info.value.path == "clauses[10]"
    assert "at most 100 clauses" in str(info.value)


def test_dataclasses_validate_when_built_by_hand():
    with pytest.raises(FilterError):
        Condition("p", "like", "x")
    with pytest.raises(FilterError):
        Condition("p", "less_than", False)
    with pytest.raises(FilterError):
        Group("and", ())
    with pytest.raises(FilterError):
        Group("nor", (Condition("p", "equals", 1),))
    g = Group("and", [Condition("p", "equals", 1)])
    assert g.clauses == (Condition("p", "equals", 1),)
    assert parse_filter(g) is g


def test_trees_are_immutable_hashable_and_type_aware():
    f = parse_filter(group("and", cond("p", "equals", True)))
    with pytest.raises(AttributeError):
        f.conjunction = "or"
    assert hash(f) == hash(parse_filter(group("and", cond("p", "equals", True))))
    assert Condition("p", "equals", True) != Condition("p", "equals", 1)
    assert Condition("p", "equals", 1) != Condition("p", "equals", 1.0)


def test_pickle_round_trip():
    import pickle

    f = parse_filter(group("and", cond("a", "equals", 1), group("or", cond("b", "contains", "x"))))
    assert matches(f, {"a": 1, "b": "xyz"})
    g = pickle.loads(pickle.dumps(f))
    assert g == f
    assert matches(g, {"a": 1, "b": "xyz"})
    assert pickle.loads(pickle.dumps(MISSING)) is MISSING


def test_filter_to_json_round_trips_the_examples():
    obj = group(
        "and",
        cond("user_tier", "equals", "premium"),
        group("or", cond("method", "equals", "POST"), cond("method", "equals", "PUT")),
    )
    f = parse_filter(obj)
    assert filter_to_json(f) == obj
    assert parse_filter(filter_to_json(f)) == f


# ---------------------------------------------------------------------------- properties

scalars = st.one_of(
    st.text(max_size=6),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6),
    st.booleans(),
    st.sampled_from(["10", "10.0", "-3", "abc", ""]),
)
property_names = st.sampled_from(["a", "b", "c", "user.tier", "x.y.z"])


@st.composite
def conditions(draw):
    prop = draw(property_names)
    op = draw(st.sampled_from(OPERATORS))
    if op in ("greater_than", "greater_than_or_equals", "less_than", "less_than_or_equals"):
        value = draw(scalars.filter(lambda v: not isinstance(v, bool)))
    else:
        value = draw(scalars)
    return Condition(prop, op, value)


def trees(max_leaves=12):
    return st.recursive(
        conditions(),
        lambda children: st.builds(
            Group,
            st.sampled_from(CONJUNCTIONS),
            st.lists(children, min_size=1, max_size=4).map(tuple),
        ),
        max_leaves=max_leaves,
    ).map(lambda node: node if isinstance(node, Group) else Group("and", (node,)))


json_values = st.one_of(
    st.none(), scalars, st.lists(scalars, max_size=3), st.dictionaries(st.text(max_size=2), scalars)
)


def event_for(draw_values, names):
    props = {}
    for name, value in zip(names, draw_values, strict=True):
        if name == "user.tier":
            props["user"] = {"tier": value}
        elif name == "x.y.z":
            props["x.y"] = {"z": value}
        else:
            props[name] = value
    return props


NAMES = ["a", "b", "c", "user.tier", "x.y.z"]
events = st.lists(json_values, min_size=len(NAMES), max_size=len(NAMES)).map(
    lambda values: event_for(values, NAMES)
)


@given(trees())
def test_r_m3_round_trip_property(f):
    """R-M3: parse_filter(filter_to_json(f)) == f for any tree."""
    assert parse_filter(filter_to_json(f)) == f
    assert filter_to_json(parse_filter(filter_to_json(f))) == filter_to_json(f)


@given(st.sampled_from(OPERATORS), st.data())
def test_r_m3_negations_property(op, data):
    """R-M3: with the property present, not_equals = not equals and
    does_not_contain = not contains."""
    value = data.draw(scalars)
    prop = data.draw(json_values.filter(lambda v: v is not None))
    event = {"p": prop}
    assert matches(one("not_equals", value), event) is not matches(one("equals", value), event)
    assert matches(one("does_not_contain", value), event) is not matches(
        one("contains", value), event
    )


def reference(node, props):
    """Slow reference: R-M4 check on every referenced property, then plain all/any."""
    for name in referenced_properties(node):
        if extract(props, name) in (None, MISSING):
            return False

    def evaluate(n):
        if isinstance(n, Condition):
            return n.test(extract(props, n.property))
        results = [evaluate(c) for c in n.clauses]
        return all(results) if n.conjunction == "and" else any(results)

    return evaluate(node)


@settings(max_examples=300)
@given(trees(), events)
def test_r_m3_r_m4_compiled_matches_reference_property(f, event):
    """R-M3/R-M4: the compiled evaluator agrees with a naive tree walk."""
    assert matches(f, event) is reference(f, event)


@given(trees(), events, st.data())
def test_r_m4_dropping_a_referenced_property_excludes_property(f, event, data):
    """R-M4: remove any referenced property (or null it) and the event is excluded."""
    name = data.draw(st.sampled_from(sorted(referenced_properties(f))))
    nulled = data.draw(st.booleans())
    if name == "user.tier":
        event["user"] = {"tier": None} if nulled else {}
    elif name == "x.y.z":
        event["x.y"] = {"z": None} if nulled else {}
    elif nulled:
        event[name] = None
    else:
        event.pop(name, None)
    assert matches(f, event) is False
