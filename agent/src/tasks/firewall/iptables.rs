//! The iptables backend, once per address family (iptables for IPv4, ip6tables for IPv6): the
//! rules live in chain `BRICKYARD` of the filter table, reached by one `-j BRICKYARD` rule at
//! the top of INPUT (so a trailing REJECT, as in RHEL's stock rules, cannot shadow it). The chain
//! passes loopback on, accepts each grant of the family, then drops new connections (TCP SYN) to
//! the granted ports from everyone else (so replies to the host's own outgoing connections,
//! whose local ports may fall in the brick range, still arrive) and everything else sent to the
//! UDP ones. Its content is made to match exactly: rules already in order stay, unwanted ones
//! are deleted, missing ones inserted in place, so a re-run runs nothing. INPUT rules marked
//! `--comment brickyard` (how earlier versions opened the ports to everyone) are deleted.
//! Rules are saved where the distribution's loader reads them, if it is installed:
//! /etc/sysconfig/iptables and ip6tables (RHEL iptables-services, when the file exists) or
//! /etc/iptables/rules.v4 and rules.v6 (Debian iptables-persistent, when /etc/iptables exists).

use std::path::{Path, PathBuf};

use super::{Action, Grant, Policy, Programs, Proto, Step};
use crate::host::etcfile;
use crate::host::runner::Cmd;
use crate::host::Context;
use crate::tasks::shape::TaskError;

const CHAIN: &str = "BRICKYARD";
const JUMP: &str = "-A INPUT -j BRICKYARD";
/// How earlier versions marked the rules they put into INPUT.
const OLD_COMMENT: &str = "brickyard";

/// One address family's tools and rule file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Family {
    /// `iptables` or `ip6tables`: the program, and how plan lines name the family.
    label: &'static str,
    program: PathBuf,
    save: PathBuf,
    ipv6: bool,
    persist: Option<PathBuf>,
}

impl Family {
    fn cmd<I: IntoIterator<Item = S>, S: Into<std::ffi::OsString>>(&self, args: I) -> Cmd {
        Cmd::new(&self.program).arg("-w").args(args)
    }
}

/// The families to configure: IPv4 always, IPv6 when ip6tables is installed (required when
/// the policy has an IPv6 source). `path` maps an absolute path onto the host's root.
pub(super) fn families(
    programs: &Programs,
    policy: &Policy,
    path: impl Fn(&str) -> PathBuf,
    warnings: &mut Vec<String>,
) -> Result<Vec<Family>, TaskError> {
    let persistence = |sysconfig: &str, debian: &str| {
        let (sysconfig, debian) = (path(sysconfig), path(debian));
        if sysconfig.is_file() {
            Some(sysconfig)
        } else if debian.parent().is_some_and(Path::is_dir) {
            Some(debian)
        } else {
            None
        }
    };
    let found = |label: &'static str, ipv6: bool, persist: Option<PathBuf>| {
        let program = programs.get(label)?;
        let save = programs.get(&format!("{label}-save"))?;
        Some(Family { label, program: program.to_owned(), save: save.to_owned(), ipv6, persist })
    };
    let v4 = found("iptables", false, persistence("/etc/sysconfig/iptables", "/etc/iptables/rules.v4"));
    let v4 = v4.ok_or_else(|| {
        TaskError::Unsupported(
            "no firewall to configure: firewalld is neither running nor enabled, and iptables (with \
             iptables-save) is not installed"
                .into(),
        )
    })?;
    let mut families = vec![v4];
    match found("ip6tables", true, persistence("/etc/sysconfig/ip6tables", "/etc/iptables/rules.v6")) {
        Some(v6) => families.push(v6),
        None => {
            let v6: Vec<String> =
                policy.grants.iter().filter(|g| g.source.is_ipv6()).map(|g| g.source.to_string()).collect();
            if !v6.is_empty() {
                return Err(TaskError::Unsupported(format!(
                    "the pool has IPv6 sources ({}) but ip6tables (with ip6tables-save) is not installed",
                    v6.join(", ")
                )));
            }
            warnings.push(
                "ip6tables is not installed: IPv6 connections to gluster's ports and the agent port are not filtered"
                    .into(),
            );
        }
    }
    for family in &families {
        if family.persist.is_none() {
            let (sysconfig, debian) = if family.ipv6 {
                ("/etc/sysconfig/ip6tables", "/etc/iptables/rules.v6")
            } else {
                ("/etc/sysconfig/iptables", "/etc/iptables/rules.v4")
            };
            warnings.push(format!(
                "{} rules are runtime only: neither {sysconfig} (iptables-services) nor the directory of {debian} \
                 (iptables-persistent) is there, so nothing reloads them at boot",
                family.label
            ));
        }
    }
    Ok(families)
}

