//! The spec checks on the seed and variations of it, and property tests of the loader: no
//! input panics it, every error is located, and every accepted spec renders back to TOML that
//! loads as the same spec.

use proptest::prelude::*;

use crate::spec::SpecError;
use crate::test_spec::{parse, SEED};

/// The issues as `line N: key: message` strings.
fn issues(text: &str) -> Vec<String> {
    match parse(text) {
        Err(SpecError::Semantic { issues, .. }) => issues.iter().map(|i| i.to_string()).collect(),
        other => panic!("expected semantic issues, got {other:?}"),
    }
}

#[test]
fn the_seed_is_valid() {
    let spec = parse(SEED).unwrap();
    assert_eq!(spec.hosts().len(), 3);
    assert_eq!(spec.volume_servers(&spec.volumes[0]).len(), 2);
    check_loader(SEED).unwrap();
}

#[test]
fn unknown_key_names_line_and_key() {
    let text = SEED.replace("brick_dir = \"brick1\"", "brick_dir = \"brick1\"\nbrik = 1");
    let err = parse(&text).unwrap_err().to_string();
    assert!(err.contains("line 18") && err.contains("brik"), "{err}");
}

#[test]
fn duplicate_names_and_addresses_name_the_line() {
    let text =
        SEED.replace("name = \"client1\"\naddress = \"192.0.2.21\"", "name = \"gluserver2\"\naddress = \"192.0.2.11\"");
    let found = issues(&text);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].starts_with("line 20: client[0].name:") && found[0].contains("server[1]"), "{found:?}");
    assert!(found[1].starts_with("line 21: client[0].address:") && found[1].contains("server[0]"), "{found:?}");
}

#[test]
fn replica_that_does_not_fit() {
    let text = SEED.replace("replica = 2", "replica = 3");
    assert_eq!(
        issues(&text),
        ["line 15: volume[0].replica: volume \"gluV1\" (one brick per server): 2 bricks do not fit replica 3 (a \
          multiple of 3 bricks is needed)"]
    );
}

#[test]
fn replica2_needs_opt_in() {
    let found = issues(&SEED.replace("allow_replica2 = true\n", ""));
    assert!(found[0].starts_with("line 15: volume[0].replica:") && found[0].contains("allow_replica2"), "{found:?}");
}

#[test]
fn volume_types() {
    let vol = |body: &str| SEED.replace("type = \"replicate\"\nreplica = 2\nallow_replica2 = true", body);
    assert!(issues(&vol("type = \"stripe\""))[0].contains("removed in Gluster 6"));
    assert!(parse(&vol("type = \"distribute\"")).is_ok());
    // Two servers cannot carry replica 3 arbiter 1; replica 2 arbiter 1 is not our syntax.
    assert!(issues(&vol("type = \"arbiter\""))[0].contains("2 bricks do not fit replica 3 arbiter 1"));
    assert!(issues(&vol("type = \"arbiter\"\nreplica = 2"))[0].contains("replica 3 arbiter 1"));
    assert!(issues(&vol("type = \"disperse\"\ndisperse = 2\nredundancy = 1"))[0].contains("less than half"));
    assert!(issues(&vol("type = \"distribute\"\nreplica = 2"))[0].contains("does not apply"));
}

#[test]
fn paths_options_and_mounts() {
    let text = SEED
        .replace("brick_dir = \"brick1\"", "brick_dir = \"/brick1\"")
        .replace("\"512MB\"", "\"512 MB\"")
        .replace("path = \"/dataShare\"", "path = \"dataShare\"")
        .replace("volume = \"gluV1\",", "volume = \"nope\",");
    let found = issues(&text);
    assert_eq!(found.len(), 4, "{found:?}");
    assert!(found[0].starts_with("line 17: volume[0].brick_dir") && found[0].contains("relative"));
    assert!(found[1].starts_with("line 18: volume[0].options.\"performance.cache-size\""), "{found:?}");
    assert!(found[2].contains("client[0].mounts[0].volume") && found[2].contains("nope"));
    assert!(found[3].contains("client[0].mounts[0].path") && found[3].contains("absolute"));
}

