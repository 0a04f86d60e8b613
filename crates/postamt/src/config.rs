//! The config file (TOML), as `../shared/spec/interface.md` defines it.
//! Unknown keys are errors that name the key and the line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// Listeners this version serves; the others are accepted in the config
/// and reported as not served yet.
pub const SERVED: &[&str] = &[
    "smtp",
    "submission",
    "submissions",
    "lmtp",
    "pop3",
    "pop3s",
    "imap",
    "imaps",
    "http",
    "https",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub hostname: String,
    #[serde(default)]
    pub domains: Vec<String>,
    pub data_dir: PathBuf,
    #[serde(default)]
    pub listen: Listen,
    #[serde(default)]
    pub tls: Tls,
    #[serde(default)]
    pub store: StoreSection,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub auth: Auth,
    #[serde(default)]
    pub transcripts: TranscriptsSection,
    #[serde(default)]
    pub smtp: SmtpSection,
    #[serde(default)]
    pub imap: ImapSection,
    #[serde(default)]
    pub relay: RelaySection,
    #[serde(default)]
    pub dns: DnsSection,
    #[serde(default)]
    pub dkim: DkimSection,
    #[serde(default)]
    pub verify: VerifySection,
    #[serde(default)]
    pub analyze: AnalyzeSection,
    #[serde(default)]
    pub web: WebSection,
}

/// `[web]`: the web interface (its listeners are `[listen] http/https`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebSection {
    /// Accounts with the administrator role (the administration pages and
    /// `/api/admin/`). Named here, not in the store: no page can make an
    /// administrator.
    pub admins: Vec<String>,
    /// Seconds a web login lasts without a request.
    pub session_idle: u64,
    /// Seconds a web login lasts at most.
    pub session_max: u64,
    /// Web logins held at once (beyond it the least recently used ends).
    pub max_sessions: usize,
    /// Largest request body in bytes (compose, API).
    pub max_body: usize,
    /// Messages per page of a message list.
    pub page_size: usize,
    /// Connections at once, and from one client address.
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// Seconds a client has to send a request header.
    pub header_timeout: u64,
    /// Seconds a whole request may take, its body included.
    pub request_timeout: u64,
    /// The host name autoconfig and Autodiscover tell mail clients
    /// (default: `hostname`).
    pub client_hostname: Option<String>,
}

impl Default for WebSection {
    fn default() -> Self {
        WebSection {
            admins: Vec::new(),
            session_idle: 3600,
            session_max: 12 * 3600,
            max_sessions: 10_000,
            max_body: 10 * 1024 * 1024,
            page_size: 50,
            max_connections: 2000,
            max_connections_per_ip: 200,
            header_timeout: 30,
            request_timeout: 180,
            client_hostname: None,
        }
    }
}

/// `[analyze]`: what `postamt analyze` trusts and protects.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnalyzeSection {
    /// Relays outside our own networks whose Received lines are believed
    /// (a smarthost, a forwarder): addresses or CIDR blocks, `!` excludes.
    pub trusted_relays: Vec<String>,
    /// Our own MX hosts and relays (addresses or CIDR blocks).
    pub internal_networks: Vec<String>,
    /// Submission servers (their clients logged in).
    pub msa_networks: Vec<String>,
    /// Domains besides the local ones whose look-alikes are flagged.
    pub protected_domains: Vec<String>,
    /// Display names that only local senders may use (`CEO`, people's names).
    pub protected_names: Vec<String>,
}

