//! End to end on the in-memory cloud: the real handlers, the local Lambda
//! platform (SQS mapping, EventBridge rules, async retries) and simulated AWS.
//!
//! Every test reads its verdict from the cloud's ground truth (`Snapshot`), not from
//! what the functions believe.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::collections::BTreeSet;

use warmpool_core::domain::{Path, ReadyMessage, UserRecord, UserState};
use warmpool_sim::platform::{Platform, PlatformOptions};
use warmpool_sim::report::Report;
use warmpool_sim::{ApiLimits, CloudModel, Snapshot};

const DEADLINE_S: u64 = 3 * 3600;

/// Logs go to the test's captured output, shown when it fails.
fn logs() {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("info").try_init();
}

fn users(n: usize) -> Vec<String> {
    logs();
    (1..=n).map(|i| format!("u-{i:04}")).collect()
}

fn record(p: &Platform, snap: &Snapshot, user: &str) -> UserRecord {
    let tags = snap.tags.get(&p.config().user_group(user)).expect("user group exists");
    UserRecord::from_tags(tags).expect("user group carries a record")
}

/// `POOL_WAIT_S=0`: a miss takes the cold path at once, for tests of the cold path
/// itself (waiting for the pool first is tested on its own).
fn cold_at_once() -> (String, String) {
    ("POOL_WAIT_S".into(), "0".into())
}

/// Delivers one of the `events/lifecycle/` samples (`json`) to the lifecycle function, for
/// `group` and, when given, `instance`; returns the outcome as text.
async fn deliver_lifecycle(p: &Platform, json: &str, group: &str, instance: Option<&str>) -> String {
    use aws_lambda_events::event::eventbridge::EventBridgeEvent;
    use lambda_runtime::{Context, LambdaEvent};
    use serde_json::Value;
    let mut v: Value = serde_json::from_str(json).unwrap();
    v["detail"]["AutoScalingGroupName"] = group.into();
    if let Some(instance) = instance {
        v["detail"]["EC2InstanceId"] = instance.into();
    }
    let e = LambdaEvent::new(serde_json::from_value::<EventBridgeEvent<Value>>(v).unwrap(), Context::default());
    let cfg = p.config_of(warmpool_core::Function::Lifecycle).clone();
    format!("{:?}", warmpool_sim::invoke("lifecycle", warmpool_lifecycle::handler(p.cloud(), &cfg, e)).await)
}

/// Somebody else holds a claim on every pool instance (the pool cannot serve); returns them.
fn claim_the_whole_pool(p: &Platform) -> Vec<String> {
    let pool: Vec<String> = p.snapshot().groups[&p.config().pool_group].clone();
    for id in &pool {
        p.cloud().put_claim(id, "someone-else");
    }
    pool
}

/// The logs written while the returned guard lives (this thread's, which a paused-clock
/// test runs everything on), for tests that look for what a run said it did.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The second value is the guard: keep it alive for as long as the capture should run.
fn capture_logs() -> (Captured, Box<dyn std::any::Any>) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber =
        tracing_subscriber::fmt().with_ansi(false).with_env_filter("info").with_writer(move || writer.clone()).finish();
    (captured, Box::new(tracing_subscriber::util::SubscriberInitExt::set_default(subscriber)))
}

fn ready_messages(snap: &Snapshot) -> Vec<ReadyMessage> {
    snap.ready_messages.iter().map(|b| serde_json::from_str(b).expect("ready message is JSON")).collect()
}

fn assert_invariants(p: &Platform, users: &[String]) -> Report {
    let snap = p.snapshot();
    let report = Report::build(p.config(), &snap, users, 0.0);
    assert!(report.violations().is_empty(), "invariants violated: {:?}", report.violations());
    assert!(snap.outside.is_empty(), "instances outside every group: {:?}", snap.outside);
    assert!(snap.in_two_groups.is_empty());
    report
}

#[tokio::test(start_paused = true)]
async fn twenty_five_concurrent_signups_on_a_pool_of_ten() {
    // The claims' race, not the account's rate limits: 25 signups at once make some 300
    // Auto Scaling calls in seconds, past the model's conservative bucket, and a claim
    // whose calls stay throttled through the SDK's retries goes cold (`tests/tests/scale.rs`).
    let p = Platform::start(PlatformOptions {
        pool: 10,
        seed: 11,
        overrides: vec![cold_at_once()],
        model: CloudModel { api_limits: ApiLimits::UNLIMITED, ..CloudModel::default() },
        ..PlatformOptions::default()
    });
    let all = users(25);
    for u in &all {
        p.signup(u);
    }
    assert!(p.run_until_settled(&all, DEADLINE_S).await, "every user settles");
    let report = assert_invariants(&p, &all);
    assert_eq!(report.summary.ready, 25, "{:#?}", report.users);
    assert_eq!(report.summary.warm, 10, "the whole pool serves, and only once each");
    assert_eq!(report.summary.cold, 15);
    let instances: BTreeSet<_> = report.users.iter().filter_map(|u| u.instance_id.clone()).collect();
    assert_eq!(instances.len(), 25, "distinct instances");
    // Each user's instance is in that user's group and nowhere else.
    let snap = p.snapshot();
    for u in &report.users {
        let group = p.config().user_group(&u.user_id);
        assert_eq!(snap.groups[&group], vec![u.instance_id.clone().unwrap()]);
    }
    // Warm users are ready in seconds, cold ones in about ten minutes.
    for u in &report.users {
        let t = u.ready_after_s.unwrap();
        match u.path.as_str() {
            "warm" => assert!(t < 30.0, "{} warm in {t}s", u.user_id),
            _ => assert!((420.0..900.0).contains(&t), "{} cold in {t}s", u.user_id),
        }
    }
    // Exactly one ready message per user.
    let msgs = ready_messages(&snap);
    assert_eq!(msgs.len(), 25);
    // The pool refilled itself through its lifecycle hook (launch, pool-prep, CONTINUE).
    assert_eq!(snap.groups[&p.config().pool_group].len(), 10);
    assert!(snap.calls["CompleteLifecycleAction"] >= 10);
}

#[tokio::test(start_paused = true)]
async fn failed_init_fails_over_to_another_pool_instance_and_terminates_the_bad_one() {
    let p = Platform::start(PlatformOptions { pool: 3, ..PlatformOptions::default() });
    p.cloud().fail_next_inits(1);
    let all = users(1);
    p.signup(&all[0]);
    let settled = p.run_until_settled(&all, DEADLINE_S).await;
    assert!(settled, "{:#?}\n{:#?}", p.cloud().timeline(), p.snapshot().tags);
    let report = assert_invariants(&p, &all);
    let snap = p.snapshot();
    let r = record(&p, &snap, &all[0]);
    assert_eq!(r.state, UserState::Ready);
    assert_eq!(r.attempt, 2, "one failover");
    assert_eq!(report.users[0].path, "warm", "the second attempt is warm too");
    assert!(report.users[0].ready_after_s.unwrap() < 60.0);
    // The first instance was terminated, not returned to the pool.
    assert_eq!(snap.terminated.len(), 1, "{:?}", snap.terminated);
    let bad = &snap.terminated[0];
    assert_ne!(Some(bad), r.instance.as_ref());
    assert!(snap.groups.values().all(|ids| !ids.contains(bad)), "terminated instance is in no group");
    assert!(r.reason.unwrap_or_default().contains("Failed"));
}

