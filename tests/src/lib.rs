//! warmpool end-to-end tests: see `tests/`.
