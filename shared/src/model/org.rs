//! Organizations (merchants) and their API keys.

use super::{ChainId, KeyId, KeyMode, OrgId, Timestamp};
use serde::{Deserialize, Serialize};

wire_enum!(
    /// What an API key (or an access token) may do. `*` grants everything, and only an API
    /// key may hold it.
    Scope {
        OrdersCreate = "orders:create",
        OrdersRead = "orders:read",
        OrdersCancel = "orders:cancel",
        OrdersRefund = "orders:refund",
        AnalyticsRead = "analytics:read",
        WebhooksManage = "webhooks:manage",
        SettingsManage = "settings:manage",
        KeysManage = "keys:manage",
        All = "*",
    }
);

impl Scope {
    /// Every scope but `*`: what `*` stands for where it may not be written (a token).
    pub fn concrete() -> impl Iterator<Item = Scope> {
        Self::ALL.iter().copied().filter(|s| *s != Scope::All)
    }

    /// A stored scope name, including the names earlier versions wrote: `orders:write`
    /// granted creating and cancelling orders.
    pub fn parse_stored(name: &str) -> Option<Vec<Scope>> {
        match name {
            "orders:write" => Some(vec![Scope::OrdersCreate, Scope::OrdersCancel]),
            other => Scope::parse(other).map(|s| vec![s]),
        }
    }
}

/// Whether `held` grants `scope` (directly or through `*`).
pub fn scopes_allow(held: &[Scope], scope: Scope) -> bool {
    held.iter().any(|s| *s == scope || *s == Scope::All)
}

/// Whether a holder of `held` may hand out `wanted` (to a new key or a token): each scope it
/// holds itself, and `*` only when it holds `*`. The first scope it may not hand out otherwise.
pub fn may_grant(held: &[Scope], wanted: &[Scope]) -> Result<(), Scope> {
    match wanted.iter().find(|w| match **w {
        Scope::All => !held.contains(&Scope::All),
        other => !scopes_allow(held, other),
    }) {
        Some(s) => Err(*s),
        None => Ok(()),
    }
}

/// Reads stored scopes, mapping names earlier versions wrote ([`Scope::parse_stored`]).
fn read_stored_scopes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Scope>, D::Error> {
    let names = Vec::<String>::deserialize(d)?;
    let mut out: Vec<Scope> = Vec::new();
    for name in names {
        let scopes = Scope::parse_stored(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown scope {name}")))?;
        for s in scopes {
            if !out.contains(&s) {
                out.push(s);
            }
        }
    }
    Ok(out)
}

/// Per-chain confirmations an organization requires instead of the registry default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainConfirmations {
    pub chain_id: ChainId,
    pub confirmations: u32,
}

/// Settings kept apart for live and test data. The order defaults (`GET/POST /settings`)
/// are unset until the merchant sets them; see [`super::settings`] for their defaults,
/// bounds and changes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ModeSettings {
    /// Protocol fee added to quotes, in basis points (set by an operator).
    #[serde(default)]
    pub protocol_fee_bps: u32,
    #[serde(default)]
    pub confirmations: Vec<ChainConfirmations>,
    /// Seconds new orders stay payable when they do not say.
    #[serde(default)]
    pub default_expires_in: Option<i64>,
    /// Seconds after expiry that late payments are still watched for.
    #[serde(default)]
    pub late_payment_window: Option<i64>,
    #[serde(default)]
    pub tolerance: super::ToleranceSettings,
    /// The merchant's own fee on new orders, in basis points, beside the protocol fee.
    #[serde(default)]
    pub custom_fee_bps: Option<u32>,
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
    /// Bumped by every change of the record; each change is conditional on the version it
    /// read (records written before versions read as 0).
    #[serde(default)]
    pub version: u64,
}

impl Organization {
    pub fn new(name: impl Into<String>, now: Timestamp) -> Self {
        Self {
            id: OrgId::generate(),
            name: name.into(),
            created_at: now,
            live: ModeSettings::default(),
            test: ModeSettings::default(),
            version: 0,
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
    /// What the merchant calls it ("checkout server"); empty for keys made before names.
    #[serde(default)]
    pub name: String,
    /// Lowercase hex SHA-256 of the full key text.
    pub key_hash: String,
    /// The first characters of the key, for people to tell keys apart (`sk_test_4f9a…`).
    pub prefix: String,
    /// The last four characters of the key, for display beside the prefix; empty for keys
    /// made before it was kept.
    #[serde(default)]
    pub last4: String,
    /// The key's API secret (signs requests), sealed with the master key; never stored
    /// in plaintext.
    pub secret_sealed: String,
    #[serde(deserialize_with = "read_stored_scopes")]
    pub scopes: Vec<Scope>,
    pub created_at: Timestamp,
    #[serde(default)]
    pub revoked_at: Option<Timestamp>,
    /// When the key stops working (a rolled key's grace period ends); `None`: never.
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
}

/// Where an API key stands at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    Active,
    Revoked,
    Expired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::Revoked => "revoked",
            KeyState::Expired => "expired",
        }
    }
}

