//! The adapters against stubbed AWS responses (`aws-smithy-mocks`): every error the
//! flow acts on arrives as AWS sends it (awsQuery XML for Auto Scaling, JSON for SSM
//! and SQS) and must come out as the right [`CloudError`]; requests carry the
//! parameters the design depends on. Calls moto lacks (`CompleteLifecycleAction`) or
//! gets wrong (second detach, attach above `MaxSize`) are covered here.

use aws_sdk_autoscaling::operation::complete_lifecycle_action::CompleteLifecycleActionOutput;
use aws_sdk_autoscaling::operation::describe_scaling_activities::DescribeScalingActivitiesOutput;
use aws_sdk_autoscaling::operation::detach_instances::DetachInstancesOutput;
use aws_sdk_autoscaling::primitives::DateTime;
use aws_sdk_autoscaling::types::{Activity, ScalingActivityStatusCode};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};

use super::AwsCloud;
use warmpool_core::Config;
use warmpool_core::domain::UserState;
use warmpool_core::error::CloudError;
use warmpool_core::ports::{AutoScaling, Launch, LaunchKind, LifecycleResult, Notifier, QueuedMessage, WorkQueues};

mod cloudwatch;
mod ssm;

fn config() -> Config {
    Config::for_all(|k| {
        Some(
            match k {
                "POOL_ASG_NAME" => "pool",
                "POOL_LIFECYCLE_HOOK_NAME" => "hook",
                "LAUNCH_TEMPLATE_ID" => "lt-1",
                "POOL_SUBNETS" => "subnet-a",
                "USER_INIT_DOCUMENT" => "init",
                "POOL_PREP_DOCUMENT" => "prep",
                "READY_QUEUE_URL" => "https://sqs.us-east-1.amazonaws.com/1/ready",
                "SIGNUP_QUEUE_URL" => "https://sqs.us-east-1.amazonaws.com/1/signup.fifo",
                "SIGNUP_DLQ_URL" => "https://sqs.us-east-1.amazonaws.com/1/signup-dlq.fifo",
                "REDRIVE_QUEUE_URL" => "https://sqs.us-east-1.amazonaws.com/1/redrive",
                _ => return None,
            }
            .to_owned(),
        )
    })
    .expect("test configuration is valid")
}

fn query_error(code: &str, message: &str) -> String {
    format!(
        "<ErrorResponse xmlns=\"http://autoscaling.amazonaws.com/doc/2011-01-01/\"><Error><Type>Sender</Type>\
         <Code>{code}</Code><Message>{message}</Message></Error><RequestId>r-1</RequestId></ErrorResponse>"
    )
}

fn json_error(code: &str, message: &str) -> String {
    format!("{{\"__type\":\"{code}\",\"message\":\"{message}\"}}")
}

fn asg_cloud(rules: &[&Rule]) -> AwsCloud {
    AwsCloud::from_clients(
        mock_client!(aws_sdk_autoscaling, RuleMode::MatchAny, rules),
        mock_client!(aws_sdk_ec2, RuleMode::MatchAny, &[]),
        mock_client!(aws_sdk_ssm, RuleMode::MatchAny, &[]),
        mock_client!(aws_sdk_sqs, RuleMode::MatchAny, &[]),
        &config(),
    )
}

fn sqs_cloud(rules: &[&Rule]) -> AwsCloud {
    AwsCloud::from_clients(
        mock_client!(aws_sdk_autoscaling, RuleMode::MatchAny, &[]),
        mock_client!(aws_sdk_ec2, RuleMode::MatchAny, &[]),
        mock_client!(aws_sdk_ssm, RuleMode::MatchAny, &[]),
        mock_client!(aws_sdk_sqs, RuleMode::MatchAny, rules),
        &config(),
    )
}

fn ssm_cloud(rules: &[&Rule]) -> AwsCloud {
    AwsCloud::from_clients(
        mock_client!(aws_sdk_autoscaling, RuleMode::MatchAny, &[]),
        mock_client!(aws_sdk_ec2, RuleMode::MatchAny, &[]),
        mock_client!(aws_sdk_ssm, RuleMode::MatchAny, rules),
        mock_client!(aws_sdk_sqs, RuleMode::MatchAny, &[]),
        &config(),
    )
}

fn asg_error(status: u16, code: &str, message: &str) -> Rule {
    mock!(aws_sdk_autoscaling::Client::detach_instances)
        .sequence()
        .http_status(status, Some(query_error(code, message)))
        .repeatedly()
        .build()
}