/// `[verify]`: authentication of inbound mail on port 25.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerifySection {
    /// SPF (RFC 7208) of the MAIL FROM identity: "mark" records the result
    /// in `Authentication-Results:` and `Received-SPF:`; "reject" also
    /// refuses "fail" (550 5.7.23) and defers "temperror" (451 4.7.24);
    /// "off".
    pub spf: String,
    /// Verify DKIM signatures (RFC 6376) and record each result in
    /// `Authentication-Results:`; nothing is refused on DKIM alone.
    pub dkim: bool,
    /// DMARC (RFC 7489, RFC 9989): "enforce" applies the author domain's
    /// policy to failing mail (`p=reject`: 550 5.7.26; `p=quarantine`: the
    /// recipient's Junk mailbox), "mark" only records the result, "off".
    /// Needs `spf` on.
    pub dmarc: String,
    /// Mailing lists and forwarders whose passing ARC chain (RFC 8617)
    /// excuses a DMARC failure: the ARC-Seal `d=` domains of the newest
    /// seal to trust.
    pub trusted_arc_sealers: Vec<String>,
    /// Seconds one message's checks may wait for DNS before "temperror".
    pub timeout: u64,
    /// DMARC aggregate reports (RFC 9990) to the `rua=` addresses of the
    /// domains whose mail was checked (with DMARC on).
    pub dmarc_reports: bool,
    /// The reporting period in seconds (RFC 9990: a day; periods start at
    /// multiples of it since 1970, UTC).
    pub report_interval: u64,
    /// The reports' From: and `email`; default `noreply-dmarc@<hostname>`.
    pub report_from: Option<String>,
    /// The reports' `org_name` and Submitter; default the hostname.
    pub report_org: Option<String>,
    /// How DMARC finds organizational domains: "treewalk" (RFC 9989 §4.10,
    /// DNS only) or "psl" (RFC 7489 §3.2, the Public Suffix List).
    pub organizational_domain: String,
    /// With "psl": a list file in the Public Suffix List's format instead
    /// of the one compiled into the binary.
    pub public_suffix_list: Option<PathBuf>,
}

impl Default for VerifySection {
    fn default() -> Self {
        VerifySection {
            spf: "mark".into(),
            dkim: true,
            dmarc: "enforce".into(),
            trusted_arc_sealers: Vec::new(),
            timeout: 20,
            dmarc_reports: true,
            report_interval: 86_400,
            report_from: None,
            report_org: None,
            organizational_domain: "treewalk".into(),
            public_suffix_list: None,
        }
    }
}

/// `[relay]`: the outbound MTA (queue runner and SMTP client).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelaySection {
    /// Deliver the queue at all (`serve --dev` turns it off: nothing
    /// leaves the machine, queued mail stays visible in `postamt queue`).
    pub enabled: bool,
    /// Send all outbound mail through this host ("host:port"; no MX lookup).
    pub smarthost: Option<String>,
    /// Login at the smarthost (AUTH PLAIN/LOGIN, after TLS).
    pub smarthost_user: Option<String>,
    /// The password, or the name of a file holding it.
    pub smarthost_password: Option<String>,
    pub smarthost_password_file: Option<PathBuf>,
    /// Port of remote MTAs.
    pub port: u16,
    /// "opportunistic" (STARTTLS when offered), "required", "off".
    pub tls: String,
    /// Verify server certificates against `tls_ca_file` (and the host
    /// name). Off by default for opportunistic TLS (as Postfix's `may`).
    pub tls_verify: bool,
    pub tls_ca_file: PathBuf,
    /// Seconds: first retry after this, doubling per attempt...
    pub retry_initial: u64,
    /// ... up to this.
    pub retry_max: u64,
    /// Seconds in the queue before the message bounces (default 5 days).
    pub max_lifetime: u64,
    /// Seconds before a "delayed" notice goes to the sender; 0: never.
    pub delay_warning: u64,
    pub destination_concurrency: usize,
    pub max_connections: usize,
    pub messages_per_connection: usize,
    /// Seconds an idle outbound connection waits for the next message.
    pub connection_cache_time: u64,
    pub max_active: usize,
    /// Bounces carry messages up to this size whole, else their header.
    pub bounce_size_limit: usize,
    /// RFC 5321 §4.5.3.2 timeouts, seconds.
    pub connect_timeout: u64,
    pub greeting_timeout: u64,
    pub command_timeout: u64,
    pub data_block_timeout: u64,
    pub data_end_timeout: u64,
}

