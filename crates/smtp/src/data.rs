//! Receivers for message content: DATA with dot-unstuffing (RFC 5321
//! §4.5.2) and its end `<CRLF>.<CRLF>` (§4.1.1.4), hardened against SMTP
//! smuggling: only a dot line that follows a real CRLF and is followed by a
//! real CRLF ends the message, and any bare CR or bare LF is reported so the
//! message can be refused (CVE-2023-51764 and its family). Oversized input
//! is drained, not buffered. Sans-IO: bytes in, a verdict out.

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

    /// [`DataReceiver::push`] for a run of bytes: no CR or LF, or whole
    /// clean lines of the body.
    fn push_slice(&mut self, bytes: &[u8]) {
        self.seen += bytes.len();
        if self.in_header && self.seen > self.max_header && self.flaw.is_none() {
            self.flaw = Some(Flaw::HeaderTooBig);
        }
        if self.seen > self.max_size {
            if self.flaw.is_none() || self.flaw == Some(Flaw::HeaderTooBig) {
                self.flaw = Some(Flaw::TooBig);
            }
            self.content = Vec::new();
            return;
        }
        if self.flaw.is_none() {
            if self.content.capacity() - self.content.len() < bytes.len() {
                // Grow in steps of at least 32 KiB: a 100 KB message is
                // copied over twice, not at every doubling from 8 bytes.
                self.content.reserve(bytes.len().max(32 * 1024));
            }
            self.content.extend_from_slice(bytes);
        }
    }

    fn push(&mut self, b: u8) {
        self.seen += 1;
        if self.in_header && self.seen > self.max_header && self.flaw.is_none() {
            self.flaw = Some(Flaw::HeaderTooBig);
        }
        if self.seen > self.max_size {
            if self.flaw.is_none() || self.flaw == Some(Flaw::HeaderTooBig) {
                self.flaw = Some(Flaw::TooBig);
            }
            self.content = Vec::new();
            return;
        }
        if self.flaw.is_none() {
            self.content.push(b);
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
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
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..3000 {
            let mut input = b"Subject: t\r\n\r\n".to_vec();
            for _ in 0..(next() % 40) {
                input.extend_from_slice(pieces[(next() % pieces.len() as u64) as usize]);
            }
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
}
