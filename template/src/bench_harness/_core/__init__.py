"""Internal: import from bench_harness, not from here."""
