//! Organizations (merchants) and their API keys.

use super::{ChainId, KeyId, KeyMode, OrgId, Timestamp};
use serde::{Deserialize, Serialize};

wire_enum!(
    /// What an API key may do. `*` grants everything.
    Scope {
        OrdersRead = "orders:read",
        OrdersWrite = "orders:write",
        WebhooksManage = "webhooks:manage",
        SettingsManage = "settings:manage",
        All = "*",
    }
);

/// Per-chain confirmations an organization requires instead of the registry default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainConfirmations {
    pub chain_id: ChainId,
    pub confirmations: u32,
}

/// Settings kept apart for live and test data.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ModeSettings {
    /// Protocol fee added to quotes, in basis points.
    #[serde(default)]
    pub protocol_fee_bps: u32,
    #[serde(default)]
    pub confirmations: Vec<ChainConfirmations>,
    /// Signs webhooks sent to an order's own `webhook_url` (`whsec_…`), sealed with the
    /// master key.
    #[serde(default)]
    pub order_webhook_secret_sealed: Option<String>,
}

wire_enum!(
    /// The classes of authenticated routes that API keys are rate limited by, each with its
    /// own hourly budget per key.
    RateClass {
        Create = "create",
        Read = "read",
        List = "list",
        Analytics = "analytics",
        Webhooks = "webhooks",
        Settings = "settings",
    }
);

impl RateClass {
    /// Requests per key per hour unless the organization has its own limit.
    pub fn default_per_hour(self) -> u64 {
        match self {
            RateClass::Create => 1000,
            RateClass::Read => 5000,
            RateClass::List => 2000,
            RateClass::Analytics => 500,
            RateClass::Webhooks => 100,
            RateClass::Settings => 100,
        }
    }
}

/// An organization's own hourly limit for one class of routes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimitOverride {
    pub class: RateClass,
    pub per_hour: u64,
}

/// An organization's rate limits: its own per class (set by an operator), the defaults
/// for the rest.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RateLimits {
    #[serde(default)]
    pub overrides: Vec<RateLimitOverride>,
}

impl RateLimits {
    /// Requests per key per hour for `class`.
    pub fn per_hour(&self, class: RateClass) -> u64 {
        self.overrides
            .iter()
            .find(|o| o.class == class)
            .map_or_else(|| class.default_per_hour(), |o| o.per_hour)
    }

    /// Sets (or, with `None`, removes) the organization's own limit for `class`.
    pub fn set(&mut self, class: RateClass, per_hour: Option<u64>) {
        self.overrides.retain(|o| o.class != class);
        if let Some(per_hour) = per_hour {
            self.overrides.push(RateLimitOverride { class, per_hour });
        }
        self.overrides.sort_by_key(|o| o.class);
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organization {
    pub id: OrgId,
    pub name: String,
    pub created_at: Timestamp,
    pub live: ModeSettings,
    pub test: ModeSettings,
}

impl Organization {
    pub fn new(name: impl Into<String>, now: Timestamp) -> Self {
        Self {
            id: OrgId::generate(),
            name: name.into(),
            created_at: now,
            live: ModeSettings::default(),
            test: ModeSettings::default(),
        }
    }

    pub fn settings(&self, mode: KeyMode) -> &ModeSettings {
        match mode {
            KeyMode::Live => &self.live,
            KeyMode::Test => &self.test,
        }
    }

    pub fn settings_mut(&mut self, mode: KeyMode) -> &mut ModeSettings {
        match mode {
            KeyMode::Live => &mut self.live,
            KeyMode::Test => &mut self.test,
        }
    }

    /// Confirmations this organization requires on `chain`, if it set any.
    pub fn confirmations(&self, mode: KeyMode, chain: ChainId) -> Option<u32> {
        self.settings(mode)
            .confirmations
            .iter()
            .find(|c| c.chain_id == chain)
            .map(|c| c.confirmations)
    }
}

/// How the hosted checkout page presents an organization to its customers (BTCPay's and
/// Stripe's branding settings): one set per organization, for live and test orders alike.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckoutSettings {
    /// The name customers see; the organization's name when unset.
    #[serde(default)]
    pub display_name: Option<String>,
    /// An `https` image URL shown at the top of the page.
    #[serde(default)]
    pub logo_url: Option<String>,
    /// The page's accent colour, `#rrggbb`.
    #[serde(default)]
    pub theme_color: Option<String>,
    /// Leaves out the "Powered by PayOrders" footer.
    #[serde(default)]
    pub hide_footer: bool,
}

/// An API key record. Holds only the SHA-256 of the key, never the key or its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: KeyId,
    pub organization_id: OrgId,
    pub mode: KeyMode,
    /// Lowercase hex SHA-256 of the full key text.
    pub key_hash: String,
    /// The first characters of the key, for people to tell keys apart (`sk_test_4f9a…`).
    pub prefix: String,
    /// The key's API secret (signs requests), sealed with the master key; never stored
    /// in plaintext.
    pub secret_sealed: String,
    pub scopes: Vec<Scope>,
    pub created_at: Timestamp,
    #[serde(default)]
    pub revoked_at: Option<Timestamp>,
}

impl ApiKey {
    pub fn is_active(&self) -> bool {
        self.revoked_at.is_none()
    }

    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.iter().any(|s| *s == scope || *s == Scope::All)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_and_mode_settings() {
        let now = Timestamp::now();
        let mut org = Organization::new("Acme", now);
        let base = ChainId::new(8453).unwrap();
        org.settings_mut(KeyMode::Live)
            .confirmations
            .push(ChainConfirmations {
                chain_id: base,
                confirmations: 20,
            });
        assert_eq!(org.confirmations(KeyMode::Live, base), Some(20));
        assert_eq!(
            org.confirmations(KeyMode::Test, base),
            None,
            "modes are separate"
        );

        let key = ApiKey {
            id: KeyId::generate(),
            organization_id: org.id.clone(),
            mode: KeyMode::Test,
            key_hash: "00".repeat(32),
            prefix: "sk_test_abcd".into(),
            secret_sealed: "v1.sealed".into(),
            scopes: vec![Scope::OrdersRead],
            created_at: now,
            revoked_at: None,
        };
        assert!(key.allows(Scope::OrdersRead));
        assert!(!key.allows(Scope::OrdersWrite));
        let all = ApiKey {
            scopes: vec![Scope::All],
            ..key
        };
        assert!(all.allows(Scope::WebhooksManage));
        assert_eq!(Scope::parse("orders:write"), Some(Scope::OrdersWrite));
    }
}
