//! The `brickyard` subcommands: one enum variant each, dispatched to its own function or
//! module. Commands that talk to agents build a tokio runtime themselves (see `runtime`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use brickyard::commands;
use brickyard::identity::{GlusterRestart, Operation, Signing};
use brickyard::spec::Spec;
use brickyard::validate;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "brickyard", version, about = "Turns cloud instances into a GlusterFS pool and mounts it on clients")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Pool PKI: the CA, the coordinator certificate and one certificate per agent.
    #[command(subcommand)]
    Pki(PkiCommand),
    /// Asks every host of the spec for its facts (OS, disks, gluster, FUSE, firewall).
    Facts {
        /// Cluster spec (TOML).
        #[arg(short = 'f', long = "file", value_name = "SPEC")]
        spec: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Shows per phase and host what `apply` would change and why (checked by the agents).
    Plan {
        #[command(flatten)]
        spec: SpecArgs,
        /// Exit 2 when there are changes to make (0: nothing to do, 1: errors).
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Converges the pool: servers, pool, volumes, clients; hosts in parallel within a phase.
    Apply {
        #[command(flatten)]
        spec: SpecArgs,
    },
    /// Peers, volumes, bricks, heals and client mounts. Exit 0 healthy, 1 degraded, 2 hosts
    /// unreachable.
    Status {
        #[command(flatten)]
        spec: SpecArgs,
    },
    /// The seed's file tests on every client mount and brick; exit 1 when a check fails.
    Verify {
        #[command(flatten)]
        spec: SpecArgs,
    },
    /// Enrols hosts that serve their provisional certificate (booted from `cloud-init`
    /// user-data): checks each one's join token, bound to the TLS channel, signs its CSR and
    /// installs the certificate. Hosts already enrolled are left alone.
    Enroll {
        #[command(flatten)]
        hosts: HostsArgs,
        #[command(flatten)]
        signing: SigningArgs,
    },
    /// Writes a spec for a pool built by hand, read through its agents (changes nothing on any
    /// host); refuses what a spec cannot say, and writes nothing unless `plan` on the spec has
    /// nothing to do.
    Adopt {
        /// A server of the pool: its gluster name and the address of its agent; repeatable, in
        /// the order the spec is to list them.
        #[arg(long = "server", value_name = "NAME=ADDR", value_parser = parse_host, required = true)]
        servers: Vec<(String, String)>,
        /// A client that mounts the pool's volumes; repeatable.
        #[arg(long = "client", value_name = "NAME=ADDR", value_parser = parse_host)]
        clients: Vec<(String, String)>,
        /// The spec to write (refused when it exists).
        #[arg(short = 'o', long = "output", value_name = "SPEC")]
        output: PathBuf,
        /// The pool's name in the spec.
        #[arg(long = "name", default_value = "adopted")]
        pool: String,
        /// The pool PKI directory (default: `pki` beside the spec).
        #[arg(long = "pki-dir", value_name = "DIR")]
        pki_dir: Option<PathBuf>,
    },
    /// Stops and deletes a volume that is gone from the spec, after showing what it will do and
    /// a typed confirmation (or --yes). Brick directories keep their files.
    Destroy {
        /// Cluster spec (TOML).
        #[arg(short = 'f', long = "file", value_name = "SPEC")]
        spec: PathBuf,
        /// The volume to destroy.
        #[arg(long, value_name = "NAME")]
        volume: String,
        /// Do not ask: destroy without typing the volume name back.
        #[arg(long)]
        yes: bool,
    },
    /// Prints #cloud-config user-data that installs, configures and starts one host's agent:
    /// the pool CA and a new single-use join token, no private key (enrol the host with
    /// `brickyard enroll` once it runs).
    CloudInit {
        /// Cluster spec (TOML).
        #[arg(short = 'f', long = "file", value_name = "SPEC")]
        spec: PathBuf,
        /// The server or client of the spec to bootstrap.
        #[arg(long, value_name = "NAME")]
        host: String,
        /// Install the agent RPM from this https URL instead of a repository the image has.
        #[arg(long, value_name = "URL")]
        package_url: Option<String>,
        /// How long the join token stays valid (enrol before then): 90s, 30m, 1h, 2d.
        #[arg(long, default_value = "1h", value_parser = parse_ttl)]
        token_ttl: std::time::Duration,
    },
}

/// The spec and output format of the coordinator commands.
#[derive(clap::Args)]
struct SpecArgs {
    /// Cluster spec (TOML).
    #[arg(short = 'f', long = "file", value_name = "SPEC")]
    file: PathBuf,
    /// Print JSON (`apply`: one event per line).
    #[arg(long)]
    json: bool,
}

/// The hosts of a spec an identity operation acts on.
#[derive(clap::Args)]
struct HostsArgs {
    /// Cluster spec (TOML).
    #[arg(short = 'f', long = "file", value_name = "SPEC")]
    spec: PathBuf,
    /// Only this host (default: every host of the spec).
    #[arg(long, value_name = "NAME")]
    host: Option<String>,
}

/// How host certificates are signed.
#[derive(clap::Args)]
struct SigningArgs {
    #[command(flatten)]
    days: HostDays,
    /// The CA key, when kept outside the spec's pki directory (default DIR/ca.key).
    #[arg(long, value_name = "PATH")]
    ca_key: Option<PathBuf>,
}

/// Whether gluster's processes are restarted after new certificates or a new CRL.
#[derive(clap::Args)]
struct NoRestart {
    /// Only refresh gluster's TLS files: new connections use them, established ones keep
    /// their sessions (and a revoked host its connections) until they reconnect.
    #[arg(long)]
    no_restart: bool,
}

impl NoRestart {
    fn restart(&self) -> GlusterRestart {
        if self.no_restart {
            GlusterRestart::None
        } else {
            GlusterRestart::Rolling
        }
    }
}

/// The lifetime of a host certificate.
#[derive(clap::Args)]
struct HostDays {
    /// Lifetime in days (host certificates are short-lived: rotate before expiry).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u16).range(1..=3650))]
    days: u16,
}

impl HostDays {
    fn validity(&self) -> time::Duration {
        time::Duration::days(self.days.into())
    }
}

/// The pool PKI directory and where its CA key is.
#[derive(clap::Args)]
struct PkiDir {
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// The CA key, when kept outside DIR (default DIR/ca.key).
    #[arg(long, value_name = "PATH")]
    ca_key: Option<PathBuf>,
}

#[derive(Subcommand)]
enum PkiCommand {
    /// Creates the pool CA and the coordinator certificate (refuses to overwrite a CA).
    Init {
        #[command(flatten)]
        pki: PkiDir,
    },
    /// Issues (or re-issues) an agent certificate: SANs = its name and addresses.
    Issue {
        #[command(flatten)]
        pki: PkiDir,
        #[command(flatten)]
        days: HostDays,
        /// The host's name as the spec and gluster know it.
        #[arg(long)]
        name: String,
        /// Addresses (IP or DNS) the coordinator reaches the agent at; repeatable.
        #[arg(long = "address", value_name = "ADDR")]
        addresses: Vec<String>,
    },
    /// Makes a single-use join token for a host (printed; only its hash is kept in DIR/tokens).
    Token {
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        #[arg(long, value_name = "NAME")]
        host: String,
        /// Lifetime in seconds, or with a unit: 90s, 30m, 1h, 2d.
        #[arg(long, default_value = "1h", value_parser = parse_ttl)]
        ttl: std::time::Duration,
    },
    /// Revokes NAME's current certificate (a host, or brickyard-coordinator) and rewrites
    /// DIR/crl.pem; the coordinator refuses a revoked agent at once, agents refuse a revoked
    /// coordinator once they have the CRL (`pki push-crl`).
    Revoke {
        #[command(flatten)]
        pki: PkiDir,
        name: String,
    },
    /// Re-issues host certificates through the agents: each makes a new key and CSR, the
    /// coordinator signs it, the agent serves the new certificate from its next handshake
    /// (no agent restart). On a TLS pool it then re-signs and installs the CRL, refreshes
    /// gluster's TLS files on every host and restarts gluster one server at a time, waiting
    /// until the pool is healthy before the next (mounts are not remounted).
    Rotate {
        #[command(flatten)]
        hosts: HostsArgs,
        #[command(flatten)]
        signing: SigningArgs,
        #[command(flatten)]
        restart: NoRestart,
    },
    /// Installs the pool CRL (DIR/crl.pem) on the agents (they honour it from their next
    /// handshake on and load it again at startup) and, on a TLS pool, for gluster, whose
    /// servers are then restarted one at a time so that revoked hosts lose their connections.
    PushCrl {
        #[command(flatten)]
        hosts: HostsArgs,
        #[command(flatten)]
        restart: NoRestart,
    },
}

/// `NAME=ADDR`.
fn parse_host(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, address)) if !name.is_empty() && !address.is_empty() => Ok((name.to_owned(), address.to_owned())),
        _ => Err(format!("{text:?} is not NAME=ADDR")),
    }
}

