//! IMAP clients nobody here wrote, against the real binary: Python's
//! imaplib (every command it has), curl (imap://, imaps://, STARTTLS,
//! upload), mbsync (two-way sync with a Maildir) and offlineimap.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

const USER: &str = "alice@example.test";
const PASS: &str = "alice-pw";

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn lf(b: &[u8]) -> String {
    String::from_utf8_lossy(b).replace("\r\n", "\n")
}

#[test]
fn python_imaplib_full_session() {
    if !require("python3") {
        return;
    }
    let s = Server::start("");
    let out = run_with_stdin(
        Command::new("python3").args([
            &format!("{CLIENTS}/imaplib_session.py"),
            "127.0.0.1",
            &s.addr("imap").port().to_string(),
            &s.addr("imaps").port().to_string(),
            USER,
            PASS,
        ]),
        b"",
    );
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("all checks passed"));
}

#[test]
fn curl_list_search_fetch_upload_with_and_without_tls() {
    if !require("curl") {
        return;
    }
    let s = Server::start("");
    let dir = tempfile::tempdir().unwrap();
    let eml = dir.path().join("up.eml");
    let msg = b"From: carol@remote.test\r\nSubject: via curl\r\n\r\nuploaded\r\n.dot line\r\n";
    std::fs::write(&eml, msg).unwrap();
    let imap = format!("imap://{}", s.addr("imap"));
    let imaps = format!("imaps://{}", s.addr("imaps"));
    let user = format!("{USER}:{PASS}");
    let curl = |args: &[&str]| {
        let out = run_with_stdin(
            Command::new("curl")
                .args(["-s", "-S", "--max-time", "20", "-u", &user])
                .args(args),
            b"",
        );
        assert_eq!(out.code, 0, "curl {args:?}: {}", out.stderr);
        out.stdout
    };
    curl(&["-T", eml.to_str().unwrap(), &format!("{imap}/INBOX")]);
    let list = curl(&[&format!("{imap}/")]);
    assert!(
        list.contains("* LIST (\\HasNoChildren) \"/\" \"INBOX\""),
        "{list}"
    );
    assert!(list.contains("\\Sent"), "{list}");
    let search = curl(&[&format!("{imap}/INBOX?SUBJECT%20curl")]);
    assert_eq!(search.trim(), "* SEARCH 1");
    // Byte-identical, over STARTTLS and over implicit TLS.
    let got = curl(&["--ssl-reqd", "-k", &format!("{imap}/INBOX;UID=1")]);
    assert_eq!(got.as_bytes(), msg);
    let text = curl(&["-k", &format!("{imaps}/INBOX;UID=1;SECTION=TEXT")]);
    assert_eq!(text.as_bytes(), b"uploaded\r\n.dot line\r\n");
    let examine = curl(&[
        "--login-options",
        "AUTH=PLAIN",
        &format!("{imap}/INBOX"),
        "-X",
        "EXAMINE INBOX",
    ]);
    assert!(examine.contains("* 1 EXISTS"), "{examine}");
    assert!(examine.contains("[PERMANENTFLAGS ()]"), "{examine}");
}

