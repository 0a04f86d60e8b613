//! [`Directory`] for SQLite: tables `domains`, `accounts` (with the quota
//! usage every delivery and expunge keeps current) and `aliases`.

use rusqlite::{Connection, OptionalExtension, params};

use super::mailboxes::{drop_mailbox, insert_mailbox};
use super::rows::{ACCOUNT_COLS, MAILBOX_COLS, account_from_row, mailbox_from_row};
use super::{SqliteStore, backend, now};
use crate::model::*;
use crate::{Directory, Result, StoreError, normalize_address, password};

impl Directory for SqliteStore {
    fn add_domain(&self, name: &str) -> Result<()> {
        let name = crate::rules::domain_name(name)?;
        self.write(move |c| {
            c.execute("INSERT OR IGNORE INTO domains(name) VALUES (?1)", [&name])
                .map_err(backend)?;
            Ok(((), vec![]))
        })
    }

    fn remove_domain(&self, name: &str) -> Result<()> {
        let name = name.to_lowercase();
        self.write(move |c| {
            let n = c
                .execute("DELETE FROM domains WHERE name = ?1", [&name])
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("domain {name}")));
            }
            Ok(((), vec![]))
        })
    }

    fn domains(&self) -> Result<Vec<String>> {
        self.read(|c| {
            let mut s = c
                .prepare_cached("SELECT name FROM domains ORDER BY name")
                .map_err(backend)?;
            s.query_map([], |r| r.get(0))
                .and_then(|rows| rows.collect())
                .map_err(backend)
        })
    }

    fn create_account(&self, address: &str, password: &str) -> Result<Account> {
        let address = normalize_address(address)?;
        let hash = password::hash(password).map_err(backend)?;
        self.write(move |c| {
            check_local_domain(c, crate::rules::domain_of(&address))?;
            if find_account(c, &address)?.is_some() {
                return Err(StoreError::AlreadyExists(format!("account {address}")));
            }
            c.execute(
                "INSERT INTO accounts(address, password_hash, created) VALUES (?1, ?2, ?3)",
                params![address, hash, now()],
            )
            .map_err(backend)?;
            let account = find_account(c, &address)?.ok_or_else(|| backend("account vanished"))?;
            let mut changes = Vec::new();
            let names = std::iter::once(("INBOX", None))
                .chain(SpecialUse::DEFAULTS.iter().map(|(n, u)| (*n, Some(*u))));
            for (name, use_) in names {
                insert_mailbox(c, account.id, name, use_)?;
                c.execute(
                    "INSERT OR IGNORE INTO subscriptions(account_id, name) VALUES (?1, ?2)",
                    params![account.id.0, name],
                )
                .map_err(backend)?;
                changes.push(Change::MailboxCreated {
                    account: account.id,
                    name: name.to_string(),
                });
            }
            Ok((account, changes))
        })
    }

    fn set_password(&self, address: &str, password: &str) -> Result<()> {
        let address = normalize_address(address)?;
        let hash = password::hash(password).map_err(backend)?;
        self.write(move |c| {
            let n = c
                .execute(
                    "UPDATE accounts SET password_hash = ?2 WHERE address = ?1",
                    params![address, hash],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("account {address}")));
            }
            Ok(((), vec![]))
        })
    }

    fn delete_account(&self, address: &str) -> Result<()> {
        let address = normalize_address(address)?;
        self.write(move |c| {
            let account = find_account(c, &address)?
                .ok_or_else(|| StoreError::NotFound(format!("account {address}")))?;
            let mut s = c
                .prepare(&format!(
                    "SELECT {MAILBOX_COLS} FROM mailboxes WHERE account_id = ?1"
                ))
                .map_err(backend)?;
            let boxes: Vec<Mailbox> = s
                .query_map([account.id.0], mailbox_from_row)
                .and_then(|rows| rows.collect())
                .map_err(backend)?;
            let mut changes = Vec::new();
            for m in &boxes {
                drop_mailbox(c, m)?;
                changes.push(Change::MailboxDeleted {
                    account: account.id,
                    name: m.name.clone(),
                });
            }
            c.execute(
                "DELETE FROM subscriptions WHERE account_id = ?1",
                [account.id.0],
            )
            .map_err(backend)?;
            c.execute("DELETE FROM accounts WHERE id = ?1", [account.id.0])
                .map_err(backend)?;
            Ok(((), changes))
        })
    }

    fn accounts(&self) -> Result<Vec<Account>> {
        self.read(|c| {
            let mut s = c
                .prepare(&format!(
                    "SELECT {ACCOUNT_COLS} FROM accounts ORDER BY address"
                ))
                .map_err(backend)?;
            s.query_map([], account_from_row)
                .and_then(|rows| rows.collect())
                .map_err(backend)
        })
    }

    fn account(&self, address: &str) -> Result<Option<Account>> {
        let Ok(address) = normalize_address(address) else {
            return Ok(None);
        };
        self.read(|c| find_account(c, &address))
    }

    fn verify_password(&self, address: &str, pw: &str) -> Result<Option<Account>> {
        let address = normalize_address(address).unwrap_or_default();
        let row: Option<(Account, String)> = self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {ACCOUNT_COLS}, password_hash FROM accounts WHERE address = ?1"
            ))
            .and_then(|mut s| {
                s.query_row([&address], |r| Ok((account_from_row(r)?, r.get(4)?)))
                    .optional()
            })
            .map_err(backend)
        })?;
        match row {
            Some((account, hash)) => {
                Ok(password::verify_cached(&address, pw, &hash).then_some(account))
            }
            None => {
                // Same work as for a real account: no user enumeration by timing.
                let _ = password::verify(pw, password::dummy_hash());
                Ok(None)
            }
        }
    }

    fn set_quota(&self, account: AccountId, bytes: Option<u64>) -> Result<()> {
        self.write(move |c| {
            c.execute(
                "UPDATE accounts SET quota_bytes = ?2 WHERE id = ?1",
                params![account.0, bytes.map(|b| b as i64)],
            )
            .map_err(backend)?;
            Ok(((), vec![]))
        })
    }

    fn set_smime_certificate(&self, account: AccountId, pem: Option<&[u8]>) -> Result<()> {
        let pem = pem.map(<[u8]>::to_vec);
        self.write(move |c| {
            let n = c
                .execute(
                    "UPDATE accounts SET smime_cert = ?2 WHERE id = ?1",
                    params![account.0, pem],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("account {}", account.0)));
            }
            Ok(((), vec![]))
        })
    }

    fn smime_certificates(&self, accounts: &[AccountId]) -> Result<Vec<(AccountId, Vec<u8>)>> {
        self.read(|c| {
            let mut s = c
                .prepare_cached(
                    "SELECT smime_cert FROM accounts WHERE id = ?1 AND smime_cert IS NOT NULL",
                )
                .map_err(backend)?;
            let mut out = Vec::new();
            for a in accounts {
                let pem: Option<Vec<u8>> = s
                    .query_row([a.0], |r| r.get(0))
                    .optional()
                    .map_err(backend)?;
                if let Some(pem) = pem {
                    out.push((*a, pem));
                }
            }
            Ok(out)
        })
    }

    fn add_alias(&self, alias: &str, targets: &[String]) -> Result<()> {
        let (alias, targets) = crate::rules::alias_entry(alias, targets)?;
        self.write(move |c| {
            check_local_domain(c, crate::rules::domain_of(&alias))?;
            for t in &targets {
                c.execute(
                    "INSERT OR IGNORE INTO aliases(alias, target) VALUES (?1, ?2)",
                    params![alias, t],
                )
                .map_err(backend)?;
            }
            Ok(((), vec![]))
        })
    }

    fn remove_alias(&self, alias: &str) -> Result<()> {
        let alias = alias.trim().to_lowercase();
        self.write(move |c| {
            let n = c
                .execute("DELETE FROM aliases WHERE alias = ?1", [&alias])
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("alias {alias}")));
            }
            Ok(((), vec![]))
        })
    }

    fn aliases(&self) -> Result<Vec<Alias>> {
        self.read(|c| {
            let mut s = c
                .prepare("SELECT alias, target FROM aliases ORDER BY alias, target")
                .map_err(backend)?;
            let rows: Vec<(String, String)> = s
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .and_then(|rows| rows.collect())
                .map_err(backend)?;
            Ok(crate::rules::group_aliases(rows))
        })
    }

    fn alias_targets(&self, alias: &str) -> Result<Vec<String>> {
        let alias = alias.trim().to_lowercase();
        self.read(|c| {
            let mut s = c
                .prepare_cached("SELECT target FROM aliases WHERE alias = ?1 ORDER BY target")
                .map_err(backend)?;
            s.query_map([&alias], |r| r.get(0))
                .and_then(|rows| rows.collect())
                .map_err(backend)
        })
    }
}

fn find_account(conn: &Connection, address: &str) -> Result<Option<Account>> {
    conn.prepare_cached(&format!(
        "SELECT {ACCOUNT_COLS} FROM accounts WHERE address = ?1"
    ))
    .and_then(|mut s| s.query_row([address], account_from_row).optional())
    .map_err(backend)
}

fn check_local_domain(conn: &Connection, domain: &str) -> Result<()> {
    let found: Option<String> = conn
        .query_row("SELECT name FROM domains WHERE name = ?1", [domain], |r| {
            r.get(0)
        })
        .optional()
        .map_err(backend)?;
    match found {
        Some(_) => Ok(()),
        None => Err(StoreError::Invalid(format!("domain {domain} is not local"))),
    }
}

pub(super) fn add_used(conn: &Connection, account: AccountId, delta: i64) -> Result<()> {
    conn.prepare_cached("UPDATE accounts SET used_bytes = MAX(0, used_bytes + ?2) WHERE id = ?1")
        .and_then(|mut s| s.execute(params![account.0, delta]))
        .map(|_| ())
        .map_err(backend)
}
