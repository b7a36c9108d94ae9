//! The Lambda binary of refunds and test-mode simulated payments.

payorders::bundle_main! {
    "refunds" => refunds,
    "simulate-payment" => simulate_payment,
}
