//! `VerifyFile`: the seed's file test, limited to `.brickyard-verify-*` files on glusterfs
//! mounts and local bricks (placeholder: the gluster issue fills it).

use brickyard_proto::v1;

use crate::tasks::{Context, TaskError};

pub async fn handle(_ctx: &Context, _req: &v1::VerifyFileRequest) -> Result<v1::VerifyFileResponse, TaskError> {
    Err(TaskError::Unsupported("VerifyFile is not implemented yet".into()))
}
