//! Distribution (spec §5a): one static layout of a verified ledger, `rn/v1/…`, that any web
//! server or object store can host and that agents serve; whatever a reader fetches from it
//! passes the gate like any other input, so nothing about a source is trusted but its bytes.
//!
//! Sits above the ledger and below the node and the command line.

pub mod fetch;
pub mod gossip;
pub mod layout;
pub mod serve;
