//! Compiles `proto/sync/sync.proto` with protox (pure Rust: no `protoc` needed) into the prost
//! messages, plus, with the `grpc` feature, the tonic service. Maps are ordered: `ProofNode.children`
//! then encodes deterministically (golden tests).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time: the build script binary may be reused from a clone at another path.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR")?;
    let proto_dir = std::path::Path::new(&manifest_dir).join("../proto");
    let file = proto_dir.join("sync/sync.proto");
    println!("cargo:rerun-if-changed={}", file.display());
    let descriptors = protox::compile([&file], [&proto_dir])?;
    #[cfg(feature = "grpc")]
    tonic_prost_build::configure()
        .btree_map(".")
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    #[cfg(not(feature = "grpc"))]
    prost_build::Config::new()
        .btree_map(["."])
        .compile_fds(descriptors)?;
    Ok(())
}
