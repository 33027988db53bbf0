//! The committed C header (`include/arbor.h`) is what cbindgen makes of the crate today.
//! `ARBOR_WRITE_HEADER=1 cargo test -p arbor-ffi --test header` rewrites it.

#[test]
fn the_committed_header_is_current() {
    let crate_dir = env!("CARGO_MANIFEST_DIR");
    let config = cbindgen::Config::from_file(format!("{crate_dir}/cbindgen.toml")).expect("config");
    let bindings = cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let path = format!("{crate_dir}/include/arbor.h");
    if std::env::var_os("ARBOR_WRITE_HEADER").is_some() {
        std::fs::write(&path, &generated).expect("write the header");
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{path} is stale: run `ARBOR_WRITE_HEADER=1 cargo test --release -p arbor-ffi --test header` and commit it"
    );
}
