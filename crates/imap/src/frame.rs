//! Framing of IMAP commands before parsing (RFC 9051 §2.2, §4.3, §7.5;
//! RFC 7888): lines and literals are collected into one command buffer.
//! Every byte is bounded: the length of a line, of the whole command, and of
//! each literal, decided when the literal is *announced*, so a synchronizing
//! literal that is too big is refused before the client sends it and a
//! non-synchronizing one is drained without being stored.

/// Bounds, changeable after login (pre-authentication budgets are smaller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimits {
    /// Longest line, CRLF included.
    pub max_line: usize,
    /// Longest command, lines and literals together, APPEND content aside.
    pub max_command: usize,
    /// Largest APPEND content (the APPENDLIMIT): for MULTIAPPEND, all the
    /// messages of the command together.
    pub max_append: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A complete command, without its final CRLF (literals inline).
    Command(Vec<u8>),
    /// A synchronizing literal of `len` octets was announced and fits: the
    /// session must send a continuation request (`+ ...`) now.
    Continue { len: u64 },
    /// A line or command was too long; the rest of the command is skipped
    /// as it arrives. Answer `BAD` (tag when known) now.
    TooLong { tag: Option<String> },
    /// A literal was too big. `sync`: the client waits for our answer and
    /// sends nothing more for this command; otherwise it is drained.
    /// Answer `NO [TOOBIG]` (RFC 4469 / RFC 7889) or `BAD`.
    TooBig {
        tag: Option<String>,
        sync: bool,
        append: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Line,
    /// Copying this many literal octets into the command.
    Literal(u64),
    /// Discarding this many literal octets, then the rest of the command.
    DrainLiteral(u64),
    /// Discarding to the end of the line, then (if that line announced a
    /// non-synchronizing literal) on through the command.
    DrainLine,
}

#[derive(Debug)]
pub struct Framer {
    limits: FrameLimits,
    state: State,
    cmd: Vec<u8>,
    /// Where the current line starts in `cmd`.
    line_start: usize,
    /// Bytes of the current line while draining (to spot a literal at its end).
    drain_tail: Vec<u8>,
    append: bool,
    /// Octets of literals in the command so far.
    literal_len: u64,
}

/// A literal announced at the end of `line` (CRLF stripped):
/// `{n}`, `{n+}`, `~{n}`, `~{n+}`; returns (n, synchronizing).
pub fn literal_at_end(line: &[u8]) -> Option<(u64, bool)> {
    let body = line.strip_suffix(b"}")?;
    let (body, sync) = match body.strip_suffix(b"+") {
        Some(b) => (b, false),
        None => (body, true),
    };
    let open = body.iter().rposition(|&b| b == b'{')?;
    let digits = &body[open + 1..];
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((n, sync))
}

fn tag_of(cmd: &[u8]) -> Option<String> {
    let end = cmd.iter().position(|&b| b == b' ')?;
    let t = &cmd[..end];
    (!t.is_empty() && t.len() <= 64 && t.iter().all(|b| b.is_ascii_graphic()))
        .then(|| String::from_utf8_lossy(t).into_owned())
}

fn is_append(cmd: &[u8]) -> bool {
    let mut words = cmd.splitn(3, |&b| b == b' ');
    words.next();
    words
        .next()
        .is_some_and(|w| w.eq_ignore_ascii_case(b"APPEND"))
}

impl Framer {
    pub fn new(limits: FrameLimits) -> Framer {
        Framer {
            limits,
            state: State::Line,
            cmd: Vec::new(),
            line_start: 0,
            drain_tail: Vec::new(),
            append: false,
            literal_len: 0,
        }
    }

    pub fn set_limits(&mut self, limits: FrameLimits) {
        self.limits = limits;
    }

    /// Octets of the command that are not literal content.
    fn text_len(&self) -> usize {
        self.cmd.len().saturating_sub(self.literal_len as usize)
    }

    /// True while no part of a command is buffered.
    pub fn is_idle(&self) -> bool {
        self.state == State::Line && self.cmd.is_empty()
    }

