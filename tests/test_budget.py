"""Budget parsing: ratios, percentages, SI/IEC sizes, and clear errors before anything runs."""
import pytest

from ir_prune_plugin.budgets import parse_memory_budget, parse_size

REF = 1_000_000_000  # 1 GB reference peak


@pytest.mark.parametrize("text,expected", [
    ("384MB", 384_000_000), ("384mb", 384_000_000), ("384 MiB", 384 * 2 ** 20),
    ("1.5GiB", int(1.5 * 2 ** 30)), ("4096", 4096), ("512KB", 512_000), ("2e3B", 2000),
])
def test_parse_size_units(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "MB", "12 parsecs", "-3MB", "1..2MB", "0.0001B"])
def test_parse_size_rejects_garbage(text):
    with pytest.raises(ValueError) as info:
        parse_size(text)
    assert repr(text) in str(info.value)


def test_ratio_percent_size_and_int():
    assert parse_memory_budget(0.5, REF) == 500_000_000
    assert parse_memory_budget("25%", REF) == 250_000_000
    assert parse_memory_budget("384MB", REF) == 384_000_000
    assert parse_memory_budget(123_456, REF) == 123_456


@pytest.mark.parametrize("bad", [0, -5, 0.0, 1.0, 1.5, -0.1, float("nan"), "0%", "100%", "150%"])
def test_out_of_range_budgets_raise_value_error_naming_the_value(bad):
    with pytest.raises(ValueError) as info:
        parse_memory_budget(bad, REF)
    assert repr(bad) in str(info.value) or str(bad) in str(info.value)


def test_budget_at_or_above_reference_is_rejected_with_both_sizes():
    with pytest.raises(ValueError, match="not below the current peak"):
        parse_memory_budget("2GB", REF)
    with pytest.raises(ValueError, match="not below"):
        parse_memory_budget(REF, REF)


@pytest.mark.parametrize("bad", [True, None, [1], {"a": 1}])
def test_wrong_types_raise_type_error(bad):
    with pytest.raises(TypeError):
        parse_memory_budget(bad, REF)


def test_bad_reference_is_rejected():
    with pytest.raises(ValueError, match="reference_bytes"):
        parse_memory_budget(0.5, 0)
