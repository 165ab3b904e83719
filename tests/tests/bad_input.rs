//! Bad input never panics, never loops, and never reaches a host except as a
//! validated SSM document parameter (property tests over arbitrary input).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Context, LambdaEvent};
use proptest::prelude::*;
use serde_json::{Value, json};
use warmpool_core::Config;
use warmpool_sim::{SimCloud, fixture};

fn block_on<T>(f: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(f)
}

fn sqs_event(bodies: &[String]) -> LambdaEvent<SqsEvent> {
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| json!({"messageId": format!("m-{i}"), "body": b, "attributes": {"MessageGroupId": format!("g-{i}")}}))
        .collect();
    LambdaEvent::new(serde_json::from_value(json!({ "Records": records })).unwrap(), Context::default())
}

/// Only plain ids and numbers may reach the host, and only as document parameters.
fn assert_only_validated_parameters(cloud: &SimCloud) {
    for request in cloud.sent_commands() {
        for (name, values) in &request.parameters {
            for v in values {
                let ok = match name.as_str() {
                    "executionTimeout" => !v.is_empty() && v.chars().all(|c| c.is_ascii_digit()),
                    _ => {
                        v.len() <= 64
                            && v.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
                            && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                    }
                };
                assert!(ok, "parameter {name}={v:?} reached SendCommand");
            }
        }
        assert!(request.comment.is_ascii() && !request.comment.contains(['$', '`', ';', '|']));
    }
}

/// Runs a signup batch, then the lifecycle handler on every user group's instance, so
/// that whatever the bodies were, their SendCommand requests exist and can be checked.
async fn signup_and_init(cloud: &SimCloud, cfg: &Config, bodies: &[String]) -> Vec<String> {
    let response = warmpool_signup::handler(cloud, cfg, sqs_event(bodies)).await.unwrap();
    for (group, ids) in cloud.snapshot().groups {
        if group.starts_with(&cfg.user_group_prefix) {
            for id in ids {
                let e = json!({"detail-type": "EC2 Instance Launch Successful", "source": "aws.autoscaling",
                    "detail": {"AutoScalingGroupName": group, "EC2InstanceId": id}});
                let event: EventBridgeEvent<Value> = serde_json::from_value(e).unwrap();
                let _ = warmpool_lifecycle::handler(cloud, cfg, LambdaEvent::new(event, Context::default())).await;
            }
        }
    }
    response.batch_item_failures.into_iter().map(|f| f.item_identifier).collect()
}