impl ApiKey {
    /// Revoked wins over expired: it is the merchant's explicit act.
    pub fn state(&self, now: Timestamp) -> KeyState {
        if self.revoked_at.is_some() {
            KeyState::Revoked
        } else if self.expires_at.is_some_and(|at| at <= now) {
            KeyState::Expired
        } else {
            KeyState::Active
        }
    }

    pub fn is_active(&self, now: Timestamp) -> bool {
        self.state(now) == KeyState::Active
    }

    /// When the key stops working once rolled to stop at `at`: `at`, or its own earlier
    /// expiry (a roll never extends a key).
    pub fn expiry_when_rolled(&self, at: Timestamp) -> Timestamp {
        self.expires_at.map_or(at, |e| e.min(at))
    }

    pub fn allows(&self, scope: Scope) -> bool {
        scopes_allow(&self.scopes, scope)
    }

    /// The key as people may see it: `sk_test_4f9a…Wx2z` (no more of it is ever kept).
    pub fn masked(&self) -> String {
        format!("{}…{}", self.prefix, self.last4)
    }

    /// The key as the API shows it after creation: never the key text or its secret.
    pub fn api_view(&self, now: Timestamp) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "object": "api_key",
            "name": self.name,
            "mode": self.mode,
            "livemode": self.mode.is_live(),
            "scopes": self.scopes,
            "masked_key": self.masked(),
            "last4": self.last4,
            "status": self.state(now).as_str(),
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
        })
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
            name: "server".into(),
            key_hash: "00".repeat(32),
            prefix: "sk_test_abcd".into(),
            last4: "wxyz".into(),
            secret_sealed: "v1.sealed".into(),
            scopes: vec![Scope::OrdersRead],
            created_at: now,
            revoked_at: None,
            expires_at: None,
        };
        assert!(key.allows(Scope::OrdersRead));
        assert!(!key.allows(Scope::OrdersCreate));
        assert_eq!(key.masked(), "sk_test_abcd…wxyz");
        assert_eq!(key.state(now), KeyState::Active);
        let all = ApiKey {
            scopes: vec![Scope::All],
            ..key.clone()
        };
        assert!(all.allows(Scope::WebhooksManage));
        assert_eq!(Scope::parse("orders:write"), None, "no longer a scope");

        let rolled = ApiKey {
            expires_at: Some(now.plus_seconds(60)),
            ..key.clone()
        };
        assert_eq!(rolled.state(now), KeyState::Active);
        assert_eq!(rolled.state(now.plus_seconds(60)), KeyState::Expired);
        let revoked = ApiKey {
            revoked_at: Some(now),
            ..rolled
        };
        assert_eq!(revoked.state(now.plus_seconds(61)), KeyState::Revoked);
        let view = key.api_view(now);
        assert_eq!(view["object"], "api_key");
        assert!(view.get("key").is_none() && view.get("secret").is_none());
    }

    #[test]
    fn stored_keys_of_earlier_versions_still_read() {
        // A key record written before names, expiry and the finer order scopes.
        let old = serde_json::json!({
            "id": KeyId::generate(), "organization_id": OrgId::generate(), "mode": "live",
            "key_hash": "00".repeat(32), "prefix": "sk_live_abcd", "secret_sealed": "v1.x",
            "scopes": ["orders:read", "orders:write"], "created_at": "2026-01-01T00:00:00Z",
        });
        let key: ApiKey = serde_json::from_value(old).unwrap();
        assert_eq!(
            key.scopes,
            vec![Scope::OrdersRead, Scope::OrdersCreate, Scope::OrdersCancel]
        );
        assert_eq!((key.name.as_str(), key.expires_at), ("", None));
        assert!(!key.allows(Scope::OrdersRefund));
        let bad = serde_json::json!(["orders:everything"]);
        assert!(read_stored_scopes(bad).is_err());
    }

    #[test]
    fn granting_scopes() {
        use Scope::*;
        assert_eq!(may_grant(&[OrdersRead, KeysManage], &[OrdersRead]), Ok(()));
        assert_eq!(
            may_grant(&[OrdersRead, KeysManage], &[WebhooksManage]),
            Err(WebhooksManage)
        );
        assert_eq!(may_grant(&[OrdersRead, KeysManage], &[All]), Err(All));
        assert_eq!(may_grant(&[All], &[All, WebhooksManage]), Ok(()));
        assert_eq!(Scope::concrete().count(), Scope::ALL.len() - 1);
    }
}
