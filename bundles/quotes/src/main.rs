//! The Lambda binary of quotes, which price an order and read a chain.

payorders::bundle_main! {
    "quote-order" => quote_order,
}
