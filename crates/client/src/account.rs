//! Accounts from `client.toml` (../shared/spec/interface.md, "The mail
//! client's accounts"): endpoints, login, and where the password comes
//! from — a command, an environment variable or a prompt; never stored by
//! the client.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{ClientError, Result};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    #[serde(default)]
    pub accounts: BTreeMap<String, Account>,
}

/// `starttls` | `tls` | `plain` (plain: loopback only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    Starttls,
    Tls,
    Plain,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    pub address: String,
    pub user: Option<String>,
    pub password_command: Option<String>,
    pub password_env: Option<String>,
    pub smtp: Option<String>,
    pub smtp_security: Option<Security>,
    pub imap: Option<String>,
    pub imap_security: Option<Security>,
    pub pop3: Option<String>,
    pub pop3_security: Option<Security>,
    /// `sha256:AB:CD:…` — accept exactly this server certificate.
    pub tls_trust: Option<String>,
    #[serde(default)]
    pub default: bool,
    /// Display name for From: (optional).
    pub name: Option<String>,
    /// S/MIME: the PKCS#12 file with this account's certificate and key.
    pub smime_identity: Option<String>,
    pub smime_password_command: Option<String>,
    pub smime_password_env: Option<String>,
    /// S/MIME: trusted CA certificates (PEM) for verifying signatures.
    pub smime_ca: Option<String>,
}

impl Account {
    pub fn login(&self) -> &str {
        self.user.as_deref().unwrap_or(&self.address)
    }

    /// The password: from `password_command` (its first line), from
    /// `password_env`, or asked for on the terminal.
    pub fn password(&self) -> Result<String> {
        secret(
            ("password_command", self.password_command.as_deref()),
            ("password_env", self.password_env.as_deref()),
            &format!("password for {}: ", self.login()),
        )
    }

    /// The S/MIME identity's password: `smime_password_command`,
    /// `smime_password_env`, or asked for on the terminal.
    pub fn smime_password(&self) -> Result<String> {
        secret(
            (
                "smime_password_command",
                self.smime_password_command.as_deref(),
            ),
            ("smime_password_env", self.smime_password_env.as_deref()),
            "password of the S/MIME identity: ",
        )
    }
}

/// A secret from a command (its first line), else an environment
/// variable, else the terminal; each source named by its config key.
fn secret(
    (command_key, command): (&str, Option<&str>),
    (env_key, env): (&str, Option<&str>),
    prompt: &str,
) -> Result<String> {
    if let Some(cmd) = command {
        let out = std::process::Command::new("sh")
            .args(["-c", cmd])
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| ClientError::Config(format!("{command_key}: {e}")))?;
        if !out.status.success() {
            return Err(ClientError::Config(format!(
                "{command_key} failed ({})",
                out.status
            )));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        return Ok(text.lines().next().unwrap_or("").to_string());
    }
    if let Some(var) = env {
        return std::env::var(var)
            .map_err(|_| ClientError::Config(format!("{env_key}: ${var} is not set")));
    }
    prompt_password(prompt)
}

/// `~/…` expanded.
pub fn expand_home(path: &str) -> PathBuf {
    match path.strip_prefix("~/") {
        Some(rest) => {
            PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| ".".into())).join(rest)
        }
        None => PathBuf::from(path),
    }
}

fn prompt_password(prompt: &str) -> Result<String> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Err(ClientError::Config(
            "no password: set password_command or password_env for this account".into(),
        ));
    }
    eprint!("{prompt}");
    std::io::stderr().flush().ok();
    // Echo off while typing.
    let _ = std::process::Command::new("stty").arg("-echo").status();
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    let _ = std::process::Command::new("stty").arg("echo").status();
    eprintln!();
    read?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

impl ClientConfig {
    /// `--client-config`, else `$POSTAMT_CLIENT_CONFIG`, else
    /// `~/.config/postamt/client.toml`.
    pub fn path(explicit: Option<&Path>) -> PathBuf {
        if let Some(p) = explicit {
            return p.to_path_buf();
        }
        if let Ok(p) = std::env::var("POSTAMT_CLIENT_CONFIG") {
            return PathBuf::from(p);
        }
        let home = std::env::var("HOME").unwrap_or_else(|_| ".".into());
        PathBuf::from(home).join(".config/postamt/client.toml")
    }

    pub fn load(path: &Path) -> Result<ClientConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ClientError::Config(format!("{}: {e}", path.display())))?;
        ClientConfig::parse(&text)
            .map_err(|e| ClientError::Config(format!("{}: {e}", path.display())))
    }

    pub fn parse(text: &str) -> std::result::Result<ClientConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// The account named `name`, or the default one, or the only one.
    pub fn account(&self, name: Option<&str>) -> Result<(&str, &Account)> {
        if let Some(n) = name {
            return self
                .accounts
                .get_key_value(n)
                .map(|(k, v)| (k.as_str(), v))
                .ok_or_else(|| ClientError::Config(format!("no account named {n:?}")));
        }
        let defaults: Vec<_> = self.accounts.iter().filter(|(_, a)| a.default).collect();
        match (defaults.as_slice(), self.accounts.len()) {
            ([(k, a)], _) => Ok((k.as_str(), a)),
            ([], 1) => {
                let (k, a) = self.accounts.iter().next().expect("one account");
                Ok((k.as_str(), a))
            }
            ([], 0) => Err(ClientError::Config("no accounts configured".into())),
            _ => Err(ClientError::Config(
                "several accounts and no single default: use --account NAME".into(),
            )),
        }
    }

    /// Appends an account (`postamt mail account add`).
    pub fn add_to_file(path: &Path, name: &str, toml_text: &str) -> Result<()> {
        use std::io::Write;
        if let Ok(existing) = std::fs::read_to_string(path)
            && let Ok(c) = ClientConfig::parse(&existing)
            && c.accounts.contains_key(name)
        {
            return Err(ClientError::Config(format!(
                "account {name:?} exists in {}",
                path.display()
            )));
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        writeln!(f, "\n[accounts.{name}]\n{toml_text}")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_parse_and_select() {
        let c = ClientConfig::parse(
            r#"
[accounts.work]
address = "alice@example.org"
password_env = "PW"
smtp = "smtp.example.org:587"
smtp_security = "starttls"
pop3 = "pop.example.org:995"
pop3_security = "tls"
tls_trust = "sha256:AB:CD"
default = true
[accounts.home]
address = "a@home.org"
"#,
        )
        .unwrap();
        assert_eq!(c.account(None).unwrap().0, "work");
        assert_eq!(c.account(Some("home")).unwrap().1.login(), "a@home.org");
        assert!(c.account(Some("nope")).is_err());
        assert!(ClientConfig::parse("[accounts.x]\naddress = \"a\"\nbogus = 1\n").is_err());
    }
}
