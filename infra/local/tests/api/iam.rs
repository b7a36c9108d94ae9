//! IAM: each function's policy in template.yaml allows what its code does in AWS.
//!
//! The code side is read from source: every function crate's fns and, through the fns
//! they call by name, the domain crate's (a rough call graph, generous where names
//! collide). What a reachable fn does: a store method (→ the DynamoDB actions of
//! [`STORE_ACTIONS`]), a queue send (→ `sqs:SendMessage` on the queues the function is
//! configured with), a visibility change (→ `sqs:ChangeMessageVisibility`), the master key
//! (→ the app secret). [`STORE_ACTIONS`] itself is checked against the store traits and the
//! DynamoDB adapter, so a new or changed store method fails here until the table says what
//! it needs.

use crate::support::repo_root;
use serde_norway::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Where a DynamoDB action applies: the table, or one of its GSIs (a Query on an index is
/// authorized on the index's ARN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum On {
    Table,
    Index(&'static str),
}
use On::{Index, Table};

/// Every store method (shared/src/store/mod.rs) and the DynamoDB actions its adapter
/// (shared/src/store/dynamo/, a file per capability) calls. A transaction is authorized item
/// by item (a `Put` in TransactWriteItems needs `PutItem`).
const STORE_ACTIONS: &[(&str, &[(&str, On)])] = &[
    ("create_organization", &[("PutItem", Table)]),
    ("get_organization", &[("GetItem", Table)]),
    (
        "update_organization",
        &[("PutItem", Table), ("GetItem", Table)],
    ),
    ("get_checkout_settings", &[("GetItem", Table)]),
    ("put_checkout_settings", &[("PutItem", Table)]),
    ("count_hit", &[("UpdateItem", Table)]),
    ("hits", &[("GetItem", Table)]),
    ("get_rate_limits", &[("GetItem", Table)]),
    ("put_rate_limits", &[("PutItem", Table)]),
    (
        "create_api_key",
        &[("PutItem", Table), ("GetItem", Table), ("Query", Table)],
    ),
    ("get_api_key_by_hash", &[("GetItem", Table)]),
    ("get_api_key", &[("GetItem", Table)]),
    ("get_org_api_key", &[("GetItem", Table)]),
    ("revoke_api_key", &[("GetItem", Table), ("PutItem", Table)]),
    (
        "roll_api_key",
        &[("GetItem", Table), ("PutItem", Table), ("Query", Table)],
    ),
    ("list_api_keys", &[("Query", Table)]),
    ("create_order", &[("PutItem", Table)]),
    ("get_order", &[("GetItem", Table)]),
    ("update_order", &[("PutItem", Table)]),
    (
        "list_orders",
        &[("Query", Index("orders_by_org")), ("BatchGetItem", Table)],
    ),
    (
        "list_expirable_orders",
        &[
            ("Query", Index("orders_by_expiry")),
            ("BatchGetItem", Table),
        ],
    ),
    (
        "list_stalled_orders",
        &[
            ("Query", Index("orders_by_expiry")),
            ("BatchGetItem", Table),
        ],
    ),
    ("get_tx_claim", &[("GetItem", Table)]),
    (
        "list_watched_orders",
        &[
            ("Query", Index("deposits_by_chain")),
            ("BatchGetItem", Table),
        ],
    ),
    ("scan_cursor", &[("GetItem", Table)]),
    ("set_scan_cursor", &[("PutItem", Table)]),
    ("get_event", &[("GetItem", Table)]),
    (
        "list_events",
        &[("Query", Index("events_by_org")), ("BatchGetItem", Table)],
    ),
    ("put_audit_entry", &[("PutItem", Table)]),
    (
        "list_audit_entries",
        &[
            ("Query", Index("events_by_org")),
            ("Query", Index("deliveries_by_endpoint")),
            ("BatchGetItem", Table),
        ],
    ),
    (
        "idempotency_begin",
        &[("PutItem", Table), ("GetItem", Table)],
    ),
    ("idempotency_complete", &[("PutItem", Table)]),
    ("idempotency_release", &[("DeleteItem", Table)]),
    ("claim_once", &[("PutItem", Table)]),
    ("release_claim", &[("DeleteItem", Table)]),
    (
        "create_endpoint",
        &[("PutItem", Table), ("GetItem", Table), ("Query", Table)],
    ),
    ("get_endpoint", &[("GetItem", Table)]),
    ("update_endpoint", &[("PutItem", Table), ("GetItem", Table)]),
    (
        "delete_endpoint",
        &[("GetItem", Table), ("DeleteItem", Table)],
    ),
    ("list_endpoints", &[("Query", Table)]),
    ("create_delivery", &[("PutItem", Table)]),
    ("get_delivery", &[("GetItem", Table)]),
    ("update_delivery", &[("PutItem", Table)]),
    (
        "list_deliveries",
        &[
            ("Query", Index("deliveries_by_endpoint")),
            ("BatchGetItem", Table),
        ],
    ),
    ("create_wallet", &[("PutItem", Table)]),
    ("get_wallet", &[("GetItem", Table)]),
    ("list_wallets", &[("Query", Table)]),
    ("update_wallet", &[("PutItem", Table)]),
    (
        "delete_wallet",
        &[("GetItem", Table), ("DeleteItem", Table)],
    ),
    ("next_xpub_index", &[("UpdateItem", Table)]),
    ("return_xpub_index", &[("UpdateItem", Table)]),
    (
        "add_analytics",
        &[
            ("GetItem", Table),
            ("PutItem", Table),
            ("UpdateItem", Table),
        ],
    ),
    (
        "add_analytics_all",
        &[
            ("GetItem", Table),
            ("PutItem", Table),
            ("UpdateItem", Table),
        ],
    ),
    ("read_analytics", &[("Query", Table)]),
];

/// SDK calls in the DynamoDB adapter and the IAM action each needs.
const SDK_CALLS: &[(&str, &str)] = &[
    (".get_item()", "GetItem"),
    (".put_item()", "PutItem"),
    (".delete_item()", "DeleteItem"),
    (".update_item()", "UpdateItem"),
    (".query()", "Query"),
    (".scan()", "Scan"),
    (".batch_get_item()", "BatchGetItem"),
    (".batch_write_item()", "BatchWriteItem"),
    (".transact_get_items()", "GetItem"),
    // Items of a TransactWriteItems call.
    ("Put::builder()", "PutItem"),
    (".put(", "PutItem"),
    (".delete(", "DeleteItem"),
    (".update(", "UpdateItem"),
    (".condition_check(", "ConditionCheckItem"),
];

fn store_actions(method: &str) -> &'static [(&'static str, On)] {
    STORE_ACTIONS
        .iter()
        .find(|(m, _)| *m == method)
        .map(|(_, a)| *a)
        .unwrap_or_else(|| {
            panic!(
                "store method {method} is not in STORE_ACTIONS: add the DynamoDB actions it calls"
            )
        })
}

