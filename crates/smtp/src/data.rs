//! Receivers for message content, side by side: [`DataReceiver`] for DATA
//! with dot-unstuffing (RFC 5321 §4.5.2) and its end `<CRLF>.<CRLF>`
//! (§4.1.1.4), hardened against SMTP smuggling: only a dot line that
//! follows a real CRLF and is followed by a real CRLF ends the message, and
//! any bare CR or bare LF is reported so the message can be refused
//! (CVE-2023-51764 and its family); [`BdatReceiver`] for BDAT chunks
//! (RFC 3030), read by length, with the same limits and the same refusal
//! of bare line endings. Oversized input is drained, not buffered.
//! Sans-IO: bytes in, a verdict out.

use postamt_wire::meta::header_len;

/// Why a received message cannot be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flaw {
    /// Bigger than the size limit (RFC 1870): drained, not kept.
    TooBig,
    /// Header block bigger than its limit.
    HeaderTooBig,
    /// A bare CR or bare LF was seen.
    BareLineEnding,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a line that followed a CRLF (or the first line).
    LineStart,
    /// At the start of a line that followed a bare LF: a dot here never ends
    /// the message.
    LineStartAfterBare,
    /// A dot at the start of a clean line.
    Dot,
    /// `.` CR at the start of a clean line.
    DotCr,
    /// Inside a line.
    Mid,
    /// Inside a line, after a CR.
    Cr,
    Done,
}

/// Accumulates one DATA message.
#[derive(Debug)]
pub struct DataReceiver {
    state: State,
    content: Vec<u8>,
    max_size: usize,
    max_header: usize,
    /// Bytes of content seen (kept or not).
    seen: usize,
    in_header: bool,
    header_line_empty: bool,
    flaw: Option<Flaw>,
    bare: bool,
}

impl DataReceiver {
    pub fn new(max_size: usize, max_header: usize) -> DataReceiver {
        DataReceiver {
            state: State::LineStart,
            content: Vec::new(),
            max_size,
            max_header,
            seen: 0,
            in_header: true,
            header_line_empty: true,
            flaw: None,
            bare: false,
        }
    }

    /// Feeds bytes; returns how many were consumed. Once the end of data was
    /// consumed, [`DataReceiver::is_done`] is true and the rest of the input
    /// (pipelined commands) is left unconsumed.
    pub fn feed(&mut self, input: &[u8]) -> usize {
        let mut i = 0;
        while i < input.len() {
            // Bulk path for the body: at the start of a clean line, the
            // whole lines up to the next one that starts with a dot (or to
            // the last line end in the input) are taken at once if they have
            // no bare CR or LF. Anything else — a dot line, a bare line end,
            // a partial line, the header block — goes byte by byte below.
            if self.state == State::LineStart && !self.in_header && input[i] != b'.' {
                let rest = &input[i..];
                let end = match memchr::memmem::find(rest, b"\r\n.") {
                    Some(p) => p + 2,
                    None => memchr::memrchr(b'\n', rest).map_or(0, |q| q + 1),
                };
                if end > 0 && postamt_wire::crlf::is_clean(&rest[..end]) {
                    self.push_slice(&rest[..end]);
                    self.header_line_empty = true;
                    i += end;
                    continue;
                }
            }
            let b = input[i];
            // Fast path: inside a line, copy up to the next CR or LF at once.
            if self.state == State::Mid && b != b'\r' && b != b'\n' {
                let rest = &input[i..];
                let run = memchr::memchr2(b'\r', b'\n', rest).unwrap_or(rest.len());
                self.push_slice(&rest[..run]);
                self.header_line_empty = false;
                i += run;
                continue;
            }
            i += 1;
            let i = i - 1;
            match self.state {
                State::Done => return i,
                State::LineStart => match b {
                    b'.' => self.state = State::Dot,
                    _ => self.state = self.byte(b, State::Mid),
                },
                State::LineStartAfterBare => self.state = self.byte(b, State::Mid),
                State::Dot => match b {
                    b'\r' => self.state = State::DotCr,
                    // "." then LF: a bare LF; the dot line ends nothing.
                    _ => {
                        // RFC 5321 §4.5.2: the first dot of a line with
                        // more characters is deleted.
                        self.state = self.byte(b, State::Mid);
                    }
                },
                State::DotCr => match b {
                    b'\n' => {
                        self.state = State::Done;
                        return i + 1;
                    }
                    _ => {
                        // ".\r" and something else: a bare CR.
                        self.bare = true;
                        self.push(b'\r');
                        self.state = self.byte(b, State::Mid);
                    }
                },
                State::Mid => self.state = self.byte(b, State::Mid),
                State::Cr => match b {
                    b'\n' => {
                        self.push(b'\r');
                        self.push(b'\n');
                        self.end_line();
                        self.state = State::LineStart;
                    }
                    _ => {
                        self.bare = true;
                        self.push(b'\r');
                        self.state = self.byte(b, State::Mid);
                    }
                },
            }
        }
        input.len()
    }

