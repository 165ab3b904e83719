//! The SSM adapter (Run Command and the Parameter Store claims) on mocked responses.

use aws_sdk_autoscaling::primitives::DateTime;
use aws_sdk_ssm::operation::get_command_invocation::GetCommandInvocationOutput;
use aws_sdk_ssm::operation::get_parameter::GetParameterOutput;
use aws_sdk_ssm::operation::put_parameter::PutParameterOutput;
use aws_sdk_ssm::operation::send_command::SendCommandOutput;
use aws_sdk_ssm::types::{CommandInvocationStatus, InstanceInformation, Parameter, PingStatus};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use warmpool_core::error::CloudError;
use warmpool_core::ports::{Claim, ClaimOutcome, Claims, CommandRequest, InvocationQuery, RunCommand};

use super::{AwsCloud, config, json_error, ssm_cloud};

#[tokio::test]
async fn agent_gate_reads_ping_status() {
    let online = mock!(aws_sdk_ssm::Client::describe_instance_information).then_output(|| {
        aws_sdk_ssm::operation::describe_instance_information::DescribeInstanceInformationOutput::builder()
            .instance_information_list(
                InstanceInformation::builder().instance_id("i-1").ping_status(PingStatus::Online).build(),
            )
            .instance_information_list(
                InstanceInformation::builder().instance_id("i-2").ping_status(PingStatus::ConnectionLost).build(),
            )
            .build()
    });
    let cloud = ssm_cloud(&[&online]);
    assert_eq!(cloud.agent_online("i-1").await, Ok(true));
    assert_eq!(cloud.agent_online("i-2").await, Ok(false));
    assert_eq!(cloud.agent_online("i-3").await, Ok(false));
}

#[tokio::test]
async fn send_command_passes_typed_parameters_and_maps_invalid_instance_id() {
    let ok = mock!(aws_sdk_ssm::Client::send_command)
        .match_requests(|r| {
            let p = r.parameters().expect("parameters are sent");
            r.document_name() == Some("init")
                && r.instance_ids() == ["i-1"]
                && r.timeout_seconds() == Some(30)
                && p.get("UserId") == Some(&vec!["u-1; rm -rf /".to_owned()])
        })
        .then_output(|| {
            SendCommandOutput::builder()
                .command(aws_sdk_ssm::types::Command::builder().command_id("c-1").build())
                .build()
        });
    let request = CommandRequest {
        document: "init".into(),
        instance_id: "i-1".into(),
        parameters: [("UserId".to_owned(), vec!["u-1; rm -rf /".to_owned()])].into_iter().collect(),
        delivery_timeout_s: 30,
        comment: "c".into(),
    };
    assert_eq!(ssm_cloud(&[&ok]).send_command(&request).await, Ok("c-1".into()));
    let not_ready = mock!(aws_sdk_ssm::Client::send_command)
        .sequence()
        .http_status(400, Some(json_error("InvalidInstanceId", "Instances [[i-1]] not in a valid state")))
        .repeatedly()
        .build();
    assert_eq!(
        ssm_cloud(&[&not_ready]).send_command(&request).await,
        Err(CloudError::AgentNotReady { instance_id: "i-1".into() })
    );
}

#[tokio::test]
async fn get_command_invocation_status_and_eventual_consistency() {
    let rule = mock!(aws_sdk_ssm::Client::get_command_invocation)
        .sequence()
        .http_status(400, Some(json_error("InvocationDoesNotExist", "")))
        .output(|| GetCommandInvocationOutput::builder().status(CommandInvocationStatus::Success).build())
        .build();
    let cloud = AwsCloud::from_clients(
        mock_client!(aws_sdk_autoscaling, RuleMode::MatchAny, &[]),
        mock_client!(aws_sdk_ec2, RuleMode::MatchAny, &[]),
        mock_client!(aws_sdk_ssm, RuleMode::Sequential, &[&rule]),
        mock_client!(aws_sdk_sqs, RuleMode::MatchAny, &[]),
        &config(),
    );
    assert_eq!(
        cloud.invocation_status("c-1", "i-1").await,
        Err(CloudError::InvocationDoesNotExist { command_id: "c-1".into(), instance_id: "i-1".into() })
    );
    assert_eq!(cloud.invocation_status("c-1", "i-1").await, Ok("Success".into()));
}

#[tokio::test]
async fn claims_are_atomic_creates_and_report_the_holder() {
    let created = mock!(aws_sdk_ssm::Client::put_parameter)
        .match_requests(|r| {
            r.overwrite() == Some(false) && r.name() == Some("/warmpool/claims/i-1") && r.value() == Some("u-1")
        })
        .then_output(|| PutParameterOutput::builder().version(1).build());
    assert_eq!(ssm_cloud(&[&created]).claim("i-1", "u-1").await, Ok(ClaimOutcome::Created));

    let taken = mock!(aws_sdk_ssm::Client::put_parameter)
        .sequence()
        .http_status(400, Some(json_error("ParameterAlreadyExists", "The parameter already exists.")))
        .repeatedly()
        .build();
    let holder = mock!(aws_sdk_ssm::Client::get_parameter).then_output(|| {
        GetParameterOutput::builder()
            .parameter(
                Parameter::builder()
                    .value("u-2")
                    .version(3)
                    .last_modified_date(DateTime::from_millis(1_700_000_000_000))
                    .build(),
            )
            .build()
    });
    let held = ssm_cloud(&[&taken, &holder]).claim("i-1", "u-1").await.unwrap();
    assert_eq!(
        held,
        ClaimOutcome::HeldBy(Claim {
            instance_id: "i-1".into(),
            owner: "u-2".into(),
            created_ms: 1_700_000_000_000,
            version: 3
        })
    );
    assert_eq!(held.holder(), Some("u-2"));

    // The claim and the instance's init lock go in one call; names that do not exist come
    // back as `InvalidParameters`, not as an error.
    let missing = mock!(aws_sdk_ssm::Client::delete_parameters)
        .match_requests(|r| r.names() == ["/warmpool/claims/i-1", "/warmpool/claims/i-1/init"])
        .then_output(|| {
            aws_sdk_ssm::operation::delete_parameters::DeleteParametersOutput::builder()
                .invalid_parameters("/warmpool/claims/i-1/init")
                .build()
        });
    assert_eq!(ssm_cloud(&[&missing]).release("i-1").await, Ok(()), "releasing a missing lock is fine");
}

