//! DKIM (RFC 6376; Ed25519 per RFC 8463) for outbound mail: keys kept as
//! files under `<data_dir>/dkim/<domain>/<selector>.pem`, the active
//! selector named in `<data_dir>/dkim/<domain>/active`, signing with
//! mail-auth, and verifying (for `postamt dkim verify` and tests).
//!
//! mail-auth 0.13.3 keeps trailing whitespace-only lines in relaxed body
//! canonicalization, which RFC 6376 §3.4.4 says to drop, so its body hash
//! of such a body differs from every other implementation's. We sign a copy
//! with those lines removed — the same body under relaxed canonicalization
//! — and send the original; when verifying, a body-hash mismatch is tried
//! again on the stripped copy.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use base64::Engine;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::generate::DkimKeyPair;
use mail_auth::dkim::{Canonicalization, DkimSigner};

/// Headers signed when present (RFC 6376 §5.4.1's recommendation).
pub const SIGNED_HEADERS: &[&str] = &[
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "List-Id",
    "List-Unsubscribe",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Rsa2048,
    Ed25519,
}

/// A key as loaded from its PEM file.
enum Key {
    Rsa(RsaKey<Sha256>),
    Ed25519(Ed25519Key),
}

/// A generated key: where it was written and the TXT record to publish.
pub struct Generated {
    pub key_file: PathBuf,
    /// `selector._domainkey.domain`
    pub record_name: String,
    /// `v=DKIM1; k=…; p=…`
    pub record: String,
}

/// Creates a key for `domain` under `dir` (`<data_dir>/dkim`), makes it
/// the active one, and returns the DNS record to publish.
pub fn generate(
    dir: &Path,
    domain: &str,
    selector: &str,
    algo: Algorithm,
) -> Result<Generated, String> {
    check_label(domain, "domain")?;
    check_label(selector, "selector")?;
    let domain = domain.to_ascii_lowercase();
    let (pem, public, k) = match algo {
        Algorithm::Rsa2048 => {
            let pair = DkimKeyPair::generate_rsa(2048).map_err(|e| e.to_string())?;
            // DNS carries a SubjectPublicKeyInfo, as openssl and every
            // verifier expect (RFC 6376 §3.6.1).
            let spki = rsa_spki(pair.public_key());
            (
                pem_encode("RSA PRIVATE KEY", pair.private_key()),
                spki,
                "rsa",
            )
        }
        Algorithm::Ed25519 => {
            let pair = DkimKeyPair::generate_ed25519().map_err(|e| e.to_string())?;
            (
                pem_encode("PRIVATE KEY", pair.private_key()),
                pair.public_key().to_vec(),
                "ed25519",
            )
        }
    };
    let domain_dir = dir.join(&domain);
    std::fs::create_dir_all(&domain_dir).map_err(|e| format!("{}: {e}", domain_dir.display()))?;
    let key_file = domain_dir.join(format!("{selector}.pem"));
    if key_file.exists() {
        return Err(format!(
            "{} exists: choose another selector (keys are never overwritten)",
            key_file.display()
        ));
    }
    write_private(&key_file, pem.as_bytes())?;
    let record = format!(
        "v=DKIM1; k={k}; p={}",
        base64::engine::general_purpose::STANDARD.encode(public)
    );
    std::fs::write(
        domain_dir.join(format!("{selector}.txt")),
        format!("{record}\n"),
    )
    .map_err(|e| e.to_string())?;
    std::fs::write(domain_dir.join("active"), format!("{selector}\n"))
        .map_err(|e| e.to_string())?;
    Ok(Generated {
        key_file,
        record_name: format!("{selector}._domainkey.{domain}"),
        record,
    })
}

/// Every domain with an active key: (domain, selector, DNS record).
pub fn list(dir: &Path) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let domain = e.file_name().to_string_lossy().into_owned();
        let Ok(selector) = std::fs::read_to_string(e.path().join("active")) else {
            continue;
        };
        let selector = selector.trim().to_string();
        let record = std::fs::read_to_string(e.path().join(format!("{selector}.txt")))
            .unwrap_or_default()
            .trim()
            .to_string();
        out.push((domain, selector, record));
    }
    out.sort();
    out
}