fn nasty_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-zA-Z0-9_-]{1,64}",
        "[ -~]{0,80}",
        Just("$(reboot)".to_owned()),
        Just("u-1; curl x | sh".to_owned()),
        Just("u-1`id`".to_owned()),
        Just("ü-1".to_owned()),
        Just("u-1\n".to_owned()),
        Just("-rf".to_owned()),
        Just("x".repeat(65)),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        nasty_string().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(nasty_string(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn signup_body() -> impl Strategy<Value = String> {
    prop_oneof![
        // Well-formed shape, arbitrary field values.
        (nasty_string(), nasty_string())
            .prop_map(|(u, s)| json!({"kind": "signup", "user_id": u, "signup_id": s}).to_string()),
        nasty_string().prop_map(|u| json!({"kind": "delete", "user_id": u}).to_string()),
        // Wrong types and shapes.
        json_value().prop_map(|v| v.to_string()),
        (json_value(), json_value()).prop_map(|(u, s)| json!({"user_id": u, "signup_id": s}).to_string()),
        // Arbitrary text and huge bodies.
        any::<String>(),
        (1_000usize..300_000).prop_map(|n| format!("{{\"user_id\":\"{}\",\"signup_id\":\"s\"}}", "a".repeat(n))),
    ]
}

fn is_valid(body: &str) -> bool {
    warmpool_core::domain::SignupMessage::parse(body).is_ok()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn signup_batches_never_panic_and_only_invalid_records_fail(bodies in prop::collection::vec(signup_body(), 1..6)) {
        let (failed, cloud) = block_on(async {
            // Detaches that end within signup's wait: a longer one fails a valid record
            // for a retry, which is timing, not input.
            let model = warmpool_sim::CloudModel { detach_s: (2.0, 6.0), ..warmpool_sim::CloudModel::default() };
            let (cloud, cfg) = fixture::cloud_with_pool_and_model(8, model);
            let failed = signup_and_init(&cloud, &cfg, &bodies).await;
            (failed, cloud)
        });
        let dead = cloud.snapshot().dead_letters;
        for (i, body) in bodies.iter().enumerate() {
            let id = format!("m-{i}");
            let shown = body.chars().take(100).collect::<String>();
            // An invalid message is moved to the dead-letter queue at once, never silently
            // dropped and never retried; a valid one is processed, or, for a delete that
            // is not the user's, dead-lettered too.
            prop_assert!(!failed.contains(&id), "record {} failed: {:?}", i, shown);
            if !is_valid(body) {
                prop_assert!(dead.contains(body), "record {} not dead-lettered: {:?}", i, shown);
            } else if !body.contains("delete") {
                prop_assert!(!dead.contains(body), "record {} dead-lettered: {:?}", i, shown);
            }
        }
        assert_only_validated_parameters(&cloud);
    }

    #[test]
    fn arbitrary_events_never_panic(detail_type in prop_oneof![
            Just("EC2 Instance Launch Successful".to_owned()),
            Just("EC2 Instance-launch Lifecycle Action".to_owned()),
            Just("EC2 Command Status-change Notification".to_owned()),
            Just("EC2 Command Invocation Status-change Notification".to_owned()),
            nasty_string(),
        ],
        detail in json_value(),
        known_fields in json_value()) {
        block_on(async {
            let (cloud, cfg) = fixture::cloud_with_pool(2);
            // Mix arbitrary values into the fields the handlers read.
            let mut d = detail.clone();
            if let (Value::Object(m), Value::Object(extra)) = (&mut d, &known_fields) {
                for (k, v) in extra { m.insert(k.clone(), v.clone()); }
            }
            for field in ["AutoScalingGroupName", "EC2InstanceId", "LifecycleTransition", "command-id",
                          "document-name", "instance-id", "status", "parameters"] {
                if let Value::Object(m) = &mut d { m.entry(field).or_insert_with(|| known_fields.clone()); }
            }
            for payload in [detail.clone(), d] {
                let e = json!({"detail-type": detail_type, "source": "aws.autoscaling", "detail": payload});
                let event: EventBridgeEvent<Value> = serde_json::from_value(e).unwrap();
                let _ = warmpool_lifecycle::handler(&cloud, &cfg, LambdaEvent::new(event.clone(), Context::default())).await;
                let _ = warmpool_command_status::handler(&cloud, &cfg, LambdaEvent::new(event, Context::default())).await;
            }
            assert_only_validated_parameters(&cloud);
        });
    }
}

/// Values that must never be acted on as they are: shell, control characters, unicode,
/// overlong, and values of the wrong JSON type.
fn hostile_values() -> Vec<Value> {
    vec![
        json!("$(reboot)"),
        json!("u-1001; curl x | sh"),
        json!("i-0a1b2c3d4e5f60001\n"),
        json!("ü-1001"),
        json!("x".repeat(300)),
        json!(""),
        json!(null),
        json!(42),
        json!(["u-1001", "u-1002"]),
        json!({"nested": "$(id)"}),
    ]
}

/// Every leaf under `detail`, as a JSON pointer.
fn leaf_pointers(v: &Value, at: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => m
            .iter()
            .for_each(|(k, x)| leaf_pointers(x, &format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out)),
        Value::Array(a) => a.iter().enumerate().for_each(|(i, x)| leaf_pointers(x, &format!("{at}/{i}"), out)),
        _ => out.push(at.to_owned()),
    }
}

/// The sample events in `events/lifecycle` and `events/command-status`, each made real
/// (its group, instance and command those of a user just signed up on the in-memory
/// cloud), then one leaf of its `detail` at a time replaced by each hostile value: cases
/// that pass the routing and reach the flow. Each runs under a timeout (never loops);
/// the oracle does not use the parsers under test: nothing panics, only plain ids reach
/// a host, no instance ends in two groups or outside every group, and the user's record
/// stays the user's.
#[test]
fn sample_events_with_one_hostile_field_reach_the_flow_and_do_no_harm() {
    let dir = warmpool_tests::root().join("events");
    let mut samples = Vec::new();
    for sub in ["lifecycle", "command-status"] {
        for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            samples.push((
                sub,
                path.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&path).unwrap(),
            ));
        }
    }
    samples.sort();
    let signup = std::fs::read_to_string(dir.join("signup/valid.json")).unwrap();
    let (mut cases, mut reached) = (0, 0);
    for (sub, name, text) in &samples {
        let base: Value = serde_json::from_str(text).unwrap();
        let mut pointers = Vec::new();
        leaf_pointers(&base["detail"], "/detail", &mut pointers);
        for pointer in &pointers {
            for hostile in hostile_values() {
                cases += 1;
                let calls = block_on(async {
                    let (cloud, cfg) = fixture::cloud_with_pool(3);
                    let sqs: SqsEvent = serde_json::from_str(&signup).unwrap();
                    warmpool_signup::handler(&cloud, &cfg, LambdaEvent::new(sqs, Context::default())).await.unwrap();
                    let snap = cloud.snapshot();
                    let group = cfg.user_group("u-1001");
                    let (instance, command) =
                        (snap.groups[&group][0].clone(), snap.tags[&group]["warmpool:command-id"].clone());
                    let pool_member = snap.groups[&cfg.pool_group][0].clone();
                    let real = text
                        .replace(
                            "i-0a1b2c3d4e5f60001",
                            if name.starts_with("prep") || name.starts_with("pool") { &pool_member } else { &instance },
                        )
                        .replace("e8d3c0e4-71f7-4491-898f-c9b35bee5f3b", &command);
                    let mut event: Value = serde_json::from_str(&real).unwrap();
                    *event.pointer_mut(pointer).unwrap() = hostile.clone();
                    let before: u64 = cloud.snapshot().calls.values().sum();
                    let event: EventBridgeEvent<Value> = serde_json::from_value(event).unwrap();
                    let run = async {
                        let e = LambdaEvent::new(event, Context::default());
                        if *sub == "lifecycle" {
                            let _ = warmpool_lifecycle::handler(&cloud, &cfg, e).await;
                        } else {
                            let _ = warmpool_command_status::handler(&cloud, &cfg, e).await;
                        }
                    };
                    let limit = std::time::Duration::from_mins(15);
                    assert!(
                        tokio::time::timeout(limit, run).await.is_ok(),
                        "{name} {pointer}={hostile}: still running after {limit:?}"
                    );
                    assert_only_validated_parameters(&cloud);
                    let after = cloud.snapshot();
                    assert!(
                        after.in_two_groups.is_empty() && after.outside.is_empty(),
                        "{name} {pointer}={hostile}: {after:?}"
                    );
                    let owner = after.tags.get(&group).and_then(|t| t.get("warmpool:user-id")).cloned();
                    assert_eq!(owner.as_deref(), Some("u-1001"), "{name} {pointer}={hostile}: the user's record");
                    after.calls.values().sum::<u64>() - before
                });
                if calls > 0 {
                    reached += 1;
                }
            }
        }
    }
    println!(
        "bad input: {cases} cases from {} sample events, {reached} reached the flow (made AWS calls)",
        samples.len()
    );
    assert!(reached * 3 > cases, "most cases must get past the routing: {reached} of {cases}");
}
