//! Signed and encrypted messages (RFC 8551): `multipart/signed` with an
//! `application/pkcs7-signature` (detached, SHA-256) or an opaque
//! `application/pkcs7-mime; smime-type=signed-data`; EnvelopedData with
//! AES-256-CBC as `smime-type=enveloped-data`. The outer header fields
//! (From, To, Subject …) stay outside the protected entity, as RFC 8551
//! does without RFC 9788 header protection — and the verification says so.

// A layer that could not be opened is reported as fully as one that could:
// the error side of these results is a whole `Layer`, by design.
#![allow(clippy::result_large_err)]

use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::stack::Stack;
use openssl::symm;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::{CrlStatus, X509, X509Crl, X509PurposeId, X509Ref};
use serde::Serialize;

use crate::ca::{Identity, addresses, subject};
use crate::der::{AUTH_ENVELOPED_DATA, ENVELOPED_DATA, uses_only_sha1};
pub use crate::der::{capabilities, signing_time};
use crate::mime::{self, ContentType};
use crate::{Error, Result};

/// Most nested S/MIME layers unwrapped.
pub const MAX_LAYERS: usize = 8;

fn boundary(tag: &str) -> String {
    let mut b = [0u8; 12];
    let _ = openssl::rand::rand_bytes(&mut b);
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("postamt-{tag}-{hex}")
}

/// How deep multiparts inside multiparts are re-encoded.
const MAX_PART_DEPTH: usize = 20;

/// The entity made 7-bit safe (RFC 8551 §3.1.2: a relay that re-encodes
/// 8-bit content would break the signature): every 8-bit or long-lined
/// leaf part is re-encoded as base64, a multipart part by part (its
/// structure and boundaries kept, an 8-bit preamble or epilogue left
/// out). An 8-bit `message/*` part is refused: RFC 2046 §5.2.1 allows it
/// no base64.
fn seven_bit_entity(entity: Vec<u8>) -> Result<Vec<u8>> {
    if mime::seven_bit(&entity) {
        return Ok(entity);
    }
    seven_bit_part(&entity, 0)
}

/// The header fields of `entity` before `start`, without its
/// Content-Transfer-Encoding.
fn fields_without_cte(entity: &[u8], start: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for r in postamt_wire::meta::header_fields(entity) {
        if r.start < start && !postamt_wire::meta::field_is(entity, &r, "Content-Transfer-Encoding")
        {
            out.extend_from_slice(&entity[r]);
        }
    }
    out
}

fn seven_bit_part(entity: &[u8], depth: usize) -> Result<Vec<u8>> {
    if mime::seven_bit(entity) {
        return Ok(entity.to_vec());
    }
    let ct = ContentType::parse(&mime::field(entity, "Content-Type").unwrap_or_default());
    let start = mime::body_start(entity);
    if ct.mime.starts_with("multipart/") {
        let Some(b) = ct.param("boundary") else {
            return Err(Error("a multipart part without a boundary".into()));
        };
        if depth >= MAX_PART_DEPTH {
            return Err(Error(format!(
                "multiparts nested more than {MAX_PART_DEPTH} deep"
            )));
        }
        let parts = mime::multipart_parts(&entity[start..], b)
            .ok_or_else(|| Error("a multipart part without its parts".into()))?;
        // A multipart's own encoding may only be 7bit, 8bit or binary
        // (RFC 2045 §6.4): without the field it is 7bit, as it now is.
        let mut out = fields_without_cte(entity, start);
        out.extend_from_slice(b"\r\n");
        for p in parts {
            out.extend_from_slice(format!("--{b}\r\n").as_bytes());
            out.extend_from_slice(&seven_bit_part(p, depth + 1)?);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("--{b}--\r\n").as_bytes());
        return Ok(out);
    }
    if ct.mime.starts_with("message/") {
        return Err(Error(format!(
            "an 8-bit {} part cannot be re-encoded (RFC 2046 §5.2.1 allows it no base64): attach it as application/octet-stream",
            ct.mime
        )));
    }
    let mut out = fields_without_cte(entity, start);
    out.extend_from_slice(b"Content-Transfer-Encoding: base64\r\n\r\n");
    out.extend_from_slice(mime::base64_lines(&entity[start..]).as_bytes());
    Ok(out)
}

