//! EC2 Auto Scaling warm pools (`PutWarmPool`, `DescribeWarmPool`), after the user
//! guide's "Warm pools for Amazon EC2 Auto Scaling" and its lifecycle chapter:
//!
//! - The warm pool holds `max(MinSize, MaxGroupPreparedCapacity − desired capacity)`
//!   instances (`MaxGroupPreparedCapacity` unset: the group's `MaxSize` stands in). The
//!   group's scaling pass launches new instances into it when it holds fewer, and
//!   terminates the newest when it holds more.
//! - A new instance enters as `Warmed:Pending`; the group's launch hook holds it in
//!   `Warmed:Pending:Wait` (its lifecycle action event says origin `EC2`, destination
//!   `WarmPool`); CONTINUE moves it to `Warmed:Pending:Proceed`, then Auto Scaling stops
//!   it (`Warmed:Stopped`, or `Warmed:Hibernated`) and its launch activity ends. ABANDON,
//!   or the hook's timeout, terminates it.
//! - When the group is short of its desired capacity it starts a parked instance first:
//!   the instance moves into the group as `Pending`, the hook holds it in `Pending:Wait`
//!   (origin `WarmPool`, destination `AutoScalingGroup`), EC2 starts it
//!   ([`CloudModel::start_s`](crate::model::CloudModel)) and its SSM agent registers
//!   again after its delay; CONTINUE puts it `InService`. Only with the warm pool empty
//!   does the group launch a new instance.
//! - `DescribeAutoScalingGroups` lists none of the warm pool's instances;
//!   `DescribeAutoScalingInstances` lists them with their `Warmed:*` state.
//! - A stopped instance pays for its volume only (the simulator's cost).

use warmpool_core::error::CloudError;
use warmpool_core::ports::{WarmInstance, WarmPool, WarmPoolSize};

use super::access::Access;
use super::ec2::Ec2State;
use super::{SimCloud, World};

/// Where a warm pool's instance is in its `Warmed:*` lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WarmState {
    /// `Warmed:Pending`: launched, not yet in the hook.
    Pending,
    /// `Warmed:Pending:Wait`: held by the launch hook (pool-prep runs).
    PendingWait,
    /// `Warmed:Pending:Proceed`: the hook completed; stopping.
    PendingProceed,
    /// `Warmed:Stopped` (or `Warmed:Hibernated`): prepared and parked.
    Parked,
    /// `Warmed:Terminating`.
    Terminating,
}

/// A group's warm pool.
#[derive(Debug, Clone)]
pub(super) struct WarmPoolState {
    pub(super) min_size: u32,
    pub(super) max_prepared: Option<u32>,
    /// `Stopped` or `Hibernated`.
    pub(super) pool_state: String,
    /// Instance id to its state, in launch order.
    pub(super) members: Vec<(String, WarmState)>,
}

impl WarmPoolState {
    pub(super) fn new(pool_state: &str, min_size: u32, max_prepared: Option<u32>) -> Self {
        Self { min_size, max_prepared, pool_state: pool_state.to_owned(), members: Vec::new() }
    }

    /// The `LifecycleState` AWS reports for `state`.
    pub(super) fn state_name(&self, state: WarmState) -> String {
        match state {
            WarmState::Pending => "Warmed:Pending".to_owned(),
            WarmState::PendingWait => "Warmed:Pending:Wait".to_owned(),
            WarmState::PendingProceed => "Warmed:Pending:Proceed".to_owned(),
            WarmState::Parked => format!("Warmed:{}", self.pool_state),
            WarmState::Terminating => "Warmed:Terminating".to_owned(),
        }
    }

    /// The instances it holds, terminating ones left out.
    pub(super) fn size(&self) -> u32 {
        self.members.iter().filter(|(_, s)| *s != WarmState::Terminating).count() as u32
    }

    /// How many instances it should hold for a group of `max` and `desired`.
    pub(super) fn target(&self, max: u32, desired: u32) -> u32 {
        self.min_size.max(self.max_prepared.unwrap_or(max).saturating_sub(desired))
    }

    /// What `DescribeWarmPool` says of this warm pool.
    fn view(&self) -> WarmPool {
        WarmPool {
            min_size: self.min_size,
            max_group_prepared_capacity: self.max_prepared,
            instances: self
                .members
                .iter()
                .map(|(id, s)| WarmInstance { instance_id: id.clone(), state: self.state_name(*s) })
                .collect(),
        }
    }

    pub(super) fn member_mut(&mut self, id: &str) -> Option<&mut WarmState> {
        self.members.iter_mut().find(|(m, _)| m == id).map(|(_, s)| s)
    }
}

impl SimCloud {
    /// A parked instance of `group`'s warm pool moved into the group as `Pending` (the
    /// caller starts it with [`SimCloud::boot`]), if there is one.
    pub(super) fn take_warmed(&self, w: &mut World, group: &str) -> Option<String> {
        let id = {
            let wp = w.asg.groups.get(group)?.warm.as_ref()?;
            wp.members.iter().find(|(_, s)| *s == WarmState::Parked).map(|(id, _)| id.clone())?
        };
        let window = self.lag_window();
        self.lag_group(w, group, window);
        self.lag_instance(w, &id, window);
        let g = w.asg.groups.get_mut(group)?;
        if let Some(wp) = g.warm.as_mut() {
            wp.members.retain(|(m, _)| m != &id);
        }
        g.members.push((id.clone(), warmpool_core::ports::MemberState::Pending));
        if let Some(i) = w.ec2.instances.get_mut(&id) {
            i.state = Ec2State::Pending;
        }
        self.begin_launch(w, group, &id, warmpool_core::ports::LaunchKind::FromWarmPool);
        self.note(w, format!("{group} starts {id} from its warm pool"));
        Some(id)
    }

