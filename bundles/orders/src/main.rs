//! The Lambda binary of the merchant API's order and event routes, and the health check.

payorders::bundle_main! {
    "create-order" => create_order,
    "get-order" => get_order,
    "list-orders" => list_orders,
    "cancel-order" => cancel_order,
    "transactions" => transactions,
    "audit-log" => audit_log,
    "list-events" => list_events,
    "health" => health,
}