/// A rule of chain BRICKYARD: its body after `-A BRICKYARD`, exactly as `iptables -S` prints
/// it, and what it does, for plans.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    spec: Vec<String>,
    what: String,
}

impl Rule {
    fn new(spec: &[&str], what: String) -> Self {
        Self { spec: spec.iter().map(|s| (*s).to_owned()).collect(), what }
    }

    fn line(&self) -> String {
        format!("-A {CHAIN} {}", self.spec.join(" "))
    }
}

/// `24007:24008,49152:60999` for `-m multiport --dports`.
fn dports(ranges: &[super::PortRange]) -> String {
    ranges.iter().map(|r| r.joined(':')).collect::<Vec<_>>().join(",")
}

/// Chain BRICKYARD as it should be for one family, in order.
fn wanted_rules(policy: &Policy, ipv6: bool) -> Vec<Rule> {
    let mut rules = vec![Rule::new(&["-i", "lo", "-j", "RETURN"], "pass the host's own loopback traffic on".into())];
    rules.extend(policy.grants.iter().filter(|g| g.source.is_ipv6() == ipv6).map(|g: &Grant| {
        let (source, proto, ports) = (g.source.to_string(), g.ports.proto.to_string(), dports(&g.ports.ranges));
        Rule::new(&["-s", &source, "-p", &proto, "-m", "multiport", "--dports", &ports, "-j", "ACCEPT"], g.to_string())
    }));
    for closed in &policy.closed {
        let (proto, ports) = (closed.proto.to_string(), dports(&closed.ranges));
        rules.push(match closed.proto {
            Proto::Tcp => Rule::new(
                &["-p", &proto, "-m", "multiport", "--dports", &ports]
                    .into_iter()
                    .chain(["-m", "tcp", "--tcp-flags", "FIN,SYN,RST,ACK", "SYN", "-j", "DROP"])
                    .collect::<Vec<_>>(),
                format!("drop new connections to {closed} from everyone else"),
            ),
            Proto::Udp => Rule::new(
                &["-p", &proto, "-m", "multiport", "--dports", &ports, "-j", "DROP"],
                format!("drop {closed} from everyone else"),
            ),
        });
    }
    rules
}

/// What an `iptables -S` (or iptables-save) listing holds that concerns us; lines with quotes
/// dropped (older iptables print every comment quoted).
#[derive(Debug, Default, PartialEq, Eq)]
struct Listing {
    has_chain: bool,
    /// `-A BRICKYARD ...` lines, in order.
    chain: Vec<String>,
    /// How many `-A INPUT -j BRICKYARD` rules there are.
    jumps: usize,
    /// INPUT rules marked `--comment brickyard` by earlier versions.
    old: Vec<String>,
}

fn parse_listing(text: &str) -> Listing {
    let mut listing = Listing::default();
    for line in text.lines().map(|l| l.trim_end().replace('"', "")) {
        if line == format!("-N {CHAIN}") || line.starts_with(&format!(":{CHAIN} ")) {
            listing.has_chain = true;
        } else if line.starts_with(&format!("-A {CHAIN} ")) {
            listing.chain.push(line);
        } else if line == JUMP {
            listing.jumps += 1;
        } else if line.starts_with("-A INPUT ")
            && line.split_whitespace().collect::<Vec<_>>().windows(2).any(|w| w == ["--comment", OLD_COMMENT])
        {
            listing.old.push(line);
        }
    }
    listing
}

/// How to turn chain `current` into `wanted`, keeping the rules already in order: the 1-based
/// numbers of the rules to delete (highest first, so each number stays valid), then where to
/// insert each missing rule (`(position, index into wanted)`, positions ascending).
fn chain_edits(current: &[String], wanted: &[String]) -> (Vec<usize>, Vec<(usize, usize)>) {
    let (mut kept, mut deletes, mut next) = (Vec::new(), Vec::new(), 0);
    for (i, rule) in current.iter().enumerate() {
        match wanted[next..].iter().position(|w| w == rule) {
            Some(offset) => {
                kept.push(next + offset);
                next += offset + 1;
            }
            None => deletes.push(i + 1),
        }
    }
    deletes.reverse();
    let inserts = (0..wanted.len()).filter(|i| !kept.contains(i)).map(|i| (i + 1, i)).collect();
    (deletes, inserts)
}

