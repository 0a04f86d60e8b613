//! The SQLite backend against the store conformance suite, twice: with
//! content inside the database (small messages, the default below 64 KiB)
//! and with all content in files beside it (large messages).
#![cfg(feature = "conformance")]

use postamt_store::{SqliteOptions, SqliteStore};

fn make_store(file_min_size: usize) -> std::sync::Arc<dyn postamt_store::Store> {
    // The directory must outlive the store; leak it for the test's duration.
    let dir = tempfile::tempdir().unwrap().keep();
    let mut options = SqliteOptions::new(dir.join("store.db"));
    options.file_min_size = file_min_size;
    std::sync::Arc::new(SqliteStore::open(options).unwrap())
}

mod content_in_database {
    postamt_store::store_conformance_tests!(super::make_store(usize::MAX));
}

mod content_in_files {
    postamt_store::store_conformance_tests!(super::make_store(1));
}
