//! warmpool end-to-end tests: see `tests/`.

// Test helpers: a template that does not have the shape they read is a failed test.
#![allow(clippy::expect_used, clippy::panic)]

use std::path::Path;

use serde_norway::Value;

pub mod iam;

/// The workspace's root directory: from `CARGO_MANIFEST_DIR` as cargo sets it when it
/// runs the test (a binary built in another checkout sharing the target directory, and
/// reused by cargo, would otherwise read that checkout's files), else as compiled in.
///
/// # Panics
/// Never: the tests crate is one level under the root.
#[must_use]
pub fn root() -> &'static Path {
    static ROOT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
            .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf(), std::path::PathBuf::from);
        manifest.parent().expect("workspace root").to_path_buf()
    })
}

/// `template.yaml`, parsed (short-form intrinsics as tagged values).
///
/// # Panics
/// If it cannot be read or is not YAML.
#[must_use]
pub fn template() -> Value {
    let text = std::fs::read_to_string(root().join("template.yaml")).expect("template.yaml is readable");
    serde_norway::from_str(&text).expect("template.yaml is YAML")
}

/// The template's resources of one type: logical id and resource.
///
/// # Panics
/// If the template has no `Resources` mapping.
#[must_use]
pub fn resources_of_type<'t>(t: &'t Value, kind: &str) -> Vec<(String, &'t Value)> {
    t["Resources"]
        .as_mapping()
        .expect("Resources is a mapping")
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(kind))
        .filter_map(|(k, r)| Some((k.as_str()?.to_owned(), r)))
        .collect()
}

/// The IAM statements a function of `template.yaml` runs with: its explicit role's
/// inline policies when it names one (`Role: !GetAtt <Role>.Arn`), else its SAM
/// `Policies`. (Inline statements only: a managed policy or a policy template would not
/// be read, and the tests that use this fail on one.)
///
/// # Panics
/// On a role that is not an `!GetAtt` of a role in the template, or a policy that is not
/// inline statements.
#[must_use]
pub fn function_statements(template: &Value, function: &Value) -> Vec<Value> {
    let role = &function["Properties"]["Role"];
    let policies: Vec<&Value> = if role.is_null() {
        let policies =
            function["Properties"]["Policies"].as_sequence().expect("a function without a role has Policies");
        policies.iter().map(|p| &p["Statement"]).collect()
    } else {
        let Value::Tagged(tagged) = role else { panic!("a role by !GetAtt, not {role:?}") };
        let target = tagged.value.as_str().and_then(|s| s.strip_suffix(".Arn")).expect("!GetAtt <Role>.Arn");
        let resource = &template["Resources"][target];
        assert_eq!(resource["Type"].as_str(), Some("AWS::IAM::Role"), "{target}");
        let policies = resource["Properties"]["Policies"].as_sequence().expect("a role with inline policies");
        policies.iter().map(|p| &p["PolicyDocument"]["Statement"]).collect()
    };
    policies
        .into_iter()
        .flat_map(|statements| statements.as_sequence().expect("inline statements only").iter().cloned())
        .map(|statement| conditional_statement(&statement).unwrap_or(statement))
        .collect()
}

/// A statement granted under a condition only (`!If [Condition, Statement, !Ref
/// AWS::NoValue]`, such as the warm tier's): the statement, which some deployments get
/// (the checks read the union of every configuration's grants). `None` for a plain one.
fn conditional_statement(statement: &Value) -> Option<Value> {
    let Value::Tagged(tagged) = statement else { return None };
    if tagged.tag != "!If" {
        return None;
    }
    let args = tagged.value.as_sequence().expect("!If [Condition, Statement, !Ref AWS::NoValue]");
    let no_value = matches!(&args[2], Value::Tagged(t) if t.tag == "!Ref" && t.value.as_str() == Some("AWS::NoValue"));
    assert!(args.len() == 3 && no_value, "a conditional statement is !If [Condition, Statement, !Ref AWS::NoValue]");
    Some(args[1].clone())
}
