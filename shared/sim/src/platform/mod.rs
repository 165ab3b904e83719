//! A local stand-in for the Lambda platform around the five functions: the SQS event
//! source mapping (batches, partial batch failures, redelivery after the visibility
//! timeout, dead-letter queue), the EventBridge rules with asynchronous invocation
//! (delivery delay, two retries one and two minutes apart) and the two schedules
//! (reconcile, pool-sizer), all on simulated time.
//!
//! The handlers it calls are the functions' real `handler`s, fed the JSON shapes AWS
//! sends, each with the configuration its function reads at a cold start (only its own
//! variables); the cloud behind them is [`SimCloud`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use warmpool_core::ports::Clock;
use warmpool_core::{Config, Function, events};

use warmpool_reconcile::{ReconcileEvent, ReconcileResponse};

use crate::rules::Rules;

mod options;
use crate::{BusEvent, REDRIVE_QUEUE, SIGNUP_QUEUE, SimCloud, Snapshot, Wait, fixture, invoke};
pub use options::PlatformOptions;

/// The running platform. Create it inside a tokio runtime with paused time.
#[derive(Debug, Clone)]
pub struct Platform {
    cloud: SimCloud,
    /// The deployment's whole configuration (what tests and reports read).
    cfg: Arc<Config>,
    /// What each function reads at its cold start: only its own variables.
    configs: Arc<BTreeMap<Function, Config>>,
    opts: Arc<PlatformOptions>,
    /// `template.yaml`'s EventBridge rules.
    rules: Arc<Rules>,
    next_event: Arc<AtomicU64>,
    failed_invocations: Arc<AtomicU64>,
    in_flight: Arc<crate::queue::InFlight>,
}

impl Platform {
    /// Sets up the cloud (the pool, the queues), starts the event source mapping and rules.
    #[must_use]
    pub fn start(opts: PlatformOptions) -> Self {
        let (cloud, bus) =
            SimCloud::new(opts.model.clone(), opts.seed, opts.visibility_timeout_s, opts.max_receive_count);
        let overrides: Vec<(&str, String)> = opts.overrides.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        let cfg = Arc::new(fixture::config(&cloud.subnets(), &overrides));
        let configs = Arc::new(
            Function::ALL.into_iter().map(|f| (f, fixture::function_config(f, &cloud.subnets(), &overrides))).collect(),
        );
        cloud.create_pool(&cfg.pool_group, &cfg.pool_hook, opts.pool, opts.pool_max.unwrap_or(opts.pool * 2 + 10));
        if let Some(pool_state) = cfg.sizer.warm_tier.pool_state() {
            cloud.create_warm_pool(&cfg.pool_group, pool_state, opts.warm_pool);
        }
        cloud.seed_finished_users(&cfg, opts.live_users);
        cloud.set_faults(opts.faults.clone());
        cloud.set_claim_strategy(opts.claim_strategy);
        cloud.set_claims_path(&cfg.claim_prefix);
        let rules = Rules::from_template(&cfg).unwrap_or_else(|e| panic!("template.yaml's event rules: {e}"));
        let platform = Self {
            cloud,
            cfg,
            configs,
            opts: Arc::new(opts),
            rules: Arc::new(rules),
            next_event: Arc::new(AtomicU64::new(1)),
            failed_invocations: Arc::new(AtomicU64::new(0)),
            in_flight: Arc::default(),
        };
        platform.spawn_event_rules(bus);
        platform.spawn_queue_mapping(Consumer::Signup);
        platform.spawn_queue_mapping(Consumer::Redrive);
        platform.spawn_schedule(Scheduled::Reconcile, platform.opts.reconcile_every_s);
        platform.spawn_schedule(Scheduled::PoolSizer, platform.opts.pool_sizer_every_s);
        platform
    }

    #[must_use]
    pub fn cloud(&self) -> &SimCloud {
        &self.cloud
    }

    /// The deployment's configuration (every variable).
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// What the platform was started with.
    #[must_use]
    pub fn options(&self) -> &PlatformOptions {
        &self.opts
    }