// ------------------------------------------------------------------ reading Rust source

/// One fn: its name and its text (from its parameters on), comments removed.
struct FnItem {
    name: String,
    text: String,
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn strip_comment(line: &str) -> &str {
    // Good enough for formatted code: `//` inside a string literal only cuts a URL short.
    match line.find("//") {
        Some(i) if !line[..i].ends_with(':') => &line[..i],
        _ => line,
    }
}

/// The fns of a formatted source file (rustfmt closes a body at its fn's indentation);
/// `#[cfg(test)]` modules and bodiless trait declarations are left out.
fn fns_of(source: &str) -> Vec<FnItem> {
    let source = source
        .split("\n#[cfg(test)]\nmod ")
        .next()
        .unwrap_or_default();
    let lines: Vec<&str> = source.lines().map(strip_comment).collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let mut rest = trimmed;
        for prefix in [
            "pub(crate) ",
            "pub(super) ",
            "pub ",
            "const ",
            "async ",
            "unsafe ",
        ] {
            rest = rest.strip_prefix(prefix).unwrap_or(rest);
        }
        let Some(rest) = rest.strip_prefix("fn ") else {
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        // The line that opens the body (or ends a declaration).
        let Some(open) = (i..lines.len()).find(|&j| {
            let t = lines[j].trim_end();
            t.ends_with('{') || t.ends_with(';') || t.ends_with('}')
        }) else {
            continue;
        };
        let t = lines[open].trim_end();
        if t.ends_with(';') {
            continue;
        }
        let end = if t.ends_with('}') {
            open
        } else {
            let close = format!("{indent}}}");
            (open + 1..lines.len())
                .find(|&j| lines[j].trim_end() == close)
                .unwrap_or_else(|| panic!("no end to fn {name}"))
        };
        // Start after the name, so the signature does not read as a call of itself.
        let head = &line[line.find(&format!("fn {name}")).unwrap() + 3 + name.len()..];
        let text = std::iter::once(head)
            .chain(lines[i + 1..=end].iter().copied())
            .collect::<Vec<_>>()
            .join("\n");
        out.push(FnItem { name, text });
    }
    out
}

/// A call in source text: `qualifier::name(` or `.name(` or `name(`, with its argument
/// count (top-level commas + 1, 0 for `()`).
struct Call {
    qualifier: Option<String>,
    name: String,
    args: usize,
}

fn calls(text: &str) -> Vec<Call> {
    let b = text.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !ident(b[i]) || (i > 0 && ident(b[i - 1])) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && ident(b[i]) {
            i += 1;
        }
        if i >= b.len() || b[i] != b'(' {
            continue;
        }
        let name = &text[start..i];
        let qualifier = text[..start].strip_suffix("::").map(|before| {
            let q: String = before
                .bytes()
                .rev()
                .take_while(|&c| ident(c))
                .map(char::from)
                .collect();
            q.chars().rev().collect()
        });
        // Arguments: count top-level commas up to the matching parenthesis.
        let (mut depth, mut commas, mut empty, mut j) = (0i32, 0, true, i);
        while j < b.len() {
            match b[j] {
                b'(' | b'[' | b'{' => depth += 1,
                b')' | b']' | b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                b',' if depth == 1 => commas += 1,
                c if depth >= 1 && !c.is_ascii_whitespace() => empty = false,
                _ => {}
            }
            j += 1;
        }
        // A trailing comma (rustfmt's multi-line calls) is not another argument.
        let trailing = text[i..j].trim_end().ends_with(',');
        let args = if empty {
            0
        } else {
            commas + 1 - trailing as usize
        };
        out.push(Call {
            qualifier,
            name: name.to_owned(),
            args,
        });
    }
    out
}

