//! nsguard's test suite, benchmarks and heavier examples (unpublished): see
//! `tests/`, `benches/` and `examples/` next to this file.
