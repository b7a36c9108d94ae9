//! template.yaml, the workspace's function crates, the local host and the sample events
//! all name the same set of functions.

use crate::support::{repo_root, template_path};
use payorders_local::host::{HTTP_FUNCTIONS, OTHER_FUNCTIONS};
use payorders_local::template::Template;
use std::collections::BTreeSet;

#[test]
fn template_functions_are_the_workspace_function_crates() {
    let tpl = Template::load(&template_path()).unwrap();
    let in_template: BTreeSet<String> = tpl.functions.iter().map(|f| f.binary.clone()).collect();
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

#[test]
fn every_route_has_a_scope_and_an_http_function() {
    let tpl = Template::load(&template_path()).unwrap();
    let mut count = 0;
    for (f, r) in tpl.routes() {
        assert!(
            HTTP_FUNCTIONS.contains(&f.binary.as_str()),
            "{} is routed but not an HTTP function",
            f.binary
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
fn only_the_health_routes_are_public() {
    // Everything else needs a key: a new public route must be added here knowingly.
    let tpl = Template::load(&template_path()).unwrap();
    let public: BTreeSet<String> = tpl
        .routes()
        .filter(|(_, r)| r.public)
        .map(|(f, r)| format!("{} {} {}", f.binary, r.method, r.path))
        .collect();
    let expected: BTreeSet<String> = ["health GET /health", "health GET /health/ready"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(public, expected);
}