/// Signs `message` (a whole message, or a MIME entity) with `id`: the
/// entity (Content-* fields and body, made 7-bit safe) is signed, the
/// other fields stay outside. `opaque`: signed-data carrying the content.
pub fn sign(message: &[u8], id: &Identity, opaque: bool) -> Result<Vec<u8>> {
    let message = mime::canonical(message);
    let (outer, entity) = mime::split(&message);
    let entity = seven_bit_entity(entity)?;
    let mut chain = Stack::new()?;
    for c in &id.chain {
        chain.push(c.clone())?;
    }
    // BINARY: the entity is canonical already (CRLF), sign it as it is.
    let mut flags = CMSOptions::BINARY;
    if !opaque {
        flags |= CMSOptions::DETACHED;
    }
    let cms = CmsContentInfo::sign(
        Some(&id.cert),
        Some(&id.key),
        Some(&chain),
        Some(&entity),
        flags,
    )?;
    let der = cms.to_der()?;
    let mut out = outer;
    out.extend_from_slice(b"MIME-Version: 1.0\r\n");
    if opaque {
        out.extend_from_slice(
            b"Content-Type: application/pkcs7-mime; smime-type=signed-data; name=\"smime.p7m\"\r\n\
              Content-Transfer-Encoding: base64\r\n\
              Content-Disposition: attachment; filename=\"smime.p7m\"\r\n\r\n",
        );
        out.extend_from_slice(mime::base64_lines(&der).as_bytes());
        return Ok(out);
    }
    let b = boundary("signed");
    out.extend_from_slice(
        format!(
            "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256;\r\n\tboundary=\"{b}\"\r\n\r\n\
             This is a signed message (S/MIME, RFC 8551).\r\n--{b}\r\n"
        )
        .as_bytes(),
    );
    out.extend_from_slice(&entity);
    out.extend_from_slice(
        format!(
            "\r\n--{b}\r\nContent-Type: application/pkcs7-signature; name=\"smime.p7s\"\r\n\
             Content-Transfer-Encoding: base64\r\n\
             Content-Disposition: attachment; filename=\"smime.p7s\"\r\n\r\n"
        )
        .as_bytes(),
    );
    out.extend_from_slice(mime::base64_lines(&der).as_bytes());
    out.extend_from_slice(format!("--{b}--\r\n").as_bytes());
    Ok(out)
}

/// Encrypts `message`'s entity to `recipients` (EnvelopedData,
/// AES-256-CBC, RFC 8551 §2.7); the other fields stay outside.
pub fn encrypt(message: &[u8], recipients: &[X509]) -> Result<Vec<u8>> {
    encrypt_with(message, recipients, Cipher::Aes256Cbc)
}

/// [`encrypt`] with the content encryption `cipher`: a GCM cipher makes
/// AuthEnvelopedData (RFC 5083, RFC 5084; `smime-type=authEnveloped-data`,
/// RFC 8551 §3.2.2), which OpenSSL 3 writes for an AEAD cipher.
pub fn encrypt_with(message: &[u8], recipients: &[X509], cipher: Cipher) -> Result<Vec<u8>> {
    if recipients.is_empty() {
        return Err(Error("no recipient certificate".into()));
    }
    let message = mime::canonical(message);
    let (outer, entity) = mime::split(&message);
    let mut certs = Stack::new()?;
    for c in recipients {
        certs.push(c.clone())?;
    }
    let (evp, smime_type) = match cipher {
        Cipher::Aes256Cbc => (symm::Cipher::aes_256_cbc(), "enveloped-data"),
        Cipher::Aes128Gcm => (symm::Cipher::aes_128_gcm(), "authEnveloped-data"),
        Cipher::Aes256Gcm => (symm::Cipher::aes_256_gcm(), "authEnveloped-data"),
    };
    let cms = CmsContentInfo::encrypt(&certs, &entity, evp, CMSOptions::BINARY)?;
    let der = cms.to_der()?;
    let mut out = outer;
    out.extend_from_slice(
        format!(
            "MIME-Version: 1.0\r\n\
             Content-Type: application/pkcs7-mime; smime-type={smime_type}; name=\"smime.p7m\"\r\n\
             Content-Transfer-Encoding: base64\r\n\
             Content-Disposition: attachment; filename=\"smime.p7m\"\r\n\r\n"
        )
        .as_bytes(),
    );
    out.extend_from_slice(mime::base64_lines(&der).as_bytes());
    Ok(out)
}

/// Whether `message` is encrypted at its top: `smime-type=enveloped-data`
/// or `authEnveloped-data`, or an `application/pkcs7-mime` without
/// `smime-type` whose CMS content type says so.
pub fn is_encrypted(message: &[u8]) -> bool {
    let message = mime::canonical(message);
    match kind(&message) {
        (Kind::Enveloped, _) => true,
        (Kind::Opaque, ct) if ct.param("smime-type").is_none() => {
            // ContentInfo ::= SEQUENCE { contentType OID, ... } (RFC 5652
            // §3): the OID is within the first bytes.
            let head = mime::base64_body(&message).unwrap_or_default();
            let head = &head[..head.len().min(24)];
            [ENVELOPED_DATA, AUTH_ENVELOPED_DATA]
                .iter()
                .any(|oid| head.windows(oid.len()).any(|w| w == *oid))
        }
        _ => false,
    }
}

/// Encryption at rest: `message` encrypted to the certificate `cert_pem`
/// (as [`encrypt`] does: the entity is encrypted, the other header fields
/// stay readable), or `None` when it is encrypted already.
pub fn encrypt_at_rest(message: &[u8], cert_pem: &[u8]) -> Result<Option<Vec<u8>>> {
    if is_encrypted(message) {
        return Ok(None);
    }
    let cert = X509::from_pem(cert_pem).map_err(|e| {
        Error(format!(
            "the stored certificate: {}",
            crate::openssl_reason(&e)
        ))
    })?;
    encrypt(message, &[cert]).map(Some)
}

/// What a layer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Detached,
    Opaque,
    Enveloped,
    Plain,
}

