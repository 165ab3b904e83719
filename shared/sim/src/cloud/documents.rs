//! The SSM Command documents the in-memory SSM knows: ours, read from `template.yaml`
//! (their parameters, defaults and `allowedPattern`s), under the names the simulator's
//! deployment gives them. `SendCommand` is checked against them as SSM does: an unknown
//! document is `InvalidDocument`; an undeclared parameter, a missing one without a
//! default, or a value its `allowedPattern` refuses is `InvalidParameters`.
//!
//! SSM evaluates `allowedPattern` as a Java regular expression, where a final `$` also
//! matches before one trailing line terminator: `^[a-z]+$` accepts `"abc\n"`. The model
//! does the same, so it never looks stricter than SSM there.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;
use serde_norway::Value;
use warmpool_core::error::CloudError;
use warmpool_core::ports::CommandRequest;

use crate::fixture;

/// `template.yaml`, as deployed.
const TEMPLATE: &str = include_str!("../../../../template.yaml");

/// One declared parameter.
#[derive(Debug, Clone)]
pub(super) struct Parameter {
    allowed: Option<Regex>,
    has_default: bool,
}

/// The documents by name.
#[derive(Debug, Clone, Default)]
pub(super) struct Documents {
    docs: BTreeMap<String, BTreeMap<String, Parameter>>,
}

/// A Java `allowedPattern` as a Rust regex with the same meaning for a final `$` (what
/// SSM accepts for a document parameter; tests check the template's patterns with it).
///
/// # Errors
/// When the pattern is not a regular expression.
pub fn java_pattern(pattern: &str) -> Result<Regex, String> {
    let translated = match pattern.strip_suffix('$') {
        Some(body) if !body.ends_with('\\') => format!("{body}(?:\r\n|[\n\r\u{85}\u{2028}\u{2029}])?\\z"),
        _ => pattern.to_owned(),
    };
    Regex::new(&translated).map_err(|e| format!("allowedPattern {pattern:?} is not a regular expression: {e}"))
}

impl Documents {
    /// Our documents from `template.yaml`, named as the simulator's deployment names them;
    /// read once per process (every cloud a test makes shares them).
    pub(super) fn ours() -> &'static Result<Self, String> {
        static OURS: LazyLock<Result<Documents, String>> = LazyLock::new(|| {
            Documents::from_template(
                TEMPLATE,
                &[("UserInitDocument", fixture::USER_INIT_DOCUMENT), ("PoolPrepDocument", fixture::POOL_PREP_DOCUMENT)],
            )
        });
        &OURS
    }

    /// The Command documents of `template` whose logical ids are mapped to names.
    pub(super) fn from_template(template: &str, names: &[(&str, &str)]) -> Result<Self, String> {
        let t: Value = serde_norway::from_str(template).map_err(|e| format!("template.yaml is not YAML: {e}"))?;
        let mut docs = BTreeMap::new();
        for (logical_id, name) in names {
            let content = &t["Resources"][*logical_id]["Properties"]["Content"];
            let params = content["parameters"]
                .as_mapping()
                .ok_or_else(|| format!("{logical_id} declares no parameters in template.yaml"))?;
            let mut declared = BTreeMap::new();
            for (key, spec) in params {
                let key = key.as_str().ok_or_else(|| format!("{logical_id}: a parameter name is not text"))?;
                let allowed = spec["allowedPattern"].as_str().map(java_pattern).transpose()?;
                declared.insert(key.to_owned(), Parameter { allowed, has_default: !spec["default"].is_null() });
            }
            docs.insert((*name).to_owned(), declared);
        }
        Ok(Self { docs })
    }

    /// Checks a `SendCommand` as SSM does.
    pub(super) fn check(&self, request: &CommandRequest) -> Result<(), CloudError> {
        let invalid = |message: String| CloudError::Invalid { operation: "SendCommand".into(), message };
        let Some(declared) = self.docs.get(&request.document) else {
            return Err(invalid(format!("InvalidDocument: document {} does not exist", request.document)));
        };
        for (name, values) in &request.parameters {
            let Some(spec) = declared.get(name) else {
                return Err(invalid(format!("InvalidParameters: {name} is not a parameter of {}", request.document)));
            };
            for value in values {
                if spec.allowed.as_ref().is_some_and(|re| !re.is_match(value)) {
                    return Err(invalid(format!(
                        "InvalidParameters: parameter {name} value {value:?} fails its allowedPattern"
                    )));
                }
            }
        }
        if let Some((name, _)) =
            declared.iter().find(|(name, spec)| !spec.has_default && !request.parameters.contains_key(*name))
        {
            return Err(invalid(format!("InvalidParameters: {name} is required by {}", request.document)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use warmpool_core::ports::CommandRequest;

    use super::{Documents, java_pattern};
    use crate::fixture;

    fn init(params: &[(&str, &str)]) -> CommandRequest {
        CommandRequest {
            document: fixture::USER_INIT_DOCUMENT.into(),
            instance_id: "i-1".into(),
            parameters: params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), vec![(*v).to_owned()]))
                .collect::<BTreeMap<_, _>>(),
            delivery_timeout_s: 60,
            comment: String::new(),
        }
    }

    #[test]
    fn our_documents_are_read_from_the_template_and_enforced() {
        let docs = Documents::ours().as_ref().expect("template.yaml declares our documents");
        let ok = init(&[("UserId", "u-1"), ("SignupId", "s-1"), ("executionTimeout", "120")]);
        assert_eq!(docs.check(&ok), Ok(()));
        let refused = |r: &CommandRequest| docs.check(r).expect_err("refused").to_string();
        assert!(refused(&init(&[("UserId", "u-1';reboot;'"), ("SignupId", "s-1")])).contains("allowedPattern"));
        assert!(refused(&init(&[("UserId", "u-1"), ("SignupId", "s-1"), ("Extra", "x")])).contains("not a parameter"));
        assert!(refused(&init(&[("UserId", "u-1")])).contains("SignupId is required"));
        assert!(
            refused(&init(&[("UserId", "u-1"), ("SignupId", "s-1"), ("executionTimeout", "1e9")]))
                .contains("allowedPattern")
        );
        let mut unknown = ok.clone();
        unknown.document = "AWS-RunShellScript".into();
        assert!(refused(&unknown).contains("InvalidDocument"));
    }

    #[test]
    fn a_final_dollar_matches_as_in_java() {
        let re = java_pattern("^[a-z]+$").unwrap();
        assert!(re.is_match("abc"));
        assert!(re.is_match("abc\n"), "Java's $ also matches before a final line terminator");
        assert!(re.is_match("abc\r\n"));
        assert!(!re.is_match("abc\n\n"));
        assert!(!re.is_match("abc\ndef"));
        let anchored = java_pattern("^[a-z]+\\z").unwrap();
        assert!(!anchored.is_match("abc\n"));
    }
}
