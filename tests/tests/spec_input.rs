//! Bad spec input through the built `brickyard plan -f SPEC`: broken TOML, wrong types, huge
//! and negative numbers, unicode and control characters in names and paths, `..` in paths,
//! duplicate and unknown keys. Each must be refused while loading the spec, with its line and
//! key, before any host is contacted: every host of the spec is on 127.0.0.x, the first
//! server's agent port is a listener of this test that counts connections (and must count
//! none), nothing listens on the others. A valid spec against the same addresses
//! shows that the listener does see the coordinator when the spec loads. Touches only a temp
//! dir and loopback.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use brickyard_tests::bins::bin;
use brickyard_tests::pki::TestPki;

/// A valid spec: two servers and a client on loopback addresses, agents on port `PORT`.
const VALID: &str = r#"version = 1
[pool]
name = "seed"
[[server]]
name = "gluServer1"
address = "127.0.0.11"
port = PORT
disk = { device = "/dev/vdb", filesystem = "xfs", mount = "/vdisk" }
[[server]]
name = "gluServer2"
address = "127.0.0.12"
port = PORT
disk = { device = "/dev/vdb", filesystem = "xfs", mount = "/vdisk" }
[[volume]]
name = "gluV1"
type = "replicate"
replica = 2
allow_replica2 = true
brick_dir = "brick1"
[[client]]
name = "client1"
address = "127.0.0.21"
port = PORT
mounts = [{ volume = "gluV1", path = "/dataShare" }]
"#;