#[test]
fn auth_allow_is_widened_only_by_its_own_key() {
    let text = SEED.replace(
        "options = { \"performance.cache-size\" = \"512MB\" }",
        "options = { \"auth.allow\" = \"10.0.0.9\" }\nauth_allow = [\"192.0.2.7\", \"192.0.2.0/24\"]",
    );
    let found = issues(&text);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found[0].contains("volume[0].options.\"auth.allow\"") && found[0].contains("auth_allow = [...]"),
        "{found:?}"
    );
    assert!(
        found[1].contains("volume[0].auth_allow[1]") && found[1].contains("\"192.0.2.0/24\" is not an IP address"),
        "{found:?}"
    );
}

#[test]
fn bricks_on_root_need_force() {
    let text = SEED.replace(
        "disk = { device = \"/dev/vdb\", filesystem = \"ext4\", mount = \"/vdisk\" }\n[[volume]]",
        "[[volume]]",
    );
    let found = issues(&text);
    assert!(
        found[0].starts_with("line 11: volume[0]:") && found[0].contains("server \"gluServer2\" has no disk"),
        "{found:?}"
    );
    assert!(parse(&text.replace("brick_dir = \"brick1\"", "brick_dir = \"brick1\"\nforce = true")).is_ok());
}

/// The error of a spec that must not load, as printed.
fn error(text: &str) -> String {
    parse(text).expect_err("the spec loaded").to_string()
}

#[test]
fn document_errors_name_line_column_and_key() {
    let err = error(&SEED.replace("address = \"192.0.2.12\"", "address = \"192.0.2.12\"\nport = \"7420\""));
    assert!(err.contains("line 11, column 8: server[1].port: invalid type: string \"7420\", expected u16"), "{err}");
    let err = error(&SEED.replace("replica = 2", "replica = -2"));
    assert!(err.contains("line 15, column 11: volume[0].replica: invalid value: integer `-2`, expected u32"), "{err}");
    let err = error(&SEED.replace("name = \"gluV1\"", "name = \"gluV1\"\nname = \"gluV2\""));
    assert!(err.contains("line 14, column 1: volume[0].name: duplicate key"), "{err}");
    let err = error(&SEED.replace("version = 1", "version = 2"));
    assert!(err.ends_with("cluster.toml: line 1: version: version 2 is not supported (expected 1)"), "{err}");
}

#[test]
fn labels_follow_the_filesystem() {
    let with_label = |label: &str| {
        SEED.replacen(
            "filesystem = \"ext4\", mount = \"/vdisk\" }",
            &format!("filesystem = \"xfs\", mount = \"/vdisk\", label = {label:?} }}"),
            1,
        )
    };
    // One rule for the coordinator and the agent: '.' is allowed, not first; xfs takes 12.
    assert!(parse(&with_label("brick.longer")).is_ok());
    let found = issues(&with_label("brick.longer1"));
    assert_eq!(
        found,
        ["line 7: server[0].disk.label: invalid filesystem label \"brick.longer1\": longer than 12 characters (xfs \
          labels)"]
    );
    assert!(issues(&with_label(".brick"))[0].contains("starting with a letter or digit"));
}

#[test]
fn issues_never_carry_control_characters() {
    // Escaped in the TOML string: the name holds ESC, and the issue shows it escaped.
    let err = error(&SEED.replace("gluServer1", "glu\\u001b[31mServer1"));
    assert!(!err.contains('\u{1b}') && err.contains("\"glu\\u{1b}[31mServer1\""), "{err}");
    // Raw in the file: not TOML at all, and the error does not echo it.
    let err = error(&SEED.replace("gluServer1", "glu\u{1b}[31mServer1"));
    assert!(
        !err.contains('\u{1b}') && err.contains("line 5, column 12: server[0].name: invalid basic string"),
        "{err}"
    );
}

