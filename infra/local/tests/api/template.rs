//! template.yaml, the workspace's function crates, the bundles that package them, the local
//! host and the sample events all name the same set of functions.

use crate::support::{repo_root, template_path};
use payorders_local::host::{HTTP_FUNCTIONS, OTHER_FUNCTIONS};
use std::collections::{BTreeMap, BTreeSet};

#[test]
fn template_functions_are_the_workspace_function_crates() {
    let tpl = crate::support::template();
    let in_template: BTreeSet<String> = tpl.functions.iter().map(|f| f.function.clone()).collect();
    let crates: BTreeSet<String> = std::fs::read_dir(repo_root().join("functions"))
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            e.path()
                .join("Cargo.toml")
                .exists()
                .then(|| e.file_name().to_string_lossy().into_owned())
        })
        .collect();
    assert_eq!(
        in_template, crates,
        "template.yaml functions vs functions/*"
    );
    let hosted: BTreeSet<String> = HTTP_FUNCTIONS
        .iter()
        .chain(OTHER_FUNCTIONS)
        .map(|s| s.to_string())
        .collect();
    assert_eq!(hosted, crates, "the local host runs every function");
    for f in &crates {
        assert!(
            repo_root()
                .join("events")
                .join(format!("{f}.json"))
                .exists(),
            "events/{f}.json is missing"
        );
    }
}

