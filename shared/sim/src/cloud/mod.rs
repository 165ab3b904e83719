//! The in-memory cloud: one handle ([`SimCloud`]) over per-service state, each service
//! in its own module, modelled after the AWS behaviour the design rests on, on tokio's
//! paused clock (a ten-minute launch costs no real time).
//!
//! - [`autoscaling`]: groups, the scaling loop, launch activities, lifecycle hooks,
//!   attach, detach, terminate, tags, delete;
//! - [`ec2`]: instances, boot, the SSM agent's registration, shutdown;
//! - [`ssm`]: Run Command;
//! - [`parameters`]: Parameter Store (the claim locks);
//! - [`sqs`]: the signup and ready queues;
//! - [`bus`]: the EventBridge bus the cloud emits its events on;
//! - [`inspect`]: the ground truth ([`Snapshot`]) and the record of calls;
//! - [`controls`]: set-up and the knobs tests turn.
//!
//! Every call the functions make goes through the same ports as the SDK adapters, and
//! through [`SimCloud::call`], which counts it, waits its latency and applies the
//! injected faults. What the model's numbers are, and where they come from, is in
//! [`CloudModel`] and `docs/architecture.md`.

pub mod access;
mod autoscaling;
mod bus;
mod controls;
mod documents;
mod ec2;
mod inspect;
mod lag;
mod operate;
mod parameters;
pub mod rates;
mod scaling;
mod sqs;
mod ssm;
mod warm;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::sync::mpsc;
use warmpool_core::Config;
use warmpool_core::error::{CloudError, FlowError};
use warmpool_core::flow::acquire::{Claimed, rendezvous_claim};
use warmpool_core::metrics::Metric;
use warmpool_core::ports::{Clock, Cloud, Metrics};
use warmpool_core::retry;

pub use self::bus::{BusEvent, format_time};
pub use self::documents::java_pattern;
pub use self::inspect::{CallPoint, DetachStats, GroupSize, Snapshot, TimelineEntry};
pub use self::sqs::{REDRIVE_MAX_RECEIVE, REDRIVE_QUEUE, REDRIVE_VISIBILITY_S, SIGNUP_QUEUE};
use crate::first_healthy::first_healthy_claim;
use crate::invocation::{FaultKind, Faults, Invocation};
use crate::model::CloudModel;

/// 2026-01-01T00:00:00Z: the simulated clock's origin.
const EPOCH_MS: u64 = 1_767_225_600_000;

/// How signups claim pool instances in a simulated run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClaimStrategy {
    /// The product's: the flow's rendezvous claim ([`rendezvous_claim`]).
    #[default]
    Rendezvous,
    /// The original design's, injected only here to measure the product against:
    /// every claimer detaches the first healthy `InService` instance (see
    /// [`crate::first_healthy`]).
    FirstHealthy,
}

impl ClaimStrategy {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rendezvous => "rendezvous",
            Self::FirstHealthy => "first-healthy",
        }
    }

    /// Parses `rendezvous` or `first-healthy`.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "rendezvous" => Some(Self::Rendezvous),
            "first-healthy" => Some(Self::FirstHealthy),
            _ => None,
        }
    }
}

/// Everything the cloud holds, by service.
#[derive(Debug)]
struct World {
    ec2: ec2::Ec2,
    asg: autoscaling::AutoScalingState,
    ssm: ssm::Ssm,
    /// Our SSM documents, from `template.yaml` (or why they could not be read).
    documents: &'static Result<documents::Documents, String>,
    params: parameters::ParameterStore,
    sqs: sqs::Queues,
    record: inspect::Record,
    rates: rates::Rates,
    lag: lag::Lag,
    faults: Faults,
    claim_strategy: ClaimStrategy,
}

