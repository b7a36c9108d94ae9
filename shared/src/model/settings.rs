//! An organization's order defaults, per mode (`GET/POST /settings`): how long new orders
//! stay payable, how long an expired order is still watched for late payments, the
//! confirmations each chain needs, the payment tolerance and the merchant's own fee. Each
//! is unset until the merchant sets it, and an unset one is the platform default. The
//! bounds live here, once: create-order checks an order's own values against the same.

use super::{ChainConfirmations, ChainId, KeyMode, ModeSettings, PaymentTolerance};
use crate::registry::registry;
use serde::{Deserialize, Serialize};

/// Confirmations a payment needs: the order's, else the organization's for the chain,
/// else the registry's default for the chain (at least one).
pub fn required_confirmations(order: Option<u32>, org: Option<u32>, chain: ChainId) -> u32 {
    order
        .or(org)
        .or_else(|| registry().chain(chain).ok().map(|c| c.confirmations))
        .unwrap_or(1)
        .max(1)
}

/// An order is payable for at least this long.
pub const MIN_EXPIRY_SECS: i64 = 60;
/// And at most this long (7 days).
pub const MAX_EXPIRY_SECS: i64 = 7 * 24 * 3600;
/// How long an order is payable unless the order or its organization says otherwise.
pub const DEFAULT_EXPIRY_SECS: i64 = 30 * 60;
/// How long after `expires_at` transfers to an order are still verified and recorded as
/// late payments (BTCPay's monitoring window), unless the organization set its own; after
/// that the order leaves the deposit scan's watch list.
pub const LATE_PAYMENT_WINDOW_SECS: i64 = 24 * 3600;
/// The longest monitoring window an organization may set (7 days); 0 turns it off.
pub const MAX_LATE_PAYMENT_WINDOW_SECS: i64 = 7 * 24 * 3600;
/// Confirmations a chain may be set to need: 1 to this.
pub const MAX_CONFIRMATIONS: u32 = 1000;
/// The largest underpayment tolerance, in basis points (50 %).
pub const MAX_UNDERPAYMENT_BPS: u32 = 5000;
/// The largest overpayment threshold, in basis points (100 %).
pub const MAX_OVERPAYMENT_THRESHOLD_BPS: u32 = 10_000;
/// The largest fee a merchant may add, in basis points (10 %).
pub const MAX_CUSTOM_FEE_BPS: u32 = 1000;

wire_enum!(
    /// What happens to an order paid more than its overpayment threshold. `accept`: it
    /// completes like any paid order, marked `paid_over`, with an `order.overpaid` event so
    /// the merchant can refund the excess. Holding an overpaid order for review is not
    /// offered.
    OverpaymentAction {
        Accept = "accept",
    }
);

// `wire_enum!` owns the variants, so `#[default]` cannot be put on one.
#[allow(clippy::derivable_impls)]
impl Default for OverpaymentAction {
    fn default() -> Self {
        Self::Accept
    }
}

/// The payment tolerance defaults an organization set (each unset: the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ToleranceSettings {
    #[serde(default)]
    pub underpayment_bps: Option<u32>,
    #[serde(default)]
    pub overpayment_threshold_bps: Option<u32>,
    #[serde(default)]
    pub overpayment_action: Option<OverpaymentAction>,
}

/// Per chain id (as given): the confirmations to require, or `None` to reset the chain.
pub type ConfirmationsPatch = Vec<(String, Option<u32>)>;

/// A change to one mode's settings (`POST /settings`): `None` leaves a field as it is,
/// `Some(None)` resets it to the default, `Some(Some(v))` sets it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettingsPatch {
    pub default_expires_in: Option<Option<i64>>,
    pub late_payment_window: Option<Option<i64>>,
    /// Per chain: `None` resets that chain to its default. `Some(None)` at the top resets
    /// every chain.
    pub confirmations: Option<Option<ConfirmationsPatch>>,
    pub payment_tolerance: Option<Option<TolerancePatch>>,
    pub custom_fee_bps: Option<Option<u32>>,
}

