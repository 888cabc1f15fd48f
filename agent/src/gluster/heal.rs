//! Self-heal as the gluster CLI shows it: `volume heal VOL info summary` per brick (entries
//! pending, in split-brain, being healed, and whether heal info could reach the brick), parsed
//! purely from its XML, and `volume heal VOL [full]`, which starts a crawl of the heal indices
//! (or of everything) and answers in text even with `--xml` (gluster 10.3: on stdout when it
//! starts, on stderr when refused). Fixtures captured
//! from gluster 10.3 in a lab: `heal-info-summary-healing.xml` (mid-heal after `add-brick
//! replica 3`), `heal-info-summary-brick-down.xml`, `volume-heal-full.txt`,
//! `volume-heal-full-failed.txt` and `volume-heal-index-failed.txt` (copied from the terminal).

use brickyard_proto::v1;

use super::xml::{Element, XmlError};
use super::{cli_program, parsed, Error};
use crate::host::runner::CommandError;
use crate::host::Context;

/// One brick's line of `heal info [summary]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrickHeal {
    /// `host:path`.
    pub brick: String,
    /// Heal info could read the brick (`status` is `Connected`).
    pub connected: bool,
    /// Entries waiting for heal (`totalNumberOfEntries`, or `numberOfEntries` without summary).
    pub pending: i64,
    pub split_brain: i64,
}

/// `heal info [summary]` of one volume.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HealSummary {
    pub bricks: Vec<BrickHeal>,
}

impl HealSummary {
    /// Entries pending heal, summed over the bricks that answered.
    pub fn pending(&self) -> i64 {
        self.bricks.iter().filter(|b| b.connected).map(|b| b.pending).sum()
    }

    pub fn split_brain(&self) -> i64 {
        self.bricks.iter().filter(|b| b.connected).map(|b| b.split_brain).sum()
    }

    /// The bricks heal info could not read.
    pub fn unreachable(&self) -> Vec<String> {
        self.bricks.iter().filter(|b| !b.connected).map(|b| b.brick.clone()).collect()
    }

    /// Every brick answered and none has an entry pending: the heal is done.
    pub fn healed(&self) -> bool {
        !self.bricks.is_empty() && self.bricks.iter().all(|b| b.connected && b.pending == 0)
    }

    /// One line: `N pending (host:path N, ...)`, plus split-brain and unreachable bricks.
    pub fn describe(&self) -> String {
        let per_brick: Vec<String> = self
            .bricks
            .iter()
            .map(
                |b| if b.connected { format!("{} {}", b.brick, b.pending) } else { format!("{} unreachable", b.brick) },
            )
            .collect();
        let mut line = format!("{} entries pending heal ({})", self.pending(), per_brick.join(", "));
        if self.split_brain() > 0 {
            line.push_str(&format!(", {} in split-brain", self.split_brain()));
        }
        line
    }
}

/// Parses `volume heal VOL info [summary]`.
pub fn summary(root: &Element) -> Result<HealSummary, XmlError> {
    let bricks = root.find(&["healInfo", "bricks"]).ok_or(XmlError::Missing("healInfo/bricks"))?;
    let bricks = bricks
        .children("brick")
        .map(|b| {
            let count = |name: &str| b.text_of(name).and_then(|t| t.parse::<i64>().ok());
            BrickHeal {
                brick: b.text_of("name").unwrap_or_default().to_owned(),
                connected: b.text_of("status") == Some("Connected"),
                pending: count("totalNumberOfEntries").or_else(|| count("numberOfEntries")).unwrap_or(0),
                split_brain: count("numberOfEntriesInSplitBrain").unwrap_or(0),
            }
        })
        .collect();
    Ok(HealSummary { bricks })
}

/// `volume heal VOL info summary`.
pub async fn heal_summary(ctx: &Context, volume: &str) -> Result<HealSummary, Error> {
    parsed(
        "volume heal info summary",
        summary(&super::query(ctx, &["volume", "heal", volume, "info", "summary"]).await?),
    )
}

/// Which entries a heal crawl visits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crawl {
    /// `volume heal VOL full`: every file of every brick.
    Full,
    /// `volume heal VOL`: the entries the heal indices list (what `heal info` counts).
    Index,
}

/// Starts a self-heal crawl on every brick's self-heal daemon. The answer is text, not XML; a
/// refusal (e.g. "Commit failed on gluServer4" while a new brick's self-heal daemon is still
/// starting) is the error's message.
pub async fn start_heal(ctx: &Context, volume: &str, crawl: Crawl) -> Result<(), Error> {
    let mut cmd = cli_program(ctx)?.args(["volume", "heal", volume]);
    if crawl == Crawl::Full {
        cmd = cmd.arg("full");
    }
    let out = ctx.runner.output(&cmd).await;
    ctx.shared_runs.changed();
    let out = out?;
    if out.success() {
        return Ok(());
    }
    let said = format!("{} {}", out.stdout.trim(), out.stderr.trim()).trim().replace('\n', " ");
    Err(Error::Command(CommandError::Failed { cmd: cmd.display(), code: out.code, stdout: out.stdout, stderr: said }))
}

