//! The RPC layer, on top of everything else: the agent's config file, mutual TLS, the live TLS
//! identity (enrolment, rotation, CRL), admission limits on the listener, the gRPC server
//! (thin: validate, call, convert), proto conversions and the `VerifyFile` handler.

pub mod config;
pub mod conversions;
pub mod identity;
pub mod limits;
pub mod server;
pub mod tls;
pub mod verify_file;
