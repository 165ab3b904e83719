//! The in-memory cloud is at least as strict as AWS: each test shows the model refusing
//! or delaying what AWS does, with AWS's own words where the flow reads them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::time::Duration;

use warmpool_core::Config;
use warmpool_core::error::CloudError;
use warmpool_core::flow::acquire::retire;
use warmpool_core::ports::{AutoScaling, MemberState, Membership, UserGroupSpec};
use warmpool_sim::fixture::{self, POOL_GROUP};

/// A user group for `u-1`, as signup would create it.
fn user_group(cfg: &Config) -> UserGroupSpec {
    UserGroupSpec {
        name: cfg.user_group("u-1"),
        launch_template: cfg.launch_template.clone(),
        subnets: cfg.subnets.clone(),
        tags: Vec::new(),
    }
}

/// AWS: "Currently, desiredSize equals minSize (n). Terminating instance without
/// replacement will violate group's min size constraint." It refuses; it does not clamp.
#[tokio::test(start_paused = true)]
async fn a_terminate_with_decrement_at_min_size_is_refused_and_retire_terminates_without_it() {
    let (cloud, _cfg) = fixture::cloud_with_pool(2);
    cloud.set_min_size(POOL_GROUP, 2);
    let id = cloud.snapshot().groups[POOL_GROUP][0].clone();
    let err = cloud.terminate_instance(&id, true).await.unwrap_err();
    assert!(matches!(err, CloudError::BelowMinSize { .. }), "{err:?}");
    assert!(err.to_string().contains("min size constraint"), "{err}");
    assert_eq!(cloud.group_size(POOL_GROUP).unwrap().desired, 2, "a refused call changes nothing");
    assert!(cloud.snapshot().terminated.is_empty());
    // The flow's retire falls back to a terminate without the decrement: the instance
    // goes, and the pool keeps its size by launching a replacement.
    retire(&cloud, &id).await.unwrap();
    let snap = cloud.snapshot();
    assert_eq!(snap.terminated, vec![id]);
    assert_eq!(
        snap.calls["TerminateInstanceInAutoScalingGroup"], 3,
        "the test's refused call, then retire's: refused once, then without the decrement"
    );
    assert_eq!(cloud.group_size(POOL_GROUP).unwrap().desired, 2);
}

/// Above MinSize the decrement applies: the group does not replace the instance.
#[tokio::test(start_paused = true)]
async fn a_terminate_with_decrement_above_min_size_shrinks_the_group() {
    let (cloud, _cfg) = fixture::cloud_with_pool(2);
    let id = cloud.snapshot().groups[POOL_GROUP][0].clone();
    retire(&cloud, &id).await.unwrap();
    assert_eq!(cloud.group_size(POOL_GROUP).unwrap().desired, 1);
    assert_eq!(cloud.snapshot().calls["TerminateInstanceInAutoScalingGroup"], 1);
}

/// AWS: "`AutoScalingGroup` g has min-size=0, max-size=1, and desired-size=1. To attach 1
/// instance, please update the `AutoScalingGroup` sizes appropriately."
#[tokio::test(start_paused = true)]
async fn an_attach_above_max_size_is_refused_in_aws_words() {
    let (cloud, cfg) = fixture::cloud_with_pool(2);
    let pool = cloud.snapshot().groups[POOL_GROUP].clone();
    let spec = user_group(&cfg);
    cloud.create_user_group(&spec).await.unwrap();
    for id in &pool {
        cloud.detach_instance(POOL_GROUP, id).await.unwrap();
    }
    tokio::time::sleep(Duration::from_mins(1)).await;
    cloud.attach_instance(&spec.name, &pool[0]).await.unwrap();
    let err = cloud.attach_instance(&spec.name, &pool[1]).await.unwrap_err();
    let CloudError::MaxSizeExceeded { message, .. } = &err else { panic!("{err:?}") };
    assert!(message.contains("min-size=0, max-size=1, and desired-size=1. To attach 1 instance"), "{message}");
}