struct Inner {
    model: CloudModel,
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

impl SimCloud {
    /// A new, empty cloud with subnets in three Availability Zones, a FIFO signup
    /// queue (visibility timeout `visibility_s`, DLQ after `max_receive` receives) and
    /// a ready queue. Returns the cloud and its EventBridge bus.
    #[must_use]
    pub fn new(
        model: CloudModel,
        seed: u64,
        visibility_s: u64,
        max_receive: u32,
    ) -> (Self, mpsc::UnboundedReceiver<BusEvent>) {
        let (bus, rx) = mpsc::unbounded_channel();
        let world = World {
            ec2: ec2::Ec2::new(seed),
            asg: autoscaling::AutoScalingState::default(),
            ssm: ssm::Ssm::default(),
            documents: documents::Documents::ours(),
            params: parameters::ParameterStore::default(),
            sqs: sqs::Queues::new(visibility_s * 1000, max_receive),
            record: inspect::Record::default(),
            rates: rates::Rates::default(),
            lag: lag::Lag::default(),
            faults: Faults::default(),
            claim_strategy: ClaimStrategy::default(),
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
        self.world().ec2.subnet_azs.keys().cloned().collect()
    }

    /// The model in force.
    #[must_use]
    pub fn model(&self) -> &CloudModel {
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
        w.record.timeline.push(TimelineEntry { at_ms, text });
    }

    /// One API call: count it, wait its latency, and apply the injected faults (a
    /// crash after the call, a retryable or permanent failure instead of it, and
    /// throttled attempts retried on the SDK's schedule, [`retry::sdk_throttle`], with
    /// the SDK's jitter: each delay drawn between half and all of it).
    async fn call(&self, op: &str) -> Result<(), CloudError> {
        let invocation = Invocation::current();
        if let Some(inv) = &invocation {
            inv.stop_if_crashed().await;
        }
        *self.world().record.calls.entry(op.to_owned()).or_default() += 1;
        let ms = self.draw_ms(self.inner.model.api_ms);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        let caller = invocation.as_ref().map_or("", |inv| inv.function);
        self.within_rate_limit(op, caller).await?;
        let Some(inv) = invocation else {
            return Ok(());
        };
        let nth = inv.nth_call(op);
        let (index, faults) = {
            let mut w = self.world();
            w.record.call_points.push(CallPoint { function: inv.function.to_owned(), op: op.to_owned(), nth });
            tracing::debug!(function = inv.function, op, "AWS call");
            (w.record.call_points.len() as u64 - 1, w.faults.clone())
        };
        let here = [faults.at_call, faults.then_at_call].into_iter().flatten().find(|(at, _)| *at == index);
        // Another caller's attach lands first only if this call itself goes through: set
        // once the throttle loop below has let it pass, so it cannot carry to a later call.
        let mut attached_first = None;
        if let Some((_, kind)) = here {
            let point = CallPoint { function: inv.function.to_owned(), op: op.to_owned(), nth };
            self.world().record.fired.push((index, point, kind));
            match kind {
                FaultKind::AttachedFirst(into) if op == "AttachInstances" => attached_first = Some(into),
                FaultKind::Retryable | FaultKind::AttachedFirst(_) => {
                    return Err(CloudError::Throttled { operation: op.to_owned() });
                }
                FaultKind::Permanent => {
                    return Err(CloudError::Invalid {
                        operation: op.to_owned(),
                        message: "simulated permanent failure".into(),
                    });
                }
                FaultKind::CrashAfter => inv.crash(),
                FaultKind::AppliedThenError if is_mutating(op) => inv.lose_response_of(op),
                FaultKind::AppliedThenError => return Err(lost_response(op)),
            }
        }
        let mut retries = retry::sdk_throttle();
        while self.chance(faults.throttle_rate) {
            *self.world().record.throttled.entry(op.to_owned()).or_default() += 1;
            let Some(delay) = retries.next() else {
                return Err(CloudError::Throttled { operation: op.to_owned() });
            };
            let ms = delay.as_millis() as u64;
            tokio::time::sleep(Duration::from_millis(self.draw_ms((ms / 2, ms)))).await;
        }
        if let Some(into) = attached_first {
            inv.attach_first(into);
        }
        if self.chance(faults.crash_rate) {
            tracing::debug!(function = inv.function, op, "injected crash: the invocation dies after this call");
            inv.crash();
        }
        Ok(())
    }
}

impl SimCloud {
    /// The account's bucket for `op`'s service (see [`rates`]): a refused attempt is
    /// retried as the SDK retries a throttled call, with backoff, until its attempts run
    /// out (then the call fails `Throttled`).
    async fn within_rate_limit(&self, op: &str, caller: &str) -> Result<(), CloudError> {
        let service = rates::Service::of(op);
        let limits = self.inner.model.api_limits;
        let mut retries = retry::sdk_throttle();
        loop {
            let elapsed = self.elapsed_ms();
            if self.world().rates.attempt(&limits, service, caller, elapsed) {
                return Ok(());
            }
            let Some(delay) = retries.next() else {
                return Err(CloudError::Throttled { operation: op.to_owned() });
            };
            let ms = delay.as_millis() as u64;
            tokio::time::sleep(Duration::from_millis(self.draw_ms((ms / 2, ms)))).await;
        }
    }

