//! Integration tests of the store and the keyring, run against SQLite and, when
//! `BYOLLM_TEST_POSTGRES_URL` is set (CI starts a server), PostgreSQL.

mod keyring;
mod stores;
mod tenancy;