fn check_label(s: &str, what: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        && !s.starts_with('.')
        && !s.contains("..");
    if ok {
        Ok(())
    } else {
        Err(format!("invalid {what} {s:?}"))
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(bytes).map_err(|e| e.to_string())?;
    f.sync_all().map_err(|e| e.to_string())
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn pem_decode(pem: &str) -> Option<(String, Vec<u8>)> {
    let mut label = None;
    let mut b64 = String::new();
    for line in pem.lines() {
        let line = line.trim();
        if let Some(l) = line.strip_prefix("-----BEGIN ") {
            label = Some(l.trim_end_matches('-').to_string());
        } else if line.starts_with("-----END ") {
            break;
        } else if label.is_some() {
            b64.push_str(line);
        }
    }
    let der = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    Some((label?, der))
}

/// Wraps a PKCS#1 RSAPublicKey into a SubjectPublicKeyInfo (RFC 5280
/// §4.1.2.7, algorithm rsaEncryption).
fn rsa_spki(pkcs1: &[u8]) -> Vec<u8> {
    fn der_len(n: usize, out: &mut Vec<u8>) {
        if n < 0x80 {
            out.push(n as u8);
        } else {
            let bytes: Vec<u8> = n
                .to_be_bytes()
                .into_iter()
                .skip_while(|&b| b == 0)
                .collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend(bytes);
        }
    }
    const ALGORITHM: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bit_string = vec![0x03];
    der_len(pkcs1.len() + 1, &mut bit_string);
    bit_string.push(0);
    bit_string.extend_from_slice(pkcs1);
    let mut out = vec![0x30];
    der_len(ALGORITHM.len() + bit_string.len(), &mut out);
    out.extend_from_slice(ALGORITHM);
    out.extend(bit_string);
    out
}

fn load_key(pem: &str) -> Result<Key, String> {
    use rustls_pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer};
    let (label, der) = pem_decode(pem).ok_or("not PEM")?;
    let bad = |e: mail_auth::Error| e.to_string();
    if label == "RSA PRIVATE KEY" {
        let der = PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(der));
        return RsaKey::<Sha256>::from_key_der(der)
            .map(Key::Rsa)
            .map_err(bad);
    }
    match RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        der.clone(),
    ))) {
        Ok(k) => Ok(Key::Rsa(k)),
        Err(_) => Ed25519Key::from_pkcs8_maybe_unchecked_der(&der)
            .map(Key::Ed25519)
            .map_err(bad),
    }
}

struct Cached {
    domain: String,
    selector: String,
    modified: SystemTime,
    /// The PEM text (a key object cannot be shared: the signer owns it).
    pem: std::sync::Arc<str>,
}

/// Signs outbound mail with the active key of the author's domain.
pub struct Signer {
    dir: PathBuf,
    cache: Mutex<Vec<Cached>>,
}

impl Signer {
    pub fn new(dir: PathBuf) -> Signer {
        Signer {
            dir,
            cache: Mutex::new(Vec::new()),
        }
    }

    /// The active (selector, key) of `domain`, re-read when its file
    /// changes (keys made by `postamt dkim keygen` while the server runs
    /// take effect with the next message).
    fn key(&self, domain: &str) -> Option<(String, Key)> {
        let ddir = self.dir.join(domain);
        let selector = std::fs::read_to_string(ddir.join("active")).ok()?;
        let selector = selector.trim().to_string();
        let file = ddir.join(format!("{selector}.pem"));
        let modified = std::fs::metadata(&file).and_then(|m| m.modified()).ok()?;
        let mut cache = self.cache.lock().ok()?;
        if let Some(c) = cache
            .iter()
            .find(|c| c.domain == domain && c.selector == selector && c.modified == modified)
        {
            let pem = std::sync::Arc::clone(&c.pem);
            drop(cache);
            return load_key(&pem).ok().map(|k| (selector, k));
        }
        let pem: std::sync::Arc<str> = std::fs::read_to_string(&file).ok()?.into();
        let key = match load_key(&pem) {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(domain, file = %file.display(), error = %e, "DKIM key unusable; sending unsigned");
                return None;
            }
        };
        cache.retain(|c| c.domain != domain);
        cache.push(Cached {
            domain: domain.to_string(),
            selector: selector.clone(),
            modified,
            pem,
        });
        Some((selector, key))
    }

    /// A `DKIM-Signature:` header field (CRLF-terminated) for `message`,
    /// signed for `domain`, or `None` when that domain has no key.
    pub fn sign(&self, domain: &str, message: &[u8]) -> Option<Vec<u8>> {
        let domain = domain.to_ascii_lowercase();
        let (selector, key) = self.key(&domain)?;
        let canonical = strip_trailing_blank_lines(message);
        let result = match key {
            Key::Rsa(k) => sign_with(DkimSigner::from_key(k), &domain, &selector, &canonical),
            Key::Ed25519(k) => sign_with(DkimSigner::from_key(k), &domain, &selector, &canonical),
        };
        match result {
            Ok(h) => Some(h.into_bytes()),
            Err(e) => {
                tracing::warn!(domain, error = %e, "DKIM signing failed; sending unsigned");
                None
            }
        }
    }
}