    /// The warm pool's upkeep on a scaling pass: how many instances to launch into it,
    /// and which to terminate (the newest first) when it holds too many.
    pub(super) fn warm_shortfall(w: &World, group: &str) -> (u32, Vec<String>) {
        let Some(g) = w.asg.groups.get(group) else { return (0, Vec::new()) };
        let Some(wp) = g.warm.as_ref() else { return (0, Vec::new()) };
        let (size, target) = (wp.size(), wp.target(g.max, g.desired));
        if size >= target {
            let excess = wp
                .members
                .iter()
                .rev()
                .filter(|(_, s)| *s != WarmState::Terminating)
                .take((size - target) as usize)
                .map(|(id, _)| id.clone())
                .collect();
            return (0, excess);
        }
        (target - size, Vec::new())
    }

    /// After the hook of an instance entering the warm pool completed (CONTINUE), or with
    /// no hook once it runs: Auto Scaling stops it, after EC2's stop time, and it is
    /// parked; its launch activity ends then. One still booting is stopped once it runs
    /// (`boot` calls this again then).
    pub(super) fn park(&self, id: String) {
        {
            let mut w = self.world();
            let Some(group) = w.ec2.instances.get(&id).and_then(|i| i.group.clone()) else { return };
            if let Some(s) =
                w.asg.groups.get_mut(&group).and_then(|g| g.warm.as_mut()).and_then(|wp| wp.member_mut(&id))
            {
                *s = WarmState::PendingProceed;
            }
            let Some(i) = w.ec2.instances.get_mut(&id).filter(|i| i.state == Ec2State::Running) else { return };
            // The agent stops with the instance.
            i.agent_online = false;
            i.state = Ec2State::Stopping;
        }
        let cloud = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(cloud.draw_s(cloud.inner.model.stop_s)).await;
            let mut w = cloud.world();
            let Some(inst) = w.ec2.instances.get_mut(&id) else { return };
            if inst.state != Ec2State::Stopping {
                return;
            }
            inst.state = Ec2State::Stopped;
            let Some(group) = inst.group.clone() else { return };
            let parked = w
                .asg
                .groups
                .get_mut(&group)
                .and_then(|g| g.warm.as_mut())
                .and_then(|wp| wp.member_mut(&id))
                .map(|s| *s = WarmState::Parked)
                .is_some();
            if parked {
                cloud.end_launch(&mut w, &id, true);
                cloud.note(&mut w, format!("{id} stopped and parked in {group}'s warm pool"));
            }
        });
    }

    /// `DescribeWarmPool`.
    pub(super) async fn describe_warm_pool_call(&self, group: &str) -> Result<Option<WarmPool>, CloudError> {
        self.authorize(vec![Access::new("autoscaling:DescribeWarmPool", "*")]);
        self.call("DescribeWarmPool").await?;
        let mut w = self.world();
        let Some(g) = self.seen_group(&w, group) else {
            return Err(CloudError::NotFound { resource: group.to_owned() });
        };
        let seen = g.warm.as_ref().map(WarmPoolState::view);
        let truth = w.asg.groups.get(group).and_then(|g| g.warm.as_ref()).map(WarmPoolState::view);
        Self::count_stale(&mut w, seen != truth);
        Ok(seen)
    }

    /// `PutWarmPool`: creates the warm pool or updates its sizes and state. The group's
    /// next scaling pass applies them.
    pub(super) async fn put_warm_pool_call(
        &self,
        group: &str,
        pool_state: &str,
        size: WarmPoolSize,
    ) -> Result<(), CloudError> {
        self.authorize(vec![self.group_access("autoscaling:PutWarmPool", group)]);
        self.call("PutWarmPool").await?;
        let result = (|| {
            if !matches!(pool_state, "Stopped" | "Hibernated" | "Running") {
                return Err(super::validation("PutWarmPool", format!("PoolState {pool_state} is not valid")));
            }
            let mut w = self.world();
            if !w.asg.groups.contains_key(group) {
                return Err(CloudError::NotFound { resource: group.to_owned() });
            }
            let window = self.lag_window();
            self.lag_group(&mut w, group, window);
            if let Some(g) = w.asg.groups.get_mut(group) {
                let wp = g.warm.get_or_insert_with(|| WarmPoolState::new(pool_state, 0, None));
                wp.min_size = size.min_size;
                wp.max_prepared = Some(size.max_group_prepared_capacity);
                pool_state.clone_into(&mut wp.pool_state);
            }
            self.note(
                &mut w,
                format!(
                    "{group} warm pool: MinSize {}, MaxGroupPreparedCapacity {}",
                    size.min_size, size.max_group_prepared_capacity
                ),
            );
            Ok(())
        })();
        self.answer("PutWarmPool", result)
    }
}