    /// One content byte in the middle of a line (or at a line start that is
    /// not a dot); returns the next state.
    fn byte(&mut self, b: u8, mid: State) -> State {
        match b {
            b'\r' => State::Cr,
            b'\n' => {
                self.bare = true;
                self.push(b'\n');
                self.end_line();
                State::LineStartAfterBare
            }
            _ => {
                self.push(b);
                self.header_line_empty = false;
                mid
            }
        }
    }

    fn end_line(&mut self) {
        if self.in_header && self.header_line_empty {
            self.in_header = false;
        }
        self.header_line_empty = true;
    }

    /// Counts `n` more bytes of content against the limits (the header
    /// limit while in the header, the size limit always); whether to keep
    /// them. Past the size limit nothing is kept and what was is dropped.
    fn count(&mut self, n: usize) -> bool {
        self.seen += n;
        if self.in_header && self.seen > self.max_header && self.flaw.is_none() {
            self.flaw = Some(Flaw::HeaderTooBig);
        }
        if self.seen > self.max_size {
            if self.flaw.is_none() || self.flaw == Some(Flaw::HeaderTooBig) {
                self.flaw = Some(Flaw::TooBig);
            }
            self.content = Vec::new();
            return false;
        }
        self.flaw.is_none()
    }

    /// [`DataReceiver::push`] for a run of bytes: no CR or LF, or whole
    /// clean lines of the body.
    fn push_slice(&mut self, bytes: &[u8]) {
        if self.count(bytes.len()) {
            if self.content.capacity() - self.content.len() < bytes.len() {
                // Grow in steps of at least 32 KiB: a 100 KB message is
                // copied over twice, not at every doubling from 8 bytes.
                self.content.reserve(bytes.len().max(32 * 1024));
            }
            self.content.extend_from_slice(bytes);
        }
    }

