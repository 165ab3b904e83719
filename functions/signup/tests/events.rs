//! The signup handler on the sample events in `events/signup/`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use aws_lambda_events::event::sqs::SqsEvent;
use warmpool_lambda::{Context, LambdaEvent};
use warmpool_sim::fixture;

fn event(json: &str) -> LambdaEvent<SqsEvent> {
    LambdaEvent::new(serde_json::from_str(json).expect("sample event parses"), Context::default())
}

const VALID: &str = include_str!("../../../events/signup/valid.json");
const MALFORMED: &str = include_str!("../../../events/signup/malformed.json");
const DUPLICATE: &str = include_str!("../../../events/signup/duplicate.json");
const DELETE: &str = include_str!("../../../events/signup/delete.json");
const GROUP: &str = "warmpool-user-u-1001";

#[tokio::test(start_paused = true)]
async fn valid_signup_moves_a_pool_instance_into_the_user_group() {
    let (cloud, cfg) = fixture::cloud_with_pool(3);
    let response = warmpool_signup::handler(&cloud, &cfg, event(VALID)).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    let snap = cloud.snapshot();
    assert_eq!(snap.groups[GROUP].len(), 1);
    let moved = &snap.groups[GROUP][0];
    assert!(!snap.groups[fixture::POOL_GROUP].contains(moved), "it left the pool (which refills on its own)");
    assert_eq!(cloud.group_size(fixture::POOL_GROUP).unwrap().desired, 3, "detached without a decrement");
    assert_eq!(snap.tags[GROUP]["warmpool:state"], "initializing");
    assert_eq!(snap.tags[GROUP]["warmpool:requested-at"], "1767225600000", "time of the signup, from SentTimestamp");
}

#[tokio::test(start_paused = true)]
async fn malformed_records_are_dead_lettered_at_once_one_by_one() {
    let (cloud, cfg) = fixture::cloud_with_pool(3);
    let response = warmpool_signup::handler(&cloud, &cfg, event(MALFORMED)).await.unwrap();
    // Moved to the dead-letter queue in this invocation and so deleted, not retried to
    // maxReceiveCount while their message groups wait.
    assert!(response.batch_item_failures.is_empty(), "{:?}", response.batch_item_failures);
    let snap = cloud.snapshot();
    let batch: serde_json::Value = serde_json::from_str(MALFORMED).unwrap();
    let mut bodies: Vec<&str> =
        batch["Records"].as_array().unwrap().iter().map(|r| r["body"].as_str().unwrap()).collect();
    bodies.sort_unstable();
    let mut dead = snap.dead_letters.clone();
    dead.sort_unstable();
    assert_eq!(dead, bodies, "each body, as it came");
    assert!(!snap.calls.contains_key("CreateAutoScalingGroup"), "nothing reached AWS");
    // If the dead-letter queue cannot be reached, the record fails as before, and gets
    // there through its retries.
    let cfg =
        fixture::config(&cloud.subnets(), &[("SIGNUP_DLQ_URL", "https://sqs.us-east-1.amazonaws.com/1/gone".into())]);
    let response = warmpool_signup::handler(&cloud, &cfg, event(MALFORMED)).await.unwrap();
    assert_eq!(response.batch_item_failures.len(), bodies.len());
}

#[tokio::test(start_paused = true)]
async fn duplicate_records_yield_one_instance() {
    let (cloud, cfg) = fixture::cloud_with_pool(3);
    let response = warmpool_signup::handler(&cloud, &cfg, event(DUPLICATE)).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    let snap = cloud.snapshot();
    assert_eq!(snap.groups[GROUP].len(), 1);
    assert_eq!(snap.calls["DetachInstances"], 1);
    assert!(!snap.groups[fixture::POOL_GROUP].contains(&snap.groups[GROUP][0]));
}