    /// What `function` runs with: its own variables only, as at a Lambda cold start.
    #[must_use]
    pub fn config_of(&self, function: Function) -> &Config {
        self.configs.get(&function).unwrap_or(&self.cfg)
    }

    /// A producer sends a signup for `user_id` (FIFO group = the user id).
    pub fn signup(&self, user_id: &str) -> String {
        let body = json!({ "kind": "signup", "user_id": user_id, "signup_id": format!("s-{user_id}") });
        self.cloud.send_signup(&body.to_string(), user_id)
    }

    /// A producer sends any body.
    pub fn send_raw(&self, body: &str, group_id: &str) -> String {
        self.cloud.send_signup(body, group_id)
    }

    /// EventBridge-invoked handler runs that returned an error (retried while retries remain).
    #[must_use]
    pub fn failed_invocations(&self) -> u64 {
        self.failed_invocations.load(Ordering::Relaxed)
    }

    /// Queue messages received again while an invocation still handled them.
    #[must_use]
    pub fn overlapping_receives(&self) -> u64 {
        self.in_flight.overlaps()
    }

    /// The ground truth now.
    #[must_use]
    pub fn snapshot(&self) -> Snapshot {
        self.cloud.snapshot()
    }

    /// Runs simulated time until every listed user is ready or failed and the signup queue
    /// is drained (true), or until `deadline_s` of simulated time have passed (false).
    pub async fn run_until_settled(&self, users: &[String], deadline_s: u64) -> bool {
        let deadline = Duration::from_secs(deadline_s);
        let start = tokio::time::Instant::now();
        loop {
            if self.all_final(users) && self.cloud.backlog(SIGNUP_QUEUE) == 0 {
                // Let terminations and trailing events finish.
                tokio::time::sleep(Duration::from_secs_f64(self.cloud.model().shutdown_s + 5.0)).await;
                return true;
            }
            if start.elapsed() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Users with a `resume` or re-drive message sent at or after `since_ms`.
    fn users_messaged_since(&self, since_ms: u64) -> std::collections::BTreeSet<String> {
        let mut users = std::collections::BTreeSet::new();
        for consumer in [Consumer::Signup, Consumer::Redrive] {
            for m in self.cloud.messages_sent_since(consumer.queue(), since_ms) {
                if let Some(user) = self.user_of_message(consumer, &m) {
                    users.insert(user);
                }
            }
        }
        users
    }

    /// Whether every listed user's record is ready or failed.
    #[must_use]
    pub fn all_final(&self, users: &[String]) -> bool {
        use warmpool_core::domain::{UserState, tag};
        let finals = [UserState::Ready.as_str(), UserState::Failed.as_str()];
        users.iter().all(|u| {
            self.cloud.tag_value(&self.cfg.user_group(u), tag::STATE).is_some_and(|s| finals.contains(&s.as_str()))
        })
    }

    // ----- SQS event source mappings (signup queue to signup, re-drive queue to reconcile) -----

    fn spawn_queue_mapping(&self, consumer: Consumer) {
        let platform = self.clone();
        let batch_size = match consumer {
            Consumer::Signup => self.opts.signup_batch_size.max(1),
            // As in template.yaml.
            Consumer::Redrive => 1,
        };
        tokio::spawn(async move {
            loop {
                let batch = platform.cloud.receive_from(consumer.queue(), batch_size);
                if batch.is_empty() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                for m in &batch {
                    if let Some(user) = platform.user_of_message(consumer, m) {
                        platform.cloud.note_message_received(&user, consumer == Consumer::Signup, m);
                    }
                }
                platform.in_flight.start(&batch);
                let p = platform.clone();
                tokio::spawn(async move { p.invoke_queue(consumer, batch).await });
            }
        });
    }

    /// The user a queue message is about (for the record of waits).
    fn user_of_message(&self, consumer: Consumer, m: &crate::Received) -> Option<String> {
        match consumer {
            Consumer::Signup => m.group_id.clone(),
            Consumer::Redrive => {
                let body: Value = serde_json::from_str(&m.body).ok()?;
                match body.get("requestPayload") {
                    Some(event) => self.user_of_detail(event.get("detail")?),
                    None => body.get("user_id").and_then(Value::as_str).map(str::to_owned),
                }
            }
        }
    }

    async fn invoke_queue(&self, consumer: Consumer, batch: Vec<crate::Received>) {
        let failed = run_consumer(&self.cloud, self.config_of(consumer.function()), consumer, &batch).await;
        self.in_flight.end(&batch);
        for m in &batch {
            if !failed.contains(&m.message_id) {
                self.cloud.delete_from(consumer.queue(), &m.receipt_handle);
            } else if let Some(user) = self.user_of_message(consumer, m) {
                self.cloud.note_message_failed(&user);
            }
        }
    }

    // ----- the schedules (reconcile, pool-sizer) -----

    fn spawn_schedule(&self, function: Scheduled, every_s: u64) {
        if every_s == 0 {
            return;
        }
        let platform = self.clone();
        tokio::spawn(async move {
            let every = Duration::from_secs(every_s);
            loop {
                tokio::time::sleep(every).await;
                let scheduled = json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}});
                let Ok(event) = serde_json::from_value::<EventBridgeEvent<Value>>(scheduled) else { continue };
                let cloud = &platform.cloud;
                // A failed run is logged by the handler; the next tick is the retry.
                match function {
                    Scheduled::Reconcile => {
                        let cfg = platform.config_of(Function::Reconcile);
                        let (started, before) = (cloud.now_ms(), cloud.record_updates(&cfg.user_group_prefix));
                        let event = LambdaEvent::new(ReconcileEvent::Schedule(Box::new(event)), Context::default());
                        let _ = invoke("reconcile", warmpool_reconcile::handler(cloud, cfg, event)).await;
                        // A stalled user the sweep handed on (a `resume` or a re-drive message,
                        // even from a sweep that then died) waited for it since its record
                        // last moved. (Less than that, when a lost event's step ended well
                        // after the record moved: an init that ran for minutes.)
                        let stall_ms = u64::from(cfg.reconcile_stall_s) * 1000;
                        let handed_on = platform.users_messaged_since(started);
                        for (user, since) in before {
                            if handed_on.contains(&user) && started.saturating_sub(since) >= stall_ms {
                                cloud.note_wait(&user, Wait::Sweep, since, started);
                            }
                        }
                    }
                    Scheduled::PoolSizer => {
                        let cfg = platform.config_of(Function::PoolSizer);
                        let _ = invoke(
                            "pool-sizer",
                            warmpool_pool_sizer::handler(cloud, cfg, LambdaEvent::new(event, Context::default())),
                        )
                        .await;
                    }
                }
            }
        });
    }

    // ----- EventBridge rules and asynchronous invocation -----

    fn spawn_event_rules(&self, mut bus: mpsc::UnboundedReceiver<BusEvent>) {
        let platform = self.clone();
        tokio::spawn(async move {
            while let Some(event) = bus.recv().await {
                let Some(target) = platform.route(&event) else {
                    continue;
                };
                if platform.cloud.chance(platform.opts.drop_events) {
                    tracing::warn!(detail_type = event.detail_type, "EventBridge event dropped (fault injection)");
                    continue;
                }
                let copies = if platform.cloud.chance(platform.opts.duplicate_events) { 2 } else { 1 };
                for _ in 0..copies {
                    let p = platform.clone();
                    let event = event.clone();
                    tokio::spawn(async move { p.deliver(target, event).await });
                }
            }
        });
    }

    /// Where `template.yaml`'s rules send the event.
    fn route(&self, e: &BusEvent) -> Option<Target> {
        match self.rules.targets(e.source, e.detail_type, &e.detail).first() {
            Some(&"lifecycle") => Some(Target::Lifecycle),
            Some(&"command-status") => Some(Target::CommandStatus),
            _ => None,
        }
    }

    async fn deliver(&self, target: Target, event: BusEvent) {
        let delay = self.cloud.draw_ms(self.cloud.model().event_delivery_ms)
            + self.cloud.draw_ms((0, self.opts.event_jitter_s * 1000))
            + if event.detail_type == events::LAUNCH_SUCCESSFUL { self.opts.launch_event_delay_s * 1000 } else { 0 };
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let id = self.next_event.fetch_add(1, Ordering::Relaxed);
        let envelope = event.envelope(id);
        let mut retries = self.opts.async_retry_delays_s.iter();
        loop {
            if self.invoke_event(target, &envelope).await {
                return;
            }
            self.failed_invocations.fetch_add(1, Ordering::Relaxed);
            let Some(delay_s) = retries.next() else {
                // Lambda sends the invocation record to the function's on-failure
                // destination (template.yaml: the re-drive queue, for both targets).
                tracing::warn!(?target, detail_type = event.detail_type, "event failed after Lambda's retries");
                self.cloud.send_to_destination(&invocation_record(target, &envelope));
                return;
            };
            let failed_at = self.cloud.now_ms();
            tokio::time::sleep(Duration::from_secs(*delay_s)).await;
            if let Some(user) = self.user_of(&event) {
                self.cloud.note_wait(&user, Wait::EventRetry, failed_at, self.cloud.now_ms());
            }
        }
    }

    /// The user an event is about: its user group's, or its user-init command's.
    fn user_of(&self, event: &BusEvent) -> Option<String> {
        self.user_of_detail(&event.detail)
    }

    fn user_of_detail(&self, d: &Value) -> Option<String> {
        d.get("AutoScalingGroupName")
            .and_then(Value::as_str)
            .and_then(|g| g.strip_prefix(&self.cfg.user_group_prefix))
            .or_else(|| d.pointer("/parameters/UserId/0").and_then(Value::as_str))
            .map(str::to_owned)
    }

    /// Invokes the target with the event; true when it succeeded.
    async fn invoke_event(&self, target: Target, envelope: &Value) -> bool {
        let event: EventBridgeEvent<Value> = match serde_json::from_value(envelope.clone()) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, "local platform built an event the handler cannot read");
                return true;
            }
        };
        let event = LambdaEvent::new(event, Context::default());
        let ok = match target {
            Target::Lifecycle => {
                let cfg = self.config_of(Function::Lifecycle);
                invoke("lifecycle", warmpool_lifecycle::handler(&self.cloud, cfg, event)).await.map(|r| r.is_ok())
            }
            Target::CommandStatus => {
                let cfg = self.config_of(Function::CommandStatus);
                invoke("command-status", warmpool_command_status::handler(&self.cloud, cfg, event))
                    .await
                    .map(|r| r.is_ok())
            }
        };
        ok == Some(true)
    }
}

