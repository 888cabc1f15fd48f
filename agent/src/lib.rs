//! brickyard-agent: the root daemon on every server and client instance. It serves the
//! `brickyard.v1.Agent` gRPC service over mutual TLS only and carries out typed tasks on its
//! host: it partitions, formats and mounts disks, edits /etc/fstab and /etc/hosts, installs
//! packages, runs glusterd, opens firewall ports and drives the local gluster CLI.

pub mod blockdev;
pub mod config;
pub mod conversions;
pub mod etcfile;
pub mod facts;
pub mod gluster;
pub mod mountinfo;
pub mod runner;
pub mod server;
pub mod tasks;
pub mod tls;
pub mod verify_file;