/// One change to a leaf of the seed: remove it, add an unknown key beside it, give it a value
/// of another type, or a new value of its type (strings: extended, plausible or anything;
/// integers: small or any `i64`).
#[derive(Debug, Clone)]
struct Edit {
    leaf: prop::sample::Index,
    how: u8,
    suffix: String,
    plausible: String,
    anything: String,
    small: i64,
    big: Option<i64>,
}

fn edit() -> impl Strategy<Value = Edit> {
    (
        any::<prop::sample::Index>(),
        0u8..12,
        "[a-z0-9]{0,3}",
        prop_oneof!["[a-zA-Z][a-zA-Z0-9._-]{0,12}", "/[a-z]{1,6}(/[a-z.]{1,4}){0,2}", "127\\.0\\.0\\.[0-9]{1,3}"],
        any::<String>(),
        0i64..8,
        proptest::option::weighted(0.2, any::<i64>()),
    )
        .prop_map(|(leaf, how, suffix, plausible, anything, small, big)| Edit {
            leaf,
            how,
            suffix,
            plausible,
            anything,
            small,
            big,
        })
}

impl Edit {
    /// The new value for a leaf that holds `old`.
    fn value(&self, old: &toml::Value) -> toml::Value {
        use toml::Value as V;
        match (old, self.how) {
            (V::String(_), 2) | (V::Boolean(_), 2) => V::Integer(self.small),
            (V::Integer(_), 2) => V::String(self.plausible.clone()),
            (V::String(s), 3..=6) => V::String(format!("{s}{}", self.suffix)),
            (V::String(_), 7..=9) => V::String(self.plausible.clone()),
            (V::String(_), _) => V::String(self.anything.clone()),
            (V::Integer(_), _) => V::Integer(self.big.unwrap_or(self.small)),
            (V::Boolean(b), _) => V::Boolean(!b),
            (other, _) => other.clone(),
        }
    }
}

/// The seed document with a few leaves edited (see `Edit`), as a TOML table.
fn mutated_seed() -> impl Strategy<Value = toml::Table> {
    proptest::collection::vec(edit(), 1..4).prop_map(|edits| {
        let mut doc: toml::Table = toml::from_str(SEED).unwrap();
        for edit in edits {
            let mut paths = Vec::new();
            leaf_paths(&toml::Value::Table(doc.clone()), &mut Vec::new(), &mut paths);
            let path = edit.leaf.get(&paths).clone();
            let (parent, key) = path.split_at(path.len() - 1);
            let Some(parent) = walk(&mut doc, parent) else { continue };
            match parent {
                toml::Value::Table(t) if edit.how == 0 => {
                    t.remove(&key[0]);
                }
                toml::Value::Table(t) if edit.how == 1 => {
                    t.insert(format!("{}x", key[0]), toml::Value::Integer(edit.small));
                }
                toml::Value::Table(t) => {
                    let new = edit.value(&t[&key[0]]);
                    t.insert(key[0].clone(), new);
                }
                toml::Value::Array(a) => {
                    if let Some(slot) = key[0].parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                        *slot = edit.value(slot);
                    }
                }
                _ => {}
            }
        }
        doc
    })
}

/// Every leaf of `value` as a path of keys (array indexes as numbers).
fn leaf_paths(value: &toml::Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let children: Vec<(String, &toml::Value)> = match value {
        toml::Value::Table(t) => t.iter().map(|(k, v)| (k.clone(), v)).collect(),
        toml::Value::Array(a) => a.iter().enumerate().map(|(i, v)| (i.to_string(), v)).collect(),
        _ => return out.push(path.clone()),
    };
    for (key, child) in children {
        path.push(key);
        leaf_paths(child, path, out);
        path.pop();
    }
}