/// The store methods: every `async fn` of a `pub trait …Store` in shared/src/store/mod.rs.
fn store_methods(root: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(root.join("shared/src/store/mod.rs")).unwrap();
    let mut out = BTreeSet::new();
    let mut in_trait = false;
    for line in text.lines() {
        if line.starts_with("pub trait ") && line.contains("Store") {
            in_trait = true;
        } else if line == "}" {
            in_trait = false;
        } else if in_trait && let Some(rest) = line.trim_start().strip_prefix("async fn ") {
            out.insert(rest.split(['(', '<']).next().unwrap().to_owned());
        }
    }
    assert!(out.len() > 10, "no store traits found in store/mod.rs");
    out
}

// ------------------------------------------------------------------ what code does

/// A source unit: the domain crate, or a function crate.
struct Unit {
    fns: BTreeMap<String, Vec<String>>,
    /// Function crates this one depends on, by crate ident (`get_order`).
    deps: Vec<String>,
    /// The domain crate's features its Lambda binary turns on (`support::domain_features`).
    binary_features: BTreeSet<String>,
}

fn load_unit(dir: &Path, skip: &[&str]) -> Unit {
    let mut files = Vec::new();
    rs_files(&dir.join("src"), &mut files);
    let mut fns: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in files {
        let rel = f
            .strip_prefix(dir)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        // Test modules in their own file (`#[cfg(test)] mod tests;`), and their submodules
        // in its directory, are not shipped code.
        let test_file = f.file_stem().is_some_and(|s| s == "tests" || s == "test")
            || rel.split('/').any(|c| c == "tests");
        if test_file || skip.iter().any(|s| rel.starts_with(s)) {
            continue;
        }
        for item in fns_of(&std::fs::read_to_string(&f).unwrap()) {
            fns.entry(item.name).or_default().push(item.text);
        }
    }
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap_or_default();
    let deps = manifest
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.split_once('=')?;
            rest.contains("path = \"../")
                .then(|| name.trim().replace('-', "_"))
        })
        .collect();
    let binary_features = crate::support::domain_features(&manifest);
    Unit {
        fns,
        deps,
        binary_features,
    }
}

/// What one function's code does in AWS.
#[derive(Debug, Default)]
struct Uses {
    store: BTreeSet<String>,
    queue_send: bool,
    queue_visibility: bool,
    master_key: bool,
    /// Prices or exchange routes (`Services::prices` / `router`).
    pricing: bool,
    /// Where each finding was made (`unit::fn: what`), for the failure message.
    found_in: Vec<String>,
}

