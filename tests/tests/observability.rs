//! The template's dashboard and alarms read metrics that exist: every `warmpool` metric
//! they name is one the code writes (by a kind of [`Metric`] the flow constructs), with
//! dimensions it writes; every Auto Scaling group metric is one the pool group collects;
//! every SQS metric is SQS's, on a queue of the template. And the alarms the operator
//! needs are there, each notifying the optional topic.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value as Json;
use serde_norway::Value;
use warmpool_core::metrics::{Metric, NAMESPACE};
use warmpool_tests::{resources_of_type, root, template};

/// A metric as a dashboard or an alarm names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct MetricRef {
    namespace: String,
    name: String,
    /// Dimension name to value (the value as written: a literal, `${X.Attr}`, `!GetAtt ...`).
    dimensions: BTreeMap<String, String>,
    /// Where: the alarm's logical id, or "dashboard".
    at: String,
}

/// A short-form intrinsic as text (`!Ref X`, `!GetAtt Y.QueueName`), or the string.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Tagged(t) => format!("{} {}", t.tag, t.value.as_str().unwrap_or_default()),
        other => format!("{other:?}"),
    }
}

fn alarm_refs(t: &Value) -> Vec<MetricRef> {
    resources_of_type(t, "AWS::CloudWatch::Alarm")
        .into_iter()
        .map(|(id, r)| {
            let p = &r["Properties"];
            let dimensions = p["Dimensions"]
                .as_sequence()
                .into_iter()
                .flatten()
                .map(|d| (d["Name"].as_str().unwrap().to_owned(), text(&d["Value"])))
                .collect();
            MetricRef {
                namespace: p["Namespace"].as_str().expect("alarm has a Namespace").to_owned(),
                name: p["MetricName"].as_str().expect("alarm has a MetricName").to_owned(),
                dimensions,
                at: id,
            }
        })
        .collect()
}

/// The dashboard's body, its `${...}` substitutions kept as text inside the JSON strings.
fn dashboard(t: &Value) -> Json {
    let dashboards = resources_of_type(t, "AWS::CloudWatch::Dashboard");
    assert_eq!(dashboards.len(), 1, "one dashboard");
    let Value::Tagged(body) = &dashboards[0].1["Properties"]["DashboardBody"] else {
        panic!("DashboardBody is a !Sub of the JSON body")
    };
    assert_eq!(body.tag.to_string(), "!Sub");
    serde_json::from_str(body.value.as_str().unwrap()).expect("the dashboard body is JSON")
}

fn dashboard_refs(body: &Json) -> Vec<MetricRef> {
    let mut refs = Vec::new();
    for widget in body["widgets"].as_array().unwrap() {
        for row in widget["properties"]["metrics"].as_array().into_iter().flatten() {
            let row = row.as_array().unwrap();
            // A row is [namespace, name, dim, value, ..., {options}] or [{expression}].
            let strings: Vec<&str> = row.iter().filter_map(Json::as_str).collect();
            if strings.is_empty() {
                continue;
            }
            assert!(strings.len() >= 2 && strings.len().is_multiple_of(2), "a metric row of the dashboard: {row:?}");
            let dimensions = strings[2..].chunks(2).map(|kv| (kv[0].to_owned(), kv[1].to_owned())).collect();
            refs.push(MetricRef {
                namespace: strings[0].to_owned(),
                name: strings[1].to_owned(),
                dimensions,
                at: "dashboard".into(),
            });
        }
    }
    refs
}

/// The Rust sources under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// The variant's name, from its `Debug` form (`TimeToReady { .. }`, `Orphans(1)`).
fn variant(m: &Metric) -> String {
    format!("{m:?}").chars().take_while(char::is_ascii_alphanumeric).collect()
}

