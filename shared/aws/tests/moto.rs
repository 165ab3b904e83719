//! The SDK adapters on the wire, against the project's moto server
//! (`scripts/moto_server.py`, started by `make test`): the whole signup → lifecycle →
//! command-status flow through `AwsCloud`, plus claims, the cold path and
//! `GetCommandInvocation`.
//!
//! moto does not model the race semantics (it accepts a second detach, and an attach
//! of an instance in another group): those are tested on the in-memory cloud and the
//! error mapping with `aws-smithy-mocks`. Every test creates its own uniquely named
//! resources.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod support;

use std::collections::BTreeMap;

use aws_sdk_autoscaling::types::LaunchTemplateSpecification;
use support::{moto_state, unique};
use warmpool_aws::AwsCloud;
use warmpool_core::Config;
use warmpool_core::domain::{Id, SignupMessage};
use warmpool_core::events::{AsgEvent, CommandStatus, LaunchSuccessful, SsmEvent};
use warmpool_core::flow::acquire::Acquired;
use warmpool_core::flow::command_status::StatusOutcome;
use warmpool_core::flow::lifecycle::LifecycleOutcome;
use warmpool_core::flow::signup::{SignupOutcome, handle_message};
use warmpool_core::flow::{command_status, lifecycle};
use warmpool_core::ports::{AutoScaling, ClaimOutcome, Claims, RunCommand};

struct Env {
    sdk: aws_config::SdkConfig,
    cfg: Config,
    cloud: AwsCloud,
    asg: aws_sdk_autoscaling::Client,
    ssm: aws_sdk_ssm::Client,
    sqs: aws_sdk_sqs::Client,
}

const DOCUMENT: &str = r#"{
  "schemaVersion": "2.2",
  "description": "test",
  "parameters": {
    "UserId": {"type": "String", "allowedPattern": "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"},
    "SignupId": {"type": "String", "allowedPattern": "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"},
    "executionTimeout": {"type": "String", "default": "120"}
  },
  "mainSteps": [{"action": "aws:runShellScript", "name": "init", "inputs": {"runCommand": ["true"]}}]
}"#;

/// A pool of `pool` instances from the launch template, both documents, a ready queue,
/// and the configuration that names them.
async fn env(test: &str, pool: i32) -> Env {
    let state = moto_state();
    let sdk = support::sdk(&state).await;
    let asg = aws_sdk_autoscaling::Client::new(&sdk);
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let id = unique(test);
    let pool_name = format!("pool-{id}");
    asg.create_auto_scaling_group()
        .auto_scaling_group_name(&pool_name)
        .launch_template(
            LaunchTemplateSpecification::builder()
                .launch_template_id(&state.launch_template_id)
                .version("$Latest")
                .build(),
        )
        .min_size(0)
        .max_size(10)
        .desired_capacity(pool)
        .vpc_zone_identifier(state.subnets.join(","))
        .send()
        .await
        .unwrap();
    let (init, prep) = (format!("init-{id}"), format!("prep-{id}"));
    for name in [&init, &prep] {
        ssm.create_document()
            .name(name)
            .content(DOCUMENT)
            .document_type(aws_sdk_ssm::types::DocumentType::Command)
            .document_format(aws_sdk_ssm::types::DocumentFormat::Json)
            .send()
            .await
            .unwrap();
    }
    let queue = sqs
        .create_queue()
        .queue_name(format!("ready-{id}.fifo"))
        .attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .unwrap();
    let signups = sqs
        .create_queue()
        .queue_name(format!("signup-{id}.fifo"))
        .attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .unwrap();
    let redrives = sqs.create_queue().queue_name(format!("redrive-{id}")).send().await.unwrap();
    let rejects = sqs
        .create_queue()
        .queue_name(format!("signup-dlq-{id}.fifo"))
        .attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .unwrap();
    let vars: BTreeMap<&str, String> = BTreeMap::from([
        ("POOL_ASG_NAME", pool_name),
        ("POOL_LIFECYCLE_HOOK_NAME", "hook".to_owned()),
        ("USER_ASG_PREFIX", format!("user-{id}-")),
        ("LAUNCH_TEMPLATE_ID", state.launch_template_id.clone()),
        ("POOL_SUBNETS", state.subnets.join(",")),
        ("USER_INIT_DOCUMENT", init),
        ("POOL_PREP_DOCUMENT", prep),
        ("READY_QUEUE_URL", queue.queue_url().unwrap().to_owned()),
        ("SIGNUP_QUEUE_URL", signups.queue_url().unwrap().to_owned()),
        ("SIGNUP_DLQ_URL", rejects.queue_url().unwrap().to_owned()),
        ("REDRIVE_QUEUE_URL", redrives.queue_url().unwrap().to_owned()),
        ("CLAIM_PARAMETER_PREFIX", format!("/warmpool-{id}/claims")),
    ]);
    let cfg = Config::for_all(|k| vars.get(k).cloned()).unwrap();
    let cloud = AwsCloud::new(&sdk, &cfg);
    Env { sdk, cfg, cloud, asg, ssm, sqs }
}

