//! SORT and THREAD (RFC 5256, with DISPLAYFROM/DISPLAYTO from RFC 5957):
//! sans-IO over the envelope data parsed at delivery.

use std::cmp::Ordering;
use std::collections::HashMap;

use mail_parser::{DateTime, MessageParser};
use postamt_wire::meta::Envelope;

use postamt_wire::imap::parse_addresses;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Arrival,
    Cc,
    Date,
    From,
    Size,
    Subject,
    To,
    DisplayFrom,
    DisplayTo,
}

/// One message as SORT and THREAD see it.
#[derive(Debug, Clone, Default)]
pub struct Item {
    /// What is reported: a sequence number or a UID.
    pub number: u32,
    pub internaldate: i64,
    pub size: u64,
    pub envelope: Envelope,
    /// The raw `References:` value (only THREAD=REFERENCES needs it).
    pub references: Option<String>,
}

/// The comparison form of a string under `i;unicode-casemap` (RFC 5051,
/// the collation of RFC 5255 that Dovecot sorts with): each character's
/// upper-case form, decomposed (NFKD); compared octet by octet. So `re`
/// and `RE` are one, `[` sorts after the letters, and `Ärger` between
/// `Alice` and `Bob`.
pub fn casemap(s: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    s.chars().flat_map(char::to_uppercase).nfkd().collect()
}

/// A header value with RFC 2047 encoded words decoded (mail-parser).
fn decode(name: &str, raw: &str) -> String {
    let text = format!("{name}: {raw}\r\n\r\n");
    MessageParser::default()
        .parse_headers(text.as_bytes())
        .and_then(|m| m.subject().map(str::to_string))
        .unwrap_or_else(|| raw.to_string())
}

/// The base subject (RFC 5256 §2.1) and whether reply/forward markers were
/// removed (for THREAD=REFERENCES step 5).
pub fn base_subject(raw: &str) -> (String, bool) {
    // (1) decode, whitespace to single spaces.
    let decoded = decode("Subject", raw);
    let mut s: String = decoded.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut is_reply = false;
    loop {
        // (2) trailers: "(fwd)" and whitespace.
        loop {
            let t = s.trim_end();
            let cut = t.len().saturating_sub(5);
            if t.get(cut..)
                .is_some_and(|x| x.eq_ignore_ascii_case("(fwd)"))
            {
                s = t[..cut].to_string();
                is_reply = true;
            } else if t.len() != s.len() {
                s = t.to_string();
            } else {
                break;
            }
        }
        // (3)+(4)+(5): leaders and blobs.
        loop {
            let before = s.clone();
            s = s.trim_start().to_string();
            if let Some(rest) = strip_refwd(&s) {
                s = rest;
                is_reply = true;
            }
            if let Some(rest) = strip_blob(&s)
                && !rest.trim().is_empty()
            {
                s = rest;
            }
            if s == before {
                break;
            }
        }
        // (6) "[fwd: … ]".
        if s.len() >= 6
            && s.get(..5).is_some_and(|x| x.eq_ignore_ascii_case("[fwd:"))
            && s.ends_with(']')
        {
            s = s[5..s.len() - 1].to_string();
            is_reply = true;
            continue;
        }
        break;
    }
    (casemap(&s), is_reply)
}

/// `[blob]` followed by spaces at the start, if any.
fn strip_blob(s: &str) -> Option<String> {
    let rest = s.strip_prefix('[')?;
    let end = rest.find(['[', ']'])?;
    if rest.as_bytes()[end] != b']' {
        return None;
    }
    Some(rest[end + 1..].trim_start().to_string())
}

