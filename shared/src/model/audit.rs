//! The audit log: who changed what, when, from where, and how it went. One entry per
//! mutating request of the API (and per operator command that changes keys or limits),
//! written once and never changed; kept for a year.

use super::{AuditId, KeyId, OrgId, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// How long an entry is kept.
pub const AUDIT_RETENTION_SECS: i64 = 365 * 24 * 3600;

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AuditActor {
    /// A request made with an API key (or an access token of that key).
    ApiKey { key_id: KeyId },
    /// The operator CLI (`payorders …`).
    Operator,
}

/// How a change went: the answer's status, and its error code when it failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditOutcome {
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: AuditId,
    pub organization_id: OrgId,
    pub livemode: bool,
    pub created_at: Timestamp,
    pub actor: AuditActor,
    /// The route (`POST /pay-orders/{id}/cancel`) or the operator command (`keys create`).
    pub action: String,
    /// The object acted on (`po_…`, `we_…`, `key_…`), when there is one.
    #[serde(default)]
    pub object_id: Option<String>,
    /// The `X-Request-Id` of the answer.
    #[serde(default)]
    pub request_id: Option<String>,
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default)]
    pub user_agent: Option<String>,
    pub outcome: AuditOutcome,
}

impl AuditEntry {
    /// When the entry is dropped.
    pub fn expires_at(&self) -> Timestamp {
        self.created_at.plus_seconds(AUDIT_RETENTION_SECS)
    }

    /// The entry as the API shows it; `key_masked` names the key for people (`sk_test_…wxyz`)
    /// when it is still known.
    pub fn api_view(&self, key_masked: Option<&str>) -> Value {
        let actor = match &self.actor {
            AuditActor::ApiKey { key_id } => {
                json!({"type": "api_key", "key_id": key_id, "key_masked": key_masked})
            }
            AuditActor::Operator => json!({"type": "operator"}),
        };
        json!({
            "id": self.id,
            "object": "audit_entry",
            "organization_id": self.organization_id,
            "livemode": self.livemode,
            "created_at": self.created_at,
            "actor": actor,
            "action": self.action,
            "object_id": self.object_id,
            "request_id": self.request_id,
            "ip": self.ip,
            "user_agent": self.user_agent,
            "outcome": self.outcome,
        })
    }
}
