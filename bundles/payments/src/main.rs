//! The Lambda binary of payments submitted by the merchant and by the customer.

payorders::bundle_main! {
    "submit-payment" => submit_payment,
    "public-submit-payment" => public_submit_payment,
}
