//! ovsdb — an RFC 7047 (OVSDB management protocol) client core, sans-IO like `ofp`: JSON-RPC
//! 1.0 messages and a stream decoder ([`jsonrpc`]), values ([`datum`]), a replica of the
//! monitored tables ([`replica`]), `transact` operation builders ([`transact`]) and the
//! per-connection state machine ([`Session`]). No sockets, no clock: the caller feeds bytes
//! and time and sends what it is handed (`vswitchd::db` does, for `run --ovsdb`).
//! Calls nothing of the switch. No unsafe.

pub mod datum;
pub mod jsonrpc;
pub mod replica;
pub mod session;
pub mod transact;

use std::time::Duration;

pub use datum::{Atom, Datum, Uuid};
pub use jsonrpc::{Decoder, Message};
pub use replica::{Replica, Row};
pub use session::{Event, Session};

/// Why a session cannot go on.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    /// Bytes or messages that do not follow JSON-RPC / RFC 7047.
    #[error("protocol: {0}")]
    Protocol(String),
    /// A value that is not an RFC 7047 datum.
    #[error("datum: {0}")]
    Datum(String),
    /// The server refused a request the session depends on.
    #[error("server: {0}")]
    Server(String),
    /// The server did not answer an echo.
    #[error("no answer from the server for {0:?}")]
    Timeout(Duration),
}

impl Error {
    fn datum(msg: String) -> Error {
        Error::Datum(msg)
    }
}