fn kind(message: &[u8]) -> (Kind, ContentType) {
    let ct = ContentType::parse(&mime::field(message, "Content-Type").unwrap_or_default());
    let k = match ct.mime.as_str() {
        "multipart/signed" => Kind::Detached,
        "application/pkcs7-mime" | "application/x-pkcs7-mime" => {
            match ct.param("smime-type").map(|s| s.to_ascii_lowercase()) {
                Some(t) if t == "signed-data" => Kind::Opaque,
                Some(t) if t == "enveloped-data" || t == "authenveloped-data" => Kind::Enveloped,
                // Without smime-type, the name says (`smime.p7m` is both):
                // try as signed first, then as enveloped.
                _ => Kind::Opaque,
            }
        }
        _ => Kind::Plain,
    };
    (k, ct)
}

/// Decrypts an enveloped message with `id`: the outer fields and the
/// decrypted entity, as one message.
pub fn decrypt(message: &[u8], id: &Identity) -> Result<Vec<u8>> {
    let message = mime::canonical(message);
    let (k, _) = kind(&message);
    if k != Kind::Enveloped && k != Kind::Opaque {
        return Err(Error(
            "not an encrypted message (application/pkcs7-mime)".into(),
        ));
    }
    let der = mime::base64_body(&message)
        .ok_or_else(|| Error("the encrypted body is not base64".into()))?;
    let cms = CmsContentInfo::from_der(&der)
        .map_err(|e| Error(format!("not CMS: {}", crate::openssl_reason(&e))))?;
    let entity = cms.decrypt(&id.key, &id.cert).map_err(|e| {
        let reason = crate::openssl_reason(&e);
        let why = match not_checkable(&reason) {
            Some(why) => why,
            None if reason.contains("no matching recipient") => {
                "not encrypted to this certificate, or to it with a key agreement OpenSSL does not support"
            }
            None => "not encrypted to this certificate?",
        };
        Error(format!("cannot decrypt: {why} ({reason})"))
    })?;
    let (outer, _) = mime::split(&message);
    let mut out = outer;
    out.extend_from_slice(&entity);
    Ok(out)
}

/// The outcome of a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The signature matches the content and the certificate chains to a
    /// trusted CA.
    Valid,
    /// The signature does not match the content (changed, or forged).
    Invalid,
    /// The signature matches, but the certificate is not trusted
    /// (unknown CA, expired, not yet valid, not for e-mail).
    Untrusted,
    /// Not signed, or not checkable (encrypted without a key, garbage).
    NotSigned,
    /// The signature matches, but this verifier does not accept it:
    /// SHA-1 (RFC 8551 §2.1), a signature around an encrypted layer (the
    /// signer need not have seen the content), a signing time after the
    /// message's Date:.
    Policy,
}

/// One layer of a message, outermost first.
#[derive(Debug, Clone, Serialize)]
pub struct Layer {
    /// `signed (detached)`, `signed (opaque)`, `encrypted`.
    pub kind: String,
    pub status: Status,
    pub detail: String,
    pub signer: Option<String>,
    pub signer_addresses: Vec<String>,
    pub not_after: Option<String>,
    /// The signer's certificate (PEM), for a certificate store.
    #[serde(skip)]
    pub signer_pem: Option<Vec<u8>>,
    /// When the signer says it signed (RFC 5652 signingTime), seconds
    /// since the epoch.
    pub signing_time: Option<i64>,
    /// The content encryption the signer's client announces it can read
    /// (smimeCapabilities, RFC 8551 §2.5.2), in its order of preference.
    pub capabilities: Vec<String>,
}

/// What [`verify`] found.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// The verdict on the whole: the worst of the signed layers.
    pub status: Status,
    pub layers: Vec<Layer>,
    /// The `From:` address, and whether a signer's certificate names it
    /// (RFC 8550 §3).
    pub from: Option<String>,
    pub from_matches: Option<bool>,
    /// RFC 8551 without RFC 9788: the outer Subject, From, To are not
    /// covered by the signature.
    pub headers_protected: bool,
    /// The innermost content, once every layer that could be opened is.
    #[serde(skip)]
    pub content: Vec<u8>,
}

/// Whether `message` is S/MIME at its top (signed or encrypted).
pub fn is_smime(message: &[u8]) -> bool {
    kind(&mime::canonical(message)).0 != Kind::Plain
}

impl Verification {
    /// What was found, a line per fact, for a person: each layer with its
    /// signer and certificate, whether From: is the signer's, and that the
    /// outer header fields are not protected. The verdict line is the
    /// caller's.
    pub fn details(&self) -> String {
        let mut out = String::new();
        for (i, l) in self.layers.iter().enumerate() {
            out.push_str(&format!("  layer {}: {} — {}\n", i + 1, l.kind, l.detail));
            if let Some(s) = &l.signer {
                out.push_str(&format!(
                    "    signer: {s} ({})\n",
                    l.signer_addresses.join(", ")
                ));
            }
            if let Some(n) = &l.not_after {
                out.push_str(&format!("    certificate valid until {n}\n"));
            }
            if let Some(t) = l.signing_time.and_then(|t| u64::try_from(t).ok()) {
                out.push_str(&format!(
                    "    signed at {} (the signer's own clock: RFC 5652 signingTime)\n",
                    postamt_wire::time::rfc5322_date(t)
                ));
            }
            if !l.capabilities.is_empty() {
                out.push_str(&format!(
                    "    the signer's client reads: {} (SMIMECapabilities)\n",
                    l.capabilities.join(", ")
                ));
            }
        }
        match (&self.from, self.from_matches) {
            (Some(f), Some(true)) => {
                out.push_str(&format!("  From: {f} is the signer's address\n"))
            }
            (Some(f), Some(false)) => out.push_str(&format!(
                "  From: {f} is NOT an address of the signer's certificate (RFC 8550 §3)\n"
            )),
            _ => {}
        }
        if !self.layers.is_empty() {
            out.push_str("  The header fields outside the signed part (Subject, From, To) are not protected by the signature (RFC 8551; no RFC 9788 header protection).\n");
        }
        out
    }
}

