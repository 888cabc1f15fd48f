//! Shared helpers for Brickyard's end-to-end tests (see `tests/tests/`).
