//! The lifecycle handler on the sample events in `events/lifecycle/`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use serde_json::Value;
use warmpool_core::Config;
use warmpool_core::flow::lifecycle::LifecycleOutcome;
use warmpool_lambda::{Context, Diagnostic, LambdaEvent};
use warmpool_sim::{SimCloud, fixture};

const USER_LAUNCH: &str = include_str!("../../../events/lifecycle/user-launch-successful.json");
const POOL_ACTION: &str = include_str!("../../../events/lifecycle/pool-lifecycle-action.json");
const FROM_WARM_POOL: &str = include_str!("../../../events/lifecycle/pool-from-warm-pool.json");
const INTO_WARM_POOL: &str = include_str!("../../../events/lifecycle/pool-into-warm-pool.json");
const UNRELATED: &str = include_str!("../../../events/lifecycle/unrelated-asg.json");
const SIGNUP: &str = include_str!("../../../events/signup/valid.json");
const GROUP: &str = "warmpool-user-u-1001";

/// The sample event with its instance id replaced by one the simulated cloud knows.
fn event(json: &str, instance_id: &str) -> LambdaEvent<EventBridgeEvent<Value>> {
    let mut v: Value = serde_json::from_str(json).expect("sample event is JSON");
    v["detail"]["EC2InstanceId"] = instance_id.into();
    LambdaEvent::new(serde_json::from_value(v).expect("sample event parses"), Context::default())
}

async fn signed_up(cloud: &SimCloud, cfg: &Config) -> String {
    let sqs: SqsEvent = serde_json::from_str(SIGNUP).unwrap();
    warmpool_signup::handler(cloud, cfg, LambdaEvent::new(sqs, Context::default())).await.unwrap();
    cloud.snapshot().groups[GROUP][0].clone()
}

/// A signup whose pool instance's SSM agent was not answering when it was attached:
/// signup's own `SendCommand` is refused (`InvalidInstanceId`), the record says
/// `initializing` with no command, and the init is lifecycle's to send. The agent is
/// offline when this returns.
async fn signed_up_without_init(cloud: &SimCloud, cfg: &Config) -> String {
    for id in cloud.snapshot().groups[fixture::POOL_GROUP].clone() {
        cloud.set_agent_online(&id, false);
    }
    let instance = signed_up(cloud, cfg).await;
    let tags = &cloud.snapshot().tags[GROUP];
    assert_eq!((tags["warmpool:state"].as_str(), tags["warmpool:command-id"].as_str()), ("initializing", ""));
    assert!(cloud.sent_commands().is_empty(), "signup's SendCommand was refused");
    instance
}

