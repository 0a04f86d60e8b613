//! Mail client autoconfiguration, served by the web listener:
//! - Thunderbird's autoconfig file (`/.well-known/autoconfig/mail/config-v1.1.xml`
//!   and `/mail/config-v1.1.xml`, `?emailaddress=`), the format of
//!   <https://wiki.mozilla.org/Thunderbird:Autoconfiguration:ConfigFileFormat>;
//! - Outlook's Autodiscover (POX, `POST /autodiscover/autodiscover.xml`,
//!   the 2006 request and response schemas, [MS-OXDSCLI]).
//!
//! Both say: the server's name, implicit TLS before STARTTLS (RFC 8314
//! §3), the full address as the user name, a password over TLS. Only for
//! the domains this server receives mail for (anything else: 404).

use crate::picture::esc;
use crate::{ClientSettings, Web};

/// The domain of an address (or a bare domain), lower-cased, if it is one
/// of ours.
pub fn our_domain(web: &Web, address: &str) -> Option<String> {
    let domain = address
        .rsplit('@')
        .next()?
        .trim()
        .trim_end_matches('.')
        .to_lowercase();
    if domain.is_empty() {
        return None;
    }
    let ours = web
        .store
        .domains()
        .ok()?
        .iter()
        .any(|d| d.eq_ignore_ascii_case(&domain));
    ours.then_some(domain)
}

/// Thunderbird's config-v1.1.xml for `domain`.
pub fn thunderbird(c: &ClientSettings, domain: &str) -> String {
    let host = esc(&c.hostname);
    let mut x = String::new();
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str("<clientConfig version=\"1.1\">\n");
    x.push_str(&format!("  <emailProvider id=\"{}\">\n", esc(domain)));
    x.push_str(&format!("    <domain>{}</domain>\n", esc(domain)));
    x.push_str(&format!(
        "    <displayName>{} (postamt)</displayName>\n",
        esc(domain)
    ));
    x.push_str(&format!(
        "    <displayShortName>{}</displayShortName>\n",
        esc(domain)
    ));
    let server = |x: &mut String, kind: &str, tag: &str, port: u16, implicit: bool| {
        x.push_str(&format!("    <{tag} type=\"{kind}\">\n"));
        x.push_str(&format!("      <hostname>{host}</hostname>\n"));
        x.push_str(&format!("      <port>{port}</port>\n"));
        x.push_str(&format!(
            "      <socketType>{}</socketType>\n",
            if implicit { "SSL" } else { "STARTTLS" }
        ));
        x.push_str("      <authentication>password-cleartext</authentication>\n");
        x.push_str("      <username>%EMAILADDRESS%</username>\n");
        x.push_str(&format!("    </{tag}>\n"));
    };
    for &(port, implicit) in &c.imap {
        server(&mut x, "imap", "incomingServer", port, implicit);
    }
    for &(port, implicit) in &c.pop3 {
        server(&mut x, "pop3", "incomingServer", port, implicit);
    }
    for &(port, implicit) in &c.submission {
        server(&mut x, "smtp", "outgoingServer", port, implicit);
    }
    x.push_str("  </emailProvider>\n</clientConfig>\n");
    x
}

/// The address in an Autodiscover request (`<EMailAddress>`).
pub fn autodiscover_address(body: &str) -> Option<String> {
    let start = body.find("<EMailAddress>")? + "<EMailAddress>".len();
    let end = body[start..].find("</EMailAddress>")? + start;
    let a = body[start..end].trim();
    (!a.is_empty() && a.len() <= 254).then(|| a.to_string())
}

/// Outlook's Autodiscover response for `address`.
pub fn autodiscover(c: &ClientSettings, address: &str) -> String {
    let host = esc(&c.hostname);
    let mut x = String::new();
    x.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    x.push_str("<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006\">\n");
    x.push_str("  <Response xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a\">\n");
    x.push_str(
        "    <Account>\n      <AccountType>email</AccountType>\n      <Action>settings</Action>\n",
    );
    let proto = |x: &mut String, kind: &str, port: u16, implicit: bool| {
        x.push_str("      <Protocol>\n");
        x.push_str(&format!("        <Type>{kind}</Type>\n"));
        x.push_str(&format!("        <Server>{host}</Server>\n"));
        x.push_str(&format!("        <Port>{port}</Port>\n"));
        x.push_str("        <DomainRequired>off</DomainRequired>\n");
        x.push_str(&format!(
            "        <LoginName>{}</LoginName>\n",
            esc(address)
        ));
        x.push_str("        <SPA>off</SPA>\n");
        if implicit {
            x.push_str("        <SSL>on</SSL>\n");
        } else {
            x.push_str("        <Encryption>TLS</Encryption>\n");
        }
        x.push_str("        <AuthRequired>on</AuthRequired>\n");
        x.push_str("      </Protocol>\n");
    };
    if let Some(&(port, implicit)) = c.imap.first() {
        proto(&mut x, "IMAP", port, implicit);
    }
    if let Some(&(port, implicit)) = c.pop3.first() {
        proto(&mut x, "POP3", port, implicit);
    }
    if let Some(&(port, implicit)) = c.submission.first() {
        proto(&mut x, "SMTP", port, implicit);
    }
    x.push_str("    </Account>\n  </Response>\n</Autodiscover>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ClientSettings {
        ClientSettings {
            hostname: "mail.example.test".into(),
            imap: vec![(993, true), (143, false)],
            pop3: vec![(995, true)],
            submission: vec![(465, true), (587, false)],
        }
    }

    #[test]
    fn thunderbird_gets_every_server_best_first() {
        let x = thunderbird(&settings(), "example.test");
        assert!(x.starts_with("<?xml"));
        let imaps = x.find("<port>993</port>").unwrap();
        let imap = x.find("<port>143</port>").unwrap();
        assert!(imaps < imap, "implicit TLS first (RFC 8314 §3)");
        assert!(x.contains("<socketType>STARTTLS</socketType>"));
        assert!(x.contains("<outgoingServer type=\"smtp\">"));
        assert!(x.contains("<username>%EMAILADDRESS%</username>"));
        assert_eq!(x.matches("<incomingServer").count(), 3);
    }

    #[test]
    fn autodiscover_reads_the_address_and_answers_pox() {
        let req = "<?xml version=\"1.0\"?><Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006\"><Request><EMailAddress>bob@example.test</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>";
        let a = autodiscover_address(req).unwrap();
        assert_eq!(a, "bob@example.test");
        let x = autodiscover(&settings(), &a);
        assert!(x.contains("<Type>IMAP</Type>"));
        assert!(x.contains("<LoginName>bob@example.test</LoginName>"));
        assert!(x.contains("<Port>465</Port>"));
    }

    #[test]
    fn names_are_escaped() {
        let x = autodiscover(&settings(), "<x>&@example.test");
        assert!(x.contains("&lt;x&gt;&amp;@example.test"));
    }
}
