//! Lab naming and addressing (pure, no I/O): lab names, the hosts of a lab with their
//! addresses, the network namespace and interface names, and the /24 each lab uses inside
//! 198.18.0.0/15 (the benchmarking range, never routed on the internet).

use std::fmt;
use std::net::Ipv4Addr;

/// Default lab name when `--name` is not given.
pub const DEFAULT_LAB: &str = "lab";
/// Most servers / clients a lab can have (their address blocks are .11-.99 and .101-.199).
pub const MAX_SERVERS: usize = 89;
pub const MAX_CLIENTS: usize = 99;
/// The bridge inside the control namespace.
pub const BRIDGE: &str = "br0";
/// The host side of each host's veth pair.
pub const HOST_IF: &str = "eth0";
/// Prefix of every network namespace a lab creates (`brickyard-<lab>-<ctl|host>`).
const NETNS_PREFIX: &str = "brickyard-";
/// Suffix of the control namespace.
const CONTROL: &str = "ctl";

/// A validated lab name: 1-40 of `a-z 0-9 -`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabName(String);

#[derive(Debug, thiserror::Error)]
#[error("invalid lab name {0:?}: use 1-40 characters a-z, 0-9 and '-', starting with a letter or digit")]
pub struct InvalidLabName(pub String);

impl LabName {
    pub fn new(name: &str) -> Result<Self, InvalidLabName> {
        let ok = !name.is_empty()
            && name.len() <= 40
            && !name.starts_with('-')
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Self(name.to_string()))
        } else {
            Err(InvalidLabName(name.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The control namespace: holds the bridge and the coordinator's address.
    pub fn control_netns(&self) -> String {
        format!("{NETNS_PREFIX}{}-{CONTROL}", self.0)
    }

    /// The network namespace of host `host`.
    pub fn host_netns(&self, host: &str) -> String {
        format!("{NETNS_PREFIX}{}-{host}", self.0)
    }

    /// Whether `netns` is one of this lab's namespaces. The part after `brickyard-<lab>-` must be
    /// exactly `ctl`, `gluServerN` or `clientN`, so lab `a` never claims lab `a-b`'s namespaces.
    pub fn owns_netns(&self, netns: &str) -> bool {
        let Some(rest) = netns.strip_prefix(NETNS_PREFIX).and_then(|r| r.strip_prefix(self.0.as_str())) else {
            return false;
        };
        let Some(token) = rest.strip_prefix('-') else { return false };
        token == CONTROL || parse_host_name(token).is_some()
    }

    /// The lab's /24: `198.(18 + i / 256).(i % 256).0` with `i` a stable hash of the name mod 512.
    /// Labs are isolated networks (each bridge lives in its own control namespace), so two labs
    /// whose names hash alike still work; distinct subnets just make addresses easier to tell apart.
    pub fn subnet(&self) -> Subnet {
        // FNV-1a: stable across Rust versions and platforms, unlike DefaultHasher.
        let hash =
            self.0.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        let i = (hash % 512) as u16;
        Subnet { second: 18 + (i / 256) as u8, third: (i % 256) as u8 }
    }
}

impl fmt::Display for LabName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One /24 inside 198.18.0.0/15.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    second: u8,
    third: u8,
}

impl Subnet {
    pub fn host(&self, last: u8) -> Ipv4Addr {
        Ipv4Addr::new(198, self.second, self.third, last)
    }

    /// The control namespace's address (the coordinator's source address).
    pub fn control(&self) -> Ipv4Addr {
        self.host(1)
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "198.{}.{}.0/24", self.second, self.third)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Server,
    Client,
}

/// One host of a lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPlan {
    pub name: String,
    pub role: Role,
    pub address: Ipv4Addr,
    pub netns: String,
    /// The control-namespace side of the host's veth pair (at most 15 bytes).
    pub veth: String,
}

