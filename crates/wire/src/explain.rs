//! What a protocol line means, in a few words, with the RFC section that
//! defines it — in English and German. Used by `postamt mail --explain`
//! (the client's transcript) and meant for the server's transcripts too.
//!
//! Commands are looked up by their verb; replies by their code (SMTP: the
//! three digits, refined by the enhanced status code and the command they
//! answer; POP3: `+OK`/`-ERR` and the command they answer).

/// The language of the explanations (and of `postamt analyze`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Lang {
    #[default]
    En,
    De,
}

impl Lang {
    /// `de` for a German locale (`de_DE.UTF-8`, `de`), else English.
    pub fn from_locale(s: &str) -> Lang {
        if s.to_ascii_lowercase().starts_with("de") {
            Lang::De
        } else {
            Lang::En
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Smtp,
    Pop3,
    Imap,
}

/// One explanation: the text and where the rule is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Explanation {
    pub text: &'static str,
    pub rfc: &'static str,
}

type Entry = (&'static str, &'static str, &'static str, &'static str);

// (key, English, German, RFC section)
const SMTP_COMMANDS: &[Entry] = &[
    (
        "EHLO",
        "The client greets the server with its name and asks which SMTP extensions it offers.",
        "Der Client begrüßt den Server mit seinem Namen und fragt, welche SMTP-Erweiterungen er anbietet.",
        "RFC 5321 §4.1.1.1",
    ),
    (
        "HELO",
        "The client greets the server (old form, without extensions).",
        "Der Client begrüßt den Server (alte Form, ohne Erweiterungen).",
        "RFC 5321 §4.1.1.1",
    ),
    (
        "STARTTLS",
        "The client asks to switch this connection to TLS encryption.",
        "Der Client bittet darum, diese Verbindung auf TLS-Verschlüsselung umzustellen.",
        "RFC 3207 §4",
    ),
    (
        "AUTH",
        "The client logs in (SASL); the credentials are hidden here.",
        "Der Client meldet sich an (SASL); die Zugangsdaten sind hier verborgen.",
        "RFC 4954 §4",
    ),
    (
        "MAIL",
        "The envelope sender: where bounces go. It need not match the From: header.",
        "Der Umschlag-Absender: dorthin gehen Fehlermeldungen. Er muss nicht zur From:-Kopfzeile passen.",
        "RFC 5321 §4.1.1.2",
    ),
    (
        "RCPT",
        "One envelope recipient. Bcc recipients exist only here, never in the header.",
        "Ein Umschlag-Empfänger. Bcc-Empfänger stehen nur hier, nie im Kopf.",
        "RFC 5321 §4.1.1.3",
    ),
    (
        "DATA",
        "The client is about to send the message itself (header and body).",
        "Der Client will jetzt die Nachricht selbst senden (Kopf und Rumpf).",
        "RFC 5321 §4.1.1.4",
    ),
    (
        "BDAT",
        "A chunk of the message with its length announced (no dot-stuffing).",
        "Ein Stück der Nachricht mit angekündigter Länge (ohne Punkt-Verdopplung).",
        "RFC 3030 §2",
    ),
    (
        ".",
        "A line with only a dot ends the message; dots at line starts were doubled before.",
        "Eine Zeile nur mit einem Punkt beendet die Nachricht; Punkte am Zeilenanfang wurden vorher verdoppelt.",
        "RFC 5321 §4.5.2",
    ),
    (
        "RSET",
        "Forget the transaction in progress.",
        "Die laufende Transaktion verwerfen.",
        "RFC 5321 §4.1.1.5",
    ),
    (
        "NOOP",
        "Do nothing; checks that the server is still there.",
        "Nichts tun; prüft, ob der Server noch da ist.",
        "RFC 5321 §4.1.1.9",
    ),
    (
        "QUIT",
        "The client ends the session.",
        "Der Client beendet die Sitzung.",
        "RFC 5321 §4.1.1.10",
    ),
    (
        "MESSAGE",
        "The message itself (shortened here).",
        "Die Nachricht selbst (hier gekürzt).",
        "RFC 5322",
    ),
];

const POP3_COMMANDS: &[Entry] = &[
    (
        "CAPA",
        "The client asks which POP3 capabilities the server has.",
        "Der Client fragt, welche POP3-Fähigkeiten der Server hat.",
        "RFC 2449 §5",
    ),
    (
        "STLS",
        "The client asks to switch this connection to TLS encryption.",
        "Der Client bittet darum, diese Verbindung auf TLS-Verschlüsselung umzustellen.",
        "RFC 2595 §4",
    ),
    ("USER", "The login name.", "Der Anmeldename.", "RFC 1939 §7"),
    (
        "PASS",
        "The password (hidden here). Only ever send it over TLS.",
        "Das Passwort (hier verborgen). Nur über TLS senden.",
        "RFC 1939 §7",
    ),
    (
        "AUTH",
        "The client logs in with SASL; the credentials are hidden here.",
        "Der Client meldet sich mit SASL an; die Zugangsdaten sind hier verborgen.",
        "RFC 5034 §4",
    ),
    (
        "STAT",
        "How many messages are in the mailbox, and their total size in octets.",
        "Wie viele Nachrichten im Postfach liegen und ihre Gesamtgröße in Oktetten.",
        "RFC 1939 §5",
    ),
    (
        "LIST",
        "The size of each message, by its number in this session.",
        "Die Größe jeder Nachricht, nach ihrer Nummer in dieser Sitzung.",
        "RFC 1939 §5",
    ),
    (
        "UIDL",
        "A unique id per message that stays the same across sessions.",
        "Eine eindeutige Kennung je Nachricht, die über Sitzungen gleich bleibt.",
        "RFC 1939 §7",
    ),
    (
        "TOP",
        "The header of a message and the first n lines of its body.",
        "Der Kopf einer Nachricht und die ersten n Zeilen ihres Rumpfs.",
        "RFC 1939 §7",
    ),
    (
        "RETR",
        "The whole message.",
        "Die ganze Nachricht.",
        "RFC 1939 §5",
    ),
    (
        "DELE",
        "Mark a message for deletion; it is removed only at QUIT.",
        "Eine Nachricht zum Löschen markieren; entfernt wird sie erst bei QUIT.",
        "RFC 1939 §5",
    ),
    (
        "RSET",
        "Unmark all messages marked for deletion.",
        "Alle Löschmarkierungen aufheben.",
        "RFC 1939 §5",
    ),
    (
        "NOOP",
        "Do nothing; keeps the session alive.",
        "Nichts tun; hält die Sitzung am Leben.",
        "RFC 1939 §5",
    ),
    (
        "QUIT",
        "End the session; marked messages are deleted now (UPDATE state).",
        "Sitzung beenden; markierte Nachrichten werden jetzt gelöscht (UPDATE-Zustand).",
        "RFC 1939 §6",
    ),
];

const IMAP_COMMANDS: &[Entry] = &[
    (
        "CAPABILITY",
        "The client asks what the server can do.",
        "Der Client fragt, was der Server kann.",
        "RFC 9051 §6.1.1",
    ),
    (
        "STARTTLS",
        "The client asks to switch this connection to TLS encryption.",
        "Der Client bittet darum, diese Verbindung auf TLS-Verschlüsselung umzustellen.",
        "RFC 9051 §6.2.1",
    ),
    (
        "LOGIN",
        "Log in with name and password (the password is hidden here).",
        "Anmelden mit Name und Passwort (das Passwort ist hier verborgen).",
        "RFC 9051 §6.2.3",
    ),
    (
        "AUTHENTICATE",
        "Log in with SASL; the credentials are hidden here.",
        "Anmelden mit SASL; die Zugangsdaten sind hier verborgen.",
        "RFC 9051 §6.2.2",
    ),
    (
        "SELECT",
        "Open a mailbox for reading and changing; the server reports its state.",
        "Ein Postfach zum Lesen und Ändern öffnen; der Server meldet seinen Zustand.",
        "RFC 9051 §6.3.2",
    ),
    (
        "EXAMINE",
        "Open a mailbox read-only.",
        "Ein Postfach nur zum Lesen öffnen.",
        "RFC 9051 §6.3.3",
    ),
    (
        "LIST",
        "Which mailboxes exist (and their special uses, like \\Sent).",
        "Welche Postfächer es gibt (und ihre besonderen Rollen, etwa \\Sent).",
        "RFC 9051 §6.3.9, RFC 6154",
    ),
    (
        "CREATE",
        "Create a mailbox.",
        "Ein Postfach anlegen.",
        "RFC 9051 §6.3.4",
    ),
    (
        "UID SEARCH",
        "Which messages match; answered with UIDs, which stay valid across sessions.",
        "Welche Nachrichten passen; Antwort mit UIDs, die über Sitzungen gültig bleiben.",
        "RFC 9051 §6.4.4, §6.4.9",
    ),
    (
        "UID FETCH",
        "Get parts of messages by UID; BODY.PEEK does not set \\Seen.",
        "Teile von Nachrichten per UID holen; BODY.PEEK setzt \\Seen nicht.",
        "RFC 9051 §6.4.5, §6.4.9",
    ),
    (
        "UID STORE",
        "Change the flags of a message (e.g. \\Seen, \\Deleted).",
        "Die Markierungen einer Nachricht ändern (z. B. \\Seen, \\Deleted).",
        "RFC 9051 §6.4.6",
    ),
    (
        "UID MOVE",
        "Move a message to another mailbox in one step.",
        "Eine Nachricht in einem Schritt in ein anderes Postfach verschieben.",
        "RFC 6851 §3.1",
    ),
    (
        "UID COPY",
        "Copy a message to another mailbox.",
        "Eine Nachricht in ein anderes Postfach kopieren.",
        "RFC 9051 §6.4.7",
    ),
    (
        "UID EXPUNGE",
        "Remove just these \\Deleted messages for good.",
        "Nur diese mit \\Deleted markierten Nachrichten endgültig entfernen.",
        "RFC 4315 §2.1",
    ),
    (
        "EXPUNGE",
        "Remove all messages marked \\Deleted for good.",
        "Alle mit \\Deleted markierten Nachrichten endgültig entfernen.",
        "RFC 9051 §6.4.3",
    ),
    (
        "APPEND",
        "Store a message in a mailbox (e.g. a copy in Sent).",
        "Eine Nachricht in einem Postfach ablegen (etwa eine Kopie in Gesendet).",
        "RFC 9051 §6.3.12",
    ),
    (
        "LOGOUT",
        "End the session.",
        "Die Sitzung beenden.",
        "RFC 9051 §6.1.3",
    ),
    (
        "MESSAGE",
        "The message itself, sent as a literal (shortened here).",
        "Die Nachricht selbst, als Literal gesendet (hier gekürzt).",
        "RFC 9051 §4.3",
    ),
];

const IMAP_RESPONSES: &[Entry] = &[
    (
        "GREETING",
        "The server is ready; the session starts unauthenticated.",
        "Der Server ist bereit; die Sitzung beginnt unangemeldet.",
        "RFC 9051 §7.1.1",
    ),
    (
        "PREAUTH",
        "The server greets and considers the client logged in already.",
        "Der Server grüßt und betrachtet den Client schon als angemeldet.",
        "RFC 9051 §7.1.4",
    ),
    (
        "CAPABILITY",
        "What the server can do: protocol versions, extensions, login methods.",
        "Was der Server kann: Protokollversionen, Erweiterungen, Anmeldeverfahren.",
        "RFC 9051 §7.2.2",
    ),
    (
        "EXISTS",
        "How many messages the mailbox holds now.",
        "Wie viele Nachrichten das Postfach jetzt enthält.",
        "RFC 9051 §7.4.1",
    ),
    (
        "RECENT",
        "How many messages are new since the last session (IMAP4rev1 only).",
        "Wie viele Nachrichten seit der letzten Sitzung neu sind (nur IMAP4rev1).",
        "RFC 3501 §7.3.2",
    ),
    (
        "FLAGS",
        "The flags this mailbox knows.",
        "Die Markierungen, die dieses Postfach kennt.",
        "RFC 9051 §7.3.5",
    ),
    (
        "UIDVALIDITY",
        "UIDs are valid as long as this number stays the same.",
        "UIDs gelten, solange diese Zahl gleich bleibt.",
        "RFC 9051 §2.3.1.1",
    ),
    (
        "UIDNEXT",
        "The UID the next new message will get.",
        "Die UID, die die nächste neue Nachricht bekommt.",
        "RFC 9051 §7.1",
    ),
    (
        "PERMANENTFLAGS",
        "The flags the client may change for good.",
        "Die Markierungen, die der Client dauerhaft ändern darf.",
        "RFC 9051 §7.1",
    ),
    (
        "LIST",
        "One mailbox: its attributes, hierarchy delimiter and name.",
        "Ein Postfach: seine Attribute, Trennzeichen und Name.",
        "RFC 9051 §7.3.1",
    ),
    (
        "SEARCH",
        "The UIDs (or numbers) of the matching messages.",
        "Die UIDs (oder Nummern) der passenden Nachrichten.",
        "RFC 3501 §7.2.5",
    ),
    (
        "ESEARCH",
        "The matching messages, in the compact IMAP4rev2 form.",
        "Die passenden Nachrichten, in der kompakten IMAP4rev2-Form.",
        "RFC 9051 §7.3.4",
    ),
    (
        "FETCH",
        "Data about one message (its sequence number comes first).",
        "Daten zu einer Nachricht (ihre Sequenznummer steht vorn).",
        "RFC 9051 §7.5.2",
    ),
    (
        "EXPUNGE",
        "A message is gone; the numbers of later ones drop by one.",
        "Eine Nachricht ist weg; die Nummern der späteren sinken um eins.",
        "RFC 9051 §7.5.1",
    ),
    (
        "VANISHED",
        "These UIDs are gone (QRESYNC).",
        "Diese UIDs sind weg (QRESYNC).",
        "RFC 7162 §3.2.10",
    ),
    (
        "BYE",
        "The server closes the connection.",
        "Der Server schließt die Verbindung.",
        "RFC 9051 §7.1.5",
    ),
    (
        "CONTINUE",
        "Go on: send the literal (or the next SASL step).",
        "Weiter: das Literal (oder den nächsten SASL-Schritt) senden.",
        "RFC 9051 §7.6",
    ),
    (
        "LITERAL",
        "A literal: exactly this many octets of data follow.",
        "Ein Literal: genau so viele Oktette Daten folgen.",
        "RFC 9051 §4.3",
    ),
    (
        "OK",
        "Information from the server.",
        "Eine Information des Servers.",
        "RFC 9051 §7.1.1",
    ),
    (
        "TAGGED OK",
        "The command with this tag is done.",
        "Der Befehl mit dieser Marke ist erledigt.",
        "RFC 9051 §7.1.1",
    ),
    (
        "TAGGED NO",
        "The command with this tag failed; the text says why.",
        "Der Befehl mit dieser Marke ist gescheitert; der Text sagt warum.",
        "RFC 9051 §7.1.2",
    ),
    (
        "TAGGED BAD",
        "The server did not understand the command (protocol error).",
        "Der Server hat den Befehl nicht verstanden (Protokollfehler).",
        "RFC 9051 §7.1.3",
    ),
];

// Replies: (code or "code:command" or "code:enhanced", en, de, rfc)
const SMTP_REPLIES: &[Entry] = &[
    (
        "220:",
        "The server is ready and introduces itself.",
        "Der Server ist bereit und stellt sich vor.",
        "RFC 5321 §4.2, §3.1",
    ),
    (
        "220:STARTTLS",
        "Go ahead: the TLS handshake starts now; everything before it is forgotten.",
        "Bitte: der TLS-Handshake beginnt jetzt; alles davor wird vergessen.",
        "RFC 3207 §4",
    ),
    (
        "250:EHLO",
        "The server's name and, line by line, the extensions it offers.",
        "Der Name des Servers und, Zeile für Zeile, die Erweiterungen, die er anbietet.",
        "RFC 5321 §4.1.1.1",
    ),
    (
        "250:HELO",
        "The server greets back.",
        "Der Server grüßt zurück.",
        "RFC 5321 §4.1.1.1",
    ),
    (
        "250:MAIL",
        "The server accepted the envelope sender; it has not verified that you own it.",
        "Der Server hat den Umschlag-Absender angenommen; dass er Ihnen gehört, hat er damit nicht geprüft.",
        "RFC 5321 §4.1.1.2",
    ),
    (
        "250:RCPT",
        "The server accepts mail for this recipient (not yet the message).",
        "Der Server nimmt Post für diesen Empfänger an (noch nicht die Nachricht).",
        "RFC 5321 §4.1.1.3",
    ),
    (
        "250:.",
        "The server has taken responsibility for the message: from now on it must deliver it or bounce it.",
        "Der Server hat die Verantwortung für die Nachricht übernommen: er muss sie jetzt zustellen oder zurückweisen.",
        "RFC 5321 §4.1.1.4, §6.1",
    ),
    (
        "250:BDAT",
        "The server has the chunk (and with LAST, the message).",
        "Der Server hat das Stück (mit LAST: die Nachricht).",
        "RFC 3030 §2",
    ),
    (
        "250:",
        "Requested action done.",
        "Gewünschte Aktion ausgeführt.",
        "RFC 5321 §4.2.2",
    ),
    (
        "235:",
        "Login accepted.",
        "Anmeldung angenommen.",
        "RFC 4954 §6",
    ),
    (
        "334:",
        "The server waits for the next part of the login (base64).",
        "Der Server erwartet den nächsten Teil der Anmeldung (base64).",
        "RFC 4954 §4",
    ),
    (
        "354:",
        "Send the message now; end it with a line holding only a dot.",
        "Jetzt die Nachricht senden; mit einer Zeile, die nur einen Punkt enthält, beenden.",
        "RFC 5321 §4.1.1.4",
    ),
    (
        "221:",
        "The server closes the connection.",
        "Der Server schließt die Verbindung.",
        "RFC 5321 §4.1.1.10",
    ),
    (
        "421:",
        "The server is closing the connection (busy, shutting down, or too many errors); try later.",
        "Der Server schließt die Verbindung (überlastet, fährt herunter oder zu viele Fehler); später erneut versuchen.",
        "RFC 5321 §4.2.3, §3.8",
    ),
    (
        "451:",
        "Temporary failure on the server's side; the client should try again later.",
        "Vorübergehender Fehler beim Server; der Client soll es später erneut versuchen.",
        "RFC 5321 §4.2.3",
    ),
    (
        "452:",
        "Temporarily not possible (too many recipients, mailbox or disk full).",
        "Vorübergehend nicht möglich (zu viele Empfänger, Postfach oder Platte voll).",
        "RFC 5321 §4.2.3, §4.5.3.1.10",
    ),
    (
        "4",
        "A temporary failure: trying again later may work.",
        "Ein vorübergehender Fehler: ein späterer Versuch kann gelingen.",
        "RFC 5321 §4.2.1",
    ),
    (
        "500:",
        "The server did not understand the command (syntax error).",
        "Der Server hat den Befehl nicht verstanden (Syntaxfehler).",
        "RFC 5321 §4.2.3",
    ),
    (
        "503:",
        "Bad sequence of commands (e.g. RCPT before MAIL).",
        "Falsche Reihenfolge der Befehle (z. B. RCPT vor MAIL).",
        "RFC 5321 §4.2.3",
    ),
    (
        "530:",
        "Log in first (AUTH), usually after STARTTLS.",
        "Zuerst anmelden (AUTH), meist nach STARTTLS.",
        "RFC 4954 §6",
    ),
    (
        "535:",
        "Login failed: wrong name or password.",
        "Anmeldung fehlgeschlagen: falscher Name oder falsches Passwort.",
        "RFC 4954 §6",
    ),
    (
        "550:5.1.1",
        "No such mailbox here.",
        "Dieses Postfach gibt es hier nicht.",
        "RFC 5321 §4.2.3, RFC 3463 §3.2",
    ),
    (
        "550:5.7.1",
        "Refused by policy (e.g. relaying or a forged sender).",
        "Aus Richtliniengründen abgelehnt (z. B. Weiterleitung oder gefälschter Absender).",
        "RFC 3463 §3.8",
    ),
    (
        "550:5.7.23",
        "Refused: SPF says the sending machine may not send for this sender's domain.",
        "Abgelehnt: Laut SPF darf der sendende Rechner nicht für die Domain dieses Absenders senden.",
        "RFC 7208 §8.4, RFC 7372 §3.2",
    ),
    (
        "550:5.7.26",
        "Refused: the From: domain asks to reject mail that neither SPF nor DKIM vouches for (DMARC p=reject) — a forged sender.",
        "Abgelehnt: Die From:-Domain verlangt, Mail abzuweisen, für die weder SPF noch DKIM bürgt (DMARC p=reject) — ein gefälschter Absender.",
        "RFC 7489 §6.3, RFC 7372 §3.2",
    ),
    (
        "451:4.7.24",
        "Not now: the SPF check could not be finished (DNS trouble); the sender tries again later.",
        "Jetzt nicht: Die SPF-Prüfung ließ sich nicht abschließen (DNS-Probleme); der Absender versucht es später erneut.",
        "RFC 7208 §8.6, RFC 7372 §3.2",
    ),
    (
        "451:4.7.5",
        "Not now: the DMARC check could not be finished (DNS trouble); the sender tries again later.",
        "Jetzt nicht: Die DMARC-Prüfung ließ sich nicht abschließen (DNS-Probleme); der Absender versucht es später erneut.",
        "RFC 7489 §6.6.3",
    ),
    (
        "552:",
        "The message is too big for the server.",
        "Die Nachricht ist zu groß für den Server.",
        "RFC 5321 §4.2.3, RFC 1870",
    ),
    (
        "553:",
        "The address is not allowed (e.g. a sender you do not own).",
        "Die Adresse ist nicht erlaubt (z. B. ein Absender, der Ihnen nicht gehört).",
        "RFC 5321 §4.2.3",
    ),
    (
        "554:",
        "The transaction failed for good.",
        "Die Transaktion ist endgültig gescheitert.",
        "RFC 5321 §4.2.3",
    ),
    (
        "5",
        "A permanent failure: trying again will not help.",
        "Ein dauerhafter Fehler: ein neuer Versuch hilft nicht.",
        "RFC 5321 §4.2.1",
    ),
];

const POP3_REPLIES: &[Entry] = &[
    (
        "+OK:",
        "The server is ready (greeting).",
        "Der Server ist bereit (Begrüßung).",
        "RFC 1939 §4",
    ),
    (
        "+OK:CAPA",
        "The capability list follows, one per line, ended by a dot.",
        "Die Liste der Fähigkeiten folgt, eine pro Zeile, mit einem Punkt beendet.",
        "RFC 2449 §5",
    ),
    (
        "+OK:STLS",
        "Go ahead with the TLS handshake.",
        "Bitte mit dem TLS-Handshake beginnen.",
        "RFC 2595 §4",
    ),
    (
        "+OK:USER",
        "Name noted; now the password.",
        "Name notiert; jetzt das Passwort.",
        "RFC 1939 §7",
    ),
    (
        "+OK:PASS",
        "Logged in; the mailbox is locked for this session.",
        "Angemeldet; das Postfach ist für diese Sitzung gesperrt.",
        "RFC 1939 §7",
    ),
    (
        "+OK:AUTH",
        "Logged in; the mailbox is locked for this session.",
        "Angemeldet; das Postfach ist für diese Sitzung gesperrt.",
        "RFC 5034 §4",
    ),
    (
        "+OK:STAT",
        "Number of messages and total size in octets.",
        "Anzahl der Nachrichten und Gesamtgröße in Oktetten.",
        "RFC 1939 §5",
    ),
    (
        "+OK:LIST",
        "Message sizes follow, ended by a line with a dot.",
        "Die Größen folgen, mit einer Zeile aus einem Punkt beendet.",
        "RFC 1939 §5",
    ),
    (
        "+OK:UIDL",
        "Unique ids follow, ended by a line with a dot.",
        "Die eindeutigen Kennungen folgen, mit einer Zeile aus einem Punkt beendet.",
        "RFC 1939 §7",
    ),
    (
        "+OK:TOP",
        "The header (and the lines asked for) follows, ended by a dot.",
        "Der Kopf (und die erbetenen Zeilen) folgen, mit einem Punkt beendet.",
        "RFC 1939 §7",
    ),
    (
        "+OK:RETR",
        "The message follows, ended by a line with a dot (dots at line starts doubled).",
        "Die Nachricht folgt, mit einer Zeile aus einem Punkt beendet (Punkte am Zeilenanfang verdoppelt).",
        "RFC 1939 §5, §3",
    ),
    (
        "+OK:DELE",
        "Marked for deletion.",
        "Zum Löschen markiert.",
        "RFC 1939 §5",
    ),
    (
        "+OK:QUIT",
        "Session over; marked messages are deleted.",
        "Sitzung beendet; markierte Nachrichten sind gelöscht.",
        "RFC 1939 §6",
    ),
    ("+OK:", "Done.", "Erledigt.", "RFC 1939 §3"),
    (
        "-ERR:PASS",
        "Login failed (wrong password, or the mailbox is in use).",
        "Anmeldung fehlgeschlagen (falsches Passwort oder Postfach belegt).",
        "RFC 1939 §7",
    ),
    (
        "-ERR:",
        "The command failed; the text says why.",
        "Der Befehl ist fehlgeschlagen; der Text sagt warum.",
        "RFC 1939 §3",
    ),
];

fn pick(entry: &Entry, lang: Lang) -> Explanation {
    Explanation {
        text: if lang == Lang::De { entry.2 } else { entry.1 },
        rfc: entry.3,
    }
}

/// Explains a command line the client sent (`verb` is its first word;
/// use `MESSAGE` for message content and `.` for the end of data).
pub fn command(proto: Proto, verb: &str, lang: Lang) -> Option<Explanation> {
    let table = match proto {
        Proto::Smtp => SMTP_COMMANDS,
        Proto::Pop3 => POP3_COMMANDS,
        Proto::Imap => IMAP_COMMANDS,
    };
    let verb = verb.to_ascii_uppercase();
    table.iter().find(|e| e.0 == verb).map(|e| pick(e, lang))
}

/// Explains a server reply line, given the verb of the command it
/// answers (empty for a greeting).
pub fn reply(proto: Proto, line: &str, answering: &str, lang: Lang) -> Option<Explanation> {
    let answering = answering.to_ascii_uppercase();
    match proto {
        Proto::Smtp => {
            let code = line.get(..3)?;
            let enhanced = line.get(4..)?.split(' ').next().unwrap_or("");
            let keys = [
                format!("{code}:{answering}"),
                format!("{code}:{enhanced}"),
                format!("{code}:"),
                code[..1].to_string(),
            ];
            keys.iter()
                .find_map(|k| SMTP_REPLIES.iter().find(|e| e.0 == k))
                .map(|e| pick(e, lang))
        }
        Proto::Pop3 => {
            let status = if line.starts_with("+OK") {
                "+OK"
            } else if line.starts_with("-ERR") {
                "-ERR"
            } else {
                return None;
            };
            let keys = [format!("{status}:{answering}"), format!("{status}:")];
            keys.iter()
                .find_map(|k| POP3_REPLIES.iter().find(|e| e.0 == k))
                .map(|e| pick(e, lang))
        }
        Proto::Imap => imap_response(line, answering == "GREETING", lang),
    }
}

/// An IMAP server line: untagged (`* …`), continuation (`+ …`) or the
/// tagged completion of a command.
fn imap_response(line: &str, greeting: bool, lang: Lang) -> Option<Explanation> {
    let mut words = line.split(' ');
    let first = words.next()?;
    let key = if first == "+" {
        "CONTINUE".to_string()
    } else if first == "*" {
        let second = words.next().unwrap_or("").to_ascii_uppercase();
        let third = words.next().unwrap_or("").to_ascii_uppercase();
        if second.bytes().all(|b| b.is_ascii_digit()) && !second.is_empty() {
            third
        } else if second == "OK" && greeting {
            "GREETING".into()
        } else if second == "OK" && third.starts_with('[') {
            let code = third
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            if IMAP_RESPONSES.iter().any(|e| e.0 == code) {
                code
            } else {
                "OK".into()
            }
        } else {
            second
        }
    } else {
        let status = words.next().unwrap_or("").to_ascii_uppercase();
        format!("TAGGED {status}")
    };
    IMAP_RESPONSES
        .iter()
        .find(|e| e.0 == key)
        .map(|e| pick(e, lang))
}

/// EHLO keywords (lines of a 250 EHLO reply after the first).
pub fn ehlo_keyword(keyword: &str, lang: Lang) -> Option<Explanation> {
    const K: &[Entry] = &[
        (
            "PIPELINING",
            "Commands may be sent in groups without waiting for each reply.",
            "Befehle dürfen gebündelt gesendet werden, ohne jede Antwort abzuwarten.",
            "RFC 2920",
        ),
        (
            "SIZE",
            "The largest message the server accepts, in octets.",
            "Die größte Nachricht, die der Server annimmt, in Oktetten.",
            "RFC 1870",
        ),
        (
            "8BITMIME",
            "Message bodies may contain 8-bit bytes.",
            "Nachrichtenrümpfe dürfen 8-Bit-Bytes enthalten.",
            "RFC 6152",
        ),
        (
            "SMTPUTF8",
            "Addresses and headers may be UTF-8.",
            "Adressen und Kopfzeilen dürfen UTF-8 sein.",
            "RFC 6531",
        ),
        (
            "STARTTLS",
            "The connection can be switched to TLS.",
            "Die Verbindung kann auf TLS umgestellt werden.",
            "RFC 3207",
        ),
        (
            "AUTH",
            "Login methods (SASL) the server accepts.",
            "Anmeldeverfahren (SASL), die der Server annimmt.",
            "RFC 4954",
        ),
        (
            "CHUNKING",
            "The message may be sent in chunks with BDAT.",
            "Die Nachricht darf in Stücken mit BDAT gesendet werden.",
            "RFC 3030",
        ),
        (
            "DSN",
            "Delivery status notifications can be requested.",
            "Zustellberichte können angefordert werden.",
            "RFC 3461",
        ),
        (
            "ENHANCEDSTATUSCODES",
            "Replies carry detailed codes like 2.1.0.",
            "Antworten tragen genauere Codes wie 2.1.0.",
            "RFC 2034, RFC 3463",
        ),
        (
            "BINARYMIME",
            "Binary message bodies are accepted (with BDAT).",
            "Binäre Nachrichtenrümpfe werden angenommen (mit BDAT).",
            "RFC 3030",
        ),
    ];
    let k = keyword.split(' ').next()?.to_ascii_uppercase();
    K.iter().find(|e| e.0 == k).map(|e| pick(e, lang))
}

/// The server's notes on a message's authentication in a transcript
/// (`SPF: fail (…)`, `DKIM: pass d=… s=…`, `ARC: …`, `DMARC: …`): what
/// the result means, keyed by check and result.
const VERIFICATION: &[Entry] = &[
    (
        "SPF: pass",
        "SPF: the sending IP is allowed to send for the envelope sender's domain.",
        "SPF: Die sendende IP darf für die Domain des Umschlag-Absenders senden.",
        "RFC 7208 §2.6.3",
    ),
    (
        "SPF: fail",
        "SPF: the envelope sender's domain says this IP must not send its mail.",
        "SPF: Die Domain des Umschlag-Absenders sagt, dass diese IP ihre Mail nicht senden darf.",
        "RFC 7208 §2.6.4",
    ),
    (
        "SPF: softfail",
        "SPF: the domain says this IP is probably not allowed (~all): suspicious, not refused.",
        "SPF: Die Domain sagt, diese IP ist wahrscheinlich nicht erlaubt (~all): verdächtig, nicht abgelehnt.",
        "RFC 7208 §2.6.5",
    ),
    (
        "SPF: neutral",
        "SPF: the domain makes no statement about this IP.",
        "SPF: Die Domain macht über diese IP keine Aussage.",
        "RFC 7208 §2.6.2",
    ),
    (
        "SPF: none",
        "SPF: the domain publishes no SPF record (or does not exist).",
        "SPF: Die Domain veröffentlicht keinen SPF-Eintrag (oder existiert nicht).",
        "RFC 7208 §2.6.1",
    ),
    (
        "SPF: temperror",
        "SPF: DNS failed for now; the sender should try again later.",
        "SPF: DNS ist gerade gestört; der Absender soll es später noch einmal versuchen.",
        "RFC 7208 §2.6.6",
    ),
    (
        "SPF: permerror",
        "SPF: the domain's SPF record is broken and cannot be evaluated.",
        "SPF: Der SPF-Eintrag der Domain ist fehlerhaft und nicht auswertbar.",
        "RFC 7208 §2.6.7",
    ),
    (
        "DKIM: pass",
        "DKIM: the signature is valid: domain d= vouches for the signed header fields and body, unchanged.",
        "DKIM: Die Signatur ist gültig: Die Domain d= bürgt für die signierten Kopfzeilen und den Rumpf, unverändert.",
        "RFC 6376 §6.3",
    ),
    (
        "DKIM: fail",
        "DKIM: the signature does not verify: the message was changed after signing, or the signature is forged.",
        "DKIM: Die Signatur stimmt nicht: Die Nachricht wurde nach dem Signieren verändert, oder die Signatur ist gefälscht.",
        "RFC 6376 §6.3",
    ),
    (
        "DKIM: policy",
        "DKIM: the signature may verify, but with a method this server does not trust (rsa-sha1, a key under 1,024 bits).",
        "DKIM: Die Signatur mag stimmen, aber mit einem Verfahren, dem dieser Server nicht traut (rsa-sha1, ein Schlüssel unter 1.024 Bit).",
        "RFC 8301 §3",
    ),
    (
        "DKIM: neutral",
        "DKIM: the signature could not be checked (syntax or an unsupported feature).",
        "DKIM: Die Signatur konnte nicht geprüft werden (Syntax oder ein nicht unterstütztes Merkmal).",
        "RFC 8601 §2.7.1",
    ),
    (
        "DKIM: permerror",
        "DKIM: the signature or its key record is unusable.",
        "DKIM: Die Signatur oder ihr Schlüsseleintrag ist unbrauchbar.",
        "RFC 8601 §2.7.1",
    ),
    (
        "DKIM: temperror",
        "DKIM: the key could not be fetched from DNS for now.",
        "DKIM: Der Schlüssel konnte gerade nicht aus dem DNS geholt werden.",
        "RFC 8601 §2.7.1",
    ),
    (
        "ARC: pass",
        "ARC: the chain of seals by forwarders is intact; the newest sealer vouches for what it saw.",
        "ARC: Die Kette der Siegel von Weiterleitern ist intakt; der letzte Versiegler bürgt für das, was er sah.",
        "RFC 8617 §5.2",
    ),
    (
        "ARC: fail",
        "ARC: the chain of seals is broken: something changed the message or the seals are forged.",
        "ARC: Die Siegelkette ist gebrochen: Etwas hat die Nachricht verändert, oder die Siegel sind gefälscht.",
        "RFC 8617 §5.2",
    ),
    (
        "ARC: none",
        "ARC: no forwarder sealed this message.",
        "ARC: Kein Weiterleiter hat diese Nachricht versiegelt.",
        "RFC 8617 §5.2",
    ),
    (
        "DMARC: pass",
        "DMARC: SPF or DKIM passed for a domain that matches the From: the reader sees.",
        "DMARC: SPF oder DKIM hat für eine Domain bestanden, die zum From: passt, das der Leser sieht.",
        "RFC 7489 §4.2",
    ),
    (
        "DMARC: fail",
        "DMARC: nothing vouches for the From: domain: the sender is probably forged, and the domain's policy (p=) applies.",
        "DMARC: Nichts bürgt für die From:-Domain: Der Absender ist wahrscheinlich gefälscht, und die Richtlinie der Domain (p=) gilt.",
        "RFC 7489 §6.6.2",
    ),
    (
        "DMARC: none",
        "DMARC: the From: domain publishes no DMARC policy.",
        "DMARC: Die From:-Domain veröffentlicht keine DMARC-Richtlinie.",
        "RFC 7489 §6.6.3",
    ),
    (
        "DMARC: temperror",
        "DMARC: DNS failed for now; the sender should try again later.",
        "DMARC: DNS ist gerade gestört; der Absender soll es später noch einmal versuchen.",
        "RFC 7489 §6.6.3",
    ),
    (
        "DMARC: permerror",
        "DMARC: the policy record is broken.",
        "DMARC: Der Richtlinien-Eintrag ist fehlerhaft.",
        "RFC 7489 §6.6.3",
    ),
];

/// Explains a note the server wrote into a transcript about a message's
/// authentication (`SPF: fail (…)`, `DKIM: pass d=…`, `DMARC: …`).
pub fn verification(note: &str, lang: Lang) -> Option<Explanation> {
    let (check, rest) = note.split_once(": ")?;
    let result = rest.split([' ', '(']).next().unwrap_or("");
    let key = format!("{check}: {}", result.to_ascii_lowercase());
    VERIFICATION
        .iter()
        .find(|e| e.0 == key)
        .map(|e| pick(e, lang))
}

/// Follows a dialogue line by line and explains each: commands by their
/// verb, replies by their code and the command they answer (only the
/// first line of a multi-line SMTP reply, except EHLO keywords). The
/// client's `--trace --explain` and `postamt trace show --explain` both
/// use it.
#[derive(Debug, Clone)]
pub struct Annotator {
    pub proto: Proto,
    pub lang: Lang,
    /// The verb of the last command (replies are explained by it).
    last_verb: String,
    /// Lines of the current multi-line reply seen so far.
    reply_lines: usize,
    /// The state the last reply put the session in, until taken.
    state: Option<Explanation>,
    /// POP3: in the TRANSACTION state (QUIT then means UPDATE).
    pop3_transaction: bool,
}

/// The states a session goes through, by (protocol, key): English,
/// German, RFC section. Keys: the command whose success leads there
/// (`GREETING` for the greeting), `!X` for its failure.
const STATES: &[(Proto, Entry)] = &[
    (
        Proto::Smtp,
        (
            "GREETING",
            "waiting for EHLO (or HELO)",
            "wartet auf EHLO (oder HELO)",
            "RFC 5321 §3.1",
        ),
    ),
    (
        Proto::Smtp,
        (
            "EHLO",
            "greeted: waiting for MAIL (or STARTTLS, AUTH)",
            "begrüßt: wartet auf MAIL (oder STARTTLS, AUTH)",
            "RFC 5321 §4.1.1.1",
        ),
    ),
    (
        Proto::Smtp,
        (
            "HELO",
            "greeted: waiting for MAIL",
            "begrüßt: wartet auf MAIL",
            "RFC 5321 §4.1.1.1",
        ),
    ),
    (
        Proto::Smtp,
        (
            "STARTTLS",
            "the TLS handshake comes next, then EHLO again: what was said before is forgotten",
            "als Nächstes der TLS-Handshake, dann wieder EHLO: das bisher Gesagte gilt nicht mehr",
            "RFC 3207 §4.2",
        ),
    ),
    (
        Proto::Smtp,
        (
            "AUTH",
            "authenticated: waiting for MAIL",
            "angemeldet: wartet auf MAIL",
            "RFC 4954 §4",
        ),
    ),
    (
        Proto::Smtp,
        (
            "MAIL",
            "after MAIL: sender accepted, waiting for RCPT",
            "nach MAIL: Absender angenommen, wartet auf RCPT",
            "RFC 5321 §3.3",
        ),
    ),
    (
        Proto::Smtp,
        (
            "RCPT",
            "after RCPT: recipient accepted; another RCPT, or DATA",
            "nach RCPT: Empfänger angenommen; noch ein RCPT oder DATA",
            "RFC 5321 §3.3",
        ),
    ),
    (
        Proto::Smtp,
        (
            "DATA",
            "the message comes now; a line with only a dot ends it",
            "jetzt kommt die Nachricht; eine Zeile nur mit einem Punkt beendet sie",
            "RFC 5321 §4.1.1.4",
        ),
    ),
    (
        Proto::Smtp,
        (
            ".",
            "message accepted, the transaction is over: next MAIL, or QUIT",
            "Nachricht angenommen, die Transaktion ist vorbei: als Nächstes MAIL oder QUIT",
            "RFC 5321 §4.1.1.4",
        ),
    ),
    (
        Proto::Smtp,
        (
            "!.",
            "message refused, the transaction is over: next MAIL, or QUIT",
            "Nachricht abgelehnt, die Transaktion ist vorbei: als Nächstes MAIL oder QUIT",
            "RFC 5321 §4.1.1.4",
        ),
    ),
    (
        Proto::Smtp,
        (
            "RSET",
            "transaction reset: waiting for MAIL",
            "Transaktion zurückgesetzt: wartet auf MAIL",
            "RFC 5321 §4.1.1.5",
        ),
    ),
    (
        Proto::Smtp,
        (
            "QUIT",
            "the server closes the connection",
            "der Server schließt die Verbindung",
            "RFC 5321 §4.1.1.10",
        ),
    ),
    (
        Proto::Pop3,
        (
            "GREETING",
            "AUTHORIZATION state: waiting for USER and PASS (or AUTH)",
            "Zustand AUTHORIZATION: wartet auf USER und PASS (oder AUTH)",
            "RFC 1939 §4",
        ),
    ),
    (
        Proto::Pop3,
        (
            "PASS",
            "TRANSACTION state: the maildrop is locked for this session",
            "Zustand TRANSACTION: das Postfach ist für diese Sitzung gesperrt",
            "RFC 1939 §5",
        ),
    ),
    (
        Proto::Pop3,
        (
            "QUIT",
            "UPDATE state: messages marked deleted are removed, then the connection closes",
            "Zustand UPDATE: die zum Löschen markierten Nachrichten werden entfernt, dann wird die Verbindung geschlossen",
            "RFC 1939 §6",
        ),
    ),
    (
        Proto::Pop3,
        (
            "!QUIT",
            "the server closes the connection (nothing is deleted before login)",
            "der Server schließt die Verbindung (vor der Anmeldung wird nichts gelöscht)",
            "RFC 1939 §4",
        ),
    ),
    (
        Proto::Imap,
        (
            "GREETING",
            "not authenticated state: waiting for LOGIN or AUTHENTICATE (or STARTTLS)",
            "Zustand nicht angemeldet: wartet auf LOGIN oder AUTHENTICATE (oder STARTTLS)",
            "RFC 9051 §3.1",
        ),
    ),
    (
        Proto::Imap,
        (
            "PREAUTH",
            "authenticated state: mailboxes can be listed and selected",
            "Zustand angemeldet: Postfächer können aufgelistet und gewählt werden",
            "RFC 9051 §3.2",
        ),
    ),
    (
        Proto::Imap,
        (
            "LOGIN",
            "authenticated state: mailboxes can be listed and selected",
            "Zustand angemeldet: Postfächer können aufgelistet und gewählt werden",
            "RFC 9051 §3.2",
        ),
    ),
    (
        Proto::Imap,
        (
            "SELECT",
            "selected state: the messages of this mailbox can be read and changed",
            "Zustand ausgewählt: die Nachrichten dieses Postfachs können gelesen und geändert werden",
            "RFC 9051 §3.3",
        ),
    ),
    (
        Proto::Imap,
        (
            "EXAMINE",
            "selected state, read-only: the messages of this mailbox can be read",
            "Zustand ausgewählt, nur lesend: die Nachrichten dieses Postfachs können gelesen werden",
            "RFC 9051 §3.3",
        ),
    ),
    (
        Proto::Imap,
        (
            "!SELECT",
            "no mailbox selected (a failed SELECT leaves the selected state)",
            "kein Postfach ausgewählt (ein gescheitertes SELECT verlässt den Zustand ausgewählt)",
            "RFC 9051 §6.3.2",
        ),
    ),
    (
        Proto::Imap,
        (
            "CLOSE",
            "authenticated state again: no mailbox selected",
            "wieder Zustand angemeldet: kein Postfach ausgewählt",
            "RFC 9051 §3.2",
        ),
    ),
    (
        Proto::Imap,
        (
            "LOGOUT",
            "logout state: the server closes the connection",
            "Zustand abmelden: der Server schließt die Verbindung",
            "RFC 9051 §3.4",
        ),
    ),
];

/// The state `key` names for `proto`.
fn state(proto: Proto, key: &str, lang: Lang) -> Option<Explanation> {
    STATES
        .iter()
        .find(|(p, e)| *p == proto && e.0 == key)
        .map(|(_, e)| pick(e, lang))
}

impl Annotator {
    pub fn new(proto: Proto, lang: Lang) -> Annotator {
        Annotator {
            proto,
            lang,
            last_verb: "GREETING".into(),
            reply_lines: 0,
            state: None,
            pop3_transaction: false,
        }
    }

