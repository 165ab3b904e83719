//! Auto Scaling: groups with min, max and desired capacity, attach, detach, terminate,
//! tags and force delete, with the errors AWS documents for each (the scaling loop,
//! launches and the hook's timeout are in `scaling`).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use warmpool_core::domain::{UserState, tag};
use warmpool_core::error::CloudError;
use warmpool_core::ports::{
    AutoScaling, Clock, Group, Launch, LifecycleResult, Member, MemberState, Membership, UserGroupSpec, WarmPool,
    WarmPoolSize,
};

use super::access::{Access, group_arn, launch_from_template};
use super::ec2::Ec2State;
use super::inspect::DetachStats;
use super::warm::{WarmPoolState, WarmState};
use super::{SimCloud, World, validation};
use crate::invocation::Invocation;
use crate::waits::Wait;

/// Scaling activities kept per group (`DescribeScalingActivities` answers the newest page).
pub(super) const ACTIVITIES_KEPT: usize = 200;

#[derive(Debug, Clone)]
pub(super) struct LaunchActivity {
    pub(super) instance_id: String,
    pub(super) launch: Launch,
}

#[derive(Debug, Clone)]
pub(super) struct Hook {
    pub(super) name: String,
}

#[derive(Debug, Clone)]
pub(super) struct AsgState {
    pub(super) min: u32,
    pub(super) max: u32,
    pub(super) desired: u32,
    pub(super) subnets: Vec<String>,
    pub(super) tags: BTreeMap<String, String>,
    /// The launch template its launches use (EC2 tags each instance with its id).
    pub(super) launch_template: String,
    /// Instance id to lifecycle state, in launch/attach order.
    pub(super) members: Vec<(String, MemberState)>,
    pub(super) hook: Option<Hook>,
    /// Its warm pool, if it has one (see `warm`).
    pub(super) warm: Option<WarmPoolState>,
}

impl AsgState {
    pub(super) fn member_mut(&mut self, id: &str) -> Option<&mut MemberState> {
        self.members.iter_mut().find(|(m, _)| m == id).map(|(_, s)| s)
    }

    pub(super) fn live(&self) -> usize {
        self.members.iter().filter(|(_, s)| !s.leaving()).count()
    }
}

/// Auto Scaling's state.
#[derive(Debug, Default)]
pub(super) struct AutoScalingState {
    pub(super) groups: BTreeMap<String, AsgState>,
    /// Pending launch lifecycle actions: instance id to (group, hook, token). An instance
    /// of a warm pool goes through two actions (into the warm pool, out of it); the
    /// token tells a hook's timeout which one it belongs to.
    pub(super) pending_actions: BTreeMap<String, (String, String, u64)>,
    /// The last lifecycle action token handed out.
    pub(super) last_token: u64,
    /// Launch activities by group, oldest first.
    pub(super) activities: BTreeMap<String, Vec<LaunchActivity>>,
    /// Instance id to the group whose launch activity is still in progress.
    pub(super) launching: BTreeMap<String, String>,
    pub(super) detaches: BTreeMap<String, DetachStats>,
    /// Launch attempts still to fail, whatever the failure rate (a test's knob).
    pub(super) forced_launch_failures: u32,
    /// Failed launch attempts so far.
    pub(super) failed_launches: u64,
    /// Instances whose health status is `Unhealthy` (marked, not yet replaced).
    pub(super) unhealthy: BTreeSet<String>,
}

impl SimCloud {
    /// `ScalingActivityInProgress`, at the model's rate, for a group with a launch in
    /// progress.
    fn refuse_if_busy(&self, w: &mut World, group: &str, operation: &str) -> Result<(), CloudError> {
        let busy = w.asg.launching.values().any(|g| g == group);
        if busy && self.chance(self.inner.model.activity_in_progress_rate) {
            self.note(w, format!("{operation} on {group} refused: ScalingActivityInProgress"));
            return Err(CloudError::ScalingActivityInProgress { operation: operation.to_owned() });
        }
        Ok(())
    }

