//! The lab network, built with `ip` entirely inside lab namespaces: a control namespace
//! holding bridge `br0` with the control address (.1/24), and per host a namespace whose `eth0`
//! is one end of a veth pair whose other end sits on the bridge. Loopback is up everywhere; no
//! default route exists anywhere; the root namespace gets no interface and no route.

use super::cmd::run;
use super::naming::{HostPlan, LabName, Subnet, BRIDGE, HOST_IF};
use super::ns::{netns_path, NETNS_DIR};
use super::LabError;

fn ip(args: &[&str]) -> Result<(), LabError> {
    run("ip", args).map(drop)
}

/// Creates the network namespace `netns` with loopback up.
pub fn add_netns(netns: &str) -> Result<(), LabError> {
    ip(&["netns", "add", netns])?;
    ip(&["-n", netns, "link", "set", "lo", "up"])
}

/// Creates the bridge and the control address in the (existing) control namespace.
pub fn setup_control(lab: &LabName, subnet: Subnet) -> Result<(), LabError> {
    let ctl = lab.control_netns();
    let addr = format!("{}/24", subnet.control());
    ip(&["-n", &ctl, "link", "add", BRIDGE, "type", "bridge"])?;
    ip(&["-n", &ctl, "addr", "add", &addr, "dev", BRIDGE])?;
    ip(&["-n", &ctl, "link", "set", BRIDGE, "up"])
}

/// Wires host `host` (its namespace exists) to the bridge and gives it its address.
pub fn connect_host(lab: &LabName, host: &HostPlan) -> Result<(), LabError> {
    let ctl = lab.control_netns();
    let addr = format!("{}/24", host.address);
    ip(&["-n", &ctl, "link", "add", &host.veth, "type", "veth", "peer", "name", HOST_IF, "netns", &host.netns])?;
    ip(&["-n", &ctl, "link", "set", &host.veth, "master", BRIDGE, "up"])?;
    ip(&["-n", &host.netns, "addr", "add", &addr, "dev", HOST_IF])?;
    ip(&["-n", &host.netns, "link", "set", HOST_IF, "up"])
}

/// Removes network namespace `netns` (its veth ends and bridge go with it). Absent is fine.
pub fn delete_netns(netns: &str) -> Result<(), LabError> {
    if !netns_path(netns).exists() {
        return Ok(());
    }
    ip(&["netns", "delete", netns])
}

/// The lab's namespaces that exist now (found by name in /run/netns).
pub fn existing_netns(lab: &LabName) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else { return Vec::new() };
    let mut found: Vec<String> =
        entries.flatten().filter_map(|e| e.file_name().into_string().ok()).filter(|n| lab.owns_netns(n)).collect();
    found.sort();
    found
}
