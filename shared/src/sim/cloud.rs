//! The in-memory cloud's state and its implementation of the ports.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::json;
use tokio::sync::mpsc;

use super::invocation::{FaultKind, Faults, Invocation};
use super::model::LatencyModel;
use super::queue::{Received, SimQueue};
use crate::error::CloudError;
use crate::events;
use crate::metrics::Metric;
use crate::ports::{
    AutoScaling, Claim, ClaimOutcome, Claims, Clock, CommandRequest, Group, Launch, LifecycleResult, Member,
    MemberState, Metrics, Notifier, RunCommand, UserGroupSpec,
};

/// Scaling activities kept per group (`DescribeScalingActivities` answers the newest page).
const ACTIVITIES_KEPT: usize = 200;

/// 2026-01-01T00:00:00Z: the simulated clock's origin.
const EPOCH_MS: u64 = 1_767_225_600_000;

/// An event the cloud puts on its EventBridge bus.
#[derive(Debug, Clone, PartialEq)]
pub struct BusEvent {
    pub source: &'static str,
    pub detail_type: &'static str,
    pub detail: serde_json::Value,
    pub at_ms: u64,
}

impl BusEvent {
    /// The event in the EventBridge envelope a Lambda receives.
    #[must_use]
    pub fn envelope(&self, id: u64) -> serde_json::Value {
        json!({
            "version": "0",
            "id": format!("00000000-0000-4000-8000-{id:012}"),
            "detail-type": self.detail_type,
            "source": self.source,
            "account": "123456789012",
            "time": format_time(self.at_ms),
            "region": "us-east-1",
            "resources": [],
            "detail": self.detail,
        })
    }
}

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
    /// API calls by operation.
    pub calls: BTreeMap<String, u64>,
    /// Metrics the flow recorded: name to (count, sum of values).
    pub metrics: BTreeMap<String, (u64, f64)>,
    /// Throttled attempts by operation (each retried with backoff).
    pub throttled: BTreeMap<String, u64>,
}

/// A group's size at one moment (cheaper than a [`Snapshot`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupSize {
    /// Members not leaving: pending, waiting in a hook, or `InService`.
    pub live: u32,
    pub in_service: u32,
    pub desired: u32,
}

/// `DetachInstances` calls that reached a group, and how many detached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DetachStats {
    pub attempts: u64,
    pub succeeded: u64,
}

#[derive(Debug, Clone)]
struct LaunchActivity {
    instance_id: String,
    launch: Launch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ec2State {
    Pending,
    Running,
    ShuttingDown,
    Terminated,
}

#[derive(Debug, Clone)]
struct Instance {
    subnet: String,
    az: String,
    state: Ec2State,
    group: Option<String>,
    agent_online: bool,
    prepared: bool,
}

#[derive(Debug, Clone)]
struct Hook {
    name: String,
}

#[derive(Debug, Clone)]
struct AsgState {
    min: u32,
    max: u32,
    desired: u32,
    subnets: Vec<String>,
    tags: BTreeMap<String, String>,
    /// Instance id to lifecycle state, in launch/attach order.
    members: Vec<(String, MemberState)>,
    hook: Option<Hook>,
}

impl AsgState {
    fn member_mut(&mut self, id: &str) -> Option<&mut MemberState> {
        self.members.iter_mut().find(|(m, _)| m == id).map(|(_, s)| s)
    }

    fn live(&self) -> usize {
        self.members.iter().filter(|(_, s)| !matches!(s, MemberState::Terminating | MemberState::Other)).count()
    }
}

#[derive(Debug)]
struct World {
    instances: BTreeMap<String, Instance>,
    groups: BTreeMap<String, AsgState>,
    /// Parameter Store claims: instance id to owner.
    /// Instance id to (owner, written at ms).
    claims: BTreeMap<String, (String, u64)>,
    /// Pending launch lifecycle actions: instance id to (group, hook).
    pending_actions: BTreeMap<String, (String, String)>,
    queues: BTreeMap<String, SimQueue>,
    subnet_azs: BTreeMap<String, String>,
    next_instance: u64,
    next_command: u64,
    /// User-init commands still to fail on purpose (tests).
    forced_init_failures: u32,
    calls: BTreeMap<String, u64>,
    /// Command id to (instance, status); `None` until the invocation is visible to
    /// `GetCommandInvocation` (eventual consistency right after `SendCommand`).
    commands: BTreeMap<String, (String, Option<String>)>,
    faults: Faults,
    /// Every `SendCommand` request accepted, in order: exactly what reaches a host.
    sent: Vec<CommandRequest>,
    /// Operations called inside invocations, in order (the crash-point matrix's axis).
    call_log: Vec<(String, String)>,
    /// Throttled attempts by operation.
    throttled: BTreeMap<String, u64>,
    metrics: BTreeMap<String, (u64, f64)>,
    timeline: Vec<TimelineEntry>,
    /// Launch activities by group, oldest first.
    activities: BTreeMap<String, Vec<LaunchActivity>>,
    /// Instance id to the group whose launch activity is still in progress.
    launching: BTreeMap<String, String>,
    detaches: BTreeMap<String, DetachStats>,
}

struct Inner {
    model: LatencyModel,
    world: Mutex<World>,
    rng: Mutex<StdRng>,
    bus: mpsc::UnboundedSender<BusEvent>,
    start: tokio::time::Instant,
}

/// The in-memory cloud. Cheap to clone (a handle). Must be used inside a tokio runtime;
/// with paused time (`start_paused`), simulated minutes pass instantly.
#[derive(Clone)]
pub struct SimCloud {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SimCloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimCloud").field("model", &self.inner.model).finish_non_exhaustive()
    }
}