/// AWS detaches asynchronously: after `DetachInstances` returns, the instance is
/// `Detaching`, still listed in the group, and an attach elsewhere is refused until the
/// detach completes (seconds, sometimes tens of seconds: `CloudModel::detach_s`).
#[tokio::test(start_paused = true)]
async fn a_detached_instance_stays_detaching_in_the_pool_until_the_detach_completes() {
    use warmpool_sim::{CloudModel, SimCloud};
    // Reads see every mutation at once here (eventual consistency has its own test).
    let (cloud, _bus) = SimCloud::new(CloudModel { stale_read_ms: (0, 0), ..CloudModel::default() }, 1, 90, 5);
    let cfg = fixture::config(&cloud.subnets(), &[]);
    cloud.create_pool(POOL_GROUP, fixture::POOL_HOOK, 2, 14);
    let spec = user_group(&cfg);
    cloud.create_user_group(&spec).await.unwrap();
    let id = cloud.snapshot().groups[POOL_GROUP][0].clone();
    cloud.detach_instance(POOL_GROUP, &id).await.unwrap();
    let detaching = Membership { group: POOL_GROUP.to_owned(), state: MemberState::Detaching };
    assert_eq!(cloud.instance_membership(&id).await.unwrap(), Some(detaching), "still listed in the pool");
    let err = cloud.attach_instance(&spec.name, &id).await.unwrap_err();
    assert!(matches!(err, CloudError::AlreadyInGroup { .. }), "an attach while detaching is refused: {err:?}");
    let again = cloud.detach_instance(POOL_GROUP, &id).await.unwrap_err();
    assert!(matches!(again, CloudError::NotInService { .. }), "a second detach finds it not InService: {again:?}");
    let (lo, hi) = cloud.model().detach_s;
    assert!(lo >= 1.0 && hi > lo, "the window is modelled: {lo}..{hi} s");
    tokio::time::sleep(Duration::from_secs_f64(hi + 1.0)).await;
    assert_eq!(cloud.instance_membership(&id).await.unwrap(), None, "out of the pool once the detach completes");
    cloud.attach_instance(&spec.name, &id).await.unwrap();
    let joined = Membership { group: spec.name.clone(), state: MemberState::InService };
    assert_eq!(cloud.instance_membership(&id).await.unwrap(), Some(joined));
}

/// AWS: `DescribeAutoScalingGroups` returns at most `MaxRecords` (100) groups a page;
/// the `tag:` filters apply before paging. A sweep over many users costs a call per
/// hundred, and the state filter keeps finished users out of it.
#[tokio::test(start_paused = true)]
async fn user_groups_are_listed_a_page_of_100_a_call_and_filtered_by_state() {
    use warmpool_core::domain::{Id, UserRecord, UserState};
    let (cloud, cfg) = fixture::cloud_with_pool(0);
    for i in 0..250 {
        let user = Id::parse("user", &format!("u-{i:03}")).unwrap();
        let mut record = UserRecord::new(&user, &user, 0);
        if i % 5 != 0 {
            record.state = UserState::Ready;
        }
        let spec = UserGroupSpec { name: cfg.user_group(user.as_str()), tags: record.to_tags(), ..user_group(&cfg) };
        cloud.create_user_group(&spec).await.unwrap();
    }
    // Created a while ago: every group is visible to a listing (see the next test).
    tokio::time::sleep(Duration::from_millis(cloud.model().stale_read_ms.1 + 1)).await;
    let before = cloud.snapshot().calls.get("DescribeAutoScalingGroups").copied().unwrap_or(0);
    assert_eq!(cloud.list_user_groups(&cfg.user_group_prefix, &[]).await.unwrap().len(), 250);
    let after_all = cloud.snapshot().calls["DescribeAutoScalingGroups"];
    assert_eq!(after_all - before, 3, "250 groups: three pages");
    let unfinished = cloud.list_user_groups(&cfg.user_group_prefix, UserState::IN_FLIGHT).await.unwrap();
    assert_eq!(unfinished.len(), 50, "only the claiming ones");
    assert_eq!(cloud.snapshot().calls["DescribeAutoScalingGroups"] - after_all, 1, "50 groups: one page");
}

