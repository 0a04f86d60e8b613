//! Parser tests: every command, the errors a client sees, the bounds.

use super::*;

fn ok(s: &str) -> CommandKind {
    parse(s.as_bytes())
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .kind
}

/// The error as sent after `BAD` (with its response code).
fn bad(s: &str) -> String {
    parse(s.as_bytes()).unwrap_err().to_string()
}

#[test]
fn credentials_never_show_in_debug() {
    for line in ["a LOGIN alice hunter2", "a AUTHENTICATE PLAIN aHVudGVyMg=="] {
        let cmd = parse(line.as_bytes()).unwrap();
        let shown = format!("{cmd:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("aHVudGVyMg"),
            "{shown}"
        );
        assert!(shown.contains("[REDACTED]"), "{shown}");
    }
}

#[test]
fn rfc9051_examples_parse() {
    assert_eq!(ok("a001 CAPABILITY"), CommandKind::Capability);
    assert_eq!(
        ok("a001 LOGIN SMITH SESAME"),
        CommandKind::Login {
            user: b"SMITH".to_vec(),
            password: Secret::new(b"SESAME".to_vec())
        }
    );
    assert_eq!(
        ok("A001 LOGIN {11+}\r\nFRED FOOBAR {7+}\r\nfat man"),
        CommandKind::Login {
            user: b"FRED FOOBAR".to_vec(),
            password: Secret::new(b"fat man".to_vec())
        }
    );
    assert_eq!(
        ok("a002 login \"al\\\"ice\" \"p w\""),
        CommandKind::Login {
            user: b"al\"ice".to_vec(),
            password: Secret::new(b"p w".to_vec())
        }
    );
    assert!(matches!(
        ok("A142 SELECT INBOX"),
        CommandKind::Select {
            read_only: false,
            ..
        }
    ));
    assert!(matches!(
        ok("A932 EXAMINE blurdybloop"),
        CommandKind::Select {
            read_only: true,
            ..
        }
    ));
    assert!(matches!(
        ok("A202 LIST ~/Mail/ %"),
        CommandKind::List { .. }
    ));
    assert!(matches!(
        ok("A042 STATUS blurdybloop (UIDNEXT MESSAGES)"),
        CommandKind::Status { .. }
    ));
    match ok("A003 APPEND saved-messages (\\Seen) \"05-Nov-1994 14:12:34 -0800\" {5}\r\nHello") {
        CommandKind::Append { messages, .. } => {
            assert_eq!(messages[0].flags, vec!["\\Seen".to_string()]);
            assert_eq!(messages[0].date, Some(784073554));
            assert_eq!(messages[0].content, b"Hello");
        }
        k => panic!("{k:?}"),
    }
    match ok("A654 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])") {
        CommandKind::Fetch { items, .. } => {
            assert_eq!(items[0], FetchItem::Flags);
            assert_eq!(
                items[1],
                FetchItem::BodySection {
                    section: Section {
                        part: vec![],
                        text: Some(SectionText::HeaderFields {
                            not: false,
                            fields: vec!["DATE".into(), "FROM".into()]
                        })
                    },
                    peek: false,
                    partial: None
                }
            );
        }
        k => panic!("{k:?}"),
    }
    match ok("a FETCH 1 (BODY.PEEK[1.2.MIME] BODY[]<0.100> BODY[3.HEADER] RFC822.SIZE)") {
        CommandKind::Fetch { items, .. } => {
            assert_eq!(items.len(), 4);
            assert!(
                matches!(&items[0], FetchItem::BodySection { peek: true, section, .. } if section.part == vec![1, 2] && section.text == Some(SectionText::Mime))
            );
            assert!(matches!(
                &items[1],
                FetchItem::BodySection {
                    partial: Some((0, 100)),
                    ..
                }
            ));
        }
        k => panic!("{k:?}"),
    }
    assert!(matches!(
        ok("A003 STORE 2:4 +FLAGS (\\Deleted)"),
        CommandKind::Store {
            mode: StoreMode::Add,
            silent: false,
            ..
        }
    ));
    assert!(matches!(
        ok("A003 UID STORE 2:4 -FLAGS.SILENT \\Seen $Junk"),
        CommandKind::Store {
            uid: true,
            mode: StoreMode::Remove,
            silent: true,
            ..
        }
    ));
    assert!(matches!(
        ok("A004 UID MOVE 42:69 foo"),
        CommandKind::Copy {
            uid: true,
            moving: true,
            ..
        }
    ));
    assert!(matches!(
        ok("A282 SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\""),
        CommandKind::Search { .. }
    ));
    assert!(matches!(
        ok("A283 SEARCH CHARSET UTF-8 TEXT {4+}\r\nXXXX"),
        CommandKind::Search { .. }
    ));
    assert!(matches!(
        ok("a ID (\"name\" \"x\" \"version\" NIL)"),
        CommandKind::Id(Some(_))
    ));
    assert_eq!(
        ok("a AUTHENTICATE PLAIN AGFsaWNlAGFsaWNl"),
        CommandKind::Authenticate {
            mechanism: "PLAIN".into(),
            initial: Some(Secret::new("AGFsaWNlAGFsaWNl".into()))
        }
    );
    assert!(matches!(
        ok("a UID EXPUNGE 3:5"),
        CommandKind::Expunge { uids: Some(_) }
    ));
    match ok("A02 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))") {
        CommandKind::Select {
            qresync: Some(q), ..
        } => {
            assert_eq!((q.uidvalidity, q.modseq), (67890007, 20050715194045000));
            assert!(q.known_uids.unwrap().contains(43, 1000));
        }
        k => panic!("{k:?}"),
    }
    assert!(matches!(
        ok(
            "B04 SELECT INBOX (QRESYNC (67890007 90060115194045000 41:211,214:541 (1:15,100 41,75:211)))"
        ),
        CommandKind::Select {
            qresync: Some(_),
            ..
        }
    ));
    assert!(matches!(
        ok("a SELECT INBOX (QRESYNC (1 2))"),
        CommandKind::Select {
            qresync: Some(_),
            ..
        }
    ));
    assert!(matches!(
        ok("s100 UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)"),
        CommandKind::Fetch {
            vanished: true,
            changed_since: Some(12345),
            ..
        }
    ));
    assert!(bad("a FETCH 1 FLAGS (CHANGEDSINCE 1 VANISHED)").contains("VANISHED"));
    assert!(matches!(
        ok("A282 SEARCH RETURN (MIN COUNT) FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\""),
        CommandKind::Search { ret: Some(r), .. } if r == vec![SearchReturn::Min, SearchReturn::Count]
    ));
    assert!(matches!(
        ok("A283 UID SEARCH RETURN () CHARSET UTF-8 ALL"),
        CommandKind::Search { uid: true, ret: Some(r), .. } if r == vec![SearchReturn::All]
    ));
    assert!(matches!(ok("a FETCH $ FLAGS"), CommandKind::Fetch { set, .. } if set.is_saved()));
    assert!(matches!(
        ok("a SEARCH $ UNSEEN"),
        CommandKind::Search { .. }
    ));
    assert!(matches!(
        ok("a SEARCH YOUNGER 3600 OLDER 60"),
        CommandKind::Search { .. }
    ));
    match ok(
        "A02 LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (\"%\" Work/*) RETURN (CHILDREN STATUS (MESSAGES SIZE))",
    ) {
        CommandKind::List {
            select,
            patterns,
            returns: Some(r),
            ..
        } => {
            assert_eq!(select, vec!["SUBSCRIBED", "RECURSIVEMATCH"]);
            assert_eq!(patterns.len(), 2);
            assert!(r.children && !r.subscribed);
            assert_eq!(r.status, Some(vec![StatusItem::Messages, StatusItem::Size]));
        }
        k => panic!("{k:?}"),
    }
    assert!(matches!(
        ok("a LIST \"\" *"),
        CommandKind::List { returns: None, .. }
    ));
    assert!(matches!(
        ok("a LIST \"\" % RETURN (SPECIAL-USE)"),
        CommandKind::List {
            returns: Some(_),
            ..
        }
    ));
    assert!(bad("a LIST (RECURSIVEMATCH) \"\" *").contains("RECURSIVEMATCH"));
    match ok("t1 CREATE MySpecial (USE (\\Drafts \\Sent))") {
        CommandKind::Create { uses, .. } => assert_eq!(uses, vec!["\\Drafts", "\\Sent"]),
        k => panic!("{k:?}"),
    }
    assert!(matches!(
        ok("G0001 GETQUOTAROOT INBOX"),
        CommandKind::GetQuotaRoot(_)
    ));
    assert!(matches!(
        ok("S0000 SETQUOTA \"User quota\" (STORAGE 512)"),
        CommandKind::SetQuota(_)
    ));
}