pub const SIGNUP_QUEUE: &str = "signup";
pub const READY_QUEUE: &str = "ready";

impl SimCloud {
    /// A new, empty cloud with subnets in three Availability Zones, a FIFO signup
    /// queue (visibility timeout `visibility_s`, DLQ after `max_receive` receives) and
    /// a ready queue. Returns the cloud and its EventBridge bus.
    #[must_use]
    pub fn new(
        model: LatencyModel,
        seed: u64,
        visibility_s: u64,
        max_receive: u32,
    ) -> (Self, mpsc::UnboundedReceiver<BusEvent>) {
        let (bus, rx) = mpsc::unbounded_channel();
        let subnet_azs = [("subnet-a", "us-east-1a"), ("subnet-b", "us-east-1b"), ("subnet-c", "us-east-1c")]
            .into_iter()
            .map(|(s, a)| (s.to_owned(), a.to_owned()))
            .collect();
        let queues = BTreeMap::from([
            (SIGNUP_QUEUE.to_owned(), SimQueue::new(true, visibility_s * 1000, max_receive)),
            (READY_QUEUE.to_owned(), SimQueue::new(true, 30_000, 1_000)),
        ]);
        let world = World {
            instances: BTreeMap::new(),
            groups: BTreeMap::new(),
            claims: BTreeMap::new(),
            pending_actions: BTreeMap::new(),
            queues,
            subnet_azs,
            next_instance: 0x0a1b_2c3d_0000_0000 ^ (seed.wrapping_mul(0x9e37_79b9) & 0xffff_0000),
            next_command: 0,
            forced_init_failures: 0,
            calls: BTreeMap::new(),
            commands: BTreeMap::new(),
            faults: Faults::default(),
            sent: Vec::new(),
            call_log: Vec::new(),
            throttled: BTreeMap::new(),
            metrics: BTreeMap::new(),
            timeline: Vec::new(),
            activities: BTreeMap::new(),
            launching: BTreeMap::new(),
            detaches: BTreeMap::new(),
        };
        let cloud = Self {
            inner: Arc::new(Inner {
                model,
                world: Mutex::new(world),
                rng: Mutex::new(StdRng::seed_from_u64(seed)),
                bus,
                start: tokio::time::Instant::now(),
            }),
        };
        (cloud, rx)
    }

    /// The subnet ids the cloud has.
    #[must_use]
    pub fn subnets(&self) -> Vec<String> {
        self.world().subnet_azs.keys().cloned().collect()
    }

    /// The latency model in force.
    #[must_use]
    pub fn model(&self) -> &LatencyModel {
        &self.inner.model
    }

    fn world(&self) -> MutexGuard<'_, World> {
        self.inner.world.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn rng(&self) -> MutexGuard<'_, StdRng> {
        self.inner.rng.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Milliseconds since the simulation started.
    #[must_use]
    pub fn elapsed_ms(&self) -> u64 {
        self.inner.start.elapsed().as_millis() as u64
    }

    /// A uniform random draw in `[lo, hi]` (ms).
    #[must_use]
    pub fn draw_ms(&self, (lo, hi): (u64, u64)) -> u64 {
        if hi <= lo { lo } else { self.rng().random_range(lo..=hi) }
    }

    fn draw_s(&self, (lo, hi): (f64, f64)) -> Duration {
        let s = if hi <= lo { lo } else { self.rng().random_range(lo..hi) };
        Duration::from_secs_f64(s.max(0.0))
    }

    /// True with probability `p`.
    #[must_use]
    pub fn chance(&self, p: f64) -> bool {
        p > 0.0 && self.rng().random::<f64>() < p
    }

    fn note(&self, w: &mut World, text: String) {
        let at_ms = self.elapsed_ms();
        w.timeline.push(TimelineEntry { at_ms, text });
    }

    fn emit(&self, source: &'static str, detail_type: &'static str, detail: serde_json::Value) {
        let event = BusEvent { source, detail_type, detail, at_ms: self.now_ms() };
        // The receiver lives as long as the simulation; after it, events go nowhere.
        let _ = self.inner.bus.send(event);
    }