/// The usual warm signup: the attach and the init in one invocation, so the attach's
/// launch event finds the init sent.
#[tokio::test(start_paused = true)]
async fn a_warm_attach_brings_its_own_init_and_the_launch_event_sends_none() {
    let (cloud, cfg) = fixture::cloud_with_pool(2);
    let instance = signed_up(&cloud, &cfg).await;
    assert_eq!(cloud.sent_commands().len(), 1, "signup sent the init");
    assert_eq!(cloud.snapshot().tags[GROUP]["warmpool:command-instance"], instance);
    let out = warmpool_lifecycle::handler(&cloud, &cfg, event(USER_LAUNCH, &instance)).await.unwrap();
    assert_eq!(out, LifecycleOutcome::Ignored { reason: "init already sent to this instance" });
    assert_eq!(cloud.sent_commands().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn user_launch_sends_user_init_once() {
    let (cloud, cfg) = fixture::cloud_with_pool(2);
    let instance = signed_up_without_init(&cloud, &cfg).await;
    cloud.set_agent_online(&instance, true);
    let out = warmpool_lifecycle::handler(&cloud, &cfg, event(USER_LAUNCH, &instance)).await.unwrap();
    let LifecycleOutcome::InitSent { command_id } = out else { panic!("{out:?}") };
    let tags = &cloud.snapshot().tags[GROUP];
    assert_eq!(tags["warmpool:command-instance"], instance);
    assert_eq!(tags["warmpool:command-id"], command_id);
    // The same event again (EventBridge delivers at least once) sends nothing more.
    let again = warmpool_lifecycle::handler(&cloud, &cfg, event(USER_LAUNCH, &instance)).await.unwrap();
    assert_eq!(again, LifecycleOutcome::Ignored { reason: "init already sent to this instance" });
    assert_eq!(cloud.sent_commands().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn launch_of_an_instance_that_is_not_the_users_is_ignored() {
    let (cloud, cfg) = fixture::cloud_with_pool(2);
    signed_up(&cloud, &cfg).await;
    let out = warmpool_lifecycle::handler(&cloud, &cfg, event(USER_LAUNCH, "i-0a1b2c3d4e5f60001")).await.unwrap();
    assert_eq!(out, LifecycleOutcome::Ignored { reason: "instance is no longer the user's" });
}

#[tokio::test(start_paused = true)]
async fn pool_lifecycle_action_sends_pool_prep() {
    let (cloud, cfg) = fixture::cloud_with_pool(1);
    let pool_instance = cloud.snapshot().groups[fixture::POOL_GROUP][0].clone();
    let out = warmpool_lifecycle::handler(&cloud, &cfg, event(POOL_ACTION, &pool_instance)).await.unwrap();
    assert!(matches!(out, LifecycleOutcome::PrepSent { .. }), "{out:?}");
}

#[tokio::test(start_paused = true)]
async fn a_repeated_pool_lifecycle_action_does_not_prepare_the_instance_twice() {
    let (cloud, cfg) = fixture::cloud_with_pool(1);
    let pool_instance = cloud.snapshot().groups[fixture::POOL_GROUP][0].clone();
    let first = warmpool_lifecycle::handler(&cloud, &cfg, event(POOL_ACTION, &pool_instance)).await.unwrap();
    assert!(matches!(first, LifecycleOutcome::PrepSent { .. }), "{first:?}");
    // EventBridge delivers the same action again, seconds later.
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    let again = warmpool_lifecycle::handler(&cloud, &cfg, event(POOL_ACTION, &pool_instance)).await.unwrap();
    assert_eq!(again, LifecycleOutcome::Ignored { reason: "pool-prep already sent for this instance" });
    let preps = cloud.sent_commands().iter().filter(|c| c.document == fixture::POOL_PREP_DOCUMENT).count();
    assert_eq!(preps, 1, "pool-prep sent once");
}

/// A signup on a pool of one with a stopped warm tier of one: the claim's detach makes the
/// pool start its parked instance, which waits in the hook (`Pending:Wait`). Returns it.
async fn started_from_the_warm_pool(cloud: &SimCloud, cfg: &Config) -> String {
    cloud.create_warm_pool(fixture::POOL_GROUP, "Stopped", 1);
    let parked = cloud.snapshot().warm[fixture::POOL_GROUP][0].0.clone();
    signed_up(cloud, cfg).await;
    // The detach, the group's next scaling pass, and the hook's entry.
    tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    assert!(cloud.snapshot().groups[fixture::POOL_GROUP].contains(&parked), "started into the pool");
    parked
}

#[tokio::test(start_paused = true)]
async fn a_warmed_instance_leaving_the_warm_pool_is_put_in_service_once_its_agent_is_back() {
    let (cloud, cfg) = fixture::cloud_with_pool(1);
    let started = started_from_the_warm_pool(&cloud, &cfg).await;
    let first = warmpool_lifecycle::handler(&cloud, &cfg, event(FROM_WARM_POOL, &started)).await.unwrap();
    assert_eq!(first, LifecycleOutcome::WarmStarted);
    assert_eq!(cloud.snapshot().in_service[fixture::POOL_GROUP], 1, "in service again, from the warm tier");
    let timeline = cloud.timeline();
    let at = |what: &str| {
        let entry = timeline.iter().find(|e| e.text.contains(&started) && e.text.contains(what));
        entry.unwrap_or_else(|| panic!("no {what:?} for {started}: {timeline:?}")).at_ms
    };
    assert!(at("SSM agent online") <= at("is InService"), "in service before its agent was back: {timeline:?}");
    // Not prepared again: its preparation is on its volume.
    assert!(!cloud.sent_commands().iter().any(|c| c.document == fixture::POOL_PREP_DOCUMENT));
    // EventBridge delivers the action again: the hook is completed already.
    let again = warmpool_lifecycle::handler(&cloud, &cfg, event(FROM_WARM_POOL, &started)).await.unwrap();
    assert_eq!(again, LifecycleOutcome::Ignored { reason: "lifecycle action already completed" });
    assert_eq!(cloud.snapshot().calls.get("CompleteLifecycleAction"), Some(&2), "one completion, one refused");
}

#[tokio::test(start_paused = true)]
async fn an_instance_entering_the_warm_pool_is_prepared_like_a_new_pool_member() {
    let (cloud, cfg) = fixture::cloud_with_pool(1);
    let pool_instance = cloud.snapshot().groups[fixture::POOL_GROUP][0].clone();
    let out = warmpool_lifecycle::handler(&cloud, &cfg, event(INTO_WARM_POOL, &pool_instance)).await.unwrap();
    assert!(matches!(out, LifecycleOutcome::PrepSent { .. }), "{out:?}");
}

#[tokio::test(start_paused = true)]
async fn only_our_own_pool_hook_starts_pool_prep() {
    let (cloud, cfg) = fixture::cloud_with_pool(1);
    let pool_instance = cloud.snapshot().groups[fixture::POOL_GROUP][0].clone();
    let mut other = event(POOL_ACTION, &pool_instance);
    other.payload.detail["LifecycleHookName"] = "an-operators-own-hook".into();
    let out = warmpool_lifecycle::handler(&cloud, &cfg, other).await.unwrap();
    assert_eq!(out, LifecycleOutcome::Ignored { reason: "lifecycle action of another hook" });
    assert_eq!(cloud.snapshot().calls.get("SendCommand"), None, "no pool-prep for a hook that is not ours");
}

#[tokio::test(start_paused = true)]
async fn an_agent_that_never_comes_online_is_a_retryable_error() {
    let (cloud, cfg) = fixture::cloud_with_pool(1);
    let pool_instance = cloud.snapshot().groups[fixture::POOL_GROUP][0].clone();
    cloud.set_agent_online(&pool_instance, false);
    let err = Diagnostic::from(
        warmpool_lifecycle::handler(&cloud, &cfg, event(POOL_ACTION, &pool_instance)).await.unwrap_err(),
    );
    assert_eq!(err.error_type, "Retryable");
    assert!(err.error_message.contains("not online"), "{}", err.error_message);
    assert_eq!(cloud.snapshot().calls.get("SendCommand"), None);
}

#[tokio::test(start_paused = true)]
async fn unrelated_groups_are_ignored_without_aws_calls() {
    let (cloud, cfg) = fixture::cloud_with_pool(1);
    let out = warmpool_lifecycle::handler(&cloud, &cfg, event(UNRELATED, "i-0ffffffffffff0001")).await.unwrap();
    assert_eq!(out, LifecycleOutcome::Ignored { reason: "not a user group" });
    assert!(cloud.snapshot().calls.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_pool_member_that_leaves_while_its_agent_is_awaited_is_not_retried() {
    use warmpool_core::ports::AutoScaling;
    let (cloud, cfg) = fixture::cloud_with_pool(1);
    // The pool grows by one; the new member boots and waits in the launch hook.
    cloud.set_desired_capacity(fixture::POOL_GROUP, 2).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(15)).await;
    let members = cloud.snapshot().groups[fixture::POOL_GROUP].clone();
    assert_eq!(members.len(), 2, "{members:?}");
    let launching = members[1].clone();
    // A member still waiting for its agent is handed back for a retry...
    let mut cfg_short = cfg.clone();
    cfg_short.agent_wait_s = 5;
    let err = Diagnostic::from(
        warmpool_lifecycle::handler(&cloud, &cfg_short, event(POOL_ACTION, &launching)).await.unwrap_err(),
    );
    assert_eq!(err.error_type, "Retryable", "{err:?}");
    // ...but once the pool scales in and terminates it, there is nothing to prepare.
    cloud.terminate_instance(&launching, true).await.unwrap();
    let out = warmpool_lifecycle::handler(&cloud, &cfg, event(POOL_ACTION, &launching)).await.unwrap();
    assert_eq!(out, LifecycleOutcome::Ignored { reason: "the instance left the pool before its agent came online" });
    assert_eq!(cloud.snapshot().calls.get("SendCommand"), None);
}

const LAUNCH_FAILED: &str = include_str!("../../../events/lifecycle/user-launch-unsuccessful.json");

/// A cold user whose group cannot launch: within the grace, Auto Scaling's own retries
/// get their chance (a retryable error: the event comes back a minute later); past it,
/// the attempt ends with EC2's reason and the next claim goes to the signup function.
#[tokio::test(start_paused = true)]
async fn a_failed_cold_launch_is_given_a_minute_then_fails_over() {
    let (cloud, mut cfg) = fixture::cloud_with_pool(0);
    cfg.pool_wait_s = 0; // cold at once: no pool to wait for
    cloud.fail_next_launches(1_000);
    let sqs: SqsEvent = serde_json::from_str(SIGNUP).unwrap();
    warmpool_signup::handler(&cloud, &cfg, LambdaEvent::new(sqs, Context::default())).await.unwrap();
    assert_eq!(cloud.snapshot().tags[GROUP]["warmpool:path"], "cold");
    // The group's first launch fails on its next scaling pass, and the event says so.
    tokio::time::sleep(std::time::Duration::from_secs(12)).await;
    let failed = || event(LAUNCH_FAILED, "");
    let err = warmpool_lifecycle::handler(&cloud, &cfg, failed()).await.unwrap_err();
    assert_eq!(Diagnostic::from(err).error_type, "Retryable");
    tokio::time::sleep(std::time::Duration::from_mins(1)).await;
    assert!(cloud.snapshot().groups[GROUP].is_empty(), "Auto Scaling's retries failed too");
    let out = warmpool_lifecycle::handler(&cloud, &cfg, failed()).await.unwrap();
    let LifecycleOutcome::LaunchFailed { next } = out else { panic!("{out:?}") };
    assert_eq!(next, warmpool_core::flow::command_status::StatusOutcome::FailoverQueued { attempt: 2 });
    let tags = &cloud.snapshot().tags[GROUP];
    assert_eq!((tags["warmpool:state"].as_str(), tags["warmpool:cold-attempts"].as_str()), ("claiming", "1"));
    assert!(tags["warmpool:reason"].contains("not enough free addresses"), "{}", tags["warmpool:reason"]);
    assert_eq!(cloud.group_size(GROUP).unwrap().desired, 0, "the group stopped trying");
    // The same event again: the user no longer waits for that launch.
    let again = warmpool_lifecycle::handler(&cloud, &cfg, failed()).await.unwrap();
    assert!(matches!(again, LifecycleOutcome::Ignored { .. }), "{again:?}");
}

/// Two invocations wait for the same agent (a re-drive next to a retried launch event):
/// the one that sees it second finds the init sent meanwhile, and the host runs one.
#[tokio::test(start_paused = true)]
async fn two_invocations_waiting_for_one_agent_send_one_init() {
    let (cloud, cfg) = fixture::cloud_with_pool(2);
    let instance = signed_up_without_init(&cloud, &cfg).await;
    let first = warmpool_lifecycle::handler(&cloud, &cfg, event(USER_LAUNCH, &instance));
    let second = async {
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        warmpool_lifecycle::handler(&cloud, &cfg, event(USER_LAUNCH, &instance)).await
    };
    let agent = async {
        tokio::time::sleep(std::time::Duration::from_secs(18)).await;
        cloud.set_agent_online(&instance, true);
    };
    let (first, second, ()) = tokio::join!(first, second, agent);
    assert!(matches!(first.unwrap(), LifecycleOutcome::InitSent { .. }));
    assert_eq!(second.unwrap(), LifecycleOutcome::Ignored { reason: "init sent to this instance meanwhile" });
    assert_eq!(cloud.sent_commands().len(), 1);
}

/// A cold instance's init lock left by a run that died before sending (the lock is
/// older than a sender takes): two retries that find it stale at once (a duplicated
/// launch event's two retries) both take it over, and only the first overwrite counts.
/// The host runs one init; the other retry leaves it to the winner.
#[tokio::test(start_paused = true)]
async fn two_retries_taking_over_one_stale_init_lock_send_one_init() {
    let (cloud, mut cfg) = fixture::cloud_with_pool(0);
    cfg.pool_wait_s = 0; // cold at once: no pool to wait for
    let sqs: SqsEvent = serde_json::from_str(SIGNUP).unwrap();
    warmpool_signup::handler(&cloud, &cfg, LambdaEvent::new(sqs, Context::default())).await.unwrap();
    assert_eq!(cloud.snapshot().tags[GROUP]["warmpool:path"], "cold");
    let instance = loop {
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        if let Some(id) = cloud.snapshot().groups[GROUP].first() {
            break id.clone();
        }
    };
    // The run that died: it took the lock and never sent; its lock is now stale.
    cloud.put_claim(&instance, "u-1001");
    tokio::time::sleep(std::time::Duration::from_mins(2)).await;
    let (a, b) = tokio::join!(
        warmpool_lifecycle::handler(&cloud, &cfg, event(USER_LAUNCH, &instance)),
        warmpool_lifecycle::handler(&cloud, &cfg, event(USER_LAUNCH, &instance)),
    );
    let outcomes = [a.unwrap(), b.unwrap()];
    let sent = outcomes.iter().filter(|o| matches!(o, LifecycleOutcome::InitSent { .. })).count();
    assert_eq!(sent, 1, "{outcomes:?}");
    assert!(
        outcomes.contains(&LifecycleOutcome::Ignored { reason: "another invocation is sending this instance's init" }),
        "the loser found the lock busy: {outcomes:?}"
    );
    assert_eq!(cloud.sent_commands().len(), 1, "the host runs one init");
}

/// EventBridge repeats the action that brought an instance into the warm pool after its
/// pool-prep completed it and Auto Scaling stopped it: its agent is offline for good
/// (stopped), and the repeat is answered at once, not retried until it dead-letters.
#[tokio::test(start_paused = true)]
async fn a_repeated_action_for_an_instance_parked_in_the_warm_pool_is_ignored() {
    let (cloud, cfg) = fixture::cloud_with_pool(1);
    cloud.create_warm_pool(fixture::POOL_GROUP, "Stopped", 1);
    let parked = cloud.snapshot().warm[fixture::POOL_GROUP][0].0.clone();
    let out = warmpool_lifecycle::handler(&cloud, &cfg, event(INTO_WARM_POOL, &parked)).await.unwrap();
    assert_eq!(out, LifecycleOutcome::Ignored { reason: "the instance is parked in the warm pool already" });
    assert!(!cloud.sent_commands().iter().any(|c| c.document == fixture::POOL_PREP_DOCUMENT), "not prepared again");
}