/// EC2 documents its API as eventually consistent ("the result of an API command ...
/// might not be immediately visible to all subsequent commands"), and Auto Scaling is
/// modelled the same: for a while after a mutation, `DescribeAutoScalingGroups`,
/// `DescribeAutoScalingInstances` and `DescribeInstances` answer with the state from
/// before it, while the mutating calls themselves see the truth. Never staler than the
/// window, however many mutations follow.
#[tokio::test(start_paused = true)]
async fn describe_calls_show_the_state_from_before_a_recent_mutation() {
    use warmpool_core::ports::Instances;
    use warmpool_sim::{CloudModel, SimCloud};
    let window = Duration::from_millis(1_500);
    let model = CloudModel { stale_read_ms: (1_500, 1_500), detach_s: (3.0, 3.0), ..CloudModel::default() };
    let (cloud, _bus) = SimCloud::new(model, 1, 90, 5);
    let cfg = fixture::config(&cloud.subnets(), &[]);
    cloud.create_pool(POOL_GROUP, fixture::POOL_HOOK, 2, 10);
    let id = cloud.snapshot().groups[POOL_GROUP][0].clone();
    let spec = user_group(&cfg);

    // A created group is not described yet; creating it again is refused all the same.
    cloud.create_user_group(&spec).await.unwrap();
    assert_eq!(cloud.describe_group(&spec.name).await.unwrap(), None);
    assert!(matches!(cloud.create_user_group(&spec).await, Err(CloudError::AlreadyExists { .. })));
    tokio::time::sleep(window).await;
    assert!(cloud.describe_group(&spec.name).await.unwrap().is_some());

    // A detach: still InService to a read, `Detaching` after the window; out of the
    // pool when the activity ends (3 s), which reads see a window later.
    cloud.detach_instance(POOL_GROUP, &id).await.unwrap();
    let in_pool = |state| Some(Membership { group: POOL_GROUP.into(), state });
    assert_eq!(cloud.instance_membership(&id).await.unwrap(), in_pool(MemberState::InService));
    tokio::time::sleep(window).await;
    assert_eq!(cloud.instance_membership(&id).await.unwrap(), in_pool(MemberState::Detaching));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(cloud.instance_membership(&id).await.unwrap(), in_pool(MemberState::Detaching));
    tokio::time::sleep(window).await;
    assert_eq!(cloud.instance_membership(&id).await.unwrap(), None);

    // An attach: in no group to Auto Scaling and EC2 alike, then in the user's group.
    cloud.attach_instance(&spec.name, &id).await.unwrap();
    assert_eq!(cloud.instance_membership(&id).await.unwrap(), None);
    let outside = cloud.instances_outside_groups(&cfg.launch_template).await.unwrap();
    assert!(outside.iter().any(|o| o.instance_id == id), "EC2 still lists it outside every group");
    assert!(cloud.describe_group(&spec.name).await.unwrap().unwrap().members.is_empty());
    assert!(cloud.snapshot().groups[&spec.name].contains(&id), "the ground truth has it");
    tokio::time::sleep(window).await;
    assert_eq!(cloud.instance_membership(&id).await.unwrap().map(|m| m.group), Some(spec.name.clone()));
    assert!(cloud.instances_outside_groups(&cfg.launch_template).await.unwrap().is_empty());

    // Mutations in a row: a read sees every one older than the window.
    for desired in 1..=6 {
        cloud.set_desired_capacity(POOL_GROUP, desired).await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let seen = cloud.describe_group(POOL_GROUP).await.unwrap().unwrap().desired_capacity;
    assert!((4..6).contains(&seen), "desired set to 4 over 1.5 s ago, to 6 just now: seen {seen}");
    assert!(cloud.stale_reads() >= 6, "{}", cloud.stale_reads());
}

/// Tags are the user's record, and lag their writes like the rest of a group's
/// description (`CloudModel::stale_tags`, on by default); with the knob off, they are
/// read back at once.
#[tokio::test(start_paused = true)]
async fn tags_lag_only_when_the_model_says_so() {
    use warmpool_sim::{CloudModel, SimCloud};
    assert!(CloudModel::default().stale_tags, "as strict as AWS by default");
    for stale_tags in [false, true] {
        let model = CloudModel { stale_read_ms: (1_500, 1_500), stale_tags, ..CloudModel::default() };
        let (cloud, _bus) = SimCloud::new(model, 1, 90, 5);
        let cfg = fixture::config(&cloud.subnets(), &[]);
        let spec = user_group(&cfg);
        cloud.create_user_group(&spec).await.unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        cloud.tag_group(&spec.name, &[("k".into(), "v".into())]).await.unwrap();
        let tags = cloud.describe_group(&spec.name).await.unwrap().unwrap().tags;
        assert_eq!(tags.contains_key("k"), !stale_tags, "stale_tags {stale_tags}");
    }
}

/// SQS: a standard queue takes no `MessageGroupId`, a FIFO queue needs one (with a
/// deduplication id, as ours have no content-based deduplication); a URL that names no
/// queue is `QueueDoesNotExist`.
#[tokio::test(start_paused = true)]
async fn queues_refuse_messages_of_the_wrong_kind_and_unknown_urls() {
    use warmpool_core::ports::{QueuedMessage, WorkQueues};
    let (cloud, cfg) = fixture::cloud_with_pool(0);
    let standard = QueuedMessage { group_id: None, dedup_id: None, body: "{}".into(), delay_s: 0 };
    let fifo =
        QueuedMessage { group_id: Some("u-1".into()), dedup_id: Some("d-1".into()), body: "{}".into(), delay_s: 0 };
    for (url, bad) in [(&cfg.signup_queue_url, &standard), (&cfg.redrive_queue_url, &fifo)] {
        let err = cloud.send_batch(url, std::slice::from_ref(bad)).await.unwrap_err();
        assert!(matches!(err, CloudError::Invalid { .. }), "{url}: {err:?}");
    }
    cloud.send_batch(&cfg.signup_queue_url, &[fifo]).await.unwrap();
    cloud.send_batch(&cfg.redrive_queue_url, std::slice::from_ref(&standard)).await.unwrap();
    assert_eq!(cloud.backlog(warmpool_sim::SIGNUP_QUEUE), 1);
    assert_eq!(cloud.backlog(warmpool_sim::REDRIVE_QUEUE), 1);
    let err = cloud.send_batch("https://sqs.us-east-1.amazonaws.com/1/nope", &[standard]).await.unwrap_err();
    assert!(matches!(err, CloudError::NotFound { .. }), "{err:?}");
    let err = cloud.retry_after("https://sqs.us-east-1.amazonaws.com/1/nope", "r", 5).await.unwrap_err();
    assert!(matches!(err, CloudError::NotFound { .. }), "{err:?}");
}

/// SQS message timers: `DelaySeconds` (0 to 900) keeps a standard queue's message from
/// being received until it has passed; a FIFO queue refuses a per-message delay.
#[tokio::test(start_paused = true)]
async fn a_delayed_message_is_received_only_after_its_delay() {
    use warmpool_core::ports::{QueuedMessage, WorkQueues};
    let (cloud, cfg) = fixture::cloud_with_pool(0);
    let delayed = |delay_s| QueuedMessage { group_id: None, dedup_id: None, body: "{}".into(), delay_s };
    let fifo =
        QueuedMessage { group_id: Some("u-1".into()), dedup_id: Some("d-1".into()), body: "{}".into(), delay_s: 5 };
    for (url, bad) in [(&cfg.signup_queue_url, fifo), (&cfg.redrive_queue_url, delayed(901))] {
        let err = cloud.send_batch(url, std::slice::from_ref(&bad)).await.unwrap_err();
        assert!(matches!(&err, CloudError::Invalid { message, .. } if message.contains("DelaySeconds")), "{err:?}");
    }
    cloud.send_batch(&cfg.redrive_queue_url, &[delayed(20)]).await.unwrap();
    assert!(cloud.receive_from(warmpool_sim::REDRIVE_QUEUE, 10).is_empty(), "not before its delay");
    tokio::time::sleep(Duration::from_millis(19_500)).await;
    assert!(cloud.receive_from(warmpool_sim::REDRIVE_QUEUE, 10).is_empty(), "not before its delay");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(cloud.receive_from(warmpool_sim::REDRIVE_QUEUE, 10).len(), 1, "received once it has passed");
}

/// Auto Scaling: a launch that EC2 refuses (capacity, a quota, no free address) is a
/// failed launch activity with no instance, reported by `EC2 Instance Launch
/// Unsuccessful`; the group tries again on its next pass.
#[tokio::test(start_paused = true)]
async fn a_refused_launch_is_a_failed_activity_and_the_group_tries_again() {
    let (cloud, cfg) = fixture::cloud_with_pool(0);
    cloud.create_user_group(&user_group(&cfg)).await.unwrap();
    cloud.fail_next_launches(1);
    cloud.set_desired_capacity(&cfg.user_group("u-1"), 1).await.unwrap();
    tokio::time::sleep(Duration::from_secs(cloud.model().scaling_interval_s)).await;
    let group = cfg.user_group("u-1");
    assert!(cloud.snapshot().groups[&group].is_empty(), "the refused launch made no instance");
    let launches = cloud.recent_launches(&group).await.unwrap();
    assert_eq!(launches.len(), 1);
    assert!(launches[0].ended_ms.is_some() && !launches[0].succeeded, "{launches:?}");
    assert!(cloud.timeline().iter().any(|e| e.text.contains("Launching EC2 instance failed")));
    tokio::time::sleep(Duration::from_secs(cloud.model().scaling_interval_s)).await;
    assert_eq!(cloud.snapshot().groups[&group].len(), 1, "the next pass launched");
}

/// Auto Scaling lists `ScalingActivityInProgress` among the errors of `SetDesiredCapacity`
/// and `TerminateInstanceInAutoScalingGroup`: the model answers it (at its rate) while the
/// group has a launch in progress, and the flow treats it as retryable.
#[tokio::test(start_paused = true)]
async fn a_group_busy_launching_may_refuse_to_resize_or_terminate() {
    use warmpool_core::ports::LifecycleResult;
    use warmpool_sim::{CloudModel, SimCloud};
    let model = CloudModel { activity_in_progress_rate: 1.0, ..CloudModel::default() };
    let (cloud, _bus) = SimCloud::new(model, 1, 90, 5);
    cloud.create_pool(POOL_GROUP, fixture::POOL_HOOK, 1, 10);
    let member = cloud.snapshot().groups[POOL_GROUP][0].clone();
    cloud.set_desired_capacity(POOL_GROUP, 2).await.unwrap();
    tokio::time::sleep(Duration::from_secs(cloud.model().scaling_interval_s + 5)).await;
    let launching = cloud.snapshot().groups[POOL_GROUP].iter().find(|i| **i != member).cloned().unwrap();
    for err in [
        cloud.set_desired_capacity(POOL_GROUP, 3).await.unwrap_err(),
        cloud.terminate_instance(&member, false).await.unwrap_err(),
    ] {
        assert!(matches!(err, CloudError::ScalingActivityInProgress { .. }) && err.is_retryable(), "{err:?}");
    }
    // The launch ends (its hook completes): the group takes both again.
    tokio::time::sleep(Duration::from_secs(90)).await;
    cloud
        .complete_lifecycle_action(POOL_GROUP, fixture::POOL_HOOK, &launching, LifecycleResult::Continue)
        .await
        .unwrap();
    cloud.set_desired_capacity(POOL_GROUP, 3).await.unwrap();
}

/// Parameter Store: the claim listing (`GetParametersByPath`, `Recursive`, 10 a page)
/// pages through the init locks beside the claims too, though it returns only claims.
#[tokio::test(start_paused = true)]
async fn the_claim_listing_pages_through_the_claims_only() {
    use warmpool_core::ports::{Claims, init_lock};
    let (cloud, _cfg) = fixture::cloud_with_pool(0);
    for i in 0..15 {
        let id = format!("i-{i:017}");
        assert!(cloud.claim_if_unclaimed(&id, "u-1").await.unwrap());
        assert!(cloud.claim_if_unclaimed(&init_lock(&id), "u-1").await.unwrap());
    }
    let before = cloud.snapshot().calls.get("GetParametersByPath").copied().unwrap_or(0);
    let claims = cloud.list_claims().await.unwrap();
    assert_eq!(claims.len(), 15, "claims only");
    assert!(claims.iter().all(|c| !c.instance_id.contains('/')));
    let pages = cloud.snapshot().calls["GetParametersByPath"] - before;
    assert_eq!(pages, 2, "15 claims, 10 a page; the init locks, a level deeper, are not listed");
    // Releasing an instance deletes its claim and its init lock in one call.
    cloud.release("i-00000000000000000").await.unwrap();
    assert_eq!(cloud.claim_of(&init_lock("i-00000000000000000")).await.unwrap(), None);
}

/// `AppliedThenError`: the call takes effect, and its caller gets a retryable error, as
/// when AWS applied a call whose response was lost; on a call that changes nothing it is
/// a plain error. Each fault that fires is recorded at its call.
#[tokio::test(start_paused = true)]
async fn a_lost_response_leaves_the_effect_and_answers_a_retryable_error() {
    use warmpool_core::ports::Claims;
    use warmpool_sim::{FaultKind, Faults, invoke};
    let (cloud, _) = fixture::cloud_with_pool(1);
    cloud.set_faults(Faults { at_call: Some((0, FaultKind::AppliedThenError)), ..Faults::default() });
    let answer = invoke("signup", cloud.claim_if_unclaimed("i-1", "u-1")).await.unwrap();
    let Err(e) = answer else { panic!("the lost response answers an error: {answer:?}") };
    assert!(matches!(e, CloudError::Transient { .. }) && e.is_retryable(), "{e:?}");
    let claim = invoke("signup", cloud.claim_of("i-1")).await.unwrap().unwrap();
    assert_eq!(claim.map(|c| c.owner).as_deref(), Some("u-1"), "the claim was made");
    let fired = cloud.fired_faults();
    assert_eq!(fired.len(), 1);
    assert_eq!(
        (fired[0].0, fired[0].1.op.as_str(), fired[0].1.nth, fired[0].2),
        (0, "PutParameter", 0, FaultKind::AppliedThenError)
    );

    // On a read: an error, nothing else.
    let (cloud, _) = fixture::cloud_with_pool(1);
    cloud.set_faults(Faults { at_call: Some((0, FaultKind::AppliedThenError)), ..Faults::default() });
    let read = invoke("signup", cloud.claim_of("i-1")).await.unwrap();
    assert!(matches!(read, Err(CloudError::Transient { .. })), "{read:?}");
    // A fault past the calls made never fires.
    let (cloud, _) = fixture::cloud_with_pool(1);
    cloud.set_faults(Faults { at_call: Some((5, FaultKind::CrashAfter)), ..Faults::default() });
    invoke("signup", cloud.claim_of("i-1")).await.unwrap().unwrap();
    assert!(cloud.fired_faults().is_empty());
}

/// A cloud whose one pool instance is out of every group, beside two empty user groups,
/// `group-a` and `group-b`; returns it and the instance.
async fn outside_with_two_groups() -> (warmpool_sim::SimCloud, String) {
    let (cloud, cfg) = fixture::cloud_with_pool(1);
    let id = cloud.snapshot().groups[POOL_GROUP][0].clone();
    cloud.detach_by_hand(POOL_GROUP, &id);
    for name in ["group-a", "group-b"] {
        let spec = UserGroupSpec {
            name: name.into(),
            launch_template: cfg.launch_template.clone(),
            subnets: cfg.subnets.clone(),
            tags: Vec::new(),
        };
        cloud.create_user_group(&spec).await.unwrap();
    }
    (cloud, id)
}

/// `AttachedFirst`: another caller's attach of the same instance lands just before the
/// call, which then meets what it left (AWS refuses an attach of an instance already in
/// a group); on any other call it is a plain retryable error.
#[tokio::test(start_paused = true)]
async fn an_attach_made_first_by_another_caller_is_refused_as_already_in_a_group() {
    use warmpool_sim::{FaultKind, Faults, invoke};
    let (cloud, id) = outside_with_two_groups().await;
    cloud.set_faults(Faults { at_call: Some((0, FaultKind::AttachedFirst(Some("group-b")))), ..Faults::default() });
    let answer = invoke("signup", cloud.attach_instance("group-a", &id)).await.unwrap();
    assert!(
        matches!(&answer, Err(CloudError::AlreadyInGroup { message, .. }) if message.contains("group-b")),
        "{answer:?}"
    );
    let snap = cloud.snapshot();
    assert_eq!((snap.groups["group-a"].len(), snap.groups["group-b"].clone()), (0, vec![id.clone()]));
    assert_eq!(cloud.fired_faults().len(), 1);

    // On another call: a retryable error, nothing else.
    cloud.set_faults(Faults { at_call: Some((1, FaultKind::AttachedFirst(None))), ..Faults::default() });
    let read = invoke("signup", cloud.instance_membership(&id)).await.unwrap();
    assert!(matches!(&read, Err(e) if e.is_retryable()), "{read:?}");

    // An attach throttled out never went through, so the other caller's attach does not
    // carry to the next attach this invocation makes.
    let (cloud, id) = outside_with_two_groups().await;
    cloud.set_faults(Faults {
        at_call: Some((0, FaultKind::AttachedFirst(Some("group-b")))),
        throttle_rate: 1.0,
        ..Faults::default()
    });
    let throttled = invoke("signup", async {
        let first = cloud.attach_instance("group-a", &id).await;
        cloud.set_faults(Faults::default());
        (first, cloud.attach_instance("group-a", &id).await)
    })
    .await
    .unwrap();
    assert!(matches!(&throttled.0, Err(CloudError::Throttled { .. })), "{throttled:?}");
    assert!(throttled.1.is_ok(), "{throttled:?}");
    let snap = cloud.snapshot();
    assert_eq!((snap.groups["group-a"].clone(), snap.groups["group-b"].len()), (vec![id], 0));
}

/// `ListCommandInvocations`: 50 a page (`MaxResults`), a call a page, filtered by
/// document, `InvokedAfter` and `InvokedBefore`; a page is read when its call is made,
/// so a command sent between two pages' calls is on a later one.
#[tokio::test(start_paused = true)]
async fn command_invocations_are_listed_a_page_of_50_a_call_within_the_time_filters() {
    use std::collections::BTreeMap;
    use warmpool_core::ports::{Clock, CommandRequest, InvocationQuery, RunCommand};
    let (cloud, cfg) = fixture::cloud_with_pool(70);
    let pool = cloud.snapshot().groups[POOL_GROUP].clone();
    let prep = |instance_id: &str| CommandRequest {
        document: cfg.pool_prep_document.clone(),
        instance_id: instance_id.to_owned(),
        parameters: BTreeMap::from([("executionTimeout".to_owned(), vec!["600".to_owned()])]),
        delivery_timeout_s: 60,
        comment: "test".to_owned(),
    };
    let start = cloud.now_ms();
    let mut asked_at = Vec::new();
    for id in &pool[..60] {
        asked_at.push(cloud.now_ms());
        cloud.send_command(&prep(id)).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let calls = || cloud.snapshot().calls.get("ListCommandInvocations").copied().unwrap_or(0);
    let all = InvocationQuery::since(&cfg.pool_prep_document, start);
    let first = cloud.list_invocations_page(all, None).await.unwrap();
    assert_eq!((first.invocations.len(), calls()), (50, 1));
    // Sent between the pages (and listed once SSM shows it, a moment after): on the second.
    cloud.send_command(&prep(&pool[60])).await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let second = cloud.list_invocations_page(all, first.next_token.clone()).await.unwrap();
    assert_eq!((second.invocations.len(), second.next_token.as_deref(), calls()), (11, None, 2));
    assert!(second.invocations.iter().any(|i| i.instance_id == pool[60]));
    // The time filters: the first ten sends only, in one call; another document, none.
    let early = all.before(asked_at[10]);
    let listed = cloud.list_invocations(early).await.unwrap();
    let expected: Vec<&String> = pool[..10].iter().collect();
    assert_eq!(listed.iter().map(|i| &i.instance_id).collect::<Vec<_>>(), expected);
    assert_eq!(calls(), 3);
    let late = InvocationQuery::since(&cfg.pool_prep_document, asked_at[59]);
    assert_eq!(cloud.list_invocations(late).await.unwrap().len(), 2, "the last of the 60, and the one between pages");
    let other = InvocationQuery::since(&cfg.user_init_document, start);
    assert!(cloud.list_invocations(other).await.unwrap().is_empty());
}

/// The user guide's warm pool: the warm pool holds `max(MinSize, MaxGroupPreparedCapacity
/// − desired capacity)` (equal values: an absolute size); its instances are not in the
/// group's own list but `DescribeAutoScalingInstances` shows them `Warmed:*`; a stopped
/// one's agent is offline; `DescribeWarmPool` on a group without one says so; a start
/// out of it is a launch activity "from warm pool", a launch into it one "into warm pool".
#[tokio::test(start_paused = true)]
async fn a_warm_pool_holds_its_size_outside_the_groups_list_and_starts_before_it_launches() {
    use warmpool_core::ports::{Instances, LaunchKind, RunCommand, WarmPoolSize};
    let (cloud, _cfg) = fixture::cloud_with_pool(1);
    assert_eq!(cloud.describe_warm_pool(POOL_GROUP).await.unwrap(), None, "no warm pool yet");
    let err = cloud
        .put_warm_pool(POOL_GROUP, "Frozen", WarmPoolSize { min_size: 1, max_group_prepared_capacity: 1 })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("PoolState"), "{err}");
    cloud.create_warm_pool(POOL_GROUP, "Stopped", 2);
    let parked: Vec<String> = cloud.snapshot().warm[POOL_GROUP].iter().map(|(id, _)| id.clone()).collect();
    let group = cloud.describe_group(POOL_GROUP).await.unwrap().unwrap();
    assert!(group.members.iter().all(|m| !parked.contains(&m.instance_id)), "not in the group's own list");
    let membership = cloud.instance_membership(&parked[0]).await.unwrap().unwrap();
    assert_eq!(membership, Membership { group: POOL_GROUP.into(), state: MemberState::WarmedParked });
    assert!(!cloud.agent_online(&parked[0]).await.unwrap(), "a stopped instance's agent is offline");
    assert!(cloud.instances_outside_groups(fixture::LAUNCH_TEMPLATE).await.unwrap().is_empty(), "in its group");
    // MaxGroupPreparedCapacity 3 less the desired 1 is 2, above MinSize 1: two stay.
    cloud
        .put_warm_pool(POOL_GROUP, "Stopped", WarmPoolSize { min_size: 1, max_group_prepared_capacity: 3 })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(cloud.describe_warm_pool(POOL_GROUP).await.unwrap().unwrap().instances.len(), 2);
    // The group short of one starts a parked instance, not a new one.
    cloud.set_desired_capacity(POOL_GROUP, 2).await.unwrap();
    tokio::time::sleep(Duration::from_secs(15)).await;
    let launches = cloud.recent_launches(POOL_GROUP).await.unwrap();
    assert_eq!(launches.iter().filter(|l| l.kind == LaunchKind::FromWarmPool).count(), 1, "{launches:?}");
    assert_eq!(launches.iter().filter(|l| l.kind == LaunchKind::New).count(), 0, "{launches:?}");
    // Desired 2 of MaxGroupPreparedCapacity 3 leaves 1, MinSize 1: the warm pool needs no
    // refill. Raising MinSize to 3 launches two into it.
    assert_eq!(launches.iter().filter(|l| l.kind == LaunchKind::IntoWarmPool).count(), 0, "{launches:?}");
    cloud
        .put_warm_pool(POOL_GROUP, "Stopped", WarmPoolSize { min_size: 3, max_group_prepared_capacity: 3 })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(15)).await;
    let launches = cloud.recent_launches(POOL_GROUP).await.unwrap();
    assert_eq!(launches.iter().filter(|l| l.kind == LaunchKind::IntoWarmPool).count(), 2, "{launches:?}");
    let warm = cloud.describe_warm_pool(POOL_GROUP).await.unwrap().unwrap();
    assert_eq!((warm.min_size, warm.max_group_prepared_capacity, warm.instances.len()), (3, Some(3), 3));
    assert!(warm.instances.iter().any(|i| i.state.starts_with("Warmed:Pending")), "{warm:?}");
}

