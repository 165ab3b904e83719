//! Auto Scaling's scaling loop: every pass a group launches or terminates instances to
//! match its desired capacity; launch activities (and launches EC2 refuses), the
//! `Launch Successful` / `Launch Unsuccessful` events, and the launch lifecycle hook's
//! heartbeat timeout.

use std::time::Duration;

use serde_json::json;
use warmpool_core::events;
use warmpool_core::ports::{Clock, Launch, LaunchKind, MemberState};

use super::autoscaling::{ACTIVITIES_KEPT, LaunchActivity};
use super::bus::format_time;
use super::ec2::{Ec2State, Instance};
use super::warm::WarmState;
use super::{SimCloud, World};

/// Why a launch fails, in EC2's words (as Auto Scaling reports them in the failed
/// activity's status message): capacity, the account's vCPU quota, the subnet's addresses.
const LAUNCH_FAILURES: [&str; 3] = [
    "We currently do not have sufficient t3.small capacity in the Availability Zone you requested. Our system \
     will be working on provisioning additional capacity. Launching EC2 instance failed.",
    "You have requested more vCPU capacity than your current vCPU limit of 32 allows for the instance bucket \
     that the specified instance type belongs to. Launching EC2 instance failed.",
    "There are not enough free addresses in subnet to satisfy the requested number of instances. Launching \
     EC2 instance failed.",
];

impl SimCloud {
    pub(super) fn begin_launch(&self, w: &mut World, group: &str, instance_id: &str, kind: LaunchKind) {
        let started_ms = self.now_ms();
        w.asg.launching.insert(instance_id.to_owned(), group.to_owned());
        let list = w.asg.activities.entry(group.to_owned()).or_default();
        list.push(LaunchActivity {
            instance_id: instance_id.to_owned(),
            launch: Launch { kind, started_ms, ended_ms: None, succeeded: false },
        });
        if list.len() > ACTIVITIES_KEPT {
            list.drain(..list.len() - ACTIVITIES_KEPT);
        }
    }

    /// Ends the launch activity of `instance_id`, if one is still in progress.
    pub(super) fn end_launch(&self, w: &mut World, instance_id: &str, succeeded: bool) {
        let now = self.now_ms();
        let Some(group) = w.asg.launching.remove(instance_id) else { return };
        if let Some(a) = w.asg.activities.get_mut(&group).and_then(|list| {
            list.iter_mut().rev().find(|a| a.instance_id == instance_id && a.launch.ended_ms.is_none())
        }) {
            a.launch.ended_ms = Some(now);
            a.launch.succeeded = succeeded;
        }
    }

    /// Every `scaling_interval_s`, a group launches or terminates instances until its
    /// live count matches its desired capacity. Ends when the group is deleted.
    pub(super) fn start_scaling(&self, group: String) {
        let cloud = self.clone();
        tokio::spawn(async move {
            let interval = Duration::from_secs(cloud.inner.model.scaling_interval_s.max(1));
            loop {
                tokio::time::sleep(interval).await;
                if !cloud.scale_once(&group) {
                    break;
                }
            }
        });
    }

    /// One pass: the group first, from its warm pool if it has one (a parked instance
    /// is started before a new one is launched), then the warm pool's own size.
    pub(super) fn scale_once(&self, group: &str) -> bool {
        let mut launches = Vec::new();
        let mut starts = Vec::new();
        let mut failures = Vec::new();
        let mut excess = Vec::new();
        {
            let mut w = self.world();
            let Some(g) = w.asg.groups.get(group) else {
                return false;
            };
            let live = g.live() as u32;
            let desired = g.desired;
            if live < desired {
                for _ in live..desired {
                    if let Some(id) = self.take_warmed(&mut w, group) {
                        starts.push(id);
                        continue;
                    }
                    match self.try_launch(&mut w, group, false) {
                        Ok(id) => launches.push(id),
                        Err(message) => failures.push(message),
                    }
                }
            } else if live > desired {
                let live_ids: Vec<String> =
                    g.members.iter().filter(|(_, s)| !s.leaving()).map(|(id, _)| id.clone()).collect();
                excess.extend(live_ids.into_iter().rev().take((live - desired) as usize));
            }
            let (short, warm_excess) = Self::warm_shortfall(&w, group);
            for _ in 0..short {
                match self.try_launch(&mut w, group, true) {
                    Ok(id) => launches.push(id),
                    Err(message) => failures.push(message),
                }
            }
            excess.extend(warm_excess);
        }
        for id in launches {
            self.boot(id, false);
        }
        for id in starts {
            self.boot(id, true);
        }
        for message in failures {
            self.emit(
                events::SOURCE_AUTOSCALING,
                events::LAUNCH_UNSUCCESSFUL,
                json!({
                    "StatusCode": "Failed",
                    "AutoScalingGroupName": group,
                    "EC2InstanceId": "",
                    "StatusMessage": message,
                    "Cause": format!(
                        "At {} an instance was started in response to a difference between desired and actual capacity.",
                        format_time(self.now_ms())
                    ),
                    "Details": {},
                }),
            );
        }
        for id in excess {
            self.begin_terminate(&id, "scale-in");
        }
        true
    }

