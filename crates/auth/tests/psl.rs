//! The Public Suffix List's own test cases (`../shared/corpus/dmarc/psl/
//! test_psl.txt`, public domain): the organizational domain of each name
//! (RFC 7489 §3.2) with the list compiled into the binary.

use postamt_auth::psl::Suffixes;

fn corpus() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus/dmarc/psl/test_psl.txt")
}

/// `'text'` or `null`.
fn arg(s: &str) -> Option<String> {
    let s = s.trim();
    (s != "null").then(|| s.trim_matches('\'').to_string())
}

/// Cases answered differently, with the reason. The list's exception rule
/// `!city.kobe.jp` (beside `*.kobe.jp`) makes `kobe.jp` the public suffix
/// of `city.kobe.jp`, so `city.kobe.jp` is the registrable domain — as the
/// same file expects for the exception `!www.ck` (`www.ck` → `www.ck`);
/// the file's `kobe.jp` for these two contradicts its own `www.ck` cases
/// and the list's algorithm ("If the prevailing rule is an exception
/// rule, modify it by removing the leftmost label").
const DIFFERENT: &[(&str, &str)] = &[
    ("city.kobe.jp", "city.kobe.jp"),
    ("www.city.kobe.jp", "city.kobe.jp"),
];

#[test]
fn rfc7489_3_2_the_public_suffix_lists_test_cases() {
    let text = std::fs::read_to_string(corpus()).expect("the corpus");
    let suffixes = Suffixes::Embedded;
    let (mut run, mut wrong) = (0, Vec::new());
    for line in text.lines() {
        let Some(call) = line
            .trim()
            .strip_prefix("checkPublicSuffix(")
            .and_then(|l| l.strip_suffix(");"))
        else {
            continue;
        };
        let (input, expected) = call.split_once(", ").expect("two arguments");
        let (input, expected) = (arg(input), arg(expected));
        let got = input.as_deref().and_then(|i| suffixes.organizational(i));
        run += 1;
        if let Some((_, ours)) = DIFFERENT.iter().find(|(i, _)| Some(*i) == input.as_deref()) {
            assert_eq!(
                got.as_deref(),
                Some(*ours),
                "{input:?}: the DIFFERENT list is stale"
            );
            assert_ne!(
                got, expected,
                "{input:?} agrees now: remove it from DIFFERENT"
            );
            continue;
        }
        if got != expected {
            wrong.push(format!("{input:?}: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(run >= 70, "only {run} cases read");
    assert!(
        wrong.is_empty(),
        "{} of {run} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
