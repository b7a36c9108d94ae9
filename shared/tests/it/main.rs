//! The domain crate's integration tests, in one binary to keep link time down.
//!
//! `conformance::{dynamo,embedded}::…` run the same store suite against both adapters
//! (DynamoDB against moto server, started by `make test`); `config::…` loads secrets from
//! Secrets Manager on moto.

mod chains;
mod config;
mod conformance;
mod packed;
mod pricing;
mod routing;
mod support;
mod tls;
