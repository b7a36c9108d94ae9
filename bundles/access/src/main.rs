//! The Lambda binary of API keys and the authorizer that checks them.

payorders::bundle_main! {
    "api-keys" => api_keys,
    "authorizer" => authorizer,
}
