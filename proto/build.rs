//! Generates the brickyard.v1 gRPC code from `proto/brickyard/v1/*.proto` (the only codegen).
fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("PROTOC").is_none() {
        // Safety of set_var: build scripts are single-threaded at this point.
        unsafe { std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?) };
    }
    tonic_prost_build::configure().compile_protos(&["proto/brickyard/v1/agent.proto"], &["proto"])?;
    Ok(())
}
