//! An evaluator of the template's IAM statements against the requests the in-memory
//! cloud records (action, resource ARN, condition keys), as IAM evaluates an identity
//! policy (IAM User Guide, "Policy evaluation logic" and "IAM JSON policy elements:
//! Condition operators"): a request is allowed when an `Allow` statement names its
//! action, one of its resources matches the request's ARN (`*` and `?` wildcards), and
//! every condition operator holds (any of a key's values, all of the keys and operators).
//!
//! The template's intrinsics (`!Sub`, `!Ref`, `!GetAtt`) are resolved from bindings the
//! test gives; anything it cannot read (a long-form `Fn::Sub`, a name with no binding,
//! `NotAction`, `NotResource`, an empty condition, an operator it does not know) is an
//! error, never a statement that silently allows or denies.

use std::collections::BTreeMap;

use regex::Regex;
use serde_norway::Value;

/// One request as IAM sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub action: String,
    /// The resource's ARN, or `*` for an action without resource-level permissions.
    pub resource: String,
    /// Condition keys (any case) to their values.
    pub context: BTreeMap<String, String>,
}

/// One condition of a statement: `operator: { key: [values] }`, one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub operator: String,
    pub key: String,
    pub values: Vec<String>,
}

/// An `Allow` statement with every intrinsic resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub sid: String,
    pub actions: Vec<String>,
    pub resources: Vec<String>,
    pub conditions: Vec<Condition>,
}

/// Values for the template's intrinsics: `AWS::Region`, a parameter's or resource's
/// name (what `!Ref` gives), `Resource.Attribute` (what `!GetAtt` gives).
pub type Bindings = BTreeMap<String, String>;

/// The strings `v` stands for, with every intrinsic resolved.
///
/// # Errors
/// A long-form intrinsic, a tag other than `!Sub`, `!Ref` and `!GetAtt`, or a name
/// without a binding.
pub fn resolve(v: &Value, b: &Bindings) -> Result<Vec<String>, String> {
    let lookup = |name: &str| b.get(name).cloned().ok_or_else(|| format!("no binding for {name}"));
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Number(n) => Ok(vec![n.to_string()]),
        Value::Bool(x) => Ok(vec![x.to_string()]),
        Value::Sequence(items) => items.iter().try_fold(Vec::new(), |mut out, item| {
            out.extend(resolve(item, b)?);
            Ok(out)
        }),
        Value::Tagged(t) => {
            let Some(text) = t.value.as_str() else {
                return Err(format!("{} of a non-string: {:?}", t.tag, t.value));
            };
            match t.tag.to_string().as_str() {
                "!Sub" => sub(text, &lookup).map(|s| vec![s]),
                "!Ref" | "!GetAtt" => lookup(text).map(|s| vec![s]),
                other => Err(format!("intrinsic {other} the evaluator cannot read")),
            }
        }
        Value::Mapping(_) => Err(format!("a long-form intrinsic the evaluator cannot read: {v:?}")),
        Value::Null => Err("a missing value".to_owned()),
    }
}

