//! The SQLite backend against the store conformance suite.
#![cfg(feature = "conformance")]

use postamt_store::{SqliteOptions, SqliteStore};

fn make_store() -> std::sync::Arc<dyn postamt_store::Store> {
    // The directory must outlive the store; leak it for the test's duration.
    let dir = tempfile::tempdir().unwrap().keep();
    std::sync::Arc::new(SqliteStore::open(SqliteOptions::new(dir.join("store.db"))).unwrap())
}

postamt_store::store_conformance_tests!(make_store());
