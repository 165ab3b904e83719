//! SSM Run Command: agent registration, `SendCommand` (and `InvalidInstanceId` before
//! the agent is online), delivery and execution with their timeouts, failure injection,
//! `GetCommandInvocation` (eventually consistent right after `SendCommand`), and both
//! status events AWS emits for a one-instance command.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use warmpool_core::error::CloudError;
use warmpool_core::events;
use warmpool_core::ports::{Clock, CommandRequest, InvocationPage, InvocationQuery, InvocationSummary, RunCommand};

use super::access::{Access, document_arn};
use super::bus::format_time;
use super::ec2::Ec2State;
use super::{SimCloud, validation};

/// Run Command's state.
#[derive(Debug, Default)]
pub(super) struct Ssm {
    /// Command id to its (one) invocation.
    pub(super) commands: BTreeMap<String, SentCommand>,
    pub(super) next_command: u64,
    /// User-init commands still to fail on purpose (tests).
    pub(super) forced_init_failures: u32,
    /// Every `SendCommand` request accepted, in order: exactly what reaches a host.
    pub(super) sent: Vec<CommandRequest>,
}

/// A command sent to one instance.
#[derive(Debug, Clone)]
pub(super) struct SentCommand {
    pub(super) instance: String,
    pub(super) document: String,
    pub(super) sent_ms: u64,
    /// `None` until the invocation is visible to `GetCommandInvocation` and
    /// `ListCommandInvocations` (eventual consistency right after `SendCommand`).
    pub(super) status: Option<String>,
}

impl SimCloud {
    pub(super) fn run_command(&self, command_id: String, request: CommandRequest, user_init: bool) {
        let cloud = self.clone();
        tokio::spawn(async move {
            let model = cloud.inner.model.clone();
            let id = request.instance_id.clone();
            let delivery_deadline = Duration::from_secs(u64::from(request.delivery_timeout_s));
            let delivery = Duration::from_millis(cloud.draw_ms(model.command_delivery_ms));
            tokio::time::sleep(delivery).await;
            if let Some(entry) = cloud.world().ssm.commands.get_mut(&command_id) {
                entry.status.get_or_insert_with(|| "Pending".to_owned());
            }
            let (reachable, prepared) = {
                let w = cloud.world();
                w.ec2
                    .instances
                    .get(&id)
                    .map_or((false, false), |i| (i.agent_online && i.state == Ec2State::Running, i.prepared))
            };
            if !reachable {
                tokio::time::sleep(delivery_deadline.saturating_sub(delivery)).await;
                cloud.finish_command(&command_id, &request, "TimedOut", "Delivery Timed Out");
                return;
            }
            cloud.command_event(&command_id, &request, "InProgress");
            // Pool-prep is the generic preparation; user-init on an instance that never had
            // it runs the preparation first.
            let work_s = if !user_init {
                model.prep_s
            } else if prepared {
                model.user_init_s
            } else {
                model.prep_s + model.user_init_s
            };
            let jitter = cloud.draw_s(model.work_jitter).as_secs_f64();
            let work = Duration::from_secs_f64(work_s * jitter);
            let timeout = request
                .parameters
                .get("executionTimeout")
                .and_then(|v| v.first())
                .and_then(|v| v.parse::<u64>().ok())
                .map_or(Duration::from_secs(model.default_execution_timeout_s), Duration::from_secs);
            let fail_rate = if user_init { model.init_failure_rate } else { model.prep_failure_rate };
            let forced = user_init && {
                let mut w = cloud.world();
                let forced = w.ssm.forced_init_failures > 0;
                w.ssm.forced_init_failures = w.ssm.forced_init_failures.saturating_sub(1);
                forced
            };
            let fails = forced || cloud.chance(fail_rate);
            // Run in steps so that a terminated instance stops the script.
            let ran = work.min(timeout);
            let step = Duration::from_secs(model.command_check_s.max(1));
            let mut done = Duration::ZERO;
            while done < ran {
                let d = step.min(ran.saturating_sub(done));
                tokio::time::sleep(d).await;
                done += d;
                let alive = cloud.world().ec2.instances.get(&id).is_some_and(|i| i.state == Ec2State::Running);
                if !alive {
                    cloud.finish_command(&command_id, &request, "Failed", "Terminated");
                    return;
                }
            }
            if work > timeout {
                cloud.finish_command(&command_id, &request, "TimedOut", "Execution Timed Out");
            } else if fails {
                cloud.finish_command(&command_id, &request, "Failed", "Failed");
            } else {
                // Either document leaves the instance prepared.
                if let Some(i) = cloud.world().ec2.instances.get_mut(&id) {
                    i.prepared = true;
                }
                cloud.finish_command(&command_id, &request, "Success", "Success");
            }
        });
    }

    pub(super) fn finish_command(&self, command_id: &str, request: &CommandRequest, status: &str, detail: &str) {
        {
            let mut w = self.world();
            let text = format!("command {command_id} ({}) on {}: {detail}", request.document, request.instance_id);
            self.note(&mut w, text);
        }
        self.command_event(command_id, request, status);
    }

