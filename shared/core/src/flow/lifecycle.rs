//! Lifecycle: Auto Scaling events become SSM Run Commands.
//!
//! - `EC2 Instance Launch Successful` for a user group (an attach, or a cold launch):
//!   wait for the agent, send user-init with the user's values as typed parameters.
//! - `EC2 Instance-launch Lifecycle Action` for the pool: wait for the agent, send
//!   pool-prep; command-status completes the hook.

use std::collections::BTreeMap;

use serde::Serialize;
use tracing::{Instrument, info, info_span, warn};

use super::{load_user, wait_for_agent, write_tags};
use crate::domain::{Id, Path, UserState, tag};
use crate::error::{CloudError, FlowError};
use crate::events::{AsgEvent, CommandOutcome, LAUNCHING_TRANSITION, LaunchSuccessful, LifecycleAction};
use crate::ports::{Cloud, CommandRequest};
use crate::{Config, retry};

/// What the lifecycle function did with an event (the function's response).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum LifecycleOutcome {
    InitSent {
        command_id: String,
    },
    PrepSent {
        command_id: String,
    },
    /// Not for us, stale, or a duplicate; the reason is logged.
    Ignored {
        reason: &'static str,
    },
}

/// Handles one Auto Scaling event.
pub async fn handle_event<C: Cloud>(cloud: &C, cfg: &Config, event: &AsgEvent) -> Result<LifecycleOutcome, FlowError> {
    let outcome = match event {
        AsgEvent::LaunchSuccessful(e) => {
            let span =
                info_span!("launch_successful", group = %e.auto_scaling_group_name, instance_id = %e.ec2_instance_id);
            user_launch(cloud, cfg, e).instrument(span).await
        }
        AsgEvent::LaunchLifecycleAction(e) => {
            let span = info_span!("pool_lifecycle_action", group = %e.auto_scaling_group_name, instance_id = %e.ec2_instance_id);
            pool_launch(cloud, cfg, e).instrument(span).await
        }
        AsgEvent::Other(detail_type) => {
            info!(detail_type, "ignoring Auto Scaling event of another type");
            Ok(LifecycleOutcome::Ignored { reason: "other detail type" })
        }
    }?;
    if let LifecycleOutcome::Ignored { reason: why } = &outcome {
        info!(reason = why, "event ignored");
    }
    Ok(outcome)
}

async fn user_launch<C: Cloud>(cloud: &C, cfg: &Config, e: &LaunchSuccessful) -> Result<LifecycleOutcome, FlowError> {
    let Some(user_id) = cfg.user_of_group(&e.auto_scaling_group_name) else {
        return Ok(LifecycleOutcome::Ignored { reason: "not a user group" });
    };
    // Our user groups are named from validated ids: anything else is not one of ours.
    let Ok(user_id) = Id::parse("user group name", user_id) else {
        return Ok(LifecycleOutcome::Ignored { reason: "not a user group" });
    };
    init_user(cloud, cfg, &user_id, &e.ec2_instance_id).await
}

/// Sends user-init for `user_id` to `instance_id`, once the instance is a live member of
/// the user's group and its SSM agent is online, and records the command. Reads the
/// user's record first: a final user, an instance that is no longer the user's, or one
/// that already got its init (a duplicated event) changes nothing. The launch event and
/// the reconcile sweep (for a launch whose event was lost) both come here.
pub async fn init_user<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    user_id: &Id,
    instance_id: &str,
) -> Result<LifecycleOutcome, FlowError> {
    let user_id = user_id.as_str();
    let Some((group, record)) = load_user(cloud, cfg, user_id).await? else {
        return Ok(LifecycleOutcome::Ignored { reason: "user group no longer exists" });
    };
    if record.state.is_final() {
        return Ok(LifecycleOutcome::Ignored { reason: "user is already ready or failed" });
    }
    if !group.members.iter().any(|m| m.instance_id == instance_id && m.live()) {
        return Ok(LifecycleOutcome::Ignored { reason: "instance is no longer the user's" });
    }
    if record.command_instance.as_deref() == Some(instance_id) && record.command_id.is_some() {
        return Ok(LifecycleOutcome::Ignored { reason: "init already sent to this instance" });
    }
    wait_for_agent(cloud, cfg, instance_id).await?;
    let timeout = match record.path {
        Path::Warm => cfg.init_timeout_warm_s,
        Path::Cold => cfg.init_timeout_cold_s,
    };
    let request = CommandRequest {
        document: cfg.user_init_document.clone(),
        instance_id: instance_id.to_owned(),
        parameters: BTreeMap::from([
            ("UserId".to_owned(), vec![record.user_id.clone()]),
            ("SignupId".to_owned(), vec![record.signup_id.clone()]),
            ("executionTimeout".to_owned(), vec![timeout.to_string()]),
        ]),
        delivery_timeout_s: cfg.delivery_timeout_s,
        comment: format!("warmpool user-init attempt {}", record.attempt),
    };
    let command_id = send_with_agent_retry(cloud, cfg, &request).await?;
    write_tags(
        cloud,
        &group.name,
        &[
            (tag::STATE, UserState::Initializing.as_str().into()),
            (tag::INSTANCE, instance_id.to_owned()),
            (tag::COMMAND_ID, command_id.clone()),
            (tag::COMMAND_INSTANCE, instance_id.to_owned()),
            (tag::CLAIMED, String::new()),
        ],
    )
    .await?;
    info!(user_id, instance_id, command_id, attempt = record.attempt, "user-init sent");
    Ok(LifecycleOutcome::InitSent { command_id })
}

