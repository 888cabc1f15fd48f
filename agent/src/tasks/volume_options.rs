//! Which options of a volume are Brickyard's, so that one removed from the spec is reset
//! (`volume reset VOL KEY`, back to gluster's default) and one set by hand never is. Brickyard
//! records the keys it sets in the volume itself, in the user option [`RECORD`] (gluster keeps
//! `user.*` options with the volume, shows them in `volume info`/`get` and passes them to hook
//! scripts, and no translator reads them): a key in the record and no longer in the task is
//! Brickyard's to reset. A reconfigured option that is neither asked for nor recorded — set by
//! hand, by an older Brickyard that kept no record, or by gluster itself ([`GLUSTER_OWN_OPTIONS`],
//! never warned about) — is left as it is, with a warning that says how to reset it. Pure.

use std::collections::{BTreeMap, BTreeSet};

use brickyard_proto::types::{OptionKey, OptionValue, VolumeName};

use super::shape::TaskError;

/// The user option holding the keys Brickyard set on the volume, comma-separated, sorted.
pub const RECORD: &str = "user.brickyard.options";

/// The options gluster sets by itself, none of them Brickyard's: those it reconfigures when it
/// creates a volume (gluster 10/11), and `old.auth.allow`, where `replace-brick` and a replica
/// increase keep the `auth.allow` they replaced for their own mount.
const GLUSTER_OWN_OPTIONS: &[&str] = &[
    "transport.address-family",
    "nfs.disable",
    "performance.client-io-threads",
    "storage.fips-mode-rchecksum",
    "cluster.granular-entry-heal",
    "old.auth.allow",
];

/// `options` plus the record of their keys (the record's own key excluded); no record without
/// options (a recorded volume then gets its record reset with the rest).
pub fn with_record(
    mut options: BTreeMap<OptionKey, OptionValue>,
) -> Result<BTreeMap<OptionKey, OptionValue>, TaskError> {
    let record = OptionKey::new(RECORD)?;
    options.remove(&record);
    if options.is_empty() {
        return Ok(options);
    }
    let keys: Vec<&str> = options.keys().map(OptionKey::as_str).collect();
    let value = OptionValue::new(&keys.join(","))?;
    options.insert(record, value);
    Ok(options)
}

/// `volume get VOL all` values, plus the user options (the record among them) that it leaves
/// out and `volume info` lists as reconfigured.
pub fn live_values(
    mut all: BTreeMap<String, String>,
    reconfigured: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    for (key, value) in reconfigured.iter().filter(|(k, _)| k.starts_with("user.")) {
        all.entry(key.clone()).or_insert_with(|| value.clone());
    }
    all
}

/// The options to reset — (key, live value) of each recorded key gone from `wanted` that is
/// still reconfigured on the live volume — and a warning for each reconfigured option
/// Brickyard does not own.
pub fn resets(
    volume: &VolumeName,
    wanted: &BTreeMap<OptionKey, OptionValue>,
    reconfigured: &BTreeMap<String, String>,
) -> (Vec<(String, String)>, Vec<String>) {
    let recorded: BTreeSet<&str> =
        reconfigured.get(RECORD).map(|r| r.split(',').filter(|k| !k.is_empty()).collect()).unwrap_or_default();
    let wanted = |key: &str| wanted.keys().any(|k| k.as_str() == key);
    let mut changes = Vec::new();
    let mut warnings = Vec::new();
    for (key, value) in reconfigured.iter().filter(|(k, _)| !wanted(k)) {
        if recorded.contains(key.as_str()) || key == RECORD {
            changes.push((key.clone(), value.clone()));
        } else if !GLUSTER_OWN_OPTIONS.contains(&key.as_str()) {
            warnings.push(format!(
                "option {key} = {value} on volume {volume} was not set by Brickyard: left as is \
                 (`gluster volume reset {volume} {key}` resets it)"
            ));
        }
    }
    (changes, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> BTreeMap<OptionKey, OptionValue> {
        pairs.iter().map(|(k, v)| (OptionKey::new(k).unwrap(), OptionValue::new(v).unwrap())).collect()
    }

    fn live(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn user_options_come_from_volume_info() {
        let all = live(&[("performance.cache-size", "32MB")]);
        let reconfigured = live(&[(RECORD, "a"), ("nfs.disable", "on")]);
        assert_eq!(live_values(all, &reconfigured), live(&[("performance.cache-size", "32MB"), (RECORD, "a")]));
    }

    #[test]
    fn the_record_lists_every_key_but_itself() {
        let recorded =
            with_record(options(&[("performance.cache-size", "512MB"), (RECORD, "x"), ("auth.allow", "a")])).unwrap();
        assert_eq!(recorded[&OptionKey::new(RECORD).unwrap()].as_str(), "auth.allow,performance.cache-size");
        assert!(with_record(BTreeMap::new()).unwrap().is_empty());
    }

    #[test]
    fn only_recorded_options_are_reset_hand_set_ones_are_warned_about() {
        let volume = VolumeName::new("gv0").unwrap();
        let wanted = with_record(options(&[("auth.allow", "10.0.0.1")])).unwrap();
        let reconfigured = live(&[
            ("auth.allow", "10.0.0.1"),
            ("performance.cache-size", "512MB"),
            ("network.ping-timeout", "10"),
            ("nfs.disable", "on"),
            (RECORD, "auth.allow,performance.cache-size"),
        ]);
        let (changes, warnings) = resets(&volume, &wanted, &reconfigured);
        assert_eq!(changes, [("performance.cache-size".to_owned(), "512MB".to_owned())]);
        assert_eq!(
            warnings,
            ["option network.ping-timeout = 10 on volume gv0 was not set by Brickyard: left as is \
              (`gluster volume reset gv0 network.ping-timeout` resets it)"]
        );
        // Every option gone: the record goes too.
        let (changes, _) = resets(&volume, &BTreeMap::new(), &reconfigured);
        let keys: Vec<&str> = changes.iter().map(|(key, _)| key.as_str()).collect();
        assert_eq!(keys, ["auth.allow", "performance.cache-size", RECORD]);
        // No record (a volume from an older Brickyard or built by hand): nothing is reset.
        let (changes, warnings) = resets(&volume, &wanted, &live(&[("performance.cache-size", "512MB")]));
        assert!(changes.is_empty());
        assert_eq!(warnings.len(), 1);
    }
}
