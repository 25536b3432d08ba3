"""Benchmark and evaluation code, imported only by the CLI and benchmarks, never by the core.

- :mod:`librex_alloc.evaluation.oracle_bench`: the oracle benchmark
  (``python -m librex_alloc.evaluation.oracle_bench`` or ``librex-alloc bench oracle``);
- :mod:`librex_alloc.evaluation.reference`: the original design's per-round SCIP model, the
  benchmark's baseline (not a library oracle).

Nothing in ``librex_alloc`` outside this package and ``librex_alloc.cli`` imports it.
"""
