//! Organizational domains by the Public Suffix List (RFC 7489 §3.2): the
//! registrable domain, one label below the longest public suffix, under
//! the list's rules (wildcards, exceptions, the default rule `*`).
//!
//! DMARC finds organizational domains by the DNS tree walk of RFC 9989
//! §4.10 by default (`dmarc::Discovery::TreeWalk`); this is the older way
//! (`[verify] organizational_domain = "psl"`), with the list compiled into
//! the binary (the `psl` crate, updated with each release) or read from a
//! file in the list's format (`public_suffix_list`, e.g. Debian's
//! `/usr/share/publicsuffix/public_suffix_list.dat`).
//!
//! Names may come as A-labels (`xn--…`) or U-labels; the lookup is made on
//! U-labels (the list's own form) and the answer is the input's own last
//! labels, so an A-label name gets an A-label organizational domain.

use psl::Psl;

/// Where the public suffixes come from.
#[derive(Debug)]
pub enum Suffixes {
    /// The list compiled into the binary.
    Embedded,
    /// A list read from a file.
    File(publicsuffix::List),
}

impl Suffixes {
    /// Reads a list in the Public Suffix List's format.
    pub fn from_file(path: &std::path::Path) -> Result<Suffixes, String> {
        let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let list = publicsuffix::List::from_bytes(&text)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if list.is_empty() {
            return Err(format!("{}: no public suffix rules", path.display()));
        }
        Ok(Suffixes::File(list))
    }

    /// The organizational (registrable) domain of `domain`, lower case;
    /// `None` for a public suffix itself, an empty name or one with an
    /// empty label.
    pub fn organizational(&self, domain: &str) -> Option<String> {
        let domain = domain.strip_suffix('.').unwrap_or(domain);
        if domain.is_empty() || domain.split('.').any(str::is_empty) {
            return None;
        }
        let (unicode, ok) = idna::domain_to_unicode(domain);
        ok.ok()?;
        let found = match self {
            Suffixes::Embedded => psl::List.domain(unicode.as_bytes()),
            Suffixes::File(list) => list.domain(unicode.as_bytes()),
        }?;
        let labels = found.as_bytes().split(|&b| b == b'.').count();
        let input: Vec<&str> = domain.split('.').collect();
        let keep = input.len().checked_sub(labels)?;
        Some(input[keep..].join(".").to_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7489_3_2_registrable_domains() {
        let s = Suffixes::Embedded;
        assert_eq!(
            s.organizational("mail.Example.CO.UK").as_deref(),
            Some("example.co.uk")
        );
        assert_eq!(s.organizational("co.uk"), None);
        assert_eq!(
            s.organizational("example.com.").as_deref(),
            Some("example.com")
        );
        assert_eq!(s.organizational(".example.com"), None);
        assert_eq!(s.organizational(""), None);
        assert_eq!(
            s.organizational("a.xn--85x722f.xn--55qx5d.cn").as_deref(),
            Some("xn--85x722f.xn--55qx5d.cn"),
            "A-labels in, A-labels out"
        );
    }

    #[test]
    fn a_list_from_a_file_replaces_the_embedded_one() {
        let dir = std::env::temp_dir().join(format!("postamt-psl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("list.dat");
        std::fs::write(
            &file,
            "// ===BEGIN ICANN DOMAINS===\ntest\nschool.test\n// ===END ICANN DOMAINS===\n",
        )
        .unwrap();
        let s = Suffixes::from_file(&file).unwrap();
        assert_eq!(
            s.organizational("a.b.school.test").as_deref(),
            Some("b.school.test")
        );
        assert_eq!(
            s.organizational("a.b.other.test").as_deref(),
            Some("other.test")
        );
        std::fs::write(&file, "// nothing\n").unwrap();
        assert!(Suffixes::from_file(&file).is_err());
        assert!(Suffixes::from_file(&dir.join("missing")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