#[tokio::test(start_paused = true)]
async fn failures_past_the_warm_attempts_go_cold_and_past_max_attempts_fail_with_a_reason() {
    let p = Platform::start(PlatformOptions {
        pool: 5,
        overrides: vec![("WARM_ATTEMPTS".into(), "1".into()), ("MAX_ATTEMPTS".into(), "2".into())],
        ..PlatformOptions::default()
    });
    p.cloud().fail_next_inits(2);
    let all = users(1);
    p.signup(&all[0]);
    assert!(p.run_until_settled(&all, DEADLINE_S).await);
    assert_invariants(&p, &all);
    let snap = p.snapshot();
    let r = record(&p, &snap, &all[0]);
    assert_eq!(r.state, UserState::Failed);
    assert_eq!(r.path, Path::Cold, "the second attempt was cold");
    assert!(r.reason.unwrap().contains("2 attempts"));
    assert_eq!(snap.metrics["UsersFailed"].0, 1, "the failed-users alarm's metric");
    assert!(snap.groups[&p.config().user_group(&all[0])].is_empty(), "a failed user keeps no instance");
    assert!(ready_messages(&snap).is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_empty_pool_takes_the_cold_path() {
    let p = Platform::start(PlatformOptions { pool: 0, overrides: vec![cold_at_once()], ..PlatformOptions::default() });
    let all = users(2);
    for u in &all {
        p.signup(u);
    }
    assert!(p.run_until_settled(&all, DEADLINE_S).await);
    let report = assert_invariants(&p, &all);
    for u in &report.users {
        assert_eq!((u.state.as_str(), u.path.as_str(), u.attempts), ("ready", "cold", 1));
        let t = u.ready_after_s.unwrap();
        assert!((420.0..900.0).contains(&t), "cold ready in about ten minutes, got {t}s");
    }
    let snap = p.snapshot();
    assert_eq!(snap.calls.get("DetachInstances"), None, "nothing to detach");
    assert_eq!(snap.calls["SetDesiredCapacity"], 2);
}

/// A cold user's init runs some eight minutes, far past the sweep's stall threshold
/// (90 s): while SSM lists it running, the sweep leaves the user alone (a re-drive would
/// only cost calls, and each call can fail); it re-drives only inits that ended or that
/// SSM has lost.
#[tokio::test(start_paused = true)]
async fn the_sweep_does_not_redrive_a_user_whose_init_is_still_running() {
    let p = Platform::start(PlatformOptions { pool: 0, overrides: vec![cold_at_once()], ..PlatformOptions::default() });
    let all = users(1);
    p.signup(&all[0]);
    let redrives =
        || p.cloud().call_log().iter().filter(|(f, op)| f == "reconcile" && op == "SendMessageBatch").count();
    let init_sent = || p.cloud().sent_commands().iter().any(|c| c.document == p.config().user_init_document);
    while !init_sent() {
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    }
    let before = redrives();
    let gauge = || p.snapshot().metrics.get("UsersInFlight").copied().unwrap_or_default();
    let gauge_before = gauge();
    // Six sweeps while the init runs (it needs about eight minutes on a fresh host).
    tokio::time::sleep(std::time::Duration::from_mins(6)).await;
    // Each sweep counted the users in each in-flight state (claiming, initializing):
    // none claiming and this one initializing, every time.
    let gauge_after = gauge();
    let (samples, users_seen) = (gauge_after.0 - gauge_before.0, gauge_after.1 - gauge_before.1);
    assert!(samples >= 10 && samples.is_multiple_of(2), "two states a sweep, six sweeps: {samples} samples");
    assert!(
        (users_seen - (samples / 2) as f64).abs() < 1e-9,
        "one user in flight a sweep: {users_seen} over {samples}"
    );
    let r = record(&p, &p.snapshot(), &all[0]);
    assert_eq!(r.state, UserState::Initializing, "still initializing: the window tests the running init");
    assert_eq!(redrives(), before, "the sweep re-drove a user whose init SSM lists as running");
    assert!(p.run_until_settled(&all, DEADLINE_S).await);
    assert_invariants(&p, &all);
}

/// Two users, five seconds apart, on a pool of one (and the default wait for the pool),
/// settled: the second finds the pool empty, and the first user's refill in flight.
async fn two_users_on_a_pool_of_one(model: CloudModel, refill_s: u32) -> (Platform, Vec<String>, Report) {
    // The refill time the wait assumes, with no pool launch completed yet to measure.
    let overrides = vec![("SIZER_DEFAULT_REFILL_S".to_owned(), refill_s.to_string())];
    let p = Platform::start(PlatformOptions { model, pool: 1, overrides, ..PlatformOptions::default() });
    let all = users(2);
    p.signup(&all[0]);
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    p.signup(&all[1]);
    assert!(p.run_until_settled(&all, DEADLINE_S).await);
    let report = assert_invariants(&p, &all);
    (p, all, report)
}

/// A signup that finds no pool instance to claim waits for one (`POOL_WAIT_S`, 240 s by
/// default) instead of launching cold, looking again every 15 s through a delayed
/// re-drive. With refills ready in about a minute and a half, the second of two users on
/// a pool of one is served warm from the first user's refill, within its wait.
#[tokio::test(start_paused = true)]
async fn a_miss_waits_for_the_pool_and_is_served_warm() {
    let (p, all, report) = two_users_on_a_pool_of_one(CloudModel { prep_s: 60.0, ..CloudModel::default() }, 90).await;
    for u in &report.users {
        assert_eq!((u.state.as_str(), u.path.as_str(), u.attempts), ("ready", "warm", 1), "{u:?}");
    }
    let waited = report.users[1].ready_after_s.unwrap();
    assert!((30.0..240.0).contains(&waited), "served from a refill within its wait: {waited} s");
    let r = record(&p, &p.snapshot(), &all[1]);
    assert_eq!(r.waiting.map(|(attempt, _)| attempt), Some(1), "the record says it waited");
    assert!(record(&p, &p.snapshot(), &all[0]).waiting.is_none(), "the first user did not wait");
    let log = p.cloud().call_log();
    let asked = log.iter().filter(|(f, op)| f == "signup" && op == "SetDesiredCapacity").count();
    assert_eq!(asked, 0, "no cold launch asked for, and the pool left to its own refills");
    let looks = log.iter().filter(|(f, op)| f == "signup" && op == "SendMessageBatch").count();
    assert!(looks >= 2, "it looked again through delayed re-drives: {looks}");
    // Each look was the signup's own: the sweep never found the waiting user stalled.
    assert_eq!(report.users[1].breakdown.as_ref().map(|b| b.sweep_s), Some(0.0), "{:?}", report.users[1]);
}

/// A miss whose wait runs out with no pool instance to claim (the refill was expected in
/// 100 s and takes ten minutes) takes the cold path, on the same attempt, after the wait.
#[tokio::test(start_paused = true)]
async fn a_miss_whose_wait_runs_out_launches_cold() {
    let (p, _, report) = two_users_on_a_pool_of_one(CloudModel::default(), 100).await;
    let u = &report.users[1];
    assert_eq!((u.state.as_str(), u.path.as_str(), u.attempts), ("ready", "cold", 1), "{u:?}");
    let t = u.ready_after_s.unwrap();
    assert!((240.0 + 420.0..240.0 + 900.0).contains(&t), "the wait, then a cold launch: {t} s");
    let r = record(&p, &p.snapshot(), &u.user_id);
    assert_eq!(r.waiting.map(|(attempt, _)| attempt), Some(1), "it did wait: {r:?}");
    let log = p.cloud().call_log();
    let asked = log.iter().filter(|(f, op)| f == "signup" && op == "SetDesiredCapacity").count();
    assert_eq!(asked, 1, "the user's cold launch, after the wait");
    let looks = log.iter().filter(|(f, op)| f == "signup" && op == "SendMessageBatch").count();
    assert!(looks >= 240 / 15 - 1, "it looked again for the whole wait: {looks} looks");
}

/// A miss with no refill due within the wait (a refill takes ten minutes, and the only
/// one in flight began seconds ago) does not wait: it launches cold at once.
#[tokio::test(start_paused = true)]
async fn a_miss_with_no_refill_due_in_time_launches_cold_at_once() {
    let (p, _, report) = two_users_on_a_pool_of_one(CloudModel::default(), 600).await;
    let u = &report.users[1];
    assert_eq!((u.state.as_str(), u.path.as_str(), u.attempts), ("ready", "cold", 1), "{u:?}");
    let t = u.ready_after_s.unwrap();
    assert!((420.0..900.0).contains(&t), "a cold launch with no wait before it: {t} s");
    let r = record(&p, &p.snapshot(), &u.user_id);
    assert!(r.waiting.is_none(), "it never waited: {r:?}");
    let asked =
        p.cloud().call_log().iter().filter(|(f, op)| f == "signup" && op == "DescribeScalingActivities").count();
    assert_eq!(asked, 1, "it asked when the pool's refill is due");
}

#[tokio::test(start_paused = true)]
async fn a_late_agent_is_retried_then_the_user_becomes_ready() {
    // The agent registers 5 minutes after boot; one lifecycle invocation waits at most
    // AGENT_WAIT_S (60 s), so the event must be retried by the platform.
    let model = CloudModel { agent_delay_s: 300.0, ..CloudModel::default() };
    let p = Platform::start(PlatformOptions {
        pool: 0,
        model,
        async_retry_delays_s: vec![60, 120],
        overrides: vec![cold_at_once(), ("AGENT_WAIT_S".into(), "60".into())],
        ..PlatformOptions::default()
    });
    let all = users(1);
    p.signup(&all[0]);
    assert!(p.run_until_settled(&all, DEADLINE_S).await);
    assert_invariants(&p, &all);
    assert!(p.failed_invocations() >= 1, "the first lifecycle invocation gave up waiting");
    let snap = p.snapshot();
    let r = record(&p, &snap, &all[0]);
    assert_eq!((r.state, r.attempt), (UserState::Ready, 1));
    assert!(snap.calls["DescribeInstanceInformation"] > 3, "the agent was polled repeatedly");
    assert_eq!(snap.calls["SendCommand"], 1, "init was sent once, after the agent came online");
}

/// Lambda retries an asynchronous invocation twice, then sends the event's record to
/// the function's on-failure destination (the re-drive queue), which reconcile drains.
/// With the sweep off, that is the only way this user's init is ever sent.
#[tokio::test(start_paused = true)]
async fn an_event_that_fails_every_retry_reaches_reconcile_through_the_on_failure_destination() {
    // The agent comes up 200 s after boot; lifecycle does not wait (AGENT_WAIT_S = 0),
    // so its three attempts (at once, a minute later, two more) all fail.
    let p = Platform::start(PlatformOptions {
        pool: 0,
        model: CloudModel { agent_delay_s: 200.0, ..CloudModel::default() },
        overrides: vec![cold_at_once(), ("AGENT_WAIT_S".into(), "0".into())],
        reconcile_every_s: 0,
        ..PlatformOptions::default()
    });
    let all = users(1);
    p.signup(&all[0]);
    assert!(p.run_until_settled(&all, DEADLINE_S).await);
    assert_invariants(&p, &all);
    assert!(p.failed_invocations() >= 3, "lifecycle failed its attempt and both retries");
    let records: Vec<_> =
        p.cloud().timeline().into_iter().filter(|e| e.text.contains("on-failure destination")).collect();
    assert_eq!(records.len(), 1, "one invocation record");
    let sent_by: Vec<String> =
        p.cloud().call_log().into_iter().filter(|(_, op)| op == "SendCommand").map(|(f, _)| f).collect();
    assert_eq!(sent_by, ["reconcile"], "the init came from reconcile's re-drive");
    assert_eq!(record(&p, &p.snapshot(), &all[0]).state, UserState::Ready);
}

/// The sweep hands each stalled user to a re-drive of its own (a message to the re-drive
/// queue) instead of re-driving inline, where one death would stop the rest; with every
/// event lost, the re-drives make the users ready, and neither status event is needed.
#[tokio::test(start_paused = true)]
async fn with_every_event_lost_the_sweep_queues_a_redrive_per_user_and_they_finish() {
    let p = Platform::start(PlatformOptions { pool: 1, drop_events: 1.0, ..PlatformOptions::default() });
    let all = users(2);
    for u in &all {
        p.signup(u);
    }
    assert!(p.run_until_settled(&all, DEADLINE_S).await);
    assert_invariants(&p, &all);
    let queued: Vec<String> =
        p.cloud().timeline().into_iter().filter(|e| e.text.starts_with("redrive message")).map(|e| e.text).collect();
    let snap = p.snapshot();
    for u in &all {
        let mine = queued.iter().filter(|t| t.contains(&format!("\"{u}\""))).count();
        // The warm user's init came with its attach (signup): one re-drive for the lost
        // status events. The cold one's waited for a launch event: one more.
        let expected = if record(&p, &snap, u).path == Path::Warm { 1 } else { 2 };
        assert!(mine >= expected, "{u}: {queued:?}");
    }
    let sent_by: BTreeSet<String> =
        p.cloud().call_log().into_iter().filter(|(_, op)| op == "SendCommand").map(|(f, _)| f).collect();
    assert_eq!(
        sent_by,
        BTreeSet::from(["signup".to_owned(), "reconcile".to_owned()]),
        "the attach's init from signup, the cold launch's from a re-drive"
    );
    assert_eq!(ready_messages(&p.snapshot()).len(), 2);
}

/// Auto Scaling's launches fail (capacity, a quota, no free address) and keep failing:
/// the cold attempt ends a minute on, the next goes to the pool (an attempt that ran cold
/// used no pool instance), and the user is ready.
#[tokio::test(start_paused = true)]
async fn a_cold_launch_that_keeps_failing_fails_over_to_the_pool() {
    let p = Platform::start(PlatformOptions { pool: 2, overrides: vec![cold_at_once()], ..PlatformOptions::default() });
    let pool = claim_the_whole_pool(&p);
    p.cloud().fail_next_launches(1_000);
    let all = users(1);
    p.signup(&all[0]);
    tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    let group = p.config().user_group(&all[0]);
    assert!(p.snapshot().groups[&group].is_empty(), "no instance: every launch failed");
    for id in &pool {
        p.cloud().delete_claim(id);
    }
    assert!(p.run_until_settled(&all, DEADLINE_S).await);
    assert_invariants(&p, &all);
    let snap = p.snapshot();
    let r = record(&p, &snap, &all[0]);
    assert_eq!((r.state, r.attempt, r.cold_attempts, r.path), (UserState::Ready, 2, 1, Path::Warm));
    assert!(pool.contains(r.instance.as_ref().unwrap()));
    let failed = p.cloud().timeline().iter().filter(|e| e.text.contains("launch failed")).count();
    assert!(failed >= 5, "Auto Scaling kept trying for a minute ({failed} failed launches)");
}

/// With the pool unable to serve and every launch failing, each attempt ends after its
/// grace and the user is `failed` with EC2's reason, its group asking for nothing; also
/// when every event is lost (the sweep finds the attempt with no instance).
#[tokio::test(start_paused = true)]
async fn when_no_launch_ever_succeeds_the_user_fails_with_the_reason() {
    for drop_events in [0.0, 1.0] {
        let p = Platform::start(PlatformOptions {
            pool: 0,
            drop_events,
            overrides: vec![("MAX_ATTEMPTS".into(), "2".into())],
            ..PlatformOptions::default()
        });
        p.cloud().fail_next_launches(1_000);
        let all = users(1);
        p.signup(&all[0]);
        assert!(p.run_until_settled(&all, DEADLINE_S).await, "drop {drop_events}");
        assert_invariants(&p, &all);
        let snap = p.snapshot();
        let r = record(&p, &snap, &all[0]);
        assert_eq!((r.state, r.attempt), (UserState::Failed, 3), "drop {drop_events}");
        let reason = r.reason.unwrap();
        assert!(reason.contains("launch failed"), "{reason}");
        if drop_events == 0.0 {
            assert!(reason.contains("Launching EC2 instance failed"), "EC2's words: {reason}");
        }
        let group = p.config().user_group(&all[0]);
        assert_eq!(p.cloud().group_size(&group).unwrap().desired, 0, "the group stopped trying");
    }
}

/// Every user is an Auto Scaling group, so the Region's group quota (500 by default)
/// caps the users: `CreateAutoScalingGroup` past it is `LimitExceeded`. The signup past
/// the quota says why (a log line and the `GroupQuotaReached` metric), is retried in case
/// a group is freed, and ends in the dead-letter queue, from where it can be sent again.
#[tokio::test(start_paused = true)]
async fn a_signup_past_the_group_quota_is_dead_lettered_with_the_reason_and_a_metric() {
    // The pool and two users fill a quota of three groups.
    let model = CloudModel { group_quota: 3, ..CloudModel::default() };
    let p = Platform::start(PlatformOptions { pool: 3, model, ..PlatformOptions::default() });
    let all = users(3);
    for u in &all {
        p.signup(u);
    }
    // Two get the last two groups (whichever create first); the third's ten tries, 30 s
    // apart, end in the dead-letter queue.
    tokio::time::sleep(std::time::Duration::from_mins(20)).await;
    let snap = p.snapshot();
    let (served, refused): (Vec<&String>, Vec<&String>) =
        all.iter().partition(|u| snap.groups.contains_key(&p.config().user_group(u)));
    assert_eq!((served.len(), refused.len()), (2, 1), "the quota holds two users");
    for u in served {
        assert_eq!(record(&p, &snap, u).state, UserState::Ready);
    }
    assert_eq!(snap.dead_letters.len(), 1, "the third signup waits in the dead-letter queue");
    assert!(snap.dead_letters[0].contains(refused[0].as_str()));
    assert_eq!(snap.metrics["GroupQuotaReached"].0, 10, "one per receive, ten receives");
    assert_eq!(snap.calls["CreateAutoScalingGroup"], 12, "two users, and the third's ten tries");
}

/// Auto Scaling replaces a ready user's host (a failed health check, a retirement) with a
/// blank instance: the flow initialises it for the user (cold: it was never prepared),
/// records it, and says so on the ready queue.
#[tokio::test(start_paused = true)]
async fn a_ready_users_replaced_host_is_initialised_and_announced() {
    let p = Platform::start(PlatformOptions { pool: 1, ..PlatformOptions::default() });
    let all = users(1);
    p.signup(&all[0]);
    assert!(p.run_until_settled(&all, DEADLINE_S).await);
    let old = record(&p, &p.snapshot(), &all[0]).instance.unwrap();
    p.cloud().fail_health_check(&old);
    // The group launches the replacement, which boots; its init (the full preparation)
    // runs for minutes.
    tokio::time::sleep(std::time::Duration::from_mins(3)).await;
    assert_eq!(record(&p, &p.snapshot(), &all[0]).state, UserState::Initializing, "the new host is being set up");
    assert!(p.run_until_settled(&all, DEADLINE_S).await);
    assert_invariants(&p, &all);
    let snap = p.snapshot();
    let r = record(&p, &snap, &all[0]);
    let new = r.instance.clone().unwrap();
    assert_ne!(new, old);
    assert_eq!((r.state, r.replaced.as_deref()), (UserState::Ready, Some(old.as_str())));
    assert_eq!(snap.groups[&p.config().user_group(&all[0])], vec![new.clone()]);
    let messages = ready_messages(&snap);
    assert_eq!(messages.len(), 2, "ready, then ready again on the new host");
    assert_eq!(messages[0].replaced_instance_id, None);
    assert_eq!(
        (messages[1].instance_id.as_str(), messages[1].replaced_instance_id.as_deref()),
        (new.as_str(), Some(old.as_str()))
    );
    assert_eq!(snap.metrics["HostReplaced"].0, 1);
    assert_eq!(snap.metrics["TimeToReady"].0, 1, "a replacement is not a signup's time to ready");
}

/// With Auto Scaling answering `ScalingActivityInProgress` to every resize or terminate of
/// a group that is launching (the pool refilling, mostly), the pool-sizer's resizes and
/// the flow's terminates are retried until they pass, and everyone is served.
#[tokio::test(start_paused = true)]
async fn scaling_activities_in_progress_delay_resizes_and_terminates_but_block_nobody() {
    let model = CloudModel { activity_in_progress_rate: 1.0, ..CloudModel::default() };
    let p = Platform::start(PlatformOptions { pool: 4, model, pool_sizer_every_s: 60, ..PlatformOptions::default() });
    p.cloud().fail_next_inits(2);
    let all = users(8);
    for u in &all {
        p.signup(u);
    }
    assert!(p.run_until_settled(&all, DEADLINE_S).await);
    assert_invariants(&p, &all);
    let refused = p.cloud().timeline().iter().filter(|e| e.text.contains("ScalingActivityInProgress")).count();
    assert!(refused > 0, "the model refused some calls");
    let snap = p.snapshot();
    for u in &all {
        assert_eq!(record(&p, &snap, u).state, UserState::Ready, "{u}");
    }
}

/// The Launch Successful event after an attach arrives late, after the sweep's stall: the
/// re-drive sends the init, and the late event finds it sent.
#[tokio::test(start_paused = true)]
async fn a_late_launch_event_finds_the_init_the_sweep_sent() {
    let p = Platform::start(PlatformOptions { pool: 1, launch_event_delay_s: 600, ..PlatformOptions::default() });
    let all = users(1);
    p.signup(&all[0]);
    assert!(p.run_until_settled(&all, DEADLINE_S).await);
    // Past the late event too.
    tokio::time::sleep(std::time::Duration::from_mins(10)).await;
    assert_invariants(&p, &all);
    let inits = p.cloud().sent_commands().into_iter().filter(|c| c.document == p.config().user_init_document).count();
    assert_eq!(inits, 1, "one init, from the re-drive");
    let r = record(&p, &p.snapshot(), &all[0]);
    assert!(r.ready_at_ms.unwrap() - r.requested_at_ms < 600_000, "ready before the late event came");
    assert_eq!(ready_messages(&p.snapshot()).len(), 1);
}

/// `WARM_ATTEMPTS` counts pool instances a user used: an attempt that ran cold (the pool
/// could not serve) does not count, so its failover is served from the refilled pool.
#[tokio::test(start_paused = true)]
async fn a_failed_cold_attempt_fails_over_to_the_pool_within_one_warm_attempt() {
    let p = Platform::start(PlatformOptions {
        pool: 2,
        overrides: vec![cold_at_once(), ("WARM_ATTEMPTS".into(), "1".into()), ("MAX_ATTEMPTS".into(), "3".into())],
        ..PlatformOptions::default()
    });
    // Every pool instance is someone else's at first: the first attempt runs cold.
    let pool = claim_the_whole_pool(&p);
    p.cloud().fail_next_inits(1);
    let all = users(1);
    p.signup(&all[0]);
    tokio::time::sleep(std::time::Duration::from_mins(2)).await;
    assert_eq!(record(&p, &p.snapshot(), &all[0]).path, Path::Cold);
    // The pool serves again before the cold init fails.
    for id in &pool {
        p.cloud().delete_claim(id);
    }
    assert!(p.run_until_settled(&all, DEADLINE_S).await);
    assert_invariants(&p, &all);
    let snap = p.snapshot();
    let r = record(&p, &snap, &all[0]);
    assert_eq!((r.state, r.attempt, r.cold_attempts), (UserState::Ready, 2, 1));
    assert_eq!(r.path, Path::Warm, "the failover went to the pool");
    assert!(pool.contains(r.instance.as_ref().unwrap()));
}

#[tokio::test(start_paused = true)]
async fn a_duplicated_signup_message_yields_one_instance() {
    let p = Platform::start(PlatformOptions { pool: 5, ..PlatformOptions::default() });
    let all = users(1);
    // Two copies with different deduplication ids (a producer retry), back to back.
    p.signup(&all[0]);
    p.signup(&all[0]);
    assert!(p.run_until_settled(&all, DEADLINE_S).await);
    // A third copy after the user is ready.
    p.signup(&all[0]);
    assert!(p.run_until_settled(&all, DEADLINE_S).await);
    assert_invariants(&p, &all);
    let snap = p.snapshot();
    assert_eq!(snap.groups[&p.config().user_group(&all[0])].len(), 1);
    assert_eq!(snap.calls["DetachInstances"], 1, "one pool instance claimed");
    assert_eq!(snap.calls["AttachInstances"], 1);
    let inits = p.cloud().timeline().iter().filter(|e| e.text.starts_with("SendCommand warmpool-user-init")).count();
    assert_eq!(inits, 1, "one user-init");
    assert_eq!(ready_messages(&snap).len(), 1);
    assert_eq!(record(&p, &snap, &all[0]).attempt, 1);
}

#[tokio::test(start_paused = true)]
async fn a_malformed_message_is_dead_lettered_and_does_not_block_others() {
    let p = Platform::start(PlatformOptions { pool: 2, max_receive_count: 3, ..PlatformOptions::default() });
    p.send_raw(r#"{"user_id":"$(reboot)","signup_id":"s"}"#, "bad");
    let all = users(1);
    p.signup(&all[0]);
    assert!(p.run_until_settled(&all, DEADLINE_S).await);
    assert_invariants(&p, &all);
    let snap = p.snapshot();
    assert_eq!(snap.dead_letters.len(), 1, "the malformed message went to the DLQ at once");
    let received: Vec<_> = p.cloud().timeline().into_iter().filter(|e| e.text.contains("$(reboot)")).collect();
    assert!(received.len() <= 1, "received once, not retried: {received:?}");
    assert!(snap.tags.keys().all(|g| !g.contains("reboot")));
}

#[tokio::test(start_paused = true)]
async fn a_delete_message_tears_the_user_group_down() {
    let p = Platform::start(PlatformOptions { pool: 2, ..PlatformOptions::default() });
    let all = users(1);
    p.signup(&all[0]);
    assert!(p.run_until_settled(&all, DEADLINE_S).await);
    let instance = record(&p, &p.snapshot(), &all[0]).instance.unwrap();
    p.send_raw(&format!(r#"{{"kind":"delete","user_id":"{0}","signup_id":"s-{0}"}}"#, all[0]), &all[0]);
    tokio::time::sleep(std::time::Duration::from_mins(2)).await;
    let snap = p.snapshot();
    assert!(!snap.groups.contains_key(&p.config().user_group(&all[0])));
    assert!(snap.terminated.contains(&instance));
    assert!(snap.outside.is_empty());
}

#[test]
fn the_demo_is_deterministic_for_a_seed() {
    let opts = warmpool_sim::demo::DemoOptions { users: 8, pool: 3, seed: 5, ..Default::default() };
    let a = warmpool_sim::demo::run(&opts).unwrap();
    let b = warmpool_sim::demo::run(&opts).unwrap();
    assert_eq!(a.report, b.report);
    assert!(a.settled);
    assert_eq!(a.report.summary.warm, 3);
}

/// A user group whose record names another user (tags edited by hand, a name shared by
/// two deployments) is an inconsistency to report, never a record to act on.
#[tokio::test(start_paused = true)]
async fn a_group_carrying_another_users_record_is_reported_not_acted_on() {
    use warmpool_core::domain::{Id, RedriveMessage, tag};
    use warmpool_core::error::FlowError;
    use warmpool_core::flow::reconcile::handle_redrive;
    use warmpool_core::ports::AutoScaling;
    let p = Platform::start(PlatformOptions { pool: 1, ..PlatformOptions::default() });
    let all = users(1);
    p.signup(&all[0]);
    assert!(p.run_until_settled(&all, DEADLINE_S).await);
    let group = p.config().user_group(&all[0]);
    p.cloud().tag_group(&group, &[(tag::USER_ID.to_owned(), "u-9999".to_owned())]).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    let message = RedriveMessage::User { user_id: Id::parse("user id", &all[0]).unwrap() };
    let outcome = handle_redrive(p.cloud(), p.config(), &message).await;
    assert!(
        matches!(&outcome, Err(FlowError::Inconsistent { message, .. }) if message.contains("u-9999")),
        "{outcome:?}"
    );
}

/// A failover's resume reaches the signup function a moment after the record that asks
/// for it was written, which the group's description (tags lag their writes) may not
/// show yet: the resume reads the group again until it shows the attempt, instead of
/// failing its message and waiting a redelivery.
#[tokio::test(start_paused = true)]
async fn a_resume_ahead_of_the_groups_description_reads_it_again() {
    // The logs, kept to look for a resume that gave up on its read.
    let (captured, _guard) = capture_logs();

    let model = CloudModel { stale_read_ms: (2_000, 2_000), ..CloudModel::default() };
    let p = Platform::start(PlatformOptions { model, pool: 2, ..PlatformOptions::default() });
    p.cloud().fail_next_inits(1);
    let all = vec!["u-0001".to_owned()];
    p.signup(&all[0]);
    assert!(p.run_until_settled(&all, DEADLINE_S).await);
    let report = assert_invariants(&p, &all);
    let user = &report.users[0];
    assert_eq!((user.state.as_str(), user.attempts), ("ready", 2), "{user:?}");
    let logs = captured.text();
    assert!(logs.contains("failover handed to the signup function"), "the failover's resume was sent");
    assert!(!logs.contains("does not show attempt"), "a resume gave up on its read:\n{logs}");
    assert!(p.snapshot().stale_reads > 0);
}

/// `WARM_ATTEMPTS` 0 (the template allows it: an operator who wants no user served from
/// the pool) sends every attempt down the cold path, whatever the pool holds.
#[tokio::test(start_paused = true)]
async fn with_no_warm_attempts_allowed_every_user_goes_cold() {
    let p = Platform::start(PlatformOptions {
        pool: 2,
        overrides: vec![("WARM_ATTEMPTS".into(), "0".into())],
        ..PlatformOptions::default()
    });
    let all = users(2);
    for u in &all {
        p.signup(u);
    }
    assert!(p.run_until_settled(&all, DEADLINE_S).await);
    let report = assert_invariants(&p, &all);
    for u in &report.users {
        assert_eq!((u.state.as_str(), u.path.as_str(), u.attempts), ("ready", "cold", 1), "{u:?}");
    }
    assert_eq!(p.snapshot().calls.get("DetachInstances"), None, "no pool instance was taken");
}

/// A failed user's signup sent again (a producer's retry past SQS's five-minute
/// deduplication, an operator's resend) starts nothing: the user stays failed, with no
/// instance, and its group asks for none. Whether the user failed on its host's init or
/// on launches that never succeeded (its record then names no instance).
#[tokio::test(start_paused = true)]
async fn a_failed_users_signup_sent_again_launches_nothing() {
    let one_attempt = vec![("WARM_ATTEMPTS".into(), "1".into()), ("MAX_ATTEMPTS".into(), "1".into())];
    for launches_fail in [false, true] {
        let p = Platform::start(PlatformOptions {
            pool: if launches_fail { 0 } else { 3 },
            overrides: one_attempt.clone(),
            ..PlatformOptions::default()
        });
        if launches_fail {
            p.cloud().fail_next_launches(1_000);
        } else {
            p.cloud().fail_next_inits(1);
        }
        let all = users(1);
        p.signup(&all[0]);
        assert!(p.run_until_settled(&all, DEADLINE_S).await);
        assert_eq!(record(&p, &p.snapshot(), &all[0]).state, UserState::Failed);
        tokio::time::sleep(std::time::Duration::from_mins(10)).await;
        let launched = p.snapshot().calls.get("SetDesiredCapacity").copied().unwrap_or(0);
        p.signup(&all[0]);
        tokio::time::sleep(std::time::Duration::from_mins(15)).await;
        let snap = p.snapshot();
        assert_eq!(p.cloud().backlog(warmpool_sim::SIGNUP_QUEUE), 0, "the message was handled");
        assert_eq!(record(&p, &snap, &all[0]).state, UserState::Failed);
        assert!(snap.groups[&p.config().user_group(&all[0])].is_empty(), "a failed user keeps no instance");
        let asked = snap.calls.get("SetDesiredCapacity").copied().unwrap_or(0);
        assert_eq!(asked, launched, "nothing asked for an instance (launches fail: {launches_fail})");
    }
}

/// A signup that died right after asking for the detach is resumed while the instance is
/// still detaching (a 25 s detach): the resume waits for it in its own invocation and
/// moves the instance, rather than giving up and waiting for another retry.
#[tokio::test(start_paused = true)]
async fn a_resumed_move_waits_for_a_detach_still_in_progress() {
    use warmpool_sim::{FaultKind, Faults};
    let model = CloudModel { detach_s: (25.0, 25.0), ..CloudModel::default() };
    let clean = Platform::start(PlatformOptions { model: model.clone(), pool: 2, ..PlatformOptions::default() });
    let all = vec!["u-0001".to_owned()];
    clean.signup(&all[0]);
    assert!(clean.run_until_settled(&all, DEADLINE_S).await);
    let detach = clean.cloud().call_log().iter().position(|(_, op)| op == "DetachInstances").unwrap();

    let (captured, _guard) = capture_logs();
    let faults = Faults { at_call: Some((detach as u64, FaultKind::CrashAfter)), ..Faults::default() };
    let p = Platform::start(PlatformOptions { model, pool: 2, faults, ..PlatformOptions::default() });
    p.signup(&all[0]);
    assert!(p.run_until_settled(&all, DEADLINE_S).await);
    assert_eq!(p.cloud().fired_faults().len(), 1, "the signup died after its detach");
    let report = assert_invariants(&p, &all);
    assert_eq!((report.users[0].state.as_str(), report.users[0].path.as_str()), ("ready", "warm"));
    assert_eq!(p.snapshot().calls["DetachInstances"], 1, "one detach for the claim");
    let logs = captured.text();
    assert!(logs.contains("redelivered signup resumes its user"), "the signup was resumed");
    assert!(!logs.contains("is still detaching"), "the resume gave up on the detach:\n{logs}");
}

/// As the detach ends, another group takes the claimed instance (someone with access
/// attached it by hand): the move, looking for the end of its detach, sees where the
/// instance went, gives it up, and serves the user from another pool instance in the
/// same invocation (not waiting for a retry as if the detach were still going). The
/// taken instance is never the user's host and never runs the user's init.
#[tokio::test(start_paused = true)]
async fn a_claimed_instance_taken_into_another_group_is_given_up_for_another() {
    use warmpool_core::ports::{AutoScaling, UserGroupSpec};
    let model = CloudModel { detach_s: (3.0, 3.0), stale_read_ms: (0, 0), ..CloudModel::default() };
    let p = Platform::start(PlatformOptions { model, pool: 3, ..PlatformOptions::default() });
    let cfg = p.config().clone();
    let other = UserGroupSpec {
        name: "someone-elses-group".into(),
        launch_template: cfg.launch_template.clone(),
        subnets: cfg.subnets.clone(),
        tags: Vec::new(),
    };
    p.cloud().create_user_group(&other).await.unwrap();
    let (captured, _guard) = capture_logs();
    let all = vec!["u-0001".to_owned()];
    p.signup(&all[0]);
    // The moment the detach ends (the signup looks again within 4 s), the other group
    // takes the instance.
    let taken = loop {
        let detached = p.cloud().timeline().into_iter().find(|e| e.text.contains("detached from"));
        if let Some(e) = detached {
            break e.text.split(' ').next().unwrap().to_owned();
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    p.cloud().attach_instance(&other.name, &taken).await.unwrap();
    assert!(p.run_until_settled(&all, DEADLINE_S).await);
    let snap = p.snapshot();
    let report = Report::build(&cfg, &snap, &all, 0.0);
    assert_eq!(report.violations(), Vec::<String>::new());
    let user = &report.users[0];
    assert_eq!((user.state.as_str(), user.path.as_str()), ("ready", "warm"), "{user:?}");
    assert_ne!(user.instance_id.as_deref(), Some(taken.as_str()));
    assert_eq!(snap.groups[&other.name], vec![taken.clone()], "the other group keeps what it took");
    let logs = captured.text();
    assert!(logs.contains("claimed instance is not ours to move"), "the move saw it go:\n{logs}");
    assert!(!logs.contains("message failed"), "served in the same invocation:\n{logs}");
}

/// The index of the signup's `AttachInstances` (of a pool instance into the user's group)
/// in a clean run of one user on `model`, and that run's host.
async fn the_signups_attach(model: &CloudModel) -> (u64, String) {
    let clean = Platform::start(PlatformOptions { model: model.clone(), pool: 3, ..PlatformOptions::default() });
    let all = vec!["u-0001".to_owned()];
    clean.signup(&all[0]);
    assert!(clean.run_until_settled(&all, DEADLINE_S).await);
    let points = clean.cloud().call_log();
    let attach = points.iter().position(|(f, op)| f == "signup" && op == "AttachInstances").unwrap();
    let host = record(&clean, &clean.snapshot(), &all[0]).instance.unwrap();
    (attach as u64, host)
}

/// A duplicate of the signup (a redelivery racing it) attaches the claimed instance to
/// the user's group just before this run's attach, which AWS then refuses as already in
/// a group. The refusal is the truth, and the listing that does not show the duplicate's
/// attach yet lags it: the move reads again until it does, takes the instance as
/// attached, and the user is served in this invocation, on that instance, with nothing
/// released or handed back.
#[tokio::test(start_paused = true)]
async fn an_attach_a_duplicate_run_made_first_is_taken_as_done() {
    use warmpool_sim::{FaultKind, Faults};
    // Every change shows to reads a second late: the move's first look after the
    // refusal cannot see the duplicate's attach.
    let model = CloudModel { stale_read_ms: (1_000, 1_000), detach_s: (3.0, 3.0), ..CloudModel::default() };
    let (attach, host) = the_signups_attach(&model).await;

    let (captured, _guard) = capture_logs();
    let faults = Faults { at_call: Some((attach, FaultKind::AttachedFirst(None))), ..Faults::default() };
    let p = Platform::start(PlatformOptions { model, pool: 3, faults, ..PlatformOptions::default() });
    let all = vec!["u-0001".to_owned()];
    p.signup(&all[0]);
    assert!(p.run_until_settled(&all, DEADLINE_S).await);
    assert_eq!(p.cloud().fired_faults().len(), 1, "the duplicate's attach came first");
    assert!(
        p.cloud().timeline().iter().any(|e| e.text.contains("by another caller, first, took effect")),
        "the duplicate's attach took effect"
    );
    let report = assert_invariants(&p, &all);
    assert_eq!((report.users[0].state.as_str(), report.users[0].path.as_str()), ("ready", "warm"));
    let snap = p.snapshot();
    assert_eq!(record(&p, &snap, &all[0]).instance.as_deref(), Some(host.as_str()), "served on the claimed instance");
    assert_eq!(snap.calls["AttachInstances"], 1, "nothing handed back to the pool");
    let logs = captured.text();
    assert!(logs.contains("an earlier run attached the instance already"), "the attach was refused:\n{logs}");
    assert!(!logs.contains("message failed"), "served in the same invocation:\n{logs}");
}

/// Someone attaches the claimed instance to another group between the move's last look
/// and its attach. The refusal names a group that is neither the user's nor the pool's:
/// the move gives the instance up (its claim released, the instance left where it went)
/// and serves the user from another pool instance in the same invocation.
#[tokio::test(start_paused = true)]
async fn an_instance_attached_elsewhere_before_the_move_attaches_it_is_given_up() {
    use warmpool_core::ports::{AutoScaling, UserGroupSpec};
    use warmpool_sim::{FaultKind, Faults};
    const OTHER: &str = "someone-elses-group";
    let model = CloudModel { stale_read_ms: (1_000, 1_000), detach_s: (3.0, 3.0), ..CloudModel::default() };
    let (attach, taken) = the_signups_attach(&model).await;

    let (captured, _guard) = capture_logs();
    let faults = Faults { at_call: Some((attach, FaultKind::AttachedFirst(Some(OTHER)))), ..Faults::default() };
    let p = Platform::start(PlatformOptions { model, pool: 3, faults, ..PlatformOptions::default() });
    let cfg = p.config().clone();
    let other = UserGroupSpec {
        name: OTHER.into(),
        launch_template: cfg.launch_template.clone(),
        subnets: cfg.subnets.clone(),
        tags: Vec::new(),
    };
    p.cloud().create_user_group(&other).await.unwrap();
    let all = vec!["u-0001".to_owned()];
    p.signup(&all[0]);
    assert!(p.run_until_settled(&all, DEADLINE_S).await);
    assert_eq!(p.cloud().fired_faults().len(), 1, "the other attach came first");
    let snap = p.snapshot();
    assert_eq!(snap.groups[OTHER], vec![taken.clone()], "the other group took the claimed instance");
    let report = Report::build(&cfg, &snap, &all, 0.0);
    assert_eq!(report.violations(), Vec::<String>::new());
    let user = &report.users[0];
    assert_eq!((user.state.as_str(), user.path.as_str()), ("ready", "warm"), "{user:?}");
    assert_ne!(user.instance_id.as_deref(), Some(taken.as_str()), "never the taken instance");
    assert!(!snap.claims.contains_key(&taken), "the taken instance's claim is released");
    let logs = captured.text();
    assert!(logs.contains("claimed instance was taken into another group"), "the refusal was read:\n{logs}");
    assert!(!logs.contains("message failed"), "served in the same invocation:\n{logs}");
}

/// The claimed instance is back in the pool when the move attaches it (AWS answers an
/// attach of an instance still finishing its detach the same way): the refusal names the
/// pool, so the claim is kept and the retry of the message resumes the move, detaching
/// it again. The user is served on the instance it claimed, not on another one.
#[tokio::test(start_paused = true)]
async fn an_instance_back_in_the_pool_when_the_move_attaches_it_is_moved_on_the_retry() {
    use warmpool_sim::{FaultKind, Faults};
    let model = CloudModel { stale_read_ms: (1_000, 1_000), detach_s: (3.0, 3.0), ..CloudModel::default() };
    let (attach, claimed) = the_signups_attach(&model).await;

    let (captured, _guard) = capture_logs();
    let pool_group = warmpool_sim::fixture::POOL_GROUP;
    let faults = Faults { at_call: Some((attach, FaultKind::AttachedFirst(Some(pool_group)))), ..Faults::default() };
    let p = Platform::start(PlatformOptions { model, pool: 3, faults, ..PlatformOptions::default() });
    assert_eq!(p.config().pool_group, pool_group);
    let all = vec!["u-0001".to_owned()];
    p.signup(&all[0]);
    assert!(p.run_until_settled(&all, DEADLINE_S).await);
    assert_eq!(p.cloud().fired_faults().len(), 1, "the attach into the pool came first");
    assert!(
        p.cloud()
            .timeline()
            .iter()
            .any(|e| e.text.contains(&format!("into {pool_group} by another caller, first, took effect"))),
        "the instance was back in the pool"
    );
    let report = assert_invariants(&p, &all);
    let user = &report.users[0];
    assert_eq!((user.state.as_str(), user.path.as_str()), ("ready", "warm"), "{user:?}");
    assert_eq!(user.instance_id.as_deref(), Some(claimed.as_str()), "served on the instance it claimed");
    // The claim is kept through the retry: released once (when the user is served), not
    // given up mid-move and taken again.
    assert_eq!(p.snapshot().calls["DeleteParameters"], 1, "the claim was kept");
    let logs = captured.text();
    assert!(logs.contains("the move resumes on the retry"), "the refusal kept the claim:\n{logs}");
}

/// A failover's host has its SSM agent down when the signup attaches it, so its init is
/// left to lifecycle, whose launch event waits for the agent. The record still names the
/// failed attempt's command (on the first host): having waited, lifecycle reads the
/// record again and sends the init, because that command is another host's, not this
/// one's. The user is ready on the second host without waiting for the sweep.
#[tokio::test(start_paused = true)]
async fn a_failovers_host_whose_agent_comes_back_is_initialised_by_its_launch_event() {
    let model = CloudModel { user_init_s: 1.0, ..CloudModel::default() };
    let p = Platform::start(PlatformOptions { model, pool: 2, ..PlatformOptions::default() });
    let pool_group = p.config().pool_group.clone();
    let all = users(1);
    let group = p.config().user_group(&all[0]);
    p.cloud().fail_next_inits(1);
    p.signup(&all[0]);
    // The first host is in the user's group: every agent left in the pool goes down.
    let first = loop {
        if let Some(host) = p.snapshot().groups.get(&group).and_then(|g| g.first().cloned()) {
            break host;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let down: Vec<String> = p.snapshot().groups[&pool_group].clone();
    assert!(!down.is_empty());
    for id in &down {
        p.cloud().set_agent_online(id, false);
    }
    // The failover attaches one of them; its agent is back 10 s later.
    let second = loop {
        if let Some(host) = p.snapshot().groups.get(&group).and_then(|g| g.iter().find(|h| **h != first).cloned()) {
            break host;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(down.contains(&second), "the failover took a pool instance whose agent is down");
    tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    for id in &down {
        p.cloud().set_agent_online(id, true);
    }
    assert!(p.run_until_settled(&all, DEADLINE_S).await);
    let r = record(&p, &p.snapshot(), &all[0]);
    assert_eq!((r.state, r.attempt, r.instance.as_deref()), (UserState::Ready, 2, Some(second.as_str())), "{r:?}");
    // The signup's send to the second host was refused (its agent down), and lifecycle's
    // went: the sweep's re-drive (the reconcile function) sent nothing.
    let senders: Vec<String> =
        p.cloud().call_log().into_iter().filter(|(_, op)| op == "SendCommand").map(|(f, _)| f).collect();
    assert_eq!(senders.iter().filter(|f| *f == "signup").count(), 2, "{senders:?}");
    assert!(!senders.iter().any(|f| f == "reconcile"), "not left to the sweep: {senders:?}");
    let inits = p.cloud().sent_commands();
    let to_second = inits.iter().filter(|c| c.document == p.config().user_init_document && c.instance_id == second);
    assert_eq!(to_second.count(), 1, "one init on the second host");
}

/// Status events of another document (any Run Command in the account that reaches the
/// function, though the template's rules filter by document too), even one naming the
/// user's current command id, are not this function's: ignored, the user untouched.
#[tokio::test(start_paused = true)]
async fn status_events_of_another_document_are_ignored() {
    use aws_lambda_events::event::eventbridge::EventBridgeEvent;
    use lambda_runtime::{Context, LambdaEvent};
    use serde_json::Value;
    let event = |json: &str, patch: &[(&str, &str)]| {
        let mut v: Value = serde_json::from_str(json).unwrap();
        for (k, val) in patch {
            v["detail"][*k] = (*val).into();
        }
        LambdaEvent::new(serde_json::from_value::<EventBridgeEvent<Value>>(v).unwrap(), Context::default())
    };
    // Every event lost: the user waits on its init until this test says otherwise.
    let p = Platform::start(PlatformOptions { pool: 1, drop_events: 1.0, ..PlatformOptions::default() });
    let all = users(1);
    p.signup(&all[0]);
    let command = loop {
        let r = p.snapshot().tags.get(&p.config().user_group(&all[0])).and_then(UserRecord::from_tags);
        if let Some(c) = r.and_then(|r| r.command_id) {
            break c;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let instance = record(&p, &p.snapshot(), &all[0]).instance.unwrap();
    let other = "AWS-RunShellScript";
    let samples = [
        include_str!("../../events/command-status/init-success.json"),
        include_str!("../../events/command-status/init-invocation-success.json"),
        include_str!("../../events/command-status/prep-failed.json"),
    ];
    for sample in samples {
        let e = event(sample, &[("command-id", &command), ("document-name", other), ("instance-id", &instance)]);
        let cfg = p.config_of(warmpool_core::Function::CommandStatus).clone();
        let outcome =
            warmpool_sim::invoke("command-status", warmpool_command_status::handler(p.cloud(), &cfg, e)).await;
        let outcome = format!("{outcome:?}");
        assert!(outcome.contains("not a status this function acts on"), "{outcome}");
    }
    let r = record(&p, &p.snapshot(), &all[0]);
    assert_eq!((r.state, r.command_id.as_deref()), (UserState::Initializing, Some(command.as_str())));
}

/// A `Launch Unsuccessful` for a user group that reaches lifecycle while the user holds
/// its host (an event of an earlier attempt's failed launch, delivered late or twice),
/// past the launch grace since the record moved: the user is not waiting for a launch,
/// so the event is ignored, while the host's init runs and after the user is ready. The
/// attempt is not ended and the host stays.
#[tokio::test(start_paused = true)]
async fn a_launch_failure_event_for_a_user_holding_its_host_is_ignored() {
    // The init runs ten minutes (within its timeout): the user is `initializing` on its
    // host meanwhile.
    let model = CloudModel { user_init_s: 600.0, ..CloudModel::default() };
    let overrides = vec![("INIT_TIMEOUT_WARM_S".into(), "900".into())];
    let p = Platform::start(PlatformOptions { model, pool: 1, overrides, ..PlatformOptions::default() });
    let all = users(1);
    let group = p.config().user_group(&all[0]);
    p.signup(&all[0]);
    while p.snapshot().tags.get(&group).and_then(UserRecord::from_tags).and_then(|r| r.command_id).is_none() {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let host = record(&p, &p.snapshot(), &all[0]).instance.unwrap();
    let deliver =
        || deliver_lifecycle(&p, include_str!("../../events/lifecycle/user-launch-unsuccessful.json"), &group, None);
    tokio::time::sleep(std::time::Duration::from_mins(2)).await;
    let outcome = deliver().await;
    assert!(outcome.contains("not waiting for a launch"), "{outcome}");
    let r = record(&p, &p.snapshot(), &all[0]);
    assert_eq!((r.state, r.attempt, r.instance.as_deref()), (UserState::Initializing, 1, Some(host.as_str())));
    assert_eq!(p.snapshot().groups[&group], vec![host.clone()], "the host stays");

    assert!(p.run_until_settled(&all, DEADLINE_S).await);
    let outcome = deliver().await;
    assert!(outcome.contains("not waiting for a launch"), "{outcome}");
    assert_invariants(&p, &all);
    let r = record(&p, &p.snapshot(), &all[0]);
    assert_eq!((r.state, r.attempt, r.instance.as_deref()), (UserState::Ready, 1, Some(host.as_str())));
}

/// A failover of a failing cold launch that died right after stopping the group (desired
/// capacity 0, the first step of ending the attempt) leaves an `initializing` user whose
/// group asks for nothing and holds nothing. A `Launch Unsuccessful` event for it (a late
/// or repeated one) does not end the attempt a second time: the user is not waiting for
/// a launch. The sweep finds the user without an instance and acquires again, under the
/// same attempt, and the user is served.
#[tokio::test(start_paused = true)]
async fn a_launch_failure_event_after_the_group_stopped_launching_is_left_to_the_sweep() {
    use warmpool_core::ports::AutoScaling;
    let p = Platform::start(PlatformOptions {
        pool: 1,
        drop_events: 1.0,
        reconcile_every_s: 30,
        ..PlatformOptions::default()
    });
    claim_the_whole_pool(&p);
    // Auto Scaling tries every 10 s: about 70 s of failed launches.
    p.cloud().fail_next_launches(7);
    let all = users(1);
    let group = p.config().user_group(&all[0]);
    p.signup(&all[0]);
    while p
        .snapshot()
        .tags
        .get(&group)
        .and_then(UserRecord::from_tags)
        .is_none_or(|r| r.state != UserState::Initializing)
    {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Past the launch grace, the failover stops the group, and dies.
    tokio::time::sleep(std::time::Duration::from_secs(65)).await;
    p.cloud().set_desired_capacity(&group, 0).await.unwrap();
    // The event comes later than the group's description shows the change.
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    let outcome =
        deliver_lifecycle(&p, include_str!("../../events/lifecycle/user-launch-unsuccessful.json"), &group, None).await;
    assert!(outcome.contains("not waiting for a launch"), "{outcome}");
    let r = record(&p, &p.snapshot(), &all[0]);
    assert_eq!((r.state, r.attempt), (UserState::Initializing, 1), "the attempt is not ended twice: {r:?}");

    assert!(p.run_until_settled(&all, DEADLINE_S).await);
    assert_invariants(&p, &all);
    let r = record(&p, &p.snapshot(), &all[0]);
    assert_eq!((r.state, r.attempt, r.path), (UserState::Ready, 1, Path::Cold), "{r:?}");
}

/// While a user is `claiming` (here a failover has just begun, the record moved and the
/// old host still in the group), a launch event for an instance in its group that is not
/// the claimed one (one Auto Scaling launched to replace the old host) is ignored: the
/// run claiming for the user decides its host, and an init recorded now would clobber
/// the claim. Nothing is sent and the record is untouched.
#[tokio::test(start_paused = true)]
async fn a_launch_event_while_the_user_is_claiming_is_left_to_the_claim() {
    use warmpool_core::domain::tag;
    use warmpool_core::ports::AutoScaling;
    let p = Platform::start(PlatformOptions { pool: 1, ..PlatformOptions::default() });
    let all = users(1);
    let group = p.config().user_group(&all[0]);
    p.signup(&all[0]);
    assert!(p.run_until_settled(&all, DEADLINE_S).await);
    // A failover begins: the record says claiming, attempt 2.
    p.cloud()
        .tag_group(&group, &[(tag::STATE.to_owned(), "claiming".to_owned()), (tag::ATTEMPT.to_owned(), "2".to_owned())])
        .await
        .unwrap();
    let replacement = p.cloud().attach_foreign_instance(&group);
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    let before = record(&p, &p.snapshot(), &all[0]);
    assert_eq!(before.state, UserState::Claiming);
    let sends = || p.cloud().call_log().iter().filter(|(_, op)| op == "SendCommand").count();
    let sent = sends();
    let outcome = deliver_lifecycle(
        &p,
        include_str!("../../events/lifecycle/user-launch-successful.json"),
        &group,
        Some(&replacement),
    )
    .await;
    assert!(outcome.contains("a claim in flight"), "{outcome}");
    assert_eq!(sends(), sent, "no init sent");
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    assert_eq!(record(&p, &p.snapshot(), &all[0]), before, "the record is untouched");
}

/// The instance a user's cold launch brought up is locked by another user (a claim left
/// on it by a run gone wrong): lifecycle does not take that lock for the user's own, and
/// sends no init; the event fails with an error naming the holder, for an operator.
#[tokio::test(start_paused = true)]
async fn an_instance_locked_by_another_user_is_not_initialised() {
    let p = Platform::start(PlatformOptions { pool: 1, drop_events: 1.0, ..PlatformOptions::default() });
    claim_the_whole_pool(&p);
    let all = users(1);
    let group = p.config().user_group(&all[0]);
    p.signup(&all[0]);
    let host = loop {
        if let Some(host) = p.snapshot().groups.get(&group).and_then(|g| g.first().cloned()) {
            break host;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    p.cloud().put_claim(&host, "u-someone-else");
    tokio::time::sleep(std::time::Duration::from_mins(1)).await;
    let outcome =
        deliver_lifecycle(&p, include_str!("../../events/lifecycle/user-launch-successful.json"), &group, Some(&host))
            .await;
    assert!(outcome.contains("Err") && outcome.contains("locked by u-someone-else"), "{outcome}");
    assert!(!p.cloud().call_log().iter().any(|(_, op)| op == "SendCommand"), "no init sent");
    assert_eq!(
        p.snapshot().claims.get(&host).map(|(owner, _)| owner.as_str()),
        Some("u-someone-else"),
        "the lock is not taken over"
    );
}

/// Lifecycle sends a cold host's init and dies before recording it; the init succeeds
/// meanwhile (its status event is ignored: the record names no command). Lambda's retry
/// of the launch event takes the stale lock over, finds the init in SSM's history and
/// records it, but does not apply its outcome: lifecycle may not send the ready message
/// or fail over. The outcome is the sweep's (or the re-drive's), and the user is ready
/// on its first attempt.
#[tokio::test(start_paused = true)]
async fn lifecycle_records_an_ended_init_it_finds_but_leaves_its_outcome_to_the_sweep() {
    use warmpool_sim::{FaultKind, Faults};
    // A cold init runs the preparation and the user's part: 20 s in all, done before the
    // launch event's retry a minute later.
    let model = CloudModel { prep_s: 10.0, user_init_s: 10.0, ..CloudModel::default() };
    let send = {
        let clean = Platform::start(PlatformOptions {
            model: model.clone(),
            pool: 1,
            overrides: vec![cold_at_once()],
            ..PlatformOptions::default()
        });
        claim_the_whole_pool(&clean);
        let all = users(1);
        clean.signup(&all[0]);
        assert!(clean.run_until_settled(&all, DEADLINE_S).await);
        let points = clean.cloud().call_log();
        points.iter().position(|(f, op)| f == "lifecycle" && op == "SendCommand").unwrap() as u64
    };
    let faults = Faults { at_call: Some((send, FaultKind::CrashAfter)), ..Faults::default() };
    let p = Platform::start(PlatformOptions {
        model,
        pool: 1,
        faults,
        overrides: vec![cold_at_once()],
        ..PlatformOptions::default()
    });
    claim_the_whole_pool(&p);
    let all = users(1);
    p.signup(&all[0]);
    assert!(p.run_until_settled(&all, DEADLINE_S).await);
    let fired = p.cloud().fired_faults();
    assert_eq!(fired.len(), 1);
    assert_eq!((fired[0].1.function.as_str(), fired[0].1.op.as_str()), ("lifecycle", "SendCommand"));
    let log = p.cloud().call_log();
    assert_eq!(log.iter().filter(|(_, op)| op == "SendCommand").count(), 1, "one init: the retry found it");
    let ready_by: Vec<&str> = log.iter().filter(|(_, op)| op == "SendMessage").map(|(f, _)| f.as_str()).collect();
    assert!(!ready_by.is_empty() && !ready_by.contains(&"lifecycle"), "the outcome is not lifecycle's: {ready_by:?}");
    assert_invariants(&p, &all);
    let r = record(&p, &p.snapshot(), &all[0]);
    assert_eq!((r.state, r.attempt, r.path), (UserState::Ready, 1, Path::Cold), "{r:?}");
}

/// Lifecycle takes a cold host's init lock and its `SendCommand` is refused: the agent
/// went away between the look and the send. It waits for the agent again, which comes
/// back 25 s later, past the 10 s in which a lock's holder may still send (after that,
/// another run may take the lock over once it is 30 s old). So it sends nothing and
/// fails; a later run (the sweep's re-drive, or Lambda's retry of the event) takes the
/// stale lock over, asks SSM (nothing was sent) and sends the one init.
#[tokio::test(start_paused = true)]
async fn a_lock_holder_does_not_send_past_its_window() {
    let (captured, _guard) = capture_logs();
    let p = Platform::start(PlatformOptions { pool: 1, overrides: vec![cold_at_once()], ..PlatformOptions::default() });
    claim_the_whole_pool(&p);
    let all = users(1);
    let group = p.config().user_group(&all[0]);
    p.signup(&all[0]);
    // The moment lifecycle takes the lock (its first PutParameter), the agent goes away.
    let lock_taken = || p.cloud().call_log().iter().any(|(f, op)| f == "lifecycle" && op == "PutParameter");
    while !lock_taken() {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let host = p.snapshot().groups[&group][0].clone();
    p.cloud().set_agent_online(&host, false);
    tokio::time::sleep(std::time::Duration::from_secs(25)).await;
    p.cloud().set_agent_online(&host, true);
    assert!(p.run_until_settled(&all, DEADLINE_S).await);
    let log = p.cloud().call_log();
    let sends: Vec<&str> = log.iter().filter(|(_, op)| op == "SendCommand").map(|(f, _)| f.as_str()).collect();
    assert_eq!((sends.len(), sends[0]), (2, "lifecycle"), "one refused, one sent by a later run: {sends:?}");
    let logs = captured.text();
    assert!(logs.contains("SendCommand says the agent is not ready"), "the send was refused:\n{logs}");
    assert!(logs.contains("past its lock's send window"), "the holder gave up at its window:\n{logs}");
    assert_invariants(&p, &all);
}

/// A cold launch that Auto Scaling is still retrying (its first launches failed) is
/// given its grace by the sweep too, even when the sweep's stall is shorter than the
/// grace: every event lost, the sweep every 10 s with a 30 s stall sees the user with
/// no instance for about 40 s, and waits; the launch then succeeds and the user is
/// ready on its first attempt.
#[tokio::test(start_paused = true)]
async fn the_sweep_gives_a_retried_cold_launch_its_grace() {
    let (captured, _guard) = capture_logs();
    let p = Platform::start(PlatformOptions {
        pool: 1,
        drop_events: 1.0,
        reconcile_every_s: 10,
        overrides: vec![cold_at_once(), ("RECONCILE_STALL_S".into(), "30".into())],
        ..PlatformOptions::default()
    });
    claim_the_whole_pool(&p);
    // Auto Scaling tries every 10 s: about 40 s without an instance.
    p.cloud().fail_next_launches(4);
    let all = users(1);
    p.signup(&all[0]);
    assert!(p.run_until_settled(&all, DEADLINE_S).await);
    let r = record(&p, &p.snapshot(), &all[0]);
    assert_eq!((r.state, r.attempt, r.path), (UserState::Ready, 1, Path::Cold), "{r:?}");
    let failed = p.cloud().timeline().iter().filter(|e| e.text.contains("launch failed")).count();
    assert!(failed >= 3, "the first launches failed ({failed})");
    // The sweep did see the user stalled (past its 30 s), and the re-drive it queued
    // left the launch alone.
    let logs = captured.text();
    assert!(logs.contains("reconcile queued a stalled user's re-drive"), "the sweep saw the stall:\n{logs}");
    assert!(!logs.contains("cold launch failing"), "the launch was given its grace:\n{logs}");
}
