//! What scale costs on the in-memory cloud: listings page as AWS pages them, the
//! account's token buckets throttle what goes over them, and the scheduled functions'
//! calls do not grow with the users who finished long ago.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::collections::BTreeMap;
use std::time::Duration;

use warmpool_core::ports::{AutoScaling as _, Instances as _};
use warmpool_sim::platform::{Platform, PlatformOptions};
use warmpool_sim::simulate::SCHEDULED;
use warmpool_sim::{ApiLimits, ApiUsage, Bucket, CloudModel};

/// Runs `body` on a fresh paused runtime of its own (a platform's tasks end with it).
fn on_own_runtime<T>(body: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(body)
}

/// Calls of `op` made so far, by anyone.
fn calls(p: &Platform, op: &str) -> u64 {
    p.snapshot().calls.get(op).copied().unwrap_or(0)
}

#[test]
fn listings_take_a_call_per_page_as_aws_pages_them() {
    on_own_runtime(async {
        let p = Platform::start(PlatformOptions { pool: 3, live_users: 2_550, ..PlatformOptions::default() });
        let cfg = p.config().clone();
        // DescribeAutoScalingGroups: 100 groups a page; 2,550 users are 26 pages.
        let before = calls(&p, "DescribeAutoScalingGroups");
        let users = p.cloud().list_user_groups(&cfg.user_group_prefix, &[]).await.unwrap();
        assert_eq!(users.len(), 2_550);
        assert_eq!(calls(&p, "DescribeAutoScalingGroups") - before, 26);
        // Filtered on a state none of them is in: the filter is applied before paging.
        let before = calls(&p, "DescribeAutoScalingGroups");
        let in_flight = p.cloud().list_user_groups(&cfg.user_group_prefix, warmpool_core::domain::UserState::IN_FLIGHT);
        assert!(in_flight.await.unwrap().is_empty());
        assert_eq!(calls(&p, "DescribeAutoScalingGroups") - before, 1);
        // DescribeInstances: 1,000 a page of the template's running instances, in a group
        // or not (2,550 hosts and the pool's 3): three pages, for no orphan.
        let before = calls(&p, "DescribeInstances");
        assert!(p.cloud().instances_outside_groups(&cfg.launch_template).await.unwrap().is_empty());
        assert_eq!(calls(&p, "DescribeInstances") - before, 3);
    });
}

#[test]
fn a_burst_over_the_accounts_bucket_is_throttled_retried_and_every_user_still_ends() {
    // A bucket small enough that ten signups at once overflow it.
    let tight = ApiLimits { autoscaling: Bucket { burst: 10.0, per_s: 2.0 }, ..ApiLimits::default() };
    let users: Vec<String> = (1..=10).map(|i| format!("u-{i:02}")).collect();
    let (usage, ready, elapsed_s) = on_own_runtime(async {
        let p = Platform::start(PlatformOptions {
            pool: 10,
            model: CloudModel { api_limits: tight, ..CloudModel::default() },
            ..PlatformOptions::default()
        });
        for u in &users {
            p.signup(u);
        }
        let settled = p.run_until_settled(&users, 4 * 3600).await;
        let elapsed_s = usize::try_from(p.cloud().elapsed_ms() / 1000).unwrap();
        (p.cloud().api_usage(0, elapsed_s + 1, &SCHEDULED), settled, elapsed_s)
    });
    println!("ten signups on a bucket of 10 refilled 2/s: {usage:?}");
    assert!(usage.throttled_calls["autoscaling"] > 0, "the bucket throttled: {usage:?}");
    assert_eq!(usage.throttled_calls["ec2"] + usage.throttled_calls["ssm"], 0, "the other services have their own");
    // What went through is what the bucket gave: its burst and its refill, no more.
    let granted = usage.calls["autoscaling"] - usage.throttled_calls["autoscaling"];
    assert!(granted as f64 <= 10.0 + 2.0 * (elapsed_s as f64 + 1.0), "{granted} calls in {elapsed_s} s");
    assert!(ready, "every user ended, ready or failed with a reason, through the throttling");
}

/// The scheduled functions' calls over `minutes` of a run with `live` finished users and a
/// signup every two minutes (the group quota raised to hold them all): the calls of each
/// (function, operation) made inside invocations, and the API usage.
fn scheduled_calls(live: u32, minutes: u64) -> (BTreeMap<(String, String), usize>, ApiUsage) {
    on_own_runtime(async {
        let model = CloudModel { group_quota: live as usize + 1_000, ..CloudModel::default() };
        let p = Platform::start(PlatformOptions {
            pool: 5,
            live_users: live,
            pool_sizer_every_s: 60,
            model,
            ..PlatformOptions::default()
        });
        let users: Vec<String> = (0..minutes / 2).map(|i| format!("u-{i:03}")).collect();
        for u in &users {
            p.signup(u);
            tokio::time::sleep(Duration::from_mins(2)).await;
        }
        assert!(p.all_final(&users[..users.len() - 2]), "the signups were served");
        let mut by_op = BTreeMap::new();
        for (f, op) in p.cloud().call_log() {
            if SCHEDULED.contains(&f.as_str()) {
                *by_op.entry((f, op)).or_default() += 1;
            }
        }
        let to_s = usize::try_from(minutes * 60).unwrap();
        (by_op, p.cloud().api_usage(0, to_s, &SCHEDULED))
    })
}

#[test]
fn the_sweeps_listing_and_the_sizers_history_do_not_grow_with_the_users_who_finished() {
    let (few, few_usage) = scheduled_calls(0, 60);
    let (many, many_usage) = scheduled_calls(3_000, 60);
    let get = |m: &BTreeMap<(String, String), usize>, f: &str, op: &str| {
        m.get(&(f.to_owned(), op.to_owned())).copied().unwrap_or(0)
    };
    let sizer = |m: &BTreeMap<(String, String), usize>| -> usize {
        m.iter().filter(|((f, _), _)| f == "pool-sizer").map(|(_, n)| n).sum()
    };
    println!(
        "scheduled calls a minute: {:.2} with no finished users, {:.2} with 3,000; the orphan scan's pages: {} and {}",
        few_usage.scheduled_calls_per_min,
        many_usage.scheduled_calls_per_min,
        get(&few, "reconcile", "DescribeInstances"),
        get(&many, "reconcile", "DescribeInstances"),
    );
    // The sweep lists only the users in flight (a page each time, 3,000 finished users or
    // none), and the pool-sizer reads one metric, not the users' groups.
    let listings =
        (get(&few, "reconcile", "DescribeAutoScalingGroups"), get(&many, "reconcile", "DescribeAutoScalingGroups"));
    assert!(listings.0 >= 55 && listings.1 <= listings.0 + listings.0 / 10, "the sweep's listings: {listings:?}");
    let sizer_calls = (sizer(&few), sizer(&many));
    assert!(
        sizer_calls.0 >= 55 * 3 && sizer_calls.1 <= sizer_calls.0 + sizer_calls.0 / 10,
        "the pool-sizer's calls: {sizer_calls:?}"
    );
    assert_eq!(get(&many, "pool-sizer", "GetMetricData"), get(&few, "pool-sizer", "GetMetricData"), "one a run");
    // The orphan scan is the one listing that grows with the hosts (EC2 cannot filter on a
    // tag's absence): a page per 1,000 of them each scan.
    assert!(get(&many, "reconcile", "DescribeInstances") > get(&few, "reconcile", "DescribeInstances"));
}
