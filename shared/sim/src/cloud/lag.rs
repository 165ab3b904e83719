//! Eventual consistency: a `Describe*` call may answer with the state from before a
//! recent mutation.
//!
//! The EC2 API documents it ("Eventual consistency in the Amazon EC2 API": the result of
//! a command "might not be immediately visible to all subsequent commands"; describe
//! with backoff, starting from a couple of seconds). Auto Scaling documents no
//! guarantee either way, so the model assumes the same of it: the stricter choice.
//!
//! Each mutation of a group (create, tags, attach, detach and its completion, desired
//! capacity, terminate, delete) or of an instance's group membership becomes visible to
//! reads a while after it happens, drawn per mutation in
//! [`CloudModel::stale_read_ms`](crate::model::CloudModel). A read answers with the state
//! from before the oldest mutation not visible yet (so it never shows a later change
//! without the earlier ones, and is never staler than the longest window): a created
//! group is not listed yet, a deleted one still is, new tags and members are not shown,
//! an attached instance is in no group. Writes and the mutating calls' own checks always
//! see the truth, as AWS's do.

use std::borrow::Cow;
use std::collections::BTreeMap;

use warmpool_core::ports::{Clock, MemberState, Membership};

use super::autoscaling::AsgState;
use super::warm::WarmState;
use super::{SimCloud, World};

/// The state from before one mutation, and when the mutation becomes visible.
#[derive(Debug, Clone)]
struct Pending<T> {
    before: T,
    visible_ms: u64,
}

/// Mutations not visible yet, oldest first, by key.
type Pendings<T> = BTreeMap<String, Vec<Pending<T>>>;

/// The mutations reads do not see yet.
#[derive(Debug, Default)]
pub(super) struct Lag {
    /// Group name to the group before each (`None`: it did not exist).
    groups: Pendings<Option<AsgState>>,
    /// Instance id to its `DescribeAutoScalingInstances` record before each (`None`: in
    /// no group): one record, group and lifecycle state together.
    instances: Pendings<Option<Membership>>,
    /// Reads answered with a state that differs from the truth (the fault fired).
    pub(super) stale_reads: u64,
}

/// Records a mutation of `key` that reads see `window` ms from `now`; forgets those
/// visible already.
fn push<T>(pendings: &mut Pendings<T>, key: &str, before: T, now: u64, window: u64) {
    pendings.retain(|_, list| {
        list.retain(|p| p.visible_ms > now);
        !list.is_empty()
    });
    pendings.entry(key.to_owned()).or_default().push(Pending { before, visible_ms: now + window });
}

/// The state from before the oldest mutation of `key` reads do not see yet, if any.
fn seen_before<'p, T>(pendings: &'p Pendings<T>, key: &str, now: u64) -> Option<&'p T> {
    pendings.get(key)?.iter().find(|p| p.visible_ms > now).map(|p| &p.before)
}

/// Where Auto Scaling has `instance_id` now: its group and its state there.
pub(super) fn true_membership(w: &World, instance_id: &str) -> Option<Membership> {
    let group = w.ec2.instances.get(instance_id)?.group.clone()?;
    let g = w.asg.groups.get(&group);
    let in_warm_pool = g.and_then(|g| g.warm.as_ref()).and_then(|wp| wp.members.iter().find(|(m, _)| m == instance_id));
    let state = match (g.and_then(|g| g.members.iter().find(|(m, _)| m == instance_id)), in_warm_pool) {
        (Some((_, s)), _) => *s,
        (None, Some((_, WarmState::Terminating)) | None) => MemberState::Terminating,
        (None, Some((_, WarmState::Parked))) => MemberState::WarmedParked,
        (None, Some(_)) => MemberState::Warmed,
    };
    Some(Membership { group, state })
}

impl SimCloud {
    /// How long the mutation about to be made stays invisible to reads (ms); one draw
    /// per mutation, shared by the group and the instances it changes.
    pub(super) fn lag_window(&self) -> u64 {
        self.draw_ms(self.inner.model.stale_read_ms)
    }

    /// Records a mutation of `group`, before it is made, visible `window` ms from now.
    pub(super) fn lag_group(&self, w: &mut World, group: &str, window: u64) {
        if window > 0 {
            let before = w.asg.groups.get(group).cloned();
            push(&mut w.lag.groups, group, before, self.now_ms(), window);
        }
    }

    /// Records a change of `instance_id`'s membership (its group or its state there),
    /// before it is made, visible `window` ms from now.
    pub(super) fn lag_instance(&self, w: &mut World, instance_id: &str, window: u64) {
        if window > 0 {
            let before = true_membership(w, instance_id);
            push(&mut w.lag.instances, instance_id, before, self.now_ms(), window);
        }
    }

    /// The group as a read sees it now: from before its oldest mutation not visible
    /// yet, but with today's tags unless the model makes tags lag too
    /// ([`CloudModel::stale_tags`](crate::model::CloudModel)).
    pub(super) fn seen_group<'w>(&self, w: &'w World, name: &str) -> Option<Cow<'w, AsgState>> {
        let truth = w.asg.groups.get(name);
        match seen_before(&w.lag.groups, name, self.now_ms()) {
            Some(before) => before.as_ref().map(|g| self.with_tags(g, truth)),
            None => truth.map(Cow::Borrowed),
        }
    }

    /// Every group a listing sees now, by name (see [`Self::seen_group`]).
    pub(super) fn seen_groups<'w>(&self, w: &'w World) -> BTreeMap<&'w String, Cow<'w, AsgState>> {
        let now = self.now_ms();
        let mut seen: BTreeMap<&String, Cow<'w, AsgState>> =
            w.asg.groups.iter().map(|(name, g)| (name, Cow::Borrowed(g))).collect();
        for name in w.lag.groups.keys() {
            match seen_before(&w.lag.groups, name, now) {
                Some(Some(g)) => seen.insert(name, self.with_tags(g, w.asg.groups.get(name))),
                Some(None) => seen.remove(name),
                None => None,
            };
        }
        seen
    }

    fn with_tags<'w>(&self, before: &'w AsgState, truth: Option<&'w AsgState>) -> Cow<'w, AsgState> {
        match truth {
            Some(t) if !self.inner.model.stale_tags && t.tags != before.tags => {
                Cow::Owned(AsgState { tags: t.tags.clone(), ..before.clone() })
            }
            _ => Cow::Borrowed(before),
        }
    }

    /// `instance_id`'s membership as a read sees it now.
    pub(super) fn seen_membership(&self, w: &World, instance_id: &str) -> Option<Membership> {
        match seen_before(&w.lag.instances, instance_id, self.now_ms()) {
            Some(before) => before.clone(),
            None => true_membership(w, instance_id),
        }
    }

    /// Counts a read that answered with something other than the truth.
    pub(super) fn count_stale(w: &mut World, stale: bool) {
        if stale {
            w.lag.stale_reads += 1;
        }
    }

    /// Reads answered with a stale state so far.
    #[must_use]
    pub fn stale_reads(&self) -> u64 {
        self.world().lag.stale_reads
    }
}
