//! Domain types: identifiers, time, money, addresses, statuses and the transition table,
//! organizations, API keys, pay orders and events.

/// An enum with fixed wire names, `ALL`, `as_str`, exact `parse` and `Display`.
macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $(#[serde(rename = $wire)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(&self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }

            /// Parses the wire name exactly (case-sensitive, as the API documents it).
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($wire => Some($name::$variant),)+ _ => None }
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                $crate::openapi::string_enum(&[$($wire),+])
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

mod address;
mod audit;
mod currency;
mod event;
mod ids;
mod money;
mod order;
mod org;
mod refund;
mod settings;
mod status;
mod time;
pub(crate) mod view;
mod wallet;
mod webhook;

pub use address::*;
pub use audit::*;
pub use currency::*;
pub use event::*;
pub use ids::*;
pub use money::*;
pub use order::*;
pub use org::*;
pub use refund::*;
pub use settings::*;
pub use status::*;
pub use time::*;
pub use wallet::*;
pub use webhook::*;