impl Env {
    async fn members(&self, group: &str) -> Vec<String> {
        let g = self.cloud.describe_group(group).await.unwrap().expect("group exists");
        g.members.into_iter().map(|m| m.instance_id).collect()
    }

    async fn tags(&self, group: &str) -> BTreeMap<String, String> {
        self.cloud.describe_group(group).await.unwrap().expect("group exists").tags
    }

    async fn claim_holder(&self, instance: &str) -> Option<String> {
        let name = format!("{}/{instance}", self.cfg.claim_prefix);
        self.ssm.get_parameter().name(name).send().await.ok()?.parameter()?.value().map(str::to_owned)
    }
}

fn signup(user: &str) -> SignupMessage {
    SignupMessage::Signup { user_id: Id::parse("u", user).unwrap(), signup_id: Id::parse("s", "s-1").unwrap() }
}

#[tokio::test]
async fn moto_signup_to_ready_on_the_wire() {
    let e = env("flow", 2).await;
    let pool_before = e.members(&e.cfg.pool_group).await;
    assert_eq!(pool_before.len(), 2, "the pool launched from the launch template");

    // signup: create the user group, claim, detach (the pool refills), attach.
    let outcome = handle_message(&e.cloud, &e.cfg, &signup("u-1"), None).await.unwrap();
    let SignupOutcome::Acquired(Acquired::Warm { instance_id }) = outcome else { panic!("{outcome:?}") };
    assert!(pool_before.contains(&instance_id));
    let user_group = e.cfg.user_group("u-1");
    assert_eq!(e.members(&user_group).await, vec![instance_id.clone()]);
    let pool_after = e.members(&e.cfg.pool_group).await;
    assert_eq!(pool_after.len(), 2, "detach without decrement: the pool replaced it");
    assert!(!pool_after.contains(&instance_id));
    // (DescribeAutoScalingInstances is not checked here: moto keeps reporting the pool
    // after a detach and attach; the in-memory cloud covers `instance_membership`.)
    assert_eq!(e.claim_holder(&instance_id).await.as_deref(), Some("u-1"), "the claim record");
    let tags = e.tags(&user_group).await;
    assert_eq!((tags["warmpool:state"].as_str(), tags["warmpool:path"].as_str()), ("initializing", "warm"));
    assert_eq!(tags["warmpool:instance"], instance_id);

    // The attach brought its own user-init (SendCommand in signup); the attach's launch
    // event then finds it sent.
    let command_id = tags["warmpool:command-id"].clone();
    assert_eq!(tags["warmpool:command-instance"], instance_id);
    let launch = AsgEvent::LaunchSuccessful(LaunchSuccessful {
        auto_scaling_group_name: user_group.clone(),
        ec2_instance_id: instance_id.clone(),
        ..LaunchSuccessful::default()
    });
    assert_eq!(
        lifecycle::handle_event(&e.cloud, &e.cfg, &launch).await.unwrap(),
        LifecycleOutcome::Ignored { reason: "init already sent to this instance" }
    );
    assert_eq!(e.cloud.invocation_status(&command_id, &instance_id).await.unwrap(), "Success");
    assert!(matches!(
        e.cloud.invocation_status(&command_id, "i-00000000000000000").await,
        Err(warmpool_core::CloudError::InvocationDoesNotExist { .. })
    ));

    // command-status: ready message, state, claim released.
    let done = SsmEvent::Command(CommandStatus {
        command_id: command_id.clone(),
        document_name: e.cfg.user_init_document.clone(),
        parameters: BTreeMap::from([("UserId".to_owned(), vec!["u-1".to_owned()])]),
        status: "Success".into(),
        ..CommandStatus::default()
    });
    assert_eq!(
        command_status::handle_event(&e.cloud, &e.cfg, &done).await.unwrap(),
        StatusOutcome::Ready { instance_id: instance_id.clone() }
    );
    assert_eq!(e.tags(&user_group).await["warmpool:state"], "ready");
    assert_eq!(e.claim_holder(&instance_id).await, None);
    let received = e.sqs.receive_message().queue_url(&e.cfg.ready_queue_url).send().await.unwrap();
    let body: serde_json::Value = serde_json::from_str(received.messages()[0].body().unwrap()).unwrap();
    assert_eq!((body["user_id"].as_str(), body["instance_id"].as_str()), (Some("u-1"), Some(instance_id.as_str())));

    // A redelivered signup changes nothing.
    let again = handle_message(&e.cloud, &e.cfg, &signup("u-1"), None).await.unwrap();
    assert_eq!(again, SignupOutcome::AlreadyInProgress(warmpool_core::domain::UserState::Ready));
    assert_eq!(e.members(&user_group).await, vec![instance_id]);
    let _ = &e.sdk;
}

