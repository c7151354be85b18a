"""City-scale benchmarks (``make bench``): each ``bench_*.py`` module has ``main() -> list[str]``.

They compare urbanunits with the obvious baseline in the same run and print ratios. Not part of the
test suite; everything is generated offline from fixed seeds.
"""
