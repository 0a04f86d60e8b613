//! Sequence sets (RFC 9051 §9 `sequence-set`): `1,3:5,7:*`.

use std::fmt;

/// Most ranges in one set; a longer set is refused (a bound against
/// clients that send megabytes of `1,3,5,...`).
pub const MAX_RANGES: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    Num(u32),
    /// `*`: the largest number in use.
    Star,
}

/// An empty list of ranges stands for `$`, the saved search result
/// (RFC 5182); the session replaces it before use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceSet(pub Vec<(Bound, Bound)>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeqError(&'static str);

impl fmt::Display for SeqError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

fn bound(s: &[u8]) -> Result<Bound, SeqError> {
    if s == b"*" {
        return Ok(Bound::Star);
    }
    if s.is_empty() || s.len() > 10 || !s.iter().all(u8::is_ascii_digit) {
        return Err(SeqError("bad sequence set"));
    }
    let n: u64 = std::str::from_utf8(s)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(SeqError("bad sequence set"))?;
    if n == 0 || n > u32::MAX as u64 {
        return Err(SeqError("sequence numbers start at 1"));
    }
    Ok(Bound::Num(n as u32))
}

impl SequenceSet {
    pub fn parse(s: &[u8]) -> Result<SequenceSet, SeqError> {
        if s.is_empty() {
            return Err(SeqError("expected a sequence set"));
        }
        if s == b"$" {
            return Ok(SequenceSet(Vec::new()));
        }
        if s.contains(&b'$') {
            // RFC 5182 §3: `$` stands alone.
            return Err(SeqError("$ cannot be combined with other numbers"));
        }
        let mut out = Vec::new();
        for item in s.split(|&b| b == b',') {
            if out.len() >= MAX_RANGES {
                return Err(SeqError("sequence set too long"));
            }
            let mut it = item.splitn(2, |&b| b == b':');
            let a = bound(it.next().unwrap_or_default())?;
            let b = match it.next() {
                Some(b) => bound(b)?,
                None => a,
            };
            out.push((a, b));
        }
        Ok(SequenceSet(out))
    }

    /// `$`: the result saved by `SEARCH RETURN (SAVE)`.
    pub fn is_saved(&self) -> bool {
        self.0.is_empty()
    }

    /// A set of exactly these numbers.
    pub fn of(nums: &[u32]) -> SequenceSet {
        SequenceSet(
            nums.iter()
                .map(|&n| (Bound::Num(n), Bound::Num(n)))
                .collect(),
        )
    }

    /// Whether `n` is in the set when `*` stands for `max`. A range is
    /// unordered (`5:2` = `2:5`).
    pub fn contains(&self, n: u32, max: u32) -> bool {
        self.0.iter().any(|&(a, b)| {
            let v = |x: Bound| match x {
                Bound::Num(n) => n,
                Bound::Star => max,
            };
            let (lo, hi) = (v(a).min(v(b)), v(a).max(v(b)));
            (lo..=hi).contains(&n)
        })
    }

    /// Whether the set names any number above `max` (no `*`): for sequence
    /// numbers that is an error (RFC 9051 §6.4.5 "BAD invalid sequence").
    /// A range with `*` never exceeds (`1:*` in an empty mailbox is empty).
    pub fn exceeds(&self, max: u32) -> bool {
        self.0.iter().any(|&(a, b)| match (a, b) {
            (Bound::Star, _) | (_, Bound::Star) => false,
            (Bound::Num(x), Bound::Num(y)) => x > max || y > max,
        })
    }

    /// Renders the numbers as a compact set (`1:3,7`), e.g. for COPYUID.
    pub fn compact(nums: &[u32]) -> String {
        let mut out = String::new();
        let mut i = 0;
        while i < nums.len() {
            let start = nums[i];
            let mut end = start;
            while i + 1 < nums.len() && nums[i + 1] == end.wrapping_add(1) {
                i += 1;
                end = nums[i];
            }
            if !out.is_empty() {
                out.push(',');
            }
            if start == end {
                out.push_str(&start.to_string());
            } else {
                out.push_str(&format!("{start}:{end}"));
            }
            i += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_match() {
        let s = SequenceSet::parse(b"1,3:5,9:*").unwrap();
        let got: Vec<u32> = (1..=12).filter(|&n| s.contains(n, 12)).collect();
        assert_eq!(got, vec![1, 3, 4, 5, 9, 10, 11, 12]);
        // RFC 9051 §6.4.8: 559:* includes the last message even when 559
        // is above it.
        let s = SequenceSet::parse(b"559:*").unwrap();
        assert!(s.contains(12, 12) && !s.contains(11, 12));
        assert!(SequenceSet::parse(b"5:2").unwrap().contains(3, 10));
        assert!(SequenceSet::parse(b"$").unwrap().is_saved());
        for bad in [
            &b"$,1"[..],
            b"1:$",
            b"",
            b"0",
            b"1:",
            b",",
            b"a",
            b"1:0",
            b"99999999999",
        ] {
            assert!(SequenceSet::parse(bad).is_err(), "{bad:?}");
        }
        assert!(SequenceSet::parse(b"7").unwrap().exceeds(6));
        assert!(!SequenceSet::parse(b"1:*").unwrap().exceeds(0));
    }

    #[test]
    fn long_sets_are_refused() {
        let many: Vec<String> = (1..=MAX_RANGES + 1).map(|n| n.to_string()).collect();
        assert!(SequenceSet::parse(many.join(",").as_bytes()).is_err());
    }

    #[test]
    fn compact_ranges() {
        assert_eq!(SequenceSet::compact(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        assert_eq!(SequenceSet::compact(&[]), "");
    }
}
