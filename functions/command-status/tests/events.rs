//! The command-status handler on the sample events in `events/command-status/`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use serde_json::Value;
use warmpool_core::Config;
use warmpool_core::flow::command_status::StatusOutcome;
use warmpool_lambda::{Context, LambdaEvent};
use warmpool_sim::platform::drain;
use warmpool_sim::{SIGNUP_QUEUE, SimCloud, fixture};

const INIT_SUCCESS: &str = include_str!("../../../events/command-status/init-success.json");
const INIT_FAILED: &str = include_str!("../../../events/command-status/init-failed.json");
const INIT_TIMED_OUT: &str = include_str!("../../../events/command-status/init-timed-out.json");
const INIT_INVOCATION_SUCCESS: &str = include_str!("../../../events/command-status/init-invocation-success.json");
const PREP_SUCCESS: &str = include_str!("../../../events/command-status/prep-success.json");
const PREP_FAILED: &str = include_str!("../../../events/command-status/prep-failed.json");
const SIGNUP: &str = include_str!("../../../events/signup/valid.json");
const LAUNCH: &str = include_str!("../../../events/lifecycle/user-launch-successful.json");
const GROUP: &str = "warmpool-user-u-1001";

fn event(json: &str, patch: &[(&str, &str)]) -> LambdaEvent<EventBridgeEvent<Value>> {
    let mut v: Value = serde_json::from_str(json).expect("sample event is JSON");
    for (k, val) in patch {
        v["detail"][*k] = (*val).into();
    }
    LambdaEvent::new(serde_json::from_value(v).expect("sample event parses"), Context::default())
}

/// Signup and lifecycle through their handlers: returns (instance, command id).
async fn initializing(cloud: &SimCloud, cfg: &Config) -> (String, String) {
    let sqs: SqsEvent = serde_json::from_str(SIGNUP).unwrap();
    warmpool_signup::handler(cloud, cfg, LambdaEvent::new(sqs, Context::default())).await.unwrap();
    let instance = cloud.snapshot().groups[GROUP][0].clone();
    warmpool_lifecycle::handler(cloud, cfg, event(LAUNCH, &[("EC2InstanceId", &instance)])).await.unwrap();
    let command = cloud.snapshot().tags[GROUP]["warmpool:command-id"].clone();
    // The init runs (seconds) before SSM reports on it.
    tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    (instance, command)
}

/// Runs the signup function on its queue until the user's group holds an instance: a move
/// whose detach outlasts the invocation's wait fails, comes back seconds later
/// (`FAILED_RETRY_S`) and finishes.
async fn drain_until_attached(cloud: &SimCloud, cfg: &Config) {
    for _ in 0..10 {
        drain(cloud, cfg, SIGNUP_QUEUE).await;
        if !cloud.snapshot().groups[GROUP].is_empty() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    }
    panic!("the user's group never got its instance");
}

