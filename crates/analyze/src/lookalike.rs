//! Domains that look like others: the confusable skeletons of Unicode
//! TR39 §4 (`unicode-security`), an edit distance of one on the ASCII
//! form (`examp1e.org`, `exarnple.org` after the skeleton), and names
//! whose labels mix scripts (TR39 §5.1: Latin with Cyrillic `раypal`).

use unicode_security::{MixedScript, skeleton};

/// The domain in Unicode (U-labels), lower case.
pub fn unicode(domain: &str) -> String {
    let (u, _) = idna::domain_to_unicode(domain.trim_end_matches('.'));
    u.to_lowercase()
}

/// The TR39 skeleton of a domain (after Unicode form): `rn` and `m`,
/// Cyrillic `а` and Latin `a`, `0` and `o` … map to the same string.
pub fn domain_skeleton(domain: &str) -> String {
    skeleton(&unicode(domain))
        .collect::<String>()
        .to_lowercase()
}

/// Whether `candidate` imitates `protected` without being it (or a name
/// under it): same skeleton, or one edit away on the skeleton for names
/// of five characters and more.
pub fn imitates(candidate: &str, protected: &str) -> bool {
    let c = unicode(candidate);
    let p = unicode(protected);
    if c == p || c.ends_with(&format!(".{p}")) {
        return false;
    }
    let (cs, ps) = (domain_skeleton(&c), domain_skeleton(&p));
    if cs == ps {
        return true;
    }
    ps.chars().count() >= 5 && strsim::damerau_levenshtein(&cs, &ps) == 1
}

/// Whether a label of `domain` mixes scripts (TR39 §5.1 single-script
/// test, per label).
pub fn mixed_script(domain: &str) -> bool {
    unicode(domain)
        .split('.')
        .any(|label| !label.is_ascii() && !label.is_single_script())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tr39_confusables_and_near_misses() {
        assert!(imitates("paypa1.com", "paypal.com"));
        assert!(imitates("rnicrosoft.com", "microsoft.com"));
        // Cyrillic а (U+0430) in place of Latin a, as an A-label too.
        assert!(imitates("p\u{0430}ypal.com", "paypal.com"));
        let a_label = idna::domain_to_ascii("p\u{0430}ypal.com").unwrap();
        assert!(imitates(&a_label, "paypal.com"));
        assert!(imitates("examp1e.org", "example.org"));
        assert!(!imitates("example.org", "example.org"));
        assert!(!imitates("mail.example.org", "example.org"));
        assert!(!imitates("github.com", "gitlab.com"), "two edits apart");
        assert!(!imitates("a.io", "b.io"), "too short to judge by one edit");
    }

    #[test]
    fn tr39_5_1_mixed_scripts() {
        assert!(mixed_script("p\u{0430}ypal.com"));
        assert!(!mixed_script("paypal.com"));
        assert!(!mixed_script("bücher.de"));
        assert!(!mixed_script("пример.рф"), "Cyrillic alone is one script");
    }
}
