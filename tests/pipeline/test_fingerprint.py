"""Cache keys change with source, params, inputs and version, and with nothing else."""

from __future__ import annotations

from conveyor.pipeline import cache_key, source_hash, step


@step
def double(x, factor=2):
    return x * factor


@step
def double_again(x, factor=2):
    return x * factor * 1


def test_same_everything_same_key():
    assert cache_key(double, {"x": "a" * 64}, "1") == cache_key(double, {"x": "a" * 64}, "1")


def test_key_depends_on_each_ingredient():
    base = cache_key(double, {"x": "a" * 64}, "1")
    assert cache_key(double.with_params(factor=3), {"x": "a" * 64}, "1") != base
    assert cache_key(double, {"x": "b" * 64}, "1") != base
    assert cache_key(double, {"x": "a" * 64}, "2") != base
    assert cache_key(double_again, {"x": "a" * 64}, "1") != base


def test_input_order_does_not_matter():
    one = cache_key(double, {"x": "a" * 64, "y": "b" * 64}, "1")
    two = cache_key(double, {"y": "b" * 64, "x": "a" * 64}, "1")
    assert one == two


def test_source_hash_falls_back_to_bytecode_without_source():
    fn = eval("lambda x: x + 1")  # no source file to read
    assert len(source_hash(fn)) == 64
    assert source_hash(fn) != source_hash(eval("lambda x: x + 2"))