#[derive(Debug, thiserror::Error)]
#[error("a lab has 0-{MAX_SERVERS} servers and 0-{MAX_CLIENTS} clients, at least one host (asked: {servers} servers, {clients} clients)")]
pub struct BadTopology {
    pub servers: usize,
    pub clients: usize,
}

/// The hosts of a lab: `gluServer1..N` at .11.., then `client1..M` at .101...
pub fn plan_hosts(lab: &LabName, servers: usize, clients: usize) -> Result<Vec<HostPlan>, BadTopology> {
    if servers > MAX_SERVERS || clients > MAX_CLIENTS || servers + clients == 0 {
        return Err(BadTopology { servers, clients });
    }
    let subnet = lab.subnet();
    let host = |name: String, role, last: usize| HostPlan {
        netns: lab.host_netns(&name),
        veth: format!("v-{name}"),
        address: subnet.host(last as u8),
        name,
        role,
    };
    Ok((1..=servers)
        .map(|i| host(format!("gluServer{i}"), Role::Server, 10 + i))
        .chain((1..=clients).map(|i| host(format!("client{i}"), Role::Client, 100 + i)))
        .collect())
}

/// `gluServerN` / `clientN` → role and N.
pub fn parse_host_name(name: &str) -> Option<(Role, usize)> {
    let (role, digits) = if let Some(d) = name.strip_prefix("gluServer") {
        (Role::Server, d)
    } else {
        (Role::Client, name.strip_prefix("client")?)
    };
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((role, digits.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_names() {
        for good in ["lab", "t-1", "0abc", "a-very-long-but-fine-name"] {
            assert!(LabName::new(good).is_ok(), "{good}");
        }
        for bad in ["", "-x", "Lab", "a_b", "a/b", "a.b", &"x".repeat(41)] {
            assert!(LabName::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn default_topology_matches_the_seed() {
        let lab = LabName::new("lab").unwrap();
        let hosts = plan_hosts(&lab, 2, 2).unwrap();
        let names: Vec<_> = hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["gluServer1", "gluServer2", "client1", "client2"]);
        let s = lab.subnet();
        assert_eq!(hosts[0].address, s.host(11));
        assert_eq!(hosts[3].address, s.host(102));
        assert_eq!(hosts[2].netns, "brickyard-lab-client1");
        assert_eq!(lab.control_netns(), "brickyard-lab-ctl");
        let biggest = plan_hosts(&lab, MAX_SERVERS, MAX_CLIENTS).unwrap();
        assert!(biggest.iter().all(|h| h.veth.len() <= 15));
        assert_eq!(biggest.last().unwrap().address.octets()[3], 199);
        assert!(plan_hosts(&lab, 0, 0).is_err());
        assert!(plan_hosts(&lab, MAX_SERVERS + 1, 0).is_err());
    }

    #[test]
    fn subnets_stay_in_the_benchmarking_range_and_are_stable() {
        for name in ["lab", "a", "t-123-4", "zzzz"] {
            let s = LabName::new(name).unwrap().subnet();
            let o = s.control().octets();
            assert_eq!(o[0], 198);
            assert!(o[1] == 18 || o[1] == 19, "{s}");
        }
        assert_eq!(LabName::new("lab").unwrap().subnet(), LabName::new("lab").unwrap().subnet());
        assert_ne!(LabName::new("a").unwrap().subnet(), LabName::new("b").unwrap().subnet());
    }

    #[test]
    fn netns_ownership_does_not_leak_across_prefixes() {
        let a = LabName::new("a").unwrap();
        assert!(a.owns_netns("brickyard-a-ctl"));
        assert!(a.owns_netns("brickyard-a-gluServer12"));
        assert!(a.owns_netns("brickyard-a-client1"));
        assert!(!a.owns_netns("brickyard-a-b-ctl"));
        assert!(!a.owns_netns("brickyard-a-b-client1"));
        assert!(!a.owns_netns("brickyard-ab-ctl"));
        assert!(!a.owns_netns("brickyard-a-client01"));
        assert!(!a.owns_netns("other"));
    }
}