/// Walks from every fn of `crate_ident` through the fns it calls by name.
fn uses_of(crate_ident: &str, units: &BTreeMap<String, Unit>, store: &BTreeSet<String>) -> Uses {
    let mut uses = Uses::default();
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    let mut todo: Vec<(String, String)> = units[crate_ident]
        .fns
        .keys()
        .map(|n| (crate_ident.to_owned(), n.clone()))
        .collect();
    while let Some((unit, name)) = todo.pop() {
        if !seen.insert((unit.clone(), name.clone())) {
            continue;
        }
        let Some(bodies) = units[&unit].fns.get(&name) else {
            continue;
        };
        for text in bodies {
            if text.contains("master") {
                uses.master_key = true;
                uses.found_in.push(format!("{unit}::{name}: master key"));
            }
            if text.contains(".prices") || text.contains(".router") {
                uses.pricing = true;
                uses.found_in
                    .push(format!("{unit}::{name}: prices or routes"));
            }
            for c in calls(text) {
                if store.contains(&c.name) {
                    uses.store.insert(c.name.clone());
                    uses.found_in.push(format!("{unit}::{name}: {}", c.name));
                }
                if c.name == "send" && c.args == 2 {
                    uses.queue_send = true;
                    uses.found_in.push(format!("{unit}::{name}: queue send"));
                }
                if c.name == "retry_after" {
                    uses.queue_visibility = true;
                    uses.found_in.push(format!("{unit}::{name}: retry_after"));
                }
                // Resolve: a named function crate; else this unit, the domain crate, then
                // the function crates this one depends on.
                let mut candidates = vec![];
                match &c.qualifier {
                    Some(q) if units.contains_key(q) && q != "shared" => candidates.push(q.clone()),
                    _ => {
                        candidates.push(unit.clone());
                        candidates.push("shared".into());
                        candidates.extend(units[&unit].deps.iter().cloned());
                    }
                }
                if let Some(u) = candidates
                    .into_iter()
                    .find(|u| units.get(u).is_some_and(|u| u.fns.contains_key(&c.name)))
                {
                    todo.push((u, c.name.clone()));
                }
            }
        }
    }
    uses
}

// ------------------------------------------------------------------ template.yaml

fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_mapping()?.get(Value::String(key.to_owned()))
}

/// A resource reference as text: `!GetAtt T.Arn` → `T.Arn`, `!Sub "${T.Arn}/index/x"` →
/// `T.Arn/index/x`, `!Ref S` → `S`.
fn reference(v: &Value) -> String {
    match v {
        Value::String(s) => s.replace("${", "").replace('}', ""),
        Value::Tagged(t) => match &t.value {
            Value::Sequence(parts) => parts.iter().map(reference).collect::<Vec<_>>().join("."),
            other => reference(other),
        },
        other => panic!("unexpected resource {other:?}"),
    }
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Sequence(s) => s.iter().map(reference).collect(),
        other => vec![reference(other)],
    }
}

struct Function {
    logical_id: String,
    /// Its `Handler`: the crate under `functions/`.
    function: String,
    env: BTreeMap<String, String>,
    /// Allowed (action, resource) pairs.
    allowed: Vec<(Vec<String>, Vec<String>)>,
}

fn template_functions() -> Vec<Function> {
    let raw = std::fs::read_to_string(crate::support::template_path()).unwrap();
    let doc: Value = serde_norway::from_str(&raw).unwrap();
    let mut out = Vec::new();
    for (id, res) in get(&doc, "Resources").unwrap().as_mapping().unwrap() {
        if get(res, "Type").and_then(Value::as_str) != Some("AWS::Serverless::Function") {
            continue;
        }
        let logical_id = id.as_str().unwrap().to_owned();
        let props = get(res, "Properties").unwrap();
        let function = get(props, "Handler")
            .and_then(Value::as_str)
            .unwrap()
            .to_owned();
        let env = get(props, "Environment")
            .and_then(|e| get(e, "Variables"))
            .and_then(Value::as_mapping)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.as_str().unwrap().to_owned(), reference(v)))
                    .collect()
            })
            .unwrap_or_default();
        let mut allowed = Vec::new();
        for policy in get(props, "Policies")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            let statements = get(policy, "Statement").unwrap_or_else(|| {
                panic!("{logical_id}: only inline Statement policies are understood here")
            });
            for s in statements.as_sequence().unwrap() {
                assert_eq!(
                    get(s, "Effect").and_then(Value::as_str),
                    Some("Allow"),
                    "{logical_id}"
                );
                allowed.push((
                    strings(get(s, "Action").unwrap()),
                    strings(get(s, "Resource").unwrap()),
                ));
            }
        }
        out.push(Function {
            logical_id,
            function,
            env,
            allowed,
        });
    }
    out
}

