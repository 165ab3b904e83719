//! warmpool end-to-end tests: see `tests/`.

// Test helpers: a template that does not have the shape they read is a failed test.
#![allow(clippy::expect_used, clippy::panic)]

use serde_norway::Value;

pub mod iam;

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
        .collect()
}
