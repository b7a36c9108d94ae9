//! The Lambda binary of payment details, which price an order.

payorders::bundle_main! {
    "payment-details" => payment_details,
    "public-payment-details" => public_payment_details,
}