    fn reset(&mut self) {
        self.cmd = Vec::new();
        self.line_start = 0;
        self.state = State::Line;
        self.append = false;
        self.literal_len = 0;
    }

    /// Starts discarding the rest of the command (its event has been
    /// reported already, so the client hears about it at once).
    fn drain(&mut self, literal: Option<u64>) {
        self.cmd = Vec::new();
        self.line_start = 0;
        self.drain_tail.clear();
        self.state = match literal {
            Some(n) => State::DrainLiteral(n),
            None => State::DrainLine,
        };
    }

    /// Consumes input; returns how many bytes were used and, if one is
    /// ready, an event. Call again with the rest after an event.
    pub fn feed(&mut self, input: &[u8]) -> (usize, Option<Event>) {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Literal(n) => {
                    let take = (n as usize).min(input.len() - i);
                    self.cmd.extend_from_slice(&input[i..i + take]);
                    i += take;
                    let left = n - take as u64;
                    if left == 0 {
                        self.state = State::Line;
                        self.line_start = self.cmd.len();
                    } else {
                        self.state = State::Literal(left);
                    }
                }
                State::DrainLiteral(n) => {
                    let take = (n as usize).min(input.len() - i);
                    i += take;
                    let left = n - take as u64;
                    self.state = if left == 0 {
                        State::DrainLine
                    } else {
                        State::DrainLiteral(left)
                    };
                }
                State::DrainLine => {
                    let rest = &input[i..];
                    match rest.iter().position(|&b| b == b'\n') {
                        None => {
                            // Keep only enough of the line to spot `{n}`.
                            self.drain_tail.extend_from_slice(rest);
                            let keep = self.drain_tail.len().saturating_sub(32);
                            self.drain_tail.drain(..keep);
                            i = input.len();
                        }
                        Some(p) => {
                            self.drain_tail.extend_from_slice(&rest[..p]);
                            i += p + 1;
                            let line = self
                                .drain_tail
                                .strip_suffix(b"\r")
                                .unwrap_or(&self.drain_tail);
                            match literal_at_end(line) {
                                // A synchronizing literal after an error: the
                                // client waits for a `+` it won't get; the
                                // command ends here.
                                Some((n, false)) => self.state = State::DrainLiteral(n),
                                _ => {
                                    self.drain_tail.clear();
                                    self.reset();
                                    continue;
                                }
                            }
                            self.drain_tail.clear();
                        }
                    }
                }
                State::Line => {
                    let rest = &input[i..];
                    let line_len = self.cmd.len() - self.line_start;
                    let (chunk, end) = match rest.iter().position(|&b| b == b'\n') {
                        Some(p) => (&rest[..p], true),
                        None => (rest, false),
                    };
                    if line_len + chunk.len() + 1 > self.limits.max_line
                        || self.text_len() + chunk.len() > self.limits.max_command
                    {
                        let tag = tag_of(&self.cmd).or_else(|| {
                            let mut head = self.cmd.clone();
                            head.extend_from_slice(&chunk[..chunk.len().min(80)]);
                            tag_of(&head)
                        });
                        self.drain(None);
                        return (i, Some(Event::TooLong { tag }));
                    }
                    self.cmd.extend_from_slice(chunk);
                    i += chunk.len();
                    if !end {
                        continue;
                    }
                    i += 1;
                    // CRLF ends a line; a bare LF is taken as one too. (A CR
                    // that ended a literal belongs to the literal.)
                    if self.cmd.len() > self.line_start && self.cmd.last() == Some(&b'\r') {
                        self.cmd.pop();
                    }
                    if self.line_start == 0 {
                        self.append = is_append(&self.cmd);
                    }
                    match literal_at_end(&self.cmd[self.line_start..]) {
                        None => {
                            let cmd = std::mem::take(&mut self.cmd);
                            self.reset();
                            return (i, Some(Event::Command(cmd)));
                        }
                        Some((n, sync)) => {
                            let limit = if self.append {
                                self.limits.max_append.saturating_sub(self.literal_len)
                            } else {
                                self.limits.max_command.saturating_sub(self.cmd.len()) as u64
                            };
                            let tag = tag_of(&self.cmd);
                            if n > limit {
                                let ev = Event::TooBig {
                                    tag,
                                    sync,
                                    append: self.append,
                                };
                                if sync {
                                    self.reset();
                                    return (i, Some(ev));
                                }
                                self.drain(Some(n));
                                return (i, Some(ev));
                            }
                            self.cmd.extend_from_slice(b"\r\n");
                            self.literal_len += n;
                            self.state = State::Literal(n);
                            if n == 0 {
                                self.state = State::Line;
                                self.line_start = self.cmd.len();
                            }
                            if sync {
                                return (i, Some(Event::Continue { len: n }));
                            }
                        }
                    }
                }
            }
        }
        (i, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> FrameLimits {
        FrameLimits {
            max_line: 100,
            max_command: 1000,
            max_append: 10_000,
        }
    }

    /// Feeds everything, collecting events.
    fn run(f: &mut Framer, mut input: &[u8]) -> Vec<Event> {
        let mut out = Vec::new();
        while !input.is_empty() {
            let (n, ev) = f.feed(input);
            input = &input[n..];
            out.extend(ev);
            if n == 0 && out.is_empty() {
                break;
            }
        }
        out
    }

    #[test]
    fn lines_and_literals() {
        let mut f = Framer::new(limits());
        let ev = run(&mut f, b"a1 NOOP\r\na2 LOGIN {5}\r\nalice {3+}\r\npw!\r\n");
        assert_eq!(
            ev,
            vec![
                Event::Command(b"a1 NOOP".to_vec()),
                Event::Continue { len: 5 },
                Event::Command(b"a2 LOGIN {5}\r\nalice {3+}\r\npw!".to_vec()),
            ]
        );
        assert!(f.is_idle());
    }

    #[test]
    fn byte_at_a_time_gives_the_same_result() {
        let input = b"a2 APPEND INBOX {11}\r\nHello\r\nWorld\r\nb NOOP\n";
        let mut f = Framer::new(limits());
        let mut ev = Vec::new();
        for b in input {
            let (n, e) = f.feed(std::slice::from_ref(b));
            assert_eq!(n, 1);
            ev.extend(e);
        }
        assert_eq!(
            ev,
            vec![
                Event::Continue { len: 11 },
                Event::Command(b"a2 APPEND INBOX {11}\r\nHello\r\nWorld".to_vec()),
                Event::Command(b"b NOOP".to_vec()),
            ]
        );
    }

    #[test]
    fn too_long_line_is_skipped_and_the_next_command_works() {
        let mut f = Framer::new(limits());
        let mut input = b"x1 NOOP ".to_vec();
        input.extend(std::iter::repeat_n(b'a', 500));
        input.extend_from_slice(b"\r\nx2 NOOP\r\n");
        let ev = run(&mut f, &input);
        assert_eq!(
            ev,
            vec![
                Event::TooLong {
                    tag: Some("x1".into())
                },
                Event::Command(b"x2 NOOP".to_vec())
            ]
        );
    }

    #[test]
    fn open_parentheses_without_newline_are_bounded() {
        // The CVE-2026-27857 class: memory held for a line that never ends.
        let mut f = Framer::new(limits());
        let input = vec![b'('; 100_000];
        let ev = run(&mut f, &input);
        assert_eq!(ev, vec![Event::TooLong { tag: None }]);
        assert!(f.cmd.capacity() <= 1000 && f.drain_tail.len() <= 64);
    }

    #[test]
    fn big_synchronizing_literal_is_refused_before_it_is_sent() {
        let mut f = Framer::new(limits());
        let ev = run(&mut f, b"a APPEND INBOX {20000}\r\nb NOOP\r\n");
        assert_eq!(
            ev,
            vec![
                Event::TooBig {
                    tag: Some("a".into()),
                    sync: true,
                    append: true
                },
                Event::Command(b"b NOOP".to_vec())
            ]
        );
        // Outside APPEND the command limit applies.
        let ev = run(&mut f, b"c LOGIN {2000}\r\n");
        assert_eq!(
            ev,
            vec![Event::TooBig {
                tag: Some("c".into()),
                sync: true,
                append: false
            }]
        );
    }

    #[test]
    fn big_non_synchronizing_literal_is_drained() {
        let mut f = Framer::new(limits());
        let mut input = b"a APPEND INBOX {20000+}\r\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 20000));
        input.extend_from_slice(b" {3+}\r\nabc\r\nb NOOP\r\n");
        let ev = run(&mut f, &input);
        assert_eq!(
            ev,
            vec![
                Event::TooBig {
                    tag: Some("a".into()),
                    sync: false,
                    append: true
                },
                Event::Command(b"b NOOP".to_vec())
            ]
        );
    }

    /// The fuzz target's property on a fixed pseudo-random corpus: feeding
    /// whole or byte by byte gives the same events, and nothing panics.
    #[test]
    fn chunking_does_not_change_the_events() {
        let atoms: [&[u8]; 12] = [
            b"a1 ",
            b"LOGIN ",
            b"{5}\r\n",
            b"{3+}\r\n",
            b"\r\n",
            b"\n",
            b"((((",
            b"x",
            b"APPEND INBOX ",
            b"{200000}\r\n",
            b"\"q\" ",
            b"~{2}\r\n",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            let mut input = Vec::new();
            for _ in 0..(seed % 40) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let a = atoms[(seed % atoms.len() as u64) as usize];
                let times = if a == b"x" { (seed >> 8) % 300 } else { 1 };
                for _ in 0..times {
                    input.extend_from_slice(a);
                }
            }
            let whole = run(&mut Framer::new(limits()), &input);
            let mut f = Framer::new(limits());
            let mut bytewise = Vec::new();
            for b in &input {
                let (_, e) = f.feed(std::slice::from_ref(b));
                bytewise.extend(e);
            }
            assert_eq!(whole, bytewise, "{:?}", String::from_utf8_lossy(&input));
            for e in &whole {
                if let Event::Command(c) = e {
                    assert!(c.len() <= 1000 + 10_000 + 16);
                    let _ = crate::command::parse(c);
                }
            }
        }
    }

    #[test]
    fn a_literal_ending_in_cr_keeps_it() {
        let mut f = Framer::new(limits());
        let ev = run(&mut f, b"a LOGIN {2}\r\nx\r\n");
        assert_eq!(
            ev,
            vec![
                Event::Continue { len: 2 },
                Event::Command(b"a LOGIN {2}\r\nx\r".to_vec())
            ]
        );
    }

    #[test]
    fn append_content_does_not_count_against_the_command_limit() {
        let mut f = Framer::new(limits());
        let mut input = b"a APPEND INBOX {5000}\r\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 5000));
        input.extend_from_slice(b" {4000+}\r\n");
        input.extend(std::iter::repeat_n(b'y', 4000));
        input.extend_from_slice(b"\r\n");
        let ev = run(&mut f, &input);
        assert_eq!(ev.len(), 2, "{:?}", &ev[..1]);
        assert!(matches!(&ev[1], Event::Command(c) if c.len() > 9000));
        // MULTIAPPEND: together the messages may not exceed APPENDLIMIT.
        let mut input = b"b APPEND INBOX {6000}\r\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 6000));
        input.extend_from_slice(b" {6000}\r\nc NOOP\r\n");
        let ev = run(&mut f, &input);
        assert_eq!(
            ev,
            vec![
                Event::Continue { len: 6000 },
                Event::TooBig {
                    tag: Some("b".into()),
                    sync: true,
                    append: true
                },
                Event::Command(b"c NOOP".to_vec())
            ]
        );
    }

    #[test]
    fn literal_markers() {
        assert_eq!(literal_at_end(b"a LOGIN {5}"), Some((5, true)));
        assert_eq!(literal_at_end(b"a LOGIN {5+}"), Some((5, false)));
        assert_eq!(literal_at_end(b"a APPEND x ~{5}"), Some((5, true)));
        assert_eq!(literal_at_end(b"a LOGIN {}"), None);
        assert_eq!(literal_at_end(b"a LOGIN {x}"), None);
        assert_eq!(literal_at_end(b"a LOGIN 5}"), None);
    }
}