/// The queues an event source mapping polls, and the function each invokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Consumer {
    /// The signup queue, to signup.
    Signup,
    /// The re-drive queue, to reconcile.
    Redrive,
}

impl Consumer {
    fn function(self) -> Function {
        match self {
            Self::Signup => Function::Signup,
            Self::Redrive => Function::Reconcile,
        }
    }

    fn queue(self) -> &'static str {
        match self {
            Self::Signup => SIGNUP_QUEUE,
            Self::Redrive => REDRIVE_QUEUE,
        }
    }

    fn queue_arn(self) -> &'static str {
        match self {
            Self::Signup => "arn:aws:sqs:us-east-1:123456789012:warmpool-signup.fifo",
            Self::Redrive => "arn:aws:sqs:us-east-1:123456789012:warmpool-redrive",
        }
    }
}

/// The SQS event Lambda's event source mapping hands the consumer of a batch.
fn sqs_event(consumer: Consumer, batch: &[crate::Received]) -> Option<SqsEvent> {
    let records: Vec<Value> = batch
        .iter()
        .map(|m| {
            let mut attributes = json!({
                "ApproximateReceiveCount": m.receive_count.to_string(),
                "SentTimestamp": (m.sent_at_ms).to_string(),
            });
            if let Some(group) = &m.group_id {
                attributes["MessageGroupId"] = group.clone().into();
                attributes["MessageDeduplicationId"] = m.message_id.clone().into();
                attributes["SequenceNumber"] = "1".into();
            }
            json!({
                "messageId": m.message_id,
                "receiptHandle": m.receipt_handle,
                "body": m.body,
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": consumer.queue_arn(),
                "awsRegion": "us-east-1",
            })
        })
        .collect();
    match serde_json::from_value(json!({ "Records": records })) {
        Ok(e) => Some(e),
        Err(e) => {
            tracing::error!(error = %e, "local platform built an SQS event the handler cannot read");
            None
        }
    }
}

