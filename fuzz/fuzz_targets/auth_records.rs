//! Arbitrary text as SPF records, SPF macro strings and DMARC records
//! (RFC 7208 §4.6.1 and §7.1, RFC 7489 §6.4): the parsers must answer
//! with a record or an error, never panic, whatever arrives from DNS.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postamt_auth::{dmarc, spf};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = spf::parse(&format!("v=spf1 {text}"));
    let _ = spf::parse(&text);
    let _ = dmarc::parse(&text);
    let _ = dmarc::parse(&format!("v=DMARC1; {text}"));
});
