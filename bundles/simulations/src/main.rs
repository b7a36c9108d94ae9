//! The Lambda binary of test-mode simulated payments.

payorders::bundle_main! {
    "simulate-payment" => simulate_payment,
}
