//! The PayOrders local host and operator tooling: serves every function of `template.yaml`
//! on one port with the same event shapes API Gateway uses.

pub mod devcli;
pub mod epochs;
pub mod host;
pub mod listen;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod queue;
pub mod server;
pub mod setup;
pub mod template;
pub mod workers;