impl Default for RelaySection {
    fn default() -> Self {
        RelaySection {
            enabled: true,
            smarthost: None,
            smarthost_user: None,
            smarthost_password: None,
            smarthost_password_file: None,
            port: 25,
            tls: "opportunistic".into(),
            tls_verify: false,
            tls_ca_file: "/etc/ssl/certs/ca-certificates.crt".into(),
            retry_initial: 60,
            retry_max: 3600,
            max_lifetime: 5 * 86400,
            delay_warning: 4 * 3600,
            destination_concurrency: 20,
            max_connections: 100,
            messages_per_connection: 100,
            connection_cache_time: 2,
            max_active: 1000,
            bounce_size_limit: 50_000,
            connect_timeout: 30,
            greeting_timeout: 300,
            command_timeout: 300,
            data_block_timeout: 180,
            data_end_timeout: 600,
        }
    }
}

/// `[dns]`: the resolver the relay (MX, A/AAAA) and DKIM use.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsSection {
    /// "ip" or "ip:port"; empty: the system's /etc/resolv.conf.
    pub nameservers: Vec<String>,
    /// Seconds per query; default: the resolver's (5).
    pub timeout: Option<u64>,
}

impl DnsSection {
    /// The resolver settings for the relay, verification and the admin
    /// commands.
    pub fn settings(&self) -> Result<postamt_auth::resolver::DnsSettings> {
        Ok(postamt_auth::resolver::DnsSettings {
            nameservers: self.nameservers()?,
            timeout: self.timeout.map(std::time::Duration::from_secs),
        })
    }

    pub fn nameservers(&self) -> Result<Vec<SocketAddr>> {
        self.nameservers
            .iter()
            .map(|s| {
                s.parse::<SocketAddr>()
                    .or_else(|_| {
                        s.parse::<std::net::IpAddr>()
                            .map(|ip| SocketAddr::new(ip, 53))
                    })
                    .with_context(|| format!("[dns] nameservers: {s:?} is not ip or ip:port"))
            })
            .collect()
    }
}

/// `[dkim]`: signing of outbound mail.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DkimSection {
    /// Sign mail whose author domain has a key (made by `postamt dkim keygen`).
    pub sign: bool,
    /// Where keys live; default `<data_dir>/dkim`.
    pub key_dir: Option<PathBuf>,
}

impl Default for DkimSection {
    fn default() -> Self {
        DkimSection {
            sign: true,
            key_dir: None,
        }
    }
}

/// `[imap]`: the IMAP listeners.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImapSection {
    /// Longest command line, CRLF included.
    pub max_line: usize,
    /// Longest command (lines and literals) apart from APPEND content.
    pub max_command: usize,
    /// Longest command before login.
    pub max_command_preauth: usize,
    /// Largest APPEND (advertised as APPENDLIMIT), bytes; default: the
    /// SMTP message size limit.
    pub max_append: Option<u64>,
    /// Seconds without a command before autologout (RFC 9051 §5.4: >= 1800).
    pub autologout: u64,
    /// Seconds one IDLE may last.
    pub idle_max: u64,
}

impl Default for ImapSection {
    fn default() -> Self {
        ImapSection {
            // Dovecot's imap_max_line_length.
            max_line: 64 * 1024,
            max_command: 128 * 1024,
            // Room for an ID of 30 pairs of 1,024-octet values (RFC 2971
            // §3.3), which clients may send before login.
            max_command_preauth: 40 * 1024,
            max_append: None,
            autologout: 1800,
            idle_max: 7200,
        }
    }
}

/// `[smtp]`: the SMTP, submission and LMTP listeners.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpSection {
    /// Largest message accepted (advertised with SIZE), bytes.
    pub max_message_size: usize,
    /// Largest header block, bytes.
    pub max_header_size: usize,
    /// Recipients per transaction (RFC 5321 §4.5.3.1.8: at least 100).
    pub max_recipients: usize,
    /// Longest command line, CRLF included.
    pub max_line: usize,
    /// Seconds to wait for a command (RFC 5321 §4.5.3.2.7: at least 300).
    pub command_timeout: u64,
    /// Seconds to wait for the next block of message data (§4.5.3.2.5).
    pub data_timeout: u64,
    /// Unauthenticated mail claiming a local sender domain on the inbound
    /// port: "reject" (550 5.7.1), "mark" (X-Postamt-Warning header), "off".
    pub spoof_policy: String,
    /// Received headers beyond which a message is a loop.
    pub max_received: usize,
}

