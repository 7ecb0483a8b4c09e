//! Micro-benchmarks live under `micro/`; this library is empty.
