//! Shared helpers for Brickyard's end-to-end tests (see `tests/tests/`).
//!
//! - `agent`: tasks, Plan and Apply against a connected agent, one outcome line per task.
//! - `bins`: the workspace binaries (`brickyard-agent`, `brickyard`, `brickyard-lab`) and a running
//!   agent process.
//! - `lab`: `TestLab`, a lab of namespaced hosts (`brickyard-lab up` / `down`) for OS tests.
//! - `pki`: a throw-away pool PKI, agent configs and deliberately wrong certificates.

pub mod agent;
pub mod bins;
pub mod lab;
pub mod pki;