    /// One API call: count it and wait its latency.
    async fn call(&self, op: &str) -> Result<(), CloudError> {
        let invocation = Invocation::current();
        if let Some(inv) = &invocation {
            inv.stop_if_crashed().await;
        }
        *self.world().calls.entry(op.to_owned()).or_default() += 1;
        let ms = self.draw_ms(self.inner.model.api_ms);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        let Some(inv) = invocation else {
            return Ok(());
        };
        let (index, faults) = {
            let mut w = self.world();
            w.call_log.push((inv.function.to_owned(), op.to_owned()));
            (w.call_log.len() as u64 - 1, w.faults.clone())
        };
        match faults.at_call {
            Some((at, FaultKind::Retryable)) if at == index => {
                return Err(CloudError::Throttled { operation: op.to_owned() });
            }
            Some((at, FaultKind::Permanent)) if at == index => {
                return Err(CloudError::Invalid {
                    operation: op.to_owned(),
                    message: "simulated permanent failure".into(),
                });
            }
            Some((at, FaultKind::CrashAfter)) if at == index => inv.crash(),
            _ => {}
        }
        // Throttled attempts are retried with backoff, as the SDK's retry mode does.
        let mut backoff_ms = 100;
        for attempt in 1..=5 {
            if !self.chance(faults.throttle_rate) {
                break;
            }
            *self.world().throttled.entry(op.to_owned()).or_default() += 1;
            if attempt == 5 {
                return Err(CloudError::Throttled { operation: op.to_owned() });
            }
            tokio::time::sleep(Duration::from_millis(self.draw_ms((backoff_ms / 2, backoff_ms)))).await;
            backoff_ms *= 2;
        }
        if self.chance(faults.crash_rate) {
            inv.crash();
        }
        Ok(())
    }

    // ----- set-up (what the SAM template creates) -----

    /// Creates the pool group with a launch lifecycle hook and `size` instances that
    /// are already running, registered with SSM, prepared and `InService`, as a pool
    /// that has been up for a while. Starts the group's scaling loop.
    pub fn create_pool(&self, name: &str, hook: &str, size: u32, max: u32) {
        let mut w = self.world();
        let subnets: Vec<String> = w.subnet_azs.keys().cloned().collect();
        let mut members = Vec::new();
        for i in 0..size {
            let subnet = subnets[i as usize % subnets.len()].clone();
            let az = w.subnet_azs[&subnet].clone();
            let id = next_instance_id(&mut w);
            w.instances.insert(
                id.clone(),
                Instance {
                    subnet,
                    az,
                    state: Ec2State::Running,
                    group: Some(name.to_owned()),
                    agent_online: true,
                    prepared: true,
                },
            );
            members.push((id, MemberState::InService));
        }
        w.groups.insert(
            name.to_owned(),
            AsgState {
                min: 0,
                max,
                desired: size,
                subnets,
                tags: BTreeMap::new(),
                members,
                hook: Some(Hook { name: hook.to_owned() }),
            },
        );
        self.note(&mut w, format!("pool {name} starts with {size} prepared instances"));
        drop(w);
        self.start_scaling(name.to_owned());
    }

    /// Puts a message on the signup queue (a producer's `SendMessage`).
    pub fn send_signup(&self, body: &str, group_id: &str) -> String {
        let now = self.now_ms();
        let mut w = self.world();
        w.queues
            .get_mut(SIGNUP_QUEUE)
            .map(|q| q.send(body.to_owned(), Some(group_id.to_owned()), now))
            .unwrap_or_default()
    }

    /// The event source mapping's `ReceiveMessage`.
    pub fn receive_signups(&self, max: usize) -> Vec<Received> {
        let now = self.now_ms();
        let mut w = self.world();
        w.queues.get_mut(SIGNUP_QUEUE).map(|q| q.receive(max, now)).unwrap_or_default()
    }

    /// The event source mapping's `DeleteMessage`.
    pub fn delete_signup(&self, receipt_handle: &str) -> bool {
        let mut w = self.world();
        w.queues.get_mut(SIGNUP_QUEUE).is_some_and(|q| q.delete(receipt_handle))
    }

    /// Messages on the signup queue not yet deleted.
    #[must_use]
    pub fn signup_backlog(&self) -> usize {
        self.world().queues.get(SIGNUP_QUEUE).map_or(0, SimQueue::len)
    }

    /// Makes the agent of `instance_id` go offline (a crashed or stopped agent).
    pub fn set_agent_online(&self, instance_id: &str, online: bool) {
        if let Some(i) = self.world().instances.get_mut(instance_id) {
            i.agent_online = online;
        }
    }

    /// Sets the faults injected into calls made inside invocations.
    pub fn set_faults(&self, faults: Faults) {
        self.world().faults = faults;
    }

    /// Every `SendCommand` the cloud accepted, in order.
    #[must_use]
    pub fn sent_commands(&self) -> Vec<CommandRequest> {
        self.world().sent.clone()
    }

    /// (function, operation) of every call made inside invocations so far, in order.
    #[must_use]
    pub fn call_log(&self) -> Vec<(String, String)> {
        self.world().call_log.clone()
    }

    /// The operations each function called so far.
    #[must_use]
    pub fn calls_by_function(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (function, op) in &self.world().call_log {
            out.entry(function.clone()).or_default().insert(op.clone());
        }
        out
    }

    /// Claims `instance_id` for `owner` directly in Parameter Store (a test's set-up).
    pub fn put_claim(&self, instance_id: &str, owner: &str) {
        let now = self.now_ms();
        self.world().claims.insert(instance_id.to_owned(), (owner.to_owned(), now));
    }

    /// Makes the next `n` user-init commands fail, whatever the failure rate.
    pub fn fail_next_inits(&self, n: u32) {
        self.world().forced_init_failures += n;
    }