    /// The state the session entered with the last server line, if it
    /// changed ("after MAIL: sender accepted, waiting for RCPT"); taken
    /// once.
    pub fn take_state(&mut self) -> Option<Explanation> {
        self.state.take()
    }

    /// Notes the state a complete reply (its last line, or IMAP's tagged
    /// line) leads to.
    fn reply_done(&mut self, line: &str) {
        let verb = self.last_verb.as_str();
        let key: Option<String> = match self.proto {
            Proto::Smtp => {
                // Success is 2xx; DATA's is 354 (AUTH's 334 is a step of
                // the exchange, not its end).
                let ok = line.starts_with('2');
                match verb {
                    "." | "MESSAGE" if ok => Some(".".into()),
                    "." | "MESSAGE" => Some("!.".into()),
                    "DATA" if line.starts_with("354") => Some("DATA".into()),
                    "GREETING" | "EHLO" | "HELO" | "STARTTLS" | "AUTH" | "MAIL" | "RCPT"
                    | "RSET" | "QUIT"
                        if ok =>
                    {
                        Some(verb.into())
                    }
                    _ => None,
                }
            }
            Proto::Pop3 => {
                let ok = line.starts_with("+OK");
                match verb {
                    "GREETING" if ok => Some("GREETING".into()),
                    "PASS" | "APOP" | "AUTH" if ok => {
                        self.pop3_transaction = true;
                        Some("PASS".into())
                    }
                    "QUIT" if self.pop3_transaction => Some("QUIT".into()),
                    "QUIT" => Some("!QUIT".into()),
                    _ => None,
                }
            }
            Proto::Imap => {
                let mut w = line.split(' ');
                let (tag, status) = (w.next().unwrap_or(""), w.next().unwrap_or(""));
                let ok = status.eq_ignore_ascii_case("OK");
                match verb {
                    "GREETING" if tag == "*" && status.eq_ignore_ascii_case("PREAUTH") => {
                        Some("PREAUTH".into())
                    }
                    "GREETING" if tag == "*" && ok => Some("GREETING".into()),
                    _ if tag == "*" || tag == "+" => None,
                    "LOGIN" | "AUTHENTICATE" if ok => Some("LOGIN".into()),
                    "SELECT" | "EXAMINE" if ok => Some(verb.into()),
                    "SELECT" | "EXAMINE" => Some("!SELECT".into()),
                    "CLOSE" | "UNSELECT" if ok => Some("CLOSE".into()),
                    "LOGOUT" => Some("LOGOUT".into()),
                    _ => None,
                }
            }
        };
        if let Some(k) = key {
            self.state = state(self.proto, &k, self.lang);
        }
    }

