//! The few DER readers S/MIME needs beyond what OpenSSL exposes: a
//! single TLV step ([`tlv`]), OIDs as text, and the attributes read from a
//! SignedData's bytes (smimeCapabilities, signingTime, the digest
//! algorithms) or recognised at the start of a ContentInfo. They read, they
//! never trust: every length is checked, BER's indefinite form is refused.
//! Kept apart from [`crate::message`], which holds the S/MIME operations.

/// DER of the OIDs id-envelopedData (1.2.840.113549.1.7.3, RFC 5652 §6)
/// and id-ct-authEnvelopedData (1.2.840.113549.1.9.16.1.23, RFC 5083).
pub(crate) const ENVELOPED_DATA: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03,
];
pub(crate) const AUTH_ENVELOPED_DATA: &[u8] = &[
    0x06, 0x0b, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x01, 0x17,
];

/// DER of the digest algorithm OIDs: SHA-1 (1.3.14.3.2.26) and the
/// SHA-2 family (2.16.840.1.101.3.4.2.x).
const SHA1_OID: &[u8] = &[0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a];
const SHA2_PREFIX: &[u8] = &[0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02];

/// Whether a SignedData names SHA-1 and no SHA-2 digest (its
/// digestAlgorithms and signer infos), read from the DER bytes.
pub(crate) fn uses_only_sha1(der: &[u8]) -> bool {
    let has = |needle: &[u8]| der.windows(needle.len()).any(|w| w == needle);
    has(SHA1_OID) && !has(SHA2_PREFIX)
}

/// One DER element at the start of `b`: (tag, contents, what follows).
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let first = *b.get(1)? as usize;
    let (len, header) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None; // indefinite (BER) or absurd
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *b.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    Some((tag, b.get(header..end)?, b.get(end..)?))
}

/// An OBJECT IDENTIFIER's contents as dotted text.
fn oid_text(b: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut n: u64 = 0;
    for &x in b {
        n = (n << 7) | u64::from(x & 0x7f);
        if x & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (n / 40).min(2);
                arcs.push(first);
                arcs.push(n - first * 40);
            } else {
                arcs.push(n);
            }
            n = 0;
        }
    }
    arcs.iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(".")
}

/// The content-encryption algorithms a signer's client announces in the
/// smimeCapabilities attribute (RFC 8551 §2.5.2), in its order of
/// preference, by name (`AES-256-GCM`, `AES-256-CBC`, `3DES`, `RC2-128`
/// …; another algorithm as its dotted OID). Read from the DER bytes of
/// the SignedData; empty when it announces none.
pub fn capabilities(der: &[u8]) -> Vec<String> {
    const OID: &[u8] = &[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x0f,
    ];
    let Some(p) = der.windows(OID.len()).position(|w| w == OID) else {
        return Vec::new();
    };
    // SET { SMIMECapabilities ::= SEQUENCE OF SEQUENCE { OID, params } }
    let Some((0x31, set, _)) = tlv(&der[p + OID.len()..]) else {
        return Vec::new();
    };
    let Some((0x30, mut list, _)) = tlv(set) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    while let Some((0x30, cap, rest)) = tlv(list) {
        list = rest;
        let Some((0x06, oid, params)) = tlv(cap) else {
            continue;
        };
        let bits = match tlv(params) {
            Some((0x02, n, _)) if n.len() <= 4 => {
                Some(n.iter().fold(0u32, |a, &b| (a << 8) | u32::from(b)))
            }
            _ => None,
        };
        let oid = oid_text(oid);
        let name = match oid.as_str() {
            "2.16.840.1.101.3.4.1.2" => "AES-128-CBC".to_string(),
            "2.16.840.1.101.3.4.1.22" => "AES-192-CBC".to_string(),
            "2.16.840.1.101.3.4.1.42" => "AES-256-CBC".to_string(),
            "2.16.840.1.101.3.4.1.6" => "AES-128-GCM".to_string(),
            "2.16.840.1.101.3.4.1.26" => "AES-192-GCM".to_string(),
            "2.16.840.1.101.3.4.1.46" => "AES-256-GCM".to_string(),
            "1.2.840.113549.1.9.16.3.18" => "ChaCha20-Poly1305".to_string(),
            "1.2.840.113549.3.7" => "3DES".to_string(),
            "1.3.14.3.2.7" => "DES".to_string(),
            // RFC 8551 §2.7.1.1: the parameter is the key size in bits.
            "1.2.840.113549.3.2" => format!("RC2-{}", bits.unwrap_or(40)),
            _ => oid,
        };
        out.push(name);
    }
    out
}

/// The signingTime attribute (RFC 5652 §11.3) of a SignedData, seconds
/// since the epoch, read from the DER bytes (UTCTime or GeneralizedTime).
pub fn signing_time(der: &[u8]) -> Option<i64> {
    const OID: &[u8] = &[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x05,
    ];
    let p = der.windows(OID.len()).position(|w| w == OID)? + OID.len();
    // SET { time }
    let rest = der.get(p..)?;
    if rest.first() != Some(&0x31) {
        return None;
    }
    let t = rest.get(2..)?;
    let (tag, len) = (*t.first()?, *t.get(1)? as usize);
    let text = std::str::from_utf8(t.get(2..2 + len)?).ok()?;
    let digits: String = text.trim_end_matches('Z').chars().take(14).collect();
    let (y, rest) = match tag {
        0x17 => {
            let yy: i64 = digits.get(..2)?.parse().ok()?;
            (
                if yy < 50 { 2000 + yy } else { 1900 + yy },
                digits.get(2..)?.to_string(),
            )
        }
        0x18 => (digits.get(..4)?.parse().ok()?, digits.get(4..)?.to_string()),
        _ => return None,
    };
    let n = |i: usize| rest.get(i..i + 2).and_then(|s| s.parse::<i64>().ok());
    let days = postamt_wire::time::days_from_civil(y, n(0)? as u32, n(2)? as u32);
    Some(days * 86_400 + n(4)? * 3600 + n(6)? * 60 + n(8).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x690_tlv_short_long_and_refused_forms() {
        // Short form: tag 0x04, length 2.
        assert_eq!(
            tlv(&[0x04, 2, 7, 8, 9]),
            Some((0x04, &[7u8, 8][..], &[9u8][..]))
        );
        // Long form (X.690 §8.1.3.5): 0x81 then one length byte.
        let mut long = vec![0x04, 0x81, 0x80];
        long.extend([1u8; 0x80]);
        assert_eq!(
            tlv(&long).map(|(_, c, r)| (c.len(), r.len())),
            Some((0x80, 0))
        );
        // Indefinite length (BER only), a truncated body: refused.
        assert_eq!(tlv(&[0x30, 0x80, 0, 0]), None);
        assert_eq!(tlv(&[0x04, 5, 1, 2]), None);
    }

    #[test]
    fn oid_text_reads_the_first_two_arcs_from_one_byte() {
        assert_eq!(oid_text(&ENVELOPED_DATA[2..]), "1.2.840.113549.1.7.3");
        assert_eq!(oid_text(&SHA1_OID[2..]), "1.3.14.3.2.26");
    }
}