/// Group tags lag their own writes (`CloudModel::stale_tags`), as do the group's
/// membership and SSM's listing of a command just sent: a redelivered signup right behind
/// the run that moved an instance and sent its init (a duplicate, or a re-drive queued
/// behind it in the user's FIFO group) reads the user from before that move and init.
/// The init lock keeps it to one instance and one init.
#[tokio::test(start_paused = true)]
async fn a_signup_right_behind_a_warm_move_on_lagging_reads_sends_no_second_init() {
    let model = warmpool_sim::CloudModel { stale_read_ms: (1_500, 1_500), stale_tags: true, ..Default::default() };
    let (cloud, cfg) = fixture::cloud_with_pool_and_model(3, model);
    // The move waits out the detach, and its first runs may find it not done yet (the
    // message comes back, as SQS brings it back).
    let mut runs = 0;
    while !warmpool_signup::handler(&cloud, &cfg, event(VALID)).await.unwrap().batch_item_failures.is_empty() {
        runs += 1;
        assert!(runs < 10, "the move never completed");
        tokio::time::sleep(std::time::Duration::from_secs(20)).await;
    }
    let inits = || cloud.sent_commands().into_iter().filter(|c| c.document == cfg.user_init_document).count();
    assert_eq!(inits(), 1, "the move sent the init");
    let stale_before = cloud.stale_reads();
    let response = warmpool_signup::handler(&cloud, &cfg, event(VALID)).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert!(cloud.stale_reads() > stale_before, "the redelivery read lagging state");
    let snap = cloud.snapshot();
    assert_eq!(snap.groups[GROUP].len(), 1);
    assert_eq!(inits(), 1, "one init");
    assert_eq!(snap.repeated_inits, Vec::<String>::new());
}

const SIGNUP_BODY: &str = r#"{"kind":"signup","user_id":"u-1001","signup_id":"s-9001"}"#;

/// Runs the signup queue's consumer, one invocation per message as the platform does,
/// until the queue is empty (a move waits out the detach, and its first runs may find it
/// not done yet: SQS brings the message back).
async fn drain_signups(cloud: &warmpool_sim::SimCloud, cfg: &warmpool_core::Config) {
    use warmpool_sim::SIGNUP_QUEUE;
    for _ in 0..10 {
        warmpool_sim::platform::drain(cloud, cfg, SIGNUP_QUEUE).await;
        if cloud.backlog(SIGNUP_QUEUE) == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_secs(20)).await;
    }
    panic!("the signup never completed");
}

/// A signup that finds the init an earlier run sent (and died before recording) already
/// ended makes the user ready at once: it applies the outcome to the record it has just
/// written, since a read right after that write may still show the record from before
/// it. The ready releases the instance's claim and init lock; a signup right behind,
/// reading the user from before both writes, finds the instance already in the group and
/// the lock free, asks SSM, and sends no second init.
#[tokio::test(start_paused = true)]
async fn an_init_found_ended_makes_the_user_ready_and_a_signup_behind_sends_no_second() {
    use warmpool_sim::{FaultKind, Faults, SIGNUP_QUEUE};
    let model = warmpool_sim::CloudModel { stale_read_ms: (1_500, 1_500), stale_tags: true, ..Default::default() };
    // Where the move sends the init: on a twin of the cloud (same seed, same calls).
    let send_at = {
        let (twin, cfg) = fixture::cloud_with_pool_and_model(3, model.clone());
        twin.send_signup(SIGNUP_BODY, "u-1001");
        drain_signups(&twin, &cfg).await;
        twin.call_log().iter().position(|(_, op)| op == "SendCommand").unwrap()
    };
    let (cloud, cfg) = fixture::cloud_with_pool_and_model(3, model);
    cloud.send_signup(SIGNUP_BODY, "u-1001");
    cloud.set_faults(Faults { at_call: Some((send_at as u64, FaultKind::CrashAfter)), ..Faults::default() });
    while cloud.sent_commands().is_empty() {
        warmpool_sim::platform::drain(&cloud, &cfg, SIGNUP_QUEUE).await;
        tokio::time::sleep(std::time::Duration::from_secs(20)).await;
    }
    cloud.set_faults(Faults::default());
    assert_eq!(cloud.call_log()[send_at].1, "SendCommand", "the run died right after sending the init");
    let inits = || cloud.sent_commands().into_iter().filter(|c| c.document == cfg.user_init_document).count();
    assert_eq!(inits(), 1);
    assert!(cloud.snapshot().tags[GROUP].get("warmpool:command-id").is_none_or(String::is_empty), "not recorded");
    assert_eq!(cloud.backlog(SIGNUP_QUEUE), 1, "the message stays");

    // The init has run and its lock is stale when the message comes back: the retry
    // takes the lock over, finds the init in SSM's history, records it and, since it
    // succeeded, makes the user ready.
    tokio::time::sleep(std::time::Duration::from_secs(40)).await;
    let stale_before = cloud.stale_reads();
    drain_signups(&cloud, &cfg).await;
    let snap = cloud.snapshot();
    assert_eq!(snap.tags[GROUP]["warmpool:state"], "ready", "ready at once, not at the sweep");
    assert_eq!(snap.ready_messages.len(), 1);

    // A signup right behind it reads the user from before: SSM's history turns it away.
    let signup_at = cloud.call_log().len();
    cloud.send_signup(SIGNUP_BODY, "u-1001");
    drain_signups(&cloud, &cfg).await;
    assert!(cloud.call_log().len() > signup_at, "the signup behind ran");
    assert!(cloud.stale_reads() > stale_before, "the runs read lagging state");
    assert_eq!(inits(), 1, "one init");
    assert_eq!(cloud.snapshot().repeated_inits, Vec::<String>::new());
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(cloud.snapshot().tags[GROUP]["warmpool:state"], "ready");
}

