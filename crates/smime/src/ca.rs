//! A small certificate authority (for a course or an organisation) and the
//! S/MIME certificates it issues (RFC 8550 §3, RFC 5280): the address as
//! rfc822Name subjectAltName, extended key usage emailProtection, key
//! usages for signing and key encipherment (RSA) or key agreement (EC);
//! RSA-2048 or ECDSA P-256. Identities travel as PKCS#12.

use openssl::asn1::{Asn1Integer, Asn1Object, Asn1OctetString, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::{Id, PKey, Private};
use openssl::rsa::Rsa;
use openssl::stack::Stack;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, CrlNumber, ExtendedKeyUsage, KeyUsage,
    SubjectAlternativeName, SubjectKeyIdentifier,
};
use openssl::x509::{
    X509, X509Builder, X509Crl, X509CrlBuilder, X509ExtendedKeyUsage, X509Extension, X509KeyUsage,
    X509NameBuilder, X509RevokedBuilder,
};

use crate::{Error, Result};

/// The key algorithm of a new key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa2048,
    EcP256,
}

impl KeyKind {
    pub fn parse(s: &str) -> Result<KeyKind> {
        match s.to_ascii_lowercase().as_str() {
            "rsa" | "rsa2048" | "rsa-2048" => Ok(KeyKind::Rsa2048),
            "ec" | "ecdsa" | "p256" | "p-256" => Ok(KeyKind::EcP256),
            other => Err(Error(format!(
                "unknown key algorithm {other:?}: use rsa or ec"
            ))),
        }
    }

    fn key(self) -> Result<PKey<Private>> {
        Ok(match self {
            KeyKind::Rsa2048 => PKey::from_rsa(Rsa::generate(2048)?)?,
            KeyKind::EcP256 => {
                let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
                PKey::from_ec_key(EcKey::generate(&group)?)?
            }
        })
    }
}

/// A certificate authority: its certificate and key.
pub struct Ca {
    pub cert: X509,
    pub key: PKey<Private>,
}

/// A certificate with its private key and the chain above it.
pub struct Identity {
    pub cert: X509,
    pub key: PKey<Private>,
    pub chain: Vec<X509>,
}

fn serial() -> Result<Asn1Integer> {
    let mut bn = BigNum::new()?;
    bn.rand(127, MsbOption::MAYBE_ZERO, false)?;
    Ok(bn.to_asn1_integer()?)
}

