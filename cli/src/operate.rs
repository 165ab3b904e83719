//! The commands against a deployed stack (`warmpool status`, `signup`, `delete`): the
//! stack's names from its CloudFormation outputs, the calls through the functions' own
//! SDK adapters, with the operator's credentials and Region from the usual AWS
//! environment and profile (`AWS_PROFILE`, `AWS_REGION`, `AWS_ENDPOINT_URL`, ...).

use std::collections::BTreeMap;
use std::process::ExitCode;

use warmpool_aws::{AwsCloud, sdk_config};
use warmpool_core::domain::UserRecord;
use warmpool_core::operator::{self, Deployment, MessageKind, OperatorError};
use warmpool_core::ports::Cloud;

/// Why a command against a stack could not run.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("cannot describe stack {stack}: {message} (check the name, the Region and your credentials)")]
    Stack { stack: String, message: String },
    #[error(transparent)]
    Operator(#[from] OperatorError),
    #[error("user {user_id} has no group in stack {stack}: nothing to delete")]
    NoSuchUser { stack: String, user_id: String },
    #[error("cannot encode the report: {0}")]
    Json(#[from] serde_json::Error),
}

/// The deployment `stack` is: its outputs and parameters (`DescribeStacks`).
pub async fn deployment(sdk: &aws_config::SdkConfig, stack: &str) -> Result<Deployment, CommandError> {
    let client = aws_sdk_cloudformation::Client::new(sdk);
    let described = client.describe_stacks().stack_name(stack).send().await.map_err(|e| CommandError::Stack {
        stack: stack.to_owned(),
        message: aws_sdk_cloudformation::error::DisplayErrorContext(&e).to_string(),
    })?;
    let Some(found) = described.stacks().first() else {
        return Err(CommandError::Stack { stack: stack.to_owned(), message: "no such stack".into() });
    };
    let outputs: BTreeMap<String, String> = found
        .outputs()
        .iter()
        .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
        .collect();
    let parameters: BTreeMap<String, String> = found
        .parameters()
        .iter()
        .filter_map(|p| Some((p.parameter_key()?.to_owned(), p.parameter_value()?.to_owned())))
        .collect();
    Ok(Deployment::from_stack(stack, &outputs, &parameters)?)
}

/// `warmpool status`: the table, or `--json`; exit status 2 when something needs a look.
pub async fn status<C: Cloud + warmpool_core::ports::QueueDepths>(
    cloud: &C,
    dep: &Deployment,
    json: bool,
) -> Result<ExitCode, CommandError> {
    let status = operator::status(cloud, dep).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", status.render());
    }
    Ok(if status.needs_attention() { ExitCode::from(2) } else { ExitCode::SUCCESS })
}