#[tokio::test(start_paused = true)]
async fn delete_tears_the_user_group_down() {
    let (cloud, cfg) = fixture::cloud_with_pool(3);
    warmpool_signup::handler(&cloud, &cfg, event(VALID)).await.unwrap();
    let instance = cloud.snapshot().groups[GROUP][0].clone();
    let response = warmpool_signup::handler(&cloud, &cfg, event(DELETE)).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    let snap = cloud.snapshot();
    assert!(!snap.groups.contains_key(GROUP));
    assert!(snap.terminated.contains(&instance));
    // A second delete finds nothing and still succeeds.
    let again = warmpool_signup::handler(&cloud, &cfg, event(DELETE)).await.unwrap();
    assert!(again.batch_item_failures.is_empty());
}

/// A delete that names another signup of the user, or a group of the user's name that
/// carries someone else's record (another stack's, an operator's), deletes nothing and
/// goes to the dead-letter queue.
#[tokio::test(start_paused = true)]
async fn a_delete_that_does_not_match_the_users_record_deletes_nothing() {
    use warmpool_core::ports::AutoScaling;
    let (cloud, cfg) = fixture::cloud_with_pool(3);
    warmpool_signup::handler(&cloud, &cfg, event(VALID)).await.unwrap();
    let wrong_signup = DELETE.replace(r#"\"signup_id\":\"s-9001\""#, r#"\"signup_id\":\"s-other\""#);
    assert_ne!(wrong_signup, DELETE);
    let response = warmpool_signup::handler(&cloud, &cfg, event(&wrong_signup)).await.unwrap();
    assert!(response.batch_item_failures.is_empty(), "refused, and dead-lettered at once");
    assert_eq!(cloud.snapshot().dead_letters.len(), 1);
    assert!(cloud.snapshot().groups.contains_key(GROUP), "the user's group stands");
    // The group of that name carries another user's record.
    let foreign = [("warmpool:user-id".to_owned(), "u-9999".to_owned())];
    cloud.tag_group(GROUP, &foreign).await.unwrap();
    // (Another message: the dead-letter queue deduplicates by message id.)
    let another = DELETE.replace("5fea7756-0ea4-451a-a703-a558b933e270", "6fea7756-0ea4-451a-a703-a558b933e270");
    let response = warmpool_signup::handler(&cloud, &cfg, event(&another)).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(cloud.snapshot().dead_letters.len(), 2);
    assert!(cloud.snapshot().groups.contains_key(GROUP), "a group that is not the user's stands");
    assert!(cloud.snapshot().terminated.is_empty());
}

/// An instance attached to the pool that was not launched from our launch template (by
/// hand, or by someone who should not have) is never claimed: the user goes cold, and
/// the instance stays where it is, untouched.
#[tokio::test(start_paused = true)]
async fn a_pool_member_not_from_our_launch_template_is_never_given_to_a_user() {
    let (cloud, mut cfg) = fixture::cloud_with_pool(0);
    cfg.pool_wait_s = 0; // cold at once: no pool to wait for
    let foreign = cloud.attach_foreign_instance(fixture::POOL_GROUP);
    let response = warmpool_signup::handler(&cloud, &cfg, event(VALID)).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    let snap = cloud.snapshot();
    assert_eq!(snap.tags[GROUP]["warmpool:path"], "cold", "the pool had nothing of ours to give");
    assert!(snap.groups[fixture::POOL_GROUP].contains(&foreign), "the foreign instance stays in the pool");
    assert_eq!(snap.calls.get("DetachInstances"), None);
    assert_eq!(snap.calls.get("PutParameter"), None, "not even claimed");
}

/// Every pool instance held by someone else: each lost try costs one call (only the
/// first reads who holds it), and the second look, with more candidates left than it
/// tries, lists the claims once instead of trying them one by one; then the cold path (no
/// refill is in flight to wait for).
/// Every call is a chance for the invocation to die, so a claim that cannot win is cheap.
#[tokio::test(start_paused = true)]
async fn a_claim_that_cannot_win_costs_few_calls() {
    let (cloud, cfg) = fixture::cloud_with_pool(8);
    for id in cloud.snapshot().groups[fixture::POOL_GROUP].clone() {
        cloud.put_claim(&id, "someone-else");
    }
    warmpool_signup::handler(&cloud, &cfg, event(VALID)).await.unwrap();
    let snap = cloud.snapshot();
    assert_eq!(snap.tags[GROUP]["warmpool:path"], "cold", "no refill in flight to wait for");
    let calls = |op: &str| snap.calls.get(op).copied().unwrap_or(0);
    assert_eq!(
        (calls("PutParameter"), calls("GetParameter"), calls("GetParametersByPath")),
        (3, 1, 1),
        "three tries, one holder read, one listing of the eight claims"
    );
}

/// A signup message whose invocation fails and returns (here a throttled call past its
/// retries) is back in `FAILED_RETRY_S`; one whose invocation dies waits
/// `SIGNUP_RETRY_S`, set on receipt, which outlasts the function's timeout.
#[tokio::test(start_paused = true)]
async fn a_failed_signup_comes_back_in_seconds_and_a_dead_one_after_its_retry_delay() {
    use std::time::Duration;
    use warmpool_core::flow::signup::FAILED_RETRY_S;
    use warmpool_sim::platform::drain;
    use warmpool_sim::{FaultKind, Faults, SIGNUP_QUEUE};

    let body = r#"{"kind":"signup","user_id":"u-1001","signup_id":"s-9001"}"#;
    for (fault, back_after_s) in [(FaultKind::Retryable, FAILED_RETRY_S), (FaultKind::CrashAfter, 20)] {
        let (cloud, cfg) = fixture::cloud_with_pool(1);
        assert_eq!(cfg.signup_retry_s, 20);
        cloud.send_signup(body, "u-1001");
        // Call 0 is the receipt's ChangeMessageVisibility, call 1 the group's creation.
        cloud.set_faults(Faults { at_call: Some((1, fault)), ..Faults::default() });
        assert_eq!(drain(&cloud, &cfg, SIGNUP_QUEUE).await, 1);
        cloud.set_faults(Faults::default());
        assert_eq!(cloud.call_log()[1].1, "CreateAutoScalingGroup", "{fault:?} hit the group's creation");
        assert_eq!(cloud.backlog(SIGNUP_QUEUE), 1, "{fault:?}: the message stays");
        tokio::time::sleep(Duration::from_millis(u64::from(back_after_s) * 1000 - 500)).await;
        assert!(cloud.receive_from(SIGNUP_QUEUE, 1).is_empty(), "{fault:?}: not back before {back_after_s} s");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(cloud.receive_from(SIGNUP_QUEUE, 1).len(), 1, "{fault:?}: back after {back_after_s} s");
    }
}

/// `MAX_USERS`: a signup for a new user beyond it goes to the dead-letter queue at once,
/// with the reason and a metric; a signup of a user the stack holds still goes through.
#[tokio::test(start_paused = true)]
async fn a_new_user_beyond_max_users_is_dead_lettered_with_the_reason() {
    let (cloud, _) = fixture::cloud_with_pool(3);
    let cfg = fixture::config(&cloud.subnets(), &[("MAX_USERS", "2".into())]);
    let signup = |user: &str, n: u32| {
        event(&VALID.replace("u-1001", user).replace("5fea7756-0ea4-451a-a703-a558b933e270", &format!("message-{n}")))
    };
    for (n, user) in ["u-1001", "u-1002"].into_iter().enumerate() {
        let response = warmpool_signup::handler(&cloud, &cfg, signup(user, n as u32)).await.unwrap();
        assert!(response.batch_item_failures.is_empty());
    }
    // Created a while ago: the listing that counts them shows both.
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    let response = warmpool_signup::handler(&cloud, &cfg, signup("u-1003", 3)).await.unwrap();
    assert!(response.batch_item_failures.is_empty(), "dead-lettered, not retried");
    let snap = cloud.snapshot();
    assert!(!snap.groups.contains_key("warmpool-user-u-1003"), "no group for the third user");
    assert_eq!(snap.dead_letters.len(), 1, "{:?}", snap.dead_letters);
    assert!(snap.dead_letters[0].contains("u-1003"));
    assert_eq!(snap.metrics.get("UserLimitReached").map(|m| m.0), Some(1));
    // A user it holds signs up again (a duplicate): not refused.
    let again = warmpool_signup::handler(&cloud, &cfg, signup("u-1001", 4)).await.unwrap();
    assert!(again.batch_item_failures.is_empty());
    assert_eq!(cloud.snapshot().dead_letters.len(), 1);
    // The Region's group count was asked for each new user.
    assert!(cloud.snapshot().calls.get("DescribeAccountLimits").is_some_and(|n| *n >= 3));
}

/// A pool member Auto Scaling has marked `Unhealthy` (still `InService`, not yet replaced)
/// is never claimed: the first user gets the healthy one, the next goes cold, and the
/// unhealthy one stays where it is, unclaimed.
#[tokio::test(start_paused = true)]
async fn an_unhealthy_pool_member_is_never_claimed() {
    let (cloud, cfg) = fixture::cloud_with_pool(2);
    let pool = cloud.snapshot().groups[fixture::POOL_GROUP].clone();
    cloud.mark_unhealthy(&pool[0]);
    let response = warmpool_signup::handler(&cloud, &cfg, event(VALID)).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    let snap = cloud.snapshot();
    assert_eq!(snap.groups[GROUP], [pool[1].clone()], "the healthy member");
    let second = VALID.replace("u-1001", "u-1002").replace("5fea7756", "6fea7756");
    let response = warmpool_signup::handler(&cloud, &cfg, event(&second)).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    let snap = cloud.snapshot();
    assert_eq!(snap.tags["warmpool-user-u-1002"]["warmpool:path"], "cold", "nothing healthy left to claim");
    assert!(snap.groups[fixture::POOL_GROUP].contains(&pool[0]), "the unhealthy member stays in the pool");
    assert!(!snap.claims.contains_key(&pool[0]), "and is never claimed");
}

/// A resume naming an attempt older than the record's (a failover's resume delivered
/// late, after the user moved on) is a read that is not stale: it is answered at once
/// from the record, not retried as if the record lagged.
#[tokio::test(start_paused = true)]
async fn a_resume_of_an_earlier_attempt_is_answered_from_the_record() {
    let (cloud, cfg) = fixture::cloud_with_pool(3);
    warmpool_signup::handler(&cloud, &cfg, event(VALID)).await.unwrap();
    let attempt: u32 = cloud.snapshot().tags[GROUP]["warmpool:attempt"].parse().unwrap();
    let body = format!(r#"{{"kind":"resume","user_id":"u-1001","attempt":{}}}"#, attempt - 1);
    let late = VALID.replace(
        r#""{\"kind\":\"signup\",\"user_id\":\"u-1001\",\"signup_id\":\"s-9001\"}""#,
        &serde_json::to_string(&body).unwrap(),
    );
    assert_ne!(late, VALID, "the sample's body was replaced");
    let before = cloud.snapshot();
    let calls_before = before.calls.values().sum::<u64>();
    let response = warmpool_signup::handler(&cloud, &cfg, event(&late)).await.unwrap();
    assert!(response.batch_item_failures.is_empty(), "retried: {:?}", response.batch_item_failures);
    let snap = cloud.snapshot();
    assert_eq!(snap.tags[GROUP]["warmpool:state"], "initializing", "nothing changed");
    assert_eq!(snap.claims, before.claims, "no claim taken or released");
    assert!(snap.calls.values().sum::<u64>() - calls_before < 10, "answered from a read or two");
}
