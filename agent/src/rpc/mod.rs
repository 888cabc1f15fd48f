//! The RPC layer, on top of everything else: the agent's config file, mutual TLS, the gRPC
//! server (thin: validate, call, convert), the live TLS identity (enrolment, rotation, CRL),
//! proto conversions and the `VerifyFile` handler.

pub mod config;
pub mod conversions;
pub mod identity;
pub mod server;
pub mod tls;
pub mod verify_file;
