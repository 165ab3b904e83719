//! The reconcile handler on the re-drive queue's samples in `events/reconcile/`: the
//! sweep's re-drive of a user, and Lambda's record of an event lifecycle gave up on.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use aws_lambda_events::event::sqs::SqsEvent;
use serde_json::Value;
use warmpool_core::Config;
use warmpool_core::ports::AutoScaling;
use warmpool_lambda::{Context, LambdaEvent};
use warmpool_reconcile::{ReconcileEvent, ReconcileResponse, handler};
use warmpool_sim::{SimCloud, fixture, invoke};

const REDRIVE: &str = include_str!("../../../events/reconcile/redrive.json");
const FAILED_EVENT: &str = include_str!("../../../events/reconcile/failed-event.json");
const SCHEDULED: &str = include_str!("../../../events/reconcile/scheduled.json");
const SIGNUP: &str = include_str!("../../../events/signup/valid.json");
const GROUP: &str = "warmpool-user-u-1001";

/// u-1001 holds an attached pool instance whose SSM agent did not answer signup's
/// `SendCommand`, and the launch event that would have sent the init once the agent was
/// back was lost: no init sent.
async fn attached_without_init() -> (SimCloud, Config) {
    let (cloud, cfg) = fixture::cloud_with_pool(2);
    let pool = cloud.snapshot().groups[fixture::POOL_GROUP].clone();
    for id in &pool {
        cloud.set_agent_online(id, false);
    }
    let sqs: SqsEvent = serde_json::from_str(SIGNUP).unwrap();
    warmpool_signup::handler(&cloud, &cfg, LambdaEvent::new(sqs, Context::default())).await.unwrap();
    let tags = &cloud.snapshot().tags[GROUP];
    assert_eq!((tags["warmpool:state"].as_str(), tags["warmpool:command-id"].as_str()), ("initializing", ""));
    for id in &pool {
        cloud.set_agent_online(id, true);
    }
    (cloud, cfg)
}

/// Waits past the stall threshold, then to the next minute whose sweep does the
/// housekeeping (`HOUSEKEEPING_EVERY`).
async fn past_the_stall_at_a_housekeeping_minute(cloud: &SimCloud, cfg: &Config) {
    tokio::time::sleep(std::time::Duration::from_secs(u64::from(cfg.reconcile_stall_s) + 1)).await;
    let every = warmpool_core::flow::reconcile::HOUSEKEEPING_EVERY;
    let minute = warmpool_core::ports::Clock::now_ms(cloud) / 60_000;
    tokio::time::sleep(std::time::Duration::from_mins((every - minute % every) % every)).await;
}

/// The failed-event sample (Lambda's record of a Launch Successful lifecycle gave up on),
/// for `instance_id`.
fn failed_launch_of(instance_id: &str) -> String {
    let mut batch: Value = serde_json::from_str(FAILED_EVENT).unwrap();
    let mut body: Value = serde_json::from_str(batch["Records"][0]["body"].as_str().unwrap()).unwrap();
    body["requestPayload"]["detail"]["EC2InstanceId"] = instance_id.into();
    batch["Records"][0]["body"] = body.to_string().into();
    batch.to_string()
}

async fn run(cloud: &SimCloud, cfg: &Config, json: &str) -> ReconcileResponse {
    let event: ReconcileEvent = serde_json::from_str(json).unwrap();
    // As an invocation, so the cloud records who made each call.
    invoke("reconcile", handler(cloud, cfg, LambdaEvent::new(event, Context::default()))).await.unwrap().unwrap()
}