/// `90`, `90s`, `30m`, `1h`, `2d`.
fn parse_ttl(text: &str) -> Result<std::time::Duration, String> {
    let (number, unit) = text.find(|c: char| !c.is_ascii_digit()).map_or((text, ""), |i| text.split_at(i));
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("unknown unit {unit:?} (use s, m, h or d)")),
    };
    let n: u64 = number.parse().map_err(|_| format!("{text:?} is not a duration like 30m or 1h"))?;
    n.checked_mul(scale).map(std::time::Duration::from_secs).ok_or_else(|| format!("{text:?} is too long"))
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Pki(cmd) => pki(cmd),
        Command::Facts { spec, json } => runtime()?.block_on(facts(spec, json)),
        Command::Plan { spec: a, detailed_exitcode } => {
            coordinate(&a, |spec| async move { commands::plan(&spec, a.json, detailed_exitcode).await })
        }
        Command::Apply { spec: a } => coordinate(&a, |spec| async move { commands::apply(&spec, a.json).await }),
        Command::Status { spec: a } => coordinate(&a, |spec| async move { commands::status(&spec, a.json).await }),
        Command::Verify { spec: a } => coordinate(&a, |spec| async move { commands::verify(&spec, a.json).await }),
        Command::Enroll { hosts, signing } => identity(hosts, Operation::Enroll, Some(signing), GlusterRestart::None),
        Command::Destroy { spec, volume, yes } => {
            let spec = validate::load(&spec)?;
            Ok(ExitCode::from(runtime()?.block_on(commands::destroy(&spec, &volume, yes))))
        }
        Command::CloudInit { spec, host, package_url, token_ttl } => cloud_init(&spec, &host, package_url, token_ttl),
        Command::Adopt { servers, clients, output, pool, pki_dir } => {
            adopt(brickyard::adopt::Request { pool, servers, clients, output, pki_dir })
        }
    }
}

