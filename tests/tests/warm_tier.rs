//! The pool's second tier (`POOL_WARM_TIER`), end to end on the in-memory cloud: an
//! Auto Scaling warm pool of prepared, stopped instances that refills the running pool
//! in a minute or two, and refills itself through the same pool-prep.
//!
//! Verdicts come from the cloud's ground truth (the snapshot, the timeline of what
//! happened to each instance), not from what the functions report.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::time::Duration;

use warmpool_sim::platform::{Platform, PlatformOptions};
use warmpool_sim::report::Report;
use warmpool_sim::{CloudModel, TimelineEntry};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap()
}

fn logs() {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("info").try_init();
}

/// A platform whose pool has `running` prepared instances and a stopped warm tier of
/// `warm` more; the pool-sizer is off, so both tiers keep the sizes they start with.
fn two_tiers(running: u32, warm: u32, model: CloudModel) -> Platform {
    logs();
    Platform::start(PlatformOptions {
        pool: running,
        warm_pool: warm,
        model,
        overrides: vec![("POOL_WARM_TIER".into(), "stopped".into())],
        ..PlatformOptions::default()
    })
}

/// The warm tier's instances in `state` (`Warmed:Stopped`, ...).
fn warm_in(p: &Platform, state: &str) -> Vec<String> {
    let snap = p.snapshot();
    snap.warm[&p.config().pool_group].iter().filter(|(_, s)| s == state).map(|(id, _)| id.clone()).collect()
}

/// When (ms) the first timeline entry about `id` containing `what` happened.
fn when(timeline: &[TimelineEntry], id: &str, what: &str) -> Option<u64> {
    timeline.iter().find(|e| e.text.contains(id) && e.text.contains(what)).map(|e| e.at_ms)
}

#[test]
fn a_claim_is_refilled_from_the_warm_tier_in_minutes_and_the_warm_tier_refills_itself() {
    runtime().block_on(async {
        let p = two_tiers(2, 2, CloudModel::default());
        let pool_group = p.config().pool_group.clone();
        let parked = warm_in(&p, "Warmed:Stopped");
        assert_eq!(parked.len(), 2, "the set-up parks two prepared instances");
        let user = "u-0001".to_owned();
        p.signup(&user);
        assert!(p.run_until_settled(std::slice::from_ref(&user), 3600).await, "the user settles");
        // Long enough for the warm tier's own refill: a launch and pool-prep.
        tokio::time::sleep(Duration::from_mins(20)).await;
        let snap = p.snapshot();
        let report = Report::build(p.config(), &snap, std::slice::from_ref(&user), 0.0);
        assert!(report.violations().is_empty(), "invariants: {:?}", report.violations());
        assert!(snap.unprepared_in_service.is_empty(), "unprepared in service: {:?}", snap.unprepared_in_service);
        let host = snap.groups[&p.config().user_group(&user)][0].clone();
        assert_eq!(snap.launched_in[&host], pool_group, "served warm, from the running pool");
        // The running pool's replacement is one of the parked instances, started...
        let members = &snap.groups[&pool_group];
        let started: Vec<&String> = parked.iter().filter(|id| members.contains(id)).collect();
        assert_eq!(started.len(), 1, "one parked instance moved into the pool: {members:?}");
        assert_eq!(snap.in_service[&pool_group], 2, "the running pool is whole again");
        let timeline = p.cloud().timeline();
        let started = started[0];
        let detached = when(&timeline, &host, "detaching from").expect("the claim detached");
        let in_service = when(&timeline, started, "is InService in").expect("the started instance went InService");
        let agent_back = when(&timeline, started, "SSM agent online").expect("its agent registered again");
        // ...in service once its agent is back (the hook's gate), within minutes of the claim
        // (the start, the agent's return and the hook: about two, against ten for a launch).
        assert!(agent_back <= in_service, "in service at {in_service} ms before its agent was back at {agent_back} ms");
        let refill_s = (in_service - detached) / 1000;
        assert!(refill_s < 240, "the running pool refilled {refill_s} s after the claim");
        // The warm tier, one short, launched and prepared a new instance and parked it.
        let now_parked = warm_in(&p, "Warmed:Stopped");
        assert_eq!(now_parked.len(), 2, "the warm tier is whole again: {:?}", snap.warm);
        let fresh: Vec<&String> = now_parked.iter().filter(|id| !parked.contains(id)).collect();
        assert_eq!(fresh.len(), 1);
        let preps: Vec<_> = p
            .cloud()
            .sent_commands()
            .into_iter()
            .filter(|c| c.document == p.config().pool_prep_document && &c.instance_id == fresh[0])
            .collect();
        assert_eq!(preps.len(), 1, "the new warm instance was prepared once, on its way in");
        assert!(
            when(&timeline, fresh[0], "stopped and parked").is_some(),
            "stopped after its hook completed: {timeline:?}"
        );
        // The started instance was not prepared again: its preparation is on its volume.
        assert!(
            !p.cloud()
                .sent_commands()
                .iter()
                .any(|c| c.document == p.config().pool_prep_document && &c.instance_id == started),
            "a warmed instance is started, not prepared again"
        );
    });
}