fn walk<'a>(doc: &'a mut toml::Table, path: &[String]) -> Option<&'a mut toml::Value> {
    let (first, rest) = path.split_first()?;
    let mut at = doc.get_mut(first)?;
    for key in rest {
        at = match at {
            toml::Value::Table(t) => t.get_mut(key)?,
            toml::Value::Array(a) => a.get_mut(key.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(at)
}

/// Anything the loader accepts loads again, unchanged, from its rendering; anything it
/// refuses is located (every semantic issue at a line of the file).
fn check_loader(text: &str) -> Result<(), TestCaseError> {
    match parse(text) {
        Ok(spec) => {
            let rendered = toml::to_string(&spec).expect("an accepted spec renders as TOML");
            let again = parse(&rendered).map_err(|e| TestCaseError::fail(format!("{e}\n{rendered}")))?;
            prop_assert_eq!(again, spec);
        }
        Err(SpecError::Semantic { issues, .. }) => {
            prop_assert!(issues.iter().all(|i| i.line > 0), "unlocated issue in {:?}", issues);
        }
        Err(SpecError::Parse { message, .. }) => prop_assert!(!message.is_empty()),
        Err(other) => prop_assert!(false, "unexpected error {}", other),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics_the_loader(text in any::<String>()) {
        check_loader(&text)?;
    }

    #[test]
    fn the_seed_cut_or_spliced_never_panics_the_loader(at in 0..SEED.len(), insert in ".{0,8}") {
        let at = (0..=at).rev().find(|i| SEED.is_char_boundary(*i)).unwrap_or(0);
        check_loader(&format!("{}{insert}", &SEED[..at]))?;
        check_loader(&format!("{}{insert}{}", &SEED[..at], &SEED[at..]))?;
    }

    #[test]
    fn mutated_specs_load_or_are_refused_with_a_location(doc in mutated_seed()) {
        check_loader(&toml::to_string(&doc).unwrap())?;
    }
}

#[test]
fn coordinators_are_addresses_or_networks() {
    let with = |list: &str| SEED.replace("name = \"seed\"", &format!("name = \"seed\"\ncoordinators = {list}"));
    let spec = parse(&with(r#"["192.0.2.1", "2001:db8::/64"]"#)).unwrap();
    assert_eq!(spec.pool.coordinators.as_deref(), Some(&["192.0.2.1".to_owned(), "2001:db8::/64".to_owned()][..]));
    let found = issues(&with(r#"["192.0.2.1", "192.0.2.5/24", "admin-host"]"#));
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].starts_with("line 4: pool.coordinators[1]:") && found[0].contains("192.0.2.0/24"), "{found:?}");
    assert!(found[1].starts_with("line 4: pool.coordinators[2]:") && found[1].contains("IPv4 or IPv6"), "{found:?}");
    let found = issues(&with("[]"));
    assert!(found[0].starts_with("line 4: pool.coordinators:") && found[0].contains("leave the key out"), "{found:?}");
}

#[test]
fn disks_by_device_by_id_path_or_cinder_volume() {
    let disk = |fields: &str| SEED.replacen("device = \"/dev/vdb\",", fields, 1);
    let by_id = parse(&disk("device = \"/dev/disk/by-id/virtio-ec4eea2a-f0d9-4614-b\",")).unwrap();
    assert_eq!(by_id.servers[0].disk.as_ref().unwrap().name(), "/dev/disk/by-id/virtio-ec4eea2a-f0d9-4614-b");
    let cinder = parse(&disk("cinder_volume = \"ec4eea2a-f0d9-4614-bc00-2b1d7fd134f4\",")).unwrap();
    let named = cinder.servers[0].disk.as_ref().unwrap();
    assert_eq!(
        (named.device.as_deref(), named.name().as_str()),
        (None, "Cinder volume ec4eea2a-f0d9-4614-bc00-2b1d7fd134f4")
    );
    assert_eq!(
        issues(&disk("cinder_volume = \"vdb\",")),
        ["line 7: server[0].disk.cinder_volume: invalid Cinder volume id \"vdb\": must be a volume UUID such as \
          ec4eea2a-f0d9-4614-bc00-2b1d7fd134f4"]
    );
    assert_eq!(
        issues(&disk("device = \"/dev/vdb\", cinder_volume = \"ec4eea2a-f0d9-4614-bc00-2b1d7fd134f4\",")),
        ["line 7: server[0].disk.cinder_volume: give the disk's device or its cinder_volume, not both"]
    );
    let found = issues(&disk(""));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("line 7: server[0].disk: name the disk: device = "), "{found:?}");
}

#[test]
fn gluster_version_and_repo() {
    let with = |keys: &str| SEED.replace("name = \"seed\"", &format!("name = \"seed\"\n{keys}"));
    let spec = parse(&with("gluster_version = \"11\"")).unwrap();
    assert_eq!(spec.pool.gluster_version.as_deref(), Some("11"));
    assert!(parse(&with("gluster_repo = \"https://copr.example.org/glusterfs/epel-10.repo\"")).is_ok());
    assert!(parse(&with("gluster_repo = \"centos-release-gluster11\"")).is_ok());
    let found = issues(&with("gluster_version = \"12\""));
    assert!(found[0].starts_with("line 4: pool.gluster_version: invalid GlusterFS version \"12\""), "{found:?}");
    let found = issues(&with("gluster_repo = \"http://mirror.example/gluster.repo\""));
    assert!(found[0].starts_with("line 4: pool.gluster_repo:") && found[0].contains("must be https://"), "{found:?}");
    let found = issues(&with("gluster_version = \"11\"\ngluster_repo = \"centos-release-gluster11\""));
    assert_eq!(
        found,
        ["line 5: pool.gluster_repo: gluster_version picks a Storage SIG release and gluster_repo \
                        replaces the SIG: give one of the two"]
    );
}

#[test]
fn tls_options_are_the_pools_to_set() {
    let text = SEED.replace(
        "options = { \"performance.cache-size\" = \"512MB\" }",
        "options = { \"server.ssl\" = \"off\", \"auth.ssl-allow\" = \"client1\" }",
    );
    let found = issues(&text);
    assert_eq!(found.len(), 2, "{found:?}");
    for (issue, key) in found.iter().zip(["auth.ssl-allow", "server.ssl"]) {
        assert!(
            issue.contains(&format!("volume[0].options.\"{key}\"")) && issue.contains("`tls` under [pool]"),
            "{found:?}"
        );
    }
}

#[test]
fn a_replaced_server_leaves_the_spec_and_is_replaced_once() {
    let replacing = |name: &str, old: &str| {
        format!("[[server]]\nname = \"{name}\"\naddress = \"192.0.2.1{}\"\nreplaces = \"{old}\"\n", name.len())
    };
    // The volume keeps to the first two servers: the others here have no disk.
    let seed =
        SEED.replace("brick_dir = \"brick1\"", "servers = [\"gluServer1\", \"gluServer2\"]\nbrick_dir = \"brick1\"");
    let text = seed.replace("[[volume]]", &format!("{}[[volume]]", replacing("gluServer3", "gluServer9")));
    let spec = parse(&text).unwrap();
    assert_eq!(spec.servers[2].replaces.as_deref(), Some("gluServer9"));
    check_loader(&text).unwrap();

    let still = seed.replace("[[volume]]", &format!("{}[[volume]]", replacing("gluServer3", "gluServer2")));
    let found = issues(&still);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("server[2].replaces: gluServer2 is still in the spec: a replaced server leaves it"));
    let itself = seed.replace("[[volume]]", &format!("{}[[volume]]", replacing("gluServer3", "GLUSERVER3")));
    assert!(issues(&itself)[0].ends_with("server gluServer3 cannot replace itself"), "{:?}", issues(&itself));
    let twice = seed.replace(
        "[[volume]]",
        &format!("{}{}[[volume]]", replacing("gluServer3", "old"), replacing("gluServer44", "old")),
    );
    assert!(issues(&twice)[0].ends_with("old is already replaced by gluServer3"), "{:?}", issues(&twice));
    let bad = seed.replace("[[volume]]", &format!("{}[[volume]]", replacing("gluServer3", "a b")));
    assert!(issues(&bad)[0].contains("server[2].replaces"), "{:?}", issues(&bad));
}