    /// A group's live, `InService` and desired counts; `None` when it does not exist.
    #[must_use]
    pub fn group_size(&self, name: &str) -> Option<GroupSize> {
        let w = self.world();
        let g = w.groups.get(name)?;
        Some(GroupSize {
            live: g.live() as u32,
            in_service: g.members.iter().filter(|(_, s)| *s == MemberState::InService).count() as u32,
            desired: g.desired,
        })
    }

    /// One tag of a group (ground truth), without a snapshot.
    #[must_use]
    pub fn tag_value(&self, group: &str, key: &str) -> Option<String> {
        self.world().groups.get(group).and_then(|g| g.tags.get(key).cloned())
    }

    /// `DetachInstances` calls on `group` so far.
    #[must_use]
    pub fn detach_stats(&self, group: &str) -> DetachStats {
        self.world().detaches.get(group).copied().unwrap_or_default()
    }

    /// Starts recording a launch activity for a new instance of `group`.
    fn begin_launch(&self, w: &mut World, group: &str, instance_id: &str) {
        let started_ms = self.now_ms();
        w.launching.insert(instance_id.to_owned(), group.to_owned());
        let list = w.activities.entry(group.to_owned()).or_default();
        list.push(LaunchActivity {
            instance_id: instance_id.to_owned(),
            launch: Launch { started_ms, ended_ms: None, succeeded: false },
        });
        if list.len() > ACTIVITIES_KEPT {
            list.drain(..list.len() - ACTIVITIES_KEPT);
        }
    }

    /// Ends the launch activity of `instance_id`, if one is still in progress.
    fn end_launch(&self, w: &mut World, instance_id: &str, succeeded: bool) {
        let now = self.now_ms();
        let Some(group) = w.launching.remove(instance_id) else { return };
        if let Some(a) = w.activities.get_mut(&group).and_then(|list| {
            list.iter_mut().rev().find(|a| a.instance_id == instance_id && a.launch.ended_ms.is_none())
        }) {
            a.launch.ended_ms = Some(now);
            a.launch.succeeded = succeeded;
        }
    }

    /// The cloud's timeline so far.
    #[must_use]
    pub fn timeline(&self) -> Vec<TimelineEntry> {
        self.world().timeline.clone()
    }

