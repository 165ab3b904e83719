//! Nothing runs outside a group: the reconcile sweep finds instances of our launch
//! template that no group lists, terminates the unclaimed ones and hands the claimed
//! ones back, and never touches one that is in a group.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::time::Duration;

use warmpool_core::flow::outside::{ABANDONED_MOVE_MS, sweep_outside};
use warmpool_sim::demo::{self, DemoOptions};
use warmpool_sim::platform::{Platform, PlatformOptions};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap()
}

/// How many times `function` called `op` so far.
fn calls(p: &Platform, function: &str, op: &str) -> usize {
    p.cloud().call_log().iter().filter(|(f, o)| f == function && o == op).count()
}

#[test]
fn an_unclaimed_instance_outside_every_group_is_terminated_and_the_pool_refills() {
    runtime().block_on(async {
        let p = Platform::start(PlatformOptions { pool: 3, ..PlatformOptions::default() });
        let pool_group = p.config().pool_group.clone();
        let orphan = p.snapshot().groups[&pool_group][0].clone();
        p.cloud().detach_by_hand(&pool_group, &orphan);
        assert_eq!(p.snapshot().outside, vec![orphan.clone()], "the set-up left it outside");
        // Younger than the stall threshold: left alone by the first sweeps.
        tokio::time::sleep(Duration::from_secs(90)).await;
        assert_eq!(calls(&p, "reconcile", "TerminateInstances"), 0);
        tokio::time::sleep(Duration::from_mins(20)).await;
        let snap = p.snapshot();
        assert!(snap.outside.is_empty(), "still outside: {:?}", snap.outside);
        assert!(snap.terminated.contains(&orphan));
        assert_eq!(calls(&p, "reconcile", "TerminateInstances"), 1, "terminated once, by the sweep");
        assert_eq!(snap.in_service[&pool_group], 3, "the pool replaced it");
        // The operator's alarm: one orphan over every scan's gauge (a scan each
        // `OUTSIDE_EVERY` minutes: two in these twenty-odd minutes).
        let (scans, orphans) = snap.metrics["Orphans"];
        assert!((orphans - 1.0).abs() < 1e-9 && scans >= 2, "Orphans: {orphans} over {scans} scans");
    });
}

#[test]
fn a_claimed_instance_outside_every_group_is_handed_back_not_terminated_outside() {
    runtime().block_on(async {
        let p = Platform::start(PlatformOptions { pool: 3, ..PlatformOptions::default() });
        let pool_group = p.config().pool_group.clone();
        let orphan = p.snapshot().groups[&pool_group][0].clone();
        // A move whose owner died for good after the detach: the claim is all that is left.
        p.cloud().put_claim(&orphan, "ghost");
        p.cloud().detach_by_hand(&pool_group, &orphan);
        tokio::time::sleep(Duration::from_mins(20)).await;
        let snap = p.snapshot();
        assert!(snap.outside.is_empty(), "still outside: {:?}", snap.outside);
        assert_eq!(calls(&p, "reconcile", "TerminateInstances"), 0, "a claimed instance is the claim repair's");
        assert!(snap.metrics["Orphans"].1.abs() < 1e-9, "a move in flight is no orphan");
        assert!(calls(&p, "reconcile", "AttachInstances") >= 1, "handed back to the pool");
        assert!(snap.terminated.contains(&orphan), "and retired from there");
        assert_eq!(snap.in_service[&pool_group], 3);
    });
}

#[test]
fn instances_in_groups_are_never_terminated_by_the_sweep() {
    let run = demo::run(&DemoOptions { users: 20, pool: 5, seed: 3, ..DemoOptions::default() }).unwrap();
    assert!(run.settled);
    assert!(run.report.cloud.outside.is_empty());
    assert_eq!(run.report.summary.ready, 20);
    assert_eq!(run.report.cloud.calls.get("TerminateInstances"), None);
}

/// The scenario: half of all calls kill their function. Users may be left
/// unfinished, but once the run has ended nothing runs outside a group.
#[test]
fn with_half_of_all_calls_crashing_nothing_is_left_outside_a_group() {
    for seed in 1..=10 {
        let run =
            demo::run(&DemoOptions { users: 60, pool: 20, seed, crash_rate: 0.5, ..DemoOptions::default() }).unwrap();
        assert!(run.report.cloud.outside.is_empty(), "seed {seed}: outside {:?}", run.report.cloud.outside);
        assert!(run.report.cloud.in_two_groups.is_empty(), "seed {seed}");
    }
}

/// An instance outside every group whose claim is younger than [`ABANDONED_MOVE_MS`] is
/// its owner's, mid-move; once the claim is that old the move counts as abandoned (an
/// owner that keeps dying in it) and the instance is terminated, claim or not.
#[test]
fn a_move_claimed_longer_than_the_abandoned_limit_is_ended_by_the_sweep() {
    runtime().block_on(async {
        let (cloud, cfg) = warmpool_sim::fixture::cloud_with_pool(2);
        // Past the stall threshold, so only the claim's age decides.
        tokio::time::sleep(Duration::from_secs(u64::from(cfg.reconcile_stall_s) + 60)).await;
        let orphan = cloud.snapshot().groups[&cfg.pool_group][0].clone();
        cloud.put_claim(&orphan, "someone");
        cloud.detach_by_hand(&cfg.pool_group, &orphan);
        tokio::time::sleep(Duration::from_mins(1)).await;
        let young = sweep_outside(&cloud, &cfg).await.unwrap();
        assert_eq!((young.found, young.terminated.len()), (1, 0), "{young:?}");
        tokio::time::sleep(Duration::from_millis(ABANDONED_MOVE_MS)).await;
        let old = sweep_outside(&cloud, &cfg).await.unwrap();
        assert_eq!((old.found, &old.terminated), (1, &vec![orphan.clone()]), "{old:?}");
        assert!(cloud.snapshot().terminated.contains(&orphan));
    });
}
