//! Arbitrary bytes through the IMAP framer (in arbitrary chunk sizes) and
//! every framed command through the parser: nothing may panic, memory stays
//! within the framer's limits, and feeding the same bytes in one piece or
//! byte by byte gives the same commands.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postamt_imap::command::parse;
use postamt_imap::frame::{Event, FrameLimits, Framer};

const LIMITS: FrameLimits = FrameLimits {
    max_line: 512,
    max_command: 2048,
    max_append: 4096,
};

fn events(data: &[u8], chunk: usize) -> Vec<Event> {
    let mut f = Framer::new(LIMITS);
    let mut out = Vec::new();
    for piece in data.chunks(chunk.max(1)) {
        let mut rest = piece;
        while !rest.is_empty() {
            let (n, ev) = f.feed(rest);
            rest = &rest[n..];
            if let Some(ev) = ev {
                if let Event::Command(c) = &ev {
                    assert!(c.len() <= LIMITS.max_command + LIMITS.max_append as usize + 64);
                    let _ = parse(c);
                }
                out.push(ev);
            } else if n == 0 {
                break;
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let whole = events(data, data.len());
    let bytewise = events(data, 1);
    assert_eq!(whole, bytewise);
    let _ = parse(data);
});
