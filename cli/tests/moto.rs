//! The operator's commands against a stack on the wire: moto holds a stack whose outputs
//! name a pool group, a user's group and the six queues, and `warmpool status`,
//! `signup` and `delete` run through the functions' SDK adapters (and, once, as the
//! built binary, as an operator types them). Started by `make test` with the project's
//! moto server (`scripts/with-moto.sh`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

#[path = "../../shared/aws/tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;

use aws_sdk_autoscaling::types::{LaunchTemplateSpecification, Tag};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use support::{moto_state, unique};
use warmpool_aws::AwsCloud;
use warmpool_cli::operate;
use warmpool_core::domain::{Id, SignupMessage, UserRecord, UserState};
use warmpool_core::flow::sizer_record::SizerRecord;
use warmpool_core::operator::{self, Deployment, MessageKind};

/// A tag of an Auto Scaling group, not propagated to its instances.
fn group_tag(group: &str, key: &str, value: &str) -> Tag {
    Tag::builder()
        .resource_id(group)
        .resource_type("auto-scaling-group")
        .key(key)
        .value(value)
        .propagate_at_launch(false)
        .build()
}

/// A deployment in moto: a pool group of `pool`, one ready user, the six queues, and a
/// stack whose outputs name them. Returns the stack name and the SQS client.
async fn stack(test: &str, pool: i32) -> (String, aws_config::SdkConfig) {
    let state = moto_state();
    let sdk = support::sdk(&state).await;
    let (asg, sqs) = (aws_sdk_autoscaling::Client::new(&sdk), aws_sdk_sqs::Client::new(&sdk));
    let id = unique(test);
    let template = || {
        LaunchTemplateSpecification::builder().launch_template_id(&state.launch_template_id).version("$Latest").build()
    };
    let pool_group = format!("{id}-pool");
    asg.create_auto_scaling_group()
        .auto_scaling_group_name(&pool_group)
        .launch_template(template())
        .min_size(0)
        .max_size(10)
        .desired_capacity(pool)
        .vpc_zone_identifier(state.subnets.join(","))
        .send()
        .await
        .unwrap();
    // A ready user, as the functions leave one: the record in the group's tags.
    let prefix = format!("{id}_user_");
    let user_group = format!("{prefix}u-ready");
    asg.create_auto_scaling_group()
        .auto_scaling_group_name(&user_group)
        .launch_template(template())
        .min_size(0)
        .max_size(1)
        .desired_capacity(0)
        .vpc_zone_identifier(state.subnets.join(","))
        .send()
        .await
        .unwrap();
    // Signed up a minute ago, ready 20 s later.
    let now_ms =
        u64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()).unwrap();
    let mut record =
        UserRecord::new(&Id::parse("u", "u-ready").unwrap(), &Id::parse("s", "s-ready").unwrap(), now_ms - 60_000);
    record.state = UserState::Ready;
    record.ready_at_ms = Some(now_ms - 40_000);
    record.updated_at_ms = now_ms - 40_000;
    let tags: Vec<Tag> = record.to_tags().into_iter().map(|(k, v)| group_tag(&user_group, &k, &v)).collect();
    asg.create_or_update_tags().set_tags(Some(tags)).send().await.unwrap();
    // The pool-sizer's last decision, as it leaves one on the pool group: 30 s ago.
    let size = u32::try_from(pool).unwrap();
    let decision = SizerRecord {
        at_ms: now_ms - 30_000,
        rate_per_h: 30.0,
        refill_s: 570,
        computed: size,
        desired: size,
        warm: None,
    };
    let tag = group_tag(&pool_group, warmpool_core::domain::tag::SIZER, &decision.encode());
    asg.create_or_update_tags().tags(tag).send().await.unwrap();
    let mut urls = BTreeMap::new();
    for (output, name, fifo) in [
        ("SignupQueueUrl", "signup", true),
        ("SignupDeadLetterQueueUrl", "signup-dlq", true),
        ("RedriveQueueUrl", "redrive", false),
        ("RedriveDeadLetterQueueUrl", "redrive-dlq", false),
        ("ReadyQueueUrl", "ready", true),
        ("ReadyDeadLetterQueueUrl", "ready-dlq", true),
    ] {
        let mut create = sqs.create_queue().queue_name(format!("{id}-{name}{}", if fifo { ".fifo" } else { "" }));
        if fifo {
            create = create.attributes(QueueAttributeName::FifoQueue, "true");
        }
        urls.insert(output, create.send().await.unwrap().queue_url().unwrap().to_owned());
    }
    let mut outputs = serde_json::Map::new();
    for (k, v) in [
        ("PoolGroupName", pool_group.clone()),
        ("UserGroupPrefix", prefix),
        ("LaunchTemplateId", state.launch_template_id.clone()),
        ("ClaimParameterPrefix", format!("/{id}/claims")),
    ]
    .into_iter()
    .chain(urls)
    {
        outputs.insert(k.to_owned(), serde_json::json!({ "Value": v }));
    }
    let body = serde_json::json!({
        "Parameters": {
            "ReconcileStallSeconds": { "Type": "Number", "Default": "120" },
            "PoolSizing": { "Type": "String", "Default": "adaptive" },
            "PoolWarmTier": { "Type": "String", "Default": "stopped" },
        },
        "Resources": { "Marker": { "Type": "AWS::SQS::Queue", "Properties": { "QueueName": format!("{id}-marker") } } },
        "Outputs": outputs,
    });
    let cfn = aws_sdk_cloudformation::Client::new(&sdk);
    let stack = format!("stack-{id}");
    cfn.create_stack().stack_name(&stack).template_body(body.to_string()).send().await.unwrap();
    (stack, sdk)
}

