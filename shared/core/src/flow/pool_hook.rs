//! The pool's launch lifecycle hook: the gate every pool instance passes before it is
//! `InService` (or parked in the warm pool).
//!
//! - A new instance, into the group (origin `EC2`, destination `AutoScalingGroup`) or
//!   into its warm pool (destination `WarmPool`): wait for the SSM agent, send
//!   pool-prep; command-status completes the hook with its outcome (CONTINUE, or
//!   ABANDON, which terminates the instance). An instance entering the warm pool is
//!   stopped by Auto Scaling once the hook completes.
//! - A warmed instance leaving the warm pool (origin `WarmPool`): it has just been
//!   started again. Once SSM shows its agent online (the gate every pool member
//!   passes), the hook is completed (CONTINUE) and it goes `InService`. It was prepared
//!   on its way in: an instance enters a warm pool only through the hook (the template
//!   creates the warm pool after the hook), and one whose pool-prep failed was
//!   abandoned and terminated, never parked. Its preparation is on its volume, which
//!   survives the stop. SSM's command history is no proof to ask for instead: it keeps
//!   30 days, and a warmed instance can wait longer.

use std::collections::BTreeMap;

use tracing::info;

use super::lifecycle::{LifecycleOutcome, send_with_agent_retry};
use super::wait_for_agent;
use crate::Config;
use crate::error::{CloudError, FlowError};
use crate::events::{CommandOutcome, LAUNCHING_TRANSITION, LifecycleAction};
use crate::ports::{Cloud, CommandRequest, InvocationQuery, LifecycleResult, MemberState};

pub(crate) async fn pool_launch<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    e: &LifecycleAction,
) -> Result<LifecycleOutcome, FlowError> {
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
        Ok(_) => {}
        Err(FlowError::NotYet(message)) => {
            // A pool that scaled in, or a hook that timed out, takes the instance away
            // while we wait: then there is nothing to prepare and nothing to retry.
            // (`DescribeAutoScalingInstances` also lists an instance on its way into the
            // warm pool, which the group's own instance list does not.)
            let membership = cloud.instance_membership(instance_id).await?.filter(|m| m.group == cfg.pool_group);
            if membership.as_ref().is_some_and(|m| m.state == MemberState::WarmedParked) {
                // A repeat of the action that brought it into the warm pool, after its
                // pool-prep completed it: it is stopped, and its agent with it.
                info!(instance_id, "instance already prepared and parked in the warm pool");
                return Ok(LifecycleOutcome::Ignored { reason: "the instance is parked in the warm pool already" });
            }
            if membership.is_none_or(|m| m.state.leaving()) {
                info!(instance_id, "instance left the pool before its SSM agent came online");
                return Ok(LifecycleOutcome::Ignored {
                    reason: "the instance left the pool before its agent came online",
                });
            }
            return Err(FlowError::NotYet(message));
        }
        Err(e) => return Err(e),
    }
    if e.leaves_warm_pool() {
        return warm_start(cloud, cfg, instance_id).await;
    }
    // EventBridge delivers at least once: a repeated lifecycle action finds the
    // pool-prep the first one sent (once SSM lists it, a second or so after the send)
    // and leaves it to finish, instead of preparing the instance twice. The instance's
    // whole history is asked for (an instance id is never reused, and SSM keeps 30 days):
    // a window would only add arithmetic that can be wrong.
    let sent = cloud.list_invocations(InvocationQuery::all(&cfg.pool_prep_document).on(instance_id)).await?;
    // A failed pool-prep ended its own action (ABANDON): only one still running counts.
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
    // Pool-prep takes no lock (its own checks keep it to one): no send window.
    let command_id = send_with_agent_retry(cloud, cfg, &request, u64::MAX).await?;
    info!(instance_id, command_id, "pool-prep sent");
    Ok(LifecycleOutcome::PrepSent { command_id })
}

/// A warmed instance whose agent is back: complete the hook, CONTINUE. A repeated event
/// finds the action already completed, which is the same outcome.
async fn warm_start<C: Cloud>(cloud: &C, cfg: &Config, instance_id: &str) -> Result<LifecycleOutcome, FlowError> {
    match cloud.complete_lifecycle_action(&cfg.pool_group, &cfg.pool_hook, instance_id, LifecycleResult::Continue).await
    {
        Ok(()) => {
            info!(instance_id, "warmed instance started and its agent is back; lifecycle action completed");
            Ok(LifecycleOutcome::WarmStarted)
        }
        Err(CloudError::NoActiveLifecycleAction { .. }) => {
            Ok(LifecycleOutcome::Ignored { reason: "lifecycle action already completed" })
        }
        Err(e) => Err(e.into()),
    }
}