    /// `AttachInstances`' effect and its refusals (the call itself counted and faulted
    /// by the caller).
    fn attach_now(&self, group: &str, instance_id: &str) -> Result<(), CloudError> {
        {
            let mut w = self.world();
            let Some(inst) = w.ec2.instances.get(instance_id).cloned() else {
                return Err(validation("AttachInstances", format!("Instance {instance_id} does not exist")));
            };
            let Some(g) = w.asg.groups.get(group) else {
                return Err(CloudError::NotFound { resource: group.to_owned() });
            };
            if inst.state != Ec2State::Running {
                return Err(validation("AttachInstances", format!("Instance {instance_id} is not in a running state")));
            }
            if let Some(other) = &inst.group {
                return Err(CloudError::AlreadyInGroup {
                    instance_id: instance_id.to_owned(),
                    message: format!("The instance {instance_id} is already part of Auto Scaling group {other}"),
                });
            }
            let azs: BTreeSet<&String> = g.subnets.iter().filter_map(|s| w.ec2.subnet_azs.get(s)).collect();
            if !azs.contains(&inst.az) {
                return Err(validation(
                    "AttachInstances",
                    format!("Instance {instance_id} is in {}, which is not an Availability Zone of {group}", inst.az),
                ));
            }
            if g.desired + 1 > g.max {
                return Err(CloudError::MaxSizeExceeded {
                    group: group.to_owned(),
                    message: format!(
                        "AutoScalingGroup {group} has min-size={}, max-size={}, and desired-size={}. To attach 1 \
                         instance, please update the AutoScalingGroup sizes appropriately.",
                        g.min, g.max, g.desired
                    ),
                });
            }
            let window = self.lag_window();
            self.lag_group(&mut w, group, window);
            self.lag_instance(&mut w, instance_id, window);
            if let Some(g) = w.asg.groups.get_mut(group) {
                g.desired += 1;
                g.members.push((instance_id.to_owned(), MemberState::InService));
            }
            if let Some(i) = w.ec2.instances.get_mut(instance_id) {
                i.group = Some(group.to_owned());
            }
            self.note(&mut w, format!("{instance_id} attached to {group}"));
        }
        // AttachInstances fires no lifecycle hook; it does emit Launch Successful.
        self.emit_launch_successful(group, instance_id, "an instance was added in response to user request");
        Ok(())
    }
}

fn group_view(w: &World, name: &str, g: &AsgState) -> Group {
    Group {
        name: name.to_owned(),
        min_size: g.min,
        max_size: g.max,
        desired_capacity: g.desired,
        members: g
            .members
            .iter()
            .map(|(id, s)| Member {
                instance_id: id.clone(),
                state: *s,
                healthy: !w.asg.unhealthy.contains(id),
                availability_zone: w.ec2.instances.get(id).map(|i| i.az.clone()).unwrap_or_default(),
                launch_template: w.ec2.instances.get(id).map(|i| i.launch_template.clone()).filter(|lt| !lt.is_empty()),
            })
            .collect(),
        tags: g.tags.clone(),
    }
}