async fn signup_queue_messages(sdk: &aws_config::SdkConfig, dep: &Deployment) -> Vec<aws_sdk_sqs::types::Message> {
    aws_sdk_sqs::Client::new(sdk)
        .receive_message()
        .queue_url(&dep.signup_queue_url)
        .max_number_of_messages(10)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap()
        .messages()
        .to_vec()
}

#[tokio::test]
async fn moto_operator_status_reads_the_stack_and_reports_pool_users_and_queues() {
    let (stack, sdk) = stack("status", 2).await;
    let dep = operate::deployment(&sdk, &stack).await.unwrap();
    assert_eq!(dep.stall_s, 120, "the stack's ReconcileStallSeconds");
    assert!(dep.signup_queue_url.ends_with("-signup.fifo"), "{dep:?}");
    let cloud = AwsCloud::for_operator(&sdk, &dep.claim_prefix);
    let clean = operator::status(&cloud, &dep).await.unwrap();
    assert_eq!(clean.pool.desired, 2);
    assert_eq!(clean.pool.by_state.values().sum::<u32>(), 2, "{:?}", clean.pool);
    assert_eq!(clean.users.total, 1);
    assert_eq!(clean.users.by_state["ready"].0, 1);
    assert!(clean.stalled.is_empty() && clean.claims.is_empty());
    let sizer = clean.pool.sizer.as_ref().expect("the pool-sizer's decision, from the pool group's tag");
    assert_eq!((sizer.desired, sizer.refill_s), (2, 570));
    assert!(!clean.pool.sizer_stale && !clean.pool.draining);
    assert_eq!(clean.queues.len(), 6);
    // (Other tests on the same moto server leave instances of the launch template outside
    // every group: orphans to this stack too, so `needs_attention` is not asserted clean.)
    assert!(clean.queues.iter().all(|q| q.depth.visible + q.depth.in_flight == 0), "{}", clean.render());
    // A dead letter: status says so, and the command's exit status is 2.
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    sqs.send_message()
        .queue_url(&dep.signup_dlq_url)
        .message_body("{}")
        .message_group_id("g")
        .message_deduplication_id("d")
        .send()
        .await
        .unwrap();
    let flagged = operator::status(&cloud, &dep).await.unwrap();
    let dlq = flagged.queues.iter().find(|q| q.name == "signup DLQ").unwrap();
    assert_eq!(dlq.depth.visible + dlq.depth.in_flight, 1);
    assert!(flagged.needs_attention());
    // Read-only: the same look twice sees the same pool and users (ages aside).
    let again = operator::status(&cloud, &dep).await.unwrap();
    let counts = |s: &operator::Status| -> Vec<(String, u32)> {
        s.users.by_state.iter().map(|(k, v)| (k.clone(), v.0)).collect()
    };
    assert_eq!((&again.pool, counts(&again)), (&flagged.pool, counts(&flagged)));
}

