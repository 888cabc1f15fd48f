//! `VolumeTls`: the guard in front of turning GlusterFS I/O TLS on for a volume that exists.
//! Brick processes take `server.ssl`/`client.ssl` only when they start, so a started volume
//! without TLS must be stopped and started again, and its clients lose their mounts until
//! they are remounted. Refused (unsafe: only on the operator's word) unless the task allows
//! restarts; then this task stops the volume (`volume stop`) and `EnsureVolume`, next in the
//! batch, sets the TLS options and starts it. Nothing for a volume that does not exist yet
//! (EnsureVolume creates it with the options before starting it), is stopped, or has TLS.
//! Runs only the local gluster CLI.

use std::fmt;

use async_trait::async_trait;
use brickyard_proto::types::VolumeName;
use brickyard_proto::v1;

use super::shape::{Plan, Task, TaskError};
use crate::gluster;
use crate::host::Context;

/// The option whose value says whether a volume's bricks speak TLS.
const SERVER_SSL: &str = "server.ssl";

pub struct VolumeTls {
    volume: VolumeName,
    allow_restart: bool,
}

impl VolumeTls {
    pub fn from_proto(task: &v1::VolumeTls) -> Result<Self, TaskError> {
        Ok(Self { volume: VolumeName::new(&task.volume)?, allow_restart: task.allow_restart })
    }
}

/// `volume stop VOL`, so that its bricks start again with TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopForTls(VolumeName);

impl fmt::Display for StopForTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stop volume {} so that its bricks start again with TLS (clients lose the mount until remounted)",
            self.0
        )
    }
}

#[async_trait]
impl Task for VolumeTls {
    type Change = StopForTls;

    async fn plan(&self, ctx: &Context) -> Result<Plan<StopForTls>, TaskError> {
        let volumes = gluster::volume_info(ctx).await?;
        let Some(live) = volumes.iter().find(|v| v.name == self.volume.as_str()) else {
            return Ok(Plan::unchanged());
        };
        if !live.started() {
            return Ok(Plan::unchanged());
        }
        if live.options.get(SERVER_SSL).is_some_and(|v| v == "on") {
            return Ok(Plan::unchanged()); // set on the volume: `volume info` shows it
        }
        let options = gluster::volume_get_all(ctx, self.volume.as_str()).await?;
        let server_ssl = options.get(SERVER_SSL).map_or("(unset)", String::as_str);
        if server_ssl == "on" {
            return Ok(Plan::unchanged());
        }
        if !self.allow_restart {
            return Err(TaskError::Unsafe(format!(
                "volume {} is started without TLS ({SERVER_SSL} is {server_ssl}): turning TLS on needs the volume \
                 stopped and started again and its clients remounted; the task does that only when restarts are \
                 allowed (`tls_restart = true` under [pool] in the spec; `tls = false` keeps the pool without TLS)",
                self.volume
            )));
        }
        Ok(Plan::of(vec![StopForTls(self.volume.clone())]))
    }

    async fn apply(&self, ctx: &Context, plan: Plan<StopForTls>) -> Result<Vec<StopForTls>, TaskError> {
        for StopForTls(volume) in &plan.changes {
            gluster::cli(ctx, &["volume", "stop", volume.as_str()]).await?;
        }
        Ok(plan.changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gluster::fixture;
    use crate::host::runner::fake::FakeRunner;
    use crate::tasks::shape::AnyTask;

    const G: &str = "/usr/sbin/gluster --mode=script --xml";

    fn task(volume: &str, allow_restart: bool) -> VolumeTls {
        VolumeTls::from_proto(&v1::VolumeTls { volume: volume.into(), allow_restart }).unwrap()
    }

    /// `volume get VOL all` answering `server.ssl` = `value`.
    fn options(value: &str) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<cliOutput><opRet>0</opRet>\
             <opErrno>0</opErrno><opErrstr/><volGetopts><count>1</count><Opt><Option>server.ssl</Option>\
             <Value>{value}</Value></Opt></volGetopts></cliOutput>"
        )
    }

    #[tokio::test]
    async fn a_started_volume_without_tls_is_refused_naming_it_and_what_to_set() {
        let ctx = Context::direct(
            FakeRunner::default()
                .expect(&format!("{G} volume info"), &fixture("volume-info.xml"))
                .expect(&format!("{G} volume get gv0 all"), &options("off")),
        );
        let err = task("gv0", false).check(&ctx).await.expect_err("TLS turned on without a restart allowed");
        assert!(matches!(err, TaskError::Unsafe(_)), "{err:?}");
        let message = err.to_string();
        assert!(
            message.starts_with("volume gv0 is started without TLS (server.ssl is off)")
                && message.contains("`tls_restart = true` under [pool]"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn with_restarts_allowed_the_volume_is_stopped() {
        let ctx = Context::direct(
            FakeRunner::default()
                .expect(&format!("{G} volume info"), &fixture("volume-info.xml"))
                .expect(&format!("{G} volume get gv0 all"), &options("off"))
                .expect(&format!("{G} volume stop gv0"), &fixture("volume-start.xml")),
        );
        assert_eq!(
            task("gv0", true).run(&ctx).await.unwrap(),
            ["stop volume gv0 so that its bricks start again with TLS (clients lose the mount until remounted)"]
        );
    }

    #[tokio::test]
    async fn absent_or_tls_volumes_need_nothing() {
        let ctx = Context::direct(
            FakeRunner::default()
                .expect(&format!("{G} volume info"), &fixture("volume-info.xml"))
                .expect(&format!("{G} volume get gv0 all"), &options("on"))
                .expect(&format!("{G} volume info"), &fixture("volume-info.xml")),
        );
        assert!(task("gv0", false).check(&ctx).await.unwrap().changes.is_empty());
        assert!(task("other", false).check(&ctx).await.unwrap().changes.is_empty());
    }

    #[tokio::test]
    async fn tls_set_on_the_volume_is_seen_in_volume_info_alone() {
        let with_tls = fixture("volume-info.xml")
            .replace("<options>", "<options><option><name>server.ssl</name><value>on</value></option>");
        // No `volume get` expected: the fake runner fails a command it was not told of.
        let ctx = Context::direct(FakeRunner::default().expect(&format!("{G} volume info"), &with_tls));
        assert!(task("gv0", false).check(&ctx).await.unwrap().changes.is_empty());
    }
}