impl Signer {
    /// Three ARC header fields (RFC 8617 §4.1, CRLF-terminated, to go on
    /// top of `message`) sealing it as `domain` with its active key, as a
    /// mailing list or forwarder does (§5.1): the ARC-Authentication-Results
    /// carry `results`, the verdicts on the message as it arrived; the
    /// ARC-Message-Signature signs the message as it leaves; the ARC-Seal
    /// signs the chain, `cv=` from `arc`, the chain as it arrived. A chain
    /// that arrived failed is not sealed (§5.1.2).
    pub fn arc_seal(
        &self,
        domain: &str,
        message: &[u8],
        results: &mail_auth::AuthenticationResults<'_>,
        arc: &mail_auth::ArcOutput<'_>,
    ) -> Result<Vec<u8>, String> {
        let domain = domain.to_ascii_lowercase();
        let (selector, key) = self
            .key(&domain)
            .ok_or_else(|| format!("{domain} has no DKIM key (postamt dkim keygen {domain})"))?;
        let canonical = strip_trailing_blank_lines(message);
        let parsed = mail_auth::AuthenticatedMessage::parse(&canonical)
            .ok_or("the message cannot be parsed")?;
        let set = match key {
            Key::Rsa(k) => seal_with(
                mail_auth::arc::ArcSealer::from_key(k),
                &domain,
                &selector,
                &parsed,
                results,
                arc,
            ),
            Key::Ed25519(k) => seal_with(
                mail_auth::arc::ArcSealer::from_key(k),
                &domain,
                &selector,
                &parsed,
                results,
                arc,
            ),
        };
        set.map_err(|e| e.to_string())
    }
}

fn seal_with<T: mail_auth::common::crypto::SigningKey<Hasher = Sha256>>(
    sealer: mail_auth::arc::ArcSealer<T, mail_auth::dkim::NeedDomain>,
    domain: &str,
    selector: &str,
    message: &mail_auth::AuthenticatedMessage<'_>,
    results: &mail_auth::AuthenticationResults<'_>,
    arc: &mail_auth::ArcOutput<'_>,
) -> Result<Vec<u8>, mail_auth::Error> {
    let set = sealer
        .domain(domain)
        .selector(selector)
        .headers(SIGNED_HEADERS.iter().copied())
        .header_canonicalization(Canonicalization::Relaxed)
        .body_canonicalization(Canonicalization::Relaxed)
        .seal(message, results, arc)?;
    Ok(set.to_header().into_bytes())
}

fn sign_with<T: mail_auth::common::crypto::SigningKey>(
    signer: DkimSigner<T, mail_auth::dkim::NeedDomain>,
    domain: &str,
    selector: &str,
    message: &[u8],
) -> Result<String, mail_auth::Error> {
    let signature = signer
        .domain(domain)
        .selector(selector)
        .headers(SIGNED_HEADERS.iter().copied())
        .header_canonicalization(Canonicalization::Relaxed)
        .body_canonicalization(Canonicalization::Relaxed)
        .sign(message)?;
    Ok(signature.to_header())
}

pub use postamt_auth::dkim::{Verdict, strip_trailing_blank_lines, verify};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spki_wraps_pkcs1() {
        // A 2048-bit PKCS#1 key is 270 octets: SPKI adds 24.
        let fake = vec![0x30u8; 270];
        let spki = rsa_spki(&fake);
        assert_eq!(spki.len(), 294);
        assert_eq!(&spki[..4], &[0x30, 0x82, 0x01, 0x22]);
        assert_eq!(&spki[19..24], &[0x03, 0x82, 0x01, 0x0f, 0x00]);
    }

    #[test]
    fn ed25519_keygen_sign_and_pem_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let g = generate(dir.path(), "Example.org", "s1", Algorithm::Ed25519).unwrap();
        assert_eq!(g.record_name, "s1._domainkey.example.org");
        assert!(g.record.starts_with("v=DKIM1; k=ed25519; p="));
        assert!(generate(dir.path(), "example.org", "s1", Algorithm::Ed25519).is_err());
        let signer = Signer::new(dir.path().to_path_buf());
        let h = signer
            .sign(
                "example.org",
                b"From: a@example.org\r\nSubject: x\r\n\r\nhi\r\n",
            )
            .unwrap();
        let h = String::from_utf8(h).unwrap();
        assert!(h.starts_with("DKIM-Signature: "), "{h}");
        assert!(
            h.contains("d=example.org") && h.contains("s=s1") && h.contains("a=ed25519-sha256")
        );
        assert!(
            signer
                .sign("other.org", b"From: a@other.org\r\n\r\n")
                .is_none()
        );
        assert_eq!(list(dir.path())[0].0, "example.org");
        assert!(generate(dir.path(), "../etc", "s", Algorithm::Ed25519).is_err());
    }
}