#[tokio::test]
async fn moto_operator_signup_and_delete_send_one_well_formed_message_however_often_repeated() {
    let (stack, sdk) = stack("send", 0).await;
    let dep = operate::deployment(&sdk, &stack).await.unwrap();
    let cloud = AwsCloud::for_operator(&sdk, &dep.claim_prefix);
    for _ in 0..3 {
        operate::send(&cloud, &dep, MessageKind::Signup, "u-new", None, None).await.unwrap();
    }
    let received = signup_queue_messages(&sdk, &dep).await;
    assert_eq!(received.len(), 1, "FIFO deduplication drops the repeats: {received:?}");
    let attributes = received[0].attributes().unwrap();
    assert_eq!(attributes[&MessageSystemAttributeName::MessageGroupId], "u-new");
    let parsed = SignupMessage::parse(received[0].body().unwrap()).unwrap();
    assert!(matches!(parsed, SignupMessage::Signup { ref user_id, .. } if user_id.as_str() == "u-new"), "{parsed:?}");
    // A delete names the user's own signup, read from their record.
    for _ in 0..2 {
        operate::send(&cloud, &dep, MessageKind::Delete, "u-ready", None, None).await.unwrap();
    }
    let received = signup_queue_messages(&sdk, &dep).await;
    let deletes: Vec<SignupMessage> = received
        .iter()
        .map(|m| SignupMessage::parse(m.body().unwrap()).unwrap())
        .filter(|m| matches!(m, SignupMessage::Delete { .. }))
        .collect();
    assert_eq!(deletes.len(), 1, "{received:?}");
    assert!(matches!(&deletes[0], SignupMessage::Delete { signup_id, .. } if signup_id.as_str() == "s-ready"));
    // A user with no group: nothing to delete, nothing sent.
    let err = operate::send(&cloud, &dep, MessageKind::Delete, "u-nobody", None, None).await.unwrap_err();
    assert!(err.to_string().contains("no group"), "{err}");
}

