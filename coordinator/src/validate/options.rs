//! Volume `options`: keys and values gluster's `volume set` can take.

use brickyard_proto::types::{OptionKey, OptionValue};

use super::Issues;
use crate::spec::Spec;

pub(super) fn check(spec: &Spec, issues: &mut Issues) {
    for (v, volume) in spec.volumes.iter().enumerate() {
        for (key, value) in &volume.options {
            if let Err(e) = OptionKey::new(key) {
                issues.push(at!["volume", v, "options", key.as_str()], e.to_string());
            }
            if let Err(e) = OptionValue::new(value) {
                issues.push(at!["volume", v, "options", key.as_str()], e.to_string());
            }
        }
    }
}