impl Function {
    fn allows(&self, action: &str, resource: &str) -> bool {
        self.allowed.iter().any(|(actions, resources)| {
            actions.iter().any(|a| {
                a == action
                    || a == "*"
                    || a.strip_suffix('*').is_some_and(|p| action.starts_with(p))
            }) && resources.iter().any(|r| {
                r == resource || r.strip_suffix('*').is_some_and(|p| resource.starts_with(p))
            })
        })
    }
}

// ------------------------------------------------------------------ the tests

#[test]
fn store_actions_match_the_store_traits_and_the_dynamodb_adapter() {
    let root = repo_root();
    let methods = store_methods(&root);
    let listed: BTreeSet<String> = STORE_ACTIONS.iter().map(|(m, _)| m.to_string()).collect();
    let unknown: Vec<_> = methods.difference(&listed).collect();
    let stale: Vec<_> = listed.difference(&methods).collect();
    assert!(
        unknown.is_empty() && stale.is_empty(),
        "STORE_ACTIONS must list exactly the store trait methods: add {unknown:?} (with the \
         DynamoDB actions their adapter calls), remove {stale:?}"
    );
    // Each adapter method's SDK calls, following the adapter's own helpers.
    let mut files = Vec::new();
    rs_files(&root.join("shared/src/store/dynamo"), &mut files);
    let fns: BTreeMap<String, Vec<String>> = files
        .iter()
        .flat_map(|f| fns_of(&std::fs::read_to_string(f).unwrap()))
        .fold(BTreeMap::new(), |mut m, f| {
            m.entry(f.name).or_insert_with(Vec::new).push(f.text);
            m
        });
    let mut wrong = Vec::new();
    for (method, expected) in STORE_ACTIONS {
        let own = fns
            .get(*method)
            .unwrap_or_else(|| panic!("the DynamoDB adapter has no fn {method}"));
        let mut actions = BTreeSet::new();
        let mut seen = BTreeSet::new();
        let mut todo = vec![method.to_string()];
        while let Some(name) = todo.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            for body in fns.get(&name).into_iter().flatten() {
                for (call, action) in SDK_CALLS {
                    if body.contains(call) {
                        actions.insert(*action);
                    }
                }
                for c in calls(body) {
                    if fns.contains_key(&c.name) {
                        todo.push(c.name);
                    }
                }
            }
        }
        let table: BTreeSet<&str> = expected.iter().map(|(a, _)| *a).collect();
        if actions != table {
            wrong.push(format!(
                "{method}: the adapter calls {actions:?}, STORE_ACTIONS says {table:?}"
            ));
        }
        // The index may be named by a helper the method calls (one query for two methods).
        let reached: Vec<&String> = seen.iter().flat_map(|n| fns.get(n)).flatten().collect();
        for (action, on) in *expected {
            let body = own.join("\n");
            let ok = match on {
                Index(name) => reached.iter().any(|b| b.contains(&format!("\"{name}\""))),
                Table => *action != "Query" || !body.contains("index_name"),
            };
            if !ok {
                wrong.push(format!(
                    "{method}: {action} is not on {on:?} in the adapter"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn each_function_policy_allows_what_its_code_does() {
    let root = repo_root();
    let store = store_methods(&root);
    let mut units = BTreeMap::new();
    units.insert(
        "shared".to_owned(),
        load_unit(
            &root.join("shared"),
            // The adapters are what the table describes; the queues are leaves; runtime and
            // config only wire a function's main (the secret is checked by its variable).
            &[
                "src/runtime.rs",
                "src/config.rs",
                "src/store/dynamo/",
                "src/store/embedded/",
                "src/queue/",
                "src/testing.rs",
            ],
        ),
    );
    for e in std::fs::read_dir(root.join("functions")).unwrap() {
        let dir = e.unwrap().path();
        if dir.join("Cargo.toml").exists() {
            let ident = dir.file_name().unwrap().to_string_lossy().replace('-', "_");
            units.insert(ident, load_unit(&dir, &[]));
        }
    }
    let mut missing = Vec::new();
    let mut wrong_features = Vec::new();
    let mut found = Vec::new();
    for f in template_functions() {
        let ident = f.function.replace('-', "_");
        assert!(units.contains_key(&ident), "no crate for {}", f.function);
        let uses = uses_of(&ident, &units, &store);
        found.extend(
            uses.found_in
                .iter()
                .map(|w| format!("{}: {w}", f.logical_id)),
        );
        let mut need: BTreeSet<(String, String)> = BTreeSet::new();
        for m in &uses.store {
            for (action, on) in store_actions(m) {
                let resource = match on {
                    Table => "OrdersTable.Arn".to_owned(),
                    Index(i) => format!("OrdersTable.Arn/index/{i}"),
                };
                need.insert((format!("dynamodb:{action}"), resource));
            }
        }
        let queues: Vec<&String> = f
            .env
            .iter()
            .filter(|(k, _)| k.ends_with("_QUEUE_URL"))
            .map(|(_, q)| q)
            .collect();
        for q in &queues {
            if uses.queue_send {
                need.insert(("sqs:SendMessage".into(), format!("{q}.Arn")));
            }
            if uses.queue_visibility {
                need.insert(("sqs:ChangeMessageVisibility".into(), format!("{q}.Arn")));
            }
        }
        if (uses.queue_send || uses.queue_visibility) && queues.is_empty() {
            missing.push(format!(
                "{}: uses a queue but has no *_QUEUE_URL",
                f.logical_id
            ));
        }
        // The master key's secret only where the master key is used: it derives every API
        // and webhook secret, so no other function (the public ones least of all) holds it.
        match f.env.get("PAYORDERS_SECRET_ID") {
            Some(secret) if uses.master_key => {
                need.insert(("secretsmanager:GetSecretValue".into(), secret.clone()));
            }
            Some(_) => missing.push(format!(
                "{}: is given the master key's secret (PAYORDERS_SECRET_ID) but never uses the master key",
                f.logical_id
            )),
            None if uses.master_key => missing.push(format!(
                "{}: uses the master key but has no PAYORDERS_SECRET_ID",
                f.logical_id
            )),
            None => {}
        }
        if f.allows("secretsmanager:GetSecretValue", "AppSecret") && !uses.master_key {
            missing.push(format!(
                "{}: may read the master key's secret (AppSecret) but never uses the master key",
                f.logical_id
            ));
        }
        // The providers' secret wherever the binary builds price or exchange clients or chain
        // readers: without it such a function starts with none configured, and no error.
        let features = &units[&ident].binary_features;
        let providers = features.contains("pricing") || features.contains("chains");
        match f.env.get("PAYORDERS_PROVIDERS_SECRET_ID") {
            Some(secret) => {
                need.insert(("secretsmanager:GetSecretValue".into(), secret.clone()));
            }
            None if providers => missing.push(format!(
                "{}: builds price, exchange or chain clients but has no PAYORDERS_PROVIDERS_SECRET_ID",
                f.logical_id
            )),
            None => {}
        }
        for (action, resource) in &need {
            if !f.allows(action, resource) {
                missing.push(format!("{}: {action} on {resource}", f.logical_id));
            }
        }
        // What its binary builds (payorders::runtime::Services::from_sdk) follows its
        // features: each is turned on exactly where the function uses it, so nothing it needs
        // is missing at run time and nothing it never calls is linked in.
        let features = &units[&ident].binary_features;
        for (feature, used) in [("sqs", !queues.is_empty()), ("pricing", uses.pricing)] {
            if used != features.contains(feature) {
                wrong_features.push(format!(
                    "{} ({}): payorders/{feature} is {} its `aws` feature, while it {} it",
                    f.logical_id,
                    f.function,
                    if used { "missing from" } else { "in" },
                    if used { "uses" } else { "never uses" },
                ));
            }
        }
    }
    assert!(
        wrong_features.is_empty(),
        "function features do not match their code:\n{}",
        wrong_features.join("\n")
    );
    assert!(
        missing.is_empty(),
        "template.yaml policies lack what the code does:\n{}\n\nwhere the code does it:\n{}",
        missing.join("\n"),
        found.join("\n")
    );
}
