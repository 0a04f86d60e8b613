//! [`Directory`] for PostgreSQL: tables `domains`, `accounts` and
//! `aliases`, as `sqlite/directory.rs` has them. Account creation makes the
//! account's mailboxes in the same transaction; deletion removes its
//! mailboxes with their messages (`mailboxes::drop_mailbox`).

use deadpool_postgres::Transaction;
use tokio_postgres::Row;

use super::mailboxes::{drop_mailbox, insert_mailbox, mailboxes_of};
use super::{PgStore, exec, now, row, row_opt, rows};
use crate::model::*;
use crate::{Directory, Result, StoreError, normalize_address, password};

const ACCOUNT_COLS: &str = "id, address, quota_bytes, used_bytes";

fn account_from_row(r: &Row) -> Account {
    Account {
        id: AccountId(r.get(0)),
        address: r.get(1),
        quota_bytes: r.get::<_, Option<i64>>(2).map(|q| q as u64),
        used_bytes: r.get::<_, i64>(3).max(0) as u64,
    }
}

async fn find_account(tx: &Transaction<'_>, address: &str) -> Result<Option<Account>> {
    Ok(row_opt(
        tx,
        &format!("SELECT {ACCOUNT_COLS} FROM accounts WHERE address = $1"),
        &[&address],
    )
    .await?
    .map(|r| account_from_row(&r)))
}

async fn check_local_domain(tx: &Transaction<'_>, domain: &str) -> Result<()> {
    let found = row_opt(tx, "SELECT 1 FROM domains WHERE name = $1", &[&domain]).await?;
    match found {
        Some(_) => Ok(()),
        None => Err(StoreError::Invalid(format!("domain {domain} is not local"))),
    }
}

/// How long the list of local domains is kept (see `domains`).
const DOMAINS_TTL: std::time::Duration = std::time::Duration::from_secs(1);

impl Directory for PgStore {
    fn add_domain(&self, name: &str) -> Result<()> {
        let name = crate::rules::domain_name(name)?;
        self.write(async move |tx| {
            exec(
                tx,
                "INSERT INTO domains(name) VALUES ($1) ON CONFLICT DO NOTHING",
                &[&name],
            )
            .await?;
            self.control.notify_domains(tx).await?;
            Ok(((), vec![]))
        })?;
        *self
            .control
            .domains
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = None;
        Ok(())
    }

