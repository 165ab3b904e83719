//! The operator's commands (`warmpool status`, `signup`, `delete`) on the in-memory
//! cloud, a deployment in motion: what `status` reports is checked against the cloud's
//! own ground truth, and `signup` and `delete` are safe to repeat. (The same commands run
//! over the SDK adapters against moto in `shared/aws/tests/moto.rs`, `moto_operator_*`.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::time::Duration;

use warmpool_core::domain::UserRecord;
use warmpool_core::operator::{self, MessageKind};
use warmpool_sim::fixture;
use warmpool_sim::platform::{Platform, PlatformOptions};

const DEADLINE_S: u64 = 1800;

fn user_record(p: &Platform, user: &str) -> UserRecord {
    let tags = p.snapshot().tags[&p.config().user_group(user)].clone();
    UserRecord::from_tags(&tags).expect("user group carries a record")
}

fn user_groups(p: &Platform) -> usize {
    p.snapshot().groups.keys().filter(|g| g.starts_with(&p.config().user_group_prefix)).count()
}

#[tokio::test(start_paused = true)]
async fn status_reports_the_pool_the_users_the_orphans_and_the_queues_as_the_cloud_holds_them() {
    let p = Platform::start(PlatformOptions { pool: 3, ..PlatformOptions::default() });
    let dep = fixture::deployment(p.config());
    let users: Vec<String> = (1..=2).map(|i| format!("u-{i}")).collect();
    for u in &users {
        p.signup(u);
    }
    assert!(p.run_until_settled(&users, DEADLINE_S).await);
    // An instance left outside every group (an orphan), and a malformed signup in the
    // signup dead-letter queue.
    let pool_group = p.config().pool_group.clone();
    let orphan = p.snapshot().groups[&pool_group][0].clone();
    p.cloud().detach_by_hand(&pool_group, &orphan);
    p.send_raw(r#"{"kind":"signup","user_id":"bad id!","signup_id":"s-1"}"#, "bad");
    tokio::time::sleep(Duration::from_secs(30)).await;

    let s = operator::status(p.cloud(), &dep).await.unwrap();
    let snap = p.snapshot();
    assert_eq!(s.pool.group, pool_group);
    assert_eq!(s.pool.desired, p.cloud().group_size(&pool_group).unwrap().desired, "desired as the group has it");
    assert_eq!(s.pool.by_state.values().sum::<u32>() as usize, snap.groups[&pool_group].len());
    assert_eq!(s.users.total, 2);
    assert_eq!(s.users.by_state["ready"].0, 2, "{:?}", s.users);
    assert_eq!(s.users.by_state["failed"].0, 0);
    assert!(s.stalled.is_empty(), "{:?}", s.stalled);
    assert_eq!(s.orphans, vec![orphan.clone()], "the instance outside every group, with no claim");
    let dlq = s.queues.iter().find(|q| q.name == "signup DLQ").unwrap();
    assert_eq!(dlq.depth.visible, 1, "the malformed signup");
    assert!(s.needs_attention());
    let table = s.render();
    assert!(table.contains(&format!("orphan {orphan}")) && table.contains("<- needs a look"), "{table}");
}

#[tokio::test(start_paused = true)]
async fn status_names_a_user_stalled_past_the_threshold() {
    let p = Platform::start(PlatformOptions {
        pool: 0,
        overrides: vec![("POOL_WAIT_S".into(), "0".into())],
        ..PlatformOptions::default()
    });
    let dep = fixture::deployment(p.config());
    // A cold user's init runs for minutes: past the stall threshold while SSM lists it
    // running (the sweep leaves it alone), so status lists it stalled, with its state.
    p.signup("u-slow");
    tokio::time::sleep(Duration::from_secs(u64::from(dep.stall_s) + 240)).await;
    let s = operator::status(p.cloud(), &dep).await.unwrap();
    let record = user_record(&p, "u-slow");
    assert!(!record.state.is_final(), "the set-up: the user is still in flight ({:?})", record.state);
    assert_eq!(s.stalled.len(), 1, "{:?}", s.stalled);
    assert_eq!(s.stalled[0].user_id, "u-slow");
    assert_eq!(s.stalled[0].state, record.state.as_str());
    assert!(s.stalled[0].unchanged_s > u64::from(dep.stall_s));
}

#[tokio::test(start_paused = true)]
async fn signup_and_delete_are_well_formed_followed_to_the_end_and_safe_to_repeat() {
    let p = Platform::start(PlatformOptions { pool: 2, ..PlatformOptions::default() });
    let dep = fixture::deployment(p.config());
    let sent = operator::send(p.cloud(), &dep, MessageKind::Signup, "u-op", "s-op").await.unwrap();
    assert_eq!(sent.group_id.as_deref(), Some("u-op"), "the user's message group");
    // Sent again at once (an operator's retry): the queue drops the repeat.
    operator::send(p.cloud(), &dep, MessageKind::Signup, "u-op", "s-op").await.unwrap();
    let timeline =
        operator::follow(p.cloud(), &dep, MessageKind::Signup, "u-op", 5, DEADLINE_S).await.unwrap().unwrap();
    assert_eq!(timeline.state, "ready");
    assert_eq!(timeline.path, "warm");
    let t = timeline.time_to_ready_s.unwrap();
    assert!(t > 0.0 && t < 120.0, "a warm user in well under two minutes: {t}");
    assert!(timeline.seen.last().unwrap().1.starts_with("ready"), "{:?}", timeline.seen);
    assert_eq!(user_groups(&p), 1, "one user group for two sends");
    // A repeat after SQS's deduplication window is a no-op too: the signup function
    // finds the user ready.
    tokio::time::sleep(Duration::from_mins(6)).await;
    operator::send(p.cloud(), &dep, MessageKind::Signup, "u-op", "s-op").await.unwrap();
    tokio::time::sleep(Duration::from_mins(1)).await;
    assert_eq!(user_groups(&p), 1, "still one");
    let record = user_record(&p, "u-op");
    assert_eq!(record.instance.as_deref(), timeline.instance_id.as_deref(), "same host");
    assert_eq!((record.state.as_str(), record.attempt), ("ready", 1), "untouched");

    operator::send(p.cloud(), &dep, MessageKind::Delete, "u-op", "s-op").await.unwrap();
    operator::send(p.cloud(), &dep, MessageKind::Delete, "u-op", "s-op").await.unwrap();
    let gone = operator::follow(p.cloud(), &dep, MessageKind::Delete, "u-op", 5, DEADLINE_S).await.unwrap();
    assert!(gone.is_none(), "the user's group is gone");
    // A bad id never reaches the queue.
    let err = operator::send(p.cloud(), &dep, MessageKind::Signup, "not valid!", "s-1").await.unwrap_err();
    assert!(err.to_string().contains("user id"), "{err}");
}

/// The pool's sizes and warm pool size, as the cloud holds them.
fn pool_sizes(p: &Platform) -> (u32, u32, usize) {
    let pool_group = p.config().pool_group.clone();
    let size = p.cloud().group_size(&pool_group).unwrap();
    let warm = p.snapshot().warm.get(&pool_group).map_or(0, Vec::len);
    (size.desired, size.live, warm)
}

#[tokio::test(start_paused = true)]
async fn drain_hands_out_nothing_zeroes_both_tiers_and_resume_brings_them_back() {
    let p = Platform::start(PlatformOptions {
        pool: 3,
        warm_pool: 2,
        pool_sizer_every_s: 60,
        overrides: vec![("POOL_WARM_TIER".into(), "stopped".into())],
        ..PlatformOptions::default()
    });
    let dep = fixture::deployment(p.config());
    p.signup("u-before");
    assert!(p.run_until_settled(&["u-before".to_owned()], DEADLINE_S).await);
    assert_eq!(user_record(&p, "u-before").path.as_str(), "warm");
    let (desired_before, _, warm_before) = pool_sizes(&p);
    assert!(desired_before >= 1 && warm_before >= 1, "the set-up: two tiers ({desired_before}, {warm_before})");

    let report = operator::drain(p.cloud(), &dep, 300, 5).await.unwrap();
    assert!(report.marked_now);
    assert_eq!(report.saved.desired, desired_before);
    assert!(report.saved.warm.is_some(), "the warm pool's sizes are kept: {:?}", report.saved);
    tokio::time::sleep(Duration::from_mins(5)).await;
    let (desired, live, warm) = pool_sizes(&p);
    assert_eq!((desired, live, warm), (0, 0, 0), "both tiers at zero, and the pool-sizer stood back");
    // A signup now goes cold at once: no claim, no wait for a refill.
    p.signup("u-during");
    assert!(p.run_until_settled(&["u-during".to_owned()], DEADLINE_S).await);
    let during = user_record(&p, "u-during");
    assert_eq!((during.state.as_str(), during.path.as_str()), ("ready", "cold"));
    assert!(during.waiting.is_none(), "nobody waits for a draining pool");
    // Again: nothing changes, the first drain's sizes are kept.
    let again = operator::drain(p.cloud(), &dep, 300, 5).await.unwrap();
    assert!(!again.marked_now);
    assert_eq!(again.saved, report.saved);

    let resumed = operator::resume(p.cloud(), &dep).await.unwrap();
    assert_eq!(resumed, Some(report.saved));
    assert!(!p.snapshot().tags[&p.config().pool_group].contains_key(warmpool_core::domain::tag::DRAINING));
    tokio::time::sleep(Duration::from_mins(15)).await;
    let (desired, live, warm) = pool_sizes(&p);
    assert!(desired >= 1 && live >= 1 && warm >= 1, "refilled: desired {desired}, live {live}, warm {warm}");
    p.signup("u-after");
    assert!(p.run_until_settled(&["u-after".to_owned()], DEADLINE_S).await);
    assert_eq!(user_record(&p, "u-after").path.as_str(), "warm", "served from the pool again");
    assert_eq!(operator::resume(p.cloud(), &dep).await.unwrap(), None, "a second resume does nothing");
}

#[tokio::test(start_paused = true)]
async fn drain_waits_for_a_move_in_flight_before_it_terminates_anything() {
    let p = Platform::start(PlatformOptions { pool: 2, pool_sizer_every_s: 60, ..PlatformOptions::default() });
    let dep = fixture::deployment(p.config());
    let pool_group = p.config().pool_group.clone();
    let moving = p.snapshot().groups[&pool_group][0].clone();
    let free = p.snapshot().groups[&pool_group][1].clone();
    // A signup's claim on a pool instance it is about to detach.
    p.cloud().put_claim(&moving, "u-moving");
    let err = operator::drain(p.cloud(), &dep, 30, 5).await.unwrap_err();
    assert!(
        matches!(err, operator::OperatorError::MovesInFlight { ref instances, .. } if instances == &vec![moving.clone()]),
        "{err}"
    );
    assert_eq!(pool_sizes(&p).0, 2, "nothing set to zero while the move is in flight");
    assert!(p.snapshot().tags[&pool_group].contains_key(warmpool_core::domain::tag::DRAINING), "but marked");
    // Marked, with a claimable instance still in the pool: a signup does not take it.
    p.signup("u-mid");
    assert!(p.run_until_settled(&["u-mid".to_owned()], DEADLINE_S).await);
    let mid = user_record(&p, "u-mid");
    assert_eq!((mid.state.as_str(), mid.path.as_str()), ("ready", "cold"));
    assert!(p.snapshot().groups[&pool_group].contains(&free), "the free pool instance was not handed out");
    // The pool-sizer stands back while marked (with one signup seen it would size the
    // pool for its rate once the history is old enough: 3 for 99%).
    tokio::time::sleep(Duration::from_mins(40)).await;
    assert_eq!(pool_sizes(&p).0, 2, "the pool-sizer left the marked pool alone");
    // The move ends (its claim released): the drain, run again, finishes.
    p.cloud().delete_claim(&moving);
    let report = operator::drain(p.cloud(), &dep, 30, 5).await.unwrap();
    assert!(!report.marked_now);
    assert_eq!(report.saved.desired, 2);
    assert_eq!(pool_sizes(&p).0, 0);
}

/// The pool-sizer's calls of `op` so far.
fn sizer_calls(p: &Platform, op: &str) -> usize {
    p.cloud().call_log().iter().filter(|(f, o)| f == "pool-sizer" && o == op).count()
}

#[tokio::test(start_paused = true)]
async fn status_shows_the_pool_sizers_last_decision_written_on_a_change_or_every_ten_minutes() {
    use warmpool_core::flow::sizer_record::{RECORD_EVERY_MS, STALE_AFTER_MS, SizerRecord};
    use warmpool_core::ports::{AutoScaling as _, Clock as _};
    let p = Platform::start(PlatformOptions { pool: 2, pool_sizer_every_s: 60, ..PlatformOptions::default() });
    let dep = fixture::deployment(p.config());
    let users: Vec<String> = (1..=3).map(|i| format!("u-{i}")).collect();
    for u in &users {
        p.signup(u);
    }
    assert!(p.run_until_settled(&users, DEADLINE_S).await);
    tokio::time::sleep(Duration::from_mins(3)).await;
    let s = operator::status(p.cloud(), &dep).await.unwrap();
    let r = s.pool.sizer.clone().expect("the pool-sizer recorded its decision on the pool group");
    assert_eq!(r.desired, s.pool.desired, "the record names the size the group has");
    assert!(s.at_ms - r.at_ms <= RECORD_EVERY_MS, "written within ten minutes: {} ms ago", s.at_ms - r.at_ms);
    assert!(r.rate_per_h > 0.0 && r.refill_s > 0, "an estimate from three signups: {r:?}");
    assert!(!s.pool.sizer_stale && !s.needs_attention(), "{}", s.render());
    assert!(s.render().contains(&format!("set desired {}", r.desired)), "{}", s.render());

    // An hour with no signups: one write a run would be 60; the record is written on a
    // change (the estimate decays, the pool shrinks) or every ten minutes.
    let (runs_before, writes_before) =
        (sizer_calls(&p, "DescribeAutoScalingGroups"), sizer_calls(&p, "CreateOrUpdateTags"));
    tokio::time::sleep(Duration::from_hours(1)).await;
    let runs = sizer_calls(&p, "DescribeAutoScalingGroups") - runs_before;
    let writes = sizer_calls(&p, "CreateOrUpdateTags") - writes_before;
    assert!(runs >= 59, "the sizer ran each minute: {runs}");
    assert!((6..=20).contains(&writes), "{writes} record writes in {runs} runs");
    let s = operator::status(p.cloud(), &dep).await.unwrap();
    assert_eq!(s.pool.sizer.as_ref().unwrap().desired, s.pool.desired);

    // Drained: the sizer stands back and its record ages, which is no fault.
    operator::drain(p.cloud(), &dep, 300, 5).await.unwrap();
    tokio::time::sleep(Duration::from_millis(STALE_AFTER_MS + 120_000)).await;
    let s = operator::status(p.cloud(), &dep).await.unwrap();
    assert!(s.pool.draining && !s.pool.sizer_stale && !s.needs_attention(), "{}", s.render());
    assert!(s.render().contains("draining"), "{}", s.render());
    // A sizer that stopped (its schedule disabled, its role broken) leaves its record to
    // age on a pool that is not draining: status says so and asks for a look. Here, a
    // deployment whose sizer wrote once and never ran again.
    let stopped = Platform::start(PlatformOptions { pool: 1, ..PlatformOptions::default() });
    let stopped_dep = fixture::deployment(stopped.config());
    let last = SizerRecord { at_ms: stopped.cloud().now_ms(), ..s.pool.sizer.clone().unwrap() };
    stopped
        .cloud()
        .tag_group(&stopped.config().pool_group, &[(warmpool_core::domain::tag::SIZER.to_owned(), last.encode())])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(STALE_AFTER_MS - 60_000)).await;
    let s = operator::status(stopped.cloud(), &stopped_dep).await.unwrap();
    assert!(!s.pool.sizer_stale, "not yet: {}", s.render());
    tokio::time::sleep(Duration::from_mins(2)).await;
    let s = operator::status(stopped.cloud(), &stopped_dep).await.unwrap();
    assert!(s.pool.sizer_stale && s.needs_attention(), "{}", s.render());
    assert!(s.render().contains("the pool-sizer has stopped writing"), "{}", s.render());
}

