//! The coordinator's commands as the CLI and `lab up` run them: `plan`, `apply`, `status`,
//! `verify`, `destroy` on a loaded spec, printing their report (human or JSON) to stdout and errors to
//! stderr, and returning the process exit code. Network only (through the agents).

use std::sync::Arc;

use crate::spec::Spec;
use crate::{apply, plan, progress, status, verify};

/// `brickyard plan`: 0 nothing to do, 1 errors, 2 changes (with `detailed_exitcode`).
pub async fn plan(spec: &Spec, json: bool, detailed_exitcode: bool) -> u8 {
    let report = plan::run(spec).await;
    if json {
        println!("{}", serde_json::to_string_pretty(&report).expect("plan report serializes"));
    } else {
        print!("{}", plan::render_text(&report));
    }
    report.exit_code(detailed_exitcode)
}

/// `brickyard destroy`: 0 destroyed (or nothing to do), 1 refused or failed.
pub async fn destroy(spec: &Spec, volume: &str, yes: bool) -> u8 {
    match crate::destroy::run(spec, volume, yes).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("brickyard: destroy: {e}");
            1
        }
    }
}

/// `brickyard apply`: 0 converged, 1 a phase failed (every failure printed to stderr).
pub async fn apply(spec: &Spec, json: bool) -> u8 {
    let reporter: Arc<dyn progress::Reporter> = Arc::from(progress::reporter(json));
    match apply::run(spec, reporter).await {
        Ok(_) => 0,
        Err(e) => {
            eprintln!("brickyard: apply: {e}");
            1
        }
    }
}

/// `brickyard status`: 0 healthy, 1 degraded, 2 hosts unreachable.
pub async fn status(spec: &Spec, json: bool) -> u8 {
    let report = status::run(spec).await;
    if json {
        println!("{}", serde_json::to_string_pretty(&status::render_json(&report)).expect("status serializes"));
    } else {
        print!("{}", status::render_text(spec, &report));
    }
    report.exit_code()
}

/// `brickyard verify`: 0 every check passed, 1 otherwise.
pub async fn verify(spec: &Spec, json: bool) -> u8 {
    let report = verify::run(spec).await;
    if json {
        println!("{}", serde_json::to_string_pretty(&report).expect("verify report serializes"));
    } else {
        print!("{}", verify::render_text(&report));
    }
    if report.ok() {
        0
    } else {
        1
    }
}
