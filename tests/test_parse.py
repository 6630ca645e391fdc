"""The CLI's KEY=VALUE parsing, with property-based checks."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scdiff import InputError
from scdiff.cli._parse import parse_assignments, parse_doses, parse_guidance

keys = st.text(st.characters(categories=("L", "N"), include_characters="_"), min_size=1, max_size=10)
values = st.text(min_size=1, max_size=20).filter(lambda s: s.strip() == s and "=" not in s and s)


@given(st.dictionaries(keys, values, max_size=4))
def test_assignments_roundtrip(d):
    assert parse_assignments([f"{k}={v}" for k, v in d.items()], option="--condition") == d


def test_assignment_value_may_hold_equals_and_spaces():
    assert parse_assignments(["cell_type=CD14+ Monocyte"], option="-c") == {"cell_type": "CD14+ Monocyte"}
    assert parse_assignments(["a=b=c"], option="-c") == {"a": "b=c"}


@pytest.mark.parametrize("bad", ["cell_type", "=B", "cell_type=", " = "])
def test_assignment_errors(bad):
    with pytest.raises(InputError, match="KEY=VALUE"):
        parse_assignments([bad], option="--condition")


@given(st.floats(min_value=0, max_value=1e6, allow_nan=False))
def test_doses_parse(x):
    assert parse_doses([f"dose={x!r}"]) == {"dose": x}


@pytest.mark.parametrize("bad", ["dose=abc", "dose=nan", "dose=inf", "dose"])
def test_dose_errors(bad):
    with pytest.raises(InputError):
        parse_doses([bad])


def test_guidance_forms():
    assert parse_guidance(None) == 1.0
    assert parse_guidance(["2.5"]) == 2.5
    assert parse_guidance(["drug=4", "cell_line=1"]) == {"drug": 4.0, "cell_line": 1.0}
    with pytest.raises(InputError):
        parse_guidance(["2", "drug=1"])
    with pytest.raises(InputError):
        parse_guidance(["strong"])
