//! Inspection: the cloud's ground truth (what tests and reports judge by, never the
//! functions' beliefs) and its record of what was called.

use std::collections::{BTreeMap, BTreeSet};

use warmpool_core::ports::{Clock, CommandRequest, MemberState};

use super::SimCloud;
use super::ec2::Ec2State;
use super::sqs::{READY_QUEUE, REDRIVE_QUEUE, SIGNUP_DLQ, SIGNUP_QUEUE};
use crate::invocation::FaultKind;
use crate::queue::SimQueue;
use crate::waits::{Breakdown, Wait, WaitLog};

/// One line of the cloud's own timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineEntry {
    /// Milliseconds since the simulation started.
    pub at_ms: u64,
    pub text: String,
}

/// The cloud's ground truth at one moment.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Snapshot {
    /// Group name to the ids of its instances that are not leaving.
    pub groups: BTreeMap<String, Vec<String>>,
    /// Group name to the number of its `InService` members.
    pub in_service: BTreeMap<String, usize>,
    /// Group name to its warm pool's instances and their `Warmed:*` states (groups with
    /// a warm pool only).
    pub warm: BTreeMap<String, Vec<(String, String)>>,
    /// Group name to its tags.
    pub tags: BTreeMap<String, BTreeMap<String, String>>,
    /// Instances terminated (or shutting down).
    pub terminated: Vec<String>,
    /// Instances pending or running in no group.
    pub outside: Vec<String>,
    /// Instances listed as a member by more than one group (must stay empty).
    pub in_two_groups: Vec<String>,
    /// Bodies on the ready queue.
    pub ready_messages: Vec<String>,
    /// Bodies on the signup queue's dead-letter queue.
    pub dead_letters: Vec<String>,
    /// Bodies on the re-drive queue's dead-letter queue.
    pub redrive_dead_letters: Vec<String>,
    /// API calls by operation.
    pub calls: BTreeMap<String, u64>,
    /// Metrics the flow recorded: name to (count, sum of values).
    pub metrics: BTreeMap<String, (u64, f64)>,
    /// Throttled attempts by operation (each retried with backoff).
    pub throttled: BTreeMap<String, u64>,
    /// `Describe*` reads answered with the state from before a recent mutation.
    pub stale_reads: u64,
    /// Instances sent user-init more than once (each serves one user for one attempt).
    pub repeated_inits: Vec<String>,
    /// Instance id to the group that launched it (ground truth for warm or cold).
    pub launched_in: BTreeMap<String, String>,
    /// User id to the user-init commands sent for that user.
    pub inits_per_user: BTreeMap<String, usize>,
    /// Claims and init locks held, by name (an instance id, or `<instance>/init`), to
    /// (owner, last written, ms since the epoch).
    pub claims: BTreeMap<String, (String, u64)>,
    /// Instances `InService` in some group that never ran pool-prep (nor a user's full
    /// cold init): a pool member that skipped its hook's preparation.
    pub unprepared_in_service: BTreeMap<String, Vec<String>>,
    /// Where each user's time went so far, by user id (work not filled in).
    pub waits: BTreeMap<String, Breakdown>,
}

/// A group's size at one moment (cheaper than a [`Snapshot`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupSize {
    /// Members not leaving: pending, waiting in a hook, or `InService`.
    pub live: u32,
    pub in_service: u32,
    pub desired: u32,
    /// Warm pool instances EC2 bills as running (booting, in pool-prep, and a
    /// hibernation until it is done).
    pub warm_running: u32,
    /// Warm pool instances stopping or stopped (prepared and parked): their volumes only.
    pub warm_stopped: u32,
}

/// `DetachInstances` calls that reached a group, and how many detached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DetachStats {
    pub attempts: u64,
    pub succeeded: u64,
}

/// Where a call stands: the function that made it, the operation, and which of that
/// invocation's calls of the operation it was (0-based). Two runs that diverge still name
/// the same point the same way.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CallPoint {
    pub function: String,
    pub op: String,
    pub nth: usize,
}

/// What the cloud records of the calls made to it.
#[derive(Debug, Default)]
pub(super) struct Record {
    /// API calls by operation.
    pub(super) calls: BTreeMap<String, u64>,
    /// Where each call made inside an invocation stood, in order (the crash-point
    /// matrix's axis).
    pub(super) call_points: Vec<CallPoint>,
    /// The injected `at_call` faults that fired: the call's index, where, and the kind.
    pub(super) fired: Vec<(u64, CallPoint, FaultKind)>,
    /// What each of those calls needed of IAM (see [`super::access`]).
    pub(super) accesses: Vec<super::access::Access>,
    /// Throttled attempts by operation.
    pub(super) throttled: BTreeMap<String, u64>,
    /// Metrics the flow recorded: name to (count, sum of values).
    pub(super) metrics: BTreeMap<String, (u64, f64)>,
    /// `Signups` by pool group and minute (epoch ms of its start): what CloudWatch's
    /// one-minute sums of the metric hold.
    pub(super) signups: BTreeMap<String, BTreeMap<u64, u32>>,
    pub(super) timeline: Vec<TimelineEntry>,
    /// Where each user's time went (the demo's breakdown).
    pub(super) waits: WaitLog,
}