    /// Emits both SSM status events, as AWS does for a one-instance command.
    pub(super) fn command_event(&self, command_id: &str, request: &CommandRequest, status: &str) {
        if let Some(entry) = self.world().ssm.commands.get_mut(command_id) {
            entry.status = Some(status.to_owned());
        }
        let requested = format_time(self.now_ms());
        self.emit(
            events::SOURCE_SSM,
            events::COMMAND_INVOCATION_STATUS,
            json!({
                "command-id": command_id,
                "document-name": request.document,
                "instance-id": request.instance_id,
                "requested-date-time": requested,
                "status": status,
            }),
        );
        self.emit(
            events::SOURCE_SSM,
            events::COMMAND_STATUS,
            json!({
                "command-id": command_id,
                "document-name": request.document,
                "expire-after": requested,
                "parameters": request.parameters,
                "requested-date-time": requested,
                "status": status,
            }),
        );
    }
}

impl RunCommand for SimCloud {
    async fn agent_online(&self, instance_id: &str) -> Result<bool, CloudError> {
        self.authorize(vec![Access::new("ssm:DescribeInstanceInformation", "*")]);
        self.call("DescribeInstanceInformation").await?;
        Ok(self.world().ec2.instances.get(instance_id).is_some_and(|i| i.agent_online))
    }

    async fn send_command(&self, request: &CommandRequest) -> Result<String, CloudError> {
        // Authorised on the document and on the instance, whose tags SSM sees.
        self.authorize(vec![
            Access::new("ssm:SendCommand", document_arn(&request.document)),
            self.instance_access("ssm:SendCommand", &request.instance_id, "ssm:resourceTag/"),
        ]);
        self.call("SendCommand").await?;
        let result = async {
            if request.delivery_timeout_s < 30 {
                return Err(validation("SendCommand", "TimeoutSeconds must be at least 30".into()));
            }
            match self.world().documents {
                Ok(documents) => documents.check(request)?,
                Err(e) => return Err(validation("SendCommand", e.clone())),
            }
            let command_id = {
                let mut w = self.world();
                let online = w.ec2.instances.get(&request.instance_id).is_some_and(|i| i.agent_online);
                if !online {
                    return Err(CloudError::AgentNotReady { instance_id: request.instance_id.clone() });
                }
                w.ssm.next_command += 1;
                let n = w.ssm.next_command;
                let id = format!("{n:08x}-0000-4000-8000-{:012x}", n.wrapping_mul(2_654_435_761));
                let user = request.parameters.get("UserId").and_then(|v| v.first()).cloned().unwrap_or_default();
                let text = if user.is_empty() {
                    format!("SendCommand {} to {} ({id})", request.document, request.instance_id)
                } else {
                    format!("SendCommand {} for {user} to {} ({id})", request.document, request.instance_id)
                };
                self.note(&mut w, text);
                let sent = SentCommand {
                    instance: request.instance_id.clone(),
                    document: request.document.clone(),
                    sent_ms: self.now_ms(),
                    status: None,
                };
                w.ssm.commands.insert(id.clone(), sent);
                w.ssm.sent.push(request.clone());
                id
            };
            let user_init = request.parameters.contains_key("UserId");
            self.run_command(command_id.clone(), request.clone(), user_init);
            Ok(command_id)
        }
        .await;
        self.answer("SendCommand", result)
    }

    async fn invocation_status(&self, command_id: &str, instance_id: &str) -> Result<String, CloudError> {
        self.authorize(vec![Access::new("ssm:GetCommandInvocation", "*")]);
        self.call("GetCommandInvocation").await?;
        let w = self.world();
        match w.ssm.commands.get(command_id) {
            Some(SentCommand { instance, status: Some(status), .. }) if instance == instance_id => Ok(status.clone()),
            _ => Err(CloudError::InvocationDoesNotExist {
                command_id: command_id.to_owned(),
                instance_id: instance_id.to_owned(),
            }),
        }
    }

    /// Pages of 50 (`MaxResults`), in the order the commands were sent (AWS documents
    /// no order; the flow takes none), each page read when its call is made: a command
    /// sent between two pages' calls is on a later page. The token is the last command
    /// id of the page before.
    async fn list_invocations_page(
        &self,
        query: InvocationQuery<'_>,
        next_token: Option<String>,
    ) -> Result<InvocationPage, CloudError> {
        const PAGE: usize = 50;
        self.authorize(vec![Access::new("ssm:ListCommandInvocations", "*")]);
        self.call("ListCommandInvocations").await?;
        let w = self.world();
        let mut listed = w
            .ssm
            .commands
            .iter()
            .filter(|(id, c)| {
                next_token.as_ref().is_none_or(|after| *id > after)
                    && c.document == query.document
                    && query.after_ms.is_none_or(|after| c.sent_ms >= after)
                    && query.before_ms.is_none_or(|before| c.sent_ms < before)
                    && query.instance_id.is_none_or(|i| c.instance == i)
            })
            .filter_map(|(id, c)| {
                Some(InvocationSummary {
                    command_id: id.clone(),
                    instance_id: c.instance.clone(),
                    status: c.status.clone()?,
                })
            });
        let invocations: Vec<InvocationSummary> = listed.by_ref().take(PAGE).collect();
        let more = listed.next().is_some();
        let next_token = invocations.last().filter(|_| more).map(|i| i.command_id.clone());
        Ok(InvocationPage { invocations, next_token })
    }
}
