//! The Lambda binary of analytics and the account's settings and wallets.

payorders::bundle_main! {
    "analytics" => analytics,
    "aggregate-analytics" => aggregate_analytics,
    "checkout-settings" => checkout_settings,
    "merchant-wallets" => merchant_wallets,
}
