//! Merchant API tests through the local host: real HTTP requests, the real authorizer,
//! API Gateway-shaped events, and each function's handler. One binary for link time.

mod analytics;
mod audit;
mod auth;
mod checkout;
mod cost;
mod devcli;
mod errors;
mod events;
mod health;
mod iam;
mod isolation;
mod keys;
mod limits;
mod openapi;
mod operator;
mod orders;
mod payments;
mod public;
mod quotes;
mod recovery;
mod refunds;
mod robustness;
mod settings;
mod settlement;
mod stage;
mod support;
mod template;
mod wallets;
mod webhooks;
