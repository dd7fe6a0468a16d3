//! The C snippets the docs quote from compiled examples stay true copies.
//!
//! A block preceded by `<!-- quote bindings/c/examples/FILE REGION -->` must
//! equal the lines between `/* doc:REGION */` and `/* end doc:REGION */` in
//! that file (less their common indentation). The example itself is built
//! and run, under valgrind too, by `make -C bindings/c test`.

use std::path::Path;

const DOCS: &[&str] = &["README.md", "docs/c.md", "docs/bulk.md"];

fn read(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// The region's lines, dedented.
fn region(source: &str, name: &str) -> Option<Vec<String>> {
    let start = format!("/* doc:{name} */");
    let end = format!("/* end doc:{name} */");
    let mut lines = source.lines().skip_while(|l| l.trim() != start);
    lines.next()?;
    let body: Vec<&str> = lines.take_while(|l| l.trim() != end).collect();
    let indent = body
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    Some(
        body.iter()
            .map(|l| l.get(indent..).unwrap_or("").to_owned())
            .collect(),
    )
}

#[test]
fn quoted_c_examples_match_their_source() {
    let mut quotes = 0;
    for doc in DOCS {
        let text = read(doc);
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            let Some(spec) = line
                .trim()
                .strip_prefix("<!-- quote ")
                .and_then(|s| s.strip_suffix(" -->"))
            else {
                continue;
            };
            let (file, name) = spec.split_once(' ').expect("<!-- quote FILE REGION -->");
            assert_eq!(lines.next().map(str::trim), Some("```c"), "{doc}: {spec}");
            let quoted: Vec<String> = lines
                .by_ref()
                .take_while(|l| l.trim() != "```")
                .map(str::to_owned)
                .collect();
            let want = region(&read(file), name)
                .unwrap_or_else(|| panic!("{doc}: no region doc:{name} in {file}"));
            assert_eq!(
                quoted, want,
                "{doc}: the quote of {file} doc:{name} differs"
            );
            quotes += 1;
        }
    }
    // README and docs/c.md each quote the streaming read, the COPY and the
    // LISTEN loop.
    assert!(quotes >= 6, "only {quotes} quoted examples found");
}