/// Loads (and validates) the spec before any host is contacted, then runs `command`.
fn coordinate<F, Fut>(args: &SpecArgs, command: F) -> anyhow::Result<ExitCode>
where
    F: FnOnce(Spec) -> Fut,
    Fut: std::future::Future<Output = u8>,
{
    let spec = validate::load(&args.file)?;
    Ok(ExitCode::from(runtime()?.block_on(command(spec))))
}

/// The async runtime for commands that talk to agents, built only after argument parsing
/// (commands that talk to no agent never start one).
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")
}

/// Enrol, rotate or push the CRL on the hosts of a spec.
fn identity(
    hosts: HostsArgs,
    operation: Operation,
    signing: Option<SigningArgs>,
    restart: GlusterRestart,
) -> anyhow::Result<ExitCode> {
    let spec = validate::load(&hosts.spec)?;
    let signing = signing.map_or(Signing { ca_key: None, validity: brickyard::pki::DEFAULT_HOST_VALIDITY }, |s| {
        Signing { ca_key: s.ca_key, validity: s.days.validity() }
    });
    let run = brickyard::identity::run(&spec, hosts.host.as_deref(), operation, signing, restart);
    let code = runtime()?.block_on(run)?;
    Ok(ExitCode::from(code))
}

fn pki(cmd: PkiCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PkiCommand::Rotate { hosts, signing, restart } => {
            return identity(hosts, Operation::Rotate, Some(signing), restart.restart())
        }
        PkiCommand::PushCrl { hosts, restart } => return identity(hosts, Operation::PushCrl, None, restart.restart()),
        PkiCommand::Init { pki } => {
            brickyard::pki::init(&pki.dir, pki.ca_key.as_deref())?;
            println!("pool CA and coordinator certificate written to {}", pki.dir.display());
        }
        PkiCommand::Issue { pki, days, name, addresses } => {
            let issued = brickyard::pki::issue(&pki.dir, pki.ca_key.as_deref(), &name, &addresses, days.validity())?;
            println!("{}\n{}", issued.cert.display(), issued.key.display());
        }
        PkiCommand::Token { dir, host, ttl } => println!("{}", brickyard::pki::token::create(&dir, &host, ttl)?),
        PkiCommand::Revoke { pki, name } => {
            let serial = brickyard::pki::revoke::revoke(&pki.dir, pki.ca_key.as_deref(), &name)?;
            println!(
                "revoked {name} (serial {serial}); {} (install it on the agents: `brickyard pki push-crl -f SPEC`)",
                brickyard::pki::revoke::crl_path(&pki.dir).display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn adopt(mut request: brickyard::adopt::Request) -> anyhow::Result<ExitCode> {
    if request.output.exists() {
        anyhow::bail!("{} exists; adopt writes a new spec only", request.output.display());
    }
    if let Some(dir) = &request.pki_dir {
        request.pki_dir = Some(std::path::absolute(dir).with_context(|| format!("pki dir {}", dir.display()))?);
    }
    let plan = runtime()?.block_on(brickyard::adopt::run(&request))?;
    print!("{plan}");
    println!("adopt: wrote {} (plan on it has nothing to do)", request.output.display());
    Ok(ExitCode::SUCCESS)
}

fn cloud_init(
    spec: &Path,
    host: &str,
    package_url: Option<String>,
    token_ttl: std::time::Duration,
) -> anyhow::Result<ExitCode> {
    let spec = validate::load(spec)?;
    let package = brickyard::cloud_init::PackageSource::from_arg(package_url)?;
    print!("{}", brickyard::cloud_init::user_data(&spec, host, package, token_ttl)?);
    Ok(ExitCode::SUCCESS)
}

async fn facts(spec_path: PathBuf, json: bool) -> anyhow::Result<ExitCode> {
    let spec = validate::load(&spec_path)?;
    let answers = brickyard::facts::gather(&spec).await;
    if json {
        println!("{}", serde_json::to_string_pretty(&brickyard::facts::render_json(&answers))?);
    } else {
        print!("{}", brickyard::facts::render_text(&answers));
    }
    let failed = answers.iter().filter(|a| a.result.is_err()).count();
    if failed > 0 {
        eprintln!("brickyard: {failed} of {} hosts did not answer", answers.len());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_forms() {
        assert_eq!(parse_ttl("1h"), Ok(std::time::Duration::from_secs(3600)));
        assert_eq!(parse_ttl("90"), Ok(std::time::Duration::from_secs(90)));
        assert_eq!(parse_ttl("2d"), Ok(std::time::Duration::from_secs(172_800)));
        assert!(parse_ttl("1w").unwrap_err().contains("unknown unit \"w\""));
        assert!(parse_ttl("h").unwrap_err().contains("not a duration"));
    }
}