#[test]
fn every_warmpool_metric_named_is_written_by_the_flow_with_those_dimensions() {
    let t = template();
    let refs: Vec<MetricRef> = alarm_refs(&t).into_iter().chain(dashboard_refs(&dashboard(&t))).collect();
    let kinds: BTreeMap<&str, Metric> = Metric::every_kind().into_iter().map(|m| (m.parts().0, m)).collect();
    // Where each kind is constructed outside its own definition (the flow, the adapters).
    let code: String = sources(&root().join("shared"))
        .into_iter()
        .chain(sources(&root().join("functions")))
        .filter(|p| !p.ends_with("metrics.rs"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    let ours: Vec<&MetricRef> = refs.iter().filter(|r| r.namespace == NAMESPACE).collect();
    assert!(ours.len() >= 10, "the dashboard and alarms read the functions' metrics: {ours:?}");
    for r in ours {
        let metric = kinds
            .get(r.name.as_str())
            .unwrap_or_else(|| panic!("{}: no code writes the metric {} (known: {:?})", r.at, r.name, kinds.keys()));
        let written: BTreeSet<&str> = metric.parts().3.iter().map(|(k, _)| *k).collect();
        let named: BTreeSet<&str> = r.dimensions.keys().map(String::as_str).collect();
        // Every metric is written over no dimension too (see Metric::to_emf), or by all of its own.
        assert!(
            named.is_empty() || named == written,
            "{}: {} with dimensions {named:?}; written with {written:?}",
            r.at,
            r.name
        );
        let constructed = format!("Metric::{}", variant(metric));
        assert!(code.contains(&constructed), "{}: {} is declared but nothing records it ({constructed})", r.at, r.name);
    }
}

#[test]
fn every_auto_scaling_and_sqs_metric_named_exists_for_a_resource_of_the_template() {
    let t = template();
    let refs: Vec<MetricRef> = alarm_refs(&t).into_iter().chain(dashboard_refs(&dashboard(&t))).collect();
    let pool = &t["Resources"]["PoolGroup"]["Properties"];
    let collected: BTreeSet<String> = pool["MetricsCollection"][0]["Metrics"]
        .as_sequence()
        .expect("the pool group collects group metrics")
        .iter()
        .map(|m| m.as_str().unwrap().to_owned())
        .collect();
    let queues: BTreeSet<String> = resources_of_type(&t, "AWS::SQS::Queue").into_iter().map(|(id, _)| id).collect();
    // SQS's metrics (Amazon SQS Developer Guide, "Available CloudWatch metrics for Amazon SQS").
    let sqs = ["ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage", "NumberOfMessagesSent"];
    let mut seen = BTreeSet::new();
    for r in &refs {
        match r.namespace.as_str() {
            "AWS/AutoScaling" => {
                assert!(collected.contains(&r.name), "{}: {} is not collected by the pool group", r.at, r.name);
                let group = &r.dimensions["AutoScalingGroupName"];
                assert!(group == "${PoolGroup}" || group == "!Ref PoolGroup", "{}: {} of {group}", r.at, r.name);
            }
            "AWS/SQS" => {
                assert!(sqs.contains(&r.name.as_str()), "{}: {} is not an SQS metric", r.at, r.name);
                let value = &r.dimensions["QueueName"];
                let queue = value
                    .trim_start_matches("${")
                    .trim_start_matches("!GetAtt ")
                    .trim_end_matches('}')
                    .trim_end_matches(".QueueName");
                assert!(queues.contains(queue), "{}: {} of {value}, not a queue of the template", r.at, r.name);
                seen.insert(queue.to_owned());
            }
            ns => assert_eq!(ns, NAMESPACE, "{}: an unexpected namespace", r.at),
        }
    }
    assert_eq!(seen, queues, "the dashboard shows every queue");
}

#[test]
fn the_alarms_an_operator_needs_exist_and_notify_the_optional_topic() {
    let t = template();
    let alarms = resources_of_type(&t, "AWS::CloudWatch::Alarm");
    let refs = alarm_refs(&t);
    let on = |ns: &str, name: &str| refs.iter().filter(|r| r.namespace == ns && r.name == name).count();
    // Anything in a dead-letter queue (each of them), or sent to the on-failure destination.
    let dlqs = ["SignupDeadLetterQueue", "RedriveDeadLetterQueue", "ReadyDeadLetterQueue"];
    for q in dlqs {
        assert!(
            refs.iter()
                .any(|r| r.namespace == "AWS/SQS" && r.dimensions["QueueName"] == format!("!GetAtt {q}.QueueName")),
            "no alarm on {q}"
        );
    }
    assert_eq!(on(NAMESPACE, "FailedEvents"), 1, "the on-failure destination");
    assert_eq!(on("AWS/AutoScaling", "GroupInServiceInstances"), 1, "the pool at zero");
    assert_eq!(on(NAMESPACE, "TimeToReady"), 1, "time to ready p95");
    assert_eq!(on(NAMESPACE, "UsersFailed"), 1, "failed users");
    assert_eq!(on(NAMESPACE, "Orphans"), 1, "orphans found by the sweep");
    let ttr = &alarms.iter().find(|(_, a)| a["Properties"]["MetricName"] == "TimeToReady").unwrap().1["Properties"];
    assert_eq!(ttr["ExtendedStatistic"], "p95");
    assert_eq!(text(&ttr["Threshold"]), "!Ref TimeToReadyAlarmSeconds");
    assert!(ttr["Dimensions"].is_null(), "over every path: a cold user counts");
    let body = dashboard(&t);
    let on_dashboard: BTreeSet<String> = body["widgets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["type"] == "alarm")
        .flat_map(|w| w["properties"]["alarms"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_owned()))
        .collect();
    for (id, alarm) in &alarms {
        let p = &alarm["Properties"];
        for actions in ["AlarmActions", "OKActions"] {
            assert_eq!(
                format!("{:?}", p[actions]),
                format!("{:?}", alarm_actions()),
                "{id}'s {actions} notify AlarmTopicArn when it is set"
            );
        }
        assert!(p["AlarmDescription"].as_str().is_some_and(|d| d.len() > 80), "{id} says what to do");
        assert!(on_dashboard.contains(&format!("${{{id}.Arn}}")), "{id} is on the dashboard");
    }
}

/// `!If [AlarmTopic, [!Ref AlarmTopicArn], !Ref AWS::NoValue]`, parsed.
fn alarm_actions() -> Value {
    serde_norway::from_str("!If [AlarmTopic, [!Ref AlarmTopicArn], !Ref AWS::NoValue]").unwrap()
}
