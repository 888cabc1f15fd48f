//! Volume `options`: keys and values gluster's `volume set` can take, except `auth.allow`,
//! which Brickyard computes (the pool's servers and the volume's clients); `auth_allow`
//! widens it by further IP addresses, or is `["*"]` alone (everyone); nor the TLS options,
//! which `[pool] tls` sets.

use std::net::IpAddr;

use brickyard_proto::types::{OptionKey, OptionValue};

use super::Issues;
use crate::phases::{AUTH_ALLOW, AUTH_ALLOW_EVERYONE};
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
            if key == AUTH_ALLOW {
                issues.push(
                    at!["volume", v, "options", key.as_str()],
                    "is set by Brickyard to the pool's servers and the volume's clients; list further addresses \
                     in `auth_allow = [...]` on the volume",
                );
            }
            if crate::gluster_tls::is_tls_option(key.as_str()) {
                issues.push(
                    at!["volume", v, "options", key.as_str()],
                    "is set by Brickyard from `tls` under [pool] (GlusterFS TLS from the pool CA, on by default)",
                );
            }
        }
        for (i, entry) in volume.auth_allow.iter().enumerate() {
            if entry == AUTH_ALLOW_EVERYONE {
                if volume.auth_allow.len() > 1 {
                    issues.push(
                        at!["volume", v, "auth_allow", i],
                        "\"*\" admits everyone and stands alone (`auth_allow = [\"*\"]`)",
                    );
                }
            } else if entry.parse::<IpAddr>().is_err() {
                issues.push(at!["volume", v, "auth_allow", i], format!("{entry:?} is not an IP address"));
            }
        }
    }
}