impl Default for SmtpSection {
    fn default() -> Self {
        SmtpSection {
            max_message_size: 50 * 1024 * 1024,
            max_header_size: 1024 * 1024,
            max_recipients: 100,
            max_line: 2048,
            command_timeout: 300,
            data_timeout: 180,
            spoof_policy: "reject".into(),
            max_received: 50,
        }
    }
}

/// One address or a list of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Addresses {
    One(String),
    Many(Vec<String>),
}

/// Where a listener listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Tcp(SocketAddr),
    /// A unix socket path (LMTP only).
    Unix(PathBuf),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Tcp(a) => write!(f, "{a}"),
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

impl Addresses {
    /// The endpoints: `address:port`, or an absolute path for a unix socket.
    pub fn parse(&self) -> Result<Vec<Endpoint>> {
        let list = match self {
            Addresses::One(a) => vec![a.clone()],
            Addresses::Many(v) => v.clone(),
        };
        list.iter()
            .map(|a| {
                if a.starts_with('/') {
                    return Ok(Endpoint::Unix(PathBuf::from(a)));
                }
                a.parse::<SocketAddr>().map(Endpoint::Tcp).with_context(|| {
                    format!(
                        "{a:?} is not an address:port (or an absolute unix socket path, for lmtp)"
                    )
                })
            })
            .collect()
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    pub smtp: Option<Addresses>,
    pub submission: Option<Addresses>,
    pub submissions: Option<Addresses>,
    pub imap: Option<Addresses>,
    pub imaps: Option<Addresses>,
    pub pop3: Option<Addresses>,
    pub pop3s: Option<Addresses>,
    pub lmtp: Option<Addresses>,
    /// The web interface over plain HTTP: loopback addresses only.
    pub http: Option<Addresses>,
    /// The web interface over HTTPS with the `[tls]` certificate.
    pub https: Option<Addresses>,
}

impl Listen {
    /// Every configured listener: (name, addresses).
    pub fn all(&self) -> Vec<(&'static str, &Addresses)> {
        [
            ("smtp", &self.smtp),
            ("submission", &self.submission),
            ("submissions", &self.submissions),
            ("imap", &self.imap),
            ("imaps", &self.imaps),
            ("pop3", &self.pop3),
            ("pop3s", &self.pop3s),
            ("lmtp", &self.lmtp),
            ("http", &self.http),
            ("https", &self.https),
        ]
        .into_iter()
        .filter_map(|(n, a)| a.as_ref().map(|a| (n, a)))
        .collect()
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    pub url: Option<String>,
    /// Message content of at least this many bytes is kept in a file beside
    /// the database (`data_dir/blobs/`) instead of inside it. Default 64 KiB.
    pub file_min_size: Option<usize>,
    /// Such content is appended to pack files (`data_dir/blobs/packs/`) of
    /// up to this many bytes; 0: a file per message. Default 256 MiB.
    pub pack_size: Option<u64>,
    /// PostgreSQL: this node's name among the nodes on one database
    /// (unique: a second `serve` with the same name is refused; its queue
    /// claims carry it). Default: the host name.
    pub node: Option<String>,
    /// PostgreSQL: seconds a queue claim lasts unless its node renews it
    /// (while it lives, every third of this); a node that dies loses its
    /// claims after this long and another node retries. Default 60.
    pub lease: Option<u64>,
}

/// The store of `[store] url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

/// `[limits]`: every bound, with safe defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Connections served at once, all listeners together.
    pub max_connections: usize,
    /// Connections from one client IP at once.
    pub max_connections_per_ip: usize,
    /// Seconds a client may stay silent (POP3: RFC 1939 asks for >= 600).
    pub idle_timeout: u64,
    /// Longest POP3 command line, CRLF included.
    pub pop3_max_line: usize,
    /// Protocol errors in one session before it is closed.
    pub max_errors: u32,
    /// Seconds sessions get to finish on shutdown.
    pub shutdown_grace: u64,
    /// Largest message `postamt deliver` accepts, in bytes.
    pub max_message_size: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1000,
            max_connections_per_ip: 50,
            idle_timeout: 600,
            pop3_max_line: 1024,
            max_errors: 20,
            shutdown_grace: 10,
            max_message_size: 50 * 1024 * 1024,
        }
    }
}