    /// A launch attempt (into the group, or into its warm pool): the new instance's id,
    /// or the message of a launch that failed (at the model's rate, or forced by a test).
    fn try_launch(&self, w: &mut World, group: &str, into_warm_pool: bool) -> Result<String, &'static str> {
        let forced = w.asg.forced_launch_failures > 0;
        if forced || self.chance(self.inner.model.launch_failure_rate) {
            w.asg.forced_launch_failures = w.asg.forced_launch_failures.saturating_sub(1);
            return Err(self.fail_launch(w, group));
        }
        Ok(self.launch_into(w, group, into_warm_pool))
    }

    /// A launch attempt that fails: a failed launch activity (no instance), and its
    /// message. The group tries again on its next pass.
    fn fail_launch(&self, w: &mut World, group: &str) -> &'static str {
        let now = self.now_ms();
        let message = LAUNCH_FAILURES[(self.draw_ms((0, 2)) as usize).min(LAUNCH_FAILURES.len() - 1)];
        w.asg.failed_launches += 1;
        let list = w.asg.activities.entry(group.to_owned()).or_default();
        list.push(LaunchActivity {
            instance_id: String::new(),
            launch: Launch { kind: LaunchKind::New, started_ms: now, ended_ms: Some(now), succeeded: false },
        });
        if list.len() > ACTIVITIES_KEPT {
            list.drain(..list.len() - ACTIVITIES_KEPT);
        }
        self.note(w, format!("{group} launch failed: {message}"));
        message
    }

    /// Records a new `Pending` instance in the group (or `Warmed:Pending` in its warm
    /// pool), in its least-used subnet.
    pub(super) fn launch_into(&self, w: &mut World, group: &str, into_warm_pool: bool) -> String {
        let id = w.ec2.next_id();
        let Some(g) = w.asg.groups.get(group) else {
            return id;
        };
        let subnet = g
            .subnets
            .iter()
            .min_by_key(|s| {
                g.members.iter().filter(|(m, _)| w.ec2.instances.get(m).is_some_and(|i| &&i.subnet == s)).count()
            })
            .cloned()
            .unwrap_or_else(|| "subnet-a".to_owned());
        let az = w.ec2.subnet_azs.get(&subnet).cloned().unwrap_or_default();
        let launch_template = g.launch_template.clone();
        w.ec2.instances.insert(
            id.clone(),
            Instance {
                subnet,
                az,
                launch_template,
                launched_ms: self.now_ms(),
                launched_in: group.to_owned(),
                state: Ec2State::Pending,
                group: Some(group.to_owned()),
                agent_online: false,
                prepared: false,
            },
        );
        let kind = match w.asg.groups.get_mut(group) {
            Some(g) if into_warm_pool => {
                if let Some(wp) = g.warm.as_mut() {
                    wp.members.push((id.clone(), WarmState::Pending));
                }
                LaunchKind::IntoWarmPool
            }
            Some(g) => {
                g.members.push((id.clone(), MemberState::Pending));
                LaunchKind::New
            }
            None => LaunchKind::New,
        };
        self.begin_launch(w, group, &id, kind);
        let into = if into_warm_pool { " into its warm pool" } else { "" };
        self.note(w, format!("{group} launches {id}{into}"));
        id
    }

    pub(super) fn emit_launch_successful(&self, group: &str, id: &str, cause: &str) {
        self.emit(
            events::SOURCE_AUTOSCALING,
            events::LAUNCH_SUCCESSFUL,
            json!({
                "StatusCode": "InProgress",
                "AutoScalingGroupName": group,
                "EC2InstanceId": id,
                "Cause": format!("At {} {cause}.", format_time(self.now_ms())),
                "Details": {},
            }),
        );
    }

    /// The hook's heartbeat timeout: an action still pending then gets the default
    /// result, ABANDON, and the instance is terminated (the group replaces it).
    pub(super) fn hook_timeout(&self, id: String, token: u64) {
        let cloud = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(cloud.inner.model.hook_timeout_s)).await;
            let timed_out = {
                let mut w = cloud.world();
                let ours = w.asg.pending_actions.get(&id).is_some_and(|(_, _, t)| *t == token);
                ours && w.asg.pending_actions.remove(&id).is_some()
            };
            if timed_out {
                cloud.begin_terminate(&id, "lifecycle hook timed out (ABANDON)");
            }
        });
    }
}
