//! Compiles ../proto into tokend's gRPC client code (no server code).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A vendored protoc keeps `cargo build` free of system packages.
    // SAFETY: build scripts are single-threaded; nothing else reads the environment concurrently.
    unsafe { std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?) };
    let include = protoc_bin_vendored::include_path()?;
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        .compile_protos(
            &[std::path::PathBuf::from(
                "../proto/tokend/v1/token_service.proto",
            )],
            &[std::path::PathBuf::from("../proto"), include],
        )?;
    println!("cargo:rerun-if-changed=../proto");
    Ok(())
}
