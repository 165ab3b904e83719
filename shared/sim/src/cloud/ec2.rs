//! EC2 instances: launch to `running` (boot time), the SSM agent registering after its
//! delay, and termination (shutdown time), in subnets of three Availability Zones.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::json;
use warmpool_core::error::CloudError;
use warmpool_core::events;
use warmpool_core::ports::{Instances, MemberState, OutsideInstance};

use super::SimCloud;
use super::access::Access;
use super::warm::WarmState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ec2State {
    Pending,
    Running,
    /// Stopping on its way into a warm pool: EC2 does not bill a stop (it bills a
    /// hibernation's, until the instance is hibernated).
    Stopping,
    /// Stopped (or hibernated) in a warm pool: only its volume is billed.
    Stopped,
    ShuttingDown,
    Terminated,
}

#[derive(Debug, Clone)]
pub(super) struct Instance {
    pub(super) subnet: String,
    pub(super) az: String,
    /// The `aws:ec2launchtemplate:id` tag EC2 puts on an instance launched from a template.
    pub(super) launch_template: String,
    /// EC2's `LaunchTime` (epoch ms).
    pub(super) launched_ms: u64,
    /// The group that launched it (empty: launched outside Auto Scaling): where a user's
    /// host really came from, whatever the flow recorded.
    pub(super) launched_in: String,
    pub(super) state: Ec2State,
    pub(super) group: Option<String>,
    pub(super) agent_online: bool,
    pub(super) prepared: bool,
}

/// EC2's state.
#[derive(Debug)]
pub(super) struct Ec2 {
    pub(super) instances: BTreeMap<String, Instance>,
    /// Subnet id to its Availability Zone.
    pub(super) subnet_azs: BTreeMap<String, String>,
    pub(super) next_instance: u64,
    /// Instances whose SSM agent never registers again (a test's knob).
    pub(super) broken_agents: BTreeSet<String>,
}

impl Ec2 {
    /// Three subnets in three Availability Zones; instance ids that differ by seed.
    pub(super) fn new(seed: u64) -> Self {
        Self {
            instances: BTreeMap::new(),
            subnet_azs: [("subnet-a", "us-east-1a"), ("subnet-b", "us-east-1b"), ("subnet-c", "us-east-1c")]
                .into_iter()
                .map(|(s, a)| (s.to_owned(), a.to_owned()))
                .collect(),
            next_instance: 0x0a1b_2c3d_0000_0000 ^ (seed.wrapping_mul(0x9e37_79b9) & 0xffff_0000),
            broken_agents: BTreeSet::new(),
        }
    }

    /// A fresh instance id.
    pub(super) fn next_id(&mut self) -> String {
        self.next_instance += 1;
        format!("i-{:017x}", self.next_instance)
    }
}

