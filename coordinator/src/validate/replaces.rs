//! `replaces = "OLD"` on a server: OLD is a valid host name that is no longer in the spec (the
//! replaced server leaves it: it may be gone for good, and nothing may try to reach it), is
//! not the server itself, and is replaced by one server only.

use std::collections::HashMap;

use brickyard_proto::types::HostName;

use super::Issues;
use crate::spec::Spec;

pub(super) fn check(spec: &Spec, issues: &mut Issues) {
    let mut replaced: HashMap<String, &str> = HashMap::new();
    for (i, server) in spec.servers.iter().enumerate() {
        let Some(old) = &server.replaces else { continue };
        let at = at!["server", i, "replaces"];
        if let Err(e) = HostName::new(old) {
            issues.push(at, e.to_string());
        } else if old.eq_ignore_ascii_case(&server.name) {
            issues.push(at, format!("server {} cannot replace itself", server.name));
        } else if spec.hosts().iter().any(|h| h.name.eq_ignore_ascii_case(old)) {
            issues.push(
                at,
                format!(
                    "{old} is still in the spec: a replaced server leaves it (remove its [[server]] entry, \
                     and name {} instead of it in the volumes' `servers`)",
                    server.name
                ),
            );
        } else if let Some(first) = replaced.insert(old.to_ascii_lowercase(), &server.name) {
            issues.push(at, format!("{old} is already replaced by {first}"));
        }
    }
}
