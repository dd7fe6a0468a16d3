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
    name_status_type(&String::from_utf8(out).expect("UTF-8 header"))
}

/// cbindgen names an enum's constants after the enum and cannot give them
/// another prefix (mozilla/cbindgen#235), so `cbindgen.toml` generates the
/// status enum as `SQLPOOL` (constants `SQLPOOL_OK`, ...); this gives the
/// type its real name, `sqlpool_status`, and nothing is left named `SQLPOOL`.
fn name_status_type(header: &str) -> String {
    let mut header = header.to_owned();
    for (from, to) in [
        ("enum SQLPOOL\n", "enum sqlpool_status\n"),
        (
            "typedef uint32_t SQLPOOL;\n",
            "typedef uint32_t sqlpool_status;\n",
        ),
    ] {
        assert_eq!(
            header.matches(from).count(),
            1,
            "cbindgen wrote {from:?} once"
        );
        header = header.replace(from, to);
    }
    let bare = header.match_indices("SQLPOOL").find(|(at, word)| {
        let before = header[..*at].chars().next_back();
        let after = header[at + word.len()..].chars().next();
        ![before, after]
            .into_iter()
            .flatten()
            .any(|c| c.is_ascii_alphanumeric() || c == '_')
    });
    assert!(bare.is_none(), "the header still names a type SQLPOOL");
    header
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
