//! The flow's CPU cost per signup, on the in-memory cloud (criterion; figures, never
//! a pass/fail on time):
//! - `flow/handlers_per_signup`: one user through the three handlers (signup, the
//!   launch event, the command-status event) on a cloud with zero API latency: the
//!   flow's own work plus the in-memory cloud's bookkeeping, per signup;
//! - `platform/burst_10000`: 10,000 signups at once through the whole local platform
//!   (SQS mapping, EventBridge rules, reconcile), with a pool of 200, until every user
//!   is ready: the simulator's throughput, per signup.

#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmark set-up may panic

use std::time::{Duration, Instant};

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use warmpool_core::flow::command_status::StatusOutcome;
use warmpool_sim::platform::{Platform, PlatformOptions};
use warmpool_sim::{CloudModel, SimCloud, fixture};

const SIGNUP: &str = include_str!("../../events/signup/valid.json");
const LAUNCH: &str = include_str!("../../events/lifecycle/user-launch-successful.json");
const INIT_SUCCESS: &str = include_str!("../../events/command-status/init-success.json");

/// Users per fresh cloud: a pool of this size serves them all warm.
const CHUNK: u64 = 20;

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap()
}

fn bus_event(sample: &str, detail: &[(&str, Value)]) -> LambdaEvent<EventBridgeEvent<Value>> {
    let mut v: Value = serde_json::from_str(sample).unwrap();
    for (k, val) in detail {
        v["detail"][*k] = val.clone();
    }
    LambdaEvent::new(serde_json::from_value(v).unwrap(), Context::default())
}

/// One user through the three handlers; the cloud answers at once.
async fn one_user(cloud: &SimCloud, cfg: &warmpool_core::Config, user: &str) {
    let mut sqs: Value = serde_json::from_str(SIGNUP).unwrap();
    sqs["Records"][0]["body"] =
        json!({"kind": "signup", "user_id": user, "signup_id": format!("s-{user}")}).to_string().into();
    sqs["Records"][0]["attributes"]["MessageGroupId"] = user.into();
    let sqs: SqsEvent = serde_json::from_value(sqs).unwrap();
    warmpool_signup::handler(cloud, cfg, LambdaEvent::new(sqs, Context::default())).await.unwrap();
    let group = cfg.user_group(user);
    let instance = cloud.tag_value(&group, "warmpool:instance").unwrap();
    let launch =
        bus_event(LAUNCH, &[("AutoScalingGroupName", group.clone().into()), ("EC2InstanceId", instance.into())]);
    warmpool_lifecycle::handler(cloud, cfg, launch).await.unwrap();
    let command = cloud.tag_value(&group, "warmpool:command-id").unwrap();
    let status = bus_event(
        INIT_SUCCESS,
        &[
            ("command-id", command.into()),
            ("parameters", json!({"UserId": [user], "SignupId": [format!("s-{user}")], "executionTimeout": ["120"]})),
        ],
    );
    let out = warmpool_command_status::handler(cloud, cfg, status).await.unwrap();
    assert!(matches!(out, StatusOutcome::Ready { .. }), "{out:?}");
}

fn handlers_per_signup(c: &mut Criterion) {
    let instant = CloudModel { api_ms: (0, 0), ..CloudModel::default() };
    let mut group = c.benchmark_group("flow");
    group.throughput(Throughput::Elements(1));
    group.bench_function("handlers_per_signup", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                let n = CHUNK.min(iters - done);
                let rt = paused_runtime();
                total += rt.block_on(async {
                    let (cloud, _) = SimCloud::new(instant.clone(), 1, 90, 5);
                    let cfg = fixture::config(&cloud.subnets(), &[]);
                    cloud.create_pool(&cfg.pool_group, &cfg.pool_hook, CHUNK as u32, CHUNK as u32 * 2 + 10);
                    let start = Instant::now();
                    for i in 0..n {
                        one_user(&cloud, &cfg, &format!("u-{i}")).await;
                    }
                    start.elapsed()
                });
                done += n;
            }
            total
        });
    });
    group.finish();
}

fn burst_10000(c: &mut Criterion) {
    const USERS: usize = 10_000;
    // A deployment this size has raised the Auto Scaling group quota (500 by default).
    let model = CloudModel { group_quota: USERS + 1, ..CloudModel::default() };
    let mut group = c.benchmark_group("platform");
    group.sample_size(10).warm_up_time(Duration::from_millis(1)).measurement_time(Duration::from_secs(30));
    group.throughput(Throughput::Elements(USERS as u64));
    group.bench_function("burst_10000", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let rt = paused_runtime();
                total += rt.block_on(async {
                    let start = Instant::now();
                    let platform = Platform::start(PlatformOptions {
                        pool: 200,
                        pool_max: Some(420),
                        model: model.clone(),
                        ..PlatformOptions::default()
                    });
                    let users: Vec<String> = (0..USERS).map(|i| format!("u-{i:05}")).collect();
                    for u in &users {
                        platform.signup(u);
                    }
                    assert!(platform.run_until_settled(&users, 6 * 3600).await, "the burst did not settle");
                    start.elapsed()
                });
            }
            total
        });
    });
    group.finish();
}

criterion_group!(benches, handlers_per_signup, burst_10000);
criterion_main!(benches);