/// A change to the tolerance defaults, each field as in [`SettingsPatch`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TolerancePatch {
    pub underpayment_bps: Option<Option<u32>>,
    pub overpayment_threshold_bps: Option<Option<u32>>,
    pub overpayment_action: Option<Option<String>>,
}

/// A setting that may not take the value given: which field (`param`) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SettingsError {
    pub param: &'static str,
    pub code: &'static str,
    pub message: String,
}

fn refuse(param: &'static str, code: &'static str, message: impl Into<String>) -> SettingsError {
    SettingsError {
        param,
        code,
        message: message.into(),
    }
}

/// An expiry in seconds within the bounds every order keeps.
pub fn check_expiry(secs: i64) -> Result<i64, String> {
    if (MIN_EXPIRY_SECS..=MAX_EXPIRY_SECS).contains(&secs) {
        Ok(secs)
    } else {
        Err(format!(
            "must be an integer from {MIN_EXPIRY_SECS} to {MAX_EXPIRY_SECS} seconds"
        ))
    }
}

/// Confirmations within 1 to [`MAX_CONFIRMATIONS`].
pub fn bounded_confirmations(n: u32) -> Result<u32, String> {
    if (1..=MAX_CONFIRMATIONS).contains(&n) {
        Ok(n)
    } else {
        Err(format!("must be an integer from 1 to {MAX_CONFIRMATIONS}"))
    }
}

impl ModeSettings {
    /// How long new orders stay payable when they do not say.
    pub fn default_expires_in(&self) -> i64 {
        self.default_expires_in.unwrap_or(DEFAULT_EXPIRY_SECS)
    }

    /// How long expired orders are still watched for late payments.
    pub fn late_payment_window(&self) -> i64 {
        self.late_payment_window.unwrap_or(LATE_PAYMENT_WINDOW_SECS)
    }

    /// The tolerance new orders take when they do not give their own.
    pub fn payment_tolerance(&self) -> PaymentTolerance {
        let t = &self.tolerance;
        PaymentTolerance {
            underpayment_bps: t.underpayment_bps.unwrap_or(0),
            overpayment_threshold_bps: t.overpayment_threshold_bps.unwrap_or(0),
            overpayment_action: t.overpayment_action.unwrap_or_default(),
        }
    }

    /// The merchant's own fee on new orders, if it set one.
    pub fn custom_fee_bps(&self) -> u32 {
        self.custom_fee_bps.unwrap_or(0)
    }

    /// Confirmations required on `chain`: the organization's, else the registry's.
    pub fn confirmations_on(&self, chain: ChainId) -> Option<u32> {
        self.confirmations
            .iter()
            .find(|c| c.chain_id == chain)
            .map(|c| c.confirmations)
            .or_else(|| registry().chain(chain).ok().map(|c| c.confirmations))
    }