/// An instance of a warm pool goes through two lifecycle actions (into the warm pool, out
/// of it), each with its own heartbeat: the first one's timeout does not end the second.
#[tokio::test(start_paused = true)]
async fn the_hook_timeout_of_the_way_in_does_not_end_the_way_out() {
    use warmpool_core::ports::{LifecycleResult, WarmPoolSize};
    let model = warmpool_sim::CloudModel { hook_timeout_s: 300, ..warmpool_sim::CloudModel::default() };
    let (cloud, cfg) = fixture::cloud_with_pool_and_model(1, model);
    cloud
        .put_warm_pool(POOL_GROUP, "Stopped", WarmPoolSize { min_size: 1, max_group_prepared_capacity: 1 })
        .await
        .unwrap();
    // The scaling pass launches one into the warm pool; it boots into the hook.
    tokio::time::sleep(Duration::from_secs(100)).await;
    let id = cloud.snapshot().warm[POOL_GROUP][0].0.clone();
    cloud.complete_lifecycle_action(POOL_GROUP, &cfg.pool_hook, &id, LifecycleResult::Continue).await.unwrap();
    tokio::time::sleep(Duration::from_secs(70)).await;
    assert_eq!(cloud.snapshot().warm[POOL_GROUP][0].1, "Warmed:Stopped", "parked");
    // The pool grows by one: the parked instance starts, into the hook again (left pending).
    cloud.set_desired_capacity(POOL_GROUP, 2).await.unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(cloud.snapshot().groups[POOL_GROUP].contains(&id), "started into the pool");
    // Past the first action's timeout (300 s after the launch), within the second's.
    tokio::time::sleep(Duration::from_secs(150)).await;
    assert!(!cloud.snapshot().terminated.contains(&id), "the way in's timeout ended the way out");
    // The second action times out on its own schedule.
    tokio::time::sleep(Duration::from_secs(200)).await;
    assert!(cloud.snapshot().terminated.contains(&id), "the way out's own timeout applies");
}
