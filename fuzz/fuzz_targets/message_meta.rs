//! Parses arbitrary bytes as a message at delivery: never panics, and every
//! offset it records lies inside the content.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postamt_wire::meta::{BodyPart, MessageMeta};

fn check(p: &BodyPart, len: u64) {
    assert!(
        p.body_start <= p.body_end && p.body_end <= len,
        "{p:?} {len}"
    );
    for c in &p.parts {
        check(c, len);
    }
    if let Some(m) = &p.message {
        check(&m.1, len);
    }
}

fuzz_target!(|data: &[u8]| {
    let content = postamt_wire::crlf::normalize(data);
    let meta = MessageMeta::parse(&content);
    assert!(meta.header_len <= content.len() as u64);
    check(&meta.body, content.len() as u64);
});
