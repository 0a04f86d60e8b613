//! Feeds arbitrary bytes, split into lines, to the POP3 core: it must never
//! panic, every reply it renders must be one CRLF-terminated line (or a
//! dot-terminated list), and a login in the middle must not change that.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postamt_pop3::core::{
    CoreConfig, Entry, LoginResult, Maildrop, Pop3Core, Step, render_message,
};
use postamt_store::Uid;

fuzz_target!(|data: &[u8]| {
    let mut core = Pop3Core::new(CoreConfig {
        tls: false,
        tls_available: true,
        plaintext_ok: true,
        max_errors: 50,
    });
    for line in data.split_inclusive(|&b| b == b'\n') {
        let step = match core.line(line) {
            Step::Authenticate { .. } => core.login_result(LoginResult::Ok(Maildrop {
                uidvalidity: 1,
                entries: (1..=3)
                    .map(|u| Entry {
                        uid: Uid(u),
                        size: 10 * u as u64,
                        deleted: false,
                        retrieved: false,
                    })
                    .collect(),
            })),
            s => s,
        };
        if let Step::Reply(r) | Step::Close(r) = &step {
            let mut out = Vec::new();
            r.render(&mut out);
            assert!(out.ends_with(b"\r\n"));
        }
        if matches!(step, Step::Close(_) | Step::Update { .. }) {
            break;
        }
    }
    // The renderer: output always ends with the terminator, and no line of
    // the body is a lone dot.
    let mut out = Vec::new();
    render_message(data, None, &mut out);
    assert!(out.ends_with(b".\r\n"));
    let body = &out[..out.len() - 3];
    assert!(
        !body
            .split(|&b| b == b'\n')
            .any(|l| l == b"." || l == b".\r")
    );
});