/// `*blob ("re" / "fw" / "fwd") *WSP [blob] ":"` at the start, if any.
fn strip_refwd(s: &str) -> Option<String> {
    let mut t = s.to_string();
    while let Some(r) = strip_blob(&t) {
        t = r;
    }
    let lower = t.to_ascii_lowercase();
    let after = ["fwd", "fw", "re"]
        .iter()
        .find(|p| lower.starts_with(**p))
        .map(|p| &t[p.len()..])?;
    let mut after = after.trim_start().to_string();
    if let Some(r) = strip_blob(&after) {
        after = r;
    }
    after.strip_prefix(':').map(str::to_string)
}

/// The sent date (Date: header) as Unix seconds; the internal date when the
/// header is missing or broken (RFC 5256 §2.2).
pub fn sent_date(item: &Item) -> i64 {
    item.envelope
        .date
        .as_deref()
        .and_then(DateTime::parse_rfc822)
        .filter(|d| d.is_valid())
        .map(|d| d.to_timestamp())
        .unwrap_or(item.internaldate)
}

/// The SORT keys of an address header: the first address's mailbox
/// (RFC 5256 §3 `addr-mailbox`), and its display name, or when it has none
/// (or an empty one) the address `mailbox@host` (RFC 5957 §3); both empty
/// without an address.
///
/// The first address is the first in the ENVELOPE's list: for a group
/// (`Team: a@x, b@y;`) its start marker, whose mailbox is the group name
/// (RFC 9051 §7.5.2), so a group sorts by its name, as Dovecot sorts it.
fn first_address(raw: Option<&str>) -> (String, String) {
    let first = raw.and_then(|raw| {
        parse_addresses(raw)
            .into_iter()
            .find(|a| a.mailbox.is_some())
    });
    let Some(a) = first else {
        return (String::new(), String::new());
    };
    let mailbox = a.mailbox.unwrap_or_default();
    let name = a
        .name
        .map(|n| decode("Subject", &n))
        .filter(|n| !n.trim().is_empty());
    let display = match (name, a.host) {
        (Some(n), _) => n,
        (None, Some(host)) => format!("{mailbox}@{host}"),
        // A group's start marker: its name.
        (None, None) => mailbox.clone(),
    };
    (casemap(&mailbox), casemap(&display))
}

/// One SORT key's value for one message (computed once per message, not
/// once per comparison: decoding subjects and addresses is the costly
/// part).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum KeyValue {
    Int(i64),
    Text(String),
}

fn key_value(item: &Item, key: SortKey) -> KeyValue {
    let e = &item.envelope;
    match key {
        SortKey::Arrival => KeyValue::Int(item.internaldate),
        SortKey::Date => KeyValue::Int(sent_date(item)),
        SortKey::Size => KeyValue::Int(item.size as i64),
        SortKey::Subject => KeyValue::Text(base_subject(e.subject.as_deref().unwrap_or("")).0),
        SortKey::From => KeyValue::Text(first_address(e.from.as_deref()).0),
        SortKey::To => KeyValue::Text(first_address(e.to.as_deref()).0),
        SortKey::Cc => KeyValue::Text(first_address(e.cc.as_deref()).0),
        SortKey::DisplayFrom => KeyValue::Text(first_address(e.from.as_deref()).1),
        SortKey::DisplayTo => KeyValue::Text(first_address(e.to.as_deref()).1),
    }
}