impl SimCloud {
    /// `user` waited for `wait` from `from_ms` to `to_ms` (epoch ms).
    pub(crate) fn note_wait(&self, user: &str, wait: Wait, from_ms: u64, to_ms: u64) {
        self.world().record.waits.add(user, wait, from_ms, to_ms);
    }

    /// A message about `user` was delivered: a signup (its first delivery ends its
    /// queued wait), or a re-drive; a redelivery ends a wait since its last failure.
    pub(crate) fn note_message_received(&self, user: &str, signup: bool, m: &crate::Received) {
        let now = self.now_ms();
        self.world().record.waits.message_received(user, signup, m.receive_count <= 1, m.sent_at_ms, now);
    }

    /// An invocation handling a message about `user` failed now.
    pub(crate) fn note_message_failed(&self, user: &str) {
        let now = self.now_ms();
        self.world().record.waits.message_failed(user, now);
    }

    /// Messages sent to `queue` at or after `since_ms`, deleted since or not.
    pub(crate) fn messages_sent_since(&self, queue: &str, since_ms: u64) -> Vec<crate::Received> {
        self.world().sqs.queues.get(queue).map(|q| q.sent_since(since_ms)).unwrap_or_default()
    }

    /// The waits attributed to `user` so far (work not filled in).
    #[must_use]
    pub fn waits_of(&self, user: &str) -> Breakdown {
        self.world().record.waits.of(user)
    }

    /// Each user group's last record update (epoch ms), by user id.
    #[must_use]
    pub fn record_updates(&self, prefix: &str) -> BTreeMap<String, u64> {
        use warmpool_core::domain::tag;
        self.world()
            .asg
            .groups
            .iter()
            .filter_map(|(name, g)| {
                let user = name.strip_prefix(prefix)?;
                let at = g.tags.get(tag::UPDATED_AT)?.parse().ok()?;
                Some((user.to_owned(), at))
            })
            .collect()
    }

    /// The cloud's timeline so far.
    #[must_use]
    pub fn timeline(&self) -> Vec<TimelineEntry> {
        self.world().record.timeline.clone()
    }