#[test]
fn sort_and_thread() {
    use crate::sort::SortKey;
    match ok("A282 SORT (SUBJECT REVERSE DATE) UTF-8 ALL") {
        CommandKind::Sort { criteria, uid, .. } => {
            assert!(!uid);
            assert_eq!(
                criteria,
                vec![(false, SortKey::Subject), (true, SortKey::Date)]
            );
        }
        k => panic!("{k:?}"),
    }
    assert!(matches!(
        ok("A283 UID SORT (REVERSE ARRIVAL) US-ASCII UNSEEN"),
        CommandKind::Sort { uid: true, .. }
    ));
    assert!(matches!(
        ok("A284 THREAD REFERENCES UTF-8 SINCE 5-MAR-2000"),
        CommandKind::Thread {
            references: true,
            ..
        }
    ));
    assert!(matches!(
        ok("A285 UID THREAD ORDEREDSUBJECT UTF-8 ALL"),
        CommandKind::Thread {
            references: false,
            uid: true,
            ..
        }
    ));
    assert!(bad("a SORT (FOO) UTF-8 ALL").contains("unknown sort criterion"));
    assert!(bad("a THREAD X UTF-8 ALL").contains("unknown thread algorithm"));
    assert!(bad("a SORT (DATE) KOI8-R ALL").contains("BADCHARSET"));
}