/// SORT: the numbers in order of `criteria` ((reverse, key) pairs); ties
/// keep sequence order (RFC 5256 §3).
pub fn sort(items: &[Item], criteria: &[(bool, SortKey)]) -> Vec<u32> {
    let keys: Vec<Vec<KeyValue>> = items
        .iter()
        .map(|i| criteria.iter().map(|&(_, k)| key_value(i, k)).collect())
        .collect();
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| {
        for (n, &(reverse, _)) in criteria.iter().enumerate() {
            let o = keys[a][n].cmp(&keys[b][n]);
            let o = if reverse { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        items[a].number.cmp(&items[b].number)
    });
    order.into_iter().map(|i| items[i].number).collect()
}

/// A thread tree node: a message (index into the items) or a dummy.
#[derive(Debug, Clone, Default)]
struct Node {
    item: Option<usize>,
    children: Vec<usize>,
    parent: Option<usize>,
}

/// Renders threads: a chain of only children is written flat, branches
/// as parenthesised lists (RFC 5256 §4).
fn render(nodes: &[Node], items: &[Item], roots: &[usize]) -> String {
    fn sub(nodes: &[Node], items: &[Item], n: usize, out: &mut String) {
        let mut cur = n;
        let mut first = true;
        loop {
            if let Some(i) = nodes[cur].item {
                if !first {
                    out.push(' ');
                }
                out.push_str(&items[i].number.to_string());
                first = false;
            }
            match nodes[cur].children.len() {
                0 => break,
                1 if nodes[cur].item.is_some() => cur = nodes[cur].children[0],
                _ => {
                    if !first {
                        out.push(' ');
                    }
                    for &c in &nodes[cur].children {
                        out.push('(');
                        sub(nodes, items, c, out);
                        out.push(')');
                    }
                    break;
                }
            }
        }
    }
    let mut out = String::new();
    for &r in roots {
        out.push('(');
        sub(nodes, items, r, &mut out);
        out.push(')');
    }
    out
}

/// The date a node sorts by: its message's, or its first child's.
/// `dates[i]`: item i's (sent date, number), computed once ([`dates`]).
fn node_date(nodes: &[Node], dates: &[(i64, u32)], n: usize) -> (i64, u32) {
    match nodes[n].item {
        Some(i) => dates[i],
        None => nodes[n]
            .children
            .first()
            .map(|&c| node_date(nodes, dates, c))
            .unwrap_or((0, 0)),
    }
}

/// Each item's (sent date, number): parsed once, compared many times.
fn dates(items: &[Item]) -> Vec<(i64, u32)> {
    items.iter().map(|i| (sent_date(i), i.number)).collect()
}

/// THREAD=ORDEREDSUBJECT (RFC 5256 §3): grouped by base subject, each
/// thread's first message the parent of the others, by sent date.
pub fn thread_orderedsubject(items: &[Item]) -> String {
    let dates = dates(items);
    let mut order: Vec<usize> = (0..items.len()).collect();
    let subjects: Vec<String> = items
        .iter()
        .map(|i| base_subject(i.envelope.subject.as_deref().unwrap_or("")).0)
        .collect();
    order.sort_by(|&a, &b| {
        subjects[a]
            .cmp(&subjects[b])
            .then(dates[a].0.cmp(&dates[b].0))
            .then(items[a].number.cmp(&items[b].number))
    });
    let mut nodes: Vec<Node> = Vec::new();
    let mut roots: Vec<usize> = Vec::new();
    let mut last_subject: Option<&str> = None;
    for &i in &order {
        let n = nodes.len();
        nodes.push(Node {
            item: Some(i),
            ..Node::default()
        });
        if last_subject == Some(subjects[i].as_str()) {
            let root = *roots.last().expect("a root");
            nodes[root].children.push(n);
            nodes[n].parent = Some(root);
        } else {
            roots.push(n);
            last_subject = Some(subjects[i].as_str());
        }
    }
    roots.sort_by_key(|&r| node_date(&nodes, &dates, r));
    render(&nodes, items, &roots)
}

/// Message-IDs (`<…>`) in a header value, in order.
fn msg_ids(raw: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = raw;
    while let Some(start) = rest.find('<') {
        let Some(len) = rest[start..].find('>') else {
            break;
        };
        let id: String = rest[start + 1..start + len]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if !id.is_empty() {
            out.push(id);
        }
        rest = &rest[start + len + 1..];
    }
    out
}

/// Most References ids used per message (the last ones).
pub const MAX_REFERENCES: usize = 100;

/// THREAD=REFERENCES (RFC 5256 §3, after Jamie Zawinski's algorithm). The
/// tree walks are recursive and a thread can be as deep as the mailbox is
/// long: they run on a thread of their own with a large stack.
pub fn thread_references(items: &[Item]) -> String {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("imap-thread".into())
            .stack_size(512 << 20)
            .spawn_scoped(s, || thread_references_here(items))
            .ok()
            .and_then(|h| h.join().ok())
            // Never an empty answer: each message a thread of its own.
            .unwrap_or_else(|| items.iter().map(|i| format!("({})", i.number)).collect())
    })
}

