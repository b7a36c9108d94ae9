//! PayOrders domain crate: the order model and its one state machine, money, the chain and
//! token registry, the store port with its DynamoDB and embedded SQLite adapters, and config.
//!
//! Nothing in here depends on Lambda types; functions adapt events to these types.

// With neither store adapter (a build no binary uses), their shared helpers go unused.
#![cfg_attr(not(any(feature = "aws", feature = "embedded")), allow(dead_code))]

pub mod analytics;
pub mod auth;
#[cfg(feature = "chains")]
pub mod chains;
pub mod checkout;
pub mod config;
pub mod http;
pub mod model;
pub mod net;
#[cfg(feature = "openapi")]
pub mod openapi;
#[cfg(feature = "chains")]
pub mod payments;
pub mod pricing;
pub mod queue;
pub mod registry;
pub mod routing;
pub mod runtime;
pub mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod transactions;
pub mod wallets;
pub mod webhooks;

pub use model::*;