/// Invokes the consumer of a batch; returns the message ids that failed (all of them
/// when the invocation failed or died).
async fn run_consumer(cloud: &SimCloud, cfg: &Config, consumer: Consumer, batch: &[crate::Received]) -> Vec<String> {
    let all: Vec<String> = batch.iter().map(|m| m.message_id.clone()).collect();
    let Some(event) = sqs_event(consumer, batch) else { return Vec::new() };
    let failed_ids = |items: Vec<aws_lambda_events::event::sqs::BatchItemFailure>| {
        items.into_iter().map(|f| f.item_identifier).collect::<Vec<_>>()
    };
    match consumer {
        Consumer::Signup => {
            let event = LambdaEvent::new(event, Context::default());
            match invoke("signup", warmpool_signup::handler(cloud, cfg, event)).await {
                Some(Ok(r)) => failed_ids(r.batch_item_failures),
                // A function error or a crash fails the whole batch.
                Some(Err(_)) | None => all,
            }
        }
        Consumer::Redrive => {
            let event = LambdaEvent::new(ReconcileEvent::Queue(event), Context::default());
            match invoke("reconcile", warmpool_reconcile::handler(cloud, cfg, event)).await {
                Some(Ok(ReconcileResponse::Queue(r))) => failed_ids(r.batch_item_failures),
                Some(Ok(ReconcileResponse::Sweep(_)) | Err(_)) | None => all,
            }
        }
    }
}