fn thread_references_here(items: &[Item]) -> String {
    let mut nodes: Vec<Node> = Vec::new();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    let is_ancestor = |nodes: &[Node], a: usize, mut b: usize| -> bool {
        // Is `a` an ancestor of (or equal to) `b`?
        let mut guard = 0;
        loop {
            if a == b {
                return true;
            }
            match nodes[b].parent {
                Some(p) if guard < 100_000 => {
                    b = p;
                    guard += 1;
                }
                _ => return false,
            }
        }
    };
    let unlink = |nodes: &mut Vec<Node>, c: usize| {
        if let Some(p) = nodes[c].parent.take() {
            nodes[p].children.retain(|&x| x != c);
        }
    };
    let container =
        |nodes: &mut Vec<Node>, by_id: &mut HashMap<String, usize>, id: &str| -> usize {
            *by_id.entry(id.to_string()).or_insert_with(|| {
                nodes.push(Node::default());
                nodes.len() - 1
            })
        };
    // Step 1: containers and links.
    for (i, item) in items.iter().enumerate() {
        let own = item
            .envelope
            .message_id
            .as_deref()
            .map(msg_ids)
            .and_then(|v| v.into_iter().next());
        // A missing or duplicate Message-ID gets a unique one (§3 1.A).
        let me = match own {
            Some(id) if by_id.get(&id).is_none_or(|&n| nodes[n].item.is_none()) => {
                let n = container(&mut nodes, &mut by_id, &id);
                nodes[n].item = Some(i);
                n
            }
            _ => {
                nodes.push(Node {
                    item: Some(i),
                    ..Node::default()
                });
                nodes.len() - 1
            }
        };
        let mut refs = item.references.as_deref().map(msg_ids).unwrap_or_default();
        // Only the nearest ancestors matter for the tree; a References list
        // of 10,000 ids must not make a 10,000-deep chain of dummies.
        if refs.len() > MAX_REFERENCES {
            refs.drain(..refs.len() - MAX_REFERENCES);
        }
        if refs.is_empty()
            && let Some(irt) = item.envelope.in_reply_to.as_deref()
        {
            refs = msg_ids(irt).into_iter().take(1).collect();
        }
        // 1.B: link the references in order, parent before child.
        let mut prev: Option<usize> = None;
        for id in &refs {
            let c = container(&mut nodes, &mut by_id, id);
            if let Some(p) = prev
                && nodes[c].parent.is_none()
                && !is_ancestor(&nodes, c, p)
            {
                nodes[c].parent = Some(p);
                nodes[p].children.push(c);
            }
            prev = Some(c);
        }
        // 1.C: the message's parent is the last reference. A parent it
        // had already (from a truncated References elsewhere) is let go
        // first; the new link is not made if it would close a loop.
        unlink(&mut nodes, me);
        if let Some(p) = prev
            && !is_ancestor(&nodes, me, p)
        {
            nodes[me].parent = Some(p);
            nodes[p].children.push(me);
        }
    }
    // Step 2: the root set.
    let mut roots: Vec<usize> = (0..nodes.len())
        .filter(|&n| nodes[n].parent.is_none())
        .collect();
    // Step 3: prune dummies.
    fn prune(nodes: &mut Vec<Node>, list: Vec<usize>, at_root: bool) -> Vec<usize> {
        let mut out = Vec::new();
        for n in list {
            let kids = std::mem::take(&mut nodes[n].children);
            let kids = prune(nodes, kids, false);
            nodes[n].children = kids.clone();
            for &k in &kids {
                nodes[k].parent = Some(n);
            }
            if nodes[n].item.is_some() {
                out.push(n);
            } else if kids.is_empty() {
                // An empty dummy goes.
            } else if !at_root || kids.len() == 1 {
                // Promote the children (at the root only a single child).
                for &k in &kids {
                    nodes[k].parent = None;
                }
                out.extend(kids);
            } else {
                out.push(n);
            }
        }
        out
    }
    roots = prune(&mut nodes, roots, true);
    for &r in &roots {
        nodes[r].parent = None;
    }
    // Step 4: sort siblings by sent date.
    fn sort_tree(nodes: &mut Vec<Node>, dates: &[(i64, u32)], list: &mut [usize]) {
        for &n in list.iter() {
            let mut kids = std::mem::take(&mut nodes[n].children);
            sort_tree(nodes, dates, &mut kids);
            nodes[n].children = kids;
        }
        list.sort_by_key(|&n| node_date(nodes, dates, n));
    }
    let dates = dates(items);
    // Step 4: siblings (the root set too) by sent date, before the
    // subject merge walks the root set (RFC 5256 §3, REFERENCES (4)).
    sort_tree(&mut nodes, &dates, &mut roots);
    // Step 5: merge threads with the same base subject.
    let subject_of = |nodes: &[Node], n: usize| -> Option<(String, bool)> {
        let i = nodes[n]
            .item
            .or_else(|| nodes[n].children.first().and_then(|&c| nodes[c].item))?;
        let (s, reply) = base_subject(items[i].envelope.subject.as_deref().unwrap_or(""));
        (!s.is_empty()).then_some((s, reply))
    };
    // (B) One root per base subject: a dummy before a message, a message
    // before a reply or forward to it.
    let mut table: HashMap<String, usize> = HashMap::new();
    for &r in &roots {
        let Some((s, reply)) = subject_of(&nodes, r) else {
            continue;
        };
        let replace = match table.get(&s) {
            None => true,
            Some(&old) => {
                let (old_dummy, r_dummy) = (nodes[old].item.is_none(), nodes[r].item.is_none());
                // A dummy wins over a message; between messages, the
                // original over a reply or forward.
                !old_dummy
                    && (r_dummy || !reply && subject_of(&nodes, old).is_some_and(|(_, re)| re))
            }
        };
        if replace {
            table.insert(s, r);
        }
    }
    // (C) Merge every other root with that subject into the table's. A
    // root merged away leaves the root set; a new dummy takes the table
    // root's place there.
    let mut slots: Vec<Option<usize>> = roots.iter().copied().map(Some).collect();
    for i in 0..slots.len() {
        let Some(r) = slots[i] else { continue };
        let Some((s, reply)) = subject_of(&nodes, r) else {
            continue;
        };
        let target = table[&s];
        if target == r {
            continue;
        }
        let t_dummy = nodes[target].item.is_none();
        let r_dummy = nodes[r].item.is_none();
        if t_dummy && r_dummy {
            // Both dummies: the current one's children join the table's.
            let kids = std::mem::take(&mut nodes[r].children);
            for &k in &kids {
                nodes[k].parent = Some(target);
            }
            nodes[target].children.extend(kids);
        } else if t_dummy || (reply && !subject_of(&nodes, target).is_some_and(|(_, re)| re)) {
            // Into the dummy, or a reply under the original.
            nodes[r].parent = Some(target);
            nodes[target].children.push(r);
        } else {
            // A new dummy holding both, in the table root's place.
            let d = nodes.len();
            nodes.push(Node {
                item: None,
                children: vec![target, r],
                parent: None,
            });
            nodes[target].parent = Some(d);
            nodes[r].parent = Some(d);
            if let Some(slot) = slots.iter_mut().find(|x| **x == Some(target)) {
                *slot = Some(d);
            }
            table.insert(s, d);
        }
        slots[i] = None;
    }
    let mut merged: Vec<usize> = slots.into_iter().flatten().collect();
    sort_tree(&mut nodes, &dates, &mut merged);
    render(&nodes, items, &merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(n: u32, subject: &str, date: &str, id: &str, refs: &str) -> Item {
        Item {
            number: n,
            internaldate: n as i64,
            size: 100 * n as u64,
            envelope: Envelope {
                subject: Some(subject.into()),
                date: (!date.is_empty()).then(|| date.into()),
                message_id: (!id.is_empty()).then(|| format!("<{id}>")),
                from: Some(format!("User{n} <u{}@x>", 10 - n as i64)),
                ..Envelope::default()
            },
            references: (!refs.is_empty()).then(|| refs.into()),
        }
    }

    #[test]
    fn base_subjects_rfc5256() {
        for (raw, base, reply) in [
            ("Re: hello", "hello", true),
            ("RE: Fwd: hello (fwd)", "hello", true),
            ("[list] Re: [other] hello", "hello", true),
            ("[Fwd: hello]", "hello", true),
            ("Fw:   hello   world  ", "hello world", true),
            ("[only a blob]", "[only a blob]", false),
            ("=?utf-8?q?Gr=C3=BC=C3=9Fe?=", "grüße", false),
            ("Re:", "", true),
            ("Hello", "hello", false),
            ("Re: [Fwd: Re: x (fwd)]", "x", true),
            ("ßßßßß (fwd)", "ßßßßß", true),
            ("Grüße aus (fwd)", "grüße aus", true),
        ] {
            // Compared in their i;unicode-casemap form.
            assert_eq!(base_subject(raw), (casemap(base), reply), "{raw}");
        }
    }

    /// RFC 5051 i;unicode-casemap: case folded to upper case and
    /// decomposed, so `[` sorts after letters and accented letters next
    /// to their base letter.
    #[test]
    fn rfc5051_unicode_casemap() {
        assert_eq!(casemap("re: Hello"), "RE: HELLO");
        assert_eq!(casemap("Grüße"), "GRU\u{308}SSE");
        assert!(casemap("[blob]") > casemap("zebra"));
        let mut names = vec!["Bob", "Ärger", "alice", "Zoe", "ärger"];
        names.sort_by_key(|n| casemap(n));
        assert_eq!(names, ["alice", "Ärger", "ärger", "Bob", "Zoe"]);
    }

    #[test]
    fn odd_subjects_do_not_panic() {
        let pieces = [
            "[", "]", "re", "Re", ":", " ", "(fwd)", "ü", "[fwd:", "fw", "\t", "x", "ß]",
        ];
        let mut seed: u64 = 7;
        for _ in 0..3000 {
            let mut s = String::new();
            for _ in 0..(seed % 9) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                s.push_str(pieces[(seed % pieces.len() as u64) as usize]);
            }
            let _ = base_subject(&s);
        }
    }

    #[test]
    fn sort_criteria_and_ties() {
        let items = vec![
            item(1, "b", "Mon, 2 Jan 2023 10:00:00 +0000", "1", ""),
            item(2, "Re: a", "Sun, 1 Jan 2023 10:00:00 +0000", "2", ""),
            item(3, "a", "Sun, 1 Jan 2023 10:00:00 +0000", "3", ""),
        ];
        assert_eq!(sort(&items, &[(false, SortKey::Subject)]), vec![2, 3, 1]);
        assert_eq!(sort(&items, &[(false, SortKey::Date)]), vec![2, 3, 1]);
        assert_eq!(sort(&items, &[(true, SortKey::Arrival)]), vec![3, 2, 1]);
        assert_eq!(sort(&items, &[(false, SortKey::From)]), vec![3, 2, 1]);
        assert_eq!(sort(&items, &[(true, SortKey::Size)]), vec![3, 2, 1]);
        assert_eq!(
            sort(&items, &[(false, SortKey::DisplayFrom)]),
            vec![1, 2, 3]
        );
    }

    #[test]
    fn orderedsubject_threads() {
        let items = vec![
            item(1, "hello", "Sun, 1 Jan 2023 10:00:00 +0000", "1", ""),
            item(2, "other", "Sun, 1 Jan 2023 11:00:00 +0000", "2", ""),
            item(3, "Re: hello", "Sun, 1 Jan 2023 12:00:00 +0000", "3", ""),
            item(4, "Re: hello", "Sun, 1 Jan 2023 13:00:00 +0000", "4", ""),
            item(5, "Re: other", "Sun, 1 Jan 2023 14:00:00 +0000", "5", ""),
        ];
        assert_eq!(thread_orderedsubject(&items), "(1 (3)(4))(2 5)");
    }

    #[test]
    fn huge_reference_lists_and_long_chains_do_not_overflow() {
        let refs: Vec<String> = (0..10_000).map(|i| format!("<q{i}@x>")).collect();
        let mut items = vec![item(1, "refs", "", "h", &refs.join(" "))];
        // A 20,000-message chain, each replying to the one before.
        for n in 2..20_000u32 {
            items.push(item(
                n,
                "chain",
                "",
                &format!("c{n}"),
                &format!("<c{}>", n - 1),
            ));
        }
        let t = thread_references(&items);
        assert!(t.starts_with('(') && t.contains(" 19999"), "{}", &t[..50]);
    }

    #[test]
    fn references_threads() {
        let items = vec![
            item(1, "hello", "Sun, 1 Jan 2023 10:00:00 +0000", "a", ""),
            item(2, "Re: hello", "Sun, 1 Jan 2023 11:00:00 +0000", "b", "<a>"),
            item(
                3,
                "Re: hello",
                "Sun, 1 Jan 2023 12:00:00 +0000",
                "c",
                "<a> <b>",
            ),
            item(4, "Re: hello", "Sun, 1 Jan 2023 13:00:00 +0000", "d", "<a>"),
            item(5, "unrelated", "Sun, 1 Jan 2023 09:00:00 +0000", "e", ""),
            // Its parent is missing: a dummy, pruned, subject-merged.
            item(
                6,
                "Re: lost",
                "Sun, 1 Jan 2023 14:00:00 +0000",
                "f",
                "<gone>",
            ),
            item(
                7,
                "Re: lost",
                "Sun, 1 Jan 2023 15:00:00 +0000",
                "g",
                "<gone>",
            ),
        ];
        assert_eq!(thread_references(&items), "(5)(1 (2 3)(4))((6)(7))");
        // imaptest's `thread` case (RFC 5256 §3 1.C): message 3 is <c>,
        // which message 2 named as its parent after <a>; message 3 names 2
        // as its own parent. The old link (c under a) is broken, the new
        // one would be a loop: 3 heads a thread of its own with 2 under it.
        let itemd = |n: u32, date: &str, id: &str, refs: &str| item(n, "", date, id, refs);
        let imaptest = vec![
            itemd(1, "Fri, 22 Feb 2008 17:06:23 +0000", "a@b", ""),
            itemd(2, "Fri, 22 Feb 2008 15:06:23 +0000", "b@b", "<a@b> <c@b>"),
            itemd(3, "Fri, 22 Feb 2008 16:06:25 +0000", "c@b", "<b@b>"),
        ];
        assert_eq!(thread_references(&imaptest), "(3 2)(1)");
        assert_eq!(thread_references(&imaptest[1..]), "(3 2)");
        // A loop in References does not hang or panic.
        let loopy = vec![item(1, "x", "", "a", "<b>"), item(2, "x", "", "b", "<a>")];
        let t = thread_references(&loopy);
        assert!(t.contains('1') && t.contains('2'), "{t}");
    }
}