    /// A line the client sent; `verb` is its first word (`MESSAGE` for
    /// message content). IMAP's verb follows the tag; `UID x` is one.
    pub fn client(&mut self, shown: &str, verb: &str) -> Option<Explanation> {
        let imap_verb;
        let verb = if self.proto == Proto::Imap && verb != "MESSAGE" {
            let mut w = shown.split(' ').skip(1);
            let first = w.next().unwrap_or("").to_ascii_uppercase();
            imap_verb = if first == "UID" {
                format!("UID {}", w.next().unwrap_or("").to_ascii_uppercase())
            } else {
                first
            };
            imap_verb.as_str()
        } else {
            verb
        };
        // A SASL response continues the command before it (AUTH,
        // AUTHENTICATE): its reply belongs to that command.
        if !shown.starts_with("(SASL") && !shown.contains(" (SASL") {
            self.last_verb = verb.to_ascii_uppercase();
        }
        self.reply_lines = 0;
        command(self.proto, verb, self.lang)
    }

    /// A line the server sent.
    pub fn server(&mut self, line: &str) -> Option<Explanation> {
        let e = if self.proto == Proto::Smtp && self.last_verb == "EHLO" && self.reply_lines > 0 {
            ehlo_keyword(line.get(4..).unwrap_or(""), self.lang)
        } else if self.reply_lines == 0 || self.proto == Proto::Imap {
            // An IMAP server line is a response of its own.
            reply(self.proto, line, &self.last_verb, self.lang)
        } else {
            None
        };
        let last = match self.proto {
            Proto::Smtp => line.as_bytes().get(3) != Some(&b'-'),
            Proto::Pop3 => self.reply_lines == 0,
            Proto::Imap => true,
        };
        if last {
            self.reply_done(line);
        }
        self.reply_lines += 1;
        if self.proto == Proto::Smtp && line.as_bytes().get(3) == Some(&b' ') {
            self.reply_lines = 0;
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_explained_in_context() {
        let e = reply(Proto::Smtp, "250 2.1.0 Sender ok", "MAIL", Lang::En).unwrap();
        assert!(e.text.contains("not verified"), "{}", e.text);
        assert_eq!(e.rfc, "RFC 5321 §4.1.1.2");
        let e = reply(Proto::Smtp, "550 5.1.1 no such user", "RCPT", Lang::De).unwrap();
        assert!(e.text.contains("Postfach"));
        assert!(reply(Proto::Smtp, "599 9.9.9 odd", "X", Lang::En).is_some());
        // The verdicts of mail authentication, in both languages.
        let e = reply(Proto::Smtp, "550 5.7.26 DMARC: no", ".", Lang::De).unwrap();
        assert!(e.text.contains("gefälschter Absender"), "{}", e.text);
        assert_eq!(e.rfc, "RFC 7489 §6.3, RFC 7372 §3.2");
        let e = reply(Proto::Smtp, "550 5.7.23 SPF: no", ".", Lang::En).unwrap();
        assert!(e.text.contains("SPF"), "{}", e.text);
        let e = reply(Proto::Pop3, "+OK 2 320", "STAT", Lang::En).unwrap();
        assert!(e.text.contains("Number of messages"));
        assert!(reply(Proto::Pop3, "garbage", "STAT", Lang::En).is_none());
        let e = reply(Proto::Imap, "* 3 EXISTS", "SELECT", Lang::En).unwrap();
        assert!(e.text.contains("messages the mailbox holds"));
        let e = reply(Proto::Imap, "* OK [UIDVALIDITY 17] ok", "SELECT", Lang::En).unwrap();
        assert_eq!(e.rfc, "RFC 9051 §2.3.1.1");
        let e = reply(
            Proto::Imap,
            "a4 NO [TRYCREATE] no such mailbox",
            "UID MOVE",
            Lang::De,
        )
        .unwrap();
        assert!(e.text.contains("gescheitert"));
        let e = reply(Proto::Imap, "* OK IMAP ready", "GREETING", Lang::En).unwrap();
        assert!(e.text.contains("ready"));
    }

    #[test]
    fn every_entry_has_both_languages_and_an_rfc() {
        for table in [
            SMTP_COMMANDS,
            POP3_COMMANDS,
            SMTP_REPLIES,
            POP3_REPLIES,
            IMAP_COMMANDS,
            IMAP_RESPONSES,
        ] {
            for e in table {
                assert!(!e.1.is_empty() && !e.2.is_empty() && e.1 != e.2, "{}", e.0);
                assert!(e.3.starts_with("RFC "), "{}", e.0);
            }
        }
        assert_eq!(Lang::from_locale("de_DE.UTF-8"), Lang::De);
        assert_eq!(Lang::from_locale("C.UTF-8"), Lang::En);
    }

    #[test]
    fn verification_notes_are_explained_in_both_languages() {
        let e = verification("DMARC: fail (neither DKIM nor SPF passed)", Lang::De).unwrap();
        assert!(e.text.contains("gefälscht"), "{}", e.text);
        assert_eq!(e.rfc, "RFC 7489 §6.6.2");
        let e = verification("DKIM: pass d=bank.test s=lab", Lang::En).unwrap();
        assert!(e.text.starts_with("DKIM: the signature is valid"));
        assert!(verification("SPF: softfail (x)", Lang::En).is_some());
        assert!(verification("ARC: none []", Lang::De).is_some());
        assert!(verification("TLS started: TLSv1_3", Lang::En).is_none());
        assert!(verification("DMARC: maybe", Lang::En).is_none());
        for e in VERIFICATION {
            assert!(e.3.starts_with("RFC "), "{}", e.0);
        }
    }

    /// The state a session is in after each reply, for the three
    /// protocols (what teaching material says beside a transcript).
    #[test]
    fn the_annotator_follows_the_session_state() {
        let mut a = Annotator::new(Proto::Smtp, Lang::En);
        let step = |a: &mut Annotator, client: Option<(&str, &str)>, server: &str| {
            if let Some((shown, verb)) = client {
                a.client(shown, verb);
            }
            a.server(server);
            a.take_state().map(|e| e.text)
        };
        assert_eq!(
            step(&mut a, None, "220 mx ESMTP"),
            Some("waiting for EHLO (or HELO)")
        );
        assert_eq!(
            step(&mut a, Some(("EHLO c", "EHLO")), "250-mx"),
            None,
            "not the last line"
        );
        assert!(
            step(&mut a, None, "250 PIPELINING")
                .unwrap()
                .starts_with("greeted")
        );
        assert_eq!(
            step(&mut a, Some(("AUTH LOGIN", "AUTH")), "334 VXNlcm5hbWU6"),
            None
        );
        assert_eq!(
            step(
                &mut a,
                Some(("(SASL response) ****", "(SASL")),
                "235 2.7.0 ok"
            ),
            Some("authenticated: waiting for MAIL")
        );
        assert_eq!(
            step(&mut a, Some(("MAIL FROM:<a@b>", "MAIL")), "250 2.1.0 ok"),
            Some("after MAIL: sender accepted, waiting for RCPT")
        );
        assert_eq!(
            step(&mut a, Some(("RCPT TO:<x@y>", "RCPT")), "550 5.1.1 no"),
            None
        );
        assert!(
            step(&mut a, Some(("RCPT TO:<c@d>", "RCPT")), "250 ok")
                .unwrap()
                .starts_with("after RCPT")
        );
        assert!(
            step(&mut a, Some(("DATA", "DATA")), "354 go")
                .unwrap()
                .contains("only a dot")
        );
        assert!(
            step(&mut a, Some((".", ".")), "250 2.0.0 queued")
                .unwrap()
                .starts_with("message accepted")
        );
        assert!(
            step(&mut a, Some((".", ".")), "550 5.7.26 no")
                .unwrap()
                .starts_with("message refused")
        );
        let mut p = Annotator::new(Proto::Pop3, Lang::De);
        assert!(
            step(&mut p, None, "+OK ready")
                .unwrap()
                .starts_with("Zustand AUTHORIZATION")
        );
        assert_eq!(step(&mut p, Some(("USER a", "USER")), "+OK"), None);
        assert!(
            step(&mut p, Some(("PASS ****", "PASS")), "+OK")
                .unwrap()
                .starts_with("Zustand TRANSACTION")
        );
        assert_eq!(step(&mut p, Some(("LIST", "LIST")), "+OK 1 messages"), None);
        assert_eq!(step(&mut p, None, "1 120"), None);
        assert!(
            step(&mut p, Some(("QUIT", "QUIT")), "+OK bye")
                .unwrap()
                .starts_with("Zustand UPDATE")
        );
        let mut i = Annotator::new(Proto::Imap, Lang::En);
        assert!(
            step(&mut i, None, "* OK IMAP4rev2 ready")
                .unwrap()
                .starts_with("not authenticated")
        );
        assert!(
            step(&mut i, Some(("a1 LOGIN a ****", "a1")), "a1 OK done")
                .unwrap()
                .starts_with("authenticated")
        );
        assert_eq!(
            step(&mut i, Some(("a2 SELECT INBOX", "a2")), "* 3 EXISTS"),
            None
        );
        assert!(
            step(&mut i, None, "a2 OK [READ-WRITE] done")
                .unwrap()
                .starts_with("selected state")
        );
        assert!(
            step(&mut i, Some(("a3 SELECT nope", "a3")), "a3 NO no such")
                .unwrap()
                .starts_with("no mailbox selected")
        );
        assert_eq!(step(&mut i, Some(("a4 LOGOUT", "a4")), "* BYE bye"), None);
        assert!(
            step(&mut i, None, "a4 OK done")
                .unwrap()
                .starts_with("logout state")
        );
        for (_, e) in STATES {
            assert!(!e.1.is_empty() && !e.2.is_empty() && e.1 != e.2, "{}", e.0);
            assert!(e.3.starts_with("RFC "), "{}", e.0);
        }
    }

    #[test]
    fn the_annotator_explains_the_first_line_of_a_reply_and_ehlo_keywords() {
        let mut a = Annotator::new(Proto::Smtp, Lang::En);
        assert!(a.server("220 mx.test ESMTP").is_some(), "greeting");
        assert!(a.client("EHLO c.test", "EHLO").is_some());
        assert!(a.server("250-mx.test").is_some());
        assert!(a.server("250-PIPELINING").unwrap().text.contains("groups"));
        assert!(a.server("250 SIZE 100").unwrap().text.contains("largest"));
        a.client("DATA", "DATA");
        let e = a.server("550 5.7.26 DMARC: forged").unwrap();
        assert!(e.rfc.contains("7372") || e.text.contains("DMARC"), "{e:?}");
        let mut i = Annotator::new(Proto::Imap, Lang::De);
        assert!(i.client("a1 UID FETCH 1 FLAGS", "a1").is_some());
    }
}
