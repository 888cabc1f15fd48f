//! brickyard-agent: the root daemon on every server and client instance. It serves the
//! `brickyard.v1.Agent` gRPC service over mutual TLS only and carries out typed tasks on its
//! host: it partitions, formats and mounts disks, edits /etc/fstab and /etc/hosts, installs
//! packages, runs glusterd, opens firewall ports and drives the local gluster CLI.
//!
//! Layers, bottom up; each imports only those below it: [`host`] (runner, /etc files,
//! mountinfo, block devices, pid files, polling) → [`gluster`] (CLI + pure XML parsers) and
//! [`facts`] → [`tasks`] (one module per task kind, one [`tasks::Task`] shape) → [`rpc`]
//! (server, TLS, config, proto conversions).

pub mod facts;
pub mod gluster;
pub mod host;
pub mod rpc;
pub mod tasks;