    /// The ground truth.
    #[must_use]
    pub fn snapshot(&self) -> Snapshot {
        let w = self.world();
        let mut groups = BTreeMap::new();
        let mut tags = BTreeMap::new();
        let mut in_service = BTreeMap::new();
        let mut seen: BTreeMap<&str, u32> = BTreeMap::new();
        for (name, g) in &w.groups {
            let live: Vec<String> = g
                .members
                .iter()
                .filter(|(id, s)| {
                    !matches!(s, MemberState::Terminating)
                        && w.instances.get(id).is_some_and(|i| matches!(i.state, Ec2State::Pending | Ec2State::Running))
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
            .instances
            .iter()
            .filter(|(_, i)| matches!(i.state, Ec2State::ShuttingDown | Ec2State::Terminated))
            .map(|(id, _)| id.clone())
            .collect();
        let outside = w
            .instances
            .iter()
            .filter(|(_, i)| i.group.is_none() && matches!(i.state, Ec2State::Pending | Ec2State::Running))
            .map(|(id, _)| id.clone())
            .collect();
        let in_two_groups = seen.into_iter().filter(|(_, n)| *n > 1).map(|(id, _)| id.to_owned()).collect();
        Snapshot {
            groups,
            in_service,
            tags,
            terminated,
            outside,
            in_two_groups,
            ready_messages: w.queues.get(READY_QUEUE).map(SimQueue::bodies).unwrap_or_default(),
            dead_letters: w
                .queues
                .get(SIGNUP_QUEUE)
                .map(|q| q.dead_letters().iter().map(|r| r.body.clone()).collect())
                .unwrap_or_default(),
            calls: w.calls.clone(),
            metrics: w.metrics.clone(),
            throttled: w.throttled.clone(),
        }
    }

    // ----- Auto Scaling's own behaviour -----

    /// Every `scaling_interval_s`, a group launches or terminates instances until its
    /// live count matches its desired capacity. Ends when the group is deleted.
    fn start_scaling(&self, group: String) {
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

    fn scale_once(&self, group: &str) -> bool {
        let mut launches = Vec::new();
        let mut excess = Vec::new();
        {
            let mut w = self.world();
            let Some(g) = w.groups.get(group) else {
                return false;
            };
            let live = g.live() as u32;
            let desired = g.desired;
            if live < desired {
                for _ in live..desired {
                    let id = self.launch_into(&mut w, group);
                    launches.push(id);
                }
            } else if live > desired {
                let live_ids: Vec<String> = g
                    .members
                    .iter()
                    .filter(|(_, s)| !matches!(s, MemberState::Terminating | MemberState::Other))
                    .map(|(id, _)| id.clone())
                    .collect();
                excess.extend(live_ids.into_iter().rev().take((live - desired) as usize));
            }
        }
        for id in launches {
            self.boot(id);
        }
        for id in excess {
            self.begin_terminate(&id, "scale-in");
        }
        true
    }

    /// Records a new `Pending` instance in the group, in its least-used subnet.
    fn launch_into(&self, w: &mut World, group: &str) -> String {
        let id = next_instance_id(w);
        let Some(g) = w.groups.get(group) else {
            return id;
        };
        let subnet = g
            .subnets
            .iter()
            .min_by_key(|s| {
                g.members.iter().filter(|(m, _)| w.instances.get(m).is_some_and(|i| &&i.subnet == s)).count()
            })
            .cloned()
            .unwrap_or_else(|| "subnet-a".to_owned());
        let az = w.subnet_azs.get(&subnet).cloned().unwrap_or_default();
        w.instances.insert(
            id.clone(),
            Instance {
                subnet,
                az,
                state: Ec2State::Pending,
                group: Some(group.to_owned()),
                agent_online: false,
                prepared: false,
            },
        );
        if let Some(g) = w.groups.get_mut(group) {
            g.members.push((id.clone(), MemberState::Pending));
        }
        self.begin_launch(w, group, &id);
        self.note(w, format!("{group} launches {id}"));
        id
    }

    /// Boots a launched instance: the launch hook (if any) takes it to `Pending:Wait`
    /// at once; EC2 reaches `running` after the boot time; the agent registers after
    /// its delay. Without a hook the group puts it `InService` once running.
    fn boot(&self, id: String) {
        let cloud = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(cloud.draw_ms((1_000, 3_000)))).await;
            let hooked = {
                let mut w = cloud.world();
                let Some(group) = w.instances.get(&id).and_then(|i| i.group.clone()) else {
                    return;
                };
                let hook = w.groups.get(&group).and_then(|g| g.hook.clone());
                if let Some(hook) = hook {
                    if let Some(s) = w.groups.get_mut(&group).and_then(|g| g.member_mut(&id)) {
                        *s = MemberState::PendingWait;
                    }
                    w.pending_actions.insert(id.clone(), (group.clone(), hook.name.clone()));
                    drop(w);
                    cloud.emit(
                        events::SOURCE_AUTOSCALING,
                        events::LAUNCH_LIFECYCLE_ACTION,
                        json!({
                            "LifecycleActionToken": format!("token-{id}"),
                            "AutoScalingGroupName": group,
                            "LifecycleHookName": hook.name,
                            "EC2InstanceId": id,
                            "LifecycleTransition": events::LAUNCHING_TRANSITION,
                            "Origin": "EC2",
                            "Destination": "AutoScalingGroup",
                        }),
                    );
                    cloud.hook_timeout(id.clone());
                    true
                } else {
                    false
                }
            };
            tokio::time::sleep(cloud.draw_s(cloud.inner.model.boot_s)).await;
            let in_service_group = {
                let mut w = cloud.world();
                let Some(inst) = w.instances.get_mut(&id) else { return };
                if inst.state != Ec2State::Pending {
                    return;
                }
                inst.state = Ec2State::Running;
                let group = inst.group.clone();
                if hooked {
                    None
                } else {
                    let group = group.filter(|g| {
                        w.groups
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
            if let Some(inst) = w.instances.get_mut(&id)
                && inst.state == Ec2State::Running
            {
                inst.agent_online = true;
                cloud.note(&mut w, format!("{id} SSM agent online"));
            }
        });
    }

    fn emit_launch_successful(&self, group: &str, id: &str, cause: &str) {
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
    fn hook_timeout(&self, id: String) {
        let cloud = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(cloud.inner.model.hook_timeout_s)).await;
            let timed_out = cloud.world().pending_actions.remove(&id).is_some();
            if timed_out {
                cloud.begin_terminate(&id, "lifecycle hook timed out (ABANDON)");
            }
        });
    }

    /// Starts terminating an instance: it leaves service at once and its agent goes
    /// offline; after the shutdown time it is gone from its group.
    fn begin_terminate(&self, id: &str, why: &str) {
        {
            let mut w = self.world();
            let group = {
                let Some(inst) = w.instances.get_mut(id) else { return };
                if matches!(inst.state, Ec2State::ShuttingDown | Ec2State::Terminated) {
                    return;
                }
                inst.state = Ec2State::ShuttingDown;
                inst.agent_online = false;
                inst.group.clone()
            };
            if let Some(s) = group.as_ref().and_then(|g| w.groups.get_mut(g)).and_then(|g| g.member_mut(id)) {
                *s = MemberState::Terminating;
            }
            w.pending_actions.remove(id);
            self.end_launch(&mut w, id, false);
            self.note(&mut w, format!("{id} terminating: {why}"));
        }
        let cloud = self.clone();
        let id = id.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs_f64(cloud.inner.model.shutdown_s)).await;
            let mut w = cloud.world();
            let group = w.instances.get_mut(&id).and_then(|i| {
                i.state = Ec2State::Terminated;
                i.group.take()
            });
            if let Some(g) = group.and_then(|g| w.groups.get_mut(&g)) {
                g.members.retain(|(m, _)| m != &id);
            }
        });
    }

    // ----- SSM Run Command's own behaviour -----

