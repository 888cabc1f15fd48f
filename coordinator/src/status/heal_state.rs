//! A volume's self-heal state as `status` shows it: entries pending heal and in split-brain
//! (summed over the bricks `heal info summary` could read), and the problems they are. Pending
//! entries heal by themselves (the self-heal daemons; `apply` watches a full heal after it
//! adds or replaces bricks); split-brain entries never do: an operator picks the good copy.

use brickyard_proto::v1;

/// A count as the table shows it (`-`: unknown or not a replicated/dispersed volume).
fn count(n: i64) -> String {
    if n < 0 {
        "-".to_owned()
    } else {
        n.to_string()
    }
}

/// The PENDING HEALS and SPLIT-BRAIN cells.
pub fn cells(v: &v1::VolumeStatus) -> [String; 2] {
    [count(v.pending_heals), count(v.split_brain)]
}

/// What is wrong with `v`'s heal state.
pub fn problems(v: &v1::VolumeStatus) -> Vec<String> {
    let mut problems = Vec::new();
    if v.pending_heals > 0 {
        problems.push(format!(
            "volume {}: {} entries pending heal (the self-heal daemons' next crawl is cluster.heal-timeout, 600 s by \
             default, after their last; `gluster volume heal {}` starts one now)",
            v.name, v.pending_heals, v.name
        ));
    }
    if v.split_brain > 0 {
        problems.push(format!(
            "volume {}: {} entries in split-brain, which no heal resolves by itself (see `gluster volume heal {} \
             info split-brain` and resolve each by hand)",
            v.name, v.split_brain, v.name
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_and_split_brain_are_problems_unknown_is_a_dash() {
        let mut v = v1::VolumeStatus { name: "gluV1".into(), pending_heals: -1, split_brain: -1, ..Default::default() };
        assert_eq!(cells(&v), ["-", "-"]);
        assert!(problems(&v).is_empty());
        v.pending_heals = 0;
        v.split_brain = 0;
        assert_eq!(cells(&v), ["0", "0"]);
        assert!(problems(&v).is_empty());
        v.pending_heals = 12;
        v.split_brain = 2;
        let found = problems(&v);
        assert!(found[0].starts_with("volume gluV1: 12 entries pending heal ("), "{found:?}");
        assert!(found[0].ends_with("`gluster volume heal gluV1` starts one now)"), "{found:?}");
        assert!(found[1].starts_with("volume gluV1: 2 entries in split-brain, which no heal resolves"), "{found:?}");
    }
}
