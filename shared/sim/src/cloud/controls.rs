//! Test and simulator controls: set-up (what the SAM template creates) and the knobs
//! tests turn (an agent that goes offline, faults, a claim put by hand, forced init
//! failures, the claim strategy).

use std::collections::BTreeMap;

use warmpool_core::Config;
use warmpool_core::domain::{Id, UserRecord, UserState};
use warmpool_core::ports::{Clock, MemberState};

use super::autoscaling::{AsgState, Hook};
use super::ec2::{Ec2State, Instance};
use super::warm::{WarmPoolState, WarmState};
use super::{ClaimStrategy, SimCloud, World};
use crate::invocation::Faults;

impl SimCloud {
    /// Creates the pool group with a launch lifecycle hook and `size` instances that
    /// are already running, registered with SSM, prepared and `InService`, as a pool
    /// that has been up for a while. Starts the group's scaling loop.
    pub fn create_pool(&self, name: &str, hook: &str, size: u32, max: u32) {
        let mut w = self.world();
        let subnets: Vec<String> = w.ec2.subnet_azs.keys().cloned().collect();
        let members = (0..size)
            .map(|i| (self.prepared_instance(&mut w, name, &subnets, i, Ec2State::Running), MemberState::InService))
            .collect();
        w.asg.groups.insert(
            name.to_owned(),
            AsgState {
                min: 0,
                max,
                desired: size,
                subnets,
                tags: BTreeMap::new(),
                launch_template: crate::fixture::LAUNCH_TEMPLATE.to_owned(),
                members,
                hook: Some(Hook { name: hook.to_owned() }),
                warm: None,
            },
        );
        self.note(&mut w, format!("pool {name} starts with {size} prepared instances"));
        drop(w);
        self.start_scaling(name.to_owned());
    }

    /// Adds `n` users who finished long ago, as a deployment that has served them for a
    /// while holds them: `live-000001`, ..., each ready for 30 days, with its host (a pool
    /// instance once, prepared and initialised) `InService` in its own group of one.
    /// Their groups count against the group quota; the run's own users are not among them.
    pub fn seed_finished_users(&self, cfg: &Config, n: u32) {
        const DAY_MS: u64 = 86_400_000;
        let now = self.now_ms();
        let mut w = self.world();
        let subnets: Vec<String> = w.ec2.subnet_azs.keys().cloned().collect();
        let mut groups = Vec::new();
        for i in 0..n {
            let user = format!("live-{:06}", i + 1);
            let name = cfg.user_group(&user);
            let host = self.prepared_instance(&mut w, &cfg.pool_group, &subnets, i, Ec2State::Running);
            if let Some(instance) = w.ec2.instances.get_mut(&host) {
                instance.group = Some(name.clone());
            }
            let (Ok(id), Ok(signup)) = (Id::parse("user_id", &user), Id::parse("signup_id", &format!("s-{user}")))
            else {
                continue;
            };
            let mut record = UserRecord::new(&id, &signup, now.saturating_sub(30 * DAY_MS));
            record.state = UserState::Ready;
            record.instance = Some(host.clone());
            record.ready_at_ms = Some(record.requested_at_ms + 10_000);
            record.updated_at_ms = record.requested_at_ms + 10_000;
            groups.push(name.clone());
            w.asg.groups.insert(
                name,
                AsgState {
                    min: 0,
                    max: 1,
                    desired: 1,
                    subnets: subnets.clone(),
                    tags: record.to_tags().into_iter().collect(),
                    launch_template: crate::fixture::LAUNCH_TEMPLATE.to_owned(),
                    members: vec![(host, MemberState::InService)],
                    hook: None,
                    warm: None,
                },
            );
        }
        self.note(&mut w, format!("{n} users finished long ago, each with its host in its own group"));
        drop(w);
        // Each group keeps its one host as any group does (a lost host is replaced).
        for group in groups {
            self.start_scaling(group);
        }
    }