/// Runs `body` on a fresh paused runtime of its own (a platform's tasks end with it).
fn on_own_runtime<T>(body: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(body)
}

#[test]
fn a_refused_record_write_leaves_the_sizing_done_and_the_next_write_records_it() {
    use warmpool_sim::{FaultKind, Faults};
    let opts = PlatformOptions { pool: 2, pool_sizer_every_s: 60, ..PlatformOptions::default() };
    // Where the sizer's first record write falls, from a run without the fault.
    let index = on_own_runtime(async {
        let p = Platform::start(opts.clone());
        tokio::time::sleep(Duration::from_mins(3)).await;
        let log = p.cloud().call_log();
        log.iter().position(|(f, o)| f == "pool-sizer" && o == "CreateOrUpdateTags").expect("the sizer records") as u64
    });
    let faults = Faults { at_call: Some((index, FaultKind::Permanent)), ..Faults::default() };
    on_own_runtime(async {
        let p = Platform::start(PlatformOptions { faults, ..opts });
        let dep = fixture::deployment(p.config());
        tokio::time::sleep(Duration::from_secs(90)).await;
        let fired = p.cloud().fired_faults();
        assert_eq!(fired.len(), 1, "the fault fired: {fired:?}");
        assert_eq!((fired[0].1.function.as_str(), fired[0].1.op.as_str()), ("pool-sizer", "CreateOrUpdateTags"));
        assert_eq!(p.failed_invocations(), 0, "the run that could not record still succeeded");
        assert!(!p.snapshot().tags[&p.config().pool_group].contains_key(warmpool_core::domain::tag::SIZER));
        tokio::time::sleep(Duration::from_mins(2)).await;
        let s = operator::status(p.cloud(), &dep).await.unwrap();
        let r = s.pool.sizer.expect("the next run recorded the decision");
        assert_eq!(r.desired, s.pool.desired);
    });
}