    fn run_command(&self, command_id: String, request: CommandRequest, user_init: bool) {
        let cloud = self.clone();
        tokio::spawn(async move {
            let model = cloud.inner.model.clone();
            let id = request.instance_id.clone();
            let delivery_deadline = Duration::from_secs(u64::from(request.delivery_timeout_s));
            let delivery = Duration::from_millis(cloud.draw_ms(model.command_delivery_ms));
            tokio::time::sleep(delivery).await;
            if let Some(entry) = cloud.world().commands.get_mut(&command_id) {
                entry.1.get_or_insert_with(|| "Pending".to_owned());
            }
            let (reachable, prepared) = {
                let w = cloud.world();
                w.instances
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
            let jitter = cloud.draw_s((0.9, 1.1)).as_secs_f64();
            let work = Duration::from_secs_f64(work_s * jitter);
            let timeout = request
                .parameters
                .get("executionTimeout")
                .and_then(|v| v.first())
                .and_then(|v| v.parse::<u64>().ok())
                .map_or(Duration::from_hours(1), Duration::from_secs);
            let fail_rate = if user_init { model.init_failure_rate } else { model.prep_failure_rate };
            let forced = user_init && {
                let mut w = cloud.world();
                let forced = w.forced_init_failures > 0;
                w.forced_init_failures = w.forced_init_failures.saturating_sub(1);
                forced
            };
            let fails = forced || cloud.chance(fail_rate);
            // Run in steps so that a terminated instance stops the script.
            let ran = work.min(timeout);
            let step = Duration::from_secs(5);
            let mut done = Duration::ZERO;
            while done < ran {
                let d = step.min(ran.saturating_sub(done));
                tokio::time::sleep(d).await;
                done += d;
                let alive = cloud.world().instances.get(&id).is_some_and(|i| i.state == Ec2State::Running);
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
                if let Some(i) = cloud.world().instances.get_mut(&id) {
                    i.prepared = true;
                }
                cloud.finish_command(&command_id, &request, "Success", "Success");
            }
        });
    }

    fn finish_command(&self, command_id: &str, request: &CommandRequest, status: &str, detail: &str) {
        {
            let mut w = self.world();
            let text = format!("command {command_id} ({}) on {}: {detail}", request.document, request.instance_id);
            self.note(&mut w, text);
        }
        self.command_event(command_id, request, status);
    }

    /// Emits both SSM status events, as AWS does for a one-instance command.
    fn command_event(&self, command_id: &str, request: &CommandRequest, status: &str) {
        if let Some(entry) = self.world().commands.get_mut(command_id) {
            entry.1 = Some(status.to_owned());
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
                healthy: true,
                availability_zone: w.instances.get(id).map(|i| i.az.clone()).unwrap_or_default(),
            })
            .collect(),
        tags: g.tags.clone(),
    }
}

fn next_instance_id(w: &mut World) -> String {
    w.next_instance += 1;
    format!("i-{:017x}", w.next_instance)
}

/// ISO 8601 UTC for simulated epoch milliseconds.
#[must_use]
pub fn format_time(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (hour, minute, second) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm), for days since 1970-01-01.
    let z = days.cast_signed() + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02}T{hour:02}:{minute:02}:{second:02}Z")
}

fn validation(op: &str, message: String) -> CloudError {
    CloudError::Invalid { operation: op.to_owned(), message }
}

impl Clock for SimCloud {
    fn now_ms(&self) -> u64 {
        EPOCH_MS + self.elapsed_ms()
    }