/// For handler tests that drive the flow themselves: runs the consumer of `queue`
/// ([`SIGNUP_QUEUE`]: signup; [`REDRIVE_QUEUE`]: reconcile) on each visible message, one
/// per invocation, deleting those it handled, until none is visible. Returns how many
/// invocations ran.
///
/// # Panics
/// On a queue no function consumes (a test's own mistake).
pub async fn drain(cloud: &SimCloud, cfg: &Config, queue: &str) -> usize {
    let consumer = match queue {
        SIGNUP_QUEUE => Consumer::Signup,
        REDRIVE_QUEUE => Consumer::Redrive,
        other => panic!("no function consumes the queue {other}"),
    };
    let mut runs = 0;
    loop {
        let batch = cloud.receive_from(queue, 1);
        if batch.is_empty() {
            return runs;
        }
        runs += 1;
        let failed = run_consumer(cloud, cfg, consumer, &batch).await;
        for m in batch.iter().filter(|m| !failed.contains(&m.message_id)) {
            cloud.delete_from(queue, &m.receipt_handle);
        }
    }
}

/// Lambda's invocation record of an asynchronous invocation that failed every attempt
/// (Lambda Developer Guide, "Capturing records of Lambda asynchronous invocations").
fn invocation_record(target: Target, envelope: &Value) -> String {
    let function = match target {
        Target::Lifecycle => "lifecycle",
        Target::CommandStatus => "command-status",
    };
    json!({
        "version": "1.0",
        "timestamp": "1970-01-01T00:00:00.000Z",
        "requestContext": {
            "requestId": "00000000-0000-0000-0000-000000000000",
            "functionArn": format!("arn:aws:lambda:us-east-1:123456789012:function:warmpool-{function}:$LATEST"),
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3,
        },
        "requestPayload": envelope,
        "responseContext": { "statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled" },
        "responsePayload": { "errorType": "Retryable", "errorMessage": "the invocation failed" },
    })
    .to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheduled {
    Reconcile,
    PoolSizer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Lifecycle,
    CommandStatus,
}