/// Verifies `message`: every signed layer (nested ones too, decrypting
/// with `id` where one is given), against the trusted CAs `trust` at
/// `at` (seconds since the epoch; now when `None`).
pub fn verify(
    message: &[u8],
    trust: &[X509],
    at: Option<i64>,
    id: Option<&Identity>,
) -> Verification {
    verify_with_crls(message, trust, &[], at, id)
}

/// What a signer's certificate is checked against.
#[derive(Clone, Copy)]
struct Anchors<'a> {
    cas: &'a [X509],
    crls: &'a [X509Crl],
}

/// [`verify`], with certificate revocation lists (RFC 5280 §5): a signer
/// whose certificate a CRL revokes is not trusted. A CRL counts when it
/// is signed by one of the trusted CAs `trust` that issued the
/// certificate.
pub fn verify_with_crls(
    message: &[u8],
    trust: &[X509],
    crls: &[X509Crl],
    at: Option<i64>,
    id: Option<&Identity>,
) -> Verification {
    let trust = Anchors { cas: trust, crls };
    let message = mime::canonical(message);
    let from = mime::field(&message, "From").and_then(|f| {
        let f = f
            .rsplit('<')
            .next()
            .unwrap_or(&f)
            .trim_end_matches('>')
            .trim()
            .to_ascii_lowercase();
        f.contains('@').then_some(f)
    });
    let mut layers = Vec::new();
    let mut current = message.clone();
    for _ in 0..MAX_LAYERS {
        let (k, ct) = kind(&current);
        let step = match k {
            Kind::Plain => break,
            Kind::Detached => detached(&current, &ct, trust, at),
            Kind::Opaque => opaque(&current, trust, at, id),
            Kind::Enveloped => enveloped(&current, id),
        };
        match step {
            Ok((mut layer, inner)) => {
                // A signature around an encrypted layer vouches for
                // ciphertext only (Thunderbird ignores it too).
                if layer.kind.starts_with("signed")
                    && layer.status == Status::Valid
                    && inner.as_ref().is_some_and(|i| kind(i).0 == Kind::Enveloped)
                {
                    layer.status = Status::Policy;
                    layer.detail = "the signature wraps an encrypted part: the signer need not have seen the content, so it is not counted".into();
                }
                layers.push(layer);
                match inner {
                    Some(inner) => current = mime::canonical(&inner),
                    None => break,
                }
            }
            Err(layer) => {
                layers.push(layer);
                break;
            }
        }
    }
    if layers.len() == MAX_LAYERS {
        layers.push(Layer {
            kind: "nested".into(),
            status: Status::NotSigned,
            detail: format!("more than {MAX_LAYERS} nested layers: the rest was not opened"),
            signer: None,
            signer_addresses: vec![],
            not_after: None,
            signer_pem: None,
            signing_time: None,
            capabilities: Vec::new(),
        });
    }
    // A signing time more than an hour away from the message's Date: is
    // a signature not made when the message says.
    let date = mime::field(&message, "Date")
        .and_then(|d| mail_parser::DateTime::parse_rfc822(&d))
        .filter(|d| d.is_valid())
        .map(|d| d.to_timestamp());
    for l in &mut layers {
        if l.status == Status::Valid
            && let (Some(signed_at), Some(date)) = (l.signing_time, date)
            && (signed_at - date).abs() > 3600
        {
            l.status = Status::Policy;
            l.detail = "the signing time and the message's Date: differ by more than an hour: the signature was not made when the message says (as Thunderbird judges it)".into();
        }
    }
    // RFC 8550 §3: the signer's certificate must name the From: address;
    // a signature by someone else does not vouch for this sender.
    if let Some(f) = &from {
        for l in &mut layers {
            if l.kind.starts_with("signed")
                && l.status == Status::Valid
                && !l.signer_addresses.iter().any(|a| a == f)
            {
                l.status = Status::Policy;
                l.detail = format!(
                    "the signer's certificate ({}) does not name the From: address {f} (RFC 8550 §3)",
                    l.signer_addresses.join(", ")
                );
            }
        }
    }
    let signed: Vec<&Layer> = layers
        .iter()
        .filter(|l| l.kind.starts_with("signed"))
        .collect();
    let status = if signed.is_empty() {
        Status::NotSigned
    } else if signed.iter().any(|l| l.status == Status::Invalid) {
        Status::Invalid
    } else if signed.iter().any(|l| l.status == Status::Untrusted) {
        Status::Untrusted
    } else if signed.iter().any(|l| l.status == Status::Policy) {
        Status::Policy
    } else if signed.iter().all(|l| l.status == Status::Valid) {
        Status::Valid
    } else {
        Status::NotSigned
    };
    let from_matches = from.as_ref().and_then(|f| {
        (!signed.is_empty()).then(|| {
            signed
                .iter()
                .any(|l| l.signer_addresses.iter().any(|a| a == f))
        })
    });
    Verification {
        status,
        layers,
        from,
        from_matches,
        headers_protected: false,
        content: current,
    }
}