    fn push(&mut self, b: u8) {
        if self.count(1) {
            self.content.push(b);
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The message, when it has ended and will be accepted (what
    /// [`DataReceiver::finish`] will return), without taking it.
    pub fn received(&self) -> Option<&[u8]> {
        (self.is_done() && self.flaw.is_none() && !self.bare).then_some(&self.content[..])
    }

    /// The message, or why it must be refused. Size problems are reported
    /// before a bare line ending (a too-big message was not even kept).
    pub fn finish(self) -> Result<Vec<u8>, Flaw> {
        match self.flaw {
            Some(f) => Err(f),
            None if self.bare => Err(Flaw::BareLineEnding),
            None => Ok(self.content),
        }
    }
}

/// Accumulates one BDAT message (RFC 3030 §2): chunks of announced sizes,
/// taken as they are (no dot-stuffing, no end marker), until the `LAST`
/// one. Every byte of a chunk is consumed, kept or not, so the command
/// stream stays in step; past the size limit nothing more is kept. The
/// checks DATA makes while reading (header size, bare CR or LF) are made on
/// the whole message by [`BdatReceiver::finish`].
#[derive(Debug)]
pub struct BdatReceiver {
    content: Vec<u8>,
    max_size: usize,
    max_header: usize,
    /// Bytes of the current chunk still to come.
    left: u64,
    /// The chunks went over `max_size`: nothing more is kept.
    too_big: bool,
}

impl BdatReceiver {
    pub fn new(max_size: usize, max_header: usize) -> BdatReceiver {
        BdatReceiver {
            content: Vec::new(),
            max_size,
            max_header,
            left: 0,
            too_big: false,
        }
    }

    /// A `BDAT size` command announced the next chunk.
    pub fn begin_chunk(&mut self, size: u64) {
        self.left = size;
        if !self.too_big {
            // Room for the chunk up front, but never more than the limit
            // allows: the size is the client's word.
            let room = self.max_size.saturating_sub(self.content.len());
            self.content.reserve(size.min(room as u64) as usize);
        }
    }

    /// Feeds bytes of the current chunk; returns how many were consumed:
    /// at most what the chunk has left (what follows is the next command).
    pub fn feed(&mut self, input: &[u8]) -> usize {
        let n = input
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        self.left -= n as u64;
        if !self.too_big {
            if self.content.len() + n > self.max_size {
                self.too_big = true;
                self.content = Vec::new();
            } else {
                self.content.extend_from_slice(&input[..n]);
            }
        }
        n
    }

    /// The current chunk has been read whole.
    pub fn chunk_done(&self) -> bool {
        self.left == 0
    }

    /// Bytes kept so far (none once the message went over the limit).
    pub fn kept(&self) -> usize {
        self.content.len()
    }

    /// The message so far, when [`BdatReceiver::finish`] would accept it,
    /// without taking it.
    pub fn received(&self) -> Option<&[u8]> {
        let ok = !self.too_big
            && header_len(&self.content) <= self.max_header
            && postamt_wire::crlf::is_clean(&self.content);
        ok.then_some(&self.content[..])
    }

    /// The message after its last chunk, or why it must be refused; the
    /// size first, as for DATA.
    pub fn finish(self) -> Result<Vec<u8>, Flaw> {
        if self.too_big {
            Err(Flaw::TooBig)
        } else if header_len(&self.content) > self.max_header {
            Err(Flaw::HeaderTooBig)
        } else if !postamt_wire::crlf::is_clean(&self.content) {
            Err(Flaw::BareLineEnding)
        } else {
            Ok(self.content)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receive(input: &[u8]) -> (usize, bool, Result<Vec<u8>, Flaw>) {
        let mut r = DataReceiver::new(1 << 20, 1 << 16);
        let n = r.feed(input);
        let done = r.is_done();
        (n, done, r.finish())
    }

    #[test]
    fn plain_message_and_pipelined_rest() {
        let (n, done, got) = receive(b"Subject: x\r\n\r\nhello\r\n.\r\nQUIT\r\n");
        assert!(done);
        assert_eq!(n, b"Subject: x\r\n\r\nhello\r\n.\r\n".len());
        assert_eq!(got.unwrap(), b"Subject: x\r\n\r\nhello\r\n");
    }

    #[test]
    fn empty_message_is_a_dot_on_the_first_line() {
        let (_, done, got) = receive(b".\r\n");
        assert!(done);
        assert_eq!(got.unwrap(), b"");
    }

    #[test]
    fn dot_unstuffing() {
        let (_, done, got) = receive(b"..\r\n..leading\r\n...\r\nx.y\r\n.\r\n");
        assert!(done);
        assert_eq!(got.unwrap(), b".\r\n.leading\r\n..\r\nx.y\r\n");
        // A first line starting with two dots.
        let (_, _, got) = receive(b"..x\r\n.\r\n");
        assert_eq!(got.unwrap(), b".x\r\n");
    }

    /// The smuggling vectors (SMTP smuggling, CVE-2023-51764 family): none
    /// of these ends DATA, and each marks the message as bare.
    #[test]
    fn smuggling_vectors_never_end_data() {
        for vector in [
            &b"\n.\n"[..],
            b"\n.\r\n",
            b"\r.\r\n",
            b"\r\n.\r",
            b"\r\n.\n",
            b"\r\n.\rX\r\n",
        ] {
            let mut input = b"Subject: a\r\n\r\nbody".to_vec();
            input.extend_from_slice(vector);
            input.extend_from_slice(b"MAIL FROM:<evil@x>\r\nRCPT TO:<v@y>\r\nDATA\r\nsmuggled\r\n");
            let mut r = DataReceiver::new(1 << 20, 1 << 16);
            let n = r.feed(&input);
            assert!(!r.is_done(), "{vector:?} ended DATA");
            assert_eq!(n, input.len());
            // The real end follows; the message is refused as a whole.
            r.feed(b"\r\n.\r\n");
            assert!(r.is_done());
            assert_eq!(r.finish(), Err(Flaw::BareLineEnding), "{vector:?}");
        }
    }

    #[test]
    fn fed_byte_by_byte_gives_the_same_result() {
        let input = b"A: b\r\n\r\n..x\r\nline\r\n.\r\nNEXT";
        let mut r = DataReceiver::new(1 << 20, 1 << 16);
        let mut consumed = 0;
        for b in input.iter() {
            if r.is_done() {
                break;
            }
            consumed += r.feed(std::slice::from_ref(b));
        }
        assert_eq!(consumed, input.len() - 4);
        assert_eq!(r.finish().unwrap(), b"A: b\r\n\r\n.x\r\nline\r\n");
    }

    /// The bulk path and byte-by-byte feeding agree on random inputs made
    /// of the interesting pieces (dots at line starts, bare CR and LF, the
    /// end marker), whatever the split into reads.
    #[test]
    fn bulk_and_byte_by_byte_agree_on_random_input() {
        let pieces: [&[u8]; 10] = [
            b"text",
            b"\r\n",
            b".",
            b"..",
            b"\r",
            b"\n",
            b"\r\n.\r\n",
            b"x.y",
            b"\r\n\r\n",
            b" ",
        ];
        let mut next = crate::xorshift(0x2545_f491_4f6c_dd1d_u64);
        for _ in 0..3000 {
            let mut input = b"Subject: t\r\n\r\n".to_vec();
            input.extend(crate::pick(&mut next, &pieces, 40));
            input.extend_from_slice(b"\r\n.\r\nRSET\r\n");
            let mut whole = DataReceiver::new(1 << 20, 1 << 16);
            let n_whole = whole.feed(&input);
            let mut bytes = DataReceiver::new(1 << 20, 1 << 16);
            let mut n_bytes = 0;
            for b in &input {
                if bytes.is_done() {
                    break;
                }
                n_bytes += bytes.feed(std::slice::from_ref(b));
            }
            let mut chunked = DataReceiver::new(1 << 20, 1 << 16);
            let mut n_chunked = 0;
            let cut = 1 + (next() % 7) as usize;
            for c in input.chunks(cut) {
                if chunked.is_done() {
                    break;
                }
                n_chunked += chunked.feed(c);
            }
            assert_eq!(n_whole, n_bytes, "{input:?}");
            assert_eq!(n_whole, n_chunked, "{input:?}");
            let (a, b, c) = (whole.finish(), bytes.finish(), chunked.finish());
            assert_eq!(a, b, "{input:?}");
            assert_eq!(a, c, "{input:?}");
        }
    }

    #[test]
    fn oversized_is_drained_not_kept() {
        let mut r = DataReceiver::new(100, 1000);
        for _ in 0..1000 {
            r.feed(b"0123456789012345678901234567890123456789\r\n");
        }
        assert!(r.content.is_empty(), "nothing buffered past the limit");
        r.feed(b".\r\n");
        assert!(r.is_done());
        assert_eq!(r.finish(), Err(Flaw::TooBig));
    }

    #[test]
    fn header_limit() {
        let mut r = DataReceiver::new(1 << 20, 50);
        r.feed(b"X-Long: 0123456789012345678901234567890123456789012345678901234567890\r\n\r\nbody\r\n.\r\n");
        assert_eq!(r.finish(), Err(Flaw::HeaderTooBig));
        let mut r = DataReceiver::new(1 << 20, 50);
        r.feed(
            b"S: x\r\n\r\n0123456789012345678901234567890123456789012345678901234567890\r\n.\r\n",
        );
        assert!(
            r.finish().is_ok(),
            "the body does not count against the header limit"
        );
    }

    /// What the relay and the mail client send (`wire::dot::stuff`) is read
    /// back by this receiver as the same content (RFC 5321 §4.5.2).
    #[test]
    fn dot_stuffing_round_trips() {
        let samples: [&[u8]; 5] = [
            b"",
            b".\r\n",
            b"a\r\n.b\r\n..\r\n",
            b".x\r\nno end",
            b"\r\n.\r\n.\r\n",
        ];
        for s in samples {
            let mut wire = Vec::new();
            postamt_wire::dot::stuff(s, &mut wire);
            let mut r = DataReceiver::new(1 << 20, 1 << 16);
            let n = r.feed(&wire);
            assert!(r.is_done(), "{s:?}");
            assert_eq!(n, wire.len());
            let mut expect = s.to_vec();
            if !expect.is_empty() && !expect.ends_with(b"\r\n") {
                expect.extend_from_slice(b"\r\n");
            }
            assert_eq!(r.finish().unwrap(), expect);
        }
    }

    fn bdat(chunks: &[&[u8]], max: usize, max_header: usize) -> Result<Vec<u8>, Flaw> {
        let mut r = BdatReceiver::new(max, max_header);
        for c in chunks {
            r.begin_chunk(c.len() as u64);
            assert_eq!(r.feed(c), c.len());
            assert!(r.chunk_done());
        }
        r.finish()
    }

    #[test]
    fn bdat_chunks_are_taken_as_they_are() {
        assert_eq!(
            bdat(
                &[b"Subject: x\r\n\r\n.dot", b" stays\r\n", b""],
                1 << 20,
                1 << 16
            )
            .unwrap(),
            b"Subject: x\r\n\r\n.dot stays\r\n"
        );
        // An empty message, and one whose last line has no line end.
        assert_eq!(bdat(&[b""], 100, 100).unwrap(), b"");
        assert_eq!(bdat(&[b"Subject: "], 100, 100).unwrap(), b"Subject: ");
    }

    #[test]
    fn bdat_feed_stops_at_the_end_of_the_chunk() {
        let mut r = BdatReceiver::new(100, 100);
        r.begin_chunk(3);
        assert_eq!(r.feed(b"ab"), 2);
        assert!(!r.chunk_done());
        assert_eq!(r.feed(b"cQUIT\r\n"), 1, "the next command is left");
        assert!(r.chunk_done());
        assert_eq!(r.feed(b"QUIT\r\n"), 0);
        assert_eq!(r.kept(), 3);
        r.begin_chunk(0);
        assert!(r.chunk_done());
        assert_eq!(r.finish().unwrap(), b"abc");
    }

    #[test]
    fn bdat_over_the_limit_is_drained_not_kept() {
        let mut r = BdatReceiver::new(10, 100);
        r.begin_chunk(6);
        r.feed(b"012345");
        assert_eq!(r.kept(), 6);
        r.begin_chunk(6);
        assert_eq!(r.feed(b"678901"), 6, "read whole");
        assert_eq!(r.kept(), 0, "nothing kept past the limit");
        r.begin_chunk(2);
        r.feed(b"ab");
        assert_eq!(r.kept(), 0, "nor after it");
        assert_eq!(r.finish(), Err(Flaw::TooBig));
        // Exactly at the limit is fine.
        assert_eq!(bdat(&[b"01234", b"56789"], 10, 100).unwrap(), b"0123456789");
    }

    #[test]
    fn bdat_header_limit_and_bare_line_endings() {
        let long = [b"X: ".as_slice(), &[b'h'; 60], b"\r\n\r\nbody"].concat();
        assert_eq!(bdat(&[&long], 1000, 50), Err(Flaw::HeaderTooBig));
        assert_eq!(
            bdat(&[b"S: x\r\n\r\n", &[b'b'; 100]], 1000, 50).map(|c| c.len()),
            Ok(108),
            "the body does not count against the header limit"
        );
        for bare in [&b"a\nb"[..], b"a\rb", b"a\r\n.\n", b"\n", b"a\r"] {
            assert_eq!(
                bdat(&[b"S: x\r\n\r\n", bare], 1000, 100),
                Err(Flaw::BareLineEnding),
                "{bare:?}"
            );
        }
        // A CRLF split between two chunks is a CRLF.
        assert!(bdat(&[b"S: x\r", b"\n\r\nb\r\n"], 1000, 100).is_ok());
        // Size is reported before the rest.
        assert_eq!(bdat(&[b"a\nb", &[b'x'; 20]], 10, 100), Err(Flaw::TooBig));
    }

    /// Chunks of random sizes and contents, fed whole, byte by byte and in
    /// random pieces, with a command after each chunk: the same bytes are
    /// consumed and the verdict is the one for the whole message.
    #[test]
    fn bdat_whole_and_byte_by_byte_agree_on_random_chunks() {
        let pieces: [&[u8]; 8] = [
            b"text",
            b"\r\n",
            b".",
            b"\r",
            b"\n",
            b"\r\n\r\n",
            b"H: v",
            b"\r\n.\r\n",
        ];
        let mut next = crate::xorshift(0x9e37_79b9_7f4a_7c15_u64);
        for _ in 0..2000 {
            let (max, max_header) = (1 + (next() % 120) as usize, 1 + (next() % 60) as usize);
            let mut chunks = Vec::new();
            for _ in 0..(1 + next() % 5) {
                chunks.push(crate::pick(&mut next, &pieces, 8));
            }
            let whole: Vec<u8> = chunks.concat();
            let expect = if whole.len() > max {
                Err(Flaw::TooBig)
            } else if header_len(&whole) > max_header {
                Err(Flaw::HeaderTooBig)
            } else if !postamt_wire::crlf::is_clean(&whole) {
                Err(Flaw::BareLineEnding)
            } else {
                Ok(whole.clone())
            };
            let cut = 1 + (next() % 5) as usize;
            for split in [usize::MAX, 1, cut] {
                let mut r = BdatReceiver::new(max, max_header);
                for c in &chunks {
                    r.begin_chunk(c.len() as u64);
                    let mut input = c.clone();
                    input.extend_from_slice(b"BDAT 1\r\n");
                    let mut at = 0usize;
                    while !r.chunk_done() {
                        let end = input.len().min(at.saturating_add(split));
                        at += r.feed(&input[at..end]);
                    }
                    assert_eq!(at, c.len(), "{chunks:?}");
                    assert!(r.kept() <= max);
                }
                assert_eq!(r.finish(), expect, "{chunks:?} split {split}");
            }
        }
    }
}
