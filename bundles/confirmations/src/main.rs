//! The Lambda binary of the confirmation checks.

payorders::bundle_main! {
    "confirm-payment" => confirm_payment,
}