fn layer(kind: &str, status: Status, detail: String) -> Layer {
    Layer {
        kind: kind.into(),
        status,
        detail,
        signer: None,
        signer_addresses: vec![],
        not_after: None,
        signer_pem: None,
        signing_time: None,
        capabilities: Vec::new(),
    }
}

/// Checks a signature: first its mathematics (does it match the
/// content?), then the signer's certificate (chain, validity, purpose).
fn check(
    der: &[u8],
    detached: Option<&[u8]>,
    what: &str,
    trust: Anchors,
    at: Option<i64>,
) -> std::result::Result<(Layer, Vec<u8>), Layer> {
    let mut cms = CmsContentInfo::from_der(der).map_err(|e| {
        layer(
            what,
            Status::NotSigned,
            format!("the signature is not CMS: {}", crate::openssl_reason(&e)),
        )
    })?;
    let mut content = Vec::new();
    if let Err(e) = cms.verify(
        None,
        None,
        detached,
        Some(&mut content),
        CMSOptions::NOVERIFY | CMSOptions::BINARY,
    ) {
        let reason = crate::openssl_reason(&e);
        // Only a signature that was checked and failed is INVALID; one
        // that cannot be checked here is no verdict on the message.
        if let Some(why) = not_checkable(&reason) {
            return Err(layer(
                what,
                Status::NotSigned,
                format!("not checkable: {why} ({reason})"),
            ));
        }
        let invalid = layer(
            what,
            Status::Invalid,
            format!(
                "INVALID: the signature does not match the content — the message was changed after signing, or the signature is forged ({})",
                crate::openssl_reason(&e)
            ),
        );
        // A detached signature's content is at hand: it is shown (and
        // opened further), under the INVALID verdict.
        return match detached {
            Some(content) => Ok((invalid, content.to_vec())),
            None => Err(invalid),
        };
    }
    let mut l = layer(what, Status::Valid, String::new());
    let mut revoked = None;
    l.signing_time = signing_time(der);
    l.capabilities = capabilities(der);
    if let Ok(p7) = Pkcs7::from_der(der)
        && let Ok(empty) = Stack::new()
        && let Ok(signers) = p7.signers(&empty, Pkcs7Flags::empty())
        && let Some(cert) = signers.iter().next()
    {
        l.signer = Some(subject(cert));
        l.signer_addresses = addresses(cert);
        l.not_after = Some(cert.not_after().to_string());
        l.signer_pem = cert.to_pem().ok();
        revoked = revocation(cert, trust);
    }
    let trusted = (|| -> std::result::Result<(), String> {
        let mut store = X509StoreBuilder::new().map_err(|e| e.to_string())?;
        for c in trust.cas {
            store.add_cert(c.clone()).map_err(|e| e.to_string())?;
        }
        let mut param = openssl::x509::verify::X509VerifyParam::new().map_err(|e| e.to_string())?;
        param
            .set_purpose(X509PurposeId::SMIME_SIGN)
            .map_err(|e| e.to_string())?;
        if let Some(t) = at {
            param.set_time(t as _);
            param
                .set_flags(X509VerifyFlags::USE_CHECK_TIME)
                .map_err(|e| e.to_string())?;
        }
        store.set_param(&param).map_err(|e| e.to_string())?;
        let store = store.build();
        let mut again = CmsContentInfo::from_der(der).map_err(|e| e.to_string())?;
        again
            .verify(None, Some(&store), detached, None, CMSOptions::BINARY)
            .map_err(|e| crate::openssl_reason(&e))
    })();
    match trusted {
        Ok(()) if revoked.is_some() => {
            l.status = Status::Untrusted;
            l.detail = format!(
                "the content is as signed, but the certificate was REVOKED: {}",
                revoked.unwrap_or_default()
            );
        }
        Ok(()) if uses_only_sha1(der) => {
            l.status = Status::Policy;
            l.detail =
                "signed with SHA-1, which is no longer accepted (RFC 8551 §2.1): refused by policy"
                    .into();
        }
        Ok(()) => {
            l.detail =
                "valid: the content is as signed, and the certificate chains to a trusted CA"
                    .into();
        }
        Err(why) => {
            l.status = Status::Untrusted;
            l.detail =
                format!("the content is as signed, but the certificate is not trusted: {why}");
        }
    }
    Ok((l, content))
}

/// Why OpenSSL could not check a signature at all, from its error
/// reasons: an algorithm it does not support (Ed25519 in CMS on OpenSSL
/// 3.0, ChaCha20-Poly1305, …), no certificate of the signer in the
/// message, or a detached signature without its content. `None`: the
/// check ran and failed.
fn not_checkable(reason: &str) -> Option<&'static str> {
    let r = reason.to_ascii_lowercase();
    if r.contains("signer certificate not found") {
        Some("the signer's certificate is not in the message")
    } else if r.contains("no content") {
        Some("a detached signature without the content it signs")
    } else if [
        "invalid digest",
        "unsupported",
        "unknown digest",
        "unknown cipher",
        "unknown algorithm",
        "no such algorithm",
        "not supported",
    ]
    .iter()
    .any(|n| r.contains(n))
    {
        Some("unsupported algorithm")
    } else {
        None
    }
}