impl Ca {
    /// A new self-signed CA named `name`, valid for `days`.
    pub fn new(name: &str, kind: KeyKind, days: u32) -> Result<Ca> {
        let key = kind.key()?;
        let mut n = X509NameBuilder::new()?;
        n.append_entry_by_nid(Nid::COMMONNAME, name)?;
        n.append_entry_by_nid(Nid::ORGANIZATIONNAME, name)?;
        let n = n.build();
        let mut b = X509Builder::new()?;
        b.set_version(2)?;
        b.set_serial_number(serial()?.as_ref())?;
        b.set_subject_name(&n)?;
        b.set_issuer_name(&n)?;
        b.set_pubkey(&key)?;
        b.set_not_before(&*Asn1Time::days_from_now(0)?)?;
        b.set_not_after(&*Asn1Time::days_from_now(days)?)?;
        b.append_extension(BasicConstraints::new().critical().ca().pathlen(0).build()?)?;
        b.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()?,
        )?;
        let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(None, None))?;
        b.append_extension(ski)?;
        b.sign(&key, MessageDigest::sha256())?;
        Ok(Ca {
            cert: b.build(),
            key,
        })
    }

    /// Reads a CA from its PEM certificate and key.
    pub fn from_pem(cert: &[u8], key: &[u8]) -> Result<Ca> {
        Ok(Ca {
            cert: X509::from_pem(cert)?,
            key: PKey::private_key_from_pem(key)?,
        })
    }

    /// A certificate revocation list (RFC 5280 §5) of this CA: the
    /// certificates with serial numbers `revoked` (hex, with the time of
    /// revocation in seconds since the epoch), number `number`, issued
    /// `now` and due again in `days`.
    pub fn crl(
        &self,
        revoked: &[(String, i64)],
        number: u64,
        now: i64,
        days: u32,
    ) -> Result<X509Crl> {
        let mut b = X509CrlBuilder::new()?;
        b.set_issuer_name(self.cert.subject_name())?;
        b.set_last_update(&*Asn1Time::from_unix(now)?)?;
        b.set_next_update(&*Asn1Time::from_unix(now + i64::from(days) * 86_400)?)?;
        // authorityKeyIdentifier ::= SEQUENCE { [0] keyIdentifier }
        let kid = self
            .cert
            .subject_key_id()
            .ok_or_else(|| Error("the CA certificate has no subject key identifier".into()))?
            .as_slice()
            .to_vec();
        if kid.len() > 120 {
            return Err(Error("the CA's key identifier is too long".into()));
        }
        let mut aki = vec![0x30, kid.len() as u8 + 2, 0x80, kid.len() as u8];
        aki.extend_from_slice(&kid);
        let oid = Asn1Object::from_str("2.5.29.35")?;
        b.append_extension(X509Extension::new_from_der(
            &oid,
            false,
            &*Asn1OctetString::new_from_bytes(&aki)?,
        )?)?;
        let number = BigNum::from_u32(u32::try_from(number).unwrap_or(u32::MAX))?;
        b.append_extension(CrlNumber::new(number)?.build()?)?;
        for (serial, when) in revoked {
            let n = BigNum::from_hex_str(serial)
                .map_err(|_| Error(format!("{serial:?} is not a hex serial number")))?;
            let mut r = X509RevokedBuilder::new()?;
            r.set_serial_number(&*n.to_asn1_integer()?)?;
            r.set_revocation_date(&*Asn1Time::from_unix(*when)?)?;
            b.add_revoked(r.build())?;
        }
        b.sort()?;
        b.sign(&self.key, MessageDigest::sha256())?;
        Ok(b.build()?)
    }

    /// Issues an S/MIME certificate for `address`, valid for `days`.
    pub fn issue(&self, address: &str, kind: KeyKind, days: u32) -> Result<Identity> {
        let address = address.trim();
        if !address.contains('@') || address.contains(char::is_whitespace) {
            return Err(Error(format!("{address:?} is not a mail address")));
        }
        let key = kind.key()?;
        let mut n = X509NameBuilder::new()?;
        n.append_entry_by_nid(Nid::COMMONNAME, address)?;
        n.append_entry_by_nid(Nid::PKCS9_EMAILADDRESS, address)?;
        let n = n.build();
        let mut b = X509Builder::new()?;
        b.set_version(2)?;
        b.set_serial_number(serial()?.as_ref())?;
        b.set_subject_name(&n)?;
        b.set_issuer_name(self.cert.subject_name())?;
        b.set_pubkey(&key)?;
        b.set_not_before(&*Asn1Time::days_from_now(0)?)?;
        b.set_not_after(&*Asn1Time::days_from_now(days)?)?;
        b.append_extension(BasicConstraints::new().critical().build()?)?;
        let mut usage = KeyUsage::new();
        usage.critical().digital_signature().non_repudiation();
        match kind {
            KeyKind::Rsa2048 => usage.key_encipherment(),
            KeyKind::EcP256 => usage.key_agreement(),
        };
        b.append_extension(usage.build()?)?;
        b.append_extension(ExtendedKeyUsage::new().email_protection().build()?)?;
        let san = SubjectAlternativeName::new()
            .email(address)
            .build(&b.x509v3_context(Some(&self.cert), None))?;
        b.append_extension(san)?;
        let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(Some(&self.cert), None))?;
        b.append_extension(ski)?;
        let aki = AuthorityKeyIdentifier::new()
            .keyid(false)
            .build(&b.x509v3_context(Some(&self.cert), None))?;
        b.append_extension(aki)?;
        b.sign(&self.key, MessageDigest::sha256())?;
        Ok(Identity {
            cert: b.build(),
            key,
            chain: vec![self.cert.clone()],
        })
    }
}

impl Identity {
    /// The identity as PKCS#12 (OpenSSL 3's defaults: AES-256-CBC with
    /// PBKDF2, SHA-256 MAC), with the chain, under `password`.
    pub fn to_pkcs12(&self, password: &str) -> Result<Vec<u8>> {
        self.pkcs12(password, false)
    }

    /// The identity as PKCS#12 the way older tools read it: key and
    /// certificates under PBE-SHA1-3DES, a SHA-1 MAC. gpgsm before 2.2.42
    /// and 2.4.4 cannot read OpenSSL 3's PBES2 (AES-256, hmacWithSHA256),
    /// nor can some older Windows and macOS versions.
    pub fn to_legacy_pkcs12(&self, password: &str) -> Result<Vec<u8>> {
        self.pkcs12(password, true)
    }

