//! Cluster specs for the coordinator's unit tests: the seed as text, a builder for the small
//! pools a test needs (servers, volumes, clients and the keys each test sets), and the loader
//! they all go through, so each spec shape is written once here and not again in every test.

use std::fmt::Write;
use std::path::Path;

use crate::spec::{Spec, SpecError};

/// The seed's pool (design.md), with replica 2 allowed: two servers, one volume, one client.
pub const SEED: &str = r#"version = 1
[pool]
name = "seed"
[[server]]
name = "gluServer1"
address = "192.0.2.11"
disk = { device = "/dev/vdb", filesystem = "ext4", mount = "/vdisk" }
[[server]]
name = "gluServer2"
address = "192.0.2.12"
disk = { device = "/dev/vdb", filesystem = "ext4", mount = "/vdisk" }
[[volume]]
name = "gluV1"
type = "replicate"
replica = 2
allow_replica2 = true
brick_dir = "brick1"
options = { "performance.cache-size" = "512MB" }
[[client]]
name = "client1"
address = "192.0.2.21"
mounts = [{ volume = "gluV1", path = "/dataShare" }]
"#;

/// Loads spec text as `brickyard` does, from a file named `cluster.toml`.
pub fn parse(text: &str) -> Result<Spec, SpecError> {
    crate::validate::parse(text, Path::new("cluster.toml"))
}

/// Spec text built table by table: each call appends to the text, a key to the table last begun.
pub struct SpecText(String);

impl SpecText {
    /// `version = 1` and a `[pool]` named `name`.
    pub fn pool(name: &str) -> Self {
        SpecText(format!("version = 1\n[pool]\nname = \"{name}\"\n"))
    }

    /// A `[[server]]` without a disk.
    pub fn server(self, name: &str, address: &str) -> Self {
        self.table("server").string("name", name).string("address", address)
    }

    /// Server `sN` at 10.0.0.N, its disk /dev/loop(N-1) mounted on /vdisk.
    pub fn numbered_server(self, n: u8) -> Self {
        let disk = format!("{{ device = \"/dev/loop{}\", mount = \"/vdisk\" }}", n - 1);
        self.server(&format!("s{n}"), &format!("10.0.0.{n}")).set("disk", &disk)
    }

    /// A `[[volume]]` of `kind` with its bricks in `brick_dir`.
    pub fn volume(self, name: &str, kind: &str, brick_dir: &str) -> Self {
        self.table("volume").string("name", name).string("type", kind).string("brick_dir", brick_dir)
    }

    /// The volume's `replica` count, with the opt-in replica 2 needs.
    pub fn replica(self, count: u8) -> Self {
        let text = self.set("replica", &count.to_string());
        if count == 2 {
            text.set("allow_replica2", "true")
        } else {
            text
        }
    }

    /// A `[[client]]` without mounts.
    pub fn client(self, name: &str, address: &str) -> Self {
        self.table("client").string("name", name).string("address", address)
    }

    /// The client's one mount: `volume` on `path`.
    pub fn mount(self, volume: &str, path: &str) -> Self {
        self.set("mounts", &format!("[{{ volume = \"{volume}\", path = \"{path}\" }}]"))
    }

    /// `key = "value"`.
    pub fn string(self, key: &str, value: &str) -> Self {
        self.set(key, &format!("\"{value}\""))
    }

    /// `key = value`, the value written as TOML.
    pub fn set(mut self, key: &str, value: &str) -> Self {
        let _ = writeln!(self.0, "{key} = {value}");
        self
    }

    /// The text so far.
    pub fn text(&self) -> &str {
        &self.0
    }

    /// The text loaded, panicking where it is not a valid spec.
    pub fn spec(&self) -> Spec {
        parse(&self.0).unwrap()
    }

    fn table(mut self, name: &str) -> Self {
        let _ = writeln!(self.0, "[[{name}]]");
        self
    }
}