fn failures(response: &ReconcileResponse) -> Vec<String> {
    match response {
        ReconcileResponse::Queue(r) => r.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect(),
        ReconcileResponse::Sweep(r) => panic!("a queue batch ran a sweep: {r:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_redrive_message_sends_the_init_a_lost_launch_event_never_did() {
    for failed_event in [false, true] {
        let (cloud, cfg) = attached_without_init().await;
        let instance = cloud.snapshot().groups[GROUP][0].clone();
        let sample = if failed_event { failed_launch_of(&instance) } else { REDRIVE.to_owned() };
        let sample = sample.as_str();
        let response = run(&cloud, &cfg, sample).await;
        assert!(failures(&response).is_empty());
        let snap = cloud.snapshot();
        let instance = &snap.groups[GROUP][0];
        assert_eq!(&snap.tags[GROUP]["warmpool:command-instance"], instance);
        assert_eq!(cloud.sent_commands().len(), 1, "one init");
        // First, the message is set to come back after REDRIVE_RETRY_S (not the queue's
        // visibility timeout) should this invocation die.
        let log = cloud.call_log();
        let first = log.iter().find(|(f, _)| f == "reconcile").map(|(_, op)| op.as_str());
        assert_eq!(first, Some("ChangeMessageVisibility"));
        // A repeat (SQS delivers at least once) sends nothing more.
        assert!(failures(&run(&cloud, &cfg, sample).await).is_empty());
        assert_eq!(cloud.sent_commands().len(), 1);
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_pool_event_is_left_to_the_hook_and_a_bad_body_fails_alone() {
    let (cloud, cfg) = fixture::cloud_with_pool(1);
    let mut batch: Value = serde_json::from_str(FAILED_EVENT).unwrap();
    let mut pool_record = batch["Records"][0].clone();
    let mut body: Value = serde_json::from_str(pool_record["body"].as_str().unwrap()).unwrap();
    body["requestPayload"]["detail"]["AutoScalingGroupName"] = fixture::POOL_GROUP.into();
    pool_record["body"] = body.to_string().into();
    pool_record["messageId"] = "pool".into();
    let mut bad = batch["Records"][0].clone();
    bad["body"] = r#"{"kind":"redrive","user_id":"u 1; rm -rf /"}"#.into();
    bad["messageId"] = "bad".into();
    batch["Records"] = Value::Array(vec![pool_record, bad]);
    let response = run(&cloud, &cfg, &batch.to_string()).await;
    assert_eq!(failures(&response), vec!["bad".to_owned()]);
    assert!(cloud.sent_commands().is_empty());
    assert!(cloud.snapshot().terminated.is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_schedule_still_runs_a_sweep() {
    use warmpool_core::domain::{Id, UserRecord, UserState};
    use warmpool_core::ports::{Clock, UserGroupSpec};
    let (cloud, cfg) = fixture::cloud_with_pool(1);
    let response = run(&cloud, &cfg, SCHEDULED).await;
    let ReconcileResponse::Sweep(report) = response else { panic!("{response:?}") };
    assert_eq!(report.users_checked, 0);
    // Two users in flight and one ready: the sweep checks the two its listing returns.
    for (user, state) in [("u-a", UserState::Claiming), ("u-b", UserState::Initializing), ("u-c", UserState::Ready)] {
        let id = Id::parse("user_id", user).unwrap();
        let mut record = UserRecord::new(&id, &id, cloud.now_ms());
        record.state = state;
        let spec = UserGroupSpec {
            name: cfg.user_group(user),
            launch_template: cfg.launch_template.clone(),
            subnets: cfg.subnets.clone(),
            tags: record.to_tags(),
        };
        cloud.create_user_group(&spec).await.unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(cloud.model().stale_read_ms.1 + 1)).await;
    let response = run(&cloud, &cfg, SCHEDULED).await;
    let ReconcileResponse::Sweep(report) = response else { panic!("{response:?}") };
    assert_eq!(report.users_checked, 2, "{report:?}");
}

/// A ready user's host is replaced, and lifecycle fails on the replacement's launch event
/// every time: its record in the re-drive queue is re-driven as the launch itself, so
/// the new host is initialised though no sweep looks at ready users.
#[tokio::test(start_paused = true)]
async fn a_failed_launch_event_of_a_replaced_host_is_re_driven() {
    let (cloud, cfg) = attached_without_init().await;
    let old = cloud.snapshot().groups[GROUP][0].clone();
    // Ready on `old`, as command-status would leave it.
    let ready = [("warmpool:state".to_owned(), "ready".to_owned()), ("warmpool:instance".to_owned(), old.clone())];
    cloud.tag_group(GROUP, &ready).await.unwrap();
    cloud.fail_health_check(&old);
    tokio::time::sleep(std::time::Duration::from_mins(3)).await;
    let new = cloud.snapshot().groups[GROUP].clone();
    assert_eq!(new.len(), 1);
    assert_ne!(new[0], old, "Auto Scaling launched a replacement");
    let response = run(&cloud, &cfg, &failed_launch_of(&new[0])).await;
    assert!(failures(&response).is_empty());
    let tags = &cloud.snapshot().tags[GROUP];
    assert_eq!(tags["warmpool:state"], "initializing");
    assert_eq!(
        (tags["warmpool:instance"].as_str(), tags["warmpool:replaced"].as_str()),
        (new[0].as_str(), old.as_str())
    );
    assert_eq!(tags["warmpool:command-instance"], new[0]);
}

/// A cold user's fresh instance carries the init lock (a claim by its owner) from before
/// its init is sent, and the record names no instance until then. The sweep's
/// housekeeping must not take that lock for a stale claim: released, the next lifecycle
/// retry or re-drive would take it afresh, skip the check for an init an earlier run
/// sent, and the host would run user-init twice.
#[tokio::test(start_paused = true)]
async fn housekeeping_keeps_the_init_lock_of_a_cold_users_fresh_instance() {
    let (cloud, mut cfg) = fixture::cloud_with_pool(0);
    cfg.pool_wait_s = 0; // cold at once: no pool to wait for
    let sqs: SqsEvent = serde_json::from_str(SIGNUP).unwrap();
    warmpool_signup::handler(&cloud, &cfg, LambdaEvent::new(sqs, Context::default())).await.unwrap();
    let instance = loop {
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        if let Some(id) = cloud.snapshot().groups[GROUP].first() {
            break id.clone();
        }
    };
    // A lifecycle run took the lock and died; no init is recorded.
    cloud.put_claim(&instance, "u-1001");
    assert_eq!(cloud.snapshot().tags[GROUP]["warmpool:instance"], "", "the record names no instance yet");
    past_the_stall_at_a_housekeeping_minute(&cloud, &cfg).await;
    let response = run(&cloud, &cfg, SCHEDULED).await;
    let ReconcileResponse::Sweep(report) = response else { panic!("{response:?}") };
    assert_eq!(report.claims_repaired, 0, "{report:?}");
    let lock = warmpool_core::ports::Claims::claim_of(&cloud, &instance).await.unwrap();
    assert_eq!(lock.map(|c| c.owner), Some("u-1001".to_owned()), "the lock stays");
}

/// A ready user's claim and init lock, left behind when the ready could not delete them
/// (the call failed), are released by housekeeping once older than the stall, counted
/// apart from the claims it repairs.
#[tokio::test(start_paused = true)]
async fn housekeeping_releases_a_ready_users_leftover_claim_and_init_lock() {
    use warmpool_core::domain::Id;
    use warmpool_core::flow::command_status::{StatusOutcome, ThenAcquire, apply_init_outcome};
    use warmpool_core::ports::{Claims, init_lock};
    let (cloud, cfg) = fixture::cloud_with_pool(2);
    let sqs: SqsEvent = serde_json::from_str(SIGNUP).unwrap();
    warmpool_signup::handler(&cloud, &cfg, LambdaEvent::new(sqs, Context::default())).await.unwrap();
    let tags = cloud.snapshot().tags[GROUP].clone();
    let (instance, command) = (tags["warmpool:instance"].clone(), tags["warmpool:command-id"].clone());
    assert!(!command.is_empty(), "the move sent the init");
    let user = Id::parse("user", "u-1001").unwrap();
    let outcome = apply_init_outcome(&cloud, &cfg, &user, &command, "Success", ThenAcquire::ViaSignupQueue).await;
    assert_eq!(outcome.unwrap(), StatusOutcome::Ready { instance_id: instance.clone() });
    let held = |name: String| {
        let cloud = cloud.clone();
        async move { cloud.claim_of(&name).await.unwrap().map(|c| c.owner) }
    };
    assert_eq!(held(instance.clone()).await, None, "the ready released the claim");
    // As if that release had failed.
    cloud.put_claim(&instance, "u-1001");
    cloud.put_claim(&init_lock(&instance), "u-1001");
    past_the_stall_at_a_housekeeping_minute(&cloud, &cfg).await;
    let response = run(&cloud, &cfg, SCHEDULED).await;
    let ReconcileResponse::Sweep(report) = response else { panic!("{response:?}") };
    assert_eq!((report.ready_claims_released, report.claims_repaired), (1, 0), "{report:?}");
    assert_eq!(held(instance.clone()).await, None, "released");
    assert_eq!(held(init_lock(&instance)).await, None, "with its init lock");
    assert_eq!(cloud.snapshot().tags[GROUP]["warmpool:state"], "ready");
}

/// A stale claim naming an instance outside every group that was not launched from our
/// launch template (only someone who may write the claims' path could make one): the
/// housekeeping releases the claim and nothing more. It never attaches that instance to
/// the pool, where it would be handed to a user.
#[tokio::test(start_paused = true)]
async fn housekeeping_only_releases_a_claim_on_a_foreign_instance() {
    let (cloud, cfg) = fixture::cloud_with_pool(1);
    let foreign = cloud.attach_foreign_instance(fixture::POOL_GROUP);
    cloud.detach_by_hand(fixture::POOL_GROUP, &foreign);
    cloud.put_claim(&foreign, "ghost");
    past_the_stall_at_a_housekeeping_minute(&cloud, &cfg).await;
    let response = run(&cloud, &cfg, SCHEDULED).await;
    let ReconcileResponse::Sweep(report) = response else { panic!("{response:?}") };
    assert_eq!(report.claims_repaired, 1, "{report:?}");
    assert_eq!(warmpool_core::ports::Claims::claim_of(&cloud, &foreign).await.unwrap(), None, "released");
    let snap = cloud.snapshot();
    assert!(!snap.groups[fixture::POOL_GROUP].contains(&foreign), "never handed to the pool");
    assert!(!cloud.call_log().iter().any(|(_, op)| op == "AttachInstances"), "{:?}", cloud.call_log());
}

/// Failed users' groups are removed once their retention (`FAILED_RETENTION_H`) is over,
/// on a housekeeping sweep: not before, not a user who did not fail, not a group whose
/// record names another user, and none at all with a retention of 0.
#[tokio::test(start_paused = true)]
async fn housekeeping_removes_failed_users_groups_after_their_retention() {
    use warmpool_core::domain::{Id, UserRecord, UserState};
    use warmpool_core::ports::{Clock, UserGroupSpec};
    let (cloud, cfg) = fixture::cloud_with_pool(0);
    let hour_ms = 3_600_000;
    let retention_ms = u64::from(cfg.failed_retention_h) * hour_ms;
    assert!(retention_ms > 0, "a default retention");
    let now = cloud.now_ms();
    let group_of = |user: &str, owner: &str, state: UserState, updated_at_ms: u64| {
        let owner = Id::parse("user", owner).unwrap();
        let mut record = UserRecord::new(&owner, &owner, 0);
        record.state = state;
        record.updated_at_ms = updated_at_ms;
        record.reason = Some("init failed 4 times".into());
        UserGroupSpec {
            name: cfg.user_group(user),
            launch_template: cfg.launch_template.clone(),
            subnets: cfg.subnets.clone(),
            tags: record.to_tags(),
        }
    };
    // Now + the retention + a sweep or two: each "failed at" is relative to that moment.
    let later = now + retention_ms + 10 * 60_000;
    let groups = [
        ("u-expired", "u-expired", UserState::Failed, later - retention_ms - hour_ms),
        ("u-recent", "u-recent", UserState::Failed, later - retention_ms + hour_ms),
        ("u-ready", "u-ready", UserState::Ready, later - retention_ms - hour_ms),
        ("u-liar", "u-other", UserState::Failed, later - retention_ms - hour_ms),
    ];
    for (user, owner, state, at) in groups {
        cloud.create_user_group(&group_of(user, owner, state, at)).await.unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(later - now)).await;
    let every = warmpool_core::flow::reconcile::HOUSEKEEPING_EVERY;
    let minute = cloud.now_ms() / 60_000;
    tokio::time::sleep(std::time::Duration::from_mins((every - minute % every) % every)).await;
    let ReconcileResponse::Sweep(report) = run(&cloud, &cfg, SCHEDULED).await else { panic!("not a sweep") };
    assert_eq!(report.failed_removed, 1, "{report:?}");
    let left: Vec<String> =
        cloud.snapshot().groups.keys().filter(|g| g.starts_with(&cfg.user_group_prefix)).cloned().collect();
    assert_eq!(left, ["warmpool-user-u-liar", "warmpool-user-u-ready", "warmpool-user-u-recent"]);
    assert_eq!(cloud.snapshot().metrics.get("FailedGroupsRemoved").map(|m| m.0), Some(1));

    // Past the recent one's retention too: a retention of 0 keeps it, the default not.
    tokio::time::sleep(std::time::Duration::from_hours(2)).await;
    let minute = cloud.now_ms() / 60_000;
    tokio::time::sleep(std::time::Duration::from_mins((every - minute % every) % every)).await;
    let keep = fixture::config(&cloud.subnets(), &[("FAILED_RETENTION_H", "0".into())]);
    let ReconcileResponse::Sweep(report) = run(&cloud, &keep, SCHEDULED).await else { panic!("not a sweep") };
    assert_eq!(report.failed_removed, 0);
    assert!(cloud.snapshot().groups.contains_key("warmpool-user-u-recent"));
    let ReconcileResponse::Sweep(report) = run(&cloud, &cfg, SCHEDULED).await else { panic!("not a sweep") };
    assert_eq!(report.failed_removed, 1);
    assert!(!cloud.snapshot().groups.contains_key("warmpool-user-u-recent"));
}

/// A user stalled in `claiming` is sent back to the signup function with a resume; when
/// the signup queue cannot take it, the sweep says so in its report (and tries again on
/// the next sweep) instead of reporting a clean run.
#[tokio::test(start_paused = true)]
async fn a_resume_the_signup_queue_refuses_is_counted_as_an_error() {
    use warmpool_core::domain::{Id, UserRecord, UserState};
    use warmpool_core::ports::{Clock, UserGroupSpec};
    let (cloud, cfg) = fixture::cloud_with_pool(1);
    let user = Id::parse("user_id", "u-stalled").unwrap();
    let mut record = UserRecord::new(&user, &user, cloud.now_ms());
    record.state = UserState::Claiming;
    record.updated_at_ms = cloud.now_ms();
    let spec = UserGroupSpec {
        name: cfg.user_group(user.as_str()),
        launch_template: cfg.launch_template.clone(),
        subnets: cfg.subnets.clone(),
        tags: record.to_tags(),
    };
    cloud.create_user_group(&spec).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(u64::from(cfg.reconcile_stall_s) + 5)).await;
    let broken = Config { signup_queue_url: "https://sqs.us-east-1.amazonaws.com/1/gone.fifo".into(), ..cfg.clone() };
    let ReconcileResponse::Sweep(report) = run(&cloud, &broken, SCHEDULED).await else { panic!("not a sweep") };
    assert_eq!(report.errors, 1, "{report:?}");
    assert!(report.redriven.is_empty(), "nothing was sent: {report:?}");
    let ReconcileResponse::Sweep(report) = run(&cloud, &cfg, SCHEDULED).await else { panic!("not a sweep") };
    assert_eq!((report.errors, report.redriven.len()), (0, 1), "the next sweep sends it: {report:?}");
}