/// The steps that make one family's firewall (and its saved rules) match `policy`.
pub(super) async fn plan(ctx: &Context, family: &Family, policy: &Policy) -> Result<Vec<Step>, TaskError> {
    let label = family.label;
    let current = parse_listing(&ctx.runner.run(&family.cmd(["-S"])).await?.stdout);
    let wanted = wanted_rules(policy, family.ipv6);
    let wanted_lines: Vec<String> = wanted.iter().map(Rule::line).collect();
    let mut steps = Vec::new();
    if !current.has_chain {
        steps.push(Step::run(family.cmd(["-N", CHAIN]), format!("{label}: create chain {CHAIN}")));
    }
    let (deletes, inserts) = chain_edits(&current.chain, &wanted_lines);
    for number in deletes {
        steps.push(Step::run(
            family.cmd(["-D".to_owned(), CHAIN.to_owned(), number.to_string()]),
            format!("{label}: remove from chain {CHAIN} (not wanted): {}", current.chain[number - 1]),
        ));
    }
    for (position, i) in inserts {
        let rule = &wanted[i];
        steps.push(Step::run(
            family.cmd(["-I".to_owned(), CHAIN.to_owned(), position.to_string()]).args(&rule.spec),
            format!("{label}: {}", rule.what),
        ));
    }
    match current.jumps {
        0 => steps.push(Step::run(
            family.cmd(["-I", "INPUT", "1", "-j", CHAIN]),
            format!("{label}: send INPUT through chain {CHAIN} first (no later REJECT can shadow it)"),
        )),
        1 => {}
        n => steps.extend((1..n).map(|_| {
            Step::run(family.cmd(["-D", "INPUT", "-j", CHAIN]), format!("{label}: remove a duplicate {JUMP}"))
        })),
    }
    for old in &current.old {
        let spec: Vec<&str> = old.split_whitespace().skip(2).collect();
        steps.push(Step::run(
            family.cmd(["-D", "INPUT"]).args(spec),
            format!("{label}: remove the rule an earlier Brickyard put into INPUT: {old}"),
        ));
    }
    if let Some(path) = &family.persist {
        let saved = etcfile::read_or_empty(path).map_err(TaskError::io(format!("reading {}", path.display())))?;
        let saved = parse_listing(&saved);
        let mut saved: Vec<String> =
            saved.chain.into_iter().chain(vec![JUMP.to_owned(); saved.jumps]).chain(saved.old).collect();
        let mut expected: Vec<String> = wanted_lines.into_iter().chain([JUMP.to_owned()]).collect();
        saved.sort();
        expected.sort();
        if saved != expected {
            steps.push(Step {
                action: Action::Save { save: Cmd::new(&family.save), path: path.clone() },
                changes: vec![format!("{label}: save the rules to {} ({label}-save)", path.display())],
            });
        }
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_edits_keep_what_is_in_order() {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        // In place: nothing to do.
        assert_eq!(chain_edits(&s(&["lo", "a", "drop"]), &s(&["lo", "a", "drop"])), (vec![], vec![]));
        // Empty chain: every rule inserted in order.
        assert_eq!(chain_edits(&[], &s(&["lo", "a"])), (vec![], vec![(1, 0), (2, 1)]));
        // A host replaced by another: b deleted (rule 3), c inserted where b was.
        assert_eq!(chain_edits(&s(&["lo", "a", "b", "drop"]), &s(&["lo", "a", "c", "drop"])), (vec![3], vec![(3, 2)]));
        // Duplicates and strangers go, highest number first.
        assert_eq!(chain_edits(&s(&["x", "lo", "lo", "drop", "y"]), &s(&["lo", "drop"])), (vec![5, 3, 1], vec![]));
        // Out of order: what cannot be kept in order is deleted and re-inserted.
        assert_eq!(chain_edits(&s(&["drop", "lo", "a"]), &s(&["lo", "a", "drop"])), (vec![3, 2], vec![(1, 0), (2, 1)]));
    }

    #[test]
    fn listing_finds_chain_jump_and_old_rules() {
        let listing = parse_listing(
            "-P INPUT ACCEPT\n-N BRICKYARD\n-A INPUT -j BRICKYARD\n\
             -A INPUT -p tcp -m tcp --dport 24007:24008 -m comment --comment \"brickyard\" -j ACCEPT\n\
             -A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n-A BRICKYARD -i lo -j RETURN\n",
        );
        assert_eq!(
            listing,
            Listing {
                has_chain: true,
                chain: vec!["-A BRICKYARD -i lo -j RETURN".into()],
                jumps: 1,
                old: vec!["-A INPUT -p tcp -m tcp --dport 24007:24008 -m comment --comment brickyard -j ACCEPT".into()],
            }
        );
        let saved = parse_listing("*filter\n:INPUT ACCEPT [0:0]\n:BRICKYARD - [0:0]\nCOMMIT\n");
        assert!(saved.has_chain && saved.chain.is_empty() && saved.jumps == 0);
    }
}