#[test]
fn multiappend_utf8_and_binary() {
    match ok(
        "A003 APPEND saved-messages (\\Seen) {3+}\r\nabc \"01-Jan-2020 00:00:00 +0000\" {2+}\r\nde UTF8 (~{1+}\r\nf)",
    ) {
        CommandKind::Append { messages, .. } => {
            assert_eq!(messages.len(), 3);
            assert_eq!(messages[1].content, b"de");
            assert!(messages[1].date.is_some() && messages[1].flags.is_empty());
            assert!(messages[2].utf8);
        }
        k => panic!("{k:?}"),
    }
    assert!(matches!(
        ok("a FETCH 1 (BINARY.PEEK[1.2]<0.10> BINARY.SIZE[1] BINARY[])"),
        CommandKind::Fetch { items, .. } if items.len() == 3
    ));
    assert!(bad("a FETCH 1 BINARY[1.HEADER]").contains("part numbers"));
}

#[test]
fn errors_name_the_problem_and_keep_the_tag() {
    let e = parse(b"a1 FROB").unwrap_err();
    assert_eq!(e.tag.as_deref(), Some("a1"));
    assert!(e.reason.contains("unknown command FROB"));
    assert!(bad("a1 LOGIN alice").contains("space"));
    assert!(bad("a1 FETCH 1 (FLAGS").contains("expected"));
    assert!(bad("a1 SELECT INBOX extra").contains("expected"));
    assert!(bad("a1 NOOP extra").contains("unexpected"));
    assert!(parse(b"").unwrap_err().tag.is_none());
    assert!(bad("a1 SEARCH CHARSET KOI8-R ALL").contains("BADCHARSET"));
    assert!(bad("a1 FETCH 0 FLAGS").contains("sequence"));
    assert!(bad("a LOGIN {10}\r\nshort").contains("shorter"));
}

#[test]
fn nesting_is_bounded() {
    let deep = format!("a SEARCH {}ALL{}", "(".repeat(100), ")".repeat(100));
    assert!(bad(&deep).contains("deeply"));
    let nots = format!("a SEARCH {}ALL", "NOT ".repeat(100));
    assert!(bad(&nots).contains("deeply"));
    let ok_depth = format!("a SEARCH {}ALL{}", "(".repeat(10), ")".repeat(10));
    assert!(parse(ok_depth.as_bytes()).is_ok());
}

#[test]
fn dates() {
    assert_eq!(parse_date(b"1-Jan-1970"), Some(0));
    assert_eq!(
        parse_date(b"01-feb-1994"),
        Some(days_from_civil(1994, 2, 1))
    );
    assert_eq!(parse_date(b"32-Jan-1994"), None);
    assert_eq!(parse_date(b"31-Feb-2020"), None);
    assert_eq!(
        parse_date(b"29-Feb-2020"),
        Some(days_from_civil(2020, 2, 29))
    );
    assert_eq!(parse_date(b"29-Feb-2100"), None);
    assert_eq!(parse_date(b"1-Jan-99999"), None);
    assert_eq!(parse_date_time(b"01-Jan-1970 00:00:00 +0100"), Some(-3600));
}

#[test]
fn every_prefix_of_a_command_is_rejected_not_panicking() {
    let full =
        "a1 UID FETCH 1:*,3 (FLAGS BODY.PEEK[1.HEADER.FIELDS.NOT (x y)]<1.2>) (CHANGEDSINCE 5)";
    assert!(parse(full.as_bytes()).is_ok());
    for i in 0..full.len() {
        let _ = parse(&full.as_bytes()[..i]);
    }
}