    fn pkcs12(&self, password: &str, legacy: bool) -> Result<Vec<u8>> {
        let mut chain = Stack::new()?;
        for c in &self.chain {
            chain.push(c.clone())?;
        }
        let name = addresses(&self.cert).into_iter().next().unwrap_or_default();
        let mut b = Pkcs12::builder();
        b.name(&name).pkey(&self.key).cert(&self.cert).ca(chain);
        if legacy {
            b.key_algorithm(Nid::PBE_WITHSHA1AND3_KEY_TRIPLEDES_CBC)
                .cert_algorithm(Nid::PBE_WITHSHA1AND3_KEY_TRIPLEDES_CBC)
                .mac_md(MessageDigest::sha1());
        }
        Ok(b.build2(password)?.to_der()?)
    }

    /// Reads a PKCS#12 identity.
    /// Files exported by older Windows, macOS and browsers protect the
    /// certificates with RC2-40, which OpenSSL 3 keeps in its "legacy"
    /// provider: it is loaded (beside the default one) when such a file is
    /// met, for reading only (what we write names its algorithms).
    pub fn from_pkcs12(der: &[u8], password: &str) -> Result<Identity> {
        let parse = || {
            Pkcs12::from_der(der)
                .map_err(|e| Error(format!("not a PKCS#12 file: {}", crate::openssl_reason(&e))))?
                .parse2(password)
                .map_err(|e| {
                    let reason = crate::openssl_reason(&e);
                    Error(if reason.contains("unsupported") {
                        format!("cannot open the PKCS#12 file: an algorithm OpenSSL does not support here ({reason})")
                    } else {
                        format!("cannot open the PKCS#12 file (wrong password?): {reason}")
                    })
                })
        };
        let p = match parse() {
            Err(e) if e.0.contains("does not support") && legacy_provider() => parse()?,
            r => r?,
        };
        let (Some(cert), Some(key)) = (p.cert, p.pkey) else {
            return Err(Error(
                "the PKCS#12 file holds no certificate and key".into(),
            ));
        };
        Ok(Identity {
            cert,
            key,
            chain: p.ca.map(|s| s.into_iter().collect()).unwrap_or_default(),
        })
    }
}

/// Loads OpenSSL's legacy provider once (RC2, DES for old PKCS#12
/// files), keeping the default provider; whether it is there.
fn legacy_provider() -> bool {
    static LEGACY: std::sync::OnceLock<Option<openssl::provider::Provider>> =
        std::sync::OnceLock::new();
    LEGACY
        .get_or_init(|| openssl::provider::Provider::try_load(None, "legacy", true).ok())
        .is_some()
}

/// The mail addresses a certificate names: rfc822Name subjectAltNames,
/// then the subject's emailAddress (RFC 8550 §3), lower case.
pub fn addresses(cert: &openssl::x509::X509Ref) -> Vec<String> {
    let mut out: Vec<String> = cert
        .subject_alt_names()
        .map(|names| {
            names
                .iter()
                .filter_map(|n| n.email().map(|e| e.to_ascii_lowercase()))
                .collect()
        })
        .unwrap_or_default();
    for e in cert.subject_name().entries_by_nid(Nid::PKCS9_EMAILADDRESS) {
        if let Ok(s) = e.data().to_string() {
            let s = s.to_ascii_lowercase();
            if !out.contains(&s) {
                out.push(s);
            }
        }
    }
    out
}

/// A certificate checked for encryption to `address` (encryption at
/// rest, `postamt user smime`): it names the address (RFC 8550 §3), is
/// valid at `now`, is meant for e-mail (extended key usage
/// emailProtection, when it has one) and for encryption (key usage
/// keyEncipherment for RSA, keyAgreement for EC, when it has one: RFC
/// 8550 §4.4.2), and OpenSSL can encrypt to its key.
pub fn encryption_certificate(cert: &[u8], address: &str, now: i64) -> Result<X509> {
    let cert = X509::from_pem(cert)
        .or_else(|_| X509::from_der(cert))
        .map_err(|_| Error("not a certificate (PEM or DER)".into()))?;
    let address = address.trim().to_ascii_lowercase();
    let named = addresses(&cert);
    if !named.contains(&address) {
        return Err(Error(format!(
            "the certificate is for {}, not for {address} (RFC 8550 §3)",
            if named.is_empty() {
                "no address".to_string()
            } else {
                named.join(", ")
            }
        )));
    }
    let t = Asn1Time::from_unix(now)?;
    if cert.not_after() < t {
        return Err(Error(format!(
            "the certificate expired on {}",
            cert.not_after()
        )));
    }
    if cert.not_before() > t {
        return Err(Error(format!(
            "the certificate is not valid before {}",
            cert.not_before()
        )));
    }
    if cert
        .extended_key_usage()
        .is_some_and(|x| !x.contains(X509ExtendedKeyUsage::SMIME))
    {
        return Err(Error(
            "the certificate is not for e-mail (no emailProtection in its extended key usage)"
                .into(),
        ));
    }
    let key = cert.public_key()?;
    let needed = match key.id() {
        Id::EC => X509KeyUsage::KEY_AGREEMENT,
        _ => X509KeyUsage::KEY_ENCIPHERMENT,
    };
    if cert.key_usage().is_some_and(|u| !u.contains(needed)) {
        return Err(Error(format!(
            "the certificate's key usage does not allow encryption (needs {})",
            if needed == X509KeyUsage::KEY_AGREEMENT {
                "keyAgreement"
            } else {
                "keyEncipherment"
            }
        )));
    }
    crate::encrypt(
        b"Subject: test\r\n\r\ntest\r\n",
        std::slice::from_ref(&cert),
    )
    .map_err(|e| Error(format!("cannot encrypt to this certificate: {e}")))?;
    Ok(cert)
}