    /// Signups the signup function recorded at `at_ms` (epoch ms) for `pool_group`'s
    /// deployment, as its `Signups` metric holds them: a history set up by hand.
    pub fn record_signups(&self, pool_group: &str, at_ms: impl IntoIterator<Item = u64>) {
        let mut w = self.world();
        let minutes = w.record.signups.entry(pool_group.to_owned()).or_default();
        for at in at_ms {
            *minutes.entry(at / 60_000 * 60_000).or_default() += 1;
        }
    }

    /// A prepared instance of `group` (the `i`-th, in its subnets by turn), running with
    /// its agent online or stopped with it offline, as a pool that has been up a while
    /// holds them.
    fn prepared_instance(&self, w: &mut World, group: &str, subnets: &[String], i: u32, state: Ec2State) -> String {
        let subnet = subnets[i as usize % subnets.len()].clone();
        let az = w.ec2.subnet_azs[&subnet].clone();
        let id = w.ec2.next_id();
        let instance = Instance {
            subnet,
            az,
            launch_template: crate::fixture::LAUNCH_TEMPLATE.to_owned(),
            launched_ms: self.now_ms(),
            launched_in: group.to_owned(),
            state,
            group: Some(group.to_owned()),
            agent_online: state == Ec2State::Running,
            prepared: true,
        };
        w.ec2.instances.insert(id.clone(), instance);
        id
    }

    /// Gives the pool group a warm pool (`PoolState` `pool_state`, `MinSize` and
    /// `MaxGroupPreparedCapacity` both `size`, as the template and the pool-sizer set it)
    /// holding `size` prepared, stopped instances, as a warm pool that has been up for a
    /// while.
    pub fn create_warm_pool(&self, group: &str, pool_state: &str, size: u32) {
        self.create_warm_pool_holding(group, pool_state, size, size);
    }

    /// [`Self::create_warm_pool`] of `size`, holding only `parked` prepared instances
    /// at the start (the group's next scaling pass launches the rest into it).
    pub fn create_warm_pool_holding(&self, group: &str, pool_state: &str, size: u32, parked: u32) {
        let mut w = self.world();
        let Some(subnets) = w.asg.groups.get(group).map(|g| g.subnets.clone()) else { return };
        let members = (0..parked)
            .map(|i| (self.prepared_instance(&mut w, group, &subnets, i, Ec2State::Stopped), WarmState::Parked))
            .collect();
        if let Some(g) = w.asg.groups.get_mut(group) {
            let mut wp = WarmPoolState::new(pool_state, size, Some(size));
            wp.members = members;
            g.warm = Some(wp);
        }
        self.note(
            &mut w,
            format!("{group} gets a warm pool of {size}, holding {parked} prepared, {pool_state} instances"),
        );
    }

    /// The SSM agent of `instance_id` goes offline and never registers again, whatever
    /// restarts the instance (a broken agent, or an instance that lost its role).
    pub fn break_agent(&self, instance_id: &str) {
        let mut w = self.world();
        w.ec2.broken_agents.insert(instance_id.to_owned());
        if let Some(i) = w.ec2.instances.get_mut(instance_id) {
            i.agent_online = false;
        }
    }

    /// Makes the agent of `instance_id` go offline (a crashed or stopped agent).
    pub fn set_agent_online(&self, instance_id: &str, online: bool) {
        if let Some(i) = self.world().ec2.instances.get_mut(instance_id) {
            i.agent_online = online;
        }
    }

    /// Auto Scaling marks `instance_id` `Unhealthy` and has not replaced it yet: it stays
    /// `InService`, and `DescribeAutoScalingGroups` reports its `HealthStatus` as
    /// `Unhealthy` (Auto Scaling User Guide, "Health checks for instances in an Auto
    /// Scaling group": an unhealthy instance is replaced at the next opportunity).
    pub fn mark_unhealthy(&self, instance_id: &str) {
        self.world().asg.unhealthy.insert(instance_id.to_owned());
    }

