//! SEARCH HEADER is narrowed by the full-text index's header text (store
//! search.rs): that is only exact if every value `header_values` renders
//! for a message's own header field also stands, line for line, in the
//! header text `extract` gives. Checked for every field of every real
//! message in the shared corpus (`../shared/corpus/**/*.eml`).

use postamt_wire::meta::{header_len, safe_to_parse};
use postamt_wire::search::{extract, header_values};

fn messages(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            messages(&p, out);
        } else if p.extension().is_some_and(|x| x == "eml") {
            out.push(p);
        }
    }
}

#[test]
fn header_values_stand_in_the_indexed_header_text() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus");
    let mut files = Vec::new();
    messages(&root, &mut files);
    assert!(files.len() > 100, "corpus not found at {}", root.display());
    let mut fields = 0;
    for f in &files {
        let content = std::fs::read(f).unwrap();
        if !safe_to_parse(&content) {
            continue; // marked unparsed by the indexer: always read
        }
        let indexed = extract(&content).headers.to_lowercase();
        let header = &content[..header_len(&content)];
        let Some(parsed) = mail_parser::MessageParser::default().parse_headers(header) else {
            continue;
        };
        let mut names: Vec<String> = parsed
            .headers()
            .iter()
            .map(|h| h.name().to_string())
            .collect();
        names.sort();
        names.dedup();
        for name in names {
            let Some(values) = header_values(header, &name) else {
                continue;
            };
            for line in values.to_lowercase().lines().filter(|l| !l.is_empty()) {
                fields += 1;
                assert!(
                    indexed.contains(line),
                    "{}: {name}: {line:?} is not in the indexed header text",
                    f.display()
                );
            }
        }
    }
    assert!(fields > 1000, "only {fields} fields checked");
}
