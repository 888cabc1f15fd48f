//! brickyard: the operator's CLI. Reads a cluster spec, asks every agent for facts, plans and
//! applies typed tasks as a task graph, reads pool status. Stateless: the spec and what the
//! agents report are the only truth. The lab (namespaced hosts on one machine) is a separate
//! crate and binary, `brickyard-lab` (lab/), that uses this library; nothing here knows of it.
pub mod adopt;
pub mod agents;
pub mod apply;
pub mod client;
pub mod cloud_init;
pub mod commands;
pub mod destroy;
pub mod facts;
pub mod gluster_roll;
pub mod gluster_tls;
pub mod graph;
pub mod identity;
pub mod migrate;
pub mod output;
pub mod phases;
pub mod pki;
pub mod plan;
pub mod pool_view;
pub mod progress;
pub mod replacements;
pub mod retire;
pub mod run_graph;
pub mod spec;
pub mod status;
#[cfg(test)]
mod test_spec;
pub mod validate;
pub mod verify;
