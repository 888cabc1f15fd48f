//! Servers and clients: one namespace of host names (valid, unique ignoring case, not the
//! coordinator's identity) and of addresses (IP addresses, unique), and agent ports that are
//! not 0.

use std::collections::HashMap;
use std::net::IpAddr;

use brickyard_proto::types::HostName;

use super::Issues;
use crate::pki::COORDINATOR_IDENTITY;
use crate::spec::Spec;

pub(super) fn check(spec: &Spec, issues: &mut Issues) {
    let hosts = spec
        .servers
        .iter()
        .enumerate()
        .map(|(i, s)| ("server", i, &s.name, &s.address, s.port))
        .chain(spec.clients.iter().enumerate().map(|(i, c)| ("client", i, &c.name, &c.address, c.port)));
    let mut names: HashMap<String, String> = HashMap::new();
    let mut addresses: HashMap<IpAddr, String> = HashMap::new();
    for (table, i, name, address, port) in hosts {
        let here = format!("{table}[{i}]");
        match HostName::new(name) {
            Err(e) => issues.push(at![table, i, "name"], e.to_string()),
            Ok(_) if name.eq_ignore_ascii_case(COORDINATOR_IDENTITY) => {
                issues.push(at![table, i, "name"], format!("{name:?} is the coordinator's identity, not a host name"))
            }
            Ok(_) => {
                if let Some(first) = names.insert(name.to_ascii_lowercase(), here.clone()) {
                    issues.push(at![table, i, "name"], format!("host name {name:?} is already used by {first}"));
                }
            }
        }
        match address.parse::<IpAddr>() {
            Err(_) => issues.push(at![table, i, "address"], format!("{address:?} is not an IP address")),
            Ok(ip) => {
                if let Some(first) = addresses.insert(ip, here) {
                    issues.push(at![table, i, "address"], format!("address {address} is already used by {first}"));
                }
            }
        }
        if port == Some(0) {
            issues.push(at![table, i, "port"], "port 0 is not a port an agent can listen on (1-65535)");
        }
    }
}