#[test]
fn moto_operator_the_status_command_prints_the_table_an_operator_sees() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (stack, _) = runtime.block_on(stack("command", 3));
    let state = moto_state();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_warmpool"))
        .args(["status", "--stack", &stack])
        .env("AWS_ENDPOINT_URL", &state.endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("$ warmpool status --stack {stack}\n{stdout}");
    // 0, or 2 when other tests' instances outside every group read as orphans.
    assert!(matches!(out.status.code(), Some(0 | 2)), "exit {:?}: {stderr}", out.status.code());
    assert!(stdout.contains("desired 3") && stdout.contains("ready") && stdout.contains("signup DLQ"), "{stdout}");
    assert!(
        stdout.contains("30.0 signups/h, refill 570 s; computed 3, set desired 3"),
        "the sizer's decision: {stdout}"
    );
    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_warmpool"))
        .args(["status", "--stack", "no-such-stack"])
        .env("AWS_ENDPOINT_URL", &state.endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot describe stack no-such-stack"));
}

/// The pool's (min, max, desired), its warm pool's (min, max prepared), and its tags.
async fn pool_of(sdk: &aws_config::SdkConfig, dep: &Deployment) -> ((i32, i32, i32), Option<(i32, i32)>, Vec<String>) {
    let asg = aws_sdk_autoscaling::Client::new(sdk);
    let out = asg.describe_auto_scaling_groups().auto_scaling_group_names(&dep.pool_group).send().await.unwrap();
    let g = &out.auto_scaling_groups()[0];
    let sizes = (g.min_size().unwrap(), g.max_size().unwrap(), g.desired_capacity().unwrap());
    let tags = g.tags().iter().filter_map(|t| t.key().map(str::to_owned)).collect();
    let warm = asg.describe_warm_pool().auto_scaling_group_name(&dep.pool_group).send().await.unwrap();
    let warm = warm
        .warm_pool_configuration()
        .map(|w| (w.min_size().unwrap_or_default(), w.max_group_prepared_capacity().unwrap_or_default()));
    (sizes, warm, tags)
}

#[tokio::test]
async fn moto_operator_drain_and_resume_are_safe_to_repeat() {
    let (stack, sdk) = stack("drain", 2).await;
    let dep = operate::deployment(&sdk, &stack).await.unwrap();
    assert_eq!(dep.warm_pool_state.as_deref(), Some("Stopped"), "from the stack's PoolWarmTier");
    aws_sdk_autoscaling::Client::new(&sdk)
        .put_warm_pool()
        .auto_scaling_group_name(&dep.pool_group)
        .pool_state(aws_sdk_autoscaling::types::WarmPoolState::Stopped)
        .min_size(3)
        .max_group_prepared_capacity(3)
        .send()
        .await
        .unwrap();
    let cloud = AwsCloud::for_operator(&sdk, &dep.claim_prefix);
    let before = pool_of(&sdk, &dep).await;
    assert_eq!((before.0, before.1), ((0, 10, 2), Some((3, 3))));
    for n in 0..2 {
        let report = operator::drain(&cloud, &dep, 60, 1).await.unwrap();
        assert_eq!(report.marked_now, n == 0, "marked by the first drain only");
        assert_eq!(report.saved.encode(), "0,10,2;warm=3,3", "the sizes before the first drain, kept");
        let (sizes, warm, tags) = pool_of(&sdk, &dep).await;
        assert_eq!((sizes, warm), ((0, 0, 0), Some((0, 0))), "both tiers at zero after drain {n}");
        assert!(tags.iter().any(|t| t == "warmpool:draining"), "{tags:?}");
    }
    for n in 0..2 {
        let resumed = operator::resume(&cloud, &dep).await.unwrap();
        assert_eq!(resumed.is_some(), n == 0, "the second resume finds nothing to do");
        let (sizes, warm, tags) = pool_of(&sdk, &dep).await;
        assert_eq!((sizes, warm), (before.0, before.1), "as before the drain, after resume {n}");
        assert!(!tags.iter().any(|t| t == "warmpool:draining"), "{tags:?}");
    }
}

#[tokio::test]
async fn moto_operator_replay_dlq_shows_without_taking_and_redrives_once() {
    let (stack, sdk) = stack("replay", 0).await;
    let dep = operate::deployment(&sdk, &stack).await.unwrap();
    let cloud = AwsCloud::for_operator(&sdk, &dep.claim_prefix);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    for (i, user) in ["u-a", "u-b"].iter().enumerate() {
        sqs.send_message()
            .queue_url(&dep.signup_dlq_url)
            .message_body(format!(r#"{{"kind":"signup","user_id":"{user}","signup_id":"s-{i}"}}"#))
            .message_group_id(*user)
            .message_deduplication_id(format!("d-{i}"))
            .send()
            .await
            .unwrap();
    }
    sqs.send_message()
        .queue_url(&dep.redrive_dlq_url)
        .message_body(r#"{"kind":"redrive","user_id":"u-c"}"#)
        .send()
        .await
        .unwrap();
    // Two looks see the same: a look takes nothing.
    for _ in 0..2 {
        let letters = operator::look(&cloud, &dep, None).await.unwrap();
        let counts: Vec<(&str, usize)> = letters.iter().map(|l| (l.queue.name, l.messages.len())).collect();
        assert_eq!(counts, vec![("signup", 2), ("re-drive", 1), ("ready", 0)]);
    }
    let moved = operator::redrive(&cloud, &dep, None, 1000).await.unwrap();
    assert_eq!(moved, vec![("signup", 2), ("re-drive", 1), ("ready", 0)]);
    let back = signup_queue_messages(&sdk, &dep).await;
    let mut groups: Vec<String> =
        back.iter().map(|m| m.attributes().unwrap()[&MessageSystemAttributeName::MessageGroupId].clone()).collect();
    groups.sort();
    assert_eq!(groups, ["u-a", "u-b"], "each back in its own message group");
    assert!(back.iter().all(|m| SignupMessage::parse(m.body().unwrap()).is_ok()), "bodies unchanged");
    let redrives =
        sqs.receive_message().queue_url(&dep.redrive_queue_url).max_number_of_messages(10).send().await.unwrap();
    assert_eq!(redrives.messages().len(), 1);
    // Again: the dead-letter queues are empty, nothing more is sent.
    assert_eq!(
        operator::redrive(&cloud, &dep, None, 1000).await.unwrap(),
        vec![("signup", 0), ("re-drive", 0), ("ready", 0)]
    );
    assert!(operator::look(&cloud, &dep, Some("signup")).await.unwrap()[0].messages.is_empty());
}