/// `!Sub`'s `${Name}` substitutions (`${!Literal}` stays literal).
fn sub(text: &str, lookup: &impl Fn(&str) -> Result<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| format!("unclosed ${{ in {text}"))?;
        let name = &after[..end];
        match name.strip_prefix('!') {
            Some(literal) => {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            }
            None => out.push_str(&lookup(name)?),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Reads one statement of a function's policy.
///
/// # Errors
/// What the evaluator refuses to guess at: not `Allow`, `NotAction`, `NotResource`,
/// `NotPrincipal`, no action or resource, an empty condition, an unreadable value.
pub fn statement(s: &Value, b: &Bindings) -> Result<Statement, String> {
    let sid = s["Sid"].as_str().unwrap_or("(no Sid)").to_owned();
    let fail = |why: String| format!("{sid}: {why}");
    for key in ["NotAction", "NotResource", "NotPrincipal"] {
        if !s[key].is_null() {
            return Err(fail(format!("{key} is not evaluated")));
        }
    }
    if s["Effect"].as_str() != Some("Allow") {
        return Err(fail(format!("Effect {:?}", s["Effect"])));
    }
    let actions = resolve(&s["Action"], b).map_err(&fail)?;
    let resources = resolve(&s["Resource"], b).map_err(&fail)?;
    if actions.is_empty() || resources.is_empty() {
        return Err(fail("no action or no resource".to_owned()));
    }
    let mut conditions = Vec::new();
    match &s["Condition"] {
        Value::Null => {}
        Value::Mapping(ops) if !ops.is_empty() => {
            for (op, keys) in ops {
                let operator = op.as_str().ok_or_else(|| fail(format!("operator {op:?}")))?;
                let keys =
                    keys.as_mapping().filter(|k| !k.is_empty()).ok_or_else(|| fail(format!("empty {operator}")))?;
                for (key, values) in keys {
                    let key = key.as_str().ok_or_else(|| fail(format!("key {key:?}")))?.to_owned();
                    let values = resolve(values, b).map_err(&fail)?;
                    conditions.push(Condition { operator: operator.to_owned(), key, values });
                }
            }
        }
        other => return Err(fail(format!("an empty or unreadable condition: {other:?}"))),
    }
    Ok(Statement { sid, actions, resources, conditions })
}

/// IAM's wildcard match: `*` any run of characters, `?` any one, the rest literal.
fn wildcard(pattern: &str) -> Regex {
    let body: String = pattern
        .split('*')
        .map(|part| part.split('?').map(regex::escape).collect::<Vec<_>>().join("."))
        .collect::<Vec<_>>()
        .join(".*");
    Regex::new(&format!("^{body}$")).unwrap_or_else(|e| panic!("pattern {pattern}: {e}"))
}

/// Whether `pattern` (with IAM's wildcards) matches `value`.
#[must_use]
pub fn matches(pattern: &str, value: &str) -> bool {
    wildcard(pattern).is_match(value)
}

impl Condition {
    /// Whether the condition holds for `context`.
    ///
    /// # Errors
    /// An operator the evaluator does not implement.
    pub fn holds(&self, context: &BTreeMap<String, String>) -> Result<bool, String> {
        let found = context.iter().find(|(k, _)| k.eq_ignore_ascii_case(&self.key)).map(|(_, v)| v.as_str());
        let number = |s: &str| s.parse::<f64>().ok();
        let any =
            |test: &dyn Fn(&str, &str) -> bool| found.is_some_and(|v| self.values.iter().any(|want| test(v, want)));
        let numeric = |test: fn(f64, f64) -> bool| {
            any(&|v, want| number(v).zip(number(want)).is_some_and(|(v, want)| test(v, want)))
        };
        Ok(match self.operator.as_str() {
            "StringEquals" => any(&|v, want| v == want),
            "StringEqualsIgnoreCase" => any(&|v, want| v.eq_ignore_ascii_case(want)),
            "StringLike" | "ArnLike" | "ArnEquals" => any(&|v, want| matches(want, v)),
            "NumericEquals" => numeric(|v, want| (v - want).abs() < f64::EPSILON),
            "NumericLessThan" => numeric(|v, want| v < want),
            "NumericLessThanEquals" => numeric(|v, want| v <= want),
            "NumericGreaterThan" => numeric(|v, want| v > want),
            "NumericGreaterThanEquals" => numeric(|v, want| v >= want),
            "Bool" => any(&|v, want| v.eq_ignore_ascii_case(want)),
            // `true`: the key is absent from the request; `false`: present.
            "Null" => self.values.iter().any(|want| (want == "true") == found.is_none()),
            other => return Err(format!("condition operator {other} is not evaluated")),
        })
    }
}

impl Statement {
    /// Whether this statement allows `r`.
    ///
    /// # Errors
    /// A condition operator the evaluator does not implement.
    pub fn allows(&self, r: &Request) -> Result<bool, String> {
        if !self.actions.iter().any(|a| a.eq_ignore_ascii_case(&r.action)) {
            return Ok(false);
        }
        if !self.resources.iter().any(|p| matches(p, &r.resource)) {
            return Ok(false);
        }
        for c in &self.conditions {
            if !c.holds(&r.context)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Whether this statement's `action` on `resource` (one of its own patterns) allows
    /// `r`: the request uses that very grant.
    ///
    /// # Errors
    /// A condition operator the evaluator does not implement.
    pub fn grant_used_by(&self, action: &str, resource: &str, r: &Request) -> Result<bool, String> {
        let narrowed = Self { actions: vec![action.to_owned()], resources: vec![resource.to_owned()], ..self.clone() };
        narrowed.allows(r)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ctx(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn cond(operator: &str, key: &str, values: &[&str]) -> Condition {
        Condition {
            operator: operator.into(),
            key: key.into(),
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        }
    }

    #[test]
    fn wildcards_match_as_iam_does() {
        assert!(matches(
            "arn:aws:ssm:*:*:parameter/wp/claims/*",
            "arn:aws:ssm:us-east-1:1:parameter/wp/claims/i-1/init"
        ));
        assert!(!matches("arn:aws:ssm:*:*:parameter/wp/claims/*", "arn:aws:ssm:us-east-1:1:parameter/wp/claims"));
        assert!(matches("wp_user_*", "wp_user_x"));
        assert!(!matches("wp_user_*", "wp-user-x"), "literal, not a character class");
        assert!(matches("a?c", "abc") && !matches("a?c", "abbc"));
        assert!(matches("a.c", "a.c") && !matches("a.c", "abc"), "regex characters are literal");
    }

    #[test]
    fn condition_operators_hold_as_documented() {
        let c = ctx(&[("autoscaling:MaxSize", "1"), ("aws:RequestTag/k", "v")]);
        assert!(cond("NumericLessThanEquals", "autoscaling:maxsize", &["1"]).holds(&c).unwrap(), "keys in any case");
        assert!(!cond("NumericLessThanEquals", "autoscaling:MaxSize", &["0"]).holds(&c).unwrap());
        assert!(!cond("NumericEquals", "autoscaling:MinSize", &["0"]).holds(&c).unwrap(), "a missing key fails");
        assert!(cond("Null", "autoscaling:InstanceTypes", &["true"]).holds(&c).unwrap());
        assert!(!cond("Null", "autoscaling:MaxSize", &["true"]).holds(&c).unwrap());
        assert!(cond("StringEquals", "aws:RequestTag/k", &["x", "v"]).holds(&c).unwrap(), "values ORed");
        assert!(!cond("StringEquals", "aws:RequestTag/k", &["V"]).holds(&c).unwrap(), "values case-sensitive");
        assert!(cond("StringLike", "aws:RequestTag/k", &["?"]).holds(&c).unwrap());
        assert!(cond("ForAnyValue:StringEquals", "k", &["v"]).holds(&c).is_err(), "unknown operators are errors");
    }

    #[test]
    fn intrinsics_resolve_or_fail() {
        let b: Bindings = [("AWS::Region", "us-east-1"), ("Queue.Arn", "arn:q"), ("Lt", "lt-1")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let yaml = |s: &str| -> Value { serde_norway::from_str(s).unwrap() };
        assert_eq!(
            resolve(&yaml("!Sub a:${AWS::Region}:${Lt}/${!Literal}"), &b).unwrap(),
            ["a:us-east-1:lt-1/${Literal}"]
        );
        assert_eq!(resolve(&yaml("[!GetAtt Queue.Arn, !Ref Lt, 1]"), &b).unwrap(), ["arn:q", "lt-1", "1"]);
        assert!(resolve(&yaml("!Sub ${Nope}"), &b).is_err());
        assert!(resolve(&yaml("Fn::Sub: x"), &b).is_err());
        let s = yaml("Effect: Allow\nAction: a:B\nResource: '*'\nCondition: {}");
        assert!(statement(&s, &b).is_err(), "an empty condition");
        let s = yaml("Effect: Allow\nNotAction: a:B\nResource: '*'");
        assert!(statement(&s, &b).is_err());
    }

    #[test]
    fn a_statement_allows_only_its_action_resource_and_conditions() {
        let s = Statement {
            sid: "S".into(),
            actions: vec!["autoscaling:CreateAutoScalingGroup".into()],
            resources: vec!["arn:g/wp_user_*".into()],
            conditions: vec![cond("NumericLessThanEquals", "autoscaling:MaxSize", &["1"])],
        };
        let r = |action: &str, resource: &str, max: &str| Request {
            action: action.into(),
            resource: resource.into(),
            context: ctx(&[("autoscaling:MaxSize", max)]),
        };
        assert!(s.allows(&r("autoscaling:createautoscalinggroup", "arn:g/wp_user_x", "1")).unwrap());
        assert!(!s.allows(&r("autoscaling:CreateAutoScalingGroup", "arn:g/wp-pool", "1")).unwrap());
        assert!(!s.allows(&r("autoscaling:CreateAutoScalingGroup", "arn:g/wp_user_x", "2")).unwrap());
        assert!(!s.allows(&r("autoscaling:DeleteAutoScalingGroup", "arn:g/wp_user_x", "1")).unwrap());
    }
}