#[tokio::test]
async fn moto_claims_are_exclusive_until_released() {
    let e = env("claims", 0).await;
    assert_eq!(e.cloud.claim("i-0123456789abcdef0", "u-1").await.unwrap(), ClaimOutcome::Created);
    let held = e.cloud.claim("i-0123456789abcdef0", "u-2").await.unwrap();
    let ClaimOutcome::HeldBy(stale) = held else { panic!("a second claim must be refused: {held:?}") };
    assert_eq!((stale.owner.as_str(), stale.version), ("u-1", 1));
    assert!(stale.created_ms > 0, "the claim's time is its parameter's LastModifiedDate");
    // Two takeovers of the same stale claim: the first overwrite is version 2 and wins,
    // the second is version 3 and loses.
    assert!(e.cloud.take_over(&stale, "u-1").await.unwrap());
    assert!(!e.cloud.take_over(&stale, "u-1").await.unwrap());
    assert_eq!(e.cloud.claim_of("i-0123456789abcdef0").await.unwrap().map(|c| c.version), Some(3));
    // The init lock lives beside the claim: a lock of its own, not listed as a claim,
    // and released with it in one call.
    let lock = warmpool_core::ports::init_lock("i-0123456789abcdef0");
    assert_eq!(e.cloud.claim(&lock, "u-1").await.unwrap(), ClaimOutcome::Created);
    assert_eq!(e.cloud.claim(&lock, "u-1").await.unwrap().holder(), Some("u-1"));
    let listed: Vec<String> = e.cloud.list_claims().await.unwrap().into_iter().map(|c| c.instance_id).collect();
    assert_eq!(listed, ["i-0123456789abcdef0"]);
    e.cloud.release("i-0123456789abcdef0").await.unwrap();
    assert_eq!(e.cloud.claim_of(&lock).await.unwrap(), None, "released with the claim");
    e.cloud.release("i-0123456789abcdef0").await.unwrap();
    assert_eq!(e.cloud.claim("i-0123456789abcdef0", "u-2").await.unwrap(), ClaimOutcome::Created);
}

#[tokio::test]
async fn moto_empty_pool_takes_the_cold_path_and_delete_tears_down() {
    let e = env("cold", 0).await;
    let outcome = handle_message(&e.cloud, &e.cfg, &signup("u-2"), None).await.unwrap();
    assert_eq!(outcome, SignupOutcome::Acquired(Acquired::Cold));
    let group = e.cfg.user_group("u-2");
    let g = e.cloud.describe_group(&group).await.unwrap().unwrap();
    assert_eq!((g.min_size, g.max_size, g.desired_capacity), (0, 1, 1));
    assert_eq!(g.tags["warmpool:path"], "cold");
    // A second create of the same user's group is AlreadyExists, so the signup resumes.
    let again = handle_message(&e.cloud, &e.cfg, &signup("u-2"), None).await.unwrap();
    assert!(matches!(
        again,
        SignupOutcome::Acquired(Acquired::AlreadyAttached { .. }) | SignupOutcome::AlreadyInProgress(_)
    ));
    let delete =
        SignupMessage::Delete { user_id: Id::parse("u", "u-2").unwrap(), signup_id: Id::parse("s", "s-1").unwrap() };
    assert_eq!(handle_message(&e.cloud, &e.cfg, &delete, None).await.unwrap(), SignupOutcome::Deleted);
    assert!(e.cloud.describe_group(&group).await.unwrap().is_none());
    let _ = &e.asg;
}