/// Whether a CRL in `a`, signed by the trusted CA that issued `cert`,
/// revokes it: when and by whom, in words.
fn revocation(cert: &X509Ref, a: Anchors) -> Option<String> {
    let issuer = cert.issuer_name().to_der().ok()?;
    let cert = cert.to_owned();
    for crl in a.crls {
        if crl.issuer_name().to_der().ok().as_deref() != Some(&issuer[..]) {
            continue;
        }
        let Some(ca) = a
            .cas
            .iter()
            .find(|c| c.subject_name().to_der().ok().as_deref() == Some(&issuer[..]))
        else {
            continue;
        };
        let signed_by_ca = ca
            .public_key()
            .and_then(|k| crl.verify(&k))
            .unwrap_or(false);
        if !signed_by_ca {
            continue;
        }
        if let CrlStatus::Revoked(r) = crl.get_by_cert(&cert) {
            return Some(format!(
                "revoked on {} (in the revocation list of {})",
                r.revocation_date(),
                subject(ca)
            ));
        }
    }
    None
}

type Step = std::result::Result<(Layer, Option<Vec<u8>>), Layer>;

/// The content encryption of [`encrypt_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cipher {
    /// EnvelopedData with AES-256-CBC: what every S/MIME client reads.
    Aes256Cbc,
    /// AuthEnvelopedData (RFC 5083, RFC 5084) with AES-128-GCM.
    Aes128Gcm,
    /// AuthEnvelopedData with AES-256-GCM.
    Aes256Gcm,
}

impl Cipher {
    pub fn parse(s: &str) -> Result<Cipher> {
        match s.to_ascii_lowercase().as_str() {
            "aes-256-cbc" | "aes256-cbc" => Ok(Cipher::Aes256Cbc),
            "aes-128-gcm" | "aes128-gcm" => Ok(Cipher::Aes128Gcm),
            "aes-256-gcm" | "aes256-gcm" => Ok(Cipher::Aes256Gcm),
            _ => Err(Error(format!(
                "unknown cipher {s:?}: aes-256-cbc, aes-128-gcm or aes-256-gcm"
            ))),
        }
    }

    /// What every recipient can read (RFC 8551 §2.7.1: an algorithm all
    /// of them announced): AES-256-GCM when all announce it, AES-128-GCM
    /// when all announce a GCM (RFC 8551 §2.7 makes AES-128-GCM a MUST),
    /// otherwise AES-256-CBC. `None` for a recipient whose capabilities
    /// are not known (a certificate given on the command line).
    pub fn for_recipients<'a>(caps: impl IntoIterator<Item = Option<&'a [String]>>) -> Cipher {
        let (mut all256, mut all_gcm, mut any) = (true, true, false);
        for c in caps {
            any = true;
            let c = c.unwrap_or(&[]);
            let has = |n: &str| c.iter().any(|x| x == n);
            all256 &= has("AES-256-GCM");
            all_gcm &= has("AES-256-GCM") || has("AES-128-GCM");
        }
        match (any, all256, all_gcm) {
            (true, true, _) => Cipher::Aes256Gcm,
            (true, false, true) => Cipher::Aes128Gcm,
            _ => Cipher::Aes256Cbc,
        }
    }
}

fn detached(message: &[u8], ct: &ContentType, trust: Anchors, at: Option<i64>) -> Step {
    let what = "signed (detached)";
    let Some(b) = ct.param("boundary") else {
        return Err(layer(
            what,
            Status::NotSigned,
            "multipart/signed without a boundary".into(),
        ));
    };
    let body = &message[mime::body_start(message)..];
    let Some((entity, signature)) = mime::signed_parts(body, b) else {
        return Err(layer(
            what,
            Status::NotSigned,
            "multipart/signed without its two parts".into(),
        ));
    };
    let Some(der) = mime::base64_body(signature) else {
        return Err(layer(
            what,
            Status::NotSigned,
            "the signature part is not base64".into(),
        ));
    };
    let (l, _) = check(&der, Some(entity), what, trust, at)?;
    let (outer, _) = mime::split(message);
    let mut inner = outer;
    inner.extend_from_slice(entity);
    Ok((l, Some(inner)))
}

fn opaque(message: &[u8], trust: Anchors, at: Option<i64>, id: Option<&Identity>) -> Step {
    let Some(der) = mime::base64_body(message) else {
        return Err(layer(
            "signed (opaque)",
            Status::NotSigned,
            "the body is not base64".into(),
        ));
    };
    // smime.p7m without smime-type may be enveloped.
    if let Ok(cms) = CmsContentInfo::from_der(&der)
        && let Ok(p7) = Pkcs7::from_der(&der)
        && p7.type_().map(|t| t.nid()) == Some(openssl::nid::Nid::PKCS7_ENVELOPED)
    {
        drop(cms);
        return enveloped(message, id);
    }
    let (l, content) = check(&der, None, "signed (opaque)", trust, at)?;
    let (outer, _) = mime::split(message);
    let mut inner = outer;
    inner.extend_from_slice(&content);
    Ok((l, Some(inner)))
}

