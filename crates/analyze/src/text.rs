//! Every sentence of the analysis in English and German, with the RFC it
//! rests on where there is one. `{0}`, `{1}` … are the arguments.

/// The language of the report: the one of the explanation table.
pub use postamt_wire::explain::Lang;

/// (key, English, German).
const TEXTS: &[(&str, &str, &str)] = &[
    (
        "header_cut",
        "The header is longer than {0} bytes; the rest was not read.",
        "Der Kopf ist länger als {0} Bytes; der Rest wurde nicht gelesen.",
    ),
    (
        "no_header",
        "The message has no header at all.",
        "Die Nachricht hat gar keinen Kopf.",
    ),
    (
        "too_many_received",
        "{0} Received lines; only the newest {1} were read (a mail loop or an attack on analysers, RFC 5321 §6.3).",
        "{0} Received-Zeilen; nur die neuesten {1} wurden gelesen (eine Mailschleife oder ein Angriff auf Analysewerkzeuge, RFC 5321 §6.3).",
    ),
    (
        "not_checkable",
        "not checkable (offline)",
        "nicht prüfbar (offline)",
    ),
    (
        "multiple_from",
        "The message has {0} From: fields or several authors: a reader may see another sender than a checker (RFC 5322 §3.6).",
        "Die Nachricht hat {0} From:-Felder oder mehrere Autoren: Ein Leser sieht womöglich einen anderen Absender als ein Prüfer (RFC 5322 §3.6).",
    ),
    (
        "from_reply_to_mismatch",
        "Replies go to {0}, not to the sender's domain {1}.",
        "Antworten gehen an {0}, nicht an die Domain des Absenders {1}.",
    ),
    (
        "display_name_address",
        "The display name shows the address {0}, but the message is from {1}.",
        "Der Anzeigename zeigt die Adresse {0}, die Nachricht kommt aber von {1}.",
    ),
    (
        "display_name_impersonation",
        "The display name \"{0}\" imitates {1}, but the message does not come from a local address.",
        "Der Anzeigename „{0}“ gibt sich als {1} aus, die Nachricht kommt aber nicht von einer lokalen Adresse.",
    ),
    (
        "lookalike_domain",
        "The sender's domain {0} looks like {1} but is a different domain (Unicode TR39 confusables).",
        "Die Absenderdomain {0} sieht aus wie {1}, ist aber eine andere Domain (Unicode TR39, verwechselbare Zeichen).",
    ),
    (
        "reply_to_lookalike",
        "Replies go to {0}, a domain made to look like {1} (Unicode TR39 confusables).",
        "Antworten gehen an {0}, eine Domain, die wie {1} aussehen soll (Unicode TR39, verwechselbare Zeichen).",
    ),
    (
        "idn_mixed_script",
        "The sender's domain {0} mixes writing systems in one label, a classic disguise (Unicode TR39 §5.1).",
        "Die Absenderdomain {0} mischt Schriftsysteme in einem Teil, eine klassische Tarnung (Unicode TR39 §5.1).",
    ),
    (
        "claims_our_host",
        "A Received line below the trust boundary claims to be written by our host {0}: it was planted (RFC 5321 §4.4).",
        "Eine Received-Zeile unterhalb der Vertrauensgrenze behauptet, von unserem Host {0} geschrieben zu sein: Sie wurde untergeschoben (RFC 5321 §4.4).",
    ),
    (
        "backwards",
        "Hop {0} is dated {1} seconds before the hop it follows: the lines contradict each other.",
        "Station {0} ist {1} Sekunden vor der Station datiert, auf die sie folgt: Die Zeilen widersprechen sich.",
    ),
    (
        "long_delay",
        "Hop {0} took {1} minutes.",
        "Station {0} brauchte {1} Minuten.",
    ),
    (
        "date_in_future",
        "The Date: field lies {0} minutes after the message arrived: the sender's clock is wrong, or the date is made up.",
        "Das Date:-Feld liegt {0} Minuten nach der Ankunft der Nachricht: Die Uhr des Absenders geht falsch, oder das Datum ist erfunden.",
    ),
    (
        "long_transit",
        "The message took {0} hours from its Date: to arrival.",
        "Die Nachricht brauchte {0} Stunden von ihrem Date: bis zur Ankunft.",
    ),
    (
        "no_tls_hop",
        "Hop {0} from {1} crossed the Internet without TLS: anyone on the way could read it (RFC 3207).",
        "Station {0} von {1} ging ohne TLS durchs Internet: Jeder auf dem Weg konnte mitlesen (RFC 3207).",
    ),
    (
        "recorded_dkim_fail",
        "Our server found a DKIM signature that does not verify: {0} (RFC 6376 §6.3).",
        "Unser Server fand eine DKIM-Signatur, die nicht stimmt: {0} (RFC 6376 §6.3).",
    ),
    (
        "recorded_spf_fail",
        "SPF failed on arrival: {0} (RFC 7208 §2.6.4).",
        "SPF schlug bei der Ankunft fehl: {0} (RFC 7208 §2.6.4).",
    ),
    (
        "recorded_dmarc_fail",
        "DMARC failed on arrival: nothing vouched for the From: domain: {0} (RFC 7489 §6.6.2).",
        "DMARC schlug bei der Ankunft fehl: Nichts bürgte für die From:-Domain: {0} (RFC 7489 §6.6.2).",
    ),
    (
        "arc_broken",
        "The ARC chain of the forwarders is broken: {0} (RFC 8617 §5.2).",
        "Die ARC-Kette der Weiterleiter ist gebrochen: {0} (RFC 8617 §5.2).",
    ),
    (
        "recheck_dkim_fail",
        "The DKIM signature of {0} (selector {1}) does not verify now: the message was changed after signing (RFC 6376 §6.3).",
        "Die DKIM-Signatur von {0} (Selektor {1}) stimmt jetzt nicht: Die Nachricht wurde nach dem Signieren verändert (RFC 6376 §6.3).",
    ),
    (
        "changed_since_arrival",
        "The DKIM signature of {0} (selector {1}) passed when the message arrived and fails now: it was changed since (RFC 6376 §6.3).",
        "Die DKIM-Signatur von {0} (Selektor {1}) stimmte bei der Ankunft und stimmt jetzt nicht: Die Nachricht wurde seitdem verändert (RFC 6376 §6.3).",
    ),
    (
        "dkim_from_unsigned",
        "The DKIM signature of {0} does not cover From:, so it does not vouch for the sender (RFC 6376 §5.4).",
        "Die DKIM-Signatur von {0} deckt From: nicht ab und bürgt daher nicht für den Absender (RFC 6376 §5.4).",
    ),
    (
        "dkim_partly_unsigned",
        "The DKIM signature of {0} does not cover {1}: those fields could be changed unnoticed (RFC 6376 §5.4).",
        "Die DKIM-Signatur von {0} deckt {1} nicht ab: Diese Felder könnten unbemerkt geändert werden (RFC 6376 §5.4).",
    ),
    (
        "message_id_mismatch",
        "The Message-ID was made at {0}, unrelated to the sender's domain {1}.",
        "Die Message-ID stammt von {0}, ohne Bezug zur Domain des Absenders {1}.",
    ),
    (
        "aligned_pass",
        "Authentication aligned with the From: domain {0} passed (DMARC, RFC 7489 §4.2).",
        "Eine zur From:-Domain {0} passende Authentifizierung ist bestanden (DMARC, RFC 7489 §4.2).",
    ),
    (
        "nothing_wrong",
        "Nothing contradicts the sender's identity.",
        "Nichts widerspricht der Identität des Absenders.",
    ),
    (
        "nothing_checkable",
        "Nothing in the header proves or disproves the sender: no verified signature, no results of our own server.",
        "Nichts im Kopf beweist oder widerlegt den Absender: keine geprüfte Signatur, keine Ergebnisse unseres eigenen Servers.",
    ),
];

/// The sentence `key` in `lang` with its arguments.
pub fn t(lang: Lang, key: &str, args: &[&str]) -> String {
    let Some(e) = TEXTS.iter().find(|e| e.0 == key) else {
        return key.to_string();
    };
    let mut s = match lang {
        Lang::En => e.1,
        Lang::De => e.2,
    }
    .to_string();
    for (i, a) in args.iter().enumerate() {
        s = s.replace(&format!("{{{i}}}"), a);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sentence_has_both_languages_and_its_arguments() {
        for (key, en, de) in TEXTS {
            assert!(!en.is_empty() && !de.is_empty() && en != de, "{key}");
            for i in 0..4 {
                let p = format!("{{{i}}}");
                assert_eq!(en.contains(&p), de.contains(&p), "{key} {p}");
            }
        }
        assert_eq!(
            t(Lang::De, "long_delay", &["2", "90"]),
            "Station 2 brauchte 90 Minuten."
        );
        assert_eq!(t(Lang::En, "unknown-key", &[]), "unknown-key");
    }
}