/// `warmpool signup` and `warmpool delete`: one message on the signup queue, then with
/// `wait` the user followed to ready or failed (a delete: until the group is gone).
pub async fn send<C: Cloud>(
    cloud: &C,
    dep: &Deployment,
    kind: MessageKind,
    user_id: &str,
    signup_id: Option<&str>,
    wait: Option<u64>,
) -> Result<ExitCode, CommandError> {
    let signup_id = match (kind, signup_id) {
        (_, Some(id)) => id.to_owned(),
        // A signup names itself after the user unless told otherwise: the same command
        // twice is the same signup (SQS drops the repeat within five minutes, the
        // signup function resumes an existing user after that).
        (MessageKind::Signup, None) => user_id.to_owned(),
        // A delete must name the user's own signup: read it from the user's record.
        (MessageKind::Delete, None) => {
            let group = cloud.describe_group(&dep.user_group(user_id)).await.map_err(OperatorError::from)?;
            match group.as_ref().and_then(|g| UserRecord::from_tags(&g.tags)) {
                Some(record) => record.signup_id,
                None => return Err(CommandError::NoSuchUser { stack: dep.stack.clone(), user_id: user_id.to_owned() }),
            }
        }
    };
    let message = operator::send(cloud, dep, kind, user_id, &signup_id).await?;
    println!(
        "sent {} for user {user_id} (signup {signup_id}; message group {}, deduplication id {})",
        kind.as_str(),
        message.group_id.as_deref().unwrap_or_default(),
        message.dedup_id.as_deref().unwrap_or_default()
    );
    let Some(deadline_s) = wait else { return Ok(ExitCode::SUCCESS) };
    match operator::follow(cloud, dep, kind, user_id, 2, deadline_s).await? {
        None => {
            println!("user {user_id} deleted: its group is gone");
            Ok(ExitCode::SUCCESS)
        }
        Some(t) => {
            for (at_s, state) in &t.seen {
                println!("  {at_s:>8.1} s  {state}");
            }
            match t.time_to_ready_s {
                Some(s) => println!(
                    "user {user_id} ready in {s:.1} s ({}, {} attempt(s), host {})",
                    t.path,
                    t.attempts,
                    t.instance_id.as_deref().unwrap_or("-")
                ),
                None => println!("user {user_id} {}: {}", t.state, t.reason.as_deref().unwrap_or("-")),
            }
            Ok(if t.state == "ready" { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}

/// `warmpool drain`: mark, wait for the moves in flight (at most `wait_s`), both tiers to
/// zero.
pub async fn drain<C: Cloud>(cloud: &C, dep: &Deployment, wait_s: u64) -> Result<ExitCode, CommandError> {
    let report = operator::drain(cloud, dep, wait_s, 5).await?;
    let how = if report.marked_now { "marked draining now" } else { "already marked draining" };
    println!(
        "pool {} {how}; waited for {} move(s) in flight; both tiers set to zero. `warmpool resume` restores {}",
        dep.pool_group,
        report.moves_waited_for,
        report.saved.encode()
    );
    Ok(ExitCode::SUCCESS)
}

/// `warmpool resume`: the saved sizes back, the mark removed.
pub async fn resume<C: Cloud>(cloud: &C, dep: &Deployment) -> Result<ExitCode, CommandError> {
    match operator::resume(cloud, dep).await? {
        Some(saved) => {
            println!("pool {} resumed at {} (min,max,desired[;warm=min,max])", dep.pool_group, saved.encode());
        }
        None => println!("pool {} is not drained: nothing to resume", dep.pool_group),
    }
    Ok(ExitCode::SUCCESS)
}

/// `warmpool replay-dlq`: the dead letters, and with `redrive` each sent back.
pub async fn replay_dlq<C: Cloud + warmpool_core::ports::QueueMessages>(
    cloud: &C,
    dep: &Deployment,
    only: Option<&str>,
    redrive: bool,
    max: usize,
    json: bool,
) -> Result<ExitCode, CommandError> {
    let letters = operator::look(cloud, dep, only).await?;
    if json && !redrive {
        println!("{}", serde_json::to_string_pretty(&letters)?);
    } else {
        for l in &letters {
            println!("{} dead-letter queue: {} message(s) shown (at most 10)", l.queue.name, l.messages.len());
            for m in &l.messages {
                let body: String = m.body.chars().take(200).collect();
                println!(
                    "  {} group {} received {} time(s): {body}",
                    m.message_id,
                    m.group_id.as_deref().unwrap_or("-"),
                    m.receive_count
                );
            }
        }
    }
    if redrive {
        for (queue, moved) in operator::redrive(cloud, dep, only, max).await? {
            println!("{queue}: {moved} message(s) sent back");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs a command against `stack`: the SDK configuration, the deployment, the adapter.
pub fn run<F>(stack: &str, command: F) -> ExitCode
where
    F: AsyncFnOnce(&AwsCloud, &Deployment) -> Result<ExitCode, CommandError>,
{
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let sdk = sdk_config().await;
        let result = match deployment(&sdk, stack).await {
            Ok(dep) => {
                let cloud = AwsCloud::for_operator(&sdk, &dep.claim_prefix);
                command(&cloud, &dep).await
            }
            Err(e) => Err(e),
        };
        result.unwrap_or_else(|e| {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        })
    })
}