    /// Applies `patch` for keys of `mode`, checking every value; nothing changes on error.
    pub fn apply(&mut self, mode: KeyMode, patch: &SettingsPatch) -> Result<(), SettingsError> {
        let mut next = self.clone();
        if let Some(v) = patch.default_expires_in {
            next.default_expires_in = v.map(check_expiry).transpose().map_err(|e| {
                refuse(
                    "default_expires_in",
                    "INVALID_EXPIRY",
                    format!("default_expires_in {e}"),
                )
            })?;
        }
        if let Some(v) = patch.late_payment_window {
            next.late_payment_window = v
                .map(|secs| {
                    if (0..=MAX_LATE_PAYMENT_WINDOW_SECS).contains(&secs) {
                        Ok(secs)
                    } else {
                        Err(refuse(
                            "late_payment_window",
                            "INVALID_PARAMETER",
                            format!(
                                "late_payment_window must be an integer from 0 to {MAX_LATE_PAYMENT_WINDOW_SECS} seconds"
                            ),
                        ))
                    }
                })
                .transpose()?;
        }
        match &patch.confirmations {
            None => {}
            Some(None) => next.confirmations.clear(),
            Some(Some(chains)) => {
                for (chain, n) in chains {
                    let bad = |why: String| {
                        refuse(
                            "confirmations",
                            "INVALID_CONFIRMATIONS",
                            format!("confirmations[{chain}] {why}"),
                        )
                    };
                    let info = chain
                        .parse::<u64>()
                        .ok()
                        .and_then(|id| ChainId::new(id).ok())
                        .and_then(|id| registry().chain(id).ok())
                        .ok_or_else(|| bad("is not a chain id this API supports".into()))?;
                    info.check_mode(mode).map_err(|_| {
                        bad(format!(
                            "names {}, which is not a {} network",
                            info.name,
                            if mode.is_live() { "live" } else { "test" }
                        ))
                    })?;
                    next.confirmations.retain(|c| c.chain_id != info.id);
                    if let Some(n) = n {
                        let n = bounded_confirmations(*n).map_err(bad)?;
                        next.confirmations.push(ChainConfirmations {
                            chain_id: info.id,
                            confirmations: n,
                        });
                    }
                }
                next.confirmations.sort_by_key(|c| c.chain_id);
            }
        }
        match &patch.payment_tolerance {
            None => {}
            Some(None) => next.tolerance = ToleranceSettings::default(),
            Some(Some(t)) => {
                let bps = |v: Option<u32>, max: u32, name: &str| {
                    v.map(|b| {
                        if b <= max {
                            Ok(b)
                        } else {
                            Err(refuse(
                                "payment_tolerance",
                                "INVALID_PAYMENT_TOLERANCE",
                                format!("payment_tolerance.{name} must be from 0 to {max}"),
                            ))
                        }
                    })
                    .transpose()
                };
                if let Some(v) = t.underpayment_bps {
                    next.tolerance.underpayment_bps =
                        bps(v, MAX_UNDERPAYMENT_BPS, "underpayment_bps")?;
                }
                if let Some(v) = t.overpayment_threshold_bps {
                    next.tolerance.overpayment_threshold_bps = bps(
                        v,
                        MAX_OVERPAYMENT_THRESHOLD_BPS,
                        "overpayment_threshold_bps",
                    )?;
                }
                if let Some(v) = &t.overpayment_action {
                    next.tolerance.overpayment_action = v
                        .as_deref()
                        .map(|a| {
                            OverpaymentAction::parse(a).ok_or_else(|| {
                                refuse(
                                    "payment_tolerance",
                                    "INVALID_PAYMENT_TOLERANCE",
                                    format!(
                                        "payment_tolerance.overpayment_action must be one of: {}",
                                        OverpaymentAction::ALL
                                            .iter()
                                            .map(|a| a.as_str())
                                            .collect::<Vec<_>>()
                                            .join(", ")
                                    ),
                                )
                            })
                        })
                        .transpose()?;
                }
            }
        }
        if let Some(v) = patch.custom_fee_bps {
            next.custom_fee_bps = v
                .map(|b| {
                    if b <= MAX_CUSTOM_FEE_BPS {
                        Ok(b)
                    } else {
                        Err(refuse(
                            "custom_fee_bps",
                            "INVALID_PARAMETER",
                            format!("custom_fee_bps must be from 0 to {MAX_CUSTOM_FEE_BPS}"),
                        ))
                    }
                })
                .transpose()?;
        }
        *self = next;
        Ok(())
    }