    fn remove_domain(&self, name: &str) -> Result<()> {
        let name = name.to_lowercase();
        self.write(async move |tx| {
            let n = exec(tx, "DELETE FROM domains WHERE name = $1", &[&name]).await?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("domain {name}")));
            }
            self.control.notify_domains(tx).await?;
            Ok(((), vec![]))
        })?;
        *self
            .control
            .domains
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = None;
        Ok(())
    }

    /// Kept: SMTP asks at every RCPT, and the list changes only with an
    /// administrator's command, whose write tells every node to forget it
    /// (`Control::notify_domains`); [`DOMAINS_TTL`] bounds how long a
    /// node that missed the notice (its control connection was away)
    /// keeps a stale list.
    fn domains(&self) -> Result<Vec<String>> {
        if let Some((at, list)) = &*self
            .control
            .domains
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            && at.elapsed() < DOMAINS_TTL
        {
            return Ok(list.clone());
        }
        let list: Vec<String> = self.block(async |c| {
            let rows = super::rows(&*c, "SELECT name FROM domains ORDER BY name", &[]).await?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })?;
        *self
            .control
            .domains
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some((std::time::Instant::now(), list.clone()));
        Ok(list)
    }

    fn create_account(&self, address: &str, password: &str) -> Result<Account> {
        let address = normalize_address(address)?;
        let hash = password::hash(password).map_err(StoreError::Backend)?;
        self.write(async move |tx| {
            check_local_domain(tx, crate::rules::domain_of(&address)).await?;
            if find_account(tx, &address).await?.is_some() {
                return Err(StoreError::AlreadyExists(format!("account {address}")));
            }
            let row = row(
                tx,
                &format!(
                    "INSERT INTO accounts(address, password_hash, created) VALUES ($1, $2, $3)
                         RETURNING {ACCOUNT_COLS}"
                ),
                &[&address, &hash, &now()],
            )
            .await?;
            let account = account_from_row(&row);
            let mut changes = Vec::new();
            let names = std::iter::once(("INBOX", None))
                .chain(SpecialUse::DEFAULTS.iter().map(|(n, u)| (*n, Some(*u))));
            for (name, use_) in names {
                insert_mailbox(tx, account.id, name, use_).await?;
                exec(
                    tx,
                    "INSERT INTO subscriptions(account_id, name) VALUES ($1, $2)
                     ON CONFLICT DO NOTHING",
                    &[&account.id.0, &name],
                )
                .await?;
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
        let hash = password::hash(password).map_err(StoreError::Backend)?;
        self.write(async move |tx| {
            let n = exec(
                tx,
                "UPDATE accounts SET password_hash = $2 WHERE address = $1",
                &[&address, &hash],
            )
            .await?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("account {address}")));
            }
            Ok(((), vec![]))
        })
    }

    fn delete_account(&self, address: &str) -> Result<()> {
        let address = normalize_address(address)?;
        self.write(async move |tx| {
            let account = find_account(tx, &address)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("account {address}")))?;
            let mut changes = Vec::new();
            for m in mailboxes_of(tx, account.id).await? {
                drop_mailbox(tx, &m).await?;
                changes.push(Change::MailboxDeleted {
                    account: account.id,
                    name: m.name.clone(),
                });
            }
            exec(
                tx,
                "DELETE FROM subscriptions WHERE account_id = $1",
                &[&account.id.0],
            )
            .await?;
            exec(tx, "DELETE FROM accounts WHERE id = $1", &[&account.id.0]).await?;
            Ok(((), changes))
        })
    }

    fn accounts(&self) -> Result<Vec<Account>> {
        self.block(async |c| {
            let rows = rows(
                &*c,
                &format!("SELECT {ACCOUNT_COLS} FROM accounts ORDER BY address"),
                &[],
            )
            .await?;
            Ok(rows.iter().map(account_from_row).collect())
        })
    }

    fn account(&self, address: &str) -> Result<Option<Account>> {
        let Ok(address) = normalize_address(address) else {
            return Ok(None);
        };
        self.block(async move |c| {
            Ok(row_opt(
                &*c,
                &format!("SELECT {ACCOUNT_COLS} FROM accounts WHERE address = $1"),
                &[&address],
            )
            .await?
            .map(|r| account_from_row(&r)))
        })
    }

    fn verify_password(&self, address: &str, pw: &str) -> Result<Option<Account>> {
        let address = normalize_address(address).unwrap_or_default();
        let a = address.clone();
        let row: Option<(Account, String)> = self.block(async move |c| {
            Ok(row_opt(
                &*c,
                &format!("SELECT {ACCOUNT_COLS}, password_hash FROM accounts WHERE address = $1"),
                &[&a],
            )
            .await?
            .map(|r| (account_from_row(&r), r.get::<_, String>(4))))
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
        let bytes = bytes.map(|b| b.min(i64::MAX as u64) as i64);
        self.write(async move |tx| {
            exec(
                tx,
                "UPDATE accounts SET quota_bytes = $2 WHERE id = $1",
                &[&account.0, &bytes],
            )
            .await?;
            Ok(((), vec![]))
        })
    }

    fn set_smime_certificate(&self, account: AccountId, pem: Option<&[u8]>) -> Result<()> {
        let pem = pem.map(<[u8]>::to_vec);
        self.write(async move |tx| {
            let n = exec(
                tx,
                "UPDATE accounts SET smime_cert = $2 WHERE id = $1",
                &[&account.0, &pem],
            )
            .await?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("account {}", account.0)));
            }
            Ok(((), vec![]))
        })
    }

    fn smime_certificates(&self, accounts: &[AccountId]) -> Result<Vec<(AccountId, Vec<u8>)>> {
        let ids: Vec<i64> = accounts.iter().map(|a| a.0).collect();
        let found: Vec<(i64, Vec<u8>)> = self.block(async move |c| {
            let rows = rows(
                &*c,
                "SELECT id, smime_cert FROM accounts
                     WHERE id = ANY($1) AND smime_cert IS NOT NULL",
                &[&ids],
            )
            .await?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })?;
        // In the order asked, as the SQLite backend answers.
        Ok(accounts
            .iter()
            .filter_map(|a| {
                found
                    .iter()
                    .find(|(id, _)| *id == a.0)
                    .map(|(_, pem)| (*a, pem.clone()))
            })
            .collect())
    }

    fn add_alias(&self, alias: &str, targets: &[String]) -> Result<()> {
        let (alias, targets) = crate::rules::alias_entry(alias, targets)?;
        self.write(async move |tx| {
            check_local_domain(tx, crate::rules::domain_of(&alias)).await?;
            for t in &targets {
                exec(
                    tx,
                    "INSERT INTO aliases(alias, target) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    &[&alias, t],
                )
                .await?;
            }
            Ok(((), vec![]))
        })
    }

    fn remove_alias(&self, alias: &str) -> Result<()> {
        let alias = alias.trim().to_lowercase();
        self.write(async move |tx| {
            let n = exec(tx, "DELETE FROM aliases WHERE alias = $1", &[&alias]).await?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("alias {alias}")));
            }
            Ok(((), vec![]))
        })
    }

    fn aliases(&self) -> Result<Vec<Alias>> {
        let rows: Vec<(String, String)> = self.block(async |c| {
            let rows = rows(
                &*c,
                "SELECT alias, target FROM aliases ORDER BY alias, target",
                &[],
            )
            .await?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })?;
        Ok(crate::rules::group_aliases(rows))
    }

    fn alias_targets(&self, alias: &str) -> Result<Vec<String>> {
        let alias = alias.trim().to_lowercase();
        self.block(async move |c| {
            let rows = rows(
                &*c,
                "SELECT target FROM aliases WHERE alias = $1 ORDER BY target",
                &[&alias],
            )
            .await?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }
}
