//! Dates as `Received:` lines write them: RFC 5322 (by mail-parser), and
//! what real MTAs write instead — no weekday or a full one, `Apr 21 2018`,
//! `4/20/2018 11:01:16 PM -0400`, ISO `2018-03-26 13:35:36.27 +0000 UTC`,
//! fractions of seconds, zone names, a missing zone (taken as UTC).

use postamt_wire::time::days_from_civil;

/// Milliseconds since the epoch, or `None` when `text` holds no date.
pub fn parse(text: &str) -> Option<i64> {
    let text = text.trim();
    if text.is_empty() || text.len() > 200 {
        return None;
    }
    if let Some(d) = mail_parser::DateTime::parse_rfc822(text).filter(|d| d.is_valid()) {
        // mail-parser drops fractions of seconds; the fallback keeps them.
        let ms = loose(text).unwrap_or(d.to_timestamp() * 1000);
        return Some(ms);
    }
    loose(text)
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

fn zone(name: &str) -> Option<i64> {
    Some(match name.to_ascii_uppercase().as_str() {
        "UT" | "UTC" | "GMT" | "Z" => 0,
        "EST" => -300,
        "EDT" => -240,
        "CST" => -360,
        "CDT" => -300,
        "MST" => -420,
        "MDT" => -360,
        "PST" => -480,
        "PDT" => -420,
        "CET" | "MET" => 60,
        "CEST" | "MEST" => 120,
        "BST" => 60,
        _ => return None,
    })
}

/// A word-by-word reading for what RFC 5322 does not cover.
fn loose(text: &str) -> Option<i64> {
    // Comments (`(EDT)`, `(UTC)`) repeat the zone; they are dropped.
    let mut clean = String::with_capacity(text.len());
    let mut depth = 0;
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = (depth - 1).max(0),
            ',' if depth == 0 => clean.push(' '),
            c if depth == 0 => clean.push(c),
            _ => {}
        }
    }
    let (mut y, mut mo, mut d) = (None::<i64>, None::<u32>, None::<u32>);
    let (mut h, mut mi, mut s, mut ms) = (None::<i64>, 0i64, 0i64, 0i64);
    let mut pm = None::<bool>;
    let mut offset_min = None::<i64>;
    for w in clean.split_whitespace() {
        let lw = w.to_ascii_lowercase();
        // A month name, abbreviated or not (`Apr`, `April`, `Sept.`).
        if let Some(i) = MONTHS.iter().position(|m| lw.starts_with(m))
            && lw.chars().all(|c| c.is_ascii_alphabetic() || c == '.')
        {
            mo = Some(i as u32 + 1);
            continue;
        }
        if lw == "am" || lw == "pm" {
            pm = Some(lw == "pm");
            continue;
        }
        if let Some(z) = zone(w) {
            offset_min.get_or_insert(z);
            continue;
        }
        if (w.starts_with('+') || w.starts_with('-'))
            && w.len() == 5
            && w[1..].bytes().all(|b| b.is_ascii_digit())
        {
            let v: i64 = w[1..].parse().ok()?;
            let m = v / 100 * 60 + v % 100;
            offset_min = Some(if w.starts_with('-') { -m } else { m });
            continue;
        }
        if w.contains(':') {
            let mut parts = w.split(':');
            h = parts.next()?.parse().ok();
            mi = parts.next().unwrap_or("0").parse().ok()?;
            if let Some(sec) = parts.next() {
                let (whole, frac) = sec.split_once('.').unwrap_or((sec, ""));
                s = whole.parse().ok()?;
                let frac: String = frac.chars().take(3).collect();
                if !frac.is_empty() {
                    ms = format!("{frac:0<3}").parse().ok()?;
                }
            }
            continue;
        }
        let sep = if w.contains('/') {
            Some('/')
        } else if w.matches('-').count() == 2 {
            Some('-')
        } else {
            None
        };
        if let Some(sep) = sep {
            let p: Vec<&str> = w.split(sep).collect();
            if p.len() != 3 {
                continue;
            }
            let n: Vec<i64> = p.iter().filter_map(|x| x.parse().ok()).collect();
            if n.len() != 3 {
                continue;
            }
            if p[0].len() == 4 {
                (y, mo, d) = (Some(n[0]), Some(n[1] as u32), Some(n[2] as u32));
            } else {
                // As the US writes it (Microsoft's tools): month first.
                (y, mo, d) = (Some(n[2]), Some(n[0] as u32), Some(n[1] as u32));
            }
            continue;
        }
        if let Ok(n) = w.parse::<i64>() {
            if w.len() == 4 || n > 31 {
                y = Some(n);
            } else if d.is_none() {
                d = Some(n as u32);
            }
        }
    }
    // A date without a time (`22 Apr 2018`) is its midnight.
    let (y, mo, d, mut h) = (y?, mo?, d?, h.unwrap_or(0));
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || !(0..=23).contains(&h) {
        return None;
    }
    if !(0..=59).contains(&mi) || !(0..=60).contains(&s) || !(0..=9999).contains(&y) {
        return None;
    }
    match pm {
        Some(true) if h < 12 => h += 12,
        Some(false) if h == 12 => h = 0,
        _ => {}
    }
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + s - offset_min.unwrap_or(0) * 60;
    Some(secs * 1000 + ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5322_3_3_and_what_mtas_write() {
        assert_eq!(
            parse("Sat, 21 Apr 2018 03:01:01 +0000"),
            Some(1_524_279_661_000)
        );
        assert_eq!(parse("Apr 21 2018 3:01:05 +0000"), Some(1_524_279_665_000));
        assert_eq!(
            parse("4/20/2018 11:01:16 PM -0400 (EDT)"),
            Some(1_524_279_676_000)
        );
        assert_eq!(
            parse("Mon, 26 Mar 2018 13:35:10.102 +0000 (UTC)"),
            Some(1_522_071_310_102)
        );
        assert_eq!(
            parse("2018-03-26 13:35:36.270951634 +0000 UTC"),
            Some(1_522_071_336_270)
        );
        assert_eq!(
            parse("Fri, 30 Jun 2006 08:02:00 +0100 (BST)"),
            Some(1_151_650_920_000)
        );
        assert_eq!(parse(""), None);
        assert_eq!(parse("yesterday"), None);
        assert_eq!(parse("22 Apr 2018"), Some(1_524_355_200_000));
        assert_eq!(
            parse("Mon, 1 Jan 0000 00:00:00 +0000").map(|_| ()),
            Some(())
        );
        assert!(parse("Fri, 31 Dec 9999 23:59:59 +0000").is_some());
        assert_eq!(parse("Fri, 31 Dec 99999 23:59:59 +0000"), None);
    }
}
