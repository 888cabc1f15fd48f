//! The firewalld backend: zone `brickyard` holds every source of the policy (the pool's hosts
//! and the coordinators) and one rich rule per grant and port range (`rule family="ipv4"
//! source address="198.18.0.11/32" port port="24007-24008" protocol="tcp" accept`, the form
//! `--list-rich-rules` prints), so each source reaches only its own ports. The zone's sources,
//! rich rules and ports are made to match exactly (services are left for the operator: since
//! firewalld 1.0 traffic from a zone's sources no longer falls through to the default zone,
//! so what else the pool should reach, e.g. ssh, goes into zone brickyard as a service). The
//! default zone loses the granted ports if it has them (earlier versions opened them there to
//! everyone). With firewalld running both the permanent and the runtime configuration are set
//! (a new zone reaches the runtime only through `--reload`: firewalld creates zones in the
//! permanent configuration alone); with firewalld stopped, `firewall-offline-cmd` sets the
//! permanent one.

use std::path::PathBuf;

use brickyard_proto::types::SourceNet;

use super::{Grant, Policy, Step};
use crate::host::runner::{Cmd, CommandError, Output};
use crate::host::Context;
use crate::tasks::shape::TaskError;

const ZONE: &str = "brickyard";
/// firewalld's exit code for an unknown zone (INVALID_ZONE).
const INVALID_ZONE: i32 = 112;

/// firewalld running (`firewall-cmd`) or stopped (`firewall-offline-cmd`).
pub(super) enum Mode {
    Running(PathBuf),
    Offline(PathBuf),
}

/// One configuration to check and change.
struct Scope {
    label: &'static str,
    program: PathBuf,
    permanent_flag: bool,
    runtime: bool,
}

impl Scope {
    fn cmd(&self) -> Cmd {
        let cmd = Cmd::new(&self.program);
        if self.permanent_flag {
            cmd.arg("--permanent")
        } else {
            cmd
        }
    }

    fn zone_cmd(&self) -> Cmd {
        self.cmd().arg(format!("--zone={ZONE}"))
    }
}

/// What `--info-zone` shows of a zone that concerns us.
#[derive(Debug, Default, PartialEq, Eq)]
struct ZoneInfo {
    sources: Vec<String>,
    ports: Vec<String>,
    rich_rules: Vec<String>,
}

/// Parses `firewall-cmd --info-zone=NAME`: `  key: value value` lines, the rich rules on the
/// tab-indented lines after `  rich rules:`.
fn parse_zone_info(text: &str) -> ZoneInfo {
    let mut info = ZoneInfo::default();
    let mut in_rich_rules = false;
    for line in text.lines() {
        if in_rich_rules && line.starts_with('\t') {
            info.rich_rules.push(line.trim().to_owned());
            continue;
        }
        in_rich_rules = false;
        let words = |value: &str| value.split_whitespace().map(str::to_owned).collect();
        let line = line.trim();
        if let Some(value) = line.strip_prefix("sources:") {
            info.sources = words(value);
        } else if let Some(value) = line.strip_prefix("ports:") {
            info.ports = words(value);
        } else if line.starts_with("rich rules:") {
            in_rich_rules = true;
        }
    }
    info
}

/// One rich rule per grant and port range, with the plan line that adds it.
fn rich_rules(policy: &Policy) -> Vec<(String, String)> {
    let mut rules = Vec::new();
    for grant in &policy.grants {
        let family = if grant.source.is_ipv6() { "ipv6" } else { "ipv4" };
        for range in &grant.ports.ranges {
            let rule = format!(
                "rule family=\"{family}\" source address=\"{}\" port port=\"{}\" protocol=\"{}\" accept",
                grant.source,
                range.joined('-'),
                grant.ports.proto
            );
            let one = Grant { ports: super::Ports { proto: grant.ports.proto, ranges: vec![*range] }, ..grant.clone() };
            rules.push((rule, one.to_string()));
        }
    }
    rules
}