/// The heal fields of `GetGlusterStatus` for one volume: (pending, split-brain, unreachable
/// bricks); unknown counts are -1.
pub fn status_fields(summary: Option<&HealSummary>) -> (i64, i64, Vec<String>) {
    match summary {
        Some(s) if !s.bricks.is_empty() && s.bricks.iter().any(|b| b.connected) => {
            (s.pending(), s.split_brain(), s.unreachable())
        }
        Some(s) => (-1, -1, s.unreachable()),
        None => (-1, -1, Vec::new()),
    }
}

/// Sets a volume status's heal fields.
pub fn fill_status(status: &mut v1::VolumeStatus, summary: Option<&HealSummary>) {
    (status.pending_heals, status.split_brain, status.heal_unreachable) = status_fields(summary);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gluster::fixture;
    use crate::gluster::xml::cli_output;
    use crate::host::runner::fake::FakeRunner;
    use crate::host::runner::Output;

    fn parsed(name: &str) -> HealSummary {
        summary(&cli_output(&fixture(name)).unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn counts_per_brick() {
        for name in [
            "heal-info.xml",
            "heal-info-summary.xml",
            "heal-info-summary-disperse.xml",
            "heal-info-summary-arbiter.xml",
        ] {
            let s = parsed(name);
            assert!(s.healed() && s.pending() == 0 && s.split_brain() == 0, "{name}: {s:?}");
        }
        assert_eq!(parsed("heal-info-pending.xml").pending(), 2);

        let healing = parsed("heal-info-summary-healing.xml");
        assert_eq!(healing.pending(), 321);
        assert!(!healing.healed());
        assert_eq!(
            healing.describe(),
            "321 entries pending heal (gluServer1:/bricks/b1 171, gluServer2:/bricks/b1 150, gluServer3:/bricks/b1 0)"
        );

        let down = parsed("heal-info-summary-brick-down.xml");
        assert_eq!((down.pending(), down.unreachable()), (0, vec!["gluServer3:/bricks/b1".to_owned()]));
        assert!(!down.healed(), "a brick heal info cannot read is not healed");
        assert!(down.describe().ends_with("gluServer3:/bricks/b1 unreachable)"), "{}", down.describe());
        assert_eq!(status_fields(Some(&down)), (0, 0, vec!["gluServer3:/bricks/b1".to_owned()]));

        let pending = parsed("heal-info-summary-pending.xml");
        assert_eq!((pending.pending(), pending.unreachable()), (2, vec!["gs2:/srv/b1".to_owned()]));
        assert_eq!(status_fields(None), (-1, -1, vec![]));
    }

    #[test]
    fn split_brain_is_counted() {
        let text = fixture("heal-info-summary-healing.xml").replacen(
            "<numberOfEntriesInSplitBrain>0</numberOfEntriesInSplitBrain>",
            "<numberOfEntriesInSplitBrain>4</numberOfEntriesInSplitBrain>",
            1,
        );
        let s = summary(&cli_output(&text).unwrap()).unwrap();
        assert_eq!(s.split_brain(), 4);
        assert!(s.describe().ends_with(", 4 in split-brain"), "{}", s.describe());
    }

    #[tokio::test]
    async fn full_heal_answers_in_text() {
        const FULL: &str = "/usr/sbin/gluster --mode=script --xml volume heal hv full";
        let c = Context::direct(FakeRunner::default().expect(FULL, &fixture("volume-heal-full.txt")));
        start_heal(&c, "hv", Crawl::Full).await.unwrap();

        let failed = Output { code: Some(1), stdout: String::new(), stderr: fixture("volume-heal-full-failed.txt") };
        let c = Context::direct(FakeRunner::default().expect_output(FULL, failed));
        let e = start_heal(&c, "hv", Crawl::Full).await.unwrap_err().to_string();
        assert!(e.contains("volume heal hv full failed (exit status 1)"), "{e}");
        assert!(e.contains("has been unsuccessful: Commit failed on gluServer4."), "{e}");

        let failed = Output { code: Some(1), stdout: String::new(), stderr: fixture("volume-heal-index-failed.txt") };
        let c = Context::direct(
            FakeRunner::default().expect_output("/usr/sbin/gluster --mode=script --xml volume heal hv", failed),
        );
        let e = start_heal(&c, "hv", Crawl::Index).await.unwrap_err().to_string();
        assert!(e.contains("index self heal on volume hv has been unsuccessful"), "{e}");
    }
}