    /// Auto Scaling finds `instance_id` unhealthy (a failed health check, a scheduled
    /// retirement) and replaces it: the instance is terminated and its group, whose
    /// desired capacity does not change, launches a new one from its launch template.
    pub fn fail_health_check(&self, instance_id: &str) {
        self.begin_terminate(instance_id, "unhealthy (health check failed); Auto Scaling replaces it");
    }

    /// Takes `instance_id` out of `group` at once, as a detach long finished would (an
    /// operator's `DetachInstances`, or a move whose owner lost its claim): the instance
    /// keeps running in no group, and the group, not decremented, replaces it.
    pub fn detach_by_hand(&self, group: &str, instance_id: &str) {
        let mut w = self.world();
        if let Some(g) = w.asg.groups.get_mut(group) {
            g.members.retain(|(m, _)| m != instance_id);
        }
        if let Some(i) = w.ec2.instances.get_mut(instance_id) {
            i.group = None;
        }
        self.note(&mut w, format!("{instance_id} detached from {group} by hand"));
    }

    /// Attaches to `group` an instance launched without our launch template (by hand, or
    /// by someone who should not have), running, its agent online, `InService`; returns
    /// its id. The flow must never give it to a user.
    pub fn attach_foreign_instance(&self, group: &str) -> String {
        let mut w = self.world();
        let Some((subnet, az)) = w.ec2.subnet_azs.iter().next().map(|(s, a)| (s.clone(), a.clone())) else {
            return String::new();
        };
        let id = w.ec2.next_id();
        let launched_ms = self.now_ms();
        w.ec2.instances.insert(
            id.clone(),
            Instance {
                subnet,
                az,
                launch_template: String::new(),
                launched_ms,
                launched_in: String::new(),
                state: Ec2State::Running,
                group: Some(group.to_owned()),
                agent_online: true,
                prepared: true,
            },
        );
        if let Some(g) = w.asg.groups.get_mut(group) {
            g.members.push((id.clone(), MemberState::InService));
            g.desired += 1;
        }
        self.note(&mut w, format!("{id}, launched elsewhere, attached to {group} by hand"));
        id
    }

    /// Sets a group's `MinSize`, as an operator's `UpdateAutoScalingGroup` would (a desired
    /// capacity below it is raised to it, as AWS does).
    pub fn set_min_size(&self, group: &str, min: u32) {
        let mut w = self.world();
        if let Some(g) = w.asg.groups.get_mut(group) {
            g.min = min;
            g.desired = g.desired.max(min);
        }
    }

    /// Sets the faults injected into calls made inside invocations.
    pub fn set_faults(&self, faults: Faults) {
        self.world().faults = faults;
    }

    /// Sets how signups claim pool instances from now on (the comparison strategies
    /// live here, in the simulator, not in the product).
    pub fn set_claim_strategy(&self, strategy: ClaimStrategy) {
        self.world().claim_strategy = strategy;
    }

    /// Claims `instance_id` for `owner` directly in Parameter Store (a test's set-up).
    pub fn put_claim(&self, instance_id: &str, owner: &str) {
        let now = self.now_ms();
        self.world().params.claims.insert(instance_id.to_owned(), (owner.to_owned(), now, 1));
    }

    /// Deletes the claim on an instance, as its owner releasing it would.
    pub fn delete_claim(&self, instance_id: &str) {
        self.world().params.claims.remove(instance_id);
    }

    /// Makes the next `n` launch attempts of any group fail, whatever the failure rate.
    pub fn fail_next_launches(&self, n: u32) {
        self.world().asg.forced_launch_failures += n;
    }

    /// Makes the next `n` user-init commands fail, whatever the failure rate.
    pub fn fail_next_inits(&self, n: u32) {
        self.world().ssm.forced_init_failures += n;
    }
}
