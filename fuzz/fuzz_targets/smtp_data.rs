//! Arbitrary bytes as message content: through the DATA receiver whole and
//! byte by byte (the same bytes consumed, the same verdict, and what
//! `received` shows is what `finish` returns), and through the BDAT
//! receiver in chunks whose sizes come from the input, fed in pieces:
//! every chunk consumed exactly, nothing kept past the size limit, and the
//! verdict the whole message deserves.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postamt_smtp::data::{BdatReceiver, DataReceiver, Flaw};
use postamt_wire::meta::header_len;

fuzz_target!(|data: &[u8]| {
    let [a, b, rest @ ..] = data else { return };
    let max = 1 + *a as usize * 16;
    let max_header = 1 + *b as usize * 4;

    let mut whole = DataReceiver::new(max, max_header);
    let n_whole = whole.feed(rest);
    let mut bytes = DataReceiver::new(max, max_header);
    let mut n_bytes = 0;
    for byte in rest {
        if bytes.is_done() {
            break;
        }
        n_bytes += bytes.feed(std::slice::from_ref(byte));
    }
    assert_eq!(n_whole, n_bytes);
    assert_eq!(whole.is_done(), bytes.is_done());
    let shown = whole.received().map(<[u8]>::to_vec);
    let verdict = whole.finish();
    assert_eq!(verdict, bytes.finish());
    if let Some(shown) = shown {
        assert_eq!(Ok(shown), verdict);
    }

    // BDAT: each chunk is a size byte and that many bytes (the last one
    // may be cut short and is then the rest).
    let mut chunks = Vec::new();
    let mut input = rest;
    while let Some((&size, after)) = input.split_first() {
        let size = (size as usize % 64).min(after.len());
        chunks.push(&after[..size]);
        input = &after[size..];
    }
    let mut r = BdatReceiver::new(max, max_header);
    let piece = 1 + *b as usize % 7;
    for chunk in &chunks {
        r.begin_chunk(chunk.len() as u64);
        let mut at = 0;
        while !r.chunk_done() {
            let end = chunk.len().min(at + piece);
            at += r.feed(&chunk[at..end]);
        }
        assert_eq!(at, chunk.len());
        assert!(r.kept() <= max);
    }
    let message: Vec<u8> = chunks.concat();
    let expect = if message.len() > max {
        Err(Flaw::TooBig)
    } else if header_len(&message) > max_header {
        Err(Flaw::HeaderTooBig)
    } else if !postamt_wire::crlf::is_clean(&message) {
        Err(Flaw::BareLineEnding)
    } else {
        Ok(message)
    };
    assert_eq!(r.finish(), expect);
});
