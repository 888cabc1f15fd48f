//! Semantic checks on a parsed spec (`crate::spec`), run before any host is contacted, one
//! module per concern: the pool, hosts (names, addresses, ports), replaced servers, disks, volumes (names, brick
//! dirs, servers, layouts through `brickyard_proto::layout`), volume options, clients and
//! their mounts. Values are checked with the same newtypes the agents use. `load`/`parse` are
//! the entry points: parse the document, check it, locate every issue at its line and key.
//! Reads only the spec file.

use std::path::Path;

use crate::spec::{key_path, line_of, Seg, Spec, SpecError, SpecIssue};

/// `at!["server", 1, "name"]`: a key path into the spec document.
macro_rules! at {
    ($($seg:expr),* $(,)?) => { vec![$(crate::spec::Seg::from($seg)),*] };
}

mod clients;
mod disks;
mod drain;
mod hosts;
mod options;
mod pool;
mod replaces;
#[cfg(test)]
mod tests;
mod volumes;

/// One problem, located by its key path in the document (see `spec::line_of`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub at: Vec<Seg>,
    pub message: String,
}

/// The issues found so far.
#[derive(Default)]
struct Issues(Vec<Issue>);

impl Issues {
    fn push(&mut self, at: Vec<Seg>, message: impl Into<String>) {
        self.0.push(Issue { at, message: message.into() });
    }
}

/// Reads, parses and checks the spec at `path`; nothing else is touched.
pub fn load(path: &Path) -> Result<Spec, SpecError> {
    let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read { path: path.into(), source })?;
    parse(&text, path)
}

/// Parses and checks spec text; `path` is where it came from. Issues are listed in file order.
pub fn parse(text: &str, path: &Path) -> Result<Spec, SpecError> {
    let spec = Spec::from_toml(text, path)?;
    let issues = check(&spec);
    if issues.is_empty() {
        return Ok(spec);
    }
    let mut issues: Vec<SpecIssue> = issues
        .into_iter()
        .map(|issue| SpecIssue { line: line_of(text, &issue.at), key: key_path(&issue.at), message: issue.message })
        .collect();
    issues.sort_by_key(|issue| issue.line);
    Err(SpecError::Semantic { path: path.into(), issues })
}

/// Every semantic problem of `spec` (empty = valid).
pub fn check(spec: &Spec) -> Vec<Issue> {
    let mut issues = Issues::default();
    pool::check(spec, &mut issues);
    hosts::check(spec, &mut issues);
    replaces::check(spec, &mut issues);
    disks::check(spec, &mut issues);
    volumes::check(spec, &mut issues);
    drain::check(spec, &mut issues);
    options::check(spec, &mut issues);
    clients::check(spec, &mut issues);
    issues.0
}