impl SimCloud {
    /// Boots a launched instance (or, `from_warm_pool`, starts a stopped one the group
    /// took from its warm pool): the launch hook (if any) takes it to `Pending:Wait` (or
    /// `Warmed:Pending:Wait`, for one launched into the warm pool) at once; EC2 reaches
    /// `running` after the boot (or start) time; the agent registers after its delay.
    /// Without a hook the group puts it `InService` once running (or, in the warm pool,
    /// stops and parks it).
    pub(super) fn boot(&self, id: String, from_warm_pool: bool) {
        let cloud = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(cloud.draw_ms(cloud.inner.model.hook_entry_ms))).await;
            let Some((hooked, into_warm_pool)) = cloud.enter_hook(&id, from_warm_pool) else { return };
            let up_s = if from_warm_pool { cloud.inner.model.start_s } else { cloud.inner.model.boot_s };
            tokio::time::sleep(cloud.draw_s(up_s)).await;
            let in_service_group = {
                let mut w = cloud.world();
                let Some(inst) = w.ec2.instances.get_mut(&id) else { return };
                if inst.state != Ec2State::Pending {
                    return;
                }
                inst.state = Ec2State::Running;
                let group = inst.group.clone();
                let proceeding =
                    into_warm_pool
                        && group.as_ref().and_then(|g| w.asg.groups.get(g)).and_then(|g| g.warm.as_ref()).is_some_and(
                            |wp| wp.members.iter().any(|(m, s)| m == &id && *s == WarmState::PendingProceed),
                        );
                if hooked && !proceeding {
                    None
                } else if into_warm_pool {
                    drop(w);
                    cloud.park(id.clone());
                    return;
                } else {
                    let group = group.filter(|g| {
                        w.asg
                            .groups
                            .get_mut(g)
                            .and_then(|g| g.member_mut(&id))
                            .map(|s| *s = MemberState::InService)
                            .is_some()
                    });
                    if let Some(g) = &group {
                        cloud.end_launch(&mut w, &id, true);
                        cloud.note(&mut w, format!("{id} is InService in {g}"));
                    }
                    group
                }
            };
            if let Some(group) = in_service_group {
                cloud.emit_launch_successful(
                    &group,
                    &id,
                    "an instance was started in response to a difference between desired and actual capacity",
                );
            }
            tokio::time::sleep(Duration::from_secs_f64(cloud.inner.model.agent_delay_s.max(0.0))).await;
            let mut w = cloud.world();
            let broken = w.ec2.broken_agents.contains(&id);
            if let Some(inst) = w.ec2.instances.get_mut(&id)
                && inst.state == Ec2State::Running
                && !broken
            {
                inst.agent_online = true;
                cloud.note(&mut w, format!("{id} SSM agent online"));
            }
        });
    }

    /// A booting instance enters its group's launch hook, if the group has one: its state
    /// (`Pending:Wait`, or `Warmed:Pending:Wait` on its way into the warm pool), the
    /// pending action with its own token and heartbeat, and the lifecycle action event
    /// (origin `WarmPool` for a start out of it, destination `WarmPool` on the way in).
    /// Whether it is hooked and whether it goes into the warm pool; `None` for an
    /// instance terminated meanwhile (a scale-in, a warm pool shrinking).
    fn enter_hook(&self, id: &str, from_warm_pool: bool) -> Option<(bool, bool)> {
        let mut w = self.world();
        // Terminated during its hook entry (a scale-in, a warm pool shrinking): no hook.
        let group = w.ec2.instances.get(id).filter(|i| i.state == Ec2State::Pending).and_then(|i| i.group.clone())?;
        let into_warm_pool = w
            .asg
            .groups
            .get(&group)
            .and_then(|g| g.warm.as_ref())
            .is_some_and(|wp| wp.members.iter().any(|(m, _)| m == id));
        let hook = w.asg.groups.get(&group).and_then(|g| g.hook.clone());
        if let Some(hook) = hook {
            let g = w.asg.groups.get_mut(&group);
            if into_warm_pool {
                if let Some(s) = g.and_then(|g| g.warm.as_mut()).and_then(|wp| wp.member_mut(id)) {
                    *s = WarmState::PendingWait;
                }
            } else if let Some(s) = g.and_then(|g| g.member_mut(id)) {
                *s = MemberState::PendingWait;
            }
            w.asg.last_token += 1;
            let token = w.asg.last_token;
            w.asg.pending_actions.insert(id.to_owned(), (group.clone(), hook.name.clone(), token));
            let origin = if from_warm_pool { events::WARM_POOL } else { "EC2" };
            let destination = if into_warm_pool { events::WARM_POOL } else { "AutoScalingGroup" };
            drop(w);
            self.emit(
                events::SOURCE_AUTOSCALING,
                events::LAUNCH_LIFECYCLE_ACTION,
                json!({
                    "LifecycleActionToken": format!("token-{id}"),
                    "AutoScalingGroupName": group,
                    "LifecycleHookName": hook.name,
                    "EC2InstanceId": id,
                    "LifecycleTransition": events::LAUNCHING_TRANSITION,
                    "Origin": origin,
                    "Destination": destination,
                }),
            );
            self.hook_timeout(id.to_owned(), token);
            Some((true, into_warm_pool))
        } else {
            Some((false, into_warm_pool))
        }
    }

    /// Starts terminating an instance: it leaves service at once and its agent goes
    /// offline; after the shutdown time it is gone from its group.
    pub(super) fn begin_terminate(&self, id: &str, why: &str) {
        {
            let mut w = self.world();
            let group = {
                let Some(inst) = w.ec2.instances.get_mut(id) else { return };
                if matches!(inst.state, Ec2State::ShuttingDown | Ec2State::Terminated) {
                    return;
                }
                inst.state = Ec2State::ShuttingDown;
                inst.agent_online = false;
                inst.group.clone()
            };
            if let Some(g) = group.as_ref().and_then(|g| w.asg.groups.get_mut(g)) {
                if let Some(s) = g.member_mut(id) {
                    *s = MemberState::Terminating;
                } else if let Some(s) = g.warm.as_mut().and_then(|wp| wp.member_mut(id)) {
                    *s = WarmState::Terminating;
                }
            }
            w.asg.pending_actions.remove(id);
            self.end_launch(&mut w, id, false);
            self.note(&mut w, format!("{id} terminating: {why}"));
        }
        let cloud = self.clone();
        let id = id.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs_f64(cloud.inner.model.shutdown_s)).await;
            let mut w = cloud.world();
            let group = w.ec2.instances.get_mut(&id).and_then(|i| {
                i.state = Ec2State::Terminated;
                i.group.take()
            });
            if let Some(g) = group.and_then(|g| w.asg.groups.get_mut(&g)) {
                g.members.retain(|(m, _)| m != &id);
                if let Some(wp) = g.warm.as_mut() {
                    wp.members.retain(|(m, _)| m != &id);
                }
            }
        });
    }
}