impl AutoScaling for SimCloud {
    async fn create_user_group(&self, spec: &UserGroupSpec) -> Result<(), CloudError> {
        // As the adapter asks: MinSize 0, MaxSize 1, a launch template (no instance types,
        // no launch configuration), the record as the group's tags.
        let create = Access::new("autoscaling:CreateAutoScalingGroup", group_arn(&spec.name))
            .with("autoscaling:MinSize", "0")
            .with("autoscaling:MaxSize", "1")
            .with_tags("aws:RequestTag/", spec.tags.iter().map(|(k, v)| (k, v)));
        let mut accesses = vec![create];
        accesses.extend(launch_from_template(&spec.launch_template, &spec.subnets));
        self.authorize(accesses);
        self.call("CreateAutoScalingGroup").await?;
        let result = async {
            {
                let mut w = self.world();
                if w.asg.groups.contains_key(&spec.name) {
                    return Err(CloudError::AlreadyExists { resource: spec.name.clone() });
                }
                if let Some(bad) = spec.subnets.iter().find(|s| !w.ec2.subnet_azs.contains_key(*s)) {
                    return Err(validation("CreateAutoScalingGroup", format!("The subnet ID '{bad}' does not exist")));
                }
                if w.asg.groups.len() >= self.inner.model.group_quota {
                    // The API reference's words for the `LimitExceeded` fault.
                    return Err(CloudError::LimitExceeded {
                        operation: "CreateAutoScalingGroup".into(),
                        message: format!(
                            "You have already reached a limit for your Amazon EC2 Auto Scaling resources (for example, \
                             Auto Scaling groups, launch configurations, or lifecycle hooks): {} groups",
                            self.inner.model.group_quota
                        ),
                    });
                }
                let window = self.lag_window();
                self.lag_group(&mut w, &spec.name, window);
                w.asg.groups.insert(
                    spec.name.clone(),
                    AsgState {
                        min: 0,
                        max: 1,
                        desired: 0,
                        subnets: spec.subnets.clone(),
                        tags: spec.tags.iter().cloned().collect(),
                        launch_template: spec.launch_template.clone(),
                        members: Vec::new(),
                        hook: None,
                        warm: None,
                    },
                );
                self.note(&mut w, format!("{} created", spec.name));
            }
            self.start_scaling(spec.name.clone());
            Ok(())
        }
        .await;
        self.answer("CreateAutoScalingGroup", result)
    }

    async fn describe_group(&self, name: &str) -> Result<Option<Group>, CloudError> {
        self.authorize(vec![Access::new("autoscaling:DescribeAutoScalingGroups", "*")]);
        self.call("DescribeAutoScalingGroups").await?;
        let mut w = self.world();
        let seen = self.seen_group(&w, name).map(|g| group_view(&w, name, &g));
        let stale = seen != w.asg.groups.get(name).map(|g| group_view(&w, name, g));
        Self::count_stale(&mut w, stale);
        Ok(seen)
    }

    async fn groups_in_region(&self) -> Result<u32, CloudError> {
        self.authorize(vec![Access::new("autoscaling:DescribeAccountLimits", "*")]);
        self.call("DescribeAccountLimits").await?;
        let w = self.world();
        Ok(u32::try_from(self.seen_groups(&w).len()).unwrap_or(u32::MAX))
    }

