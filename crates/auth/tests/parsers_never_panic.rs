//! Hostile records from DNS (RFC 7208 §4.6.1, §7.1; RFC 7489 §6.4): random
//! text made of the characters that matter to the grammars, and some that
//! do not belong, goes through the SPF and DMARC parsers and the SPF
//! evaluator; each answers (a record, an error, a result) and none panics.
//! The same inputs as fuzz/fuzz_targets/auth_records.rs, a fixed number of
//! them.

use postamt_auth::dns::{Record, Zone};
use postamt_auth::spf::{Limits, Request, verify_mail_from};
use postamt_auth::{dmarc, spf};

const ALPHABET: &[&str] = &[
    "v=spf1",
    "v=DMARC1",
    " ",
    " ",
    ";",
    "%",
    "%{",
    "}",
    "%{d}",
    "%{ir}",
    "%{l1r-}",
    "%_",
    "%-",
    "%%",
    ":",
    "/",
    "//",
    "=",
    ".",
    "-",
    "+",
    "~",
    "?",
    "a",
    "mx",
    "ptr",
    "ip4:",
    "ip6:",
    "include:",
    "exists:",
    "redirect=",
    "exp=",
    "all",
    "p=",
    "sp=",
    "np=",
    "reject",
    "psd=y",
    "rua=mailto:",
    "!10m",
    ",",
    "0",
    "9",
    "33",
    "128",
    "x.example",
    "é",
    "\u{202e}",
    "\t",
    "\"",
];

#[test]
fn random_records_get_an_answer_not_a_panic() {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let req = Request {
        ip: "192.0.2.1".parse().unwrap(),
        helo: "h.example",
        receiver: "mx.example",
        now: 0,
    };
    for round in 0..4000 {
        let len = (next() % 24) as usize;
        let text: String = (0..len)
            .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
            .collect();
        let _ = spf::parse(&text);
        let _ = spf::parse(&format!("v=spf1 {text}"));
        let _ = dmarc::parse(&text);
        let _ = dmarc::parse(&format!("v=DMARC1; {text}"));
        if round % 8 == 0 {
            let mut z = Zone::new();
            z.add("x.example", Some(Record::Txt(format!("v=spf1 {text}"))));
            let v = rt.block_on(verify_mail_from(&z, &req, "a@x.example", Limits::default()));
            assert!(!v.reason.is_empty(), "{text:?}");
        }
    }
}