/// The signup history the pool-sizer reads, `(minutes ago, signups)`, from a stubbed
/// CloudWatch: moto (5.2) speaks only CloudWatch's Query protocol and the SDK speaks
/// Smithy RPC v2 CBOR to it, so `GetMetricData` itself is tested against stubs
/// (`src/tests/cloudwatch.rs`); Auto Scaling stays moto's.
fn signup_history(now_ms: u64, minutes: &[(u64, u32)]) -> aws_sdk_cloudwatch::Client {
    use aws_sdk_cloudwatch::operation::get_metric_data::GetMetricDataOutput;
    use aws_sdk_cloudwatch::primitives::DateTime;
    use aws_sdk_cloudwatch::types::MetricDataResult;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    let points: Vec<(i64, f64)> = minutes
        .iter()
        .map(|(ago, n)| (i64::try_from((now_ms - ago * 60_000) / 60_000 * 60_000).unwrap(), f64::from(*n)))
        .collect();
    let rule = mock!(aws_sdk_cloudwatch::Client::get_metric_data).then_output(move || {
        GetMetricDataOutput::builder()
            .metric_data_results(
                MetricDataResult::builder()
                    .id("signups")
                    .set_timestamps(Some(points.iter().map(|(ms, _)| DateTime::from_millis(*ms)).collect()))
                    .set_values(Some(points.iter().map(|(_, v)| *v).collect()))
                    .build(),
            )
            .build()
    });
    mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, &[&rule])
}

#[tokio::test]
async fn moto_pool_sizer_reads_activities_and_sets_the_pool_size() {
    use warmpool_core::ports::Clock;
    let e = env("sizer", 2).await;
    // moto answers DescribeScalingActivities with no activities (the parsing of real
    // ones is covered with aws-smithy-mocks): the default refill time applies.
    assert_eq!(e.cloud.recent_launches(&e.cfg.pool_group).await.unwrap(), Vec::new());
    // With no signup at all the pool-sizer keeps the pool: one signup, eleven hours ago
    // (within the history it reads), is a history old enough to shrink it on.
    let cloud = e.cloud.clone().with_cloudwatch(signup_history(e.cloud.now_ms(), &[(660, 1)]));
    let d = warmpool_core::flow::sizer::size_pool(&cloud, &e.cfg).await.unwrap();
    assert_eq!((d.previous, d.desired, d.launches_seen), (2, e.cfg.sizer.min_size, 0));
    assert!((d.refill_s - f64::from(e.cfg.sizer.default_refill_s)).abs() < f64::EPSILON);
    let pool = e.cloud.describe_group(&e.cfg.pool_group).await.unwrap().unwrap();
    assert_eq!(pool.desired_capacity, e.cfg.sizer.min_size);
    // Its decision, on the pool group's tag through CreateOrUpdateTags and read back
    // from DescribeAutoScalingGroups as `warmpool status` reads it.
    let kept = warmpool_core::flow::sizer_record::kept(&pool).expect("the decision is recorded on the pool group");
    assert_eq!(kept, warmpool_core::flow::sizer_record::SizerRecord::of(&d, kept.at_ms));
}

/// The warm tier on the wire: `DescribeWarmPool` on a group without one is `None`;
/// the pool-sizer, configured for a stopped tier, sizes it with `PutWarmPool` (both
/// `MinSize` and `MaxGroupPreparedCapacity`, the state kept), reads it back, and a second
/// run finds it at its size (the skipped `PutWarmPool` itself is counted on the in-memory
/// cloud, not here). (moto keeps the configuration but no warm
/// instances: the tier's lifecycle is the in-memory cloud's, `tests/tests/warm_tier.rs`.)
#[tokio::test]
async fn moto_pool_sizer_sizes_the_warm_tier() {
    use warmpool_core::ports::{Clock, WarmPoolSize};
    let mut e = env("warmtier", 2).await;
    assert_eq!(e.cloud.describe_warm_pool(&e.cfg.pool_group).await.unwrap(), None, "no warm pool yet");
    // As the template creates it: stopped, empty.
    e.cloud
        .put_warm_pool(&e.cfg.pool_group, "Stopped", WarmPoolSize { min_size: 0, max_group_prepared_capacity: 0 })
        .await
        .unwrap();
    e.cfg.sizer.warm_tier = warmpool_core::WarmTier::Stopped;
    // A steady minute-by-minute history over the last two hours: old enough to size on.
    let minutes: Vec<(u64, u32)> = (3..=122).map(|ago| (ago, 1)).collect();
    e.cloud = e.cloud.clone().with_cloudwatch(signup_history(e.cloud.now_ms(), &minutes));
    let d = warmpool_core::flow::sizer::size_pool(&e.cloud, &e.cfg).await.unwrap();
    let warm = d.warm.clone().expect("the warm tier was sized");
    assert!(warm.size > d.desired, "warm tier {} against running pool {}", warm.size, d.desired);
    let pool = e.cloud.describe_warm_pool(&e.cfg.pool_group).await.unwrap().expect("the warm pool exists");
    assert_eq!((pool.min_size, pool.max_group_prepared_capacity), (warm.size, Some(warm.size)));
    let again = warmpool_core::flow::sizer::size_pool(&e.cloud, &e.cfg).await.unwrap();
    assert_eq!(again.warm.map(|w| (w.previous, w.size)), Some((warm.size, warm.size)), "unchanged on a second run");
}

