//! `postamt smime`: certificates for a course or an organisation (a small
//! CA in the data directory) and S/MIME on files, like `openssl cms`:
//! sign, encrypt, verify (exit 0 valid and trusted, 1 invalid or
//! untrusted, 2 not signed or not checkable), decrypt.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use openssl::x509::{X509, X509Crl};
use postamt_smime::ca::{addresses, subject};
use postamt_smime::{Ca, Identity, KeyKind, Status};

use crate::config::Config;

#[derive(Subcommand)]
pub enum SmimeCmd {
    /// The certificate authority in the data directory.
    #[command(subcommand)]
    Ca(CaCmd),
    /// Certificates issued by it.
    #[command(subcommand)]
    Cert(CertCmd),
    /// Import a PKCS#12 identity's certificate into the certificate store.
    Import {
        file: PathBuf,
        /// Read the PKCS#12 password from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// The certificates in the store: subject, addresses, validity.
    List,
    /// Check a signed message (nested layers too). Exit 0: valid and
    /// trusted; 1: invalid, untrusted or refused by policy; 2: not signed
    /// or not checkable.
    Verify {
        file: PathBuf,
        /// Trusted CA certificates (PEM); default: this installation's CA.
        #[arg(long)]
        ca: Vec<PathBuf>,
        /// Certificate revocation lists (PEM or DER, RFC 5280); default:
        /// this installation's (`smime cert revoke`) with its CA.
        #[arg(long)]
        crl: Vec<PathBuf>,
        /// Check the certificates at this time (RFC 3339 or seconds since 1970).
        #[arg(long)]
        at: Option<String>,
        #[arg(long)]
        json: bool,
        /// Open encrypted layers with this identity.
        #[arg(long)]
        identity: Option<PathBuf>,
        #[arg(long)]
        password_env: Option<String>,
    },
    /// Print the decrypted MIME entity (with the outer header fields).
    Decrypt {
        file: PathBuf,
        #[arg(long)]
        identity: PathBuf,
        /// The environment variable holding the PKCS#12 password (else stdin).
        #[arg(long)]
        password_env: Option<String>,
    },
    /// Sign the message (or MIME entity) in FILE.
    Sign {
        file: PathBuf,
        #[arg(long)]
        identity: PathBuf,
        /// application/pkcs7-mime signed-data instead of multipart/signed.
        #[arg(long)]
        opaque: bool,
        #[arg(long)]
        password_env: Option<String>,
    },
    /// Encrypt the message (or MIME entity) in FILE to these certificates.
    Encrypt {
        file: PathBuf,
        #[arg(long = "recipient-cert", required = true)]
        recipient_certs: Vec<PathBuf>,
        /// aes-256-cbc (EnvelopedData, what every client reads),
        /// aes-128-gcm or aes-256-gcm (AuthEnvelopedData, RFC 5083/5084).
        #[arg(long, default_value = "aes-256-cbc")]
        cipher: String,
    },
}

#[derive(Subcommand)]
pub enum CaCmd {
    /// Create the CA (once).
    Init {
        #[arg(long)]
        name: String,
        /// rsa (2048 bits) or ec (P-256).
        #[arg(long, default_value = "rsa")]
        algorithm: String,
        #[arg(long, default_value_t = 3650)]
        days: u32,
    },
}

#[derive(Subcommand)]
pub enum CertCmd {
    /// Issue a certificate for ADDRESS and write a PKCS#12 file (password
    /// from standard input or a prompt).
    Issue {
        address: String,
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// rsa (2048 bits) or ec (P-256).
        #[arg(long, default_value = "rsa")]
        algorithm: String,
        /// Where to write it; default ADDRESS.p12 here.
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        password_stdin: bool,
        /// PKCS#12 under PBE-SHA1-3DES with a SHA-1 MAC, for tools that
        /// cannot read OpenSSL 3's AES-256 (gpgsm before 2.2.42 / 2.4.4,
        /// older Windows and macOS).
        #[arg(long)]
        legacy_p12: bool,
    },
    /// Revoke a certificate this CA issued: ADDRESS's in the certificate
    /// store, or the one in a PEM file; writes the revocation list
    /// `<data_dir>/smime/crl.pem` (RFC 5280 §5, signed by the CA, due
    /// again in 30 days) that `smime verify` checks.
    Revoke { certificate: String },
}

fn dir(config: &Config) -> PathBuf {
    config.data_dir.join("smime")
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    crate::admin::read_message(path)
}

fn password(env: Option<&str>, what: &str) -> Result<String> {
    match env {
        Some(var) => std::env::var(var).with_context(|| format!("{var} is not set")),
        None => {
            let mut s = String::new();
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                eprint!("Password for {what}: ");
            }
            std::io::stdin().read_line(&mut s)?;
            Ok(s.trim_end_matches(['\r', '\n']).to_string())
        }
    }
}