/// `[auth]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    /// Accept passwords over unencrypted connections from non-loopback
    /// clients. Off: only TLS or loopback (RFC 8314).
    pub allow_plaintext: bool,
    /// Milliseconds before a failed login is answered.
    pub failure_delay_ms: u64,
    /// Failed logins from one IP within the window before it is refused.
    pub max_failures: u32,
    pub failure_window: u64,
    /// Seconds a verified password is remembered (as Dovecot's
    /// auth_cache_ttl), so that logins do not pay Argon2id each time; 0:
    /// off. A changed password or deleted account is never served from it.
    pub cache_ttl: u64,
}

impl Default for Auth {
    fn default() -> Self {
        Auth {
            allow_plaintext: false,
            failure_delay_ms: 2000,
            max_failures: 10,
            failure_window: 300,
            cache_ttl: 3600,
        }
    }
}

/// `[transcripts]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TranscriptsSection {
    pub enabled: bool,
    /// Message body bytes recorded per message.
    pub body_limit: usize,
    /// Transcript files kept.
    pub keep: usize,
    /// Bytes recorded per session before its transcript is cut off.
    pub max_session_bytes: usize,
}

impl Default for TranscriptsSection {
    fn default() -> Self {
        TranscriptsSection {
            enabled: false,
            body_limit: 2048,
            keep: 1000,
            max_session_bytes: 1024 * 1024,
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Config::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Config> {
        let config: Config = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        if self.hostname.trim().is_empty() {
            bail!("hostname must not be empty");
        }
        for (name, addrs) in self.listen.all() {
            let endpoints = addrs.parse().with_context(|| format!("[listen] {name}"))?;
            if name != "lmtp" && endpoints.iter().any(|e| matches!(e, Endpoint::Unix(_))) {
                bail!("[listen] {name}: unix socket paths are for lmtp only");
            }
            // Passwords and session cookies never cross a network in the
            // clear: plain HTTP is for this machine only.
            if name == "http"
                && let Some(Endpoint::Tcp(a)) = endpoints
                    .iter()
                    .find(|e| matches!(e, Endpoint::Tcp(a) if !a.ip().is_loopback()))
            {
                bail!(
                    "[listen] http = {a}: plain HTTP is served on loopback only; use https for other addresses"
                );
            }
        }
        if self.web.page_size == 0 || self.web.page_size > 1000 {
            bail!("[web] page_size must be between 1 and 1000");
        }
        match self.smtp.spoof_policy.as_str() {
            "reject" | "mark" | "off" => {}
            other => bail!("[smtp] spoof_policy = {other:?}: use \"reject\", \"mark\" or \"off\""),
        }
        match self.verify.spf.as_str() {
            "reject" | "mark" | "off" => {}
            other => bail!("[verify] spf = {other:?}: use \"mark\", \"reject\" or \"off\""),
        }
        match self.verify.dmarc.as_str() {
            "enforce" | "mark" | "off" => {}
            other => bail!("[verify] dmarc = {other:?}: use \"enforce\", \"mark\" or \"off\""),
        }
        match self.verify.organizational_domain.as_str() {
            "treewalk" | "psl" => {}
            other => {
                bail!("[verify] organizational_domain = {other:?}: use \"treewalk\" or \"psl\"")
            }
        }
        if self.verify.public_suffix_list.is_some() && self.verify.organizational_domain != "psl" {
            bail!("[verify] public_suffix_list needs organizational_domain = \"psl\"");
        }
        if self.verify.report_interval == 0 {
            bail!("[verify] report_interval must be at least 1 second");
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            bail!("[tls] needs both cert and key, or neither");
        }
        match self.relay.tls.as_str() {
            "opportunistic" | "required" | "off" => {}
            other => {
                bail!("[relay] tls = {other:?}: use \"opportunistic\", \"required\" or \"off\"")
            }
        }
        if let Some(h) = &self.relay.smarthost {
            self.smarthost(h)
                .with_context(|| format!("[relay] smarthost = {h:?}"))?;
        }
        if self.relay.smarthost_user.is_some()
            && self.relay.smarthost_password.is_none()
            && self.relay.smarthost_password_file.is_none()
        {
            bail!("[relay] smarthost_user needs smarthost_password or smarthost_password_file");
        }
        self.dns.nameservers()?;
        self.store_url()?;
        Ok(())
    }

    /// `host:port` (a bare host means port 25; `[ip]:port` for IPv6).
    pub fn smarthost(&self, s: &str) -> Result<(String, u16)> {
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok((a.ip().to_string(), a.port()));
        }
        match s.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => {
                let port = p.parse().context("bad port")?;
                Ok((h.trim_matches(['[', ']']).to_string(), port))
            }
            None if !s.is_empty() => Ok((s.to_string(), 25)),
            _ => bail!("expected host:port"),
        }
    }