    /// The settings as the API shows them for keys of `mode`: every value in effect (a
    /// default where the organization set none), and per chain of the mode its
    /// confirmations.
    pub fn api_view(&self, mode: KeyMode) -> serde_json::Value {
        let confirmations: serde_json::Map<String, serde_json::Value> = registry()
            .chains()
            .iter()
            .filter(|c| c.check_mode(mode).is_ok())
            .map(|c| {
                (
                    c.id.to_string(),
                    serde_json::json!(self.confirmations_on(c.id).unwrap_or(c.confirmations)),
                )
            })
            .collect();
        serde_json::json!({
            "object": "settings",
            "livemode": mode.is_live(),
            "default_expires_in": self.default_expires_in(),
            "late_payment_window": self.late_payment_window(),
            "confirmations": confirmations,
            "payment_tolerance": self.payment_tolerance(),
            "custom_fee_bps": self.custom_fee_bps(),
            "protocol_fee_bps": self.protocol_fee_bps,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch() -> SettingsPatch {
        SettingsPatch::default()
    }

    #[test]
    fn unset_settings_are_the_platform_defaults() {
        let s = ModeSettings::default();
        assert_eq!(s.default_expires_in(), DEFAULT_EXPIRY_SECS);
        assert_eq!(s.late_payment_window(), 24 * 3600);
        assert_eq!(s.payment_tolerance(), PaymentTolerance::default());
        assert_eq!(
            s.payment_tolerance().overpayment_action,
            OverpaymentAction::Accept
        );
        assert_eq!(s.custom_fee_bps(), 0);
        let base_sepolia = ChainId::new(84532).unwrap();
        assert_eq!(
            s.confirmations_on(base_sepolia),
            Some(registry().chain(base_sepolia).unwrap().confirmations)
        );
        let v = s.api_view(KeyMode::Test);
        assert_eq!(v["object"], "settings");
        assert_eq!(v["livemode"], false);
        assert!(v["confirmations"].get("84532").is_some());
        assert!(
            v["confirmations"].get("8453").is_none(),
            "a mainnet is not a test-mode chain"
        );
    }

    #[test]
    fn a_patch_changes_only_what_it_names_and_null_resets() {
        let mut s = ModeSettings::default();
        s.apply(
            KeyMode::Test,
            &SettingsPatch {
                default_expires_in: Some(Some(3600)),
                confirmations: Some(Some(vec![("84532".into(), Some(3))])),
                payment_tolerance: Some(Some(TolerancePatch {
                    underpayment_bps: Some(Some(100)),
                    ..Default::default()
                })),
                ..patch()
            },
        )
        .unwrap();
        s.apply(
            KeyMode::Test,
            &SettingsPatch {
                late_payment_window: Some(Some(0)),
                custom_fee_bps: Some(Some(50)),
                payment_tolerance: Some(Some(TolerancePatch {
                    overpayment_threshold_bps: Some(Some(25)),
                    ..Default::default()
                })),
                ..patch()
            },
        )
        .unwrap();
        let base_sepolia = ChainId::new(84532).unwrap();
        assert_eq!(s.default_expires_in(), 3600);
        assert_eq!(s.late_payment_window(), 0);
        assert_eq!(s.confirmations_on(base_sepolia), Some(3));
        assert_eq!(s.payment_tolerance().underpayment_bps, 100);
        assert_eq!(s.payment_tolerance().overpayment_threshold_bps, 25);
        assert_eq!(s.custom_fee_bps(), 50);

        s.apply(
            KeyMode::Test,
            &SettingsPatch {
                default_expires_in: Some(None),
                confirmations: Some(Some(vec![("84532".into(), None)])),
                payment_tolerance: Some(Some(TolerancePatch {
                    underpayment_bps: Some(None),
                    ..Default::default()
                })),
                ..patch()
            },
        )
        .unwrap();
        assert_eq!(s.default_expires_in(), DEFAULT_EXPIRY_SECS);
        assert_eq!(
            s.confirmations_on(base_sepolia),
            Some(registry().chain(base_sepolia).unwrap().confirmations)
        );
        assert_eq!(s.payment_tolerance().underpayment_bps, 0);
        assert_eq!(s.payment_tolerance().overpayment_threshold_bps, 25, "kept");
        s.apply(
            KeyMode::Test,
            &SettingsPatch {
                payment_tolerance: Some(None),
                ..patch()
            },
        )
        .unwrap();
        assert_eq!(s.tolerance, ToleranceSettings::default());
    }

    #[test]
    fn values_out_of_bounds_name_their_field_and_change_nothing() {
        let cases: Vec<(SettingsPatch, &str, &str)> = vec![
            (
                SettingsPatch {
                    default_expires_in: Some(Some(59)),
                    ..patch()
                },
                "default_expires_in",
                "INVALID_EXPIRY",
            ),
            (
                SettingsPatch {
                    default_expires_in: Some(Some(MAX_EXPIRY_SECS + 1)),
                    ..patch()
                },
                "default_expires_in",
                "INVALID_EXPIRY",
            ),
            (
                SettingsPatch {
                    late_payment_window: Some(Some(-1)),
                    ..patch()
                },
                "late_payment_window",
                "INVALID_PARAMETER",
            ),
            (
                SettingsPatch {
                    late_payment_window: Some(Some(MAX_LATE_PAYMENT_WINDOW_SECS + 1)),
                    ..patch()
                },
                "late_payment_window",
                "INVALID_PARAMETER",
            ),
            (
                SettingsPatch {
                    confirmations: Some(Some(vec![("84532".into(), Some(0))])),
                    ..patch()
                },
                "confirmations",
                "INVALID_CONFIRMATIONS",
            ),
            (
                SettingsPatch {
                    confirmations: Some(Some(vec![("84532".into(), Some(1001))])),
                    ..patch()
                },
                "confirmations",
                "INVALID_CONFIRMATIONS",
            ),
            (
                // A mainnet is not a test-mode chain.
                SettingsPatch {
                    confirmations: Some(Some(vec![("8453".into(), Some(3))])),
                    ..patch()
                },
                "confirmations",
                "INVALID_CONFIRMATIONS",
            ),
            (
                SettingsPatch {
                    confirmations: Some(Some(vec![("999999".into(), Some(3))])),
                    ..patch()
                },
                "confirmations",
                "INVALID_CONFIRMATIONS",
            ),
            (
                SettingsPatch {
                    payment_tolerance: Some(Some(TolerancePatch {
                        underpayment_bps: Some(Some(5001)),
                        ..Default::default()
                    })),
                    ..patch()
                },
                "payment_tolerance",
                "INVALID_PAYMENT_TOLERANCE",
            ),
            (
                SettingsPatch {
                    payment_tolerance: Some(Some(TolerancePatch {
                        overpayment_action: Some(Some("hold".into())),
                        ..Default::default()
                    })),
                    ..patch()
                },
                "payment_tolerance",
                "INVALID_PAYMENT_TOLERANCE",
            ),
            (
                SettingsPatch {
                    custom_fee_bps: Some(Some(1001)),
                    ..patch()
                },
                "custom_fee_bps",
                "INVALID_PARAMETER",
            ),
        ];
        for (p, param, code) in cases {
            let mut s = ModeSettings::default();
            // A valid field beside the invalid one is not applied either.
            let p = SettingsPatch {
                custom_fee_bps: p.custom_fee_bps.or(Some(Some(10))),
                ..p
            };
            let e = s.apply(KeyMode::Test, &p).unwrap_err();
            assert_eq!((e.param, e.code), (param, code), "{e}");
            assert_eq!(s, ModeSettings::default());
        }
        // Live keys set mainnets.
        let mut s = ModeSettings::default();
        s.apply(
            KeyMode::Live,
            &SettingsPatch {
                confirmations: Some(Some(vec![("8453".into(), Some(20))])),
                ..patch()
            },
        )
        .unwrap();
        assert_eq!(s.confirmations_on(ChainId::new(8453).unwrap()), Some(20));
    }
}