/// EC2's view of group membership is the `aws:autoscaling:groupName` tag, which Auto
/// Scaling adds when an instance joins a group and removes when it leaves: here the
/// instance's `group`, as a read sees it (see `lag`: the tag may lag an attach or a
/// detach).
impl Instances for SimCloud {
    async fn instances_outside_groups(&self, launch_template: &str) -> Result<Vec<OutsideInstance>, CloudError> {
        // A call per page of 1,000 (the adapter's `MaxResults`, EC2's largest) of the
        // instances the filters match: the launch template's, pending or running, in a
        // group or not (EC2 cannot filter on a tag's absence; the adapter picks those
        // outside every group from the pages).
        let matching = self
            .world()
            .ec2
            .instances
            .values()
            .filter(|i| {
                i.launch_template == launch_template && matches!(i.state, Ec2State::Pending | Ec2State::Running)
            })
            .count();
        for _ in 0..matching.div_ceil(1000).max(1) {
            self.authorize(vec![Access::new("ec2:DescribeInstances", "*")]);
            self.call("DescribeInstances").await?;
        }
        let mut w = self.world();
        let mut stale = false;
        let outside = w
            .ec2
            .instances
            .iter()
            .filter(|(id, i)| {
                let seen = self.seen_membership(&w, id).map(|m| m.group);
                stale |= seen != i.group;
                i.launch_template == launch_template
                    && seen.is_none()
                    && matches!(i.state, Ec2State::Pending | Ec2State::Running)
            })
            .map(|(id, i)| OutsideInstance { instance_id: id.clone(), launched_ms: i.launched_ms })
            .collect();
        Self::count_stale(&mut w, stale);
        Ok(outside)
    }

    async fn terminate_outside(&self, instance_id: &str) -> Result<(), CloudError> {
        self.authorize(vec![self.instance_access("ec2:TerminateInstances", instance_id, "ec2:ResourceTag/")]);
        self.call("TerminateInstances").await?;
        let result = async {
            if !self.world().ec2.instances.contains_key(instance_id) {
                // EC2: InvalidInstanceID.NotFound.
                return Err(CloudError::NotFound { resource: instance_id.to_owned() });
            }
            // As in EC2, an instance in a group is terminated too (its group then replaces
            // it): the flow asks Auto Scaling first, and the tests judge by the ground truth.
            self.begin_terminate(instance_id, "TerminateInstances");
            Ok(())
        }
        .await;
        self.answer("TerminateInstances", result)
    }
}
