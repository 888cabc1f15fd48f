//! GlusterFS TLS from the pool CA (`[pool] tls`, on by default): what the phases add for it.
//! Every server and client installs its own Brickyard certificate, key and the pool CA for
//! gluster and turns on management TLS (`GlusterTls`, before glusterd starts on a server and
//! before the mounts on a client); every volume gets I/O TLS (`client.ssl`, `server.ssl`,
//! `ssl.certificate-depth` 1) with `auth.ssl-allow` naming the hosts whose certificates may
//! connect to its bricks (the CN of a Brickyard host certificate is the host's name in the
//! spec): the pool's servers (self-heal and management daemons connect too) and the clients
//! that mount it. A started volume without TLS is guarded by `VolumeTls`, which refuses
//! unless `[pool] tls_restart = true`. When the pool has a CRL (`DIR/crl.pem`; `pki init`
//! writes an empty one), the host task carries it, every host installs it for gluster, and
//! TLS volumes get `ssl.crl-path` pointing there, so a brick refuses a revoked certificate.
//! Reads only the pool CRL.

use std::collections::BTreeMap;

use brickyard_proto::agent_config::GLUSTER_CRL_DIR;
use brickyard_proto::v1;
use brickyard_proto::v1::task::Kind;

use crate::pki::revoke;
use crate::spec::{Spec, Volume};

/// Host certificates are signed by the pool CA directly.
const CERTIFICATE_DEPTH: u32 = 1;

/// The volume options TLS sets (the spec may not set them itself).
pub const OPTIONS: [&str; 4] = ["client.ssl", "server.ssl", "ssl.certificate-depth", "auth.ssl-allow"];

/// Where a TLS volume's bricks find the pool CRL, set when the pool has one.
pub const CRL_PATH_OPTION: &str = "ssl.crl-path";

/// Whether the spec may not set `key` itself.
pub fn is_tls_option(key: &str) -> bool {
    OPTIONS.contains(&key) || key == CRL_PATH_OPTION
}

/// The pool CRL (PEM), when the spec's pki directory has one.
fn pool_crl(spec: &Spec) -> Option<String> {
    std::fs::read_to_string(revoke::crl_path(&spec.pki_dir())).ok()
}

/// The host task (servers and clients), or none when the pool runs without TLS.
pub fn host_task(spec: &Spec) -> Option<v1::Task> {
    spec.pool.tls.then(|| tls_task(spec, "gluster tls", false))
}

/// The host task as `pki rotate` and `pki push-crl` run it: only the certificate, key, CA and
/// CRL, on hosts an apply set up for TLS.
pub fn refresh_task(spec: &Spec) -> v1::Task {
    tls_task(spec, "gluster tls refresh", true)
}

fn tls_task(spec: &Spec, id: &str, refresh_only: bool) -> v1::Task {
    v1::Task {
        id: id.into(),
        kind: Some(Kind::GlusterTls(v1::GlusterTls {
            certificate_depth: CERTIFICATE_DEPTH,
            allow_restart: spec.pool.tls_restart && !refresh_only,
            crl_pem: pool_crl(spec).unwrap_or_default(),
            refresh_only,
        })),
    }
}

/// The guard run before `volume`'s EnsureVolume, or none without TLS.
pub fn volume_task(spec: &Spec, volume: &Volume) -> Option<v1::Task> {
    spec.pool.tls.then(|| v1::Task {
        id: format!("volume {} tls", volume.name),
        kind: Some(Kind::VolumeTls(v1::VolumeTls {
            volume: volume.name.clone(),
            allow_restart: spec.pool.tls_restart,
        })),
    })
}

/// The TLS options of `volume` (none without TLS).
pub fn volume_options(spec: &Spec, volume: &Volume) -> BTreeMap<String, String> {
    if !spec.pool.tls {
        return BTreeMap::new();
    }
    let mounting = spec.clients.iter().filter(|c| c.mounts.iter().any(|m| m.volume == volume.name));
    let names: Vec<&str> =
        spec.servers.iter().map(|s| s.name.as_str()).chain(mounting.map(|c| c.name.as_str())).collect();
    let [client_ssl, server_ssl, depth, allow] = OPTIONS;
    let mut options = BTreeMap::from([
        (client_ssl.to_owned(), "on".to_owned()),
        (server_ssl.to_owned(), "on".to_owned()),
        (depth.to_owned(), CERTIFICATE_DEPTH.to_string()),
        (allow.to_owned(), names.join(",")),
    ]);
    if pool_crl(spec).is_some() {
        options.insert(CRL_PATH_OPTION.to_owned(), GLUSTER_CRL_DIR.to_owned());
    }
    options
}
