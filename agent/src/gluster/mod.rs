//! The local gluster CLI (`--mode=script --xml`) and pure parsers of its XML (placeholder:
//! the gluster issue fills it).

use brickyard_proto::v1;

use crate::tasks::{Context, TaskError};

/// The pool, volumes and glusterfs mounts as this host sees them (`GetGlusterStatus`).
pub async fn status(_ctx: &Context) -> Result<v1::GlusterStatus, TaskError> {
    Ok(v1::GlusterStatus::default())
}
