//! The Lambda binary of the customer's side: the checkout page and the public order routes
//! that read.

payorders::bundle_main! {
    "checkout-page" => checkout_page,
    "public-order" => public_order,
    "public-events" => public_events,
    "public-qr" => public_qr,
}