    pub fn dkim_dir(&self) -> PathBuf {
        self.dkim
            .key_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("dkim"))
    }

    /// Where the store is: a SQLite file (the default) or PostgreSQL.
    pub fn store_url(&self) -> Result<StoreUrl> {
        match &self.store.url {
            None => Ok(StoreUrl::Sqlite(self.data_dir.join("postamt.db"))),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(StoreUrl::Postgres(url.clone()))
            }
            Some(url) => match url.strip_prefix("sqlite://") {
                Some(path) if !path.is_empty() => Ok(StoreUrl::Sqlite(PathBuf::from(path))),
                _ => bail!(
                    "[store] url {url:?}: use sqlite:///path or postgres://user@host/database"
                ),
            },
        }
    }

    pub fn transcript_dir(&self) -> PathBuf {
        self.data_dir.join("transcripts")
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.limits.idle_timeout.max(1))
    }

    /// The playground of `serve --dev` (interface.md): loopback only, every
    /// standard port plus 2000, transcripts on.
    pub fn dev(data_dir: PathBuf) -> Config {
        let l = |port: u16| {
            Some(Addresses::Many(vec![
                format!("127.0.0.1:{port}"),
                format!("[::1]:{port}"),
            ]))
        };
        Config {
            hostname: "localhost".into(),
            domains: vec!["postamt.test".into()],
            data_dir,
            listen: Listen {
                smtp: l(2025),
                submission: l(2587),
                submissions: l(2465),
                imap: l(2143),
                imaps: l(2993),
                pop3: l(2110),
                pop3s: l(2995),
                lmtp: None,
                http: l(2080),
                https: None,
            },
            tls: Tls::default(),
            store: StoreSection::default(),
            limits: Limits::default(),
            // Short delay: the playground is for typing by hand.
            auth: Auth {
                failure_delay_ms: 500,
                ..Auth::default()
            },
            transcripts: TranscriptsSection {
                enabled: true,
                ..TranscriptsSection::default()
            },
            smtp: SmtpSection::default(),
            imap: ImapSection::default(),
            // The playground never sends mail off the machine.
            relay: RelaySection {
                enabled: false,
                ..RelaySection::default()
            },
            // The spoofing lab's DNS (lab.rs): the playground never asks
            // the machine's resolver.
            dns: DnsSection {
                nameservers: vec![format!("127.0.0.1:{}", crate::lab::PORT)],
                timeout: Some(2),
            },
            dkim: DkimSection::default(),
            analyze: AnalyzeSection::default(),
            // The lab's mailing list may excuse a DMARC failure (ARC).
            verify: VerifySection {
                trusted_arc_sealers: vec![crate::lab::LIST_DOMAIN.to_string()],
                ..VerifySection::default()
            },
            // alice administers the playground (interface.md).
            web: WebSection {
                admins: vec!["alice@postamt.test".into()],
                ..WebSection::default()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_and_full_configs_parse() {
        let c = Config::parse("hostname = \"mx.example.org\"\ndata_dir = \"/tmp/x\"\n").unwrap();
        assert!(c.listen.all().is_empty());
        assert_eq!(
            c.store_url().unwrap(),
            StoreUrl::Sqlite(PathBuf::from("/tmp/x/postamt.db"))
        );
        let c = Config::parse(
            r#"hostname = "mail.example.org"
domains = ["example.org"]
data_dir = "/var/lib/postamt"
[listen]
pop3 = "0.0.0.0:110"
pop3s = ["0.0.0.0:995", "[::]:995"]
[tls]
cert = "/etc/postamt/fullchain.pem"
key = "/etc/postamt/key.pem"
[store]
url = "sqlite:///var/lib/postamt/postamt.db"
file_min_size = 1000
pack_size = 0
[limits]
max_connections_per_ip = 5
"#,
        )
        .unwrap();
        assert_eq!(c.listen.pop3s.as_ref().unwrap().parse().unwrap().len(), 2);
        assert_eq!(c.limits.max_connections_per_ip, 5);
        assert_eq!(c.store.file_min_size, Some(1000));
        assert_eq!(c.store.pack_size, Some(0));
        assert_eq!(
            c.store_url().unwrap(),
            StoreUrl::Sqlite(PathBuf::from("/var/lib/postamt/postamt.db"))
        );
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let err =
            Config::parse("hostname = \"x\"\ndata_dir = \"/tmp\"\n[limits]\nmax_conections = 3\n")
                .unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("max_conections"), "{msg}");
        assert!(msg.contains("line 4"), "{msg}");
    }

    #[test]
    fn bad_values_are_errors() {
        assert!(
            Config::parse("hostname = \"x\"\ndata_dir = \"/t\"\n[listen]\npop3 = \"nope\"\n")
                .is_err()
        );
        assert!(
            Config::parse("hostname = \"x\"\ndata_dir = \"/t\"\n[tls]\ncert = \"/a\"\n").is_err()
        );
        // A PostgreSQL URL is a valid config (issue 18, in progress); a
        // store of another kind is not.
        let pg = Config::parse(
            "hostname = \"x\"\ndata_dir = \"/t\"\n[store]\nurl = \"postgres://db\"\n",
        )
        .unwrap();
        assert_eq!(
            pg.store_url().unwrap(),
            StoreUrl::Postgres("postgres://db".into())
        );
        assert!(
            Config::parse("hostname = \"x\"\ndata_dir = \"/t\"\n[store]\nurl = \"mysql://db\"\n")
                .is_err()
        );
    }

    #[test]
    fn verify_discovery_and_report_settings() {
        let base = "hostname = \"mx.example.org\"\ndata_dir = \"/t\"\n[verify]\n";
        let c = Config::parse(base).unwrap();
        assert_eq!(c.verify.organizational_domain, "treewalk");
        assert!(c.verify.dmarc_reports);
        assert_eq!(c.verify.report_interval, 86_400);
        let c = Config::parse(&format!(
            "{base}organizational_domain = \"psl\"\npublic_suffix_list = \"/usr/share/publicsuffix/public_suffix_list.dat\"\nreport_interval = 3600\nreport_from = \"dmarc@example.org\"\n"
        ))
        .unwrap();
        assert_eq!(c.verify.organizational_domain, "psl");
        assert_eq!(c.verify.report_from.as_deref(), Some("dmarc@example.org"));
        for bad in [
            "organizational_domain = \"dns\"\n",
            "public_suffix_list = \"/x\"\n",
            "report_interval = 0\n",
        ] {
            let e = Config::parse(&format!("{base}{bad}")).unwrap_err();
            assert!(format!("{e:#}").contains("[verify]"), "{bad}: {e:#}");
        }
    }
}
