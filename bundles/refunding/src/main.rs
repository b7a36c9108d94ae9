//! The Lambda binary of refunds.

payorders::bundle_main! {
    "refunds" => refunds,
}