fn enveloped(message: &[u8], id: Option<&Identity>) -> Step {
    let what = "encrypted";
    let Some(id) = id else {
        return Err(layer(
            what,
            Status::NotSigned,
            "encrypted: no key given to open it (--identity)".into(),
        ));
    };
    match decrypt(message, id) {
        Ok(inner) => Ok((
            layer(
                what,
                Status::Valid,
                "decrypted with the given identity".into(),
            ),
            Some(inner),
        )),
        Err(e) => Err(layer(what, Status::NotSigned, e.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::{Ca, KeyKind};

    const MSG: &[u8] = b"From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nSubject: hi\r\n\r\nHello Bob.\r\n";

    fn setup() -> (Ca, Identity, Identity) {
        let ca = Ca::new("Test CA", KeyKind::EcP256, 30).unwrap();
        let alice = ca.issue("alice@example.org", KeyKind::Rsa2048, 30).unwrap();
        let bob = ca.issue("bob@example.org", KeyKind::Rsa2048, 30).unwrap();
        (ca, alice, bob)
    }

    #[test]
    fn rfc8551_sign_verify_detached_and_opaque() {
        let (ca, alice, _) = setup();
        for opaque in [false, true] {
            let signed = sign(MSG, &alice, opaque).unwrap();
            let v = verify(&signed, std::slice::from_ref(&ca.cert), None, None);
            assert_eq!(v.status, Status::Valid, "{v:?}");
            assert_eq!(v.from_matches, Some(true));
            assert_eq!(v.layers[0].signer_addresses, ["alice@example.org"]);
            assert!(v.content.ends_with(b"Hello Bob.\r\n"));
            // Unknown CA: the mathematics holds, the trust does not.
            let v = verify(&signed, &[], None, None);
            assert_eq!(v.status, Status::Untrusted, "{v:?}");
        }
        let signed = sign(MSG, &alice, false).unwrap();
        let tampered = String::from_utf8(signed)
            .unwrap()
            .replace("Hello Bob.", "Hello Eve.");
        let v = verify(
            tampered.as_bytes(),
            std::slice::from_ref(&ca.cert),
            None,
            None,
        );
        assert_eq!(v.status, Status::Invalid);
        assert!(v.layers[0].detail.starts_with("INVALID"));
        assert_eq!(
            verify(MSG, std::slice::from_ref(&ca.cert), None, None).status,
            Status::NotSigned
        );
    }

    #[test]
    fn rfc8551_encrypt_decrypt_and_sign_then_encrypt() {
        let (ca, alice, bob) = setup();
        let enc = encrypt(
            &sign(MSG, &alice, false).unwrap(),
            &[bob.cert.clone(), alice.cert.clone()],
        )
        .unwrap();
        assert!(!enc.windows(10).any(|w| w == b"Hello Bob."), "encrypted");
        let plain = decrypt(&enc, &bob).unwrap();
        assert!(plain.starts_with(b"From: Alice <alice@example.org>"));
        let v = verify(&enc, std::slice::from_ref(&ca.cert), None, Some(&bob));
        assert_eq!(v.layers.len(), 2, "{v:?}");
        assert_eq!(v.status, Status::Valid);
        let eve = ca.issue("eve@example.org", KeyKind::Rsa2048, 30).unwrap();
        assert!(decrypt(&enc, &eve).is_err());
        assert_eq!(
            verify(&enc, std::slice::from_ref(&ca.cert), None, None).status,
            Status::NotSigned
        );
    }

    #[test]
    fn rfc8550_expired_and_other_addresses() {
        let (ca, alice, _) = setup();
        let signed = sign(MSG, &alice, false).unwrap();
        let later = 4_102_444_800; // 2100
        let v = verify(&signed, std::slice::from_ref(&ca.cert), Some(later), None);
        assert_eq!(v.status, Status::Untrusted);
        assert!(
            v.layers[0].detail.contains("expired"),
            "{}",
            v.layers[0].detail
        );
        let forged_from = String::from_utf8(signed)
            .unwrap()
            .replace("From: Alice <alice@example.org>", "From: ceo@example.org");
        let v = verify(
            forged_from.as_bytes(),
            std::slice::from_ref(&ca.cert),
            None,
            None,
        );
        // The From: is outside the signature, and the certificate does not
        // name it: refused (RFC 8550 §3).
        assert_eq!(
            v.status,
            Status::Policy,
            "the From: is outside the signature"
        );
        assert_eq!(v.from_matches, Some(false));
    }

    /// RFC 8551 §3.1.2: a multipart with 8-bit parts is signed with each
    /// 8-bit leaf re-encoded as base64 (nested multiparts too), the 7-bit
    /// parts and the structure untouched; it verifies, and the decoded
    /// parts are the originals.
    #[test]
    fn rfc8551_3_1_2_multipart_with_8bit_parts_is_made_7bit_part_by_part() {
        let (ca, _, bob) = setup();
        let m = "From: bob@example.org\r\nSubject: mixed\r\nMIME-Version: 1.0\r\n\
                 Content-Type: multipart/mixed; boundary=\"outer\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
                 pr\u{e4}amble\r\n--outer\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nplain part\r\n\
                 --outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n\
                 --inner\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGr\u{fc}\u{df}e\r\n\
                 --inner\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Gr\u{fc}\u{df}e</p>\r\n--inner--\r\n\
                 --outer--\r\n";
        for opaque in [false, true] {
            let signed = sign(m.as_bytes(), &bob, opaque).unwrap();
            assert!(signed.is_ascii(), "{}", String::from_utf8_lossy(&signed));
            let v = verify(&signed, std::slice::from_ref(&ca.cert), None, None);
            assert_eq!(v.status, Status::Valid, "{v:?}");
            let inner = String::from_utf8(v.content.clone()).unwrap();
            assert!(inner.contains("\r\n--outer\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nplain part\r\n--outer\r\n"), "{inner}");
            assert!(
                !inner.contains("Content-Transfer-Encoding: 8bit"),
                "{inner}"
            );
            assert!(
                !inner.contains("amble"),
                "the 8-bit preamble is left out: {inner}"
            );
            let parsed = mail_parser::MessageParser::default()
                .parse(v.content.as_slice())
                .unwrap();
            let texts: Vec<String> = parsed
                .parts
                .iter()
                .filter_map(|p| match &p.body {
                    mail_parser::PartType::Text(t) | mail_parser::PartType::Html(t) => {
                        Some(t.to_string())
                    }
                    _ => None,
                })
                .collect();
            // RFC 2046 §5.1.1: the CRLF before a delimiter is the delimiter's.
            assert_eq!(
                texts,
                ["plain part", "Gr\u{fc}\u{df}e", "<p>Gr\u{fc}\u{df}e</p>"],
                "{inner}"
            );
        }
    }

    /// RFC 5083/5084: AuthEnvelopedData with AES-GCM, and the choice of
    /// the cipher from the recipients' SMIMECapabilities (RFC 8551
    /// §2.7.1); our own signatures announce OpenSSL's list.
    #[test]
    fn rfc5083_auth_enveloped_gcm_and_the_choice_from_capabilities() {
        let (ca, alice, bob) = setup();
        for c in [Cipher::Aes128Gcm, Cipher::Aes256Gcm] {
            let sealed = encrypt_with(MSG, std::slice::from_ref(&bob.cert), c).unwrap();
            let text = String::from_utf8_lossy(&sealed);
            assert!(text.contains("smime-type=authEnveloped-data"), "{text}");
            assert!(is_encrypted(&sealed));
            assert!(decrypt(&sealed, &bob).unwrap().ends_with(b"Hello Bob.\r\n"));
            assert!(decrypt(&sealed, &alice).is_err());
            let v = verify(&sealed, std::slice::from_ref(&ca.cert), None, Some(&bob));
            assert_eq!(v.layers[0].kind, "encrypted");
        }
        let signed = sign(MSG, &alice, false).unwrap();
        let v = verify(&signed, std::slice::from_ref(&ca.cert), None, None);
        assert_eq!(
            v.layers[0].capabilities.first().map(String::as_str),
            Some("AES-256-CBC"),
            "{v:?}"
        );
        let gcm256 = vec!["AES-256-GCM".to_string(), "AES-256-CBC".to_string()];
        let gcm128 = vec!["AES-128-GCM".to_string()];
        let cbc = vec!["AES-256-CBC".to_string()];
        let pick = |caps: &[Option<&[String]>]| Cipher::for_recipients(caps.iter().copied());
        assert_eq!(pick(&[Some(&gcm256), Some(&gcm256)]), Cipher::Aes256Gcm);
        assert_eq!(pick(&[Some(&gcm256), Some(&gcm128)]), Cipher::Aes128Gcm);
        assert_eq!(pick(&[Some(&gcm256), Some(&cbc)]), Cipher::Aes256Cbc);
        assert_eq!(pick(&[Some(&gcm256), None]), Cipher::Aes256Cbc);
        assert_eq!(pick(&[]), Cipher::Aes256Cbc);
        assert_eq!(Cipher::parse("AES-256-GCM").unwrap(), Cipher::Aes256Gcm);
        assert!(Cipher::parse("des").is_err());
    }

    #[test]
    fn bad_input_is_refused_in_words() {
        let (ca, _, bob) = setup();
        let garbage = b"Content-Type: application/pkcs7-mime; smime-type=signed-data\r\n\r\nnot base64 !!\r\n";
        assert_eq!(
            verify(garbage, std::slice::from_ref(&ca.cert), None, None).status,
            Status::NotSigned
        );
        let junk =
            b"Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n\r\nQUJDRA==\r\n";
        assert!(decrypt(junk, &bob).unwrap_err().0.starts_with("not CMS"));
        let rfc822 = b"From: a@example.org\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: message/rfc822\r\n\r\nSubject: \xc3\xa4\r\n\r\nx\r\n--x--\r\n";
        let e = sign(rfc822, &bob, false).unwrap_err();
        assert!(e.0.contains("message/rfc822"), "{e}");
        let single =
            b"From: bob@example.org\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\xc3\xa4\r\n";
        let s = sign(single, &bob, false).unwrap();
        assert!(s.is_ascii(), "8-bit text re-encoded as base64");
        assert_eq!(
            verify(&s, std::slice::from_ref(&ca.cert), None, None).status,
            Status::Valid
        );
    }
}