async fn pool_launch<C: Cloud>(cloud: &C, cfg: &Config, e: &LifecycleAction) -> Result<LifecycleOutcome, FlowError> {
    if e.auto_scaling_group_name != cfg.pool_group {
        return Ok(LifecycleOutcome::Ignored { reason: "lifecycle action of a group other than the pool" });
    }
    if e.lifecycle_transition != LAUNCHING_TRANSITION {
        return Ok(LifecycleOutcome::Ignored { reason: "not a launch transition" });
    }
    if e.lifecycle_hook_name != cfg.pool_hook {
        // Another hook on the pool (an operator's own) is not ours to act on: only our
        // hook's actions start pool-prep, whose outcome completes our hook.
        return Ok(LifecycleOutcome::Ignored { reason: "lifecycle action of another hook" });
    }
    let instance_id = e.ec2_instance_id.as_str();
    match wait_for_agent(cloud, cfg, instance_id).await {
        Ok(()) => {}
        Err(FlowError::NotYet(message)) => {
            // A pool that scaled in, or a hook that timed out, takes the instance away
            // while we wait: then there is nothing to prepare and nothing to retry.
            let waiting = cloud
                .describe_group(&cfg.pool_group)
                .await?
                .is_some_and(|g| g.members.iter().any(|m| m.instance_id == instance_id && m.live()));
            if !waiting {
                info!(instance_id, "instance left the pool before its SSM agent came online");
                return Ok(LifecycleOutcome::Ignored {
                    reason: "the instance left the pool before its agent came online",
                });
            }
            return Err(FlowError::NotYet(message));
        }
        Err(e) => return Err(e),
    }
    // EventBridge delivers at least once: a repeated lifecycle action finds the
    // pool-prep the first one sent (once SSM lists it, a second or so after the send)
    // and leaves it to finish, instead of preparing the instance twice.
    let since = cloud.now_ms().saturating_sub(u64::from(cfg.prep_timeout_s) * 1000 + 3_600_000);
    let sent = cloud.list_invocations(&cfg.pool_prep_document, since, Some(instance_id)).await?;
    if let Some(prep) = sent.iter().find(|i| CommandOutcome::from_status(&i.status) != CommandOutcome::Failure) {
        info!(instance_id, command_id = %prep.command_id, status = %prep.status, "pool-prep already sent");
        return Ok(LifecycleOutcome::Ignored { reason: "pool-prep already sent for this instance" });
    }
    let request = CommandRequest {
        document: cfg.pool_prep_document.clone(),
        instance_id: instance_id.to_owned(),
        parameters: BTreeMap::from([("executionTimeout".to_owned(), vec![cfg.prep_timeout_s.to_string()])]),
        delivery_timeout_s: cfg.delivery_timeout_s,
        comment: "warmpool pool-prep".to_owned(),
    };
    let command_id = send_with_agent_retry(cloud, cfg, &request).await?;
    info!(instance_id, command_id, "pool-prep sent");
    Ok(LifecycleOutcome::PrepSent { command_id })
}

/// `SendCommand`, treating `InvalidInstanceId` right after the agent looked online
/// (registration still propagating) as one more reason to wait: tried again on the
/// [`retry::command_resend`] schedule, each time once the agent looks online again.
async fn send_with_agent_retry<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    request: &CommandRequest,
) -> Result<String, FlowError> {
    let mut resend = retry::command_resend();
    loop {
        match cloud.send_command(request).await {
            Ok(id) => return Ok(id),
            Err(CloudError::AgentNotReady { instance_id }) => {
                let Some(delay) = resend.next() else { break };
                warn!(instance_id, "SendCommand says the agent is not ready; waiting again");
                cloud.sleep_ms(delay.as_millis() as u64).await;
                wait_for_agent(cloud, cfg, &instance_id).await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(FlowError::NotYet(format!("SendCommand to {} kept answering InvalidInstanceId", request.instance_id)))
}