/// A certificate's subject as one line (`CN=…, O=…`).
pub fn subject(cert: &openssl::x509::X509Ref) -> String {
    cert.subject_name()
        .entries()
        .map(|e| {
            let key = e.object().nid().short_name().unwrap_or("?");
            let value = e.data().to_string().unwrap_or_default();
            format!("{key}={value}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8550_3_issued_certificates_name_the_address_and_their_use() {
        for kind in [KeyKind::Rsa2048, KeyKind::EcP256] {
            let ca = Ca::new("Course 2026", kind, 3650).unwrap();
            let id = ca.issue("Alice@Example.org", kind, 365).unwrap();
            assert_eq!(addresses(&id.cert), ["alice@example.org"]);
            assert!(id.cert.verify(&ca.key).unwrap(), "signed by the CA");
            let text = String::from_utf8(id.cert.to_text().unwrap()).unwrap();
            assert!(text.contains("E-mail Protection"), "{text}");
            assert!(text.contains("Digital Signature"), "{text}");
            assert!(text.contains("CA:FALSE"), "{text}");
            let p12 = id.to_pkcs12("secret").unwrap();
            for p12 in [p12, id.to_legacy_pkcs12("secret").unwrap()] {
                let back = Identity::from_pkcs12(&p12, "secret").unwrap();
                assert_eq!(back.cert.to_der().unwrap(), id.cert.to_der().unwrap());
                assert_eq!(
                    back.key.public_key_to_der().unwrap(),
                    id.key.public_key_to_der().unwrap()
                );
                assert_eq!(back.chain.len(), 1);
                assert!(Identity::from_pkcs12(&p12, "wrong").is_err());
            }
        }
        assert!(
            Ca::new("x", KeyKind::Rsa2048, 1)
                .unwrap()
                .issue("no address", KeyKind::Rsa2048, 1)
                .is_err()
        );
        assert!(KeyKind::parse("dsa").is_err());
    }

    #[test]
    fn rfc8550_encryption_certificates_are_checked_for_address_time_and_use() {
        let now = 1_800_000_000;
        let ca = Ca::new("Course", KeyKind::Rsa2048, 3650).unwrap();
        for kind in [KeyKind::Rsa2048, KeyKind::EcP256] {
            let id = ca.issue("bob@example.org", kind, 365).unwrap();
            let pem = id.cert.to_pem().unwrap();
            let der = id.cert.to_der().unwrap();
            let t = Asn1Time::from_unix(0)
                .unwrap()
                .diff(id.cert.not_before())
                .unwrap();
            let issued = i64::from(t.days) * 86400 + i64::from(t.secs);
            for c in [&pem, &der] {
                encryption_certificate(c, "Bob@example.org", issued + 60).unwrap();
            }
            let e = encryption_certificate(&pem, "carol@example.org", issued + 60).unwrap_err();
            assert!(e.0.contains("for bob@example.org, not for carol"), "{e}");
            let e =
                encryption_certificate(&pem, "bob@example.org", issued + 400 * 86400).unwrap_err();
            assert!(e.0.contains("expired"), "{e}");
            let e = encryption_certificate(&pem, "bob@example.org", issued - 86400).unwrap_err();
            assert!(e.0.contains("not valid before"), "{e}");
        }
        // The CA's own certificate names no address and is no e-mail certificate.
        let e =
            encryption_certificate(&ca.cert.to_pem().unwrap(), "bob@example.org", now).unwrap_err();
        assert!(e.0.contains("no address"), "{e}");
        assert!(encryption_certificate(b"garbage", "bob@example.org", now).is_err());
    }
}