#[test]
fn a_warmed_instance_whose_agent_never_returns_never_serves_and_is_replaced() {
    runtime().block_on(async {
        // A short hook timeout keeps the test short: the hook's ABANDON ends the instance.
        let p = two_tiers(1, 1, CloudModel { hook_timeout_s: 900, ..CloudModel::default() });
        let pool_group = p.config().pool_group.clone();
        let broken = warm_in(&p, "Warmed:Stopped")[0].clone();
        p.cloud().break_agent(&broken);
        let user = "u-0001".to_owned();
        p.signup(&user);
        assert!(p.run_until_settled(std::slice::from_ref(&user), 3600).await);
        tokio::time::sleep(Duration::from_mins(40)).await;
        let snap = p.snapshot();
        let timeline = p.cloud().timeline();
        assert!(when(&timeline, &broken, "from its warm pool").is_some(), "the group started it: {timeline:?}");
        assert!(when(&timeline, &broken, "is InService").is_none(), "put in service without its agent");
        assert!(snap.terminated.contains(&broken), "the hook's timeout ended it");
        assert_eq!(snap.in_service[&pool_group], 1, "and the pool replaced it");
        assert!(snap.unprepared_in_service.is_empty(), "unprepared in service: {:?}", snap.unprepared_in_service);
        let users = vec![user];
        let report = Report::build(p.config(), &snap, &users, 0.0);
        assert!(report.violations().is_empty(), "invariants: {:?}", report.violations());
    });
}

#[test]
fn an_instance_entering_the_warm_tier_whose_prep_fails_is_abandoned_and_never_parked() {
    runtime().block_on(async {
        let p = two_tiers(1, 0, CloudModel { prep_failure_rate: 1.0, ..CloudModel::default() });
        let pool_group = p.config().pool_group.clone();
        // A warm tier of one that holds nothing yet: the group launches one into it.
        p.cloud().create_warm_pool_holding(&pool_group, "Stopped", 1, 0);
        tokio::time::sleep(Duration::from_mins(45)).await;
        let snap = p.snapshot();
        let timeline = p.cloud().timeline();
        let launched: Vec<&TimelineEntry> = timeline.iter().filter(|e| e.text.contains("into its warm pool")).collect();
        assert!(launched.len() >= 2, "launched into the warm tier, abandoned, launched again: {timeline:?}");
        assert!(!timeline.iter().any(|e| e.text.contains("parked")), "a failed prep was parked: {timeline:?}");
        assert!(warm_in(&p, "Warmed:Stopped").is_empty());
        let abandoned = timeline.iter().filter(|e| e.text.contains("lifecycle action ABANDON")).count();
        assert!(abandoned >= 1, "each failed pool-prep ended its hook with ABANDON: {timeline:?}");
        assert_eq!(snap.in_service[&pool_group], 1, "the running pool is untouched");
    });
}

#[test]
fn the_pool_sizer_sizes_both_tiers() {
    runtime().block_on(async {
        logs();
        let p = Platform::start(PlatformOptions {
            pool: 2,
            warm_pool: 0,
            pool_sizer_every_s: 60,
            overrides: vec![("POOL_WARM_TIER".into(), "stopped".into())],
            ..PlatformOptions::default()
        });
        let pool_group = p.config().pool_group.clone();
        // Ninety minutes of signups, one a minute: the sizer sees the rate.
        let users: Vec<String> = (1..=90).map(|i| format!("u-{i:04}")).collect();
        for u in &users {
            p.signup(u);
            tokio::time::sleep(Duration::from_mins(1)).await;
        }
        assert!(p.run_until_settled(&users, 3600).await);
        let snap = p.snapshot();
        let calls = |op: &str| snap.calls.get(op).copied().unwrap_or(0);
        assert!(calls("PutWarmPool") >= 1, "the pool-sizer sized the warm tier: {:?}", snap.calls);
        // 60 signups an hour: the warm tier covers a preparation (about ten minutes, λT
        // about 10, at 0.999) and the running pool a start (about 85 s, λT under 2), so
        // the warm tier is the larger.
        let warm = snap.warm[&pool_group].len();
        let running = snap.groups[&pool_group].len();
        assert!(warm > running, "warm tier {warm}, running pool {running}");
        assert!((12..=26).contains(&warm), "warm tier of {warm} for λT about 10 at 0.999");
        // A run that finds the warm tier at its size leaves it alone.
        let cfg = p.config_of(warmpool_core::Function::PoolSizer).clone();
        warmpool_core::flow::sizer::size_pool(p.cloud(), &cfg).await.unwrap();
        let puts = || p.snapshot().calls.get("PutWarmPool").copied().unwrap_or(0);
        let before = puts();
        let again = warmpool_core::flow::sizer::size_pool(p.cloud(), &cfg).await.unwrap();
        assert_eq!(puts(), before, "PutWarmPool again with nothing changed: {:?}", again.warm);
        let report = Report::build(p.config(), &snap, &users, 0.0);
        assert!(report.violations().is_empty(), "invariants: {:?}", report.violations());
        // The warm tier starts empty, so the first ten minutes' misses wait on fresh
        // preparations; once it holds instances, the running pool refills in a start.
        let later: Vec<_> = report.users.iter().skip(30).collect();
        let warm_hits = later.iter().filter(|u| u.path == "warm").count();
        assert!(warm_hits + 1 >= later.len(), "{warm_hits} of the last {} served warm", later.len());
    });
}
