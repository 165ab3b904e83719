//! `template.yaml` cross-checked against the code: every function's binary exists,
//! every variable the configuration reads is set, every EventBridge rule sends only
//! detail types its handler parses, and the SQS mapping reports partial failures.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_norway::Value;
use warmpool_core::events;
use warmpool_core::{Function, config};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root")
}

fn template() -> Value {
    let text = std::fs::read_to_string(root().join("template.yaml")).unwrap();
    serde_norway::from_str(&text).expect("template.yaml is YAML")
}

/// The functions of the template: logical id to (binary, resource).
fn functions(t: &Value) -> BTreeMap<String, (String, Value)> {
    t["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Serverless::Function"))
        .map(|(k, r)| {
            let binary = r["Metadata"]["BuildProperties"]["Binary"].as_str().expect("function names its Binary");
            (k.as_str().unwrap().to_owned(), (binary.to_owned(), r.clone()))
        })
        .collect()
}

/// `[[bin]]` names of the crates under functions/.
fn binaries() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for dir in std::fs::read_dir(root().join("functions")).unwrap() {
        let manifest = dir.unwrap().path().join("Cargo.toml");
        let parsed: toml::Table = std::fs::read_to_string(&manifest).unwrap().parse().unwrap();
        for bin in parsed.get("bin").and_then(|b| b.as_array()).into_iter().flatten() {
            names.insert(bin["name"].as_str().unwrap().to_owned());
        }
    }
    names
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Sequence(items) => items.iter().filter_map(|i| i.as_str().map(str::to_owned)).collect(),
        Value::String(s) => vec![s.clone()],
        _ => vec![],
    }
}

#[test]
fn every_function_binary_exists_and_is_built_with_cargo_lambda() {
    let t = template();
    let fns = functions(&t);
    let bins = binaries();
    assert_eq!(fns.len(), 5, "signup, lifecycle, command-status, reconcile, pool-sizer");
    for (id, (binary, r)) in &fns {
        assert!(bins.contains(binary), "{id} builds binary {binary:?}, but no function crate has it ({bins:?})");
        assert_eq!(r["Metadata"]["BuildMethod"].as_str(), Some("rust-cargolambda"), "{id}");
    }
    let globals = &t["Globals"]["Function"];
    assert_eq!(globals["Runtime"].as_str(), Some("provided.al2023"));
    assert_eq!(strings(&globals["Architectures"]), ["arm64"]);
    assert_eq!(globals["LoggingConfig"]["LogFormat"].as_str(), Some("JSON"));
}

#[test]
fn each_function_gets_exactly_the_variables_it_reads() {
    let t = template();
    let names = |v: &Value| -> BTreeSet<String> {
        v.as_mapping().map(|m| m.keys().filter_map(|k| k.as_str().map(str::to_owned)).collect()).unwrap_or_default()
    };
    let global = names(&t["Globals"]["Function"]["Environment"]["Variables"]);
    for (id, (binary, r)) in functions(&t) {
        let function = Function::ALL.into_iter().find(|f| f.name() == binary).expect("a function of the table");
        let mut set = global.clone();
        set.extend(names(&r["Properties"]["Environment"]["Variables"]));
        let reads: BTreeSet<String> = config::variables_of(function).into_iter().map(str::to_owned).collect();
        // Every variable it reads is set (a missing one would silently take the
        // default), and nothing else is (a pool-sizer setting can't reach signup).
        assert_eq!(set, reads, "{id} ({binary}): set in the template (left) vs read by the function (right)");
    }
}

#[test]
fn the_readme_configuration_table_is_generated_from_the_code() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let table = config::markdown_table();
    assert!(readme.contains(&table), "README.md's configuration table is out of date; replace it with:\n{table}");
}

#[test]
fn every_rule_sends_only_what_its_handler_parses() {
    let handled: BTreeMap<&str, (&str, Vec<&str>)> = BTreeMap::from([
        ("lifecycle", (events::SOURCE_AUTOSCALING, vec![events::LAUNCH_SUCCESSFUL, events::LAUNCH_LIFECYCLE_ACTION])),
        ("command-status", (events::SOURCE_SSM, vec![events::COMMAND_STATUS, events::COMMAND_INVOCATION_STATUS])),
    ]);
    let t = template();
    let mut seen = BTreeSet::new();
    for (id, (binary, r)) in functions(&t) {
        for (name, event) in r["Properties"]["Events"].as_mapping().unwrap() {
            match event["Type"].as_str() {
                Some("EventBridgeRule") => {
                    let (source, types) = handled
                        .get(binary.as_str())
                        .unwrap_or_else(|| panic!("{id} ({binary}) has an EventBridge rule but no event handler"));
                    let pattern = &event["Properties"]["Pattern"];
                    assert_eq!(strings(&pattern["source"]), [*source], "{id}.{name:?} source");
                    for dt in strings(&pattern["detail-type"]) {
                        assert!(
                            types.contains(&dt.as_str()),
                            "{id}.{name:?} sends {dt:?}, which {binary} does not parse"
                        );
                        seen.insert(dt);
                    }
                }
                Some("Schedule") => {
                    assert!(["reconcile", "pool-sizer"].contains(&binary.as_str()), "{id} runs on a schedule");
                }
                Some("SQS") => {
                    assert_eq!(binary, "signup", "{id} takes SQS");
                    assert_eq!(
                        strings(&event["Properties"]["FunctionResponseTypes"]),
                        ["ReportBatchItemFailures"],
                        "partial batch failures must be on"
                    );
                }
                other => panic!("{id}.{name:?}: unexpected event type {other:?}"),
            }
        }
    }
    for (_, types) in handled.values() {
        for dt in types {
            assert!(seen.contains(*dt), "no rule delivers {dt:?}");
        }
    }
}