/// Why `source` is in the zone: the reasons of its grants.
fn why(policy: &Policy, source: &SourceNet) -> String {
    let mut reasons: Vec<&str> = Vec::new();
    for grant in policy.grants.iter().filter(|g| g.source == *source) {
        if !reasons.contains(&grant.why.as_str()) {
            reasons.push(&grant.why);
        }
    }
    reasons.join("; ")
}

/// `cmd --OPTION=item...` and one plan line per item, or nothing without items.
fn batch(cmd: Cmd, option: &str, items: Vec<(String, String)>) -> Option<Step> {
    if items.is_empty() {
        return None;
    }
    let (values, changes): (Vec<String>, Vec<String>) = items.into_iter().unzip();
    Some(Step { action: super::Action::Run(cmd.args(values.iter().map(|v| format!("--{option}={v}")))), changes })
}

/// The steps that make one configuration's zone (present as `info`) match `policy`.
fn zone_steps(scope: &Scope, info: &ZoneInfo, policy: &Policy) -> Vec<Step> {
    let label = scope.label;
    let wanted_sources = policy.sources();
    let wanted_rules = rich_rules(policy);
    let listed: Vec<(&String, Option<SourceNet>)> = info.sources.iter().map(|s| (s, SourceNet::new(s).ok())).collect();
    let add_sources = wanted_sources
        .iter()
        .filter(|w| !listed.iter().any(|(_, net)| net.as_ref() == Some(*w)))
        .map(|s| (s.to_string(), format!("{label}: admit {s} to zone {ZONE} ({})", why(policy, s))))
        .collect();
    let add_rules = wanted_rules
        .iter()
        .filter(|(rule, _)| !info.rich_rules.contains(rule))
        .map(|(rule, what)| (rule.clone(), format!("{label}: {what} in zone {ZONE}")))
        .collect();
    let remove_rules = info
        .rich_rules
        .iter()
        .filter(|rule| !wanted_rules.iter().any(|(w, _)| w == *rule))
        .map(|rule| (rule.clone(), format!("{label}: remove from zone {ZONE} (not wanted): {rule}")))
        .collect();
    let remove_sources = listed
        .iter()
        .filter(|(_, net)| !net.is_some_and(|n| wanted_sources.contains(&n)))
        .map(|(s, _)| ((*s).clone(), format!("{label}: remove source {s} from zone {ZONE} (not wanted)")))
        .collect();
    let remove_ports = info
        .ports
        .iter()
        .map(|p| {
            let why = "it would admit every source of the zone; the pool's ports are rules per source";
            (p.clone(), format!("{label}: remove port {p} from zone {ZONE} ({why})"))
        })
        .collect();
    [
        batch(scope.zone_cmd(), "add-source", add_sources),
        batch(scope.zone_cmd(), "add-rich-rule", add_rules),
        batch(scope.zone_cmd(), "remove-rich-rule", remove_rules),
        batch(scope.zone_cmd(), "remove-source", remove_sources),
        batch(scope.zone_cmd(), "remove-port", remove_ports),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The granted ports that the default zone opens to everyone, to close there.
async fn default_zone_steps(ctx: &Context, scope: &Scope, policy: &Policy) -> Result<Option<Step>, TaskError> {
    let listed = ctx.runner.run(&scope.cmd().arg("--list-ports")).await?.stdout;
    let granted: Vec<String> = policy
        .closed
        .iter()
        .flat_map(|ports| ports.ranges.iter().map(move |r| format!("{}/{}", r.joined('-'), ports.proto)))
        .collect();
    let open = listed
        .split_whitespace()
        .filter(|p| granted.iter().any(|g| g == p))
        .map(|p| (p.to_owned(), format!("{}: close {p} in the default zone (open to every host there)", scope.label)))
        .collect();
    Ok(batch(scope.cmd(), "remove-port", open))
}

/// The steps that make firewalld's configuration match `policy`: the permanent one first, then
/// the runtime one (firewalld running) or the permanent one alone, offline.
pub(super) async fn plan(ctx: &Context, mode: &Mode, policy: &Policy) -> Result<Vec<Step>, TaskError> {
    let scopes = match mode {
        Mode::Running(program) => vec![
            Scope { label: "firewalld permanent", program: program.clone(), permanent_flag: true, runtime: false },
            Scope { label: "firewalld runtime", program: program.clone(), permanent_flag: false, runtime: true },
        ],
        Mode::Offline(program) => {
            vec![Scope {
                label: "firewall-offline-cmd",
                program: program.clone(),
                permanent_flag: false,
                runtime: false,
            }]
        }
    };
    let mut steps = Vec::new();
    for scope in &scopes {
        let query = scope.cmd().arg(format!("--info-zone={ZONE}"));
        let out = ctx.runner.output(&query).await?;
        let info = match out.code {
            Some(0) => parse_zone_info(&out.stdout),
            Some(INVALID_ZONE) if scope.runtime => {
                steps.push(Step::run(
                    scope.cmd().arg("--reload"),
                    format!(
                        "{}: reload, so that the runtime configuration gets zone {ZONE} (firewalld creates zones \
                         in the permanent configuration only; a reload also drops runtime-only changes)",
                        scope.label
                    ),
                ));
                continue;
            }
            Some(INVALID_ZONE) => {
                steps.push(Step::run(
                    scope.cmd().arg(format!("--new-zone={ZONE}")),
                    format!(
                        "{}: create zone {ZONE} (traffic from its sources is handled by this zone alone: what else \
                         they should reach, e.g. ssh, goes into it as a service, which Brickyard leaves alone)",
                        scope.label
                    ),
                ));
                ZoneInfo::default()
            }
            _ => return Err(failed(&query, out)),
        };
        steps.extend(zone_steps(scope, &info, policy));
        steps.extend(default_zone_steps(ctx, scope, policy).await?);
    }
    Ok(steps)
}

fn failed(cmd: &Cmd, out: Output) -> TaskError {
    TaskError::Command(CommandError::Failed {
        cmd: cmd.display(),
        code: out.code,
        stdout: out.stdout,
        stderr: out.stderr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `firewall-cmd --permanent --info-zone=brickyard` of firewalld 1.3.3 (Debian 12).
    const INFO_ZONE: &str = "brickyard (active)
  target: default
  icmp-block-inversion: no
  interfaces: 
  sources: 198.19.214.101 198.19.214.1/32 2001:db8::5/128
  services: ssh
  ports: 24007-24008/tcp
  protocols: 
  forward: no
  masquerade: no
  forward-ports: 
  source-ports: 
  icmp-blocks: 
  rich rules: 
\trule family=\"ipv4\" source address=\"198.19.214.101/32\" port port=\"24007-24008\" protocol=\"tcp\" accept
\trule family=\"ipv6\" source address=\"2001:db8::5/128\" port port=\"7420\" protocol=\"tcp\" accept
";

    #[test]
    fn parses_info_zone() {
        assert_eq!(
            parse_zone_info(INFO_ZONE),
            ZoneInfo {
                sources: vec!["198.19.214.101".into(), "198.19.214.1/32".into(), "2001:db8::5/128".into()],
                ports: vec!["24007-24008/tcp".into()],
                rich_rules: vec![
                    "rule family=\"ipv4\" source address=\"198.19.214.101/32\" port port=\"24007-24008\" protocol=\"tcp\" accept".into(),
                    "rule family=\"ipv6\" source address=\"2001:db8::5/128\" port port=\"7420\" protocol=\"tcp\" accept".into(),
                ],
            }
        );
        let empty =
            INFO_ZONE.replace("198.19.214.101 198.19.214.1/32 2001:db8::5/128", "").replace("24007-24008/tcp", "");
        let empty = parse_zone_info(empty.split("\trule").next().unwrap());
        assert_eq!(empty, ZoneInfo::default());
    }
}