/// Several functions deploy one binary (a bundle: `bundles/<name>`, one fat-LTO link for
/// them all). Each function's `CodeUri` is its bundle, whose `main` serves it under its
/// `Handler` and whose manifest takes its crate; a bundle serves exactly the functions that
/// name it; and the functions of a bundle link the same features, so none gains a client,
/// a chain reader or a queue it does not use (what `iam.rs` checks per function holds for
/// the binary too).
#[test]
fn every_function_is_packaged_by_one_bundle_that_serves_it_alone_with_its_features() {
    let tpl = crate::support::template();
    let raw = std::fs::read_to_string(template_path()).unwrap();
    let doc: serde_norway::Value = serde_norway::from_str(&raw).unwrap();
    let mut by_template: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &tpl.functions {
        assert_eq!(
            doc["Resources"][&f.logical_id]["Properties"]["CodeUri"].as_str(),
            Some(format!("bundles/{}", f.bundle).as_str()),
            "{}: CodeUri is its bundle's directory",
            f.logical_id
        );
        by_template
            .entry(f.bundle.clone())
            .or_default()
            .insert(f.function.clone());
    }
    let dirs: BTreeSet<String> = std::fs::read_dir(repo_root().join("bundles"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        dirs,
        by_template.keys().cloned().collect(),
        "bundles/* vs the template's Binary names"
    );
    for (bundle, functions) in &by_template {
        let dir = repo_root().join("bundles").join(bundle);
        let main = std::fs::read_to_string(dir.join("src/main.rs")).unwrap();
        let served: BTreeSet<String> = main
            .lines()
            .filter_map(|l| {
                let (name, krate) = l.trim().trim_end_matches(',').split_once(" => ")?;
                let name = name.trim_matches('"');
                assert_eq!(krate, name.replace('-', "_"), "bundles/{bundle}: {l}");
                Some(name.to_owned())
            })
            .collect();
        assert_eq!(&served, functions, "bundles/{bundle}/src/main.rs serves");
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        let taken: BTreeSet<String> = manifest
            .lines()
            .filter_map(|l| {
                let (name, rest) = l.split_once(" = ")?;
                rest.contains("path = \"../../functions/")
                    .then(|| name.to_owned())
            })
            .collect();
        assert_eq!(&taken, functions, "bundles/{bundle}/Cargo.toml takes");
        assert!(
            manifest.contains(&format!("[[bin]]\nname = \"{bundle}\"")),
            "bundles/{bundle} builds the binary {bundle}"
        );
        let features: BTreeMap<&String, BTreeSet<String>> = functions
            .iter()
            .map(|f| {
                let dir = repo_root().join("functions").join(f);
                let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
                let features = crate::support::domain_features(&manifest);
                assert!(features.contains("aws"), "{f}: {features:?}");
                (f, features)
            })
            .collect();
        let first = features.values().next().unwrap();
        assert!(
            features.values().all(|f| f == first),
            "bundles/{bundle}: its functions link different features: {features:#?}"
        );
    }
}

#[test]
fn every_route_has_a_scope_and_an_http_function() {
    let tpl = crate::support::template();
    let mut count = 0;
    for (f, r) in tpl.routes() {
        assert!(
            HTTP_FUNCTIONS.contains(&f.function.as_str()),
            "{} is routed but not an HTTP function",
            f.function
        );
        // A public route (`Auth: { Authorizer: NONE }`) reaches no authorizer, so no scope.
        assert!(
            r.public || payorders::auth::required_scope(&r.method, &r.path).is_some(),
            "{} {} has no scope rule",
            r.method,
            r.path
        );
        count += 1;
    }
    assert!(count >= 4);
}

#[test]
fn only_the_health_customer_and_token_routes_are_public() {
    // Everything else needs a key: a new public route must be added here knowingly.
    let tpl = crate::support::template();
    let public: BTreeSet<String> = tpl
        .routes()
        .filter(|(_, r)| r.public)
        .map(|(f, r)| format!("{} {} {}", f.function, r.method, r.path))
        .collect();
    let expected: BTreeSet<String> = [
        "health GET /health",
        "health GET /health/ready",
        // The customer's side: the order id is the capability.
        "public-order GET /public/pay-orders/{id}",
        "public-order OPTIONS /public/pay-orders/{id}",
        "public-payment-details POST /public/pay-orders/{id}/payment-details",
        "public-payment-details OPTIONS /public/pay-orders/{id}/payment-details",
        "public-submit-payment POST /public/pay-orders/{id}/payments",
        "public-submit-payment OPTIONS /public/pay-orders/{id}/payments",
        "public-qr GET /public/pay-orders/{id}/qr",
        "public-events GET /public/pay-orders/{id}/events",
        "checkout-page GET /pay/{id}",
        // Trades the API key in its body for an access token, checking it as the
        // authorizer would.
        "api-keys POST /auth/token",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(public, expected);
}

/// What two functions share lives in the domain crate: no `functions/*/Cargo.toml` names
/// another function crate, by path or by name, in any dependency table.
#[test]
fn no_function_crate_depends_on_another() {
    let dirs: Vec<std::path::PathBuf> = std::fs::read_dir(repo_root().join("functions"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("Cargo.toml").exists())
        .collect();
    let names: BTreeSet<String> = dirs
        .iter()
        .map(|d| d.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names.len() >= 10, "{names:?}");
    let mut offenders = Vec::new();
    for dir in &dirs {
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        let mut table = String::new();
        for line in manifest.lines().map(str::trim) {
            if line.starts_with('[') {
                table = line.trim_matches(['[', ']']).to_owned();
                continue;
            }
            if !table.contains("dependencies") {
                continue;
            }
            let key = line
                .split(['=', '.', ' '])
                .next()
                .unwrap_or_default()
                .trim_matches('"');
            let by_name = names.contains(key) || names.contains(&key.replace('_', "-"));
            let by_path = line.contains("path") && line.contains("../");
            if by_name || by_path {
                offenders.push(format!("{}: [{table}] {line}", dir.display()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "function crates depend on one another; move what they share into shared/:\n{}",
        offenders.join("\n")
    );
}

/// The order lifecycle runs on EventBridge schedules: the deposit scan finds payments and
/// the upkeep expires orders and re-queues stalled confirmation checks, each every minute
/// (docs/api.md promises both). A slower, disabled or lost schedule would leave payments
/// unseen and orders unexpired with nothing else failing.
#[test]
fn the_deposit_scan_and_the_upkeep_run_every_minute() {
    let raw = std::fs::read_to_string(template_path()).unwrap();
    let doc: serde_norway::Value = serde_norway::from_str(&raw).unwrap();
    for (logical_id, function) in [
        ("ExpireOrdersFunction", "expire-orders"),
        ("ScanDepositsFunction", "scan-deposits"),
    ] {
        let f = &doc["Resources"][logical_id];
        assert_eq!(
            f["Properties"]["Handler"].as_str(),
            Some(function),
            "{logical_id}"
        );
        let events = f["Properties"]["Events"]
            .as_mapping()
            .unwrap_or_else(|| panic!("{logical_id} has no Events"));
        let schedules: Vec<&serde_norway::Value> = events
            .values()
            .filter(|e| e["Type"].as_str() == Some("Schedule"))
            .collect();
        assert_eq!(schedules.len(), 1, "{logical_id}: one schedule");
        let p = &schedules[0]["Properties"];
        assert_eq!(
            p["Schedule"].as_str(),
            Some("rate(1 minute)"),
            "{logical_id}"
        );
        assert_ne!(p["Enabled"].as_bool(), Some(false), "{logical_id}");
        assert!(
            p["State"].is_null() || p["State"].as_str() == Some("ENABLED"),
            "{logical_id}"
        );
    }
}

/// The stage throttles every route by default (a ceiling in front of the per-key hourly
/// limits), with the rates as deploy-time parameters.
#[test]
fn the_http_api_throttles_every_route_by_default() {
    let raw = std::fs::read_to_string(template_path()).unwrap();
    let doc: serde_norway::Value = serde_norway::from_str(&raw).unwrap();
    let settings = &doc["Resources"]["HttpApi"]["Properties"]["DefaultRouteSettings"];
    for (key, param) in [
        ("ThrottlingRateLimit", "ThrottlingRateLimit"),
        ("ThrottlingBurstLimit", "ThrottlingBurstLimit"),
    ] {
        assert!(
            !settings[key].is_null(),
            "HttpApi DefaultRouteSettings has no {key}"
        );
        let p = &doc["Parameters"][param];
        let default = p["Default"].as_u64().unwrap_or(0);
        assert!(default >= 1, "{param} needs a positive default");
    }
    let rate = doc["Parameters"]["ThrottlingRateLimit"]["Default"]
        .as_u64()
        .unwrap();
    let burst = doc["Parameters"]["ThrottlingBurstLimit"]["Default"]
        .as_u64()
        .unwrap();
    assert!(
        burst >= rate,
        "the burst covers at least one second at the steady rate"
    );
}

/// A function reachable through its own Function URL is outside the HTTP API's throttle:
/// its concurrency is capped by default (a deploy-time parameter), so anonymous callers
/// holding it open cannot take the account's concurrency from every other function.
#[test]
fn functions_behind_their_own_url_have_capped_concurrency() {
    let raw = std::fs::read_to_string(template_path()).unwrap();
    let doc: serde_norway::Value = serde_norway::from_str(&raw).unwrap();
    let mut with_url = Vec::new();
    for (id, r) in doc["Resources"].as_mapping().unwrap() {
        if r["Properties"]["FunctionUrlConfig"].is_null() {
            continue;
        }
        let id = id.as_str().unwrap();
        with_url.push(id.to_owned());
        let reserved = format!("{:?}", r["Properties"]["ReservedConcurrentExecutions"]);
        assert!(
            reserved.contains("CapEventStreams") && reserved.contains("EventStreamConcurrency"),
            "{id} has no reserved concurrency: {reserved}"
        );
    }
    assert_eq!(with_url, ["PublicEventsFunction"]);
    // Its events link to the HTTP API (the QR code, the hosted page), not to the Function
    // URL's host, which serves the stream alone.
    let base = format!(
        "{:?}",
        doc["Resources"]["PublicEventsFunction"]["Properties"]["Environment"]["Variables"]["PAYORDERS_PUBLIC_BASE_URL"]
    );
    assert!(
        base.contains("HasPublicBaseUrl") && base.contains("${HttpApi}.execute-api"),
        "{base}"
    );
    let p = &doc["Parameters"]["EventStreamConcurrency"];
    let default: u32 = p["Default"].as_str().unwrap().parse().unwrap();
    assert!(default >= 1, "capped by default");
}

/// What each resource needs created before it, as CloudFormation sees it once SAM has
/// expanded the template: the resources it names (`!Ref`, `!GetAtt`, `${…}` in `!Sub`,
/// `DependsOn`); an HTTP API needs the functions its routes invoke (their `HttpApi` events
/// name it, SAM writes their ARNs into it), while its stage (`StageVariables`) is a resource
/// of its own; a `FunctionUrlConfig` makes `<Function>Url`, which needs its function.
fn creation_order_needs() -> BTreeMap<String, BTreeSet<String>> {
    use serde_norway::Value;
    fn names(v: &Value, out: &mut BTreeSet<String>) {
        match v {
            Value::Tagged(t) => {
                let tag = t.tag.to_string();
                match (&*tag, &t.value) {
                    ("!Ref" | "!GetAtt", Value::String(s)) => {
                        out.insert(s.split('.').next().unwrap().to_owned());
                    }
                    ("!GetAtt", Value::Sequence(p)) => {
                        if let Some(Value::String(s)) = p.first() {
                            out.insert(s.clone());
                        }
                    }
                    _ => names(&t.value, out),
                }
            }
            Value::String(s) => {
                for part in s.split("${").skip(1) {
                    let name = part.split(['}', '.']).next().unwrap();
                    if !name.starts_with("AWS::") {
                        out.insert(name.to_owned());
                    }
                }
            }
            Value::Sequence(items) => items.iter().for_each(|i| names(i, out)),
            Value::Mapping(m) => m.values().for_each(|i| names(i, out)),
            _ => {}
        }
    }
    let raw = std::fs::read_to_string(template_path()).unwrap();
    let doc: Value = serde_norway::from_str(&raw).unwrap();
    let resources = doc["Resources"].as_mapping().unwrap();
    let ids: BTreeSet<String> = resources
        .keys()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    let mut needs: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (id, r) in resources {
        let id = id.as_str().unwrap().to_owned();
        let mut props = r["Properties"].clone();
        let mut own = BTreeSet::new();
        if let Some(m) = props.as_mapping_mut() {
            // The stage: a resource of its own that needs the API.
            if let Some(vars) = m.remove("StageVariables") {
                let mut stage = BTreeSet::from([id.clone()]);
                names(&vars, &mut stage);
                needs.insert(format!("{id}Stage"), stage);
            }
            // Routes: the API needs the function, not the other way round.
            if let Some(events) = m.remove("Events") {
                for (_, e) in events.as_mapping().into_iter().flatten() {
                    let mut named = BTreeSet::new();
                    names(&e["Properties"], &mut named);
                    if e["Type"].as_str() == Some("HttpApi") {
                        for api in named {
                            needs.entry(api).or_default().insert(id.clone());
                        }
                    } else {
                        own.extend(named);
                    }
                }
            }
            if m.contains_key("FunctionUrlConfig") {
                needs.insert(format!("{id}Url"), BTreeSet::from([id.clone()]));
            }
        }
        names(&props, &mut own);
        names(&r["DependsOn"], &mut own);
        own.remove(&id);
        needs.entry(id).or_default().extend(own);
    }
    // Parameters and conditions are no resources.
    for n in needs.values_mut() {
        n.retain(|x| ids.contains(x) || x.ends_with("Url") || x.ends_with("Stage"));
    }
    needs
}

/// CloudFormation refuses a template whose resources need each other in a circle, and
/// `sam validate --lint` does not see circles that SAM's expansion makes (a function's
/// route makes its API need it): the creation order is checked here.
#[test]
fn resources_need_each_other_in_no_circle() {
    let needs = creation_order_needs();
    // Depth-first, with the path so far: a resource met again on its own path closes one.
    fn visit(
        n: &str,
        needs: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if let Some(at) = path.iter().position(|p| p == n) {
            panic!("a circle: {} -> {n}", path[at..].join(" -> "));
        }
        if !done.insert(n.to_owned()) {
            return;
        }
        path.push(n.to_owned());
        for m in needs.get(n).into_iter().flatten() {
            visit(m, needs, path, done);
        }
        path.pop();
    }
    let mut done = BTreeSet::new();
    for n in needs.keys() {
        visit(n, &needs, &mut Vec::new(), &mut done);
    }
    // The edges the last circle was made of are seen at all.
    assert!(needs["HttpApi"].contains("PublicOrderFunction"));
    assert!(needs["PublicEventsFunctionUrl"].contains("PublicEventsFunction"));
    assert!(needs["PublicEventsFunction"].contains("HttpApi"));
    assert!(needs["HttpApiStage"].contains("PublicEventsFunctionUrl"));
}

/// The table's GSIs in template.yaml are the ones `payorders tables create` (and every test)
/// makes: the same keys and the same projections.
#[test]
fn template_table_indexes_are_the_stores() {
    let text = std::fs::read_to_string(template_path()).unwrap();
    let yaml: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let gsis = yaml["Resources"]["OrdersTable"]["Properties"]["GlobalSecondaryIndexes"]
        .as_sequence()
        .expect("OrdersTable has GlobalSecondaryIndexes");
    let strings = |v: &serde_norway::Value| -> Vec<String> {
        v.as_sequence()
            .map(|s| s.iter().map(|x| x.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default()
    };
    let in_template: Vec<(String, String, String, Vec<String>)> = gsis
        .iter()
        .map(|g| {
            let key = |kind: &str| {
                g["KeySchema"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .find(|k| k["KeyType"].as_str() == Some(kind))
                    .map(|k| k["AttributeName"].as_str().unwrap().to_owned())
                    .unwrap()
            };
            let projection = &g["Projection"];
            let include = match projection["ProjectionType"].as_str() {
                Some("KEYS_ONLY") => Vec::new(),
                Some("INCLUDE") => strings(&projection["NonKeyAttributes"]),
                other => panic!("{:?}: projection {other:?}", g["IndexName"]),
            };
            (
                g["IndexName"].as_str().unwrap().to_owned(),
                key("HASH"),
                key("RANGE"),
                include,
            )
        })
        .collect();
    let in_code: Vec<(String, String, String, Vec<String>)> = payorders::store::dynamo::INDEXES
        .iter()
        .map(|(name, pk, sk, include)| {
            (
                name.to_string(),
                pk.to_string(),
                sk.to_string(),
                include.iter().map(|a| a.to_string()).collect(),
            )
        })
        .collect();
    assert_eq!(
        in_template, in_code,
        "template.yaml GSIs vs store::dynamo::INDEXES"
    );
}
