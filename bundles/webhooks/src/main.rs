//! The Lambda binary of webhook endpoints, dispatch and delivery.

payorders::bundle_main! {
    "webhook-endpoints" => webhook_endpoints,
    "dispatch-events" => dispatch_events,
    "deliver-webhook" => deliver_webhook,
}
