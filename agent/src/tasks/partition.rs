//! `PartitionDisk` — placeholder until its issue lands: validates nothing and refuses to run.

use brickyard_proto::v1;

use super::{Check, Context, TaskError};

pub struct PartitionDisk;

impl PartitionDisk {
    pub fn from_proto(_task: &v1::PartitionDisk) -> Result<Self, TaskError> {
        Ok(Self)
    }

    pub async fn check(&self, _ctx: &Context) -> Result<Check, TaskError> {
        Err(TaskError::Unsupported("PartitionDisk is not implemented yet".into()))
    }

    pub async fn apply(&self, _ctx: &Context) -> Result<Vec<String>, TaskError> {
        Err(TaskError::Unsupported("PartitionDisk is not implemented yet".into()))
    }
}
