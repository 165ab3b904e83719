//! The EventBridge rules of `template.yaml`, as the local platform applies them: each
//! function's `EventBridgeRule` patterns, read from the template, with the names they
//! match resolved through the template's own environment (a pattern value written as the
//! template writes `POOL_ASG_NAME`, `USER_ASG_PREFIX`, `USER_INIT_DOCUMENT` or
//! `POOL_PREP_DOCUMENT` is that variable's value in the deployment's configuration). An
//! event goes where EventBridge would send it (EventBridge User Guide, "Event patterns":
//! every field of the pattern must match; a field matches when its value equals one of
//! the listed values or starts with a listed `prefix`).

use serde_json::Value as Json;
use serde_norway::Value;
use warmpool_core::Config;

/// `template.yaml`, as deployed.
const TEMPLATE: &str = include_str!("../../../template.yaml");

/// One value of a pattern field.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Matcher {
    Exact(String),
    Prefix(String),
}

impl Matcher {
    fn matches(&self, v: &str) -> bool {
        match self {
            Self::Exact(x) => v == x,
            Self::Prefix(p) => v.starts_with(p),
        }
    }
}

/// One rule: the function it invokes and what it matches.
#[derive(Debug, Clone)]
struct Rule {
    /// The function's binary (`lifecycle`, `command-status`).
    function: String,
    sources: Vec<String>,
    detail_types: Vec<String>,
    /// Fields of `detail`, each with the values it may take.
    detail: Vec<(String, Vec<Matcher>)>,
}

/// The template's event rules.
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    rules: Vec<Rule>,
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Tagged(t) => t.value.as_str().map(|s| format!("{} {s}", t.tag)),
        _ => None,
    }
}

fn list(v: &Value) -> Vec<&Value> {
    match v {
        Value::Sequence(items) => items.iter().collect(),
        Value::Null => vec![],
        other => vec![other],
    }
}

impl Rules {
    /// The rules of `template.yaml`, for a deployment configured as `cfg`.
    ///
    /// # Errors
    /// A pattern the platform cannot apply: a value that is neither text nor a `prefix`,
    /// or an intrinsic the template's environment does not define.
    pub(crate) fn from_template(cfg: &Config) -> Result<Self, String> {
        let t: Value = serde_norway::from_str(TEMPLATE).map_err(|e| format!("template.yaml is not YAML: {e}"))?;
        // The template's expressions for the names the patterns match (as its Globals or a
        // function's environment sets the variable), to their values here.
        let envs = std::iter::once(&t["Globals"]["Function"])
            .chain(t["Resources"].as_mapping().into_iter().flatten().map(|(_, r)| &r["Properties"]))
            .map(|f| &f["Environment"]["Variables"]);
        let values = [
            ("POOL_ASG_NAME", &cfg.pool_group),
            ("USER_ASG_PREFIX", &cfg.user_group_prefix),
            ("USER_INIT_DOCUMENT", &cfg.user_init_document),
            ("POOL_PREP_DOCUMENT", &cfg.pool_prep_document),
        ];
        let mut names: Vec<(String, String)> = Vec::new();
        for env in envs {
            for (var, value) in values {
                names.extend(text(&env[var]).map(|e| (e, value.clone())));
            }
        }
        let resolve =
            |v: &Value| -> Result<String, String> {
                let expr = text(v).ok_or_else(|| format!("pattern value {v:?} is not text"))?;
                if !expr.starts_with('!') {
                    return Ok(expr);
                }
                names.iter().find(|(e, _)| *e == expr).map(|(_, value)| value.clone()).ok_or_else(|| {
                    format!("pattern value {expr} is none of the names the functions are configured with")
                })
            };
        let mut rules = Vec::new();
        for (_, r) in t["Resources"].as_mapping().into_iter().flatten() {
            let function = r["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap_or_default();
            for (_, e) in r["Properties"]["Events"].as_mapping().into_iter().flatten() {
                if e["Type"].as_str() != Some("EventBridgeRule") {
                    continue;
                }
                let p = &e["Properties"]["Pattern"];
                let strings = |v: &Value| list(v).into_iter().map(&resolve).collect::<Result<Vec<_>, _>>();
                let mut detail = Vec::new();
                for (field, values) in p["detail"].as_mapping().into_iter().flatten() {
                    let field = field.as_str().ok_or("a detail field that is not text")?.to_owned();
                    let matchers = list(values)
                        .into_iter()
                        .map(|v| match v.get("prefix") {
                            Some(prefix) => resolve(prefix).map(Matcher::Prefix),
                            None => resolve(v).map(Matcher::Exact),
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    detail.push((field, matchers));
                }
                rules.push(Rule {
                    function: function.to_owned(),
                    sources: strings(&p["source"])?,
                    detail_types: strings(&p["detail-type"])?,
                    detail,
                });
            }
        }
        Ok(Self { rules })
    }

    /// The functions (binaries) whose rules match the event: none, or (with the
    /// template's rules) one.
    pub(crate) fn targets(&self, source: &str, detail_type: &str, detail: &Json) -> Vec<&str> {
        self.rules
            .iter()
            .filter(|r| r.sources.iter().any(|s| s == source) && r.detail_types.iter().any(|d| d == detail_type))
            .filter(|r| {
                r.detail.iter().all(|(field, matchers)| {
                    detail.get(field).and_then(Json::as_str).is_some_and(|v| matchers.iter().any(|m| m.matches(v)))
                })
            })
            .map(|r| r.function.as_str())
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::Rules;
    use crate::fixture;

    #[test]
    fn the_templates_rules_route_as_event_bridge_would() {
        let cfg = fixture::config(&["subnet-a".to_owned()], &[]);
        let rules = Rules::from_template(&cfg).unwrap();
        let asg = |t: &str, group: &str| rules.targets("aws.autoscaling", t, &json!({"AutoScalingGroupName": group}));
        let user = cfg.user_group("u-1");
        assert_eq!(asg("EC2 Instance Launch Successful", &user), ["lifecycle"]);
        assert_eq!(asg("EC2 Instance Launch Unsuccessful", &user), ["lifecycle"]);
        assert_eq!(asg("EC2 Instance-launch Lifecycle Action", &cfg.pool_group), ["lifecycle"]);
        assert_eq!(asg("EC2 Instance Launch Successful", &cfg.pool_group), ["lifecycle"], "the pool's too");
        assert!(asg("EC2 Instance Launch Successful", "someone-elses-group").is_empty());
        assert!(asg("EC2 Instance Terminate Successful", &user).is_empty());
        let ssm = |t: &str, doc: &str| rules.targets("aws.ssm", t, &json!({"document-name": doc}));
        let (status, invocation) =
            ("EC2 Command Status-change Notification", "EC2 Command Invocation Status-change Notification");
        assert_eq!(ssm(status, &cfg.user_init_document), ["command-status"]);
        assert_eq!(ssm(invocation, &cfg.user_init_document), ["command-status"]);
        assert_eq!(ssm(invocation, &cfg.pool_prep_document), ["command-status"]);
        assert!(ssm(status, &cfg.pool_prep_document).is_empty(), "the pool-prep rule takes invocations only");
        assert!(ssm(invocation, "AWS-RunShellScript").is_empty());
    }
}