    /// What the calls of seconds `from_s..to_s` (since the cloud started) cost, with
    /// `scheduled` the functions whose calls count as the scheduled work.
    #[must_use]
    pub fn api_usage(&self, from_s: usize, to_s: usize, scheduled: &[&str]) -> rates::ApiUsage {
        self.world().rates.usage(from_s, to_s, scheduled)
    }
}

/// Whether the AWS operation `op` changes something (the calls whose repetition or lost
/// response matters; the rest describe, get or list).
#[must_use]
pub fn is_mutating(op: &str) -> bool {
    MUTATING.contains(&op)
}

/// The calls that change something (each answers through [`SimCloud::answer`]).
const MUTATING: &[&str] = &[
    "CreateAutoScalingGroup",
    "DetachInstances",
    "AttachInstances",
    "SetDesiredCapacity",
    "TerminateInstanceInAutoScalingGroup",
    "CreateOrUpdateTags",
    "DeleteAutoScalingGroup",
    "CompleteLifecycleAction",
    "PutWarmPool",
    "TerminateInstances",
    "PutParameter",
    "DeleteParameters",
    "SendMessage",
    "SendMessageBatch",
    "ChangeMessageVisibility",
    "SendCommand",
];

/// What an SDK call whose response never came back answers (a timeout, a reset
/// connection): retryable, and silent about whether the call took effect.
fn lost_response(op: &str) -> CloudError {
    CloudError::Transient { operation: op.to_owned(), message: "no response (injected: the call took effect)".into() }
}

impl SimCloud {
    /// A mutating call's answer: `result`, unless the injected fault
    /// ([`FaultKind::AppliedThenError`]) lost its response after the call took effect.
    fn answer<T>(&self, op: &str, result: Result<T, CloudError>) -> Result<T, CloudError> {
        match Invocation::current() {
            Some(inv) if inv.response_lost(op) => {
                tracing::debug!(op, "injected: the call took effect, its response is lost");
                let mut w = self.world();
                self.note(&mut w, format!("{op} by {} took effect; its response is lost", inv.function));
                Err(lost_response(op))
            }
            _ => result,
        }
    }
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

impl Metrics for SimCloud {
    fn record(&self, metric: Metric) {
        let (name, value, _, _) = metric.parts();
        let minute = self.now_ms() / 60_000 * 60_000;
        let mut w = self.world();
        let entry = w.record.metrics.entry(name.to_owned()).or_default();
        entry.0 += 1;
        entry.1 += value;
        if let Metric::Signup { pool_group } = metric {
            *w.record.signups.entry(pool_group).or_default().entry(minute).or_default() += 1;
        }
    }

    /// CloudWatch's one-minute sums of `Signups` for the pool group, each visible once
    /// `metric_delay_s` has passed since its minute ended (CloudWatch Logs extracts EMF
    /// metrics asynchronously and publishes no latency: an assumption, see `CloudModel`).
    /// `GetMetricData` has no resource-level permission (`*`).
    async fn signups_by_minute(
        &self,
        pool_group: &str,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<Vec<(u64, u32)>, CloudError> {
        self.authorize(vec![access::Access::new("cloudwatch:GetMetricData", "*")]);
        self.call("GetMetricData").await?;
        let now = self.now_ms();
        let delay_ms = self.inner.model.metric_delay_s * 1000;
        let w = self.world();
        Ok(w.record
            .signups
            .get(pool_group)
            .map(|minutes| {
                minutes
                    .range(from_ms / 60_000 * 60_000..to_ms)
                    .filter(|(start, _)| *start + 60_000 + delay_ms <= now)
                    .map(|(start, n)| (*start, *n))
                    .collect()
            })
            .unwrap_or_default())
    }
}

impl Cloud for SimCloud {
    async fn claim_from_pool(&self, cfg: &Config, user_id: &str) -> Result<Option<Claimed>, FlowError> {
        let strategy = self.world().claim_strategy;
        match strategy {
            ClaimStrategy::Rendezvous => rendezvous_claim(self, cfg, user_id).await,
            ClaimStrategy::FirstHealthy => first_healthy_claim(self, cfg, user_id).await,
        }
    }
}