    async fn list_user_groups(&self, prefix: &str, states: &[UserState]) -> Result<Vec<Group>, CloudError> {
        // A call per page of 100 (`MaxRecords`' largest value), as the SDK's paginator
        // makes them; the tag filters are applied by Auto Scaling, before paging.
        const PAGE: usize = 100;
        let wanted: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
        let mut groups = Vec::new();
        let mut from = None::<String>;
        loop {
            self.authorize(vec![Access::new("autoscaling:DescribeAutoScalingGroups", "*")]);
            self.call("DescribeAutoScalingGroups").await?;
            let mut w = self.world();
            let seen = self.seen_groups(&w);
            let page: Vec<(&String, Cow<'_, AsgState>)> = seen
                .into_iter()
                .filter(|(name, _)| from.as_ref().is_none_or(|f| *name > f))
                .filter(|(_, g)| g.tags.contains_key(tag::USER_ID))
                .filter(|(_, g)| {
                    wanted.is_empty() || g.tags.get(tag::STATE).is_some_and(|s| wanted.contains(&s.as_str()))
                })
                .take(PAGE)
                .collect();
            let full = page.len() == PAGE;
            from = page.last().map(|(name, _)| (*name).clone());
            let views: Vec<Group> = page
                .iter()
                .filter(|(name, _)| name.starts_with(prefix))
                .map(|(name, g)| group_view(&w, name, g))
                .collect();
            let stale =
                views.iter().any(|v| w.asg.groups.get(&v.name).map(|g| group_view(&w, &v.name, g)).as_ref() != Some(v));
            Self::count_stale(&mut w, stale);
            groups.extend(views);
            if !full {
                return Ok(groups);
            }
        }
    }

    async fn instance_membership(&self, instance_id: &str) -> Result<Option<Membership>, CloudError> {
        self.authorize(vec![Access::new("autoscaling:DescribeAutoScalingInstances", "*")]);
        self.call("DescribeAutoScalingInstances").await?;
        let mut w = self.world();
        let seen = self.seen_membership(&w, instance_id);
        let stale = seen != super::lag::true_membership(&w, instance_id);
        Self::count_stale(&mut w, stale);
        Ok(seen)
    }

    async fn detach_instance(&self, group: &str, instance_id: &str) -> Result<(), CloudError> {
        self.authorize(vec![self.group_access("autoscaling:DetachInstances", group)]);
        self.call("DetachInstances").await?;
        let result = async {
            let mut w = self.world();
            w.asg.detaches.entry(group.to_owned()).or_default().attempts += 1;
            let Some(g) = w.asg.groups.get_mut(group) else {
                return Err(CloudError::NotFound { resource: group.to_owned() });
            };
            let Some(pos) = g.members.iter().position(|(m, _)| m == instance_id) else {
                return Err(CloudError::NotInGroup { group: group.to_owned(), instance_id: instance_id.to_owned() });
            };
            let state = g.members[pos].1;
            if !matches!(state, MemberState::InService | MemberState::Standby) {
                return Err(CloudError::NotInService {
                    instance_id: instance_id.to_owned(),
                    message: format!("The instance {instance_id} is not in InService or Standby."),
                });
            }
            // Detach is asynchronous: the instance is `Detaching`, still listed in the group
            // (and so not attachable elsewhere), until the activity completes.
            let window = self.lag_window();
            self.lag_group(&mut w, group, window);
            self.lag_instance(&mut w, instance_id, window);
            if let Some(g) = w.asg.groups.get_mut(group) {
                g.members[pos].1 = MemberState::Detaching;
            }
            w.asg.detaches.entry(group.to_owned()).or_default().succeeded += 1;
            self.note(&mut w, format!("{instance_id} detaching from {group}"));
            drop(w);
            let cloud = self.clone();
            let (group, id) = (group.to_owned(), instance_id.to_owned());
            tokio::spawn(async move {
                tokio::time::sleep(cloud.draw_s(cloud.inner.model.detach_s)).await;
                let mut w = cloud.world();
                if !w.asg.groups.contains_key(&group) {
                    return;
                }
                let window = cloud.lag_window();
                cloud.lag_group(&mut w, &group, window);
                cloud.lag_instance(&mut w, &id, window);
                let Some(g) = w.asg.groups.get_mut(&group) else { return };
                let before = g.members.len();
                g.members.retain(|(m, s)| !(m == &id && *s == MemberState::Detaching));
                if g.members.len() < before {
                    if let Some(i) = w.ec2.instances.get_mut(&id) {
                        i.group = None;
                    }
                    cloud.note(&mut w, format!("{id} detached from {group}"));
                }
            });
            Ok(())
        }
        .await;
        self.answer("DetachInstances", result)
    }

    async fn attach_instance(&self, group: &str, instance_id: &str) -> Result<(), CloudError> {
        self.authorize(vec![self.group_access("autoscaling:AttachInstances", group)]);
        self.call("AttachInstances").await?;
        if let Some(first) = Invocation::current().and_then(|inv| inv.take_attached_first()) {
            // The injected race (FaultKind::AttachedFirst): another caller's attach
            // lands first; this one then meets what it left.
            let other = first.into.unwrap_or(group);
            let first = self.attach_now(other, instance_id);
            let mut w = self.world();
            let outcome = first.map_or_else(|e| format!("was refused: {e}"), |()| "took effect".to_owned());
            self.note(
                &mut w,
                format!("AttachInstances of {instance_id} into {other} by another caller, first, {outcome}"),
            );
        }
        let result = self.attach_now(group, instance_id);
        self.answer("AttachInstances", result)
    }

    async fn set_desired_capacity(&self, group: &str, desired: u32) -> Result<(), CloudError> {
        self.authorize(vec![self.group_access("autoscaling:SetDesiredCapacity", group)]);
        self.call("SetDesiredCapacity").await?;
        let result = async {
            let mut w = self.world();
            self.refuse_if_busy(&mut w, group, "SetDesiredCapacity")?;
            let Some(g) = w.asg.groups.get(group) else {
                return Err(CloudError::NotFound { resource: group.to_owned() });
            };
            if desired > g.max || desired < g.min {
                return Err(CloudError::MaxSizeExceeded {
                    group: group.to_owned(),
                    message: format!(
                        "New SetDesiredCapacity value {desired} is outside min {} and max {}",
                        g.min, g.max
                    ),
                });
            }
            let window = self.lag_window();
            self.lag_group(&mut w, group, window);
            if let Some(g) = w.asg.groups.get_mut(group) {
                g.desired = desired;
            }
            self.note(&mut w, format!("{group} desired capacity set to {desired}"));
            Ok(())
        }
        .await;
        self.answer("SetDesiredCapacity", result)
    }

    async fn terminate_instance(&self, instance_id: &str, decrement_desired: bool) -> Result<(), CloudError> {
        // Authorised on the instance's group.
        let in_group = self.world().ec2.instances.get(instance_id).and_then(|i| i.group.clone());
        let action = "autoscaling:TerminateInstanceInAutoScalingGroup";
        self.authorize(vec![match in_group {
            Some(g) => self.group_access(action, &g),
            None => Access::new(action, "*"),
        }]);
        self.call("TerminateInstanceInAutoScalingGroup").await?;
        let result = async {
            {
                let mut w = self.world();
                let group = w
                    .ec2
                    .instances
                    .get(instance_id)
                    .filter(|i| matches!(i.state, Ec2State::Pending | Ec2State::Running))
                    .and_then(|i| i.group.clone());
                let Some(group) = group else {
                    return Err(CloudError::NotFound { resource: instance_id.to_owned() });
                };
                self.refuse_if_busy(&mut w, &group, "TerminateInstanceInAutoScalingGroup")?;
                let window = self.lag_window();
                self.lag_group(&mut w, &group, window);
                self.lag_instance(&mut w, instance_id, window);
                if decrement_desired && let Some(g) = w.asg.groups.get_mut(&group) {
                    // AWS refuses, it does not clamp (the message is AWS's own).
                    if g.desired <= g.min {
                        return Err(CloudError::BelowMinSize {
                            group: group.clone(),
                            message: format!(
                                "Currently, desiredSize equals minSize ({}). Terminating instance without replacement \
                                 will violate group's min size constraint. Either set shouldDecrementDesiredCapacity \
                                 flag to false or lower group's min size.",
                                g.min
                            ),
                        });
                    }
                    g.desired -= 1;
                }
            }
            self.begin_terminate(instance_id, "TerminateInstanceInAutoScalingGroup");
            Ok(())
        }
        .await;
        self.answer("TerminateInstanceInAutoScalingGroup", result)
    }

    async fn tag_group(&self, group: &str, tags: &[(String, String)]) -> Result<(), CloudError> {
        let access = self.group_access("autoscaling:CreateOrUpdateTags", group);
        self.authorize(vec![access.with_tags("aws:RequestTag/", tags.iter().map(|(k, v)| (k, v)))]);
        self.call("CreateOrUpdateTags").await?;
        let result = async {
            let mut w = self.world();
            if w.asg.groups.contains_key(group) {
                let window = self.lag_window();
                self.lag_group(&mut w, group, window);
            }
            let Some(g) = w.asg.groups.get_mut(group) else {
                return Err(CloudError::NotFound { resource: group.to_owned() });
            };
            let new_attempt = tags.iter().any(|(k, v)| k == tag::ATTEMPT && g.tags.get(k) != Some(v));
            let user = g.tags.get(tag::USER_ID).cloned();
            for (k, v) in tags {
                g.tags.insert(k.clone(), v.clone());
            }
            if let Some(user) = user.filter(|_| new_attempt) {
                let now = self.now_ms();
                w.record.waits.add_since_accounted(&user, Wait::FailedAttempt, now);
            }
            Ok(())
        }
        .await;
        self.answer("CreateOrUpdateTags", result)
    }

    async fn untag_group(&self, group: &str, keys: &[&str]) -> Result<(), CloudError> {
        self.untag(group, keys).await
    }

    async fn update_group_sizes(&self, group: &str, min: u32, max: u32, desired: u32) -> Result<(), CloudError> {
        self.update_sizes(group, min, max, desired).await
    }

    async fn delete_group(&self, group: &str) -> Result<(), CloudError> {
        self.authorize(vec![self.group_access("autoscaling:DeleteAutoScalingGroup", group)]);
        self.call("DeleteAutoScalingGroup").await?;
        let result = async {
            let members = {
                let mut w = self.world();
                if let Some(g) = w.asg.groups.get(group) {
                    let ids: Vec<String> = g.members.iter().map(|(id, _)| id.clone()).collect();
                    let window = self.lag_window();
                    self.lag_group(&mut w, group, window);
                    for id in ids {
                        self.lag_instance(&mut w, &id, window);
                    }
                }
                let Some(g) = w.asg.groups.remove(group) else {
                    return Err(CloudError::NotFound { resource: group.to_owned() });
                };
                self.note(&mut w, format!("{group} deleted"));
                g.members
            };
            for (id, _) in members {
                self.begin_terminate(&id, "group deleted");
                if let Some(i) = self.world().ec2.instances.get_mut(&id) {
                    i.group = None;
                }
            }
            Ok(())
        }
        .await;
        self.answer("DeleteAutoScalingGroup", result)
    }

    async fn recent_launches(&self, group: &str) -> Result<Vec<Launch>, CloudError> {
        self.authorize(vec![Access::new("autoscaling:DescribeScalingActivities", "*")]);
        self.call("DescribeScalingActivities").await?;
        let w = self.world();
        if !w.asg.groups.contains_key(group) {
            return Err(CloudError::NotFound { resource: group.to_owned() });
        }
        Ok(w.asg
            .activities
            .get(group)
            .map(|l| l.iter().rev().take(100).map(|a| a.launch.clone()).collect())
            .unwrap_or_default())
    }

    async fn complete_lifecycle_action(
        &self,
        group: &str,
        hook: &str,
        instance_id: &str,
        result: LifecycleResult,
    ) -> Result<(), CloudError> {
        self.authorize(vec![self.group_access("autoscaling:CompleteLifecycleAction", group)]);
        self.call("CompleteLifecycleAction").await?;
        let result = async {
            {
                let mut w = self.world();
                let matches = w.asg.pending_actions.get(instance_id).is_some_and(|(g, h, _)| g == group && h == hook);
                if !matches {
                    return Err(CloudError::NoActiveLifecycleAction { instance_id: instance_id.to_owned() });
                }
                w.asg.pending_actions.remove(instance_id);
                let entering_warm_pool =
                    w.asg.groups.get(group).and_then(|g| g.warm.as_ref()).is_some_and(|wp| {
                        wp.members.iter().any(|(m, s)| m == instance_id && *s == WarmState::PendingWait)
                    });
                if entering_warm_pool {
                    drop(w);
                    match result {
                        LifecycleResult::Continue => self.park(instance_id.to_owned()),
                        LifecycleResult::Abandon => self.begin_terminate(instance_id, "lifecycle action ABANDON"),
                    }
                    return Ok(());
                }
                if result == LifecycleResult::Continue {
                    if let Some(s) = w.asg.groups.get_mut(group).and_then(|g| g.member_mut(instance_id)) {
                        *s = MemberState::InService;
                    }
                    self.end_launch(&mut w, instance_id, true);
                    self.note(&mut w, format!("{instance_id} is InService in {group}"));
                }
            }
            match result {
                LifecycleResult::Continue => self.emit_launch_successful(
                    group,
                    instance_id,
                    "an instance was started in response to a difference between desired and actual capacity",
                ),
                LifecycleResult::Abandon => self.begin_terminate(instance_id, "lifecycle action ABANDON"),
            }
            Ok(())
        }
        .await;
        self.answer("CompleteLifecycleAction", result)
    }

    async fn describe_warm_pool(&self, group: &str) -> Result<Option<WarmPool>, CloudError> {
        self.describe_warm_pool_call(group).await
    }

    async fn put_warm_pool(&self, group: &str, pool_state: &str, size: WarmPoolSize) -> Result<(), CloudError> {
        self.put_warm_pool_call(group, pool_state, size).await
    }
}
