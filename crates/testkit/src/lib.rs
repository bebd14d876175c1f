//! # charter-testkit
//!
//! What charter's tests share, kept out of every shipped crate's library:
//! - [`db`]: throwaway databases on SQLite and PostgreSQL ([`TestDb`]).
//! - [`http`]: one plain HTTP/1.1 client over a fresh connection per request, reading
//!   the whole response ([`http::Response`]).
//! - [`smtp`]: an SMTP sink on loopback that can go down, refuse, or slow down.
//! - [`dkim`]: checks a DKIM (Ed25519) signature the way a receiving server would.
//! - [`receiver`]: an HTTP receiver (webhook endpoint, SMS gateway) answering from a script.
//! - [`files`]: every file under a folder, for scanning what was written.
//!
//! `charter bench` uses the throwaway databases too.

pub mod db;
pub mod dkim;
pub mod http;
pub mod receiver;
pub mod smtp;

pub use db::{TestDb, POSTGRES_ENV};

/// Every file under `dir`, recursively (an absent folder has none).
pub fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}