#[tokio::test]
async fn moto_resume_messages_reach_the_signup_queue_in_batches_and_a_received_one_comes_back_sooner() {
    use warmpool_core::ports::{QueuedMessage, WorkQueues};
    let env = env("resume", 0).await;
    let url = env.cfg.signup_queue_url.clone();
    let messages: Vec<QueuedMessage> = (0..12)
        .map(|i| QueuedMessage {
            group_id: Some(format!("u-{i}")),
            dedup_id: Some(format!("resume-u-{i}-1")),
            body: format!("{{\"kind\":\"resume\",\"user_id\":\"u-{i}\"}}"),
            delay_s: 0,
        })
        .collect();
    // Twelve: two SendMessageBatch calls.
    env.cloud.send_batch(&url, &messages).await.unwrap();
    let mut bodies = Vec::new();
    let mut receipts = Vec::new();
    for _ in 0..12 {
        let out = env.sqs.receive_message().queue_url(&url).max_number_of_messages(10).send().await.unwrap();
        for m in out.messages() {
            bodies.push(m.body().unwrap().to_owned());
            receipts.push(m.receipt_handle().unwrap().to_owned());
        }
        if bodies.len() >= 12 {
            break;
        }
    }
    assert_eq!(bodies.len(), 12, "{bodies:?}");
    for b in &bodies {
        assert!(matches!(SignupMessage::parse(b), Ok(SignupMessage::Resume { .. })), "{b}");
    }
    // ChangeMessageVisibility on a received message: accepted on the wire.
    env.cloud.retry_after(&url, &receipts[0], 1).await.unwrap();
}

#[tokio::test]
async fn moto_redrives_reach_the_standard_queue_and_the_sweep_lists_only_unfinished_users() {
    use warmpool_core::domain::{Id, RedriveMessage, UserRecord, UserState};
    use warmpool_core::ports::{AutoScaling, QueuedMessage, UserGroupSpec, WorkQueues};
    let env = env("redrive", 0).await;
    // Three users: two in flight, one ready.
    for (user, state) in [("u-1", UserState::Claiming), ("u-2", UserState::Initializing), ("u-3", UserState::Ready)] {
        let id = Id::parse("user", user).unwrap();
        let mut record = UserRecord::new(&id, &id, 1);
        record.state = state;
        let spec = UserGroupSpec {
            name: env.cfg.user_group(user),
            launch_template: env.cfg.launch_template.clone(),
            subnets: env.cfg.subnets.clone(),
            tags: record.to_tags(),
        };
        env.cloud.create_user_group(&spec).await.unwrap();
    }
    let names = |groups: Vec<warmpool_core::ports::Group>| {
        let mut n: Vec<String> = groups.into_iter().map(|g| g.name).collect();
        n.sort();
        n
    };
    let prefix = &env.cfg.user_group_prefix;
    assert_eq!(names(env.cloud.list_user_groups(prefix, &[]).await.unwrap()).len(), 3);
    assert_eq!(
        names(env.cloud.list_user_groups(prefix, UserState::IN_FLIGHT).await.unwrap()),
        [env.cfg.user_group("u-1"), env.cfg.user_group("u-2")],
        "the state filter leaves the ready user out"
    );
    // Re-drives: a standard queue, no group or deduplication id.
    let url = env.cfg.redrive_queue_url.clone();
    let messages: Vec<QueuedMessage> = ["u-1", "u-2"]
        .iter()
        .map(|u| QueuedMessage {
            group_id: None,
            dedup_id: None,
            body: RedriveMessage::user_body(&Id::parse("user", u).unwrap()),
            delay_s: 0,
        })
        .collect();
    env.cloud.send_batch(&url, &messages).await.unwrap();
    let mut bodies = Vec::new();
    let mut receipt = None;
    for _ in 0..10 {
        let out = env.sqs.receive_message().queue_url(&url).max_number_of_messages(10).send().await.unwrap();
        for m in out.messages() {
            bodies.push(RedriveMessage::parse(m.body().unwrap()).unwrap());
            receipt = m.receipt_handle().map(str::to_owned);
        }
        if bodies.len() >= 2 {
            break;
        }
    }
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    env.cloud.retry_after(&url, &receipt.unwrap(), 1).await.unwrap();
}
