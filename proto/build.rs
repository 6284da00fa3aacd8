//! Compiles every `.proto` file of this crate to Rust without a system
//! `protoc`.
//!
//! 1. protox compiles the files, keeping source info (comments become Rust
//!    docs) and the imported well-known types.
//! 2. The descriptor set is written to `OUT_DIR/stocklet_descriptor.bin` as
//!    the bytes protox encodes itself. Re-encoding a decoded
//!    `prost_types::FileDescriptorSet` would drop custom options such as
//!    `(google.api.http)`, which reflection and the REST gateway need.
//! 3. tonic-prost-build generates the messages, clients and servers, with
//!    `google.protobuf` mapped to `pbjson_types`.
//! 4. pbjson-build generates proto3 JSON (serde) impls for the `stocklet`
//!    packages. Unknown JSON fields are rejected, which guards against mass
//!    assignment through the REST gateway.

use std::error::Error;
use std::path::{Path, PathBuf};

use prost::Message as _;

/// Name of the encoded descriptor set in `OUT_DIR`; `src/lib.rs` includes it.
const DESCRIPTOR_FILE: &str = "stocklet_descriptor.bin";

/// Top-level directories of this crate that hold `.proto` files.
const PROTO_ROOTS: [&str; 2] = ["google", "stocklet"];

fn main() -> Result<(), Box<dyn Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);

    let mut protos = Vec::new();
    for dir in PROTO_ROOTS {
        let dir = root.join(dir);
        println!("cargo:rerun-if-changed={}", dir.display());
        collect_protos(&dir, &mut protos)?;
    }
    println!("cargo:rerun-if-changed=build.rs");
    protos.sort();

    // 1. Compile. The include path is the crate root, so file names inside
    //    the descriptors read `stocklet/order/v1/order.proto`.
    let mut compiler = protox::Compiler::new([&root])?;
    compiler.include_source_info(true);
    compiler.include_imports(true);
    compiler.open_files(&protos)?;

    // 2. Keep protox's own encoding: it preserves extension options.
    let descriptor_bytes = compiler.encode_file_descriptor_set();
    std::fs::write(out_dir.join(DESCRIPTOR_FILE), &descriptor_bytes)?;

    // 3. Messages and gRPC stubs. The well-known types come from
    //    pbjson-types, so their files are left out of the code generation.
    //    Every message implements `prost::Name`, so an event's type string is
    //    `OrderPlaced::full_name()`.
    let mut fds = tonic_prost_build::FileDescriptorSet::decode(descriptor_bytes.as_slice())?;
    fds.file
        .retain(|file| file.package.as_deref() != Some("google.protobuf"));
    let mut config = tonic_prost_build::Config::new();
    config.enable_type_names();
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .build_transport(true)
        .compile_well_known_types(true)
        .extern_path(".google.protobuf", "::pbjson_types")
        .compile_fds_with_config(fds, config)?;

    // 4. proto3 JSON for our own packages; unknown fields stay rejected.
    pbjson_build::Builder::new()
        .register_descriptors(&descriptor_bytes)?
        .extern_path(".google.protobuf", "::pbjson_types")
        .build(&[".stocklet"])?;

    Ok(())
}

/// Appends every `.proto` file under `dir` to `out`, recursively.
fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Box<dyn Error>> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            out.push(path);
        }
    }
    Ok(())
}