#[tokio::test]
async fn detach_never_decrements_the_pool_and_maps_the_lost_race_errors() {
    let ok = mock!(aws_sdk_autoscaling::Client::detach_instances)
        .match_requests(|r| {
            r.should_decrement_desired_capacity() == Some(false)
                && r.auto_scaling_group_name() == Some("pool")
                && r.instance_ids() == ["i-1"]
        })
        .then_output(|| DetachInstancesOutput::builder().build());
    assert_eq!(asg_cloud(&[&ok]).detach_instance("pool", "i-1").await, Ok(()));
    assert_eq!(ok.num_calls(), 1);

    let lost = asg_error(400, "ValidationError", "The instance i-1 is not part of Auto Scaling group pool.");
    assert_eq!(
        asg_cloud(&[&lost]).detach_instance("pool", "i-1").await,
        Err(CloudError::NotInGroup { group: "pool".into(), instance_id: "i-1".into() })
    );
    let moving = asg_error(400, "ValidationError", "The instance i-1 is not in InService or Standby.");
    assert!(matches!(asg_cloud(&[&moving]).detach_instance("pool", "i-1").await, Err(CloudError::NotInService { .. })));
}

#[tokio::test]
async fn attach_above_max_size_and_of_a_foreign_instance_are_typed() {
    let full = mock!(aws_sdk_autoscaling::Client::attach_instances)
        .sequence()
        .http_status(
            400,
            Some(query_error(
                "ValidationError",
                "New SetDesiredCapacity value 2 is above max value 1 for the AutoScalingGroup.",
            )),
        )
        .repeatedly()
        .build();
    assert!(matches!(asg_cloud(&[&full]).attach_instance("u", "i-1").await, Err(CloudError::MaxSizeExceeded { .. })));
    let foreign = mock!(aws_sdk_autoscaling::Client::attach_instances)
        .sequence()
        .http_status(
            400,
            Some(query_error("ValidationError", "The instance i-1 is already part of Auto Scaling group other.")),
        )
        .repeatedly()
        .build();
    assert!(matches!(
        asg_cloud(&[&foreign]).attach_instance("u", "i-1").await,
        Err(CloudError::AlreadyInGroup { instance_id, .. }) if instance_id == "i-1"
    ));
}

#[tokio::test]
async fn create_twice_is_already_exists() {
    let exists = mock!(aws_sdk_autoscaling::Client::create_auto_scaling_group)
        .sequence()
        .http_status(400, Some(query_error("AlreadyExists", "AutoScalingGroup by this name already exists")))
        .repeatedly()
        .build();
    let spec = warmpool_core::ports::UserGroupSpec {
        name: "warmpool-user-u1".into(),
        launch_template: "lt-1".into(),
        subnets: vec!["subnet-a".into()],
        tags: vec![],
    };
    assert!(matches!(asg_cloud(&[&exists]).create_user_group(&spec).await, Err(CloudError::AlreadyExists { .. })));
}

#[tokio::test]
async fn complete_lifecycle_action_sends_the_result_and_maps_no_active_action() {
    let ok = mock!(aws_sdk_autoscaling::Client::complete_lifecycle_action)
        .match_requests(|r| {
            r.lifecycle_action_result() == Some("ABANDON")
                && r.instance_id() == Some("i-1")
                && r.lifecycle_hook_name() == Some("hook")
        })
        .then_output(|| CompleteLifecycleActionOutput::builder().build());
    let cloud = asg_cloud(&[&ok]);
    assert_eq!(cloud.complete_lifecycle_action("pool", "hook", "i-1", LifecycleResult::Abandon).await, Ok(()));
    assert_eq!(ok.num_calls(), 1);
    let gone = mock!(aws_sdk_autoscaling::Client::complete_lifecycle_action)
        .sequence()
        .http_status(400, Some(query_error("ValidationError", "No active Lifecycle Action found with instance ID i-1")))
        .repeatedly()
        .build();
    assert_eq!(
        asg_cloud(&[&gone]).complete_lifecycle_action("pool", "hook", "i-1", LifecycleResult::Continue).await,
        Err(CloudError::NoActiveLifecycleAction { instance_id: "i-1".into() })
    );
}