    async fn sleep_ms(&self, ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

impl AutoScaling for SimCloud {
    async fn create_user_group(&self, spec: &UserGroupSpec) -> Result<(), CloudError> {
        self.call("CreateAutoScalingGroup").await?;
        {
            let mut w = self.world();
            if w.groups.contains_key(&spec.name) {
                return Err(CloudError::AlreadyExists { resource: spec.name.clone() });
            }
            if let Some(bad) = spec.subnets.iter().find(|s| !w.subnet_azs.contains_key(*s)) {
                return Err(validation("CreateAutoScalingGroup", format!("The subnet ID '{bad}' does not exist")));
            }
            w.groups.insert(
                spec.name.clone(),
                AsgState {
                    min: 0,
                    max: 1,
                    desired: 0,
                    subnets: spec.subnets.clone(),
                    tags: spec.tags.iter().cloned().collect(),
                    members: Vec::new(),
                    hook: None,
                },
            );
            self.note(&mut w, format!("{} created", spec.name));
        }
        self.start_scaling(spec.name.clone());
        Ok(())
    }

    async fn describe_group(&self, name: &str) -> Result<Option<Group>, CloudError> {
        self.call("DescribeAutoScalingGroups").await?;
        let w = self.world();
        Ok(w.groups.get(name).map(|g| group_view(&w, name, g)))
    }

    async fn list_user_groups(&self, prefix: &str) -> Result<Vec<Group>, CloudError> {
        self.call("DescribeAutoScalingGroups").await?;
        let w = self.world();
        Ok(w.groups
            .iter()
            .filter(|(name, g)| name.starts_with(prefix) && g.tags.contains_key(crate::domain::tag::USER_ID))
            .map(|(name, g)| group_view(&w, name, g))
            .collect())
    }

    async fn group_of_instance(&self, instance_id: &str) -> Result<Option<String>, CloudError> {
        self.call("DescribeAutoScalingInstances").await?;
        Ok(self.world().instances.get(instance_id).and_then(|i| i.group.clone()))
    }

    async fn detach_instance(&self, group: &str, instance_id: &str) -> Result<(), CloudError> {
        self.call("DetachInstances").await?;
        let mut w = self.world();
        w.detaches.entry(group.to_owned()).or_default().attempts += 1;
        let Some(g) = w.groups.get_mut(group) else {
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
        g.members.remove(pos);
        if let Some(i) = w.instances.get_mut(instance_id) {
            i.group = None;
        }
        w.detaches.entry(group.to_owned()).or_default().succeeded += 1;
        self.note(&mut w, format!("{instance_id} detached from {group}"));
        Ok(())
    }

    async fn attach_instance(&self, group: &str, instance_id: &str) -> Result<(), CloudError> {
        self.call("AttachInstances").await?;
        {
            let mut w = self.world();
            let Some(inst) = w.instances.get(instance_id).cloned() else {
                return Err(validation("AttachInstances", format!("Instance {instance_id} does not exist")));
            };
            let Some(g) = w.groups.get(group) else {
                return Err(CloudError::NotFound { resource: group.to_owned() });
            };
            if inst.state != Ec2State::Running {
                return Err(validation("AttachInstances", format!("Instance {instance_id} is not in a running state")));
            }
            if let Some(other) = &inst.group {
                return Err(validation(
                    "AttachInstances",
                    format!("The instance {instance_id} is already part of Auto Scaling group {other}"),
                ));
            }
            let azs: BTreeSet<&String> = g.subnets.iter().filter_map(|s| w.subnet_azs.get(s)).collect();
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
                        "New SetDesiredCapacity value {} is above max value {} for the AutoScalingGroup.",
                        g.desired + 1,
                        g.max
                    ),
                });
            }
            if let Some(g) = w.groups.get_mut(group) {
                g.desired += 1;
                g.members.push((instance_id.to_owned(), MemberState::InService));
            }
            if let Some(i) = w.instances.get_mut(instance_id) {
                i.group = Some(group.to_owned());
            }
            self.note(&mut w, format!("{instance_id} attached to {group}"));
        }
        // AttachInstances fires no lifecycle hook; it does emit Launch Successful.
        self.emit_launch_successful(group, instance_id, "an instance was added in response to user request");
        Ok(())
    }

    async fn set_desired_capacity(&self, group: &str, desired: u32) -> Result<(), CloudError> {
        self.call("SetDesiredCapacity").await?;
        let mut w = self.world();
        let Some(g) = w.groups.get_mut(group) else {
            return Err(CloudError::NotFound { resource: group.to_owned() });
        };
        if desired > g.max || desired < g.min {
            return Err(CloudError::MaxSizeExceeded {
                group: group.to_owned(),
                message: format!("New SetDesiredCapacity value {desired} is outside min {} and max {}", g.min, g.max),
            });
        }
        g.desired = desired;
        self.note(&mut w, format!("{group} desired capacity set to {desired}"));
        Ok(())
    }

    async fn terminate_instance(&self, instance_id: &str, decrement_desired: bool) -> Result<(), CloudError> {
        self.call("TerminateInstanceInAutoScalingGroup").await?;
        {
            let mut w = self.world();
            let group = w
                .instances
                .get(instance_id)
                .filter(|i| matches!(i.state, Ec2State::Pending | Ec2State::Running))
                .and_then(|i| i.group.clone());
            let Some(group) = group else {
                return Err(CloudError::NotFound { resource: instance_id.to_owned() });
            };
            if decrement_desired && let Some(g) = w.groups.get_mut(&group) {
                g.desired = g.desired.saturating_sub(1).max(g.min);
            }
        }
        self.begin_terminate(instance_id, "TerminateInstanceInAutoScalingGroup");
        Ok(())
    }

    async fn tag_group(&self, group: &str, tags: &[(String, String)]) -> Result<(), CloudError> {
        self.call("CreateOrUpdateTags").await?;
        let mut w = self.world();
        let Some(g) = w.groups.get_mut(group) else {
            return Err(CloudError::NotFound { resource: group.to_owned() });
        };
        for (k, v) in tags {
            g.tags.insert(k.clone(), v.clone());
        }
        Ok(())
    }

    async fn delete_group(&self, group: &str) -> Result<(), CloudError> {
        self.call("DeleteAutoScalingGroup").await?;
        let members = {
            let mut w = self.world();
            let Some(g) = w.groups.remove(group) else {
                return Err(CloudError::NotFound { resource: group.to_owned() });
            };
            self.note(&mut w, format!("{group} deleted"));
            g.members
        };
        for (id, _) in members {
            self.begin_terminate(&id, "group deleted");
            if let Some(i) = self.world().instances.get_mut(&id) {
                i.group = None;
            }
        }
        Ok(())
    }

    async fn recent_launches(&self, group: &str) -> Result<Vec<Launch>, CloudError> {
        self.call("DescribeScalingActivities").await?;
        let w = self.world();
        if !w.groups.contains_key(group) {
            return Err(CloudError::NotFound { resource: group.to_owned() });
        }
        Ok(w.activities
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
        self.call("CompleteLifecycleAction").await?;
        {
            let mut w = self.world();
            let matches = w.pending_actions.get(instance_id).is_some_and(|(g, h)| g == group && h == hook);
            if !matches {
                return Err(CloudError::NoActiveLifecycleAction { instance_id: instance_id.to_owned() });
            }
            w.pending_actions.remove(instance_id);
            if result == LifecycleResult::Continue {
                if let Some(s) = w.groups.get_mut(group).and_then(|g| g.member_mut(instance_id)) {
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
}

impl RunCommand for SimCloud {
    async fn agent_online(&self, instance_id: &str) -> Result<bool, CloudError> {
        self.call("DescribeInstanceInformation").await?;
        Ok(self.world().instances.get(instance_id).is_some_and(|i| i.agent_online))
    }

    async fn send_command(&self, request: &CommandRequest) -> Result<String, CloudError> {
        self.call("SendCommand").await?;
        if request.delivery_timeout_s < 30 {
            return Err(validation("SendCommand", "TimeoutSeconds must be at least 30".into()));
        }
        let command_id = {
            let mut w = self.world();
            let online = w.instances.get(&request.instance_id).is_some_and(|i| i.agent_online);
            if !online {
                return Err(CloudError::AgentNotReady { instance_id: request.instance_id.clone() });
            }
            w.next_command += 1;
            let n = w.next_command;
            let id = format!("{n:08x}-0000-4000-8000-{:012x}", n.wrapping_mul(2_654_435_761));
            let user = request.parameters.get("UserId").and_then(|v| v.first()).cloned().unwrap_or_default();
            let text = if user.is_empty() {
                format!("SendCommand {} to {} ({id})", request.document, request.instance_id)
            } else {
                format!("SendCommand {} for {user} to {} ({id})", request.document, request.instance_id)
            };
            self.note(&mut w, text);
            w.commands.insert(id.clone(), (request.instance_id.clone(), None));
            w.sent.push(request.clone());
            id
        };
        let user_init = request.parameters.contains_key("UserId");
        self.run_command(command_id.clone(), request.clone(), user_init);
        Ok(command_id)
    }

    async fn invocation_status(&self, command_id: &str, instance_id: &str) -> Result<String, CloudError> {
        self.call("GetCommandInvocation").await?;
        let w = self.world();
        match w.commands.get(command_id) {
            Some((instance, Some(status))) if instance == instance_id => Ok(status.clone()),
            _ => Err(CloudError::InvocationDoesNotExist {
                command_id: command_id.to_owned(),
                instance_id: instance_id.to_owned(),
            }),
        }
    }
}

impl Claims for SimCloud {
    async fn claim(&self, instance_id: &str, owner: &str) -> Result<ClaimOutcome, CloudError> {
        self.call("PutParameter").await?;
        let holder = {
            let mut w = self.world();
            let holder = w.claims.get(instance_id).map(|(owner, _)| owner.clone());
            if holder.is_none() {
                w.claims.insert(instance_id.to_owned(), (owner.to_owned(), EPOCH_MS + self.elapsed_ms()));
            }
            holder
        };
        match holder {
            Some(holder) => {
                self.call("GetParameter").await?;
                Ok(ClaimOutcome::HeldBy(holder))
            }
            None => Ok(ClaimOutcome::Created),
        }
    }

    async fn release(&self, instance_id: &str) -> Result<(), CloudError> {
        self.call("DeleteParameter").await?;
        self.world().claims.remove(instance_id);
        Ok(())
    }

    async fn list_claims(&self) -> Result<Vec<Claim>, CloudError> {
        self.call("GetParametersByPath").await?;
        Ok(self
            .world()
            .claims
            .iter()
            .map(|(id, (owner, at))| Claim { instance_id: id.clone(), owner: owner.clone(), created_ms: *at })
            .collect())
    }
}

impl Metrics for SimCloud {
    fn record(&self, metric: Metric) {
        let (name, value, _, _) = metric.parts();
        let mut w = self.world();
        let entry = w.metrics.entry(name.to_owned()).or_default();
        entry.0 += 1;
        entry.1 += value;
    }
}

impl Notifier for SimCloud {
    async fn send_ready(&self, user_id: &str, dedup_id: &str, body: &str) -> Result<(), CloudError> {
        self.call("SendMessage").await?;
        let now = self.now_ms();
        let mut w = self.world();
        let enqueued = w
            .queues
            .get_mut(READY_QUEUE)
            .is_some_and(|q| q.send_deduplicated(body.to_owned(), user_id.to_owned(), dedup_id, now));
        let text = if enqueued {
            format!("ready message for {user_id}")
        } else {
            format!("ready message for {user_id} deduplicated by the FIFO queue")
        };
        self.note(&mut w, text);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_simulated_time() {
        assert_eq!(format_time(EPOCH_MS), "2026-01-01T00:00:00Z");
        assert_eq!(format_time(EPOCH_MS + 90_061_000), "2026-01-02T01:01:01Z");
    }
}
