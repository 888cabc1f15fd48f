//! Shared helpers for Brickyard's end-to-end tests (see `tests/tests/`).
//!
//! - `bins`: the workspace binaries (`brickyard-agent`, `brickyard`) and a running agent process.
//! - `pki`: a throw-away pool PKI, agent configs and deliberately wrong certificates.

pub mod bins;
pub mod pki;
