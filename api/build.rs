//! Compiles ../proto once into tokend's gRPC code (server and client) and the descriptor set for
//! reflection.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A vendored protoc keeps `cargo build` free of system packages.
    // SAFETY: build scripts are single-threaded; nothing else reads the environment concurrently.
    unsafe { std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?) };
    let includes = [
        PathBuf::from("../proto"),
        protoc_bin_vendored::include_path()?,
    ];
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .build_client(true)
        .file_descriptor_set_path(out.join("tokend_descriptor.bin"))
        .compile_protos(
            &[
                PathBuf::from("../proto/tokend/v1/token_service.proto"),
                PathBuf::from("../proto/tokend/v1/bootstrap_token_service.proto"),
                PathBuf::from("../proto/tokend/v1/client_certificate_service.proto"),
            ],
            &includes,
        )?;
    println!("cargo:rerun-if-changed=../proto");
    Ok(())
}
