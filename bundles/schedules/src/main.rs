//! The Lambda binary of the minute schedules: the deposit scan and the upkeep.

payorders::bundle_main! {
    "scan-deposits" => scan_deposits,
    "expire-orders" => expire_orders,
}