#[test]
fn mbsync_two_way_sync_with_a_maildir() {
    if !require("mbsync") {
        return;
    }
    let s = Server::start("");
    s.deliver("sender@remote.test", &[USER], &message("synced", "one\r\n"))
        .success();
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("mail");
    std::fs::create_dir_all(&local).unwrap();
    let rc = dir.path().join("mbsyncrc");
    std::fs::write(
        &rc,
        format!(
            "IMAPAccount postamt\nHost 127.0.0.1\nPort {}\nUser {USER}\nPass {PASS}\nSSLType None\nAuthMechs LOGIN\n\n\
             IMAPStore remote\nAccount postamt\n\n\
             MaildirStore local\nPath {l}/\nInbox {l}/INBOX\nSubFolders Verbatim\n\n\
             Channel sync\nFar :remote:\nNear :local:\nPatterns *\nCreate Both\nExpunge Both\nSyncState *\n",
            s.addr("imap").port(),
            l = local.display()
        ),
    )
    .unwrap();
    let sync = || {
        let out = run_with_stdin(Command::new("mbsync").arg("-c").arg(&rc).arg("-a"), b"");
        assert_eq!(out.code, 0, "mbsync: {}\n{}", out.stdout, out.stderr);
    };
    sync();
    let inbox: Vec<_> = files_under(&local.join("INBOX/cur"))
        .into_iter()
        .chain(files_under(&local.join("INBOX/new")))
        .collect();
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    // mbsync stores LF line endings and adds its own X-TUID header.
    let got = lf(&std::fs::read(&inbox[0]).unwrap());
    assert!(
        got.contains("Subject: synced\nMessage-ID: <synced@remote.test>\n"),
        "{got}"
    );
    assert!(got.ends_with("\n\none\n"), "{got}");
    for special in ["Sent", "Trash", "Drafts", "Junk", "Archive"] {
        assert!(local.join(special).is_dir(), "{special} not synced");
    }
    // Local changes go up: a flag, and a new message in a new folder.
    let flagged = format!("{},F", inbox[0].display());
    std::fs::rename(&inbox[0], &flagged).unwrap();
    std::fs::create_dir_all(local.join("Projekte/new")).unwrap();
    std::fs::create_dir_all(local.join("Projekte/cur")).unwrap();
    std::fs::create_dir_all(local.join("Projekte/tmp")).unwrap();
    std::fs::write(
        local.join("Projekte/new/1.local"),
        b"Subject: from the maildir\r\n\r\nlocal\r\n",
    )
    .unwrap();
    sync();
    let mut c = Imap::connect(s.addr("imap"));
    c.login(USER, PASS);
    c.ok("a1", "SELECT INBOX");
    let u = c.ok("a2", "FETCH 1 FLAGS");
    assert!(u[0].contains("\\Flagged"), "{u:?}");
    let u = c.ok("a3", "STATUS Projekte (MESSAGES)");
    assert!(u[0].contains("MESSAGES 1"), "{u:?}");
    // A server-side expunge removes the local copy on the next sync.
    c.ok("a4", "STORE 1 +FLAGS (\\Deleted)");
    c.ok("a5", "EXPUNGE");
    sync();
    let left: Vec<_> = files_under(&local.join("INBOX"))
        .into_iter()
        .filter(|p| {
            p.parent()
                .is_some_and(|d| d.ends_with("cur") || d.ends_with("new"))
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn offlineimap_downloads_every_folder() {
    if !require("offlineimap") {
        return;
    }
    let s = Server::start("");
    s.deliver(
        "sender@remote.test",
        &[USER],
        &message("offline", "two\r\n"),
    )
    .success();
    let dir = tempfile::tempdir().unwrap();
    let rc = dir.path().join("offlineimaprc");
    std::fs::write(
        &rc,
        format!(
            "[general]\naccounts = test\nmetadata = {d}/meta\n\n[Account test]\nlocalrepository = local\nremoterepository = remote\n\n\
             [Repository local]\ntype = Maildir\nlocalfolders = {d}/mail\n\n\
             [Repository remote]\ntype = IMAP\nremotehost = 127.0.0.1\nremoteport = {}\nremoteuser = {USER}\nremotepass = {PASS}\nssl = no\nstarttls = no\n",
            s.addr("imap").port(),
            d = dir.path().display()
        ),
    )
    .unwrap();
    let out = run_with_stdin(
        Command::new("offlineimap")
            .arg("-c")
            .arg(&rc)
            .args(["-o", "-u", "basic"]),
        b"",
    );
    assert_eq!(out.code, 0, "offlineimap: {}\n{}", out.stdout, out.stderr);
    assert!(!out.stderr.contains("ERROR"), "{}", out.stderr);
    let got: Vec<_> = files_under(&dir.path().join("mail/INBOX"));
    assert_eq!(got.len(), 1, "{got:?}");
    let text = lf(&std::fs::read(&got[0]).unwrap());
    assert!(
        text.ends_with("Subject: offline\nMessage-ID: <offline@remote.test>\n\ntwo\n"),
        "{text}"
    );
}
