//! The DNS of the DKIM and ARC suites, offline: key records go into a
//! TXT cache that mail-auth asks before its resolver; a name the suite
//! does not list is NXDOMAIN (so nothing waits on the network), and the
//! resolver itself points at a port where nothing listens.

// Each test file uses what it needs of this module.
#![allow(dead_code)]

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::hickory_resolver::proto::op::ResponseCode;
use mail_auth::{DnsError, Error};
use postamt_auth::dkim::{self, MessageAuthenticator, ResolverCache, Txt, TxtCache};
use postamt_auth::resolver::DnsSettings;
use std::borrow::Borrow;
use std::hash::Hash;
use std::sync::Arc;

/// The TXT answers of one suite; everything else is NXDOMAIN.
#[derive(Default)]
pub struct Zone(TxtCache);

/// What a DNS query fails with when the server times out or answers
/// SERVFAIL: mail-auth turns hickory's error into `DnsError::Resolver`,
/// a temperror (RFC 6376 §6.1.2).
pub fn failed_query(why: &str) -> Txt {
    Txt::Error(Error::Dns(DnsError::Resolver(why.into())))
}

pub fn nxdomain() -> Txt {
    Txt::Error(Error::Dns(DnsError::RecordNotFound(ResponseCode::NXDomain)))
}

impl Zone {
    /// `name` answers the key record `txt` (parsed as mail-auth parses
    /// what its resolver gets; a record it cannot parse is the error it
    /// would keep).
    pub fn key(&self, name: &str, txt: &str) {
        let answer = match DomainKey::parse(txt.as_bytes()) {
            Ok(key) => Txt::DomainKey(Arc::new(key)),
            Err(e) => Txt::Error(e),
        };
        self.0.put(name, answer);
    }

    pub fn answer(&self, name: &str, answer: Txt) {
        self.0.put(name, answer);
    }

    /// What `name` answers (NXDOMAIN when it is not listed).
    pub fn get_answer(&self, name: &str) -> Txt {
        ResolverCache::get(self, &*format!("{}.", name.to_ascii_lowercase())).expect("always")
    }
}

impl ResolverCache<Box<str>, Txt> for Zone {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        Some(self.0.get(name).unwrap_or_else(nxdomain))
    }
    fn remove<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.remove(name)
    }
    fn insert(&self, key: Box<str>, value: Txt, valid_until: std::time::Instant) {
        self.0.insert(key, value, valid_until);
    }
}

/// An authenticator whose resolver reaches nothing (every answer comes
/// from a [`Zone`]).
pub fn authenticator() -> MessageAuthenticator {
    dkim::authenticator(&DnsSettings {
        nameservers: vec!["127.0.0.1:9".parse().unwrap()],
        timeout: Some(std::time::Duration::from_millis(50)),
    })
    .unwrap()
}