#[tokio::test(start_paused = true)]
async fn init_success_makes_the_user_ready_and_says_so_once() {
    let (cloud, cfg) = fixture::cloud_with_pool(2);
    let (instance, command) = initializing(&cloud, &cfg).await;
    let e = || event(INIT_SUCCESS, &[("command-id", &command)]);
    let out = warmpool_command_status::handler(&cloud, &cfg, e()).await.unwrap();
    assert_eq!(out, StatusOutcome::Ready { instance_id: instance.clone() });
    let snap = cloud.snapshot();
    assert_eq!(snap.tags[GROUP]["warmpool:state"], "ready");
    assert_eq!(snap.ready_messages.len(), 1);
    let msg: Value = serde_json::from_str(&snap.ready_messages[0]).unwrap();
    assert_eq!((msg["user_id"].as_str(), msg["instance_id"].as_str()), (Some("u-1001"), Some(instance.as_str())));
    // A duplicate Success changes nothing.
    warmpool_command_status::handler(&cloud, &cfg, e()).await.unwrap();
    assert_eq!(cloud.snapshot().ready_messages.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_per_instance_status_alone_makes_the_user_ready_and_with_the_other_says_so_once() {
    let (cloud, cfg) = fixture::cloud_with_pool(2);
    let (instance, command) = initializing(&cloud, &cfg).await;
    // The command-level event is lost: the invocation-level one names no user, only the
    // instance, whose group does.
    let by_instance = || event(INIT_INVOCATION_SUCCESS, &[("command-id", &command), ("instance-id", &instance)]);
    let out = warmpool_command_status::handler(&cloud, &cfg, by_instance()).await.unwrap();
    assert_eq!(out, StatusOutcome::Ready { instance_id: instance.clone() });
    assert_eq!(cloud.snapshot().tags[GROUP]["warmpool:state"], "ready");
    // Both arrive (the usual case): the second changes nothing.
    let by_command = event(INIT_SUCCESS, &[("command-id", &command)]);
    let again = warmpool_command_status::handler(&cloud, &cfg, by_command).await.unwrap();
    assert_eq!(again, StatusOutcome::Ignored { reason: "outcome already handled" });
    assert_eq!(cloud.snapshot().ready_messages.len(), 1);
    // An instance in no group (retired by a failover the other event drove) is no one's.
    let (cloud, cfg) = fixture::cloud_with_pool(1);
    let out = warmpool_command_status::handler(&cloud, &cfg, event(INIT_INVOCATION_SUCCESS, &[])).await.unwrap();
    assert_eq!(out, StatusOutcome::Ignored { reason: "instance is in no group (the other status event was handled)" });
}

#[tokio::test(start_paused = true)]
async fn init_failure_and_timeout_fail_over_to_a_fresh_pool_instance() {
    for sample in [INIT_FAILED, INIT_TIMED_OUT] {
        let (cloud, cfg) = fixture::cloud_with_pool(2);
        let (bad, command) = initializing(&cloud, &cfg).await;
        let out =
            warmpool_command_status::handler(&cloud, &cfg, event(sample, &[("command-id", &command)])).await.unwrap();
        assert_eq!(out, StatusOutcome::FailoverQueued { attempt: 2 });
        // The failed instance is retired at once; the next claim is the signup
        // function's, from a `resume` message.
        assert!(cloud.snapshot().terminated.contains(&bad));
        assert_eq!(cloud.backlog(SIGNUP_QUEUE), 1, "one resume");
        drain_until_attached(&cloud, &cfg).await;
        let fresh = cloud.snapshot().groups[GROUP][0].clone();
        let snap = cloud.snapshot();
        assert!(snap.terminated.contains(&bad), "the failed instance is terminated");
        assert!(!snap.groups[fixture::POOL_GROUP].contains(&bad), "and never returned to the pool");
        assert_eq!(snap.groups[GROUP].len(), 1);
        assert_ne!(snap.groups[GROUP][0], bad);
        assert!(!snap.terminated.contains(&fresh));
        assert_eq!(snap.tags[GROUP]["warmpool:attempt"], "2");
        assert_eq!(snap.tags[GROUP]["warmpool:path"], "warm");
    }
}

#[tokio::test(start_paused = true)]
async fn a_repeated_failure_after_a_completed_failover_changes_nothing() {
    let (cloud, cfg) = fixture::cloud_with_pool(3);
    let (bad, command) = initializing(&cloud, &cfg).await;
    let failed = || event(INIT_FAILED, &[("command-id", &command)]);
    let out = warmpool_command_status::handler(&cloud, &cfg, failed()).await.unwrap();
    assert_eq!(out, StatusOutcome::FailoverQueued { attempt: 2 });
    // The same Failed event again (EventBridge delivers at least once), before the
    // next attempt has an instance, and again after its init was sent.
    // Early, it cannot be told from the retry of a failover that died midway: it
    // finishes the same failover (attempt 2 again, its resume deduplicated by the queue)
    // and never starts another.
    let early = warmpool_command_status::handler(&cloud, &cfg, failed()).await.unwrap();
    assert_eq!(early, StatusOutcome::FailoverQueued { attempt: 2 });
    assert_eq!(cloud.backlog(SIGNUP_QUEUE), 1, "one resume, the repeat deduplicated");
    drain_until_attached(&cloud, &cfg).await;
    let fresh = cloud.snapshot().groups[GROUP][0].clone();
    let again = warmpool_command_status::handler(&cloud, &cfg, failed()).await.unwrap();
    assert_eq!(again, StatusOutcome::Ignored { reason: "not the user's current command" });
    let snap = cloud.snapshot();
    assert_eq!(snap.groups[GROUP], vec![fresh.clone()], "the replacement still serves the user");
    assert!(!snap.terminated.contains(&fresh), "the replacement was not retired");
    assert_eq!(snap.terminated, vec![bad]);
    assert_eq!(snap.tags[GROUP]["warmpool:attempt"], "2", "one failover, not two");
    assert_eq!(snap.tags[GROUP]["warmpool:path"], "warm");
}

#[tokio::test(start_paused = true)]
async fn a_status_for_another_command_is_ignored() {
    let (cloud, cfg) = fixture::cloud_with_pool(2);
    initializing(&cloud, &cfg).await;
    let out = warmpool_command_status::handler(&cloud, &cfg, event(INIT_FAILED, &[])).await.unwrap();
    assert_eq!(out, StatusOutcome::Ignored { reason: "not the user's current command" });
    assert_eq!(cloud.snapshot().tags[GROUP]["warmpool:attempt"], "1");
}

#[tokio::test(start_paused = true)]
async fn prep_outcomes_complete_only_a_pending_lifecycle_action() {
    let (cloud, cfg) = fixture::cloud_with_pool(1);
    let pool_instance = cloud.snapshot().groups[fixture::POOL_GROUP][0].clone();
    // This instance passed its hook long ago: nothing is pending, so nothing changes.
    for sample in [PREP_SUCCESS, PREP_FAILED] {
        let out = warmpool_command_status::handler(&cloud, &cfg, event(sample, &[("instance-id", &pool_instance)]))
            .await
            .unwrap();
        assert_eq!(out, StatusOutcome::Ignored { reason: "lifecycle action already completed" });
    }
    assert_eq!(cloud.snapshot().calls["CompleteLifecycleAction"], 2);
    assert!(cloud.snapshot().terminated.is_empty());
}

/// A failover that dies right after it moved the record on, before it retired the
/// failed instance; before its retry, the user's signup message comes back (its own run
/// had died after sending the init) and takes the next attempt's path, cold here. That
/// attempt retires the instance the failover left behind.
/// Left in the group, that instance held the group's one place: the cold launch never
/// started, and re-drives checked the failed init again and again, forever.
#[tokio::test(start_paused = true)]
async fn the_next_attempt_retires_the_instance_a_dead_failover_left_behind() {
    use warmpool_core::domain::{Id, SignupMessage};
    use warmpool_core::flow::acquire::Acquired;
    use warmpool_core::flow::signup::{SignupOutcome, handle_message};
    use warmpool_sim::{FaultKind, Faults, invoke};

    let (cloud, cfg) = fixture::cloud_with_pool(1);
    // One pool instance per user: the second attempt goes cold.
    let cfg = Config { warm_attempts: 1, ..cfg };
    let (bad, command) = initializing(&cloud, &cfg).await;
    // The failover reads the user (call 0), moves the record on (call 1) and dies.
    cloud.set_faults(Faults { at_call: Some((1, FaultKind::CrashAfter)), ..Faults::default() });
    let failed = event(INIT_FAILED, &[("command-id", &command)]);
    let died = invoke("command-status", warmpool_command_status::handler(&cloud, &cfg, failed)).await;
    cloud.set_faults(Faults::default());
    assert!(died.is_none(), "the invocation died");
    assert_eq!(cloud.call_log()[1], ("command-status".to_owned(), "CreateOrUpdateTags".to_owned()));
    let snap = cloud.snapshot();
    assert_eq!(
        (snap.tags[GROUP]["warmpool:state"].as_str(), snap.tags[GROUP]["warmpool:attempt"].as_str()),
        ("claiming", "2")
    );
    assert!(
        !snap.terminated.contains(&bad) && snap.groups[GROUP] == vec![bad.clone()],
        "the failed instance is still there"
    );

    let signup = SignupMessage::Signup {
        user_id: Id::parse("user id", "u-1001").unwrap(),
        signup_id: Id::parse("signup id", "s-9001").unwrap(),
    };
    let out = handle_message(&cloud, &cfg, &signup, None).await.unwrap();
    assert_eq!(out, SignupOutcome::Acquired(Acquired::Cold));
    assert!(cloud.snapshot().terminated.contains(&bad), "the next attempt retired it");
    // The cold launch starts: a fresh instance joins the group.
    let fresh = loop {
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        if let Some(id) = cloud.snapshot().groups[GROUP].iter().find(|id| **id != bad) {
            break id.clone();
        }
    };
    assert_ne!(fresh, bad);
}

/// A warm signup that dies right after its `SendCommand`, before its record names the
/// command: the init runs and both status events come while the record names none, so
/// they are ignored. The signup's retry finds the init an earlier run sent, records it,
/// and, as it has ended, applies its outcome at once, instead of leaving the user to the
/// sweep a stall later.
#[tokio::test(start_paused = true)]
async fn an_init_that_ended_before_it_was_recorded_is_applied_when_recorded() {
    use warmpool_sim::{FaultKind, Faults, invoke};

    let signup = || {
        let sqs: SqsEvent = serde_json::from_str(SIGNUP).unwrap();
        LambdaEvent::new(sqs, Context::default())
    };
    // Where signup's SendCommand falls among the calls, in a clean run of the same set-up.
    let (clean, cfg) = fixture::cloud_with_pool(1);
    invoke("signup", warmpool_signup::handler(&clean, &cfg, signup())).await.unwrap().unwrap();
    let send_at = clean.call_log().iter().position(|(f, op)| f == "signup" && op == "SendCommand").unwrap();

    let (cloud, cfg) = fixture::cloud_with_pool(1);
    cloud.set_faults(Faults { at_call: Some((send_at as u64, FaultKind::CrashAfter)), ..Faults::default() });
    let died = invoke("signup", warmpool_signup::handler(&cloud, &cfg, signup())).await;
    cloud.set_faults(Faults::default());
    assert!(died.is_none(), "the signup died");
    assert_eq!(cloud.sent_commands().len(), 1, "after sending the init");
    assert_eq!(cloud.snapshot().tags[GROUP]["warmpool:command-id"], "", "the record names no command");
    // The init runs and reports while the record names no command.
    tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    let instance = cloud.snapshot().groups[GROUP][0].clone();
    let listed = warmpool_core::ports::RunCommand::list_invocations(
        &cloud,
        warmpool_core::ports::InvocationQuery::since(&cfg.user_init_document, 0).on(&instance),
    )
    .await;
    let command = listed.unwrap()[0].command_id.clone();

    let early = warmpool_command_status::handler(&cloud, &cfg, event(INIT_SUCCESS, &[("command-id", &command)])).await;
    assert_eq!(early.unwrap(), StatusOutcome::Ignored { reason: "not the user's current command" });

    // The signup's retry records the init and applies its outcome, with the signup
    // function's own configuration (what its template entry gives it, no more).
    let own = fixture::function_config(warmpool_core::config::Function::Signup, &cloud.subnets(), &[]);
    warmpool_signup::handler(&cloud, &own, signup()).await.unwrap();
    let snap = cloud.snapshot();
    assert_eq!(snap.tags[GROUP]["warmpool:state"], "ready");
    assert_eq!(snap.ready_messages.len(), 1);
    assert_eq!(cloud.sent_commands().len(), 1, "one init");
}