    /// The ground truth.
    #[must_use]
    pub fn snapshot(&self) -> Snapshot {
        let w = self.world();
        let mut groups = BTreeMap::new();
        let mut tags = BTreeMap::new();
        let mut in_service = BTreeMap::new();
        let mut seen: BTreeMap<&str, u32> = BTreeMap::new();
        for (name, g) in &w.asg.groups {
            let live: Vec<String> = g
                .members
                .iter()
                .filter(|(id, s)| {
                    !matches!(s, MemberState::Terminating)
                        && w.ec2
                            .instances
                            .get(id)
                            .is_some_and(|i| matches!(i.state, Ec2State::Pending | Ec2State::Running))
                })
                .map(|(id, _)| id.clone())
                .collect();
            for (id, _) in &g.members {
                *seen.entry(id.as_str()).or_default() += 1;
            }
            in_service.insert(name.clone(), g.members.iter().filter(|(_, s)| *s == MemberState::InService).count());
            groups.insert(name.clone(), live);
            tags.insert(name.clone(), g.tags.clone());
        }
        let terminated = w
            .ec2
            .instances
            .iter()
            .filter(|(_, i)| matches!(i.state, Ec2State::ShuttingDown | Ec2State::Terminated))
            .map(|(id, _)| id.clone())
            .collect();
        let outside = w
            .ec2
            .instances
            .iter()
            .filter(|(_, i)| i.group.is_none() && matches!(i.state, Ec2State::Pending | Ec2State::Running))
            .map(|(id, _)| id.clone())
            .collect();
        let in_two_groups = seen.into_iter().filter(|(_, n)| *n > 1).map(|(id, _)| id.to_owned()).collect();
        let mut unprepared_in_service: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, g) in &w.asg.groups {
            for (id, s) in &g.members {
                if *s == MemberState::InService && w.ec2.instances.get(id).is_some_and(|i| !i.prepared) {
                    unprepared_in_service.entry(name.clone()).or_default().push(id.clone());
                }
            }
        }
        Snapshot {
            groups,
            in_service,
            warm: warm_pools(&w),
            tags,
            terminated,
            outside,
            in_two_groups,
            ready_messages: w.sqs.queues.get(READY_QUEUE).map(SimQueue::bodies).unwrap_or_default(),
            // The dead-letter queue holds what the signup queue gave up on and what signup
            // rejected and sent there itself.
            dead_letters: w
                .sqs
                .queues
                .get(SIGNUP_QUEUE)
                .map(|q| q.dead_letters().iter().map(|r| r.body.clone()).collect::<Vec<_>>())
                .unwrap_or_default()
                .into_iter()
                .chain(w.sqs.queues.get(SIGNUP_DLQ).map(SimQueue::bodies).unwrap_or_default())
                .collect(),
            redrive_dead_letters: w
                .sqs
                .queues
                .get(REDRIVE_QUEUE)
                .map(|q| q.dead_letters().iter().map(|r| r.body.clone()).collect())
                .unwrap_or_default(),
            calls: w.record.calls.clone(),
            metrics: w.record.metrics.clone(),
            throttled: w.record.throttled.clone(),
            stale_reads: w.lag.stale_reads,
            repeated_inits: {
                let mut inits: BTreeMap<&str, usize> = BTreeMap::new();
                for c in w.ssm.sent.iter().filter(|c| c.parameters.contains_key("UserId")) {
                    *inits.entry(c.instance_id.as_str()).or_default() += 1;
                }
                inits.into_iter().filter(|(_, n)| *n > 1).map(|(i, _)| i.to_owned()).collect()
            },
            inits_per_user: {
                let mut inits: BTreeMap<String, usize> = BTreeMap::new();
                for c in &w.ssm.sent {
                    if let Some(user) = c.parameters.get("UserId").and_then(|v| v.first()) {
                        *inits.entry(user.clone()).or_default() += 1;
                    }
                }
                inits
            },
            launched_in: w.ec2.instances.iter().map(|(id, i)| (id.clone(), i.launched_in.clone())).collect(),
            claims: w.params.claims.iter().map(|(name, (owner, at, _))| (name.clone(), (owner.clone(), *at))).collect(),
            unprepared_in_service,
            waits: w.record.waits.all(),
        }
    }

    /// Every `SendCommand` the cloud accepted, in order.
    #[must_use]
    pub fn sent_commands(&self) -> Vec<CommandRequest> {
        self.world().ssm.sent.clone()
    }

    /// Where each call made inside invocations so far stood, in order (see [`CallPoint`]).
    #[must_use]
    pub fn call_points(&self) -> Vec<CallPoint> {
        self.world().record.call_points.clone()
    }

    /// The injected `at_call` faults that fired so far: the call's index, its point, the
    /// kind. A run whose calls diverged from the recorded one may never reach the index.
    #[must_use]
    pub fn fired_faults(&self) -> Vec<(u64, CallPoint, FaultKind)> {
        self.world().record.fired.clone()
    }

    /// (function, operation) of every call made inside invocations so far, in order.
    #[must_use]
    pub fn call_log(&self) -> Vec<(String, String)> {
        self.world().record.call_points.iter().map(|p| (p.function.clone(), p.op.clone())).collect()
    }

    /// The operations each function called so far.
    #[must_use]
    pub fn calls_by_function(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for p in &self.world().record.call_points {
            out.entry(p.function.clone()).or_default().insert(p.op.clone());
        }
        out
    }

    /// A group's live, `InService` and desired counts; `None` when it does not exist.
    #[must_use]
    pub fn group_size(&self, name: &str) -> Option<GroupSize> {
        let w = self.world();
        let g = w.asg.groups.get(name)?;
        let hibernates = g.warm.as_ref().is_some_and(|wp| wp.pool_state == "Hibernated");
        let warm = |states: &[Ec2State]| {
            g.warm.as_ref().map_or(0, |wp| {
                wp.members
                    .iter()
                    .filter(|(id, _)| w.ec2.instances.get(id).is_some_and(|i| states.contains(&i.state)))
                    .count() as u32
            })
        };
        Some(GroupSize {
            live: g.live() as u32,
            in_service: g.members.iter().filter(|(_, s)| *s == MemberState::InService).count() as u32,
            desired: g.desired,
            // EC2 bills a stop as stopped, a hibernation as running until it is done.
            warm_running: warm(if hibernates {
                &[Ec2State::Pending, Ec2State::Running, Ec2State::Stopping]
            } else {
                &[Ec2State::Pending, Ec2State::Running]
            }),
            warm_stopped: warm(if hibernates {
                &[Ec2State::Stopped]
            } else {
                &[Ec2State::Stopping, Ec2State::Stopped]
            }),
        })
    }

    /// One tag of a group (ground truth), without a snapshot.
    #[must_use]
    pub fn tag_value(&self, group: &str, key: &str) -> Option<String> {
        self.world().asg.groups.get(group).and_then(|g| g.tags.get(key).cloned())
    }

    /// `DetachInstances` calls on `group` so far.
    #[must_use]
    pub fn detach_stats(&self, group: &str) -> DetachStats {
        self.world().asg.detaches.get(group).copied().unwrap_or_default()
    }
}

/// Each group's warm pool: its instances and their `Warmed:*` states.
fn warm_pools(w: &super::World) -> BTreeMap<String, Vec<(String, String)>> {
    w.asg
        .groups
        .iter()
        .filter_map(|(name, g)| {
            let wp = g.warm.as_ref()?;
            Some((name.clone(), wp.members.iter().map(|(id, s)| (id.clone(), wp.state_name(*s))).collect()))
        })
        .collect()
}