#[tokio::test]
async fn terminate_of_an_unknown_instance_is_not_found() {
    let unknown = mock!(aws_sdk_autoscaling::Client::terminate_instance_in_auto_scaling_group)
        .sequence()
        .http_status(
            400,
            Some(query_error(
                "ValidationError",
                "Instance Id not found - No managed instance found for instance ID: i-1",
            )),
        )
        .repeatedly()
        .build();
    assert!(matches!(asg_cloud(&[&unknown]).terminate_instance("i-1", true).await, Err(CloudError::NotFound { .. })));
}

#[tokio::test]
async fn throttling_is_retryable_after_the_sdk_gives_up() {
    let throttled = mock!(aws_sdk_autoscaling::Client::describe_auto_scaling_groups)
        .sequence()
        .http_status(400, Some(query_error("Throttling", "Rate exceeded")))
        .repeatedly()
        .build();
    let err = asg_cloud(&[&throttled]).describe_group("pool").await.unwrap_err();
    assert!(matches!(err, CloudError::Throttled { .. }) && err.is_retryable(), "{err:?}");
}

#[tokio::test]
async fn ready_messages_go_to_the_ready_queue() {
    let sent = mock!(aws_sdk_sqs::Client::send_message)
        .match_requests(|r| {
            r.queue_url() == Some("https://sqs.us-east-1.amazonaws.com/1/ready")
                && r.message_body() == Some("{}")
                && r.message_group_id() == Some("u-1")
                && r.message_deduplication_id() == Some("u-1-c-1")
        })
        .then_output(|| aws_sdk_sqs::operation::send_message::SendMessageOutput::builder().message_id("m").build());
    let cloud = sqs_cloud(&[&sent]);
    assert_eq!(cloud.send_ready("https://sqs.us-east-1.amazonaws.com/1/ready", "u-1", "u-1-c-1", "{}").await, Ok(()));
    assert_eq!(sent.num_calls(), 1);
}

