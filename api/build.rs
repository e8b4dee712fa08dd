//! Compiles proto/tokend/v1/*.proto once into tokend's gRPC code (server and client) and the
//! descriptor set for reflection, which also holds google/rpc/error_details.proto (vendored in
//! proto/ here) so that reflection clients such as grpcurl can decode the error details.
//!
//! `proto/tokend` in this crate is a symbolic link to the workspace's top-level `proto/tokend`:
//! the files live once, and `cargo package` follows the link, so the published crate carries
//! them and builds on its own.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A vendored protoc keeps `cargo build` free of system packages.
    // SAFETY: build scripts are single-threaded; nothing else reads the environment concurrently.
    unsafe { std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?) };
    let includes = [PathBuf::from("proto"), protoc_bin_vendored::include_path()?];
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    // Every file of the package (token_service.proto, errors.proto, and any added beside them).
    let mut protos: Vec<PathBuf> = std::fs::read_dir("proto/tokend/v1")?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    protos.retain(|p| p.extension().is_some_and(|ext| ext == "proto"));
    protos.sort();
    protos.push(PathBuf::from("proto/google/rpc/error_details.proto"));
    tonic_prost_build::configure()
        .build_client(true)
        .file_descriptor_set_path(out.join("tokend_descriptor.bin"))
        .compile_protos(&protos, &includes)?;
    // The link's target, not the link: cargo compares the mtimes of what it names.
    println!("cargo:rerun-if-changed=proto/tokend/v1");
    println!("cargo:rerun-if-changed=proto/google");
    Ok(())
}