fn identity(path: &Path, env: Option<&str>) -> Result<Identity> {
    let der = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let pw = password(env, &path.display().to_string())?;
    Identity::from_pkcs12(&der, &pw).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn certs_pem(path: &Path) -> Result<Vec<X509>> {
    let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let certs =
        X509::stack_from_pem(&pem).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        bail!("{}: no certificate", path.display());
    }
    Ok(certs)
}

fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(data)?;
    Ok(())
}

/// Seconds since 1970 from RFC 3339 or a number.
fn time(s: &str) -> Result<i64> {
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    mail_parser::DateTime::parse_rfc3339(s)
        .filter(|d| d.is_valid())
        .map(|d| d.to_timestamp())
        .with_context(|| {
            format!("--at {s:?}: use RFC 3339 (2026-12-05T12:00:00Z) or seconds since 1970")
        })
}

pub fn run(config: Result<Config>, cmd: &SmimeCmd) -> Result<ExitCode> {
    match cmd {
        SmimeCmd::Ca(CaCmd::Init {
            name,
            algorithm,
            days,
        }) => {
            let config = config?;
            let d = dir(&config);
            if d.join("ca.pem").exists() {
                bail!(
                    "{} exists already: one CA per installation",
                    d.join("ca.pem").display()
                );
            }
            crate::open::create_private_dir(&d)?;
            let ca = Ca::new(
                name,
                KeyKind::parse(algorithm).map_err(|e| anyhow::anyhow!(e))?,
                *days,
            )
            .map_err(|e| anyhow::anyhow!(e))?;
            write_private(&d.join("ca.key"), &ca.key.private_key_to_pem_pkcs8()?)?;
            std::fs::write(d.join("ca.pem"), ca.cert.to_pem()?)?;
            println!(
                "CA {name:?} created: {} (give this to the people who check signatures)",
                d.join("ca.pem").display()
            );
        }
        SmimeCmd::Cert(CertCmd::Issue {
            address,
            days,
            algorithm,
            out,
            password_stdin,
            legacy_p12,
        }) => {
            let config = config?;
            let d = dir(&config);
            let ca = Ca::from_pem(
                &std::fs::read(d.join("ca.pem"))
                    .context("no CA yet: postamt smime ca init --name NAME")?,
                &std::fs::read(d.join("ca.key"))?,
            )
            .map_err(|e| anyhow::anyhow!(e))?;
            let id = ca
                .issue(
                    address,
                    KeyKind::parse(algorithm).map_err(|e| anyhow::anyhow!(e))?,
                    *days,
                )
                .map_err(|e| anyhow::anyhow!(e))?;
            let pw = if *password_stdin {
                password(None, address)?
            } else {
                password(None, &format!("the PKCS#12 file of {address}"))?
            };
            if pw.is_empty() {
                bail!("empty password");
            }
            let out = out
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("{address}.p12")));
            let p12 = if *legacy_p12 {
                id.to_legacy_pkcs12(&pw)
            } else {
                id.to_pkcs12(&pw)
            };
            write_private(&out, &p12.map_err(|e| anyhow::anyhow!(e))?)?;
            store_cert(&d, &id.cert)?;
            println!(
                "issued to {address}: {} (certificate and key, with the CA)",
                out.display()
            );
        }
        SmimeCmd::Cert(CertCmd::Revoke { certificate }) => {
            let config = config?;
            let d = dir(&config);
            let ca = Ca::from_pem(
                &std::fs::read(d.join("ca.pem"))
                    .context("no CA yet: postamt smime ca init --name NAME")?,
                &std::fs::read(d.join("ca.key"))?,
            )
            .map_err(|e| anyhow::anyhow!(e))?;
            let path = if Path::new(certificate).exists() {
                PathBuf::from(certificate)
            } else {
                store_cert_path(&config, certificate)
            };
            let cert = X509::from_pem(&std::fs::read(&path).with_context(|| {
                format!("no certificate {certificate} (a file, or an address in the store)")
            })?)
            .with_context(|| format!("{}: not a PEM certificate", path.display()))?;
            let ours = cert.issuer_name().to_der()? == ca.cert.subject_name().to_der()?
                && cert.verify(&ca.key).unwrap_or(false);
            if !ours {
                bail!("{} was not issued by this CA", path.display());
            }
            let serial = cert.serial_number().to_bn()?.to_hex_str()?.to_string();
            let list = d.join("revoked.txt");
            let mut revoked: Vec<(String, i64)> = std::fs::read_to_string(&list)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| {
                    let mut w = l.split_whitespace();
                    Some((w.next()?.to_string(), w.next()?.parse().ok()?))
                })
                .collect();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs() as i64;
            if revoked.iter().any(|(s, _)| *s == serial) {
                println!("{serial} was revoked already");
            } else {
                revoked.push((serial.clone(), now));
                let mut text = std::fs::read_to_string(&list).unwrap_or_default();
                text.push_str(&format!("{serial} {now} {}\n", addresses(&cert).join(",")));
                std::fs::write(&list, text)?;
            }
            let crl = ca
                .crl(&revoked, revoked.len() as u64, now, 30)
                .map_err(|e| anyhow::anyhow!(e))?;
            std::fs::write(d.join("crl.pem"), crl.to_pem()?)?;
            println!(
                "revoked {} (serial {serial}); the revocation list is {} (publish it; `smime verify` checks it)",
                subject(&cert),
                d.join("crl.pem").display()
            );
        }
        SmimeCmd::Import {
            file,
            password_stdin: _,
        } => {
            let config = config?;
            let id = identity(file, None)?;
            store_cert(&dir(&config), &id.cert)?;
            println!("imported {}", subject(&id.cert));
        }
        SmimeCmd::List => {
            let config = config?;
            let certs = dir(&config).join("certs");
            let mut names: Vec<_> = std::fs::read_dir(&certs)
                .map(|r| r.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
            names.sort();
            if names.is_empty() {
                println!(
                    "no certificates (postamt smime cert issue ADDRESS, or smime import FILE.p12)"
                );
            }
            for p in names {
                for c in certs_pem(&p)? {
                    println!(
                        "{}\t{}\tuntil {}",
                        addresses(&c).join(","),
                        subject(&c),
                        c.not_after()
                    );
                }
            }
        }
        SmimeCmd::Verify {
            file,
            ca,
            crl,
            at,
            json,
            identity: id,
            password_env,
        } => {
            let message = read_file(file)?;
            let mut trust = Vec::new();
            for p in ca {
                trust.extend(certs_pem(p)?);
            }
            let mut crls = Vec::new();
            for p in crl {
                crls.extend(crls_pem(p)?);
            }
            // Without --ca: this installation's CA, and its revocation
            // list when it has revoked anything.
            if ca.is_empty()
                && let Ok(c) = &config
                && let Ok(certs) = certs_pem(&dir(c).join("ca.pem"))
            {
                trust.extend(certs);
                if crl.is_empty()
                    && let Ok(list) = crls_pem(&dir(c).join("crl.pem"))
                {
                    crls.extend(list);
                }
            }
            let at = at.as_deref().map(time).transpose()?;
            let id = id
                .as_ref()
                .map(|p| identity(p, password_env.as_deref()))
                .transpose()?;
            let v = postamt_smime::verify_with_crls(&message, &trust, &crls, at, id.as_ref());
            if *json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print_verification(&v);
            }
            return Ok(ExitCode::from(match v.status {
                Status::Valid => 0,
                Status::Invalid | Status::Untrusted | Status::Policy => 1,
                Status::NotSigned => 2,
            }));
        }
        SmimeCmd::Decrypt {
            file,
            identity: id,
            password_env,
        } => {
            let id = identity(id, password_env.as_deref())?;
            let out =
                postamt_smime::decrypt(&read_file(file)?, &id).map_err(|e| anyhow::anyhow!(e))?;
            std::io::Write::write_all(&mut std::io::stdout(), &out)?;
        }
        SmimeCmd::Sign {
            file,
            identity: id,
            opaque,
            password_env,
        } => {
            let id = identity(id, password_env.as_deref())?;
            let out = postamt_smime::sign(&read_file(file)?, &id, *opaque)
                .map_err(|e| anyhow::anyhow!(e))?;
            std::io::Write::write_all(&mut std::io::stdout(), &out)?;
        }
        SmimeCmd::Encrypt {
            file,
            recipient_certs,
            cipher,
        } => {
            let mut certs = Vec::new();
            for p in recipient_certs {
                certs.extend(certs_pem(p)?);
            }
            let cipher = postamt_smime::Cipher::parse(cipher).map_err(|e| anyhow::anyhow!(e))?;
            let out = postamt_smime::encrypt_with(&read_file(file)?, &certs, cipher)
                .map_err(|e| anyhow::anyhow!(e))?;
            std::io::Write::write_all(&mut std::io::stdout(), &out)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Where the certificate store (`<data_dir>/smime/certs/ADDRESS.pem`)
/// keeps `address`'s certificate.
pub fn store_cert_path(config: &Config, address: &str) -> PathBuf {
    dir(config)
        .join("certs")
        .join(format!("{}.pem", address.to_ascii_lowercase()))
}

/// The CRLs in a PEM file (or one in DER).
fn crls_pem(p: &Path) -> Result<Vec<X509Crl>> {
    let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    if !text.contains("-----BEGIN X509 CRL-----") {
        return Ok(vec![X509Crl::from_der(&bytes).with_context(|| {
            format!("{}: not a certificate revocation list", p.display())
        })?]);
    }
    let mut out = Vec::new();
    for block in text.split("-----END X509 CRL-----") {
        if let Some(i) = block.find("-----BEGIN X509 CRL-----") {
            let pem = format!("{}-----END X509 CRL-----\n", &block[i..]);
            out.push(
                X509Crl::from_pem(pem.as_bytes()).with_context(|| format!("{}", p.display()))?,
            );
        }
    }
    Ok(out)
}

fn store_cert(d: &Path, cert: &X509) -> Result<()> {
    let certs = d.join("certs");
    std::fs::create_dir_all(&certs)?;
    let name = addresses(cert)
        .into_iter()
        .next()
        .context("the certificate names no mail address")?;
    std::fs::write(certs.join(format!("{name}.pem")), cert.to_pem()?)?;
    Ok(())
}

fn print_verification(v: &postamt_smime::Verification) {
    let verdict = match v.status {
        Status::Valid => "VALID",
        Status::Invalid => "INVALID — do not trust this message",
        Status::Untrusted => "NOT TRUSTED — the signature matches, the signer is not trusted",
        Status::NotSigned => "NOT SIGNED (or not checkable)",
        Status::Policy => "NOT ACCEPTED — the signature matches, but is refused by policy",
    };
    println!("S/MIME: {verdict}");
    print!("{}", v.details());
}