#[tokio::test]
async fn recent_launches_keeps_launch_activities_with_their_times() {
    let activity = |description: &str, start_s: i64, end_s: Option<i64>, status: ScalingActivityStatusCode| {
        Activity::builder()
            .activity_id(format!("a-{start_s}"))
            .auto_scaling_group_name("pool")
            .cause("At 2026-01-01T00:00:00Z an instance was started in response to a difference between desired and actual capacity.")
            .description(description)
            .start_time(DateTime::from_secs(start_s))
            .set_end_time(end_s.map(DateTime::from_secs))
            .status_code(status)
            .build()
    };
    let rule = mock!(aws_sdk_autoscaling::Client::describe_scaling_activities)
        .match_requests(|r| r.auto_scaling_group_name() == Some("pool") && r.max_records() == Some(100))
        .then_output(move || {
            DescribeScalingActivitiesOutput::builder()
                .activities(activity(
                    "Launching a new EC2 instance: i-0000000000000000b",
                    2_000,
                    None,
                    ScalingActivityStatusCode::MidLifecycleAction,
                ))
                .activities(activity(
                    "Detaching EC2 instance: i-0000000000000000c",
                    1_900,
                    Some(1_901),
                    ScalingActivityStatusCode::Successful,
                ))
                .activities(activity(
                    "Launching a new EC2 instance: i-0000000000000000a",
                    1_000,
                    Some(1_600),
                    ScalingActivityStatusCode::Successful,
                ))
                .activities(activity(
                    "Launching a new EC2 instance.  Status Reason: insufficient capacity",
                    900,
                    Some(905),
                    ScalingActivityStatusCode::Failed,
                ))
                .activities(activity(
                    "Launching a new EC2 instance from warm pool: i-0000000000000000d",
                    800,
                    Some(890),
                    ScalingActivityStatusCode::Successful,
                ))
                .activities(activity(
                    "Launching a new EC2 instance into warm pool: i-0000000000000000e",
                    100,
                    Some(700),
                    ScalingActivityStatusCode::Successful,
                ))
                .build()
        });
    let cloud = asg_cloud(&[&rule]);
    let launches = cloud.recent_launches("pool").await.expect("activities parse");
    assert_eq!(
        launches,
        vec![
            Launch { kind: LaunchKind::New, started_ms: 2_000_000, ended_ms: None, succeeded: false },
            Launch { kind: LaunchKind::New, started_ms: 1_000_000, ended_ms: Some(1_600_000), succeeded: true },
            Launch { kind: LaunchKind::New, started_ms: 900_000, ended_ms: Some(905_000), succeeded: false },
            Launch { kind: LaunchKind::FromWarmPool, started_ms: 800_000, ended_ms: Some(890_000), succeeded: true },
            Launch { kind: LaunchKind::IntoWarmPool, started_ms: 100_000, ended_ms: Some(700_000), succeeded: true },
        ]
    );
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn recent_launches_maps_a_missing_group() {
    let rule = mock!(aws_sdk_autoscaling::Client::describe_scaling_activities)
        .sequence()
        .http_status(400, Some(query_error("ValidationError", "AutoScalingGroup name not found - pool")))
        .repeatedly()
        .build();
    let err = asg_cloud(&[&rule]).recent_launches("pool").await.expect_err("a missing group is an error");
    assert!(matches!(err, CloudError::NotFound { .. }), "{err:?}");
}

fn ec2_cloud(rules: &[&Rule]) -> AwsCloud {
    AwsCloud::from_clients(
        mock_client!(aws_sdk_autoscaling, RuleMode::MatchAny, &[]),
        mock_client!(aws_sdk_ec2, RuleMode::Sequential, rules),
        mock_client!(aws_sdk_ssm, RuleMode::MatchAny, &[]),
        mock_client!(aws_sdk_sqs, RuleMode::MatchAny, &[]),
        &config(),
    )
}

fn ec2_instance(id: &str, group: Option<&str>) -> aws_sdk_ec2::types::Instance {
    use aws_sdk_ec2::types::{Instance, Tag};
    let mut i = Instance::builder()
        .instance_id(id)
        .launch_time(DateTime::from_secs(1_767_225_600))
        .tags(Tag::builder().key("aws:ec2launchtemplate:id").value("lt-1").build());
    if let Some(g) = group {
        i = i.tags(Tag::builder().key("aws:autoscaling:groupName").value(g).build());
    }
    i.build()
}

#[tokio::test]
async fn outside_instances_are_found_by_launch_template_tag_on_every_page_and_members_are_left_out() {
    use aws_sdk_ec2::operation::describe_instances::DescribeInstancesOutput;
    use aws_sdk_ec2::types::Reservation;
    use warmpool_core::ports::{Instances, OutsideInstance};
    let filtered = |r: &aws_sdk_ec2::operation::describe_instances::DescribeInstancesInput| {
        let f = r.filters();
        f.iter().any(|f| f.name() == Some("tag:aws:ec2launchtemplate:id") && f.values() == ["lt-1"])
            && f.iter().any(|f| f.name() == Some("instance-state-name") && f.values() == ["pending", "running"])
    };
    let first = mock!(aws_sdk_ec2::Client::describe_instances)
        .match_requests(move |r| filtered(r) && r.next_token().is_none())
        .then_output(|| {
            DescribeInstancesOutput::builder()
                .reservations(
                    Reservation::builder()
                        .instances(ec2_instance("i-member", Some("wp-pool")))
                        .instances(ec2_instance("i-orphan", None))
                        .build(),
                )
                .next_token("page-2")
                .build()
        });
    let second = mock!(aws_sdk_ec2::Client::describe_instances)
        .match_requests(move |r| filtered(r) && r.next_token() == Some("page-2"))
        .then_output(|| {
            DescribeInstancesOutput::builder()
                .reservations(Reservation::builder().instances(ec2_instance("i-second", None)).build())
                .build()
        });
    let cloud = ec2_cloud(&[&first, &second]);
    let found = cloud.instances_outside_groups("lt-1").await.expect("listed");
    let launched_ms = 1_767_225_600_000;
    assert_eq!(
        found,
        vec![
            OutsideInstance { instance_id: "i-orphan".into(), launched_ms },
            OutsideInstance { instance_id: "i-second".into(), launched_ms },
        ]
    );
    assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
}

#[tokio::test]
async fn terminating_an_instance_already_gone_is_not_found() {
    use aws_sdk_ec2::operation::terminate_instances::TerminateInstancesOutput;
    use warmpool_core::ports::Instances;
    let ok = mock!(aws_sdk_ec2::Client::terminate_instances)
        .match_requests(|r| r.instance_ids() == ["i-1"])
        .then_output(|| TerminateInstancesOutput::builder().build());
    assert_eq!(ec2_cloud(&[&ok]).terminate_outside("i-1").await, Ok(()));
    assert_eq!(ok.num_calls(), 1);
    let gone = mock!(aws_sdk_ec2::Client::terminate_instances)
        .sequence()
        .http_status(
            400,
            Some(
                "<Response><Errors><Error><Code>InvalidInstanceID.NotFound</Code><Message>The instance ID 'i-1' \
                 does not exist</Message></Error></Errors><RequestID>r-1</RequestID></Response>"
                    .to_owned(),
            ),
        )
        .build();
    assert_eq!(
        ec2_cloud(&[&gone]).terminate_outside("i-1").await,
        Err(CloudError::NotFound { resource: "i-1".into() })
    );
}

#[tokio::test]
async fn unfinished_users_are_listed_by_state_tag_a_hundred_a_page_and_all_users_without_it() {
    use aws_sdk_autoscaling::operation::describe_auto_scaling_groups::DescribeAutoScalingGroupsOutput;
    let names = |r: &aws_sdk_autoscaling::operation::describe_auto_scaling_groups::DescribeAutoScalingGroupsInput| {
        r.filters().iter().map(|f| (f.name().unwrap_or_default().to_owned(), f.values().to_vec())).collect::<Vec<_>>()
    };
    let unfinished = mock!(aws_sdk_autoscaling::Client::describe_auto_scaling_groups)
        .match_requests(move |r| {
            r.max_records() == Some(100)
                && names(r)
                    == [
                        ("tag-key".to_owned(), vec!["warmpool:user-id".to_owned()]),
                        ("tag:warmpool:state".to_owned(), vec!["claiming".to_owned(), "initializing".to_owned()]),
                    ]
        })
        .then_output(|| DescribeAutoScalingGroupsOutput::builder().build());
    let all = mock!(aws_sdk_autoscaling::Client::describe_auto_scaling_groups)
        .match_requests(move |r| names(r) == [("tag-key".to_owned(), vec!["warmpool:user-id".to_owned()])])
        .then_output(|| DescribeAutoScalingGroupsOutput::builder().build());
    let cloud = asg_cloud(&[&unfinished, &all]);
    assert_eq!(cloud.list_user_groups("warmpool-user-", UserState::IN_FLIGHT).await, Ok(Vec::new()));
    assert_eq!(cloud.list_user_groups("warmpool-user-", &[]).await, Ok(Vec::new()));
    assert_eq!((unfinished.num_calls(), all.num_calls()), (1, 1));
}

/// `DescribeAccountLimits` gives the Region's group count (moto does not implement it:
/// this mocked answer is the adapter's only proof); an answer without it is an error.
#[tokio::test]
async fn the_regions_group_count_comes_from_the_account_limits() {
    use aws_sdk_autoscaling::operation::describe_account_limits::DescribeAccountLimitsOutput;
    let limits = mock!(aws_sdk_autoscaling::Client::describe_account_limits).then_output(|| {
        DescribeAccountLimitsOutput::builder()
            .max_number_of_auto_scaling_groups(500)
            .number_of_auto_scaling_groups(437)
            .build()
    });
    assert_eq!(asg_cloud(&[&limits]).groups_in_region().await, Ok(437));
    let empty = mock!(aws_sdk_autoscaling::Client::describe_account_limits)
        .then_output(|| DescribeAccountLimitsOutput::builder().build());
    assert!(matches!(asg_cloud(&[&empty]).groups_in_region().await, Err(CloudError::Transient { .. })));
}

#[tokio::test]
async fn redrives_go_to_a_standard_queue_without_group_or_deduplication_ids() {
    use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchOutput;
    let sent = mock!(aws_sdk_sqs::Client::send_message_batch)
        .match_requests(|r| {
            r.queue_url() == Some("https://sqs.us-east-1.amazonaws.com/1/redrive")
                && r.entries().len() == 2
                && r.entries().iter().all(|e| e.message_group_id().is_none() && e.message_deduplication_id().is_none())
                && r.entries()
                    .iter()
                    .map(aws_sdk_sqs::types::SendMessageBatchRequestEntry::delay_seconds)
                    .collect::<Vec<_>>()
                    == [None, Some(15)]
        })
        .then_output(|| {
            SendMessageBatchOutput::builder()
                .set_successful(Some(Vec::new()))
                .set_failed(Some(Vec::new()))
                .build()
                .unwrap()
        });
    let cloud = sqs_cloud(&[&sent]);
    let message = |user: &str, delay_s| QueuedMessage {
        group_id: None,
        dedup_id: None,
        body: format!("{{\"kind\":\"redrive\",\"user_id\":\"{user}\"}}"),
        delay_s,
    };
    let url = config().redrive_queue_url;
    // A delayed one (a user waiting for the pool looks again) carries DelaySeconds.
    assert_eq!(cloud.send_batch(&url, &[message("u-1", 0), message("u-2", 15)]).await, Ok(()));
    assert_eq!(sent.num_calls(), 1);
}

/// `DescribeWarmPool` follows `NextToken` (50 instances a page) and keeps each
/// instance's `Warmed:*` state; a group without a warm pool answers no configuration.
#[tokio::test]
async fn describe_warm_pool_pages_through_its_instances() {
    use aws_sdk_autoscaling::operation::describe_warm_pool::DescribeWarmPoolOutput;
    use aws_sdk_autoscaling::types::{Instance, LifecycleState, WarmPoolConfiguration, WarmPoolState};
    let instance = |id: &str, state: LifecycleState| {
        Instance::builder()
            .instance_id(id)
            .lifecycle_state(state)
            .availability_zone("us-east-1a")
            .health_status("Healthy")
            .protected_from_scale_in(false)
            .build()
    };
    let config = || {
        WarmPoolConfiguration::builder()
            .min_size(3)
            .max_group_prepared_capacity(3)
            .pool_state(WarmPoolState::Stopped)
            .build()
    };
    let first = mock!(aws_sdk_autoscaling::Client::describe_warm_pool)
        .match_requests(|r| r.auto_scaling_group_name() == Some("pool") && r.next_token().is_none())
        .then_output(move || {
            DescribeWarmPoolOutput::builder()
                .warm_pool_configuration(config())
                .instances(instance("i-1", LifecycleState::WarmedStopped))
                .instances(instance("i-2", LifecycleState::WarmedPendingWait))
                .next_token("t")
                .build()
        });
    let second = mock!(aws_sdk_autoscaling::Client::describe_warm_pool)
        .match_requests(|r| r.next_token() == Some("t"))
        .then_output(move || {
            DescribeWarmPoolOutput::builder()
                .warm_pool_configuration(config())
                .instances(instance("i-3", LifecycleState::WarmedStopped))
                .build()
        });
    let pool = asg_cloud(&[&first, &second]).describe_warm_pool("pool").await.unwrap().unwrap();
    assert_eq!((pool.min_size, pool.max_group_prepared_capacity), (3, Some(3)));
    let states: Vec<(&str, &str, bool)> =
        pool.instances.iter().map(|i| (i.instance_id.as_str(), i.state.as_str(), i.ready())).collect();
    assert_eq!(
        states,
        [("i-1", "Warmed:Stopped", true), ("i-2", "Warmed:Pending:Wait", false), ("i-3", "Warmed:Stopped", true)]
    );
    assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
    let none = mock!(aws_sdk_autoscaling::Client::describe_warm_pool)
        .then_output(|| DescribeWarmPoolOutput::builder().build());
    assert_eq!(asg_cloud(&[&none]).describe_warm_pool("pool").await, Ok(None));
}

/// `PutWarmPool` sends both sizes and keeps the pool state it is given (the call resets
/// what it is not given); a refusal maps like any other Auto Scaling call's.
#[tokio::test]
async fn put_warm_pool_sends_both_sizes_and_the_state() {
    use aws_sdk_autoscaling::operation::put_warm_pool::PutWarmPoolOutput;
    use aws_sdk_autoscaling::types::WarmPoolState;
    use warmpool_core::ports::WarmPoolSize;
    let put = mock!(aws_sdk_autoscaling::Client::put_warm_pool)
        .match_requests(|r| {
            r.auto_scaling_group_name() == Some("pool")
                && r.min_size() == Some(7)
                && r.max_group_prepared_capacity() == Some(7)
                && r.pool_state() == Some(&WarmPoolState::Hibernated)
        })
        .then_output(|| PutWarmPoolOutput::builder().build());
    let size = WarmPoolSize { min_size: 7, max_group_prepared_capacity: 7 };
    assert_eq!(asg_cloud(&[&put]).put_warm_pool("pool", "Hibernated", size).await, Ok(()));
    assert_eq!(put.num_calls(), 1);
    let throttled = mock!(aws_sdk_autoscaling::Client::put_warm_pool)
        .sequence()
        .http_status(400, Some(query_error("Throttling", "Rate exceeded")))
        .repeatedly()
        .build();
    let err = asg_cloud(&[&throttled]).put_warm_pool("pool", "Stopped", size).await.unwrap_err();
    assert!(matches!(err, CloudError::Throttled { .. }), "{err:?}");
}