/// What `brickyard plan` did.
struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn plan(spec: &Path) -> Outcome {
    let out = Command::new(bin("brickyard")).arg("plan").arg("-f").arg(spec).output().expect("running brickyard plan");
    Outcome {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Counts the connections to `listener`, closing each at once (so a coordinator that does
/// connect fails fast instead of waiting for a TLS handshake).
fn count_connections(listener: TcpListener) -> Arc<AtomicUsize> {
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    count
}

/// A bad input: how to break the valid spec, and what the error must say after
/// `brickyard: error: SPEC: `.
struct Case {
    what: &'static str,
    from: &'static str,
    to: &'static str,
    says: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        what: "broken TOML (unterminated string)",
        from: "name = \"gluServer2\"",
        to: "name = \"gluServer2",
        says: &["line 10, column 19: server[1].name: invalid basic string, expected `\"`"],
    },
    Case {
        what: "broken TOML (table header)",
        from: "[[volume]]",
        to: "[[volume]",
        says: &["line 14, column 10: volume: unclosed array table, expected `]`"],
    },
    Case {
        what: "wrong type",
        from: "replica = 2",
        to: "replica = \"two\"",
        says: &["line 17, column 11: volume[0].replica: invalid type: string \"two\", expected u32"],
    },
    Case {
        what: "wrong type (table for a string)",
        from: "brick_dir = \"brick1\"",
        to: "brick_dir = { path = \"brick1\" }",
        says: &["line 19, column 13: volume[0].brick_dir: invalid type: map, expected a string"],
    },
    Case {
        what: "negative number",
        from: "replica = 2",
        to: "replica = -2",
        says: &["line 17, column 11: volume[0].replica: invalid value: integer `-2`, expected u32"],
    },
    Case {
        what: "number too large for a port",
        from: "address = \"127.0.0.21\"\nport = PORT",
        to: "address = \"127.0.0.21\"\nport = 99999",
        says: &["line 23, column 8: client[0].port: invalid value: integer `99999`, expected u16"],
    },
    Case {
        what: "number beyond 64 bits",
        from: "replica = 2",
        to: "replica = 99999999999999999999",
        says: &["line 17, column 11: volume[0].replica: invalid type: integer `99999999999999999999`", "expected u32"],
    },
    Case {
        what: "huge count that fits u32",
        from: "replica = 2",
        to: "replica = 4294967295",
        says: &[
            "line 17: volume[0].replica: volume \"gluV1\" (one brick per server): 2 bricks do not fit replica 4294967295",
        ],
    },
    Case {
        what: "port 0",
        from: "address = \"127.0.0.12\"\nport = PORT",
        to: "address = \"127.0.0.12\"\nport = 0",
        says: &["line 12: server[1].port: port 0 is not a port an agent can listen on (1-65535)"],
    },
    Case {
        what: "unicode in a host name",
        from: "name = \"gluServer2\"",
        to: "name = \"glüServer2\"",
        says: &["line 10: server[1].name: invalid host name \"glüServer2\": only letters, digits, '-' and '.' are allowed"],
    },
    Case {
        what: "zero-width space in a volume name",
        from: "name = \"gluV1\"",
        to: "name = \"gluV1\\u200b\"",
        says: &["line 15: volume[0].name: invalid volume name \"gluV1\\u{200b}\": only letters, digits, '_' and '-'"],
    },
    Case {
        what: "escape sequence in a host name",
        from: "name = \"client1\"",
        to: "name = \"client\\u001b[31m1\"",
        says: &["line 21: client[0].name: invalid host name \"client\\u{1b}[31m1\": contains whitespace or control"],
    },
    Case {
        what: "raw control character in the file",
        from: "name = \"client1\"",
        to: "name = \"client\u{7}1\"",
        says: &["line 21, column 15: client[0].name: invalid basic string"],
    },
    Case {
        what: "newline in a mount path",
        from: "mount = \"/vdisk\" }\n[[server]]",
        to: "mount = \"/vdisk\\n\" }\n[[server]]",
        says: &["line 8: server[0].disk.mount: invalid disk mount \"/vdisk\\n\": contains whitespace or control"],
    },
    Case {
        what: "'..' in a brick dir",
        from: "brick_dir = \"brick1\"",
        to: "brick_dir = \"brick1/../../etc\"",
        says: &["line 19: volume[0].brick_dir: invalid relative path \"brick1/../../etc\": '.' and '..' components"],
    },
    Case {
        what: "'..' in a disk mount",
        from: "mount = \"/vdisk\" }\n[[server]]",
        to: "mount = \"/vdisk/../etc\" }\n[[server]]",
        says: &["line 8: server[0].disk.mount: invalid disk mount \"/vdisk/../etc\": '.' and '..' components"],
    },
    Case {
        what: "'..' in a device",
        from: "device = \"/dev/vdb\", filesystem = \"xfs\", mount = \"/vdisk\" }\n[[server]]",
        to: "device = \"/dev/../etc/passwd\", filesystem = \"xfs\", mount = \"/vdisk\" }\n[[server]]",
        says: &["line 8: server[0].disk.device: invalid device \"/dev/../etc/passwd\": '.' and '..' components"],
    },
    Case {
        what: "'..' in a client mount path",
        from: "path = \"/dataShare\"",
        to: "path = \"/dataShare/..\"",
        says: &["line 24: client[0].mounts[0].path: invalid client mount path \"/dataShare/..\": '.' and '..'"],
    },
    Case {
        what: "'..' in pki_dir",
        from: "name = \"seed\"",
        to: "name = \"seed\"\npki_dir = \"../../pki\"",
        says: &["line 4: pool.pki_dir: \"../../pki\" must not contain '..'"],
    },
    Case {
        what: "duplicate key",
        from: "name = \"gluServer1\"",
        to: "name = \"gluServer1\"\nname = \"gluServer3\"",
        says: &["line 6, column 1: server[0].name: duplicate key"],
    },
    Case {
        what: "duplicate table",
        from: "[[server]]\nname = \"gluServer1\"",
        to: "[pool]\nname = \"again\"\n[[server]]\nname = \"gluServer1\"",
        says: &["line 4, column 2: pool: duplicate key"],
    },
    Case {
        what: "unknown key",
        from: "allow_replica2 = true",
        to: "allow_replica2 = true\nalow_replica3 = true",
        says: &["line 19, column 1: volume[0].alow_replica3: unknown field `alow_replica3`, expected one of `name`"],
    },
];

#[test]
fn bad_specs_are_refused_at_their_line_and_key_before_any_host_is_contacted() {
    // Specs are written beside the pool PKI, which they use by default (`pki`).
    let pki = TestPki::new().unwrap();
    let dir = pki.dir.parent().unwrap();
    let listener = TcpListener::bind("127.0.0.11:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = count_connections(listener);
    let with_port = |text: &str| text.replace("PORT", &port.to_string());
    let valid = with_port(VALID);
    let mut failures = Vec::new();
    let mut report = Vec::new();
    for (i, case) in CASES.iter().enumerate() {
        assert!(VALID.contains(case.from), "case {:?}: the valid spec has no {:?}", case.what, case.from);
        let path = dir.join(format!("bad-{i}.toml"));
        std::fs::write(&path, with_port(&VALID.replacen(case.from, case.to, 1))).unwrap();
        let started = Instant::now();
        let out = plan(&path);
        let took = started.elapsed();
        let prefix = format!("brickyard: error: {}: ", path.display());
        let first_line = out.stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or_default().to_owned();
        report.push(format!("{:<40} exit {:?} {took:>6.0?}  {}", case.what, out.code, out.stderr.trim_end()));
        let ok = out.code == Some(1)
            && out.stdout.is_empty()
            && out.stderr.starts_with(&prefix)
            && case.says.iter().all(|s| out.stderr.contains(s))
            && !out.stderr.contains("connect")
            && !out.stderr.contains('\u{1b}')
            && !out.stderr.contains('\u{7}')
            && took < Duration::from_secs(5);
        if !ok {
            failures.push(format!(
                "{}: exit {:?}, first line {first_line:?}\nstdout: {}\nstderr: {}\nexpected: {:?}",
                case.what, out.code, out.stdout, out.stderr, case.says
            ));
        }
    }
    eprintln!("{}", report.join("\n"));
    assert_eq!(connections.load(Ordering::SeqCst), 0, "a bad spec made the coordinator contact a host");
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), CASES.len(), failures.join("\n\n"));

    // The control: the valid spec loads and plan does contact the hosts (the listener sees
    // the coordinator; the ports where nothing listens are reported unreachable).
    let path = dir.join("valid.toml");
    std::fs::write(&path, &valid).unwrap();
    let out = plan(&path);
    assert_eq!(out.code, Some(1), "stdout: {}\nstderr: {}", out.stdout, out.stderr);
    let seen = connections.load(Ordering::SeqCst);
    assert!(seen >= 1, "the valid spec's plan never reached 127.0.0.11:{port}");
    let all = format!("{}{}", out.stdout, out.stderr);
    eprintln!("valid spec: exit {:?}\n{all}", out.code);
    assert!(all.contains("gluServer2") && all.to_lowercase().contains("refused"), "{all}");
}
