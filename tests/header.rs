//! The committed header must be exactly what cbindgen generates from the
//! sources. Regenerate with `make header` (SQLPOOL_WRITE_HEADER=1).

use std::path::Path;

fn generate() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut out = Vec::new();
    cbindgen::Builder::new()
        .with_crate(root)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut out);
    String::from_utf8(out).expect("UTF-8 header")
}

#[test]
fn header_matches_sources() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("include/sqlpool.h");
    let generated = generate();
    if std::env::var_os("SQLPOOL_WRITE_HEADER").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/sqlpool.h is out of date: run `make header` and commit it"
    );
}

#[test]
fn header_version_matches_cargo() {
    let header =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("include/sqlpool.h"))
            .unwrap();
    let version = env!("CARGO_PKG_VERSION");
    let mut parts = version.split('.');
    for name in ["MAJOR", "MINOR", "PATCH"] {
        let want = format!("#define SQLPOOL_VERSION_{name} {}", parts.next().unwrap());
        assert!(header.contains(&want), "header lacks {want}");
    }
}