#[tokio::test]
async fn a_takeover_wins_only_with_the_version_right_after_the_stale_one() {
    let stale = Claim { instance_id: "i-1".into(), owner: "u-1".into(), created_ms: 0, version: 4 };
    let overwrite = |version: i64| {
        mock!(aws_sdk_ssm::Client::put_parameter)
            .match_requests(|r| {
                r.overwrite() == Some(true) && r.name() == Some("/warmpool/claims/i-1") && r.value() == Some("u-1")
            })
            .then_output(move || PutParameterOutput::builder().version(version).build())
    };
    let first = overwrite(5);
    assert_eq!(ssm_cloud(&[&first]).take_over(&stale, "u-1").await, Ok(true));
    // Another invocation overwrote it first: this write is version 6.
    let second = overwrite(6);
    assert_eq!(ssm_cloud(&[&second]).take_over(&stale, "u-1").await, Ok(false));
}

#[tokio::test]
async fn user_init_statuses_are_listed_by_document_and_time_window_on_every_page() {
    use aws_sdk_ssm::operation::list_command_invocations::ListCommandInvocationsOutput;
    use aws_sdk_ssm::types::{CommandFilterKey, CommandInvocation};
    use warmpool_core::ports::InvocationSummary;
    let filtered = |r: &aws_sdk_ssm::operation::list_command_invocations::ListCommandInvocationsInput| {
        let f = r.filters();
        f.iter().any(|f| f.key() == &CommandFilterKey::DocumentName && f.value() == "init")
            && f.iter().any(|f| f.key() == &CommandFilterKey::InvokedAfter && f.value() == "2026-01-01T00:00:00Z")
            && f.iter().any(|f| f.key() == &CommandFilterKey::InvokedBefore && f.value() == "2026-01-01T00:01:00Z")
            && r.max_results() == Some(50)
    };
    let invocation = |c: &str, status: CommandInvocationStatus| {
        CommandInvocation::builder().command_id(c).instance_id("i-1").status(status).build()
    };
    let first = mock!(aws_sdk_ssm::Client::list_command_invocations)
        .match_requests(move |r| filtered(r) && r.next_token().is_none())
        .then_output(move || {
            ListCommandInvocationsOutput::builder()
                .command_invocations(invocation("c-1", CommandInvocationStatus::Success))
                .next_token("t")
                .build()
        });
    let second = mock!(aws_sdk_ssm::Client::list_command_invocations)
        .match_requests(move |r| filtered(r) && r.next_token() == Some("t"))
        .then_output(move || {
            ListCommandInvocationsOutput::builder()
                .command_invocations(invocation("c-2", CommandInvocationStatus::InProgress))
                .build()
        });
    let cloud = AwsCloud::from_clients(
        mock_client!(aws_sdk_autoscaling, RuleMode::MatchAny, &[]),
        mock_client!(aws_sdk_ec2, RuleMode::MatchAny, &[]),
        mock_client!(aws_sdk_ssm, RuleMode::Sequential, &[&first, &second]),
        mock_client!(aws_sdk_sqs, RuleMode::MatchAny, &[]),
        &config(),
    );
    let listed = cloud
        .list_invocations(InvocationQuery::since("init", 1_767_225_600_000).before(1_767_225_660_000))
        .await
        .expect("listed");
    let summary =
        |c: &str, s: &str| InvocationSummary { command_id: c.into(), instance_id: "i-1".into(), status: s.into() };
    assert_eq!(listed, vec![summary("c-1", "Success"), summary("c-2", "InProgress")]);
    assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
}

/// An instance's whole history: the instance id given, no time filter (SSM keeps 30 days).
#[tokio::test]
async fn an_instances_whole_init_history_is_listed_without_a_time_filter() {
    use aws_sdk_ssm::operation::list_command_invocations::ListCommandInvocationsOutput;
    use aws_sdk_ssm::types::{CommandFilterKey, CommandInvocation};
    let rule = mock!(aws_sdk_ssm::Client::list_command_invocations)
        .match_requests(|r| {
            let keys: Vec<&CommandFilterKey> = r.filters().iter().map(aws_sdk_ssm::types::CommandFilter::key).collect();
            keys == [&CommandFilterKey::DocumentName] && r.instance_id() == Some("i-1")
        })
        .then_output(|| {
            ListCommandInvocationsOutput::builder()
                .command_invocations(
                    CommandInvocation::builder()
                        .command_id("c-1")
                        .instance_id("i-1")
                        .status(CommandInvocationStatus::Failed)
                        .build(),
                )
                .build()
        });
    let listed = ssm_cloud(&[&rule]).list_invocations(InvocationQuery::all("init").on("i-1")).await.expect("listed");
    assert_eq!(listed.iter().map(|i| i.command_id.as_str()).collect::<Vec<_>>(), ["c-1"]);
    assert_eq!(rule.num_calls(), 1);
}
